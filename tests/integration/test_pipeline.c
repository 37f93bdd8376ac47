/* test_pipeline.c - pipelining (10,000 commands in one go, replies in order), large
 * values (1 MB and 100 MB round trips), big pipelined replies, concurrency (8 client
 * processes incrementing one counter on a server with 2 I/O threads), and the writes
 * of many connections batched in one loop iteration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void t_pipeline_10000(void)
{
    enum { N = 10000 };
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "pl:ctr");
    /* Per i: SET pl:i, GET pl:i, INCR pl:ctr (a counter that proves the order). */
    for (int i = 0; i < N / 4; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "pl:%d", i);
        snprintf(val, sizeof(val), "value-%d", i * 7);
        const char *set[] = {"SET", key, val};
        const char *get[] = {"GET", key};
        const char *incr[] = {"INCR", "pl:ctr"};
        const char *del[] = {"DEL", key};
        CHECK(eddy_append_argv(c, 3, set, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 2, get, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 2, incr, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 2, del, NULL) == EDDY_OK);
    }
    CHECK_EQ_INT(eddy_flush(c), EDDY_OK);
    for (int i = 0; i < N / 4; i++) {
        struct eddy_reply *r[4];
        for (int j = 0; j < 4; j++)
            if (eddy_get_reply(c, &r[j]) != EDDY_OK)
                FAILF("reply %d of the pipeline: %s", 4 * i + j, eddy_errstr(c));
        char val[32];
        snprintf(val, sizeof(val), "value-%d", i * 7);
        h_expect_status(H_AT, r[0], "OK");
        h_expect_bulk(H_AT, r[1], val, strlen(val));
        h_expect_int(H_AT, r[2], i + 1);
        h_expect_int(H_AT, r[3], 1);
    }
    EXPECT_BULK("2500", c, "GET", "pl:ctr");
    EXPECT_INT(1, c, "DEL", "pl:ctr");
    eddy_free(c);
}

/* The same pipeline written as one buffer of raw RESP and read back raw. */
static void t_pipeline_raw(void)
{
    enum { N = 10000 };
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    size_t cap = (size_t)N * 64, len = 0;
    char *req = malloc(cap);
    CHECK(req != NULL);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(req + len, cap - len, "*2\r\n$4\r\nECHO\r\n$%d\r\n%d\r\n",
                                i < 10 ? 1 : i < 100 ? 2 : i < 1000 ? 3 : 4, i);
    CHECK(h_raw_send(fd, req, len) == 0);
    size_t wantlen = 0;
    char *want = malloc(cap);
    CHECK(want != NULL);
    for (int i = 0; i < N; i++)
        wantlen += (size_t)snprintf(want + wantlen, cap - wantlen, "$%d\r\n%d\r\n",
                                    i < 10 ? 1 : i < 100 ? 2 : i < 1000 ? 3 : 4, i);
    char *got = malloc(wantlen + 1);
    bool closed;
    size_t n = h_raw_recv(fd, got, wantlen, 5000, &closed);
    CHECK_EQ_INT(n, wantlen);
    CHECK(memcmp(got, want, wantlen) == 0);
    free(req);
    free(want);
    free(got);
    close(fd);
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    if (p == NULL)
        FAILF("cannot allocate %zu bytes", n);
    uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
    /* Make sure the protocol's special bytes are in there. */
    if (n >= 8)
        memcpy(p + n / 2, "\r\n\0$*\r\n", 7);
    return p;
}

static void roundtrip(size_t size, const char *key)
{
    eddy_ctx *c = h_connect();
    eddy_set_timeout(c, 60000);
    unsigned char *v = pattern(size, (unsigned)size);
    const char *set[] = {"SET", key, (const char *)v};
    size_t setl[] = {3, strlen(key), size};
    h_expect_status(H_AT, h_cmdv(H_AT, c, 3, set, setl), "OK");
    const char *get[] = {"GET", key};
    struct eddy_reply *r = h_cmdv(H_AT, c, 2, get, NULL);
    if (r->type != EDDY_REPLY_STRING || r->len != size)
        FAILF("GET of a %zu-byte value: %s", size, h_describe(r));
    if (memcmp(r->str, v, size) != 0) {
        size_t i = 0;
        while (i < size && (unsigned char)r->str[i] == v[i])
            i++;
        FAILF("GET of a %zu-byte value differs at byte %zu", size, i);
    }
    eddy_reply_free(r);
    long long len = CMD_INT(c, "STRLEN", key);
    CHECK_EQ_INT(len, (long long)size);
    char sz[32];
    snprintf(sz, sizeof(sz), "%zu", size - 2);
    r = CMD(c, "GETRANGE", key, sz, "-1");
    CHECK(r->type == EDDY_REPLY_STRING && r->len == 2 && memcmp(r->str, v + size - 2, 2) == 0);
    eddy_reply_free(r);
    EXPECT_INT(1, c, "DEL", key);
    free(v);
    eddy_free(c);
}

