/* Checks and normal forms for what a request names: the Host (or absolute-form authority) and
 * the path. Shared by every codec, so HTTP/1.1 and HTTP/2 requests are held to the same rules. */
#ifndef GH_TARGET_H
#define GH_TARGET_H

#include <stdbool.h>
#include <stddef.h>

/* host[:port] per RFC 3986: a reg-name (unreserved, pct-encoded, sub-delims) or a bracketed
 * IP literal, then optionally ':' and a port: digits up to 65535, or none (the default port).
 * An empty host is invalid. */
bool target_host_valid(const char *h, size_t len);

/* Whether the path holds a dot segment ("." or "..", also percent-encoded as %2e) that
 * target_path_normalize would remove. Cheap: the common path has none. */
bool target_path_has_dots(const char *p, size_t len);

/* RFC 3986 section 5.2.4 remove_dot_segments, with %2e/%2E counted as '.', so "/a/%2e%2e/b"
 * cannot escape a route prefix. Every other byte, percent-encodings included ("%2F"), is kept
 * as it came. `out` needs `len` bytes (the result is never longer). Returns the new length. */
size_t target_path_normalize(const char *p, size_t len, char *out);

#endif
