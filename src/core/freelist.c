#include "core/freelist.h"

#include <stdlib.h>

void *freelist_get(struct freelist *f)
{
    void *p = f->head;
    if (!p)
        return malloc(f->size);
    f->head = *(void **)p;
    f->n--;
    return p;
}

void freelist_put(struct freelist *f, void *p)
{
    if (!p)
        return;
    if (f->n >= f->max) {
        free(p);
        return;
    }
    *(void **)p = f->head;
    f->head = p;
    f->n++;
}

void freelist_fini(struct freelist *f)
{
    while (f->head) {
        void *p = f->head;
        f->head = *(void **)p;
        free(p);
    }
    f->n = 0;
}
