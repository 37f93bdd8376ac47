/* test_server.c - server commands: INFO and its sections, CONFIG GET/SET, COMMAND
 * (COUNT INFO DOCS LIST), TIME, CLUSTER KEYSLOT, SHUTDOWN, and a clean exit on
 * SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

static void t_info_sections(void)
{
    eddy_ctx *c = h_connect();
    char *all = CMD_TEXT(c, "INFO");
    const char *want[] = {"# Server\r\n",      "redis_version:",      "tcp_port:",
                          "uptime_in_seconds:", "# Clients\r\n",       "connected_clients:",
                          "# Memory\r\n",       "used_memory:",        "# Persistence\r\n",
                          "# Stats\r\n",        "total_commands_processed:", "expired_keys:",
                          "keyspace_hits:",     "# Keyspace\r\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(all, want[i]) == NULL)
            FAILF("INFO lacks \"%s\"", want[i]);
    free(all);
    char port[32];
    snprintf(port, sizeof(port), "%d", h_port);
    CHECK_EQ_INT(h_info_field(c, "server", "tcp_port"), h_port);
    CHECK(h_info_field(c, "clients", "connected_clients") >= 1);
    CHECK(h_info_field(c, "memory", "used_memory") > 0);
    /* One section only. */
    const char *sections[] = {"server", "clients", "memory", "persistence", "stats", "keyspace"};
    const char *headers[] = {"# Server", "# Clients", "# Memory", "# Persistence", "# Stats",
                             "# Keyspace"};
    for (size_t i = 0; i < 6; i++) {
        char *t = CMD_TEXT(c, "INFO", sections[i]);
        for (size_t j = 0; j < 6; j++)
            if ((strstr(t, headers[j]) != NULL) != (i == j))
                FAILF("INFO %s %s \"%s\"", sections[i], i == j ? "lacks" : "contains",
                      headers[j]);
        free(t);
    }
    char *t = CMD_TEXT(c, "INFO", "SERVER", "stats");
    CHECK(strstr(t, "# Server") != NULL && strstr(t, "# Stats") != NULL);
    CHECK(strstr(t, "# Memory") == NULL);
    free(t);
    /* Counters move. */
    long long cmds = h_info_field(c, "stats", "total_commands_processed");
    EXPECT_STATUS("PONG", c, "PING");
    CHECK(h_info_field(c, "stats", "total_commands_processed") > cmds);
    long long hits = h_info_field(c, "stats", "keyspace_hits");
    long long misses = h_info_field(c, "stats", "keyspace_misses");
    EXPECT_OK(c, "SET", "info:k", "v");
    EXPECT_BULK("v", c, "GET", "info:k");
    EXPECT_NIL(c, "GET", "info:absent");
    CHECK(h_info_field(c, "stats", "keyspace_hits") > hits);
    CHECK(h_info_field(c, "stats", "keyspace_misses") > misses);
    t = CMD_TEXT(c, "INFO", "keyspace");
    if (strstr(t, "db0:keys=") == NULL)
        FAILF("INFO keyspace with a key lacks db0:keys=: \"%s\"", t);
    free(t);
    EXPECT_INT(1, c, "DEL", "info:k");
    eddy_free(c);
}

static void t_config_get(void)
{
    eddy_ctx *c = h_connect();
    struct eddy_reply *r = CMD(c, "CONFIG", "GET", "maxclients");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    CHECK_STR(r->element[0]->str, "maxclients");
    CHECK(atoll(r->element[1]->str) > 0);
    eddy_reply_free(r);
    r = CMD(c, "CONFIG", "GET", "port");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    CHECK_EQ_INT(atoll(r->element[1]->str), h_port);
    eddy_reply_free(r);
    /* Glob patterns, case-insensitive names. */
    r = CMD(c, "CONFIG", "GET", "max*");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements >= 2 && r->elements % 2 == 0);
    bool found = false;
    for (size_t i = 0; i < r->elements; i += 2) {
        if (strncmp(r->element[i]->str, "max", 3) != 0)
            FAILF("CONFIG GET max* returned %s", r->element[i]->str);
        found |= strcmp(r->element[i]->str, "maxclients") == 0;
    }
    CHECK(found);
    eddy_reply_free(r);
    r = CMD(c, "CONFIG", "GET", "*");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements >= 20);
    eddy_reply_free(r);
    r = CMD(c, "CONFIG", "GET", "APPENDFSYNC");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    CHECK(strcasecmp(r->element[0]->str, "appendfsync") == 0);
    eddy_reply_free(r);
    r = CMD(c, "CONFIG", "GET", "appendfsyn?");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    eddy_reply_free(r);
    r = CMD(c, "CONFIG", "GET", "no-such-option");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 0);
    eddy_reply_free(r);
    /* Several patterns (Redis 7). */
    r = CMD(c, "CONFIG", "GET", "maxclients", "timeout");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 4);
    eddy_reply_free(r);
    /* What redis-benchmark and redis-cli ask for. */
    r = CMD(c, "CONFIG", "GET", "save");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    eddy_reply_free(r);
    EXPECT_ERR_PREFIX("ERR unknown subcommand 'FOO'", c, "CONFIG", "FOO");
    /* Redis 7 names the subcommand in lowercase, whatever the case typed. */
    EXPECT_ERR("ERR wrong number of arguments for 'config|get' command", c, "CONFIG", "get");
    EXPECT_ERR("ERR wrong number of arguments for 'config|get' command", c, "CONFIG", "GET");
    eddy_free(c);
}

