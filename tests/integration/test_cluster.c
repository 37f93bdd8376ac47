/* test_cluster.c - cluster mode (docs/CLUSTER.md), on three real eddyd nodes with
 * --cluster-enabled yes, joined by sending CLUSTER SETMAP to each: the CLUSTER reply
 * formats, MOVED / CROSSSLOT / CLUSTERDOWN routing and following MOVED with libeddy,
 * functions loaded once and run everywhere with one version, map epochs and a
 * restart that keeps the map, and the slot key commands. eddy-cli --cluster and
 * redis-cli -c are tested by cluster_cli.sh. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "../../common/common.h"

void suite_cluster(void);

enum { NNODES = 3 };

/* The slot ranges eddy-cli --cluster create gives three nodes. */
static const int range_lo[NNODES] = {0, 5461, 10923};
static const int range_hi[NNODES] = {5460, 10922, 16383};

struct three {
    struct h_server *s[NNODES];
    eddy_ctx *c[NNODES];
    char id[NNODES][41];
};

static void start_nodes(struct three *t)
{
    for (int i = 0; i < NNODES; i++) {
        t->s[i] = h_server_start("--cluster-enabled", "yes", "--enable-debug-command", "yes",
                                 NULL);
        t->c[i] = h_connect_port(t->s[i]->port);
        char *id = CMD_TEXT(t->c[i], "CLUSTER", "MYID");
        CHECK(strlen(id) == 40 && strspn(id, "0123456789abcdef") == 40);
        memcpy(t->id[i], id, 41);
        free(id);
    }
}

/* The payload of a map where node i owns range i; with all_to_first, node 0 owns
 * everything (another map, for epoch tests). */
static void payload(const struct three *t, bool all_to_first, char *buf, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < NNODES; i++)
        n += (size_t)snprintf(buf + n, cap - n, "node %s 127.0.0.1 %d\n", t->id[i], t->s[i]->port);
    if (all_to_first)
        snprintf(buf + n, cap - n, "slots %s 0-16383\n", t->id[0]);
    else
        for (int i = 0; i < NNODES; i++)
            n += (size_t)snprintf(buf + n, cap - n, "slots %s %d-%d\n", t->id[i], range_lo[i],
                                  range_hi[i]);
}

static void push_map(struct three *t, const char *epoch, bool all_to_first)
{
    char p[1024];
    payload(t, all_to_first, p, sizeof(p));
    for (int i = 0; i < NNODES; i++)
        EXPECT_OK(t->c[i], "CLUSTER", "SETMAP", epoch, p);
}

static void stop_nodes(struct three *t)
{
    for (int i = 0; i < NNODES; i++) {
        eddy_free(t->c[i]);
        h_server_free(t->s[i]);
    }
}

static int owner_of(unsigned slot)
{
    for (int i = 0; i < NNODES; i++)
        if ((int)slot >= range_lo[i] && (int)slot <= range_hi[i])
            return i;
    return -1;
}

/* Writes into key a key whose slot node `node` owns (k<n>, with prefix). */
static unsigned key_on(eddy_ctx *c, int node, const char *prefix, char *key, size_t cap)
{
    for (int n = 0;; n++) {
        snprintf(key, cap, "%s%d", prefix, n);
        long long slot = CMD_INT(c, "CLUSTER", "KEYSLOT", key);
        if (owner_of((unsigned)slot) == node)
            return (unsigned)slot;
    }
}

static void t_disabled(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(12182, c, "CLUSTER", "KEYSLOT", "foo");
    EXPECT_ERR("ERR This instance has cluster support disabled", c, "CLUSTER", "INFO");
    EXPECT_ERR("ERR This instance has cluster support disabled", c, "CLUSTER", "SLOTS");
    EXPECT_ERR("ERR This instance has cluster support disabled", c, "CLUSTER", "SETMAP", "1", "");
    eddy_free(c);
}

static void t_formats(void)
{
    struct three t;
    start_nodes(&t);
    /* Before any map: one known node, nothing served. */
    char *info = CMD_TEXT(t.c[0], "CLUSTER", "INFO");
    CHECK(strstr(info, "cluster_state:fail\r\n") != NULL);
    CHECK(strstr(info, "cluster_known_nodes:1\r\n") != NULL);
    CHECK(strstr(info, "cluster_current_epoch:0\r\n") != NULL);
    free(info);
    EXPECT_ERR("CLUSTERDOWN Hash slot not served", t.c[0], "GET", "foo");
    EXPECT_ERR_PREFIX("ERR", t.c[0], "CLUSTER", "SETMAP", "0", "");
    EXPECT_ERR_PREFIX("ERR map line 1", t.c[0], "CLUSTER", "SETMAP", "1", "bogus line");

    push_map(&t, "1", false);
    info = CMD_TEXT(t.c[1], "CLUSTER", "INFO");
    const char *want[] = {"cluster_state:ok\r\n", "cluster_slots_assigned:16384\r\n",
                          "cluster_known_nodes:3\r\n", "cluster_size:3\r\n",
                          "cluster_current_epoch:1\r\n", "cluster_my_epoch:1\r\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(info, want[i]) == NULL)
            FAILF("CLUSTER INFO lacks %s: %s", want[i], info);
    free(info);

    struct eddy_reply *r = CMD(t.c[2], "CLUSTER", "SLOTS");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == NNODES);
    for (int i = 0; i < NNODES; i++) {
        struct eddy_reply *e = r->element[i];
        CHECK(e->type == EDDY_REPLY_ARRAY && e->elements == 3);
        CHECK_EQ_INT(e->element[0]->integer, range_lo[i]);
        CHECK_EQ_INT(e->element[1]->integer, range_hi[i]);
        struct eddy_reply *n = e->element[2];
        CHECK(n->type == EDDY_REPLY_ARRAY && n->elements >= 3);
        CHECK_STR(n->element[0]->str, "127.0.0.1");
        CHECK_EQ_INT(n->element[1]->integer, t.s[i]->port);
        CHECK_STR(n->element[2]->str, t.id[i]);
    }
    eddy_reply_free(r);

    r = CMD(t.c[0], "CLUSTER", "SHARDS"); /* RESP2: maps are flat arrays */
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == NNODES);
    for (int i = 0; i < NNODES; i++) {
        struct eddy_reply *sh = r->element[i];
        CHECK(sh->elements == 4);
        CHECK_STR(sh->element[0]->str, "slots");
        CHECK(sh->element[1]->elements == 2);
        CHECK_EQ_INT(sh->element[1]->element[0]->integer, range_lo[i]);
        CHECK_EQ_INT(sh->element[1]->element[1]->integer, range_hi[i]);
        CHECK_STR(sh->element[2]->str, "nodes");
        struct eddy_reply *nd = sh->element[3]->element[0];
        CHECK_STR(nd->element[0]->str, "id");
        CHECK_STR(nd->element[1]->str, t.id[i]);
        CHECK_STR(nd->element[2]->str, "port");
        CHECK_EQ_INT(nd->element[3]->integer, t.s[i]->port);
    }
    eddy_reply_free(r);

    char *nodes = CMD_TEXT(t.c[1], "CLUSTER", "NODES");
    for (int i = 0; i < NNODES; i++) {
        char line[256];
        snprintf(line, sizeof(line), "%s 127.0.0.1:%d@%d %s - 0 ", t.id[i], t.s[i]->port,
                 t.s[i]->port, i == 1 ? "myself,master" : "master");
        if (strstr(nodes, line) == NULL)
            FAILF("CLUSTER NODES lacks '%s': %s", line, nodes);
        snprintf(line, sizeof(line), " 1 connected %d-%d\n", range_lo[i], range_hi[i]);
        if (strstr(strstr(nodes, t.id[i]), line) == NULL)
            FAILF("CLUSTER NODES lacks '%s' for node %d: %s", line, i, nodes);
    }
    free(nodes);
    r = CMD(t.c[0], "HELLO", "2");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements >= 10);
    CHECK_STR(r->element[9]->str, "cluster");
    eddy_reply_free(r);
    stop_nodes(&t);
}

