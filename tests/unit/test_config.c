/* Unit tests for the configuration module: the documented example, defaults, every class of
 * problem with its exact "FILE:LINE:COL: message" line, value parsers, and refcounting. */
#include "check.h"
#include "config_check.h"
#include "config/config.h"
#include "config/config_values.h"
#include "config/resolve.h"
#include "proxy/upstate.h"
#include "route/router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The example of the configuration reference, comments and all. */
static const char example[] =
    "workers: 4                 # or auto\n"
    "shutdown_timeout: 20s\n"
    "logs:\n"
    "  access: /var/log/gatehouse/access.log\n"
    "  format: json\n"
    "  error: stderr\n"
    "  level: warn\n"
    "limits:\n"
    "  max_request_line: 4k\n"
    "  max_header_size: 48k\n"
    "  max_header_count: 50\n"
    "  client_header_timeout: 5s\n"
    "  client_body_timeout: 250ms\n"
    "  send_timeout: 2m\n"
    "  keepalive_timeout: 0\n"
    "  max_requests_per_connection: 7\n"
    "  max_connections_per_worker: 2000\n"
    "  max_body_size: 10m\n"
    "listen:\n"
    "  - address: \"0.0.0.0:8080\"\n"
    "    backlog: 128\n"
    "  - address: \"[::1]:8443\"\n"
    "upstreams:\n"
    "  jenkins:\n"
    "    servers: [\"127.0.0.1:9090\", \"localhost:9091\"]\n"
    "    connect_timeout: 1s\n"
    "    read_timeout: 1h\n"
    "    send_timeout: 1d\n"
    "    keepalive: 0\n"
    "    keepalive_timeout: 2s\n"
    "    keepalive_requests: 5\n"
    "  shop:\n"
    "    servers: [\"[::1]:5000\"]\n"
    "sites:\n"
    "  - name: ci\n"
    "    hosts: [\"CI.Example.com\", \"*.example.org\"]\n"
    "    routes:\n"
    "      - path: /\n"
    "        proxy: jenkins\n"
    "      - path: /old/\n"
    "        redirect: { to: \"https://example.com/new\", status: 301, append_path: true }\n"
    "      - path: /health\n"
    "        respond: { status: 200, body: \"ok\\n\", content_type: \"text/x\" }\n"
    "      - path: /shop\n"
    "        proxy: shop\n"
    "  - hosts: [\"*\"]\n"
    "    routes:\n"
    "      - path: /\n"
    "        redirect: { to: /elsewhere }\n";

/* The smallest valid file, for tests about one key. */
#define MINIMAL_SITES                                                                              \
    "sites:\n"                                                                                     \
    "  - hosts: [\"*\"]\n"                                                                         \
    "    routes:\n"                                                                                \
    "      - path: /\n"                                                                            \
    "        respond: {}\n"
#define MINIMAL "listen:\n  - address: \":0\"\n" MINIMAL_SITES

static char *messages; /* what the last load printed */

/* Every load of these tests looks host names up here, never in DNS (see fake_lookup). */
static int fake_lookup(void *ctx, const char *host, struct sockaddr_storage *out, size_t max,
                       size_t *n);
static const struct config_resolver test_resolver = {.lookup = fake_lookup};
static const struct config_load_opts test_opts = {.resolver = &test_resolver};

static int load(const char *yaml, struct config **c)
{
    size_t len;
    FILE *f;
    int n;

    free(messages);
    f = open_memstream(&messages, &len);
    n = config_load_string_with("x.yaml", yaml, strlen(yaml), &test_opts, c, f);
    fclose(f);
    return n;
}

/* Loads `yaml`, which must fail with exactly `expected` printed and one problem per line. */
static void expect_errors(int line, const char *yaml, const char *expected)
{
    struct config *c = (struct config *)1;
    int n = load(yaml, &c);

    check_config_errors(__FILE__, line, c, n, messages, expected);
}
#define EXPECT_ERRORS(yaml, expected) expect_errors(__LINE__, yaml, expected)

