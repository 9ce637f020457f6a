/* Unit tests for the `compress` keys (config_compress.c): true, false, a map, the defaults, a
 * route's replacing its site's, and every refusal with its FILE:LINE:COL. */
#include "check.h"
#include "config_check.h"
#include "config/config.h"
#include "http/encoder.h"

#include <stdlib.h>

static char *messages;

static int load(const char *yaml, struct config **c)
{
    size_t len;
    FILE *f;
    int n;

    free(messages);
    f = open_memstream(&messages, &len);
    n = config_load_string("x.yaml", yaml, strlen(yaml), c, f);
    fclose(f);
    return n;
}

static void expect_errors(int line, const char *yaml, const char *expected)
{
    struct config *c = (struct config *)1;
    int n = load(yaml, &c);

    check_config_errors(__FILE__, line, c, n, messages, expected);
}
#define EXPECT_ERRORS(yaml, expected) expect_errors(__LINE__, yaml, expected)

#define HEAD "listen: [{address: \":0\"}]\nsites:\n  - hosts: [\"*\"]\n"

static bool has_type(const struct cfg_compress *c, const char *t)
{
    for (size_t i = 0; i < c->ntypes; i++)
        if (!strcmp(c->types[i], t))
            return true;
    return false;
}

static void check_defaults(const struct cfg_compress *c)
{
    CHECK(c != NULL && c->on);
    if (!c)
        return;
    CHECK_EQ_INT(c->nalgorithms, 3);
    CHECK_EQ_INT(c->algorithms[0], ENCODER_ZSTD);
    CHECK_EQ_INT(c->algorithms[1], ENCODER_BR);
    CHECK_EQ_INT(c->algorithms[2], ENCODER_GZIP);
    CHECK_EQ_INT(c->min_size, 1024);
    CHECK_EQ_INT(c->level[ENCODER_GZIP], encoder_default_level(ENCODER_GZIP));
    CHECK_EQ_INT(c->level[ENCODER_BR], encoder_default_level(ENCODER_BR));
    CHECK_EQ_INT(c->level[ENCODER_ZSTD], encoder_default_level(ENCODER_ZSTD));
    CHECK_EQ_INT(c->ntypes, 6);
    CHECK(has_type(c, "text/*"));
    CHECK(has_type(c, "application/json"));
    CHECK(has_type(c, "application/javascript"));
    CHECK(has_type(c, "application/xml"));
    CHECK(has_type(c, "image/svg+xml"));
    CHECK(has_type(c, "application/wasm"));
}

/* Absent: off (NULL) on the site and on the route (which then takes the site's). */
static void test_absent(void)
{
    struct config *c;

    CHECK_EQ_INT(load(HEAD "    routes: [{path: /, respond: {}}]\n", &c), 0);
    if (!c)
        return;
    CHECK(c->sites[0].compress == NULL);
    CHECK(c->sites[0].routes[0].compress == NULL);
    config_unref(c);
}

static void test_true_and_empty_map(void)
{
    struct config *c;

    CHECK_EQ_INT(load(HEAD "    compress: true\n"
                           "    routes:\n"
                           "      - {path: /, respond: {}}\n"
                           "      - {path: /a, respond: {}, compress: {}}\n"
                           "      - {path: /b, respond: {}, compress: ~}\n"
                           "      - {path: /c, respond: {}, compress: false}\n",
                      &c),
                 0);
    if (!c)
        return;
    check_defaults(c->sites[0].compress);
    for (size_t i = 0; i < c->sites[0].nroutes; i++) {
        const struct cfg_route *r = &c->sites[0].routes[i];
        if (!strcmp(r->path, "/a"))
            check_defaults(r->compress);
        else if (!strcmp(r->path, "/b") || !strcmp(r->path, "/"))
            CHECK(r->compress == NULL); /* null is absent: the site's applies */
        else if (!strcmp(r->path, "/c"))
            CHECK(r->compress != NULL && !r->compress->on);
    }
    config_unref(c);
}