static void t_routing(void)
{
    struct three t;
    char key[64], key2[128], tagged[128];
    start_nodes(&t);
    push_map(&t, "1", false);
    for (int i = 0; i < NNODES; i++) {
        unsigned slot = key_on(t.c[0], i, "r", key, sizeof(key));
        int other = (i + 1) % NNODES;
        char want[128];
        snprintf(want, sizeof(want), "MOVED %u 127.0.0.1:%d", slot, t.s[i]->port);
        EXPECT_ERR(want, t.c[other], "SET", key, "v");
        EXPECT_ERR(want, t.c[other], "GET", key);
        EXPECT_OK(t.c[i], "SET", key, "v");
        EXPECT_BULK("v", t.c[i], "GET", key);
    }
    /* CROSSSLOT, and multi-key commands in one slot with a hash tag. */
    key_on(t.c[0], 0, "a", key, sizeof(key));
    key_on(t.c[0], 1, "b", key2, sizeof(key2));
    EXPECT_ERR("CROSSSLOT Keys in request don't hash to the same slot", t.c[0], "MSET", key,
               "1", key2, "2");
    EXPECT_ERR("CROSSSLOT Keys in request don't hash to the same slot", t.c[0], "DEL", key, key2);
    snprintf(key2, sizeof(key2), "{%s}.other", key);
    EXPECT_OK(t.c[0], "MSET", key, "1", key2, "2");
    snprintf(tagged, sizeof(tagged), "{%s}.third", key);
    EXPECT_INT(2, t.c[0], "DEL", key, key2, tagged);
    /* Keyless commands run locally. */
    EXPECT_STATUS("PONG", t.c[1], "PING");

    /* Following MOVED by hand, as a cluster client does. */
    key_on(t.c[0], 2, "m", key, sizeof(key));
    struct eddy_reply *r = CMD(t.c[0], "SET", key, "followed");
    CHECK(r->type == EDDY_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0);
    char host[64];
    unsigned slot;
    int port;
    CHECK(sscanf(r->str, "MOVED %u %63[^:]:%d", &slot, host, &port) == 3);
    eddy_reply_free(r);
    CHECK_EQ_INT(port, t.s[2]->port);
    eddy_ctx *moved = eddy_connect(host, port, 5000, NULL, NULL);
    CHECK(moved != NULL);
    EXPECT_OK(moved, "SET", key, "followed");
    EXPECT_BULK("followed", t.c[2], "GET", key);
    eddy_free(moved);

    /* FCALL and EVAL route by their first key; with no key they run where they are. */
    EXPECT_BULK("rlib", t.c[0], "FUNCTION", "LOAD",
                "#!lua name=rlib\n"
                "redis.register_function('rget', function(keys) return redis.call('GET', keys[1]) end)\n"
                "redis.register_function('aget', function(keys, args) return redis.call('GET', args[1]) end)");
    char want[128];
    snprintf(want, sizeof(want), "MOVED %u 127.0.0.1:%d", slot, t.s[2]->port);
    EXPECT_ERR(want, t.c[1], "FCALL", "rget", "1", key);
    EXPECT_ERR(want, t.c[1], "EVAL", "return 1", "1", key);
    EXPECT_BULK("followed", t.c[2], "FCALL", "rget", "1", key);
    EXPECT_BULK("followed", t.c[2], "FCALL", "aget", "0", key);
    EXPECT_INT(1, t.c[1], "EVAL", "return 1", "0");
    /* A function on another node reads this key from its owner (t_remote_keys). */
    EXPECT_BULK("followed", t.c[1], "FCALL", "aget", "0", key);
    stop_nodes(&t);
}

