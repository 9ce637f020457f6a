/* The supervisor: one thread that runs every app's instances (app.h).
 *
 * Everything about processes happens on this thread: starts (so PR_SET_PDEATHSIG, which follows
 * the thread that forked, holds while Gatehouse runs), reaping, output, readiness probes,
 * restarts, stops. It wakes every TICK_MS, at once when an instance writes output, and when a
 * worker or the admin asks for something through an app_link (its eventfd). The only state
 * other threads touch is under `lock`: the list of apps (the loader adds links), each app's
 * published instances (what loads read), and a new snapshot handed over by apps_reconfigure. */
#include "app/app.h"
#include "app/spawn.h"
#include "proxy/upstate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100
#define DRAIN_GRACE_MS 300 /* workers adopt the snapshot without a draining instance by then */
#define STABLE_MS 10000    /* ready this long: the next crash restarts after `backoff` again */
#define TAIL_LINES 4       /* lines of output kept for the "never became ready" message */
#define LINE_CAP 1024      /* longer output lines are cut into pieces of this size */
#define KILL_WAIT_MS 5000  /* at exit, how long SIGKILLed processes are waited for */

enum inst_state { I_STARTING, I_READY, I_DRAINING, I_STOPPING };

struct inst {
    struct inst *next;
    struct app *app;
    int index;
    unsigned serial; /* per app, one per start: part of the server's name */
    bool pending;    /* a blue-green replacement not switched to yet */
    bool stop_sent;  /* we stopped it: its exit is not a crash */
    bool never_ready;
    pid_t pid;
    int out_fd;
    enum inst_state st;
    uint64_t started_ms, ready_ms, since_ms;
    uint32_t ready_timeout, stop_timeout;
    char ready_path[256];
    bool ready_by_path;
    struct cfg_app_instance pub;
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char line[LINE_CAP + 1];
    size_t line_len;
    char tail[TAIL_LINES][160];
    unsigned ntail;
    struct config *drain_cfg; /* while draining: the snapshot naming it, for its in-flight */
    atomic_uint *inflight, *tunnels;
};

struct app {
    struct app *next;
    struct app_link link;
    struct apps *sup;
    struct config *cfg;      /* holds `a` */
    const struct cfg_app *a; /* NULL: not in the running configuration */
    char *sig;               /* what a change of replaces the app */
    int64_t *mtimes;         /* of restart_on, when the running version started */
    unsigned serial;
    bool want_running; /* always, or started on demand and not idle-stopped */
    bool failed;       /* rapid-fail protection */
    struct inst *insts;
    /* A replacement under way: the version it starts. */
    struct config *next_cfg;
    const struct cfg_app *next_a;
    char *next_sig;
    int64_t *next_mtimes;
    bool replacing;
    uint64_t restart_at[CFG_APP_MAX_INSTANCES];
    unsigned fails[CFG_APP_MAX_INSTANCES];
    uint64_t *crash_ms; /* ring of the last rapid_count + 1 crashes */
    size_t ncrash, crash_cap, crash_next;
    char sockdir[PATH_MAX];
    /* Published: under sup->lock. */
    struct cfg_app_instance pub[2 * CFG_APP_MAX_INSTANCES];
    size_t npub;
};

struct apps {
    pthread_mutex_t lock;
    struct app *apps;
    struct cfg_app_provider provider;
    struct logger *log;
    const struct apps_ops *ops;
    void *owner;
    int wake_fd, ep;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    struct config *new_cfg; /* from apps_reconfigure, under lock */
    char dir[PATH_MAX];     /* the sockets' directory, "" until needed */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* the workers' clock (ev_clock_ms) */
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Time since `t`: 0 when t is later than the turn's `now` (set while the turn ran). */
static uint64_t since(uint64_t now, uint64_t t)
{
    return now > t ? now - t : 0;
}

/* ---- links and what loads see -------------------------------------------------------------- */

static struct app *app_find(struct apps *s, const char *name)
{
    for (struct app *p = s->apps; p; p = p->next)
        if (!strcmp(p->link.name, name))
            return p;
    return NULL;
}

/* Under lock. */
static struct app *app_get(struct apps *s, const char *name)
{
    struct app *p = app_find(s, name);

    if (p || strlen(name) >= sizeof p->link.name || !(p = calloc(1, sizeof *p)))
        return p;
    snprintf(p->link.name, sizeof p->link.name, "%s", name);
    p->link.wake_fd = s->wake_fd;
    atomic_store(&p->link.last_request_ms, now_ms());
    p->sup = s;
    p->next = s->apps;
    s->apps = p;
    return p;
}

static size_t provide(void *ctx, const char *upstream, struct cfg_app_instance *out, size_t max,
                      struct app_link **link)
{
    struct apps *s = ctx;
    size_t n = 0;

