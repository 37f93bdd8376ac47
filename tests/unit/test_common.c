/* test_common.c - unit tests for common/: the counting allocator and its failure
 * injection, cm_buf, CRC16 and Redis Cluster key slots, strict string conversions,
 * cm_double_to_str and glob matching. Uses tests/unit/unit.h. */
#include "unit.h"

#include "../../common/common.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>

#define S(lit) lit, sizeof(lit) - 1

/* ---- Allocator ----------------------------------------------------------------------- */

static pthread_barrier_t first_barrier;

static void *trim_thread(void *arg)
{
    pthread_barrier_wait(&first_barrier);
    cm_malloc_trim();
    return arg;
}

static void *crc_thread(void *arg)
{
    pthread_barrier_wait(&first_barrier);
    *(unsigned *)arg = cm_crc16(S("123456789"));
    return arg;
}

/* Runs fn in 4 threads that start together, in each of `rounds` fresh processes
 * (forks of this single-threaded test, so each makes its first call there: the parent
 * must not have called it). A process fails if it dies, if a sanitizer reports (TSan
 * sets the exit status) or if a thread's result, when there is one, is not `want`.
 * Returns how many failed. */
static int first_calls_at_once(void *(*fn)(void *), int rounds, unsigned want)
{
    enum { THREADS = 4 };
    int failed = 0;
    for (int r = 0; r < rounds; r++) {
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            pthread_t t[THREADS];
            unsigned got[THREADS];
            pthread_barrier_init(&first_barrier, NULL, THREADS);
            for (int i = 0; i < THREADS; i++) {
                got[i] = want;
                if (pthread_create(&t[i], NULL, fn, &got[i]) != 0)
                    _exit(2);
            }
            for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
            for (int i = 0; i < THREADS; i++)
                if (got[i] != want)
                    _exit(3);
            _exit(0);
        }
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed++;
    }
    return failed;
}

/* The first trims of a process, from several threads at the same moment: glibc's
 * malloc_trim initialized its allocator without a lock, and under the sanitizers
 * (nothing else initializes glibc's malloc there) about 1 in 10 such processes
 * crashed. In the release build glibc's malloc is already initialized and this
 * cannot fail; the ASan and TSan passes of make test-all are where it bites. */
TEST(malloc_trim_first_calls_at_once)
{
    enum { ROUNDS = 60 };
    int failed = first_calls_at_once(trim_thread, ROUNDS, 0);
    if (failed > 0)
        UNIT_FAIL("%d of %d processes died in their first concurrent trims", failed, ROUNDS);
}

/* The CRC16 table is built on first use, once (a TSan run caught two I/O threads
 * building it at once: the same bytes, but a data race). Must run before any other
 * test computes a CRC. The value is the XModem check value of "123456789". */
TEST(crc16_first_calls_at_once)
{
    enum { ROUNDS = 20 };
    int failed = first_calls_at_once(crc_thread, ROUNDS, 0x31c3);
    if (failed > 0)
        UNIT_FAIL("%d of %d processes failed their first concurrent CRCs (a wrong value or "
                  "a sanitizer report)", failed, ROUNDS);
}