static uint16_t port_of(const struct cfg_addr *a)
{
    if (a->sa.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

static int is_ipv4(const struct cfg_addr *a, const char *ip, uint16_t port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
    struct in_addr want;

    inet_pton(AF_INET, ip, &want);
    return a->sa.ss_family == AF_INET && a->len == sizeof *in &&
           in->sin_addr.s_addr == want.s_addr && port_of(a) == port;
}

static int is_ipv6(const struct cfg_addr *a, const char *ip, uint16_t port)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
    struct in6_addr want;

    inet_pton(AF_INET6, ip, &want);
    return a->sa.ss_family == AF_INET6 && a->len == sizeof *in6 &&
           !memcmp(&in6->sin6_addr, &want, sizeof want) && port_of(a) == port;
}

static void test_example_top(const struct config *c)
{
    CHECK(!strcmp(c->path, "x.yaml"));
    CHECK_EQ_INT(c->workers, 4);
    CHECK_EQ_INT(c->shutdown_grace, 20000);
    CHECK(!strcmp(c->logs.access, "/var/log/gatehouse/access.log"));
    CHECK_EQ_INT(c->logs.format, CFG_LOG_JSON);
    CHECK(!strcmp(c->logs.error, "-"));
    CHECK_EQ_INT(c->logs.level, CFG_LOG_WARN);
    CHECK_EQ_INT(c->limits.max_request_line, 4096);
    CHECK_EQ_INT(c->limits.max_header_size, 49152);
    CHECK_EQ_INT(c->limits.max_header_count, 50);
    CHECK_EQ_INT(c->limits.client_header_timeout, 5000);
    CHECK_EQ_INT(c->limits.client_body_timeout, 250);
    CHECK_EQ_INT(c->limits.send_timeout, 120000);
    CHECK_EQ_INT(c->limits.keepalive_timeout, 0);
    CHECK_EQ_INT(c->limits.max_requests_per_connection, 7);
    CHECK_EQ_INT(c->limits.max_connections_per_worker, 2000);
    CHECK_EQ_INT(c->limits.max_body_size, 10 << 20);
    CHECK_EQ_INT(c->nlisteners, 2);
    CHECK(is_ipv4(&c->listeners[0].addr, "0.0.0.0", 8080));
    CHECK(!strcmp(c->listeners[0].addr.text, "0.0.0.0:8080"));
    CHECK_EQ_INT(c->listeners[0].backlog, 128);
    CHECK(is_ipv6(&c->listeners[1].addr, "::1", 8443));
    CHECK(!strcmp(c->listeners[1].addr.text, "[::1]:8443"));
    CHECK_EQ_INT(c->listeners[1].backlog, 511);
}

static void test_example_upstreams(const struct config *c)
{
    const struct cfg_upstream *j = &c->upstreams[0], *s = &c->upstreams[1];

    CHECK_EQ_INT(c->nupstreams, 2);
    CHECK(!strcmp(j->name, "jenkins"));
    CHECK_EQ_INT(j->index, 0);
    CHECK_EQ_INT(j->nservers, 2);
    CHECK(is_ipv4(&j->servers[0], "127.0.0.1", 9090));
    CHECK(is_ipv4(&j->servers[1], "127.0.0.1", 9091));
    CHECK(!strcmp(j->servers[1].text, "localhost:9091"));
    CHECK_EQ_INT(j->connect_timeout, 1000);
    CHECK_EQ_INT(j->read_timeout, 3600000);
    CHECK_EQ_INT(j->send_timeout, 86400000);
    CHECK_EQ_INT(j->keepalive, 0);
    CHECK_EQ_INT(j->keepalive_timeout, 2000);
    CHECK_EQ_INT(j->keepalive_requests, 5);
    CHECK(!strcmp(s->name, "shop"));
    CHECK_EQ_INT(s->index, 1);
    CHECK(is_ipv6(&s->servers[0], "::1", 5000));
    CHECK_EQ_INT(s->connect_timeout, 5000);
    CHECK_EQ_INT(s->read_timeout, 60000);
    CHECK_EQ_INT(s->send_timeout, 60000);
    CHECK_EQ_INT(s->keepalive, 32);
    CHECK_EQ_INT(s->keepalive_timeout, 30000);
    CHECK_EQ_INT(s->keepalive_requests, 1000);
}

static void test_example_sites(const struct config *c)
{
    const struct cfg_site *ci = &c->sites[0], *any = &c->sites[1];
    const struct cfg_route *r = ci->routes;

    CHECK_EQ_INT(c->nsites, 2);
    CHECK(!strcmp(ci->name, "ci"));
    CHECK_EQ_INT(ci->nhosts, 2);
    CHECK(!strcmp(ci->hosts[0], "ci.example.com"));
    CHECK(!strcmp(ci->hosts[1], "*.example.org"));
    CHECK_EQ_INT(ci->nroutes, 4);
    /* longest first; /old/ lost its slash, so /old (4) and /shop (5) */
    CHECK(!strcmp(r[0].path, "/health") && r[0].path_len == 7);
    CHECK_EQ_INT(r[0].action, CFG_ACTION_RESPOND);
    CHECK_EQ_INT(r[0].status, 200);
    CHECK_SLICE(r[0].body, r[0].body_len, "ok\n");
    CHECK(!strcmp(r[0].content_type, "text/x"));
    CHECK(!strcmp(r[1].path, "/shop") && r[1].path_len == 5);
    CHECK_EQ_INT(r[1].action, CFG_ACTION_PROXY);
    CHECK(r[1].upstream == &c->upstreams[1]);
    CHECK(!strcmp(r[2].path, "/old") && r[2].path_len == 4);
    CHECK_EQ_INT(r[2].action, CFG_ACTION_REDIRECT);
    CHECK_EQ_INT(r[2].status, 301);
    CHECK(!strcmp(r[2].location, "https://example.com/new"));
    CHECK(r[2].append_path);
    CHECK(!strcmp(r[3].path, "/") && r[3].path_len == 1);
    CHECK_EQ_INT(r[3].action, CFG_ACTION_PROXY);
    CHECK(r[3].upstream == &c->upstreams[0]);
    CHECK(!strcmp(any->name, "*"));
    CHECK_EQ_INT(any->nroutes, 1);
    CHECK_EQ_INT(any->routes[0].status, 302);
    CHECK(!strcmp(any->routes[0].location, "/elsewhere"));
    CHECK(!any->routes[0].append_path);
}

static void test_example(void)
{
    struct config *c;

    CHECK_EQ_INT(load(example, &c), 0);
    CHECK(!strcmp(messages, ""));
    if (!c)
        return;
    test_example_top(c);
    test_example_upstreams(c);
    test_example_sites(c);
    config_unref(c);
}

/* The file that ships in examples/ must load (its host names resolve via the stub below). */
static void test_shipped_example(void)
{
    struct config *c;
    size_t len;
    FILE *f;
    int n;

    free(messages);
    f = open_memstream(&messages, &len);
    n = config_load_with("examples/gatehouse.yaml", &test_opts, &c, f);
    fclose(f);
    if (access("examples/gatehouse.yaml", R_OK) != 0)
        return; /* run from elsewhere than the repository root */
    CHECK_EQ_INT(n, 0);
    if (n)
        fprintf(stderr, "%s", messages);
    config_unref(c);
}

static void test_defaults(void)
{
    struct config *c;
    const struct cfg_route *r;

    CHECK_EQ_INT(load(MINIMAL, &c), 0);
    if (!c)
        return;
    CHECK(c->workers == (int)sysconf(_SC_NPROCESSORS_ONLN) || c->workers == 256);
    CHECK_EQ_INT(c->shutdown_grace, 30000);
    CHECK(!strcmp(c->logs.access, "-"));
    CHECK_EQ_INT(c->logs.format, CFG_LOG_COMBINED);
    CHECK(!strcmp(c->logs.error, "-"));
    CHECK_EQ_INT(c->logs.level, CFG_LOG_INFO);
    CHECK_EQ_INT(c->limits.max_request_line, 8192);
    CHECK_EQ_INT(c->limits.max_header_size, 32768);
    CHECK_EQ_INT(c->limits.max_header_count, 100);
    CHECK_EQ_INT(c->limits.client_header_timeout, 10000);
    CHECK_EQ_INT(c->limits.client_body_timeout, 30000);
    CHECK_EQ_INT(c->limits.send_timeout, 60000);
    CHECK_EQ_INT(c->limits.keepalive_timeout, 75000);
    CHECK_EQ_INT(c->limits.max_requests_per_connection, 10000);
    CHECK_EQ_INT(c->limits.max_connections_per_worker, 10000);
    CHECK_EQ_INT(c->limits.max_body_size, 0);
    CHECK_EQ_INT(c->limits.http2.max_concurrent_streams, 128);
    CHECK_EQ_INT(c->limits.http2.max_header_list_size, 65536);
    CHECK_EQ_INT(c->limits.http2.stream_window, 65535);
    CHECK_EQ_INT(c->limits.http2.connection_window, 1 << 20);
    CHECK(is_ipv4(&c->listeners[0].addr, "0.0.0.0", 0));
    CHECK_EQ_INT(c->listeners[0].backlog, 511);
    CHECK_EQ_INT(c->nupstreams, 0);
    CHECK(c->upstreams == NULL);
    r = &c->sites[0].routes[0];
    CHECK_EQ_INT(r->action, CFG_ACTION_RESPOND);
    CHECK_EQ_INT(r->status, 200);
    CHECK(r->body != NULL && r->body_len == 0);
    CHECK(!strcmp(r->content_type, "text/plain; charset=utf-8"));
    config_unref(c);
}

/* An empty value is the default, as if the key were absent; `access: off` is NULL. */
static void test_null_and_off(void)
{
    struct config *c;

    CHECK_EQ_INT(load("logs:\n  access: off\n  level:\nlimits:\nworkers: ~\n" MINIMAL, &c), 0);
    if (!c)
        return;
    CHECK(c->logs.access == NULL);
    CHECK_EQ_INT(c->logs.level, CFG_LOG_INFO);
    CHECK_EQ_INT(c->limits.max_header_count, 100);
    CHECK(c->workers >= 1);
    config_unref(c);
}

static void test_routes_sorted_stable(void)
{
    struct config *c;
    const struct cfg_route *r;

    CHECK_EQ_INT(load("listen: [{address: \":0\"}]\n"
                      "sites:\n"
                      "  - hosts: [a.com]\n"
                      "    routes:\n"
                      "      - {path: /, respond: {body: r}}\n"
                      "      - {path: /bb, respond: {body: b}}\n"
                      "      - {path: /aa, respond: {body: a}}\n"
                      "      - {path: /cccc//, respond: {body: c}}\n"
                      "      - {path: /dd, respond: {body: d}}\n",
                      &c),
                 0);
    if (!c)
        return;
    r = c->sites[0].routes;
    CHECK(!strcmp(r[0].path, "/cccc"));
    CHECK(!strcmp(r[1].body, "b") && !strcmp(r[2].body, "a") && !strcmp(r[3].body, "d"));
    CHECK(!strcmp(r[4].path, "/"));
    CHECK(!strcmp(c->sites[0].name, "a.com"));
    config_unref(c);
}

static void test_aliases(void)
{
    struct config *c;

    CHECK_EQ_INT(load("listen: [{address: \":0\"}]\n"
                      "upstreams:\n"
                      "  a: &common {servers: [\"127.0.0.1:1\"], keepalive: 3}\n"
                      "  b: *common\n"
                      "sites:\n"
                      "  - hosts: [a.com]\n"
                      "    routes: &routes [{path: /, proxy: a}]\n"
                      "  - hosts: [b.com]\n"
                      "    routes: *routes\n",
                      &c),
                 0);
    if (!c)
        return;
    CHECK_EQ_INT(c->upstreams[1].keepalive, 3);
    CHECK(c->sites[1].routes[0].upstream == &c->upstreams[0]);
    config_unref(c);
}

static void test_refcount(void)
{
    struct config *c;

    CHECK_EQ_INT(load(MINIMAL, &c), 0);
    if (!c)
        return;
    CHECK_EQ_INT(atomic_load(&c->refs), 1);
    config_ref(c);
    config_ref(c);
    CHECK_EQ_INT(atomic_load(&c->refs), 3);
    config_unref(c);
    config_unref(c);
    CHECK_EQ_INT(atomic_load(&c->refs), 1);
    CHECK(!strcmp(c->sites[0].hosts[0], "*")); /* still alive; ASan would say otherwise */
    config_unref(c);                           /* freed: LeakSanitizer checks nothing is left */
    config_unref(NULL);
}

/* ---- problems ---- */

static void test_error_examples(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams:\n"
                  "  jenkins:\n"
                  "    servers: [\"127.0.0.1:1\"]\n"
                  "  shop:\n"
                  "    servers: [\"127.0.0.1:2\"]\n"
                  "    servrs: []\n"
                  "  shop:\n"
                  "    servers: [\"127.0.0.1:3\"]\n" MINIMAL_SITES,
                  "x.yaml:7:5: unknown key 'servrs' in upstream 'shop'\n"
                  "x.yaml:8:3: duplicate upstream name 'shop'\n");
    EXPECT_ERRORS("# comment\n"
                  "\n"
                  "workers:     lots\n" MINIMAL,
                  "x.yaml:3:14: 'workers' must be 'auto' or an integer 1..256\n");
    EXPECT_ERRORS("workers: 257\n" MINIMAL,
                  "x.yaml:1:10: 'workers' must be 'auto' or an integer 1..256\n");
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams: {jenkins: {servers: [\"127.0.0.1:1\"]}}\n"
                  "sites:\n"
                  "  - hosts: [\"*\"]\n"
                  "    routes:\n"
                  "      - path: /\n"
                  "        proxy: jenkinz\n",
                  "x.yaml:7:16: undefined upstream 'jenkinz'\n");
    EXPECT_ERRORS("listen:\n"
                  "  - address: 10.0.0.1\n" MINIMAL_SITES,
                  "x.yaml:2:14: bad address '10.0.0.1' (expected host:port)\n");
}

static void test_error_addresses(void)
{
    EXPECT_ERRORS("listen:\n"
                  "  - address: \"::1:80\"\n"
                  "  - address: \"[::1]80\"\n"
                  "  - address: \"[1.2.3.4]:80\"\n"
                  "  - address: \"1.2.3.4:65536\"\n"
                  "  - address: \"1.2.3.4:\"\n"
                  "  - address: \"bad host:1\"\n"
                  "  - address: \"nowhere.test:1\"\n"
                  "  - address: \"*:80\"\n"
                  "  - address: \"0.0.0.0:80\"\n" MINIMAL_SITES,
                  "x.yaml:2:14: bad address '::1:80' (an IPv6 address goes in brackets, e.g. "
                  "[::1]:80)\n"
                  "x.yaml:3:14: bad address '[::1]80' (expected [ipv6-address]:port)\n"
                  "x.yaml:4:14: bad address '[1.2.3.4]:80' ('1.2.3.4' is not an IPv6 address)\n"
                  "x.yaml:5:14: bad address '1.2.3.4:65536' (port must be 0..65535)\n"
                  "x.yaml:6:14: bad address '1.2.3.4:' (port must be 0..65535)\n"
                  "x.yaml:7:14: bad address 'bad host:1' (bad host name 'bad host')\n"
                  "x.yaml:8:14: bad address 'nowhere.test:1' (cannot resolve 'nowhere.test': "
                  "Name or service not known)\n"
                  "x.yaml:10:5: duplicate listen address '0.0.0.0:80'\n");
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams:\n"
                  "  a:\n"
                  "    servers: [\"127.0.0.1:0\", [\"x\"], \"127.0.0.1\"]\n" MINIMAL_SITES,
                  "x.yaml:4:15: bad address '127.0.0.1:0' (an upstream server needs a port)\n"
                  "x.yaml:4:30: 'servers' must be an address like 127.0.0.1:8080, not a list\n"
                  "x.yaml:4:37: bad address '127.0.0.1' (expected host:port)\n");
}

static void test_error_types(void)
{
    EXPECT_ERRORS("limits: [1, 2]\n"
                  "logs: off\n"
                  "listen:\n"
                  "  address: \":0\"\n"
                  "upstreams: []\n"
                  "sites:\n"
                  "  - hosts: a.com\n"
                  "    routes:\n"
                  "      - /\n"
                  "  - name: {a: b}\n"
                  "    hosts: [[x]]\n"
                  "    routes: [{path: [/], proxy: {}}]\n",
                  "x.yaml:1:9: 'limits' must be a map, not a list\n"
                  "x.yaml:2:7: 'logs' must be a map, not 'off'\n"
                  "x.yaml:4:3: 'listen' must be a list, not a map\n"
                  "x.yaml:5:12: 'upstreams' must be a map, not a list\n"
                  "x.yaml:7:12: 'hosts' must be a list, not 'a.com'\n"
                  "x.yaml:9:9: each item of 'routes' must be a map, not '/'\n"
                  "x.yaml:10:11: 'name' must be a string, not a map\n"
                  "x.yaml:11:13: 'hosts' must be a list of host names, not a list\n"
                  "x.yaml:12:21: 'path' must be a path, not a list\n"
                  "x.yaml:12:33: 'proxy' must be an upstream name, not a map\n");
    EXPECT_ERRORS("- a\n", "x.yaml:1:1: the top level must be a map, not a list\n");
    EXPECT_ERRORS("{[a]: 1}\n" MINIMAL, "x.yaml:2:1: did not find expected <document start>\n");
    EXPECT_ERRORS("? [a]\n: 1\n" MINIMAL, "x.yaml:1:3: a key must be a name, not a list\n");
}

static void test_error_missing(void)
{
    EXPECT_ERRORS("", "x.yaml:1:1: missing required key 'listen' at the top level\n"
                      "x.yaml:1:1: missing required key 'sites' at the top level\n");
    EXPECT_ERRORS("listen: []\n"
                  "upstreams:\n"
                  "  a:\n"
                  "  b: {keepalive: 1}\n"
                  "sites:\n"
                  "  - routes:\n"
                  "      - respond: {}\n"
                  "      - path: /x\n"
                  "        redirect: {}\n"
                  "      - path:\n"
                  "        proxy: a\n"
                  "  - name: lonely\n",
                  "x.yaml:1:9: 'listen' must not be empty\n"
                  "x.yaml:3:3: missing required key 'servers' in upstream 'a'\n"
                  "x.yaml:4:6: missing required key 'servers' in upstream 'b'\n"
                  "x.yaml:6:5: missing required key 'hosts' in site #1\n"
                  "x.yaml:7:9: missing required key 'path' in route #1\n"
                  "x.yaml:9:19: missing required key 'to' in 'redirect'\n"
                  "x.yaml:10:14: 'path' needs a value\n"
                  "x.yaml:12:5: missing required key 'hosts' in site 'lonely'\n"
                  "x.yaml:12:5: missing required key 'routes' in site 'lonely'\n");
}

static void test_error_routes(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams: {a: {servers: [\"127.0.0.1:1\"]}}\n"
                  "sites:\n"
                  "  - hosts: [\"*\"]\n"
                  "    routes:\n"
                  "      - path: /a\n"
                  "        proxy: a\n"
                  "        respond: {status: 200}\n"
                  "      - path: /b\n"
                  "      - path: b\n"
                  "        proxy: a\n"
                  "      - path: /a/\n"
                  "        redirect: {to: /x, status: 300, append_path: yes}\n"
                  "      - path: \"/c d?\"\n"
                  "        respond: {status: 204, body: x, content_type: \"a\\nb\"}\n"
                  "      - path: /e\n"
                  "        respond: {status: 1000}\n"
                  "      - path: /f\n"
                  "        redirect: {to: \"http://x/a b\"}\n",
                  "x.yaml:8:18: route '/a' has both 'proxy' and 'respond' (a route has one "
                  "action)\n"
                  "x.yaml:9:9: route '/b' needs one of 'proxy', 'redirect', 'respond' or 'files'\n"
                  "x.yaml:10:15: route path 'b' must start with '/'\n"
                  "x.yaml:12:15: duplicate route path '/a'\n"
                  "x.yaml:13:36: 'status' must be one of 301, 302, 303, 307, 308\n"
                  "x.yaml:13:54: 'append_path' must be true or false\n"
                  "x.yaml:14:15: route path '/c d?' must not contain spaces, control "
                  "characters, '?' or '#'\n"
                  "x.yaml:15:18: a 204 response cannot have a body\n"
                  "x.yaml:15:55: 'content_type' must not contain control characters\n"
                  "x.yaml:17:27: 'status' must be an integer 100..999\n"
                  "x.yaml:19:24: 'to' must not contain spaces or control characters\n");
}

static void test_error_sites(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "sites:\n"
                  "  - name: one\n"
                  "    hosts: [A.com, \"*.b.com\", \"*\", \"a..com\", \"x_y.com\", \"*\"]\n"
                  "    routes: [{path: /, respond: {}}]\n"
                  "  - name: one\n"
                  "    hosts: [\"a.COM\", \"b.*.com\", \"-\", \"a-.b\", \"\"]\n"
                  "    routes: [{path: /, respond: {}}]\n",
                  "x.yaml:4:36: bad host name 'a..com' (expected a name like example.com, "
                  "*.example.com or *)\n"
                  "x.yaml:4:46: bad host name 'x_y.com' (expected a name like example.com, "
                  "*.example.com or *)\n"
                  "x.yaml:4:57: duplicate host '*' (already in site 'one')\n"
                  "x.yaml:6:11: duplicate site name 'one'\n"
                  "x.yaml:7:13: duplicate host 'a.com' (already in site 'one')\n"
                  "x.yaml:7:22: bad host name 'b.*.com' (expected a name like example.com, "
                  "*.example.com or *)\n"
                  "x.yaml:7:33: bad host name '-' (expected a name like example.com, "
                  "*.example.com or *)\n"
                  "x.yaml:7:38: bad host name 'a-.b' (expected a name like example.com, "
                  "*.example.com or *)\n"
                  "x.yaml:7:46: bad host name '' (expected a name like example.com, "
                  "*.example.com or *)\n");
}

static void test_error_limits(void)
{
    EXPECT_ERRORS("limits:\n"
                  "  max_header_size: 65537\n"
                  "  max_request_line: 1m\n"
                  "  max_header_count: 0\n"
                  "  client_header_timeout: 0\n"
                  "  client_body_timeout: 5 s\n"
                  "  send_timeout: 50d\n"
                  "  max_body_size: lots\n"
                  "  max_requests_per_connection: -1\n"
                  "  keepalive_timeout: 5S\n"
                  "  max_header_count: 1\n"
                  "  bogus: 1\n"
                  "shutdown_timeout: 1.5s\n"
                  "logs: {access: stderr, error: off, format: xml, level: [warn]}\n" MINIMAL,
                  "x.yaml:2:20: 'max_header_size' must be at most 56k (what fits the I/O "
                  "buffer)\n"
                  "x.yaml:3:21: 'max_request_line' must be at most 56k (what fits the I/O "
                  "buffer)\n"
                  "x.yaml:4:21: 'max_header_count' must be an integer 1..1000\n"
                  "x.yaml:5:26: 'client_header_timeout' must be greater than 0\n"
                  "x.yaml:6:24: 'client_body_timeout' must be a duration like 250ms, 5s, 2m, 1h "
                  "or 1d (under 49d)\n"
                  "x.yaml:7:17: 'send_timeout' must be a duration like 250ms, 5s, 2m, 1h or 1d "
                  "(under 49d)\n"
                  "x.yaml:8:18: 'max_body_size' must be a size like 8192, 64k or 1m\n"
                  "x.yaml:9:32: 'max_requests_per_connection' must be an integer 1..4294967295\n"
                  "x.yaml:10:22: 'keepalive_timeout' must be a duration like 250ms, 5s, 2m, 1h "
                  "or 1d (under 49d)\n"
                  "x.yaml:11:3: duplicate key 'max_header_count' in 'limits'\n"
                  "x.yaml:12:3: unknown key 'bogus' in 'limits'\n"
                  "x.yaml:13:19: 'shutdown_timeout' must be a duration like 250ms, 5s, 2m, 1h "
                  "or 1d (under 49d)\n"
                  "x.yaml:14:16: 'access' must be a file path, stdout or off\n"
                  "x.yaml:14:31: 'error' must be a file path or stderr\n"
                  "x.yaml:14:44: 'format' must be one of combined, json\n"
                  "x.yaml:14:56: 'level' must be a name, not a list\n");
}

/* limits.http2: values as written, defaults for the keys left out (an empty map too). */
static void test_http2_limits(void)
{
    struct config *c;

    CHECK_EQ_INT(load("limits:\n"
                      "  max_header_size: 8k\n"
                      "  http2:\n"
                      "    max_concurrent_streams: 7\n"
                      "    max_header_list_size: 8k\n"
                      "    stream_window: 1k\n"
                      "    connection_window: 256m\n" MINIMAL,
                      &c),
                 0);
    if (c) {
        CHECK_EQ_INT(c->limits.http2.max_concurrent_streams, 7);
        CHECK_EQ_INT(c->limits.http2.max_header_list_size, 8192);
        CHECK_EQ_INT(c->limits.http2.stream_window, 1024);
        CHECK_EQ_INT(c->limits.http2.connection_window, 256 << 20);
        config_unref(c);
    }
    CHECK_EQ_INT(load("limits:\n  http2:\n    stream_window: 1m\n" MINIMAL, &c), 0);
    if (c) {
        CHECK_EQ_INT(c->limits.http2.stream_window, 1 << 20);
        CHECK_EQ_INT(c->limits.http2.max_concurrent_streams, 128);
        CHECK_EQ_INT(c->limits.http2.max_header_list_size, 65536);
        CHECK_EQ_INT(c->limits.http2.connection_window, 1 << 20);
        config_unref(c);
    }
    CHECK_EQ_INT(load("limits: {http2: {}}\n" MINIMAL, &c), 0);
    if (c) {
        CHECK_EQ_INT(c->limits.http2.max_concurrent_streams, 128);
        config_unref(c);
    }
}

static void test_error_http2_limits(void)
{
    EXPECT_ERRORS("limits:\n"
                  "  http2:\n"
                  "    max_concurrent_streams: 0\n"
                  "    max_header_list_size: 2m\n"
                  "    stream_window: 100\n"
                  "    connection_window: 60k\n"
                  "    idle: 5s\n" MINIMAL,
                  "x.yaml:3:29: 'max_concurrent_streams' must be an integer 1..1000\n"
                  "x.yaml:4:27: 'max_header_list_size' must be at most 1m\n"
                  "x.yaml:5:20: 'stream_window' must be at least 1k\n"
                  "x.yaml:6:24: 'connection_window' must be at least 65535\n"
                  "x.yaml:7:5: unknown key 'idle' in 'http2'\n");
    EXPECT_ERRORS("limits:\n"
                  "  http2: [1]\n"
                  "  max_header_size: 40k\n" MINIMAL,
                  "x.yaml:2:10: 'http2' must be a map, not a list\n");
    /* The advertised list size may not be below the head size HTTP/1.1 accepts, whichever of
     * the two keys comes first. */
    EXPECT_ERRORS("limits:\n"
                  "  max_header_size: 40k\n"
                  "  http2: {max_header_list_size: 32k}\n" MINIMAL,
                  "x.yaml:3:33: 'max_header_list_size' (32768) must be at least "
                  "'max_header_size' (40960)\n");
    EXPECT_ERRORS("limits:\n"
                  "  http2: {max_header_list_size: 32k}\n"
                  "  max_header_size: 56k\n" MINIMAL,
                  "x.yaml:2:33: 'max_header_list_size' (32768) must be at least "
                  "'max_header_size' (57344)\n");
}

static void test_error_yaml(void)
{
    EXPECT_ERRORS("listen: [a, b\n" MINIMAL_SITES,
                  "x.yaml:2:6: did not find expected ',' or ']' (while parsing a flow sequence "
                  "that started at line 1, column 9)\n");
    EXPECT_ERRORS("a:\n\tb: 1\n", "x.yaml:2:1: found character that cannot start any token "
                                  "(while scanning for the next token that started at line "
                                  "2, column 1)\n");
    EXPECT_ERRORS("a: \x01\n", "x.yaml:1:4: control characters are not allowed (0x1)\n");
    EXPECT_ERRORS("a: \xff\n", "x.yaml:1:4: invalid leading UTF-8 octet (0xFF)\n");
    EXPECT_ERRORS(MINIMAL "---\nb: 1\n", "x.yaml:8:1: only one YAML document is allowed\n");
    EXPECT_ERRORS("a: &x [*x]\n", "x.yaml:1:8: undefined alias 'x'\n");
    EXPECT_ERRORS("a: &a [1,1,1,1,1,1,1,1,1,1]\n"
                  "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                  "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                  "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                  "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                  "f: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
                  "x.yaml:5:29: aliases expand to more than 100000 nodes\n");
    EXPECT_ERRORS("a: \"x\\0y\"\nlisten: [{address: \"1.2.3.4:80\\0\"}]\n" MINIMAL_SITES,
                  "x.yaml:1:1: unknown key 'a' at the top level\n"
                  "x.yaml:2:20: 'address' must not contain NUL characters\n");
}

/* "a: &a <len x's>\nb: [*a,*a,...]\n" with `n` aliases of the scalar in `b`. */
static char *alias_doc(size_t len, int n, const char *alias)
{
    size_t alen = strlen(alias), size = len + 32 + (size_t)n * (alen + 1);
    char *s = malloc(size), *p = s;

    if (!s)
        return NULL;
    p += sprintf(p, "a: &a ");
    memset(p, 'x', len);
    p += len;
    p += sprintf(p, "\nb: [");
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", alias);
    sprintf(p, "]\n");
    return s;
}

/* Aliases are bounded in number and in the bytes they expand to, not only in nodes: one
 * 1 MiB scalar named 400 times cost 400 MiB in the schema walk's copies. */
static void test_alias_bounds(void)
{
    struct config *c;
    char *doc;

    /* 1000 aliases parse (the problems are the schema's); the 1001st is refused where it is */
    doc = alias_doc(1, 1000, "*a");
    CHECK(doc && load(doc, &c) > 0 && !strstr(messages, "aliases"));
    free(doc);
    doc = alias_doc(1, 1001, "*a");
    if (doc)
        EXPECT_ERRORS(doc, "x.yaml:2:3005: more than 1000 aliases\n");
    free(doc);

    /* 1 MiB named 14 more times is 15 MiB of values; the 15th alias would pass 16 MiB */
    doc = alias_doc(1 << 20, 14, "*a");
    CHECK(doc && load(doc, &c) > 0 && !strstr(messages, "MiB"));
    free(doc);
    doc = alias_doc(1 << 20, 15, "*a");
    if (doc)
        EXPECT_ERRORS(doc, "x.yaml:2:47: values expand to more than 16 MiB with aliases\n");
    free(doc);

    /* a list carries the bytes it holds: 1 + 1 + 4, then 4 each, passes 16 MiB at the third *b */
    doc = alias_doc(1 << 20, 0, "");
    if (doc) {
        char *d = malloc(strlen(doc) + 64);
        if (d) {
            sprintf(d, "%.*sb: &l [*a]\nc: &b [*l,*l,*l,*l]\nd: [*b,*b,*b]\n",
                    (int)(strchr(doc, '\n') + 1 - doc), doc);
            EXPECT_ERRORS(d, "x.yaml:4:11: values expand to more than 16 MiB with aliases\n");
        }
        free(d);
    }
    free(doc);
}

/* Problems come out sorted by position however the checks are ordered: here the sites
 * (checked last) come first in the file. */
static void test_many_errors_sorted(void)
{
    struct config *c;
    int n = load("sites: 1\nworkers: 0\nlisten: 2\nextra: 3\n", &c);

    CHECK_EQ_INT(n, 4);
    CHECK(c == NULL);
    CHECK(!strcmp(messages, "x.yaml:1:8: 'sites' must be a list, not '1'\n"
                            "x.yaml:2:10: 'workers' must be 'auto' or an integer 1..256\n"
                            "x.yaml:3:9: 'listen' must be a list, not '2'\n"
                            "x.yaml:4:1: unknown key 'extra' at the top level\n"));
}

static void test_files(void)
{
    char path[] = "/tmp/gatehouse-test-XXXXXX", expect[128];
    struct config *c = (struct config *)1;
    int fd = mkstemp(path);
    size_t len;
    FILE *f;

    CHECK(fd >= 0 && write(fd, MINIMAL, strlen(MINIMAL)) == (ssize_t)strlen(MINIMAL));
    close(fd);
    CHECK_EQ_INT(config_load_with(path, &test_opts, &c, stderr), 0);
    if (c) {
        CHECK(!strcmp(c->path, path));
        config_unref(c);
    }
    unlink(path);
    free(messages);
    f = open_memstream(&messages, &len);
    CHECK_EQ_INT(config_load_with(path, &test_opts, &c, f), 1);
    CHECK(config_load_with("/", &test_opts, &c, f) == 1 && c == NULL);
    CHECK_EQ_INT(config_load_with(path, &test_opts, &c, NULL), 1); /* no stream: count only */
    fclose(f);
    snprintf(expect, sizeof expect,
             "%s: cannot open: No such file or directory\n/: not a regular file\n", path);
    CHECK(!strcmp(messages, expect));
}

/* Loads `path` expecting failure, and returns what was printed (in `messages`). */
static int load_file_fails(const char *path)
{
    struct config *c = (struct config *)1;
    size_t len;
    FILE *f;
    int n;

    free(messages);
    f = open_memstream(&messages, &len);
    n = config_load_with(path, &test_opts, &c, f);
    fclose(f);
    return n > 0 && c == NULL;
}

/* Only regular files of at most 16 MiB: a FIFO used to block until a writer came (here the
 * test would hang), and the size is checked before reading. */
static void test_file_kinds(void)
{
    char dir[] = "/tmp/gatehouse-test-XXXXXX", path[64], expect[128];
    int fd;

    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK(load_file_fails(path));
    snprintf(expect, sizeof expect, "%s: not a regular file\n", path);
    CHECK(!strcmp(messages, expect));
    unlink(path);

    /* exactly 16 MiB is read whole and handed to the parser, which finds the NULs */
    snprintf(path, sizeof path, "%s/big", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "#", 1) == 1 && ftruncate(fd, 16 << 20) == 0);
    close(fd);
    CHECK(load_file_fails(path));
    snprintf(expect, sizeof expect, "%s:1:2: control characters are not allowed (0x0)\n", path);
    CHECK(!strcmp(messages, expect));
    /* one byte more is refused before it is read */
    fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && ftruncate(fd, (16 << 20) + 1) == 0);
    close(fd);
    CHECK(load_file_fails(path));
    snprintf(expect, sizeof expect, "%s: larger than 16 MiB\n", path);
    CHECK(!strcmp(messages, expect));
    unlink(path);
    rmdir(dir);
}

