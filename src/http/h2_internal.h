/* Private to the HTTP/2 server (h2_conn.c: the session and the connection; h2_stream.c: one
 * request stream): the shared structs, limits and the calls between the two. nghttp2 types stay
 * behind this header; nothing outside src/http/h2_*.c includes it. */
#ifndef GH_H2_INTERNAL_H
#define GH_H2_INTERNAL_H

#include "config/config.h"
#include "core/arena.h"
#include "core/bug.h"
#include "core/worker.h"
#include "http/http_conn.h"
#include "http/request.h"
#include "net/conn.h"

#include <nghttp2/nghttp2.h>

#include <stdbool.h>
#include <stdint.h>

#define H2_OUT_HIGH 16384 /* copied response bytes per stream before SEND_PENDING */
#define H2_OUT_LOW (H2_OUT_HIGH / 2)
#define H2_SEG_SIZE 16384 /* request body is buffered in segments of this size */
/* A request body up to this size is kept until the response head goes out, so that a retry on
 * another server can send it again (the HTTP/1.1 side keeps as much in its input buffer). */
#define H2_REPLAY_MAX (64 * 1024)
#define H2_RESET_BURST 128 /* client RST_STREAMs tolerated at once (rapid reset) */
#define H2_RESET_RATE 33   /* and refilled per second */
/* PING and SETTINGS frames that ask for an ACK: a client needs a handful per connection (its
 * SETTINGS, a liveness or RTT probe now and then). nghttp2's own limit counts only the ACKs
 * not yet written, which a client that paces its flood keeps low while we keep answering; this
 * bucket counts what arrives, so such a flood also ends in GOAWAY ENHANCE_YOUR_CALM. */
#define H2_CTRL_BURST 1000
#define H2_CTRL_RATE 100
/* Backstop for the ACKs not yet written: the bucket above trips first (it allows no more than
 * this many at once), so this only fires if the two ever disagree. */
#define H2_MAX_OUTBOUND_ACK 1000
/* Entries per SETTINGS frame: RFC 9113 defines 6, extensions 2 more (8441, 9218); a client
 * repeating or greasing a few stays far below. nghttp2 answers more with ENHANCE_YOUR_CALM. */
#define H2_MAX_SETTINGS 32
/* Frames that cost us work and carry nothing: empty DATA without END_STREAM, DATA on a stream
 * that is gone, PRIORITY (we do not use priorities), and WINDOW_UPDATE beyond what our DATA
 * frames explain (a client sends one or two, stream and connection, per DATA frame it gets;
 * each DATA frame we send earns four). */
#define H2_NOISE_BURST 1000
#define H2_NOISE_RATE 100
#define H2_WU_PER_DATA 4
#define H2_WU_CREDIT_MAX 100000
/* Recently closed streams whose client side was closed by the client (END_STREAM or its
 * RST_STREAM): a frame on one of them is the client's error (RFC 9113 section 5.1), which
 * nghttp2, keeping no closed streams, would silently ignore. */
#define H2_CLOSED_MEM 128
#define H2_GAPS 8         /* ranges of stream ids a client skipped, remembered */
#define H2_NOTICE_MS 1000 /* shutdown notice to final GOAWAY: a round trip and more */
#define H2_LINGER_MS 2000 /* after our GOAWAY, input is read and dropped this long */
#define H2_READ_CHUNK 16384
/* Request trailers go upstream as chunked trailers. Fields a recipient would have needed
 * before the body are dropped, and the section is capped: it is a courtesy, not a channel. */
#define TRAILER_MAX 8192
/* A stream's arena (core/arena.h) starts in the stream itself: room for a typical request head,
 * its field tables and the first response buffer (4096), so a request costs one malloc. */
#define H2_ARENA_FIRST 6144
/* Copied response bytes stay below this unless a handler's borrowed slice is copied whole
 * (out_own_ext): up to it obuf grows in the arena, past it on the heap, as large as needed. */
#define H2_OBUF_ARENA_MAX (2 * H2_OUT_HIGH)

struct h2_conn;

/* Our own view of the frame boundaries in the input: nghttp2 skips PRIORITY payloads when RFC
 * 7540 priorities are off, and a PRIORITY frame must still be validated. */
struct h2_scan {
    uint32_t skip; /* the preface, then payload bytes of the current frame still to pass */
    uint8_t hdr[9], have;
    bool prio; /* the current frame is a PRIORITY frame of 5 bytes on a stream */
    uint8_t dep[4], ndep;
    int32_t sid;
    int32_t self_dep; /* a PRIORITY frame on this stream depends on itself, or 0 */
    int32_t data_sid; /* the input was cut after the header of a DATA frame on this stream */
};

/* A token bucket: `burst` events at once, then `rate` per second. */
struct h2_bucket {
    uint32_t tokens;
    uint64_t last_ms;
};

/* Request body bytes received and not yet consumed by the handler. */
struct h2_seg {
    struct h2_seg *next;
    uint32_t start, end;
    char data[H2_SEG_SIZE];
};

/* A header field as offsets into the stream's arena (which may move while it grows). */
struct h2_hdr {
    uint32_t name, name_len, value, value_len;
};

