/* test_strings.c - the string commands against the shared server: GET and SET with
 * every option and invalid combination, GETDEL GETEX SETNX SETEX PSETEX MGET MSET
 * MSETNX, the counters, APPEND STRLEN GETRANGE SETRANGE. Replies are Redis 7's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define NOTINT "ERR value is not an integer or out of range"
#define SYNTAX "ERR syntax error"

/* Fails unless lo <= PTTL key <= hi. */
static void pttl_between(const char *file, int line, eddy_ctx *c, const char *key, long long lo,
                         long long hi)
{
    long long v = h_int(file, line, h_cmd(file, line, c, "PTTL", key, (char *)NULL));
    if (v < lo || v > hi)
        h_fail(file, line, "PTTL %s is %lld, expected %lld..%lld", key, v, lo, hi);
}
#define PTTL_BETWEEN(c, key, lo, hi) pttl_between(H_AT, (c), (key), (lo), (hi))

static void fmt_ll(char *buf, size_t cap, long long v)
{
    snprintf(buf, cap, "%lld", v);
}

static void t_get_set(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "s:k");
    EXPECT_NIL(c, "GET", "s:k");
    EXPECT_OK(c, "SET", "s:k", "v1");
    EXPECT_BULK("v1", c, "GET", "s:k");
    EXPECT_OK(c, "SET", "s:k", "v2");
    EXPECT_BULK("v2", c, "GET", "s:k");
    EXPECT_INT(-1, c, "TTL", "s:k");
    EXPECT_OK(c, "SET", "s:k", "");
    EXPECT_BULK("", c, "GET", "s:k");
    EXPECT_OK(c, "set", "s:k", "lower", "ex", "100");
    EXPECT_BULK("lower", c, "GET", "s:k");
    /* A plain SET drops the TTL. */
    EXPECT_OK(c, "SET", "s:k", "v3");
    EXPECT_INT(-1, c, "TTL", "s:k");
    EXPECT_INT(1, c, "DEL", "s:k");
    eddy_free(c);
}

static void t_set_expire_options(void)
{
    eddy_ctx *c = h_connect();
    char at[32];
    EXPECT_OK(c, "SET", "s:ex", "v", "EX", "100");
    EXPECT_INT(100, c, "TTL", "s:ex");
    PTTL_BETWEEN(c, "s:ex", 99000, 100000);
    EXPECT_OK(c, "SET", "s:px", "v", "PX", "50000");
    PTTL_BETWEEN(c, "s:px", 49000, 50000);
    fmt_ll(at, sizeof(at), (long long)time(NULL) + 200);
    EXPECT_OK(c, "SET", "s:exat", "v", "EXAT", at);
    PTTL_BETWEEN(c, "s:exat", 198000, 200000);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    fmt_ll(at, sizeof(at), now_ms + 300000);
    EXPECT_OK(c, "SET", "s:pxat", "v", "PXAT", at);
    PTTL_BETWEEN(c, "s:pxat", 298000, 300000);
    fmt_ll(at, sizeof(at), now_ms + 300000);
    EXPECT_INT(now_ms + 300000, c, "PEXPIRETIME", "s:pxat");
    /* An absolute time in the past: set, then expired at once. */
    EXPECT_OK(c, "SET", "s:past", "v", "EXAT", "1");
    EXPECT_INT(0, c, "EXISTS", "s:past");
    EXPECT_NIL(c, "GET", "s:past");
    EXPECT_OK(c, "SET", "s:past", "v", "PXAT", "1000");
    EXPECT_NIL(c, "GET", "s:past");
    /* KEEPTTL keeps it; a SET without it drops it. */
    EXPECT_OK(c, "SET", "s:ex", "v2", "KEEPTTL");
    EXPECT_BULK("v2", c, "GET", "s:ex");
    PTTL_BETWEEN(c, "s:ex", 98000, 100000);
    EXPECT_OK(c, "SET", "s:keep-new", "v", "KEEPTTL");
    EXPECT_INT(-1, c, "TTL", "s:keep-new");
    EXPECT_INT(5, c, "DEL", "s:ex", "s:px", "s:exat", "s:pxat", "s:keep-new");
    eddy_free(c);
}

