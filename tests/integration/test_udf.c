/* test_udf.c - Lua functions and scripts (issue 3): every FUNCTION, FCALL, EVAL and
 * SCRIPT command with Redis 7's replies and errors; the redis.* and eddy.* APIs inside
 * Lua; the Lua <-> RESP2/RESP3 conversions; libraries and scripts surviving a restart;
 * the sandbox against hostile code (loops, memory bombs, patterns, finalizers,
 * recursion, bytecode, globals); preemption (other clients are served during a long
 * call), FUNCTION/SCRIPT KILL and timeouts discarding writes; and transactions under
 * concurrency (50 x 1,000 increments, transfers observed by read-only totals).
 * Tests on the shared server flush the function registry they use; tests that change
 * limits, restart or need one thread start their own server (H_OWN). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RO_WRITE_ERR "ERR Write commands are not allowed from read-only scripts."
#define RO_FLAG_ERR "ERR Can not execute a script with write flag using *_ro command."
#define NOSCRIPT_ERR "NOSCRIPT No matching script. Please use EVAL."

/* ---- Helpers ------------------------------------------------------------------------------ */

static eddy_ctx *connect_proto(int port, int proto)
{
    eddy_ctx *c = h_connect_port(port);
    if (proto == 3 && eddy_hello(c, 3) != EDDY_OK)
        FAILF("HELLO 3 failed: %s", eddy_errstr(c));
    return c;
}

/* Queues and sends a command without reading its reply. */
static void send_cmd(eddy_ctx *c, const char *arg, ...)
{
    const char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL && argc < 64; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    if (eddy_append_argv(c, argc, argv, NULL) != EDDY_OK || eddy_flush(c) != EDDY_OK)
        FAILF("cannot send %s: %s", argv[0], eddy_errstr(c));
}

static struct eddy_reply *read_reply(const char *file, int line, eddy_ctx *c)
{
    struct eddy_reply *r;
    if (eddy_get_reply(c, &r) != EDDY_OK)
        h_fail(file, line, "no reply: %s (%s)", eddy_strerror(eddy_err(c)), eddy_errstr(c));
    return r;
}
#define READ_REPLY(c) read_reply(H_AT, (c))

/* Fails unless r is an error starting with prefix and containing has (if not NULL). */
static void expect_err_has(const char *file, int line, struct eddy_reply *r, const char *prefix,
                           const char *has)
{
    bool ok = r->type == EDDY_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0 &&
              (has == NULL || strstr(r->str, has) != NULL);
    if (!ok) {
        char got[320];
        snprintf(got, sizeof(got), "%s", h_describe(r));
        eddy_reply_free(r);
        h_fail(file, line, "%s: expected an error \"%s...%s\", got %s", h_last_cmd(), prefix,
               has ? has : "", got);
    }
    eddy_reply_free(r);
}
#define EXPECT_ERR_HAS(prefix, has, c, ...) expect_err_has(H_AT, CMD(c, __VA_ARGS__), (prefix), (has))

static bool is_str(const struct eddy_reply *r, const char *s)
{
    return r != NULL &&
           (r->type == EDDY_REPLY_STRING || r->type == EDDY_REPLY_STATUS ||
            r->type == EDDY_REPLY_VERB) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* The value of key in a RESP3 map or a RESP2 flat array of pairs; NULL if absent. */
static const struct eddy_reply *kv(const struct eddy_reply *r, const char *key)
{
    if (r == NULL || (r->type != EDDY_REPLY_MAP && r->type != EDDY_REPLY_ARRAY))
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (is_str(r->element[i], key))
            return r->element[i + 1];
    return NULL;
}

static const struct eddy_reply *kv_must(const char *file, int line, const struct eddy_reply *r,
                                        const char *key)
{
    const struct eddy_reply *v = kv(r, key);
    if (v == NULL)
        h_fail(file, line, "no field \"%s\" in %s", key, h_describe(r));
    return v;
}
#define KV(r, key) kv_must(H_AT, (r), (key))

static void check_elem_int(const char *file, int line, const struct eddy_reply *r, size_t i,
                           long long want)
{
    if (r->type != EDDY_REPLY_ARRAY || i >= r->elements)
        h_fail(file, line, "element %zu of %s", i, h_describe(r));
    const struct eddy_reply *e = r->element[i];
    if (e->type != EDDY_REPLY_INTEGER || e->integer != want)
        h_fail(file, line, "element %zu is %s, expected integer %lld", i, h_describe(e), want);
}
#define ELEM_INT(r, i, want) check_elem_int(H_AT, (r), (i), (want))

static void check_elem_str(const char *file, int line, const struct eddy_reply *r, size_t i,
                           const char *want)
{
    if (r->type != EDDY_REPLY_ARRAY || i >= r->elements)
        h_fail(file, line, "element %zu of %s", i, h_describe(r));
    if (!is_str(r->element[i], want))
        h_fail(file, line, "element %zu is %s, expected \"%s\"", i, h_describe(r->element[i]),
               want);
}
#define ELEM_STR(r, i, want) check_elem_str(H_AT, (r), (i), (want))

static struct eddy_reply *expect_array(const char *file, int line, struct eddy_reply *r,
                                       size_t n)
{
    if (r->type != EDDY_REPLY_ARRAY || r->elements != n)
        h_fail(file, line, "%s: expected an array of %zu, got %s", h_last_cmd(), n,
               h_describe(r));
    return r;
}
#define EXPECT_ARRAY(n, c, ...) expect_array(H_AT, CMD(c, __VA_ARGS__), (n))

static void load_lib(const char *file, int line, eddy_ctx *c, const char *name, const char *code)
{
    h_expect_bulk(file, line, h_cmd(file, line, c, "FUNCTION", "LOAD", "REPLACE", code, (char *)NULL),
                  name, strlen(name));
}
#define LOAD_LIB(c, name, code) load_lib(H_AT, (c), (name), (code))

/* Round trip of a PING in ms (fails unless PONG). */
static int64_t ping_ms(const char *file, int line, eddy_ctx *c)
{
    int64_t t0 = h_now_ms();
    h_expect_status(file, line, h_cmd(file, line, c, "PING", (char *)NULL), "PONG");
    return h_now_ms() - t0;
}
#define PING_MS(c) ping_ms(H_AT, (c))

/* Waits for every helper process; fails unless all exited with 0. */
static void wait_helpers(pid_t *pids, int n, const char *what)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    if (bad)
        FAILF("%d of %d %s failed (see stderr)", bad, n, what);
}

/* ---- FUNCTION LOAD and its errors ------------------------------------------------------------ */

#define LIB_UT                                                                                 \
    "#!lua name=ut\n"                                                                          \
    "local function incr(keys, args) return redis.call('INCR', keys[1]) end\n"                 \
    "redis.register_function('ut_incr', incr)\n"                                               \
    "redis.register_function{function_name='ut_get', callback=function(keys)\n"                \
    "  return redis.call('GET', keys[1]) end, flags={'no-writes'}}\n"                          \
    "redis.register_function{function_name='ut_bad_ro', callback=function(keys)\n"             \
    "  return redis.call('SET', keys[1], 'x') end, flags={'no-writes'}}\n"                     \
    "redis.register_function{function_name='ut_eddy_ro', callback=function(keys)\n"            \
    "  return eddy.set(keys[1], 'x') end, flags={'no-writes'}}\n"                              \
    "redis.register_function('ut_echo', function(keys, args) return {#keys, #args, keys, args} end)\n" \
    "redis.register_function{function_name='ut_flags', callback=function() return 1 end,\n"    \
    "  flags={'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}}\n"           \
    "redis.register_function('ut_fail', function() local x = nil; return x.y end)\n"

static void t_function_load_errors(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    EXPECT_BULK("ut", c, "FUNCTION", "LOAD", LIB_UT);
    EXPECT_ERR("ERR Library 'ut' already exists", c, "FUNCTION", "LOAD", LIB_UT);
    EXPECT_BULK("ut", c, "FUNCTION", "LOAD", "REPLACE", LIB_UT);
    EXPECT_BULK("ut", c, "function", "load", "replace", LIB_UT);
    /* Metadata. */
    EXPECT_ERR("ERR Missing library metadata", c, "FUNCTION", "LOAD",
               "redis.register_function('x', function() end)");
    EXPECT_ERR("ERR Missing library metadata", c, "FUNCTION", "LOAD", "");
    EXPECT_ERR("ERR Library name was not given", c, "FUNCTION", "LOAD",
               "#!lua\nredis.register_function('x', function() end)");
    EXPECT_ERR_PREFIX("ERR Engine 'py' not found", c, "FUNCTION", "LOAD",
                      "#!py name=x\nreturn 1");
    EXPECT_ERR_PREFIX("ERR Invalid metadata value given", c, "FUNCTION", "LOAD",
                      "#!lua name=x foo=bar\nredis.register_function('x', function() end)");
    EXPECT_ERR_PREFIX("ERR Library names can only contain letters, numbers, or underscores", c,
                      "FUNCTION", "LOAD", "#!lua name=a-b\nredis.register_function('x', function() end)");
    /* Another library may not take one of ut's function names. */
    EXPECT_ERR("ERR Function ut_incr already exists", c, "FUNCTION", "LOAD",
               "#!lua name=other\nredis.register_function('ut_incr', function() return 2 end)");
    EXPECT_ERR("ERR No functions registered", c, "FUNCTION", "LOAD", "#!lua name=empty\nlocal x = 1");
    EXPECT_ERR_PREFIX("ERR Error compiling function", c, "FUNCTION", "LOAD",
                      "#!lua name=syn\nthis is not lua(");
    EXPECT_ERR_HAS("ERR Error registering functions: ", "boom", c, "FUNCTION", "LOAD",
                   "#!lua name=rt\nerror('boom')");
    EXPECT_ERR_HAS("ERR Error registering functions: ", "Function already exists in the library",
                   c, "FUNCTION", "LOAD",
                   "#!lua name=dup\nredis.register_function('d', function() end)\n"
                   "redis.register_function('d', function() end)");
    EXPECT_ERR_HAS("ERR Error registering functions: ", "unknown flag given", c, "FUNCTION",
                   "LOAD",
                   "#!lua name=fl\nredis.register_function{function_name='f', callback=function() end, "
                   "flags={'no-such-flag'}}");
    EXPECT_ERR_HAS("ERR Error registering functions: ", "Function names can only contain", c,
                   "FUNCTION", "LOAD", "#!lua name=bn\nredis.register_function('a b', function() end)");
    EXPECT_ERR_HAS("ERR Error registering functions: ", "must be a function", c, "FUNCTION",
                   "LOAD", "#!lua name=nf\nredis.register_function('f', 42)");
    /* Loading runs with no data access and a timeout. */
    EXPECT_ERR_HAS("ERR Error registering functions: ", NULL, c, "FUNCTION", "LOAD",
                   "#!lua name=calls\nredis.call('SET', 'k', 'v')\nredis.register_function('f', function() end)");
    /* register_function outside FUNCTION LOAD. */
    EXPECT_ERR_HAS("ERR ", "redis.register_function can only be called on FUNCTION LOAD", c,
                   "EVAL", "redis.register_function('zz', function() end)", "0");
    EXPECT_ERR_PREFIX("ERR Unknown option given", c, "FUNCTION", "LOAD", "NOPE", LIB_UT);
    /* None of the failures left a library behind. */
    struct eddy_reply *r = EXPECT_ARRAY(1, c, "FUNCTION", "LIST");
    CHECK(is_str(KV(r->element[0], "library_name"), "ut"));
    eddy_reply_free(r);
    /* The library works; REPLACE switches the code atomically. */
    EXPECT_INT(0, c, "DEL", "udf:ctr");
    EXPECT_INT(1, c, "FCALL", "ut_incr", "1", "udf:ctr");
    EXPECT_BULK("ut2", c, "FUNCTION", "LOAD",
                "#!lua name=ut2\nredis.register_function('ut2_f', function() return 'v1' end)");
    EXPECT_BULK("v1", c, "FCALL", "ut2_f", "0");
    EXPECT_BULK("ut2", c, "FUNCTION", "LOAD", "REPLACE",
                "#!lua name=ut2\nredis.register_function('ut2_f', function() return 'v2' end)\n"
                "redis.register_function('ut2_g', function() return 'g' end)");
    EXPECT_BULK("v2", c, "FCALL", "ut2_f", "0");
    EXPECT_BULK("g", c, "FCALL", "ut2_g", "0");
    /* REPLACE dropping a function removes it. */
    EXPECT_BULK("ut2", c, "FUNCTION", "LOAD", "REPLACE",
                "#!lua name=ut2\nredis.register_function('ut2_g', function() return 'g2' end)");
    EXPECT_ERR("ERR Function not found", c, "FCALL", "ut2_f", "0");
    EXPECT_BULK("g2", c, "FCALL", "ut2_g", "0");
    EXPECT_INT(1, c, "DEL", "udf:ctr");
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    eddy_free(c);
}

/* A library that loops while loading is stopped after 500 ms, with Redis's reply. */
static void t_function_load_timeout(void)
{
    eddy_ctx *c = h_connect();
    int64_t t0 = h_now_ms();
    EXPECT_ERR_HAS("ERR Error registering functions: ", "FUNCTION LOAD timeout", c, "FUNCTION",
                   "LOAD", "#!lua name=slow\nwhile true do end");
    EXPECT_ERR_HAS("ERR Error registering functions: ", "FUNCTION LOAD timeout", c, "FUNCTION",
                   "LOAD", "#!lua name=slow2\nlocal ok = pcall(function() while true do end end)\n"
                   "redis.register_function('f', function() end)");
    CHECK(h_now_ms() - t0 < 5000);
    EXPECT_ARRAY(0, c, "FUNCTION", "LIST", "LIBRARYNAME", "slow*");
    eddy_free(c);
}

/* ---- LIST, DELETE, FLUSH, STATS, KILL -------------------------------------------------------- */

static void check_list_ut(const struct eddy_reply *lib, bool withcode, int proto)
{
    CHECK(lib->type == (proto == 3 ? EDDY_REPLY_MAP : EDDY_REPLY_ARRAY));
    CHECK_EQ_INT(lib->elements, withcode ? 8 : 6);
    CHECK(is_str(lib->element[0], "library_name"));
    CHECK(is_str(KV(lib, "library_name"), "ut"));
    CHECK(is_str(KV(lib, "engine"), "LUA"));
    const struct eddy_reply *fns = KV(lib, "functions");
    CHECK(fns->type == EDDY_REPLY_ARRAY);
    CHECK_EQ_INT(fns->elements, 7);
    int seen = 0;
    for (size_t i = 0; i < fns->elements; i++) {
        const struct eddy_reply *f = fns->element[i];
        CHECK(f->type == (proto == 3 ? EDDY_REPLY_MAP : EDDY_REPLY_ARRAY));
        CHECK(KV(f, "description")->type == EDDY_REPLY_NIL);
        const struct eddy_reply *name = KV(f, "name"), *flags = KV(f, "flags");
        CHECK(flags->type == (proto == 3 ? EDDY_REPLY_SET : EDDY_REPLY_ARRAY));
        if (is_str(name, "ut_incr")) {
            CHECK_EQ_INT(flags->elements, 0);
            seen |= 1;
        } else if (is_str(name, "ut_get")) {
            CHECK_EQ_INT(flags->elements, 1);
            CHECK(is_str(flags->element[0], "no-writes"));
            seen |= 2;
        } else if (is_str(name, "ut_flags")) {
            CHECK_EQ_INT(flags->elements, 4);
            const char *want[] = {"allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"};
            for (int w = 0; w < 4; w++) {
                bool found = false;
                for (size_t j = 0; j < flags->elements; j++)
                    found |= is_str(flags->element[j], want[w]);
                if (!found)
                    FAILF("flag %s missing from ut_flags", want[w]);
            }
            seen |= 4;
        }
    }
    CHECK_EQ_INT(seen, 7);
    const struct eddy_reply *code = kv(lib, "library_code");
    if (withcode)
        CHECK(code != NULL && is_str(code, LIB_UT));
    else
        CHECK(code == NULL);
}

