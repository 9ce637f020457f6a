/* Content-Type by extension; see mime.h. */
#include "serve/mime.h"

#include "http/token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The web's types (IANA registrations, as browsers expect them). */
static const struct mime_entry builtin[] = {
    {"html", "text/html"},
    {"htm", "text/html"},
    {"shtml", "text/html"},
    {"css", "text/css"},
    {"js", "text/javascript"},
    {"mjs", "text/javascript"},
    {"cjs", "text/javascript"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"jsonld", "application/ld+json"},
    {"webmanifest", "application/manifest+json"},
    {"xml", "application/xml"},
    {"xsl", "application/xml"},
    {"xhtml", "application/xhtml+xml"},
    {"rss", "application/rss+xml"},
    {"atom", "application/atom+xml"},
    {"txt", "text/plain"},
    {"text", "text/plain"},
    {"log", "text/plain"},
    {"csv", "text/csv"},
    {"tsv", "text/tab-separated-values"},
    {"md", "text/markdown"},
    {"markdown", "text/markdown"},
    {"ics", "text/calendar"},
    {"vtt", "text/vtt"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"svg", "image/svg+xml"},
    {"svgz", "image/svg+xml"},
    {"png", "image/png"},
    {"apng", "image/apng"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"jfif", "image/jpeg"},
    {"pjpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"jxl", "image/jxl"},
    {"heic", "image/heic"},
    {"ico", "image/x-icon"},
    {"cur", "image/x-icon"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"eot", "application/vnd.ms-fontobject"},
    {"wasm", "application/wasm"},
    {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},
    {"webm", "video/webm"},
    {"ogv", "video/ogg"},
    {"mov", "video/quicktime"},
    {"mkv", "video/x-matroska"},
    {"avi", "video/x-msvideo"},
    {"ts", "video/mp2t"},
    {"m3u8", "application/vnd.apple.mpegurl"},
    {"mpd", "application/dash+xml"},
    {"ogg", "audio/ogg"},
    {"oga", "audio/ogg"},
    {"opus", "audio/ogg"},
    {"mp3", "audio/mpeg"},
    {"m4a", "audio/mp4"},
    {"aac", "audio/aac"},
    {"flac", "audio/flac"},
    {"wav", "audio/wav"},
    {"weba", "audio/webm"},
    {"mid", "audio/midi"},
    {"midi", "audio/midi"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"br", "application/x-brotli"},
    {"zst", "application/zstd"},
    {"xz", "application/x-xz"},
    {"bz2", "application/x-bzip2"},
    {"7z", "application/x-7z-compressed"},
    {"rar", "application/vnd.rar"},
    {"tar", "application/x-tar"},
    {"jar", "application/java-archive"},
    {"apk", "application/vnd.android.package-archive"},
    {"deb", "application/vnd.debian.binary-package"},
    {"rpm", "application/x-rpm"},
    {"dmg", "application/x-apple-diskimage"},
    {"iso", "application/x-iso9660-image"},
    {"exe", "application/octet-stream"},
    {"bin", "application/octet-stream"},
    {"msi", "application/octet-stream"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
    {"odp", "application/vnd.oasis.opendocument.presentation"},
    {"rtf", "application/rtf"},
    {"epub", "application/epub+zip"},
    {"swf", "application/x-shockwave-flash"},
    {"pem", "application/x-pem-file"},
    {"crt", "application/x-x509-ca-cert"},
    {"der", "application/x-x509-ca-cert"},
    {"appcache", "text/cache-manifest"},
};

/* One entry of a built table: the lowercase extension inline, the Content-Type in the pool. */
struct mime_rec {
    char ext[MIME_EXT_MAX + 1];
    unsigned char ext_len;
    unsigned short type_len;
    const char *type;
};

struct mime_table {
    size_t n;
    struct mime_rec *recs; /* sorted by (ext_len, ext): a length check first, then memcmp */
    char *pool;            /* every Content-Type, NUL-terminated */
};

/* A source entry while a table is built. Entries are gathered in precedence order; seq keeps
 * it through the sort, so of the entries for one extension the first gathered wins. */
struct mime_src {
    const char *ext, *type;
    size_t ext_len, type_len;
    size_t seq;
};

#define CHARSET "; charset=utf-8"

static int rec_cmp_key(const char *ext, size_t len, const struct mime_rec *r)
{
    if (len != r->ext_len)
        return len < r->ext_len ? -1 : 1;
    return memcmp(ext, r->ext, len);
}

static bool ext_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '+' || c == '~' || c == '.';
}

bool mime_ext_valid(const char *ext, size_t len)
{
    if (len && ext[0] == '.')
        ext++, len--;
    if (!len || len > MIME_EXT_MAX || ext[0] == '.' || ext[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!ext_char((unsigned char)ext[i]))
            return false;
    return true;
}

/* type "/" subtype, both tokens, then optional parameters of field-value characters. */
bool mime_type_valid(const char *t, size_t len)
{
    if (!len || len > MIME_TYPE_MAX)
        return false;
    size_t i = 0, slash = 0;
    while (i < len && (http_ctype[(unsigned char)t[i]] & HTTP_CT_TCHAR))
        i++;
    if (i == 0 || i >= len || t[i] != '/')
        return false;
    slash = ++i;
    while (i < len && (http_ctype[(unsigned char)t[i]] & HTTP_CT_TCHAR))
        i++;
    if (i == slash)
        return false;
    if (i == len)
        return true;
    while (i < len && (t[i] == ' ' || t[i] == '\t'))
        i++;
    if (i >= len || t[i] != ';')
        return false;
    for (; i < len; i++)
        if (!(http_ctype[(unsigned char)t[i]] & HTTP_CT_FIELD))
            return false;
    return true;
}

static bool wants_charset(const char *t, size_t len)
{
    static const char *const text_like[] = {"application/javascript", "application/json",
                                            "application/manifest+json", "application/xml",
                                            "image/svg+xml"};
    if (memchr(t, ';', len))
        return false;
    if (len > 5 && http_token_eq(t, 5, "text/", 5))
        return true;
    for (size_t i = 0; i < sizeof(text_like) / sizeof(text_like[0]); i++)
        if (http_token_eq(t, len, text_like[i], strlen(text_like[i])))
            return true;
    return false;
}

/* Case-insensitive order of the extensions: by length, then bytes (as mime_rec's order). */
static int src_ext_cmp(const struct mime_src *x, const struct mime_src *y)
{
    if (x->ext_len != y->ext_len)
        return x->ext_len < y->ext_len ? -1 : 1;
    for (size_t i = 0; i < x->ext_len; i++) {
        unsigned char p = http_token_lower((unsigned char)x->ext[i]),
                      q = http_token_lower((unsigned char)y->ext[i]);
        if (p != q)
            return p < q ? -1 : 1;
    }
    return 0;
}

static int src_cmp(const void *a, const void *b)
{
    const struct mime_src *x = a, *y = b;
    int c = src_ext_cmp(x, y);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A source list being gathered. */
struct gather {
    struct mime_src *v;
    size_t n, cap;
};

static bool gather_add(struct gather *g, const char *ext, size_t ext_len, const char *type,
                       size_t type_len)
{
    if (ext_len && ext[0] == '.')
        ext++, ext_len--;
    if (g->n == MIME_ENTRIES_MAX)
        return true; /* bounded: later entries are dropped */
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        struct mime_src *v = realloc(g->v, cap * sizeof(*v));
        if (!v)
            return false;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n] = (struct mime_src){ext, type, ext_len, type_len, g->n};
    g->n++;
    return true;
}

/* Sorts, keeps the first-gathered entry per extension, and copies into one table. */
static struct mime_table *build(struct gather *g, char *err, size_t errlen)
{
    if (g->n) /* qsort's array may not be NULL, even when empty */
        qsort(g->v, g->n, sizeof(*g->v), src_cmp);
    size_t n = 0, pool = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (n && !src_ext_cmp(&g->v[i], &g->v[n - 1]))
            continue; /* a later-gathered duplicate */
        g->v[n++] = g->v[i];
        pool += g->v[i].type_len + sizeof(CHARSET);
    }
    struct mime_table *t = calloc(1, sizeof(*t));
    if (t) {
        t->recs = calloc(n ? n : 1, sizeof(*t->recs));
        t->pool = malloc(pool ? pool : 1);
    }
    if (!t || !t->recs || !t->pool) {
        mime_table_free(t);
        snprintf(err, errlen, "mime types: out of memory");
        return NULL;
    }
    char *p = t->pool;
    for (size_t i = 0; i < n; i++) {
        const struct mime_src *s = &g->v[i];
        struct mime_rec *r = &t->recs[i];
        for (size_t k = 0; k < s->ext_len; k++)
            r->ext[k] = (char)http_token_lower((unsigned char)s->ext[k]);
        r->ext_len = (unsigned char)s->ext_len;
        r->type = p;
        memcpy(p, s->type, s->type_len);
        p += s->type_len;
        if (wants_charset(s->type, s->type_len)) {
            memcpy(p, CHARSET, sizeof(CHARSET) - 1);
            p += sizeof(CHARSET) - 1;
        }
        r->type_len = (unsigned short)(p - r->type);
        *p++ = '\0';
    }
    t->n = n;
    return t;
}

/* Keeps pointers into `text`, which must outlive the gather (not the table). */
static bool gather_file(struct gather *g, char *text, size_t len)
{
    char *line = text, *end = text + len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line)), *le = nl ? nl : end;
        char *hash = memchr(line, '#', (size_t)(le - line));
        char *p = line, *e = hash ? hash : le;
        line = nl ? nl + 1 : end;
        while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        char *type = p;
        while (p < e && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        size_t type_len = (size_t)(p - type);
        if (!mime_type_valid(type, type_len) || memchr(type, ';', type_len))
            continue;
        for (;;) {
            while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
                p++;
            if (p == e)
                break;
            char *ext = p;
            while (p < e && *p != ' ' && *p != '\t' && *p != '\r')
                p++;
            if (mime_ext_valid(ext, (size_t)(p - ext)) &&
                !gather_add(g, ext, (size_t)(p - ext), type, type_len))
                return false;
        }
    }
    return true;
}

