/* Response field rewriting: internal origins in Location, Refresh, Link and Set-Cookie become
 * the public origin the client used. */
#include "check.h"
#include "proxy/rewrite.h"

#include <stdbool.h>

#define O(s)                                                                                       \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }

static const struct rewrite_origin internal[] = {
    O("http://127.0.0.1:9090"),    O("http://jenkins.internal:8080"),
    O("https://jenkins.internal"), O("http://[::1]:9090"),
    O("http://app.local"), /* default port: equals http://app.local:80 */
};

#define CTX(sch, hst, pfx)                                                                         \
    {                                                                                              \
        internal, sizeof(internal) / sizeof(internal[0]), (sch), sizeof(sch) - 1, (hst),           \
            sizeof(hst) - 1, (pfx), sizeof(pfx) - 1                                                \
    }

/* The usual deployment: TLS at the edge, the app mounted under /jenkins. */
static const struct rewrite_ctx pre = CTX("https", "ci.example.com", "/jenkins");
/* No prefix, a port on the public Host. */
static const struct rewrite_ctx bare = CTX("http", "ci.example.com:8443", "");
/* An IPv6 public Host. */
static const struct rewrite_ctx v6 = CTX("http", "[::1]:8080", "/app");

enum kind { LOC, REF, LNK, CKE };
#define SAME NULL   /* the value needs no change: 0 */
#define FAIL "\x01" /* cannot be rewritten: -1 */

struct tcase {
    int line;
    enum kind kind;
    const struct rewrite_ctx *ctx;
    const char *in;
    const char *want;
};

