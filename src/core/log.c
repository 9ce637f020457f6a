#include "core/log.h"
#include "core/httpdate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int open_target(const char *path, int std_fd)
{
    if (!path)
        return -1;
    if (strcmp(path, "-") == 0)
        return std_fd;
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int log_open(struct logger *lg, const char *error_path, const char *access_path, int level)
{
    int efd = open_target(error_path, STDERR_FILENO);
    if (efd < 0) {
        log_msg(lg, LOG_ERROR, "cannot open error log %s: %s", error_path, strerror(errno));
        return -1;
    }
    int afd = open_target(access_path, STDOUT_FILENO);
    if (access_path && afd < 0) {
        log_msg(lg, LOG_ERROR, "cannot open access log %s: %s", access_path, strerror(errno));
        if (efd > STDERR_FILENO)
            close(efd);
        return -1;
    }
    /* Replaced descriptors stay open until the next reload: a worker may be writing to one
     * right now, and a whole reload interval is ample time for that write to end. This is
     * cheaper than a lock per log line. */
    for (int i = 0; i < 2; i++)
        if (lg->retired_fds[i] > STDERR_FILENO)
            close(lg->retired_fds[i]);
    int old_err = atomic_exchange(&lg->err_fd, efd);
    int old_access = atomic_exchange(&lg->access_fd, afd);
    lg->retired_fds[0] = old_err != efd ? old_err : -1;
    lg->retired_fds[1] = old_access != afd ? old_access : -1;
    atomic_store(&lg->level, level);
    return 0;
}

static size_t iso_now(char *out, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    return n;
}

/* ---- sinks: a write that never waits on a reader ------------------------------------------ */

/* A regular file takes what is written (a full disk fails the write instead). A pipe, FIFO,
 * socket or terminal may not be read: it is written only when poll says it has room, at most
 * PIPE_BUF bytes at a time, which a pipe with room then takes whole, without waiting. Such a
 * write is never made non-blocking with O_NONBLOCK: the file description (stdout, stderr) is
 * shared with whoever started us. */
#define SINK_CHUNK PIPE_BUF
#define FILE_CHUNK 65536

enum sink_result { SINK_DONE, SINK_BLOCKED, SINK_FAILED };

static bool sink_is_file(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static bool sink_writable(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int n;
    do
        n = poll(&pf, 1, 0);
    while (n < 0 && errno == EINTR);
    /* An error or hang-up is for the write to report (EPIPE, EBADF): the lines are dropped. */
    return n == 1 && (pf.revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL));
}

/* Writes all of p[0..n) (at most SINK_CHUNK for a stream), or nothing when the sink has no
 * room now. *written: how much went out (a shared O_NONBLOCK description may cut a write). */
static enum sink_result sink_write(int fd, bool file, const char *p, size_t n, size_t *written)
{
    *written = 0;
    if (!file && !sink_writable(fd))
        return SINK_BLOCKED;
    while (*written < n) {
        ssize_t w = write(fd, p + *written, n - *written);
        if (w > 0) {
            *written += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SINK_BLOCKED;
        return SINK_FAILED;
    }
    return SINK_DONE;
}

static unsigned long long count_lines(const char *p, size_t n)
{
    unsigned long long lines = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
        lines++;
    return lines;
}

/* ---- rings: one producer, one consumer (the writer thread), no lock between them --------- */

struct log_ring {
    char *data;
    size_t cap;            /* a power of two */
    atomic_size_t head;    /* bytes taken by the writer */
    atomic_size_t tail;    /* bytes put by the producer */
    atomic_ullong dropped; /* lines that found no room (or whose write failed) */
};

static int ring_init(struct log_ring *r, size_t cap)
{
    r->data = malloc(cap);
    r->cap = cap;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->dropped, 0);
    return r->data ? 0 : -1;
}

static size_t ring_used(struct log_ring *r)
{
    return atomic_load(&r->tail) - atomic_load(&r->head);
}

/* Whole or not at all: a line is never cut. */
static bool ring_put(struct log_ring *r, const char *p, size_t n)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (r->cap - (tail - head) < n)
        return false;
    size_t at = tail & (r->cap - 1), first = n < r->cap - at ? n : r->cap - at;
    memcpy(r->data + at, p, first);
    memcpy(r->data, p + first, n - first);
    atomic_store(&r->tail, tail + n); /* seq_cst: read before the writer's `asleep` (wake) */
    return true;
}

