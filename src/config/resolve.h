/* Upstream servers written as host names: every address behind a name is a server, and the
 * names of the running configuration are looked up again while it runs.
 *
 * A round (resolve_round_run) looks up the names of the upstreams that are due, on the calling
 * thread (getaddrinfo blocks: the main thread, never a worker), and compares each answer with
 * the servers the running snapshot has for that name. When one differs, resolve_round_build
 * builds a new snapshot from the very text the running one was built from (not the file, which
 * may have been edited without a reload), with every name of every upstream answered by the
 * round: the new addresses for names looked up, the running ones for the others and for names
 * whose lookup failed. So a name that stops resolving keeps its servers, an upstream with
 * resolve_interval 0 never changes, and a rebuild does not wait on DNS a second time. */
#ifndef GH_RESOLVE_H
#define GH_RESOLVE_H

#include "config/config.h"

/* Every address of `host` (a name, never a numeric address or "localhost"), in the resolver's
 * order, into out[0 .. max); *n gets how many. Returns 0, or an EAI_* code for gai_strerror.
 * The default uses getaddrinfo; tests install their own. NULL restores the default. Set it
 * before loading, not while loads run. It takes precedence over config_set_resolver. */
typedef int (*config_lookup_fn)(const char *host, struct sockaddr_storage *out, size_t max,
                                size_t *n);
void config_set_lookup(config_lookup_fn fn);

/* One server entry written as a host name, in one round. */
struct resolve_entry {
    const struct cfg_upstream *up; /* of the snapshot the round ran on */
    const struct cfg_server_name *name;
    bool looked_up; /* its upstream was due */
    int error;      /* EAI_* code of a failed lookup, else 0 */
    bool changed;   /* looked up, and the addresses differ from the running servers' */
    /* The addresses a rebuild gives the name (port set, sorted): the new ones when changed,
     * else the running servers'. */
    struct sockaddr_storage *sa;
    size_t n;
};

struct resolve_round {
    struct resolve_entry *entries; /* every name of every upstream, in order */
    size_t n;
    bool changed; /* some entry changed: worth a rebuild */
};

/* Looks up the names of the upstreams of `c` for which due[i] is true (indexed like
 * c->upstreams). Returns 0, or -1 when out of memory (the round is then empty). `c` must
 * outlive the round. */
int resolve_round_run(struct resolve_round *r, const struct config *c, const bool *due);

/* A snapshot built from c->source (named c->path) with the round's answers; returns as
 * config_load_string. Loads run on one thread at a time, as for config_set_lookup. */
int resolve_round_build(const struct resolve_round *r, const struct config *c, struct config **out,
                        FILE *errs);

void resolve_round_free(struct resolve_round *r);

/* "10.0.0.5, 2001:db8::5": the addresses without their port, cut short ("...") to fit. */
void resolve_addrs_text(const struct sockaddr_storage *sa, size_t n, char *buf, size_t len);

/* Inside the config module: while resolve_round_build runs, the round's answer for host name
 * `name` of upstream `upstream`: true with a malloc'd copy in *sa (port set; NULL when out of
 * memory). False when no round is being built or it has no such name. */
bool cfg_pinned_answer(const char *upstream, const char *name, uint16_t port,
                       struct sockaddr_storage **sa, size_t *n);

#endif
