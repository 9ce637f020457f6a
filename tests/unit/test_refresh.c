/* The refresh of upstream host names (config/refresh.c), driven without DNS: a fake resolver
 * passed in, an owner whose install takes the rebuilt snapshot, and the log read from a pipe.
 * Lookups are made due by setting their time (next_ms) to 0, so no test waits for a clock. */
#include "check.h"
#include "config/config.h"
#include "config/refresh.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

/* "dyn.test" answers what the test sets (or `error`); every other name is unknown. */
struct fake_dns {
    const char *ips[300];
    size_t n;
    int error;
    int lookups;
};

static void put_ip(struct sockaddr_storage *out, const char *ip)
{
    struct sockaddr_in *in = (struct sockaddr_in *)out;

    memset(out, 0, sizeof *out);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &in->sin_addr);
}

static int fake_lookup(void *ctx, const char *host, struct sockaddr_storage *out, size_t max,
                       size_t *n)
{
    struct fake_dns *dns = ctx;

    *n = 0;
    if (strcmp(host, "dyn.test") != 0)
        return EAI_NONAME;
    dns->lookups++;
    for (size_t i = 0; !dns->error && i < dns->n && *n < max; i++)
        put_ip(&out[(*n)++], dns->ips[i]);
    return dns->error;
}

static void set_dns(struct fake_dns *dns, const char *a, const char *b)
{
    dns->ips[0] = a;
    dns->ips[1] = b;
    dns->n = b ? 2 : 1;
    dns->error = 0;
}

/* The owner: the running snapshot, and what install was asked. */
struct owner {
    struct config *running;
    int installs;
    bool fail_install;
};

static struct config *owner_running(void *arg)
{
    struct owner *o = arg;

    config_ref(o->running);
    return o->running;
}

static int owner_install(void *arg, const struct config *old, struct config *c,
                         void (*announce)(void *), void *announce_arg)
{
    struct owner *o = arg;

    CHECK(old == o->running);
    if (o->fail_install) {
        config_unref(c);
        return -1;
    }
    announce(announce_arg);
    config_unref(o->running);
    o->running = c;
    o->installs++;
    return 0;
}

/* The error log: a pipe, read after each step. */
static int log_rd;
static char logged[16384];

static const char *read_log(void)
{
    ssize_t n = read(log_rd, logged, sizeof logged - 1);

    logged[n > 0 ? n : 0] = '\0';
    return logged;
}

#define SITES "sites: [{hosts: [\"*\"], routes: [{path: /, respond: {}}]}]\n"

static const char yaml[] = "listen: [{address: \"127.0.0.1:0\"}]\n" SITES "upstreams:\n"
                           "  a: {servers: [\"dyn.test:80\"], resolve_interval: 1s}\n"
                           "  b: {servers: [\"dyn.test:90\", \"10.0.0.9:90\"], "
                           "resolve_interval: 0}\n";

static bool server_at(const struct config *c, size_t up, size_t i, const char *ip, uint16_t port)
{
    const struct cfg_upstream *u = &c->upstreams[up];
    const struct sockaddr_in *in = (const struct sockaddr_in *)&u->servers[i].sa;
    char text[INET_ADDRSTRLEN];

    if (i >= u->nservers || in->sin_family != AF_INET)
        return false;
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return !strcmp(text, ip) && ntohs(in->sin_port) == port;
}

static struct config *load(const char *text, const struct config_resolver *resolver)
{
    const struct config_load_opts opts = {.resolver = resolver};
    struct config *c = NULL;

    CHECK_EQ_INT(config_load_string_with("x.yaml", text, strlen(text), &opts, &c, stderr), 0);
    return c;
}

/* Due now: upstream a (the only one with an interval). */
static void make_due(struct refresh *rf)
{
    if (rf->nups)
        rf->next_ms[0] = 0;
}

