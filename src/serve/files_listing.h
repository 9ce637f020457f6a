/* Directory listings for the files handler (`listing: true`): an HTML page, or JSON when the
 * client's Accept prefers application/json. Rendering only: the handler resolves and opens the
 * directory (inside root, by its own rules) and sends what this returns.
 *
 * What a listing shows, and why:
 * - Directories first, then everything else, each group sorted by name (strcmp: bytes, not
 *   locale), so the order is the same on every system and between requests.
 * - Entries are looked at with fstatat(AT_SYMLINK_NOFOLLOW): a listing never follows a link,
 *   so it cannot disclose the size or age of a file outside root. A symbolic link is listed as
 *   a "link" (no size; its own mtime); whether following it is allowed is the handler's
 *   business when the link is requested. FIFOs, sockets and devices are left out: the handler
 *   answers 404 for them anyway.
 * - Names are bytes: HTML text is escaped (& < > " ') and invalid UTF-8 shows as U+FFFD; link
 *   targets are relative and percent-encode every byte but the unreserved ones (a name with a
 *   ':' cannot turn into a scheme); JSON strings escape quotes, backslashes, control characters
 *   and < > & (\u00XX), and invalid UTF-8 becomes \uFFFD (the name is then not exact: the
 *   HTML link, percent-encoded, is).
 * - At most FILES_LISTING_MAX entries are read; beyond that the listing is cut (the HTML page
 *   says so, and out->truncated is set for the handler, which may add a header).
 * - No external assets (no scripts, fonts or styles from elsewhere): a small inline style. */
#ifndef GH_SERVE_FILES_LISTING_H
#define GH_SERVE_FILES_LISTING_H

#include <stdbool.h>
#include <stddef.h>

#define FILES_LISTING_MAX 10000 /* entries read from one directory at most */

struct files_listing {
    char *body; /* malloc'd; the caller frees */
    size_t len;
    const char *content_type; /* static string */
    bool truncated;           /* the directory had more than FILES_LISTING_MAX entries */
};

/* Renders directory `dirfd` (not closed, its offset not moved) for URL path `url_path`
 * (already normalised, ends with '/'): HTML (names escaped, links percent-encoded, sizes,
 * mtimes as IMF-fixdate, directories first, sorted by name), or JSON when `json`:
 * [{"name":"..","type":"dir"|"file"|"link","size":N,"mtime":"IMF-fixdate"}] (size for files
 * only). Names starting with '.' are left out unless show_hidden. A parent link ("../") unless
 * url_path is "/". Returns 0, or -1 with errno set when the directory cannot be read (or
 * ENOMEM); *out is then zeroed. */
int files_listing_render(int dirfd, const char *url_path, size_t url_len, bool json,
                         bool show_hidden, struct files_listing *out);

/* Whether an Accept field value (NULL or empty: no preference) prefers application/json over
 * text/html (RFC 9110 section 12.5.1): each type gets the q of the most specific media range
 * that matches it (type/subtype, then type/ star, then star/star; among several at that level,
 * the highest q); JSON wins only with a strictly higher q. Malformed members (no '/', a bad
 * qvalue) are ignored; parameters other than q do not change matching. */
bool files_listing_wants_json(const char *accept, size_t len);

#endif