static void t_value_1mb(void)
{
    roundtrip(1 << 20, "big:1mb");
}

static void t_value_100mb(void)
{
    roundtrip(100u << 20, "big:100mb");
}

/* 100 pipelined GETs of a 200 KB value: 20 MB of replies, more than the server
 * buffers before it stops reading from the client; all must arrive intact. */
static void t_pipeline_big_replies(void)
{
    enum { N = 100, SIZE = 200 * 1024 };
    eddy_ctx *c = h_connect();
    unsigned char *v = pattern(SIZE, 7);
    const char *set[] = {"SET", "big:200k", (const char *)v};
    size_t setl[] = {3, 8, SIZE};
    h_expect_status(H_AT, h_cmdv(H_AT, c, 3, set, setl), "OK");
    const char *get[] = {"GET", "big:200k"};
    for (int i = 0; i < N; i++)
        CHECK(eddy_append_argv(c, 2, get, NULL) == EDDY_OK);
    const char *ping[] = {"PING"};
    CHECK(eddy_append_argv(c, 1, ping, NULL) == EDDY_OK);
    for (int i = 0; i < N; i++) {
        struct eddy_reply *r;
        if (eddy_get_reply(c, &r) != EDDY_OK)
            FAILF("reply %d: %s", i, eddy_errstr(c));
        h_expect_bulk(H_AT, r, (const char *)v, SIZE);
    }
    struct eddy_reply *r;
    CHECK(eddy_get_reply(c, &r) == EDDY_OK);
    h_expect_status(H_AT, r, "PONG");
    EXPECT_INT(1, c, "DEL", "big:200k");
    free(v);
    eddy_free(c);
}

static void t_concurrent_incr(void)
{
    enum { PROCS = 8, EACH = 1000 };
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "DEL", "cc:ctr");
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            h_helper();
            eddy_ctx *w = h_connect();
            long long last = 0;
            for (int i = 0; i < EACH; i++) {
                long long v = CMD_INT(w, "INCR", "cc:ctr");
                if (v <= last)
                    FAILF("INCR returned %lld after %lld in the same client", v, last);
                last = v;
            }
            eddy_free(w);
            _exit(0);
        }
        CHECK(pids[p] > 0);
    }
    int failed = 0;
    for (int p = 0; p < PROCS; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK_EQ_INT(failed, 0);
    EXPECT_BULK("8000", c, "GET", "cc:ctr");
    EXPECT_INT(1, c, "DEL", "cc:ctr");
    eddy_free(c);
}

/* Concurrent writers of distinct keys and readers: every value read is one that was
 * written whole (no torn values), and MSET is seen atomically by MGET. */
static void t_concurrent_mset_mget(void)
{
    enum { PROCS = 4, ROUNDS = 500 };
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "MSET", "cm:a", "0", "cm:b", "0");
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            h_helper();
            eddy_ctx *w = h_connect();
            for (int i = 0; i < ROUNDS; i++) {
                if (p % 2 == 0) {
                    char v[32];
                    snprintf(v, sizeof(v), "%d", p * 100000 + i);
                    EXPECT_OK(w, "MSET", "cm:a", v, "cm:b", v);
                } else {
                    struct eddy_reply *r = CMD(w, "MGET", "cm:a", "cm:b");
                    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
                    if (strcmp(r->element[0]->str, r->element[1]->str) != 0)
                        FAILF("MGET saw a half-applied MSET: %s %s", r->element[0]->str,
                              r->element[1]->str);
                    eddy_reply_free(r);
                }
            }
            eddy_free(w);
            _exit(0);
        }
    }
    int failed = 0;
    for (int p = 0; p < PROCS; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK_EQ_INT(failed, 0);
    EXPECT_INT(2, c, "DEL", "cm:a", "cm:b");
    eddy_free(c);
}

