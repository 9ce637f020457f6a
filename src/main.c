/* gatehouse: command line, listening sockets, workers, and the signals that reload or stop
 * them. The main thread does no request work: it waits for signals, and between them lets the
 * refresh (config/refresh.c) look up the host names of upstream servers again when they are
 * due. */
#include "config/config.h"
#include "config/refresh.h"
#include "core/sock.h"
#include "core/worker.h"
#include "http/compress.h"
#include "http/h1_server.h"
#include "http/http_conn.h"
#include "net/conn.h"
#include "proxy/health.h"
#include "proxy/proxy.h"
#include "proxy/upstate.h"
#include "proxy/upstream.h"
#include "route/dispatch.h"
#include "serve/files.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef GH_VERSION
#define GH_VERSION "0.0.0"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: gatehouse -c FILE [-t]\n"
                 "  -c, --config FILE  configuration file (YAML)\n"
                 "  -t, --test         check the configuration and exit\n"
                 "  -v, --version      print the version and exit\n"
                 "  -h, --help         this help\n"
                 "signals: SIGHUP reloads the configuration; SIGTERM/SIGINT drain and stop\n");
}

struct options {
    const char *config;
    bool test;
};

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"test", no_argument, NULL, 't'},
                                             {"version", no_argument, NULL, 'v'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:tvh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 't':
            o->test = true;
            break;
        case 'v':
            printf("gatehouse %s\n", GH_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || !o->config) {
        if (!o->config)
            fprintf(stderr, "gatehouse: -c FILE is required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---- listening sockets -------------------------------------------------------------------- */

static void set_port(struct sockaddr_storage *sa, unsigned short port_be)
{
    if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = port_be;
    else
        ((struct sockaddr_in *)sa)->sin_port = port_be;
}

static unsigned short get_port(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                     : ((const struct sockaddr_in *)sa)->sin_port;
}

static void handoffs_free(struct listen_handoff **give, int nworkers)
{
    for (int w = 0; give && w < nworkers; w++)
        listen_handoff_free(give[w]);
    free(give);
}

/* One socket per worker for listener i, all on the same port (SO_REUSEPORT spreads the
 * connections), pushed onto give[w]. Port 0 is resolved by the first bind and reused for the
 * others. -1 with errno set when one cannot be opened. */
static int bind_listener(struct server *srv, const struct config *c, size_t i, int nworkers,
                         struct listen_handoff **give)
{
    struct sockaddr_storage sa = c->listeners[i].addr.sa;
    socklen_t len = c->listeners[i].addr.len;
    for (int w = 0; w < nworkers; w++) {
        int fd = sock_listen((struct sockaddr *)&sa, len, c->listeners[i].backlog);
        if (fd < 0)
            return -1;
        struct listen_handoff *h = listen_handoff_new(c, i, fd);
        if (!h) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        h->next = give[w];
        give[w] = h;
        if (w > 0)
            continue;
        socklen_t l = sizeof(sa);
        getsockname(fd, (struct sockaddr *)&sa, &l);
        set_port(&sa, get_port(&sa));
        char text[80];
        sock_addr_text((struct sockaddr *)&sa, text, sizeof(text));
        log_msg(&srv->log, LOG_INFO, "listening on %s%s", text,
                c->listeners[i].admin ? " (admin)" : "");
    }
    return 0;
}

/* The sockets for the listeners of c that `old` (NULL at start) does not list, by address: a
 * list per worker, or NULL after logging why one could not be opened (none is kept then). */
static struct listen_handoff **open_listeners(struct server *srv, const struct config *old,
                                              const struct config *c, int nworkers)
{
    struct listen_handoff **give = calloc((size_t)nworkers, sizeof(*give));
    if (!give) {
        log_msg(&srv->log, LOG_ERROR, "cannot listen: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (worker_listener_match(c, (int)i, old) >= 0)
            continue; /* the workers keep their sockets for this address */
        if (bind_listener(srv, c, i, nworkers, give) < 0) {
            log_msg(&srv->log, LOG_ERROR, "cannot listen on %s: %s", c->listeners[i].addr.text,
                    strerror(errno));
            handoffs_free(give, nworkers);
            return NULL;
        }
    }
    return give;
}

/* ---- reload ------------------------------------------------------------------------------- */

/* What a reload does to the listeners, said once: the workers close the dropped ones. */
static void log_dropped_listeners(struct logger *lg, const struct config *old,
                                  const struct config *c)
{
    for (size_t i = 0; i < old->nlisteners; i++)
        if (worker_listener_match(old, (int)i, c) < 0)
            log_msg(lg, LOG_INFO, "no longer listening on %s%s", old->listeners[i].addr.text,
                    old->listeners[i].admin ? " (admin)" : "");
}

/* Log each line of a config_load error report at error level. */
static void log_lines(struct logger *lg, char *text)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        log_msg(lg, LOG_ERROR, "%s", line);
}

/* SIGHUP: the file, read again. True when a new snapshot went live. */
static bool reload(struct server *srv, const char *path)
{
    char *report = NULL;
    size_t report_len = 0;
    FILE *errs = open_memstream(&report, &report_len);
    struct config *c = NULL;
    int problems = errs ? config_load(path, &c, errs) : -1;
    if (errs)
        fclose(errs);
    if (problems != 0) {
        log_msg(&srv->log, LOG_ERROR,
                "reload failed, keeping the running configuration (%d problem%s):", problems,
                problems == 1 ? "" : "s");
        if (report)
            log_lines(&srv->log, report);
        free(report);
        return false;
    }
    free(report);
    struct config *old = server_config_get(srv);
    if (old->workers != c->workers)
        log_msg(&srv->log, LOG_WARN, "a new worker count takes effect after a restart");
    /* Listeners are known by address: the workers keep the sockets of addresses both list and
     * take these for the new ones. One that cannot be opened fails the reload as a whole. */
    struct listen_handoff **give = open_listeners(srv, old, c, srv->nworkers);
    if (!give) {
        log_msg(&srv->log, LOG_ERROR, "reload failed, keeping the running configuration: %s",
                "a new listener cannot be opened");
        config_unref(old);
        config_unref(c);
        return false;
    }
    /* Health, ejections and load of servers the new configuration still names carry over. */
    if (upstate_attach(c, old) < 0) {
        log_msg(&srv->log, LOG_ERROR, "reload failed, keeping the running configuration: %s",
                "out of memory");
        handoffs_free(give, srv->nworkers);
        config_unref(old);
        config_unref(c);
        return false;
    }
    log_dropped_listeners(&srv->log, old, c);
    config_unref(old);
    log_open(&srv->log, c->logs.error, c->logs.access, (int)c->logs.level);
    server_config_swap_listeners(srv, c, give);
    free(give);
    log_msg(&srv->log, LOG_INFO, "configuration reloaded from %s", path);
    return true;
}

/* ---- host names of upstream servers, looked up again (config/refresh.c) ------------------ */

static struct config *running_config(void *owner)
{
    return server_config_get(owner);
}

/* New addresses: the running snapshot built again by the refresh, swapped in as a reload
 * would. */
static int install_rebuilt(void *owner, const struct config *old, struct config *c,
                           void (*announce)(void *arg), void *arg)
{
    struct server *srv = owner;
    /* Built again, a listener written as a host name may have another address now: as at a
     * reload, its socket is opened before the swap, or the running snapshot stays. */
    struct listen_handoff **give = open_listeners(srv, old, c, srv->nworkers);
    if (!give) {
        log_msg(&srv->log, LOG_ERROR,
                "re-resolving host names: a listener cannot be opened; keeping the running one");
        config_unref(c);
        return -1;
    }
    /* As a reload: servers that keep their address keep their health and load. */
    if (upstate_attach(c, old) < 0) {
        log_msg(&srv->log, LOG_ERROR, "re-resolving host names: out of memory");
        handoffs_free(give, srv->nworkers);
        config_unref(c);
        return -1;
    }
    announce(arg);
    log_dropped_listeners(&srv->log, old, c);
    server_config_swap_listeners(srv, c, give);
    free(give);
    return 0;
}

static const struct refresh_ops refresh_ops = {.running = running_config,
                                               .install = install_rebuilt};

/* ---- what the workers are plugged into ------------------------------------------------------ */

/* A client goes to the connection layer, which starts the HTTP codec its transport chose. */
static void worker_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
                          int listener, unsigned short local_port, bool counted)
{
    conn_accept(w, fd, peer, peer_len, listener, local_port, counted, http_conn_start);
}

/* The proxy's per-worker state: exchange objects and upstream pools on every worker, the
 * active health checks once per process, on worker 0. */
static int worker_modules_init(struct worker *w)
{
    freelist_init(&w->proxies, proxy_object_size(), 256);
    if (files_worker_init(w) < 0)
        return -1;
    return upool_set_config(w, w->config);
}

static void worker_modules_start(struct worker *w)
{
    if (w->id == 0)
        health_set_config(w, w->config);
}

static void worker_modules_reload(struct worker *w, struct config *c)
{
    upool_set_config(w, c);
    files_worker_reload(w, c);
    if (w->id == 0 && !w->draining)
        health_set_config(w, c);
}

static void worker_modules_drain(struct worker *w)
{
    if (w->id == 0)
        health_set_config(w, NULL);
}

static void worker_modules_stop(struct worker *w)
{
    upool_set_config(w, NULL);
    if (w->id == 0)
        health_set_config(w, NULL);
}

static void worker_modules_fini(struct worker *w)
{
    freelist_fini(&w->proxies);
    files_worker_fini(w);
    h1_worker_fini(w);
    compress_worker_fini(w);
}

static const struct worker_hooks worker_hooks = {
    .accept = worker_accept,
    .init = worker_modules_init,
    .start = worker_modules_start,
    .reload = worker_modules_reload,
    .drain = worker_modules_drain,
    .stop = worker_modules_stop,
    .fini = worker_modules_fini,
    .dispatch = handler_dispatch,
};

/* ---- run ---------------------------------------------------------------------------------- */

static int start_workers(struct server *srv, const struct config *c)
{
    struct listen_handoff **give = open_listeners(srv, NULL, c, c->workers);
    if (!give)
        return -1;
    srv->workers = calloc((size_t)c->workers, sizeof(*srv->workers));
    if (!srv->workers) {
        handoffs_free(give, c->workers);
        return -1;
    }
    for (int i = 0; i < c->workers; i++) {
        if (worker_init(&srv->workers[i], srv, i) < 0) {
            log_msg(&srv->log, LOG_ERROR, "cannot start worker %d: %s", i, strerror(errno));
            handoffs_free(give, c->workers);
            return -1;
        }
        srv->nworkers = i + 1;
    }
    server_give_listeners(srv, give);
    free(give);
    for (int i = 0; i < c->workers; i++) {
        if (worker_start(&srv->workers[i]) < 0) {
            log_msg(&srv->log, LOG_ERROR, "cannot start worker %d: %s", i, strerror(errno));
            srv->nstarted = i;
            return -1;
        }
    }
    srv->nstarted = c->workers;
    log_msg(&srv->log, LOG_INFO, "ready: %d workers (gatehouse %s)", c->workers, GH_VERSION);
    return 0;
}

static void stop_workers(struct server *srv)
{
    atomic_store(&srv->stopping, true);
    for (int i = 0; i < srv->nworkers; i++)
        worker_notify(&srv->workers[i]);
    for (int i = 0; i < srv->nstarted; i++)
        worker_join(&srv->workers[i]);
    for (int i = 0; i < srv->nworkers; i++)
        worker_fini(&srv->workers[i]);
    free(srv->workers);
}

/* The next of the signals in `set`, waiting at most `ms` (-1: for ever); -1 when none came. */
static int wait_signal(const sigset_t *set, long long ms)
{
    if (ms < 0)
        return sigwaitinfo(set, NULL);
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    return sigtimedwait(set, NULL, &ts);
}

static int serve(struct server *srv, const char *path)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Blocked before the workers start, so they inherit the mask and only we take them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    const struct config *c = atomic_load(&srv->config);
    /* Workers never wait on a log sink: their lines go through the writer thread. */
    if (log_writer_start(&srv->log, (size_t)c->workers) < 0)
        log_msg(&srv->log, LOG_WARN,
                "cannot start the log writer: lines a sink cannot take at "
                "once are dropped");
    if (start_workers(srv, c) < 0) {
        stop_workers(srv);
        return 1;
    }
    struct refresh rf;
    refresh_start(&rf, &refresh_ops, srv, &srv->log, c);
    for (;;) {
        int sig = wait_signal(&set, refresh_wait(&rf));
        if (sig == SIGHUP) {
            if (reload(srv, path))
                refresh_reset(&rf, atomic_load(&srv->config));
        } else if (sig == SIGTERM || sig == SIGINT) {
            log_msg(&srv->log, LOG_INFO, "shutting down (%s): finishing requests in flight",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        refresh_run(&rf);
    }
    refresh_stop(&rf);
    stop_workers(srv);
    log_msg(&srv->log, LOG_INFO, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct config *c = NULL;
    int problems = config_load(o.config, &c, stderr);
    if (o.test) {
        if (problems == 0)
            printf("%s: configuration OK\n", o.config);
        if (c)
            config_unref(c);
        return problems ? 1 : 0;
    }
    if (problems)
        return 1;
    if (upstate_attach(c, NULL) < 0) {
        fprintf(stderr, "gatehouse: out of memory\n");
        config_unref(c);
        return 1;
    }
    struct server srv = {.hooks = &worker_hooks};
    atomic_init(&srv.log.err_fd, 2);
    atomic_init(&srv.log.access_fd, -1);
    atomic_init(&srv.log.level, LOG_INFO);
    pthread_mutex_init(&srv.config_lock, NULL);
    if (log_open(&srv.log, c->logs.error, c->logs.access, (int)c->logs.level) < 0) {
        config_unref(c);
        return 1;
    }
    atomic_init(&srv.config, c);
    int rc = serve(&srv, o.config);
    /* The last lines, given a moment to reach a sink that is slow (never one not read at all). */
    log_writer_stop(&srv.log, 1000);
    config_unref(atomic_load(&srv.config));
    return rc;
}
