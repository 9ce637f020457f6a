/* The compress response filter (see compress.h): the head's decision, then the body's encoder
 * between the handler and the codec. */
#include "http/compress.h"

#include "config/config.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/accept_encoding.h"
#include "http/encoder.h"
#include "http/request.h"
#include "http/token.h"

#include <stdlib.h>
#include <string.h>

/* ---- the head ----------------------------------------------------------------------------- */

#define COMPRESS_MAX_FIELDS 320
#define COMPRESS_VARY_MAX 512
#define COMPRESS_ETAG_MAX 512

/* What the decision needs from a response head. */
struct head_scan {
    const char *ctype;
    size_t ctype_len;
    const char *no_transform; /* a Cache-Control line carrying no-transform, or NULL */
    size_t no_transform_len;
    bool has_content_encoding;
    bool vary_covers; /* some Vary lists accept-encoding already, or is "*" */
    long vary;        /* index of the first Vary field, -1 when none */
};

/* Whether a Vary value lists "*" or accept-encoding (members are tokens, separated by commas
 * with optional whitespace). */
static bool vary_covers(const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (http_token_eq(v + start, end - start, "*", 1) ||
            http_token_eq(v + start, end - start, "accept-encoding", 15))
            return true;
    }
    return false;
}

static void scan_head(const struct http_response *res, struct head_scan *h)
{
    *h = (struct head_scan){.vary = -1};
    for (size_t i = 0; i < res->nfields; i++) {
        const struct http_field *f = &res->fields[i];
        if (http_token_eq(f->name, f->name_len, "content-type", 12)) {
            if (!h->ctype) {
                h->ctype = f->value;
                h->ctype_len = f->value_len;
            }
        } else if (http_token_eq(f->name, f->name_len, "cache-control", 13)) {
            if (!h->no_transform && accept_encoding_no_transform(f->value, f->value_len)) {
                h->no_transform = f->value;
                h->no_transform_len = f->value_len;
            }
        } else if (http_token_eq(f->name, f->name_len, "content-encoding", 16)) {
            h->has_content_encoding = true;
        } else if (http_token_eq(f->name, f->name_len, "vary", 4)) {
            if (h->vary < 0)
                h->vary = (long)i;
            h->vary_covers |= vary_covers(f->value, f->value_len);
        }
    }
}

/* The route's compress, else the site's; NULL when off. */
static const struct cfg_compress *effective(const struct http_stream *s)
{
    const struct cfg_compress *c = s->route && s->route->compress ? s->route->compress
                                   : s->site                      ? s->site->compress
                                                                  : NULL;
    return c && c->on ? c : NULL;
}

static bool eligible(const struct http_stream *s, const struct cfg_compress *c,
                     const struct http_response *res, const struct head_scan *h)
{
    struct accept_encoding_policy pol = {
        .types = c->types, .ntypes = c->ntypes, .min_size = c->min_size};
    struct accept_encoding_response r = {
        .status = res->status,
        .content_type = h->ctype,
        .content_type_len = h->ctype_len,
        .cache_control = h->no_transform,
        .cache_control_len = h->no_transform_len,
        .has_content_encoding = h->has_content_encoding,
        .has_content_length = res->content_length >= 0,
        .content_length = res->content_length >= 0 ? (uint64_t)res->content_length : 0,
        .request_has_range = http_find_field(&s->req, "range", 5) != NULL,
    };
    return accept_encoding_compressible(&pol, &r);
}

static enum encoder_kind choose(const struct http_stream *s, const struct cfg_compress *c)
{
    struct accept_encoding ae;
    enum encoder_kind avail[CFG_COMPRESS_KINDS];

    accept_encoding_init(&ae);
    for (size_t i = 0; i < s->req.nfields; i++) {
        const struct http_field *f = &s->req.fields[i];
        if (http_token_eq(f->name, f->name_len, "accept-encoding", 15))
            accept_encoding_parse(&ae, f->value, f->value_len);
    }
    for (size_t i = 0; i < c->nalgorithms; i++)
        avail[i] = (enum encoder_kind)c->algorithms[i];
    return accept_encoding_choose(&ae, avail, c->nalgorithms).kind;
}

