#include "core/worker.h"

#include "config/config.h"
#include "http/h1_server.h"
#include "http/request.h"
#include "proxy/proxy.h"
#include "proxy/upstream.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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

static void accept_all(struct worker *w, int lfd)
{
    for (;;) {
        if (w->nconns >= w->config->limits.max_connections_per_worker) {
            /* Leave the rest in the backlog (or to other workers) rather than overcommit. */
            return;
        }
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
        h1_conn_accept(w, fd, (struct sockaddr *)&peer);
    }
}

static void on_listen(struct ev_io *io, uint32_t events)
{
    struct worker *w = container_of(io, struct worker_listener, io)->w;
    (void)events;
    accept_all(w, io->fd);
}

static void close_listeners(struct worker *w)
{
    if (!w->accepting)
        return;
    w->accepting = false;
    for (size_t i = 0; i < w->nlisten; i++) {
        /* Take what is already queued first: those clients connected before we stopped. */
        accept_all(w, w->listen_fds[i]);
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
    config_unref(w->config);
    w->config = c;
    w->config_gen = gen;
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
        h1_conn_force_close(n);
        n = next;
    }
}

static void start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    close_listeners(w);
    struct dlist *n = w->conns.next;
    while (n != &w->conns) {
        struct dlist *next = n->next;
        h1_conn_drain(n);
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

void worker_conn_closed(struct worker *w)
{
    /* Listeners are edge-triggered: at the connection limit we stopped taking from the
     * backlog, so take again now that there is room. */
    bool was_full = w->nconns >= w->config->limits.max_connections_per_worker;
    w->nconns--;
    if (was_full && w->accepting)
        for (size_t i = 0; i < w->nlisten; i++)
            accept_all(w, w->listen_fds[i]);
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
    *w = (struct worker){.id = id, .srv = srv, .notify_fd = -1};
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
        *l = (struct worker_listener){.io = {.fd = w->listen_fds[i], .cb = on_listen}, .w = w};
        if (ev_io_add(&w->loop, &l->io, EPOLLIN | EPOLLET) < 0)
            log_msg(&w->srv->log, LOG_ERROR, "worker %d: epoll: %s", w->id, strerror(errno));
    }
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
}