/* Reads at most MIME_FILE_MAX bytes. *text NULL with true: the file does not exist. */
static bool read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return true;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    char *buf = malloc(MIME_FILE_MAX);
    size_t n = buf ? fread(buf, 1, MIME_FILE_MAX, f) : 0;
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path, buf ? "read error" : "out of memory");
        free(buf);
        return false;
    }
    *text = buf;
    *len = n;
    return true;
}

struct mime_table *mime_table_load(const char *path, char *err, size_t errlen)
{
    struct gather g = {0};
    char *text = NULL;
    size_t len = 0;
    struct mime_table *t = NULL;
    if (path && !read_file(path, &text, &len, err, errlen))
        return NULL;
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof(builtin) / sizeof(builtin[0]); i++)
        ok = gather_add(&g, builtin[i].ext, strlen(builtin[i].ext), builtin[i].type,
                        strlen(builtin[i].type));
    if (ok && text)
        ok = gather_file(&g, text, len);
    if (ok)
        t = build(&g, err, errlen);
    else
        snprintf(err, errlen, "mime types: out of memory");
    free(g.v);
    free(text);
    return t;
}

struct mime_table *mime_table_extend(const struct mime_table *base, const struct mime_entry *extra,
                                     size_t nextra, char *err, size_t errlen)
{
    struct gather g = {0};
    struct mime_table *t = NULL;
    bool ok = true;
    for (size_t i = 0; i < nextra; i++) {
        size_t el = strlen(extra[i].ext), tl = strlen(extra[i].type);
        if (!mime_ext_valid(extra[i].ext, el)) {
            snprintf(err, errlen, "mime_types: invalid extension \"%.40s\"", extra[i].ext);
            goto out;
        }
        if (!mime_type_valid(extra[i].type, tl)) {
            snprintf(err, errlen, "mime_types: invalid media type \"%.140s\" for \"%.40s\"",
                     extra[i].type, extra[i].ext);
            goto out;
        }
    }
    /* Additions first, then the base's entries. The base's types already carry their charset;
     * wants_charset sees the ';' and leaves them alone. */
    for (size_t i = 0; ok && i < nextra; i++)
        ok = gather_add(&g, extra[i].ext, strlen(extra[i].ext), extra[i].type,
                        strlen(extra[i].type));
    for (size_t i = 0; ok && base && i < base->n; i++)
        ok = gather_add(&g, base->recs[i].ext, base->recs[i].ext_len, base->recs[i].type,
                        base->recs[i].type_len);
    if (ok)
        t = build(&g, err, errlen);
    else
        snprintf(err, errlen, "mime types: out of memory");
out:
    free(g.v);
    return t;
}

