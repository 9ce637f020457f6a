/* Active health checks (see health.h). Each checked server has one struct check: a small state
 * machine driven by its socket and one timer. Between runs the timer waits for the next one;
 * during a run it bounds the whole run (health_check.timeout), and the socket moves the check
 * through connect, TLS handshake, sending the request and reading the status line. Everything
 * is non-blocking: a slow or silent server costs a timer and a file descriptor, never the loop.
 *
 * Results go to the server's shared state (struct upsrv), the only thing the checker writes
 * that others read: health, the results in a row, the last error and, when a server comes
 * back, the start of its slow start. */
#include "proxy/health.h"

#include "config/config.h"
#include "core/list.h"
#include "core/log.h"
#include "core/sock.h"
#include "core/worker.h"
#include "http/h1_client.h"
#include "net/transport.h"
#include "proxy/upstate.h"
#include "proxy/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define STATUS_LINE_MAX 512 /* a status line longer than this is not one */

enum phase { PH_WAIT, PH_CONNECT, PH_HANDSHAKE, PH_SEND, PH_READ };

struct checker;

struct check {
    struct checker *hc;
    const struct cfg_upstream *up;
    size_t server; /* index in up->servers */
    struct upsrv *srv;
    enum phase phase;
    struct transport t; /* t.fd is -1 between runs */
    struct ev_io io;
    struct ev_timer timer; /* the next run while waiting, the timeout while running */
    uint64_t started;      /* loop clock, ms */
    struct outq out;       /* type http: the request, while it is being sent */
    char line[STATUS_LINE_MAX + 1];
    size_t got;
};

/* The checks of one snapshot. */
struct checker {
    struct worker *w;
    struct config *config; /* keeps every cfg_upstream and upstate the checks point at alive */
    struct check *checks;
    size_t n;
    struct ev_defer free_defer;
};

/* ---- results ------------------------------------------------------------------------------ */

static struct logger *check_log(const struct check *c)
{
    return &c->hc->w->srv->log;
}

static const char *server_text(const struct check *c)
{
    return c->up->servers[c->server].text;
}

static void record_ok(struct check *c, uint64_t now)
{
    unsigned n;

    if (!upstate_check_done(c->up->state, c->server, true, now, &n))
        return;
    log_msg(check_log(c), LOG_INFO, "upstream %s: server %s is up (%u successful check%s)",
            c->up->name, server_text(c), n, n == 1 ? "" : "s");
}

static void record_failure(struct check *c, uint64_t now, const char *why)
{
    unsigned n;

    snprintf(c->srv->last_error, sizeof c->srv->last_error, "health check: %s", why);
    log_msg(check_log(c), LOG_DEBUG, "upstream %s: server %s: health check failed: %s", c->up->name,
            server_text(c), why);
    if (!upstate_check_done(c->up->state, c->server, false, now, &n))
        return;
    log_msg(check_log(c), LOG_WARN, "upstream %s: server %s is down (%u failed check%s: %s)",
            c->up->name, server_text(c), n, n == 1 ? "" : "s", why);
}

/* ---- one run ------------------------------------------------------------------------------ */

static void check_close(struct check *c)
{
    if (c->t.fd < 0)
        return;
    ev_io_del(&c->hc->w->loop, &c->io);
    outq_release(&c->out, &c->hc->w->bufs);
    c->t.ops->release(&c->t);
    close(c->t.fd);
    c->t.fd = -1;
}

/* The run is over: record it and wait for the next, `interval` after this one started (at once
 * when the run took longer than that). */
static void finish(struct check *c, bool ok, const char *why)
{
    struct ev_loop *loop = &c->hc->w->loop;
    uint64_t next = c->started + c->up->health_check.interval;

    check_close(c);
    if (ok)
        record_ok(c, loop->now);
    else
        record_failure(c, loop->now, why);
    c->phase = PH_WAIT;
    ev_timer_start(loop, &c->timer, next > loop->now ? next - loop->now : 0);
}

static void fail_errno(struct check *c, const char *what, int err)
{
    char why[160];

    if (err == ECONNREFUSED && !strcmp(what, "connect"))
        snprintf(why, sizeof why, "connect refused");
    else
        snprintf(why, sizeof why, "%s failed: %s", what, strerror(err));
    finish(c, false, why);
}

static struct slice text_slice(const char *text)
{
    return (struct slice){text, strlen(text)};
}

