/* Byte ranges; see range.h. */
#include "http/range.h"

#include "core/httpdate.h"
#include "http/conditional.h"

#include <string.h>
#include <strings.h>

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1*DIGIT, saturating at UINT64_MAX: a huge position is still a syntactically valid one. */
static bool number(const char *s, size_t len, size_t *i, uint64_t *v)
{
    size_t start = *i;
    uint64_t x = 0;
    while (*i < len && digit(s[*i])) {
        unsigned d = (unsigned)(s[*i] - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
        (*i)++;
    }
    *v = x;
    return *i > start;
}

/* One range-spec at s[*i]: int-range or suffix-range. On success *have is false for a spec that
 * is valid but unsatisfiable against `size`. */
static bool range_spec(const char *s, size_t len, size_t *i, uint64_t size,
                       struct http_byte_range *r, bool *have)
{
    uint64_t a, b;
    if (*i < len && s[*i] == '-') { /* suffix-range = "-" suffix-length */
        (*i)++;
        if (!number(s, len, i, &b))
            return false;
        *have = b > 0;
        r->first = b >= size ? 0 : size - b;
        r->last = size - 1;
        return true;
    }
    if (!number(s, len, i, &a) || *i >= len || s[*i] != '-')
        return false;
    (*i)++;
    b = UINT64_MAX;
    if (*i < len && digit(s[*i]) && !number(s, len, i, &b))
        return false;
    if (b < a) /* invalid int-range (RFC 9110 14.1.1) */
        return false;
    *have = a < size;
    r->first = a;
    r->last = b >= size ? size - 1 : b;
    return true;
}

static enum http_range_kind plan_kind(struct http_range_plan *p, enum http_range_kind k)
{
    p->kind = k;
    if (k == HTTP_RANGE_FULL || k == HTTP_RANGE_UNSATISFIABLE)
        p->n = 0;
    return k;
}

enum http_range_kind http_range_plan(const char *s, size_t len, uint64_t size,
                                     struct http_range_plan *p)
{
    p->size = size;
    p->n = 0;
    if (!s || size == 0)
        return plan_kind(p, HTTP_RANGE_FULL);
    while (len && ows(s[0]))
        s++, len--;
    while (len && ows(s[len - 1]))
        len--;
    if (len < 6 || strncasecmp(s, "bytes=", 6) != 0)
        return plan_kind(p, HTTP_RANGE_FULL);
    size_t i = 6, specs = 0;
    uint64_t total = 0;
    for (;;) {
        while (i < len && (ows(s[i]) || s[i] == ','))
            i++;
        if (i == len)
            break;
        if (++specs > HTTP_RANGE_MAX)
            return plan_kind(p, HTTP_RANGE_FULL);
        struct http_byte_range r;
        bool have = false;
        if (!range_spec(s, len, &i, size, &r, &have))
            return plan_kind(p, HTTP_RANGE_FULL);
        while (i < len && ows(s[i]))
            i++;
        if (i < len && s[i] != ',')
            return plan_kind(p, HTTP_RANGE_FULL);
        if (!have)
            continue;
        /* total stays <= size before the add, so it cannot wrap for size < 2^63. */
        total += r.last - r.first + 1;
        if (total > size) /* overlaps that would send more than the file */
            return plan_kind(p, HTTP_RANGE_FULL);
        p->r[p->n++] = r;
    }
    if (!specs)
        return plan_kind(p, HTTP_RANGE_FULL); /* "bytes=" alone: an empty 1#range-spec */
    if (!p->n)
        return plan_kind(p, HTTP_RANGE_UNSATISFIABLE);
    return plan_kind(p, p->n == 1 ? HTTP_RANGE_SINGLE : HTTP_RANGE_MULTI);
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put(p, lit, sizeof(lit) - 1)

size_t http_range_content_range(const struct http_range_plan *p, unsigned i, char *out)
{
    char *o = PUT_LIT(out, "bytes ");
    if (p->kind == HTTP_RANGE_UNSATISFIABLE || i >= p->n) {
        *o++ = '*';
    } else {
        o = put_u64(o, p->r[i].first);
        *o++ = '-';
        o = put_u64(o, p->r[i].last);
    }
    *o++ = '/';
    o = put_u64(o, p->size);
    *o = '\0';
    return (size_t)(o - out);
}

void http_range_boundary(char out[HTTP_RANGE_BOUNDARY_LEN + 1], uint64_t seed)
{
    /* splitmix64 twice: a counter as seed still gives unrelated-looking boundaries. */
    uint64_t x[2];
    for (int k = 0; k < 2; k++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        x[k] = z ^ (z >> 31);
    }
    out[0] = 'g';
    out[1] = 'h';
    for (int j = 0; j < 30; j++) {
        uint64_t w = x[j / 16];
        out[2 + j] = "0123456789abcdef"[(w >> (4 * (j % 16))) & 15];
    }
    out[HTTP_RANGE_BOUNDARY_LEN] = '\0';
}

static bool ctype_fit(const char *ctype, size_t len)
{
    if (!len || len > 1024)
        return false;
    for (size_t i = 0; i < len; i++)
        if (ctype[i] == '\r' || ctype[i] == '\n' || ctype[i] == '\0')
            return false;
    return true;
}

size_t http_range_part_head(const struct http_range_plan *p, unsigned i, const char *boundary,
                            const char *ctype, size_t ctype_len, char *out, size_t cap)
{
    if (i >= p->n || !ctype_fit(ctype, ctype_len))
        return 0;
    size_t blen = strlen(boundary);
    char cr[HTTP_RANGE_CR_MAX];
    size_t crlen = http_range_content_range(p, i, cr);
    size_t need = (i ? 2 : 0) + 2 + blen + 2 + 14 + ctype_len + 2 + 15 + crlen + 4;
    if (!out)
        return need;
    if (need > cap)
        return 0;
    char *o = out;
    if (i)
        o = PUT_LIT(o, "\r\n");
    o = PUT_LIT(o, "--");
    o = put(o, boundary, blen);
    o = PUT_LIT(o, "\r\nContent-Type: ");
    o = put(o, ctype, ctype_len);
    o = PUT_LIT(o, "\r\nContent-Range: ");
    o = put(o, cr, crlen);
    o = PUT_LIT(o, "\r\n\r\n");
    return (size_t)(o - out);
}

size_t http_range_tail(const char *boundary, char *out, size_t cap)
{
    size_t blen = strlen(boundary), need = 2 + 2 + blen + 2 + 2;
    if (!out)
        return need;
    if (need > cap)
        return 0;
    char *o = PUT_LIT(out, "\r\n--");
    o = put(o, boundary, blen);
    PUT_LIT(o, "--\r\n");
    return need;
}

uint64_t http_range_multipart_length(const struct http_range_plan *p, const char *boundary,
                                     const char *ctype, size_t ctype_len)
{
    if (!ctype_fit(ctype, ctype_len))
        return 0;
    uint64_t total = http_range_tail(boundary, NULL, 0);
    for (unsigned i = 0; i < p->n; i++)
        total += http_range_part_head(p, i, boundary, ctype, ctype_len, NULL, 0) +
                 (p->r[i].last - p->r[i].first + 1);
    return total;
}

bool http_if_range(const char *s, size_t len, const char *etag, size_t etag_len,
                   int64_t last_modified, int64_t now)
{
    if (!s)
        return true;
    while (len && ows(s[0]))
        s++, len--;
    while (len && ows(s[len - 1]))
        len--;
    struct http_etag want, cur;
    if (len && (s[0] == '"' || (len > 1 && s[0] == 'W' && s[1] == '/')))
        return etag && http_etag_parse(s, len, &want) && http_etag_parse(etag, etag_len, &cur) &&
               http_etag_strong_eq(&want, &cur);
    int64_t t;
    return last_modified != INT64_MIN && httpdate_parse(s, len, now, &t) && t == last_modified;
}
