/* HTTP/2 server connection (RFC 9113) on nghttp2: the session, the nghttp2 callbacks about the
 * connection (floods and reset budgets, closed-stream memory, PRIORITY scanning), reading and
 * writing, GOAWAY, drain and linger, and the connection's timers. Each request stream
 * (h2_stream.c) becomes an http_stream that goes through the same router and handlers as
 * HTTP/1.1; nghttp2 types stay in src/http/h2_*.
 *
 * Re-entrancy: nghttp2 must never be asked to receive or send from inside one of its own
 * callbacks. Handlers run inside the receive (dispatch happens when a request's headers are
 * complete) and inside our wake pass; the stream operations they call only submit frames,
 * resume data and schedule `run_defer`, which frames and writes at the end of the loop turn.
 *
 * Flow control gives back-pressure both ways: request body bytes are acknowledged to the client
 * (nghttp2_session_consume) only when the handler has consumed them, and a response stream
 * holds at most H2_OUT_HIGH copied bytes (or one borrowed slice) before SEND_PENDING.
 *
 * Lifetime: a stream lives from its HEADERS until nghttp2 closes it and the handler has let go
 * (send_end, abort, or on_close from us). It is then marked dead and freed by the next sweep,
 * never inside a callback that might still look at it. */
#include "http/h2_server.h"
#include "http/h2_internal.h"

#include "core/bug.h"
#include "core/sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const struct conn_ops h2_conn_ops;
static void conn_close(struct h2_conn *c);
static void start_linger(struct h2_conn *c);

/* The only writer of c->state: the life goes one way, OPEN -> LINGERING -> CLOSED, and may skip
 * LINGERING. Anything else is a bug in the caller's guard (each tests the state first). */
static void conn_set_state(struct h2_conn *c, enum h2_conn_state to)
{
    GH_BUG_ON(to == H2C_OPEN || c->state >= to);
    c->state = to;
}

static void conn_on_run(struct ev_defer *d)
{
    h2_conn_run(container_of(d, struct h2_conn, run_defer));
}

/* ---- nghttp2 callbacks about the connection ----------------------------------------------- */

/* A response that ended while the client is still sending: we will not read the rest
 * (RFC 9113 section 8.1), so say so and stop its flow. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    /* A connection error (nghttp2 sends the GOAWAY and then nothing more): the streams still
     * open can never complete, so they must not keep the connection open (see conn_done). */
    struct h2_conn *c = user;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR) {
        c->failed = true;
        return 0;
    }
    if (f->hd.type == NGHTTP2_DATA)
        c->last_data_ms = c->w->loop.now; /* progress for send_timeout (conn_stalled) */
    if (f->hd.type == NGHTTP2_DATA && c->wu_credit < H2_WU_CREDIT_MAX)
        c->wu_credit += H2_WU_PER_DATA; /* the client may answer it with WINDOW_UPDATEs */
    if ((f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2_stream *st = h2_stream_of(ng, f->hd.stream_id);
    /* A tunnel is half-closed, not finished: the client's direction goes on. */
    if (st && !st->body_done && !st->tunnel)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static void bucket_init(struct h2_bucket *b, uint64_t now, uint32_t burst)
{
    b->tokens = burst;
    b->last_ms = now;
}

/* Takes a token; false when none is left. Refills by whole tokens, keeping the remainder. */
static bool bucket_take(struct h2_bucket *b, uint64_t now, uint32_t burst, uint32_t rate)
{
    uint64_t add = now > b->last_ms ? (now - b->last_ms) * rate / 1000 : 0;
    if (add) {
        b->tokens = b->tokens + add >= burst ? burst : b->tokens + (uint32_t)add;
        b->last_ms = b->tokens == burst ? now : b->last_ms + add * 1000 / rate;
    }
    if (!b->tokens)
        return false;
    b->tokens--;
    return true;
}

/* A stream reset the client caused: its RST_STREAM, or an error of its making that we answer
 * with RST_STREAM (MadeYouReset, CVE-2025-8671: a WINDOW_UPDATE overflowing a stream window, a
 * malformed request, a frame on a stream it closed). Both come out of one budget, which a
 * client cannot use to make us start and drop upstream work at will; past it the connection
 * ends with GOAWAY ENHANCE_YOUR_CALM. -1 when this one is too many. */
int h2_peer_reset_take(struct h2_conn *c, const char *what)
{
    if (bucket_take(&c->resets, c->w->loop.now, H2_RESET_BURST, H2_RESET_RATE))
        return 0;
    if (!c->goaway_code)
        log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: %s flood (stream resets), closing",
                c->conn->peer, what);
    c->goaway_code = NGHTTP2_ENHANCE_YOUR_CALM;
    return -1;
}

/* RFC 9113 section 5.1: a DATA or HEADERS frame on a stream the client closed. After its
 * RST_STREAM: a stream error STREAM_CLOSED (counted as a reset it caused); after its
 * END_STREAM: a connection error STREAM_CLOSED. A stream we reset is not the client's error
 * (its frames may have crossed our RST_STREAM) and stays ignored. -1: end the connection. */
static int closed_stream_frame(struct h2_conn *c, uint8_t type, int32_t id)
{
    if ((type != NGHTTP2_DATA && type != NGHTTP2_HEADERS) || !(id & 1) || id > c->last_opened ||
        nghttp2_session_find_stream(c->ng, id))
        return 0;
    for (unsigned i = 0; i < H2_CLOSED_MEM; i++) {
        if (c->closed_ids[i].id != id)
            continue;
        if (c->closed_ids[i].reset) {
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_STREAM_CLOSED);
            return h2_peer_reset_take(c, "frames on reset streams");
        }
        log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: %s on stream %d after its END_STREAM",
                c->conn->peer, type == NGHTTP2_DATA ? "DATA" : "HEADERS", (int)id);
        c->goaway_code = NGHTTP2_STREAM_CLOSED;
        return -1;
    }
    /* Gone for longer, or reset by us: nghttp2 drops a DATA frame there without a callback (no
     * flood_check), so it is counted here with the frames that carry nothing. */
    if (type == NGHTTP2_DATA &&
        !bucket_take(&c->noise, c->w->loop.now, H2_NOISE_BURST, H2_NOISE_RATE)) {
        log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: DATA on closed streams flood, closing",
                c->conn->peer);
        c->goaway_code = NGHTTP2_ENHANCE_YOUR_CALM;
        return -1;
    }
    return 0;
}

