/* The output queue's socket path (plain TCP: writev, then a file segment with sendfile) and
 * its writer path (TLS): a response head and a small body, or a chunk and its
 * CRLF, go out in one write (one TLS record, one packet), large parts are not copied whole,
 * and a write retried after EAGAIN is the same as the one that failed (OpenSSL refuses a
 * shorter one with "bad length"). */
#include "check.h"
#include "core/buf.h"
#include "net/outq.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* ---- file segments ---- */

/* A temporary file of `len` bytes, byte i = pattern(i); its content is also returned. */
static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 7 + i / 251) & 0xff);
}

static int temp_file(size_t len, unsigned char **content)
{
    char path[] = "/tmp/gh-outq-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    unsigned char *c = malloc(len);
    for (size_t i = 0; i < len; i++)
        c[i] = pattern(i);
    CHECK(write(fd, c, len) == (ssize_t)len);
    *content = c;
    return fd;
}

struct sink {
    unsigned char *data;
    size_t len, cap;
};

/* One case: a temp file of `len` pattern bytes (`content`), a socketpair (sv[0] writes,
 * non-blocking, with a small send buffer when asked; sv[1] reads into `k`), a queue. */
struct fcase {
    unsigned char *content;
    int fd, sv[2];
    struct outq q;
    struct sink k;
    int agains; /* OUTQ_AGAIN answers seen by flush_all */
};

