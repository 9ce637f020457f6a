/* Intrusive doubly-linked list. */
#ifndef GH_LIST_H
#define GH_LIST_H

#include <stddef.h>

struct dlist {
    struct dlist *prev, *next;
};

static inline void dlist_init(struct dlist *l)
{
    l->prev = l->next = l;
}
static inline int dlist_empty(const struct dlist *l)
{
    return l->next == l;
}
static inline void dlist_push(struct dlist *head, struct dlist *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}
static inline void dlist_remove(struct dlist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
