/* The `files` route action (docs/files.md): from the request to the file that answers it. The
 * method, the path (files_path.h), the lookup through the worker's open-file cache, directories
 * (the redirect to the slash form, index files, the listing) and the fallback of single-page
 * apps; files_respond.c then answers with the file. */
#include "serve/files.h"

#include "config/config.h"
#include "core/worker.h"
#include "http/request.h"
#include "http/respond.h"
#include "serve/files_cache.h"
#include "serve/files_internal.h"
#include "serve/files_listing.h"
#include "serve/files_path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILES_ALLOW "GET, HEAD"

static bool method_is(const struct http_request *r, const char *m, size_t len)
{
    return r->method.len == len && !memcmp(r->method.p, m, len);
}

/* RFC 9110 15.5.6: a 405 lists what is allowed; OPTIONS (9.3.7) says the same with a 204. */
static void method_refused(struct http_stream *s)
{
    static const char body[] = "405 Method Not Allowed\n";
    struct http_field allow = {"Allow", FILES_ALLOW, 5, sizeof FILES_ALLOW - 1};
    if (method_is(&s->req, "OPTIONS", 7))
        http_respond(s, 204, NULL, "", 0, &allow, 1);
    else
        http_respond(s, 405, "text/plain; charset=utf-8", body, sizeof body - 1, &allow, 1);
}

struct files_entry *files_req_get(struct files_req *q, const char *rel, size_t len)
{
    return files_cache_get(q->cache, q->fs, rel, len, q->now_ms, q->valid_ms);
}

static bool is_regular(const struct files_entry *e)
{
    return e && !e->err && S_ISREG(e->st.st_mode);
}

/* A missing file: the fallback (single-page apps route in the browser), else 404. */
static void not_found(struct files_req *q)
{
    const struct cfg_files *fs = q->fs;
    if (fs->fallback) {
        struct files_entry *e = files_req_get(q, fs->fallback, fs->fallback_len);
        if (is_regular(e)) {
            files_respond(q, e, fs->fallback, fs->fallback_len);
            return;
        }
        files_entry_put(q->cache, e);
    }
    http_respond_text(q->s, 404, NULL);
}

/* The slash form of the client's path (normalised, still percent-encoded, so a name with a
 * space stays "%20"), its query kept. Normalised, it never starts with "//" (which a browser
 * would read as another host). */
static void redirect_slash(struct http_stream *s)
{
    const struct http_request *r = &s->req;
    char location[16384];
    int n = snprintf(location, sizeof location, "%.*s/%s%.*s", (int)r->path.len, r->path.p,
                     r->query.p ? "?" : "", r->query.p ? (int)r->query.len : 0,
                     r->query.p ? r->query.p : "");
    if (n < 0 || (size_t)n >= sizeof location || r->path.len > 8192) {
        http_respond_text(s, 414, NULL);
        return;
    }
    static const char body[] = "301 Moved Permanently\n";
    struct http_field loc = {"Location", location, 8, (uint32_t)n};
    http_respond(s, 301, "text/plain; charset=utf-8", body, sizeof body - 1, &loc, 1);
}

/* A directory asked for with its slash: the first index file that is a regular file. */
static bool serve_index(struct files_req *q, const char *rel, size_t len)
{
    const struct cfg_files *fs = q->fs;
    char path[FILES_PATH_MAX];
    for (size_t i = 0; i < fs->nindex; i++) {
        size_t nlen = strlen(fs->index[i]);
        size_t n = len ? len + 1 + nlen : nlen;
        if (n >= sizeof path)
            continue;
        if (len) {
            memcpy(path, rel, len);
            path[len] = '/';
        }
        memcpy(path + (len ? len + 1 : 0), fs->index[i], nlen + 1);
        struct files_entry *e = files_req_get(q, path, n);
        if (is_regular(e)) {
            files_respond(q, e, path, n);
            return true;
        }
        files_entry_put(q->cache, e);
    }
    return false;
}

/* The directory's listing (files_listing.h): HTML, or JSON when Accept prefers it; the Vary
 * says so. Never cached by us: it is rendered from the directory as it is now. */
static void serve_listing(struct files_req *q, int dirfd)
{
    struct http_stream *s = q->s;
    const struct http_request *r = &s->req;
    const struct http_field *accept = http_find_field(r, "accept", 6);
    bool json = accept && files_listing_wants_json(accept->value, accept->value_len);
    struct files_listing out;
    if (files_listing_render(dirfd, r->path.p, r->path.len, json, q->fs->hidden, &out) < 0) {
        http_respond_text(s, errno == EACCES ? 403 : errno == ENOMEM ? 503 : 404, NULL);
        return;
    }
    struct http_field f[4] = {
        {"Content-Type", out.content_type, 12, (uint32_t)strlen(out.content_type)},
        {"X-Content-Type-Options", "nosniff", 22, 7},
        {"Vary", "Accept", 4, 6},
        {"Cache-Control", "no-cache", 13, 8},
    };
    struct http_response res = {
        .status = 200, .fields = f, .nfields = 4, .content_length = (int64_t)out.len};
    if (handler_send_head(s, &res) == SEND_ERROR || r->head || !out.len) {
        free(out.body);
        s->ops->send_end(s);
        return;
    }
    files_body_start_mem(s, out.body, out.len);
}

/* A directory: the slash form first; then its index, its listing, or as if missing. */
static void serve_dir(struct files_req *q, struct files_entry *dir, const char *rel, size_t len,
                      bool slash)
{
    if (!slash) {
        redirect_slash(q->s);
    } else if (!serve_index(q, rel, len)) {
        if (q->fs->listing)
            serve_listing(q, dir->fd);
        else
            not_found(q);
    }
    files_entry_put(q->cache, dir);
}

void files_handle(struct http_stream *s, const struct cfg_route *route)
{
    const struct http_request *r = &s->req;
    if (!method_is(r, "GET", 3) && !method_is(r, "HEAD", 4)) {
        method_refused(s);
        return;
    }
    struct files_worker *fw = files_worker_of(s->worker);
    struct files_req q = {.s = s,
                          .fs = route->files,
                          .cache = fw->cache,
                          .now_ms = s->worker->loop.now,
                          .valid_ms = s->config->files_cache.valid};
    char rel[FILES_PATH_MAX];
    size_t skip = s->path_rest <= r->path.len ? s->path_rest : r->path.len, len = 0;
    bool slash;
    if (!files_path_relative(r->path.p + skip, r->path.len - skip, q.fs->hidden, rel, sizeof rel,
                             &len, &slash)) {
        http_respond_text(s, 404, NULL); /* never looked up, so never a fallback either */
        return;
    }
    struct files_entry *e = files_req_get(&q, rel, len);
    if (!e) {
        http_respond_text(s, 503, NULL);
        return;
    }
    if (!e->err && S_ISDIR(e->st.st_mode)) {
        serve_dir(&q, e, rel, len, slash);
        return;
    }
    if (e->err || slash) {
        int status = e->err ? files_path_status(e->err) : 404;
        files_entry_put(q.cache, e);
        if (status == 403)
            http_respond_text(s, 403, NULL);
        else
            not_found(&q); /* missing, or a file asked for as a directory ("a.txt/") */
        return;
    }
    files_respond(&q, e, rel, len);
}
