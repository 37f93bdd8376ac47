/* test_faults.c - allocation-failure injection (SQLite style) over the RESP codec and
 * libeddy: for N = 1, 2, ... every allocation of an operation is made to fail in
 * turn (cm_alloc_fail_at), and each run must end either exactly as the run without
 * failures did or with the documented out-of-memory outcome, and give back every byte
 * (cm_alloc_used() returns to where it started). Run it under valgrind
 * --leak-check=full too (see tests/fuzz/README.md): the cm_* counter only sees what
 * goes through cm_*.
 *
 * Paths: the request parser (multibulk with many arguments, quoted inline lines), the
 * reply writers (the buffer is unchanged on failure), the reply reader (nested
 * aggregates, big arrays, every RESP3 type, fed whole and a byte at a time), and
 * libeddy (connect, queue, flush, read replies) against a forked fake server on a
 * Unix socket. */
#include "unit.h"

#include "../../client/eddy.h"
#include "../../common/common.h"
#include "../../net/resp.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Upper bound on the allocations of one operation below; each loop also stops
 * once this many consecutive runs did not fail at all. */
#define MAX_N 4000

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static uint64_t hash_value(uint64_t h, const struct resp_value *v)
{
    int t = (int)v->type;
    h = hash_bytes(h, &t, sizeof(t));
    if (v->str != NULL)
        h = hash_bytes(h, v->str, v->len + 1);
    h = hash_bytes(h, &v->integer, sizeof(v->integer));
    h = hash_bytes(h, &v->elements, sizeof(v->elements));
    for (size_t i = 0; i < v->elements; i++)
        h = hash_value(h, v->element[i]);
    return h;
}

/* ---- Request parser --------------------------------------------------------------------- */

/* A stream of commands whose parse needs several argv reallocations and a growing
 * inline buffer. */
static char *request_stream(size_t *len)
{
    struct cm_buf b;
    cm_buf_init(&b);
    const char *argv[100];
    size_t lens[100];
    char keys[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key:%d", i);
        argv[i] = keys[i];
        lens[i] = strlen(keys[i]);
    }
    argv[0] = "MSET";
    lens[0] = 4;
    CHECK(resp_add_command(&b, 100, argv, lens) == 0);
    cm_buf_appendf(&b, "SET \"a\\x41 b\\n\" 'c d' %s\r\n", "plain");
    for (int i = 0; i < 40; i++)
        cm_buf_appendf(&b, "%s word%d", i ? "" : "ECHO", i);
    cm_buf_append(&b, "\r\n", 2);
    char *p = malloc(b.len);
    memcpy(p, b.p, b.len);
    *len = b.len;
    cm_buf_deinit(&b);
    return p;
}

/* Parses the whole stream, fed in pieces of `step` bytes. Returns a hash of the
 * commands, or 0 with *bad set to the error. */
static uint64_t parse_all(const char *s, size_t len, size_t step, char *bad)
{
    struct resp_req r;
    resp_req_init(&r);
    uint64_t h = 1469598103934665603ULL;
    size_t start = 0, have = 0;
    bad[0] = '\0';
    while (start < len) {
        have = have + step < len ? have + step : len;
        int rc;
        while ((rc = resp_req_parse(&r, s + start, have - start)) == RESP_DONE) {
            for (size_t i = 0; i < r.argc; i++)
                h = hash_bytes(h, r.argv[i], r.argvlen[i] + 0);
            h = hash_bytes(h, &r.argc, sizeof(r.argc));
            start += r.frame_len;
            resp_req_next(&r);
        }
        if (rc == RESP_BAD) {
            snprintf(bad, 128, "%s", r.err);
            h = 0;
            break;
        }
        if (have == len && start < len)
            break;
    }
    resp_req_deinit(&r);
    return h;
}