/* How far the request got towards a handler. START_PENDING: the head is complete and the
 * stream is dispatched once the read batch it came in is processed (h2_start_streams).
 * NOT_STARTED covers both a head still arriving and one that never will be dispatched
 * (rejected, or dead before its turn). Transitions (h2_stream_set_start):
 * NOT_STARTED -> START_PENDING, START_PENDING -> DISPATCHED, START_PENDING -> NOT_STARTED. */
enum h2_stream_start { H2S_NOT_STARTED, H2S_START_PENDING, H2S_DISPATCHED };

struct h2_stream {
    struct http_stream s;
    struct h2_conn *c;
    struct dlist link; /* in c->streams */
    int32_t id;
    struct config *config; /* one reference, for s.config */
    int listener;          /* the connection's listener, in `config` */
    /* Request head, collected by on_header. */
    char *arena;
    uint32_t alen, acap;
    struct h2_hdr *hdrs;
    uint32_t nhdrs, hcap;
    struct h2_hdr method, path, authority, protocol;
    bool has_method, has_path, has_authority, has_protocol;
    uint32_t head_bytes;
    bool too_large; /* past max_header_size / max_header_count: answered 431 */
    /* Malformed: reset with PROTOCOL_ERROR. Not part of `start`: a bad trailer rejects a
     * stream that was already dispatched. */
    bool rejected;
    struct http_field *fields;
    /* Request body. */
    struct h2_seg *in_head, *in_tail;
    size_t in_bytes;        /* buffered, not yet consumed */
    uint64_t body_received; /* DATA bytes accepted for the handler */
    bool body_done;         /* END_STREAM received */
    bool head_ended;        /* END_STREAM came with the head: no body (body_done may be set by
                             * a body that arrived before the dispatch) */
    bool body_handed;       /* a slice is out with the handler */
    bool body_any_handed;   /* some of it went to the handler: a rewind needs the kept part */
    /* Consumed segments of a body still within H2_REPLAY_MAX, oldest first, for a rewind;
     * dropped for good (replay_lost) once the body grows past it or a response head is sent
     * (no retry after that). */
    struct h2_seg *kept_head, *kept_tail;
    bool replay_lost;
    uint32_t recredited; /* rewound bytes whose flow-control credit the client already has */
    bool discard_body;   /* nobody will read it: acknowledged and dropped on arrival */
    bool continue_sent;
    /* Request trailers, as [u32 name_len][u32 value_len][name][value] records; kept apart from
     * the head's arena because r->fields already points into that one. */
    char *tbuf;
    uint32_t tlen, tcap;
    struct http_field *trailers;
    /* Response. */
    char *obuf; /* copied body bytes, [ooff, olen) unsent */
    size_t ooff, olen, ocap;
    bool obuf_heap;  /* obuf outgrew H2_OBUF_ARENA_MAX: malloc'd, freed on its own */
    const char *ext; /* a borrowed slice after obuf, held until on_writable */
    size_t ext_len;
    /* A file's bytes after obuf (send_file, never with ext): read with pread straight into the
     * DATA frames nghttp2 builds. file_failed: it ended early, the stream is being reset. */
    int file_fd;
    uint64_t file_off, file_left;
    bool file_failed;
    bool head_final;
    bool no_body_out;
    bool out_eof;      /* send_end: the data provider ends the stream when drained */
    bool deferred;     /* the data provider returned DEFERRED: resume on new data */
    bool send_pending; /* the handler waits for on_writable */
    bool aborted;
    bool tunnel;       /* an extended CONNECT answered 200: DATA carries the tunnel both ways */
    bool peer_reset;   /* the client sent RST_STREAM */
    bool counted_open; /* in c->nopen until nghttp2 closes it */
    /* Life. */
    bool handler_on;            /* s.handler must hear on_close if the stream dies */
    enum h2_stream_start start; /* DISPATCHED: an exchange ran, it gets an access-log line */
    bool logged;
    bool closed; /* nghttp2 closed the stream */
    bool dead;   /* everything done: freed by the next sweep */
    bool wake_body, wake_writable;
    int fail_status; /* answer this (or reset) in the next wake pass */
    const char *fail_why;
    struct ev_timer body_timer; /* client_body_timeout while the handler waits for the body */
    struct ev_timer send_timer; /* send_timeout while the handler waits for on_writable */
    uint64_t stall_ms;          /* when send_timer was armed */
    /* Memory. The head's storage (arena), hdrs, fields, tbuf, trailers and obuf come from mem
     * and go with the stream, all at once; mem's first block is mem_first (not zeroed). */
    struct gh_arena mem;
    _Alignas(16) char mem_first[H2_ARENA_FIRST];
};

/* The connection's life. LINGERING: our last GOAWAY is out, input is read and dropped until
 * the client closes or the linger time ends. CLOSED: the fd is gone, the free is deferred.
 * Transitions (conn_set_state): OPEN -> LINGERING, OPEN -> CLOSED, LINGERING -> CLOSED. */
enum h2_conn_state { H2C_OPEN, H2C_LINGERING, H2C_CLOSED };

