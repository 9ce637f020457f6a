#include "proxy/forward.h"

#include "config/config.h"
#include "http/token.h"
#include "http/request.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

enum fwd_kind { FWD_NONE, FWD_FOR, FWD_PROTO, FWD_HOST, FWD_PORT, FWD_FORWARDED, FWD_PREFIX };

static enum fwd_kind kind_of(const char *name, size_t len)
{
    if (len == 9 && http_token_eq(name, len, "forwarded", 9))
        return FWD_FORWARDED;
    if (len < 12 || !http_token_eq(name, 12, "x-forwarded-", 12))
        return FWD_NONE;
    const char *t = name + 12;
    size_t n = len - 12;
    if (http_token_eq(t, n, "for", 3))
        return FWD_FOR;
    if (http_token_eq(t, n, "proto", 5))
        return FWD_PROTO;
    if (http_token_eq(t, n, "host", 4))
        return FWD_HOST;
    if (http_token_eq(t, n, "port", 4))
        return FWD_PORT;
    if (http_token_eq(t, n, "prefix", 6))
        return FWD_PREFIX;
    return FWD_NONE;
}

static unsigned bit_of(enum fwd_kind k)
{
    switch (k) {
    case FWD_FOR:
        return CFG_FWD_FOR;
    case FWD_PROTO:
        return CFG_FWD_PROTO;
    case FWD_HOST:
        return CFG_FWD_HOST;
    case FWD_PORT:
        return CFG_FWD_PORT;
    case FWD_FORWARDED:
        return CFG_FWD_FORWARDED;
    default:
        return 0;
    }
}

static bool prefix_sent(const struct cfg_route *route)
{
    return route->strip_prefix && !(route->path_len == 1 && route->path[0] == '/');
}

bool forward_drops(const char *name, size_t len, bool trusted, const struct cfg_route *route)
{
    enum fwd_kind k = kind_of(name, len);
    if (k == FWD_NONE)
        return false;
    if (!trusted)
        return true; /* forged or not, an untrusted peer's claims are never passed on */
    if (k == FWD_PREFIX)
        return prefix_sent(route);
    return (route->forward_headers & bit_of(k)) != 0; /* we send a combined value instead */
}

/* All values of one incoming field, comma-joined into out (the list form RFC 9110 allows). */
static size_t incoming(const struct http_request *r, enum fwd_kind k, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (kind_of(f->name, f->name_len) != k || !f->value_len)
            continue;
        if (n + f->value_len + 2 > cap)
            return 0; /* absurdly long: start over from what we know */
        if (n) {
            memcpy(out + n, ", ", 2);
            n += 2;
        }
        memcpy(out + n, f->value, f->value_len);
        n += f->value_len;
    }
    return n;
}

/* A bounded text being built: appends past `cap` are dropped and remembered in `over`, so
 * the callers format without snprintf (this runs for every proxied request). */
struct text {
    char *p;
    size_t n, cap;
    bool over;
};

