/* Rewriting of upstream response field values so that URLs naming the upstream's internal
 * address (Location: http://127.0.0.1:9090/login) name the public URL the client used instead
 * (https://ci.example.com/jenkins/login). Allocation-free: every function writes into a buffer
 * the caller owns, and reads only v[0..len).
 *
 * Each rewrite_* function returns:
 *   > 0  the length of the new value, written to out[0..cap);
 *     0  the value needs no change (nothing internal in it, or the result equals it): forward
 *        the original;
 *    -1  a rewrite is due but cannot be made: the result would not fit in cap, would contain a
 *        control character, or the public origin in the context is malformed. Forward the
 *        original and log.
 * A result never contains a control character (CR, LF, NUL, HTAB, ... or DEL). */
#ifndef GH_REWRITE_H
#define GH_REWRITE_H

#include <stddef.h>
#include <sys/types.h>

/* An origin the upstream may call itself: "scheme://host[:port]", no path, e.g.
 * "http://127.0.0.1:9090", "https://jenkins.internal", "http://[::1]:8080". Scheme and host
 * compare case-insensitively and a default port (80 for http, 443 for https) equals its
 * absence. An origin that does not parse never matches. */
struct rewrite_origin {
    const char *p;
    size_t len;
};

struct rewrite_ctx {
    const struct rewrite_origin *internal; /* origins to recognise */
    size_t ninternal;
    const char *scheme; /* public scheme the client used: "http" or "https" */
    size_t scheme_len;
    const char *host; /* Host the client sent, port included if any: "ci.example.com:8443",
                         "[::1]:8080" */
    size_t host_len;
    const char *prefix; /* path prefix the proxy strips ("/jenkins"), or empty; trailing '/'
                           are ignored */
    size_t prefix_len;
};

/* Location and Content-Location: one URI-reference. An absolute or scheme-relative URL whose
 * origin is internal becomes public scheme "://" public host, prefix, then the URL's path, query
 * and fragment as they are (an empty path becomes the prefix, or "/"). The prefix is not added
 * again when the path already starts with it (an app that honours X-Forwarded-Prefix but not
 * X-Forwarded-Host). Relative references are left alone. */
ssize_t rewrite_location(const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                         size_t cap);

/* Refresh: "5; url=http://...", with "url=" in any case, optional spaces and optional quotes
 * around the URL, parsed as browsers do (HTML "shared declarative refresh steps"). The URL is
 * rewritten as by rewrite_location; the rest is kept byte for byte. */
ssize_t rewrite_refresh(const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                        size_t cap);

/* Link (RFC 8288): a comma-separated list of "<URI-reference> *(; param)". Only the <...> parts
 * are rewritten (as by rewrite_location); commas and angle brackets inside quoted parameter
 * values do not split or start an entry. */
ssize_t rewrite_link(const struct rewrite_ctx *c, const char *v, size_t len, char *out, size_t cap);

/* Set-Cookie (RFC 6265): with a non-empty prefix, Path=/x becomes Path=<prefix>/x and Path=/
 * becomes Path=<prefix> (which still matches <prefix>/... but not <prefix>foo); a path that
 * already starts with the prefix is kept. Domain=<an internal host> (a leading dot allowed)
 * becomes Domain=<public host without port>. Attribute names compare case-insensitively; the
 * name=value pair and every other attribute are kept byte for byte. */
ssize_t rewrite_set_cookie(const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                           size_t cap);

#endif
