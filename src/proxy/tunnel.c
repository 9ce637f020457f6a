/* A tunnel moves bytes between a client stream and an upstream connection, one slice at a time
 * each way and without copying: a slice read from one side is written from the buffer it was
 * read into, and that side is not read again until the other has taken it all. A blocked
 * writer thus stops its reader (back-pressure), and a tunnel holds at most one input buffer
 * per side.
 *
 * Ends: a side's end of stream (FIN, close_notify, END_STREAM) is passed on as a half-close of
 * the other side once everything before it was written, and the tunnel ends cleanly when both
 * directions have ended. An error on either side, tunnel_idle_timeout without a byte either
 * way, or the end of the shutdown grace period cut both sides at once. */
#include "proxy/tunnel.h"

#include "config/config.h"
#include "core/worker.h"
#include "http/request.h"
#include "proxy/upstate.h"
#include "proxy/upstream.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct tunnel {
    struct http_stream *s;
    struct worker *w;
    struct upool *pool; /* held: keeps `up` and its snapshot alive through reloads */
    struct upconn *uc;
    const struct cfg_upstream *up;
    atomic_uint *srv_tunnels; /* its server's count of open tunnels (upstate.h), or NULL */
    uint64_t last_ms;         /* loop time of the last byte either way */
    /* Client to upstream. */
    const char *up_slice; /* the client's bytes queued on uc->out, borrowed from its buffer */
    size_t up_slice_len;
    bool waiting_client; /* read_body said AGAIN: on_body resumes */
    bool client_done;    /* the client ended its side; the upstream got our FIN */
    /* Upstream to client. */
    size_t down_len;     /* bytes of uc->in handed to send_body, not yet released */
    bool client_blocked; /* send_body said PENDING: on_writable resumes */
    bool upstream_done;  /* the upstream ended its side; the client was told (shutdown) */
    bool dead;
    struct ev_defer kick; /* the first pump, outside the proxy's call */
    struct ev_defer free_defer;
};

unsigned tunnel_count(struct server *srv)
{
    return atomic_load_explicit(&srv->tunnels, memory_order_relaxed);
}

static struct logger *tunnel_log(const struct tunnel *t)
{
    return &t->w->srv->log;
}

static void on_free(struct ev_defer *d)
{
    struct tunnel *t = container_of(d, struct tunnel, free_defer);
    if (t->kick.queued) { /* still queued behind us: free after it ran */
        ev_defer(&t->w->loop, &t->free_defer);
        return;
    }
    free(t);
}

/* Close the upstream side now and forget the stream; the memory goes after this loop turn, as
 * callers up the stack may still look at t->dead. */
static void tunnel_free(struct tunnel *t)
{
    if (t->dead)
        return;
    t->dead = true;
    upconn_close(t->uc);
    t->uc = NULL;
    upool_drop(t->pool);
    t->w->tunnels--;
    atomic_fetch_sub_explicit(&t->w->srv->tunnels, 1, memory_order_relaxed);
    if (t->srv_tunnels)
        atomic_fetch_sub_explicit(t->srv_tunnels, 1, memory_order_relaxed);
    ev_defer(&t->w->loop, &t->free_defer);
}

/* Cut both sides: the client's codec closes (HTTP/1.1) or resets the stream (HTTP/2) and
 * writes the access-log line. */
static void tunnel_fail(struct tunnel *t, enum log_level level, const char *what, int err)
{
    struct http_stream *s = t->s;
    log_msg(tunnel_log(t), level, "tunnel to upstream %s (%s) for client %s: %s%s%s", t->up->name,
            s->upstream, s->peer, what, err ? ": " : "", err ? strerror(err) : "");
    tunnel_free(t);
    s->ops->abort(s);
}

/* Both directions ended and everything was handed on: the codec flushes and ends the
 * exchange. */
