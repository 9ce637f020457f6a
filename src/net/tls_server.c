/* The TLS server of a listener: the SSL_CTX built from its `tls:` settings (protocol versions,
 * ciphers, options, and the callbacks of tls_cert.c, tls_ocsp.c and tls_ticket.c), shared by
 * every worker and freed with its last reference; and OpenSSL's error text.
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

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* kTLS is off unless built with -DGH_KTLS: with kTLS, OpenSSL 3.0's SSL_write sends from the
 * caller's buffer in place and ignores SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, so a write
 * retried after WANT_WRITE from a moved buffer (our output queue gathers into a stack buffer,
 * and handlers' buffers move) sends whatever the old address holds now: corrupted responses
 * (openssl/openssl#21202, fixed by #31146 in 2026, after the 3.0.19 of Debian 12). Build with
 * GH_KTLS only against an OpenSSL that has the fix. */
#if defined(GH_KTLS) && defined(SSL_OP_ENABLE_KTLS)
/* Whether the kernel offers kTLS (CONFIG_TLS, the "tls" TCP upper layer protocol): putting
 * it on a TCP socket that is not connected fails with ENOTCONN when the kernel has it (loading
 * the module if needed), with ENOENT when it has not. */
static bool ktls_available(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int r = setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", 3);
    int e = errno;
    close(fd);
    return r == 0 || e == ENOTCONN;
}
#else
static bool ktls_available(void)
{
    return false;
}
#endif

/* Options, with why:
 * - our cipher order, not the client's: the list puts the strongest first, and a client that
 *   prefers a weaker suite it also offers does not get it (testssl.sh rates the lack HIGH);
 *   ChaCha20 still wins for a client that lists it first (phones without AES hardware);
 * - no renegotiation: a client-initiated one costs us a handshake for free, and nothing of
 *   ours needs it;
 * - an EOF without close_notify reads as a close: HTTP framing, not TLS, tells a truncated
 *   message, and most clients skip close_notify;
 * - read-ahead: one read() takes in several records instead of two reads per record (it also
 *   keeps OpenSSL 3.0 from handing the receiving side to the kernel);
 * - kTLS for sending, when built with GH_KTLS and the kernel has it: the kernel then encrypts
 *   (for the ciphers it knows: AES-GCM in TLS 1.2 and 1.3), and a static file goes out with
 *   SSL_sendfile without passing through user space (docs/internals.md, "Static files and
 *   sendfile");
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
#ifdef SSL_OP_ENABLE_KTLS
    if (ktls_available())
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
#endif
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
    SSL_CTX_set_alpn_select_cb(s->ctx, tls_on_alpn, s);
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
