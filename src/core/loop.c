#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

uint64_t ev_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int ev_loop_init(struct ev_loop *l)
{
    *l = (struct ev_loop){0};
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        return -1;
    l->now = ev_clock_ms();
    l->defer_tail = &l->defer_head;
    return 0;
}

void ev_loop_fini(struct ev_loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    free(l->heap);
    l->heap = NULL;
    l->epfd = -1;
}

int ev_io_add(struct ev_loop *l, struct ev_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events ? events : EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

void ev_io_del(struct ev_loop *l, struct ev_io *io)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* Binary min-heap on (deadline, arming order); slot is the 1-based index so that 0 means "not
 * armed". */
static void heap_place(struct ev_loop *l, uint32_t i, struct ev_timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static bool timer_before(const struct ev_timer *a, const struct ev_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_up(struct ev_loop *l, uint32_t i)
{
    struct ev_timer *t = l->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!timer_before(t, l->heap[parent]))
            break;
        heap_place(l, i, l->heap[parent]);
        i = parent;
    }
    heap_place(l, i, t);
}

static void heap_down(struct ev_loop *l, uint32_t i)
{
    struct ev_timer *t = l->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && timer_before(l->heap[c + 1], l->heap[c]))
            c++;
        if (!timer_before(l->heap[c], t))
            break;
        heap_place(l, i, l->heap[c]);
        i = c;
    }
    heap_place(l, i, t);
}

void ev_timer_stop(struct ev_loop *l, struct ev_timer *t)
{
    if (!t->slot)
        return;
    uint32_t i = t->slot - 1;
    t->slot = 0;
    struct ev_timer *last = l->heap[--l->nheap];
    if (i == l->nheap)
        return;
    heap_place(l, i, last);
    heap_up(l, i);
    heap_down(l, last->slot - 1);
}

void ev_timer_start(struct ev_loop *l, struct ev_timer *t, uint64_t ms)
{
    uint64_t deadline = l->now + ms;
    if (t->slot) {
        /* Re-arming to a later deadline is the common case (activity pushes a timeout out). */
        uint32_t i = t->slot - 1;
        uint64_t old = t->deadline;
        t->deadline = deadline;
        t->seq = ++l->timer_seq;
        if (deadline < old)
            heap_up(l, i);
        else
            heap_down(l, i);
        return;
    }
    if (l->nheap == l->capheap) {
        uint32_t cap = l->capheap ? l->capheap * 2 : 256;
        struct ev_timer **h = realloc(l->heap, cap * sizeof(*h));
        if (!h)
            abort(); /* out of memory for a timer: nothing sane to do */
        l->heap = h;
        l->capheap = cap;
    }
    t->deadline = deadline;
    t->seq = ++l->timer_seq;
    heap_place(l, l->nheap++, t);
    heap_up(l, l->nheap - 1);
}

void ev_defer(struct ev_loop *l, struct ev_defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    *l->defer_tail = d;
    l->defer_tail = &d->next;
}

/* The timers due now and armed before this turn's epoll_wait. One armed since (with 0 ms, to
 * continue after other connections' I/O) sorts after every timer due now, so the pass ends
 * there: it runs after the next epoll_wait, not again and again within this turn. */
static void run_timers(struct ev_loop *l, uint64_t last)
{
    while (l->nheap && l->heap[0]->deadline <= l->now && l->heap[0]->seq <= last) {
        struct ev_timer *t = l->heap[0];
        ev_timer_stop(l, t);
        t->cb(t);
    }
}

void ev_run_defers(struct ev_loop *l)
{
    /* Calls queued while running are run in the same pass: closes cascade within one turn. */
    while (l->defer_head) {
        struct ev_defer *d = l->defer_head;
        l->defer_head = d->next;
        if (!l->defer_head)
            l->defer_tail = &l->defer_head;
        d->queued = false;
        d->cb(d);
    }
}

void ev_loop_turn(struct ev_loop *l, int max_wait_ms)
{
    struct epoll_event evs[256];
    uint64_t armed_before = l->timer_seq;
    int wait = max_wait_ms;
    if (l->defer_head)
        wait = 0;
    else if (l->nheap) {
        uint64_t d = l->heap[0]->deadline;
        int until = d <= l->now ? 0 : (int)(d - l->now);
        if (wait < 0 || until < wait)
            wait = until;
    }
    int n = epoll_wait(l->epfd, evs, 256, wait);
    l->now = ev_clock_ms();
    for (int i = 0; i < n; i++) {
        struct ev_io *io = evs[i].data.ptr;
        io->cb(io, evs[i].events);
    }
    if (n < 0 && errno != EINTR)
        l->stop = true;
    run_timers(l, armed_before);
    ev_run_defers(l);
}
