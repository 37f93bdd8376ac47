/* test_client.c - unit tests for libeddy (client/eddy.h) that need no real server.
 *
 * Each test starts a fake peer: a forked process that accepts one loopback connection
 * and plays a script (checks the exact bytes the client sends, answers canned RESP2/
 * RESP3 bytes, a byte at a time, garbage, silence, or a close mid-reply). The client
 * side checks replies, error codes, stickiness, and that every byte it allocated
 * through cm_* is freed again. Uses tests/unit/unit.h, common/ and the RESP codec.
 */
#include "unit.h"

#include "../../client/eddy.h"
#include "../../common/common.h"
#include "../../net/resp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#define S(lit) lit, sizeof(lit) - 1

/* ---- Fake peer ---------------------------------------------------------------------- */

typedef void (*peer_fn)(int fd);

static pid_t peer_pid;

/* Listens on an ephemeral loopback port and forks a peer that accepts one connection
 * and runs fn on it. Returns the port. */
static int start_peer(peer_fn fn)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 4) == 0);
    CHECK(getsockname(ls, (struct sockaddr *)&sa, &sl) == 0);
    fflush(stdout);
    peer_pid = fork();
    CHECK(peer_pid >= 0);
    if (peer_pid == 0) {
        int fd = accept(ls, NULL, NULL);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        close(ls);
        fn(fd);
        close(fd);
        _exit(0);
    }
    close(ls);
    return ntohs(sa.sin_port);
}

/* Waits for the peer; fails the test if the peer saw something unexpected. */
static void end_peer(void)
{
    int st = 0;
    waitpid(peer_pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        UNIT_FAIL("peer failed (status %d)", st);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        p += w;
        n -= (size_t)w;
    }
}

/* Writes one byte at a time, pausing so that the client sees the pieces apart. */
static void write_slowly(int fd, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        write_all(fd, p + i, 1);
        usleep(300);
    }
}

/* Reads exactly n bytes; exits the peer with 2 on EOF. */
static void read_exact(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(2);
        p += r;
        n -= (size_t)r;
    }
}

/* Reads n bytes and exits the peer with 1 unless they equal want. */
static void expect(int fd, const char *want, size_t n)
{
    char *got = malloc(n + 1);
    read_exact(fd, got, n);
    if (memcmp(got, want, n) != 0)
        _exit(1);
    free(got);
}

/* Reads one whole command with the server's request parser. Returns argc (0 at EOF);
 * the arguments stay in buf until the next call. */
static size_t read_command(int fd, struct resp_req *rq, struct cm_buf *buf)
{
    if (rq->frame_len > 0) {
        cm_buf_consume(buf, rq->frame_len);
        resp_req_next(rq);
        rq->frame_len = 0;
    }
    for (;;) {
        int rc = resp_req_parse(rq, buf->p, buf->len);
        if (rc == RESP_DONE)
            return rq->argc;
        if (rc == RESP_BAD)
            _exit(4);
        char tmp[65536];
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n <= 0)
            return 0;
        cm_buf_append(buf, tmp, (size_t)n);
    }
}

static void peer_state_free(struct resp_req *rq, struct cm_buf *in, struct cm_buf *out)
{
    resp_req_deinit(rq);
    cm_buf_deinit(in);
    if (out != NULL)
        cm_buf_deinit(out);
}

/* ---- Client helpers ------------------------------------------------------------------ */

static eddy_ctx *connect_to(int port)
{
    char err[EDDY_ERRLEN];
    eddy_ctx *c = eddy_connect("127.0.0.1", port, 5000, NULL, err);
    if (c == NULL)
        UNIT_FAIL("connect: %s", err);
    return c;
}

static struct eddy_reply *get(eddy_ctx *c)
{
    struct eddy_reply *r = NULL;
    int rc = eddy_get_reply(c, &r);
    if (rc != EDDY_OK)
        UNIT_FAIL("eddy_get_reply: %s: %s", eddy_strerror(rc), eddy_errstr(c));
    return r;
}

