/* A regular file's answer: the precompressed sibling the client prefers, the conditionals of
 * RFC 9110 13.2.2 (304, 412), Range (206, multipart/byteranges, 416), and the head every file
 * response carries: Content-Type, ETag, Last-Modified, Accept-Ranges, nosniff, Cache-Control,
 * Vary. The body goes to files_body.c. */
#include "config/config.h"
#include "core/worker.h"
#include "http/accept_encoding.h"
#include "http/conditional.h"
#include "http/range.h"
#include "http/request.h"
#include "http/respond.h"
#include "http/token.h"
#include "serve/files_cache.h"
#include "serve/files_internal.h"
#include "serve/files_path.h"
#include "serve/mime.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define FIELDS_MAX 12
#define JOIN_MAX 8192 /* bytes of one request field's lines joined */

/* ---- request fields ---- */

/* Every line of the field `lname`, joined with ", " (RFC 9110 5.3) into *pool when there are
 * several; NULL when absent. A join that does not fit keeps the first line alone. */
static const char *field(const struct http_request *r, const char *lname, size_t nlen, char **pool,
                         size_t *room, size_t *len)
{
    const char *first = NULL;
    size_t n = 0;
    char *out = *pool;
    for (size_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (!http_token_eq(f->name, f->name_len, lname, nlen))
            continue;
        if (!first) {
            first = f->value;
            *len = f->value_len;
            continue;
        }
        if (!n) {
            if (*len > *room)
                return first;
            memcpy(out, first, *len);
            n = *len;
        }
        if (n + 2 + f->value_len > *room)
            break;
        memcpy(out + n, ", ", 2);
        memcpy(out + n + 2, f->value, f->value_len);
        n += 2 + f->value_len;
    }
    if (!n)
        return first;
    *pool += n;
    *room -= n;
    *len = n;
    return out;
}

/* ---- precompressed siblings ---- */

static const char *sibling_ext(enum encoder_kind k)
{
    return k == ENCODER_BR ? ".br" : k == ENCODER_ZSTD ? ".zst" : ".gz";
}

static bool not_older(const struct stat *sib, const struct stat *orig)
{
    return sib->st_mtim.tv_sec > orig->st_mtim.tv_sec ||
           (sib->st_mtim.tv_sec == orig->st_mtim.tv_sec &&
            sib->st_mtim.tv_nsec >= orig->st_mtim.tv_nsec);
}

struct siblings {
    struct files_entry *e[CFG_FILES_CODINGS];
    enum encoder_kind kind[CFG_FILES_CODINGS];
    size_t n;
};

/* The route's codings whose sibling is a regular file not older than the file, in the route's
 * order. Looked up through the cache, missing ones too, so a hot file costs no open. */
static void find_siblings(struct files_req *q, const struct files_entry *orig, const char *name,
                          size_t len, struct siblings *sb)
{
    char path[FILES_PATH_MAX];
    sb->n = 0;
    if (len + 5 > sizeof path)
        return;
    memcpy(path, name, len);
    for (size_t i = 0; i < q->fs->nprecompressed; i++) {
        enum encoder_kind k = (enum encoder_kind)q->fs->precompressed[i];
        const char *ext = sibling_ext(k);
        size_t elen = strlen(ext);
        memcpy(path + len, ext, elen + 1);
        struct files_entry *e = files_req_get(q, path, len + elen);
        if (e && !e->err && S_ISREG(e->st.st_mode) && not_older(&e->st, &orig->st)) {
            sb->e[sb->n] = e;
            sb->kind[sb->n++] = k;
        } else {
            files_entry_put(q->cache, e);
        }
    }
}

/* The client's pick among the siblings (-1: the file itself); the others are let go. */
static int choose_sibling(struct files_req *q, struct siblings *sb)
{
    const struct http_request *r = &q->s->req;
    struct accept_encoding ae;
    accept_encoding_init(&ae);
    for (size_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (http_token_eq(f->name, f->name_len, "accept-encoding", 15))
            accept_encoding_parse(&ae, f->value, f->value_len);
    }
    struct accept_encoding_choice c = accept_encoding_choose(&ae, sb->kind, sb->n);
    int pick = -1;
    for (size_t i = 0; i < sb->n; i++) {
        if (sb->kind[i] == c.kind && c.kind != ENCODER_IDENTITY)
            pick = (int)i;
        else
            files_entry_put(q->cache, sb->e[i]);
    }
    return pick;
}

