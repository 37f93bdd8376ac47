/* test_conn.c - connection commands: PING ECHO HELLO (RESP2/RESP3) AUTH SELECT QUIT
 * CLIENT, and the error texts of unknown commands and wrong arity (Redis 7 wording). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* The value for key in a RESP3 map or a RESP2 flat array of pairs, or NULL. */
static const struct eddy_reply *map_get(const struct eddy_reply *r, const char *key)
{
    if (r->type != EDDY_REPLY_MAP && r->type != EDDY_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const struct eddy_reply *k = r->element[i];
        if ((k->type == EDDY_REPLY_STRING || k->type == EDDY_REPLY_STATUS) &&
            strcmp(k->str, key) == 0)
            return r->element[i + 1];
    }
    return NULL;
}

static void t_ping(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_STATUS("PONG", c, "PING");
    EXPECT_STATUS("PONG", c, "ping");
    EXPECT_BULK("hello world", c, "PING", "hello world");
    EXPECT_ERR("ERR wrong number of arguments for 'ping' command", c, "PING", "a", "b");
    eddy_free(c);
}

static void t_echo(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_BULK("hi", c, "ECHO", "hi");
    EXPECT_BULK("", c, "ECHO", "");
    const char *argv[] = {"ECHO", "a\0b\r\nc"};
    size_t lens[] = {4, 7};
    h_expect_bulk(H_AT, h_cmdv(H_AT, c, 2, argv, lens), "a\0b\r\nc", 7);
    EXPECT_ERR("ERR wrong number of arguments for 'echo' command", c, "ECHO");
    EXPECT_ERR("ERR wrong number of arguments for 'echo' command", c, "ECHO", "a", "b");
    eddy_free(c);
}

static void check_hello(const struct eddy_reply *r, int proto, long long id)
{
    const struct eddy_reply *v;
    if (proto == 3 && r->type != EDDY_REPLY_MAP)
        FAILF("HELLO 3 replied %s, expected a map", h_describe(r));
    if (proto == 2 && r->type != EDDY_REPLY_ARRAY)
        FAILF("HELLO 2 replied %s, expected an array", h_describe(r));
    CHECK(r->elements >= 14 && r->elements % 2 == 0);
    v = map_get(r, "server");
    CHECK(v != NULL && v->type == EDDY_REPLY_STRING && strcmp(v->str, "redis") == 0);
    v = map_get(r, "version");
    CHECK(v != NULL && v->type == EDDY_REPLY_STRING && v->str[0] >= '7');
    v = map_get(r, "proto");
    CHECK(v != NULL && v->type == EDDY_REPLY_INTEGER && v->integer == proto);
    v = map_get(r, "id");
    CHECK(v != NULL && v->type == EDDY_REPLY_INTEGER && (id == 0 || v->integer == id));
    v = map_get(r, "mode");
    CHECK(v != NULL && v->type == EDDY_REPLY_STRING && strcmp(v->str, "standalone") == 0);
    v = map_get(r, "role");
    CHECK(v != NULL && v->type == EDDY_REPLY_STRING && strcmp(v->str, "master") == 0);
    v = map_get(r, "modules");
    CHECK(v != NULL && v->type == EDDY_REPLY_ARRAY && v->elements == 0);
}

