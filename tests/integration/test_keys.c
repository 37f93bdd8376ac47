/* test_keys.c - commands on keys against the shared server: DEL UNLINK EXISTS TYPE,
 * EXPIRE PEXPIRE EXPIREAT (NX XX GT LT) TTL PTTL PERSIST, SCAN (MATCH COUNT TYPE, a
 * full iteration), KEYS DBSIZE FLUSHALL FLUSHDB RANDOMKEY, lazy and active expiry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define NOTINT "ERR value is not an integer or out of range"

static void t_del_exists_type(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "MSET", "k:a", "1", "k:b", "2", "k:c", "3", "k:d", "4");
    EXPECT_INT(2, c, "EXISTS", "k:a", "k:b");
    EXPECT_INT(2, c, "EXISTS", "k:a", "k:a");
    EXPECT_INT(1, c, "EXISTS", "k:a", "k:nope");
    EXPECT_INT(0, c, "EXISTS", "k:nope");
    EXPECT_STATUS("string", c, "TYPE", "k:a");
    EXPECT_STATUS("none", c, "TYPE", "k:nope");
    EXPECT_INT(1, c, "DEL", "k:a", "k:a");
    EXPECT_INT(0, c, "DEL", "k:a");
    EXPECT_INT(1, c, "DEL", "k:b", "k:nope");
    EXPECT_INT(2, c, "UNLINK", "k:c", "k:d", "k:nope");
    EXPECT_INT(0, c, "EXISTS", "k:a", "k:b", "k:c", "k:d");
    EXPECT_ERR("ERR wrong number of arguments for 'unlink' command", c, "UNLINK");
    EXPECT_ERR("ERR wrong number of arguments for 'exists' command", c, "EXISTS");
    eddy_free(c);
}

static void ttl_is(const char *file, int line, eddy_ctx *c, const char *key, long long lo,
                   long long hi)
{
    long long v = h_int(file, line, h_cmd(file, line, c, "TTL", key, (char *)NULL));
    if (v < lo || v > hi)
        h_fail(file, line, "TTL %s is %lld, expected %lld..%lld", key, v, lo, hi);
}
#define TTL_IS(c, key, lo, hi) ttl_is(H_AT, (c), (key), (lo), (hi))

static void t_expire_ttl_persist(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(-2, c, "TTL", "k:e");
    EXPECT_INT(-2, c, "PTTL", "k:e");
    EXPECT_INT(0, c, "EXPIRE", "k:e", "100");
    EXPECT_INT(0, c, "PERSIST", "k:e");
    EXPECT_OK(c, "SET", "k:e", "v");
    EXPECT_INT(-1, c, "TTL", "k:e");
    EXPECT_INT(-1, c, "PTTL", "k:e");
    EXPECT_INT(0, c, "PERSIST", "k:e");
    EXPECT_INT(1, c, "EXPIRE", "k:e", "100");
    EXPECT_INT(100, c, "TTL", "k:e");
    long long p = CMD_INT(c, "PTTL", "k:e");
    CHECK(p > 98000 && p <= 100000);
    EXPECT_INT(1, c, "PEXPIRE", "k:e", "5500");
    p = CMD_INT(c, "PTTL", "k:e");
    CHECK(p > 4500 && p <= 5500);
    TTL_IS(c, "k:e", 5, 6);
    char at[32];
    snprintf(at, sizeof(at), "%lld", (long long)time(NULL) + 1000);
    EXPECT_INT(1, c, "EXPIREAT", "k:e", at);
    TTL_IS(c, "k:e", 998, 1000);
    snprintf(at, sizeof(at), "%lld", ((long long)time(NULL) + 2000) * 1000);
    EXPECT_INT(1, c, "PEXPIREAT", "k:e", at);
    TTL_IS(c, "k:e", 1998, 2000);
    EXPECT_BULK("v", c, "GET", "k:e");
    EXPECT_INT(1, c, "PERSIST", "k:e");
    EXPECT_INT(-1, c, "TTL", "k:e");
    EXPECT_BULK("v", c, "GET", "k:e");
    /* A time in the past deletes the key at once. */
    EXPECT_INT(1, c, "EXPIRE", "k:e", "-1");
    EXPECT_INT(0, c, "EXISTS", "k:e");
    EXPECT_OK(c, "SET", "k:e", "v");
    EXPECT_INT(1, c, "EXPIREAT", "k:e", "1000");
    EXPECT_INT(-2, c, "TTL", "k:e");
    EXPECT_OK(c, "SET", "k:e", "v");
    EXPECT_INT(1, c, "PEXPIRE", "k:e", "0");
    EXPECT_INT(0, c, "EXISTS", "k:e");
    EXPECT_ERR(NOTINT, c, "EXPIRE", "k:e", "abc");
    EXPECT_ERR(NOTINT, c, "PEXPIRE", "k:e", "1.5");
    EXPECT_ERR("ERR invalid expire time in 'expire' command", c, "EXPIRE", "k:e",
               "9223372036854775807");
    EXPECT_ERR("ERR invalid expire time in 'pexpire' command", c, "PEXPIRE", "k:e",
               "9223372036854775807");
    eddy_free(c);
}

