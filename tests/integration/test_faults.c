/* test_faults.c - injected storage errors (DEBUG FAULT, eddyd --enable-debug-command
 * yes; engine.h eng_fault_set), driven through the protocol, SQLite style: each
 * failing operation must give its client a clear error reply and apply nothing, every
 * reply must tell the truth (OK: the key is there; error: it is not), reads and PING go
 * on while writes fail, writes work again once the fault clears, and after a kill -9
 * and restart every acknowledged write is there. Under appendfsync always a failed
 * WAL sync is refused too, never acknowledged. Real disk-full errors are in
 * hardening_diskfull.sh. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "harness.h"

void suite_faults(void);

#define WRITE_ERR "ERR storage error: write failed: IO error: injected fault"
#define READ_ERR "ERR storage error: read failed: IO error: injected fault"

static const char lib_src[] = "#!lua name=faultlib\n"
                              "redis.register_function('put', function(keys, args)\n"
                              "  redis.call('SET', keys[1], args[1])\n"
                              "  return redis.call('INCR', keys[2])\n"
                              "end)\n";

/* SET key v:key; returns true if acknowledged. */
static bool set_acked(eddy_ctx *c, const char *key)
{
    char val[96];
    snprintf(val, sizeof(val), "v:%s", key);
    struct eddy_reply *r = CMD(c, "SET", key, val);
    bool ok = r->type == EDDY_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (!ok && r->type != EDDY_REPLY_ERROR)
        FAILF("SET %s replied %s", key, h_describe(r));
    eddy_reply_free(r);
    return ok;
}

static void expect_value(eddy_ctx *c, const char *key)
{
    char val[96];
    snprintf(val, sizeof(val), "v:%s", key);
    h_expect_bulk(H_AT, CMD(c, "GET", key), val, strlen(val));
}

/* Writes ack:0..n-1, all of which must be acknowledged. */
static void write_acked(eddy_ctx *c, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "ack:%d", i);
        if (!set_acked(c, key))
            FAILF("SET %s refused without an injected fault", key);
    }
}

static void check_acked(eddy_ctx *c, int n)
{
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "ack:%d", i);
        expect_value(c, key);
    }
}

/* Injected write errors: each command fails cleanly and applies nothing. */
static void write_faults(eddy_ctx *c)
{
    EXPECT_OK(c, "SET", "cnt", "10");
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "3");
    EXPECT_ERR(WRITE_ERR, c, "SET", "f:1", "x");
    EXPECT_ERR(WRITE_ERR, c, "INCR", "cnt");
    EXPECT_ERR(WRITE_ERR, c, "MSET", "f:2", "a", "f:3", "b");
    /* The three faults are used up: writes work again. */
    EXPECT_INT(11, c, "INCR", "cnt");
    EXPECT_NIL(c, "GET", "f:1");
    EXPECT_INT(0, c, "EXISTS", "f:2", "f:3");
    EXPECT_BULK("11", c, "GET", "cnt");
}

/* A pipeline during a fault: whatever the server groups into one RocksDB write, every
 * OK means the key is there and every error that it is not. */
static void pipeline_truthful(eddy_ctx *c)
{
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "2");
    char keys[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof(keys[i]), "pipe:%d", i);
        const char *set[] = {"SET", keys[i], "p"};
        CHECK(eddy_append_argv(c, 3, set, NULL) == EDDY_OK);
    }
    bool acked[40];
    int nerr = 0;
    for (int i = 0; i < 40; i++) {
        struct eddy_reply *r;
        CHECK(eddy_get_reply(c, &r) == EDDY_OK);
        acked[i] = r->type == EDDY_REPLY_STATUS;
        if (!acked[i]) {
            if (r->type != EDDY_REPLY_ERROR || strcmp(r->str, WRITE_ERR) != 0)
                FAILF("pipelined SET %d replied %s", i, h_describe(r));
            nerr++;
        }
        eddy_reply_free(r);
    }
    CHECK(nerr >= 1);
    for (int i = 0; i < 40; i++) {
        if (acked[i])
            EXPECT_BULK("p", c, "GET", keys[i]);
        else
            EXPECT_NIL(c, "GET", keys[i]);
    }
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "0");
}

/* A function call's commit fails whole. */
static void call_faults(eddy_ctx *c)
{
    struct eddy_reply *r = CMD(c, "FUNCTION", "LOAD", "REPLACE", lib_src);
    CHECK(r->type == EDDY_REPLY_STRING && strcmp(r->str, "faultlib") == 0);
    eddy_reply_free(r);
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "1");
    r = CMD(c, "FCALL", "put", "2", "fc:key", "fc:cnt", "x");
    if (r->type != EDDY_REPLY_ERROR || strstr(r->str, "IO error: injected fault") == NULL)
        FAILF("FCALL during a write fault replied %s", h_describe(r));
    eddy_reply_free(r);
    EXPECT_NIL(c, "GET", "fc:key");
    EXPECT_NIL(c, "GET", "fc:cnt");
    EXPECT_INT(1, c, "FCALL", "put", "2", "fc:key", "fc:cnt", "x");
    EXPECT_BULK("x", c, "GET", "fc:key");
}

/* Pipelined calls during a fault: their commits join the loop iteration's write, so
 * a failed write fails every call in it: each reply that is a number means its key
 * is there, each error that it is not. */
