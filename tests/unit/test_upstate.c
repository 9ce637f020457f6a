/* Server choice (proxy/upstate.c): weights and smoothness of round robin, least requests,
 * power of two choices, consistent hashing and its disruption when a server is added, backups,
 * max_conns, passive ejection (never the last server) and the retry budget. */
#include "check.h"
#include "config/config.h"
#include "core/log.h"
#include "proxy/upstate.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static struct config *load(const char *upstream_yaml)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "listen: [ { address: \"127.0.0.1:0\" } ]\n"
             "upstreams:\n  app:\n%s"
             "sites: [ { hosts: [\"*\"], routes: [ { path: /, proxy: app } ] } ]\n",
             upstream_yaml);
    struct config *c = NULL;
    if (config_load_string("test.yaml", yaml, strlen(yaml), &c, stderr) != 0 || !c)
        return NULL;
    if (upstate_attach(c, NULL) < 0) {
        config_unref(c);
        return NULL;
    }
    return c;
}

static int pick(struct upstate *s, uint64_t now)
{
    static uint64_t rnd = 42;
    struct upstate_req r = {.rand = &rnd, .now_ms = now};
    return upstate_pick(s, &r);
}

static int pick_key(struct upstate *s, const char *key)
{
    struct upstate_req r = {.key = key, .key_len = strlen(key), .now_ms = 1000};
    return upstate_pick(s, &r);
}

static void finish(struct upstate *s, int i)
{
    upstate_done(s, (size_t)i, UPSTATE_OK, NULL, 1000, NULL);
}

/* Picks of server `srv` among `n` made at `now`, each finished at once. */
static int share_of(struct upstate *s, int srv, int n, uint64_t now)
{
    int got = 0;
    for (int k = 0; k < n; k++) {
        int i = pick(s, now);
        got += i == srv;
        if (i >= 0)
            upstate_done(s, (size_t)i, UPSTATE_OK, NULL, now, NULL);
    }
    return got;
}

static void fail_on(struct upstate *s, size_t i, uint64_t now, struct logger *log)
{
    atomic_fetch_add(&s->servers[i]->inflight, 1);
    upstate_done(s, i, UPSTATE_FAILED, "reset", now, log);
}

