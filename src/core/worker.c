#include "core/worker.h"

#include "config/config.h"
#include "core/bug.h"
#include "core/sock.h"

#include <errno.h>
#include <fcntl.h>
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

/* Under config_lock: a worker takes its sockets together with the snapshot they are for. */
static void give_locked(struct server *srv, struct listen_handoff **give)
{
    for (int i = 0; give && i < srv->nworkers; i++) {
        struct listen_handoff **tail = &srv->workers[i].inbox;
        while (*tail)
            tail = &(*tail)->next;
        *tail = give[i];
        give[i] = NULL;
    }
}

void server_config_swap_listeners(struct server *srv, struct config *c,
                                  struct listen_handoff **give)
{
    pthread_mutex_lock(&srv->config_lock);
    give_locked(srv, give);
    struct config *old = atomic_exchange(&srv->config, c);
    atomic_fetch_add(&srv->config_gen, 1);
    pthread_mutex_unlock(&srv->config_lock);
    if (old)
        config_unref(old);
    for (int i = 0; i < srv->nworkers; i++)
        worker_notify(&srv->workers[i]);
}

void server_config_swap(struct server *srv, struct config *c)
{
    server_config_swap_listeners(srv, c, NULL);
}

void server_give_listeners(struct server *srv, struct listen_handoff **give)
{
    pthread_mutex_lock(&srv->config_lock);
    give_locked(srv, give);
    pthread_mutex_unlock(&srv->config_lock);
}

static unsigned addr_nth(const struct config *c, size_t i);

struct listen_handoff *listen_handoff_new(const struct config *c, size_t i, int fd)
{
    struct listen_handoff *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->sa = c->listeners[i].addr.sa;
    h->len = c->listeners[i].addr.len;
    h->nth = addr_nth(c, i);
    h->fd = fd;
    return h;
}

void listen_handoff_free(struct listen_handoff *h)
{
    while (h) {
        struct listen_handoff *next = h->next;
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        h = next;
    }
}

/* ---- listeners, by address ---------------------------------------------------------------- */

static unsigned short sa_port(const struct sockaddr_storage *sa)
{
    return ntohs(sa->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                           : ((const struct sockaddr_in *)sa)->sin_port);
}

static bool addr_eq(const struct cfg_addr *a, const struct cfg_addr *b)
{
    return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
}

/* Which of the listeners on its address listener i is: 0 for the first. */
static unsigned addr_nth(const struct config *c, size_t i)
{
    unsigned nth = 0;
    for (size_t j = 0; j < i; j++)
        nth += addr_eq(&c->listeners[j].addr, &c->listeners[i].addr);
    return nth;
}

static int find_addr(const struct config *c, const struct cfg_addr *a, unsigned nth)
{
    for (size_t j = 0; j < c->nlisteners; j++)
        if (addr_eq(&c->listeners[j].addr, a) && nth-- == 0)
            return (int)j;
    return -1;
}

int worker_listener_match(const struct config *from, int index, const struct config *to)
{
    if (!from || !to || index < 0 || (size_t)index >= from->nlisteners)
        return -1;
    if (from == to)
        return index;
    return find_addr(to, &from->listeners[index].addr, addr_nth(from, (size_t)index));
}

unsigned short worker_listener_port(const struct worker *w, const struct config *c, int index)
{
    int j = worker_listener_match(c, index, w->config);
    if (j >= 0 && (size_t)j < w->nlisten && w->listen[j])
        return w->listen[j]->port;
    if (index < 0 || (size_t)index >= c->nlisteners)
        return 0;
    return sa_port(&c->listeners[index].addr.sa);
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

void worker_refuse_answer(struct worker *w, int fd, const struct sockaddr *peer)
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
}

/* Past max_connections_per_client: answer 503 at once, without reading, and close. */
static void refuse_client(struct worker *w, int fd, const struct sockaddr *peer)
{
    worker_refuse_answer(w, fd, peer);
    close(fd);
}

bool worker_admit_client(struct worker *w, const struct sockaddr *peer, bool *counted)
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