static void t_functions(void)
{
    struct three t;
    char key[64];
    start_nodes(&t);
    push_map(&t, "1", false);
    const char *lib = "#!lua name=everywhere\n"
                      "redis.register_function('hello', function(keys) "
                      "return 'hi ' .. (redis.call('GET', keys[1]) or 'nobody') end)";
    EXPECT_BULK("everywhere", t.c[1], "FUNCTION", "LOAD", lib);
    char version[NNODES][64];
    for (int i = 0; i < NNODES; i++) {
        key_on(t.c[i], i, "f", key, sizeof(key));
        EXPECT_OK(t.c[i], "SET", key, "you");
        EXPECT_BULK("hi you", t.c[i], "FCALL", "hello", "1", key);
        struct eddy_reply *r = CMD(t.c[i], "FUNCTION", "LIST");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 1);
        struct eddy_reply *l = r->element[0];
        version[i][0] = '\0';
        for (size_t k = 0; k + 1 < l->elements; k += 2)
            if (strcmp(l->element[k]->str, "library_version") == 0)
                snprintf(version[i], sizeof(version[i]), "%s", l->element[k + 1]->str);
        eddy_reply_free(r);
        CHECK(strlen(version[i]) == 40);
        CHECK_STR(version[i], version[0]);
    }
    /* The version is the SHA-1 of the code: a replaced library gets a new one. */
    EXPECT_ERR_PREFIX("ERR Library 'everywhere' already exists", t.c[2], "FUNCTION", "LOAD", lib);
    EXPECT_OK(t.c[2], "FUNCTION", "DELETE", "everywhere");
    for (int i = 0; i < NNODES; i++)
        EXPECT_ERR_PREFIX("ERR Function not found", t.c[i], "FCALL", "hello", "0");
    EXPECT_BULK("everywhere", t.c[0], "FUNCTION", "LOAD", lib);
    EXPECT_OK(t.c[0], "FUNCTION", "FLUSH");
    for (int i = 0; i < NNODES; i++) {
        struct eddy_reply *r = CMD(t.c[i], "FUNCTION", "LIST");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 0);
        eddy_reply_free(r);
    }
    /* The coordinator's own WAL sync fails: the change is applied there (its reply says
     * so), and so it must reach the other nodes too; it stayed on the coordinator alone,
     * for good (found by review). */
    EXPECT_OK(t.c[0], "DEBUG", "FAULT", "sync", "1");
    EXPECT_ERR_PREFIX("ERR storage error: WAL sync failed: IO error: injected fault (the change "
                      "is applied", t.c[0], "FUNCTION", "LOAD", lib);
    for (int i = 0; i < NNODES; i++) {
        key_on(t.c[i], i, "sync", key, sizeof(key));
        EXPECT_BULK("hi nobody", t.c[i], "FCALL", "hello", "1", key);
    }
    key_on(t.c[0], 0, "heal", key, sizeof(key));
    EXPECT_OK(t.c[0], "SET", key, "1"); /* a write works again on node 0 */
    /* A FLUSH that fails at its first delete changed nothing: it is not forwarded. */
    EXPECT_OK(t.c[0], "DEBUG", "FAULT", "write", "1");
    EXPECT_ERR_PREFIX("ERR storage error: metadata delete failed: IO error: injected fault",
                      t.c[0], "FUNCTION", "FLUSH");
    for (int i = 0; i < NNODES; i++) {
        key_on(t.c[i], i, "sync", key, sizeof(key));
        EXPECT_BULK("hi nobody", t.c[i], "FCALL", "hello", "1", key);
    }
    EXPECT_OK(t.c[0], "FUNCTION", "DELETE", "everywhere");
    /* A map whose WAL sync fails on a node is installed there (the store has it); it
     * was refused ("-WAL sync failed", no ERR) while the store kept it for the next
     * start (review). */
    EXPECT_OK(t.c[1], "DEBUG", "FAULT", "sync", "1");
    push_map(&t, "2", false);
    key_on(t.c[1], 1, "heal", key, sizeof(key));
    EXPECT_OK(t.c[1], "SET", key, "1");
    /* A node that is down: the change fails with a clear error, the others keep it. */
    h_server_stop(t.s[2]);
    EXPECT_ERR_PREFIX("ERR FUNCTION LOAD was applied on this node and 1 other node(s) but "
                      "failed on 1 node(s); first failure: 127.0.0.1:",
                      t.c[0], "FUNCTION", "LOAD", lib);
    key_on(t.c[1], 1, "nobody", key, sizeof(key));
    EXPECT_BULK("hi nobody", t.c[1], "FCALL", "hello", "1", key);
    stop_nodes(&t);
}

/* MAPREDUCE fans out: every node runs the map on its own keys, the node the client
 * called reduces everything; a failing or missing node gives a clear error. */
