/* Session tickets: the keys tickets are made and opened with (from session_ticket_key, or
 * random ones rotated every session_ticket_rotation), OpenSSL's ticket callbacks, and the
 * rule that a TLS 1.3 ticket resumes only for the server name it was made for. */
#include "net/tls_internal.h"
#include "config/config.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int random_key(struct ticket_key *k)
{
    k->aes128 = false;
    return RAND_bytes(k->name, sizeof k->name) == 1 && RAND_bytes(k->hmac, sizeof k->hmac) == 1 &&
                   RAND_bytes(k->aes, sizeof k->aes) == 1
               ? 0
               : -1;
}

/* Under t->lock. A key past its period moves to `prev`, which stays for one more period
 * counted from when it should have moved (so no key lives beyond two periods, however idle
 * the listener was). Should the random generator fail, the old key serves on. */
static void rotate_if_due(struct tickets *t, uint64_t now)
{
    struct ticket_key fresh;

    if (t->fixed || now < t->cur_until)
        return;
    if (random_key(&fresh) == 0) {
        uint64_t retired = t->cur_until;
        t->prev = t->cur;
        t->prev_until = retired + t->period > now ? retired + t->period : 0;
        t->cur = fresh;
        t->cur_until = now + t->period;
    }
    OPENSSL_cleanse(&fresh, sizeof fresh);
}

/* Copies the key that makes tickets now into *k. */
static void ticket_key_now(struct tickets *t, struct ticket_key *k)
{
    pthread_mutex_lock(&t->lock);
    rotate_if_due(t, now_ms());
    *k = t->cur;
    pthread_mutex_unlock(&t->lock);
}

/* Copies the key named `name` into *k: 1 the current key, 2 the previous one (the ticket is
 * then renewed), 0 none (a full handshake follows). */
