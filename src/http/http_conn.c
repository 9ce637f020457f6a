#include "http/http_conn.h"

#include "config/config.h"
#include "http/h1_server.h"
#include "http/h2_server.h"
#include "http/request.h"

void http_conn_start(struct conn *c, enum conn_proto proto, const char *initial, size_t initial_len,
                     bool ready)
{
    if (proto == CONN_HTTP2)
        h2_conn_start(c, initial, initial_len);
    else
        h1_conn_start(c, ready);
}

void http_dispatch(struct http_stream *s)
{
    s->worker->srv->hooks->dispatch(s);
}

void http_stream_init(struct http_stream *s, const struct http_stream_ops *ops,
                      const struct conn *c, struct config *config, int listener)
{
    *s = (struct http_stream){.ops = ops,
                              .worker = c->w,
                              .peer = c->peer,
                              .peer_addr = (const struct sockaddr *)&c->peer_addr,
                              .local_addr = (const struct sockaddr *)&c->local_addr,
                              .listener = listener,
                              .local_port = c->local_port,
                              .secure = c->secure,
                              .sni = conn_sni(c),
                              .client_subject = c->client_subject,
                              .config = config,
                              .start_ms = c->w->loop.now,
                              .max_body = config->limits.max_body_size};
}
