/* Host validation and dot-segment removal. */
#include "check.h"
#include "route/target.h"

static int host_ok(const char *h)
{
    return target_host_valid(h, strlen(h));
}

static int norm_is(const char *in, const char *want)
{
    char out[256];
    size_t n = target_path_normalize(in, strlen(in), out);
    int ok = n == strlen(want) && memcmp(out, want, n) == 0;
    if (!ok)
        fprintf(stderr, "normalize(%s) = %.*s, want %s\n", in, (int)n, out, want);
    return ok;
}

int main(void)
{
    CHECK(host_ok("example.com"));
    CHECK(host_ok("example.com:8080"));
    CHECK(host_ok("EXAMPLE.com."));
    CHECK(host_ok("127.0.0.1:80"));
    CHECK(host_ok("[::1]"));
    CHECK(host_ok("[::1]:8443"));
    CHECK(host_ok("[2001:db8::1]:80"));
    CHECK(host_ok("xn--bcher-kva.example"));
    CHECK(host_ok("a%41b.example"));
    CHECK(!host_ok(""));
    CHECK(!host_ok(":80"));
    CHECK(!host_ok("exa mple.com"));
    CHECK(!host_ok("example.com:80:80"));
    CHECK(!host_ok("example.com:8a"));
    CHECK(!host_ok("example.com:123456"));
    /* A port is at most 65535; none at all (empty) means the default port (RFC 3986 3.2.3). */
    CHECK(!host_ok("a:99999"));
    CHECK(!host_ok("a:65536"));
    CHECK(!host_ok("[::1]:99999"));
    CHECK(!host_ok("a:-1"));
    CHECK(!host_ok("a: 80"));
    CHECK(host_ok("a:65535"));
    CHECK(host_ok("a:0"));
    CHECK(host_ok("a:"));
    CHECK(host_ok("[::1]:"));
    CHECK(!host_ok("[::1"));
    CHECK(!host_ok("[zz::1]"));
    CHECK(!host_ok("a/b"));
    CHECK(!host_ok("a@b"));
    CHECK(!host_ok("a%4"));
    CHECK(!host_ok("ex\"ample"));

    CHECK(!target_path_has_dots("/a/b.c/d", 8));
    CHECK(!target_path_has_dots("/a/..b/.c", 9));
    CHECK(target_path_has_dots("/a/../b", 7));
    CHECK(target_path_has_dots("/a/.", 4));
    CHECK(target_path_has_dots("/a/%2E%2e/b", 11));
    CHECK(target_path_has_dots("/a/.%2e", 7));

    CHECK(norm_is("/a/b/../c", "/a/c"));
    CHECK(norm_is("/a/./b", "/a/b"));
    CHECK(norm_is("/../../etc/passwd", "/etc/passwd"));
    CHECK(norm_is("/jenkins/../admin", "/admin"));
    CHECK(norm_is("/jenkins/%2e%2e/admin", "/admin"));
    CHECK(norm_is("/jenkins/%2E./admin", "/admin"));
    CHECK(norm_is("/a/b/..", "/a/"));
    CHECK(norm_is("/a/b/.", "/a/b/"));
    CHECK(norm_is("/..", "/"));
    CHECK(norm_is("/a%2Fb/../c", "/c"));            /* %2F is not a separator: one segment */
    CHECK(norm_is("/job/a%2Fb/x", "/job/a%2Fb/x")); /* never decoded */
    CHECK(norm_is("/a//../b", "/a/b"));
    CHECK(norm_is("/a/..b/c", "/a/..b/c"));
    return check_done("target");
}
