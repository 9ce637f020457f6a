/* The `respond` and `redirect` route actions: answers Gatehouse gives on its own. */
#ifndef GH_SERVE_H
#define GH_SERVE_H

struct http_stream;
struct cfg_route;

void serve_respond(struct http_stream *s, const struct cfg_route *route);
void serve_redirect(struct http_stream *s, const struct cfg_route *route);

#endif
