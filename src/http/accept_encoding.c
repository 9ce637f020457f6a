/* Accept-Encoding negotiation and the compressibility rules; see accept_encoding.h. */
#include "http/accept_encoding.h"
#include "http/token.h"

#include <string.h>

static bool ae_ows(char c)
{
    return c == ' ' || c == '\t';
}

static size_t ae_skip_ows(const char *s, size_t i, size_t end)
{
    while (i < end && ae_ows(s[i]))
        i++;
    return i;
}

static size_t ae_token_end(const char *s, size_t i, size_t end)
{
    while (i < end && (http_ctype[(unsigned char)s[i]] & HTTP_CT_TCHAR))
        i++;
    return i;
}

/* One member, s[i..end): `coding [ OWS ";" OWS "q=" qvalue ] OWS`. Returns false if malformed;
 * The coding is s[*tok .. *tok + *tok_len), its weight *q. */
static bool ae_member(const char *s, size_t i, size_t end, size_t *tok, size_t *tok_len, int *q)
{
    i = ae_skip_ows(s, i, end);
    size_t te = ae_token_end(s, i, end);
    if (te == i)
        return false;
    *tok = i;
    *tok_len = te - i;
    *q = 1000;
    i = ae_skip_ows(s, te, end);
    if (i == end)
        return true;
    if (s[i] != ';')
        return false;
    i = ae_skip_ows(s, i + 1, end);
    if (end - i < 2 || (s[i] != 'q' && s[i] != 'Q') || s[i + 1] != '=')
        return false;
    i += 2;
    size_t ve = i;
    while (ve < end && !ae_ows(s[ve]))
        ve++;
    if (ae_skip_ows(s, ve, end) != end)
        return false;
    *q = http_token_qvalue(s + i, ve - i);
    return *q >= 0;
}

void accept_encoding_init(struct accept_encoding *ae)
{
    memset(ae, 0, sizeof(*ae));
}

/* A coding listed more than once keeps its lowest weight: a refusal anywhere stands. */
static void ae_note(bool *listed, uint16_t *qslot, int q)
{
    if (!*listed || q < *qslot)
        *qslot = (uint16_t)q;
    *listed = true;
}

void accept_encoding_parse(struct accept_encoding *ae, const char *value, size_t len)
{
    ae->present = true;
    size_t i = 0;
    while (i <= len) {
        const char *comma = i < len ? memchr(value + i, ',', len - i) : NULL;
        size_t end = comma ? (size_t)(comma - value) : len;
        size_t tok, tok_len;
        int q;
        if (ae_member(value, i, end, &tok, &tok_len, &q)) {
            if (tok_len == 1 && value[tok] == '*') {
                ae_note(&ae->star_listed, &ae->star_q, q);
            } else {
                enum encoder_kind k = encoder_kind_parse(value + tok, tok_len);
                if (k < ENCODER_KIND_COUNT)
                    ae_note(&ae->listed[k], &ae->q[k], q);
            }
        }
        i = end + 1;
    }
}

int accept_encoding_weight(const struct accept_encoding *ae, enum encoder_kind kind)
{
    if ((unsigned)kind >= ENCODER_KIND_COUNT)
        return -1;
    if (ae->listed[kind])
        return ae->q[kind];
    if (ae->star_listed)
        return ae->star_q;
    return -1;
}

struct accept_encoding_choice accept_encoding_choose(const struct accept_encoding *ae,
                                                     const enum encoder_kind *avail, size_t navail)
{
    struct accept_encoding_choice c = {ENCODER_IDENTITY, false};
    if (!ae->present)
        return c;
    int best_w = 0;
    bool seen[ENCODER_KIND_COUNT] = {false};
    for (size_t i = 0; i < navail; i++) {
        enum encoder_kind k = avail[i];
        if ((unsigned)k >= ENCODER_KIND_COUNT || k == ENCODER_IDENTITY || seen[k])
            continue;
        seen[k] = true;
        int w = accept_encoding_weight(ae, k);
        if (w > best_w) { /* strictly: equal weights keep the server's earlier choice */
            best_w = w;
            c.kind = k;
        }
    }
    int iw = accept_encoding_weight(ae, ENCODER_IDENTITY);
    if (c.kind != ENCODER_IDENTITY && iw > best_w)
        c.kind = ENCODER_IDENTITY;
    if (c.kind == ENCODER_IDENTITY && iw == 0)
        c.identity_refused = true;
    return c;
}

