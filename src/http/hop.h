/* Hop-by-hop header fields (RFC 9110 section 7.6.1): the fixed set that never crosses a proxy,
 * plus every name a Connection field lists. */
#ifndef GH_HOP_H
#define GH_HOP_H

#include <stdbool.h>
#include <stddef.h>

struct http_field;

#define HOP_MAX_EXTRA 64

struct hop_set {
    struct {
        const char *p;
        size_t len;
    } extra[HOP_MAX_EXTRA]; /* names listed in Connection */
    size_t nextra;
};

/* Start a set from a message's fields (reads its Connection fields). */
void hop_collect(struct hop_set *h, const struct http_field *fields, size_t n);
/* Add the comma-separated tokens of one Connection field value. */
void hop_add_tokens(struct hop_set *h, const char *value, size_t len);
/* True for Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-* and every
 * name in the set. */
bool hop_is_hop(const struct hop_set *h, const char *name, size_t len);
/* True for a field that must not travel in a trailer section (RFC 9110 section 6.5.1): message
 * framing, routing, authentication, request modifiers and the content's own description, which
 * a recipient would otherwise have acted on before the body. Hop-by-hop names, pseudo-header
 * names and the forwarding headers (X-Forwarded-*, Forwarded, X-Real-IP: a proxy's to set) are
 * included. Names a configuration makes ours (an upstream's secret_header) are the proxy's to
 * drop as well. */
bool hop_trailer_forbidden(const char *name, size_t len);
/* The protocols of a request's Upgrade fields that may be offered to an upstream: every token
 * but h2c (HTTP/2 is ours to speak or not at all, never a tunnel), joined by ", " into `out`.
 * Returns the length; 0 when none is left or the list does not fit in `cap`. */
size_t hop_upgrade_offer(const struct http_field *fields, size_t n, char *out, size_t cap);

#endif
