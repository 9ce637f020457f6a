/* The compress response filter (key `compress`, docs/compression.md): between a handler and the
 * codec, it encodes the response body with the coding the client prefers among the site's or
 * the route's algorithms.
 *
 * compress_send_head is called for every final head (handler_send_head). It decides with the
 * effective configuration (the route's, else the site's), the response (accept_encoding_
 * compressible: status, Range, Content-Encoding, no-transform, type, min_size) and the client's
 * Accept-Encoding. A response that could have been compressed gets `Vary: Accept-Encoding`,
 * whatever the client asked. A compressed one loses its Content-Length (chunked on HTTP/1.1),
 * gains Content-Encoding, and its strong ETag is weakened; then the filter takes the stream's
 * ops (send_body, send_end, abort; send_file NULL, so a file is copied through it) and the
 * handler's callbacks until the last encoded byte is with the codec.
 *
 * Memory per compressed response: the encoder's state and one pool buffer of output. When the
 * codec cannot take more, the handler's slice is held (send_body answers SEND_PENDING) and its
 * on_writable comes once the filter has drained. Output is flushed when the handler's input
 * pauses (the end of the loop turn after its last send_body), and after every send_body of a
 * text/event-stream, so events and long polls arrive as they are produced. */
#ifndef GH_HTTP_COMPRESS_H
#define GH_HTTP_COMPRESS_H

struct http_stream;
struct http_response;
struct worker;

/* Sends the final head `res` (status >= 200) through s->ops, compressed as said above when
 * eligible. Returns what the codec's send_head returned. */
int compress_send_head(struct http_stream *s, const struct http_response *res);

/* Frees the worker's idle encoders (kept for reuse between responses). */
void compress_worker_fini(struct worker *w);

#endif
