/* Access-log lines (combined or JSON) for finished exchanges. The formatter reads the request
 * (http/request.h), so it lives in the http layer; the line goes into the worker's access-log
 * buffer and ring (core/log.h), which the worker flushes. */
#ifndef GH_HTTP_ACCESS_LOG_H
#define GH_HTTP_ACCESS_LOG_H

struct worker;
struct http_stream;

/* Format the access-log line of the finished exchange `s` into w's buffer and schedule a
 * flush. Nothing when the access log is off. */
void http_access_log(struct worker *w, const struct http_stream *s);

#endif
