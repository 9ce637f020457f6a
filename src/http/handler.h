/* Temporary: the old direct entry from a codec into the router. The codecs now call
 * http_dispatch (http/http_conn.h), which goes through worker_hooks.dispatch; handler_dispatch
 * is declared in route/dispatch.h. This header stays only until h2_server.c (being split in
 * parallel) is switched to http_dispatch and includes http/respond.h itself; then it goes. */
#ifndef GH_HANDLER_H
#define GH_HANDLER_H

/* Temporary, like the rest of this header: the response helpers moved to http/respond.h, and
 * every user but h2_server.c (being split in parallel) now includes that directly. This
 * include goes with the header once h2_server.c includes http/respond.h itself. */
#include "http/respond.h"

struct http_stream;

/* Defined in route/dispatch.c (declared again in route/dispatch.h). */
void handler_dispatch(struct http_stream *s);

#endif
