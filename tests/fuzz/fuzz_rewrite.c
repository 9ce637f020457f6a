/* libFuzzer harness for the response field rewriters. The first byte picks the function; the
 * rest is split at '\n' into: internal origins (separated by spaces), public scheme, public
 * Host, prefix, and the value (everything after, newlines included). Each part is copied to a
 * buffer of its exact size so that any read outside it trips ASan.
 *
 * Checked: the result is -1, 0 or a length within cap; the output holds no control character;
 * the same call with cap = result succeeds identically and with cap = result - 1 gives -1;
 * rewriting the output again changes nothing (the public origin is either not internal, or maps
 * onto itself because the prefix is never doubled). */
#include "fuzz.h"
#include "proxy/rewrite.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ORIGINS 8

typedef ssize_t (*rewrite_fn)(const struct rewrite_ctx *, const char *, size_t, char *, size_t);

static const rewrite_fn fns[4] = {rewrite_location, rewrite_refresh, rewrite_link,
                                  rewrite_set_cookie};

/* Next '\n'-terminated part of [*p, end), copied to an exact-size heap buffer (NULL if empty). */
static char *take(const char **p, const char *end, size_t *len, int last)
{
    const char *nl = last ? NULL : memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    *len = (size_t)(stop - *p);
    char *copy = *len ? malloc(*len) : NULL;
    if (*len)
        memcpy(copy, *p, *len);
    *p = nl ? nl + 1 : end;
    return copy;
}

/* Splits the origin list at spaces; each origin points into `list`. */
static size_t split_origins(const char *list, size_t len, struct rewrite_origin *o)
{
    size_t n = 0, i = 0;
    while (i < len && n < MAX_ORIGINS) {
        const char *sp = memchr(list + i, ' ', len - i);
        size_t e = sp ? (size_t)(sp - list) : len;
        o[n].p = list + i;
        o[n++].len = e - i;
        i = e + 1;
    }
    return n;
}

static void check_output(const char *out, ssize_t r, size_t cap)
{
    INVARIANT(r >= -1);
    INVARIANT(r <= 0 || (size_t)r <= cap);
    for (ssize_t i = 0; i < r; i++)
        INVARIANT((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
}

static void exercise(rewrite_fn fn, const struct rewrite_ctx *c, const char *v, size_t len)
{
    /* Each replacement turns an origin of at least 3 bytes ("//h") into the public origin, the
     * prefix and a slash, so this cap always suffices. */
    size_t big = len * (c->scheme_len + c->host_len + c->prefix_len + 5) + 16;
    char *out = malloc(big);
    ssize_t r = fn(c, v, len, out, big);
    check_output(out, r, big);
    if (r > 0) {
        char *exact = malloc((size_t)r);
        INVARIANT(fn(c, v, len, exact, (size_t)r) == r);
        INVARIANT(memcmp(exact, out, (size_t)r) == 0);
        INVARIANT(fn(c, v, len, exact, (size_t)r - 1) == -1);
        free(exact);

        size_t big2 = (size_t)r * (c->scheme_len + c->host_len + c->prefix_len + 5) + 16;
        char *again = malloc(big2);
        ssize_t r2 = fn(c, out, (size_t)r, again, big2);
        if (r2 != 0)
            fprintf(stderr, "not idempotent: \"%.*s\" -> \"%.*s\" -> %zd\n", (int)len, v, (int)r,
                    out, r2);
        INVARIANT(r2 == 0);
        free(again);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    size_t olen, slen, hlen, plen, vlen;
    char *origins = take(&p, end, &olen, 0);
    char *scheme = take(&p, end, &slen, 0);
    char *host = take(&p, end, &hlen, 0);
    char *prefix = take(&p, end, &plen, 0);
    char *value = take(&p, end, &vlen, 1);

    struct rewrite_origin o[MAX_ORIGINS];
    struct rewrite_ctx c = {
        .internal = o,
        .ninternal = split_origins(origins, olen, o),
        .scheme = scheme,
        .scheme_len = slen,
        .host = host,
        .host_len = hlen,
        .prefix = prefix,
        .prefix_len = plen,
    };
    exercise(fns[data[0] & 3], &c, value, vlen);

    free(origins);
    free(scheme);
    free(host);
    free(prefix);
    free(value);
    return 0;
}
