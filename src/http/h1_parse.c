/* HTTP/1.1 head parsing (RFC 9112 sections 2-6, field rules of RFC 9110 section 5).
 *
 * The parser reparses from the start of the buffer on every call, so it keeps no state between
 * calls. It is built so that the answer for a prefix never contradicts the answer for the whole:
 * a prefix of a valid head is H1_INCOMPLETE, and an error found in a prefix is the error the
 * whole buffer gets. To achieve that, the last, unterminated line is validated as far as it
 * goes, and limits are judged on the first max_head / max_request_line bytes only. A client is
 * thus rejected on its first bad byte instead of being waited for until its head completes. */
#include "http/h1_parse.h"
#include "http/token.h"

#include <string.h>

/* Largest accepted Content-Length: lengths are often handed to off_t and ssize_t APIs. */
#define CL_MAX ((uint64_t)INT64_MAX)

/* What a head parse gathers line by line. Framing is judged only once the head is complete,
 * because its meaning depends on the whole set of fields (TE with CL, the version, ...). */
struct head {
    struct h1_header *headers;
    uint32_t nheaders;
    uint32_t max_headers;
    uint32_t max_line;
    bool is_request;
    bool crlf_only; /* requests: a line ending is CRLF, a bare LF is an error */
    int minor;
    unsigned flags;
    bool cl_seen;
    bool te_seen;
    bool te_last_chunked;  /* the latest coding seen is chunked */
    bool te_chunked_early; /* a coding followed chunked: chunked is not final, or applied twice */
    bool te_unknown;       /* a coding other than chunked */
    bool te_invalid;       /* a list element that is not a transfer-coding */
    uint32_t te_codings;
    uint64_t cl;
    int host_count;
    const char *host;
    uint32_t host_len;
    int status;
    const char *error;
};

static int fail(struct head *h, int status, const char *why)
{
    h->status = status;
    h->error = why;
    return H1_ERROR;
}

/* The end of a construct was reached: an error if the line was complete, else wait. */
static int need_more(struct head *h, bool complete, const char *why)
{
    return complete ? fail(h, 400, why) : H1_INCOMPLETE;
}

static inline bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* Word-at-a-time scanning (SWAR): field values and targets are the long parts of a head, and
 * checking 8 bytes with a few integer operations beats 8 table lookups. The masks below flag
 * the high bit of bytes that are out of class. A borrow or carry can only spread upward from a
 * flagged byte, so the lowest flag is always exact: on a little-endian machine it locates the
 * first bad byte directly. Elsewhere a nonzero mask just hands over to the byte loop. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
#define SWAR_LE (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Flags bytes of w below n (n <= 128). */
static inline uint64_t below(uint64_t w, uint64_t n)
{
    return (w - ONES * n) & ~w & HIGHS;
}

/* Flags bytes that are not field bytes, and HTAB (rare; checked by the caller). */
static inline uint64_t field_mask(uint64_t w)
{
    return below(w, 0x20) | below(w ^ (ONES * 0x7f), 1);
}

/* Flags bytes that are not visible ASCII (0x21-0x7E). */
static inline uint64_t target_mask(uint64_t w)
{
    return below(w, 0x21) | (((w + ONES) | w) & HIGHS);
}

/* Returns the first byte in [p, end) that may not appear in a field value, or end. */
static const char *scan_field(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t m = field_mask(load64(p));
        if (!m) {
            p += 8;
            continue;
        }
        if (!SWAR_LE)
            break;
        p += __builtin_ctzll(m) >> 3;
        if (*p != '\t')
            return p;
        p++;
    }
    while (p < end && (http_ctype[(unsigned char)*p] & HTTP_CT_FIELD))
        p++;
    return p;
}

/* Returns the first byte in [p, end) that may not appear in a request-target, or end. */
static const char *scan_target(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t m = target_mask(load64(p));
        if (!m) {
            p += 8;
            continue;
        }
        if (SWAR_LE)
            return p + (__builtin_ctzll(m) >> 3);
        break;
    }
    while (p < end && (unsigned char)(*p - 0x21) < 0x5e)
        p++;
    return p;
}

/* Returns the first byte in [p, end) that is not a tchar, or end. Unrolled because names are
 * short and the loop overhead would otherwise cost as much as the lookups. */
