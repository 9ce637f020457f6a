/* Starting an instance (fork + exec: posix_spawn cannot set PR_SET_PDEATHSIG) and probing it. */
#include "app/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 300

/* ---- environment ---------------------------------------------------------------------------- */

struct envb {
    char **v;
    size_t n, cap;
};

static bool env_put(struct envb *e, const char *name, const char *value)
{
    size_t nlen = strlen(name);
    char *item;

    for (size_t i = 0; i < e->n; i++) /* ours and the app's win over inherited values */
        if (!strncmp(e->v[i], name, nlen) && e->v[i][nlen] == '=') {
            free(e->v[i]);
            e->v[i] = e->v[--e->n];
            break;
        }
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        char **v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return false;
        e->v = v;
        e->cap = cap;
    }
    if (asprintf(&item, "%s=%s", name, value) < 0)
        return false;
    e->v[e->n++] = item;
    e->v[e->n] = NULL;
    return true;
}

static void env_free(struct envb *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

/* Gatehouse's environment, then the app's `env`, then what tells it where to listen. */
static bool env_build(struct envb *e, const struct app_spawn_req *r)
{
    const struct cfg_app *a = r->a;
    char val[200];
    bool ok = true;

    for (char **p = environ; ok && p && *p; p++) {
        char *eq = strchr(*p, '=');
        char name[256];
        if (!eq || (size_t)(eq - *p) >= sizeof name)
            continue;
        memcpy(name, *p, (size_t)(eq - *p));
        name[eq - *p] = '\0';
        ok = env_put(e, name, eq + 1);
    }
    for (size_t i = 0; ok && i < a->nenv; i++)
        ok = env_put(e, a->env[i].name, a->env[i].value);
    if (r->sock_path) {
        snprintf(val, sizeof val, "http://unix:%s", r->sock_path);
        ok = ok && env_put(e, "GATEHOUSE_SOCKET", r->sock_path) &&
             env_put(e, "ASPNETCORE_URLS", val);
    } else {
        snprintf(val, sizeof val, "%u", (unsigned)r->port);
        ok = ok && env_put(e, a->port_env, val);
        snprintf(val, sizeof val, "http://127.0.0.1:%u", (unsigned)r->port);
        ok = ok && env_put(e, "ASPNETCORE_URLS", val);
    }
    snprintf(val, sizeof val, "%d", r->index);
    return ok && env_put(e, "GATEHOUSE_APP_TOKEN", r->token) &&
           env_put(e, "GATEHOUSE_APP_NAME", r->name) && env_put(e, "GATEHOUSE_APP_INSTANCE", val);
}

/* ---- the child ------------------------------------------------------------------------------- */

/* Between fork and exec only async-signal-safe calls: everything was prepared before. */
static void child_fail(const char *what)
{
    char msg[160];
    size_t n = 0;
    const char *parts[] = {"gatehouse: cannot start the app: ", what, ": ", strerror(errno), "\n"};

    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        for (const char *s = parts[i]; *s && n < sizeof msg; s++)
            msg[n++] = *s;
    if (write(2, msg, n) < 0)
        _exit(127);
    _exit(127);
}

static void child_signals(void)
{
    sigset_t all;
    struct sigaction dfl = {.sa_handler = SIG_DFL};

    /* Gatehouse blocks HUP, TERM, INT and USR2 for its main thread and ignores PIPE: an exec
     * keeps a blocked mask and ignored signals, so an app would not hear SIGTERM. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static void child_ids(const struct cfg_app *a, bool as_root)
{
    if (!as_root || (!a->user && !a->group))
        return;
    if (setgroups(0, NULL) < 0)
        child_fail("setgroups");
    if (setgid(a->gid) < 0)
        child_fail("setgid");
    if (a->user && setuid(a->uid) < 0)
        child_fail("setuid");
}

static void child_run(const struct app_spawn_req *r, char **envp, int null_fd, pid_t parent,
                      bool as_root)
{
    const struct cfg_app *a = r->a;

    setpgid(0, 0); /* its own group: stopping it stops what it started */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        child_fail("PR_SET_PDEATHSIG");
    if (getppid() != parent) /* Gatehouse died before the line above */
        _exit(1);
    child_signals();
    if (dup2(null_fd, 0) < 0 || dup2(r->out_fd, 1) < 0 || dup2(r->out_fd, 2) < 0)
        child_fail("dup2");
    /* Everything of ours is O_CLOEXEC; this makes sure of it for what a library opened. */
    close_range(3, ~0U, 0);
    if (a->cwd && chdir(a->cwd) < 0)
        child_fail(a->cwd);
    child_ids(a, as_root);
    execve(a->exe, a->command, envp);
    child_fail(a->exe);
}

pid_t app_spawn(const struct app_spawn_req *r, char *err, size_t errlen)
{
    struct envb e = {0};
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid(), pid = -1;

    if (null_fd < 0) {
        snprintf(err, errlen, "/dev/null: %s", strerror(errno));
        return -1;
    }
    if (!env_build(&e, r)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    pid = fork();
    if (pid == 0)
        child_run(r, e.v, null_fd, parent, geteuid() == 0);
    if (pid < 0)
        snprintf(err, errlen, "fork: %s", strerror(errno));
    else
        setpgid(pid, pid); /* also from here: no window in which a group kill misses it */
out:
    env_free(&e);
    close(null_fd);
    return pid;
}

/* ---- ports, tokens, readiness ---------------------------------------------------------------- */

uint16_t app_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint16_t port = 0;

    if (fd < 0)
        return 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int app_token(char out[APP_TOKEN_LEN + 1])
{
    unsigned char raw[APP_TOKEN_LEN / 2];

    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = PROBE_TIMEOUT_MS * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* "HTTP/1.x 2xx" or 3xx at the start of the answer. The rest is read to its end (we asked for
 * Connection: close), a few KiB at most: closing on unread bytes would reset the app's side. */
static bool good_status(int fd)
{
    char buf[64], rest[4096];
    size_t got = 0;
    ssize_t n;

    while (got < 12) {
        n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    for (int k = 0; k < 4 && recv(fd, rest, sizeof rest, 0) > 0; k++)
        ;
    return !strncmp(buf, "HTTP/1.", 7) && (buf[9] == '2' || buf[9] == '3');
}

bool app_probe(const struct sockaddr *sa, socklen_t len, const char *path, const char *token)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char req[512];
    bool ok = false;
    int n;

    if (fd < 0)
        return false;
    set_timeouts(fd); /* connect honours the send timeout */
    if (connect(fd, sa, len) < 0)
        goto out;
    if (!path) {
        ok = true;
        goto out;
    }
    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: gatehouse-app-ready\r\n"
                 "%s: %s\r\nConnection: close\r\n\r\n",
                 path, APP_TOKEN_HEADER, token);
    if (n > 0 && (size_t)n < sizeof req && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n)
        ok = good_status(fd);
out:
    close(fd);
    return ok;
}