static void t_mapreduce(void)
{
    struct three t;
    char key[64];
    start_nodes(&t);
    push_map(&t, "1", false);
    const char *lib =
        "#!lua name=mr\n"
        "redis.register_function{function_name='mr_count', flags={'no-writes'}, callback="
        "function(keys, args, part)\n"
        "  local n, s = 0, 0\n"
        "  for k, v in eddy.scan{prefix='mr:'} do\n"
        "    if v == 'boom' then error('boom on ' .. k) end\n"
        "    n, s = n + 1, s + tonumber(v)\n"
        "  end\n"
        "  return {n, s}\n"
        "end}\n"
        "redis.register_function('mr_total', function(keys, args, partials)\n"
        "  local n, s = 0, 0\n"
        "  for i = 1, partials.n do n, s = n + partials[i][1], s + partials[i][2] end\n"
        "  return {n, s, partials.n}\n"
        "end)\n";
    EXPECT_BULK("mr", t.c[0], "FUNCTION", "LOAD", lib);
    long long want = 0;
    for (int i = 0; i < NNODES; i++)
        for (int k = 0; k < 20; k++) {
            char prefix[16];
            snprintf(prefix, sizeof(prefix), "mr:%d:%d:", i, k);
            key_on(t.c[i], i, prefix, key, sizeof(key));
            char v[16];
            snprintf(v, sizeof(v), "%d", 100 * i + k);
            want += 100 * i + k;
            EXPECT_OK(t.c[i], "SET", key, v);
        }
    /* @partials: only this node's partitions, serialized (what the others send). */
    long long parts = 0;
    for (int i = 0; i < NNODES; i++) {
        struct eddy_reply *r = CMD(t.c[i], "MAPREDUCE", "mr_count", "@partials");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements >= 1);
        parts += (long long)r->elements;
        eddy_reply_free(r);
    }
    /* The same answer from every node: 60 keys, their sum, every node's partitions. */
    for (int i = 0; i < NNODES; i++) {
        struct eddy_reply *r = CMD(t.c[i], "MAPREDUCE", "mr_count", "mr_total");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
        CHECK_EQ_INT(r->element[0]->integer, 60);
        CHECK_EQ_INT(r->element[1]->integer, want);
        CHECK_EQ_INT(r->element[2]->integer, parts);
        eddy_reply_free(r);
        r = CMD(t.c[i], "MAPREDUCE", "mr_count", "@sum");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
        CHECK_EQ_INT(r->element[0]->integer, 60);
        CHECK_EQ_INT(r->element[1]->integer, want);
        eddy_reply_free(r);
    }
    /* Partials cross the bus packed (@zpartials): small ones raw ("R"), large ones as
     * zstd frames ("Z"), and the reduce sees the same bytes. */
    const char *zlib =
        "#!lua name=mrz\n"
        "redis.register_function{function_name='mr_big', flags={'no-writes'}, callback="
        "function(keys, args, part)\n"
        "  return {part.index, string.rep('abc', 20000) .. part.index}\n"
        "end}\n"
        "redis.register_function('mr_big_check', function(keys, args, partials)\n"
        "  local ok, bytes = 0, 0\n"
        "  for i = 1, partials.n do\n"
        "    local p = partials[i]\n"
        "    if p[2] == string.rep('abc', 20000) .. p[1] then ok = ok + 1 end\n"
        "    bytes = bytes + #p[2]\n"
        "  end\n"
        "  return {ok, partials.n, bytes}\n"
        "end)\n";
    EXPECT_BULK("mrz", t.c[0], "FUNCTION", "LOAD", zlib);
    struct eddy_reply *z = CMD(t.c[1], "MAPREDUCE", "mr_big", "@zpartials");
    CHECK(z->type == EDDY_REPLY_ARRAY && z->elements >= 1);
    for (size_t i = 0; i < z->elements; i++)
        CHECK(z->element[i]->str[0] == 'Z' && z->element[i]->len < 60000 / 10);
    eddy_reply_free(z);
    z = CMD(t.c[1], "MAPREDUCE", "mr_count", "@zpartials");
    CHECK(z->type == EDDY_REPLY_ARRAY && z->elements >= 1);
    for (size_t i = 0; i < z->elements; i++)
        CHECK(z->element[i]->str[0] == 'R');
    eddy_reply_free(z);
    for (int i = 0; i < NNODES; i++) {
        struct eddy_reply *r = CMD(t.c[i], "MAPREDUCE", "mr_big", "mr_big_check");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
        CHECK_EQ_INT(r->element[1]->integer, parts);
        CHECK_EQ_INT(r->element[0]->integer, parts);
        CHECK(r->element[2]->integer > parts * 60000);
        eddy_reply_free(r);
    }
    /* A map failing on another node: the whole job fails and says where. */
    key_on(t.c[2], 2, "mr:boom", key, sizeof(key));
    EXPECT_OK(t.c[2], "SET", key, "boom");
    EXPECT_ERR_PREFIX("ERR map on another node failed: ERR map partition", t.c[0], "MAPREDUCE",
                      "mr_count", "mr_total");
    EXPECT_INT(1, t.c[2], "DEL", key);
    /* A node that is down. */
    h_server_stop(t.s[2]);
    EXPECT_ERR_PREFIX("ERR map on node 127.0.0.1:", t.c[0], "MAPREDUCE", "mr_count", "mr_total");
    EXPECT_ALIVE(t.s[0]->port);
    stop_nodes(&t);
}

/* Keys of any slot inside a function: the call fetches and writes them on their owner
 * through the node bus, suspending itself while other clients are served. */
