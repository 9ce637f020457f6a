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

/* Whether target_path_normalize would change the path. Cheap: the common path needs nothing. */
bool target_path_needs_normalize(const char *p, size_t len);

/* The path as the application will read it, which is what is routed and what is forwarded:
 * percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) decoded and the hex digits of the
 * other percent-encodings uppercased (RFC 3986 sections 6.2.2.1 and 6.2.2.2), runs of '/' merged
 * into one, then dot segments removed (section 5.2.4; "%2e" is a '.' by then, so "/a/%2e%2e/b"
 * cannot escape a route prefix). An encoded slash "%2F" stays encoded (Jenkins and others tell
 * it from '/'); the router reads it as a separator. `out` needs `len` bytes, at least 1 (the
 * result is never longer). Returns the new length. */
size_t target_path_normalize(const char *p, size_t len, char *out);

/* Whether every '%' of the path starts a percent-encoding ("%" and two hex digits). One that
 * does not is refused (400): applications read it in different ways, and the normaliser
 * leaves such a path undecoded. */
bool target_path_pct_valid(const char *p, size_t len);

#endif
