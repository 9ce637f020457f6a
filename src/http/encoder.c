/* Content codings over zlib (gzip format), brotli and zstd. See encoder.h for the calling
 * contract; this file maps it onto each library's streaming call. */
#include "http/encoder.h"
#include "http/token.h"

#include <brotli/encode.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#define ZLIB_CONST /* next_in is const: the caller's bytes are never written */
#include <zlib.h>
#include <zstd.h>

/* gzip: windowBits 15 + 16 selects the gzip wrapper; memLevel 8 is zlib's default (128 KiB of
 * hash tables beside the 64 KiB window). */
#define ENCODER_GZIP_WBITS (15 + 16)
#define ENCODER_GZIP_MEMLEVEL 8
/* zstd: the hash and chain tables of high levels are capped so that the bound holds at every
 * level; below level 9 the level's own values are smaller and stay as they are. */
#define ENCODER_ZSTD_TABLELOG_MAX 19

struct encoder {
    enum encoder_kind kind;
    bool finished;
    size_t lib_mem; /* bytes the library holds, counted by our allocator (gzip, br) */
    unsigned long long total_in, total_out;
    union {
        z_stream gz;
        BrotliEncoderState *br;
        ZSTD_CCtx *zstd;
    } u;
};

/* ---- levels and names ---- */

bool encoder_level_valid(enum encoder_kind kind, int level)
{
    switch (kind) {
    case ENCODER_GZIP:
        return level >= 1 && level <= 9;
    case ENCODER_BR:
        return level >= 0 && level <= 11;
    case ENCODER_ZSTD:
        return level >= 1 && level <= 19;
    default:
        return false;
    }
}

int encoder_default_level(enum encoder_kind kind)
{
    switch (kind) {
    case ENCODER_GZIP:
        return 5;
    case ENCODER_BR:
        return 4;
    case ENCODER_ZSTD:
        return 3;
    default:
        return 0;
    }
}

const char *encoder_kind_name(enum encoder_kind kind)
{
    switch (kind) {
    case ENCODER_GZIP:
        return "gzip";
    case ENCODER_BR:
        return "br";
    case ENCODER_ZSTD:
        return "zstd";
    case ENCODER_IDENTITY:
        return "identity";
    default:
        return NULL;
    }
}

enum encoder_kind encoder_kind_parse(const char *s, size_t len)
{
    if (http_token_eq(s, len, "gzip", 4) || http_token_eq(s, len, "x-gzip", 6))
        return ENCODER_GZIP;
    if (http_token_eq(s, len, "br", 2))
        return ENCODER_BR;
    if (http_token_eq(s, len, "zstd", 4))
        return ENCODER_ZSTD;
    if (http_token_eq(s, len, "identity", 8))
        return ENCODER_IDENTITY;
    return ENCODER_KIND_COUNT;
}

/* ---- counting allocator (zlib and brotli take one; zstd reports its own size) ---- */

/* A header in front of every block remembers its size, so that the free can count it. */
struct encoder_block {
    size_t size;
    max_align_t align[];
};

static void *encoder_alloc(struct encoder *enc, size_t size)
{
    struct encoder_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    enc->lib_mem += size;
    /* cppcheck-suppress memleak ; the block is freed through this pointer (encoder_release) */
    return b->align;
}

static void encoder_release(struct encoder *enc, void *p)
{
    if (!p)
        return;
    struct encoder_block *b =
        (struct encoder_block *)((char *)p - offsetof(struct encoder_block, align));
    enc->lib_mem -= b->size;
    free(b);
}

static voidpf encoder_zalloc(voidpf opaque, uInt items, uInt size)
{
    if (size && items > SIZE_MAX / size)
        return Z_NULL;
    return encoder_alloc(opaque, (size_t)items * size);
}

static void encoder_zfree(voidpf opaque, voidpf p)
{
    encoder_release(opaque, p);
}

static void *encoder_br_alloc(void *opaque, size_t size)
{
    return encoder_alloc(opaque, size);
}

static void encoder_br_free(void *opaque, void *p)
{
    encoder_release(opaque, p);
}

/* ---- start ---- */

static bool encoder_start_gzip(struct encoder *enc, int level)
{
    enc->u.gz.zalloc = encoder_zalloc;
    enc->u.gz.zfree = encoder_zfree;
    enc->u.gz.opaque = enc;
    return deflateInit2(&enc->u.gz, level, Z_DEFLATED, ENCODER_GZIP_WBITS, ENCODER_GZIP_MEMLEVEL,
                        Z_DEFAULT_STRATEGY) == Z_OK;
}

static bool encoder_start_br(struct encoder *enc, int level)
{
    enc->u.br = BrotliEncoderCreateInstance(encoder_br_alloc, encoder_br_free, enc);
    if (!enc->u.br)
        return false;
    return BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_QUALITY, (uint32_t)level) &&
           BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_LGWIN, ENCODER_BR_LGWIN) &&
           BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
}

