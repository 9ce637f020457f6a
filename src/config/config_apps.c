/* The `app` map of an upstream: the command Gatehouse runs, how, and how it watches it. The
 * things a deploy gets wrong (a command that is not there or not executable, a missing cwd, a
 * user or group that does not exist) are problems of the load, so `gatehouse -t` and a reload
 * say so with the position. The instances serving when the snapshot is built become the
 * upstream's servers (config_apps.h). */
#include "config/config_apps.h"
#include "config/config_walk.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const listen_names[] = {"tcp", "unix", NULL};
static const char *const start_names[] = {"on_demand", "always", NULL};

static bool env_name_ok(const char *s, size_t len)
{
    if (!len || len > 128 ||
        !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* command: ["/usr/bin/dotnet", "Blog.dll"]: a non-empty list of strings. */
static void conv_command(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base)
{
    struct cfg_app *a = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list)
        return;
    if (!(a->command = cfg_alloc(ld, (list->nitems + 1) * sizeof *a->command)))
        return;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *it = list->items[i];
        const char *s = cfg_text(ld, f->key, it, "a list of strings");
        if (!s)
            return;
        if (i == 0 && !*s) {
            cfg_report(ld, it, "the program of 'command' must not be empty");
            return;
        }
        a->command[i] = cfg_strdup(ld, s, it->len);
    }
    a->ncommand = list->nitems;
}

/* env: { NAME: value, ... } */
static void conv_env(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_app *a = base;
    size_t n = val->nitems / 2;

    if (!cfg_want(ld, "'env'", val, YNODE_MAP) || !n)
        return;
    if (!(a->env = cfg_alloc(ld, n * sizeof *a->env)))
        return;
    for (size_t i = 0; i < n; i++) {
        const struct ynode *k = val->items[2 * i], *v = val->items[2 * i + 1];
        const char *name = cfg_text(ld, f->key, k, "a map of variable names to strings");
        const char *value = cfg_text(ld, f->key, v, "a map of variable names to strings");
        if (!name || !value)
            continue;
        if (!env_name_ok(name, k->len)) {
            cfg_report(ld, k, "bad variable name '%.64s' in 'env' (letters, digits and '_')", name);
            continue;
        }
        a->env[a->nenv].name = cfg_strdup(ld, name, k->len);
        a->env[a->nenv++].value = cfg_strdup(ld, v->is_null ? "" : value, v->is_null ? 0 : v->len);
    }
}

static void conv_env_name(struct load *ld, const struct field *f, const struct ynode *val,
                          void *base)
{
    const char *s = cfg_text(ld, f->key, val, "a variable name");

    if (!s)
        return;
    if (!env_name_ok(s, val->len)) {
        cfg_report(ld, val, "'%s' must be a variable name (letters, digits and '_')", f->key);
        return;
    }
    *CFG_AT(base, f, char *) = cfg_strdup(ld, s, val->len);
}

static void conv_user(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_app *a = base;
    const struct passwd *pw;

    cfg_conv_text(ld, f, val, base);
    if (!a->user)
        return;
    errno = 0;
    if (!(pw = getpwnam(a->user))) {
        cfg_report(ld, val, "no such user '%.64s'", a->user);
        return;
    }
    a->uid = pw->pw_uid;
    if (!a->group)
        a->gid = pw->pw_gid;
}

static void conv_group(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_app *a = base;
    const struct group *gr;

    cfg_conv_text(ld, f, val, base);
    if (!a->group)
        return;
    if (!(gr = getgrnam(a->group))) {
        cfg_report(ld, val, "no such group '%.64s'", a->group);
        return;
    }
    a->gid = gr->gr_gid;
}

