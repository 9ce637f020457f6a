/* Entry from a codec into the handlers: route the request and run the chosen action, plus the
 * small responses every part of the program needs (errors, respond, redirect). */
#ifndef GH_HANDLER_H
#define GH_HANDLER_H

#include <stddef.h>

struct http_stream;

/* Route `s` and start its handler. The handler owns the exchange until it calls send_end or
 * abort, or until the codec calls on_close. */
void handler_dispatch(struct http_stream *s);

/* Send a response head with the site's and the route's response header rules applied. Every
 * handler sends its final head through this. */
struct http_response;
int handler_send_head(struct http_stream *s, const struct http_response *res);

/* A complete small response: `body` (NULL = "<status> <reason>\n") as text/plain. */
void http_respond_text(struct http_stream *s, int status, const char *body);
/* Same with explicit body bytes, content type and extra fields (may be NULL/0). */
struct http_field;
void http_respond(struct http_stream *s, int status, const char *ctype, const char *body,
                  size_t body_len, const struct http_field *extra, size_t nextra);

#endif
