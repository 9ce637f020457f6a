/* Chooses what answers a request: the site by Host (exact names, then `*.` wildcards, then
 * "*"), then the route by longest path prefix on segment boundaries. */
#ifndef GH_ROUTER_H
#define GH_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct cfg_site;
struct cfg_route;

/* Host as received (may carry a port, any case), among the sites `l` serves (NULL: all).
 * Falls back to the site marked default; NULL when none answers. */
struct cfg_listener;
const struct cfg_site *router_site(const struct config *c, const struct cfg_listener *l,
                                   const char *host, size_t len);
/* The route for a normalised path (target.h), NULL when none matches. Prefixes match whole
 * segments, read as the applications behind us read them: a segment's `;` parameters are left
 * out ("/admin;x/y" is under /admin), an encoded slash "%2F" and a backslash ('\\' or "%5C")
 * separate segments like '/', empty segments do not count, and with the site's
 * case_insensitive_paths ASCII case is ignored. *rest receives the offset in `path` where the
 * prefix ends (0 for the route "/"): what follows is what strip_prefix forwards, starting with a
 * separator or empty. */
const struct cfg_route *router_route(const struct cfg_site *site, const char *path, size_t len,
                                     size_t *rest);
/* True if `path` is under `prefix` on a segment boundary, as router_route reads them; *rest as
 * there. */
bool router_prefix_match(const char *prefix, size_t plen, const char *path, size_t len, bool nocase,
                         size_t *rest);
/* True if a segment of `path` is "." or ".." once its `;` parameters are left out or "%2F" or a
 * backslash is read as '/' ("/a/..;/b", "/a%2F..%2Fb", "/a\\..\\b"): an application could resolve
 * it to a path we did not route. The normaliser has removed the plain dot segments already. */
bool router_path_ambiguous(const char *path, size_t len);

#endif
