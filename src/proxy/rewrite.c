/* Upstream response field rewriting: internal origins become the public one. See rewrite.h.
 *
 * Every function walks the value once, copying the untouched spans and replacing the ones that
 * name an internal origin. Output goes through `struct rw`, which checks room and control
 * characters on every byte it writes, so no path can overflow or emit CR/LF. */
#include "proxy/rewrite.h"

#include <stdbool.h>
#include <limits.h>
#include <string.h>

/* ---- characters ---------------------------------------------------------------------------- */

/* An if, not ?:, whose char operands would be promoted to int and narrowed back on return. */
static char lower(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return (char)(ch + ('a' - 'A'));
    return ch;
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_ctl(char ch)
{
    return (unsigned char)ch < 0x20 || ch == 0x7f;
}

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool ci_eq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static size_t skip_ws(const char *v, size_t len, size_t i)
{
    while (i < len && is_ws(v[i]))
        i++;
    return i;
}

static size_t trim_ws_end(const char *v, size_t start, size_t end)
{
    while (end > start && is_ws(v[end - 1]))
        end--;
    return end;
}

/* ---- origins ------------------------------------------------------------------------------- */

/* The parts of "scheme://host:port" or "//host:port". A port of -1 means absent or empty, which
 * RFC 3986 section 6.2.3 makes equal to the scheme's default. */
struct origin {
    const char *scheme; /* scheme_len 0 for a scheme-relative URL */
    size_t scheme_len;
    const char *host;
    size_t host_len;
    long port;
    size_t len; /* bytes up to the end of the authority */
};

static long default_port(const char *s, size_t n)
{
    if (ci_eq(s, n, "http", 4) || ci_eq(s, n, "ws", 2))
        return 80;
    if (ci_eq(s, n, "https", 5) || ci_eq(s, n, "wss", 3))
        return 443;
    return -1;
}

/* Port digits (possibly none) into *port; false when not a number up to 65535. */
static bool parse_port(const char *p, size_t n, long *port)
{
    long v = 0;
    *port = -1;
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return false;
        v = v * 10 + (p[i] - '0');
        if (v > 65535)
            return false;
    }
    *port = v;
    return true;
}

/* Host and port of an authority. Userinfo is refused: "http://127.0.0.1:9090@evil/" names the
 * host "evil", and an authority with credentials in it is nothing we should touch. */
static bool parse_authority(const char *a, size_t n, struct origin *o)
{
    size_t h = 0;
    if (n == 0 || memchr(a, '@', n))
        return false;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return false;
        h = (size_t)(close - a) + 1;
    } else {
        const char *colon = memchr(a, ':', n);
        h = colon ? (size_t)(colon - a) : n;
    }
    if (h == 0)
        return false;
    o->host = a;
    o->host_len = h;
    if (h == n)
        return parse_port(a, 0, &o->port);
    return a[h] == ':' && parse_port(a + h + 1, n - h - 1, &o->port);
}

/* Length of a scheme ending in "://" at the start of u, or 0. */
static size_t scheme_span(const char *u, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_alpha(u[0]))
        return 0;
    while (i < n && (is_alpha(u[i]) || is_digit(u[i]) || u[i] == '+' || u[i] == '-' || u[i] == '.'))
        i++;
    if (n - i < 3 || memcmp(u + i, "://", 3) != 0)
        return 0;
    return i;
}

/* The origin at the start of URL u: "scheme://authority" or "//authority", the authority ending
 * at the end, '/', '?' or '#'. False for anything else, relative references included; the
 * first two bytes settle most of those. */
static bool parse_origin(const char *u, size_t n, struct origin *o)
{
    size_t s = 0, a = 0, e;
    if (n < 3 || (u[0] == '/' && u[1] != '/'))
        return false;
    if (u[0] != '/') {
        s = scheme_span(u, n);
        if (s == 0)
            return false;
        a = s + 3;
    } else {
        a = 2;
    }
    e = a;
    while (e < n && u[e] != '/' && u[e] != '?' && u[e] != '#')
        e++;
    o->scheme = u;
    o->scheme_len = s;
    o->len = e;
    return parse_authority(u + a, e - a, o);
}

/* True when URL origin u names internal origin i. A scheme-relative URL takes the internal
 * origin's scheme, as it would when resolved against the upstream's own URL. The host goes
 * first: it is what differs in the common no-match case, and usually by length alone. */
