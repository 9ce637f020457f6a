/* libFuzzer harness for the Accept-Encoding negotiation and the compressibility helpers
 * (http/accept_encoding.h). The input is a field value, copied to a buffer of its exact size.
 *
 * Checked: every weight is -1 or 0..1000; the choice is an available coding or identity; a chosen
 * coding has a weight above 0 and no available coding has a higher one, and identity is chosen
 * over codings only when its explicit weight is higher; "identity refused" only comes with
 * identity; parsing the value in two field lines split at a comma gives the same weights as one
 * line. The same bytes go through the content-type, Cache-Control and ETag helpers, whose
 * results must be consistent (a weakened ETag is W/"..." and as long as promised). */
#include "fuzz.h"
#include "http/accept_encoding.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const enum encoder_kind prefs[][3] = {
    {ENCODER_ZSTD, ENCODER_BR, ENCODER_GZIP},
    {ENCODER_GZIP, ENCODER_BR, ENCODER_ZSTD},
    {ENCODER_BR, ENCODER_GZIP, ENCODER_GZIP},
};

static void check_choice(const struct accept_encoding *ae, const enum encoder_kind *avail, size_t n)
{
    struct accept_encoding_choice c = accept_encoding_choose(ae, avail, n);
    int cw = accept_encoding_weight(ae, c.kind);
    int iw = accept_encoding_weight(ae, ENCODER_IDENTITY);
    bool in_avail = c.kind == ENCODER_IDENTITY;
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        int w = accept_encoding_weight(ae, avail[i]);
        if (w > best)
            best = w;
        in_avail |= avail[i] == c.kind;
    }
    INVARIANT(in_avail);
    if (!ae->present)
        INVARIANT(c.kind == ENCODER_IDENTITY);
    if (c.kind != ENCODER_IDENTITY) {
        INVARIANT(cw > 0 && cw == best);
        INVARIANT(iw <= cw);
    } else if (ae->present && best > 0) {
        INVARIANT(iw > best); /* identity beat a coding only by its explicit higher weight */
    }
    if (c.identity_refused)
        INVARIANT(c.kind == ENCODER_IDENTITY && iw == 0);
}

static void check_helpers(const char *s, size_t len)
{
    static const char *const types[] = {"text/*", "application/json", "*/*"};
    bool any = accept_encoding_type_listed(s, len, types + 2, 1);
    if (accept_encoding_type_listed(s, len, types, 2))
        INVARIANT(any); /* what a narrower list accepts, the widest accepts too */
    (void)accept_encoding_no_transform(s, len);
    char out[300];
    size_t n = accept_encoding_weaken_etag(s, len, out, len < sizeof(out) ? len + 2 : sizeof(out));
    if (n) {
        INVARIANT(n == len || n == len + 2);
        INVARIANT(n >= 4 && out[0] == 'W' && out[1] == '/' && out[2] == '"' && out[n - 1] == '"');
        INVARIANT(!memcmp(out + (n - len), s, len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size ? size : 1);
    if (!v)
        abort();
    memcpy(v, data, size);

    struct accept_encoding one, two;
    accept_encoding_init(&one);
    accept_encoding_parse(&one, v, size);
    for (int k = 0; k < ENCODER_KIND_COUNT; k++) {
        int w = accept_encoding_weight(&one, (enum encoder_kind)k);
        INVARIANT(w >= -1 && w <= 1000);
    }
    for (size_t p = 0; p < sizeof(prefs) / sizeof(prefs[0]); p++)
        for (size_t n = 0; n <= 3; n++)
            check_choice(&one, prefs[p], n);

    /* Split at the first comma into two field lines: the same list. */
    const char *comma = memchr(v, ',', size);
    if (comma) {
        size_t a = (size_t)(comma - v);
        accept_encoding_init(&two);
        accept_encoding_parse(&two, v, a);
        accept_encoding_parse(&two, comma + 1, size - a - 1);
        for (int k = 0; k < ENCODER_KIND_COUNT; k++)
            INVARIANT(accept_encoding_weight(&one, (enum encoder_kind)k) ==
                      accept_encoding_weight(&two, (enum encoder_kind)k));
        INVARIANT(one.star_listed == two.star_listed && one.star_q == two.star_q);
    }

    check_helpers(v, size);
    free(v);
    return 0;
}
