/* A worker thread: its own event loop, listening sockets, buffers, upstream pools and the
 * configuration snapshot new requests use. A connection lives its whole life on one worker, so
 * nothing here is locked; the server struct is the only thing workers share. */
#ifndef GH_WORKER_H
#define GH_WORKER_H

#include "core/buf.h"
#include "core/client_count.h"
#include "core/freelist.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"

#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdbool.h>

struct config;
struct upool;
struct checker;
struct compress_worker;
struct files_worker;
struct worker;

/* What the layers above the core plug into every worker; installed by main before worker_init.
 * The core accepts clients and keeps the configuration and the connection list; it knows
 * nothing of connections' protocols or of the modules that keep per-worker state (upstream
 * pools, health checks, codec caches): they come in through these. Only accept is required. */
struct http_stream;
struct worker_hooks {
    /* An admitted client on listener `listener` (index in w->config), bound to `local_port`;
     * `counted`: in the per-client count. Takes the socket over. */
    void (*accept)(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                   int listener, unsigned short local_port, bool counted);
    int (*init)(struct worker *w);   /* end of worker_init, w->config set; -1 fails it */
    void (*start)(struct worker *w); /* the worker's thread runs, its listeners open */
    void (*reload)(struct worker *w, struct config *c); /* before w->config becomes c */
    void (*drain)(struct worker *w);                    /* shutdown begins */
    void (*stop)(struct worker *w); /* worker_fini begins (the loop is still there) */
    void (*fini)(struct worker *w); /* worker_fini ends */
    /* A request head is complete: route it and start its handler (route/dispatch.c's
     * handler_dispatch). The codecs reach it here, through http_dispatch, so that they never
     * call up into the router; main installs it. */
    void (*dispatch)(struct http_stream *s);
};

struct server {
    const struct worker_hooks *hooks;
    struct logger log;
    _Atomic(struct config *) config; /* current snapshot; the server holds one reference */
    atomic_uint config_gen;
    atomic_bool stopping;
    atomic_uint tunnels;            /* upgraded connections open, all workers together (tunnel.c) */
    atomic_ullong accept_warned_ms; /* last "out of file descriptors" warning (worker.c) */
    pthread_mutex_t config_lock;    /* serialises taking a reference against a swap */
    struct worker *workers;
    int nworkers; /* initialised */
    int nstarted; /* of those, threads running (to join) */
};

/* What the worker may ask of any client connection, whatever its protocol. Each connection
 * type embeds a conn_base in its struct and links it into worker.conns. */
struct conn_base;
struct conn_ops {
    void (*drain)(struct conn_base *c);         /* shutdown: close if idle, else after in-flight */
    bool (*close_if_idle)(struct conn_base *c); /* make room at the limit; true if closed */
    void (*force_close)(struct conn_base *c);   /* grace period over */
    /* Optional (NULL: nothing): the worker adopted a new configuration snapshot. HTTP/2 sends a
     * graceful GOAWAY so the client moves to a new connection; HTTP/1.1 takes the new snapshot
     * at its next request, or ends when the snapshot no longer lists its listener. */
    void (*on_reload)(struct conn_base *c);
};

struct conn_base {
    struct dlist link; /* in worker.conns, newest first */
    const struct conn_ops *ops;
};

/* One listening socket of a worker. A listener is known by its address, never by its place in
 * the file: a reload keeps the socket of every address the new configuration still lists (with
 * that listener's new settings), opens those it adds and closes those it drops. */
struct worker_listener {
    struct ev_io io; /* fd -1 once closed */
    struct worker *w;
    int index;                  /* in w->config->listeners */
    unsigned short port;        /* as bound (port 0 resolved) */
    struct ev_defer free_defer; /* a closed listener is freed at the end of the loop turn */
};

/* A listening socket the main thread opened for one worker, for a listener that the worker
 * does not have yet (at start, or added by a reload). Identified as listeners are: address,
 * and which of the listeners on that address it is (port 0 may be listed more than once). */
