/* Unit tests for the HTTP/1.1 head parser and the chunked decoder (src/http/h1_parse.h).
 * `test_h1_parse bench` also prints the parse time of a typical request (no assertion). */
#include "check.h"
#include "http/h1_parse.h"
#include "http/request.h"

#include <stdlib.h>
#include <time.h>

#define MAXH 64
static const struct h1_limits LIM = {
    .max_request_line = 8192, .max_head = 65536, .max_headers = MAXH};

/* Copies s into a buffer of exactly n bytes so that AddressSanitizer catches any overread. */
static char *dup_exact(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    return b;
}

static int parse_req_n(const char *s, size_t n, struct h1_request *r, struct h1_header *h,
                       const struct h1_limits *lim)
{
    char *b = dup_exact(s, n);
    int rc = h1_parse_request(b, n, r, h, lim);
    free(b); /* results point into b: callers only look at numbers */
    return rc;
}

/* The answer for a whole buffer must agree with the answer for each of its prefixes: a prefix
 * of a valid head is incomplete, and an error in a prefix is the error of the whole. */
static void check_req_prefixes(const char *s, size_t n, const struct h1_limits *lim)
{
    struct h1_header h[MAXH];
    struct h1_request whole, part;
    int rc = parse_req_n(s, n, &whole, h, lim);
    for (size_t k = 0; k < n; k++) {
        int prc = parse_req_n(s, k, &part, h, lim);
        if (rc == H1_OK && k < whole.head_len) {
            CHECK_EQ_INT(prc, H1_INCOMPLETE);
        } else if (rc == H1_OK) {
            CHECK_EQ_INT(prc, H1_OK);
            CHECK_EQ_INT(part.head_len, whole.head_len);
        } else if (prc == H1_ERROR) {
            CHECK_EQ_INT(rc, H1_ERROR);
            CHECK_EQ_INT(part.status, whole.status);
        } else {
            CHECK_EQ_INT(prc, H1_INCOMPLETE);
        }
    }
}

/* Parses a request head that must be valid (every prefix incomplete); returns into r/h, which
 * point into s. */
static int req_ok(const char *s, struct h1_request *r, struct h1_header *h)
{
    check_req_prefixes(s, strlen(s), &LIM);
    return h1_parse_request(s, strlen(s), r, h, &LIM);
}

/* The result of parsing s with limits lim: the error status, or H1_OK / H1_INCOMPLETE. */
static int req_status_lim(const char *s, size_t n, const struct h1_limits *lim)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    check_req_prefixes(s, n, lim);
    int rc = parse_req_n(s, n, &r, h, lim);
    if (rc == H1_ERROR)
        CHECK(r.error != NULL);
    return rc == H1_ERROR ? r.status : rc;
}

static int req_status(const char *s)
{
    return req_status_lim(s, strlen(s), &LIM);
}

#define REJECT(s, st) CHECK_EQ_INT(req_status(s), st)
#define ACCEPT(s) CHECK_EQ_INT(req_status(s), H1_OK)

static const char typical[] =
    "GET /index.html?q=1 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=0123456789abcdef\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "\r\n";

static void test_typical(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(req_ok(typical, &r, h), H1_OK);
    CHECK_SLICE(r.method, r.method_len, "GET");
    CHECK_SLICE(r.target, r.target_len, "/index.html?q=1");
    CHECK_EQ_INT(r.minor, 1);
    CHECK_EQ_INT(r.nheaders, 8);
    CHECK(r.headers == h);
    CHECK_SLICE(h[0].name, h[0].name_len, "Host");
    CHECK_SLICE(h[0].value, h[0].value_len, "www.example.com");
    CHECK_SLICE(h[7].name, h[7].name_len, "Upgrade-Insecure-Requests");
    CHECK_SLICE(h[7].value, h[7].value_len, "1");
    CHECK_EQ_INT(r.head_len, sizeof typical - 1);
    CHECK_EQ_INT(r.body, H1_BODY_NONE);
    CHECK_EQ_INT(r.flags, H1_F_CONN_KEEPALIVE);
    CHECK_EQ_INT(r.host_count, 1);
    CHECK_SLICE(r.host, r.host_len, "www.example.com");
    CHECK_EQ_INT(r.status, 0);
    CHECK(r.error == NULL);
}

static void test_field_values(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(req_ok("GET / HTTP/1.1\r\nA:  x y \t\r\nB:\r\nC: \t \r\nD: caf\xc3\xa9\r\n"
                        "E: a\tb\r\nF:\x80\xff\r\n\r\n",
                        &r, h),
                 H1_OK);
    CHECK_EQ_INT(r.nheaders, 6);
    CHECK_SLICE(h[0].value, h[0].value_len, "x y");
    CHECK_EQ_INT(h[1].value_len, 0);
    CHECK_EQ_INT(h[2].value_len, 0);
    CHECK_SLICE(h[3].value, h[3].value_len, "caf\xc3\xa9");
    CHECK_SLICE(h[4].value, h[4].value_len, "a\tb");
    CHECK_SLICE(h[5].value, h[5].value_len, "\x80\xff");
    /* Every tchar may appear in a name; long values cross the word-at-a-time scan. */
    ACCEPT("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n");
    ACCEPT("GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789abcdef\t0123456789abcdef\r\n\r\n");
    /* No Host is the router's business (400 there), not the parser's. */
    ACCEPT("GET / HTTP/1.1\r\n\r\n");
}

