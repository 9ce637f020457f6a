#include "proxy/upstate.h"

#include "config/config.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RING_POINTS 160        /* ring points per unit of weight (balance: hash) */
#define RING_MAX (1u << 20)    /* all servers together */
#define BUDGET_WINDOW_MS 10000 /* the retry budget counts over this window and the previous */
#define BUDGET_MIN_RETRIES 10  /* per window whatever the traffic: a quiet upstream may retry */
#define MAX_EJECT_FACTOR 10    /* an ejection grows up to this many times passive eject */
#define WEIGHT_SCALE 1000      /* weights are scaled so slow start can ramp them smoothly */

/* ---- servers shared across snapshots ---------------------------------------------------- */

static void srv_unref(struct upsrv *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1) {
        free(v->key);
        free(v);
    }
}

static struct upsrv *srv_new(const char *key)
{
    struct upsrv *v = calloc(1, sizeof *v);
    if (!v || !(v->key = strdup(key))) {
        free(v);
        return NULL;
    }
    atomic_init(&v->refs, 1);
    unsigned char raw[UPSRV_STICKY_LEN / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        free(v->key);
        free(v);
        return NULL;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(v->sticky + 2 * i, 3, "%02x", raw[i]);
    return v;
}

/* The state `old` has for the same upstream and address, with a new reference, or NULL. */
static struct upsrv *srv_carry(const struct config *old, const char *key)
{
    for (size_t u = 0; old && u < old->nupstreams; u++) {
        const struct upstate *s = old->upstreams[u].state;
        for (size_t i = 0; s && i < s->up->nservers; i++) {
            if (strcmp(s->servers[i]->key, key) == 0) {
                atomic_fetch_add(&s->servers[i]->refs, 1);
                return s->servers[i];
            }
        }
    }
    return NULL;
}

/* ---- consistent hash ring ---------------------------------------------------------------- */

/* FNV-1a, then a splitmix64 finaliser: FNV alone clusters similar short keys on the ring. */
static uint64_t hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

struct ring_point {
    uint64_t hash;
    uint32_t server;
};

static int point_cmp(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->server < y->server ? -1 : x->server > y->server;
}

/* Points are named after the server's address, not its position: adding or removing a server
 * moves only the keys of its own points (about 1/N of them). */
static int ring_build(struct upstate *s)
{
    const struct cfg_upstream *u = s->up;
    size_t n = 0;
    for (size_t i = 0; i < u->nservers; i++)
        n += u->policies[i].backup ? 0 : (size_t)u->policies[i].weight * RING_POINTS;
    /* Over the cap, every server's share shrinks alike (never the last servers' alone). */
    size_t per_weight = RING_POINTS;
    if (n > RING_MAX) {
        per_weight = (size_t)RING_POINTS * RING_MAX / n;
        per_weight = per_weight ? per_weight : 1;
        n = 0;
        for (size_t i = 0; i < u->nservers; i++)
            n += u->policies[i].backup ? 0 : (size_t)u->policies[i].weight * per_weight;
    }
    /* No primaries (the config refuses that, but a ring must not depend on it): an empty ring,
     * and pick_hash leaves the choice to round robin. Not malloc(0), which may return NULL. */
    if (n == 0)
        return 0;
    struct ring_point *pts = malloc(n * sizeof *pts);
    s->ring_hash = malloc(n * sizeof *s->ring_hash);
    s->ring_server = malloc(n * sizeof *s->ring_server);
    if (!pts || !s->ring_hash || !s->ring_server) {
        free(pts);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < u->nservers && k < n; i++) {
        if (u->policies[i].backup)
            continue;
        for (size_t j = 0; j < u->policies[i].weight * per_weight && k < n; j++) {
            char name[300];
            int len = snprintf(name, sizeof name, "%s#%zu", u->servers[i].text, j);
            pts[k++] = (struct ring_point){hash64(name, (size_t)len), (uint32_t)i};
        }
    }
    qsort(pts, k, sizeof *pts, point_cmp);
    for (size_t i = 0; i < k; i++) {
        s->ring_hash[i] = pts[i].hash;
        s->ring_server[i] = pts[i].server;
    }
    s->nring = k;
    free(pts);
    return 0;
}

/* ---- attach / detach ---------------------------------------------------------------------- */

static void state_free(struct upstate *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->servers && i < s->up->nservers; i++)
        srv_unref(s->servers[i]);
    free(s->servers);
    free(s->current);
    free(s->ring_hash);
    free(s->ring_server);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static struct upstate *state_new(const struct cfg_upstream *u, const struct config *old)
{
    struct upstate *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->up = u;
    pthread_mutex_init(&s->lock, NULL);
    s->servers = calloc(u->nservers, sizeof *s->servers);
    s->current = calloc(u->nservers, sizeof *s->current);
    if (!s->servers || !s->current)
        goto fail;
    for (size_t i = 0; i < u->nservers; i++) {
        char key[400];
        snprintf(key, sizeof key, "%s %s", u->name, u->servers[i].text);
        s->servers[i] = srv_carry(old, key);
        if (!s->servers[i] && !(s->servers[i] = srv_new(key)))
            goto fail;
    }
    if (u->balance == CFG_BAL_HASH && ring_build(s) < 0)
        goto fail;
    return s;
fail:
    state_free(s);
    return NULL;
}

int upstate_attach(struct config *c, const struct config *old)
{
    for (size_t i = 0; i < c->nupstreams; i++) {
        if (!(c->upstreams[i].state = state_new(&c->upstreams[i], old))) {
            upstate_detach(c);
            return -1;
        }
    }
    return 0;
}

void upstate_detach(struct config *c)
{
    for (size_t i = 0; i < c->nupstreams; i++) {
        state_free(c->upstreams[i].state);
        c->upstreams[i].state = NULL;
    }
}

/* ---- retry budget -------------------------------------------------------------------------- */

/* Move the budget's windows on to `now`. Windows are aligned on BUDGET_WINDOW_MS from the
 * first, so the current one began less than a window ago and the previous one is the window
 * just before it: together the last 10 to 20 seconds. When two windows or more went by
 * without a request or a retry, the previous window was empty whatever came before. Called by
 * every first attempt and every retry, so a quiet spell cannot leave an old count standing.
 * A worker whose clock lags the window's start (each loop reads the clock on its own) moves
 * nothing. One compare-and-swap decides which caller moves the window; requests counted by
 * others in that instant may land in either window. */
static void budget_advance(struct upstate *s, uint64_t now)
{
    unsigned long long start = atomic_load(&s->window_start_ms);
    if (now < start + BUDGET_WINDOW_MS)
        return;
    uint64_t passed = (now - start) / BUDGET_WINDOW_MS;
    if (!atomic_compare_exchange_strong(&s->window_start_ms, &start,
                                        start + passed * BUDGET_WINDOW_MS))
        return; /* another worker moved it */
    unsigned requests = atomic_exchange(&s->window_requests, 0);
    unsigned retries = atomic_exchange(&s->window_retries, 0);
    atomic_store(&s->prev_requests, passed == 1 ? requests : 0);
    atomic_store(&s->prev_retries, passed == 1 ? retries : 0);
}

/* ---- picking ------------------------------------------------------------------------------ */

bool upstate_usable(const struct upstate *s, size_t i, uint64_t now_ms)
{
    struct upsrv *v = s->servers[i];
    return atomic_load(&v->health) == UPSRV_UP && atomic_load(&v->ejected_until_ms) <= now_ms;
}

static bool has_room(const struct upstate *s, size_t i)
{
    uint32_t max = s->up->policies[i].max_conns;
    return !max || atomic_load(&s->servers[i]->inflight) < max;
}

static bool was_tried(const struct upstate_req *r, size_t i)
{
    return r->tried && (r->tried[i / 64] >> (i % 64) & 1);
}

/* The weight now, scaled: a server back from down or ejection ramps up over slow_start. */
static int64_t eff_weight(const struct upstate *s, size_t i, uint64_t now)
{
    int64_t w = (int64_t)s->up->policies[i].weight * WEIGHT_SCALE;
    uint64_t since = atomic_load(&s->servers[i]->up_since_ms);
    uint32_t ramp = s->up->slow_start;
    if (ramp && since && now >= since && now - since < ramp) {
        w = w * (int64_t)(now - since) / ramp;
        if (w < WEIGHT_SCALE / 10)
            w = WEIGHT_SCALE / 10; /* a trickle, so it is tried at all */
    }
    return w;
}

/* A draining server still serves the clients whose sticky cookie names it. */
static bool sticky_names(const struct upstate *s, size_t i, const struct upstate_req *r)
{
    return r->sticky && r->sticky_len == UPSRV_STICKY_LEN &&
           memcmp(s->servers[i]->sticky, r->sticky, UPSRV_STICKY_LEN) == 0;
}

struct candidates {
    uint16_t idx[CFG_MAX_SERVERS];
    size_t n;
};

/* Usable, untried servers with room: primaries, or backups when no primary is usable (or
 * every usable one failed this request already). Returns 0, or UPSTATE_NONE_UP /
 * UPSTATE_ALL_FULL. */
static int gather(const struct upstate *s, const struct upstate_req *r, struct candidates *c)
{
    const struct cfg_upstream *u = s->up;
    bool primary_up = false, any_untried = false;
    for (size_t i = 0; i < u->nservers && !primary_up; i++)
        primary_up = !u->policies[i].backup && !u->policies[i].drain &&
                     upstate_usable(s, i, r->now_ms) && !was_tried(r, i);
    c->n = 0;
    for (size_t i = 0; i < u->nservers; i++) {
        if (u->policies[i].backup == primary_up || !upstate_usable(s, i, r->now_ms) ||
            was_tried(r, i) || (u->policies[i].drain && !sticky_names(s, i, r)))
            continue;
        any_untried = true;
        if (has_room(s, i))
            c->idx[c->n++] = (uint16_t)i;
    }
    if (c->n)
        return 0;
    return any_untried ? UPSTATE_ALL_FULL : UPSTATE_NONE_UP;
}

/* Smooth weighted round robin (as nginx): every pick adds each weight to its server's
 * current value and takes the largest, which then gives back the total. Weights 5/1/1 give
 * a a b a c a a, never a long run of one server. */
static size_t pick_round_robin(struct upstate *s, const struct candidates *c, uint64_t now)
{
    int64_t total = 0;
    size_t best = c->idx[0];
    pthread_mutex_lock(&s->lock);
    for (size_t k = 0; k < c->n; k++) {
        size_t i = c->idx[k];
        int64_t w = eff_weight(s, i, now);
        s->current[i] += w;
        total += w;
        if (k == 0 || s->current[i] > s->current[best])
            best = i;
    }
    s->current[best] -= total;
    pthread_mutex_unlock(&s->lock);
    return best;
}

/* a is less loaded than b: in flight per unit of weight. */
static bool lighter(const struct upstate *s, size_t a, size_t b, uint64_t now)
{
    uint64_t la = atomic_load(&s->servers[a]->inflight) + 1;
    uint64_t lb = atomic_load(&s->servers[b]->inflight) + 1;
    return la * (uint64_t)eff_weight(s, b, now) < lb * (uint64_t)eff_weight(s, a, now);
}

static size_t pick_least(struct upstate *s, const struct candidates *c, uint64_t now)
{
    size_t start = (size_t)(atomic_fetch_add(&s->rr, 1) % c->n); /* ties rotate */
    size_t best = c->idx[start];
    for (size_t k = 1; k < c->n; k++) {
        size_t i = c->idx[(start + k) % c->n];
        if (lighter(s, i, best, now))
            best = i;
    }
    return best;
}

static uint64_t xorshift(uint64_t *x)
{
    uint64_t v = *x ? *x : 0x9e3779b97f4a7c15ull;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    return *x = v;
}

/* Two random candidates, the lighter one: near least-requests quality without scanning, and
 * no herd on the single least loaded server when workers decide at the same moment. */
static size_t pick_two(struct upstate *s, const struct candidates *c, uint64_t *rnd, uint64_t now)
{
    uint64_t seed = 0;
    if (!rnd)
        rnd = &seed, seed = atomic_fetch_add(&s->rr, 1) + 1;
    if (c->n == 1)
        return c->idx[0];
    size_t a = (size_t)(xorshift(rnd) % c->n);
    size_t b = (size_t)(xorshift(rnd) % (c->n - 1));
    b += b >= a;
    return lighter(s, c->idx[b], c->idx[a], now) ? c->idx[b] : c->idx[a];
}

/* The first ring point at or after the key's hash whose server is a candidate. */
static int pick_hash(const struct upstate *s, const struct candidates *c, const char *key,
                     size_t len)
{
    bool ok[CFG_MAX_SERVERS] = {false};
    if (!s->nring)
        return -1;
    for (size_t k = 0; k < c->n; k++)
        ok[c->idx[k]] = true;
    uint64_t h = hash64(key, len);
    size_t lo = 0, hi = s->nring;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ring_hash[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t step = 0; step < s->nring; step++) {
        uint32_t srv = s->ring_server[(lo + step) % s->nring];
        if (ok[srv])
            return (int)srv;
    }
    return -1;
}

/* The candidate the client's sticky cookie names, or -1 (then the policy decides). */
static int pick_sticky(const struct upstate *s, const struct candidates *c, const char *v,
                       size_t len)
{
    if (len != UPSRV_STICKY_LEN)
        return -1;
    for (size_t k = 0; k < c->n; k++)
        if (memcmp(s->servers[c->idx[k]]->sticky, v, len) == 0)
            return c->idx[k];
    return -1;
}

/* Take a slot on server i: a compare-and-swap under max_conns, so workers deciding at the
 * same moment cannot together go past it. */
static bool reserve(struct upstate *s, size_t i)
{
    uint32_t max = s->up->policies[i].max_conns;
    atomic_uint *n = &s->servers[i]->inflight;
    if (!max) {
        atomic_fetch_add(n, 1);
        return true;
    }
    unsigned cur = atomic_load(n);
    while (cur < max)
        if (atomic_compare_exchange_weak(n, &cur, cur + 1))
            return true;
    return false;
}

static int choose(struct upstate *s, const struct upstate_req *r, const struct candidates *c)
{
    int chosen = r->sticky ? pick_sticky(s, c, r->sticky, r->sticky_len) : -1;
    switch (chosen < 0 ? s->up->balance : CFG_BAL_ROUND_ROBIN) {
    case CFG_BAL_HASH:
        if (r->key)
            chosen = pick_hash(s, c, r->key, r->key_len);
        break;
    case CFG_BAL_LEAST_REQUESTS:
        chosen = (int)pick_least(s, c, r->now_ms);
        break;
    case CFG_BAL_POWER_OF_TWO:
        chosen = (int)pick_two(s, c, r->rand, r->now_ms);
        break;
    case CFG_BAL_ROUND_ROBIN:
        break;
    }
    if (chosen < 0) /* round robin, or hash without a key (or only backups left) */
        chosen = (int)pick_round_robin(s, c, r->now_ms);
    return chosen;
}

/* Servers whose ejection is over are back: say so once, at the first pick that sees it. A
 * compare-and-swap decides which worker logs, to the logger the ejection was logged to (a pick
 * has none of its own). One relaxed load per server when nothing was ejected. */
static void note_returns(const struct upstate *s, uint64_t now)
{
    for (size_t i = 0; i < s->up->nservers; i++) {
        struct upsrv *v = s->servers[i];
        bool unlogged = true;
        if (!atomic_load_explicit(&v->return_unlogged, memory_order_relaxed) ||
            atomic_load(&v->ejected_until_ms) > now ||
            !atomic_compare_exchange_strong(&v->return_unlogged, &unlogged, false))
            continue;
        struct logger *log = atomic_load(&v->eject_log);
        if (log)
            log_msg(log, LOG_INFO, "upstream %s: server %s is back after ejection", s->up->name,
                    s->up->servers[i].text);
    }
}

int upstate_pick(struct upstate *s, const struct upstate_req *r)
{
    note_returns(s, r->now_ms);
    uint64_t skip[CFG_MAX_SERVERS / 64] = {0};
    struct upstate_req mine = *r;
    if (r->tried)
        memcpy(skip, r->tried, sizeof skip);
    mine.tried = skip;
    bool raced = false;
    for (;;) {
        struct candidates c;
        int rc = gather(s, &mine, &c);
        if (rc < 0)
            return raced ? UPSTATE_ALL_FULL : rc; /* lost every race for a slot: full */
        int chosen = choose(s, &mine, &c);
        if (!reserve(s, (size_t)chosen)) {
            skip[chosen / 64] |= (uint64_t)1 << (chosen % 64); /* filled meanwhile */
            raced = true;
            continue;
        }
        atomic_fetch_add(&s->servers[chosen]->requests, 1);
        if (!r->tried || !(r->tried[0] | r->tried[1] | r->tried[2] | r->tried[3])) {
            budget_advance(s, r->now_ms);
            atomic_fetch_add(&s->window_requests, 1);
        }
        return chosen;
    }
}

/* ---- outcomes ----------------------------------------------------------------------------- */

/* Servers that could take new clients if `skip` were gone: a draining one cannot. */
static size_t usable_besides(const struct upstate *s, size_t skip, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < s->up->nservers; i++)
        n += i != skip && !s->up->policies[i].drain && upstate_usable(s, i, now);
    return n;
}

