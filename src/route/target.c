#include "route/target.h"

#include <string.h>

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* unreserved / sub-delims, the reg-name characters besides pct-encoded */
static bool is_regname_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("-._~!$&'()*+,;=", c) != NULL;
}

/* port = *DIGIT (RFC 3986 section 3.2.3): empty means the scheme's default, as a URI
 * normaliser reads it; a number must fit a TCP port, else two parsers could read two ports. */
static bool valid_port(const char *p, size_t len)
{
    if (len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

static bool valid_ip_literal(const char *p, size_t len)
{
    /* IPv6address or IPvFuture: hex digits, ':', '.', and for IPvFuture "v" plus sub-delims. */
    if (len < 2)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!(is_hex((char)c) || c == ':' || c == '.' || c == 'v' || c == 'V' ||
              (p[0] == 'v' && is_regname_char(c))))
            return false;
    }
    return memchr(p, ':', len) != NULL || p[0] == 'v' || p[0] == 'V';
}

bool target_host_valid(const char *h, size_t len)
{
    if (!len)
        return false;
    size_t i = 0;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', len);
        if (!close || !valid_ip_literal(h + 1, (size_t)(close - h) - 1))
            return false;
        i = (size_t)(close - h) + 1;
    } else {
        while (i < len && h[i] != ':') {
            if (h[i] == '%') {
                if (i + 2 >= len || !is_hex(h[i + 1]) || !is_hex(h[i + 2]))
                    return false;
                i += 3;
                continue;
            }
            if (!is_regname_char((unsigned char)h[i]))
                return false;
            i++;
        }
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    return h[i] == ':' && valid_port(h + i + 1, len - i - 1);
}

/* Length of a '.' at p (1 for ".", 3 for "%2e"), or 0. */
static size_t dot_at(const char *p, size_t len)
{
    if (len >= 1 && p[0] == '.')
        return 1;
    if (len >= 3 && p[0] == '%' && p[1] == '2' && (p[2] == 'e' || p[2] == 'E'))
        return 3;
    return 0;
}

/* Kind of the segment starting at p (just after a '/'): 1 = ".", 2 = "..", 0 = other. *seg_len
 * receives its length in bytes. */
static int segment_kind(const char *p, size_t len, size_t *seg_len)
{
    const char *slash = memchr(p, '/', len);
    size_t n = slash ? (size_t)(slash - p) : len;
    *seg_len = n;
    size_t d1 = dot_at(p, n);
    if (!d1)
        return 0;
    if (d1 == n)
        return 1;
    size_t d2 = dot_at(p + d1, n - d1);
    return d2 && d1 + d2 == n ? 2 : 0;
}

bool target_path_has_dots(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '/')
            continue;
        size_t seg;
        if (segment_kind(p + i + 1, len - i - 1, &seg))
            return true;
    }
    return false;
}

size_t target_path_normalize(const char *p, size_t len, char *out)
{
    size_t n = 0, i = 0;
    while (i < len) {
        if (p[i] != '/') { /* a path that does not start with '/': copy the segment */
            out[n++] = p[i++];
            continue;
        }
        size_t seg;
        int kind = segment_kind(p + i + 1, len - i - 1, &seg);
        bool last = i + 1 + seg == len;
        if (kind == 0) {
            memcpy(out + n, p + i, 1 + seg);
            n += 1 + seg;
        } else if (kind == 2) {
            while (n > 0 && out[n - 1] != '/')
                n--; /* drop the previous segment ... */
            if (n > 0)
                n--; /* ... and its slash */
        }
        /* "." and ".." as the last segment leave the path ending in '/' */
        if (kind && last)
            out[n++] = '/';
        i += 1 + seg;
    }
    if (n == 0)
        out[n++] = '/';
    return n;
}