static void t_set_nx_xx_get(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "s:nx");
    EXPECT_OK(c, "SET", "s:nx", "1", "NX");
    EXPECT_NIL(c, "SET", "s:nx", "2", "NX");
    EXPECT_BULK("1", c, "GET", "s:nx");
    EXPECT_OK(c, "SET", "s:nx", "3", "XX");
    EXPECT_BULK("3", c, "GET", "s:nx");
    EXPECT_NIL(c, "SET", "s:xx-missing", "1", "XX");
    EXPECT_INT(0, c, "EXISTS", "s:xx-missing");
    /* GET returns the old value (nil if none) and sets. */
    EXPECT_BULK("3", c, "SET", "s:nx", "4", "GET");
    EXPECT_BULK("4", c, "GET", "s:nx");
    EXPECT_NIL(c, "SET", "s:get-new", "a", "GET");
    EXPECT_BULK("a", c, "GET", "s:get-new");
    /* NX GET (Redis 7): the old value, and no change when it exists. */
    EXPECT_BULK("4", c, "SET", "s:nx", "5", "NX", "GET");
    EXPECT_BULK("4", c, "GET", "s:nx");
    EXPECT_NIL(c, "SET", "s:nxget-new", "b", "NX", "GET");
    EXPECT_BULK("b", c, "GET", "s:nxget-new");
    EXPECT_BULK("4", c, "SET", "s:nx", "6", "XX", "GET");
    EXPECT_BULK("6", c, "GET", "s:nx");
    EXPECT_NIL(c, "SET", "s:xxget-missing", "c", "XX", "GET");
    EXPECT_INT(0, c, "EXISTS", "s:xxget-missing");
    /* Options combine with expiry, in any order and case. */
    EXPECT_BULK("6", c, "SET", "s:nx", "7", "get", "px", "100000", "xx");
    PTTL_BETWEEN(c, "s:nx", 99000, 100000);
    EXPECT_INT(3, c, "DEL", "s:nx", "s:get-new", "s:nxget-new");
    eddy_free(c);
}

static void t_set_invalid(void)
{
    eddy_ctx *c = h_connect();
    const char *inv = "ERR invalid expire time in 'set' command";
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "NX", "XX");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "XX", "NX");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "EX", "10", "PX", "100");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "EX", "10", "EXAT", "100");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "EX", "10", "KEEPTTL");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "KEEPTTL", "PX", "10");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "EX");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "FOO");
    EXPECT_ERR(SYNTAX, c, "SET", "s:inv", "v", "NX", "BAR");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "EX", "0");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "EX", "-1");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "PX", "0");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "PX", "-100");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "EXAT", "0");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "PXAT", "-5");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "EX", "9223372036854775807");
    EXPECT_ERR(inv, c, "SET", "s:inv", "v", "PX", "9223372036854775807");
    EXPECT_ERR(NOTINT, c, "SET", "s:inv", "v", "EX", "abc");
    EXPECT_ERR(NOTINT, c, "SET", "s:inv", "v", "EX", "1.5");
    EXPECT_ERR(NOTINT, c, "SET", "s:inv", "v", "PX", "99999999999999999999");
    EXPECT_INT(0, c, "EXISTS", "s:inv");
    eddy_free(c);
}