static bool is_event_stream(const struct head_scan *h)
{
    static const char sse[] = "text/event-stream";
    size_t n = sizeof sse - 1;
    if (!h->ctype || h->ctype_len < n)
        return false;
    return http_token_eq(h->ctype, n, sse, n) &&
           (h->ctype_len == n || h->ctype[n] == ';' || h->ctype[n] == ' ' || h->ctype[n] == '\t');
}

/* The rewritten head's fields and the storage their new values live in. */
struct head_out {
    struct http_field f[COMPRESS_MAX_FIELDS];
    size_t n;
    char vary[COMPRESS_VARY_MAX];
    char etag[COMPRESS_ETAG_MAX];
};

static const struct http_field vary_field = {"Vary", "Accept-Encoding", 4, 15};

/* Copies res's fields with Vary: Accept-Encoding merged into the first Vary (or added), and,
 * when `kind` is a coding, Content-Encoding added, ETag weakened (dropped when malformed) and
 * any Content-Length field dropped. False when they do not fit. */
static bool rewrite_fields(const struct http_response *res, const struct head_scan *h,
                           enum encoder_kind kind, struct head_out *o)
{
    if (res->nfields + 2 > COMPRESS_MAX_FIELDS)
        return false;
    bool merge =
        !h->vary_covers && h->vary >= 0 && res->fields[h->vary].value_len + 17 <= sizeof o->vary;
    bool etag_seen = false;
    o->n = 0;
    for (size_t i = 0; i < res->nfields; i++) {
        struct http_field f = res->fields[i];
        if (kind != ENCODER_IDENTITY && http_token_eq(f.name, f.name_len, "content-length", 14))
            continue;
        if (kind != ENCODER_IDENTITY && http_token_eq(f.name, f.name_len, "etag", 4)) {
            size_t n = etag_seen ? 0
                                 : accept_encoding_weaken_etag(f.value, f.value_len, o->etag,
                                                               sizeof o->etag);
            etag_seen = true;
            if (!n)
                continue; /* a strong validator must not describe other bytes; one ETag only */
            f.value = o->etag;
            f.value_len = (uint32_t)n;
        }
        if (merge && (long)i == h->vary) {
            memcpy(o->vary, f.value, f.value_len);
            memcpy(o->vary + f.value_len, ", Accept-Encoding", 17);
            f.value = o->vary;
            f.value_len += 17;
        }
        o->f[o->n++] = f;
    }
    if (!h->vary_covers && !merge)
        o->f[o->n++] = vary_field;
    if (kind != ENCODER_IDENTITY) {
        const char *name = encoder_kind_name(kind);
        o->f[o->n++] = (struct http_field){"Content-Encoding", name, 16, (uint32_t)strlen(name)};
    }
    return true;
}

struct compress;
static struct compress *filter_new(struct http_stream *s, const struct cfg_compress *c,
                                   enum encoder_kind kind, bool sse);
static void filter_install(struct compress *f);
static void filter_free(struct compress *f);

int compress_send_head(struct http_stream *s, const struct http_response *res)
{
    const struct cfg_compress *c = effective(s);
    struct head_scan h;

    /* An empty body has nothing to compress, whatever min_size says. */
    if (!c || s->coding_chosen || res->status < 200 || res->content_length == 0)
        return s->ops->send_head(s, res);
    scan_head(res, &h);
    if (!eligible(s, c, res, &h))
        return s->ops->send_head(s, res);

    enum encoder_kind kind = choose(s, c);
    struct compress *f = NULL;
    /* HEAD (and a response without a body) gets the headers GET would get, and nothing else. */
    if (kind != ENCODER_IDENTITY && !res->no_body && !s->req.head &&
        !(f = filter_new(s, c, kind, is_event_stream(&h)))) {
        log_msg(&s->worker->srv->log, LOG_ERROR, "client %s: compress: out of memory", s->peer);
        kind = ENCODER_IDENTITY; /* sent as it is */
    }
    struct head_out o;
    struct http_response out = *res;
    if (!rewrite_fields(res, &h, kind, &o)) {
        if (f)
            filter_free(f);
        return s->ops->send_head(s, res); /* too many fields to rewrite: as produced */
    }
    out.fields = o.f;
    out.nfields = o.n;
    if (kind != ENCODER_IDENTITY)
        out.content_length = -1;
    int r = s->ops->send_head(s, &out);
    if (f && r == SEND_DONE)
        filter_install(f);
    else if (f)
        filter_free(f);
    return r;
}

