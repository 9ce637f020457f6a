/* A file's bytes to the client, one range after the other (multipart framing between them),
 * with back-pressure: the codec's send_file where the connection can send from the file itself
 * (sendfile(2), kTLS), else pread into one buffer from the worker's pool and send_body, the
 * next read only once the codec has taken the last (on_writable). A client that stops reading
 * so holds at most one buffer. A file that turns out shorter than its stat said (truncated
 * while being sent) ends the response with abort and one log line: the length promised in the
 * head can no longer be kept. */
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/request.h"
#include "serve/files_cache.h"
#include "serve/files_internal.h"
#include "serve/mime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum xfer_phase { X_PART_HEAD, X_DATA, X_TAIL, X_END };

/* Bytes one pump copies at most (as the codecs' own budgets for a file, OUTQ_FILE_BUDGET): a
 * client that takes every buffer at once (over TLS on loopback or a LAN) would otherwise keep
 * the worker copying its whole file in one call while the other connections wait. The rest
 * follows on the next loop turn. */
#define FILES_COPY_BUDGET ((uint64_t)1 << 20)
enum step { STEP_NEXT, STEP_WAIT, STEP_DONE, STEP_FAIL };

struct files_xfer {
    struct http_stream *s;
    struct worker *w;
    struct files_worker *fw;
    struct files_entry *e; /* NULL for a body in memory */
    char *mem;             /* a body in memory (malloc'd, ours), or NULL */
    struct http_range_plan plan;
    bool multipart;
    char boundary[HTTP_RANGE_BOUNDARY_LEN + 1];
    char ctype[MIME_TYPE_MAX + 32];
    size_t ctype_len;
    unsigned part;
    enum xfer_phase phase;
    uint64_t off, left;          /* what is still to send of the current range */
    struct buf *buf;             /* copy mode: the one buffer, untouched while a send is pending */
    struct ev_timer yield_timer; /* copy mode: the next budget, on the next loop turn */
    uint64_t copied;             /* bytes this pump copied */
    bool copy;                   /* the connection cannot send from the file: pread + send_body */
    bool pumping;                /* inside pump(): callbacks only leave notes */
    bool woken;                  /* on_writable came while pumping */
    bool gone;                   /* on_close: the stream is not ours any more */
    bool ended;                  /* send_end or abort was called */
    bool broken;                 /* the file or memory failed us, not the connection: abort */
};

size_t files_xfer_size(void)
{
    return sizeof(struct files_xfer);
}

/* Not through x->s: after on_close the stream may be gone. */
static void xfer_free(struct files_xfer *x)
{
    ev_timer_stop(&x->w->loop, &x->yield_timer);
    if (x->buf)
        buf_put(&x->w->bufs, x->buf);
    files_entry_put(x->fw->cache, x->e);
    free(x->mem);
    freelist_put(&x->fw->xfers, x);
}

static void range_begin(struct files_xfer *x)
{
    x->off = x->plan.r[x->part].first;
    x->left = x->plan.r[x->part].last - x->plan.r[x->part].first + 1;
    x->phase = x->multipart ? X_PART_HEAD : X_DATA;
}

/* The current range is out: the next one, the multipart tail, or the end. */
static enum step range_done(struct files_xfer *x)
{
    if (++x->part < x->plan.n) {
        range_begin(x);
        return STEP_NEXT;
    }
    x->phase = x->multipart ? X_TAIL : X_END;
    return STEP_NEXT;
}

static enum step sent(enum send_result r)
{
    if (r == SEND_PENDING)
        return STEP_WAIT;
    return r == SEND_DONE ? STEP_NEXT : STEP_FAIL;
}

/* Part heads and the tail are far below SEND_COPY_MAX: the codec copies them at once. */
static enum step send_framing(struct files_xfer *x)
{
    char out[HTTP_RANGE_PART_HEAD_MAX(sizeof x->ctype)];
    size_t n = x->phase == X_TAIL ? http_range_tail(x->boundary, out, sizeof out)
                                  : http_range_part_head(&x->plan, x->part, x->boundary, x->ctype,
                                                         x->ctype_len, out, sizeof out);
    enum send_result r = x->s->ops->send_body(x->s, out, n);
    if (x->phase == X_TAIL)
        x->phase = X_END;
    else
        x->phase = X_DATA;
    return sent(r);
}

static void log_short(struct files_xfer *x, ssize_t got, int err)
{
    struct http_stream *s = x->s;
    unsigned long long at = x->off + (got > 0 ? (uint64_t)got : 0);
    if (got < 0)
        log_msg(&s->worker->srv->log, LOG_WARN,
                "files: client %s: reading '%s' failed at offset %llu: %s; response aborted",
                s->peer, x->e->rel, (unsigned long long)x->off, strerror(err));
    else
        log_msg(&s->worker->srv->log, LOG_WARN,
                "files: client %s: '%s' ended at offset %llu of the %llu bytes it had "
                "(truncated while being sent); response aborted",
                s->peer, x->e->rel, at, (unsigned long long)x->plan.size);
}

static enum step send_copy(struct files_xfer *x)
{
    if (!x->buf && !(x->buf = buf_get(&x->w->bufs))) {
        x->broken = true;
        return STEP_FAIL;
    }
    size_t want = x->left < BUF_SIZE ? (size_t)x->left : BUF_SIZE;
    ssize_t got;
    do
        got = pread(x->e->fd, x->buf->data, want, (off_t)x->off);
    while (got < 0 && errno == EINTR);
    if (got <= 0 || (size_t)got < want) {
        log_short(x, got, errno);
        x->broken = true;
        return STEP_FAIL;
    }
    x->off += (uint64_t)got;
    x->left -= (uint64_t)got;
    x->copied += (uint64_t)got;
    enum step st = sent(x->s->ops->send_body(x->s, x->buf->data, (size_t)got));
    if (st == STEP_FAIL || x->left)
        return st;
    enum step next = range_done(x); /* the range is taken; where to go after the wait */
    return st == STEP_WAIT ? STEP_WAIT : next;
}

