/* Always-on invariant checks (as HAProxy's BUG_ON): a state that can never happen if the code
 * is right is a bug, and going on from it corrupts memory or hangs a connection silently. The
 * check stays in release builds (it is not assert(): NDEBUG does not remove it) and costs one
 * predictable branch. On failure it writes "file:line: BUG: condition" to stderr with write(2)
 * only (no malloc, no stdio lock: safe even from a signal handler or with a corrupt heap) and
 * aborts, for a core dump that shows the state. */
#ifndef GH_BUG_H
#define GH_BUG_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes "file:line: BUG: cond\n" to fd 2 and aborts. Out of line at each call site's cold
 * path; the line number goes through as text so that nothing needs formatting. */
__attribute__((noreturn, cold, unused)) static void gh_bug_fail(const char *where, const char *cond)
{
    static const char tag[] = ": BUG: ";
    const char *parts[] = {where, tag, cond, "\n"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t n = strlen(parts[i]);
        while (n) {
            ssize_t w = write(STDERR_FILENO, parts[i], n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break; /* nothing better to do: abort anyway */
            parts[i] += w;
            n -= (size_t)w;
        }
    }
    abort();
}

#define GH_BUG_STR2(x) #x
#define GH_BUG_STR(x) GH_BUG_STR2(x)

/* Abort with file, line and the condition's text when `cond` is true. */
#define GH_BUG_ON(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0))                                                         \
            gh_bug_fail(__FILE__ ":" GH_BUG_STR(__LINE__), #cond);                                 \
    } while (0)

#endif
