/* HTTP/1.1 server connection. One exchange at a time: a request is parsed, handed to the router
 * as an http_stream, and its response framed here; pipelined requests wait in the input buffer.
 *
 * Buffer discipline: while an exchange runs, its request head stays at the start of `in`
 * (the stream's slices point into it) and body bytes stream through the space after it. */
#include "http/h1_server.h"

#include "config/config.h"
#include "core/bug.h"
#include "core/sock.h"
#include "core/worker.h"
#include "http/access_log.h"
#include "http/h1_parse.h"
#include "http/hop.h"
#include "http/http_conn.h"
#include "http/path.h"
#include "http/request.h"
#include "http/respond.h"
#include "http/token.h"
#include "net/conn.h"
#include "net/outq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum conn_state {
    CS_IDLE,     /* between requests, nothing buffered */
    CS_HEAD,     /* part of a request head received */
    CS_EXCHANGE, /* a request is being handled */
    CS_FLUSHING, /* response complete, last bytes being written */
    CS_LINGER,   /* response done, discarding the rest of the client's input before close */
    CS_CLOSED,
};

struct h1_conn {
    struct http_stream stream; /* the exchange in flight (one at a time) */
    struct worker *w;
    struct conn_base base; /* in the worker's connection list */
    struct conn *conn;     /* transport, peer, listener and snapshot (net/conn.h) */
    enum conn_state state;
    struct ev_io io;
    struct ev_timer timer;       /* head, body, keep-alive and linger deadlines */
    struct ev_timer send_timer;  /* the client is not taking our response (send_timeout) */
    struct ev_timer yield_timer; /* 0 ms: a file's next budget, after other connections' I/O */
    struct ev_defer flush_defer;
    struct ev_defer process_defer; /* continue with the next request outside the handler's call */
    struct ev_defer fail_defer;    /* answer fail_status outside the handler's call */
    struct ev_defer close_defer;
    int fail_status;
    const char *fail_why;
    struct buf *in;
    struct outq out;
    struct h1_heads *heads; /* header arrays, held only while a head is parsed or served */
    bool handed_over;       /* the connection now belongs to the HTTP/2 codec */
    char *path_buf;         /* a normalised path when the target had dot segments; grows, kept */
    size_t path_cap;
    unsigned requests;
    bool rd_ready, wr_ready;
    bool eof;       /* the client closed its side (a read returned 0) */
    bool rdhup;     /* epoll saw the client close; reads go on until they see it */
    bool keepalive; /* may serve another request after this one */
    bool http10;
    bool handler_on;   /* stream.handler must be told if the connection dies */
    bool send_pending; /* the handler waits for on_writable */
    bool head_sent;
    bool head_final;
    bool chunked_out;
    bool no_body_out;
    bool logged; /* the exchange's access-log line is written (a file ended early) */
    bool pinned; /* a head is pinned at in[0..head_len) */
    uint32_t head_len;
    /* Request body. */
    enum h1_body body_kind;
    uint64_t body_left; /* LENGTH: bytes still to come */
    uint64_t body_received;
    struct h1_chunked chunk;
    bool body_done;
    bool body_handed;     /* a slice is out with the handler */
    bool body_rewindable; /* every body byte is still in `in` from head_len on */
    bool continue_sent;
    bool expect_continue;
    /* Tunnel: after a 101 the connection carries bytes as they are (see request.h). */
    bool tunnel;
    bool shut_pending; /* our FIN follows the queued bytes */
    bool rd_error;     /* the last read failed (not a clean end) */
    char upgrade[128]; /* req.upgrade: the offered protocols without h2c */
};

/* Header arrays for one request head, recycled through the worker: a connection holds them
 * only while a request is being parsed or served, so idle keep-alive connections stay small. */
struct h1_heads {
    struct h1_heads *next;
    uint32_t cap;
    struct h1_header *hdrs;
    struct http_field *fields;
};

#define H1_HEADS_CACHED 256

static struct h1_heads *heads_get(struct worker *w, uint32_t cap)
{
    struct h1_heads *h = w->h1_heads;
    if (h && h->cap >= cap) {
        w->h1_heads = h->next;
        w->h1_nheads--;
        return h;
    }
    h = malloc(sizeof(*h) + cap * (sizeof(struct h1_header) + sizeof(struct http_field)));
    if (!h)
        return NULL;
    h->cap = cap;
    h->hdrs = (struct h1_header *)(h + 1);
    h->fields = (struct http_field *)(h->hdrs + cap);
    return h;
}

static void heads_put(struct worker *w, struct h1_heads *h)
{
    if (!h)
        return;
    /* Arrays smaller than the current limit (a reload raised it) are not kept. */
    if (w->h1_nheads >= H1_HEADS_CACHED || h->cap < w->config->limits.max_header_count) {
        free(h);
        return;
    }
    h->next = w->h1_heads;
    w->h1_heads = h;
    w->h1_nheads++;
}

void h1_worker_fini(struct worker *w)
{
    while (w->h1_heads) {
        struct h1_heads *h = w->h1_heads;
        w->h1_heads = h->next;
        free(h);
    }
    w->h1_nheads = 0;
}

static const struct http_stream_ops h1_stream_ops;
static void conn_on_io(struct ev_io *io, uint32_t events);
static void conn_on_timer(struct ev_timer *t);
static void conn_on_send_timer(struct ev_timer *t);
static void conn_on_yield(struct ev_timer *t);
static void conn_on_flush(struct ev_defer *d);
static void conn_on_close(struct ev_defer *d);
static void conn_on_process(struct ev_defer *d);
static void conn_on_fail(struct ev_defer *d);
static void conn_process(struct h1_conn *c);
static void read_requests(struct h1_conn *c);
static const struct conn_ops h1_conn_ops;
static void conn_close(struct h1_conn *c);
static void exchange_finished(struct h1_conn *c);
static void conn_fail_later(struct h1_conn *c, int status, const char *why);

static struct logger *conn_log(struct h1_conn *c)
{
    return &c->w->srv->log;
}

static const struct cfg_limits *conn_limits(struct h1_conn *c)
{
    return &c->conn->config->limits;
}

