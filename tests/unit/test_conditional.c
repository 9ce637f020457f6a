/* http/conditional.h and core/httpdate.h: HTTP-dates in the three formats (and what is not
 * one), entity-tag lists, the file ETag, and RFC 9110 13.2.2's evaluation order. */
#include "check.h"
#include "core/httpdate.h"
#include "http/conditional.h"

#include <stdlib.h>
#include <time.h>

#define NOW 1796000000LL       /* 2026-11-29 */
#define T784111777 784111777LL /* Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example) */

static bool date(const char *s, int64_t *t)
{
    return httpdate_parse(s, strlen(s), NOW, t);
}

static void test_date_parse(void)
{
    int64_t t = 0;
    /* RFC 9110 5.6.7: the same instant in the three formats. */
    CHECK(date("Sun, 06 Nov 1994 08:49:37 GMT", &t) && t == T784111777);
    CHECK(date("Sunday, 06-Nov-94 08:49:37 GMT", &t) && t == T784111777);
    CHECK(date("Sun Nov  6 08:49:37 1994", &t) && t == T784111777);
    CHECK(date("Sun Nov 16 08:49:37 1994", &t) && t == T784111777 + 10 * 86400);
    CHECK(date("  Sun, 06 Nov 1994 08:49:37 GMT\t", &t) && t == T784111777); /* OWS */
    CHECK(date("Thu, 01 Jan 1970 00:00:00 GMT", &t) && t == 0);
    CHECK(date("Wed, 31 Dec 1969 23:59:59 GMT", &t) && t == -1);
    CHECK(date("Tue, 29 Feb 2000 12:00:00 GMT", &t) && t == 951825600);
    CHECK(date("Fri, 31 Dec 9999 23:59:59 GMT", &t) && t == 253402300799LL);
    CHECK(date("Sat, 31 Dec 2016 23:59:60 GMT", &t) && t == 1483228800); /* leap second */
    /* rfc850 two-digit years: not more than 50 years after now (2026). */
    CHECK(date("Saturday, 01-Jan-77 00:00:00 GMT", &t) && t == 220924800);     /* 1977, not 2077 */
    CHECK(date("Wednesday, 01-Jan-76 00:00:00 GMT", &t) && t == 3345062400LL); /* 2076: 49 years */
    CHECK(date("Saturday, 01-Jan-50 00:00:00 GMT", &t) && t == 2524608000LL);  /* 2050 */
    CHECK(date("Tuesday, 01-Jan-00 00:00:00 GMT", &t) && t == 946684800);      /* 2000 */
    /* Day names are checked for spelling only. */
    CHECK(date("Mon, 06 Nov 1994 08:49:37 GMT", &t) && t == T784111777);

    static const char *const bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",     /* no zone */
        "Sun, 06 Nov 1994 08:49:37 UTC", /* zone other than GMT */
        "Sun, 06 Nov 1994 08:49:37 gmt", /* GMT is case-sensitive */
        "sun, 06 Nov 1994 08:49:37 GMT", /* day-name is case-sensitive */
        "Sun, 06 nov 1994 08:49:37 GMT", /* month too */
        "Sun, 6 Nov 1994 08:49:37 GMT",  /* 2DIGIT day */
        "Sun, 06 Nov 94 08:49:37 GMT",   /* 4DIGIT year in IMF-fixdate */
        "Sun, 06 Nov 1994 8:49:37 GMT",  /* 2DIGIT hour */
        "Sun, 06 Nov 1994 24:00:00 GMT", /* hour range */
        "Sun, 06 Nov 1994 08:60:00 GMT", /* minute range */
        "Sun, 06 Nov 1994 08:49:61 GMT", /* second range */
        "Sun, 31 Nov 1994 08:49:37 GMT", /* no 31 Nov */
        "Sun, 29 Feb 1900 08:49:37 GMT", /* 1900 was no leap year */
        "Sun, 00 Nov 1994 08:49:37 GMT", /* day 0 */
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", /* a list */
        "Sun, 06 Nov 1994 08:49:37 GMTx",                               /* trailing junk */
        "Sun,  06 Nov 1994 08:49:37 GMT",                               /* double space */
        "Sunday, 06 Nov 1994 08:49:37 GMT",  /* long name with IMF layout */
        "Sun, 06-Nov-94 08:49:37 GMT",       /* short name with rfc850 layout */
        "Sunday, 06-Nov-1994 08:49:37 GMT",  /* rfc850 has two digits */
        "Sun Nov 6 08:49:37 1994",           /* asctime pads with a space */
        "Sun Nov  6 08:49:37 94",            /* asctime 4DIGIT year */
        "Sun Nov  6 08:49:37 1994 GMT",      /* asctime has no zone */
        "1994-11-06T08:49:37Z",              /* ISO 8601 */
        "784111777",                         /* epoch seconds */
        "Sun, 06 Nov 1994 08:49:37 GMT\r\n", /* CR LF is not OWS */
        "Sun, 06 Nov 1994 08:49:-7 GMT",
        "S",
        "Sun,",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool ok = date(bad[i], &t);
        if (ok)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK(!ok);
    }
    /* A NUL inside the value is not a date either. */
    CHECK(!httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT\0", 30, NOW, &t));
}

