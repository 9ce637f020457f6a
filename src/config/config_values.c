/* Scalar values of the configuration: integers, durations, sizes and socket addresses. */
#include "config/config.h"
#include "config/config_values.h"
#include "config/resolve.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Leading decimal digits of `s` -> *out; *end points after them. Fails on no digits and on
 * overflow, so "99999999999999999999s" is an error rather than a wrapped value. */
static int leading_uint(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (p == s)
        return -1;
    *end = p;
    *out = v;
    return 0;
}

int cfg_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    const char *end;
    uint64_t v;

    if (leading_uint(s, &end, &v) || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    uint64_t factor;
};

static const struct unit duration_units[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

/* Sizes take k/m/g with or without a trailing b, in either case: 64k, 64K, 64kb, 64KB. */
static const struct unit size_units[] = {
    {"", 1},
    {"k", 1ULL << 10},
    {"kb", 1ULL << 10},
    {"m", 1ULL << 20},
    {"mb", 1ULL << 20},
    {"g", 1ULL << 30},
    {"gb", 1ULL << 30},
};

static uint64_t unit_factor(const struct unit *units, size_t n, const char *name, bool nocase)
{
    for (size_t i = 0; i < n; i++) {
        int diff = nocase ? strcasecmp(units[i].name, name) : strcmp(units[i].name, name);
        if (diff == 0)
            return units[i].factor;
    }
    return 0;
}

static int scaled(const char *s, const struct unit *units, size_t n, bool nocase, uint64_t max,
                  uint64_t *out)
{
    const char *end;
    uint64_t v, factor;

    if (leading_uint(s, &end, &v))
        return -1;
    factor = unit_factor(units, n, end, nocase);
    if (!factor || v > max / factor)
        return -1;
    *out = v * factor;
    return 0;
}

/* Duration units are case-sensitive: "M" could as well mean months. */
int config_parse_duration(const char *s, uint32_t *ms)
{
    uint64_t v;

    if (scaled(s, duration_units, sizeof duration_units / sizeof *duration_units, false, UINT32_MAX,
               &v))
        return -1;
    *ms = (uint32_t)v;
    return 0;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    return scaled(s, size_units, sizeof size_units / sizeof *size_units, true, UINT64_MAX, bytes);
}

/* Raw answers kept from one lookup: room for duplicates beyond the most servers an upstream
 * may have, so that a name with too many addresses is reported as such. */
enum { MAX_ANSWERS = 4 * CFG_MAX_SERVERS };

static socklen_t sa_len(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int lookup_getaddrinfo(const char *host, struct sockaddr_storage *out, size_t max, size_t *n)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);

    *n = 0;
    if (rc)
        return rc;
    for (const struct addrinfo *ai = res; ai && *n < max; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof *out) {
            memset(&out[*n], 0, sizeof *out);
            memcpy(&out[(*n)++], ai->ai_addr, ai->ai_addrlen);
        }
    }
    freeaddrinfo(res);
    return 0;
}

/* Every address of a host name, in the resolver's order: the load's resolver, else
 * getaddrinfo. A success without an address is EAI_NONAME. */
static int lookup_all(const struct config_resolver *resolver, const char *host,
                      struct sockaddr_storage *out, size_t max, size_t *n)
{
    int rc;

    *n = 0;
    if (resolver)
        rc = resolver->lookup(resolver->ctx, host, out, max, n);
    else
        rc = lookup_getaddrinfo(host, out, max, n);
    if (rc == 0 && *n == 0)
        rc = EAI_NONAME;
    if (*n > max)
        *n = max;
    return rc;
}

/* Numeric addresses never go to the resolver, so "10.0.0.1:80" cannot wait on DNS. */
static int numeric_host(const char *host, int family, struct sockaddr_storage *sa, socklen_t *len)
{
    struct addrinfo hints = {
        .ai_family = family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *res;

    if (getaddrinfo(host, NULL, &hints, &res))
        return -1;
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void ipv4(struct sockaddr_storage *sa, socklen_t *len, uint32_t addr)
{
    struct sockaddr_in *in = (struct sockaddr_in *)sa;

    memset(sa, 0, sizeof *sa);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(addr);
    *len = sizeof *in;
}

/* Names we send to the resolver: letters, digits, '-', '.' and '_' (container service names
 * use it). Anything else is a typo, and must not become a DNS query. */
static bool resolvable_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
            return false;
    }
    return true;
}

