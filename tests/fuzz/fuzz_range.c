/* libFuzzer harness for the Range parser and plan (http/range.h), If-Range, entity-tag lists
 * (http/conditional.h) and HTTP-dates (core/httpdate.h). The first 8 bytes choose the
 * representation length (small lengths are made common: the interesting edges are near 0);
 * the rest is the field value, copied to a buffer of its exact size.
 *
 * Checked: the kind and the count agree; every range lies within the length, first <= last;
 * the ranges add up to no more than the length (amplification defence) and there are at most
 * HTTP_RANGE_MAX; Content-Range fits its buffer and reads back as the range; every part head
 * is as long as announced and written whole; the multipart Content-Length equals the bytes the
 * part generator and the tail produce plus the ranges; a date that parses formats back to
 * itself; an entity-tag list iterator always makes progress and stays inside the value. */
#include "fuzz.h"
#include "core/httpdate.h"
#include "http/conditional.h"
#include "http/range.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t pick_length(const uint8_t *d)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | d[i];
    switch (d[0] & 3) {
    case 0:
        return v % 64; /* tiny: edges at 0, 1 */
    case 1:
        return v % 100000;
    case 2:
        return v & ((1ULL << 40) - 1); /* large files, above 4 GiB */
    default:
        return v; /* anything, up to UINT64_MAX */
    }
}

static void check_plan(const char *v, size_t len, uint64_t rep_len)
{
    struct http_range_plan p;
    enum http_range_kind k = http_range_plan(v, len, rep_len, &p);
    INVARIANT(k == p.kind && p.size == rep_len && p.n <= HTTP_RANGE_MAX);
    INVARIANT((k == HTTP_RANGE_SINGLE) == (p.n == 1));
    INVARIANT((k == HTTP_RANGE_MULTI) == (p.n > 1));
    uint64_t sum = 0;
    for (unsigned i = 0; i < p.n; i++) {
        INVARIANT(p.r[i].first <= p.r[i].last && p.r[i].last < rep_len);
        sum += p.r[i].last - p.r[i].first + 1;
        INVARIANT(sum <= rep_len);
    }
    char cr[HTTP_RANGE_CR_MAX];
    size_t crlen = http_range_content_range(&p, 0, cr);
    INVARIANT(crlen < HTTP_RANGE_CR_MAX && crlen == strlen(cr));
    if (p.n) {
        unsigned long long a, b, s;
        INVARIANT(sscanf(cr, "bytes %llu-%llu/%llu", &a, &b, &s) == 3);
        INVARIANT(a == p.r[0].first && b == p.r[0].last && s == rep_len);
    } else {
        char want[HTTP_RANGE_CR_MAX];
        snprintf(want, sizeof(want), "bytes */%" PRIu64, rep_len);
        INVARIANT(!strcmp(cr, want));
    }
    if (k != HTTP_RANGE_MULTI)
        return;
    char bd[HTTP_RANGE_BOUNDARY_LEN + 1], head[HTTP_RANGE_PART_HEAD_MAX(24)];
    const char *ct = "application/octet-stream";
    http_range_boundary(bd, rep_len);
    uint64_t total = 0;
    for (unsigned i = 0; i < p.n; i++) {
        size_t want = http_range_part_head(&p, i, bd, ct, 24, NULL, 0);
        size_t got = http_range_part_head(&p, i, bd, ct, 24, head, sizeof(head));
        INVARIANT(want > 0 && got == want);
        INVARIANT(!memcmp(head + (i ? 2 : 0), "--", 2));
        INVARIANT(!memcmp(head + got - 4, "\r\n\r\n", 4));
        total += got + (p.r[i].last - p.r[i].first + 1);
    }
    char tail[64];
    total += http_range_tail(bd, tail, sizeof(tail));
    INVARIANT(total == http_range_multipart_length(&p, bd, ct, 24));
}

static void check_date(const char *v, size_t len)
{
    int64_t t;
    if (!httpdate_parse(v, len, 1796000000, &t))
        return;
    char out[HTTPDATE_LEN + 1];
    int64_t back;
    httpdate_format(t, out);
    INVARIANT(httpdate_parse(out, HTTPDATE_LEN, 1796000000, &back) && back == t);
}

static void check_etags(const char *v, size_t len)
{
    size_t pos = 0, last = 0;
    struct http_etag e;
    int r, n = 0;
    while ((r = http_etag_list_next(v, len, &pos, &e)) > 0) {
        INVARIANT(pos > last || n == 0);
        INVARIANT(pos <= len && e.opaque >= v && e.opaque + e.len <= v + len && e.len >= 2);
        INVARIANT(e.opaque[0] == '"' && e.opaque[e.len - 1] == '"');
        last = pos;
        n++;
    }
    INVARIANT(pos <= len);
    (void)http_if_range(v, len, "\"a\"", 3, 784111777, 1796000000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t rep_len = pick_length(data);
    size_t len = size - 8;
    char *v = malloc(len ? len : 1);
    if (!v)
        abort();
    memcpy(v, data + 8, len);
    check_plan(v, len, rep_len);
    check_date(v, len);
    check_etags(v, len);
    free(v);
    return 0;
}
