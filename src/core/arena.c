#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct gh_arena_block {
    struct gh_arena_block *next;
    size_t size;
    _Alignas(ARENA_ALIGN) char data[];
};

static size_t gh_arena_round(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

void gh_arena_init(struct gh_arena *a, void *first, size_t first_size, size_t cap)
{
    *a = (struct gh_arena){.cap = cap};
    if (!first)
        return;
    size_t pad = (size_t)(-(uintptr_t)first & (ARENA_ALIGN - 1)); /* to the first aligned byte */
    if (first_size <= pad)
        return;
    a->cur = (char *)first + pad;
    a->end = (char *)first + first_size;
}

/* A new current block with room for `need` bytes: twice the last block, at least
 * ARENA_BLOCK_MIN, trimmed to what the cap leaves. */
static int gh_arena_block_new(struct gh_arena *a, size_t need)
{
    size_t left = a->cap - a->heap;
    if (need > left)
        return -1;
    size_t size = a->blocks ? a->blocks->size * 2 : ARENA_BLOCK_MIN;
    if (size < need)
        size = need;
    if (size > left)
        size = left;
    struct gh_arena_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return -1;
    b->next = a->blocks;
    b->size = size;
    a->blocks = b;
    a->heap += size;
    a->cur = b->data;
    a->end = b->data + size;
    a->last = NULL;
    return 0;
}

void *gh_arena_alloc(struct gh_arena *a, size_t size)
{
    size_t n = gh_arena_round(size ? size : 1);
    if (n < size)
        return NULL; /* overflow */
    if ((size_t)(a->end - a->cur) < n && gh_arena_block_new(a, n) < 0)
        return NULL;
    a->last = a->cur;
    a->cur += n;
    return a->last;
}

void *gh_arena_grow(struct gh_arena *a, void *p, size_t old_size, size_t new_size)
{
    if (!p)
        return gh_arena_alloc(a, new_size);
    if (new_size <= old_size)
        return p;
    size_t n = gh_arena_round(new_size);
    if (n < new_size)
        return NULL;
    if (p == a->last && (size_t)(a->end - (char *)p) >= n) {
        a->cur = (char *)p + n;
        return p;
    }
    void *q = gh_arena_alloc(a, new_size);
    if (q)
        memcpy(q, p, old_size);
    return q;
}

void gh_arena_fini(struct gh_arena *a)
{
    while (a->blocks) {
        struct gh_arena_block *next = a->blocks->next;
        free(a->blocks);
        a->blocks = next;
    }
    *a = (struct gh_arena){0};
}