/* nghttp2 answered a frame of the client's with a stream error (RST_STREAM): that stream is
 * never dispatched, and the reset counts against the client. */
static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *user)
{
    struct h2_conn *c = user;
    if (!f->hd.stream_id)
        return 0; /* a connection error: nghttp2 ends the connection */
    struct h2_stream *st = h2_stream_of(ng, f->hd.stream_id);
    if (st && st->start == H2S_START_PENDING) {
        h2_stream_set_start(st, H2S_NOT_STARTED);
        st->rejected = true;
    }
    return h2_peer_reset_take(c, nghttp2_strerror(err)) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* Follows the frame boundaries of the input (what nghttp2 will read) and notes a PRIORITY frame
 * whose stream depends on itself (RFC 9113 section 5.3.1, kept from RFC 7540). Stops right after
 * the header of a DATA frame on a client stream (sc->data_sid): nghttp2 ignores DATA on a
 * stream it no longer knows without a callback, so the caller looks at it once nghttp2 has read
 * everything up to there. Returns the bytes scanned. */
static size_t scan_input(struct h2_scan *sc, const uint8_t *p, size_t n)
{
    size_t total = n;
    while (n) {
        if (sc->skip) {
            size_t k = sc->skip < n ? sc->skip : n;
            for (size_t i = 0; sc->prio && i < k && sc->ndep < 4; i++)
                sc->dep[sc->ndep++] = p[i];
            sc->skip -= (uint32_t)k;
            p += k;
            n -= k;
            if (sc->prio && sc->ndep == 4) {
                sc->prio = false;
                int32_t dep =
                    (int32_t)(((uint32_t)(sc->dep[0] & 0x7f) << 24) | ((uint32_t)sc->dep[1] << 16) |
                              ((uint32_t)sc->dep[2] << 8) | sc->dep[3]);
                if (dep == sc->sid && !sc->self_dep)
                    sc->self_dep = sc->sid;
            }
            continue;
        }
        sc->hdr[sc->have++] = *p++;
        n--;
        if (sc->have < 9)
            continue;
        sc->have = 0;
        const uint8_t *h = sc->hdr;
        uint32_t len = ((uint32_t)h[0] << 16) | ((uint32_t)h[1] << 8) | h[2];
        sc->sid = (int32_t)(((uint32_t)(h[5] & 0x7f) << 24) | ((uint32_t)h[6] << 16) |
                            ((uint32_t)h[7] << 8) | h[8]);
        sc->prio = h[3] == NGHTTP2_PRIORITY && len == 5 && sc->sid;
        sc->ndep = 0;
        sc->skip = len;
        if (h[3] == NGHTTP2_DATA && (sc->sid & 1)) {
            sc->data_sid = sc->sid;
            break;
        }
    }
    return total - n;
}

/* A PRIORITY frame made the stream depend on itself: a stream error PROTOCOL_ERROR on a stream
 * that is open, else (idle or closed: nghttp2 sends no RST_STREAM there) a connection error.
 * -1: end the connection with c->goaway_code. */
static int priority_self_dep(struct h2_conn *c)
{
    int32_t id = c->scan.self_dep;
    c->scan.self_dep = 0;
    log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: PRIORITY: stream %d depends on itself",
            c->conn->peer, (int)id);
    if (!nghttp2_session_find_stream(c->ng, id)) {
        c->goaway_code = NGHTTP2_PROTOCOL_ERROR;
        return -1;
    }
    struct h2_stream *st = h2_stream_of(c->ng, id);
    if (st && st->start == H2S_START_PENDING) {
        h2_stream_set_start(st, H2S_NOT_STARTED);
        st->rejected = true;
    }
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
    return h2_peer_reset_take(c, "PRIORITY depending on itself");
}