/* Call the optional hook `name` of the layers above (worker_hooks). */
#define WORKER_HOOK(w, name, ...)                                                                  \
    do {                                                                                           \
        if ((w)->srv->hooks && (w)->srv->hooks->name)                                              \
            (w)->srv->hooks->name(__VA_ARGS__);                                                    \
    } while (0)

static void serve_client(struct worker *w, int listener, unsigned short port, int fd,
                         const struct sockaddr *peer, socklen_t plen)
{
    bool counted = false;
    /* Behind a PROXY protocol listener the peer is the balancer: the client is admitted once
     * the header names it (net/proxy_accept.c). */
    const struct config *c = w->config;
    bool named_later = (size_t)listener < c->nlisteners && c->listeners[listener].proxy_protocol;
    if (!named_later && !worker_admit_client(w, peer, &counted)) {
        refuse_client(w, fd, peer);
        return;
    }
    w->srv->hooks->accept(w, fd, peer, plen, listener, port, counted);
}

static bool at_limit(const struct worker *w)
{
    return w->nconns - w->nclosing >= w->config->limits.max_connections_per_worker;
}

/* ---- out of descriptors ------------------------------------------------------------------ */

/* Listeners are edge-triggered: an accept that failed for want of descriptors or memory is not
 * signalled again while the backlog stays full (a full backlog drops new SYNs, so nothing new
 * arrives to wake us), and accepting would stop for good. So a failed accept is retried on a
 * timer; and, when descriptors are what is missing, the reserve descriptor is given up for a
 * moment to take one waiting client and close it, so that it hears a close rather than hang. */
#define ACCEPT_RETRY_MS 100
#define ACCEPT_WARN_MS 1000

static bool out_of_fds(int err)
{
    return err == EMFILE || err == ENFILE;
}

/* At most one warning per second for the whole process. */
static bool accept_warn_due(struct worker *w)
{
    uint64_t now = ev_clock_ms();
    unsigned long long last = atomic_load(&w->srv->accept_warned_ms);
    if (last && now - last < ACCEPT_WARN_MS)
        return false;
    return atomic_compare_exchange_strong(&w->srv->accept_warned_ms, &last, now);
}

static void reserve_open(struct worker *w)
{
    if (w->reserve_fd < 0)
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* The reserve given up to accept one waiting client, closed at once; then taken back. */
static void shed_one(struct worker *w, struct worker_listener *l)
{
    if (w->reserve_fd < 0)
        return;
    close(w->reserve_fd);
    w->reserve_fd = -1;
    int fd = accept4(l->io.fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        w->accept_shed++;
    }
    reserve_open(w);
}

static void accept_failed(struct worker *w, struct worker_listener *l, int err)
{
    if (out_of_fds(err))
        shed_one(w, l);
    if (accept_warn_due(w))
        log_msg(&w->srv->log, LOG_WARN,
                out_of_fds(err) ? "out of file descriptors; accept: %s: closing new clients at "
                                  "once, retrying every %d ms (worker %d)"
                                : "accept: %s: retrying every %d ms (worker %d)",
                strerror(err), ACCEPT_RETRY_MS, w->id);
    w->accept_paused = true;
    if (!ev_timer_armed(&w->accept_timer))
        ev_timer_start(&w->loop, &w->accept_timer, ACCEPT_RETRY_MS);
}

static void accept_all(struct worker *w, struct worker_listener *l);

static void on_accept_retry(struct ev_timer *t)
{
    struct worker *w = container_of(t, struct worker, accept_timer);
    reserve_open(w); /* should the reopen in shed_one have failed */
    for (size_t i = 0; w->accepting && i < w->nlisten; i++)
        if (w->listen[i])
            accept_all(w, w->listen[i]);
    if (ev_timer_armed(&w->accept_timer) || !w->accept_paused)
        return; /* failed again: retried later */
    w->accept_paused = false;
    log_msg(&w->srv->log, LOG_INFO,
            "accepting clients again (worker %d); %llu were closed unserved meanwhile", w->id,
            (unsigned long long)w->accept_shed);
    w->accept_shed = 0;
}

/* A connection ended while accepts were failing: its descriptor is free now, so try at the
 * end of this loop turn rather than at the next tick (a full backlog drops new clients' SYNs
 * until it is taken). */
static void on_accept_soon(struct ev_defer *d)
{
    struct worker *w = container_of(d, struct worker, accept_soon);
    if (!w->accept_paused)
        return;
    ev_timer_stop(&w->loop, &w->accept_timer);
    on_accept_retry(&w->accept_timer);
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
                accept_failed(w, l, errno);
            return;
        }
        /* Room is made only for a client that is really there, never ahead of one. */
        if (at_limit(w) && !make_room(w)) {
            w->parked_fd = fd;
            w->parked_peer = peer;
            w->parked_len = plen;
            w->parked_index = l->index;
            w->parked_port = l->port;
            return;
        }
        serve_client(w, l->index, l->port, fd, (struct sockaddr *)&peer, plen);
    }
}