static void t_hello(void)
{
    eddy_ctx *c = h_connect();
    long long id = CMD_INT(c, "CLIENT", "ID");
    struct eddy_reply *r = CMD(c, "HELLO");
    check_hello(r, 2, id);
    eddy_reply_free(r);
    r = CMD(c, "HELLO", "2");
    check_hello(r, 2, id);
    eddy_reply_free(r);
    EXPECT_NIL(c, "GET", "hello:missing");

    r = CMD(c, "HELLO", "3");
    check_hello(r, 3, id);
    eddy_reply_free(r);
    EXPECT_NIL(c, "GET", "hello:missing");
    /* RESP3 types: CONFIG GET is a map, INFO a verbatim string. */
    r = CMD(c, "CONFIG", "GET", "maxclients");
    CHECK(r->type == EDDY_REPLY_MAP && r->elements == 2);
    CHECK(strcmp(r->element[0]->str, "maxclients") == 0);
    eddy_reply_free(r);
    r = CMD(c, "INFO", "server");
    if (r->type != EDDY_REPLY_VERB || strcmp(r->vtype, "txt") != 0)
        FAILF("INFO under RESP3: %s, expected a verbatim txt string", h_describe(r));
    eddy_reply_free(r);
    r = CMD(c, "HELLO");
    check_hello(r, 3, id);
    eddy_reply_free(r);

    r = CMD(c, "HELLO", "3", "SETNAME", "hello-client");
    check_hello(r, 3, id);
    eddy_reply_free(r);
    EXPECT_BULK("hello-client", c, "CLIENT", "GETNAME");

    r = CMD(c, "HELLO", "2");
    check_hello(r, 2, id);
    eddy_reply_free(r);
    r = CMD(c, "CONFIG", "GET", "maxclients");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 2);
    eddy_reply_free(r);
    CHECK_EQ_INT(eddy_hello(c, 3), EDDY_OK);
    eddy_free(c);
}

static void t_hello_errors(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_ERR("NOPROTO unsupported protocol version", c, "HELLO", "4");
    EXPECT_ERR("NOPROTO unsupported protocol version", c, "HELLO", "1");
    EXPECT_ERR("ERR Protocol version is not an integer or out of range", c, "HELLO", "abc");
    EXPECT_ERR("ERR Syntax error in HELLO option 'FOO'", c, "HELLO", "3", "FOO");
    EXPECT_ERR("ERR Syntax error in HELLO option 'AUTH'", c, "HELLO", "3", "AUTH", "x");
    /* Still RESP2 after the failures. */
    EXPECT_NIL(c, "GET", "hello:missing");
    CHECK_EQ_INT(eddy_hello(c, 4), EDDY_ERR_INVAL);
    eddy_free(c);
}

/* The bytes of a RESP3 null and map on the wire, not only as libeddy parses them. */
static void t_hello3_wire(void)
{
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    const char req[] = "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$3\r\nGET\r\n$11\r\nwire:absent\r\n";
    CHECK(h_raw_send(fd, req, sizeof(req) - 1) == 0);
    char buf[4096];
    bool closed;
    size_t n = h_raw_recv(fd, buf, sizeof(buf) - 1, 300, &closed);
    CHECK(!closed);
    if (n < 8 || buf[0] != '%' || strcmp(buf + n - 3, "_\r\n") != 0)
        FAILF("HELLO 3 + GET absent sent \"%.60s\"...(%zu bytes), expected a %% map then _",
              buf, n);
    close(fd);
}

static void t_auth_no_password(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_ERR("ERR AUTH <password> called without any password configured for the default "
               "user. Are you sure your configuration is correct?",
               c, "AUTH", "foo");
    EXPECT_ERR("ERR wrong number of arguments for 'auth' command", c, "AUTH");
    eddy_free(c);
}

