/* The compress filter between a handler and a fake codec (http/compress.c): the head's rewrite,
 * the bytes the codec receives (inflated and compared), back-pressure both ways, the flush at the
 * end of a loop turn and after every event of a text/event-stream, a small slice staged when
 * the codec is full, abort, on_close, a handler installing its callbacks after its head, and
 * HEAD. Run under ASan, it also proves every path frees the filter. */
#include "check.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/worker.h"
#include "http/compress.h"
#include "http/encoder.h"
#include "http/request.h"

#include <stdlib.h>
#include <zlib.h>

/* ---- a fake codec ---- */

struct fake {
    char got[1 << 21];
    size_t got_len;
    int heads, ends, aborts;
    int status;
    int64_t content_length;
    char ce[32], vary[128], etag[64];
    bool block;       /* send_body answers SEND_PENDING */
    const char *lent; /* a borrowed slice, taken at unblock */
    size_t lent_len;
    int writable, closed; /* the handler's callbacks */
    int other_writable;
};

static struct fake fk;

static void field_copy(char *dst, size_t cap, const struct http_response *res, const char *name)
{
    dst[0] = '\0';
    for (size_t i = 0; i < res->nfields; i++)
        if (strlen(name) == res->fields[i].name_len &&
            !strncasecmp(res->fields[i].name, name, res->fields[i].name_len))
            snprintf(dst, cap, "%.*s", (int)res->fields[i].value_len, res->fields[i].value);
}

static enum send_result fake_head(struct http_stream *s, const struct http_response *res)
{
    fk.heads++;
    fk.status = res->status;
    fk.content_length = res->content_length;
    field_copy(fk.ce, sizeof fk.ce, res, "content-encoding");
    field_copy(fk.vary, sizeof fk.vary, res, "vary");
    field_copy(fk.etag, sizeof fk.etag, res, "etag");
    return SEND_DONE;
}

static void take(const char *p, size_t n)
{
    CHECK(fk.got_len + n <= sizeof fk.got);
    memcpy(fk.got + fk.got_len, p, n);
    fk.got_len += n;
}

static enum send_result fake_body(struct http_stream *s, const char *data, size_t len)
{
    CHECK(fk.lent == NULL); /* never called while a slice is lent */
    if (len <= SEND_COPY_MAX) {
        take(data, len);
        return fk.block ? SEND_PENDING : SEND_DONE;
    }
    if (fk.block) {
        fk.lent = data;
        fk.lent_len = len;
        return SEND_PENDING;
    }
    take(data, len);
    return SEND_DONE;
}

static enum send_result fake_end(struct http_stream *s)
{
    fk.ends++;
    return SEND_DONE;
}

static void fake_abort(struct http_stream *s)
{
    fk.aborts++;
}

static const struct http_stream_ops fake_ops = {
    .send_head = fake_head, .send_body = fake_body, .send_end = fake_end, .abort = fake_abort};

/* The codec drains: what it borrowed is taken, and the stream hears on_writable. */
static void unblock(struct http_stream *s, bool stay_blocked)
{
    if (fk.lent)
        take(fk.lent, fk.lent_len);
    fk.lent = NULL;
    fk.block = stay_blocked;
    s->handler->on_writable(s);
}

/* ---- a handler ---- */

static void h_writable(struct http_stream *s)
{
    fk.writable++;
}
static void h_close(struct http_stream *s)
{
    fk.closed++;
}
static void other_writable(struct http_stream *s)
{
    fk.other_writable++;
}
static const struct http_handler_ops handler_ops = {.on_writable = h_writable, .on_close = h_close};
static const struct http_handler_ops other_ops = {.on_writable = other_writable,
                                                  .on_close = h_close};

/* ---- set-up ---- */

static struct worker w;
static struct server srv;
static const char *const types[] = {"text/*"};
static struct cfg_compress cc = {.on = true,
                                 .algorithms = {ENCODER_GZIP},
                                 .nalgorithms = 1,
                                 .level = {[ENCODER_GZIP] = 5},
                                 .min_size = 0,
                                 .types = types,
                                 .ntypes = 1};
static struct cfg_site site = {.compress = &cc};
static struct http_field req_fields[] = {{"Accept-Encoding", "gzip", 15, 4}};

