/* libFuzzer harness for h1_parse_request: no crash, no read outside the input, and the
 * documented invariants hold. The first input byte picks the limits; the rest is the message.
 * The message is also parsed cut at a point derived from the input, and the answer for that
 * prefix must agree with the answer for the whole (the parser's incremental contract). */
#include "fuzz.h"
#include "http/h1_parse.h"
#include "http/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXH 100

static const struct h1_limits limits[4] = {
    {.max_request_line = 8192, .max_head = 65536, .max_headers = 100},
    {.max_request_line = 64, .max_head = 256, .max_headers = 8},
    {.max_request_line = 16, .max_head = 48, .max_headers = 2},
    {.max_request_line = 300, .max_head = 100, .max_headers = 0},
};

static int in(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

static void check_ok(const struct h1_request *r, const struct h1_header *h, const char *buf,
                     size_t len, const struct h1_limits *lim)
{
    size_t hl = r->head_len;
    INVARIANT(hl <= len && hl <= lim->max_head && buf[hl - 1] == '\n');
    INVARIANT(r->status == 0 && r->error == NULL && r->headers == h);
    INVARIANT(r->nheaders <= lim->max_headers);
    INVARIANT(r->minor == 0 || r->minor == 1);
    INVARIANT(r->method_len > 0 && in(r->method, r->method_len, buf, hl));
    INVARIANT(r->target_len > 0 && in(r->target, r->target_len, buf, hl));
    INVARIANT((size_t)r->method_len + r->target_len + 10 <= lim->max_request_line);
    for (uint32_t i = 0; i < r->method_len; i++)
        INVARIANT(http_ctype[(unsigned char)r->method[i]] & HTTP_CT_TCHAR);
    for (uint32_t i = 0; i < r->target_len; i++)
        INVARIANT(r->target[i] > 0x20 && r->target[i] < 0x7f);
    for (uint32_t i = 0; i < r->nheaders; i++) {
        INVARIANT(h[i].name_len > 0 && in(h[i].name, h[i].name_len, buf, hl));
        INVARIANT(in(h[i].value, h[i].value_len, buf, hl));
        for (uint32_t j = 0; j < h[i].name_len; j++)
            INVARIANT(http_ctype[(unsigned char)h[i].name[j]] & HTTP_CT_TCHAR);
        for (uint32_t j = 0; j < h[i].value_len; j++)
            INVARIANT(http_ctype[(unsigned char)h[i].value[j]] & HTTP_CT_FIELD);
        if (h[i].value_len) {
            INVARIANT(h[i].value[0] != ' ' && h[i].value[0] != '\t');
            INVARIANT(h[i].value[h[i].value_len - 1] != ' ' &&
                      h[i].value[h[i].value_len - 1] != '\t');
        }
    }
    INVARIANT(r->body == H1_BODY_NONE || r->body == H1_BODY_LENGTH || r->body == H1_BODY_CHUNKED);
    INVARIANT(r->body == H1_BODY_LENGTH || r->content_length == 0);
    INVARIANT(r->content_length <= (uint64_t)INT64_MAX);
    INVARIANT(r->body != H1_BODY_CHUNKED || r->minor == 1);
    INVARIANT((r->host != NULL) == (r->host_count > 0));
    INVARIANT(r->host == NULL || in(r->host, r->host_len, buf, hl));
    INVARIANT(r->minor == 1 || (r->flags & H1_F_CONN_KEEPALIVE) || (r->flags & H1_F_CONN_CLOSE));
    INVARIANT(r->minor == 1 || !(r->flags & H1_F_EXPECT_CONTINUE));
}

static int parse_copy(const char *data, size_t n, struct h1_request *r, struct h1_header *h,
                      const struct h1_limits *lim)
{
    char *b = malloc(n ? n : 1); /* exact size: ASan sees any overread */
    memcpy(b, data, n);
    int rc = h1_parse_request(b, n, r, h, lim);
    free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const struct h1_limits *lim = &limits[data[0] & 3];
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    struct h1_header h[MAXH];
    struct h1_request r, p;

    int rc = h1_parse_request(buf, len, &r, h, lim);
    INVARIANT(rc == H1_OK || rc == H1_INCOMPLETE || rc == H1_ERROR);
    if (rc == H1_OK)
        check_ok(&r, h, buf, len, lim);
    if (rc == H1_INCOMPLETE)
        INVARIANT(len <= lim->max_head && r.status == 0 && !r.error);
    if (rc == H1_ERROR) {
        int s = r.status;
        INVARIANT(r.error != NULL);
        INVARIANT(s == 400 || s == 414 || s == 431 || s == 501 || s == 505);
    }

    /* A prefix cut where the input says: never contradicts the whole. */
    size_t k = len ? (data[0] * 131u + data[size / 2] * 7u + size) % len : 0;
    int prc = parse_copy(buf, k, &p, h, lim);
    if (rc == H1_OK && k < r.head_len)
        INVARIANT(prc == H1_INCOMPLETE);
    if (rc == H1_OK && k >= r.head_len)
        INVARIANT(prc == H1_OK && p.head_len == r.head_len);
    if (rc == H1_INCOMPLETE)
        INVARIANT(prc == H1_INCOMPLETE);
    if (prc == H1_ERROR)
        INVARIANT(rc == H1_ERROR && p.status == r.status);

    /* Same bytes, same answer. */
    prc = parse_copy(buf, len, &p, h, lim);
    INVARIANT(prc == rc && p.head_len == r.head_len && p.status == r.status);
    INVARIANT(p.body == r.body && p.content_length == r.content_length && p.flags == r.flags);
    return 0;
}