struct listen_handoff {
    struct listen_handoff *next;
    struct sockaddr_storage sa;
    socklen_t len;
    unsigned nth;
    int fd;
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
    struct compress_worker *compress; /* idle encoders for reuse (http/compress.c) */
    struct log_buf access;
    struct ev_defer access_flush;
    struct config *config; /* snapshot for new requests; the worker holds one reference */
    unsigned config_gen;
    struct upool **pools; /* one per upstream of `config` */
    size_t npools;
    struct worker_listener **listen; /* indexed like config->listeners */
    size_t nlisten;
    struct listen_handoff *inbox; /* sockets handed over, not yet taken; under srv->config_lock */
    bool accepting;
    int notify_fd; /* eventfd: reload or stop */
    struct ev_io notify_io;
    struct ev_timer drain_timer;
    /* Out of descriptors (or memory) to accept with: accepts are retried on a timer, and a
     * reserve descriptor is given up to accept and close one client each time (worker.c). */
    struct ev_timer accept_timer;
    struct ev_defer accept_soon; /* a connection ended while paused: retry at once */
    int reserve_fd;              /* /dev/null, held to be closed when descriptors run out */
    bool accept_paused;
    uint64_t accept_shed; /* clients closed unserved since accepts began to fail */
    struct dlist conns;   /* every client connection, newest first */
    unsigned nconns;
    unsigned nclosing;           /* closed, memory not yet released */
    struct client_count clients; /* for max_connections_per_client */
    /* At max_connections_per_worker with nothing idle to close: one accepted client waits here
     * (the rest wait in the backlog) until a connection ends. */
    int parked_fd;
    struct sockaddr_storage parked_peer;
    socklen_t parked_len;
    int parked_index; /* its listener, in config->listeners */
    unsigned short parked_port;
    bool draining;
    uint64_t rand;            /* xorshift state: random choices of the balancer (power_of_two) */
    struct checker *health;   /* worker 0: the active health checks of its snapshot (health.c) */
    unsigned tunnels;         /* upgraded connections open on this worker (tunnel.c) */
    bool tunnels_drain_noted; /* the drain logged how many there were */

    /* The files handler's open-file cache and transfers (serve/files_worker.c). */
    struct files_worker *files;
};

/* Create a worker's loop and state. Its listening sockets come through server_give_listeners
 * (before worker_start) or server_config_swap_listeners. Returns 0 or -1. */
int worker_init(struct worker *w, struct server *srv, int id);
int worker_start(struct worker *w);
/* Wake the worker to pick up a new configuration or to stop (srv->stopping). */
void worker_notify(struct worker *w);
void worker_join(struct worker *w);
void worker_fini(struct worker *w);

/* Take a reference to the server's current snapshot. */
struct config *server_config_get(struct server *srv);
/* Publish a new snapshot (takes over the caller's reference) and wake every worker. */
void server_config_swap(struct server *srv, struct config *c);
/* The same, handing workers the listening sockets of the listeners `c` adds: give[i] is a list
 * for worker i (taken over). A worker takes them when it adopts `c` (or a later snapshot: one
 * that no longer lists a socket's address closes it). */
void server_config_swap_listeners(struct server *srv, struct config *c,
                                  struct listen_handoff **give);
/* Hand listening sockets to the workers without a new snapshot (at start). */
void server_give_listeners(struct server *srv, struct listen_handoff **give);
/* A socket `fd` for listener i of c, keyed as workers look it up; NULL when out of memory. */
struct listen_handoff *listen_handoff_new(const struct config *c, size_t i, int fd);
void listen_handoff_free(struct listen_handoff *h); /* closes the sockets of a list, frees it */

/* The position in `to` of the listener at `index` in `from`, found by address (the nth listener
 * on an address matches the nth on the same address); -1 when `to` does not list it. A
 * connection that takes a new snapshot finds its listener's new settings with this. */
int worker_listener_match(const struct config *from, int index, const struct config *to);
/* The port listener `index` of snapshot `c` is bound to (a configured port 0 resolved). */
unsigned short worker_listener_port(const struct worker *w, const struct config *c, int index);

/* A client connection ended (the connection layer counts each out once, net/conn.c):
 * `counted_peer` is the address it was counted under for max_connections_per_client, or
 * NULL. */
struct sockaddr;
void worker_conn_closed(struct worker *w, const struct sockaddr *counted_peer);

#endif
