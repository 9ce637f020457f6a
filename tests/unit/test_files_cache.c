/* Unit tests for serve/files_cache.c: hits without opening, the LRU bound, revalidation after
 * `valid` (kept when unchanged, reopened when changed or replaced, misses remembered and
 * rechecked), reference counts that keep an evicted entry's descriptor open, and the key
 * (root identity, path, symlink mode). */
#include "check.h"
#include "tmp_tree.h"
#include "config/config.h"
#include "serve/files_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct tmp_tree tree;

static void put(const char *rel, const char *body)
{
    tmp_tree_put(&tree, rel, body);
}

static struct cfg_files files_at(const char *dir, int follow)
{
    struct cfg_files fs = {.follow_symlinks = follow};
    struct stat st;
    fs.root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(fs.root_fd >= 0 && fstat(fs.root_fd, &st) == 0);
    fs.root_dev = st.st_dev;
    fs.root_ino = st.st_ino;
    return fs;
}

static struct files_entry *get(struct files_cache *c, struct cfg_files *fs, const char *rel,
                               uint64_t now, uint32_t valid)
{
    return files_cache_get(c, fs, rel, strlen(rel), now, valid);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_hits_and_lru(struct cfg_files *fs)
{
    struct files_cache *c = files_cache_new(2);
    struct files_cache_stats st;
    struct files_entry *a = get(c, fs, "a.txt", 0, 1000);
    CHECK(a && a->fd >= 0 && !a->err && a->st.st_size == 1);
    CHECK(a->etag_len > 2 && a->etag[0] == '"');
    files_entry_put(c, a);
    struct files_entry *a2 = get(c, fs, "a.txt", 10, 1000);
    CHECK(a2 == a); /* a hit: the same entry, same descriptor */
    files_entry_put(c, a2);
    files_entry_put(c, get(c, fs, "b.txt", 20, 1000));
    files_entry_put(c, get(c, fs, "a.txt", 30, 1000)); /* a is now the most recent */
    files_entry_put(c, get(c, fs, "c.txt", 40, 1000)); /* evicts b, the least recent */
    files_cache_stats(c, &st);
    CHECK_EQ_INT(st.entries, 2);
    CHECK_EQ_INT(st.evictions, 1);
    CHECK_EQ_INT(st.hits, 2);
    CHECK_EQ_INT(st.misses, 3);
    files_entry_put(c, get(c, fs, "a.txt", 50, 1000));
    files_cache_stats(c, &st);
    CHECK_EQ_INT(st.hits, 3); /* a survived */
    files_entry_put(c, get(c, fs, "b.txt", 60, 1000));
    files_cache_stats(c, &st);
    CHECK_EQ_INT(st.misses, 4); /* b did not */
    files_cache_set_max(c, 1);
    files_cache_stats(c, &st);
    CHECK_EQ_INT(st.entries, 1);
    files_cache_free(c);
}

static void test_in_use_survives_eviction(struct cfg_files *fs)
{
    struct files_cache *c = files_cache_new(1);
    struct files_entry *a = get(c, fs, "a.txt", 0, 1000);
    int fd = a->fd;
    files_entry_put(c, get(c, fs, "b.txt", 1, 1000)); /* evicts a, which a response holds */
    CHECK(fd_open(fd));
    char ch = 0;
    CHECK(pread(a->fd, &ch, 1, 0) == 1 && ch == 'a');
    files_entry_put(c, a); /* the last reference: closed now */
    CHECK(!fd_open(fd));
    files_cache_free(c);

    /* Freeing the cache while a response holds an entry leaves that entry to its holder. */
    c = files_cache_new(4);
    a = get(c, fs, "a.txt", 0, 1000);
    fd = a->fd;
    files_cache_free(c);
    CHECK(fd_open(fd));
    files_entry_put(NULL, a);
    CHECK(!fd_open(fd));
}

static void test_revalidation(struct cfg_files *fs)
{
    struct files_cache *c = files_cache_new(8);
    struct files_cache_stats st;
    put("r.txt", "one");
    struct files_entry *e = get(c, fs, "r.txt", 0, 100);
    int fd = e->fd;
    files_entry_put(c, e);
    e = get(c, fs, "r.txt", 150, 100); /* old enough: checked, unchanged, kept */
    CHECK(e->fd == fd);
    files_entry_put(c, e);
    files_cache_stats(c, &st);
    CHECK_EQ_INT(st.revalidations, 1);
    CHECK_EQ_INT(st.reopens, 0);
    put("r.txt", "changed");           /* same inode, new size */
    e = get(c, fs, "r.txt", 200, 100); /* within valid: not looked at */
    CHECK(e->st.st_size == 3);
    files_entry_put(c, e);
    e = get(c, fs, "r.txt", 300, 100);
    CHECK(e->st.st_size == 7);
    files_entry_put(c, e);
    files_cache_stats(c, &st);
    CHECK_EQ_INT(st.reopens, 1);

    /* A miss is remembered, checked with the same stat, and gives way to the file. */
    e = get(c, fs, "later.txt", 400, 0);
    CHECK(e->fd < 0 && e->err == -ENOENT);
    files_entry_put(c, e);
    e = get(c, fs, "later.txt", 401, 0);
    CHECK(e->err == -ENOENT);
    files_entry_put(c, e);
    files_cache_stats(c, &st);
    uint64_t hits = st.hits;
    put("later.txt", "now");
    e = get(c, fs, "later.txt", 402, 0);
    CHECK(e->fd >= 0 && !e->err && e->st.st_size == 3);
    files_entry_put(c, e);
    files_cache_stats(c, &st);
    CHECK_EQ_INT(st.hits, hits);
    files_cache_free(c);
}

static void test_key(struct cfg_files *fs, struct cfg_files *other)
{
    struct files_cache *c = files_cache_new(8);
    struct files_entry *a = get(c, fs, "a.txt", 0, 1000);
    struct files_entry *o = get(c, other, "a.txt", 0, 1000); /* another root, same name */
    CHECK(a != o && o->err == -ENOENT);
    struct cfg_files never = *fs;
    never.follow_symlinks = CFG_FOLLOW_NEVER;
    struct files_entry *l1 = get(c, fs, "link", 0, 1000);
    struct files_entry *l2 = get(c, &never, "link", 0, 1000);
    CHECK(l1 != l2 && l1->fd >= 0 && l2->err == -ELOOP);
    files_entry_put(c, a);
    files_entry_put(c, o);
    files_entry_put(c, l1);
    files_entry_put(c, l2);
    files_cache_free(c);
}

static void test_no_cache(struct cfg_files *fs)
{
    struct files_entry *a = get(NULL, fs, "a.txt", 0, 1000);
    struct files_entry *b = get(NULL, fs, "a.txt", 0, 1000);
    CHECK(a && b && a != b && a->fd >= 0 && b->fd >= 0);
    int fd = a->fd;
    files_entry_put(NULL, a);
    CHECK(!fd_open(fd));
    files_entry_put(NULL, b);
    struct files_cache *c = files_cache_new(0); /* entries: 0 keeps nothing */
    a = get(c, fs, "a.txt", 0, 1000);
    fd = a->fd;
    files_entry_put(c, a);
    CHECK(!fd_open(fd));
    files_cache_free(c);
}

int main(void)
{
    char path[128];
    tmp_tree_make(&tree, "files-cache");
    put("a.txt", "a");
    put("b.txt", "b");
    put("c.txt", "c");
    tmp_tree_at(&tree, "link", path, sizeof path);
    CHECK(symlink("a.txt", path) == 0);
    tmp_tree_at(&tree, "other", path, sizeof path);
    CHECK(mkdir(path, 0755) == 0);
    struct cfg_files fs = files_at(tree.top, CFG_FOLLOW_INSIDE_ROOT);
    struct cfg_files other = files_at(path, CFG_FOLLOW_INSIDE_ROOT);
    test_hits_and_lru(&fs);
    test_in_use_survives_eviction(&fs);
    test_revalidation(&fs);
    test_key(&fs, &other);
    test_no_cache(&fs);
    close(fs.root_fd);
    close(other.root_fd);
    tmp_tree_remove(&tree);
    return check_done("files_cache");
}
