/* Content-Type by file name extension for the files handler. A table is immutable once built and
 * owned by whoever built it (the config snapshot: one base table per snapshot from the built-in
 * list and /etc/mime.types, and one per route that has `mime_types` additions). Lookups never
 * allocate: a binary search over sorted lowercase extensions, the Content-Type value (charset
 * included) precomputed per entry.
 *
 * Precedence when an extension is listed twice: a route's additions, then the built-in list,
 * then /etc/mime.types (the built-in list keeps behaviour the same on every system; the file
 * fills in what it does not know).
 *
 * "; charset=utf-8" is appended to every text/ type, application/javascript, application/json,
 * application/manifest+json, application/xml and image/svg+xml, unless the type already has
 * parameters: these are read as text by browsers, and without a charset a browser guesses. */
#ifndef GH_SERVE_MIME_H
#define GH_SERVE_MIME_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_EXT_MAX 31          /* longest extension (without the dot), "tar.gz" counts as 6 */
#define MIME_TYPE_MAX 127        /* longest media type, before the charset */
#define MIME_FILE_MAX (1u << 20) /* bytes of /etc/mime.types read at most */
#define MIME_ENTRIES_MAX 16384   /* entries in one table at most */
#define MIME_DEFAULT "application/octet-stream"

struct mime_table;

/* An addition: ext with or without its leading dot ("wasm", ".tar.gz"); type a media type,
 * optionally with parameters ("application/wasm", "text/plain; charset=iso-8859-1"). */
struct mime_entry {
    const char *ext;
    const char *type;
};

/* The built-in list plus the entries of `path` (a mime.types file: "type ext ext ..." lines,
 * '#' comments; invalid lines and entries are skipped). path NULL, or a file that does not exist:
 * the built-in list alone. Returns NULL with a message in err for an unreadable file or no
 * memory. */
struct mime_table *mime_table_load(const char *path, char *err, size_t errlen);

/* A new table: `base`'s entries with `extra` on top. Returns NULL with a message naming the
 * entry for an invalid extension or type (for the config's FILE:LINE:COL error), or no memory. */
struct mime_table *mime_table_extend(const struct mime_table *base, const struct mime_entry *extra,
                                     size_t nextra, char *err, size_t errlen);

void mime_table_free(struct mime_table *t);
size_t mime_table_size(const struct mime_table *t);

/* The Content-Type for a file name or path (only the part after the last '/' is looked at).
 * The longest listed suffix after a '.' wins ("a.tar.gz" finds "tar.gz" before "gz"); a leading
 * '.' (".profile") does not start an extension; the match ignores ASCII case. Never NULL: the
 * default is MIME_DEFAULT. *type_len (if not NULL) gets the length. */
const char *mime_lookup(const struct mime_table *t, const char *name, size_t len, size_t *type_len);

/* Validation for configuration values (also applied by mime_table_extend). */
bool mime_ext_valid(const char *ext, size_t len);
bool mime_type_valid(const char *type, size_t len);

#endif
