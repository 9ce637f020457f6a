/* Unit tests for serve/files_path.c: the request path to a relative file name (decoded once,
 * refused when it holds NUL, a backslash, an encoded separator or a dot-file), and openat2 below
 * root in each follow_symlinks mode, over a temporary tree. */
#include "check.h"
#include "tmp_tree.h"
#include "config/config.h"
#include "serve/files_path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static struct tmp_tree tree;
static int root_fd = -1;

static void put(const char *rel, const char *body)
{
    tmp_tree_put(&tree, rel, body);
}

static void at(const char *rel, char *out, size_t cap)
{
    tmp_tree_at(&tree, rel, out, cap);
}

static void make_tree(void)
{
    char p[256], q[256];
    tmp_tree_make(&tree, "files-path");
    at("www", p, sizeof p);
    mkdir(p, 0755);
    at("www/sub", p, sizeof p);
    mkdir(p, 0755);
    at("outside", p, sizeof p);
    mkdir(p, 0755);
    put("www/a.txt", "a");
    put("www/sub/b.txt", "b");
    put("outside/secret", "s");
    at("www/in-link", p, sizeof p);
    CHECK(symlink("a.txt", p) == 0);
    at("www/out-link", p, sizeof p);
    at("outside/secret", q, sizeof q);
    CHECK(symlink(q, p) == 0);
    at("www/up-link", p, sizeof p);
    CHECK(symlink("../outside/secret", p) == 0);
    at("www/fifo", p, sizeof p);
    CHECK(mkfifo(p, 0644) == 0);
    at("www", p, sizeof p);
    root_fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(root_fd >= 0);
}

static void remove_tree(void)
{
    close(root_fd);
    tmp_tree_remove(&tree);
}

/* ---- files_path_relative ---- */

static void expect_rel(const char *rest, bool hidden, const char *want, bool want_slash)
{
    char out[FILES_PATH_MAX];
    size_t len = 99;
    bool slash = !want_slash;
    bool ok = files_path_relative(rest, strlen(rest), hidden, out, sizeof out, &len, &slash);
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "  refused: '%s'\n", rest);
        return;
    }
    CHECK_EQ_INT(len, strlen(want));
    CHECK(!strcmp(out, want));
    CHECK(slash == want_slash);
}

static void expect_refused(const char *rest, size_t len, bool hidden)
{
    char out[FILES_PATH_MAX];
    size_t n;
    bool slash;
    bool ok = files_path_relative(rest, len, hidden, out, sizeof out, &n, &slash);
    CHECK(!ok);
    if (ok)
        fprintf(stderr, "  accepted: '%.*s' as '%s'\n", (int)len, rest, out);
}
#define REFUSED(lit, hidden) expect_refused(lit, sizeof(lit) - 1, hidden)

static void test_relative(void)
{
    expect_rel("/", false, "", true);
    expect_rel("", false, "", false);
    expect_rel("/a.txt", false, "a.txt", false);
    expect_rel("/sub/", false, "sub", true);
    expect_rel("/sub/b.txt", false, "sub/b.txt", false);
    expect_rel("/my%20dir/x%3Fy.txt", false, "my dir/x?y.txt", false);
    expect_rel("/%25252e", false, "%252e", false); /* decoded once, not twice */
    expect_rel("/a;b.txt", false, "a;b.txt", false);
    expect_rel("/caf%C3%A9", false, "caf\xc3\xa9", false);
    expect_rel("/a.b/c..d/e.", false, "a.b/c..d/e.", false);
    expect_rel("/.env", true, ".env", false);
    expect_rel("/.well-known/x", true, ".well-known/x", false);

    REFUSED("/.env", false);
    REFUSED("/.git/config", false);
    REFUSED("/sub/.hidden", false);
    REFUSED("/sub/.hidden/x", false);
    REFUSED("/a%2Fb", false);
    REFUSED("/a%2fb", true);
    REFUSED("/a%5Cb", false);
    REFUSED("/a%5cb", true);
    REFUSED("/a\\b", false);
    REFUSED("/a%00b", true);
    REFUSED("/a\0b", true);
    REFUSED("/..", true); /* dot segments never come from the router, and never pass here */
    REFUSED("/a/../b", true);
    REFUSED("/./a", true);
    REFUSED("/a//b", true);

    char longp[FILES_PATH_MAX + 10];
    memset(longp, 'a', sizeof longp);
    longp[0] = '/';
    expect_refused(longp, sizeof longp, false);
}