static void t_function_list(void)
{
    for (int proto = 2; proto <= 3; proto++) {
        eddy_ctx *c = connect_proto(h_port, proto);
        EXPECT_OK(c, "FUNCTION", "FLUSH");
        EXPECT_ARRAY(0, c, "FUNCTION", "LIST");
        LOAD_LIB(c, "ut", LIB_UT);
        LOAD_LIB(c, "other_lib", "#!lua name=other_lib\nredis.register_function('o1', function() return 1 end)");
        struct eddy_reply *r = EXPECT_ARRAY(2, c, "FUNCTION", "LIST");
        eddy_reply_free(r);
        r = EXPECT_ARRAY(1, c, "FUNCTION", "LIST", "LIBRARYNAME", "u*");
        check_list_ut(r->element[0], false, proto);
        eddy_reply_free(r);
        r = EXPECT_ARRAY(1, c, "FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "ut");
        check_list_ut(r->element[0], true, proto);
        eddy_reply_free(r);
        r = EXPECT_ARRAY(1, c, "function", "list", "libraryname", "*_lib", "withcode");
        CHECK(is_str(KV(r->element[0], "library_name"), "other_lib"));
        CHECK(is_str(KV(r->element[0], "library_code"),
                     "#!lua name=other_lib\nredis.register_function('o1', function() return 1 end)"));
        eddy_reply_free(r);
        EXPECT_ARRAY(0, c, "FUNCTION", "LIST", "LIBRARYNAME", "nomatch*");
        EXPECT_ERR_PREFIX("ERR ", c, "FUNCTION", "LIST", "BOGUS");
        EXPECT_ERR_PREFIX("ERR ", c, "FUNCTION", "LIST", "LIBRARYNAME");
        EXPECT_OK(c, "FUNCTION", "FLUSH");
        eddy_free(c);
    }
}

static void t_function_delete_flush(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    LOAD_LIB(c, "ut", LIB_UT);
    LOAD_LIB(c, "l2", "#!lua name=l2\nredis.register_function('l2f', function() return 2 end)");
    EXPECT_INT(2, c, "FCALL", "l2f", "0");
    EXPECT_ERR("ERR Library not found", c, "FUNCTION", "DELETE", "nosuchlib");
    EXPECT_OK(c, "FUNCTION", "DELETE", "l2");
    EXPECT_ERR("ERR Function not found", c, "FCALL", "l2f", "0");
    EXPECT_ERR("ERR Library not found", c, "FUNCTION", "DELETE", "l2");
    EXPECT_ERR_PREFIX("ERR unknown subcommand or wrong number of arguments", c, "FUNCTION",
                      "DELETE");
    struct eddy_reply *r = EXPECT_ARRAY(1, c, "FUNCTION", "LIST");
    eddy_reply_free(r);
    /* l2's function name is free again. */
    LOAD_LIB(c, "l3", "#!lua name=l3\nredis.register_function('l2f', function() return 3 end)");
    EXPECT_INT(3, c, "FCALL", "l2f", "0");
    EXPECT_OK(c, "FUNCTION", "FLUSH", "ASYNC");
    EXPECT_ARRAY(0, c, "FUNCTION", "LIST");
    EXPECT_ERR("ERR Function not found", c, "FCALL", "ut_incr", "1", "k");
    LOAD_LIB(c, "ut", LIB_UT);
    EXPECT_OK(c, "FUNCTION", "FLUSH", "SYNC");
    EXPECT_ARRAY(0, c, "FUNCTION", "LIST");
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    EXPECT_ERR_PREFIX("ERR FUNCTION FLUSH only supports SYNC|ASYNC", c, "FUNCTION", "FLUSH", "NOW");
    EXPECT_ERR_PREFIX("ERR unknown subcommand", c, "FUNCTION", "NOSUCH");
    eddy_free(c);
}

static void t_function_dump_restore(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    LOAD_LIB(c, "ut", LIB_UT);
    LOAD_LIB(c, "l2", "#!lua name=l2\nredis.register_function('l2f', function() return 2 end)");
    struct eddy_reply *d = CMD(c, "FUNCTION", "DUMP");
    CHECK(d->type == EDDY_REPLY_STRING && d->len > 20);
    size_t dn = d->len;
    char *dump = malloc(dn);
    CHECK(dump != NULL);
    memcpy(dump, d->str, dn);
    eddy_reply_free(d);
    const char *rargv[4] = {"FUNCTION", "RESTORE", dump, NULL};
    size_t rlen[4] = {8, 7, dn, 0};

    /* APPEND (the default) onto existing libraries with the same names fails whole. */
    expect_err_has(H_AT, h_cmdv(H_AT, c, 3, rargv, rlen), "ERR Library ", "already exists");
    rargv[3] = "APPEND";
    rlen[3] = 6;
    expect_err_has(H_AT, h_cmdv(H_AT, c, 4, rargv, rlen), "ERR Library ", "already exists");
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    h_expect_status(H_AT, h_cmdv(H_AT, c, 3, rargv, rlen), "OK");
    EXPECT_INT(2, c, "FCALL", "l2f", "0");
    struct eddy_reply *r = EXPECT_ARRAY(2, c, "FUNCTION", "LIST");
    eddy_reply_free(r);
    /* REPLACE overwrites same-named libraries and keeps the others. */
    LOAD_LIB(c, "l2", "#!lua name=l2\nredis.register_function('l2f', function() return 22 end)");
    LOAD_LIB(c, "l4", "#!lua name=l4\nredis.register_function('l4f', function() return 4 end)");
    rargv[3] = "REPLACE";
    rlen[3] = 7;
    h_expect_status(H_AT, h_cmdv(H_AT, c, 4, rargv, rlen), "OK");
    EXPECT_INT(2, c, "FCALL", "l2f", "0");
    EXPECT_INT(4, c, "FCALL", "l4f", "0");
    /* FLUSH drops everything first. */
    rargv[3] = "flush";
    rlen[3] = 5;
    h_expect_status(H_AT, h_cmdv(H_AT, c, 4, rargv, rlen), "OK");
    EXPECT_ERR("ERR Function not found", c, "FCALL", "l4f", "0");
    r = EXPECT_ARRAY(2, c, "FUNCTION", "LIST");
    eddy_reply_free(r);
    rargv[3] = "SOMETIMES";
    rlen[3] = 9;
    EXPECT_ERR_PREFIX("ERR Wrong restore policy given", c, "FUNCTION", "RESTORE", dump, "SOMETIMES");
    /* A corrupted payload changes nothing. */
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    dump[dn / 2] ^= 0x20;
    expect_err_has(H_AT, h_cmdv(H_AT, c, 3, rargv, rlen), "ERR DUMP payload version or checksum are wrong",
                   NULL);
    dump[dn / 2] ^= 0x20;
    rlen[2] = dn - 1;
    expect_err_has(H_AT, h_cmdv(H_AT, c, 3, rargv, rlen), "ERR DUMP payload version or checksum are wrong",
                   NULL);
    EXPECT_ERR("ERR DUMP payload version or checksum are wrong", c, "FUNCTION", "RESTORE", "garbage");
    EXPECT_ERR("ERR DUMP payload version or checksum are wrong", c, "FUNCTION", "RESTORE", "");
    EXPECT_ARRAY(0, c, "FUNCTION", "LIST");
    /* An empty dump restores to nothing. */
    d = CMD(c, "FUNCTION", "DUMP");
    CHECK(d->type == EDDY_REPLY_STRING);
    const char *eargv[] = {"FUNCTION", "RESTORE", d->str};
    size_t elen[] = {8, 7, d->len};
    h_expect_status(H_AT, h_cmdv(H_AT, c, 3, eargv, elen), "OK");
    eddy_reply_free(d);
    EXPECT_ARRAY(0, c, "FUNCTION", "LIST");
    free(dump);
    eddy_free(c);
}

static void t_function_stats_kill_idle(void)
{
    for (int proto = 2; proto <= 3; proto++) {
        eddy_ctx *c = connect_proto(h_port, proto);
        EXPECT_OK(c, "FUNCTION", "FLUSH");
        LOAD_LIB(c, "ut", LIB_UT);
        struct eddy_reply *r = CMD(c, "FUNCTION", "STATS");
        CHECK(r->type == (proto == 3 ? EDDY_REPLY_MAP : EDDY_REPLY_ARRAY));
        CHECK(KV(r, "running_script")->type == EDDY_REPLY_NIL);
        const struct eddy_reply *lua = KV(KV(r, "engines"), "LUA");
        CHECK_EQ_INT(KV(lua, "libraries_count")->integer, 1);
        CHECK_EQ_INT(KV(lua, "functions_count")->integer, 7);
        eddy_reply_free(r);
        EXPECT_ERR("NOTBUSY No scripts in execution right now.", c, "FUNCTION", "KILL");
        EXPECT_ERR("NOTBUSY No scripts in execution right now.", c, "SCRIPT", "KILL");
        EXPECT_OK(c, "FUNCTION", "FLUSH");
        eddy_free(c);
    }
}

/* ---- FCALL and FCALL_RO -------------------------------------------------------------------------- */

static void t_fcall(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    LOAD_LIB(c, "ut", LIB_UT);
    EXPECT_INT(0, c, "DEL", "udf:f");
    EXPECT_INT(1, c, "FCALL", "ut_incr", "1", "udf:f");
    EXPECT_INT(2, c, "fcall", "ut_incr", "1", "udf:f");
    EXPECT_BULK("2", c, "FCALL", "ut_get", "1", "udf:f");
    EXPECT_BULK("2", c, "FCALL_RO", "ut_get", "1", "udf:f");
    EXPECT_NIL(c, "FCALL_RO", "ut_get", "1", "udf:missing");
    /* Keys and arguments. */
    struct eddy_reply *r = EXPECT_ARRAY(4, c, "FCALL", "ut_echo", "2", "k1", "k2", "a1", "a2", "a3");
    ELEM_INT(r, 0, 2);
    ELEM_INT(r, 1, 3);
    ELEM_STR(r->element[2], 1, "k2");
    ELEM_STR(r->element[3], 2, "a3");
    eddy_reply_free(r);
    r = EXPECT_ARRAY(4, c, "FCALL", "ut_echo", "0");
    ELEM_INT(r, 0, 0);
    ELEM_INT(r, 1, 0);
    eddy_reply_free(r);
    /* Flags and read-only calls. */
    EXPECT_ERR(RO_FLAG_ERR, c, "FCALL_RO", "ut_incr", "1", "udf:f");
    EXPECT_ERR_HAS(RO_WRITE_ERR, "ut.ut_bad_ro", c, "FCALL", "ut_bad_ro", "1", "udf:f");
    EXPECT_ERR_HAS(RO_WRITE_ERR, NULL, c, "FCALL_RO", "ut_bad_ro", "1", "udf:f");
    EXPECT_ERR_HAS("ERR ", "Write commands are not allowed from read-only scripts", c, "FCALL",
                   "ut_eddy_ro", "1", "udf:f");
    EXPECT_BULK("2", c, "GET", "udf:f");
    EXPECT_INT(1, c, "FCALL", "ut_flags", "0");
    /* Errors name the library, function and line. */
    EXPECT_ERR_HAS("ERR user_function:13: attempt to index a nil value",
                   "script: ut.ut_fail, on @user_function:13.", c, "FCALL", "ut_fail", "0");
    EXPECT_ERR("ERR Function not found", c, "FCALL", "nosuch", "0");
    EXPECT_ERR("ERR Function not found", c, "FCALL_RO", "nosuch", "0");
    /* numkeys. */
    EXPECT_ERR("ERR Number of keys can't be greater than number of args", c, "FCALL", "ut_incr",
               "2", "k");
    EXPECT_ERR("ERR Number of keys can't be negative", c, "FCALL", "ut_incr", "-1");
    EXPECT_ERR_PREFIX("ERR wrong number of arguments", c, "FCALL", "ut_incr");
    EXPECT_ERR_PREFIX("ERR wrong number of arguments", c, "FCALL_RO", "ut_get");
    EXPECT_INT(1, c, "DEL", "udf:f");
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    eddy_free(c);
}

/* Redis 7 answers a numkeys that is not a number differently for FCALL than for EVAL. */
static void t_fcall_numkeys_not_integer(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_ERR("ERR value is not an integer or out of range", c, "EVAL", "return 1", "x");
    EXPECT_ERR("ERR Bad number of keys provided", c, "FCALL", "ut_incr", "x");
    EXPECT_ERR("ERR Bad number of keys provided", c, "FCALL_RO", "ut_get", "1.5");
    eddy_free(c);
}

/* ---- EVAL, EVALSHA, SCRIPT -------------------------------------------------------------------- */

static void t_eval_script(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SCRIPT", "FLUSH");
    EXPECT_INT(0, c, "DEL", "udf:e");
    EXPECT_INT(1, c, "EVAL", "return 1", "0");
    struct eddy_reply *r = EXPECT_ARRAY(3, c, "EVAL", "return {KEYS[1], ARGV[1], #ARGV}", "1",
                                        "key", "a1", "a2");
    ELEM_STR(r, 0, "key");
    ELEM_STR(r, 1, "a1");
    ELEM_INT(r, 2, 2);
    eddy_reply_free(r);
    EXPECT_BULK("e0e1f9fabfc9d4800c877a703b823ac0578ff8db", c, "SCRIPT", "LOAD", "return 1");
    EXPECT_INT(1, c, "EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0");
    EXPECT_INT(1, c, "EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0");
    EXPECT_INT(1, c, "EVALSHA_RO", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0");
    EXPECT_ERR(NOSCRIPT_ERR, c, "EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0");
    EXPECT_ERR(NOSCRIPT_ERR, c, "EVALSHA", "abc", "0");
    EXPECT_ERR(NOSCRIPT_ERR, c, "EVALSHA_RO", "ffffffffffffffffffffffffffffffffffffffff", "0");
    /* EVAL caches the script: its SHA-1 works afterwards. */
    const char *incr = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    char *sha = CMD_TEXT(c, "SCRIPT", "LOAD", incr);
    CHECK_EQ_INT(strlen(sha), 40);
    EXPECT_OK(c, "SCRIPT", "FLUSH");
    EXPECT_ERR(NOSCRIPT_ERR, c, "EVALSHA", sha, "1", "udf:e", "5");
    EXPECT_INT(5, c, "EVAL", incr, "1", "udf:e", "5");
    EXPECT_INT(10, c, "EVALSHA", sha, "1", "udf:e", "5");
    r = EXPECT_ARRAY(3, c, "SCRIPT", "EXISTS", sha, "ffffffffffffffffffffffffffffffffffffffff",
                     "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    ELEM_INT(r, 0, 1);
    ELEM_INT(r, 1, 0);
    ELEM_INT(r, 2, 0);
    eddy_reply_free(r);
    /* Read-only variants. */
    EXPECT_ERR_HAS(RO_WRITE_ERR, NULL, c, "EVAL_RO", incr, "1", "udf:e", "1");
    EXPECT_ERR_HAS(RO_WRITE_ERR, NULL, c, "EVALSHA_RO", sha, "1", "udf:e", "1");
    EXPECT_BULK("10", c, "EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "udf:e");
    EXPECT_BULK("10", c, "GET", "udf:e");
    /* Shebang flags in scripts. */
    EXPECT_ERR_HAS(RO_WRITE_ERR, NULL, c, "EVAL",
                   "#!lua flags=no-writes\nreturn redis.call('SET', KEYS[1], 'x')", "1", "udf:e");
    EXPECT_BULK("10", c, "EVAL", "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])", "1",
                "udf:e");
    EXPECT_BULK("10", c, "EVAL_RO", "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])",
                "1", "udf:e");
    EXPECT_ERR_PREFIX("ERR Unexpected flag in script shebang", c, "EVAL",
                      "#!lua flags=bogus\nreturn 1", "0");
    EXPECT_ERR_PREFIX("ERR Error compiling script", c, "EVAL", "return (", "0");
    EXPECT_ERR_PREFIX("ERR Error compiling script", c, "SCRIPT", "LOAD", "x x x");
    /* numkeys. */
    EXPECT_ERR("ERR Number of keys can't be greater than number of args", c, "EVAL", "return 1",
               "2", "a");
    EXPECT_ERR("ERR Number of keys can't be negative", c, "EVAL", "return 1", "-1");
    EXPECT_ERR("ERR value is not an integer or out of range", c, "EVAL", "return 1", "x");
    EXPECT_ERR_PREFIX("ERR wrong number of arguments", c, "EVAL", "return 1");
    EXPECT_ERR_PREFIX("ERR wrong number of arguments", c, "EVALSHA", sha);
    /* Runtime errors name the script. */
    char want[128];
    snprintf(want, sizeof(want), "script: %s, on @user_script:1.", sha);
    EXPECT_ERR_HAS("ERR value is not an integer or out of range", want, c, "EVALSHA", sha, "1",
                   "udf:e", "notanumber");
    EXPECT_OK(c, "SCRIPT", "FLUSH", "ASYNC");
    EXPECT_OK(c, "SCRIPT", "FLUSH", "SYNC");
    EXPECT_ERR(NOSCRIPT_ERR, c, "EVALSHA", sha, "1", "udf:e", "5");
    r = EXPECT_ARRAY(1, c, "SCRIPT", "EXISTS", sha);
    ELEM_INT(r, 0, 0);
    eddy_reply_free(r);
    EXPECT_ERR_PREFIX("ERR unknown subcommand", c, "SCRIPT", "NOSUCH");
    EXPECT_INT(1, c, "DEL", "udf:e");
    free(sha);
    eddy_free(c);
}

/* A script with a shebang but no flags may write (only scripts without a shebang run in
 * the compatibility mode that decides per command): *_RO refuses it, as Redis 7 does. */
static void t_eval_ro_shebang_without_flags(void)
{
    eddy_ctx *c = h_connect();
    const char *s = "#!lua\nreturn redis.call('GET', KEYS[1])";
    EXPECT_NIL(c, "EVAL", s, "1", "udf:nokey");
    EXPECT_ERR(RO_FLAG_ERR, c, "EVAL_RO", s, "1", "udf:nokey");
    char *sha = CMD_TEXT(c, "SCRIPT", "LOAD", s);
    EXPECT_ERR(RO_FLAG_ERR, c, "EVALSHA_RO", sha, "1", "udf:nokey");
    free(sha);
    eddy_free(c);
}

/* ---- The redis.* API ------------------------------------------------------------------------------ */

static void t_redis_api(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "udf:a", "udf:s");
    EXPECT_OK(c, "SET", "udf:s", "text");
    /* call and pcall. */
    EXPECT_STATUS("OK", c, "EVAL", "return redis.call('SET', KEYS[1], 'v')", "1", "udf:a");
    EXPECT_BULK("v", c, "EVAL", "return redis.call('get', KEYS[1])", "1", "udf:a");
    EXPECT_INT(5, c, "EVAL", "return redis.call('INCRBY', 'udf:n', 5.0) + redis.call('DEL', 'udf:n') - 1", "0");
    EXPECT_ERR_HAS("ERR value is not an integer or out of range", "script:", c, "EVAL",
                   "return redis.call('INCR', KEYS[1])", "1", "udf:s");
    EXPECT_ERR("ERR value is not an integer or out of range", c, "EVAL",
               "return redis.pcall('INCR', KEYS[1])", "1", "udf:s");
    EXPECT_BULK("caught: ERR value is not an integer or out of range", c, "EVAL",
                "local r = redis.pcall('INCR', KEYS[1]); return 'caught: ' .. r.err", "1", "udf:s");
    EXPECT_BULK("ERR value is not an integer or out of range", c, "EVAL",
                "local ok, e = pcall(redis.call, 'INCR', KEYS[1]); return e", "1", "udf:s");
    EXPECT_ERR_HAS("ERR Unknown Redis command called from script", NULL, c, "EVAL",
                   "return redis.call('NOSUCHCMD')", "0");
    EXPECT_ERR_HAS("ERR This Redis command is not allowed from script", NULL, c, "EVAL",
                   "return redis.call('FLUSHALL')", "0");
    EXPECT_ERR_HAS("ERR This Redis command is not allowed from script", NULL, c, "EVAL",
                   "return redis.call('EVAL', 'return 1', 0)", "0");
    EXPECT_ERR_HAS("ERR ", "Please specify at least one argument for this redis lib call", c,
                   "EVAL", "return redis.call()", "0");
    EXPECT_ERR_HAS("ERR ", "Lua redis lib command arguments must be strings or integers", c,
                   "EVAL", "return redis.call('GET', {})", "0");
    EXPECT_ERR_HAS("ERR Wrong number of args calling Redis command from script", "script:", c,
                   "EVAL", "return redis.call('GET')", "0");
    /* error_reply, status_reply, and errors raised as tables. */
    EXPECT_ERR("MYERR custom failure", c, "EVAL", "return redis.error_reply('MYERR custom failure')", "0");
    EXPECT_ERR("ERR plain", c, "EVAL", "return redis.error_reply('ERR plain')", "0");
    EXPECT_STATUS("FINE", c, "EVAL", "return redis.status_reply('FINE')", "0");
    EXPECT_ERR_HAS("MYCODE raised", NULL, c, "EVAL", "error(redis.error_reply('MYCODE raised'))", "0");
    EXPECT_ERR_HAS("ERR user_script:1: plain error", "on @user_script:1.", c, "EVAL",
                   "error('plain error')", "0");
    /* sha1hex with the FIPS test vectors. */
    EXPECT_BULK("da39a3ee5e6b4b0d3255bfef95601890afd80709", c, "EVAL", "return redis.sha1hex('')", "0");
    EXPECT_BULK("a9993e364706816aba3e25717850c26c9cd0d89d", c, "EVAL", "return redis.sha1hex(ARGV[1])",
                "0", "abc");
    EXPECT_BULK("84983e441c3bd26ebaae4aa1f95129e5e54670f1", c, "EVAL", "return redis.sha1hex(ARGV[1])",
                "0", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "return redis.sha1hex()", "0");
    /* log and its levels. */
    EXPECT_NIL(c, "EVAL", "return redis.log(redis.LOG_WARNING, 'udf test', 'log line', 42)", "0");
    EXPECT_NIL(c, "EVAL", "redis.log(redis.LOG_DEBUG, 'd') redis.log(redis.LOG_VERBOSE, 'v') "
                          "redis.log(redis.LOG_NOTICE, 'n')", "0");
    EXPECT_ERR_HAS("ERR ", "Invalid debug level.", c, "EVAL", "redis.log(99, 'x')", "0");
    EXPECT_INT(1, c, "EVAL", "return (redis.LOG_DEBUG < redis.LOG_VERBOSE and "
                             "redis.LOG_VERBOSE < redis.LOG_NOTICE and "
                             "redis.LOG_NOTICE < redis.LOG_WARNING) and 1 or 0", "0");
    /* Versions. */
    char *v = CMD_TEXT(c, "EVAL", "return redis.REDIS_VERSION", "0");
    CHECK(strncmp(v, "7.", 2) == 0);
    free(v);
    EXPECT_INT(0x070000, c, "EVAL", "return redis.REDIS_VERSION_NUM", "0");
    EXPECT_INT(1, c, "EVAL", "return redis.replicate_commands() and 1 or 0", "0");
    EXPECT_NIL(c, "EVAL", "redis.set_repl(redis.REPL_ALL)", "0");
    /* setresp. */
    EXPECT_ERR_HAS("ERR ", "RESP version must be 2 or 3.", c, "EVAL", "redis.setresp(4)", "0");
    EXPECT_INT(2, c, "DEL", "udf:a", "udf:s");
    eddy_free(c);
}

/* ---- Conversions --------------------------------------------------------------------------- */

/* Lua -> RESP for a client speaking proto. */
static void conv_lua_to_resp(int proto)
{
    eddy_ctx *c = connect_proto(h_port, proto);
    EXPECT_INT(42, c, "EVAL", "return 42", "0");
    EXPECT_INT(-7, c, "EVAL", "return -7", "0");
    EXPECT_INT(3, c, "EVAL", "return 3.99", "0");
    EXPECT_INT(-3, c, "EVAL", "return -3.99", "0");
    EXPECT_INT(9007199254740993LL, c, "EVAL", "return 9007199254740993", "0");
    EXPECT_BULK("hello", c, "EVAL", "return 'hello'", "0");
    EXPECT_BULK("3.5", c, "EVAL", "return tostring(3.5)", "0");
    h_expect_bulk(H_AT, CMD(c, "EVAL", "return 'a\\0b'", "0"), "a\0b", 3);
    EXPECT_NIL(c, "EVAL", "return nil", "0");
    EXPECT_NIL(c, "EVAL", "local x = 1", "0");
    struct eddy_reply *r;
    if (proto == 2) { /* RESP3 clients: see t_conv_booleans */
        EXPECT_INT(1, c, "EVAL", "return true", "0");
        EXPECT_NIL(c, "EVAL", "return false", "0");
    }
    /* Arrays stop at the first nil, nested ones too; hash parts are dropped. */
    r = EXPECT_ARRAY(3, c, "EVAL", "return {1, 'two', {3, 4, nil, 99}, nil, 5, x = 'y'}", "0");
    ELEM_INT(r, 0, 1);
    ELEM_STR(r, 1, "two");
    CHECK(r->element[2]->type == EDDY_REPLY_ARRAY && r->element[2]->elements == 2);
    ELEM_INT(r->element[2], 1, 4);
    eddy_reply_free(r);
    EXPECT_ARRAY(0, c, "EVAL", "return {}", "0");
    EXPECT_ARRAY(0, c, "EVAL", "return {x = 1}", "0");
    r = EXPECT_ARRAY(3, c, "EVAL", "return {'a', 'b', 2.7}", "0");
    ELEM_INT(r, 2, 2);
    eddy_reply_free(r);
    /* {ok=}, {err=} also nested. */
    EXPECT_STATUS("fine", c, "EVAL", "return {ok = 'fine'}", "0");
    EXPECT_ERR("bad thing", c, "EVAL", "return {err = 'bad thing'}", "0");
    r = EXPECT_ARRAY(2, c, "EVAL", "return {{ok = 'a'}, {err = 'ERR b'}}", "0");
    CHECK(r->element[0]->type == EDDY_REPLY_STATUS && is_str(r->element[0], "a"));
    CHECK(r->element[1]->type == EDDY_REPLY_ERROR && strcmp(r->element[1]->str, "ERR b") == 0);
    eddy_reply_free(r);
    /* {double=}. */
    r = CMD(c, "EVAL", "return {double = 3.25}", "0");
    if (proto == 2) {
        CHECK(r->type == EDDY_REPLY_STRING && strcmp(r->str, "3.25") == 0);
    } else {
        CHECK(r->type == EDDY_REPLY_DOUBLE && r->dval == 3.25);
    }
    eddy_reply_free(r);
    /* {map=} and {set=}. */
    r = CMD(c, "EVAL", "return {map = {a = 1, b = {1, 2}}}", "0");
    CHECK(r->type == (proto == 2 ? EDDY_REPLY_ARRAY : EDDY_REPLY_MAP));
    CHECK_EQ_INT(r->elements, 4);
    CHECK(KV(r, "a")->type == EDDY_REPLY_INTEGER && KV(r, "a")->integer == 1);
    CHECK(KV(r, "b")->type == EDDY_REPLY_ARRAY && KV(r, "b")->elements == 2);
    eddy_reply_free(r);
    r = CMD(c, "EVAL", "return {set = {x = true, y = true, z = true}}", "0");
    CHECK(r->type == (proto == 2 ? EDDY_REPLY_ARRAY : EDDY_REPLY_SET));
    CHECK_EQ_INT(r->elements, 3);
    int seen = 0;
    for (size_t i = 0; i < r->elements; i++)
        seen |= is_str(r->element[i], "x") | is_str(r->element[i], "y") << 1 |
                is_str(r->element[i], "z") << 2;
    CHECK_EQ_INT(seen, 7);
    eddy_reply_free(r);
    /* Nesting as deep as the client reads (libeddy stops at 64 levels). */
    r = CMD(c, "EVAL", "local t = {} local cur = t for i = 1, 50 do cur[1] = {} cur = cur[1] end return t", "0");
    for (int d = 0; d < 50; d++) {
        const struct eddy_reply *e = r;
        for (int j = 0; j < d; j++)
            e = e->element[0];
        CHECK(e->type == EDDY_REPLY_ARRAY && e->elements == 1);
    }
    eddy_reply_free(r);
    /* Much deeper, over a raw socket: some well-formed reply, and the server lives. */
    const char *deep = "local t = {} local cur = t for i = 1, 100000 do cur[1] = {} cur = cur[1] end return t";
    char req[256];
    int n = snprintf(req, sizeof(req), "*3\r\n$4\r\nEVAL\r\n$%zu\r\n%s\r\n$1\r\n0\r\n", strlen(deep), deep);
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    if (proto == 3)
        CHECK(h_raw_send(fd, "HELLO 3\r\n", 9) == 0);
    CHECK(h_raw_send(fd, req, (size_t)n) == 0);
    static char buf[1 << 16];
    bool closed;
    size_t got = h_raw_recv(fd, buf, sizeof(buf) - 1, 1000, &closed);
    close(fd);
    CHECK(!closed && got > 0 && strstr(buf, "*1\r\n*1\r\n") != NULL);
    EXPECT_STATUS("PONG", c, "PING");
    eddy_free(c);
}

/* Booleans returned by a script follow the script's protocol (redis.setresp, default 2)
 * as well as the client's, as Redis 7 does: with the default, true -> 1 and false ->
 * nil even for a RESP3 client; after setresp(3), a RESP3 client gets booleans and a
 * RESP2 client 1 and 0. */
static void t_conv_booleans(void)
{
    eddy_ctx *c2 = connect_proto(h_port, 2), *c3 = connect_proto(h_port, 3);
    EXPECT_INT(1, c2, "EVAL", "return true", "0");
    EXPECT_NIL(c2, "EVAL", "return false", "0");
    EXPECT_INT(1, c2, "EVAL", "redis.setresp(3) return true", "0");
    EXPECT_INT(0, c2, "EVAL", "redis.setresp(3) return false", "0");
    EXPECT_INT(1, c3, "EVAL", "return true", "0");
    EXPECT_NIL(c3, "EVAL", "return false", "0");
    struct eddy_reply *r = EXPECT_ARRAY(3, c3, "EVAL", "return {true, false, 1}", "0");
    ELEM_INT(r, 0, 1);
    CHECK(r->element[1]->type == EDDY_REPLY_NIL);
    eddy_reply_free(r);
    r = CMD(c3, "EVAL", "redis.setresp(3) return true", "0");
    CHECK(r->type == EDDY_REPLY_BOOL && r->integer == 1);
    eddy_reply_free(r);
    r = EXPECT_ARRAY(2, c3, "EVAL", "redis.setresp(3) return {true, false}", "0");
    CHECK(r->element[0]->type == EDDY_REPLY_BOOL && r->element[0]->integer == 1);
    CHECK(r->element[1]->type == EDDY_REPLY_BOOL && r->element[1]->integer == 0);
    eddy_reply_free(r);
    eddy_free(c2);
    eddy_free(c3);
}

static void t_conv_lua_to_resp2(void) { conv_lua_to_resp(2); }
static void t_conv_lua_to_resp3(void) { conv_lua_to_resp(3); }

/* RESP -> Lua: what redis.call returns to the script, with setresp 2 and 3. */
static void t_conv_resp_to_lua(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "udf:cv");
    EXPECT_OK(c, "SET", "udf:cv", "12");
    /* A nil bulk is false in RESP2, nil in RESP3. */
    EXPECT_BULK("boolean false", c, "EVAL",
                "local r = redis.call('GET', 'udf:nokey'); return type(r) .. ' ' .. tostring(r)", "0");
    EXPECT_BULK("nil nil", c, "EVAL",
                "redis.setresp(3); local r = redis.call('GET', 'udf:nokey'); return type(r) .. ' ' .. tostring(r)", "0");
    /* Status -> {ok=}. */
    EXPECT_BULK("table OK", c, "EVAL",
                "local r = redis.call('SET', 'udf:cv', '12'); return type(r) .. ' ' .. r.ok", "0");
    EXPECT_BULK("table OK", c, "EVAL",
                "redis.setresp(3); local r = redis.call('SET', 'udf:cv', '12'); return type(r) .. ' ' .. r.ok", "0");
    /* Integers, bulks, arrays with holes. */
    EXPECT_BULK("number 13", c, "EVAL",
                "local r = redis.call('INCR', 'udf:cv'); return math.type(r) and (type(r) .. ' ' .. r)", "0");
    EXPECT_BULK("string 13", c, "EVAL",
                "local r = redis.call('GET', 'udf:cv'); return type(r) .. ' ' .. r", "0");
    EXPECT_BULK("3 13 false", c, "EVAL",
                "local r = redis.call('MGET', 'udf:cv', 'udf:cv', 'udf:nokey');"
                "return #r .. ' ' .. r[1] .. ' ' .. tostring(r[3])", "0");
    EXPECT_BULK("3 13 nil", c, "EVAL",
                "redis.setresp(3); local r = redis.call('MGET', 'udf:cv', 'udf:cv', 'udf:nokey');"
                "return (r[3] == nil and '3' or '?') .. ' ' .. r[1] .. ' ' .. tostring(r[3])", "0");
    /* Errors: pcall returns {err=}, call raises. */
    EXPECT_BULK("table ERR Wrong number of args calling Redis command from script", c, "EVAL",
                "local r = redis.pcall('GET'); return type(r) .. ' ' .. r.err", "0");
    /* RESP3-only types reach the script as tables with setresp(3), as plain values in
     * RESP2: INFO is a verbatim string in RESP3. */
    EXPECT_BULK("string", c, "EVAL", "return type(redis.call('INFO', 'server'))", "0");
    EXPECT_BULK("txt", c, "EVAL",
                "redis.setresp(3); return redis.call('INFO', 'server').verbatim_string.format", "0");
    /* setresp does not change what the client receives. */
    EXPECT_NIL(c, "EVAL", "redis.setresp(3); return redis.call('GET', 'udf:nokey')", "0");
    EXPECT_INT(1, c, "DEL", "udf:cv");
    eddy_free(c);
}

static void t_cjson(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_BULK("{\"a\":1}", c, "EVAL", "return cjson.encode({a = 1})", "0");
    EXPECT_BULK("[1,2,3]", c, "EVAL", "return cjson.encode({1, 2, 3})", "0");
    EXPECT_BULK("\"x\\\"y\"", c, "EVAL", "return cjson.encode('x\"y')", "0");
    EXPECT_INT(2, c, "EVAL", "return cjson.decode('[1,2,3]')[2]", "0");
    EXPECT_BULK("v", c, "EVAL", "return cjson.decode(ARGV[1]).k.n[2]", "0",
                "{\"k\":{\"n\":[1,\"v\"]}}");
    EXPECT_INT(1, c, "EVAL", "return cjson.decode('null') == cjson.null and 1 or 0", "0");
    EXPECT_BULK("ok", c, "EVAL",
                "local t = cjson.decode(cjson.encode({x = {1, 2, {y = 'ok'}}})); return t.x[3].y", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "return cjson.decode('{bad json')", "0");
    EXPECT_ERR_HAS("ERR ", "readonly", c, "EVAL", "cjson.encode = nil", "0");
    eddy_free(c);
}

/* ---- eddy.* ------------------------------------------------------------------------------------ */

static void t_eddy_api(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "udf:ea", "udf:eb", "udf:ettl");
    EXPECT_INT(1, c, "EVAL", "return eddy.set(KEYS[1], 'v1') and 1 or 0", "1", "udf:ea");
    EXPECT_BULK("v1", c, "GET", "udf:ea");
    EXPECT_BULK("v1", c, "EVAL", "return eddy.get(KEYS[1])", "1", "udf:ea");
    EXPECT_BULK("nil", c, "EVAL", "return tostring(eddy.get(KEYS[1]))", "1", "udf:eb");
    EXPECT_BULK("true false", c, "EVAL",
                "return tostring(eddy.exists(KEYS[1])) .. ' ' .. tostring(eddy.exists(KEYS[2]))", "2",
                "udf:ea", "udf:eb");
    /* A call sees its own writes; del returns whether the key existed. */
    EXPECT_BULK("w true nil false", c, "EVAL",
                "eddy.set(KEYS[1], 'w'); local a = eddy.get(KEYS[1]); local d = eddy.del(KEYS[1]);"
                "return a .. ' ' .. tostring(d) .. ' ' .. tostring(eddy.get(KEYS[1])) .. ' ' .. "
                "tostring(eddy.del(KEYS[1]))", "1", "udf:eb");
    EXPECT_INT(0, c, "EXISTS", "udf:eb");
    /* Binary values, and eddy and redis.call see the same data. */
    h_expect_bulk(H_AT, CMD(c, "EVAL", "eddy.set(KEYS[1], 'a\\0b') return redis.call('GET', KEYS[1])",
                            "1", "udf:eb"), "a\0b", 3);
    EXPECT_INT(3, c, "STRLEN", "udf:eb");
    /* TTL in milliseconds. */
    EXPECT_INT(1, c, "EVAL", "return eddy.set(KEYS[1], 'x', 100000) and 1", "1", "udf:ettl");
    long long pttl = CMD_INT(c, "PTTL", "udf:ettl");
    CHECK(pttl > 90000 && pttl <= 100000);
    EXPECT_ERR_HAS("ERR ", "eddy.set", c, "EVAL", "eddy.set(KEYS[1], 'x', -5)", "1", "udf:ettl");
    /* Slots are Redis Cluster's. */
    EXPECT_INT(12182, c, "EVAL", "return eddy.slot('foo')", "0");
    EXPECT_INT(12739, c, "EVAL", "return eddy.slot('123456789')", "0");
    EXPECT_INT(1, c, "EVAL",
               "return (eddy.slot('{user1}.a') == eddy.slot('user1') and "
               "eddy.slot('{user1}.b') == eddy.slot('{user1}.a')) and 1 or 0", "0");
    /* Read-only calls cannot write through eddy.* either. */
    EXPECT_ERR_HAS("ERR ", "Write commands are not allowed from read-only scripts", c, "EVAL_RO",
                   "return eddy.set(KEYS[1], 'x')", "1", "udf:ea");
    EXPECT_ERR_HAS("ERR ", "Write commands are not allowed from read-only scripts", c, "EVAL_RO",
                   "return eddy.del(KEYS[1])", "1", "udf:ea");
    EXPECT_BULK("v1", c, "EVAL_RO", "return eddy.get(KEYS[1])", "1", "udf:ea");
    EXPECT_BULK("v1", c, "GET", "udf:ea");
    EXPECT_ERR_HAS("ERR ", "readonly", c, "EVAL", "eddy.get = nil", "0");
    EXPECT_INT(3, c, "DEL", "udf:ea", "udf:eb", "udf:ettl");
    eddy_free(c);
}

static void t_eddy_vec(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "udf:vec");
    EXPECT_INT(14, c, "EVAL", "local v = eddy.vec.from{1, 2, 3}; return v:dot(v)", "0");
    EXPECT_INT(3, c, "EVAL", "return #eddy.vec.from{1, 2, 3}", "0");
    /* Stored as a value, decoded by another call. */
    EXPECT_INT(1, c, "EVAL", "local v = eddy.vec.from{1, 2, 3}; eddy.set(KEYS[1], v:encode()); return 1",
               "1", "udf:vec");
    EXPECT_INT(8 + 3 * 8, c, "STRLEN", "udf:vec");
    EXPECT_INT(14, c, "EVAL", "local w = eddy.vec.decode(eddy.get(KEYS[1])); return w:dot(w)", "1",
               "udf:vec");
    EXPECT_INT(1, c, "EVAL",
               "local w = eddy.vec.decode(redis.call('GET', KEYS[1])); "
               "return (#w == 3 and w:get(2) == 2 and w == eddy.vec.from{1, 2, 3}) and 1 or 0", "1",
               "udf:vec");
    /* axpy and scale in C; a vector returns as an array of doubles. */
    struct eddy_reply *r = EXPECT_ARRAY(3, c, "EVAL",
                                        "local v = eddy.vec.from{1, 2, 3}; local w = eddy.vec.zeros(3);"
                                        "w:axpy(2, v); w:scale(0.25); return w", "0");
    CHECK(is_str(r->element[0], "0.5") && is_str(r->element[2], "1.5"));
    eddy_reply_free(r);
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "return eddy.vec.decode('not a vector')", "0");
    EXPECT_ERR_HAS("ERR ", "eddy.vec", c, "EVAL", "return eddy.vec.from{1}:dot(eddy.vec.from{1, 2})", "0");
    EXPECT_INT(1, c, "DEL", "udf:vec");
    eddy_free(c);
}