/* 8 processes race for the same 500 SETNX keys: each key is won exactly once. */
static void t_setnx_race(void)
{
    enum { PROCS = 8, KEYS = 500 };
    eddy_ctx *c = h_connect();
    for (int i = 0; i < KEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "race:%d", i);
        const char *argv[] = {"DEL", key};
        CHECK(eddy_append_argv(c, 2, argv, NULL) == EDDY_OK);
    }
    const char *wins[] = {"DEL", "race:wins"};
    CHECK(eddy_append_argv(c, 2, wins, NULL) == EDDY_OK);
    for (int i = 0; i <= KEYS; i++) {
        struct eddy_reply *r;
        CHECK(eddy_get_reply(c, &r) == EDDY_OK);
        eddy_reply_free(r);
    }
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            h_helper();
            eddy_ctx *w = h_connect();
            long won = 0;
            for (int i = 0; i < KEYS; i++) {
                char key[32], me[16];
                snprintf(key, sizeof(key), "race:%d", (i + p * 61) % KEYS);
                snprintf(me, sizeof(me), "%d", p);
                won += CMD_INT(w, "SETNX", key, me);
            }
            char n[32];
            snprintf(n, sizeof(n), "%ld", won);
            CMD_INT(w, "INCRBY", "race:wins", n);
            eddy_free(w);
            _exit(0);
        }
    }
    int failed = 0;
    for (int p = 0; p < PROCS; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK_EQ_INT(failed, 0);
    char want[16];
    snprintf(want, sizeof(want), "%d", KEYS);
    EXPECT_BULK(want, c, "GET", "race:wins");
    eddy_free(c);
}

/* Writes of many connections batched together in one loop iteration of a worker
 * (net/conn.c conn_batch_end): every connection sends its pipeline before any reply
 * is read, so a worker serves many of them per iteration. Each reply must be its own
 * command's, each INCR must see every earlier one of its connection and of the
 * others, and once a SET's reply arrived every connection must read its value. */
static void t_batched_connections(void)
{
    enum { CONNS = 40, ROUNDS = 20, DEPTH = 8 };
    eddy_ctx *cs[CONNS];
    for (int i = 0; i < CONNS; i++)
        cs[i] = h_connect();
    EXPECT_INT(0, cs[0], "DEL", "bc:ctr");
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < CONNS; i++) {
            char key[32], val[32];
            snprintf(key, sizeof(key), "bc:%d", i);
            snprintf(val, sizeof(val), "%d.%d", r, i);
            const char *set[] = {"SET", key, val};
            const char *incr[] = {"INCR", "bc:ctr"};
            CHECK(eddy_append_argv(cs[i], 3, set, NULL) == EDDY_OK);
            for (int d = 0; d < DEPTH; d++)
                CHECK(eddy_append_argv(cs[i], 2, incr, NULL) == EDDY_OK);
            CHECK_EQ_INT(eddy_flush(cs[i]), EDDY_OK);
        }
        long long top = 0;
        for (int i = 0; i < CONNS; i++) {
            struct eddy_reply *rep;
            CHECK(eddy_get_reply(cs[i], &rep) == EDDY_OK);
            h_expect_status(H_AT, rep, "OK");
            long long last = (long long)r * CONNS * DEPTH;
            for (int d = 0; d < DEPTH; d++) {
                CHECK(eddy_get_reply(cs[i], &rep) == EDDY_OK);
                CHECK(rep->type == EDDY_REPLY_INTEGER);
                CHECK(rep->integer > last); /* after the earlier rounds and its own */
                last = rep->integer;
                eddy_reply_free(rep);
            }
            top = last > top ? last : top;
        }
        CHECK_EQ_INT(top, (long long)(r + 1) * CONNS * DEPTH);
        for (int i = 0; i < CONNS; i++) { /* acknowledged: visible to everyone */
            char key[32], val[32];
            snprintf(key, sizeof(key), "bc:%d", (i + 1) % CONNS);
            snprintf(val, sizeof(val), "%d.%d", r, (i + 1) % CONNS);
            EXPECT_BULK(val, cs[i], "GET", key);
        }
    }
    char total[32];
    snprintf(total, sizeof(total), "%d", CONNS * ROUNDS * DEPTH);
    EXPECT_BULK(total, cs[0], "GET", "bc:ctr");
    EXPECT_INT(1, cs[0], "DEL", "bc:ctr");
    for (int i = 0; i < CONNS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "bc:%d", i);
        EXPECT_INT(1, cs[0], "DEL", key);
    }
    for (int i = 0; i < CONNS; i++)
        eddy_free(cs[i]);
}