static bool encoder_zstd_set(ZSTD_CCtx *c, ZSTD_cParameter p, int v)
{
    return !ZSTD_isError(ZSTD_CCtx_setParameter(c, p, v));
}

static bool encoder_zstd_params(ZSTD_CCtx *c, int level)
{
    if (!encoder_zstd_set(c, ZSTD_c_compressionLevel, level) ||
        !encoder_zstd_set(c, ZSTD_c_windowLog, ENCODER_ZSTD_WINDOWLOG))
        return false;
    /* Levels from 9 on use tables of 2^20 entries and more (up to 2^24 at 19). */
    if (level >= 9 && (!encoder_zstd_set(c, ZSTD_c_hashLog, ENCODER_ZSTD_TABLELOG_MAX) ||
                       !encoder_zstd_set(c, ZSTD_c_chainLog, ENCODER_ZSTD_TABLELOG_MAX)))
        return false;
    return true;
}

static bool encoder_start_zstd(struct encoder *enc, int level)
{
    enc->u.zstd = ZSTD_createCCtx();
    return enc->u.zstd && encoder_zstd_params(enc->u.zstd, level);
}

static void encoder_end_library(struct encoder *enc)
{
    switch (enc->kind) {
    case ENCODER_GZIP:
        deflateEnd(&enc->u.gz);
        break;
    case ENCODER_BR:
        if (enc->u.br)
            BrotliEncoderDestroyInstance(enc->u.br);
        break;
    case ENCODER_ZSTD:
        ZSTD_freeCCtx(enc->u.zstd);
        break;
    default:
        break;
    }
}

struct encoder *encoder_start(enum encoder_kind kind, int level)
{
    if (level < 0)
        level = encoder_default_level(kind);
    if (!encoder_level_valid(kind, level))
        return NULL;
    struct encoder *enc = calloc(1, sizeof(*enc));
    if (!enc)
        return NULL;
    enc->kind = kind;
    bool ok = kind == ENCODER_GZIP ? encoder_start_gzip(enc, level)
              : kind == ENCODER_BR ? encoder_start_br(enc, level)
                                   : encoder_start_zstd(enc, level);
    if (ok)
        return enc;
    /* A failed deflateInit2 frees what it took; the others are freed here. */
    if (kind != ENCODER_GZIP)
        encoder_end_library(enc);
    free(enc);
    return NULL;
}

/* A used encoder made new: same kind, the library's memory kept (zlib's deflateReset, zstd's
 * session reset), so a worker that compresses many small responses does not allocate and
 * fault in an encoder's tables for each. Brotli has no reset. */
bool encoder_reset(struct encoder *enc, int level)
{
    if (level < 0)
        level = encoder_default_level(enc->kind);
    if (!encoder_level_valid(enc->kind, level))
        return false;
    enc->finished = false;
    enc->total_in = enc->total_out = 0;
    switch (enc->kind) {
    case ENCODER_GZIP:
        return deflateReset(&enc->u.gz) == Z_OK &&
               deflateParams(&enc->u.gz, level, Z_DEFAULT_STRATEGY) == Z_OK;
    case ENCODER_ZSTD: {
        ZSTD_CCtx *c = enc->u.zstd;
        if (ZSTD_isError(ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters)))
            return false;
        return encoder_zstd_params(c, level);
    }
    default:
        return false;
    }
}

/* ---- push ---- */

static enum encoder_result encoder_push_gzip(struct encoder *enc, const void *in, size_t *in_len,
                                             void *out, size_t *out_len, enum encoder_flush flush)
{
    z_stream *z = &enc->u.gz;
    /* zlib counts in uInt: hand it at most UINT_MAX at a time; the caller loops anyway. */
    uInt ain = *in_len > UINT_MAX ? UINT_MAX : (uInt)*in_len;
    uInt aout = *out_len > UINT_MAX ? UINT_MAX : (uInt)*out_len;
    z->next_in = (const Bytef *)in;
    z->avail_in = ain;
    z->next_out = out;
    z->avail_out = aout;
    int zf = flush == ENCODER_FINISH  ? Z_FINISH
             : flush == ENCODER_FLUSH ? Z_SYNC_FLUSH
                                      : Z_NO_FLUSH;
    int r = deflate(z, zf);
    *in_len = ain - z->avail_in;
    *out_len = aout - z->avail_out;
    if (r == Z_STREAM_END)
        return ENCODER_DONE;
    /* Z_BUF_ERROR: nothing could be done, i.e. a flush repeated after it completed. */
    if (r != Z_OK && r != Z_BUF_ERROR)
        return ENCODER_ERROR;
    if (flush == ENCODER_FINISH || z->avail_in != 0)
        return ENCODER_FULL;
    if (flush == ENCODER_RUN)
        return ENCODER_DONE; /* what zlib keeps comes out with later input or the flush */
    /* A flush is complete when nothing is pending, even if it filled the buffer exactly: asking
     * again would only add another empty sync block (and, with an exact fit, never end). */
    unsigned pending = 0;
    int bits = 0;
    deflatePending(z, &pending, &bits);
    return pending || bits ? ENCODER_FULL : ENCODER_DONE;
}