static void t_expire_options(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SET", "k:o", "v");
    /* No TTL yet: NX sets, XX and GT do not, LT does (no TTL = infinite). */
    EXPECT_INT(0, c, "EXPIRE", "k:o", "100", "XX");
    EXPECT_INT(0, c, "EXPIRE", "k:o", "100", "GT");
    EXPECT_INT(-1, c, "TTL", "k:o");
    EXPECT_INT(1, c, "EXPIRE", "k:o", "100", "NX");
    EXPECT_INT(100, c, "TTL", "k:o");
    EXPECT_INT(0, c, "EXPIRE", "k:o", "200", "NX");
    EXPECT_INT(1, c, "EXPIRE", "k:o", "200", "XX");
    EXPECT_INT(200, c, "TTL", "k:o");
    EXPECT_INT(0, c, "EXPIRE", "k:o", "100", "GT");
    EXPECT_INT(1, c, "EXPIRE", "k:o", "300", "GT");
    EXPECT_INT(300, c, "TTL", "k:o");
    EXPECT_INT(0, c, "EXPIRE", "k:o", "400", "LT");
    EXPECT_INT(1, c, "EXPIRE", "k:o", "50", "LT");
    EXPECT_INT(50, c, "TTL", "k:o");
    EXPECT_INT(1, c, "EXPIRE", "k:o", "60", "XX", "GT");
    EXPECT_INT(60, c, "TTL", "k:o");
    EXPECT_INT(1, c, "PEXPIRE", "k:o", "30000", "lt");
    TTL_IS(c, "k:o", 29, 30);
    EXPECT_INT(1, c, "PERSIST", "k:o");
    EXPECT_INT(1, c, "EXPIRE", "k:o", "70", "LT");
    EXPECT_INT(70, c, "TTL", "k:o");
    char at[32];
    snprintf(at, sizeof(at), "%lld", (long long)time(NULL) + 5000);
    EXPECT_INT(0, c, "EXPIREAT", "k:o", at, "NX");
    EXPECT_INT(1, c, "EXPIREAT", "k:o", at, "GT");
    TTL_IS(c, "k:o", 4998, 5000);
    const char *nxerr = "ERR NX and XX, GT or LT options at the same time are not compatible";
    EXPECT_ERR(nxerr, c, "EXPIRE", "k:o", "10", "NX", "XX");
    EXPECT_ERR(nxerr, c, "EXPIRE", "k:o", "10", "NX", "GT");
    EXPECT_ERR(nxerr, c, "EXPIRE", "k:o", "10", "LT", "NX");
    EXPECT_ERR("ERR GT and LT options at the same time are not compatible", c, "EXPIRE", "k:o",
               "10", "GT", "LT");
    EXPECT_ERR("ERR Unsupported option FOO", c, "EXPIRE", "k:o", "10", "FOO");
    TTL_IS(c, "k:o", 4998, 5000);
    EXPECT_INT(1, c, "DEL", "k:o");
    eddy_free(c);
}

