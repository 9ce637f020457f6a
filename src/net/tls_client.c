/* The client side of TLS, for connections to upstreams (see tls_client.h). */
#include "net/tls_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct tls_client {
    SSL_CTX *ctx;
};

/* One upstream connection (the transport's ctx). */
struct tls_client_conn {
    SSL *ssl;
};

static void tls_client_conn_free(struct tls_client_conn *c);

/* The reason of the first OpenSSL error of this thread (the root cause: "no start line" rather
 * than "PEM lib"), and an empty queue: the queue is per thread and shared by every connection of
 * a worker, so nothing may be left in it. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse it instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

/* Sessions the server issues (at the end of a TLS 1.2 handshake, or in TLS 1.3 tickets that
 * arrive with the first response) replace the one in the connection's slot. The slot belongs
 * to one worker's pool, like the connection, so no lock is needed. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_app_data(ssl);

    if (!slot)
        return 0; /* OpenSSL keeps its reference and frees the session */
    SSL_SESSION_free(*slot);
    *slot = sess;
    return 1; /* we took the reference */
}

/* OpenSSL's reason for a missing or unreadable file is "system lib": say what the system said. */
static int readable(const char *path, const char *what, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");

    if (f) {
        fclose(f);
        return 0;
    }
    snprintf(err, errlen, "cannot load %s from %s: %s", what, path, strerror(errno));
    return -1;
}

static int load_ca(SSL_CTX *ctx, const char *ca, char *err, size_t errlen, int *at)
{
    *at = TLS_CLIENT_AT_CA;
    if (ca && readable(ca, "CA certificates", err, errlen))
        return -1;
    if (ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(ctx))
        return 0;
    if (ca)
        snprintf(err, errlen, "cannot load CA certificates from %s: %s", ca, ssl_reason());
    else
        snprintf(err, errlen, "cannot load the system CA certificates: %s", ssl_reason());
    return -1;
}