static void on_listen(struct ev_io *io, uint32_t events)
{
    struct worker_listener *l = container_of(io, struct worker_listener, io);
    (void)events;
    if (l->io.fd >= 0) /* closed by a reload earlier in this loop turn */
        accept_all(l->w, l);
}

static void on_listener_free(struct ev_defer *d)
{
    free(container_of(d, struct worker_listener, free_defer));
}

static struct worker_listener *listener_new(struct worker *w, int fd)
{
    struct worker_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    *l = (struct worker_listener){.io = {.fd = fd, .cb = on_listen}, .w = w, .index = -1};
    l->free_defer.cb = on_listener_free;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        l->port = sa_port(&sa);
    return l;
}

/* Close a listening socket; clients already queued on it are served first (they connected
 * before we stopped listening), with the snapshot the worker has now. Freed at the end of the
 * loop turn: an event for it may still be waiting in this turn's batch. */
static void listener_close(struct worker *w, struct worker_listener *l)
{
    if (w->accepting)
        accept_all(w, l);
    ev_io_del(&w->loop, &l->io);
    close(l->io.fd);
    l->io.fd = -1;
    ev_defer(&w->loop, &l->free_defer);
}

static void close_listeners(struct worker *w)
{
    ev_timer_stop(&w->loop, &w->accept_timer);
    for (size_t i = 0; i < w->nlisten; i++) {
        if (w->listen[i])
            listener_close(w, w->listen[i]);
        w->listen[i] = NULL;
    }
    w->accepting = false;
}

/* The socket handed over for listener j of c, taken out of the list; -1 when none is. */
static int take_given(struct listen_handoff **given, const struct config *c, size_t j)
{
    const struct cfg_addr *a = &c->listeners[j].addr;
    unsigned nth = addr_nth(c, j);
    for (struct listen_handoff **p = given; *p; p = &(*p)->next) {
        struct listen_handoff *h = *p;
        if (h->len != a->len || memcmp(&h->sa, &a->sa, a->len) != 0 || h->nth != nth)
            continue;
        int fd = h->fd;
        *p = h->next;
        free(h);
        return fd;
    }
    return -1;
}

/* The listening sockets for snapshot c, indexed like its listeners: the worker's own socket for
 * each address it already listens on, a handed-over one for each new address. Sockets of
 * addresses c no longer lists are left in w->listen (NULL where taken). NULL: out of memory. */
static struct worker_listener **listeners_for(struct worker *w, const struct config *c,
                                              struct listen_handoff **given)
{
    struct worker_listener **next = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*next));
    if (!next)
        return NULL;
    for (size_t j = 0; j < c->nlisteners; j++) {
        int i = w->config ? worker_listener_match(c, (int)j, w->config) : -1;
        if (i >= 0 && (size_t)i < w->nlisten && w->listen[i]) {
            next[j] = w->listen[i];
            w->listen[i] = NULL;
            if (c->listeners[j].backlog != w->config->listeners[i].backlog)
                listen(next[j]->io.fd, c->listeners[j].backlog); /* a new backlog, same socket */
            continue;
        }
        int fd = take_given(given, c, j);
        if (fd >= 0 && !(next[j] = listener_new(w, fd)))
            close(fd);
        if (!next[j])
            log_msg(&w->srv->log, LOG_ERROR, "worker %d: no socket for listener %s", w->id,
                    c->listeners[j].addr.text);
    }
    return next;
}

