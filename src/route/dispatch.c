/* From a parsed request to the handler of its route. */
#include "config/config.h"
#include "http/handler.h"
#include "http/request.h"
#include "proxy/proxy.h"
#include "route/router.h"
#include "serve/serve.h"

#include <string.h>

void handler_dispatch(struct http_stream *s)
{
    const struct http_request *r = &s->req;
    if (r->method.len == 7 && memcmp(r->method.p, "CONNECT", 7) == 0) {
        http_respond_text(s, 501, NULL); /* we are not a forward proxy */
        return;
    }
    if (r->path.len == 0 || r->path.p[0] != '/') {
        /* "OPTIONS *" asks about the server itself. */
        bool options = r->method.len == 7 && memcmp(r->method.p, "OPTIONS", 7) == 0;
        http_respond_text(s, options && r->path.len == 1 && r->path.p[0] == '*' ? 200 : 400,
                          options ? "" : NULL);
        return;
    }
    const struct cfg_site *site = router_site(s->config, r->authority.p, r->authority.len);
    const struct cfg_route *route = site ? router_route(site, r->path.p, r->path.len) : NULL;
    if (!route) {
        http_respond_text(s, 404, NULL);
        return;
    }
    switch (route->action) {
    case CFG_ACTION_PROXY:
        proxy_handle(s, route);
        break;
    case CFG_ACTION_REDIRECT:
        serve_redirect(s, route);
        break;
    case CFG_ACTION_RESPOND:
        serve_respond(s, route);
        break;
    }
}