/* eddy.scan over 20,000 keys plus tagged and other keys: every key exactly once, in
 * slot order; prefixes, hash-tag prefixes and slot ranges. */
static void t_eddy_scan(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    enum { N = 20000, BATCH = 100 };
    for (int i = 0; i < N; i += BATCH) {
        const char *argv[1 + 2 * BATCH];
        char keys[BATCH][16], vals[BATCH][16];
        argv[0] = "MSET";
        for (int j = 0; j < BATCH; j++) {
            snprintf(keys[j], sizeof(keys[j]), "k:%05d", i + j);
            snprintf(vals[j], sizeof(vals[j]), "v%05d", i + j);
            argv[1 + 2 * j] = keys[j];
            argv[2 + 2 * j] = vals[j];
        }
        h_expect_status(H_AT, h_cmdv(H_AT, c, 1 + 2 * BATCH, argv, NULL), "OK");
    }
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof(k), "{tag}:%d", i);
        EXPECT_OK(c, "SET", k, "t");
        snprintf(k, sizeof(k), "other:%d", i);
        EXPECT_OK(c, "SET", k, "o");
    }
    EXPECT_INT(N + 600, c, "DBSIZE");
    /* Full scan. */
    const char *full =
        "local seen, n, dup, bad, order, last = {}, 0, 0, 0, 0, -1\n"
        "for k, v in eddy.scan() do\n"
        "  if seen[k] then dup = dup + 1 end\n"
        "  seen[k] = true; n = n + 1\n"
        "  if k:sub(1, 2) == 'k:' and v ~= 'v' .. k:sub(3) then bad = bad + 1 end\n"
        "  local s = eddy.slot(k); if s < last then order = order + 1 end; last = s\n"
        "end\n"
        "local missing = 0\n"
        "for i = 0, 19999 do if not seen[string.format('k:%05d', i)] then missing = missing + 1 end end\n"
        "return {n, dup, missing, bad, order}";
    struct eddy_reply *r = EXPECT_ARRAY(5, c, "EVAL", full, "0");
    ELEM_INT(r, 0, N + 600);
    ELEM_INT(r, 1, 0);
    ELEM_INT(r, 2, 0);
    ELEM_INT(r, 3, 0);
    ELEM_INT(r, 4, 0);
    eddy_reply_free(r);
    /* Prefixes. */
    const char *count =
        "local opts = cjson.decode(ARGV[1]); local n, wrong = 0, 0\n"
        "for k in eddy.scan(opts) do n = n + 1\n"
        "  if opts.prefix and k:sub(1, #opts.prefix) ~= opts.prefix then wrong = wrong + 1 end\n"
        "  local s = eddy.slot(k)\n"
        "  if (opts.slot and s ~= opts.slot) or (opts.slot_lo and s < opts.slot_lo) or\n"
        "     (opts.slot_hi and s > opts.slot_hi) then wrong = wrong + 1 end\n"
        "end\n"
        "return {n, wrong}";
    struct {
        const char *opts;
        long long want; /* -1: compare with a filtered full scan */
    } cases[] = {
        {"{\"prefix\":\"k:19\"}", 1000},
        {"{\"prefix\":\"k:0000\"}", 10},
        {"{\"prefix\":\"k:00001\"}", 1},
        {"{\"prefix\":\"k:\"}", N},
        {"{\"prefix\":\"other:\"}", 300},
        {"{\"prefix\":\"{tag}:\"}", 300},
        {"{\"prefix\":\"{tag}:1\"}", 111},
        {"{\"prefix\":\"nothing\"}", 0},
        {"{\"prefix\":\"\"}", N + 600},
        {"{\"slot_lo\":0,\"slot_hi\":8191}", -1},
        {"{\"slot_lo\":8192,\"slot_hi\":16383}", -1},
        {"{\"slot_lo\":100,\"slot_hi\":100}", -1},
        {"{\"prefix\":\"k:1\",\"slot_lo\":0,\"slot_hi\":4000}", -1},
    };
    char bad[1024] = "";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long want = cases[i].want;
        if (want < 0) {
            /* The same count from a full scan filtered in Lua. */
            const char *filtered =
                "local o = cjson.decode(ARGV[1]); local n = 0\n"
                "for k in eddy.scan() do local s = eddy.slot(k)\n"
                "  if s >= o.slot_lo and s <= o.slot_hi and\n"
                "     (not o.prefix or k:sub(1, #o.prefix) == o.prefix) then n = n + 1 end end\n"
                "return n";
            want = CMD_INT(c, "EVAL", filtered, "0", cases[i].opts);
        }
        r = EXPECT_ARRAY(2, c, "EVAL", count, "0", cases[i].opts);
        if (r->element[0]->integer != want || r->element[1]->integer != 0) {
            size_t l = strlen(bad);
            snprintf(bad + l, sizeof(bad) - l, " %s: %lld keys (%lld wrong), expected %lld;",
                     cases[i].opts, r->element[0]->integer, r->element[1]->integer, want);
        }
        eddy_reply_free(r);
    }
    if (bad[0] != '\0')
        FAILF("eddy.scan:%s", bad);
    /* The tagged keys are all in one slot, and slot= finds them. */
    long long tag_slot = CMD_INT(c, "EVAL", "return eddy.slot('{tag}')", "0");
    char opts[64];
    snprintf(opts, sizeof(opts), "{\"slot\":%lld}", tag_slot);
    r = EXPECT_ARRAY(2, c, "EVAL", count, "0", opts);
    CHECK(r->element[0]->integer >= 300);
    ELEM_INT(r, 1, 0);
    eddy_reply_free(r);
    /* The snapshot: the call's own later writes are not visited. */
    EXPECT_INT(N, c, "EVAL",
               "local n = 0 for k in eddy.scan{prefix = 'k:'} do n = n + 1 eddy.set('k:new' .. n, 'x') end "
               "return n", "0");
    EXPECT_INT(N * 2, c, "EVAL", "local n = 0 for k in eddy.scan{prefix = 'k:'} do n = n + 1 end return n", "0");
    /* Bad options. */
    EXPECT_ERR_HAS("ERR ", "eddy.scan: slots must satisfy", c, "EVAL",
                   "for k in eddy.scan{slot_lo = 10, slot_hi = 5} do end", "0");
    EXPECT_ERR_HAS("ERR ", "eddy.scan: slots must satisfy", c, "EVAL",
                   "for k in eddy.scan{slot = 16384} do end", "0");
    EXPECT_ERR_HAS("ERR ", "eddy.scan", c, "EVAL", "for k in eddy.scan('x') do end", "0");
    EXPECT_STATUS("PONG", c, "PING");
    eddy_free(c);
    h_server_free(s);
}