void h1_conn_start(struct conn *conn, bool ready)
{
    struct worker *w = conn->w;
    struct h1_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        conn_close_fd(conn);
        conn_free(conn);
        return;
    }
    c->w = w;
    c->conn = conn;
    c->io = (struct ev_io){.fd = conn->fd, .cb = conn_on_io};
    c->timer.cb = conn_on_timer;
    c->send_timer.cb = conn_on_send_timer;
    c->yield_timer.cb = conn_on_yield;
    c->flush_defer.cb = conn_on_flush;
    c->close_defer.cb = conn_on_close;
    c->process_defer.cb = conn_on_process;
    c->fail_defer.cb = conn_on_fail;
    c->state = CS_IDLE;
    if (ev_io_add(&w->loop, &c->io, 0) < 0) {
        free(c);
        conn_close_fd(conn);
        conn_free(conn);
        return;
    }
    c->base.ops = &h1_conn_ops;
    dlist_push(&w->conns, &c->base.link);
    ev_timer_start(&w->loop, &c->timer, conn_limits(c)->client_header_timeout);
    if (ready) {
        c->rd_ready = c->wr_ready = true; /* the request may already be buffered */
        read_requests(c);
    }
}

/* ---- closing ------------------------------------------------------------------------------ */

/* Closing is deferred to the end of the loop turn so that no caller is left holding a freed
 * connection; the fd goes at once so nothing more is read or written. */
static void conn_close(struct h1_conn *c)
{
    if (c->state == CS_CLOSED)
        return;
    if (!c->handed_over)
        c->conn->io->close_notify(c->conn); /* best effort */
    c->state = CS_CLOSED;
    c->w->nclosing++;
    if (!c->handed_over) /* the fd is registered again by its new owner */
        ev_io_del(&c->w->loop, &c->io);
    ev_timer_stop(&c->w->loop, &c->timer);
    ev_timer_stop(&c->w->loop, &c->send_timer);
    ev_timer_stop(&c->w->loop, &c->yield_timer);
    if (!c->handed_over)
        conn_close_fd(c->conn);
    ev_defer(&c->w->loop, &c->close_defer);
}

static void conn_on_close(struct ev_defer *d)
{
    struct h1_conn *c = container_of(d, struct h1_conn, close_defer);
    if (c->flush_defer.queued || c->process_defer.queued || c->fail_defer.queued) {
        /* Another callback of ours is still queued behind us: free after it ran. */
        ev_defer(&c->w->loop, &c->close_defer);
        return;
    }
    if (c->handler_on) {
        if (c->tunnel) /* a tunnel cut from our side (shutdown, errors) still gets its line */
            http_access_log(c->w, &c->stream);
        c->handler_on = false;
        c->stream.handler->on_close(&c->stream);
    }
    /* Backstop: nothing may leave a timer pointing into freed memory. */
    ev_timer_stop(&c->w->loop, &c->timer);
    ev_timer_stop(&c->w->loop, &c->send_timer);
    ev_timer_stop(&c->w->loop, &c->yield_timer);
    dlist_remove(&c->base.link);
    buf_put(&c->w->bufs, c->in);
    outq_release(&c->out, &c->w->bufs);
    heads_put(c->w, c->heads);
    c->heads = NULL;
    free(c->path_buf);
    c->w->nclosing--;
    if (!c->handed_over)
        conn_free(c->conn);
    free(c);
}

/* ---- output ------------------------------------------------------------------------------- */

/* Arm the head/body/keep-alive timer; a closed connection keeps no timer. */
static void conn_timer(struct h1_conn *c, uint32_t ms)
{
    if (c->state != CS_CLOSED)
        ev_timer_start(&c->w->loop, &c->timer, ms);
}

/* The client must take what we queued within send_timeout (not reset by each write). */
static void arm_send_timer(struct h1_conn *c)
{
    if (c->state != CS_CLOSED && !ev_timer_armed(&c->send_timer))
        ev_timer_start(&c->w->loop, &c->send_timer, conn_limits(c)->send_timeout);
}

/* Half-close a tunnel towards the client: close_notify under TLS, then the FIN. Reading goes
 * on (OpenSSL still reads after sending its close_notify). */
static void shut_now(struct h1_conn *c)
{
    c->shut_pending = false;
    c->conn->io->shutdown(c->conn);
}

/* Whether a failed flush with a file segment pending is the file's fault rather than the
 * client's (gone: EPIPE, ECONNRESET...): the file ended early (ENODATA, truncated while being
 * sent), or sendfile cannot read it (EIO, or EINVAL from a file system without splice). */
static bool file_fault(int err)
{
    return err == ENODATA || err == EIO || err == EINVAL || err == EOVERFLOW || err == ENOSYS;
}

/* The response cannot be completed from its file: the client must see it cut short, and the
 * operator why. */
static void file_failed(struct h1_conn *c, int err)
{
    const struct http_request *r = &c->stream.req;
    char why[96];
    if (err == ENODATA)
        snprintf(why, sizeof why, "file ended %llu bytes early (truncated while being sent)",
                 (unsigned long long)c->out.file_left);
    else
        snprintf(why, sizeof why, "sending the file failed: %s", strerror(err));
    log_msg(conn_log(c), LOG_WARN, "client %s: %.*s %.*s: %s, closing the connection",
            c->conn->peer, (int)r->method.len, r->method.p, (int)r->path.len, r->path.p, why);
    /* The exchange's line, with the bytes that did go out: the handler hears only on_close
     * (or is done already), and nobody else writes it. */
    http_access_log(c->w, &c->stream);
    c->logged = true;
    outq_drop_file(&c->out);
    conn_close(c);
}

static int conn_flush(struct h1_conn *c)
{
    uint64_t file_left = c->out.file_left;
    int r = c->conn->io->flush(c->conn, &c->out, &c->w->bufs);
    /* File bytes count as the socket takes them (a file may end early); and the client that
     * takes some is reading: send_timeout starts again, as it does for each body slice. */
    if (file_left != c->out.file_left) {
        c->stream.body_bytes_sent += file_left - c->out.file_left;
        ev_timer_stop(&c->w->loop, &c->send_timer);
    }
    if (r == OUTQ_AGAIN) {
        c->wr_ready = false;
        arm_send_timer(c);
    } else if (r == OUTQ_YIELD) {
        /* The client takes all we give it: the rest of the file on the next turn, after the
         * other connections had theirs. No send_timeout: the client is reading. */
        if (c->state != CS_CLOSED)
            ev_timer_start(&c->w->loop, &c->yield_timer, 0);
    } else if (r == OUTQ_DONE) {
        ev_timer_stop(&c->w->loop, &c->send_timer);
        if (c->shut_pending)
            shut_now(c);
    } else if (c->out.file_left && file_fault(errno)) {
        file_failed(c, errno);
    } else {
        log_msg(conn_log(c), LOG_DEBUG, "client %s: write failed: %s", c->conn->peer,
                strerror(errno));
        conn_close(c);
    }
    return r;
}