/* ---- host filtering, forwarding, rewriting, limits ---- */

/* Every key of the milestone, with values other than the defaults. */
static const char proxy_example[] =
    "trusted_proxies: [\"10.0.0.0/8\", \"::1\", \"192.168.1.5/32\", \"::ffff:172.16.0.0/108\"]\n"
    "limits:\n"
    "  max_connections_per_client: 1000000\n"
    "listen:\n"
    "  - address: \"0.0.0.0:80\"\n"
    "    sites: [public-web, other.example.com]\n"
    "  - address: \":0\"\n"
    "upstreams:\n"
    "  jenkins:\n"
    "    servers: [\"127.0.0.1:8080\"]\n"
    "    secret_header: { name: X-Gatehouse-Secret, value: \"s3cret\\tx\" }\n"
    "sites:\n"
    "  - name: public-web\n"
    "    hosts: [\"ci.example.com\"]\n"
    "    default: true\n"
    "    response_headers:\n"
    "      add: { X-Content-Type-Options: nosniff, X-Two: \"\" }\n"
    "      set: { X-Frame-Options: DENY }\n"
    "      remove: [X-Powered-By, Server]\n"
    "    routes:\n"
    "      - path: /jenkins/\n"
    "        proxy: jenkins\n"
    "        strip_prefix: true\n"
    "        forward_headers: [x-forwarded-for, X-Forwarded-Proto, forwarded]\n"
    "        host_header: upstream\n"
    "        rewrite_responses: false\n"
    "        rewrite_names: [\"HTTP://Jenkins.Internal:8080/\", \"https://[::1]\"]\n"
    "        max_body_size: 100m\n"
    "        request_headers: { add: { X-A: a }, set: { X-B: b }, remove: [Cookie] }\n"
    "        response_headers: { add: {}, set: {}, remove: [] }\n"
    "      - path: /\n"
    "        proxy: jenkins\n"
    "        forward_headers: []\n"
    "      - path: /health\n"
    "        respond: {}\n"
    "        max_body_size: 1k\n"
    "        response_headers: { set: { Cache-Control: no-store } }\n"
    "  - hosts: [other.example.com]\n"
    "    routes: [{path: /, respond: {}}]\n";

static void test_proxy_example_top(const struct config *c)
{
    const struct cfg_cidr *t = c->trusted_proxies;
    const struct cfg_upstream *u = &c->upstreams[0];

    CHECK_EQ_INT(c->ntrusted_proxies, 4);
    CHECK(t[0].family == AF_INET && t[0].prefix == 8 && !memcmp(t[0].bytes, "\x0a\0\0\0", 4));
    CHECK(t[1].family == AF_INET6 && t[1].prefix == 128 && t[1].bytes[15] == 1);
    CHECK(t[2].family == AF_INET && t[2].prefix == 32 &&
          !memcmp(t[2].bytes, "\xc0\xa8\x01\x05", 4));
    /* an IPv4-mapped block is stored as the IPv4 block */
    CHECK(t[3].family == AF_INET && t[3].prefix == 12 && !memcmp(t[3].bytes, "\xac\x10\0\0", 4));
    CHECK_EQ_INT(c->limits.max_connections_per_client, 1000000);
    CHECK_EQ_INT(c->listeners[0].nsites, 2);
    CHECK(c->listeners[0].sites[0] == &c->sites[0]);
    CHECK(c->listeners[0].sites[1] == &c->sites[1]);
    CHECK(c->listeners[1].sites == NULL && c->listeners[1].nsites == 0);
    CHECK(!strcmp(u->secret_name, "X-Gatehouse-Secret"));
    CHECK(!strcmp(u->secret_value, "s3cret\tx"));
}

static int op_is(const struct cfg_header_op *op, const char *name, const char *value)
{
    return !strcmp(op->name, name) && op->name_len == strlen(name) && !strcmp(op->value, value) &&
           op->value_len == strlen(value);
}

static void test_proxy_example_site(const struct config *c)
{
    const struct cfg_site *s = &c->sites[0];
    const struct cfg_header_rules *h = &s->response_headers;

    CHECK(s->is_default);
    CHECK(!c->sites[1].is_default);
    CHECK_EQ_INT(h->nadd, 2);
    CHECK(op_is(&h->add[0], "X-Content-Type-Options", "nosniff"));
    CHECK(op_is(&h->add[1], "X-Two", ""));
    CHECK_EQ_INT(h->nset, 1);
    CHECK(op_is(&h->set[0], "X-Frame-Options", "DENY"));
    CHECK_EQ_INT(h->nremove, 2);
    CHECK(!strcmp(h->remove[0], "X-Powered-By") && !strcmp(h->remove[1], "Server"));
}

static void test_proxy_example_routes(const struct config *c)
{
    const struct cfg_route *j = &c->sites[0].routes[0], *health = &c->sites[0].routes[1],
                           *root = &c->sites[0].routes[2];

    CHECK(!strcmp(j->path, "/jenkins"));
    CHECK(j->strip_prefix);
    CHECK_EQ_INT(j->forward_headers, CFG_FWD_FOR | CFG_FWD_PROTO | CFG_FWD_FORWARDED);
    CHECK_EQ_INT(j->host_header, CFG_HOST_UPSTREAM);
    CHECK(!j->rewrite_responses);
    CHECK_EQ_INT(j->nrewrite_names, 2);
    CHECK(!strcmp(j->rewrite_names[0], "http://jenkins.internal:8080"));
    CHECK(!strcmp(j->rewrite_names[1], "https://[::1]"));
    CHECK_EQ_INT(j->max_body_size, 100 << 20);
    CHECK(j->request_headers.nadd == 1 && op_is(&j->request_headers.add[0], "X-A", "a"));
    CHECK(j->request_headers.nset == 1 && op_is(&j->request_headers.set[0], "X-B", "b"));
    CHECK(j->request_headers.nremove == 1 && !strcmp(j->request_headers.remove[0], "Cookie"));
    CHECK(!j->response_headers.nadd && !j->response_headers.nset && !j->response_headers.nremove);
    CHECK(!strcmp(root->path, "/"));
    CHECK_EQ_INT(root->forward_headers, 0);
    CHECK(!strcmp(health->path, "/health"));
    CHECK_EQ_INT(health->max_body_size, 1024);
    CHECK(health->response_headers.nset == 1 &&
          op_is(&health->response_headers.set[0], "Cache-Control", "no-store"));
}

static void test_proxy_example(void)
{
    struct config *c;

    CHECK_EQ_INT(load(proxy_example, &c), 0);
    CHECK(!strcmp(messages, ""));
    if (!c)
        return;
    test_proxy_example_top(c);
    test_proxy_example_site(c);
    test_proxy_example_routes(c);
    config_unref(c);
}

static void check_no_rules(const struct cfg_header_rules *h)
{
    CHECK(!h->add && !h->set && !h->remove && !h->nadd && !h->nset && !h->nremove);
}

static void check_route_defaults(const struct cfg_route *r)
{
    CHECK(!r->strip_prefix);
    CHECK_EQ_INT(r->forward_headers, CFG_FWD_ALL);
    CHECK_EQ_INT(r->host_header, CFG_HOST_CLIENT);
    CHECK(r->rewrite_responses);
    CHECK(r->rewrite_names == NULL && r->nrewrite_names == 0);
    CHECK_EQ_INT(r->max_body_size, 0);
    check_no_rules(&r->request_headers);
    check_no_rules(&r->response_headers);
}

static void test_proxy_defaults(void)
{
    struct config *c;

    CHECK_EQ_INT(load("listen: [{address: \":0\"}]\n"
                      "upstreams: {a: {servers: [\"127.0.0.1:1\"]}}\n"
                      "trusted_proxies:\n"
                      "sites:\n"
                      "  - hosts: [\"*\"]\n"
                      "    response_headers:\n"
                      "    routes:\n"
                      "      - {path: /, proxy: a, forward_headers: , request_headers: {}}\n"
                      "      - {path: /r, respond: {}}\n",
                      &c),
                 0);
    if (!c)
        return;
    CHECK(c->trusted_proxies == NULL && c->ntrusted_proxies == 0);
    CHECK_EQ_INT(c->limits.max_connections_per_client, 0);
    CHECK(c->listeners[0].sites == NULL && c->listeners[0].nsites == 0);
    CHECK(c->upstreams[0].secret_name == NULL && c->upstreams[0].secret_value == NULL);
    CHECK(!c->sites[0].is_default);
    check_no_rules(&c->sites[0].response_headers);
    check_route_defaults(&c->sites[0].routes[0]);
    check_route_defaults(&c->sites[0].routes[1]);
    config_unref(c);
    /* the same for a file without any of the new keys */
    CHECK_EQ_INT(load(MINIMAL, &c), 0);
    if (!c)
        return;
    CHECK(c->trusted_proxies == NULL && c->ntrusted_proxies == 0);
    CHECK(c->listeners[0].sites == NULL);
    check_route_defaults(&c->sites[0].routes[0]);
    config_unref(c);
}

/* `[]` is "none" where the list is optional; names of sites may come from their first host. */
static void test_proxy_lists(void)
{
    struct config *c;

    CHECK_EQ_INT(load("trusted_proxies: []\n"
                      "listen: [{address: \":0\", sites: [b.com, \"*\"]}]\n"
                      "upstreams: {a: {servers: [\"127.0.0.1:1\"]}}\n"
                      "sites:\n"
                      "  - hosts: [\"*\"]\n"
                      "    routes:\n"
                      "      - path: /\n"
                      "        proxy: a\n"
                      "        forward_headers: [X-FORWARDED-HOST, x-forwarded-port, "
                      "x-forwarded-port]\n"
                      "        rewrite_names: []\n"
                      "  - hosts: [B.com]\n"
                      "    routes: [{path: /, respond: {}}]\n",
                      &c),
                 0);
    CHECK(!strcmp(messages, ""));
    if (!c)
        return;
    CHECK(c->trusted_proxies == NULL && c->ntrusted_proxies == 0);
    CHECK_EQ_INT(c->listeners[0].nsites, 2);
    CHECK(c->listeners[0].sites[0] == &c->sites[1] && c->listeners[0].sites[1] == &c->sites[0]);
    CHECK_EQ_INT(c->sites[0].routes[0].forward_headers, CFG_FWD_HOST | CFG_FWD_PORT);
    CHECK_EQ_INT(c->sites[0].routes[0].nrewrite_names, 0);
    config_unref(c);
}

static void test_error_trusted_proxies(void)
{
    EXPECT_ERRORS("trusted_proxies: [\"10.0.0.1/8\", \"::1/129\", \"1.2.3.4/\", x, [a],\n"
                  "  \"1.2.3.4/33\", \"fe80::1%eth0\", \"2001:db8::1/32\", \"1.2.3.4/-1\",\n"
                  "  \"01.2.3.4\", \"::ffff:10.0.0.1/104\", \" 1.2.3.4\"]\n"
                  "limits: {max_connections_per_client: 1000001}\n" MINIMAL,
                  "x.yaml:1:19: address block '10.0.0.1/8' has host bits set (the block is "
                  "10.0.0.0/8)\n"
                  "x.yaml:1:33: bad address block '::1/129' (prefix length must be 0..128)\n"
                  "x.yaml:1:44: bad address block '1.2.3.4/' (prefix length must be 0..32)\n"
                  "x.yaml:1:56: bad address block 'x' (expected an IP address, or a block like "
                  "10.0.0.0/8)\n"
                  "x.yaml:1:59: 'trusted_proxies' must be a list of addresses or blocks like "
                  "10.0.0.0/8, not a list\n"
                  "x.yaml:2:3: bad address block '1.2.3.4/33' (prefix length must be 0..32)\n"
                  "x.yaml:2:17: bad address block 'fe80::1%eth0' (expected an IP address, or a "
                  "block like 10.0.0.0/8)\n"
                  "x.yaml:2:33: address block '2001:db8::1/32' has host bits set (the block is "
                  "2001:db8::/32)\n"
                  "x.yaml:2:51: bad address block '1.2.3.4/-1' (prefix length must be 0..32)\n"
                  "x.yaml:3:3: bad address block '01.2.3.4' (expected an IP address, or a block "
                  "like 10.0.0.0/8)\n"
                  "x.yaml:3:15: address block '::ffff:10.0.0.1/104' has host bits set (the block "
                  "is ::ffff:10.0.0.0/104)\n"
                  "x.yaml:3:38: bad address block ' 1.2.3.4' (expected an IP address, or a block "
                  "like 10.0.0.0/8)\n"
                  "x.yaml:4:38: 'max_connections_per_client' must be an integer 0..1000000\n");
    EXPECT_ERRORS("trusted_proxies: 10.0.0.0/8\n" MINIMAL,
                  "x.yaml:1:18: 'trusted_proxies' must be a list, not '10.0.0.0/8'\n");
}

