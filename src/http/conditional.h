/* Conditional requests (RFC 9110 section 13): entity-tags (parsing, comparison, generation for
 * files) and the evaluation of If-Match, If-Unmodified-Since, If-None-Match and
 * If-Modified-Since in the order of section 13.2.2. If-Range is in http/range.h. HTTP-dates are
 * in core/httpdate.h. Nothing here allocates. */
#ifndef GH_HTTP_CONDITIONAL_H
#define GH_HTTP_CONDITIONAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE. `opaque` points at the opening quote, `len`
 * counts both quotes. */
struct http_etag {
    const char *opaque;
    size_t len;
    bool weak;
};

/* Parses exactly one entity-tag filling [s, s+len). */
bool http_etag_parse(const char *s, size_t len, struct http_etag *out);

/* Iterates a #entity-tag list (OWS and empty elements between commas are allowed, RFC 9110
 * 5.6.1.2). Returns 1 with *out set and *pos advanced, 0 at the end of the list, -1 when the
 * rest is malformed (the caller treats the field as matching nothing). */
int http_etag_list_next(const char *s, size_t len, size_t *pos, struct http_etag *out);

/* RFC 9110 8.8.3.2: strong = both strong and the opaque tags equal; weak = opaque tags equal. */
bool http_etag_strong_eq(const struct http_etag *a, const struct http_etag *b);
bool http_etag_weak_eq(const struct http_etag *a, const struct http_etag *b);

/* A strong validator for a file: "<hex inode>-<hex size>-<hex mtime in ns>", quotes included.
 * out needs HTTP_ETAG_FILE_MAX bytes (NUL included); returns the length without the NUL. */
#define HTTP_ETAG_FILE_MAX 56
size_t http_etag_file(char *out, uint64_t ino, uint64_t size, int64_t mtime_sec, long mtime_nsec);

/* The request's conditional fields; a NULL pointer is an absent field. Several field lines of
 * one name are passed as one comma-joined value (RFC 9110 5.3). */
struct http_cond_request {
    const char *if_match, *if_none_match, *if_modified_since, *if_unmodified_since;
    size_t if_match_len, if_none_match_len, if_modified_since_len, if_unmodified_since_len;
    bool get_or_head; /* the method is GET or HEAD */
    int64_t now;      /* for two-digit years in obsolete dates */
};

/* The selected representation, which exists (a handler answers 404 before asking). */
struct http_cond_rep {
    const char *etag; /* the ETag it would be sent with, quotes included; NULL: none */
    size_t etag_len;
    int64_t last_modified; /* seconds since the epoch; HTTP_COND_NO_DATE: none */
};
#define HTTP_COND_NO_DATE INT64_MIN

enum http_cond_result {
    HTTP_COND_PROCEED = 0,        /* go on (then Range / If-Range) */
    HTTP_COND_NOT_MODIFIED = 304, /* send 304 with the validators, no body */
    HTTP_COND_FAILED = 412,       /* send 412 Precondition Failed */
};

/* RFC 9110 13.2.2 steps 1-4. Malformed input never yields a 304 and never lets a precondition
 * pass: a malformed If-Match fails (412), a malformed If-None-Match matches nothing, an invalid
 * date (or a list of dates) makes its field ignored. */
enum http_cond_result http_cond_evaluate(const struct http_cond_request *rq,
                                         const struct http_cond_rep *rep);

#endif
