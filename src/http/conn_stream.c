#include "http/conn_stream.h"

#include "config/config.h"
#include "http/request.h"
#include "net/conn.h"

void http_stream_init(struct http_stream *s, const struct http_stream_ops *ops,
                      const struct conn *c, struct config *config, int listener)
{
    *s = (struct http_stream){.ops = ops,
                              .worker = c->w,
                              .peer = c->peer,
                              .peer_addr = (const struct sockaddr *)&c->peer_addr,
                              .listener = listener,
                              .local_port = c->local_port,
                              .secure = c->secure,
                              .sni = conn_sni(c),
                              .client_subject = c->client_subject,
                              .config = config,
                              .start_ms = c->w->loop.now,
                              .max_body = config->limits.max_body_size};
}
