/* Looking up the host names of upstream servers again, each upstream at its resolve_interval,
 * and having a snapshot built again from its own text installed when their addresses change. */
#include "config/refresh.h"
#include "config/resolve.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Log each line of a config_load error report at error level. */
static void log_lines(struct logger *lg, char *text)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        log_msg(lg, LOG_ERROR, "%s", line);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void refresh_free(struct refresh *rf)
{
    free(rf->next_ms);
    free(rf->failing);
    rf->next_ms = NULL;
    rf->failing = NULL;
    rf->nups = rf->nnames = 0;
}

static uint64_t next_lookup(const struct cfg_upstream *u, uint64_t now)
{
    return u->nnames && u->resolve_interval ? now + u->resolve_interval : UINT64_MAX;
}

void refresh_reset(struct refresh *rf, const struct config *c)
{
    uint64_t now = now_ms();
    size_t nnames = 0;

    refresh_free(rf);
    for (size_t i = 0; i < c->nupstreams; i++)
        nnames += c->upstreams[i].nnames;
    if (!nnames)
        return;
    rf->next_ms = calloc(c->nupstreams, sizeof(*rf->next_ms));
    rf->failing = calloc(nnames, sizeof(*rf->failing));
    if (!rf->next_ms || !rf->failing) {
        log_msg(rf->log, LOG_ERROR, "out of memory: host names will not be looked up again");
        refresh_free(rf);
        return;
    }
    rf->nups = c->nupstreams;
    rf->nnames = nnames;
    for (size_t i = 0; i < c->nupstreams; i++)
        rf->next_ms[i] = next_lookup(&c->upstreams[i], now);
}

long long refresh_wait(const struct refresh *rf)
{
    uint64_t next = UINT64_MAX, now = now_ms();

    for (size_t i = 0; i < rf->nups; i++)
        next = rf->next_ms[i] < next ? rf->next_ms[i] : next;
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (long long)(next - now);
}

static void servers_text(const struct cfg_upstream *u, const struct cfg_server_name *nm, char *buf,
                         size_t len)
{
    struct sockaddr_storage *sa = malloc((nm->n ? nm->n : 1) * sizeof(*sa));

    if (!sa) {
        snprintf(buf, len, "?");
        return;
    }
    for (size_t i = 0; i < nm->n; i++)
        sa[i] = u->servers[nm->first + i].sa;
    resolve_addrs_text(sa, nm->n, buf, len);
    free(sa);
}

/* A name that stops resolving keeps its servers: said once, and once more when it is back. An
 * upstream naming it with two ports hears it once. */
static void note_failures(struct logger *lg, struct refresh *rf, const struct resolve_round *r)
{
    for (size_t i = 0; i < r->n && i < rf->nnames; i++) {
        const struct resolve_entry *e = &r->entries[i];
        bool said = false;
        char keep[400];

        if (!e->looked_up || !e->error == !rf->failing[i])
            continue;
        rf->failing[i] = e->error != 0;
        for (size_t j = 0; j < i && !said; j++)
            said = r->entries[j].up == e->up && !strcmp(r->entries[j].name->name, e->name->name);
        if (said)
            continue;
        if (!e->error) {
            log_msg(lg, LOG_INFO, "upstream %s: %s resolves again", e->up->name, e->name->name);
            continue;
        }
        servers_text(e->up, e->name, keep, sizeof(keep));
        log_msg(lg, LOG_WARN, "upstream %s: cannot resolve %s (%s); keeping %s", e->up->name,
                e->name->name, gai_strerror(e->error), keep);
    }
}

static void log_changes(struct logger *lg, const struct resolve_round *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct resolve_entry *e = &r->entries[i];
        char now[400], was[400];

        if (!e->changed)
            continue;
        resolve_addrs_text(e->sa, e->n, now, sizeof(now));
        servers_text(e->up, e->name, was, sizeof(was));
        log_msg(lg, LOG_INFO, "upstream %s: %s now resolves to %s (was %s)", e->up->name,
                e->name->written, now, was);
    }
}

/* What install announces: the new addresses, said once they go live. */
struct changes {
    struct logger *lg;
    const struct resolve_round *r;
};

static void announce_changes(void *arg)
{
    const struct changes *ch = arg;

    log_changes(ch->lg, ch->r);
}

/* New addresses: the running snapshot built again from its own text with the round's answers,
 * and swapped in by the owner as a reload would. */
static void rebuild(struct refresh *rf, const struct config *old, const struct resolve_round *r)
{
    char *report = NULL;
    size_t report_len = 0;
    FILE *errs = open_memstream(&report, &report_len);
    struct config *c = NULL;
    int problems = errs ? resolve_round_build(r, old, &c, errs) : -1;
    struct changes ch = {rf->log, r};
    if (errs)
        fclose(errs);
    if (problems != 0) {
        log_msg(rf->log, LOG_ERROR,
                "host names resolve to new addresses, but the configuration could not be built "
                "again; keeping the running one (%d problem%s):",
                problems, problems == 1 ? "" : "s");
        if (report)
            log_lines(rf->log, report);
        free(report);
        return;
    }
    free(report);
    rf->ops->install(rf->owner, old, c, announce_changes, &ch);
}

/* Which upstreams are due now (indexed like c->upstreams), their next time set; NULL when none
 * is. */
static bool *due_now(struct refresh *rf, const struct config *c)
{
    uint64_t now = now_ms();
    bool *due, any = false;

    if (rf->nups != c->nupstreams) /* not the snapshot it was made for: never so, but be sure */
        refresh_reset(rf, c);
    if (!rf->nups)
        return NULL;
    due = calloc(rf->nups, sizeof(*due));
    for (size_t i = 0; i < rf->nups; i++) {
        bool d = rf->next_ms[i] <= now;
        if (d)
            rf->next_ms[i] = next_lookup(&c->upstreams[i], now);
        if (due)
            due[i] = d;
        any |= d;
    }
    if (any && !due)
        log_msg(rf->log, LOG_ERROR, "re-resolving host names: out of memory");
    if (!any || !due) {
        free(due);
        return NULL;
    }
    return due;
}

void refresh_run(struct refresh *rf)
{
    struct config *c = rf->ops->running(rf->owner);
    bool *due = due_now(rf, c);
    struct resolve_round r;

    if (!due) {
        config_unref(c);
        return;
    }
    if (resolve_round_run(&r, c, due, rf->ops->resolver) < 0) {
        log_msg(rf->log, LOG_ERROR, "re-resolving host names: out of memory");
    } else {
        note_failures(rf->log, rf, &r);
        if (r.changed)
            rebuild(rf, c, &r);
        else
            log_msg(rf->log, LOG_DEBUG, "host names looked up again: no new addresses");
        resolve_round_free(&r);
    }
    free(due);
    config_unref(c);
}

void refresh_start(struct refresh *rf, const struct refresh_ops *ops, void *owner,
                   struct logger *lg, const struct config *c)
{
    *rf = (struct refresh){.ops = ops, .owner = owner, .log = lg};
    refresh_reset(rf, c);
}

void refresh_stop(struct refresh *rf)
{
    refresh_free(rf);
}
