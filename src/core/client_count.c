#include "core/client_count.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static void key_of(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return;
    }
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
}

static uint32_t hash_of(const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 32);
}

static struct client_slot *find(const struct client_count *t, const uint8_t key[16])
{
    uint32_t mask = t->cap - 1;
    for (uint32_t i = hash_of(key) & mask;; i = (i + 1) & mask) {
        struct client_slot *s = &t->slots[i];
        if (!s->count || memcmp(s->addr, key, 16) == 0)
            return s;
    }
}

static int grow(struct client_count *t)
{
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    struct client_slot *old = t->slots;
    uint32_t old_cap = t->cap;
    t->slots = calloc(cap, sizeof(*t->slots));
    if (!t->slots) {
        t->slots = old;
        return -1;
    }
    t->cap = cap;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].count)
            *find(t, old[i].addr) = old[i];
    free(old);
    return 0;
}

uint32_t client_count_add(struct client_count *t, const struct sockaddr *sa)
{
    if ((t->used + 1) * 2 > t->cap && grow(t) < 0)
        return 0;
    uint8_t key[16];
    key_of(sa, key);
    struct client_slot *s = find(t, key);
    if (!s->count) {
        memcpy(s->addr, key, 16);
        t->used++;
    }
    return ++s->count;
}

void client_count_remove(struct client_count *t, const struct sockaddr *sa)
{
    if (!t->cap)
        return;
    uint8_t key[16];
    key_of(sa, key);
    struct client_slot *s = find(t, key);
    if (!s->count || --s->count)
        return;
    t->used--;
    /* Backward shift: pull later members of the probe run into the hole. */
    uint32_t mask = t->cap - 1, hole = (uint32_t)(s - t->slots);
    for (uint32_t i = (hole + 1) & mask; t->slots[i].count; i = (i + 1) & mask) {
        uint32_t home = hash_of(t->slots[i].addr) & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            t->slots[hole] = t->slots[i];
            t->slots[i].count = 0;
            hole = i;
        }
    }
}

void client_count_fini(struct client_count *t)
{
    free(t->slots);
    *t = (struct client_count){0};
}