static void t_getdel_getex(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SET", "s:gd", "val");
    EXPECT_BULK("val", c, "GETDEL", "s:gd");
    EXPECT_INT(0, c, "EXISTS", "s:gd");
    EXPECT_NIL(c, "GETDEL", "s:gd");

    EXPECT_NIL(c, "GETEX", "s:gx");
    EXPECT_OK(c, "SET", "s:gx", "val");
    EXPECT_BULK("val", c, "GETEX", "s:gx");
    EXPECT_INT(-1, c, "TTL", "s:gx");
    EXPECT_BULK("val", c, "GETEX", "s:gx", "EX", "100");
    EXPECT_INT(100, c, "TTL", "s:gx");
    EXPECT_BULK("val", c, "GETEX", "s:gx");
    PTTL_BETWEEN(c, "s:gx", 98000, 100000);
    EXPECT_BULK("val", c, "GETEX", "s:gx", "PX", "5000");
    PTTL_BETWEEN(c, "s:gx", 4000, 5000);
    EXPECT_BULK("val", c, "GETEX", "s:gx", "PERSIST");
    EXPECT_INT(-1, c, "TTL", "s:gx");
    char at[32];
    fmt_ll(at, sizeof(at), (long long)time(NULL) + 500);
    EXPECT_BULK("val", c, "GETEX", "s:gx", "EXAT", at);
    PTTL_BETWEEN(c, "s:gx", 498000, 500000);
    EXPECT_BULK("val", c, "GETEX", "s:gx", "PXAT", "1");
    EXPECT_INT(0, c, "EXISTS", "s:gx");

    EXPECT_OK(c, "SET", "s:gx", "val");
    EXPECT_ERR(SYNTAX, c, "GETEX", "s:gx", "EX", "10", "PERSIST");
    EXPECT_ERR(SYNTAX, c, "GETEX", "s:gx", "PERSIST", "EX", "10");
    EXPECT_ERR(SYNTAX, c, "GETEX", "s:gx", "EX", "10", "PX", "10");
    EXPECT_ERR(SYNTAX, c, "GETEX", "s:gx", "EX");
    EXPECT_ERR(SYNTAX, c, "GETEX", "s:gx", "FOO");
    EXPECT_ERR("ERR invalid expire time in 'getex' command", c, "GETEX", "s:gx", "EX", "0");
    EXPECT_ERR("ERR invalid expire time in 'getex' command", c, "GETEX", "s:gx", "PX", "-1");
    EXPECT_ERR(NOTINT, c, "GETEX", "s:gx", "EX", "ten");
    EXPECT_INT(-1, c, "TTL", "s:gx");
    EXPECT_INT(1, c, "DEL", "s:gx");
    eddy_free(c);
}

static void t_setnx_setex_psetex(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "s:snx");
    EXPECT_INT(1, c, "SETNX", "s:snx", "a");
    EXPECT_INT(0, c, "SETNX", "s:snx", "b");
    EXPECT_BULK("a", c, "GET", "s:snx");
    EXPECT_OK(c, "SETEX", "s:snx", "100", "c");
    EXPECT_BULK("c", c, "GET", "s:snx");
    EXPECT_INT(100, c, "TTL", "s:snx");
    EXPECT_OK(c, "PSETEX", "s:snx", "1500", "d");
    EXPECT_BULK("d", c, "GET", "s:snx");
    PTTL_BETWEEN(c, "s:snx", 1000, 1500);
    EXPECT_ERR("ERR invalid expire time in 'setex' command", c, "SETEX", "s:snx", "0", "e");
    EXPECT_ERR("ERR invalid expire time in 'setex' command", c, "SETEX", "s:snx", "-10", "e");
    EXPECT_ERR("ERR invalid expire time in 'psetex' command", c, "PSETEX", "s:snx", "0", "e");
    EXPECT_ERR(NOTINT, c, "SETEX", "s:snx", "abc", "e");
    EXPECT_ERR("ERR wrong number of arguments for 'setex' command", c, "SETEX", "s:snx", "10");
    EXPECT_BULK("d", c, "GET", "s:snx");
    EXPECT_INT(1, c, "DEL", "s:snx");
    eddy_free(c);
}

