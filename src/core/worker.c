#include "core/worker.h"

#include "config/config.h"
#include "http/h1_server.h"
#include "http/request.h"
#include "net/sock.h"
#include "proxy/health.h"
#include "proxy/proxy.h"
#include "proxy/upstream.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

struct config *server_config_get(struct server *srv)
{
    pthread_mutex_lock(&srv->config_lock);
    struct config *c = atomic_load(&srv->config);
    config_ref(c);
    pthread_mutex_unlock(&srv->config_lock);
    return c;
}

void server_config_swap(struct server *srv, struct config *c)
{
    pthread_mutex_lock(&srv->config_lock);
    struct config *old = atomic_exchange(&srv->config, c);
    atomic_fetch_add(&srv->config_gen, 1);
    pthread_mutex_unlock(&srv->config_lock);
    if (old)
        config_unref(old);
    for (int i = 0; i < srv->nworkers; i++)
        worker_notify(&srv->workers[i]);
}

void worker_notify(struct worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->notify_fd, &one, sizeof(one));
    (void)n;
}

/* ---- accepting ---------------------------------------------------------------------------- */

/* At max_connections_per_worker, close the oldest connection idle between requests (a few
 * looked at, not all) so a new client is served rather than left in the backlog. */
static bool make_room(struct worker *w)
{
    int looked = 0;
    for (struct dlist *n = w->conns.prev; n != &w->conns && looked < 64; n = n->prev, looked++)
        if (container_of(n, struct conn_base, link)
                ->ops->close_if_idle(container_of(n, struct conn_base, link)))
            return true;
    return false;
}

