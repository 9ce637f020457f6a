#include "proxy/upstream.h"

#include "config/config.h"
#include "core/bug.h"
#include "core/sock.h"
#include "core/worker.h"
#include "net/proxy_proto.h"
#include "net/tls_client.h"
#include "proxy/upstate.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct upool {
    struct worker *w;
    struct config *config; /* keeps `up` alive */
    const struct cfg_upstream *up;
    struct dlist *idle; /* one list per server, most recently used first */
    /* TLS upstreams: the last session of each server, offered to its new connections. Per
     * worker like the connections that fill it, so it needs no lock. */
    struct tls_session **sessions;
    uint32_t nidle;
    size_t rr;     /* round-robin position */
    unsigned refs; /* 1 for the worker while current + 1 per busy connection */
    bool retired;
};

void upool_drop(struct upool *p)
{
    if (--p->refs)
        return;
    for (size_t i = 0; p->sessions && i < p->up->nservers; i++)
        tls_session_free(p->sessions[i]);
    free(p->sessions);
    config_unref(p->config); /* after p->up's last use */
    free(p->idle);
    free(p);
}

void upool_hold(struct upool *p)
{
    p->refs++;
}

static void upconn_free(struct ev_defer *d)
{
    struct upconn *uc = container_of(d, struct upconn, free_defer);
    ev_timer_stop(&uc->w->loop, &uc->timer); /* backstop: no timer may outlive us */
    buf_put(&uc->w->bufs, uc->in);
    outq_release(&uc->out, &uc->w->bufs);
    free(uc);
}

void upconn_close(struct upconn *uc)
{
    if (uc->closed)
        return;
    uc->closed = true;
    if (uc->idle) {
        dlist_remove(&uc->idle_link);
        uc->pool->nidle--;
    }
    ev_io_del(&uc->w->loop, &uc->io);
    ev_timer_stop(&uc->w->loop, &uc->timer);
    uc->t.ops->release(&uc->t);
    close(uc->t.fd);
    uc->t.fd = -1;
    upool_drop(uc->pool);
    ev_defer(&uc->w->loop, &uc->free_defer);
}

static void retire(struct upool *p)
{
    p->retired = true;
    for (size_t i = 0; i < p->up->nservers; i++)
        while (!dlist_empty(&p->idle[i]))
            upconn_close(container_of(p->idle[i].next, struct upconn, idle_link));
    upool_drop(p);
}

int upool_set_config(struct worker *w, struct config *c)
{
    for (size_t i = 0; i < w->npools; i++)
        retire(w->pools[i]);
    free(w->pools);
    w->pools = NULL;
    w->npools = 0;
    if (!c)
        return 0;
    w->pools = calloc(c->nupstreams ? c->nupstreams : 1, sizeof(*w->pools));
    if (!w->pools)
        return -1;
    for (size_t i = 0; i < c->nupstreams; i++) {
        struct upool *p = calloc(1, sizeof(*p));
        const struct cfg_upstream *u = &c->upstreams[i];
        if (!p || !(p->idle = calloc(u->nservers, sizeof(*p->idle))) ||
            (u->tls_client && !(p->sessions = calloc(u->nservers, sizeof(*p->sessions))))) {
            if (p)
                free(p->idle);
            free(p);
            return -1;
        }
        for (size_t j = 0; j < u->nservers; j++)
            dlist_init(&p->idle[j]);
        p->w = w;
        p->up = u;
        p->config = c;
        config_ref(c);
        p->refs = 1;
        p->rr = (size_t)w->id; /* workers start at different servers */
        w->pools[i] = p;
        w->npools++;
    }
    return 0;
}

struct upool *upool_for(struct worker *w, const struct cfg_upstream *u)
{
    if (u->index < w->npools && w->pools[u->index]->up == u)
        return w->pools[u->index];
    return NULL;
}

const char *upconn_addr_text(const struct upconn *uc)
{
    return uc->pool->up->servers[uc->server].text;
}

/* The upstream sent bytes nobody asked for: behind a complete response, or while the connection
 * was idle. On a reused connection they would be read as the next request's response, another
 * client's (its Set-Cookie, its body), so the connection is closed. Said once per server: a
 * broken app would otherwise write a line per request. */