static void t_mget_mset_msetnx(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "s:m1", "s:m2", "s:m3");
    EXPECT_OK(c, "MSET", "s:m1", "one", "s:m2", "two");
    struct eddy_reply *r = CMD(c, "MGET", "s:m1", "s:nope", "s:m2");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
    CHECK(r->element[0]->type == EDDY_REPLY_STRING && strcmp(r->element[0]->str, "one") == 0);
    CHECK(r->element[1]->type == EDDY_REPLY_NIL);
    CHECK(r->element[2]->type == EDDY_REPLY_STRING && strcmp(r->element[2]->str, "two") == 0);
    eddy_reply_free(r);
    /* MSET: the last of repeated keys wins. */
    EXPECT_OK(c, "MSET", "s:m1", "x", "s:m1", "y");
    EXPECT_BULK("y", c, "GET", "s:m1");
    EXPECT_ERR("ERR wrong number of arguments for 'mset' command", c, "MSET", "s:m1");
    EXPECT_ERR("ERR wrong number of arguments for 'mset' command", c, "MSET", "s:m1", "a",
               "s:m2");
    EXPECT_ERR("ERR wrong number of arguments for 'msetnx' command", c, "MSETNX", "s:m1", "a",
               "s:m2");
    /* MSETNX: all or nothing. */
    EXPECT_INT(0, c, "MSETNX", "s:m3", "three", "s:m1", "z");
    EXPECT_INT(0, c, "EXISTS", "s:m3");
    EXPECT_BULK("y", c, "GET", "s:m1");
    EXPECT_INT(1, c, "MSETNX", "s:m3", "three", "s:m4", "four");
    EXPECT_BULK("three", c, "GET", "s:m3");
    EXPECT_BULK("four", c, "GET", "s:m4");
    /* MSET removes TTLs. */
    EXPECT_OK(c, "SET", "s:m1", "t", "EX", "100");
    EXPECT_OK(c, "MSET", "s:m1", "u");
    EXPECT_INT(-1, c, "TTL", "s:m1");
    EXPECT_INT(4, c, "DEL", "s:m1", "s:m2", "s:m3", "s:m4");
    eddy_free(c);
}

static void t_incr_decr(void)
{
    eddy_ctx *c = h_connect();
    const char *ovf = "ERR increment or decrement would overflow";
    EXPECT_INT(0, c, "DEL", "s:n");
    EXPECT_INT(1, c, "INCR", "s:n");
    EXPECT_INT(2, c, "INCR", "s:n");
    EXPECT_INT(12, c, "INCRBY", "s:n", "10");
    EXPECT_INT(-8, c, "INCRBY", "s:n", "-20");
    EXPECT_INT(-9, c, "DECR", "s:n");
    EXPECT_INT(-4, c, "DECRBY", "s:n", "-5");
    EXPECT_INT(-14, c, "DECRBY", "s:n", "10");
    EXPECT_BULK("-14", c, "GET", "s:n");
    EXPECT_INT(-1, c, "DECR", "s:new-counter");
    EXPECT_INT(5, c, "INCRBY", "s:new-counter2", "5");
    /* The counter keeps its TTL (Redis keeps it too). */
    EXPECT_OK(c, "SET", "s:n", "10", "EX", "100");
    EXPECT_INT(11, c, "INCR", "s:n");
    PTTL_BETWEEN(c, "s:n", 98000, 100000);
    /* Limits. */
    EXPECT_OK(c, "SET", "s:n", "9223372036854775806");
    EXPECT_INT(9223372036854775807LL, c, "INCR", "s:n");
    EXPECT_ERR(ovf, c, "INCR", "s:n");
    EXPECT_ERR(ovf, c, "INCRBY", "s:n", "1");
    EXPECT_BULK("9223372036854775807", c, "GET", "s:n");
    EXPECT_OK(c, "SET", "s:n", "-9223372036854775807");
    EXPECT_INT(-9223372036854775807LL - 1, c, "DECR", "s:n");
    EXPECT_ERR(ovf, c, "DECR", "s:n");
    EXPECT_ERR(ovf, c, "DECRBY", "s:n", "1");
    EXPECT_ERR(ovf, c, "INCRBY", "s:n", "-1");
    EXPECT_OK(c, "SET", "s:n", "0");
    EXPECT_ERR("ERR decrement would overflow", c, "DECRBY", "s:n", "-9223372036854775808");
    EXPECT_INT(-9223372036854775807LL, c, "DECRBY", "s:n", "9223372036854775807");
    /* Values and arguments that are not integers. */
    const char *bad[] = {"abc", "1.5", " 1", "1 ", "01", "+1", "", "9223372036854775808", "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        EXPECT_OK(c, "SET", "s:n", bad[i]);
        EXPECT_ERR(NOTINT, c, "INCR", "s:n");
        EXPECT_ERR(NOTINT, c, "DECRBY", "s:n", "1");
        EXPECT_BULK(bad[i], c, "GET", "s:n");
    }
    EXPECT_OK(c, "SET", "s:n", "5");
    EXPECT_ERR(NOTINT, c, "INCRBY", "s:n", "x");
    EXPECT_ERR(NOTINT, c, "INCRBY", "s:n", "1.0");
    EXPECT_ERR(NOTINT, c, "DECRBY", "s:n", "99999999999999999999");
    EXPECT_BULK("5", c, "GET", "s:n");
    EXPECT_INT(3, c, "DEL", "s:n", "s:new-counter", "s:new-counter2");
    eddy_free(c);
}

