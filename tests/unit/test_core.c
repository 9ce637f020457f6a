/* Buffers, the free list, the output queue and the event loop's timers and deferred calls. */
#include "check.h"
#include "core/buf.h"
#include "core/freelist.h"
#include "core/loop.h"
#include "net/outq.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_buf_pool(void)
{
    struct buf_pool p;
    buf_pool_init(&p, 2);
    struct buf *a = buf_get(&p), *b = buf_get(&p), *c = buf_get(&p);
    CHECK(a && b && c);
    CHECK_EQ_INT(p.in_use, 3);
    buf_put(&p, a);
    buf_put(&p, b);
    buf_put(&p, c); /* beyond max_free: freed, not kept */
    CHECK_EQ_INT(p.nfree, 2);
    CHECK_EQ_INT(p.in_use, 0);
    struct buf *d = buf_get(&p);
    CHECK(d == b); /* LIFO: the warmest buffer comes back first */
    CHECK_EQ_INT(d->start, 0);
    CHECK_EQ_INT(d->end, 0);
    buf_put(&p, d);
    buf_pool_fini(&p);
    CHECK_EQ_INT(p.nfree, 0);
}

static void test_buf_compact(void)
{
    struct buf_pool p;
    buf_pool_init(&p, 1);
    struct buf *b = buf_get(&p);
    memcpy(b->data, "HEADxxxxbody", 12);
    b->start = 8;
    b->end = 12;
    buf_compact(b, 4); /* keep the pinned head in [0,4) */
    CHECK_EQ_INT(b->start, 4);
    CHECK_EQ_INT(b->end, 8);
    CHECK(memcmp(b->data, "HEADbody", 8) == 0);
    b->start = b->end;
    buf_compact(b, 0);
    CHECK_EQ_INT(buf_len(b), 0);
    CHECK_EQ_INT(buf_room(b), BUF_SIZE);
    buf_put(&p, b);
    buf_pool_fini(&p);
}

static void test_freelist(void)
{
    struct freelist f;
    freelist_init(&f, 100, 1);
    void *a = freelist_get(&f), *b = freelist_get(&f);
    CHECK(a && b && a != b);
    freelist_put(&f, a);
    freelist_put(&f, b); /* over max: freed */
    CHECK_EQ_INT(f.n, 1);
    CHECK(freelist_get(&f) == a);
    free(a);
    freelist_fini(&f);
}

static void test_outq(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct buf_pool p;
    buf_pool_init(&p, 4);
    struct outq q = {0};
    CHECK(outq_empty(&q));
    CHECK(outq_append(&q, &p, "5\r\n", 3) == 0);
    outq_set_ext(&q, "hello", 5, "\r\n", 2);
    CHECK(!outq_empty(&q));
    CHECK_EQ_INT(outq_flush(&q, sv[0], &p), OUTQ_DONE);
    CHECK(outq_empty(&q));
    CHECK(q.gen == NULL); /* the buffer went back to the pool */
    char got[32] = {0};
    CHECK_EQ_INT(read(sv[1], got, sizeof(got)), 10);
    CHECK(memcmp(got, "5\r\nhello\r\n", 10) == 0);
    /* Fill the socket: the queue must report AGAIN and keep the unsent rest. */
    static char big[1 << 20];
    outq_set_ext(&q, big, sizeof(big), "", 0);
    CHECK_EQ_INT(outq_flush(&q, sv[0], &p), OUTQ_AGAIN);
    CHECK(q.ext_len > 0 && q.ext_len < sizeof(big));
    outq_release(&q, &p);
    close(sv[1]);
    CHECK(outq_append(&q, &p, "x", 1) == 0);
    CHECK_EQ_INT(outq_flush(&q, sv[0], &p), OUTQ_ERROR); /* peer gone: EPIPE */
    outq_release(&q, &p);
    close(sv[0]);
    buf_pool_fini(&p);
}

static int fired[8], nfired;
static struct ev_timer timers[8];

static void on_timer(struct ev_timer *t)
{
    fired[nfired++] = (int)(t - timers);
}

