/* Unit tests for the TLS wrapper: certificates made at run time with the openssl command, a
 * server built with tls_server_new, and an in-process OpenSSL client on the other end of a
 * socketpair, both non-blocking, stepped in turn. */
#include "check.h"
#include "config/config.h"
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/gatehouse-tls-XXXXXX";

/* ---- certificates ---- */

static char *path_of(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *p = bufs[next++ % 8];

    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* A self-signed certificate `name`.crt with key `name`.key; `key` is "rsa" or "ec". */
static int make_cert(const char *name, const char *key, const char *cn, const char *sans)
{
    char cmd[1024];
    const char *newkey = !strcmp(key, "rsa") ? "rsa:2048" : "ec -pkeyopt ec_paramgen_curve:P-256";

    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey %s -nodes -days 2 -subj /CN=%s -addext "
             "subjectAltName=%s -keyout %s/%s.key -out %s/%s.crt 2>/dev/null",
             newkey, cn, sans, dir, name, dir, name);
    return system(cmd);
}

/* A shell command run in the test directory. */
__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "cd %s && (", dir);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n - 16, fmt, ap);
    va_end(ap);
    strcat(cmd, ") 2>/dev/null");
    return system(cmd);
}

/* A certificate `name`.crt signed by ca.crt, with serial `serial`. */
static int make_signed(const char *name, const char *subj, const char *ext, const char *serial)
{
    return sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '%s' "
              "-keyout %s.key -out %s.csr && printf '%s\n' > %s.ext && "
              "openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key -set_serial %s -days 2 "
              "-extfile %s.ext -out %s.crt",
              subj, name, name, ext, name, name, serial, name, name);
}

/* A CA; a client certificate it signed (alice) and one it did not (mallory); a server
 * certificate it signed, with an OCSP response from the CA about it; ticket key files. */
static int make_pki(void)
{
    return sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
              "-subj '/CN=Gatehouse Test CA' -keyout ca.key -out ca.crt") |
           make_signed("alice", "/O=Example Corp/CN=alice", "extendedKeyUsage=clientAuth",
                       "0x2001") |
           make_cert("mallory", "ec", "mallory", "DNS:mallory.test") |
           make_signed("ocsp-srv", "/CN=ocsp.test", "subjectAltName=DNS:ocsp.test", "0x1001") |
           sh("printf 'V\t301231235959Z\t\t1001\tunknown\t/CN=ocsp.test\n' > index.txt && "
              "openssl ocsp -index index.txt -rsigner ca.crt -rkey ca.key -CA ca.crt "
              "-issuer ca.crt -cert ocsp-srv.crt -respout resp.der -ndays 1") |
           sh("printf '\060\003\012\001\006' > unauthorized.der") | /* status 6 only */
           sh("openssl rand 80 > ticket80.key && openssl rand 80 > other80.key && "
              "openssl rand 48 > ticket48.key && openssl rand 79 > ticket79.key");
}

static int make_certs(void)
{
    if (!mkdtemp(dir))
        return -1;
    return make_cert("ec-a", "ec", "ec-a", "DNS:a.example.com,DNS:www.a.example.com") |
           make_cert("rsa-a", "rsa", "rsa-a", "DNS:A.Example.com") |
           make_cert("wild", "ec", "wild", "DNS:*.wild.example.com") |
           make_cert("exact", "ec", "exact", "DNS:x.wild.example.com") |
           make_cert("other-rsa", "rsa", "other", "DNS:other.example.com") | make_pki();
}

