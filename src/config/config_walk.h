/* The machinery that turns a ynode tree into a struct config: an allocation arena, problem
 * reports with positions, and a walker driven by declarative field tables.
 *
 * Each YAML mapping of the schema is one table of `struct field`: the key, the converter that
 * checks and stores its value, where the value goes, its default (written as it would be in
 * the file, and converted by the same code as user input), and the bounds. The walker pairs a
 * mapping's keys with the table, reports unknown, duplicate and missing keys, and applies each
 * converter. Converters report what is wrong with a value and carry on, so that one load
 * reports every problem of a file. */
#ifndef GH_CONFIG_WALK_H
#define GH_CONFIG_WALK_H

#include "config/config.h"
#include "config/config_yaml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Bump allocator: every allocation lives until arena_free, so a half-built snapshot on an
 * error path is released in one call and nothing can leak. Memory is zeroed. */
struct arena_chunk;
struct arena {
    struct arena_chunk *head;
};
void *arena_alloc(struct arena *a, size_t size);
void arena_free(struct arena *a);

struct problem;
struct cfg_key;

/* The state of one load. */
struct load {
    const char *name;     /* file name for messages */
    struct config *cfg;   /* being built */
    struct arena *mem;    /* the snapshot's arena: outlives the load */
    struct arena scratch; /* freed when the load ends */
    struct problem *problems;
    size_t nproblems, cap;
    bool oom;
    /* How host names are looked up; never NULL. */
    const struct config_load_opts *opts;
    const struct cfg_key *upstreams_by_name; /* sorted, for `proxy:` lookups */
    size_t nupstreams_by_name;
    const struct cfg_key *sites_by_name; /* sorted, for the `sites:` of listeners */
    size_t nsites_by_name;
    const struct ynode *sites_list; /* the `sites` list, once converted: where hosts are */
};

/* Records a problem at `at` (NULL: the start of the file). Problems are printed sorted by
 * position when the load ends, so the order in which checks run does not show. */
__attribute__((format(printf, 3, 4))) void cfg_report(struct load *ld, const struct ynode *at,
                                                      const char *fmt, ...);
/* Prints the problems to `errs` (may be NULL), frees the load's scratch memory, and returns
 * the number of distinct problems. */
int cfg_load_end(struct load *ld, FILE *errs);
/* Zeroed memory from the snapshot (cfg_alloc) or from the load's scratch (cfg_scratch).
 * Both return NULL after reporting "out of memory" once. */
void *cfg_alloc(struct load *ld, size_t size);
void *cfg_scratch(struct load *ld, size_t size);
char *cfg_strdup(struct load *ld, const char *s, size_t len);

struct field;
/* Checks `val` and stores it in the struct at `base` (at base + f->offset, for simple ones). */
typedef void (*cfg_conv)(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base);

struct fields {
    const struct field *v;
    size_t n;
};

enum {
    F_REQUIRED = 1 << 0, /* absent or empty is an error */
    F_NOSPACE = 1 << 1,  /* cfg_conv_text: no spaces either (paths, URLs) */
    F_PROXY = 1 << 2,    /* a route key that only proxy routes may have */
};

struct field {
    const char *key;
    cfg_conv conv;
    size_t offset;            /* of the target in the struct being filled */
    const char *dflt;         /* default as written in YAML; NULL: none (zero / NULL) */
    uint64_t min, max;        /* numeric bounds; max 0 = the target type's maximum */
    unsigned flags;           /* F_* */
    const char *const *names; /* cfg_conv_enum / cfg_conv_choice: NULL-terminated */
    const struct fields *sub; /* cfg_conv_map: the nested table */
    const char *note;         /* why `max` is what it is, appended to the message */
};

/* The target of field `f` in the struct at `base`. */
#define CFG_AT(base, f, type) ((type *)((char *)(base) + (f)->offset))

#define FIELD(k, conv_, type, member, dflt_)                                                       \
    .key = (k), .conv = (conv_), .offset = offsetof(type, member), .dflt = (dflt_)
#define FIELDS(table)                                                                              \
    {                                                                                              \
        (table), sizeof(table) / sizeof *(table)                                                   \
    }

enum { CFG_MAX_FIELDS = 24 };

/* Pairs the keys of `map` with `fs` (vals[i] gets the value for fs->v[i], or NULL), reporting
 * keys that are not strings, unknown keys and duplicate keys. `where` completes messages:
 * "in upstream 'jenkins'". */
void cfg_match(struct load *ld, const struct ynode *map, const struct fields *fs,
               const struct ynode **vals, const char *where);
/* Applies one field: converts its value, or its default when absent or null, or reports it
 * missing at `at` when required. */
void cfg_apply(struct load *ld, const struct field *f, const struct ynode *val,
               const struct ynode *at, void *base, const char *where);
