/* The HTTP/2 server side of a client connection (RFC 9113, via nghttp2): each stream becomes a
 * protocol-neutral http_stream through the same router and handlers as HTTP/1.1. A connection
 * arrives here from the connection layer (net/conn.h) once ALPN chose "h2" or HTTP/1.1 saw an
 * h2c preface. */
#ifndef GH_H2_SERVER_H
#define GH_H2_SERVER_H

#include <stddef.h>

struct conn;

/* Take over the connection; `initial` are bytes already read from the client (the preface...),
 * or NULL. On failure the connection is closed and freed. */
void h2_conn_start(struct conn *conn, const char *initial, size_t initial_len);

#endif
