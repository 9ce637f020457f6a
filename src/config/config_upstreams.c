/* The `upstreams` map: name -> servers and connection settings. */
#include "config/config_values.h"
#include "config/config_walk.h"
#include "net/tls_client.h"

#include <stdio.h>
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

/* A DNS name or an address: it goes into the ClientHello and is matched against certificates. */
static void conv_server_name(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base)
{
    const char *s = cfg_text(ld, f->key, val, "a host name");

    if (!s)
        return;
    if (!val->len || val->len > 253 || strlen(s) != val->len || !cfg_printable(s, false)) {
        cfg_report(ld, val, "'%s' must be a host name of 1 to 253 characters without spaces",
                   f->key);
        return;
    }
    *CFG_AT(base, f, char *) = cfg_strdup(ld, s, val->len);
}

/* The `tls` map fills the upstream itself: its fields are flat in struct cfg_upstream. */
static const struct field tls_fields[] = {
    {FIELD("ca", cfg_conv_path, struct cfg_upstream, tls_ca, NULL)},
    {FIELD("server_name", conv_server_name, struct cfg_upstream, tls_server_name, NULL)},
    {FIELD("cert", cfg_conv_path, struct cfg_upstream, tls_cert, NULL)},
    {FIELD("key", cfg_conv_path, struct cfg_upstream, tls_key, NULL)},
    {FIELD("verify", cfg_conv_bool, struct cfg_upstream, tls_verify, "true")},
};
static const struct fields tls_table = FIELDS(tls_fields);

/* Where to point at a fault tls_client_new found: the key naming the file, or `tls` itself. */
static const struct ynode *tls_fault_node(const struct ynode *val, int at)
{
    static const char *const keys[] = {
        [TLS_CLIENT_AT_CA] = "ca", [TLS_CLIENT_AT_CERT] = "cert", [TLS_CLIENT_AT_KEY] = "key"};
    const struct ynode *n = at != TLS_CLIENT_AT_OTHER ? cfg_get(val, keys[at]) : NULL;

    return n ? n : val;
}

static void build_tls_client(struct load *ld, const struct ynode *val, struct cfg_upstream *u)
{
    char err[600];
    int at;

    u->tls_client =
        tls_client_new(u->tls_ca, u->tls_cert, u->tls_key, u->tls_verify, err, sizeof err, &at);
    if (!u->tls_client)
        cfg_report(ld, tls_fault_node(val, at), "%s", err);
}

/* Turning verification off is allowed but never silent. Warnings are not problems (the load
 * succeeds), so they cannot go through cfg_report: they are printed at once, in its format. */
static void warn_no_verify(struct load *ld, const struct ynode *val, const struct cfg_upstream *u)
{
    const struct ynode *at = cfg_get(val, "verify");

    fprintf(stderr, "%s:%d:%d: warning: TLS verification of upstream '%.64s' is off\n", ld->name,
            at->line, at->col, u->name);
}

/* `tls: true` (all defaults), `tls: false` (plain), or a map of settings. */
static void conv_tls(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_upstream *u = base;
    size_t before = ld->nproblems;
    char where[100];

    snprintf(where, sizeof where, "in 'tls' of upstream '%.64s'", u->name ? u->name : "?");
    if (val->kind == YNODE_SCALAR) {
        struct field as_bool = *f;
        bool on = false;

        as_bool.offset = 0;
        cfg_conv_bool(ld, &as_bool, val, &on);
        if (!on)
            return;
        cfg_walk(ld, NULL, val, &tls_table, u, where);
    } else if (cfg_want(ld, "'tls' (true, false or a map)", val, YNODE_MAP)) {
        cfg_walk(ld, val, val, &tls_table, u, where);
    } else {
        return;
    }
    if (!u->tls_cert != !u->tls_key)
        cfg_report(ld, val, "'cert' and 'key' go together %s", where);
    /* Files are opened only for a well-formed map, as for listeners. */
    if (ld->nproblems != before || ld->oom)
        return;
    build_tls_client(ld, val, u);
    if (u->tls_client && !u->tls_verify)
        warn_no_verify(ld, val, u);
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
    {FIELD("tls", conv_tls, struct cfg_upstream, tls_client, NULL)},
    {FIELD("tunnel_idle_timeout", cfg_conv_duration, struct cfg_upstream, tunnel_idle_timeout,
           "1h"),
     .min = 1},
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
