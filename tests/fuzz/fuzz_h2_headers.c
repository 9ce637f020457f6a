/* libFuzzer harness for HTTP/2 header block assembly: request heads (and trailers) arrive as
 * HPACK blocks on a real HTTP/2 server connection (h2_conn_start on a socketpair, the bytes
 * handed over as the connection's first input, as after an h2c preface), so they go through
 * nghttp2's decoder, our on_header / header_add / build_request, the router and a respond
 * route, and the stream's response and close. No crash, no leak, nothing left behind: after the
 * connection is closed the worker has no connection, timer or deferred call left.
 *
 * Input: one flag byte, then header lines "name: value" (or "name:value") separated by "\n"; a
 * line "--" starts the trailer section. The flags:
 *   1   prepend a valid request head (:method GET, :scheme https, :path /, :authority)
 *   2   END_STREAM on the HEADERS frame (no body, no trailers)
 *   4   the trailer lines go in a second HEADERS frame (with END_STREAM)
 *   8   tight limits (max_header_count 4, max_header_size 256, max_request_line 64, ...)
 *   16  raw: the bytes after the flag byte are the HPACK block itself, not deflated
 *   32  the block is cut into a HEADERS frame and CONTINUATION frames
 *   64  the same request again on stream 3 (HPACK dynamic table reuse, concurrent streams)
 *   128 a DATA frame of body before the trailers or the end */
#include "fuzz.h"
#include "config/config.h"
#include "core/worker.h"
#include "http/h2_server.h"
#include "net/conn.h"
#include "route/dispatch.h"

#include <nghttp2/nghttp2.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    F_HEAD = 1,
    F_END = 2,
    F_TRAILERS = 4,
    F_TIGHT = 8,
    F_RAW = 16,
    F_CONT = 32,
    F_TWO = 64,
    F_DATA = 128,
};

#define MAX_FIELDS 256
#define MAX_WIRE (256 * 1024)

static const char yaml_normal[] = "listen:\n"
                                  "  - address: \"127.0.0.1:0\"\n"
                                  "logs: { level: error }\n"
                                  "sites:\n"
                                  "  - hosts: [\"*\"]\n"
                                  "    routes:\n"
                                  "      - path: /\n"
                                  "        respond: { body: \"hello\\n\" }\n"
                                  "      - path: /r\n"
                                  "        redirect: { to: \"/x\", append_path: true }\n"
                                  "      - path: /empty\n"
                                  "        respond: { status: 204 }\n";

static const char yaml_tight[] =
    "listen:\n"
    "  - address: \"127.0.0.1:0\"\n"
    "logs: { level: error }\n"
    "limits:\n"
    "  max_request_line: 64\n"
    "  max_header_size: 256\n"
    "  max_header_count: 4\n"
    "  http2: { max_header_list_size: 1k, max_concurrent_streams: 1 }\n"
    "sites:\n"
    "  - hosts: [\"a.example\"]\n"
    "    routes:\n"
    "      - path: /\n"
    "        respond: { body: \"tight\\n\" }\n";

/* One worker per configuration: a stream takes its limits from its worker's snapshot, the
 * connection from the one conn_accept took (the same). */
static struct server srv;
/* Only the router: the codec reaches it through worker_hooks.dispatch, as main installs it. */
static const struct worker_hooks fuzz_hooks = {.dispatch = handler_dispatch};
static struct worker workers[2];
static struct config *configs[2];

static struct config *load(const char *yaml)
{
    struct config *c = NULL;
    if (config_load_string("fuzz.yaml", yaml, strlen(yaml), &c, stderr) != 0 || !c)
        abort();
    return c;
}

static void setup(void)
{
    const char *yaml[2] = {yaml_normal, yaml_tight};
    atomic_store(&srv.log.err_fd, -1);
    atomic_store(&srv.log.access_fd, -1);
    atomic_store(&srv.log.level, LOG_ERROR + 1); /* quiet: every client error logs a line */
    pthread_mutex_init(&srv.config_lock, NULL);
    srv.hooks = &fuzz_hooks;
    for (int i = 0; i < 2; i++) {
        configs[i] = load(yaml[i]);
        config_ref(configs[i]);
        atomic_store(&srv.config, configs[i]); /* what worker_init takes a reference to */
        INVARIANT(worker_init(&workers[i], &srv, i + 1) == 0);
    }
}

