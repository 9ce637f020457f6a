/* Logging. The error log is process-wide (one fd, one level, swapped on reload); access-log
 * lines are formatted by each worker into its own buffer, handed over once per loop turn.
 *
 * No thread that serves clients ever waits on a log sink: once log_writer_start has run,
 * access lines go into a bounded in-memory ring per worker that a writer thread empties into
 * the file, pipe or socket; an error line is written at once when its sink has room and no
 * earlier line waits, else it goes into a shared ring the writer empties too. A pipe or socket
 * is only written when poll says it has room. A sink that does not keep up (a pipe nobody
 * reads, a stalled journal) fills its ring, and further lines are dropped and counted: one
 * warning when it starts, the count when the sink has caught up. */
#ifndef GH_LOG_H
#define GH_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

struct log_writer;
struct log_ring;

struct logger {
    atomic_int err_fd;
    atomic_int level;
    atomic_int access_fd; /* -1 = off */
    int retired_fds[2];   /* replaced by the last reload; closed by the next one */
    /* The writer thread, or NULL: lines are then written at once, and dropped when the sink
     * cannot take them without waiting (before the start and after the stop, in unit tests). */
    _Atomic(struct log_writer *) writer;
};

/* Open the targets: error "-" = stderr, access "-" = stdout, NULL = off. On failure returns -1
 * and leaves the logger unchanged; the message goes to the current error log. */
int log_open(struct logger *lg, const char *error_path, const char *access_path, int level);

void log_msg(struct logger *lg, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(struct logger *lg, enum log_level level, const char *fmt, va_list ap);

static inline int log_enabled(struct logger *lg, enum log_level level)
{
    return (int)level >= atomic_load_explicit(&lg->level, memory_order_relaxed);
}

/* Start the writer thread with one access-log ring per worker (`naccess`). Lines logged from
 * then on go through it. Returns 0, or -1 (lines are then written at once, as before). */
int log_writer_start(struct logger *lg, size_t naccess);
/* Write what the rings hold, waiting at most `grace_ms` for sinks that do not take it, then stop
 * the thread. Call when no other thread logs any more. */
void log_writer_stop(struct logger *lg, unsigned grace_ms);
/* The access-log ring of worker i, or NULL without a writer. */
struct log_ring *log_access_ring(struct logger *lg, size_t i);

/* A worker's access-log buffer. */
struct log_buf {
    char data[16384];
    size_t len;
    struct log_ring *ring; /* where log_buf_flush hands the lines; NULL: written at once */
    time_t stamp_sec;      /* second the cached stamps describe */
    char clf_stamp[32];    /* 24/Nov/2026:10:00:00 +0000 */
    char iso_stamp[32];    /* 2026-11-24T10:00:00Z */
    char http_date[32];    /* Tue, 24 Nov 2026 10:00:00 GMT (RFC 9110 IMF-fixdate) */
};

/* Reserve room for one line; returns a pointer to write at most `max` bytes, after flushing if
 * needed; commit the bytes written with log_buf_commit. */
char *log_buf_reserve(struct log_buf *b, struct logger *lg, size_t max);
void log_buf_commit(struct log_buf *b, size_t n);
void log_buf_flush(struct log_buf *b, struct logger *lg);
void log_buf_stamp(struct log_buf *b);

#endif
