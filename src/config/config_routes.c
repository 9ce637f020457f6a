/* The routes of a site: path prefixes, their actions, and the options of proxy routes. */
#include "config/config_values.h"
#include "config/config_walk.h"
#include "http/path.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- route actions ---- */

static const char *const redirect_statuses[] = {"301", "302", "303", "307", "308", NULL};

static const struct field redirect_fields[] = {
    {FIELD("to", cfg_conv_text, struct cfg_route, location, NULL), .flags = F_REQUIRED | F_NOSPACE},
    {FIELD("status", cfg_conv_choice, struct cfg_route, status, "302"), .names = redirect_statuses},
    {FIELD("append_path", cfg_conv_bool, struct cfg_route, append_path, "false")},
};
static const struct fields redirect_table = FIELDS(redirect_fields);

/* Any bytes at all: a body is sent as written, and has a length. */
static void conv_body(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_route *r = base;

    if (val->kind != YNODE_SCALAR) {
        cfg_report(ld, val, "'%s' must be a string, not a %s", f->key,
                   val->kind == YNODE_MAP ? "map" : "list");
        return;
    }
    r->body = cfg_strdup(ld, val->text, val->len);
    r->body_len = val->len;
}

static const struct field respond_fields[] = {
    {FIELD("status", cfg_conv_int, struct cfg_route, status, "200"), .min = 100, .max = 999},
    {FIELD("body", conv_body, struct cfg_route, body, "")},
    {FIELD("content_type", cfg_conv_text, struct cfg_route, content_type,
           "text/plain; charset=utf-8")},
};
static const struct fields respond_table = FIELDS(respond_fields);

static void conv_redirect(struct load *ld, const struct field *f, const struct ynode *val,
                          void *base)
{
    (void)f;
    if (cfg_want(ld, "'redirect'", val, YNODE_MAP))
        cfg_walk(ld, val, val, &redirect_table, base, "in 'redirect'");
}

/* HTTP forbids a body on 1xx, 204 and 304 responses (RFC 9110 6.4.1). */
static void conv_respond(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base)
{
    struct cfg_route *r = base;

    (void)f;
    if (!cfg_want(ld, "'respond'", val, YNODE_MAP))
        return;
    cfg_walk(ld, val, val, &respond_table, base, "in 'respond'");
    if (r->body_len && (r->status < 200 || r->status == 204 || r->status == 304))
        cfg_report(ld, val, "a %d response cannot have a body", r->status);
}

static void conv_proxy(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_route *r = base;
    const char *name = cfg_text(ld, f->key, val, "an upstream name");

    if (!name)
        return;
    r->upstream = cfg_find_upstream(ld, name);
    if (!r->upstream)
        cfg_report(ld, val, "undefined upstream '%.64s'", name);
}

/* Trailing slashes go so that "/app/" and "/app" are one prefix, which the router matches on
 * segment boundaries anyway. '?' and '#' cannot occur in the path the router compares. The
 * prefix is normalised as request paths are (http/path.h), so "/%61dmin" is /admin; ';', '\\',
 * "%2F" and "%5C" would never match, since the router reads them as parameters and separators. */
static void conv_path(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_route *r = base;
    const char *s = cfg_text(ld, f->key, val, "a path");
    size_t len;
    char *norm;

    if (!s)
        return;
    if (s[0] != '/') {
        cfg_report(ld, val, "route path '%.64s' must start with '/'", s);
        return;
    }
    if (!cfg_printable(s, false) || strpbrk(s, "?#")) {
        cfg_report(ld, val,
                   "route path '%.64s' must not contain spaces, control characters, '?' or '#'", s);
        return;
    }
    if (strpbrk(s, ";\\") || strcasestr(s, "%2F") || strcasestr(s, "%5C")) {
        cfg_report(ld, val,
                   "route path '%.64s' must not contain ';', '\\', '%%2F' or '%%5C' (the router "
                   "reads them as segment parameters and separators)",
                   s);
        return;
    }
    if (!(norm = cfg_scratch(ld, val->len + 1)))
        return;
    len = http_path_normalize(s, val->len, norm);
    while (len > 1 && norm[len - 1] == '/')
        len--;
    r->path = cfg_strdup(ld, norm, len);
    r->path_len = len;
}