static void test_timers(void)
{
    struct ev_loop l;
    CHECK(ev_loop_init(&l) == 0);
    uint64_t order[8] = {50, 10, 40, 20, 30, 70, 60, 5};
    for (int i = 0; i < 8; i++) {
        timers[i].cb = on_timer;
        ev_timer_start(&l, &timers[i], order[i]);
    }
    ev_timer_stop(&l, &timers[2]);     /* 40: never fires */
    ev_timer_start(&l, &timers[5], 1); /* 70 -> 1: moves to the front */
    ev_timer_stop(&l, &timers[2]);     /* stopping twice is harmless */
    CHECK(!ev_timer_armed(&timers[2]));
    for (int turns = 0; turns < 50 && nfired < 7; turns++)
        ev_loop_turn(&l, 100); /* sleeps until the next deadline */
    int expect[] = {5, 7, 1, 3, 4, 0, 6};
    CHECK_EQ_INT(nfired, 7);
    for (int i = 0; i < 7 && i < nfired; i++)
        CHECK_EQ_INT(fired[i], expect[i]);
    CHECK_EQ_INT(l.nheap, 0);
    ev_loop_fini(&l);
}

static int next_runs;
static struct ev_loop *next_loop;
static struct ev_timer next_timer, next_peer;

static void on_next(struct ev_timer *t)
{
    next_runs++;
    ev_timer_start(next_loop, t, 0); /* yields: continue on the next turn */
}

static void on_next_peer(struct ev_timer *t)
{
    (void)t;
    next_runs += 1000;
}

/* A timer re-armed with 0 ms by its own callback runs once per turn, not again in the same
 * pass (which would loop within one turn and starve the I/O); a timer armed before the pass
 * with the same deadline still runs in it. */
static void test_timer_next_turn(void)
{
    struct ev_loop l;
    CHECK(ev_loop_init(&l) == 0);
    next_loop = &l;
    next_timer.cb = on_next;
    next_peer.cb = on_next_peer;
    ev_timer_start(&l, &next_timer, 0);
    ev_timer_start(&l, &next_peer, 0);
    ev_loop_turn(&l, 0);
    CHECK_EQ_INT(next_runs, 1001);
    ev_loop_turn(&l, 0);
    CHECK_EQ_INT(next_runs, 1002);
    CHECK(ev_timer_armed(&next_timer));
    ev_timer_stop(&l, &next_timer);
    ev_loop_fini(&l);
}

static struct ev_timer io_armed;
static int io_armed_runs;

static void on_io_armed(struct ev_timer *t)
{
    (void)t;
    io_armed_runs++;
}

static void on_io_arm(struct ev_io *io, uint32_t events)
{
    (void)io;
    (void)events;
    ev_timer_start(next_loop, &io_armed, 0);
}

/* A 0 ms timer armed by I/O runs after the next epoll_wait, not in the pass of its own turn:
 * a connection that yields from its I/O gives the others a poll first. */
static void test_timer_armed_by_io(void)
{
    struct ev_loop l;
    CHECK(ev_loop_init(&l) == 0);
    next_loop = &l;
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(write(p[1], "x", 1) == 1);
    struct ev_io io = {.fd = p[0], .cb = on_io_arm};
    io_armed.cb = on_io_armed;
    CHECK(ev_io_add(&l, &io, EPOLLIN) == 0);
    ev_loop_turn(&l, 0);
    CHECK(ev_timer_armed(&io_armed));
    CHECK_EQ_INT(io_armed_runs, 0);
    ev_io_del(&l, &io);
    ev_loop_turn(&l, 0);
    CHECK_EQ_INT(io_armed_runs, 1);
    close(p[0]);
    close(p[1]);
    ev_loop_fini(&l);
}

static int defer_runs;
static struct ev_defer d1, d2;
static struct ev_loop *defer_loop;

static void on_defer2(struct ev_defer *d)
{
    (void)d;
    defer_runs += 10;
}

static void on_defer1(struct ev_defer *d)
{
    (void)d;
    defer_runs++;
    ev_defer(defer_loop, &d2); /* queued from a deferred call: runs in the same pass */
}

static void test_defer(void)
{
    struct ev_loop l;
    CHECK(ev_loop_init(&l) == 0);
    defer_loop = &l;
    d1.cb = on_defer1;
    d2.cb = on_defer2;
    ev_defer(&l, &d1);
    ev_defer(&l, &d1); /* once, however often queued */
    ev_loop_turn(&l, 0);
    CHECK_EQ_INT(defer_runs, 11);
    ev_loop_fini(&l);
}

int main(void)
{
    test_buf_pool();
    test_buf_compact();
    test_freelist();
    test_outq();
    test_timers();
    test_timer_next_turn();
    test_timer_armed_by_io();
    test_defer();
    return check_done("core");
}
