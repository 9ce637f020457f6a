#include "http/hop.h"

#include "http/h1_parse.h"
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
        if (h1_token_eq(fields[i].name, fields[i].name_len, "connection", 10))
            hop_add_tokens(h, fields[i].value, fields[i].value_len);
}

static bool fixed_hop(const char *name, size_t len)
{
    if (len > 6 && strncasecmp(name, "proxy-", 6) == 0)
        return true;
    switch (len) {
    case 2:
        return h1_token_eq(name, len, "te", 2);
    case 7:
        return h1_token_eq(name, len, "trailer", 7) || h1_token_eq(name, len, "upgrade", 7);
    case 10:
        return h1_token_eq(name, len, "connection", 10) || h1_token_eq(name, len, "keep-alive", 10);
    case 17:
        return h1_token_eq(name, len, "transfer-encoding", 17);
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
                                        NULL};
    if (fixed_hop(name, len))
        return true;
    for (size_t i = 0; names[i]; i++)
        if (h1_token_eq(name, len, names[i], strlen(names[i])))
            return true;
    return false;
}