/* ---- options of proxy routes ---- */

/* In the order of the CFG_FWD_* bits: name i is bit 1 << i. */
static const char *const forward_names[] = {"x-forwarded-for",  "x-forwarded-proto",
                                            "x-forwarded-host", "x-forwarded-port",
                                            "forwarded",        NULL};
_Static_assert(CFG_FWD_FOR == 1 && CFG_FWD_PROTO == 2 && CFG_FWD_HOST == 4 && CFG_FWD_PORT == 8 &&
                   CFG_FWD_FORWARDED == 16 && CFG_FWD_ALL == 31,
               "forward_names follows the CFG_FWD_* bits");

static unsigned forward_bit(const struct field *f, const char *name)
{
    for (unsigned i = 0; f->names[i]; i++) {
        if (!strcasecmp(name, f->names[i]))
            return 1u << i;
    }
    return 0;
}

/* A list of header names; [] sends none. `all`, the default, sends every one. */
static void conv_forward_headers(struct load *ld, const struct field *f, const struct ynode *val,
                                 void *base)
{
    unsigned *bits = CFG_AT(base, f, unsigned);

    if (val->kind == YNODE_SCALAR && !strcmp(val->text, "all")) {
        *bits = CFG_FWD_ALL;
        return;
    }
    if (!cfg_want(ld, "'forward_headers'", val, YNODE_LIST))
        return;
    *bits = 0;
    for (size_t i = 0; i < val->nitems; i++) {
        const struct ynode *item = val->items[i];
        const char *s = cfg_text(ld, f->key, item, "a list of header names");
        unsigned bit = s ? forward_bit(f, s) : 0;
        if (s && !bit)
            cfg_report(ld, item,
                       "unknown forwarding header '%.64s' (expected x-forwarded-for, "
                       "x-forwarded-proto, x-forwarded-host, x-forwarded-port or forwarded)",
                       s);
        *bits |= bit;
    }
}

static const char *const host_headers[] = {"client", "upstream", NULL};
_Static_assert(CFG_HOST_CLIENT == 0 && CFG_HOST_UPSTREAM == 1, "host_headers follows the enum");
_Static_assert(sizeof(enum cfg_host_header) == sizeof(int), "enum fields are stored as int");

/* A port after an origin's host: 1..65535 in digits. */
static bool origin_port(const char *p)
{
    uint64_t port;

    return cfg_parse_uint(p, 65535, &port) == 0 && port > 0;
}

