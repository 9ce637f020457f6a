/* Entry from a codec into the handlers: route the request and run the chosen action. It lives
 * in route/dispatch.c; the codecs (h1_server.c, h2_server.c) call it once per request head. */
#ifndef GH_HANDLER_H
#define GH_HANDLER_H

/* The response helpers moved to http/respond.h. Included here only so that the codecs and
 * proxy.c, which are being edited in parallel, keep building until they include it
 * themselves; a handler includes http/respond.h, never this header. */
#include "http/respond.h"

struct http_stream;

/* Route `s` and start its handler. The handler owns the exchange until it calls send_end or
 * abort, or until the codec calls on_close. */
void handler_dispatch(struct http_stream *s);

#endif