static void t_incrbyfloat(void)
{
    eddy_ctx *c = h_connect();
    const char *notfloat = "ERR value is not a valid float";
    EXPECT_INT(0, c, "DEL", "s:f");
    EXPECT_BULK("10.5", c, "INCRBYFLOAT", "s:f", "10.5");
    EXPECT_BULK("5.5", c, "INCRBYFLOAT", "s:f", "-5");
    EXPECT_BULK("5.5", c, "GET", "s:f");
    /* The examples of the Redis documentation. */
    EXPECT_OK(c, "SET", "s:f", "5.0e3");
    EXPECT_BULK("5200", c, "INCRBYFLOAT", "s:f", "2.0e2");
    EXPECT_OK(c, "SET", "s:f", "3");
    EXPECT_BULK("4.5", c, "INCRBYFLOAT", "s:f", "1.5");
    EXPECT_BULK("4", c, "INCRBYFLOAT", "s:f", "-0.5");
    EXPECT_INT(5, c, "INCR", "s:f");
    EXPECT_ERR(notfloat, c, "INCRBYFLOAT", "s:f", "abc");
    EXPECT_ERR(notfloat, c, "INCRBYFLOAT", "s:f", "");
    EXPECT_OK(c, "SET", "s:f", "not a number");
    EXPECT_ERR(notfloat, c, "INCRBYFLOAT", "s:f", "1");
    EXPECT_OK(c, "SET", "s:f", "1");
    EXPECT_ERR(notfloat, c, "INCRBYFLOAT", "s:f", "nan");
    EXPECT_BULK("1", c, "GET", "s:f");
    /* The TTL stays. */
    EXPECT_OK(c, "SET", "s:f", "1", "EX", "100");
    EXPECT_BULK("2.5", c, "INCRBYFLOAT", "s:f", "1.5");
    PTTL_BETWEEN(c, "s:f", 98000, 100000);
    EXPECT_INT(1, c, "DEL", "s:f");
    eddy_free(c);
}

/* The example of the Redis documentation: Redis adds in long double precision and
 * prints at most 17 significant digits, so 10.50 + 0.1 is "10.6" (Redis 7.0.15). */
static void t_incrbyfloat_doc_example(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SET", "s:f2", "10.50");
    EXPECT_BULK("10.6", c, "INCRBYFLOAT", "s:f2", "0.1");
    EXPECT_BULK("10.6", c, "GET", "s:f2");
    EXPECT_BULK("10.7", c, "INCRBYFLOAT", "s:f2", "0.1");
    EXPECT_INT(1, c, "DEL", "s:f2");
    eddy_free(c);
}

/* An infinite increment is refused as an infinite result (Redis 7.0.15). */
static void t_incrbyfloat_inf(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SET", "s:f3", "1");
    EXPECT_ERR("ERR increment would produce NaN or Infinity", c, "INCRBYFLOAT", "s:f3", "inf");
    EXPECT_ERR("ERR increment would produce NaN or Infinity", c, "INCRBYFLOAT", "s:f3", "-inf");
    EXPECT_BULK("1", c, "GET", "s:f3");
    EXPECT_INT(1, c, "DEL", "s:f3");
    eddy_free(c);
}

