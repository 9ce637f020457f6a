/* The client connection below the codecs: its transports (plain TCP, TLS) and what comes
 * before a codec (the TLS handshake, the protocol ALPN chose). */
#include "net/conn.h"

#include "config/config.h"
#include "core/sock.h"
#include "net/outq.h"
#include "net/proxy_accept.h"
#include "net/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- plain TCP ---------------------------------------------------------------------------- */

static ssize_t plain_recv(struct conn *c, char *p, size_t len)
{
    ssize_t n;
    do
        n = recv(c->fd, p, len, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t plain_send(struct conn *c, const char *p, size_t len)
{
    ssize_t n;
    do
        n = send(c->fd, p, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

static int plain_flush(struct conn *c, struct outq *q, struct buf_pool *pool)
{
    return outq_flush(q, c->fd, pool);
}

static ssize_t plain_sendfile(struct conn *c, int fd, off_t *off, size_t len)
{
    ssize_t n;
    do
        n = sendfile(c->fd, fd, off, len);
    while (n < 0 && errno == EINTR);
    return n;
}

static void plain_shutdown(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
}

static void plain_close_notify(struct conn *c)
{
    (void)c;
}

static const struct conn_io_ops plain_ops = {
    .recv = plain_recv,
    .send = plain_send,
    .flush = plain_flush,
    .sendfile = plain_sendfile,
    .shutdown = plain_shutdown,
    .close_notify = plain_close_notify,
    .short_read_drains = true,
};

/* ---- TLS ---------------------------------------------------------------------------------- */

/* tls_read with recv's conventions: bytes, 0 at the end, -1 with errno. */
static ssize_t tls_recv(struct conn *c, char *p, size_t len)
{
    long n = tls_read(c->tls, p, len);
    if (n > 0)
        return n;
    if (n == TLS_CLOSED)
        return 0;
    errno = n == TLS_WANT_READ || n == TLS_WANT_WRITE ? EAGAIN : EPROTO;
    return -1;
}

static long tls_writer(void *ctx, const char *p, size_t len)
{
    long n = tls_write(ctx, p, len);
    if (n > 0)
        return n;
    errno = n == TLS_WANT_READ || n == TLS_WANT_WRITE ? EAGAIN : EPIPE;
    return -1;
}

static ssize_t tls_send(struct conn *c, const char *p, size_t len)
{
    return tls_writer(c->tls, p, len);
}

static int tls_flush(struct conn *c, struct outq *q, struct buf_pool *pool)
{
    return outq_flush_fn(q, tls_writer, c->tls, pool);
}

/* Without kTLS the file's bytes must pass through OpenSSL: the caller copies. */
/* NOLINTNEXTLINE(readability-non-const-parameter): the signature of conn_io_ops.sendfile */
static ssize_t tls_sendfile(struct conn *c, int fd, off_t *off, size_t len)
{
    (void)c, (void)fd, (void)off, (void)len;
    errno = ENOTSUP;
    return -1;
}

static void tls_close_notify(struct conn *c)
{
    tls_shutdown(c->tls);
}

static void tls_conn_shutdown(struct conn *c)
{
    tls_shutdown(c->tls);
    shutdown(c->fd, SHUT_WR);
}

static const struct conn_io_ops tls_ops = {
    .recv = tls_recv,
    .send = tls_send,
    .flush = tls_flush,
    .sendfile = tls_sendfile,
    .shutdown = tls_conn_shutdown,
    .close_notify = tls_close_notify,
    .short_read_drains = false,
};

/* ---- life ----------------------------------------------------------------------------------- */

const char *conn_sni(const struct conn *c)
{
    return c->tls ? tls_conn_sni(c->tls) : NULL;
}

void conn_close_fd(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void conn_free(struct conn *c)
{
    struct worker *w = c->w;
    tls_conn_free(c->tls);
    free(c->client_subject);
    if (c->config)
        config_unref(c->config);
    worker_conn_closed(w, c->counted ? (const struct sockaddr *)&c->peer_addr : NULL);
    free(c);
}

void conn_switch(struct conn *c, enum conn_proto proto, const char *initial, size_t initial_len)
{
    c->start(c, proto, initial, initial_len, true);
}

/* ---- before the codec: the TLS handshake -------------------------------------------------- */

static const struct conn_ops hs_conn_ops;

/* Closing is deferred to the end of the loop turn, as the codecs' is, so that no caller is
 * left holding a freed connection. No close_notify: the handshake did not finish. */
void conn_preamble_close(struct conn *c)
{
    if (c->fd < 0)
        return;
    c->w->nclosing++;
    ev_io_del(&c->w->loop, &c->hs_io);
    ev_timer_stop(&c->w->loop, &c->hs_timer);
    conn_close_fd(c);
    ev_defer(&c->w->loop, &c->hs_free);
}

static void hs_on_free(struct ev_defer *d)
{
    struct conn *c = container_of(d, struct conn, hs_free);
    dlist_remove(&c->hs_base.link);
    c->w->nclosing--;
    conn_free(c);
}

/* Plain HTTP sent to a TLS port: say so in plain HTTP, as nginx does, rather than leave the
 * client with a reset it cannot explain. */
static void answer_plaintext(struct conn *c)
{
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 41\r\nConnection: close\r\n\r\n"
                               "plain HTTP request sent to an HTTPS port\n";
    char sink[4096];
    /* Take the request out of the socket first: closing with unread bytes would reset the
     * connection and could destroy the answer before the client reads it. */
    while (recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
        ;
    ssize_t n = send(c->fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

/* The transport is ready: the codec ALPN chose takes over (HTTP/1.1 without ALPN). The
 * request may already wait inside OpenSSL, so the codec reads at once. */
static void hs_done(struct conn *c)
{
    conn_preamble_unwatch(c); /* before the codec registers the same fd */
    c->client_subject = tls_conn_client_subject_dup(c->tls);
    const char *alpn = tls_conn_alpn(c->tls);
    c->start(c, alpn && strcmp(alpn, "h2") == 0 ? CONN_HTTP2 : CONN_HTTP1, NULL, 0, true);
}

static void handshake(struct conn *c)
{
    int r = tls_handshake(c->tls);
    if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
        return; /* the next epoll edge resumes it */
    if (r == TLS_CLOSED) {
        /* Port scans and TCP health checks connect and leave: routine, not worth a line. */
        log_msg(&c->w->srv->log, LOG_DEBUG, "client %s: TLS handshake: closed by the client",
                c->peer);
        conn_preamble_close(c);
        return;
    }
    if (r != TLS_DONE) {
        char why[160];
        const char *what = tls_last_error(c->tls, why, sizeof(why));
        log_msg(&c->w->srv->log, LOG_INFO, "client %s: TLS handshake failed: %s", c->peer, what);
        if (strstr(what, "plaintext"))
            answer_plaintext(c);
        conn_preamble_close(c);
        return;
    }
    hs_done(c);
}

static void hs_on_io(struct ev_io *io, uint32_t events)
{
    struct conn *c = container_of(io, struct conn, hs_io);
    (void)events;
    if (c->fd >= 0)
        handshake(c);
}

static void hs_on_timer(struct ev_timer *t)
{
    struct conn *c = container_of(t, struct conn, hs_timer);
    log_msg(&c->w->srv->log, LOG_INFO,
            "client %s: TLS handshake timed out (handshake_timeout %u ms)", c->peer,
            c->handshake_timeout);
    conn_preamble_close(c);
}

/* A shutdown or a reload lets a handshake finish: the codec then serves one request or sees
 * the worker draining. Only the grace period's end closes it. */
static void hs_drain(struct conn_base *b)
{
    (void)b;
}

static bool hs_close_if_idle(struct conn_base *b)
{
    (void)b;
    return false;
}

static void hs_force_close(struct conn_base *b)
{
    conn_preamble_close(container_of(b, struct conn, hs_base));
}

static const struct conn_ops hs_conn_ops = {
    .drain = hs_drain,
    .close_if_idle = hs_close_if_idle,
    .force_close = hs_force_close,
};

/* On a TLS listener: wait for the handshake in the worker's connection list. 0, or -1 when
 * out of memory (nothing is registered then). */
static int hs_start(struct conn *c, const struct cfg_listener *l)
{
    c->tls = tls_conn_new(l->tls->server, c->fd);
    if (!c->tls)
        return -1;
    c->io = &tls_ops;
    c->secure = true;
    c->handshake_timeout = l->tls->handshake_timeout;
    return conn_preamble_watch(c, hs_on_io, hs_on_timer, c->handshake_timeout);
}

int conn_preamble_watch(struct conn *c, void (*on_io)(struct ev_io *, uint32_t),
                        void (*on_timer)(struct ev_timer *), uint32_t ms)
{
    c->hs_io = (struct ev_io){.fd = c->fd, .cb = on_io};
    c->hs_timer.cb = on_timer;
    c->hs_free.cb = hs_on_free;
    if (ev_io_add(&c->w->loop, &c->hs_io, 0) < 0)
        return -1;
    c->hs_base.ops = &hs_conn_ops;
    dlist_push(&c->w->conns, &c->hs_base.link);
    ev_timer_start(&c->w->loop, &c->hs_timer, ms);
    return 0;
}

void conn_preamble_unwatch(struct conn *c)
{
    ev_io_del(&c->w->loop, &c->hs_io);
    ev_timer_stop(&c->w->loop, &c->hs_timer);
    dlist_remove(&c->hs_base.link);
}

/* ---- accept ------------------------------------------------------------------------------- */

static const struct cfg_listener *conn_listener(const struct conn *c)
{
    const struct config *cfg = c->config;
    return (size_t)c->listener < cfg->nlisteners ? &cfg->listeners[c->listener] : NULL;
}

void conn_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                 int listener, unsigned short local_port, bool counted, conn_start_fn start)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    /* Every client connection, HTTP/1.1 or HTTP/2, plain or TLS. */
    sock_nodelay(fd);
    c->w = w;
    c->fd = fd;
    c->io = &plain_ops;
    c->start = start;
    c->config = w->config;
    config_ref(c->config);
    sock_host_text(peer, c->peer, sizeof(c->peer));
    memcpy(&c->peer_addr, peer, peer_len < sizeof(c->peer_addr) ? peer_len : sizeof(c->peer_addr));
    c->listener = listener;
    c->local_port = local_port;
    if (c->config->proxy_protocol_out) { /* the upstream's header names where the client came */
        socklen_t len = sizeof(c->local_addr);
        if (getsockname(fd, (struct sockaddr *)&c->local_addr, &len) < 0)
            c->local_addr.ss_family = 0;
    }
    /* A PROXY protocol header, when the listener asks for one, is read first: it names the
     * client before TLS or HTTP see a byte. */
    const struct cfg_listener *l = conn_listener(c);
    bool header = l && l->proxy_protocol;
    if (header ? proxy_accept_start(c) < 0
               : l && l->tls && (!l->tls->server || hs_start(c, l) < 0)) {
        tls_conn_free(c->tls);
        config_unref(c->config);
        free(c);
        close(fd);
        return;
    }
    c->counted = counted;
    w->nconns++;
    if (!c->tls && !header)
        start(c, CONN_HTTP1, NULL, 0, false);
}

void conn_proceed(struct conn *c)
{
    const struct cfg_listener *l = conn_listener(c);
    if (l && l->tls && (!l->tls->server || hs_start(c, l) < 0)) {
        conn_close_fd(c);
        conn_free(c);
        return;
    }
    if (!c->tls) /* bytes behind the header may be waiting already: read at once */
        c->start(c, CONN_HTTP1, NULL, 0, true);
}
