/* Host validation (the path normaliser is tested in test_path.c). */
#include "check.h"
#include "route/target.h"

static int host_ok(const char *h)
{
    return target_host_valid(h, strlen(h));
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
    return check_done("target");
}