/* The request of a type http check, through the client codec into c->out. */
static int put_request(struct check *c)
{
    const struct cfg_health_check *hc = &c->up->health_check;
    const struct cfg_addr *a = &c->up->servers[c->server];
    /* By default the address as written ("app.internal:5000"), never the one it resolved to. */
    const char *host = hc->host ? hc->host : a->host ? a->host : a->text;
    struct outq *q = &c->out;
    struct buf_pool *pool = &c->hc->w->bufs;

    if (h1_client_put_request_line(q, pool, text_slice(hc->method ? hc->method : "GET"),
                                   text_slice(hc->path ? hc->path : "/"), (struct slice){0}) ||
        h1_client_put_field(q, pool, "Host", 4, host, strlen(host)) ||
        h1_client_put_field(q, pool, "User-Agent", 10, "gatehouse-health-check", 22) ||
        h1_client_put_field(q, pool, "Connection", 10, "close", 5) || h1_client_put_end(q, pool))
        return -1;
    return 0;
}

/* Connected, and for TLS upstreams handshaken: a tcp check has succeeded, an http one sends. */
static int transport_ready(struct check *c)
{
    if (c->up->health_check.type == CFG_CHECK_TCP) {
        finish(c, true, NULL);
        return -1;
    }
    if (put_request(c) < 0) {
        finish(c, false, "cannot build the request");
        return -1;
    }
    c->phase = PH_SEND;
    return 1;
}

/* Each step returns 1 when it moved to the next phase, 0 to wait for the socket, -1 when the
 * run finished. */
/* TCP is up: the transport (TLS for a TLS upstream) is chosen as for proxied requests, and a
 * plain one is ready at once. */
static int step_connect(struct check *c, uint32_t events)
{
    int err;

    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return 0;
    if ((err = sock_error(c->t.fd))) {
        fail_errno(c, "connect", err);
        return -1;
    }
    /* A check names no client: v1 UNKNOWN, v2 LOCAL (the receiver keeps our address). */
    if (upstream_send_proxy_header(c->t.fd, c->up, NULL, NULL) < 0) {
        finish(c, false, "could not send the PROXY protocol header");
        return -1;
    }
    if (upstream_transport_start(&c->t, c->up, c->server, NULL) < 0) {
        finish(c, false, "TLS handshake failed: cannot set up the connection");
        return -1;
    }
    c->phase = PH_HANDSHAKE;
    return 1;
}

static int step_handshake(struct check *c)
{
    char reason[200], why[240];
    int r = c->t.ops->handshake(&c->t, reason, sizeof reason);

    if (r == TRANSPORT_WANT_READ || r == TRANSPORT_WANT_WRITE)
        return 0;
    if (r != TRANSPORT_DONE) {
        snprintf(why, sizeof why, "TLS handshake failed: %s", reason);
        finish(c, false, why);
        return -1;
    }
    return transport_ready(c);
}

static int step_send(struct check *c)
{
    int r = c->t.ops->flush(&c->t, &c->out, &c->hc->w->bufs);

    if (r == OUTQ_AGAIN)
        return 0;
    if (r == OUTQ_ERROR) {
        fail_errno(c, "send", errno);
        return -1;
    }
    c->phase = PH_READ;
    return 1;
}

static void judge_status(struct check *c)
{
    const struct cfg_health_check *hc = &c->up->health_check;
    int status = h1_client_status_line(c->line, c->got);
    char why[64];

    if (status < 0) {
        finish(c, false, "bad status line");
        return;
    }
    if ((unsigned)status < hc->status_min || (unsigned)status > hc->status_max) {
        snprintf(why, sizeof why, "status %d", status);
        finish(c, false, why);
        return;
    }
    finish(c, true, NULL);
}

/* Bytes read into c->line: > 0, 0 when nothing now, -1 after finishing the run. */
static long read_some(struct check *c, size_t room)
{
    long n = c->t.ops->recv(&c->t, c->line + c->got, room);

    if (n > 0)
        return n;
    if (n == TRANSPORT_WANT_READ || n == TRANSPORT_WANT_WRITE)
        return 0;
    if (n == TRANSPORT_CLOSED)
        finish(c, false, "connection closed before the status line");
    else
        fail_errno(c, "read", errno);
    return -1;
}

static int step_read(struct check *c)
{
    for (;;) {
        if (c->got == STATUS_LINE_MAX) {
            finish(c, false, "bad status line");
            return -1;
        }
        long n = read_some(c, STATUS_LINE_MAX - c->got);
        if (n <= 0)
            return (int)n;
        c->got += (size_t)n;
        c->line[c->got] = '\0';
        if (memchr(c->line, '\n', c->got)) {
            judge_status(c);
            return -1;
        }
    }
}

/* Edge-triggered: every event runs the state machine as far as the socket allows. */
static void on_io(struct ev_io *io, uint32_t events)
{
    struct check *c = container_of(io, struct check, io);
    int r = 1;

    while (r > 0) {
        switch (c->phase) {
        case PH_CONNECT:
            r = step_connect(c, events);
            break;
        case PH_HANDSHAKE:
            r = step_handshake(c);
            break;
        case PH_SEND:
            r = step_send(c);
            break;
        case PH_READ:
            r = step_read(c);
            break;
        case PH_WAIT:
            r = 0;
            break;
        }
    }
}

