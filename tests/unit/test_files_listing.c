/* serve/files_listing.h: a real temporary directory with hostile names (markup, '&', quotes, '%',
 * a newline, UTF-8 and invalid UTF-8, dot-files), a symbolic link out of the directory, a FIFO;
 * escaping in HTML and JSON, percent-encoded links, order, hidden entries, the parent link,
 * mtimes, the cap, errors; and the Accept preference. */
#include "check.h"
#include "serve/files_listing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmp[] = "/tmp/gh-listing-XXXXXX";

static void make_file(int dfd, const char *name, const char *content, time_t mtime)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
    close(fd);
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    CHECK(utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) == 0);
}

static bool has(const struct files_listing *l, const char *s)
{
    return memmem(l->body, l->len, s, strlen(s)) != NULL;
}

static const char *find(const struct files_listing *l, const char *s)
{
    return memmem(l->body, l->len, s, strlen(s));
}

#define CHECK_HAS(l, s)                                                                            \
    do {                                                                                           \
        if (!has(l, s))                                                                            \
            fprintf(stderr, "missing: %s\n", s);                                                   \
        CHECK(has(l, s));                                                                          \
    } while (0)

#define CHECK_NOT(l, s)                                                                            \
    do {                                                                                           \
        if (has(l, s))                                                                             \
            fprintf(stderr, "unexpected: %s\n", s);                                                \
        CHECK(!has(l, s));                                                                         \
    } while (0)

static int setup(void)
{
    if (!mkdtemp(tmp))
        return -1;
    int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    make_file(dfd, "<script>x.txt", "hello", 784111777); /* Sun, 06 Nov 1994 08:49:37 GMT */
    make_file(dfd, "a&b", "x", 0);
    make_file(dfd, "with space", "", 0);
    make_file(dfd, "100%", "", 0);
    make_file(dfd, "q\"uote'", "", 0);
    make_file(dfd, "new\nline", "", 0);
    make_file(dfd, "caf\xC3\xA9", "", 0);
    make_file(dfd, "bad\xFF", "", 0);
    make_file(dfd, "a:b", "", 0);
    make_file(dfd, ".hidden", "", 0);
    CHECK(mkdirat(dfd, "sub", 0755) == 0);
    CHECK(mkdirat(dfd, "zdir", 0755) == 0);
    CHECK(mkdirat(dfd, ".git", 0755) == 0);
    CHECK(symlinkat("/etc/passwd", dfd, "link") == 0);
    CHECK(mkfifoat(dfd, "fifo", 0644) == 0);
    return dfd;
}

static void test_html(int dfd)
{
    off_t before = lseek(dfd, 0, SEEK_CUR);
    struct files_listing l;
    CHECK_EQ_INT(files_listing_render(dfd, "/files/<x>/", 11, false, false, &l), 0);
    CHECK(l.body != NULL && l.len > 0);
    if (!l.body)
        return;
    CHECK(!strcmp(l.content_type, "text/html; charset=utf-8"));
    CHECK(!l.truncated);
    CHECK(fcntl(dfd, F_GETFD) >= 0); /* not closed */
    CHECK(lseek(dfd, 0, SEEK_CUR) == before);

    CHECK_HAS(&l, "<title>Index of /files/&lt;x&gt;/</title>");
    CHECK_HAS(&l, "<a href=\"../\">");
    /* names: escaped text, percent-encoded relative links */
    CHECK_NOT(&l, "<script>");
    CHECK_HAS(&l, "<a href=\"./%3Cscript%3Ex.txt\">&lt;script&gt;x.txt</a>");
    CHECK_HAS(&l, "<a href=\"./a%26b\">a&amp;b</a>");
    CHECK_HAS(&l, "<a href=\"./with%20space\">with space</a>");
    CHECK_HAS(&l, "<a href=\"./100%25\">100%</a>");
    CHECK_HAS(&l, "<a href=\"./q%22uote%27\">q&quot;uote&#39;</a>");
    CHECK_HAS(&l, "<a href=\"./new%0Aline\">new\xEF\xBF\xBDline</a>");
    CHECK_HAS(&l, "<a href=\"./caf%C3%A9\">caf\xC3\xA9</a>");
    CHECK_HAS(&l, "<a href=\"./bad%FF\">bad\xEF\xBF\xBD</a>");
    CHECK_HAS(&l, "<a href=\"./a%3Ab\">a:b</a>");
    CHECK_HAS(&l, "<a href=\"./sub/\">sub/</a>");
    CHECK_HAS(&l, "<a href=\"./link\">link @</a>");
    CHECK_NOT(&l, "new\nline");
    CHECK_NOT(&l, "\xFF");
    /* sizes and dates */
    CHECK_HAS(&l, "x.txt</a></td><td class=\"s\">5</td><td>Sun, 06 Nov 1994 08:49:37 GMT</td>");
    /* hidden and special files left out */
    CHECK_NOT(&l, "hidden");
    CHECK_NOT(&l, ".git");
    CHECK_NOT(&l, "fifo");
    CHECK_NOT(&l, "passwd");
    /* order: directories first (sorted), then the rest sorted by bytes */
    const char *sub = find(&l, "./sub/"), *zdir = find(&l, "./zdir/"), *lt = find(&l, "./%3C"),
               *amp = find(&l, "./a%26b"), *colon = find(&l, "./a%3Ab"),
               *bad = find(&l, "./bad%FF"), *caf = find(&l, "./caf%C3"),
               *link = find(&l, "./link\""), *q = find(&l, "./q%22");
    CHECK(sub && zdir && lt && amp && colon && bad && caf && link && q);
    if (sub && zdir && lt && amp && colon && bad && caf && link && q) {
        CHECK(sub < zdir && zdir < find(&l, "./100%25"));
        CHECK(find(&l, "./100%25") < lt); /* '1' < '<' */
        CHECK(lt < amp && amp < colon && colon < bad && bad < caf && caf < link && link < q);
    }
    free(l.body);

    CHECK_EQ_INT(files_listing_render(dfd, "/", 1, false, true, &l), 0);
    if (!l.body)
        return;
    CHECK_NOT(&l, "href=\"../\"");
    CHECK_HAS(&l, "<a href=\"./.hidden\">.hidden</a>");
    CHECK_HAS(&l, "<a href=\"./.git/\">.git/</a>");
    CHECK(find(&l, "./.git/") < find(&l, "./sub/"));
    free(l.body);
}

