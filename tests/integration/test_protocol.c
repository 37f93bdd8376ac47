/* test_protocol.c - hostile and unusual input over raw sockets: garbage and length
 * overflows (an error reply starting "-ERR Protocol error", then the connection
 * closes), ignored empty multibulks, unterminated frames, inline commands, frames
 * split at every byte. After each, the server still answers another client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Sends req on a new connection; the server must answer exactly want and close. */
static void expect_reply_and_close(const char *file, int line, const char *req, size_t reqlen,
                                   const char *want)
{
    int fd = h_raw_connect(h_port);
    if (fd < 0)
        h_fail(file, line, "cannot connect");
    if (h_raw_send(fd, req, reqlen) != 0)
        h_fail(file, line, "send failed");
    char buf[1024];
    size_t got;
    bool closed = h_raw_wait_close(fd, buf, sizeof(buf), &got, 3000);
    close(fd);
    if (strcmp(buf, want) != 0)
        h_fail(file, line, "request \"%.40s\": got \"%.200s\", expected \"%s\"", req, buf, want);
    if (!closed)
        h_fail(file, line, "request \"%.40s\": connection still open 3 s after the error", req);
    h_expect_alive(file, line, h_port);
}
#define EXPECT_CLOSE(req, want) expect_reply_and_close(H_AT, (req), sizeof(req) - 1, (want))

/* Sends req; the reply must start with prefix, then the connection must close. */
static void expect_error_prefix_close(const char *file, int line, const char *req,
                                      size_t reqlen, const char *prefix)
{
    int fd = h_raw_connect(h_port);
    if (fd < 0)
        h_fail(file, line, "cannot connect");
    h_raw_send(fd, req, reqlen);
    char buf[1024];
    size_t got;
    bool closed = h_raw_wait_close(fd, buf, sizeof(buf), &got, 3000);
    close(fd);
    if (strncmp(buf, prefix, strlen(prefix)) != 0 || got < 2 || buf[got - 2] != '\r')
        h_fail(file, line, "request \"%.40s\": got \"%.200s\", expected \"%s...\"", req, buf,
               prefix);
    if (!closed)
        h_fail(file, line, "request \"%.40s\": connection still open after the error", req);
    h_expect_alive(file, line, h_port);
}