/* Ejected for eject, 2x, 4x, ... up to 10x: a server that keeps failing as soon as it is back
 * stays out longer. Never the last usable server (a degraded one beats none), and never a
 * backup: it is what is left. */
static void maybe_eject(struct upstate *s, size_t i, uint64_t now, struct logger *log)
{
    const struct cfg_passive_health *ph = &s->up->passive_health;
    struct upsrv *v = s->servers[i];
    if (!ph->failures || atomic_load(&v->consecutive_failures) < ph->failures)
        return;
    pthread_mutex_lock(&s->lock); /* two workers must not eject the last two at once */
    bool eject = atomic_load(&v->ejected_until_ms) <= now && !s->up->policies[i].backup &&
                 usable_besides(s, i, now) > 0;
    uint64_t dur = 0;
    if (eject) {
        unsigned n = atomic_fetch_add(&v->ejections, 1);
        dur = (uint64_t)ph->eject << (n < 4 ? n : 4);
        if (dur > (uint64_t)ph->eject * MAX_EJECT_FACTOR)
            dur = (uint64_t)ph->eject * MAX_EJECT_FACTOR;
        atomic_store(&v->ejected_until_ms, now + dur);
        atomic_store(&v->up_since_ms, now + dur);
        atomic_store(&v->consecutive_failures, 0);
        atomic_store(&v->eject_log, log);
        atomic_store(&v->return_unlogged, true);
    }
    pthread_mutex_unlock(&s->lock);
    if (eject && log)
        log_msg(log, LOG_WARN, "upstream %s: server %s ejected for %llu ms after %u failures (%s)",
                s->up->name, s->up->servers[i].text, (unsigned long long)dur, ph->failures,
                v->last_error);
}