/* ---- the body ----------------------------------------------------------------------------- */

/* Encoder calls are given at least this much room: smaller ones cost more than they carry. */
#define COMPRESS_ROOM_MIN 1024
/* A handler's small slice that the encoder could not take yet is copied here (send_body copies
 * slices of up to SEND_COPY_MAX bytes at once; the caller may reuse their memory). */
#define COMPRESS_STAGE (4 * SEND_COPY_MAX)

struct compress {
    /* s->ops and s->handler point at these while the filter is installed: container_of finds
     * the filter from the stream without a field in it. */
    struct http_stream_ops ops;
    struct http_handler_ops handler;
    struct http_stream *s;
    const struct http_stream_ops *next;   /* the codec's operations */
    const struct http_handler_ops *inner; /* the handler's callbacks (may be NULL) */
    struct encoder *enc;
    struct buf *out; /* encoded bytes [start, end); [start, start + held) lent to the codec */
    size_t held;
    bool blocked;   /* the codec answered SEND_PENDING: nothing more until its on_writable */
    const char *in; /* the handler's input not yet taken by the encoder */
    size_t in_len;
    enum encoder_flush op; /* the FLUSH or FINISH in progress when busy */
    bool op_busy;
    bool dirty;        /* input went in since the last flush */
    bool flush_wanted; /* flush once the input is in: the handler paused, or an event ended */
    bool send_wanted;  /* a flush or the trailer completed: send what is in out */
    bool sse;          /* text/event-stream: flush after every send_body */
    bool owe_writable; /* the handler was told SEND_PENDING and waits for on_writable */
    bool handler_done; /* send_end or abort came: the handler hears nothing more */
    bool finished;     /* the trailer is in out */
    bool failed;       /* the codec refused our bytes: its on_close follows */
    bool broken;       /* the encoder failed: the response is aborted at the end of the turn */
    bool installed;
    bool dead; /* released; the structure waits for its queued defer */
    struct ev_defer defer;
    char stage[COMPRESS_STAGE];
};

/* The filter of a stream, from one of its ops the handler called. A handler may install its
 * callbacks after sending its head (the files handler does, once it knows how it sends the
 * body): they are taken over here, at its first call after that, so that the codec's
 * on_writable and on_close still come through the filter. */
static struct compress *of_ops(struct http_stream *s)
{
    struct compress *f = container_of(s->ops, struct compress, ops);
    if (s->handler != &f->handler) {
        f->inner = s->handler;
        s->handler = &f->handler;
    }
    return f;
}

static struct compress *of_handler(struct http_stream *s)
{
    return container_of(s->handler, struct compress, handler);
}

/* ---- idle encoders of a worker ---- */

/* Encoders kept per worker and coding: an encoder's tables cost an allocation and page faults
 * to set up (a quarter of the CPU of a small compressed response when made afresh each time);
 * a reset one costs a clear. Bounded, so the idle ones hold a few MiB at most. */
#define COMPRESS_IDLE_MAX 4

struct compress_worker {
    struct encoder *idle[ENCODER_KIND_COUNT][COMPRESS_IDLE_MAX];
    unsigned nidle[ENCODER_KIND_COUNT];
};

static struct encoder *encoder_get(struct worker *w, enum encoder_kind kind, int level)
{
    struct compress_worker *cw = w->compress;
    while (cw && cw->nidle[kind]) {
        struct encoder *e = cw->idle[kind][--cw->nidle[kind]];
        if (encoder_reset(e, level))
            return e;
        encoder_free(e);
    }
    return encoder_start(kind, level);
}

static void encoder_put(struct worker *w, struct encoder *e)
{
    enum encoder_kind k = encoder_kind_of(e);
    if (k != ENCODER_BR && !w->compress) /* brotli has no reset: never kept */
        w->compress = calloc(1, sizeof *w->compress);
    struct compress_worker *cw = w->compress;
    if (k == ENCODER_BR || !cw || cw->nidle[k] == COMPRESS_IDLE_MAX) {
        encoder_free(e);
        return;
    }
    cw->idle[k][cw->nidle[k]++] = e;
}