static void test_error_listener_sites(void)
{
    EXPECT_ERRORS("listen:\n"
                  "  - address: \":0\"\n"
                  "    sites: [one, nope, one, [x], \"*\"]\n"
                  "  - address: \":0\"\n"
                  "    sites: []\n"
                  "  - address: \":0\"\n"
                  "    sites: one\n"
                  "sites:\n"
                  "  - name: one\n"
                  "    hosts: [a.com]\n"
                  "    routes: [{path: /, respond: {}}]\n"
                  "  - hosts: [one]\n"
                  "    routes: [{path: /, respond: {}}]\n",
                  "x.yaml:3:18: unknown site 'nope'\n"
                  "x.yaml:3:24: site 'one' is listed twice\n"
                  "x.yaml:3:29: 'sites' must be a list of site names, not a list\n"
                  "x.yaml:3:34: unknown site '*'\n"
                  "x.yaml:5:12: 'sites' must not be empty\n"
                  "x.yaml:7:12: 'sites' must be a list, not 'one'\n"
                  "x.yaml:12:13: duplicate site name 'one'\n");
    /* no cascade when `sites` itself is broken */
    EXPECT_ERRORS("listen: [{address: \":0\", sites: [a]}]\nsites: 1\n",
                  "x.yaml:2:8: 'sites' must be a list, not '1'\n");
}

static void test_error_default_site(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "sites:\n"
                  "  - hosts: [a.com]\n"
                  "    default: true\n"
                  "    routes: [{path: /, respond: {}}]\n"
                  "  - hosts: [b.com]\n"
                  "    default: false\n"
                  "    routes: [{path: /, respond: {}}]\n"
                  "  - hosts: [c.com]\n"
                  "    default: true\n"
                  "    routes: [{path: /, respond: {}}]\n"
                  "  - hosts: [d.com]\n"
                  "    default: yes\n"
                  "    routes: [{path: /, respond: {}}]\n",
                  "x.yaml:10:14: only one site can be the default, and site 'a.com' is (line 4)\n"
                  "x.yaml:13:14: 'default' must be true or false\n");
}

static void test_error_secret_header(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams:\n"
                  "  a:\n"
                  "    servers: [\"127.0.0.1:1\"]\n"
                  "    secret_header: {name: \"X Secret\", value: \"a\\r\\nb\"}\n"
                  "  b:\n"
                  "    servers: [\"127.0.0.1:1\"]\n"
                  "    secret_header: {name: host, value: \"\"}\n"
                  "  c:\n"
                  "    servers: [\"127.0.0.1:1\"]\n"
                  "    secret_header: {value: x}\n"
                  "  d:\n"
                  "    servers: [\"127.0.0.1:1\"]\n"
                  "    secret_header: {name: Content-Length, value: , extra: 1}\n"
                  "  e:\n"
                  "    servers: [\"127.0.0.1:1\"]\n"
                  "    secret_header: X-Secret\n" MINIMAL_SITES,
                  "x.yaml:5:27: bad header name 'X Secret' (letters, digits and "
                  "!#$%&'*+-.^_`|~ only, at most 256)\n"
                  "x.yaml:5:46: 'value' must not contain control characters\n"
                  "x.yaml:8:27: header 'Host' cannot be changed here (see 'host_header')\n"
                  "x.yaml:8:40: 'value' must not be empty\n"
                  "x.yaml:11:20: missing required key 'name' in 'secret_header'\n"
                  "x.yaml:14:27: header 'Content-Length' is managed by the proxy and cannot be "
                  "changed\n"
                  "x.yaml:14:50: 'value' needs a value\n"
                  "x.yaml:14:52: unknown key 'extra' in 'secret_header'\n"
                  "x.yaml:17:20: 'secret_header' must be a map, not 'X-Secret'\n");
}

static void test_error_header_rules(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams: {a: {servers: [\"127.0.0.1:1\"]}}\n"
                  "sites:\n"
                  "  - hosts: [\"*\"]\n"
                  "    response_headers:\n"
                  "      add: {Transfer-Encoding: x, Host: h, \"a:b\": c, X-N: , X-M: {}}\n"
                  "      set: {x-a: \"1\\n\", X-A: \"\\x7f\", X-T: \"a\\tb\", X-NUL: \"a\\0\"}\n"
                  "      remove: [connection, Keep-Alive, TE, trailer, UPGRADE, content-length,\n"
                  "               x-t, [x], \"\"]\n"
                  "      delete: []\n"
                  "    routes:\n"
                  "      - path: /\n"
                  "        proxy: a\n"
                  "        request_headers:\n"
                  "          set: {HOST: x}\n"
                  "          add: [X-A]\n"
                  "          remove: X-B\n"
                  "        response_headers: {add: {Host: x, X-Y: y}, set: {x-y: z}}\n"
                  "      - path: /b\n"
                  "        proxy: a\n"
                  "        request_headers: []\n",
                  "x.yaml:6:13: header 'Transfer-Encoding' is managed by the proxy and cannot be "
                  "changed\n"
                  "x.yaml:6:44: bad header name 'a:b' (letters, digits and !#$%&'*+-.^_`|~ only, "
                  "at most 256)\n"
                  "x.yaml:6:59: 'X-N' needs a value (\"\" for an empty one)\n"
                  "x.yaml:6:66: 'X-M' must be a string, not a map\n"
                  "x.yaml:7:18: 'x-a' must not contain control characters\n"
                  "x.yaml:7:25: header 'X-A' appears twice in 'response_headers' (first at line "
                  "7)\n"
                  "x.yaml:7:30: 'X-A' must not contain control characters\n"
                  "x.yaml:7:58: 'X-NUL' must not contain NUL characters\n"
                  "x.yaml:8:16: header 'connection' is managed by the proxy and cannot be "
                  "changed\n"
                  "x.yaml:8:28: header 'Keep-Alive' is managed by the proxy and cannot be "
                  "changed\n"
                  "x.yaml:8:40: header 'TE' is managed by the proxy and cannot be changed\n"
                  "x.yaml:8:44: header 'trailer' is managed by the proxy and cannot be changed\n"
                  "x.yaml:8:53: header 'UPGRADE' is managed by the proxy and cannot be changed\n"
                  "x.yaml:8:62: header 'content-length' is managed by the proxy and cannot be "
                  "changed\n"
                  "x.yaml:9:16: header 'x-t' appears twice in 'response_headers' (first at line "
                  "7)\n"
                  "x.yaml:9:21: a header name in 'remove' must be a string, not a list\n"
                  "x.yaml:9:26: bad header name '' (letters, digits and !#$%&'*+-.^_`|~ only, at "
                  "most 256)\n"
                  "x.yaml:10:7: unknown key 'delete' in 'response_headers'\n"
                  "x.yaml:15:17: header 'Host' cannot be changed here (see 'host_header')\n"
                  "x.yaml:16:16: 'add' must be a map, not a list\n"
                  "x.yaml:17:19: 'remove' must be a list, not 'X-B'\n"
                  "x.yaml:18:58: header 'x-y' appears twice in 'response_headers' (first at "
                  "line 18)\n"
                  "x.yaml:21:26: 'request_headers' must be a map, not a list\n");
    /* one rules map shared by an alias: Host is fine for responses, not for requests */
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams: {a: {servers: [\"127.0.0.1:1\"]}}\n"
                  "sites:\n"
                  "  - hosts: [\"*\"]\n"
                  "    response_headers: &rules {set: {Host: h}}\n"
                  "    routes: [{path: /, proxy: a, request_headers: *rules}]\n",
                  "x.yaml:5:37: header 'Host' cannot be changed here (see 'host_header')\n");
}

static void test_error_proxy_options(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "upstreams: {a: {servers: [\"127.0.0.1:1\"]}}\n"
                  "sites:\n"
                  "  - hosts: [\"*\"]\n"
                  "    routes:\n"
                  "      - path: /\n"
                  "        proxy: a\n"
                  "        strip_prefix: 1\n"
                  "        forward_headers: [x-forwarded-for, x-forwarded-prefix, x-real-ip]\n"
                  "        host_header: server\n"
                  "        rewrite_responses: no\n"
                  "        max_body_size: 1t\n"
                  "      - path: /b\n"
                  "        proxy: a\n"
                  "        forward_headers: none\n"
                  "        rewrite_names: http://a\n"
                  "      - path: /c\n"
                  "        proxy: a\n"
                  "        rewrite_names: [\"ftp://a\", \"http://a/b\", \"http://a//\", "
                  "\"http://[zz]\",\n"
                  "          \"http://a:0\", \"http://u@a\", \"http://a:\", \"http://a b\", "
                  "\"http://\",\n"
                  "          \"https://a:65536\", \"http://a?x\", \"http://[::1]x\", \"a.com\"]\n",
                  "x.yaml:8:23: 'strip_prefix' must be true or false\n"
                  "x.yaml:9:44: unknown forwarding header 'x-forwarded-prefix' (expected "
                  "x-forwarded-for, x-forwarded-proto, x-forwarded-host, x-forwarded-port or "
                  "forwarded)\n"
                  "x.yaml:9:64: unknown forwarding header 'x-real-ip' (expected "
                  "x-forwarded-for, x-forwarded-proto, x-forwarded-host, x-forwarded-port or "
                  "forwarded)\n"
                  "x.yaml:10:22: 'host_header' must be one of client, upstream\n"
                  "x.yaml:11:28: 'rewrite_responses' must be true or false\n"
                  "x.yaml:12:24: 'max_body_size' must be a size like 8192, 64k or 1m\n"
                  "x.yaml:15:26: 'forward_headers' must be a list, not 'none'\n"
                  "x.yaml:16:24: 'rewrite_names' must be a list, not 'http://a'\n"
                  "x.yaml:19:25: bad origin 'ftp://a' (expected http://host[:port] or "
                  "https://host[:port])\n"
                  "x.yaml:19:36: bad origin 'http://a/b' (an origin has no path: "
                  "scheme://host[:port] only)\n"
                  "x.yaml:19:50: bad origin 'http://a//' (an origin has no path: "
                  "scheme://host[:port] only)\n"
                  "x.yaml:19:64: bad origin 'http://[zz]' (bad IPv6 address)\n"
                  "x.yaml:20:11: bad origin 'http://a:0' (bad port)\n"
                  "x.yaml:20:25: bad origin 'http://u@a' (no user name allowed)\n"
                  "x.yaml:20:39: bad origin 'http://a:' (bad port)\n"
                  "x.yaml:20:52: bad origin 'http://a b' (bad host)\n"
                  "x.yaml:20:66: bad origin 'http://' (expected http://host[:port] or "
                  "https://host[:port])\n"
                  "x.yaml:21:11: bad origin 'https://a:65536' (bad port)\n"
                  "x.yaml:21:30: bad origin 'http://a?x' (an origin has no path: "
                  "scheme://host[:port] only)\n"
                  "x.yaml:21:44: bad origin 'http://[::1]x' (bad port)\n"
                  "x.yaml:21:61: bad origin 'a.com' (expected http://host[:port] or "
                  "https://host[:port])\n");
}

/* Options of proxy routes on other routes are refused; max_body_size and response_headers
 * go anywhere. */
static void test_error_proxy_only(void)
{
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "sites:\n"
                  "  - hosts: [\"*\"]\n"
                  "    routes:\n"
                  "      - path: /\n"
                  "        respond: {}\n"
                  "        strip_prefix: true\n"
                  "        forward_headers: []\n"
                  "        host_header: client\n"
                  "        rewrite_responses: true\n"
                  "        rewrite_names: [\"http://a\"]\n"
                  "        request_headers: {}\n"
                  "        response_headers: {set: {X-A: b}}\n"
                  "        max_body_size: 1k\n"
                  "      - path: /r\n"
                  "        redirect: {to: /}\n"
                  "        strip_prefix: false\n"
                  "        host_header:\n",
                  "x.yaml:7:23: 'strip_prefix' is for proxy routes only (route '/' has "
                  "'respond')\n"
                  "x.yaml:8:26: 'forward_headers' is for proxy routes only (route '/' has "
                  "'respond')\n"
                  "x.yaml:9:22: 'host_header' is for proxy routes only (route '/' has "
                  "'respond')\n"
                  "x.yaml:10:28: 'rewrite_responses' is for proxy routes only (route '/' has "
                  "'respond')\n"
                  "x.yaml:11:24: 'rewrite_names' is for proxy routes only (route '/' has "
                  "'respond')\n"
                  "x.yaml:12:26: 'request_headers' is for proxy routes only (route '/' has "
                  "'respond')\n"
                  "x.yaml:17:23: 'strip_prefix' is for proxy routes only (route '/r' has "
                  "'redirect')\n");
}

/* ---- trusted proxies: matching ---- */

static struct sockaddr_storage peer(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        CHECK(inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1);
        in6->sin6_family = AF_INET6;
    }
    return ss;
}

/* Loads `list` as trusted_proxies and checks `ip` against it. */
static int trusted(const char *list, const char *ip)
{
    char yaml[512];
    struct config *c;
    struct sockaddr_storage ss = peer(ip);
    int match;

    snprintf(yaml, sizeof yaml, "trusted_proxies: [%s]\n" MINIMAL, list);
    if (load(yaml, &c) != 0) {
        fprintf(stderr, "%s", messages);
        return -1;
    }
    match = config_cidr_match(c->trusted_proxies, c->ntrusted_proxies, (struct sockaddr *)&ss);
    config_unref(c);
    return match;
}

static void test_cidr_match(void)
{
    static const struct {
        const char *list, *ip;
        int match;
    } cases[] = {
        {"10.0.0.0/8", "10.0.0.1", 1},
        {"10.0.0.0/8", "10.255.255.255", 1},
        {"10.0.0.0/8", "11.0.0.0", 0},
        {"10.0.0.0/8", "9.255.255.255", 0},
        {"10.0.0.0/8", "::ffff:10.1.2.3", 1},
        {"10.0.0.0/8", "::ffff:11.1.2.3", 0},
        {"10.0.0.0/8", "::a00:1", 0}, /* IPv4-compatible, not mapped */
        {"10.0.0.0/8", "2001:db8::1", 0},
        {"192.168.1.5", "192.168.1.5", 1},
        {"192.168.1.5/32", "192.168.1.5", 1},
        {"192.168.1.5/32", "192.168.1.4", 0},
        {"192.168.1.5/32", "192.168.1.7", 0},
        {"172.16.0.0/12", "172.31.255.255", 1},
        {"172.16.0.0/12", "172.32.0.0", 0},
        {"0.0.0.0/0", "1.2.3.4", 1},
        {"0.0.0.0/0", "255.255.255.255", 1},
        {"0.0.0.0/0", "::ffff:1.2.3.4", 1},
        {"0.0.0.0/0", "::1", 0},
        {"\"::1\"", "::1", 1},
        {"\"::1/128\"", "::1", 1},
        {"\"::1\"", "::2", 0},
        {"\"::1\"", "127.0.0.1", 0},
        {"\"::/0\"", "2001:db8::1", 1},
        {"\"::/0\"", "::", 1},
        {"\"::/0\"", "1.2.3.4", 0},
        {"\"::/0\"", "::ffff:1.2.3.4", 0},
        {"\"2001:db8::/32\"", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"\"2001:db8::/32\"", "2001:db9::", 0},
        {"\"2001:db8:0:1::/64\"", "2001:db8:0:1:ffff::1", 1},
        {"\"2001:db8:0:1::/64\"", "2001:db8:0:2::1", 0},
        {"\"2001:db8::/65\"", "2001:db8::7fff:ffff:ffff:ffff", 1},
        {"\"2001:db8::/65\"", "2001:db8::8000:0:0:0", 0},
        {"\"2001:db8::/127\"", "2001:db8::1", 1},
        {"\"2001:db8::/127\"", "2001:db8::2", 0},
        {"\"fe80::/10\"", "febf::1", 1},
        {"\"fe80::/10\"", "fec0::1", 0},
        {"\"::ffff:10.0.0.0/104\"", "10.9.9.9", 1},
        {"\"::ffff:10.0.0.0/104\"", "::ffff:10.9.9.9", 1},
        {"\"::ffff:10.0.0.0/104\"", "11.0.0.0", 0},
        {"\"1.2.3.4\", \"::1\", 10.0.0.0/8", "10.0.0.9", 1},
        {"\"1.2.3.4\", \"::1\", 10.0.0.0/8", "::1", 1},
        {"\"1.2.3.4\", \"::1\", 10.0.0.0/8", "1.2.3.5", 0},
    };
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct cfg_cidr all = {.family = AF_INET, .prefix = 0};

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = trusted(cases[i].list, cases[i].ip);
        if (got == cases[i].match) {
            check_passed++;
            continue;
        }
        check_failed++;
        fprintf(stderr, "%s:%d: [%s] vs %s: got %d, expected %d\n", __FILE__, __LINE__,
                cases[i].list, cases[i].ip, got, cases[i].match);
    }
    CHECK(!config_cidr_match(&all, 1, (struct sockaddr *)&un));
    CHECK(!config_cidr_match(&all, 1, NULL));
    CHECK(!config_cidr_match(NULL, 0, (struct sockaddr *)&un));
}

