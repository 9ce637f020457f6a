/* The `files` route action and the top-level `files_cache` (docs/files.md): the root is opened
 * here, once per snapshot, so that every lookup is made relative to it (openat2 with
 * RESOLVE_BENEATH) and `gatehouse -t` refuses a root that is missing or not a directory; the
 * Content-Type tables are built here too, so a request never parses a mime.types file. */
#include "config/config_walk.h"
#include "http/encoder.h"
#include "serve/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILES_MIME_TYPES "/etc/mime.types"
#define FILES_MAX_INDEX 16

static const char *const follow_names[] = {"inside_root", "always", "never", NULL};
_Static_assert(CFG_FOLLOW_INSIDE_ROOT == 0 && CFG_FOLLOW_ALWAYS == 1 && CFG_FOLLOW_NEVER == 2,
               "follow_names follows enum cfg_follow");

/* Config names of the precompressed codings and the enum encoder_kind each stands for. */
static const struct {
    const char *name;
    enum encoder_kind kind;
} codings[] = {{"br", ENCODER_BR}, {"zstd", ENCODER_ZSTD}, {"gzip", ENCODER_GZIP}};
_Static_assert(sizeof codings / sizeof *codings == CFG_FILES_CODINGS, "one entry per coding");

/* ---- root ---- */

/* The directory, opened O_PATH: it is never read, only walked from. Relative to the
 * configuration file's directory, as every other path of the file. */
static void conv_root(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_files *fs = base;
    struct stat st;

    cfg_conv_path(ld, f, val, base);
    if (!fs->root)
        return;
    fs->root_fd = open(fs->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fs->root_fd < 0) {
        int err = errno;
        cfg_report(ld, val, "files root '%.200s' %s", fs->root,
                   err == ENOENT    ? "does not exist"
                   : err == ENOTDIR ? "is not a directory"
                                    : strerror(err));
        return;
    }
    if (fstat(fs->root_fd, &st) < 0) {
        cfg_report(ld, val, "files root '%.200s': %s", fs->root, strerror(errno));
        return;
    }
    fs->root_dev = st.st_dev;
    fs->root_ino = st.st_ino;
}

/* ---- index, fallback ---- */

/* One file name: no '/', not "." or "..", no control characters. */
static bool file_name_ok(const char *s, size_t len)
{
    return len && len < 256 && !memchr(s, '/', len) && strcmp(s, ".") && strcmp(s, "..") &&
           cfg_printable(s, true) && strlen(s) == len;
}

static void index_name(struct load *ld, const struct ynode *item, struct cfg_files *fs)
{
    const char *s = cfg_text(ld, "index", item, "a list of file names");

    if (!s)
        return;
    if (!file_name_ok(s, item->len)) {
        cfg_report(ld, item, "index '%.64s' must be a file name (no '/', not '.' or '..')", s);
        return;
    }
    fs->index[fs->nindex++] = cfg_strdup(ld, s, item->len);
}

/* A list of names, or one name alone; [] tries none. */
static void conv_index(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_files *fs = base;
    size_t n = val->kind == YNODE_LIST ? val->nitems : 1;

    (void)f;
    if (val->kind == YNODE_MAP) {
        cfg_want(ld, "'index'", val, YNODE_LIST);
        return;
    }
    if (n > FILES_MAX_INDEX) {
        cfg_report(ld, val, "'index' lists at most %d names", FILES_MAX_INDEX);
        return;
    }
    fs->nindex = 0;
    if (!(fs->index = cfg_alloc(ld, (n + 1) * sizeof *fs->index)))
        return;
    if (val->kind != YNODE_LIST) {
        index_name(ld, val, fs);
        return;
    }
    for (size_t i = 0; i < n; i++)
        index_name(ld, val->items[i], fs);
}

/* A path under root, written as a URL path ("/index.html"): no dot segments, no query. */
static void conv_fallback(struct load *ld, const struct field *f, const struct ynode *val,
                          void *base)
{
    struct cfg_files *fs = base;
    const char *s = cfg_text(ld, f->key, val, "a path like /index.html");
    size_t len;

    if (!s)
        return;
    len = val->len;
    if (s[0] != '/' || len < 2 || s[len - 1] == '/' || !cfg_printable(s, true) ||
        strlen(s) != len || strpbrk(s, "?#\\") || strstr(s, "//") || strstr(s, "/./") ||
        strstr(s, "/../") || (len >= 2 && !strcmp(s + len - 2, "/.")) ||
        (len >= 3 && !strcmp(s + len - 3, "/.."))) {
        cfg_report(ld, val,
                   "fallback '%.64s' must be a file's path under root, like /index.html (no '.' "
                   "or '..' segments, '?', '#' or '\\')",
                   s);
        return;
    }
    fs->fallback = cfg_strdup(ld, s + 1, len - 1);
    fs->fallback_len = len - 1;
}

/* ---- precompressed ---- */

static int coding_of(const char *s)
{
    for (size_t i = 0; i < CFG_FILES_CODINGS; i++) {
        if (!strcmp(s, codings[i].name))
            return (int)codings[i].kind;
    }
    return -1;
}

static void conv_precompressed(struct load *ld, const struct field *f, const struct ynode *val,
                               void *base)
{
    struct cfg_files *fs = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list)
        return;
    fs->nprecompressed = 0;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        const char *s = cfg_text(ld, f->key, item, "a list of codings");
        int kind = s ? coding_of(s) : -1;
        bool dup = false;
        if (!s)
            continue;
        if (kind < 0) {
            cfg_report(ld, item, "unknown precompressed coding '%.64s' (expected br, zstd or gzip)",
                       s);
            continue;
        }
        for (size_t j = 0; j < fs->nprecompressed; j++)
            dup |= fs->precompressed[j] == (uint8_t)kind;
        if (dup)
            cfg_report(ld, item, "precompressed coding '%.64s' is listed twice", s);
        else
            fs->precompressed[fs->nprecompressed++] = (uint8_t)kind;
    }
}