/* The next budget of a file segment (conn_flush yielded); more EPOLLOUT may have flushed it
 * meanwhile. */
static void conn_on_yield(struct ev_timer *t)
{
    struct h1_conn *c = container_of(t, struct h1_conn, yield_timer);
    if (c->state == CS_CLOSED || outq_empty(&c->out) || !c->wr_ready)
        return;
    if (conn_flush(c) == OUTQ_DONE)
        conn_process(c);
}

static void conn_on_flush(struct ev_defer *d)
{
    struct h1_conn *c = container_of(d, struct h1_conn, flush_defer);
    /* A flush that yielded this turn goes on with its timer, not with a second budget now. */
    if (c->state == CS_CLOSED || outq_empty(&c->out) || !c->wr_ready ||
        ev_timer_armed(&c->yield_timer))
        return;
    if (conn_flush(c) == OUTQ_DONE)
        conn_process(c);
}

static void conn_on_process(struct ev_defer *d)
{
    struct h1_conn *c = container_of(d, struct h1_conn, process_defer);
    if (c->state != CS_CLOSED)
        conn_process(c);
}

/* A failed send closes the connection; the handler hears of it through on_close. */
static enum send_result send_failed(struct h1_conn *c)
{
    conn_close(c);
    return SEND_ERROR;
}

static int out_fields(struct h1_conn *c, const struct http_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t room;
        char *p = outq_reserve(&c->out, &c->w->bufs, &room);
        size_t need = f[i].name_len + f[i].value_len + 4;
        if (!p || room < need)
            return -1;
        memcpy(p, f[i].name, f[i].name_len);
        p += f[i].name_len;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, f[i].value, f[i].value_len);
        p += f[i].value_len;
        *p++ = '\r';
        *p++ = '\n';
        outq_commit(&c->out, need);
    }
    return 0;
}

/* Date is generated once per second per worker. */
static const char *http_date(struct h1_conn *c)
{
    log_buf_stamp(&c->w->access);
    return c->w->access.http_date;
}

/* The response head's generated parts are put together with memcpy: out_printf costs a
 * vfprintf per line, a sixth of the CPU of a small proxied request when it was used here. */
static int out_put(struct h1_conn *c, const char *p, size_t n)
{
    return outq_append(&c->out, &c->w->bufs, p, n);
}

#define OUT_LIT(c, lit) out_put(c, lit, sizeof(lit) - 1)

/* "HTTP/1.x NNN Reason\r\n" */
static int out_status_line(struct h1_conn *c, char minor, int status)
{
    char line[64] = "HTTP/1.x ";
    const char *reason = http_reason(status);
    size_t rlen = strlen(reason), n = 9;
    line[7] = minor;
    line[n++] = (char)('0' + status / 100 % 10);
    line[n++] = (char)('0' + status / 10 % 10);
    line[n++] = (char)('0' + status % 10);
    line[n++] = ' ';
    if (rlen > sizeof(line) - n - 2)
        rlen = sizeof(line) - n - 2;
    memcpy(line + n, reason, rlen);
    n += rlen;
    line[n++] = '\r';
    line[n++] = '\n';
    return out_put(c, line, n);
}

static int out_date(struct h1_conn *c)
{
    const char *date = http_date(c);
    char line[64] = "Date: ";
    size_t dlen = strlen(date), n = 6;
    if (dlen > sizeof(line) - n - 2)
        return -1;
    memcpy(line + n, date, dlen);
    n += dlen;
    line[n++] = '\r';
    line[n++] = '\n';
    return out_put(c, line, n);
}

/* "Content-Length: N\r\n" or a chunk-size line */
static int out_number(struct h1_conn *c, const char *prefix, size_t plen, unsigned long long v,
                      int hex)
{
    char line[32 + HTTP_NUM_MAX + 2];
    return plen > 32 ? -1 : out_put(c, line, http_fmt_line(line, prefix, plen, v, hex));
}

static bool has_field(const struct http_response *res, const char *lower, size_t len)
{
    for (size_t i = 0; i < res->nfields; i++)
        if (http_token_eq(res->fields[i].name, res->fields[i].name_len, lower, len))
            return true;
    return false;
}

static enum send_result h1_send_interim(struct h1_conn *c, const struct http_response *res)
{
    if (c->http10)
        return SEND_DONE; /* HTTP/1.0 clients do not understand 1xx */
    if (out_status_line(c, '1', res->status) < 0 || out_fields(c, res->fields, res->nfields) < 0 ||
        OUT_LIT(c, "\r\n") < 0)
        return send_failed(c);
    ev_defer(&c->w->loop, &c->flush_defer);
    return SEND_DONE;
}