/* A body in memory goes in one slice, which stays untouched until on_writable. */
static enum step send_mem(struct files_xfer *x)
{
    enum step st = sent(x->s->ops->send_body(x->s, x->mem + x->off, (size_t)x->left));
    x->off += x->left;
    x->left = 0;
    if (st == STEP_FAIL)
        return st;
    enum step next = range_done(x);
    return st == STEP_WAIT ? STEP_WAIT : next;
}

static enum step send_data(struct files_xfer *x)
{
    if (!x->left)
        return range_done(x);
    if (x->mem)
        return send_mem(x);
    if (x->copy || !x->s->ops->send_file)
        return send_copy(x);
    enum send_result r = x->s->ops->send_file(x->s, x->e->fd, x->off, x->left);
    if (r == SEND_NOTSUP) {
        x->copy = true;
        return STEP_NEXT;
    }
    if (r == SEND_ERROR)
        return STEP_FAIL;
    x->off += x->left; /* all taken; PENDING: sent as the socket drains, on_writable after */
    x->left = 0;
    enum step next = range_done(x);
    return r == SEND_PENDING ? STEP_WAIT : next;
}

static enum step step(struct files_xfer *x)
{
    switch (x->phase) {
    case X_PART_HEAD:
    case X_TAIL:
        return send_framing(x);
    case X_DATA:
        return send_data(x);
    case X_END:
        break;
    }
    return STEP_DONE;
}

static void pump(struct files_xfer *x)
{
    struct http_stream *s = x->s;
    x->pumping = true;
    x->copied = 0;
    while (!x->gone && !x->ended) {
        x->woken = false;
        enum step st = step(x);
        bool ready = st == STEP_NEXT || (st == STEP_WAIT && x->woken);
        if (ready && x->copied >= FILES_COPY_BUDGET && x->phase != X_END) {
            ev_timer_start(&x->w->loop, &x->yield_timer, 0); /* the rest on the next turn */
            break;
        }
        if (st == STEP_NEXT)
            continue;
        if (st == STEP_WAIT) {
            if (x->woken) { /* the codec drained while we were in it */
                x->woken = false;
                continue;
            }
            break;
        }
        x->ended = true;
        if (x->gone)
            break;
        /* A failed send already failed the connection (send_end detaches the handler, as
         * http_respond does); a short file must not end as if complete: abort. */
        if (st == STEP_FAIL && x->broken)
            s->ops->abort(s);
        else
            s->ops->send_end(s);
    }
    x->pumping = false;
    if (x->gone || x->ended)
        xfer_free(x);
}

static void on_yield(struct ev_timer *t)
{
    pump(container_of(t, struct files_xfer, yield_timer));
}

static void on_writable(struct http_stream *s)
{
    struct files_xfer *x = s->handler_data;
    if (x->pumping) {
        x->woken = true;
        return;
    }
    pump(x);
}

static void on_close(struct http_stream *s)
{
    struct files_xfer *x = s->handler_data;
    x->gone = true;
    if (!x->pumping)
        xfer_free(x);
}

static void on_body(struct http_stream *s)
{
    (void)s; /* a request body of a GET is not read; the codec discards it */
}

static const struct http_handler_ops files_handler = {
    .on_body = on_body,
    .on_writable = on_writable,
    .on_close = on_close,
};

static struct files_xfer *xfer_new(struct http_stream *s)
{
    struct files_worker *fw = files_worker_of(s->worker);
    struct files_xfer *x = freelist_get(&fw->xfers);
    if (!x)
        return NULL;
    memset(x, 0, sizeof *x);
    x->s = s;
    x->w = s->worker;
    x->fw = fw;
    x->yield_timer.cb = on_yield;
    return x;
}

static void xfer_run(struct files_xfer *x)
{
    struct http_stream *s = x->s;
    range_begin(x);
    s->handler = &files_handler;
    s->handler_data = x;
    pump(x);
}

void files_body_start_mem(struct http_stream *s, char *mem, size_t len)
{
    struct files_xfer *x = xfer_new(s);
    if (!x) {
        free(mem);
        s->ops->abort(s);
        return;
    }
    x->mem = mem;
    x->plan.n = 1;
    x->plan.size = len;
    x->plan.r[0] = (struct http_byte_range){0, len - 1};
    xfer_run(x);
}

void files_body_start(struct http_stream *s, struct files_entry *e, const struct files_body *b)
{
    struct files_xfer *x = xfer_new(s);
    if (!x) {
        files_entry_put(files_worker_of(s->worker)->cache, e);
        s->ops->abort(s);
        return;
    }
    x->e = e;
    x->plan = b->plan;
    if (x->plan.kind == HTTP_RANGE_FULL || !x->plan.n) {
        x->plan.n = 1;
        x->plan.r[0] = (struct http_byte_range){0, (uint64_t)e->st.st_size - 1};
        x->plan.size = (uint64_t)e->st.st_size;
    }
    x->multipart = b->multipart;
    if (b->multipart) {
        memcpy(x->boundary, b->boundary, HTTP_RANGE_BOUNDARY_LEN + 1);
        x->ctype_len = b->ctype_len < sizeof x->ctype ? b->ctype_len : sizeof x->ctype - 1;
        memcpy(x->ctype, b->ctype, x->ctype_len);
    }
    xfer_run(x);
}
