/* The `sites` list: the hosts each site answers for, and its routes with their actions. */
#include "config/config_walk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

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
 * segment boundaries anyway. '?' and '#' cannot occur in the path the router compares. */
static void conv_path(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_route *r = base;
    const char *s = cfg_text(ld, f->key, val, "a path");
    size_t len;

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
    for (len = val->len; len > 1 && s[len - 1] == '/';)
        len--;
    r->path = cfg_strdup(ld, s, len);
    r->path_len = len;
}

/* ---- routes ---- */

enum { R_PATH, R_PROXY, R_REDIRECT, R_RESPOND };

static const struct field route_fields[] = {
    [R_PATH] = {FIELD("path", conv_path, struct cfg_route, path, NULL), .flags = F_REQUIRED},
    [R_PROXY] = {FIELD("proxy", conv_proxy, struct cfg_route, upstream, NULL)},
    [R_REDIRECT] = {FIELD("redirect", conv_redirect, struct cfg_route, location, NULL)},
    [R_RESPOND] = {FIELD("respond", conv_respond, struct cfg_route, body, NULL)},
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

/* Exactly one action. Extra ones are reported where they are written, after the first. */
static void check_action(struct load *ld, const struct ynode *item, const struct ynode **vals,
                         struct cfg_route *r, const char *label)
{
    static const enum cfg_action actions[] = {
        [R_PROXY] = CFG_ACTION_PROXY,
        [R_REDIRECT] = CFG_ACTION_REDIRECT,
        [R_RESPOND] = CFG_ACTION_RESPOND,
    };
    int first = -1;

    for (int i = R_PROXY; i <= R_RESPOND; i++) {
        if (vals[i] && !vals[i]->is_null && (first < 0 || earlier(vals[i], vals[first])))
            first = i;
    }
    if (first < 0) {
        cfg_report(ld, item, "route %s needs one of 'proxy', 'redirect' or 'respond'", label);
        return;
    }
    r->action = actions[first];
    for (int i = R_PROXY; i <= R_RESPOND; i++) {
        if (i != first && vals[i] && !vals[i]->is_null)
            cfg_report(ld, vals[i], "route %s has both '%s' and '%s' (a route has one action)",
                       label, route_fields[first].key, route_fields[i].key);
    }
}

static void route(struct load *ld, const struct ynode *item, struct route_item *ri)
{
    const struct ynode *vals[CFG_MAX_FIELDS] = {NULL};
    const char *path = cfg_peek(item, "path");
    char label[80], where[100];

    if (path)
        snprintf(label, sizeof label, "'%.64s'", path);
    else
        snprintf(label, sizeof label, "#%zu", ri->idx + 1);
    snprintf(where, sizeof where, "in route %s", label);
    if (!cfg_want(ld, "each item of 'routes'", item, YNODE_MAP))
        return;
    cfg_match(ld, item, &route_table, vals, where);
    check_action(ld, item, vals, &ri->route, label);
    for (size_t i = 0; i < route_table.n; i++)
        cfg_apply(ld, &route_fields[i], vals[i], item, &ri->route, where);
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

static void conv_routes(struct load *ld, const struct field *f, const struct ynode *val, void *base)
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

/* ---- sites ---- */

/* One DNS label (RFC 1123): 1..63 letters, digits and '-', not starting or ending with '-'. */
static bool valid_label(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    }
    return true;
}

/* "*", or a DNS name, optionally after a leading "*." wildcard. */
static bool valid_host(const char *h)
{
    if (!strcmp(h, "*"))
        return true;
    if (!strncmp(h, "*.", 2))
        h += 2;
    if (strlen(h) > 253)
        return false;
    for (;;) {
        size_t n = strcspn(h, ".");
        if (!valid_label(h, n))
            return false;
        if (!h[n])
            return true;
        h += n + 1;
    }
}

static void conv_hosts(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_site *site = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(site->hosts = cfg_alloc(ld, list->nitems * sizeof *site->hosts)))
        return;
    site->nhosts = list->nitems;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        const char *s = cfg_text(ld, f->key, item, "a list of host names");
        char *h;

        if (!s || !(h = cfg_strdup(ld, s, item->len)))
            continue;
        for (char *p = h; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (!valid_host(h))
            cfg_report(ld, item,
                       "bad host name '%.64s' (expected a name like example.com, "
                       "*.example.com or *)",
                       s);
        site->hosts[i] = h;
    }
}

