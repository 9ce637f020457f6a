/* The responses every handler sends, below the handlers so that a handler only calls down: the
 * final head with the site's and the route's response header rules applied, and the small
 * complete answers every part of the program needs (errors, respond, redirect). */
#ifndef GH_HTTP_RESPOND_H
#define GH_HTTP_RESPOND_H

#include <stddef.h>

struct http_stream;
struct http_response;
struct http_field;

/* Send a response head with the site's and the route's response header rules applied. Every
 * handler sends its final head through this. */
int handler_send_head(struct http_stream *s, const struct http_response *res);

/* A complete small response: `body` (NULL = "<status> <reason>\n") as text/plain. */
void http_respond_text(struct http_stream *s, int status, const char *body);
/* Same with explicit body bytes, content type and extra fields (may be NULL/0). */
void http_respond(struct http_stream *s, int status, const char *ctype, const char *body,
                  size_t body_len, const struct http_field *extra, size_t nextra);

#endif