/* ---- the answer ---- */

struct answer {
    struct http_field f[FIELDS_MAX];
    size_t n;
    char content_range[HTTP_RANGE_CR_MAX];
    char multipart_type[64 + HTTP_RANGE_BOUNDARY_LEN];
    char boundary[HTTP_RANGE_BOUNDARY_LEN + 1];
};

static void add(struct answer *a, const char *name, const char *value, size_t vlen)
{
    if (a->n < FIELDS_MAX)
        a->f[a->n++] = (struct http_field){name, value, (uint32_t)strlen(name), (uint32_t)vlen};
}

/* What a 200, 206 and 304 all carry (RFC 9110 15.4.5: a 304 has the validators, Cache-Control
 * and Vary the 200 would have had). */
static void validators(struct answer *a, const struct files_req *q, const struct files_entry *e,
                       bool vary)
{
    add(a, "ETag", e->etag, e->etag_len);
    add(a, "Last-Modified", e->last_modified, HTTPDATE_LEN);
    if (q->fs->cache_control)
        add(a, "Cache-Control", q->fs->cache_control, strlen(q->fs->cache_control));
    if (vary)
        add(a, "Vary", "Accept-Encoding", 15);
}

static void send_head_only(struct http_stream *s, struct answer *a, int status, int64_t len)
{
    struct http_response res = {
        .status = status, .fields = a->f, .nfields = a->n, .content_length = len, .no_body = true};
    handler_send_head(s, &res);
    s->ops->send_end(s);
}

static void unsatisfiable(struct http_stream *s, const struct http_range_plan *plan)
{
    static const char body[] = "416 Range Not Satisfiable\n";
    char cr[HTTP_RANGE_CR_MAX];
    size_t n = http_range_content_range(plan, 0, cr);
    struct http_field f[2] = {{"Content-Range", cr, 13, (uint32_t)n},
                              {"Accept-Ranges", "bytes", 13, 5}};
    http_respond(s, 416, "text/plain; charset=utf-8", body, sizeof body - 1, f, 2);
}

static uint64_t boundary_seed(struct worker *w)
{
    uint64_t x = w->rand; /* xorshift64, the worker's random state */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rand = x;
}

/* Range and If-Range. HEAD too: it gets the head GET would get (RFC 9110 9.3.2), as nginx and
 * Apache answer it. */
static void plan_ranges(const struct http_request *r, const struct files_entry *e, int64_t now,
                        struct http_range_plan *plan, char **pool, size_t *room)
{
    size_t rlen = 0, ilen = 0;
    const char *range = field(r, "range", 5, pool, room, &rlen);
    const char *if_range = range ? field(r, "if-range", 8, pool, room, &ilen) : NULL;
    uint64_t size = (uint64_t)e->st.st_size;
    if (!range || (if_range && !http_if_range(if_range, ilen, e->etag, e->etag_len,
                                              e->st.st_mtim.tv_sec, now))) {
        http_range_plan(NULL, 0, size, plan);
        return;
    }
    http_range_plan(range, rlen, size, plan);
}

static enum http_cond_result conditionals(const struct http_request *r, const struct files_entry *e,
                                          int64_t now, char **pool, size_t *room)
{
    struct http_cond_request rq = {.get_or_head = true, .now = now};
    rq.if_match = field(r, "if-match", 8, pool, room, &rq.if_match_len);
    rq.if_none_match = field(r, "if-none-match", 13, pool, room, &rq.if_none_match_len);
    rq.if_modified_since = field(r, "if-modified-since", 17, pool, room, &rq.if_modified_since_len);
    rq.if_unmodified_since =
        field(r, "if-unmodified-since", 19, pool, room, &rq.if_unmodified_since_len);
    struct http_cond_rep rep = {
        .etag = e->etag, .etag_len = e->etag_len, .last_modified = e->st.st_mtim.tv_sec};
    return http_cond_evaluate(&rq, &rep);
}

