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
#include <stdlib.h>
#include <sys/socket.h>
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

static int make_certs(void)
{
    if (!mkdtemp(dir))
        return -1;
    return make_cert("ec-a", "ec", "ec-a", "DNS:a.example.com,DNS:www.a.example.com") |
           make_cert("rsa-a", "rsa", "rsa-a", "DNS:A.Example.com") |
           make_cert("wild", "ec", "wild", "DNS:*.wild.example.com") |
           make_cert("exact", "ec", "exact", "DNS:x.wild.example.com") |
           make_cert("other-rsa", "rsa", "other", "DNS:other.example.com");
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
        pairs[i] = (struct cfg_tls_cert){crt[i], key[i]};
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
    struct cfg_tls_cert pair = {path_of(crt), path_of(key)};
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
    struct cfg_tls_cert two[2] = {{ec_crt, ec_key}, {rsa_crt, ec_key}};
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
    if (o->session)
        SSL_set_session(p->cli, o->session);
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
    CHECK(strstr(tls_last_error(p.srv, err, sizeof err), "handshake failed: ") == err);
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

    expect_refused(__LINE__, s, &old, "handshake failed: unsupported protocol");
    expect_refused(__LINE__, s, &rsa_kx, "handshake failed: no shared cipher");
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
    struct cfg_tls_cert pair = {path_of("ec-a.crt"), path_of("ec-a.key")};
    struct cfg_tls cfg = {.certs = &pair, .ncerts = 1, .min_version = 0x0304};
    struct client_opts o = {.max_version = TLS1_2_VERSION};
    char err[600];
    struct tls_server *s = tls_server_new(&cfg, err, sizeof err);
    struct pair p;

    CHECK(s != NULL);
    if (!s)
        return;
    expect_refused(__LINE__, s, &o, "handshake failed: unsupported protocol");
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
    SSL_CTX_free(client_ctx);
    remove_certs();
    return check_done("tls");
}