static enum send_result h1_send_head(struct http_stream *s, const struct http_response *res)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    if (c->state == CS_CLOSED || c->head_sent)
        return SEND_ERROR;
    if (res->status < 200)
        return h1_send_interim(c, res);
    s->status = res->status;
    c->head_sent = true;
    c->no_body_out = res->no_body || s->req.head;
    /* Unread request body: the connection cannot carry another request reliably, so say so
     * now rather than close unannounced after the response. */
    if (c->w->draining || c->requests >= conn_limits(c)->max_requests_per_connection ||
        !c->body_done)
        c->keepalive = false;
    /* An upgrade answered with an ordinary response: whatever the client sent behind its
     * request head is meant for the new protocol, not a next request, so the connection ends;
     * as it does after the router refused a request it could not read (close_after). */
    if (s->req.upgrade.len || s->close_after)
        c->keepalive = false;
    if (out_status_line(c, c->http10 ? '0' : '1', res->status) < 0 ||
        (!has_field(res, "date", 4) && out_date(c) < 0) ||
        out_fields(c, res->fields, res->nfields) < 0)
        return send_failed(c);
    int rc = 0;
    if (res->status == 204) {
        /* RFC 9110 8.6: never a Content-Length on 204 */
    } else if (res->content_length >= 0) {
        /* HEAD and 304 carry the length the full response would have had */
        rc = out_number(c, "Content-Length: ", 16, (unsigned long long)res->content_length, 0);
    } else if (!c->no_body_out) {
        if (c->http10)
            c->keepalive = false; /* close-delimited */
        else {
            c->chunked_out = true;
            rc = OUT_LIT(c, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (rc == 0) {
        if (!c->keepalive)
            rc = OUT_LIT(c, "Connection: close\r\n\r\n");
        else if (c->http10)
            rc = OUT_LIT(c, "Connection: keep-alive\r\n\r\n");
        else
            rc = OUT_LIT(c, "\r\n");
    }
    if (rc < 0)
        return send_failed(c);
    c->head_final = true;
    ev_defer(&c->w->loop, &c->flush_defer);
    return SEND_DONE;
}

static enum send_result send_result_of(struct h1_conn *c, int r)
{
    if (r == OUTQ_DONE)
        return SEND_DONE;
    if (r == OUTQ_AGAIN || r == OUTQ_YIELD) {
        c->send_pending = true;
        return SEND_PENDING;
    }
    return SEND_ERROR;
}

static enum send_result h1_send_body(struct http_stream *s, const char *data, size_t len)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    if (c->state == CS_CLOSED)
        return SEND_ERROR;
    if (c->no_body_out || len == 0)
        return SEND_DONE;
    if (c->chunked_out && out_number(c, "", 0, len, 1) < 0)
        return send_failed(c);
    if (len <= SEND_COPY_MAX) {
        /* Small slices are copied: one iovec fewer, and callers may pass stack memory. */
        if (outq_append(&c->out, &c->w->bufs, data, len) < 0 ||
            (c->chunked_out && outq_append(&c->out, &c->w->bufs, "\r\n", 2) < 0))
            return send_failed(c);
        /* The caller's bytes are ours now, so the write can wait for the end of this turn:
         * what else the turn produces (the last chunk, the next slice) leaves with them, in
         * one write and, with TCP_NODELAY, one packet rather than one each. Not when the
         * buffer could not take another slice. */
        if (c->wr_ready && buf_room(c->out.gen) >= SEND_COPY_MAX + 64) {
            s->body_bytes_sent += len;
            ev_defer(&c->w->loop, &c->flush_defer);
            return SEND_DONE;
        }
    } else {
        outq_set_ext(&c->out, data, len, c->chunked_out ? "\r\n" : "", c->chunked_out ? 2 : 0);
    }
    s->body_bytes_sent += len;
    if (!c->wr_ready) {
        c->send_pending = true;
        arm_send_timer(c);
        return SEND_PENDING;
    }
    return send_result_of(c, conn_flush(c));
}

/* Body bytes from a file: a file segment in the output queue, after what is queued (a chunk's
 * size line before it, its CRLF after), sent with sendfile as the socket drains. */
static enum send_result h1_send_file(struct http_stream *s, int fd, uint64_t off, uint64_t len)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    if (c->state == CS_CLOSED)
        return SEND_ERROR;
    if (c->no_body_out || len == 0)
        return SEND_DONE;
    if (!c->conn->io->can_sendfile(c->conn))
        return SEND_NOTSUP;
    /* The previous body part is out (the handler waited for on_writable) or copied. */
    GH_BUG_ON(c->out.ext_len || c->out.file_left);
    if (c->chunked_out && out_number(c, "", 0, len, 1) < 0)
        return send_failed(c);
    outq_set_file(&c->out, fd, off, len, c->chunked_out ? "\r\n" : "", c->chunked_out ? 2 : 0);
    if (!c->wr_ready) {
        c->send_pending = true;
        arm_send_timer(c);
        return SEND_PENDING;
    }
    return send_result_of(c, conn_flush(c));
}

/* The handler is done; the connection finishes the exchange on its own from here. */
static enum send_result h1_send_end(struct http_stream *s)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    /* The end comes once per exchange, while it is in flight (or after the connection closed
     * under it): a second send_end would finish the next exchange's state. */
    GH_BUG_ON(c->state != CS_EXCHANGE && c->state != CS_CLOSED);
    c->handler_on = false;
    if (c->state == CS_CLOSED)
        return SEND_ERROR;
    if (c->chunked_out && !c->no_body_out && OUT_LIT(c, "0\r\n\r\n") < 0) {
        conn_close(c);
        return SEND_ERROR;
    }
    c->state = CS_FLUSHING;
    if (!c->wr_ready) {
        arm_send_timer(c);
        return SEND_PENDING;
    }
    int r = conn_flush(c);
    if (r == OUTQ_DONE)
        exchange_finished(c);
    return r == OUTQ_DONE ? SEND_DONE : r == OUTQ_ERROR ? SEND_ERROR : SEND_PENDING;
}

static void h1_abort(struct http_stream *s)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    c->handler_on = false;
    if (!c->logged)
        http_access_log(c->w, s);
    c->logged = true;
    /* Small slices wait for the end of the turn (h1_send_body): a body cut short still
     * carries them, as far as the socket takes them now. Not a file's bytes: the handler
     * closes the file once we return. */
    outq_drop_file(&c->out);
    if (c->state != CS_CLOSED && c->wr_ready && !outq_empty(&c->out))
        conn_flush(c);
    conn_close(c);
}

/* ---- tunnel ------------------------------------------------------------------------------- */

/* The upstream switched protocols: the 101 goes out and the connection becomes a byte pipe.
 * The request head stays pinned for the access-log line written when the tunnel ends; bytes
 * the client sent behind it are already in `in`, the first the tunnel reads. */
static enum send_result h1_upgrade(struct http_stream *s, const struct http_response *res)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    if (c->state != CS_EXCHANGE || c->head_sent || !s->req.upgrade.len)
        return SEND_ERROR;
    if (out_status_line(c, '1', 101) < 0 || out_fields(c, res->fields, res->nfields) < 0 ||
        OUT_LIT(c, "\r\n") < 0)
        return send_failed(c);
    s->status = 101;
    c->tunnel = true;
    c->head_sent = c->head_final = true;
    c->keepalive = false;
    c->chunked_out = c->no_body_out = false;
    c->body_done = false; /* from here on the client's bytes are the tunnel's */
    c->body_rewindable = false;
    ev_timer_stop(&c->w->loop, &c->timer); /* only the tunnel's idle timeout applies now */
    ev_defer(&c->w->loop, &c->flush_defer);
    return SEND_DONE;
}

static void h1_shutdown(struct http_stream *s)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    if (c->state == CS_CLOSED || !c->tunnel)
        return;
    c->shut_pending = true;
    if (outq_empty(&c->out))
        shut_now(c);
}

/* ---- request body ------------------------------------------------------------------------- */

static int conn_read(struct h1_conn *c);

static void send_continue(struct h1_conn *c)
{
    if (!c->expect_continue || c->continue_sent || c->head_sent)
        return;
    c->continue_sent = true;
    if (OUT_LIT(c, "HTTP/1.1 100 Continue\r\n\r\n") == 0)
        conn_flush(c);
}