static void test_smooth_weighted_round_robin(void)
{
    struct config *c = load("    servers:\n"
                            "      - { address: \"10.0.0.1:80\", weight: 1 }\n"
                            "      - { address: \"10.0.0.2:80\", weight: 2 }\n"
                            "      - { address: \"10.0.0.3:80\", weight: 3 }\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    int count[3] = {0}, last = -1, run = 0, max_run = 0;
    for (int k = 0; k < 6000; k++) {
        int i = pick(s, 1000);
        CHECK(i >= 0 && i < 3);
        if (i < 0)
            break;
        count[i]++;
        run = i == last ? run + 1 : 1;
        max_run = run > max_run ? run : max_run;
        last = i;
        finish(s, i);
    }
    CHECK_EQ_INT(count[0], 1000);
    CHECK_EQ_INT(count[1], 2000);
    CHECK_EQ_INT(count[2], 3000);
    CHECK(max_run <= 2); /* never three in a row */
    config_unref(c);
}

static void test_least_requests_prefers_idle(void)
{
    struct config *c = load("    balance: least_requests\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    int a = pick(s, 1000), b = pick(s, 1000), d = pick(s, 1000);
    CHECK(a != b && b != d && a != d); /* each busy one is avoided */
    finish(s, b);
    CHECK_EQ_INT(pick(s, 1000), b); /* the only idle one */
    config_unref(c);
}

static void test_power_of_two_spreads_and_avoids_loaded(void)
{
    struct config *c = load("    balance: power_of_two\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    int first = pick(s, 1000);
    for (int k = 0; k < 20; k++) { /* with two servers both are always compared */
        int i = pick(s, 1000);
        CHECK(i != first);
        finish(s, i);
    }
    config_unref(c);
}

/* Four idle servers: two random candidates, ties to the first, is a uniform choice. A loaded
 * server loses every comparison it is part of, and it is always compared with another. */
static void test_power_of_two_with_four_servers(void)
{
    struct config *c = load("    balance: power_of_two\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\","
                            " \"10.0.0.4:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    int n = 20000;
    for (int srv = 0; srv < 4; srv++)
        CHECK_EQ_INT(atomic_load(&s->servers[srv]->requests), 0);
    for (int k = 0; k < n; k++)
        finish(s, pick(s, 1000));
    for (int srv = 0; srv < 4; srv++) {
        long got = (long)atomic_load(&s->servers[srv]->requests);
        CHECK(got > n / 4 - n / 20 && got < n / 4 + n / 20); /* 25% +- 5 */
    }
    atomic_store(&s->servers[2]->inflight, 3); /* three slow requests on it */
    int share[4] = {0};
    for (int k = 0; k < 3000; k++) {
        int i = pick(s, 1000);
        if (i >= 0 && i < 4)
            share[i]++;
        finish(s, i);
    }
    CHECK_EQ_INT(share[2], 0);
    for (int srv = 0; srv < 4; srv++)
        CHECK(srv == 2 || (share[srv] > 800 && share[srv] < 1200));
    config_unref(c);
}

/* A key whose server goes down moves to another; no other key moves; all come back with it. */
static void test_consistent_hash_down_moves_only_its_keys(void)
{
    struct config *c = load("    balance: hash\n    hash_key: header X-Tenant\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\","
                            " \"10.0.0.4:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    enum { KEYS = 4000 };
    static int before[KEYS];
    int owned = 0, moved = 0, wrong = 0, back = 0;
    char key[32];
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "tenant-%d", k);
        before[k] = pick_key(s, key);
        finish(s, before[k]);
        owned += before[k] == 1;
    }
    CHECK(owned > KEYS / 4 - KEYS / 10 && owned < KEYS / 4 + KEYS / 10);
    atomic_store(&s->servers[1]->health, UPSRV_DOWN);
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "tenant-%d", k);
        int i = pick_key(s, key);
        finish(s, i);
        moved += i != before[k];
        wrong += i == 1 || (before[k] != 1 && i != before[k]);
    }
    CHECK_EQ_INT(moved, owned); /* exactly its keys */
    CHECK_EQ_INT(wrong, 0);
    atomic_store(&s->servers[1]->health, UPSRV_UP);
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "tenant-%d", k);
        int i = pick_key(s, key);
        finish(s, i);
        back += i == before[k];
    }
    CHECK_EQ_INT(back, KEYS);
    config_unref(c);
}

static void test_consistent_hash_moves_about_one_nth(void)
{
    struct config *c3 = load("    balance: hash\n    hash_key: header X-Tenant\n"
                             "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\n");
    struct config *c4 = load("    balance: hash\n    hash_key: header X-Tenant\n"
                             "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\","
                             " \"10.0.0.4:80\"]\n");
    CHECK(c3 && c4);
    if (!c3 || !c4)
        return;
    int moved = 0, share[4] = {0}, n = 4000;
    for (int k = 0; k < n; k++) {
        char key[32];
        snprintf(key, sizeof key, "tenant-%d", k);
        int a = pick_key(c3->upstreams[0].state, key), b = pick_key(c4->upstreams[0].state, key);
        CHECK_EQ_INT(pick_key(c3->upstreams[0].state, key), a); /* stable */
        if (a < 0 || b < 0)
            continue;
        share[b]++;
        if (a != b) {
            moved++;
            CHECK_EQ_INT(b, 3); /* keys only move to the new server */
        }
    }
    CHECK(moved > n / 4 - n / 10 && moved < n / 4 + n / 10); /* about 1/4 */
    for (int i = 0; i < 4; i++)
        CHECK(share[i] > n / 4 - n / 10 && share[i] < n / 4 + n / 10);
    config_unref(c3);
    config_unref(c4);
}