static const char *scan_tchar(const char *p, const char *end)
{
#define TCHAR(i) (http_ctype[(unsigned char)p[i]] & HTTP_CT_TCHAR)
    for (; end - p >= 4; p += 4) {
        if (!TCHAR(0))
            return p;
        if (!TCHAR(1))
            return p + 1;
        if (!TCHAR(2))
            return p + 2;
        if (!TCHAR(3))
            return p + 3;
    }
    while (p < end && TCHAR(0))
        p++;
#undef TCHAR
    return p;
}

/* Error for a byte that may not appear where it is; the reason names the likely attack. */
static int bad_byte(struct head *h, char c, const char *where)
{
    if (c == '\r')
        return fail(h, 400, "bare CR");
    if (c == '\0')
        return fail(h, 400, "NUL byte");
    return fail(h, 400, where);
}

/* --- lines --- */

enum line_kind { LINE_COMPLETE, LINE_PARTIAL, LINE_TOO_LONG };

/* End of the content of an unterminated line: a final CR may be the start of its CRLF. */
static const char *partial_end(const char *p, const char *end)
{
    return end > p && end[-1] == '\r' ? end - 1 : end;
}

/* Finds the start line beginning at p, searching no further than a line of `max` content bytes
 * could reach, so that an endless line is refused after max bytes instead of max_head. Sets
 * *ce to the end of the content to validate (at most p + max) and *next past the LF. */
static enum line_kind find_start_line(const char *p, const char *end, size_t max, const char **ce,
                                      const char **next)
{
    size_t avail = (size_t)(end - p);
    size_t win = avail < max + 2 ? avail : max + 2; /* content, CR, LF */
    const char *lf = memchr(p, '\n', win);
    const char *e;
    if (lf) {
        e = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
        *next = lf + 1;
    } else {
        e = partial_end(p, p + win);
    }
    if ((size_t)(e - p) > max) {
        *ce = p + max;
        return LINE_TOO_LONG;
    }
    *ce = e;
    return lf ? LINE_COMPLETE : LINE_PARTIAL;
}

/* Skips the empty lines RFC 9112 section 2.2 lets a server ignore before a request line. */
static int skip_empty_lines(struct head *h, const char **pp, const char *end)
{
    const char *p = *pp;
    for (;;) {
        if (p == end)
            return H1_INCOMPLETE;
        if (*p == '\n') {
            if (h->crlf_only)
                return fail(h, 400, "bare LF");
            p++;
        } else if (*p == '\r') {
            if (p + 1 == end)
                return H1_INCOMPLETE;
            if (p[1] != '\n')
                return fail(h, 400, "bare CR");
            p += 2;
        } else {
            *pp = p;
            return H1_OK;
        }
    }
}

/* --- start lines --- */

/* Checks the first n (<= 8) bytes of an HTTP-version: "HTTP/" DIGIT "." DIGIT. */
static bool version_prefix_ok(const char *p, size_t n)
{
    static const char pat[8] = "HTTP/0.0";
    for (size_t i = 0; i < n; i++) {
        bool ok = i == 5 || i == 7 ? is_digit(p[i]) : p[i] == pat[i];
        if (!ok)
            return false;
    }
    return true;
}

/* Of a well-formed version, the minor we speak (0 or 1), or -1 for another version. */
static int version_minor(const char *p)
{
    return p[5] == '1' && (p[7] == '0' || p[7] == '1') ? p[7] - '0' : -1;
}

/* The version ending a request line. HTTP/x.y that we do not speak is 505, anything else 400. */
static int request_version(struct head *h, const char *p, const char *ce, bool complete)
{
    size_t n = (size_t)(ce - p);
    if (complete && n == 8 && memcmp(p, "HTTP/1.1", 8) == 0) {
        h->minor = 1; /* the common case, in one compare */
        return H1_OK;
    }
    if (n > 8 || !version_prefix_ok(p, n))
        return fail(h, 400, "malformed HTTP version");
    if (n < 8)
        return need_more(h, complete, "malformed HTTP version");
    if (!complete)
        return H1_INCOMPLETE;
    h->minor = version_minor(p);
    if (h->minor < 0)
        return fail(h, 505, "unsupported HTTP version");
    return H1_OK;
}

/* request-line = method SP request-target SP HTTP-version, on [p, ce). `complete` says ce is
 * the real end of the line; otherwise only what is there is checked. */
