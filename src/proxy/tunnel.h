/* Upgraded connections (WebSocket, any 101 Switching Protocols, and HTTP/2 extended CONNECT):
 * once the upstream has switched protocols, the proxy hands the exchange to a tunnel, which
 * moves bytes both ways as they come until both sides have ended.
 *
 * The client side is the http_stream in tunnel mode (request.h: upgrade, shutdown), so the same
 * code serves HTTP/1.1 over TCP or TLS and HTTP/2 streams; the upstream side is the upconn the
 * upgrade request went out on, never pooled again. */
#ifndef GH_TUNNEL_H
#define GH_TUNNEL_H

struct http_stream;
struct upconn;
struct upool;
struct cfg_upstream;

/* Take over an exchange whose switch the client was already told of (ops->upgrade done): the
 * stream, the upstream connection `uc` (what it sent behind its 101 head still in uc->in) and a
 * hold of its pool `pool`, which keeps `up` and its configuration snapshot alive across
 * reloads. The stream's handler and the connection's user become the tunnel's. Returns 0, or
 * -1 (out of memory) with nothing taken. */
int tunnel_start(struct http_stream *s, struct upconn *uc, struct upool *pool,
                 const struct cfg_upstream *up);

/* Tunnels open in this process, all workers together. */
struct server;
unsigned tunnel_count(struct server *srv);

#endif
