/* HTTP/1.1 message parsing (RFC 9112), strict and incremental, for both sides of the proxy:
 * requests from clients, responses from upstreams, and chunked bodies in either direction.
 * Parsers never allocate and never copy: every string is a slice of the caller's buffer. */
#ifndef GH_H1_PARSE_H
#define GH_H1_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/token.h"

struct h1_header {
    const char *name;
    const char *value; /* leading/trailing OWS removed */
    uint32_t name_len;
    uint32_t value_len;
};

enum h1_body {
    H1_BODY_NONE,       /* no body */
    H1_BODY_LENGTH,     /* content_length bytes follow */
    H1_BODY_CHUNKED,    /* chunked transfer coding */
    H1_BODY_UNTIL_CLOSE /* responses only: body ends when the upstream closes */
};

/* Message-level flags derived from the headers. */
enum {
    H1_F_CONN_CLOSE = 1 << 0,      /* Connection: close (or HTTP/1.0 without keep-alive) */
    H1_F_CONN_KEEPALIVE = 1 << 1,  /* Connection: keep-alive */
    H1_F_CONN_UPGRADE = 1 << 2,    /* Connection: upgrade */
    H1_F_EXPECT_CONTINUE = 1 << 3, /* Expect: 100-continue */
    H1_F_HAS_UPGRADE = 1 << 4,     /* an Upgrade header is present */
};

struct h1_limits {
    uint32_t max_request_line; /* request line or status line, bytes, without CRLF */
    uint32_t max_head;         /* whole head including the final empty line */
    uint32_t max_headers;      /* header field lines; must be <= capacity of the headers array */
};

/* Outcome of a head parse. */
enum {
    H1_OK = 0,          /* a complete head was parsed */
    H1_INCOMPLETE = -1, /* need more bytes; nothing invalid seen so far */
    H1_ERROR = -2,      /* invalid; see `status` and `error` in the result */
};

struct h1_request {
    const char *method;
    const char *target; /* as sent: origin-form, absolute-form, authority-form, or "*" */
    uint32_t method_len;
    uint32_t target_len;
    int minor;                 /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
    struct h1_header *headers; /* caller-provided array */
    uint32_t nheaders;
    uint32_t head_len; /* bytes of request line + headers + empty line */
    enum h1_body body; /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    unsigned flags;   /* H1_F_* */
    int host_count;   /* number of Host header lines */
    const char *host; /* value of the (first) Host header, or NULL */
    uint32_t host_len;
    /* On H1_ERROR: the status to answer (400, 414, 431, 501, 505) and a short reason for the
     * log, e.g. "obs-fold in header", "Content-Length with Transfer-Encoding". */
    int status;
    const char *error;
};

/* Parse a request head from buf[0..len). Call again with the same buffer start and a larger len
 * when more bytes arrive (it reparses from the start; the common case is one call). Leading
 * empty lines (CRLF) before the request line are skipped as RFC 9112 section 2.2 allows; they
 * count in head_len. `headers` must have room for lim->max_headers entries.
 * Rejects (H1_ERROR): bare CR, control characters (other than HTAB in values), obs-fold,
 * invalid token characters in method or header names, whitespace before the colon,
 * Transfer-Encoding together with Content-Length, a Transfer-Encoding whose final coding is
 * not chunked (400, RFC 9112 section 6.3), an unknown coding under chunked (501), chunked in an
 * HTTP/1.0 request (400), several Content-Length values that differ or are not all digits (a
 * list of identical values is accepted), a version other than HTTP/1.0 or HTTP/1.1 (505 for
 * HTTP/2.0+ style, 400 for garbage), request line too long (414), head too large or too many
 * headers (431). A line ending is CRLF only: a bare LF is 400 "bare LF" (RFC 9112 section 2.2
 * allows refusing it, and a front end must, as a back end may split lines differently). */
int h1_parse_request(const char *buf, size_t len, struct h1_request *req, struct h1_header *headers,
                     const struct h1_limits *lim);

struct h1_response {
    int status; /* 100..999 */
    int minor;
    const char *reason;
    uint32_t reason_len;
    struct h1_header *headers;
    uint32_t nheaders;
    uint32_t head_len;
    enum h1_body body; /* NONE for 1xx, 204, 304 and responses to HEAD; UNTIL_CLOSE when neither
                          Content-Length nor chunked is given (or HTTP/1.0 with unknown coding) */
    uint64_t content_length;
    unsigned flags;
    const char *error; /* on H1_ERROR */
};

/* Parse a response head. `head_request` says the request was HEAD (no body whatever the headers
 * say). Same line/limit rules as requests, except that a bare LF ends a line; a Transfer-Encoding
 * with Content-Length is an error here too (we refuse to guess), as are invalid or differing
 * Content-Length values. */
int h1_parse_response(const char *buf, size_t len, struct h1_response *res,
                      struct h1_header *headers, const struct h1_limits *lim, bool head_request);

/* Incremental chunked-body decoder. Feed it bytes; it hands back data spans and tells when the
 * body (last chunk + trailer section) ended. Chunk extensions are validated and dropped. */
struct h1_chunked {
    int state;            /* private */
    uint64_t remaining;   /* bytes left in the current chunk */
    uint32_t line_len;    /* private: bytes of the current size/trailer line seen */
    uint32_t trailer_len; /* bytes of trailer section seen so far */
    uint32_t max_line;    /* 0 -> 4096: size line incl. extensions */
    uint32_t max_trailer; /* 0 -> 16384: whole trailer section */
    bool crlf_only;       /* a bare LF ending a line is an error (set for request bodies) */
};

enum {
    H1_CHUNK_DATA = 1,  /* *data, *data_len: body data; *consumed bytes were used */
    H1_CHUNK_AGAIN = 0, /* consumed all input (framing only); feed more */
    H1_CHUNK_END = 2,   /* body complete; *consumed bytes used (bytes after it belong to the
                           next message) */
    H1_CHUNK_ERROR = -1 /* invalid framing */
};

/* Clears the decoder: limits to their defaults, bare LF accepted (responses); set crlf_only after
 * it for requests. */
void h1_chunked_init(struct h1_chunked *c);

/* Decode from in[0..len). Returns one of H1_CHUNK_*. For DATA, the span is inside `in`
 * (in + offset), so no copying; call again with in + *consumed to continue. Trailer fields are
 * validated like header fields and then dropped (they are not forwarded yet). */
int h1_chunked_decode(struct h1_chunked *c, const char *in, size_t len, size_t *consumed,
                      const char **data, size_t *data_len);

#endif