/* Floods of frames that cost us work but no stream (RST_STREAM after HEADERS: rapid reset;
 * PING and SETTINGS: an ACK each) end the connection with ENHANCE_YOUR_CALM before nghttp2
 * processes the frame. -1 when this frame is one too many. */
static int flood_check(struct h2_conn *c, const nghttp2_frame_hd *hd)
{
    uint64_t now = c->w->loop.now;
    const char *what;
    if (hd->type == NGHTTP2_RST_STREAM) {
        return h2_peer_reset_take(c, "RST_STREAM (rapid reset)");
    } else if ((hd->type == NGHTTP2_DATA && hd->length == 0 &&
                !(hd->flags & NGHTTP2_FLAG_END_STREAM)) ||
               hd->type == NGHTTP2_PRIORITY || hd->type == NGHTTP2_WINDOW_UPDATE) {
        if (hd->type == NGHTTP2_WINDOW_UPDATE && c->wu_credit) {
            c->wu_credit--;
            return 0;
        }
        if (bucket_take(&c->noise, now, H2_NOISE_BURST, H2_NOISE_RATE))
            return 0;
        what = hd->type == NGHTTP2_DATA       ? "empty DATA"
               : hd->type == NGHTTP2_PRIORITY ? "PRIORITY"
                                              : "WINDOW_UPDATE";
    } else if ((hd->type == NGHTTP2_PING || hd->type == NGHTTP2_SETTINGS) &&
               !(hd->flags & NGHTTP2_FLAG_ACK)) {
        if (bucket_take(&c->ctrl, now, H2_CTRL_BURST, H2_CTRL_RATE))
            return 0;
        what = "PING/SETTINGS";
    } else {
        return 0;
    }
    log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: %s flood, closing", c->conn->peer, what);
    c->goaway_code = NGHTTP2_ENHANCE_YOUR_CALM;
    return -1;
}