static int request_line(struct head *h, struct h1_request *req, const char *p, const char *ce,
                        bool complete)
{
    const char *s = p;
    p = scan_tchar(p, ce);
    if (p == ce)
        return need_more(h, complete, "malformed request line");
    if (*p != ' ' || p == s)
        return bad_byte(h, *p, "invalid method");
    req->method = s;
    req->method_len = (uint32_t)(p - s);

    s = ++p;
    p = scan_target(p, ce);
    if (p == ce)
        return need_more(h, complete, "missing HTTP version");
    if (*p != ' ') {
        if ((unsigned char)*p >= 0x80)
            return fail(h, 400, "non-ASCII byte in request target");
        return bad_byte(h, *p, "control character in request target");
    }
    if (p == s)
        return fail(h, 400, "empty request target");
    req->target = s;
    req->target_len = (uint32_t)(p - s);
    return request_version(h, p + 1, ce, complete);
}

/* Status code and optional reason after "HTTP/x.y ". RFC 9112 requires the SP before an empty
 * reason, but many servers omit it, and the reason carries no meaning, so it is optional. */
static int status_rest(struct head *h, struct h1_response *res, const char *p, const char *ce,
                       bool complete)
{
    int code = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (p == ce)
            return need_more(h, complete, "malformed status code");
        if (!is_digit(*p) || (i == 0 && *p == '0'))
            return fail(h, 400, "malformed status code");
        code = code * 10 + (*p - '0');
    }
    res->status = code;
    res->reason = p;
    if (p < ce) {
        if (*p != ' ')
            return fail(h, 400, "malformed status code");
        const char *bad = scan_field(++p, ce);
        if (bad != ce)
            return bad_byte(h, *bad, "control character in reason phrase");
        res->reason = p;
        res->reason_len = (uint32_t)(ce - p);
    }
    return complete ? H1_OK : H1_INCOMPLETE;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
static int status_line(struct head *h, struct h1_response *res, const char *p, const char *ce,
                       bool complete)
{
    size_t n = (size_t)(ce - p);
    if (!version_prefix_ok(p, n < 8 ? n : 8))
        return fail(h, 400, "malformed HTTP version");
    if (n < 9)
        return need_more(h, complete, "malformed status line");
    if (p[8] != ' ')
        return fail(h, 400, "malformed HTTP version");
    int rc = status_rest(h, res, p + 9, ce, complete);
    if (rc != H1_OK)
        return rc;
    h->minor = version_minor(p);
    if (h->minor < 0)
        return fail(h, 400, "unsupported HTTP version");
    return H1_OK;
}

/* --- framing fields --- */

/* Next element of a comma-separated list (RFC 9110 section 5.6.1), OWS trimmed; empty
 * elements are skipped as the RFC requires. Returns false at the end of the list. */
static bool next_elem(const char **pp, const char *end, const char **e, size_t *elen)
{
    const char *p = *pp;
    while (p < end && (is_ws(*p) || *p == ','))
        p++;
    if (p == end)
        return false;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *q = comma ? comma : end;
    *pp = q;
    while (q > p && is_ws(q[-1]))
        q--;
    *e = p;
    *elen = (size_t)(q - p);
    return true;
}

/* Content-Length = 1*DIGIT, or a list of identical values (RFC 9110 section 8.6), possibly
 * over several lines. Anything else is ambiguous framing. */
static int content_length(struct head *h, const char *p, const char *end)
{
    for (;;) {
        while (p < end && is_ws(*p))
            p++;
        const char *d = p;
        uint64_t v = 0;
        for (; p < end && is_digit(*p); p++) {
            unsigned digit = (unsigned)(*p - '0');
            if (v > (CL_MAX - digit) / 10)
                return fail(h, 400, "Content-Length too large");
            v = v * 10 + digit;
        }
        if (p == d)
            return fail(h, 400, "invalid Content-Length");
        while (p < end && is_ws(*p))
            p++;
        if (h->cl_seen && v != h->cl)
            return fail(h, 400, "differing Content-Length values");
        h->cl = v;
        h->cl_seen = true;
        if (p == end)
            return H1_OK;
        if (*p != ',')
            return fail(h, 400, "invalid Content-Length");
        p++;
    }
}

/* One transfer-coding = token *( OWS ";" OWS transfer-parameter ). Parameters are not parsed:
 * a coding with parameters is one we do not implement, and chunked takes none. */