void compress_worker_fini(struct worker *w)
{
    struct compress_worker *cw = w->compress;
    if (!cw)
        return;
    for (int k = 0; k < ENCODER_KIND_COUNT; k++)
        for (unsigned i = 0; i < cw->nidle[k]; i++)
            encoder_free(cw->idle[k][i]);
    free(cw);
    w->compress = NULL;
}

static struct logger *filter_log(const struct compress *f)
{
    return &f->s->worker->srv->log;
}

/* Encoder state and output buffer go back; the structure too unless its defer is queued (the
 * loop holds a pointer to it until the end of the turn). */
static void filter_free(struct compress *f)
{
    if (f->enc)
        encoder_put(f->s->worker, f->enc);
    f->enc = NULL;
    if (f->out)
        buf_put(&f->s->worker->bufs, f->out);
    f->out = NULL;
    f->dead = true;
    if (!f->defer.queued)
        free(f);
}

/* The stream talks to the codec and the handler directly again. */
static void uninstall(struct compress *f)
{
    if (!f->installed)
        return;
    f->installed = false;
    f->s->ops = f->next;
    f->s->handler = f->inner;
}

/* Runs one encoder step into the room after out->end. 1: progress; 0: nothing to do or no
 * room; -1: the encoder failed. */
static int produce(struct compress *f)
{
    struct buf *b = f->out;
    if (buf_room(b) < COMPRESS_ROOM_MIN)
        return 0;
    enum encoder_flush op;
    if (f->op_busy)
        op = f->op;
    else if (f->in_len)
        op = ENCODER_RUN;
    else if (f->flush_wanted && f->dirty)
        op = ENCODER_FLUSH;
    else if (f->handler_done && !f->finished)
        op = ENCODER_FINISH;
    else {
        f->flush_wanted = false;
        return 0;
    }
    size_t used = 0, n = 0;
    const char *in = op == ENCODER_RUN ? f->in : NULL;
    size_t in_len = op == ENCODER_RUN ? f->in_len : 0;
    enum encoder_result r =
        encoder_push(f->enc, in, in_len, &used, b->data + b->end, buf_room(b), &n, op);
    if (r == ENCODER_ERROR)
        return -1;
    if (r == ENCODER_FULL && !used && !n) {
        /* No progress although there was room: only sending what is out can help; with
         * nothing out, the library would spin us for ever. */
        f->send_wanted = true;
        return buf_len(b) ? 0 : -1;
    }
    b->end += (uint32_t)n;
    if (op == ENCODER_RUN) {
        f->in += used;
        f->in_len -= used;
        f->dirty |= used > 0;
        if (r == ENCODER_FULL)
            f->send_wanted = true;
        return 1;
    }
    f->op = op;
    f->op_busy = r == ENCODER_FULL;
    if (r == ENCODER_FULL) {
        f->send_wanted = true;
        return 1;
    }
    f->send_wanted = true; /* the flush or the trailer is complete: it leaves now */
    if (op == ENCODER_FLUSH) {
        f->dirty = false;
        f->flush_wanted = false;
    } else {
        f->finished = true;
    }
    return 1;
}

/* The last bytes of a body, when this small, go as slices the codec copies: HTTP/1.1 writes a
 * borrowed slice at once, and the last chunk after it, where copied ones leave in one write with
 * the head and the end (one system call per small response instead of two). */
#define COMPRESS_COPY_TAIL (8 * SEND_COPY_MAX)

/* Hands out's bytes to the codec: SEND_DONE when it took them all. */
static enum send_result send_out(struct compress *f)
{
    struct buf *b = f->out;
    enum send_result r = SEND_DONE;
    f->send_wanted = false;
    if (f->finished && buf_len(b) <= COMPRESS_COPY_TAIL) {
        while (buf_len(b) && r == SEND_DONE) {
            size_t n = buf_len(b) < SEND_COPY_MAX ? buf_len(b) : SEND_COPY_MAX;
            r = f->next->send_body(f->s, b->data + b->start, n);
            if (r != SEND_ERROR)
                b->start += (uint32_t)n; /* copied, even with SEND_PENDING */
        }
    } else {
        r = f->next->send_body(f->s, b->data + b->start, buf_len(b));
        if (r == SEND_PENDING)
            f->held = buf_len(b); /* lent until on_writable */
        else if (r == SEND_DONE)
            b->start = b->end;
    }
    if (b->start == b->end)
        b->start = b->end = 0;
    if (r == SEND_ERROR)
        f->failed = true;
    else if (r == SEND_PENDING)
        f->blocked = true;
    return r;
}