/* RFC 9113 section 5.1.1: a client opens streams in increasing order, so HEADERS on an id it
 * skipped, lower than one already opened, is a connection error PROTOCOL_ERROR. nghttp2 ignores
 * such HEADERS (it keeps no record of closed streams, and must ignore frames on a stream it
 * reset); the ids skipped are known never to have been opened, so the last few ranges of them are
 * remembered here. Called for every frame header, before nghttp2 processes the frame. */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    struct h2_conn *c = user;
    (void)ng;
    int32_t id = hd->stream_id;
    if (flood_check(c, hd) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;       /* conn_feed: GOAWAY ENHANCE_YOUR_CALM */
    if (hd->type == NGHTTP2_PRIORITY && id == 0) { /* RFC 9113 section 6.3 */
        log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: PRIORITY on stream 0", c->conn->peer);
        c->goaway_code = NGHTTP2_PROTOCOL_ERROR;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (closed_stream_frame(c, hd->type, id) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* conn_feed: GOAWAY with c->goaway_code */
    if (hd->type == NGHTTP2_HEADERS)
        c->block_bytes = 0; /* a new field block; CONTINUATION frames add to it */
    if (hd->type != NGHTTP2_HEADERS || !(id & 1))
        return 0;
    if (id > c->last_opened) {
        if (id - c->last_opened > 2) {
            if (c->ngaps == H2_GAPS) {
                memmove(&c->gaps[0], &c->gaps[1], sizeof(c->gaps[0]) * (H2_GAPS - 1));
                c->ngaps--;
            }
            c->gaps[c->ngaps].lo = c->last_opened + 1;
            c->gaps[c->ngaps].hi = id - 1;
            c->ngaps++;
        }
        c->last_opened = id;
        return 0;
    }
    for (unsigned i = 0; i < c->ngaps; i++)
        if (id >= c->gaps[i].lo && id <= c->gaps[i].hi) {
            log_msg(conn_log(c), LOG_INFO,
                    "client %s: HTTP/2: HEADERS on stream %d, lower than stream %d already "
                    "opened",
                    c->conn->peer, (int)id, (int)c->last_opened);
            return NGHTTP2_ERR_CALLBACK_FAILURE; /* conn_feed: GOAWAY PROTOCOL_ERROR */
        }
    return 0;
}

static int on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *user)
{
    struct h2_conn *c = user;
    log_msg(conn_log(c), LOG_DEBUG, "client %s: HTTP/2: %.*s", c->conn->peer, (int)len, msg);
    return 0;
}

static int session_create(struct h2_conn *c)
{
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb))
        return -1;
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cb);
        return -1;
    }
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cb, h2_send_file_data);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    nghttp2_option_set_no_auto_window_update(opt, 1); /* body_consumed acknowledges */
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
    nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
    nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
    nghttp2_option_set_max_continuations(opt, 8);
    int rv = nghttp2_session_server_new2(&c->ng, cb, c, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rv)
        return -1;
    const struct cfg_http2 *lim = &conn_limits(c)->http2;
    const nghttp2_settings_entry iv[] = {
        /* settings_announce tells the client max_concurrent_streams: see there */
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, lim->max_concurrent_streams * 2},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, lim->stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, lim->max_header_list_size}, /* block_account */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}, /* RFC 8441: WebSocket over HTTP/2 */
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)lim->connection_window))
        return -1;
    bucket_init(&c->resets, c->w->loop.now, H2_RESET_BURST);
    bucket_init(&c->ctrl, c->w->loop.now, H2_CTRL_BURST);
    bucket_init(&c->noise, c->w->loop.now, H2_NOISE_BURST);
    c->scan.skip = NGHTTP2_CLIENT_MAGIC_LEN; /* the preface is no frame */
    return 0;
}

/* ---- connection I/O ----------------------------------------------------------------------- */

static bool out_blocked(const struct h2_conn *c)
{
    return !c->wr_ready && c->wbuf && buf_len(c->wbuf);
}

/* nghttp2 answers a stream over the concurrency limit it applies with REFUSED_STREAM only
 * while that limit is not yet acknowledged; once the client acknowledged it, one stream more
 * ends the connection (PROTOCOL_ERROR), where RFC 9113 section 5.1.2 asks for a stream error.
 * So nghttp2 applies twice max_concurrent_streams (a backstop against a client that floods
 * past even that), the client is told max_concurrent_streams, and h2_on_begin_headers refuses
 * the streams in between. nghttp2's API has no way to announce one value and apply another:
 * our first SETTINGS frame (the first bytes of the session) is amended on its way out. */
static void settings_announce(struct h2_conn *c, uint8_t *p, size_t n)
{
    c->settings_out = true;
    size_t len = n >= 9 ? ((size_t)p[0] << 16) | ((size_t)p[1] << 8) | p[2] : 0;
    if (n < 9 || p[3] != NGHTTP2_SETTINGS || 9 + len > n) {
        log_msg(conn_log(c), LOG_ERROR, "client %s: HTTP/2: first frame is no SETTINGS frame",
                c->conn->peer);
        return; /* the client is told the higher limit: streams past ours are refused */
    }
    uint32_t v = conn_limits(c)->http2.max_concurrent_streams;
    for (size_t o = 9; o + 6 <= 9 + len; o += 6)
        if ((((unsigned)p[o] << 8) | p[o + 1]) == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
            p[o + 2] = (uint8_t)(v >> 24);
            p[o + 3] = (uint8_t)(v >> 16);
            p[o + 4] = (uint8_t)(v >> 8);
            p[o + 5] = (uint8_t)v;
        }
}