/* Move to the listeners of c: close those it drops (while w->config is still the snapshot
 * their queued clients belong to), then start taking clients on those it adds. */
static void listeners_switch(struct worker *w, struct worker_listener **next,
                             const struct config *c)
{
    for (size_t i = 0; i < w->nlisten; i++)
        if (w->listen[i])
            listener_close(w, w->listen[i]);
    free(w->listen);
    w->listen = next;
    w->nlisten = c->nlisteners;
    for (size_t j = 0; j < w->nlisten; j++) {
        struct worker_listener *l = next[j];
        if (!l)
            continue;
        bool added = l->index < 0;
        l->index = (int)j;
        if (added && ev_io_add(&w->loop, &l->io, EPOLLIN | EPOLLET) < 0)
            log_msg(&w->srv->log, LOG_ERROR, "worker %d: epoll: %s", w->id, strerror(errno));
    }
}

/* ---- configuration and stop --------------------------------------------------------------- */

/* The client waiting for room keeps its listener's place in the new snapshot; one whose listener
 * the snapshot drops gets a close, not the settings of another address. */
static void remap_parked(struct worker *w, const struct config *c)
{
    if (w->parked_fd < 0)
        return;
    w->parked_index = worker_listener_match(w->config, w->parked_index, c);
    if (w->parked_index >= 0)
        return;
    close(w->parked_fd);
    w->parked_fd = -1;
}

static void give_back(struct worker *w, struct listen_handoff *given)
{
    if (!given)
        return;
    struct listen_handoff **tail = &given;
    while (*tail)
        tail = &(*tail)->next;
    pthread_mutex_lock(&w->srv->config_lock);
    *tail = w->inbox;
    w->inbox = given;
    pthread_mutex_unlock(&w->srv->config_lock);
}

/* The snapshot that is current and the sockets handed over until now, taken together. */
static struct config *take_config(struct worker *w, unsigned *gen, struct listen_handoff **given)
{
    struct server *srv = w->srv;
    pthread_mutex_lock(&srv->config_lock);
    struct config *c = atomic_load(&srv->config);
    config_ref(c);
    *gen = atomic_load(&srv->config_gen);
    *given = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&srv->config_lock);
    return c;
}

static void tell_connections(struct worker *w)
{
    /* One may close in its hook (closing is deferred, the list holds). */
    struct dlist *n = w->conns.next;
    while (n != &w->conns) {
        struct dlist *next = n->next;
        struct conn_base *b = container_of(n, struct conn_base, link);
        if (b->ops->on_reload)
            b->ops->on_reload(b);
        n = next;
    }
}

static void adopt_config(struct worker *w)
{
    if (atomic_load(&w->srv->config_gen) == w->config_gen)
        return;
    unsigned gen;
    struct listen_handoff *given;
    struct config *c = take_config(w, &gen, &given);
    struct worker_listener **next = NULL;
    if (w->accepting && !(next = listeners_for(w, c, &given))) {
        /* Keep everything as it is; the next wake-up tries again. */
        log_msg(&w->srv->log, LOG_ERROR, "worker %d: reload: out of memory", w->id);
        give_back(w, given);
        config_unref(c);
        return;
    }
    if (next)
        listeners_switch(w, next, c);
    remap_parked(w, c);
    listen_handoff_free(given); /* for addresses c no longer lists, or arrived while draining */
    WORKER_HOOK(w, reload, w, c);
    config_unref(w->config);
    w->config = c;
    w->config_gen = gen;
    tell_connections(w);
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
    WORKER_HOOK(w, drain, w);
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
    GH_BUG_ON(w->nconns == 0); /* conn_accept counted it in; conn_free counts it out once */
    w->nconns--;
    if (w->accept_paused)
        ev_defer(&w->loop, &w->accept_soon);
    if (w->parked_fd >= 0) {
        int fd = w->parked_fd;
        w->parked_fd = -1;
        serve_client(w, w->parked_index, w->parked_port, fd, (struct sockaddr *)&w->parked_peer,
                     w->parked_len);
    }
    if (was_full && w->accepting)
        for (size_t i = 0; i < w->nlisten; i++)
            if (w->listen[i])
                accept_all(w, w->listen[i]);
    check_done(w);
}