static void pipeline_calls_truthful(eddy_ctx *c)
{
    static const char src[] = "redis.call('SET', KEYS[1], ARGV[1])\nreturn 7";
    /* Stored first: the fault is for a call's commit, not the script's store. */
    struct eddy_reply *sl = CMD(c, "SCRIPT", "LOAD", src);
    CHECK(sl->type == EDDY_REPLY_STRING);
    eddy_reply_free(sl);
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "2");
    char keys[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof(keys[i]), "pcall:%d", i);
        const char *call[] = {"EVAL", src, "1", keys[i], "p"};
        CHECK(eddy_append_argv(c, 5, call, NULL) == EDDY_OK);
    }
    bool acked[40];
    int nerr = 0;
    for (int i = 0; i < 40; i++) {
        struct eddy_reply *r;
        CHECK(eddy_get_reply(c, &r) == EDDY_OK);
        acked[i] = r->type == EDDY_REPLY_INTEGER && r->integer == 7;
        if (!acked[i]) {
            if (r->type != EDDY_REPLY_ERROR || strstr(r->str, "IO error: injected fault") == NULL)
                FAILF("pipelined call %d replied %s", i, h_describe(r));
            nerr++;
        }
        eddy_reply_free(r);
    }
    CHECK(nerr >= 1);
    for (int i = 0; i < 40; i++) {
        if (acked[i])
            EXPECT_BULK("p", c, "GET", keys[i]);
        else
            EXPECT_NIL(c, "GET", keys[i]);
    }
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "0");
}

/* Every write fails until cleared; reads, PING, INFO go on. */
static void writes_down_reads_up(eddy_ctx *c, int nacked)
{
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "-1");
    for (int i = 0; i < 5; i++)
        EXPECT_ERR(WRITE_ERR, c, "SET", "down:k", "v");
    EXPECT_ERR(WRITE_ERR, c, "DEL", "ack:0");
    struct eddy_reply *r = CMD(c, "FUNCTION", "LOAD", "REPLACE", lib_src);
    if (r->type != EDDY_REPLY_ERROR ||
        strcmp(r->str, "ERR storage error: metadata write failed: IO error: injected fault") != 0)
        FAILF("FUNCTION LOAD during a write fault replied %s", h_describe(r));
    eddy_reply_free(r);
    check_acked(c, nacked);
    EXPECT_STATUS("PONG", c, "PING");
    CHECK(h_info_field(c, "server", "uptime_in_seconds") >= 0);
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "0");
    EXPECT_OK(c, "SET", "down:k", "v");
    EXPECT_INT(1, c, "DEL", "down:k");
}

/* Injected read errors: the read fails with a clear error, the next one works; a write
 * command whose read fails changes nothing. */
static void read_faults(eddy_ctx *c)
{
    EXPECT_OK(c, "DEBUG", "FAULT", "read", "2");
    EXPECT_ERR(READ_ERR, c, "GET", "ack:1");
    EXPECT_ERR(READ_ERR, c, "INCR", "cnt");
    expect_value(c, "ack:1");
    EXPECT_BULK("11", c, "GET", "cnt");
}

/* WAL flush errors under everysec: the batch's replies become errors and the client is
 * closed (the write may or may not survive: it was not acknowledged). The log says
 * when writes start failing and when they work again, not at each cron tick (it had a
 * line every 100 ms while the WAL failed: 36,000 an hour of a full disk). */
static void sync_faults(struct h_server *s, eddy_ctx *c)
{
    /* The cron samples the state at each tick: first let it see the writes work (the
     * earlier steps' faults may still be its last view of them). */
    for (int i = 0; i < 200 && h_server_log_lines(s, "Storage writes are failing") !=
                                   h_server_log_lines(s, "Storage writes work again"); i++)
        h_sleep_ms(20);
    int lines0 = h_server_log_lines(s, "");
    int failing0 = h_server_log_lines(s, "Storage writes are failing: WAL write failed");
    int again0 = h_server_log_lines(s, "Storage writes work again");
    EXPECT_OK(c, "DEBUG", "FAULT", "sync", "-1");
    struct eddy_reply *r = CMD(c, "SET", "sync:1", "x");
    if (r->type != EDDY_REPLY_ERROR ||
        strncmp(r->str, "ERR write-ahead log write failed: ", 34) != 0 ||
        strstr(r->str, "IO error: injected fault") == NULL)
        FAILF("SET during a WAL fault replied %s", h_describe(r));
    eddy_reply_free(r);
    r = eddy_command(c, "PING", (char *)NULL);
    if (r != NULL)
        FAILF("the connection stays open after a failed WAL write: PING replied %s",
              h_describe(r));
    eddy_ctx *c2 = h_connect_port(s->port);
    expect_value(c2, "ack:2");
    h_sleep_ms(1500); /* 15 cron ticks with the WAL failing */
    EXPECT_OK(c2, "DEBUG", "FAULT", "sync", "0");
    EXPECT_OK(c2, "SET", "sync:2", "y");
    eddy_free(c2);
    for (int i = 0; i < 100 && h_server_log_lines(s, "Storage writes work again") == again0; i++)
        h_sleep_ms(20);
    CHECK_EQ_INT(h_server_log_lines(s, "Storage writes are failing: WAL write failed"),
                 failing0 + 1);
    CHECK_EQ_INT(h_server_log_lines(s, "Storage writes work again"), again0 + 1);
    int added = h_server_log_lines(s, "") - lines0;
    if (added > 6)
        FAILF("%d log lines for one WAL failure of 1.5 s", added);
}