static void t_auth(void)
{
    struct h_server *s = h_server_start("--requirepass", "s3cret", NULL);
    const char *noauth = "NOAUTH Authentication required.";
    const char *wrong = "WRONGPASS invalid username-password pair or user is disabled.";
    eddy_ctx *c = h_connect_port(s->port);
    EXPECT_ERR(noauth, c, "GET", "k");
    EXPECT_ERR(noauth, c, "SET", "k", "v");
    EXPECT_ERR(noauth, c, "PING");
    EXPECT_ERR(wrong, c, "AUTH", "bad");
    EXPECT_ERR(wrong, c, "AUTH", "s3cre");
    EXPECT_ERR(wrong, c, "AUTH", "s3cret!");
    EXPECT_ERR(wrong, c, "AUTH", "default", "bad");
    EXPECT_ERR(wrong, c, "AUTH", "nobody", "s3cret");
    EXPECT_ERR(noauth, c, "GET", "k");
    EXPECT_OK(c, "AUTH", "s3cret");
    EXPECT_OK(c, "SET", "k", "v");
    EXPECT_BULK("v", c, "GET", "k");
    eddy_free(c);

    c = h_connect_port(s->port);
    EXPECT_OK(c, "AUTH", "default", "s3cret");
    EXPECT_BULK("v", c, "GET", "k");
    CHECK(h_info_field(c, "stats", "auth_failures") >= 5);
    eddy_free(c);

    char err[EDDY_ERRLEN] = "";
    c = eddy_connect("127.0.0.1", s->port, 5000, "s3cret", err);
    CHECK(c != NULL);
    EXPECT_BULK("v", c, "GET", "k");
    eddy_free(c);
    c = eddy_connect("127.0.0.1", s->port, 5000, "nope", err);
    CHECK(c == NULL);
    if (strstr(err, "WRONGPASS") == NULL)
        FAILF("eddy_connect with a bad password: \"%s\", expected WRONGPASS", err);

    /* HELLO with AUTH. */
    c = h_connect_port(s->port);
    EXPECT_ERR_PREFIX("NOAUTH HELLO must be called with the client already authenticated", c,
                      "HELLO", "3");
    EXPECT_ERR(wrong, c, "HELLO", "3", "AUTH", "default", "bad");
    EXPECT_ERR(noauth, c, "GET", "k");
    struct eddy_reply *r = CMD(c, "HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "h3");
    check_hello(r, 3, 0);
    eddy_reply_free(r);
    EXPECT_BULK("v", c, "GET", "k");
    EXPECT_BULK("h3", c, "CLIENT", "GETNAME");
    EXPECT_NIL(c, "GET", "absent");
    eddy_free(c);

    /* QUIT needs no authentication. */
    c = h_connect_port(s->port);
    EXPECT_OK(c, "QUIT");
    eddy_free(c);
    h_server_free(s);
}

static void t_select(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "SELECT", "0");
    EXPECT_ERR("ERR DB index is out of range", c, "SELECT", "1");
    EXPECT_ERR("ERR DB index is out of range", c, "SELECT", "15");
    EXPECT_ERR("ERR value is not an integer or out of range", c, "SELECT", "x");
    EXPECT_ERR("ERR wrong number of arguments for 'select' command", c, "SELECT");
    EXPECT_STATUS("PONG", c, "PING");
    eddy_free(c);
}

static void t_quit(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_OK(c, "QUIT");
    struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
    if (r != NULL)
        FAILF("PING after QUIT replied %s, expected a closed connection", h_describe(r));
    CHECK(eddy_err(c) == EDDY_ERR_EOF || eddy_err(c) == EDDY_ERR_IO);
    eddy_free(c);
    /* QUIT in the middle of a pipeline: the commands after it are not executed. */
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    const char req[] = "SET quit:k 1\r\nQUIT\r\nSET quit:k 2\r\n";
    CHECK(h_raw_send(fd, req, sizeof(req) - 1) == 0);
    char buf[256];
    size_t got;
    CHECK(h_raw_wait_close(fd, buf, sizeof(buf), &got, 3000));
    CHECK_STR(buf, "+OK\r\n+OK\r\n");
    close(fd);
    c = h_connect();
    EXPECT_BULK("1", c, "GET", "quit:k");
    EXPECT_INT(1, c, "DEL", "quit:k");
    eddy_free(c);
}

static void t_unknown_command(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_ERR("ERR unknown command 'foo', with args beginning with: 'a' ", c, "foo", "a");
    EXPECT_ERR("ERR unknown command 'FOO', with args beginning with: 'a' 'b c' ", c, "FOO", "a",
               "b c");
    EXPECT_ERR("ERR unknown command 'nosuchcmd', with args beginning with: ", c, "nosuchcmd");
    EXPECT_STATUS("PONG", c, "PING");
    /* Redis quotes arguments while the list is under 128 bytes, cutting the last one
     * to fit: 100 a's, then 25 b's (checked against Redis 7.0.15). */
    char a[101], b[101], want[300];
    memset(a, 'a', 100);
    memset(b, 'b', 100);
    a[100] = b[100] = '\0';
    snprintf(want, sizeof(want),
             "ERR unknown command 'foo', with args beginning with: '%s' '%.25s' ", a, b);
    EXPECT_ERR(want, c, "foo", a, b, "c");
    eddy_free(c);
}

