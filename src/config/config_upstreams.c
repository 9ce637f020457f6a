/* The `upstreams` map: name -> servers and connection settings. */
#include "config/config_values.h"
#include "config/config_walk.h"
#include "config/resolve.h"
#include "net/tls_client.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

static const struct field server_fields[] = {
    {FIELD("address", cfg_conv_text, struct cfg_server_policy, weight, NULL), .flags = F_REQUIRED},
    {FIELD("weight", cfg_conv_u32, struct cfg_server_policy, weight, "1"), .min = 1, .max = 1000},
    {FIELD("max_conns", cfg_conv_u32, struct cfg_server_policy, max_conns, "0")},
    {FIELD("backup", cfg_conv_bool, struct cfg_server_policy, backup, "false")},
    {FIELD("drain", cfg_conv_bool, struct cfg_server_policy, drain, "false")},
};

/* A server is "host:port", or a map { address, weight, max_conns, backup }. Stores the policy
 * and returns the address node (NULL when the map has none). The address key is matched here
 * and converted by server_addrs; the table only checks the other keys. */
static const struct ynode *server_item(struct load *ld, const struct ynode *item,
                                       struct cfg_server_policy *pol)
{
    if (item->kind == YNODE_MAP) {
        static const struct fields rest = {server_fields + 1, 4};
        const struct ynode *vals[CFG_MAX_FIELDS] = {NULL};
        const struct fields all = FIELDS(server_fields);

        cfg_match(ld, item, &all, vals, "in a server");
        for (size_t i = 1; i < 5; i++)
            cfg_apply(ld, &rest.v[i - 1], vals[i], item, pol, "in a server");
        if (!vals[0])
            cfg_report(ld, item, "a server needs an 'address'");
        return vals[0];
    }
    pol->weight = 1;
    return item;
}

#define UNIX_PREFIX "unix:"
#define UNIX_PREFIX_LEN 5

/* A socket path that is not there (yet) is not a fault: the app may start after us, and the
 * server is down until it does (connects fail, health checks say so). Said once per load, in
 * cfg_report's format. */
static void warn_missing_socket(struct load *ld, const struct ynode *val, const char *upstream,
                                const char *path)
{
    struct stat st;

    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        return;
    fprintf(stderr,
            "%s:%d:%d: warning: upstream '%.64s': '%s' is %s: the server is down until "
            "it is\n",
            ld->name, val->line, val->col, upstream ? upstream : "?", path,
            stat(path, &st) == 0 ? "not a socket" : "missing");
}

/* "unix:/run/app.sock": an absolute path that fits sockaddr_un, as one AF_UNIX address. */
static bool unix_addr(struct load *ld, const struct ynode *val, const char *upstream, const char *s,
                      struct cfg_resolved *r)
{
    const char *path = s + UNIX_PREFIX_LEN;
    size_t len = strlen(path);
    struct sockaddr_un *un;

    if (path[0] != '/' || strlen(s) != val->len) {
        cfg_report(ld, val, "bad address '%.64s' (a Unix socket is 'unix:' and an absolute path)",
                   s);
        return false;
    }
    if (len >= sizeof un->sun_path) {
        cfg_report(ld, val, "bad address '%.64s...' (a Unix socket path has at most %zu bytes)", s,
                   sizeof un->sun_path - 1);
        return false;
    }
    if (!(r->sa = calloc(1, sizeof *r->sa))) {
        ld->oom = true;
        return false;
    }
    un = (struct sockaddr_un *)r->sa;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len + 1);
    r->n = 1;
    warn_missing_socket(ld, val, upstream, path);
    return true;
}

static bool is_unix(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_UNIX;
}

/* Resolves a server's address into *r: one address, or every address of a host name. */
static bool server_addrs(struct load *ld, const char *key, const char *upstream,
                         const struct ynode *val, struct cfg_resolved *r)
{
    const char *s = cfg_text(ld, key, val, "an address like 127.0.0.1:8080");
    char why[320];

    if (!s)
        return false;
    if (strncmp(s, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0)
        return unix_addr(ld, val, upstream, s, r);
    if (cfg_resolve_server(s, upstream, ld->opts, r, why, sizeof why)) {
        cfg_report(ld, val, "bad address '%.64s' (%s)", s, why);
        return false;
    }
    if (r->port == 0) {
        cfg_report(ld, val, "bad address '%.64s' (an upstream server needs a port)", s);
        free(r->sa);
        r->sa = NULL;
        return false;
    }
    return true;
}

/* One server: `text` names it in logs, /status and across reloads; `host` is the address as
 * written, for Host headers and TLS names. */
static void add_server(struct cfg_upstream *u, const struct sockaddr_storage *sa, char *text,
                       char *host, const struct cfg_server_policy *pol)
{
    struct cfg_addr *a = &u->servers[u->nservers];

    a->sa = *sa;
    if (is_unix(sa))
        a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                             strlen(((const struct sockaddr_un *)sa)->sun_path) + 1);
    else
        a->len =
            sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    a->text = text;
    a->host = host;
    u->policies[u->nservers++] = *pol;
}

