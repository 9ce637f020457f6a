/* The admin endpoints (see admin.h). The status document is built in a growing buffer and sent
 * in slices the codec copies at once (SEND_COPY_MAX), so nothing of ours must outlive the call:
 * the page is small, asked for rarely, and never on the request path of a site. */
#include "serve/admin.h"

#include "config/config.h"
#include "config/config_apps.h"
#include "core/worker.h"
#include "http/request.h"
#include "http/respond.h"
#include "proxy/tunnel.h"
#include "proxy/upstate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- a JSON text in a growing buffer ------------------------------------------------------ */

struct jbuf {
    char *p;
    size_t len, cap;
    bool oom; /* once set, further writes are dropped and the page is a 500 */
};

static bool jb_room(struct jbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    if (jb_room(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

__attribute__((format(printf, 2, 3))) static void jb_printf(struct jbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        jb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The length of the valid UTF-8 sequence at p (at most n bytes), or 0: no overlong forms, no
 * surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    unsigned lo = 0x80, hi = 0xbf;

    if (p[0] < 0xc2 || p[0] > 0xf4 || n < len)
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* A JSON string of the first `max` bytes of s (up to its NUL): quotes, backslashes and control
 * characters escaped, invalid UTF-8 replaced by U+FFFD, so any bytes give a valid document. */
static void jb_str(struct jbuf *b, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = s ? strnlen(s, max) : 0;

    jb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        jb_put(b, (const char *)p + i, run - i);
        if ((i = run) == n)
            break;
        size_t u = p[i] >= 0x80 ? utf8_len(p + i, n - i) : 0;
        if (u) {
            jb_put(b, (const char *)p + i, u);
            i += u;
        } else if (p[i] == '"' || p[i] == '\\') {
            jb_printf(b, "\\%c", p[i++]);
        } else if (p[i] >= 0x80) {
            jb_put(b, "\\ufffd", 6);
            i++;
        } else {
            jb_printf(b, "\\u%04x", p[i++]);
        }
    }
    jb_put(b, "\"", 1);
}

/* ---- the status document ------------------------------------------------------------------ */

static const char *const balance_names[] = {
    [CFG_BAL_ROUND_ROBIN] = "round_robin",
    [CFG_BAL_LEAST_REQUESTS] = "least_requests",
    [CFG_BAL_POWER_OF_TWO] = "power_of_two",
    [CFG_BAL_HASH] = "hash",
};

/* Down (active checks) wins over ejected (passive), which wins over backup. */
static const char *server_state(const struct cfg_upstream *u, size_t i, struct upsrv *v,
                                uint64_t now)
{
    if (atomic_load(&v->health) == UPSRV_DOWN)
        return "down";
    if (atomic_load(&v->ejected_until_ms) > now)
        return "ejected";
    if (u->policies[i].drain)
        return "draining";
    return u->policies[i].backup ? "backup" : "up";
}

static void status_server(struct jbuf *b, const struct cfg_upstream *u, size_t i, uint64_t now)
{
    static struct upsrv none; /* a snapshot without state (never live): all zero */
    struct upsrv *v = u->state ? u->state->servers[i] : &none;
    char err[sizeof v->last_error];

    /* Written by other threads as we read: copy, and terminate whatever we got. */
    memcpy(err, v->last_error, sizeof err);
    err[sizeof err - 1] = '\0';
    jb_put(b, "{\"address\": ", 12);
    jb_str(b, u->servers[i].text, 300);
    jb_printf(b, ", \"state\": \"%s\", \"weight\": %u, \"backup\": %s", server_state(u, i, v, now),
              u->policies[i].weight, u->policies[i].backup ? "true" : "false");
    jb_printf(b, ", \"active\": %u, \"requests\": %llu, \"failures\": %llu",
              atomic_load(&v->inflight), (unsigned long long)atomic_load(&v->requests),
              (unsigned long long)atomic_load(&v->failures));
    jb_printf(b, ", \"recent_failures\": %u", upstate_recent_failures(v, now));
    jb_printf(b, ", \"consecutive_failures\": %u, \"last_error\": ",
              atomic_load(&v->consecutive_failures));
    jb_str(b, err, sizeof err);
    jb_printf(b, ", \"checks\": {\"ok_in_a_row\": %u, \"failed_in_a_row\": %u}}",
              atomic_load(&v->check_ok), atomic_load(&v->check_fail));
}

/* An app upstream (config/config_apps.h): what its supervisor says. */
static void status_app(struct jbuf *b, const struct app_link *l)
{
    char last[sizeof l->last_exit];

    memcpy(last, l->last_exit, sizeof last); /* racy text: copied, then terminated */
    last[sizeof last - 1] = '\0';
    jb_printf(b,
              ", \"app\": {\"state\": \"%s\", \"ready\": %u, \"running\": %u, \"starts\": %u, "
              "\"crashes\": %u, \"replaced\": %llu, \"waiting\": %u, \"last_exit\": ",
              app_state_name(atomic_load(&l->state)), atomic_load(&l->ready),
              atomic_load(&l->running), atomic_load(&l->starts), atomic_load(&l->crashes),
              (unsigned long long)atomic_load(&l->replaced), atomic_load(&l->waiting));
    jb_str(b, last, sizeof last);
    jb_put(b, "}", 1);
}

static void status_upstream(struct jbuf *b, const struct cfg_upstream *u, uint64_t now)
{
    jb_put(b, "{\"name\": ", 9);
    jb_str(b, u->name, 300);
    jb_printf(b, ", \"balance\": \"%s\", \"queued\": %u, \"health_check\": %s",
              balance_names[u->balance], u->state ? atomic_load(&u->state->queued) : 0,
              !u->health_check.enabled                 ? "null"
              : u->health_check.type == CFG_CHECK_HTTP ? "\"http\""
                                                       : "\"tcp\"");
    if (u->app && u->app->link)
        status_app(b, u->app->link);
    jb_put(b, ", \"servers\": [", 14);
    for (size_t i = 0; i < u->nservers; i++) {
        if (i)
            jb_put(b, ", ", 2);
        status_server(b, u, i, now);
    }
    jb_put(b, "]}", 2);
}

static void status_document(struct jbuf *b, const struct config *c, unsigned tunnels, uint64_t now)
{
    /* Upgraded connections (WebSocket) are counted apart: they are not requests in flight. */
    jb_printf(b, "{\"tunnels\": %u, \"upstreams\": [", tunnels);
    for (size_t i = 0; i < c->nupstreams; i++) {
        if (i)
            jb_put(b, ", ", 2);
        status_upstream(b, &c->upstreams[i], now);
    }
    jb_put(b, "]}\n", 3);
}

/* ---- answering ---------------------------------------------------------------------------- */

static void send_json(struct http_stream *s, const char *body, size_t len)
{
    const struct http_field fields[] = {
        {"Content-Type", "application/json", 12, 16},
        {"Cache-Control", "no-store", 13, 8},
    };
    struct http_response res = {
        .status = 200, .fields = fields, .nfields = 2, .content_length = (int64_t)len};
    /* send_end is called whatever happens: it is what detaches us from the stream. */
    if (handler_send_head(s, &res) != SEND_ERROR) {
        for (size_t off = 0; off < len;) {
            size_t n = len - off < SEND_COPY_MAX ? len - off : SEND_COPY_MAX;
            if (s->ops->send_body(s, body + off, n) == SEND_ERROR)
                break;
            off += n;
        }
    }
    s->ops->send_end(s);
}

static bool slice_is(struct slice v, const char *lit)
{
    return v.len == strlen(lit) && memcmp(v.p, lit, v.len) == 0;
}

/* The host of an authority without its port (brackets kept) and one trailing dot. */
static struct slice host_part(struct slice a)
{
    if (!a.len)
        return a; /* no Host: p may be NULL */
    const char *end = a.len && a.p[0] == '[' ? memchr(a.p, ']', a.len) : NULL;
    size_t n = end ? (size_t)(end - a.p) + 1 : a.len;
    const char *colon = end ? NULL : memchr(a.p, ':', a.len);
    if (colon)
        n = (size_t)(colon - a.p);
    if (!end && n && a.p[n - 1] == '.')
        n--;
    return (struct slice){a.p, n};
}

static bool is_ip_literal(struct slice h)
{
    char text[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    bool v6 = h.len >= 2 && h.p[0] == '[' && h.p[h.len - 1] == ']';
    struct slice in = v6 ? (struct slice){h.p + 1, h.len - 2} : h;

    if (!in.len || in.len >= sizeof text)
        return false;
    memcpy(text, in.p, in.len);
    text[in.len] = '\0';
    return inet_pton(v6 ? AF_INET6 : AF_INET, text, addr) == 1;
}

bool admin_host_allowed(const struct cfg_listener *l, const char *authority, size_t len)
{
    struct slice h = host_part((struct slice){authority, len});
    if (is_ip_literal(h))
        return true;
    for (size_t i = 0; l && i < l->nadmin_hosts; i++) {
        const char *name = l->admin_hosts[i];
        if (strlen(name) == h.len && strncasecmp(name, h.p, h.len) == 0)
            return true;
    }
    return false;
}

/* POST /apps/NAME/restart: the app is replaced blue-green (or started again when rapid-fail
 * protection stopped it). 202: the supervisor does it on its own time. */
static void admin_app_action(struct http_stream *s, struct slice rest)
{
    static const char suffix[] = "/restart";
    const struct config *c = s->config;
    const size_t slen = sizeof suffix - 1;
    if (rest.len <= slen || memcmp(rest.p + rest.len - slen, suffix, slen) != 0) {
        http_respond_text(s, 404, NULL);
        return;
    }
    struct slice name = {rest.p, rest.len - slen};
    const struct cfg_upstream *u = NULL;
    for (size_t i = 0; i < c->nupstreams && !u; i++)
        if (slice_is(name, c->upstreams[i].name) && c->upstreams[i].app)
            u = &c->upstreams[i];
    if (!u || !u->app->link) {
        http_respond_text(s, 404, NULL);
        return;
    }
    if (!slice_is(s->req.method, "POST")) {
        static const struct http_field allow = {"Allow", "POST", 5, 4};
        http_respond(s, 405, "text/plain; charset=utf-8", "405 Method Not Allowed\n", 23, &allow,
                     1);
        return;
    }
    atomic_store(&u->app->link->restart, 1);
    app_link_wake(u->app->link);
    log_msg(&s->worker->srv->log, LOG_INFO, "client %s: admin: restart of app %s", s->peer,
            u->name);
    char body[160];
    int n =
        snprintf(body, sizeof body, "{\"app\": \"%.64s\", \"restart\": \"requested\"}\n", u->name);
    http_respond(s, 202, "application/json", body, (size_t)n, NULL, 0);
}

void admin_handle(struct http_stream *s)
{
    const struct http_request *r = &s->req;
    struct jbuf b = {0};

    /* DNS rebinding: a web page whose name the attacker points at this address afterwards
     * reads /status as same-origin, sending its own name as Host. */
    const struct config *c = s->config;
    const struct cfg_listener *l =
        s->listener >= 0 && (size_t)s->listener < c->nlisteners ? &c->listeners[s->listener] : NULL;
    if (!admin_host_allowed(l, r->authority.p, r->authority.len)) {
        log_msg(&s->worker->srv->log, LOG_INFO,
                "client %s: 421: Host '%.*s' is not an IP address or in admin.hosts", s->peer,
                (int)(r->authority.len < 256 ? r->authority.len : 256), r->authority.p);
        http_respond_text(s, 421, NULL);
        return;
    }

    if (r->path.len > 6 && !memcmp(r->path.p, "/apps/", 6)) {
        admin_app_action(s, (struct slice){r->path.p + 6, r->path.len - 6});
        return;
    }
    if (!slice_is(r->path, "/status")) {
        http_respond_text(s, 404, NULL);
        return;
    }
    if (!slice_is(r->method, "GET") && !slice_is(r->method, "HEAD")) {
        static const struct http_field allow = {"Allow", "GET, HEAD", 5, 9};
        http_respond(s, 405, "text/plain; charset=utf-8", "405 Method Not Allowed\n", 23, &allow,
                     1);
        return;
    }
    status_document(&b, s->config, tunnel_count(s->worker->srv), s->worker->loop.now);
    if (b.oom)
        http_respond_text(s, 500, NULL);
    else
        send_json(s, b.p, b.len);
    free(b.p);
}