/* ---- access log --------------------------------------------------------------------------- */

static void on_access_flush(struct ev_defer *d)
{
    struct worker *w = container_of(d, struct worker, access_flush);
    log_buf_flush(&w->access, &w->srv->log);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int worker_init(struct worker *w, struct server *srv, int id)
{
    *w = (struct worker){.id = id, .srv = srv, .notify_fd = -1, .parked_fd = -1};
    w->rand = ev_clock_ms() * 0x9e3779b97f4a7c15ull + (uint64_t)id * 0xbf58476d1ce4e5b9ull + 1;
    dlist_init(&w->conns);
    buf_pool_init(&w->bufs, 256);
    w->access_flush.cb = on_access_flush;
    w->access.ring = log_access_ring(&srv->log, (size_t)id);
    w->drain_timer.cb = on_drain_timeout;
    w->accept_timer.cb = on_accept_retry;
    w->accept_soon.cb = on_accept_soon;
    w->reserve_fd = -1;
    reserve_open(w);
    if (ev_loop_init(&w->loop) < 0)
        return -1;
    w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->notify_fd < 0)
        return -1;
    w->notify_io = (struct ev_io){.fd = w->notify_fd, .cb = on_notify};
    if (ev_io_add(&w->loop, &w->notify_io, EPOLLIN) < 0)
        return -1;
    w->config = server_config_get(srv);
    w->config_gen = atomic_load(&srv->config_gen);
    if (srv->hooks && srv->hooks->init && srv->hooks->init(w) < 0)
        return -1;
    return 0;
}

/* The listening sockets handed over before the start, for the snapshot the worker began with. */
static void start_listening(struct worker *w)
{
    struct listen_handoff *given;
    pthread_mutex_lock(&w->srv->config_lock);
    given = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->srv->config_lock);
    struct config *c = w->config;
    w->config = NULL; /* nothing is kept: every socket is a handed-over one */
    struct worker_listener **next = listeners_for(w, c, &given);
    w->config = c;
    listen_handoff_free(given);
    if (!next) {
        log_msg(&w->srv->log, LOG_ERROR, "worker %d: out of memory", w->id);
        return;
    }
    listeners_switch(w, next, c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->accepting = true;
    start_listening(w);
    WORKER_HOOK(w, start, w);
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
    WORKER_HOOK(w, stop, w);
    for (size_t i = 0; i < w->nlisten; i++) {
        if (!w->listen[i])
            continue;
        ev_io_del(&w->loop, &w->listen[i]->io);
        close(w->listen[i]->io.fd);
        free(w->listen[i]);
    }
    free(w->listen);
    w->listen = NULL;
    w->nlisten = 0;
    ev_run_defers(&w->loop); /* the closes above free their memory in deferred calls */
    listen_handoff_free(w->inbox);
    w->inbox = NULL;
    if (w->notify_fd >= 0)
        close(w->notify_fd);
    if (w->config)
        config_unref(w->config);
    ev_loop_fini(&w->loop);
    buf_pool_fini(&w->bufs);
    client_count_fini(&w->clients);
    if (w->parked_fd >= 0)
        close(w->parked_fd);
    if (w->reserve_fd >= 0)
        close(w->reserve_fd);
    WORKER_HOOK(w, fini, w);
}
