/* The `files` route action: static files from a directory (docs/files.md). */
#ifndef GH_SERVE_FILES_H
#define GH_SERVE_FILES_H

struct http_stream;
struct cfg_route;
struct worker;
struct config;

void files_handle(struct http_stream *s, const struct cfg_route *route);

/* The per-worker state (the open-file cache, the transfers' free list), behind the pointer
 * w->files; main.c calls these from its worker hooks. */
int files_worker_init(struct worker *w);
void files_worker_reload(struct worker *w, const struct config *c);
void files_worker_fini(struct worker *w);

#endif
