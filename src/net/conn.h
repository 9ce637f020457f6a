/* A client connection below its codec: the socket, who is at the other end, which listener and
 * configuration it came in on, its transport (plain TCP or TLS) and the TLS facts a request may
 * be routed or logged by (SNI, ALPN, client certificate).
 *
 * The transport is chosen once, at accept, as an ops table (as nginx's c->recv / c->send that
 * TLS swaps): the codecs read and write through it and never ask whether the connection is
 * TLS. conn.c also runs what happens before a codec: accept -> PROXY protocol header (when the
 * listener asks for one, net/proxy_accept.c) -> TLS handshake -> ALPN -> start the HTTP/1.1 or
 * HTTP/2 codec through one callback. */
#ifndef GH_CONN_H
#define GH_CONN_H

#include "core/list.h"
#include "core/loop.h"
#include "core/worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct conn;
struct config;
struct outq;
struct buf_pool;
struct tls_conn;

/* The transport. recv and send follow recv(2)/send(2): bytes, 0 at the end (recv), -1 with
 * errno (EAGAIN: wait for the socket). */
struct conn_io_ops {
    ssize_t (*recv)(struct conn *c, char *p, size_t len);
    ssize_t (*send)(struct conn *c, const char *p, size_t len);
    /* Write as much of the output queue as the socket takes (OUTQ_* of outq.h). */
    int (*flush)(struct conn *c, struct outq *q, struct buf_pool *pool);
    /* From a file: bytes sent, or -1 with errno; ENOTSUP when the transport cannot (TLS without
     * kTLS), and the caller copies through send instead. */
    ssize_t (*sendfile)(struct conn *c, int fd, off_t *off, size_t len);
    /* End our direction: close_notify under TLS, then the FIN. Reading goes on. */
    void (*shutdown)(struct conn *c);
    /* Before closing: close_notify under TLS (best effort), nothing on plain TCP. */
    void (*close_notify)(struct conn *c);
    /* A read shorter than asked means the socket is drained (plain TCP). Not under TLS, where
     * records wait inside the library: read until EAGAIN. */
    bool short_read_drains;
};

/* The protocol a connection speaks once its transport is ready. */
enum conn_proto { CONN_HTTP1, CONN_HTTP2 };

/* Start (or switch to) the codec for `proto`. The codec takes the connection over: it
 * registers the fd with the worker's loop and ends with conn_free. `initial` are bytes already
 * read from the client (an h2c preface), `ready` says that input may already wait where epoll
 * will not announce it (inside OpenSSL after a handshake): read at once. */
typedef void (*conn_start_fn)(struct conn *c, enum conn_proto proto, const char *initial,
                              size_t initial_len, bool ready);

struct conn {
    const struct conn_io_ops *io;
    struct worker *w;
    int fd;
    struct tls_conn *tls;  /* conn.c's own; NULL on plain TCP */
    bool secure;           /* arrived over TLS (X-Forwarded-Proto, the scheme) */
    char *client_subject;  /* verified client certificate subject (mTLS), or NULL */
    struct config *config; /* the snapshot the codec uses; one reference (NULL once let go) */
    int listener;          /* index in config->listeners */
    unsigned short local_port;
    bool counted; /* in the worker's per-client count (worker_conn_closed) */
    char peer[64];
    struct sockaddr_storage peer_addr;
    /* The address the client connected to: a PROXY protocol header's destination, else the
     * socket's own when some upstream sends the PROXY protocol (family 0 otherwise). */
    struct sockaddr_storage local_addr;
    conn_start_fn start;
    /* Before the codec: the handshake, in the worker's connection list on its own. */
    struct conn_base hs_base;
    struct ev_io hs_io;
    struct ev_timer hs_timer;
    struct ev_defer hs_free;
    uint32_t handshake_timeout;
};

/* Take over an accepted, non-blocking socket that arrived on listener `listener` (index in the
 * worker's configuration), bound to `local_port`; `counted`: in the per-client count. The
 * connection is counted in w->nconns until conn_free. */
void conn_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                 int listener, unsigned short local_port, bool counted, conn_start_fn start);

/* Hand the connection to the codec for `proto` (h2c: HTTP/1.1 saw the HTTP/2 preface). The
 * caller has let go of the fd's registration. */
void conn_switch(struct conn *c, enum conn_proto proto, const char *initial, size_t initial_len);

/* The codec is done: closes nothing (the codec closed the fd), frees the TLS state, drops the
 * configuration reference and counts the connection out of the worker. */
void conn_free(struct conn *c);

/* Close the socket (the codec already took it out of the loop). */
void conn_close_fd(struct conn *c);

const char *conn_sni(const struct conn *c); /* the TLS server name the client asked for, or NULL */

/* Before the codec (the PROXY protocol header, the TLS handshake) a connection waits in the
 * worker's connection list on its own, with c->hs_io and c->hs_timer: watch registers them
 * with these callbacks and a deadline of `ms`; unwatch takes them away again (the next step
 * registers its own); close closes and frees the connection at the end of the loop turn.
 * proceed runs what follows the PROXY protocol header: the TLS handshake or the codec. */
int conn_preamble_watch(struct conn *c, void (*on_io)(struct ev_io *, uint32_t),
                        void (*on_timer)(struct ev_timer *), uint32_t ms);
void conn_preamble_unwatch(struct conn *c);
void conn_preamble_close(struct conn *c);
void conn_proceed(struct conn *c);

static inline ssize_t conn_recv(struct conn *c, char *p, size_t len)
{
    return c->io->recv(c, p, len);
}

static inline ssize_t conn_send(struct conn *c, const char *p, size_t len)
{
    return c->io->send(c, p, len);
}

#endif