/* Function calls in a pipeline run next to the pipeline's earlier writes, which are
 * applied in one RocksDB write at the loop iteration's end (their commits join that
 * write too): every call must still see every write before it, its own connection's
 * plain commands and other calls alike, and plain commands must see the calls'. */
static void t_pipeline_calls_see_pending_writes(void)
{
    enum { N = 300 };
    static const char get_src[] = "return redis.call('GET', KEYS[1])";
    static const char incr_src[] =
        "local v = tonumber(redis.call('GET', KEYS[1]) or '0') + 1\n"
        "redis.call('SET', KEYS[1], v)\nreturn v";
    static const char del_src[] = "return redis.call('DEL', KEYS[1])";
    static const char scan_src[] = /* an iteration, not a point read */
        "local n = 0\nfor k in eddy.scan{slot = tonumber(ARGV[1]), prefix = '{ps}:'} do\n"
        "  n = n + 1\nend\nreturn n";
    eddy_ctx *c = h_connect();
    struct eddy_reply *r = CMD(c, "CLUSTER", "KEYSLOT", "{ps}:x");
    CHECK(r->type == EDDY_REPLY_INTEGER);
    char slot[16];
    snprintf(slot, sizeof(slot), "%lld", r->integer);
    eddy_reply_free(r);
    /* A keyless command in a call reads the current state, around the call's
     * transaction: the pending SET must be applied first. */
    h_flushall(c);
    const char *only[] = {"SET", "ps:only", "v"};
    const char *rnd[] = {"EVAL", "return redis.call('RANDOMKEY')", "0"};
    CHECK(eddy_append_argv(c, 3, only, NULL) == EDDY_OK);
    CHECK(eddy_append_argv(c, 3, rnd, NULL) == EDDY_OK);
    CHECK_EQ_INT(eddy_flush(c), EDDY_OK);
    CHECK(eddy_get_reply(c, &r) == EDDY_OK);
    h_expect_status(H_AT, r, "OK");
    CHECK(eddy_get_reply(c, &r) == EDDY_OK);
    h_expect_bulk(H_AT, r, "ps:only", 7);
    EXPECT_INT(1, c, "DEL", "ps:only");
    EXPECT_INT(0, c, "DEL", "ps:ctr");
    for (int i = 0; i < N; i++) {
        char val[32], key[32];
        snprintf(val, sizeof(val), "v%d", i);
        snprintf(key, sizeof(key), "{ps}:%d", i);
        const char *set[] = {"SET", "ps:k", val};
        const char *get[] = {"EVAL", get_src, "1", "ps:k"};
        const char *incr[] = {"EVAL", incr_src, "1", "ps:ctr"};
        const char *plain[] = {"GET", "ps:ctr"};
        const char *setk[] = {"SET", key, "x"};
        const char *scan[] = {"EVAL", scan_src, "0", slot};
        const char *del[] = {"EVAL", del_src, "1", "ps:k"};
        const char *get2[] = {"GET", "ps:k"};
        CHECK(eddy_append_argv(c, 3, set, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 4, get, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 4, incr, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 4, incr, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 2, plain, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 3, setk, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 4, scan, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 4, del, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(c, 2, get2, NULL) == EDDY_OK);
    }
    CHECK_EQ_INT(eddy_flush(c), EDDY_OK);
    for (int i = 0; i < N; i++) {
        struct eddy_reply *rs[9];
        for (int j = 0; j < 9; j++)
            if (eddy_get_reply(c, &rs[j]) != EDDY_OK)
                FAILF("reply %d of the pipeline: %s", 9 * i + j, eddy_errstr(c));
        char val[32], num[32];
        snprintf(val, sizeof(val), "v%d", i);
        h_expect_status(H_AT, rs[0], "OK");
        h_expect_bulk(H_AT, rs[1], val, strlen(val));
        h_expect_int(H_AT, rs[2], 2 * i + 1);
        h_expect_int(H_AT, rs[3], 2 * i + 2);
        snprintf(num, sizeof(num), "%d", 2 * i + 2);
        h_expect_bulk(H_AT, rs[4], num, strlen(num));
        h_expect_status(H_AT, rs[5], "OK");
        h_expect_int(H_AT, rs[6], i + 1);
        h_expect_int(H_AT, rs[7], 1);
        CHECK(rs[8]->type == EDDY_REPLY_NIL);
        eddy_reply_free(rs[8]);
    }
    char total[32];
    snprintf(total, sizeof(total), "%d", 2 * N);
    EXPECT_BULK(total, c, "GET", "ps:ctr");
    EXPECT_INT(1, c, "DEL", "ps:ctr");
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "{ps}:%d", i);
        EXPECT_INT(1, c, "DEL", key);
    }
    eddy_free(c);
}