/* Key names k:0000 .. for n keys, set in one pipeline. */
static void fill(eddy_ctx *c, const char *prefix, int n, const char *px)
{
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof(key), "%s%05d", prefix, i);
        const char *argv[] = {"SET", key, "v", "PX", px};
        CHECK(eddy_append_argv(c, px ? 5 : 3, argv, NULL) == EDDY_OK);
    }
    for (int i = 0; i < n; i++) {
        struct eddy_reply *r = NULL;
        if (eddy_get_reply(c, &r) != EDDY_OK)
            FAILF("pipelined SET %d: %s", i, eddy_errstr(c));
        h_expect_status(H_AT, r, "OK");
    }
}

static void t_scan_full(void)
{
    enum { N = 5000 };
    eddy_ctx *c = h_connect();
    h_flushall(c);
    fill(c, "scan:", N, NULL);
    EXPECT_INT(N, c, "DBSIZE");
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    char cursor[32] = "0";
    int calls = 0;
    long long returned = 0;
    do {
        struct eddy_reply *r = CMD(c, "SCAN", cursor, "COUNT", "100");
        if (r->type != EDDY_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != EDDY_REPLY_STRING || r->element[1]->type != EDDY_REPLY_ARRAY)
            FAILF("SCAN %s replied %s", cursor, h_describe(r));
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        struct eddy_reply *keys = r->element[1];
        if (keys->elements > 1000)
            FAILF("SCAN COUNT 100 returned %zu keys", keys->elements);
        for (size_t i = 0; i < keys->elements; i++) {
            int idx;
            if (sscanf(keys->element[i]->str, "scan:%d", &idx) != 1 || idx < 0 || idx >= N)
                FAILF("SCAN returned an unknown key \"%s\"", keys->element[i]->str);
            seen[idx] = 1;
            returned++;
        }
        eddy_reply_free(r);
        calls++;
    } while (strcmp(cursor, "0") != 0 && calls < 10 * N);
    CHECK_STR(cursor, "0");
    for (int i = 0; i < N; i++)
        if (!seen[i])
            FAILF("a full SCAN never returned scan:%05d (%d calls, %lld keys)", i, calls,
                  returned);
    CHECK(calls >= N / 1000);
    h_flushall(c);
    eddy_free(c);
}

/* One SCAN step; copies the next cursor into cursor and marks scan:<n> keys in seen. */
static void scan_step(eddy_ctx *c, char *cursor, size_t cap, unsigned char *seen, int n)
{
    struct eddy_reply *r = CMD(c, "SCAN", cursor, "COUNT", "100");
    if (r->type != EDDY_REPLY_ARRAY || r->elements != 2)
        FAILF("SCAN %s replied %s", cursor, h_describe(r));
    snprintf(cursor, cap, "%s", r->element[0]->str);
    for (size_t i = 0; i < r->element[1]->elements; i++) {
        int idx;
        if (sscanf(r->element[1]->element[i]->str, "scan:%d", &idx) == 1 && idx >= 0 && idx < n)
            seen[idx] = 1;
    }
    eddy_reply_free(r);
}

/* The server keeps a table of recent cursors; a cursor pushed out of it by many
 * other SCANs must still resume without skipping keys (docs: it restarts its slot). */
static void t_scan_cursor_evicted(void)
{
    enum { N = 5000 };
    eddy_ctx *c = h_connect();
    h_flushall(c);
    fill(c, "scan:", N, NULL);
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    char cursor[32] = "0";
    for (int step = 0; step < 10; step++)
        scan_step(c, cursor, sizeof(cursor), seen, N);
    CHECK(strcmp(cursor, "0") != 0);
    /* 5,000 other iterations start and take cursors. */
    for (int i = 0; i < 5000; i++) {
        const char *argv[] = {"SCAN", "0", "COUNT", "1"};
        CHECK(eddy_append_argv(c, 4, argv, NULL) == EDDY_OK);
    }
    for (int i = 0; i < 5000; i++) {
        struct eddy_reply *r;
        CHECK(eddy_get_reply(c, &r) == EDDY_OK);
        CHECK(r->type == EDDY_REPLY_ARRAY);
        eddy_reply_free(r);
    }
    int calls = 0;
    do
        scan_step(c, cursor, sizeof(cursor), seen, N);
    while (strcmp(cursor, "0") != 0 && ++calls < 100000);
    for (int i = 0; i < N; i++)
        if (!seen[i])
            FAILF("SCAN resumed from an evicted cursor never returned scan:%05d", i);
    h_flushall(c);
    eddy_free(c);
}

