/* What the TLS files (tls*.c) share and no other file sees: the server built from a listener's
 * `tls:` settings, its certificates and its session ticket keys, and the functions one of these
 * files calls in another. Everything else uses net/tls.h. */
#ifndef GH_TLS_INTERNAL_H
#define GH_TLS_INTERNAL_H

#include "net/tls.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct cfg_tls_cert; /* src/config/config.h */

enum {
    MAX_KEY_TYPES = 8, /* OpenSSL has fewer certificate slots than this */
    TICKET_NAME = 16,  /* key name, the first bytes of every ticket */
};

struct tls_cert {
    X509 *x509;
    EVP_PKEY *key;
    STACK_OF(X509) * chain; /* intermediates sent after the certificate */
    int type;               /* EVP_PKEY base id: a name has one certificate per type */
    unsigned char *ocsp;    /* DER OCSP response to staple, or NULL */
    size_t ocsp_len;
    time_t ocsp_until; /* its nextUpdate: not stapled from then on; 0 = none given */
};

/* The certificates served for one name: at most one per key type, the first written wins. */
struct tls_group {
    const struct tls_cert *certs[MAX_KEY_TYPES];
    size_t n;
};

struct tls_name {
    char *name; /* lowercase; for a wildcard "*.example.com", "example.com" */
    bool wild;
    struct tls_group group;
};

/* A session ticket key in nginx's layout. Tickets are OpenSSL's format: key name, IV,
 * AES-CBC encrypted session, HMAC-SHA256 over all of that. */
struct ticket_key {
    unsigned char name[TICKET_NAME];
    unsigned char hmac[32];
    unsigned char aes[32];
    bool aes128; /* from a 48-byte file: 16-byte HMAC and AES-128 keys */
};

/* The keys tickets are made and opened with. A key from a file is used as long as the
 * configuration. Generated keys rotate lazily, when a ticket is made or opened after `cur`
 * served its period: `cur` then becomes `prev`, which only opens tickets (and has them
 * renewed) for one more period. Times are CLOCK_MONOTONIC milliseconds. */
struct tickets {
    pthread_mutex_t lock; /* workers make and open tickets concurrently */
    bool fixed;           /* from session_ticket_key: never rotated */
    uint64_t period;
    struct ticket_key cur, prev;
    uint64_t cur_until;  /* cur makes tickets until then */
    uint64_t prev_until; /* prev opens tickets until then; 0 = no prev */
};

struct tls_server {
    atomic_int refs; /* the configuration's, plus one per connection */
    SSL_CTX *ctx;
    struct tls_cert *certs;
    size_t ncerts;
    struct tls_name *names; /* sorted by (wild, name) */
    size_t nnames;
    struct tls_group dflt; /* loaded into ctx: unknown or missing SNI */
    bool http2;            /* offer h2 by ALPN */
    bool verify_clients;   /* client_ca: a trusted client certificate is required */
    bool lock_ready;       /* tickets.lock was initialized */
    struct tickets tickets;
};

/* tls.c: the ALPN callback (arg: the tls_server): h2 when allowed and offered, else http/1.1. */
int tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                unsigned int inlen, void *arg);

/* tls_server.c: the reason of the most recent OpenSSL error of this thread, and an empty queue. */
const char *tls_ssl_reason(void);

/* tls_cert.c: reads a whole file (PEM, DER, a ticket key), or NULL with the reason in why. */
char *tls_read_file(const char *path, size_t *len, char *why, size_t whylen);

/* tls_cert.c: loads every certificate/key pair of cfg (and its OCSP response) into s->certs,
 * and builds the table of their names for SNI (s->names, s->dflt). */
int tls_load_certs(struct tls_server *s, const struct cfg_tls *cfg, char *err, size_t errlen,
                   long *at);
int tls_build_names(struct tls_server *s, char *err, size_t errlen);
void tls_cert_clear(struct tls_cert *tc);

/* tls_cert.c: the servername callback (arg: the tls_server), which serves the certificates
 * for the client's SNI; the load-time check that OpenSSL accepts every certificate; and the
 * client_ca that client certificates must chain to. */
int tls_on_servername(SSL *ssl, int *alert, void *arg);
int tls_check_certs(struct tls_server *s, const struct cfg_tls *cfg, char *err, size_t errlen,
                    long *at);
int tls_set_client_ca(struct tls_server *s, const char *path, char *err, size_t errlen, long *at);

/* tls_ocsp.c: the `ocsp` response of certificate entry cc, kept in tc to staple; and the
 * callback that staples it. */
int tls_load_ocsp(struct tls_cert *tc, const struct cfg_tls_cert *cc, char *why, size_t whylen);
int tls_on_status(SSL *ssl, void *arg);

/* tls_ticket.c: the ticket keys of s (cfg->session_ticket_key, or random ones to rotate) and
 * the ticket callbacks on s->ctx. */
int tls_set_tickets(struct tls_server *s, const struct cfg_tls *cfg, char *err, size_t errlen,
                    long *at);

#endif