/* A client retrying writes on a failing disk: each failed write had its log line
 * (200 here); at most one a second is logged, and the next line logged says how many
 * were not. */
static void write_fault_log_bounded(struct h_server *s)
{
    eddy_ctx *c = h_connect_port(s->port);
    int lines0 = h_server_log_lines(s, "Write failed: write failed: IO error: injected fault");
    int summary0 = h_server_log_lines(s, "lines like it not logged)");
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "201");
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof(key), "flood:%d", i);
        EXPECT_ERR(WRITE_ERR, c, "SET", key, "x");
    }
    int added = h_server_log_lines(s, "Write failed: write failed: IO error: injected fault") -
                lines0;
    if (added < 1 || added > 3)
        FAILF("%d log lines for 200 failed writes", added);
    h_sleep_ms(1100);
    EXPECT_ERR(WRITE_ERR, c, "SET", "flood:last", "x");
    if (h_server_log_lines(s, "lines like it not logged)") <= summary0)
        FAILF("no new log line says how many failed writes were not logged");
    EXPECT_INT(0, c, "EXISTS", "flood:0", "flood:199", "flood:last");
    eddy_free(c);
}

/* Found by a disk-full review. (1) A function call whose write fails after a WAL flush
 * failed (a full disk) answered the WAL's error, closed its connection and failed the
 * reads pipelined with it; now it answers the write's error, as a SET. (2) EVAL of a new
 * script failed ("-metadata write failed") when the script could not be stored; it now
 * runs, cached until restart as in Redis. (3) FUNCTION LOAD whose WAL sync failed
 * answered an error and left the function out, yet the store had it and a restart
 * loaded it; now it is loaded at once and the error says the change is applied. */
static void calls_after_wal_failure(struct h_server *s)
{
    static const char lib2[] = "#!lua name=faultlib2\n"
                               "redis.register_function('five', function() return 5 end)\n";
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_OK(c, "DEBUG", "FAULT", "sync", "1");
    struct eddy_reply *r = CMD(c, "SET", "walf:1", "x");
    CHECK(r->type == EDDY_REPLY_ERROR);
    eddy_reply_free(r);
    eddy_free(c); /* closed by the server: the write was not acknowledged */
    c = h_connect_port(s->port);
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "1");
    const char *get[] = {"GET", "fc:key"};
    const char *call[] = {"FCALL", "put", "2", "walf:k", "walf:cnt", "y"};
    const char *ping[] = {"PING"};
    CHECK(eddy_append_argv(c, 2, get, NULL) == EDDY_OK);
    CHECK(eddy_append_argv(c, 6, call, NULL) == EDDY_OK);
    CHECK(eddy_append_argv(c, 2, get, NULL) == EDDY_OK);
    CHECK(eddy_append_argv(c, 1, ping, NULL) == EDDY_OK);
    /* The commands after a failed write in its batch answer its error too (as after a
     * SET's, pipeline_truthful), unless they were in a later batch. */
    const char *want[] = {"x", WRITE_ERR, "x", "PONG"};
    for (int i = 0; i < 4; i++) {
        CHECK(eddy_get_reply(c, &r) == EDDY_OK && r != NULL);
        bool ok = r->str != NULL && (strcmp(r->str, want[i]) == 0 ||
                                     (i >= 2 && strcmp(r->str, WRITE_ERR) == 0));
        if (!ok)
            FAILF("pipelined reply %d: %s, expected %s", i, h_describe(r), want[i]);
        eddy_reply_free(r);
    }
    EXPECT_STATUS("PONG", c, "PING"); /* the connection stays open */
    EXPECT_NIL(c, "GET", "walf:k");
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "1");
    EXPECT_INT(3, c, "EVAL", "return 3", "0");
    EXPECT_INT(3, c, "EVALSHA", "09d3822de862f46d784e6a36848b4f0736dda47a", "0"); /* cached */
    EXPECT_OK(c, "DEBUG", "FAULT", "sync", "1");
    r = CMD(c, "FUNCTION", "LOAD", lib2);
    if (r->type != EDDY_REPLY_ERROR || strncmp(r->str, "ERR storage error: ", 19) != 0 ||
        strstr(r->str, "the change is applied") == NULL)
        FAILF("FUNCTION LOAD with a failing WAL sync replied %s", h_describe(r));
    eddy_reply_free(r);
    eddy_free(c);
    c = h_connect_port(s->port);
    EXPECT_INT(5, c, "FCALL", "five", "0");
    EXPECT_OK(c, "SET", "walf:2", "z"); /* writes work: the WAL is flushed again */
    eddy_free(c);
}

/* Found by a code review. FUNCTION FLUSH that stopped part-way (here: the first
 * delete's WAL sync fails, so it is applied and the flush stops) left the deleted
 * library running in the threads' Lua states; it must be gone from FCALL as from
 * FUNCTION LIST. SCRIPT FLUSH whose delete failed answered an empty error ("-"). */