static void t_append_strlen(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "s:ap");
    EXPECT_INT(0, c, "STRLEN", "s:ap");
    EXPECT_INT(5, c, "APPEND", "s:ap", "Hello");
    EXPECT_INT(11, c, "APPEND", "s:ap", " World");
    EXPECT_BULK("Hello World", c, "GET", "s:ap");
    EXPECT_INT(11, c, "STRLEN", "s:ap");
    EXPECT_INT(11, c, "APPEND", "s:ap", "");
    const char *argv[] = {"APPEND", "s:ap", "\0\r\n"};
    size_t lens[] = {6, 4, 3};
    h_expect_int(H_AT, h_cmdv(H_AT, c, 3, argv, lens), 14);
    const char *get[] = {"GET", "s:ap"};
    h_expect_bulk(H_AT, h_cmdv(H_AT, c, 2, get, NULL), "Hello World\0\r\n", 14);
    /* APPEND keeps the TTL. */
    EXPECT_OK(c, "SET", "s:ap", "a", "EX", "100");
    EXPECT_INT(2, c, "APPEND", "s:ap", "b");
    PTTL_BETWEEN(c, "s:ap", 98000, 100000);
    EXPECT_INT(1, c, "DEL", "s:ap");
    eddy_free(c);
}

static void t_getrange_setrange(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SET", "s:r", "This is a string");
    EXPECT_BULK("This", c, "GETRANGE", "s:r", "0", "3");
    EXPECT_BULK("ing", c, "GETRANGE", "s:r", "-3", "-1");
    EXPECT_BULK("This is a string", c, "GETRANGE", "s:r", "0", "-1");
    EXPECT_BULK("string", c, "GETRANGE", "s:r", "10", "100");
    EXPECT_BULK("", c, "GETRANGE", "s:r", "5", "3");
    EXPECT_BULK("", c, "GETRANGE", "s:r", "-1", "-5");
    EXPECT_BULK("This is a string", c, "GETRANGE", "s:r", "-100", "100");
    EXPECT_BULK("", c, "GETRANGE", "s:r", "100", "200");
    EXPECT_BULK("T", c, "SUBSTR", "s:r", "0", "0");
    EXPECT_BULK("", c, "GETRANGE", "s:nokey", "0", "-1");
    EXPECT_ERR(NOTINT, c, "GETRANGE", "s:r", "a", "1");

    EXPECT_OK(c, "SET", "s:r", "Hello World");
    EXPECT_INT(11, c, "SETRANGE", "s:r", "6", "Redis");
    EXPECT_BULK("Hello Redis", c, "GET", "s:r");
    EXPECT_INT(11, c, "SETRANGE", "s:r", "0", "");
    EXPECT_INT(13, c, "SETRANGE", "s:r", "11", "!!");
    EXPECT_BULK("Hello Redis!!", c, "GET", "s:r");
    EXPECT_INT(11, c, "SETRANGE", "s:r2", "6", "Redis");
    const char *get[] = {"GET", "s:r2"};
    h_expect_bulk(H_AT, h_cmdv(H_AT, c, 2, get, NULL), "\0\0\0\0\0\0Redis", 11);
    EXPECT_INT(0, c, "SETRANGE", "s:r3", "5", "");
    EXPECT_INT(0, c, "EXISTS", "s:r3");
    EXPECT_ERR("ERR offset is out of range", c, "SETRANGE", "s:r", "-1", "x");
    EXPECT_ERR("ERR string exceeds maximum allowed size (proto-max-bulk-len)", c, "SETRANGE",
               "s:r", "536870912", "x");
    /* Found by a review: offset + length overflowed (undefined) and wrapped negative,
     * so the check passed and the server tried a 2^63-byte allocation ("-OOM"). And as
     * Redis, an empty value writes nothing, so no size check: the current length. */
    EXPECT_ERR("ERR string exceeds maximum allowed size (proto-max-bulk-len)", c, "SETRANGE",
               "s:r", "9223372036854775807", "x");
    EXPECT_ERR("ERR string exceeds maximum allowed size (proto-max-bulk-len)", c, "SETRANGE",
               "s:r", "9223372036854775806", "xyz");
    EXPECT_INT(13, c, "SETRANGE", "s:r", "600000000", "");
    EXPECT_INT(0, c, "SETRANGE", "s:r3", "9223372036854775807", "");
    EXPECT_ERR(NOTINT, c, "SETRANGE", "s:r", "x", "y");
    EXPECT_BULK("Hello Redis!!", c, "GET", "s:r");
    EXPECT_INT(2, c, "DEL", "s:r", "s:r2");
    eddy_free(c);
}