/* Keys present for the whole iteration are returned even while others are added
 * and deleted between the calls. */
static void t_scan_concurrent_writes(void)
{
    enum { N = 3000 };
    eddy_ctx *c = h_connect();
    h_flushall(c);
    fill(c, "scan:", N, NULL);
    fill(c, "tmp:", 2000, NULL);
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    char cursor[32] = "0";
    int calls = 0, next_tmp = 0;
    do {
        scan_step(c, cursor, sizeof(cursor), seen, N);
        /* Delete 50 old temporary keys and add 50 new ones. */
        for (int i = 0; i < 50; i++) {
            char key[32];
            snprintf(key, sizeof(key), "tmp:%05d", next_tmp++);
            EXPECT_INT(1, c, "DEL", key);
            snprintf(key, sizeof(key), "new:%d:%d", calls, i);
            EXPECT_OK(c, "SET", key, "x");
        }
    } while (strcmp(cursor, "0") != 0 && ++calls < 100000 && next_tmp < 1950);
    while (strcmp(cursor, "0") != 0 && ++calls < 100000)
        scan_step(c, cursor, sizeof(cursor), seen, N);
    for (int i = 0; i < N; i++)
        if (!seen[i])
            FAILF("SCAN with concurrent writes never returned scan:%05d", i);
    h_flushall(c);
    eddy_free(c);
}

static void t_scan_options(void)
{
    eddy_ctx *c = h_connect();
    h_flushall(c);
    fill(c, "sm:a", 30, NULL);
    fill(c, "sm:b", 20, NULL);
    /* MATCH filters every page; iterate fully. */
    const char *types[] = {"string", "hash"};
    for (int t = 0; t < 3; t++) {
        char cursor[32] = "0";
        long long n = 0;
        int calls = 0;
        do {
            struct eddy_reply *r =
                t == 2 ? CMD(c, "SCAN", cursor, "MATCH", "sm:b*", "COUNT", "7")
                       : CMD(c, "SCAN", cursor, "TYPE", types[t], "COUNT", "1000");
            CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                const char *k = r->element[1]->element[i]->str;
                if (t == 2 && strncmp(k, "sm:b", 4) != 0)
                    FAILF("SCAN MATCH sm:b* returned %s", k);
                n++;
            }
            eddy_reply_free(r);
        } while (strcmp(cursor, "0") != 0 && ++calls < 1000);
        if (t == 0)
            CHECK_EQ_INT(n, 50);
        else if (t == 1)
            CHECK_EQ_INT(n, 0);
        else
            CHECK_EQ_INT(n, 20);
    }
    EXPECT_ERR("ERR invalid cursor", c, "SCAN", "abc");
    EXPECT_ERR("ERR syntax error", c, "SCAN", "0", "COUNT", "0");
    EXPECT_ERR(NOTINT, c, "SCAN", "0", "COUNT", "x");
    EXPECT_ERR("ERR syntax error", c, "SCAN", "0", "MATCH");
    EXPECT_ERR("ERR syntax error", c, "SCAN", "0", "FOO", "bar");
    h_flushall(c);
    eddy_free(c);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails unless KEYS pattern returns exactly the want keys (NULL-terminated), any order. */
static void keys_are(const char *file, int line, eddy_ctx *c, const char *pattern,
                     const char **want)
{
    struct eddy_reply *r = h_cmd(file, line, c, "KEYS", pattern, (char *)NULL);
    if (r->type != EDDY_REPLY_ARRAY)
        h_fail(file, line, "KEYS %s replied %s", pattern, h_describe(r));
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    if (r->elements != n)
        h_fail(file, line, "KEYS %s returned %zu keys, expected %zu", pattern, r->elements, n);
    const char *got[64];
    for (size_t i = 0; i < n && i < 64; i++)
        got[i] = r->element[i]->str;
    qsort(got, n, sizeof(got[0]), cmp_str);
    for (size_t i = 0; i < n; i++)
        if (strcmp(got[i], want[i]) != 0)
            h_fail(file, line, "KEYS %s: got %s where %s was expected", pattern, got[i], want[i]);
    eddy_reply_free(r);
}
#define KEYS_ARE(c, pattern, ...)                                                             \
    do {                                                                                      \
        const char *w_[] = {__VA_ARGS__, NULL};                                               \
        keys_are(H_AT, (c), (pattern), w_);                                                   \
    } while (0)