static void t_remote_keys(void)
{
    struct three t;
    char k0[64], k1[64], k2[64];
    start_nodes(&t);
    push_map(&t, "1", false);
    const char *lib =
        "#!lua name=rk\n"
        "redis.register_function('rk_sum', function(keys)\n"
        "  local s = 0\n"
        "  for i = 1, #keys do s = s + tonumber(redis.call('GET', keys[i]) or '0') end\n"
        "  return s\n"
        "end)\n"
        "redis.register_function('rk_copy', function(keys)\n"
        "  local v = eddy.get(keys[2])\n"
        "  eddy.set(keys[3], v .. '!')\n"
        "  redis.call('SET', keys[1], 'copied')\n"
        "  return {eddy.get(keys[3]), tostring(eddy.exists(keys[3])), redis.call('INCR', keys[2] .. '')}\n"
        "end)\n"
        "redis.register_function('rk_del', function(keys)\n"
        "  return {tostring(eddy.del(keys[2])), tostring(eddy.del(keys[2])), tostring(eddy.exists(keys[2]))}\n"
        "end)\n"
        "redis.register_function('rk_err', function(keys)\n"
        "  local r = redis.pcall('INCR', keys[2])\n"
        "  if type(r) ~= 'table' or r.err == nil then return 'not caught' end\n"
        "  return redis.call('INCR', keys[2])\n"
        "end)\n"
        "redis.register_function('rk_two', function(keys)\n"
        "  return redis.call('MGET', keys[2], keys[3])\n"
        "end)\n"
        "redis.register_function('rk_co', function(keys)\n"
        "  return coroutine.wrap(function() return redis.call('GET', keys[2]) end)()\n"
        "end)\n"
        "redis.register_function{function_name='rk_map', flags={'no-writes'}, callback=function(keys, args)\n"
        "  return tonumber(eddy.get(args[1]) or '0')\n"
        "end}\n";
    EXPECT_BULK("rk", t.c[0], "FUNCTION", "LOAD", lib);
    key_on(t.c[0], 0, "rk0:", k0, sizeof(k0));
    key_on(t.c[1], 1, "rk1:", k1, sizeof(k1));
    key_on(t.c[2], 2, "rk2:", k2, sizeof(k2));
    EXPECT_OK(t.c[0], "SET", k0, "1");
    EXPECT_OK(t.c[1], "SET", k1, "20");
    EXPECT_OK(t.c[2], "SET", k2, "300");
    /* FCALL routes by its first key (node 0) and reads the keys of nodes 1 and 2. */
    EXPECT_INT(321, t.c[0], "FCALL", "rk_sum", "3", k0, k1, k2);
    /* Reads and writes of remote keys through eddy.* and redis.call. */
    struct eddy_reply *r = CMD(t.c[0], "FCALL", "rk_copy", "3", k0, k1, k2);
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
    CHECK_STR(r->element[0]->str, "20!");
    CHECK_STR(r->element[1]->str, "true");
    CHECK_EQ_INT(r->element[2]->integer, 21);
    eddy_reply_free(r);
    EXPECT_BULK("copied", t.c[0], "GET", k0);
    EXPECT_BULK("21", t.c[1], "GET", k1);
    EXPECT_BULK("20!", t.c[2], "GET", k2);
    r = CMD(t.c[0], "FCALL", "rk_del", "2", k0, k2);
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
    CHECK_STR(r->element[0]->str, "true");
    CHECK_STR(r->element[1]->str, "false");
    CHECK_STR(r->element[2]->str, "false");
    eddy_reply_free(r);
    EXPECT_INT(0, t.c[2], "EXISTS", k2);
    /* A remote error reply: pcall catches it, call raises it. */
    EXPECT_OK(t.c[1], "SET", k1, "str");
    EXPECT_ERR_PREFIX("ERR value is not an integer", t.c[0], "FCALL", "rk_err", "2", k0, k1);
    /* One command's keys on two other nodes; a remote key inside a coroutine. */
    EXPECT_ERR_PREFIX("ERR the keys of one command in a function must all be on one node",
                      t.c[0], "FCALL", "rk_two", "3", k0, k1, k2);
    EXPECT_ERR_PREFIX("ERR a key of another node cannot be accessed here", t.c[0], "FCALL",
                      "rk_co", "2", k0, k1);
    /* A map on every node reads one key of node 2 (each from its own node). */
    EXPECT_OK(t.c[2], "SET", k2, "7");
    r = CMD(t.c[1], "MAPREDUCE", "rk_map", "@sum", k2);
    CHECK(r->type == EDDY_REPLY_INTEGER);
    long long parts = 0;
    for (int i = 0; i < NNODES; i++) {
        struct eddy_reply *p = CMD(t.c[i], "MAPREDUCE", "rk_map", "@partials", k2);
        parts += (long long)p->elements;
        eddy_reply_free(p);
    }
    CHECK_EQ_INT(r->integer, 7 * parts);
    eddy_reply_free(r);
    /* Every remote access was counted by (function, local slot, remote slot). */
    r = CMD(t.c[0], "CLUSTER", "REMOTESTATS");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements >= 4);
    long long sum_k1 = 0, slot0 = CMD_INT(t.c[0], "CLUSTER", "KEYSLOT", k0);
    long long slot1 = CMD_INT(t.c[0], "CLUSTER", "KEYSLOT", k1);
    for (size_t i = 0; i < r->elements; i++) {
        struct eddy_reply *row = r->element[i];
        CHECK(row->type == EDDY_REPLY_ARRAY && row->elements == 4);
        if (strcmp(row->element[0]->str, "rk.rk_sum") == 0 && row->element[1]->integer == slot0 &&
            row->element[2]->integer == slot1)
            sum_k1 += row->element[3]->integer;
    }
    CHECK_EQ_INT(sum_k1, 1); /* rk_sum read k1 once */
    eddy_reply_free(r);
    r = CMD(t.c[0], "CLUSTER", "REMOTESTATS", "RESET");
    eddy_reply_free(r);
    r = CMD(t.c[0], "CLUSTER", "REMOTESTATS");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 0);
    eddy_reply_free(r);
    /* SCRIPT FLUSH clears the counters too: it freed them but kept their count, so the
     * next counted access read freed memory and the old rows came back (review). */
    EXPECT_OK(t.c[0], "SET", k0, "1");
    EXPECT_INT(8, t.c[0], "FCALL", "rk_sum", "2", k0, k2);
    EXPECT_OK(t.c[0], "SCRIPT", "FLUSH");
    EXPECT_INT(8, t.c[0], "FCALL", "rk_sum", "2", k0, k2);
    r = CMD(t.c[0], "CLUSTER", "REMOTESTATS");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 1);
    CHECK(r->element[0]->type == EDDY_REPLY_ARRAY && r->element[0]->elements == 4);
    CHECK_EQ_INT(r->element[0]->element[3]->integer, 1);
    eddy_reply_free(r);
    /* The node of a key is down: a clear error, and the caller's node stays up. */
    EXPECT_OK(t.c[0], "SET", k0, "1");
    h_server_stop(t.s[2]);
    EXPECT_ERR_PREFIX("ERR remote access to 127.0.0.1:", t.c[0], "FCALL", "rk_sum", "2", k0, k2);
    EXPECT_INT(1, t.c[0], "FCALL", "rk_sum", "1", k0);
    EXPECT_ALIVE(t.s[0]->port);
    /* Back again: the node bus reconnects. Calls from many pipelined clients share it. */
    h_server_restart(t.s[2]);
    EXPECT_OK(t.c[1], "SET", k1, "20");
    EXPECT_INT(28, t.c[0], "FCALL", "rk_sum", "3", k0, k1, k2);
    enum { CLIENTS = 8, PER = 200 };
    eddy_ctx *cs[CLIENTS];
    const char *argv[] = {"FCALL", "rk_sum", "3", k0, k1, k2};
    for (int i = 0; i < CLIENTS; i++) {
        cs[i] = h_connect_port(t.s[0]->port);
        for (int k = 0; k < PER; k++)
            CHECK(eddy_append_argv(cs[i], 6, argv, NULL) == EDDY_OK);
    }
    for (int i = 0; i < CLIENTS; i++) {
        for (int k = 0; k < PER; k++) {
            struct eddy_reply *x = NULL;
            CHECK(eddy_get_reply(cs[i], &x) == EDDY_OK);
            if (x->type != EDDY_REPLY_INTEGER || x->integer != 28)
                FAILF("client %d, call %d: %s", i, k, h_describe(x));
            eddy_reply_free(x);
        }
        eddy_free(cs[i]);
    }
    stop_nodes(&t);
}

/* Function changes carry an epoch; a node that missed one (it was down) copies the
 * libraries of a node with a higher epoch when it starts, before it serves a call. */
