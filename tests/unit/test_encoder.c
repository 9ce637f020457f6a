/* Unit tests for http/encoder: every body each encoder produces is decoded with the library's
 * own decoder (zlib inflate, BrotliDecoder, ZSTD_decompressStream) and compared byte for byte
 * with what went in. Covers tiny output buffers (the FULL/drain loop), a flush mid-stream making
 * the prefix decodable, many small pushes, the empty body, and 48 MiB streamed through with the
 * encoder's memory checked against its bound at every step. */
#include "check.h"
#include "http/encoder.h"

#include <brotli/decode.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

static const enum encoder_kind kinds[] = {ENCODER_GZIP, ENCODER_BR, ENCODER_ZSTD};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* ---- a deterministic, text-like byte stream (compressible, not trivially) ---- */

struct gen {
    uint64_t state;
    const char *word;
};

static const char *const gen_words[] = {
    "the ",   "quick ",   "brown ", "fox ",      "jumps ",    "over ",  "lazy ",
    "dog ",   "{\"id\":", "42,",    "\"name\":", "\"gate\",", "house ", "edge ",
    "proxy ", "\n",       "data: ", "event ",    "<div>",     "</div>",
};

static void gen_init(struct gen *g, uint64_t seed)
{
    g->state = seed * 6364136223846793005ull + 1442695040888963407ull;
    g->word = "";
}

static void gen_fill(struct gen *g, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!*g->word) {
            g->state = g->state * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t r = g->state >> 33;
            /* One word in 16 is a random byte run, so the stream is not a pure dictionary. */
            g->word = gen_words[r % (sizeof(gen_words) / sizeof(gen_words[0]))];
            if ((r >> 8) % 16 == 0) {
                buf[i] = (uint8_t)(r >> 16);
                continue;
            }
        }
        buf[i] = (uint8_t)*g->word++;
    }
}

/* ---- a streaming decoder that checks its output against a generator ---- */

struct dec {
    enum encoder_kind kind;
    z_stream z;
    BrotliDecoderState *br;
    ZSTD_DStream *zs;
    struct gen expect;
    size_t got;    /* decoded bytes so far */
    bool mismatch; /* a decoded byte differed from the expected stream */
    bool error;    /* the decoder refused the input */
    bool ended;    /* the decoder saw the end of the stream */
};

static void dec_init(struct dec *d, enum encoder_kind kind, uint64_t seed)
{
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    gen_init(&d->expect, seed);
    if (kind == ENCODER_GZIP)
        CHECK(inflateInit2(&d->z, 15 + 16) == Z_OK);
    else if (kind == ENCODER_BR)
        CHECK((d->br = BrotliDecoderCreateInstance(NULL, NULL, NULL)) != NULL);
    else
        CHECK((d->zs = ZSTD_createDStream()) != NULL);
}

static void dec_check(struct dec *d, const uint8_t *out, size_t n)
{
    uint8_t want[4096];
    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof(want) ? n - off : sizeof(want);
        gen_fill(&d->expect, want, k);
        if (memcmp(want, out + off, k) != 0)
            d->mismatch = true;
        off += k;
    }
    d->got += n;
}