/* The chosen representation `e` (the file or a sibling): conditionals, ranges, head, body. */
static void answer(struct files_req *q, struct files_entry *e, const char *ctype, size_t ctype_len,
                   enum encoder_kind coding, bool vary)
{
    struct http_stream *s = q->s;
    const struct http_request *r = &s->req;
    char joined[JOIN_MAX], *pool = joined;
    size_t room = sizeof joined;
    int64_t now = (int64_t)time(NULL);
    struct answer a;
    a.n = 0;
    enum http_cond_result c = conditionals(r, e, now, &pool, &room);
    if (c == HTTP_COND_FAILED) {
        files_entry_put(q->cache, e);
        http_respond_text(s, 412, NULL);
        return;
    }
    validators(&a, q, e, vary);
    if (c == HTTP_COND_NOT_MODIFIED) {
        files_entry_put(q->cache, e);
        send_head_only(s, &a, 304, -1);
        return;
    }
    struct files_body b = {.ctype = ctype, .ctype_len = ctype_len};
    plan_ranges(r, e, now, &b.plan, &pool, &room);
    if (b.plan.kind == HTTP_RANGE_UNSATISFIABLE) {
        files_entry_put(q->cache, e);
        unsatisfiable(s, &b.plan);
        return;
    }
    uint64_t length = (uint64_t)e->st.st_size;
    int status = 200;
    add(&a, "Accept-Ranges", "bytes", 5);
    add(&a, "X-Content-Type-Options", "nosniff", 7);
    if (coding != ENCODER_IDENTITY) {
        const char *name = encoder_kind_name(coding);
        add(&a, "Content-Encoding", name, strlen(name));
    }
    if (b.plan.kind == HTTP_RANGE_SINGLE) {
        status = 206;
        length = b.plan.r[0].last - b.plan.r[0].first + 1;
        add(&a, "Content-Range", a.content_range,
            http_range_content_range(&b.plan, 0, a.content_range));
        add(&a, "Content-Type", ctype, ctype_len);
    } else if (b.plan.kind == HTTP_RANGE_MULTI) {
        status = 206;
        http_range_boundary(a.boundary, boundary_seed(s->worker));
        b.multipart = true;
        b.boundary = a.boundary;
        length = http_range_multipart_length(&b.plan, a.boundary, ctype, ctype_len);
        int n = snprintf(a.multipart_type, sizeof a.multipart_type,
                         "multipart/byteranges; boundary=%s", a.boundary);
        add(&a, "Content-Type", a.multipart_type, (size_t)n);
    } else {
        add(&a, "Content-Type", ctype, ctype_len);
    }
    struct http_response res = {.status = status,
                                .fields = a.f,
                                .nfields = a.n,
                                .content_length = (int64_t)length,
                                .no_body = r->head};
    if (handler_send_head(s, &res) == SEND_ERROR || r->head || !length) {
        files_entry_put(q->cache, e);
        s->ops->send_end(s);
        return;
    }
    files_body_start(s, e, &b);
}

void files_respond(struct files_req *q, struct files_entry *e, const char *name, size_t name_len)
{
    size_t ctype_len;
    const char *ctype = mime_lookup(q->fs->mime, name, name_len, &ctype_len);
    struct siblings sb = {.n = 0};
    if (q->fs->nprecompressed)
        find_siblings(q, e, name, name_len, &sb);
    if (!sb.n) {
        answer(q, e, ctype, ctype_len, ENCODER_IDENTITY, false);
        return;
    }
    /* The compress filter leaves alone what has siblings, identity included: the choice was
     * made here, and the Vary on every variant says so to caches. */
    q->s->coding_chosen = true;
    int pick = choose_sibling(q, &sb);
    if (pick < 0) {
        answer(q, e, ctype, ctype_len, ENCODER_IDENTITY, true);
        return;
    }
    files_entry_put(q->cache, e);
    answer(q, sb.e[pick], ctype, ctype_len, sb.kind[pick], true);
}
