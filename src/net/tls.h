/* TLS termination: OpenSSL behind a small interface, so that no other file sees an OpenSSL type.
 *
 * A tls_server is built from a listener's `tls:` settings when the configuration is loaded and
 * is shared read-only by every worker thread. A tls_conn wraps one client connection on a
 * non-blocking socket: every call does what it can without blocking and says what it waits for
 * (TLS_WANT_READ / TLS_WANT_WRITE); the caller owns the fd and the event loop. */
#ifndef GH_TLS_H
#define GH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_server; /* one per TLS listener, built from config; shared by all worker threads */
struct tls_conn;   /* one per client connection */
struct cfg_tls;    /* src/config/config.h */

enum { TLS_DONE = 0, TLS_ERROR = -1, TLS_WANT_READ = -2, TLS_WANT_WRITE = -3, TLS_CLOSED = -4 };

/* Mozilla's "intermediate" TLS 1.2 ciphers, used when cfg_tls.ciphers is NULL. */
#define TLS_DEFAULT_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* Builds the context for one listener: loads every certificate/key pair and checks that each
 * key belongs to its certificate, TLS 1.2+ (cfg->min_version), SNI selection among the
 * certificates by their DNS names (exact names before wildcards; the first certificate for
 * unknown or missing SNI; certificates of different key types for the same names are served
 * side by side, the client's signature algorithms choosing), ALPN "h2" (when cfg->http2)
 * or "http/1.1", a server-side session cache and session tickets (keys from
 * cfg->session_ticket_key, or random ones rotated every cfg->session_ticket_rotation), client
 * certificates verified against cfg->client_ca when set, and OCSP stapling for certificates
 * with an `ocsp` response. Returns NULL and writes a one-line reason into err, e.g.
 * "cannot use certificate /etc/x.crt: the key does not match the certificate". */
struct tls_server *tls_server_new(const struct cfg_tls *cfg, char *err, size_t errlen);

/* Where tls_server_new_at found the fault: the index of a certificate entry (>= 0), or one of
 * these. */
enum { TLS_AT_OTHER = -1, TLS_AT_CIPHERS = -2, TLS_AT_CIPHERSUITES = -3 };

/* More places a fault can be: the client_ca file, the session_ticket_key file, and the `ocsp`
 * file of certificate entry i (TLS_AT_OCSP(i); TLS_AT_OCSP_INDEX recovers i). */
enum { TLS_AT_CLIENT_CA = -4, TLS_AT_TICKET_KEY = -5 };
#define TLS_AT_OCSP(i) (-1000L - (long)(i))
#define TLS_AT_IS_OCSP(at) ((at) <= -1000L)
#define TLS_AT_OCSP_INDEX(at) ((size_t)(-1000L - (at)))

/* tls_server_new that also says which setting is at fault (*at, see above), so that the
 * configuration can point at the line. */
struct tls_server *tls_server_new_at(const struct cfg_tls *cfg, char *err, size_t errlen, long *at);

/* Drops the builder's reference. Connections hold their own (tls_conn_new), so a server freed
 * with its configuration snapshot lives on until its last connection is freed. NULL is a
 * no-op. */
void tls_server_free(struct tls_server *s);

/* A server-side connection on the non-blocking socket `fd`, which stays the caller's to close.
 * NULL on out of memory. */
struct tls_conn *tls_conn_new(struct tls_server *s, int fd);
void tls_conn_free(struct tls_conn *c); /* NULL is a no-op; does not close the fd */

/* Advances the handshake: TLS_DONE when complete, else TLS_WANT_READ / TLS_WANT_WRITE (call
 * again when the socket is ready), TLS_CLOSED (the client left before finishing: EOF or a
 * reset, as TCP health checks and port scanners do), or
 * TLS_ERROR (see tls_last_error). Plaintext HTTP sent to the TLS port is detected before any
 * of it is consumed: TLS_ERROR, and the request is still in the socket, so the caller may
 * read it and answer in plain HTTP. After TLS_DONE, read at once: the client's first request
 * often arrives with its last handshake message and then waits inside OpenSSL, where epoll
 * does not see it (tls_pending). */
int tls_handshake(struct tls_conn *c);

/* Up to len (> 0) decrypted bytes: > 0 bytes; TLS_CLOSED on close_notify or EOF; TLS_WANT_READ
 * or TLS_WANT_WRITE; TLS_ERROR. After TLS_WANT_READ, wait for the socket whatever
 * tls_pending says. */
long tls_read(struct tls_conn *c, void *buf, size_t len);

/* Encrypts and sends up to len (> 0) bytes: > 0 bytes taken (possibly fewer than len), or a
 * TLS_* code. After TLS_WANT_*, the caller retries with the same bytes (possibly at a different
 * address) when the socket is ready. */
long tls_write(struct tls_conn *c, const void *buf, size_t len);

/* Whether the kernel encrypts what this connection sends (kTLS: the listener's context asks
 * for it when the kernel has the tls module, and OpenSSL turned it on after the handshake for
 * the cipher chosen). Only then can a file be sent without passing through user space. */
bool tls_conn_ktls_send(const struct tls_conn *c);

/* Up to len bytes of the regular file `fd` from `off` as TLS records, by the kernel
 * (SSL_sendfile; only when tls_conn_ktls_send). Bytes sent (0: the file ended before off+1),
 * TLS_WANT_WRITE (the socket is full), or TLS_ERROR with errno saying why. Nothing may wait in
 * OpenSSL's own write buffer: a tls_write that returned TLS_WANT_* must have been completed first.
 */
long tls_send_file(struct tls_conn *c, int fd, uint64_t off, size_t len);

/* Whether bytes already read from the socket wait inside OpenSSL: read again without waiting
 * for epoll, which will not report them. False after a tls_read that returned TLS_WANT_READ,
 * until the next read. */
bool tls_pending(const struct tls_conn *c);

/* Sends close_notify once, best effort, without waiting for the client's. */
void tls_shutdown(struct tls_conn *c);

/* The verified client certificate's subject as a malloc'd string, or NULL (none, or no room).
 * For codecs that keep it for the connection's life. */
char *tls_conn_client_subject_dup(const struct tls_conn *c);
const char *tls_conn_alpn(const struct tls_conn *c); /* "h2", "http/1.1", or NULL (none) */
const char *tls_conn_sni(const struct tls_conn *c);  /* the client's server name, or NULL */

/* With cfg_tls.client_ca: the subject of the client's verified certificate as an RFC 2253
 * string written into buf, e.g. "CN=alice,O=Example Corp" (most significant RDN last; bytes
 * outside printable ASCII and the RFC 2253 specials are escaped, so it is safe in a header
 * field value). NULL when there is no verified client certificate (no client_ca on this
 * listener, or the handshake is not complete) or when the subject does not fit in len: it is
 * never cut, since a shortened name could name somebody else. 1024 bytes are plenty in
 * practice. Valid after tls_handshake returned TLS_DONE, also on resumed sessions. */
const char *tls_conn_client_subject(const struct tls_conn *c, char *buf, size_t len);

/* Why the last call that returned TLS_ERROR failed, as short text for a log line written into
 * buf; the caller knows what it called ("TLS handshake failed: ..."). E.g. "no shared
 * cipher", "plaintext HTTP on a TLS port", "client offers TLS 1.1 at most, min_version is
 * TLS 1.2", "Connection timed out"; with client_ca, "client certificate required" or "client
 * certificate not trusted: certificate has expired" (the reason from certificate
 * verification). Returns buf. */
const char *tls_last_error(struct tls_conn *c, char *buf, size_t len);

#endif