/* Decode the next body slice from what is buffered. */
static enum body_result body_next(struct h1_conn *c, const char **data, size_t *len)
{
    size_t avail = c->in ? buf_len(c->in) : 0;
    const char *p = c->in ? c->in->data + c->in->start : NULL;
    if (c->body_kind == H1_BODY_LENGTH) {
        if (!avail)
            return BODY_AGAIN;
        *data = p;
        *len = avail < c->body_left ? avail : (size_t)c->body_left;
        return BODY_DATA;
    }
    while (avail) {
        size_t used = 0;
        int r = h1_chunked_decode(&c->chunk, p, avail, &used, data, len);
        if (r == H1_CHUNK_ERROR) {
            conn_fail_later(c, 400, "invalid chunked request body");
            return BODY_ERROR;
        }
        if (r == H1_CHUNK_DATA) {
            c->in->start += (uint32_t)(*data - p); /* framing before the data is consumed */
            return BODY_DATA;
        }
        c->in->start += (uint32_t)used;
        c->body_rewindable = false; /* framing bytes are gone */
        if (r == H1_CHUNK_END) {
            c->body_done = true;
            return BODY_END;
        }
        p += used;
        avail -= used;
    }
    return BODY_AGAIN;
}

/* Tunnel bytes as the client sent them; BODY_END at its FIN (or close_notify). */
static enum body_result tunnel_read(struct h1_conn *c, const char **data, size_t *len)
{
    for (;;) {
        if (c->in && buf_len(c->in)) {
            *data = c->in->data + c->in->start;
            *len = buf_len(c->in);
            c->body_handed = true;
            return BODY_DATA;
        }
        if (c->eof && !c->rd_error) {
            c->body_done = true;
            return BODY_END;
        }
        if (c->eof) {
            log_msg(conn_log(c), LOG_DEBUG, "client %s: tunnel read failed", c->conn->peer);
            conn_close(c);
            return BODY_ERROR;
        }
        if (!c->rd_ready)
            return BODY_AGAIN;
        if (conn_read(c) == 0 && !c->eof)
            return BODY_AGAIN;
    }
}

static enum body_result h1_read_body(struct http_stream *s, const char **data, size_t *len)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    if (c->state == CS_CLOSED)
        return BODY_ERROR;
    if (c->body_done)
        return BODY_END;
    if (c->tunnel)
        return tunnel_read(c, data, len);
    for (;;) {
        enum body_result r = body_next(c, data, len);
        uint64_t max = s->max_body;
        if (r == BODY_DATA && max && c->body_received + *len > max) {
            conn_fail_later(c, 413, "request body larger than max_body_size");
            return BODY_ERROR;
        }
        if (r == BODY_DATA) {
            c->body_handed = true;
            ev_timer_stop(&c->w->loop, &c->timer); /* the client is sending: no body timeout */
            return r;
        }
        if (r != BODY_AGAIN)
            return r;
        send_continue(c);
        if (c->state == CS_CLOSED)
            return BODY_ERROR; /* writing 100 Continue failed; on_close follows */
        if (!c->rd_ready || c->eof)
            break;
        int n = conn_read(c);
        if (n <= 0)
            break;
    }
    if (c->eof && !c->body_done) {
        log_msg(conn_log(c), LOG_INFO, "client %s: closed during the request body", c->conn->peer);
        conn_close(c);
        return BODY_ERROR;
    }
    conn_timer(c, conn_limits(c)->client_body_timeout);
    return BODY_AGAIN;
}

static void h1_body_consumed(struct http_stream *s, size_t n)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    c->body_handed = false;
    if (c->state == CS_CLOSED)
        return;
    c->in->start += (uint32_t)n;
    c->body_received += n;
    if (c->body_kind == H1_BODY_LENGTH) {
        c->body_left -= n;
        if (c->body_left == 0)
            c->body_done = true;
    }
}

/* A request body's chunked framing takes CRLF only, as the head does: a bare LF is a line end
 * to some back ends and not to others, the makings of a smuggled request. */
static void request_chunked_init(struct h1_conn *c)
{
    h1_chunked_init(&c->chunk);
    c->chunk.crlf_only = true;
}

static bool h1_body_rewind(struct http_stream *s)
{
    struct h1_conn *c = container_of(s, struct h1_conn, stream);
    if (c->body_kind == H1_BODY_NONE)
        return true;
    if (!c->body_rewindable || c->body_handed)
        return false;
    if (c->body_kind == H1_BODY_CHUNKED) {
        /* Decoding consumes the framing, so a chunked body goes again only when none of it
         * was read yet: the common case of a connect that failed. */
        if (c->body_received || c->in->start != c->head_len)
            return false;
        request_chunked_init(c);
        return true;
    }
    c->in->start = c->head_len;
    c->body_left += c->body_received;
    c->body_received = 0;
    c->body_done = c->body_left == 0;
    return true;
}

static const struct http_stream_ops h1_stream_ops = {
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .send_file = h1_send_file,
    .send_end = h1_send_end,
    .abort = h1_abort,
    .read_body = h1_read_body,
    .body_consumed = h1_body_consumed,
    .body_rewind = h1_body_rewind,
    .upgrade = h1_upgrade,
    .shutdown = h1_shutdown,
};

/* ---- errors answered by the codec itself -------------------------------------------------- */

/* Answer `status` and close: for requests we refuse before (or instead of) a handler. Must
 * not be called from inside a handler's call into the stream (see conn_fail_later). */
static void conn_fail(struct h1_conn *c, int status, const char *why)
{
    log_msg(conn_log(c), LOG_INFO, "client %s: %d %s: %s", c->conn->peer, status,
            http_reason(status), why);
    if (c->handler_on) {
        c->handler_on = false;
        c->stream.handler->on_close(&c->stream);
    }
    if (c->head_sent || c->state == CS_CLOSED) {
        conn_close(c);
        return;
    }
    c->keepalive = false;
    c->state = CS_EXCHANGE;
    c->stream.handler = NULL;
    http_respond_text(&c->stream, status, NULL);
}

static void conn_on_fail(struct ev_defer *d)
{
    struct h1_conn *c = container_of(d, struct h1_conn, fail_defer);
    if (c->state != CS_CLOSED)
        conn_fail(c, c->fail_status, c->fail_why);
}

static void conn_fail_later(struct h1_conn *c, int status, const char *why)
{
    c->fail_status = status;
    c->fail_why = why;
    ev_defer(&c->w->loop, &c->fail_defer);
}

static void stream_init(struct h1_conn *c)
{
    http_stream_init(&c->stream, &h1_stream_ops, c->conn, c->conn->config, c->conn->listener);
    c->logged = false;
}