/* Encoded bytes to the codec and input into the encoder, until both are done or blocked.
 * SEND_PENDING: the codec is full (on_writable comes); SEND_ERROR: the codec or the encoder
 * failed. */
static enum send_result pump(struct compress *f)
{
    for (;;) {
        struct buf *b = f->out;
        /* Out goes when full, when a flush completed, and once the trailer is in: all of it,
         * even when the codec took only part of a copied tail before it filled up. */
        bool want = f->send_wanted || f->finished || buf_room(b) < COMPRESS_ROOM_MIN;
        if (!f->blocked && buf_len(b) && want) {
            if (send_out(f) == SEND_ERROR)
                return SEND_ERROR;
            continue;
        }
        int p = produce(f);
        if (p < 0) {
            log_msg(filter_log(f), LOG_ERROR, "client %s: compress: %s encoder failed", f->s->peer,
                    encoder_kind_name(encoder_kind_of(f->enc)));
            f->broken = true;
            ev_defer(&f->s->worker->loop, &f->defer);
            return SEND_ERROR;
        }
        if (p == 0 && !(f->send_wanted && !f->blocked && buf_len(b)))
            return f->blocked ? SEND_PENDING : SEND_DONE;
    }
}

/* The handler's part is over and every byte is with the codec: the codec ends the exchange. */
static enum send_result complete(struct compress *f)
{
    struct http_stream *s = f->s;
    const struct http_stream_ops *next = f->next;
    uninstall(f);
    filter_free(f);
    return next->send_end(s);
}

/* After progress on either side: finish, or give the handler its turn again. */
static void advance(struct compress *f)
{
    if (pump(f) == SEND_ERROR)
        return; /* the codec's on_close, or our defer, follows */
    if (f->handler_done) {
        if (f->finished && !f->blocked && !buf_len(f->out))
            complete(f);
        return;
    }
    if (f->owe_writable && !f->in_len) {
        f->owe_writable = false;
        if (f->inner && f->inner->on_writable)
            f->inner->on_writable(f->s);
    }
}

/* ---- the stream's ops while installed ---- */

/* Takes the handler's slice after what it has pending: only when it did not wait for
 * on_writable, which the contract allows for small slices (they are copied at once). */
static bool stage_more(struct compress *f, const char *data, size_t len)
{
    if (f->in_len + len > COMPRESS_STAGE)
        return false;
    memmove(f->stage, f->in, f->in_len);
    memcpy(f->stage + f->in_len, data, len);
    f->in = f->stage;
    f->in_len += len;
    return true;
}

static enum send_result cf_send_body(struct http_stream *s, const char *data, size_t len)
{
    struct compress *f = of_ops(s);
    if (f->failed || f->broken || f->handler_done)
        return SEND_ERROR;
    if (len == 0)
        return SEND_DONE;
    if (f->in_len) {
        if (len > SEND_COPY_MAX || !stage_more(f, data, len)) {
            log_msg(filter_log(f), LOG_ERROR,
                    "client %s: compress: the handler sent without waiting for on_writable",
                    s->peer);
            return SEND_ERROR;
        }
        f->owe_writable = true;
        return SEND_PENDING;
    }
    f->in = data;
    f->in_len = len;
    if (f->sse)
        f->flush_wanted = true;
    enum send_result r = pump(f);
    if (r == SEND_ERROR)
        return r;
    /* The end of this turn flushes what the handler gave in it, unless it gives more. */
    ev_defer(&s->worker->loop, &f->defer);
    if (!f->in_len)
        return SEND_DONE;
    if (len <= SEND_COPY_MAX && f->in != f->stage) {
        memcpy(f->stage, f->in, f->in_len);
        f->in = f->stage;
    }
    f->owe_writable = true;
    return SEND_PENDING;
}