/* Copy what nghttp2 has to send into wbuf, up to its size. False if the connection closed. */
static bool fill_out(struct h2_conn *c)
{
    for (;;) {
        /* Before mem_send: a DATA frame of file bytes is written into wbuf from inside it
         * (h2_send_file_data). */
        if (!c->wbuf && !(c->wbuf = buf_get(&c->w->bufs))) {
            conn_close(c);
            return false;
        }
        if (!c->pend_len) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(c->ng, &p);
            if (n < 0) {
                log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: %s", c->conn->peer,
                        nghttp2_strerror((int)n));
                conn_close(c);
                return false;
            }
            if (n == 0)
                return true;
            c->pend = p; /* valid until the next mem_send */
            c->pend_len = (size_t)n;
        }
        if (c->wbuf->start == c->wbuf->end)
            c->wbuf->start = c->wbuf->end = 0;
        size_t room = buf_room(c->wbuf);
        if (!room)
            return true;
        size_t k = room < c->pend_len ? room : c->pend_len;
        memcpy(c->wbuf->data + c->wbuf->end, c->pend, k);
        if (!c->settings_out)
            settings_announce(c, (uint8_t *)c->wbuf->data + c->wbuf->end, k);
        c->wbuf->end += (uint32_t)k;
        c->pend += k;
        c->pend_len -= k;
    }
}

