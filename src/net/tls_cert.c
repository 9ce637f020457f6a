/* Certificates: loading certificate/key pairs (and their chains), the table of their DNS
 * names that SNI selects from (exact names before wildcards, one certificate per key type for
 * a name), and the client_ca that client certificates are verified against. */
#include "net/tls_internal.h"
#include "config/config.h"
#include "core/bug.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    MAX_PEM_FILE = 1 << 20, /* a certificate chain or key larger than this is not one */
    MAX_NAME = 253,         /* longest DNS name */
};

/* ---- loading certificates and keys ---- */

/* Reads a whole file (PEM, DER, a ticket key). Only regular files of sane size: a path like
 * /dev/zero or a FIFO must fail the load, not hang it. */
char *tls_read_file(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    size_t n = 0;

    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > MAX_PEM_FILE) {
        snprintf(why, whylen, "%s is not a regular file of at most 1 MiB", path);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        snprintf(why, whylen, "out of memory");
    } else {
        ssize_t r;
        while (n < (size_t)st.st_size && (r = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
            n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

/* Keys with a passphrase are refused: there is nobody to type it at a reload. Without this
 * callback OpenSSL would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    *(bool *)u = true;
    return -1;
}

static int read_chain(struct tls_cert *tc, BIO *bio, const char *path, char *why, size_t whylen)
{
    X509 *x;

    tc->chain = sk_X509_new_null();
    if (!tc->chain) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (!sk_X509_push(tc->chain, x)) {
            X509_free(x);
            snprintf(why, whylen, "out of memory");
            return -1;
        }
    }
    /* The loop ends at the end of the file ("no start line") or at a broken certificate. */
    if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
        snprintf(why, whylen, "bad certificate in the chain of %s: %s", path, tls_ssl_reason());
        return -1;
    }
    ERR_clear_error();
    return 0;
}

static int load_x509(struct tls_cert *tc, const char *path, char *why, size_t whylen)
{
    size_t len;
    char *pem = tls_read_file(path, &len, why, whylen);
    BIO *bio;
    int rc = -1;

    if (!pem)
        return -1;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        snprintf(why, whylen, "out of memory");
    else if (!(tc->x509 = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL)))
        snprintf(why, whylen, "no PEM certificate in %s (%s)", path, tls_ssl_reason());
    else
        rc = read_chain(tc, bio, path, why, whylen);
    BIO_free(bio);
    free(pem);
    return rc;
}

static int load_key(struct tls_cert *tc, const char *path, char *why, size_t whylen)
{
    size_t len;
    char *pem = tls_read_file(path, &len, why, whylen);
    bool encrypted = false;
    BIO *bio;

    if (!pem)
        return -1;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio)
        tc->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
    BIO_free(bio);
    OPENSSL_cleanse(pem, len);
    free(pem);
    if (tc->key)
        return 0;
    if (encrypted)
        snprintf(why, whylen, "the key %s has a passphrase (not supported)", path);
    else
        snprintf(why, whylen, "no PEM private key in %s (%s)", path, tls_ssl_reason());
    return -1;
}

/* EVP_PKEY_eq compares the public halves, whatever the types: an RSA key with an ECDSA
 * certificate is a mismatch here, where some OpenSSL paths would accept it. */
static int load_cert(struct tls_cert *tc, const struct cfg_tls_cert *cc, char *why, size_t whylen)
{
    if (load_x509(tc, cc->cert, why, whylen) || load_key(tc, cc->key, why, whylen))
        return -1;
    if (EVP_PKEY_eq(X509_get0_pubkey(tc->x509), tc->key) != 1) {
        ERR_clear_error();
        snprintf(why, whylen, "the key %s does not match the certificate", cc->key);
        return -1;
    }
    tc->type = EVP_PKEY_get_base_id(tc->key);
    return 0;
}

