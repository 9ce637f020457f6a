/* Configuration loading: file -> YAML tree -> validated snapshot, and the snapshot's life.
 * This file holds the top-level schema (workers, logs, limits, listen, admin); upstreams and
 * sites have their own files. */
#include "config/config.h"
#include "proxy/upstate.h"
#include "config/config_values.h"
#include "config/config_walk.h"
#include "config/config_yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    MAX_WORKERS = 256,
    IO_BUFFER = 57344,   /* a request head must fit in one 64 KiB I/O buffer with room to spare */
    MAX_FILE = 16 << 20, /* a config larger than this is not a config */
};

/* A snapshot owns an arena holding every string and array it points to, so freeing it (or
 * dropping a half-built one) is a single arena_free, after the TLS contexts, which live
 * outside it. */
struct snapshot {
    struct config cfg;
    struct arena mem;
};

static void conv_workers(struct load *ld, const struct field *f, const struct ynode *val,
                         void *base)
{
    const char *s = cfg_text(ld, f->key, val, "'auto' or an integer");
    uint64_t n;

    if (!s)
        return;
    if (!strcmp(s, "auto")) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (uint64_t)cpus;
    } else if (cfg_parse_uint(s, MAX_WORKERS, &n) || n < 1) {
        cfg_report(ld, val, "'workers' must be 'auto' or an integer 1..%d", MAX_WORKERS);
        return;
    }
    *CFG_AT(base, f, int) = (int)n;
}

/* The log destinations: `std` (or "-") becomes "-"; the access log may also be `off` (NULL).
 * The other stream's name is refused rather than taken as a file name. */
static void log_path(struct load *ld, const struct field *f, const struct ynode *val, void *base,
                     bool access)
{
    const char *std = access ? "stdout" : "stderr", *other = access ? "stderr" : "stdout";
    const char *s = cfg_text(ld, f->key, val, "a file path");
    char **dst = CFG_AT(base, f, char *);

    if (!s)
        return;
    if (!strcmp(s, std) || !strcmp(s, "-")) {
        *dst = cfg_strdup(ld, "-", 1);
    } else if (access && !strcmp(s, "off")) {
        *dst = NULL;
    } else if (!*s || !strcmp(s, other) || !strcmp(s, "off") || !cfg_printable(s, true)) {
        cfg_report(ld, val,
                   access ? "'access' must be a file path, stdout or off"
                          : "'error' must be a file path or stderr");
    } else {
        *dst = cfg_strdup(ld, s, val->len);
    }
}

static void conv_access_log(struct load *ld, const struct field *f, const struct ynode *val,
                            void *base)
{
    log_path(ld, f, val, base, true);
}

static void conv_error_log(struct load *ld, const struct field *f, const struct ynode *val,
                           void *base)
{
    log_path(ld, f, val, base, false);
}

