/* GH_BUG_ON: a true condition aborts with "file:line: BUG: condition" on stderr; a false one
 * costs nothing else. NDEBUG is defined here on purpose: the check must survive it. */
#define NDEBUG 1

#include "check.h"
#include "core/bug.h"

#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int evaluated;

static int count(int v)
{
    evaluated++;
    return v;
}

/* Runs `fn` in a child whose stderr is a pipe; returns its wait status and what it wrote. */
static int run_child(void (*fn)(void), char *out, size_t cap)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        const struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none); /* an expected abort leaves no core file behind */
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

/* The child's check; its line number is what the message must carry. */
// clang-format off
enum { TRIGGER_LINE = __LINE__ + 1 };
static void trigger(void) { volatile int state = 2; GH_BUG_ON(state == 2 && count(1)); }
// clang-format on

static void no_trigger(void)
{
    volatile int state = 1;
    GH_BUG_ON(state == 2);
    GH_BUG_ON(count(0));
    if (evaluated != 1)
        _exit(3); /* the condition is evaluated exactly once */
}

int main(void)
{
    char out[512], want[512];
    int status = run_child(trigger, out, sizeof(out));
    CHECK(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    snprintf(want, sizeof(want), "%s:%d: BUG: state == 2 && count(1)\n", __FILE__, TRIGGER_LINE);
    CHECK(strcmp(out, want) == 0);
    if (strcmp(out, want) != 0)
        fprintf(stderr, "  got \"%s\", want \"%s\"\n", out, want);

    status = run_child(no_trigger, out, sizeof(out));
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ_INT(strlen(out), 0);
    return check_done("bug");
}
