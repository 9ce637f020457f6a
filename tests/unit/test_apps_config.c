/* Unit tests for `upstreams.NAME.app` (config/config_apps.c): defaults, every key, the problems
 * `gatehouse -t` reports with their positions, and the instances a provider gives becoming the
 * upstream's servers with their tokens. */
#include "check.h"
#include "config_check.h"
#include "config/config.h"
#include "config/config_apps.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *messages;

static int load_opts(const char *yaml, struct config **c, const struct config_load_opts *o)
{
    size_t len;
    FILE *f;
    int n;

    free(messages);
    f = open_memstream(&messages, &len);
    n = config_load_string_with("x.yaml", yaml, strlen(yaml), o, c, f);
    fclose(f);
    return n;
}

static int load(const char *yaml, struct config **c)
{
    return load_opts(yaml, c, NULL);
}

static void expect_errors(int line, const char *yaml, const char *expected)
{
    struct config *c = (struct config *)1;
    int n = load(yaml, &c);

    check_config_errors(__FILE__, line, c, n, messages, expected);
}
#define EXPECT_ERRORS(yaml, expected) expect_errors(__LINE__, yaml, expected)

/* Loads `yaml`, which must load cleanly: the snapshot, or NULL after saying why. */
static struct config *load_ok(const char *yaml)
{
    struct config *c = NULL;

    CHECK_EQ_INT(load(yaml, &c), 0);
    if (!c)
        fprintf(stderr, "%s", messages);
    return c;
}

#define HEAD                                                                                       \
    "listen: [{address: \"127.0.0.1:0\"}]\n"                                                       \
    "sites: [{hosts: [\"*\"], routes: [{path: /, proxy: blog}]}]\n"                                \
    "upstreams:\n"                                                                                 \
    "  blog:\n"

static void test_defaults(void)
{
    struct config *c = load_ok(HEAD "    app:\n"
                                    "      command: [\"/bin/sh\", \"-c\", \"exit 0\"]\n");

    if (!c)
        return;
    const struct cfg_upstream *u = &c->upstreams[0];
    const struct cfg_app *a = u->app;
    CHECK(a != NULL);
    CHECK_EQ_INT(u->nservers, 0); /* no supervisor: no instance serves */
    CHECK_EQ_INT(a->ncommand, 3);
    CHECK(!strcmp(a->command[0], "/bin/sh") && !strcmp(a->command[2], "exit 0"));
    CHECK(a->command[3] == NULL);
    CHECK(!strcmp(a->exe, "/bin/sh"));
    CHECK(a->cwd == NULL && a->user == NULL && a->group == NULL && a->nenv == 0);
    CHECK_EQ_INT(a->instances, 1);
    CHECK_EQ_INT(a->listen, CFG_APP_TCP);
    CHECK(!strcmp(a->port_env, "PORT"));
    CHECK_EQ_INT(a->start, CFG_APP_ON_DEMAND);
    CHECK(a->ready_path == NULL);
    CHECK_EQ_INT(a->ready_timeout, 30000);
    CHECK_EQ_INT(a->idle_stop, 0);
    CHECK_EQ_INT(a->stop_timeout, 10000);
    CHECK_EQ_INT(a->backoff, 1000);
    CHECK_EQ_INT(a->max_backoff, 60000);
    CHECK_EQ_INT(a->rapid_count, 5);
    CHECK_EQ_INT(a->rapid_within, 300000);
    CHECK_EQ_INT(a->logs, CFG_APP_LOGS_STDERR);
    CHECK_EQ_INT(a->nrestart_on, 0);
    CHECK(a->link == NULL && a->tokens == NULL);
    /* Every other upstream key keeps its default. */
    CHECK_EQ_INT(u->retries, 2);
    CHECK_EQ_INT(u->connect_timeout, 5000);
    config_unref(c);
}

