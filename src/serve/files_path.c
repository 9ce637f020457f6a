#include "serve/files_path.h"

#include "config/config.h"
#include "http/path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* An encoded '/' or '\\' inside a segment names a file no one can have meant: Apache's
 * AllowEncodedSlashes Off answers 404 too. NUL never reaches the file system. */
static bool encoded_separator(const char *p, size_t len)
{
    for (const char *q = memchr(p, '%', len); q;
         q = memchr(q + 1, '%', len - (size_t)(q + 1 - p))) {
        size_t left = len - (size_t)(q - p);
        if (left < 3)
            break;
        if ((q[1] == '2' && (q[2] == 'F' || q[2] == 'f')) ||
            (q[1] == '5' && (q[2] == 'C' || q[2] == 'c')) || (q[1] == '0' && q[2] == '0'))
            return true;
    }
    return false;
}

bool files_path_has_hidden(const char *rel, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (rel[i] == '.' && (i == 0 || rel[i - 1] == '/'))
            return true;
    }
    return false;
}

/* "." and ".." are gone after normalisation; checked again so that this function alone keeps
 * the promise, whoever calls it. */
static bool has_dot_segment(const char *rel, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && rel[i] != '/')
            continue;
        size_t n = i - start;
        if ((n == 1 && rel[start] == '.') || (n == 2 && rel[start] == '.' && rel[start + 1] == '.'))
            return true;
        if (n == 0 && i < len)
            return true; /* an empty segment: "a//b" */
        start = i + 1;
    }
    return false;
}

bool files_path_relative(const char *rest, size_t len, bool hidden, char *out, size_t cap,
                         size_t *out_len, bool *slash)
{
    *slash = len > 0 && rest[len - 1] == '/';
    while (len && rest[0] == '/') {
        rest++;
        len--;
    }
    while (len && rest[len - 1] == '/')
        len--;
    if (len >= cap || memchr(rest, '\\', len) || encoded_separator(rest, len))
        return false;
    size_t n = http_path_decode(rest, len, out);
    out[n] = '\0';
    if (memchr(out, '\0', n) || memchr(out, '\\', n) || has_dot_segment(out, n))
        return false;
    if (!hidden && files_path_has_hidden(out, n))
        return false;
    *out_len = n;
    return true;
}

static int sys_openat2(int dirfd, const char *path, struct open_how *how)
{
    return (int)syscall(SYS_openat2, dirfd, path, how, sizeof *how);
}

static unsigned long long resolve_flags(int follow)
{
    switch (follow) {
    case CFG_FOLLOW_ALWAYS:
        /* Symlinks may lead anywhere; the path itself cannot, having no ".." left. */
        return RESOLVE_NO_MAGICLINKS;
    case CFG_FOLLOW_NEVER:
        return RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    default:
        return RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    }
}

/* A regular file found O_PATH, reopened for reading through its /proc/self/fd link: the same
 * inode whatever happened to its name since, and only now, knowing it is a regular file. */
static int reopen_for_reading(int path_fd)
{
    char proc[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", path_fd);
    int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int files_path_open(int root_fd, const char *rel, int follow, struct stat *st)
{
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC,
        .resolve = resolve_flags(follow),
    };
    int pfd, tries = 0;
    /* EAGAIN: a rename raced with the resolution (RESOLVE_BENEATH's check); try again. */
    while ((pfd = sys_openat2(root_fd, *rel ? rel : ".", &how)) < 0 && errno == EAGAIN &&
           ++tries < 4)
        ;
    if (pfd < 0)
        return -errno;
    if (fstat(pfd, st) < 0) {
        int err = errno;
        close(pfd);
        return -err;
    }
    if (S_ISDIR(st->st_mode))
        return pfd;
    if (!S_ISREG(st->st_mode)) {
        close(pfd);
        return -ENOENT;
    }
    int fd = reopen_for_reading(pfd);
    close(pfd);
    return fd;
}

int files_path_status(int neg_errno)
{
    return neg_errno == -EACCES || neg_errno == -EPERM ? 403 : 404;
}
