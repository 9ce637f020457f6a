/* The proxy handler: forwards one exchange to an upstream over a pooled HTTP/1.1 connection.
 * Both directions stream: request body slices go from the client's buffer straight to the
 * upstream socket, response body slices from the upstream's buffer straight to the client;
 * whichever side is slower stops the other from reading (back-pressure).
 *
 * An upgrade request (req.upgrade: WebSocket and the like, or an HTTP/2 extended CONNECT) goes
 * out on a fresh connection with Upgrade and Connection: Upgrade, and is never retried; a 101
 * hands the client stream and that connection to a tunnel (tunnel.h). Any other answer is an
 * ordinary response, after which the connection is closed. */
#include "proxy/proxy.h"

#include "config/config.h"
#include "config/config_apps.h"
#include "core/bug.h"
#include "core/worker.h"
#include "http/fields.h"
#include "http/h1_client.h"
#include "http/h1_parse.h"
#include "http/hop.h"
#include "http/request.h"
#include "http/respond.h"
#include "http/token.h"
#include "proxy/forward.h"
#include "proxy/rewrite.h"
#include "proxy/tunnel.h"
#include "proxy/upstate.h"
#include "proxy/upstream.h"
#include "proxy/ws_key.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROXY_MAX_FIELDS 256

struct proxy {
    struct http_stream *s; /* gone once `dead`: the stream may be freed before we are */
    struct worker *w;
    struct upool *pool;
    struct upconn *uc;
    const struct cfg_upstream *up;
    char addr[128];
    bool head_received; /* final response head seen */
    bool any_response;  /* any response byte seen on this connection */
    bool retried;
    bool req_sent;        /* request head and body fully written */
    bool body_end_queued; /* last chunk queued, waiting for the flush */
    bool chunked_up;      /* request body goes chunked to the upstream */
    bool waiting_body;    /* read_body said AGAIN */
    bool client_blocked;  /* send_body said PENDING */
    uint64_t sent_before; /* uc->out.sent when this request started on the connection */
    bool up_keepalive;    /* the upstream lets us reuse the connection after this response */
    bool upgrade;         /* the request asks to switch protocols (req.upgrade) */
    bool dead;            /* released; memory goes at the end of the loop turn */
    int bad_status;       /* a status passive_health.statuses counts as a failure, else 0 */
    /* Server choice (upstate.h): the current attempt's server until its verdict, -1 after. */
    int server;
    unsigned attempts;
    uint64_t first_attempt_ms;
    uint64_t tried[CFG_MAX_SERVERS / 64];
    /* Waiting in the upstream's queue for a server under max_conns: retried every tick. */
    bool queued;
    uint64_t queue_deadline;
    struct ev_timer queue_timer;
    /* Waiting for an app upstream's first ready instance (on-demand start, restart): polled
     * on queue_timer too; app_link is the app's, counted in its `waiting`. */
    struct app_link *app_waiting;
    struct app_link *app_active; /* counted in its `active` until we are freed (idle_stop) */
    uint64_t app_deadline;
    bool app_unavailable; /* the app cannot serve now: the 503 carries Retry-After */
    /* sticky: the Set-Cookie naming the chosen server, when the client's cookie did not. */
    bool set_sticky;
    char sticky_set[192];
    /* An extended CONNECT for a WebSocket: the key we send the upstream, else "". */
    char ws_key[WS_KEY_LEN + 1];
    struct ev_defer free_defer;
    const char *up_slice; /* request body slice being written upstream */
    size_t up_slice_len;
    size_t down_slice_len;          /* response bytes handed to the client, not yet consumed */
    struct h1_client_body res_body; /* the response body's framing */
    struct h1_header hdrs[PROXY_MAX_FIELDS];
    struct http_field fields[PROXY_MAX_FIELDS + 1]; /* + Set-Cookie for sticky */
    char rewritten[8192]; /* response field values rewritten to public URLs */
};

static const struct http_handler_ops proxy_handler_ops;
static void proxy_on_upconn(struct upconn *uc, enum upconn_event ev);
static void pump_request(struct proxy *p);
static void pump_response(struct proxy *p);

static size_t buf_len_of(const struct upconn *uc)
{
    return uc->in ? buf_len(uc->in) : 0;
}

static struct logger *proxy_log(struct proxy *p)
{
    return &p->w->srv->log;
}

size_t proxy_object_size(void)
{
    return sizeof(struct proxy);
}

/* The verdict on the current attempt, once: passive health and requests in flight. */
static void attempt_done(struct proxy *p, enum upstate_result res, const char *why)
{
    if (p->server < 0 || !p->up->state)
        return;
    upstate_done(p->up->state, (size_t)p->server, res, why, p->w->loop.now, proxy_log(p));
    p->server = -1;
}

static void queue_leave(struct proxy *p)
{
    if (!p->queued)
        return;
    p->queued = false;
    ev_timer_stop(&p->w->loop, &p->queue_timer);
    upstate_queue_leave(p->up->state);
}

static void app_wait_leave(struct proxy *p)
{
    if (!p->app_waiting)
        return;
    atomic_fetch_sub(&p->app_waiting->waiting, 1);
    p->app_waiting = NULL;
    ev_timer_stop(&p->w->loop, &p->queue_timer);
}

static void proxy_on_free(struct ev_defer *d)
{
    struct proxy *p = container_of(d, struct proxy, free_defer);
    GH_BUG_ON(!p->dead); /* only proxy_free queues this, after it marked the exchange dead */
    freelist_put(&p->w->proxies, p);
}

/* Release everything now but the memory, which goes after this loop turn: callers up the
 * stack may still look at p->dead. */
static void proxy_free(struct proxy *p)
{
    if (p->dead)
        return;
    p->dead = true;
    attempt_done(p, UPSTATE_NEUTRAL, NULL);
    queue_leave(p);
    app_wait_leave(p);
    if (p->app_active) { /* idle_stop counts from the end of the last request */
        atomic_store_explicit(&p->app_active->last_request_ms, p->w->loop.now,
                              memory_order_relaxed);
        atomic_fetch_sub(&p->app_active->active, 1);
        p->app_active = NULL;
    }
    if (p->uc)
        upconn_close(p->uc);
    p->uc = NULL;
    upool_drop(p->pool);
    ev_defer(&p->w->loop, &p->free_defer);
}

