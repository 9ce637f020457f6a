/* The files handler's per-worker state: the open-file cache, sized by the snapshot's
 * files_cache, and the free list the transfers come from. */
#include "serve/files.h"

#include "config/config.h"
#include "core/worker.h"
#include "serve/files_cache.h"
#include "serve/files_internal.h"

#include <stdlib.h>

struct files_worker *files_worker_of(struct worker *w)
{
    return w->files;
}

int files_worker_init(struct worker *w)
{
    struct files_worker *fw = calloc(1, sizeof *fw);
    if (!fw)
        return -1;
    freelist_init(&fw->xfers, files_xfer_size(), 64);
    if (w->config->files_cache.entries &&
        !(fw->cache = files_cache_new(w->config->files_cache.entries))) {
        free(fw);
        return -1;
    }
    w->files = fw;
    return 0;
}

void files_worker_reload(struct worker *w, const struct config *c)
{
    struct files_worker *fw = w->files;
    if (!fw)
        return;
    if (!c->files_cache.entries) {
        files_cache_free(fw->cache);
        fw->cache = NULL;
    } else if (fw->cache) {
        files_cache_set_max(fw->cache, c->files_cache.entries);
    } else {
        fw->cache = files_cache_new(c->files_cache.entries); /* NULL: served without a cache */
    }
}

void files_worker_fini(struct worker *w)
{
    struct files_worker *fw = w->files;
    if (!fw)
        return;
    files_cache_free(fw->cache);
    freelist_fini(&fw->xfers);
    free(fw);
    w->files = NULL;
}
