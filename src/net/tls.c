/* TLS termination with OpenSSL 3 (see tls.h).
 *
 * One SSL_CTX per listener holds the settings and the default certificates. SNI selects among
 * the certificates in the servername callback, which replaces the certificates of that one
 * connection (SSL_use_cert_and_key); certificates of several key types for the same names go
 * in side by side, so OpenSSL serves the one the client's signature algorithms allow (ECDSA
 * first: it is listed first). Everything built here is immutable after tls_server_new, so
 * worker threads share it without locks; OpenSSL locks its own session cache. The one
 * exception is the pair of rotating session ticket keys, behind a mutex of their own. */
#include "net/tls_internal.h"
#include "config/config.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- errors ---- */

/* The reason of the most recent OpenSSL error of this thread, and an empty queue: the queue is
 * per thread and shared by every connection of a worker, so nothing may be left in it. */
const char *tls_ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

/* ---- the context ---- */

/* The protocol `name` in the client's ALPN list, or NULL. */
static const unsigned char *alpn_find(const unsigned char *in, unsigned int inlen, const char *name)
{
    size_t len = strlen(name);
    for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
        unsigned int n = in[i];
        if (i + 1 + n <= inlen && n == len && !memcmp(in + i + 1, name, n))
            return in + i + 1;
    }
    return NULL;
}

/* h2 when the listener allows it and the client offers it (our preference, as browsers
 * expect), else http/1.1. A client that offers ALPN with neither gets the fatal alert RFC 7301
 * asks for. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct tls_server *s = arg;
    const unsigned char *p = s->http2 ? alpn_find(in, inlen, "h2") : NULL;
    if (p) {
        *out = p;
        *outlen = 2;
        return SSL_TLSEXT_ERR_OK;
    }
    p = alpn_find(in, inlen, "http/1.1");
    if (!p)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = p;
    *outlen = 8;
    return SSL_TLSEXT_ERR_OK;
}

static int set_ciphers(SSL_CTX *ctx, const struct cfg_tls *cfg, char *err, size_t errlen, long *at)
{
    const char *list = cfg->ciphers ? cfg->ciphers : TLS_DEFAULT_CIPHERS;

    if (!SSL_CTX_set_cipher_list(ctx, list)) {
        *at = TLS_AT_CIPHERS;
        snprintf(err, errlen, "bad 'ciphers' '%.100s': %s", list, tls_ssl_reason());
        return -1;
    }
    if (cfg->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites)) {
        *at = TLS_AT_CIPHERSUITES;
        snprintf(err, errlen, "bad 'ciphersuites' '%.100s': %s", cfg->ciphersuites,
                 tls_ssl_reason());
        return -1;
    }
    return 0;
}

/* Options, with why:
 * - our cipher order, not the client's: the list puts the strongest first, and a client that
 *   prefers a weaker suite it also offers does not get it (testssl.sh rates the lack HIGH);
 *   ChaCha20 still wins for a client that lists it first (phones without AES hardware);
 * - no renegotiation: a client-initiated one costs us a handshake for free, and nothing of
 *   ours needs it;
 * - an EOF without close_notify reads as a close: HTTP framing, not TLS, tells a truncated
 *   message, and most clients skip close_notify;
 * - read-ahead: one read() takes in several records instead of two reads per record;
 * - partial writes and a moving write buffer: the caller's output buffers move and drain
 *   piecemeal. */
static int set_options(SSL_CTX *ctx, const struct cfg_tls *cfg, char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "gatehouse";
    int min = cfg->min_version ? cfg->min_version : TLS1_2_VERSION;

    if (min != TLS1_2_VERSION && min != TLS1_3_VERSION) {
        snprintf(err, errlen, "min_version must be TLS 1.2 or 1.3");
        return -1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_dh_auto(ctx, 1); /* for the DHE-RSA ciphers */
    if (!SSL_CTX_set_min_proto_version(ctx, min) ||
        !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1)) {
        snprintf(err, errlen, "cannot set up TLS: %s", tls_ssl_reason());
        return -1;
    }
    return 0;
}

