/* libFuzzer harness for h1_chunked_decode. The first input byte picks the line and trailer
 * limits and whether a bare LF is refused (crlf_only); the rest is a chunked body. It is decoded
 * three ways: in one feed, split at a point derived from the input, and (when short) one byte at
 * a time, each piece in a buffer of its exact size. All must give the same data, the same
 * outcome and the same consumed count, and every data span must lie inside the piece it came
 * from. A body the strict decoder accepts must decode the same way without crlf_only. */
#include "fuzz.h"
#include "http/h1_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct outcome {
    char *out; /* decoded data, capacity = input length */
    size_t out_len;
    size_t consumed;
    int last;
};

/* Decodes one piece [p, p + len) until it is used up or the body ends or fails. */
static int feed(struct h1_chunked *c, const char *p, size_t len, struct outcome *o)
{
    size_t pos = 0;
    for (;;) {
        size_t used = 12345, dlen = 12345;
        const char *d = (const char *)1;
        int rc = h1_chunked_decode(c, p + pos, len - pos, &used, &d, &dlen);
        INVARIANT(used <= len - pos);
        if (rc == H1_CHUNK_DATA) {
            INVARIANT(dlen > 0 && d >= p + pos && d + dlen == p + pos + used);
            memcpy(o->out + o->out_len, d, dlen);
            o->out_len += dlen;
        } else {
            INVARIANT(d == NULL && dlen == 0);
            INVARIANT(rc == H1_CHUNK_AGAIN || rc == H1_CHUNK_END || rc == H1_CHUNK_ERROR);
            INVARIANT(rc != H1_CHUNK_AGAIN || used == len - pos);
        }
        pos += used;
        o->consumed += used;
        if (rc != H1_CHUNK_DATA)
            return rc;
    }
}

/* Feeds [data, data + len) in pieces of `step` bytes (0: one feed), each copied to a buffer of
 * its exact size; `split` nonzero makes two pieces cut there. */
static void decode(const char *data, size_t len, size_t step, size_t split, uint32_t max_line,
                   uint32_t max_trailer, bool crlf_only, struct outcome *o)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    c.max_line = max_line;
    c.max_trailer = max_trailer;
    c.crlf_only = crlf_only;
    o->out_len = o->consumed = 0;
    o->last = H1_CHUNK_AGAIN;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (step && n > step)
            n = step;
        if (split && off < split && n > split - off)
            n = split - off;
        char *piece = malloc(n);
        memcpy(piece, data + off, n);
        size_t before = o->consumed;
        o->last = feed(&c, piece, n, o);
        free(piece);
        off += o->consumed - before;
        if (o->last != H1_CHUNK_AGAIN)
            break;
    }
    INVARIANT(o->consumed <= len && o->out_len <= len);
}

static void same(const struct outcome *a, const struct outcome *b)
{
    INVARIANT(a->last == b->last && a->consumed == b->consumed && a->out_len == b->out_len);
    INVARIANT(memcmp(a->out, b->out, a->out_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t lines[4] = {0, 3, 16, 100};
    static const uint32_t trailers[4] = {0, 4, 30, 1000};
    if (size == 0)
        return 0;
    uint32_t ml = lines[data[0] & 3], mt = trailers[(data[0] >> 2) & 3];
    bool strict = data[0] & 16; /* crlf_only, as for request bodies */
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    struct outcome whole, other;
    whole.out = malloc(len + 1);
    other.out = malloc(len + 1);

    decode(in, len, 0, 0, ml, mt, strict, &whole);
    INVARIANT(whole.last != H1_CHUNK_AGAIN || whole.consumed == len);
    INVARIANT(whole.last == H1_CHUNK_AGAIN || whole.consumed < len || whole.last == H1_CHUNK_END);

    size_t split = len ? 1 + (data[size / 2] * 257u + size) % len : 0;
    decode(in, len, 0, split, ml, mt, strict, &other);
    same(&whole, &other);
    if (len <= 4096) {
        decode(in, len, 1, 0, ml, mt, strict, &other);
        same(&whole, &other);
    }
    /* What the strict decoder accepts, the lenient one reads the same way. */
    if (strict && whole.last != H1_CHUNK_ERROR) {
        decode(in, len, 0, 0, ml, mt, false, &other);
        same(&whole, &other);
    }
    free(whole.out);
    free(other.out);
    return 0;
}