/* Many connections pipelining calls on one counter and on keys of their own: the
 * calls of one loop iteration share a write, and none is lost or applied twice. */
static void t_pipeline_calls_many_connections(void)
{
    enum { CONNS = 16, ROUNDS = 10, DEPTH = 16 };
    static const char incr_src[] =
        "local v = tonumber(redis.call('GET', KEYS[1]) or '0') + 1\n"
        "redis.call('SET', KEYS[1], v)\n"
        "redis.call('SET', KEYS[2], ARGV[1])\nreturn v";
    eddy_ctx *cs[CONNS];
    for (int i = 0; i < CONNS; i++)
        cs[i] = h_connect();
    EXPECT_INT(0, cs[0], "DEL", "pm:ctr");
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < CONNS; i++) {
            char own[32], val[32];
            snprintf(own, sizeof(own), "pm:%d", i);
            for (int d = 0; d < DEPTH; d++) {
                snprintf(val, sizeof(val), "%d.%d", r, d);
                const char *call[] = {"EVAL", incr_src, "2", "pm:ctr", own, val};
                CHECK(eddy_append_argv(cs[i], 6, call, NULL) == EDDY_OK);
            }
            CHECK_EQ_INT(eddy_flush(cs[i]), EDDY_OK);
        }
        for (int i = 0; i < CONNS; i++) {
            long long last = 0;
            for (int d = 0; d < DEPTH; d++) {
                struct eddy_reply *rep;
                CHECK(eddy_get_reply(cs[i], &rep) == EDDY_OK);
                if (rep->type != EDDY_REPLY_INTEGER)
                    FAILF("call replied %s", h_describe(rep));
                CHECK(rep->integer > last); /* in order within the connection */
                last = rep->integer;
                eddy_reply_free(rep);
            }
        }
        for (int i = 0; i < CONNS; i++) { /* acknowledged: visible to everyone */
            char own[32], val[32];
            snprintf(own, sizeof(own), "pm:%d", i);
            snprintf(val, sizeof(val), "%d.%d", r, DEPTH - 1);
            EXPECT_BULK(val, cs[(i + 1) % CONNS], "GET", own);
        }
    }
    char total[32];
    snprintf(total, sizeof(total), "%d", CONNS * ROUNDS * DEPTH);
    EXPECT_BULK(total, cs[0], "GET", "pm:ctr");
    EXPECT_INT(1, cs[0], "DEL", "pm:ctr");
    for (int i = 0; i < CONNS; i++) {
        char own[32];
        snprintf(own, sizeof(own), "pm:%d", i);
        EXPECT_INT(1, cs[0], "DEL", own);
    }
    for (int i = 0; i < CONNS; i++)
        eddy_free(cs[i]);
}

void suite_pipeline(void)
{
    h_run("pipeline_10000_commands", t_pipeline_10000, 0, 30);
    h_run("pipeline_10000_raw", t_pipeline_raw, 0, 30);
    h_run("pipeline_big_replies", t_pipeline_big_replies, 0, 30);
    h_run("value_1mb_roundtrip", t_value_1mb, 0, 30);
    h_run("value_100mb_roundtrip", t_value_100mb, 0, 90);
    h_run("concurrent_incr_8x1000", t_concurrent_incr, 0, 60);
    h_run("concurrent_mset_mget_atomic", t_concurrent_mset_mget, 0, 60);
    h_run("concurrent_setnx_race", t_setnx_race, 0, 60);
    h_run("batched_connections_order_and_visibility", t_batched_connections, 0, 60);
    h_run("pipeline_calls_see_pending_writes", t_pipeline_calls_see_pending_writes, 0, 60);
    h_run("pipeline_calls_many_connections", t_pipeline_calls_many_connections, 0, 60);
}
