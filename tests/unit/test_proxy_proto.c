/* Unit tests for the PROXY protocol parser and writer (net/proxy_proto.h): exact bytes of v1
 * and v2 headers, every refusal, every prefix of a valid header asking for more, TLVs, and
 * headers we write read back. */
#include "check.h"
#include "net/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static ssize_t parse(const void *p, size_t len, struct pp_header *h)
{
    const char *why;
    return pp_parse(p, len, h, &why);
}

static ssize_t parse_str(const char *s, struct pp_header *h)
{
    return parse(s, strlen(s), h);
}

static const char *src_text(const struct pp_header *h, char *buf, size_t cap)
{
    const void *a = h->src.ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)&h->src)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)&h->src)->sin6_addr;
    return inet_ntop(h->src.ss_family, a, buf, (socklen_t)cap);
}

static unsigned src_port(const struct pp_header *h)
{
    return h->src.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&h->src)->sin_port)
                                       : ntohs(((const struct sockaddr_in6 *)&h->src)->sin6_port);
}

/* Every strict prefix of a valid header asks for more; the whole gives its length. */
static void check_prefixes(const void *hdr, size_t len)
{
    struct pp_header h;
    for (size_t i = 0; i < len; i++)
        CHECK_EQ_INT(parse(hdr, i, &h), PP_NEED_MORE);
    CHECK_EQ_INT(parse(hdr, len, &h), (ssize_t)len);
}

static void test_v1(void)
{
    struct pp_header h;
    char buf[64];
    const char *tcp4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
    CHECK_EQ_INT(parse_str(tcp4, &h), 45);
    CHECK_EQ_INT(h.version, 1);
    CHECK(h.has_addrs);
    CHECK(strcmp(src_text(&h, buf, sizeof buf), "192.0.2.7") == 0);
    CHECK_EQ_INT(src_port(&h), 56324);
    CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&h.dst)->sin_port), 443);
    check_prefixes(tcp4, 45);

    CHECK_EQ_INT(parse_str("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", &h), 36);
    CHECK_EQ_INT(h.src.ss_family, AF_INET6);
    CHECK(strcmp(src_text(&h, buf, sizeof buf), "2001:db8::1") == 0);

    CHECK_EQ_INT(parse_str("PROXY UNKNOWN\r\n", &h), 15);
    CHECK(!h.has_addrs);
    CHECK_EQ_INT(parse_str("PROXY UNKNOWN ffff::1 ::1 1 2\r\n", &h), 31);
    CHECK(!h.has_addrs);

    /* Refused. */
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",       /* bare LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",      /* CR without LF */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",    /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",    /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       /* a port missing */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   /* a word too many */
        "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",   /* not an address */
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",         /* IPv6 under TCP4 */
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",         /* IPv4 under TCP6 */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /* port too large */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",    /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",    /* sign */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",     /* protocol */
        "PROXY UNKNOWNX\r\n",                     /* not UNKNOWN */
        "PROXY \r\n",                             /* empty */
        "PROXY TCP4 1.2.3.4\x01 5.6.7.8 1 2\r\n", /* control byte */
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",     /* case */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ssize_t r = parse_str(bad[i], &h);
        if (r != PP_BAD)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK_EQ_INT(r, PP_BAD);
    }
    /* 107 bytes is the limit, CRLF included. */
    char line[200] = "PROXY UNKNOWN ";
    size_t n = strlen(line);
    memset(line + n, 'a', 105 - n);
    memcpy(line + 105, "\r\n", 3);
    CHECK_EQ_INT(parse_str(line, &h), 107);
    memset(line + n, 'a', 106 - n);
    memcpy(line + 106, "\r\n", 3);
    CHECK_EQ_INT(parse_str(line, &h), PP_BAD);
    memset(line + n, 'a', 150 - n);
    CHECK_EQ_INT(parse(line, 150, &h), PP_BAD); /* no CRLF in sight */
    CHECK_EQ_INT(parse(line, 106, &h), PP_NEED_MORE);
}

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 header into out: command byte, family byte, then `body` of `blen` bytes. */
static size_t v2(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *body, size_t blen)
{
    memcpy(out, sig, 12);
    out[12] = cmd;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    if (blen) /* body may be NULL for an empty address block */
        memcpy(out + 16, body, blen);
    return 16 + blen;
}

