/* Forwarding headers: what the upstream learns about the client (X-Forwarded-For, -Proto,
 * -Host, -Port, -Prefix and RFC 7239 Forwarded). Values that arrive from a peer outside
 * trusted_proxies are never passed on, so a client cannot forge its address. */
#ifndef GH_FORWARD_H
#define GH_FORWARD_H

#include <stdbool.h>
#include <stddef.h>

struct http_stream;
struct cfg_route;

/* Emits one field; returns 0, or -1 when it does not fit. */
typedef int (*forward_put_fn)(void *ctx, const char *name, size_t nlen, const char *value,
                              size_t vlen);

/* Whether the client's field `name` must not be copied to the upstream because it is a
 * forwarding header we replace (or drop, the peer being untrusted). */
bool forward_drops(const char *name, size_t len, bool trusted, const struct cfg_route *route);

/* Emit the route's forwarding headers for stream `s`, extending the incoming values when the
 * peer is trusted. Returns 0 or -1. */
int forward_emit(const struct http_stream *s, const struct cfg_route *route, bool trusted,
                 forward_put_fn put, void *ctx);

/* The client's address as Gatehouse forwards it, for balance: hash by client_ip. From a peer
 * in trusted_proxies: the rightmost X-Forwarded-For entry that is not itself a trusted proxy
 * (its port and brackets left out), as the entries to its right were appended by proxies we
 * trust and those to its left are the client's own claims; the leftmost entry when every one
 * is trusted. Otherwise, or without X-Forwarded-For: the peer's address. The text stays valid
 * while the request does. */
void forward_client(const struct http_stream *s, bool trusted, const char **addr, size_t *len);

#endif
