/* Site choice by Host and route choice by path prefix. */
#include "check.h"
#include "config/config.h"
#include "route/router.h"

static const char yaml[] = "listen: [ { address: \"127.0.0.1:0\" } ]\n"
                           "upstreams: { app: { servers: [\"127.0.0.1:9\"] } }\n"
                           "sites:\n"
                           "  - name: exact\n"
                           "    hosts: [\"shop.example.com\"]\n"
                           "    routes:\n"
                           "      - { path: /, proxy: app }\n"
                           "      - { path: /meet, respond: { status: 201 } }\n"
                           "      - { path: /meet/room/, respond: { status: 202 } }\n"
                           "  - name: wild\n"
                           "    hosts: [\"*.example.com\"]\n"
                           "    routes: [ { path: /, respond: { status: 203 } } ]\n"
                           "  - name: deeper\n"
                           "    hosts: [\"*.eu.example.com\"]\n"
                           "    routes: [ { path: /api, respond: { status: 204 } } ]\n"
                           "  - name: nocase\n"
                           "    hosts: [\"iis.example.net\"]\n"
                           "    case_insensitive_paths: true\n"
                           "    routes:\n"
                           "      - { path: /, respond: { status: 200 } }\n"
                           "      - { path: /Admin/Panel, respond: { status: 403 } }\n"
                           "  - name: encoded\n"
                           "    hosts: [\"enc.example.net\"]\n"
                           "    routes:\n"
                           "      - { path: /, respond: { status: 200 } }\n"
                           "      - { path: \"/%61dmin//x/\", respond: { status: 403 } }\n"
                           "  - name: v6\n"
                           "    hosts: [\"[::1]\", \"[2001:DB8:0::a]\", \"127.0.0.1\"]\n"
                           "    routes: [ { path: /, respond: { status: 206 } } ]\n"
                           "  - name: any\n"
                           "    hosts: [\"*\"]\n"
                           "    routes: [ { path: /, respond: { status: 205 } } ]\n";

static const char *site_of(const struct config *c, const char *host)
{
    const struct cfg_site *s = router_site(c, NULL, host, strlen(host));
    return s ? s->name : "(none)";
}

static int status_of(const struct cfg_site *s, const char *path)
{
    size_t rest;
    const struct cfg_route *r = router_route(s, path, strlen(path), &rest);
    return r ? (r->action == CFG_ACTION_PROXY ? 1 : r->status) : 0;
}

