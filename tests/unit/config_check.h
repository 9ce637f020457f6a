/* Shared by the configuration unit tests: a load that must fail with exactly the expected
 * problems, each on its own line (FILE:LINE:COL: message). Each test file loads its own way
 * (options, resolver) and passes the outcome here. */
#ifndef GH_TEST_CONFIG_CHECK_H
#define GH_TEST_CONFIG_CHECK_H

#include "check.h"

#include <stdio.h>
#include <string.h>

struct config;

/* `c` and `n`: what the load gave (snapshot, problem count); `got`: what it printed. `file` and
 * `line` name the test's call site. */
static inline void check_config_errors(const char *file, int line, const struct config *c, int n,
                                       const char *got, const char *expected)
{
    int lines = 0;

    for (const char *p = expected; *p; p++)
        lines += *p == '\n';
    CHECK(c == NULL);
    if (n == lines && !strcmp(got, expected)) {
        check_passed++;
        return;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: %d problems, expected %d:\n--- got\n%s--- expected\n%s", file, line, n,
            lines, got, expected);
}

#endif