static void test_v2(void)
{
    struct pp_header h;
    uint8_t out[2048], body[1100];
    char buf[64];
    static const uint8_t inet[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb};

    size_t n = v2(out, 0x21, 0x11, inet, 12);
    memcpy(out + n, "GET", 3); /* the request right behind */
    CHECK_EQ_INT(parse(out, n + 3, &h), 28);
    CHECK_EQ_INT(h.version, 2);
    CHECK(h.has_addrs && !h.local);
    CHECK(strcmp(src_text(&h, buf, sizeof buf), "192.0.2.7") == 0);
    CHECK_EQ_INT(src_port(&h), 56324);
    check_prefixes(out, n);

    uint8_t in6[36] = {0x20, 0x01, 0x0d, 0xb8};
    in6[15] = 1;
    in6[31] = 1;
    in6[32] = 0x30;
    in6[33] = 0x39;
    n = v2(out, 0x21, 0x21, in6, 36);
    CHECK_EQ_INT(parse(out, n, &h), 52);
    CHECK(strcmp(src_text(&h, buf, sizeof buf), "2001:db8::1") == 0);
    CHECK_EQ_INT(src_port(&h), 12345);

    /* LOCAL: the real peer stays; whatever follows the 16 bytes is skipped. */
    n = v2(out, 0x20, 0x00, NULL, 0);
    CHECK_EQ_INT(parse(out, n, &h), 16);
    CHECK(h.local && !h.has_addrs);
    n = v2(out, 0x20, 0x11, inet, 12);
    CHECK_EQ_INT(parse(out, n, &h), 28);
    CHECK(h.local && !h.has_addrs);
    /* UNSPEC and UNIX: a header, but no address we can use. */
    n = v2(out, 0x21, 0x00, NULL, 0);
    CHECK_EQ_INT(parse(out, n, &h), 16);
    CHECK(!h.has_addrs && !h.local);
    memset(body, 'u', 216);
    n = v2(out, 0x21, 0x31, body, 216);
    CHECK_EQ_INT(parse(out, n, &h), 232);
    CHECK(!h.has_addrs);

    /* TLVs: ALPN, authority, SSL with version and CN, NOOP, an unknown one (AWS 0xEA). */
    uint8_t t[200];
    size_t tl = 0;
    memcpy(t, inet, 12);
    tl = 12;
    const uint8_t tlvs[] = {0x01, 0,   2,    'h', '2', 0x02, 0,    11,   'e', 'x',  'a',  'm', 'p',
                            'l',  'e', '.',  'c', 'o', 'm',  0x04, 0,    0,   0xea, 0,    3,   1,
                            2,    3,   0x20, 0,   20,  0x07, 0,    0,    0,   0,    0x21, 0,   7,
                            'T',  'L', 'S',  'v', '1', '.',  '3',  0x22, 0,   2,    'c',  'n'};
    memcpy(t + tl, tlvs, sizeof tlvs);
    tl += sizeof tlvs;
    n = v2(out, 0x21, 0x11, t, tl);
    CHECK_EQ_INT(parse(out, n, &h), (ssize_t)n);
    CHECK(strcmp(h.tlvs.alpn, "h2") == 0);
    CHECK(strcmp(h.tlvs.authority, "example.com") == 0);
    CHECK(h.tlvs.ssl && h.tlvs.ssl_client == 7 && h.tlvs.ssl_verify == 0);
    CHECK(strcmp(h.tlvs.ssl_version, "TLSv1.3") == 0);
    CHECK(strcmp(h.tlvs.ssl_cn, "cn") == 0);
    CHECK_EQ_INT(h.tlvs.other, 1);
    check_prefixes(out, n);

    /* Refused. */
    n = v2(out, 0x11, 0x11, inet, 12); /* version 1 in a v2 signature */
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    n = v2(out, 0x22, 0x11, inet, 12); /* command 2 */
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    n = v2(out, 0x21, 0x41, inet, 12); /* family 4 */
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    n = v2(out, 0x21, 0x13, inet, 12); /* transport 3 */
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    n = v2(out, 0x21, 0x12, inet, 12); /* DGRAM */
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    n = v2(out, 0x21, 0x11, inet, 11); /* addresses short of their family */
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    n = v2(out, 0x21, 0x21, in6, 20);
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    memcpy(t + 12, (const uint8_t[]){0x01, 0, 5, 'h'}, 4); /* TLV longer than the header */
    n = v2(out, 0x21, 0x11, t, 16);
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    n = v2(out, 0x21, 0x11, t, 14); /* half a TLV head */
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    memcpy(t + 12, (const uint8_t[]){0x20, 0, 4, 1, 0, 0, 0}, 7); /* SSL shorter than 5 */
    n = v2(out, 0x21, 0x11, t, 19);
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    memcpy(t + 12, (const uint8_t[]){0x20, 0, 8, 1, 0, 0, 0, 0, 0x21, 0, 9}, 11); /* sub-TLV */
    n = v2(out, 0x21, 0x11, t, 23);
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
    memset(body, 0, sizeof body); /* longer than we take */
    n = v2(out, 0x21, 0x11, body, 1025);
    CHECK_EQ_INT(parse(out, 16, &h), PP_BAD);
    n = v2(out, 0x21, 0x11, body, 1024);
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD); /* zeros: TLV type 0, length 0... then 1 byte */
    body[12] = 0x04;                         /* one NOOP TLV filling the rest */
    body[13] = (1024 - 15) >> 8;
    body[14] = (1024 - 15) & 0xff;
    n = v2(out, 0x21, 0x11, body, 1024);
    CHECK_EQ_INT(parse(out, n, &h), 1040);
    /* A wrong signature byte. */
    n = v2(out, 0x21, 0x11, inet, 12);
    out[11] = 0x0b;
    CHECK_EQ_INT(parse(out, n, &h), PP_BAD);
}

