/* libFuzzer harness for the Accept preference of directory listings
 * (files_listing_wants_json in serve/files_listing.h). The input is a field value, copied to a
 * buffer of its exact size.
 *
 * Checked: JSON is only preferred when the value names an application/ or star/star range; listing
 * "text/html" first (q=1, the highest weight at the most specific level) always wins for HTML;
 * leading OWS and extra empty list members change nothing. */
#include "fuzz.h"
#include "serve/files_listing.h"

#include <string.h>
#include <strings.h>

static bool mentions(const char *s, size_t len, const char *what)
{
    size_t n = strlen(what);
    for (size_t i = 0; i + n <= len; i++)
        if (!strncasecmp(s + i, what, n))
            return true;
    return false;
}

static bool with_prefix(const char *prefix, const char *v, size_t size)
{
    size_t pl = strlen(prefix);
    char *w = malloc(pl + size + 1);
    if (!w)
        abort();
    memcpy(w, prefix, pl);
    memcpy(w + pl, v, size);
    bool r = files_listing_wants_json(w, pl + size);
    free(w);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size ? size : 1);
    if (!v)
        abort();
    memcpy(v, data, size);

    bool json = files_listing_wants_json(v, size);
    if (json)
        INVARIANT(mentions(v, size, "application/") || mentions(v, size, "*/*"));
    INVARIANT(!with_prefix("text/html, ", v, size));
    /* An unterminated quoted-string in v would swallow what follows it, so only prefixes. */
    INVARIANT(with_prefix(" \t", v, size) == json);
    INVARIANT(with_prefix(",,", v, size) == json);
    free(v);
    return 0;
}