static void conv_dir(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    char *dir;
    struct stat st;

    cfg_conv_path(ld, f, val, base);
    if (!(dir = *CFG_AT(base, f, char *)))
        return;
    if (stat(dir, &st) < 0)
        cfg_report(ld, val, "'%s' %.200s: %s", f->key, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        cfg_report(ld, val, "'%s' %.200s is not a directory", f->key, dir);
}

/* ready: { path: /health, timeout: 30s } */
static const struct field ready_fields[] = {
    {FIELD("path", cfg_conv_text, struct cfg_app, ready_path, NULL), .flags = F_NOSPACE},
    {FIELD("timeout", cfg_conv_duration, struct cfg_app, ready_timeout, "30s"), .min = 100},
};
static const struct fields ready_table = FIELDS(ready_fields);

static void conv_ready(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_app *a = base;

    (void)f;
    if (!cfg_want(ld, "'ready'", val, YNODE_MAP))
        return;
    cfg_walk(ld, val, val, &ready_table, base, "in 'ready'");
    if (a->ready_path && a->ready_path[0] != '/')
        cfg_report(ld, cfg_get(val, "path"), "'path' of 'ready' must start with '/'");
}

/* restart: { backoff, max_backoff, rapid_fail: { count, within } } */
static const struct field rapid_fields[] = {
    {FIELD("count", cfg_conv_u32, struct cfg_app, rapid_count, "5"), .min = 1, .max = 1000},
    {FIELD("within", cfg_conv_duration, struct cfg_app, rapid_within, "5m"), .min = 1},
};
static const struct fields rapid_table = FIELDS(rapid_fields);

static void conv_rapid(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    (void)f;
    if (cfg_want(ld, "'rapid_fail'", val, YNODE_MAP))
        cfg_walk(ld, val, val, &rapid_table, base, "in 'rapid_fail'");
}

static const struct field restart_fields[] = {
    {FIELD("backoff", cfg_conv_duration, struct cfg_app, backoff, "1s"), .min = 10},
    {FIELD("max_backoff", cfg_conv_duration, struct cfg_app, max_backoff, "1m"), .min = 10},
    {FIELD("rapid_fail", conv_rapid, struct cfg_app, rapid_count, NULL)},
};
static const struct fields restart_table = FIELDS(restart_fields);

static void conv_restart(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base)
{
    struct cfg_app *a = base;

    (void)f;
    if (!cfg_want(ld, "'restart'", val, YNODE_MAP))
        return;
    cfg_walk(ld, val, val, &restart_table, base, "in 'restart'");
    if (a->max_backoff < a->backoff)
        cfg_report(ld, val, "'max_backoff' must not be less than 'backoff'");
}

/* logs: stderr (into the error log) | off | a file the output is appended to. */
static void conv_logs(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_app *a = base;
    const char *s = cfg_text(ld, f->key, val, "stderr, off or a file path");

    if (!s)
        return;
    if (!strcmp(s, "stderr")) {
        a->logs = CFG_APP_LOGS_STDERR;
    } else if (!strcmp(s, "off")) {
        a->logs = CFG_APP_LOGS_OFF;
    } else {
        const struct field as_path = {.key = f->key, .offset = offsetof(struct cfg_app, logs_file)};
        a->logs = CFG_APP_LOGS_FILE;
        cfg_conv_path(ld, &as_path, val, base);
    }
}

static void conv_restart_on(struct load *ld, const struct field *f, const struct ynode *val,
                            void *base)
{
    struct cfg_app *a = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(a->restart_on = cfg_alloc(ld, list->nitems * sizeof *a->restart_on)))
        return;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct field one = {.key = f->key, .offset = i * sizeof(char *)};
        cfg_conv_path(ld, &one, list->items[i], a->restart_on);
    }
    a->nrestart_on = list->nitems;
}

static const struct field app_fields[] = {
    {FIELD("command", conv_command, struct cfg_app, command, NULL), .flags = F_REQUIRED},
    {FIELD("cwd", conv_dir, struct cfg_app, cwd, NULL)},
    {FIELD("env", conv_env, struct cfg_app, env, NULL)},
    {FIELD("group", conv_group, struct cfg_app, group, NULL), .flags = F_NOSPACE},
    {FIELD("user", conv_user, struct cfg_app, user, NULL), .flags = F_NOSPACE},
    {FIELD("instances", cfg_conv_u32, struct cfg_app, instances, "1"), .min = 1,
     .max = CFG_APP_MAX_INSTANCES},
    {FIELD("listen", cfg_conv_enum, struct cfg_app, listen, "tcp"), .names = listen_names},
    {FIELD("port_env", conv_env_name, struct cfg_app, port_env, "PORT")},
    {FIELD("start", cfg_conv_enum, struct cfg_app, start, "on_demand"), .names = start_names},
    {FIELD("ready", conv_ready, struct cfg_app, ready_timeout, NULL)},
    {FIELD("idle_stop", cfg_conv_duration, struct cfg_app, idle_stop, "0s")},
    {FIELD("stop_timeout", cfg_conv_duration, struct cfg_app, stop_timeout, "10s"), .min = 1},
    {FIELD("restart", conv_restart, struct cfg_app, backoff, NULL)},
    {FIELD("logs", conv_logs, struct cfg_app, logs, "stderr")},
    {FIELD("restart_on", conv_restart_on, struct cfg_app, restart_on, NULL)},
};
static const struct fields app_table = FIELDS(app_fields);

/* A regular file we may execute. 0, or an errno. */
static int executable(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno;
    if (!S_ISREG(st.st_mode))
        return EISDIR;
    return access(path, X_OK) < 0 ? errno : 0;
}

/* The file command[0] names: a path (relative to cwd, else to the configuration's directory),
 * or a name looked up in PATH. Reports when there is none we may execute. */