/* The smallest case of a prefix scan visiting a key twice: the matching key is the
 * first of its slot at or after the prefix, reached from an earlier slot, and the next
 * key of that slot does not match. */
static void t_eddy_scan_prefix_once(void)
{
    eddy_ctx *c = h_connect();
    char *other = CMD_TEXT(c, "EVAL",
                           "for i = 1, 1e6 do local k = 'zz' .. i "
                           "if eddy.slot(k) == eddy.slot(KEYS[1]) then return k end end", "1",
                           "dupscan:1");
    EXPECT_OK(c, "MSET", "dupscan:1", "v", other, "v");
    struct eddy_reply *r = CMD(c, "EVAL",
                               "local r = {} for k in eddy.scan{prefix = 'dupscan:'} do r[#r + 1] = k end return r",
                               "0");
    if (r->type != EDDY_REPLY_ARRAY || r->elements != 1)
        FAILF("keys dupscan:1 and %s (one slot): eddy.scan{prefix='dupscan:'} gave %s, expected "
              "[dupscan:1]", other, h_describe(r));
    eddy_reply_free(r);
    EXPECT_INT(2, c, "DEL", "dupscan:1", other);
    free(other);
    eddy_free(c);
}

/* ---- Persistence ---------------------------------------------------------------------------- */

