/* One HTTP/2 request stream (RFC 9113) on a connection of h2_conn.c: the request built from
 * its header block (pseudo-headers, cookies, Host against :authority), trailers, the request body
 * with flow control and replay for retries, the http_stream operations a handler calls (head,
 * body, end, abort, tunnel) with nghttp2's data provider, and the stream's life from HEADERS to
 * the sweep. The nghttp2 callbacks about streams are here; the connection's own are there. */
#include "http/h2_internal.h"

#include "core/bug.h"
#include "http/access_log.h"
#include "http/hop.h"
#include "http/http_conn.h"
#include "http/path.h"
#include "http/respond.h"
#include "http/token.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const struct http_stream_ops h2_stream_ops;

/* ---- streams: life ------------------------------------------------------------------------ */

static void stream_on_body_timer(struct ev_timer *t);
static void stream_on_send_timer(struct ev_timer *t);

/* A backstop above all that the limits let a stream's arena hold (the head's storage up to 3 x
 * max_header_size: fields, the joined cookie, the normalised path; the field tables, by
 * max_header_count; the trailers; obuf up to H2_OBUF_ARENA_MAX), times four for doubling and
 * for the copies growth leaves behind. So no limit changes; reaching it means a bug, and is
 * answered as out of memory. */
static size_t stream_arena_cap(const struct cfg_limits *lim)
{
    size_t head = 3 * (size_t)lim->max_header_size;
    size_t tables = ((size_t)lim->max_header_count + 16) *
                    (2 * sizeof(struct h2_hdr) + sizeof(struct http_field));
    size_t trailers = TRAILER_MAX + (TRAILER_MAX / 8) * sizeof(struct http_field);
    return 4 * (head + tables + trailers + H2_OBUF_ARENA_MAX) + ARENA_BLOCK_MIN;
}

static struct h2_stream *stream_new(struct h2_conn *c, int32_t id)
{
    struct h2_stream *st = malloc(sizeof(*st));
    if (!st)
        return NULL;
    memset(st, 0, offsetof(struct h2_stream, mem_first)); /* the arena's block needs no zeroes */
    st->c = c;
    st->id = id;
    /* A reload happened: new streams use the new snapshot, with the settings of the listener
     * at this connection's address. One whose listener the reload dropped keeps the snapshot
     * it came with (the GOAWAY of the reload ends it). */
    int listener = worker_listener_match(c->conn->config, c->conn->listener, c->w->config);
    st->config = listener >= 0 ? c->w->config : c->conn->config;
    st->listener = listener >= 0 ? listener : c->conn->listener;
    config_ref(st->config);
    gh_arena_init(&st->mem, st->mem_first, sizeof(st->mem_first),
                  stream_arena_cap(&st->config->limits));
    st->body_timer.cb = stream_on_body_timer;
    st->send_timer.cb = stream_on_send_timer;
    dlist_push(&c->streams, &st->link);
    c->nstreams++;
    return st;
}

static void segs_free(struct h2_seg *g)
{
    while (g) {
        struct h2_seg *next = g->next;
        free(g);
        g = next;
    }
}

/* The body will not be sent again: its consumed segments go. */
static void replay_drop(struct h2_stream *st)
{
    segs_free(st->kept_head);
    st->kept_head = st->kept_tail = NULL;
    st->replay_lost = true;
}

static void input_free(struct h2_stream *st)
{
    segs_free(st->in_head);
    st->in_head = st->in_tail = NULL;
    st->in_bytes = 0;
    st->recredited = 0;
    replay_drop(st);
}

/* Flow-control credit for n consumed bytes, minus what a rewind gave back without taking. */
static void body_credit(struct h2_stream *st, size_t n)
{
    size_t again = n < st->recredited ? n : st->recredited;
    st->recredited -= (uint32_t)again;
    if (n > again && st->c->state != H2C_CLOSED) {
        nghttp2_session_consume(st->c->ng, st->id, n - again); /* the client may send more */
        conn_schedule(st->c);
    }
}

/* Drop buffered body bytes, giving their flow-control credit back to the client. */
static void input_drop(struct h2_stream *st)
{
    body_credit(st, st->in_bytes);
    input_free(st);
}

void h2_stream_free(struct h2_stream *st)
{
    /* Only a finished stream goes, and its handler has let go: else it would call into freed
     * memory (every path to stream_finish clears handler_on first). */
    GH_BUG_ON(!st->dead || st->handler_on);
    ev_timer_stop(&st->c->w->loop, &st->body_timer);
    ev_timer_stop(&st->c->w->loop, &st->send_timer);
    dlist_remove(&st->link);
    input_free(st);
    if (st->obuf_heap)
        free(st->obuf);
    gh_arena_fini(&st->mem); /* the head's storage, hdrs, fields, tbuf, trailers, obuf */
    config_unref(st->config);
    free(st);
}

/* Tell the handler the client is gone; it must not touch the stream afterwards. */
void h2_stream_detach(struct h2_stream *st)
{
    st->ext = NULL; /* the handler's memory may go with it */
    st->ext_len = 0;
    st->file_left = 0; /* and its file */
    st->send_pending = false;
    if (!st->handler_on)
        return;
    st->handler_on = false;
    if (st->s.handler && st->s.handler->on_close)
        st->s.handler->on_close(&st->s);
}

/* Both sides are done with the stream: log it and leave it for the sweep. */
void h2_stream_finish(struct h2_stream *st)
{
    struct h2_conn *c = st->c;
    if (st->dead)
        return;
    GH_BUG_ON(c->nstreams == 0); /* each stream is counted once, in stream_new */
    if (st->start == H2S_DISPATCHED && !st->logged) {
        st->logged = true;
        http_access_log(c->w, &st->s);
    }
    input_drop(st);
    ev_timer_stop(&c->w->loop, &st->body_timer);
    ev_timer_stop(&c->w->loop, &st->send_timer);
    st->dead = true;
    c->nstreams--;
    c->sweep = true;
    conn_schedule(c);
}

void h2_sweep_streams(struct h2_conn *c)
{
    if (!c->sweep)
        return;
    c->sweep = false;
    struct dlist *n = c->streams.next;
    while (n != &c->streams) {
        struct dlist *next = n->next;
        struct h2_stream *st = container_of(n, struct h2_stream, link);
        if (st->dead)
            h2_stream_free(st);
        n = next;
    }
}

static void stream_reset(struct h2_stream *st, uint32_t code)
{
    if (!st->closed && st->c->state != H2C_CLOSED) {
        nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, code);
        conn_schedule(st->c);
    }
}