/* Count a failure in the slot of its second; a slot last used a minute or more ago starts
 * again at 1. */
static void recent_failure(struct upsrv *v, uint64_t now_ms)
{
    uint32_t sec = (uint32_t)(now_ms / 1000);
    atomic_ullong *slot = &v->recent_failures[sec % UPSRV_RECENT_SECONDS];
    unsigned long long cur = atomic_load(slot), next;
    do {
        next = (uint32_t)(cur >> 32) == sec ? cur + 1 : ((unsigned long long)sec << 32 | 1);
    } while (!atomic_compare_exchange_weak(slot, &cur, next));
}

/* The slots of the last UPSRV_RECENT_SECONDS seconds, and those of a second or two ahead: a
 * worker whose loop clock runs ahead of ours may have written them. */
unsigned upstate_recent_failures(const struct upsrv *v, uint64_t now_ms)
{
    uint32_t sec = (uint32_t)(now_ms / 1000);
    unsigned n = 0;
    for (size_t k = 0; k < UPSRV_RECENT_SECONDS; k++) {
        unsigned long long slot = atomic_load(&v->recent_failures[k]);
        int32_t age = (int32_t)(sec - (uint32_t)(slot >> 32));
        if (age > -3 && age < UPSRV_RECENT_SECONDS)
            n += (uint32_t)slot;
    }
    return n;
}