#define LIB_PL                                                                                 \
    "#!lua name=pl\n"                                                                          \
    "redis.register_function('pl_hello', function(keys, args) return 'hello ' .. args[1] end)\n" \
    "redis.register_function{function_name='pl_ro', callback=function(keys)\n"                 \
    "  return redis.call('GET', keys[1]) end, flags={'no-writes'}}\n"

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void t_persist_restart(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    LOAD_LIB(c, "pl", LIB_PL);
    char *sha = CMD_TEXT(c, "SCRIPT", "LOAD", "return 'script ' .. ARGV[1]");
    const char *evaled = "return 'evaled ' .. KEYS[1]";
    EXPECT_BULK("evaled k", c, "EVAL", evaled, "1", "k");
    char *sha2 = CMD_TEXT(c, "EVAL", "return redis.sha1hex(ARGV[1])", "0", evaled);
    EXPECT_NIL(c, "EVAL", "redis.log(redis.LOG_WARNING, 'udf-log-marker-4711')", "0");
    EXPECT_OK(c, "SET", "pk", "v");
    eddy_free(c);

    int st = h_server_stop(s);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    h_server_restart(s);
    c = h_connect_port(s->port);
    EXPECT_BULK("hello w", c, "FCALL", "pl_hello", "0", "w");
    EXPECT_BULK("v", c, "FCALL_RO", "pl_ro", "1", "pk");
    EXPECT_ERR(RO_FLAG_ERR, c, "FCALL_RO", "pl_hello", "0", "w");
    EXPECT_BULK("script x", c, "EVALSHA", sha, "0", "x");
    EXPECT_BULK("evaled q", c, "EVALSHA", sha2, "1", "q");
    EXPECT_BULK("script y", c, "EVALSHA_RO", sha, "0", "y");
    struct eddy_reply *r = EXPECT_ARRAY(2, c, "SCRIPT", "EXISTS", sha, sha2);
    ELEM_INT(r, 0, 1);
    ELEM_INT(r, 1, 1);
    eddy_reply_free(r);
    r = EXPECT_ARRAY(1, c, "FUNCTION", "LIST", "WITHCODE");
    CHECK(is_str(KV(r->element[0], "library_code"), LIB_PL));
    CHECK_EQ_INT(KV(r->element[0], "functions")->elements, 2);
    eddy_reply_free(r);

    /* Loads are synced: a kill -9 right after them loses nothing. */
    LOAD_LIB(c, "pl2", "#!lua name=pl2\nredis.register_function('pl2_f', function() return 'pl2' end)");
    char *sha3 = CMD_TEXT(c, "SCRIPT", "LOAD", "return 'three'");
    eddy_free(c);
    h_server_kill9(s);
    h_server_restart(s);
    c = h_connect_port(s->port);
    EXPECT_BULK("pl2", c, "FCALL", "pl2_f", "0");
    EXPECT_BULK("three", c, "EVALSHA", sha3, "0");
    EXPECT_BULK("hello z", c, "FCALL", "pl_hello", "0", "z");

    /* Deletions persist too. */
    EXPECT_OK(c, "FUNCTION", "DELETE", "pl");
    EXPECT_OK(c, "SCRIPT", "FLUSH");
    eddy_free(c);
    h_server_restart(s);
    c = h_connect_port(s->port);
    EXPECT_ERR("ERR Function not found", c, "FCALL", "pl_hello", "0", "w");
    EXPECT_ERR(NOSCRIPT_ERR, c, "EVALSHA", sha, "0", "x");
    EXPECT_ERR(NOSCRIPT_ERR, c, "EVALSHA", sha3, "0");
    EXPECT_BULK("pl2", c, "FCALL", "pl2_f", "0");
    EXPECT_BULK("v", c, "GET", "pk");
    eddy_free(c);
    char log[300];
    snprintf(log, sizeof(log), "%s/eddyd.log", s->dir);
    if (!file_contains(log, "udf-log-marker-4711"))
        FAILF("redis.log(LOG_WARNING) did not reach the server log %s", log);
    free(sha);
    free(sha2);
    free(sha3);
    h_server_free(s);
}

/* ---- The sandbox --------------------------------------------------------------------------------- */

static void t_sandbox(void)
{
    eddy_ctx *c = h_connect();
    /* Missing libraries and functions. */
    static const char *const gone[] = {"io", "debug", "package", "require", "dofile", "loadfile",
                                       "print", "module", "setfenv", "getfenv", "newproxy"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        char script[64], want[128];
        snprintf(script, sizeof(script), "return %s", gone[i]);
        snprintf(want, sizeof(want), "Script attempted to access nonexistent global variable '%s'",
                 gone[i]);
        EXPECT_ERR_HAS("ERR user_script:1: ", want, c, "EVAL", script, "0");
    }
    EXPECT_ERR_HAS("ERR user_script:1: ", "nonexistent global variable 'io'", c, "EVAL",
                   "return io.open('/etc/passwd'):read('a')", "0");
    EXPECT_NIL(c, "EVAL", "return os.execute", "0");
    EXPECT_NIL(c, "EVAL", "return os.getenv", "0");
    EXPECT_NIL(c, "EVAL", "return os.remove", "0");
    EXPECT_NIL(c, "EVAL", "return os.exit", "0");
    EXPECT_ERR_HAS("ERR user_script:1: attempt to call a nil value", NULL, c, "EVAL",
                   "return os.execute('touch /tmp/eddy-pwned')", "0");
    CHECK(access("/tmp/eddy-pwned", F_OK) != 0);
    EXPECT_INT(1, c, "EVAL", "return (type(os.clock()) == 'number' and type(os.time()) == 'number') and 1", "0");
    EXPECT_NIL(c, "EVAL", "return string.dump", "0");
    EXPECT_ERR_HAS("ERR user_script:1: attempt to call a nil value", NULL, c, "EVAL",
                   "return string.dump(function() end)", "0");
    /* The string metatable. */
    EXPECT_BULK("protected", c, "EVAL", "return getmetatable('')", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "getmetatable('').__index = {}", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "setmetatable('', {})", "0");
    EXPECT_ERR_HAS("ERR ", "readonly", c, "EVAL", "string.upper = function() return 'pwned' end", "0");
    EXPECT_ERR_HAS("ERR ", "readonly", c, "EVAL", "string.len = nil", "0");
    EXPECT_ERR_HAS("ERR ", "readonly", c, "EVAL", "rawset(string, 'upper', tostring)", "0");
    EXPECT_ERR_HAS("ERR ", "readonly", c, "EVAL", "rawset(_G, 'x', 1)", "0");
    EXPECT_ERR_HAS("ERR ", "readonly", c, "EVAL", "rawset(redis, 'call', 1)", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "setmetatable(_G, {})", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "setmetatable(string, {})", "0");
    EXPECT_BULK("ABC", c, "EVAL", "return ('abc'):upper()", "0");
    EXPECT_BULK("ABC", c, "EVAL", "return string.upper('abc')", "0");
    /* Global writes. */
    EXPECT_ERR_HAS("ERR user_script:1: Attempt to modify a readonly table", NULL, c, "EVAL",
                   "x = 1", "0");
    EXPECT_ERR_HAS("ERR ", "Attempt to modify a readonly table", c, "EVAL", "_G.x = 1", "0");
    EXPECT_ERR_HAS("ERR ", "Attempt to modify a readonly table", c, "EVAL", "redis = nil", "0");
    EXPECT_ERR_HAS("ERR ", "Attempt to modify a readonly table", c, "EVAL", "redis.call = tostring", "0");
    EXPECT_ERR_HAS("ERR ", "Attempt to modify a readonly table", c, "EVAL", "math.pi = 3", "0");
    EXPECT_ERR_HAS("ERR ", "Attempt to modify a readonly table", c, "EVAL", "table.insert = nil", "0");
    EXPECT_ERR_HAS("ERR ", "nonexistent global variable 'undefined_thing'", c, "EVAL",
                   "return undefined_thing", "0");
    /* Locals are fine, and nothing leaked between calls. */
    EXPECT_INT(3, c, "EVAL", "local x = 1; local function f() return x + 2 end; return f()", "0");
    EXPECT_ERR_HAS("ERR ", "nonexistent global variable 'x'", c, "EVAL", "return x", "0");
    /* Bytecode. */
    EXPECT_BULK("nil binary", c, "EVAL",
                "local f, e = load(string.char(27) .. 'LuaT' .. string.rep('\\0', 20), 'x', 'b');"
                "return tostring(f) .. (e:find('binary') and ' binary' or (' ' .. e))", "0");
    EXPECT_BULK("nil binary", c, "EVAL",
                "local f, e = load(string.char(27) .. 'LuaT' .. string.rep('\\0', 20));"
                "return tostring(f) .. (e:find('binary') and ' binary' or (' ' .. e))", "0");
    EXPECT_BULK("nil binary", c, "EVAL",
                "local f, e = load(string.char(27) .. 'LuaT', 'x', 'bt');"
                "return tostring(f) .. (e:find('binary') and ' binary' or (' ' .. e))", "0");
    EXPECT_INT(7, c, "EVAL", "return load('return 7')()", "0");
    EXPECT_ERR_PREFIX("ERR Error compiling script", c, "EVAL", "\x1bLuaT\x00\x19\x93\r\n\x1a\n", "0");
    EXPECT_ERR_PREFIX("ERR Error compiling function", c, "FUNCTION", "LOAD",
                      "#!lua name=bc\n\x1bLuaT\x00\x19\x93\r\n\x1a\n");
    /* load with an env cannot reach the real globals either. */
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "return load('x = 1')()", "0");
    EXPECT_INT(5, c, "EVAL", "local env = {}; load('y = 5', 'c', 't', env)(); return env.y", "0");
    /* collectgarbage: only the harmless options. */
    EXPECT_INT(1, c, "EVAL", "return collectgarbage('count') > 0 and 1", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "collectgarbage('stop')", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL", "collectgarbage('generational')", "0");
    /* Finalizers. */
    EXPECT_ERR_HAS("ERR ", "__gc metamethods are not allowed", c, "EVAL",
                   "setmetatable({}, {__gc = function() while true do end end})", "0");
    /* A __gc added after setmetatable never runs (Lua marks objects at setmetatable). */
    EXPECT_BULK("ok", c, "EVAL",
                "local mt = {}; local t = setmetatable({}, mt); mt.__gc = function() while true do end end;"
                "t = nil; collectgarbage(); collectgarbage(); return 'ok'", "0");
    /* Deep recursion. */
    EXPECT_ERR_HAS("ERR user_script:1: ", "stack overflow", c, "EVAL",
                   "local function f(n) return 1 + f(n + 1) end return f(1)", "0");
    EXPECT_ERR_HAS("ERR ", "stack overflow", c, "EVAL",
                   "local function f(n) local ok, e = pcall(f, n + 1) if not ok then error(e, 0) end return e end return f(1)", "0");
    EXPECT_ERR_HAS("ERR ", NULL, c, "EVAL",
                   "local t = setmetatable({}, {__index = function(t, k) return t[k + 1] end}) return t[1]", "0");
    EXPECT_ERR_HAS("ERR ", "too many captures", c, "EVAL",
                   "return string.find(string.rep('a', 300), string.rep('(a', 40) .. string.rep(')', 40))", "0");
    EXPECT_ERR_HAS("ERR ", "pattern too complex", c, "EVAL",
                   "return string.find(string.rep('a', 1000), string.rep('a?', 300))", "0");
    /* The state stays usable after all of that. */
    EXPECT_INT(2, c, "EVAL", "return 1 + 1", "0");
    EXPECT_STATUS("PONG", c, "PING");
    eddy_free(c);
}

static void t_huge_returns(void)
{
    eddy_ctx *c = h_connect();
    struct eddy_reply *r = CMD(c, "EVAL", "return string.rep('x', 10 * 1024 * 1024)", "0");
    CHECK(r->type == EDDY_REPLY_STRING && r->len == 10u * 1024 * 1024);
    CHECK(r->str[0] == 'x' && r->str[r->len - 1] == 'x');
    eddy_reply_free(r);
    r = EXPECT_ARRAY(100000, c, "EVAL", "local t = {} for i = 1, 100000 do t[i] = i end return t", "0");
    ELEM_INT(r, 0, 1);
    ELEM_INT(r, 99999, 100000);
    eddy_reply_free(r);
    r = EXPECT_ARRAY(100000, c, "EVAL",
                     "local t = {} for i = 1, 100000 do t[i] = 'element ' .. i end return t", "0");
    ELEM_STR(r, 54321, "element 54322");
    eddy_reply_free(r);
    /* The same through a RESP3 connection, as a map. */
    eddy_free(c);
    c = connect_proto(h_port, 3);
    r = CMD(c, "EVAL", "local t = {} for i = 1, 50000 do t['k' .. i] = i end return {map = t}", "0");
    CHECK(r->type == EDDY_REPLY_MAP && r->elements == 100000);
    eddy_reply_free(r);
    EXPECT_STATUS("PONG", c, "PING");
    eddy_free(c);
}

/* ---- Time limit: hostile loops --------------------------------------------------------------- */

/* Sends script on a, pings on b while it runs, and checks a's error. max_ping_ms bounds
 * each PING's round trip: small for code the hook can preempt, about the time limit
 * for code it cannot (C callbacks), which is still killed. */
static void hostile(const char *file, int line, eddy_ctx *a, eddy_ctx *b, const char *cmd,
                    const char *script, const char *prefix, const char *has, int64_t max_ping_ms)
{
    int64_t t0 = h_now_ms();
    send_cmd(a, cmd, script, "0", (char *)NULL);
    h_sleep_ms(100);
    int64_t worst = 0;
    for (int i = 0; i < 3; i++) {
        int64_t l = ping_ms(file, line, b);
        if (l > worst)
            worst = l;
    }
    struct eddy_reply *r = read_reply(file, line, a);
    int64_t took = h_now_ms() - t0;
    bool ok = r->type == EDDY_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0 &&
              (has == NULL || strstr(r->str, has) != NULL);
    if (!ok)
        h_fail(file, line, "%.60s: expected error \"%s\", got %s", script, prefix, h_describe(r));
    eddy_reply_free(r);
    if (took > 3000)
        h_fail(file, line, "%.60s: stopped after %lld ms (time limit 500 ms)", script, (long long)took);
    if (worst > max_ping_ms)
        h_fail(file, line, "%.60s: a PING took %lld ms during it (bound %lld)", script,
               (long long)worst, (long long)max_ping_ms);
    /* The same connection works again. */
    h_expect_int(file, line, h_cmd(file, line, a, "EVAL", "return 5", "0", (char *)NULL), 5);
}
#define HOSTILE(a, b, cmd, script, prefix, has, max_ping)                                       \
    hostile(H_AT, (a), (b), (cmd), (script), (prefix), (has), (max_ping))

#define TIMEOUT_ERR "ERR Script timed out: "
#define FAST 300  /* ms: the hook preempts the loop */
#define SLOW 2500 /* ms: not preemptible, killed at the limit */

static void t_hostile_loops(void)
{
    struct h_server *s = h_server_start("--threads", "1", NULL);
    eddy_ctx *a = h_connect_port(s->port), *b = h_connect_port(s->port);
    EXPECT_OK(a, "CONFIG", "SET", "udf-time-limit", "500");
    LOAD_LIB(a, "hl",
             "#!lua name=hl\nredis.register_function('hl_loop', function() local n = 0 while true do n = n + 1 end end)\n");
    send_cmd(a, "FCALL", "hl_loop", "0", (char *)NULL);
    h_sleep_ms(50);
    CHECK(PING_MS(b) < FAST);
    expect_err_has(H_AT, READ_REPLY(a), "ERR Script timed out: hl.hl_loop exceeded udf-time-limit (500 ms).",
                   "Nothing it wrote was applied.");
    HOSTILE(a, b, "EVAL", "while true do end", TIMEOUT_ERR, "udf-time-limit (500 ms)", FAST);
    HOSTILE(a, b, "EVAL", "pcall(function() while true do end end) return 'escaped'", TIMEOUT_ERR,
            NULL, FAST);
    HOSTILE(a, b, "EVAL", "while true do pcall(function() while true do end end) end", TIMEOUT_ERR,
            NULL, FAST);
    HOSTILE(a, b, "EVAL", "while true do xpcall(function() while true do end end, function(e) return e end) end",
            TIMEOUT_ERR, NULL, FAST);
    /* Coroutines the script creates. */
    HOSTILE(a, b, "EVAL",
            "local co = coroutine.create(function() while true do end end) return {coroutine.resume(co)}",
            TIMEOUT_ERR, NULL, FAST);
    HOSTILE(a, b, "EVAL", "local f = coroutine.wrap(function() while true do end end) f() return 1",
            TIMEOUT_ERR, NULL, FAST);
    HOSTILE(a, b, "EVAL",
            "local co = coroutine.create(function() pcall(function() while true do end end) end) "
            "coroutine.resume(co) return 'swallowed'", TIMEOUT_ERR, NULL, FAST);
    HOSTILE(a, b, "EVAL",
            "local co = coroutine.create(function() while true do coroutine.yield(1) end end) "
            "while true do coroutine.resume(co) end", TIMEOUT_ERR, NULL, FAST);
    /* C callbacks that cannot yield: not preempted, still killed. */
    HOSTILE(a, b, "EVAL",
            "local t = {3, 2, 1, 5, 4} table.sort(t, function(x, y) while true do end end) return 1",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL",
            "local t = {3, 2, 1} table.sort(t, function(x, y) pcall(function() while true do end end) return x < y end) return t",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL", "return string.gsub('abc', '%w', function(c) while true do end end)",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL",
            "return string.gsub('abc', '%w', function(c) local co = coroutine.wrap(function() while true do end end) co() end)",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL",
            "local t = setmetatable({}, {__index = function() while true do end end}) return t.x",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL", "return tostring(setmetatable({}, {__tostring = function() while true do end end}))",
            TIMEOUT_ERR, NULL, SLOW);
    /* Pathological patterns: the matcher runs in C. */
    HOSTILE(a, b, "EVAL", "return string.rep('a', 100000):find(string.rep('a*', 20) .. 'b')",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL", "return string.rep('a', 100000):match(string.rep('a-', 20) .. 'b')",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL", "for m in string.rep('a', 100000):gmatch(string.rep('a*', 20) .. 'b') do end",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL", "return string.gsub(string.rep('a', 100000), string.rep('a*', 20) .. 'b', 'x')",
            TIMEOUT_ERR, NULL, SLOW);
    HOSTILE(a, b, "EVAL", "return pcall(string.find, string.rep('a', 100000), string.rep('a*', 20) .. 'b')",
            TIMEOUT_ERR, NULL, SLOW);
    /* A normal pattern still works. */
    EXPECT_BULK("world", a, "EVAL", "return ('hello world'):match('(%a+)$')", "0");
    EXPECT_ALIVE(s->port);
    eddy_free(a);
    eddy_free(b);
    h_server_free(s);
}