/* A stream for an answer the codec gives on its own (the request head was unusable). */
static void prepare_error_stream(struct h1_conn *c)
{
    stream_init(c);
    c->http10 = false;
    c->head_sent = c->chunked_out = c->no_body_out = c->send_pending = false;
    c->body_kind = H1_BODY_NONE;
    c->body_done = true;
    c->pinned = false;
}

/* ---- request start ------------------------------------------------------------------------ */

static int ensure_header_room(struct h1_conn *c, uint32_t n)
{
    if (c->heads && c->heads->cap >= n)
        return 0;
    heads_put(c->w, c->heads);
    c->heads = heads_get(c->w, n);
    return c->heads ? 0 : -1;
}

/* Split the target into path and query; absolute-form gives its authority. */
static void split_target(struct http_request *r)
{
    const char *t = r->target.p;
    size_t len = r->target.len;
    if (len && t[0] != '/' && t[0] != '*') {
        const char *scheme_end = memchr(t, ':', len);
        if (scheme_end && (size_t)(scheme_end - t) + 3 <= len && scheme_end[1] == '/' &&
            scheme_end[2] == '/') {
            const char *auth = scheme_end + 3;
            const char *end = t + len;
            const char *slash = auth;
            while (slash < end && *slash != '/' && *slash != '?')
                slash++;
            r->authority = (struct slice){auth, (size_t)(slash - auth)};
            r->authority_in_target = true;
            t = slash;
            len = (size_t)(end - slash);
        }
    }
    const char *q = memchr(t, '?', len);
    if (q) {
        r->path = (struct slice){t, (size_t)(q - t)};
        r->query = (struct slice){q + 1, len - (size_t)(q - t) - 1};
    } else {
        r->path = (struct slice){t, len};
        r->query = (struct slice){NULL, 0};
    }
    if (r->path.len == 0)
        r->path = SLICE_LIT("/");
}

/* A request that may become a tunnel (see http_request.upgrade): HTTP/1.1, Connection:
 * upgrade and an Upgrade field, and no body, whose end would be ambiguous with the first tunnel
 * bytes. Anything else is an ordinary request whose Upgrade the proxy drops as hop-by-hop. The
 * offered list is copied out of the head because h2c is taken out of it. */
static void find_upgrade(struct h1_conn *c, const struct h1_request *h)
{
    struct http_request *r = &c->stream.req;
    const unsigned both = H1_F_CONN_UPGRADE | H1_F_HAS_UPGRADE;
    if (h->minor != 1 || (h->flags & both) != both || r->has_body || r->head)
        return;
    size_t n = hop_upgrade_offer(r->fields, r->nfields, c->upgrade, sizeof(c->upgrade));
    if (n)
        r->upgrade = (struct slice){c->upgrade, n};
}

static void fill_request(struct h1_conn *c, const struct h1_request *h)
{
    struct http_request *r = &c->stream.req;
    *r = (struct http_request){0};
    r->method = (struct slice){h->method, h->method_len};
    r->target = (struct slice){h->target, h->target_len};
    r->protocol = h->minor ? SLICE_LIT("HTTP/1.1") : SLICE_LIT("HTTP/1.0");
    if (h->host)
        r->authority = (struct slice){h->host, h->host_len};
    for (uint32_t i = 0; i < h->nheaders; i++)
        c->heads->fields[i] =
            (struct http_field){c->heads->hdrs[i].name, c->heads->hdrs[i].value,
                                c->heads->hdrs[i].name_len, c->heads->hdrs[i].value_len};
    r->fields = c->heads->fields;
    r->nfields = h->nheaders;
    r->head = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    r->has_body = h->body != H1_BODY_NONE;
    r->content_length = h->body == H1_BODY_LENGTH ? (int64_t)h->content_length : -1;
    if (h->body == H1_BODY_LENGTH && h->content_length == 0)
        r->has_body = false;
    r->expect_continue = (h->flags & H1_F_EXPECT_CONTINUE) != 0;
    split_target(r);
    find_upgrade(c, h);
}

static void reset_exchange(struct h1_conn *c, const struct h1_request *h)
{
    stream_init(c);
    c->requests++;
    c->http10 = h->minor == 0;
    c->keepalive =
        c->http10 ? (h->flags & H1_F_CONN_KEEPALIVE) != 0 : (h->flags & H1_F_CONN_CLOSE) == 0;
    if (conn_limits(c)->keepalive_timeout == 0)
        c->keepalive = false;
    c->send_pending = c->head_sent = c->head_final = false;
    c->chunked_out = c->no_body_out = false;
    c->head_len = h->head_len;
    c->pinned = true;
    c->body_kind = h->body;
    c->body_left = h->content_length;
    c->body_received = 0;
    c->body_done = h->body == H1_BODY_NONE || (h->body == H1_BODY_LENGTH && !h->content_length);
    c->body_handed = false;
    c->body_rewindable = true;
    c->continue_sent = false;
    c->expect_continue = (h->flags & H1_F_EXPECT_CONTINUE) && !c->http10;
    c->tunnel = c->shut_pending = false;
    request_chunked_init(c);
}

/* The path is normalised before routing (http/path.h), so ".." or an encoding cannot leave a
 * route's prefix; the normalised path lives in a per-connection buffer (the head itself stays as
 * received). */
static int normalize_path(struct h1_conn *c)
{
    struct http_request *r = &c->stream.req;
    if (!http_path_needs_normalize(r->path.p, r->path.len))
        return 0;
    if (c->path_cap < r->path.len) {
        char *p = realloc(c->path_buf, r->path.len);
        if (!p)
            return -1;
        c->path_buf = p;
        c->path_cap = r->path.len;
    }
    r->path.len = http_path_normalize(r->path.p, r->path.len, c->path_buf);
    r->path.p = c->path_buf;
    return 0;
}

/* Whether the chunked framing of the body bytes already buffered behind the head is valid so
 * far. Checked before the request goes anywhere, so a body known to be broken (a bare LF in a
 * chunk line, say) never puts even its head on an upstream connection. Only the framing bytes
 * are looked at: data spans are skipped whole. */
static bool buffered_chunks_valid(const struct h1_conn *c)
{
    struct h1_chunked k;
    h1_chunked_init(&k);
    k.crlf_only = true;
    const char *p = c->in->data + c->in->start;
    size_t n = buf_len(c->in);
    while (n) {
        size_t used = 0, dlen;
        const char *data;
        int r = h1_chunked_decode(&k, p, n, &used, &data, &dlen);
        if (r == H1_CHUNK_ERROR)
            return false;
        if (r != H1_CHUNK_DATA)
            return true; /* END (what follows is the next request) or all framing seen */
        p += used;
        n -= used;
    }
    return true;
}

