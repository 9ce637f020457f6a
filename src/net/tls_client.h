/* TLS to upstreams: the client side of OpenSSL behind a small interface, so that no file
 * outside src/net/tls*.c sees an OpenSSL type.
 *
 * A tls_client is built from an upstream's `tls:` settings when the configuration is loaded and
 * is shared read-only by every worker thread. A tls_client_conn wraps one upstream connection on
 * a non-blocking socket; like tls_conn, every call does what it can without blocking and says
 * what it waits for (TLS_WANT_READ / TLS_WANT_WRITE, from net/tls.h). */
#ifndef GH_TLS_CLIENT_H
#define GH_TLS_CLIENT_H

#include "net/tls.h"

#include <stdbool.h>
#include <stddef.h>

struct tls_client;      /* one per TLS upstream, owned by the configuration snapshot */
struct tls_client_conn; /* one per upstream connection */
struct tls_session;     /* a session that a new connection to the same server may resume */

/* Where tls_client_new found a fault, so that the configuration can point at the key. */
enum { TLS_CLIENT_AT_OTHER, TLS_CLIENT_AT_CA, TLS_CLIENT_AT_CERT, TLS_CLIENT_AT_KEY };

/* The client context of one upstream: TLS 1.2+, the server's certificate verified against the
 * PEM CA file `ca` (NULL: the system store) unless !verify, the optional client certificate
 * chain `cert` with its key `key`, and sessions handed to the connection's session slot for
 * resumption. NULL with a one-line reason in err and the key at fault in *at. */
struct tls_client *tls_client_new(const char *ca, const char *cert, const char *key, bool verify,
                                  char *err, size_t errlen, int *at);
void tls_client_free(struct tls_client *c); /* NULL is a no-op */

/* A connection on the connected non-blocking socket `fd` (which stays the caller's). `name` is
 * sent as SNI and is the name the certificate must carry; a numeric address is verified as an
 * IP address and not sent as SNI. `slot` (may be NULL) holds the last session of this server:
 * it is offered for resumption, and replaced by the sessions the server issues on this
 * connection; the slot must outlive the connection. NULL on out of memory. */
struct tls_client_conn *tls_client_conn_new(struct tls_client *c, int fd, const char *name,
                                            struct tls_session **slot);
void tls_client_conn_free(struct tls_client_conn *c); /* NULL is a no-op; does not close fd */

/* Advances the handshake: TLS_DONE, TLS_WANT_READ / TLS_WANT_WRITE (call again when the socket
 * is ready), or TLS_ERROR / TLS_CLOSED with the reason in why, e.g. "certificate verify failed:
 * self-signed certificate". */
int tls_client_handshake(struct tls_client_conn *c, char *why, size_t len);

/* Up to len (> 0) decrypted bytes: > 0 bytes, TLS_CLOSED (close_notify or EOF), TLS_WANT_READ,
 * TLS_WANT_WRITE, or TLS_ERROR. */
long tls_client_read(struct tls_client_conn *c, void *buf, size_t len);

/* An outq_write_fn (ctx is the tls_client_conn): bytes taken, or -1 with errno EAGAIN (retry
 * with the same bytes when the socket is ready) or EPROTO / the socket's errno (failed). */
long tls_client_write(void *ctx, const char *p, size_t len);

/* Whether decrypted bytes wait inside OpenSSL, which epoll does not see. */
bool tls_client_pending(const struct tls_client_conn *c);

/* Whether the handshake resumed an earlier session. */
bool tls_client_resumed(const struct tls_client_conn *c);

void tls_session_free(struct tls_session *s); /* NULL is a no-op */

#endif
