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
    bool changed;                           /* some entry changed: worth a rebuild */
    const struct config_resolver *resolver; /* the round's lookups went there; NULL: getaddrinfo */
};

/* Looks up, with `resolver` (NULL: getaddrinfo), the names of the upstreams of `c` for which
 * due[i] is true (indexed like c->upstreams). Returns 0, or -1 when out of memory (the round is
 * then empty). `c` and `resolver` must outlive the round. */
int resolve_round_run(struct resolve_round *r, const struct config *c, const bool *due,
                      const struct config_resolver *resolver);

/* A snapshot built from c->source (named c->path) with the round's answers (other host names,
 * of listeners, are looked up with the round's resolver); returns as config_load_string. */
int resolve_round_build(const struct resolve_round *r, const struct config *c, struct config **out,
                        FILE *errs);

void resolve_round_free(struct resolve_round *r);

/* "10.0.0.5, 2001:db8::5": the addresses without their port, cut short ("...") to fit. */
void resolve_addrs_text(const struct sockaddr_storage *sa, size_t n, char *buf, size_t len);

/* Inside the config module: round r's answer (r is a load's opts->answers) for host name
 * `name` of upstream `upstream`: true with a malloc'd copy in *sa (port set; NULL when out of
 * memory). False when r is NULL or has no such name. */
bool cfg_pinned_answer(const struct resolve_round *r, const char *upstream, const char *name,
                       uint16_t port, struct sockaddr_storage **sa, size_t *n);

#endif
