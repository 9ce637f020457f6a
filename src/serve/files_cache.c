#include "serve/files_cache.h"

#include "config/config.h"
#include "serve/files_path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct files_cache {
    struct files_entry **table; /* chained, nbuckets a power of two */
    size_t nbuckets;
    uint32_t n, max;
    struct files_entry *lru_head, *lru_tail; /* most recently used first */
    struct files_cache_stats stats;
};

static uint64_t key_hash(uint64_t dev, uint64_t ino, int follow, const char *rel, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ dev ^ (ino * 31) ^ (uint64_t)follow;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)rel[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void table_size(struct files_cache *c, uint32_t max)
{
    size_t want = 16;
    while (want < (size_t)max * 2 && want < (1u << 22))
        want *= 2;
    struct files_entry **t = calloc(want, sizeof *t);
    if (!t)
        return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct files_entry *e = c->table[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = t[e->hash & (want - 1)];
            t[e->hash & (want - 1)] = e;
        }
    }
    free(c->table);
    c->table = t;
    c->nbuckets = want;
}

struct files_cache *files_cache_new(uint32_t max_entries)
{
    struct files_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max = max_entries;
    table_size(c, max_entries);
    if (!c->table) {
        free(c);
        return NULL;
    }
    return c;
}

static void entry_free(struct files_entry *e)
{
    if (e->fd >= 0)
        close(e->fd);
    free(e);
}

static void lru_unlink(struct files_cache *c, struct files_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(struct files_cache *c, struct files_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

/* Out of the table and the LRU list; freed now unless a response still holds it. */
static void uncache(struct files_cache *c, struct files_entry *e)
{
    struct files_entry **pp = &c->table[e->hash & (c->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(c, e);
    e->cached = false;
    c->n--;
    if (!e->refs)
        entry_free(e);
}

static void evict_to(struct files_cache *c, uint32_t max)
{
    while (c->n > max && c->lru_tail) {
        c->stats.evictions++;
        uncache(c, c->lru_tail);
    }
}

void files_cache_set_max(struct files_cache *c, uint32_t max_entries)
{
    if (!c)
        return;
    c->max = max_entries;
    evict_to(c, max_entries);
    if ((size_t)max_entries * 2 > c->nbuckets)
        table_size(c, max_entries);
}

void files_cache_free(struct files_cache *c)
{
    if (!c)
        return;
    evict_to(c, 0);
    free(c->table);
    free(c);
}

static struct files_entry *lookup(struct files_cache *c, uint64_t h, const struct cfg_files *fs,
                                  const char *rel, size_t len)
{
    for (struct files_entry *e = c->table[h & (c->nbuckets - 1)]; e; e = e->hnext) {
        if (e->hash == h && e->root_ino == fs->root_ino && e->root_dev == fs->root_dev &&
            e->follow == fs->follow_symlinks && e->rel_len == len && !memcmp(e->rel, rel, len))
            return e;
    }
    return NULL;
}

static bool not_found(int err)
{
    return err == -ENOENT || err == -ENOTDIR;
}

static struct files_entry *entry_open(const struct cfg_files *fs, const char *rel, size_t len,
                                      uint64_t h, uint64_t now_ms)
{
    struct files_entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    memcpy(e->rel, rel, len);
    e->rel[len] = '\0';
    e->rel_len = len;
    e->hash = h;
    e->root_dev = fs->root_dev;
    e->root_ino = fs->root_ino;
    e->follow = fs->follow_symlinks;
    e->checked_ms = now_ms;
    e->refs = 1;
    e->fd = files_path_open(fs->root_fd, e->rel, fs->follow_symlinks, &e->st);
    if (e->fd < 0) {
        e->err = e->fd;
        e->fd = -1;
    } else if (S_ISREG(e->st.st_mode)) {
        e->etag_len = http_etag_file(e->etag, (uint64_t)e->st.st_ino, (uint64_t)e->st.st_size,
                                     e->st.st_mtim.tv_sec, e->st.st_mtim.tv_nsec);
        httpdate_format(e->st.st_mtim.tv_sec, e->last_modified);
    }
    return e;
}

/* One fstatat of the path: does it still name what the entry holds? Relative to root and
 * following symlinks as the open did (never: not at all), so a changed link shows as a change
 * and the reopen applies the rules again. */
static bool still_valid(const struct cfg_files *fs, const struct files_entry *e)
{
    struct stat st;
    int flags = fs->follow_symlinks == CFG_FOLLOW_NEVER ? AT_SYMLINK_NOFOLLOW : 0;
    if (!e->rel_len)
        flags |= AT_EMPTY_PATH;
    if (fstatat(fs->root_fd, e->rel, &st, flags) < 0)
        return e->err && not_found(-errno);
    if (e->err)
        return false;
    return st.st_ino == e->st.st_ino && st.st_dev == e->st.st_dev && st.st_size == e->st.st_size &&
           st.st_mode == e->st.st_mode && st.st_mtim.tv_sec == e->st.st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == e->st.st_mtim.tv_nsec &&
           st.st_ctim.tv_sec == e->st.st_ctim.tv_sec && st.st_ctim.tv_nsec == e->st.st_ctim.tv_nsec;
}

/* Kept: what opened, and the plain misses; not errors that may pass (EACCES, EMFILE...). */
static bool cacheable(const struct files_entry *e)
{
    return !e->err || not_found(e->err);
}

static void insert(struct files_cache *c, struct files_entry *e)
{
    if (!c->max || !cacheable(e))
        return;
    evict_to(c, c->max - 1);
    struct files_entry **b = &c->table[e->hash & (c->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(c, e);
    e->cached = true;
    c->n++;
}

struct files_entry *files_cache_get(struct files_cache *c, const struct cfg_files *fs,
                                    const char *rel, size_t len, uint64_t now_ms, uint32_t valid_ms)
{
    uint64_t h = key_hash(fs->root_dev, fs->root_ino, fs->follow_symlinks, rel, len);
    struct files_entry *e = c && c->max ? lookup(c, h, fs, rel, len) : NULL;
    if (e && now_ms - e->checked_ms >= valid_ms) {
        c->stats.revalidations++;
        if (still_valid(fs, e)) {
            e->checked_ms = now_ms;
        } else {
            c->stats.reopens++;
            uncache(c, e);
            e = NULL;
        }
    }
    if (e) {
        c->stats.hits++;
        lru_unlink(c, e);
        lru_push(c, e);
        e->refs++;
        return e;
    }
    if (c)
        c->stats.misses++;
    e = entry_open(fs, rel, len, h, now_ms);
    if (e && c)
        insert(c, e);
    return e;
}

void files_entry_put(struct files_cache *c, struct files_entry *e)
{
    (void)c;
    if (e && --e->refs == 0 && !e->cached)
        entry_free(e);
}

void files_cache_stats(const struct files_cache *c, struct files_cache_stats *out)
{
    *out = c ? c->stats : (struct files_cache_stats){0};
    if (c)
        out->entries = c->n;
}