static void remove_certs(void)
{
    char cmd[300];

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* ---- the server under test ---- */

static struct cfg_tls_cert pairs[4];

/* Certificates by name: "ec-a" is ec-a.crt with ec-a.key. */
static struct tls_server *server_with(const char *const *names, size_t n, char *err, size_t errlen)
{
    struct cfg_tls cfg = {.certs = pairs, .ncerts = n, .min_version = 0x0303};
    char crt[4][256], key[4][256];

    for (size_t i = 0; i < n; i++) {
        snprintf(crt[i], sizeof crt[i], "%s/%s.crt", dir, names[i]);
        snprintf(key[i], sizeof key[i], "%s/%s.key", dir, names[i]);
        pairs[i] = (struct cfg_tls_cert){.cert = crt[i], .key = key[i]};
    }
    return tls_server_new(&cfg, err, errlen);
}

static struct tls_server *main_server(void)
{
    static const char *const names[] = {"ec-a", "rsa-a", "wild", "exact"};
    char err[600] = "";
    struct tls_server *s = server_with(names, 4, err, sizeof err);

    if (!s)
        fprintf(stderr, "tls_server_new: %s\n", err);
    return s;
}

/* Builds a server from one cert/key pair and expects failure with `want` in the message. */
static void expect_bad_pair(int line, const char *crt, const char *key, const char *want)
{
    struct cfg_tls_cert pair = {.cert = path_of(crt), .key = path_of(key)};
    struct cfg_tls cfg = {.certs = &pair, .ncerts = 1};
    char err[600] = "";
    struct tls_server *s = tls_server_new(&cfg, err, sizeof err);

    if (!s && strstr(err, want) && strstr(err, "cannot use certificate ") && !strchr(err, '\n')) {
        check_passed++;
        return;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: expected failure with '%s', got '%s'\n", __FILE__, line, want, err);
    tls_server_free(s);
}

static void test_server_new(void)
{
    static const char *const ok[] = {"rsa-a"};
    char err[600] = "", want[400], ec_crt[256], ec_key[256], rsa_crt[256];
    struct tls_server *s = server_with(ok, 1, err, sizeof err);
    struct cfg_tls_cert two[2] = {{.cert = ec_crt, .key = ec_key},
                                  {.cert = rsa_crt, .key = ec_key}};
    struct cfg_tls cfg = {.certs = two, .ncerts = 2};
    long at = 99;

    snprintf(ec_crt, sizeof ec_crt, "%s/ec-a.crt", dir);
    snprintf(ec_key, sizeof ec_key, "%s/ec-a.key", dir);
    snprintf(rsa_crt, sizeof rsa_crt, "%s/rsa-a.crt", dir);

    CHECK(s != NULL);
    tls_server_free(s);
    tls_server_free(NULL);
    expect_bad_pair(__LINE__, "ec-a.crt", "rsa-a.key", "does not match the certificate");
    expect_bad_pair(__LINE__, "rsa-a.crt", "other-rsa.key", "does not match the certificate");
    expect_bad_pair(__LINE__, "missing.crt", "rsa-a.key", "No such file or directory");
    expect_bad_pair(__LINE__, "rsa-a.crt", "missing.key", "No such file or directory");
    expect_bad_pair(__LINE__, "rsa-a.key", "rsa-a.key", "no PEM certificate in");
    expect_bad_pair(__LINE__, "rsa-a.crt", "rsa-a.crt", "no PEM private key in");
    expect_bad_pair(__LINE__, ".", "rsa-a.key", "is not a regular file");
    /* The fault is located: the second entry. */
    CHECK(tls_server_new_at(&cfg, err, sizeof err, &at) == NULL);
    CHECK_EQ_INT(at, 1);
    snprintf(want, sizeof want, "cannot use certificate %s: the key %s does not match", two[1].cert,
             two[1].key);
    CHECK(!strncmp(err, want, strlen(want)));
    cfg = (struct cfg_tls){.certs = two, .ncerts = 1, .ciphers = "NOPE"};
    CHECK(tls_server_new_at(&cfg, err, sizeof err, &at) == NULL);
    CHECK_EQ_INT(at, TLS_AT_CIPHERS);
    CHECK(strstr(err, "bad 'ciphers' 'NOPE'") != NULL);
    cfg = (struct cfg_tls){.certs = two, .ncerts = 1, .ciphersuites = "NOPE"};
    CHECK(tls_server_new_at(&cfg, err, sizeof err, &at) == NULL);
    CHECK_EQ_INT(at, TLS_AT_CIPHERSUITES);
    cfg = (struct cfg_tls){.certs = two, .ncerts = 1, .min_version = 0x0302};
    CHECK(tls_server_new(&cfg, err, sizeof err) == NULL);
    cfg.ncerts = 0;
    CHECK(tls_server_new(&cfg, err, sizeof err) == NULL);
    CHECK(ERR_peek_error() == 0); /* nothing left in this thread's error queue */
}

/* ---- a client on the other end ---- */

struct pair {
    struct tls_conn *srv;
    SSL *cli;
    int sfd, cfd;
    int shs; /* the server's last handshake result */
};

struct client_opts {
    const char *sni;
    const char *alpn; /* wire format, or NULL */
    size_t alpn_len;
    int max_version;      /* 0: any */
    const char *ciphers;  /* TLS 1.2 list, or NULL */
    const char *sigalgs;  /* or NULL */
    SSL_SESSION *session; /* to resume, or NULL */
    const char *cert;     /* client certificate: name.crt with name.key, or NULL */
    bool status;          /* ask for the certificate's OCSP status */
};

static SSL_CTX *client_ctx;

static int pair_open(struct pair *p, struct tls_server *s, const struct client_opts *o)
{
    int sv[2];

    memset(p, 0, sizeof *p);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
        return -1;
    p->sfd = sv[0];
    p->cfd = sv[1];
    p->srv = tls_conn_new(s, p->sfd);
    p->cli = SSL_new(client_ctx);
    if (!p->srv || !p->cli || !SSL_set_fd(p->cli, p->cfd))
        return -1;
    SSL_set_connect_state(p->cli);
    if (o->sni)
        SSL_set_tlsext_host_name(p->cli, o->sni);
    if (o->alpn)
        SSL_set_alpn_protos(p->cli, (const unsigned char *)o->alpn, (unsigned)o->alpn_len);
    if (o->max_version) {
        SSL_set_min_proto_version(p->cli, TLS1_VERSION);
        SSL_set_max_proto_version(p->cli, o->max_version);
    }
    if (o->ciphers)
        SSL_set_cipher_list(p->cli, o->ciphers);
    if (o->sigalgs)
        SSL_set1_sigalgs_list(p->cli, o->sigalgs);
    if (o->session) {
        /* A copy: an OpenSSL client marks a TLS 1.3 session it resumed as used up, and
         * tests offer one session several times. */
        SSL_SESSION *copy = SSL_SESSION_dup(o->session);
        if (!copy || !SSL_set_session(p->cli, copy)) {
            SSL_SESSION_free(copy);
            return -1;
        }
        SSL_SESSION_free(copy);
    }
    if (o->cert) {
        char crt[300], key[300];
        snprintf(crt, sizeof crt, "%s/%s.crt", dir, o->cert);
        snprintf(key, sizeof key, "%s/%s.key", dir, o->cert);
        if (SSL_use_certificate_file(p->cli, crt, SSL_FILETYPE_PEM) != 1 ||
            SSL_use_PrivateKey_file(p->cli, key, SSL_FILETYPE_PEM) != 1)
            return -1;
    }
    if (o->status)
        SSL_set_tlsext_status_type(p->cli, TLSEXT_STATUSTYPE_ocsp);
    return 0;
}

static void pair_close(struct pair *p)
{
    tls_conn_free(p->srv);
    SSL_free(p->cli);
    close(p->sfd);
    if (p->cfd >= 0)
        close(p->cfd);
    ERR_clear_error();
}

/* Steps both sides until the server is done or fails; returns the server's result. */
static int handshake(struct pair *p)
{
    int srv = TLS_WANT_READ;

    for (int i = 0; i < 100; i++) {
        int cli = SSL_do_handshake(p->cli);
        srv = tls_handshake(p->srv);
        if (srv == TLS_ERROR || srv == TLS_CLOSED)
            break;
        if (srv == TLS_DONE && cli == 1)
            break;
    }
    p->shs = srv;
    return srv;
}

static int connect_with(struct pair *p, struct tls_server *s, const struct client_opts *o)
{
    if (pair_open(p, s, o))
        return TLS_ERROR;
    return handshake(p);
}

/* The common name of the certificate the client was served ("" if none). */
static const char *served(const struct pair *p)
{
    static char cn[64];
    X509 *x = SSL_get0_peer_certificate(p->cli);

    cn[0] = '\0';
    if (x)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    return cn;
}

static const char *sni_pick(struct tls_server *s, const char *sni, const char *sigalgs)
{
    static char cn[64];
    struct client_opts o = {.sni = sni, .sigalgs = sigalgs};
    struct pair p;

    strcpy(cn, connect_with(&p, s, &o) == TLS_DONE ? served(&p) : "(failed)");
    pair_close(&p);
    return cn;
}

#define CHECK_PICK(s, sni, sigalgs, want)                                                          \
    do {                                                                                           \
        const char *sni_ = (sni), *got_ = sni_pick(s, sni_, sigalgs);                              \
        if (!strcmp(got_, want)) {                                                                 \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: SNI %s served %s, expected %s\n", __FILE__, __LINE__,          \
                    sni_ ? sni_ : "(none)", got_, want);                                           \
        }                                                                                          \
    } while (0)

/* A certificate with no usable name (no subjectAltName, no CN) is still served, as the default:
 * its name table is empty. That table was sorted with qsort(NULL, 0, ...), undefined behaviour
 * that UBSan (the ASan build) stops at. */
static void test_server_without_names(void)
{
    static const char *const nameless[] = {"nameless"};
    char err[600] = "";

    CHECK(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /O=nameless -keyout nameless.key -out nameless.crt") == 0);
    struct tls_server *s = server_with(nameless, 1, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "tls_server_new: %s\n", err);
        return;
    }
    struct client_opts o = {.sni = "any.example.com"};
    struct pair p;
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK(SSL_get0_peer_certificate(p.cli) != NULL);
    pair_close(&p);
    tls_server_free(s);
}

static void test_sni(struct tls_server *s)
{
    static const char rsa_only[] = "RSA-PSS+SHA256:RSA+SHA256";
    struct client_opts o = {.sni = "X.wild.example.com"};
    struct pair p;

    CHECK_PICK(s, "a.example.com", NULL, "ec-a");
    CHECK_PICK(s, "a.example.com", rsa_only, "rsa-a"); /* same names, the other key type */
    CHECK_PICK(s, "A.EXAMPLE.COM", NULL, "ec-a");
    CHECK_PICK(s, "www.a.example.com", NULL, "ec-a");
    CHECK_PICK(s, "y.wild.example.com", NULL, "wild");
    CHECK_PICK(s, "Y.WILD.example.com", NULL, "wild");
    CHECK_PICK(s, "x.wild.example.com", NULL, "exact");  /* exact beats wildcard */
    CHECK_PICK(s, "a.b.wild.example.com", NULL, "ec-a"); /* one label only: default */
    CHECK_PICK(s, "wild.example.com", NULL, "ec-a");
    CHECK_PICK(s, "unknown.test", NULL, "ec-a");
    CHECK_PICK(s, "unknown.test", rsa_only, "rsa-a"); /* the default has both types */
    CHECK_PICK(s, NULL, NULL, "ec-a");
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK(tls_conn_sni(p.srv) && !strcmp(tls_conn_sni(p.srv), "X.wild.example.com"));
    pair_close(&p);
    o.sni = NULL;
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK(tls_conn_sni(p.srv) == NULL);
    pair_close(&p);
}

static void test_alpn(struct tls_server *s)
{
    struct client_opts o = {.alpn = "\x02h2\x08http/1.1", .alpn_len = 12};
    const unsigned char *sel;
    unsigned n;
    struct pair p;
    char err[200];

    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK(tls_conn_alpn(p.srv) && !strcmp(tls_conn_alpn(p.srv), "http/1.1"));
    SSL_get0_alpn_selected(p.cli, &sel, &n);
    CHECK(n == 8 && !memcmp(sel, "http/1.1", 8));
    pair_close(&p);
    o = (struct client_opts){0};
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK(tls_conn_alpn(p.srv) == NULL);
    pair_close(&p);
    o = (struct client_opts){.alpn = "\x02h2", .alpn_len = 3}; /* h2 is not offered */
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_ERROR);
    CHECK(!strcmp(tls_last_error(p.srv, err, sizeof err), "no application protocol"));
    pair_close(&p);
}

static void expect_refused(int line, struct tls_server *s, const struct client_opts *o,
                           const char *want)
{
    struct pair p;
    char err[200] = "";
    int r = connect_with(&p, s, o);

    tls_last_error(p.srv, err, sizeof err);
    if (r == TLS_ERROR && !strcmp(err, want)) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "%s:%d: got %d '%s', expected '%s'\n", __FILE__, line, r, err, want);
    }
    pair_close(&p);
}

static void test_refused(struct tls_server *s)
{
    struct client_opts old = {.max_version = TLS1_1_VERSION, .ciphers = "DEFAULT:@SECLEVEL=0"};
    struct client_opts rsa_kx = {.max_version = TLS1_2_VERSION, .ciphers = "AES128-SHA"};

    expect_refused(__LINE__, s, &old, "client offers TLS 1.1 at most, min_version is TLS 1.2");
    expect_refused(__LINE__, s, &rsa_kx, "no shared cipher");
}

/* Plaintext HTTP is caught before OpenSSL consumes any of it. */
static void test_plaintext(struct tls_server *s)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct client_opts o = {0};
    struct pair p;
    char err[200], buf[64];

    CHECK_EQ_INT(pair_open(&p, s, &o), 0);
    CHECK_EQ_INT(tls_handshake(p.srv), TLS_WANT_READ);
    CHECK(write(p.cfd, req, sizeof req - 1) == (ssize_t)sizeof req - 1);
    CHECK_EQ_INT(tls_handshake(p.srv), TLS_ERROR);
    CHECK(!strcmp(tls_last_error(p.srv, err, sizeof err), "plaintext HTTP on a TLS port"));
    CHECK(read(p.sfd, buf, sizeof buf) == (ssize_t)sizeof req - 1 && !memcmp(buf, req, 4));
    pair_close(&p);
    /* A client that connects and leaves. */
    CHECK_EQ_INT(pair_open(&p, s, &o), 0);
    close(p.cfd);
    p.cfd = -1;
    CHECK_EQ_INT(tls_handshake(p.srv), TLS_CLOSED);
    pair_close(&p);
    /* One that sends its hello and leaves without reading the answer: the close is a reset
     * (unread data), which is leaving too, not a TLS failure worth a log line. */
    CHECK_EQ_INT(pair_open(&p, s, &o), 0);
    CHECK(SSL_do_handshake(p.cli) <= 0);
    CHECK_EQ_INT(tls_handshake(p.srv), TLS_WANT_READ); /* the server's flight was sent */
    close(p.cfd);
    p.cfd = -1;
    CHECK_EQ_INT(tls_handshake(p.srv), TLS_CLOSED);
    pair_close(&p);
}

