/* Scalar value parsers used inside the config module. The ones other modules may use
 * (durations, sizes, addresses) are declared in config.h. */
#ifndef GH_CONFIG_VALUES_H
#define GH_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config_resolver;
struct config_load_opts;

/* Decimal digits only (no sign, no spaces), value <= max. Returns 0 on success. */
int cfg_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Parses and resolves an address like config_parse_addr, without copying the text. On failure
 * returns -1 and writes the reason to `why` (e.g. "expected host:port"). */
int cfg_resolve_addr(const char *s, const struct config_resolver *resolver,
                     struct sockaddr_storage *sa, socklen_t *len, char *why, size_t whylen);

/* The port of an IPv4 or IPv6 address, in host order. */
uint16_t cfg_addr_port(const struct sockaddr_storage *sa);

/* An upstream server's address, resolved: a literal address is one server; a host name is one
 * server per address it has. */
struct cfg_resolved {
    struct sockaddr_storage *sa; /* n addresses with the port set; malloc'd, release with free() */
    size_t n;
    bool named;     /* the host was a name: sa holds its addresses, distinct and sorted */
    uint16_t port;  /* as written */
    char name[256]; /* the host part as written: "app.internal", "10.0.0.5", "::1" */
};

/* Resolves "host:port" as an upstream server of `upstream`: 0, or -1 with the reason in `why`
 * ("cannot resolve 'x': ..."). A name's answer comes from opts->answers, the round being built,
 * if it has one (config/resolve.h), else from opts->resolver. */
int cfg_resolve_server(const char *s, const char *upstream, const struct config_load_opts *opts,
                       struct cfg_resolved *out, char *why, size_t whylen);

/* Every address of host name `name` as `resolver` (NULL: getaddrinfo) gives them, with `port`
 * set, distinct, sorted (IPv4 first, then by address), malloc'd into *out. 0, or an EAI_* code
 * (a name without addresses is EAI_NONAME). */
int cfg_lookup_name(const struct config_resolver *resolver, const char *name, uint16_t port,
                    struct sockaddr_storage **out, size_t *n);

/* Orders IPv4 or IPv6 addresses by family (IPv4 first), address, scope and port: 0 when they
 * name the same server. Only those fields are compared, not padding. */
int cfg_sockaddr_cmp(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
