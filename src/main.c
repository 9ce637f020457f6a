/* gatehouse: command line, listening sockets, workers, and the signals that reload or stop
 * them. The main thread does no request work: it waits for signals. */
#include "config/config.h"
#include "core/worker.h"
#include "proxy/upstate.h"
#include "net/sock.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* One socket per listener per worker, all on the same port (SO_REUSEPORT spreads the
 * connections). Port 0 is resolved by the first bind and reused for the others. */
static int open_listeners(struct server *srv, const struct config *c, int ***out)
{
    int **fds = calloc((size_t)c->workers, sizeof(*fds));
    if (!fds)
        return -1;
    for (int w = 0; w < c->workers; w++) {
        fds[w] = malloc((c->nlisteners ? c->nlisteners : 1) * sizeof(int));
        if (!fds[w])
            return -1;
    }
    *out = fds;
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct sockaddr_storage sa = c->listeners[i].addr.sa;
        socklen_t len = c->listeners[i].addr.len;
        for (int w = 0; w < c->workers; w++) {
            int fd = sock_listen((struct sockaddr *)&sa, len, c->listeners[i].backlog);
            if (fd < 0) {
                log_msg(&srv->log, LOG_ERROR, "cannot listen on %s: %s", c->listeners[i].addr.text,
                        strerror(errno));
                return -1;
            }
            if (w == 0) {
                socklen_t l = sizeof(sa);
                getsockname(fd, (struct sockaddr *)&sa, &l);
                unsigned short port = sa.ss_family == AF_INET6
                                          ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                          : ((struct sockaddr_in *)&sa)->sin_port;
                set_port(&sa, port);
                char text[80];
                sock_addr_text((struct sockaddr *)&sa, text, sizeof(text));
                log_msg(&srv->log, LOG_INFO, "listening on %s%s", text,
                        c->listeners[i].admin ? " (admin)" : "");
            }
            fds[w][i] = fd;
        }
    }
    return 0;
}

/* ---- reload ------------------------------------------------------------------------------- */

static bool same_listeners(const struct config *a, const struct config *b)
{
    if (a->nlisteners != b->nlisteners)
        return false;
    for (size_t i = 0; i < a->nlisteners; i++)
        if (strcmp(a->listeners[i].addr.text, b->listeners[i].addr.text) != 0)
            return false;
    return true;
}

/* Log each line of a config_load error report at error level. */
static void log_lines(struct logger *lg, char *text)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        log_msg(lg, LOG_ERROR, "%s", line);
}

static void reload(struct server *srv, const char *path)
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
        return;
    }
    free(report);
    struct config *old = server_config_get(srv);
    if (!same_listeners(old, c))
        log_msg(&srv->log, LOG_WARN, "listener changes take effect after a restart");
    if (old->workers != c->workers)
        log_msg(&srv->log, LOG_WARN, "a new worker count takes effect after a restart");
    /* Health, ejections and load of servers the new configuration still names carry over. */
    if (upstate_attach(c, old) < 0) {
        log_msg(&srv->log, LOG_ERROR, "reload failed, keeping the running configuration: %s",
                "out of memory");
        config_unref(old);
        config_unref(c);
        return;
    }
    config_unref(old);
    log_open(&srv->log, c->logs.error, c->logs.access, (int)c->logs.level);
    server_config_swap(srv, c);
    log_msg(&srv->log, LOG_INFO, "configuration reloaded from %s", path);
}

/* ---- run ---------------------------------------------------------------------------------- */

static int start_workers(struct server *srv, const struct config *c)
{
    int **fds = NULL;
    if (open_listeners(srv, c, &fds) < 0)
        return -1;
    srv->workers = calloc((size_t)c->workers, sizeof(*srv->workers));
    if (!srv->workers)
        return -1;
    for (int i = 0; i < c->workers; i++) {
        if (worker_init(&srv->workers[i], srv, i, fds[i], c->nlisteners) < 0 ||
            worker_start(&srv->workers[i]) < 0) {
            log_msg(&srv->log, LOG_ERROR, "cannot start worker %d: %s", i, strerror(errno));
            return -1;
        }
        srv->nworkers = i + 1;
    }
    free(fds);
    log_msg(&srv->log, LOG_INFO, "ready: %d workers (gatehouse %s)", c->workers, GH_VERSION);
    return 0;
}

static void stop_workers(struct server *srv)
{
    atomic_store(&srv->stopping, true);
    for (int i = 0; i < srv->nworkers; i++)
        worker_notify(&srv->workers[i]);
    for (int i = 0; i < srv->nworkers; i++)
        worker_join(&srv->workers[i]);
    for (int i = 0; i < srv->nworkers; i++)
        worker_fini(&srv->workers[i]);
    free(srv->workers);
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
    if (start_workers(srv, c) < 0) {
        stop_workers(srv);
        return 1;
    }
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGHUP) {
            reload(srv, path);
        } else if (sig == SIGTERM || sig == SIGINT) {
            log_msg(&srv->log, LOG_INFO, "shutting down (%s): finishing requests in flight",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
    }
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
    struct server srv = {0};
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
    config_unref(atomic_load(&srv.config));
    return rc;
}