static void t_binary_keys_values(void)
{
    eddy_ctx *c = h_connect();
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    const char *key = "s:bin\0key\r\n";
    size_t klen = 11;
    const char *set[] = {"SET", key, all};
    size_t setl[] = {3, klen, sizeof(all)};
    h_expect_status(H_AT, h_cmdv(H_AT, c, 3, set, setl), "OK");
    const char *get[] = {"GET", key};
    size_t getl[] = {3, klen};
    h_expect_bulk(H_AT, h_cmdv(H_AT, c, 2, get, getl), all, sizeof(all));
    /* The same key without its tail is another key. */
    EXPECT_NIL(c, "GET", "s:bin");
    const char *val = "line1\r\nline2\0\r\n$5\r\n*1\r\n";
    const char *set2[] = {"SET", "s:crlf", val};
    size_t set2l[] = {3, 6, 24};
    h_expect_status(H_AT, h_cmdv(H_AT, c, 3, set2, set2l), "OK");
    const char *get2[] = {"GET", "s:crlf"};
    h_expect_bulk(H_AT, h_cmdv(H_AT, c, 2, get2, NULL), val, 24);
    EXPECT_INT(24, c, "STRLEN", "s:crlf");
    const char *del[] = {"DEL", key, "s:crlf"};
    size_t dell[] = {3, klen, 6};
    h_expect_int(H_AT, h_cmdv(H_AT, c, 3, del, dell), 2);
    eddy_free(c);
}

/* The value cache (docs/STORAGE.md) answers GET from memory: after every kind of write
 * (SET and its options, APPEND, INCR, MSET, DEL, GETDEL, EXPIRE, a function call,
 * FLUSHALL) the next GET sees the new state. */