/* The client's request cannot go on (body too large, stalled): answered in the next wake pass,
 * outside whatever call noticed it. */
static void stream_fail(struct h2_stream *st, int status, const char *why)
{
    if (st->fail_status || st->dead)
        return;
    st->fail_status = status;
    st->fail_why = why;
    st->discard_body = true;
    st->c->wake = true;
    conn_schedule(st->c);
}

static void stream_do_fail(struct h2_stream *st)
{
    struct h2_conn *c = st->c;
    int status = st->fail_status;
    st->fail_status = 0;
    log_msg(conn_log(c), LOG_INFO, "client %s: %d %s: %s (HTTP/2 stream %d)", c->conn->peer, status,
            http_reason(status), st->fail_why, (int)st->id);
    h2_stream_detach(st);
    input_drop(st);
    if (st->closed) {
        h2_stream_finish(st);
        return;
    }
    if (st->head_final) {
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->s.handler = NULL;
    http_respond_text(&st->s, status, NULL);
}

static void stream_on_body_timer(struct ev_timer *t)
{
    struct h2_stream *st = container_of(t, struct h2_stream, body_timer);
    if (st->dead || st->body_done || !st->handler_on)
        return;
    stream_fail(st, 408, "request body stalled for client_body_timeout");
    h2_conn_run(st->c);
}

/* The client took no response bytes on any stream for send_timeout while a stream waits for it
 * (its flow-control windows stay shut): it holds their upstream connections and reads nothing,
 * and resetting the streams one by one would only let it open new ones. The connection goes,
 * as an HTTP/1.1 connection that reads nothing would; every handler lets go at once. */
static void conn_stalled(struct h2_conn *c)
{
    log_msg(conn_log(c), LOG_INFO,
            "client %s: HTTP/2: no response bytes taken on any stream for send_timeout, closing",
            c->conn->peer);
    for (struct dlist *n = c->streams.next; n != &c->streams; n = n->next) {
        struct h2_stream *st = container_of(n, struct h2_stream, link);
        if (st->dead)
            continue;
        st->aborted = true; /* data_read sends nothing more */
        h2_stream_detach(st);
    }
    nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
    h2_conn_run(c);
}

static void stream_on_send_timer(struct ev_timer *t)
{
    struct h2_stream *st = container_of(t, struct h2_stream, send_timer);
    if (st->dead || !st->send_pending)
        return;
    struct h2_conn *c = st->c;
    if (c->state != H2C_CLOSED &&
        c->last_data_ms < st->stall_ms) { /* nothing taken since it stalled */
        conn_stalled(c);
        return;
    }
    log_msg(conn_log(st->c), LOG_INFO,
            "client %s: not reading the response for send_timeout (HTTP/2 stream %d)",
            st->c->conn->peer, (int)st->id);
    stream_reset(st, NGHTTP2_CANCEL);
    h2_conn_run(st->c);
}

/* Handlers hear of progress here, outside nghttp2's callbacks. */
void h2_wake_streams(struct h2_conn *c)
{
    c->wake = false;
    for (struct dlist *n = c->streams.next; n != &c->streams; n = n->next) {
        struct h2_stream *st = container_of(n, struct h2_stream, link);
        if (st->dead)
            continue;
        if (st->fail_status)
            stream_do_fail(st);
        if (st->wake_writable) {
            st->wake_writable = false;
            if (st->handler_on && st->send_pending) {
                st->send_pending = false;
                ev_timer_stop(&c->w->loop, &st->send_timer);
                st->s.handler->on_writable(&st->s);
            }
        }
        if (st->wake_body) {
            st->wake_body = false;
            if (st->handler_on && st->s.handler && st->s.handler->on_body)
                st->s.handler->on_body(&st->s);
        }
    }
}

/* ---- streams: the request head ------------------------------------------------------------ */

/* Room for len bytes at the end of the arena; returns their offset or -1. */
static long arena_reserve(struct h2_stream *st, size_t len)
{
    if (len > UINT32_MAX / 2 || st->alen + len > UINT32_MAX / 2)
        return -1;
    if (st->alen + len > st->acap) {
        uint32_t cap = st->acap ? st->acap : 1024;
        while (cap < st->alen + len)
            cap *= 2;
        char *a = gh_arena_grow(&st->mem, st->arena, st->alen, cap);
        if (!a)
            return -1;
        st->arena = a;
        st->acap = cap;
    }
    long off = st->alen;
    st->alen += (uint32_t)len;
    return off;
}

static int arena_field(struct h2_stream *st, struct h2_hdr *h, const uint8_t *name, size_t nlen,
                       const uint8_t *value, size_t vlen)
{
    long n = arena_reserve(st, nlen + vlen);
    if (n < 0)
        return -1;
    memcpy(st->arena + n, name, nlen);
    memcpy(st->arena + n + nlen, value, vlen);
    *h = (struct h2_hdr){(uint32_t)n, (uint32_t)nlen, (uint32_t)(n + nlen), (uint32_t)vlen};
    return 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(name, lit, n) == 0;
}

/* RFC 9113 8.2.2: connection-specific fields make a request malformed. nghttp2 rejects them
 * already (its HTTP messaging checks run before h2_on_header); this is the backstop. */
static bool connection_specific(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    if (name_is(name, nlen, "te"))
        return !(vlen == 8 && memcmp(value, "trailers", 8) == 0);
    return name_is(name, nlen, "connection") || name_is(name, nlen, "keep-alive") ||
           name_is(name, nlen, "proxy-connection") || name_is(name, nlen, "transfer-encoding") ||
           name_is(name, nlen, "upgrade");
}

/* A malformed request: RST_STREAM PROTOCOL_ERROR, never dispatched, counted as a reset the
 * client caused. Returns what the nghttp2 callback returns. */
static int stream_reject(struct h2_stream *st)
{
    if (st->rejected)
        return 0;
    st->rejected = true;
    if (st->start == H2S_START_PENDING) /* else its head is arriving, or it was dispatched */
        h2_stream_set_start(st, H2S_NOT_STARTED);
    nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
    return h2_peer_reset_take(st->c, "malformed requests") < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int pseudo_header(struct h2_stream *st, const uint8_t *name, size_t nlen,
                         const uint8_t *value, size_t vlen)
{
    struct h2_hdr *h = NULL;
    bool *has = NULL;
    if (name_is(name, nlen, ":method"))
        h = &st->method, has = &st->has_method;
    else if (name_is(name, nlen, ":path"))
        h = &st->path, has = &st->has_path;
    else if (name_is(name, nlen, ":authority"))
        h = &st->authority, has = &st->has_authority;
    else if (name_is(name, nlen, ":protocol")) /* nghttp2 allows it only with CONNECT */
        h = &st->protocol, has = &st->has_protocol;
    else
        return 0; /* :scheme (nghttp2 checked it is there) */
    if (arena_field(st, h, name, nlen, value, vlen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    *has = true;
    return 0;
}

static int header_add(struct h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen)
{
    const struct cfg_limits *lim = &st->config->limits;
    st->head_bytes += (uint32_t)(nlen + vlen + 4); /* as "name: value\r\n" */
    if (st->head_bytes > lim->max_header_size)
        st->too_large = true;
    if (nlen && name[0] == ':')
        return st->too_large ? 0 : pseudo_header(st, name, nlen, value, vlen);
    if (connection_specific(name, nlen, value, vlen))
        return stream_reject(st);
    if (st->nhdrs >= lim->max_header_count)
        st->too_large = true;
    if (st->too_large)
        return 0;
    if (st->nhdrs == st->hcap) {
        uint32_t cap = st->hcap ? st->hcap * 2 : 16;
        struct h2_hdr *h =
            gh_arena_grow(&st->mem, st->hdrs, st->nhdrs * sizeof(*h), cap * sizeof(*h));
        if (!h)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->hdrs = h;
        st->hcap = cap;
    }
    if (arena_field(st, &st->hdrs[st->nhdrs], name, nlen, value, vlen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->nhdrs++;
    return 0;
}

static struct slice arena_slice(const struct h2_stream *st, uint32_t off, uint32_t len)
{
    return (struct slice){st->arena + off, len};
}

static bool hdr_named(const struct h2_stream *st, const struct h2_hdr *h, const char *lower)
{
    size_t n = strlen(lower);
    return h->name_len == n && memcmp(st->arena + h->name, lower, n) == 0;
}

/* Several cookie fields become one, joined by "; " (RFC 9113 section 8.2.3). Returns the number
 * of cookie fields, and the joined value's offset in *off when there are several. */
static long join_cookies(struct h2_stream *st, uint32_t *off, uint32_t *len)
{
    size_t n = 0, total = 0;
    for (uint32_t i = 0; i < st->nhdrs; i++)
        if (hdr_named(st, &st->hdrs[i], "cookie")) {
            total += st->hdrs[i].value_len + (n ? 2 : 0);
            n++;
        }
    if (n < 2)
        return (long)n;
    long o = arena_reserve(st, total);
    if (o < 0)
        return -1;
    char *p = st->arena + o;
    bool first = true;
    for (uint32_t i = 0; i < st->nhdrs; i++) {
        const struct h2_hdr *h = &st->hdrs[i];
        if (!hdr_named(st, h, "cookie"))
            continue;
        if (!first) {
            memcpy(p, "; ", 2);
            p += 2;
        }
        first = false;
        memcpy(p, st->arena + h->value, h->value_len);
        p += h->value_len;
    }
    *off = (uint32_t)o;
    *len = (uint32_t)total;
    return (long)n;
}

static int build_fields(struct h2_stream *st, uint32_t cookie_off, uint32_t cookie_len,
                        long ncookies)
{
    struct http_request *r = &st->s.req;
    st->fields = gh_arena_alloc(&st->mem, (st->nhdrs + 1) * sizeof(*st->fields));
    if (!st->fields)
        return -1;
    size_t n = 0;
    bool cookie_done = false;
    for (uint32_t i = 0; i < st->nhdrs; i++) {
        const struct h2_hdr *h = &st->hdrs[i];
        if (ncookies > 1 && hdr_named(st, h, "cookie")) {
            if (!cookie_done)
                st->fields[n++] =
                    (struct http_field){"cookie", st->arena + cookie_off, 6, cookie_len};
            cookie_done = true;
            continue;
        }
        st->fields[n++] = (struct http_field){st->arena + h->name, st->arena + h->value,
                                              h->name_len, h->value_len};
    }
    r->fields = st->fields;
    r->nfields = n;
    return 0;
}

/* Split :path into path and query (as the HTTP/1.1 codec does for origin-form). */
static void split_path(struct http_request *r)
{
    const char *q = memchr(r->target.p, '?', r->target.len);
    if (q) {
        r->path = (struct slice){r->target.p, (size_t)(q - r->target.p)};
        r->query = (struct slice){q + 1, r->target.len - (size_t)(q - r->target.p) - 1};
    } else {
        r->path = r->target;
        r->query = (struct slice){NULL, 0};
    }
}

static int64_t parse_length(const char *p, size_t len)
{
    int64_t v = 0;
    if (!len || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static void body_fields(struct h2_stream *st)
{
    struct http_request *r = &st->s.req;
    r->has_body = !st->head_ended;
    r->content_length = -1;
    const struct http_field *f = http_find_field(r, "content-length", 14);
    if (f)
        r->content_length = parse_length(f->value, f->value_len); /* nghttp2 checked it */
    if (r->content_length == 0)
        r->has_body = false;
    f = http_find_field(r, "expect", 6);
    r->expect_continue = f && f->value_len == 12 && strncasecmp(f->value, "100-continue", 12) == 0;
}

/* RFC 8441: CONNECT with :protocol asks for a tunnel to the resource at :path (nghttp2 checked
 * that :scheme and :path are there). It goes to the router and the upstream as what it stands
 * for, an HTTP/1.1 GET that upgrades to that protocol. The stream's DATA is the tunnel's, not a
 * request body: what arrives before our answer waits in the stream's buffer (under flow
 * control) for the tunnel to read it. */
static void extended_connect(struct h2_stream *st)
{
    struct http_request *r = &st->s.req;
    r->method = SLICE_LIT("GET");
    r->upgrade = arena_slice(st, st->protocol.value, st->protocol.value_len);
    r->connect = true;
    r->has_body = false;
    r->content_length = -1;
    r->expect_continue = false;
}

/* The request from the collected head. Returns 0, or an HTTP status to answer with. */
static int build_request(struct h2_stream *st)
{
    struct http_request *r = &st->s.req;
    uint32_t cookie_off = 0, cookie_len = 0;
    long ncookies = join_cookies(st, &cookie_off, &cookie_len);
    /* The path is normalised before routing (target.h), into the arena (reserved before any pointer
     * into it is taken: it may move while it grows). */
    bool dots =
        st->has_path && http_path_needs_normalize(st->arena + st->path.value, st->path.value_len);
    long norm = dots ? arena_reserve(st, st->path.value_len) : 0;
    if (ncookies < 0 || norm < 0 || build_fields(st, cookie_off, cookie_len, ncookies) < 0)
        return 500;
    r->method = arena_slice(st, st->method.value, st->method.value_len);
    r->protocol = SLICE_LIT("HTTP/2");
    const struct http_field *host = http_find_field(r, "host", 4);
    if (st->has_authority)
        r->authority = arena_slice(st, st->authority.value, st->authority.value_len);
    else if (host)
        r->authority = (struct slice){host->value, host->value_len};
    if (st->has_authority && host &&
        (host->value_len != r->authority.len ||
         strncasecmp(host->value, r->authority.p, r->authority.len) != 0)) {
        st->fail_why = "Host differs from :authority";
        return 400; /* RFC 9113 section 8.3.1: Host differing from :authority is malformed */
    }
    r->head = r->method.len == 4 && memcmp(r->method.p, "HEAD", 4) == 0;
    body_fields(st);
    if (st->has_protocol) {
        /* Only WebSocket is ours to tunnel: anything else (h2c above all, which would smuggle
         * a second HTTP/2 connection past every rule of this one) is refused before routing. */
        if (st->protocol.value_len != 9 ||
            strncasecmp(st->arena + st->protocol.value, "websocket", 9) != 0) {
            st->fail_why = "extended CONNECT with a :protocol other than websocket";
            return 400;
        }
        extended_connect(st);
    }
    if (!st->has_path) { /* CONNECT: authority-form; the router refuses it */
        r->target = r->authority;
        r->path = r->target;
        return 0;
    }
    r->target = arena_slice(st, st->path.value, st->path.value_len);
    if (r->target.len > conn_limits(st->c)->max_request_line)
        return 414;
    split_path(r);
    if (dots) {
        char *out = st->arena + norm;
        r->path.len = http_path_normalize(r->path.p, r->path.len, out);
        r->path.p = out;
    }
    return 0;
}

static void stream_init(struct h2_stream *st)
{
    http_stream_init(&st->s, &h2_stream_ops, st->c->conn, st->config, st->listener);
}

/* An answer the codec gives on its own, without a handler. */
static void codec_answer(struct h2_stream *st, int status, const char *why)
{
    log_msg(conn_log(st->c), LOG_INFO, "client %s: %d %s: %s (HTTP/2 stream %d)", st->c->conn->peer,
            status, http_reason(status), why, (int)st->id);
    st->discard_body = true;
    st->s.handler = NULL;
    http_respond_text(&st->s, status, NULL);
}

/* The request head is complete and the read batch it came in is processed: hand the stream to
 * the router. */
static void stream_start(struct h2_conn *c, struct h2_stream *st)
{
    /* START_PENDING is set once per stream (its request HEADERS) and left when it is
     * rejected; start_streams skips dead ones. */
    GH_BUG_ON(st->rejected || st->dead);
    h2_stream_set_start(st, H2S_DISPATCHED);
    c->requests++;
    if (c->requests == conn_limits(c)->max_requests_per_connection)
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL, 0);
    int status = build_request(st);
    if (st->too_large)
        status = 431;
    if (status) {
        codec_answer(st, status,
                     status == 431   ? "request head too large"
                     : status == 414 ? "request target too long"
                     : status == 400 ? st->fail_why
                                     : "out of memory");
        return;
    }
    st->handler_on = true;
    http_dispatch(&st->s);
}

/* Dispatch the streams whose heads arrived in the batch nghttp2 just processed, oldest first.
 * Deferred to here so that a stream the client reset in the same batch (rapid reset) never
 * reaches a handler, let alone an upstream; and so that handlers run outside nghttp2. */
void h2_start_streams(struct h2_conn *c)
{
    if (!c->start_pending)
        return;
    c->start_pending = false;
    for (struct dlist *n = c->streams.prev; n != &c->streams && c->state != H2C_CLOSED;
         n = n->prev) {
        struct h2_stream *st = container_of(n, struct h2_stream, link);
        if (st->start != H2S_START_PENDING)
            continue;
        if (st->dead) /* reset in the batch that completed its head: never dispatched */
            h2_stream_set_start(st, H2S_NOT_STARTED);
        else
            stream_start(c, st);
    }
}

/* ---- streams: the request body ------------------------------------------------------------ */

static int body_append(struct h2_stream *st, const uint8_t *data, size_t len)
{
    while (len) {
        struct h2_seg *t = st->in_tail;
        if (!t || t->end == H2_SEG_SIZE) {
            t = malloc(sizeof(*t));
            if (!t)
                return -1;
            t->next = NULL;
            t->start = t->end = 0;
            if (st->in_tail)
                st->in_tail->next = t;
            else
                st->in_head = t;
            st->in_tail = t;
        }
        size_t k = H2_SEG_SIZE - t->end < len ? H2_SEG_SIZE - t->end : len;
        memcpy(t->data + t->end, data, k);
        t->end += (uint32_t)k;
        st->in_bytes += k;
        data += k;
        len -= k;
    }
    return 0;
}

static void send_continue(struct h2_stream *st)
{
    if (!st->s.req.expect_continue || st->continue_sent || st->head_final)
        return;
    st->continue_sent = true;
    const nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
    nghttp2_submit_headers(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NULL, &nv, 1, NULL);
    conn_schedule(st->c);
}

static enum body_result h2_read_body(struct http_stream *s, const char **data, size_t *len)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    struct h2_conn *c = st->c;
    if (c->state == H2C_CLOSED || st->fail_status || st->aborted || st->discard_body)
        return BODY_ERROR;
    struct h2_seg *g = st->in_head;
    if (g && g->end > g->start) {
        *data = g->data + g->start;
        *len = g->end - g->start;
        st->body_handed = st->body_any_handed = true;
        return BODY_DATA;
    }
    if (st->body_done)
        return BODY_END;
    if (st->closed)
        return BODY_ERROR; /* reset by the client; on_close follows */
    send_continue(st);
    /* A tunnel may be silent as long as its idle timeout allows. */
    if (!st->tunnel && !ev_timer_armed(&st->body_timer))
        ev_timer_start(&c->w->loop, &st->body_timer, conn_limits(c)->client_body_timeout);
    return BODY_AGAIN;
}

static void h2_body_consumed(struct http_stream *s, size_t n)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    st->body_handed = false;
    struct h2_seg *g = st->in_head;
    if (!g)
        return;
    if (n > g->end - g->start)
        n = g->end - g->start;
    g->start += (uint32_t)n;
    st->in_bytes -= n;
    if (g->start == g->end) {
        st->in_head = g->next;
        if (!st->in_head)
            st->in_tail = NULL;
        g->next = NULL;
        if (st->replay_lost) {
            free(g);
        } else if (st->kept_tail) {
            st->kept_tail->next = g;
            st->kept_tail = g;
        } else {
            st->kept_head = st->kept_tail = g;
        }
    }
    body_credit(st, n);
}

/* Back to the body's first byte: the kept segments and the consumed part of the current one
 * are unread again. Their credit was given when they were consumed, so it is not again. */
static bool h2_body_rewind(struct http_stream *s)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    if (!s->req.has_body || !st->body_any_handed)
        return true;
    if (st->replay_lost || st->body_handed)
        return false;
    size_t back = 0;
    for (struct h2_seg *g = st->kept_head; g; g = g->next) {
        back += g->end;
        g->start = 0;
    }
    if (st->in_head) {
        back += st->in_head->start;
        st->in_head->start = 0;
    }
    if (st->kept_tail) {
        st->kept_tail->next = st->in_head;
        if (!st->in_head)
            st->in_tail = st->kept_tail;
        st->in_head = st->kept_head;
        st->kept_head = st->kept_tail = NULL;
    }
    st->in_bytes += back;
    st->recredited += (uint32_t)back;
    return true;
}

/* ---- streams: the response ---------------------------------------------------------------- */

static void stream_resume(struct h2_stream *st)
{
    if (st->deferred && !st->closed && st->c->state != H2C_CLOSED) {
        st->deferred = false;
        nghttp2_session_resume_data(st->c->ng, st->id);
    }
    conn_schedule(st->c);
}

static uint64_t out_queued(const struct h2_stream *st)
{
    return st->olen - st->ooff + st->ext_len + st->file_left;
}

/* obuf's room grown to cap: in the arena up to H2_OBUF_ARENA_MAX, past it on the heap. */
static char *out_realloc(struct h2_stream *st, size_t cap)
{
    if (st->obuf_heap)
        return realloc(st->obuf, cap);
    if (cap <= H2_OBUF_ARENA_MAX)
        return gh_arena_grow(&st->mem, st->obuf, st->olen, cap);
    char *p = malloc(cap);
    if (!p)
        return NULL;
    if (st->olen)
        memcpy(p, st->obuf, st->olen);
    st->obuf_heap = true;
    return p;
}

static int out_append(struct h2_stream *st, const char *data, size_t len)
{
    if (st->ooff == st->olen)
        st->ooff = st->olen = 0;
    if (st->olen + len > st->ocap && st->ooff) {
        memmove(st->obuf, st->obuf + st->ooff, st->olen - st->ooff);
        st->olen -= st->ooff;
        st->ooff = 0;
    }
    if (st->olen + len > st->ocap) {
        size_t cap = st->ocap ? st->ocap : 4096;
        while (cap < st->olen + len)
            cap *= 2;
        char *p = out_realloc(st, cap);
        if (!p)
            return -1;
        st->obuf = p;
        st->ocap = cap;
    }
    memcpy(st->obuf + st->olen, data, len);
    st->olen += len;
    return 0;
}

/* The borrowed slice becomes a copy: its owner is about to let go of it. */
static int out_own_ext(struct h2_stream *st)
{
    if (!st->ext_len)
        return 0;
    const char *p = st->ext;
    size_t n = st->ext_len;
    st->ext = NULL;
    st->ext_len = 0;
    return out_append(st, p, n);
}

/* The file under the response ended before the length promised (truncated while being sent),
 * or cannot be read: the stream is reset, the client must not take it for complete. */
static void file_failed(struct h2_stream *st, ssize_t r)
{
    const struct http_request *q = &st->s.req;
    char why[96];
    if (r == 0)
        snprintf(why, sizeof why, "file ended %llu bytes early (truncated while being sent)",
                 (unsigned long long)st->file_left);
    else
        snprintf(why, sizeof why, "reading the file failed: %s", strerror(errno));
    log_msg(conn_log(st->c), LOG_WARN,
            "client %s: HTTP/2 stream %d: %.*s %.*s: %s, resetting the stream", st->c->conn->peer,
            (int)st->id, (int)q->method.len, q->method.p, (int)q->path.len, q->path.p, why);
    st->file_failed = true;
}

/* `want` (at most file_left) file bytes into buf, from the page cache: all of them (the file
 * is counted as sent from here), or -1 when the file ended early or failed (logged; the
 * segment stays, so the stream cannot end as if complete). */
static ssize_t file_read(struct h2_stream *st, uint8_t *buf, size_t want)
{
    GH_BUG_ON(want > st->file_left);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(st->file_fd, buf + got, want - got, (off_t)(st->file_off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st->file_left -= got; /* what is missing, for the line */
            file_failed(st, r);
            return -1;
        }
        got += (size_t)r;
    }
    st->file_off += want;
    st->file_left -= want;
    st->s.body_bytes_sent += want;
    /* The client is taking the file: send_timeout starts again, as for each body slice. */
    if (ev_timer_armed(&st->send_timer)) {
        st->stall_ms = st->c->w->loop.now;
        ev_timer_start(&st->c->w->loop, &st->send_timer, conn_limits(st->c)->send_timeout);
    }
    return (ssize_t)want;
}

/* The handler may send more once its file is framed and the copied bytes are low. */
static void wake_if_drained(struct h2_stream *st)
{
    if (st->send_pending && !st->ext_len && !st->file_left && st->olen - st->ooff <= H2_OUT_LOW) {
        st->wake_writable = true;
        st->c->wake = true;
    }
}

/* Frame header and file bytes straight into wbuf: no copy through nghttp2's frame buffer. A
 * frame is at most 16 KiB here, so it always fits once wbuf is written out. */
#define H2_FILE_FRAME_MAX 16384

int h2_send_file_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd, size_t len,
                      nghttp2_data_source *src, void *user)
{
    struct h2_stream *st = src->ptr;
    struct h2_conn *c = user;
    struct buf *b = c->wbuf;
    (void)ng;
    /* Detached or aborted since the frame was planned: the file may be closed already. */
    if (st->file_left < len || st->aborted || f->data.padlen)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (b->start == b->end)
        b->start = b->end = 0;
    if (buf_room(b) < 9 + len)
        return NGHTTP2_ERR_WOULDBLOCK; /* asked again once wbuf is written */
    uint8_t *p = (uint8_t *)b->data + b->end;
    if (file_read(st, p + 9, len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM(INTERNAL_ERROR) */
    memcpy(p, framehd, 9);
    b->end += (uint32_t)(9 + len);
    wake_if_drained(st);
    return 0;
}

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct h2_stream *st = src->ptr;
    if (st->aborted) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED; /* our RST_STREAM is on its way */
    }
    if (st->file_failed)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM(INTERNAL_ERROR) */
    if (st->olen == st->ooff && !st->ext_len && st->file_left) {
        /* Only file bytes: h2_send_file_data frames them in place, when the frame goes out. */
        size_t n = length < H2_FILE_FRAME_MAX ? length : H2_FILE_FRAME_MAX;
        if (n > st->file_left)
            n = (size_t)st->file_left;
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        if (st->out_eof && n == st->file_left)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    size_t n = 0;
    if (st->olen > st->ooff) {
        n = st->olen - st->ooff < length ? st->olen - st->ooff : length;
        memcpy(buf, st->obuf + st->ooff, n);
        st->ooff += n;
    }
    if (n < length && st->ext_len) {
        size_t k = st->ext_len < length - n ? st->ext_len : length - n;
        memcpy(buf + n, st->ext, k);
        st->ext += k;
        st->ext_len -= k;
        n += k;
    }
    if (n < length && st->file_left) {
        size_t want = length - n < st->file_left ? length - n : (size_t)st->file_left;
        ssize_t k = file_read(st, buf + n, want);
        if (k < 0 && n == 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        n += k > 0 ? (size_t)k : 0;
    }
    if (n == 0 && !st->out_eof) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (st->out_eof && out_queued(st) == 0)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    wake_if_drained(st);
    return (ssize_t)n;
}

static nghttp2_nv nv_of(const char *name, size_t nlen, const char *value, size_t vlen)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
}

/* Room for a typical response head on the stack, so a response costs no malloc; nghttp2
 * copies the fields when they are submitted. Bigger heads fall back to the heap. */
#define NVA_STACK_FIELDS 48
#define NVA_STACK_TEXT 1024
struct nva_space {
    nghttp2_nv nv[NVA_STACK_FIELDS];
    char text[NVA_STACK_TEXT];
};

static void nva_release(struct nva_space *sp, nghttp2_nv *nva)
{
    if (nva != sp->nv)
        free(nva);
}

/* The head as nghttp2 name/value pairs: lowercase names, no hop-by-hop fields, our own
 * content-length and a Date when the handler gave none. In sp when it fits, else one
 * allocation; release it with nva_release. */
static nghttp2_nv *build_nva(struct h2_stream *st, const struct http_response *res, bool final,
                             struct nva_space *sp, size_t *count)
{
    size_t names = 0;
    for (size_t i = 0; i < res->nfields; i++)
        names += res->fields[i].name_len;
    size_t cap = res->nfields + 3;
    /* sp is storage to fill, not read: cppcheck takes the address for a read */
    // cppcheck-suppress ctuuninitvar
    nghttp2_nv *nva = sp->nv;
    char *p = sp->text;
    if (cap > NVA_STACK_FIELDS || names + 4 + HTTP_NUM_MAX > NVA_STACK_TEXT) {
        nva = malloc(cap * sizeof(*nva) + names + 4 + HTTP_NUM_MAX);
        if (!nva)
            return NULL;
        p = (char *)(nva + cap);
    }
    size_t n = 0;
    unsigned status = (unsigned)res->status % 1000u;
    p[0] = (char)('0' + status / 100);
    p[1] = (char)('0' + status / 10 % 10);
    p[2] = (char)('0' + status % 10);
    nva[n++] = nv_of(":status", 7, p, 3);
    p += 4;
    struct hop_set hop;
    hop_collect(&hop, res->fields, res->nfields);
    bool date = false;
    for (size_t i = 0; i < res->nfields; i++) {
        const struct http_field *f = &res->fields[i];
        if (!f->name_len || f->name[0] == ':' || hop_is_hop(&hop, f->name, f->name_len) ||
            http_token_eq(f->name, f->name_len, "content-length", 14) ||
            http_token_eq(f->name, f->name_len, "host", 4))
            continue;
        date |= http_token_eq(f->name, f->name_len, "date", 4);
        for (uint32_t k = 0; k < f->name_len; k++)
            p[k] = (char)(f->name[k] >= 'A' && f->name[k] <= 'Z' ? f->name[k] + 32 : f->name[k]);
        nva[n++] = nv_of(p, f->name_len, f->value, f->value_len);
        p += f->name_len;
    }
    if (final && !date) {
        log_buf_stamp(&st->c->w->access);
        const char *d = st->c->w->access.http_date;
        nva[n++] = nv_of("date", 4, d, strlen(d));
    }
    if (final && res->status != 204 && res->content_length >= 0) {
        size_t len = http_fmt_dec(p, (unsigned long long)res->content_length);
        nva[n++] = nv_of("content-length", 14, p, len);
    }
    *count = n;
    return nva;
}

static enum send_result send_interim(struct h2_stream *st, const struct http_response *res)
{
    if (res->status == 101 || (res->status == 100 && st->continue_sent))
        return SEND_DONE; /* no 101 in HTTP/2 (RFC 9113 section 8.6) */
    size_t n;
    struct nva_space sp;
    nghttp2_nv *nva = build_nva(st, res, false, &sp, &n);
    if (!nva)
        return SEND_DONE; /* an interim response is optional */
    if (res->status == 100)
        st->continue_sent = true;
    nghttp2_submit_headers(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nva, n, NULL);
    nva_release(&sp, nva);
    conn_schedule(st->c);
    return SEND_DONE;
}

static enum send_result h2_send_head(struct http_stream *s, const struct http_response *res)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    struct h2_conn *c = st->c;
    if (c->state == H2C_CLOSED || st->closed || st->aborted || st->head_final)
        return SEND_ERROR;
    if (res->status < 200)
        return send_interim(st, res);
    replay_drop(st); /* answered: the body will not go to another server */
    struct http_response refused;
    if (s->req.connect && !st->tunnel && res->status < 300) {
        /* A 2xx to an extended CONNECT says the tunnel is open (RFC 8441 section 5): only
         * h2_upgrade may say that. A handler that answered with content cannot tunnel. */
        refused = *res;
        refused.status = 501;
        res = &refused;
    }
    s->status = res->status;
    st->no_body_out = res->no_body || s->req.head || res->status == 204 || res->status == 304;
    size_t n;
    struct nva_space sp;
    nghttp2_nv *nva = build_nva(st, res, true, &sp, &n);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    int rv = nva ? nghttp2_submit_response(c->ng, st->id, nva, n, st->no_body_out ? NULL : &prd)
                 : NGHTTP2_ERR_NOMEM;
    if (nva)
        nva_release(&sp, nva);
    if (rv != 0) {
        log_msg(conn_log(c), LOG_ERROR, "client %s: HTTP/2 stream %d: response head: %s",
                c->conn->peer, (int)st->id, nghttp2_strerror(rv));
        stream_reset(st, NGHTTP2_INTERNAL_ERROR); /* on_close follows */
        return SEND_ERROR;
    }
    st->head_final = true;
    conn_schedule(c);
    return SEND_DONE;
}

/* The handler waits for on_writable; the client must take some of the response within
 * send_timeout. */
static enum send_result wait_writable(struct h2_stream *st)
{
    st->send_pending = true;
    if (!ev_timer_armed(&st->send_timer)) {
        st->stall_ms = st->c->w->loop.now;
        ev_timer_start(&st->c->w->loop, &st->send_timer, conn_limits(st->c)->send_timeout);
    }
    return SEND_PENDING;
}

/* Whether body bytes can go now: -1 no (the stream or connection is gone, or no head yet),
 * 0 nothing to do (no body on this response, or no bytes), 1 yes. */
static int body_gate(const struct h2_stream *st, uint64_t len)
{
    if (st->c->state == H2C_CLOSED || st->aborted || !st->head_final)
        return -1;
    if (st->no_body_out || len == 0)
        return 0;
    return st->closed ? -1 : 1;
}

static enum send_result h2_send_body(struct http_stream *s, const char *data, size_t len)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    int gate = body_gate(st, len);
    if (gate <= 0)
        return gate < 0 ? SEND_ERROR : SEND_DONE;
    s->body_bytes_sent += len;
    int rc = out_own_ext(st); /* only if the handler sent again without waiting */
    if (rc == 0 && (len <= SEND_COPY_MAX || out_queued(st) + len <= H2_OUT_HIGH))
        rc = out_append(st, data, len);
    else if (rc == 0) {
        st->ext = data;
        st->ext_len = len;
    }
    if (rc < 0) {
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return SEND_ERROR;
    }
    stream_resume(st);
    if (st->ext_len || out_queued(st) >= H2_OUT_HIGH)
        return wait_writable(st);
    return SEND_DONE;
}

/* Body bytes from a file: read into the DATA frames as the client's flow-control windows
 * open (data_read), never more than a frame ahead of them. */
static enum send_result h2_send_file(struct http_stream *s, int fd, uint64_t off, uint64_t len)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    int gate = body_gate(st, len);
    if (gate <= 0)
        return gate < 0 ? SEND_ERROR : SEND_DONE;
    /* The previous file is done (the handler waited for on_writable). */
    GH_BUG_ON(st->file_left);
    if (out_own_ext(st) < 0) {
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return SEND_ERROR;
    }
    st->file_fd = fd;
    st->file_off = off;
    st->file_left = len;
    stream_resume(st);
    return wait_writable(st);
}

/* The handler is done; the stream ends on its own when the queued bytes are out. */
static enum send_result h2_send_end(struct http_stream *s)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    struct h2_conn *c = st->c;
    st->handler_on = false;
    st->send_pending = false;
    ev_timer_stop(&c->w->loop, &st->send_timer);
    if (st->closed) { /* the response was complete without a body, or the stream is gone */
        h2_stream_finish(st);
        return SEND_DONE;
    }
    if (c->state == H2C_CLOSED)
        return SEND_ERROR;
    if (!st->head_final || out_own_ext(st) < 0) {
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return SEND_ERROR;
    }
    if (!st->no_body_out) {
        st->out_eof = true;
        stream_resume(st);
    }
    return SEND_DONE;
}

