/* The PROXY protocol header, versions 1 (text) and 2 (binary), as HAProxy's specification
 * (doc/proxy-protocol.txt) defines them: strict parsing, bounded by the bytes given. */
#include "net/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const char v1_sig[] = "PROXY ";
static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

enum { PP2_CMD_LOCAL = 0, PP2_CMD_PROXY = 1 };
enum { PP2_AF_UNSPEC = 0, PP2_AF_INET = 1, PP2_AF_INET6 = 2, PP2_AF_UNIX = 3 };
enum { PP2_TR_UNSPEC = 0, PP2_TR_STREAM = 1, PP2_TR_DGRAM = 2 };
enum {
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_NOOP = 0x04,
    PP2_TYPE_UNIQUE_ID = 0x05,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
};

static ssize_t bad(const char **why, const char *what)
{
    *why = what;
    return PP_BAD;
}

/* Whether the first len bytes could begin `sig`. */
static bool prefix_of(const uint8_t *p, size_t len, const void *sig, size_t siglen)
{
    return memcmp(p, sig, len < siglen ? len : siglen) == 0;
}

/* ---- version 1 -------------------------------------------------------------------------- */

/* A port: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static bool v1_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool v1_addr(int af, const char *s, size_t len, uint16_t port, struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof text)
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    memset(ss, 0, sizeof *ss);
    if (af == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        return inet_pton(AF_INET, text, &a->sin_addr) == 1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    return inet_pton(AF_INET6, text, &a->sin6_addr) == 1;
}

/* The space-separated words of the line after "PROXY ", at most `max`; false on an empty word
 * (two spaces, a trailing space) or more than `max` words. */
static bool v1_words(const char *s, size_t len, const char **w, size_t *wl, size_t max, size_t *n)
{
    *n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ' ')
            continue;
        if (i == start || *n == max)
            return false;
        w[*n] = s + start;
        wl[(*n)++] = i - start;
        start = i + 1;
    }
    return true;
}