/* A host that is not a name: 1 with *sa set, 0 for a name to resolve, -1 with `why`. */
static int literal_host(const char *host, struct sockaddr_storage *sa, socklen_t *len, char *why,
                        size_t whylen)
{
    if (!*host || !strcmp(host, "*")) {
        ipv4(sa, len, INADDR_ANY);
        return 1;
    }
    /* Fixed rather than resolved: getaddrinfo may put ::1 first, and a backend listening on
     * 127.0.0.1 only would then refuse every connection (or, for an upstream server that
     * becomes one server per address, every other one). [::1] is there for IPv6. */
    if (!strcasecmp(host, "localhost")) {
        ipv4(sa, len, INADDR_LOOPBACK);
        return 1;
    }
    if (numeric_host(host, AF_INET, sa, len) == 0)
        return 1;
    if (strspn(host, "0123456789.") == strlen(host)) {
        snprintf(why, whylen, "'%s' is not an IPv4 address", host);
        return -1;
    }
    if (!resolvable_name(host)) {
        snprintf(why, whylen, "bad host name '%s'", host);
        return -1;
    }
    return 0;
}

/* A listener's host: a name gives its first address, as the resolver orders them. */
static int resolve_host(const struct config_resolver *resolver, const char *host,
                        struct sockaddr_storage *sa, socklen_t *len, char *why, size_t whylen)
{
    int rc = literal_host(host, sa, len, why, whylen);
    size_t n;

    if (rc)
        return rc < 0 ? -1 : 0;
    rc = lookup_all(resolver, host, sa, 1, &n);
    if (rc) {
        snprintf(why, whylen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    *len = sa_len(sa);
    return 0;
}

static void set_port(struct sockaddr_storage *sa, uint16_t port)
{
    if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
}

uint16_t cfg_addr_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    return 0;
}

/* Splits "host:port" or "[v6]:port" into host (copied into `host`) and port text. */
static int split_host_port(const char *s, char *host, size_t hostlen, const char **port,
                           bool *bracketed, char *why, size_t whylen)
{
    const char *colon, *h = s;
    size_t n;

    *bracketed = *s == '[';
    if (*bracketed) {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(why, whylen, "expected [ipv6-address]:port");
            return -1;
        }
        h = s + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(why, whylen, "expected host:port");
            return -1;
        }
        n = (size_t)(colon - s);
        if (memchr(s, ':', n)) {
            snprintf(why, whylen, "an IPv6 address goes in brackets, e.g. [::1]:80");
            return -1;
        }
    }
    if (n >= hostlen) {
        snprintf(why, whylen, "host name too long");
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

int cfg_resolve_addr(const char *s, const struct config_resolver *resolver,
                     struct sockaddr_storage *sa, socklen_t *len, char *why, size_t whylen)
{
    char host[256];
    const char *port_text;
    uint64_t port;
    bool v6;

    if (split_host_port(s, host, sizeof host, &port_text, &v6, why, whylen))
        return -1;
    if (cfg_parse_uint(port_text, 65535, &port)) {
        snprintf(why, whylen, "port must be 0..65535");
        return -1;
    }
    if (v6 && numeric_host(host, AF_INET6, sa, len)) {
        snprintf(why, whylen, "'%s' is not an IPv6 address", host);
        return -1;
    }
    if (!v6 && resolve_host(resolver, host, sa, len, why, whylen))
        return -1;
    set_port(sa, (uint16_t)port);
    return 0;
}

int config_parse_addr(const char *s, const struct config_resolver *resolver, struct cfg_addr *out)
{
    char why[300];

    memset(out, 0, sizeof *out);
    if (cfg_resolve_addr(s, resolver, &out->sa, &out->len, why, sizeof why))
        return -1;
    out->text = strdup(s);
    return out->text ? 0 : -1;
}

void config_addr_free(struct cfg_addr *a)
{
    free(a->text);
    a->text = NULL;
}

/* Only what tells two servers apart: family, address (and IPv6 scope) and port. */
static void canonical(struct sockaddr_storage *sa, uint16_t port)
{
    struct sockaddr_storage c;

    memset(&c, 0, sizeof c);
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;
        struct sockaddr_in6 *out = (struct sockaddr_in6 *)&c;
        out->sin6_family = AF_INET6;
        out->sin6_addr = in->sin6_addr;
        out->sin6_scope_id = in->sin6_scope_id;
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        struct sockaddr_in *out = (struct sockaddr_in *)&c;
        out->sin_family = AF_INET;
        out->sin_addr = in->sin_addr;
    }
    *sa = c;
    set_port(sa, port);
}

