/* Reading the PROXY protocol header a listener asks for. The header is looked at with MSG_PEEK
 * and only its own bytes are taken off the socket, so what follows it (a TLS ClientHello, a
 * request) stays there for the next reader; a header split over packets is looked at again
 * on each, until client_header_timeout. */
#include "net/proxy_accept.h"

#include "config/config.h"
#include "core/sock.h"
#include "core/worker.h"
#include "net/conn.h"
#include "net/proxy_proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static struct logger *pa_log(const struct conn *c)
{
    return &c->w->srv->log;
}

static void pa_fail(struct conn *c, const char *what)
{
    log_msg(pa_log(c), LOG_INFO, "client %s: PROXY protocol: %s; closing", c->peer, what);
    conn_preamble_close(c);
}

/* The header names the client: it is the connection's peer from now on (forwarding headers,
 * access log, max_connections_per_client, hash_key client_ip), and where it connected to is
 * the local address. LOCAL, UNKNOWN and UNSPEC keep the balancer as the peer. */
static void pa_apply(struct conn *c, const struct pp_header *h)
{
    if (!h->has_addrs)
        return;
    memset(&c->peer_addr, 0, sizeof c->peer_addr);
    memcpy(&c->peer_addr, &h->src, h->addr_len);
    sock_host_text((const struct sockaddr *)&c->peer_addr, c->peer, sizeof c->peer);
    c->local_addr = h->dst;
    c->local_port = h->dst.ss_family == AF_INET
                        ? ntohs(((const struct sockaddr_in *)&h->dst)->sin_port)
                        : ntohs(((const struct sockaddr_in6 *)&h->dst)->sin6_port);
}

/* max_connections_per_client, on the client the header named (the worker skipped it at
 * accept). Refused: the 503 on a plain listener (under TLS the client could not read it). */
static bool pa_admit(struct conn *c)
{
    const struct config *cfg = c->config;
    const struct cfg_listener *l = &cfg->listeners[c->listener];
    bool counted = false;

    if (worker_admit_client(c->w, (const struct sockaddr *)&c->peer_addr, &counted)) {
        c->counted = counted;
        return true;
    }
    if (!l->tls)
        worker_refuse_answer(c->w, c->fd, (const struct sockaddr *)&c->peer_addr);
    else
        log_msg(pa_log(c), LOG_INFO, "client %s: over max_connections_per_client; closing",
                c->peer);
    conn_preamble_close(c);
    return false;
}

/* Take exactly `len` bytes (the header) off the socket: they were seen by MSG_PEEK, so they
 * are there. */
static bool pa_consume(struct conn *c, size_t len)
{
    uint8_t sink[PP_MAX];
    ssize_t n;
    do
        n = recv(c->fd, sink, len, 0);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len;
}

/* `ended`: the client's FIN (or an error) came with this event: no more bytes will come. */
static void pa_read(struct conn *c, bool ended)
{
    uint8_t buf[PP_MAX];
    struct pp_header h;
    const char *why;
    ssize_t n;

    do
        n = recv(c->fd, buf, sizeof buf, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
        /* Port scans and TCP health checks (an NLB's) connect and leave: not worth a line. */
        log_msg(pa_log(c), LOG_DEBUG, "client %s: PROXY protocol: closed before a header", c->peer);
        conn_preamble_close(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            pa_fail(c, strerror(errno));
        return;
    }
    ssize_t len = pp_parse(buf, (size_t)n, &h, &why);
    if (len == PP_NEED_MORE) {
        /* Peeking never sees the end behind unread bytes: epoll told us of it. */
        if (ended)
            pa_fail(c, "closed by the client before a complete header");
        return; /* else the next packet's edge brings us back */
    }
    if (len < 0) {
        pa_fail(c, why);
        return;
    }
    if (!pa_consume(c, (size_t)len)) {
        pa_fail(c, "the header could not be taken off the socket");
        return;
    }
    pa_apply(c, &h);
    log_msg(pa_log(c), LOG_DEBUG, "client %s: PROXY protocol v%d header%s", c->peer, h.version,
            h.has_addrs ? "" : " without addresses (the balancer's own connection)");
    if (!pa_admit(c))
        return;
    conn_preamble_unwatch(c);
    conn_proceed(c);
}

static void pa_on_io(struct ev_io *io, uint32_t events)
{
    struct conn *c = container_of(io, struct conn, hs_io);
    if (c->fd >= 0)
        pa_read(c, events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
}

static void pa_on_timer(struct ev_timer *t)
{
    struct conn *c = container_of(t, struct conn, hs_timer);
    log_msg(pa_log(c), LOG_INFO,
            "client %s: PROXY protocol: no complete header within client_header_timeout (%u ms); "
            "closing",
            c->peer, c->config->limits.client_header_timeout);
    conn_preamble_close(c);
}

int proxy_accept_start(struct conn *c)
{
    const struct config *cfg = c->config;

    if (!config_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies,
                           (const struct sockaddr *)&c->peer_addr)) {
        log_msg(pa_log(c), LOG_INFO,
                "client %s: not in trusted_proxies, which alone may send the PROXY protocol "
                "header this listener expects; closing",
                c->peer);
        return -1;
    }
    return conn_preamble_watch(c, pa_on_io, pa_on_timer, cfg->limits.client_header_timeout);
}