static void expect_config(const char *file, int line, eddy_ctx *c, const char *name,
                          const char *want)
{
    struct eddy_reply *r = h_cmd(file, line, c, "CONFIG", "GET", name, (char *)NULL);
    if (r->type != EDDY_REPLY_ARRAY || r->elements != 2 || strcmp(r->element[1]->str, want) != 0)
        h_fail(file, line, "CONFIG GET %s: %s, expected %s", name,
               r->elements == 2 ? r->element[1]->str : h_describe(r), want);
    eddy_reply_free(r);
}
#define EXPECT_CONFIG(c, name, want) expect_config(H_AT, (c), (name), (want))

static void t_config_set(void)
{
    eddy_ctx *c = h_connect();
    struct eddy_reply *r = CMD(c, "CONFIG", "GET", "appendfsync");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    char saved[32];
    snprintf(saved, sizeof(saved), "%s", r->element[1]->str);
    eddy_reply_free(r);

    EXPECT_OK(c, "CONFIG", "SET", "appendfsync", "always");
    EXPECT_CONFIG(c, "appendfsync", "always");
    char *t = CMD_TEXT(c, "INFO", "persistence");
    CHECK(strstr(t, "appendfsync:always") != NULL);
    free(t);
    EXPECT_OK(c, "SET", "cfg:k", "v"); /* a write under always */
    EXPECT_OK(c, "CONFIG", "SET", "appendfsync", "no");
    EXPECT_CONFIG(c, "appendfsync", "no");
    EXPECT_OK(c, "CONFIG", "SET", "APPENDFSYNC", "EverySec");
    EXPECT_CONFIG(c, "appendfsync", "everysec");
    EXPECT_ERR("ERR CONFIG SET failed (possibly related to argument 'appendfsync') - "
               "argument(s) must be one of the following: always, everysec, no",
               c, "CONFIG", "SET", "appendfsync", "sometimes");
    EXPECT_CONFIG(c, "appendfsync", "everysec");
    EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument 'maxclients')", c,
                      "CONFIG", "SET", "maxclients", "lots");
    EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument 'maxclients')", c,
                      "CONFIG", "SET", "maxclients", "-5");
    EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument 'timeout')", c,
                      "CONFIG", "SET", "timeout", "1.5");
    EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument "
                      "'client-output-buffer-limit')",
                      c, "CONFIG", "SET", "client-output-buffer-limit", "12qb");
    EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument 'threads')", c,
                      "CONFIG", "SET", "threads", "4");
    EXPECT_ERR("ERR Unknown option or number of arguments for CONFIG SET - 'no-such-option'", c,
               "CONFIG", "SET", "no-such-option", "1");
    /* Memory units. */
    r = CMD(c, "CONFIG", "GET", "client-output-buffer-limit");
    char outlim[64];
    snprintf(outlim, sizeof(outlim), "%s", r->element[1]->str);
    eddy_reply_free(r);
    EXPECT_OK(c, "CONFIG", "SET", "client-output-buffer-limit", "2mb");
    EXPECT_CONFIG(c, "client-output-buffer-limit", "2097152");
    EXPECT_OK(c, "CONFIG", "SET", "client-output-buffer-limit", outlim);
    EXPECT_OK(c, "CONFIG", "SET", "timeout", "0");
    EXPECT_CONFIG(c, "timeout", "0");
    /* Several pairs at once. */
    EXPECT_OK(c, "CONFIG", "SET", "timeout", "0", "hz", "10");
    EXPECT_CONFIG(c, "hz", "10");
    EXPECT_OK(c, "CONFIG", "SET", "appendfsync", saved);
    EXPECT_OK(c, "CONFIG", "RESETSTAT");
    EXPECT_INT(1, c, "DEL", "cfg:k");
    EXPECT_ERR("ERR wrong number of arguments for 'config|set' command", c, "CONFIG", "SET",
               "timeout");
    eddy_free(c);
}