TEST(alloc_fail_request_parser)
{
    size_t len;
    char *s = request_stream(&len);
    size_t steps[] = {len, 1, 7};
    for (size_t k = 0; k < 3; k++) {
        char bad[128];
        size_t start = cm_alloc_used();
        uint64_t want = parse_all(s, len, steps[k], bad);
        CHECK(want != 0);
        int fails = 0, clean = 0;
        for (long n = 1; n < MAX_N && clean < 50; n++) {
            cm_alloc_fail_at(n);
            uint64_t got = parse_all(s, len, steps[k], bad);
            cm_alloc_fail_at(0);
            if (got == 0) {
                CHECK_STR(bad, "Protocol error: out of memory");
                fails++;
                clean = 0;
            } else {
                CHECK(got == want);
                clean++;
            }
            CHECK_EQ_INT(cm_alloc_used(), start);
        }
        CHECK(fails > 0); /* the injection reached the parser */
        fprintf(stderr, "  request parser, step %zu: %d allocations failed in turn\n", steps[k],
                fails);
    }
    free(s);
}

/* ---- Reply writers ---------------------------------------------------------------------- */

TEST(alloc_fail_reply_writers_leave_buffer_unchanged)
{
    const char *argv[] = {"SET", "key", "value"};
    size_t lens[] = {3, 3, 5};
    for (int w = 0; w < 15; w++) {
        struct cm_buf b;
        cm_buf_init(&b);
        size_t start = cm_alloc_used();
        int rc = 0;
        for (long n = 1; n < 10; n++) {
            cm_buf_init(&b);
            /* A full small buffer, so that the writer must grow it. */
            CHECK(cm_buf_append(&b, "0123456789012345678901234567890123456789012345678901234567890123", 64) == 0);
            CHECK_EQ_INT(b.cap, 64);
            cm_alloc_fail_at(n);
            switch (w) {
            case 0: rc = resp_add_simple(&b, "OK"); break;
            case 1: rc = resp_add_error(&b, "ERR x\r\ny"); break;
            case 2: rc = resp_add_errorf(&b, "ERR %d", 42); break;
            case 3: rc = resp_add_int(&b, -123456789); break;
            case 4: rc = resp_add_bulk(&b, "abc\0def", 7); break;
            case 5: rc = resp_add_cstr(&b, "text"); break;
            case 6: rc = resp_add_null(&b, n % 2 ? 2 : 3); break;
            case 7: rc = resp_add_array(&b, 1000); break;
            case 8: rc = resp_add_map(&b, 3, 3); break;
            case 9: rc = resp_add_set(&b, 3, 3); break;
            case 10: rc = resp_add_double(&b, 1.5, 3); break;
            case 11: rc = resp_add_bool(&b, true, 3); break;
            case 12: rc = resp_add_verbatim(&b, "txt", "hello", 5, 3); break;
            case 13: rc = resp_add_command(&b, 3, argv, lens); break;
            case 14: rc = resp_add_null_array(&b, 2); break;
            }
            cm_alloc_fail_at(0);
            if (n == 1) {
                if (rc != CM_ENOMEM)
                    UNIT_FAIL("writer %d: %d with the first allocation failing", w, rc);
                CHECK_EQ_INT(b.len, 64);
                CHECK(memcmp(b.p, "0123456789", 10) == 0);
            } else {
                CHECK_EQ_INT(rc, 0);
                CHECK(b.len > 64);
            }
            cm_buf_deinit(&b);
            CHECK_EQ_INT(cm_alloc_used(), start);
        }
    }
}

/* ---- Reply reader ------------------------------------------------------------------------ */

static char *reply_stream_n(size_t *len, int big)
{
    struct cm_buf b;
    cm_buf_init(&b);
    const char *simple = "+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n_\r\n";
    cm_buf_append(&b, simple, strlen(simple));
    cm_buf_appendf(&b, "*3\r\n*2\r\n:1\r\n%%1\r\n+k\r\n~2\r\n#t\r\n,1.5\r\n$0\r\n\r\n=7\r\ntxt:abc\r\n");
    cm_buf_appendf(&b, "|1\r\n+meta\r\n+x\r\n>2\r\n+push\r\n(12345678901234567890\r\n");
    cm_buf_appendf(&b, "!5\r\nERR x\r\n");
    /* Big enough (over 1024) that the element array is reallocated. */
    cm_buf_appendf(&b, "*%d\r\n", big);
    for (int i = 0; i < big; i++)
        cm_buf_appendf(&b, i % 3 ? ":%d\r\n" : "$3\r\n%03d\r\n", i % 1000);
    char *p = malloc(b.len);
    memcpy(p, b.p, b.len);
    *len = b.len;
    cm_buf_deinit(&b);
    return p;
}

