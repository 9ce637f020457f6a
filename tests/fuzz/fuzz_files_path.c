/* libFuzzer harness for the files handler's path resolution (serve/files_path.h): a request path
 * as the codecs hand it to the router (normalised by http/path.h), then the part a files route
 * looks up, decoded once into a relative file name. The first input byte chooses `hidden` and
 * how many leading bytes the route's prefix takes; the rest is the path (a '/' put first).
 *
 * Checked, for every relative name files_path_relative accepts: it is shorter than its buffer and
 * NUL-terminated at its length, holds no NUL and no backslash, does not start or end with '/',
 * has no empty, "." or ".." segment (so openat2 below root has nothing to climb with, even
 * without RESOLVE_BENEATH, as under follow_symlinks: always), and, unless hidden, no segment
 * starting with '.'. */
#include "fuzz.h"
#include "http/path.h"
#include "serve/files_path.h"

#include <stdbool.h>
#include <string.h>

static void check_name(const char *rel, size_t n, bool hidden)
{
    INVARIANT(n < FILES_PATH_MAX && rel[n] == '\0');
    INVARIANT(!memchr(rel, '\0', n) && !memchr(rel, '\\', n));
    if (!n)
        return;
    INVARIANT(rel[0] != '/' && rel[n - 1] != '/');
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && rel[i] != '/')
            continue;
        size_t len = i - start;
        INVARIANT(len > 0);
        INVARIANT(!(len == 1 && rel[start] == '.'));
        INVARIANT(!(len == 2 && rel[start] == '.' && rel[start + 1] == '.'));
        INVARIANT(hidden || rel[start] != '.');
        start = i + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[FILES_PATH_MAX * 2], norm[FILES_PATH_MAX * 2], rel[FILES_PATH_MAX];
    if (size < 1 || size > FILES_PATH_MAX + 100)
        return 0;
    bool hidden = data[0] & 1;
    size_t len = size - 1 + 1;
    path[0] = '/';
    memcpy(path + 1, data + 1, size - 1);
    char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    size_t nlen = http_path_normalize(path, len, norm);
    size_t skip = (size_t)(data[0] >> 1) % (nlen + 1);
    size_t n = 0;
    bool slash;
    if (files_path_relative(norm + skip, nlen - skip, hidden, rel, sizeof rel, &n, &slash))
        check_name(rel, n, hidden);
    return 0;
}