static int make_ctx(struct tls_server *s, const struct cfg_tls *cfg, char *err, size_t errlen,
                    long *at)
{
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (!s->ctx) {
        snprintf(err, errlen, "cannot set up TLS: %s", tls_ssl_reason());
        return -1;
    }
    if (set_options(s->ctx, cfg, err, errlen) || set_ciphers(s->ctx, cfg, err, errlen, at))
        return -1;
    SSL_CTX_set_tlsext_servername_callback(s->ctx, tls_on_servername);
    SSL_CTX_set_tlsext_servername_arg(s->ctx, s);
    s->http2 = cfg->http2;
    SSL_CTX_set_alpn_select_cb(s->ctx, on_alpn, s);
    for (size_t i = 0; i < s->dflt.n; i++) {
        const struct tls_cert *tc = s->dflt.certs[i];
        if (!SSL_CTX_use_cert_and_key(s->ctx, tc->x509, tc->key, tc->chain, 1)) {
            snprintf(err, errlen, "cannot use certificate %s: %s", cfg->certs[tc - s->certs].cert,
                     tls_ssl_reason());
            *at = (long)(tc - s->certs);
            return -1;
        }
    }
    SSL_CTX_set_tlsext_status_cb(s->ctx, tls_on_status);
    SSL_CTX_set_tlsext_status_arg(s->ctx, s);
    if ((cfg->client_ca && tls_set_client_ca(s, cfg->client_ca, err, errlen, at)) ||
        tls_set_tickets(s, cfg, err, errlen, at))
        return -1;
    return tls_check_certs(s, cfg, err, errlen, at);
}

static void server_destroy(struct tls_server *s)
{
    if (s->lock_ready)
        pthread_mutex_destroy(&s->tickets.lock);
    OPENSSL_cleanse(&s->tickets, sizeof s->tickets);
    SSL_CTX_free(s->ctx);
    for (size_t i = 0; i < s->ncerts; i++)
        tls_cert_clear(&s->certs[i]);
    free(s->certs);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i].name);
    free(s->names);
    free(s);
}

struct tls_server *tls_server_new_at(const struct cfg_tls *cfg, char *err, size_t errlen, long *at)
{
    struct tls_server *s = calloc(1, sizeof *s);

    *at = TLS_AT_OTHER;
    ERR_clear_error();
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->lock_ready = pthread_mutex_init(&s->tickets.lock, NULL) == 0;
    if (!s->lock_ready) {
        snprintf(err, errlen, "cannot set up session tickets: out of resources");
        server_destroy(s);
        return NULL;
    }
    if (tls_load_certs(s, cfg, err, errlen, at) || tls_build_names(s, err, errlen) ||
        make_ctx(s, cfg, err, errlen, at)) {
        server_destroy(s);
        ERR_clear_error();
        return NULL;
    }
    return s;
}

struct tls_server *tls_server_new(const struct cfg_tls *cfg, char *err, size_t errlen)
{
    long at;

    return tls_server_new_at(cfg, err, errlen, &at);
}

/* acq_rel: whoever frees must see every other holder's use as finished. */
void tls_server_free(struct tls_server *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        server_destroy(s);
}

/* ---- connections ---- */

enum fail { FAIL_NONE, FAIL_PLAINTEXT, FAIL_SSL, FAIL_SYSCALL };

struct tls_conn {
    SSL *ssl;
    struct tls_server *server;
    int fd;
    bool peeked;  /* the first bytes were checked for plaintext HTTP */
    bool starved; /* the last read found only part of a record */
    bool shut;    /* close_notify sent (or given up) */
    enum fail fail;
    unsigned long ssl_err; /* FAIL_SSL */
    long verify;           /* FAIL_SSL: the client certificate's verification result */
    int sys_err;           /* FAIL_SYSCALL */
};