/* ---- Tests ------------------------------------------------------------------------------ */

TEST(strerror_names_every_code)
{
    CHECK_STR(eddy_strerror(EDDY_OK), "success");
    CHECK_STR(eddy_strerror(EDDY_ERR_EOF), "connection closed by the server");
    CHECK_STR(eddy_strerror(EDDY_ERR_TIMEOUT), "timeout");
    CHECK_STR(eddy_strerror(12345), "unknown error");
    for (int code = EDDY_ERR_REPLY; code <= EDDY_OK; code++)
        CHECK(strcmp(eddy_strerror(code), "unknown error") != 0);
    CHECK_STR(eddy_version(), EDDY_VERSION);
    CHECK_STR(eddy_reply_type_name(EDDY_REPLY_MAP), "map");
    CHECK_STR(eddy_reply_type_name(EDDY_REPLY_VERB), "verbatim");
    eddy_free(NULL);
    eddy_reply_free(NULL);
}

/* The codec's values are handed out as eddy_reply: a value built by the reader must
 * read correctly through the public struct. */
TEST(reply_is_the_codec_value)
{
    struct resp_reader rd;
    resp_reader_init(&rd);
    CHECK(resp_reader_feed(&rd, S("*2\r\n$3\r\na\0b\r\n=7\r\nmkd:xyz\r\n")) == 0);
    struct resp_value *v = NULL;
    CHECK_EQ_INT(resp_reader_get(&rd, &v), RESP_DONE);
    struct eddy_reply *r = (struct eddy_reply *)v;
    CHECK_EQ_INT(r->type, EDDY_REPLY_ARRAY);
    CHECK_EQ_INT(r->elements, 2);
    CHECK_MEM(r->element[0]->str, r->element[0]->len, "a\0b", 3);
    CHECK_EQ_INT(r->element[1]->type, EDDY_REPLY_VERB);
    CHECK_STR(r->element[1]->vtype, "mkd");
    CHECK_STR(r->element[1]->str, "xyz");
    eddy_reply_free(r);
    resp_reader_deinit(&rd);
}

static void peer_binary_set(int fd)
{
    expect(fd, S("*3\r\n$3\r\nSET\r\n$5\r\nk\0\r\n!\r\n$6\r\n\r\n\0\0$1\r\n"));
    write_all(fd, S("+OK\r\n"));
    expect(fd, S("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"));
    write_all(fd, S("$6\r\n\r\n\0\0$1\r\n"));
}

TEST(argv_is_binary_safe)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_binary_set);
    eddy_ctx *c = connect_to(port);
    const char *argv[] = {"SET", "k\0\r\n!", "\r\n\0\0$1"};
    size_t lens[] = {3, 5, 6};
    struct eddy_reply *r = eddy_command_argv(c, 3, argv, lens);
    CHECK(r != NULL && r->type == EDDY_REPLY_STATUS);
    CHECK_STR(r->str, "OK");
    eddy_reply_free(r);
    r = eddy_command(c, "GET", "k", (char *)NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_STRING);
    CHECK_MEM(r->str, r->len, "\r\n\0\0$1", 6);
    CHECK(r->str[r->len] == '\0');
    eddy_reply_free(r);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

/* Every RESP3 type, sent one byte at a time. */
static const char resp3_bytes[] =
    "%7\r\n"
    "+status\r\n:-42\r\n"
    "$0\r\n\r\n_\r\n"
    ",-1.5e3\r\n#t\r\n"
    "(12345678901234567890\r\n~2\r\n#f\r\n,inf\r\n"
    "=8\r\ntxt:verb\r\n>2\r\n$7\r\nmessage\r\n*-1\r\n"
    "!5\r\nERR x\r\n$-1\r\n"
    "|1\r\n+ttl\r\n:3\r\n-ERR simple\r\n:7\r\n"; /* the attribute is not one of the 14 */

static void peer_resp3(int fd)
{
    expect(fd, S("*1\r\n$4\r\nTYPE\r\n"));
    write_slowly(fd, resp3_bytes, sizeof(resp3_bytes) - 1);
}

