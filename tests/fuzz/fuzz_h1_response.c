/* libFuzzer harness for h1_parse_response: no crash, no read outside the input, documented
 * invariants. The first input byte picks the limits and whether the request was HEAD; the rest
 * is the response. A prefix of the input must never contradict the whole. */
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

static void check_ok(const struct h1_response *r, const struct h1_header *h, const char *buf,
                     size_t len, const struct h1_limits *lim, bool head)
{
    size_t hl = r->head_len;
    INVARIANT(hl <= len && hl <= lim->max_head && buf[hl - 1] == '\n');
    INVARIANT(r->error == NULL && r->headers == h && r->nheaders <= lim->max_headers);
    INVARIANT(r->status >= 100 && r->status <= 999);
    INVARIANT(r->minor == 0 || r->minor == 1);
    INVARIANT(in(r->reason, r->reason_len, buf, hl));
    INVARIANT(13 + (size_t)r->reason_len <= lim->max_request_line);
    for (uint32_t i = 0; i < r->reason_len; i++)
        INVARIANT(http_ctype[(unsigned char)r->reason[i]] & HTTP_CT_FIELD);
    for (uint32_t i = 0; i < r->nheaders; i++) {
        INVARIANT(h[i].name_len > 0 && in(h[i].name, h[i].name_len, buf, hl));
        INVARIANT(in(h[i].value, h[i].value_len, buf, hl));
        for (uint32_t j = 0; j < h[i].name_len; j++)
            INVARIANT(http_ctype[(unsigned char)h[i].name[j]] & HTTP_CT_TCHAR);
        for (uint32_t j = 0; j < h[i].value_len; j++)
            INVARIANT(http_ctype[(unsigned char)h[i].value[j]] & HTTP_CT_FIELD);
    }
    bool no_body = head || r->status < 200 || r->status == 204 || r->status == 304;
    INVARIANT(!no_body || r->body == H1_BODY_NONE);
    INVARIANT(no_body || r->body != H1_BODY_NONE);
    INVARIANT(r->body == H1_BODY_LENGTH || r->content_length == 0);
    INVARIANT(r->content_length <= (uint64_t)INT64_MAX);
    INVARIANT(r->minor == 1 || (r->flags & H1_F_CONN_KEEPALIVE) || (r->flags & H1_F_CONN_CLOSE));
}

static int parse_copy(const char *data, size_t n, struct h1_response *r, struct h1_header *h,
                      const struct h1_limits *lim, bool head)
{
    char *b = malloc(n ? n : 1); /* exact size: ASan sees any overread */
    memcpy(b, data, n);
    int rc = h1_parse_response(b, n, r, h, lim, head);
    free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const struct h1_limits *lim = &limits[data[0] & 3];
    bool head = data[0] & 4;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    struct h1_header h[MAXH];
    struct h1_response r, p;

    int rc = h1_parse_response(buf, len, &r, h, lim, head);
    INVARIANT(rc == H1_OK || rc == H1_INCOMPLETE || rc == H1_ERROR);
    if (rc == H1_OK)
        check_ok(&r, h, buf, len, lim, head);
    if (rc == H1_INCOMPLETE)
        INVARIANT(len <= lim->max_head && r.error == NULL);
    if (rc == H1_ERROR)
        INVARIANT(r.error != NULL);

    size_t k = len ? (data[0] * 131u + data[size / 2] * 7u + size) % len : 0;
    int prc = parse_copy(buf, k, &p, h, lim, head);
    if (rc == H1_OK && k < r.head_len)
        INVARIANT(prc == H1_INCOMPLETE);
    if (rc == H1_OK && k >= r.head_len)
        INVARIANT(prc == H1_OK && p.head_len == r.head_len);
    if (rc == H1_INCOMPLETE)
        INVARIANT(prc == H1_INCOMPLETE);
    if (prc == H1_ERROR)
        INVARIANT(rc == H1_ERROR);

    prc = parse_copy(buf, len, &p, h, lim, head);
    INVARIANT(prc == rc && p.head_len == r.head_len && p.status == r.status);
    INVARIANT(p.body == r.body && p.content_length == r.content_length && p.flags == r.flags);
    return 0;
}
