/* Active health checks: every server of an upstream with `health_check` is probed every
 * `interval` (a TCP connect, plus the TLS handshake for a TLS upstream; type http also sends a
 * request and reads the status line), and `rise` / `fall` results in a row move it up or down in
 * the state every worker shares (proxy/upstate.h). The checks run on one event loop only, worker
 * 0's, so a server is probed once per process however many workers there are. */
#ifndef GH_HEALTH_H
#define GH_HEALTH_H

struct worker;
struct config;

/* Stop the checks of the snapshot checked so far and start those of `c` (NULL: stop only, at
 * shutdown). The checker takes a reference to `c` and frees every check it made when the next
 * call replaces it. Servers `c` shares with the previous snapshot keep their health. Only on
 * the loop of `w`, always the same worker. Returns 0, or -1 when out of memory (no checks
 * run then; the servers keep their last state). */
int health_set_config(struct worker *w, struct config *c);

#endif
