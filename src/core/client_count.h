/* Open connections per client address on one worker, for max_connections_per_client: an
 * open-addressing hash table with linear probing and backward-shift deletion (no tombstones,
 * so lookups stay short under churn). */
#ifndef GH_CLIENT_COUNT_H
#define GH_CLIENT_COUNT_H

#include <stdint.h>
#include <sys/socket.h>

struct client_slot {
    uint8_t addr[16]; /* IPv4 as IPv4-mapped IPv6 */
    uint32_t count;   /* 0 = empty slot */
};

struct client_count {
    struct client_slot *slots;
    uint32_t cap; /* power of two */
    uint32_t used;
};

/* Count one more connection from `sa`; returns the new count, or 0 when out of memory. */
uint32_t client_count_add(struct client_count *t, const struct sockaddr *sa);
void client_count_remove(struct client_count *t, const struct sockaddr *sa);
void client_count_fini(struct client_count *t);

#endif