TEST(resp3_types_split_at_every_byte)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_resp3);
    eddy_ctx *c = connect_to(port);
    struct eddy_reply *r = eddy_command(c, "TYPE", (char *)NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_MAP && r->elements == 15);
    struct eddy_reply **e = r->element;
    CHECK(e[0]->type == EDDY_REPLY_STATUS && strcmp(e[0]->str, "status") == 0);
    CHECK(e[1]->type == EDDY_REPLY_INTEGER && e[1]->integer == -42);
    CHECK(e[2]->type == EDDY_REPLY_STRING && e[2]->len == 0 && e[2]->str[0] == '\0');
    CHECK(e[3]->type == EDDY_REPLY_NIL);
    CHECK(e[4]->type == EDDY_REPLY_DOUBLE && e[4]->dval == -1500.0);
    CHECK_STR(e[4]->str, "-1.5e3");
    CHECK(e[5]->type == EDDY_REPLY_BOOL && e[5]->integer == 1);
    CHECK(e[6]->type == EDDY_REPLY_BIGNUM);
    CHECK_STR(e[6]->str, "12345678901234567890");
    CHECK(e[7]->type == EDDY_REPLY_SET && e[7]->elements == 2);
    CHECK(e[7]->element[0]->type == EDDY_REPLY_BOOL && e[7]->element[0]->integer == 0);
    CHECK(e[7]->element[1]->type == EDDY_REPLY_DOUBLE && e[7]->element[1]->dval > 1e308);
    CHECK(e[8]->type == EDDY_REPLY_VERB && strcmp(e[8]->vtype, "txt") == 0);
    CHECK_STR(e[8]->str, "verb");
    CHECK(e[9]->type == EDDY_REPLY_PUSH && e[9]->elements == 2);
    CHECK(e[9]->element[1]->type == EDDY_REPLY_NIL);
    CHECK(e[10]->type == EDDY_REPLY_ERROR);
    CHECK_STR(e[10]->str, "ERR x");
    CHECK(e[11]->type == EDDY_REPLY_NIL);
    CHECK(e[12]->type == EDDY_REPLY_ATTR && e[12]->elements == 2);
    CHECK(e[13]->type == EDDY_REPLY_ERROR);
    CHECK_STR(e[13]->str, "ERR simple");
    CHECK(e[14]->type == EDDY_REPLY_INTEGER && e[14]->integer == 7);
    eddy_reply_free(r);
    CHECK_EQ_INT(eddy_err(c), EDDY_OK);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

/* Echoes each command's argument count as an integer, or an error for "FAIL". */
static void peer_counter(int fd)
{
    struct resp_req rq;
    struct cm_buf in, out;
    resp_req_init(&rq);
    cm_buf_init(&in);
    cm_buf_init(&out);
    size_t argc;
    while ((argc = read_command(fd, &rq, &in)) > 0) {
        out.len = 0;
        if (rq.argvlen[0] == 4 && memcmp(rq.argv[0], "FAIL", 4) == 0)
            resp_add_error(&out, "ERR failed as asked");
        else
            resp_add_int(&out, (long long)argc);
        write_all(fd, out.p, out.len);
    }
    peer_state_free(&rq, &in, &out);
}

TEST(pipeline_keeps_order)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_counter);
    eddy_ctx *c = connect_to(port);
    const char *argv[8] = {"CMD", "a", "b", "c", "d", "e", "f", "g"};
    for (int i = 0; i < 10000; i++)
        CHECK_EQ_INT(eddy_append_argv(c, 1 + i % 8, argv, NULL), EDDY_OK);
    CHECK_EQ_INT(eddy_flush(c), EDDY_OK);
    for (int i = 0; i < 10000; i++) {
        struct eddy_reply *r = get(c);
        CHECK(r->type == EDDY_REPLY_INTEGER && r->integer == 1 + i % 8);
        eddy_reply_free(r);
    }
    /* An error reply is a reply: the connection goes on. */
    struct eddy_reply *r = eddy_command(c, "FAIL", (char *)NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_ERROR);
    CHECK_STR(r->str, "ERR failed as asked");
    eddy_reply_free(r);
    r = eddy_command(c, "OK", "x", (char *)NULL);
    CHECK(r != NULL && r->integer == 2);
    eddy_reply_free(r);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