static void t_command(void)
{
    eddy_ctx *c = h_connect();
    long long n = CMD_INT(c, "COMMAND", "COUNT");
    CHECK(n >= 50);
    struct eddy_reply *r = CMD(c, "COMMAND");
    CHECK(r->type == EDDY_REPLY_ARRAY);
    CHECK_EQ_INT(r->elements, n);
    eddy_reply_free(r);
    r = CMD(c, "COMMAND", "INFO", "get", "SET", "nosuchcommand");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
    struct eddy_reply *g = r->element[0];
    CHECK(g->type == EDDY_REPLY_ARRAY && g->elements >= 6);
    CHECK_STR(g->element[0]->str, "get");
    CHECK(g->element[1]->type == EDDY_REPLY_INTEGER && g->element[1]->integer == 2);
    CHECK(g->element[3]->integer == 1 && g->element[4]->integer == 1 &&
          g->element[5]->integer == 1);
    bool readonly = false;
    for (size_t i = 0; i < g->element[2]->elements; i++)
        readonly |= strcmp(g->element[2]->element[i]->str, "readonly") == 0;
    CHECK(readonly);
    CHECK_STR(r->element[1]->element[0]->str, "set");
    CHECK(r->element[1]->element[1]->integer == -3);
    CHECK(r->element[2]->type == EDDY_REPLY_NIL);
    eddy_reply_free(r);
    r = CMD(c, "COMMAND", "INFO", "mset");
    CHECK(r->element[0]->element[3]->integer == 1 && r->element[0]->element[4]->integer == -1 &&
          r->element[0]->element[5]->integer == 2);
    eddy_reply_free(r);
    r = CMD(c, "COMMAND", "DOCS", "get");
    CHECK((r->type == EDDY_REPLY_ARRAY || r->type == EDDY_REPLY_MAP) && r->elements == 2);
    CHECK_STR(r->element[0]->str, "get");
    eddy_reply_free(r);
    r = CMD(c, "COMMAND", "DOCS");
    CHECK(r->elements >= 100 && r->elements % 2 == 0);
    eddy_reply_free(r);
    r = CMD(c, "COMMAND", "LIST");
    CHECK(r->type == EDDY_REPLY_ARRAY && (long long)r->elements >= n);
    eddy_reply_free(r);
    EXPECT_ERR_PREFIX("ERR unknown subcommand 'BOGUS'", c, "COMMAND", "BOGUS");
    eddy_free(c);
}

static void t_time(void)
{
    eddy_ctx *c = h_connect();
    struct eddy_reply *r = CMD(c, "TIME");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    CHECK(r->element[0]->type == EDDY_REPLY_STRING && r->element[1]->type == EDDY_REPLY_STRING);
    long long s = atoll(r->element[0]->str), us = atoll(r->element[1]->str);
    long long now = (long long)time(NULL);
    CHECK(s >= now - 2 && s <= now + 2);
    CHECK(us >= 0 && us < 1000000);
    eddy_reply_free(r);
    EXPECT_ERR("ERR wrong number of arguments for 'time' command", c, "TIME", "x");
    eddy_free(c);
}

static void t_cluster_keyslot(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_INT(12182, c, "CLUSTER", "KEYSLOT", "foo");
    EXPECT_INT(866, c, "CLUSTER", "KEYSLOT", "hello");
    EXPECT_INT(11058, c, "CLUSTER", "KEYSLOT", "somekey");
    EXPECT_INT(2515, c, "CLUSTER", "KEYSLOT", "foo{hash_tag}");
    EXPECT_INT(12739, c, "CLUSTER", "KEYSLOT", "123456789");
    EXPECT_INT(0, c, "CLUSTER", "KEYSLOT", "");
    long long a = CMD_INT(c, "CLUSTER", "KEYSLOT", "{user1000}.following");
    long long b = CMD_INT(c, "CLUSTER", "KEYSLOT", "{user1000}.followers");
    CHECK_EQ_INT(a, b);
    EXPECT_INT(a, c, "CLUSTER", "KEYSLOT", "user1000");
    /* Only the first {...} counts, and an empty {} means the whole key. */
    EXPECT_INT(12182, c, "CLUSTER", "KEYSLOT", "{foo}{bar}");
    long long whole = CMD_INT(c, "CLUSTER", "KEYSLOT", "{}foo");
    CHECK(whole != 12182);
    EXPECT_INT(12182, c, "CLUSTER", "KEYSLOT", "x{foo}y");
    EXPECT_ERR("ERR wrong number of arguments for 'cluster|keyslot' command", c, "CLUSTER",
               "KEYSLOT");
    EXPECT_ERR("ERR This instance has cluster support disabled", c, "CLUSTER", "INFO");
    eddy_free(c);
}