static void h2_abort(struct http_stream *s)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    st->handler_on = false;
    st->send_pending = false;
    st->aborted = true;
    st->ext = NULL;
    st->ext_len = 0;
    st->file_left = 0;
    if (st->closed)
        h2_stream_finish(st);
    else /* RFC 9113 section 8.5: a tunnel's connection failed */
        stream_reset(st, st->tunnel ? NGHTTP2_CONNECT_ERROR : NGHTTP2_INTERNAL_ERROR);
}

/* The upstream accepted an extended CONNECT (its 101): the client gets a 200 without a length
 * (build_nva drops Upgrade and Connection), and the stream's DATA carries the tunnel from now
 * on, both ways under flow control. */
static enum send_result h2_upgrade(struct http_stream *s, const struct http_response *res)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    if (!s->req.connect)
        return SEND_ERROR;
    struct http_response ok = *res;
    ok.status = 200;
    ok.content_length = -1;
    ok.no_body = false;
    st->tunnel = true; /* before the head: h2_send_head lets only a tunnel answer 2xx */
    enum send_result r = h2_send_head(s, &ok);
    if (r != SEND_DONE) {
        st->tunnel = false;
        return r;
    }
    ev_timer_stop(&st->c->w->loop, &st->body_timer);
    return SEND_DONE;
}