/* A written server as one server per address: "app.internal:5000@10.0.0.5", ... */
static void add_named(struct load *ld, struct cfg_upstream *u, const struct cfg_resolved *r,
                      char *written, const struct cfg_server_policy *pol)
{
    struct cfg_server_name *nm = &u->names[u->nnames++];

    nm->name = cfg_strdup(ld, r->name, strlen(r->name));
    nm->written = written;
    nm->first = u->nservers;
    nm->n = r->n;
    for (size_t j = 0; j < r->n; j++) {
        char addr[80], text[400];
        int len;

        resolve_addrs_text(&r->sa[j], 1, addr, sizeof addr);
        len = snprintf(text, sizeof text, "%s@%s", written, addr);
        add_server(u, &r->sa[j], cfg_strdup(ld, text, (size_t)len), written, pol);
    }
}

static void fill_servers(struct load *ld, struct cfg_upstream *u, const struct ynode *list,
                         const struct ynode **addrs, const struct cfg_resolved *res,
                         const struct cfg_server_policy *pol, size_t total, size_t nnames)
{
    if (!(u->servers = cfg_alloc(ld, total * sizeof *u->servers)) ||
        !(u->policies = cfg_alloc(ld, total * sizeof *u->policies)) ||
        !(u->names = cfg_alloc(ld, nnames * sizeof *u->names)))
        return;
    for (size_t i = 0; i < list->nitems; i++) {
        char *written;

        /* A server without an address (reported) was never resolved: res[i] is zero. */
        if (!addrs[i] || !res[i].sa || !(written = cfg_strdup(ld, addrs[i]->text, addrs[i]->len)))
            continue;
        if (res[i].named)
            add_named(ld, u, &res[i], written, &pol[i]);
        else if (is_unix(&res[i].sa[0])) /* Host and TLS name: a socket has no host name */
            add_server(u, &res[i].sa[0], written, cfg_strdup(ld, "localhost", 9), &pol[i]);
        else
            add_server(u, &res[i].sa[0], written, written, &pol[i]);
    }
}

/* Each item is one server, or, for a host name, one per address of the name: the bound on
 * servers holds after that expansion. */
static void conv_servers(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base)
{
    struct cfg_upstream *u = base;
    const struct ynode *list = cfg_list(ld, f->key, val);
    const struct ynode **addrs;
    struct cfg_resolved *res;
    struct cfg_server_policy *pol;
    size_t primaries = 0, total = 0, nnames = 0;

    if (!list)
        return;
    if (list->nitems > CFG_MAX_SERVERS) {
        cfg_report(ld, val, "an upstream has at most %d servers", CFG_MAX_SERVERS);
        return;
    }
    addrs = cfg_scratch(ld, list->nitems * sizeof *addrs);
    res = cfg_scratch(ld, list->nitems * sizeof *res);
    pol = cfg_scratch(ld, list->nitems * sizeof *pol);
    if (!addrs || !res || !pol)
        return;
    for (size_t i = 0; i < list->nitems; i++) {
        addrs[i] = server_item(ld, list->items[i], &pol[i]);
        if (addrs[i] && server_addrs(ld, f->key, u->name, addrs[i], &res[i])) {
            total += res[i].n;
            nnames += res[i].named;
        }
        primaries += !pol[i].backup;
    }
    if (list->nitems && !primaries)
        cfg_report(ld, val, "every server is a backup: at least one must not be");
    if (total > CFG_MAX_SERVERS)
        cfg_report(ld, val,
                   "an upstream has at most %d servers, and with every address of its host "
                   "names these are %zu",
                   CFG_MAX_SERVERS, total);
    else
        fill_servers(ld, u, list, addrs, res, pol, total, nnames);
    for (size_t i = 0; i < list->nitems; i++)
        free(res[i].sa);
}