static void flush_faults(struct h_server *s)
{
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    EXPECT_BULK("la", c, "FUNCTION", "LOAD",
                "#!lua name=la\nredis.register_function('fa', function() return 1 end)");
    EXPECT_BULK("lb", c, "FUNCTION", "LOAD",
                "#!lua name=lb\nredis.register_function('fb', function() return 2 end)");
    EXPECT_INT(1, c, "FCALL", "fa", "0");
    EXPECT_INT(2, c, "FCALL", "fb", "0");
    EXPECT_OK(c, "DEBUG", "FAULT", "sync", "1");
    EXPECT_ERR_PREFIX("ERR storage error: WAL sync failed: IO error: injected fault (the change "
                      "is applied up to this write", c, "FUNCTION", "FLUSH");
    struct eddy_reply *r = CMD(c, "FUNCTION", "LIST");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 1);
    eddy_reply_free(r);
    /* One library is gone, everywhere; the other still runs. */
    r = CMD(c, "FCALL", "fa", "0");
    struct eddy_reply *r2 = CMD(c, "FCALL", "fb", "0");
    bool a_gone = r->type == EDDY_REPLY_ERROR && strncmp(r->str, "ERR Function not found", 22) == 0;
    bool b_gone = r2->type == EDDY_REPLY_ERROR && strncmp(r2->str, "ERR Function not found", 22) == 0;
    if (a_gone == b_gone || (!a_gone && r->integer != 1) || (!b_gone && r2->integer != 2))
        FAILF("after a part-way FUNCTION FLUSH: fa %s, fb %s", h_describe(r), h_describe(r2));
    eddy_reply_free(r);
    eddy_reply_free(r2);
    EXPECT_OK(c, "SET", "flush:heal", "1"); /* a write works: the WAL is flushed again */
    EXPECT_INT(4, c, "EVAL", "return 4", "0");
    EXPECT_OK(c, "DEBUG", "FAULT", "write", "1");
    EXPECT_ERR("ERR storage error: metadata delete failed: IO error: injected fault", c, "SCRIPT",
               "FLUSH");
    /* return 4 */
    EXPECT_INT(4, c, "EVALSHA", "ff408129b095e878eae274cc5f315244f0b5360f", "0");
    EXPECT_OK(c, "SCRIPT", "FLUSH");
    EXPECT_ERR_PREFIX("NOSCRIPT", c, "EVALSHA", "ff408129b095e878eae274cc5f315244f0b5360f", "0");
    EXPECT_OK(c, "FUNCTION", "FLUSH");
    eddy_free(c);
}