static void stream_init(struct http_stream *s, bool accept)
{
    memset(&fk, 0, sizeof fk);
    *s = (struct http_stream){
        .ops = &fake_ops, .handler = &handler_ops, .worker = &w, .site = &site, .peer = "test"};
    s->req.fields = req_fields;
    s->req.nfields = accept ? 1 : 0;
}

static int head(struct http_stream *s, const char *ctype, int64_t len)
{
    struct http_field f[] = {{"Content-Type", ctype, 12, (uint32_t)strlen(ctype)},
                             {"ETag", "\"v1\"", 4, 4}};
    struct http_response res = {.status = 200, .fields = f, .nfields = 2, .content_length = len};
    return compress_send_head(s, &res);
}

static size_t inflate_all(const char *in, size_t len, char *out, size_t cap, bool finished)
{
    z_stream z = {0};
    inflateInit2(&z, 15 + 16);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int r = inflate(&z, Z_SYNC_FLUSH);
    size_t n = cap - z.avail_out;
    inflateEnd(&z);
    if (finished)
        CHECK_EQ_INT(r, Z_STREAM_END);
    return n;
}

static char text[400000], noise[400000], dec[1 << 21];

static void check_body(const char *want, size_t len)
{
    size_t n = inflate_all(fk.got, fk.got_len, dec, sizeof dec, true);
    CHECK(n == len && memcmp(dec, want, len) == 0);
}

/* ---- cases ---- */

static void test_plain(void)
{
    struct http_stream s;
    stream_init(&s, true);
    CHECK_EQ_INT(head(&s, "text/plain; charset=utf-8", sizeof text), SEND_DONE);
    CHECK(!strcmp(fk.ce, "gzip") && !strcmp(fk.vary, "Accept-Encoding"));
    CHECK(!strcmp(fk.etag, "W/\"v1\""));
    CHECK_EQ_INT(fk.content_length, -1);
    CHECK(s.ops != &fake_ops && s.ops->send_file == NULL);
    CHECK_EQ_INT(s.ops->send_body(&s, text, sizeof text), SEND_DONE);
    s.ops->send_end(&s);
    CHECK_EQ_INT(fk.ends, 1);
    CHECK(s.ops == &fake_ops && s.handler == &handler_ops); /* handed back */
    check_body(text, sizeof text);
    ev_run_defers(&w.loop);
}

/* The codec is full: the handler's slice is held, its on_writable comes only once the filter
 * drained, and the bytes are all there in order. */
static void test_backpressure(void)
{
    struct http_stream s;
    stream_init(&s, true);
    head(&s, "text/plain", -1);
    fk.block = true;
    enum send_result r = s.ops->send_body(&s, noise, sizeof noise);
    CHECK_EQ_INT(r, SEND_PENDING);
    int rounds = 0;
    while (fk.writable == 0 && rounds++ < 100) {
        CHECK(fk.lent != NULL); /* nothing moves until the codec drains */
        unblock(&s, true);
    }
    CHECK_EQ_INT(fk.writable, 1);
    /* A small slice while the codec is full: copied (the caller may reuse its memory). */
    char small[600];
    memcpy(small, text, sizeof small);
    r = s.ops->send_body(&s, small, sizeof small);
    memset(small, 'X', sizeof small);
    s.ops->send_end(&s);
    CHECK_EQ_INT(fk.ends, 0);
    while (fk.ends == 0 && rounds++ < 200)
        unblock(&s, r == SEND_PENDING && fk.lent ? true : false);
    CHECK_EQ_INT(fk.ends, 1);
    static char want[sizeof noise + 600];
    memcpy(want, noise, sizeof noise);
    memcpy(want + sizeof noise, text, 600);
    check_body(want, sizeof want);
    ev_run_defers(&w.loop);
}

/* The end of the loop turn makes what the handler gave decodable; an event stream is flushed
 * after every send_body. */