/* END_STREAM once the queued bytes are out; the client's DATA goes on being read. */
static void h2_shutdown(struct http_stream *s)
{
    struct h2_stream *st = container_of(s, struct h2_stream, s);
    if (!st->tunnel || st->out_eof || st->closed || st->c->state == H2C_CLOSED)
        return;
    if (out_own_ext(st) < 0) {
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->out_eof = true;
    stream_resume(st);
}

static const struct http_stream_ops h2_stream_ops = {
    .send_head = h2_send_head,
    .send_body = h2_send_body,
    .send_file = h2_send_file,
    .send_end = h2_send_end,
    .abort = h2_abort,
    .read_body = h2_read_body,
    .body_consumed = h2_body_consumed,
    .body_rewind = h2_body_rewind,
    .upgrade = h2_upgrade,
    .shutdown = h2_shutdown,
};

/* ---- nghttp2 callbacks -------------------------------------------------------------------- */

struct h2_stream *h2_stream_of(nghttp2_session *ng, int32_t id)
{
    struct h2_stream *st = id ? nghttp2_session_get_stream_user_data(ng, id) : NULL;
    return st && !st->dead ? st : NULL;
}

int h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2_conn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *st = stream_new(c, f->hd.stream_id);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM INTERNAL_ERROR */
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    st->counted_open = true;
    if (c->nopen++ < conn_limits(c)->http2.max_concurrent_streams)
        return 0;
    /* RFC 9113 section 5.1.2: over the announced limit is a stream error; the stream is
     * refused (the client may retry it) and counts as a reset the client caused. */
    st->rejected = true;
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
    return h2_peer_reset_take(c, "streams over max_concurrent_streams") < 0
               ? NGHTTP2_ERR_CALLBACK_FAILURE
               : 0;
}