static int ticket_key_named(struct tickets *t, const unsigned char *name, struct ticket_key *k)
{
    uint64_t now = now_ms();
    int found = 0;

    pthread_mutex_lock(&t->lock);
    rotate_if_due(t, now);
    if (!CRYPTO_memcmp(name, t->cur.name, TICKET_NAME)) {
        *k = t->cur;
        found = 1;
    } else if (t->prev_until > now && !CRYPTO_memcmp(name, t->prev.name, TICKET_NAME)) {
        *k = t->prev;
        found = 2;
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

static int ticket_crypto(const struct ticket_key *k, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                         EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[3];

    params[0] =
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, k->aes128 ? 16 : 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (!EVP_CipherInit_ex(cctx, k->aes128 ? EVP_aes_128_cbc() : EVP_aes_256_cbc(), NULL, k->aes,
                           iv, enc) ||
        !EVP_MAC_CTX_set_params(hctx, params))
        return -1;
    return 0;
}

/* OpenSSL's ticket callback. Making one (enc): 1, or -1 on error. Opening one: 1, 2 (renew
 * it: made with the previous key), 0 (unknown key: full handshake), -1 on error. */
static int on_ticket(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    struct tls_server *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct ticket_key k;
    int rc;

    if (enc) {
        ticket_key_now(&s->tickets, &k);
        if (RAND_bytes(iv, 16) != 1 || ticket_crypto(&k, iv, cctx, hctx, 1))
            rc = -1;
        else {
            memcpy(name, k.name, TICKET_NAME);
            rc = 1;
        }
    } else {
        rc = ticket_key_named(&s->tickets, name, &k);
        if (rc && ticket_crypto(&k, iv, cctx, hctx, 0))
            rc = -1;
    }
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

/* The host name of the ClientHello's server_name extension, or NULL when absent or malformed
 * (OpenSSL rejects those before us). Only valid while the ClientHello is being processed. */
static const unsigned char *hello_server_name(SSL *ssl, size_t *len)
{
    const unsigned char *p;
    size_t n;
    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) || n < 5 ||
        p[2] != TLSEXT_NAMETYPE_host_name)
        return NULL;
    size_t name_len = ((size_t)p[3] << 8) | p[4];
    if (name_len > n - 5)
        return NULL;
    *len = name_len;
    return p + 5;
}

/* TLS 1.3 lets a resumption name another server than the session was made for, and OpenSSL
 * then reports the new name: the 421 check would trust a name no certificate was shown for.
 * Such a ticket gets a full handshake instead (RFC 8446 4.6.1 forbids the client to offer it).
 * TLS 1.2 keeps the session's own name. The server name is read from the ClientHello itself:
 * OpenSSL has not published it yet when tickets are opened.
 *
 * A TLS 1.3 resumption always gets fresh tickets (USE_RENEW), as OpenSSL gives without this
 * callback: a client uses each TLS 1.3 ticket once (RFC 8446 C.4), so USE left it nothing to
 * resume from next time, and every other connection was a full handshake. A TLS 1.2 ticket
 * stays good until its key retires, so it is renewed only when made with the previous key. */
static SSL_TICKET_RETURN on_ticket_opened(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
                                          size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    if (status == SSL_TICKET_FATAL_ERR_MALLOC || status == SSL_TICKET_FATAL_ERR_OTHER)
        return SSL_TICKET_RETURN_ABORT;
    if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    if (SSL_version(ssl) < TLS1_3_VERSION)
        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
    const char *was = SSL_SESSION_get0_hostname(sess);
    size_t len = 0;
    const unsigned char *now = hello_server_name(ssl, &len);
    if (!was && !now)
        return SSL_TICKET_RETURN_USE_RENEW;
    if (!was || !now || strlen(was) != len || strncasecmp(was, (const char *)now, len) != 0)
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    return SSL_TICKET_RETURN_USE_RENEW;
}

/* nginx's ssl_session_ticket_key file: 80 bytes (name, HMAC-SHA256 key, AES-256 key) or 48
 * (name, 16-byte HMAC key, AES-128 key), e.g. from `openssl rand 80 > ticket.key`. */
static int load_ticket_key(struct ticket_key *k, const char *path, char *err, size_t errlen)
{
    char why[300];
    size_t len;
    unsigned char *b = (unsigned char *)tls_read_file(path, &len, why, sizeof why);
    size_t half;

    if (!b) {
        snprintf(err, errlen, "cannot use session_ticket_key %s: %s", path, why);
        return -1;
    }
    if (len != 80 && len != 48) {
        snprintf(err, errlen,
                 "cannot use session_ticket_key %s: it holds %zu bytes, not 80 (or 48) as "
                 "made by `openssl rand 80`",
                 path, len);
        OPENSSL_cleanse(b, len);
        free(b);
        return -1;
    }
    half = (len - TICKET_NAME) / 2;
    memcpy(k->name, b, TICKET_NAME);
    memcpy(k->hmac, b + TICKET_NAME, half);
    memcpy(k->aes, b + TICKET_NAME + half, half);
    k->aes128 = len == 48;
    OPENSSL_cleanse(b, len);
    free(b);
    return 0;
}

int tls_set_tickets(struct tls_server *s, const struct cfg_tls *cfg, char *err, size_t errlen,
                    long *at)
{
    struct tickets *t = &s->tickets;

    if (cfg->session_ticket_key) {
        t->fixed = true;
        if (load_ticket_key(&t->cur, cfg->session_ticket_key, err, errlen)) {
            *at = TLS_AT_TICKET_KEY;
            return -1;
        }
    } else {
        t->period = cfg->session_ticket_rotation ? cfg->session_ticket_rotation : 12 * 3600000;
        t->cur_until = now_ms() + t->period;
        if (random_key(&t->cur)) {
            snprintf(err, errlen, "cannot make session ticket keys: %s", tls_ssl_reason());
            return -1;
        }
    }
    SSL_CTX_set_app_data(s->ctx, s);
    if (!SSL_CTX_set_tlsext_ticket_key_evp_cb(s->ctx, on_ticket) ||
        !SSL_CTX_set_session_ticket_cb(s->ctx, NULL, on_ticket_opened, NULL)) {
        snprintf(err, errlen, "cannot set up session tickets: %s", tls_ssl_reason());
        return -1;
    }
    return 0;
}
