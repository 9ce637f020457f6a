/* Unit tests for the HTTP/1.1 client codec (src/http/h1_client.h): the request head and body
 * framing it writes (exact bytes), the response heads it reads, and the response body framing
 * it tracks (Content-Length, chunked, until close). */
#include "check.h"
#include "http/h1_client.h"

#define MAXH 16

/* The bytes queued in q so far. */
static int queued_is(const struct outq *q, const char *want)
{
    size_t n = q->gen ? q->gen->end - q->gen->start : 0;
    return n == strlen(want) && (!n || memcmp(q->gen->data + q->gen->start, want, n) == 0);
}

static struct slice lit(const char *s)
{
    return (struct slice){s, strlen(s)};
}

static void test_request_line(struct buf_pool *pool)
{
    struct outq q = {0};
    CHECK_EQ_INT(h1_client_put_request_line(&q, pool, lit("GET"), lit("/a/b"), lit("x=1&y")), 0);
    CHECK(queued_is(&q, "GET /a/b?x=1&y HTTP/1.1\r\n"));
    outq_release(&q, pool);

    /* A path left without its slash (a stripped prefix) gets one; no '?' without a query. */
    CHECK_EQ_INT(h1_client_put_request_line(&q, pool, lit("POST"), lit("rest"), (struct slice){0}),
                 0);
    CHECK(queued_is(&q, "POST /rest HTTP/1.1\r\n"));
    outq_release(&q, pool);

    /* "GET /p?" has an empty query: the '?' is kept as the client sent it. */
    CHECK_EQ_INT(h1_client_put_request_line(&q, pool, lit("GET"), lit("/p"), (struct slice){"", 0}),
                 0);
    CHECK(queued_is(&q, "GET /p? HTTP/1.1\r\n"));
    outq_release(&q, pool);
}

static void test_fields_and_framing(struct buf_pool *pool)
{
    struct outq q = {0};
    bool chunked = true;
    CHECK_EQ_INT(h1_client_put_field(&q, pool, "Host", 4, "app:8080", 8), 0);
    CHECK_EQ_INT(h1_client_put_framing(&q, pool, true, 1234, &chunked), 0);
    CHECK(!chunked);
    CHECK_EQ_INT(h1_client_put_end(&q, pool), 0);
    CHECK(queued_is(&q, "Host: app:8080\r\nContent-Length: 1234\r\n\r\n"));
    outq_release(&q, pool);

    CHECK_EQ_INT(h1_client_put_framing(&q, pool, true, -1, &chunked), 0);
    CHECK(chunked);
    CHECK_EQ_INT(h1_client_put_chunk_size(&q, pool, 0x1a2b), 0);
    CHECK_EQ_INT(h1_client_put_last_chunk(&q, pool), 0);
    CHECK_EQ_INT(h1_client_put_field(&q, pool, "X-T", 3, "v", 1), 0);
    CHECK_EQ_INT(h1_client_put_end(&q, pool), 0);
    CHECK(queued_is(&q, "Transfer-Encoding: chunked\r\n1a2b\r\n0\r\nX-T: v\r\n\r\n"));
    outq_release(&q, pool);

    /* No body: no framing field at all. */
    CHECK_EQ_INT(h1_client_put_framing(&q, pool, false, -1, &chunked), 0);
    CHECK(!chunked);
    CHECK(queued_is(&q, ""));
    CHECK_EQ_INT(h1_client_put_number(&q, pool, "0123456789012345678901234567890123", 34, 1, false),
                 -1); /* a prefix over 32 bytes is refused, not cut */
    outq_release(&q, pool);
}

static void fill(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    memcpy(b->data + b->end, s, n);
    b->end += (uint32_t)n;
}

