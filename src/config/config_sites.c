/* The `sites` list: the hosts each site answers for, its routes (config_routes.c), the
 * default site, and the sites each listener serves. */
#include "config/config_walk.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* "[2001:DB8:0::1]" -> "[2001:db8::1]" (the router compares that form), or NULL when it is no
 * IPv6 address. Zone identifiers ("%eth0") have no meaning in a Host: refused. The canonical
 * form may be longer than what was written ("[::ffff:a00:1]" is "[::ffff:10.0.0.1]"). */
static char *canonical_ipv6(struct load *ld, const char *h)
{
    char text[INET6_ADDRSTRLEN], out[INET6_ADDRSTRLEN + 2];
    struct in6_addr a;
    size_t n = strlen(h);

    if (n < 3 || h[n - 1] != ']' || n - 2 >= sizeof text)
        return NULL;
    memcpy(text, h + 1, n - 2);
    text[n - 2] = '\0';
    if (inet_pton(AF_INET6, text, &a) != 1 || !inet_ntop(AF_INET6, &a, text, sizeof text))
        return NULL;
    n = (size_t)snprintf(out, sizeof out, "[%s]", text);
    return cfg_strdup(ld, out, n);
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
        if (h[0] == '[') {
            char *v6 = canonical_ipv6(ld, h);
            if (v6)
                h = v6;
            else
                cfg_report(ld, item, "bad IPv6 address '%.64s' (expected one like [2001:db8::1])",
                           s);
        } else if (!valid_host(h))
            cfg_report(ld, item,
                       "bad host name '%.64s' (expected a name like example.com, "
                       "*.example.com or *)",
                       s);
        site->hosts[i] = h;
    }
}

/* The admin listener answers IP literals and these names only (DNS rebinding: a page whose
 * own name has been pointed at us sends that name as Host). */
void cfg_conv_admin_hosts(struct load *ld, const struct field *f, const struct ynode *val,
                          void *base)
{
    struct cfg_listener *l = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(l->admin_hosts = cfg_alloc(ld, list->nitems * sizeof *l->admin_hosts)))
        return;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        const char *s = cfg_text(ld, f->key, item, "a list of host names");
        char *h;

        if (!s || !(h = cfg_strdup(ld, s, item->len)))
            continue;
        for (char *p = h; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (strchr(h, '*') || !valid_host(h))
            cfg_report(ld, item,
                       "bad host name '%.64s' in 'admin' (expected a name like "
                       "status.example.com; IP addresses need not be listed)",
                       s);
        else
            l->admin_hosts[l->nadmin_hosts++] = h;
    }
}

static const struct field site_fields[] = {
    {FIELD("name", cfg_conv_text, struct cfg_site, name, NULL), .flags = F_NOSPACE},
    {FIELD("hosts", conv_hosts, struct cfg_site, hosts, NULL), .flags = F_REQUIRED},
    {FIELD("routes", cfg_conv_routes, struct cfg_site, routes, NULL), .flags = F_REQUIRED},
    {FIELD("default", cfg_conv_bool, struct cfg_site, is_default, "false")},
    {FIELD("response_headers", cfg_conv_header_rules, struct cfg_site, response_headers, NULL),
     .sub = &cfg_response_rules},
    {FIELD("hsts", cfg_conv_text, struct cfg_site, hsts, NULL)},
    {FIELD("case_insensitive_paths", cfg_conv_bool, struct cfg_site, case_insensitive_paths,
           "false")},
    {FIELD("compress", cfg_conv_compress, struct cfg_site, compress, NULL)},
};
static const struct fields site_table = FIELDS(site_fields);

/* With case_insensitive_paths, "/Admin" and "/admin" would be one prefix served two ways. Routes
 * are sorted by length, so equal ones are neighbours within a run of one length. */
static void check_paths_nocase(struct load *ld, const struct ynode *at, const struct cfg_site *s)
{
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct cfg_route *a = &s->routes[i];
        for (size_t j = i + 1; j < s->nroutes && s->routes[j].path_len == a->path_len; j++) {
            const struct cfg_route *b = &s->routes[j];
            if (a->path && b->path && !strncasecmp(a->path, b->path, a->path_len) &&
                strcmp(a->path, b->path))
                cfg_report(ld, at,
                           "routes '%.64s' and '%.64s' are one path with case_insensitive_paths",
                           a->path, b->path);
        }
    }
}

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
    if (s->case_insensitive_paths)
        check_paths_nocase(ld, cfg_get(item, "case_insensitive_paths"), s);
    for (size_t j = 0; !s->name && j < s->nhosts; j++)
        s->name = s->hosts[j];
    if (s->hsts && strncasecmp(s->hsts, "max-age=", 8) != 0)
        cfg_report(ld, cfg_get(item, "hsts"),
                   "'hsts' must be a Strict-Transport-Security value starting with max-age=, "
                   "e.g. \"max-age=31536000; includeSubDomains\"");
}

/* A host in two sites of one listener would make the choice of site depend on their order:
 * refused. `sites` are those the listener serves. */