static enum encoder_result encoder_push_br(struct encoder *enc, const void *in, size_t *in_len,
                                           void *out, size_t *out_len, enum encoder_flush flush)
{
    size_t ain = *in_len, aout = *out_len;
    const uint8_t *nin = in;
    uint8_t *nout = out;
    BrotliEncoderOperation op = flush == ENCODER_FINISH  ? BROTLI_OPERATION_FINISH
                                : flush == ENCODER_FLUSH ? BROTLI_OPERATION_FLUSH
                                                         : BROTLI_OPERATION_PROCESS;
    BROTLI_BOOL ok = BrotliEncoderCompressStream(enc->u.br, op, &ain, &nin, &aout, &nout, NULL);
    *in_len -= ain;
    *out_len -= aout;
    if (!ok)
        return ENCODER_ERROR;
    if (flush == ENCODER_FINISH)
        return BrotliEncoderIsFinished(enc->u.br) ? ENCODER_DONE : ENCODER_FULL;
    if (ain != 0 || BrotliEncoderHasMoreOutput(enc->u.br))
        return ENCODER_FULL;
    return ENCODER_DONE;
}

static enum encoder_result encoder_push_zstd(struct encoder *enc, const void *in, size_t *in_len,
                                             void *out, size_t *out_len, enum encoder_flush flush)
{
    ZSTD_inBuffer ib = {in, *in_len, 0};
    ZSTD_outBuffer ob = {out, *out_len, 0};
    ZSTD_EndDirective d = flush == ENCODER_FINISH  ? ZSTD_e_end
                          : flush == ENCODER_FLUSH ? ZSTD_e_flush
                                                   : ZSTD_e_continue;
    size_t left = ZSTD_compressStream2(enc->u.zstd, &ob, &ib, d);
    *in_len = ib.pos;
    *out_len = ob.pos;
    if (ZSTD_isError(left))
        return ENCODER_ERROR;
    if (ib.pos != ib.size)
        return ENCODER_FULL;
    /* For flush and end the return value is what is still to be written out. */
    if (flush != ENCODER_RUN && left != 0)
        return ENCODER_FULL;
    return ENCODER_DONE;
}

enum encoder_result encoder_push(struct encoder *enc, const void *in, size_t in_len,
                                 size_t *in_used, void *out, size_t out_cap, size_t *out_len,
                                 enum encoder_flush flush)
{
    *in_used = 0;
    *out_len = 0;
    if (enc->finished)
        return in_len ? ENCODER_ERROR : ENCODER_DONE;
    if (out_cap < ENCODER_OUT_MIN)
        return ENCODER_ERROR;
    if (!in)
        in_len = 0;
    size_t used = in_len, produced = out_cap;
    enum encoder_result r;
    switch (enc->kind) {
    case ENCODER_GZIP:
        r = encoder_push_gzip(enc, in, &used, out, &produced, flush);
        break;
    case ENCODER_BR:
        r = encoder_push_br(enc, in, &used, out, &produced, flush);
        break;
    case ENCODER_ZSTD:
        r = encoder_push_zstd(enc, in, &used, out, &produced, flush);
        break;
    default:
        return ENCODER_ERROR;
    }
    if (r == ENCODER_ERROR)
        return r;
    *in_used = used;
    *out_len = produced;
    enc->total_in += used;
    enc->total_out += produced;
    if (r == ENCODER_DONE && flush == ENCODER_FINISH)
        enc->finished = true;
    return r;
}

enum encoder_result encoder_flush(struct encoder *enc, void *out, size_t out_cap, size_t *out_len)
{
    size_t used;
    return encoder_push(enc, NULL, 0, &used, out, out_cap, out_len, ENCODER_FLUSH);
}

enum encoder_result encoder_finish(struct encoder *enc, void *out, size_t out_cap, size_t *out_len)
{
    size_t used;
    return encoder_push(enc, NULL, 0, &used, out, out_cap, out_len, ENCODER_FINISH);
}

/* ---- accounting and end ---- */

size_t encoder_memory(const struct encoder *enc)
{
    size_t lib = enc->kind == ENCODER_ZSTD ? ZSTD_sizeof_CCtx(enc->u.zstd) : enc->lib_mem;
    return sizeof(*enc) + lib;
}

void encoder_totals(const struct encoder *enc, unsigned long long *in, unsigned long long *out)
{
    *in = enc->total_in;
    *out = enc->total_out;
}

enum encoder_kind encoder_kind_of(const struct encoder *enc)
{
    return enc->kind;
}

void encoder_free(struct encoder *enc)
{
    if (!enc)
        return;
    encoder_end_library(enc);
    free(enc);
}
