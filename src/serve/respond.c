#include "serve/serve.h"

#include "config/config.h"
#include "http/request.h"
#include "http/respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void serve_respond(struct http_stream *s, const struct cfg_route *route)
{
    http_respond(s, route->status,
                 route->body_len || route->content_type ? route->content_type : NULL,
                 route->body ? route->body : "", route->body_len, NULL, 0);
}

void serve_redirect(struct http_stream *s, const struct cfg_route *route)
{
    const struct http_request *r = &s->req;
    char location[8192];
    size_t n = (size_t)snprintf(location, sizeof(location), "%s", route->location);
    if (route->append_path && n < sizeof(location)) {
        /* Where the router found the prefix's end (route "/": 0, the whole path). */
        size_t skip = s->path_rest <= r->path.len ? s->path_rest : r->path.len;
        const char *rest = r->path.p + skip;
        size_t rest_len = r->path.len - skip;
        if (n && location[n - 1] == '/' && rest_len && rest[0] == '/') {
            rest++;
            rest_len--;
        } else if (rest_len && rest[0] != '/' && !(n && location[n - 1] == '/') &&
                   n + 1 < sizeof(location)) {
            location[n++] = '/'; /* the rest starts with an encoded slash */
        }
        n += (size_t)snprintf(location + n, sizeof(location) - n, "%.*s", (int)rest_len, rest);
        if (r->query.p && n < sizeof(location))
            n += (size_t)snprintf(location + n, sizeof(location) - n, "?%.*s", (int)r->query.len,
                                  r->query.p);
    }
    if (n >= sizeof(location)) {
        http_respond_text(s, 414, NULL);
        return;
    }
    struct http_field loc = {"Location", location, 8, (uint32_t)n};
    char body[64];
    int blen = snprintf(body, sizeof(body), "%d %s\n", route->status, http_reason(route->status));
    http_respond(s, route->status, "text/plain; charset=utf-8", body, (size_t)blen, &loc, 1);
}