static void test_date_format(void)
{
    char out[HTTPDATE_LEN + 1];
    CHECK_EQ_INT(httpdate_format(T784111777, out), 29);
    CHECK(strcmp(out, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
    httpdate_format(0, out);
    CHECK(strcmp(out, "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
    httpdate_format(-1, out);
    CHECK(strcmp(out, "Wed, 31 Dec 1969 23:59:59 GMT") == 0);
    httpdate_format(INT64_MAX, out);
    CHECK(strcmp(out, "Fri, 31 Dec 9999 23:59:59 GMT") == 0);
    httpdate_format(INT64_MIN, out);
    CHECK(strcmp(out, "Sat, 01 Jan 0000 00:00:00 GMT") == 0);
    /* Against gmtime_r + strftime in the C locale, and the round trip, over 60 years. */
    int bad = 0;
    for (int64_t t = -86400LL * 365; t < 86400LL * 365 * 60; t += 86399 * 7 + 12345) {
        char ref[64];
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(ref, sizeof(ref), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        httpdate_format(t, out);
        int64_t back = 0;
        if (strcmp(out, ref) != 0 || !httpdate_parse(out, HTTPDATE_LEN, NOW, &back) || back != t)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_etag_parse(void)
{
    struct http_etag e;
    CHECK(http_etag_parse("\"abc\"", 5, &e) && !e.weak && e.len == 5);
    CHECK(http_etag_parse("W/\"abc\"", 7, &e) && e.weak && e.len == 5 && e.opaque[1] == 'a');
    CHECK(http_etag_parse("\"\"", 2, &e) && e.len == 2); /* empty opaque tag is valid */
    CHECK(http_etag_parse("\"\x80\xff\"", 4, &e));       /* obs-text */
    CHECK(!http_etag_parse("abc", 3, &e));               /* unquoted */
    CHECK(!http_etag_parse("w/\"abc\"", 7, &e));         /* W/ is case-sensitive */
    CHECK(!http_etag_parse("\"abc", 4, &e));
    CHECK(!http_etag_parse("\"a\"b\"", 5, &e));
    CHECK(!http_etag_parse("\"a b\"", 5, &e)); /* SP is not etagc */
    CHECK(!http_etag_parse("\"a\x7f\"", 4, &e));
    CHECK(!http_etag_parse("W/", 2, &e));
    CHECK(!http_etag_parse("", 0, &e));
    CHECK(!http_etag_parse(" \"a\"", 4, &e));

    struct http_etag a = {"\"x\"", 3, false}, b = {"\"x\"", 3, true}, c = {"\"y\"", 3, false};
    CHECK(http_etag_strong_eq(&a, &a) && !http_etag_strong_eq(&a, &b) &&
          !http_etag_strong_eq(&b, &b) && !http_etag_strong_eq(&a, &c));
    CHECK(http_etag_weak_eq(&a, &b) && http_etag_weak_eq(&b, &b) && !http_etag_weak_eq(&a, &c));
}

/* The list's tags joined with '|', or "ERR" after a malformed rest. */
static const char *list(const char *s)
{
    static char out[256];
    size_t pos = 0, n = 0;
    struct http_etag e;
    int r;
    out[0] = 0;
    while ((r = http_etag_list_next(s, strlen(s), &pos, &e)) > 0) {
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s%.*s", n ? "|" : "",
                              e.weak ? "W/" : "", (int)e.len, e.opaque);
    }
    if (r < 0)
        snprintf(out + n, sizeof(out) - n, "%sERR", n ? "|" : "");
    return out;
}

static void test_etag_list(void)
{
    CHECK(!strcmp(list("\"a\""), "\"a\""));
    CHECK(!strcmp(list("\"a\", W/\"b\" ,\"c\""), "\"a\"|W/\"b\"|\"c\""));
    CHECK(!strcmp(list(" , ,\"a\",, \t,\"b\" , "), "\"a\"|\"b\"")); /* empty elements */
    CHECK(!strcmp(list("\"a,b\""), "\"a,b\""));                     /* comma inside quotes */
    CHECK(!strcmp(list(""), ""));
    CHECK(!strcmp(list("  "), ""));
    CHECK(!strcmp(list("\"a\" \"b\""), "ERR")); /* missing comma: the element is malformed */
    CHECK(!strcmp(list("\"a\", b"), "\"a\"|ERR"));
    CHECK(!strcmp(list("*"), "ERR")); /* "*" is handled by the caller, not as a list member */
    CHECK(!strcmp(list("\"a\", \"b"), "\"a\"|ERR"));
}

static void test_etag_file(void)
{
    char out[HTTP_ETAG_FILE_MAX];
    size_t n = http_etag_file(out, 0x1234, 100, 1, 5);
    CHECK(n == strlen(out) && !strcmp(out, "\"1234-64-3b9aca05\""));
    n = http_etag_file(out, UINT64_MAX, UINT64_MAX, INT64_MAX / 1000000000, 999999999);
    CHECK(n == strlen(out) && n < HTTP_ETAG_FILE_MAX);
    struct http_etag e;
    CHECK(http_etag_parse(out, n, &e) && !e.weak);
    /* A nanosecond apart is another tag. */
    char a[HTTP_ETAG_FILE_MAX], b[HTTP_ETAG_FILE_MAX];
    http_etag_file(a, 7, 7, 1700000000, 1);
    http_etag_file(b, 7, 7, 1700000000, 2);
    CHECK(strcmp(a, b) != 0);
    n = http_etag_file(out, 0, 0, 0, 0);
    CHECK(!strcmp(out, "\"0-0-0\""));
}

#define ETAG "\"1-2-3\""
#define LM T784111777
#define D_LM "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_BEFORE "Sun, 06 Nov 1994 08:49:36 GMT"
#define D_AFTER "Sun, 06 Nov 1994 08:49:38 GMT"

struct cond_case {
    const char *im, *ius, *inm, *ims;
    bool get;
    int want;
    const char *why;
};

static void test_evaluate(void)
{
    static const struct cond_case cases[] = {
        {NULL, NULL, NULL, NULL, true, 0, "no conditions"},
        /* Step 1: If-Match, strong comparison. */
        {ETAG, NULL, NULL, NULL, true, 0, "If-Match hit"},
        {"\"x\", " ETAG, NULL, NULL, NULL, false, 0, "If-Match hit in a list"},
        {"\"x\"", NULL, NULL, NULL, true, 412, "If-Match miss"},
        {"W/" ETAG, NULL, NULL, NULL, true, 412, "If-Match weak tag never matches"},
        {"*", NULL, NULL, NULL, false, 0, "If-Match * (it exists)"},
        {" * ", NULL, NULL, NULL, false, 0, "If-Match * with OWS"},
        {"garbage", NULL, NULL, NULL, true, 412, "malformed If-Match fails"},
        {ETAG " junk", NULL, NULL, NULL, true, 412, "a tag followed by junk is malformed"},
        {"", NULL, NULL, NULL, true, 412, "empty If-Match matches nothing"},
        {"*, " ETAG, NULL, NULL, NULL, true, 412, "* inside a list is malformed"},
        /* Step 2: If-Unmodified-Since, only without If-Match. */
        {NULL, D_LM, NULL, NULL, true, 0, "IUS equal"},
        {NULL, D_AFTER, NULL, NULL, true, 0, "IUS later"},
        {NULL, D_BEFORE, NULL, NULL, true, 412, "IUS earlier"},
        {NULL, "not a date", NULL, NULL, true, 0, "invalid IUS ignored"},
        {NULL, D_BEFORE ", " D_AFTER, NULL, NULL, true, 0, "IUS list ignored"},
        {ETAG, D_BEFORE, NULL, NULL, true, 0, "If-Match passes: IUS not evaluated"},
        {NULL, "Sunday, 06-Nov-94 08:49:36 GMT", NULL, NULL, true, 412, "IUS rfc850"},
        /* Step 3: If-None-Match, weak comparison; 304 for GET/HEAD, 412 otherwise. */
        {NULL, NULL, ETAG, NULL, true, 304, "INM hit"},
        {NULL, NULL, "W/" ETAG, NULL, true, 304, "INM weak hit"},
        {NULL, NULL, "\"a\", \"b\",W/" ETAG, NULL, true, 304, "INM hit in a list"},
        {NULL, NULL, ETAG, NULL, false, 412, "INM hit on a POST"},
        {NULL, NULL, "*", NULL, true, 304, "INM *"},
        {NULL, NULL, "*", NULL, false, 412, "INM * on a PUT"},
        {NULL, NULL, "\"x\"", NULL, true, 0, "INM miss"},
        {NULL, NULL, "\"x\"", D_AFTER, true, 0, "INM miss: IMS not evaluated"},
        {NULL, NULL, "junk", D_AFTER, true, 0, "malformed INM: no 304, IMS not evaluated"},
        {NULL, NULL, ETAG, D_BEFORE, true, 304, "INM hit wins over a modified IMS"},
        {NULL, D_BEFORE, ETAG, NULL, true, 412, "IUS fails before INM"},
        {"\"x\"", NULL, ETAG, NULL, true, 412, "If-Match fails before INM"},
        /* Step 4: If-Modified-Since, GET/HEAD only. */
        {NULL, NULL, NULL, D_LM, true, 304, "IMS equal"},
        {NULL, NULL, NULL, D_AFTER, true, 304, "IMS later"},
        {NULL, NULL, NULL, D_BEFORE, true, 0, "IMS earlier"},
        {NULL, NULL, NULL, D_AFTER, false, 0, "IMS on a POST ignored"},
        {NULL, NULL, NULL, "yesterday", true, 0, "invalid IMS ignored"},
        {NULL, NULL, NULL, D_LM ", " D_LM, true, 0, "IMS list ignored"},
        {NULL, NULL, NULL, "Sun Nov  6 08:49:37 1994", true, 304, "IMS asctime"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct cond_case *k = &cases[i];
        struct http_cond_request rq = {
            .if_match = k->im,
            .if_match_len = k->im ? strlen(k->im) : 0,
            .if_unmodified_since = k->ius,
            .if_unmodified_since_len = k->ius ? strlen(k->ius) : 0,
            .if_none_match = k->inm,
            .if_none_match_len = k->inm ? strlen(k->inm) : 0,
            .if_modified_since = k->ims,
            .if_modified_since_len = k->ims ? strlen(k->ims) : 0,
            .get_or_head = k->get,
            .now = NOW,
        };
        struct http_cond_rep rep = {ETAG, strlen(ETAG), LM};
        int got = (int)http_cond_evaluate(&rq, &rep);
        if (got != k->want)
            fprintf(stderr, "case %zu (%s): got %d want %d\n", i, k->why, got, k->want);
        CHECK_EQ_INT(got, k->want);
    }
    /* Without a Last-Modified, date conditions are ignored; without an ETag, tags never match. */
    struct http_cond_request rq = {.if_modified_since = D_AFTER,
                                   .if_modified_since_len = strlen(D_AFTER),
                                   .if_unmodified_since = D_BEFORE,
                                   .if_unmodified_since_len = strlen(D_BEFORE),
                                   .get_or_head = true,
                                   .now = NOW};
    struct http_cond_rep nodate = {ETAG, strlen(ETAG), HTTP_COND_NO_DATE};
    CHECK_EQ_INT(http_cond_evaluate(&rq, &nodate), HTTP_COND_PROCEED);
    struct http_cond_request rq2 = {
        .if_none_match = ETAG, .if_none_match_len = strlen(ETAG), .get_or_head = true};
    struct http_cond_rep notag = {NULL, 0, LM};
    CHECK_EQ_INT(http_cond_evaluate(&rq2, &notag), HTTP_COND_PROCEED);
    struct http_cond_request rq3 = {.if_match = "*", .if_match_len = 1, .get_or_head = true};
    CHECK_EQ_INT(http_cond_evaluate(&rq3, &notag), HTTP_COND_PROCEED);
}

int main(void)
{
    test_date_parse();
    test_date_format();
    test_etag_parse();
    test_etag_list();
    test_etag_file();
    test_evaluate();
    return check_done("conditional");
}