/* ---- value parsers ---- */

/* Unix socket servers and the PROXY protocol keys (issue 14). */
static void test_unix_and_proxy_protocol(void)
{
    struct config *c = NULL;
    CHECK(load("trusted_proxies: [\"10.0.0.0/8\"]\n"
               "upstreams:\n"
               "  app:\n"
               "    servers: [\"unix:/nonexistent/app.sock\", \"127.0.0.1:81\"]\n"
               "    proxy_protocol: v2\n"
               "  plain: {servers: [\"127.0.0.1:82\"]}\n"
               "listen:\n  - {address: \":0\", proxy_protocol: true}\n  - address: "
               "\":0\"\n" MINIMAL_SITES,
               &c) == 0);
    if (c) {
        const struct cfg_addr *a = &c->upstreams[0].servers[0];
        const struct sockaddr_un *un = (const struct sockaddr_un *)&a->sa;
        CHECK_EQ_INT(a->sa.ss_family, AF_UNIX);
        CHECK(strcmp(un->sun_path, "/nonexistent/app.sock") == 0);
        CHECK_EQ_INT(a->len, offsetof(struct sockaddr_un, sun_path) + 22);
        CHECK(strcmp(a->text, "unix:/nonexistent/app.sock") == 0);
        CHECK(strcmp(a->host, "localhost") == 0);
        CHECK_EQ_INT(c->upstreams[0].proxy_protocol, CFG_PP_V2);
        CHECK_EQ_INT(c->upstreams[1].proxy_protocol, CFG_PP_OFF);
        CHECK(c->listeners[0].proxy_protocol && !c->listeners[1].proxy_protocol);
        config_unref(c);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof longpath);
    memcpy(longpath, "/", 1);
    longpath[108] = '\0'; /* 108 bytes: one more than sun_path holds with its NUL */
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "upstreams:\n  a: {servers: [\"unix:%s\"]}\n"
             "  b: {servers: [\"unix:run/x.sock\", \"unix:\"], proxy_protocol: v3}\n"
             "listen:\n  - {address: \":0\", proxy_protocol: true}\n" MINIMAL_SITES,
             longpath);
    EXPECT_ERRORS(yaml,
                  "x.yaml:2:17: bad address 'unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                  "aaaaaaaaaaaaaa...' (a Unix socket path has at most 107 bytes)\n"
                  "x.yaml:3:17: bad address 'unix:run/x.sock' (a Unix socket is 'unix:' and "
                  "an absolute path)\n"
                  "x.yaml:3:36: bad address 'unix:' (a Unix socket is 'unix:' and an "
                  "absolute path)\n"
                  "x.yaml:3:62: 'proxy_protocol' must be one of off, v1, v2\n"
                  "x.yaml:5:37: 'proxy_protocol' needs 'trusted_proxies' (the balancers "
                  "that may send the header)\n");
}

static void test_durations(void)
{
    uint32_t ms = 7;

    CHECK(config_parse_duration("250ms", &ms) == 0 && ms == 250);
    CHECK(config_parse_duration("5s", &ms) == 0 && ms == 5000);
    CHECK(config_parse_duration("2m", &ms) == 0 && ms == 120000);
    CHECK(config_parse_duration("1h", &ms) == 0 && ms == 3600000);
    CHECK(config_parse_duration("1d", &ms) == 0 && ms == 86400000);
    CHECK(config_parse_duration("30", &ms) == 0 && ms == 30000);
    CHECK(config_parse_duration("0", &ms) == 0 && ms == 0);
    CHECK(config_parse_duration("4294967295ms", &ms) == 0 && ms == UINT32_MAX);
    CHECK(config_parse_duration("4294967296ms", &ms) != 0);
    CHECK(config_parse_duration("4294968s", &ms) != 0);
    CHECK(config_parse_duration("99999999999999999999999", &ms) != 0);
    CHECK(config_parse_duration("", &ms) != 0);
    CHECK(config_parse_duration("s", &ms) != 0);
    CHECK(config_parse_duration("-1s", &ms) != 0);
    CHECK(config_parse_duration("5 s", &ms) != 0);
    CHECK(config_parse_duration("5S", &ms) != 0);
    CHECK(config_parse_duration("1.5s", &ms) != 0);
    CHECK(config_parse_duration("5sec", &ms) != 0);
}

static void test_sizes(void)
{
    uint64_t b = 7;

    CHECK(config_parse_size("123", &b) == 0 && b == 123);
    CHECK(config_parse_size("64k", &b) == 0 && b == 65536);
    CHECK(config_parse_size("64K", &b) == 0 && b == 65536);
    CHECK(config_parse_size("64kb", &b) == 0 && b == 65536);
    CHECK(config_parse_size("64KB", &b) == 0 && b == 65536);
    CHECK(config_parse_size("10m", &b) == 0 && b == 10485760);
    CHECK(config_parse_size("1g", &b) == 0 && b == 1073741824);
    CHECK(config_parse_size("0", &b) == 0 && b == 0);
    CHECK(config_parse_size("17179869184g", &b) != 0);
    CHECK(config_parse_size("18446744073709551615", &b) == 0 && b == UINT64_MAX);
    CHECK(config_parse_size("18446744073709551616", &b) != 0);
    CHECK(config_parse_size("", &b) != 0);
    CHECK(config_parse_size("k", &b) != 0);
    CHECK(config_parse_size("1t", &b) != 0);
    CHECK(config_parse_size("-1", &b) != 0);
    CHECK(config_parse_size("1 k", &b) != 0);
}

static void test_addresses(void)
{
    struct cfg_addr a;

    CHECK(config_parse_addr("1.2.3.4:80", &test_resolver, &a) == 0 && is_ipv4(&a, "1.2.3.4", 80));
    CHECK(!strcmp(a.text, "1.2.3.4:80"));
    config_addr_free(&a);
    CHECK(a.text == NULL);
    CHECK(config_parse_addr("[::1]:80", &test_resolver, &a) == 0 && is_ipv6(&a, "::1", 80));
    config_addr_free(&a);
    CHECK(config_parse_addr("[::]:0", &test_resolver, &a) == 0 && is_ipv6(&a, "::", 0));
    config_addr_free(&a);
    CHECK(config_parse_addr("*:443", &test_resolver, &a) == 0 && is_ipv4(&a, "0.0.0.0", 443));
    config_addr_free(&a);
    CHECK(config_parse_addr(":8080", &test_resolver, &a) == 0 && is_ipv4(&a, "0.0.0.0", 8080));
    config_addr_free(&a);
    CHECK(config_parse_addr("localhost:1", &test_resolver, &a) == 0 && is_ipv4(&a, "127.0.0.1", 1));
    config_addr_free(&a);
    CHECK(config_parse_addr("LocalHost:1", &test_resolver, &a) == 0 && is_ipv4(&a, "127.0.0.1", 1));
    config_addr_free(&a);
    CHECK(config_parse_addr("backend.test:9", &test_resolver, &a) == 0 &&
          is_ipv4(&a, "10.1.2.3", 9));
    config_addr_free(&a);
    CHECK(config_parse_addr("v6.test:9", &test_resolver, &a) == 0 && is_ipv6(&a, "2001:db8::5", 9));
    config_addr_free(&a);
    CHECK(config_parse_addr("1.2.3.4", &test_resolver, &a) != 0 && a.text == NULL);
    CHECK(config_parse_addr("::1:80", &test_resolver, &a) != 0);
    CHECK(config_parse_addr("[::1:80", &test_resolver, &a) != 0);
    CHECK(config_parse_addr("[zz]:80", &test_resolver, &a) != 0);
    CHECK(config_parse_addr("1.2.3.4:http", &test_resolver, &a) != 0);
    CHECK(config_parse_addr("1.2.3.4:+80", &test_resolver, &a) != 0);
    CHECK(config_parse_addr("1.2.3.4:99999", &test_resolver, &a) != 0);
    CHECK(config_parse_addr("nowhere.test:80", &test_resolver, &a) != 0);
    CHECK(config_parse_addr("a b:80", &test_resolver, &a) != 0);
}

/* Host names resolve through this stub, so tests never wait on DNS: "backend.test" and
 * "v6.test" exist, nothing else does. */
static int fake_resolver(const char *host, struct sockaddr_storage *sa, socklen_t *len)
{
    memset(sa, 0, sizeof *sa);
    if (!strcmp(host, "backend.test") || !strcmp(host, "backend.example.com")) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        in->sin_family = AF_INET;
        inet_pton(AF_INET, "10.1.2.3", &in->sin_addr);
        *len = sizeof *in;
        return 0;
    }
    if (!strcmp(host, "v6.test")) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::5", &in6->sin6_addr);
        *len = sizeof *in6;
        return 0;
    }
    return EAI_NONAME;
}

/* ---- tls ---- */

/* The shape of `tls:`; files are not opened when it is wrong. */
static void test_error_tls_shape(void)
{
    EXPECT_ERRORS("listen:\n"
                  "  - address: \":0\"\n"
                  "    tls: { min_version: \"1.2\" }\n" MINIMAL_SITES,
                  "x.yaml:3:10: missing required key 'certificates' in 'tls'\n");
    EXPECT_ERRORS("listen:\n"
                  "  - address: \":0\"\n"
                  "    tls:\n"
                  "      certificates: []\n"
                  "      min_version: 1.1\n"
                  "      handshake: 1s\n"
                  "  - address: \":0\"\n"
                  "    tls: yes\n" MINIMAL_SITES,
                  "x.yaml:4:21: 'certificates' must not be empty\n"
                  "x.yaml:5:20: 'min_version' must be one of 1.2, 1.3\n"
                  "x.yaml:6:7: unknown key 'handshake' in 'tls'\n"
                  "x.yaml:8:10: 'tls' must be a map, not 'yes'\n");
    EXPECT_ERRORS("listen:\n"
                  "  - address: \":0\"\n"
                  "    tls:\n"
                  "      certificates: [{ cert: a.crt }, b.crt]\n" MINIMAL_SITES,
                  "x.yaml:4:22: missing required key 'key' in certificate #1\n"
                  "x.yaml:4:39: each item of 'certificates' must be a map, not 'b.crt'\n");
    /* client_subject_header, session_ticket_rotation and ocsp. */
    EXPECT_ERRORS("listen:\n"
                  "  - address: \":0\"\n"
                  "    tls:\n"
                  "      certificates: [{ cert: a.crt, key: a.key, ocsp: \"\" }]\n"
                  "      client_subject_header: \"X Client\"\n"
                  "      session_ticket_rotation: 0\n"
                  "  - address: \":0\"\n"
                  "    tls:\n"
                  "      certificates: [{ cert: a.crt, key: a.key }]\n"
                  "      client_subject_header: Content-Length\n"
                  "      session_ticket_key: t.key\n"
                  "      session_ticket_rotation: 1h\n"
                  "  - address: \":0\"\n"
                  "    tls:\n"
                  "      certificates: [{ cert: a.crt, key: a.key }]\n"
                  "      client_subject_header: x-forwarded-client\n"
                  "      client_ca: [a.crt]\n" MINIMAL_SITES,
                  "x.yaml:4:55: 'ocsp' must be a file path\n"
                  "x.yaml:5:30: 'client_subject_header' must be a header name (letters, digits "
                  "and !#$%&'*+-.^_`|~ only)\n"
                  "x.yaml:6:32: 'session_ticket_rotation' must be greater than 0\n"
                  "x.yaml:10:30: 'client_subject_header' cannot be 'Content-Length': the proxy "
                  "manages that header\n"
                  "x.yaml:12:32: 'session_ticket_rotation' applies only to generated keys, not "
                  "with 'session_ticket_key' (replace the key file and reload to rotate it)\n"
                  "x.yaml:16:30: 'client_subject_header' cannot be 'x-forwarded-client': the "
                  "proxy manages that header\n"
                  "x.yaml:17:18: 'client_ca' must be a file path, not a list\n");
}

static char tls_dir[] = "/tmp/gatehouse-cfgtls-XXXXXX";

static int tls_make(const char *name, const char *newkey, const char *san)
{
    char cmd[600];

    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey %s -nodes -days 2 -subj /CN=%s -addext "
             "subjectAltName=DNS:%s -keyout %s/%s.key -out %s/%s.crt 2>/dev/null",
             newkey, name, san, tls_dir, name, tls_dir, name);
    return system(cmd);
}