/* cfg_match + cfg_apply for every field. `map` may be NULL (absent): defaults only. */
void cfg_walk(struct load *ld, const struct ynode *map, const struct ynode *at,
              const struct fields *fs, void *base, const char *where);

/* Value checks shared by converters; each reports and returns NULL / false on a mismatch. */
const char *cfg_text(struct load *ld, const char *key, const struct ynode *val, const char *want);
bool cfg_want(struct load *ld, const char *what, const struct ynode *val, enum ynode_kind kind);
const struct ynode *cfg_list(struct load *ld, const char *key, const struct ynode *val);
bool cfg_printable(const char *s, bool space_ok);
/* map[key] (NULL if `map` is not a map or has no such key), and its text if it is a
 * non-null scalar: for naming things in messages before they are converted. */
const struct ynode *cfg_get(const struct ynode *map, const char *key);
const char *cfg_peek(const struct ynode *map, const char *key);

/* Duplicate detection and name lookup: keys are byte strings (names, or socket addresses),
 * sorted by content and then by position in the file (idx), so that among equal keys the
 * first written comes first and every later one can be reported as the duplicate. Sorting
 * keeps this O(n log n) however many entries aliases produce. */
struct cfg_key {
    const void *data;
    size_t len;
    size_t idx;
    const struct ynode *node; /* where to report a duplicate */
};
void cfg_sort_keys(struct cfg_key *keys, size_t n);
/* Among sorted keys, whether keys[i] repeats keys[i - 1]. */
bool cfg_key_repeats(const struct cfg_key *keys, size_t i);
const struct cfg_key *cfg_find_key(const struct cfg_key *keys, size_t n, const char *name);

/* Parses an address scalar into *out (text copied into the snapshot); reports
 * "bad address 'X' (why)" and returns false on failure. */
bool cfg_addr(struct load *ld, const char *key, const struct ynode *val, struct cfg_addr *out);

/* Converters for the common value types. */
void cfg_conv_u32(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_int(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_size32(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_size64(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_duration(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_bool(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_text(struct load *ld, const struct field *f, const struct ynode *val, void *base);
/* A file path; a relative one is taken from the configuration file's directory. */
void cfg_conv_path(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_enum(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_choice(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_conv_map(struct load *ld, const struct field *f, const struct ynode *val, void *base);

/* Upstreams (config_upstreams.c), sites and the sites of listeners (config_sites.c), routes
 * (config_routes.c). */
void cfg_conv_upstreams(struct load *ld, const struct field *f, const struct ynode *val,
                        void *base);
void cfg_conv_sites(struct load *ld, const struct field *f, const struct ynode *val, void *base);
/* admin.hosts: a list of DNS names (no wildcards; IP literals are always accepted). */
void cfg_conv_admin_hosts(struct load *ld, const struct field *f, const struct ynode *val,
                          void *base);
/* Once listeners are converted: a host may be in one site only among the sites of a listener. */
void cfg_check_listener_hosts(struct load *ld);
void cfg_conv_listener_sites(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base);
void cfg_conv_routes(struct load *ld, const struct field *f, const struct ynode *val, void *base);
/* The upstream named `name`, or NULL. Valid once `upstreams` has been converted. */
struct cfg_upstream *cfg_find_upstream(struct load *ld, const char *name);

/* `compress` of a site or a route (config_compress.c): true, false or a map, into the
 * const struct cfg_compress * at base + f->offset. */
void cfg_conv_compress(struct load *ld, const struct field *f, const struct ynode *val, void *base);

/* Static files (config_files.c): a route's `files` (a map, or the root alone) into the route at
 * base; the top-level `files_cache` table; cfg_files_free closes the roots' descriptors and
 * frees the type tables of a snapshot, complete or half-built. */
void cfg_conv_files(struct load *ld, const struct field *f, const struct ynode *val, void *base);
extern const struct fields cfg_files_cache_table;
void cfg_files_free(struct config *c);

/* The `tls` map of a listener (config_tls.c), into the struct cfg_tls * at base + f->offset;
 * builds the listener's tls_server. cfg_tls_free frees the servers of a snapshot, complete or
 * half-built. */
void cfg_conv_tls(struct load *ld, const struct field *f, const struct ynode *val, void *base);
void cfg_tls_free(struct config *c);

/* trusted_proxies (config_cidr.c): a list of address blocks into struct config. */
void cfg_conv_trusted_proxies(struct load *ld, const struct field *f, const struct ynode *val,
                              void *base);

/* Header rules (config_headers.c): a map { add, set, remove } into the struct cfg_header_rules
 * at base + f->offset, with f->sub one of these tables (request rules may not touch Host). */
extern const struct fields cfg_request_rules, cfg_response_rules;
void cfg_conv_header_rules(struct load *ld, const struct field *f, const struct ynode *val,
                           void *base);
/* secret_header: { name, value } into the upstream at `base`. */
void cfg_conv_secret_header(struct load *ld, const struct field *f, const struct ynode *val,
                            void *base);

#endif
