/* The open-file cache of one worker: descriptors, stat results and ETags of the files a `files`
 * route served lately, so that a hot file costs no open(2) per request. Bounded in entries
 * (files_cache.entries, least recently used goes first) and in age (files_cache.valid: an older
 * entry is checked again with one fstatat of its path relative to root; the same inode, size,
 * mtime and ctime -> kept, anything else -> opened again). Keyed by the root's identity (device
 * and inode, so a reload that keeps the root keeps the cache), the relative path and the symlink
 * mode. A missing file is remembered too (precompressed siblings that do not exist would
 * otherwise cost an openat2 each per request).
 *
 * Entries are reference counted: a response holds its file's entry until it ends, so a
 * descriptor being sent from stays open even when the cache evicts or replaces the entry. */
#ifndef GH_SERVE_FILES_CACHE_H
#define GH_SERVE_FILES_CACHE_H

#include "core/httpdate.h"
#include "http/conditional.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct cfg_files;
struct files_cache;

struct files_entry {
    int fd;  /* regular file: open for reading; directory: O_PATH; -1 when err is set */
    int err; /* 0, or the negative errno the open failed with */
    struct stat st;
    char etag[HTTP_ETAG_FILE_MAX]; /* regular files: the strong validator, quotes included */
    size_t etag_len;
    char last_modified[HTTPDATE_LEN + 1]; /* regular files: the mtime as an IMF-fixdate */
    /* The cache's own bookkeeping. */
    unsigned refs;
    bool cached; /* in the table (else freed at its last reference) */
    uint64_t checked_ms;
    uint64_t hash;
    uint64_t root_dev, root_ino;
    int follow;
    struct files_entry *hnext, *lru_prev, *lru_next;
    size_t rel_len;
    char rel[]; /* NUL-terminated */
};

struct files_cache_stats {
    uint64_t hits, misses, revalidations, reopens, evictions;
    uint32_t entries;
};

/* A cache of at most max_entries (0: nothing is kept; every get opens). NULL: out of memory. */
struct files_cache *files_cache_new(uint32_t max_entries);
/* Drops every entry not in use; the ones in use are freed by their last files_entry_put. */
void files_cache_free(struct files_cache *c);
/* A new bound (a reload changed files_cache.entries): evicts down to it. */
void files_cache_set_max(struct files_cache *c, uint32_t max_entries);

/* The entry for `rel` (files_path.h's relative form) under fs's root, with one reference for
 * the caller: from the cache when present and checked within valid_ms, else opened (or
 * checked and reopened). c may be NULL (no cache). NULL only when out of memory. */
struct files_entry *files_cache_get(struct files_cache *c, const struct cfg_files *fs,
                                    const char *rel, size_t len, uint64_t now_ms,
                                    uint32_t valid_ms);
/* Gives back the reference of files_cache_get. */
void files_entry_put(struct files_cache *c, struct files_entry *e);

void files_cache_stats(const struct files_cache *c, struct files_cache_stats *out);

#endif