    pthread_mutex_lock(&s->lock);
    struct app *p = app_get(s, upstream);
    if (p) {
        n = p->npub < max ? p->npub : max;
        memcpy(out, p->pub, n * sizeof *out);
    }
    *link = p ? &p->link : NULL;
    pthread_mutex_unlock(&s->lock);
    return n;
}

struct apps *apps_new(void)
{
    struct apps *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->ep = -1;
    s->provider = (struct cfg_app_provider){.instances = provide, .ctx = s};
    return s;
}

const struct cfg_app_provider *apps_provider(struct apps *s)
{
    return s ? &s->provider : NULL;
}

/* The instances that serve: ready, of the running version. Publishes when they changed. */
static bool republish(struct app *p)
{
    struct cfg_app_instance now[2 * CFG_APP_MAX_INSTANCES] = {0};
    size_t n = 0;
    bool changed;
    unsigned ready = 0, running = 0;

    for (struct inst *i = p->insts; i; i = i->next) {
        running += i->pid > 0;
        if (i->st == I_READY && !i->pending && n < 2 * CFG_APP_MAX_INSTANCES) {
            now[n++] = i->pub;
            ready++;
        }
    }
    atomic_store(&p->link.ready, ready);
    atomic_store(&p->link.running, running);
    pthread_mutex_lock(&p->sup->lock);
    changed = n != p->npub || memcmp(now, p->pub, n * sizeof *now) != 0;
    if (changed) {
        memcpy(p->pub, now, n * sizeof *now);
        p->npub = n;
    }
    pthread_mutex_unlock(&p->sup->lock);
    return changed;
}

/* ---- describing an app's version ------------------------------------------------------------- */

/* What a change of replaces the app, as one string (fields apart by US, entries by RS: bytes a
 * configuration value cannot hold, as it is printable text). */
static char *signature(const struct cfg_app *a)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (!f)
        return NULL;
    fprintf(f, "%s", a->exe ? a->exe : "");
    for (size_t i = 0; i < a->ncommand; i++)
        fprintf(f, "\x1e%s", a->command[i]);
    for (size_t i = 0; i < a->nenv; i++)
        fprintf(f, "\x1f%s=%s", a->env[i].name, a->env[i].value);
    fprintf(f, "\x1d%s\x1d%s\x1d%s\x1d%d\x1d%s\x1d%u", a->cwd ? a->cwd : "", a->user ? a->user : "",
            a->group ? a->group : "", (int)a->listen, a->port_env, a->instances);
    fclose(f);
    return text;
}

static int64_t *mtimes(const struct cfg_app *a)
{
    int64_t *m = calloc(a->nrestart_on + 1, sizeof *m);
    struct stat st;

    for (size_t i = 0; m && i < a->nrestart_on; i++)
        if (stat(a->restart_on[i], &st) == 0)
            m[i] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return m;
}

/* ---- output ---------------------------------------------------------------------------------- */

static void keep_tail(struct inst *i, const char *line)
{
    snprintf(i->tail[i->ntail++ % TAIL_LINES], sizeof i->tail[0], "%.150s", line);
}

static void emit_line(struct inst *i)
{
    struct app *p = i->app;

    i->line[i->line_len] = '\0';
    for (size_t k = 0; k < i->line_len; k++) /* one log line per output line, nothing else */
        if ((unsigned char)i->line[k] < 0x20 || i->line[k] == 0x7f)
            i->line[k] = '?';
    keep_tail(i, i->line);
    log_msg(p->sup->log, LOG_INFO, "app %s[%d]: %s", p->link.name, i->index, i->line);
    i->line_len = 0;
}

static void close_output(struct inst *i)
{
    if (i->out_fd < 0)
        return;
    epoll_ctl(i->app->sup->ep, EPOLL_CTL_DEL, i->out_fd, NULL);
    close(i->out_fd);
    i->out_fd = -1;
    if (i->line_len)
        emit_line(i);
}

/* What is there now, never more than 64 KiB a turn: a chatty app cannot hold the thread. */
static void read_output(struct inst *i)
{
    char buf[4096];

    for (int turn = 0; turn < 16 && i->out_fd >= 0; turn++) {
        ssize_t n = read(i->out_fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            close_output(i);
            return;
        }
        if (n < 0)
            return;
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == '\n' || i->line_len == LINE_CAP) {
                emit_line(i);
                if (buf[k] == '\n')
                    continue;
            }
            if (buf[k] != '\r')
                i->line[i->line_len++] = buf[k];
        }
    }
}

