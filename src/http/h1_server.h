/* The HTTP/1.1 server side of a client connection: reads and parses requests, hands each to
 * the router as a protocol-neutral http_stream, frames the response, and manages keep-alive,
 * pipelining, timeouts and closing. */
#ifndef GH_H1_SERVER_H
#define GH_H1_SERVER_H

#include <stdbool.h>

struct worker;
struct conn;

/* Take over a connection whose transport is ready (net/conn.h). `ready`: input may already
 * wait where epoll will not announce it, so read at once. On failure the connection is closed
 * and freed. */
void h1_conn_start(struct conn *conn, bool ready);

/* Release the worker's cached header arrays. */
void h1_worker_fini(struct worker *w);

#endif