static void t_keys_dbsize_flush_randomkey(void)
{
    eddy_ctx *c = h_connect();
    h_flushall(c);
    EXPECT_INT(0, c, "DBSIZE");
    EXPECT_NIL(c, "RANDOMKEY");
    struct eddy_reply *r = CMD(c, "KEYS", "*");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 0);
    eddy_reply_free(r);
    EXPECT_OK(c, "MSET", "hello", "1", "hallo", "2", "hxllo", "3", "hllo", "4", "heeeello", "5",
              "a*b", "6");
    EXPECT_INT(6, c, "DBSIZE");
    /* The patterns of the Redis documentation of KEYS. */
    KEYS_ARE(c, "h?llo", "hallo", "hello", "hxllo");
    KEYS_ARE(c, "h*llo", "hallo", "heeeello", "hello", "hllo", "hxllo");
    KEYS_ARE(c, "h[ae]llo", "hallo", "hello");
    KEYS_ARE(c, "h[^e]llo", "hallo", "hxllo");
    KEYS_ARE(c, "h[a-b]llo", "hallo");
    KEYS_ARE(c, "a\\*b", "a*b");
    KEYS_ARE(c, "*", "a*b", "hallo", "heeeello", "hello", "hllo", "hxllo");
    r = CMD(c, "KEYS", "nomatch*");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 0);
    eddy_reply_free(r);
    for (int i = 0; i < 20; i++) {
        char *k = CMD_TEXT(c, "RANDOMKEY");
        if (strcmp(k, "hello") != 0 && strcmp(k, "hallo") != 0 && strcmp(k, "hxllo") != 0 &&
            strcmp(k, "hllo") != 0 && strcmp(k, "heeeello") != 0 && strcmp(k, "a*b") != 0)
            FAILF("RANDOMKEY returned \"%s\", not an existing key", k);
        free(k);
    }
    EXPECT_OK(c, "FLUSHDB");
    EXPECT_INT(0, c, "DBSIZE");
    EXPECT_NIL(c, "GET", "hello");
    EXPECT_OK(c, "SET", "x", "1");
    EXPECT_OK(c, "FLUSHALL", "ASYNC");
    EXPECT_INT(0, c, "DBSIZE");
    EXPECT_OK(c, "SET", "x", "1");
    EXPECT_OK(c, "FLUSHALL", "SYNC");
    EXPECT_INT(0, c, "EXISTS", "x");
    EXPECT_ERR("ERR syntax error", c, "FLUSHALL", "FOO");
    /* Writes after a flush work. */
    EXPECT_OK(c, "SET", "x", "2");
    EXPECT_BULK("2", c, "GET", "x");
    EXPECT_INT(1, c, "DBSIZE");
    h_flushall(c);
    eddy_free(c);
}

/* Keys with PX 100 are gone 200 ms later for every read path. The checks that do
 * not touch the keys one by one come first, so lazy expiry cannot help them. */