static const struct tcase cases[] = {
    /* Location: the basic rewrites. */
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090/login", "https://ci.example.com/jenkins/login"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090/a/b?x=1#f",
     "https://ci.example.com/jenkins/a/b?x=1#f"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090", "https://ci.example.com/jenkins"},
    {__LINE__, LOC, &bare, "http://127.0.0.1:9090", "http://ci.example.com:8443/"},
    {__LINE__, LOC, &bare, "http://127.0.0.1:9090?q", "http://ci.example.com:8443/?q"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090?q", "https://ci.example.com/jenkins?q"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090#top", "https://ci.example.com/jenkins#top"},
    {__LINE__, LOC, &pre, "http://jenkins.internal:8080/x", "https://ci.example.com/jenkins/x"},
    {__LINE__, LOC, &bare, "http://jenkins.internal:8080/x", "http://ci.example.com:8443/x"},
    /* Case: scheme and host compare case-insensitively, the path keeps its case. */
    {__LINE__, LOC, &pre, "HTTP://Jenkins.INTERNAL:8080/X", "https://ci.example.com/jenkins/X"},
    {__LINE__, LOC, &pre, "HtTpS://JENKINS.internal/", "https://ci.example.com/jenkins/"},
    /* Default ports are equivalent to their absence, in both directions; an empty port too. */
    {__LINE__, LOC, &pre, "https://jenkins.internal:443/a", "https://ci.example.com/jenkins/a"},
    {__LINE__, LOC, &pre, "http://app.local:80/a", "https://ci.example.com/jenkins/a"},
    {__LINE__, LOC, &pre, "http://app.local/a", "https://ci.example.com/jenkins/a"},
    {__LINE__, LOC, &pre, "http://app.local:/a", "https://ci.example.com/jenkins/a"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:09090/a", "https://ci.example.com/jenkins/a"},
    /* A different scheme, port or host is someone else. */
    {__LINE__, LOC, &pre, "https://127.0.0.1:9090/a", SAME},
    {__LINE__, LOC, &pre, "http://jenkins.internal/a", SAME},
    {__LINE__, LOC, &pre, "https://app.local/a", SAME},
    {__LINE__, LOC, &pre, "http://127.0.0.1:90901/a", SAME},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090x/a", SAME},
    {__LINE__, LOC, &pre, "http://127.0.0.1:99999/a", SAME},
    {__LINE__, LOC, &pre, "http://127.0.0.10:9090/a", SAME},
    {__LINE__, LOC, &pre, "http://jenkins.internal.evil:8080/a", SAME},
    {__LINE__, LOC, &pre, "https://www.example.org/", SAME},
    /* Userinfo moves the host: http://127.0.0.1:9090@evil/ names "evil". */
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090@evil.example/", SAME},
    {__LINE__, LOC, &pre, "http://u:p@127.0.0.1:9090/", SAME},
    /* Relative references are the client's to resolve. */
    {__LINE__, LOC, &pre, "/login", SAME},
    {__LINE__, LOC, &pre, "login", SAME},
    {__LINE__, LOC, &pre, "?x=1", SAME},
    {__LINE__, LOC, &pre, "#frag", SAME},
    {__LINE__, LOC, &pre, "", SAME},
    {__LINE__, LOC, &pre, "http:/127.0.0.1:9090/a", SAME},
    /* Scheme-relative URLs take the internal origin's scheme. */
    {__LINE__, LOC, &pre, "//127.0.0.1:9090/a", "https://ci.example.com/jenkins/a"},
    {__LINE__, LOC, &pre, "//jenkins.internal/a", "https://ci.example.com/jenkins/a"},
    {__LINE__, LOC, &pre, "//evil.example/a", SAME},
    /* IPv6 internal and public hosts. */
    {__LINE__, LOC, &pre, "http://[::1]:9090/a", "https://ci.example.com/jenkins/a"},
    {__LINE__, LOC, &v6, "http://[::1]:9090/a", "http://[::1]:8080/app/a"},
    {__LINE__, LOC, &pre, "http://[::1]:909/a", SAME},
    {__LINE__, LOC, &pre, "http://[::2]:9090/a", SAME},
    /* The prefix is not doubled when the app already honours X-Forwarded-Prefix. */
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090/jenkins/login",
     "https://ci.example.com/jenkins/login"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090/jenkins", "https://ci.example.com/jenkins"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090/jenkins?a", "https://ci.example.com/jenkins?a"},
    {__LINE__, LOC, &pre, "http://127.0.0.1:9090/jenkinsfoo",
     "https://ci.example.com/jenkins/jenkinsfoo"},
    /* Already public: nothing to do. */
    {__LINE__, LOC, &pre, "https://ci.example.com/jenkins/login", SAME},
    /* Refresh: spacing, case and quotes as browsers accept them. */
    {__LINE__, REF, &pre, "5; url=http://127.0.0.1:9090/x",
     "5; url=https://ci.example.com/jenkins/x"},
    {__LINE__, REF, &pre, "0;URL=http://127.0.0.1:9090/x",
     "0;URL=https://ci.example.com/jenkins/x"},
    {__LINE__, REF, &pre, "3 ;  Url = 'http://127.0.0.1:9090/x' ",
     "3 ;  Url = 'https://ci.example.com/jenkins/x' "},
    {__LINE__, REF, &pre, "3, url=\"http://127.0.0.1:9090/x\"",
     "3, url=\"https://ci.example.com/jenkins/x\""},
    {__LINE__, REF, &pre, "1.5; http://127.0.0.1:9090/x", "1.5; https://ci.example.com/jenkins/x"},
    {__LINE__, REF, &pre, "2;url=http://127.0.0.1:9090/x  ",
     "2;url=https://ci.example.com/jenkins/x  "},
    {__LINE__, REF, &pre, "5; url=/relative", SAME},
    {__LINE__, REF, &pre, "5", SAME},
    {__LINE__, REF, &pre, "5;", SAME},
    {__LINE__, REF, &pre, "x; url=http://127.0.0.1:9090/x", SAME},
    {__LINE__, REF, &pre, "5; url=http://other.example/x", SAME},
    /* Link: several entries, only the <...> parts, quoted commas and brackets ignored. */
    {__LINE__, LNK, &pre, "<http://jenkins.internal:8080/x>; rel=preload",
     "<https://ci.example.com/jenkins/x>; rel=preload"},
    {__LINE__, LNK, &pre,
     "<http://127.0.0.1:9090/a.css>; rel=preload; as=style, </b.js>; rel=preload, "
     "<https://jenkins.internal/c>; rel=\"next\"",
     "<https://ci.example.com/jenkins/a.css>; rel=preload; as=style, </b.js>; rel=preload, "
     "<https://ci.example.com/jenkins/c>; rel=\"next\""},
    {__LINE__, LNK, &pre,
     "</x>; title=\"a, <http://127.0.0.1:9090/no>\", <http://127.0.0.1:9090/yes>; rel=a",
     "</x>; title=\"a, <http://127.0.0.1:9090/no>\", <https://ci.example.com/jenkins/yes>; rel=a"},
    {__LINE__, LNK, &pre, "</x>; title=\"q\\\", <http://127.0.0.1:9090/no>\"", SAME},
    {__LINE__, LNK, &pre, "<http://127.0.0.1:9090/a>,<http://127.0.0.1:9090/b>",
     "<https://ci.example.com/jenkins/a>,<https://ci.example.com/jenkins/b>"},
    {__LINE__, LNK, &pre, " , <http://127.0.0.1:9090>", " , <https://ci.example.com/jenkins>"},
    {__LINE__, LNK, &pre, "</a>; rel=next, <https://cdn.example/b>; rel=preload", SAME},
    {__LINE__, LNK, &pre, "<http://127.0.0.1:9090/unclosed", SAME},
    /* Set-Cookie: Path and Domain, any case and order; everything else as it was. */
    {__LINE__, CKE, &pre, "sid=1; Path=/; HttpOnly", "sid=1; Path=/jenkins; HttpOnly"},
    {__LINE__, CKE, &pre, "sid=1; path=/x", "sid=1; path=/jenkins/x"},
    {__LINE__, CKE, &pre, "sid=1; PATH = /x ; Secure", "sid=1; PATH = /jenkins/x ; Secure"},
    {__LINE__, CKE, &pre, "sid=1; Path=/jenkins/x", SAME},
    {__LINE__, CKE, &pre, "sid=1; Path=/jenkins", SAME},
    {__LINE__, CKE, &pre, "sid=1; Path=relative", SAME},
    {__LINE__, CKE, &pre, "sid=1; Path=", SAME},
    {__LINE__, CKE, &bare, "sid=1; Path=/x", SAME},
    {__LINE__, CKE, &pre, "sid=1; Domain=jenkins.internal; Path=/",
     "sid=1; Domain=ci.example.com; Path=/jenkins"},
    {__LINE__, CKE, &bare, "sid=1; domain=.JENKINS.internal; Secure",
     "sid=1; domain=ci.example.com; Secure"},
    {__LINE__, CKE, &bare, "sid=1; DOMAIN=127.0.0.1", "sid=1; DOMAIN=ci.example.com"},
    {__LINE__, CKE, &v6, "sid=1; Domain=app.local; Path=/", "sid=1; Domain=[::1]; Path=/app"},
    {__LINE__, CKE, &pre, "sid=1; Domain=example.org; Path=/jenkins", SAME},
    {__LINE__, CKE, &pre, "Path=/x", SAME}, /* the cookie's own name=value */
    {__LINE__, CKE, &pre, "sid=Path; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/",
     "sid=Path; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/jenkins"},
    {__LINE__, CKE, &pre, "sid=1; HttpOnly", SAME},
};

static ssize_t run(enum kind k, const struct rewrite_ctx *c, const char *v, size_t len, char *out,
                   size_t cap)
{
    switch (k) {
    case LOC:
        return rewrite_location(c, v, len, out, cap);
    case REF:
        return rewrite_refresh(c, v, len, out, cap);
    case LNK:
        return rewrite_link(c, v, len, out, cap);
    case CKE:
        return rewrite_set_cookie(c, v, len, out, cap);
    }
    return -2;
}

static void table(void)
{
    char out[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tcase *t = &cases[i];
        ssize_t n = run(t->kind, t->ctx, t->in, strlen(t->in), out, sizeof(out));
        bool ok = t->want == SAME              ? n == 0
                  : strcmp(t->want, FAIL) == 0 ? n == -1
                                               : n > 0 && (size_t)n == strlen(t->want) &&
                                                     memcmp(out, t->want, (size_t)n) == 0;
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  case at line %d: \"%s\" -> %zd \"%.*s\"\n", t->line, t->in, n,
                    n > 0 ? (int)n : 0, out);
    }
}

/* Every cap below the result's length fails with -1 and writes nothing past cap. */
static void overflow(void)
{
    static const char in[] = "http://127.0.0.1:9090/login";
    static const char want[] = "https://ci.example.com/jenkins/login";
    char out[64];
    for (size_t cap = 0; cap < sizeof(want) - 1; cap++) {
        memset(out, '#', sizeof(out));
        CHECK_EQ_INT(rewrite_location(&pre, in, sizeof(in) - 1, out, cap), -1);
        CHECK(out[cap] == '#');
    }
    CHECK_EQ_INT(rewrite_location(&pre, in, sizeof(in) - 1, out, sizeof(want) - 1),
                 sizeof(want) - 1);
    CHECK_EQ_INT(rewrite_set_cookie(&pre, "a=b; Path=/x", 12, out, 12), -1);
    CHECK_EQ_INT(rewrite_link(&pre, "<http://127.0.0.1:9090/>", 24, out, 10), -1);
    CHECK_EQ_INT(rewrite_refresh(&pre, "1;url=http://127.0.0.1:9090/", 28, out, 10), -1);
    /* No match needs no room at all. */
    CHECK_EQ_INT(rewrite_location(&pre, "/login", 6, NULL, 0), 0);
}

/* A hostile or malformed public side, or control characters, never reach the output. */
static void hostile(void)
{
    static const char in[] = "http://127.0.0.1:9090/a";
    char out[256];
    struct rewrite_ctx c = pre;
    const char *bad_hosts[] = {
        "evil.example/x", "a@evil", "a b", "a\r\nSet-Cookie: x=y", "", "[::1", "[zz]", "host:8x",
        "a\"b",           "a;b",    "a,b"};
    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        c.host = bad_hosts[i];
        c.host_len = strlen(bad_hosts[i]);
        CHECK_EQ_INT(rewrite_location(&c, in, sizeof(in) - 1, out, sizeof(out)), -1);
    }
    c = pre;
    const char *bad_prefixes[] = {"jenkins", "/a b", "/a\nb", "/a\"b", "/a;b", "/a,b", "/a>b"};
    for (size_t i = 0; i < sizeof(bad_prefixes) / sizeof(bad_prefixes[0]); i++) {
        c.prefix = bad_prefixes[i];
        c.prefix_len = strlen(bad_prefixes[i]);
        CHECK_EQ_INT(rewrite_location(&c, in, sizeof(in) - 1, out, sizeof(out)), -1);
    }
    c = pre;
    c.scheme = "ht tp";
    c.scheme_len = 5;
    CHECK_EQ_INT(rewrite_location(&c, in, sizeof(in) - 1, out, sizeof(out)), -1);
    /* A trailing slash on the prefix is ignored, and "/" means none. */
    c = pre;
    c.prefix = "/jenkins/";
    c.prefix_len = 9;
    CHECK_EQ_INT(rewrite_location(&c, in, sizeof(in) - 1, out, sizeof(out)), 32);
    CHECK_SLICE(out, 32, "https://ci.example.com/jenkins/a");
    c.prefix = "/";
    c.prefix_len = 1;
    CHECK_EQ_INT(rewrite_location(&c, in, sizeof(in) - 1, out, sizeof(out)), 24);
    CHECK_SLICE(out, 24, "https://ci.example.com/a");
    CHECK_EQ_INT(rewrite_set_cookie(&c, "a=b; Path=/x", 12, out, sizeof(out)), 0);
    /* Control characters in the copied part of the value. */
    static const char ctl[] = "http://127.0.0.1:9090/a\r\nX: y";
    CHECK_EQ_INT(rewrite_location(&pre, ctl, sizeof(ctl) - 1, out, sizeof(out)), -1);
    static const char nul[] = "http://127.0.0.1:9090/a\0b";
    CHECK_EQ_INT(rewrite_location(&pre, nul, sizeof(nul) - 1, out, sizeof(out)), -1);
    /* Reads stay inside v[0..len): a cut value is judged by what is inside it. */
    CHECK_EQ_INT(rewrite_location(&pre, "http://127.0.0.1:90901", 21, out, sizeof(out)), 30);
    CHECK_SLICE(out, 30, "https://ci.example.com/jenkins");
    CHECK_EQ_INT(rewrite_location(&pre, "//", 2, out, sizeof(out)), 0);
}

/* An internal list with malformed origins: those never match, the rest still do. */
static void odd_origins(void)
{
    static const struct rewrite_origin odd[] = {
        O(""),        O("127.0.0.1:9090"), O("//h:1"),
        O("http://"), O("http://h:70000"), O("HTTP://Upper.Internal:81")};
    struct rewrite_ctx c = pre;
    char out[128];
    c.internal = odd;
    c.ninternal = sizeof(odd) / sizeof(odd[0]);
    CHECK_EQ_INT(rewrite_location(&c, "//h:1/a", 7, out, sizeof(out)), 0);
    CHECK_EQ_INT(rewrite_location(&c, "http://h:70000/a", 16, out, sizeof(out)), 0);
    CHECK_EQ_INT(rewrite_location(&c, "http://upper.internal:81/a", 26, out, sizeof(out)), 32);
    CHECK_SLICE(out, 32, "https://ci.example.com/jenkins/a");
    c.ninternal = 0;
    CHECK_EQ_INT(rewrite_location(&c, "http://127.0.0.1:9090/a", 23, out, sizeof(out)), 0);
}

int main(void)
{
    table();
    overflow();
    hostile();
    odd_origins();
    return check_done("rewrite");
}
