/* Unit tests for the configuration module: the documented example, defaults, every class of
 * problem with its exact "FILE:LINE:COL: message" line, value parsers, and refcounting. */
#include "check.h"
#include "config/config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
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

static int load(const char *yaml, struct config **c)
{
    size_t len;
    FILE *f;
    int n;

    free(messages);
    f = open_memstream(&messages, &len);
    n = config_load_string("x.yaml", yaml, strlen(yaml), c, f);
    fclose(f);
    return n;
}

/* Loads `yaml`, which must fail with exactly `expected` printed and one problem per line. */
static void expect_errors(int line, const char *yaml, const char *expected)
{
    struct config *c = (struct config *)1;
    int lines = 0, n = load(yaml, &c);

    for (const char *p = expected; *p; p++)
        lines += *p == '\n';
    CHECK(c == NULL);
    if (n == lines && !strcmp(messages, expected)) {
        check_passed++;
        return;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: %d problems, expected %d:\n--- got\n%s--- expected\n%s", __FILE__, line,
            n, lines, messages, expected);
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
    n = config_load("examples/gatehouse.yaml", &c, f);
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
                  "x.yaml:9:9: route '/b' needs one of 'proxy', 'redirect' or 'respond'\n"
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
    CHECK_EQ_INT(config_load(path, &c, stderr), 0);
    if (c) {
        CHECK(!strcmp(c->path, path));
        config_unref(c);
    }
    unlink(path);
    free(messages);
    f = open_memstream(&messages, &len);
    CHECK_EQ_INT(config_load(path, &c, f), 1);
    CHECK(config_load("/", &c, f) == 1 && c == NULL);
    CHECK_EQ_INT(config_load(path, &c, NULL), 1); /* no stream: count only */
    fclose(f);
    snprintf(expect, sizeof expect,
             "%s: cannot open: No such file or directory\n/: cannot read: Is a directory\n", path);
    CHECK(!strcmp(messages, expect));
}

/* ---- value parsers ---- */

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

    CHECK(config_parse_addr("1.2.3.4:80", &a) == 0 && is_ipv4(&a, "1.2.3.4", 80));
    CHECK(!strcmp(a.text, "1.2.3.4:80"));
    config_addr_free(&a);
    CHECK(a.text == NULL);
    CHECK(config_parse_addr("[::1]:80", &a) == 0 && is_ipv6(&a, "::1", 80));
    config_addr_free(&a);
    CHECK(config_parse_addr("[::]:0", &a) == 0 && is_ipv6(&a, "::", 0));
    config_addr_free(&a);
    CHECK(config_parse_addr("*:443", &a) == 0 && is_ipv4(&a, "0.0.0.0", 443));
    config_addr_free(&a);
    CHECK(config_parse_addr(":8080", &a) == 0 && is_ipv4(&a, "0.0.0.0", 8080));
    config_addr_free(&a);
    CHECK(config_parse_addr("localhost:1", &a) == 0 && is_ipv4(&a, "127.0.0.1", 1));
    config_addr_free(&a);
    CHECK(config_parse_addr("LocalHost:1", &a) == 0 && is_ipv4(&a, "127.0.0.1", 1));
    config_addr_free(&a);
    CHECK(config_parse_addr("backend.test:9", &a) == 0 && is_ipv4(&a, "10.1.2.3", 9));
    config_addr_free(&a);
    CHECK(config_parse_addr("v6.test:9", &a) == 0 && is_ipv6(&a, "2001:db8::5", 9));
    config_addr_free(&a);
    CHECK(config_parse_addr("1.2.3.4", &a) != 0 && a.text == NULL);
    CHECK(config_parse_addr("::1:80", &a) != 0);
    CHECK(config_parse_addr("[::1:80", &a) != 0);
    CHECK(config_parse_addr("[zz]:80", &a) != 0);
    CHECK(config_parse_addr("1.2.3.4:http", &a) != 0);
    CHECK(config_parse_addr("1.2.3.4:+80", &a) != 0);
    CHECK(config_parse_addr("1.2.3.4:99999", &a) != 0);
    CHECK(config_parse_addr("nowhere.test:80", &a) != 0);
    CHECK(config_parse_addr("a b:80", &a) != 0);
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

int main(void)
{
    config_set_resolver(fake_resolver);
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
    test_error_yaml();
    test_many_errors_sorted();
    test_files();
    test_durations();
    test_sizes();
    test_addresses();
    free(messages);
    return check_done("config");
}