static ssize_t v1_line(const char *s, size_t len, struct pp_header *h, const char **why)
{
    const char *w[5];
    size_t wl[5], n;

    if (len >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (len == 7 || s[7] == ' '))
        return 0; /* the rest is to be ignored: the real peer stays the client */
    if (!v1_words(s, len, w, wl, 5, &n) || n != 5)
        return bad(why, "v1: expected 'TCP4|TCP6 SRC DST SPORT DPORT'");
    int af;
    if (wl[0] == 4 && memcmp(w[0], "TCP4", 4) == 0)
        af = AF_INET;
    else if (wl[0] == 4 && memcmp(w[0], "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return bad(why, "v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)");
    uint16_t sport, dport;
    if (!v1_port(w[3], wl[3], &sport) || !v1_port(w[4], wl[4], &dport))
        return bad(why, "v1: bad port");
    if (!v1_addr(af, w[1], wl[1], sport, &h->src) || !v1_addr(af, w[2], wl[2], dport, &h->dst))
        return bad(why, "v1: bad address");
    h->has_addrs = true;
    h->addr_len = af == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    return 0;
}

static ssize_t parse_v1(const uint8_t *p, size_t len, struct pp_header *h, const char **why)
{
    size_t scan = len < PP_V1_MAX ? len : PP_V1_MAX;
    for (size_t i = sizeof v1_sig - 1; i < scan; i++) {
        if (p[i] == '\r') {
            if (i + 1 == len)
                return PP_NEED_MORE;
            if (i + 1 >= PP_V1_MAX || p[i + 1] != '\n')
                return bad(why, "v1: CR not followed by LF");
            h->version = 1;
            size_t start = sizeof v1_sig - 1;
            if (v1_line((const char *)p + start, i - start, h, why) < 0)
                return PP_BAD;
            return (ssize_t)(i + 2);
        }
        if (p[i] < 0x20 || p[i] > 0x7e)
            return bad(why, "v1: control or non-ASCII byte");
    }
    if (len >= PP_V1_MAX)
        return bad(why, "v1: no CRLF within 107 bytes");
    return PP_NEED_MORE;
}

/* ---- version 2 -------------------------------------------------------------------------- */

/* A text TLV, cut to `cap` - 1 and made printable (it may reach a log line). */
static void tlv_text(char *dst, size_t cap, const uint8_t *v, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)(v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?');
    dst[n] = '\0';
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Walks the type-length-value list at p[0..len), calling `one` for each: 0, or PP_BAD when one
 * overruns it or `one` refuses it. */
typedef int (*tlv_fn)(struct pp_tlvs *t, uint8_t type, const uint8_t *v, size_t len);

static int tlv_walk(const uint8_t *p, size_t len, struct pp_tlvs *t, tlv_fn one)
{
    size_t off = 0;
    while (off < len) {
        if (len - off < 3)
            return PP_BAD;
        size_t vlen = be16(p + off + 1);
        if (len - off - 3 < vlen)
            return PP_BAD;
        if (one(t, p[off], p + off + 3, vlen) < 0)
            return PP_BAD;
        off += 3 + vlen;
    }
    return 0;
}

static int ssl_sub(struct pp_tlvs *t, uint8_t type, const uint8_t *v, size_t len)
{
    if (type == PP2_SUBTYPE_SSL_VERSION)
        tlv_text(t->ssl_version, sizeof t->ssl_version, v, len);
    else if (type == PP2_SUBTYPE_SSL_CN)
        tlv_text(t->ssl_cn, sizeof t->ssl_cn, v, len);
    else if (type == PP2_SUBTYPE_SSL_CIPHER)
        tlv_text(t->ssl_cipher, sizeof t->ssl_cipher, v, len);
    return 0;
}

static int top_tlv(struct pp_tlvs *t, uint8_t type, const uint8_t *v, size_t len)
{
    switch (type) {
    case PP2_TYPE_ALPN:
        tlv_text(t->alpn, sizeof t->alpn, v, len);
        break;
    case PP2_TYPE_AUTHORITY:
        tlv_text(t->authority, sizeof t->authority, v, len);
        break;
    case PP2_TYPE_CRC32C:
        t->crc32c = true;
        break;
    case PP2_TYPE_UNIQUE_ID:
        t->unique_id = true;
        break;
    case PP2_TYPE_NOOP:
        break;
    case PP2_TYPE_SSL:
        /* client (1 byte), verify (4 bytes), then sub-TLVs */
        if (len < 5 || tlv_walk(v + 5, len - 5, t, ssl_sub) < 0)
            return PP_BAD;
        t->ssl = true;
        t->ssl_client = v[0];
        t->ssl_verify = (uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4];
        break;
    default:
        t->other++;
        break;
    }
    return 0;
}

static size_t v2_addr_size(int af)
{
    return af == PP2_AF_INET ? 12 : af == PP2_AF_INET6 ? 36 : af == PP2_AF_UNIX ? 216 : 0;
}

static void v2_addrs(const uint8_t *a, int af, struct pp_header *h)
{
    memset(&h->src, 0, sizeof h->src);
    memset(&h->dst, 0, sizeof h->dst);
    if (af == PP2_AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src, *d = (struct sockaddr_in *)&h->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        h->addr_len = sizeof *s;
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src,
                            *d = (struct sockaddr_in6 *)&h->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        h->addr_len = sizeof *s;
    }
    h->has_addrs = true;
}

static ssize_t parse_v2(const uint8_t *p, size_t len, struct pp_header *h, const char **why)
{
    if (len < PP_V2_HEAD)
        return PP_NEED_MORE;
    if (p[12] >> 4 != 2)
        return bad(why, "v2: unknown version");
    int cmd = p[12] & 0x0f, af = p[13] >> 4, tr = p[13] & 0x0f;
    size_t body = be16(p + 14);
    if (cmd != PP2_CMD_LOCAL && cmd != PP2_CMD_PROXY)
        return bad(why, "v2: unknown command");
    if (af > PP2_AF_UNIX || tr > PP2_TR_DGRAM)
        return bad(why, "v2: unknown address family or transport");
    if (body > PP_V2_MAX)
        return bad(why, "v2: header longer than we take (1024 bytes after the first 16)");
    if (len < PP_V2_HEAD + body)
        return PP_NEED_MORE;
    h->version = 2;
    if (cmd == PP2_CMD_LOCAL) {
        h->local = true; /* the balancer's own connection: addresses and TLVs are discarded */
        return (ssize_t)(PP_V2_HEAD + body);
    }
    size_t asz = v2_addr_size(af);
    if (body < asz)
        return bad(why, "v2: addresses shorter than their family");
    if ((af == PP2_AF_INET || af == PP2_AF_INET6) && tr != PP2_TR_STREAM)
        return bad(why, "v2: not a stream connection");
    if (af == PP2_AF_INET || af == PP2_AF_INET6)
        v2_addrs(p + PP_V2_HEAD, af, h);
    if (tlv_walk(p + PP_V2_HEAD + asz, body - asz, &h->tlvs, top_tlv) < 0)
        return bad(why, "v2: malformed TLV");
    return (ssize_t)(PP_V2_HEAD + body);
}

ssize_t pp_parse(const uint8_t *p, size_t len, struct pp_header *h, const char **why)
{
    memset(h, 0, sizeof *h);
    *why = "";
    if (len == 0)
        return PP_NEED_MORE;
    if (prefix_of(p, len, v1_sig, sizeof v1_sig - 1))
        return len < sizeof v1_sig - 1 ? PP_NEED_MORE : parse_v1(p, len, h, why);
    if (prefix_of(p, len, v2_sig, sizeof v2_sig))
        return parse_v2(p, len, h, why);
    return bad(why, "not a PROXY protocol header");
}

/* ---- writing ---------------------------------------------------------------------------- */

static bool same_ip_family(const struct sockaddr *a, const struct sockaddr *b)
{
    return a && b && a->sa_family == b->sa_family &&
           (a->sa_family == AF_INET || a->sa_family == AF_INET6);
}

static uint16_t port_of(const struct sockaddr *sa)
{
    return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                          : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

static const void *ip_of(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                    : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
}

size_t pp_write_v1(char *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst)
{
    int n;
    if (!same_ip_family(src, dst)) {
        n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
    } else {
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        inet_ntop(src->sa_family, ip_of(src), s, sizeof s);
        inet_ntop(dst->sa_family, ip_of(dst), d, sizeof d);
        n = snprintf(out, cap, "PROXY %s %s %s %u %u\r\n",
                     src->sa_family == AF_INET ? "TCP4" : "TCP6", s, d, port_of(src), port_of(dst));
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t pp_write_v2(uint8_t *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst,
                   bool local)
{
    bool addrs = !local && same_ip_family(src, dst);
    size_t alen = !addrs ? 0 : src->sa_family == AF_INET ? 12 : 36;
    if (cap < PP_V2_HEAD + alen)
        return 0;
    memcpy(out, v2_sig, sizeof v2_sig);
    out[12] = addrs ? 0x21 : 0x20; /* version 2; PROXY, or LOCAL when there is nothing to say */
    out[13] = !addrs ? 0x00 : src->sa_family == AF_INET ? 0x11 : 0x21; /* family, STREAM */
    out[14] = 0;
    out[15] = (uint8_t)alen;
    if (!addrs)
        return PP_V2_HEAD;
    size_t ip = alen == 12 ? 4 : 16;
    uint16_t sp = htons(port_of(src)), dp = htons(port_of(dst));
    memcpy(out + PP_V2_HEAD, ip_of(src), ip);
    memcpy(out + PP_V2_HEAD + ip, ip_of(dst), ip);
    memcpy(out + PP_V2_HEAD + 2 * ip, &sp, 2);
    memcpy(out + PP_V2_HEAD + 2 * ip + 2, &dp, 2);
    return PP_V2_HEAD + alen;
}
