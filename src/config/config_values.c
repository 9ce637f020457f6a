/* Scalar values of the configuration: integers, durations, sizes and socket addresses. */
#include "config/config.h"
#include "config/config_values.h"

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

static config_resolver_fn resolver;

void config_set_resolver(config_resolver_fn fn)
{
    resolver = fn;
}

static int resolve_getaddrinfo(const char *host, struct sockaddr_storage *sa, socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);

    if (rc)
        return rc;
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
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

static int resolve_host(const char *host, struct sockaddr_storage *sa, socklen_t *len, char *why,
                        size_t whylen)
{
    int rc;

    if (!*host || !strcmp(host, "*")) {
        ipv4(sa, len, INADDR_ANY);
        return 0;
    }
    /* Fixed rather than resolved: getaddrinfo may put ::1 first, and a backend listening on
     * 127.0.0.1 only would then refuse every connection. [::1] is there for IPv6. */
    if (!strcasecmp(host, "localhost")) {
        ipv4(sa, len, INADDR_LOOPBACK);
        return 0;
    }
    if (numeric_host(host, AF_INET, sa, len) == 0)
        return 0;
    if (strspn(host, "0123456789.") == strlen(host)) {
        snprintf(why, whylen, "'%s' is not an IPv4 address", host);
        return -1;
    }
    if (!resolvable_name(host)) {
        snprintf(why, whylen, "bad host name '%s'", host);
        return -1;
    }
    rc = (resolver ? resolver : resolve_getaddrinfo)(host, sa, len);
    if (rc) {
        snprintf(why, whylen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
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

int cfg_resolve_addr(const char *s, struct sockaddr_storage *sa, socklen_t *len, char *why,
                     size_t whylen)
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
    if (!v6 && resolve_host(host, sa, len, why, whylen))
        return -1;
    set_port(sa, (uint16_t)port);
    return 0;
}

int config_parse_addr(const char *s, struct cfg_addr *out)
{
    char why[300];

    memset(out, 0, sizeof *out);
    if (cfg_resolve_addr(s, &out->sa, &out->len, why, sizeof why))
        return -1;
    out->text = strdup(s);
    return out->text ? 0 : -1;
}

void config_addr_free(struct cfg_addr *a)
{
    free(a->text);
    a->text = NULL;
}