static void upconn_stray(struct upconn *uc)
{
    const struct cfg_upstream *up = uc->pool->up;
    if (up->state && atomic_exchange(&up->state->servers[uc->server]->stray_logged, true))
        return;
    log_msg(&uc->w->srv->log, LOG_WARN,
            "upstream %s sent bytes after a complete response; closing the connection (logged "
            "once)",
            upconn_addr_text(uc));
}

enum upconn_peek { PEEK_QUIET, PEEK_DATA, PEEK_RECORD, PEEK_GONE };

/* What the socket holds that we have not read, without reading it: nothing, bytes (stray ones
 * when no request is outstanding), or the end (EOF, an error). Through TLS, bytes on the socket
 * are a record we cannot look into without reading it (a late session ticket, a close_notify,
 * or data): unusable, but not proof that the server sent stray bytes. */
static enum upconn_peek upconn_peek(const struct upconn *uc)
{
    if (uc->t.ops->pending(&uc->t))
        return PEEK_DATA;
    char b;
    ssize_t n = recv(uc->t.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return uc->t.ops->opaque_wire ? PEEK_RECORD : PEEK_DATA;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return PEEK_QUIET;
    return PEEK_GONE;
}

/* Events on a busy connection go to its user; on an idle one any readable event means the
 * upstream closed it or sent bytes no request asked for, so it is dropped. */
static void upconn_on_io(struct ev_io *io, uint32_t events)
{
    struct upconn *uc = container_of(io, struct upconn, io);
    if (uc->closed)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        uc->rd_ready = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        uc->rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        uc->wr_ready = true;
    if (uc->idle) {
        if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            return;
        if (upconn_peek(uc) == PEEK_DATA)
            upconn_stray(uc);
        upconn_close(uc);
        return;
    }
    uc->on_event(uc, UPCONN_IO);
}

static void upconn_on_timer(struct ev_timer *t)
{
    struct upconn *uc = container_of(t, struct upconn, timer);
    if (uc->idle) {
        upconn_close(uc); /* idle past keepalive_timeout */
        return;
    }
    uc->on_event(uc, UPCONN_TIMEOUT);
}

/* Whether two addresses (IP, or none: family 0) are the same address and port. */
static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return a->ss_family == 0;
}

/* The client a connection is for (PROXY protocol upstreams): family 0 for none. */
static void set_client(struct sockaddr_storage *out, const struct sockaddr *sa)
{
    memset(out, 0, sizeof *out);
    if (sa && sa->sa_family == AF_INET)
        memcpy(out, sa, sizeof(struct sockaddr_in));
    else if (sa && sa->sa_family == AF_INET6)
        memcpy(out, sa, sizeof(struct sockaddr_in6));
}

/* Under the PROXY protocol an idle connection serves only the client its header named. */
static bool idle_fits(const struct upool *p, const struct upconn *uc,
                      const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
    return p->up->proxy_protocol == CFG_PP_OFF ||
           (same_endpoint(&uc->pp_src, src) && same_endpoint(&uc->pp_dst, dst));
}

/* The most recently used idle connection to `server` that is quiet (and, under the PROXY
 * protocol, for this client). One that is readable (bytes or a close that arrived in this loop
 * turn, before its event was handled) is closed: its bytes would be read as the response to
 * the request we are about to send. */
static struct upconn *take_idle(struct upool *p, size_t server, const struct sockaddr_storage *src,
                                const struct sockaddr_storage *dst)
{
    struct dlist *n = p->idle[server].next;
    while (n != &p->idle[server]) {
        struct upconn *uc = container_of(n, struct upconn, idle_link);
        n = n->next;
        GH_BUG_ON(!uc->idle || uc->closed); /* upconn_close takes a connection off the list */
        if (!idle_fits(p, uc, src, dst))
            continue;
        enum upconn_peek k = upconn_peek(uc);
        if (k != PEEK_QUIET) {
            if (k == PEEK_DATA)
                upconn_stray(uc);
            upconn_close(uc);
            continue;
        }
        dlist_remove(&uc->idle_link);
        p->nidle--;
        uc->idle = false;
        ev_timer_stop(&p->w->loop, &uc->timer);
        uc->reused = true;
        return uc;
    }
    return NULL;
}