void upstate_done(struct upstate *s, size_t i, enum upstate_result res, const char *why,
                  uint64_t now_ms, struct logger *log)
{
    struct upsrv *v = s->servers[i];
    atomic_fetch_sub(&v->inflight, 1);
    if (res == UPSTATE_NEUTRAL)
        return;
    if (res == UPSTATE_OK) {
        atomic_store(&v->consecutive_failures, 0);
        uint64_t until = atomic_load(&v->ejected_until_ms);
        if (until && now_ms > until + (uint64_t)s->up->passive_health.eject * MAX_EJECT_FACTOR)
            atomic_store(&v->ejections, 0); /* well for long enough: forgive */
        return;
    }
    atomic_fetch_add(&v->failures, 1);
    recent_failure(v, now_ms);
    snprintf(v->last_error, sizeof v->last_error, "%s", why ? why : "failed");
    atomic_fetch_add(&v->consecutive_failures, 1);
    maybe_eject(s, i, now_ms, log);
}

bool upstate_check_done(struct upstate *s, size_t i, bool ok, uint64_t now_ms, unsigned *in_a_row)
{
    const struct cfg_health_check *hc = &s->up->health_check;
    struct upsrv *v = s->servers[i];
    atomic_uint *mine = ok ? &v->check_ok : &v->check_fail;
    unsigned n = atomic_fetch_add(mine, 1) + 1;

    atomic_store(ok ? &v->check_fail : &v->check_ok, 0);
    *in_a_row = n;
    if (atomic_load(&v->health) != (ok ? UPSRV_DOWN : UPSRV_UP) || n < (ok ? hc->rise : hc->fall))
        return false;
    if (ok)
        atomic_store(&v->up_since_ms, now_ms); /* slow start counts from here */
    atomic_store(&v->health, ok ? UPSRV_UP : UPSRV_DOWN);
    return true;
}

bool upstate_retry_allowed(struct upstate *s, uint64_t now_ms)
{
    budget_advance(s, now_ms);
    uint64_t recent = atomic_load(&s->prev_requests) + atomic_load(&s->window_requests);
    uint64_t allowed = recent * s->up->retry_budget / 100;
    uint64_t before = atomic_load(&s->prev_retries);
    /* Retries count over the same two windows as requests, or a long outage would retry
     * twice the budget; the floor is per window, so a quiet upstream retries every window. */
    unsigned n = atomic_fetch_add(&s->window_retries, 1);
    if (n < BUDGET_MIN_RETRIES || before + n < allowed)
        return true;
    atomic_fetch_sub(&s->window_retries, 1);
    return false;
}

bool upstate_queue_enter(struct upstate *s)
{
    if (atomic_fetch_add(&s->queued, 1) >= s->up->queue_size) {
        atomic_fetch_sub(&s->queued, 1);
        return false;
    }
    return true;
}

void upstate_queue_leave(struct upstate *s)
{
    atomic_fetch_sub(&s->queued, 1);
}