int main(void)
{
    struct config *c = NULL;
    CHECK_EQ_INT(config_load_string("t.yaml", yaml, sizeof(yaml) - 1, &c, stderr), 0);
    if (!c)
        return check_done("router");
    CHECK(strcmp(site_of(c, "shop.example.com"), "exact") == 0);
    CHECK(strcmp(site_of(c, "SHOP.Example.COM:8443"), "exact") == 0);
    CHECK(strcmp(site_of(c, "shop.example.com."), "exact") == 0);
    CHECK(strcmp(site_of(c, "a.example.com"), "wild") == 0);
    CHECK(strcmp(site_of(c, "a.b.example.com"), "wild") == 0);
    CHECK(strcmp(site_of(c, "x.eu.example.com"), "deeper") == 0); /* most specific wildcard */
    CHECK(strcmp(site_of(c, "example.com"), "any") == 0);         /* *.x needs a label before */
    /* IPv6 literals, with or without a port, in any spelling of the address */
    CHECK(strcmp(site_of(c, "[::1]"), "v6") == 0);
    CHECK(strcmp(site_of(c, "[::1]:8080"), "v6") == 0);
    CHECK(strcmp(site_of(c, "[0:0:0:0:0:0:0:1]:80"), "v6") == 0);
    CHECK(strcmp(site_of(c, "[2001:db8::A]"), "v6") == 0);
    CHECK(strcmp(site_of(c, "[2001:db8::a]:443"), "v6") == 0);
    CHECK(strcmp(site_of(c, "127.0.0.1:8080"), "v6") == 0);
    CHECK(strcmp(site_of(c, "[::2]:80"), "any") == 0);
    CHECK(strcmp(site_of(c, "[::1"), "any") == 0);
    CHECK(strcmp(site_of(c, ""), "any") == 0);
    /* no Host at all (HTTP/1.0): the empty name, matched by "*" only */
    const struct cfg_site *nohost = router_site(c, NULL, NULL, 0);
    CHECK(nohost && strcmp(nohost->name, "any") == 0);

    const struct cfg_site *shop = router_site(c, NULL, "shop.example.com", 16);
    CHECK_EQ_INT(status_of(shop, "/meet"), 201);
    CHECK_EQ_INT(status_of(shop, "/meet/x"), 201);
    CHECK_EQ_INT(status_of(shop, "/meeting"), 1);     /* not a segment boundary: falls to "/" */
    CHECK_EQ_INT(status_of(shop, "/meet/room"), 202); /* trailing slash of the route ignored */
    CHECK_EQ_INT(status_of(shop, "/meet/room/1"), 202);
    CHECK_EQ_INT(status_of(shop, "/meet/roomy"), 201);
    CHECK_EQ_INT(status_of(shop, "/"), 1);
    const struct cfg_site *deeper = router_site(c, NULL, "a.eu.example.com", 16);
    CHECK_EQ_INT(status_of(deeper, "/"), 0);
    CHECK_EQ_INT(status_of(deeper, "/api/v1"), 204);

    size_t rest = 99;
    CHECK(router_prefix_match("/a", 2, "/a", 2, false, &rest) && rest == 2);
    CHECK(router_prefix_match("/a", 2, "/a/", 3, false, &rest) && rest == 2);
    CHECK(!router_prefix_match("/a", 2, "/ab", 3, false, &rest));
    CHECK(!router_prefix_match("/a", 2, "/", 1, false, &rest));
    CHECK(router_prefix_match("/", 1, "/x/y", 4, false, &rest) && rest == 0);
    /* ';' parameters are not part of a segment; the prefix ends after them */
    CHECK(router_prefix_match("/admin", 6, "/admin;x", 8, false, &rest) && rest == 8);
    CHECK(router_prefix_match("/admin", 6, "/admin;x/y", 10, false, &rest) && rest == 8);
    CHECK(router_prefix_match("/a/b", 4, "/a;p=1/b;q/c", 12, false, &rest) && rest == 10);
    CHECK(router_prefix_match("/admin", 6, "/;x/admin", 9, false, &rest) && rest == 9);
    CHECK(!router_prefix_match("/admin", 6, "/admin2;x", 9, false, &rest));
    CHECK(!router_prefix_match("/admin", 6, "/adm;in", 7, false, &rest));
    /* an encoded slash separates segments, in either case of its hex */
    CHECK(router_prefix_match("/admin", 6, "/admin%2Fx", 10, false, &rest) && rest == 6);
    CHECK(router_prefix_match("/admin", 6, "/admin%2fx", 10, false, &rest) && rest == 6);
    CHECK(router_prefix_match("/admin", 6, "%2Fadmin", 8, false, &rest) && rest == 8);
    CHECK(router_prefix_match("/a/b", 4, "/a%2F%2Fb/c", 11, false, &rest) && rest == 9);
    CHECK(!router_prefix_match("/admin", 6, "/admin%2", 8, false, &rest));
    /* so does a backslash, raw or encoded (IIS reads it as '/') */
    CHECK(router_prefix_match("/admin", 6, "/admin\\x", 8, false, &rest) && rest == 6);
    CHECK(router_prefix_match("/admin", 6, "\\admin", 6, false, &rest) && rest == 6);
    CHECK(router_prefix_match("/admin", 6, "/admin%5cx", 10, false, &rest) && rest == 6);
    CHECK(router_prefix_match("/a/b", 4, "/a%5Cb", 6, false, &rest) && rest == 6);
    /* case, only when asked */
    CHECK(!router_prefix_match("/admin", 6, "/ADMIN", 6, false, &rest));
    CHECK(router_prefix_match("/admin", 6, "/ADMIN/x", 8, true, &rest) && rest == 6);
    CHECK(router_prefix_match("/admin", 6, "/aDmIn;x%2Fy", 12, true, &rest) && rest == 8);

    CHECK(!router_path_ambiguous("/a/b;c/d%2Fe", 12));
    CHECK(!router_path_ambiguous("/a/..b;x/.c", 11));
    CHECK(router_path_ambiguous("/public/..;/admin", 17));
    CHECK(router_path_ambiguous("/public/.;x/admin", 17));
    CHECK(router_path_ambiguous("/public%2F..%2Fadmin", 20));
    CHECK(router_path_ambiguous("/public/..%2fadmin", 18));
    CHECK(router_path_ambiguous("/public\\..\\admin", 16));
    CHECK(router_path_ambiguous("/public/..%5Cadmin", 18));

    const struct cfg_site *nocase = router_site(c, NULL, "iis.example.net", 15);
    CHECK_EQ_INT(status_of(nocase, "/admin/panel"), 403);
    CHECK_EQ_INT(status_of(nocase, "/ADMIN/PANEL/x"), 403);
    CHECK_EQ_INT(status_of(nocase, "/Admin/Panels"), 200);
    CHECK_EQ_INT(status_of(shop, "/MEET"), 1); /* the others keep case */
    /* the configured prefix was normalised as request paths are: "/admin/x" */
    const struct cfg_site *enc = router_site(c, NULL, "enc.example.net", 15);
    CHECK_EQ_INT(status_of(enc, "/admin/x"), 403);
    CHECK_EQ_INT(status_of(enc, "/admin/x%2Fy"), 403);
    CHECK_EQ_INT(status_of(enc, "/admin;jsessionid=1/x;y/z"), 403);
    CHECK_EQ_INT(status_of(enc, "/admin"), 200);
    config_unref(c);
    return check_done("router");
}