/* Copies up to `max` bytes from the front into out, cut after the last whole line if there is
 * one; returns the count (0: empty). */
static size_t ring_peek(struct log_ring *r, char *out, size_t max)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t n = atomic_load_explicit(&r->tail, memory_order_acquire) - head;
    if (n > max)
        n = max;
    size_t at = head & (r->cap - 1), first = n < r->cap - at ? n : r->cap - at;
    memcpy(out, r->data + at, first);
    memcpy(out + first, r->data, n - first);
    const char *nl = n ? memrchr(out, '\n', n) : NULL;
    return nl ? (size_t)(nl - out) + 1 : n; /* a line longer than max goes in parts */
}

static void ring_take(struct log_ring *r, size_t n)
{
    atomic_store_explicit(&r->head, atomic_load_explicit(&r->head, memory_order_relaxed) + n,
                          memory_order_release);
}

/* ---- the writer thread -------------------------------------------------------------------- */

/* One warning when lines start being dropped, and their count once the rings are empty again
 * (the sink has caught up). Said in the error log, through the error ring. */
struct drops {
    unsigned long long reported; /* dropped lines already counted in a report */
    bool warned;                 /* the drops since the last report were warned of */
    uint64_t last_ms;            /* when the last count was reported */
};

/* A sink that fails for good (a closed pipe, a full disk) drops every line: its count is said
 * at most this often. */
#define REPORT_EVERY_MS 10000

#define ACCESS_RING ((size_t)1024 * 1024)
#define ERROR_RING ((size_t)256 * 1024)

struct log_writer {
    struct logger *lg;
    pthread_t thread;
    int wake_fd;        /* eventfd: a producer put lines while the writer slept */
    atomic_bool asleep; /* the writer is (about to be) in poll */
    atomic_bool stop;
    unsigned grace_ms;        /* at stop: how long to wait for sinks that do not take the rest */
    pthread_mutex_t err_lock; /* producers of error lines (any thread) */
    struct log_ring err;
    struct log_ring *access;
    size_t naccess;
    struct drops access_drops, err_drops;
    uint64_t taken; /* bytes taken out of the rings, all told */
    char chunk[FILE_CHUNK];
};

static void writer_wake(struct log_writer *wr)
{
    if (atomic_exchange(&wr->asleep, false)) {
        uint64_t one = 1;
        ssize_t n = write(wr->wake_fd, &one, sizeof(one));
        (void)n;
    }
}

/* Empty ring r into fd until it is empty (SINK_DONE) or fd has no room (SINK_BLOCKED). Lines
 * for a sink that is off, or whose write fails, are dropped and counted. */
