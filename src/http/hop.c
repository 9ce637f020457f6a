#include "http/hop.h"

#include "http/token.h"
#include "http/request.h"

#include <string.h>
#include <strings.h>

void hop_add_tokens(struct hop_set *h, const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i > start && h->nextra < HOP_MAX_EXTRA) {
            h->extra[h->nextra].p = v + start;
            h->extra[h->nextra].len = i - start;
            h->nextra++;
        }
    }
}

void hop_collect(struct hop_set *h, const struct http_field *fields, size_t n)
{
    h->nextra = 0;
    for (size_t i = 0; i < n; i++)
        if (http_token_eq(fields[i].name, fields[i].name_len, "connection", 10))
            hop_add_tokens(h, fields[i].value, fields[i].value_len);
}

static bool fixed_hop(const char *name, size_t len)
{
    if (len > 6 && strncasecmp(name, "proxy-", 6) == 0)
        return true;
    switch (len) {
    case 2:
        return http_token_eq(name, len, "te", 2);
    case 7:
        return http_token_eq(name, len, "trailer", 7) || http_token_eq(name, len, "upgrade", 7);
    case 10:
        return http_token_eq(name, len, "connection", 10) ||
               http_token_eq(name, len, "keep-alive", 10);
    case 17:
        return http_token_eq(name, len, "transfer-encoding", 17);
    default:
        return false;
    }
}

bool hop_is_hop(const struct hop_set *h, const char *name, size_t len)
{
    if (fixed_hop(name, len))
        return true;
    for (size_t i = 0; i < h->nextra; i++)
        if (h->extra[i].len == len && strncasecmp(h->extra[i].p, name, len) == 0)
            return true;
    return false;
}

bool hop_trailer_forbidden(const char *name, size_t len)
{
    static const char *const names[] = {"host",
                                        "content-length",
                                        "content-type",
                                        "content-encoding",
                                        "content-range",
                                        "authorization",
                                        "cookie",
                                        "set-cookie",
                                        "expect",
                                        "max-forwards",
                                        "range",
                                        "if-match",
                                        "if-none-match",
                                        "if-modified-since",
                                        "if-unmodified-since",
                                        "if-range",
                                        "cache-control",
                                        "age",
                                        "expires",
                                        "date",
                                        "location",
                                        "retry-after",
                                        "vary",
                                        "www-authenticate",
                                        "proxy-authenticate",
                                        "content-location",
                                        "content-language",
                                        "via",
                                        "pragma",
                                        "x-real-ip",
                                        NULL};
    if (fixed_hop(name, len) || (len && name[0] == ':'))
        return true;
    /* Forwarding headers are ours to set, in the head: from a trailer a recipient that merges
     * trailers into the head would take a forged client address. */
    if ((len > 12 && strncasecmp(name, "x-forwarded-", 12) == 0) ||
        http_token_eq(name, len, "forwarded", 9))
        return true;
    for (size_t i = 0; names[i]; i++)
        if (http_token_eq(name, len, names[i], strlen(names[i])))
            return true;
    return false;
}

/* Whether an Upgrade token names h2c, with or without a version ("h2c/1"). */
static bool is_h2c(const char *t, size_t len)
{
    const char *slash = memchr(t, '/', len);
    size_t name_len = slash ? (size_t)(slash - t) : len;
    return http_token_eq(t, name_len, "h2c", 3);
}

/* Append the offered tokens of one Upgrade value. -1 when they do not fit. */
static long offer_tokens(const char *v, size_t len, char *out, size_t used, size_t cap)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        size_t tlen = i - start;
        if (!tlen || is_h2c(v + start, tlen))
            continue;
        size_t sep = used ? 2 : 0;
        if (used + sep + tlen > cap)
            return -1;
        memcpy(out + used, ", ", sep);
        memcpy(out + used + sep, v + start, tlen);
        used += sep + tlen;
    }
    return (long)used;
}

size_t hop_upgrade_offer(const struct http_field *fields, size_t n, char *out, size_t cap)
{
    long used = 0;
    for (size_t i = 0; i < n && used >= 0; i++)
        if (http_token_eq(fields[i].name, fields[i].name_len, "upgrade", 7))
            used = offer_tokens(fields[i].value, fields[i].value_len, out, (size_t)used, cap);
    return used > 0 ? (size_t)used : 0;
}