/* Decode everything `in` holds; after it, d->got is all the decoder could give. */
static void dec_feed(struct dec *d, const uint8_t *in, size_t len)
{
    uint8_t out[16384];
    if (d->kind == ENCODER_GZIP) {
        d->z.next_in = (Bytef *)in;
        d->z.avail_in = (uInt)len;
        for (;;) {
            d->z.next_out = out;
            d->z.avail_out = sizeof(out);
            int r = inflate(&d->z, Z_SYNC_FLUSH);
            dec_check(d, out, sizeof(out) - d->z.avail_out);
            if (r == Z_STREAM_END)
                d->ended = true;
            else if (r != Z_OK && r != Z_BUF_ERROR)
                d->error = true;
            if (r != Z_OK || d->z.avail_out != 0)
                break;
        }
        if (d->ended && d->z.avail_in)
            d->error = true; /* bytes after the trailer */
    } else if (d->kind == ENCODER_BR) {
        size_t ain = len;
        const uint8_t *nin = in;
        for (;;) {
            size_t aout = sizeof(out);
            uint8_t *nout = out;
            BrotliDecoderResult r =
                BrotliDecoderDecompressStream(d->br, &ain, &nin, &aout, &nout, NULL);
            dec_check(d, out, sizeof(out) - aout);
            if (r == BROTLI_DECODER_RESULT_SUCCESS)
                d->ended = true;
            if (r == BROTLI_DECODER_RESULT_ERROR)
                d->error = true;
            if (r != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT)
                break;
        }
        if (d->ended && ain)
            d->error = true;
    } else {
        ZSTD_inBuffer ib = {in, len, 0};
        for (;;) {
            ZSTD_outBuffer ob = {out, sizeof(out), 0};
            size_t r = ZSTD_decompressStream(d->zs, &ob, &ib);
            dec_check(d, out, ob.pos);
            if (ZSTD_isError(r)) {
                d->error = true;
                break;
            }
            if (r == 0)
                d->ended = true;
            if (ib.pos == ib.size && ob.pos < ob.size)
                break;
        }
    }
}

static void dec_free(struct dec *d)
{
    if (d->kind == ENCODER_GZIP)
        inflateEnd(&d->z);
    BrotliDecoderDestroyInstance(d->br);
    ZSTD_freeDStream(d->zs);
}

/* ---- pushing through an encoder, draining into a decoder ---- */

struct pipe {
    struct encoder *enc;
    struct dec dec;
    size_t out_cap;    /* output buffer the encoder may fill per call */
    size_t max_mem;    /* the most encoder_memory() said at any point */
    size_t calls_full; /* how often the encoder asked to be drained */
};

static bool pipe_push(struct pipe *p, const uint8_t *in, size_t len, enum encoder_flush flush)
{
    uint8_t out[65536];
    size_t cap = p->out_cap < sizeof(out) ? p->out_cap : sizeof(out);
    for (int guard = 0; guard < 10000000; guard++) {
        size_t used = 0, n = 0;
        enum encoder_result r = encoder_push(p->enc, in, len, &used, out, cap, &n, flush);
        if (r == ENCODER_ERROR)
            return false;
        if (n > cap || used > len)
            return false;
        dec_feed(&p->dec, out, n);
        size_t mem = encoder_memory(p->enc);
        if (mem > p->max_mem)
            p->max_mem = mem;
        if (used) /* in may be NULL (flush, finish) */
            in += used;
        len -= used;
        if (r == ENCODER_DONE)
            return len == 0;
        p->calls_full++;
    }
    return false;
}

static void pipe_open(struct pipe *p, enum encoder_kind kind, int level, size_t out_cap,
                      uint64_t seed)
{
    memset(p, 0, sizeof(*p));
    p->enc = encoder_start(kind, level);
    CHECK(p->enc != NULL);
    p->out_cap = out_cap;
    dec_init(&p->dec, kind, seed);
}

static void pipe_close(struct pipe *p)
{
    encoder_free(p->enc);
    dec_free(&p->dec);
}

/* Push `total` generated bytes in pieces of `piece`, then finish; the decoder must see them all
 * and the end of the stream. */
static void roundtrip(enum encoder_kind kind, int level, size_t total, size_t piece, size_t out_cap)
{
    struct pipe p;
    struct gen g;
    uint8_t *buf = malloc(piece ? piece : 1);
    pipe_open(&p, kind, level, out_cap, total + piece);
    gen_init(&g, total + piece);
    bool ok = true;
    for (size_t off = 0; off < total && ok; off += piece) {
        size_t k = total - off < piece ? total - off : piece;
        gen_fill(&g, buf, k);
        ok = pipe_push(&p, buf, k, ENCODER_RUN);
    }
    CHECK(ok);
    CHECK(pipe_push(&p, NULL, 0, ENCODER_FINISH));
    CHECK(!p.dec.error);
    CHECK(!p.dec.mismatch);
    CHECK(p.dec.ended);
    CHECK_EQ_INT(p.dec.got, total);
    if (p.dec.got != total || p.dec.error || !p.dec.ended)
        fprintf(stderr, "  roundtrip %s level %d total %zu piece %zu cap %zu\n",
                encoder_kind_name(kind), level, total, piece, out_cap);
    pipe_close(&p);
    free(buf);
}