static void check_hosts(struct load *ld, const struct config *c, struct cfg_site *const *sites,
                        size_t nsites)
{
    struct cfg_key *keys;
    size_t total = 0, n = 0;

    for (size_t i = 0; i < nsites; i++)
        total += sites[i]->nhosts;
    keys = cfg_scratch(ld, total * sizeof *keys);
    if (!keys)
        return;
    for (size_t i = 0; i < nsites; i++) {
        size_t at = (size_t)(sites[i] - c->sites);
        const struct ynode *hosts = cfg_get(ld->sites_list->items[at], "hosts");
        for (size_t j = 0; j < sites[i]->nhosts; j++) {
            const char *h = sites[i]->hosts[j];
            if (h)
                keys[n++] = (struct cfg_key){h, strlen(h), at, hosts->items[j]};
        }
    }
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "duplicate host '%.64s' (already in site '%.64s')",
                       (const char *)keys[i].data, c->sites[keys[i - 1].idx].name);
    }
}

/* The same host may be served by different sites on different listeners (an internal and a
 * public listener serving app.example.com from different upstreams), never by two sites of
 * one listener. A listener without a `sites` list serves them all. */
void cfg_check_listener_hosts(struct load *ld)
{
    const struct config *c = ld->cfg;
    struct cfg_site **all;
    bool all_checked = false;

    if (!ld->sites_list || !c->sites || !(all = cfg_scratch(ld, c->nsites * sizeof *all)))
        return;
    for (size_t i = 0; i < c->nsites; i++)
        all[i] = &c->sites[i];
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct cfg_listener *l = &c->listeners[i];
        if (l->admin || (!l->nsites && all_checked))
            continue;
        all_checked |= !l->nsites;
        check_hosts(ld, c, l->nsites ? l->sites : all, l->nsites ? l->nsites : c->nsites);
    }
    if (!c->nlisteners)
        check_hosts(ld, c, all, c->nsites);
}

/* Where the host that gave a site its name was written. */
static const struct ynode *host_node(const struct cfg_site *s, const struct ynode *hosts)
{
    for (size_t j = 0; j < s->nhosts; j++) {
        if (s->hosts[j] == s->name)
            return hosts->items[j];
    }
    return hosts;
}

/* Names are unique, whether given or taken from the first host: listeners name sites. A name
 * from a first host is reported at that host. */
static void check_names(struct load *ld, const struct config *c, const struct ynode *list)
{
    struct cfg_key *keys = cfg_scratch(ld, c->nsites * sizeof *keys);
    size_t n = 0;

    if (!keys)
        return;
    for (size_t i = 0; i < c->nsites; i++) {
        const struct cfg_site *s = &c->sites[i];
        const struct ynode *name = cfg_get(list->items[i], "name");
        if (!s->name)
            continue;
        if (!name || name->is_null)
            name = host_node(s, cfg_get(list->items[i], "hosts"));
        keys[n++] = (struct cfg_key){s->name, strlen(s->name), i, name};
    }
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "duplicate site name '%.64s'", (const char *)keys[i].data);
    }
    ld->sites_by_name = keys;
    ld->nsites_by_name = n;
}

/* One default site at most: it answers the hosts no site lists. */
static void check_default(struct load *ld, const struct config *c, const struct ynode *list)
{
    const struct ynode *first = NULL;
    size_t first_site = 0;

    for (size_t i = 0; i < c->nsites; i++) {
        const struct ynode *node = cfg_get(list->items[i], "default");
        if (!c->sites[i].is_default)
            continue;
        if (!first) {
            first = node;
            first_site = i;
            continue;
        }
        cfg_report(ld, node, "only one site can be the default, and site '%.64s' is (line %d)",
                   c->sites[first_site].name ? c->sites[first_site].name : "?", first->line);
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
    ld->sites_list = list; /* hosts are checked per listener (cfg_check_listener_hosts) */
    check_names(ld, c, list);
    check_default(ld, c, list);
}

/* ---- the sites of a listener ---- */

static struct cfg_site *find_site(struct load *ld, const char *name)
{
    const struct cfg_key *k = cfg_find_key(ld->sites_by_name, ld->nsites_by_name, name);

    return k ? &ld->cfg->sites[k->idx] : NULL;
}

/* Each name once, reported at its second mention. */
static void check_listed_once(struct load *ld, const struct ynode *list)
{
    struct cfg_key *keys = cfg_scratch(ld, list->nitems * sizeof *keys);
    size_t n = 0;

    if (!keys)
        return;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        if (item->kind == YNODE_SCALAR)
            keys[n++] = (struct cfg_key){item->text, item->len, i, item};
    }
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "site '%.64s' is listed twice", keys[i].node->text);
    }
}

static bool listed(const struct cfg_listener *l, const struct cfg_site *s)
{
    for (size_t i = 0; i < l->nsites; i++) {
        if (l->sites[i] == s)
            return true;
    }
    return false;
}

/* Sites are converted before listeners, so that names can be looked up here. When `sites`
 * itself is broken, that is reported, and names are not looked up in it. */
void cfg_conv_listener_sites(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base)
{
    struct cfg_listener *l = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(l->sites = cfg_alloc(ld, list->nitems * sizeof *l->sites)))
        return;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        const char *name = cfg_text(ld, f->key, item, "a list of site names");
        struct cfg_site *s = name ? find_site(ld, name) : NULL;
        if (s) {
            if (!listed(l, s)) /* twice is reported by check_listed_once */
                l->sites[l->nsites++] = s;
        } else if (name && ld->cfg->sites) {
            cfg_report(ld, item, "unknown site '%.64s'", name);
        }
    }
    check_listed_once(ld, list);
}
