#include "http/path.h"

#include <string.h>

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 section 2.3: characters that mean the same percent-encoded or not. */
static bool is_unreserved(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c == '-' || c == '.' || c == '_' || c == '~';
}

static unsigned hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    return (unsigned)((c | 0x20) - 'a' + 10);
}

/* An if, not ?:, whose char operands would be promoted to int and narrowed back on return. */
static char hex_upper(char c)
{
    if (c >= 'a' && c <= 'f')
        return (char)(c - 'a' + 'A');
    return c;
}

/* The byte a valid "%XX" at p stands for, or -1 (no '%', or not two hex digits follow). */
static int pct_at(const char *p, size_t len)
{
    if (len < 3 || p[0] != '%' || !is_hex(p[1]) || !is_hex(p[2]))
        return -1;
    return (int)(hex_val(p[1]) << 4 | hex_val(p[2]));
}

/* Kind of the segment starting at p (just after a '/'): 1 = ".", 2 = "..", 0 = other. *seg_len
 * receives its length in bytes. Percent-encoded dots are decoded before this is asked. */
static int segment_kind(const char *p, size_t len, size_t *seg_len)
{
    const char *slash = memchr(p, '/', len);
    size_t n = slash ? (size_t)(slash - p) : len;
    *seg_len = n;
    if (n == 1 && p[0] == '.')
        return 1;
    return n == 2 && p[0] == '.' && p[1] == '.' ? 2 : 0;
}

bool http_path_needs_normalize(const char *p, size_t len)
{
    const char *query = memchr(p, '?', len);
    if (query) /* HTTP/2 asks with the whole :path; a dot segment may end right before '?' */
        len = (size_t)(query - p);
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%') {
            int c = pct_at(p + i, len - i);
            if (c >= 0 && (is_unreserved((unsigned char)c) || hex_upper(p[i + 1]) != p[i + 1] ||
                           hex_upper(p[i + 2]) != p[i + 2]))
                return true;
            continue;
        }
        if (p[i] != '/')
            continue;
        if (i + 1 < len && p[i + 1] == '/')
            return true;
        size_t seg;
        if (segment_kind(p + i + 1, len - i - 1, &seg))
            return true;
    }
    return false;
}

bool http_path_pct_valid(const char *p, size_t len)
{
    const char *end = p + len;
    for (const char *pct = memchr(p, '%', len); pct;
         pct = memchr(pct + 1, '%', (size_t)(end - pct - 1))) {
        if (pct_at(pct, (size_t)(end - pct)) < 0)
            return false;
    }
    return true;
}

/* Step 1: unreserved characters decoded, other percent-encodings with uppercase hex digits,
 * runs of '/' made one. The result is never longer. */
static size_t canonical_copy(const char *p, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int c = p[i] == '%' ? pct_at(p + i, len - i) : -1;
        if (c >= 0 && is_unreserved((unsigned char)c)) {
            out[n++] = (char)c;
            i += 3;
        } else if (c >= 0) {
            out[n++] = '%';
            out[n++] = hex_upper(p[i + 1]);
            out[n++] = hex_upper(p[i + 2]);
            i += 3;
        } else if (p[i] == '/' && n && out[n - 1] == '/') {
            i++;
        } else {
            out[n++] = p[i++];
        }
    }
    return n;
}

/* Step 2: RFC 3986 section 5.2.4 remove_dot_segments, in place (what is written never passes
 * what is still to be read). */
static size_t remove_dots(char *p, size_t len)
{
    size_t n = 0, i = 0;
    while (i < len) {
        if (p[i] != '/') { /* a path that does not start with '/': copy the segment */
            p[n++] = p[i++];
            continue;
        }
        size_t seg;
        int kind = segment_kind(p + i + 1, len - i - 1, &seg);
        bool last = i + 1 + seg == len;
        if (kind == 0) {
            memmove(p + n, p + i, 1 + seg);
            n += 1 + seg;
        } else if (kind == 2) {
            while (n > 0 && p[n - 1] != '/')
                n--; /* drop the previous segment ... */
            if (n > 0)
                n--; /* ... and its slash */
        }
        /* "." and ".." as the last segment leave the path ending in '/' */
        if (kind && last)
            p[n++] = '/';
        i += 1 + seg;
    }
    if (n == 0)
        p[n++] = '/';
    return n;
}

/* A path with a '%' that starts no percent-encoding is copied as it is: decoding around it
 * could make one ("%%61" would turn into "%a"), and removing dot segments could remove it
 * ("/%/../%61dmin"); either would let through, as valid, a path that is refused (400) as it
 * came (http_path_pct_valid). */
size_t http_path_normalize(const char *p, size_t len, char *out)
{
    if (!http_path_pct_valid(p, len)) {
        memcpy(out, p, len);
        return len;
    }
    return remove_dots(out, canonical_copy(p, len, out));
}

size_t http_path_decode(const char *p, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int c = p[i] == '%' ? pct_at(p + i, len - i) : -1;
        if (c >= 0) {
            out[n++] = (char)c;
            i += 3;
        } else {
            out[n++] = p[i++];
        }
    }
    return n;
}