static void test_backup_only_when_primaries_down(void)
{
    struct config *c = load("    passive_health: { failures: 1, eject: 10s }\n"
                            "    servers:\n"
                            "      - \"10.0.0.1:80\"\n"
                            "      - \"10.0.0.2:80\"\n"
                            "      - { address: \"10.0.0.9:80\", backup: true }\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    for (int k = 0; k < 10; k++) {
        int i = pick(s, 1000);
        CHECK(i == 0 || i == 1);
        finish(s, i);
    }
    /* A request that failed on both primaries goes to the backup. */
    uint64_t tried[4] = {3};
    struct upstate_req r = {.tried = tried, .now_ms = 1000};
    CHECK_EQ_INT(upstate_pick(s, &r), 2);
    finish(s, 2);
    atomic_store(&s->servers[0]->health, UPSRV_DOWN);
    atomic_store(&s->servers[1]->health, UPSRV_DOWN);
    CHECK_EQ_INT(pick(s, 1000), 2);
    finish(s, 2);
    atomic_store(&s->servers[2]->health, UPSRV_DOWN);
    CHECK_EQ_INT(pick(s, 1000), UPSTATE_NONE_UP);
    config_unref(c);
}

static void test_max_conns_and_tried(void)
{
    struct config *c = load("    servers:\n"
                            "      - { address: \"10.0.0.1:80\", max_conns: 1 }\n"
                            "      - { address: \"10.0.0.2:80\", max_conns: 1 }\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    int a = pick(s, 1000), b = pick(s, 1000);
    CHECK(a >= 0 && b >= 0 && a != b);
    CHECK_EQ_INT(pick(s, 1000), UPSTATE_ALL_FULL);
    finish(s, a);
    uint64_t tried[4] = {(uint64_t)1 << a};
    struct upstate_req r = {.tried = tried, .now_ms = 1000};
    CHECK_EQ_INT(upstate_pick(s, &r), UPSTATE_ALL_FULL); /* the free one was tried already */
    CHECK_EQ_INT(pick(s, 1000), a);
    config_unref(c);
}

static void test_ejection_never_takes_the_last(void)
{
    struct config *c = load("    passive_health: { failures: 2, eject: 1s }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    for (int k = 0; k < 2; k++) {
        atomic_fetch_add(&s->servers[0]->inflight, 1);
        upstate_done(s, 0, UPSTATE_FAILED, "connect failed", 1000, NULL);
    }
    CHECK(!upstate_usable(s, 0, 1000));
    CHECK(upstate_usable(s, 0, 2001)); /* back after 1 s */
    for (int k = 0; k < 4; k++) {
        atomic_fetch_add(&s->servers[1]->inflight, 1);
        upstate_done(s, 1, UPSTATE_FAILED, "reset", 1500, NULL);
    }
    CHECK(upstate_usable(s, 1, 1500)); /* the other one is out: this one stays */
    /* The second ejection of server 0 lasts twice as long. */
    for (int k = 0; k < 2; k++) {
        atomic_fetch_add(&s->servers[0]->inflight, 1);
        upstate_done(s, 0, UPSTATE_FAILED, "connect failed", 3000, NULL);
    }
    CHECK(!upstate_usable(s, 0, 4500));
    CHECK(upstate_usable(s, 0, 5001));
    config_unref(c);
}

/* A logger writing into a pipe, and what it wrote since the last call. */
struct pipe_log {
    struct logger lg;
    int rd;
    char text[8192];
};

static bool pipe_log_open(struct pipe_log *p)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK) < 0)
        return false;
    memset(p, 0, sizeof *p);
    atomic_init(&p->lg.err_fd, fds[1]);
    atomic_init(&p->lg.level, LOG_INFO);
    atomic_init(&p->lg.access_fd, -1);
    p->rd = fds[0];
    return true;
}

