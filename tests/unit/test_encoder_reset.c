/* encoder_reset: a used encoder (finished, or left mid-body) encodes the next body from scratch
 * at the new level, decodable on its own; brotli has no reset and says so. */
#include "check.h"
#include "http/encoder.h"

#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

static size_t encode_all(struct encoder *e, const char *in, size_t len, char *out, size_t cap)
{
    size_t used, n, total = 0;
    while (len) {
        enum encoder_result r =
            encoder_push(e, in, len, &used, out + total, cap - total, &n, ENCODER_RUN);
        CHECK(r != ENCODER_ERROR);
        in += used;
        len -= used;
        total += n;
        if (r == ENCODER_ERROR)
            return 0;
    }
    for (;;) {
        enum encoder_result r = encoder_finish(e, out + total, cap - total, &n);
        total += n;
        if (r != ENCODER_FULL)
            break;
    }
    return total;
}

static size_t decode_gzip(const char *in, size_t len, char *out, size_t cap)
{
    z_stream z = {0};
    inflateInit2(&z, 15 + 16);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int r = inflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    inflateEnd(&z);
    return r == Z_STREAM_END ? n : 0;
}

static size_t decode_zstd(const char *in, size_t len, char *out, size_t cap)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_inBuffer ib = {in, len, 0};
    ZSTD_outBuffer ob = {out, cap, 0};
    size_t r = ZSTD_decompressStream(d, &ob, &ib);
    ZSTD_freeDCtx(d);
    return ZSTD_isError(r) || r != 0 ? 0 : ob.pos;
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = "abcdefgh ijklmnop\n"[(i * 7 + seed + i / 64) % 18];
}

static void test_reset(enum encoder_kind kind, int level2)
{
    enum { N = 100000, CAP = 2 * N };
    char *a = malloc(N), *b = malloc(N), *enc = malloc(CAP), *dec = malloc(CAP);
    fill(a, N, 1);
    fill(b, N, 5);
    struct encoder *e = encoder_start(kind, -1);
    CHECK(e != NULL);
    size_t n = encode_all(e, a, N, enc, CAP);
    size_t d = kind == ENCODER_GZIP ? decode_gzip(enc, n, dec, CAP) : decode_zstd(enc, n, dec, CAP);
    CHECK(d == N && memcmp(dec, a, N) == 0);
    /* Reset after a finished body: the next one stands alone, at the new level. */
    CHECK(encoder_reset(e, level2));
    n = encode_all(e, b, N, enc, CAP);
    d = kind == ENCODER_GZIP ? decode_gzip(enc, n, dec, CAP) : decode_zstd(enc, n, dec, CAP);
    CHECK(d == N && memcmp(dec, b, N) == 0);
    /* The new level is in force: the same bytes as a fresh encoder at that level. */
    char *fresh = malloc(CAP);
    struct encoder *e2 = encoder_start(kind, level2);
    size_t n2 = encode_all(e2, b, N, fresh, CAP);
    CHECK(n2 == n && memcmp(fresh, enc, n) == 0);
    encoder_free(e2);
    free(fresh);
    unsigned long long tin, tout;
    encoder_totals(e, &tin, &tout);
    CHECK(tin == N && tout == n);
    /* Reset in the middle of a body (a client that went away). */
    size_t used, m;
    encoder_push(e, a, N / 2, &used, enc, CAP, &m, ENCODER_RUN);
    CHECK(encoder_reset(e, -1));
    n = encode_all(e, a, N, enc, CAP);
    d = kind == ENCODER_GZIP ? decode_gzip(enc, n, dec, CAP) : decode_zstd(enc, n, dec, CAP);
    CHECK(d == N && memcmp(dec, a, N) == 0);
    CHECK(!encoder_reset(e, 99)); /* out of range */
    encoder_free(e);
    free(a);
    free(b);
    free(enc);
    free(dec);
}

int main(void)
{
    test_reset(ENCODER_GZIP, 9);
    test_reset(ENCODER_GZIP, 1);
    test_reset(ENCODER_ZSTD, 19);
    test_reset(ENCODER_ZSTD, 1);
    struct encoder *br = encoder_start(ENCODER_BR, -1);
    CHECK(br && !encoder_reset(br, 4));
    encoder_free(br);
    return check_done("test_encoder_reset");
}