/* Reads from the client into buf until `want` bytes or no progress. */
static size_t client_read(SSL *cli, char *buf, size_t want)
{
    size_t got = 0, n;

    while (got < want && SSL_read_ex(cli, buf + got, want - got, &n))
        got += n;
    ERR_clear_error();
    return got;
}

static void test_small_data(struct pair *p)
{
    char buf[64];
    size_t n;

    CHECK(SSL_write_ex(p->cli, "hello", 5, &n) && n == 5);
    CHECK(SSL_write_ex(p->cli, "world", 5, &n) && n == 5);
    CHECK_EQ_INT(tls_read(p->srv, buf, 2), 2);
    CHECK(!memcmp(buf, "he", 2));
    CHECK(tls_pending(p->srv)); /* the rest of the record */
    CHECK_EQ_INT(tls_read(p->srv, buf, sizeof buf), 3);
    CHECK(tls_pending(p->srv)); /* the second record, read ahead */
    CHECK_EQ_INT(tls_read(p->srv, buf, sizeof buf), 5);
    CHECK(!memcmp(buf, "world", 5));
    CHECK(!tls_pending(p->srv));
    CHECK_EQ_INT(tls_read(p->srv, buf, sizeof buf), TLS_WANT_READ);
    CHECK(!tls_pending(p->srv));
    CHECK_EQ_INT(tls_write(p->srv, "pong", 4), 4);
    CHECK_EQ_INT(client_read(p->cli, buf, 4), 4);
    CHECK(!memcmp(buf, "pong", 4));
}

