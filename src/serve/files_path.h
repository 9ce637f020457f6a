/* From the request path to an open file under a `files` route's root, without ever leaving it:
 * the path the router normalised (http/path.h: dot segments gone, unreserved characters
 * decoded) is decoded once more into a file name, refused if it holds what a file name under
 * root cannot (NUL, '\\', an encoded '/', a dot-file unless hidden), then resolved with openat2
 * relative to root's descriptor (RESOLVE_BENEATH: no '..' or symlink leads out, with no race
 * between a check and the open). The file is resolved O_PATH and looked at first, so a FIFO or a
 * device is never opened for reading (which could block or have side effects). */
#ifndef GH_SERVE_FILES_PATH_H
#define GH_SERVE_FILES_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#define FILES_PATH_MAX 4096 /* bytes of a relative path, NUL included */

/* `rest` (the normalised request path after the route's prefix, percent-encodings of reserved
 * characters still in it) into the relative path `out` (cap bytes, NUL-terminated): no leading
 * or trailing '/', "" for root itself. *slash tells whether the path ended with '/'. Returns
 * false for a path that is never looked up (the handler answers 404). */
bool files_path_relative(const char *rest, size_t len, bool hidden, char *out, size_t cap,
                         size_t *out_len, bool *slash);

/* Whether a relative path has a segment starting with '.' (a dot-file or dot-directory). */
bool files_path_has_hidden(const char *rel, size_t len);

/* Opens `rel` under root_fd following symlinks as `follow` (enum cfg_follow) says. A regular
 * file comes back opened for reading, a directory as an O_PATH descriptor (for openat and
 * listing); *st is filled. Returns the descriptor, or -errno: -ENOENT also for anything that is
 * neither (FIFO, device, socket), -EACCES for a file the process may not read. */
int files_path_open(int root_fd, const char *rel, int follow, struct stat *st);

/* The status a failed files_path_open means: 403 for EACCES/EPERM, 404 for the rest. */
int files_path_status(int neg_errno);

#endif