static int load_client_cert(SSL_CTX *ctx, const char *cert, const char *key, char *err,
                            size_t errlen, int *at)
{
    *at = TLS_CLIENT_AT_CERT;
    if (readable(cert, "the client certificate", err, errlen))
        return -1;
    if (!SSL_CTX_use_certificate_chain_file(ctx, cert)) {
        snprintf(err, errlen, "cannot use certificate %s: %s", cert, ssl_reason());
        return -1;
    }
    *at = TLS_CLIENT_AT_KEY;
    if (readable(key, "the client key", err, errlen))
        return -1;
    if (!SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM)) {
        snprintf(err, errlen, "cannot use key %s: %s", key, ssl_reason());
        return -1;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
        snprintf(err, errlen, "cannot use key %s: it does not match the certificate %s", key, cert);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static int set_options(SSL_CTX *ctx, bool verify, char *err, size_t errlen)
{
    static const unsigned char alpn[] = "\x08http/1.1";

    /* An upstream that closes without close_notify ends a read-until-close body, as on TCP. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_COMPRESSION);
    /* outq_flush_fn retries a partial write with the rest, possibly from a moved buffer. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    /* Sessions live in the pools (per worker, per server), not in OpenSSL's shared cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1)) {
        snprintf(err, errlen, "cannot set up TLS: %s", ssl_reason());
        return -1;
    }
    return 0;
}

struct tls_client *tls_client_new(const char *ca, const char *cert, const char *key, bool verify,
                                  char *err, size_t errlen, int *at)
{
    struct tls_client *c = calloc(1, sizeof *c);

    *at = TLS_CLIENT_AT_OTHER;
    if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method()))) {
        snprintf(err, errlen, "cannot set up TLS: %s", c ? ssl_reason() : "out of memory");
        free(c);
        return NULL;
    }
    if (set_options(c->ctx, verify, err, errlen) || load_ca(c->ctx, ca, err, errlen, at) ||
        (cert && load_client_cert(c->ctx, cert, key, err, errlen, at))) {
        tls_client_free(c);
        return NULL;
    }
    return c;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    free(c);
}

/* SNI carries host names only (RFC 6066 section 3); an address is verified as such. */
static int set_name(SSL *ssl, const char *name)
{
    unsigned char bin[16];

    if (inet_pton(AF_INET, name, bin) == 1 || inet_pton(AF_INET6, name, bin) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) ? 0 : -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set_tlsext_host_name(ssl, name) && SSL_set1_host(ssl, name) ? 0 : -1;
}

/* A connection on the connected non-blocking socket `fd` (see tls_client_transport_start).
 * NULL on out of memory. */
static struct tls_client_conn *tls_client_conn_new(struct tls_client *c, int fd, const char *name,
                                                   struct tls_session **slot)
{
    struct tls_client_conn *cc = calloc(1, sizeof *cc);
    SSL_SESSION *last = slot ? (SSL_SESSION *)*slot : NULL;

    if (!cc || !(cc->ssl = SSL_new(c->ctx)) || !SSL_set_fd(cc->ssl, fd) ||
        set_name(cc->ssl, name)) {
        ERR_clear_error();
        tls_client_conn_free(cc);
        return NULL;
    }
    SSL_set_app_data(cc->ssl, slot);
    /* A session that cannot be resumed would only cost a full handshake anyway. */
    if (last && SSL_SESSION_is_resumable(last) && !SSL_set_session(cc->ssl, last))
        ERR_clear_error();
    SSL_set_connect_state(cc->ssl);
    return cc;
}

/* NULL is a no-op; does not close the socket. */
static void tls_client_conn_free(struct tls_client_conn *c)
{
    if (!c)
        return;
    /* Marked as shut down so that SSL_free does not spoil the session for resumption (OpenSSL
     * marks the session of a connection freed without a shutdown not resumable). No
     * close_notify is sent: the socket closes right after. */
    if (c->ssl)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    free(c);
}

/* The reason a handshake failed: the certificate check's verdict when that is what failed. */
static void describe(SSL *ssl, int sys_err, char *why, size_t len)
{
    unsigned long e = ERR_peek_error();
    long v = SSL_get_verify_result(ssl);

    if (e && v != X509_V_OK)
        snprintf(why, len, "%s: %s", ssl_reason(), X509_verify_cert_error_string(v));
    else if (e)
        snprintf(why, len, "%s", ssl_reason());
    else if (sys_err)
        snprintf(why, len, "%s", strerror(sys_err));
    else
        snprintf(why, len, "the server closed the connection");
    ERR_clear_error();
}

/* Advances the handshake: TLS_DONE, TLS_WANT_READ / TLS_WANT_WRITE (call again when the socket
 * is ready), or TLS_ERROR with the reason in why. */
static int tls_client_handshake(struct tls_client_conn *c, char *why, size_t len)
{
    int r, e;

    errno = 0;
    r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return TLS_DONE;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    describe(c->ssl, errno, why, len);
    return TLS_ERROR;
}

/* A failed read or write as a TLS_* code; errno says why for TLS_ERROR. */
static long failed(struct tls_client_conn *c, int ret)
{
    int sys_err = errno;

    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (!ERR_peek_error()) {
            errno = sys_err ? sys_err : ECONNRESET;
            return sys_err ? TLS_ERROR : TLS_CLOSED;
        }
        break;
    default:
        break;
    }
    ERR_clear_error();
    errno = EPROTO;
    return TLS_ERROR;
}

/* Up to len (> 0) decrypted bytes: > 0 bytes, TLS_CLOSED (close_notify or EOF), TLS_WANT_READ,
 * TLS_WANT_WRITE, or TLS_ERROR. */
static long tls_client_read(struct tls_client_conn *c, void *buf, size_t len)
{
    size_t n = 0;

    errno = 0;
    if (SSL_read_ex(c->ssl, buf, len, &n))
        return (long)n;
    return failed(c, 0);
}

/* An outq_write_fn (ctx is the tls_client_conn): bytes taken, or -1 with errno EAGAIN (retry
 * with the same bytes when the socket is ready) or EPROTO / the socket's errno (failed). */
static long tls_client_write(void *ctx, const char *p, size_t len)
{
    struct tls_client_conn *c = ctx;
    size_t n = 0;
    long r;

    errno = 0;
    if (SSL_write_ex(c->ssl, p, len, &n))
        return (long)n;
    r = failed(c, 0);
    if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
        errno = EAGAIN;
    else if (r == TLS_CLOSED)
        errno = EPIPE;
    return -1;
}

/* Whether decrypted bytes wait inside OpenSSL, which epoll does not see. */
static bool tls_client_pending(const struct tls_client_conn *c)
{
    return SSL_pending(c->ssl) > 0;
}

bool tls_client_resumed(const struct transport *t)
{
    const struct tls_client_conn *c = t->ctx;
    return c && SSL_session_reused(c->ssl);
}

void tls_session_free(struct tls_session *s)
{
    SSL_SESSION_free((SSL_SESSION *)s);
}

/* ---- as a transport ----------------------------------------------------------------------- */

static int transport_handshake(struct transport *t, char *why, size_t len)
{
    return tls_client_handshake(t->ctx, why, len);
}

static long transport_recv(struct transport *t, void *buf, size_t len)
{
    return tls_client_read(t->ctx, buf, len);
}

static int transport_flush(struct transport *t, struct outq *q, struct buf_pool *pool)
{
    return outq_flush_fn(q, tls_client_write, t->ctx, pool);
}

/* The TLS client layer has no half-close: the peer gets a FIN without close_notify, which ends
 * its input all the same. */
static int transport_shutdown(struct transport *t)
{
    return shutdown(t->fd, SHUT_WR);
}

static bool transport_pending(const struct transport *t)
{
    return tls_client_pending(t->ctx);
}

static void transport_release(struct transport *t)
{
    tls_client_conn_free(t->ctx);
    t->ctx = NULL;
}

const struct transport_ops tls_client_transport = {
    .name = "tls",
    .handshake = transport_handshake,
    .recv = transport_recv,
    .flush = transport_flush,
    .shutdown = transport_shutdown,
    .pending = transport_pending,
    .release = transport_release,
    .opaque_wire = true,
    .short_read_drains = false,
};

int tls_client_transport_start(struct transport *t, struct tls_client *c, const char *name,
                               struct tls_session **slot)
{
    struct tls_client_conn *cc = tls_client_conn_new(c, t->fd, name, slot);

    if (!cc)
        return -1;
    t->ops = &tls_client_transport;
    t->ctx = cc;
    return 0;
}