/* 1 MiB through a socket buffer much smaller than that: partial writes and TLS_WANT_WRITE,
 * each retry with the same bytes, while the client drains. */
static void test_big_write(struct pair *p)
{
    enum { BIG = 1 << 20 };
    unsigned char *out = malloc(BIG), *in = malloc(BIG);
    size_t sent = 0, got = 0;
    int partial = 0, waits = 0;

    for (size_t i = 0; i < BIG; i++)
        out[i] = (unsigned char)(i * 7 + i / 251);
    /* Fill the socket first, so that the writer has to wait. */
    for (;;) {
        long r = tls_write(p->srv, out + sent, BIG - sent);
        if (r <= 0) {
            waits += r == TLS_WANT_WRITE;
            break;
        }
        partial += (size_t)r < BIG - sent;
        sent += (size_t)r;
    }
    for (int spins = 0; got < BIG && spins < 100000; spins++) {
        if (sent < BIG) {
            long r = tls_write(p->srv, out + sent, BIG - sent);
            if (r > 0) {
                partial += (size_t)r < BIG - sent;
                sent += (size_t)r;
            } else {
                CHECK(r == TLS_WANT_WRITE);
                waits++;
            }
        }
        got += client_read(p->cli, (char *)in + got, BIG - got);
    }
    CHECK_EQ_INT(sent, BIG);
    CHECK_EQ_INT(got, BIG);
    CHECK(!memcmp(in, out, BIG));
    CHECK(partial > 0);
    CHECK(waits > 0);
    free(out);
    free(in);
}