static void t_shutdown(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_OK(c, "SET", "k", "v");
    EXPECT_ERR("ERR syntax error", c, "SHUTDOWN", "MAYBE");
    EXPECT_STATUS("PONG", c, "PING");
    struct eddy_reply *r = eddy_command(c, "SHUTDOWN", "NOSAVE", (char *)NULL);
    if (r != NULL)
        FAILF("SHUTDOWN NOSAVE replied %s, expected the connection to close", h_describe(r));
    CHECK(eddy_err(c) == EDDY_ERR_EOF || eddy_err(c) == EDDY_ERR_IO);
    eddy_free(c);
    int st = 0;
    if (!h_server_wait_exit(s, 10000, &st))
        FAILF("eddyd still runs 10 s after SHUTDOWN NOSAVE");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        FAILF("eddyd exit status after SHUTDOWN: 0x%x", st);
    /* eddy persists every write: NOSAVE does not lose it. */
    h_server_restart(s);
    c = h_connect_port(s->port);
    EXPECT_BULK("v", c, "GET", "k");
    /* SHUTDOWN with no argument, and a second client connected. */
    eddy_ctx *other = h_connect_port(s->port);
    r = eddy_command(c, "SHUTDOWN", (char *)NULL);
    CHECK(r == NULL);
    eddy_free(c);
    if (!h_server_wait_exit(s, 10000, &st))
        FAILF("eddyd still runs 10 s after SHUTDOWN");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    r = eddy_command(other, "PING", (char *)NULL);
    CHECK(r == NULL);
    eddy_free(other);
    h_server_free(s);
}

static void t_sigterm(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_OK(c, "SET", "k", "v");
    kill(s->pid, SIGTERM);
    int st = 0;
    if (!h_server_wait_exit(s, 10000, &st))
        FAILF("eddyd still runs 10 s after SIGTERM with a client connected");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        FAILF("eddyd exit status after SIGTERM: 0x%x", st);
    struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
    CHECK(r == NULL);
    eddy_free(c);
    h_server_free(s);
}

/* CONFIG SET on one I/O thread while the others read the same settings: the limits
 * on every read and reply, the idle timeout in every worker's cron, requirepass on
 * every accept and AUTH. Each AUTH sees one whole password or none, never a mix; the
 * server stays up. (Under `make tsan` this is the test that exposes unsynchronised
 * configuration reads.) */