/* Past max_connections_per_client: answer 503 at once, without reading, and close. */
static void refuse_client(struct worker *w, int fd, const struct sockaddr *peer)
{
    static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                               "too many connections\n";
    char host[64];
    sock_host_text(peer, host, sizeof(host));
    log_msg(&w->srv->log, LOG_INFO, "client %s: 503: over max_connections_per_client", host);
    ssize_t n = send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* Whether this peer may open one more connection; counts it if so. */
static bool admit_client(struct worker *w, const struct sockaddr *peer, bool *counted)
{
    uint32_t limit = w->config->limits.max_connections_per_client;
    *counted = false;
    if (!limit)
        return true;
    uint32_t n = client_count_add(&w->clients, peer);
    if (n == 0)
        return true; /* out of memory for the table: do not punish the client */
    *counted = true;
    if (n <= limit)
        return true;
    client_count_remove(&w->clients, peer);
    *counted = false;
    return false;
}

static void serve_client(struct worker *w, struct worker_listener *l, int fd,
                         const struct sockaddr *peer, socklen_t plen)
{
    bool counted;
    if (!admit_client(w, peer, &counted)) {
        refuse_client(w, fd, peer);
        return;
    }
    h1_conn_accept(w, fd, peer, plen, l->index, l->port, counted);
}

static bool at_limit(const struct worker *w)
{
    return w->nconns - w->nclosing >= w->config->limits.max_connections_per_worker;
}

static void accept_all(struct worker *w, struct worker_listener *l)
{
    int lfd = l->io.fd;
    for (;;) {
        if (at_limit(w) && w->parked_fd >= 0)
            return; /* the rest wait in the backlog (or go to other workers) */
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_msg(&w->srv->log, LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        /* Room is made only for a client that is really there, never ahead of one. */
        if (at_limit(w) && !make_room(w)) {
            w->parked_fd = fd;
            w->parked_peer = peer;
            w->parked_len = plen;
            w->parked_on = l;
            return;
        }
        serve_client(w, l, fd, (struct sockaddr *)&peer, plen);
    }
}

static void on_listen(struct ev_io *io, uint32_t events)
{
    struct worker_listener *l = container_of(io, struct worker_listener, io);
    (void)events;
    accept_all(l->w, l);
}

static void close_listeners(struct worker *w)
{
    if (!w->accepting)
        return;
    w->accepting = false;
    for (size_t i = 0; i < w->nlisten; i++) {
        /* Take what is already queued first: those clients connected before we stopped. */
        accept_all(w, &w->listen_io[i]);
        ev_io_del(&w->loop, &w->listen_io[i].io);
        close(w->listen_fds[i]);
        w->listen_fds[i] = -1;
    }
}

/* ---- configuration and stop --------------------------------------------------------------- */

static void adopt_config(struct worker *w)
{
    unsigned gen = atomic_load(&w->srv->config_gen);
    if (gen == w->config_gen)
        return;
    struct config *c = server_config_get(w->srv);
    upool_set_config(w, c);
    if (w->id == 0 && !w->draining)
        health_set_config(w, c); /* checks run once per process, on worker 0 */
    config_unref(w->config);
    w->config = c;
    w->config_gen = gen;
    /* Tell every connection; one may close in its hook (closing is deferred, the list holds). */
    struct dlist *n = w->conns.next;
    while (n != &w->conns) {
        struct dlist *next = n->next;
        struct conn_base *b = container_of(n, struct conn_base, link);
        if (b->ops->on_reload)
            b->ops->on_reload(b);
        n = next;
    }
}

static void check_done(struct worker *w)
{
    if (w->draining && w->nconns == 0)
        w->loop.stop = true;
}

static void on_drain_timeout(struct ev_timer *t)
{
    struct worker *w = container_of(t, struct worker, drain_timer);
    if (w->nconns)
        log_msg(&w->srv->log, LOG_WARN, "worker %d: grace period over, closing %u connections",
                w->id, w->nconns);
    struct dlist *n = w->conns.next;
    while (n != &w->conns) {
        struct dlist *next = n->next;
        struct conn_base *c = container_of(n, struct conn_base, link);
        c->ops->force_close(c);
        n = next;
    }
}

static void start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    if (w->id == 0)
        health_set_config(w, NULL);
    close_listeners(w);
    struct dlist *n = w->conns.next;
    while (n != &w->conns) {
        struct dlist *next = n->next;
        struct conn_base *c = container_of(n, struct conn_base, link);
        c->ops->drain(c);
        n = next;
    }
    ev_timer_start(&w->loop, &w->drain_timer, w->config->shutdown_grace);
    check_done(w);
}

static void on_notify(struct ev_io *io, uint32_t events)
{
    struct worker *w = container_of(io, struct worker, notify_io);
    uint64_t v;
    while (read(w->notify_fd, &v, sizeof(v)) > 0)
        ;
    (void)events;
    adopt_config(w);
    if (atomic_load(&w->srv->stopping))
        start_drain(w);
}

void worker_conn_closed(struct worker *w, const struct sockaddr *counted_peer)
{
    if (counted_peer)
        client_count_remove(&w->clients, counted_peer);
    /* Listeners are edge-triggered: at the connection limit we stopped taking from the
     * backlog, so take again now that there is room. */
    bool was_full = w->nconns >= w->config->limits.max_connections_per_worker;
    w->nconns--;
    if (w->parked_fd >= 0) {
        int fd = w->parked_fd;
        w->parked_fd = -1;
        serve_client(w, w->parked_on, fd, (struct sockaddr *)&w->parked_peer, w->parked_len);
    }
    if (was_full && w->accepting)
        for (size_t i = 0; i < w->nlisten; i++)
            accept_all(w, &w->listen_io[i]);
    check_done(w);
}

/* ---- access log --------------------------------------------------------------------------- */

static void on_access_flush(struct ev_defer *d)
{
    struct worker *w = container_of(d, struct worker, access_flush);
    log_buf_flush(&w->access, &w->srv->log);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int worker_init(struct worker *w, struct server *srv, int id, int *listen_fds, size_t nlisten)
{
    *w = (struct worker){.id = id, .srv = srv, .notify_fd = -1, .parked_fd = -1};
    w->rand = ev_clock_ms() * 0x9e3779b97f4a7c15ull + (uint64_t)id * 0xbf58476d1ce4e5b9ull + 1;
    dlist_init(&w->conns);
    buf_pool_init(&w->bufs, 256);
    freelist_init(&w->proxies, proxy_object_size(), 256);
    w->access_flush.cb = on_access_flush;
    w->drain_timer.cb = on_drain_timeout;
    if (ev_loop_init(&w->loop) < 0)
        return -1;
    w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->notify_fd < 0)
        return -1;
    w->notify_io = (struct ev_io){.fd = w->notify_fd, .cb = on_notify};
    if (ev_io_add(&w->loop, &w->notify_io, EPOLLIN) < 0)
        return -1;
    w->listen_io = calloc(nlisten ? nlisten : 1, sizeof(*w->listen_io));
    w->listen_fds = listen_fds;
    w->nlisten = nlisten;
    if (!w->listen_io)
        return -1;
    w->config = server_config_get(srv);
    w->config_gen = atomic_load(&srv->config_gen);
    if (upool_set_config(w, w->config) < 0)
        return -1;
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->accepting = true;
    for (size_t i = 0; i < w->nlisten; i++) {
        struct worker_listener *l = &w->listen_io[i];
        *l = (struct worker_listener){
            .io = {.fd = w->listen_fds[i], .cb = on_listen}, .w = w, .index = (int)i};
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        if (getsockname(l->io.fd, (struct sockaddr *)&sa, &len) == 0)
            l->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                     : ((struct sockaddr_in *)&sa)->sin_port);
        if (ev_io_add(&w->loop, &l->io, EPOLLIN | EPOLLET) < 0)
            log_msg(&w->srv->log, LOG_ERROR, "worker %d: epoll: %s", w->id, strerror(errno));
    }
    if (w->id == 0)
        health_set_config(w, w->config);
    /* A stop may have been requested before this thread got going. */
    if (atomic_load(&w->srv->stopping))
        start_drain(w);
    while (!w->loop.stop)
        ev_loop_turn(&w->loop, 1000);
    log_buf_flush(&w->access, &w->srv->log);
    return NULL;
}

int worker_start(struct worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void worker_fini(struct worker *w)
{
    upool_set_config(w, NULL);
    if (w->id == 0)
        health_set_config(w, NULL);
    ev_run_defers(&w->loop); /* the closes above free their memory in deferred calls */
    for (size_t i = 0; i < w->nlisten; i++)
        if (w->listen_fds && w->listen_fds[i] >= 0)
            close(w->listen_fds[i]);
    free(w->listen_fds);
    free(w->listen_io);
    if (w->notify_fd >= 0)
        close(w->notify_fd);
    if (w->config)
        config_unref(w->config);
    ev_loop_fini(&w->loop);
    buf_pool_fini(&w->bufs);
    freelist_fini(&w->proxies);
    h1_worker_fini(w);
    client_count_fini(&w->clients);
    if (w->parked_fd >= 0)
        close(w->parked_fd);
}