/* Start the exchange for a complete, valid head. */
/* A reload happened: new requests use the new snapshot, with the settings of the listener at
 * this connection's address (never those of the listener now at its old position). False when
 * the reload dropped that listener: the connection keeps its snapshot for a last request. */
static bool take_new_config(struct h1_conn *c)
{
    if (c->conn->config == c->w->config)
        return true;
    int listener = worker_listener_match(c->conn->config, c->conn->listener, c->w->config);
    if (listener < 0)
        return false;
    config_unref(c->conn->config);
    c->conn->config = c->w->config;
    config_ref(c->conn->config);
    c->conn->listener = listener;
    return true;
}

static void start_exchange(struct h1_conn *c, const struct h1_request *h)
{
    /* One exchange at a time: a head is parsed only between exchanges (read_requests), and the
     * handler of the last one has let go (send_end, abort or on_close). */
    GH_BUG_ON(c->handler_on || (c->state != CS_IDLE && c->state != CS_HEAD));
    bool listener_kept = take_new_config(c);
    reset_exchange(c, h);
    if (!listener_kept)
        c->keepalive = false;
    fill_request(c, h);
    c->in->start = h->head_len;
    c->state = CS_EXCHANGE;
    ev_timer_stop(&c->w->loop, &c->timer);
    if (h->minor == 1 && h->host_count != 1) {
        conn_fail(c, 400, h->host_count ? "several Host headers" : "missing Host header");
        return;
    }
    if (h->body == H1_BODY_CHUNKED && !buffered_chunks_valid(c)) {
        conn_fail(c, 400, "invalid chunked request body");
        return;
    }
    if (normalize_path(c) < 0) {
        conn_fail(c, 500, "out of memory");
        return;
    }
    c->handler_on = true;
    http_dispatch(&c->stream);
}

/* ---- input -------------------------------------------------------------------------------- */

/* Give the connection (and the bytes already read) to the HTTP/2 codec; this one then goes
 * away without closing it. */
static void hand_over_to_h2(struct h1_conn *c)
{
    struct conn *conn = c->conn;
    const char *initial = c->in ? c->in->data + c->in->start : NULL;
    size_t initial_len = c->in ? buf_len(c->in) : 0;
    ev_io_del(&c->w->loop, &c->io); /* before h2 registers the same fd */
    c->handed_over = true;
    conn_close(c);
    conn_switch(conn, CONN_HTTP2, initial, initial_len);
}

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* On an h2c listener, a connection opening with the HTTP/2 preface speaks HTTP/2 (prior
 * knowledge, RFC 9113 section 3.3). 1 = it does, 0 = it does not, -1 = too few bytes yet. */
static int h2c_preface(const struct h1_conn *c)
{
    const struct cfg_listener *l = (size_t)c->conn->listener < c->conn->config->nlisteners
                                       ? &c->conn->config->listeners[c->conn->listener]
                                       : NULL;
    if (!l || !l->h2c || c->requests || !c->in)
        return 0;
    size_t n = buf_len(c->in), want = sizeof(h2_preface) - 1;
    if (memcmp(c->in->data + c->in->start, h2_preface, n < want ? n : want) != 0)
        return 0;
    return n >= want ? 1 : -1;
}

