/* HTTP tokens (RFC 9110 section 5.6): the character classes and the case-insensitive compare
 * every part that reads or writes field names uses (both codecs, the proxy, the forwarding and
 * hop-by-hop rules, the response helpers). Not tied to HTTP/1.1 or HTTP/2. */
#ifndef GH_HTTP_TOKEN_H
#define GH_HTTP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline unsigned char http_token_lower(unsigned char c)
{
    return c | (unsigned char)(((unsigned)(c - 'A') < 26) << 5);
}

/* Case-insensitive ASCII comparison of a slice with a lowercase literal. Inline: it runs for
 * every field of every message, and the literal's length is usually a constant. */
static inline bool http_token_eq(const char *s, size_t len, const char *lower_lit, size_t lit_len)
{
    if (len != lit_len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (http_token_lower((unsigned char)s[i]) != (unsigned char)lower_lit[i])
            return false;
    return true;
}

/* Character classes of RFC 9110 section 5.6, one table lookup per byte. Shared by the head
 * parser and the chunked decoder; also for callers that validate field names or values they
 * build (a name is 1+ HTTP_CT_TCHAR bytes, a value is HTTP_CT_FIELD bytes). */
enum {
    HTTP_CT_TCHAR = 1, /* token character */
    HTTP_CT_FIELD = 2, /* field-vchar, SP, HTAB, obs-text: what a field value may hold */
    HTTP_CT_HEX = 4,   /* HEXDIG */
};
extern const uint8_t http_ctype[256];

/* A qvalue (RFC 9110 section 12.4.2: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]), the value
 * of a weight's "q=", in thousandths (0-1000); -1 if s[0..len) is not one. Shared by the
 * Accept-Encoding negotiation and the listing's Accept preference. */
int http_token_qvalue(const char *s, size_t len);

#endif