/* A request's lines end in CRLF only: a bare LF anywhere a line ends is 400 "bare LF". */
static void reject_bare_lf(const char *s)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(req_status(s), 400);
    CHECK_EQ_INT(parse_req_n(s, strlen(s), &r, h, &LIM), H1_ERROR);
    CHECK(r.error && strcmp(r.error, "bare LF") == 0);
}

static void test_line_endings(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    reject_bare_lf("GET / HTTP/1.1\nHost: a\n\n");            /* request line */
    reject_bare_lf("GET / HTTP/1.1\r\nHost: a\n\r\n");        /* field line */
    reject_bare_lf("GET / HTTP/1.1\r\nHost: a\r\n\n");        /* the empty line ending the head */
    reject_bare_lf("GET / HTTP/1.1\r\nA: \nHost: a\r\n\r\n"); /* empty value */
    reject_bare_lf("\nGET / HTTP/1.1\r\n\r\n");               /* a leading empty line */
    reject_bare_lf("\r\n\nGET / HTTP/1.1\r\n\r\n");
    /* A bare LF hiding a field from a back end that splits only at CRLF, and the reverse. */
    reject_bare_lf("GET / HTTP/1.1\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n");
    /* Leading empty lines (CRLF) are skipped and counted in head_len. */
    CHECK_EQ_INT(req_ok("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.head_len, 4 + 27);
    CHECK_SLICE(r.method, r.method_len, "GET");
    CHECK_SLICE(h[0].value, h[0].value_len, "a");
}

static void test_targets(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(
        req_ok(
            "GET http://example.com:8080/a/b?c=d&e=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
            &r, h),
        H1_OK);
    CHECK_SLICE(r.target, r.target_len, "http://example.com:8080/a/b?c=d&e=%20");
    CHECK_EQ_INT(req_ok("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &r, h),
                 H1_OK);
    CHECK_SLICE(r.method, r.method_len, "CONNECT");
    CHECK_SLICE(r.target, r.target_len, "example.com:443");
    CHECK_EQ_INT(req_ok("OPTIONS * HTTP/1.1\r\n\r\n", &r, h), H1_OK);
    CHECK_SLICE(r.target, r.target_len, "*");
    CHECK_EQ_INT(req_ok("M-SEARCH /~a!$&'()*+,;=:@[]{}|^`\"<>\\ HTTP/1.0\r\n\r\n", &r, h), H1_OK);
    CHECK_SLICE(r.method, r.method_len, "M-SEARCH");
    CHECK_EQ_INT(r.minor, 0);
}

static void test_pipelined(void)
{
    static const char two[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                              "POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc";
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(h1_parse_request(two, sizeof two - 1, &r, h, &LIM), H1_OK);
    CHECK_SLICE(r.target, r.target_len, "/1");
    CHECK_EQ_INT(r.head_len, 28);
    const char *second = two + r.head_len;
    CHECK_EQ_INT(h1_parse_request(second, sizeof two - 1 - 28, &r, h, &LIM), H1_OK);
    CHECK_SLICE(r.method, r.method_len, "POST");
    CHECK_SLICE(r.target, r.target_len, "/2");
    CHECK_EQ_INT(r.body, H1_BODY_LENGTH);
    CHECK_EQ_INT(r.content_length, 3);
    CHECK_SLICE(second + r.head_len, 3, "abc");
}

static void test_incremental(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    size_t n = sizeof typical - 1;
    int bad = 0;
    for (size_t k = 0; k < n; k++)
        if (h1_parse_request(typical, k, &r, h, &LIM) != H1_INCOMPLETE)
            bad++;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(h1_parse_request(typical, n, &r, h, &LIM), H1_OK);
    /* Bytes past the head (a body) do not change the result. */
    char buf[sizeof typical + 8];
    memcpy(buf, typical, n);
    memcpy(buf + n, "trailing", 8);
    CHECK_EQ_INT(h1_parse_request(buf, n + 8, &r, h, &LIM), H1_OK);
    CHECK_EQ_INT(r.head_len, n);
}

static void test_framing(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(req_ok("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_LENGTH);
    CHECK_EQ_INT(r.content_length, 42);
    CHECK_EQ_INT(req_ok("POST / HTTP/1.1\r\nContent-Length: 42, 42,42\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.content_length, 42);
    CHECK_EQ_INT(
        req_ok("POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 007\r\n\r\n", &r, h),
        H1_OK);
    CHECK_EQ_INT(r.content_length, 7);
    CHECK_EQ_INT(req_ok("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_LENGTH);
    CHECK_EQ_INT(r.content_length, 0);
    CHECK_EQ_INT(req_ok("POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", &r, h),
                 H1_OK);
    CHECK(r.content_length == 9223372036854775807ull);
    CHECK_EQ_INT(req_ok("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_CHUNKED);
    CHECK_EQ_INT(req_ok("POST / HTTP/1.1\r\nTransfer-Encoding: , CHUNKED ,\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_CHUNKED);
    CHECK_EQ_INT(req_ok("POST / HTTP/1.1\r\nHost: a\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_NONE);
    CHECK_EQ_INT(r.content_length, 0);
}

static void test_flags(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(req_ok("GET / HTTP/1.1\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.flags, 0);
    CHECK_EQ_INT(req_ok("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_CONN_CLOSE);
    CHECK_EQ_INT(
        req_ok("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
               &r, h),
        H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_CONN_KEEPALIVE | H1_F_CONN_UPGRADE | H1_F_HAS_UPGRADE);
    CHECK_EQ_INT(
        req_ok("GET / HTTP/1.1\r\nConnection: foo\r\nConnection: ,\tCLOSE , bar\r\n\r\n", &r, h),
        H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_CONN_CLOSE);
    CHECK_EQ_INT(req_ok("GET / HTTP/1.1\r\nConnection: closed, keep-alives\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.flags, 0);
    CHECK_EQ_INT(req_ok("GET / HTTP/1.0\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_CONN_CLOSE);
    CHECK_EQ_INT(req_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_CONN_KEEPALIVE);
    CHECK_EQ_INT(
        req_ok("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", &r, h),
        H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_EXPECT_CONTINUE);
    /* RFC 9110 section 10.1.1: ignored from an HTTP/1.0 client. */
    CHECK_EQ_INT(
        req_ok("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nConnection: keep-alive\r\n\r\n", &r, h),
        H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_CONN_KEEPALIVE);
    CHECK_EQ_INT(req_ok("PUT / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.flags, 0);
    CHECK_EQ_INT(req_ok("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_HAS_UPGRADE);
}

static void test_host(void)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    CHECK_EQ_INT(req_ok("GET / HTTP/1.1\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.host_count, 0);
    CHECK(r.host == NULL);
    CHECK_EQ_INT(
        req_ok("GET / HTTP/1.1\r\nhOsT: a.example\r\nX: y\r\nHost: b.example\r\n\r\n", &r, h),
        H1_OK);
    CHECK_EQ_INT(r.host_count, 2);
    CHECK_SLICE(r.host, r.host_len, "a.example");
    CHECK_EQ_INT(req_ok("GET / HTTP/1.1\r\nHost:\r\n\r\n", &r, h), H1_OK);
    CHECK_EQ_INT(r.host_count, 1);
    CHECK(r.host != NULL);
    CHECK_EQ_INT(r.host_len, 0);
}

static void test_reject_bytes(void)
{
    REJECT("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400); /* bare CR in value */
    REJECT("GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 400);  /* CR CR LF */
    REJECT("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);   /* bare CR ending the request line */
    REJECT("GET /\r HTTP/1.1\r\n\r\n", 400);          /* CR in target */
    REJECT("GET / HTTP/1.1\r\nX\r: a\r\n\r\n", 400);  /* CR in name */
    REJECT("GET / HTTP/1.1\r\nX: a\r\n\rX", 400);     /* CR not ending the head */
    REJECT("\rGET / HTTP/1.1\r\n\r\n", 400);          /* CR in the leading empty lines */
    CHECK_EQ_INT(req_status_lim("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27, &LIM), 400); /* NUL */
    REJECT("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX: a\x0b\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400);  /* obs-fold */
    REJECT("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400); /* obs-fold with HTAB */
    REJECT("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);    /* whitespace after the start line */
}

static void test_reject_names(void)
{
    REJECT("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400); /* whitespace before colon */
    REJECT("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX Y: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX@Y: a\r\n\r\n", 400); /* not a tchar */
    REJECT("GET / HTTP/1.1\r\nX\"Y: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX\x80: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\n: a\r\n\r\n", 400); /* empty name */
    REJECT("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
}

static void test_reject_request_line(void)
{
    REJECT("GE(T / HTTP/1.1\r\n\r\n", 400);
    REJECT("GET\t/ HTTP/1.1\r\n\r\n", 400);
    REJECT(" / HTTP/1.1\r\n\r\n", 400);
    REJECT("GET  / HTTP/1.1\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1 \r\n\r\n", 400);
    REJECT("GET /a\x80 HTTP/1.1\r\n\r\n", 400); /* non-ASCII target */
    REJECT("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
    REJECT("GET /a\x01 HTTP/1.1\r\n\r\n", 400);
    REJECT("GET /a\x7f HTTP/1.1\r\n\r\n", 400);
    REJECT("GET /a\tb HTTP/1.1\r\n\r\n", 400);
    REJECT("GET /\r\n\r\n", 400); /* HTTP/0.9 */
    REJECT("GET\r\n\r\n", 400);
    REJECT("GET / \r\n\r\n", 400);
    REJECT("GET / http/1.1\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1x\r\n\r\n", 400);
    REJECT("GET / HTTP/11\r\n\r\n", 400);
    REJECT("GET / HTTP/1.\r\n\r\n", 400);
    REJECT("GET / HTTP/10.0\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1/\r\n\r\n", 400);
    REJECT("GET / HTTP/1.2\r\n\r\n", 505);
    REJECT("GET / HTTP/2.0\r\n\r\n", 505);
    REJECT("GET / HTTP/0.9\r\n\r\n", 505);
    REJECT("GET / HTTP/9.9\r\n\r\n", 505);
    REJECT("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400); /* TLS on a plain port */
}

static void test_reject_framing(void)
{
    REJECT("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 5a\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: ,5\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400);
    /* RFC 9112 section 6.3: a final coding other than chunked is 400 (and close). */
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: identity, gzip\r\n\r\n", 400);
    REJECT("POST / HTTP/1.0\r\nTransfer-Encoding: identity\r\n\r\n", 400);
    /* chunked last, but a coding under it we cannot keep: 501. */
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked x\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: gzip;a=\"x,chunked\"\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n", 400);
    REJECT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

static void test_limits(void)
{
    const struct h1_limits small = {.max_request_line = 32, .max_head = 96, .max_headers = 4};
    /* "GET /" + 18 x "a" + " HTTP/1.1" is exactly 32 bytes. */
    const char *ok32 = "GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(req_status_lim(ok32, strlen(ok32), &small), H1_OK);
    const char *long33 = "GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(req_status_lim(long33, strlen(long33), &small), 414);
    /* Early: no line end yet, but already longer than the limit. */
    CHECK_EQ_INT(req_status_lim(long33, 33, &small), 414);
    CHECK_EQ_INT(req_status_lim(ok32, 33, &small), H1_INCOMPLETE); /* 32 bytes + CR */
    CHECK_EQ_INT(
        req_status_lim("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 40, &small),
        414);
    CHECK_EQ_INT(req_status_lim(ok32, 33, &small), H1_INCOMPLETE);
    /* An error before the limit wins over the limit. */
    CHECK_EQ_INT(req_status_lim("GET /a\x01"
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                40, &small),
                 400);

    /* Head of exactly max_head bytes, then one more. */
    char buf[256];
    int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX: %0*d\r\n\r\n", 96 - 16 - 7, 0);
    CHECK_EQ_INT(n, 96);
    CHECK_EQ_INT(req_status_lim(buf, (size_t)n, &small), H1_OK);
    n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX: %0*d\r\n\r\n", 96 - 16 - 6, 0);
    CHECK_EQ_INT(req_status_lim(buf, (size_t)n, &small), 431);
    CHECK_EQ_INT(req_status_lim(buf, 97, &small), 431); /* early, without the end */
    CHECK_EQ_INT(req_status_lim(buf, 96, &small), H1_INCOMPLETE);
    for (int i = 0; i < 200; i += 2) /* endless empty lines count against the head size */
        memcpy(buf + i, "\r\n", 2);
    CHECK_EQ_INT(req_status_lim(buf, 200, &small), 431);

    const char *four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    CHECK_EQ_INT(req_status_lim(four, strlen(four), &small), H1_OK);
    const char *five = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    CHECK_EQ_INT(req_status_lim(five, strlen(five), &small), 431);
    CHECK_EQ_INT(req_status_lim(five, strlen(five) - 5, &small), 431); /* early */
}

/* --- responses --- */

static int resp(const char *s, struct h1_response *r, struct h1_header *h, bool head)
{
    size_t n = strlen(s);
    struct h1_response part;
    int rc = h1_parse_response(s, n, r, h, &LIM, head);
    for (size_t k = 0; k < n; k++) {
        char *b = dup_exact(s, k);
        int prc = h1_parse_response(b, k, &part, h, &LIM, head);
        free(b);
        if (rc == H1_OK && k < r->head_len)
            CHECK_EQ_INT(prc, H1_INCOMPLETE);
        else if (prc == H1_ERROR)
            CHECK_EQ_INT(rc, H1_ERROR);
    }
    rc = h1_parse_response(s, n, r, h, &LIM, head); /* h was reused by the prefixes */
    if (rc == H1_ERROR)
        CHECK(r->error != NULL);
    return rc;
}

static void test_response_ok(void)
{
    struct h1_header h[MAXH];
    struct h1_response r;
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\n", &r, h, false),
                 H1_OK);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.minor, 1);
    CHECK_SLICE(r.reason, r.reason_len, "OK");
    CHECK_EQ_INT(r.nheaders, 2);
    CHECK_EQ_INT(r.body, H1_BODY_LENGTH);
    CHECK_EQ_INT(r.content_length, 12);
    CHECK_EQ_INT(r.head_len, 50);
    CHECK_EQ_INT(r.flags, 0);
    CHECK(r.error == NULL);
    CHECK_EQ_INT(resp("HTTP/1.1 404 Not \xc3\xa0 Found\t!\r\n\r\n", &r, h, false), H1_OK);
    CHECK_SLICE(r.reason, r.reason_len, "Not \xc3\xa0 Found\t!");
    CHECK_EQ_INT(resp("HTTP/1.1 200 \r\n\r\n", &r, h, false), H1_OK);
    CHECK_EQ_INT(r.reason_len, 0);
    CHECK_EQ_INT(resp("HTTP/1.1 200\nContent-Length: 1\n\n", &r, h, false), H1_OK);
    CHECK_EQ_INT(r.reason_len, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(resp("HTTP/1.1 999 X\r\n\r\n", &r, h, false), H1_OK);
    CHECK_EQ_INT(r.status, 999);
}

static void test_response_bodies(void)
{
    struct h1_header h[MAXH];
    struct h1_response r;
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", &r, h, true), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_NONE); /* HEAD */
    CHECK_EQ_INT(r.content_length, 0);
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &r, h, true), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_NONE);
    CHECK_EQ_INT(resp("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", &r, h, false), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_NONE);
    CHECK_EQ_INT(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", &r, h, false),
                 H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_NONE);
    CHECK_EQ_INT(resp("HTTP/1.1 100 Continue\r\n\r\n", &r, h, false), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_NONE);
    CHECK_EQ_INT(r.head_len, 25);
    /* An interim response, then the final one after it in the same buffer. */
    static const char two[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                              "Content-Length: 2\r\n\r\nok";
    CHECK_EQ_INT(h1_parse_response(two, sizeof two - 1, &r, h, &LIM, false), H1_OK);
    CHECK_EQ_INT(r.status, 100);
    CHECK_EQ_INT(
        h1_parse_response(two + r.head_len, sizeof two - 1 - r.head_len, &r, h, &LIM, false),
        H1_OK);
    CHECK_EQ_INT(r.status, 201);
    CHECK_EQ_INT(r.body, H1_BODY_LENGTH);
    CHECK_EQ_INT(r.content_length, 2);
    CHECK_EQ_INT(
        resp(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            &r, h, false),
        H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_NONE);
    CHECK_EQ_INT(r.flags, H1_F_CONN_UPGRADE | H1_F_HAS_UPGRADE);
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &r, h, false),
                 H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_CHUNKED);
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &r, h, false),
                 H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_CHUNKED);
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &r, h, false), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_UNTIL_CLOSE);
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", &r, h, false),
                 H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_UNTIL_CLOSE);
    CHECK_EQ_INT(resp("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", &r, h, false), H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_UNTIL_CLOSE);
    CHECK_EQ_INT(resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &r, h, false),
                 H1_OK);
    CHECK_EQ_INT(r.body, H1_BODY_CHUNKED);
    CHECK_EQ_INT(r.flags, H1_F_CONN_CLOSE);
    CHECK_EQ_INT(resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", &r,
                      h, false),
                 H1_OK);
    CHECK_EQ_INT(r.minor, 0);
    CHECK_EQ_INT(r.flags, H1_F_CONN_KEEPALIVE);
    CHECK_EQ_INT(r.body, H1_BODY_LENGTH);
    CHECK_EQ_INT(
        resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1, 1\r\n\r\n", &r, h, false),
        H1_OK);
    CHECK_EQ_INT(r.flags, H1_F_CONN_CLOSE);
    CHECK_EQ_INT(r.content_length, 1);
}

static void test_response_reject(void)
{
    struct h1_header h[MAXH];
    struct h1_response r;
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 304 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "HTTP/1.1x 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n", /* no empty lines before a status line */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = resp(bad[i], &r, h, false);
        CHECK_EQ_INT(rc, H1_ERROR);
        if (rc != H1_ERROR)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
    /* Limits. */
    const struct h1_limits small = {.max_request_line = 16, .max_head = 64, .max_headers = 2};
    const char *s = "HTTP/1.1 200 OKAY!\r\n\r\n";
    CHECK_EQ_INT(h1_parse_response(s, strlen(s), &r, h, &small, false), H1_ERROR);
    CHECK_EQ_INT(h1_parse_response(s, 18, &r, h, &small, false), H1_ERROR);
    s = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK_EQ_INT(h1_parse_response(s, strlen(s), &r, h, &small, false), H1_ERROR);
    CHECK(r.error != NULL);
    s = "HTTP/1.1 200 OK\r\nA: 0123456789012345678901234567890123456789012345\r\n\r\n";
    CHECK_EQ_INT(h1_parse_response(s, strlen(s), &r, h, &small, false), H1_ERROR);
    CHECK_EQ_INT(h1_parse_response(s, 65, &r, h, &small, false), H1_ERROR);
    CHECK_EQ_INT(h1_parse_response(s, 64, &r, h, &small, false), H1_INCOMPLETE);
}

/* --- chunked --- */

struct dechunk {
    char out[4096];
    size_t out_len;
    size_t consumed; /* total */
    int last;        /* last non-DATA result */
};

/* Feeds s to a fresh decoder in pieces of `step` bytes (0: all at once), each piece in a buffer
 * of its exact size, until END, ERROR or the input runs out. */
static void dechunk_mode(struct dechunk *d, const char *s, size_t n, size_t step, uint32_t max_line,
                         uint32_t max_trailer, bool crlf_only)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    c.max_line = max_line;
    c.max_trailer = max_trailer;
    c.crlf_only = crlf_only;
    memset(d, 0, sizeof *d);
    d->last = H1_CHUNK_AGAIN;
    size_t off = 0;
    while (off < n) {
        size_t len = step && n - off > step ? step : n - off;
        char *piece = dup_exact(s + off, len);
        size_t pos = 0;
        int rc;
        do {
            size_t used, dlen;
            const char *data;
            rc = h1_chunked_decode(&c, piece + pos, len - pos, &used, &data, &dlen);
            CHECK(used <= len - pos);
            if (rc == H1_CHUNK_DATA) {
                CHECK(data >= piece + pos && data + dlen <= piece + pos + used && dlen > 0);
                if (d->out_len + dlen <= sizeof d->out)
                    memcpy(d->out + d->out_len, data, dlen);
                d->out_len += dlen;
            }
            pos += used;
        } while (rc == H1_CHUNK_DATA || (rc == H1_CHUNK_AGAIN && pos < len));
        free(piece);
        off += pos;
        d->last = rc;
        if (rc != H1_CHUNK_AGAIN)
            break;
    }
    d->consumed = off;
}

static void dechunk(struct dechunk *d, const char *s, size_t n, size_t step, uint32_t max_line,
                    uint32_t max_trailer)
{
    dechunk_mode(d, s, n, step, max_line, max_trailer, false);
}

/* Decodes s whole, byte by byte and in 7-byte pieces; all three must agree. */
static int chunked_result_mode(const char *s, size_t n, bool crlf_only, struct dechunk *d)
{
    struct dechunk b, p7;
    dechunk_mode(d, s, n, 0, 0, 0, crlf_only);
    dechunk_mode(&b, s, n, 1, 0, 0, crlf_only);
    dechunk_mode(&p7, s, n, 7, 0, 0, crlf_only);
    CHECK_EQ_INT(b.last, d->last);
    CHECK_EQ_INT(p7.last, d->last);
    CHECK_EQ_INT(b.consumed, d->consumed);
    CHECK_EQ_INT(p7.consumed, d->consumed);
    CHECK(b.out_len == d->out_len && memcmp(b.out, d->out, d->out_len) == 0);
    CHECK(p7.out_len == d->out_len && memcmp(p7.out, d->out, d->out_len) == 0);
    return d->last;
}

static int chunked_result(const char *s, size_t n, struct dechunk *d)
{
    return chunked_result_mode(s, n, false, d);
}

#define CHUNKED_OK(s, body)                                                                        \
    do {                                                                                           \
        struct dechunk d_;                                                                         \
        CHECK_EQ_INT(chunked_result(s, sizeof(s) - 1, &d_), H1_CHUNK_END);                         \
        CHECK_SLICE(d_.out, d_.out_len, body);                                                     \
        CHECK_EQ_INT(d_.consumed, sizeof(s) - 1);                                                  \
    } while (0)

#define CHUNKED_BAD(s)                                                                             \
    do {                                                                                           \
        struct dechunk d_;                                                                         \
        CHECK_EQ_INT(chunked_result(s, sizeof(s) - 1, &d_), H1_CHUNK_ERROR);                       \
    } while (0)

static void test_chunked_ok(void)
{
    CHUNKED_OK("5\r\nhello\r\n0\r\n\r\n", "hello");
    CHUNKED_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    CHUNKED_OK("5\nhello\n0\n\n", "hello"); /* from an upstream, a bare LF ends a line */
    CHUNKED_OK("5\r\nhello\n0\n\r\n", "hello");
    CHUNKED_OK("5\r\nhe\nlo\r\n0\r\n\r\n", "he\nlo"); /* data is not framing */
    CHUNKED_OK("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
    CHUNKED_OK("0000000003\r\nabc\r\n000\r\n\r\n", "abc");
    CHUNKED_OK("0\r\n\r\n", "");
    CHUNKED_OK("3;a=b;c=\"x\\\"y\\\\ z\";d ; e = f\t;g=\"\"\r\nabc\r\n0;last\r\n\r\n", "abc");
    CHUNKED_OK("3 ;a\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: two words\t\r\nZ:\r\n\r\n", "abc");
    CHUNKED_OK("2\r\n\r\n\r\n0\r\nA: \xff\n\n", "\r\n");
    /* Bytes after the end belong to the next message. */
    struct dechunk d;
    const char next[] = "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    CHECK_EQ_INT(chunked_result(next, sizeof next - 1, &d), H1_CHUNK_END);
    CHECK_EQ_INT(d.consumed, 11);
    const char partial[] = "5\r\nhel";
    CHECK_EQ_INT(chunked_result(partial, sizeof partial - 1, &d), H1_CHUNK_AGAIN);
    CHECK_SLICE(d.out, d.out_len, "hel");
}

static void test_chunked_spans(void)
{
    /* One call hands back one span of the input; the caller continues at in + consumed. */
    static const char s[] = "4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: v\r\n\r\nNEXT";
    struct h1_chunked c;
    h1_chunked_init(&c);
    size_t used, dlen;
    const char *data;
    CHECK_EQ_INT(h1_chunked_decode(&c, s, sizeof s - 1, &used, &data, &dlen), H1_CHUNK_DATA);
    CHECK(data == s + 3);
    CHECK_EQ_INT(dlen, 4);
    CHECK_EQ_INT(used, 7);
    size_t off = used;
    CHECK_EQ_INT(h1_chunked_decode(&c, s + off, sizeof s - 1 - off, &used, &data, &dlen),
                 H1_CHUNK_DATA);
    CHECK(data == s + 16);
    CHECK_SLICE(data, dlen, "pedia");
    off += used;
    CHECK_EQ_INT(h1_chunked_decode(&c, s + off, sizeof s - 1 - off, &used, &data, &dlen),
                 H1_CHUNK_END);
    off += used;
    CHECK_SLICE(s + off, sizeof s - 1 - off, "NEXT");
    CHECK(data == NULL && dlen == 0);
    /* The end is sticky and consumes nothing. */
    CHECK_EQ_INT(h1_chunked_decode(&c, "x", 1, &used, &data, &dlen), H1_CHUNK_END);
    CHECK_EQ_INT(used, 0);
    /* Largest size accepted; its data is handed out as it comes. */
    h1_chunked_init(&c);
    CHECK_EQ_INT(h1_chunked_decode(&c, "7fffffffffffffff\r\nab", 20, &used, &data, &dlen),
                 H1_CHUNK_DATA);
    CHECK_SLICE(data, dlen, "ab");
    CHECK(c.remaining == 0x7fffffffffffffffull - 2);
    /* An error is sticky; *consumed is where the bad byte is. */
    h1_chunked_init(&c);
    CHECK_EQ_INT(h1_chunked_decode(&c, "5x\r\n", 4, &used, &data, &dlen), H1_CHUNK_ERROR);
    CHECK_EQ_INT(used, 1);
    CHECK_EQ_INT(h1_chunked_decode(&c, "5\r\n", 3, &used, &data, &dlen), H1_CHUNK_ERROR);
    CHECK_EQ_INT(used, 0);
}

static void test_chunked_bad(void)
{
    CHUNKED_BAD("\r\nhello\r\n0\r\n\r\n"); /* empty size */
    CHUNKED_BAD(";x\r\n");
    CHUNKED_BAD("g\r\n"); /* not hex */
    CHUNKED_BAD("-5\r\n");
    CHUNKED_BAD("+5\r\n");
    CHUNKED_BAD("0x5\r\n");
    CHUNKED_BAD(" 5\r\n");
    CHUNKED_BAD("5 \r\nhello\r\n");      /* BWS only before ';' */
    CHUNKED_BAD("8000000000000000\r\n"); /* 2^63 */
    CHUNKED_BAD("10000000000000000\r\n");
    CHUNKED_BAD("ffffffffffffffffff\r\n");
    CHUNKED_BAD("5\rhello\r\n");             /* bare CR */
    CHUNKED_BAD("5\r\nhelloX\r\n0\r\n\r\n"); /* data longer than the size */
    CHUNKED_BAD("5\r\nhello\rX");
    CHUNKED_BAD("5\r\nhel\r\n0\r\n\r\n");    /* shorter: "\r\n" is data, then "0\r" */
    CHUNKED_BAD("5;\r\nhello\r\n0\r\n\r\n"); /* empty extension */
    CHUNKED_BAD("5;a=\r\nhello\r\n0\r\n\r\n");
    CHUNKED_BAD("5;a b\r\n");
    CHUNKED_BAD("5;a=\"x\r\n"); /* unterminated quote */
    CHUNKED_BAD("5;a=\"x\"y\r\n");
    CHUNKED_BAD("5;a=\"\x01\"\r\n");
    CHUNKED_BAD("5;a=b c\r\n");
    CHUNKED_BAD("5;@\r\n");
    CHUNKED_BAD("5;a=\"\\\x7f\"\r\n");
    CHUNKED_BAD("0\r\nX: a\r\n b\r\n\r\n"); /* obs-fold in trailer */
    CHUNKED_BAD("0\r\n X: a\r\n\r\n");
    CHUNKED_BAD("0\r\nX : a\r\n\r\n");
    CHUNKED_BAD("0\r\n: a\r\n\r\n");
    CHUNKED_BAD("0\r\nX\r\n\r\n");
    CHUNKED_BAD("0\r\nX: a\x01\r\n\r\n");
    CHUNKED_BAD("0\r\nX: a\rb\r\n\r\n");
    CHUNKED_BAD("0\r\n\rX");
    /* Size line and trailer limits. */
    struct dechunk d;
    char buf[20000];
    memset(buf, '0', 4096);
    memcpy(buf + 4096, "\r\n\r\n", 4);
    dechunk(&d, buf, 4100, 0, 0, 0);
    CHECK_EQ_INT(d.last, H1_CHUNK_END); /* 4096 bytes: at the default limit */
    memset(buf, '0', 4097);
    memcpy(buf + 4097, "\r\n\r\n", 4);
    dechunk(&d, buf, 4101, 0, 0, 0);
    CHECK_EQ_INT(d.last, H1_CHUNK_ERROR);
    dechunk(&d, "1;abcdef\r\nx\r\n0\r\n\r\n", 18, 0, 8, 0);
    CHECK_EQ_INT(d.last, H1_CHUNK_END);
    dechunk(&d, "1;abcdefg\r\nx\r\n0\r\n\r\n", 19, 0, 8, 0);
    CHECK_EQ_INT(d.last, H1_CHUNK_ERROR);
    dechunk(&d, "0\r\nA: 123\r\n\r\n", 13, 0, 0, 10); /* trailer section of exactly 10 bytes */
    CHECK_EQ_INT(d.last, H1_CHUNK_END);
    dechunk(&d, "0\r\nA: 1234\r\n\r\n", 14, 0, 0, 10);
    CHECK_EQ_INT(d.last, H1_CHUNK_ERROR);
    memcpy(buf, "0\r\n", 3);
    for (int i = 0; i < 2000; i++)
        memcpy(buf + 3 + i * 9, "X: 1234\r\n", 9);
    dechunk(&d, buf, 3 + 2000 * 9, 0, 0, 0);
    CHECK_EQ_INT(d.last, H1_CHUNK_ERROR); /* 18000 > 16384 */
}

#define CHUNKED_STRICT(s, want)                                                                    \
    do {                                                                                           \
        struct dechunk d_;                                                                         \
        CHECK_EQ_INT(chunked_result_mode(s, sizeof(s) - 1, true, &d_), want);                      \
    } while (0)

/* Request bodies (crlf_only): every line end in the framing is CRLF. */
static void test_chunked_crlf_only(void)
{
    CHUNKED_STRICT("5\r\nhello\r\n0\r\nT: v\r\n\r\n", H1_CHUNK_END);
    CHUNKED_STRICT("5;a=b\r\nhe\nlo\r\n0\r\n\r\n", H1_CHUNK_END); /* LF in data is data */
    CHUNKED_STRICT("5\nhello\r\n0\r\n\r\n", H1_CHUNK_ERROR);      /* size line */
    CHUNKED_STRICT("5;a=b\nhello\r\n0\r\n\r\n", H1_CHUNK_ERROR);  /* size line after ext */
    CHUNKED_STRICT("5\r\nhello\n0\r\n\r\n", H1_CHUNK_ERROR);      /* after the data */
    CHUNKED_STRICT("5\r\nhello\r\n0\n\r\n", H1_CHUNK_ERROR);      /* last-chunk line */
    CHUNKED_STRICT("0\r\nT: v\n\r\n", H1_CHUNK_ERROR);            /* trailer line */
    CHUNKED_STRICT("0\r\nT: v\r\n\n", H1_CHUNK_ERROR);            /* the final empty line */
    CHUNKED_STRICT("0\r\n\n", H1_CHUNK_ERROR);
    /* h1_chunked_init clears it: a decoder reused for a response is lenient again. */
    struct h1_chunked c;
    h1_chunked_init(&c);
    c.crlf_only = true;
    h1_chunked_init(&c);
    CHECK(!c.crlf_only);
}

static void bench(int N)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    struct timespec a, b;
    size_t sum = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++) {
        h1_parse_request(typical, sizeof typical - 1, &r, h, &LIM);
        sum += r.head_len;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
    printf("h1_parse_request: %zu-byte GET, %u headers: %.1f ns/parse (%zu)\n", sizeof typical - 1,
           r.nheaders, ns, sum / N);

    static char body[1 << 16];
    size_t n = 0;
    while (n + 1100 < sizeof body) {
        n += (size_t)sprintf(body + n, "400\r\n");
        memset(body + n, 'x', 0x400);
        n += 0x400;
        n += (size_t)sprintf(body + n, "\r\n");
    }
    n += (size_t)sprintf(body + n, "0\r\n\r\n");
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N / 1000; i++) {
        struct h1_chunked c;
        h1_chunked_init(&c);
        size_t off = 0, used, dlen;
        const char *data;
        while (h1_chunked_decode(&c, body + off, n - off, &used, &data, &dlen) == H1_CHUNK_DATA)
            off += used;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (N / 1000);
    printf("h1_chunked_decode: %zu bytes in 1 KiB chunks: %.2f GB/s\n", n, (double)n / ns);
}

/* The number formatting the response writers use instead of snprintf. */
static void test_fmt_numbers(void)
{
    static const unsigned long long values[] = {
        0, 7, 10, 255, 4096, 65535, 1000000007ULL, 18446744073709551615ULL};
    char got[HTTP_NUM_MAX], want[32];
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        size_t n = http_fmt_dec(got, values[i]);
        snprintf(want, sizeof(want), "%llu", values[i]);
        CHECK(n == strlen(want) && memcmp(got, want, n) == 0);
        n = http_fmt_hex(got, values[i]);
        snprintf(want, sizeof(want), "%llx", values[i]);
        CHECK(n == strlen(want) && memcmp(got, want, n) == 0);
    }
    char line[16 + HTTP_NUM_MAX + 2];
    size_t n = http_fmt_line(line, "Content-Length: ", 16, 1234, 0);
    CHECK_SLICE(line, n, "Content-Length: 1234\r\n");
    n = http_fmt_line(line, "", 0, 4096, 1);
    CHECK_SLICE(line, n, "1000\r\n");
}

int main(int argc, char **argv)
{
    test_fmt_numbers();
    test_typical();
    test_field_values();
    test_line_endings();
    test_targets();
    test_pipelined();
    test_incremental();
    test_framing();
    test_flags();
    test_host();
    test_reject_bytes();
    test_reject_names();
    test_reject_request_line();
    test_reject_framing();
    test_limits();
    test_response_ok();
    test_response_bodies();
    test_response_reject();
    test_chunked_ok();
    test_chunked_spans();
    test_chunked_bad();
    test_chunked_crlf_only();
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        bench(argc > 2 ? atoi(argv[2]) : 2000000);
    return check_done("h1_parse");
}