static struct upconn *connect_new(struct upool *p, size_t server,
                                  const struct sockaddr_storage *src,
                                  const struct sockaddr_storage *dst)
{
    const struct cfg_addr *a = &p->up->servers[server];
    int fd = sock_connect((const struct sockaddr *)&a->sa, a->len);
    if (fd < 0)
        return NULL;
    struct upconn *uc = calloc(1, sizeof(*uc));
    if (!uc) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    uc->w = p->w;
    uc->pool = p;
    uc->server = server;
    uc->pp_src = *src;
    uc->pp_dst = *dst;
    transport_plain(&uc->t, fd);
    uc->io = (struct ev_io){.fd = fd, .cb = upconn_on_io};
    uc->timer.cb = upconn_on_timer;
    uc->free_defer.cb = upconn_free;
    dlist_init(&uc->idle_link);
    if (ev_io_add(&p->w->loop, &uc->io, 0) < 0) {
        int e = errno;
        close(fd);
        free(uc);
        errno = e;
        return NULL;
    }
    p->refs++;
    return uc;
}

struct upconn *upconn_acquire(struct upool *p, bool fresh)
{
    return upconn_acquire_server(p, p->rr++ % p->up->nservers, fresh);
}

struct upconn *upconn_acquire_server(struct upool *p, size_t server, bool fresh)
{
    return upconn_acquire_client(p, server, fresh, NULL, NULL);
}

struct upconn *upconn_acquire_client(struct upool *p, size_t server, bool fresh,
                                     const struct sockaddr *src, const struct sockaddr *dst)
{
    struct sockaddr_storage s, d;
    set_client(&s, p->up->proxy_protocol ? src : NULL);
    set_client(&d, p->up->proxy_protocol ? dst : NULL);
    struct upconn *uc = fresh ? NULL : take_idle(p, server, &s, &d);
    if (uc)
        return uc;
    return connect_new(p, server, &s, &d);
}