static void start_run(struct check *c)
{
    struct ev_loop *loop = &c->hc->w->loop;
    const struct cfg_addr *a = &c->up->servers[c->server];
    int fd;

    c->started = loop->now;
    c->got = 0;
    if ((fd = sock_connect((const struct sockaddr *)&a->sa, a->len)) < 0) {
        fail_errno(c, "connect", errno);
        return;
    }
    transport_plain(&c->t, fd);
    c->io = (struct ev_io){.fd = fd, .cb = on_io};
    if (ev_io_add(loop, &c->io, 0) < 0) {
        int err = errno;
        close(fd);
        c->t.fd = -1;
        fail_errno(c, "epoll", err);
        return;
    }
    c->phase = PH_CONNECT;
    ev_timer_start(loop, &c->timer, c->up->health_check.timeout);
}

static void on_timer(struct ev_timer *t)
{
    struct check *c = container_of(t, struct check, timer);
    static const char *const timed_out[] = {
        [PH_CONNECT] = "connect timed out",
        [PH_HANDSHAKE] = "TLS handshake timed out",
        [PH_SEND] = "timed out sending the request",
        [PH_READ] = "timed out waiting for the status line",
    };

    if (c->phase == PH_WAIT)
        start_run(c);
    else
        finish(c, false, timed_out[c->phase]);
}

/* ---- set up and tear down ----------------------------------------------------------------- */

/* Events of this loop turn may still name a check: memory goes at the end of the turn. */
static void checker_release(struct ev_defer *d)
{
    struct checker *hc = container_of(d, struct checker, free_defer);

    free(hc->checks);
    if (hc->config)
        config_unref(hc->config);
    free(hc);
}

/* Runs in flight are abandoned: their results would describe the old snapshot's settings. */
static void checker_stop(struct checker *hc)
{
    if (!hc)
        return;
    for (size_t i = 0; i < hc->n; i++) {
        check_close(&hc->checks[i]);
        ev_timer_stop(&hc->w->loop, &hc->checks[i].timer);
        hc->checks[i].phase = PH_WAIT; /* a late event for it does nothing */
    }
    ev_defer(&hc->w->loop, &hc->free_defer);
}

static bool checked(const struct cfg_upstream *u)
{
    return u->health_check.enabled && u->state;
}

/* A server whose upstream no longer has checks would stay down for good: it is up again. */
static void release_unchecked(struct worker *w, const struct config *c)
{
    for (size_t u = 0; u < c->nupstreams; u++) {
        const struct cfg_upstream *up = &c->upstreams[u];
        for (size_t i = 0; !up->health_check.enabled && up->state && i < up->nservers; i++) {
            struct upsrv *v = up->state->servers[i];
            atomic_store(&v->check_ok, 0);
            atomic_store(&v->check_fail, 0);
            if (atomic_exchange(&v->health, UPSRV_UP) == UPSRV_DOWN) {
                atomic_store(&v->up_since_ms, w->loop.now);
                log_msg(&w->srv->log, LOG_INFO, "upstream %s: server %s is up (health checks off)",
                        up->name, up->servers[i].text);
            }
        }
    }
}

/* The first runs of an upstream's servers are spread over its first interval, so that a large
 * upstream is not probed all at once. */
static void add_checks(struct checker *hc, const struct cfg_upstream *u)
{
    for (size_t i = 0; i < u->nservers; i++) {
        struct check *c = &hc->checks[hc->n++];
        *c =
            (struct check){.hc = hc, .up = u, .server = i, .srv = u->state->servers[i], .t.fd = -1};
        c->timer.cb = on_timer;
        ev_timer_start(&hc->w->loop, &c->timer,
                       (uint64_t)u->health_check.interval * i / u->nservers);
    }
}

int health_set_config(struct worker *w, struct config *c)
{
    size_t n = 0;
    struct checker *hc;

    checker_stop(w->health); /* only worker 0 runs checks (see health.h) */
    w->health = NULL;
    if (!c)
        return 0;
    release_unchecked(w, c);
    for (size_t u = 0; u < c->nupstreams; u++)
        n += checked(&c->upstreams[u]) ? c->upstreams[u].nservers : 0;
    if (!n)
        return 0;
    if (!(hc = calloc(1, sizeof *hc)) || !(hc->checks = calloc(n, sizeof *hc->checks))) {
        free(hc);
        log_msg(&w->srv->log, LOG_ERROR, "health checks: out of memory, none will run");
        return -1;
    }
    hc->w = w;
    hc->free_defer.cb = checker_release;
    hc->config = c;
    config_ref(c);
    for (size_t u = 0; u < c->nupstreams; u++)
        if (checked(&c->upstreams[u]))
            add_checks(hc, &c->upstreams[u]);
    w->health = hc;
    return 0;
}