struct tls_conn *tls_conn_new(struct tls_server *s, int fd)
{
    struct tls_conn *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->ssl = SSL_new(s->ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(c->ssl);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    c->server = s;
    c->fd = fd;
    return c;
}

/* OpenSSL drops from the session cache the session of a connection freed without
 * close_notify, against truncation attacks; HTTP frames its own messages, and closing an idle
 * keep-alive connection is routine, so only failed connections lose their session (OpenSSL
 * already marks those on a fatal alert). */
void tls_conn_free(struct tls_conn *c)
{
    if (!c)
        return;
    if (c->fail == FAIL_NONE)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    tls_server_free(c->server);
    free(c);
}

/* A reset during the handshake is a client leaving (TCP health checks and port scanners
 * often close that way), not a TLS failure. */
static bool peer_left(int sys_err)
{
    return sys_err == ECONNRESET || sys_err == EPIPE;
}

/* Maps a failed SSL_* call to a TLS_* code, keeping what is needed for tls_last_error.
 * `sys_err` is errno as the call left it. */
static int failed(struct tls_conn *c, int ret, int sys_err, const char *op)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 &&
            (sys_err == 0 || (peer_left(sys_err) && !strcmp(op, "handshake"))))
            return TLS_CLOSED;
        c->fail = ERR_peek_error() ? FAIL_SSL : FAIL_SYSCALL;
        break;
    default:
        c->fail = FAIL_SSL;
        break;
    }
    c->sys_err = sys_err;
    c->ssl_err = ERR_peek_last_error();
    c->verify = SSL_get_verify_result(c->ssl);
    ERR_clear_error();
    return TLS_ERROR;
}

/* A TLS record starts with a content type (20..24) or, in an SSLv2 hello, a byte >= 0x80;
 * never with a capital letter. So "GET ", "PRI * HTTP/2.0", or just "GE" so far, is plain
 * HTTP: letters up to a space or to the end of what arrived. */
static bool looks_like_http(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] == ' ')
            return i > 0;
        if (b[i] < 'A' || b[i] > 'Z')
            return false;
    }
    return n > 0;
}

/* Peeks (does not consume) the client's first bytes, once. A plaintext request is then still
 * in the socket, for the caller to answer in plain HTTP if it wants. */
static int check_first_bytes(struct tls_conn *c)
{
    unsigned char b[8];
    ssize_t n = recv(c->fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return TLS_WANT_READ;
    if (n < 0 && peer_left(errno))
        return TLS_CLOSED;
    if (n < 0) {
        c->fail = FAIL_SYSCALL;
        c->sys_err = errno;
        return TLS_ERROR;
    }
    if (n == 0)
        return TLS_CLOSED;
    c->peeked = true;
    if (looks_like_http(b, (size_t)n)) {
        c->fail = FAIL_PLAINTEXT;
        return TLS_ERROR;
    }
    return TLS_DONE;
}

int tls_handshake(struct tls_conn *c)
{
    int r;

    if (!c->peeked) {
        r = check_first_bytes(c);
        if (r != TLS_DONE)
            return r;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return TLS_DONE;
    return failed(c, r, errno, "handshake");
}

/* Lengths beyond int range gain nothing (records are 16 KiB) and would not fit the result. */
static size_t io_len(size_t len)
{
    return len > (1u << 30) ? (1u << 30) : len;
}

long tls_read(struct tls_conn *c, void *buf, size_t len)
{
    size_t n;
    int r;

    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(c->ssl, buf, io_len(len), &n)) {
        c->starved = false;
        return (long)n;
    }
    r = failed(c, 0, errno, "read");
    c->starved = r == TLS_WANT_READ;
    return r;
}

long tls_write(struct tls_conn *c, const void *buf, size_t len)
{
    size_t n;

    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(c->ssl, buf, io_len(len), &n))
        return (long)n;
    return failed(c, 0, errno, "write");
}

/* SSL_pending counts only the decrypted rest of the current record; with read-ahead, whole
 * records may wait undecrypted in OpenSSL's buffer too (SSL_has_pending), and epoll will not
 * report them. After a read that wanted more, what is buffered is an incomplete record: only
 * the socket can complete it. */
bool tls_pending(const struct tls_conn *c)
{
    return SSL_pending(c->ssl) > 0 || (!c->starved && SSL_has_pending(c->ssl));
}

void tls_shutdown(struct tls_conn *c)
{
    if (c->shut || c->fail != FAIL_NONE || !SSL_is_init_finished(c->ssl))
        return;
    c->shut = true;
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
}

const char *tls_conn_alpn(const struct tls_conn *c)
{
    const unsigned char *p;
    unsigned int n;

    SSL_get0_alpn_selected(c->ssl, &p, &n);
    if (n == 2 && !memcmp(p, "h2", 2))
        return "h2";
    return n == 8 && !memcmp(p, "http/1.1", 8) ? "http/1.1" : NULL;
}

