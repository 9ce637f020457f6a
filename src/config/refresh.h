/* Looking up the host names of the running configuration's upstreams again, each upstream every
 * resolve_interval, and swapping in a snapshot built again when their addresses change.
 *
 * The refresh runs on the thread that drives it (main's, between signals: getaddrinfo blocks,
 * never on a worker). Its owner says how long it may wait (refresh_wait), lets it run when that
 * time has come or a signal woke it (refresh_run), and resets it after a reload (refresh_reset).
 * What only the owner can do, reading the running snapshot and swapping in a new one with its
 * listeners, goes through struct refresh_ops. */
#ifndef GH_REFRESH_H
#define GH_REFRESH_H

#include "config/config.h"
#include "core/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct refresh_ops {
    const struct config_resolver *resolver; /* how names are looked up; NULL: getaddrinfo */
    /* The running snapshot, with a reference the refresh releases. */
    struct config *(*running)(void *owner);
    /* Makes `c`, built again from the running `old` with new addresses, the running snapshot
     * as a reload would: listeners it adds opened first, servers that keep their address keep
     * their state. Calls announce(arg) once nothing can fail any more, before the swap (it logs
     * the new addresses). Takes over the reference to `c` (released when it fails). Returns 0,
     * or -1 after logging why `old` stays. */
    int (*install)(void *owner, const struct config *old, struct config *c,
                   void (*announce)(void *arg), void *arg);
};

/* When each upstream of the running snapshot looks its names up next, and which names failed
 * (warned about once, until they resolve again). A reload starts it afresh; a rebuild for new
 * addresses keeps the same upstreams and names, so it keeps this too. */
struct refresh {
    const struct refresh_ops *ops;
    void *owner;
    struct logger *log;
    uint64_t *next_ms; /* per upstream; UINT64_MAX: never (no names, or resolve_interval 0) */
    size_t nups;
    bool *failing; /* per name, in the order of a resolve_round */
    size_t nnames;
};

/* Starts with the upstreams of `c`, the running snapshot: each is due resolve_interval from
 * now. */
void refresh_start(struct refresh *rf, const struct refresh_ops *ops, void *owner,
                   struct logger *lg, const struct config *c);
/* After a reload: the upstreams of `c`, each due resolve_interval from now. */
void refresh_reset(struct refresh *rf, const struct config *c);
/* How long the owner may wait: ms until the next lookup is due, or -1 for no lookup ever. */
long long refresh_wait(const struct refresh *rf);
/* Looks up the names of the upstreams that are due; rebuilds (ops->install) when an answer
 * changed. Nothing when none is due. */
void refresh_run(struct refresh *rf);
void refresh_stop(struct refresh *rf);

#endif