/* Neither side reads until it has written everything: the client must read replies
 * while it writes, or both would wait forever with full buffers. */
static void peer_big_echo(int fd)
{
    struct resp_req rq;
    struct cm_buf in, out;
    resp_req_init(&rq);
    cm_buf_init(&in);
    cm_buf_init(&out);
    while (read_command(fd, &rq, &in) > 0) {
        out.len = 0;
        resp_add_bulk(&out, rq.argv[rq.argc - 1], rq.argvlen[rq.argc - 1]);
        write_all(fd, out.p, out.len);
    }
    peer_state_free(&rq, &in, &out);
}

TEST(large_values_and_pipelines_do_not_deadlock)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_big_echo);
    eddy_ctx *c = connect_to(port);
    size_t n = 4u << 20;
    char *v = malloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(i * 7 + (i >> 12));
    const char *argv[] = {"ECHO", v};
    size_t lens[] = {4, n};
    for (int i = 0; i < 16; i++)
        CHECK_EQ_INT(eddy_append_argv(c, 2, argv, lens), EDDY_OK);
    CHECK_EQ_INT(eddy_flush(c), EDDY_OK);
    for (int i = 0; i < 16; i++) {
        struct eddy_reply *r = get(c);
        CHECK(r->type == EDDY_REPLY_STRING);
        CHECK_MEM(r->str, r->len, v, n);
        eddy_reply_free(r);
    }
    free(v);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

static void peer_close_mid_reply(int fd)
{
    expect(fd, S("*1\r\n$4\r\nPING\r\n"));
    write_all(fd, S("*2\r\n$5\r\nhello\r\n$10\r\nwor"));
}

TEST(close_mid_reply_is_sticky_eof)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_close_mid_reply);
    eddy_ctx *c = connect_to(port);
    CHECK(eddy_command(c, "PING", (char *)NULL) == NULL);
    CHECK_EQ_INT(eddy_err(c), EDDY_ERR_EOF);
    CHECK_STR(eddy_errstr(c), "Server closed the connection");
    const char *argv[] = {"PING"};
    CHECK_EQ_INT(eddy_append_argv(c, 1, argv, NULL), EDDY_ERR_EOF);
    CHECK_EQ_INT(eddy_flush(c), EDDY_ERR_EOF);
    struct eddy_reply *r = (struct eddy_reply *)&r;
    CHECK_EQ_INT(eddy_get_reply(c, &r), EDDY_ERR_EOF);
    CHECK(r == NULL);
    CHECK_EQ_INT(eddy_set_timeout(c, 10), EDDY_ERR_EOF);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

static void peer_garbage(int fd)
{
    expect(fd, S("*1\r\n$4\r\nPING\r\n"));
    write_all(fd, S("+PONG\r\n?what\r\n"));
    usleep(100 * 1000);
}

TEST(protocol_error_is_sticky)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_garbage);
    eddy_ctx *c = connect_to(port);
    struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
    CHECK(r != NULL && strcmp(r->str, "PONG") == 0);
    eddy_reply_free(r);
    CHECK_EQ_INT(eddy_get_reply(c, &r), EDDY_ERR_PROTOCOL);
    CHECK(strstr(eddy_errstr(c), "Protocol error") != NULL);
    CHECK_EQ_INT(eddy_get_reply(c, &r), EDDY_ERR_PROTOCOL);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

static void peer_silent(int fd)
{
    expect(fd, S("*2\r\n$4\r\nWAIT\r\n$1\r\n1\r\n"));
    write_all(fd, S("$5\r\nab"));
    char b;
    read(fd, &b, 1); /* until the client goes away */
}