static void t_expiry_visibility(void)
{
    eddy_ctx *c = h_connect();
    /* Longer in slow (sanitizer) builds; and if the machine is so busy that the checks
     * before the expiry took longer than it, again with a longer one (the checks that
     * the keys exist hold only before their expiry). */
    int px_ms = h_scaled(100), attempt = 0;
    for (;; attempt++) {
        CHECK(attempt < 4);
        h_flushall(c);
        EXPECT_OK(c, "SET", "keep", "v");
        char px[16];
        snprintf(px, sizeof(px), "%d", px_ms);
        int64_t t0 = h_now_ms();
        fill(c, "vol:", 50, px);
        long long dbsize = CMD_INT(c, "DBSIZE");
        long long exists = CMD_INT(c, "EXISTS", "vol:00007");
        if (h_now_ms() - t0 < px_ms) {
            CHECK_EQ_INT(dbsize, 51);
            CHECK_EQ_INT(exists, 1);
            break;
        }
        px_ms *= 4;
    }
    h_sleep_ms(2 * px_ms);
    EXPECT_INT(1, c, "DBSIZE");
    KEYS_ARE(c, "*", "keep");
    KEYS_ARE(c, "vol:*", NULL);
    char cursor[32] = "0";
    int n = 0, calls = 0;
    do {
        struct eddy_reply *r = CMD(c, "SCAN", cursor, "COUNT", "10");
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            if (strcmp(r->element[1]->element[i]->str, "keep") != 0)
                FAILF("SCAN returned expired key %s", r->element[1]->element[i]->str);
            n++;
        }
        eddy_reply_free(r);
    } while (strcmp(cursor, "0") != 0 && ++calls < 1000);
    CHECK_EQ_INT(n, 1);
    for (int i = 0; i < 10; i++) {
        char *k = CMD_TEXT(c, "RANDOMKEY");
        CHECK_STR(k, "keep");
        free(k);
    }
    EXPECT_INT(0, c, "EXISTS", "vol:00001", "vol:00002");
    EXPECT_NIL(c, "GET", "vol:00003");
    EXPECT_INT(-2, c, "TTL", "vol:00004");
    EXPECT_INT(0, c, "STRLEN", "vol:00005");
    EXPECT_INT(0, c, "DEL", "vol:00006");
    EXPECT_INT(0, c, "PERSIST", "vol:00008");
    EXPECT_INT(1, c, "INCR", "vol:00009");
    EXPECT_INT(-1, c, "TTL", "vol:00009");
    EXPECT_OK(c, "SET", "vol:00010", "x", "NX");
    h_flushall(c);
    eddy_free(c);
}

/* Active expiry: keys nobody reads are purged in the background, which the
 * expired_keys counter of INFO stats shows. */
static void t_expiry_background(void)
{
    enum { N = 200 };
    eddy_ctx *c = h_connect();
    h_flushall(c);
    long long before = h_info_field(c, "stats", "expired_keys");
    CHECK(before >= 0);
    fill(c, "bg:", N, "100");
    int64_t end = h_now_ms() + 5000;
    long long now = before;
    while (h_now_ms() < end) {
        now = h_info_field(c, "stats", "expired_keys");
        if (now >= before + N)
            break;
        h_sleep_ms(50);
    }
    if (now < before + N)
        FAILF("expired_keys went from %lld to %lld in 5 s, expected +%d", before, now, N);
    EXPECT_INT(0, c, "DBSIZE");
    eddy_free(c);
}

/* The one key of the store, checked through every full-keyspace read: DBSIZE 1, KEYS *
 * and a SCAN from 0 give exactly key, RANDOMKEY gives it. */
static void only_key_visible(eddy_ctx *c, const char *key, const char *how)
{
    long long n = h_int(H_AT, CMD(c, "DBSIZE"));
    if (n != 1)
        FAILF("after %s: DBSIZE %lld, expected 1", how, n);
    struct eddy_reply *r = CMD(c, "KEYS", "*");
    if (r->type != EDDY_REPLY_ARRAY || r->elements != 1 || strcmp(r->element[0]->str, key) != 0)
        FAILF("after %s: KEYS * does not give just %s", how, key);
    eddy_reply_free(r);
    r = CMD(c, "SCAN", "0", "COUNT", "100000");
    if (r->type != EDDY_REPLY_ARRAY || r->elements != 2 || r->element[1]->elements != 1 ||
        strcmp(r->element[1]->element[0]->str, key) != 0)
        FAILF("after %s: SCAN 0 does not give just %s", how, key);
    eddy_reply_free(r);
    char *k = CMD_TEXT(c, "RANDOMKEY");
    if (strcmp(k, key) != 0)
        FAILF("after %s: RANDOMKEY gave %s, expected %s", how, k, key);
    free(k);
}