static void test_parse_head(struct buf_pool *pool)
{
    struct buf *b = buf_get(pool);
    struct h1_response res;
    struct h1_header h[MAXH];

    fill(b, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n");
    CHECK_EQ_INT(h1_client_parse_head(b, &res, h, MAXH, 8192, false), H1_CLIENT_HEAD_MORE);
    CHECK_EQ_INT(b->start, 0);
    fill(b, "\r\nhello");
    CHECK_EQ_INT(h1_client_parse_head(b, &res, h, MAXH, 8192, false), H1_CLIENT_HEAD_DONE);
    CHECK_EQ_INT(res.status, 200);
    CHECK_EQ_INT(res.body, H1_BODY_LENGTH);
    CHECK_EQ_INT(res.content_length, 5);
    CHECK_SLICE(b->data + b->start, buf_len(b), "hello"); /* start moved past the head */
    CHECK(!h1_client_keeps_alive(&res));
    const struct h1_header *f = h1_client_field(&res, "connection", 10);
    CHECK(f && f->value_len == 5 && memcmp(f->value, "close", 5) == 0);
    CHECK(h1_client_field(&res, "upgrade", 7) == NULL);

    b->start = b->end = 0;
    fill(b, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    CHECK_EQ_INT(h1_client_parse_head(b, &res, h, MAXH, 8192, false), H1_CLIENT_HEAD_INVALID);
    CHECK(res.error != NULL);
    CHECK_EQ_INT(b->start, 0);

    /* A full buffer without the end of a head: too large, not "more". */
    b->start = 0;
    b->end = 0;
    fill(b, "HTTP/1.1 200 OK\r\n");
    while (buf_room(b) >= 10)
        fill(b, "X-A: 1234\r");
    memset(b->data + b->end, 'a', buf_room(b));
    b->end = BUF_SIZE;
    CHECK_EQ_INT(h1_client_parse_head(b, &res, h, MAXH, 8192, false), H1_CLIENT_HEAD_INVALID);
    b->start = b->end = 0;
    fill(b, "HTTP/1.1 200 OK\r\nX-Long: ");
    memset(b->data + b->end, 'a', buf_room(b));
    b->end = BUF_SIZE;
    CHECK_EQ_INT(h1_client_parse_head(b, &res, h, MAXH, 8192, false), H1_CLIENT_HEAD_TOO_LARGE);

    /* HEAD: no body whatever Content-Length says; keep-alive by default in HTTP/1.1. */
    b->start = b->end = 0;
    fill(b, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    CHECK_EQ_INT(h1_client_parse_head(b, &res, h, MAXH, 8192, true), H1_CLIENT_HEAD_DONE);
    CHECK_EQ_INT(res.body, H1_BODY_NONE);
    CHECK(h1_client_keeps_alive(&res));

    /* Neither length nor chunked: the body runs until close, so the connection cannot stay. */
    b->start = b->end = 0;
    fill(b, "HTTP/1.1 200 OK\r\n\r\n");
    CHECK_EQ_INT(h1_client_parse_head(b, &res, h, MAXH, 8192, false), H1_CLIENT_HEAD_DONE);
    CHECK_EQ_INT(res.body, H1_BODY_UNTIL_CLOSE);
    CHECK(!h1_client_keeps_alive(&res));
    buf_put(pool, b);
}

static void test_status_line(void)
{
    CHECK_EQ_INT(h1_client_status_line("HTTP/1.1 204 No Content\r\n", 25), 204);
    CHECK_EQ_INT(h1_client_status_line("HTTP/1.0 503\r\n", 14), 503);
    CHECK_EQ_INT(h1_client_status_line("HTTP/1.1 200\n", 13), 200);
    CHECK_EQ_INT(h1_client_status_line("HTTP/1.1 20 OK\r\n", 16), -1);
    CHECK_EQ_INT(h1_client_status_line("HTTP/1.1 2000 OK\r\n", 18), -1);
    CHECK_EQ_INT(h1_client_status_line("HTTP/2.0 200 OK\r\n", 17), -1);
    CHECK_EQ_INT(h1_client_status_line("HTTP/1.x 200 OK\r\n", 17), -1);
    CHECK_EQ_INT(h1_client_status_line("HTTP/1.1 200", 12), -1); /* no line end yet */
    CHECK_EQ_INT(h1_client_status_line("SSH-2.0-OpenSSH_9.6\r\n", 21), -1);
}

static const char *coding_refused(const char *value)
{
    struct h1_header h = {"Transfer-Encoding", value, 17, (uint32_t)strlen(value)};
    struct h1_response res = {.headers = &h, .nheaders = 1};
    const struct h1_header *r = h1_client_transfer_coding_refused(&res);
    return r ? r->value : NULL;
}

static void test_transfer_codings(void)
{
    CHECK(coding_refused("chunked") == NULL);
    CHECK(coding_refused(" Chunked ") == NULL);
    CHECK(coding_refused("gzip") != NULL);
    CHECK(coding_refused("gzip, chunked") != NULL);
    CHECK(coding_refused("chunked, chunked") != NULL);
    CHECK(coding_refused("chunked, gzip") != NULL);
}

static int next(struct h1_client_body *body, struct buf *b, bool eof, const char **d, size_t *n)
{
    return h1_client_body_next(body, b, eof, d, n);
}

static void test_body_length(struct buf_pool *pool)
{
    struct buf *b = buf_get(pool);
    struct h1_response res = {.body = H1_BODY_LENGTH, .content_length = 5};
    struct h1_client_body body;
    const char *d;
    size_t n;

    h1_client_body_start(&body, &res);
    CHECK_EQ_INT(next(&body, NULL, false, &d, &n), H1_CLIENT_BODY_MORE);
    fill(b, "abc");
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_DATA);
    CHECK_SLICE(d, n, "abc");
    h1_client_body_consumed(&body, b, n);
    fill(b, "deXTRA"); /* bytes behind the body are not handed out */
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_DATA);
    CHECK_SLICE(d, n, "de");
    h1_client_body_consumed(&body, b, n);
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_END);
    CHECK_SLICE(b->data + b->start, buf_len(b), "XTRA");
    buf_put(pool, b);
}