void tls_cert_clear(struct tls_cert *tc)
{
    OPENSSL_free(tc->ocsp);
    X509_free(tc->x509);
    EVP_PKEY_free(tc->key);
    sk_X509_pop_free(tc->chain, X509_free);
}

int tls_load_certs(struct tls_server *s, const struct cfg_tls *cfg, char *err, size_t errlen,
                   long *at)
{
    char why[400];

    if (!cfg->ncerts) {
        snprintf(err, errlen, "no certificates");
        return -1;
    }
    s->certs = calloc(cfg->ncerts, sizeof *s->certs);
    if (!s->certs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->ncerts = cfg->ncerts;
    for (size_t i = 0; i < cfg->ncerts; i++) {
        if (load_cert(&s->certs[i], &cfg->certs[i], why, sizeof why)) {
            snprintf(err, errlen, "cannot use certificate %s: %s", cfg->certs[i].cert, why);
            *at = (long)i;
            return -1;
        }
        if (cfg->certs[i].ocsp && tls_load_ocsp(&s->certs[i], &cfg->certs[i], why, sizeof why)) {
            snprintf(err, errlen, "cannot use OCSP response %s: %s", cfg->certs[i].ocsp, why);
            *at = TLS_AT_OCSP(i);
            return -1;
        }
    }
    return 0;
}

/* ---- names (RFC 6125) ---- */

/* One DNS name of one certificate, while the table is built. */
struct name_ref {
    char *name;
    bool wild;
    size_t cert;
};

struct name_list {
    struct name_ref *v;
    size_t n, cap;
};

/* Lowercases a DNS name from a certificate into a new string; a wildcard is kept only in the
 * form "*.rest" (the whole left-most label). Names we would never match return NULL quietly:
 * embedded NULs, partial wildcards like "w*.example.com", empty labels. */
static char *dns_name(const unsigned char *p, int len, bool *wild)
{
    char *s;

    *wild = len > 2 && p[0] == '*' && p[1] == '.';
    if (*wild) {
        p += 2;
        len -= 2;
    }
    if (len < 1 || len > MAX_NAME || memchr(p, '\0', (size_t)len) || memchr(p, '*', (size_t)len))
        return NULL;
    if (p[0] == '.' || memmem(p, (size_t)len, "..", 2))
        return NULL;
    s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    for (int i = 0; i < len; i++)
        s[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
    s[len - (len > 1 && s[len - 1] == '.')] = '\0'; /* "example.com." is example.com */
    return s;
}

static int add_name(struct name_list *l, const unsigned char *p, int len, size_t cert)
{
    bool wild;
    char *name = dns_name(p, len, &wild);

    if (!name)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct name_ref *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(name);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct name_ref){name, wild, cert};
    return 0;
}

/* The subject's common name counts only when there are no DNS names, as RFC 6125 says. */
static int add_cn(struct name_list *l, X509 *x, size_t cert)
{
    X509_NAME *subject = X509_get_subject_name(x);
    int i = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    ASN1_STRING *cn;

    if (i < 0)
        return 0;
    cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    return add_name(l, ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn), cert);
}

static int add_cert_names(struct name_list *l, X509 *x, size_t cert)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t before = l->n;
    int rc = 0;

    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            rc = add_name(l, ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName),
                          cert);
    }
    GENERAL_NAMES_free(sans);
    ERR_clear_error(); /* a certificate without the extension leaves a note in the queue */
    if (rc == 0 && l->n == before)
        rc = add_cn(l, x, cert);
    return rc;
}

static int name_cmp(const char *a, bool awild, const char *b, bool bwild)
{
    if (awild != bwild)
        return awild ? 1 : -1;
    return strcmp(a, b);
}

/* Equal names stay in certificate order, so the first certificate of a type wins. */
static int ref_cmp(const void *x, const void *y)
{
    const struct name_ref *a = x, *b = y;
    int d = name_cmp(a->name, a->wild, b->name, b->wild);

    if (d)
        return d;
    return a->cert < b->cert ? -1 : a->cert > b->cert;
}