/* Writes `yaml` to tls_dir/gatehouse.yaml and loads it from there. */
static int tls_load(const char *yaml, struct config **c, char *path, size_t pathlen)
{
    size_t len;
    FILE *f;
    int n;

    snprintf(path, pathlen, "%s/gatehouse.yaml", tls_dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(yaml, f);
    fclose(f);
    free(messages);
    f = open_memstream(&messages, &len);
    n = config_load_with(path, &test_opts, c, f);
    fclose(f);
    return n;
}

#define TLS_HEAD                                                                                   \
    "listen:\n"                                                                                    \
    "  - address: \":0\"\n"                                                                        \
    "    tls:\n"                                                                                   \
    "      certificates:\n"

static const char three_problems[] =
    TLS_HEAD "        - { cert: /nonexistent.crt, key: ec.key }\n"
             "  - address: \":0\"\n"
             "    tls:\n"
             "      certificates: [{ cert: ec.crt, key: ec.key }]\n"
             "      ciphers: NOPE\n"
             "    backlog: 0\n" MINIMAL_SITES;

static void test_tls_files(void)
{
    struct config *c = NULL;
    char path[200], expect[600];
    const struct cfg_tls *t;

    /* Relative paths: from the configuration file's directory. */
    CHECK_EQ_INT(tls_load(TLS_HEAD "        - { cert: ec.crt, key: ec.key }\n"
                                   "        - { cert: rsa.crt, key: rsa.key }\n"
                                   "      min_version: \"1.3\"\n"
                                   "      handshake_timeout: 5s\n" MINIMAL_SITES,
                          &c, path, sizeof path),
                 0);
    CHECK(c != NULL && c->listeners[0].tls != NULL);
    if (c && c->listeners[0].tls) {
        t = c->listeners[0].tls;
        snprintf(expect, sizeof expect, "%s/rsa.key", tls_dir);
        CHECK_EQ_INT(t->ncerts, 2);
        CHECK(!strcmp(t->certs[1].key, expect));
        CHECK_EQ_INT(t->min_version, 0x0304);
        CHECK_EQ_INT(t->handshake_timeout, 5000);
        CHECK(t->ciphers == NULL && t->ciphersuites == NULL);
        CHECK(t->server != NULL);
    }
    config_unref(c);
    /* An ECDSA certificate with an RSA key: reported at its entry. */
    CHECK_EQ_INT(tls_load(TLS_HEAD "        - { cert: ec.crt, key: ec.key }\n"
                                   "        - { cert: ec.crt, key: rsa.key }\n" MINIMAL_SITES,
                          &c, path, sizeof path),
                 1);
    CHECK(c == NULL);
    snprintf(expect, sizeof expect,
             "%s:6:11: cannot use certificate %s/ec.crt: the key %s/rsa.key does not match the "
             "certificate\n",
             path, tls_dir, tls_dir);
    CHECK(messages && !strcmp(messages, expect));
    if (messages && strcmp(messages, expect))
        fprintf(stderr, "got: %sexpected: %s", messages, expect);
    /* An unreadable file, and a bad cipher list, with the other problems of the file. */
    CHECK_EQ_INT(tls_load(three_problems, &c, path, sizeof path), 3);
    snprintf(expect, sizeof expect,
             "%s:5:11: cannot use certificate /nonexistent.crt: cannot open /nonexistent.crt: "
             "No such file or directory\n",
             path);
    CHECK(messages && !strncmp(messages, expect, strlen(expect)));
    CHECK(messages && strstr(messages, ":9:16: bad 'ciphers' 'NOPE': no cipher match\n"));
    CHECK(messages && strstr(messages, ":10:14: 'backlog' must be"));
}

/* client_ca, session_ticket_key and ocsp: read at load, faults reported at their key. */
static void test_tls_new_keys(void)
{
    struct config *c = NULL;
    char path[200], expect[1600];
    const struct cfg_tls *t;

    CHECK_EQ_INT(tls_load(TLS_HEAD "        - { cert: ec.crt, key: ec.key }\n"
                                   "      client_ca: ec.crt\n"
                                   "      client_subject_header: X-SSL-Client-DN\n"
                                   "      session_ticket_key: ticket80.key\n"
                                   "  - address: \":0\"\n"
                                   "    tls:\n"
                                   "      certificates: [{ cert: ec.crt, key: ec.key }]\n"
                                   "      session_ticket_key: ticket48.key\n"
                                   "  - address: \":0\"\n"
                                   "    tls:\n"
                                   "      certificates: [{ cert: ec.crt, key: ec.key }]\n"
                                   "      session_ticket_rotation: 250ms\n" MINIMAL_SITES,
                          &c, path, sizeof path),
                 0);
    if (messages && *messages)
        fprintf(stderr, "%s", messages);
    CHECK(c != NULL && c->nlisteners == 3);
    if (c && c->nlisteners == 3) {
        t = c->listeners[0].tls;
        snprintf(expect, sizeof expect, "%s/ec.crt", tls_dir);
        CHECK(t->client_ca && !strcmp(t->client_ca, expect));
        CHECK(t->client_subject_header && !strcmp(t->client_subject_header, "X-SSL-Client-DN"));
        snprintf(expect, sizeof expect, "%s/ticket80.key", tls_dir);
        CHECK(t->session_ticket_key && !strcmp(t->session_ticket_key, expect));
        CHECK(t->certs[0].ocsp == NULL);
        CHECK(t->server != NULL);
        t = c->listeners[1].tls;
        CHECK(t->client_ca == NULL && t->session_ticket_key != NULL && t->server != NULL);
        CHECK(t->client_subject_header && !strcmp(t->client_subject_header, "X-Client-Subject"));
        CHECK_EQ_INT(t->session_ticket_rotation, 43200000); /* 12h, unused with a key file */
        t = c->listeners[2].tls;
        CHECK(t->session_ticket_key == NULL);
        CHECK_EQ_INT(t->session_ticket_rotation, 250);
    }
    config_unref(c);
    /* A key file of the wrong size, a CA file that is missing, an OCSP response that is
     * not one: each at its key. */
    CHECK_EQ_INT(tls_load(TLS_HEAD "        - { cert: ec.crt, key: ec.key }\n"
                                   "      session_ticket_key: ticket10.key\n"
                                   "  - address: \":0\"\n"
                                   "    tls:\n"
                                   "      certificates: [{ cert: ec.crt, key: ec.key }]\n"
                                   "      client_ca: /nonexistent/ca.crt\n"
                                   "  - address: \":0\"\n"
                                   "    tls:\n"
                                   "      certificates:\n"
                                   "        - { cert: ec.crt, key: ec.key }\n"
                                   "        - { cert: rsa.crt, key: rsa.key, ocsp: rsa.crt }\n"
                                   "      min_version: \"1.3\"\n" MINIMAL_SITES,
                          &c, path, sizeof path),
                 3);
    CHECK(c == NULL);
    snprintf(expect, sizeof expect,
             "%s:6:27: cannot use session_ticket_key %s/ticket10.key: it holds 10 bytes, not 80 "
             "(or 48) as made by `openssl rand 80`\n"
             "%s:10:18: cannot use client_ca /nonexistent/ca.crt: cannot open "
             "/nonexistent/ca.crt: No such file or directory\n"
             "%s:15:48: cannot use OCSP response %s/rsa.crt: not a DER OCSP response\n",
             path, tls_dir, path, path, tls_dir);
    CHECK(messages && !strcmp(messages, expect));
    if (messages && strcmp(messages, expect))
        fprintf(stderr, "got: %sexpected: %s", messages, expect);
}

/* ---- tls to upstreams ---- */

#define UP_HEAD MINIMAL "upstreams:\n  a:\n    servers: [\"127.0.0.1:1\"]\n"

static void test_upstream_tls_shape(void)
{
    struct config *c = NULL;

    CHECK_EQ_INT(load(UP_HEAD "    tls: true\n", &c), 0);
    CHECK(c && c->upstreams[0].tls_client != NULL && c->upstreams[0].tls_verify);
    CHECK(c && !c->upstreams[0].tls_ca && !c->upstreams[0].tls_server_name);
    config_unref(c);
    CHECK_EQ_INT(load(UP_HEAD "    tls: false\n", &c), 0);
    CHECK(c && c->upstreams[0].tls_client == NULL);
    config_unref(c);
    CHECK_EQ_INT(load(UP_HEAD, &c), 0);
    CHECK(c && c->upstreams[0].tls_client == NULL);
    config_unref(c);
    EXPECT_ERRORS(UP_HEAD "    tls: [a]\n",
                  "x.yaml:11:10: 'tls' (true, false or a map) must be a map, not a list\n");
    EXPECT_ERRORS(UP_HEAD "    tls: maybe\n", "x.yaml:11:10: 'tls' must be true or false\n");
    EXPECT_ERRORS(UP_HEAD "    tls:\n"
                          "      sni: a\n"
                          "      verify: sometimes\n"
                          "      server_name: \"a b\"\n"
                          "      cert: c.crt\n",
                  "x.yaml:12:7: 'cert' and 'key' go together in 'tls' of upstream 'a'\n"
                  "x.yaml:12:7: unknown key 'sni' in 'tls' of upstream 'a'\n"
                  "x.yaml:13:15: 'verify' must be true or false\n"
                  "x.yaml:14:20: 'server_name' must be a host name of 1 to 253 characters "
                  "without spaces\n");
}

/* Loads with stderr captured into buf: warnings go there, not to the problem report. */
static int load_capturing_stderr(const char *yaml, struct config **c, char *buf, size_t len)
{
    FILE *tmp = tmpfile();
    int saved = dup(2), n;
    size_t got;

    fflush(stderr);
    dup2(fileno(tmp), 2);
    n = tls_load(yaml, c, buf, len);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    got = fread(buf, 1, len - 1, tmp);
    buf[got] = 0;
    fclose(tmp);
    return n;
}

static void test_upstream_tls_files(void)
{
    struct config *c = NULL;
    char path[200], expect[600], err[600];
    const struct cfg_upstream *u;

    CHECK_EQ_INT(tls_load(UP_HEAD "    tls:\n"
                                  "      ca: ec.crt\n"
                                  "      server_name: app.internal\n"
                                  "      cert: rsa.crt\n"
                                  "      key: rsa.key\n",
                          &c, path, sizeof path),
                 0);
    u = c ? &c->upstreams[0] : NULL;
    CHECK(u && u->tls_client && u->tls_verify && !strcmp(u->tls_server_name, "app.internal"));
    snprintf(expect, sizeof expect, "%s/ec.crt", tls_dir);
    CHECK(u && !strcmp(u->tls_ca, expect));
    config_unref(c);
    /* Unreadable files and a key of another certificate: reported at the key naming them. */
    CHECK_EQ_INT(tls_load(UP_HEAD "    tls: { ca: none.crt }\n", &c, path, sizeof path), 1);
    snprintf(expect, sizeof expect,
             "%s:11:16: cannot load CA certificates from %s/none.crt: ", path, tls_dir);
    CHECK(c == NULL && !strncmp(messages, expect, strlen(expect)));
    CHECK_EQ_INT(
        tls_load(UP_HEAD "    tls: { cert: ec.crt, key: rsa.key }\n", &c, path, sizeof path), 1);
    snprintf(expect, sizeof expect,
             "%s:11:31: cannot use key %s/rsa.key: it does not match the certificate", path,
             tls_dir);
    CHECK(c == NULL && !strncmp(messages, expect, strlen(expect)));
    if (c == NULL && strncmp(messages, expect, strlen(expect)))
        fprintf(stderr, "got: %sexpected: %s\n", messages, expect);
    /* verify: false loads, with a warning that is not a problem. */
    CHECK_EQ_INT(load_capturing_stderr(UP_HEAD "    tls: { verify: false }\n", &c, err, sizeof err),
                 0);
    CHECK(c && c->upstreams[0].tls_client && !c->upstreams[0].tls_verify);
    CHECK(!strcmp(messages, ""));
    snprintf(expect, sizeof expect, "%s:11:20: warning: TLS verification of upstream 'a' is off\n",
             path);
    CHECK(!strcmp(err, expect));
    if (strcmp(err, expect))
        fprintf(stderr, "got: %sexpected: %s", err, expect);
    config_unref(c);
}

static void test_tls(void)
{
    char cmd[300];

    test_error_tls_shape();
    test_upstream_tls_shape();
    if (!mkdtemp(tls_dir) || tls_make("ec", "ec -pkeyopt ec_paramgen_curve:P-256", "a.test") ||
        tls_make("rsa", "rsa:2048", "a.test")) {
        CHECK(!"cannot make test certificates with the openssl command");
        return;
    }
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl rand 80 > ticket80.key && openssl rand 48 > ticket48.key && "
             "openssl rand 10 > ticket10.key",
             tls_dir);
    CHECK_EQ_INT(system(cmd), 0);
    test_tls_files();
    test_tls_new_keys();
    test_upstream_tls_files();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* `admin: { address }` appends a listener flagged admin after those of `listen`. */
static void test_admin(void)
{
    struct config *c;

    CHECK_EQ_INT(load(MINIMAL, &c), 0);
    if (c) {
        CHECK(c->admin == NULL && c->nlisteners == 1 && !c->listeners[0].admin);
        config_unref(c);
    }
    CHECK_EQ_INT(load("admin: { address: \"127.0.0.1:9901\" }\n"
                      "listen:\n  - address: \":0\"\n  - address: \"[::1]:8443\"\n" MINIMAL_SITES,
                      &c),
                 0);
    if (!c)
        return;
    CHECK_EQ_INT(c->nlisteners, 3);
    CHECK(c->admin == &c->listeners[2]);
    CHECK(c->listeners[2].admin && !c->listeners[0].admin && !c->listeners[1].admin);
    CHECK(is_ipv4(&c->listeners[2].addr, "127.0.0.1", 9901));
    CHECK(is_ipv6(&c->listeners[1].addr, "::1", 8443));
    CHECK_EQ_INT(c->listeners[2].backlog, 511);
    CHECK(c->listeners[2].tls == NULL && c->listeners[2].sites == NULL);
    config_unref(c);
    CHECK_EQ_INT(load("admin:\n" MINIMAL, &c), 0); /* empty: none */
    if (c) {
        CHECK(c->admin == NULL && c->nlisteners == 1);
        config_unref(c);
    }
    EXPECT_ERRORS("listen: [{address: \"127.0.0.1:80\"}]\n"
                  "admin: {address: \"127.0.0.1:80\"}\n" MINIMAL_SITES,
                  "x.yaml:2:18: 'admin' address '127.0.0.1:80' is also in 'listen'\n");
    EXPECT_ERRORS("admin: {address: \"127.0.0.1\", backlog: 5}\n" MINIMAL,
                  "x.yaml:1:18: bad address '127.0.0.1' (expected host:port)\n"
                  "x.yaml:1:31: unknown key 'backlog' in 'admin'\n");
    EXPECT_ERRORS("admin: [1]\n" MINIMAL, "x.yaml:1:8: 'admin' must be a map, not a list\n");
}

/* ---- upstream servers written as host names ---- */

/* Answers of test_resolver (every address of a name): "multi.test" has three addresses, given
 * out of order and one twice; "dyn.test" what the test sets; "big.test" 200; "empty.test" none.
 * Other names go to fake_resolver. */
static const char *dyn_ips[8];
static size_t dyn_n;
static int dyn_error, lookups;

static void put_ip(struct sockaddr_storage *out, const char *ip)
{
    memset(out, 0, sizeof *out);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
        in6->sin6_port = htons(1234); /* the answer's port must not matter */
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &in->sin_addr);
    }
}

static int fake_lookup(void *ctx, const char *host, struct sockaddr_storage *out, size_t max,
                       size_t *n)
{
    static const char *const multi[] = {"10.0.0.7", "2001:db8::1", "10.0.0.5", "10.0.0.7"};
    socklen_t len;
    int rc;

    lookups++;
    *n = 0;
    if (!strcmp(host, "multi.test")) {
        for (size_t i = 0; i < 4 && *n < max; i++)
            put_ip(&out[(*n)++], multi[i]);
        return 0;
    }
    if (!strcmp(host, "dyn.test")) {
        for (size_t i = 0; !dyn_error && i < dyn_n && *n < max; i++)
            put_ip(&out[(*n)++], dyn_ips[i]);
        return dyn_error;
    }
    if (!strcmp(host, "big.test")) {
        for (size_t i = 0; i < 200 && *n < max; i++) {
            char ip[32];
            snprintf(ip, sizeof ip, "10.9.%zu.%zu", i / 100, i % 100);
            put_ip(&out[(*n)++], ip);
        }
        return 0;
    }
    if (!strcmp(host, "empty.test"))
        return 0;
    rc = fake_resolver(host, out, &len);
    *n = rc == 0;
    return rc;
}

static void set_dyn(const char *a, const char *b)
{
    dyn_ips[0] = a;
    dyn_ips[1] = b;
    dyn_n = b ? 2 : a ? 1 : 0;
    dyn_error = 0;
}

static bool server_is(const struct cfg_addr *a, const char *text, const char *host)
{
    return a->text && a->host && !strcmp(a->text, text) && !strcmp(a->host, host);
}

/* A name is one server per distinct address, sorted (IPv4 first), each with the policy written
 * for it; literal addresses and localhost stay one server. */
static void test_named_servers(void)
{
    static const char yaml[] = MINIMAL "upstreams:\n"
                                       "  app:\n"
                                       "    servers:\n"
                                       "      - \"10.0.0.1:80\"\n"
                                       "      - { address: \"multi.test:5000\", weight: 2, "
                                       "max_conns: 3 }\n"
                                       "      - { address: \"localhost:81\", backup: true }\n"
                                       "      - \"[::1]:82\"\n";
    const struct cfg_upstream *u;
    struct config *c;

    CHECK_EQ_INT(load(yaml, &c), 0);
    if (!c)
        return;
    CHECK(c->source && c->source_len == strlen(yaml) && !memcmp(c->source, yaml, c->source_len));
    u = &c->upstreams[0];
    CHECK_EQ_INT(u->resolve_interval, 30000);
    CHECK_EQ_INT(u->nservers, 6);
    CHECK(is_ipv4(&u->servers[0], "10.0.0.1", 80) &&
          server_is(&u->servers[0], "10.0.0.1:80", "10.0.0.1:80"));
    CHECK(is_ipv4(&u->servers[1], "10.0.0.5", 5000) &&
          server_is(&u->servers[1], "multi.test:5000@10.0.0.5", "multi.test:5000"));
    CHECK(is_ipv4(&u->servers[2], "10.0.0.7", 5000) &&
          server_is(&u->servers[2], "multi.test:5000@10.0.0.7", "multi.test:5000"));
    CHECK(is_ipv6(&u->servers[3], "2001:db8::1", 5000) &&
          server_is(&u->servers[3], "multi.test:5000@2001:db8::1", "multi.test:5000"));
    for (size_t i = 1; i <= 3; i++) {
        CHECK_EQ_INT(u->policies[i].weight, 2);
        CHECK_EQ_INT(u->policies[i].max_conns, 3);
        CHECK(!u->policies[i].backup);
    }
    CHECK(is_ipv4(&u->servers[4], "127.0.0.1", 81) &&
          server_is(&u->servers[4], "localhost:81", "localhost:81") && u->policies[4].backup);
    CHECK(is_ipv6(&u->servers[5], "::1", 82) && server_is(&u->servers[5], "[::1]:82", "[::1]:82"));
    CHECK_EQ_INT(u->nnames, 1);
    if (u->nnames == 1) {
        CHECK(!strcmp(u->names[0].name, "multi.test"));
        CHECK(!strcmp(u->names[0].written, "multi.test:5000"));
        CHECK(u->names[0].written == u->servers[1].host);
        CHECK_EQ_INT(u->names[0].first, 1);
        CHECK_EQ_INT(u->names[0].n, 3);
    }
    config_unref(c);

    /* A name with 200 addresses fits; two of them (400 servers) do not. */
    CHECK_EQ_INT(load(MINIMAL "upstreams: {a: {servers: [\"big.test:1\"]}}\n", &c), 0);
    CHECK(c && c->upstreams[0].nservers == 200 && c->upstreams[0].names[0].n == 200);
    config_unref(c);
    EXPECT_ERRORS(MINIMAL "upstreams: {a: {servers: [\"big.test:1\", \"big.test:2\"]}}\n",
                  "x.yaml:8:26: an upstream has at most 256 servers, and with every address of "
                  "its host names these are 400\n");
    EXPECT_ERRORS(MINIMAL "upstreams: {a: {servers: [\"empty.test:1\", \"multi.test:0\"]}}\n",
                  "x.yaml:8:27: bad address 'empty.test:1' (cannot resolve 'empty.test': Name or "
                  "service not known)\n"
                  "x.yaml:8:43: bad address 'multi.test:0' (an upstream server needs a port)\n");
}