static enum sink_result writer_drain(struct log_writer *wr, struct log_ring *r, int fd, bool file)
{
    for (;;) {
        size_t n = ring_peek(r, wr->chunk, file ? FILE_CHUNK : SINK_CHUNK), written;
        if (!n)
            return SINK_DONE;
        enum sink_result res = fd < 0 ? SINK_FAILED : sink_write(fd, file, wr->chunk, n, &written);
        if (res == SINK_FAILED) {
            atomic_fetch_add(&r->dropped, count_lines(wr->chunk, n));
            written = n;
        }
        ring_take(r, written);
        wr->taken += written;
        if (res == SINK_BLOCKED)
            return SINK_BLOCKED;
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Returns ms until a count waiting for REPORT_EVERY_MS may be said, or -1 when none waits. */
static int writer_report(struct log_writer *wr, struct drops *d, unsigned long long dropped,
                         bool empty, const char *what)
{
    if (dropped == d->reported)
        return -1;
    if (!d->warned) {
        log_msg(wr->lg, LOG_WARN,
                "%s is not keeping up: dropping lines until it does (serving goes on)", what);
        d->warned = true;
    }
    if (!empty)
        return -1; /* counted once it has caught up */
    uint64_t now = mono_ms();
    if (d->last_ms && now - d->last_ms < REPORT_EVERY_MS)
        return (int)(d->last_ms + REPORT_EVERY_MS - now);
    log_msg(wr->lg, LOG_WARN, "%s: dropped %llu lines (the log did not keep up)", what,
            dropped - d->reported);
    d->reported = dropped;
    d->warned = false;
    d->last_ms = now;
    return -1;
}

static int min_wait(int a, int b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* Returns how long the writer may sleep before a count is due (-1: no limit). */
static int writer_report_all(struct log_writer *wr)
{
    unsigned long long dropped = 0;
    bool empty = true;
    for (size_t i = 0; i < wr->naccess; i++) {
        dropped += atomic_load(&wr->access[i].dropped);
        empty &= ring_used(&wr->access[i]) == 0;
    }
    int a = writer_report(wr, &wr->access_drops, dropped, empty, "access log");
    int e = writer_report(wr, &wr->err_drops, atomic_load(&wr->err.dropped),
                          ring_used(&wr->err) == 0, "error log");
    return min_wait(a, e);
}

struct writer_round {
    int afd, efd;
    bool access_blocked, err_blocked;
    int report_in_ms; /* a count of dropped lines is due then (-1: none waits) */
};

static void writer_round(struct log_writer *wr, struct writer_round *rd)
{
    rd->afd = atomic_load(&wr->lg->access_fd);
    rd->efd = atomic_load(&wr->lg->err_fd);
    bool afile = rd->afd >= 0 && sink_is_file(rd->afd);
    bool efile = rd->efd >= 0 && sink_is_file(rd->efd);
    rd->access_blocked = false;
    for (size_t i = 0; i < wr->naccess; i++)
        rd->access_blocked |= writer_drain(wr, &wr->access[i], rd->afd, afile) == SINK_BLOCKED;
    rd->err_blocked = writer_drain(wr, &wr->err, rd->efd, efile) == SINK_BLOCKED;
    rd->report_in_ms = writer_report_all(wr);
    if (!rd->err_blocked) /* the reports just made */
        rd->err_blocked = writer_drain(wr, &wr->err, rd->efd, efile) == SINK_BLOCKED;
}

/* Lines waiting for a sink that was not found blocked: another round, not a sleep. */
static bool writer_more(struct log_writer *wr, const struct writer_round *rd)
{
    for (size_t i = 0; !rd->access_blocked && i < wr->naccess; i++)
        if (ring_used(&wr->access[i]))
            return true;
    return !rd->err_blocked && ring_used(&wr->err);
}

static bool writer_pending(struct log_writer *wr)
{
    for (size_t i = 0; i < wr->naccess; i++)
        if (ring_used(&wr->access[i]))
            return true;
    return ring_used(&wr->err) != 0;
}

/* Until a producer wakes us, a blocked sink has room, or (stopping) the grace is over. */
static void writer_sleep(struct log_writer *wr, const struct writer_round *rd, int timeout_ms)
{
    struct pollfd pf[3] = {{.fd = wr->wake_fd, .events = POLLIN}};
    int n = 1;
    if (rd->access_blocked && rd->afd >= 0)
        pf[n++] = (struct pollfd){.fd = rd->afd, .events = POLLOUT};
    if (rd->err_blocked && rd->efd >= 0 && rd->efd != rd->afd)
        pf[n++] = (struct pollfd){.fd = rd->efd, .events = POLLOUT};
    atomic_store(&wr->asleep, true);
    if (!writer_more(wr, rd)) /* again: a producer may have put lines before seeing `asleep` */
        poll(pf, (nfds_t)n, timeout_ms);
    atomic_store(&wr->asleep, false);
    uint64_t v;
    while (read(wr->wake_fd, &v, sizeof(v)) > 0)
        ;
}

/* Lines are coming: let them gather for a moment, without being woken for each batch (a
 * producer that finds the writer not asleep makes no system call). A stop still wakes it. */
#define NAP_MS 5

static void writer_nap(struct log_writer *wr, const struct writer_round *rd)
{
    struct pollfd pf[3] = {{.fd = wr->wake_fd, .events = POLLIN}};
    int n = 1;
    if (rd->access_blocked && rd->afd >= 0)
        pf[n++] = (struct pollfd){.fd = rd->afd, .events = POLLOUT};
    if (rd->err_blocked && rd->efd >= 0 && rd->efd != rd->afd)
        pf[n++] = (struct pollfd){.fd = rd->efd, .events = POLLOUT};
    poll(pf, (nfds_t)n, NAP_MS);
}

static void *writer_main(void *arg)
{
    struct log_writer *wr = arg;
    uint64_t deadline = 0;
    for (;;) {
        struct writer_round rd;
        uint64_t taken = wr->taken;
        writer_round(wr, &rd);
        if (atomic_load(&wr->stop)) {
            uint64_t now = mono_ms();
            if (!deadline)
                deadline = now + wr->grace_ms;
            if (!writer_pending(wr) || now >= deadline)
                break;
            if (!writer_more(wr, &rd))
                writer_sleep(wr, &rd, (int)(deadline - now));
            continue;
        }
        if (wr->taken != taken)
            writer_nap(wr, &rd); /* the rounds of a busy log are NAP_MS apart */
        else if (!writer_more(wr, &rd))
            writer_sleep(wr, &rd, rd.report_in_ms);
    }
    return NULL;
}

static void writer_free(struct log_writer *wr)
{
    for (size_t i = 0; wr->access && i < wr->naccess; i++)
        free(wr->access[i].data);
    free(wr->access);
    free(wr->err.data);
    if (wr->wake_fd >= 0)
        close(wr->wake_fd);
    pthread_mutex_destroy(&wr->err_lock);
    free(wr);
}

int log_writer_start(struct logger *lg, size_t naccess)
{
    struct log_writer *wr = calloc(1, sizeof(*wr));
    if (!wr)
        return -1;
    wr->lg = lg;
    wr->naccess = naccess;
    pthread_mutex_init(&wr->err_lock, NULL);
    wr->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    wr->access = calloc(naccess ? naccess : 1, sizeof(*wr->access));
    bool ok = wr->wake_fd >= 0 && wr->access && ring_init(&wr->err, ERROR_RING) == 0;
    for (size_t i = 0; ok && i < naccess; i++)
        ok = ring_init(&wr->access[i], ACCESS_RING) == 0;
    if (!ok || pthread_create(&wr->thread, NULL, writer_main, wr) != 0) {
        writer_free(wr);
        return -1;
    }
    atomic_store(&lg->writer, wr);
    return 0;
}

void log_writer_stop(struct logger *lg, unsigned grace_ms)
{
    struct log_writer *wr = atomic_load(&lg->writer);
    if (!wr)
        return;
    wr->grace_ms = grace_ms;
    atomic_store(&wr->stop, true);
    uint64_t one = 1;
    ssize_t n = write(wr->wake_fd, &one, sizeof(one));
    (void)n;
    pthread_join(wr->thread, NULL);
    atomic_store(&lg->writer, NULL);
    writer_free(wr);
}

struct log_ring *log_access_ring(struct logger *lg, size_t i)
{
    struct log_writer *wr = atomic_load(&lg->writer);
    return wr && i < wr->naccess ? &wr->access[i] : NULL;
}

/* ---- lines -------------------------------------------------------------------------------- */

/* Without a writer: now, or not at all. */
static void write_now(int fd, const char *p, size_t n)
{
    size_t written;
    if (fd >= 0)
        sink_write(fd, sink_is_file(fd), p, n, &written);
}

/* An error line goes out at once, as it always did, when its sink takes it without waiting
 * and no earlier line waits in the ring (errors are rare, and read right after the event that
 * caused them); else it waits in the ring for the writer. */
static void err_line(struct log_writer *wr, const char *line, size_t n)
{
    int fd = atomic_load_explicit(&wr->lg->err_fd, memory_order_relaxed);
    size_t written = 0;
    if (fd >= 0 && ring_used(&wr->err) == 0) {
        enum sink_result res = sink_write(fd, sink_is_file(fd), line, n, &written);
        if (res == SINK_DONE)
            return;
        if (res == SINK_FAILED) {
            atomic_fetch_add(&wr->err.dropped, 1);
            writer_wake(wr); /* to report it */
            return;
        }
    }
    pthread_mutex_lock(&wr->err_lock); /* held for a copy, never for I/O */
    bool put = ring_put(&wr->err, line + written, n - written);
    pthread_mutex_unlock(&wr->err_lock);
    if (!put)
        atomic_fetch_add(&wr->err.dropped, 1);
    writer_wake(wr);
}

void log_vmsg(struct logger *lg, enum log_level level, const char *fmt, va_list ap)
{
    if (!log_enabled(lg, level))
        return;
    char line[2048];
    size_t n = iso_now(line, sizeof(line));
    n += (size_t)snprintf(line + n, sizeof(line) - n, " [%s] ", level_names[level]);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    struct log_writer *wr = atomic_load(&lg->writer);
    if (!wr) {
        write_now(atomic_load_explicit(&lg->err_fd, memory_order_relaxed), line, n);
        return;
    }
    err_line(wr, line, n);
}

void log_msg(struct logger *lg, enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lg, level, fmt, ap);
    va_end(ap);
}

/* Hands the buffered lines to the writer: all that fit, whole lines, the rest dropped. */
static void buf_to_ring(struct log_buf *b, struct logger *lg)
{
    struct log_ring *r = b->ring;
    if (!ring_put(r, b->data, b->len)) {
        size_t off = 0;
        for (;;) {
            const char *nl = memchr(b->data + off, '\n', b->len - off);
            size_t len = nl ? (size_t)(nl - (b->data + off)) + 1 : b->len - off;
            if (!len || !ring_put(r, b->data + off, len))
                break;
            off += len;
        }
        atomic_fetch_add(&r->dropped, count_lines(b->data + off, b->len - off));
    }
    struct log_writer *wr = atomic_load(&lg->writer);
    if (wr)
        writer_wake(wr);
}

void log_buf_flush(struct log_buf *b, struct logger *lg)
{
    if (!b->len)
        return;
    if (b->ring && atomic_load(&lg->writer))
        buf_to_ring(b, lg);
    else
        write_now(atomic_load_explicit(&lg->access_fd, memory_order_relaxed), b->data, b->len);
    b->len = 0;
}

char *log_buf_reserve(struct log_buf *b, struct logger *lg, size_t max)
{
    if (max > sizeof(b->data))
        return NULL;
    if (sizeof(b->data) - b->len < max)
        log_buf_flush(b, lg);
    return b->data + b->len;
}

void log_buf_commit(struct log_buf *b, size_t n)
{
    b->len += n;
}

void log_buf_stamp(struct log_buf *b)
{
    time_t now = time(NULL);
    if (now == b->stamp_sec)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(b->clf_stamp, sizeof(b->clf_stamp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    strftime(b->iso_stamp, sizeof(b->iso_stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    httpdate_format(now, b->http_date);
    b->stamp_sec = now;
}