static const char *const log_formats[] = {"combined", "json", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static const struct field log_fields[] = {
    {FIELD("access", conv_access_log, struct cfg_logs, access, "stdout")},
    {FIELD("format", cfg_conv_enum, struct cfg_logs, format, "combined"), .names = log_formats},
    {FIELD("error", conv_error_log, struct cfg_logs, error, "stderr")},
    {FIELD("level", cfg_conv_enum, struct cfg_logs, level, "info"), .names = log_levels},
};
static const struct fields log_table = FIELDS(log_fields);

static const char io_note[] = " (what fits the I/O buffer)";

/* The bounds keep every defence on: a header list that is not capped, or a window a client can
 * fill with gigabytes, would turn a limit into a way around it. */
static const struct field http2_fields[] = {
    {FIELD("max_concurrent_streams", cfg_conv_u32, struct cfg_http2, max_concurrent_streams, "128"),
     .min = 1, .max = 1000},
    {FIELD("max_header_list_size", cfg_conv_size32, struct cfg_http2, max_header_list_size, "64k"),
     .min = 1024, .max = 1 << 20},
    {FIELD("stream_window", cfg_conv_size32, struct cfg_http2, stream_window, "65535"), .min = 1024,
     .max = 16 << 20},
    {FIELD("connection_window", cfg_conv_size32, struct cfg_http2, connection_window, "1m"),
     .min = 65535, .max = 256 << 20},
};
static const struct fields http2_table = FIELDS(http2_fields);

static const struct field limit_fields[] = {
    {FIELD("max_request_line", cfg_conv_size32, struct cfg_limits, max_request_line, "8192"),
     .min = 1, .max = IO_BUFFER, .note = io_note},
    {FIELD("max_header_size", cfg_conv_size32, struct cfg_limits, max_header_size, "32768"),
     .min = 1, .max = IO_BUFFER, .note = io_note},
    {FIELD("max_header_count", cfg_conv_u32, struct cfg_limits, max_header_count, "100"), .min = 1,
     .max = 1000},
    {FIELD("client_header_timeout", cfg_conv_duration, struct cfg_limits, client_header_timeout,
           "10s"),
     .min = 1},
    {FIELD("client_body_timeout", cfg_conv_duration, struct cfg_limits, client_body_timeout, "30s"),
     .min = 1},
    {FIELD("send_timeout", cfg_conv_duration, struct cfg_limits, send_timeout, "60s"), .min = 1},
    {FIELD("keepalive_timeout", cfg_conv_duration, struct cfg_limits, keepalive_timeout, "75s")},
    {FIELD("max_requests_per_connection", cfg_conv_u32, struct cfg_limits,
           max_requests_per_connection, "10000"),
     .min = 1},
    {FIELD("max_connections_per_worker", cfg_conv_u32, struct cfg_limits,
           max_connections_per_worker, "10000"),
     .min = 1, .max = 1 << 20},
    {FIELD("max_body_size", cfg_conv_size64, struct cfg_limits, max_body_size, "0")},
    {FIELD("max_connections_per_client", cfg_conv_u32, struct cfg_limits,
           max_connections_per_client, "0"),
     .max = 1000000},
    {FIELD("http2", cfg_conv_map, struct cfg_limits, http2, NULL), .sub = &http2_table},
};
static const struct fields limit_table = FIELDS(limit_fields);

/* An HTTP/2 field block within max_header_list_size is decoded and held to max_header_size
 * (431 on its stream); a larger one closes the connection. Were the list size the smaller, a
 * request HTTP/1.1 answers with 431, or serves, would cost an HTTP/2 client its connection. */
static void conv_limits(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    const struct cfg_limits *lim = CFG_AT(base, f, struct cfg_limits);
    size_t before = ld->nproblems;
    const struct ynode *at;

    cfg_conv_map(ld, f, val, base);
    if (ld->nproblems != before || lim->http2.max_header_list_size >= lim->max_header_size)
        return;
    at = cfg_get(cfg_get(val, "http2"), "max_header_list_size");
    cfg_report(ld, at ? at : cfg_get(val, "max_header_size"),
               "'max_header_list_size' (%u) must be at least 'max_header_size' (%u)",
               lim->http2.max_header_list_size, lim->max_header_size);
}

static void conv_listen_addr(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base)
{
    cfg_addr(ld, f->key, val, CFG_AT(base, f, struct cfg_addr));
}

static const struct field listener_fields[] = {
    {FIELD("address", conv_listen_addr, struct cfg_listener, addr, NULL), .flags = F_REQUIRED},
    {FIELD("backlog", cfg_conv_int, struct cfg_listener, backlog, "511"), .min = 1, .max = 65535},
    {FIELD("sites", cfg_conv_listener_sites, struct cfg_listener, sites, NULL)},
    {FIELD("tls", cfg_conv_tls, struct cfg_listener, tls, NULL)},
    {FIELD("h2c", cfg_conv_bool, struct cfg_listener, h2c, "false")},
    {FIELD("redirect_to_https", cfg_conv_bool, struct cfg_listener, redirect_to_https, "false")},
};
static const struct fields listener_table = FIELDS(listener_fields);

/* Two listeners on one address would fail to bind at start; port 0 asks the kernel for a
 * fresh port each time, so those never collide. */
static void check_listeners(struct load *ld, const struct config *c, const struct ynode *list)
{
    struct cfg_key *keys = cfg_scratch(ld, c->nlisteners * sizeof *keys);
    size_t n = 0;

    if (!keys)
        return;
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct cfg_addr *a = &c->listeners[i].addr;
        if (a->len && cfg_addr_port(&a->sa))
            keys[n++] = (struct cfg_key){&a->sa, a->len, i, list->items[i]};
    }
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "duplicate listen address '%.64s'",
                       c->listeners[keys[i].idx].addr.text);
    }
}