static int trailer_add(struct h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                       size_t vlen)
{
    if (connection_specific(name, nlen, value, vlen))
        return stream_reject(st);
    if (hop_trailer_forbidden((const char *)name, nlen))
        return 0;
    size_t need = 8 + nlen + vlen;
    if (st->tlen + need > TRAILER_MAX)
        return 0;
    if (st->tlen + need > st->tcap) {
        char *b = gh_arena_grow(&st->mem, st->tbuf, st->tlen, TRAILER_MAX);
        if (!b)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->tbuf = b;
        st->tcap = TRAILER_MAX;
    }
    uint32_t lens[2] = {(uint32_t)nlen, (uint32_t)vlen};
    memcpy(st->tbuf + st->tlen, lens, sizeof(lens));
    memcpy(st->tbuf + st->tlen + 8, name, nlen);
    memcpy(st->tbuf + st->tlen + 8 + nlen, value, vlen);
    st->tlen += (uint32_t)need;
    return 0;
}

/* The trailer section is complete: expose it as fields (tbuf no longer moves). */
static void trailers_publish(struct h2_stream *st)
{
    size_t n = 0;
    for (uint32_t o = 0; o < st->tlen; n++) {
        uint32_t lens[2];
        memcpy(lens, st->tbuf + o, sizeof(lens));
        o += 8 + lens[0] + lens[1];
    }
    if (!n || !(st->trailers = gh_arena_alloc(&st->mem, n * sizeof(*st->trailers))))
        return;
    size_t i = 0;
    for (uint32_t o = 0; o < st->tlen; i++) {
        uint32_t lens[2];
        memcpy(lens, st->tbuf + o, sizeof(lens));
        const char *name = st->tbuf + o + 8;
        st->trailers[i] = (struct http_field){name, name + lens[0], lens[0], lens[1]};
        o += 8 + lens[0] + lens[1];
    }
    st->s.req.trailers = st->trailers;
    st->s.req.ntrailers = n;
}

