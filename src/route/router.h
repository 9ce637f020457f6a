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
/* NULL when no route matches. */
const struct cfg_route *router_route(const struct cfg_site *site, const char *path, size_t len);
/* True if `path` is under `prefix` on a segment boundary. */
bool router_prefix_match(const char *prefix, size_t plen, const char *path, size_t len);

#endif