static void find_exe(struct load *ld, const struct ynode *at, struct cfg_app *a)
{
    const char *prog = a->command[0];
    char path[PATH_MAX];
    int err = ENOENT;

    if (strchr(prog, '/')) {
        const char *slash = strrchr(ld->name, '/');
        if (prog[0] == '/')
            snprintf(path, sizeof path, "%s", prog);
        else if (a->cwd)
            snprintf(path, sizeof path, "%s/%s", a->cwd, prog);
        else
            snprintf(path, sizeof path, "%.*s%s", slash ? (int)(slash - ld->name) + 1 : 0, ld->name,
                     prog);
        err = executable(path);
    } else {
        const char *env = getenv("PATH");
        char dirs[4096];
        snprintf(dirs, sizeof dirs, "%s", env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
        for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d && err;
             d = strtok_r(NULL, ":", &save)) {
            snprintf(path, sizeof path, "%s/%s", d, prog);
            int e = executable(path);
            err = e == ENOENT || e == ENOTDIR ? (err == ENOENT ? ENOENT : err) : e;
            if (e == EACCES)
                err = EACCES;
        }
    }
    if (err == EACCES || err == EISDIR)
        cfg_report(ld, at, "'command' %.200s is not an executable file", prog);
    else if (err)
        cfg_report(ld, at, "'command' %.200s: %s", prog,
                   strchr(prog, '/') ? strerror(err) : "not found in PATH");
    else
        a->exe = cfg_strdup(ld, path, strlen(path));
}

/* The instances serving now, as the upstream's servers (each with its token). */
static void app_servers(struct load *ld, struct cfg_upstream *u, struct cfg_app *a)
{
    const struct cfg_app_provider *p = ld->opts->apps;
    struct cfg_app_instance *inst;
    size_t n;

    if (!p || !u->name)
        return;
    if (!(inst = cfg_scratch(ld, 2 * CFG_APP_MAX_INSTANCES * sizeof *inst)))
        return;
    n = p->instances(p->ctx, u->name, inst, 2 * CFG_APP_MAX_INSTANCES, &a->link);
    if (!n)
        return;
    if (!(u->servers = cfg_alloc(ld, n * sizeof *u->servers)) ||
        !(u->policies = cfg_alloc(ld, n * sizeof *u->policies)) ||
        !(a->tokens = cfg_alloc(ld, n * sizeof *a->tokens)))
        return;
    for (size_t i = 0; i < n; i++) {
        struct cfg_addr *s = &u->servers[i];
        s->sa = inst[i].sa;
        s->len = inst[i].len;
        s->text = cfg_strdup(ld, inst[i].text, strlen(inst[i].text));
        s->host = cfg_strdup(ld, inst[i].host, strlen(inst[i].host));
        a->tokens[i] = cfg_strdup(ld, inst[i].token, strlen(inst[i].token));
        u->policies[i].weight = 1;
    }
    u->nservers = n;
}

void cfg_conv_app(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_upstream *u = base;
    struct cfg_app *a;
    char where[100];

    (void)f;
    if (!cfg_want(ld, "'app'", val, YNODE_MAP) || !(a = cfg_alloc(ld, sizeof *a)))
        return;
    snprintf(where, sizeof where, "in 'app' of upstream '%.64s'", u->name ? u->name : "?");
    /* Defaults of the nested maps, whether or not they are written. */
    cfg_walk(ld, NULL, val, &ready_table, a, where);
    cfg_walk(ld, NULL, val, &restart_table, a, where);
    cfg_walk(ld, NULL, val, &rapid_table, a, where);
    cfg_walk(ld, val, val, &app_table, a, where);
    if (a->idle_stop && a->start != CFG_APP_ON_DEMAND)
        cfg_report(ld, cfg_get(val, "idle_stop"), "'idle_stop' is for 'start: on_demand' only");
    if (a->ncommand) /* also when other keys are wrong: -t says everything at once */
        find_exe(ld, cfg_get(val, "command")->items[0], a);
    u->app = a;
    app_servers(ld, u, a);
}

void cfg_check_servers_or_app(struct load *ld, const struct ynode *val, const struct ynode *key,
                              const char *where)
{
    const struct ynode *servers, *app;

    if (val->is_null || val->kind != YNODE_MAP) {
        if (val->is_null) /* `shop:` alone: as for a map without either */
            cfg_report(ld, key, "missing required key 'servers' %s", where);
        return;
    }
    servers = cfg_get(val, "servers");
    app = cfg_get(val, "app");
    if (servers && app)
        cfg_report(ld, app, "an upstream has either 'servers' or 'app', not both");
    else if (!servers && !app)
        cfg_report(ld, val, "missing required key 'servers' %s", where);
}