static void t_wrong_arity(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_ERR("ERR wrong number of arguments for 'get' command", c, "GET");
    EXPECT_ERR("ERR wrong number of arguments for 'get' command", c, "get", "a", "b");
    EXPECT_ERR("ERR wrong number of arguments for 'set' command", c, "SET", "a");
    EXPECT_ERR("ERR wrong number of arguments for 'mget' command", c, "MGET");
    EXPECT_ERR("ERR wrong number of arguments for 'del' command", c, "DEL");
    EXPECT_ERR("ERR wrong number of arguments for 'dbsize' command", c, "DBSIZE", "x");
    EXPECT_ERR("ERR wrong number of arguments for 'incrby' command", c, "INCRBY", "a");
    EXPECT_ERR("ERR wrong number of arguments for 'expire' command", c, "EXPIRE", "a");
    EXPECT_STATUS("PONG", c, "PING");
    eddy_free(c);
}

/* "id=12 addr=..." -> the value of field in one CLIENT INFO / LIST line. */
static void client_field(const char *line, const char *field, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof(key), " %s=", field);
    const char *p = strncmp(line, key + 1, strlen(key + 1)) == 0 ? line - 1 : strstr(line, key);
    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(key);
    size_t n = strcspn(p, " \n");
    snprintf(out, cap, "%.*s", (int)n, p);
}

static void t_client_basic(void)
{
    eddy_ctx *c = h_connect();
    long long id = CMD_INT(c, "CLIENT", "ID");
    CHECK(id > 0);
    EXPECT_NIL(c, "CLIENT", "GETNAME");
    EXPECT_OK(c, "CLIENT", "SETNAME", "itest-basic");
    EXPECT_BULK("itest-basic", c, "CLIENT", "GETNAME");
    EXPECT_ERR("ERR Client names cannot contain spaces, newlines or special characters.", c,
               "CLIENT", "SETNAME", "a b");
    EXPECT_BULK("itest-basic", c, "CLIENT", "GETNAME");

    char *info = CMD_TEXT(c, "CLIENT", "INFO");
    char v[128], want[32];
    client_field(info, "id", v, sizeof(v));
    snprintf(want, sizeof(want), "%lld", id);
    CHECK_STR(v, want);
    client_field(info, "name", v, sizeof(v));
    CHECK_STR(v, "itest-basic");
    client_field(info, "cmd", v, sizeof(v));
    CHECK(strstr(v, "client") != NULL);
    CHECK(strstr(info, "addr=127.0.0.1:") != NULL);
    free(info);

    eddy_ctx *c2 = h_connect();
    long long id2 = CMD_INT(c2, "CLIENT", "ID");
    CHECK(id2 > id);
    EXPECT_OK(c2, "CLIENT", "SETNAME", "itest-other");
    char *list = CMD_TEXT(c, "CLIENT", "LIST");
    char line[64];
    snprintf(line, sizeof(line), "id=%lld ", id);
    CHECK(strstr(list, line) != NULL);
    snprintf(line, sizeof(line), "id=%lld ", id2);
    CHECK(strstr(list, line) != NULL);
    CHECK(strstr(list, "name=itest-basic ") != NULL);
    CHECK(strstr(list, "name=itest-other ") != NULL);
    free(list);
    /* An empty name clears it. */
    EXPECT_OK(c2, "CLIENT", "SETNAME", "");
    EXPECT_NIL(c2, "CLIENT", "GETNAME");
    eddy_free(c2);
    eddy_free(c);
}

/* Redis 7 wording of the errors of container commands (checked against 7.0.15). */
static void t_client_errors(void)
{
    eddy_ctx *c = h_connect();
    EXPECT_ERR("ERR wrong number of arguments for 'client|setname' command", c, "CLIENT",
               "SETNAME");
    EXPECT_ERR("ERR wrong number of arguments for 'client|getname' command", c, "CLIENT",
               "GETNAME", "x");
    EXPECT_ERR("ERR wrong number of arguments for 'client|id' command", c, "CLIENT", "ID", "x");
    EXPECT_ERR("ERR syntax error", c, "CLIENT", "LIST", "x");
    EXPECT_ERR("ERR unknown subcommand 'nosuch'. Try CLIENT HELP.", c, "CLIENT", "nosuch");
    eddy_free(c);
}