static char *reply_stream(size_t *len)
{
    return reply_stream_n(len, 2100);
}

/* Reads every reply; returns their hash, or 0 with *why set ("feed" when a feed
 * failed, else the reader's error). */
static uint64_t read_all(const char *s, size_t len, size_t step, char *why, int *count)
{
    struct resp_reader r;
    resp_reader_init(&r);
    uint64_t h = 7;
    *count = 0;
    why[0] = '\0';
    for (size_t off = 0; off < len && why[0] == '\0';) {
        size_t n = len - off < step ? len - off : step;
        if (resp_reader_feed(&r, s + off, n) != 0) {
            snprintf(why, 128, "feed");
            break;
        }
        off += n;
        struct resp_value *v;
        int rc;
        while ((rc = resp_reader_get(&r, &v)) == RESP_DONE) {
            h = hash_value(h, v);
            (*count)++;
            resp_value_free(v);
        }
        if (rc == RESP_BAD)
            snprintf(why, 128, "%s", r.err);
    }
    resp_reader_deinit(&r);
    return why[0] ? 0 : h;
}

TEST(alloc_fail_reply_reader)
{
    /* Whole with an 1100-element array (its element array is reallocated at 1024 and
     * 1100); in 7-byte pieces and a byte at a time with a 10-element one, so that the
     * test stays quick under valgrind. */
    size_t steps[] = {0, 7, 1};
    for (size_t k = 0; k < 3; k++) {
        size_t len;
        char *s = reply_stream_n(&len, steps[k] ? 10 : 1100);
        size_t step = steps[k] ? steps[k] : len;
        char why[128];
        int count, want_count;
        size_t start = cm_alloc_used();
        uint64_t want = read_all(s, len, step, why, &want_count);
        CHECK(want != 0);
        CHECK_EQ_INT(want_count, 12);
        int fails = 0, clean = 0;
        for (long n = 1; n < MAX_N && clean < 50; n++) {
            cm_alloc_fail_at(n);
            uint64_t got = read_all(s, len, step, why, &count);
            cm_alloc_fail_at(0);
            if (got == 0) {
                if (strcmp(why, "feed") != 0 && strcmp(why, "Out of memory") != 0)
                    UNIT_FAIL("step %zu, allocation %ld failing: \"%s\"", step, n, why);
                fails++;
                clean = 0;
            } else {
                CHECK(got == want);
                CHECK_EQ_INT(count, want_count);
                clean++;
            }
            CHECK_EQ_INT(cm_alloc_used(), start);
        }
        CHECK(fails > 20);
        fprintf(stderr, "  reply reader, step %zu: %d allocations failed in turn\n", step, fails);
        free(s);
    }
}

/* ---- libeddy against a fake server -------------------------------------------------------- */

static char sock_path[108];
static pid_t server_pid;

/* Serves connections one after the other: reads requests with the codec and answers
 * each command with a canned reply (for AUTH: +OK; HELLO: a RESP3 map; BIG: the
 * reply stream above; else +PONG). */