static void fcase_open(struct fcase *t, size_t len, int sndbuf)
{
    *t = (struct fcase){0};
    t->fd = temp_file(len, &t->content);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, t->sv) == 0);
    CHECK(fcntl(t->sv[0], F_SETFL, O_NONBLOCK) == 0);
    CHECK(fcntl(t->sv[1], F_SETFL, O_NONBLOCK) == 0);
    if (sndbuf)
        CHECK(setsockopt(t->sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
}

static void fcase_close(struct fcase *t, struct buf_pool *p)
{
    outq_release(&t->q, p);
    close(t->sv[0]);
    close(t->sv[1]);
    close(t->fd);
    free(t->k.data);
    free(t->content);
}

static void drain(struct fcase *t)
{
    struct sink *k = &t->k;
    for (;;) {
        if (k->cap - k->len < 65536) {
            k->cap = k->cap ? k->cap * 2 : 1 << 20;
            k->data = realloc(k->data, k->cap);
        }
        ssize_t n = read(t->sv[1], k->data + k->len, k->cap - k->len);
        if (n <= 0)
            return;
        k->len += (size_t)n;
    }
}

/* Flush until done or failed, draining the reader whenever the socket is full. */
static int flush_all(struct fcase *t, struct buf_pool *p)
{
    for (;;) {
        int r = outq_flush(&t->q, t->sv[0], p);
        int e = errno;
        drain(t);
        if (r == OUTQ_YIELD)
            continue;
        if (r != OUTQ_AGAIN) {
            errno = e;
            return r;
        }
        t->agains++;
    }
}

static void test_file_full(struct buf_pool *p)
{
    enum { LEN = 300000 };
    struct fcase t;
    fcase_open(&t, LEN, 0);
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 299990\r\n\r\n";
    CHECK(outq_append(&t.q, p, head, sizeof head - 1) == 0);
    outq_set_file(&t.q, t.fd, 10, LEN - 10, "", 0);
    CHECK(!outq_empty(&t.q));
    CHECK_EQ_INT(flush_all(&t, p), OUTQ_DONE);
    CHECK(outq_empty(&t.q));
    CHECK(t.q.gen == NULL); /* the pool buffer went back */
    CHECK_EQ_INT(t.q.sent, sizeof head - 1 + LEN - 10);
    CHECK_EQ_INT(t.k.len, sizeof head - 1 + LEN - 10);
    CHECK(memcmp(t.k.data, head, sizeof head - 1) == 0);
    CHECK(memcmp(t.k.data + sizeof head - 1, t.content + 10, LEN - 10) == 0);
    /* The file offset is ours: sendfile with an offset leaves the descriptor's alone. */
    CHECK_EQ_INT(lseek(t.fd, 0, SEEK_CUR), LEN);

    /* A chunk: size line, the file's bytes, then the CRLF tail after them. */
    t.k.len = 0;
    CHECK(outq_append(&t.q, p, "64\r\n", 4) == 0);
    outq_set_file(&t.q, t.fd, 1000, 100, "\r\n", 2);
    CHECK_EQ_INT(flush_all(&t, p), OUTQ_DONE);
    CHECK_EQ_INT(t.k.len, 106);
    CHECK(memcmp(t.k.data, "64\r\n", 4) == 0 && memcmp(t.k.data + 4, t.content + 1000, 100) == 0);
    CHECK(memcmp(t.k.data + 104, "\r\n", 2) == 0);
    fcase_close(&t, p);
}

/* A small send buffer: the segment goes in several steps, each resumed where the last
 * stopped, and the queue is not empty meanwhile. */
static void test_file_partial(struct buf_pool *p)
{
    enum { LEN = 1 << 20 };
    struct fcase t;
    fcase_open(&t, LEN, 4096);
    CHECK(outq_append(&t.q, p, "head\n", 5) == 0);
    outq_set_file(&t.q, t.fd, 0, LEN, "", 0);
    CHECK_EQ_INT(outq_flush(&t.q, t.sv[0], p), OUTQ_AGAIN);
    CHECK(!outq_empty(&t.q));
    CHECK(t.q.file_left > 0 && t.q.file_left < LEN);
    CHECK_EQ_INT(t.q.file_off, LEN - t.q.file_left);
    CHECK_EQ_INT(t.q.sent, 5 + t.q.file_off);
    drain(&t);
    CHECK_EQ_INT(flush_all(&t, p), OUTQ_DONE);
    CHECK(t.agains > 1);
    CHECK_EQ_INT(t.k.len, 5 + LEN);
    CHECK(memcmp(t.k.data, "head\n", 5) == 0 && memcmp(t.k.data + 5, t.content, LEN) == 0);
    fcase_close(&t, p);
}

/* The file is shorter than the segment (truncated while being sent): ENODATA, and file_left
 * says how much is missing; what the file had went out. */
static void test_file_truncated(struct buf_pool *p)
{
    enum { LEN = 200000 };
    struct fcase t;
    fcase_open(&t, LEN, 0);
    CHECK(outq_append(&t.q, p, "h", 1) == 0);
    outq_set_file(&t.q, t.fd, 0, LEN + 5000, "\r\n", 2);
    CHECK(ftruncate(t.fd, LEN) == 0);
    errno = 0;
    CHECK_EQ_INT(flush_all(&t, p), OUTQ_ERROR);
    CHECK_EQ_INT(errno, ENODATA);
    CHECK_EQ_INT(t.q.file_left, 5000);
    CHECK_EQ_INT(t.k.len, 1 + LEN);
    CHECK(memcmp(t.k.data + 1, t.content, LEN) == 0);
    /* The owner drops the segment; its tail goes with it. */
    outq_drop_file(&t.q);
    CHECK(outq_empty(&t.q));
    fcase_close(&t, p);
}

/* A file sendfile cannot read: the error is sendfile's own (the codec tells the file's fault
 * from the client's by it), after the generated bytes went out. */
static void test_file_unreadable(struct buf_pool *p)
{
    struct fcase t;
    fcase_open(&t, 1000, 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", t.fd);
    int wfd = open(path, O_WRONLY);
    CHECK(wfd >= 0);
    CHECK(outq_append(&t.q, p, "head", 4) == 0);
    outq_set_file(&t.q, wfd, 0, 1000, "", 0);
    errno = 0;
    CHECK_EQ_INT(flush_all(&t, p), OUTQ_ERROR);
    CHECK_EQ_INT(errno, EBADF);
    CHECK_EQ_INT(t.k.len, 4);
    CHECK_EQ_INT(t.q.file_left, 1000);
    outq_drop_file(&t.q);
    close(wfd);
    fcase_close(&t, p);
}

/* The writer path with a file segment (kTLS): head, the file through the sendfile function,
 * then the tail; without a sendfile function the segment cannot be sent. */
static long file_pread(void *ctx, int fd, uint64_t off, size_t len)
{
    struct writer *w = ctx;
    size_t n = len > 3000 ? 3000 : len; /* partial steps */
    ssize_t r = pread(fd, w->got + w->got_len, n, (off_t)off);
    if (r > 0)
        w->got_len += (size_t)r;
    return r;
}

static void test_file_writer(struct buf_pool *p)
{
    unsigned char *content;
    int fd = temp_file(10000, &content);
    struct writer *w = calloc(1, sizeof *w);
    struct outq q = {0};
    CHECK(outq_append(&q, p, "2710\r\n", 6) == 0);
    outq_set_file(&q, fd, 0, 10000, "\r\n", 2);
    CHECK_EQ_INT(outq_flush_files(&q, record, file_pread, w, p), OUTQ_DONE);
    CHECK_EQ_INT(w->got_len, 6 + 10000 + 2);
    CHECK(memcmp(w->got, "2710\r\n", 6) == 0 && memcmp(w->got + 6, content, 10000) == 0);
    CHECK(memcmp(w->got + 10006, "\r\n", 2) == 0);
    CHECK_EQ_INT(w->lens[0], 6); /* the head is not gathered with the tail across the file */

    *w = (struct writer){0};
    outq_set_file(&q, fd, 0, 10, "", 0);
    errno = 0;
    CHECK_EQ_INT(outq_flush_fn(&q, record, w, p), OUTQ_ERROR);
    CHECK_EQ_INT(errno, ENOTSUP);
    outq_release(&q, p);
    close(fd);
    free(w);
    free(content);
}

/* A socket that takes all it is given (a fast client): each call sends what it is asked. */
struct fast_sink {
    uint64_t file_bytes, calls, largest;
};

static long fast_sendfile(void *ctx, int fd, uint64_t off, size_t len)
{
    struct fast_sink *k = ctx;
    (void)fd;
    (void)off;
    k->file_bytes += len;
    k->calls++;
    if (len > k->largest)
        k->largest = len;
    return (long)len;
}

static long fast_write(void *ctx, const char *p, size_t len)
{
    (void)ctx;
    (void)p;
    return (long)len;
}

/* One flush sends at most OUTQ_FILE_BUDGET bytes of a file to a client that takes everything,
 * then yields with the rest still queued; the flush after it goes on from there, and the last
 * one ends with the tail. A file no larger than the budget is done in one flush. */
static void test_file_budget(struct buf_pool *p)
{
    struct fast_sink k = {0};
    struct outq q = {0};
    uint64_t len = 2 * OUTQ_FILE_BUDGET + 100;
    CHECK(outq_append(&q, p, "head", 4) == 0);
    outq_set_file(&q, 99, 0, len, "\r\n", 2);
    CHECK_EQ_INT(outq_flush_files(&q, fast_write, fast_sendfile, &k, p), OUTQ_YIELD);
    CHECK_EQ_INT(k.file_bytes, OUTQ_FILE_BUDGET);
    CHECK_EQ_INT(q.file_left, len - OUTQ_FILE_BUDGET);
    CHECK(!outq_empty(&q));
    CHECK_EQ_INT(outq_flush_files(&q, fast_write, fast_sendfile, &k, p), OUTQ_YIELD);
    CHECK_EQ_INT(k.file_bytes, 2 * OUTQ_FILE_BUDGET);
    CHECK_EQ_INT(outq_flush_files(&q, fast_write, fast_sendfile, &k, p), OUTQ_DONE);
    CHECK_EQ_INT(k.file_bytes, len);
    CHECK(outq_empty(&q));
    CHECK_EQ_INT(q.sent, 4 + len + 2);
    CHECK(k.largest <= OUTQ_FILE_BUDGET);

    k = (struct fast_sink){0};
    outq_set_file(&q, 99, 0, OUTQ_FILE_BUDGET, "", 0);
    CHECK_EQ_INT(outq_flush_files(&q, fast_write, fast_sendfile, &k, p), OUTQ_DONE);
    CHECK_EQ_INT(k.file_bytes, OUTQ_FILE_BUDGET);
    outq_release(&q, p);
}

int main(void)
{
    struct buf_pool p;
    buf_pool_init(&p, 4);
    test_head_and_small_body_in_one_write(&p);
    test_large_parts(&p);
    test_retry_never_shorter(&p);
    test_file_full(&p);
    test_file_partial(&p);
    test_file_truncated(&p);
    test_file_unreadable(&p);
    test_file_writer(&p);
    test_file_budget(&p);
    buf_pool_fini(&p);
    return check_done("outq");
}
