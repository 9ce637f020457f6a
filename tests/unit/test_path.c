/* The path normaliser (percent-encodings, slashes, dot segments) and the percent-encoding check. */
#include "check.h"
#include "http/path.h"

static int norm_is(const char *in, const char *want)
{
    char out[256];
    size_t n = http_path_normalize(in, strlen(in), out);
    int ok = n == strlen(want) && memcmp(out, want, n) == 0;
    if (!ok)
        fprintf(stderr, "normalize(%s) = %.*s, want %s\n", in, (int)n, out, want);
    return ok;
}

int main(void)
{
    CHECK(!http_path_needs_normalize("/a/b.c/d", 8));
    CHECK(!http_path_needs_normalize("/a/..b/.c", 9));
    CHECK(!http_path_needs_normalize("/a%2Fb/%C3%A9", 13)); /* canonical already */
    CHECK(!http_path_needs_normalize("/a;x/b", 6));
    CHECK(http_path_needs_normalize("/a/../b", 7));
    CHECK(http_path_needs_normalize("/a/.", 4));
    CHECK(http_path_needs_normalize("/a/%2E%2e/b", 11));
    CHECK(http_path_needs_normalize("/a/.%2e", 7));
    CHECK(http_path_needs_normalize("/%61dmin", 8));     /* unreserved, encoded */
    CHECK(http_path_needs_normalize("/a%2fb", 6));       /* lowercase hex */
    CHECK(http_path_needs_normalize("//admin", 7));      /* repeated slash */
    CHECK(http_path_needs_normalize("/admin/..?x", 11)); /* HTTP/2 :path with a query */
    CHECK(!http_path_needs_normalize("/a?x=//%61", 10)); /* the query is not the path */

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
    CHECK(norm_is("/job/a%2fb/x", "/job/a%2Fb/x")); /* but its hex is uppercased */
    CHECK(norm_is("/a/..b/c", "/a/..b/c"));
    /* RFC 3986 6.2.2.2: unreserved characters decoded, whatever the case of the hex */
    CHECK(norm_is("/%61dmin", "/admin"));
    CHECK(norm_is("/%41%44%4d%49%4E", "/ADMIN"));
    CHECK(norm_is("/%2D%2e%5F%7e%30", "/-._~0"));
    /* 6.2.2.1: the others keep their encoding, uppercased */
    CHECK(norm_is("/caf%c3%a9/%20x%3b", "/caf%C3%A9/%20x%3B"));
    CHECK(norm_is("/%25%61", "/%25a")); /* an encoded '%' is never decoded: no double decoding */
    CHECK(norm_is("/a%zz/%4", "/a%zz/%4")); /* not a percent-encoding: kept as it came */
    /* ... and then nothing else changes either: no new percent-encoding may appear, and the
     * bad one may not vanish with a dot segment, since it is what gets the path refused (both
     * found by fuzzing) */
    CHECK(norm_is("/%%61", "/%%61"));
    CHECK(norm_is("/%%36%31//x", "/%%36%31//x"));
    CHECK(norm_is("/x/%%65d4/%2e%2e/y", "/x/%%65d4/%2e%2e/y"));
    CHECK(norm_is("/%2/../%61dmin", "/%2/../%61dmin"));
    CHECK(http_path_pct_valid("/a%2Fb%c3%A9", 12));
    CHECK(http_path_pct_valid("/plain", 6));
    CHECK(!http_path_pct_valid("/100%", 5));
    CHECK(!http_path_pct_valid("/%4", 3));
    CHECK(!http_path_pct_valid("/%g1", 4));
    CHECK(!http_path_pct_valid("/%%61", 5));
    /* repeated slashes merged, before dot segments are removed (as apps that merge them do) */
    CHECK(norm_is("//admin", "/admin"));
    CHECK(norm_is("/a//b///c/", "/a/b/c/"));
    CHECK(norm_is("/a//../b", "/b"));
    CHECK(norm_is("/x/%2e%2E//admin", "/admin"));
    CHECK(norm_is("/x/%2Fadmin", "/x/%2Fadmin")); /* an encoded slash is no slash to merge */
    CHECK(norm_is("/admin;x/y", "/admin;x/y"));   /* parameters are the router's business */
    return check_done("path");
}