static void test_has_hidden(void)
{
    CHECK(files_path_has_hidden(".a", 2));
    CHECK(files_path_has_hidden("x/.a", 4));
    CHECK(!files_path_has_hidden("x.a/b.c", 7));
    CHECK(!files_path_has_hidden("", 0));
}

/* ---- files_path_open ---- */

static int open_rel(const char *rel, int follow, struct stat *st)
{
    int fd = files_path_open(root_fd, rel, follow, st);
    return fd;
}

static void expect_err(const char *rel, int follow, int err)
{
    struct stat st;
    int fd = open_rel(rel, follow, &st);
    CHECK_EQ_INT(fd, -err);
    if (fd >= 0)
        close(fd);
}

static void expect_file(const char *rel, int follow, const char *body)
{
    struct stat st;
    char buf[32] = {0};
    int fd = open_rel(rel, follow, &st);
    CHECK(fd >= 0);
    if (fd < 0) {
        fprintf(stderr, "  %s: %s\n", rel, strerror(-fd));
        return;
    }
    CHECK(S_ISREG(st.st_mode));
    CHECK(read(fd, buf, sizeof buf - 1) == (ssize_t)strlen(body));
    CHECK(!strcmp(buf, body));
    int fl = fcntl(fd, F_GETFL);
    CHECK((fl & O_ACCMODE) == O_RDONLY && !(fl & O_PATH));
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
}

static void test_open(void)
{
    struct stat st;
    expect_file("a.txt", CFG_FOLLOW_INSIDE_ROOT, "a");
    expect_file("sub/b.txt", CFG_FOLLOW_NEVER, "b");
    expect_file("in-link", CFG_FOLLOW_INSIDE_ROOT, "a");
    expect_file("in-link", CFG_FOLLOW_ALWAYS, "a");
    expect_err("in-link", CFG_FOLLOW_NEVER, ELOOP);
    expect_err("out-link", CFG_FOLLOW_INSIDE_ROOT, EXDEV);
    expect_err("up-link", CFG_FOLLOW_INSIDE_ROOT, EXDEV);
    expect_file("out-link", CFG_FOLLOW_ALWAYS, "s");
    expect_file("up-link", CFG_FOLLOW_ALWAYS, "s");
    expect_err("../outside/secret", CFG_FOLLOW_INSIDE_ROOT, EXDEV);
    expect_err("/etc/passwd", CFG_FOLLOW_INSIDE_ROOT, EXDEV);
    expect_err("missing", CFG_FOLLOW_INSIDE_ROOT, ENOENT);
    expect_err("a.txt/x", CFG_FOLLOW_INSIDE_ROOT, ENOTDIR);
    expect_err("fifo", CFG_FOLLOW_INSIDE_ROOT, ENOENT); /* returns at once: never opened */
    expect_err("fifo", CFG_FOLLOW_ALWAYS, ENOENT);

    int fd = open_rel("sub", CFG_FOLLOW_INSIDE_ROOT, &st);
    CHECK(fd >= 0 && S_ISDIR(st.st_mode));
    CHECK((fcntl(fd, F_GETFL) & O_PATH) != 0); /* a directory stays O_PATH */
    close(fd);
    fd = open_rel("", CFG_FOLLOW_INSIDE_ROOT, &st);
    CHECK(fd >= 0 && S_ISDIR(st.st_mode));
    close(fd);

    /* A socket is neither a file nor a directory. */
    char p[256];
    at("www/sock", p, sizeof p);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    CHECK(strlen(p) < sizeof sa.sun_path);
    memcpy(sa.sun_path, p, strlen(p) + 1 < sizeof sa.sun_path ? strlen(p) + 1 : 0);
    CHECK(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
    expect_err("sock", CFG_FOLLOW_INSIDE_ROOT, ENOENT);
    close(s);
}

static void test_status(void)
{
    CHECK_EQ_INT(files_path_status(-EACCES), 403);
    CHECK_EQ_INT(files_path_status(-EPERM), 403);
    CHECK_EQ_INT(files_path_status(-ENOENT), 404);
    CHECK_EQ_INT(files_path_status(-EXDEV), 404);
    CHECK_EQ_INT(files_path_status(-ELOOP), 404);
}

int main(void)
{
    make_tree();
    test_relative();
    test_has_hidden();
    test_open();
    test_status();
    remove_tree();
    return check_done("files_path");
}
