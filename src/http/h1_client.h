/* The HTTP/1.1 client codec (RFC 9112), for talking to upstreams: it writes request heads and
 * body framing into an output queue, and reads response heads and bodies from an input buffer.
 * It knows the protocol, not the proxy's policy: which fields cross, retries, balancing and
 * header rewriting stay with its users (proxy/proxy.c, proxy/health.c). */
#ifndef GH_H1_CLIENT_H
#define GH_H1_CLIENT_H

#include "core/buf.h"
#include "http/h1_parse.h"
#include "http/request.h"
#include "net/outq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- request ------------------------------------------------------------------------------ */

/* Each returns 0, or -1 when the bytes do not fit in the queue's buffer (or out of memory). */
int h1_client_put(struct outq *q, struct buf_pool *pool, const char *data, size_t len);
/* "name: value\r\n" */
int h1_client_put_field(struct outq *q, struct buf_pool *pool, const char *name, size_t nlen,
                        const char *value, size_t vlen);
/* A number field or chunk-size line: prefix (at most 32 bytes), the number, CRLF. */
int h1_client_put_number(struct outq *q, struct buf_pool *pool, const char *prefix, size_t plen,
                         unsigned long long v, bool hex);
/* "METHOD /path?query HTTP/1.1\r\n" in origin form: a path that does not start with '/' gets
 * one first; a query whose p is NULL (no '?' in the target) is left out. */
int h1_client_put_request_line(struct outq *q, struct buf_pool *pool, struct slice method,
                               struct slice path, struct slice query);
/* The body's framing field: Content-Length when the length is known (>= 0), else
 * Transfer-Encoding: chunked; nothing without a body. *chunked says which went out. */
int h1_client_put_framing(struct outq *q, struct buf_pool *pool, bool has_body,
                          int64_t content_length, bool *chunked);
/* A chunk-size line for a chunk of len bytes (the data and its CRLF follow). */
int h1_client_put_chunk_size(struct outq *q, struct buf_pool *pool, size_t len);
/* The last chunk's size line; trailer fields (h1_client_put_field) and the end follow. */
int h1_client_put_last_chunk(struct outq *q, struct buf_pool *pool);
/* The empty line that ends a head or a trailer section. */
int h1_client_put_end(struct outq *q, struct buf_pool *pool);

/* ---- response head ------------------------------------------------------------------------ */

enum {
    H1_CLIENT_HEAD_DONE,      /* *res is a head; in->start moved past it */
    H1_CLIENT_HEAD_MORE,      /* more bytes needed */
    H1_CLIENT_HEAD_TOO_LARGE, /* the buffer is full and holds no complete head */
    H1_CLIENT_HEAD_INVALID,   /* res->error says why */
};

/* Parse the response head at the start of `in` into res, with `headers` (room for max_headers)
 * and a status line of at most max_line bytes. `head_request`: the request was HEAD. */
int h1_client_parse_head(struct buf *in, struct h1_response *res, struct h1_header *headers,
                         uint32_t max_headers, uint32_t max_line, bool head_request);

/* "HTTP/1.x NNN" followed by a space or the line end: the status, or -1. For a reader that
 * wants the status only (health checks). */
int h1_client_status_line(const char *line, size_t len);

/* Whether the upstream lets us send another request on the connection after this response. */
bool h1_client_keeps_alive(const struct h1_response *res);

/* NULL for a lone `chunked` Transfer-Encoding (or none), else the field that names another
 * coding: such a body cannot be forwarded de-chunked (see h1_client.c). */
const struct h1_header *h1_client_transfer_coding_refused(const struct h1_response *res);

/* The first field of the response named `lower` (lowercase), or NULL. */
const struct h1_header *h1_client_field(const struct h1_response *res, const char *lower,
                                        size_t len);

/* ---- response body ------------------------------------------------------------------------ */

struct h1_client_body {
    enum h1_body kind;
    uint64_t left; /* H1_BODY_LENGTH: bytes not yet consumed */
    struct h1_chunked chunk;
};

enum {
    H1_CLIENT_BODY_ERROR = -1, /* invalid chunked framing */
    H1_CLIENT_BODY_MORE = 0,   /* need more bytes */
    H1_CLIENT_BODY_DATA = 1,   /* *data, *len: a slice inside `in` */
    H1_CLIENT_BODY_END = 2,    /* the body is complete */
};

/* The framing of the body that follows the final head `res`. */
void h1_client_body_start(struct h1_client_body *b, const struct h1_response *res);
/* The next slice of body in `in` (may be NULL: nothing read yet); `eof`: the upstream closed.
 * Chunk framing is consumed from `in` as it is decoded; the data slice is consumed with
 * h1_client_body_consumed once its user is done with it. */
int h1_client_body_next(struct h1_client_body *b, struct buf *in, bool eof, const char **data,
                        size_t *len);
void h1_client_body_consumed(struct h1_client_body *b, struct buf *in, size_t n);

#endif