int cfg_sockaddr_cmp(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    int d;

    if (a->ss_family != b->ss_family)
        return a->ss_family == AF_INET ? -1 : b->ss_family == AF_INET ? 1 : 0;
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        if ((d = memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr)) != 0)
            return d;
        if (x->sin6_scope_id != y->sin6_scope_id)
            return x->sin6_scope_id < y->sin6_scope_id ? -1 : 1;
    } else {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        if ((d = memcmp(&x->sin_addr, &y->sin_addr, sizeof x->sin_addr)) != 0)
            return d;
    }
    return (int)cfg_addr_port(a) - (int)cfg_addr_port(b);
}

static int sockaddr_qsort_cmp(const void *a, const void *b)
{
    return cfg_sockaddr_cmp(a, b);
}

int cfg_lookup_name(const struct config_resolver *resolver, const char *name, uint16_t port,
                    struct sockaddr_storage **out, size_t *n)
{
    struct sockaddr_storage *sa = malloc(MAX_ANSWERS * sizeof *sa), *fit;
    size_t got, kept = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (!sa)
        return EAI_MEMORY;
    rc = lookup_all(resolver, name, sa, MAX_ANSWERS, &got);
    if (rc) {
        free(sa);
        return rc;
    }
    for (size_t i = 0; i < got; i++)
        canonical(&sa[i], port);
    qsort(sa, got, sizeof *sa, sockaddr_qsort_cmp);
    for (size_t i = 0; i < got; i++) {
        if (!kept || cfg_sockaddr_cmp(&sa[kept - 1], &sa[i]) != 0)
            sa[kept++] = sa[i];
    }
    fit = realloc(sa, kept * sizeof *sa);
    *out = fit ? fit : sa;
    *n = kept;
    return 0;
}

int cfg_resolve_server(const char *s, const char *upstream, const struct config_load_opts *opts,
                       struct cfg_resolved *out, char *why, size_t whylen)
{
    const char *port_text;
    uint64_t port;
    socklen_t len;
    bool v6;
    int rc;

    memset(out, 0, sizeof *out);
    if (split_host_port(s, out->name, sizeof out->name, &port_text, &v6, why, whylen))
        return -1;
    if (cfg_parse_uint(port_text, 65535, &port)) {
        snprintf(why, whylen, "port must be 0..65535");
        return -1;
    }
    out->port = (uint16_t)port;
    if (!(out->sa = calloc(1, sizeof *out->sa))) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    out->n = 1;
    if (v6) {
        rc = numeric_host(out->name, AF_INET6, out->sa, &len) ? -1 : 1;
        if (rc < 0)
            snprintf(why, whylen, "'%s' is not an IPv6 address", out->name);
    } else {
        rc = literal_host(out->name, out->sa, &len, why, whylen);
    }
    if (rc > 0) {
        canonical(out->sa, out->port);
        return 0;
    }
    free(out->sa);
    out->sa = NULL;
    out->n = 0;
    if (rc < 0)
        return -1;
    out->named = true;
    if (cfg_pinned_answer(opts->answers, upstream, out->name, out->port, &out->sa, &out->n))
        rc = out->sa ? 0 : EAI_MEMORY;
    else
        rc = cfg_lookup_name(opts->resolver, out->name, out->port, &out->sa, &out->n);
    if (rc) {
        snprintf(why, whylen, "cannot resolve '%s': %s", out->name, gai_strerror(rc));
        return -1;
    }
    return 0;
}