/* host[:port], host being a DNS-like name, an IPv4 address or a bracketed IPv6 literal. */
static const char *origin_authority(const char *a)
{
    char v6[INET6_ADDRSTRLEN];
    struct in6_addr in6;
    const char *colon;
    size_t n;

    if (*a == '[') {
        const char *close = strchr(a, ']');
        n = close ? (size_t)(close - a - 1) : 0;
        if (!close || n >= sizeof v6)
            return "bad IPv6 address";
        memcpy(v6, a + 1, n);
        v6[n] = '\0';
        if (inet_pton(AF_INET6, v6, &in6) != 1)
            return "bad IPv6 address";
        if (close[1] && (close[1] != ':' || !origin_port(close + 2)))
            return "bad port";
        return NULL;
    }
    colon = strchr(a, ':');
    n = colon ? (size_t)(colon - a) : strlen(a);
    if (n == 0 || n > 253 || strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789-._") != n)
        return "bad host";
    if (colon && !origin_port(colon + 1))
        return "bad port";
    return NULL;
}

/* "http[s]://host[:port]", lowercased in place, one trailing '/' removed. */
static const char *origin(char *s, size_t *len)
{
    size_t skip;

    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (*len && s[*len - 1] == '/')
        s[--*len] = '\0';
    skip = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
    if (!skip)
        return "expected http://host[:port] or https://host[:port]";
    if (strpbrk(s + skip, "/?#"))
        return "an origin has no path: scheme://host[:port] only";
    if (strchr(s + skip, '@'))
        return "no user name allowed";
    return origin_authority(s + skip);
}

static void conv_rewrite_names(struct load *ld, const struct field *f, const struct ynode *val,
                               void *base)
{
    struct cfg_route *r = base;

    if (!cfg_want(ld, "'rewrite_names'", val, YNODE_LIST) ||
        !(r->rewrite_names = cfg_alloc(ld, val->nitems * sizeof *r->rewrite_names)))
        return;
    for (size_t i = 0; i < val->nitems; i++) {
        const struct ynode *item = val->items[i];
        const char *s = cfg_text(ld, f->key, item, "a list of origins");
        size_t len = item->len;
        char *o = s ? cfg_strdup(ld, s, len) : NULL;
        const char *why = o ? origin(o, &len) : NULL;
        if (why)
            cfg_report(ld, item, "bad origin '%.64s' (%s)", s, why);
        else if (o)
            r->rewrite_names[r->nrewrite_names++] = o;
    }
}

/* ---- routes ---- */

enum { R_PATH, R_PROXY, R_REDIRECT, R_RESPOND, R_FILES };

static const struct field route_fields[] = {
    [R_PATH] = {FIELD("path", conv_path, struct cfg_route, path, NULL), .flags = F_REQUIRED},
    [R_PROXY] = {FIELD("proxy", conv_proxy, struct cfg_route, upstream, NULL)},
    [R_REDIRECT] = {FIELD("redirect", conv_redirect, struct cfg_route, location, NULL)},
    [R_RESPOND] = {FIELD("respond", conv_respond, struct cfg_route, body, NULL)},
    [R_FILES] = {FIELD("files", cfg_conv_files, struct cfg_route, files, NULL)},
    {FIELD("strip_prefix", cfg_conv_bool, struct cfg_route, strip_prefix, "false"),
     .flags = F_PROXY},
    {FIELD("forward_headers", conv_forward_headers, struct cfg_route, forward_headers, "all"),
     .flags = F_PROXY, .names = forward_names},
    {FIELD("host_header", cfg_conv_enum, struct cfg_route, host_header, "client"), .flags = F_PROXY,
     .names = host_headers},
    {FIELD("rewrite_responses", cfg_conv_bool, struct cfg_route, rewrite_responses, "true"),
     .flags = F_PROXY},
    {FIELD("rewrite_names", conv_rewrite_names, struct cfg_route, rewrite_names, NULL),
     .flags = F_PROXY},
    {FIELD("max_body_size", cfg_conv_size64, struct cfg_route, max_body_size, "0")},
    {FIELD("compress", cfg_conv_compress, struct cfg_route, compress, NULL)},
    {FIELD("request_headers", cfg_conv_header_rules, struct cfg_route, request_headers, NULL),
     .flags = F_PROXY, .sub = &cfg_request_rules},
    {FIELD("response_headers", cfg_conv_header_rules, struct cfg_route, response_headers, NULL),
     .sub = &cfg_response_rules},
};
static const struct fields route_table = FIELDS(route_fields);

/* A route while its site is being built: where its path was written, and its position for a
 * stable sort. */
struct route_item {
    struct cfg_route route;
    const struct ynode *path_node;
    size_t idx;
};

static bool earlier(const struct ynode *a, const struct ynode *b)
{
    return a->line < b->line || (a->line == b->line && a->col < b->col);
}

/* Exactly one action, whose index in route_fields is returned (-1: none). Extra ones are
 * reported where they are written, after the first. */
static int check_action(struct load *ld, const struct ynode *item, const struct ynode **vals,
                        struct cfg_route *r, const char *label)
{
    static const enum cfg_action actions[] = {
        [R_PROXY] = CFG_ACTION_PROXY,
        [R_REDIRECT] = CFG_ACTION_REDIRECT,
        [R_RESPOND] = CFG_ACTION_RESPOND,
        [R_FILES] = CFG_ACTION_FILES,
    };
    int first = -1;

    for (int i = R_PROXY; i <= R_FILES; i++) {
        if (vals[i] && !vals[i]->is_null && (first < 0 || earlier(vals[i], vals[first])))
            first = i;
    }
    if (first < 0) {
        cfg_report(ld, item, "route %s needs one of 'proxy', 'redirect', 'respond' or 'files'",
                   label);
        return -1;
    }
    r->action = actions[first];
    for (int i = R_PROXY; i <= R_FILES; i++) {
        if (i != first && vals[i] && !vals[i]->is_null)
            cfg_report(ld, vals[i], "route %s has both '%s' and '%s' (a route has one action)",
                       label, route_fields[first].key, route_fields[i].key);
    }
    return first;
}

/* Options of proxy routes on another route are reported, and left at their defaults. */
static const struct ynode *proxy_only(struct load *ld, const struct field *f,
                                      const struct ynode *val, int action, const char *label)
{
    if (!(f->flags & F_PROXY) || !val || val->is_null || action < 0 || action == R_PROXY)
        return val;
    cfg_report(ld, val, "'%s' is for proxy routes only (route %s has '%s')", f->key, label,
               route_fields[action].key);
    return NULL;
}

static void route(struct load *ld, const struct ynode *item, struct route_item *ri)
{
    const struct ynode *vals[CFG_MAX_FIELDS] = {NULL};
    const char *path = cfg_peek(item, "path");
    char label[80], where[100];
    int action;

    if (path)
        snprintf(label, sizeof label, "'%.64s'", path);
    else
        snprintf(label, sizeof label, "#%zu", ri->idx + 1);
    snprintf(where, sizeof where, "in route %s", label);
    if (!cfg_want(ld, "each item of 'routes'", item, YNODE_MAP))
        return;
    cfg_match(ld, item, &route_table, vals, where);
    action = check_action(ld, item, vals, &ri->route, label);
    for (size_t i = 0; i < route_table.n; i++) {
        const struct field *f = &route_fields[i];
        cfg_apply(ld, f, proxy_only(ld, f, vals[i], action, label), item, &ri->route, where);
    }
    ri->path_node = vals[R_PATH];
}

static void check_paths(struct load *ld, const struct route_item *items, size_t n)
{
    struct cfg_key *keys = cfg_scratch(ld, n * sizeof *keys);
    size_t nkeys = 0;

    if (!keys)
        return;
    for (size_t i = 0; i < n; i++) {
        if (items[i].route.path)
            keys[nkeys++] = (struct cfg_key){items[i].route.path, items[i].route.path_len, i,
                                             items[i].path_node};
    }
    cfg_sort_keys(keys, nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "duplicate route path '%.64s'",
                       (const char *)keys[i].data);
    }
}

/* Longest prefix first, so the router can stop at the first match; ties keep file order. */
static int route_cmp(const void *a, const void *b)
{
    const struct route_item *x = a, *y = b;

    if (x->route.path_len != y->route.path_len)
        return x->route.path_len > y->route.path_len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void cfg_conv_routes(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_site *site = base;
    const struct ynode *list = cfg_list(ld, f->key, val);
    struct route_item *items;
    size_t n;

    if (!list)
        return;
    n = list->nitems;
    items = cfg_scratch(ld, n * sizeof *items);
    site->routes = cfg_alloc(ld, n * sizeof *site->routes);
    if (!items || !site->routes)
        return;
    for (size_t i = 0; i < n; i++) {
        items[i].idx = i;
        route(ld, list->items[i], &items[i]);
    }
    check_paths(ld, items, n);
    qsort(items, n, sizeof *items, route_cmp);
    for (size_t i = 0; i < n; i++)
        site->routes[i] = items[i].route;
    site->nroutes = n;
}
