/* One-shot gzip decoding for the unit tests of the compress filter and the encoder: `in` into
 * `out`, with zlib's result of the single inflate call (Z_STREAM_END: the stream is complete;
 * Z_OK: a flushed prefix). Returns the bytes decoded. */
#ifndef GH_TEST_GUNZIP_H
#define GH_TEST_GUNZIP_H

#include <stddef.h>
#include <zlib.h>

static inline size_t gunzip(const char *in, size_t len, char *out, size_t cap, int *result)
{
    z_stream z = {0};
    inflateInit2(&z, 15 + 16);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    *result = inflate(&z, Z_SYNC_FLUSH);
    size_t n = cap - z.avail_out;
    inflateEnd(&z);
    return n;
}

#endif
