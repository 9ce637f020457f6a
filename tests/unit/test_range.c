/* http/range.h: Range parsing and resolution (RFC 9110 14.1-14.2) as a table, including the
 * malformed and the amplifying; Content-Range; the multipart body's framing byte for byte; and
 * If-Range. */
#include "check.h"
#include "http/range.h"

#include <stdint.h>
#include <stdlib.h>

/* The plan as text: "200", "416", or "206 a-b" / "206 a-b,c-d" (multipart). */
static const char *plan_str(const char *v, uint64_t size)
{
    static char out[512];
    struct http_range_plan p;
    enum http_range_kind k = http_range_plan(v, v ? strlen(v) : 0, size, &p);
    if (k != p.kind)
        return "kind mismatch";
    if (k == HTTP_RANGE_FULL)
        return p.n == 0 ? "200" : "200 with ranges";
    if (k == HTTP_RANGE_UNSATISFIABLE)
        return p.n == 0 ? "416" : "416 with ranges";
    if ((k == HTTP_RANGE_SINGLE) != (p.n == 1))
        return "count mismatch";
    size_t n = (size_t)snprintf(out, sizeof(out), "206 ");
    for (unsigned i = 0; i < p.n; i++)
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%llu-%llu", i ? "," : "",
                              (unsigned long long)p.r[i].first, (unsigned long long)p.r[i].last);
    return out;
}

struct range_case {
    const char *value;
    uint64_t size;
    const char *want;
};