static void test_json(int dfd)
{
    struct files_listing l;
    CHECK_EQ_INT(files_listing_render(dfd, "/d/", 3, true, false, &l), 0);
    if (!l.body)
        return;
    CHECK(!strcmp(l.content_type, "application/json"));
    CHECK(l.body[0] == '[' && l.body[l.len - 2] == ']' && l.body[l.len - 1] == '\n');
    CHECK_HAS(&l, "{\"name\":\"\\u003cscript\\u003ex.txt\",\"type\":\"file\",\"size\":5,"
                  "\"mtime\":\"Sun, 06 Nov 1994 08:49:37 GMT\"}");
    CHECK_HAS(&l, "{\"name\":\"a\\u0026b\",\"type\":\"file\",\"size\":1,");
    CHECK_HAS(&l, "{\"name\":\"q\\\"uote'\",");
    CHECK_HAS(&l, "{\"name\":\"new\\u000aline\",");
    CHECK_HAS(&l, "{\"name\":\"caf\xC3\xA9\",");
    CHECK_HAS(&l, "{\"name\":\"bad\\ufffd\",");
    CHECK_HAS(&l, "{\"name\":\"sub\",\"type\":\"dir\",\"mtime\":");
    CHECK_HAS(&l, "{\"name\":\"link\",\"type\":\"link\",\"mtime\":");
    CHECK_NOT(&l, "hidden");
    CHECK_NOT(&l, "fifo");
    CHECK_NOT(&l, "../");
    for (size_t i = 0; i < l.len; i++)
        if ((unsigned char)l.body[i] < 0x20 && l.body[i] != '\n')
            CHECK(!"raw control character in JSON");
    CHECK(find(&l, "\"zdir\"") < find(&l, "\"100%\""));
    free(l.body);
}