/* ---- cache_control ---- */

static void conv_cache_control(struct load *ld, const struct field *f, const struct ynode *val,
                               void *base)
{
    struct cfg_files *fs = base;
    const char *s = cfg_text(ld, f->key, val, "a Cache-Control value");

    if (!s)
        return;
    if (!*s || !cfg_printable(s, true) || strlen(s) != val->len) {
        cfg_report(ld, val, "'cache_control' must be a header value (printable, one line)");
        return;
    }
    fs->cache_control = cfg_strdup(ld, s, val->len);
}

/* ---- mime_types ---- */

/* The snapshot's base table, loaded with the first files route. */
static const struct mime_table *mime_base(struct load *ld, const struct ynode *at)
{
    char err[256];

    if (ld->cfg->mime_base)
        return ld->cfg->mime_base;
    ld->cfg->mime_base = mime_table_load(FILES_MIME_TYPES, err, sizeof err);
    if (!ld->cfg->mime_base)
        cfg_report(ld, at, "content types: %s", err);
    return ld->cfg->mime_base;
}

static bool mime_pair(struct load *ld, const struct ynode *k, const struct ynode *v,
                      struct mime_entry *e)
{
    const char *ext = cfg_text(ld, "mime_types", k, "an extension");
    const char *type = cfg_text(ld, "mime_types", v, "a media type");

    if (!ext || !type)
        return false;
    if (!mime_ext_valid(ext, k->len)) {
        cfg_report(ld, k, "bad extension '%.64s' in 'mime_types' (like .wasm)", ext);
        return false;
    }
    if (!mime_type_valid(type, v->len)) {
        cfg_report(ld, v, "bad media type '%.64s' for '%.64s' (like application/wasm)", type, ext);
        return false;
    }
    *e = (struct mime_entry){ext, type};
    return true;
}

static void conv_mime_types(struct load *ld, const struct field *f, const struct ynode *val,
                            void *base)
{
    struct cfg_files *fs = base;
    const struct mime_table *b = mime_base(ld, val);
    struct mime_entry *e;
    size_t n = 0;
    bool ok = true;
    char err[256];

    (void)f;
    if (!cfg_want(ld, "'mime_types'", val, YNODE_MAP) || !b)
        return;
    if (!(e = cfg_scratch(ld, (val->nitems / 2 + 1) * sizeof *e)))
        return;
    for (size_t i = 0; i + 1 < val->nitems; i += 2) {
        if (mime_pair(ld, val->items[i], val->items[i + 1], &e[n]))
            n++;
        else
            ok = false;
    }
    if (!ok || !n)
        return;
    fs->mime_own = mime_table_extend(b, e, n, err, sizeof err);
    if (!fs->mime_own)
        cfg_report(ld, val, "'mime_types': %s", err);
}

/* ---- the route's `files` ---- */

static const struct field files_fields[] = {
    {FIELD("root", conv_root, struct cfg_files, root, NULL), .flags = F_REQUIRED},
    {FIELD("index", conv_index, struct cfg_files, index, "index.html")},
    {FIELD("listing", cfg_conv_bool, struct cfg_files, listing, "false")},
    {FIELD("hidden", cfg_conv_bool, struct cfg_files, hidden, "false")},
    {FIELD("follow_symlinks", cfg_conv_enum, struct cfg_files, follow_symlinks, "inside_root"),
     .names = follow_names},
    {FIELD("fallback", conv_fallback, struct cfg_files, fallback, NULL)},
    {FIELD("precompressed", conv_precompressed, struct cfg_files, precompressed, NULL)},
    {FIELD("cache_control", conv_cache_control, struct cfg_files, cache_control, NULL)},
    {FIELD("mime_types", conv_mime_types, struct cfg_files, mime_own, NULL)},
};
static const struct fields files_table = FIELDS(files_fields);

void cfg_conv_files(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_files **slot = CFG_AT(base, f, struct cfg_files *);
    struct cfg_files *fs = cfg_alloc(ld, sizeof *fs);

    if (!fs)
        return;
    fs->root_fd = -1;
    /* Linked first: whatever goes wrong below, the snapshot's free finds what was opened. */
    fs->next = ld->cfg->files;
    ld->cfg->files = fs;
    *slot = fs;
    if (val->kind == YNODE_SCALAR) { /* files: /srv/www (the root alone) */
        conv_root(ld, &files_fields[0], val, fs);
        for (size_t i = 1; i < files_table.n; i++)
            cfg_apply(ld, &files_fields[i], NULL, val, fs, "in 'files'");
    } else if (cfg_want(ld, "'files'", val, YNODE_MAP)) {
        cfg_walk(ld, val, val, &files_table, fs, "in 'files'");
    }
    fs->mime = fs->mime_own ? fs->mime_own : mime_base(ld, val);
}

/* ---- top level ---- */

static const struct field cache_fields[] = {
    {FIELD("entries", cfg_conv_u32, struct cfg_files_cache, entries, "1024"), .max = 1u << 20},
    {FIELD("valid", cfg_conv_duration, struct cfg_files_cache, valid, "1s")},
};
const struct fields cfg_files_cache_table = FIELDS(cache_fields);

void cfg_files_free(struct config *c)
{
    for (struct cfg_files *fs = c->files; fs; fs = fs->next) {
        if (fs->root_fd >= 0)
            close(fs->root_fd);
        fs->root_fd = -1;
        mime_table_free(fs->mime_own);
        fs->mime_own = NULL;
    }
    c->files = NULL;
    mime_table_free(c->mime_base);
    c->mime_base = NULL;
}
