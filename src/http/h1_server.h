/* The HTTP/1.1 server side of a client connection: reads and parses requests, hands each to
 * the router as a protocol-neutral http_stream, frames the response, and manages keep-alive,
 * pipelining, timeouts and closing. */
#ifndef GH_H1_SERVER_H
#define GH_H1_SERVER_H

#include <sys/socket.h>

struct worker;

/* Take over an accepted, non-blocking socket. */
void h1_conn_accept(struct worker *w, int fd, const struct sockaddr *peer);
/* Shutdown: close the connection now if idle, else after its exchange in flight. */
struct dlist;
void h1_conn_drain(struct dlist *link);
/* Grace period over: close whatever remains. */
void h1_conn_force_close(struct dlist *link);

#endif