static bool same_origin(const struct origin *u, const struct origin *i)
{
    const struct origin *scheme = u->scheme_len ? u : i;
    if (!ci_eq(u->host, u->host_len, i->host, i->host_len))
        return false;
    if (u->scheme_len && !ci_eq(u->scheme, u->scheme_len, i->scheme, i->scheme_len))
        return false;
    long up = u->port >= 0 ? u->port : default_port(scheme->scheme, scheme->scheme_len);
    long ip = i->port >= 0 ? i->port : default_port(i->scheme, i->scheme_len);
    return up == ip;
}

/* Length of the internal origin at the start of URL u, or 0 when u does not start with one. */
static size_t match_internal(const struct rewrite_ctx *c, const char *u, size_t n)
{
    struct origin uo, io;
    if (!parse_origin(u, n, &uo))
        return 0;
    for (size_t k = 0; k < c->ninternal; k++) {
        const struct rewrite_origin *r = &c->internal[k];
        if (parse_origin(r->p, r->len, &io) && io.scheme_len && same_origin(&uo, &io))
            return uo.len;
    }
    return 0;
}

/* True when host h (no port) is the host of an internal origin. */
static bool internal_host(const struct rewrite_ctx *c, const char *h, size_t n)
{
    struct origin io;
    for (size_t k = 0; k < c->ninternal; k++) {
        const struct rewrite_origin *r = &c->internal[k];
        if (parse_origin(r->p, r->len, &io) && io.scheme_len && ci_eq(h, n, io.host, io.host_len))
            return true;
    }
    return false;
}

/* ---- the public origin --------------------------------------------------------------------- */

/* The public side of a rewrite, checked once before the first edit. The Host and the prefix end
 * up inside URLs, cookie attributes and quoted strings, so only characters that cannot end any
 * of those (no quotes, ';', ',', '<', '>', '@', spaces) are allowed: a hostile Host must not
 * be able to redirect elsewhere or split a field. */
struct pub {
    const char *scheme, *host, *prefix;
    size_t scheme_len, host_len, hostname_len, prefix_len;
};

static bool reg_name_char(char ch)
{
    return is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' ||
           ch == '%';
}

static bool path_char(char ch)
{
    return reg_name_char(ch) || ch == '/' || ch == '!' || ch == '$' || ch == '&' || ch == '(' ||
           ch == ')' || ch == '*' || ch == '+' || ch == '=' || ch == ':';
}

static bool ip_literal_char(char ch)
{
    return is_digit(ch) || (lower(ch) >= 'a' && lower(ch) <= 'f') || ch == ':' || ch == '.';
}

/* Length of the host part of a Host value (an IP literal in brackets or a reg-name), or 0. */
static size_t pub_hostname(const char *h, size_t n)
{
    size_t i = 0;
    if (n > 0 && h[0] == '[') {
        i = 1;
        while (i < n && ip_literal_char(h[i]))
            i++;
        return i > 1 && i < n && h[i] == ']' ? i + 1 : 0;
    }
    while (i < n && reg_name_char(h[i]))
        i++;
    return i;
}

/* The prefix without trailing slashes: "/" and "/app/" mean "" and "/app". */
static size_t trimmed_prefix_len(const struct rewrite_ctx *c)
{
    size_t n = c->prefix_len;
    while (n > 0 && c->prefix[n - 1] == '/')
        n--;
    return n;
}

static bool pub_init(struct pub *p, const struct rewrite_ctx *c)
{
    long port;
    p->scheme = c->scheme;
    p->scheme_len = c->scheme_len;
    p->host = c->host;
    p->host_len = c->host_len;
    p->prefix = c->prefix;
    p->prefix_len = trimmed_prefix_len(c);
    if (p->scheme_len == 0 || !is_alpha(p->scheme[0]))
        return false;
    for (size_t i = 0; i < p->scheme_len; i++)
        if (!is_alpha(p->scheme[i]) && !is_digit(p->scheme[i]))
            return false;
    p->hostname_len = pub_hostname(p->host, p->host_len);
    if (p->hostname_len == 0)
        return false;
    if (p->hostname_len < p->host_len &&
        (p->host[p->hostname_len] != ':' ||
         !parse_port(p->host + p->hostname_len + 1, p->host_len - p->hostname_len - 1, &port)))
        return false;
    if (p->prefix_len > 0 && p->prefix[0] != '/')
        return false;
    for (size_t i = 0; i < p->prefix_len; i++)
        if (!path_char(p->prefix[i]))
            return false;
    return true;
}

/* True when path r starts with the prefix as a whole segment. */
static bool has_prefix(const struct pub *p, const char *r, size_t n)
{
    if (p->prefix_len == 0 || n < p->prefix_len || memcmp(r, p->prefix, p->prefix_len) != 0)
        return false;
    return n == p->prefix_len || r[p->prefix_len] == '/' || r[p->prefix_len] == '?' ||
           r[p->prefix_len] == '#';
}