/* Before any response byte went to the client: answer with an error of our own. */
static void proxy_fail(struct proxy *p, int status, const char *what)
{
    log_msg(proxy_log(p), status == 504 ? LOG_WARN : LOG_ERROR, "upstream %s (%s): %s -> %d",
            p->up->name, p->addr, what, status);
    struct http_stream *s = p->s;
    bool head_sent = p->head_received;
    proxy_free(p);
    if (head_sent) {
        s->ops->abort(s); /* the client already has a head: the body can only be cut off */
        return;
    }
    s->handler = NULL;
    if (status == 503 && p->app_unavailable) {
        /* An app starting, restarting or stopped after crashes: worth asking again soon. */
        static const struct http_field retry = {
            .name = "Retry-After", .name_len = 11, .value = "5", .value_len = 1};
        static const char body[] = "503 Service Unavailable\n";
        http_respond(s, 503, "text/plain; charset=utf-8", body, sizeof body - 1, &retry, 1);
        return;
    }
    http_respond_text(s, status, NULL);
}

/* The server failed this exchange (not the client, not us): passive health hears of it. */
static void upstream_failed(struct proxy *p, int status, const char *what)
{
    attempt_done(p, UPSTATE_FAILED, what);
    proxy_fail(p, status, what);
}

/* ---- request head ------------------------------------------------------------------------- */