/* Scans of the whole keyspace skip the slots that hold no key (the engine's slot bits,
 * cleared by FLUSHALL): after a FLUSHALL, a key written by each kind of write is seen
 * by DBSIZE, KEYS, SCAN and RANDOMKEY, in slot 0, in slot 16383 and in between, and
 * again after a restart. */
static void t_keys_visible_after_each_write_kind(void)
{
    static const char lib[] =
        "#!lua name=vis\n"
        "redis.register_function('rset', function(keys, args) return redis.call('SET', keys[1], 'v') end)\n"
        "redis.register_function('eset', function(keys, args) eddy.set(keys[1], 'v'); return 1 end)\n";
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_BULK("vis", c, "FUNCTION", "LOAD", lib);
    /* in slot 0, slot 16383 and slot 13771 */
    const char *keys[] = {"{06S}k", "{apX}k", "k:mid"};
    EXPECT_INT(0, c, "CLUSTER", "KEYSLOT", keys[0]);
    EXPECT_INT(16383, c, "CLUSTER", "KEYSLOT", keys[1]);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *k = keys[i];
        struct {
            const char *how;
            const char *argv[8];
        } w[] = {
            {"SET", {"SET", k, "v"}},
            {"SETNX", {"SETNX", k, "v"}},
            {"SETEX", {"SETEX", k, "100", "v"}},
            {"PSETEX", {"PSETEX", k, "100000", "v"}},
            {"MSET", {"MSET", k, "v"}},
            {"MSETNX", {"MSETNX", k, "v"}},
            {"INCR", {"INCR", k}},
            {"INCRBYFLOAT", {"INCRBYFLOAT", k, "1.5"}},
            {"APPEND", {"APPEND", k, "v"}},
            {"SETRANGE", {"SETRANGE", k, "3", "v"}},
            {"FCALL redis.call SET", {"FCALL", "rset", "1", k}},
            {"FCALL eddy.set", {"FCALL", "eset", "1", k}},
            {"EVAL", {"EVAL", "return redis.call('SET', KEYS[1], 'v')", "1", k}},
        };
        for (size_t j = 0; j < sizeof(w) / sizeof(w[0]); j++) {
            EXPECT_OK(c, "FLUSHALL");
            int argc = 0;
            while (argc < 8 && w[j].argv[argc] != NULL)
                argc++;
            struct eddy_reply *r = eddy_command_argv(c, argc, w[j].argv, NULL);
            if (r == NULL || r->type == EDDY_REPLY_ERROR)
                FAILF("%s: %s", w[j].how, r ? r->str : eddy_errstr(c));
            eddy_reply_free(r);
            char how[96];
            snprintf(how, sizeof(how), "FLUSHALL then %s %s", w[j].how, k);
            only_key_visible(c, k, how);
        }
    }
    EXPECT_OK(c, "FLUSHALL");
    EXPECT_OK(c, "SET", "{apX}k", "v");
    eddy_free(c);
    h_server_restart(s);
    c = h_connect_port(s->port);
    only_key_visible(c, "{apX}k", "a restart");
    EXPECT_OK(c, "FLUSHALL");
    EXPECT_INT(0, c, "DBSIZE");
    eddy_free(c);
    h_server_stop(s);
    h_server_free(s);
}

void suite_keys(void)
{
    h_run("del_unlink_exists_type", t_del_exists_type, 0, 10);
    h_run("expire_ttl_persist", t_expire_ttl_persist, 0, 10);
    h_run("expire_nx_xx_gt_lt", t_expire_options, 0, 10);
    h_run("scan_full_iteration_5000_keys", t_scan_full, 0, 30);
    h_run("scan_cursor_evicted_still_complete", t_scan_cursor_evicted, 0, 30);
    h_run("scan_complete_under_concurrent_writes", t_scan_concurrent_writes, 0, 30);
    h_run("scan_match_type_count", t_scan_options, 0, 10);
    h_run("keys_dbsize_flush_randomkey", t_keys_dbsize_flush_randomkey, 0, 10);
    h_run("keys_visible_after_each_write_kind", t_keys_visible_after_each_write_kind, H_OWN, 60);
    h_run("expiry_px100_gone_everywhere", t_expiry_visibility, 0, 10);
    h_run("expiry_background_purge", t_expiry_background, 0, 10);
}