static void t_function_catchup(void)
{
    struct three t;
    start_nodes(&t);
    push_map(&t, "1", false);
    const char *v1 = "#!lua name=ver\nredis.register_function('ver', function() return 1 end)";
    const char *v2 = "#!lua name=ver\nredis.register_function('ver', function() return 2 end)";
    EXPECT_BULK("ver", t.c[0], "FUNCTION", "LOAD", v1);
    for (int i = 0; i < NNODES; i++) {
        EXPECT_INT(1, t.c[i], "FCALL", "ver", "0");
        EXPECT_INT(1, t.c[i], "CLUSTER", "FNEPOCH");
    }
    /* Every node runs the new version once FUNCTION LOAD has replied. */
    EXPECT_BULK("ver", t.c[1], "FUNCTION", "LOAD", "REPLACE", v2);
    for (int i = 0; i < NNODES; i++) {
        EXPECT_INT(2, t.c[i], "FCALL", "ver", "0");
        EXPECT_INT(2, t.c[i], "CLUSTER", "FNEPOCH");
    }
    /* Node 2 is down during a change: it has the old version until it restarts, then
     * the new one before it answers anything. */
    eddy_free(t.c[2]);
    h_server_stop(t.s[2]);
    EXPECT_ERR_PREFIX("ERR FUNCTION LOAD was applied on this node and 1 other node(s) but "
                      "failed on 1 node(s)", t.c[0], "FUNCTION", "LOAD", "REPLACE", v1);
    EXPECT_INT(3, t.c[0], "CLUSTER", "FNEPOCH");
    h_server_restart(t.s[2]);
    t.c[2] = h_connect_port(t.s[2]->port);
    EXPECT_INT(1, t.c[2], "FCALL", "ver", "0");
    EXPECT_INT(3, t.c[2], "CLUSTER", "FNEPOCH");
    /* A restart that missed nothing keeps its libraries and epoch. */
    eddy_free(t.c[1]);
    h_server_restart(t.s[1]);
    t.c[1] = h_connect_port(t.s[1]->port);
    EXPECT_INT(1, t.c[1], "FCALL", "ver", "0");
    EXPECT_INT(3, t.c[1], "CLUSTER", "FNEPOCH");
    stop_nodes(&t);
}

/* Function changes sent to different nodes at the same time: the coordinator (node 0)
 * orders them, so every node ends with every library, the same versions and the same
 * function epoch; without it two changes could take the same epoch and nodes keep
 * different libraries for good. Then, with the coordinator down, a change still
 * applies on the others and the coordinator catches up at its restart. */
static void t_function_order(void)
{
    struct three t;
    start_nodes(&t);
    push_map(&t, "1", false);
    enum { PER = 8 };
    pid_t pids[NNODES];
    for (int i = 0; i < NNODES; i++) {
        fflush(NULL);
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            h_helper();
            char err[EDDY_ERRLEN];
            eddy_ctx *c = eddy_connect("127.0.0.1", t.s[i]->port, 20000, NULL, err);
            int bad = c == NULL;
            for (int k = 0; k < PER && !bad; k++) {
                char lib[256];
                snprintf(lib, sizeof(lib),
                         "#!lua name=l%d_%d\nredis.register_function('f%d_%d', function() "
                         "return %d end)", i, k, i, k, i * 100 + k);
                const char *av[] = {"FUNCTION", "LOAD", lib};
                struct eddy_reply *r = eddy_command_argv(c, 3, av, NULL);
                bad = r == NULL || r->type != EDDY_REPLY_STRING;
                if (bad)
                    fprintf(stderr, "  node %d load %d: %s\n", i, k,
                            r ? r->str : eddy_errstr(c));
                eddy_reply_free(r);
            }
            eddy_free(c);
            _exit(bad);
        }
    }
    for (int i = 0; i < NNODES; i++) {
        int st = 0;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            FAILF("loading libraries on node %d failed (status %d)", i, st);
    }
    for (int i = 0; i < NNODES; i++) {
        EXPECT_INT(NNODES * PER, t.c[i], "CLUSTER", "FNEPOCH");
        struct eddy_reply *r = CMD(t.c[i], "FUNCTION", "LIST");
        CHECK(r->type == EDDY_REPLY_ARRAY);
        CHECK_EQ_INT((long long)r->elements, NNODES * PER);
        eddy_reply_free(r);
        for (int n = 0; n < NNODES; n++)
            for (int k = 0; k < PER; k++) {
                char f[32];
                snprintf(f, sizeof(f), "f%d_%d", n, k);
                EXPECT_INT(n * 100 + k, t.c[i], "FCALL", f, "0");
            }
    }
    /* The coordinator down: node 1 orders the change itself. */
    eddy_free(t.c[0]);
    h_server_stop(t.s[0]);
    const char *late = "#!lua name=late\nredis.register_function('late', function() return 7 end)";
    EXPECT_ERR_PREFIX("ERR FUNCTION LOAD was applied on this node and 1 other node(s) but failed "
                      "on 1 node(s)", t.c[1], "FUNCTION", "LOAD", late);
    EXPECT_INT(7, t.c[2], "FCALL", "late", "0");
    h_server_restart(t.s[0]);
    t.c[0] = h_connect_port(t.s[0]->port);
    EXPECT_INT(7, t.c[0], "FCALL", "late", "0");
    EXPECT_INT(NNODES * PER + 1, t.c[0], "CLUSTER", "FNEPOCH");
    stop_nodes(&t);
}

