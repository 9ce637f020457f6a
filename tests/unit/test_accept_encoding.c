/* Unit tests for http/accept_encoding: the negotiation table (RFC 9110 section 12.5.3), the
 * q-value grammar, the compressibility rules and the ETag weakening. */
#include "check.h"
#include "http/accept_encoding.h"

#include <stdint.h>

#define Z ENCODER_ZSTD
#define B ENCODER_BR
#define G ENCODER_GZIP
#define I ENCODER_IDENTITY

static const enum encoder_kind pref_zbg[] = {Z, B, G};
static const enum encoder_kind pref_gbz[] = {G, B, Z};
static const enum encoder_kind pref_g[] = {G};

struct ae_case {
    const char *value; /* NULL: no Accept-Encoding field */
    const enum encoder_kind *avail;
    size_t navail;
    enum encoder_kind want;
    bool refused;
};

#define ZBG pref_zbg, 3
#define GBZ pref_gbz, 3
#define GONLY pref_g, 1

static const struct ae_case cases[] = {
    /* absent or empty: nothing is compressed */
    {NULL, ZBG, I, false},
    {"", ZBG, I, false},
    {"  ", ZBG, I, false},
    /* one coding */
    {"gzip", ZBG, G, false},
    {"br", ZBG, B, false},
    {"zstd", ZBG, Z, false},
    {"deflate", ZBG, I, false},
    {"compress, deflate", ZBG, I, false},
    /* server preference among equal weights */
    {"gzip, deflate, br", ZBG, B, false},
    {"gzip, deflate, br, zstd", ZBG, Z, false},
    {"gzip, deflate, br, zstd", GBZ, G, false},
    {"br, gzip", GONLY, G, false},
    {"br", GONLY, I, false},
    /* the client's weights win over the server's order */
    {"zstd;q=0.5, gzip", ZBG, G, false},
    {"zstd;q=0.5, br;q=0.9, gzip;q=0.8", ZBG, B, false},
    {"gzip;q=0.001, br;q=0.002", GBZ, B, false},
    {"gzip;q=1.000, zstd;q=1.0", GBZ, G, false},
    /* q=0 refuses */
    {"gzip;q=0", ZBG, I, false},
    {"gzip;q=0, br", ZBG, B, false},
    {"zstd;q=0.000, br;q=0, gzip", ZBG, G, false},
    {"gzip;q=0.0", GONLY, I, false},
    /* "*" covers what is not listed */
    {"*", ZBG, Z, false},
    {"*", GBZ, G, false},
    {"*;q=0.5, zstd;q=0", ZBG, B, false},
    {"*;q=0, gzip", ZBG, G, false},
    {"br;q=0.4, *;q=0.5", ZBG, Z, false},
    {"*;q=0.2, gzip;q=0.3", ZBG, G, false},
    /* identity */
    {"identity", ZBG, I, false},
    {"identity, gzip", ZBG, G, false}, /* equal weights: compression */
    {"identity;q=1, gzip;q=0.5", ZBG, I, false},
    {"identity;q=0.5, gzip;q=0.6", ZBG, G, false},
    {"identity;q=0", ZBG, I, true}, /* refused, nothing else: sent as is */
    {"*;q=0", ZBG, I, true},        /* same, through "*" */
    {"*;q=0, identity", ZBG, I, false},
    {"*;q=0, identity;q=0.5", ZBG, I, false},
    {"identity;q=0, gzip", ZBG, G, false},
    {"identity;q=0, deflate", ZBG, I, true},
    {"identity;q=0, br", GONLY, I, true},
    {"*;q=0, br", GONLY, I, true},
    {"*;q=0", GONLY, I, true},
    /* tokens are case-insensitive; x-gzip is gzip */
    {"GZIP", ZBG, G, false},
    {"Br", ZBG, B, false},
    {"ZSTD;Q=0.5, GZip;q=0.4", ZBG, Z, false},
    {"x-gzip", ZBG, G, false},
    {"X-GZIP;q=0.5, br;q=0.4", ZBG, G, false},
    {"x-gzip;q=0, gzip", ZBG, I, false}, /* the same coding twice: the refusal stands */
    {"gzip, gzip;q=0", ZBG, I, false},
    {"IDENTITY;Q=0", ZBG, I, true},
    /* whitespace */
    {"  gzip  ,  br  ", GBZ, G, false},
    {"gzip ; q=0.5 ,\tbr\t;\tq=0.6", ZBG, B, false},
    {"gzip;q=0.5 , br;q=0.4", ZBG, G, false},
    /* empty list members are allowed */
    {",,gzip,,", ZBG, G, false},
    {", ,", ZBG, I, false},
    /* malformed members are ignored, the rest still counts */
    {"gzip;q=1.5, br", ZBG, B, false},
    {"gzip;q=1.5", ZBG, I, false},
    {"gzip;q=0.1234", ZBG, I, false},
    {"gzip;q=2", ZBG, I, false},
    {"gzip;q=1.001", ZBG, I, false},
    {"gzip;q=-1", ZBG, I, false},
    {"gzip;q=.5", ZBG, I, false},
    {"gzip;q=0.", ZBG, I, false}, /* "0." is in the grammar (no DIGIT after the dot): 0 */
    {"gzip;q=1.", ZBG, G, false}, /* and "1." is 1 */
    {"gzip;q=", ZBG, I, false},
    {"gzip;q", ZBG, I, false},
    {"gzip;", ZBG, I, false},
    {"gzip;q=0.5;x=1", ZBG, I, false},
    {"gzip;level=1", ZBG, I, false},
    {"gzip;q = 0.5", ZBG, I, false},
    {"gzip q=0.5", ZBG, I, false},
    {"gzip;q=0.5 x", ZBG, I, false},
    {"gz\"ip", ZBG, I, false},
    {"\"gzip\"", ZBG, I, false},
    {"gzip/1, br", ZBG, B, false},
    {"gzip;q=0x1, br;q=abc, zstd", GBZ, Z, false},
    {";q=1, gzip", ZBG, G, false},
    {"gzip;q=0, gzip;q=oops", ZBG, I, false}, /* the malformed one cannot undo the refusal */
    {"*;q=1.1, gzip;q=0.1", ZBG, G, false},
    {"identity;q=x", ZBG, I, false},
    {"gzipbr", ZBG, I, false},
    {"gzip\x01", ZBG, I, false},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ae_case *c = &cases[i];
        struct accept_encoding ae;
        accept_encoding_init(&ae);
        if (c->value)
            accept_encoding_parse(&ae, c->value, strlen(c->value));
        struct accept_encoding_choice ch = accept_encoding_choose(&ae, c->avail, c->navail);
        CHECK(ch.kind == c->want && ch.identity_refused == c->refused);
        if (ch.kind != c->want || ch.identity_refused != c->refused)
            fprintf(stderr, "  case %zu \"%s\": got %s%s, want %s%s\n", i,
                    c->value ? c->value : "(absent)", encoder_kind_name(ch.kind),
                    ch.identity_refused ? " (identity refused)" : "", encoder_kind_name(c->want),
                    c->refused ? " (identity refused)" : "");
    }
}

