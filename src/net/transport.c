/* Plain TCP behind the transport ops (see transport.h). */
#include "net/transport.h"

#include <errno.h>
#include <sys/socket.h>

static int plain_handshake(struct transport *t, char *why, size_t len)
{
    return TRANSPORT_DONE;
}

static long plain_recv(struct transport *t, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(t->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0)
        return TRANSPORT_CLOSED;
    return errno == EAGAIN || errno == EWOULDBLOCK ? TRANSPORT_WANT_READ : TRANSPORT_ERROR;
}

static int plain_flush(struct transport *t, struct outq *q, struct buf_pool *pool)
{
    return outq_flush(q, t->fd, pool);
}

static int plain_shutdown(struct transport *t)
{
    return shutdown(t->fd, SHUT_WR);
}

static bool plain_pending(const struct transport *t)
{
    return false;
}

static void plain_release(struct transport *t) {}

const struct transport_ops plain_transport = {
    .name = "tcp",
    .handshake = plain_handshake,
    .recv = plain_recv,
    .flush = plain_flush,
    .shutdown = plain_shutdown,
    .pending = plain_pending,
    .release = plain_release,
    .opaque_wire = false,
    .short_read_drains = true,
};

void transport_plain(struct transport *t, int fd)
{
    *t = (struct transport){.ops = &plain_transport, .fd = fd};
}