static void test_flush(void)
{
    struct http_stream s;
    stream_init(&s, true);
    head(&s, "text/plain", -1);
    CHECK_EQ_INT(s.ops->send_body(&s, text, 5000), SEND_DONE);
    size_t n = inflate_all(fk.got, fk.got_len, dec, sizeof dec, false);
    CHECK(n < 5000); /* held in the encoder */
    ev_run_defers(&w.loop);
    n = inflate_all(fk.got, fk.got_len, dec, sizeof dec, false);
    CHECK(n == 5000 && memcmp(dec, text, 5000) == 0);
    s.ops->send_end(&s);
    check_body(text, 5000);
    ev_run_defers(&w.loop);

    stream_init(&s, true);
    head(&s, "text/event-stream", -1);
    s.ops->send_body(&s, "data: one\n\n", 11);
    n = inflate_all(fk.got, fk.got_len, dec, sizeof dec, false);
    CHECK(n == 11 && !memcmp(dec, "data: one\n\n", 11));
    s.ops->send_end(&s);
    ev_run_defers(&w.loop);
}

static void test_abort_and_close(void)
{
    struct http_stream s;
    stream_init(&s, true);
    head(&s, "text/plain", -1);
    fk.block = true;
    s.ops->send_body(&s, noise, sizeof noise);
    s.ops->abort(&s);
    CHECK_EQ_INT(fk.aborts, 1);
    CHECK(s.ops == &fake_ops);
    ev_run_defers(&w.loop);

    stream_init(&s, true);
    head(&s, "text/plain", -1);
    fk.block = true;
    s.ops->send_body(&s, noise, sizeof noise);
    s.handler->on_close(&s); /* the client is gone */
    CHECK_EQ_INT(fk.closed, 1);
    CHECK(s.ops == &fake_ops && s.handler == &handler_ops);
    ev_run_defers(&w.loop);

    /* Closed after the handler's end, while draining: the handler hears nothing. */
    stream_init(&s, true);
    head(&s, "text/plain", -1);
    fk.block = true;
    s.ops->send_body(&s, noise, sizeof noise);
    s.ops->send_end(&s);
    s.handler->on_close(&s);
    CHECK_EQ_INT(fk.closed, 0);
    CHECK_EQ_INT(fk.ends, 0);
    ev_run_defers(&w.loop);
}

/* A handler that installs its callbacks after its head still hears the codec through the
 * filter (the files handler does this). */
static void test_handler_set_after_head(void)
{
    struct http_stream s;
    stream_init(&s, true);
    head(&s, "text/plain", -1);
    s.handler = &other_ops;
    fk.block = true;
    CHECK_EQ_INT(s.ops->send_body(&s, noise, sizeof noise), SEND_PENDING);
    CHECK(s.handler != &other_ops);
    int rounds = 0;
    while (fk.other_writable == 0 && rounds++ < 100)
        unblock(&s, true);
    CHECK_EQ_INT(fk.other_writable, 1);
    fk.block = false;
    s.ops->send_end(&s);
    unblock(&s, false);
    CHECK_EQ_INT(fk.ends, 1);
    CHECK(s.handler == &other_ops);
    check_body(noise, sizeof noise);
    ev_run_defers(&w.loop);
}

static void test_head_and_identity(void)
{
    struct http_stream s;
    stream_init(&s, true);
    s.req.head = true;
    head(&s, "text/plain", 5000);
    CHECK(!strcmp(fk.ce, "gzip") && fk.content_length == -1);
    CHECK(s.ops == &fake_ops); /* no body, no filter */

    stream_init(&s, false); /* no Accept-Encoding */
    head(&s, "text/plain", 5000);
    CHECK(!fk.ce[0] && !strcmp(fk.vary, "Accept-Encoding") && fk.content_length == 5000);
    CHECK(!strcmp(fk.etag, "\"v1\""));
    CHECK(s.ops == &fake_ops);

    stream_init(&s, true);
    head(&s, "image/png", 5000); /* not listed: as it is, no Vary */
    CHECK(!fk.ce[0] && !fk.vary[0]);
}

int main(void)
{
    w.srv = &srv;
    atomic_store(&srv.log.err_fd, 2);
    atomic_store(&srv.log.level, LOG_ERROR);
    atomic_store(&srv.log.access_fd, -1);
    buf_pool_init(&w.bufs, 4);
    ev_loop_init(&w.loop);
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (char)(x >> 16);
    }
    test_plain();
    test_backpressure();
    test_flush();
    test_abort_and_close();
    test_handler_set_after_head();
    test_head_and_identity();
    compress_worker_fini(&w);
    ev_loop_fini(&w.loop);
    buf_pool_fini(&w.bufs);
    return check_done("test_compress");
}
