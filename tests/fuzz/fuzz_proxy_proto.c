/* libFuzzer harness for the PROXY protocol parser (net/proxy_proto.h). The input is the first
 * bytes of a connection, copied to a buffer of its exact size.
 *
 * Checked: the result is PP_BAD, PP_NEED_MORE or a length within the input and within the
 * protocol's bounds (v1: 107 bytes; v2: 16 + 1024); a refusal says why; every shorter prefix of
 * an accepted header asks for more or is the same header (never refused: a header split over
 * packets must not be cut off); addresses are present only as IPv4 or IPv6; TLV texts end
 * within their buffers; a header with addresses written again by pp_write_v1/v2 parses back to
 * the same addresses. */
#include "fuzz.h"
#include "net/proxy_proto.h"

#include <string.h>
#include <sys/socket.h>

static void check_tlvs(const struct pp_tlvs *t)
{
    INVARIANT(memchr(t->alpn, 0, sizeof t->alpn));
    INVARIANT(memchr(t->authority, 0, sizeof t->authority));
    INVARIANT(memchr(t->ssl_version, 0, sizeof t->ssl_version));
    INVARIANT(memchr(t->ssl_cn, 0, sizeof t->ssl_cn));
    INVARIANT(memchr(t->ssl_cipher, 0, sizeof t->ssl_cipher));
}

static void check_roundtrip(const struct pp_header *h)
{
    struct pp_header back;
    const char *why;
    char v1[PP_V1_MAX + 1];
    uint8_t v2[PP_MAX];
    const struct sockaddr *s = (const struct sockaddr *)&h->src;
    const struct sockaddr *d = (const struct sockaddr *)&h->dst;

    size_t n = pp_write_v1(v1, sizeof v1, s, d);
    INVARIANT(n > 0 && n <= PP_V1_MAX);
    INVARIANT(pp_parse((const uint8_t *)v1, n, &back, &why) == (ssize_t)n);
    INVARIANT(back.has_addrs && memcmp(&back.src, &h->src, h->addr_len) == 0 &&
              memcmp(&back.dst, &h->dst, h->addr_len) == 0);
    n = pp_write_v2(v2, sizeof v2, s, d, false);
    INVARIANT(n > 0);
    INVARIANT(pp_parse(v2, n, &back, &why) == (ssize_t)n);
    INVARIANT(back.has_addrs && memcmp(&back.src, &h->src, h->addr_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    struct pp_header h;
    const char *why = NULL;

    INVARIANT(buf);
    memcpy(buf, data, size);
    ssize_t r = pp_parse(buf, size, &h, &why);
    INVARIANT(r == PP_BAD || r == PP_NEED_MORE || (r > 0 && (size_t)r <= size));
    if (r == PP_BAD)
        INVARIANT(why && *why);
    if (r > 0) {
        INVARIANT(h.version == 1 || h.version == 2);
        INVARIANT(h.version == 1 ? r <= PP_V1_MAX : r <= PP_MAX);
        INVARIANT(!h.has_addrs || h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
        INVARIANT(!h.has_addrs || h.src.ss_family == h.dst.ss_family);
        INVARIANT(!(h.has_addrs && h.local));
        check_tlvs(&h.tlvs);
        struct pp_header part;
        for (size_t i = 0; i < (size_t)r; i++) {
            ssize_t pr = pp_parse(buf, i, &part, &why);
            INVARIANT(pr == PP_NEED_MORE);
        }
        if (h.has_addrs)
            check_roundtrip(&h);
    }
    free(buf);
    return 0;
}