static void test_plan(void)
{
    static const struct range_case cases[] = {
        {NULL, 10000, "200"},
        /* RFC 9110 14.1.2's examples against 10000 bytes. */
        {"bytes=0-499", 10000, "206 0-499"},
        {"bytes=500-999", 10000, "206 500-999"},
        {"bytes=-500", 10000, "206 9500-9999"},
        {"bytes=9500-", 10000, "206 9500-9999"},
        {"bytes=0-0,-1", 10000, "206 0-0,9999-9999"},
        {"bytes= 0-999, 4500-5499, -1000", 10000, "206 0-999,4500-5499,9000-9999"},
        {"bytes=500-600,601-999", 10000, "206 500-600,601-999"},
        /* Clamping and satisfiability. */
        {"bytes=0-99999", 10000, "206 0-9999"},
        {"bytes=-20000", 10000, "206 0-9999"},
        {"bytes=9999-", 10000, "206 9999-9999"},
        {"bytes=10000-", 10000, "416"},
        {"bytes=10000-20000", 10000, "416"},
        {"bytes=-0", 10000, "416"},
        {"bytes=10000-,-0", 10000, "416"},
        {"bytes=10000-,0-1", 10000, "206 0-1"}, /* unsatisfiable specs are dropped */
        {"bytes=0-18446744073709551615", 10000, "206 0-9999"},
        {"bytes=0-99999999999999999999999", 10000, "206 0-9999"}, /* saturates */
        {"bytes=99999999999999999999999-", 10000, "416"},
        {"bytes=0-", 1, "206 0-0"},
        {"bytes=0-", 0, "200"}, /* empty representation: Range ignored */
        {"bytes=-5", 0, "200"},
        {"bytes=0-", 5000000000ULL, "206 0-4999999999"}, /* above 4 GiB */
        {"bytes=4294967296-", 5000000000ULL, "206 4294967296-4999999999"},
        /* Case of the unit, whitespace, empty list elements. */
        {"BYTES=0-1", 10, "206 0-1"},
        {"Bytes=0-1", 10, "206 0-1"},
        {"  bytes=0-1  ", 10, "206 0-1"},
        {"bytes=0-1 ,\t2-3", 10, "206 0-1,2-3"},
        {"bytes=,0-1,,", 10, "206 0-1"},
        {"bytes=0-1,", 10, "206 0-1"},
        /* Malformed or another unit: ignored (200). */
        {"", 10, "200"},
        {"bytes", 10, "200"},
        {"bytes=", 10, "200"},
        {"bytes=,", 10, "200"},
        {"bytes =0-1", 10, "200"},
        {"bytes= 0 -1", 10, "200"},
        {"bytes=0 - 1", 10, "200"},
        {"bytes=1-0", 10, "200"}, /* last < first: invalid */
        {"bytes=0-1,5-4", 10, "200"},
        {"bytes=-", 10, "200"},
        {"bytes=--1", 10, "200"},
        {"bytes=1", 10, "200"},
        {"bytes=a-b", 10, "200"},
        {"bytes=0x1-2", 10, "200"},
        {"bytes=+1-2", 10, "200"},
        {"bytes=-1-2", 10, "200"},
        {"bytes=0-1;x", 10, "200"},
        {"bytes=0-1 2-3", 10, "200"},
        {"bytes:0-1", 10, "200"},
        {"items=0-1", 10, "200"},
        {"bytesx=0-1", 10, "200"},
        {"none", 10, "200"},
        {"bytes=0-1\r\n", 10, "200"},
        /* Amplification: more than 16 specs, or more than the length in sum. */
        {"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15", 100,
         "206 0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15"},
        {"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16",
         100, "200"},
        {"bytes=200-,200-,200-,200-,200-,200-,200-,200-,200-,200-,200-,200-,200-,200-,200-,200-,"
         "0-1",
         100, "200"}, /* the 17th spec counts even when the others are unsatisfiable */
        {"bytes=0-,0-", 100, "200"},
        {"bytes=0-60,40-99", 100, "200"},
        {"bytes=0-49,50-99", 100, "206 0-49,50-99"}, /* exactly the length: served */
        {"bytes=0-10,5-15", 100, "206 0-10,5-15"},   /* overlap within the length: served */
        {"bytes=-100,-1", 100, "200"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = plan_str(cases[i].value, cases[i].size);
        bool ok = !strcmp(got, cases[i].want);
        if (!ok)
            fprintf(stderr, "case %zu \"%s\"/%llu: got \"%s\" want \"%s\"\n", i,
                    cases[i].value ? cases[i].value : "(null)", (unsigned long long)cases[i].size,
                    got, cases[i].want);
        CHECK(ok);
    }
    /* A NUL inside the value is malformed, not the end of it. */
    struct http_range_plan p;
    CHECK_EQ_INT(http_range_plan("bytes=0-1\0,2-3", 14, 10, &p), HTTP_RANGE_FULL);
}

static void test_content_range(void)
{
    struct http_range_plan p;
    char cr[HTTP_RANGE_CR_MAX];
    http_range_plan("bytes=-500", 10, 10000, &p);
    CHECK_EQ_INT(http_range_content_range(&p, 0, cr), strlen("bytes 9500-9999/10000"));
    CHECK(!strcmp(cr, "bytes 9500-9999/10000"));
    http_range_plan("bytes=20000-", 12, 10000, &p);
    http_range_content_range(&p, 0, cr);
    CHECK(!strcmp(cr, "bytes */10000"));
    http_range_plan("bytes=0-", 8, UINT64_MAX, &p);
    size_t n = http_range_content_range(&p, 0, cr);
    CHECK(n < HTTP_RANGE_CR_MAX &&
          !strcmp(cr, "bytes 0-18446744073709551614/18446744073709551615"));
}

static void test_boundary(void)
{
    char a[HTTP_RANGE_BOUNDARY_LEN + 1], b[HTTP_RANGE_BOUNDARY_LEN + 1];
    http_range_boundary(a, 1);
    http_range_boundary(b, 2);
    CHECK(strlen(a) == HTTP_RANGE_BOUNDARY_LEN && strcmp(a, b) != 0 && !strncmp(a, "gh", 2));
    int bad = 0;
    for (size_t i = 0; i < HTTP_RANGE_BOUNDARY_LEN; i++)
        bad += !((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'z'));
    CHECK_EQ_INT(bad, 0); /* bchars, and a token: no quoting needed in the parameter */
}

static void test_multipart(void)
{
    /* A 26-byte file "abc...z", ranges 0-2 and -3: the whole body, byte for byte. */
    const char *file = "abcdefghijklmnopqrstuvwxyz", *ct = "text/plain; charset=utf-8";
    const char *bd = "BOUNDARY";
    struct http_range_plan p;
    CHECK_EQ_INT(http_range_plan("bytes=0-2,-3", 12, 26, &p), HTTP_RANGE_MULTI);
    char body[1024];
    size_t n = 0;
    for (unsigned i = 0; i < p.n; i++) {
        size_t h = http_range_part_head(&p, i, bd, ct, strlen(ct), body + n, sizeof(body) - n);
        CHECK(h > 0 && h == http_range_part_head(&p, i, bd, ct, strlen(ct), NULL, 0));
        CHECK(h <= HTTP_RANGE_PART_HEAD_MAX(strlen(ct)));
        n += h;
        size_t len = (size_t)(p.r[i].last - p.r[i].first + 1);
        memcpy(body + n, file + p.r[i].first, len);
        n += len;
    }
    n += http_range_tail(bd, body + n, sizeof(body) - n);
    const char *want = "--BOUNDARY\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Range: bytes 0-2/26\r\n"
                       "\r\n"
                       "abc"
                       "\r\n--BOUNDARY\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Range: bytes 23-25/26\r\n"
                       "\r\n"
                       "xyz"
                       "\r\n--BOUNDARY--\r\n";
    CHECK(n == strlen(want) && !memcmp(body, want, n));
    CHECK_EQ_INT(http_range_multipart_length(&p, bd, ct, strlen(ct)), strlen(want));
    CHECK_EQ_INT(http_range_tail(bd, NULL, 0), 16);
    /* Too small a buffer, a bad index, an unfit Content-Type: 0, never a partial write. */
    char small[8];
    CHECK_EQ_INT(http_range_part_head(&p, 0, bd, ct, strlen(ct), small, sizeof(small)), 0);
    CHECK_EQ_INT(http_range_part_head(&p, 2, bd, ct, strlen(ct), body, sizeof(body)), 0);
    CHECK_EQ_INT(http_range_part_head(&p, 0, bd, "a\r\nb", 4, body, sizeof(body)), 0);
    CHECK_EQ_INT(http_range_part_head(&p, 0, bd, "", 0, body, sizeof(body)), 0);
    CHECK_EQ_INT(http_range_multipart_length(&p, bd, "x\ny", 3), 0);
    CHECK_EQ_INT(http_range_tail(bd, small, sizeof(small)), 0);
}

#define ETAG "\"1-2-3\""
#define LM 784111777LL
#define NOW 1796000000LL

static bool ifr(const char *v)
{
    return http_if_range(v, v ? strlen(v) : 0, ETAG, strlen(ETAG), LM, NOW);
}

static void test_if_range(void)
{
    CHECK(ifr(NULL));
    CHECK(ifr(ETAG));
    CHECK(ifr(" " ETAG " "));
    CHECK(!ifr("W/" ETAG)); /* weak tags never match by strong comparison */
    CHECK(!ifr("\"other\""));
    CHECK(!ifr(ETAG ", " ETAG)); /* one validator, not a list */
    CHECK(!ifr("*"));
    CHECK(!ifr(""));
    CHECK(ifr("Sun, 06 Nov 1994 08:49:37 GMT"));
    CHECK(ifr("Sunday, 06-Nov-94 08:49:37 GMT"));
    CHECK(ifr("Sun Nov  6 08:49:37 1994"));
    CHECK(!ifr("Sun, 06 Nov 1994 08:49:38 GMT")); /* later: not an exact match */
    CHECK(!ifr("Sun, 06 Nov 1994 08:49:36 GMT"));
    CHECK(!ifr("Wed, 31 Dec 1969 23:59:59 GMT")); /* a date starting with W is a date */
    CHECK(http_if_range("Wed, 09 Jun 2021 10:18:14 GMT", 29, NULL, 0, 1623233894, NOW));
    CHECK(!ifr("garbage"));
    /* No validator to compare with: no match. */
    CHECK(!http_if_range(ETAG, strlen(ETAG), NULL, 0, LM, NOW));
    CHECK(!http_if_range("Sun, 06 Nov 1994 08:49:37 GMT", 29, ETAG, strlen(ETAG), INT64_MIN, NOW));
    /* The representation's own weak tag does not match either. */
    CHECK(!http_if_range("W/" ETAG, 9, "W/" ETAG, 9, LM, NOW));
}

int main(void)
{
    test_plan();
    test_content_range();
    test_boundary();
    test_multipart();
    test_if_range();
    return check_done("range");
}