static void test_every_key(void)
{
    struct config *c =
        load_ok(HEAD "    retries: 3\n"
                     "    queue: {size: 50, timeout: 2s}\n"
                     "    app:\n"
                     "      command: [sh, app.sh]\n"
                     "      cwd: /tmp\n"
                     "      env: {ASPNETCORE_ENVIRONMENT: Production, EMPTY: \"\"}\n"
                     "      user: root\n"
                     "      group: root\n"
                     "      instances: 2\n"
                     "      listen: unix\n"
                     "      port_env: HTTP_PORT\n"
                     "      start: on_demand\n"
                     "      ready: {path: /health, timeout: 5s}\n"
                     "      idle_stop: 30m\n"
                     "      stop_timeout: 3s\n"
                     "      restart: {backoff: 200ms, max_backoff: 10s, rapid_fail: {count: 2, "
                     "within: 1m}}\n"
                     "      logs: app.log\n"
                     "      restart_on: [/srv/blog/Blog.dll, rel.dll]\n");

    if (!c)
        return;
    const struct cfg_upstream *u = &c->upstreams[0];
    const struct cfg_app *a = u->app;
    CHECK_EQ_INT(u->retries, 3);
    CHECK_EQ_INT(u->queue_size, 50);
    CHECK(!strcmp(a->exe, "/bin/sh") || !strcmp(a->exe, "/usr/bin/sh")); /* found in PATH */
    CHECK(!strcmp(a->cwd, "/tmp"));
    CHECK_EQ_INT(a->nenv, 2);
    CHECK(!strcmp(a->env[0].name, "ASPNETCORE_ENVIRONMENT") &&
          !strcmp(a->env[0].value, "Production"));
    CHECK(!strcmp(a->env[1].name, "EMPTY") && !strcmp(a->env[1].value, ""));
    CHECK(!strcmp(a->user, "root") && a->uid == 0 && a->gid == 0);
    CHECK_EQ_INT(a->instances, 2);
    CHECK_EQ_INT(a->listen, CFG_APP_UNIX);
    CHECK(!strcmp(a->port_env, "HTTP_PORT"));
    CHECK(!strcmp(a->ready_path, "/health"));
    CHECK_EQ_INT(a->ready_timeout, 5000);
    CHECK_EQ_INT(a->idle_stop, 1800000);
    CHECK_EQ_INT(a->stop_timeout, 3000);
    CHECK_EQ_INT(a->backoff, 200);
    CHECK_EQ_INT(a->max_backoff, 10000);
    CHECK_EQ_INT(a->rapid_count, 2);
    CHECK_EQ_INT(a->rapid_within, 60000);
    CHECK_EQ_INT(a->logs, CFG_APP_LOGS_FILE);
    CHECK(!strcmp(a->logs_file, "app.log")); /* x.yaml has no directory */
    CHECK_EQ_INT(a->nrestart_on, 2);
    CHECK(!strcmp(a->restart_on[0], "/srv/blog/Blog.dll") && !strcmp(a->restart_on[1], "rel.dll"));
    config_unref(c);
}

