/* Looking up the host names of upstream servers again, and rebuilding the snapshot from its own
 * text when their addresses changed. */
#include "config/resolve.h"
#include "config/config_values.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t entry_port(const struct resolve_entry *e)
{
    return cfg_addr_port(&e->up->servers[e->name->first].sa);
}

/* A copy of n addresses with the port replaced; NULL when out of memory. */
static struct sockaddr_storage *copy_with_port(const struct sockaddr_storage *sa, size_t n,
                                               uint16_t port)
{
    struct sockaddr_storage *out = malloc((n ? n : 1) * sizeof *out);

    for (size_t i = 0; out && i < n; i++) {
        out[i] = sa[i];
        if (out[i].ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&out[i])->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)&out[i])->sin_port = htons(port);
    }
    return out;
}

/* The name's addresses now. A name an earlier entry of the round looked up (another port, or
 * another upstream) is not asked again: one answer per name and round. */
static int fresh_answer(const struct resolve_round *r, const struct resolve_entry *e,
                        struct sockaddr_storage **sa, size_t *n)
{
    for (const struct resolve_entry *p = r->entries; p < e; p++) {
        if (!p->looked_up || strcmp(p->name->name, e->name->name) != 0)
            continue;
        if (p->error)
            return p->error;
        *n = p->n;
        *sa = copy_with_port(p->sa, p->n, entry_port(e));
        return *sa ? 0 : EAI_MEMORY;
    }
    return cfg_lookup_name(r->resolver, e->name->name, entry_port(e), sa, n);
}

static bool same_addrs(const struct sockaddr_storage *sa, size_t n, const struct cfg_addr *servers,
                       size_t nservers)
{
    if (n != nservers)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (cfg_sockaddr_cmp(&sa[i], &servers[i].sa) != 0)
            return false;
    }
    return true;
}

/* Fills e->sa: the new addresses when its lookup found different ones, else the running
 * servers'. A failed lookup is recorded in e->error. 0, or -1 when out of memory. */
static int fill_entry(struct resolve_round *r, struct resolve_entry *e)
{
    const struct cfg_addr *servers = &e->up->servers[e->name->first];
    size_t n = e->name->n;

    if (e->looked_up) {
        struct sockaddr_storage *fresh = NULL;
        size_t nfresh = 0;

        e->error = fresh_answer(r, e, &fresh, &nfresh);
        if (!e->error && !same_addrs(fresh, nfresh, servers, n)) {
            e->sa = fresh;
            e->n = nfresh;
            e->changed = r->changed = true;
            return 0;
        }
        free(fresh);
    }
    if (!(e->sa = malloc((n ? n : 1) * sizeof *e->sa)))
        return -1;
    for (size_t i = 0; i < n; i++)
        e->sa[i] = servers[i].sa;
    e->n = n;
    return 0;
}

int resolve_round_run(struct resolve_round *r, const struct config *c, const bool *due,
                      const struct config_resolver *resolver)
{
    size_t total = 0;

    memset(r, 0, sizeof *r);
    r->resolver = resolver;
    for (size_t i = 0; i < c->nupstreams; i++)
        total += c->upstreams[i].nnames;
    if (!total)
        return 0;
    if (!(r->entries = calloc(total, sizeof *r->entries)))
        return -1;
    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct cfg_upstream *u = &c->upstreams[i];
        for (size_t j = 0; j < u->nnames; j++) {
            struct resolve_entry *e = &r->entries[r->n++];
            e->up = u;
            e->name = &u->names[j];
            e->looked_up = due[i];
            if (fill_entry(r, e) < 0) {
                resolve_round_free(r);
                return -1;
            }
        }
    }
    return 0;
}

int resolve_round_build(const struct resolve_round *r, const struct config *c, struct config **out,
                        FILE *errs)
{
    const struct config_load_opts opts = {.resolver = r->resolver, .answers = r, .apps = c->apps};

    return config_load_string_with(c->path, c->source, c->source_len, &opts, out, errs);
}

void resolve_round_free(struct resolve_round *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->entries[i].sa);
    free(r->entries);
    memset(r, 0, sizeof *r);
}

bool cfg_pinned_answer(const struct resolve_round *r, const char *upstream, const char *name,
                       uint16_t port, struct sockaddr_storage **sa, size_t *n)
{
    if (!r || !upstream)
        return false;
    for (size_t i = 0; i < r->n; i++) {
        const struct resolve_entry *e = &r->entries[i];
        if (strcmp(e->up->name, upstream) == 0 && strcmp(e->name->name, name) == 0 &&
            entry_port(e) == port) {
            *sa = copy_with_port(e->sa, e->n, port);
            *n = *sa ? e->n : 0;
            return true;
        }
    }
    return false;
}

void resolve_addrs_text(const struct sockaddr_storage *sa, size_t n, char *buf, size_t len)
{
    size_t used = 0;

    if (!len)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char one[INET6_ADDRSTRLEN];
        const void *addr = sa[i].ss_family == AF_INET6
                               ? (const void *)&((const struct sockaddr_in6 *)&sa[i])->sin6_addr
                               : (const void *)&((const struct sockaddr_in *)&sa[i])->sin_addr;
        int w;

        if (!inet_ntop(sa[i].ss_family, addr, one, sizeof one))
            snprintf(one, sizeof one, "?");
        w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", one);
        if (w < 0 || (size_t)w >= len - used) {
            /* Cut at the last whole address and say so, if there is room for that. */
            buf[used] = '\0';
            if (len - used > 5)
                snprintf(buf + used, len - used, "%s...", used ? ", " : "");
            return;
        }
        used += (size_t)w;
    }
}
