/* test_persist.c - durability, each on its own server: data and TTLs survive a
 * SHUTDOWN or SIGTERM and a restart on the same directory; under --appendfsync
 * always, every acknowledged write survives a kill -9 at a random moment. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum { NKEYS = 2000 };

/* Writes NKEYS keys in one pipeline: p:i = "value-i" (+ binary tail for some);
 * i % 4 == 1 with EX 1000, i % 4 == 2 with PX 300, others without TTL. */
static void write_keys(eddy_ctx *c)
{
    for (int i = 0; i < NKEYS; i++) {
        char key[32], val[64];
        snprintf(key, sizeof(key), "p:%05d", i);
        int vl = snprintf(val, sizeof(val), "value-%d", i);
        if (i % 10 == 0) {
            memcpy(val + vl, "\0\r\n", 3);
            vl += 3;
        }
        const char *argv[] = {"SET", key, val, i % 4 == 1 ? "EX" : "PX",
                              i % 4 == 1 ? "1000" : "300"};
        size_t lens[] = {3, strlen(key), (size_t)vl, 2, i % 4 == 1 ? 4u : 3u};
        int argc = i % 4 == 1 || i % 4 == 2 ? 5 : 3;
        CHECK(eddy_append_argv(c, argc, argv, lens) == EDDY_OK);
    }
    for (int i = 0; i < NKEYS; i++) {
        struct eddy_reply *r;
        if (eddy_get_reply(c, &r) != EDDY_OK)
            FAILF("reply %d: %s", i, eddy_errstr(c));
        h_expect_status(H_AT, r, "OK");
    }
}

/* Checks what write_keys wrote, after the PX 300 keys expired. */
static void check_keys(eddy_ctx *c)
{
    for (int i = 0; i < NKEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "p:%05d", i);
        const char *get[] = {"GET", key};
        const char *pttl[] = {"PTTL", key};
        CHECK(eddy_append_argv(c, 2, get, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 2, pttl, NULL) == EDDY_OK);
    }
    for (int i = 0; i < NKEYS; i++) {
        char key[32], val[64];
        snprintf(key, sizeof(key), "p:%05d", i);
        int vl = snprintf(val, sizeof(val), "value-%d", i);
        if (i % 10 == 0) {
            memcpy(val + vl, "\0\r\n", 3);
            vl += 3;
        }
        struct eddy_reply *g, *t;
        if (eddy_get_reply(c, &g) != EDDY_OK || eddy_get_reply(c, &t) != EDDY_OK)
            FAILF("reply for %s: %s", key, eddy_errstr(c));
        if (i % 4 == 2) {
            if (g->type != EDDY_REPLY_NIL)
                FAILF("%s (PX 300) is still there after restart: %s", key, h_describe(g));
            h_expect_nil(H_AT, g);
            h_expect_int(H_AT, t, -2);
            continue;
        }
        if (g->type != EDDY_REPLY_STRING || g->len != (size_t)vl || memcmp(g->str, val, g->len))
            FAILF("%s after restart: %s", key, h_describe(g));
        eddy_reply_free(g);
        if (i % 4 == 1) {
            if (t->type != EDDY_REPLY_INTEGER || t->integer < 900000 || t->integer > 1000000)
                FAILF("PTTL %s after restart: %s, expected about 1000000", key, h_describe(t));
            eddy_reply_free(t);
        } else {
            h_expect_int(H_AT, t, -1);
        }
    }
    EXPECT_INT(NKEYS / 4 * 3, c, "DBSIZE");
}

static void t_restart_after_shutdown(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    write_keys(c);
    size_t big = 1u << 20;
    char *v = malloc(big);
    CHECK(v != NULL);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)(i * 31 + 7);
    const char *set[] = {"SET", "p:big", v};
    size_t setl[] = {3, 5, big};
    h_expect_status(H_AT, h_cmdv(H_AT, c, 3, set, setl), "OK");
    EXPECT_INT(5, c, "INCRBY", "p:ctr", "5");
    EXPECT_OK(c, "SET", "p:gone", "x");
    EXPECT_INT(1, c, "DEL", "p:gone");
    struct eddy_reply *r = eddy_command(c, "SHUTDOWN", (char *)NULL);
    CHECK(r == NULL);
    eddy_free(c);
    int st;
    if (!h_server_wait_exit(s, 10000, &st))
        FAILF("eddyd still runs 10 s after SHUTDOWN");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    h_sleep_ms(400); /* past the PX 300 keys' time */
    h_server_restart(s);
    c = h_connect_port(s->port);
    EXPECT_INT(0, c, "EXISTS", "p:gone");
    EXPECT_BULK("5", c, "GET", "p:ctr");
    const char *get[] = {"GET", "p:big"};
    h_expect_bulk(H_AT, h_cmdv(H_AT, c, 2, get, NULL), v, big);
    EXPECT_INT(1, c, "DEL", "p:big");
    EXPECT_INT(1, c, "DEL", "p:ctr");
    check_keys(c);
    /* And a second restart, after writes on the restarted server. */
    EXPECT_OK(c, "SET", "p:second", "2");
    eddy_free(c);
    h_server_restart(s);
    c = h_connect_port(s->port);
    EXPECT_BULK("2", c, "GET", "p:second");
    eddy_free(c);
    free(v);
    h_server_free(s);
}

