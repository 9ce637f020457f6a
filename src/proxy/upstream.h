/* Upstream connections and the per-worker pools of idle keep-alive ones. A pool belongs to one
 * upstream of one configuration snapshot; a reload retires the old pools (their idle
 * connections close, busy ones close when their exchange ends). */
#ifndef GH_UPSTREAM_H
#define GH_UPSTREAM_H

#include "core/list.h"
#include "core/loop.h"
#include "net/outq.h"
#include "net/transport.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct worker;
struct config;
struct cfg_upstream;
struct upool;
struct upconn;
struct tls_session;

/* What a busy connection tells its user. */
enum upconn_event { UPCONN_IO, UPCONN_TIMEOUT };

struct upconn {
    struct worker *w;
    struct upool *pool;
    size_t server;      /* index in the upstream's servers */
    struct transport t; /* plain TCP, or TLS once upstream_transport_start chose it */
    struct ev_io io;
    struct ev_timer timer;
    struct ev_defer free_defer;
    struct dlist idle_link;
    struct buf *in;
    struct outq out;
    unsigned requests; /* exchanges started on this connection */
    bool connected, reused, closed, idle;
    bool handshaking; /* TCP is up, the transport's handshake (TLS) is not done yet */
    bool rd_ready, wr_ready, eof;
    bool rdhup; /* the peer closed its side (seen by epoll, maybe not yet by read) */
    /* proxy_protocol upstreams: the client the connection's PROXY header names (source, and
     * the address it connected to). Only a request of the same client may reuse it. */
    struct sockaddr_storage pp_src, pp_dst;
    /* The user while busy; NULL while idle in the pool. */
    void (*on_event)(struct upconn *uc, enum upconn_event ev);
    void *user;
};

/* The transport of a connection to server `server` of `up`, on the connected socket t->fd:
 * TLS for a TLS upstream, with the server's name as SNI and as the name its certificate must
 * prove, and `slot` (may be NULL) for session resumption; else plain TCP. The one place that
 * decides "TLS or plain?" on the upstream side (proxied requests and health checks). 0, or -1
 * when the TLS connection cannot be set up (out of memory). */
int upstream_transport_start(struct transport *t, const struct cfg_upstream *up, size_t server,
                             struct tls_session **slot);

/* Build this worker's pools for snapshot `c` (NULL: retire all). Returns 0 or -1 (OOM). */
int upool_set_config(struct worker *w, struct config *c);
/* The worker's current pool for an upstream of its current snapshot, or NULL if the snapshot
 * changed since (the caller's snapshot is older: it gets a pool-less fresh connection). */
struct upool *upool_for(struct worker *w, const struct cfg_upstream *u);
/* A user that may acquire several connections over time (retries) holds the pool. */
void upool_hold(struct upool *p);
void upool_drop(struct upool *p);

/* Pick a server (round robin) and return a connection to it: an idle pooled one unless
 * `fresh`, else a new one whose connect is in progress. NULL with errno on failure. */
struct upconn *upconn_acquire(struct upool *p, bool fresh);
/* The same for a server the caller chose (upstate_pick). */
struct upconn *upconn_acquire_server(struct upool *p, size_t server, bool fresh);
/* The same for client `src` that connected to `dst` (either may be NULL): for an upstream with
 * proxy_protocol, the PROXY header of a new connection names them, and an idle one is reused
 * only when it names the same (the header speaks for the whole connection). */
struct upconn *upconn_acquire_client(struct upool *p, size_t server, bool fresh,
                                     const struct sockaddr *src, const struct sockaddr *dst);
/* Write the upstream's PROXY protocol header (proxy_protocol v1 or v2; nothing when off) on a
 * connected socket, before any other byte (before TLS too): `src` and `dst` as the client's
 * addresses; NULL for both says none (v1 UNKNOWN, v2 LOCAL: a health check). 0, or -1 when the
 * socket did not take it whole. */
int upstream_send_proxy_header(int fd, const struct cfg_upstream *up, const struct sockaddr *src,
                               const struct sockaddr *dst);
const char *upconn_addr_text(const struct upconn *uc);
/* Drives a new connection to where it can carry requests, on each event until then: the TCP
 * connect, then for a TLS upstream the handshake. 1 when uc->connected, 0 while in progress, -1
 * on failure with the reason in `why` ("connect failed: ...", "TLS handshake failed: ..."). */
int upconn_connected(struct upconn *uc, char *why, size_t len);
/* Write uc->out to the upstream: outq_flush's results and errno. */
int upconn_flush(struct upconn *uc);
/* Read into uc->in. Returns bytes read; 0 when nothing now (EAGAIN), on EOF (uc->eof) or when
 * the buffer is full; -1 on error (errno). */
int upconn_read(struct upconn *uc);
/* End our sending side (the client half-closed a tunnel): 0 or -1 with errno. */
int upconn_shutdown(struct upconn *uc);
/* Give the connection back: kept idle for reuse when `reusable`, else closed. */
void upconn_release(struct upconn *uc, bool reusable);
void upconn_close(struct upconn *uc);

#endif
