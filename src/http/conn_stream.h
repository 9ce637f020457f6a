/* What an exchange takes from its connection, the same for both codecs. */
#ifndef GH_CONN_STREAM_H
#define GH_CONN_STREAM_H

struct http_stream;
struct http_stream_ops;
struct conn;
struct config;

/* Start *s afresh for a new exchange on connection `c`: the codec's ops, the worker, the peer,
 * the port and the TLS facts of the connection, and the snapshot and listener the exchange runs
 * on (`config`, `listener`: the codec's, which may be newer than the connection's first). The
 * request body limit comes from that snapshot. */
void http_stream_init(struct http_stream *s, const struct http_stream_ops *ops,
                      const struct conn *c, struct config *config, int listener);

#endif
