/* The output queue's writer path (TLS): a response head and a small body, or a chunk and its
 * CRLF, go out in one write (one TLS record, one packet), large parts are not copied whole,
 * and a write retried after EAGAIN is the same as the one that failed (OpenSSL refuses a
 * shorter one with "bad length"). */
#include "check.h"
#include "core/buf.h"
#include "net/outq.h"

#include <errno.h>

struct writer {
    size_t calls;
    size_t lens[64];
    char got[1 << 18];
    size_t got_len;
    int again; /* answer EAGAIN this many times first */
    size_t take_max;
};

static long record(void *ctx, const char *p, size_t len)
{
    struct writer *w = ctx;
    if (w->calls < 64)
        w->lens[w->calls] = len;
    w->calls++;
    if (w->again > 0) {
        w->again--;
        errno = EAGAIN;
        return -1;
    }
    size_t n = w->take_max && len > w->take_max ? w->take_max : len;
    memcpy(w->got + w->got_len, p, n);
    w->got_len += n;
    return (long)n;
}

static void test_head_and_small_body_in_one_write(struct buf_pool *p)
{
    struct writer w = {0};
    struct outq q = {0};
    CHECK(outq_append(&q, p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 38) == 0);
    outq_set_ext(&q, "hello", 5, "", 0);
    CHECK_EQ_INT(outq_flush_fn(&q, record, &w, p), OUTQ_DONE);
    CHECK_EQ_INT(w.calls, 1);
    CHECK_EQ_INT(w.got_len, 43);
    CHECK(memcmp(w.got + 38, "hello", 5) == 0);

    /* A chunk: its size line, data and CRLF together. */
    w = (struct writer){0};
    CHECK(outq_append(&q, p, "5\r\n", 3) == 0);
    outq_set_ext(&q, "hello", 5, "\r\n", 2);
    CHECK_EQ_INT(outq_flush_fn(&q, record, &w, p), OUTQ_DONE);
    CHECK_EQ_INT(w.calls, 1);
    CHECK(w.got_len == 10 && memcmp(w.got, "5\r\nhello\r\n", 10) == 0);
}

static void test_large_parts(struct buf_pool *p)
{
    static char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    struct writer w = {0};
    struct outq q = {0};
    /* One large part alone: written in place, whole. */
    outq_set_ext(&q, big, sizeof big, "", 0);
    CHECK_EQ_INT(outq_flush_fn(&q, record, &w, p), OUTQ_DONE);
    CHECK_EQ_INT(w.calls, 1);
    CHECK_EQ_INT(w.lens[0], sizeof big);
    /* A small head before it: one record's worth gathered, the rest in place. */
    w = (struct writer){0};
    CHECK(outq_append(&q, p, "186a0\r\n", 7) == 0);
    outq_set_ext(&q, big, sizeof big, "\r\n", 2);
    CHECK_EQ_INT(outq_flush_fn(&q, record, &w, p), OUTQ_DONE);
    CHECK_EQ_INT(w.lens[0], 16384);
    CHECK_EQ_INT(w.got_len, 7 + sizeof big + 2);
    CHECK(memcmp(w.got, "186a0\r\n", 7) == 0 && memcmp(w.got + 7, big, sizeof big) == 0);
    CHECK(memcmp(w.got + 7 + sizeof big, "\r\n", 2) == 0);
    CHECK(w.calls <= 4);
}

static void test_retry_never_shorter(struct buf_pool *p)
{
    struct writer w = {.again = 1};
    struct outq q = {0};
    CHECK(outq_append(&q, p, "5\r\n", 3) == 0);
    outq_set_ext(&q, "hello", 5, "\r\n", 2);
    CHECK_EQ_INT(outq_flush_fn(&q, record, &w, p), OUTQ_AGAIN);
    CHECK_EQ_INT(outq_flush_fn(&q, record, &w, p), OUTQ_DONE);
    CHECK_EQ_INT(w.calls, 2);
    CHECK_EQ_INT(w.lens[1], w.lens[0]);
    CHECK(w.got_len == 10 && memcmp(w.got, "5\r\nhello\r\n", 10) == 0);
    /* Partial writes continue where they stopped. */
    w = (struct writer){.take_max = 4};
    CHECK(outq_append(&q, p, "5\r\n", 3) == 0);
    outq_set_ext(&q, "hello", 5, "\r\n", 2);
    CHECK_EQ_INT(outq_flush_fn(&q, record, &w, p), OUTQ_DONE);
    CHECK(w.got_len == 10 && memcmp(w.got, "5\r\nhello\r\n", 10) == 0);
}

int main(void)
{
    struct buf_pool p;
    buf_pool_init(&p, 4);
    test_head_and_small_body_in_one_write(&p);
    test_large_parts(&p);
    test_retry_never_shorter(&p);
    buf_pool_fini(&p);
    return check_done("outq");
}