/* Coroutines inside coroutines: a preemption of the innermost one must be invisible
 * to the script (every level's resume passes it on), and a loop at any depth is
 * still stopped by the time limit. */
static void t_nested_coroutines(void)
{
    struct h_server *s = h_server_start("--threads", "1", NULL);
    eddy_ctx *a = h_connect_port(s->port), *b = h_connect_port(s->port);
    const char *work = "local function work() local n = 0 for i = 1, 3e7 do n = n + 1 end return n end\n";
    char script[512];
    snprintf(script, sizeof(script), "%s%s", work, "local inner = coroutine.wrap(work) return inner()");
    EXPECT_INT(30000000, a, "EVAL", script, "0");
    snprintf(script, sizeof(script), "%s%s", work,
             "local outer = coroutine.wrap(function() local inner = coroutine.wrap(work) return inner() end)\n"
             "return outer()");
    EXPECT_INT(30000000, a, "EVAL", script, "0");
    snprintf(script, sizeof(script), "%s%s", work,
             "local co = coroutine.create(function() return coroutine.resume(coroutine.create(work)) end)\n"
             "local r = {coroutine.resume(co)} for i = 1, #r do r[i] = tostring(r[i]) end return r");
    struct eddy_reply *r = CMD(a, "EVAL", script, "0");
    if (r->type != EDDY_REPLY_ARRAY || r->elements != 3 || !is_str(r->element[2], "30000000"))
        FAILF("resume(resume(work)) returned %s, expected [true, true, 30000000]", h_describe(r));
    eddy_reply_free(r);
    EXPECT_OK(a, "CONFIG", "SET", "udf-time-limit", "500");
    HOSTILE(a, b, "EVAL",
            "local function nest(d) if d == 0 then while true do end end "
            "local co = coroutine.create(nest) return coroutine.resume(co, d - 1) end return {nest(20)}",
            TIMEOUT_ERR, NULL, FAST);
    eddy_free(a);
    eddy_free(b);
    h_server_free(s);
}

/* ---- Memory limit ------------------------------------------------------------------------------ */

#define OOM_ERR "ERR Out of memory"

static void t_memory_bombs(void)
{
    /* The bombs must hit the memory cap before the time limit, also in slow builds. */
    char limit[24];
    snprintf(limit, sizeof(limit), "%d", h_scaled(5000));
    struct h_server *s = h_server_start("--threads", "1", "--udf-time-limit", limit, NULL);
    eddy_ctx *a = h_connect_port(s->port), *b = h_connect_port(s->port);
    /* Set before the first call, so the thread's state starts with it. */
    EXPECT_OK(a, "CONFIG", "SET", "udf-memory-limit", "16mb");
    EXPECT_INT(1, a, "EVAL", "return 1", "0");
    long long rss0 = h_info_field(a, "memory", "used_memory_rss");
    CHECK(rss0 > 0);
    LOAD_LIB(a, "mb",
             "#!lua name=mb\nredis.register_function('mb_bomb', function(keys)\n"
             "  redis.call('SET', keys[1], 'written') local t = {} while true do t[#t + 1] = string.rep('m', 1000) .. #t end end)\n");
    static const char *const bombs[] = {
        "return #string.rep('x', 100 * 1024 * 1024)",
        "return #string.rep('x', 20 * 1024 * 1024)",
        "local t = {} for i = 1, 1e8 do t[i] = i end return #t",
        "local t = {} for i = 1, 1e8 do t[i] = {i} end return #t",
        "local t = {} for i = 1, 1e8 do t['key' .. i] = i end return 1",
        "local s = 'x' while true do s = s .. s end",
        "local s = string.rep('a', 1e6) while true do s = s .. string.rep('b', 1e6) end",
        "local t = {} for i = 1, 1e5 do t[i] = string.rep('z', 1000) end return #table.concat(t, ',', 1, #t) + #table.concat(t)",
        "local t = {} for i = 1, 1e6 do t[i] = tostring(i) .. string.rep('q', 100) end return #t",
        "local v = {} for i = 1, 1e3 do v[i] = eddy.vec.zeros(1e5) end return #v",
        "return #cjson.encode((function() local t = {} for i = 1, 1e7 do t[i] = 'abcdefgh' end return t end)())",
        "local co = coroutine.wrap(function() local s = 'y' while true do s = s .. s end end) co()",
    };
    for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
        send_cmd(a, "EVAL", bombs[i], "0", (char *)NULL);
        int64_t l = PING_MS(b);
        struct eddy_reply *r = READ_REPLY(a);
        if (r->type != EDDY_REPLY_ERROR || strncmp(r->str, OOM_ERR, strlen(OOM_ERR)) != 0 ||
            strstr(r->str, "udf-memory-limit") == NULL)
            FAILF("bomb %zu (%.60s): expected \"" OOM_ERR "...\", got %s", i, bombs[i], h_describe(r));
        eddy_reply_free(r);
        if (l > SLOW)
            FAILF("bomb %zu: a PING took %lld ms", i, (long long)l);
        /* A normal call right after works, on the same state. */
        EXPECT_INT(3, a, "EVAL", "local t = {} for i = 1, 3 do t[i] = i end return #t", "0");
    }
    /* A memory error caught by pcall leaves a working call. */
    EXPECT_BULK("false", a, "EVAL", "local ok = pcall(string.rep, 'x', 100 * 1024 * 1024) return tostring(ok)", "0");
    /* A function that wrote before running out: nothing applied, named in the error. */
    EXPECT_ERR_HAS(OOM_ERR ": mb.mb_bomb exceeded udf-memory-limit (16777216 bytes).",
                   "Nothing it wrote was applied.", a, "FCALL", "mb_bomb", "1", "mem:k");
    EXPECT_INT(0, a, "EXISTS", "mem:k");
    /* The memory is given back (RSS is not measurable under the sanitizers, whose
     * allocators keep freed memory (ASan's quarantine, TSan's allocator, which
     * malloc_trim does not reach); the big call below checks the state there). */
    int64_t end = h_now_ms() + 5000;
    long long rss;
    char *info = CMD_TEXT(a, "INFO", "server");
    bool asan = strstr(info, "sanitizer:none") == NULL;
    free(info);
    while ((rss = h_info_field(a, "memory", "used_memory_rss")) >= 2 * rss0 && h_now_ms() < end &&
           !asan)
        h_sleep_ms(100);
    if (rss >= 2 * rss0 && !asan) {
        long long kb = CMD_INT(a, "EVAL", "return math.floor(collectgarbage('count'))", "0");
        FAILF("used_memory_rss is %lld after the bombs, started at %lld; the Lua state still "
              "holds %lld KB (garbage of the failed calls)", rss, rss0, kb);
    }
    /* The state is usable again: a big but allowed call works (the failed calls' data
     * must be collectable: string.rep's buffer does not trigger Lua's emergency GC). */
    EXPECT_INT(4 * 1024 * 1024, a, "EVAL", "return #string.rep('x', 4 * 1024 * 1024)", "0");
    EXPECT_ALIVE(s->port);
    eddy_free(a);
    eddy_free(b);
    h_server_free(s);
}

/* CONFIG SET udf-memory-limit applies to threads whose Lua state is already in use. */
static void t_memory_limit_config_set(void)
{
    struct h_server *s = h_server_start("--threads", "1", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_INT(30 * 1024 * 1024, c, "EVAL", "return #string.rep('x', 30 * 1024 * 1024)", "0");
    EXPECT_OK(c, "CONFIG", "SET", "udf-memory-limit", "16mb");
    EXPECT_BULK("16777216", c, "EVAL", "return '16777216'", "0");
    EXPECT_ERR_HAS(OOM_ERR, "udf-memory-limit (16777216 bytes)", c, "EVAL",
                   "return #string.rep('x', 30 * 1024 * 1024)", "0");
    EXPECT_OK(c, "CONFIG", "SET", "udf-memory-limit", "64mb");
    EXPECT_INT(30 * 1024 * 1024, c, "EVAL", "return #string.rep('x', 30 * 1024 * 1024)", "0");
    eddy_free(c);
    h_server_free(s);
}

/* ---- Preemption, KILL, timeouts ------------------------------------------------------------------ */

#define LIB_BUSY                                                                               \
    "#!lua name=busy\n"                                                                        \
    "redis.register_function('spin', function(keys, args)\n"                                   \
    "  local function now() local t = redis.call('TIME')\n"                                   \
    "    return tonumber(t[1]) + tonumber(t[2]) / 1e6 end\n"                                   \
    "  local t0, n = now(), 0\n" /* wall time: os.clock() is the process's CPU time */          \
    "  while now() - t0 < tonumber(args[1]) do n = n + 1 end\n"                                \
    "  return n end)\n"                                                                        \
    "redis.register_function('write_spin', function(keys)\n"                                   \
    "  redis.call('SET', keys[1], 'written') eddy.set(keys[2], 'w2')\n"                         \
    "  while true do end end)\n"                                                               \
    "redis.register_function('write_pcall_spin', function(keys)\n"                             \
    "  redis.call('SET', keys[1], 'written')\n"                                                \
    "  while true do pcall(function() while true do end end) end end)\n"                       \
    "redis.register_function('write_co_spin', function(keys)\n"                                \
    "  local co = coroutine.wrap(function() redis.call('SET', keys[1], 'written') while true do end end)\n" \
    "  pcall(co) return 'swallowed' end)\n"

/* One thread: the long call and the other clients share it, so they are served only
 * because the call yields. */
static void t_preemption(void)
{
    struct h_server *s = h_server_start("--threads", "1", "--udf-time-limit", "10000", NULL);
    eddy_ctx *a = h_connect_port(s->port), *b = h_connect_port(s->port);
    LOAD_LIB(b, "busy", LIB_BUSY);
    EXPECT_OK(b, "SET", "pre:k", "v");
    int64_t t0 = h_now_ms();
    send_cmd(a, "FCALL", "spin", "0", "2", (char *)NULL);
    h_sleep_ms(100);
    int64_t worst = 0;
    int n = 0;
    while (h_now_ms() - t0 < 1500) {
        int64_t t1 = h_now_ms();
        EXPECT_BULK("v", b, "GET", "pre:k");
        EXPECT_STATUS("PONG", b, "PING");
        int64_t l = h_now_ms() - t1;
        worst = l > worst ? l : worst;
        n++;
    }
    /* A new connection is accepted and served too. */
    EXPECT_ALIVE(s->port);
    /* FUNCTION STATS shows the running call. */
    struct eddy_reply *r = CMD(b, "FUNCTION", "STATS");
    const struct eddy_reply *run = KV(r, "running_script");
    CHECK(run->type == EDDY_REPLY_ARRAY);
    const struct eddy_reply *name = KV(run, "name");
    CHECK(name->type == EDDY_REPLY_STRING && strstr(name->str, "spin") != NULL);
    const struct eddy_reply *cmd = KV(run, "command");
    CHECK(cmd->type == EDDY_REPLY_ARRAY && cmd->elements >= 1 &&
          strcasecmp(cmd->element[0]->str, "fcall") == 0);
    CHECK(KV(run, "duration_ms")->integer >= 1000);
    eddy_reply_free(r);
    int64_t served = h_now_ms();
    r = READ_REPLY(a);
    int64_t done = h_now_ms();
    if (r->type != EDDY_REPLY_INTEGER || r->integer <= 0)
        FAILF("spin: %s", h_describe(r));
    eddy_reply_free(r);
    fprintf(stderr, "  preemption: %d GET+PING pairs during a %lld ms call, worst %lld ms\n", n,
            (long long)(done - t0), (long long)worst);
    CHECK(done - t0 >= 1500);
    CHECK(served < done);
    CHECK(n >= 10);
    if (worst >= 500)
        FAILF("a GET+PING took %lld ms while the call ran", (long long)worst);
    eddy_free(a);
    eddy_free(b);
    h_server_free(s);
}

/* Starts fn on a, checks its first write is invisible to b, kills it with kill_cmd,
 * and checks the error and that nothing was applied. */
static void kill_case(const char *file, int line, eddy_ctx *a, eddy_ctx *b, const char *kind,
                      const char *fn, const char *kill_cmd, const char *want)
{
    h_expect_int(file, line, h_cmd(file, line, b, "DEL", "kill:a", "kill:b", (char *)NULL), 0);
    if (strcmp(kind, "FCALL") == 0)
        send_cmd(a, "FCALL", fn, "2", "kill:a", "kill:b", (char *)NULL);
    else
        send_cmd(a, "EVAL", fn, "2", "kill:a", "kill:b", (char *)NULL);
    h_sleep_ms(300);
    h_expect_nil(file, line, h_cmd(file, line, b, "GET", "kill:a", (char *)NULL));
    int64_t t0 = h_now_ms();
    h_expect_status(file, line, h_cmd(file, line, b, kill_cmd, "KILL", (char *)NULL), "OK");
    struct eddy_reply *r = read_reply(file, line, a);
    int64_t took = h_now_ms() - t0;
    if (r->type != EDDY_REPLY_ERROR || strcmp(r->str, want) != 0)
        h_fail(file, line, "%s %.40s: expected \"%s\", got %s", kind, fn, want, h_describe(r));
    eddy_reply_free(r);
    if (took > 1000)
        h_fail(file, line, "the killed call answered after %lld ms", (long long)took);
    h_expect_nil(file, line, h_cmd(file, line, b, "GET", "kill:a", (char *)NULL));
    h_expect_nil(file, line, h_cmd(file, line, b, "GET", "kill:b", (char *)NULL));
    h_expect_err(file, line, h_cmd(file, line, b, kill_cmd, "KILL", (char *)NULL),
                 "NOTBUSY No scripts in execution right now.");
    h_expect_int(file, line, h_cmd(file, line, a, "EVAL", "return 9", "0", (char *)NULL), 9);
}
#define KILL_CASE(a, b, kind, fn, kill_cmd, want) kill_case(H_AT, (a), (b), (kind), (fn), (kill_cmd), (want))

#define FKILLED "ERR Script killed by user with FUNCTION KILL. Nothing it wrote was applied."
#define SKILLED "ERR Script killed by user with SCRIPT KILL. Nothing it wrote was applied."

static void t_kill_and_timeout(void)
{
    struct h_server *s = h_server_start("--udf-time-limit", "20000", NULL);
    eddy_ctx *a = h_connect_port(s->port), *b = h_connect_port(s->port);
    LOAD_LIB(b, "busy", LIB_BUSY);
    KILL_CASE(a, b, "FCALL", "write_spin", "FUNCTION", FKILLED);
    KILL_CASE(a, b, "FCALL", "write_pcall_spin", "FUNCTION", FKILLED);
    KILL_CASE(a, b, "FCALL", "write_co_spin", "FUNCTION", FKILLED);
    KILL_CASE(a, b, "EVAL", "redis.call('SET', KEYS[1], 'x') eddy.set(KEYS[2], 'y') while true do end",
              "SCRIPT", SKILLED);
    KILL_CASE(a, b, "EVAL",
              "redis.call('SET', KEYS[1], 'x') while true do pcall(function() while true do end end) end",
              "SCRIPT", SKILLED);
    KILL_CASE(a, b, "EVAL",
              "redis.call('SET', KEYS[1], 'x') local t = {} for i = 1, 1e9 do t[i % 1000 + 1] = redis.call('GET', KEYS[1]) end",
              "SCRIPT", SKILLED);
    /* Timeouts discard writes too. */
    EXPECT_OK(b, "CONFIG", "SET", "udf-time-limit", "500");
    EXPECT_ERR("ERR Script timed out: busy.write_spin exceeded udf-time-limit (500 ms). Nothing "
               "it wrote was applied.", a, "FCALL", "write_spin", "2", "kill:a", "kill:b");
    EXPECT_ERR_PREFIX(TIMEOUT_ERR "busy.write_pcall_spin", a, "FCALL", "write_pcall_spin", "2",
                      "kill:a", "kill:b");
    EXPECT_ERR_PREFIX(TIMEOUT_ERR "busy.write_co_spin", a, "FCALL", "write_co_spin", "2",
                      "kill:a", "kill:b");
    EXPECT_ERR_PREFIX(TIMEOUT_ERR, a, "EVAL", "redis.call('SET', KEYS[1], 'x') while true do end", "2",
                      "kill:a", "kill:b");
    EXPECT_INT(0, b, "EXISTS", "kill:a", "kill:b");
    /* A call that finishes in time commits. */
    EXPECT_INT(1, a, "EVAL", "redis.call('SET', KEYS[1], 'x') return 1", "1", "kill:a");
    EXPECT_BULK("x", b, "GET", "kill:a");
    EXPECT_ALIVE(s->port);
    eddy_free(a);
    eddy_free(b);
    h_server_free(s);
}

/* ---- Transactions --------------------------------------------------------------------------------- */

#define LIB_TX                                                                                 \
    "#!lua name=tx\n"                                                                          \
    "redis.register_function('tx_incr', function(keys) return redis.call('INCR', keys[1]) end)\n" \
    "redis.register_function('tx_rmw', function(keys)\n"                                       \
    "  local v = tonumber(redis.call('GET', keys[1]) or '0')\n"                                \
    "  local x = 0 for i = 1, 300 do x = x + i end\n"                                          \
    "  redis.call('SET', keys[1], tostring(v + 1))\n"                                          \
    "  return v + 1 end)\n"                                                                    \
    "redis.register_function('tx_commit', function(keys)\n"                                    \
    "  local v = tonumber(eddy.get(keys[1]) or '0')\n"                                         \
    "  local x = 0 for i = 1, 300 do x = x + i end\n"                                          \
    "  eddy.set(keys[1], tostring(v + 1))\n"                                                   \
    "  eddy.commit()\n"                                                                        \
    "  return v + 1 end)\n"                                                                    \
    "redis.register_function('tx_transfer', function(keys, args)\n"                            \
    "  local amt = tonumber(args[1])\n"                                                        \
    "  local a = tonumber(redis.call('GET', keys[1]))\n"                                       \
    "  local x = 0 for i = 1, 300 do x = x + i end\n"                                          \
    "  local b = tonumber(eddy.get(keys[2]))\n"                                                \
    "  redis.call('SET', keys[1], a - amt)\n"                                                  \
    "  eddy.set(keys[2], tostring(b + amt))\n"                                                 \
    "  redis.call('INCR', keys[3])\n"                                                          \
    "  return a - amt end)\n"                                                                  \
    "redis.register_function{function_name='tx_total', flags={'no-writes'}, callback=function(keys)\n" \
    "  local a = tonumber(redis.call('GET', keys[1]))\n"                                       \
    "  local x = 0 for i = 1, 2000 do x = x + i end\n"                                         \
    "  return a + tonumber(eddy.get(keys[2])) end}\n"

/* A helper process: n FCALLs of fn on key, pipelined in batches; every reply must be an
 * integer. */
static void counter_client(const char *fn, const char *key, int n)
{
    h_helper();
    eddy_ctx *c = h_connect();
    enum { BATCH = 50 };
    const char *argv[] = {"FCALL", fn, "1", key};
    for (int done = 0; done < n; done += BATCH) {
        int m = n - done < BATCH ? n - done : BATCH;
        for (int i = 0; i < m; i++)
            CHECK(eddy_append_argv(c, 4, argv, NULL) == EDDY_OK);
        for (int i = 0; i < m; i++) {
            struct eddy_reply *r = READ_REPLY(c);
            if (r->type != EDDY_REPLY_INTEGER)
                FAILF("FCALL %s: %s", fn, h_describe(r));
            eddy_reply_free(r);
        }
    }
    eddy_free(c);
    _exit(0);
}

static void t_txn_counters(void)
{
    enum { CLIENTS = 50, PER = 1000 };
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    LOAD_LIB(c, "tx", LIB_TX);
    EXPECT_INT(0, c, "DEL", "tx:incr", "tx:rmw", "tx:commit");
    h_raise_nofile(6 * CLIENTS + 64);
    pid_t pids[3 * CLIENTS];
    int64_t t0 = h_now_ms();
    for (int i = 0; i < 3 * CLIENTS; i++) {
        fflush(stdout);
        fflush(stderr);
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            /* tx_commit: a conflict at eddy.commit() retries the call, so every
             * increment is applied exactly once and every reply is an integer. */
            if (i % 3 == 0)
                counter_client("tx_incr", "tx:incr", PER);
            else if (i % 3 == 1)
                counter_client("tx_rmw", "tx:rmw", PER);
            else
                counter_client("tx_commit", "tx:commit", PER / 2);
        }
    }
    wait_helpers(pids, 3 * CLIENTS, "counter clients");
    fprintf(stderr, "  txn: %d FCALLs in %lld ms\n", 2 * CLIENTS * PER + CLIENTS * PER / 2,
            (long long)(h_now_ms() - t0));
    EXPECT_BULK("50000", c, "GET", "tx:incr");
    EXPECT_BULK("50000", c, "GET", "tx:rmw");
    EXPECT_BULK("25000", c, "GET", "tx:commit");
    EXPECT_INT(3, c, "DEL", "tx:incr", "tx:rmw", "tx:commit");
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    eddy_free(c);
}

