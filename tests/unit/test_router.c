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
    const struct cfg_route *r = router_route(s, path, strlen(path));
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
    CHECK(strcmp(site_of(c, "[::1]:80"), "any") == 0);
    CHECK(strcmp(site_of(c, ""), "any") == 0);

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

    CHECK(router_prefix_match("/a", 2, "/a", 2));
    CHECK(router_prefix_match("/a", 2, "/a/", 3));
    CHECK(!router_prefix_match("/a", 2, "/ab", 3));
    CHECK(!router_prefix_match("/a", 2, "/", 1));
    config_unref(c);
    return check_done("router");
}
