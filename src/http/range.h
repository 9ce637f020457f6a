/* Byte ranges (RFC 9110 sections 14.1-14.4): the Range field resolved against a representation's
 * length into a plan (200, 206 single, 206 multipart/byteranges, 416), the text that goes between
 * the parts of a multipart body so the parts themselves can be sent with sendfile, and If-Range.
 * Nothing here allocates; the plan is a fixed-size value. */
#ifndef GH_HTTP_RANGE_H
#define GH_HTTP_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* More range-specs than this and the Range field is ignored (200): a defence against range
 * amplification, as is a set whose satisfiable ranges add up to more than the length. */
#define HTTP_RANGE_MAX 16

enum http_range_kind {
    HTTP_RANGE_FULL,          /* 200: no Range, or one ignored (malformed, other unit, defence) */
    HTTP_RANGE_SINGLE,        /* 206 with Content-Range: r[0] */
    HTTP_RANGE_MULTI,         /* 206 multipart/byteranges: r[0..n-1], in the request's order */
    HTTP_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};

struct http_byte_range {
    uint64_t first, last; /* inclusive, last < size */
};

struct http_range_plan {
    enum http_range_kind kind;
    unsigned n; /* satisfiable ranges in r[] */
    uint64_t size;
    struct http_byte_range r[HTTP_RANGE_MAX];
};

/* Resolves a Range field value (NULL: absent) against `size`. `bytes` is matched without regard
 * to case; OWS and empty elements are allowed around the commas (RFC 9110 5.6.1.2), nowhere else.
 * Unsatisfiable range-specs (first-pos >= size, suffix length 0) are dropped; none left: 416.
 * A malformed field, another unit or a zero-length representation: 200. Returns plan->kind. */
enum http_range_kind http_range_plan(const char *s, size_t len, uint64_t size,
                                     struct http_range_plan *plan);

/* "bytes FIRST-LAST/SIZE" for r[i], or "bytes * /SIZE" (without the space) for a 416: the value
 * of Content-Range, NUL-terminated. Returns its length; out needs HTTP_RANGE_CR_MAX bytes. */
#define HTTP_RANGE_CR_MAX 72
size_t http_range_content_range(const struct http_range_plan *plan, unsigned i, char *out);

/* multipart/byteranges. The boundary is "gh" and 30 hex digits derived from `seed` (take it from
 * a per-worker random state). The body is, for i in 0..n-1:
 *     part_head(i) + the bytes r[i].first..r[i].last of the file
 * followed by tail(). part_head(0) starts with "--BOUNDARY", later ones with "\r\n--BOUNDARY";
 * each carries Content-Type (ctype, which must hold no CR, LF or NUL) and Content-Range.
 * The response's Content-Type is "multipart/byteranges; boundary=BOUNDARY". */
#define HTTP_RANGE_BOUNDARY_LEN 32
void http_range_boundary(char out[HTTP_RANGE_BOUNDARY_LEN + 1], uint64_t seed);

/* Writes part i's head into out (at most cap bytes, not NUL-terminated); returns its length, or
 * 0 when cap is too small or ctype is unfit. out NULL: only the length. */
#define HTTP_RANGE_PART_HEAD_MAX(ctype_len) (128 + HTTP_RANGE_BOUNDARY_LEN + (ctype_len))
size_t http_range_part_head(const struct http_range_plan *plan, unsigned i, const char *boundary,
                            const char *ctype, size_t ctype_len, char *out, size_t cap);
/* "\r\n--BOUNDARY--\r\n"; out NULL: only the length. */
size_t http_range_tail(const char *boundary, char *out, size_t cap);
/* The exact Content-Length of the multipart body: every part head, range and the tail; 0 when
 * ctype is unfit. */
uint64_t http_range_multipart_length(const struct http_range_plan *plan, const char *boundary,
                                     const char *ctype, size_t ctype_len);

/* If-Range (RFC 9110 13.1.5): true when the Range may be honoured, false when the full
 * representation must be sent (200). An entity-tag matches by strong comparison with `etag`
 * (NULL: none); an HTTP-date matches only when it equals `last_modified` exactly (seconds;
 * INT64_MIN: none). Anything malformed does not match. A NULL value (no If-Range) is true. */
bool http_if_range(const char *value, size_t len, const char *etag, size_t etag_len,
                   int64_t last_modified, int64_t now);

#endif
