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

/* Release the worker's cached header arrays. */
void h1_worker_fini(struct worker *w);

#endif
