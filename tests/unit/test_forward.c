/* Forwarding headers: which client fields are dropped (forward_drops), what we send
 * (forward_emit) and which address counts as the client's (forward_client). */
#include "check.h"
#include "config/config.h"
#include "http/request.h"
#include "proxy/forward.h"

#include <stdlib.h>
#include <sys/socket.h>

#define F(n, v) ((struct http_field){(n), (v), sizeof(n) - 1, sizeof(v) - 1})
#define MAX_OUT 16

/* What forward_emit produced, as "Name: value" lines. */
struct sent {
    char line[MAX_OUT][4200];
    int n;
    int fail_at; /* put returns -1 for this field index, or -1 for never */
};

static int put(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct sent *o = ctx;
    if (o->n == o->fail_at || o->n == MAX_OUT)
        return -1;
    snprintf(o->line[o->n++], sizeof(o->line[0]), "%.*s: %.*s", (int)nlen, name, (int)vlen, value);
    return 0;
}

/* The value sent under `name`, or NULL; fails the check when sent more than once. */
static const char *sent_value(const struct sent *o, const char *name)
{
    const char *found = NULL;
    size_t n = strlen(name);
    for (int i = 0; i < o->n; i++)
        if (strncmp(o->line[i], name, n) == 0 && o->line[i][n] == ':') {
            CHECK(found == NULL);
            found = o->line[i] + n + 2;
        }
    return found;
}

#define CHECK_SENT(o, name, want)                                                                  \
    do {                                                                                           \
        const char *got_ = sent_value((o), (name));                                                \
        CHECK(got_ &&strcmp(got_, (want)) == 0);                                                   \
        if (got_ && strcmp(got_, (want)) != 0)                                                     \
            fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", (name), got_, (want));              \
    } while (0)

/* 10.0.0.0/8 and 2001:db8:1::/48 are trusted proxies. */
static struct cfg_cidr trusted_blocks[] = {
    {.family = AF_INET, .bytes = {10}, .prefix = 8},
    {.family = AF_INET6, .bytes = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01}, .prefix = 48},
};
static struct config cfg = {.trusted_proxies = trusted_blocks, .ntrusted_proxies = 2};

static struct cfg_route route_with(unsigned fwd, const char *path, bool strip)
{
    return (struct cfg_route){.path = (char *)path,
                              .path_len = strlen(path),
                              .action = CFG_ACTION_PROXY,
                              .strip_prefix = strip,
                              .forward_headers = fwd};
}

static struct http_stream stream_with(const char *peer, const char *authority,
                                      const struct http_field *fields, size_t n)
{
    struct http_stream s = {.config = &cfg, .peer = peer, .local_port = 8080};
    s.req.authority = (struct slice){authority, strlen(authority)};
    s.req.fields = fields;
    s.req.nfields = n;
    return s;
}

static struct sent *emit(const struct http_stream *s, const struct cfg_route *r, bool trusted,
                         int *rc)
{
    static struct sent o;
    memset(&o, 0, sizeof(o));
    o.fail_at = -1;
    *rc = forward_emit(s, r, trusted, put, &o);
    return &o;
}

static bool drops(const char *name, bool trusted, const struct cfg_route *r)
{
    return forward_drops(name, strlen(name), trusted, r);
}

static void test_drops(void)
{
    struct cfg_route all = route_with(CFG_FWD_ALL, "/", false);
    struct cfg_route none = route_with(0, "/", false);
    struct cfg_route app = route_with(CFG_FWD_FOR, "/app", true);
    /* an untrusted peer's forwarding claims never pass, whatever the route sends */
    const char *ours[] = {"X-Forwarded-For",  "x-forwarded-proto",  "X-FORWARDED-HOST",
                          "X-Forwarded-Port", "x-forwarded-prefix", "Forwarded"};
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        CHECK(drops(ours[i], false, &all));
        CHECK(drops(ours[i], false, &none));
    }
    /* from a trusted peer, dropped only where we send a combined value instead */
    CHECK(drops("X-Forwarded-For", true, &all));
    CHECK(drops("Forwarded", true, &all));
    CHECK(!drops("X-Forwarded-For", true, &none));
    CHECK(!drops("Forwarded", true, &none));
    CHECK(drops("x-forwarded-for", true, &app));
    CHECK(!drops("x-forwarded-proto", true, &app));
    /* X-Forwarded-Prefix: ours when the route strips a prefix other than "/" */
    CHECK(drops("X-Forwarded-Prefix", true, &app));
    CHECK(!drops("X-Forwarded-Prefix", true, &all));
    struct cfg_route root_strip = route_with(CFG_FWD_ALL, "/", true);
    CHECK(!drops("X-Forwarded-Prefix", true, &root_strip));
    /* other names are not forwarding headers */
    CHECK(!drops("X-Forwarded", false, &all));
    CHECK(!drops("X-Forwarded-", false, &all));
    CHECK(!drops("X-Forwarded-Server", false, &all));
    CHECK(!drops("X-Forwarded-Fo", false, &all));
    CHECK(!drops("X-Forwarded-Forx", false, &all));
    CHECK(!drops("Forwarded-For", false, &all));
    CHECK(!drops("Forwarde", false, &all));
    CHECK(!drops("X-Real-IP", false, &all));
    CHECK(!drops("", false, &all));
}