/* ---- output -------------------------------------------------------------------------------- */

/* One rewrite in progress: value v is copied to out span by span; v[0..done) is handled. The
 * public origin is checked at the first edit only, so values that need none never pay for it. */
struct rw {
    const struct rewrite_ctx *c;
    const char *v;
    size_t len, done;
    char *out;
    size_t cap, n;
    bool edited;
    bool bad; /* no room, a control character, or a malformed public origin */
    struct pub pub;
};

static void rw_init(struct rw *w, const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                    size_t cap)
{
    w->c = c;
    w->v = v;
    w->len = len;
    w->done = 0;
    w->out = out;
    w->cap = cap;
    w->n = 0;
    w->edited = false;
    w->bad = false;
}

static void put(struct rw *w, const char *s, size_t n)
{
    if (w->bad)
        return;
    if (n > w->cap - w->n) {
        w->bad = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (is_ctl(s[i])) {
            w->bad = true;
            return;
        }
        w->out[w->n + i] = s[i];
    }
    w->n += n;
}

/* Starts replacing v[at..end): copies what lies before it. The caller writes the replacement
 * and sets done to end. */
static void rw_edit(struct rw *w, size_t at)
{
    if (!w->edited && !pub_init(&w->pub, w->c))
        w->bad = true;
    w->edited = true;
    put(w, w->v + w->done, at - w->done);
    w->done = at;
}

static ssize_t rw_finish(struct rw *w)
{
    if (!w->edited)
        return 0;
    put(w, w->v + w->done, w->len - w->done);
    if (w->bad || w->n > (size_t)SSIZE_MAX)
        return -1;
    if (w->n == w->len && memcmp(w->out, w->v, w->n) == 0)
        return 0;
    return (ssize_t)w->n;
}

/* Writes the public URL for the part of an internal URL after its origin. */
static void put_public(struct rw *w, const char *rest, size_t n)
{
    const struct pub *p = &w->pub;
    put(w, p->scheme, p->scheme_len);
    put(w, "://", 3);
    put(w, p->host, p->host_len);
    if (p->prefix_len > 0 && !has_prefix(p, rest, n))
        put(w, p->prefix, p->prefix_len);
    else if (n == 0 || rest[0] != '/')
        put(w, "/", 1);
    put(w, rest, n);
}

/* Rewrites the URL in v[a..b) when it starts with an internal origin. */
static void rewrite_url(struct rw *w, size_t a, size_t b)
{
    size_t o = match_internal(w->c, w->v + a, b - a);
    if (o == 0)
        return;
    rw_edit(w, a);
    if (!w->bad)
        put_public(w, w->v + a + o, b - a - o);
    w->done = b;
}

/* ---- Location ------------------------------------------------------------------------------ */

ssize_t rewrite_location(const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                         size_t cap)
{
    struct rw w;
    if (len == 0)
        return 0;
    rw_init(&w, c, v, len, out, cap);
    rewrite_url(&w, 0, len);
    return rw_finish(&w);
}

/* ---- Refresh ------------------------------------------------------------------------------- */

/* The URL of a Refresh value after its delay, following the HTML "shared declarative refresh
 * steps" so that we rewrite exactly what a browser would follow: the delay, then ';' or ',',
 * then "url=" (any case, spaces around '='), then an optional quote that the URL ends at. */
static bool refresh_url(const char *v, size_t len, size_t *a, size_t *b)
{
    size_t i = skip_ws(v, len, 0), start = i;
    while (i < len && is_digit(v[i]))
        i++;
    if (i == start && (i == len || v[i] != '.'))
        return false;
    while (i < len && (is_digit(v[i]) || v[i] == '.'))
        i++;
    if (i < len && !is_ws(v[i]) && v[i] != ';' && v[i] != ',')
        return false;
    i = skip_ws(v, len, i);
    if (i < len && (v[i] == ';' || v[i] == ','))
        i++;
    i = skip_ws(v, len, i);
    if (i == len)
        return false;
    if (lower(v[i]) == 'u') {
        /* "url" without '=' is the start of the URL itself, unquoted. */
        size_t k = len - i >= 3 && ci_eq(v + i, 3, "url", 3) ? skip_ws(v, len, i + 3) : len;
        if (k == len || v[k] != '=') {
            *a = i;
            *b = trim_ws_end(v, i, len);
            return true;
        }
        i = skip_ws(v, len, k + 1);
    }
    char quote = 0;
    if (i < len && (v[i] == '\'' || v[i] == '"'))
        quote = v[i++];
    const char *end = quote ? memchr(v + i, quote, len - i) : NULL;
    *a = i;
    *b = trim_ws_end(v, i, end ? (size_t)(end - v) : len);
    return true;
}