/* 0 (never looked up again) or at least a second: the lookups run on the main thread. */
static void conv_resolve_interval(struct load *ld, const struct field *f, const struct ynode *val,
                                  void *base)
{
    uint32_t *ms = CFG_AT(base, f, uint32_t);

    cfg_conv_duration(ld, f, val, base);
    if (*ms && *ms < 1000) {
        cfg_report(ld, val, "'%s' must be 0 (never) or at least 1s", f->key);
        *ms = 0;
    }
}

/* A header or cookie name: 1 to `max` RFC 9110 token characters. A name with a space, a colon
 * or a semicolon could never match what a client sends, so it is refused rather than ignored. */
static bool is_name_token(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
            return false;
    return true;
}

#define HASH_NAME_MAX 256

/* `word` alone or followed by spaces and a name: the name (maybe ""), else NULL. */
static const char *after_word(const char *s, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(s, word, n) != 0 || (s[n] != ' ' && s[n] != '\0'))
        return NULL;
    for (s += n; *s == ' '; s++)
        ;
    return s;
}

/* hash_key: client_ip | path | header NAME | cookie NAME */
static void conv_hash_key(struct load *ld, const struct field *f, const struct ynode *val,
                          void *base)
{
    struct cfg_upstream *u = base;
    const char *s = cfg_text(ld, f->key, val, "client_ip, path, 'header NAME' or 'cookie NAME'");
    const char *name = NULL;

    if (!s)
        return;
    if (strcmp(s, "client_ip") == 0)
        u->hash_by = CFG_HASH_CLIENT_IP;
    else if (strcmp(s, "path") == 0)
        u->hash_by = CFG_HASH_PATH;
    else if ((name = after_word(s, "header")))
        u->hash_by = CFG_HASH_HEADER;
    else if ((name = after_word(s, "cookie")))
        u->hash_by = CFG_HASH_COOKIE;
    else {
        cfg_report(
            ld, val,
            "'hash_key' must be client_ip, path, 'header NAME' or 'cookie NAME', not '%.64s'", s);
        return;
    }
    if (!name)
        return;
    const char *what = u->hash_by == CFG_HASH_HEADER ? "header" : "cookie";
    size_t len = strlen(name);
    if (!len) {
        cfg_report(ld, val, "'hash_key' needs a %s name after '%s' (like '%s %s')", what, what,
                   what, u->hash_by == CFG_HASH_HEADER ? "X-Tenant" : "session");
        return;
    }
    if (!is_name_token(name, len, HASH_NAME_MAX)) {
        cfg_report(ld, val,
                   "'hash_key': '%.64s' is not a %s name (1 to %d letters, digits or "
                   "!#$%%&'*+-.^_`|~)",
                   name, what, HASH_NAME_MAX);
        return;
    }
    u->hash_name = cfg_strdup(ld, name, len);
    u->hash_name_len = len;
    if (u->hash_by == CFG_HASH_HEADER)
        for (char *c = u->hash_name; c && *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
}

/* A percentage: "20%" or 20. */
static void conv_percent(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base)
{
    const char *s = cfg_text(ld, f->key, val, "a percentage like 20%");
    char *end;

    if (!s)
        return;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || (*end && strcmp(end, "%") != 0) || v > 100) {
        cfg_report(ld, val, "'%s' must be a percentage from 0%% to 100%%, not '%.32s'", f->key, s);
        return;
    }
    *CFG_AT(base, f, uint32_t) = (uint32_t)v;
}

/* One status of a range: the len bytes at s, decimal digits only (no sign, no spaces), 100-599.
 * Not sscanf("%u"), which skips spaces, takes a sign and wraps, so "4294967496" read as 200. */
static bool status_code(const char *s, size_t len, unsigned *out)
{
    char text[16];
    uint64_t v;

    if (len >= sizeof text)
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    if (cfg_parse_uint(text, 599, &v) || v < 100)
        return false;
    *out = (unsigned)v;
    return true;
}

