/* The HTTP/1.1 client codec (see h1_client.h). */
#include "http/h1_client.h"

#include "http/token.h"

#include <string.h>

/* ---- request ------------------------------------------------------------------------------ */

int h1_client_put(struct outq *q, struct buf_pool *pool, const char *data, size_t len)
{
    return outq_append(q, pool, data, len);
}

/* Reserved at once: this runs for every field of every request. */
int h1_client_put_field(struct outq *q, struct buf_pool *pool, const char *name, size_t nlen,
                        const char *value, size_t vlen)
{
    size_t room, need = nlen + vlen + 4;
    char *p = outq_reserve(q, pool, &room);
    if (!p || room < need)
        return -1;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '\r';
    *p = '\n';
    outq_commit(q, need);
    return 0;
}

int h1_client_put_number(struct outq *q, struct buf_pool *pool, const char *prefix, size_t plen,
                         unsigned long long v, bool hex)
{
    char line[32 + HTTP_NUM_MAX + 2];
    return plen > 32 ? -1 : h1_client_put(q, pool, line, http_fmt_line(line, prefix, plen, v, hex));
}

int h1_client_put_request_line(struct outq *q, struct buf_pool *pool, struct slice method,
                               struct slice path, struct slice query)
{
    if (h1_client_put(q, pool, method.p, method.len) || h1_client_put(q, pool, " ", 1) ||
        (path.p[0] != '/' && h1_client_put(q, pool, "/", 1)) ||
        h1_client_put(q, pool, path.p, path.len))
        return -1;
    if (query.p && (h1_client_put(q, pool, "?", 1) || h1_client_put(q, pool, query.p, query.len)))
        return -1;
    return h1_client_put(q, pool, " HTTP/1.1\r\n", 11);
}

int h1_client_put_framing(struct outq *q, struct buf_pool *pool, bool has_body,
                          int64_t content_length, bool *chunked)
{
    *chunked = has_body && content_length < 0;
    if (has_body && !*chunked)
        return h1_client_put_number(q, pool, "Content-Length: ", 16,
                                    (unsigned long long)content_length, false);
    if (*chunked)
        return h1_client_put(q, pool, "Transfer-Encoding: chunked\r\n", 28);
    return 0;
}

int h1_client_put_chunk_size(struct outq *q, struct buf_pool *pool, size_t len)
{
    return h1_client_put_number(q, pool, "", 0, len, true);
}

int h1_client_put_last_chunk(struct outq *q, struct buf_pool *pool)
{
    return h1_client_put(q, pool, "0\r\n", 3);
}

int h1_client_put_end(struct outq *q, struct buf_pool *pool)
{
    return h1_client_put(q, pool, "\r\n", 2);
}

/* ---- response head ------------------------------------------------------------------------ */

int h1_client_parse_head(struct buf *in, struct h1_response *res, struct h1_header *headers,
                         uint32_t max_headers, uint32_t max_line, bool head_request)
{
    struct h1_limits hl = {max_line, BUF_SIZE, max_headers};
    int r = h1_parse_response(in->data + in->start, buf_len(in), res, headers, &hl, head_request);
    if (r == H1_INCOMPLETE)
        return buf_room(in) == 0 && in->start == 0 ? H1_CLIENT_HEAD_TOO_LARGE : H1_CLIENT_HEAD_MORE;
    if (r == H1_ERROR)
        return H1_CLIENT_HEAD_INVALID;
    in->start += res->head_len;
    return H1_CLIENT_HEAD_DONE;
}