static void transfer_client(int id, int n)
{
    h_helper();
    eddy_ctx *c = h_connect();
    unsigned seed = (unsigned)id * 7919u + 1;
    for (int i = 0; i < n; i++) {
        char amt[16];
        snprintf(amt, sizeof(amt), "%d", (int)(rand_r(&seed) % 50) + 1);
        bool ab = rand_r(&seed) & 1;
        struct eddy_reply *r = CMD(c, "FCALL", "tx_transfer", "3", ab ? "{tx}a" : "{tx}b",
                                   ab ? "{tx}b" : "{tx}a", "{tx}n", amt);
        if (r->type != EDDY_REPLY_INTEGER)
            FAILF("transfer: %s", h_describe(r));
        eddy_reply_free(r);
    }
    eddy_free(c);
    _exit(0);
}

static void reader_client(void)
{
    h_helper();
    eddy_ctx *c = h_connect();
    long reads = 0;
    for (;;) {
        struct eddy_reply *r = CMD(c, "FCALL_RO", "tx_total", "2", "{tx}a", "{tx}b");
        if (r->type != EDDY_REPLY_INTEGER || r->integer != 2000)
            FAILF("read %ld: total %s, expected 2000", reads, h_describe(r));
        eddy_reply_free(r);
        r = CMD(c, "MGET", "{tx}a", "{tx}b", "{tx}done");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
        bool done = r->element[2]->type != EDDY_REPLY_NIL;
        eddy_reply_free(r);
        reads++;
        if (done)
            break;
    }
    if (reads < 10)
        FAILF("only %ld reads overlapped the transfers", reads);
    eddy_free(c);
    _exit(0);
}

static void t_txn_transfer(void)
{
    enum { WRITERS = 20, READERS = 5, PER = 500 };
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    LOAD_LIB(c, "tx", LIB_TX);
    EXPECT_INT(0, c, "DEL", "{tx}a", "{tx}b", "{tx}n", "{tx}done");
    EXPECT_OK(c, "MSET", "{tx}a", "1000", "{tx}b", "1000");
    pid_t readers[READERS], writers[WRITERS];
    for (int i = 0; i < READERS; i++) {
        fflush(stdout);
        fflush(stderr);
        readers[i] = fork();
        CHECK(readers[i] >= 0);
        if (readers[i] == 0)
            reader_client();
    }
    for (int i = 0; i < WRITERS; i++) {
        fflush(stdout);
        fflush(stderr);
        writers[i] = fork();
        CHECK(writers[i] >= 0);
        if (writers[i] == 0)
            transfer_client(i, PER);
    }
    int bad = 0;
    for (int i = 0; i < WRITERS; i++) {
        int st;
        if (waitpid(writers[i], &st, 0) != writers[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    EXPECT_OK(c, "SET", "{tx}done", "1");
    wait_helpers(readers, READERS, "readers");
    if (bad)
        FAILF("%d of %d transfer clients failed", bad, WRITERS);
    EXPECT_BULK("10000", c, "GET", "{tx}n");
    long long a = atoll(CMD_TEXT(c, "GET", "{tx}a")), b = atoll(CMD_TEXT(c, "GET", "{tx}b"));
    CHECK_EQ_INT(a + b, 2000);
    EXPECT_INT(2000, c, "FCALL_RO", "tx_total", "2", "{tx}a", "{tx}b");
    EXPECT_INT(4, c, "DEL", "{tx}a", "{tx}b", "{tx}n", "{tx}done");
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    eddy_free(c);
}

/* A slow call that reads a key other clients write without pause: every attempt
 * spans some of their writes, so retried on later loop iterations it would lose all
 * of its 100 attempts. After UDF_HOLD_AFTER conflicts a retry holds the stripes of
 * the keys it read (the writers wait), so each call succeeds, applied exactly once,
 * through a plain end (slow_rmw) and through eddy.commit (slow_step). */
#define LIB_STARVE                                                                             \
    "#!lua name=starve\n"                                                                      \
    "local function spin(n) local x = 0 for i = 1, n do x = x + i end return x end\n"         \
    "redis.register_function('slow_rmw', function(keys, args)\n"                              \
    "  local v = redis.call('GET', keys[1]); spin(tonumber(args[1]))\n"                       \
    "  return redis.call('INCR', keys[2]) end)\n"                                              \
    "redis.register_function('slow_step', function(keys, args)\n"                             \
    "  local v = eddy.get(keys[1]); spin(tonumber(args[1]))\n"                                \
    "  local n = tonumber(eddy.get(keys[2]) or '0') + 1\n"                                     \
    "  eddy.set(keys[2], tostring(n)); eddy.commit()\n"                                        \
    "  return n end)\n"                                                                         \
    "redis.register_function('slow_keyless', function(keys, args)\n"                          \
    "  local v = redis.call('GET', keys[1]); spin(tonumber(args[1]))\n"                       \
    "  redis.call('DBSIZE')\n"                                                                 \
    "  return redis.call('INCR', keys[2]) end)\n"

static void hot_writer(void)
{
    h_helper();
    eddy_ctx *c = h_connect();
    enum { BATCH = 64 };
    const char *set[] = {"SET", "{st}hot", "v"};
    const char *stop[] = {"EXISTS", "{st}stop"};
    for (;;) {
        for (int i = 0; i < BATCH; i++)
            CHECK(eddy_append_argv(c, 3, set, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 2, stop, NULL) == EDDY_OK);
        for (int i = 0; i < BATCH; i++) {
            struct eddy_reply *r = READ_REPLY(c);
            if (r->type != EDDY_REPLY_STATUS)
                FAILF("SET: %s", h_describe(r));
            eddy_reply_free(r);
        }
        struct eddy_reply *r = READ_REPLY(c);
        bool done = r->type == EDDY_REPLY_INTEGER && r->integer == 1;
        eddy_reply_free(r);
        if (done)
            break;
    }
    eddy_free(c);
    _exit(0);
}

static void t_txn_slow_call_not_starved(void)
{
    enum { WRITERS = 4, CALLS = 8 };
    eddy_ctx *c = h_connect();
    LOAD_LIB(c, "starve", LIB_STARVE);
    CMD(c, "DEL", "{st}hot", "{st}n1", "{st}n2", "{st}n3", "{st}stop");
    long long held0 = h_info_field(c, "stats", "function_held_retries");
    CHECK(held0 >= 0);
    pid_t pids[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        fflush(stdout);
        fflush(stderr);
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0)
            hot_writer();
    }
    while (CMD_INT(c, "EXISTS", "{st}hot") == 0)
        usleep(1000);
    for (int i = 1; i <= CALLS; i++) {
        EXPECT_INT(i, c, "FCALL", "slow_rmw", "2", "{st}hot", "{st}n1", "300000");
        EXPECT_INT(i, c, "FCALL", "slow_step", "2", "{st}hot", "{st}n2", "300000");
    }
    long long held = h_info_field(c, "stats", "function_held_retries") - held0;
    /* A command without keys (DBSIZE) works outside the call's transaction and may
     * wait for locks: a held attempt gives its stripes back first (UDF_EXEC_UNHOLD),
     * so such a call can still lose to the writers, but never hangs the server, and
     * an increment is applied exactly when the reply says so. */
    long long applied = 0;
    for (int i = 0; i < 4; i++) {
        struct eddy_reply *r = CMD(c, "FCALL", "slow_keyless", "2", "{st}hot", "{st}n3", "300000");
        if (r->type == EDDY_REPLY_INTEGER)
            CHECK_EQ_INT(r->integer, ++applied);
        else if (r->type != EDDY_REPLY_ERROR || strstr(r->str, "conflicted") == NULL)
            FAILF("slow_keyless: %s", h_describe(r));
        eddy_reply_free(r);
    }
    EXPECT_OK(c, "SET", "{st}stop", "1");
    wait_helpers(pids, WRITERS, "writers");
    fprintf(stderr, "  %d slow calls each way, %lld retries held their keys; %lld of 4 with DBSIZE\n",
            CALLS, held, applied);
    CHECK(held > 0);
    char want[24];
    snprintf(want, sizeof(want), "%d", CALLS);
    EXPECT_BULK(want, c, "GET", "{st}n1");
    EXPECT_BULK(want, c, "GET", "{st}n2");
    if (applied > 0) {
        snprintf(want, sizeof(want), "%lld", applied);
        EXPECT_BULK(want, c, "GET", "{st}n3");
    }
    EXPECT_INT(4 + (applied > 0), c, "DEL", "{st}hot", "{st}n1", "{st}n2", "{st}n3", "{st}stop");
    EXPECT_OK(c, "FUNCTION", "DELETE", "starve");
    eddy_free(c);
}

/* Calls read cached keys' current values, which can be newer than their snapshot: an
 * attempt may then see keys that one MSET wrote together in two different states.
 * Such an attempt never commits (validation), and if it fails because of what it saw
 * it runs again instead of replying the error: the script below raises on a torn
 * pair, so every reply must be a whole pair. */
static void torn_writer(int n)
{
    h_helper();
    eddy_ctx *c = h_connect();
    for (int i = 0; i < n; i += 20) {
        for (int j = i; j < i + 20; j++) {
            char v[16];
            snprintf(v, sizeof(v), "%d", j);
            const char *argv[] = {"MSET", "{torn}a", v, "{torn}b", v};
            CHECK(eddy_append_argv(c, 5, argv, NULL) == EDDY_OK);
        }
        for (int j = i; j < i + 20; j++) {
            struct eddy_reply *r = READ_REPLY(c);
            if (r->type != EDDY_REPLY_STATUS)
                FAILF("MSET: %s", h_describe(r));
            eddy_reply_free(r);
        }
    }
    EXPECT_OK(c, "SET", "{torn}done", "1");
    eddy_free(c);
    _exit(0);
}

static void torn_reader(bool ro)
{
    static const char src[] =
        "local a = redis.call('GET', KEYS[1])\n"
        "local x = 0 for i = 1, 200 do x = x + i end\n"
        "local b = redis.call('GET', KEYS[2])\n"
        "if a ~= b then error('torn pair ' .. tostring(a) .. ' ' .. tostring(b)) end\n"
        "if ARGV[1] == 'w' then redis.call('SET', KEYS[3], a) end\n"
        "return a";
    h_helper();
    eddy_ctx *c = h_connect();
    long calls = 0;
    for (;;) {
        struct eddy_reply *r = CMD(c, ro ? "EVAL_RO" : "EVAL", src, "3", "{torn}a", "{torn}b",
                                   "{torn}c", ro ? "r" : "w");
        if (r->type != EDDY_REPLY_STRING)
            FAILF("call %ld: %s", calls, h_describe(r));
        eddy_reply_free(r);
        calls++;
        r = CMD(c, "GET", "{torn}done");
        bool done = r->type != EDDY_REPLY_NIL;
        eddy_reply_free(r);
        if (done)
            break;
    }
    eddy_free(c);
    _exit(0);
}

static void t_txn_torn_reads_retried(void)
{
    enum { READERS = 6 };
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "{torn}a", "{torn}b", "{torn}c", "{torn}done");
    EXPECT_OK(c, "MSET", "{torn}a", "0", "{torn}b", "0");
    pid_t pids[READERS + 1];
    for (int i = 0; i < READERS + 1; i++) {
        fflush(stdout);
        fflush(stderr);
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            if (i == READERS)
                torn_writer(20000);
            else
                torn_reader(i % 2 == 0);
        }
    }
    wait_helpers(pids, READERS + 1, "torn-read clients");
    EXPECT_BULK("19999", c, "GET", "{torn}a");
    EXPECT_INT(4, c, "DEL", "{torn}a", "{torn}b", "{torn}c", "{torn}done");
    eddy_free(c);
}

