#include "net/outq.h"

#include "core/buf.h"

#include <errno.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

char *outq_reserve(struct outq *q, struct buf_pool *pool, size_t *room)
{
    if (!q->gen) {
        q->gen = buf_get(pool);
        if (!q->gen)
            return NULL;
    } else if (q->gen->start == q->gen->end) {
        q->gen->start = q->gen->end = 0;
    }
    *room = buf_room(q->gen);
    return q->gen->data + q->gen->end;
}

void outq_commit(struct outq *q, size_t n)
{
    q->gen->end += (uint32_t)n;
}

int outq_append(struct outq *q, struct buf_pool *pool, const void *data, size_t len)
{
    size_t room;
    char *p = outq_reserve(q, pool, &room);
    if (!p || room < len)
        return -1;
    memcpy(p, data, len);
    outq_commit(q, len);
    return 0;
}

void outq_set_ext(struct outq *q, const char *data, size_t len, const char *tail, size_t tail_len)
{
    q->ext = data;
    q->ext_len = len;
    memcpy(q->tail, tail, tail_len);
    q->tail_off = 0;
    q->tail_len = (unsigned char)tail_len;
}

void outq_set_file(struct outq *q, int fd, uint64_t off, uint64_t len, const char *tail,
                   size_t tail_len)
{
    q->file_fd = fd;
    q->file_off = off;
    q->file_left = len;
    memcpy(q->tail, tail, tail_len);
    q->tail_off = 0;
    q->tail_len = (unsigned char)tail_len;
}

void outq_drop_file(struct outq *q)
{
    if (!q->file_left)
        return;
    q->file_left = 0;
    q->tail_off = q->tail_len = 0; /* the tail closes the file's chunk: it goes with it */
}

/* Bytes in memory that go before the file segment (all of them when there is none, but the
 * tail). */
static size_t mem_before_file(const struct outq *q)
{
    return (q->gen ? buf_len(q->gen) : 0) + q->ext_len;
}

/* The tail's unsent bytes, once whatever goes before it is out of the way of the file. */
static size_t tail_ready(const struct outq *q)
{
    return q->file_left ? 0 : (size_t)(q->tail_len - q->tail_off);
}

/* One sendfile step of the file segment, at most what is left of this flush's `budget` (which
 * it reduces). 0 bytes before the segment's end: the file shrank. */
static int file_step(struct outq *q, outq_sendfile_fn sendfile_fn, void *ctx, uint64_t *budget)
{
    size_t len = q->file_left < *budget ? (size_t)q->file_left : (size_t)*budget;
    long n = sendfile_fn(ctx, q->file_fd, q->file_off, len);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? OUTQ_AGAIN : OUTQ_ERROR;
    if (n == 0) {
        errno = ENODATA;
        return OUTQ_ERROR;
    }
    q->file_off += (uint64_t)n;
    q->file_left -= (uint64_t)n;
    q->sent += (uint64_t)n;
    *budget -= (uint64_t)n;
    return OUTQ_DONE;
}

static long socket_sendfile(void *ctx, int fd, uint64_t off, size_t len)
{
    const int *sock = ctx;
    off_t o = (off_t)off;
    ssize_t n;
    do
        n = sendfile(*sock, fd, &o, len);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Account `n` written bytes against the memory parts, in order. */
static void outq_advance(struct outq *q, size_t n)
{
    q->sent += n;
    if (q->gen) {
        size_t g = buf_len(q->gen);
        size_t take = n < g ? n : g;
        q->gen->start += (uint32_t)take;
        n -= take;
    }
    if (q->ext_len) {
        size_t e = n < q->ext_len ? n : q->ext_len;
        q->ext += e;
        q->ext_len -= e;
        n -= e;
    }
    q->tail_off += (unsigned char)n;
}

/* One sendmsg of the memory parts that are ready: OUTQ_DONE when it wrote (or was interrupted),
 * else OUTQ_AGAIN / OUTQ_ERROR. MSG_MORE before a file segment: the kernel holds a short
 * head back for the file's first bytes instead of sending it in a packet of its own. */
static int write_parts(struct outq *q, int fd)
{
    struct iovec iov[3];
    int n = 0;
    if (q->gen && buf_len(q->gen))
        iov[n++] = (struct iovec){q->gen->data + q->gen->start, buf_len(q->gen)};
    if (q->ext_len)
        iov[n++] = (struct iovec){(void *)q->ext, q->ext_len};
    if (tail_ready(q))
        iov[n++] = (struct iovec){q->tail + q->tail_off, tail_ready(q)};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | (q->file_left ? MSG_MORE : 0));
    if (w < 0) {
        if (errno == EINTR)
            return OUTQ_DONE;
        return errno == EAGAIN || errno == EWOULDBLOCK ? OUTQ_AGAIN : OUTQ_ERROR;
    }
    outq_advance(q, (size_t)w);
    return OUTQ_DONE;
}

