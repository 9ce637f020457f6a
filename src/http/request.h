/* The protocol-neutral exchange: a request (method, target, fields, a body stream) and the
 * response a handler produces through the stream's operations. The HTTP/1.1 codec implements
 * them today, the HTTP/2 codec tomorrow; routers and handlers never see wire bytes. */
#ifndef GH_REQUEST_H
#define GH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct config;
struct cfg_route;
struct cfg_site;
struct sockaddr;

struct http_field {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

struct slice {
    const char *p;
    size_t len;
};

#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})

/* What the handler may do with the request body, and what it may send back. */
enum body_result { BODY_DATA = 1, BODY_AGAIN = 0, BODY_END = 2, BODY_ERROR = -1 };
/* SEND_NOTSUP: only from send_file, when this connection cannot send from a file (TLS without
 * kTLS, a filter that must see the bytes): nothing was taken, the handler copies instead. */
enum send_result { SEND_DONE = 0, SEND_PENDING = 1, SEND_ERROR = -1, SEND_NOTSUP = 2 };
#define SEND_COPY_MAX 1024

struct http_stream;

struct http_response {
    int status;
    const struct http_field *fields; /* end-to-end fields only; the codec adds framing */
    size_t nfields;
    int64_t content_length; /* -1 = unknown (streamed) */
    bool no_body;           /* HEAD, 204, 304, 1xx */
};

struct http_stream_ops {
    /* Interim (1xx) or final response head. A final head with a known length sets the body
     * length; the codec frames the body as its protocol requires. */
    enum send_result (*send_head)(struct http_stream *s, const struct http_response *res);
    /* Body bytes. Slices of up to SEND_COPY_MAX bytes are copied at once; a larger one must
     * stay valid and untouched until on_writable when SEND_PENDING is returned. With SEND_DONE
     * it was fully taken. */
    enum send_result (*send_body)(struct http_stream *s, const char *data, size_t len);
    /* Body bytes from a file, without reading them into user space where the connection allows
     * (sendfile(2) on plain TCP, kTLS): `len` bytes of the regular file `fd` from offset `off`.
     * NULL, or SEND_NOTSUP, when it cannot: the handler reads the file and uses send_body.
     * SEND_DONE: all taken; SEND_PENDING: the codec sends them as the socket drains and calls
     * on_writable when done, and fd must stay open until then. A file that ends before off +
     * len (truncated while being sent) fails the response: the connection is closed (the
     * length promised can no longer be kept), a log line says so, on_close follows. */
    enum send_result (*send_file)(struct http_stream *s, int fd, uint64_t off, uint64_t len);
    /* Body complete. May return SEND_PENDING (wait for on_writable, then the exchange ends). */
    enum send_result (*send_end)(struct http_stream *s);
    /* The response cannot be completed (upstream died mid-body): the client must see an error,
     * never a clean end. The handler must not touch the stream afterwards. */
    void (*abort)(struct http_stream *s);
    /* Request body: hand out the next slice that is ready. BODY_DATA: the slice in data and len is
     * valid until body_consumed; BODY_AGAIN: wait for on_body; BODY_END: no more; BODY_ERROR: the
     * client's body was invalid or the client went away (the codec answers and closes). */
    enum body_result (*read_body)(struct http_stream *s, const char **data, size_t *len);
    void (*body_consumed)(struct http_stream *s, size_t n);
    /* Rewind the body to its start if every byte is still held (for a retry). */
    bool (*body_rewind)(struct http_stream *s);
    /* Tunnels, for a request with req.upgrade set. `upgrade` answers the switch (HTTP/1.1: a
     * 101 head with res's fields; HTTP/2 extended CONNECT: a 200 head without the hop-by-hop
     * ones) and turns the exchange into a byte pipe: read_body then yields the client's bytes as
     * they come, including any that arrived right behind the request head, with BODY_END at the
     * client's half-close and no body timeout or size limit; send_body passes bytes as they are.
     * `shutdown` ends our direction (FIN / END_STREAM) once the queued bytes are out, while
     * read_body goes on. The handler ends the tunnel with send_end once both directions are
     * done, or with abort (close / RST_STREAM) at any time. */
    enum send_result (*upgrade)(struct http_stream *s, const struct http_response *res);
    void (*shutdown)(struct http_stream *s);
};

/* Callbacks from the codec to whichever handler owns the exchange. */
struct http_handler_ops {
    void (*on_body)(struct http_stream *s);     /* read_body may now return more */
    void (*on_writable)(struct http_stream *s); /* a pending send finished */
    void (*on_close)(struct http_stream *s);    /* client gone or timed out: release all */
    /* Optional: the server is shutting down and this exchange is still running. A long one
     * (a tunnel) may say so; it is closed at the end of the grace period like any other. */
    void (*on_drain)(struct http_stream *s);
};

struct http_request {
    struct slice method;
    struct slice target;      /* as received */
    struct slice path;        /* origin-form path (absolute-form reduced to it), no query */
    struct slice query;       /* after '?', without it; len 0 if none */
    struct slice authority;   /* Host (or the absolute-form authority) */
    bool authority_in_target; /* absolute-form: the target's authority replaces Host */
    struct slice protocol;    /* "HTTP/1.1" */
    const struct http_field *fields;
    size_t nfields;
    bool has_body;
    int64_t content_length; /* -1 = unknown (chunked) */
    bool head;              /* method is HEAD */
    bool expect_continue;
    /* Trailer fields that came after the body, safe to forward (framing, routing and
     * authentication fields already removed). Valid once read_body has returned BODY_END. */
    const struct http_field *trailers;
    size_t ntrailers;
    /* The protocols the client asks to switch to, as the upstream should see them in Upgrade
     * ("websocket"); len 0 when the request is no upgrade. The codec sets it only for a
     * request that can become a tunnel: HTTP/1.1 with Connection: upgrade and no body, h2c
     * removed (RFC 9110 section 7.8); or an HTTP/2 extended CONNECT (RFC 8441), which the codec
     * presents as a GET with its :protocol here and `connect` set. */
    struct slice upgrade;
    bool connect; /* extended CONNECT: the upstream's HTTP/1.1 handshake is ours to complete */
};

struct http_stream {
    const struct http_stream_ops *ops;
    const struct http_handler_ops *handler;
    void *handler_data;
    struct worker *worker;
    struct config *config; /* the snapshot this exchange started on */
    struct http_request req;
    const char *peer; /* client address text */
    const struct sockaddr *peer_addr;
    /* Where the client connected to (family 0: not known). */
    const struct sockaddr *local_addr;
    int listener;               /* index in config->listeners the client connected to */
    unsigned short local_port;  /* the port the client connected to */
    bool secure;                /* arrived over TLS */
    const char *sni;            /* the TLS server name the client asked for, or NULL */
    const char *client_subject; /* verified client certificate subject (mTLS), or NULL */
    /* Set by the router. */
    const struct cfg_site *site;
    const struct cfg_route *route;
    size_t path_rest;  /* offset in req.path where the route's prefix ends (router.h) */
    uint64_t max_body; /* request body limit in bytes, 0 = none (the codec enforces it) */
    /* Filled by handlers for the access log; upstream is "" when none was used. */
    char upstream[128];
    uint64_t upstream_ms_start, upstream_ms; /* ms; upstream_ms valid when upstream is set */
    uint64_t start_ms;
    int status;
    uint64_t body_bytes_sent;
    /* Set by a handler that chose the content coding itself (a precompressed file and its
     * siblings): the compress filter then leaves the response as it is. */
    bool coding_chosen;
    /* Set by the router when refusing a request it could not make sense of: the connection
     * carries nothing after this answer (HTTP/1.1 answers with Connection: close). */
    bool close_after;
};

/* Case-insensitive search of a field by lowercase name. */
const struct http_field *http_find_field(const struct http_request *r, const char *lower_name,
                                         size_t name_len);

/* The value of the cookie `name` (case-sensitive) in the request's Cookie fields, its length
 * in *len; NULL when absent. */
const char *http_cookie_value(const struct http_request *r, const char *name, size_t name_len,
                              size_t *len);

/* Reason phrase for a status code ("OK", "Not Found", ...; "" for unknown). */
const char *http_reason(int status);

/* `v` in decimal / lowercase hexadecimal into out (no NUL); returns the length. For header
 * values and chunk sizes on the hot path, where snprintf's cost shows. */
#define HTTP_NUM_MAX 20
size_t http_fmt_dec(char out[HTTP_NUM_MAX], unsigned long long v);
size_t http_fmt_hex(char out[HTTP_NUM_MAX], unsigned long long v);
/* A field or chunk-size line: prefix (plen bytes), v in decimal or hex, CRLF, into out, which
 * has room for plen + HTTP_NUM_MAX + 2 bytes. Returns the length. */
size_t http_fmt_line(char *out, const char *prefix, size_t plen, unsigned long long v, int hex);

#endif