const char *tls_conn_sni(const struct tls_conn *c)
{
    return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

/* Only a certificate OpenSSL verified counts: without client_ca none is asked for, and
 * SSL_get_verify_result says X509_V_OK also when nothing was verified. */
const char *tls_conn_client_subject(const struct tls_conn *c, char *buf, size_t len)
{
    X509 *x = c->server->verify_clients ? SSL_get0_peer_certificate(c->ssl) : NULL;
    BIO *bio;
    char *p;
    long n;
    bool ok = false;

    if (!x || !len || !SSL_is_init_finished(c->ssl) || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return NULL;
    bio = BIO_new(BIO_s_mem());
    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
        (n = BIO_get_mem_data(bio, &p)) >= 0 && (size_t)n < len) {
        /* The flags escape control and non-ASCII bytes; checked anyway, for a header value. */
        ok = true;
        for (long i = 0; i < n && ok; i++)
            ok = (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f;
        memcpy(buf, p, (size_t)n);
        buf[n] = '\0';
    }
    BIO_free(bio);
    ERR_clear_error();
    return ok ? buf : NULL;
}

/* Certificate verification failures of a client, in words an operator can act on. */
static bool client_cert_error(const struct tls_conn *c, char *buf, size_t len)
{
    if (!c->server->verify_clients || ERR_GET_LIB(c->ssl_err) != ERR_LIB_SSL)
        return false;
    switch (ERR_GET_REASON(c->ssl_err)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        snprintf(buf, len, "client certificate required");
        return true;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        snprintf(buf, len, "client certificate not trusted: %s",
                 X509_verify_cert_error_string(c->verify));
        return true;
    default:
        return false;
    }
}

static const char *version_name(int v, char *buf, size_t len)
{
    switch (v) {
    case SSL3_VERSION:
        return "SSL 3.0";
    case TLS1_VERSION:
        return "TLS 1.0";
    case TLS1_1_VERSION:
        return "TLS 1.1";
    case TLS1_2_VERSION:
        return "TLS 1.2";
    case TLS1_3_VERSION:
        return "TLS 1.3";
    default:
        snprintf(buf, len, "version 0x%04x", (unsigned)v);
        return buf;
    }
}

/* A client too old for min_version: the most common refusal, said in the operator's terms.
 * The ClientHello's legacy version is the client's highest below TLS 1.3, which is all a
 * refused client can have offered. */
static bool version_error(const struct tls_conn *c, char *buf, size_t len)
{
    char a[24], b[24];
    int client = SSL_client_version(c->ssl), min = (int)SSL_get_min_proto_version(c->ssl);

    if (ERR_GET_LIB(c->ssl_err) != ERR_LIB_SSL ||
        ERR_GET_REASON(c->ssl_err) != SSL_R_UNSUPPORTED_PROTOCOL || client <= 0 || min <= 0 ||
        client >= min)
        return false;
    snprintf(buf, len, "client offers %s at most, min_version is %s",
             version_name(client, a, sizeof a), version_name(min, b, sizeof b));
    return true;
}

const char *tls_last_error(struct tls_conn *c, char *buf, size_t len)
{
    const char *reason;
    char sys[128];

    switch (c->fail) {
    case FAIL_NONE:
        snprintf(buf, len, "no error");
        break;
    case FAIL_PLAINTEXT:
        snprintf(buf, len, "plaintext HTTP on a TLS port");
        break;
    case FAIL_SYSCALL:
        snprintf(buf, len, "%s", strerror_r(c->sys_err, sys, sizeof sys));
        break;
    case FAIL_SSL:
        if (client_cert_error(c, buf, len) || version_error(c, buf, len))
            break;
        reason = c->ssl_err ? ERR_reason_error_string(c->ssl_err) : NULL;
        snprintf(buf, len, "%s", reason ? reason : "TLS error");
        break;
    }
    return buf;
}

char *tls_conn_client_subject_dup(const struct tls_conn *c)
{
    char buf[1024];
    const char *subject = tls_conn_client_subject(c, buf, sizeof(buf));
    return subject ? strdup(subject) : NULL;
}