static void test_emit_untrusted(void)
{
    const struct http_field in[] = {F("X-Forwarded-For", "6.6.6.6"),
                                    F("X-Forwarded-Proto", "https"),
                                    F("X-Forwarded-Host", "evil.test"),
                                    F("Forwarded", "for=6.6.6.6"), F("X-Forwarded-Port", "1")};
    struct http_stream s = stream_with("192.0.2.1", "example.com", in, 5);
    struct cfg_route r = route_with(CFG_FWD_ALL, "/", false);
    int rc;
    struct sent *o = emit(&s, &r, false, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(o->n, 5);
    /* the client's values are ignored: only what we saw */
    CHECK_SENT(o, "X-Forwarded-For", "192.0.2.1");
    CHECK_SENT(o, "X-Forwarded-Proto", "http");
    CHECK_SENT(o, "X-Forwarded-Host", "example.com");
    CHECK_SENT(o, "X-Forwarded-Port", "8080");
    CHECK_SENT(o, "Forwarded", "for=192.0.2.1;proto=http;host=example.com");
    CHECK(sent_value(o, "X-Forwarded-Prefix") == NULL);
    s.secure = true;
    s.local_port = 443;
    o = emit(&s, &r, false, &rc);
    CHECK_SENT(o, "X-Forwarded-Proto", "https");
    CHECK_SENT(o, "X-Forwarded-Port", "443");
    CHECK_SENT(o, "Forwarded", "for=192.0.2.1;proto=https;host=example.com");
}

static void test_emit_trusted(void)
{
    /* two X-Forwarded-For fields form one list; ours is appended */
    const struct http_field in[] = {F("X-Forwarded-For", "203.0.113.7"),
                                    F("x-forwarded-for", "10.1.1.1"),
                                    F("X-Forwarded-Proto", "https"),
                                    F("X-Forwarded-Host", "public.example"),
                                    F("X-Forwarded-Port", "443"),
                                    F("Forwarded", "for=203.0.113.7;proto=https"),
                                    F("X-Forwarded-For", "")};
    struct http_stream s = stream_with("10.0.0.2", "internal:8080", in, 7);
    struct cfg_route r = route_with(CFG_FWD_ALL, "/", false);
    int rc;
    struct sent *o = emit(&s, &r, true, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_SENT(o, "X-Forwarded-For", "203.0.113.7, 10.1.1.1, 10.0.0.2");
    /* proto, host and port are the outermost proxy's: the incoming value replaces ours */
    CHECK_SENT(o, "X-Forwarded-Proto", "https");
    CHECK_SENT(o, "X-Forwarded-Host", "public.example");
    CHECK_SENT(o, "X-Forwarded-Port", "443");
    /* Forwarded is a list: ours appended; host:port is a quoted-string (RFC 7239) */
    CHECK_SENT(o, "Forwarded",
               "for=203.0.113.7;proto=https, for=10.0.0.2;proto=http;host=\"internal:8080\"");
    /* without incoming values, a trusted peer gets ours */
    s.req.nfields = 0;
    o = emit(&s, &r, true, &rc);
    CHECK_SENT(o, "X-Forwarded-For", "10.0.0.2");
    CHECK_SENT(o, "X-Forwarded-Proto", "http");
    CHECK_SENT(o, "X-Forwarded-Host", "internal:8080");
}

static void test_emit_ipv6(void)
{
    struct http_stream s = stream_with("2001:db8::1", "[2001:db8::80]:8443", NULL, 0);
    struct cfg_route r = route_with(CFG_FWD_FOR | CFG_FWD_FORWARDED, "/", false);
    int rc;
    struct sent *o = emit(&s, &r, false, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(o->n, 2);
    /* X-Forwarded-For carries the bare address; Forwarded brackets and quotes it (RFC 7239
     * section 6), and quotes a host with brackets and port */
    CHECK_SENT(o, "X-Forwarded-For", "2001:db8::1");
    CHECK_SENT(o, "Forwarded", "for=\"[2001:db8::1]\";proto=http;host=\"[2001:db8::80]:8443\"");
    /* an IPv4-mapped peer text has colons too: quoted as IPv6 */
    s.peer = "::ffff:192.0.2.1";
    o = emit(&s, &r, false, &rc);
    CHECK_SENT(o, "Forwarded",
               "for=\"[::ffff:192.0.2.1]\";proto=http;host=\"[2001:db8::80]:8443\"");
}

static void test_emit_selection(void)
{
    struct http_stream s = stream_with("192.0.2.1", "", NULL, 0);
    int rc;
    /* nothing configured, no prefix: nothing sent */
    struct cfg_route r = route_with(0, "/", false);
    struct sent *o = emit(&s, &r, true, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(o->n, 0);
    /* no authority: no X-Forwarded-Host, and Forwarded without host= */
    r = route_with(CFG_FWD_HOST | CFG_FWD_FORWARDED, "/", false);
    o = emit(&s, &r, false, &rc);
    CHECK_EQ_INT(o->n, 1);
    CHECK(sent_value(o, "X-Forwarded-Host") == NULL);
    CHECK_SENT(o, "Forwarded", "for=192.0.2.1;proto=http");
    /* an authority of 300 bytes or more is not repeated in X-Forwarded-Host, nor one of 256 or
     * more in Forwarded */
    static char big[301];
    memset(big, 'a', 300);
    s.req.authority = (struct slice){big, 300};
    o = emit(&s, &r, false, &rc);
    CHECK(sent_value(o, "X-Forwarded-Host") == NULL);
    CHECK_SENT(o, "Forwarded", "for=192.0.2.1;proto=http");
    s.req.authority.len = 299;
    o = emit(&s, &r, false, &rc);
    CHECK(sent_value(o, "X-Forwarded-Host") != NULL &&
          strlen(sent_value(o, "X-Forwarded-Host")) == 299);
    CHECK_SENT(o, "Forwarded", "for=192.0.2.1;proto=http");
    s.req.authority.len = 255;
    o = emit(&s, &r, false, &rc);
    CHECK(strlen(sent_value(o, "Forwarded")) == strlen("for=192.0.2.1;proto=http;host=") + 255);
}

static void test_emit_prefix(void)
{
    const struct http_field in[] = {F("X-Forwarded-Prefix", "/outer//")};
    struct http_stream s = stream_with("10.0.0.9", "h", in, 1);
    struct cfg_route r = route_with(0, "/jenkins", true);
    int rc;
    struct sent *o = emit(&s, &r, false, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(o->n, 1);
    CHECK_SENT(o, "X-Forwarded-Prefix", "/jenkins");
    /* behind a trusted proxy that stripped its own prefix, the bases join (trailing '/' off) */
    o = emit(&s, &r, true, &rc);
    CHECK_SENT(o, "X-Forwarded-Prefix", "/outer/jenkins");
    /* not stripped, or stripping "/": no prefix header */
    r = route_with(0, "/jenkins", false);
    o = emit(&s, &r, true, &rc);
    CHECK_EQ_INT(o->n, 0);
    r = route_with(0, "/", true);
    o = emit(&s, &r, true, &rc);
    CHECK_EQ_INT(o->n, 0);
}

static void test_emit_limits(void)
{
    /* an incoming list too long to extend (past 3.5 KiB) starts over from what we know */
    static char longv[3600];
    memset(longv, '1', sizeof(longv));
    const struct http_field in[] = {{"X-Forwarded-For", longv, 15, sizeof(longv)}};
    struct http_stream s = stream_with("10.0.0.3", "h", in, 1);
    struct cfg_route r = route_with(CFG_FWD_FOR, "/", false);
    int rc;
    struct sent *o = emit(&s, &r, true, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_SENT(o, "X-Forwarded-For", "10.0.0.3");
    /* just under the bound it is extended */
    struct http_field shorter = in[0];
    shorter.value_len = 3000;
    s.req.fields = &shorter;
    o = emit(&s, &r, true, &rc);
    CHECK(strlen(sent_value(o, "X-Forwarded-For")) == 3000 + strlen(", 10.0.0.3"));
    /* a field that does not fit makes the whole emit fail */
    r = route_with(CFG_FWD_ALL, "/", false);
    static struct sent failing;
    memset(&failing, 0, sizeof(failing));
    failing.fail_at = 0;
    CHECK_EQ_INT(forward_emit(&s, &r, true, put, &failing), -1);
    CHECK_EQ_INT(failing.n, 0);
    memset(&failing, 0, sizeof(failing));
    failing.fail_at = 4;
    CHECK_EQ_INT(forward_emit(&s, &r, true, put, &failing), -1);
    CHECK_EQ_INT(failing.n, 4);
}

static void client_of(const char *xff, bool trusted, const char *want)
{
    const struct http_field in[] = {F("Accept", "*/*"),
                                    {"X-Forwarded-For", xff, 15, (uint32_t)strlen(xff)}};
    struct http_stream s = stream_with("10.0.0.1", "h", in, 2);
    const char *addr = NULL;
    size_t len = 0;
    forward_client(&s, trusted, &addr, &len);
    bool ok = addr && len == strlen(want) && memcmp(addr, want, len) == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  X-Forwarded-For \"%s\": got \"%.*s\", want \"%s\"\n", xff, (int)len,
                addr ? addr : "", want);
}

static void test_client(void)
{
    /* untrusted peer: its own address, whatever it claims */
    client_of("203.0.113.5", false, "10.0.0.1");
    /* trusted: the rightmost entry that is not a trusted proxy */
    client_of("203.0.113.5", true, "203.0.113.5");
    client_of("198.51.100.1, 203.0.113.5, 10.2.3.4", true, "203.0.113.5");
    client_of("203.0.113.5,10.2.3.4,  10.9.9.9 ", true, "203.0.113.5");
    /* ports and brackets left out */
    client_of("203.0.113.5:4711, 10.2.3.4", true, "203.0.113.5");
    client_of("[2001:db8::5]:4711", true, "2001:db8::5");
    client_of("[2001:db8::5]", true, "2001:db8::5");
    client_of("2001:db8::5", true, "2001:db8::5");
    /* IPv6 trusted block */
    client_of("2001:db8::5, 2001:db8:1::9", true, "2001:db8::5");
    /* empty elements skipped */
    client_of("203.0.113.5, , 10.2.3.4,", true, "203.0.113.5");
    /* every entry trusted: the leftmost */
    client_of("10.0.0.5, 10.0.0.6", true, "10.0.0.5");
    /* garbage is not a trusted proxy: it is what the client is said to be */
    client_of("unknown, 10.0.0.6", true, "unknown");
    /* an empty list: the peer */
    client_of("", true, "10.0.0.1");
    client_of(" , ", true, "10.0.0.1");
    /* without X-Forwarded-For at all: the peer */
    struct http_stream s = stream_with("10.0.0.1", "h", NULL, 0);
    const char *addr;
    size_t len;
    forward_client(&s, true, &addr, &len);
    CHECK(len == 8 && memcmp(addr, "10.0.0.1", 8) == 0);
    /* several fields: the last one's rightmost untrusted entry wins, earlier fields only when
     * the later ones are all trusted */
    const struct http_field two[] = {F("X-Forwarded-For", "198.51.100.1"),
                                     F("X-Forwarded-For", "203.0.113.5, 10.2.3.4")};
    s = stream_with("10.0.0.1", "h", two, 2);
    forward_client(&s, true, &addr, &len);
    CHECK(len == 11 && memcmp(addr, "203.0.113.5", 11) == 0);
    const struct http_field two_trusted[] = {F("X-Forwarded-For", "198.51.100.1"),
                                             F("X-Forwarded-For", "10.2.3.4")};
    s = stream_with("10.0.0.1", "h", two_trusted, 2);
    forward_client(&s, true, &addr, &len);
    CHECK(len == 12 && memcmp(addr, "198.51.100.1", 12) == 0);
}

int main(void)
{
    test_drops();
    test_emit_untrusted();
    test_emit_trusted();
    test_emit_ipv6();
    test_emit_selection();
    test_emit_prefix();
    test_emit_limits();
    test_client();
    return check_done("forward");
}