static void te_coding(struct head *h, const char *e, size_t len)
{
    const char *end = e + len;
    const char *t = scan_tchar(e, end);
    const char *r = t;
    while (r < end && is_ws(*r))
        r++;
    bool chunked = http_token_eq(e, (size_t)(t - e), "chunked", 7);
    if (t == e || (r < end && (*r != ';' || chunked || memchr(r, '"', (size_t)(end - r)))))
        h->te_invalid = true;
    if (h->te_last_chunked)
        h->te_chunked_early = true;
    h->te_last_chunked = chunked && t == end;
    if (!chunked)
        h->te_unknown = true;
    h->te_codings++;
}

static void connection_tokens(struct head *h, const char *p, const char *end)
{
    const char *e;
    size_t n;
    while (next_elem(&p, end, &e, &n)) {
        if (http_token_eq(e, n, "close", 5))
            h->flags |= H1_F_CONN_CLOSE;
        else if (http_token_eq(e, n, "keep-alive", 10))
            h->flags |= H1_F_CONN_KEEPALIVE;
        else if (http_token_eq(e, n, "upgrade", 7))
            h->flags |= H1_F_CONN_UPGRADE;
    }
}

static void expect_tokens(struct head *h, const char *p, const char *end)
{
    const char *e;
    size_t n;
    while (next_elem(&p, end, &e, &n))
        if (http_token_eq(e, n, "100-continue", 12))
            h->flags |= H1_F_EXPECT_CONTINUE;
}

/* Notes what the framing and connection handling need from one field. Dispatch on the name
 * length first: most fields match none and cost one switch. */
static int special_field(struct head *h, const struct h1_header *f)
{
    const char *n = f->name, *v = f->value, *end = f->value + f->value_len;
    switch (f->name_len) {
    case 4:
        if (h->is_request && http_token_eq(n, 4, "host", 4) && h->host_count++ == 0) {
            h->host = v;
            h->host_len = f->value_len;
        }
        return H1_OK;
    case 6:
        if (h->is_request && http_token_eq(n, 6, "expect", 6))
            expect_tokens(h, v, end);
        return H1_OK;
    case 7:
        if (http_token_eq(n, 7, "upgrade", 7))
            h->flags |= H1_F_HAS_UPGRADE;
        return H1_OK;
    case 10:
        if (http_token_eq(n, 10, "connection", 10))
            connection_tokens(h, v, end);
        return H1_OK;
    case 14:
        if (http_token_eq(n, 14, "content-length", 14))
            return content_length(h, v, end);
        return H1_OK;
    case 17:
        if (http_token_eq(n, 17, "transfer-encoding", 17)) {
            const char *e;
            size_t elen;
            h->te_seen = true;
            while (next_elem(&v, end, &e, &elen))
                te_coding(h, e, elen);
        }
        return H1_OK;
    default:
        return H1_OK;
    }
}

/* --- field lines --- */

static int bad_name_byte(struct head *h, char c)
{
    if (is_ws(c))
        return fail(h, 400, "whitespace in header name or before colon");
    if (c == '\r' || c == '\n')
        return fail(h, 400, "missing colon in header");
    return bad_byte(h, c, "invalid character in header name");
}

/* The line end after a field value at p: CRLF or LF. Sets *pp past it. */
static int field_line_end(struct head *h, const char **pp, const char *p, const char *end)
{
    if (*p == '\r') {
        if (++p == end)
            return H1_INCOMPLETE;
        if (*p != '\n')
            return fail(h, 400, "bare CR");
    } else if (*p != '\n') {
        return bad_byte(h, *p, "control character in header value");
    } else if (h->crlf_only) {
        return fail(h, 400, "bare LF");
    }
    *pp = p + 1;
    return H1_OK;
}

/* field-line = field-name ":" OWS field-value OWS, starting at *pp. One pass: the value scan
 * stops at the line end, so no separate search for it. On H1_OK the field is stored, looked
 * at for framing, and *pp is past the line. */
static int field_line(struct head *h, const char **pp, const char *end)
{
    const char *p = *pp, *name = p;
    p = scan_tchar(p, end);
    if (p == end)
        return H1_INCOMPLETE;
    if (*p != ':')
        return bad_name_byte(h, *p);
    if (p == name)
        return fail(h, 400, "empty header name");
    uint32_t name_len = (uint32_t)(p - name);
    for (p++; p < end && is_ws(*p); p++)
        ;
    const char *value = p;
    p = scan_field(p, end);
    if (p == end)
        return H1_INCOMPLETE;
    const char *ve = p;
    int rc = field_line_end(h, pp, p, end);
    if (rc != H1_OK)
        return rc;
    while (ve > value && is_ws(ve[-1]))
        ve--;
    struct h1_header *f = &h->headers[h->nheaders++];
    f->name = name;
    f->name_len = name_len;
    f->value = value;
    f->value_len = (uint32_t)(ve - value);
    return special_field(h, f);
}