static void t_garbage(void)
{
    EXPECT_CLOSE("*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    EXPECT_CLOSE("*\x01\x02\xff\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    EXPECT_CLOSE("*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n");
    EXPECT_CLOSE("*2\r\n$4\r\nECHO\r\n:12\r\n", "-ERR Protocol error: expected '$', got ':'\r\n");
    EXPECT_CLOSE("*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_CLOSE("*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_CLOSE("*1\r\n$1.5\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_CLOSE("set \"a\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n");
    EXPECT_CLOSE("set 'a\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n");
    EXPECT_CLOSE("set \"a\"b c\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n");
    /* Commands before the garbage are answered first. */
    EXPECT_CLOSE("PING\r\n*1\r\n$4\r\nPING\r\n*1\r\nfoo\r\n",
                 "+PONG\r\n+PONG\r\n-ERR Protocol error: expected '$', got 'f'\r\n");
    /* A bulk longer than announced. */
    const char over[] = "*1\r\n$3\r\nPINGPONG\r\n";
    expect_error_prefix_close(H_AT, over, sizeof(over) - 1, "-ERR Protocol error");
    /* Random binary garbage that starts like a multibulk, then a line end. */
    char junk[512];
    junk[0] = '*';
    unsigned x = 12345;
    for (size_t i = 1; i < sizeof(junk); i++) {
        x = x * 1103515245 + 12345;
        junk[i] = (char)(x >> 16);
    }
    junk[sizeof(junk) - 2] = '\r';
    junk[sizeof(junk) - 1] = '\n';
    expect_error_prefix_close(H_AT, junk, sizeof(junk), "-ERR Protocol error");
}

static void t_length_overflows(void)
{
    EXPECT_CLOSE("*1\r\n$1099511627776\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_CLOSE("*1\r\n$9223372036854775807\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_CLOSE("*1\r\n$99999999999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    /* proto-max-bulk-len is 512mb: one more is refused. */
    EXPECT_CLOSE("*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_CLOSE("*99999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    EXPECT_CLOSE("*9223372036854775808\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    /* A count line that never ends. */
    size_t n = 70000;
    char *big = malloc(n);
    CHECK(big != NULL);
    big[0] = '*';
    memset(big + 1, '1', n - 1);
    expect_error_prefix_close(H_AT, big, n, "-ERR Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n$", 5);
    memset(big + 5, '2', n - 5);
    expect_error_prefix_close(H_AT, big, n, "-ERR Protocol error: too big bulk count string");
    /* An inline command longer than 64 KB. */
    memset(big, 'a', n);
    expect_error_prefix_close(H_AT, big, n, "-ERR Protocol error: too big inline request");
    free(big);
    /* Exactly 512mb is accepted: the server waits for the data. */
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    const char ok[] = "*2\r\n$4\r\nECHO\r\n$536870912\r\nabc";
    CHECK(h_raw_send(fd, ok, sizeof(ok) - 1) == 0);
    char buf[256];
    bool closed;
    size_t got = h_raw_recv(fd, buf, sizeof(buf) - 1, 300, &closed);
    if (got != 0 || closed)
        FAILF("a 512mb bulk header got \"%s\"%s, expected the server to wait", buf,
              closed ? " and a close" : "");
    close(fd);
    EXPECT_ALIVE(h_port);
}

static void t_empty_multibulk(void)
{
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    const char req[] = "*-5\r\n*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*0\r\n\r\n\r\nPING\r\n";
    CHECK(h_raw_send(fd, req, sizeof(req) - 1) == 0);
    char buf[256];
    bool closed;
    size_t got = h_raw_recv(fd, buf, 14, 3000, &closed);
    CHECK_EQ_INT(got, 14);
    CHECK_STR(buf, "+PONG\r\n+PONG\r\n");
    got = h_raw_recv(fd, buf, sizeof(buf) - 1, 200, &closed);
    CHECK_EQ_INT(got, 0);
    CHECK(!closed);
    close(fd);
    EXPECT_ALIVE(h_port);
}

/* Frames cut short, then the client goes away: nothing is executed. */
static void t_unterminated(void)
{
    const char *reqs[] = {
        "*3\r\n$3\r\nSET\r\n$5\r\nut:k1\r\n$5\r\nval",
        "*3\r\n$3\r\nSET\r\n$5\r\nut:k2\r\n$5\r\nvalue",
        "*3\r\n$3\r\nSET\r\n$5\r\nut:k3\r\n$5\r\nvalue\r",
        "*3\r\n$3\r\nSET\r\n$5\r\nut:k4\r\n$",
        "*3\r\n$3\r\nSET\r\n$5\r\nut:k5",
        "*3\r\n",
        "*",
        "SET ut:k6 v",
        "*1\r\n$100000000\r\nabc",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        int fd = h_raw_connect(h_port);
        CHECK(fd >= 0);
        CHECK(h_raw_send(fd, reqs[i], strlen(reqs[i])) == 0);
        h_sleep_ms(20);
        close(fd);
        EXPECT_ALIVE(h_port);
    }
    eddy_ctx *c = h_connect();
    EXPECT_INT(0, c, "EXISTS", "ut:k1", "ut:k2", "ut:k3", "ut:k4", "ut:k5", "ut:k6");
    eddy_free(c);
}

static void raw_exchange(const char *file, int line, int fd, const char *req, const char *want)
{
    if (h_raw_send(fd, req, strlen(req)) != 0)
        h_fail(file, line, "send failed");
    char buf[1024];
    bool closed;
    size_t n = strlen(want);
    h_raw_recv(fd, buf, n, 3000, &closed);
    if (strcmp(buf, want) != 0)
        h_fail(file, line, "sent \"%s\": got \"%s\"%s, expected \"%s\"", req, buf,
               closed ? " and a close" : "", want);
}
#define RAW(fd, req, want) raw_exchange(H_AT, (fd), (req), (want))

static void t_inline(void)
{
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    RAW(fd, "PING\r\n", "+PONG\r\n");
    RAW(fd, "PING\n", "+PONG\r\n");
    RAW(fd, "  ping   \r\n", "+PONG\r\n");
    RAW(fd, "\r\n\r\nPING\r\n", "+PONG\r\n");
    RAW(fd, "set il:a 'b c'\r\n", "+OK\r\n");
    RAW(fd, "get il:a\r\n", "$3\r\nb c\r\n");
    RAW(fd, "set il:b \"x\\ny\\x41\"\r\n", "+OK\r\n");
    RAW(fd, "GET il:b\r\n", "$4\r\nx\nyA\r\n");
    RAW(fd, "set il:c 'it\\'s'\r\n", "+OK\r\n");
    RAW(fd, "get il:c\r\n", "$4\r\nit's\r\n");
    RAW(fd, "echo \"\"\r\n", "$0\r\n\r\n");
    RAW(fd, "SET il:d 1\r\nINCR il:d\r\nGET il:d\r\n", "+OK\r\n:2\r\n$1\r\n2\r\n");
    RAW(fd, "nosuch arg\r\n",
        "-ERR unknown command 'nosuch', with args beginning with: 'arg' \r\n");
    RAW(fd, "GET\r\n", "-ERR wrong number of arguments for 'get' command\r\n");
    /* Inline and multibulk mixed in one write. */
    RAW(fd, "PING\r\n*2\r\n$3\r\nGET\r\n$4\r\nil:d\r\nPING x\r\n",
        "+PONG\r\n$1\r\n2\r\n$1\r\nx\r\n");
    RAW(fd, "DEL il:a il:b il:c il:d\r\n", ":4\r\n");
    close(fd);
    EXPECT_ALIVE(h_port);
}

/* One command sent a byte at a time, multibulk and inline. */
static void t_byte_at_a_time(void)
{
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    const char *req = "*3\r\n$3\r\nSET\r\n$5\r\nba:k1\r\n$5\r\nhello\r\n"
                      "*2\r\n$3\r\nGET\r\n$5\r\nba:k1\r\n"
                      "DEL ba:k1\r\n";
    for (const char *p = req; *p; p++) {
        CHECK(h_raw_send(fd, p, 1) == 0);
        h_sleep_ms(1);
    }
    const char want[] = "+OK\r\n$5\r\nhello\r\n:1\r\n";
    char buf[128];
    bool closed;
    h_raw_recv(fd, buf, sizeof(want) - 1, 3000, &closed);
    CHECK_STR(buf, want);
    close(fd);
}

/* A pipeline of three commands cut in two at every byte. */
static void t_split_everywhere(void)
{
    const char req[] = "*3\r\n$3\r\nSET\r\n$5\r\nsp:k1\r\n$3\r\na\r\n\r\n"
                       "ECHO 'x y'\r\n"
                       "*2\r\n$3\r\nGET\r\n$5\r\nsp:k1\r\n";
    const char want[] = "+OK\r\n$3\r\nx y\r\n$3\r\na\r\n\r\n";
    size_t len = sizeof(req) - 1;
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    for (size_t cut = 1; cut < len; cut++) {
        CHECK(h_raw_send(fd, req, cut) == 0);
        h_sleep_ms(2);
        CHECK(h_raw_send(fd, req + cut, len - cut) == 0);
        char buf[128];
        bool closed;
        h_raw_recv(fd, buf, sizeof(want) - 1, 3000, &closed);
        if (strcmp(buf, want) != 0)
            FAILF("split at byte %zu: got \"%s\"", cut, buf);
    }
    close(fd);
    eddy_ctx *c = h_connect();
    EXPECT_INT(1, c, "DEL", "sp:k1");
    eddy_free(c);
}

/* A command with 100,000 arguments. */
static void t_many_arguments(void)
{
    enum { N = 100000 };
    size_t cap = (size_t)N * 16 + 64, len = 0;
    char *req = malloc(cap);
    CHECK(req != NULL);
    len += (size_t)snprintf(req, cap, "*%d\r\n$6\r\nEXISTS\r\n", N + 1);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(req + len, cap - len, "$5\r\n%05d\r\n", i);
    int fd = h_raw_connect(h_port);
    CHECK(fd >= 0);
    CHECK(h_raw_send(fd, req, len) == 0);
    char buf[64];
    bool closed;
    h_raw_recv(fd, buf, 4, 10000, &closed);
    CHECK_STR(buf, ":0\r\n");
    free(req);
    close(fd);
}

void suite_protocol(void)
{
    h_run("protocol_garbage_closes", t_garbage, 0, 30);
    h_run("protocol_length_overflows", t_length_overflows, 0, 30);
    h_run("protocol_empty_multibulk_ignored", t_empty_multibulk, 0, 10);
    h_run("protocol_unterminated_frames", t_unterminated, 0, 20);
    h_run("protocol_inline_commands", t_inline, 0, 10);
    h_run("protocol_byte_at_a_time", t_byte_at_a_time, 0, 10);
    h_run("protocol_split_everywhere", t_split_everywhere, 0, 20);
    h_run("protocol_100000_arguments", t_many_arguments, 0, 20);
}