static void test_roundtrip(void)
{
    for (size_t i = 0; i < NKINDS; i++) {
        roundtrip(kinds[i], -1, 1 << 20, 16384, 65536);
        roundtrip(kinds[i], -1, 300000, 65536, 16); /* tiny output buffer: many FULL turns */
        roundtrip(kinds[i], -1, 1, 1, ENCODER_OUT_MIN);
    }
    /* Every valid level works, including the bounds. */
    for (int l = 1; l <= 9; l++)
        roundtrip(ENCODER_GZIP, l, 100000, 4096, 4096);
    for (int l = 0; l <= 11; l++)
        roundtrip(ENCODER_BR, l, 100000, 4096, 4096);
    for (int l = 1; l <= 19; l++)
        roundtrip(ENCODER_ZSTD, l, 100000, 4096, 4096);
}

static void test_tiny_output_drains(void)
{
    /* With the smallest output buffer the encoder must ask to be drained rather than lose
     * bytes; a smaller one is refused. */
    for (size_t i = 0; i < NKINDS; i++) {
        struct pipe p;
        uint8_t data[20000];
        struct gen g;
        gen_init(&g, 9);
        gen_fill(&g, data, sizeof(data));
        pipe_open(&p, kinds[i], -1, ENCODER_OUT_MIN, 9);
        CHECK(pipe_push(&p, data, sizeof(data), ENCODER_FINISH));
        CHECK(p.calls_full > 0);
        uint8_t small[ENCODER_OUT_MIN];
        size_t used, n;
        CHECK(encoder_push(p.enc, data, 10, &used, small, ENCODER_OUT_MIN - 1, &n, ENCODER_RUN) ==
              ENCODER_ERROR);
        CHECK(p.dec.ended && !p.dec.error && !p.dec.mismatch);
        CHECK_EQ_INT(p.dec.got, sizeof(data));
        pipe_close(&p);
    }
}

static void test_many_small_pushes(void)
{
    for (size_t i = 0; i < NKINDS; i++) {
        roundtrip(kinds[i], -1, 20000, 1, 65536);
        roundtrip(kinds[i], -1, 50000, 3, 100);
    }
}

static void test_empty_body(void)
{
    for (size_t i = 0; i < NKINDS; i++) {
        struct pipe p;
        pipe_open(&p, kinds[i], -1, 65536, 1);
        uint8_t out[256];
        size_t n = 0;
        CHECK(encoder_finish(p.enc, out, sizeof(out), &n) == ENCODER_DONE);
        CHECK(n > 0); /* a valid empty stream still has a header / trailer */
        dec_feed(&p.dec, out, n);
        CHECK(p.dec.ended && !p.dec.error);
        CHECK_EQ_INT(p.dec.got, 0);
        /* After the end: finishing again is harmless, more input is an error. */
        CHECK(encoder_finish(p.enc, out, sizeof(out), &n) == ENCODER_DONE && n == 0);
        size_t used;
        CHECK(encoder_push(p.enc, "x", 1, &used, out, sizeof(out), &n, ENCODER_RUN) ==
              ENCODER_ERROR);
        pipe_close(&p);
    }
}