/* ---- compressibility ---- */

/* The media type of a Content-Type value: OWS trimmed, parameters cut. */
static void ae_media_type(const char *s, size_t len, size_t *start, size_t *mlen)
{
    size_t i = ae_skip_ows(s, 0, len);
    size_t e = i;
    while (e < len && s[e] != ';')
        e++;
    while (e > i && ae_ows(s[e - 1]))
        e--;
    *start = i;
    *mlen = e - i;
}

static bool ae_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (http_token_lower((unsigned char)a[i]) != http_token_lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool ae_range_matches(const char *range, const char *mt, size_t mlen)
{
    size_t rlen = strlen(range);
    if (rlen == 3 && !memcmp(range, "*/*", 3))
        return true;
    if (rlen >= 2 && range[rlen - 2] == '/' && range[rlen - 1] == '*') {
        /* A type wildcard: the type and its slash, then any non-empty subtype. */
        size_t plen = rlen - 1;
        return mlen > plen && ae_ieq(mt, range, plen);
    }
    return mlen == rlen && ae_ieq(mt, range, rlen);
}

bool accept_encoding_type_listed(const char *ctype, size_t len, const char *const *types,
                                 size_t ntypes)
{
    size_t start, mlen;
    ae_media_type(ctype, len, &start, &mlen);
    if (mlen == 0 || !memchr(ctype + start, '/', mlen))
        return false;
    for (size_t i = 0; i < ntypes; i++)
        if (ae_range_matches(types[i], ctype + start, mlen))
            return true;
    return false;
}

/* Past a quoted-string starting at s[i] == '"'; `end` if unterminated. */
static size_t ae_skip_quoted(const char *s, size_t i, size_t end)
{
    for (i++; i < end; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return end;
}

bool accept_encoding_no_transform(const char *cc, size_t len)
{
    size_t i = 0;
    while (i < len) {
        i = ae_skip_ows(cc, i, len);
        size_t te = ae_token_end(cc, i, len);
        bool match = http_token_eq(cc + i, te - i, "no-transform", 12);
        size_t j = ae_skip_ows(cc, te, len);
        if (match && (j == len || cc[j] == ',' || cc[j] == '='))
            return true;
        /* Skip to the next directive, over any quoted value. */
        for (i = te; i < len && cc[i] != ',';)
            i = cc[i] == '"' ? ae_skip_quoted(cc, i, len) : i + 1;
        i++;
    }
    return false;
}

bool accept_encoding_compressible(const struct accept_encoding_policy *pol,
                                  const struct accept_encoding_response *res)
{
    int st = res->status;
    if (st < 200 || st == 204 || st == 206 || st == 304)
        return false;
    if (res->request_has_range || res->has_content_encoding)
        return false;
    if (res->cache_control &&
        accept_encoding_no_transform(res->cache_control, res->cache_control_len))
        return false;
    if (!res->content_type || !accept_encoding_type_listed(res->content_type, res->content_type_len,
                                                           pol->types, pol->ntypes))
        return false;
    if (res->has_content_length && res->content_length < pol->min_size)
        return false;
    return true;
}

size_t accept_encoding_weaken_etag(const char *etag, size_t len, char *out, size_t cap)
{
    bool weak = len >= 2 && etag[0] == 'W' && etag[1] == '/';
    size_t off = weak ? 2 : 0;
    /* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE */
    if (len - off < 2 || etag[off] != '"' || etag[len - 1] != '"')
        return 0;
    for (size_t i = off + 1; i < len - 1; i++) {
        unsigned char c = (unsigned char)etag[i];
        if (c == '"' || c < 0x21 || c == 0x7f)
            return 0;
    }
    size_t need = weak ? len : len + 2;
    if (need > cap)
        return 0;
    if (!weak) {
        memcpy(out, "W/", 2);
        memcpy(out + 2, etag, len);
    } else {
        memcpy(out, etag, len);
    }
    return need;
}
