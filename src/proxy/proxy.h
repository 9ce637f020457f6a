/* The `proxy` route action: forward the exchange to the route's upstream. */
#ifndef GH_PROXY_H
#define GH_PROXY_H

struct http_stream;
struct cfg_route;

void proxy_handle(struct http_stream *s, const struct cfg_route *route);
/* For the worker's free list of proxy states. */
#include <stddef.h>
size_t proxy_object_size(void);

#endif