static int outq_done(struct outq *q, struct buf_pool *pool)
{
    q->tail_off = q->tail_len = 0;
    if (q->gen) {
        buf_put(pool, q->gen);
        q->gen = NULL;
    }
    return OUTQ_DONE;
}

int outq_flush(struct outq *q, int fd, struct buf_pool *pool)
{
    uint64_t budget = OUTQ_FILE_BUDGET;
    while (!outq_empty(q)) {
        int r;
        if (q->file_left && !mem_before_file(q)) {
            if (!budget)
                return OUTQ_YIELD;
            r = file_step(q, socket_sendfile, &fd, &budget);
        } else {
            r = write_parts(q, fd);
        }
        if (r != OUTQ_DONE)
            return r;
    }
    return outq_done(q, pool);
}

/* The first unsent part, in order. */
static size_t next_part(const struct outq *q, const char **p)
{
    if (q->gen && buf_len(q->gen)) {
        *p = q->gen->data + q->gen->start;
        return buf_len(q->gen);
    }
    if (q->ext_len) {
        *p = q->ext;
        return q->ext_len;
    }
    *p = q->tail + q->tail_off;
    return tail_ready(q);
}

/* A TLS record carries at most 16 KiB. */
#define OUTQ_GATHER_MAX 16384

/* When the first unsent part is small and more follows (a response head and a small body, a
 * chunk and its CRLF), copies up to OUTQ_GATHER_MAX bytes of the parts, in order, into `out`:
 * one write, so one TLS record and (with TCP_NODELAY) one packet instead of one per part.
 * Returns the bytes gathered, or 0 to write the first part as it is. Large parts are never
 * copied whole, and the length never shrinks while nothing was written (only appending
 * happens meanwhile), as a TLS write retried after EAGAIN requires. */
static size_t gather(const struct outq *q, char *out)
{
    const char *p;
    size_t first = next_part(q, &p);
    size_t gen = q->gen ? buf_len(q->gen) : 0;
    size_t total = gen + q->ext_len + tail_ready(q);
    if (first == total || first >= OUTQ_GATHER_MAX)
        return 0;
    size_t n = 0;
    /* No generated part is an empty one at "", not NULL: memcpy's source is never NULL. */
    const char *parts[3] = {gen ? q->gen->data + q->gen->start : "", q->ext, q->tail + q->tail_off};
    size_t lens[3] = {gen, q->ext_len, tail_ready(q)};
    for (int i = 0; i < 3 && n < OUTQ_GATHER_MAX; i++) {
        size_t k = lens[i] < OUTQ_GATHER_MAX - n ? lens[i] : OUTQ_GATHER_MAX - n;
        if (k)
            memcpy(out + n, parts[i], k);
        n += k;
    }
    return n;
}

int outq_flush_files(struct outq *q, outq_write_fn write, outq_sendfile_fn sendfile_fn, void *ctx,
                     struct buf_pool *pool)
{
    char staged[OUTQ_GATHER_MAX];
    uint64_t budget = OUTQ_FILE_BUDGET;
    while (!outq_empty(q)) {
        if (q->file_left && !mem_before_file(q)) {
            if (!sendfile_fn) {
                errno = ENOTSUP;
                return OUTQ_ERROR;
            }
            if (!budget)
                return OUTQ_YIELD;
            int r = file_step(q, sendfile_fn, ctx, &budget);
            if (r != OUTQ_DONE)
                return r;
            continue;
        }
        const char *p = staged;
        size_t len = gather(q, staged);
        if (!len)
            len = next_part(q, &p);
        long w = write(ctx, p, len);
        if (w < 0)
            return errno == EAGAIN ? OUTQ_AGAIN : OUTQ_ERROR;
        outq_advance(q, (size_t)w);
    }
    return outq_done(q, pool);
}

int outq_flush_fn(struct outq *q, outq_write_fn write, void *ctx, struct buf_pool *pool)
{
    return outq_flush_files(q, write, NULL, ctx, pool);
}

void outq_release(struct outq *q, struct buf_pool *pool)
{
    buf_put(pool, q->gen);
    *q = (struct outq){.sent = q->sent};
}