TEST(timeout_is_sticky)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_silent);
    eddy_ctx *c = connect_to(port);
    CHECK_EQ_INT(eddy_set_timeout(c, 100), EDDY_OK);
    int64_t t0 = cm_mono_us();
    CHECK(eddy_command(c, "WAIT", "1", (char *)NULL) == NULL);
    int64_t took = cm_mono_us() - t0;
    CHECK_EQ_INT(eddy_err(c), EDDY_ERR_TIMEOUT);
    CHECK(took >= 90 * 1000 && took < 2000 * 1000);
    CHECK(eddy_command(c, "PING", (char *)NULL) == NULL);
    CHECK_EQ_INT(eddy_err(c), EDDY_ERR_TIMEOUT);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

/* Answers AUTH: +OK for "good", WRONGPASS otherwise; then one PING. */
static void peer_auth(int fd)
{
    struct resp_req rq;
    struct cm_buf in;
    resp_req_init(&rq);
    cm_buf_init(&in);
    if (read_command(fd, &rq, &in) != 2 || memcmp(rq.argv[0], "AUTH", 4) != 0)
        _exit(1);
    if (rq.argvlen[1] == 4 && memcmp(rq.argv[1], "good", 4) == 0)
        write_all(fd, S("+OK\r\n"));
    else
        write_all(fd, S("-WRONGPASS invalid username-password pair\r\n"));
    if (read_command(fd, &rq, &in) == 1)
        write_all(fd, S("+PONG\r\n"));
    peer_state_free(&rq, &in, NULL);
}