/* Read what the socket has into `in`. Returns bytes read, 0 on EOF/full/again, -1 on error. */
static int conn_read(struct h1_conn *c)
{
    if (!c->in) {
        c->in = buf_get(&c->w->bufs);
        if (!c->in)
            return -1;
    }
    uint32_t keep = c->pinned ? c->head_len : 0;
    if (buf_room(c->in) == 0 && c->in->start > keep && !c->body_handed) {
        if (c->pinned)
            c->body_rewindable = false; /* consumed body bytes are overwritten */
        buf_compact(c->in, keep);
    }
    size_t room = buf_room(c->in);
    if (room == 0)
        return 0;
    ssize_t n = conn_recv(c->conn, c->in->data + c->in->end, room);
    if (n > 0) {
        c->in->end += (uint32_t)n;
        /* A short read drained the socket, unless the peer's FIN came with the data: then
         * the next read must see the end (no further edge will announce it). Under TLS a
         * short read says nothing (records are buffered): read on until WANT_READ. */
        if ((size_t)n < room && !c->rdhup && c->conn->io->short_read_drains)
            c->rd_ready = false;
        return (int)n;
    }
    c->rd_ready = false;
    if (n == 0) {
        c->eof = true;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    c->eof = c->rd_error = true;
    return -1;
}

static void parse_head(struct h1_conn *c)
{
    const struct cfg_limits *lim = conn_limits(c);
    if (ensure_header_room(c, lim->max_header_count) < 0) {
        conn_close(c);
        return;
    }
    struct h1_limits hl = {lim->max_request_line, lim->max_header_size, lim->max_header_count};
    struct h1_request h;
    int r = h1_parse_request(c->in->data + c->in->start, buf_len(c->in), &h, c->heads->hdrs, &hl);
    if (r == H1_OK) {
        start_exchange(c, &h);
        return;
    }
    heads_put(c->w, c->heads); /* nothing refers to them: the head is parsed afresh next time */
    c->heads = NULL;
    if (r == H1_ERROR) {
        prepare_error_stream(c);
        conn_fail(c, h.status ? h.status : 400, h.error ? h.error : "malformed request");
        return;
    }
    if (buf_room(c->in) == 0) {
        prepare_error_stream(c);
        conn_fail(c, 431, "request head too large");
        return;
    }
    if (c->state == CS_IDLE) {
        c->state = CS_HEAD;
        ev_timer_start(&c->w->loop, &c->timer, lim->client_header_timeout);
    }
}

/* Between requests: parse a pipelined request or read a new one. */
static void read_requests(struct h1_conn *c)
{
    while (c->state == CS_IDLE || c->state == CS_HEAD) {
        size_t before = c->in ? buf_len(c->in) : 0;
        if (before) {
            if (c->in->start) {
                buf_compact(c->in, 0);
            }
            int h2 = h2c_preface(c);
            if (h2 > 0) {
                hand_over_to_h2(c);
                return;
            }
            if (h2 < 0) { /* part of the preface: wait for the rest before judging */
                if (!c->rd_ready) {
                    if (c->state == CS_IDLE) {
                        c->state = CS_HEAD;
                        conn_timer(c, conn_limits(c)->client_header_timeout);
                    }
                    break;
                }
                int n = conn_read(c);
                if (n < 0 || (n == 0 && c->eof)) {
                    conn_close(c);
                    return;
                }
                continue;
            }
            parse_head(c);
            if (c->state != CS_HEAD && c->state != CS_IDLE)
                return;
        }
        if (!c->rd_ready)
            break;
        int n = conn_read(c);
        if (n < 0 || (n == 0 && c->eof)) {
            if (c->state == CS_HEAD && buf_len(c->in))
                log_msg(conn_log(c), LOG_INFO, "client %s: closed with an incomplete request head",
                        c->conn->peer);
            conn_close(c);
            return;
        }
        if (n == 0)
            break;
    }
    if (c->state == CS_IDLE && c->in && buf_len(c->in) == 0) {
        buf_put(&c->w->bufs, c->in); /* idle connections hold no buffer */
        c->in = NULL;
    }
}

/* The handler may have been waiting for body bytes: read and wake it. */
static void feed_body(struct h1_conn *c)
{
    if (c->body_done || c->body_handed || !c->handler_on)
        return;
    if (c->rd_ready && !c->eof) {
        int n = conn_read(c);
        if (n <= 0 && !c->eof && !(c->in && buf_len(c->in)))
            return;
    }
    if ((c->in && buf_len(c->in)) || c->eof)
        c->stream.handler->on_body(&c->stream);
}

/* Discard input after the response so the close does not reset the connection while the
 * client is still sending (which would destroy the response in its receive queue). */
static void linger_read(struct h1_conn *c)
{
    if (sock_discard(c->conn->fd))
        conn_close(c);
}

static void start_linger(struct h1_conn *c)
{
    c->state = CS_LINGER;
    shutdown(c->conn->fd, SHUT_WR);
    conn_timer(c, 2000);
    linger_read(c);
}

static void exchange_finished(struct h1_conn *c)
{
    http_access_log(c->w, &c->stream);
    c->stream.req.fields = NULL;
    c->stream.req.nfields = 0;
    heads_put(c->w, c->heads); /* idle connections hold no header arrays */
    c->heads = NULL;
    c->pinned = false;
    bool body_left = !c->body_done;
    if (!c->keepalive || c->w->draining || body_left || c->eof) {
        if (body_left || (c->in && buf_len(c->in)))
            start_linger(c);
        else
            conn_close(c);
        return;
    }
    c->state = CS_IDLE;
    conn_timer(c, conn_limits(c)->keepalive_timeout);
    if (c->in && buf_len(c->in)) {
        c->state = CS_HEAD;
        conn_timer(c, conn_limits(c)->client_header_timeout);
    }
    /* Not read_requests() directly: we may be inside the handler's send_end, and a buffer
     * of pipelined requests must not become a recursion. */
    ev_defer(&c->w->loop, &c->process_defer);
}

static void conn_process(struct h1_conn *c)
{
    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD:
        read_requests(c);
        break;
    case CS_EXCHANGE:
        if (c->send_pending && outq_empty(&c->out)) {
            c->send_pending = false;
            c->stream.handler->on_writable(&c->stream);
        }
        if (c->state == CS_EXCHANGE)
            feed_body(c);
        break;
    case CS_FLUSHING:
        if (outq_empty(&c->out))
            exchange_finished(c);
        break;
    case CS_LINGER:
        linger_read(c);
        break;
    case CS_CLOSED:
        break;
    }
}

static void conn_on_io(struct ev_io *io, uint32_t events)
{
    struct h1_conn *c = container_of(io, struct h1_conn, io);
    if (c->state == CS_CLOSED)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rd_ready = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        c->wr_ready = true;
    if (c->wr_ready && !outq_empty(&c->out)) {
        if (conn_flush(c) == OUTQ_ERROR)
            return;
    }
    conn_process(c);
}

static void conn_on_timer(struct ev_timer *t)
{
    struct h1_conn *c = container_of(t, struct h1_conn, timer);
    switch (c->state) {
    case CS_IDLE:
        conn_close(c);
        break;
    case CS_HEAD:
        prepare_error_stream(c);
        conn_fail(c, 408, "request head not received within client_header_timeout");
        break;
    case CS_EXCHANGE:
        if (!c->body_done)
            conn_fail(c, 408, "request body stalled for client_body_timeout");
        break;
    case CS_FLUSHING:
        break;
    case CS_LINGER:
    case CS_CLOSED:
        conn_close(c);
        break;
    }
}

static void conn_on_send_timer(struct ev_timer *t)
{
    struct h1_conn *c = container_of(t, struct h1_conn, send_timer);
    if (c->state == CS_CLOSED || outq_empty(&c->out))
        return;
    log_msg(conn_log(c), LOG_INFO, "client %s: not reading the response for send_timeout",
            c->conn->peer);
    conn_close(c);
}

/* ---- worker hooks ------------------------------------------------------------------------- */

/* Shutdown: close the connection now if idle, else after its exchange in flight. */
static void h1_drain(struct conn_base *b)
{
    struct h1_conn *c = container_of(b, struct h1_conn, base);
    /* A connection accepted but not yet read gets its request served (with Connection:
     * close); one idle between requests is closed now. */
    if (c->state == CS_IDLE && c->requests > 0)
        conn_close(c);
    else
        c->keepalive = false;
    if (c->handler_on && c->stream.handler->on_drain)
        c->stream.handler->on_drain(&c->stream);
}

static bool h1_close_if_idle(struct conn_base *b)
{
    struct h1_conn *c = container_of(b, struct h1_conn, base);
    if (c->state != CS_IDLE || c->requests == 0)
        return false;
    conn_close(c);
    return true;
}

static void h1_force_close(struct conn_base *b)
{
    conn_close(container_of(b, struct h1_conn, base));
}

/* A reload that drops this connection's listener ends the connection as a shutdown would: now
 * if idle, else after the exchange in flight. Otherwise the next request takes the new
 * snapshot (start_exchange). */
static void h1_on_reload(struct conn_base *b)
{
    struct h1_conn *c = container_of(b, struct h1_conn, base);
    if (c->state == CS_CLOSED || c->tunnel ||
        worker_listener_match(c->conn->config, c->conn->listener, c->w->config) >= 0)
        return;
    if (c->state == CS_IDLE && c->requests > 0)
        conn_close(c);
    else
        c->keepalive = false;
}

static const struct conn_ops h1_conn_ops = {
    .drain = h1_drain,
    .close_if_idle = h1_close_if_idle,
    .force_close = h1_force_close,
    .on_reload = h1_on_reload,
};