static void conv_listen(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct config *c = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list || !(c->listeners = cfg_alloc(ld, list->nitems * sizeof *c->listeners)))
        return;
    c->nlisteners = list->nitems;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        const char *addr = cfg_peek(item, "address");
        char where[100];

        if (addr)
            snprintf(where, sizeof where, "in listener '%.64s'", addr);
        else
            snprintf(where, sizeof where, "in listener #%zu", i + 1);
        if (cfg_want(ld, "each item of 'listen'", item, YNODE_MAP))
            cfg_walk(ld, item, item, &listener_table, &c->listeners[i], where);
    }
    check_listeners(ld, c, list);
    cfg_check_listener_hosts(ld);
}

static const struct field admin_fields[] = {
    {FIELD("address", conv_listen_addr, struct cfg_listener, addr, NULL), .flags = F_REQUIRED},
    {FIELD("hosts", cfg_conv_admin_hosts, struct cfg_listener, admin_hosts, NULL)},
};
static const struct fields admin_table = FIELDS(admin_fields);

static bool same_addr(const struct cfg_addr *a, const struct cfg_addr *b)
{
    return a->len && a->len == b->len && !memcmp(&a->sa, &b->sa, a->len);
}

/* `admin: { address }`: one more listener, flagged admin, appended after those of `listen` so
 * that theirs keep their positions (main.c binds every listener alike). */
static void conv_admin(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct config *c = base;
    struct cfg_listener admin = {.backlog = 511, .admin = true}; /* listen's default backlog */
    size_t before = ld->nproblems;
    struct cfg_listener *all;

    if (!cfg_want(ld, "'admin'", val, YNODE_MAP))
        return;
    cfg_walk(ld, val, val, &admin_table, &admin, "in 'admin'");
    if (ld->nproblems != before || ld->oom)
        return;
    for (size_t i = 0; cfg_addr_port(&admin.addr.sa) && i < c->nlisteners; i++) {
        if (same_addr(&admin.addr, &c->listeners[i].addr)) {
            cfg_report(ld, cfg_get(val, "address"), "'admin' address '%.64s' is also in 'listen'",
                       admin.addr.text);
            return;
        }
    }
    if (!(all = cfg_alloc(ld, (c->nlisteners + 1) * sizeof *all)))
        return;
    if (c->nlisteners)
        memcpy(all, c->listeners, c->nlisteners * sizeof *all);
    all[c->nlisteners] = admin;
    c->listeners = all;
    c->admin = &all[c->nlisteners++];
}

/* Converted in this order, whatever the order in the file: routes name upstreams, and
 * listeners name sites, so those must be known first; the admin listener goes after `listen`. */
static const struct field top_fields[] = {
    {FIELD("workers", conv_workers, struct config, workers, "auto")},
    {FIELD("shutdown_timeout", cfg_conv_duration, struct config, shutdown_grace, "30s")},
    {FIELD("logs", cfg_conv_map, struct config, logs, NULL), .sub = &log_table},
    {FIELD("limits", conv_limits, struct config, limits, NULL), .sub = &limit_table},
    {FIELD("trusted_proxies", cfg_conv_trusted_proxies, struct config, trusted_proxies, NULL)},
    {FIELD("upstreams", cfg_conv_upstreams, struct config, upstreams, NULL)},
    {FIELD("sites", cfg_conv_sites, struct config, sites, NULL), .flags = F_REQUIRED},
    {FIELD("listen", conv_listen, struct config, listeners, NULL), .flags = F_REQUIRED},
    {FIELD("admin", conv_admin, struct config, admin, NULL)},
    {FIELD("files_cache", cfg_conv_map, struct config, files_cache, NULL),
     .sub = &cfg_files_cache_table},
};
static const struct fields top_table = FIELDS(top_fields);

static void build(struct load *ld, const struct ynode *root)
{
    if (root && root->kind != YNODE_MAP) {
        cfg_want(ld, "the top level", root, YNODE_MAP);
        return;
    }
    cfg_walk(ld, root, NULL, &top_table, ld->cfg, "at the top level");
}

static void snapshot_free(struct snapshot *s)
{
    cfg_tls_free(&s->cfg);
    cfg_files_free(&s->cfg);
    upstate_detach(&s->cfg);
    arena_free(&s->mem);
    free(s);
}

