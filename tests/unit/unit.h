/* unit.h - a tiny test framework for eddy's unit tests (tests/unit/test_*.c).
 *
 * Each TEST(name) runs in a forked child with a timeout, libuv style, so a crash or
 * a hang fails that test only. Every test prints one line "PASS name" or
 * "FAIL name: why"; tests/run.sh counts those lines. Usage:
 *
 *   TEST(parse_simple) { CHECK(x == 1); CHECK_EQ_INT(a, b); CHECK_STR(s, "ok"); }
 *   int main(void) { RUN(parse_simple); return unit_done(); }
 */
#ifndef EDDY_UNIT_H
#define EDDY_UNIT_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int unit_failed_count, unit_passed_count;
static const char *unit_current;

#define TEST(name) static void test_##name(void)

#define UNIT_FAIL(...)                                                                        \
    do {                                                                                      \
        printf("FAIL %s: %s:%d: ", unit_current, __FILE__, __LINE__);                         \
        printf(__VA_ARGS__);                                                                  \
        printf("\n");                                                                         \
        fflush(stdout);                                                                       \
        _exit(1);                                                                             \
    } while (0)

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond))                                                                          \
            UNIT_FAIL("check failed: %s", #cond);                                             \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                    \
    do {                                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                                   \
        if (a_ != b_)                                                                         \
            UNIT_FAIL("%s == %lld, expected %s == %lld", #a, a_, #b, b_);                     \
    } while (0)

#define CHECK_STR(a, b)                                                                       \
    do {                                                                                      \
        const char *a_ = (a), *b_ = (b);                                                      \
        if (a_ == NULL || strcmp(a_, b_) != 0)                                                \
            UNIT_FAIL("%s is \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_);           \
    } while (0)

#define CHECK_MEM(a, alen, b, blen)                                                           \
    do {                                                                                      \
        if ((size_t)(alen) != (size_t)(blen) || memcmp((a), (b), (size_t)(blen)) != 0)       \
            UNIT_FAIL("%s differs from %s", #a, #b);                                          \
    } while (0)

/* Runs one test in a child process with a 60 s timeout. */
static inline void unit_run(const char *name, void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        unit_current = name;
        alarm(60);
        fn();
        printf("PASS %s\n", name);
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        unit_passed_count++;
    } else {
        unit_failed_count++;
        if (WIFSIGNALED(st))
            printf("FAIL %s: killed by signal %d%s\n", name, WTERMSIG(st),
                   WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
        fflush(stdout);
    }
}

#define RUN(name) unit_run(#name, test_##name)

static inline int unit_done(void)
{
    return unit_failed_count ? 1 : 0;
}

#endif
