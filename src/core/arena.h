/* A bump allocator (gh_: config_walk.h has its own small arena_* for the config loader) for memory
 * that lives exactly as long as one object (an HTTP/2 stream's header storage, request fields,
 * trailers, response buffer): allocations are carved from a first block the owner provides
 * (embedded in the object, so a typical object costs no malloc at all), then from chained blocks
 * that double in size up to a cap; nothing is freed one by one, everything goes at once with
 * gh_arena_fini. Single-threaded, like the worker that owns it. */
#ifndef GH_ARENA_H
#define GH_ARENA_H

#include <stddef.h>

#define ARENA_ALIGN 16       /* every allocation, for any type */
#define ARENA_BLOCK_MIN 4096 /* the first chained block; each next one doubles */

struct gh_arena_block;

struct gh_arena {
    char *cur, *end;               /* free space of the current block */
    char *last;                    /* the latest allocation: gh_arena_grow extends it in place */
    struct gh_arena_block *blocks; /* chained blocks from malloc, newest first */
    size_t heap;                   /* bytes in chained blocks */
    size_t cap;                    /* heap never goes past this: then allocations fail */
};

/* `first` (may be NULL) is the caller's memory, used before any block is taken from malloc;
 * `cap` bounds the chained blocks (not the first one). */
void gh_arena_init(struct gh_arena *a, void *first, size_t first_size, size_t cap);
/* `size` bytes aligned to ARENA_ALIGN, uninitialised; NULL past the cap or out of memory. */
void *gh_arena_alloc(struct gh_arena *a, size_t size);
/* realloc for arena memory: `p` (NULL, or an allocation of `old_size` bytes) grown to
 * `new_size`. The latest allocation grows in place when its block has room; anything else is
 * copied (the old bytes stay allocated until gh_arena_fini). NULL on failure, `p` untouched. */
void *gh_arena_grow(struct gh_arena *a, void *p, size_t old_size, size_t new_size);
/* Free every chained block; the arena is empty and unusable until gh_arena_init again. */
void gh_arena_fini(struct gh_arena *a);

#endif