static void test_data(struct tls_server *s)
{
    struct client_opts o = {.sni = "a.example.com"};
    struct pair p;
    char buf[16];

    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK_EQ_INT(tls_handshake(p.srv), TLS_DONE); /* idempotent once done */
    test_small_data(&p);
    test_big_write(&p);
    /* close_notify from the client. */
    SSL_shutdown(p.cli);
    CHECK_EQ_INT(tls_read(p.srv, buf, sizeof buf), TLS_CLOSED);
    pair_close(&p);
    /* close_notify from us, and a bare EOF from the client. */
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    tls_shutdown(p.srv);
    tls_shutdown(p.srv);
    CHECK(SSL_read(p.cli, buf, sizeof buf) == 0 &&
          SSL_get_error(p.cli, 0) == SSL_ERROR_ZERO_RETURN);
    close(p.cfd);
    p.cfd = -1;
    CHECK_EQ_INT(tls_read(p.srv, buf, sizeof buf), TLS_CLOSED);
    pair_close(&p);
}

/* TLS 1.2 resumes from the server's session cache, TLS 1.3 from a ticket. */
static void test_resumption(struct tls_server *s, int version)
{
    struct client_opts o = {.sni = "a.example.com", .max_version = version};
    SSL_SESSION *sess;
    struct pair p;
    char buf[8];

    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK_EQ_INT(tls_write(p.srv, "x", 1), 1);
    CHECK_EQ_INT(client_read(p.cli, buf, 1), 1); /* TLS 1.3 tickets arrive before the data */
    sess = SSL_get1_session(p.cli);
    CHECK(sess != NULL && !SSL_session_reused(p.cli));
    /* The client says goodbye; we just free: the session must survive that. */
    SSL_shutdown(p.cli);
    pair_close(&p);
    o.session = sess;
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK(SSL_session_reused(p.cli));
    pair_close(&p);
    SSL_SESSION_free(sess);
}

static void test_min_version_13(void)
{
    struct cfg_tls_cert pair = {.cert = path_of("ec-a.crt"), .key = path_of("ec-a.key")};
    struct cfg_tls cfg = {.certs = &pair, .ncerts = 1, .min_version = 0x0304};
    struct client_opts o = {.max_version = TLS1_2_VERSION};
    char err[600];
    struct tls_server *s = tls_server_new(&cfg, err, sizeof err);
    struct pair p;

    CHECK(s != NULL);
    if (!s)
        return;
    expect_refused(__LINE__, s, &o, "client offers TLS 1.2 at most, min_version is TLS 1.3");
    o.max_version = 0;
    CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
    CHECK_EQ_INT(SSL_version(p.cli), TLS1_3_VERSION);
    pair_close(&p);
    tls_server_free(s);
}

/* A connection keeps its server alive after the configuration let go of it. */
static void test_lifetime(void)
{
    struct tls_server *s = main_server();
    struct client_opts o = {.sni = "y.wild.example.com"};
    struct pair p;

    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_EQ_INT(pair_open(&p, s, &o), 0);
    tls_server_free(s);
    CHECK_EQ_INT(handshake(&p), TLS_DONE);
    CHECK(!strcmp(served(&p), "wild"));
    pair_close(&p);
}

/* A server for ec-a with the given extra settings in *cfg (certs are filled in here). */
static struct tls_server *server_cfg(struct cfg_tls *cfg, struct cfg_tls_cert *cert,
                                     const char *name, char *err, size_t errlen, long *at)
{
    static char crt[4][256], key[4][256];
    static int next;
    int i = next++ % 4;

    snprintf(crt[i], sizeof crt[i], "%s/%s.crt", dir, name);
    snprintf(key[i], sizeof key[i], "%s/%s.key", dir, name);
    *cert = (struct cfg_tls_cert){.cert = crt[i], .key = key[i]};
    cfg->certs = cert;
    cfg->ncerts = 1;
    return tls_server_new_at(cfg, err, errlen, at);
}

/* ---- session tickets ---- */

/* Connects (resuming `sess` if given), waits for the tickets, and returns the client's
 * session; *reused says whether the handshake resumed. NULL if the handshake failed. */
static SSL_SESSION *session_from(struct tls_server *s, int version, SSL_SESSION *sess, bool *reused)
{
    struct client_opts o = {.sni = "a.example.com", .max_version = version, .session = sess};
    SSL_SESSION *out = NULL;
    struct pair p;
    char buf[1];

    *reused = false;
    if (connect_with(&p, s, &o) == TLS_DONE && tls_write(p.srv, "x", 1) == 1 &&
        client_read(p.cli, buf, 1) == 1) {
        *reused = SSL_session_reused(p.cli);
        out = SSL_get1_session(p.cli);
        SSL_shutdown(p.cli);
    }
    pair_close(&p);
    return out;
}