static void maybe_done(struct tunnel *t)
{
    if (t->dead || !t->client_done || !t->upstream_done || t->client_blocked)
        return;
    struct http_stream *s = t->s;
    log_msg(tunnel_log(t), LOG_DEBUG, "tunnel to upstream %s (%s) for client %s: ended",
            t->up->name, s->upstream, s->peer);
    tunnel_free(t);
    s->ops->send_end(s);
}

/* ---- client to upstream ------------------------------------------------------------------- */

static void upstream_write_failed(struct tunnel *t, int err)
{
    /* After the upstream's FIN a failed write means it closed altogether: the usual end of a
     * WebSocket, whose server closes first once the close frames crossed. */
    if (t->upstream_done)
        tunnel_fail(t, LOG_DEBUG, "upstream closed", 0);
    else
        tunnel_fail(t, LOG_INFO, "write to the upstream failed", err);
}

/* The client ended its side. Under TLS the upstream gets a FIN without close_notify (the TLS
 * client layer has no half-close): it ends the upstream's input all the same. */
static void client_ended(struct tunnel *t)
{
    t->client_done = true;
    upconn_shutdown(t->uc);
    maybe_done(t);
}

static void pump_up(struct tunnel *t)
{
    struct upconn *uc = t->uc;
    struct http_stream *s = t->s;
    t->waiting_client = false;
    while (!t->dead && !t->client_done) {
        if (!outq_empty(&uc->out)) {
            int r = upconn_flush(uc);
            if (r == OUTQ_AGAIN) {
                uc->wr_ready = false; /* EPOLLOUT resumes */
                return;
            }
            if (r == OUTQ_ERROR) {
                upstream_write_failed(t, errno);
                return;
            }
        }
        if (t->up_slice) {
            t->up_slice = NULL;
            t->last_ms = t->w->loop.now;
            s->ops->body_consumed(s, t->up_slice_len);
        }
        const char *data;
        size_t len;
        enum body_result r = s->ops->read_body(s, &data, &len);
        if (r == BODY_AGAIN) {
            t->waiting_client = true;
            return;
        }
        if (r == BODY_ERROR)
            return; /* the client is gone: its codec closes, on_close follows */
        if (r == BODY_END) {
            client_ended(t);
            return;
        }
        outq_set_ext(&uc->out, data, len, "", 0);
        t->up_slice = data;
        t->up_slice_len = len;
    }
}

/* ---- upstream to client ------------------------------------------------------------------- */

static void release_down(struct tunnel *t)
{
    struct buf *b = t->uc->in;
    if (!b)
        return;
    b->start += (uint32_t)t->down_len;
    t->down_len = 0;
    if (b->start == b->end)
        b->start = b->end = 0;
}

/* Hand what the upstream sent to the client. False when pumping must stop. */
static bool send_down(struct tunnel *t)
{
    struct buf *b = t->uc->in;
    t->down_len = buf_len(b);
    t->last_ms = t->w->loop.now;
    enum send_result r = t->s->ops->send_body(t->s, b->data + b->start, t->down_len);
    if (r == SEND_PENDING) {
        t->client_blocked = true;
        return false;
    }
    if (r == SEND_ERROR)
        return false; /* the client is gone: on_close follows */
    release_down(t);
    return true;
}

static void pump_down(struct tunnel *t)
{
    struct upconn *uc = t->uc;
    while (!t->dead && !t->client_blocked && !t->upstream_done) {
        if (uc->in && buf_len(uc->in)) {
            if (!send_down(t))
                return;
            continue;
        }
        if (uc->eof) {
            t->upstream_done = true;
            t->s->ops->shutdown(t->s);
            maybe_done(t);
            return;
        }
        if (!uc->rd_ready)
            return;
        int n = upconn_read(uc);
        if (n < 0) {
            tunnel_fail(t, LOG_INFO, "read from the upstream failed", errno);
            return;
        }
        if (n == 0 && !uc->eof)
            return;
    }
}

/* ---- events ------------------------------------------------------------------------------- */