int config_load_string_with(const char *name, const char *yaml, size_t len,
                            const struct config_load_opts *opts, struct config **out, FILE *errs)
{
    static const struct config_load_opts defaults;
    struct load ld = {.name = name, .opts = opts ? opts : &defaults};
    struct snapshot *s;
    struct yerror yerr;
    struct ydoc doc;
    int problems;

    *out = NULL;
    if (ydoc_parse(&doc, yaml, len, &yerr)) {
        if (errs)
            fprintf(errs, "%s:%d:%d: %s\n", name, yerr.line, yerr.col, yerr.msg);
        return 1;
    }
    s = calloc(1, sizeof *s);
    if (s) {
        ld.cfg = &s->cfg;
        ld.mem = &s->mem;
        s->cfg.path = cfg_strdup(&ld, name, strlen(name));
        /* Kept for building again with host names looked up anew (config/resolve.h). */
        s->cfg.source = cfg_strdup(&ld, yaml, len);
        s->cfg.source_len = len;
        build(&ld, doc.root);
    } else {
        ld.oom = true;
    }
    problems = cfg_load_end(&ld, errs);
    ydoc_free(&doc);
    if (problems) {
        if (s)
            snapshot_free(s);
        return problems;
    }
    atomic_init(&s->cfg.refs, 1);
    *out = &s->cfg;
    return 0;
}

int config_load_string(const char *name, const char *yaml, size_t len, struct config **out,
                       FILE *errs)
{
    return config_load_string_with(name, yaml, len, NULL, out, errs);
}

static char *read_fail(int fd, char *buf, const char *path, int err, FILE *errs)
{
    close(fd);
    free(buf);
    if (errs)
        fprintf(errs, "%s: cannot read: %s\n", path, strerror(err));
    return NULL;
}

static void too_large(const char *path, FILE *errs)
{
    if (errs)
        fprintf(errs, "%s: larger than %d MiB\n", path, MAX_FILE >> 20);
}

/* Only a regular file: a FIFO would block `-t` (and a reload) until a writer came, and a
 * device could be endless. O_NONBLOCK makes the open itself return for a FIFO; fstat then
 * tells what it is. */
static int open_regular(const char *path, FILE *errs)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;

    if (fd < 0) {
        if (errs)
            fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        read_fail(fd, NULL, path, errno, errs);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (errs)
            fprintf(errs, "%s: not a regular file\n", path);
        return -1;
    }
    if (st.st_size > MAX_FILE) {
        close(fd);
        too_large(path, errs);
        return -1;
    }
    return fd;
}

/* Reads the whole file: configs are small, and libyaml wants the text in one piece anyway.
 * The size is checked again while reading, for a file that grows after the fstat. */
static char *read_file(const char *path, size_t *len, FILE *errs)
{
    int fd = open_regular(path, errs);
    size_t n = 0, cap = 0;
    char *buf = NULL;

    if (fd < 0)
        return NULL;
    for (;;) {
        ssize_t r;
        if (n == cap) {
            /* room for one byte past MAX_FILE tells a file of exactly MAX_FILE from a larger one */
            size_t want = cap ? cap * 2 : 4096;
            char *p;
            if (n > MAX_FILE) {
                too_large(path, errs);
                return read_fail(fd, buf, path, 0, NULL);
            }
            if (want > MAX_FILE)
                want = MAX_FILE + 1;
            if (!(p = realloc(buf, want)))
                return read_fail(fd, buf, path, ENOMEM, errs);
            buf = p;
            cap = want;
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return read_fail(fd, buf, path, errno, errs);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

int config_load_with(const char *path, const struct config_load_opts *opts, struct config **out,
                     FILE *errs)
{
    size_t len;
    char *text;
    int rc;

    *out = NULL;
    text = read_file(path, &len, errs);
    if (!text)
        return 1;
    rc = config_load_string_with(path, text, len, opts, out, errs);
    free(text);
    return rc;
}

int config_load(const char *path, struct config **out, FILE *errs)
{
    return config_load_with(path, NULL, out, errs);
}

void config_ref(struct config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* acq_rel: the thread that frees must see every other holder's reads as finished. */
void config_unref(struct config *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free((struct snapshot *)((char *)c - offsetof(struct snapshot, cfg)));
}
