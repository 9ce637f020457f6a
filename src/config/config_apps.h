/* Upstreams whose servers Gatehouse runs itself (key `app` instead of `servers`).
 *
 * The snapshot holds what the file says (struct cfg_app) and, like the addresses a host name
 * resolved to, the addresses of the instances serving when it was built: the supervisor
 * (src/app/) answers through struct cfg_app_provider, and has a snapshot built again (as a DNS
 * refresh does, config/resolve.h) whenever the set of ready instances changes. So workers see
 * instances as the upstream's servers and need nothing else.
 *
 * What workers and the supervisor share at run time (a request asking for an on-demand start,
 * the time of the last request, what /status shows) is a struct app_link, owned by the
 * supervisor for its whole life and named by every snapshot built while it runs. */
#ifndef GH_CONFIG_APPS_H
#define GH_CONFIG_APPS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

enum cfg_app_listen { CFG_APP_TCP, CFG_APP_UNIX };
enum cfg_app_start { CFG_APP_ON_DEMAND, CFG_APP_ALWAYS };
enum cfg_app_logs { CFG_APP_LOGS_STDERR, CFG_APP_LOGS_OFF, CFG_APP_LOGS_FILE };

struct cfg_app_env {
    char *name, *value;
};

#define APP_TOKEN_LEN 32 /* hex digits of GATEHOUSE_APP_TOKEN */
#define APP_TOKEN_HEADER "X-Gatehouse-App-Token"

struct app_link;

struct cfg_app {
    char **command; /* argv; command[0] as written, exe the file that runs */
    size_t ncommand;
    char *exe;
    char *cwd; /* NULL: the configuration file's directory */
    struct cfg_app_env *env;
    size_t nenv;
    char *user, *group; /* applied only when Gatehouse runs as root */
    uid_t uid;
    gid_t gid;
    uint32_t instances;         /* default 1 */
    enum cfg_app_listen listen; /* default tcp */
    char *port_env;             /* default PORT */
    enum cfg_app_start start;   /* default on_demand */
    char *ready_path;           /* NULL: ready when the port accepts a connection */
    uint32_t ready_timeout;     /* ms, default 30000 */
    uint32_t idle_stop;         /* ms, 0 = never (on_demand only) */
    uint32_t stop_timeout;      /* ms, default 10000: SIGTERM, then SIGKILL */
    uint32_t backoff;           /* ms, default 1000: first restart delay, doubling */
    uint32_t max_backoff;       /* ms, default 60000 */
    uint32_t rapid_count;       /* more crashes than this ... default 5 */
    uint32_t rapid_within;      /* ... within this many ms leave the app stopped, default 5m */
    enum cfg_app_logs logs;     /* default stderr: into the error log */
    char *logs_file;
    char **restart_on; /* files whose mtime change replaces the app on SIGHUP */
    size_t nrestart_on;
    /* Filled when the snapshot is built: the supervisor's link (NULL in gatehouse -t and when no
     * supervisor runs) and, per server of the upstream, its instance's token. */
    struct app_link *link;
    char **tokens;
};

/* One instance serving now, as the supervisor tells a load. */
struct cfg_app_instance {
    struct sockaddr_storage sa;
    socklen_t len;
    char text[160]; /* its name in logs and /status: "blog[0]#3@127.0.0.1:41234" */
    char host[80];  /* its Host: "127.0.0.1:41234", "localhost" for a socket */
    char token[APP_TOKEN_LEN + 1];
};

#define CFG_APP_MAX_INSTANCES 64

/* Asked by a load, for every upstream with `app`: the instances serving it now (at most max,
 * into out) and the link of the app of that name (made if new). Called on the loading thread;
 * returns how many. */
struct cfg_app_provider {
    size_t (*instances)(void *ctx, const char *upstream, struct cfg_app_instance *out, size_t max,
                        struct app_link **link);
    void *ctx;
};

/* ---- the link ------------------------------------------------------------------------------ */

enum app_state {
    APP_IDLE,     /* nothing runs (on_demand, before the first request or after idle_stop) */
    APP_STARTING, /* instances started, none ready yet */
    APP_READY,    /* at least one instance serves */
    APP_FAILED,   /* rapid-fail protection: stopped until a SIGHUP or an admin restart */
    APP_STOPPED,  /* Gatehouse is stopping */
};

struct app_link {
    char name[64];
    atomic_int state;              /* enum app_state */
    atomic_uint demand;            /* a request found no instance: start one */
    atomic_uint restart;           /* the admin asked for a replacement */
    atomic_ullong last_request_ms; /* ev_clock_ms() a request last started or ended: idle_stop */
    atomic_uint active;            /* requests to the app now, all workers: idle_stop waits */
    atomic_uint waiting;           /* requests waiting for a start, all workers */
    atomic_uint ready, running;    /* instances */
    atomic_uint starts, crashes;   /* since Gatehouse started */
    atomic_ullong replaced;        /* blue-green replacements completed */
    int wake_fd;                   /* the supervisor's eventfd */
    char last_exit[128];           /* racy text for /status; always NUL-terminated */
};

/* Wake the supervisor: a request waits, or the admin asked for something. */
static inline void app_link_wake(struct app_link *l)
{
    uint64_t one = 1;
    if (l->wake_fd >= 0 && write(l->wake_fd, &one, sizeof one) < 0)
        return; /* a full counter wakes it just the same */
}

static inline const char *app_state_name(int s)
{
    static const char *const names[] = {"idle", "starting", "ready", "failed", "stopped"};
    return s >= 0 && s <= APP_STOPPED ? names[s] : "?";
}

#endif