/* A NUL-terminated copy of src, cut to fit. */
static void set_text(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool replaced_field(const struct proxy *p, const struct hop_set *hop, bool trusted,
                           const struct http_field *f);

/* The last chunk, with the client's trailer fields when it sent any (HTTP/2 trailers). A field
 * we set or replace in the head (forwarding headers, the secret, Host...) or that RFC 9110
 * section 6.5.1 keeps out of trailers is dropped: an upstream that merges trailers into the head
 * would believe it. The client is treated as untrusted here: trailers never extend. */
static void put_last_chunk(struct proxy *p)
{
    struct http_stream *s = p->s;
    struct hop_set hop;
    hop_collect(&hop, s->req.fields, s->req.nfields);
    h1_client_put_last_chunk(&p->uc->out, &s->worker->bufs);
    for (size_t i = 0; i < s->req.ntrailers; i++) {
        const struct http_field *f = &s->req.trailers[i];
        if (hop_trailer_forbidden(f->name, f->name_len) || replaced_field(p, &hop, false, f))
            continue;
        h1_client_put_field(&p->uc->out, &s->worker->bufs, f->name, f->name_len, f->value,
                            f->value_len);
    }
    h1_client_put_end(&p->uc->out, &s->worker->bufs);
}

/* The request line, end-to-end fields, and our framing. */
/* The path the upstream sees: without the route's prefix when strip_prefix is on. The prefix
 * ends where the router found it (it may be written "/Admin;x" for the route /admin); a rest
 * that starts with an encoded slash stays encoded, after a '/' the caller puts first. */
static struct slice upstream_path(const struct http_stream *s)
{
    const struct http_request *r = &s->req;
    if (!s->route->strip_prefix || s->route->path_len <= 1 || s->path_rest > r->path.len)
        return r->path;
    struct slice rest = {r->path.p + s->path_rest, r->path.len - s->path_rest};
    return rest.len ? rest : SLICE_LIT("/");
}

/* On an mTLS listener, the field that carries the verified client subject to the upstream. */
static const char *client_subject_header(const struct http_stream *s)
{
    const struct config *c = s->config;
    if (s->listener < 0 || (size_t)s->listener >= c->nlisteners)
        return NULL;
    const struct cfg_tls *tls = c->listeners[s->listener].tls;
    return tls && tls->client_ca ? tls->client_subject_header : NULL;
}

/* Fields of the client's request that are not passed on as they came. */
static bool replaced_field(const struct proxy *p, const struct hop_set *hop, bool trusted,
                           const struct http_field *f)
{
    const struct cfg_route *route = p->s->route;
    const struct cfg_upstream *up = p->up;
    if (hop_is_hop(hop, f->name, f->name_len) ||
        http_token_eq(f->name, f->name_len, "content-length", 14) ||
        http_token_eq(f->name, f->name_len, "expect", 6) ||
        forward_drops(f->name, f->name_len, trusted, route) ||
        fields_rule_drops(&route->request_headers, f->name, f->name_len))
        return true;
    if (up->secret_name && strlen(up->secret_name) == f->name_len &&
        strncasecmp(up->secret_name, f->name, f->name_len) == 0)
        return true; /* only we may send the secret */
    if (up->app && http_token_eq(f->name, f->name_len, "x-gatehouse-app-token", 21))
        return true; /* the pairing token says the request came through us */
    if (p->ws_key[0] && http_token_eq(f->name, f->name_len, "sec-websocket-key", 17))
        return true; /* the key is ours: we check the upstream's answer to it */
    const char *subject_header = client_subject_header(p->s);
    if (subject_header && strlen(subject_header) == f->name_len &&
        strncasecmp(subject_header, f->name, f->name_len) == 0)
        return true; /* only the verified certificate speaks for the client */
    /* RFC 9112 section 3.2.2: an absolute-form target's authority replaces Host; a route may
     * also send the upstream's own name. */
    if (http_token_eq(f->name, f->name_len, "host", 4))
        return p->s->req.authority_in_target || route->host_header == CFG_HOST_UPSTREAM;
    return false;
}

static int put_field_cb(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct proxy *p = ctx;
    return h1_client_put_field(&p->uc->out, &p->w->bufs, name, nlen, value, vlen);
}

static int put_host(struct proxy *p)
{
    const struct http_request *r = &p->s->req;
    if (p->s->route->host_header == CFG_HOST_UPSTREAM || !r->authority.len) {
        /* The server as written: a name stays a name, never the address it resolved to. */
        const char *host = p->up->servers[p->uc->server].host;
        return h1_client_put_field(&p->uc->out, &p->w->bufs, "Host", 4, host, strlen(host));
    }
    return h1_client_put_field(&p->uc->out, &p->w->bufs, "Host", 4, r->authority.p,
                               r->authority.len);
}

/* The switch the client asked for, as an HTTP/1.1 upstream expects it: the client's own Upgrade
 * and Connection fields are hop-by-hop and were left out (with anything else Connection named),
 * so these are the only ones that cross. */
static int put_upgrade_fields(struct proxy *p)
{
    const struct slice u = p->s->req.upgrade;
    if (h1_client_put_field(&p->uc->out, &p->w->bufs, "Connection", 10, "Upgrade", 7) ||
        h1_client_put_field(&p->uc->out, &p->w->bufs, "Upgrade", 7, u.p, u.len))
        return -1;
    if (p->ws_key[0])
        return h1_client_put_field(&p->uc->out, &p->w->bufs, "Sec-WebSocket-Key", 17, p->ws_key,
                                   WS_KEY_LEN);
    return 0;
}

/* What we add: Host when the client's is not passed, forwarding headers, the secret, the
 * upgrade, the route's set/add rules and our own framing. */
static int put_added_fields(struct proxy *p, bool host_passed, bool trusted)
{
    const struct cfg_route *route = p->s->route;
    const struct http_request *r = &p->s->req;
    struct upconn *uc = p->uc;
    if (!host_passed && put_host(p))
        return -1;
    if (forward_emit(p->s, route, trusted, put_field_cb, p))
        return -1;
    if (p->up->secret_name &&
        h1_client_put_field(&uc->out, &p->w->bufs, p->up->secret_name, strlen(p->up->secret_name),
                            p->up->secret_value, strlen(p->up->secret_value)))
        return -1;
    const struct cfg_app *app = p->up->app;
    if (app && app->tokens &&
        h1_client_put_field(&uc->out, &p->w->bufs, APP_TOKEN_HEADER, sizeof APP_TOKEN_HEADER - 1,
                            app->tokens[uc->server], strlen(app->tokens[uc->server])))
        return -1;
    const char *subject_header = client_subject_header(p->s);
    if (subject_header && p->s->client_subject &&
        h1_client_put_field(&uc->out, &p->w->bufs, subject_header, strlen(subject_header),
                            p->s->client_subject, strlen(p->s->client_subject)))
        return -1;
    if (p->upgrade && put_upgrade_fields(p))
        return -1;
    const struct cfg_header_rules *rules = &route->request_headers;
    for (size_t i = 0; i < rules->nset; i++)
        if (h1_client_put_field(&uc->out, &p->w->bufs, rules->set[i].name, rules->set[i].name_len,
                                rules->set[i].value, rules->set[i].value_len))
            return -1;
    for (size_t i = 0; i < rules->nadd; i++)
        if (h1_client_put_field(&uc->out, &p->w->bufs, rules->add[i].name, rules->add[i].name_len,
                                rules->add[i].value, rules->add[i].value_len))
            return -1;
    return h1_client_put_framing(&uc->out, &p->w->bufs, r->has_body, r->content_length,
                                 &p->chunked_up);
}

/* The request line, the client's end-to-end fields, and what we add. */
static int write_request_head(struct proxy *p)
{
    struct http_stream *s = p->s;
    const struct http_request *r = &s->req;
    struct worker *w = p->w;
    struct upconn *uc = p->uc;
    const struct config *c = s->config;
    bool trusted = c->ntrusted_proxies &&
                   config_cidr_match(c->trusted_proxies, c->ntrusted_proxies, s->peer_addr);
    struct hop_set hop;
    hop_collect(&hop, r->fields, r->nfields);
    struct slice path = upstream_path(s);
    if (h1_client_put_request_line(&uc->out, &w->bufs, r->method, path, r->query))
        return -1;
    bool host_passed = false;
    for (size_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (replaced_field(p, &hop, trusted, f))
            continue;
        host_passed |= http_token_eq(f->name, f->name_len, "host", 4);
        if (h1_client_put_field(&uc->out, &w->bufs, f->name, f->name_len, f->value, f->value_len))
            return -1;
    }
    if (put_added_fields(p, host_passed, trusted))
        return -1;
    return h1_client_put_end(&uc->out, &w->bufs);
}

/* The value balance: hash hashes: the client's address, the path, a header or a cookie. */
static void hash_key(const struct proxy *p, struct upstate_req *r)
{
    const struct cfg_upstream *u = p->up;
    const struct http_request *req = &p->s->req;
    switch (u->hash_by) {
    case CFG_HASH_CLIENT_IP: {
        /* Behind a trusted proxy, the client it forwards for, not the proxy itself. */
        const struct config *c = p->s->config;
        bool trusted = c->ntrusted_proxies &&
                       config_cidr_match(c->trusted_proxies, c->ntrusted_proxies, p->s->peer_addr);
        forward_client(p->s, trusted, &r->key, &r->key_len);
        return;
    }
    case CFG_HASH_PATH:
        r->key = req->path.p;
        r->key_len = req->path.len;
        return;
    case CFG_HASH_HEADER: {
        const struct http_field *f = http_find_field(req, u->hash_name, u->hash_name_len);
        if (f)
            r->key = f->value, r->key_len = f->value_len;
        return;
    }
    case CFG_HASH_COOKIE:
        r->key = http_cookie_value(req, u->hash_name, u->hash_name_len, &r->key_len);
        return;
    }
}

static int start_on(struct proxy *p, size_t server, bool fresh);
static int start_upstream(struct proxy *p, bool fresh, const char *why);

/* The queue is polled: a server freed by any worker is seen at the next tick. */
#define QUEUE_TICK_MS 10

static void queue_on_tick(struct ev_timer *t)
{
    struct proxy *p = container_of(t, struct proxy, queue_timer);
    if (p->dead)
        return;
    start_upstream(p, p->upgrade, NULL);
}

/* Every usable server is at max_conns: wait for one in the upstream's queue, if it has one
 * with room and this request's time there is not over. True while waiting. */
static bool queue_wait(struct proxy *p)
{
    uint64_t now = p->w->loop.now;
    if (!p->up->queue_size)
        return false;
    if (!p->queued) {
        if (!upstate_queue_enter(p->up->state))
            return false;
        p->queued = true;
        p->queue_deadline = now + p->up->queue_timeout;
        p->queue_timer.cb = queue_on_tick;
    }
    if (now >= p->queue_deadline)
        return false;
    uint64_t left = p->queue_deadline - now;
    ev_timer_start(&p->w->loop, &p->queue_timer, left < QUEUE_TICK_MS ? left : QUEUE_TICK_MS);
    return true;
}

/* The worker's newer snapshot of the same upstream, when it has one: an app's instances come
 * with new snapshots (config/config_apps.h), and a request waiting for them moves over. */
static void app_follow(struct proxy *p)
{
    const struct config *c = p->w->config;
    const struct cfg_upstream *u =
        p->up->index < c->nupstreams ? &c->upstreams[p->up->index] : NULL;
    if (u && strcmp(u->name, p->up->name) != 0) /* a reload moved it */
        for (size_t i = 0; i < c->nupstreams; i++)
            u = strcmp(c->upstreams[i].name, p->up->name) ? u : &c->upstreams[i];
    if (!u || u == p->up || !u->app || strcmp(u->name, p->up->name) != 0)
        return;
    struct upool *pool = upool_for(p->w, u);
    if (!pool)
        return;
    upool_hold(pool);
    upool_drop(p->pool);
    p->pool = pool;
    p->up = u;
}

static void app_on_tick(struct ev_timer *t)
{
    struct proxy *p = container_of(t, struct proxy, queue_timer);
    if (p->dead)
        return;
    app_follow(p);
    start_upstream(p, p->upgrade, NULL);
}

/* No instance of an app upstream serves: ask the supervisor for one (the first request of an
 * on-demand app starts it) and wait up to ready.timeout, with at most queue.size (or 1000)
 * requests waiting, all workers together. True while waiting. */
#define APP_WAIT_MAX 1000
static bool app_wait(struct proxy *p)
{
    const struct cfg_app *app = p->up->app;
    struct app_link *l = app->link;
    uint64_t now = p->w->loop.now;
    if (!l)
        return false;
    p->app_unavailable = true;
    int st = atomic_load(&l->state);
    if (st == APP_FAILED || st == APP_STOPPED)
        return false;
    /* Instances that serve but are all down or ejected: as for any upstream, no waiting. */
    if (st == APP_READY && p->up->nservers && !p->app_waiting)
        return false;
    if (!p->app_waiting) {
        unsigned max = p->up->queue_size ? p->up->queue_size : APP_WAIT_MAX;
        if (atomic_fetch_add(&l->waiting, 1) >= max) {
            atomic_fetch_sub(&l->waiting, 1);
            return false;
        }
        p->app_waiting = l;
        p->app_deadline = now + app->ready_timeout;
        p->queue_timer.cb = app_on_tick;
        if (st == APP_IDLE && !atomic_exchange(&l->demand, 1))
            app_link_wake(l);
    }
    if (now >= p->app_deadline)
        return false;
    uint64_t left = p->app_deadline - now;
    ev_timer_start(&p->w->loop, &p->queue_timer, left < QUEUE_TICK_MS ? left : QUEUE_TICK_MS);
    return true;
}

/* A client whose cookie does not name the chosen server gets one that does. */
static void sticky_prepare(struct proxy *p, size_t server, const struct upstate_req *r)
{
    const char *token = p->up->state->servers[server]->sticky;
    p->set_sticky = !(r->sticky && r->sticky_len == UPSRV_STICKY_LEN &&
                      memcmp(r->sticky, token, UPSRV_STICKY_LEN) == 0);
    if (p->set_sticky)
        snprintf(p->sticky_set, sizeof(p->sticky_set), "%s=%s; Path=/; HttpOnly; SameSite=Lax%s",
                 p->up->sticky_cookie, token, p->s->secure ? "; Secure" : "");
}

/* Choose a server for the next attempt and start it. Without a server to try: 503 when none
 * is usable or all are full, or the previous attempt's failure (`why`) after a retry. */
static int start_upstream(struct proxy *p, bool fresh, const char *why)
{
    struct upstate *st = p->up->state;
    if (!st)
        return start_on(p, p->attempts++ % p->up->nservers, fresh);
    struct upstate_req r = {.tried = p->tried, .rand = &p->w->rand, .now_ms = p->w->loop.now};
    if (p->up->balance == CFG_BAL_HASH)
        hash_key(p, &r);
    if (p->up->sticky_cookie)
        r.sticky = http_cookie_value(&p->s->req, p->up->sticky_cookie, p->up->sticky_cookie_len,
                                     &r.sticky_len);
    int i = upstate_pick(st, &r);
    if (i == UPSTATE_ALL_FULL && !why && queue_wait(p))
        return 0;
    if (i == UPSTATE_NONE_UP && !why && p->up->app && app_wait(p))
        return 0;
    queue_leave(p);
    app_wait_leave(p);
    if (i < 0) {
        if (why)
            proxy_fail(p, 502, why);
        else
            proxy_fail(p, 503,
                       i == UPSTATE_ALL_FULL ? (p->up->queue_size ? "queue full or timed out"
                                                                  : "every usable server is at "
                                                                    "max_conns")
                       : p->up->app          ? "no instance of the app is ready"
                                             : "no server is up");
        return -1;
    }
    if (p->up->sticky_cookie)
        sticky_prepare(p, (size_t)i, &r);
    if (!p->attempts++)
        p->first_attempt_ms = p->w->loop.now;
    p->tried[i / 64] |= (uint64_t)1 << (i % 64);
    p->server = i;
    return start_on(p, (size_t)i, fresh);
}

static bool retry_is_safe(const struct proxy *p);

/* Another server may take the request: it did not reach the upstream's application in a way
 * that matters (nothing answered; idempotent or nothing sent; the body can be replayed), and
 * the count, the time and the upstream's retry budget allow it. */
static bool may_retry(struct proxy *p)
{
    const struct cfg_upstream *u = p->up;
    if (p->upgrade || p->any_response || p->attempts > u->retries || !u->state)
        return false;
    if (p->uc && !retry_is_safe(p))
        return false;
    if (p->w->loop.now - p->first_attempt_ms >= u->retry_timeout || !p->s->ops->body_rewind(p->s))
        return false;
    return upstate_retry_allowed(u->state, p->w->loop.now);
}

/* The attempt failed before any response: try another server when allowed, else answer. */
static int attempt_failed(struct proxy *p, int status, const char *what)
{
    attempt_done(p, UPSTATE_FAILED, what);
    if (!may_retry(p)) {
        proxy_fail(p, status, what);
        return -1;
    }
    log_msg(proxy_log(p), LOG_WARN, "upstream %s (%s): %s; retrying on another server", p->up->name,
            p->addr, what);
    if (p->uc)
        upconn_close(p->uc);
    p->uc = NULL;
    return start_upstream(p, false, what);
}

/* Acquire a connection to `server` and queue the request on it. */
static int start_on(struct proxy *p, size_t server, bool fresh)
{
    p->uc = upconn_acquire_client(p->pool, server, fresh, p->s->peer_addr, p->s->local_addr);
    set_text(p->addr, sizeof(p->addr), p->up->servers[server].text);
    if (!p->uc) {
        char what[128];
        snprintf(what, sizeof(what), "connect failed: %s", strerror(errno));
        return attempt_failed(p, 502, what);
    }
    struct upconn *uc = p->uc;
    uc->user = p;
    uc->on_event = proxy_on_upconn;
    uc->requests++;
    p->sent_before = uc->out.sent;
    set_text(p->s->upstream, sizeof(p->s->upstream), p->addr);
    p->any_response = p->head_received = p->req_sent = p->body_end_queued = false;
    p->up_slice = NULL;
    p->up_slice_len = 0;
    if (write_request_head(p) < 0) {
        proxy_fail(p, 502, "request head too large to forward");
        return -1;
    }
    if (!uc->reused) {
        ev_timer_start(&uc->w->loop, &uc->timer, p->up->connect_timeout);
        return 0; /* the connect completion event starts the writing */
    }
    uc->connected = true;
    pump_request(p);
    return 0;
}

/* ---- request body ------------------------------------------------------------------------- */

/* One timer per upstream connection; which deadline applies follows from the state. */
static void arm_upstream_timer(struct proxy *p)
{
    struct upconn *uc = p->uc;
    if (p->dead || !uc || !uc->connected)
        return; /* the connect deadline stays as it was set */
    struct ev_loop *l = &uc->w->loop;
    if (!outq_empty(&uc->out) && !uc->wr_ready)
        ev_timer_start(l, &uc->timer, p->up->send_timeout); /* upstream not taking the request */
    else if (p->client_blocked)
        ev_timer_stop(l, &uc->timer); /* the client's send_timeout governs */
    else if (p->req_sent || p->head_received)
        ev_timer_start(l, &uc->timer, p->up->read_timeout);
    else
        ev_timer_stop(l, &uc->timer); /* waiting for the client's body: its timeout governs */
}

static void request_sent(struct proxy *p)
{
    p->req_sent = true;
    arm_upstream_timer(p);
}

/* Queue the next body slice (or the end) behind what is already queued. Returns false when
 * there is nothing to queue now. */
static bool queue_body(struct proxy *p)
{
    struct http_stream *s = p->s;
    struct upconn *uc = p->uc;
    const char *data;
    size_t len;
    if (!s->req.has_body || p->body_end_queued)
        return false;
    enum body_result r = s->ops->read_body(s, &data, &len);
    if (r == BODY_AGAIN) {
        p->waiting_body = true;
        return false;
    }
    if (r == BODY_ERROR)
        return false; /* the codec answers the client and then calls on_close */
    if (r == BODY_END) {
        p->body_end_queued = true;
        if (p->chunked_up)
            put_last_chunk(p);
        return true;
    }
    if (p->chunked_up) {
        h1_client_put_chunk_size(&uc->out, &s->worker->bufs, len);
        outq_set_ext(&uc->out, data, len, "\r\n", 2);
    } else {
        outq_set_ext(&uc->out, data, len, "", 0);
    }
    p->up_slice = data;
    p->up_slice_len = len;
    return true;
}

static void upstream_write_failed(struct proxy *p, int err);

static void pump_request(struct proxy *p)
{
    struct upconn *uc = p->uc;
    p->waiting_body = false;
    while (!p->req_sent && uc->connected) {
        if (!outq_empty(&uc->out)) {
            int r = upconn_flush(uc);
            if (r == OUTQ_AGAIN) {
                uc->wr_ready = false;
                arm_upstream_timer(p);
                return;
            }
            if (r == OUTQ_ERROR) {
                upstream_write_failed(p, errno);
                return;
            }
        }
        if (p->up_slice) {
            p->up_slice = NULL;
            p->s->ops->body_consumed(p->s, p->up_slice_len);
        }
        if (p->dead)
            return;
        if (!p->s->req.has_body || p->body_end_queued) {
            request_sent(p);
            return;
        }
        if (!queue_body(p)) {
            arm_upstream_timer(p);
            return;
        }
    }
}

/* ---- response ----------------------------------------------------------------------------- */

static void finish(struct proxy *p, bool reusable)
{
    /* Reached only from pumping the response of a live exchange, on its connection. */
    GH_BUG_ON(p->dead || !p->uc);
    struct http_stream *s = p->s;
    s->upstream_ms = s->worker->loop.now - s->upstream_ms_start;
    char why[32] = "";
    if (p->bad_status)
        snprintf(why, sizeof why, "answered %d", p->bad_status);
    attempt_done(p, p->bad_status ? UPSTATE_FAILED : UPSTATE_OK, why);
    /* An upstream that declined an upgrade may still be set for the other protocol. After a
     * HEAD, an app that wrongly writes the body may write it late, after the connection went to
     * the next request, whose response it would become (another client's): any client can ask
     * HEAD, and it is rare enough that a fresh connection costs little. */
    upconn_release(p->uc, reusable && p->req_sent && !p->upgrade && !s->req.head);
    p->uc = NULL;
    proxy_free(p);
    s->ops->send_end(s);
}

/* Forward an interim or final head. Returns false if the exchange ended. */
enum rewrite_kind { RW_NONE, RW_LOCATION, RW_REFRESH, RW_LINK, RW_COOKIE };

static enum rewrite_kind rewrite_kind_of(const struct http_field *f)
{
    if (http_token_eq(f->name, f->name_len, "location", 8) ||
        http_token_eq(f->name, f->name_len, "content-location", 16))
        return RW_LOCATION;
    if (http_token_eq(f->name, f->name_len, "refresh", 7))
        return RW_REFRESH;
    if (http_token_eq(f->name, f->name_len, "link", 4))
        return RW_LINK;
    if (http_token_eq(f->name, f->name_len, "set-cookie", 10))
        return RW_COOKIE;
    return RW_NONE;
}

#define MAX_ORIGINS 32

/* The names the upstream may call itself: every server as http(s)://address, and the route's
 * rewrite_names. `text` holds the strings. */
static size_t internal_origins(const struct proxy *p, struct rewrite_origin *o, char (*text)[96])
{
    size_t n = 0;
    for (size_t i = 0; i < p->up->nservers && n < MAX_ORIGINS; i++) {
        /* The addresses of one host name share its `host`: one origin for all of them. */
        if (i && p->up->servers[i].host == p->up->servers[i - 1].host)
            continue;
        int len = snprintf(text[n], sizeof(text[n]), "%s://%s",
                           p->up->tls_client ? "https" : "http", p->up->servers[i].host);
        if (len > 0 && (size_t)len < sizeof(text[n])) {
            o[n] = (struct rewrite_origin){text[n], (size_t)len};
            n++;
        }
    }
    const struct cfg_route *route = p->s->route;
    for (size_t i = 0; i < route->nrewrite_names && n < MAX_ORIGINS; i++, n++)
        o[n] = (struct rewrite_origin){route->rewrite_names[i], strlen(route->rewrite_names[i])};
    return n;
}

static ssize_t rewrite_one(const struct rewrite_ctx *c, enum rewrite_kind k, const char *v,
                           size_t len, char *out, size_t cap)
{
    switch (k) {
    case RW_LOCATION:
        return rewrite_location(c, v, len, out, cap);
    case RW_REFRESH:
        return rewrite_refresh(c, v, len, out, cap);
    case RW_LINK:
        return rewrite_link(c, v, len, out, cap);
    case RW_COOKIE:
        return c->prefix_len ? rewrite_set_cookie(c, v, len, out, cap) : 0; /* with strip_prefix */
    default:
        return 0;
    }
}

/* Location, Content-Location, Refresh, Link and Set-Cookie values that name the upstream's own
 * address are made to name the public URL the client used (scheme, Host, stripped prefix). */
static void rewrite_fields(struct proxy *p, struct http_field *f, size_t n)
{
    const struct http_stream *s = p->s;
    size_t i = 0;
    while (i < n && rewrite_kind_of(&f[i]) == RW_NONE)
        i++;
    if (i == n || !s->req.authority.len)
        return; /* the common case: nothing to look at */
    struct rewrite_origin origins[MAX_ORIGINS];
    char text[MAX_ORIGINS][96];
    const struct cfg_route *route = s->route;
    bool prefix = route->strip_prefix && route->path_len > 1;
    struct rewrite_ctx ctx = {
        .internal = origins,
        .ninternal = internal_origins(p, origins, text),
        .scheme = s->secure ? "https" : "http",
        .scheme_len = s->secure ? 5 : 4,
        .host = s->req.authority.p,
        .host_len = s->req.authority.len,
        .prefix = prefix ? route->path : "",
        .prefix_len = prefix ? route->path_len : 0,
    };
    size_t used = 0;
    for (; i < n; i++) {
        enum rewrite_kind k = rewrite_kind_of(&f[i]);
        if (k == RW_NONE)
            continue;
        char *out = p->rewritten + used;
        ssize_t len =
            rewrite_one(&ctx, k, f[i].value, f[i].value_len, out, sizeof(p->rewritten) - used);
        if (len < 0)
            log_msg(proxy_log(p), LOG_WARN, "upstream %s: %.*s value too long to rewrite",
                    p->up->name, (int)f[i].name_len, f[i].name);
        if (len <= 0)
            continue;
        f[i].value = out;
        f[i].value_len = (uint32_t)len;
        used += (size_t)len;
    }
}

static bool handle_head(struct proxy *p, const struct h1_response *res)
{
    struct http_stream *s = p->s;
    struct hop_set hop;
    hop_collect(&hop, (const struct http_field *)NULL, 0);
    size_t n = 0;
    for (uint32_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (http_token_eq(h->name, h->name_len, "connection", 10))
            hop_add_tokens(&hop, h->value, h->value_len);
    }
    for (uint32_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (hop_is_hop(&hop, h->name, h->name_len) ||
            http_token_eq(h->name, h->name_len, "content-length", 14))
            continue;
        p->fields[n++] = (struct http_field){h->name, h->value, h->name_len, h->value_len};
    }
    struct http_response out = {.status = res->status, .fields = p->fields, .nfields = n};
    out.no_body = res->body == H1_BODY_NONE &&
                  (res->status < 200 || res->status == 204 || res->status == 304 || s->req.head);
    out.content_length = res->body == H1_BODY_LENGTH ? (int64_t)res->content_length : -1;
    if (res->body == H1_BODY_NONE && !out.no_body)
        out.content_length = 0;
    if (s->req.head && res->body == H1_BODY_NONE) {
        /* HEAD: pass the length the upstream announced, if any. */
        out.content_length = -1;
        for (uint32_t i = 0; i < res->nheaders; i++)
            if (http_token_eq(res->headers[i].name, res->headers[i].name_len, "content-length",
                              14)) {
                out.content_length = (int64_t)strtoll(res->headers[i].value, NULL, 10);
                break;
            }
    }
    if (s->route->rewrite_responses && res->status >= 200)
        rewrite_fields(p, p->fields, n);
    if (p->set_sticky && res->status >= 200) {
        p->fields[n++] =
            (struct http_field){"Set-Cookie", p->sticky_set, 10, (uint32_t)strlen(p->sticky_set)};
        out.nfields = n;
    }
    return handler_send_head(s, &out) != SEND_ERROR;
}

/* ---- protocol switch ---------------------------------------------------------------------- */

/* Why a 101 cannot be taken, or NULL. A switch must name its protocol (RFC 9110 section
 * 15.2.2), and for an extended CONNECT it must prove it read our key (RFC 6455 section 4.1):
 * the HTTP/2 client cannot check that itself. */
static const char *switch_refused(const struct proxy *p, const struct h1_response *res)
{
    if (!p->upgrade)
        return "switched protocols without being asked (101)";
    if (!h1_client_field(res, "upgrade", 7))
        return "101 without an Upgrade field";
    if (p->ws_key[0]) {
        const struct h1_header *a = h1_client_field(res, "sec-websocket-accept", 20);
        if (!a || !ws_accept_ok(p->ws_key, a->value, a->value_len))
            return "101 without the Sec-WebSocket-Accept for our key";
    }
    return NULL;
}

/* The 101's fields for the client into p->fields: the upstream's end-to-end ones and its
 * Upgrade with Connection: Upgrade (the HTTP/2 codec drops these two again; it answers 200).
 * Sec-WebSocket-Accept answers our key, not the HTTP/2 client's, so it stays here. */
static size_t switch_fields(struct proxy *p, const struct h1_response *res)
{
    struct hop_set hop;
    hop_collect(&hop, (const struct http_field *)NULL, 0);
    const struct h1_header *conn = h1_client_field(res, "connection", 10);
    if (conn)
        hop_add_tokens(&hop, conn->value, conn->value_len);
    size_t n = 0;
    for (uint32_t i = 0; i < res->nheaders && n < PROXY_MAX_FIELDS - 2; i++) {
        const struct h1_header *h = &res->headers[i];
        if (hop_is_hop(&hop, h->name, h->name_len) ||
            http_token_eq(h->name, h->name_len, "content-length", 14) ||
            (p->ws_key[0] && http_token_eq(h->name, h->name_len, "sec-websocket-accept", 20)))
            continue;
        p->fields[n++] = (struct http_field){h->name, h->value, h->name_len, h->value_len};
    }
    const struct h1_header *u = h1_client_field(res, "upgrade", 7);
    p->fields[n++] = (struct http_field){"Upgrade", u->value, 7, u->value_len};
    p->fields[n++] = (struct http_field){"Connection", "Upgrade", 10, 7};
    return n;
}

/* The switch goes to the client through the site's and the route's response header rules,
 * like every head (handler_send_head leaves 1xx alone, so they are applied here). */
static enum send_result send_switch(struct proxy *p, size_t n)
{
    struct http_stream *s = p->s;
    const struct cfg_header_rules *site = s->site ? &s->site->response_headers : NULL;
    struct http_field a[PROXY_MAX_FIELDS], b[PROXY_MAX_FIELDS];
    long k = fields_apply(p->fields, n, site, a, PROXY_MAX_FIELDS);
    if (k >= 0)
        k = fields_apply(a, (size_t)k, &s->route->response_headers, b, PROXY_MAX_FIELDS);
    struct http_response res = {.status = 101,
                                .fields = k >= 0 ? b : p->fields,
                                .nfields = k >= 0 ? (size_t)k : n,
                                .content_length = -1,
                                .no_body = true};
    return s->ops->upgrade ? s->ops->upgrade(s, &res) : SEND_ERROR;
}

/* The upstream switched protocols: tell the client, then hand the stream and the connection
 * (with whatever the upstream sent behind its 101, still in uc->in) to a tunnel. Returns -1:
 * the exchange is no longer ours. */
static int switch_protocols(struct proxy *p, const struct h1_response *res)
{
    const char *refused = switch_refused(p, res);
    if (refused) {
        upstream_failed(p, 502, refused);
        return -1;
    }
    struct http_stream *s = p->s;
    s->upstream_ms = s->worker->loop.now - s->upstream_ms_start;
    p->head_received = true;
    attempt_done(p, UPSTATE_OK, NULL); /* a tunnel is not a request in flight */
    if (send_switch(p, switch_fields(p, res)) != SEND_DONE) {
        proxy_free(p);
        s->ops->abort(s); /* the client's side is closing already */
        return -1;
    }
    if (tunnel_start(s, p->uc, p->pool, p->up) < 0) {
        log_msg(proxy_log(p), LOG_ERROR, "upstream %s (%s): out of memory for a tunnel",
                p->up->name, p->addr);
        proxy_free(p);
        s->ops->abort(s);
        return -1;
    }
    p->uc = NULL; /* the tunnel's now */
    proxy_free(p);
    return -1;
}

/* A final head: refused, or the response starts. Returns 1 when handled, -1 when the exchange
 * ended. */
static int final_head(struct proxy *p, const struct h1_response *res)
{
    if (p->s->req.connect && res->status < 300) {
        /* To an HTTP/2 client a 2xx says the tunnel is open (RFC 8441 section 5). */
        upstream_failed(p, 502, "answered an extended CONNECT without switching protocols");
        return -1;
    }
    const struct h1_header *te =
        res->body != H1_BODY_NONE ? h1_client_transfer_coding_refused(res) : NULL;
    if (te) {
        char what[160];
        snprintf(what, sizeof(what),
                 "sent Transfer-Encoding '%.*s' (no coding but chunked is forwarded)",
                 (int)(te->value_len < 64 ? te->value_len : 64), te->value);
        upstream_failed(p, 502, what);
        return -1;
    }
    p->head_received = true;
    p->bad_status = cfg_passive_status(&p->up->passive_health, res->status) ? (int)res->status : 0;
    p->up_keepalive = h1_client_keeps_alive(res);
    h1_client_body_start(&p->res_body, res);
    if (!handle_head(p, res))
        return -1;
    return 1;
}

/* Parse a head from the upstream buffer. Returns 1 when a final head was handled, 0 when more
 * bytes are needed, -1 when the exchange ended. */
static int parse_response_head(struct proxy *p)
{
    struct upconn *uc = p->uc;
    uint32_t max_line = p->s->config->limits.max_request_line;
    for (;;) {
        struct h1_response res;
        int r =
            h1_client_parse_head(uc->in, &res, p->hdrs, PROXY_MAX_FIELDS, max_line, p->s->req.head);
        if (r == H1_CLIENT_HEAD_MORE)
            return 0;
        if (r == H1_CLIENT_HEAD_TOO_LARGE) {
            upstream_failed(p, 502, "response head too large");
            return -1;
        }
        if (r == H1_CLIENT_HEAD_INVALID) {
            char what[160];
            snprintf(what, sizeof(what), "invalid response: %s", res.error ? res.error : "?");
            upstream_failed(p, 502, what);
            return -1;
        }
        if (res.status == 101)
            return switch_protocols(p, &res);
        if (res.status >= 200)
            return final_head(p, &res);
        /* 100 Continue is ours to send (the codec answers Expect); other 1xx go through. */
        if (res.status != 100 && !handle_head(p, &res))
            return -1;
    }
}

static void consume_down(struct proxy *p)
{
    h1_client_body_consumed(&p->res_body, p->uc->in, p->down_slice_len);
    p->down_slice_len = 0;
}

/* Sending again is safe for idempotent methods (RFC 9110 section 9.2.2), and for any method
 * when the socket took none of the request: a POST the upstream may have acted on before dying
 * is answered 502 rather than performed twice. */
static bool retry_is_safe(const struct proxy *p)
{
    static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    const struct slice m = p->s->req.method;
    if (p->uc->out.sent == p->sent_before)
        return true;
    for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
        if (m.len == strlen(idempotent[i]) && memcmp(m.p, idempotent[i], m.len) == 0)
            return true;
    return false;
}

/* The upstream ended the connection (or failed) at a point where the exchange is not done. */
static void upstream_gone(struct proxy *p, const char *what)
{
    struct upconn *uc = p->uc;
    if (!p->any_response && uc->reused && !p->retried && retry_is_safe(p) &&
        p->s->ops->body_rewind(p->s)) {
        /* A pooled connection the upstream closed while idle: the request most likely never
         * reached it. Try once more on a fresh connection so the race never reaches the
         * client. */
        log_msg(proxy_log(p), LOG_DEBUG, "upstream %s (%s): pooled connection closed, retrying",
                p->up->name, p->addr);
        size_t server = uc->server;
        p->retried = true;
        upconn_close(uc);
        p->uc = NULL;
        start_on(p, server, true); /* same server: nothing says it is unwell */
        return;
    }
    if (!p->any_response) {
        attempt_failed(p, 502, what);
        return;
    }
    if (p->head_received)
        log_msg(proxy_log(p), LOG_WARN, "upstream %s (%s): %s mid-response; closing client",
                p->up->name, p->addr, what);
    upstream_failed(p, 502, what);
}

static void upstream_write_failed(struct proxy *p, int err)
{
    char what[96];
    snprintf(what, sizeof(what), "write failed: %s", strerror(err));
    upstream_gone(p, what);
}

/* Hand the next response body slice to the client. Returns 1 after progress, 0 when more
 * bytes are needed, -1 when pumping must stop. */
static int forward_body(struct proxy *p)
{
    const char *data;
    size_t len;
    int r = h1_client_body_next(&p->res_body, p->uc->in, p->uc->eof, &data, &len);
    if (r == H1_CLIENT_BODY_ERROR) {
        upstream_gone(p, "invalid chunked response body");
        return -1;
    }
    if (r == H1_CLIENT_BODY_END) {
        finish(p, p->up_keepalive && p->res_body.kind != H1_BODY_UNTIL_CLOSE);
        return -1;
    }
    if (r == H1_CLIENT_BODY_MORE)
        return 0;
    p->down_slice_len = len;
    enum send_result sr = p->s->ops->send_body(p->s, data, len);
    if (sr == SEND_PENDING) {
        p->client_blocked = true;
        arm_upstream_timer(p);
        return -1;
    }
    if (sr == SEND_ERROR)
        return -1; /* on_close follows */
    consume_down(p);
    return 1;
}

static void pump_response(struct proxy *p)
{
    struct upconn *uc = p->uc;
    while (!p->dead && !p->client_blocked) {
        size_t before = buf_len_of(uc);
        if (!p->head_received && before) {
            p->any_response = true;
            int r = parse_response_head(p);
            if (r < 0)
                return;
            if (r == 1)
                continue;
        } else if (p->head_received) {
            int r = forward_body(p);
            if (r < 0)
                return;
            if (r > 0)
                continue;
        }
        if (uc->eof) {
            if (p->head_received && p->res_body.kind == H1_BODY_UNTIL_CLOSE && !buf_len_of(uc)) {
                finish(p, false);
                return;
            }
            upstream_gone(p, p->any_response ? "closed the connection"
                                             : "closed the connection before responding");
            return;
        }
        if (!uc->rd_ready)
            return;
        int n = upconn_read(uc);
        if (n < 0) {
            char what[96];
            snprintf(what, sizeof(what), "read failed: %s", strerror(errno));
            upstream_gone(p, what);
            return;
        }
        if (n > 0)
            arm_upstream_timer(p);
    }
}

/* ---- events ------------------------------------------------------------------------------- */

static void on_connected(struct proxy *p)
{
    struct upconn *uc = p->uc;
    char what[256];
    int r = upconn_connected(uc, what, sizeof(what));
    if (r < 0) {
        attempt_failed(p, 502, what);
        return;
    }
    if (r == 0)
        return; /* TLS handshake in progress, under the connect deadline */
    ev_timer_stop(&uc->w->loop, &uc->timer);
    pump_request(p);
}

static void proxy_on_upconn(struct upconn *uc, enum upconn_event ev)
{
    struct proxy *p = uc->user;
    if (p->dead)
        return;
    if (ev == UPCONN_TIMEOUT) {
        if (!uc->connected)
            attempt_failed(p, 502,
                           uc->handshaking ? "TLS handshake timed out (connect_timeout)"
                                           : "connect timed out (connect_timeout)");
        else if (!p->req_sent && !outq_empty(&uc->out))
            upstream_gone(p, "not reading the request (send_timeout)");
        else if (!p->head_received)
            upstream_failed(p, 504, "no response within read_timeout");
        else
            upstream_gone(p, "silent for read_timeout");
        return;
    }
    if (!uc->connected) {
        if (!uc->wr_ready && !uc->rd_ready)
            return;
        on_connected(p);
        if (p->dead || p->uc != uc || !uc->connected)
            return;
    } else if (uc->wr_ready && !p->req_sent) {
        pump_request(p);
        if (p->dead || p->uc != uc)
            return;
    }
    if (uc->rd_ready || (uc->in && buf_len(uc->in)))
        pump_response(p);
}

static void proxy_on_body(struct http_stream *s)
{
    struct proxy *p = s->handler_data;
    if (!p->dead && p->waiting_body && p->uc && p->uc->connected)
        pump_request(p);
}

static void proxy_on_writable(struct http_stream *s)
{
    struct proxy *p = s->handler_data;
    if (p->dead)
        return;
    p->client_blocked = false;
    consume_down(p);
    arm_upstream_timer(p);
    pump_response(p);
}

static void proxy_on_close(struct http_stream *s)
{
    struct proxy *p = s->handler_data;
    proxy_free(p);
}

static const struct http_handler_ops proxy_handler_ops = {
    .on_body = proxy_on_body,
    .on_writable = proxy_on_writable,
    .on_close = proxy_on_close,
};

/* An HTTP/2 client asking for a WebSocket sends no key (RFC 8441 section 5): we make one.
 * False when the exchange was answered here. */
static bool start_upgrade(struct proxy *p)
{
    const struct http_request *r = &p->s->req;
    p->upgrade = true;
    p->retried = true; /* the upstream may have acted on it: never sent twice */
    if (r->connect && http_token_eq(r->upgrade.p, r->upgrade.len, "websocket", 9) &&
        ws_key_new(p->ws_key) < 0) {
        proxy_fail(p, 500, "no random bytes for a WebSocket key");
        return false;
    }
    return true;
}

void proxy_handle(struct http_stream *s, const struct cfg_route *route)
{
    struct upool *pool = upool_for(s->worker, route->upstream);
    if (!pool) {
        http_respond_text(s, 503, NULL);
        return;
    }
    /* Only the state before the header arrays needs zeroing. */
    struct proxy *p = freelist_get(&s->worker->proxies);
    if (p)
        memset(p, 0, offsetof(struct proxy, hdrs));
    if (!p) {
        http_respond_text(s, 503, NULL);
        return;
    }
    upool_hold(pool);
    p->s = s;
    p->w = s->worker;
    p->pool = pool;
    p->up = route->upstream;
    if (p->up->app && p->up->app->link) { /* idle_stop: a request is on its way */
        p->app_active = p->up->app->link;
        atomic_fetch_add(&p->app_active->active, 1);
        atomic_store_explicit(&p->app_active->last_request_ms, s->worker->loop.now,
                              memory_order_relaxed);
    }
    p->free_defer.cb = proxy_on_free;
    p->server = -1;
    s->handler = &proxy_handler_ops;
    s->handler_data = p;
    s->upstream_ms_start = s->worker->loop.now;
    if (s->req.upgrade.len && !start_upgrade(p))
        return;
    /* An upgrade never shares a connection: the upstream may keep it for the new protocol. */
    start_upstream(p, p->upgrade, NULL);
}
