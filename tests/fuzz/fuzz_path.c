/* libFuzzer harness for the request path normaliser (http/path.h) and the router's prefix
 * matching (route/router.h). The input is a path (a '/' is put first; '?' is cut, as the codecs
 * split the query off), copied to a buffer of its exact size.
 *
 * Checked: the normal form is no longer than the input, starts with '/', and is a fixed point
 * (normalising it again changes nothing, and http_path_needs_normalize says so); a path that
 * http_path_needs_normalize passes is already normal; a malformed percent-encoding stays
 * malformed (so the path is refused), never turned into a valid one. The security property: an
 * application that reads the normal form as the most lenient of them do ('\', "%2F" and "%5C"
 * read as '/', `;` parameters dropped, empty segments merged, dot segments resolved, optionally any
 * case) and finds it under /admin, is never routed elsewhere: the router matches /admin or refuses
 * the path as ambiguous. */
#include "fuzz.h"
#include "http/path.h"
#include "route/router.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SEGS 512

/* A separator to the most lenient application: '/', '\\', "%2F", "%5C" (any case). */
static size_t app_separator(const char *p, size_t len)
{
    if (p[0] == '/' || p[0] == '\\')
        return 1;
    if (len >= 3 && p[0] == '%' &&
        ((p[1] == '2' && (p[2] | 0x20) == 'f') || (p[1] == '5' && (p[2] | 0x20) == 'c')))
        return 3;
    return 0;
}

/* The lenient application's view: is the path under /admin? */
static bool app_sees_admin(const char *p, size_t len, bool nocase)
{
    size_t starts[MAX_SEGS], lens[MAX_SEGS], n = 0, i = 0, sep;
    while (i < len) {
        while (i < len && (sep = app_separator(p + i, len - i)))
            i += sep;
        if (i >= len)
            break;
        size_t s = i, e = 0;
        while (i < len && !app_separator(p + i, len - i)) {
            if (p[i] == ';' && !e)
                e = i;
            i++;
        }
        if (!e)
            e = i;
        if (e == s || (e - s == 1 && p[s] == '.'))
            continue;
        if (e - s == 2 && p[s] == '.' && p[s + 1] == '.') {
            if (n)
                n--;
            continue;
        }
        if (n == MAX_SEGS)
            return false;
        starts[n] = s;
        lens[n++] = e - s;
    }
    if (!n || lens[0] != 5)
        return false;
    return nocase ? !strncasecmp(p + starts[0], "admin", 5) : !memcmp(p + starts[0], "admin", 5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *q = memchr(data, '?', size);
    if (q)
        size = (size_t)(q - data);
    char *in = malloc(size + 1), *out = malloc(size + 1), *again = malloc(size + 1);
    if (!in || !out || !again)
        abort();
    in[0] = '/';
    if (size)
        memcpy(in + 1, data, size);
    size_t len = size + 1;

    size_t n = http_path_normalize(in, len, out);
    INVARIANT(n >= 1 && n <= len && out[0] == '/');
    /* A malformed percent-encoding is never repaired into a valid one: the path is refused. */
    INVARIANT(http_path_pct_valid(in, len) == http_path_pct_valid(out, n));
    if (!http_path_pct_valid(out, n))
        goto done;
    INVARIANT(!http_path_needs_normalize(out, n));
    size_t n2 = http_path_normalize(out, n, again);
    INVARIANT(n2 == n && memcmp(out, again, n) == 0);
    if (!http_path_needs_normalize(in, len))
        INVARIANT(n == len && memcmp(in, out, n) == 0);

    for (int nocase = 0; nocase < 2; nocase++) {
        size_t rest = 0;
        if (!app_sees_admin(out, n, nocase) || router_path_ambiguous(out, n))
            continue;
        INVARIANT(router_prefix_match("/admin", 6, out, n, nocase, &rest));
        INVARIANT(rest <= n);
    }
done:
    free(in);
    free(out);
    free(again);
    return 0;
}