static void t_client_kill(void)
{
    eddy_ctx *c = h_connect();
    eddy_ctx *victim = h_connect();
    long long vid = CMD_INT(victim, "CLIENT", "ID");
    char idstr[32];
    snprintf(idstr, sizeof(idstr), "%lld", vid);
    EXPECT_INT(1, c, "CLIENT", "KILL", "ID", idstr);
    struct eddy_reply *r = eddy_command(victim, "PING", (char *)NULL);
    if (r != NULL)
        FAILF("PING on a killed client replied %s", h_describe(r));
    eddy_free(victim);
    EXPECT_INT(0, c, "CLIENT", "KILL", "ID", idstr);
    EXPECT_INT(0, c, "CLIENT", "KILL", "ID", "999999999");
    EXPECT_ERR("ERR client-id should be greater than 0", c, "CLIENT", "KILL", "ID", "0");

    /* The old form, by address. */
    victim = h_connect();
    char *info = CMD_TEXT(victim, "CLIENT", "INFO");
    char addr[128];
    client_field(info, "addr", addr, sizeof(addr));
    free(info);
    CHECK(addr[0] != '\0');
    EXPECT_OK(c, "CLIENT", "KILL", addr);
    r = eddy_command(victim, "PING", (char *)NULL);
    if (r != NULL)
        FAILF("PING on a client killed by address replied %s", h_describe(r));
    eddy_free(victim);
    EXPECT_ERR("ERR No such client", c, "CLIENT", "KILL", "10.9.8.7:1");
    /* SKIPME yes by default: killing by our own address kills nobody. */
    info = CMD_TEXT(c, "CLIENT", "INFO");
    client_field(info, "addr", addr, sizeof(addr));
    free(info);
    EXPECT_INT(0, c, "CLIENT", "KILL", "ADDR", addr);
    EXPECT_STATUS("PONG", c, "PING");
    eddy_free(c);
}

/* CLIENT LIST is gathered from every I/O thread, each describing its own connections
 * (no thread reads another's: the TSan build found that race). With 4 threads and 8
 * connections accepted round-robin, every thread holds some; all are listed, in id
 * order, a pipelined command after CLIENT LIST is answered after it, CLIENT LIST ID
 * finds clients of any thread, and listing while the others work keeps working. */