static void t_epochs_restart(void)
{
    struct three t;
    char p[1024];
    start_nodes(&t);
    push_map(&t, "1", false);
    push_map(&t, "1", false); /* the same map again: accepted, nothing changes */
    payload(&t, true, p, sizeof(p));
    EXPECT_ERR_PREFIX("ERR the map's epoch 1 is not newer", t.c[0], "CLUSTER", "SETMAP", "1", p);
    push_map(&t, "5", true);
    char key[64];
    key_on(t.c[0], 2, "e", key, sizeof(key));
    EXPECT_OK(t.c[0], "SET", key, "all-mine"); /* node 0 owns every slot now */
    char *info = CMD_TEXT(t.c[2], "CLUSTER", "INFO");
    CHECK(strstr(info, "cluster_current_epoch:5\r\n") && strstr(info, "cluster_size:1\r\n"));
    free(info);
    payload(&t, false, p, sizeof(p));
    EXPECT_ERR_PREFIX("ERR the map's epoch 3 is not newer than this node's epoch 5", t.c[1],
                      "CLUSTER", "SETMAP", "3", p);

    /* A restarted node keeps its id and its map. */
    eddy_free(t.c[1]);
    h_server_restart(t.s[1]);
    t.c[1] = h_connect_port(t.s[1]->port);
    char *id = CMD_TEXT(t.c[1], "CLUSTER", "MYID");
    CHECK_STR(id, t.id[1]);
    free(id);
    info = CMD_TEXT(t.c[1], "CLUSTER", "INFO");
    CHECK(strstr(info, "cluster_current_epoch:5\r\n") && strstr(info, "cluster_state:ok\r\n"));
    free(info);
    char want[128];
    snprintf(want, sizeof(want), "MOVED %lld 127.0.0.1:%d",
             CMD_INT(t.c[1], "CLUSTER", "KEYSLOT", key), t.s[0]->port);
    EXPECT_ERR(want, t.c[1], "GET", key);

    /* A node down while a newer map was pushed gets it from a peer when it starts. */
    eddy_free(t.c[2]);
    h_server_stop(t.s[2]);
    payload(&t, false, p, sizeof(p));
    EXPECT_OK(t.c[0], "CLUSTER", "SETMAP", "6", p);
    EXPECT_OK(t.c[1], "CLUSTER", "SETMAP", "6", p);
    h_server_restart(t.s[2]);
    t.c[2] = h_connect_port(t.s[2]->port);
    info = CMD_TEXT(t.c[2], "CLUSTER", "INFO");
    CHECK(strstr(info, "cluster_current_epoch:6\r\n") && strstr(info, "cluster_size:3\r\n"));
    free(info);
    EXPECT_OK(t.c[2], "SET", key, "mine again"); /* key's slot is node 2's in map 6 */
    stop_nodes(&t);
}

/* Found by a review (hostile clients): an epoch near 2^63 was accepted, the next move
 * made 2^63 (GETMAP answered it negative) and no node could start again; a map with two
 * node ids at one address was accepted (MOVED back to the node asked). */
static void t_review_map_checks(void)
{
    struct three t;
    char p[1024];
    start_nodes(&t);
    payload(&t, false, p, sizeof(p));
    EXPECT_ERR_PREFIX("ERR epoch out of range", t.c[0], "CLUSTER", "SETMAP", "9223372036854775807",
                      p);
    EXPECT_ERR_PREFIX("ERR epoch out of range", t.c[0], "CLUSTER", "SETMAP", "4611686018427387905",
                      p);
    EXPECT_OK(t.c[0], "CLUSTER", "SETMAP", "4611686018427387904", p); /* 2^62: the largest */
    char dup[1024];
    snprintf(dup, sizeof(dup), "node %s 127.0.0.1 %d\nnode %s 127.0.0.1 %d\nslots %s 0-16383\n",
             t.id[1], t.s[1]->port, t.id[2], t.s[1]->port, t.id[1]);
    EXPECT_ERR_PREFIX("ERR nodes", t.c[1], "CLUSTER", "SETMAP", "2", dup);
    /* A node restarts with the largest epoch. */
    eddy_free(t.c[0]);
    h_server_restart(t.s[0]);
    t.c[0] = h_connect_port(t.s[0]->port);
    struct eddy_reply *r = CMD(t.c[0], "CLUSTER", "GETMAP");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->element[0]->integer == 4611686018427387904LL);
    eddy_reply_free(r);
    stop_nodes(&t);
}

/* Found by a review (hostile clusters): a call on the node bus had no time limit, so
 * with another node stopped (SIGSTOP: up, but not answering) an FCALL reading one of
 * its keys waited for ever. A short call now fails after BUS_KEYS_TIMEOUT_MS (30 s;
 * EDDY_TEST_BUS_TIMEOUT_MS makes it 1.5 s here), and the bus reconnects after. */
static void t_review_frozen_peer(void)
{
    struct three t;
    char k0[64], k1[64];
    setenv("EDDY_TEST_BUS_TIMEOUT_MS", "1500", 1);
    start_nodes(&t);
    unsetenv("EDDY_TEST_BUS_TIMEOUT_MS");
    push_map(&t, "1", false);
    EXPECT_BULK("fz", t.c[0], "FUNCTION", "LOAD",
                "#!lua name=fz\nredis.register_function('fz_get', function(keys)\n"
                "  return redis.call('GET', keys[2]) end)\n");
    key_on(t.c[0], 0, "fz0:", k0, sizeof(k0));
    key_on(t.c[1], 1, "fz1:", k1, sizeof(k1));
    EXPECT_OK(t.c[1], "SET", k1, "remote");
    EXPECT_BULK("remote", t.c[0], "FCALL", "fz_get", "2", k0, k1);
    CHECK(kill(t.s[1]->pid, SIGSTOP) == 0);
    /* Stopped for real (state T in /proc) before the call: a stop signal takes effect
     * when the process next enters the kernel, and it could still have answered. */
    char path[64], st[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)t.s[1]->pid);
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(st, 1, sizeof(st) - 1, f) : 0;
        if (f)
            fclose(f);
        st[n] = '\0';
        const char *paren = strrchr(st, ')');
        if (paren != NULL && paren[1] == ' ' && paren[2] == 'T')
            break;
        h_sleep_ms(10);
    }
    int64_t t0 = h_now_ms();
    struct eddy_reply *r = CMD(t.c[0], "FCALL", "fz_get", "2", k0, k1);
    int64_t ms = h_now_ms() - t0;
    CHECK(kill(t.s[1]->pid, SIGCONT) == 0);
    bool ok = r->type == EDDY_REPLY_ERROR && strstr(r->str, "remote access to") != NULL &&
              strstr(r->str, "no reply within 1500 ms") != NULL;
    char got[300];
    snprintf(got, sizeof(got), "%s", h_describe(r));
    eddy_reply_free(r);
    if (!ok)
        FAILF("FCALL reading a key of a stopped node: %s", got);
    if (ms > h_scaled(6000))
        FAILF("FCALL reading a key of a stopped node answered after %lld ms", (long long)ms);
    EXPECT_BULK("remote", t.c[0], "FCALL", "fz_get", "2", k0, k1); /* reconnected */
    stop_nodes(&t);
}

/* Found by the same review (not cluster-specific): eddy.scan with a prefix holding a
 * {hash tag} visited the tag's slot in every partition of a MAPREDUCE, so each key
 * counted once per I/O thread. */
