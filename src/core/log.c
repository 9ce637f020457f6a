#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
    /* One write per line keeps lines whole when workers log at the same time. */
    ssize_t w = write(atomic_load_explicit(&lg->err_fd, memory_order_relaxed), line, n);
    (void)w;
}

void log_msg(struct logger *lg, enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lg, level, fmt, ap);
    va_end(ap);
}

void log_buf_flush(struct log_buf *b, struct logger *lg)
{
    int fd = atomic_load_explicit(&lg->access_fd, memory_order_relaxed);
    size_t off = 0;
    while (fd >= 0 && off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* a full disk must not stop the proxy: the lines are dropped */
        off += (size_t)w;
    }
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
    strftime(b->http_date, sizeof(b->http_date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    b->stamp_sec = now;
}