static const struct field site_fields[] = {
    {FIELD("name", cfg_conv_text, struct cfg_site, name, NULL), .flags = F_NOSPACE},
    {FIELD("hosts", conv_hosts, struct cfg_site, hosts, NULL), .flags = F_REQUIRED},
    {FIELD("routes", conv_routes, struct cfg_site, routes, NULL), .flags = F_REQUIRED},
};
static const struct fields site_table = FIELDS(site_fields);

static void site(struct load *ld, const struct ynode *item, struct cfg_site *s, size_t i)
{
    const struct ynode *hosts = cfg_get(item, "hosts");
    const char *label = cfg_peek(item, "name");
    char where[100];

    if (!label && hosts && hosts->kind == YNODE_LIST && hosts->nitems &&
        hosts->items[0]->kind == YNODE_SCALAR)
        label = hosts->items[0]->text;
    if (label)
        snprintf(where, sizeof where, "in site '%.64s'", label);
    else
        snprintf(where, sizeof where, "in site #%zu", i + 1);
    if (!cfg_want(ld, "each item of 'sites'", item, YNODE_MAP))
        return;
    cfg_walk(ld, item, item, &site_table, s, where);
    for (size_t j = 0; !s->name && j < s->nhosts; j++)
        s->name = s->hosts[j];
}

/* A host in two sites would make the choice of site depend on their order: refused. */
static void check_hosts(struct load *ld, const struct config *c, const struct ynode *list)
{
    struct cfg_key *keys;
    size_t total = 0, n = 0, *site_of;

    for (size_t i = 0; i < c->nsites; i++)
        total += c->sites[i].nhosts;
    keys = cfg_scratch(ld, total * sizeof *keys);
    site_of = cfg_scratch(ld, total * sizeof *site_of);
    if (!keys || !site_of)
        return;
    for (size_t i = 0; i < c->nsites; i++) {
        const struct ynode *hosts = cfg_get(list->items[i], "hosts");
        for (size_t j = 0; j < c->sites[i].nhosts; j++) {
            const char *h = c->sites[i].hosts[j];
            if (!h)
                continue;
            site_of[n] = i;
            keys[n] = (struct cfg_key){h, strlen(h), n, hosts->items[j]};
            n++;
        }
    }
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "duplicate host '%.64s' (already in site '%.64s')",
                       (const char *)keys[i].data, c->sites[site_of[keys[i - 1].idx]].name);
    }
}

/* Names given explicitly must be unique; a name taken from the first host is unique already,
 * since hosts are. */
static void check_names(struct load *ld, const struct config *c, const struct ynode *list)
{
    struct cfg_key *keys = cfg_scratch(ld, c->nsites * sizeof *keys);
    size_t n = 0;

    if (!keys)
        return;
    for (size_t i = 0; i < c->nsites; i++) {
        const struct ynode *name = cfg_get(list->items[i], "name");
        if (name && !name->is_null && c->sites[i].name)
            keys[n++] = (struct cfg_key){c->sites[i].name, strlen(c->sites[i].name), i, name};
    }
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "duplicate site name '%.64s'", (const char *)keys[i].data);
    }
}

void cfg_conv_sites(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct config *c = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(c->sites = cfg_alloc(ld, list->nitems * sizeof *c->sites)))
        return;
    c->nsites = list->nitems;
    for (size_t i = 0; i < list->nitems; i++)
        site(ld, list->items[i], &c->sites[i], i);
    check_hosts(ld, c, list);
    check_names(ld, c, list);
}
