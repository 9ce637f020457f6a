/* A listener with `proxy_protocol: true`: every connection starts with a PROXY protocol header
 * (net/proxy_proto.h) from a trusted balancer, read here before TLS or the codec. */
#ifndef GH_PROXY_ACCEPT_H
#define GH_PROXY_ACCEPT_H

struct conn;

/* Wait for the header of a connection just accepted (not yet counted in the worker). 0: the
 * connection waits in the worker's list; once the header is in, the client it names becomes the
 * connection's peer and conn_proceed runs. -1: refused at once (the peer is not in
 * trusted_proxies, logged; or out of memory): the caller frees the connection. */
int proxy_accept_start(struct conn *c);

#endif