static void test_refresh(struct logger *lg)
{
    static struct fake_dns dns;
    const struct config_resolver resolver = {.lookup = fake_lookup, .ctx = &dns};
    const struct refresh_ops ops = {
        .resolver = &resolver, .running = owner_running, .install = owner_install};
    struct owner o = {0};
    struct refresh rf;
    long long wait;

    set_dns(&dns, "10.0.0.1", NULL);
    if (!(o.running = load(yaml, &resolver)))
        return;
    refresh_start(&rf, &ops, &o, lg, o.running);

    /* Upstream a is due in a second; b (resolve_interval 0) never. Nothing is due yet. */
    wait = refresh_wait(&rf);
    CHECK(wait > 0 && wait <= 1000);
    CHECK(rf.nups == 2 && rf.next_ms[1] == UINT64_MAX);
    dns.lookups = 0;
    refresh_run(&rf);
    CHECK_EQ_INT(dns.lookups, 0);

    /* Due, same answer: looked up once, nothing installed, due again a second later. */
    read_log();
    make_due(&rf);
    CHECK_EQ_INT(refresh_wait(&rf), 0);
    refresh_run(&rf);
    CHECK_EQ_INT(dns.lookups, 1);
    CHECK_EQ_INT(o.installs, 0);
    CHECK(strstr(read_log(), "host names looked up again: no new addresses"));
    wait = refresh_wait(&rf);
    CHECK(wait > 0 && wait <= 1000);

    /* A new address: the snapshot is built again with it and installed, said once; b keeps
     * the address it had (it was not due). */
    set_dns(&dns, "10.0.0.3", NULL);
    make_due(&rf);
    refresh_run(&rf);
    CHECK_EQ_INT(o.installs, 1);
    CHECK(server_at(o.running, 0, 0, "10.0.0.3", 80));
    CHECK(server_at(o.running, 1, 0, "10.0.0.1", 90));
    CHECK(strstr(read_log(), "[info] upstream a: dyn.test:80 now resolves to 10.0.0.3 (was "
                             "10.0.0.1)"));

    /* The name stops resolving: warned once, the servers kept; back: said once. */
    dns.error = EAI_AGAIN;
    make_due(&rf);
    refresh_run(&rf);
    CHECK(strstr(read_log(), "[warn] upstream a: cannot resolve dyn.test (Temporary failure in "
                             "name resolution); keeping 10.0.0.3"));
    make_due(&rf);
    refresh_run(&rf);
    CHECK(!strstr(read_log(), "cannot resolve"));
    dns.error = 0;
    make_due(&rf);
    refresh_run(&rf);
    CHECK(strstr(read_log(), "[info] upstream a: dyn.test resolves again"));
    CHECK_EQ_INT(o.installs, 1);
    CHECK(server_at(o.running, 0, 0, "10.0.0.3", 80));

    /* The owner cannot install (a listener that cannot be opened): the running snapshot stays
     * and the new address is not announced. */
    set_dns(&dns, "10.0.0.4", NULL);
    o.fail_install = true;
    make_due(&rf);
    refresh_run(&rf);
    CHECK_EQ_INT(o.installs, 1);
    CHECK(server_at(o.running, 0, 0, "10.0.0.3", 80));
    CHECK(!strstr(read_log(), "now resolves to"));
    o.fail_install = false;

    /* Too many addresses to build again: said with the problem, the running snapshot stays. */
    for (size_t i = 0; i < 300; i++) {
        static char ips[300][16];
        snprintf(ips[i], sizeof ips[i], "10.8.%zu.%zu", i / 100, i % 100);
        dns.ips[i] = ips[i];
    }
    dns.n = 300;
    make_due(&rf);
    refresh_run(&rf);
    CHECK_EQ_INT(o.installs, 1);
    read_log();
    CHECK(strstr(logged, "[error] host names resolve to new addresses, but the configuration "
                         "could not be built again; keeping the running one (1 problem):"));
    CHECK(strstr(logged, "[error] x.yaml:"));
    CHECK(strstr(logged, "an upstream has at most 256 servers"));

    /* After a reload to a configuration without intervals: nothing is ever due. */
    config_unref(o.running);
    set_dns(&dns, "10.0.0.1", NULL);
    o.running = load("listen: [{address: \"127.0.0.1:0\"}]\n" SITES
                     "upstreams: {a: {servers: [\"dyn.test:80\"], resolve_interval: 0}}\n",
                     &resolver);
    if (o.running) {
        refresh_reset(&rf, o.running);
        CHECK_EQ_INT(refresh_wait(&rf), -1);
        dns.lookups = 0;
        refresh_run(&rf);
        CHECK_EQ_INT(dns.lookups, 0);
    }
    refresh_stop(&rf);
    config_unref(o.running);
}

int main(void)
{
    struct logger lg = {0};
    int fds[2];

    if (pipe(fds) != 0)
        return 1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    log_rd = fds[0];
    atomic_init(&lg.err_fd, fds[1]);
    atomic_init(&lg.access_fd, -1);
    atomic_init(&lg.level, LOG_DEBUG);
    test_refresh(&lg);
    return check_done("refresh");
}
