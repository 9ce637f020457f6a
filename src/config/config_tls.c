/* The `tls` map of a listener: certificates and protocol settings. Once its shape is valid,
 * the OpenSSL context is built right here, so that an unreadable file or a key that does not
 * match its certificate is a problem of the load (`gatehouse -t`, and a reload that keeps the
 * old configuration), reported at the entry that names it. */
#include "config/config_walk.h"
#include "net/tls.h"
#include "net/tls_client.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* A relative path is relative to the directory of the configuration file, not to wherever
 * the server was started from. */
void cfg_conv_path(struct load *ld, const struct field *f, const struct ynode *val, void *base)
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
    {FIELD("cert", cfg_conv_path, struct cfg_tls_cert, cert, NULL), .flags = F_REQUIRED},
    {FIELD("key", cfg_conv_path, struct cfg_tls_cert, key, NULL), .flags = F_REQUIRED},
    {FIELD("ocsp", cfg_conv_path, struct cfg_tls_cert, ocsp, NULL)},
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

/* Fields whose meaning belongs to the HTTP layer or to the forwarding headers (and any
 * X-Forwarded-*): the proxy cannot hand one of them a certificate subject. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive",
    "te",   "trailer",        "upgrade",           "forwarded",  NULL};

static bool reserved_header(const char *name)
{
    for (size_t i = 0; reserved_headers[i]; i++) {
        if (!strcasecmp(name, reserved_headers[i]))
            return true;
    }
    return !strncasecmp(name, "x-forwarded-", 12);
}

/* A header name (RFC 9110 tchar), and not one of the above. */
static void conv_header_name(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base)
{
    const char *s = cfg_text(ld, f->key, val, "a header name");

    if (!s)
        return;
    if (val->len == 0 || val->len > 256) {
        cfg_report(ld, val, "'%s' must be a header name of 1 to 256 characters", f->key);
        return;
    }
    for (size_t i = 0; i < val->len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c)) {
            cfg_report(ld, val,
                       "'%s' must be a header name (letters, digits and !#$%%&'*+-.^_`|~ only)",
                       f->key);
            return;
        }
    }
    if (reserved_header(s)) {
        cfg_report(ld, val, "'%s' cannot be '%s': the proxy manages that header", f->key, s);
        return;
    }
    *CFG_AT(base, f, char *) = cfg_strdup(ld, s, val->len);
}

static const struct field tls_fields[] = {
    {FIELD("certificates", conv_certificates, struct cfg_tls, certs, NULL), .flags = F_REQUIRED},
    {FIELD("min_version", conv_min_version, struct cfg_tls, min_version, "1.2"),
     .names = tls_versions},
    {FIELD("ciphers", cfg_conv_text, struct cfg_tls, ciphers, NULL)},
    {FIELD("ciphersuites", cfg_conv_text, struct cfg_tls, ciphersuites, NULL)},
    {FIELD("handshake_timeout", cfg_conv_duration, struct cfg_tls, handshake_timeout, "10s"),
     .min = 1},
    {FIELD("http2", cfg_conv_bool, struct cfg_tls, http2, "true")},
    {FIELD("client_ca", cfg_conv_path, struct cfg_tls, client_ca, NULL)},
    {FIELD("client_subject_header", conv_header_name, struct cfg_tls, client_subject_header,
           "X-Client-Subject")},
    {FIELD("session_ticket_key", cfg_conv_path, struct cfg_tls, session_ticket_key, NULL)},
    {FIELD("session_ticket_rotation", cfg_conv_duration, struct cfg_tls, session_ticket_rotation,
           "12h"),
     .min = 1},
};
static const struct fields tls_table = FIELDS(tls_fields);

/* Where to point at a fault tls_server_new_at found: the certificate entry or its `ocsp`, the
 * key naming the file or list at fault, or the `tls` map itself. */
static const struct ynode *fault_node(const struct ynode *map, long at)
{
    const struct ynode *n = NULL, *list = cfg_get(map, "certificates");

    if (at == TLS_AT_CIPHERS)
        n = cfg_get(map, "ciphers");
    else if (at == TLS_AT_CIPHERSUITES)
        n = cfg_get(map, "ciphersuites");
    else if (at == TLS_AT_CLIENT_CA)
        n = cfg_get(map, "client_ca");
    else if (at == TLS_AT_TICKET_KEY)
        n = cfg_get(map, "session_ticket_key");
    else if (TLS_AT_IS_OCSP(at) && list && TLS_AT_OCSP_INDEX(at) < list->nitems)
        n = cfg_get(list->items[TLS_AT_OCSP_INDEX(at)], "ocsp");
    else if (at >= 0 && list && (size_t)at < list->nitems)
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
    /* Keys from a file are the operator's to rotate (replace the file, reload): a schedule
     * next to one would be ignored. */
    if (t->session_ticket_key && cfg_get(val, "session_ticket_rotation"))
        cfg_report(ld, cfg_get(val, "session_ticket_rotation"),
                   "'session_ticket_rotation' applies only to generated keys, not with "
                   "'session_ticket_key' (replace the key file and reload to rotate it)");
    /* Files are opened only for a well-formed map: a half-converted one would only add
     * confusing second-hand problems. */
    if (ld->nproblems == before && !ld->oom)
        build_server(ld, val, t);
}

/* OpenSSL contexts live outside the snapshot's arena: listeners' and upstreams' alike. */
void cfg_tls_free(struct config *c)
{
    for (size_t i = 0; c->listeners && i < c->nlisteners; i++) {
        if (c->listeners[i].tls)
            tls_server_free(c->listeners[i].tls->server);
    }
    for (size_t i = 0; c->upstreams && i < c->nupstreams; i++)
        tls_client_free(c->upstreams[i].tls_client);
}
