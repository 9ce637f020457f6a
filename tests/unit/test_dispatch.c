/* The Location of redirect_to_https answers. */
#include "check.h"
#include "route/dispatch.h"

static int location_is(const char *host, unsigned port, const char *path, const char *query,
                       const char *want)
{
    char out[512];
    long n = https_redirect_location(out, sizeof(out), host, strlen(host), port, path, strlen(path),
                                     query, query ? strlen(query) : 0);
    int ok = n >= 0 && (size_t)n == strlen(want) && strcmp(out, want) == 0;
    if (!ok)
        fprintf(stderr, "location(%s, %u, %s, %s) = %s (%ld), want %s\n", host, port, path,
                query ? query : "(none)", n >= 0 ? out : "-", n, want);
    return ok;
}

int main(void)
{
    /* 443 is what https:// implies: no port. Any other port is named. */
    CHECK(
        location_is("example.com", 443, "/a/b", "x=1&y=%2F", "https://example.com/a/b?x=1&y=%2F"));
    CHECK(location_is("example.com", 8443, "/a/b", "x=1", "https://example.com:8443/a/b?x=1"));
    /* The client's port is the plain listener's: dropped, whatever it was. */
    CHECK(location_is("example.com:80", 443, "/", NULL, "https://example.com/"));
    CHECK(location_is("example.com:8080", 8443, "/", NULL, "https://example.com:8443/"));
    /* IPv6 literals keep their brackets, lose their port. */
    CHECK(location_is("[::1]:8080", 443, "/p", "q", "https://[::1]/p?q"));
    CHECK(location_is("[2001:db8::1]", 8443, "/p", NULL, "https://[2001:db8::1]:8443/p"));
    CHECK(location_is("[2001:db8::1]:80", 443, "/", NULL, "https://[2001:db8::1]/"));
    /* An empty query ("/p?") is kept as sent; no query, no '?'. */
    CHECK(location_is("h", 443, "/p", "", "https://h/p?"));
    CHECK(location_is("h", 443, "/p", NULL, "https://h/p"));

    /* What does not fit is refused, never cut. */
    char small[28]; /* "https://example.com/1234567" and its NUL */
    CHECK_EQ_INT(https_redirect_location(small, sizeof(small), "example.com", 11, 443, "/12345678",
                                         9, NULL, 0),
                 -1);
    CHECK_EQ_INT(https_redirect_location(small, sizeof(small), "example.com", 11, 443, "/1234567",
                                         8, NULL, 0),
                 (long)sizeof(small) - 1);
    return check_done("dispatch");
}
