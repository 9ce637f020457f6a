/* TLS connections: the handshake (refusing plaintext HTTP sent to a TLS port), reads and
 * writes on a non-blocking socket, close_notify, and what the handshake settled (the ALPN
 * protocol, SNI, the client certificate's subject) or why it failed. */
#include "net/tls_internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- ALPN ---- */

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
int tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                unsigned int inlen, void *arg)
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

bool tls_conn_ktls_send(const struct tls_conn *c)
{
#ifndef OPENSSL_NO_KTLS
    return BIO_get_ktls_send(SSL_get_wbio(c->ssl));
#else
    (void)c;
    return false;
#endif
}

long tls_send_file(struct tls_conn *c, int fd, uint64_t off, size_t len)
{
#ifndef OPENSSL_NO_KTLS
    ERR_clear_error();
    errno = 0;
    ossl_ssize_t n = SSL_sendfile(c->ssl, fd, (off_t)off, io_len(len), 0);
    if (n >= 0)
        return (long)n;
    int e = errno;
    ERR_clear_error();
    if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == EBUSY)
        return TLS_WANT_WRITE;
    c->fail = FAIL_SYSCALL;
    c->sys_err = e ? e : EIO;
    errno = c->sys_err; /* the caller tells a file's fault from the client's */
    return TLS_ERROR;
#else
    (void)c, (void)fd, (void)off, (void)len;
    errno = ENOTSUP;
    return TLS_ERROR;
#endif
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