ssize_t rewrite_refresh(const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                        size_t cap)
{
    struct rw w;
    size_t a, b;
    if (!refresh_url(v, len, &a, &b))
        return 0;
    rw_init(&w, c, v, len, out, cap);
    rewrite_url(&w, a, b);
    return rw_finish(&w);
}

/* ---- Link ---------------------------------------------------------------------------------- */

/* Index just past the quoted-string starting at v[i] (a backslash escapes the next byte), or
 * len when it is not closed. */
static size_t skip_quoted(const char *v, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (v[i] == '\\')
            i++;
        else if (v[i] == '"')
            return i + 1;
    }
    return len;
}

/* Index of the comma ending the link-value that covers v[i..), or len. */
static size_t link_value_end(const char *v, size_t len, size_t i)
{
    while (i < len && v[i] != ',')
        i = v[i] == '"' ? skip_quoted(v, len, i) : i + 1;
    return i < len ? i : len;
}

ssize_t rewrite_link(const struct rewrite_ctx *c, const char *v, size_t len, char *out, size_t cap)
{
    struct rw w;
    size_t i = 0;
    if (len == 0)
        return 0;
    rw_init(&w, c, v, len, out, cap);
    while (i < len) {
        /* Only a '<' that opens a list element starts a URI-reference; one inside a parameter
         * is the parameter's business. */
        size_t s = skip_ws(v, len, i), e = s;
        if (s < len && v[s] == '<') {
            const char *gt = memchr(v + s + 1, '>', len - s - 1);
            if (!gt)
                break;
            e = (size_t)(gt - v);
            rewrite_url(&w, s + 1, e);
        }
        i = link_value_end(v, len, e) + 1;
    }
    return rw_finish(&w);
}

/* ---- Set-Cookie ---------------------------------------------------------------------------- */

static void cookie_path(struct rw *w, size_t a, size_t b)
{
    struct pub probe = {.prefix = w->c->prefix, .prefix_len = trimmed_prefix_len(w->c)};
    /* A path not starting with '/' is ignored by the client (RFC 6265 section 5.2.4). */
    if (probe.prefix_len == 0 || a == b || w->v[a] != '/' || has_prefix(&probe, w->v + a, b - a))
        return;
    rw_edit(w, a);
    if (w->bad)
        return;
    put(w, w->pub.prefix, w->pub.prefix_len);
    if (b - a > 1)
        put(w, w->v + a, b - a);
    w->done = b;
}

static void cookie_domain(struct rw *w, size_t a, size_t b)
{
    /* A leading dot is ignored by the client (RFC 6265 section 5.2.3). */
    size_t d = a < b && w->v[a] == '.' ? a + 1 : a;
    if (d == b || !internal_host(w->c, w->v + d, b - d))
        return;
    rw_edit(w, a);
    if (w->bad)
        return;
    put(w, w->pub.host, w->pub.hostname_len);
    w->done = b;
}

/* One "name=value" attribute in v[a..b). */
static void cookie_attr(struct rw *w, size_t a, size_t b)
{
    const char *v = w->v;
    const char *eq = memchr(v + a, '=', b - a);
    if (!eq)
        return;
    size_t ns = skip_ws(v, b, a), e = (size_t)(eq - v);
    size_t ne = trim_ws_end(v, ns, e);
    size_t vs = skip_ws(v, b, e + 1), ve = trim_ws_end(v, vs, b);
    if (ci_eq(v + ns, ne - ns, "path", 4))
        cookie_path(w, vs, ve);
    else if (ci_eq(v + ns, ne - ns, "domain", 6))
        cookie_domain(w, vs, ve);
}

ssize_t rewrite_set_cookie(const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                           size_t cap)
{
    struct rw w;
    /* The first pair is the cookie's own name=value and is never touched. */
    const char *semi = len ? memchr(v, ';', len) : NULL;
    if (!semi)
        return 0;
    rw_init(&w, c, v, len, out, cap);
    for (size_t i = (size_t)(semi - v) + 1; i <= len;) {
        const char *next = memchr(v + i, ';', len - i);
        size_t end = next ? (size_t)(next - v) : len;
        cookie_attr(&w, i, end);
        i = end + 1;
    }
    return rw_finish(&w);
}
