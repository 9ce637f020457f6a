/* The `tls` map of a listener: certificates and protocol settings. Once its shape is valid,
 * the OpenSSL context is built right here, so that an unreadable file or a key that does not
 * match its certificate is a problem of the load (`gatehouse -t`, and a reload that keeps the
 * old configuration), reported at the entry that names it. */
#include "config/config_walk.h"
#include "net/tls.h"

#include <string.h>

/* A relative path is relative to the directory of the configuration file, not to wherever
 * the server was started from. */
static void conv_path(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    const char *s = cfg_text(ld, f->key, val, "a file path");
    const char *slash = strrchr(ld->name, '/');
    size_t dir;
    char *p;

    if (!s)
        return;
    if (!*s || !cfg_printable(s, true)) {
        cfg_report(ld, val, "'%s' must be a file path", f->key);
        return;
    }
    dir = *s != '/' && slash ? (size_t)(slash - ld->name) + 1 : 0;
    p = cfg_alloc(ld, dir + val->len + 1);
    if (!p)
        return;
    memcpy(p, ld->name, dir);
    memcpy(p + dir, s, val->len);
    *CFG_AT(base, f, char *) = p;
}

static const struct field cert_fields[] = {
    {FIELD("cert", conv_path, struct cfg_tls_cert, cert, NULL), .flags = F_REQUIRED},
    {FIELD("key", conv_path, struct cfg_tls_cert, key, NULL), .flags = F_REQUIRED},
};
static const struct fields cert_table = FIELDS(cert_fields);

static void conv_certificates(struct load *ld, const struct field *f, const struct ynode *val,
                              void *base)
{
    struct cfg_tls *t = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(t->certs = cfg_alloc(ld, list->nitems * sizeof *t->certs)))
        return;
    t->ncerts = list->nitems;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        char where[64];

        snprintf(where, sizeof where, "in certificate #%zu", i + 1);
        if (cfg_want(ld, "each item of 'certificates'", item, YNODE_MAP))
            cfg_walk(ld, item, item, &cert_table, &t->certs[i], where);
    }
}

/* Stored as the protocol version number OpenSSL and the wire use. */
static void conv_min_version(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base)
{
    struct field as_index = *f;
    int i = -1;

    as_index.offset = 0;
    cfg_conv_enum(ld, &as_index, val, &i);
    if (i >= 0)
        *CFG_AT(base, f, int) = 0x0303 + i;
}

static const char *const tls_versions[] = {"1.2", "1.3", NULL};

static const struct field tls_fields[] = {
    {FIELD("certificates", conv_certificates, struct cfg_tls, certs, NULL), .flags = F_REQUIRED},
    {FIELD("min_version", conv_min_version, struct cfg_tls, min_version, "1.2"),
     .names = tls_versions},
    {FIELD("ciphers", cfg_conv_text, struct cfg_tls, ciphers, NULL)},
    {FIELD("ciphersuites", cfg_conv_text, struct cfg_tls, ciphersuites, NULL)},
    {FIELD("handshake_timeout", cfg_conv_duration, struct cfg_tls, handshake_timeout, "10s"),
     .min = 1},
    {FIELD("http2", cfg_conv_bool, struct cfg_tls, http2, "false")},
};
static const struct fields tls_table = FIELDS(tls_fields);

/* Where to point at a fault tls_server_new_at found: the certificate entry, the cipher key,
 * or the `tls` map itself. */
static const struct ynode *fault_node(const struct ynode *map, long at)
{
    const struct ynode *n = NULL, *list;

    if (at == TLS_AT_CIPHERS)
        n = cfg_get(map, "ciphers");
    else if (at == TLS_AT_CIPHERSUITES)
        n = cfg_get(map, "ciphersuites");
    else if (at >= 0 && (list = cfg_get(map, "certificates")) && (size_t)at < list->nitems)
        n = list->items[at];
    return n ? n : map;
}

static void build_server(struct load *ld, const struct ynode *map, struct cfg_tls *t)
{
    char err[600];
    long at;

    t->server = tls_server_new_at(t, err, sizeof err, &at);
    if (!t->server)
        cfg_report(ld, fault_node(map, at), "%s", err);
}

void cfg_conv_tls(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    size_t before = ld->nproblems;
    struct cfg_tls *t;

    if (!cfg_want(ld, "'tls'", val, YNODE_MAP))
        return;
    t = cfg_alloc(ld, sizeof *t);
    if (!t)
        return;
    *CFG_AT(base, f, struct cfg_tls *) = t;
    cfg_walk(ld, val, val, &tls_table, t, "in 'tls'");
    /* Files are opened only for a well-formed map: a half-converted one would only add
     * confusing second-hand problems. */
    if (ld->nproblems == before && !ld->oom)
        build_server(ld, val, t);
}

void cfg_tls_free(struct config *c)
{
    for (size_t i = 0; c->listeners && i < c->nlisteners; i++) {
        if (c->listeners[i].tls)
            tls_server_free(c->listeners[i].tls->server);
    }
}
