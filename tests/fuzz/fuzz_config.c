/* libFuzzer harness for the configuration loader: any bytes as a YAML file. Problems go to
 * /dev/null; a snapshot that loads is checked against the promises of config.h, then freed,
 * so LeakSanitizer sees every path. Host names never reach DNS: see fuzz_lookup. */
#include "config/config.h"

#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Names starting with "up" resolve (so that valid configs with host names are reachable);
 * others fail, as an unknown name would. */
static int fuzz_lookup(void *ctx, const char *host, struct sockaddr_storage *sa, size_t max,
                       size_t *n)
{
    struct sockaddr_in *in = (struct sockaddr_in *)sa;

    *n = 0;
    if (strncmp(host, "up", 2) != 0)
        return EAI_NONAME;
    if (!max)
        return 0;
    memset(sa, 0, sizeof *sa);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(0x0a000001);
    *n = 1;
    return 0;
}

static const struct config_resolver fuzz_resolver = {.lookup = fuzz_lookup};
static const struct config_load_opts fuzz_opts = {.resolver = &fuzz_resolver};

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* RFC 9110 token, not a field the proxy owns. */
static void check_name(const char *name, bool request)
{
    static const char *const owned[] = {
        "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
        "upgrade"};

    ASSERT(*name);
    for (const char *p = name; *p; p++)
        ASSERT(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p));
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        ASSERT(strcasecmp(name, owned[i]) != 0);
    ASSERT(!request || strcasecmp(name, "host") != 0);
}

static void check_value(const char *v, size_t len)
{
    ASSERT(strlen(v) == len);
    for (const char *p = v; *p; p++)
        ASSERT(!((unsigned char)*p < 0x20 && *p != '\t') && *p != 0x7f);
}

static void check_ops(const struct cfg_header_op *ops, size_t n, bool request)
{
    for (size_t i = 0; i < n; i++) {
        ASSERT(strlen(ops[i].name) == ops[i].name_len);
        check_name(ops[i].name, request);
        check_value(ops[i].value, ops[i].value_len);
    }
}

static void check_rules(const struct cfg_header_rules *r, bool request)
{
    check_ops(r->add, r->nadd, request);
    check_ops(r->set, r->nset, request);
    for (size_t i = 0; i < r->nremove; i++)
        check_name(r->remove[i], request);
}

/* Host bits are zero, mapped blocks were turned into IPv4, and the matcher agrees: the block's
 * own address matches, and one with a bit flipped inside the prefix does not. */
static void check_cidr(const struct cfg_cidr *b)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    unsigned bytes = b->family == AF_INET ? 4 : 16, last;
    uint8_t *a;

    ASSERT(b->family == AF_INET || b->family == AF_INET6);
    ASSERT(b->prefix <= 8 * bytes);
    for (unsigned bit = b->prefix; bit < 128; bit++)
        ASSERT(!(b->bytes[bit / 8] & (0x80 >> bit % 8)));
    ss.ss_family = (sa_family_t)b->family;
    a = b->family == AF_INET ? (uint8_t *)&in->sin_addr : in6->sin6_addr.s6_addr;
    memcpy(a, b->bytes, bytes);
    ASSERT(b->family == AF_INET || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr));
    ASSERT(config_cidr_match(b, 1, (struct sockaddr *)&ss));
    if (b->prefix == 0)
        return;
    last = b->prefix - 1u;
    a[last / 8] ^= (uint8_t)(0x80 >> last % 8);
    ASSERT(!config_cidr_match(b, 1, (struct sockaddr *)&ss) ||
           (b->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)));
}

static void check_listener(const struct config *c, const struct cfg_listener *l)
{
    ASSERT(!l->sites == !l->nsites);
    for (size_t i = 0; i < l->nsites; i++)
        ASSERT(l->sites[i] >= c->sites && l->sites[i] < c->sites + c->nsites);
}

