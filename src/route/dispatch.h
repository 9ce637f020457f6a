/* The dispatcher (dispatch.c): the request handler main installs as worker_hooks.dispatch, and
 * pieces of it that stand alone, for whoever needs them and for the unit tests. */
#ifndef GH_ROUTE_DISPATCH_H
#define GH_ROUTE_DISPATCH_H

#include <stddef.h>

struct http_stream;

/* Route `s` and start its handler. The handler owns the exchange until it calls send_end or
 * abort, or until the codec calls on_close. The codecs reach it through http_dispatch
 * (http/http_conn.h), never directly. */
void handler_dispatch(struct http_stream *s);

/* The Location of a redirect_to_https answer, written into out (NUL-terminated):
 * "https://" host, ":port" unless port is 443 (the default an https URL implies), the path, and
 * "?" query when the request had one (query non-NULL, possibly empty). host is the request's
 * authority (Host or absolute-form target, already validated): its port, the plain listener's,
 * is dropped, an IPv6 literal keeps its brackets. Returns the length written, or -1 when it
 * does not fit in outlen (the caller answers 414). */
long https_redirect_location(char *out, size_t outlen, const char *host, size_t host_len,
                             unsigned port, const char *path, size_t path_len, const char *query,
                             size_t query_len);

#endif