static void t_faults_everysec(void)
{
    struct h_server *s = h_server_start("--enable-debug-command", "yes", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    write_acked(c, 0, 300);
    write_faults(c);
    pipeline_truthful(c);
    pipeline_calls_truthful(c);
    call_faults(c);
    writes_down_reads_up(c, 300);
    read_faults(c);
    write_acked(c, 300, 100);
    sync_faults(s, c);
    eddy_free(c);
    write_fault_log_bounded(s);
    calls_after_wal_failure(s);
    /* Nothing acknowledged is lost; nothing refused by a write fault appears. */
    h_server_kill9(s);
    h_server_restart(s);
    c = h_connect_port(s->port);
    check_acked(c, 400);
    EXPECT_BULK("11", c, "GET", "cnt");
    EXPECT_BULK("y", c, "GET", "sync:2");
    EXPECT_INT(0, c, "EXISTS", "f:1", "f:2", "f:3", "down:k");
    EXPECT_BULK("x", c, "GET", "fc:key");
    EXPECT_BULK("1", c, "GET", "fc:cnt");
    EXPECT_INT(5, c, "FCALL", "five", "0"); /* the store had it: the restart loads it */
    EXPECT_NIL(c, "GET", "walf:k");
    eddy_free(c);
    flush_faults(s);
    h_server_free(s);
}

/* appendfsync always: a failed WAL fsync must not be acknowledged. The batch's writes
 * fail with an error and the client is closed (eddy keeps serving instead of exiting
 * as Redis does, docs/STORAGE.md); nothing is flushed until a write succeeds again;
 * after a kill -9 and restart everything acknowledged is there. One I/O thread, so the
 * cron (same thread) cannot take the fault. */
static void t_faults_always_sync(void)
{
    struct h_server *s = h_server_start("--enable-debug-command", "yes", "--appendfsync",
                                        "always", "--threads", "1", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    write_acked(c, 0, 200);
    EXPECT_OK(c, "DEBUG", "FAULT", "sync", "1");
    struct eddy_reply *r = CMD(c, "SET", "lost:1", "x");
    if (r->type != EDDY_REPLY_ERROR ||
        strncmp(r->str, "ERR write-ahead log write failed: WAL sync failed: ", 51) != 0 ||
        strstr(r->str, "IO error: injected fault") == NULL)
        FAILF("SET after a failed fsync under appendfsync always replied %s", h_describe(r));
    eddy_reply_free(r);
    r = eddy_command(c, "PING", (char *)NULL);
    if (r != NULL)
        FAILF("the connection stays open after a failed fsync: PING replied %s", h_describe(r));
    eddy_free(c);
    c = h_connect_port(s->port);
    expect_value(c, "ack:7"); /* reads go on */
    write_acked(c, 200, 50);  /* the fault is used up: a write succeeds, syncs resume */
    eddy_free(c);
    h_server_kill9(s);
    h_server_restart(s);
    c = h_connect_port(s->port);
    check_acked(c, 250);
    EXPECT_OK(c, "SET", "after", "1");
    eddy_free(c);
    h_server_free(s);
}

/* Off by default, like Redis's enable-debug-command; immutable at run time. */
static void t_debug_command_off_by_default(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_ERR("ERR DEBUG command not allowed. If the enable-debug-command option is set to "
               "\"local\", you can run it from a local connection, otherwise you need to set "
               "this option in the configuration file, and then restart the server.",
               c, "DEBUG", "FAULT", "write", "1");
    EXPECT_ERR("ERR CONFIG SET failed (possibly related to argument 'enable-debug-command') - "
               "can't set immutable config",
               c, "CONFIG", "SET", "enable-debug-command", "yes");
    EXPECT_OK(c, "SET", "dbg:k", "v");
    EXPECT_INT(1, c, "DEL", "dbg:k");
    eddy_free(c);
}

static void t_debug_fault_syntax(void)
{
    struct h_server *s = h_server_start("--enable-debug-command", "local", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_ERR("ERR unknown fault kind 'disk' (write, sync, read or all)", c, "DEBUG", "FAULT",
               "disk", "1");
    EXPECT_ERR("ERR value is not an integer or out of range", c, "DEBUG", "FAULT", "write", "x");
    EXPECT_ERR("ERR count must be -1 (until cleared), 0 (clear) or positive", c, "DEBUG",
               "FAULT", "write", "-2");
    EXPECT_ERR("ERR syntax error", c, "DEBUG", "FAULT", "write");
    EXPECT_ERR("ERR unknown subcommand 'nosuch'. Try DEBUG HELP.", c, "DEBUG", "nosuch");
    EXPECT_OK(c, "DEBUG", "FAULT", "all", "2");
    struct eddy_reply *r = CMD(c, "DEBUG", "FAULT");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 8);
    CHECK(r->element[1]->integer == 2 && r->element[3]->integer == 2 &&
          r->element[5]->integer == 2 && r->element[7]->integer == 0);
    eddy_reply_free(r);
    EXPECT_OK(c, "DEBUG", "FAULT", "all", "0");
    EXPECT_OK(c, "SET", "k", "v");
    eddy_free(c);
    h_server_free(s);
}

/* --min-free-disk above the free space (100%: the whole file system): commands that add
 * data are refused with a clear error, also inside a function (redis.call and
 * eddy.set), EXPIRE and PERSIST too (they rewrite the value), FUNCTION LOAD and
 * RESTORE, while reads, DEL and GETDEL run and a new script is cached, not stored
 * (gone after a restart); INFO and COMMAND show it; CONFIG SET 0 lets writes run
 * again within a cron tick. First, with 64 MB above the threshold, a write or a
 * pipeline larger than that is refused (or its last commands) before it is applied.
 * The real thing, on a tmpfs that fills up, is in hardening_diskfull.sh. */
static void t_min_free_disk(void)
{
    struct h_server *s = h_server_start("--min-free-disk", "10mb", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_OK(c, "SET", "mfd:k", "v");
    EXPECT_OK(c, "SET", "mfd:t", "v", "EX", "1000");
    EXPECT_OK(c, "SET", "mfd:g", "v");
    EXPECT_OK(c, "SET", "mfd:n", "1");
    EXPECT_BULK("faultlib", c, "FUNCTION", "LOAD", lib_src);
    EXPECT_BULK("mfdlib", c, "FUNCTION", "LOAD",
                "#!lua name=mfdlib\nredis.register_function('eset', function(k, a) "
                "eddy.set(k[1], a[1]) return 'ok' end)");
    CHECK_EQ_INT(h_info_field(c, "persistence", "disk_space_low"), 0);
    CHECK(h_info_field(c, "persistence", "disk_free_bytes") > 0);
    CHECK_EQ_INT(h_info_field(c, "persistence", "min_free_disk_bytes"), 10 << 20);
    /* 64 MB above the threshold: a 100 MB value is refused before it is written (the
     * cron measures between writes, the request's size counts), a 1 MB one is not. */
    long long avail = h_info_field(c, "persistence", "disk_free_bytes");
    if (avail < (200ll << 20))
        FAILF("this test needs 200 MB free in the data directory's file system, has %lld", avail);
    char minb[32];
    snprintf(minb, sizeof(minb), "%lld", avail - (64ll << 20));
    EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", minb);
    int64_t end = h_now_ms() + h_scaled(5000);
    while (h_info_field(c, "persistence", "min_free_disk_bytes") != avail - (64ll << 20) &&
           h_now_ms() < end)
        h_sleep_ms(20); /* the cron measured with the new threshold */
    size_t big = 100u << 20;
    char *val = malloc(big);
    CHECK(val != NULL);
    memset(val, 'b', big);
    /* A connection closed for its output limit within its batch: what its SET was
     * counted for (32 MB) is released too; it stayed counted for good when that
     * worker had nothing else to do, and the 20 MB SET (40 MB) after it was refused.
     * (XX of a missing key: nothing is written.) */
    {
        char kb2[2048];
        memset(kb2, 'k', sizeof(kb2));
        struct eddy_reply *kr = h_cmdv(H_AT, c, 3, (const char *[]){"SET", "mfd:2k", kb2},
                                       (const size_t[]){3, 6, sizeof(kb2)});
        CHECK(kr->type == EDDY_REPLY_STATUS);
        eddy_reply_free(kr);
        EXPECT_OK(c, "CONFIG", "SET", "client-output-buffer-limit", "1000");
        eddy_ctx *d = h_connect_port(s->port); /* the other I/O thread (round robin) */
        CHECK(eddy_append_argv(d, 4, (const char *[]){"SET", "mfd:none", val, "XX"},
                               (const size_t[]){3, 8, 16u << 20, 2}) == EDDY_OK);
        CHECK(eddy_append_argv(d, 2, (const char *[]){"GET", "mfd:2k"}, NULL) == EDDY_OK);
        CHECK(eddy_flush(d) == EDDY_OK);
        for (int i = 0; i < 2; i++) { /* nil, then the close (or both before it) */
            struct eddy_reply *dr = NULL;
            if (eddy_get_reply(d, &dr) != EDDY_OK)
                break;
            eddy_reply_free(dr);
        }
        eddy_free(d);
        EXPECT_OK(c, "CONFIG", "SET", "client-output-buffer-limit", "1gb");
        h_sleep_ms(300); /* three measures */
        kr = h_cmdv(H_AT, c, 4, (const char *[]){"SET", "mfd:none", val, "XX"},
                    (const size_t[]){3, 8, 20u << 20, 2});
        if (kr->type != EDDY_REPLY_NIL)
            FAILF("SET XX of 20 MB after a closed connection's 16 MB: %s", h_describe(kr));
        eddy_reply_free(kr);
    }
    struct eddy_reply *r = h_cmdv(H_AT, c, 3, (const char *[]){"SET", "mfd:big", val},
                                  (const size_t[]){3, 7, big});
    if (r->type != EDDY_REPLY_ERROR ||
        strncmp(r->str, "ERR disk space low: ", 20) != 0 ||
        strstr(r->str, " MB for the writes since (not measured yet), this write (200.0 MB: its "
                       "size in the WAL and in a table file) would go below min-free-disk (") == NULL)
        FAILF("SET of 100 MB with 64 MB above min-free-disk: %s", h_describe(r));
    eddy_reply_free(r);
    /* The largest threshold the option takes: refused, not wrapped around. */
    EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", "9223372036854775807");
    end = h_now_ms() + h_scaled(5000);
    while (h_info_field(c, "persistence", "min_free_disk_bytes") != LLONG_MAX && h_now_ms() < end)
        h_sleep_ms(20);
    r = h_cmdv(H_AT, c, 3, (const char *[]){"SET", "mfd:huge", val}, (const size_t[]){3, 8, big});
    if (r->type != EDDY_REPLY_ERROR || strstr(r->str, "below min-free-disk") == NULL)
        FAILF("SET of 100 MB with min-free-disk at its largest: %s", h_describe(r));
    eddy_reply_free(r);
    EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", minb);
    end = h_now_ms() + h_scaled(5000);
    while (h_info_field(c, "persistence", "min_free_disk_bytes") != avail - (64ll << 20) &&
           h_now_ms() < end)
        h_sleep_ms(20);
    /* FUNCTION LOAD without its code is a usage error, whatever came before it. */
    r = CMD(c, "FUNCTION", "LOAD");
    CHECK(r->type == EDDY_REPLY_ERROR && strstr(r->str, "disk space") == NULL);
    eddy_reply_free(r);
    r = h_cmdv(H_AT, c, 3, (const char *[]){"SET", "mfd:big", val}, (const size_t[]){3, 7, 1u << 20});
    CHECK(r->type == EDDY_REPLY_STATUS);
    eddy_reply_free(r);
    EXPECT_INT(1 << 20, c, "STRLEN", "mfd:big");
    /* APPEND writes the whole value again: in a pipeline after a 20 MB SET of the same
     * key (40 MB counted: WAL and table file), it needs 40 MB more than the 62 MB left. */
    CHECK(eddy_append_argv(c, 3, (const char *[]){"SET", "mfd:a40", val},
                           (const size_t[]){3, 7, 20u << 20}) == EDDY_OK);
    CHECK(eddy_append_argv(c, 3, (const char *[]){"APPEND", "mfd:a40", "x"}, NULL) == EDDY_OK);
    CHECK(eddy_get_reply(c, &r) == EDDY_OK && r->type == EDDY_REPLY_STATUS);
    eddy_reply_free(r);
    CHECK(eddy_get_reply(c, &r) == EDDY_OK);
    if (r->type != EDDY_REPLY_ERROR || strstr(r->str, "this write (40.0 MB:") == NULL)
        FAILF("APPEND to a 20 MB value with 22 MB left: %s", h_describe(r));
    eddy_reply_free(r);
    EXPECT_INT(20 << 20, c, "STRLEN", "mfd:a40");
    /* A pipeline of 100 SETs of 1 MB: its writes are applied together, after every
     * command was checked; each counts 2 MB, and no more than the 64 MB this part
     * started with can pass (22 MB are left by the count; a tick that measures the WAL
     * written so far puts the margin between the two, or below it: RocksDB allocates
     * a new WAL file's space ahead). */
    for (int i = 0; i < 100; i++) {
        char k[24];
        snprintf(k, sizeof(k), "mfd:p%d", i);
        CHECK(eddy_append_argv(c, 3, (const char *[]){"SET", k, val},
                               (const size_t[]){3, strlen(k), 1u << 20}) == EDDY_OK);
    }
    int ok = 0, low = 0;
    for (int i = 0; i < 100; i++) {
        CHECK(eddy_get_reply(c, &r) == EDDY_OK);
        ok += r->type == EDDY_REPLY_STATUS;
        low += r->type == EDDY_REPLY_ERROR && strncmp(r->str, "ERR disk space low: ", 20) == 0;
        eddy_reply_free(r);
    }
    if (ok + low != 100 || ok > 32)
        FAILF("pipeline of 100 SETs of 1 MB with 22 to 64 MB left: %d OK, %d refused", ok, low);
    free(val);
    EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", "10mb");
    end = h_now_ms() + h_scaled(5000);
    while (h_info_field(c, "persistence", "min_free_disk_bytes") != 10 << 20 && h_now_ms() < end)
        h_sleep_ms(20);
    r = CMD(c, "SCRIPT", "LOAD", "return 'stored'");
    CHECK(r->type == EDDY_REPLY_STRING && r->len == 40);
    char sha_stored[41];
    memcpy(sha_stored, r->str, 41);
    eddy_reply_free(r);
    EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", "100%");
    r = CMD(c, "CONFIG", "GET", "min-free-disk");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    CHECK_STR(r->element[1]->str, "100%");
    eddy_reply_free(r);
    end = h_now_ms() + h_scaled(5000);
    while (h_info_field(c, "persistence", "disk_space_low") != 1 && h_now_ms() < end)
        h_sleep_ms(20);
    CHECK_EQ_INT(h_info_field(c, "persistence", "disk_space_low"), 1);
    const char *cmds[][4] = {{"SET", "mfd:k", "w", NULL},      {"INCR", "mfd:n", NULL, NULL},
                             {"APPEND", "mfd:k", "x", NULL},    {"MSET", "mfd:a", "1", NULL},
                             {"SETRANGE", "mfd:k", "0", "x"},   {"EXPIRE", "mfd:k", "100", NULL},
                             {"PERSIST", "mfd:t", NULL, NULL},  {"GETEX", "mfd:t", "PERSIST", NULL},
                             {"GETEX", "mfd:k", "EX", "100"}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        int argc = cmds[i][3] ? 4 : cmds[i][2] ? 3 : 2;
        r = h_cmdv(H_AT, c, argc, cmds[i], NULL);
        if (r->type != EDDY_REPLY_ERROR || strncmp(r->str, "ERR disk space low: ", 20) != 0 ||
            strstr(r->str, "below min-free-disk") == NULL)
            FAILF("%s while the disk is low: %s", cmds[i][0], h_describe(r));
        eddy_reply_free(r);
    }
    /* What writes nothing, or deletes, runs: GETEX without options, PERSIST of a key
     * without a TTL or of none, EXPIRE in the past. */
    EXPECT_BULK("v", c, "GETEX", "mfd:k");
    EXPECT_INT(0, c, "PERSIST", "mfd:k");
    EXPECT_INT(0, c, "PERSIST", "mfd:none");
    EXPECT_INT(1, c, "EXPIRE", "mfd:big", "-1");
    EXPECT_INT(0, c, "EXISTS", "mfd:big");
    EXPECT_BULK("v", c, "GETEX", "mfd:g", "EXAT", "1"); /* a time past deletes, as in Redis */
    EXPECT_INT(0, c, "EXISTS", "mfd:g");
    /* FUNCTION LOAD and RESTORE store a library (Redis: denyoom); DUMP, LIST and
     * DELETE run. */
    r = CMD(c, "FUNCTION", "DUMP");
    CHECK(r->type == EDDY_REPLY_STRING);
    struct eddy_reply *dump = r;
    r = CMD(c, "FUNCTION", "LOAD", "#!lua name=mfd2\nredis.register_function('f2', "
                                   "function() return 1 end)");
    CHECK(r->type == EDDY_REPLY_ERROR && strncmp(r->str, "ERR disk space low: ", 20) == 0);
    eddy_reply_free(r);
    r = h_cmdv(H_AT, c, 4, (const char *[]){"FUNCTION", "RESTORE", dump->str, "REPLACE"},
               (const size_t[]){8, 7, dump->len, 7});
    CHECK(r->type == EDDY_REPLY_ERROR && strncmp(r->str, "ERR disk space low: ", 20) == 0);
    eddy_reply_free(r);
    eddy_reply_free(dump);
    r = CMD(c, "FUNCTION", "LIST");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    eddy_reply_free(r);
    /* A new script runs and is cached, but not stored (as Redis keeps scripts):
     * after a restart EVALSHA no longer finds it; one stored before does. */
    char sha_cached[41], sha_later[41];
    r = CMD(c, "SCRIPT", "LOAD", "return 'cached'");
    CHECK(r->type == EDDY_REPLY_STRING && r->len == 40);
    memcpy(sha_cached, r->str, 41);
    eddy_reply_free(r);
    EXPECT_BULK("cached", c, "EVALSHA", sha_cached, "0");
    r = CMD(c, "SCRIPT", "LOAD", "return 'later'");
    CHECK(r->type == EDDY_REPLY_STRING && r->len == 40);
    memcpy(sha_later, r->str, 41);
    eddy_reply_free(r);
    r = CMD(c, "FCALL", "put", "2", "mfd:f", "mfd:n", "1");
    CHECK(r->type == EDDY_REPLY_ERROR && strstr(r->str, "disk space low") != NULL);
    eddy_reply_free(r);
    r = CMD(c, "FCALL", "eset", "1", "mfd:e", "1");
    CHECK(r->type == EDDY_REPLY_ERROR && strstr(r->str, "eddy.set: disk space low") != NULL);
    eddy_reply_free(r);
    EXPECT_NIL(c, "GET", "mfd:e");
    EXPECT_BULK("v", c, "GET", "mfd:k");
    EXPECT_BULK("1", c, "GET", "mfd:n");
    EXPECT_NIL(c, "GET", "mfd:f");
    EXPECT_INT(-1, c, "TTL", "mfd:k");
    r = CMD(c, "TTL", "mfd:t");
    CHECK(r->type == EDDY_REPLY_INTEGER && r->integer > 900);
    eddy_reply_free(r);
    EXPECT_BULK("1", c, "GETDEL", "mfd:n");
    EXPECT_INT(1, c, "DEL", "mfd:k");
    CHECK(h_info_field(c, "persistence", "disk_space_low_refused") >= 10);
    r = CMD(c, "COMMAND", "INFO", "set", "del");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    bool set_deny = false, del_deny = false;
    for (size_t i = 0; i < r->element[0]->element[2]->elements; i++)
        set_deny |= strcmp(r->element[0]->element[2]->element[i]->str, "denyoom") == 0;
    for (size_t i = 0; i < r->element[1]->element[2]->elements; i++)
        del_deny |= strcmp(r->element[1]->element[2]->element[i]->str, "denyoom") == 0;
    CHECK(set_deny && !del_deny);
    eddy_reply_free(r);
    static const char *bad_pct[] = {"101%", "100.01%", "2.555%", "1.2.3%", ".%",
                                    ".5%",  "5.%",     "-1%",    "x%"};
    for (size_t i = 0; i < sizeof(bad_pct) / sizeof(bad_pct[0]); i++)
        EXPECT_ERR("ERR CONFIG SET failed (possibly related to argument 'min-free-disk') - "
                   "argument must be a percentage from 0% to 100%, two decimals at most",
                   c, "CONFIG", "SET", "min-free-disk", bad_pct[i]);
    /* Two decimals at most: 0.5% of the file system (INFO gives it in bytes). */
    static const char *pct[][2] = {{"0.5%", "0.5%"}, {"0.25%", "0.25%"}, {"2.50%", "2.5%"},
                                   {"100%", "100%"}};
    for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++) {
        EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", pct[i][0]);
        r = CMD(c, "CONFIG", "GET", "min-free-disk");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
        CHECK_STR(r->element[1]->str, pct[i][1]);
        eddy_reply_free(r);
    }
    EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", "0.5%");
    struct statvfs sv;
    CHECK(statvfs(s->dir, &sv) == 0);
    long long size = (long long)sv.f_blocks * (long long)sv.f_frsize;
    long long half = (long long)((double)size * 50.0 / 10000.0); /* net/server.c's rounding */
    end = h_now_ms() + h_scaled(5000);
    while (h_info_field(c, "persistence", "min_free_disk_bytes") != half && h_now_ms() < end)
        h_sleep_ms(20);
    CHECK_EQ_INT(h_info_field(c, "persistence", "min_free_disk_bytes"), half);
    EXPECT_OK(c, "CONFIG", "SET", "min-free-disk", "0");
    end = h_now_ms() + h_scaled(5000);
    while (h_info_field(c, "persistence", "disk_space_low") != 0 && h_now_ms() < end)
        h_sleep_ms(20);
    EXPECT_OK(c, "SET", "mfd:k", "w");
    /* Loaded again once the disk is back: stored now. */
    EXPECT_BULK(sha_later, c, "SCRIPT", "LOAD", "return 'later'");
    EXPECT_INT(1, c, "FCALL", "put", "2", "mfd:f", "mfd:n", "1");
    EXPECT_BULK("ok", c, "FCALL", "eset", "1", "mfd:e", "1");
    /* Once for the largest threshold, once for 100%, and once or twice more if the
     * 64 MB part's writes took the measure below (its WAL, and its memtables' size). */
    int lows = h_server_log_lines(s, "Disk space low");
    CHECK(lows >= 2 && lows <= 4);
    CHECK_EQ_INT(h_server_log_lines(s, "Disk space back above min-free-disk"), lows);
    CHECK(h_server_log_lines(s, "cached but not stored: disk space below") >= 1);
    eddy_free(c);
    h_server_restart(s);
    c = h_connect_port(s->port);
    EXPECT_BULK("stored", c, "EVALSHA", sha_stored, "0");
    EXPECT_ERR_PREFIX("NOSCRIPT", c, "EVALSHA", sha_cached, "0");
    EXPECT_BULK("later", c, "EVALSHA", sha_later, "0");
    eddy_free(c);
    h_server_free(s);
}

void suite_faults(void)
{
    h_run("faults_debug_command_off_by_default", t_debug_command_off_by_default, 0, 10);
    h_run("faults_debug_fault_syntax", t_debug_fault_syntax, H_OWN, 30);
    h_run("faults_injected_storage_errors_everysec", t_faults_everysec, H_OWN, 120);
    h_run("faults_always_failed_fsync_refused_nothing_lost", t_faults_always_sync, H_OWN, 60);
    h_run("faults_min_free_disk", t_min_free_disk, H_OWN, 30);
}