/* The rule for oversized heads: a field block larger than the SETTINGS_MAX_HEADER_LIST_SIZE we
 * announced is an attack (an HPACK bomb: a few bytes on the wire that decode to megabytes), not
 * a large request, and the connection goes (GOAWAY ENHANCE_YOUR_CALM). Within it, a head past
 * max_header_size or max_header_count is an ordinary oversized request: 431 on its stream.
 * Counted per block as RFC 9113 section 6.5.2 counts: name + value + 32 per field. */
static int block_account(struct h2_conn *c, size_t nlen, size_t vlen)
{
    uint32_t max = conn_limits(c)->http2.max_header_list_size;
    size_t total = (size_t)c->block_bytes + nlen + vlen + 32;
    if (total <= max) {
        c->block_bytes = (uint32_t)total;
        return 0;
    }
    log_msg(conn_log(c), LOG_INFO,
            "client %s: HTTP/2: header list larger than max_header_list_size (%u), closing",
            c->conn->peer, (unsigned)max);
    c->goaway_code = NGHTTP2_ENHANCE_YOUR_CALM;
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* conn_feed: GOAWAY */
}

int h2_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                 const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (block_account(user, nlen, vlen) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    struct h2_stream *st = h2_stream_of(ng, f->hd.stream_id);
    if (!st || st->rejected)
        return 0;
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
        return header_add(st, name, nlen, value, vlen);
    if (f->headers.cat == NGHTTP2_HCAT_HEADERS &&
        (st->handler_on || st->start == H2S_START_PENDING) && !st->discard_body)
        return trailer_add(st, name, nlen, value, vlen);
    return 0;
}

