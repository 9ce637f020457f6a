#include "http/token.h"
#include "http/request.h"

#include <string.h>

const struct http_field *http_find_field(const struct http_request *r, const char *lower_name,
                                         size_t name_len)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (http_token_eq(r->fields[i].name, r->fields[i].name_len, lower_name, name_len))
            return &r->fields[i];
    return 0;
}

/* One cookie-string (RFC 6265 section 4.2.1): "a=1; b=2". */
static const char *cookie_in(const char *v, size_t vlen, const char *name, size_t name_len,
                             size_t *len)
{
    size_t i = 0;
    while (i < vlen) {
        while (i < vlen && (v[i] == ' ' || v[i] == ';'))
            i++;
        size_t end = i;
        while (end < vlen && v[end] != ';')
            end++;
        if (end - i > name_len && memcmp(v + i, name, name_len) == 0 && v[i + name_len] == '=') {
            size_t vend = end;
            while (vend > i + name_len + 1 && v[vend - 1] == ' ')
                vend--;
            *len = vend - (i + name_len + 1);
            return v + i + name_len + 1;
        }
        i = end;
    }
    return NULL;
}

const char *http_cookie_value(const struct http_request *r, const char *name, size_t name_len,
                              size_t *len)
{
    for (size_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (!http_token_eq(f->name, f->name_len, "cookie", 6))
            continue;
        const char *v = cookie_in(f->value, f->value_len, name, name_len, len);
        if (v)
            return v;
    }
    return NULL;
}

static size_t fmt_base(char out[HTTP_NUM_MAX], unsigned long long v, unsigned base)
{
    static const char digits[] = "0123456789abcdef";
    char rev[HTTP_NUM_MAX];
    size_t n = 0, i = 0;
    do {
        rev[n++] = digits[v % base];
        v /= base;
    } while (v);
    while (n)
        out[i++] = rev[--n];
    return i;
}

size_t http_fmt_dec(char out[HTTP_NUM_MAX], unsigned long long v)
{
    return fmt_base(out, v, 10);
}

size_t http_fmt_hex(char out[HTTP_NUM_MAX], unsigned long long v)
{
    return fmt_base(out, v, 16);
}

size_t http_fmt_line(char *out, const char *prefix, size_t plen, unsigned long long v, int hex)
{
    memcpy(out, prefix, plen);
    size_t n = plen + fmt_base(out + plen, v, hex ? 16 : 10);
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}
