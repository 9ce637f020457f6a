/* What the files handler's own files share (files.c, files_body.c, files_worker.c). */
#ifndef GH_SERVE_FILES_INTERNAL_H
#define GH_SERVE_FILES_INTERNAL_H

#include "core/freelist.h"
#include "http/range.h"

#include <stddef.h>

struct files_cache;
struct files_entry;
struct http_stream;
struct worker;

struct files_worker {
    struct files_cache *cache; /* NULL when files_cache.entries is 0 */
    struct freelist xfers;     /* struct files_xfer, one per body being sent */
};

/* The worker's files state (files_worker.c); never NULL after files_worker_init. */
struct files_worker *files_worker_of(struct worker *w);

/* What files_body_start sends: ranges of the entry's file, framed as multipart/byteranges when
 * `multipart` (then ctype is the parts' Content-Type, boundary the plan's). */
struct files_body {
    struct http_range_plan plan; /* FULL is sent as one range over the whole file */
    bool multipart;
    const char *boundary;
    const char *ctype;
    size_t ctype_len;
};

/* One request to a files route, while its answer is being chosen (files.c, files_respond.c). */
struct cfg_files;
struct files_req {
    struct http_stream *s;
    const struct cfg_files *fs;
    struct files_cache *cache;
    uint64_t now_ms;
    uint32_t valid_ms;
};

/* The entry for a relative path, through the worker's cache; NULL when out of memory. */
struct files_entry *files_req_get(struct files_req *q, const char *rel, size_t len);

/* Answers with the regular file `e` found under the name `name` (its relative path, which gives
 * the Content-Type and the precompressed siblings' names): precompressed choice, conditionals,
 * ranges, the head, then the body. Takes over the reference on e. */
void files_respond(struct files_req *q, struct files_entry *e, const char *name, size_t name_len);

/* Sends the body of a response whose head went out with the matching length, then ends the
 * exchange; takes over the caller's reference on `e`. */
void files_body_start(struct http_stream *s, struct files_entry *e, const struct files_body *b);
/* The same for a body in memory (a listing): `mem` (malloc'd) is taken over and freed once sent
 * or when the client goes away. */
void files_body_start_mem(struct http_stream *s, char *mem, size_t len);
size_t files_xfer_size(void);

#endif
