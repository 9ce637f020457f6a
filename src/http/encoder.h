/* Content codings for response bodies (RFC 9110 section 8.4.1): gzip (zlib), br (brotli) and
 * zstd behind one streaming interface. The library types stay in encoder.c.
 *
 * Lives in src/http rather than src/serve because every handler that produces a body needs it
 * (proxy, respond, files): handlers depend on http, never on each other.
 *
 * Streaming with bounded memory: the caller owns the output buffer; the encoder never buffers a
 * whole body. One call consumes what input it can and writes what output fits:
 *
 *     size_t used, n;
 *     for (;;) {
 *         int r = encoder_push(enc, in, len, &used, out, cap, &n, ENCODER_RUN);
 *         send(out, n); in += used; len -= used;
 *         if (r == ENCODER_DONE) break;          // all input taken
 *         if (r < 0) fail();                     // ENCODER_FULL: drain and call again
 *     }
 *
 * With ENCODER_FLUSH or ENCODER_FINISH the caller keeps calling with the same mode (and the
 * input not yet consumed) until ENCODER_DONE; then everything pushed so far is decodable by the
 * client (FLUSH) or the stream is complete (FINISH). Between a FLUSH/FINISH that returned FULL and
 * its DONE, the input must not change (brotli and zstd require it).
 *
 * Memory per encoder (library allocations, counted by encoder_memory(); an upper bound of its RSS,
 * which is smaller because brotli and zstd do not touch all they allocate; figures measured by
 * tests/unit/test_encoder.c are in docs/compression.md):
 *   gzip: window 32 KiB, memLevel 8: about 260 KiB at every level;
 *   br:   window 2^ENCODER_BR_LGWIN (512 KiB); about 8 MiB allocated at the default quality 4
 *         (hash tables, block buffers), up to about 40 MiB at quality 9;
 *   zstd: window 2^ENCODER_ZSTD_WINDOWLOG (512 KiB), hash and chain tables capped at 2^19
 *         entries from level 9 on: about 2 MiB at the default level 3.
 * ENCODER_MEM_DEFAULT_MAX bounds every kind at its default level; ENCODER_MEM_MAX every kind at
 * every level encoder_level_valid() accepts. */
#ifndef GH_HTTP_ENCODER_H
#define GH_HTTP_ENCODER_H

#include <stdbool.h>
#include <stddef.h>

/* A content coding. IDENTITY is "no coding"; it has no encoder. */
enum encoder_kind {
    ENCODER_IDENTITY = 0,
    ENCODER_GZIP,
    ENCODER_BR,
    ENCODER_ZSTD,
    ENCODER_KIND_COUNT,
};

enum encoder_flush {
    ENCODER_RUN,    /* compress what comes; output when the library has a block */
    ENCODER_FLUSH,  /* everything pushed so far becomes decodable (SSE, long polls) */
    ENCODER_FINISH, /* end of body: write the trailer */
};

enum encoder_result {
    ENCODER_ERROR = -1,
    ENCODER_DONE = 0, /* all input consumed; for FLUSH/FINISH the flush/trailer is complete */
    ENCODER_FULL = 1, /* the output buffer is full (or the encoder has more): drain, call again */
};

/* The smallest output buffer encoder_push accepts: zlib's sync flush needs more than 6 bytes of
 * room, or it repeats its flush marker for ever. */
#define ENCODER_OUT_MIN 16

/* Window sizes (log2) chosen for bounded memory per stream. */
#define ENCODER_BR_LGWIN 19
#define ENCODER_ZSTD_WINDOWLOG 19
/* Upper bounds of encoder_memory(): at the default levels, and at any valid level. */
#define ENCODER_MEM_DEFAULT_MAX (10u << 20)
#define ENCODER_MEM_MAX (48u << 20)

struct encoder;

/* Level limits: gzip 1-9 (default 5), br 0-11 (default 4), zstd 1-19 (default 3). */
bool encoder_level_valid(enum encoder_kind kind, int level);
int encoder_default_level(enum encoder_kind kind);
/* The token of a coding ("gzip", "br", "zstd", "identity"), for Content-Encoding. */
const char *encoder_kind_name(enum encoder_kind kind);
/* Parse a coding token, case-insensitively ("x-gzip" is gzip); ENCODER_KIND_COUNT if unknown. */
enum encoder_kind encoder_kind_parse(const char *s, size_t len);

/* A new encoder; level < 0 means the kind's default. NULL on an invalid kind or level, or no
 * memory. */
struct encoder *encoder_start(enum encoder_kind kind, int level);

/* Makes a used encoder new for another body at `level` (< 0: the default), keeping the library's
 * allocations. False when its kind has no reset (br) or on error: free it and start another. */
bool encoder_reset(struct encoder *enc, int level);

/* Compress in[0..in_len) into out[0..out_cap), out_cap >= ENCODER_OUT_MIN. *in_used and *out_len
 * say how much was consumed and produced by this call. See the top of this file for the loop. */
enum encoder_result encoder_push(struct encoder *enc, const void *in, size_t in_len,
                                 size_t *in_used, void *out, size_t out_cap, size_t *out_len,
                                 enum encoder_flush flush);
/* encoder_push with no input and ENCODER_FLUSH / ENCODER_FINISH. */
enum encoder_result encoder_flush(struct encoder *enc, void *out, size_t out_cap, size_t *out_len);
enum encoder_result encoder_finish(struct encoder *enc, void *out, size_t out_cap, size_t *out_len);

/* Bytes the encoder holds now (its struct plus the library's allocations). */
size_t encoder_memory(const struct encoder *enc);
/* Total bytes in and out so far (for logs and ratios). */
void encoder_totals(const struct encoder *enc, unsigned long long *in, unsigned long long *out);
enum encoder_kind encoder_kind_of(const struct encoder *enc);

void encoder_free(struct encoder *enc);

#endif
