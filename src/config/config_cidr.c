/* Address blocks: the `trusted_proxies` list, and matching a peer address against it. */
#include "config/config_values.h"
#include "config/config_walk.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* ---- parsing ---- */

/* "::ffff:10.0.0.0/104" is the IPv4 block 10.0.0.0/8: peers with mapped addresses are matched
 * as IPv4, so mapped blocks are stored as IPv4 too. */
static void unmap(struct cfg_cidr *b)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (b->family != AF_INET6 || b->prefix < 96 || memcmp(b->bytes, mapped, sizeof mapped))
        return;
    memmove(b->bytes, b->bytes + 12, 4);
    memset(b->bytes + 4, 0, 12);
    b->family = AF_INET;
    b->prefix -= 96;
}

/* "ADDR" or "ADDR/PREFIX" -> *b, host bits untouched. Returns NULL or what is wrong. */
static const char *parse_block(const char *s, struct cfg_cidr *b)
{
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    char addr[INET6_ADDRSTRLEN];
    uint64_t prefix;

    if (n >= sizeof addr)
        return "expected an IP address, or a block like 10.0.0.0/8";
    memcpy(addr, s, n);
    addr[n] = '\0';
    if (inet_pton(AF_INET, addr, b->bytes) == 1)
        b->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, b->bytes) == 1)
        b->family = AF_INET6;
    else
        return "expected an IP address, or a block like 10.0.0.0/8";
    if (!slash)
        prefix = b->family == AF_INET ? 32 : 128;
    else if (cfg_parse_uint(slash + 1, b->family == AF_INET ? 32 : 128, &prefix))
        return b->family == AF_INET ? "prefix length must be 0..32"
                                    : "prefix length must be 0..128";
    b->prefix = (uint8_t)prefix;
    return NULL;
}

/* Clears the host bits of *b into *net; returns whether any were set. */
static bool host_bits(const struct cfg_cidr *b, struct cfg_cidr *net)
{
    unsigned bytes = b->family == AF_INET ? 4 : 16;

    *net = *b;
    for (unsigned i = 0; i < bytes; i++) {
        unsigned keep = b->prefix >= 8 * (i + 1) ? 8 : b->prefix > 8 * i ? b->prefix - 8 * i : 0;
        net->bytes[i] &= (uint8_t)(0xff00u >> keep);
    }
    return memcmp(b->bytes, net->bytes, bytes) != 0;
}

static void block(struct load *ld, const struct field *f, const struct ynode *item,
                  struct cfg_cidr *b)
{
    const char *s = cfg_text(ld, f->key, item, "a list of addresses or blocks like 10.0.0.0/8");
    const char *why;
    struct cfg_cidr net;
    char text[INET6_ADDRSTRLEN];

    if (!s)
        return;
    why = parse_block(s, b);
    if (why) {
        cfg_report(ld, item, "bad address block '%.64s' (%s)", s, why);
        return;
    }
    if (host_bits(b, &net)) {
        inet_ntop(net.family, net.bytes, text, sizeof text);
        cfg_report(ld, item, "address block '%.64s' has host bits set (the block is %s/%u)", s,
                   text, net.prefix);
        return;
    }
    unmap(b);
}

/* An empty list is allowed: it says "no proxy is trusted", which is also the default. */
void cfg_conv_trusted_proxies(struct load *ld, const struct field *f, const struct ynode *val,
                              void *base)
{
    struct config *c = base;
    char what[80];

    snprintf(what, sizeof what, "'%s'", f->key);
    if (!cfg_want(ld, what, val, YNODE_LIST) || val->nitems == 0)
        return;
    c->trusted_proxies = cfg_alloc(ld, val->nitems * sizeof *c->trusted_proxies);
    if (!c->trusted_proxies)
        return;
    c->ntrusted_proxies = val->nitems;
    for (size_t i = 0; i < val->nitems; i++)
        block(ld, f, val->items[i], &c->trusted_proxies[i]);
}

/* ---- matching ---- */

/* Called for every request: no allocation, no byte loop, two word compares per IPv6 block. */

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t load64(const uint8_t *p)
{
    return (uint64_t)load32(p) << 32 | load32(p + 4);
}

/* The mask of the first `bits` bits of a word of `width` bits (width 32 or 64). */
static uint64_t mask(unsigned bits, unsigned width)
{
    uint64_t all = width == 64 ? UINT64_MAX : UINT32_MAX;

    if (bits == 0)
        return 0;
    return bits >= width ? all : all & ~(all >> bits);
}

static bool match_v4(const struct cfg_cidr *blocks, size_t n, uint32_t a)
{
    for (size_t i = 0; i < n; i++) {
        const struct cfg_cidr *b = &blocks[i];
        if (b->family == AF_INET && !((a ^ load32(b->bytes)) & mask(b->prefix, 32)))
            return true;
    }
    return false;
}

static bool match_v6(const struct cfg_cidr *blocks, size_t n, const uint8_t *addr)
{
    uint64_t hi = load64(addr), lo = load64(addr + 8);

    for (size_t i = 0; i < n; i++) {
        const struct cfg_cidr *b = &blocks[i];
        unsigned p = b->prefix;
        if (b->family != AF_INET6)
            continue;
        if (!((hi ^ load64(b->bytes)) & mask(p, 64)) &&
            !((lo ^ load64(b->bytes + 8)) & mask(p > 64 ? p - 64 : 0, 64)))
            return true;
    }
    return false;
}

bool config_cidr_match(const struct cfg_cidr *blocks, size_t n, const struct sockaddr *sa)
{
    const struct in6_addr *a6;

    if (!sa || !n)
        return false;
    if (sa->sa_family == AF_INET)
        return match_v4(blocks, n, ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return false;
    a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6))
        return match_v4(blocks, n, load32(a6->s6_addr + 12));
    return match_v6(blocks, n, a6->s6_addr);
}