/* The key name a ticket was made with (its first 16 bytes), as a number to compare. */
static unsigned long long ticket_name(const SSL_SESSION *sess)
{
    const unsigned char *t;
    size_t len;
    unsigned long long v = 0;

    if (!sess)
        return 0;
    SSL_SESSION_get0_ticket(sess, &t, &len);
    for (size_t i = 0; i < 8 && len >= 16; i++)
        v = v << 8 | t[i];
    return v;
}

static struct tls_server *ticket_server(const char *keyfile, uint32_t rotation)
{
    struct cfg_tls cfg = {.session_ticket_key = keyfile ? path_of(keyfile) : NULL,
                          .session_ticket_rotation = rotation};
    struct cfg_tls_cert cert;
    char err[600] = "";
    long at;
    struct tls_server *s = server_cfg(&cfg, &cert, "ec-a", err, sizeof err, &at);

    if (!s)
        fprintf(stderr, "ticket server: %s\n", err);
    return s;
}

/* Two servers built from the same key file resume each other's sessions: the tickets, not
 * a shared cache (TLS 1.2 offers the session ID as well; the second server has never seen
 * it). A server with another key makes a full handshake. */
static void test_ticket_file(const char *keyfile, int version)
{
    struct tls_server *a = ticket_server(keyfile, 0), *b = ticket_server(keyfile, 0);
    struct tls_server *other = ticket_server("other80.key", 0);
    SSL_SESSION *s1 = NULL, *s2 = NULL, *s3 = NULL;
    bool reused;

    CHECK(a && b && other);
    if (a && b && other) {
        s1 = session_from(a, version, NULL, &reused);
        CHECK(s1 != NULL && !reused && SSL_SESSION_has_ticket(s1));
        s2 = session_from(b, version, s1, &reused);
        CHECK(s2 != NULL && reused);
        s3 = session_from(other, version, s2, &reused);
        CHECK(s3 != NULL && !reused);
    }
    SSL_SESSION_free(s1);
    SSL_SESSION_free(s2);
    SSL_SESSION_free(s3);
    tls_server_free(a);
    tls_server_free(b);
    tls_server_free(other);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* Generated keys rotate every period (500 ms here); a ticket made with the previous key
 * still resumes, renewed with the new key, for one more period; then it is refused. */
static void test_ticket_rotation(int version)
{
    struct tls_server *s = ticket_server(NULL, 500);
    SSL_SESSION *s1, *s2, *again, *late, *s3;
    bool reused;

    CHECK(s != NULL);
    if (!s)
        return;
    s1 = session_from(s, version, NULL, &reused); /* t = 0, key 1 */
    CHECK(s1 != NULL && !reused && ticket_name(s1) != 0);
    again = session_from(s, version, s1, &reused);
    CHECK(again != NULL && reused && ticket_name(again) == ticket_name(s1));
    sleep_ms(600);
    s2 = session_from(s, version, s1, &reused); /* key 2 now; key 1 opens until 1000 */
    CHECK(s2 != NULL && reused);
    CHECK(ticket_name(s2) != 0 && ticket_name(s2) != ticket_name(s1)); /* renewed */
    sleep_ms(600);
    late = session_from(s, version, s1, &reused); /* key 1 is gone */
    CHECK(late != NULL && !reused);
    s3 = session_from(s, version, s2, &reused); /* key 2 is the previous one now */
    CHECK(s3 != NULL && reused && ticket_name(s3) != ticket_name(s2));
    SSL_SESSION_free(s1);
    SSL_SESSION_free(s2);
    SSL_SESSION_free(again);
    SSL_SESSION_free(late);
    SSL_SESSION_free(s3);
    tls_server_free(s);
}

static void test_tickets(void)
{
    struct cfg_tls cfg = {0};
    struct cfg_tls_cert cert;
    char err[600];
    long at;

    test_ticket_file("ticket80.key", 0);
    test_ticket_file("ticket80.key", TLS1_2_VERSION);
    test_ticket_file("ticket48.key", 0);
    test_ticket_file("ticket48.key", TLS1_2_VERSION);
    cfg.session_ticket_key = path_of("ticket79.key");
    CHECK(server_cfg(&cfg, &cert, "ec-a", err, sizeof err, &at) == NULL);
    CHECK_EQ_INT(at, TLS_AT_TICKET_KEY);
    CHECK(strstr(err, "cannot use session_ticket_key ") == err &&
          strstr(err, "it holds 79 bytes, not 80 (or 48)"));
    cfg.session_ticket_key = path_of("missing.key");
    CHECK(server_cfg(&cfg, &cert, "ec-a", err, sizeof err, &at) == NULL);
    CHECK_EQ_INT(at, TLS_AT_TICKET_KEY);
    CHECK(strstr(err, "No such file") != NULL);
    test_ticket_rotation(0);
    test_ticket_rotation(TLS1_2_VERSION);
}

/* ---- client certificates ---- */

/* A refused handshake also reaches the client as an alert. */
static void expect_cert_refused(int line, struct tls_server *s, const struct client_opts *o,
                                const char *want)
{
    struct pair p;
    char err[200] = "", buf[8];
    int r = connect_with(&p, s, o), cli;

    tls_last_error(p.srv, err, sizeof err);
    cli = SSL_read(p.cli, buf, sizeof buf);
    if (r == TLS_ERROR && !strncmp(err, want, strlen(want)) && cli <= 0 &&
        SSL_get_error(p.cli, cli) == SSL_ERROR_SSL &&
        tls_conn_client_subject(p.srv, buf, 8) == NULL) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "%s:%d: got %d '%s' (client %d), expected '%s'\n", __FILE__, line, r, err,
                cli, want);
    }
    pair_close(&p);
}

