/* TLS to upstreams: the client side of OpenSSL behind a small interface, so that no file
 * outside src/net/tls*.c sees an OpenSSL type.
 *
 * A tls_client is built from an upstream's `tls:` settings when the configuration is loaded and
 * is shared read-only by every worker thread. One upstream connection on a non-blocking socket
 * uses it through the transport ops (net/transport.h): like tls_conn, every call does what it
 * can without blocking and says what it waits for (TRANSPORT_WANT_READ / _WANT_WRITE). */
#ifndef GH_TLS_CLIENT_H
#define GH_TLS_CLIENT_H

#include "net/tls.h"
#include "net/transport.h"

#include <stdbool.h>
#include <stddef.h>

struct tls_client;  /* one per TLS upstream, owned by the configuration snapshot */
struct tls_session; /* a session that a new connection to the same server may resume */

/* Where tls_client_new found a fault, so that the configuration can point at the key. */
enum { TLS_CLIENT_AT_OTHER, TLS_CLIENT_AT_CA, TLS_CLIENT_AT_CERT, TLS_CLIENT_AT_KEY };

/* The client context of one upstream: TLS 1.2+, the server's certificate verified against the
 * PEM CA file `ca` (NULL: the system store) unless !verify, the optional client certificate
 * chain `cert` with its key `key`, and sessions handed to the connection's session slot for
 * resumption. NULL with a one-line reason in err and the key at fault in *at. */
struct tls_client *tls_client_new(const char *ca, const char *cert, const char *key, bool verify,
                                  char *err, size_t errlen, int *at);
void tls_client_free(struct tls_client *c); /* NULL is a no-op */

/* Whether the handshake resumed an earlier session. */
bool tls_client_resumed(const struct transport *t);

void tls_session_free(struct tls_session *s); /* NULL is a no-op */

/* A TLS client connection as a transport (net/transport.h): handshake, recv, flush, shutdown
 * and pending go through OpenSSL; release frees the connection. */
extern const struct transport_ops tls_client_transport;

/* Switches t (plain TCP on its connected non-blocking socket t->fd, which stays the caller's)
 * to TLS. `name` is sent as SNI and is the name the certificate must carry; a numeric address
 * is verified as an IP address and not sent as SNI. `slot` (may be NULL) holds the last session
 * of this server: it is offered for resumption, and replaced by the sessions the server issues
 * on this connection; the slot must outlive the connection. The handshake op reports a failure
 * with its reason, e.g. "certificate verify failed: self-signed certificate". 0, or -1 on out
 * of memory (t is unchanged). */
int tls_client_transport_start(struct transport *t, struct tls_client *c, const char *name,
                               struct tls_session **slot);

#endif
