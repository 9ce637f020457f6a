/* The worker's event loop: edge-triggered epoll for I/O, a binary heap of timers, and a list
 * of deferred calls run at the end of each turn (so a close never calls back synchronously). */
#ifndef GH_LOOP_H
#define GH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

struct ev_io {
    int fd;
    void (*cb)(struct ev_io *io, uint32_t events); /* events: EPOLLIN|EPOLLOUT|EPOLLERR|... */
};

struct ev_timer {
    uint64_t deadline; /* ms, loop clock */
    uint32_t slot;     /* position in the heap + 1; 0 = not armed */
    uint64_t seq;      /* when it was armed: equal deadlines run in arming order */
    void (*cb)(struct ev_timer *t);
};

struct ev_defer {
    struct ev_defer *next;
    bool queued;
    void (*cb)(struct ev_defer *d);
};

struct ev_loop {
    int epfd;
    bool stop;
    uint64_t now; /* ms, CLOCK_MONOTONIC, refreshed once per turn */
    struct ev_timer **heap;
    uint32_t nheap, capheap;
    uint64_t timer_seq; /* timers armed so far */
    struct ev_defer *defer_head, **defer_tail;
};

int ev_loop_init(struct ev_loop *l);
void ev_loop_fini(struct ev_loop *l);

/* Register fd for edge-triggered EPOLLIN|EPOLLOUT|EPOLLRDHUP (or `events` if non-zero). */
int ev_io_add(struct ev_loop *l, struct ev_io *io, uint32_t events);
void ev_io_del(struct ev_loop *l, struct ev_io *io);

/* Arm (or re-arm) a timer `ms` from now; stop it. Stopping an unarmed timer is a no-op.
 * A timer armed with 0 ms runs in the next turn, after that turn's epoll_wait and I/O (never in
 * the pass of the turn that armed it): "continue on the next turn" for work that yields to the
 * other connections. */
void ev_timer_start(struct ev_loop *l, struct ev_timer *t, uint64_t ms);
void ev_timer_stop(struct ev_loop *l, struct ev_timer *t);
static inline bool ev_timer_armed(const struct ev_timer *t)
{
    return t->slot != 0;
}

/* Run d->cb at the end of this loop turn (once, however often it is queued). */
void ev_defer(struct ev_loop *l, struct ev_defer *d);

/* Run the deferred calls now (used at shutdown, after the last turn). */
void ev_run_defers(struct ev_loop *l);

/* One turn: wait up to the next timer (at most `max_wait_ms`), dispatch I/O, timers, defers. */
void ev_loop_turn(struct ev_loop *l, int max_wait_ms);

uint64_t ev_clock_ms(void);

#endif