TEST(alloc_counts_bytes)
{
    size_t base = cm_alloc_used();
    char *a = cm_malloc(100);
    CHECK(a != NULL);
    CHECK_EQ_INT(cm_alloc_used(), base + 100);
    memset(a, 1, 100);
    char *b = cm_calloc(10, 7);
    CHECK(b != NULL);
    for (int i = 0; i < 70; i++)
        CHECK(b[i] == 0);
    CHECK_EQ_INT(cm_alloc_used(), base + 170);
    a = cm_realloc(a, 1000);
    CHECK(a != NULL);
    CHECK(a[99] == 1);
    CHECK_EQ_INT(cm_alloc_used(), base + 1070);
    a = cm_realloc(a, 10);
    CHECK(a != NULL && a[9] == 1);
    CHECK_EQ_INT(cm_alloc_used(), base + 80);
    cm_free(a);
    cm_free(b);
    cm_free(NULL);
    CHECK_EQ_INT(cm_alloc_used(), base);
    /* realloc of NULL is malloc. */
    a = cm_realloc(NULL, 5);
    CHECK(a != NULL);
    CHECK_EQ_INT(cm_alloc_used(), base + 5);
    cm_free(a);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

TEST(alloc_zero_is_unique)
{
    size_t base = cm_alloc_used();
    void *a = cm_malloc(0), *b = cm_malloc(0);
    CHECK(a != NULL && b != NULL && a != b);
    CHECK_EQ_INT(cm_alloc_used(), base);
    cm_free(a);
    cm_free(b);
    void *c = cm_calloc(0, 8);
    CHECK(c != NULL);
    cm_free(c);
}

TEST(alloc_overflow)
{
    size_t base = cm_alloc_used();
    CHECK(cm_calloc(SIZE_MAX / 2, 3) == NULL);
    CHECK(cm_malloc(SIZE_MAX) == NULL);
    char *p = cm_malloc(4);
    CHECK(p != NULL);
    CHECK(cm_realloc(p, SIZE_MAX) == NULL);
    cm_free(p);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

TEST(alloc_fail_at)
{
    size_t base = cm_alloc_used();
    cm_alloc_fail_at(3);
    void *a = cm_malloc(1), *b = cm_calloc(1, 1), *c = cm_malloc(1), *d = cm_malloc(1);
    CHECK(a != NULL && b != NULL);
    CHECK(c == NULL);
    CHECK(d != NULL);
    /* Only the Nth fails: everything after succeeds. */
    for (int i = 0; i < 100; i++) {
        void *e = cm_malloc(8);
        CHECK(e != NULL);
        cm_free(e);
    }
    cm_free(a);
    cm_free(b);
    cm_free(d);
    CHECK_EQ_INT(cm_alloc_used(), base);

    /* 1 is the next allocation, whichever function makes it. */
    cm_alloc_fail_at(1);
    CHECK(cm_calloc(2, 2) == NULL);
    cm_alloc_fail_at(1);
    CHECK(cm_strdup("x") == NULL);
    cm_alloc_fail_at(1);
    CHECK(cm_memdup("xy", 2) == NULL);
    CHECK_EQ_INT(cm_alloc_used(), base);

    /* A failed realloc keeps the old block and its contents. */
    char *p = cm_malloc(16);
    CHECK(p != NULL);
    memcpy(p, "0123456789abcdef", 16);
    cm_alloc_fail_at(1);
    CHECK(cm_realloc(p, 4096) == NULL);
    CHECK_EQ_INT(cm_alloc_used(), base + 16);
    CHECK(memcmp(p, "0123456789abcdef", 16) == 0);
    char *q = cm_realloc(p, 4096);
    CHECK(q != NULL && memcmp(q, "0123456789abcdef", 16) == 0);
    cm_free(q);

    /* 0 disables a pending failure. */
    cm_alloc_fail_at(2);
    cm_alloc_fail_at(0);
    for (int i = 0; i < 5; i++) {
        void *e = cm_malloc(1);
        CHECK(e != NULL);
        cm_free(e);
    }
    CHECK_EQ_INT(cm_alloc_used(), base);
}

TEST(alloc_dup)
{
    size_t base = cm_alloc_used();
    char *s = cm_strdup("hello");
    CHECK_STR(s, "hello");
    CHECK_EQ_INT(cm_alloc_used(), base + 6);
    char *m = cm_memdup("a\0b", 3);
    CHECK(m != NULL && memcmp(m, "a\0b", 3) == 0);
    void *z = cm_memdup(NULL, 0);
    CHECK(z != NULL);
    cm_free(s);
    cm_free(m);
    cm_free(z);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

/* ---- cm_buf -------------------------------------------------------------------------- */

TEST(buf_basic)
{
    size_t base = cm_alloc_used();
    struct cm_buf b;
    cm_buf_init(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
    CHECK_EQ_INT(cm_buf_append(&b, "abc", 3), 0);
    CHECK_EQ_INT(cm_buf_appendc(&b, '\0'), 0);
    CHECK_EQ_INT(cm_buf_appendf(&b, "%d-%s", 42, "x"), 0);
    CHECK_MEM(b.p, b.len, "abc\0" "42-x", 8);
    CHECK(b.cap >= b.len);
    CHECK_EQ_INT(cm_buf_append(&b, NULL, 0), 0);
    CHECK_EQ_INT(b.len, 8);
    cm_buf_consume(&b, 2);
    CHECK_MEM(b.p, b.len, "c\0" "42-x", 6);
    cm_buf_consume(&b, 6);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(cm_buf_append(&b, "xy", 2), 0);
    cm_buf_consume(&b, 100);
    CHECK_EQ_INT(b.len, 0);
    cm_buf_deinit(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
    cm_buf_deinit(&b);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

TEST(buf_appendf_long)
{
    /* Past the 256-byte fast path, and exactly at its edges. */
    for (int n = 250; n <= 260; n++) {
        struct cm_buf b;
        cm_buf_init(&b);
        CHECK_EQ_INT(cm_buf_append(&b, "<", 1), 0);
        CHECK_EQ_INT(cm_buf_appendf(&b, "%0*d", n, 7), 0);
        CHECK_EQ_INT(b.len, 1 + n);
        CHECK(b.p[0] == '<' && b.p[1] == '0' && b.p[n] == '7');
        cm_buf_deinit(&b);
    }
    struct cm_buf b;
    cm_buf_init(&b);
    char big[10000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ_INT(cm_buf_appendf(&b, "[%s]", big), 0);
    CHECK_EQ_INT(b.len, sizeof(big) + 1);
    CHECK(b.p[0] == '[' && b.p[b.len - 1] == ']' && b.p[5000] == 'q');
    cm_buf_deinit(&b);
}

TEST(buf_reserve_and_grow)
{
    struct cm_buf b;
    cm_buf_init(&b);
    CHECK_EQ_INT(cm_buf_reserve(&b, 0), 0);
    CHECK_EQ_INT(cm_buf_reserve(&b, 1000), 0);
    CHECK(b.cap >= 1000);
    char *p = b.p;
    size_t cap = b.cap;
    for (size_t i = 0; i < cap; i++)
        CHECK_EQ_INT(cm_buf_appendc(&b, (char)i), 0);
    CHECK(b.p == p && b.cap == cap); /* reserved room needs no reallocation */
    CHECK_EQ_INT(cm_buf_reserve(&b, SIZE_MAX), CM_ENOMEM);
    CHECK_EQ_INT(cm_buf_reserve(&b, SIZE_MAX - b.len + 1), CM_ENOMEM);
    CHECK(b.p == p && b.cap == cap && b.len == cap);
    for (size_t i = 0; i < 1000; i++)
        CHECK(b.p[i] == (char)i);
    cm_buf_deinit(&b);
}

TEST(buf_oom_leaves_buffer)
{
    size_t base = cm_alloc_used();
    struct cm_buf b;
    cm_buf_init(&b);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(cm_buf_append(&b, "abc", 3), CM_ENOMEM);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
    CHECK_EQ_INT(cm_buf_append(&b, "abc", 3), 0);
    char *p = b.p;
    size_t cap = b.cap;
    char big[500];
    memset(big, 'z', sizeof(big));
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(cm_buf_append(&b, big, sizeof(big)), CM_ENOMEM);
    CHECK(b.p == p && b.cap == cap && b.len == 3);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(cm_buf_appendf(&b, "%.*s", 400, big), CM_ENOMEM);
    CHECK(b.p == p && b.cap == cap && b.len == 3);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(cm_buf_reserve(&b, cap), CM_ENOMEM);
    /* A small append within the capacity allocates nothing, so it cannot fail. */
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(cm_buf_appendc(&b, 'd'), 0);
    cm_alloc_fail_at(0);
    CHECK_MEM(b.p, b.len, "abcd", 4);
    cm_buf_deinit(&b);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

TEST(buf_shrink)
{
    size_t base = cm_alloc_used();
    struct cm_buf b;
    cm_buf_init(&b);
    CHECK_EQ_INT(cm_buf_reserve(&b, 100000), 0);
    CHECK_EQ_INT(cm_buf_append(&b, "x", 1), 0);
    cm_buf_shrink(&b, 1024); /* not empty: kept */
    CHECK(b.p != NULL && b.len == 1);
    b.len = 0;
    size_t cap = b.cap;
    cm_buf_shrink(&b, cap); /* not larger than keep: kept */
    CHECK(b.cap == cap);
    cm_buf_shrink(&b, cap - 1);
    CHECK(b.p == NULL && b.cap == 0 && b.len == 0);
    CHECK_EQ_INT(cm_alloc_used(), base);
    CHECK_EQ_INT(cm_buf_append(&b, "y", 1), 0);
    cm_buf_deinit(&b);
}

/* ---- CRC16 and key slots ----------------------------------------------------------- */

TEST(crc16_vectors)
{
    /* The Redis Cluster specification's test vector (CRC16/XMODEM). */
    CHECK_EQ_INT(cm_crc16(S("123456789")), 0x31C3);
    CHECK_EQ_INT(cm_crc16("", 0), 0);
    CHECK_EQ_INT(cm_crc16(S("A")), 0x58E5);
    /* Bytes above 0x7f are unsigned. */
    CHECK_EQ_INT(cm_crc16(S("\xff")), 0x1EF0);
}

TEST(key_slot)
{
    CHECK_EQ_INT(cm_key_slot(S("foo")), 12182);
    CHECK_EQ_INT(cm_key_slot(S("bar")), 5061);
    CHECK_EQ_INT(cm_key_slot(S("123456789")), 0x31C3 & 16383);
    CHECK_EQ_INT(cm_key_slot("", 0), 0);
    /* Hash tags, as in the specification's examples. */
    unsigned u = cm_key_slot(S("user1000"));
    CHECK_EQ_INT(cm_key_slot(S("{user1000}.following")), u);
    CHECK_EQ_INT(cm_key_slot(S("{user1000}.followers")), u);
    CHECK_EQ_INT(cm_key_slot(S("foo{}{bar}")), cm_crc16(S("foo{}{bar}")) & 16383);
    CHECK_EQ_INT(cm_key_slot(S("foo{{bar}}zap")), cm_crc16(S("{bar")) & 16383);
    CHECK_EQ_INT(cm_key_slot(S("foo{bar}{zap}")), 5061);
    CHECK_EQ_INT(cm_key_slot(S("{bar}")), 5061);
    CHECK_EQ_INT(cm_key_slot(S("x{bar}")), 5061);
    /* An unclosed or empty tag hashes the whole key. */
    CHECK_EQ_INT(cm_key_slot(S("foo{bar")), cm_crc16(S("foo{bar")) & 16383);
    CHECK_EQ_INT(cm_key_slot(S("foo{")), cm_crc16(S("foo{")) & 16383);
    CHECK_EQ_INT(cm_key_slot(S("{}")), cm_crc16(S("{}")) & 16383);
    CHECK_EQ_INT(cm_key_slot(S("}foo{")), cm_crc16(S("}foo{")) & 16383);
    CHECK_EQ_INT(cm_key_slot(S("}{bar}")), 5061);
    /* Binary keys: the tag is found by length, not by NUL. */
    CHECK_EQ_INT(cm_key_slot(S("\0{bar}")), 5061);
    CHECK_EQ_INT(cm_key_slot(S("a\0b")), cm_crc16(S("a\0b")) & 16383);
    CHECK(cm_crc16(S("a\0b")) != cm_crc16(S("a")));
    for (int i = 0; i < 1000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "key:%d", i);
        CHECK(cm_key_slot(k, (size_t)n) < CM_SLOTS);
    }
}

/* ---- Strings ------------------------------------------------------------------------- */

static void ll_ok(const char *s, size_t n, long long want)
{
    long long v = 12345;
    if (cm_str_to_ll(s, n, &v) != 0)
        UNIT_FAIL("cm_str_to_ll rejected \"%.*s\"", (int)n, s);
    if (v != want)
        UNIT_FAIL("cm_str_to_ll(\"%.*s\") = %lld", (int)n, s, v);
}

static void ll_bad(const char *s, size_t n)
{
    long long v = 12345;
    if (cm_str_to_ll(s, n, &v) != CM_EINVAL)
        UNIT_FAIL("cm_str_to_ll accepted \"%.*s\" as %lld", (int)n, s, v);
    CHECK_EQ_INT(v, 12345);
}

TEST(str_to_ll)
{
    ll_ok(S("0"), 0);
    ll_ok(S("1"), 1);
    ll_ok(S("-1"), -1);
    ll_ok(S("1234567890"), 1234567890);
    ll_ok(S("9223372036854775807"), LLONG_MAX);
    ll_ok(S("-9223372036854775808"), LLONG_MIN);
    /* Only part of a longer buffer is read. */
    ll_ok("123456", 3, 123);
    ll_bad("", 0);
    ll_bad(S("-"));
    ll_bad(S("+1"));
    ll_bad(S(" 1"));
    ll_bad(S("1 "));
    ll_bad(S("\t1"));
    ll_bad(S("01"));
    ll_bad(S("00"));
    ll_bad(S("-0"));
    ll_bad(S("-01"));
    ll_bad(S("--1"));
    ll_bad(S("- 1"));
    ll_bad(S("0x10"));
    ll_bad(S("1e3"));
    ll_bad(S("1.0"));
    ll_bad(S("abc"));
    ll_bad(S("12a"));
    ll_bad(S("9223372036854775808"));
    ll_bad(S("-9223372036854775809"));
    ll_bad(S("99999999999999999999"));
    ll_bad(S("1\0"));
    ll_bad(S("1\0" "2"));
    ll_bad(S("00000000000000000000000000000000000001"));
}

static void dbl_ok(const char *s, size_t n, double want)
{
    double v = 12345;
    if (cm_str_to_double(s, n, &v) != 0)
        UNIT_FAIL("cm_str_to_double rejected \"%.*s\"", (int)n, s);
    if (!(v == want))
        UNIT_FAIL("cm_str_to_double(\"%.*s\") = %.17g", (int)n, s, v);
}

static void dbl_bad(const char *s, size_t n)
{
    double v = 12345;
    if (cm_str_to_double(s, n, &v) != CM_EINVAL)
        UNIT_FAIL("cm_str_to_double accepted \"%.*s\" as %.17g", (int)n, s, v);
    CHECK(v == 12345);
}

TEST(str_to_double)
{
    dbl_ok(S("0"), 0);
    dbl_ok(S("1.5"), 1.5);
    dbl_ok(S("-0.25"), -0.25);
    dbl_ok(S("+2"), 2);
    dbl_ok(S(".5"), 0.5);
    dbl_ok(S("1e3"), 1000);
    dbl_ok(S("1E-2"), 0.01);
    dbl_ok(S("10"), 10);
    dbl_ok(S("inf"), INFINITY);
    dbl_ok(S("-inf"), -INFINITY);
    dbl_ok(S("+inf"), INFINITY);
    dbl_ok(S("1.7976931348623157e308"), DBL_MAX);
    dbl_ok(S("1e-310"), 1e-310); /* subnormal but not zero: kept, as Redis does */
    dbl_ok("2.5xyz", 3, 2.5);
    dbl_bad("", 0);
    dbl_bad(S(" 1"));
    dbl_bad(S("1 "));
    dbl_bad(S("\n1"));
    dbl_bad(S("abc"));
    dbl_bad(S("1.5x"));
    dbl_bad(S("nan"));
    dbl_bad(S("-nan"));
    dbl_bad(S("1e400"));
    dbl_bad(S("-1e400"));
    dbl_bad(S("1e-400")); /* underflow to zero: Redis rejects it */
    dbl_bad(S("1\0"));
    dbl_bad(S("1.5\0" "5"));
}

static void d2s(long double v, const char *want)
{
    char buf[5 * 1024];
    int n = cm_double_to_str(buf, sizeof(buf), v);
    if (n < 0 || strcmp(buf, want) != 0 || (size_t)n != strlen(buf))
        UNIT_FAIL("cm_double_to_str(%.21Lg) = \"%s\" (%d), expected \"%s\"", v, buf, n, want);
}

TEST(double_to_str)
{
    /* INCRBYFLOAT's outputs, with Redis's long double arithmetic. valgrind computes
     * long doubles with double precision: there 10.5+0.1 is double 10.6, and the
     * right output for that value is its 17 decimals. */
    volatile long double one = 1.0L, a = 10.5L, b = 0.1L;
    bool extended = one + LDBL_EPSILON != one && LDBL_MANT_DIG > DBL_MANT_DIG;
    if (!extended)
        fprintf(stderr, "note: long double has double precision here (valgrind?)\n");
    d2s(a + b, extended ? "10.6" : "10.59999999999999964");
    d2s(3.0e3L, "3000");
    d2s(5.0e3L + 2.0e2L, "5200");
    d2s(0.0L, "0");
    d2s(-0.0L, "0");
    d2s(1.5L, "1.5");
    d2s(-2.25L, "-2.25");
    d2s(b, extended ? "0.1" : "0.10000000000000001");
    d2s(100.0L, "100");
    d2s(1e17L, "100000000000000000");
    d2s(-1e17L, "-100000000000000000");
    d2s(123456789.125L, "123456789.125");
    d2s(1e-18L, "0"); /* 17 decimals, like Redis */
    /* valgrind has no long double infinity (it becomes LDBL_MAX): nothing to check. */
    volatile long double inf = HUGE_VALL;
    if (isinf(inf)) {
        d2s(inf, "inf");
        d2s(-inf, "-inf");
    } else {
        fprintf(stderr, "note: no long double infinity here (valgrind?)\n");
    }
    /* A large value is printed in full, as Redis does for its 5 KB buffer. */
    char buf[5 * 1024];
    int n = cm_double_to_str(buf, sizeof(buf), 1e300L);
    CHECK_EQ_INT(n, 301);
    CHECK(buf[0] == '1' && buf[1] == '0' && strchr(buf, '.') == NULL);
}

TEST(double_to_str_small_buffer)
{
    /* When the output does not fit, the result stays inside the buffer and is a
     * NUL-terminated string whose length is returned. */
    static const long double vals[] = {123456789.5L, 1e300L, -1e300L, 0.5L, 12345678.0L};
    for (size_t cap = 1; cap <= 40; cap++) {
        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
            char buf[64];
            memset(buf, 'Z', sizeof(buf));
            int n = cm_double_to_str(buf, cap, vals[i]);
            if (n < 0 || (size_t)n >= cap)
                UNIT_FAIL("cap %zu value %Lg: returned %d", cap, vals[i], n);
            CHECK_EQ_INT(strlen(buf), n);
            for (size_t j = cap; j < sizeof(buf); j++)
                CHECK(buf[j] == 'Z');
        }
    }
}

TEST(ll_to_str)
{
    char buf[21];
    CHECK_EQ_INT(cm_ll_to_str(buf, 0), 1);
    CHECK_STR(buf, "0");
    CHECK_EQ_INT(cm_ll_to_str(buf, LLONG_MIN), 20);
    CHECK_STR(buf, "-9223372036854775808");
    CHECK_EQ_INT(cm_ll_to_str(buf, LLONG_MAX), 19);
    CHECK_STR(buf, "9223372036854775807");
    /* Round trip through the strict parser. */
    for (long long v = -1000; v <= 1000; v += 7) {
        long long back;
        int n = cm_ll_to_str(buf, v);
        CHECK_EQ_INT(cm_str_to_ll(buf, (size_t)n, &back), 0);
        CHECK_EQ_INT(back, v);
    }
}

TEST(misc_strings)
{
    CHECK(cm_streq_ci(S("GeT"), "get"));
    CHECK(cm_streq_ci("getx", 3, "GET"));
    CHECK(!cm_streq_ci(S("get"), "gets"));
    CHECK(!cm_streq_ci(S("gets"), "get"));
    CHECK(cm_streq_ci("", 0, ""));
    CHECK_STR(cm_strerror(CM_ENOMEM), "out of memory");
    CHECK_STR(cm_strerror(CM_OK), "success");
    CHECK_STR(cm_strerror(-100), "unknown error");
    for (int c = CM_ECONFLICT; c <= CM_OK; c++)
        CHECK(strcmp(cm_strerror(c), "unknown error") != 0);
    struct cm_err e;
    CHECK_EQ_INT(cm_err_set(&e, CM_EIO, "disk %s %d", "full", 3), CM_EIO);
    CHECK_EQ_INT(e.code, CM_EIO);
    CHECK_STR(e.msg, "disk full 3");
    CHECK_EQ_INT(cm_err_set(NULL, CM_EINVAL, "x"), CM_EINVAL);
    char longmsg[400];
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    cm_err_set(&e, CM_ERR, "%s", longmsg);
    CHECK_EQ_INT(strlen(e.msg), sizeof(e.msg) - 1);
    /* Wrapping the message already in err (FUNCTION LOAD on a failing disk said
     * "ERR storage error: ERR storage error: ed: ..."). */
    cm_err_set(&e, CM_EIO, "metadata write failed: %s", "IO error");
    cm_err_set(&e, CM_EIO, "ERR storage error: %s", e.msg);
    CHECK_STR(e.msg, "ERR storage error: metadata write failed: IO error");
    CHECK_EQ_INT(cm_log_level_parse("WARNING"), CM_LOG_WARNING);
    CHECK_EQ_INT(cm_log_level_parse("debug"), CM_LOG_DEBUG);
    CHECK_EQ_INT(cm_log_level_parse("loud"), -1);
}

/* ---- Glob matching -------------------------------------------------------------------- */

static void gm(const char *pat, const char *s, bool nocase, bool want)
{
    bool got = cm_glob_match(pat, strlen(pat), s, strlen(s), nocase);
    if (got != want)
        UNIT_FAIL("glob \"%s\" vs \"%s\"%s: %d, expected %d", pat, s, nocase ? " (nocase)" : "",
                  got, want);
}

TEST(glob_match)
{
    /* The KEYS examples of the Redis documentation. */
    gm("h?llo", "hello", false, true);
    gm("h?llo", "hallo", false, true);
    gm("h?llo", "hllo", false, false);
    gm("h*llo", "hllo", false, true);
    gm("h*llo", "heeeello", false, true);
    gm("h[ae]llo", "hello", false, true);
    gm("h[ae]llo", "hallo", false, true);
    gm("h[ae]llo", "hillo", false, false);
    gm("h[^e]llo", "hallo", false, true);
    gm("h[^e]llo", "hbllo", false, true);
    gm("h[^e]llo", "hello", false, false);
    gm("h[a-b]llo", "hallo", false, true);
    gm("h[a-b]llo", "hbllo", false, true);
    gm("h[a-b]llo", "hcllo", false, false);
    /* Stars. */
    gm("*", "", false, true);
    gm("*", "anything", false, true);
    gm("**", "", false, true);
    gm("a*", "a", false, true);
    gm("*a", "", false, false);
    gm("*a", "bba", false, true);
    gm("*a", "bab", false, false);
    gm("a*b*c", "aXXbYYc", false, true);
    gm("a*b*c", "aXXbYY", false, false);
    gm("*.txt", "notes.txt", false, true);
    gm("*.txt", "notes.txt.gz", false, false);
    gm("a**b", "ab", false, true);
    /* Empty pattern and string; '?' and '[' need a character. */
    gm("", "", false, true);
    gm("", "a", false, false);
    gm("?", "", false, false);
    gm("[a]", "", false, false);
    gm("a?", "a", false, false);
    /* Classes: ranges reversed, several ranges, escapes, unterminated. */
    gm("[b-a]", "a", false, true);
    gm("[a-cx-z]", "y", false, true);
    gm("[a-cx-z]", "m", false, false);
    gm("[^a-c]", "d", false, true);
    gm("[^a-c]", "b", false, false);
    gm("[\\]]", "]", false, true);
    gm("[\\^]", "^", false, true);
    gm("[\\-]", "-", false, true);
    gm("[abc", "b", false, true);
    gm("[abc", "bc", false, false);
    gm("[]", "a", false, false);
    /* Escapes outside classes. */
    gm("h\\*llo", "h*llo", false, true);
    gm("h\\*llo", "hello", false, false);
    gm("\\?", "?", false, true);
    gm("\\?", "a", false, false);
    gm("\\[a]", "[a]", false, true);
    gm("\\a", "a", false, true);
    gm("a\\", "a\\", false, true);
    gm("a\\", "a", false, false);
    /* Case. */
    gm("HELLO", "hello", false, false);
    gm("HELLO", "hello", true, true);
    gm("h[A-C]llo", "hbllo", true, true);
    gm("h[a-c]llo", "hBllo", true, true);
    gm("h[a-c]llo", "hBllo", false, false);
    gm("h[^E]llo", "hello", true, false);
    gm("H?LLO", "hello", true, true);
    /* Binary: lengths, not NULs, bound pattern and string. */
    CHECK(cm_glob_match(S("a\0*"), S("a\0xyz"), false));
    CHECK(!cm_glob_match(S("a\0*"), S("a"), false));
    CHECK(cm_glob_match(S("?"), S("\0"), false));
    CHECK(cm_glob_match(S("[\x01-\xff]"), S("\x80"), false));
    CHECK(cm_glob_match("abc", 1, "a", 1, false));
}

/* Reference matcher for patterns of literals, '?' and '*' only: dynamic programming. */
static bool glob_ref(const char *p, size_t pn, const char *s, size_t sn)
{
    bool m[16][16] = {{false}};
    m[0][0] = true;
    for (size_t i = 1; i <= pn; i++) {
        for (size_t j = 0; j <= sn; j++) {
            if (p[i - 1] == '*')
                m[i][j] = m[i - 1][j] || (j > 0 && m[i][j - 1]);
            else
                m[i][j] = j > 0 && m[i - 1][j - 1] && (p[i - 1] == '?' || p[i - 1] == s[j - 1]);
        }
    }
    return m[pn][sn];
}

TEST(glob_random_vs_reference)
{
    /* Cutting off longer matches must not lose real matches. */
    unsigned seed = 12345;
    for (int iter = 0; iter < 200000; iter++) {
        char p[15], s[15];
        seed = seed * 1103515245u + 12345u;
        size_t pn = (seed >> 16) % 12, sn = (seed >> 8) % 12;
        for (size_t i = 0; i < pn; i++) {
            seed = seed * 1103515245u + 12345u;
            p[i] = "ab*?*"[(seed >> 16) % 5];
        }
        for (size_t i = 0; i < sn; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = "ab"[(seed >> 16) % 2];
        }
        bool want = glob_ref(p, pn, s, sn);
        if (cm_glob_match(p, pn, s, sn, false) != want)
            UNIT_FAIL("\"%.*s\" vs \"%.*s\": expected %d", (int)pn, p, (int)sn, s, want);
    }
}

TEST(glob_pathological)
{
    /* Redis's CVE-2022-36021 pattern: without cutting off longer matches this takes
     * exponential time. */
    enum { N = 4000 };
    char *s = malloc(N);
    CHECK(s != NULL);
    memset(s, 'a', N);
    static const char pat[] = "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    int64_t t0 = cm_mono_us();
    CHECK(!cm_glob_match(pat, sizeof(pat) - 1, s, N, false));
    CHECK(!cm_glob_match(pat, sizeof(pat) - 1, s, N, true));
    s[N - 1] = 'b';
    CHECK(cm_glob_match(pat, sizeof(pat) - 1, s, N, false));
    int64_t us = cm_mono_us() - t0;
    if (us > 5 * 1000000)
        UNIT_FAIL("pathological glob took %lld ms", (long long)(us / 1000));
    /* Deep nesting is refused (Redis's limit is 1000 levels) rather than recursed. */
    char deep[4001];
    for (int i = 0; i < 4000; i += 2) {
        deep[i] = '*';
        deep[i + 1] = 'a';
    }
    memset(s, 'a', N);
    CHECK(!cm_glob_match(deep, 4000, s, 2000, false));
    free(s);
}

int main(void)
{
    RUN(alloc_counts_bytes);
    RUN(alloc_zero_is_unique);
    RUN(alloc_overflow);
    RUN(alloc_fail_at);
    RUN(alloc_dup);
    RUN(malloc_trim_first_calls_at_once);
    RUN(crc16_first_calls_at_once); /* before any other CRC */
    RUN(buf_basic);
    RUN(buf_appendf_long);
    RUN(buf_reserve_and_grow);
    RUN(buf_oom_leaves_buffer);
    RUN(buf_shrink);
    RUN(crc16_vectors);
    RUN(key_slot);
    RUN(str_to_ll);
    RUN(str_to_double);
    RUN(double_to_str);
    RUN(double_to_str_small_buffer);
    RUN(ll_to_str);
    RUN(misc_strings);
    RUN(glob_match);
    RUN(glob_random_vs_reference);
    RUN(glob_pathological);
    return unit_done();
}