/* s and twin trust ca.crt, plain does not ask for client certificates; all three share a
 * ticket key, so that only the session ID context keeps plain's sessions apart. */
static void test_client_certs(void)
{
    struct cfg_tls cfg = {.client_ca = path_of("ca.crt"),
                          .session_ticket_key = path_of("ticket80.key")};
    struct cfg_tls_cert cert[3];
    char err[600] = "", subject[256];
    long at;
    struct tls_server *s = server_cfg(&cfg, &cert[0], "ec-a", err, sizeof err, &at);
    struct tls_server *twin = server_cfg(&cfg, &cert[1], "ec-a", err, sizeof err, &at);
    struct client_opts o = {0};
    SSL_SESSION *sess;
    struct pair p;
    struct tls_server *plain;

    cfg.client_ca = NULL;
    plain = server_cfg(&cfg, &cert[2], "ec-a", err, sizeof err, &at);
    CHECK(s && twin && plain);
    if (!s || !twin || !plain) {
        fprintf(stderr, "client_ca server: %s\n", err);
        tls_server_free(s);
        tls_server_free(twin);
        tls_server_free(plain);
        return;
    }
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_2_VERSION : 0;
        o = (struct client_opts){.max_version = version};
        expect_cert_refused(__LINE__, s, &o, "client certificate required");
        o.cert = "mallory";
        expect_cert_refused(__LINE__, s, &o,
                            "client certificate not trusted: self-signed certificate");
        o.cert = "ec-a";
        expect_cert_refused(__LINE__, s, &o, "client certificate not trusted: ");
        o.cert = "alice";
        CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
        CHECK(tls_conn_client_subject(p.srv, subject, sizeof subject) != NULL &&
              !strcmp(subject, "CN=alice,O=Example Corp"));
        CHECK(tls_conn_client_subject(p.srv, subject, 23) == NULL); /* never cut */
        CHECK(tls_conn_client_subject(p.srv, subject, 24) == subject);
        /* The CA list in the CertificateRequest. */
        CHECK(SSL_get_client_CA_list(p.cli) &&
              sk_X509_NAME_num(SSL_get_client_CA_list(p.cli)) == 1);
        CHECK_EQ_INT(tls_write(p.srv, "x", 1), 1);
        CHECK_EQ_INT(client_read(p.cli, subject, 1), 1);
        sess = SSL_get1_session(p.cli);
        SSL_shutdown(p.cli);
        pair_close(&p);
        /* A resumed session keeps the verified subject. */
        o.session = sess;
        CHECK_EQ_INT(connect_with(&p, s, &o), TLS_DONE);
        CHECK(SSL_session_reused(p.cli));
        CHECK(tls_conn_client_subject(p.srv, subject, sizeof subject) != NULL &&
              !strcmp(subject, "CN=alice,O=Example Corp"));
        pair_close(&p);
        /* So does another server with the same client_ca and ticket key (by the ticket)... */
        CHECK_EQ_INT(connect_with(&p, twin, &o), TLS_DONE);
        CHECK(SSL_session_reused(p.cli));
        CHECK(tls_conn_client_subject(p.srv, subject, sizeof subject) != NULL &&
              !strcmp(subject, "CN=alice,O=Example Corp"));
        pair_close(&p);
        /* ...but not one without client_ca (another session ID context)... */
        CHECK_EQ_INT(connect_with(&p, plain, &o), TLS_DONE);
        CHECK(!SSL_session_reused(p.cli));
        CHECK(tls_conn_client_subject(p.srv, subject, sizeof subject) == NULL);
        pair_close(&p);
        SSL_SESSION_free(sess);
    }
    /* ...and never asks for, nor reports, a client certificate. */
    o = (struct client_opts){.cert = "alice"};
    CHECK_EQ_INT(connect_with(&p, plain, &o), TLS_DONE);
    CHECK(tls_conn_client_subject(p.srv, subject, sizeof subject) == NULL);
    pair_close(&p);
    /* Nor does a session of plain resume on s, which would skip the client certificate. */
    o = (struct client_opts){0};
    sess = session_from(plain, 0, NULL, &(bool){false});
    o.session = sess;
    expect_cert_refused(__LINE__, s, &o, "client certificate required");
    SSL_SESSION_free(sess);
    tls_server_free(s);
    tls_server_free(twin);
    tls_server_free(plain);

    cfg = (struct cfg_tls){.client_ca = path_of("missing.crt")};
    CHECK(server_cfg(&cfg, cert, "ec-a", err, sizeof err, &at) == NULL);
    CHECK_EQ_INT(at, TLS_AT_CLIENT_CA);
    CHECK(strstr(err, "cannot use client_ca ") == err && strstr(err, "No such file"));
    cfg = (struct cfg_tls){.client_ca = path_of("ca.key")};
    CHECK(server_cfg(&cfg, cert, "ec-a", err, sizeof err, &at) == NULL);
    CHECK_EQ_INT(at, TLS_AT_CLIENT_CA);
    CHECK(strstr(err, "no PEM certificate in ") != NULL);
    CHECK(ERR_peek_error() == 0);
}

