#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

void buf_pool_init(struct buf_pool *p, uint32_t max_free)
{
    *p = (struct buf_pool){.max_free = max_free};
}

void buf_pool_fini(struct buf_pool *p)
{
    while (p->free) {
        struct buf *b = p->free;
        p->free = b->next_free;
        free(b);
    }
    p->nfree = 0;
}

struct buf *buf_get(struct buf_pool *p)
{
    struct buf *b = p->free;
    if (b) {
        p->free = b->next_free;
        p->nfree--;
    } else {
        b = malloc(sizeof(*b));
        if (!b)
            return NULL;
    }
    b->next_free = NULL;
    b->start = b->end = 0;
    p->in_use++;
    return b;
}

void buf_put(struct buf_pool *p, struct buf *b)
{
    if (!b)
        return;
    p->in_use--;
    if (p->nfree >= p->max_free) {
        free(b);
        return;
    }
    b->next_free = p->free;
    p->free = b;
    p->nfree++;
}

void buf_compact(struct buf *b, uint32_t keep)
{
    if (b->start == keep)
        return;
    size_t n = buf_len(b);
    if (n)
        memmove(b->data + keep, b->data + b->start, n);
    b->start = keep;
    b->end = keep + (uint32_t)n;
}