static void check_route(const struct config *c, const struct cfg_route *r)
{
    ASSERT(r->path && r->path[0] == '/' && strlen(r->path) == r->path_len);
    ASSERT(r->path_len == 1 || r->path[r->path_len - 1] != '/');
    switch (r->action) {
    case CFG_ACTION_PROXY:
        ASSERT(r->upstream >= c->upstreams && r->upstream < c->upstreams + c->nupstreams);
        break;
    case CFG_ACTION_REDIRECT:
        ASSERT(r->location && r->status >= 301 && r->status <= 308);
        break;
    case CFG_ACTION_RESPOND:
        ASSERT(r->body && r->content_type && r->status >= 100 && r->status <= 999);
        break;
    }
    ASSERT(r->forward_headers <= CFG_FWD_ALL);
    ASSERT(r->host_header == CFG_HOST_CLIENT || r->host_header == CFG_HOST_UPSTREAM);
    ASSERT(r->action == CFG_ACTION_PROXY ||
           (!r->strip_prefix && !r->nrewrite_names && !r->request_headers.nadd &&
            !r->request_headers.nset && !r->request_headers.nremove));
    for (size_t i = 0; i < r->nrewrite_names; i++) {
        const char *o = r->rewrite_names[i];
        size_t n = strlen(o);
        ASSERT(!strncmp(o, "http://", 7) || !strncmp(o, "https://", 8));
        ASSERT(o[n - 1] != '/' && !strpbrk(o + 8, "/?#@"));
        for (const char *p = o; *p; p++)
            ASSERT(!(*p >= 'A' && *p <= 'Z'));
    }
    check_rules(&r->request_headers, true);
    check_rules(&r->response_headers, false);
}

static void check(const struct config *c)
{
    size_t defaults = 0;

    ASSERT(c->workers >= 1 && c->workers <= 256 && c->nlisteners >= 1 && c->nsites >= 1);
    ASSERT(c->logs.error && c->limits.max_header_size <= 65536);
    ASSERT(c->limits.max_connections_per_client <= 1000000);
    ASSERT(!c->trusted_proxies == !c->ntrusted_proxies);
    for (size_t i = 0; i < c->ntrusted_proxies; i++)
        check_cidr(&c->trusted_proxies[i]);
    for (size_t i = 0; i < c->nlisteners; i++)
        check_listener(c, &c->listeners[i]);
    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct cfg_upstream *u = &c->upstreams[i];
        ASSERT(u->index == i && u->nservers >= 1);
        ASSERT(!u->secret_name == !u->secret_value);
        if (u->secret_name) {
            check_name(u->secret_name, true);
            ASSERT(*u->secret_value);
            check_value(u->secret_value, strlen(u->secret_value));
        }
    }
    for (size_t i = 0; i < c->nsites; i++) {
        const struct cfg_site *s = &c->sites[i];
        ASSERT(s->name && s->nhosts >= 1 && s->nroutes >= 1);
        defaults += s->is_default;
        check_rules(&s->response_headers, false);
        for (size_t j = 0; j < s->nhosts; j++)
            for (const char *p = s->hosts[j]; *p; p++)
                ASSERT(!(*p >= 'A' && *p <= 'Z'));
        for (size_t j = 0; j < s->nroutes; j++) {
            check_route(c, &s->routes[j]);
            ASSERT(j == 0 || s->routes[j - 1].path_len >= s->routes[j].path_len);
        }
    }
    ASSERT(defaults <= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    struct config *c;

    if (!devnull)
        devnull = fopen("/dev/null", "w");
    if (config_load_string_with("fuzz.yaml", (const char *)data, size, &fuzz_opts, &c, devnull) ==
        0) {
        ASSERT(c && atomic_load(&c->refs) == 1);
        check(c);
        config_ref(c);
        config_unref(c);
        config_unref(c);
    } else {
        ASSERT(c == NULL);
    }
    return 0;
}