static void t_client_list_all_threads(void)
{
    struct h_server *s = h_server_start("--threads", "4", NULL);
    eddy_ctx *cs[8];
    long long ids[8];
    for (int i = 0; i < 8; i++) {
        cs[i] = h_connect_port(s->port);
        char name[32];
        snprintf(name, sizeof(name), "thr-%d", i);
        EXPECT_OK(cs[i], "CLIENT", "SETNAME", name);
        ids[i] = CMD_INT(cs[i], "CLIENT", "ID");
    }
    for (int round = 0; round < 2; round++) {
        char *list = CMD_TEXT(cs[round], "CLIENT", "LIST");
        const char *prev = list;
        for (int i = 0; i < 8; i++) {
            char want[64];
            snprintf(want, sizeof(want), "id=%lld ", ids[i]);
            const char *at = strstr(list, want);
            if (at == NULL)
                FAILF("CLIENT LIST lacks client %d (%s) of 8 on 4 threads:\n%s", i, want, list);
            CHECK(at >= prev); /* in id order */
            prev = at;
            snprintf(want, sizeof(want), "name=thr-%d ", i);
            CHECK(strstr(at, want) != NULL);
        }
        free(list);
    }
    /* CLIENT LIST ID with clients of several threads. */
    char a[32], b[32];
    snprintf(a, sizeof(a), "%lld", ids[1]);
    snprintf(b, sizeof(b), "%lld", ids[6]);
    char *list = CMD_TEXT(cs[0], "CLIENT", "LIST", "ID", b, a);
    CHECK(strstr(list, "name=thr-1 ") != NULL && strstr(list, "name=thr-6 ") != NULL);
    CHECK(strstr(list, "name=thr-0 ") == NULL && strstr(list, "name=thr-7 ") == NULL);
    CHECK(strstr(list, "name=thr-1 ") < strstr(list, "name=thr-6 "));
    free(list);
    /* Any number of IDs (the review found those past the 64th ignored): 100 that match
     * no one, then client 3. */
    const char *av[104] = {"CLIENT", "LIST", "ID"};
    size_t al[104] = {6, 4, 2};
    char nums[100][24];
    for (int i = 0; i < 100; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%d", 900000 + i);
        av[3 + i] = nums[i];
        al[3 + i] = strlen(nums[i]);
    }
    snprintf(a, sizeof(a), "%lld", ids[3]);
    av[103] = a;
    al[103] = strlen(a);
    list = h_text(H_AT, eddy_command_argv(cs[0], 104, av, al));
    CHECK(strstr(list, "name=thr-3 ") != NULL && strstr(list, "name=thr-1 ") == NULL);
    free(list);
    /* Pipelined: the reply of CLIENT LIST comes before those of the commands after it. */
    const char *cl[] = {"CLIENT", "LIST"}, *echo[] = {"ECHO", "after"};
    for (int k = 0; k < 20; k++) {
        CHECK(eddy_append_argv(cs[2], 2, cl, NULL) == EDDY_OK);
        CHECK(eddy_append_argv(cs[2], 2, echo, NULL) == EDDY_OK);
    }
    for (int k = 0; k < 20; k++) {
        struct eddy_reply *r = NULL;
        CHECK(eddy_get_reply(cs[2], &r) == EDDY_OK);
        if (r->type != EDDY_REPLY_STRING && r->type != EDDY_REPLY_VERB)
            FAILF("pipelined CLIENT LIST replied %s", h_describe(r));
        CHECK(strstr(r->str, "name=thr-7 ") != NULL);
        eddy_reply_free(r);
        CHECK(eddy_get_reply(cs[2], &r) == EDDY_OK);
        h_expect_bulk(H_AT, r, "after", 5);
    }
    /* Listing while the other connections write: every reply is whole. */
    pid_t pid = fork();
    if (pid == 0) {
        h_helper();
        eddy_ctx *w = h_connect_port(s->port);
        for (int i = 0; i < 2000; i++) {
            struct eddy_reply *r = eddy_command(w, "SET", "clist:k", "v", (char *)NULL);
            if (r == NULL || r->type != EDDY_REPLY_STATUS)
                _exit(1);
            eddy_reply_free(r);
        }
        _exit(0);
    }
    for (int i = 0; i < 200; i++) {
        list = CMD_TEXT(cs[i % 8], "CLIENT", "LIST");
        int lines = 0;
        for (const char *p = list; (p = strchr(p, '\n')) != NULL; p++)
            lines++;
        CHECK(lines >= 8);
        CHECK(strstr(list, "name=thr-0 ") != NULL && strstr(list, "name=thr-7 ") != NULL);
        free(list);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* A client that closes while its CLIENT LIST is under way does not hurt anyone. */
    for (int i = 0; i < 50; i++) {
        eddy_ctx *q = h_connect_port(s->port);
        CHECK(eddy_append_argv(q, 2, cl, NULL) == EDDY_OK);
        CHECK(eddy_flush(q) == EDDY_OK);
        eddy_free(q);
    }
    for (int i = 0; i < 8; i++) {
        EXPECT_STATUS("PONG", cs[i], "PING");
        eddy_free(cs[i]);
    }
    h_server_free(s);
}

void suite_conn(void)
{
    h_run("ping", t_ping, 0, 10);
    h_run("echo", t_echo, 0, 10);
    h_run("hello_resp2_resp3", t_hello, 0, 10);
    h_run("hello_errors", t_hello_errors, 0, 10);
    h_run("hello3_wire_format", t_hello3_wire, 0, 10);
    h_run("auth_without_password", t_auth_no_password, 0, 10);
    h_run("auth_requirepass", t_auth, H_OWN, 30);
    h_run("select", t_select, 0, 10);
    h_run("quit", t_quit, 0, 10);
    h_run("unknown_command_error", t_unknown_command, 0, 10);
    h_run("wrong_arity_error", t_wrong_arity, 0, 10);
    h_run("client_id_setname_list_info", t_client_basic, 0, 10);
    h_run("client_kill", t_client_kill, 0, 10);
    h_run("client_errors_redis7_wording", t_client_errors, 0, 10);
    h_run("client_list_all_threads", t_client_list_all_threads, H_OWN, 60);
}
