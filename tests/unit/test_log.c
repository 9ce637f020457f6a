/* The log writer: lines handed over never wait on a sink that is not read, the lines that were
 * kept come out whole, and every line is either written or counted as dropped. */
#include "check.h"
#include "core/log.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct sink {
    int rd, wr;
    char *text;
    size_t len, cap;
};

/* A pipe whose write end blocks, as a shell's stdout does; only our read end is non-blocking. */
static void sink_open(struct sink *s)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    *s = (struct sink){.rd = fds[0], .wr = fds[1]};
}

static void sink_read(struct sink *s)
{
    for (;;) {
        if (s->cap - s->len < 65536) {
            s->cap = s->cap ? s->cap * 2 : 1 << 20;
            s->text = realloc(s->text, s->cap + 1);
        }
        ssize_t n = read(s->rd, s->text + s->len, s->cap - s->len);
        if (n <= 0)
            break;
        s->len += (size_t)n;
    }
    s->text[s->len] = '\0';
}

static unsigned count_of(const char *text, const char *what)
{
    unsigned n = 0;
    for (const char *t = text; (t = strstr(t, what)); t += strlen(what))
        n++;
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Reads both sinks until the error log says how many access lines were dropped. */
static unsigned long wait_dropped(struct sink *access, struct sink *err)
{
    for (int i = 0; i < 500; i++) {
        sink_read(access);
        sink_read(err);
        const char *m = strstr(err->text, "access log: dropped ");
        if (m)
            return strtoul(m + strlen("access log: dropped "), NULL, 10);
        sleep_ms(10);
    }
    return 0;
}

#define LINES 20000

static void test_unread_sink(void)
{
    struct sink access, err;
    sink_open(&access);
    sink_open(&err);
    struct logger lg = {0};
    atomic_init(&lg.err_fd, err.wr);
    atomic_init(&lg.access_fd, access.wr);
    atomic_init(&lg.level, LOG_INFO);
    CHECK(log_writer_start(&lg, 1) == 0);
    static struct log_buf b;
    b.ring = log_access_ring(&lg, 0);
    CHECK(b.ring != NULL);

    /* Far more than the pipe and the ring hold, with nobody reading: this must not wait (the
     * alarm ends a test that would hang). */
    alarm(20);
    for (unsigned i = 0; i < LINES; i++) {
        char *p = log_buf_reserve(&b, &lg, 256);
        int n = snprintf(p, 256, "line %07u %0100u\n", i, i);
        log_buf_commit(&b, (size_t)n);
        if (i % 50 == 49)
            log_buf_flush(&b, &lg);
    }
    log_buf_flush(&b, &lg);
    alarm(0);

    /* Read again: every line was either written, whole, or counted as dropped. */
    unsigned long dropped = wait_dropped(&access, &err);
    CHECK(dropped > 0 && dropped < LINES);
    CHECK_EQ_INT(count_of(access.text, "\n") + dropped, LINES);
    unsigned whole = 0;
    for (char *line = access.text; *line;) {
        char *nl = strchr(line, '\n');
        unsigned a, b2;
        whole += nl && nl - line == 113 && sscanf(line, "line %7u %100u", &a, &b2) == 2 && a == b2;
        line = nl ? nl + 1 : line + strlen(line);
    }
    CHECK_EQ_INT(whole + dropped, LINES);
    CHECK_EQ_INT(count_of(err.text, "access log is not keeping up"), 1);

    /* The error log goes through the writer too. */
    log_msg(&lg, LOG_WARN, "after %s", "catching up");
    for (int i = 0; i < 200 && !strstr(err.text, "after catching up"); i++) {
        sleep_ms(10);
        sink_read(&err);
    }
    CHECK(strstr(err.text, "[warn] after catching up\n") != NULL);
    log_writer_stop(&lg, 100);
    CHECK(atomic_load(&lg.writer) == NULL);
    close(access.rd);
    close(access.wr);
    close(err.rd);
    close(err.wr);
    free(access.text);
    free(err.text);
}

/* A stop with a sink that is never read returns after the grace. */
static void test_stop_with_unread_sink(void)
{
    struct sink err;
    sink_open(&err);
    struct logger lg = {0};
    atomic_init(&lg.err_fd, err.wr);
    atomic_init(&lg.access_fd, -1);
    atomic_init(&lg.level, LOG_INFO);
    CHECK(log_writer_start(&lg, 1) == 0);
    alarm(20);
    for (int i = 0; i < 5000; i++)
        log_msg(&lg, LOG_ERROR, "error %d: %0200d", i, i);
    log_writer_stop(&lg, 50);
    alarm(0);
    /* Without the writer, a line the pipe cannot take now is dropped, not waited for. */
    alarm(20);
    log_msg(&lg, LOG_ERROR, "one more");
    alarm(0);
    CHECK(atomic_load(&lg.writer) == NULL);
    close(err.rd);
    close(err.wr);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_unread_sink();
    test_stop_with_unread_sink();
    return check_done("log");
}