static void fake_server(int ls)
{
    size_t biglen;
    char *big = reply_stream(&biglen);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            _exit(0);
        struct resp_req r;
        resp_req_init(&r);
        struct cm_buf in;
        cm_buf_init(&in);
        size_t start = 0;
        for (;;) {
            char buf[4096];
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0)
                break;
            cm_buf_append(&in, buf, (size_t)n);
            while (resp_req_parse(&r, in.p + start, in.len - start) == RESP_DONE) {
                const char *reply = "+PONG\r\n";
                size_t rl = 7;
                if (r.argc > 0 && cm_streq_ci(r.argv[0], r.argvlen[0], "AUTH"))
                    reply = "+OK\r\n", rl = 5;
                else if (r.argc > 0 && cm_streq_ci(r.argv[0], r.argvlen[0], "HELLO"))
                    reply = "%1\r\n+proto\r\n:3\r\n", rl = strlen(reply);
                else if (r.argc > 0 && cm_streq_ci(r.argv[0], r.argvlen[0], "BIG"))
                    reply = big, rl = biglen;
                if (write(fd, reply, rl) != (ssize_t)rl)
                    break;
                start += r.frame_len;
                resp_req_next(&r);
            }
        }
        resp_req_deinit(&r);
        cm_buf_deinit(&in);
        close(fd);
    }
}

static void start_fake_server(void)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/eddy-faults.%d.sock", (int)getpid());
    unlink(sock_path);
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 64) == 0);
    fflush(stdout);
    server_pid = fork();
    if (server_pid == 0) {
        alarm(120);
        fake_server(ls);
        _exit(0);
    }
    close(ls);
}

static void stop_fake_server(void)
{
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    unlink(sock_path);
}

/* One client session: connect with AUTH, HELLO 3, a pipeline of 50 PINGs and one BIG,
 * then read everything. Returns 0 and the hash of the replies, or the first failure:
 * where it happened ("connect", "append", "reply") and the code. */
struct session {
    uint64_t hash;
    const char *where;
    int code;
    char msg[EDDY_ERRLEN];
};

static void session(struct session *o)
{
    memset(o, 0, sizeof(*o));
    o->hash = 5;
    char err[EDDY_ERRLEN];
    eddy_ctx *c = eddy_connect_unix(sock_path, 5000, "secret", err);
    if (c == NULL) {
        o->where = "connect";
        snprintf(o->msg, sizeof(o->msg), "%s", err);
        return;
    }
    int rc = eddy_hello(c, 3);
    if (rc != EDDY_OK) {
        o->where = "hello";
        o->code = rc;
        snprintf(o->msg, sizeof(o->msg), "%s", eddy_errstr(c));
        eddy_free(c);
        return;
    }
    const char *ping[] = {"PING", "with an argument"};
    const char *big[] = {"BIG"};
    int queued = 0;
    for (int i = 0; i <= 50; i++) {
        rc = i < 50 ? eddy_append_argv(c, 2, ping, NULL) : eddy_append_argv(c, 1, big, NULL);
        if (rc != EDDY_OK) {
            /* Not sticky: the handle stays usable and nothing was queued. */
            if (rc != EDDY_ERR_NOMEM || eddy_err(c) != EDDY_OK)
                UNIT_FAIL("append failed with %d (sticky %d)", rc, eddy_err(c));
            o->where = "append";
            o->code = rc;
            snprintf(o->msg, sizeof(o->msg), "%s", eddy_errstr(c));
            break;
        }
        queued++;
    }
    for (int i = 0; i < queued; i++) {
        struct eddy_reply *r = NULL;
        rc = eddy_get_reply(c, &r);
        if (rc != EDDY_OK) {
            if (r != NULL || eddy_err(c) != rc)
                UNIT_FAIL("get_reply failed with %d but reply %p, sticky %d", rc, (void *)r,
                          eddy_err(c));
            o->where = "reply";
            o->code = rc;
            snprintf(o->msg, sizeof(o->msg), "%s", eddy_errstr(c));
            break;
        }
        o->hash = hash_value(o->hash, (const struct resp_value *)r);
        eddy_reply_free(r);
    }
    eddy_free(c);
}