static void text_put(struct text *t, const char *s, size_t n)
{
    if (n > t->cap - t->n) {
        t->over = true;
        return;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
}

static void text_str(struct text *t, const char *s)
{
    text_put(t, s, strlen(s));
}

/* RFC 7239 node and host values: a token stays bare; IPv6 (in brackets) and host:port must be
 * a quoted-string. */
static void text_node(struct text *t, const char *v, size_t len, bool ipv6)
{
    bool quote = ipv6 || memchr(v, ':', len) || memchr(v, '[', len);
    if (quote)
        text_put(t, "\"", 1);
    if (ipv6)
        text_put(t, "[", 1);
    text_put(t, v, len);
    if (ipv6)
        text_put(t, "]", 1);
    if (quote)
        text_put(t, "\"", 1);
}

struct emit {
    const struct http_stream *s;
    const struct cfg_route *route;
    bool trusted;
    forward_put_fn put;
    void *ctx;
};

/* Send `ours` (len bytes), after the trusted incoming value when `append`, or the trusted
 * incoming value in place of ours when not. */
static int emit_field(const struct emit *e, enum fwd_kind k, const char *name, size_t nlen,
                      const char *ours, size_t len, bool append)
{
    char buf[4096];
    size_t n = e->trusted ? incoming(&e->s->req, k, buf, sizeof(buf) - 512) : 0;
    if (n && !append)
        return e->put(e->ctx, name, nlen, buf, n);
    if (n) {
        struct text t = {buf, n, sizeof(buf), false};
        text_put(&t, ", ", 2);
        text_put(&t, ours, len);
        return e->put(e->ctx, name, nlen, buf, t.n);
    }
    return e->put(e->ctx, name, nlen, ours, len);
}

#define EMIT(e, k, name, ours, len, append)                                                        \
    emit_field(e, k, name, sizeof(name) - 1, ours, len, append)

static int emit_forwarded(const struct emit *e, const char *proto)
{
    const struct http_stream *s = e->s;
    char elem[600];
    struct text t = {elem, 0, sizeof(elem), false};
    text_put(&t, "for=", 4);
    text_node(&t, s->peer, strlen(s->peer), strchr(s->peer, ':') != NULL);
    text_put(&t, ";proto=", 7);
    text_str(&t, proto);
    const struct slice host = s->req.authority;
    if (host.len && host.len < 256) {
        text_put(&t, ";host=", 6);
        text_node(&t, host.p, host.len, false);
    }
    return EMIT(e, FWD_FORWARDED, "Forwarded", elem, t.n, true);
}

static int emit_prefix(const struct emit *e)
{
    char buf[1024];
    const size_t plen = e->route->path_len;
    size_t n = e->trusted ? incoming(&e->s->req, FWD_PREFIX, buf, sizeof(buf) - 512) : 0;
    /* Behind another proxy that stripped its own prefix, the path base is both joined. */
    while (n && buf[n - 1] == '/')
        n--;
    struct text t = {buf, n, sizeof(buf), false};
    text_put(&t, e->route->path, plen < 511 ? plen : 511);
    return e->put(e->ctx, "X-Forwarded-Prefix", 18, buf, t.n);
}

int forward_emit(const struct http_stream *s, const struct cfg_route *route, bool trusted,
                 forward_put_fn put, void *ctx)
{
    const struct emit e = {s, route, trusted, put, ctx};
    const unsigned want = route->forward_headers;
    const char *proto = s->secure ? "https" : "http";
    const struct slice host = s->req.authority;
    int rc = 0;
    if (want & CFG_FWD_FOR)
        rc |= EMIT(&e, FWD_FOR, "X-Forwarded-For", s->peer, strlen(s->peer), true);
    if (want & CFG_FWD_PROTO)
        rc |= EMIT(&e, FWD_PROTO, "X-Forwarded-Proto", proto, strlen(proto), false);
    if ((want & CFG_FWD_HOST) && host.len && host.len < 300)
        rc |= EMIT(&e, FWD_HOST, "X-Forwarded-Host", host.p, host.len, false);
    if (want & CFG_FWD_PORT) {
        char port[HTTP_NUM_MAX];
        rc |=
            EMIT(&e, FWD_PORT, "X-Forwarded-Port", port, http_fmt_dec(port, s->local_port), false);
    }
    if (want & CFG_FWD_FORWARDED)
        rc |= emit_forwarded(&e, proto);
    if (prefix_sent(route))
        rc |= emit_prefix(&e);
    return rc ? -1 : 0;
}

/* ---- the forwarded client's address ---- */

/* One X-Forwarded-For entry: "192.0.2.1", "192.0.2.1:4711", "2001:db8::1", "[2001:db8::1]" or
 * "[2001:db8::1]:4711". Stores the address part in *addr and whether it is a trusted proxy. */
static void xff_entry(const struct config *c, const char *p, size_t n, struct slice *addr,
                      bool *trusted)
{
    const char *colon = memchr(p, ':', n);
    *addr = (struct slice){p, n};
    *trusted = false;
    if (n && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close)
            *addr = (struct slice){p + 1, (size_t)(close - p - 1)};
    } else if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - p))) {
        *addr = (struct slice){p, (size_t)(colon - p)}; /* IPv4 with a port */
    }
    char text[INET6_ADDRSTRLEN];
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    struct sockaddr_in sin = {.sin_family = AF_INET};
    if (!addr->len || addr->len >= sizeof text)
        return;
    memcpy(text, addr->p, addr->len);
    text[addr->len] = '\0';
    if (inet_pton(AF_INET, text, &sin.sin_addr) == 1)
        *trusted = config_cidr_match(c->trusted_proxies, c->ntrusted_proxies,
                                     (const struct sockaddr *)&sin);
    else if (inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1)
        *trusted = config_cidr_match(c->trusted_proxies, c->ntrusted_proxies,
                                     (const struct sockaddr *)&sin6);
}

/* Walks the entries of one field right to left. True when *out is the client (an entry that
 * is not a trusted proxy); else *out is the leftmost trusted entry seen so far. */
static bool xff_field(const struct config *c, const struct http_field *f, struct slice *out)
{
    const char *end = f->value + f->value_len;
    while (end > f->value) {
        const char *start = end;
        while (start > f->value && start[-1] != ',')
            start--;
        const char *a = start, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        end = start > f->value ? start - 1 : f->value;
        if (a == b)
            continue; /* an empty list element */
        bool trusted;
        xff_entry(c, a, (size_t)(b - a), out, &trusted);
        if (!trusted)
            return true;
    }
    return false;
}

void forward_client(const struct http_stream *s, bool trusted, const char **addr, size_t *len)
{
    struct slice found = {NULL, 0};
    *addr = s->peer;
    *len = s->peer ? strlen(s->peer) : 0;
    if (!trusted)
        return;
    const struct http_request *r = &s->req;
    for (size_t i = r->nfields; i-- > 0;) {
        const struct http_field *f = &r->fields[i];
        if (kind_of(f->name, f->name_len) == FWD_FOR && xff_field(s->config, f, &found))
            break;
    }
    if (found.len) {
        *addr = found.p;
        *len = found.len;
    }
}