/* status: "200-399", or one code "200". */
static void conv_status_range(struct load *ld, const struct field *f, const struct ynode *val,
                              void *base)
{
    struct cfg_health_check *hc = base;
    const char *s = cfg_text(ld, f->key, val, "a status or a range like 200-399");
    const char *dash;
    unsigned lo = 0, hi = 0;
    bool ok;

    if (!s)
        return;
    dash = strchr(s, '-');
    if (dash)
        ok =
            status_code(s, (size_t)(dash - s), &lo) && status_code(dash + 1, strlen(dash + 1), &hi);
    else if ((ok = status_code(s, strlen(s), &lo)))
        hi = lo;
    if (!ok || lo > hi) {
        cfg_report(ld, val, "'status' must be a status (100-599) or a range like 200-399");
        return;
    }
    hc->status_min = lo;
    hc->status_max = hi;
}

static const char *const check_types[] = {"http", "tcp", NULL};

static const struct field health_fields[] = {
    {FIELD("type", cfg_conv_enum, struct cfg_health_check, type, "http"), .names = check_types},
    {FIELD("method", cfg_conv_text, struct cfg_health_check, method, "GET"), .flags = F_NOSPACE},
    {FIELD("path", cfg_conv_text, struct cfg_health_check, path, "/"), .flags = F_NOSPACE},
    {FIELD("host", cfg_conv_text, struct cfg_health_check, host, NULL), .flags = F_NOSPACE},
    {FIELD("status", conv_status_range, struct cfg_health_check, status_min, "200-399")},
    {FIELD("interval", cfg_conv_duration, struct cfg_health_check, interval, "5s"), .min = 100},
    {FIELD("timeout", cfg_conv_duration, struct cfg_health_check, timeout, "2s"), .min = 10},
    {FIELD("rise", cfg_conv_u32, struct cfg_health_check, rise, "2"), .min = 1, .max = 100},
    {FIELD("fall", cfg_conv_u32, struct cfg_health_check, fall, "3"), .min = 1, .max = 100},
};
static const struct fields health_table = FIELDS(health_fields);

static void conv_health_check(struct load *ld, const struct field *f, const struct ynode *val,
                              void *base)
{
    struct cfg_health_check *hc = CFG_AT(base, f, struct cfg_health_check);

    if (!cfg_want(ld, "'health_check'", val, YNODE_MAP))
        return;
    hc->enabled = true;
    cfg_walk(ld, val, val, &health_table, hc, "in 'health_check'");
    if (hc->path && hc->path[0] != '/')
        cfg_report(ld, cfg_get(val, "path"), "'path' of a health check must start with '/'");
}

static void passive_add_status(struct cfg_passive_health *ph, uint32_t status)
{
    unsigned i = status - CFG_PASSIVE_STATUS_MIN;
    ph->statuses[i / 64] |= (uint64_t)1 << (i % 64);
}

/* statuses: [500, 502, 503, 504]: the answers that count as failed requests. An empty list
 * counts none (only connection failures and timeouts). */
static void conv_passive_statuses(struct load *ld, const struct field *f, const struct ynode *val,
                                  void *base)
{
    struct cfg_passive_health *ph = base;
    const struct field item = {.key = f->key,
                               .conv = cfg_conv_u32,
                               .min = CFG_PASSIVE_STATUS_MIN,
                               .max = CFG_PASSIVE_STATUS_MAX};

    if (!cfg_want(ld, "'statuses' (a list of HTTP statuses)", val, YNODE_LIST))
        return;
    ph->statuses_set = true;
    for (size_t i = 0; i < val->nitems; i++) {
        uint32_t status = 0;
        cfg_conv_u32(ld, &item, val->items[i], &status);
        if (status >= CFG_PASSIVE_STATUS_MIN && status <= CFG_PASSIVE_STATUS_MAX)
            passive_add_status(ph, status);
    }
}

/* The statuses counted when the upstream does not say: the server's own failures and those of
 * what stands behind it (500, 502, 503, 504), not 501 (a method it does not implement). */
static void passive_default_statuses(struct cfg_passive_health *ph)
{
    static const uint32_t dflt[] = {500, 502, 503, 504};
    if (ph->statuses_set)
        return;
    for (size_t i = 0; i < sizeof dflt / sizeof *dflt; i++)
        passive_add_status(ph, dflt[i]);
}

static const struct field passive_fields[] = {
    {FIELD("failures", cfg_conv_u32, struct cfg_passive_health, failures, "5"), .max = 1000},
    {FIELD("eject", cfg_conv_duration, struct cfg_passive_health, eject, "30s"), .min = 100},
    {FIELD("statuses", conv_passive_statuses, struct cfg_passive_health, statuses, NULL)},
};
static const struct fields passive_table = FIELDS(passive_fields);