/* The empty line ending the head starts at p. */
static int end_of_head(struct head *h, const char **pp, const char *p, const char *end)
{
    if (*p == '\r') {
        if (p + 1 == end)
            return H1_INCOMPLETE;
        if (p[1] != '\n')
            return fail(h, 400, "bare CR");
        p++;
    } else if (h->crlf_only) {
        return fail(h, 400, "bare LF");
    }
    *pp = p + 1;
    return H1_OK;
}

/* Field lines up to and including the empty line; *pp ends past it on H1_OK. */
static int field_lines(struct head *h, const char **pp, const char *end)
{
    for (;;) {
        const char *p = *pp;
        if (p == end)
            return H1_INCOMPLETE;
        if (*p == '\r' || *p == '\n')
            return end_of_head(h, pp, p, end);
        /* A line starting with whitespace continues the previous one (obs-fold) or, right
         * after the start line, hides a field from some parsers: refuse both. */
        if (is_ws(*p))
            return fail(h, 400, "obs-fold in header");
        if (h->nheaders == h->max_headers)
            return fail(h, 431, "too many header fields");
        int rc = field_line(h, pp, end);
        if (rc != H1_OK)
            return rc;
    }
}

/* --- requests --- */

static void head_init(struct head *h, struct h1_header *headers, const struct h1_limits *lim,
                      bool is_request)
{
    memset(h, 0, sizeof *h);
    h->headers = headers;
    h->max_headers = lim->max_headers;
    h->max_line = lim->max_request_line;
    h->is_request = is_request;
    /* RFC 9112 section 2.2 lets a recipient accept a bare LF as a line end; a front end must
     * not, because a back end that does not would see other lines than we did. Responses come
     * from our own upstreams and are re-framed, so they keep the tolerance. */
    h->crlf_only = is_request;
}

/* Connection defaults: HTTP/1.0 closes unless asked to keep alive (RFC 9112 section 9.3). */
static void connection_defaults(struct head *h)
{
    if (h->minor == 0 && !(h->flags & H1_F_CONN_KEEPALIVE))
        h->flags |= H1_F_CONN_CLOSE;
}

/* Request framing, RFC 9112 section 6.3, refusing everything a peer could read differently. */
static int request_framing(struct head *h, struct h1_request *req)
{
    if (h->te_seen) {
        if (h->cl_seen)
            return fail(h, 400, "Content-Length with Transfer-Encoding");
        if (h->te_invalid || h->te_codings == 0)
            return fail(h, 400, "invalid Transfer-Encoding");
        if (h->te_chunked_early || !h->te_last_chunked)
            return fail(h, 400, "chunked is not the final transfer coding");
        /* We forward bodies dechunked, so a coding under chunked would be lost: refuse it. */
        if (h->te_unknown)
            return fail(h, 501, "unsupported transfer coding");
        if (h->minor == 0)
            return fail(h, 400, "Transfer-Encoding in HTTP/1.0 request");
        req->body = H1_BODY_CHUNKED;
    } else if (h->cl_seen) {
        req->body = H1_BODY_LENGTH;
        req->content_length = h->cl;
    }
    return H1_OK;
}

static int request_head(struct head *h, struct h1_request *req, const char *buf, const char *end)
{
    const char *p = buf, *ce, *next;
    int rc = skip_empty_lines(h, &p, end);
    if (rc != H1_OK)
        return rc;
    enum line_kind kind = find_start_line(p, end, h->max_line, &ce, &next);
    rc = request_line(h, req, p, ce, kind == LINE_COMPLETE);
    if (rc == H1_ERROR)
        return rc;
    if (kind == LINE_TOO_LONG)
        return fail(h, 414, "request line too long");
    if (kind == LINE_PARTIAL)
        return H1_INCOMPLETE;
    if (next[-2] != '\r')
        return fail(h, 400, "bare LF");
    p = next;
    rc = field_lines(h, &p, end);
    if (rc != H1_OK)
        return rc;
    req->head_len = (uint32_t)(p - buf);
    req->minor = h->minor;
    /* RFC 9110 section 10.1.1: an HTTP/1.0 client cannot expect 100 (Continue). */
    if (h->minor == 0)
        h->flags &= ~(unsigned)H1_F_EXPECT_CONTINUE;
    connection_defaults(h);
    return request_framing(h, req);
}

