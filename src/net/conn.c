/* The client connection below the codecs: its transports (plain TCP, TLS). */
#include "net/conn.h"

#include "config/config.h"
#include "net/outq.h"
#include "net/sock.h"
#include "net/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
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

/* The connection's facts, on plain TCP; conn_use_tls switches the transport. NULL on out of
 * memory. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                      int listener, unsigned short local_port)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->w = w;
    c->fd = fd;
    c->io = &plain_ops;
    c->config = w->config;
    config_ref(c->config);
    sock_host_text(peer, c->peer, sizeof(c->peer));
    memcpy(&c->peer_addr, peer, peer_len < sizeof(c->peer_addr) ? peer_len : sizeof(c->peer_addr));
    c->listener = listener;
    c->local_port = local_port;
    return c;
}

int conn_use_tls(struct conn *c, struct tls_server *s)
{
    c->tls = tls_conn_new(s, c->fd);
    if (!c->tls)
        return -1;
    c->io = &tls_ops;
    c->secure = true;
    return 0;
}
