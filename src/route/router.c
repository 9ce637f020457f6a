#include "route/router.h"

#include "config/config.h"
#include "http/request.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* Strip the port (and IPv6 brackets stay as they are: "[::1]:80" -> "[::1]") and a trailing
 * dot, so "Example.COM.:8080" compares equal to "example.com". */
static size_t host_without_port(const char *host, size_t len)
{
    size_t end = len;
    if (!len)
        return 0;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', len);
        return close ? (size_t)(close - host) + 1 : len;
    }
    const char *colon = memchr(host, ':', len);
    if (colon)
        end = (size_t)(colon - host);
    if (end && host[end - 1] == '.')
        end--;
    return end;
}

/* An IPv6 literal ("[0:0::1]") in the form the configuration stores ("[::1]"), so that any
 * spelling of the address matches; returns its length, 0 when `host` is not one. */
static size_t ipv6_canonical(const char *host, size_t len, char out[INET6_ADDRSTRLEN + 2])
{
    char text[INET6_ADDRSTRLEN];
    struct in6_addr a;

    if (len < 3 || host[0] != '[' || host[len - 1] != ']' || len - 2 >= sizeof text)
        return 0;
    memcpy(text, host + 1, len - 2);
    text[len - 2] = '\0';
    if (inet_pton(AF_INET6, text, &a) != 1 || !inet_ntop(AF_INET6, &a, out + 1, INET6_ADDRSTRLEN))
        return 0;
    out[0] = '[';
    size_t n = strlen(out);
    out[n++] = ']';
    return n;
}

static bool name_eq(const char *pattern, const char *host, size_t len)
{
    return strlen(pattern) == len && strncasecmp(pattern, host, len) == 0;
}

/* "*.example.com" covers any name ending in ".example.com" with at least one label before. */
static bool wildcard_match(const char *pattern, const char *host, size_t len)
{
    size_t plen = strlen(pattern) - 1; /* ".example.com" */
    return len > plen && strncasecmp(pattern + 1, host + len - plen, plen) == 0;
}

static bool listener_serves(const struct cfg_listener *l, const struct cfg_site *s)
{
    if (!l || !l->nsites)
        return true;
    for (size_t i = 0; i < l->nsites; i++)
        if (l->sites[i] == s)
            return true;
    return false;
}

const struct cfg_site *router_site(const struct config *c, const struct cfg_listener *l,
                                   const char *host, size_t len)
{
    if (!host) { /* no Host: the empty name, so that no comparison below is given NULL */
        host = "";
        len = 0;
    }
    len = host_without_port(host, len);
    char v6[INET6_ADDRSTRLEN + 2];
    size_t v6_len = len && host[0] == '[' ? ipv6_canonical(host, len, v6) : 0;
    if (v6_len) {
        host = v6;
        len = v6_len;
    }
    const struct cfg_site *wild = NULL, *any = NULL, *fallback = NULL;
    size_t wild_len = 0;
    for (size_t i = 0; i < c->nsites; i++) {
        const struct cfg_site *s = &c->sites[i];
        if (!listener_serves(l, s))
            continue;
        if (s->is_default)
            fallback = s;
        for (size_t j = 0; j < s->nhosts; j++) {
            const char *p = s->hosts[j];
            if (p[0] == '*' && p[1] == '\0') {
                if (!any)
                    any = s;
            } else if (p[0] == '*' && p[1] == '.') {
                size_t plen = strlen(p);
                if (plen > wild_len && wildcard_match(p, host, len)) {
                    wild = s; /* the most specific wildcard wins */
                    wild_len = plen;
                }
            } else if (name_eq(p, host, len)) {
                return s;
            }
        }
    }
    if (wild)
        return wild;
    return any ? any : fallback;
}

/* Length of a segment separator at p, as some application reads it, or 0: '/', an encoded
 * slash "%2F", and the backslash, raw or encoded ("%5C"), which IIS and other Windows servers
 * read as '/'. Read so for matching only: what is forwarded keeps them as they came. */
static size_t separator_at(const char *p, size_t len)
{
    if (p[0] == '/' || p[0] == '\\')
        return 1;
    if (len < 3 || p[0] != '%')
        return 0;
    if (p[1] == '2' && (p[2] == 'F' || p[2] == 'f'))
        return 3;
    return p[1] == '5' && (p[2] == 'C' || p[2] == 'c') ? 3 : 0;
}

/* The next segment of a path from *pos as the router reads it: separators as separator_at
 * says; the text ends at the first ';' (parameters follow); segments empty by then are
 * skipped. *pos moves past the whole segment, parameters included. False at the end. */
static bool next_segment(const char *p, size_t len, size_t *pos, struct slice *text)
{
    size_t i = *pos, sep;
    for (;;) {
        while (i < len && (sep = separator_at(p + i, len - i)))
            i += sep;
        if (i >= len) {
            *pos = i;
            return false;
        }
        size_t start = i, end = 0;
        while (i < len && !separator_at(p + i, len - i)) {
            if (p[i] == ';' && !end)
                end = i;
            i++;
        }
        if (!end)
            end = i;
        if (end > start) {
            *text = (struct slice){p + start, end - start};
            *pos = i;
            return true;
        }
    }
}

bool router_prefix_match(const char *prefix, size_t plen, const char *path, size_t len, bool nocase,
                         size_t *rest)
{
    size_t pp = 0, tp = 0;
    struct slice want, got;
    while (next_segment(prefix, plen, &pp, &want)) {
        if (!next_segment(path, len, &tp, &got) || got.len != want.len)
            return false;
        if (nocase ? strncasecmp(got.p, want.p, got.len) : memcmp(got.p, want.p, got.len))
            return false;
    }
    *rest = tp;
    return true;
}

bool router_path_ambiguous(const char *path, size_t len)
{
    size_t pos = 0;
    struct slice seg;
    while (next_segment(path, len, &pos, &seg)) {
        if (seg.p[0] == '.' && (seg.len == 1 || (seg.len == 2 && seg.p[1] == '.')))
            return true;
    }
    return false;
}

const struct cfg_route *router_route(const struct cfg_site *site, const char *path, size_t len,
                                     size_t *rest)
{
    /* Routes are sorted longest first, so the first match is the longest prefix. */
    for (size_t i = 0; i < site->nroutes; i++) {
        const struct cfg_route *r = &site->routes[i];
        if (router_prefix_match(r->path, r->path_len, path, len, site->case_insensitive_paths,
                                rest))
            return r;
    }
    return NULL;
}