static void group_add(struct tls_group *g, const struct tls_cert *tc)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->certs[i]->type == tc->type)
            return;
    }
    if (g->n < MAX_KEY_TYPES)
        g->certs[g->n++] = tc;
}

/* Sorted references -> one entry per distinct name; entries take over the name strings. */
static void merge_names(struct tls_server *s, struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct name_ref *r = &l->v[i];
        struct tls_name *last = s->nnames ? &s->names[s->nnames - 1] : NULL;

        if (!last || name_cmp(last->name, last->wild, r->name, r->wild)) {
            last = &s->names[s->nnames++];
            *last = (struct tls_name){.name = r->name, .wild = r->wild};
            r->name = NULL;
        }
        group_add(&last->group, &s->certs[r->cert]);
    }
}

struct name_key {
    const char *name;
    bool wild;
};

static int key_cmp(const void *k, const void *e)
{
    const struct name_key *a = k;
    const struct tls_name *b = e;

    return name_cmp(a->name, a->wild, b->name, b->wild);
}

static const struct tls_name *find_name(const struct tls_server *s, const char *name, bool wild)
{
    struct name_key k = {name, wild};

    return s->nnames ? bsearch(&k, s->names, s->nnames, sizeof *s->names, key_cmp) : NULL;
}

/* The default is the group of the first certificate's first name, so that an RSA certificate
 * for the same names is offered beside it to clients that cannot take ECDSA. `name` is NULL
 * when the first certificate has no usable name. */
static void set_default(struct tls_server *s, const char *name, bool wild)
{
    const struct tls_name *e = name ? find_name(s, name, wild) : NULL;

    if (e)
        s->dflt = e->group;
    else
        group_add(&s->dflt, &s->certs[0]);
}

int tls_build_names(struct tls_server *s, char *err, size_t errlen)
{
    struct name_list l = {0};
    int rc = 0;

    GH_BUG_ON(s->names || s->nnames); /* built once, on a new server */
    for (size_t i = 0; i < s->ncerts && rc == 0; i++)
        rc = add_cert_names(&l, s->certs[i].x509, i);
    if (rc == 0 && l.n && !(s->names = calloc(l.n, sizeof *s->names)))
        rc = -1;
    if (rc == 0) {
        /* The first certificate's first name, before sorting moves it. Its string stays
         * alive in the table or in `l` until the end of this function. */
        struct name_ref first = l.n && l.v[0].cert == 0 ? l.v[0] : (struct name_ref){0};
        if (l.n) /* no names: l.v is NULL, and qsort's base must not be, even for 0 */
            qsort(l.v, l.n, sizeof *l.v, ref_cmp);
        merge_names(s, &l);
        set_default(s, first.name, first.wild);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].name);
    free(l.v);
    if (rc)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* The entry for an SNI name: exact first, then a wildcard for exactly one left-most label. */
static const struct tls_group *find_group(const struct tls_server *s, const char *sni)
{
    char host[MAX_NAME + 2];
    size_t n = strlen(sni);
    const struct tls_name *e;
    const char *dot;

    if (n == 0 || n >= sizeof host)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        host[i] = (char)(sni[i] >= 'A' && sni[i] <= 'Z' ? sni[i] + 32 : sni[i]);
    if (n > 1 && host[n - 1] == '.')
        host[n - 1] = '\0';
    e = find_name(s, host, false);
    if (e)
        return &e->group;
    dot = strchr(host, '.');
    if (!dot || dot == host)
        return NULL;
    e = find_name(s, dot + 1, true);
    return e ? &e->group : NULL;
}

/* ---- SNI ---- */

static bool group_eq(const struct tls_group *a, const struct tls_group *b)
{
    return a->n == b->n && !memcmp(a->certs, b->certs, a->n * sizeof *a->certs);
}