static void test_resolve_interval(void)
{
    struct config *c;

    CHECK_EQ_INT(load(MINIMAL "upstreams:\n"
                              "  a: {servers: [\"multi.test:1\"], resolve_interval: 0}\n"
                              "  b: {servers: [\"multi.test:1\"], resolve_interval: 5m}\n",
                      &c),
                 0);
    CHECK(c && c->upstreams[0].resolve_interval == 0 && c->upstreams[1].resolve_interval == 300000);
    config_unref(c);
    EXPECT_ERRORS(MINIMAL "upstreams:\n"
                          "  a: {servers: [\"multi.test:1\"], resolve_interval: 500ms}\n"
                          "  b: {servers: [\"multi.test:1\"], resolve_interval: soon}\n",
                  "x.yaml:9:52: 'resolve_interval' must be 0 (never) or at least 1s\n"
                  "x.yaml:10:52: 'resolve_interval' must be a duration like 250ms, 5s, 2m, 1h or "
                  "1d (under 49d)\n");
}

/* The system's resolver (getaddrinfo, /etc/hosts): "localhost" has 127.0.0.1, and maybe ::1
 * too, depending on the machine; either way the answer is distinct and sorted. */
static void test_lookup_system(void)
{
    struct sockaddr_storage *sa;
    size_t n;
    bool v4 = false;

    CHECK_EQ_INT(cfg_lookup_name(NULL, "localhost", 8080, &sa, &n), 0);
    for (size_t i = 0; i < n; i++) {
        const struct cfg_addr a = {.sa = sa[i],
                                   .len = sa[i].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                      : sizeof(struct sockaddr_in)};
        v4 |= is_ipv4(&a, "127.0.0.1", 8080);
        CHECK(is_ipv4(&a, "127.0.0.1", 8080) || is_ipv6(&a, "::1", 8080));
        if (i)
            CHECK(cfg_sockaddr_cmp(&sa[i - 1], &sa[i]) < 0);
    }
    CHECK(n >= 1 && n <= 2 && v4);
    free(sa);
}

static void test_addrs_text(void)
{
    struct sockaddr_storage sa[3];
    char buf[64];

    put_ip(&sa[0], "10.0.0.5");
    put_ip(&sa[1], "2001:db8::5");
    put_ip(&sa[2], "192.168.100.200");
    resolve_addrs_text(sa, 3, buf, sizeof buf);
    CHECK(!strcmp(buf, "10.0.0.5, 2001:db8::5, 192.168.100.200"));
    resolve_addrs_text(sa, 3, buf, 30);
    CHECK(!strcmp(buf, "10.0.0.5, 2001:db8::5, ..."));
    resolve_addrs_text(sa, 0, buf, sizeof buf);
    CHECK(!strcmp(buf, ""));
}

static const struct upsrv *state_of(const struct config *c, size_t up, size_t server)
{
    return c->upstreams[up].state ? c->upstreams[up].state->servers[server] : NULL;
}

/* Looking names up again: nothing changes while the answers stay; new answers rebuild the
 * snapshot from its own text, only for upstreams that were due, and servers that remain keep
 * their state; a failed lookup keeps the running addresses. */
static void test_reresolve(void)
{
    static const char yaml[] = MINIMAL "upstreams:\n"
                                       "  a: {servers: [\"dyn.test:80\", \"dyn.test:81\"], "
                                       "resolve_interval: 1s}\n"
                                       "  b: {servers: [\"dyn.test:90\", \"10.0.0.9:90\"], "
                                       "resolve_interval: 0}\n";
    const bool a_due[] = {true, false}, all_due[] = {true, true};
    struct config *c, *n = NULL;
    struct resolve_round r;
    int before;

    set_dyn("10.0.0.2", "10.0.0.1");
    CHECK_EQ_INT(load(yaml, &c), 0);
    if (!c)
        return;
    CHECK_EQ_INT(upstate_attach(c, NULL), 0);
    CHECK_EQ_INT(c->upstreams[0].nservers, 4);
    CHECK(server_is(&c->upstreams[0].servers[0], "dyn.test:80@10.0.0.1", "dyn.test:80"));

    /* Same answer: no change; one lookup per name and round, whatever its ports. */
    before = lookups;
    CHECK_EQ_INT(resolve_round_run(&r, c, a_due, &test_resolver), 0);
    CHECK_EQ_INT(lookups - before, 1);
    CHECK_EQ_INT(r.n, 3);
    CHECK(!r.changed);
    CHECK(r.n == 3 && r.entries[0].looked_up && r.entries[1].looked_up && !r.entries[2].looked_up);
    resolve_round_free(&r);

    /* 10.0.0.2 went, 10.0.0.3 came: upstream a changes, b (resolve_interval 0) does not. */
    set_dyn("10.0.0.3", "10.0.0.1");
    CHECK_EQ_INT(resolve_round_run(&r, c, a_due, &test_resolver), 0);
    CHECK(r.changed && r.n == 3);
    if (r.n == 3) {
        CHECK(r.entries[0].changed && r.entries[1].changed && !r.entries[2].changed);
        CHECK(r.entries[0].n == 2 && !strcmp(r.entries[0].up->name, "a"));
        CHECK(cfg_addr_port(&r.entries[1].sa[0]) == 81);
    }
    before = lookups;
    CHECK_EQ_INT(resolve_round_build(&r, c, &n, stderr), 0);
    CHECK_EQ_INT(lookups, before); /* the rebuild asks no one: the round answers */
    resolve_round_free(&r);
    if (n) {
        const struct cfg_upstream *a = &n->upstreams[0], *b = &n->upstreams[1];
        CHECK(!strcmp(n->path, "x.yaml") && n->source_len == c->source_len);
        CHECK_EQ_INT(a->nservers, 4);
        CHECK(is_ipv4(&a->servers[0], "10.0.0.1", 80) && is_ipv4(&a->servers[1], "10.0.0.3", 80));
        CHECK(is_ipv4(&a->servers[2], "10.0.0.1", 81) && is_ipv4(&a->servers[3], "10.0.0.3", 81));
        CHECK(server_is(&a->servers[1], "dyn.test:80@10.0.0.3", "dyn.test:80"));
        CHECK_EQ_INT(b->nservers, 3);
        CHECK(is_ipv4(&b->servers[0], "10.0.0.1", 90) && is_ipv4(&b->servers[1], "10.0.0.2", 90));
        CHECK_EQ_INT(upstate_attach(n, c), 0);
        CHECK(state_of(n, 0, 0) == state_of(c, 0, 0)); /* 10.0.0.1:80 stays */
        CHECK(state_of(n, 0, 1) != state_of(c, 0, 1)); /* 10.0.0.3:80 is new */
        CHECK(state_of(n, 0, 2) == state_of(c, 0, 2)); /* 10.0.0.1:81 stays */
        CHECK(state_of(n, 1, 1) == state_of(c, 1, 1)); /* b as it was */
        CHECK(state_of(n, 1, 2) == state_of(c, 1, 2));
    }

    /* The name stops resolving: no change, the error noted, and a rebuild keeps the servers. */
    dyn_error = EAI_AGAIN;
    CHECK_EQ_INT(resolve_round_run(&r, n, all_due, &test_resolver), 0);
    CHECK(!r.changed && r.n == 3);
    for (size_t i = 0; i < r.n; i++)
        CHECK(r.entries[i].error == EAI_AGAIN && !r.entries[i].changed && r.entries[i].n == 2);
    config_unref(c);
    c = NULL;
    CHECK_EQ_INT(resolve_round_build(&r, n, &c, stderr), 0);
    if (c) {
        CHECK(is_ipv4(&c->upstreams[0].servers[1], "10.0.0.3", 80));
        CHECK(is_ipv4(&c->upstreams[1].servers[1], "10.0.0.2", 90));
        config_unref(c);
    }
    resolve_round_free(&r);
    config_unref(n);

    /* Outside a rebuild, a load asks the resolver: the name now fails to resolve. */
    EXPECT_ERRORS(yaml, "x.yaml:9:17: bad address 'dyn.test:80' (cannot resolve 'dyn.test': "
                        "Temporary failure in name resolution)\n"
                        "x.yaml:9:32: bad address 'dyn.test:81' (cannot resolve 'dyn.test': "
                        "Temporary failure in name resolution)\n"
                        "x.yaml:10:17: bad address 'dyn.test:90' (cannot resolve 'dyn.test': "
                        "Temporary failure in name resolution)\n");
    set_dyn("10.0.0.1", NULL);
}

/* hash_key: each kind parses; a header name is kept lowercase, a cookie name as written; a
 * missing or unusable name, or an unknown kind, is refused where it is written. */
static void test_hash_key(void)
{
    static const struct {
        const char *text;
        enum cfg_hash_by by;
        const char *name;
    } ok[] = {
        {"client_ip", CFG_HASH_CLIENT_IP, NULL},
        {"path", CFG_HASH_PATH, NULL},
        {"header X-Tenant", CFG_HASH_HEADER, "x-tenant"},
        {"cookie  SessionID", CFG_HASH_COOKIE, "SessionID"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char yaml[256];
        struct config *c;
        snprintf(
            yaml, sizeof yaml,
            "upstreams: {a: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: %s}}\n" MINIMAL,
            ok[i].text);
        CHECK_EQ_INT(load(yaml, &c), 0);
        if (!c)
            continue;
        CHECK_EQ_INT(c->upstreams[0].hash_by, ok[i].by);
        CHECK(ok[i].name
                  ? c->upstreams[0].hash_name && !strcmp(c->upstreams[0].hash_name, ok[i].name)
                  : c->upstreams[0].hash_name == NULL);
        config_unref(c);
    }
    EXPECT_ERRORS(
        "upstreams:\n"
        "  a: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: header}\n"
        "  b: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: \"cookie \"}\n"
        "  c: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: bogus}\n"
        "  d: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: \"header X-A:\"}\n"
        "  e: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: \"cookie a;b\"}\n"
        "  f: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: headers}\n"
        "  g: {servers: [\"127.0.0.1:1\"], balance: hash, hash_key: [path]}\n"
        "  h: {servers: [\"127.0.0.1:1\"], hash_key: path}\n" MINIMAL,
        "x.yaml:2:58: 'hash_key' needs a header name after 'header' (like 'header "
        "X-Tenant')\n"
        "x.yaml:3:58: 'hash_key' needs a cookie name after 'cookie' (like 'cookie "
        "session')\n"
        "x.yaml:4:58: 'hash_key' must be client_ip, path, 'header NAME' or 'cookie NAME', "
        "not 'bogus'\n"
        "x.yaml:5:58: 'hash_key': 'X-A:' is not a header name (1 to 256 letters, digits "
        "or !#$%&'*+-.^_`|~)\n"
        "x.yaml:6:58: 'hash_key': 'a;b' is not a cookie name (1 to 256 letters, digits "
        "or !#$%&'*+-.^_`|~)\n"
        "x.yaml:7:58: 'hash_key' must be client_ip, path, 'header NAME' or 'cookie NAME', "
        "not 'headers'\n"
        "x.yaml:8:58: 'hash_key' must be client_ip, path, 'header NAME' or 'cookie NAME', not a "
        "list\n"
        "x.yaml:9:43: 'hash_key' is used only with 'balance: hash' (this upstream balances by "
        "round_robin)\n");
}

/* passive_health.statuses: 500, 502, 503 and 504 by default (also with a passive_health map
 * that does not name them); a list replaces them; an empty list counts none; each entry is a
 * status 400..599. */
static void test_passive_statuses(void)
{
    struct config *c;
    CHECK_EQ_INT(load("upstreams:\n"
                      "  a: {servers: [\"127.0.0.1:1\"]}\n"
                      "  b: {servers: [\"127.0.0.1:1\"], passive_health: {failures: 3}}\n"
                      "  c: {servers: [\"127.0.0.1:1\"], passive_health: {statuses: [429, 500]}}\n"
                      "  d: {servers: [\"127.0.0.1:1\"], passive_health: {statuses: []}}\n" MINIMAL,
                      &c),
                 0);
    if (!c)
        return;
    for (size_t i = 0; i < 2; i++) {
        const struct cfg_passive_health *ph = &c->upstreams[i].passive_health;
        CHECK(cfg_passive_status(ph, 500) && cfg_passive_status(ph, 502) &&
              cfg_passive_status(ph, 503) && cfg_passive_status(ph, 504));
        CHECK(!cfg_passive_status(ph, 501) && !cfg_passive_status(ph, 505) &&
              !cfg_passive_status(ph, 404) && !cfg_passive_status(ph, 200) &&
              !cfg_passive_status(ph, 999) && !cfg_passive_status(ph, -1));
    }
    CHECK_EQ_INT(c->upstreams[1].passive_health.failures, 3);
    const struct cfg_passive_health *ph = &c->upstreams[2].passive_health;
    CHECK(cfg_passive_status(ph, 429) && cfg_passive_status(ph, 500));
    CHECK(!cfg_passive_status(ph, 502) && !cfg_passive_status(ph, 503));
    ph = &c->upstreams[3].passive_health;
    for (int st = 100; st < 700; st++)
        CHECK(!cfg_passive_status(ph, st));
    config_unref(c);
    EXPECT_ERRORS(
        "upstreams:\n"
        "  a: {servers: [\"127.0.0.1:1\"], passive_health: {statuses: 500}}\n"
        "  b: {servers: [\"127.0.0.1:1\"], passive_health: {statuses: [500, 200]}}\n"
        "  c: {servers: [\"127.0.0.1:1\"], passive_health: {statuses: [600, x]}}\n" MINIMAL,
        "x.yaml:2:60: 'statuses' (a list of HTTP statuses) must be a list, not "
        "'500'\n"
        "x.yaml:3:66: 'statuses' must be an integer 400..599\n"
        "x.yaml:4:61: 'statuses' must be an integer 400..599\n"
        "x.yaml:4:66: 'statuses' must be an integer 400..599\n");
}

/* A server map without an address is reported, and the servers beside it are still read (the
 * missing one is skipped, never dereferenced). */
static void test_error_server_without_address(void)
{
    EXPECT_ERRORS("upstreams:\n"
                  "  a: {servers: [\"127.0.0.1:1\", {weight: 2}, \"127.0.0.1:2\"]}\n" MINIMAL,
                  "x.yaml:2:32: a server needs an 'address'\n");
}

/* An upstream needs a primary: proxy/upstate.c builds its hash ring from the primaries. */
static void test_error_every_server_a_backup(void)
{
    EXPECT_ERRORS("upstreams:\n"
                  "  a: {servers: [{address: \"127.0.0.1:1\", backup: true}]}\n" MINIMAL,
                  "x.yaml:2:16: every server is a backup: at least one must not be\n");
}

/* health_check.status: digits only. sscanf("%u") took a sign and leading spaces and wrapped at
 * 2^32, so "4294967496" loaded as 200 and "200-4294967695" as 200-399. */
static void test_health_status_numbers(void)
{
    struct config *c;

    CHECK_EQ_INT(
        load("upstreams:\n"
             "  a: {servers: [\"127.0.0.1:1\"], health_check: {status: 204}}\n"
             "  b: {servers: [\"127.0.0.1:1\"], health_check: {status: 200-399}}\n"
             "  c: {servers: [\"127.0.0.1:1\"], health_check: {status: 599-599}}\n" MINIMAL,
             &c),
        0);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->upstreams[0].health_check.status_min == 204 &&
          c->upstreams[0].health_check.status_max == 204);
    CHECK(c->upstreams[1].health_check.status_min == 200 &&
          c->upstreams[1].health_check.status_max == 399);
    CHECK(c->upstreams[2].health_check.status_min == 599 &&
          c->upstreams[2].health_check.status_max == 599);
    config_unref(c);
    EXPECT_ERRORS("upstreams:\n"
                  "  a: {servers: [\"127.0.0.1:1\"], health_check: {status: 4294967496}}\n"
                  "  b: {servers: [\"127.0.0.1:1\"], health_check: {status: 200-4294967695}}\n"
                  "  c: {servers: [\"127.0.0.1:1\"], health_check: {status: \" 200\"}}\n"
                  "  d: {servers: [\"127.0.0.1:1\"], health_check: {status: +200}}\n"
                  "  e: {servers: [\"127.0.0.1:1\"], health_check: {status: \"200- 399\"}}\n"
                  "  f: {servers: [\"127.0.0.1:1\"], health_check: {status: 200-+399}}\n"
                  "  g: {servers: [\"127.0.0.1:1\"], health_check: {status: 12abc}}\n"
                  "  h: {servers: [\"127.0.0.1:1\"], health_check: {status: 399-200}}\n"
                  "  i: {servers: [\"127.0.0.1:1\"], health_check: {status: 200-}}\n" MINIMAL,
                  "x.yaml:2:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:3:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:4:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:5:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:6:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:7:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:8:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:9:56: 'status' must be a status (100-599) or a range like 200-399\n"
                  "x.yaml:10:56: 'status' must be a status (100-599) or a range like 200-399\n");
}