static enum send_result cf_send_end(struct http_stream *s)
{
    struct compress *f = of_ops(s);
    f->handler_done = true;
    f->owe_writable = false;
    if (f->failed || f->broken) /* the codec ends the exchange; it owes nobody an on_close now */
        return complete(f);
    if (pump(f) == SEND_ERROR)
        return SEND_PENDING; /* the codec's on_close, or our defer, ends it */
    if (f->finished && !f->blocked && !buf_len(f->out))
        return complete(f);
    return SEND_PENDING; /* the filter drains on its own, then ends the exchange */
}

static void cf_abort(struct http_stream *s)
{
    struct compress *f = of_ops(s);
    const struct http_stream_ops *next = f->next;
    f->handler_done = true;
    uninstall(f);
    next->abort(s); /* the codec lets go of any bytes we lent it */
    filter_free(f);
}

/* ---- the codec's callbacks while installed ---- */

static void cf_on_writable(struct http_stream *s)
{
    struct compress *f = of_handler(s);
    struct buf *b = f->out;
    b->start += (uint32_t)f->held;
    f->held = 0;
    f->blocked = false;
    if (b->start == b->end)
        b->start = b->end = 0;
    advance(f);
}

static void cf_on_body(struct http_stream *s)
{
    struct compress *f = of_handler(s);
    if (!f->handler_done && f->inner && f->inner->on_body)
        f->inner->on_body(s);
}

static void cf_on_drain(struct http_stream *s)
{
    struct compress *f = of_handler(s);
    if (!f->handler_done && f->inner && f->inner->on_drain)
        f->inner->on_drain(s);
}

/* The client is gone: the codec has let go of our bytes. */
static void cf_on_close(struct http_stream *s)
{
    struct compress *f = of_handler(s);
    const struct http_handler_ops *inner = f->inner;
    bool tell = !f->handler_done;
    f->handler_done = true;
    uninstall(f);
    filter_free(f);
    if (tell && inner && inner->on_close)
        inner->on_close(s);
}

/* End of the loop turn after a send_body: the handler's input paused, so what it gave is made
 * decodable now (a long poll's answer, the events of a stream). Also where an encoder failure
 * ends the response, outside the handler's call. */
static void cf_defer(struct ev_defer *d)
{
    struct compress *f = container_of(d, struct compress, defer);
    if (f->dead) {
        free(f);
        return;
    }
    if (f->broken) {
        struct http_stream *s = f->s;
        const struct http_handler_ops *inner = f->inner;
        bool tell = !f->handler_done;
        const struct http_stream_ops *next = f->next;
        f->handler_done = true;
        uninstall(f);
        next->abort(s);
        filter_free(f);
        if (tell && inner && inner->on_close)
            inner->on_close(s);
        return;
    }
    if (f->failed)
        return;
    f->flush_wanted = true;
    advance(f);
}

static struct compress *filter_new(struct http_stream *s, const struct cfg_compress *c,
                                   enum encoder_kind kind, bool sse)
{
    struct compress *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->s = s;
    f->sse = sse;
    f->defer.cb = cf_defer;
    f->enc = encoder_get(s->worker, kind, c->level[kind]);
    f->out = buf_get(&s->worker->bufs);
    if (!f->enc || !f->out) {
        filter_free(f);
        return NULL;
    }
    f->out->start = f->out->end = 0;
    return f;
}

static void filter_install(struct compress *f)
{
    struct http_stream *s = f->s;
    f->next = s->ops;
    f->inner = s->handler;
    f->ops = *s->ops;
    f->ops.send_body = cf_send_body;
    f->ops.send_file = NULL; /* the handler copies, and its bytes come through here */
    f->ops.send_end = cf_send_end;
    f->ops.abort = cf_abort;
    f->handler = (struct http_handler_ops){.on_body = cf_on_body,
                                           .on_writable = cf_on_writable,
                                           .on_close = cf_on_close,
                                           .on_drain = cf_on_drain};
    s->ops = &f->ops;
    s->handler = &f->handler;
    f->installed = true;
}