struct h2_conn {
    struct conn_base base; /* in the worker's connection list */
    struct worker *w;
    struct conn *conn; /* transport, peer, listener and snapshot (net/conn.h) */
    struct ev_io io;
    struct ev_timer idle_timer;   /* no stream open: keepalive; lingering: the linger time */
    struct ev_timer send_timer;   /* the client is not taking our frames */
    struct ev_timer goaway_timer; /* draining: the final GOAWAY after the notice */
    struct ev_timer yield_timer;  /* 0 ms: write on after H2_WRITE_BUDGET, next turn */
    size_t write_budget;          /* bytes this turn's writes may still send */
    struct ev_defer run_defer;    /* frame and write what the streams produced */
    struct ev_defer close_defer;
    nghttp2_session *ng;
    struct dlist streams;
    unsigned nstreams; /* not dead */
    unsigned requests;
    struct buf *wbuf;    /* framed bytes not yet written */
    const uint8_t *pend; /* from nghttp2_session_mem_send, not yet copied into wbuf */
    size_t pend_len;
    bool rd_ready, wr_ready, rdhup;
    bool wake;  /* a stream has something for its handler */
    bool sweep; /* a stream is dead */
    bool in_run;
    /* Independent of state: a drain or reload started (once), and the connection may then
     * linger and close; and a connection error, which may come while open or draining. */
    bool draining;
    bool failed;         /* a GOAWAY with an error went out: nothing more is exchanged */
    int32_t last_opened; /* highest stream id the client sent HEADERS on */
    struct {
        int32_t lo, hi;
    } gaps[H2_GAPS]; /* ids skipped (never opened, so closed), oldest first */
    unsigned ngaps;
    bool start_pending;   /* some stream is H2S_START_PENDING */
    uint32_t block_bytes; /* of the field block being decoded, as SETTINGS_MAX_HEADER_LIST_SIZE
                           * counts them */
    /* Stream resets the client caused, by its RST_STREAM or by an error of its that made us
     * reset the stream (MadeYouReset); PING and SETTINGS asking for an ACK; frames that carry
     * nothing (see H2_NOISE_BURST). */
    struct h2_bucket resets, ctrl, noise;
    uint32_t wu_credit;    /* WINDOW_UPDATEs our DATA frames explain */
    uint64_t last_data_ms; /* when a DATA frame last went out (0: never) */
    unsigned nopen;        /* client streams open in nghttp2 (begun, not closed) */
    bool settings_out;     /* our first SETTINGS frame went to wbuf (settings_announce) */
    struct {
        int32_t id;
        bool reset; /* by the client's RST_STREAM, else by its END_STREAM */
    } closed_ids[H2_CLOSED_MEM];
    unsigned closed_next;
    /* Our own view of the frame boundaries in the input (nghttp2 ignores PRIORITY payloads
     * when RFC 7540 priorities are off, and we must still validate them). */
    struct h2_scan scan;
    uint32_t goaway_code; /* a callback's verdict for the GOAWAY that conn_feed sends */
    bool idle_keepalive;  /* idle_timer runs keepalive_timeout (else client_header_timeout) */
    enum h2_conn_state state;
};

/* The only writer of st->start (see enum h2_stream_start for the transitions). */
static inline void h2_stream_set_start(struct h2_stream *st, enum h2_stream_start to)
{
    GH_BUG_ON(to == H2S_START_PENDING ? st->start != H2S_NOT_STARTED
                                      : st->start != H2S_START_PENDING);
    st->start = to;
}

/* Both halves of the connection's work */
static inline struct logger *conn_log(struct h2_conn *c)
{
    return &c->w->srv->log;
}

static inline const struct cfg_limits *conn_limits(struct h2_conn *c)
{
    return &c->conn->config->limits;
}

/* Frame and write at the end of this loop turn (never from inside nghttp2 or a handler). */
static inline void conn_schedule(struct h2_conn *c)
{
    if (c->state != H2C_CLOSED)
        ev_defer(&c->w->loop, &c->run_defer);
}

/* h2_conn.c */
void h2_conn_run(struct h2_conn *c);
/* A stream reset the client caused, out of the connection's budget: -1 when one too many. */
int h2_peer_reset_take(struct h2_conn *c, const char *what);

/* h2_stream.c */
struct h2_stream *h2_stream_of(nghttp2_session *ng, int32_t id); /* a live stream, or NULL */
void h2_stream_detach(struct h2_stream *st);
void h2_stream_finish(struct h2_stream *st);
void h2_stream_free(struct h2_stream *st);
void h2_wake_streams(struct h2_conn *c);
void h2_sweep_streams(struct h2_conn *c);
void h2_start_streams(struct h2_conn *c);
int h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user);
int h2_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                 const uint8_t *value, size_t vlen, uint8_t flags, void *user);
int h2_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user);
int h2_on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                     size_t len, void *user);
int h2_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user);
/* A DATA frame of file bytes (send_file) written straight into the connection's wbuf. */
int h2_send_file_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd, size_t len,
                      nghttp2_data_source *src, void *user);

#endif
