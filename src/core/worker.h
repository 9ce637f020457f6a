/* A worker thread: its own event loop, listening sockets, buffers, upstream pools and the
 * configuration snapshot new requests use. A connection lives its whole life on one worker, so
 * nothing here is locked; the server struct is the only thing workers share. */
#ifndef GH_WORKER_H
#define GH_WORKER_H

#include "core/buf.h"
#include "core/freelist.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "net/client_count.h"

#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdbool.h>

struct config;
struct upool;
struct checker;

struct server {
    struct logger log;
    _Atomic(struct config *) config; /* current snapshot; the server holds one reference */
    atomic_uint config_gen;
    atomic_bool stopping;
    atomic_uint tunnels;         /* upgraded connections open, all workers together (tunnel.c) */
    pthread_mutex_t config_lock; /* serialises taking a reference against a swap */
    struct worker *workers;
    int nworkers;
};

/* What the worker may ask of any client connection, whatever its protocol. Each connection
 * type embeds a conn_base in its struct and links it into worker.conns. */
struct conn_base;
struct conn_ops {
    void (*drain)(struct conn_base *c);         /* shutdown: close if idle, else after in-flight */
    bool (*close_if_idle)(struct conn_base *c); /* make room at the limit; true if closed */
    void (*force_close)(struct conn_base *c);   /* grace period over */
    /* Optional (NULL: nothing): the worker adopted a new configuration snapshot. HTTP/2 sends a
     * graceful GOAWAY so the client moves to a new connection; HTTP/1.1 needs nothing, it takes
     * the new snapshot at its next request. */
    void (*on_reload)(struct conn_base *c);
};

struct conn_base {
    struct dlist link; /* in worker.conns, newest first */
    const struct conn_ops *ops;
};

struct worker_listener {
    struct ev_io io;
    struct worker *w;
    int index;           /* in config->listeners */
    unsigned short port; /* as bound (port 0 resolved) */
};

struct worker {
    int id;
    pthread_t thread;
    struct server *srv;
    struct ev_loop loop;
    struct buf_pool bufs;
    struct freelist proxies;   /* struct proxy, one per proxied exchange */
    struct h1_heads *h1_heads; /* free header arrays for request heads (see h1_server.c) */
    unsigned h1_nheads;
    struct log_buf access;
    struct ev_defer access_flush;
    struct config *config; /* snapshot for new requests; the worker holds one reference */
    unsigned config_gen;
    struct upool **pools; /* one per upstream of `config` */
    size_t npools;
    int *listen_fds; /* owned; -1 once closed */
    struct worker_listener *listen_io;
    size_t nlisten;
    bool accepting;
    int notify_fd; /* eventfd: reload or stop */
    struct ev_io notify_io;
    struct ev_timer drain_timer;
    struct dlist conns; /* every client connection, newest first */
    unsigned nconns;
    unsigned nclosing;           /* closed, memory not yet released */
    struct client_count clients; /* for max_connections_per_client */
    /* At max_connections_per_worker with nothing idle to close: one accepted client waits here
     * (the rest wait in the backlog) until a connection ends. */
    int parked_fd;
    struct sockaddr_storage parked_peer;
    socklen_t parked_len;
    struct worker_listener *parked_on;
    bool draining;
    uint64_t rand;            /* xorshift state: random choices of the balancer (power_of_two) */
    struct checker *health;   /* worker 0: the active health checks of its snapshot (health.c) */
    unsigned tunnels;         /* upgraded connections open on this worker (tunnel.c) */
    bool tunnels_drain_noted; /* the drain logged how many there were */
};

/* Create a worker's loop and state; listen_fds are taken over. Returns 0 or -1. */
int worker_init(struct worker *w, struct server *srv, int id, int *listen_fds, size_t nlisten);
int worker_start(struct worker *w);
/* Wake the worker to pick up a new configuration or to stop (srv->stopping). */
void worker_notify(struct worker *w);
void worker_join(struct worker *w);
void worker_fini(struct worker *w);

/* Take a reference to the server's current snapshot. */
struct config *server_config_get(struct server *srv);
/* Publish a new snapshot (takes over the caller's reference) and wake every worker. */
void server_config_swap(struct server *srv, struct config *c);

/* Connection bookkeeping used by the codecs: `counted_peer` is the address the connection was
 * counted under for max_connections_per_client, or NULL. */
struct sockaddr;
void worker_conn_closed(struct worker *w, const struct sockaddr *counted_peer);
/* Access-log line for a finished exchange. */
struct http_stream;
void worker_access_log(struct worker *w, const struct http_stream *s);

#endif