static const char *pipe_log_read(struct pipe_log *p)
{
    ssize_t n = read(p->rd, p->text, sizeof p->text - 1);
    p->text[n > 0 ? n : 0] = '\0';
    return p->text;
}

static void pipe_log_close(struct pipe_log *p)
{
    close(p->rd);
    close(atomic_load(&p->lg.err_fd));
}

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *t = text; (t = strstr(t, what)); t += strlen(what))
        n++;
    return n;
}

/* One failure ejects (failures: 1) server 0 at `now`; how long until it is usable again. */
static uint64_t eject_length(struct upstate *s, uint64_t now)
{
    fail_on(s, 0, now, NULL);
    uint64_t until = atomic_load(&s->servers[0]->ejected_until_ms);
    CHECK(!upstate_usable(s, 0, until - 1));
    CHECK(upstate_usable(s, 0, until));
    return until - now;
}

/* Each ejection lasts twice the one before, up to 10 x eject; serving well for 10 x eject after
 * the last one starts again from eject, serving well for less does not. */
static void test_ejection_grows_is_capped_and_forgiven(void)
{
    struct config *c = load("    passive_health: { failures: 1, eject: 1s }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    static const uint64_t want[] = {1000, 2000, 4000, 8000, 10000, 10000, 10000};
    uint64_t now = 100000;
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        uint64_t got = eject_length(s, now);
        CHECK_EQ_INT(got, want[k]);
        now += got; /* fails again as soon as it is back */
    }
    /* A success 9 s after the last ejection ended is not enough to forgive. */
    atomic_fetch_add(&s->servers[0]->inflight, 1);
    upstate_done(s, 0, UPSTATE_OK, NULL, now + 9000, NULL);
    now += 9000;
    uint64_t got = eject_length(s, now);
    CHECK_EQ_INT(got, 10000);
    now += got;
    /* Serving well for more than 10 x eject after it: the next one is short again. */
    atomic_fetch_add(&s->servers[0]->inflight, 1);
    upstate_done(s, 0, UPSTATE_OK, NULL, now + 10001, NULL);
    CHECK_EQ_INT(atomic_load(&s->servers[0]->ejections), 0);
    CHECK_EQ_INT(eject_length(s, now + 10001), 1000);
    config_unref(c);
}

/* Whatever fails, one usable server stays: the last primary when there is no backup. With a
 * backup, every primary may go, as the backup is there to take over; it is never ejected. */
static void test_ejection_spares_the_last_and_backups(void)
{
    struct config *c = load("    passive_health: { failures: 1, eject: 1s }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\n");
    struct config *b = load("    passive_health: { failures: 1, eject: 1s }\n"
                            "    servers:\n"
                            "      - \"10.0.0.1:80\"\n"
                            "      - \"10.0.0.2:80\"\n"
                            "      - { address: \"10.0.0.9:80\", backup: true }\n");
    CHECK(c && b);
    if (!c || !b)
        return;
    struct upstate *s = c->upstreams[0].state, *sb = b->upstreams[0].state;
    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < 3; i++) {
            fail_on(s, i, 1000, NULL);
            fail_on(sb, i, 1000, NULL);
        }
    }
    int usable = 0;
    for (size_t i = 0; i < 3; i++)
        usable += upstate_usable(s, i, 1000);
    CHECK_EQ_INT(usable, 1);
    int i = pick(s, 1000);
    CHECK(i >= 0 && i < 3 && upstate_usable(s, (size_t)i, 1000));
    finish(s, i);

    CHECK(!upstate_usable(sb, 0, 1000) && !upstate_usable(sb, 1, 1000));
    CHECK(upstate_usable(sb, 2, 1000));
    CHECK_EQ_INT(atomic_load(&sb->servers[2]->ejections), 0);
    CHECK_EQ_INT(pick(sb, 1000), 2);
    finish(sb, 2);
    config_unref(c);
    config_unref(b);
}

/* The end of an ejection is logged once, by the first pick after it, whichever server that
 * pick takes, to the logger the ejection went to. */
