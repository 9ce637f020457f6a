/* The admin listener (config key `admin`): operational endpoints, never a site. GET /status
 * describes every upstream server of the stream's snapshot (health, ejection, load) as JSON. */
#ifndef GH_ADMIN_H
#define GH_ADMIN_H

struct http_stream;

/* Answer a request that arrived on the admin listener: GET (or HEAD) /status -> 200 JSON; any
 * other path -> 404; any other method -> 405 with Allow. */
void admin_handle(struct http_stream *s);

#endif