/* A server-sent event pushed and flushed must reach the client whole, before the next one. */
static void test_flush_makes_prefix_decodable(void)
{
    for (size_t i = 0; i < NKINDS; i++) {
        for (size_t cap = ENCODER_OUT_MIN; cap <= 65536; cap *= 32) {
            struct pipe p;
            struct gen g;
            uint8_t ev[300];
            pipe_open(&p, kinds[i], -1, cap, 77);
            gen_init(&g, 77);
            size_t pushed = 0;
            for (int e = 0; e < 5; e++) {
                size_t k = 50 + (size_t)e * 40;
                gen_fill(&g, ev, k);
                CHECK(pipe_push(&p, ev, k, ENCODER_RUN));
                pushed += k;
                CHECK(pipe_push(&p, NULL, 0, ENCODER_FLUSH));
                CHECK_EQ_INT(p.dec.got, pushed);
                CHECK(!p.dec.ended && !p.dec.error && !p.dec.mismatch);
                /* A second flush with nothing new is harmless. */
                CHECK(pipe_push(&p, NULL, 0, ENCODER_FLUSH));
                CHECK_EQ_INT(p.dec.got, pushed);
            }
            /* Input given with the flush itself is flushed too. */
            gen_fill(&g, ev, 123);
            CHECK(pipe_push(&p, ev, 123, ENCODER_FLUSH));
            pushed += 123;
            CHECK_EQ_INT(p.dec.got, pushed);
            CHECK(pipe_push(&p, NULL, 0, ENCODER_FINISH));
            CHECK(p.dec.ended && !p.dec.error && !p.dec.mismatch);
            CHECK_EQ_INT(p.dec.got, pushed);
            pipe_close(&p);
        }
    }
}

/* 48 MiB through each encoder at its default level: the decoder gets every byte back, the
 * output is smaller than the input, and the encoder never holds more than its bound. */
static void test_48mib_bounded(void)
{
    const size_t total = 48u << 20, piece = 16384;
    /* Per kind at the default level (measured, with headroom): see docs/compression.md. */
    const size_t bound[] = {
        [ENCODER_GZIP] = 512u << 10, [ENCODER_BR] = 10u << 20, [ENCODER_ZSTD] = 3u << 20};
    for (size_t i = 0; i < NKINDS; i++) {
        struct pipe p;
        struct gen g;
        uint8_t buf[16384];
        pipe_open(&p, kinds[i], -1, 16384, 48);
        gen_init(&g, 48);
        bool ok = true;
        for (size_t off = 0; off < total && ok; off += piece) {
            gen_fill(&g, buf, piece);
            /* Flush every 4 MiB, as a long response with pauses would. */
            ok = pipe_push(&p, buf, piece, off % (4u << 20) == 0 ? ENCODER_FLUSH : ENCODER_RUN);
        }
        CHECK(ok);
        CHECK(pipe_push(&p, NULL, 0, ENCODER_FINISH));
        CHECK(p.dec.ended && !p.dec.error && !p.dec.mismatch);
        CHECK_EQ_INT(p.dec.got, total);
        unsigned long long tin, tout;
        encoder_totals(p.enc, &tin, &tout);
        CHECK_EQ_INT(tin, total);
        CHECK(tout < tin / 2);
        CHECK(p.max_mem <= bound[kinds[i]]);
        if (p.max_mem > bound[kinds[i]])
            fprintf(stderr, "  %s holds %zu\n", encoder_kind_name(kinds[i]), p.max_mem);
        CHECK(p.max_mem <= ENCODER_MEM_DEFAULT_MAX);
        printf("encoder %-4s level %d: 48 MiB -> %llu bytes, encoder memory max %zu KiB\n",
               encoder_kind_name(kinds[i]), encoder_default_level(kinds[i]), tout, p.max_mem >> 10);
        pipe_close(&p);
    }
}

/* The bound documented in encoder.h holds at every valid level, after real input. */
static void test_memory_bound_every_level(void)
{
    uint8_t data[1 << 20];
    struct gen g;
    gen_init(&g, 5);
    gen_fill(&g, data, sizeof(data));
    for (size_t i = 0; i < NKINDS; i++) {
        for (int l = 0; l <= 19; l++) {
            if (!encoder_level_valid(kinds[i], l))
                continue;
            struct pipe p;
            pipe_open(&p, kinds[i], l, 65536, 5);
            CHECK(pipe_push(&p, data, sizeof(data), ENCODER_FINISH));
            CHECK(p.dec.ended && !p.dec.mismatch);
            CHECK(p.max_mem <= ENCODER_MEM_MAX);
            if (l == encoder_default_level(kinds[i]))
                CHECK(p.max_mem <= ENCODER_MEM_DEFAULT_MAX);
            printf("%s%s:%d=%zuK",
                   l == 0 || (l == 1 && kinds[i] != ENCODER_BR) ? "encoder memory by level: " : " ",
                   encoder_kind_name(kinds[i]), l, p.max_mem >> 10);
            pipe_close(&p);
        }
        printf("\n");
    }
}