int h1_parse_request(const char *buf, size_t len, struct h1_request *req, struct h1_header *headers,
                     const struct h1_limits *lim)
{
    struct head h;
    head_init(&h, headers, lim, true);
    memset(req, 0, sizeof *req);
    req->headers = headers;
    /* Judge only the first max_head bytes: an error in them wins over "too large", the same
     * answer whether the rest has arrived or not. */
    size_t n = len < lim->max_head ? len : lim->max_head;
    int rc = request_head(&h, req, buf, buf + n);
    if (rc == H1_INCOMPLETE && len > lim->max_head)
        rc = fail(&h, 431, "request head too large");
    req->nheaders = h.nheaders;
    req->flags = h.flags;
    req->host_count = h.host_count;
    req->host = h.host;
    req->host_len = h.host_len;
    req->status = rc == H1_ERROR ? h.status : 0;
    req->error = rc == H1_ERROR ? h.error : NULL;
    return rc;
}

/* --- responses --- */

/* Response framing, RFC 9112 section 6.3. Contradictions are refused even where the status
 * means no body: a server that sends them is broken, and its connection is not to be reused. */
static void response_framing(struct head *h, struct h1_response *res, bool head_request)
{
    int s = res->status;
    if (head_request || s < 200 || s == 204 || s == 304) {
        res->body = H1_BODY_NONE;
    } else if (h->te_seen) {
        res->body = h->te_last_chunked ? H1_BODY_CHUNKED : H1_BODY_UNTIL_CLOSE;
    } else if (h->cl_seen) {
        res->body = H1_BODY_LENGTH;
        res->content_length = h->cl;
    } else {
        res->body = H1_BODY_UNTIL_CLOSE;
    }
}

static int response_checks(struct head *h)
{
    if (!h->te_seen)
        return H1_OK;
    if (h->cl_seen)
        return fail(h, 400, "Content-Length with Transfer-Encoding");
    if (h->te_invalid || h->te_codings == 0)
        return fail(h, 400, "invalid Transfer-Encoding");
    /* chunked before another coding means "until close" (RFC 9112 section 6.3), but chunked
     * twice is a framing no two parsers agree on. */
    if (h->te_chunked_early && h->te_last_chunked)
        return fail(h, 400, "chunked applied more than once");
    return H1_OK;
}

static int response_head(struct head *h, struct h1_response *res, const char *buf, const char *end,
                         bool head_request)
{
    const char *p = buf, *ce, *next;
    enum line_kind kind = find_start_line(p, end, h->max_line, &ce, &next);
    int rc = status_line(h, res, p, ce, kind == LINE_COMPLETE);
    if (rc == H1_ERROR)
        return rc;
    if (kind == LINE_TOO_LONG)
        return fail(h, 400, "status line too long");
    if (kind == LINE_PARTIAL)
        return H1_INCOMPLETE;
    p = next;
    rc = field_lines(h, &p, end);
    if (rc != H1_OK)
        return rc;
    res->head_len = (uint32_t)(p - buf);
    res->minor = h->minor;
    connection_defaults(h);
    rc = response_checks(h);
    if (rc != H1_OK)
        return rc;
    response_framing(h, res, head_request);
    return H1_OK;
}

/* Shares the request machinery; the status it records is dropped, as a bad response is the
 * proxy's 502 to answer, and only the reason is reported. */
int h1_parse_response(const char *buf, size_t len, struct h1_response *res,
                      struct h1_header *headers, const struct h1_limits *lim, bool head_request)
{
    struct head h;
    head_init(&h, headers, lim, false);
    memset(res, 0, sizeof *res);
    res->headers = headers;
    size_t n = len < lim->max_head ? len : lim->max_head;
    int rc = response_head(&h, res, buf, buf + n, head_request);
    if (rc == H1_INCOMPLETE && len > lim->max_head)
        rc = fail(&h, 400, "response head too large");
    res->nheaders = h.nheaders;
    res->flags = h.flags;
    res->error = rc == H1_ERROR ? h.error : NULL;
    return rc;
}