static int use_group(SSL *ssl, const struct tls_group *g)
{
    SSL_certs_clear(ssl);
    for (size_t i = 0; i < g->n; i++) {
        const struct tls_cert *tc = g->certs[i];
        if (!SSL_use_cert_and_key(ssl, tc->x509, tc->key, tc->chain, 1))
            return -1;
    }
    return 0;
}

/* Runs during the ClientHello, before the cipher and the certificate are chosen, also when
 * the client sent no SNI. An unknown name gets the default certificate, not an alert: the
 * HTTP layer answers it (421/400) with something a person can read. */
int tls_on_servername(SSL *ssl, int *alert, void *arg)
{
    const struct tls_server *s = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct tls_group *g = sni ? find_group(s, sni) : NULL;

    if (!g || group_eq(g, &s->dflt))
        return SSL_TLSEXT_ERR_OK;
    if (use_group(ssl, g) == 0)
        return SSL_TLSEXT_ERR_OK;
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Every certificate is tried on a scratch connection, so that what OpenSSL would refuse only
 * when a client asks for that name (a key too weak for the security level, an unsupported
 * key type) is found at load time instead. */
int tls_check_certs(struct tls_server *s, const struct cfg_tls *cfg, char *err, size_t errlen,
                    long *at)
{
    SSL *probe = SSL_new(s->ctx);

    if (!probe) {
        snprintf(err, errlen, "cannot set up TLS: %s", tls_ssl_reason());
        return -1;
    }
    for (size_t i = 0; i < s->ncerts; i++) {
        const struct tls_cert *tc = &s->certs[i];
        if (!SSL_use_cert_and_key(probe, tc->x509, tc->key, tc->chain, 1)) {
            snprintf(err, errlen, "cannot use certificate %s: %s", cfg->certs[i].cert,
                     tls_ssl_reason());
            *at = (long)i;
            SSL_free(probe);
            return -1;
        }
    }
    SSL_free(probe);
    return 0;
}

/* ---- client certificates ---- */

/* Trusts the CA certificates of cfg->client_ca, names them in the CertificateRequest, and
 * requires a client certificate that chains to one. The session ID context becomes a digest
 * of the file: a session (or ticket) from a listener that trusts other clients, or none,
 * never resumes here, even when the ticket key is shared. */
int tls_set_client_ca(struct tls_server *s, const char *path, char *err, size_t errlen, long *at)
{
    X509_STORE *store = SSL_CTX_get_cert_store(s->ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    unsigned char sid[32];
    char why[300] = "out of memory";
    size_t len = 0;
    char *pem = names ? tls_read_file(path, &len, why, sizeof why) : NULL;
    BIO *bio = pem ? BIO_new_mem_buf(pem, (int)len) : NULL;
    X509 *x;
    int n = 0, rc = -1;
    bool ok = bio != NULL;

    while (ok && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(x));
        ok = name && X509_STORE_add_cert(store, x) && sk_X509_NAME_push(names, name);
        if (!ok) {
            X509_NAME_free(name);
            snprintf(why, sizeof why, "cannot add a certificate of %s: %s", path, tls_ssl_reason());
        }
        X509_free(x);
        n++;
    }
    if (ok) { /* else `why` says what failed */
        if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
            snprintf(why, sizeof why, "bad certificate in %s: %s", path, tls_ssl_reason());
        else if (n == 0)
            snprintf(why, sizeof why, "no PEM certificate in %s", path);
        else if (EVP_Digest(pem, len, sid, NULL, EVP_sha256(), NULL) &&
                 SSL_CTX_set_session_id_context(s->ctx, sid, sizeof sid))
            rc = 0;
    }
    ERR_clear_error();
    BIO_free(bio);
    free(pem);
    if (rc) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        snprintf(err, errlen, "cannot use client_ca %s: %s", path, why);
        *at = TLS_AT_CLIENT_CA;
        return -1;
    }
    SSL_CTX_set_client_CA_list(s->ctx, names); /* takes `names` */
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    s->verify_clients = true;
    return 0;
}
