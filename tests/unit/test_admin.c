/* The admin listener's Host check (DNS rebinding): IP literals and admin.hosts names only. */
#include "check.h"
#include "config/config.h"
#include "serve/admin.h"

static const char yaml[] =
    "listen: [ { address: \"127.0.0.1:0\" } ]\n"
    "admin: { address: \"127.0.0.1:0\", hosts: [Status.Internal, localhost] }\n"
    "sites: [ { hosts: [\"*\"], routes: [ { path: /, respond: {} } ] } ]\n";

static int allowed(const struct cfg_listener *l, const char *host)
{
    return admin_host_allowed(l, host, strlen(host));
}

int main(void)
{
    struct config *c = NULL;
    CHECK_EQ_INT(config_load_string("t.yaml", yaml, sizeof(yaml) - 1, &c, stderr), 0);
    if (!c)
        return check_done("admin");
    const struct cfg_listener *l = c->admin;
    CHECK(allowed(l, "127.0.0.1"));
    CHECK(allowed(l, "127.0.0.1:9901"));
    CHECK(allowed(l, "10.1.2.3:80"));
    CHECK(allowed(l, "[::1]"));
    CHECK(allowed(l, "[::1]:9901"));
    CHECK(allowed(l, "[2001:db8::1]:1"));
    CHECK(allowed(l, "status.internal"));
    CHECK(allowed(l, "STATUS.internal.:9901"));
    CHECK(allowed(l, "localhost:9901")); /* listed */
    CHECK(!allowed(l, ""));
    CHECK(!admin_host_allowed(l, NULL, 0)); /* no Host at all (HTTP/1.0) */
    CHECK(!allowed(l, "evil.example"));     /* a rebinding page's own name */
    CHECK(!allowed(l, "evil.example:9901"));
    CHECK(!allowed(l, "status.internal.evil.example"));
    CHECK(!allowed(l, "internal"));
    CHECK(!allowed(l, "127.0.0.1.evil.example")); /* a name, not an address */
    CHECK(!allowed(l, "127.1"));                  /* inet_aton's shorthand is a name here */
    CHECK(!allowed(l, "[::1"));
    CHECK(!allowed(l, "[evil.example]"));
    CHECK(!allowed(NULL, "localhost")); /* no list: names never */
    CHECK(allowed(NULL, "127.0.0.1"));
    config_unref(c);
    return check_done("admin");
}