/* ---- issue 11: route paths normalised as request paths are; case_insensitive_paths ---- */
static void test_route_paths_normalised(void)
{
    struct config *c;

    CHECK_EQ_INT(load("listen: [{address: \":0\"}]\n"
                      "sites:\n"
                      "  - hosts: [\"*\"]\n"
                      "    case_insensitive_paths: true\n"
                      "    routes:\n"
                      "      - {path: \"/%61dmin//x/./\", respond: {}}\n"
                      "      - {path: \"/caf%c3%a9\", respond: {}}\n",
                      &c),
                 0);
    if (c) {
        CHECK(c->sites[0].case_insensitive_paths);
        CHECK_SLICE(c->sites[0].routes[0].path, c->sites[0].routes[0].path_len, "/caf%C3%A9");
        CHECK_SLICE(c->sites[0].routes[1].path, c->sites[0].routes[1].path_len, "/admin/x");
        config_unref(c);
    }
    CHECK_EQ_INT(load(MINIMAL, &c), 0);
    if (c) {
        CHECK(!c->sites[0].case_insensitive_paths); /* the default */
        config_unref(c);
    }
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "sites:\n"
                  "  - hosts: [\"*\"]\n"
                  "    case_insensitive_paths: true\n"
                  "    routes:\n"
                  "      - {path: /Admin, respond: {}}\n"
                  "      - {path: /x, respond: {}}\n"
                  "      - {path: /admin/, respond: {}}\n",
                  "x.yaml:4:29: routes '/Admin' and '/admin' are one path with "
                  "case_insensitive_paths\n");
    EXPECT_ERRORS(
        "listen: [{address: \":0\"}]\n"
        "sites:\n"
        "  - hosts: [\"*\"]\n"
        "    case_insensitive_paths: 1\n"
        "    routes:\n"
        "      - {path: \"/a;b\", respond: {}}\n"
        "      - {path: \"/a%2fb\", respond: {}}\n"
        "      - {path: \"/%61\", respond: {}}\n"
        "      - {path: \"/a/\", respond: {}}\n"
        "      - {path: '/b\\c', respond: {}}\n"
        "      - {path: \"/b%5cc\", respond: {}}\n",
        "x.yaml:4:29: 'case_insensitive_paths' must be true or false\n"
        "x.yaml:6:16: route path '/a;b' must not contain ';', '\\', '%2F' or '%5C' (the "
        "router reads them as segment parameters and separators)\n"
        "x.yaml:7:16: route path '/a%2fb' must not contain ';', '\\', '%2F' or '%5C' "
        "(the router reads them as segment parameters and separators)\n"
        "x.yaml:9:16: duplicate route path '/a'\n"
        "x.yaml:10:16: route path '/b\\c' must not contain ';', '\\', '%2F' or '%5C' (the "
        "router reads them as segment parameters and separators)\n"
        "x.yaml:11:16: route path '/b%5cc' must not contain ';', '\\', '%2F' or '%5C' "
        "(the router reads them as segment parameters and separators)\n");
}

/* ---- issue 11: IPv6 literals in a site's hosts ---- */
static void test_ipv6_hosts(void)
{
    struct config *c;

    CHECK_EQ_INT(load("listen: [{address: \":0\"}]\n"
                      "sites:\n"
                      "  - hosts: [\"[::1]\", \"[2001:DB8:0:0::1]\", \"[::FFFF:a00:1]\"]\n"
                      "    routes: [{path: /, respond: {}}]\n",
                      &c),
                 0);
    if (c) {
        CHECK_EQ_INT(c->sites[0].nhosts, 3);
        CHECK(!strcmp(c->sites[0].hosts[0], "[::1]"));
        CHECK(!strcmp(c->sites[0].hosts[1], "[2001:db8::1]")); /* canonical form */
        CHECK(!strcmp(c->sites[0].hosts[2], "[::ffff:10.0.0.1]"));
        CHECK(!strcmp(c->sites[0].name, "[::1]"));
        config_unref(c);
    }
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n"
                  "sites:\n"
                  "  - hosts: [\"[::g]\", \"[fe80::1%eth0]\", \"[::1\", \"::1\", \"[]\"]\n"
                  "    routes: [{path: /, respond: {}}]\n"
                  "  - hosts: [\"[::1]\", \"[0:0::1]\"]\n"
                  "    routes: [{path: /, respond: {}}]\n",
                  "x.yaml:3:13: bad IPv6 address '[::g]' (expected one like [2001:db8::1])\n"
                  "x.yaml:3:22: bad IPv6 address '[fe80::1%eth0]' (expected one like "
                  "[2001:db8::1])\n"
                  "x.yaml:3:40: bad IPv6 address '[::1' (expected one like [2001:db8::1])\n"
                  "x.yaml:3:48: bad host name '::1' (expected a name like example.com, "
                  "*.example.com or *)\n"
                  "x.yaml:3:55: bad IPv6 address '[]' (expected one like [2001:db8::1])\n"
                  "x.yaml:5:22: duplicate host '[::1]' (already in site '[::1]')\n");
}

/* ---- issue 11: a host is unique among the sites of one listener only ---- */
#define TWO_SITES_ONE_HOST                                                                         \
    "sites:\n"                                                                                     \
    "  - name: internal\n"                                                                         \
    "    hosts: [app.example.com, intranet.example.com]\n"                                         \
    "    routes: [{path: /, respond: {status: 201}}]\n"                                            \
    "  - name: public\n"                                                                           \
    "    hosts: [app.example.com]\n"                                                               \
    "    routes: [{path: /, respond: {status: 202}}]\n"

static void test_hosts_per_listener(void)
{
    struct config *c;

    CHECK_EQ_INT(load("listen:\n"
                      "  - {address: \"127.0.0.1:0\", sites: [internal]}\n"
                      "  - {address: \"127.0.0.1:0\", sites: [public]}\n" TWO_SITES_ONE_HOST,
                      &c),
                 0);
    if (c) {
        const struct cfg_site *a = router_site(c, &c->listeners[0], "app.example.com", 15);
        const struct cfg_site *b = router_site(c, &c->listeners[1], "APP.example.com:443", 19);
        CHECK(a && !strcmp(a->name, "internal"));
        CHECK(b && !strcmp(b->name, "public"));
        CHECK(router_site(c, &c->listeners[1], "intranet.example.com", 20) == NULL);
        config_unref(c);
    }
    /* one listener serving both: the choice would depend on the order */
    EXPECT_ERRORS("listen:\n"
                  "  - {address: \"127.0.0.1:0\", sites: [internal, public]}\n"
                  "  - {address: \"127.0.0.1:0\", sites: [public]}\n" TWO_SITES_ONE_HOST,
                  "x.yaml:9:13: duplicate host 'app.example.com' (already in site 'internal')\n");
    /* a listener without `sites` serves them all */
    EXPECT_ERRORS("listen:\n"
                  "  - {address: \"127.0.0.1:0\", sites: [internal]}\n"
                  "  - {address: \"127.0.0.1:0\"}\n" TWO_SITES_ONE_HOST,
                  "x.yaml:9:13: duplicate host 'app.example.com' (already in site 'internal')\n");
    EXPECT_ERRORS("listen: [{address: \":0\"}]\n" TWO_SITES_ONE_HOST,
                  "x.yaml:7:13: duplicate host 'app.example.com' (already in site 'internal')\n");
}

/* ---- issue 11: admin.hosts, the names the admin listener answers besides IP literals ---- */
static void test_admin_hosts(void)
{
    struct config *c;

    CHECK_EQ_INT(
        load(
            "admin: { address: \"127.0.0.1:0\", hosts: [Status.Example.com, localhost] }\n" MINIMAL,
            &c),
        0);
    if (c) {
        CHECK_EQ_INT(c->admin->nadmin_hosts, 2);
        CHECK(!strcmp(c->admin->admin_hosts[0], "status.example.com"));
        CHECK(!strcmp(c->admin->admin_hosts[1], "localhost"));
        CHECK_EQ_INT(c->listeners[0].nadmin_hosts, 0);
        config_unref(c);
    }
    CHECK_EQ_INT(load("admin: { address: \"127.0.0.1:0\" }\n" MINIMAL, &c), 0);
    if (c) {
        CHECK(c->admin->nadmin_hosts == 0 && c->admin->admin_hosts == NULL); /* IPs only */
        config_unref(c);
    }
    EXPECT_ERRORS("admin:\n"
                  "  address: \"127.0.0.1:0\"\n"
                  "  hosts: [\"*\", \"*.example.com\", \"[::1]\", \"a b\", ok.example]\n" MINIMAL,
                  "x.yaml:3:11: bad host name '*' in 'admin' (expected a name like "
                  "status.example.com; IP addresses need not be listed)\n"
                  "x.yaml:3:16: bad host name '*.example.com' in 'admin' (expected a name like "
                  "status.example.com; IP addresses need not be listed)\n"
                  "x.yaml:3:33: bad host name '[::1]' in 'admin' (expected a name like "
                  "status.example.com; IP addresses need not be listed)\n"
                  "x.yaml:3:42: bad host name 'a b' in 'admin' (expected a name like "
                  "status.example.com; IP addresses need not be listed)\n");
    EXPECT_ERRORS("admin: { address: \"127.0.0.1:0\", hosts: localhost }\n" MINIMAL,
                  "x.yaml:1:41: 'hosts' must be a list, not 'localhost'\n");
    EXPECT_ERRORS("listen: [{address: \":0\", hosts: [a.com]}]\n" MINIMAL_SITES,
                  "x.yaml:1:26: unknown key 'hosts' in listener ':0'\n");
}

/* ---- files routes (config_files.c) ---- */

static char files_top[64];
static char messages_cmd[128];

static void files_tree(void)
{
    char p[128];
    snprintf(files_top, sizeof files_top, "/tmp/gh-config-files-XXXXXX");
    CHECK(mkdtemp(files_top) != NULL);
    snprintf(p, sizeof p, "%s/www", files_top);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/file", files_top);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    close(fd);
}

static char *files_yaml(const char *files_part, const char *top_part)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "listen: [{address: \":0\"}]\n%s"
             "sites:\n"
             "  - hosts: [\"*\"]\n"
             "    routes:\n"
             "      - path: /\n"
             "        files:\n%s",
             top_part, files_part);
    return buf;
}

static void test_files_route(void)
{
    struct config *c = NULL;
    char part[1024];
    struct stat st;

    files_tree();
    snprintf(part, sizeof part,
             "          root: %s/www\n"
             "          index: [a.html, b.html]\n"
             "          listing: true\n"
             "          hidden: true\n"
             "          follow_symlinks: never\n"
             "          fallback: /app/index.html\n"
             "          precompressed: [zstd, gzip, br]\n"
             "          cache_control: \"public, max-age=60\"\n"
             "          mime_types: {\".wasm\": application/x-mine, map: application/json}\n",
             files_top);
    CHECK_EQ_INT(load(files_yaml(part, "files_cache: {entries: 7, valid: 250ms}\n"), &c), 0);
    if (!c) {
        fprintf(stderr, "%s", messages);
        return;
    }
    const struct cfg_route *r = &c->sites[0].routes[0];
    const struct cfg_files *fs = r->files;
    CHECK(r->action == CFG_ACTION_FILES && fs);
    CHECK(fs->root_fd >= 0 && fstat(fs->root_fd, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(fs->root_ino == (uint64_t)st.st_ino && fs->root_dev == (uint64_t)st.st_dev);
    CHECK((fcntl(fs->root_fd, F_GETFL) & O_PATH) && (fcntl(fs->root_fd, F_GETFD) & FD_CLOEXEC));
    CHECK(fs->nindex == 2 && !strcmp(fs->index[0], "a.html") && !strcmp(fs->index[1], "b.html"));
    CHECK(fs->listing && fs->hidden && fs->follow_symlinks == CFG_FOLLOW_NEVER);
    CHECK(fs->fallback && !strcmp(fs->fallback, "app/index.html") && fs->fallback_len == 14);
    CHECK(fs->nprecompressed == 3);
    CHECK(fs->precompressed[0] == 3 && fs->precompressed[1] == 1 && fs->precompressed[2] == 2);
    CHECK(fs->cache_control && !strcmp(fs->cache_control, "public, max-age=60"));
    CHECK(fs->mime && fs->mime == fs->mime_own && c->mime_base);
    CHECK_EQ_INT(c->files_cache.entries, 7);
    CHECK_EQ_INT(c->files_cache.valid, 250);
    int fd = fs->root_fd;
    config_unref(c);
    CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF); /* closed with the snapshot */

    /* The short form, and the defaults. */
    snprintf(part, sizeof part,
             "listen: [{address: \":0\"}]\n"
             "sites: [{hosts: [\"*\"], routes: [{path: /s, files: %s/www}]}]\n",
             files_top);
    CHECK_EQ_INT(load(part, &c), 0);
    if (!c)
        return;
    fs = c->sites[0].routes[0].files;
    CHECK(fs && fs->root_fd >= 0);
    CHECK(fs->nindex == 1 && !strcmp(fs->index[0], "index.html"));
    CHECK(!fs->listing && !fs->hidden && fs->follow_symlinks == CFG_FOLLOW_INSIDE_ROOT);
    CHECK(!fs->fallback && !fs->nprecompressed && !fs->cache_control && !fs->mime_own);
    CHECK(fs->mime == c->mime_base);
    CHECK_EQ_INT(c->files_cache.entries, 1024);
    CHECK_EQ_INT(c->files_cache.valid, 1000);
    config_unref(c);

    /* No files route: no table, no descriptor. */
    CHECK_EQ_INT(load("listen: [{address: \":0\"}]\n"
                      "sites: [{hosts: [\"*\"], routes: [{path: /, respond: {}}]}]\n",
                      &c),
                 0);
    CHECK(c && !c->mime_base && !c->files);
    config_unref(c);
}

static void test_error_files_route(void)
{
    char part[1024], want[2048];

    snprintf(part, sizeof part,
             "          root: %s/nothing\n"
             "      - path: /b\n"
             "        files: %s/file\n"
             "      - path: /c\n"
             "        files:\n"
             "          root: %s/www\n"
             "          precompressed: [br, deflate, br]\n"
             "          follow_symlinks: sometimes\n"
             "          mime_types: {\".x\": \"not a type\", \"a/b\": text/plain}\n"
             "          fallback: index.html\n"
             "          index: [\"..\", ok.html]\n"
             "          cache_control: \"\"\n"
             "          strip_prefix: true\n"
             "      - path: /d\n"
             "        files: {listing: true}\n"
             "      - path: /e\n"
             "        files: /\n"
             "        proxy: nowhere\n",
             files_top, files_top, files_top);
    snprintf(want, sizeof want,
             "x.yaml:2:24: 'entries' must be an integer 0..1048576\n"
             "x.yaml:8:17: files root '%s/nothing' does not exist\n"
             "x.yaml:10:16: files root '%s/file' is not a directory\n"
             "x.yaml:14:31: unknown precompressed coding 'deflate' (expected br, zstd or gzip)\n"
             "x.yaml:14:40: precompressed coding 'br' is listed twice\n"
             "x.yaml:15:28: 'follow_symlinks' must be one of inside_root, always, never\n"
             "x.yaml:16:30: bad media type 'not a type' for '.x' (like application/wasm)\n"
             "x.yaml:16:44: bad extension 'a/b' in 'mime_types' (like .wasm)\n"
             "x.yaml:17:21: fallback 'index.html' must be a file's path under root, like "
             "/index.html (no '.' or '..' segments, '?', '#' or '\\')\n"
             "x.yaml:18:19: index '..' must be a file name (no '/', not '.' or '..')\n"
             "x.yaml:19:26: 'cache_control' must be a header value (printable, one line)\n"
             "x.yaml:20:11: unknown key 'strip_prefix' in 'files'\n"
             "x.yaml:22:16: missing required key 'root' in 'files'\n"
             "x.yaml:25:16: route '/e' has both 'files' and 'proxy' (a route has one action)\n"
             "x.yaml:25:16: undefined upstream 'nowhere'\n",
             files_top, files_top);
    EXPECT_ERRORS(files_yaml(part, "files_cache: {entries: 2000000}\n"), want);
}

int main(void)
{
    test_example();
    test_shipped_example();
    test_defaults();
    test_null_and_off();
    test_routes_sorted_stable();
    test_aliases();
    test_refcount();
    test_error_examples();
    test_error_addresses();
    test_error_types();
    test_error_missing();
    test_error_routes();
    test_error_sites();
    test_error_limits();
    test_http2_limits();
    test_error_http2_limits();
    test_error_yaml();
    test_alias_bounds();
    test_many_errors_sorted();
    test_proxy_example();
    test_proxy_defaults();
    test_proxy_lists();
    test_error_trusted_proxies();
    test_error_listener_sites();
    test_admin();
    test_error_default_site();
    test_error_secret_header();
    test_error_header_rules();
    test_error_proxy_options();
    test_hash_key();
    test_passive_statuses();
    test_health_status_numbers();
    test_error_every_server_a_backup();
    test_error_server_without_address();
    test_error_proxy_only();
    test_cidr_match();
    test_files();
    test_file_kinds();
    test_unix_and_proxy_protocol();
    test_durations();
    test_sizes();
    test_addresses();
    test_tls();
    test_route_paths_normalised();
    test_ipv6_hosts();
    test_hosts_per_listener();
    test_admin_hosts();
    test_named_servers();
    test_resolve_interval();
    test_lookup_system();
    test_addrs_text();
    test_reresolve();
    test_files_route();
    test_error_files_route();
    snprintf(messages_cmd, sizeof messages_cmd, "rm -rf '%s'", files_top);
    CHECK(system(messages_cmd) == 0);
    free(messages);
    return check_done("config");
}
