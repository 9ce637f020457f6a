/* A connection's byte stream, plain TCP or TLS, chosen once when the connection is set up:
 * readers and writers call through the ops and never ask which it is (as nginx's c->recv and
 * c->send, which TLS swaps, or HAProxy's transport ops). The upstream side uses it
 * (proxy/upstream.c, proxy/health.c); plain_transport here, tls_client_transport in
 * net/tls_client.c. Everything is non-blocking: a call does what it can and says what it
 * waits for. */
#ifndef GH_TRANSPORT_H
#define GH_TRANSPORT_H

#include "net/outq.h"

#include <stdbool.h>
#include <stddef.h>

/* Results besides a byte count; the same values as TLS_* (net/tls.h). */
enum {
    TRANSPORT_DONE = 0,
    TRANSPORT_ERROR = -1, /* errno says why (EPROTO for a TLS failure) */
    TRANSPORT_WANT_READ = -2,
    TRANSPORT_WANT_WRITE = -3,
    TRANSPORT_CLOSED = -4, /* the peer ended its side (EOF, close_notify) */
};

struct transport;

struct transport_ops {
    const char *name; /* "tcp", "tls" */
    /* Advances the setup on a connected socket (the TLS handshake): TRANSPORT_DONE, a
     * TRANSPORT_WANT_*, or TRANSPORT_ERROR with the reason in why. */
    int (*handshake)(struct transport *t, char *why, size_t len);
    /* Up to len (> 0) bytes: > 0 bytes, TRANSPORT_CLOSED, a TRANSPORT_WANT_* (nothing now), or
     * TRANSPORT_ERROR. */
    long (*recv)(struct transport *t, void *buf, size_t len);
    /* Writes as much of q as the socket takes: outq_flush's results and errno. */
    int (*flush)(struct transport *t, struct outq *q, struct buf_pool *pool);
    /* Ends our sending side (a FIN; TLS sends no close_notify). 0 or -1 with errno. */
    int (*shutdown)(struct transport *t);
    /* Whether received bytes wait inside the transport, where epoll does not see them. */
    bool (*pending)(const struct transport *t);
    /* Frees what the transport holds (not the socket, which stays the owner's to close). */
    void (*release)(struct transport *t);
    /* Bytes on the socket are records (TLS) rather than data: a peek cannot tell data from a
     * late session ticket or a close_notify. */
    bool opaque_wire;
    /* A read shorter than asked drained the socket (TCP; through TLS it only ends a record). */
    bool short_read_drains;
};

struct transport {
    const struct transport_ops *ops;
    int fd;
    void *ctx; /* the transport's own state (the TLS connection), NULL for plain TCP */
};

extern const struct transport_ops plain_transport;

/* Plain TCP on the socket fd. */
void transport_plain(struct transport *t, int fd);

#endif
