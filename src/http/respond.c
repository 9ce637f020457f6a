/* The responses every handler sends (see respond.h): they apply the site's and the route's
 * response header rules, so they read the stream's site and route but never route anything. */
#include "http/respond.h"

#include "config/config.h"
#include "http/compress.h"
#include "http/fields.h"
#include "http/request.h"
#include "http/token.h"

#include <stdio.h>
#include <string.h>

#define MAX_OUT_FIELDS 300

/* HSTS only over HTTPS: browsers ignore it on plain HTTP (RFC 6797 section 8.1). */
static bool wants_hsts(const struct http_stream *s, const struct http_response *res)
{
    if (!s->secure || !s->site || !s->site->hsts)
        return false;
    for (size_t i = 0; i < res->nfields; i++)
        if (http_token_eq(res->fields[i].name, res->fields[i].name_len, "strict-transport-security",
                          25))
            return false; /* the app set its own */
    return true;
}

int handler_send_head(struct http_stream *s, const struct http_response *res)
{
    const struct cfg_header_rules *site = s->site ? &s->site->response_headers : NULL;
    const struct cfg_header_rules *route = s->route ? &s->route->response_headers : NULL;
    bool hsts = res->status >= 200 && wants_hsts(s, res);
    if (res->status < 200)
        return s->ops->send_head(s, res);
    if (!site && !route && !hsts)
        return compress_send_head(s, res);
    struct http_field a[MAX_OUT_FIELDS], b[MAX_OUT_FIELDS];
    long n = fields_apply(res->fields, res->nfields, site, a, MAX_OUT_FIELDS);
    if (n >= 0)
        n = fields_apply(a, (size_t)n, route, b, MAX_OUT_FIELDS - 1);
    if (n < 0)
        return compress_send_head(s, res); /* too many to filter: send as produced */
    if (hsts)
        b[n++] = (struct http_field){"Strict-Transport-Security", s->site->hsts, 25,
                                     (uint32_t)strlen(s->site->hsts)};
    struct http_response out = *res;
    out.fields = b;
    out.nfields = (size_t)n;
    return compress_send_head(s, &out);
}

void http_respond(struct http_stream *s, int status, const char *ctype, const char *body,
                  size_t body_len, const struct http_field *extra, size_t nextra)
{
    struct http_field fields[8];
    size_t n = 0;
    for (size_t i = 0; i < nextra && n < 7; i++)
        fields[n++] = extra[i];
    if (ctype)
        fields[n++] = (struct http_field){"Content-Type", ctype, 12, (uint32_t)strlen(ctype)};
    struct http_response res = {
        .status = status, .fields = fields, .nfields = n, .content_length = (int64_t)body_len};
    /* send_end is called whatever happens: it is what detaches the handler from the stream. */
    if (handler_send_head(s, &res) != SEND_ERROR && body_len)
        s->ops->send_body(s, body, body_len);
    s->ops->send_end(s);
}

void http_respond_text(struct http_stream *s, int status, const char *body)
{
    char text[96];
    if (!body) {
        snprintf(text, sizeof(text), "%d %s\n", status, http_reason(status));
        body = text;
    }
    /* The body is copied by the codec only if the socket takes it now; keep it alive. */
    http_respond(s, status, "text/plain; charset=utf-8", body, strlen(body), NULL, 0);
}