static void body_ended(struct h2_stream *st)
{
    st->body_done = true;
    ev_timer_stop(&st->c->w->loop, &st->body_timer);
    st->wake_body = true;
    st->c->wake = true;
}

int h2_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2_stream *st = h2_stream_of(ng, f->hd.stream_id);
    if (!st)
        return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_RST_STREAM)
        st->peer_reset = true;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st->body_done = st->head_ended = end;
        if (!st->rejected) {
            stream_init(st); /* the body may follow in this batch: it needs s.max_body */
            h2_stream_set_start(st, H2S_START_PENDING);
            ((struct h2_conn *)user)->start_pending = true;
        }
    } else if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) {
        if (f->hd.type == NGHTTP2_HEADERS && st->tlen)
            trailers_publish(st);
        body_ended(st);
    }
    return 0;
}

int h2_on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                     size_t len, void *user)
{
    struct h2_stream *st = h2_stream_of(ng, id);
    if (!st || !(st->handler_on || st->start == H2S_START_PENDING) || st->discard_body) {
        nghttp2_session_consume(ng, id, len); /* nobody reads it: credit it back at once */
        return 0;
    }
    st->body_received += len;
    if (st->body_received > H2_REPLAY_MAX && !st->replay_lost)
        replay_drop(st);
    if (st->s.max_body && st->body_received > st->s.max_body && !st->s.req.connect) {
        nghttp2_session_consume(ng, id, len);
        stream_fail(st, 413, "request body larger than max_body_size");
        return 0;
    }
    if (body_append(st, data, len) < 0) {
        nghttp2_session_consume(ng, id, len);
        stream_fail(st, 500, "out of memory for the request body");
        return 0;
    }
    ev_timer_stop(&st->c->w->loop, &st->body_timer);
    st->wake_body = true;
    st->c->wake = true;
    return 0;
}

int h2_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    struct h2_stream *st = h2_stream_of(ng, id);
    if (!st)
        return 0;
    st->closed = true;
    st->deferred = false;
    if (st->counted_open) {
        st->counted_open = false;
        ((struct h2_conn *)user)->nopen--;
    }
    if (st->peer_reset || st->body_done) {
        struct h2_conn *c = user;
        c->closed_ids[c->closed_next].id = id;
        c->closed_ids[c->closed_next].reset = st->peer_reset;
        c->closed_next = (c->closed_next + 1) % H2_CLOSED_MEM;
    }
    /* A complete response without a body may go out before the handler's send_end: the
     * stream then waits for it. Anything else means the client is gone. */
    bool complete = code == NGHTTP2_NO_ERROR && st->head_final && st->no_body_out && st->body_done;
    if (st->handler_on && !complete)
        h2_stream_detach(st);
    if (!st->handler_on)
        h2_stream_finish(st);
    return 0;
}