static void t_value_cache_coherent(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SET", "s:vc", "a");
    EXPECT_BULK("a", c, "GET", "s:vc");
    EXPECT_BULK("a", c, "GET", "s:vc");
    EXPECT_OK(c, "SET", "s:vc", "bb");
    EXPECT_BULK("bb", c, "GET", "s:vc");
    EXPECT_INT(3, c, "APPEND", "s:vc", "c");
    EXPECT_BULK("bbc", c, "GET", "s:vc");
    EXPECT_INT(3, c, "SETRANGE", "s:vc", "0", "x");
    EXPECT_BULK("xbc", c, "GET", "s:vc");
    EXPECT_OK(c, "MSET", "s:vc", "m1", "s:vc2", "m2");
    EXPECT_BULK("m1", c, "GET", "s:vc");
    EXPECT_BULK("m2", c, "GET", "s:vc2");
    EXPECT_INT(1, c, "DEL", "s:vc2");
    EXPECT_NIL(c, "GET", "s:vc2");
    EXPECT_BULK("m1", c, "GETDEL", "s:vc");
    EXPECT_NIL(c, "GET", "s:vc");
    EXPECT_INT(1, c, "INCR", "s:vcn");
    EXPECT_BULK("1", c, "GET", "s:vcn");
    EXPECT_INT(11, c, "INCRBY", "s:vcn", "10");
    EXPECT_BULK("11", c, "GET", "s:vcn");
    EXPECT_INT(10, c, "DECR", "s:vcn");
    EXPECT_BULK("10", c, "GET", "s:vcn");
    /* Expiry: PEXPIRE on a cached key, SET with PX. */
    EXPECT_INT(1, c, "PEXPIRE", "s:vcn", "50");
    EXPECT_OK(c, "SET", "s:vc", "t", "PX", "50");
    EXPECT_BULK("t", c, "GET", "s:vc");
    h_sleep_ms(120);
    EXPECT_NIL(c, "GET", "s:vcn");
    EXPECT_NIL(c, "GET", "s:vc");
    EXPECT_OK(c, "SET", "s:vc", "p", "EX", "100");
    EXPECT_BULK("p", c, "GET", "s:vc");
    EXPECT_INT(1, c, "PERSIST", "s:vc");
    EXPECT_INT(-1, c, "TTL", "s:vc");
    EXPECT_BULK("p", c, "GET", "s:vc");
    /* A function call's writes (a transaction). */
    EXPECT_BULK("vcache", c, "FUNCTION", "LOAD", "REPLACE",
                "#!lua name=vcache\n"
                "redis.register_function('vc_set', function(keys, args)\n"
                "  redis.call('SET', keys[1], args[1]) return 1 end)\n"
                "redis.register_function('vc_del', function(keys, args)\n"
                "  return redis.call('DEL', keys[1]) end)\n");
    EXPECT_INT(1, c, "FCALL", "vc_set", "1", "s:vc", "from-fcall");
    EXPECT_BULK("from-fcall", c, "GET", "s:vc");
    EXPECT_INT(1, c, "FCALL", "vc_del", "1", "s:vc");
    EXPECT_NIL(c, "GET", "s:vc");
    /* A call reads cached keys through the cache, but its own writes from its
     * transaction, also where the cache still has the value from before it. */
    EXPECT_OK(c, "SET", "s:vc", "old");
    EXPECT_BULK("old", c, "GET", "s:vc");
    EXPECT_BULK("old", c, "EVAL", "return redis.call('GET', KEYS[1])", "1", "s:vc");
    EXPECT_BULK("old|new", c, "EVAL",
                "local a = redis.call('GET', KEYS[1])\n"
                "redis.call('SET', KEYS[1], 'new')\n"
                "return a .. '|' .. redis.call('GET', KEYS[1])", "1", "s:vc");
    EXPECT_BULK("new", c, "GET", "s:vc");
    EXPECT_INT(1, c, "EVAL",
               "redis.call('DEL', KEYS[1])\n"
               "if redis.call('GET', KEYS[1]) == false then return 1 end return 0", "1", "s:vc");
    EXPECT_NIL(c, "GET", "s:vc");
    EXPECT_OK(c, "SET", "s:vcn", "5");
    EXPECT_BULK("5", c, "GET", "s:vcn");
    EXPECT_INT(7, c, "EVAL",
               "redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[1])", "1", "s:vcn");
    EXPECT_BULK("7", c, "GET", "s:vcn");
    EXPECT_INT(1, c, "DEL", "s:vcn");
    EXPECT_OK(c, "FUNCTION", "DELETE", "vcache");
    /* FLUSHALL. */
    EXPECT_OK(c, "SET", "s:vc", "f");
    EXPECT_BULK("f", c, "GET", "s:vc");
    EXPECT_OK(c, "FLUSHALL");
    EXPECT_NIL(c, "GET", "s:vc");
    eddy_free(c);
}

void suite_strings(void)
{
    h_run("get_set", t_get_set, 0, 10);
    h_run("set_ex_px_exat_pxat_keepttl", t_set_expire_options, 0, 10);
    h_run("set_nx_xx_get", t_set_nx_xx_get, 0, 10);
    h_run("set_invalid_combinations", t_set_invalid, 0, 10);
    h_run("getdel_getex", t_getdel_getex, 0, 10);
    h_run("setnx_setex_psetex", t_setnx_setex_psetex, 0, 10);
    h_run("mget_mset_msetnx", t_mget_mset_msetnx, 0, 10);
    h_run("incr_decr_overflow", t_incr_decr, 0, 10);
    h_run("incrbyfloat", t_incrbyfloat, 0, 10);
    h_run("incrbyfloat_doc_example_10_6", t_incrbyfloat_doc_example, 0, 10);
    h_run("incrbyfloat_infinite_increment", t_incrbyfloat_inf, 0, 10);
    h_run("append_strlen", t_append_strlen, 0, 10);
    h_run("getrange_setrange", t_getrange_setrange, 0, 10);
    h_run("binary_keys_and_values", t_binary_keys_values, 0, 10);
    h_run("value_cache_coherent", t_value_cache_coherent, 0, 10);
}