static void test_levels_and_names(void)
{
    CHECK(encoder_start(ENCODER_GZIP, 0) == NULL);
    CHECK(encoder_start(ENCODER_GZIP, 10) == NULL);
    CHECK(encoder_start(ENCODER_BR, 12) == NULL);
    CHECK(encoder_start(ENCODER_ZSTD, 0) == NULL);
    CHECK(encoder_start(ENCODER_ZSTD, 20) == NULL);
    CHECK(encoder_start(ENCODER_IDENTITY, -1) == NULL);
    CHECK(encoder_start(ENCODER_KIND_COUNT, -1) == NULL);
    CHECK_EQ_INT(encoder_default_level(ENCODER_GZIP), 5);
    CHECK_EQ_INT(encoder_default_level(ENCODER_BR), 4);
    CHECK_EQ_INT(encoder_default_level(ENCODER_ZSTD), 3);
    CHECK(encoder_kind_parse("GZip", 4) == ENCODER_GZIP);
    CHECK(encoder_kind_parse("x-gzip", 6) == ENCODER_GZIP);
    CHECK(encoder_kind_parse("BR", 2) == ENCODER_BR);
    CHECK(encoder_kind_parse("zstd", 4) == ENCODER_ZSTD);
    CHECK(encoder_kind_parse("identity", 8) == ENCODER_IDENTITY);
    CHECK(encoder_kind_parse("deflate", 7) == ENCODER_KIND_COUNT);
    CHECK(encoder_kind_parse("gzi", 3) == ENCODER_KIND_COUNT);
    CHECK(!strcmp(encoder_kind_name(ENCODER_BR), "br"));
    struct encoder *e = encoder_start(ENCODER_ZSTD, -1);
    CHECK(e && encoder_kind_of(e) == ENCODER_ZSTD);
    encoder_free(e);
    encoder_free(NULL);
}

/* RSS of one encoder per kind at its default level, after 4 MiB went through (so that its
 * window and tables are touched). Measured in a fresh child each, so the heap of the other tests
 * does not hide it. Printed, not asserted: RSS depends on the allocator. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void report_rss(void)
{
    for (size_t i = 0; i < NKINDS; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            static uint8_t in[65536], out[65536];
            struct gen g;
            gen_init(&g, 3);
            long before = rss_kib();
            struct encoder *e = encoder_start(kinds[i], -1);
            for (int k = 0; k < 64 && e; k++) {
                gen_fill(&g, in, sizeof(in));
                size_t used, n, off = 0;
                enum encoder_result r;
                do {
                    r = encoder_push(e, in + off, sizeof(in) - off, &used, out, sizeof(out), &n,
                                     ENCODER_RUN);
                    off += used;
                } while (r == ENCODER_FULL);
            }
            long after = rss_kib();
            printf("encoder %-4s level %d: RSS +%ld KiB, counted %zu KiB\n",
                   encoder_kind_name(kinds[i]), encoder_default_level(kinds[i]), after - before,
                   e ? encoder_memory(e) >> 10 : 0);
            fflush(stdout);
            _exit(e ? 0 : 1);
        }
        int st = 0;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

int main(void)
{
    test_levels_and_names();
    test_empty_body();
    test_tiny_output_drains();
    test_many_small_pushes();
    test_flush_makes_prefix_decodable();
    test_roundtrip();
    test_memory_bound_every_level();
    test_48mib_bounded();
    report_rss();
    return check_done("test_encoder");
}