static void test_problems(void)
{
    char dir[] = "/tmp/gh-apps-unit-XXXXXX", file[64], yaml[2048];

    CHECK(mkdtemp(dir) != NULL);
    snprintf(file, sizeof file, "%s/notexec", dir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    chmod(file, 0644);

    EXPECT_ERRORS(HEAD "    app:\n"
                       "      command: [/nonexistent/dotnet, Blog.dll]\n",
                  "x.yaml:6:17: 'command' /nonexistent/dotnet: No such file or directory\n");
    EXPECT_ERRORS(HEAD "    app:\n"
                       "      command: [no-such-program-anywhere]\n",
                  "x.yaml:6:17: 'command' no-such-program-anywhere: not found in PATH\n");
    if (geteuid() != 0) { /* root may execute anything: access(X_OK) says yes */
        snprintf(yaml, sizeof yaml, HEAD "    app:\n      command: [\"%s\"]\n", file);
        char want[256];
        snprintf(want, sizeof want, "x.yaml:6:17: 'command' %s is not an executable file\n", file);
        EXPECT_ERRORS(yaml, want);
    }
    snprintf(yaml, sizeof yaml, HEAD "    app:\n      command: [\"%s\"]\n", dir);
    {
        char want[256];
        snprintf(want, sizeof want, "x.yaml:6:17: 'command' %s is not an executable file\n", dir);
        EXPECT_ERRORS(yaml, want);
    }
    EXPECT_ERRORS(HEAD "    app:\n"
                       "      command: [/bin/sh]\n"
                       "      cwd: /nonexistent/dir\n"
                       "      user: no-such-user-here\n"
                       "      group: no-such-group-here\n",
                  "x.yaml:7:12: 'cwd' /nonexistent/dir: No such file or directory\n"
                  "x.yaml:8:13: no such user 'no-such-user-here'\n"
                  "x.yaml:9:14: no such group 'no-such-group-here'\n");
    EXPECT_ERRORS(HEAD "    servers: [\"127.0.0.1:1\"]\n"
                       "    app: {command: [/bin/sh]}\n",
                  "x.yaml:6:10: an upstream has either 'servers' or 'app', not both\n");
    EXPECT_ERRORS(HEAD "    app: {}\n", "x.yaml:5:10: missing required key 'command' in 'app' of "
                                        "upstream 'blog'\n");
    EXPECT_ERRORS(HEAD "    keepalive: 1\n",
                  "x.yaml:5:5: missing required key 'servers' in upstream 'blog'\n");
    EXPECT_ERRORS(HEAD "    app:\n"
                       "      command: []\n"
                       "      instances: 0\n"
                       "      listen: pipe\n"
                       "      start: later\n"
                       "      ready: {path: health}\n"
                       "      env: {\"1BAD\": x}\n"
                       "      port_env: \"NO SPACE\"\n"
                       "      restart: {backoff: 2m, max_backoff: 1m}\n"
                       "      bogus: 1\n",
                  "x.yaml:6:16: 'command' must not be empty\n"
                  "x.yaml:7:18: 'instances' must be an integer 1..64\n"
                  "x.yaml:8:15: 'listen' must be one of tcp, unix\n"
                  "x.yaml:9:14: 'start' must be one of on_demand, always\n"
                  "x.yaml:10:21: 'path' of 'ready' must start with '/'\n"
                  "x.yaml:11:13: bad variable name '1BAD' in 'env' (letters, digits and '_')\n"
                  "x.yaml:12:17: 'port_env' must be a variable name (letters, digits and '_')\n"
                  "x.yaml:13:16: 'max_backoff' must not be less than 'backoff'\n"
                  "x.yaml:14:7: unknown key 'bogus' in 'app' of upstream 'blog'\n");
    EXPECT_ERRORS(HEAD "    app:\n"
                       "      command: [/bin/sh]\n"
                       "      start: always\n"
                       "      idle_stop: 5m\n",
                  "x.yaml:8:18: 'idle_stop' is for 'start: on_demand' only\n");
    unlink(file);
    rmdir(dir);
}

/* A provider that says two instances serve "blog". */
static struct app_link the_link = {.name = "blog", .wake_fd = -1};
static int asked;

static size_t two_instances(void *ctx, const char *upstream, struct cfg_app_instance *out,
                            size_t max, struct app_link **link)
{
    (void)ctx;
    asked++;
    *link = &the_link;
    if (strcmp(upstream, "blog") != 0 || max < 2)
        return 0;
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out[i].sa;
        memset(&out[i], 0, sizeof out[i]);
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)(40000 + i));
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        out[i].len = sizeof *in;
        snprintf(out[i].text, sizeof out[i].text, "blog[%d]#%d@127.0.0.1:%d", i, i + 1, 40000 + i);
        snprintf(out[i].host, sizeof out[i].host, "127.0.0.1:%d", 40000 + i);
        snprintf(out[i].token, sizeof out[i].token, "%032d", i + 7);
    }
    return 2;
}

static void test_provider(void)
{
    const struct cfg_app_provider prov = {.instances = two_instances};
    const struct config_load_opts opts = {.apps = &prov};
    struct config *c = NULL;
    int n = load_opts(HEAD "    app: {command: [/bin/sh], instances: 2}\n"
                           "  other:\n"
                           "    servers: [\"127.0.0.1:9\"]\n",
                      &c, &opts);

    CHECK_EQ_INT(n, 0);
    if (!c)
        return;
    CHECK_EQ_INT(asked, 1);  /* only upstreams with `app` ask */
    CHECK(c->apps == &prov); /* kept for building again */
    const struct cfg_upstream *u = &c->upstreams[0];
    CHECK_EQ_INT(u->nservers, 2);
    CHECK(u->app->link == &the_link);
    CHECK(!strcmp(u->servers[1].text, "blog[1]#2@127.0.0.1:40001"));
    CHECK(!strcmp(u->servers[1].host, "127.0.0.1:40001"));
    CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&u->servers[0].sa)->sin_port), 40000);
    CHECK(!strcmp(u->app->tokens[0], "00000000000000000000000000000007"));
    CHECK_EQ_INT(u->policies[0].weight, 1);
    config_unref(c);
}

int main(void)
{
    test_defaults();
    test_every_key();
    test_problems();
    test_provider();
    free(messages);
    return check_done("apps_config");
}