static void test_body_until_close(struct buf_pool *pool)
{
    struct buf *b = buf_get(pool);
    struct h1_response res = {.body = H1_BODY_UNTIL_CLOSE};
    struct h1_client_body body;
    const char *d;
    size_t n;

    h1_client_body_start(&body, &res);
    fill(b, "all of it");
    CHECK_EQ_INT(next(&body, b, true, &d, &n), H1_CLIENT_BODY_DATA); /* read what came first */
    CHECK_SLICE(d, n, "all of it");
    h1_client_body_consumed(&body, b, n);
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_MORE);
    CHECK_EQ_INT(next(&body, b, true, &d, &n), H1_CLIENT_BODY_END);

    res.body = H1_BODY_NONE;
    h1_client_body_start(&body, &res);
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_END);
    buf_put(pool, b);
}

static void test_body_chunked(struct buf_pool *pool)
{
    struct buf *b = buf_get(pool);
    struct h1_response res = {.body = H1_BODY_CHUNKED};
    struct h1_client_body body;
    const char *d;
    size_t n;

    h1_client_body_start(&body, &res);
    fill(b, "5\r\nhel");
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_DATA);
    CHECK_SLICE(d, n, "hel");
    CHECK_EQ_INT(b->start, 3); /* the size line is consumed by the codec */
    h1_client_body_consumed(&body, b, n);
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_MORE);
    fill(b, "lo\r\n0\r\n\r\nNEXT");
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_DATA);
    CHECK_SLICE(d, n, "lo");
    h1_client_body_consumed(&body, b, n);
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_END);
    CHECK_SLICE(b->data + b->start, buf_len(b), "NEXT");

    b->start = b->end = 0;
    h1_client_body_start(&body, &res);
    fill(b, "zz\r\n");
    CHECK_EQ_INT(next(&body, b, false, &d, &n), H1_CLIENT_BODY_ERROR);
    buf_put(pool, b);
}

int main(void)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 4);
    test_request_line(&pool);
    test_fields_and_framing(&pool);
    test_parse_head(&pool);
    test_status_line();
    test_transfer_codings();
    test_body_length(&pool);
    test_body_until_close(&pool);
    test_body_chunked(&pool);
    buf_pool_fini(&pool);
    return check_done("h1_client");
}