static void test_map(void)
{
    struct config *c;

    CHECK_EQ_INT(load(HEAD "    compress:\n"
                           "      algorithms: [gzip, X-GZIP2, br]\n"
                           "      min_size: 0\n"
                           "      types: [text/html, \"*/*\"]\n"
                           "      level: {gzip: 9, zstd: 19}\n"
                           "    routes: [{path: /, respond: {}}]\n",
                      &c),
                 1); /* X-GZIP2 is no coding */
    CHECK_EQ_INT(load(HEAD "    compress:\n"
                           "      algorithms: [gzip, br]\n"
                           "      min_size: 0\n"
                           "      types: [text/html, \"*/*\", image/svg+xml]\n"
                           "      level: {gzip: 9, br: 0, zstd: 19}\n"
                           "    routes: [{path: /, respond: {}}]\n",
                      &c),
                 0);
    if (!c)
        return;
    const struct cfg_compress *z = c->sites[0].compress;
    CHECK(z && z->on);
    if (z) {
        CHECK_EQ_INT(z->nalgorithms, 2);
        CHECK_EQ_INT(z->algorithms[0], ENCODER_GZIP);
        CHECK_EQ_INT(z->algorithms[1], ENCODER_BR);
        CHECK_EQ_INT(z->min_size, 0);
        CHECK_EQ_INT(z->ntypes, 3);
        CHECK(has_type(z, "*/*"));
        CHECK_EQ_INT(z->level[ENCODER_GZIP], 9);
        CHECK_EQ_INT(z->level[ENCODER_BR], 0);
        CHECK_EQ_INT(z->level[ENCODER_ZSTD], 19);
    }
    config_unref(c);
}

/* Every level the encoder accepts loads, and no other. */
static void test_levels_follow_encoder(void)
{
    static const char *const names[] = {
        [ENCODER_GZIP] = "gzip", [ENCODER_BR] = "br", [ENCODER_ZSTD] = "zstd"};
    for (int k = ENCODER_GZIP; k <= ENCODER_ZSTD; k++) {
        for (int v = 0; v <= 25; v++) {
            char yaml[512];
            struct config *c;
            snprintf(yaml, sizeof yaml,
                     HEAD "    compress: {level: {%s: %d}}\n    routes: [{path: /, respond: {}}]\n",
                     names[k], v);
            int n = load(yaml, &c);
            CHECK_EQ_INT(n == 0, encoder_level_valid((enum encoder_kind)k, v));
            if (c)
                config_unref(c);
        }
    }
}

static void test_errors(void)
{
    EXPECT_ERRORS(HEAD "    compress:\n"
                       "      algorithms: [gzip, lzma, gzip, identity]\n"
                       "      types: [text/*, \"application/json; charset=utf-8\", \"*/html\", "
                       "nope, \"a b/c\"]\n"
                       "      level: { gzip: 10, br: 12, zstd: 0 }\n"
                       "      min_size: 1x\n"
                       "      window: 3\n"
                       "    routes:\n"
                       "      - {path: /, respond: {}, compress: [1]}\n"
                       "      - {path: /a, respond: {}, compress: maybe}\n"
                       "      - {path: /b, respond: {}, compress: {algorithms: []}}\n"
                       "      - {path: /c, respond: {}, compress: {level: {gzip: -1, lz: 1}}}\n",
                  "x.yaml:5:26: unknown algorithm 'lzma' (expected gzip, br or zstd)\n"
                  "x.yaml:5:32: algorithm 'gzip' is listed twice\n"
                  "x.yaml:5:38: unknown algorithm 'identity' (expected gzip, br or zstd)\n"
                  "x.yaml:6:23: bad media range 'application/json; charset=utf-8' in 'types' "
                  "(expected type/subtype, type/* or */*, without parameters)\n"
                  "x.yaml:6:58: bad media range '*/html' in 'types' (expected type/subtype, "
                  "type/* or */*, without parameters)\n"
                  "x.yaml:6:68: bad media range 'nope' in 'types' (expected type/subtype, "
                  "type/* or */*, without parameters)\n"
                  "x.yaml:6:74: bad media range 'a b/c' in 'types' (expected type/subtype, "
                  "type/* or */*, without parameters)\n"
                  "x.yaml:7:22: 'gzip' level must be an integer 1..9\n"
                  "x.yaml:7:30: 'br' level must be an integer 0..11\n"
                  "x.yaml:7:40: 'zstd' level must be an integer 1..19\n"
                  "x.yaml:8:17: 'min_size' must be a size like 8192, 64k or 1m\n"
                  "x.yaml:9:7: unknown key 'window' in 'compress'\n"
                  "x.yaml:11:42: 'compress' must be true, false or a map\n"
                  "x.yaml:12:43: 'compress' must be true, false or a map\n"
                  "x.yaml:13:56: 'algorithms' must not be empty\n"
                  "x.yaml:14:58: 'gzip' level must be an integer 1..9\n"
                  "x.yaml:14:62: unknown key 'lz' in 'level'\n");
}

int main(void)
{
    test_absent();
    test_true_and_empty_map();
    test_map();
    test_levels_follow_encoder();
    test_errors();
    free(messages);
    return check_done("test_config_compress");
}
