/* I/O buffers of one fixed size, recycled through a per-worker free list. A connection holds a
 * buffer only while it has bytes in it, so idle keep-alive connections cost no buffer memory. */
#ifndef GH_BUF_H
#define GH_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_SIZE (64 * 1024)

struct buf {
    struct buf *next_free;
    uint32_t start; /* first unread byte */
    uint32_t end;   /* one past the last byte */
    char data[BUF_SIZE];
};

struct buf_pool {
    struct buf *free;
    uint32_t nfree, max_free;
    uint64_t in_use;
};

void buf_pool_init(struct buf_pool *p, uint32_t max_free);
void buf_pool_fini(struct buf_pool *p);
struct buf *buf_get(struct buf_pool *p); /* NULL when out of memory */
void buf_put(struct buf_pool *p, struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
    return b->end - b->start;
}
static inline size_t buf_room(const struct buf *b)
{
    return BUF_SIZE - b->end;
}
/* Move unread bytes down to offset `keep` (bytes before it are pinned: e.g. a request head
 * that is still referenced while its body streams). */
void buf_compact(struct buf *b, uint32_t keep);

#endif