static void test_qvalue_grammar(void)
{
    static const struct {
        const char *q;
        int w;
    } qs[] = {
        {"0", 0},
        {"0.", 0},
        {"0.5", 500},
        {"0.05", 50},
        {"0.005", 5},
        {"0.999", 999},
        {"1", 1000},
        {"1.", 1000},
        {"1.0", 1000},
        {"1.00", 1000},
        {"1.000", 1000},
        {"1.0000", -1},
        {"0.0000", -1},
        {"1.5", -1},
        {"1.001", -1},
        {"2", -1},
        {"01", -1},
        {".5", -1},
        {"0,5", 0 /* the comma ends the member: "br;q=0" */},
        {"", -1},
        {"+1", -1},
        {"0.5.", -1},
        {"0.a", -1},
        {"1e0", -1},
    };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        char v[64];
        snprintf(v, sizeof(v), "br;q=%s", qs[i].q);
        struct accept_encoding ae;
        accept_encoding_init(&ae);
        accept_encoding_parse(&ae, v, strlen(v));
        int w = accept_encoding_weight(&ae, ENCODER_BR);
        CHECK_EQ_INT(w, qs[i].w);
        if (w != qs[i].w)
            fprintf(stderr, "  q=%s\n", qs[i].q);
    }
}

static void test_repeated_lines_and_weight(void)
{
    /* Two field lines form one list. */
    struct accept_encoding ae;
    accept_encoding_init(&ae);
    accept_encoding_parse(&ae, "gzip;q=0.5", 10);
    accept_encoding_parse(&ae, "br;q=0.7", 8);
    CHECK(accept_encoding_choose(&ae, pref_zbg, 3).kind == B);
    CHECK_EQ_INT(accept_encoding_weight(&ae, G), 500);
    CHECK_EQ_INT(accept_encoding_weight(&ae, Z), -1);
    CHECK_EQ_INT(accept_encoding_weight(&ae, I), -1);
    CHECK_EQ_INT(accept_encoding_weight(&ae, ENCODER_KIND_COUNT), -1);
    /* The value is a slice: bytes past len are not read. */
    accept_encoding_init(&ae);
    accept_encoding_parse(&ae, "gzip, br", 4);
    CHECK(accept_encoding_choose(&ae, pref_zbg, 3).kind == G);
    /* Duplicates and identity in the server's list are ignored; an empty list picks nothing. */
    static const enum encoder_kind odd[] = {I, G, G, ENCODER_KIND_COUNT};
    accept_encoding_init(&ae);
    accept_encoding_parse(&ae, "*", 1);
    CHECK(accept_encoding_choose(&ae, odd, 4).kind == G);
    CHECK(accept_encoding_choose(&ae, NULL, 0).kind == I);
}

