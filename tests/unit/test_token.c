/* http/token.h: the character classes against the RFC 9110 grammar, written out here
 * independently of the table, for every byte; and the case-insensitive compare. */
#include "check.h"
#include "http/h1_parse.h"
#include "http/token.h"

#include <stdbool.h>

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" /
 * "~" / DIGIT / ALPHA (RFC 9110 section 5.6.2). */
static bool rfc_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A field value's bytes: field-vchar = VCHAR / obs-text, plus SP and HTAB between them
 * (RFC 9110 section 5.5). */
static bool rfc_field(int c)
{
    return (c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t';
}

static bool rfc_hex(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void test_classes(void)
{
    int bad = 0, tchars = 0;
    for (int c = 0; c < 256; c++) {
        uint8_t t = http_ctype[c];
        bool ok = !!(t & HTTP_CT_TCHAR) == rfc_tchar(c) && !!(t & HTTP_CT_FIELD) == rfc_field(c) &&
                  !!(t & HTTP_CT_HEX) == rfc_hex(c) &&
                  !(t & ~(HTTP_CT_TCHAR | HTTP_CT_FIELD | HTTP_CT_HEX));
        if (!ok)
            fprintf(stderr, "http_ctype[0x%02x] = %u\n", c, t);
        bad += !ok;
        tchars += rfc_tchar(c);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(tchars, 15 + 10 + 52); /* the grammar above, counted by hand */
    /* Spot checks that read as the RFC does. */
    CHECK(http_ctype['~'] & HTTP_CT_TCHAR);
    CHECK(!(http_ctype[':'] & HTTP_CT_TCHAR) && (http_ctype[':'] & HTTP_CT_FIELD));
    CHECK(!(http_ctype['\r'] & HTTP_CT_FIELD) && !(http_ctype[0x7f] & HTTP_CT_FIELD));
    CHECK(http_ctype[0xff] == HTTP_CT_FIELD);
}

/* The ASCII lowercase of c, written out. */
static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static void test_token_eq(void)
{
    CHECK(http_token_eq("Keep-Alive", 10, "keep-alive", 10));
    CHECK(http_token_eq("CONTENT-LENGTH", 14, "content-length", 14));
    CHECK(http_token_eq("", 0, "", 0));
    CHECK(!http_token_eq("chunke", 6, "chunked", 7));
    CHECK(!http_token_eq("chunkex", 7, "chunked", 7));
    CHECK(!http_token_eq("keep\ralive", 10, "keep-alive", 10));
    /* Only the length given counts: a longer slice is not a prefix match. */
    CHECK(!http_token_eq("hostx", 5, "host", 4));
    CHECK(http_token_eq("hostx", 4, "host", 4));
    /* Every pair of bytes: equal exactly when ASCII case folding makes them equal. Only ASCII
     * letters fold: '[' is not '{', 0xC0 is not 0xE0, '@' is not '`'. */
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        for (int l = 0; l < 256; l++) {
            if (l >= 'A' && l <= 'Z')
                continue; /* the literal is lowercase by contract */
            char s = (char)c, lit = (char)l;
            bad += http_token_eq(&s, 1, &lit, 1) != (ascii_lower(c) == l);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_qvalue(void)
{
    static const struct {
        const char *s;
        int q;
    } cases[] = {
        {"0", 0},      {"1", 1000},     {"0.5", 500},   {"0.25", 250},  {"0.125", 125},
        {"1.0", 1000}, {"1.000", 1000}, {"0.", 0},      {"1.", 1000},   {"0.000", 0},
        {"", -1},      {"2", -1},       {"1.001", -1},  {"0.1234", -1}, {".5", -1},
        {"0,5", -1},   {"0.5 ", -1},    {"1.0000", -1}, {"-0", -1},     {"0.a", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int q = http_token_qvalue(cases[i].s, strlen(cases[i].s));
        if (q != cases[i].q)
            fprintf(stderr, "qvalue \"%s\": %d, want %d\n", cases[i].s, q, cases[i].q);
        CHECK(q == cases[i].q);
    }
}

int main(void)
{
    test_classes();
    test_token_eq();
    test_qvalue();
    return check_done("token");
}
