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