static void t_config_set_while_serving(void)
{
    struct h_server *s = h_server_start("--threads", "3", NULL);
    eddy_ctx *admin = h_connect_port(s->port);
    pid_t pid = fork();
    if (pid == 0) {
        h_helper();
        for (int i = 0; i < 300; i++) {
            eddy_ctx *c = eddy_connect("127.0.0.1", s->port, h_scaled(10000), NULL, NULL);
            if (c == NULL)
                _exit(1);
            struct eddy_reply *r = eddy_command(c, "AUTH", "aaaaaaaaaaaaaaaa", (char *)NULL);
            if (r == NULL || r->type != EDDY_REPLY_STATUS) {
                /* Wrong password, or none set: the other password is never half-seen. */
                if (r == NULL || r->type != EDDY_REPLY_ERROR ||
                    (strncmp(r->str, "WRONGPASS", 9) != 0 &&
                     strncmp(r->str, "ERR AUTH <password> called without", 34) != 0))
                    _exit(2);
            }
            eddy_reply_free(r);
            r = eddy_command(c, "SET", "cfg:k", "v", (char *)NULL);
            if (r == NULL)
                _exit(3);
            eddy_reply_free(r);
            eddy_free(c);
        }
        _exit(0);
    }
    static const char *const pw[] = {"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", ""};
    for (int i = 0; i < 600; i++) {
        char n[16];
        snprintf(n, sizeof(n), "%d", 1000 + i);
        EXPECT_OK(admin, "CONFIG", "SET", "requirepass", pw[i % 3]);
        EXPECT_OK(admin, "CONFIG", "SET", "timeout", i % 2 ? "0" : n, "client-query-buffer-limit",
                  i % 2 ? "1gb" : "512mb", "client-output-buffer-limit", i % 2 ? "1gb" : "0",
                  "maxclients", n, "proto-max-bulk-len", i % 2 ? "512mb" : "256mb");
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        FAILF("the client of the other threads failed (status %d)", WEXITSTATUS(st));
    EXPECT_OK(admin, "CONFIG", "SET", "requirepass", "");
    EXPECT_ALIVE(s->port);
    eddy_free(admin);
    h_server_free(s);
}

/* Found by a review (hostile clients): CONFIG SET of several pairs set the pairs
 * before a bad one and then failed (CONFIG GET said appendfsync always while the
 * engine still synced every second); a name could appear twice; 0 was accepted for
 * the query buffer limit and proto-max-bulk-len, after which every client was closed
 * on its first command; a changed proto-max-bulk-len did not reach the connections
 * already open. Now all or nothing, as Redis. */
static void t_config_set_all_or_nothing(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument 'hz')", c, "CONFIG",
                      "SET", "appendfsync", "always", "hz", "-1");
    EXPECT_CONFIG(c, "appendfsync", "everysec");
    char *t = CMD_TEXT(c, "INFO", "persistence");
    CHECK(strstr(t, "appendfsync:everysec") != NULL);
    free(t);
    EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument 'hz')", c, "CONFIG",
                      "SET", "timeout", "7", "hz", "abc");
    EXPECT_CONFIG(c, "timeout", "0");
    EXPECT_ERR("ERR CONFIG SET failed (possibly related to argument 'TIMEOUT') - duplicate "
               "parameter",
               c, "CONFIG", "SET", "timeout", "5", "TIMEOUT", "0");
    EXPECT_CONFIG(c, "timeout", "0");
    EXPECT_ERR("ERR syntax error", c, "CONFIG", "SET", "timeout", "0", "hz");
    EXPECT_ERR("ERR Unknown option or number of arguments for CONFIG SET - 'nope'", c, "CONFIG",
               "SET", "timeout", "9", "nope", "1");
    EXPECT_CONFIG(c, "timeout", "0");
    EXPECT_OK(c, "CONFIG", "SET", "timeout", "9", "hz", "20");
    EXPECT_CONFIG(c, "timeout", "9");
    EXPECT_CONFIG(c, "hz", "20");
    EXPECT_OK(c, "CONFIG", "SET", "timeout", "0", "hz", "10");
    /* 0 only where it means "no limit". */
    static const char *const no_zero[] = {"client-query-buffer-limit", "proto-max-bulk-len",
                                          "udf-memory-limit"};
    for (int i = 0; i < 3; i++)
        EXPECT_ERR_PREFIX("ERR CONFIG SET failed (possibly related to argument", c, "CONFIG",
                          "SET", no_zero[i], "0");
    EXPECT_CONFIG(c, "client-query-buffer-limit", "1073741824");
    EXPECT_CONFIG(c, "proto-max-bulk-len", "536870912");
    EXPECT_OK(c, "CONFIG", "SET", "client-output-buffer-limit", "0");
    EXPECT_CONFIG(c, "client-output-buffer-limit", "0");
    EXPECT_OK(c, "CONFIG", "SET", "client-output-buffer-limit", "1gb");
    EXPECT_STATUS("PONG", c, "PING");
    /* proto-max-bulk-len applies to connections already open, both ways. */
    enum { MB2 = 2 << 20 };
    char *v = malloc(MB2);
    CHECK(v != NULL);
    memset(v, 'p', MB2);
    int old = h_raw_connect(s->port);
    CHECK(old >= 0);
    EXPECT_STATUS("PONG", c, "PING");
    CHECK(h_raw_send(old, "PING\r\n", 6) == 0); /* it is connected and served */
    char buf[128];
    bool closed;
    h_raw_recv(old, buf, 7, 3000, &closed);
    CHECK_STR(buf, "+PONG\r\n");
    EXPECT_OK(c, "CONFIG", "SET", "proto-max-bulk-len", "1mb");
    eddy_ctx *during = h_connect_port(s->port);
    const char *set[] = {"SET", "pm:k", v};
    size_t setl[] = {3, 4, MB2};
    static const char head[] = "*3\r\n$3\r\nSET\r\n$4\r\npm:k\r\n$2097152\r\n";
    CHECK(h_raw_send(old, head, sizeof(head) - 1) == 0);
    size_t got;
    CHECK(h_raw_wait_close(old, buf, sizeof(buf), &got, 5000));
    CHECK_STR(buf, "-ERR Protocol error: invalid bulk length\r\n");
    close(old);
    EXPECT_OK(c, "CONFIG", "SET", "proto-max-bulk-len", "512mb");
    h_expect_status(H_AT, h_cmdv(H_AT, during, 3, set, setl), "OK");
    EXPECT_INT(MB2, c, "STRLEN", "pm:k");
    EXPECT_INT(1, c, "DEL", "pm:k");
    free(v);
    eddy_free(during);
    eddy_free(c);
    h_server_free(s);
}

