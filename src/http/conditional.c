/* Conditional requests; see conditional.h. */
#include "http/conditional.h"

#include "core/httpdate.h"

#include <string.h>

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* etagc = %x21 / %x23-7E / obs-text */
static bool etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

/* One entity-tag at s[*pos]; advances *pos past it. */
static bool etag_at(const char *s, size_t len, size_t *pos, struct http_etag *out)
{
    size_t i = *pos;
    bool weak = false;
    if (len - i >= 2 && s[i] == 'W' && s[i + 1] == '/') {
        weak = true;
        i += 2;
    }
    if (i >= len || s[i] != '"')
        return false;
    size_t start = i++;
    while (i < len && etagc((unsigned char)s[i]))
        i++;
    if (i >= len || s[i] != '"')
        return false;
    i++;
    *out = (struct http_etag){s + start, i - start, weak};
    *pos = i;
    return true;
}

bool http_etag_parse(const char *s, size_t len, struct http_etag *out)
{
    size_t pos = 0;
    return etag_at(s, len, &pos, out) && pos == len;
}

int http_etag_list_next(const char *s, size_t len, size_t *pos, struct http_etag *out)
{
    size_t i = *pos;
    while (i < len && (ows(s[i]) || s[i] == ','))
        i++;
    if (i == len) {
        *pos = i;
        return 0;
    }
    if (!etag_at(s, len, &i, out))
        return -1;
    while (i < len && ows(s[i]))
        i++;
    if (i < len && s[i] != ',')
        return -1;
    *pos = i;
    return 1;
}

static bool opaque_eq(const struct http_etag *a, const struct http_etag *b)
{
    return a->len == b->len && memcmp(a->opaque, b->opaque, a->len) == 0;
}

bool http_etag_strong_eq(const struct http_etag *a, const struct http_etag *b)
{
    return !a->weak && !b->weak && opaque_eq(a, b);
}

bool http_etag_weak_eq(const struct http_etag *a, const struct http_etag *b)
{
    return opaque_eq(a, b);
}

static char *put_hex(char *p, uint64_t v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

size_t http_etag_file(char *out, uint64_t ino, uint64_t size, int64_t mtime_sec, long mtime_nsec)
{
    /* Two's complement wrap for mtimes before 1970: still unique per value. */
    uint64_t ns = (uint64_t)mtime_sec * 1000000000u + (uint64_t)mtime_nsec;
    char *p = out;
    *p++ = '"';
    p = put_hex(p, ino);
    *p++ = '-';
    p = put_hex(p, size);
    *p++ = '-';
    p = put_hex(p, ns);
    *p++ = '"';
    *p = '\0';
    return (size_t)(p - out);
}

static bool is_star(const char *s, size_t len)
{
    while (len && ows(s[0]))
        s++, len--;
    while (len && ows(s[len - 1]))
        len--;
    return len == 1 && s[0] == '*';
}

enum match { MATCH_NONE, MATCH_FOUND, MATCH_MALFORMED };

/* Does the list hold a tag equal to the current one (strong or weak comparison)? */
static enum match list_match(const char *s, size_t len, const struct http_cond_rep *rep,
                             bool strong)
{
    struct http_etag cur, t;
    bool have = rep->etag && http_etag_parse(rep->etag, rep->etag_len, &cur);
    size_t pos = 0;
    int r;
    while ((r = http_etag_list_next(s, len, &pos, &t)) > 0)
        if (have && (strong ? http_etag_strong_eq(&t, &cur) : http_etag_weak_eq(&t, &cur)))
            return MATCH_FOUND;
    return r < 0 ? MATCH_MALFORMED : MATCH_NONE;
}

/* The field's date, or false when it is not one valid HTTP-date (then the field is ignored). */
static bool field_date(const char *s, size_t len, int64_t now, int64_t *t)
{
    return s && httpdate_parse(s, len, now, t);
}

enum http_cond_result http_cond_evaluate(const struct http_cond_request *rq,
                                         const struct http_cond_rep *rep)
{
    int64_t t;
    bool has_date = rep->last_modified != HTTP_COND_NO_DATE;
    /* Step 1: If-Match; "*" is true because the representation exists. */
    if (rq->if_match) {
        if (!is_star(rq->if_match, rq->if_match_len) &&
            list_match(rq->if_match, rq->if_match_len, rep, true) != MATCH_FOUND)
            return HTTP_COND_FAILED;
    } else if (has_date &&
               field_date(rq->if_unmodified_since, rq->if_unmodified_since_len, rq->now, &t)) {
        /* Step 2: If-Unmodified-Since, only without If-Match. */
        if (rep->last_modified > t)
            return HTTP_COND_FAILED;
    }
    /* Step 3: If-None-Match, weak comparison. */
    if (rq->if_none_match) {
        bool match =
            is_star(rq->if_none_match, rq->if_none_match_len) ||
            list_match(rq->if_none_match, rq->if_none_match_len, rep, false) == MATCH_FOUND;
        if (match)
            return rq->get_or_head ? HTTP_COND_NOT_MODIFIED : HTTP_COND_FAILED;
        return HTTP_COND_PROCEED;
    }
    /* Step 4: If-Modified-Since, GET/HEAD only, only without If-None-Match. */
    if (rq->get_or_head && has_date &&
        field_date(rq->if_modified_since, rq->if_modified_since_len, rq->now, &t) &&
        rep->last_modified <= t)
        return HTTP_COND_NOT_MODIFIED;
    return HTTP_COND_PROCEED;
}