void mime_table_free(struct mime_table *t)
{
    if (!t)
        return;
    free(t->recs);
    free(t->pool);
    free(t);
}

size_t mime_table_size(const struct mime_table *t)
{
    return t ? t->n : 0;
}

static const struct mime_rec *find(const struct mime_table *t, const char *ext, size_t len)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = rec_cmp_key(ext, len, &t->recs[mid]);
        if (!c)
            return &t->recs[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *mime_lookup(const struct mime_table *t, const char *name, size_t len, size_t *type_len)
{
    size_t seg = len;
    while (seg && name[seg - 1] != '/')
        seg--;
    /* Only the last MIME_EXT_MAX + 1 bytes can hold a listed suffix and its dot: bounded work
     * whatever the name. */
    size_t i = len - seg > MIME_EXT_MAX + 1 ? len - (MIME_EXT_MAX + 1) : seg;
    char low[MIME_EXT_MAX + 1];
    size_t n = len - i;
    for (size_t k = 0; k < n; k++)
        low[k] = (char)http_token_lower((unsigned char)name[i + k]);
    for (size_t k = 0; t && k < n; k++) {
        if (low[k] != '.' || i + k == seg || k + 1 == n) /* a leading dot is no extension */
            continue;
        const struct mime_rec *r = find(t, low + k + 1, n - k - 1);
        if (r) {
            if (type_len)
                *type_len = r->type_len;
            return r->type;
        }
    }
    if (type_len)
        *type_len = sizeof(MIME_DEFAULT) - 1;
    return MIME_DEFAULT;
}
