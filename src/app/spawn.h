/* Starting one instance of an app, and asking it whether it is ready (inside src/app/). */
#ifndef GH_APP_SPAWN_H
#define GH_APP_SPAWN_H

#include "config/config_apps.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct app_spawn_req {
    const struct cfg_app *a;
    const char *name; /* the upstream's */
    int index;        /* instance number */
    const char *token;
    uint16_t port;         /* listen: tcp */
    const char *sock_path; /* listen: unix */
    int out_fd;            /* the child's stdout and stderr (a pipe, a log file, /dev/null) */
};

/* fork + exec in the child's own process group, with PR_SET_PDEATHSIG, the signal mask and
 * dispositions reset, no descriptor but 0, 1 and 2, the directory, user and environment of the
 * app. The pid, or -1 with a reason in err. Call on the supervisor's thread only: the death
 * signal follows the thread that forked. */
pid_t app_spawn(const struct app_spawn_req *r, char *err, size_t errlen);

/* A loopback port free now: bound with port 0, read back, closed. 0 when none could be had. */
uint16_t app_free_port(void);

/* 32 hex digits from getrandom. 0 or -1. */
int app_token(char out[APP_TOKEN_LEN + 1]);

/* Whether the instance at sa is ready: the connection is accepted (path NULL), or GET path
 * (with the token) answers 2xx or 3xx. Waits a few hundred ms at most. */
bool app_probe(const struct sockaddr *sa, socklen_t len, const char *path, const char *token);

#endif
