/* The admin listener (config key `admin`): operational endpoints, never a site. GET /status
 * describes every upstream server of the stream's snapshot (health, ejection, load) as JSON. */
#ifndef GH_ADMIN_H
#define GH_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct http_stream;

/* Answer a request that arrived on the admin listener: a Host that is neither an IP literal nor
 * one of admin.hosts -> 421; GET (or HEAD) /status -> 200 JSON; any other path -> 404; any other
 * method -> 405 with Allow. */
void admin_handle(struct http_stream *s);

/* Whether the admin listener `l` answers a request for `authority` (Host, port allowed): an
 * IPv4 address, a bracketed IPv6 address, or a name in l's admin.hosts (any case). */
struct cfg_listener;
bool admin_host_allowed(const struct cfg_listener *l, const char *authority, size_t len);

#endif