TEST(auth_on_connect)
{
    size_t base = cm_alloc_used();
    char err[EDDY_ERRLEN];
    int port = start_peer(peer_auth);
    eddy_ctx *c = eddy_connect("127.0.0.1", port, 5000, "good", err);
    CHECK(c != NULL);
    struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
    CHECK(r != NULL && strcmp(r->str, "PONG") == 0);
    eddy_reply_free(r);
    eddy_free(c);
    end_peer();

    port = start_peer(peer_auth);
    CHECK(eddy_connect("localhost", port, 5000, "bad", err) == NULL);
    CHECK_STR(err, "WRONGPASS invalid username-password pair");
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

TEST(connect_failures_have_messages)
{
    char err[EDDY_ERRLEN];
    /* A port that was just free: nothing listens there. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(getsockname(s, (struct sockaddr *)&sa, &sl) == 0);
    close(s);
    CHECK(eddy_connect("127.0.0.1", ntohs(sa.sin_port), 1000, NULL, err) == NULL);
    CHECK_STR(err, "Connection refused");
    CHECK(eddy_connect("127.0.0.1", 0, 1000, NULL, err) == NULL);
    CHECK_STR(err, "Invalid host or port");
    CHECK(eddy_connect("127.0.0.1", 70000, 1000, NULL, NULL) == NULL);
    CHECK(eddy_connect_unix("/nonexistent/eddy.sock", 1000, NULL, err) == NULL);
    CHECK_STR(err, "No such file or directory");
}

static void peer_unix_ping(int fd)
{
    expect(fd, S("*1\r\n$4\r\nPING\r\n"));
    write_all(fd, S("+PONG\r\n"));
}

TEST(unix_socket)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/eddy-test-%d.sock", (int)getpid());
    unlink(path);
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    CHECK(bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 1) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = accept(ls, NULL, NULL);
        peer_unix_ping(fd);
        _exit(0);
    }
    close(ls);
    peer_pid = pid;
    char err[EDDY_ERRLEN];
    eddy_ctx *c = eddy_connect_unix(path, 1000, NULL, err);
    CHECK(c != NULL);
    struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
    CHECK(r != NULL && strcmp(r->str, "PONG") == 0);
    eddy_reply_free(r);
    eddy_free(c);
    end_peer();
    unlink(path);
}

static void peer_attr_hello(int fd)
{
    expect(fd, S("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"));
    write_all(fd, S("%1\r\n$5\r\nproto\r\n:3\r\n"));
    expect(fd, S("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"));
    write_all(fd, S("|1\r\n+key-popularity\r\n%1\r\n$1\r\nk\r\n,0.5\r\n$1\r\nv\r\n"));
    expect(fd, S("*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n"));
    write_all(fd, S("-NOPROTO unsupported protocol version\r\n"));
}

TEST(hello_and_attributes)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_attr_hello);
    eddy_ctx *c = connect_to(port);
    CHECK_EQ_INT(eddy_hello(c, 3), EDDY_OK);
    struct eddy_reply *r = eddy_command(c, "GET", "k", (char *)NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_STRING);
    CHECK_STR(r->str, "v");
    eddy_reply_free(r);
    CHECK_EQ_INT(eddy_hello(c, 7), EDDY_ERR_INVAL);
    CHECK_EQ_INT(eddy_hello(c, 2), EDDY_ERR_REPLY);
    CHECK_STR(eddy_errstr(c), "NOPROTO unsupported protocol version");
    CHECK_EQ_INT(eddy_err(c), EDDY_OK);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

#define ARGS4 "x", "x", "x", "x"
#define ARGS16 ARGS4, ARGS4, ARGS4, ARGS4
#define ARGS64 ARGS16, ARGS16, ARGS16, ARGS16

TEST(bad_arguments_do_not_stick)
{
    size_t base = cm_alloc_used();
    int port = start_peer(peer_unix_ping);
    eddy_ctx *c = connect_to(port);
    const char *argv[] = {"GET", NULL};
    CHECK_EQ_INT(eddy_append_argv(c, 0, argv, NULL), EDDY_ERR_INVAL);
    CHECK_EQ_INT(eddy_append_argv(c, 2, argv, NULL), EDDY_ERR_INVAL);
    CHECK_STR(eddy_errstr(c), "Argument 1 is NULL");
    CHECK_EQ_INT(eddy_append_argv(c, 1, NULL, NULL), EDDY_ERR_INVAL);
    CHECK_EQ_INT(eddy_get_reply(c, NULL), EDDY_ERR_INVAL);
    /* 257 arguments: one more than the variadic form takes. */
    CHECK(eddy_command(c, "GET", ARGS64, ARGS64, ARGS64, ARGS64, (char *)NULL) == NULL);
    CHECK_STR(eddy_errstr(c), "More than 256 arguments");
    CHECK_EQ_INT(eddy_err(c), EDDY_OK);
    struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
    CHECK(r != NULL && strcmp(r->str, "PONG") == 0);
    eddy_reply_free(r);
    eddy_free(c);
    end_peer();
    CHECK_EQ_INT(cm_alloc_used(), base);
}

/* Fails each allocation in turn during connect, a command and its reply: every step
 * must end in EDDY_ERR_NOMEM (or NULL) or success, and leak nothing. */
static void peer_oom(int fd)
{
    struct resp_req rq;
    struct cm_buf in;
    resp_req_init(&rq);
    cm_buf_init(&in);
    if (read_command(fd, &rq, &in) == 2)
        write_all(fd, S("+OK\r\n"));
    while (read_command(fd, &rq, &in) > 0)
        write_all(fd, S("*3\r\n$3\r\none\r\n%1\r\n+k\r\n:2\r\n~1\r\n,3.5\r\n"));
    peer_state_free(&rq, &in, NULL);
}

TEST(out_of_memory_at_every_allocation)
{
    size_t base = cm_alloc_used();
    int ok = 0;
    for (long n = 1; n < 60 && ok < 3; n++) {
        int port = start_peer(peer_oom);
        char err[EDDY_ERRLEN];
        cm_alloc_fail_at(n);
        eddy_ctx *c = eddy_connect("127.0.0.1", port, 5000, "pw", err);
        struct eddy_reply *r = c ? eddy_command(c, "GET", "k", (char *)NULL) : NULL;
        cm_alloc_fail_at(0);
        if (c == NULL) {
            CHECK(strcmp(err, "Out of memory") == 0);
        } else if (r == NULL) {
            CHECK(eddy_err(c) == EDDY_ERR_NOMEM || eddy_err(c) == EDDY_OK);
        } else {
            CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 3);
            CHECK(r->element[2]->element[0]->dval == 3.5);
            ok++;
        }
        eddy_reply_free(r);
        eddy_free(c);
        kill(peer_pid, SIGKILL);
        waitpid(peer_pid, NULL, 0);
        CHECK_EQ_INT(cm_alloc_used(), base);
    }
    CHECK(ok == 3);
}

