/* The request path's normal form and its percent-encoding check. Below the codecs, so HTTP/1.1
 * and HTTP/2 requests are held to the same rules; the router and the config read routes with it
 * too, so a route prefix and a request path are compared in the same form. */
#ifndef GH_HTTP_PATH_H
#define GH_HTTP_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Whether http_path_normalize would change the path. Cheap: the common path needs nothing. */
bool http_path_needs_normalize(const char *p, size_t len);

/* The path as the application will read it, which is what is routed and what is forwarded:
 * percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) decoded and the hex digits of the
 * other percent-encodings uppercased (RFC 3986 sections 6.2.2.1 and 6.2.2.2), runs of '/' merged
 * into one, then dot segments removed (section 5.2.4; "%2e" is a '.' by then, so "/a/%2e%2e/b"
 * cannot escape a route prefix). An encoded slash "%2F" stays encoded (Jenkins and others tell
 * it from '/'); the router reads it as a separator. `out` needs `len` bytes, at least 1 (the
 * result is never longer). Returns the new length. */
size_t http_path_normalize(const char *p, size_t len, char *out);

/* Whether every '%' of the path starts a percent-encoding ("%" and two hex digits). One that
 * does not is refused (400): applications read it in different ways, and the normaliser
 * leaves such a path undecoded. */
bool http_path_pct_valid(const char *p, size_t len);

/* Every percent-encoding of the path decoded, once (for a file name: the files handler looks the
 * normalised path up on disk). Decoding may produce '/', '\\' or NUL: the caller refuses what it
 * must before or after. `out` needs `len` bytes; returns the new length. */
size_t http_path_decode(const char *p, size_t len, char *out);

#endif
