/* A temporary directory tree for the unit tests of the files modules: made with mkdtemp, filled
 * with small files, removed at the end. Uses check.h's CHECK. */
#ifndef GH_TMP_TREE_H
#define GH_TMP_TREE_H

#include "check.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tmp_tree {
    char top[64];
};

static inline void tmp_tree_make(struct tmp_tree *t, const char *name)
{
    snprintf(t->top, sizeof t->top, "/tmp/gh-%s-XXXXXX", name);
    CHECK(mkdtemp(t->top) != NULL);
}

/* The path of `rel` inside the tree. */
static inline void tmp_tree_at(const struct tmp_tree *t, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", t->top, rel);
}

/* Writes `body` to `rel` (created or truncated, same inode). */
static inline void tmp_tree_put(const struct tmp_tree *t, const char *rel, const char *body)
{
    char path[256];
    tmp_tree_at(t, rel, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, body, strlen(body)) == (ssize_t)strlen(body));
    close(fd);
}

static inline void tmp_tree_remove(const struct tmp_tree *t)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->top);
    CHECK(system(cmd) == 0);
}

#endif
