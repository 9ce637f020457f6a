/* The HTTP/1.1 server side of a client connection: reads and parses requests, hands each to
 * the router as a protocol-neutral http_stream, frames the response, and manages keep-alive,
 * pipelining, timeouts and closing. */
#ifndef GH_H1_SERVER_H
#define GH_H1_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker;
struct dlist;

/* Take over an accepted, non-blocking socket that arrived on listener `listener` (index in the
 * configuration's listeners), bound to `local_port`. */
void h1_conn_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                    int listener, unsigned short local_port, bool counted);
/* Make room at the connection limit: close this connection if it is idle between requests.
 * Returns whether it was closed. */
bool h1_conn_close_if_idle(struct dlist *link);
/* Release the worker's cached header arrays. */
void h1_worker_fini(struct worker *w);

/* Shutdown: close the connection now if idle, else after its exchange in flight. */
void h1_conn_drain(struct dlist *link);
/* Grace period over: close whatever remains. */
void h1_conn_force_close(struct dlist *link);

#endif