/* A server with threads I/O threads, udf-time-limit time_ms (scaled for slow builds)
 * and udf-memory-limit 32 MB, for the review tests below. */
static struct h_server *start_budgeted(const char *threads, int time_ms)
{
    char tl[24];
    snprintf(tl, sizeof(tl), "%d", h_scaled(time_ms));
    return h_server_start("--threads", threads, "--udf-time-limit", tl, "--udf-memory-limit",
                          "32mb", NULL);
}

/* Found by a review (hostile scripts), each fixed in udf/: one attack per row, on one
 * thread's state (--threads 1) with a 200 ms and 32 MB budget. Every call must answer
 * (what it answers is in the row) within 3 s, the server stays up and serves others,
 * and a plain call works after it. Before the fixes: rows 0-1 aborted eddyd (a
 * metamethod raised in the reply conversion, outside any protected call); 2-6 and 8
 * hung the thread for good (a metamethod, a stock C loop, an xpcall handler, none of
 * which the hook reached); 9 crashed it (cjson depth); 10 took 2 GB of memory and
 * 7.6 s; 11 ran for ever, growing 80 MB/s; 12 grew eddyd to 7.8 GB; 13 overran the
 * time limit by 48 s; 14 by 5-7 s. */
static void t_sandbox_review_attacks(void)
{
    struct h_server *s = start_budgeted("1", 200);
    eddy_ctx *a = h_connect_port(s->port), *b = h_connect_port(s->port);
    static const struct {
        const char *script, *want; /* the reply: "ERR x" an error containing x, "(empty)" an
                                    * empty array, text the second element of an array, or
                                    * an integer */
    } rows[] = {
        {"error(setmetatable({}, {__index = function() error('boom') end}))", "ERR unknown error"},
        {"return setmetatable({}, {__index = function() error('boom') end})", "(empty)"},
        {"return setmetatable({}, {__index = function() while true do end end})", "(empty)"},
        {"return #string.rep('', math.maxinteger)", "0"},
        {"return table.move({}, 1, 1e15, 1, {})", "ERR table.move: too many elements"},
        {"local t = setmetatable({}, {__len = function() return 1e15 end}) table.insert(t, 1, 'x')",
         "ERR table length 1000000000000000 is more"},
        {"local t = setmetatable({}, {__len = function() return 1e15 end}) table.remove(t, 1)",
         "ERR table length 1000000000000000 is more"},
        {"return {xpcall(function() error('x', 0) end, function(m) return 'handled ' .. m end)}",
         "handled x"},
        {"xpcall(function() error('x') end, function(m) while true do end end)",
         "ERR Script timed out"},
        {"cjson.decode_max_depth(2^31 - 1) return cjson.decode(string.rep('[', 4e5) .. "
         "string.rep(']', 4e5))",
         "ERR user_script:1: cjson settings are fixed"},
        {"local s = string.rep('a', 1e6) local t = {} for i = 1, 2000 do t[i] = s end "
         "return #cjson.encode(t)",
         "ERR user_script:1: cjson.encode: the result would exceed udf-memory-limit"},
        {"local t = {} t[1] = t t[2] = t return t", "ERR the reply is larger than udf-memory-limit"},
        {"local s = string.rep('a', 8e6) local i = 0 while true do i = i + 1 "
         "redis.call('SET', 'sbx:k' .. i, s) end",
         "ERR exceed udf-memory-limit ("},
        {"local s = string.rep('a', 8e6) while true do local x = s:upper() end",
         "ERR Script timed out"},
        {"local v = eddy.vec.zeros(3e6) while true do v:fill(1) end", "ERR Script timed out"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t t0 = h_now_ms();
        send_cmd(a, "EVAL", rows[i].script, "0", (char *)NULL);
        struct eddy_reply *r = READ_REPLY(a);
        int64_t ms = h_now_ms() - t0;
        char got[400];
        snprintf(got, sizeof(got), "%s", h_describe(r));
        bool ok;
        if (strncmp(rows[i].want, "ERR", 3) == 0) /* an error containing the rest */
            ok = r->type == EDDY_REPLY_ERROR && strncmp(r->str, "ERR", 3) == 0 &&
                 strstr(r->str, rows[i].want + (rows[i].want[3] == ' ' ? 4 : 3)) != NULL;
        else if (strcmp(rows[i].want, "(empty)") == 0)
            ok = r->type == EDDY_REPLY_ARRAY && r->elements == 0;
        else if (r->type == EDDY_REPLY_ARRAY)
            ok = r->elements == 2 && is_str(r->element[1], rows[i].want);
        else
            ok = r->type == EDDY_REPLY_INTEGER && r->integer == atoll(rows[i].want);
        eddy_reply_free(r);
        if (!ok)
            FAILF("row %zu (%.70s): expected \"%s\", got %s", i, rows[i].script, rows[i].want, got);
        if (ms > h_scaled(3000))
            FAILF("row %zu (%.70s): answered after %lld ms", i, rows[i].script, (long long)ms);
        PING_MS(b);
        EXPECT_INT(3, a, "EVAL", "local t = {} for i = 1, 3 do t[i] = i end return #t", "0");
    }
    EXPECT_INT(0, a, "DBSIZE");
    EXPECT_BULK("{\"a\":[1,2]}", a, "EVAL", "return cjson.encode({a = {1, 2}})", "0");
    EXPECT_INT(1000, a, "EVAL", "return cjson.encode_max_depth()", "0");
    /* math.randomseed in one call does not fix the next call's numbers. */
    long long seeded = CMD_INT(a, "EVAL", "math.randomseed(42) return math.random(1, 2^40)", "0");
    long long after = CMD_INT(a, "EVAL", "return math.random(1, 2^40)", "0");
    CHECK(seeded == CMD_INT(a, "EVAL", "math.randomseed(42) return math.random(1, 2^40)", "0"));
    if (after == seeded)
        FAILF("the call after math.randomseed(42) drew %lld, the seeded first number", after);
    /* FUNCTION LOAD whose xpcall handler loops: its budget still ends it. */
    int64_t t0 = h_now_ms();
    EXPECT_ERR_HAS("ERR Error registering functions", "FUNCTION LOAD timeout", a, "FUNCTION",
                   "LOAD",
                   "#!lua name=xl\nxpcall(function() while true do end end, "
                   "function() while true do end end)");
    CHECK(h_now_ms() - t0 < h_scaled(5000));
    EXPECT_ALIVE(s->port);
    eddy_free(a);
    eddy_free(b);
    h_server_free(s);
}

/* Found by a review (hostile MAPREDUCE): a map's result holding one table many times
 * was serialized without end (RSS +115 MB/s; no kill reached it); arguments or
 * partial results larger than what was left of udf-memory-limit (a 40 MB FCALL
 * argument, two 24 MB vectors for @sum) were pushed outside a protected call and
 * eddyd aborted; and a call killed after eddy.commit() said nothing it wrote was
 * applied. */
static void t_mapreduce_review(void)
{
    struct h_server *s = start_budgeted("2", 500);
    eddy_ctx *a = h_connect_port(s->port);
    LOAD_LIB(a, "mr",
             "#!lua name=mr\n"
             "redis.register_function('m_dag', function() local t = {1}\n"
             "  for i = 1, 40 do t = {t, t} end return t end)\n"
             "redis.register_function('m_vec', function() return eddy.vec.zeros(3e6) end)\n"
             "redis.register_function('f_len', function(keys, args) return #args[1] end)\n"
             "redis.register_function('f_step', function(keys)\n"
             "  redis.call('SET', keys[1], 'kept') eddy.commit()\n"
             "  redis.call('SET', keys[1] .. 'x', 'lost') while true do end end)\n");
    int64_t t0 = h_now_ms();
    EXPECT_ERR_HAS("ERR map partition", "larger than udf-memory-limit allows", a, "MAPREDUCE",
                   "m_dag", "@partials");
    CHECK(h_now_ms() - t0 < h_scaled(3000));
    EXPECT_ERR_HAS("ERR Out of memory: the arguments of @sum exceed udf-memory-limit", NULL, a,
                   "MAPREDUCE", "m_vec", "@sum");
    enum { BIG = 40 << 20 };
    char *big = malloc(BIG);
    CHECK(big != NULL);
    memset(big, 'b', BIG);
    const char *av[] = {"FCALL", "f_len", "0", big};
    size_t al[] = {5, 5, 1, BIG};
    expect_err_has(H_AT, h_cmdv(H_AT, a, 4, av, al),
                   "ERR Out of memory: the arguments of mr.f_len exceed udf-memory-limit", NULL);
    free(big);
    EXPECT_INT(3, a, "FCALL", "f_len", "0", "abc");
    EXPECT_ERR_HAS("ERR Script timed out: mr.f_step", "before its last eddy.commit() stays applied",
                   a, "FCALL", "f_step", "1", "st:k");
    EXPECT_BULK("kept", a, "GET", "st:k");
    EXPECT_INT(0, a, "EXISTS", "st:kx");
    EXPECT_ALIVE(s->port);
    eddy_free(a);
    h_server_free(s);
}

/* Found by the same review: compiled EVAL scripts were cached in the state without a
 * bound; 10,000 distinct ones filled udf-memory-limit and every later call of the
 * thread failed for memory. */
static void t_sandbox_script_cache_bounded(void)
{
    struct h_server *s = h_server_start("--threads", "1", "--udf-memory-limit", "16mb", NULL);
    eddy_ctx *a = h_connect_port(s->port);
    LOAD_LIB(a, "victim", "#!lua name=victim\nredis.register_function('v', function() return 'ok' end)\n");
    char pad[4001];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    enum { N = 6000 };
    for (int i = 0; i < N; i++) {
        char src[4100];
        snprintf(src, sizeof(src), "local pad = '%s' return %d", pad, i);
        send_cmd(a, "EVAL", src, "0", (char *)NULL);
        if (i % 100 == 99 || i == N - 1)
            for (int j = i - i % 100; j <= i; j++) {
                struct eddy_reply *r = READ_REPLY(a);
                if (r->type != EDDY_REPLY_INTEGER || r->integer != j)
                    FAILF("EVAL %d of %d distinct scripts: %s", j, N, h_describe(r));
                eddy_reply_free(r);
            }
    }
    EXPECT_BULK("ok", a, "FCALL", "v", "0");
    eddy_free(a);
    h_server_free(s);
}

/* Found by a review (thirteenth session): EVAL looked its script up again by SHA-1
 * when the call started, and a SCRIPT FLUSH on the other I/O thread in between made
 * it answer NOSCRIPT (53 in 53,450 EVALs). It compiles from the source it was sent.
 * Also: SCRIPT LOAD compiled without the KEYS/ARGV prefix EVAL runs with, so a script
 * with 199 locals loaded but never ran; both refuse it now. */
static void t_eval_during_script_flush(void)
{
    struct h_server *s = h_server_start(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        eddy_ctx *f = h_connect_port(s->port);
        int64_t end = h_now_ms() + 2500;
        while (f != NULL && h_now_ms() < end) {
            struct eddy_reply *r = eddy_command(f, "SCRIPT", "FLUSH", NULL);
            if (r == NULL)
                break;
            eddy_reply_free(r);
        }
        _exit(0);
    }
    eddy_ctx *a = h_connect_port(s->port);
    eddy_ctx *b = h_connect_port(s->port); /* the other I/O thread, whichever a has */
    int noscript = 0, evals = 0;
    int64_t end = h_now_ms() + 2000;
    for (int round = 0; h_now_ms() < end; round++) {
        eddy_ctx *c = round % 2 ? a : b;
        for (int i = 0; i < 100; i++) {
            char src[64];
            snprintf(src, sizeof(src), "return %d", round * 100 + i);
            send_cmd(c, "EVAL", src, "0", (char *)NULL);
        }
        for (int i = 0; i < 100; i++) {
            struct eddy_reply *r = READ_REPLY(c);
            if (r->type == EDDY_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0)
                noscript++;
            else if (r->type != EDDY_REPLY_INTEGER || r->integer != round * 100 + i)
                FAILF("EVAL return %d: %s", round * 100 + i, h_describe(r));
            evals++;
            eddy_reply_free(r);
        }
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (noscript > 0)
        FAILF("%d of %d EVALs answered NOSCRIPT during SCRIPT FLUSH", noscript, evals);
    /* 199 locals and the two of the prefix: over Lua's 200, for SCRIPT LOAD as for EVAL. */
    static char big[199 * 24 + 16];
    size_t off = 0;
    for (int i = 0; i < 199; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off, "local v%d = %d\n", i, i);
    snprintf(big + off, sizeof(big) - off, "return v198");
    EXPECT_ERR_HAS("ERR Error compiling script", "too many local variables", a, "SCRIPT", "LOAD",
                   big);
    EXPECT_ERR_HAS("ERR Error compiling script", "too many local variables", a, "EVAL", big, "0");
    eddy_free(a);
    eddy_free(b);
    h_server_free(s);
}

/* ---- Suite ------------------------------------------------------------------------------------- */

void suite_udf(void); /* until harness.h lists it with the other suites */

void suite_udf(void)
{
    h_run("udf_function_load_errors", t_function_load_errors, 0, 20);
    h_run("udf_function_load_timeout", t_function_load_timeout, 0, 20);
    h_run("udf_function_list", t_function_list, 0, 20);
    h_run("udf_function_delete_flush", t_function_delete_flush, 0, 20);
    h_run("udf_function_dump_restore", t_function_dump_restore, 0, 20);
    h_run("udf_function_stats_kill_idle", t_function_stats_kill_idle, 0, 20);
    h_run("udf_fcall", t_fcall, 0, 20);
    h_run("udf_fcall_numkeys_not_integer", t_fcall_numkeys_not_integer, 0, 20);
    h_run("udf_eval_script", t_eval_script, 0, 20);
    h_run("udf_eval_ro_shebang_without_flags", t_eval_ro_shebang_without_flags, 0, 20);
    h_run("udf_redis_api", t_redis_api, 0, 20);
    h_run("udf_conv_lua_to_resp2", t_conv_lua_to_resp2, 0, 20);
    h_run("udf_conv_lua_to_resp3", t_conv_lua_to_resp3, 0, 20);
    h_run("udf_conv_booleans", t_conv_booleans, 0, 20);
    h_run("udf_conv_resp_to_lua", t_conv_resp_to_lua, 0, 20);
    h_run("udf_cjson", t_cjson, 0, 20);
    h_run("udf_eddy_api", t_eddy_api, 0, 20);
    h_run("udf_eddy_vec", t_eddy_vec, 0, 20);
    h_run("udf_eddy_scan", t_eddy_scan, H_OWN, 40);
    h_run("udf_eddy_scan_prefix_once", t_eddy_scan_prefix_once, 0, 20);
    h_run("udf_sandbox", t_sandbox, 0, 30);
    h_run("udf_huge_returns", t_huge_returns, 0, 30);
    h_run("udf_persist_restart", t_persist_restart, H_OWN, 40);
    h_run("udf_hostile_loops", t_hostile_loops, H_OWN, 60);
    h_run("udf_nested_coroutines", t_nested_coroutines, H_OWN, 30);
    h_run("udf_memory_bombs", t_memory_bombs, H_OWN, 60);
    h_run("udf_memory_limit_config_set", t_memory_limit_config_set, H_OWN, 20);
    h_run("udf_preemption", t_preemption, H_OWN, 30);
    h_run("udf_kill_and_timeout", t_kill_and_timeout, H_OWN, 40);
    h_run("udf_sandbox_review_attacks", t_sandbox_review_attacks, H_OWN, 120);
    h_run("udf_sandbox_script_cache_bounded", t_sandbox_script_cache_bounded, H_OWN, 120);
    h_run("udf_eval_during_script_flush", t_eval_during_script_flush, H_OWN, 60);
    h_run("udf_mapreduce_review", t_mapreduce_review, H_OWN, 60);
    h_run("udf_txn_counters", t_txn_counters, 0, 90);
    h_run("udf_txn_transfer", t_txn_transfer, 0, 60);
    h_run("udf_txn_slow_call_not_starved", t_txn_slow_call_not_starved, 0, 90);
    h_run("udf_txn_torn_reads_retried", t_txn_torn_reads_retried, 0, 60);
}