/* The wire: preface, SETTINGS, then frames. */
struct wire {
    uint8_t *p;
    size_t len;
};

static void put(struct wire *o, const void *p, size_t n)
{
    if (!n || o->len + n > MAX_WIRE)
        return;
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

static void frame(struct wire *o, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *p,
                  size_t n)
{
    const uint8_t hd[9] = {
        (uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
        (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    put(o, hd, sizeof(hd));
    put(o, p, n);
}

/* A header block as HEADERS (+ CONTINUATION when cut) frames. */
static void headers(struct wire *o, int32_t sid, const uint8_t *blk, size_t n, bool end, bool cut)
{
    /* cut: four pieces at most (nghttp2 allows us 8 CONTINUATIONs, then calls it a flood) */
    size_t chunk = cut ? n / 4 + 1 : 16384;
    size_t first = n < chunk ? n : chunk;
    uint8_t fl = (end ? NGHTTP2_FLAG_END_STREAM : 0) | (first == n ? NGHTTP2_FLAG_END_HEADERS : 0);
    frame(o, NGHTTP2_HEADERS, fl, sid, blk, first);
    for (size_t off = first; off < n;) {
        size_t k = n - off < chunk ? n - off : chunk;
        frame(o, NGHTTP2_CONTINUATION, off + k == n ? NGHTTP2_FLAG_END_HEADERS : 0, sid, blk + off,
              k);
        off += k;
    }
}

/* Header lines into nv; returns how many, and where the trailer lines start in *rest. */
static size_t parse_lines(const uint8_t *p, size_t n, nghttp2_nv *nv, size_t cap,
                          const uint8_t **rest, size_t *rest_len)
{
    size_t k = 0;
    *rest = NULL;
    *rest_len = 0;
    while (n && k < cap) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        if (len == 2 && p[0] == '-' && p[1] == '-') {
            *rest = nl ? nl + 1 : p + n;
            *rest_len = nl ? n - len - 1 : 0;
            return k;
        }
        const uint8_t *colon = len > 1 ? memchr(p + 1, ':', len - 1) : NULL;
        if (colon) {
            size_t nlen = (size_t)(colon - p);
            const uint8_t *v = colon + 1;
            size_t vlen = len - nlen - 1;
            if (vlen && *v == ' ')
                v++, vlen--;
            nv[k++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
        }
        p += nl ? len + 1 : len;
        n -= nl ? len + 1 : len;
    }
    return k;
}

/* Deflate nv into out; returns the length (0 on a deflater error, which sends an empty block). */
static size_t deflate(nghttp2_hd_deflater *d, const nghttp2_nv *nv, size_t n, uint8_t *out,
                      size_t cap)
{
    if (nghttp2_hd_deflate_bound(d, nv, n) > cap)
        return 0;
    ssize_t k = nghttp2_hd_deflate_hd(d, out, cap, nv, n);
    return k > 0 ? (size_t)k : 0;
}

static size_t head_fields(uint8_t flags, const uint8_t *p, size_t n, nghttp2_nv *nv,
                          const uint8_t **rest, size_t *rest_len)
{
    static const char *const pseudo[][2] = {
        {":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a.example"}};
    size_t k = 0;
    if (flags & F_HEAD)
        for (; k < 4; k++)
            nv[k] = (nghttp2_nv){(uint8_t *)pseudo[k][0], (uint8_t *)pseudo[k][1],
                                 strlen(pseudo[k][0]), strlen(pseudo[k][1]), NGHTTP2_NV_FLAG_NONE};
    return k + parse_lines(p, n, nv + k, MAX_FIELDS - k, rest, rest_len);
}

/* One request on stream `sid`: head block, optional DATA, optional trailer block. */
static void request(struct wire *o, nghttp2_hd_deflater *d, uint8_t flags, int32_t sid,
                    const uint8_t *p, size_t n, uint8_t *blk, size_t cap)
{
    bool end = flags & F_END;
    const uint8_t *rest = NULL;
    size_t rest_len = 0, len;
    if (flags & F_RAW) {
        len = n < cap ? n : cap;
        memcpy(blk, p, len);
    } else {
        nghttp2_nv nv[MAX_FIELDS];
        size_t k = head_fields(flags, p, n, nv, &rest, &rest_len);
        len = deflate(d, nv, k, blk, cap);
    }
    headers(o, sid, blk, len, end, flags & F_CONT);
    if (end)
        return;
    if (flags & F_DATA)
        frame(o, NGHTTP2_DATA, 0, sid, (const uint8_t *)"body", 4);
    if ((flags & F_TRAILERS) && !(flags & F_RAW)) {
        nghttp2_nv nv[MAX_FIELDS];
        const uint8_t *none;
        size_t none_len;
        size_t k = parse_lines(rest, rest_len, nv, MAX_FIELDS, &none, &none_len);
        len = deflate(d, nv, k, blk, cap);
        headers(o, sid, blk, len, true, flags & F_CONT);
        return;
    }
    frame(o, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, sid, NULL, 0);
}

static size_t drain(int fd, uint8_t *first9)
{
    uint8_t buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (total < 9)
            memcpy(first9 + total, buf, (size_t)n < 9 - total ? (size_t)n : 9 - total);
        total += (size_t)n;
    }
    return total;
}

/* The connection layer's codec start (net/conn.h): the wire goes to HTTP/2 as the first input,
 * as after an h2c preface on a plain listener. */
static const uint8_t *start_wire;
static size_t start_len;

static void start_h2(struct conn *c, enum conn_proto proto, const char *initial, size_t initial_len,
                     bool ready)
{
    (void)proto, (void)initial, (void)initial_len, (void)ready;
    h2_conn_start(c, (const char *)start_wire, start_len);
}

static void run_connection(const uint8_t *wire, size_t len, int which)
{
    struct worker *w = &workers[which];
    int sv[2];
    INVARIANT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(0x7f000001);
    start_wire = wire;
    start_len = len;
    conn_accept(w, sv[0], (const struct sockaddr *)&peer, sizeof(peer), 0, 443, false, start_h2);
    uint8_t first9[9] = {0};
    size_t out = 0;
    /* A few turns without I/O waits: the deferred runs frame and write the responses. */
    for (int i = 0; i < 4; i++) {
        ev_run_defers(&w->loop);
        out += drain(sv[1], first9);
    }
    /* Close whatever is still open, as the end of a grace period does. */
    struct dlist *n = w->conns.next;
    while (n != &w->conns) {
        struct dlist *next = n->next;
        struct conn_base *b = container_of(n, struct conn_base, link);
        b->ops->force_close(b);
        n = next;
    }
    ev_run_defers(&w->loop);
    out += drain(sv[1], first9);
    close(sv[1]);
    INVARIANT(w->nconns == 0 && w->nclosing == 0 && dlist_empty(&w->conns));
    INVARIANT(w->loop.nheap == 0 && w->loop.defer_head == NULL);
    /* Whatever the client sent, our first frame is our SETTINGS. */
    INVARIANT(out == 0 || (out >= 9 && first9[3] == NGHTTP2_SETTINGS));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size == 0 || size > 65536)
        return 0;
    uint8_t flags = data[0];
    struct wire o = {malloc(MAX_WIRE), 0};
    uint8_t *blk = malloc(MAX_WIRE / 2);
    nghttp2_hd_deflater *d;
    INVARIANT(o.p && blk && nghttp2_hd_deflate_new(&d, 4096) == 0);
    put(&o, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    frame(&o, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    request(&o, d, flags, 1, data + 1, size - 1, blk, MAX_WIRE / 2);
    if (flags & F_TWO)
        request(&o, d, flags, 3, data + 1, size - 1, blk, MAX_WIRE / 2);
    nghttp2_hd_deflate_del(d);
    run_connection(o.p, o.len, flags & F_TIGHT ? 1 : 0);
    free(blk);
    free(o.p);
    return 0;
}
