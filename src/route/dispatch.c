/* From a parsed request to the handler of its route: method and Host checks, site and route
 * choice, per-route body limit, and the response header rules every answer goes through. */
#include "config/config.h"
#include "http/path.h"
#include "http/request.h"
#include "http/respond.h"
#include "proxy/proxy.h"
#include "route/dispatch.h"
#include "route/router.h"
#include "route/target.h"
#include "serve/admin.h"
#include "serve/files.h"
#include "serve/serve.h"
#include "core/worker.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static bool method_is(const struct http_request *r, const char *m)
{
    size_t len = strlen(m);
    return r->method.len == len && memcmp(r->method.p, m, len) == 0;
}

/* The port of the first TLS listener as bound (a configured port 0 is resolved by the worker). */
static unsigned https_port(const struct http_stream *s)
{
    const struct config *c = s->config;
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (!c->listeners[i].tls)
            continue;
        return worker_listener_port(s->worker, c, (int)i);
    }
    return 443;
}

/* The host part of an authority: without its port; an IPv6 literal ends at its ']'. */
static size_t host_without_port(const char *h, size_t len)
{
    const char *end = len && h[0] == '[' ? memchr(h, ']', len) : NULL;
    if (end)
        return (size_t)(end - h) + 1;
    const char *colon = memchr(h, ':', len);
    return colon ? (size_t)(colon - h) : len;
}

long https_redirect_location(char *out, size_t outlen, const char *host, size_t host_len,
                             unsigned port, const char *path, size_t path_len, const char *query,
                             size_t query_len)
{
    char portpart[16] = "";
    if (port != 443)
        snprintf(portpart, sizeof(portpart), ":%u", port);
    size_t hlen = host_without_port(host, host_len);
    if (hlen > 4096 || path_len > 65536 || query_len > 65536)
        return -1; /* and never beyond int for %.*s */
    int n = snprintf(out, outlen, "https://%.*s%s%.*s%s%.*s", (int)hlen, host, portpart,
                     (int)path_len, path, query ? "?" : "", (int)query_len, query ? query : "");
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

/* redirect_to_https: 308 keeps the method and body; the path and query go along as sent. */
static void redirect_to_https(struct http_stream *s)
{
    const struct http_request *r = &s->req;
    char location[8500];
    long n =
        https_redirect_location(location, sizeof(location), r->authority.p, r->authority.len,
                                https_port(s), r->path.p, r->path.len, r->query.p, r->query.len);
    if (n < 0) {
        http_respond_text(s, 414, NULL);
        return;
    }
    struct http_field loc = {"Location", location, 8, (uint32_t)n};
    http_respond(s, 308, "text/plain; charset=utf-8", "308 Permanent Redirect\n", 23, &loc, 1);
}

static void refuse(struct http_stream *s, int status, const char *why)
{
    log_msg(&s->worker->srv->log, LOG_INFO, "client %s: %d: %s", s->peer, status, why);
    /* A client that sent a target or Host we cannot read may not frame what follows the way
     * we would either: nothing more is read from it (RFC 9112 section 3.2 lets us close). */
    if (status == 400)
        s->close_after = true;
    http_respond_text(s, status, NULL);
}

void handler_dispatch(struct http_stream *s)
{
    const struct http_request *r = &s->req;
    if (method_is(r, "CONNECT") || method_is(r, "TRACE")) {
        /* Not a forward proxy; TRACE would echo credentials back (cross-site tracing). */
        refuse(s, 405, "method not allowed");
        return;
    }
    if (r->path.len == 0 || r->path.p[0] != '/') {
        bool options = method_is(r, "OPTIONS") && r->path.len == 1 && r->path.p[0] == '*';
        if (options)
            http_respond_text(s, 200, ""); /* "OPTIONS *" asks about the server itself */
        else
            refuse(s, 400, "request target is not a path");
        return;
    }
    if (!http_path_pct_valid(r->path.p, r->path.len)) {
        refuse(s, 400, "malformed percent-encoding in the path");
        return;
    }
    if (router_path_ambiguous(r->path.p, r->path.len)) {
        refuse(s, 400, "dot segment hidden by ';' or %2F in the path");
        return;
    }
    /* An absolute-form target must name a host (RFC 9110 section 4.2.1: "http:///x" is
     * invalid); a Host field, when present, must be a valid host[:port]. */
    if ((r->authority.len || r->authority_in_target) &&
        !target_host_valid(r->authority.p, r->authority.len)) {
        refuse(s, 400, "invalid Host");
        return;
    }
    const struct config *c = s->config;
    const struct cfg_listener *l =
        s->listener >= 0 && (size_t)s->listener < c->nlisteners ? &c->listeners[s->listener] : NULL;
    if (l && l->admin) {
        admin_handle(s); /* no site is ever routed on the admin listener */
        return;
    }
    if (l && l->redirect_to_https && !s->secure && r->authority.len) {
        redirect_to_https(s);
        return;
    }
    s->site = router_site(c, l, r->authority.p, r->authority.len);
    if (!s->site) {
        refuse(s, 400, "no site for this Host");
        return;
    }
    if (s->sni) {
        /* A connection set up for one site must not be used for another (RFC 9110 section
         * 15.5.20): the certificate was chosen for the SNI name, not for this Host. */
        const struct cfg_site *by_sni = router_site(c, l, s->sni, strlen(s->sni));
        if (by_sni && !by_sni->is_default && by_sni != s->site) {
            refuse(s, 421, "Host does not match the TLS server name");
            return;
        }
    }
    s->route = router_route(s->site, r->path.p, r->path.len, &s->path_rest);
    if (!s->route) {
        http_respond_text(s, 404, NULL);
        return;
    }
    if (s->route->max_body_size)
        s->max_body = s->route->max_body_size;
    if (s->max_body && r->content_length > 0 && (uint64_t)r->content_length > s->max_body) {
        /* Answered before any body byte is read, and instead of 100 Continue. */
        refuse(s, 413, "Content-Length larger than max_body_size");
        return;
    }
    switch (s->route->action) {
    case CFG_ACTION_PROXY:
        proxy_handle(s, s->route);
        break;
    case CFG_ACTION_REDIRECT:
        serve_redirect(s, s->route);
        break;
    case CFG_ACTION_RESPOND:
        serve_respond(s, s->route);
        break;
    case CFG_ACTION_FILES:
        files_handle(s, s->route);
        break;
    }
}