/* Write wbuf: 1 all written, 0 the socket is full, -1 failed. */
static int flush_out(struct h2_conn *c)
{
    struct buf *b = c->wbuf;
    while (b->start < b->end) {
        ssize_t n = conn_send(c->conn, b->data + b->start, b->end - b->start);
        if (n > 0) {
            b->start += (uint32_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    b->start = b->end = 0;
    return 1;
}

/* Bytes one connection writes per loop turn at most (as OUTQ_FILE_BUDGET for HTTP/1.1): a
 * client that reads as fast as we write and opens wide flow-control windows (curl: tens of MiB)
 * would otherwise keep the worker in one write loop for as long as it has file bytes to take. */
#define H2_WRITE_BUDGET ((size_t)1 << 20)

static void conn_write(struct h2_conn *c)
{
    for (;;) {
        if (!fill_out(c))
            return;
        if (!c->wbuf || !buf_len(c->wbuf)) {
            buf_put(&c->w->bufs, c->wbuf); /* an idle connection holds no buffer */
            c->wbuf = NULL;
            ev_timer_stop(&c->w->loop, &c->send_timer);
            return;
        }
        if (c->wr_ready && !c->write_budget) {
            /* The rest on the next turn, after the other connections' I/O; no send_timeout,
             * the client is reading. */
            if (!ev_timer_armed(&c->yield_timer))
                ev_timer_start(&c->w->loop, &c->yield_timer, 0);
            return;
        }
        size_t len = buf_len(c->wbuf);
        int r = c->wr_ready ? flush_out(c) : 0;
        if (r < 0) {
            log_msg(conn_log(c), LOG_DEBUG, "client %s: write failed: %s", c->conn->peer,
                    strerror(errno));
            conn_close(c);
            return;
        }
        if (r == 0) {
            c->wr_ready = false;
            /* The client must take what we queued within send_timeout; each buffer it empties
             * counts as progress. */
            if (!ev_timer_armed(&c->send_timer))
                ev_timer_start(&c->w->loop, &c->send_timer, conn_limits(c)->send_timeout);
            return;
        }
        c->write_budget -= len < c->write_budget ? len : c->write_budget;
        ev_timer_stop(&c->w->loop, &c->send_timer);
    }
}

/* Feed received bytes to nghttp2. -1 when the connection was closed. */
static int conn_feed(struct h2_conn *c, const char *p, size_t n)
{
    ssize_t rv = 0;
    while (n && rv >= 0) {
        size_t k = scan_input(&c->scan, (const uint8_t *)p, n);
        rv = nghttp2_session_mem_recv(c->ng, (const uint8_t *)p, k);
        p += k;
        n -= k;
        int32_t data_sid = c->scan.data_sid;
        c->scan.data_sid = 0;
        if (rv >= 0 && data_sid && closed_stream_frame(c, NGHTTP2_DATA, data_sid) < 0)
            rv = NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (rv >= 0 && c->scan.self_dep && priority_self_dep(c) < 0)
        rv = NGHTTP2_ERR_CALLBACK_FAILURE;
    if (rv >= 0) {
        h2_start_streams(c);
        return c->state == H2C_CLOSED ? -1 : 0;
    }
    /* Floods of unsent ACKs or of CONTINUATION frames: ENHANCE_YOUR_CALM, like our own. */
    bool flood = rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
    if (flood)
        c->goaway_code = NGHTTP2_ENHANCE_YOUR_CALM;
    if (rv != NGHTTP2_ERR_CALLBACK_FAILURE || !c->goaway_code) /* else the callback said why */
        log_msg(conn_log(c), LOG_INFO, "client %s: HTTP/2: %s%s", c->conn->peer,
                nghttp2_strerror((int)rv), flood ? " (closing a flooding client)" : "");
    if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        /* What the batch started is dropped with the connection: nothing of it is dispatched. */
        nghttp2_session_terminate_session(c->ng,
                                          c->goaway_code ? c->goaway_code : NGHTTP2_PROTOCOL_ERROR);
        c->failed = true;
        c->write_budget = H2_WRITE_BUDGET; /* the last frames: not held back for fairness */
        conn_write(c);                     /* best effort: the GOAWAY if the socket takes it now */
        /* Closing with the client's bytes unread would reset the connection and destroy the
         * GOAWAY on its way; linger when it is out, unless the client does not read at all. */
        if (c->state != H2C_CLOSED && !c->pend_len && !(c->wbuf && buf_len(c->wbuf))) {
            start_linger(c);
            return -1;
        }
    }
    conn_close(c);
    return -1;
}

static void conn_read(struct h2_conn *c)
{
    char in[H2_READ_CHUNK];
    /* A client that does not read what we send does not get to send more. */
    while (c->rd_ready && c->state != H2C_CLOSED && !out_blocked(c)) {
        ssize_t n = conn_recv(c->conn, in, sizeof(in));
        if (n > 0) {
            /* A short read drained the socket, unless the FIN came with the data; under TLS a
             * short read says nothing (records are buffered): read until WANT_READ. */
            if ((size_t)n < sizeof(in) && !c->rdhup && c->conn->io->short_read_drains)
                c->rd_ready = false;
            if (conn_feed(c, in, (size_t)n) < 0)
                return;
            continue;
        }
        c->rd_ready = false;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        log_msg(conn_log(c), LOG_DEBUG, "client %s: HTTP/2 connection closed by the client",
                c->conn->peer);
        conn_close(c);
        return;
    }
}

/* After our last GOAWAY: read and drop input for a while so that closing does not reset the
 * connection while the client is still sending (which would destroy the GOAWAY). */
static void linger_read(struct h2_conn *c)
{
    if (sock_discard(c->conn->fd))
        conn_close(c);
}

static void start_linger(struct h2_conn *c)
{
    conn_set_state(c, H2C_LINGERING);
    c->conn->io->shutdown(c->conn);
    ev_timer_stop(&c->w->loop, &c->send_timer);
    ev_timer_stop(&c->w->loop, &c->goaway_timer);
    ev_timer_start(&c->w->loop, &c->idle_timer, H2_LINGER_MS);
    linger_read(c);
}

/* Done when nghttp2 wants nothing more (GOAWAY exchanged, no stream open) and all is written.
 * After a connection error our streams may still be open (a handler mid-response): they are
 * over too, and closing the connection finishes them. */
static bool conn_done(const struct h2_conn *c)
{
    return !nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) &&
           !c->pend_len && !(c->wbuf && buf_len(c->wbuf)) && (c->nstreams == 0 || c->failed);
}

static void idle_timer_update(struct h2_conn *c)
{
    if (c->nstreams) {
        ev_timer_stop(&c->w->loop, &c->idle_timer);
        return;
    }
    /* A connection that got its first request since the timer was set (for the first
     * request's arrival) now waits under keepalive_timeout instead. */
    bool keepalive = c->requests != 0;
    if (ev_timer_armed(&c->idle_timer) && c->idle_keepalive == keepalive)
        return;
    c->idle_keepalive = keepalive;
    ev_timer_start(&c->w->loop, &c->idle_timer,
                   keepalive ? conn_limits(c)->keepalive_timeout
                             : conn_limits(c)->client_header_timeout);
}

void h2_conn_run(struct h2_conn *c)
{
    if (c->state == H2C_CLOSED || c->in_run)
        return;
    if (c->state == H2C_LINGERING) {
        linger_read(c);
        return;
    }
    c->in_run = true;
    /* A connection that yielded writes on from its timer, later in this turn, with a new
     * budget; until then (its client's WINDOW_UPDATEs read here) it writes nothing. */
    if (!ev_timer_armed(&c->yield_timer))
        c->write_budget = H2_WRITE_BUDGET;
    conn_read(c);
    if (c->state == H2C_LINGERING) {
        c->in_run = false;
        return;
    }
    /* Handlers woken here may produce more; a few rounds, then the next turn. */
    for (int round = 0; round < 4 && c->state != H2C_CLOSED; round++) {
        if (c->wake)
            h2_wake_streams(c);
        conn_write(c);
        if (!c->wake)
            break;
    }
    c->in_run = false;
    if (c->state == H2C_CLOSED)
        return;
    h2_sweep_streams(c);
    if (conn_done(c)) {
        start_linger(c);
        return;
    }
    if (c->wake)
        conn_schedule(c);
    idle_timer_update(c);
}

static void conn_on_io(struct ev_io *io, uint32_t events)
{
    struct h2_conn *c = container_of(io, struct h2_conn, io);
    if (c->state == H2C_CLOSED)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rd_ready = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        c->wr_ready = true;
    h2_conn_run(c);
}

/* ---- timers ------------------------------------------------------------------------------- */

static void conn_on_idle(struct ev_timer *t)
{
    struct h2_conn *c = container_of(t, struct h2_conn, idle_timer);
    if (c->state == H2C_CLOSED)
        return;
    if (c->state == H2C_LINGERING) {
        conn_close(c);
        return;
    }
    if (c->nstreams)
        return;
    /* GOAWAY naming the last stream we processed, then close once it is out. */
    nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
    h2_conn_run(c);
}

static void conn_on_yield(struct ev_timer *t)
{
    h2_conn_run(container_of(t, struct h2_conn, yield_timer)); /* not armed: a new budget */
}

static void conn_on_send_timer(struct ev_timer *t)
{
    struct h2_conn *c = container_of(t, struct h2_conn, send_timer);
    if (c->state == H2C_CLOSED)
        return;
    log_msg(conn_log(c), LOG_INFO, "client %s: not reading the response for send_timeout",
            c->conn->peer);
    conn_close(c);
}

static void conn_on_goaway_timer(struct ev_timer *t)
{
    struct h2_conn *c = container_of(t, struct h2_conn, goaway_timer);
    if (c->state == H2C_CLOSED)
        return;
    nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    h2_conn_run(c);
}

/* ---- closing ------------------------------------------------------------------------------ */

/* Closing is deferred to the end of the loop turn so that no caller is left holding a freed
 * connection; the fd goes at once so nothing more is read or written. */
static void conn_close(struct h2_conn *c)
{
    if (c->state == H2C_CLOSED)
        return;
    if (c->state != H2C_LINGERING)
        c->conn->io->close_notify(c->conn); /* best effort */
    conn_set_state(c, H2C_CLOSED);
    c->w->nclosing++;
    ev_io_del(&c->w->loop, &c->io);
    ev_timer_stop(&c->w->loop, &c->idle_timer);
    ev_timer_stop(&c->w->loop, &c->send_timer);
    ev_timer_stop(&c->w->loop, &c->goaway_timer);
    ev_timer_stop(&c->w->loop, &c->yield_timer);
    conn_close_fd(c->conn);
    ev_defer(&c->w->loop, &c->close_defer);
}

static void conn_on_close(struct ev_defer *d)
{
    struct h2_conn *c = container_of(d, struct h2_conn, close_defer);
    GH_BUG_ON(c->state != H2C_CLOSED); /* only conn_close defers this, after setting it */
    if (c->run_defer.queued) {
        ev_defer(&c->w->loop, &c->close_defer); /* free after it ran */
        return;
    }
    for (struct dlist *n = c->streams.next; n != &c->streams; n = n->next) {
        struct h2_stream *st = container_of(n, struct h2_stream, link);
        if (!st->dead) {
            h2_stream_detach(st);
            h2_stream_finish(st);
        }
    }
    while (!dlist_empty(&c->streams))
        h2_stream_free(container_of(c->streams.next, struct h2_stream, link));
    GH_BUG_ON(c->nstreams != 0); /* every stream was finished above, and counted once */
    nghttp2_session_del(c->ng);  /* calls none of our callbacks */
    buf_put(&c->w->bufs, c->wbuf);
    dlist_remove(&c->base.link);
    c->w->nclosing--;
    conn_free(c->conn);
    free(c);
}

/* ---- worker hooks ------------------------------------------------------------------------- */

/* Shutdown: GOAWAY, let the open streams finish, then close. An idle connection gets the final
 * GOAWAY at once; a busy one a shutdown notice first (RFC 9113 section 6.8), so that requests
 * already on their way are not refused. */
static void h2_drain(struct conn_base *b)
{
    struct h2_conn *c = container_of(b, struct h2_conn, base);
    if (c->state == H2C_CLOSED || c->draining)
        return;
    c->draining = true;
    if (c->nstreams == 0) {
        nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
    } else {
        nghttp2_submit_shutdown_notice(c->ng);
        ev_timer_start(&c->w->loop, &c->goaway_timer, H2_NOTICE_MS);
    }
    for (struct dlist *n = c->streams.next; n != &c->streams; n = n->next) {
        struct h2_stream *st = container_of(n, struct h2_stream, link);
        if (!st->dead && st->handler_on && st->s.handler && st->s.handler->on_drain)
            st->s.handler->on_drain(&st->s);
    }
    conn_schedule(c);
}

/* Reload: the connection keeps the snapshot it started with, so move the client to a new one
 * gracefully: a shutdown notice, then after a round trip the final GOAWAY naming the last stream
 * processed; streams in flight complete and the connection closes once they have. Unlike
 * h2_drain, an idle connection gets the notice too, so a request already on its way is served. */
static void h2_on_reload(struct conn_base *b)
{
    struct h2_conn *c = container_of(b, struct h2_conn, base);
    if (c->state != H2C_OPEN || c->draining)
        return;
    c->draining = true;
    nghttp2_submit_shutdown_notice(c->ng);
    ev_timer_start(&c->w->loop, &c->goaway_timer, H2_NOTICE_MS);
    conn_schedule(c);
}

static bool h2_close_if_idle(struct conn_base *b)
{
    struct h2_conn *c = container_of(b, struct h2_conn, base);
    if (c->state == H2C_CLOSED || c->nstreams || c->in_run)
        return false;
    nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
    c->write_budget = H2_WRITE_BUDGET;
    conn_write(c); /* best effort */
    conn_close(c);
    return true;
}

static void h2_force_close(struct conn_base *b)
{
    conn_close(container_of(b, struct h2_conn, base));
}

static const struct conn_ops h2_conn_ops = {
    .drain = h2_drain,
    .close_if_idle = h2_close_if_idle,
    .force_close = h2_force_close,
    .on_reload = h2_on_reload,
};

/* ---- start -------------------------------------------------------------------------------- */

static void start_failed(struct conn *conn, struct h2_conn *c)
{
    if (c) {
        if (c->ng)
            nghttp2_session_del(c->ng);
        free(c);
    }
    conn_close_fd(conn);
    conn_free(conn);
}

void h2_conn_start(struct conn *conn, const char *initial, size_t initial_len)
{
    struct worker *w = conn->w;
    struct h2_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        start_failed(conn, NULL);
        return;
    }
    c->w = w;
    c->conn = conn;
    c->io = (struct ev_io){.fd = conn->fd, .cb = conn_on_io};
    c->idle_timer.cb = conn_on_idle;
    c->send_timer.cb = conn_on_send_timer;
    c->goaway_timer.cb = conn_on_goaway_timer;
    c->yield_timer.cb = conn_on_yield;
    c->write_budget = H2_WRITE_BUDGET;
    c->run_defer.cb = conn_on_run;
    c->close_defer.cb = conn_on_close;
    dlist_init(&c->streams);
    /* Bytes may already wait in the socket or in OpenSSL: no epoll edge would announce them. */
    c->rd_ready = c->wr_ready = true;
    if (session_create(c) < 0 || ev_io_add(&w->loop, &c->io, 0) < 0) {
        start_failed(conn, c);
        return;
    }
    c->base.ops = &h2_conn_ops;
    dlist_push(&w->conns, &c->base.link);
    if (initial_len && conn_feed(c, initial, initial_len) < 0)
        return;
    if (w->draining)
        h2_drain(&c->base);
    conn_schedule(c);
}
