/* Supervised application processes: the servers of `app` upstreams, run by Gatehouse.
 *
 * One supervisor per process, on its own thread (never a worker): it starts the instances of
 * each app (each in its own process group, with PR_SET_PDEATHSIG, no descriptor of ours, a
 * free loopback port or a Unix socket in a 0700 directory, and a pairing token), waits for
 * them to be ready, reads their output into the error log, reaps them, restarts them with
 * exponential backoff, stops an app that keeps crashing (rapid-fail protection), starts
 * on-demand apps at their first request and stops them when idle, and replaces an app
 * blue-green when its command, environment, directory or files change.
 *
 * Workers see the instances that serve as the upstream's servers: the supervisor answers the
 * config loader (struct cfg_app_provider, config/config_apps.h), and asks its owner, through
 * apps_ops.publish, to build the running snapshot again whenever that set changes; the owner
 * (main.c) does it on its own thread, exactly as it installs new addresses of host names. */
#ifndef GH_APP_H
#define GH_APP_H

#include "config/config.h"
#include "config/config_apps.h"
#include "core/log.h"

struct apps;

struct apps_ops {
    /* The running snapshot, with a reference the supervisor releases. */
    struct config *(*running)(void *owner);
    /* The instances that serve changed: build the running snapshot again. Called on the
     * supervisor's thread; must not block (main.c sends itself a signal). */
    void (*publish)(void *owner);
};

/* Made before the first load, so that every snapshot names the links (no thread yet). */
struct apps *apps_new(void);
/* What loads pass as config_load_opts.apps. */
const struct cfg_app_provider *apps_provider(struct apps *s);
/* Starts the supervisor's thread on the running snapshot `c` (apps with `start: always` start
 * now). 0 or -1 (logged). */
int apps_start(struct apps *s, struct logger *lg, const struct apps_ops *ops, void *owner,
               struct config *c);
/* After a reload: `c` is the new running snapshot. Apps that changed are replaced, new ones
 * started, dropped ones stopped, failed ones started again. */
void apps_reconfigure(struct apps *s, struct config *c);
/* Gatehouse is stopping, after the drain: every instance gets SIGTERM, then SIGKILL after its
 * stop_timeout; all are reaped. Joins the thread. */
void apps_stop(struct apps *s);
/* After the last snapshot is gone. */
void apps_free(struct apps *s);

#endif