/* ---- Cluster mode: TRYAGAIN ----------------------------------------------------------- */

/* The peer is a one-node cluster that owns every slot: it answers CLUSTER SLOTS with its
 * own address, then answers each SET with -TRYAGAIN until the (arg)th, which gets +OK
 * (never when the count is 0), and reports how many SETs it saw as its exit status. */
static int tryagain_ok_at;

static void peer_tryagain(int fd)
{
    struct resp_req rq;
    struct cm_buf in, out;
    resp_req_init(&rq);
    cm_buf_init(&in);
    cm_buf_init(&out);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    if (read_command(fd, &rq, &in) != 2)
        _exit(100);
    cm_buf_appendf(&out, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
                   ntohs(sa.sin_port));
    write_all(fd, out.p, out.len);
    int sets = 0;
    while (read_command(fd, &rq, &in) == 3) {
        sets++;
        if (sets == tryagain_ok_at)
            write_all(fd, S("+OK\r\n"));
        else
            write_all(fd, S("-TRYAGAIN Slot 1 is being migrated, try again\r\n"));
    }
    peer_state_free(&rq, &in, &out);
    _exit(sets);
}

static int end_peer_status(void)
{
    int st = 0;
    waitpid(peer_pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(cluster_retries_tryagain)
{
    size_t base = cm_alloc_used();
    char err[EDDY_ERRLEN];
    const char *set[] = {"SET", "k", "v"};
    /* A fence that lifts: the third send succeeds. */
    tryagain_ok_at = 3;
    int port = start_peer(peer_tryagain);
    eddy_cluster *cl = eddy_cluster_connect("127.0.0.1", port, 5000, NULL, err);
    if (cl == NULL)
        UNIT_FAIL("eddy_cluster_connect: %s", err);
    struct eddy_reply *r = eddy_cluster_command_argv(cl, 3, set, NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_STATUS);
    CHECK_STR(r->str, "OK");
    eddy_reply_free(r);
    eddy_cluster_free(cl);
    CHECK_EQ_INT(end_peer_status(), 3);
    /* A fence that never lifts: 1 + 12 sends, then the TRYAGAIN reply itself. */
    tryagain_ok_at = 0;
    port = start_peer(peer_tryagain);
    cl = eddy_cluster_connect("127.0.0.1", port, 5000, NULL, err);
    if (cl == NULL)
        UNIT_FAIL("eddy_cluster_connect: %s", err);
    r = eddy_cluster_command_argv(cl, 3, set, NULL);
    CHECK(r != NULL && r->type == EDDY_REPLY_ERROR && strncmp(r->str, "TRYAGAIN", 8) == 0);
    eddy_reply_free(r);
    eddy_cluster_free(cl);
    CHECK_EQ_INT(end_peer_status(), 13);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(strerror_names_every_code);
    RUN(reply_is_the_codec_value);
    RUN(argv_is_binary_safe);
    RUN(resp3_types_split_at_every_byte);
    RUN(pipeline_keeps_order);
    RUN(large_values_and_pipelines_do_not_deadlock);
    RUN(close_mid_reply_is_sticky_eof);
    RUN(protocol_error_is_sticky);
    RUN(timeout_is_sticky);
    RUN(auth_on_connect);
    RUN(connect_failures_have_messages);
    RUN(unix_socket);
    RUN(hello_and_attributes);
    RUN(bad_arguments_do_not_stick);
    RUN(out_of_memory_at_every_allocation);
    RUN(cluster_retries_tryagain);
    return unit_done();
}
