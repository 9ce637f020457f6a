/* A per-worker cache of fixed-size objects, so the request path recycles memory instead of
 * calling malloc: objects go back on the list when released and are reused LIFO (warm). */
#ifndef GH_FREELIST_H
#define GH_FREELIST_H

#include <stddef.h>
#include <stdint.h>

struct freelist {
    void *head;
    size_t size; /* object size, >= sizeof(void *) */
    uint32_t n, max;
};

static inline void freelist_init(struct freelist *f, size_t size, uint32_t max)
{
    *f = (struct freelist){.size = size < sizeof(void *) ? sizeof(void *) : size, .max = max};
}

void *freelist_get(struct freelist *f); /* uninitialised memory, or NULL */
void freelist_put(struct freelist *f, void *p);
void freelist_fini(struct freelist *f);

#endif