static const char *tail_text(const struct inst *i, char *buf, size_t len)
{
    size_t used = 0;
    unsigned first = i->ntail > TAIL_LINES ? i->ntail - TAIL_LINES : 0;

    buf[0] = '\0';
    for (unsigned k = first; k < i->ntail && used < len; k++) {
        int w = snprintf(buf + used, len - used, "%s%s", k > first ? " | " : "",
                         i->tail[k % TAIL_LINES]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return i->ntail ? buf : "(no output)";
}

/* ---- starting -------------------------------------------------------------------------------- */

/* The app's socket directory, 0700, owned by its user when Gatehouse runs as root. */
static int sock_dir(struct app *p, const struct cfg_app *a)
{
    struct apps *s = p->sup;

    if (!s->dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(s->dir, sizeof s->dir, "%s/gatehouse-apps-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        /* 0711: an app's user may pass through to its own 0700 directory, and list nothing. */
        if (!mkdtemp(s->dir) || chmod(s->dir, 0711) < 0) {
            s->dir[0] = '\0';
            return -1;
        }
    }
    snprintf(p->sockdir, sizeof p->sockdir, "%.3000s/%.63s", s->dir, p->link.name);
    if (mkdir(p->sockdir, 0700) < 0 && errno != EEXIST)
        return -1;
    if (geteuid() == 0 && (a->user || a->group) && chown(p->sockdir, a->uid, a->gid) < 0)
        return -1;
    return 0;
}

/* Where the instance listens: a free loopback port, or a socket path. */
static int place(struct app *p, const struct cfg_app *a, struct inst *i, uint16_t *port)
{
    struct cfg_app_instance *pub = &i->pub;

    if (a->listen == CFG_APP_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&pub->sa;
        if (sock_dir(p, a) < 0)
            return -1;
        int n = snprintf(i->sock_path, sizeof i->sock_path, "%s/%d-%u.sock", p->sockdir, i->index,
                         i->serial);
        if (n < 0 || (size_t)n >= sizeof i->sock_path) {
            errno = ENAMETOOLONG;
            return -1;
        }
        unlink(i->sock_path);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, i->sock_path, (size_t)n + 1);
        pub->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
        snprintf(pub->text, sizeof pub->text, "%.40s[%d]#%u@unix:%.100s", p->link.name, i->index,
                 i->serial, i->sock_path);
        snprintf(pub->host, sizeof pub->host, "localhost");
        return 0;
    }
    /* The port is free when we look; the app binds it a moment later. Another process could
     * take it in between: the app then fails to listen and is restarted on another port. */
    struct sockaddr_in *in = (struct sockaddr_in *)&pub->sa;
    if (!(*port = app_free_port())) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    in->sin_family = AF_INET;
    in->sin_port = htons(*port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pub->len = sizeof *in;
    snprintf(pub->text, sizeof pub->text, "%s[%d]#%u@127.0.0.1:%u", p->link.name, i->index,
             i->serial, (unsigned)*port);
    snprintf(pub->host, sizeof pub->host, "127.0.0.1:%u", (unsigned)*port);
    return 0;
}

/* The child's stdout and stderr: a pipe we read, the app's log file, or /dev/null. */
static int output_fd(const struct cfg_app *a, int *ours)
{
    int pfd[2];

    *ours = -1;
    if (a->logs == CFG_APP_LOGS_OFF)
        return open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (a->logs == CFG_APP_LOGS_FILE)
        return open(a->logs_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    *ours = pfd[0];
    return pfd[1];
}

static void spawn_failed(struct app *p, struct inst *i, const char *why)
{
    log_msg(p->sup->log, LOG_ERROR, "app %s[%d]: cannot start: %s", p->link.name, i->index, why);
    snprintf(p->link.last_exit, sizeof p->link.last_exit, "cannot start: %.100s", why);
    free(i);
}

/* Starts instance `index` of version `a`; NULL when it could not be started (logged). */
static struct inst *start_inst(struct app *p, const struct cfg_app *a, int index, bool pending)
{
    struct inst *i = calloc(1, sizeof *i);
    uint16_t port = 0;
    char err[256];
    int child_out, ours;

    if (!i)
        return NULL;
    *i = (struct inst){.app = p,
                       .index = index,
                       .serial = ++p->serial,
                       .pending = pending,
                       .out_fd = -1,
                       .ready_timeout = a->ready_timeout,
                       .stop_timeout = a->stop_timeout,
                       .ready_by_path = a->ready_path != NULL};
    snprintf(i->ready_path, sizeof i->ready_path, "%s", a->ready_path ? a->ready_path : "/");
    if (app_token(i->pub.token) < 0 || place(p, a, i, &port) < 0) {
        spawn_failed(p, i, strerror(errno));
        return NULL;
    }
    if ((child_out = output_fd(a, &ours)) < 0) {
        spawn_failed(p, i, strerror(errno));
        return NULL;
    }
    struct app_spawn_req req = {.a = a,
                                .name = p->link.name,
                                .index = index,
                                .token = i->pub.token,
                                .port = port,
                                .sock_path = a->listen == CFG_APP_UNIX ? i->sock_path : NULL,
                                .out_fd = child_out};
    i->pid = app_spawn(&req, err, sizeof err);
    close(child_out);
    if (i->pid < 0) {
        if (ours >= 0)
            close(ours);
        spawn_failed(p, i, err);
        return NULL;
    }
    i->out_fd = ours;
    if (ours >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = i};
        epoll_ctl(p->sup->ep, EPOLL_CTL_ADD, ours, &ev);
    }
    i->started_ms = i->since_ms = now_ms();
    i->next = p->insts;
    p->insts = i;
    atomic_fetch_add(&p->link.starts, 1);
    log_msg(p->sup->log, LOG_INFO, "app %s[%d]: started pid %d (%s)%s", p->link.name, index,
            (int)i->pid, i->pub.host[0] == 'l' ? i->sock_path : i->pub.host,
            pending ? ", the new version" : "");
    return i;
}

/* ---- stopping -------------------------------------------------------------------------------- */

static void signal_group(struct inst *i, int sig)
{
    if (i->pid > 0 && kill(-i->pid, sig) < 0)
        kill(i->pid, sig);
}

static void term_inst(struct inst *i, uint64_t now)
{
    i->stop_sent = true;
    i->st = I_STOPPING;
    i->since_ms = now;
    signal_group(i, SIGTERM);
}

/* The in-flight counter of the instance in the running snapshot, which still names it. */
static void find_inflight(struct app *p, struct inst *i)
{
    struct config *c = p->sup->ops->running(p->sup->owner);

    for (size_t u = 0; c && u < c->nupstreams; u++) {
        const struct upstate *st = c->upstreams[u].state;
        if (!st || strcmp(c->upstreams[u].name, p->link.name) != 0)
            continue;
        for (size_t k = 0; k < c->upstreams[u].nservers; k++)
            if (!strcmp(c->upstreams[u].servers[k].text, i->pub.text)) {
                i->inflight = &st->servers[k]->inflight;
                i->tunnels = &st->servers[k]->tunnels;
                i->drain_cfg = c;
                return;
            }
    }
    if (c)
        config_unref(c);
}

/* Out of the serving set; SIGTERM once its requests in flight are done (drain_tick). */
static void drain_inst(struct inst *i, uint64_t now)
{
    if (i->st == I_STARTING) {
        term_inst(i, now);
        return;
    }
    i->st = I_DRAINING;
    i->since_ms = now;
    i->stop_sent = true;
    find_inflight(i->app, i);
}

static void drain_tick(struct inst *i, uint64_t now)
{
    uint64_t in = since(now, i->since_ms);

    if (in < DRAIN_GRACE_MS)
        return;
    /* Requests in flight, and WebSockets, get up to stop_timeout to finish. */
    if (i->inflight && (atomic_load(i->inflight) > 0 || atomic_load(i->tunnels) > 0) &&
        in < i->stop_timeout)
        return;
    term_inst(i, now);
}

/* ---- exits ---------------------------------------------------------------------------------- */

static void exit_text(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(buf, len, "ended (status %d)", status);
}

static void drop_next(struct app *p)
{
    if (p->next_cfg)
        config_unref(p->next_cfg);
    free(p->next_sig);
    free(p->next_mtimes);
    p->next_cfg = NULL;
    p->next_a = NULL;
    p->next_sig = NULL;
    p->next_mtimes = NULL;
    p->replacing = false;
}

/* The new version is stopped, the old one serves on: it failed (`why` says how), or it is not
 * wanted any more. */
static void abort_replace(struct app *p, const char *why, bool failed, uint64_t now)
{
    if (failed)
        log_msg(p->sup->log, LOG_ERROR,
                "app %s: the new version did not become ready (%s); the old one keeps serving",
                p->link.name, why);
    else
        log_msg(p->sup->log, LOG_INFO, "app %s: the new version being started is dropped (%s)",
                p->link.name, why);
    for (struct inst *i = p->insts; i; i = i->next)
        if (i->pending && i->pid > 0 && !i->stop_sent) {
            term_inst(i, now);
            signal_group(i, SIGKILL);
        }
    drop_next(p);
}

static bool rapid_fail(struct app *p, uint64_t now)
{
    const struct cfg_app *a = p->a;
    size_t cap = (size_t)a->rapid_count + 1, in = 0;

    if (p->crash_cap != cap) {
        free(p->crash_ms);
        p->crash_ms = calloc(cap, sizeof *p->crash_ms);
        p->crash_cap = p->crash_ms ? cap : 0;
        p->ncrash = p->crash_next = 0;
    }
    if (!p->crash_cap)
        return false;
    p->crash_ms[p->crash_next] = now;
    p->crash_next = (p->crash_next + 1) % p->crash_cap;
    p->ncrash += p->ncrash < p->crash_cap;
    for (size_t k = 0; k < p->ncrash; k++)
        in += now - p->crash_ms[k] <= a->rapid_within;
    return in > a->rapid_count;
}

static void fail_app(struct app *p, const char *last, uint64_t now)
{
    p->failed = true;
    p->want_running = false;
    log_msg(p->sup->log, LOG_ERROR,
            "app %s: more than %u crashes within %u s (the last %s): rapid-fail protection "
            "leaves it stopped; requests get 503 until a SIGHUP or POST /apps/%s/restart",
            p->link.name, p->a->rapid_count, p->a->rapid_within / 1000, last, p->link.name);
    for (struct inst *i = p->insts; i; i = i->next)
        if (i->pid > 0 && !i->stop_sent)
            term_inst(i, now);
}

static uint64_t backoff_ms(const struct cfg_app *a, unsigned fails)
{
    uint64_t d = a->backoff;

    for (unsigned k = 1; k < fails && d < a->max_backoff; k++)
        d *= 2;
    return d < a->max_backoff ? d : a->max_backoff;
}

static void crashed(struct app *p, struct inst *i, const char *how, uint64_t now)
{
    char tail[400];

    atomic_fetch_add(&p->link.crashes, 1);
    snprintf(p->link.last_exit, sizeof p->link.last_exit, "[%d] pid %d %.90s", i->index,
             (int)i->pid, how);
    if (i->pending) {
        abort_replace(p, how, true, now);
        return;
    }
    if (!p->a || !p->want_running) {
        log_msg(p->sup->log, LOG_WARN, "app %s[%d]: pid %d %s", p->link.name, i->index, (int)i->pid,
                how);
        return;
    }
    if (rapid_fail(p, now)) {
        log_msg(p->sup->log, LOG_ERROR, "app %s[%d]: pid %d %s; last output: %s", p->link.name,
                i->index, (int)i->pid, how, tail_text(i, tail, sizeof tail));
        fail_app(p, how, now);
        return;
    }
    uint64_t d = backoff_ms(p->a, ++p->fails[i->index]);
    p->restart_at[i->index] = now + d;
    log_msg(p->sup->log, LOG_ERROR, "app %s[%d]: pid %d %s; restarting in %llu ms", p->link.name,
            i->index, (int)i->pid, how, (unsigned long long)d);
}

static void inst_free(struct inst *i)
{
    close_output(i);
    if (i->sock_path[0])
        unlink(i->sock_path);
    if (i->drain_cfg)
        config_unref(i->drain_cfg);
    free(i);
}

/* Reaps what exited; true when an instance is gone. */
static bool reap(struct app *p, uint64_t now)
{
    bool any = false;

    for (struct inst **pp = &p->insts; *pp;) {
        struct inst *i = *pp;
        int status;
        char how[160];

        if (waitpid(i->pid, &status, WNOHANG) != i->pid) {
            pp = &i->next;
            continue;
        }
        *pp = i->next;
        any = true;
        read_output(i);
        exit_text(status, how, sizeof how);
        if (i->never_ready) {
            char tail[400];
            snprintf(how, sizeof how, "never became ready within %u ms", i->ready_timeout);
            log_msg(p->sup->log, LOG_ERROR, "app %s[%d]: %s; last output: %s", p->link.name,
                    i->index, how, tail_text(i, tail, sizeof tail));
        }
        if (i->stop_sent && !i->never_ready)
            log_msg(p->sup->log, LOG_INFO, "app %s[%d]: pid %d stopped (%s)", p->link.name,
                    i->index, (int)i->pid, how);
        else
            crashed(p, i, how, now);
        inst_free(i);
    }
    return any;
}

/* ---- versions ------------------------------------------------------------------------------ */

static void adopt(struct app *p, struct config *c, const struct cfg_app *a, char *sig, int64_t *m)
{
    config_ref(c);
    if (p->cfg)
        config_unref(p->cfg);
    free(p->sig);
    free(p->mtimes);
    p->cfg = c;
    p->a = a;
    p->sig = sig;
    p->mtimes = m;
}

static bool runs(const struct app *p)
{
    for (const struct inst *i = p->insts; i; i = i->next)
        if (!i->pending && (i->st == I_STARTING || i->st == I_READY))
            return true;
    return false;
}

/* New instances of version `a` start beside the old ones; the switch comes when all are
 * ready (replace_tick). An app that does not run takes the version at once. */
static void begin_replace(struct app *p, struct config *c, const struct cfg_app *a, char *sig,
                          int64_t *m, const char *why, uint64_t now)
{
    if (p->replacing)
        abort_replace(p, "a newer one replaces it", false, now);
    if (!runs(p)) {
        adopt(p, c, a, sig, m);
        return;
    }
    log_msg(p->sup->log, LOG_INFO, "app %s: %s: starting %u new instance%s beside the old",
            p->link.name, why, a->instances, a->instances == 1 ? "" : "s");
    config_ref(c);
    p->next_cfg = c;
    p->next_a = a;
    p->next_sig = sig;
    p->next_mtimes = m;
    p->replacing = true;
    for (uint32_t k = 0; k < a->instances; k++)
        if (!start_inst(p, a, (int)k, true)) {
            abort_replace(p, "an instance could not be started", true, now);
            return;
        }
}

static void switch_over(struct app *p, uint64_t now)
{
    for (struct inst *i = p->insts; i; i = i->next)
        if (!i->pending && (i->st == I_STARTING || i->st == I_READY))
            drain_inst(i, now);
    for (struct inst *i = p->insts; i; i = i->next)
        i->pending = false;
    adopt(p, p->next_cfg, p->next_a, p->next_sig, p->next_mtimes);
    config_unref(p->next_cfg);
    p->next_cfg = NULL;
    p->next_sig = NULL;
    p->next_mtimes = NULL;
    p->replacing = false;
    memset(p->fails, 0, sizeof p->fails);
    memset(p->restart_at, 0, sizeof p->restart_at);
    atomic_fetch_add(&p->link.replaced, 1);
    log_msg(p->sup->log, LOG_INFO,
            "app %s: the new version serves; the old instances finish their requests and stop",
            p->link.name);
}

static void replace_tick(struct app *p, uint64_t now)
{
    unsigned ready = 0;

    if (!p->replacing)
        return;
    for (struct inst *i = p->insts; i; i = i->next)
        ready += i->pending && i->st == I_READY;
    if (ready >= p->next_a->instances)
        switch_over(p, now);
}

/* ---- the turn -------------------------------------------------------------------------------- */

static void probe_tick(struct app *p, struct inst *i, uint64_t now)
{
    if (i->st != I_STARTING || i->stop_sent)
        return;
    if (app_probe((struct sockaddr *)&i->pub.sa, i->pub.len,
                  i->ready_by_path ? i->ready_path : NULL, i->pub.token)) {
        i->st = I_READY;
        i->ready_ms = i->since_ms = now;
        log_msg(p->sup->log, LOG_INFO, "app %s[%d]: ready after %llu ms", p->link.name, i->index,
                (unsigned long long)since(now, i->started_ms));
        return;
    }
    if (since(now, i->started_ms) >= i->ready_timeout) {
        i->never_ready = true;
        term_inst(i, now);
        signal_group(i, SIGKILL);
    }
}

static void inst_tick(struct app *p, struct inst *i, uint64_t now)
{
    switch (i->st) {
    case I_STARTING:
        probe_tick(p, i, now);
        break;
    case I_READY:
        if (since(now, i->ready_ms) > STABLE_MS && !i->pending)
            p->fails[i->index] = 0;
        break;
    case I_DRAINING:
        drain_tick(i, now);
        break;
    case I_STOPPING:
        if (since(now, i->since_ms) >= i->stop_timeout)
            signal_group(i, SIGKILL);
        break;
    }
}

/* Each instance of the running version that is missing (and due after a crash) starts. */
static void fill_tick(struct app *p, uint64_t now)
{
    bool have[CFG_APP_MAX_INSTANCES] = {false};

    if (!p->a || !p->want_running || p->failed)
        return;
    for (struct inst *i = p->insts; i; i = i->next)
        if (!i->pending && (i->st == I_STARTING || i->st == I_READY))
            have[i->index] = true;
    for (uint32_t k = 0; k < p->a->instances; k++)
        if (!have[k] && p->restart_at[k] <= now) {
            p->restart_at[k] = 0;
            if (!start_inst(p, p->a, (int)k, false))
                p->restart_at[k] = now + backoff_ms(p->a, ++p->fails[k]);
        }
}

static void idle_tick(struct app *p, uint64_t now)
{
    uint64_t last = atomic_load(&p->link.last_request_ms);

    if (!p->a || !p->a->idle_stop || !p->want_running || p->replacing ||
        atomic_load(&p->link.waiting) || atomic_load(&p->link.active) || now < last ||
        now - last < p->a->idle_stop)
        return;
    log_msg(p->sup->log, LOG_INFO, "app %s: no request for %u ms: stopping it", p->link.name,
            p->a->idle_stop);
    p->want_running = false;
    for (struct inst *i = p->insts; i; i = i->next)
        if (i->st == I_STARTING || i->st == I_READY)
            drain_inst(i, now);
}

static void requests_tick(struct app *p, uint64_t now)
{
    if (atomic_exchange(&p->link.restart, 0) && p->a) {
        if (p->failed || !runs(p)) {
            p->failed = false;
            p->ncrash = 0;
            p->want_running = true;
            memset(p->fails, 0, sizeof p->fails);
            memset(p->restart_at, 0, sizeof p->restart_at);
            log_msg(p->sup->log, LOG_INFO, "app %s: started by the admin", p->link.name);
        } else {
            begin_replace(p, p->cfg, p->a, signature(p->a), mtimes(p->a), "restart asked for", now);
        }
    }
    if (atomic_exchange(&p->link.demand, 0) && p->a && !p->failed && !p->want_running) {
        log_msg(p->sup->log, LOG_INFO, "app %s: started by a request", p->link.name);
        p->want_running = true;
        atomic_store(&p->link.last_request_ms, now);
    }
}

static void state_tick(struct app *p)
{
    int st = APP_IDLE;

    if (p->failed) {
        st = APP_FAILED;
    } else {
        for (struct inst *i = p->insts; i; i = i->next) {
            if (i->pending)
                continue;
            if (i->st == I_READY)
                st = APP_READY;
            else if (i->st == I_STARTING && st != APP_READY)
                st = APP_STARTING;
        }
        if (st == APP_IDLE && p->want_running)
            st = APP_STARTING;
    }
    atomic_store(&p->link.state, st);
}

static bool app_tick(struct app *p, uint64_t now)
{
    reap(p, now);
    requests_tick(p, now);
    for (struct inst *i = p->insts; i; i = i->next)
        inst_tick(p, i, now);
    replace_tick(p, now);
    idle_tick(p, now);
    fill_tick(p, now);
    state_tick(p);
    return republish(p);
}

/* ---- configuration --------------------------------------------------------------------------- */

static bool mtimes_differ(const int64_t *a, const int64_t *b, size_t n)
{
    return a && b && memcmp(a, b, n * sizeof *a) != 0;
}

static void apply_app(struct app *p, struct config *c, const struct cfg_app *a, uint64_t now)
{
    char *sig = signature(a);
    int64_t *m = mtimes(a);

    if (p->failed) {
        log_msg(p->sup->log, LOG_INFO, "app %s: started again by the reload", p->link.name);
        p->failed = false;
        p->ncrash = 0;
        memset(p->fails, 0, sizeof p->fails);
        memset(p->restart_at, 0, sizeof p->restart_at);
    }
    if (!p->a) {
        adopt(p, c, a, sig, m);
        p->want_running = a->start == CFG_APP_ALWAYS;
        return;
    }
    bool changed = !sig || !p->sig || strcmp(sig, p->sig) != 0;
    bool files = p->a->nrestart_on == a->nrestart_on && mtimes_differ(m, p->mtimes, a->nrestart_on);
    if (changed && p->replacing && sig && p->next_sig && !strcmp(sig, p->next_sig)) {
        free(sig); /* the version already being started: let it go on */
        free(m);
    } else if (changed || files) {
        begin_replace(p, c, a, sig, m,
                      changed ? "its command, environment or directory changed"
                              : "a restart_on file changed",
                      now);
    } else {
        adopt(p, c, a, sig, m); /* the same version: settings such as timeouts may be new */
        if (p->replacing)       /* a version started before, not this one */
            abort_replace(p, "the reload went back to the running version", false, now);
    }
    if (a->start == CFG_APP_ALWAYS)
        p->want_running = true;
}

static void apply_config(struct apps *s, struct config *c, uint64_t now)
{
    pthread_mutex_lock(&s->lock);
    for (size_t u = 0; u < c->nupstreams; u++)
        if (c->upstreams[u].app)
            app_get(s, c->upstreams[u].name);
    struct app *head = s->apps;
    pthread_mutex_unlock(&s->lock);
    for (struct app *p = head; p; p = p->next) {
        const struct cfg_app *a = NULL;
        for (size_t u = 0; u < c->nupstreams && !a; u++)
            if (c->upstreams[u].app && !strcmp(c->upstreams[u].name, p->link.name))
                a = c->upstreams[u].app;
        if (a) {
            apply_app(p, c, a, now);
            continue;
        }
        if (!p->a)
            continue;
        log_msg(s->log, LOG_INFO, "app %s: no longer configured: stopping it", p->link.name);
        if (p->replacing)
            abort_replace(p, "no longer configured", false, now);
        p->want_running = false;
        for (struct inst *i = p->insts; i; i = i->next)
            if (i->st == I_STARTING || i->st == I_READY)
                drain_inst(i, now);
        config_unref(p->cfg);
        p->cfg = NULL;
        p->a = NULL;
    }
}

/* ---- the thread ------------------------------------------------------------------------------ */

static void drain_wake(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) > 0)
        ;
}

static void shutdown_all(struct apps *s)
{
    uint64_t start = now_ms(), longest = 0;
    bool left = true;

    for (struct app *p = s->apps; p; p = p->next) {
        atomic_store(&p->link.state, APP_STOPPED);
        for (struct inst *i = p->insts; i; i = i->next) {
            if (!i->stop_sent)
                term_inst(i, start);
            longest = i->stop_timeout > longest ? i->stop_timeout : longest;
        }
    }
    while (left) {
        uint64_t now = now_ms();
        if (now - start >= longest + KILL_WAIT_MS) { /* stuck in the kernel (D state): go */
            log_msg(s->log, LOG_ERROR, "apps: processes left after SIGKILL; not waiting");
            break;
        }
        left = false;
        for (struct app *p = s->apps; p; p = p->next) {
            for (struct inst *i = p->insts; i; i = i->next) {
                read_output(i);
                if (now - start >= longest)
                    signal_group(i, SIGKILL);
            }
            reap(p, now);
            left |= p->insts != NULL;
        }
        if (left)
            usleep(20000);
    }
}

static void *run(void *arg)
{
    struct apps *s = arg;
    struct epoll_event evs[32];
    uint64_t last_turn = 0;

    for (;;) {
        uint64_t gone = since(now_ms(), last_turn);
        int n = epoll_wait(s->ep, evs, 32, gone >= TICK_MS ? 0 : (int)(TICK_MS - gone));
        uint64_t now = now_ms();
        bool publish = false, woken = false;

        for (int k = 0; k < n; k++) {
            if (!evs[k].data.ptr) {
                drain_wake(s->wake_fd);
                woken = true;
            } else {
                read_output(evs[k].data.ptr);
            }
        }
        if (atomic_load(&s->stopping))
            break;
        /* Output alone does not make a turn: an app that writes all the time would have us
         * probe and reap in a loop. */
        if (!woken && since(now, last_turn) < TICK_MS)
            continue;
        last_turn = now;
        pthread_mutex_lock(&s->lock);
        struct config *c = s->new_cfg;
        s->new_cfg = NULL;
        struct app *head = s->apps;
        pthread_mutex_unlock(&s->lock);
        if (c) {
            apply_config(s, c, now);
            config_unref(c);
            head = s->apps;
        }
        for (struct app *p = head; p; p = p->next)
            publish |= app_tick(p, now);
        if (publish)
            s->ops->publish(s->owner);
    }
    shutdown_all(s);
    return NULL;
}

int apps_start(struct apps *s, struct logger *lg, const struct apps_ops *ops, void *owner,
               struct config *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    sigset_t all, old;
    int rc;

    s->log = lg;
    s->ops = ops;
    s->owner = owner;
    if (s->wake_fd < 0 || (s->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0) {
        log_msg(lg, LOG_ERROR, "cannot start the app supervisor: %s", strerror(errno));
        return -1;
    }
    config_ref(c);
    s->new_cfg = c;
    /* The thread takes no signal: main's loop does. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&s->thread, NULL, run, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        log_msg(lg, LOG_ERROR, "cannot start the app supervisor: %s", strerror(rc));
        return -1;
    }
    s->started = true;
    return 0;
}

void apps_reconfigure(struct apps *s, struct config *c)
{
    if (!s || !s->started)
        return;
    config_ref(c);
    pthread_mutex_lock(&s->lock);
    if (s->new_cfg)
        config_unref(s->new_cfg);
    s->new_cfg = c;
    pthread_mutex_unlock(&s->lock);
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0)
        return;
}

void apps_stop(struct apps *s)
{
    uint64_t one = 1;

    if (!s || !s->started)
        return;
    atomic_store(&s->stopping, true);
    if (write(s->wake_fd, &one, sizeof one) < 0)
        log_msg(s->log, LOG_WARN, "app supervisor: wake: %s", strerror(errno));
    pthread_join(s->thread, NULL);
    s->started = false;
}

static void app_free(struct app *p)
{
    if (p->replacing)
        drop_next(p);
    if (p->cfg)
        config_unref(p->cfg);
    free(p->sig);
    free(p->mtimes);
    free(p->crash_ms);
    if (p->sockdir[0])
        rmdir(p->sockdir);
    free(p);
}

void apps_free(struct apps *s)
{
    if (!s)
        return;
    if (s->new_cfg)
        config_unref(s->new_cfg);
    while (s->apps) {
        struct app *p = s->apps;
        s->apps = p->next;
        app_free(p);
    }
    if (s->dir[0])
        rmdir(s->dir);
    if (s->ep >= 0)
        close(s->ep);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