static void test_write(void)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(1234)};
    struct sockaddr_in d4 = {.sin_family = AF_INET, .sin_port = htons(80)};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(5)};
    inet_pton(AF_INET, "10.1.2.3", &s4.sin_addr);
    inet_pton(AF_INET, "10.9.9.9", &d4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::5", &s6.sin6_addr);
    char v1[PP_V1_MAX + 1];
    size_t n = pp_write_v1(v1, sizeof v1, (struct sockaddr *)&s4, (struct sockaddr *)&d4);
    CHECK_SLICE(v1, n, "PROXY TCP4 10.1.2.3 10.9.9.9 1234 80\r\n");
    n = pp_write_v1(v1, sizeof v1, (struct sockaddr *)&s6, (struct sockaddr *)&d4);
    CHECK_SLICE(v1, n, "PROXY UNKNOWN\r\n");
    n = pp_write_v1(v1, 10, (struct sockaddr *)&s4, (struct sockaddr *)&d4);
    CHECK_EQ_INT(n, 0);

    uint8_t v2b[64];
    struct pp_header h;
    n = pp_write_v2(v2b, sizeof v2b, (struct sockaddr *)&s4, (struct sockaddr *)&d4, false);
    CHECK_EQ_INT(n, 28);
    CHECK_EQ_INT(parse(v2b, n, &h), 28);
    CHECK(h.has_addrs && memcmp(&h.src, &s4, sizeof s4) == 0 &&
          memcmp(&h.dst, &d4, sizeof d4) == 0);
    n = pp_write_v2(v2b, sizeof v2b, (struct sockaddr *)&s4, (struct sockaddr *)&d4, true);
    CHECK_EQ_INT(n, 16);
    CHECK_EQ_INT(v2b[12], 0x20);
    CHECK_EQ_INT(parse(v2b, n, &h), 16);
    CHECK(h.local);
    n = pp_write_v2(v2b, sizeof v2b, NULL, NULL, false);
    CHECK_EQ_INT(n, 16);
}

int main(void)
{
    test_v1();
    test_v2();
    test_write();
    return check_done("test_proxy_proto");
}
