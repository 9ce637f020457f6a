/* What Gatehouse knows about each upstream server, shared by every worker: health (active
 * checks and passive ejection), requests in flight, the balancer's state and the retry budget.
 * A server's state outlives a reload when the new configuration still names it (same upstream
 * name and address), so health and ejections carry over. Plain atomics; one short mutex per
 * upstream for the smooth weighted round robin. */
#ifndef GH_UPSTATE_H
#define GH_UPSTATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct cfg_upstream;
struct logger;

enum upsrv_health { UPSRV_UP = 0, UPSRV_DOWN = 1 };

#define UPSRV_STICKY_LEN 16
#define UPSRV_RECENT_SECONDS 60 /* recent failures: those of the last minute */

/* One server, reference counted across the snapshots that name it. */
struct upsrv {
    atomic_uint refs;
    char *key; /* "upstream-name address": the identity across reloads */
    /* Active checks (written by the checker only): UPSRV_UP until `fall` failures in a row,
     * then UPSRV_DOWN until `rise` successes in a row. */
    atomic_int health;
    atomic_uint check_ok, check_fail; /* consecutive results */
    atomic_ullong up_since_ms;        /* when it last became usable: slow start */
    /* Passive: consecutive failures of real requests; at passive_health.failures the server is
     * ejected until ejected_until_ms, for eject * 2^(ejections-1), capped at 10 x eject. */
    atomic_uint consecutive_failures;
    atomic_uint ejections;
    atomic_ullong ejected_until_ms;
    /* Set by an ejection, cleared (one compare-and-swap) by the first pick after it ended,
     * which logs the server's return where the ejection was logged. */
    atomic_bool return_unlogged;
    _Atomic(struct logger *) eject_log;
    /* Load. */
    atomic_uint inflight;   /* requests sent and not yet finished */
    atomic_uint tunnels;    /* upgraded connections open to it now (tunnel.c) */
    atomic_ullong requests; /* totals, for /status */
    atomic_ullong failures;
    /* Failed requests per second over the last UPSRV_RECENT_SECONDS: each slot holds its
     * second (high 32 bits) and its count (low 32), so one compare-and-swap both starts a
     * slot afresh and counts in it. */
    atomic_ullong recent_failures[UPSRV_RECENT_SECONDS];
    char last_error[96]; /* racy text for /status only; always NUL-terminated */
    /* The server sent bytes after a complete response (upstream.c): said once, not per event. */
    atomic_bool stray_logged;
    /* The sticky cookie's value naming this server: random, so the cookie tells a client
     * nothing about the network behind us; kept across reloads with the rest. */
    char sticky[UPSRV_STICKY_LEN + 1];
};

/* One upstream of one snapshot. */
struct upstate {
    const struct cfg_upstream *up;
    struct upsrv **servers; /* up->nservers */
    pthread_mutex_t lock;   /* smooth weighted round robin */
    int64_t *current;       /* its per-server current weights */
    atomic_ullong rr;       /* plain rotation for ties */
    /* Consistent hash ring (balance: hash): sorted points, each owned by a server. */
    uint64_t *ring_hash;
    uint32_t *ring_server;
    size_t nring;
    /* Retry budget: requests and retries in the current and the previous 10 s window. */
    atomic_ullong window_start_ms;
    atomic_uint window_requests, window_retries, prev_requests, prev_retries;
    atomic_uint queued; /* requests waiting for a server under max_conns (queue.size) */
};

/* Build the state of every upstream of `c`, taking over the servers that `old` (may be NULL)
 * already knows. Called once per snapshot before it is published. 0 or -1 (out of memory). */
int upstate_attach(struct config *c, const struct config *old);
/* Release what upstate_attach built (the snapshot is being freed). */
void upstate_detach(struct config *c);

/* What a pick needs to know about the request. */
struct upstate_req {
    const char *key; /* balance: hash: the value hashed (client address, header, cookie, path) */
    size_t key_len;
    const uint64_t *tried; /* bitmap of servers already tried by this request (retries) */
    uint64_t *rand;        /* the worker's xorshift state (power_of_two) */
    const char *sticky;    /* the client's sticky cookie value, if any: its server first */
    size_t sticky_len;
    uint64_t now_ms;
};

enum { UPSTATE_NONE_UP = -1, UPSTATE_ALL_FULL = -2 };

/* Choose a server for a request: the balance policy over the usable servers (up, not ejected,
 * under max_conns, not tried yet), backups only when no primary is usable. Returns its index,
 * UPSTATE_NONE_UP (every server down: 503) or UPSTATE_ALL_FULL (max_conns reached: 503). The
 * pick counts as in flight until upstate_done. The first pick after an ejection ended logs the
 * server's return (once, whichever worker makes it). */
int upstate_pick(struct upstate *s, const struct upstate_req *r);
/* The request on server i finished: ok, or failed (connect error, reset, timeout, 5xx when
 * the upstream counts those). Feeds passive health; logs ejections. */
enum upstate_result {
    UPSTATE_OK,      /* a response came: the server works */
    UPSTATE_FAILED,  /* connect, TLS, reset or timeout, or a status passive_health counts */
    UPSTATE_NEUTRAL, /* no verdict (the client went away, a stale pooled connection) */
};
void upstate_done(struct upstate *s, size_t i, enum upstate_result res, const char *why,
                  uint64_t now_ms, struct logger *log);
/* An active check of server i finished (health.c): counts results in a row and takes the
 * server down after `fall` failures in a row, or back up after `rise` successes, when its slow
 * start begins (now_ms). Returns true when the server changed state, for the caller to log;
 * *in_a_row is this result's count in a row. Only the one checker thread calls it. */
bool upstate_check_done(struct upstate *s, size_t i, bool ok, uint64_t now_ms, unsigned *in_a_row);
/* Failed requests on the server in the last UPSRV_RECENT_SECONDS (for /status). */
unsigned upstate_recent_failures(const struct upsrv *v, uint64_t now_ms);
/* May this request be retried? Counts it against the budget when it may. */
bool upstate_retry_allowed(struct upstate *s, uint64_t now_ms);
/* A place in the upstream's queue (queue.size, all workers together): false when full. */
bool upstate_queue_enter(struct upstate *s);
void upstate_queue_leave(struct upstate *s);
/* Whether server i may be picked now (for /status and tests). */
bool upstate_usable(const struct upstate *s, size_t i, uint64_t now_ms);

#endif