static const char *const types[] = {"text/*", "application/json", "application/javascript",
                                    "image/svg+xml"};

static bool type_ok(const char *ct)
{
    return accept_encoding_type_listed(ct, strlen(ct), types, 4);
}

static void test_types(void)
{
    CHECK(type_ok("text/html"));
    CHECK(type_ok("text/html; charset=utf-8"));
    CHECK(type_ok("TEXT/CSS"));
    CHECK(type_ok("  text/plain  ;charset=x"));
    CHECK(type_ok("text/event-stream"));
    CHECK(type_ok("application/json"));
    CHECK(type_ok("Application/JSON;charset=utf-8"));
    CHECK(type_ok("image/svg+xml"));
    CHECK(!type_ok("text/"));
    CHECK(!type_ok("text"));
    CHECK(!type_ok("textual/html"));
    CHECK(!type_ok("application/jsonx"));
    CHECK(!type_ok("application/json5"));
    CHECK(!type_ok("image/png"));
    CHECK(!type_ok("application/octet-stream"));
    CHECK(!type_ok(""));
    CHECK(!type_ok(";charset=utf-8"));
    static const char *const all[] = {"*/*"};
    CHECK(accept_encoding_type_listed("image/png", 9, all, 1));
    static const char *const upper[] = {"TEXT/*"};
    CHECK(accept_encoding_type_listed("text/html", 9, upper, 1));
    CHECK(!accept_encoding_type_listed("text/html", 9, NULL, 0));
}

static bool nt(const char *cc)
{
    return accept_encoding_no_transform(cc, strlen(cc));
}

static void test_no_transform(void)
{
    CHECK(nt("no-transform"));
    CHECK(nt("public, no-transform"));
    CHECK(nt("No-Transform , max-age=60"));
    CHECK(nt("max-age=60,no-transform"));
    CHECK(nt("private=\"x, y\", no-transform"));
    CHECK(!nt("public, max-age=3600"));
    CHECK(!nt("no-transformation"));
    CHECK(!nt("x-no-transform"));
    CHECK(!nt("private=\"no-transform\""));
    CHECK(!nt("private=\"a, no-transform\""));
    CHECK(!nt(""));
}