int upstream_send_proxy_header(int fd, const struct cfg_upstream *up, const struct sockaddr *src,
                               const struct sockaddr *dst)
{
    uint8_t hdr[PP_V1_MAX + 1];
    size_t len;
    ssize_t n;

    if (up->proxy_protocol == CFG_PP_OFF)
        return 0;
    if (up->proxy_protocol == CFG_PP_V1)
        len = pp_write_v1((char *)hdr, sizeof hdr, src, dst);
    else
        len = pp_write_v2(hdr, sizeof hdr, src, dst, !src);
    if (!len)
        return -1;
    /* A socket just connected has an empty send buffer: the header goes in one call. */
    do
        n = send(fd, hdr, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

/* The connection's PROXY header: the client it was made for. */
static int send_proxy_header(struct upconn *uc)
{
    const struct sockaddr *src = (const struct sockaddr *)&uc->pp_src;
    const struct sockaddr *dst = (const struct sockaddr *)&uc->pp_dst;
    return upstream_send_proxy_header(uc->t.fd, uc->pool->up, src->sa_family ? src : NULL,
                                      dst->sa_family ? dst : NULL);
}

/* The name a TLS server must prove: the configured one, else the host part of the address as
 * written ("app.internal:443", "10.0.0.5:443", "[::1]:443"): the name, not the address it
 * resolved to, for a server written as a host name. */
static const char *tls_name(const struct cfg_upstream *up, size_t server, char *buf, size_t len)
{
    const struct cfg_addr *a = &up->servers[server];
    const char *text = a->host ? a->host : a->text;
    const char *end = strrchr(text, ':');

    if (up->tls_server_name)
        return up->tls_server_name;
    if (*text == '[') {
        text++;
        end = strchr(text, ']');
    }
    snprintf(buf, len, "%.*s", end ? (int)(end - text) : (int)strlen(text), text);
    return buf;
}

int upstream_transport_start(struct transport *t, const struct cfg_upstream *up, size_t server,
                             struct tls_session **slot)
{
    char name[256];

    if (!up->tls_client) {
        transport_plain(t, t->fd);
        return 0;
    }
    return tls_client_transport_start(t, up->tls_client, tls_name(up, server, name, sizeof name),
                                      slot);
}

static int start_transport(struct upconn *uc, char *why, size_t len)
{
    struct upool *p = uc->pool;

    if (upstream_transport_start(&uc->t, p->up, uc->server,
                                 p->sessions ? &p->sessions[uc->server] : NULL) < 0) {
        snprintf(why, len, "TLS handshake failed: cannot set up the connection");
        return -1;
    }
    uc->handshaking = true;
    return 0;
}

/* Edge-triggered: a WANT clears the flag of what it waits for, so that only a new event for it
 * calls again. */
static int step_handshake(struct upconn *uc, char *why, size_t len)
{
    char reason[200];
    int r = uc->t.ops->handshake(&uc->t, reason, sizeof reason);

    if (r == TRANSPORT_WANT_READ) {
        uc->rd_ready = false;
        return 0;
    }
    if (r == TRANSPORT_WANT_WRITE) {
        uc->wr_ready = false;
        return 0;
    }
    if (r != TRANSPORT_DONE) {
        snprintf(why, len, "TLS handshake failed: %s", reason);
        return -1;
    }
    uc->handshaking = false;
    uc->connected = true;
    return 1;
}

int upconn_connected(struct upconn *uc, char *why, size_t len)
{
    if (!uc->handshaking) {
        int err = sock_error(uc->t.fd);
        if (err) {
            snprintf(why, len, "connect failed: %s", strerror(err));
            return -1;
        }
        if (send_proxy_header(uc) < 0) {
            snprintf(why, len, "could not send the PROXY protocol header");
            return -1;
        }
        if (start_transport(uc, why, len) < 0)
            return -1;
    }
    return step_handshake(uc, why, len);
}

int upconn_flush(struct upconn *uc)
{
    return uc->t.ops->flush(&uc->t, &uc->out, &uc->w->bufs);
}

int upconn_shutdown(struct upconn *uc)
{
    return uc->t.ops->shutdown(&uc->t);
}

int upconn_read(struct upconn *uc)
{
    if (!uc->in && !(uc->in = buf_get(&uc->w->bufs))) {
        errno = ENOMEM;
        return -1;
    }
    if (buf_room(uc->in) == 0 && uc->in->start)
        buf_compact(uc->in, 0);
    size_t room = buf_room(uc->in);
    if (!room)
        return 0;
    long n = uc->t.ops->recv(&uc->t, uc->in->data + uc->in->end, room);
    if (n > 0) {
        uc->in->end += (uint32_t)n;
        /* A short read drained the socket (not so through TLS, where it ends a record), unless
         * the peer's FIN came with the data: then the next read must see the end (no further
         * edge will announce it). */
        if (uc->t.ops->short_read_drains && (size_t)n < room && !uc->rdhup)
            uc->rd_ready = false;
        return (int)n;
    }
    uc->rd_ready = false;
    if (n == TRANSPORT_CLOSED)
        uc->eof = true;
    return n == TRANSPORT_ERROR ? -1 : 0;
}

/* Bytes behind the complete response that were already read (a body on a HEAD, 204 or 304
 * answer, more than Content-Length, anything after the last chunk): never part of any other
 * response, whether or not the connection would have been kept. */
static bool has_stray(struct upconn *uc)
{
    if ((uc->in && buf_len(uc->in)) || uc->t.ops->pending(&uc->t)) {
        upconn_stray(uc);
        return true;
    }
    return false;
}

/* The same still in the socket, or a close we have not seen: either makes it unusable. */
static bool has_unread(struct upconn *uc)
{
    if (!uc->rd_ready)
        return false; /* drained: anything later comes as an event while idle */
    enum upconn_peek k = upconn_peek(uc);
    if (k == PEEK_QUIET) {
        uc->rd_ready = false;
        return false;
    }
    if (k == PEEK_DATA)
        upconn_stray(uc);
    return true;
}

void upconn_release(struct upconn *uc, bool reusable)
{
    struct upool *p = uc->pool;
    GH_BUG_ON(uc->idle); /* released twice: it would sit in the idle list twice */
    uc->user = NULL;
    uc->on_event = NULL;
    if (has_stray(uc) || !reusable || p->retired || uc->eof || p->nidle >= p->up->keepalive ||
        uc->requests >= p->up->keepalive_requests || has_unread(uc)) {
        upconn_close(uc);
        return;
    }
    buf_put(&uc->w->bufs, uc->in); /* idle connections hold no buffer */
    uc->in = NULL;
    outq_release(&uc->out, &uc->w->bufs);
    dlist_push(&p->idle[uc->server], &uc->idle_link);
    p->nidle++;
    uc->idle = true;
    ev_timer_start(&uc->w->loop, &uc->timer, p->up->keepalive_timeout);
}
