/* Hop-by-hop fields and the fields kept out of trailer sections. */
#include "check.h"
#include "http/hop.h"
#include "http/request.h"

#define F(n, v) ((struct http_field){(n), (v), sizeof(n) - 1, sizeof(v) - 1})

static int forbidden(const char *name)
{
    return hop_trailer_forbidden(name, strlen(name));
}

static bool is_hop(const struct hop_set *h, const char *name)
{
    return hop_is_hop(h, name, strlen(name));
}

/* The fixed hop-by-hop set and the names a Connection field adds. */
static void test_hop_set(void)
{
    const struct http_field in[] = {F("Accept", "x-not-hop"), F("CONNECTION", "close, X-Trace"),
                                    F("connection", " ,\tkeep-alive ,x-b\t"), F("Connection", "")};
    struct hop_set h;
    hop_collect(&h, in, 4);
    CHECK_EQ_INT(h.nextra, 4);
    /* fixed names, case-insensitively; Proxy-* needs something after the dash */
    CHECK(is_hop(&h, "Connection"));
    CHECK(is_hop(&h, "keep-alive"));
    CHECK(is_hop(&h, "TE"));
    CHECK(is_hop(&h, "Trailer"));
    CHECK(is_hop(&h, "transfer-encoding"));
    CHECK(is_hop(&h, "Upgrade"));
    CHECK(is_hop(&h, "Proxy-Connection"));
    CHECK(is_hop(&h, "proxy-authorization"));
    CHECK(!is_hop(&h, "proxy-"));
    CHECK(!is_hop(&h, "Trailers"));
    CHECK(!is_hop(&h, "t"));
    /* listed in Connection: exact names, any case, spaces, tabs and empty elements skipped */
    CHECK(is_hop(&h, "x-trace"));
    CHECK(is_hop(&h, "X-B"));
    CHECK(is_hop(&h, "close"));
    CHECK(!is_hop(&h, "x-trac"));
    CHECK(!is_hop(&h, "x-not-hop")); /* in a value, not in Connection */
    CHECK(!is_hop(&h, "Accept"));
    /* a new collect starts over */
    hop_collect(&h, in, 1);
    CHECK_EQ_INT(h.nextra, 0);
    CHECK(!is_hop(&h, "x-trace"));
    CHECK(is_hop(&h, "connection"));
    /* at most HOP_MAX_EXTRA names are kept; the rest are ignored, not overflowed */
    char many[HOP_MAX_EXTRA * 4 + 16];
    size_t n = 0;
    for (int i = 0; i < HOP_MAX_EXTRA + 3; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%c%c,", 'a' + i / 26, 'a' + i % 26);
    hop_collect(&h, NULL, 0);
    hop_add_tokens(&h, many, n);
    CHECK_EQ_INT(h.nextra, HOP_MAX_EXTRA);
    CHECK(is_hop(&h, "aa"));
    CHECK(is_hop(&h, "cl"));  /* the 64th token, the last kept */
    CHECK(!is_hop(&h, "cm")); /* the 65th */
}

static void offer(const struct http_field *in, size_t n, size_t cap, const char *want)
{
    char out[128];
    memset(out, 0, sizeof(out));
    size_t len = hop_upgrade_offer(in, n, out, cap);
    bool ok = len == strlen(want) && memcmp(out, want, len) == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  got \"%.*s\", want \"%s\"\n", (int)len, out, want);
}

/* The Upgrade tokens offered upstream: every one but h2c, joined. */
static void test_upgrade_offer(void)
{
    const struct http_field ws[] = {F("Upgrade", "websocket")};
    offer(ws, 1, 128, "websocket");
    const struct http_field mixed[] = {F("upgrade", "h2c, websocket,  foo/2"), F("Host", "h"),
                                       F("UPGRADE", "H2C/1,bar")};
    offer(mixed, 3, 128, "websocket, foo/2, bar");
    /* h2c in any case and version is never offered */
    const struct http_field h2c[] = {F("Upgrade", "h2c"), F("Upgrade", "H2c/2.0 , ,")};
    offer(h2c, 2, 128, "");
    /* h2c as part of a longer name is another protocol */
    const struct http_field h2cx[] = {F("Upgrade", "h2cx")};
    offer(h2cx, 1, 128, "h2cx");
    /* no Upgrade field */
    const struct http_field none[] = {F("Connection", "upgrade")};
    offer(none, 1, 128, "");
    /* exactly fits; one byte short is nothing at all, not a truncated list */
    offer(mixed, 3, 21, "websocket, foo/2, bar");
    offer(mixed, 3, 20, "");
    offer(ws, 1, 8, "");
}

int main(void)
{
    test_hop_set();
    test_upgrade_offer();
    /* RFC 9110 section 6.5.1: framing, routing, authentication, modifiers, content metadata */
    CHECK(forbidden("Host"));
    CHECK(forbidden("content-length"));
    CHECK(forbidden("Transfer-Encoding"));
    CHECK(forbidden("Authorization"));
    CHECK(forbidden("cookie"));
    CHECK(forbidden("Content-Type"));
    CHECK(forbidden("max-forwards"));
    CHECK(forbidden("If-None-Match"));
    CHECK(forbidden("Trailer"));
    CHECK(forbidden("TE"));
    CHECK(forbidden("connection"));
    CHECK(forbidden("Proxy-Authorization"));
    CHECK(forbidden("Via"));
    /* the forwarding headers are ours to set */
    CHECK(forbidden("X-Forwarded-For"));
    CHECK(forbidden("x-forwarded-proto"));
    CHECK(forbidden("X-FORWARDED-HOST"));
    CHECK(forbidden("x-forwarded-port"));
    CHECK(forbidden("x-forwarded-prefix"));
    CHECK(forbidden("x-forwarded-anything"));
    CHECK(forbidden("Forwarded"));
    CHECK(forbidden("X-Real-IP"));
    /* pseudo-header names never pass as fields */
    CHECK(forbidden(":authority"));
    CHECK(forbidden(":path"));
    /* ordinary trailers do */
    CHECK(!forbidden("x-checksum"));
    CHECK(!forbidden("grpc-status"));
    CHECK(!forbidden("server-timing"));
    CHECK(!forbidden("x-forwarded")); /* not one of ours: no dash-suffix */
    CHECK(!forbidden("forwarded-x"));
    return check_done("hop");
}