static struct accept_encoding_response res_ok(void)
{
    struct accept_encoding_response r = {0};
    r.status = 200;
    r.content_type = "text/html; charset=utf-8";
    r.content_type_len = strlen(r.content_type);
    r.has_content_length = true;
    r.content_length = 5000;
    return r;
}

static void test_compressible(void)
{
    struct accept_encoding_policy pol = {types, 4, 1024};
    struct accept_encoding_response r = res_ok();
    CHECK(accept_encoding_compressible(&pol, &r));
    r.status = 404; /* error pages compress too */
    CHECK(accept_encoding_compressible(&pol, &r));
    static const int never[] = {100, 101, 103, 199, 204, 206, 304};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        r = res_ok();
        r.status = never[i];
        CHECK(!accept_encoding_compressible(&pol, &r));
    }
    r = res_ok();
    r.request_has_range = true;
    CHECK(!accept_encoding_compressible(&pol, &r));
    r = res_ok();
    r.has_content_encoding = true;
    CHECK(!accept_encoding_compressible(&pol, &r));
    r = res_ok();
    r.cache_control = "public, no-transform";
    r.cache_control_len = strlen(r.cache_control);
    CHECK(!accept_encoding_compressible(&pol, &r));
    r.cache_control = "public";
    r.cache_control_len = 6;
    CHECK(accept_encoding_compressible(&pol, &r));
    r = res_ok();
    r.content_type = NULL;
    CHECK(!accept_encoding_compressible(&pol, &r));
    r = res_ok();
    r.content_type = "image/png";
    r.content_type_len = 9;
    CHECK(!accept_encoding_compressible(&pol, &r));
    /* min_size by Content-Length; the bound itself compresses; unknown length compresses */
    r = res_ok();
    r.content_length = 1023;
    CHECK(!accept_encoding_compressible(&pol, &r));
    r.content_length = 1024;
    CHECK(accept_encoding_compressible(&pol, &r));
    r.content_length = 0;
    r.has_content_length = false;
    CHECK(accept_encoding_compressible(&pol, &r));
}

static void test_weaken_etag(void)
{
    char out[64];
    size_t n = accept_encoding_weaken_etag("\"abc\"", 5, out, sizeof(out));
    CHECK_SLICE(out, n, "W/\"abc\"");
    n = accept_encoding_weaken_etag("W/\"abc\"", 7, out, sizeof(out));
    CHECK_SLICE(out, n, "W/\"abc\"");
    n = accept_encoding_weaken_etag("\"\"", 2, out, sizeof(out));
    CHECK_SLICE(out, n, "W/\"\"");
    /* Does not fit: 0, nothing promised. Exactly fits: written. */
    CHECK_EQ_INT(accept_encoding_weaken_etag("\"abc\"", 5, out, 6), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("\"abc\"", 5, out, 7), 7);
    /* Malformed: dropped. */
    CHECK_EQ_INT(accept_encoding_weaken_etag("abc", 3, out, sizeof(out)), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("\"abc", 4, out, sizeof(out)), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("\"", 1, out, sizeof(out)), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("", 0, out, sizeof(out)), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("W/", 2, out, sizeof(out)), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("w/\"a\"", 5, out, sizeof(out)), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("\"a b\"", 5, out, sizeof(out)), 0);
    CHECK_EQ_INT(accept_encoding_weaken_etag("\"a\"b\"", 5, out, sizeof(out)), 0);
}

int main(void)
{
    test_table();
    test_qvalue_grammar();
    test_repeated_lines_and_weight();
    test_types();
    test_no_transform();
    test_compressible();
    test_weaken_etag();
    return check_done("test_accept_encoding");
}
