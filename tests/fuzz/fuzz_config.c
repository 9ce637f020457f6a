/* libFuzzer harness for the configuration loader: any bytes as a YAML file. Problems go to
 * /dev/null; a snapshot that loads is checked against the promises of config.h, then freed,
 * so LeakSanitizer sees every path. Host names never reach DNS: see fuzz_resolver. */
#include "config/config.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Names starting with "up" resolve (so that valid configs with host names are reachable);
 * others fail, as an unknown name would. */
static int fuzz_resolver(const char *host, struct sockaddr_storage *sa, socklen_t *len)
{
    struct sockaddr_in *in = (struct sockaddr_in *)sa;

    if (strncmp(host, "up", 2) != 0) return EAI_NONAME;
    memset(sa, 0, sizeof *sa);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(0x0a000001);
    *len = sizeof *in;
    return 0;
}

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

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
}

static void check(const struct config *c)
{
    ASSERT(c->workers >= 1 && c->workers <= 256 && c->nlisteners >= 1 && c->nsites >= 1);
    ASSERT(c->logs.error && c->limits.max_header_size <= 65536);
    for (size_t i = 0; i < c->nupstreams; i++)
        ASSERT(c->upstreams[i].index == i && c->upstreams[i].nservers >= 1);
    for (size_t i = 0; i < c->nsites; i++) {
        const struct cfg_site *s = &c->sites[i];
        ASSERT(s->name && s->nhosts >= 1 && s->nroutes >= 1);
        for (size_t j = 0; j < s->nhosts; j++)
            for (const char *p = s->hosts[j]; *p; p++)
                ASSERT(!(*p >= 'A' && *p <= 'Z'));
        for (size_t j = 0; j < s->nroutes; j++) {
            check_route(c, &s->routes[j]);
            ASSERT(j == 0 || s->routes[j - 1].path_len >= s->routes[j].path_len);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    struct config *c;

    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        config_set_resolver(fuzz_resolver);
    }
    if (config_load_string("fuzz.yaml", (const char *)data, size, &c, devnull) == 0) {
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