static void test_return_from_ejection_is_logged_once(void)
{
    struct config *c = load("    passive_health: { failures: 2, eject: 1s }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    struct pipe_log pl;
    CHECK(c != NULL);
    if (!c || !pipe_log_open(&pl))
        return;
    struct upstate *s = c->upstreams[0].state;
    fail_on(s, 0, 1000, &pl.lg);
    fail_on(s, 0, 1000, &pl.lg);
    CHECK(strstr(pipe_log_read(&pl), "upstream app: server 10.0.0.1:80 ejected for 1000 ms") !=
          NULL);
    CHECK_EQ_INT(share_of(s, 0, 10, 1999), 0);
    CHECK_EQ_INT(count_of(pipe_log_read(&pl), "back"), 0);
    uint64_t tried[4] = {1}; /* a retry that cannot take server 0: still announced */
    struct upstate_req r = {.tried = tried, .now_ms = 2000};
    CHECK_EQ_INT(upstate_pick(s, &r), 1);
    finish(s, 1);
    const char *text = pipe_log_read(&pl);
    CHECK(strstr(text, "[info] upstream app: server 10.0.0.1:80 is back after ejection\n") != NULL);
    CHECK_EQ_INT(count_of(text, "\n"), 1);
    CHECK(share_of(s, 0, 10, 2000) > 0);
    CHECK_EQ_INT(count_of(pipe_log_read(&pl), "back"), 0); /* once */
    /* The second ejection is announced again when it ends, 2 s later. */
    fail_on(s, 0, 3000, &pl.lg);
    fail_on(s, 0, 3000, &pl.lg);
    CHECK(strstr(pipe_log_read(&pl), "ejected for 2000 ms") != NULL);
    CHECK_EQ_INT(share_of(s, 0, 10, 4999), 0);
    CHECK_EQ_INT(count_of(pipe_log_read(&pl), "back"), 0);
    share_of(s, 0, 10, 5000);
    CHECK_EQ_INT(count_of(pipe_log_read(&pl), "is back after ejection"), 1);
    pipe_log_close(&pl);
    config_unref(c);
}

/* Recent failures are those of the last minute; the lifetime total stays. */
static void test_recent_failures_cover_the_last_minute(void)
{
    struct config *c = load("    passive_health: { failures: 0 }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    struct upsrv *v = s->servers[0];
    CHECK_EQ_INT(upstate_recent_failures(v, 1000000), 0);
    for (int k = 0; k < 3; k++)
        fail_on(s, 0, 1000000, NULL); /* at 1000 s */
    for (int k = 0; k < 2; k++)
        fail_on(s, 0, 1030500, NULL); /* at 1030.5 s */
    atomic_fetch_add(&v->inflight, 1);
    upstate_done(s, 0, UPSTATE_OK, NULL, 1030500, NULL); /* successes do not count */
    CHECK_EQ_INT(upstate_recent_failures(v, 1000000), 3);
    CHECK_EQ_INT(upstate_recent_failures(v, 1030999), 5);
    CHECK_EQ_INT(upstate_recent_failures(v, 1059999), 5);
    CHECK_EQ_INT(upstate_recent_failures(v, 1060000), 2); /* the first three are a minute old */
    CHECK_EQ_INT(upstate_recent_failures(v, 1029000), 5); /* a reader a second behind */
    CHECK_EQ_INT(upstate_recent_failures(v, 1090000), 0);
    CHECK_EQ_INT(upstate_recent_failures(s->servers[1], 1030500), 0);
    /* A slot reused a minute later starts again. */
    fail_on(s, 0, 1060000, NULL);
    CHECK_EQ_INT(upstate_recent_failures(v, 1060000), 3);
    CHECK_EQ_INT(atomic_load(&v->failures), 6);
    config_unref(c);
}

static void test_retry_budget(void)
{
    struct config *c = load("    retry_budget: 10%\n    servers: [\"10.0.0.1:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    int allowed = 0;
    for (int k = 0; k < 100; k++)
        allowed += upstate_retry_allowed(s, 20000);
    CHECK_EQ_INT(allowed, 10); /* the floor for a quiet upstream */
    for (int k = 0; k < 500; k++)
        finish(s, pick(s, 20000));
    allowed = 0;
    for (int k = 0; k < 100; k++)
        allowed += upstate_retry_allowed(s, 20000);
    CHECK_EQ_INT(allowed, 40); /* 10% of 500, minus the 10 already used */
    config_unref(c);
}

static int retries_allowed(struct upstate *s, uint64_t now, int tries)
{
    int allowed = 0;
    for (int k = 0; k < tries; k++)
        allowed += upstate_retry_allowed(s, now);
    return allowed;
}

/* The budget counts the last 10 to 20 seconds only, however long ago the last retry was: an
 * hour of healthy traffic must not pay for a burst of retries when an outage begins. */
static void test_retry_budget_forgets_a_quiet_spell(void)
{
    struct config *c = load("    retry_budget: 20%\n    servers: [\"10.0.0.1:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    for (int k = 0; k < 100000; k++)
        finish(s, pick(s, 0));
    CHECK_EQ_INT(retries_allowed(s, 3600000, 1000), 10); /* an hour later: the floor only */

    /* The window in progress and the one before it count, one further back does not; the
     * retries of both windows count against the budget, the floor is per window. */
    for (int k = 0; k < 1000; k++)
        finish(s, pick(s, 4000000));
    CHECK_EQ_INT(retries_allowed(s, 4009999, 1000), 200);
    for (int k = 0; k < 500; k++)
        finish(s, pick(s, 4010000)); /* a new window: the 1000 are the previous one */
    CHECK_EQ_INT(retries_allowed(s, 4010000, 1000), 100); /* 20% of 1500, less 200 */
    for (int k = 0; k < 1000; k++)
        finish(s, pick(s, 4020000)); /* the first 1000 are two windows back now */
    CHECK_EQ_INT(retries_allowed(s, 4020000, 1000), 200); /* 20% of 1500, less 100 */
    CHECK_EQ_INT(retries_allowed(s, 4030000, 1000), 10);  /* a retry alone moves it too */
    /* A worker whose clock lags behind the window's start changes nothing. */
    CHECK_EQ_INT(retries_allowed(s, 4029000, 1000), 0);
    config_unref(c);
}

/* A hash ring with no primaries (every server a backup) is empty: the config refuses such an
 * upstream, so the test flips the policies after loading. It attaches (an empty ring used to
 * be malloc(0), which may return NULL and read as out of memory) and a keyed pick falls back
 * to round robin over the backups. */
static void test_hash_ring_without_primaries(void)
{
    char yaml[] = "listen: [ { address: \"127.0.0.1:0\" } ]\n"
                  "upstreams: { app: { balance: hash, hash_key: path,\n"
                  "    servers: [\"10.0.0.1:80\", {address: \"10.0.0.2:80\", backup: true}] } }\n"
                  "sites: [ { hosts: [\"*\"], routes: [ { path: /, proxy: app } ] } ]\n";
    struct config *c = NULL;
    CHECK(config_load_string("h.yaml", yaml, strlen(yaml), &c, stderr) == 0);
    if (!c)
        return;
    c->upstreams[0].policies[0].backup = true;
    CHECK(upstate_attach(c, NULL) == 0);
    struct upstate *s = c->upstreams[0].state;
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(s->nring, 0);
        int seen[2] = {0, 0};
        for (int k = 0; k < 4; k++) {
            int i = pick_key(s, k % 2 ? "/a" : "/b");
            CHECK(i == 0 || i == 1);
            if (i == 0 || i == 1) {
                seen[i]++;
                finish(s, i);
            }
        }
        CHECK(seen[0] == 2 && seen[1] == 2);
    }
    config_unref(c);
}

static void test_state_carries_over_a_reload(void)
{
    struct config *a = load("    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(a != NULL);
    if (!a)
        return;
    atomic_store(&a->upstreams[0].state->servers[1]->health, UPSRV_DOWN);
    char yaml[] = "listen: [ { address: \"127.0.0.1:0\" } ]\n"
                  "upstreams: { app: { servers: [\"10.0.0.2:80\", \"10.0.0.3:80\"] } }\n"
                  "sites: [ { hosts: [\"*\"], routes: [ { path: /, proxy: app } ] } ]\n";
    struct config *b = NULL;
    CHECK(config_load_string("b.yaml", yaml, strlen(yaml), &b, stderr) == 0);
    if (!b) {
        config_unref(a);
        return;
    }
    CHECK(upstate_attach(b, a) == 0);
    CHECK_EQ_INT(atomic_load(&b->upstreams[0].state->servers[0]->health), UPSRV_DOWN);
    CHECK_EQ_INT(atomic_load(&b->upstreams[0].state->servers[1]->health), UPSRV_UP);
    config_unref(a);
    CHECK_EQ_INT(pick(b->upstreams[0].state, 1000), 1); /* still known down after a's end */
    config_unref(b);
}

static void test_slow_start_ramps_a_returning_server(void)
{
    struct config *c = load("    slow_start: 10s\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    atomic_store(&s->servers[1]->up_since_ms, 100000); /* back at t = 100 s */
    int early = 0, late = 0;
    for (int k = 0; k < 1100; k++) {
        int i = pick(s, 101000); /* 1 s into the ramp: a tenth of its weight */
        early += i == 1;
        finish(s, i);
    }
    for (int k = 0; k < 1000; k++) {
        int i = pick(s, 120000); /* ramp over */
        late += i == 1;
        finish(s, i);
    }
    CHECK(early >= 90 && early <= 110);
    CHECK_EQ_INT(late, 500);
    config_unref(c);
}

/* Slow start through the real transitions, not a hand-set start: the end of a passive
 * ejection starts it. Weights 1 and 1; 1 s into a 10 s ramp the returning server has a tenth
 * of its weight (1/11 of the picks), at 5 s half (1/3), after 10 s all of it. */
static void test_slow_start_after_ejection(void)
{
    struct config *c = load("    slow_start: 10s\n"
                            "    passive_health: { failures: 2, eject: 5s }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    fail_on(s, 1, 100000, NULL);
    fail_on(s, 1, 100000, NULL); /* ejected until 105 s */
    CHECK_EQ_INT(share_of(s, 1, 100, 104999), 0);
    int early = share_of(s, 1, 1100, 106000);
    CHECK(early >= 90 && early <= 110);
    int mid = share_of(s, 1, 1500, 110000);
    CHECK(mid >= 480 && mid <= 520);
    CHECK_EQ_INT(share_of(s, 1, 1000, 115000), 500);
    config_unref(c);
}

/* The same after active checks took the server down and brought it back: the ramp starts at
 * the check that made it up, not at the first of the `rise` successes. */
static void test_slow_start_after_health_checks(void)
{
    struct config *c = load("    slow_start: 10s\n"
                            "    health_check: { path: /health, interval: 1s, rise: 2, fall: 2 }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    unsigned n = 0;
    CHECK(!upstate_check_done(s, 1, false, 50000, &n));
    CHECK_EQ_INT(n, 1);
    CHECK(upstate_check_done(s, 1, false, 51000, &n)); /* fall: 2 */
    CHECK_EQ_INT(atomic_load(&s->servers[1]->health), UPSRV_DOWN);
    CHECK(!upstate_check_done(s, 1, false, 52000, &n)); /* already down: no transition */
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(share_of(s, 1, 100, 53000), 0);
    CHECK(!upstate_check_done(s, 1, true, 60000, &n));
    CHECK_EQ_INT(atomic_load(&s->servers[1]->check_fail), 0);
    CHECK(upstate_check_done(s, 1, true, 61000, &n)); /* rise: 2 */
    CHECK_EQ_INT(n, 2);
    CHECK(!upstate_check_done(s, 1, true, 62000, &n));
    int early = share_of(s, 1, 1100, 62000);
    CHECK(early >= 90 && early <= 110);
    int mid = share_of(s, 1, 1500, 66000);
    CHECK(mid >= 480 && mid <= 520);
    CHECK_EQ_INT(share_of(s, 1, 1000, 71000), 500);
    config_unref(c);
}

static void test_sticky_token_is_random_and_honoured(void)
{
    struct config *c = load("    sticky: { cookie: srv }\n"
                            "    servers: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    const char *t1 = s->servers[1]->sticky;
    CHECK_EQ_INT(strlen(t1), UPSRV_STICKY_LEN);
    CHECK(strcmp(t1, s->servers[0]->sticky) != 0);
    CHECK(strstr(t1, "10.0.0") == NULL);
    for (int k = 0; k < 5; k++) {
        struct upstate_req r = {.sticky = t1, .sticky_len = strlen(t1), .now_ms = 1000};
        int i = upstate_pick(s, &r);
        CHECK_EQ_INT(i, 1);
        finish(s, i);
    }
    config_unref(c);
}

static void test_draining_server_does_not_shield_the_last_one(void)
{
    struct config *c = load("    passive_health: { failures: 1, eject: 10s }\n"
                            "    servers:\n"
                            "      - \"10.0.0.1:80\"\n"
                            "      - { address: \"10.0.0.2:80\", drain: true }\n");
    CHECK(c != NULL);
    if (!c)
        return;
    struct upstate *s = c->upstreams[0].state;
    atomic_fetch_add(&s->servers[0]->inflight, 1);
    upstate_done(s, 0, UPSTATE_FAILED, "reset", 1000, NULL);
    CHECK(upstate_usable(s, 0, 1000)); /* the draining one takes no new clients */
    CHECK_EQ_INT(pick(s, 1000), 0);
    config_unref(c);
}

static void test_capped_hash_ring_keeps_every_server(void)
{
    char yaml[2048] = "    balance: hash\n    servers:\n";
    for (int i = 1; i <= 8; i++) {
        char line[96];
        snprintf(line, sizeof line, "      - { address: \"10.0.0.%d:80\", weight: 1000 }\n", i);
        strcat(yaml, line);
    }
    struct config *c = load(yaml);
    CHECK(c != NULL);
    if (!c)
        return;
    int share[8] = {0};
    for (int k = 0; k < 8000; k++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", k);
        int i = pick_key(c->upstreams[0].state, key);
        if (i >= 0 && i < 8) {
            share[i]++;
            finish(c->upstreams[0].state, i);
        }
    }
    for (int i = 0; i < 8; i++)
        CHECK(share[i] > 700 && share[i] < 1300);
    config_unref(c);
}

int main(void)
{
    test_draining_server_does_not_shield_the_last_one();
    test_capped_hash_ring_keeps_every_server();
    test_slow_start_ramps_a_returning_server();
    test_slow_start_after_ejection();
    test_slow_start_after_health_checks();
    test_sticky_token_is_random_and_honoured();
    test_smooth_weighted_round_robin();
    test_least_requests_prefers_idle();
    test_power_of_two_spreads_and_avoids_loaded();
    test_power_of_two_with_four_servers();
    test_consistent_hash_moves_about_one_nth();
    test_consistent_hash_down_moves_only_its_keys();
    test_backup_only_when_primaries_down();
    test_hash_ring_without_primaries();
    test_max_conns_and_tried();
    test_ejection_never_takes_the_last();
    test_ejection_grows_is_capped_and_forgiven();
    test_ejection_spares_the_last_and_backups();
    test_return_from_ejection_is_logged_once();
    test_retry_budget();
    test_recent_failures_cover_the_last_minute();
    test_retry_budget_forgets_a_quiet_spell();
    test_state_carries_over_a_reload();
    return check_done("upstate");
}