static void test_empty_and_errors(void)
{
    char d[sizeof(tmp) + 8];
    snprintf(d, sizeof(d), "%s/sub", tmp);
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(fd >= 0);
    struct files_listing l;
    CHECK_EQ_INT(files_listing_render(fd, "/sub/", 5, true, false, &l), 0);
    CHECK(l.len == 3 && !memcmp(l.body, "[]\n", 3));
    free(l.body);
    close(fd);

    snprintf(d, sizeof(d), "%s/a&b", tmp);
    fd = open(d, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    errno = 0;
    CHECK_EQ_INT(files_listing_render(fd, "/", 1, false, false, &l), -1);
    CHECK_EQ_INT(errno, ENOTDIR);
    CHECK(l.body == NULL && l.len == 0);
    close(fd);
    CHECK_EQ_INT(files_listing_render(-1, "/", 1, false, false, &l), -1);

    /* The files handler holds directories as O_PATH descriptors: enough to list. */
    fd = open(tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ_INT(files_listing_render(fd, "/", 1, false, false, &l), 0);
    CHECK(l.body && has(&l, "<a href=\"./a%26b\">a&amp;b</a>"));
    free(l.body);
    close(fd);
}

static void test_cap(void)
{
    char d[sizeof(tmp) + 8];
    snprintf(d, sizeof(d), "%s/zdir", tmp);
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(fd >= 0);
    char name[32];
    for (int i = 0; i < FILES_LISTING_MAX + 3; i++) {
        snprintf(name, sizeof(name), "f%05d", i);
        int f = openat(fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (f >= 0)
            close(f);
    }
    struct files_listing l;
    CHECK_EQ_INT(files_listing_render(fd, "/zdir/", 6, false, false, &l), 0);
    CHECK(l.truncated);
    CHECK_HAS(&l, "Truncated: only the first 10000 entries are listed.");
    size_t rows = 0;
    for (const char *p = l.body; (p = memmem(p, l.len - (size_t)(p - l.body), "<tr>", 4)); p++)
        rows++;
    CHECK_EQ_INT(rows, FILES_LISTING_MAX + 2); /* header row, parent link */
    free(l.body);
    CHECK_EQ_INT(files_listing_render(fd, "/zdir/", 6, true, false, &l), 0);
    CHECK(l.truncated);
    free(l.body);
    for (int i = 0; i < FILES_LISTING_MAX + 3; i++) {
        snprintf(name, sizeof(name), "f%05d", i);
        unlinkat(fd, name, 0);
    }
    close(fd);
}

static bool wj(const char *s)
{
    return files_listing_wants_json(s, strlen(s));
}

static void test_accept(void)
{
    CHECK(!files_listing_wants_json(NULL, 0));
    CHECK(!wj(""));
    CHECK(wj("application/json"));
    CHECK(wj("APPLICATION/JSON"));
    CHECK(wj("application/json;charset=utf-8"));
    CHECK(wj("application/*"));
    CHECK(wj("application/json, */*;q=0.9"));
    CHECK(wj("text/html;q=0.5, application/json"));
    CHECK(wj("text/html;q=0.5 , application/json;q=0.6"));
    CHECK(wj("application/json, text/*;q=0.1"));
    CHECK(wj("application/json;q=0.2, */*;q=0.1"));
    CHECK(!wj("*/*"));
    CHECK(!wj("text/html"));
    CHECK(!wj("application/json, text/html")); /* a tie goes to HTML */
    CHECK(!wj("text/html, application/json;q=1.0"));
    CHECK(!wj("application/json;q=0"));
    CHECK(!wj("application/json;q=0, */*")); /* the exact range's q=0 stands */
    CHECK(!wj("application/json;q=1.5"));    /* malformed: ignored */
    CHECK(!wj("application/json;q=0.1234"));
    CHECK(!wj("application/json;q"));
    CHECK(!wj("application"));
    CHECK(!wj("application/"));
    CHECK(!wj("*/json"));
    CHECK(!wj("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")); /* browser */
    CHECK(wj("application/json;profile=\"a,b;q=0\"")); /* comma and q inside a quoted value */
    CHECK(wj("application/json;x=\"\\\"\", text/html;q=0.1"));
    CHECK(!wj("application/json;x=\"unterminated"));
    CHECK(wj(",, application/json ,"));
    CHECK(wj("text/html;q=0.9, text/html;q=0.1, application/json;q=0.95"));
    CHECK(!wj("text/html;q=0.1, text/html;q=1, application/json;q=0.95")); /* highest at a level */
    CHECK(!wj("application/json\t;\tq=0.5 , text/*;q=0.5"));
    CHECK(wj("application/json;Q=0.5, text/*;q=0.4"));
}

static void cleanup(int dfd)
{
    static const char *const names[] = {
        "<script>x.txt", "a&b",     "with space", "100%",    "q\"uote'", "new\nline",
        "caf\xC3\xA9",   "bad\xFF", "a:b",        ".hidden", "link",     "fifo",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlinkat(dfd, names[i], 0);
    unlinkat(dfd, "sub", AT_REMOVEDIR);
    unlinkat(dfd, "zdir", AT_REMOVEDIR);
    unlinkat(dfd, ".git", AT_REMOVEDIR);
    close(dfd);
    rmdir(tmp);
}

int main(void)
{
    int dfd = setup();
    CHECK(dfd >= 0);
    if (dfd >= 0) {
        test_html(dfd);
        test_json(dfd);
        test_empty_and_errors();
        test_cap();
        cleanup(dfd);
    }
    test_accept();
    return check_done("test_files_listing");
}
