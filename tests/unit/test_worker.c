/* Listeners are matched across snapshots by address, never by position (worker.h). */
#include "check.h"
#include "config/config.h"
#include "core/worker.h"

#include <stdio.h>
#include <stdlib.h>

static struct config *load(const char *yaml)
{
    struct config *c = NULL;
    FILE *errs = fopen("/dev/null", "w");
    int n = config_load_string("x.yaml", yaml, strlen(yaml), &c, errs);
    fclose(errs);
    CHECK_EQ_INT(n, 0);
    return c;
}

#define SITES "sites: [{name: a, hosts: [a.test], routes: [{path: /, respond: {body: a}}]}]\n"

static void test_match_by_address(void)
{
    struct config *old = load(SITES "listen:\n"
                                    "  - address: 127.0.0.1:8001\n"
                                    "  - address: 127.0.0.1:8002\n"
                                    "  - address: 127.0.0.1:8003\n"
                                    "admin: {address: 127.0.0.1:8009}\n");
    struct config *new = load(SITES "listen:\n"
                                    "  - address: 127.0.0.1:8004\n" /* added, first */
                                    "  - address: 127.0.0.1:8002\n"
                                    "  - address: 127.0.0.1:8001\n" /* 8003 dropped */
                                    "admin: {address: 127.0.0.1:8009}\n");
    if (!old || !new)
        return;
    CHECK_EQ_INT(worker_listener_match(old, 0, new), 2);
    CHECK_EQ_INT(worker_listener_match(old, 1, new), 1);
    CHECK_EQ_INT(worker_listener_match(old, 2, new), -1); /* dropped */
    CHECK_EQ_INT(worker_listener_match(old, 3, new), 3);  /* the admin listener stays admin */
    CHECK(new->listeners[3].admin);
    CHECK_EQ_INT(worker_listener_match(new, 0, old), -1); /* added */
    CHECK_EQ_INT(worker_listener_match(new, 2, old), 0);
    CHECK_EQ_INT(worker_listener_match(old, 1, old), 1);
    CHECK_EQ_INT(worker_listener_match(old, 4, new), -1); /* out of range */
    CHECK_EQ_INT(worker_listener_match(old, -1, new), -1);
    CHECK_EQ_INT(worker_listener_match(old, 0, NULL), -1);
    config_unref(old);
    config_unref(new);
}

/* Port 0 may be listed more than once on one host: the nth matches the nth. */
static void test_match_port_zero(void)
{
    struct config *old = load(SITES "listen:\n"
                                    "  - address: 127.0.0.1:0\n"
                                    "  - address: 127.0.0.1:0\n"
                                    "  - address: '[::1]:0'\n");
    struct config *new = load(SITES "listen:\n"
                                    "  - address: '[::1]:0'\n"
                                    "  - address: 127.0.0.1:0\n");
    if (!old || !new)
        return;
    CHECK_EQ_INT(worker_listener_match(old, 0, new), 1);
    CHECK_EQ_INT(worker_listener_match(old, 1, new), -1);
    CHECK_EQ_INT(worker_listener_match(old, 2, new), 0);
    config_unref(old);
    config_unref(new);
}

int main(void)
{
    test_match_by_address();
    test_match_port_zero();
    return check_done("worker");
}