/* SIGTERM with appendfsync no: a clean shutdown still keeps everything. */
static void t_restart_after_sigterm(void)
{
    struct h_server *s = h_server_start("--appendfsync", "no", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    write_keys(c);
    eddy_free(c);
    int st = h_server_stop(s);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    h_sleep_ms(400);
    h_server_restart(s);
    c = h_connect_port(s->port);
    check_keys(c);
    eddy_free(c);
    h_server_free(s);
}

/* A writer does acknowledged INCRs and SETs of unique values (in batches of `batch`
 * pipelined commands) until a helper process kills the server with SIGKILL at a
 * random moment; after a restart every acknowledged write must be there. */
static void kill9_run(const char *fsync_mode, int batch, unsigned seed)
{
    struct h_server *s = h_server_start("--appendfsync", fsync_mode, NULL);
    srand(seed ^ (unsigned)time(NULL) ^ (unsigned)getpid());
    int delay_ms = 150 + rand() % 500;
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_OK(c, "SET", "kv:warmup", "1");
    pid_t killer = fork();
    if (killer == 0) {
        h_helper();
        h_sleep_ms(delay_ms);
        kill(s->pid, SIGKILL);
        _exit(0);
    }
    CHECK(killer > 0);
    long long last_ctr = 0; /* last acknowledged INCR value */
    long sets_acked = 0;    /* kv:0 .. kv:sets_acked-1 were acknowledged */
    long sent = 0;
    int64_t end = h_now_ms() + 15000;
    bool dead = false;
    while (!dead && h_now_ms() < end) {
        /* Each batch: INCR kv:ctr, SET kv:<n> <n>-<n*n>, alternating. */
        for (int i = 0; i < batch; i++) {
            char key[32], val[64];
            long n = sent + i;
            if (n % 2 == 0) {
                const char *argv[] = {"INCR", "kv:ctr"};
                if (eddy_append_argv(c, 2, argv, NULL) != EDDY_OK)
                    dead = true;
            } else {
                snprintf(key, sizeof(key), "kv:%ld", n / 2);
                snprintf(val, sizeof(val), "%ld-%ld", n / 2, (n / 2) * (n / 2));
                const char *argv[] = {"SET", key, val};
                if (eddy_append_argv(c, 3, argv, NULL) != EDDY_OK)
                    dead = true;
            }
        }
        for (int i = 0; i < batch && !dead; i++) {
            struct eddy_reply *r;
            if (eddy_get_reply(c, &r) != EDDY_OK) {
                dead = true;
                break;
            }
            long n = sent + i;
            if (n % 2 == 0) {
                if (r->type != EDDY_REPLY_INTEGER || r->integer != last_ctr + 1)
                    FAILF("INCR #%ld replied %s, expected %lld", n / 2, h_describe(r),
                          last_ctr + 1);
                last_ctr = r->integer;
            } else {
                if (r->type != EDDY_REPLY_STATUS)
                    FAILF("SET #%ld replied %s", n / 2, h_describe(r));
                sets_acked = n / 2 + 1;
            }
            eddy_reply_free(r);
        }
        sent += batch;
    }
    eddy_free(c);
    int st;
    waitpid(killer, &st, 0);
    if (!dead)
        FAILF("the server was not killed within 15 s (%ld commands acknowledged)", sent);
    if (!h_server_wait_exit(s, 5000, &st))
        FAILF("the killed server did not exit");
    if (last_ctr < 50)
        fprintf(stderr, "  note: only %lld INCRs acknowledged before the kill\n", last_ctr);
    h_server_restart(s);
    c = h_connect_port(s->port);
    struct eddy_reply *r = CMD(c, "GET", "kv:ctr");
    long long ctr = r->type == EDDY_REPLY_STRING ? atoll(r->str) : 0;
    if (ctr < last_ctr || ctr > last_ctr + batch)
        FAILF("after kill -9: kv:ctr = %s, last acknowledged INCR = %lld", h_describe(r),
              last_ctr);
    eddy_reply_free(r);
    for (long i = 0; i < sets_acked; i++) {
        char key[32], val[64];
        snprintf(key, sizeof(key), "kv:%ld", i);
        snprintf(val, sizeof(val), "%ld-%ld", i, i * i);
        const char *get[] = {"GET", key};
        CHECK(eddy_append_argv(c, 2, get, NULL) == EDDY_OK);
    }
    long missing = 0, first_missing = -1;
    for (long i = 0; i < sets_acked; i++) {
        char val[64];
        snprintf(val, sizeof(val), "%ld-%ld", i, i * i);
        if (eddy_get_reply(c, &r) != EDDY_OK)
            FAILF("GET kv:%ld after restart: %s", i, eddy_errstr(c));
        if (r->type != EDDY_REPLY_STRING || strcmp(r->str, val) != 0) {
            if (first_missing < 0)
                first_missing = i;
            missing++;
        }
        eddy_reply_free(r);
    }
    if (missing > 0)
        FAILF("after kill -9: %ld of %ld acknowledged SETs lost (first kv:%ld)", missing,
              sets_acked, first_missing);
    fprintf(stderr, "  kill -9 (%s, batch %d) after %d ms: %lld INCRs, %ld SETs acknowledged, "
            "all present\n", fsync_mode, batch, delay_ms, last_ctr, sets_acked);
    eddy_free(c);
    h_server_free(s);
}

static void t_kill9_always(void)
{
    kill9_run("always", 1, 1);
}

static void t_kill9_always_pipelined(void)
{
    kill9_run("always", 32, 2);
}

/* Under everysec, writes acknowledged well over a second before a kill -9 stay. */
static void t_kill9_everysec(void)
{
    struct h_server *s = h_server_start("--appendfsync", "everysec", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    write_keys(c);
    eddy_free(c);
    h_sleep_ms(1500);
    h_server_kill9(s);
    h_server_restart(s);
    c = h_connect_port(s->port);
    check_keys(c);
    eddy_free(c);
    h_server_free(s);
}

/* What a reader is sent survives a kill -9, even a write still in flight on another
 * I/O thread: the writer's SET is applied (visible) and held there before it counts
 * as written (DEBUG HOLD-WRITE), a GET on the other thread reads it, and the server
 * is killed before the writer's own WAL flush. (make test-all found a reader sent a
 * value that the restarted node did not have.) */
static void read_in_flight_run(const char *fsync_mode, const char *cache_size, bool fcall)
{
    enum { HOLD_MS = 3000 };
    struct h_server *s = h_server_start("--enable-debug-command", "yes", "--appendfsync",
                                        fsync_mode, "--value-cache-size", cache_size, NULL);
    eddy_ctx *w = h_connect_port(s->port); /* accepted in turn: on the two threads */
    eddy_ctx *r = h_connect_port(s->port);
    EXPECT_BULK("inflight", w, "FUNCTION", "LOAD",
                "#!lua name=inflight\n"
                "redis.register_function('put', function(keys, args)\n"
                "  return redis.call('SET', keys[1], args[1]) end)");
    EXPECT_OK(w, "SET", "inflight", "old");
    char hold[16];
    snprintf(hold, sizeof(hold), "%d", HOLD_MS);
    EXPECT_OK(w, "DEBUG", "HOLD-WRITE", hold);
    const char *set[] = {"SET", "inflight", "new"};
    const char *call[] = {"FCALL", "put", "1", "inflight", "new"};
    CHECK(fcall ? eddy_append_argv(w, 5, call, NULL) == EDDY_OK
                : eddy_append_argv(w, 3, set, NULL) == EDDY_OK);
    CHECK(eddy_flush(w) == EDDY_OK);
    /* Read until the held write shows (it is applied within milliseconds). */
    int64_t t0 = h_now_ms();
    char *got = NULL;
    for (;;) {
        got = h_text(H_AT, CMD(r, "GET", "inflight"));
        if (strcmp(got, "new") == 0 || h_now_ms() - t0 > HOLD_MS / 2)
            break;
        free(got);
        h_sleep_ms(5);
    }
    int64_t waited = h_now_ms() - t0;
    if (strcmp(got, "new") != 0)
        FAILF("the reader never saw the held write within %d ms (it read \"%s\"): are the "
              "two connections on one I/O thread?", HOLD_MS / 2, got);
    if (waited >= HOLD_MS / 2)
        FAILF("the reader saw the write only after %lld ms: it waited for the writer's "
              "thread, so the write was not in flight", (long long)waited);
    free(got);
    h_server_kill9(s); /* the writer is still held: its own flush has not run */
    eddy_free(w);
    eddy_free(r);
    h_server_restart(s);
    eddy_ctx *c = h_connect_port(s->port);
    struct eddy_reply *v = CMD(c, "GET", "inflight");
    if (v->type != EDDY_REPLY_STRING || strcmp(v->str, "new") != 0)
        FAILF("a reader was sent \"new\", but after kill -9 (%s) the key is %s", fsync_mode,
              h_describe(v));
    eddy_reply_free(v);
    eddy_free(c);
    h_server_free(s);
}

static void t_read_in_flight_everysec(void)
{
    read_in_flight_run("everysec", "64mb", false);
}

static void t_read_in_flight_always(void)
{
    read_in_flight_run("always", "64mb", false);
}

/* The reader finds the write in the memtable, not in the value cache. */
static void t_read_in_flight_no_cache(void)
{
    read_in_flight_run("everysec", "0", false);
}

/* The write is a function call's commit. */
static void t_read_in_flight_fcall(void)
{
    read_in_flight_run("everysec", "0", true);
}

/* A SCAN cursor taken before a restart resumes after it without skipping keys. */
static void t_scan_across_restart(void)
{
    enum { N = 3000 };
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "sr:%05d", i);
        const char *argv[] = {"SET", key, "v"};
        CHECK(eddy_append_argv(c, 3, argv, NULL) == EDDY_OK);
    }
    for (int i = 0; i < N; i++) {
        struct eddy_reply *r;
        CHECK(eddy_get_reply(c, &r) == EDDY_OK);
        h_expect_status(H_AT, r, "OK");
    }
    static unsigned char seen[N];
    char cursor[32] = "0";
    int calls = 0;
    bool restarted = false;
    do {
        if (calls == 10 && !restarted) {
            eddy_free(c);
            h_server_restart(s);
            c = h_connect_port(s->port);
            restarted = true;
        }
        struct eddy_reply *r = CMD(c, "SCAN", cursor, "COUNT", "100");
        if (r->type != EDDY_REPLY_ARRAY || r->elements != 2)
            FAILF("SCAN %s replied %s", cursor, h_describe(r));
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            int idx;
            if (sscanf(r->element[1]->element[i]->str, "sr:%d", &idx) == 1 && idx >= 0 && idx < N)
                seen[idx] = 1;
        }
        eddy_reply_free(r);
    } while (strcmp(cursor, "0") != 0 && ++calls < 100000);
    CHECK(restarted);
    for (int i = 0; i < N; i++)
        if (!seen[i])
            FAILF("SCAN across a restart never returned sr:%05d", i);
    eddy_free(c);
    h_server_free(s);
}

void suite_persist(void)
{
    h_run("persist_restart_after_shutdown", t_restart_after_shutdown, H_OWN, 60);
    h_run("persist_restart_after_sigterm_fsync_no", t_restart_after_sigterm, H_OWN, 60);
    h_run("persist_kill9_appendfsync_always", t_kill9_always, H_OWN, 60);
    h_run("persist_kill9_appendfsync_always_pipelined", t_kill9_always_pipelined, H_OWN, 60);
    h_run("persist_kill9_everysec_after_1s", t_kill9_everysec, H_OWN, 60);
    h_run("persist_read_of_write_in_flight_everysec", t_read_in_flight_everysec, H_OWN, 60);
    h_run("persist_read_of_write_in_flight_always", t_read_in_flight_always, H_OWN, 60);
    h_run("persist_read_of_write_in_flight_no_value_cache", t_read_in_flight_no_cache, H_OWN, 60);
    h_run("persist_read_of_write_in_flight_fcall", t_read_in_flight_fcall, H_OWN, 60);
    h_run("persist_scan_cursor_across_restart", t_scan_across_restart, H_OWN, 60);
}