int h1_client_status_line(const char *line, size_t len)
{
    if (len < 13 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ')
        return -1;
    for (int i = 9; i < 12; i++)
        if (line[i] < '0' || line[i] > '9')
            return -1;
    if (line[12] != ' ' && line[12] != '\r' && line[12] != '\n')
        return -1;
    return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

bool h1_client_keeps_alive(const struct h1_response *res)
{
    return !(res->flags & H1_F_CONN_CLOSE) && res->body != H1_BODY_UNTIL_CLOSE;
}

/* A body framed by Transfer-Encoding is forwarded de-chunked, and the field itself is hop by hop:
 * any coding besides chunked (gzip, deflate, compress; chunked then gzip) would be lost, and the
 * client would get bytes it cannot read. Such a body is refused instead: we never advertise a
 * transfer coding (the client's TE is hop by hop and not forwarded), so an upstream that sends
 * one is broken, and no HTTP/2 client could be told of it anyway. */
const struct h1_header *h1_client_transfer_coding_refused(const struct h1_response *res)
{
    unsigned codings = 0;
    for (uint32_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (!http_token_eq(h->name, h->name_len, "transfer-encoding", 17))
            continue;
        const char *v = h->value, *end = h->value + h->value_len;
        while (v < end) {
            const char *comma = memchr(v, ',', (size_t)(end - v));
            const char *e = comma ? comma : end;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            const char *t = e;
            while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
                t--;
            if (t > v && (++codings > 1 || !http_token_eq(v, (size_t)(t - v), "chunked", 7)))
                return h;
            v = comma ? comma + 1 : end;
        }
    }
    return NULL;
}

const struct h1_header *h1_client_field(const struct h1_response *res, const char *lower,
                                        size_t len)
{
    for (uint32_t i = 0; i < res->nheaders; i++)
        if (http_token_eq(res->headers[i].name, res->headers[i].name_len, lower, len))
            return &res->headers[i];
    return NULL;
}

/* ---- response body ------------------------------------------------------------------------ */

void h1_client_body_start(struct h1_client_body *b, const struct h1_response *res)
{
    b->kind = res->body;
    b->left = res->content_length;
    h1_chunked_init(&b->chunk);
}

static int next_chunked(struct h1_client_body *b, struct buf *in, const char **data, size_t *len)
{
    size_t avail = in ? buf_len(in) : 0;
    const char *at = avail ? in->data + in->start : NULL;
    while (avail) {
        size_t used = 0;
        int r = h1_chunked_decode(&b->chunk, at, avail, &used, data, len);
        if (r == H1_CHUNK_ERROR)
            return H1_CLIENT_BODY_ERROR;
        if (r == H1_CHUNK_DATA) {
            in->start += (uint32_t)(*data - at);
            return H1_CLIENT_BODY_DATA;
        }
        in->start += (uint32_t)used;
        if (r == H1_CHUNK_END)
            return H1_CLIENT_BODY_END;
        at += used;
        avail -= used;
    }
    return H1_CLIENT_BODY_MORE;
}

int h1_client_body_next(struct h1_client_body *b, struct buf *in, bool eof, const char **data,
                        size_t *len)
{
    size_t avail = in ? buf_len(in) : 0;
    const char *at = avail ? in->data + in->start : NULL;
    switch (b->kind) {
    case H1_BODY_NONE:
        return H1_CLIENT_BODY_END;
    case H1_BODY_LENGTH:
        if (b->left == 0)
            return H1_CLIENT_BODY_END;
        if (!avail)
            return H1_CLIENT_BODY_MORE;
        *data = at;
        *len = avail < b->left ? avail : (size_t)b->left;
        return H1_CLIENT_BODY_DATA;
    case H1_BODY_UNTIL_CLOSE:
        if (!avail)
            return eof ? H1_CLIENT_BODY_END : H1_CLIENT_BODY_MORE;
        *data = at;
        *len = avail;
        return H1_CLIENT_BODY_DATA;
    case H1_BODY_CHUNKED:
        return next_chunked(b, in, data, len);
    }
    return H1_CLIENT_BODY_ERROR;
}

void h1_client_body_consumed(struct h1_client_body *b, struct buf *in, size_t n)
{
    in->start += (uint32_t)n;
    if (b->kind == H1_BODY_LENGTH)
        b->left -= n;
}
