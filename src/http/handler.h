/* Temporary: the old direct entry from a codec into the router. The codecs now call
 * http_dispatch (http/http_conn.h), which goes through worker_hooks.dispatch; handler_dispatch
 * is declared in route/dispatch.h. This header stays only until h2_server.c (being split in
 * parallel) is switched to http_dispatch and includes http/respond.h itself; then it goes. */
#ifndef GH_HANDLER_H
#define GH_HANDLER_H

/* The response helpers moved to http/respond.h. Included here only so that the codecs and
 * proxy.c, which are being edited in parallel, keep building until they include it
 * themselves; a handler includes http/respond.h, never this header. */
#include "http/respond.h"

struct http_stream;

/* Defined in route/dispatch.c (declared again in route/dispatch.h). */
void handler_dispatch(struct http_stream *s);

#endif
