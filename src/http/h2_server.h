/* The HTTP/2 server side of a client connection (RFC 9113, via nghttp2): each stream becomes a
 * protocol-neutral http_stream through the same router and handlers as HTTP/1.1. A connection
 * arrives here from the HTTP/1.1 side once ALPN chose "h2" or an h2c preface was seen. */
#ifndef GH_H2_SERVER_H
#define GH_H2_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct worker;
struct tls_conn;
struct config;

struct h2_handover {
    int fd;               /* non-blocking, already registered with nothing: h2 adds it */
    struct tls_conn *tls; /* NULL for h2c; ownership moves to the h2 connection */
    const struct sockaddr *peer;
    socklen_t peer_len;
    int listener;
    unsigned short local_port;
    bool counted;          /* in the worker's per-client count (see worker_conn_closed) */
    struct config *config; /* a reference that moves to the h2 connection */
    const char *initial;   /* bytes already read from the client (the preface...), or NULL */
    size_t initial_len;
};

/* Take over the connection. On failure the fd is closed and everything released. */
void h2_conn_start(struct worker *w, const struct h2_handover *h);

#endif