/* tunnel_idle_timeout counts from the last byte either way; the timer is set for the whole span
 * and, when it fires early, set again for the rest (cheaper than re-arming it per byte). */
static void on_timeout(struct tunnel *t)
{
    uint64_t idle = t->w->loop.now - t->last_ms, limit = t->up->tunnel_idle_timeout;
    if (idle < limit) {
        ev_timer_start(&t->w->loop, &t->uc->timer, limit - idle);
        return;
    }
    tunnel_fail(t, LOG_INFO, "no byte either way for tunnel_idle_timeout, closing", 0);
}

static void on_upconn(struct upconn *uc, enum upconn_event ev)
{
    struct tunnel *t = uc->user;
    if (t->dead)
        return;
    if (ev == UPCONN_TIMEOUT) {
        on_timeout(t);
        return;
    }
    if (uc->wr_ready && !outq_empty(&uc->out))
        pump_up(t);
    if (!t->dead)
        pump_down(t);
}

static void on_kick(struct ev_defer *d)
{
    struct tunnel *t = container_of(d, struct tunnel, kick);
    if (t->dead)
        return;
    pump_up(t); /* bytes the client sent behind its request head */
    if (!t->dead)
        pump_down(t); /* bytes the upstream sent behind its 101 */
}

static void on_body(struct http_stream *s)
{
    struct tunnel *t = s->handler_data;
    if (!t->dead && t->waiting_client)
        pump_up(t);
}

static void on_writable(struct http_stream *s)
{
    struct tunnel *t = s->handler_data;
    if (t->dead)
        return;
    t->client_blocked = false;
    release_down(t);
    pump_down(t);
}

static void on_close(struct http_stream *s)
{
    struct tunnel *t = s->handler_data;
    if (!t->dead)
        log_msg(tunnel_log(t), LOG_DEBUG, "tunnel to upstream %s (%s): client %s side closed",
                t->up->name, s->upstream, s->peer);
    tunnel_free(t);
}

/* Shutdown: tunnels do not end on their own, so they stay until the grace period is over and
 * are closed then; say once per worker how many there are. */
static void on_drain(struct http_stream *s)
{
    struct tunnel *t = s->handler_data;
    if (t->dead || t->w->tunnels_drain_noted)
        return;
    t->w->tunnels_drain_noted = true;
    log_msg(tunnel_log(t), LOG_INFO,
            "worker %d: draining with %u open tunnel%s (WebSocket/upgraded); closing them when "
            "shutdown_timeout is over",
            t->w->id, t->w->tunnels, t->w->tunnels == 1 ? "" : "s");
}

static const struct http_handler_ops tunnel_handler_ops = {
    .on_body = on_body,
    .on_writable = on_writable,
    .on_close = on_close,
    .on_drain = on_drain,
};

int tunnel_start(struct http_stream *s, struct upconn *uc, struct upool *pool,
                 const struct cfg_upstream *up)
{
    struct tunnel *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    *t = (struct tunnel){.s = s, .w = s->worker, .pool = pool, .uc = uc, .up = up};
    t->kick.cb = on_kick;
    t->free_defer.cb = on_free;
    t->last_ms = t->w->loop.now;
    upool_hold(pool);
    s->handler = &tunnel_handler_ops;
    s->handler_data = t;
    uc->user = t;
    uc->on_event = on_upconn;
    ev_timer_start(&t->w->loop, &uc->timer, up->tunnel_idle_timeout);
    t->w->tunnels++;
    atomic_fetch_add_explicit(&t->w->srv->tunnels, 1, memory_order_relaxed);
    /* A server being replaced (an app's old instance) waits for its tunnels, up to a bound. */
    if (up->state && uc->server < up->nservers) {
        t->srv_tunnels = &up->state->servers[uc->server]->tunnels;
        atomic_fetch_add_explicit(t->srv_tunnels, 1, memory_order_relaxed);
    }
    if (s->worker->draining)
        on_drain(s);
    ev_defer(&t->w->loop, &t->kick);
    return 0;
}
