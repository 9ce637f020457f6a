/* The HTTP side of a client connection: which codec serves it, and what an exchange takes
 * from it (the same for both codecs). */
#ifndef GH_HTTP_CONN_H
#define GH_HTTP_CONN_H

#include "net/conn.h"

#include <stdbool.h>
#include <stddef.h>

struct http_stream;
struct http_stream_ops;
struct config;

/* The connection layer's callback (conn_start_fn): start the HTTP/1.1 or HTTP/2 codec. */
void http_conn_start(struct conn *c, enum conn_proto proto, const char *initial, size_t initial_len,
                     bool ready);

/* Start *s afresh for a new exchange on connection `c`: the codec's ops, the worker, the peer,
 * the port and the TLS facts of the connection, and the snapshot and listener the exchange runs
 * on (`config`, `listener`: the codec's, which may be newer than the connection's first). The
 * request body limit comes from that snapshot. */
void http_stream_init(struct http_stream *s, const struct http_stream_ops *ops,
                      const struct conn *c, struct config *config, int listener);

/* Hand a complete request head to the request handler the server was started with
 * (worker_hooks.dispatch): the router, which picks and starts the handler. The handler owns the
 * exchange until it calls send_end or abort, or until the codec calls on_close. */
void http_dispatch(struct http_stream *s);

#endif
