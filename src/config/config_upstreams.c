/* The `upstreams` map: name -> servers and connection settings. */
#include "config/config_values.h"
#include "config/config_walk.h"

#include <string.h>

static void conv_servers(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base)
{
    struct cfg_upstream *u = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(u->servers = cfg_alloc(ld, list->nitems * sizeof *u->servers)))
        return;
    u->nservers = list->nitems;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        struct cfg_addr *a = &u->servers[i];

        if (cfg_addr(ld, f->key, item, a) && cfg_addr_port(&a->sa) == 0)
            cfg_report(ld, item, "bad address '%.64s' (an upstream server needs a port)", a->text);
    }
}

static const struct field upstream_fields[] = {
    {FIELD("servers", conv_servers, struct cfg_upstream, servers, NULL), .flags = F_REQUIRED},
    {FIELD("connect_timeout", cfg_conv_duration, struct cfg_upstream, connect_timeout, "5s"),
     .min = 1},
    {FIELD("read_timeout", cfg_conv_duration, struct cfg_upstream, read_timeout, "60s"), .min = 1},
    {FIELD("send_timeout", cfg_conv_duration, struct cfg_upstream, send_timeout, "60s"), .min = 1},
    {FIELD("keepalive", cfg_conv_u32, struct cfg_upstream, keepalive, "32"), .max = 10000},
    {FIELD("keepalive_timeout", cfg_conv_duration, struct cfg_upstream, keepalive_timeout, "30s")},
    {FIELD("keepalive_requests", cfg_conv_u32, struct cfg_upstream, keepalive_requests, "1000"),
     .min = 1},
    {FIELD("secret_header", cfg_conv_secret_header, struct cfg_upstream, secret_name, NULL)},
};
static const struct fields upstream_table = FIELDS(upstream_fields);

/* Names appear in logs and in `proxy:`, so they are printable words without spaces. */
static const char *upstream_name(struct load *ld, const struct ynode *key)
{
    if (key->kind != YNODE_SCALAR) {
        cfg_report(ld, key, "an upstream name must be a string, not a %s",
                   key->kind == YNODE_MAP ? "map" : "list");
        return NULL;
    }
    if (!key->len || strlen(key->text) != key->len || !cfg_printable(key->text, false)) {
        cfg_report(ld, key, "bad upstream name '%.64s' (expected a name without spaces)",
                   key->text);
        return NULL;
    }
    return key->text;
}

static void upstream(struct load *ld, const struct ynode *key, const struct ynode *val,
                     struct cfg_upstream *u)
{
    const char *name = upstream_name(ld, key);
    char what[100], where[100];

    if (!name)
        return;
    u->name = cfg_strdup(ld, name, key->len);
    snprintf(what, sizeof what, "upstream '%.64s'", name);
    snprintf(where, sizeof where, "in upstream '%.64s'", name);
    if (val->is_null) /* `shop:` with nothing under it: report what is missing */
        cfg_walk(ld, NULL, key, &upstream_table, u, where);
    else if (cfg_want(ld, what, val, YNODE_MAP))
        cfg_walk(ld, val, val, &upstream_table, u, where);
}

void cfg_conv_upstreams(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct config *c = base;
    size_t n = val->nitems / 2;
    struct cfg_key *keys;

    (void)f;
    if (!cfg_want(ld, "'upstreams'", val, YNODE_MAP) || n == 0)
        return;
    c->upstreams = cfg_alloc(ld, n * sizeof *c->upstreams);
    keys = cfg_scratch(ld, n * sizeof *keys);
    if (!c->upstreams || !keys)
        return;
    c->nupstreams = n;
    for (size_t i = 0; i < n; i++) {
        struct cfg_upstream *u = &c->upstreams[i];
        u->index = i;
        upstream(ld, val->items[2 * i], val->items[2 * i + 1], u);
        keys[i] = (struct cfg_key){u->name ? u->name : "", u->name ? strlen(u->name) : 0, i,
                                   val->items[2 * i]};
    }
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].len && cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "duplicate upstream name '%.64s'",
                       (const char *)keys[i].data);
    }
    ld->upstreams_by_name = keys;
    ld->nupstreams_by_name = n;
}

struct cfg_upstream *cfg_find_upstream(struct load *ld, const char *name)
{
    const struct cfg_key *k = cfg_find_key(ld->upstreams_by_name, ld->nupstreams_by_name, name);

    return k && k->len ? &ld->cfg->upstreams[k->idx] : NULL;
}