/* Found by a review (hostile clients): CLIENT KILL TYPE, USER and MAXAGE were parsed
 * and ignored, so `CLIENT KILL TYPE pubsub` killed every other client. Every client is
 * a normal one of user "default" (as docs/PROTOCOL.md says): TYPE normal and USER
 * default select all, the other types none, an unknown type or user is an error;
 * MAXAGE (Redis 7.4) selects clients at least that many seconds old. */
static void t_client_kill_filters(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    eddy_ctx *o[3];
    for (int i = 0; i < 3; i++)
        o[i] = h_connect_port(s->port);
    static const char *const none[] = {"pubsub", "master", "replica", "slave"};
    for (int i = 0; i < 4; i++)
        EXPECT_INT(0, c, "CLIENT", "KILL", "TYPE", none[i]);
    EXPECT_ERR("ERR Unknown client type 'foo'", c, "CLIENT", "KILL", "TYPE", "foo");
    EXPECT_ERR("ERR No such user 'nosuchuser'", c, "CLIENT", "KILL", "USER", "nosuchuser");
    EXPECT_ERR("ERR No such user 'DEFAULT'", c, "CLIENT", "KILL", "USER", "DEFAULT");
    EXPECT_ERR("ERR maxage is not an integer or out of range", c, "CLIENT", "KILL", "MAXAGE",
               "-1");
    EXPECT_INT(0, c, "CLIENT", "KILL", "MAXAGE", "100000");
    EXPECT_INT(0, c, "CLIENT", "KILL", "TYPE", "normal", "USER", "default", "MAXAGE", "100000");
    for (int i = 0; i < 3; i++)
        EXPECT_STATUS("PONG", o[i], "PING");
    /* An ID with TYPE normal and USER default: that one. */
    long long id = CMD_INT(o[0], "CLIENT", "ID");
    char ids[32];
    snprintf(ids, sizeof(ids), "%lld", id);
    EXPECT_INT(1, c, "CLIENT", "KILL", "ID", ids, "TYPE", "normal", "USER", "default");
    h_sleep_ms(1100);
    eddy_ctx *young = h_connect_port(s->port);
    EXPECT_INT(2, c, "CLIENT", "KILL", "MAXAGE", "1"); /* o[1], o[2]; not c (SKIPME), not young */
    EXPECT_STATUS("PONG", young, "PING");
    EXPECT_STATUS("PONG", c, "PING");
    struct eddy_reply *r = eddy_command(o[1], "PING", (char *)NULL);
    CHECK(r == NULL); /* closed */
    eddy_reply_free(r);
    for (int i = 0; i < 3; i++)
        eddy_free(o[i]);
    eddy_free(young);
    eddy_free(c);
    h_server_free(s);
}

void suite_server(void)
{
    h_run("info_sections", t_info_sections, 0, 10);
    h_run("config_get_patterns", t_config_get, 0, 10);
    h_run("config_set_appendfsync_and_errors", t_config_set, 0, 10);
    h_run("command_count_info_docs", t_command, 0, 10);
    h_run("time", t_time, 0, 10);
    h_run("cluster_keyslot", t_cluster_keyslot, 0, 10);
    h_run("shutdown_nosave", t_shutdown, H_OWN, 40);
    h_run("sigterm_clean_exit", t_sigterm, H_OWN, 30);
    h_run("config_set_while_serving", t_config_set_while_serving, H_OWN, 60);
    h_run("config_set_all_or_nothing", t_config_set_all_or_nothing, H_OWN, 30);
    h_run("client_kill_filters", t_client_kill_filters, H_OWN, 30);
}