/* ---- OCSP stapling ---- */

/* The OCSP response the client got ("" none) compared with resp.der: 1 same, 0 none, -1
 * different or failed. */
static int stapled(struct tls_server *s, const char *sni, int version, bool ask)
{
    static unsigned char want[4096];
    static size_t want_len;
    struct client_opts o = {.sni = sni, .max_version = version, .status = ask};
    const unsigned char *got;
    struct pair p;
    long n;
    int rc = -1;

    if (!want_len) {
        FILE *f = fopen(path_of("resp.der"), "rb");
        want_len = f ? fread(want, 1, sizeof want, f) : 0;
        if (f)
            fclose(f);
    }
    if (connect_with(&p, s, &o) == TLS_DONE) {
        n = SSL_get_tlsext_status_ocsp_resp(p.cli, &got);
        if (n <= 0 || !got)
            rc = 0;
        else if ((size_t)n == want_len && !memcmp(got, want, want_len))
            rc = 1;
    }
    pair_close(&p);
    return rc;
}

static void expect_bad_ocsp(int line, const char *cert, const char *ocsp, const char *want)
{
    struct cfg_tls_cert pair = {path_of(cert), NULL, path_of(ocsp)};
    struct cfg_tls cfg = {.certs = &pair, .ncerts = 1};
    char key[256], err[600] = "", prefix[400];
    long at = 0;
    struct tls_server *s;

    snprintf(key, sizeof key, "%s/%.*s.key", dir, (int)(strlen(cert) - 4), cert);
    pair.key = key;
    snprintf(prefix, sizeof prefix, "cannot use OCSP response %s: %s", pair.ocsp, want);
    s = tls_server_new_at(&cfg, err, sizeof err, &at);
    if (!s && at == TLS_AT_OCSP(0) && TLS_AT_IS_OCSP(at) && TLS_AT_OCSP_INDEX(at) == 0 &&
        !strncmp(err, prefix, strlen(prefix))) {
        check_passed++;
        return;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: expected '%s' at %ld, got '%s' at %ld\n", __FILE__, line, prefix,
            TLS_AT_OCSP(0), err, at);
    tls_server_free(s);
}

static void test_ocsp(void)
{
    char crt[2][256], key[2][256], ocsp[256];
    struct cfg_tls_cert certs[2] = {{crt[0], key[0], NULL}, {crt[1], key[1], ocsp}};
    struct cfg_tls cfg = {.certs = certs, .ncerts = 2};
    char err[600] = "";
    struct tls_server *s;

    snprintf(crt[0], sizeof crt[0], "%s/ec-a.crt", dir);
    snprintf(key[0], sizeof key[0], "%s/ec-a.key", dir);
    snprintf(crt[1], sizeof crt[1], "%s/ocsp-srv.crt", dir);
    snprintf(key[1], sizeof key[1], "%s/ocsp-srv.key", dir);
    snprintf(ocsp, sizeof ocsp, "%s/resp.der", dir);
    s = tls_server_new(&cfg, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "ocsp server: %s\n", err);
        return;
    }
    CHECK_EQ_INT(stapled(s, "ocsp.test", 0, true), 1);
    CHECK_EQ_INT(stapled(s, "ocsp.test", TLS1_2_VERSION, true), 1);
    CHECK_EQ_INT(stapled(s, "ocsp.test", 0, false), 0);    /* not asked */
    CHECK_EQ_INT(stapled(s, "a.example.com", 0, true), 0); /* no response for ec-a */
    CHECK_EQ_INT(stapled(s, "a.example.com", TLS1_2_VERSION, true), 0);
    tls_server_free(s);
    expect_bad_ocsp(__LINE__, "ocsp-srv.crt", "missing.der", "cannot open ");
    expect_bad_ocsp(__LINE__, "ocsp-srv.crt", "ocsp-srv.crt", "not a DER OCSP response");
    expect_bad_ocsp(__LINE__, "ocsp-srv.crt", "unauthorized.der",
                    "its status is 'unauthorized', not 'successful'");
    expect_bad_ocsp(__LINE__, "ec-a.crt", "resp.der", "it is not about the certificate ");
    expect_bad_ocsp(__LINE__, "alice.crt", "resp.der", "it is not about the certificate ");
    CHECK(ERR_peek_error() == 0);
}

int main(void)
{
    struct tls_server *s;

    signal(SIGPIPE, SIG_IGN);
    if (make_certs()) {
        fprintf(stderr, "cannot make test certificates with the openssl command\n");
        remove_certs();
        return 1;
    }
    client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_CLIENT);
    test_server_new();
    test_server_without_names();
    s = main_server();
    CHECK(s != NULL);
    if (s) {
        test_sni(s);
        test_alpn(s);
        test_refused(s);
        test_plaintext(s);
        test_data(s);
        test_resumption(s, TLS1_2_VERSION);
        test_resumption(s, 0);
        tls_server_free(s);
    }
    test_min_version_13();
    test_lifetime();
    test_tickets();
    test_client_certs();
    test_ocsp();
    SSL_CTX_free(client_ctx);
    remove_certs();
    return check_done("tls");
}
