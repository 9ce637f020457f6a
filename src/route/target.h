/* Checks for what a request names: the Host (or absolute-form authority). The path's checks and
 * normal form are in http/path.h. */
#ifndef GH_TARGET_H
#define GH_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include "http/path.h"

/* host[:port] per RFC 3986: a reg-name (unreserved, pct-encoded, sub-delims) or a bracketed
 * IP literal, then optionally ':' and a port: digits up to 65535, or none (the default port).
 * An empty host is invalid. */
bool target_host_valid(const char *h, size_t len);

#endif
