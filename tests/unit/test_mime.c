/* serve/mime.h: the built-in table, a mime.types file (precedence, bad lines, bounds), route
 * additions, the lookup rules (case, last path segment, longest suffix, dot-files, defaults)
 * and the charset rule. */
#include "check.h"
#include "serve/mime.h"

#include <stdlib.h>
#include <unistd.h>

static const char *look(const struct mime_table *t, const char *name)
{
    size_t n = 0;
    const char *r = mime_lookup(t, name, strlen(name), &n);
    return n == strlen(r) ? r : "length mismatch";
}

#define CHECK_TYPE(t, name, want)                                                                  \
    do {                                                                                           \
        const char *got_ = look(t, name);                                                          \
        if (strcmp(got_, want))                                                                    \
            fprintf(stderr, "%s: got \"%s\" want \"%s\"\n", name, got_, want);                     \
        CHECK(!strcmp(got_, want));                                                                \
    } while (0)

static void test_builtin(void)
{
    char err[256];
    struct mime_table *t = mime_table_load(NULL, err, sizeof(err));
    CHECK(t && mime_table_size(t) > 100);
    static const char *const cases[][2] = {
        {"index.html", "text/html; charset=utf-8"},
        {"a.htm", "text/html; charset=utf-8"},
        {"site.css", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"mod.mjs", "text/javascript; charset=utf-8"},
        {"data.json", "application/json; charset=utf-8"},
        {"app.js.map", "application/json; charset=utf-8"},
        {"logo.svg", "image/svg+xml; charset=utf-8"},
        {"a.png", "image/png"},
        {"a.jpg", "image/jpeg"},
        {"a.jpeg", "image/jpeg"},
        {"a.gif", "image/gif"},
        {"a.webp", "image/webp"},
        {"a.avif", "image/avif"},
        {"favicon.ico", "image/x-icon"},
        {"f.woff", "font/woff"},
        {"f.woff2", "font/woff2"},
        {"f.ttf", "font/ttf"},
        {"f.otf", "font/otf"},
        {"m.wasm", "application/wasm"},
        {"v.mp4", "video/mp4"},
        {"v.webm", "video/webm"},
        {"a.ogg", "audio/ogg"},
        {"a.mp3", "audio/mpeg"},
        {"a.wav", "audio/wav"},
        {"d.pdf", "application/pdf"},
        {"d.zip", "application/zip"},
        {"d.gz", "application/gzip"},
        {"d.br", "application/x-brotli"},
        {"d.zst", "application/zstd"},
        {"r.txt", "text/plain; charset=utf-8"},
        {"r.xml", "application/xml; charset=utf-8"},
        {"r.csv", "text/csv; charset=utf-8"},
        {"README.md", "text/markdown; charset=utf-8"},
        {"site.webmanifest", "application/manifest+json; charset=utf-8"},
        /* Case, paths, dots. */
        {"INDEX.HTML", "text/html; charset=utf-8"},
        {"Photo.JpG", "image/jpeg"},
        {"/srv/www/assets/app.css", "text/css; charset=utf-8"},
        {"/dir.html/file", MIME_DEFAULT}, /* a dot in a directory is not the file's */
        {"/dir.d/.png", MIME_DEFAULT},    /* a dot-file has no extension */
        {".png", MIME_DEFAULT},
        {"..png", "image/png"},
        {"archive.tar.gz", "application/gzip"},
        {"noext", MIME_DEFAULT},
        {"file.", MIME_DEFAULT},
        {"file.unknownext", MIME_DEFAULT},
        {"", MIME_DEFAULT},
        {"/", MIME_DEFAULT},
        {"a.html ", MIME_DEFAULT},
        {"a.ht", MIME_DEFAULT},
        {"a.htmlx", MIME_DEFAULT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_TYPE(t, cases[i][0], cases[i][1]);
    /* A NUL inside the name is not the end of it. */
    CHECK(!strcmp(mime_lookup(t, "a.png\0x", 7, NULL), MIME_DEFAULT));
    /* Long names: only the tail counts, and it is still found. */
    char longname[4096];
    memset(longname, 'a', sizeof(longname));
    memcpy(longname + sizeof(longname) - 5, ".css", 5);
    CHECK_TYPE(t, longname, "text/css; charset=utf-8");
    memset(longname, '.', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK_TYPE(t, longname, MIME_DEFAULT);
    /* No table at all: the default. */
    CHECK(!strcmp(mime_lookup(NULL, "a.html", 6, NULL), MIME_DEFAULT));
    mime_table_free(t);
}

static const char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/gh-mime-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
    return path;
}

static void test_file(void)
{
    const char *path = write_tmp("# comment line\n"
                                 "application/x-foo\tfoo  foo2\n"
                                 "text/x-bar bar # trailing comment baz\n"
                                 "image/x-png-alt png\n" /* the built-in list wins */
                                 "   \n"
                                 "bad type\n" /* "bad" is no type/subtype */
                                 "text/ nothing\n"
                                 "/x y\n"
                                 "text/ok ok.\n" /* invalid ext: skipped */
                                 "text/ok2 ok2 a\x01"
                                 "b\n"                /* one bad ext, one good */
                                 "TEXT/Upper UPX\r\n" /* CRLF file */
                                 "application/x-semi;x=1 semi\n"
                                 "application/x-first dup\n"
                                 "application/x-second dup DUP\n" /* the first line wins */
                                 "application/x-nolf last");
    char err[256];
    struct mime_table *t = mime_table_load(path, err, sizeof(err));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_TYPE(t, "a.foo", "application/x-foo");
    CHECK_TYPE(t, "a.foo2", "application/x-foo");
    CHECK_TYPE(t, "a.bar", "text/x-bar; charset=utf-8");
    CHECK_TYPE(t, "a.baz", MIME_DEFAULT);
    CHECK_TYPE(t, "a.png", "image/png");
    CHECK_TYPE(t, "a.nothing", MIME_DEFAULT);
    CHECK_TYPE(t, "a.y", MIME_DEFAULT);
    CHECK_TYPE(t, "a.ok2", "text/ok2; charset=utf-8");
    CHECK_TYPE(t, "a.upx", "TEXT/Upper; charset=utf-8");
    CHECK_TYPE(t, "a.semi", MIME_DEFAULT);
    CHECK_TYPE(t, "a.last", "application/x-nolf");
    CHECK_TYPE(t, "a.dup", "application/x-first");
    mime_table_free(t);
    unlink(path);

    /* A file that does not exist: the built-in list; one that cannot be read: an error. */
    t = mime_table_load("/nonexistent/mime.types", err, sizeof(err));
    CHECK(t && !strcmp(look(t, "a.css"), "text/css; charset=utf-8"));
    mime_table_free(t);
    err[0] = 0;
    t = mime_table_load("/tmp", err, sizeof(err)); /* a directory: fopen works, fread fails */
    CHECK(t == NULL && err[0]);
    mime_table_free(t);

    /* The system's file, when present, adds to the built-in list and loads under the bounds. */
    if (access("/etc/mime.types", R_OK) == 0) {
        t = mime_table_load("/etc/mime.types", err, sizeof(err));
        CHECK(t && mime_table_size(t) > 200 && mime_table_size(t) <= MIME_ENTRIES_MAX);
        CHECK_TYPE(t, "a.js", "text/javascript; charset=utf-8");
        mime_table_free(t);
    }
}

static void test_bounds(void)
{
    /* More entries than MIME_ENTRIES_MAX: loaded up to the bound, no failure. */
    size_t cap = (MIME_ENTRIES_MAX + 1000) * 12 + 64, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text + n, cap - n, "application/x-many");
    for (int i = 0; i < MIME_ENTRIES_MAX + 1000; i++)
        n += (size_t)snprintf(text + n, cap - n, " e%d", i);
    const char *path = write_tmp(text);
    free(text);
    char err[256];
    struct mime_table *t = mime_table_load(path, err, sizeof(err));
    CHECK(t && mime_table_size(t) <= MIME_ENTRIES_MAX);
    CHECK_TYPE(t, "a.css", "text/css; charset=utf-8"); /* the built-in list came first */
    mime_table_free(t);
    unlink(path);
}

static void test_extend(void)
{
    char err[256];
    struct mime_table *base = mime_table_load(NULL, err, sizeof(err));
    static const struct mime_entry extra[] = {
        {".wasm", "application/x-wasm-custom"},
        {"tar.gz", "application/x-tgz"},
        {".LOG", "text/plain; charset=iso-8859-1"},
        {"geojson", "application/geo+json"},
        {"jsonc", "application/json"},
    };
    struct mime_table *t = mime_table_extend(base, extra, 5, err, sizeof(err));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_TYPE(t, "m.wasm", "application/x-wasm-custom"); /* additions win */
    CHECK_TYPE(t, "a.tar.gz", "application/x-tgz");       /* longest suffix first */
    CHECK_TYPE(t, "x.a.TAR.GZ", "application/x-tgz");
    CHECK_TYPE(t, "a.gz", "application/gzip"); /* the shorter still there */
    CHECK_TYPE(t, "a.gz.tar.gz.gz", "application/gzip");
    CHECK_TYPE(t, "server.log", "text/plain; charset=iso-8859-1"); /* own parameter kept */
    CHECK_TYPE(t, "a.geojson", "application/geo+json");
    CHECK_TYPE(t, "a.jsonc", "application/json; charset=utf-8");
    CHECK_TYPE(t, "a.css", "text/css; charset=utf-8"); /* the base's, charset not doubled */
    CHECK(mime_table_size(t) == mime_table_size(base) + 3);
    CHECK_TYPE(base, "m.wasm", "application/wasm"); /* the base is unchanged */
    mime_table_free(t);

    /* Invalid additions are refused with a message naming them. */
    static const struct mime_entry bad[][1] = {
        {{"", "text/plain"}},
        {{".", "text/plain"}},
        {{"a/b", "text/plain"}},
        {{"a b", "text/plain"}},
        {{"a.", "text/plain"}},
        {{"..a", "text/plain"}},
        {{"x", "text"}},
        {{"x", "text/"}},
        {{"x", "/plain"}},
        {{"x", "text/plain\r\nX-Evil: 1"}},
        {{"x", "text/pl ain"}},
        {{"x", "text/plain;\x01"}},
        {{"x", ""}},
        {{"abcdefghijklmnopqrstuvwxyz0123456", "text/plain"}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        struct mime_table *b = mime_table_extend(base, bad[i], 1, err, sizeof(err));
        if (b)
            fprintf(stderr, "accepted: \"%s\" -> \"%s\"\n", bad[i][0].ext, bad[i][0].type);
        CHECK(b == NULL && strstr(err, "mime_types: invalid"));
        mime_table_free(b);
    }
    /* Extending nothing: the additions alone. */
    t = mime_table_extend(NULL, extra, 1, err, sizeof(err));
    CHECK(t && mime_table_size(t) == 1 && !strcmp(look(t, "a.css"), MIME_DEFAULT));
    mime_table_free(t);
    mime_table_free(base);
}

static void test_valid(void)
{
    CHECK(mime_ext_valid("wasm", 4) && mime_ext_valid(".wasm", 5) && mime_ext_valid("tar.gz", 6));
    CHECK(mime_ext_valid("c++", 3) && mime_ext_valid("7z", 2));
    CHECK(!mime_ext_valid("", 0) && !mime_ext_valid(".", 1) && !mime_ext_valid("a..", 3));
    CHECK(mime_type_valid("text/plain", 10));
    CHECK(mime_type_valid("text/plain; charset=utf-8", 25));
    CHECK(mime_type_valid("application/vnd.api+json", 24));
    CHECK(!mime_type_valid("text/plain extra", 16));
    CHECK(!mime_type_valid("text/plain\n", 11));
}

int main(void)
{
    test_builtin();
    test_file();
    test_bounds();
    test_extend();
    test_valid();
    return check_done("mime");
}