static void t_review_scan_tag_partitions(void)
{
    struct h_server *s = h_server_start("--threads", "3", NULL);
    eddy_ctx *c = h_connect_port(s->port);
    for (int i = 0; i < 10; i++) {
        char k[32];
        snprintf(k, sizeof(k), "{t}k%d", i);
        EXPECT_OK(c, "SET", k, "v");
    }
    EXPECT_OK(c, "SET", "other", "v");
    struct eddy_reply *r = CMD(c, "FUNCTION", "LOAD",
                               "#!lua name=tagc\nredis.register_function('tagc', function(keys, args, part)\n"
                               "  local n = 0 for k in eddy.scan{prefix = '{t}'} do n = n + 1 end return n end)\n");
    CHECK(r->type == EDDY_REPLY_STRING);
    eddy_reply_free(r);
    EXPECT_INT(10, c, "MAPREDUCE", "tagc", "@sum");
    eddy_free(c);
    h_server_free(s);
}

static void t_keys_in_slot(void)
{
    struct three t;
    start_nodes(&t);
    push_map(&t, "1", false);
    long long slot = CMD_INT(t.c[0], "CLUSTER", "KEYSLOT", "{user1}");
    int o = owner_of((unsigned)slot);
    for (int i = 0; i < 5; i++) {
        char k[32];
        snprintf(k, sizeof(k), "{user1}:%d", i);
        EXPECT_OK(t.c[o], "SET", k, "x");
    }
    char s[16];
    snprintf(s, sizeof(s), "%lld", slot);
    EXPECT_INT(5, t.c[o], "CLUSTER", "COUNTKEYSINSLOT", s);
    EXPECT_INT(0, t.c[o], "CLUSTER", "COUNTKEYSINSLOT", "0");
    struct eddy_reply *r = CMD(t.c[o], "CLUSTER", "GETKEYSINSLOT", s, "3");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
    CHECK(strncmp(r->element[0]->str, "{user1}:", 8) == 0);
    eddy_reply_free(r);
    r = CMD(t.c[o], "CLUSTER", "GETKEYSINSLOT", s, "100");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 5);
    eddy_reply_free(r);
    EXPECT_ERR("ERR Invalid slot", t.c[o], "CLUSTER", "COUNTKEYSINSLOT", "16384");
    EXPECT_ERR("ERR Invalid slot", t.c[o], "CLUSTER", "GETKEYSINSLOT", "-1", "1");
    EXPECT_ERR("ERR Invalid number of keys", t.c[o], "CLUSTER", "GETKEYSINSLOT", s, "-1");
    stop_nodes(&t);
}

/* libeddy's cluster mode routes by slot, follows MOVED after the map changes, and
 * sends keyless commands anywhere. */
static void t_libeddy_cluster(void)
{
    struct three t;
    char err[EDDY_ERRLEN];
    start_nodes(&t);
    push_map(&t, "1", false);
    eddy_cluster *cl = eddy_cluster_connect("127.0.0.1", t.s[1]->port, 5000, NULL, err);
    if (cl == NULL)
        FAILF("eddy_cluster_connect: %s", err);
    char key[32], val[32];
    for (int n = 0; n < 300; n++) {
        snprintf(key, sizeof(key), "lc%d", n);
        snprintf(val, sizeof(val), "v%d", n);
        const char *set[] = {"SET", key, val};
        struct eddy_reply *r = eddy_cluster_command_argv(cl, 3, set, NULL);
        if (r == NULL || r->type != EDDY_REPLY_STATUS)
            FAILF("SET %s: %s", key, r ? r->str : eddy_cluster_errstr(cl));
        eddy_reply_free(r);
    }
    /* Every key landed on its owner, which a direct GET proves. */
    for (int n = 0; n < 300; n++) {
        snprintf(key, sizeof(key), "lc%d", n);
        snprintf(val, sizeof(val), "v%d", n);
        int owner = owner_of(cm_key_slot(key, strlen(key)));
        EXPECT_BULK(val, t.c[owner], "GET", key);
    }
    /* The map changes (node 0 owns everything at epoch 2; the keys of the other nodes'
     * slots are gone for node 0): the handle follows MOVED and refreshes. */
    push_map(&t, "2", true);
    snprintf(key, sizeof(key), "after");
    const char *set[] = {"SET", key, "x"};
    struct eddy_reply *r = eddy_cluster_command_argv(cl, 3, set, NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_STATUS);
    eddy_reply_free(r);
    EXPECT_BULK("x", t.c[0], "GET", "after");
    const char *ping[] = {"PING"};
    r = eddy_cluster_command_argv(cl, 1, ping, NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_STATUS && strcmp(r->str, "PONG") == 0);
    eddy_reply_free(r);
    /* An ordinary error reply comes back as it is. */
    const char *bad[] = {"INCR", key};
    r = eddy_cluster_command_argv(cl, 2, bad, NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_ERROR && strncmp(r->str, "ERR value", 9) == 0);
    eddy_reply_free(r);
    eddy_cluster_free(cl);
    stop_nodes(&t);
}

void suite_cluster(void)
{
    h_run("cluster_disabled", t_disabled, 0, 10);
    h_run("cluster_formats", t_formats, H_OWN, 30);
    h_run("cluster_routing", t_routing, H_OWN, 30);
    h_run("cluster_functions", t_functions, H_OWN, 30);
    h_run("cluster_mapreduce", t_mapreduce, H_OWN, 30);
    h_run("cluster_remote_keys", t_remote_keys, H_OWN, 30);
    h_run("cluster_function_catchup", t_function_catchup, H_OWN, 30);
    h_run("cluster_function_order", t_function_order, H_OWN, 60);
    h_run("cluster_epochs_restart", t_epochs_restart, H_OWN, 30);
    h_run("cluster_keys_in_slot", t_keys_in_slot, H_OWN, 30);
    h_run("cluster_review_map_checks", t_review_map_checks, H_OWN, 30);
    h_run("cluster_review_frozen_peer", t_review_frozen_peer, H_OWN, 60);
    h_run("cluster_review_scan_tag_partitions", t_review_scan_tag_partitions, H_OWN, 30);
    h_run("cluster_libeddy_routing", t_libeddy_cluster, H_OWN, 30);
}