TEST(alloc_fail_libeddy)
{
    start_fake_server();
    struct session base, s;
    size_t start = cm_alloc_used();
    session(&base);
    if (base.where != NULL)
        UNIT_FAIL("the session without failures failed at %s: %s", base.where, base.msg);
    CHECK_EQ_INT(cm_alloc_used(), start);
    int fails = 0, clean = 0;
    for (long n = 1; n < MAX_N && clean < 20; n++) {
        cm_alloc_fail_at(n);
        session(&s);
        cm_alloc_fail_at(0);
        if (s.where == NULL) {
            CHECK(s.hash == base.hash);
            clean++;
        } else {
            fails++;
            clean = 0;
            if (strcmp(s.where, "connect") == 0) {
                CHECK_STR(s.msg, "Out of memory");
            } else if (strcmp(s.where, "hello") == 0 || strcmp(s.where, "reply") == 0) {
                if (s.code != EDDY_ERR_NOMEM)
                    UNIT_FAIL("allocation %ld: %s failed with %d (%s), expected EDDY_ERR_NOMEM",
                              n, s.where, s.code, s.msg);
                CHECK_STR(s.msg, "Out of memory");
            } else {
                CHECK_EQ_INT(s.code, EDDY_ERR_NOMEM);
                CHECK_STR(s.msg, "Out of memory");
            }
        }
        if (cm_alloc_used() != start)
            UNIT_FAIL("allocation %ld failing (%s): %zu bytes not freed", n,
                      s.where ? s.where : "no failure", cm_alloc_used() - start);
    }
    CHECK(fails > 50);
    fprintf(stderr, "  libeddy session: %d allocations failed in turn\n", fails);
    stop_fake_server();
}

/* eddy_command (the varargs form) and eddy_mapreduce under failures too. */
TEST(alloc_fail_libeddy_command_forms)
{
    start_fake_server();
    size_t start = cm_alloc_used();
    int fails = 0;
    for (long n = 1; n < 200; n++) {
        eddy_ctx *c = eddy_connect_unix(sock_path, 5000, NULL, NULL);
        CHECK(c != NULL);
        cm_alloc_fail_at(n);
        struct eddy_reply *r1 = eddy_command(c, "PING", "x", (char *)NULL);
        struct eddy_reply *r2 = eddy_mapreduce(c, "map", "@sum", 1, (const char *[]){"a"}, NULL);
        cm_alloc_fail_at(0);
        if (r1 == NULL || r2 == NULL) {
            fails++;
            int e = eddy_err(c);
            CHECK(e == EDDY_OK || e == EDDY_ERR_NOMEM);
            if (e == EDDY_OK && strcmp(eddy_errstr(c), "Out of memory") != 0 &&
                strcmp(eddy_errstr(c), "out of memory") != 0)
                UNIT_FAIL("allocation %ld: \"%s\"", n, eddy_errstr(c));
        }
        eddy_reply_free(r1);
        eddy_reply_free(r2);
        eddy_free(c);
        CHECK_EQ_INT(cm_alloc_used(), start);
    }
    CHECK(fails > 0);
    stop_fake_server();
}

/* Found by fuzz_resp_req (clang UBSan, pointer-overflow): an inline line whose
 * arguments are all empty ("" or '') leaves the inline buffer unallocated, and
 * parse_inline computed argv[i] = NULL + 0 (undefined behaviour; net/resp.c, the loop
 * after split_inline). The arguments must be empty strings. */
TEST(bug_inline_empty_quoted_args_null_offset)
{
    static const char *lines[] = {"\"\"\r\n", "'' \"\"\r\n", "\"\" ''   ''\n"};
    static const size_t argcs[] = {1, 2, 3};
    for (int k = 0; k < 3; k++) {
        struct resp_req r;
        resp_req_init(&r);
        CHECK_EQ_INT(resp_req_parse(&r, lines[k], strlen(lines[k])), RESP_DONE);
        CHECK_EQ_INT(r.argc, argcs[k]);
        for (size_t i = 0; i < r.argc; i++) {
            CHECK(r.argv[i] != NULL);
            CHECK_EQ_INT(r.argvlen[i], 0);
        }
        resp_req_deinit(&r);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(alloc_fail_request_parser);
    RUN(alloc_fail_reply_writers_leave_buffer_unchanged);
    RUN(alloc_fail_reply_reader);
    RUN(alloc_fail_libeddy);
    RUN(alloc_fail_libeddy_command_forms);
    RUN(bug_inline_empty_quoted_args_null_offset);
    return unit_done();
}