/* sticky: { cookie: NAME } */
struct sticky_tmp {
    char *cookie;
};
static const struct field sticky_fields[] = {
    {FIELD("cookie", cfg_conv_text, struct sticky_tmp, cookie, NULL),
     .flags = F_REQUIRED | F_NOSPACE},
};
static const struct fields sticky_table = FIELDS(sticky_fields);

static void conv_sticky(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_upstream *u = base;
    struct sticky_tmp t = {NULL};

    if (!cfg_want(ld, "'sticky'", val, YNODE_MAP))
        return;
    cfg_walk(ld, val, val, &sticky_table, &t, "in 'sticky'");
    if (!t.cookie)
        return;
    if (!is_name_token(t.cookie, strlen(t.cookie), 64)) {
        cfg_report(ld, cfg_get(val, "cookie"),
                   "'cookie' must be a cookie name: 1 to 64 letters, digits or !#$%%&'*+-.^_`|~");
        return;
    }
    u->sticky_cookie = t.cookie;
    u->sticky_cookie_len = strlen(t.cookie);
}

static const struct field queue_fields[] = {
    {FIELD("size", cfg_conv_u32, struct cfg_upstream, queue_size, "0"), .max = 1000000},
    {FIELD("timeout", cfg_conv_duration, struct cfg_upstream, queue_timeout, "5s"), .min = 1},
};
static const struct fields queue_table = FIELDS(queue_fields);

/* queue: { size, timeout } fills the upstream itself. */
static void conv_queue(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    if (cfg_want(ld, "'queue'", val, YNODE_MAP))
        cfg_walk(ld, val, val, &queue_table, base, "in 'queue'");
}

static const char *const proxy_protocol_names[] = {"off", "v1", "v2", NULL};

static const char *const balance_names[] = {"round_robin", "least_requests", "power_of_two", "hash",
                                            NULL};

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
    {FIELD("servers", conv_servers, struct cfg_upstream, servers, NULL)},
    {FIELD("app", cfg_conv_app, struct cfg_upstream, app, NULL)},
    {FIELD("resolve_interval", conv_resolve_interval, struct cfg_upstream, resolve_interval,
           "30s")},
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
    {FIELD("balance", cfg_conv_enum, struct cfg_upstream, balance, "round_robin"),
     .names = balance_names},
    {FIELD("hash_key", conv_hash_key, struct cfg_upstream, hash_by, "client_ip")},
    {FIELD("retries", cfg_conv_u32, struct cfg_upstream, retries, "2"), .max = 10},
    {FIELD("retry_budget", conv_percent, struct cfg_upstream, retry_budget, "20%")},
    {FIELD("retry_timeout", cfg_conv_duration, struct cfg_upstream, retry_timeout, "10s")},
    {FIELD("slow_start", cfg_conv_duration, struct cfg_upstream, slow_start, "0s")},
    {FIELD("health_check", conv_health_check, struct cfg_upstream, health_check, NULL)},
    {FIELD("passive_health", cfg_conv_map, struct cfg_upstream, passive_health, NULL),
     .sub = &passive_table},
    {FIELD("sticky", conv_sticky, struct cfg_upstream, sticky_cookie, NULL)},
    {FIELD("queue", conv_queue, struct cfg_upstream, queue_size, NULL)},
    {FIELD("proxy_protocol", cfg_conv_enum, struct cfg_upstream, proxy_protocol, "off"),
     .names = proxy_protocol_names},
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

/* A hash_key under another policy would be silently ignored: the writer meant to hash. */
static void check_hash_key(struct load *ld, const struct ynode *map, const struct cfg_upstream *u)
{
    const struct ynode *key = cfg_get(map, "hash_key");
    if (key && u->balance != CFG_BAL_HASH)
        cfg_report(ld, key,
                   "'hash_key' is used only with 'balance: hash' (this upstream "
                   "balances by %s)",
                   balance_names[u->balance]);
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
    else if (cfg_want(ld, what, val, YNODE_MAP)) {
        cfg_walk(ld, val, val, &upstream_table, u, where);
        check_hash_key(ld, val, u);
    }
    cfg_check_servers_or_app(ld, val, key, where);
    passive_default_statuses(&u->passive_health);
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
        c->proxy_protocol_out |= u->proxy_protocol != CFG_PP_OFF;
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
