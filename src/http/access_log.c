/* Access-log lines (combined or JSON) for finished exchanges, formatted into the worker's
 * buffer with a bounded writer: every field is truncated to a cap, so a line never exceeds
 * ACCESS_LINE_MAX whatever the client sent. */
#include "http/access_log.h"

#include "config/config.h"
#include "core/worker.h"
#include "http/request.h"

#include <stdio.h>
#include <string.h>

#define ACCESS_LINE_MAX 8192
#define FIELD_MAX 2048 /* target, referer, user agent: longer values are cut */

struct lw {
    char *p;
    size_t n, cap;
};

static void lw_raw(struct lw *w, const char *s, size_t len)
{
    size_t room = w->cap - w->n;
    if (len > room)
        len = room;
    memcpy(w->p + w->n, s, len);
    w->n += len;
}

static void lw_str(struct lw *w, const char *s)
{
    lw_raw(w, s, strlen(s));
}

static void lw_fmt(struct lw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lw_fmt(struct lw *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(w->p + w->n, w->cap - w->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        w->n += (size_t)k < w->cap - w->n ? (size_t)k : w->cap - w->n - 1;
}

/* A quoted field's content, escaped so that it cannot break the line or the JSON. */
static void lw_escaped(struct lw *w, struct slice s, bool json)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = s.len < FIELD_MAX ? s.len : FIELD_MAX;
    for (size_t i = 0; i < len && w->cap - w->n >= 8; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch == '"' || ch == '\\') {
            w->p[w->n++] = '\\';
            w->p[w->n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f || (json && ch >= 0x80)) {
            memcpy(w->p + w->n, json ? "\\u00" : "\\x", json ? 4 : 2);
            w->n += json ? 4 : 2;
            w->p[w->n++] = hex[ch >> 4];
            w->p[w->n++] = hex[ch & 15];
        } else {
            w->p[w->n++] = (char)ch;
        }
    }
}

static struct slice field_value(const struct http_stream *s, const char *name, size_t len)
{
    const struct http_field *f = s->req.fields ? http_find_field(&s->req, name, len) : NULL;
    return f ? (struct slice){f->value, f->value_len} : (struct slice){"", 0};
}

static void seconds(char *out, size_t cap, uint64_t ms)
{
    snprintf(out, cap, "%llu.%03llu", (unsigned long long)(ms / 1000),
             (unsigned long long)(ms % 1000));
}

static void format_combined(struct lw *w, const struct http_stream *s, const char *stamp,
                            const char *up_time, const char *req_time)
{
    struct slice referer = field_value(s, "referer", 7), agent = field_value(s, "user-agent", 10);
    lw_fmt(w, "%s - - [%s] \"", s->peer, stamp);
    lw_escaped(w, s->req.method, false);
    lw_raw(w, " ", 1);
    lw_escaped(w, s->req.target, false);
    lw_raw(w, " ", 1);
    lw_escaped(w, s->req.protocol, false);
    lw_fmt(w, "\" %d %llu \"", s->status, (unsigned long long)s->body_bytes_sent);
    if (referer.len)
        lw_escaped(w, referer, false);
    else
        lw_raw(w, "-", 1);
    lw_raw(w, "\" \"", 3);
    if (agent.len)
        lw_escaped(w, agent, false);
    else
        lw_raw(w, "-", 1);
    lw_fmt(w, "\" upstream=%s upstream_time=%s request_time=%s\n",
           s->upstream[0] ? s->upstream : "-", up_time, req_time);
}

static void format_json(struct lw *w, const struct http_stream *s, const char *stamp,
                        const char *up_time, const char *req_time)
{
    lw_fmt(w, "{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"", stamp, s->peer);
    lw_escaped(w, s->req.method, true);
    lw_str(w, "\",\"target\":\"");
    lw_escaped(w, s->req.target, true);
    lw_str(w, "\",\"protocol\":\"");
    lw_escaped(w, s->req.protocol, true);
    lw_fmt(w, "\",\"status\":%d,\"bytes\":%llu,\"referer\":\"", s->status,
           (unsigned long long)s->body_bytes_sent);
    lw_escaped(w, field_value(s, "referer", 7), true);
    lw_str(w, "\",\"user_agent\":\"");
    lw_escaped(w, field_value(s, "user-agent", 10), true);
    if (s->upstream[0])
        lw_fmt(w, "\",\"upstream\":\"%s\",\"upstream_time\":%s", s->upstream, up_time);
    else
        lw_str(w, "\",\"upstream\":null,\"upstream_time\":null");
    lw_fmt(w, ",\"request_time\":%s}\n", req_time);
}

void http_access_log(struct worker *wk, const struct http_stream *s)
{
    struct logger *lg = &wk->srv->log;
    if (atomic_load_explicit(&lg->access_fd, memory_order_relaxed) < 0 || !s->config)
        return;
    char *p = log_buf_reserve(&wk->access, lg, ACCESS_LINE_MAX);
    if (!p)
        return;
    char up_time[32] = "-", req_time[32];
    seconds(req_time, sizeof(req_time), wk->loop.now - s->start_ms);
    if (s->upstream[0])
        seconds(up_time, sizeof(up_time), s->upstream_ms);
    log_buf_stamp(&wk->access);
    /* Room for the newline is kept back so a truncated line still ends the line. */
    struct lw w = {p, 0, ACCESS_LINE_MAX - 1};
    if (s->config->logs.format == CFG_LOG_JSON)
        format_json(&w, s, wk->access.iso_stamp, up_time, req_time);
    else
        format_combined(&w, s, wk->access.clf_stamp, up_time, req_time);
    if (w.n == 0 || p[w.n - 1] != '\n')
        p[w.n++] = '\n';
    log_buf_commit(&wk->access, w.n);
    ev_defer(&wk->loop, &wk->access_flush);
}
