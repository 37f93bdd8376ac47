/* test_resp.c - unit tests for the RESP codec (net/resp.h): the request parser, the
 * reply writers and the reply reader. Frames are fed whole, a byte at a time and split
 * at every offset; every limit is tried at and one past; allocations are failed one
 * by one. Uses tests/unit/unit.h and common/ only. */
#include "unit.h"

#include "../../net/net_int.h"
#include "../../net/resp.h"

#include <limits.h>
#include <math.h>

#define S(lit) lit, sizeof(lit) - 1

/* ---- Helpers ------------------------------------------------------------------------ */

/* Appends p[0..n) to out, escaping bytes that are not printable and '\\', '|', '\''. */
static void esc(struct cm_buf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c > 0x7e || c == '\\' || c == '|' || c == '\'')
            cm_buf_appendf(out, "\\x%02x", c);
        else
            cm_buf_appendc(out, (char)c);
    }
}

/* Limits for the request parser; 0 keeps the default. */
struct lim {
    long long bulk, args;
    size_t inl;
};

/* Simulates a connection: the bytes of s arrive in pieces ending at cuts[0..ncuts)
 * (ascending, the last is len). After each piece the parser runs on a fresh, exactly
 * sized copy of the unconsumed bytes (so the buffer moves between calls and any read
 * past its end or through a stale pointer shows under ASan/valgrind). Each command is
 * written to out as "argc:arg|arg\n"; an error as "ERR:text\n" (and the stream stops);
 * unconsumed bytes at the end as "+N\n". Returns out->p (NUL-terminated). */
static const char *run_req(const char *s, size_t len, const size_t *cuts, size_t ncuts,
                           const struct lim *lim, struct cm_buf *out)
{
    struct resp_req r;
    size_t start = 0;
    size_t before = cm_alloc_used() - out->cap; /* out grows as it goes: not counted */
    out->len = 0;
    resp_req_init(&r);
    if (lim != NULL) {
        if (lim->bulk)
            r.max_bulk = lim->bulk;
        if (lim->args)
            r.max_args = lim->args;
        if (lim->inl)
            r.max_inline = lim->inl;
    }
    for (size_t c = 0; c < ncuts; c++) {
        size_t have = cuts[c];
        for (;;) {
            size_t n = have - start;
            char *copy = malloc(n ? n : 1);
            CHECK(copy != NULL);
            memcpy(copy, s + start, n);
            int rc = resp_req_parse(&r, copy, n);
            if (rc == RESP_MORE) {
                free(copy);
                break;
            }
            if (rc == RESP_BAD) {
                free(copy);
                cm_buf_appendf(out, "ERR:%s\n", r.err);
                goto done;
            }
            CHECK_EQ_INT(rc, RESP_DONE);
            CHECK(r.frame_len > 0 && r.frame_len <= n);
            cm_buf_appendf(out, "%zu:", r.argc);
            for (size_t i = 0; i < r.argc; i++) {
                if (i > 0)
                    cm_buf_appendc(out, '|');
                if (!r.is_inline)
                    CHECK(r.argv[i] >= copy && r.argv[i] + r.argvlen[i] <= copy + n);
                esc(out, r.argv[i], r.argvlen[i]);
            }
            cm_buf_appendc(out, '\n');
            start += r.frame_len;
            resp_req_next(&r);
            free(copy);
        }
    }
    if (start < len)
        cm_buf_appendf(out, "+%zu\n", len - start);
done:
    resp_req_deinit(&r);
    CHECK_EQ_INT(cm_alloc_used() - out->cap, before);
    cm_buf_appendc(out, '\0');
    out->len--;
    return out->p;
}

/* Runs s whole, a byte at a time, and split in two at every offset; every run must
 * produce want. */
static void check_req(const char *s, size_t len, const struct lim *lim, const char *want)
{
    struct cm_buf out;
    cm_buf_init(&out);
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    CHECK(cuts != NULL);

    cuts[0] = len;
    CHECK_STR(run_req(s, len, cuts, 1, lim, &out), want);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    CHECK_STR(run_req(s, len, cuts, len, lim, &out), want);
    for (size_t k = 1; k < len; k++) {
        size_t two[2] = {k, len};
        const char *got = run_req(s, len, two, 2, lim, &out);
        if (strcmp(got, want) != 0)
            UNIT_FAIL("split at %zu: got \"%s\", expected \"%s\"", k, got, want);
    }
    free(cuts);
    cm_buf_deinit(&out);
}

/* Parses buf[0..len) in one call with the given limits; returns the parser's code. */
static int parse_once(struct resp_req *r, const struct lim *lim, const char *buf, size_t len)
{
    resp_req_init(r);
    if (lim != NULL) {
        if (lim->bulk)
            r->max_bulk = lim->bulk;
        if (lim->args)
            r->max_args = lim->args;
        if (lim->inl)
            r->max_inline = lim->inl;
    }
    return resp_req_parse(r, buf, len);
}

static void expect_req_err(const char *buf, size_t len, const struct lim *lim, const char *err)
{
    struct resp_req r;
    CHECK_EQ_INT(parse_once(&r, lim, buf, len), RESP_BAD);
    CHECK_STR(r.err, err);
    resp_req_deinit(&r);
    /* The same bytes fed a byte at a time and split anywhere give the same error. */
    struct cm_buf want;
    cm_buf_init(&want);
    cm_buf_appendf(&want, "ERR:%s\n", err);
    cm_buf_appendc(&want, '\0');
    check_req(buf, len, lim, want.p);
    cm_buf_deinit(&want);
}

static void expect_req_more(const char *buf, size_t len, const struct lim *lim)
{
    struct resp_req r;
    int rc = parse_once(&r, lim, buf, len);
    if (rc != RESP_MORE)
        UNIT_FAIL("expected RESP_MORE, got %d (%s)", rc, r.err);
    resp_req_deinit(&r);
}

/* ---- Request parser: framing ------------------------------------------------------ */

TEST(req_simple)
{
    static const char f[] = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    struct resp_req r;
    CHECK_EQ_INT(parse_once(&r, NULL, f, sizeof(f) - 1), RESP_DONE);
    CHECK_EQ_INT(r.argc, 2);
    CHECK_MEM(r.argv[0], r.argvlen[0], "GET", 3);
    CHECK_MEM(r.argv[1], r.argvlen[1], "key", 3);
    CHECK(r.argv[0] == f + 8 && r.argv[1] == f + 17);
    CHECK_EQ_INT(r.frame_len, sizeof(f) - 1);
    CHECK(!r.is_inline);
    CHECK_EQ_INT(r.need, 0);
    resp_req_next(&r);
    CHECK_EQ_INT(r.argc, 0);
    CHECK_EQ_INT(r.frame_len, 0);
    /* An incomplete frame is RESP_MORE at every length short of the whole. */
    for (size_t n = 0; n < sizeof(f) - 1; n++)
        CHECK_EQ_INT(resp_req_parse(&r, f, n), RESP_MORE);
    CHECK_EQ_INT(resp_req_parse(&r, f, sizeof(f) - 1), RESP_DONE);
    resp_req_deinit(&r);
}

TEST(req_pipelined_every_split)
{
    static const char s[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"
                            "*1\r\n$4\r\nPING\r\n"
                            "*0\r\n"
                            "*-1\r\n"
                            "*2\r\n$0\r\n\r\n$3\r\na\0b\r\n"
                            "PING\r\n"
                            "\r\n"
                            "set a 'b c'\n"
                            "*1\r\n$2\r\n\r\n\r\n"
                            "\n"
                            "*1\r\n$1\r\n*\r\n"
                            "*2\r\n$1\r\n$\r\n$3\r\n$1\r\r\n"
                            "*1\r\n$3\r\nab"; /* incomplete tail */
    check_req(s, sizeof(s) - 1, NULL,
              "3:SET|key|va\\x0d\\x0al\n"
              "1:PING\n"
              "0:\n"
              "0:\n"
              "2:|a\\x00b\n"
              "1:PING\n"
              "0:\n"
              "3:set|a|b c\n"
              "1:\\x0d\\x0a\n"
              "0:\n"
              "1:*\n"
              "2:$|$1\\x0d\n"
              "+10\n");
}

TEST(req_binary_args)
{
    static const char s[] = "*4\r\n$0\r\n\r\n$2\r\n\r\n\r\n$4\r\n\0\0\0\0\r\n$3\r\n\xff\x80\n\r\n";
    check_req(s, sizeof(s) - 1, NULL, "4:|\\x0d\\x0a|\\x00\\x00\\x00\\x00|\\xff\\x80\\x0a\n");
}

TEST(req_empty_multibulk)
{
    struct resp_req r;
    CHECK_EQ_INT(parse_once(&r, NULL, S("*0\r\n*1\r\n")), RESP_DONE);
    CHECK_EQ_INT(r.argc, 0);
    CHECK_EQ_INT(r.frame_len, 4);
    resp_req_deinit(&r);
    CHECK_EQ_INT(parse_once(&r, NULL, S("*-1\r\n")), RESP_DONE);
    CHECK_EQ_INT(r.argc, 0);
    CHECK_EQ_INT(r.frame_len, 5);
    resp_req_deinit(&r);
    /* Redis treats any count <= 0 as an empty command. */
    CHECK_EQ_INT(parse_once(&r, NULL, S("*-5\r\n")), RESP_DONE);
    CHECK_EQ_INT(r.argc, 0);
    resp_req_deinit(&r);
}

/* ---- Request parser: inline ------------------------------------------------------- */

TEST(req_inline_basic)
{
    struct resp_req r;
    CHECK_EQ_INT(parse_once(&r, NULL, S("SET k v\r\nGET k\r\n")), RESP_DONE);
    CHECK(r.is_inline);
    CHECK_EQ_INT(r.argc, 3);
    CHECK_EQ_INT(r.frame_len, 9);
    CHECK_MEM(r.argv[2], r.argvlen[2], "v", 1);
    resp_req_deinit(&r);

    check_req(S("GET k\nSET  k\t v \n\n   \r\n \t \n\r\nPING"), NULL,
              "2:GET|k\n3:SET|k|v\n0:\n0:\n0:\n0:\n+4\n");
}

TEST(req_inline_quotes)
{
    /* The cases follow Redis's sdssplitargs. */
    check_req(S("set \"a b\" 'c d' \"\" ''\r\n"), NULL, "5:set|a b|c d||\n");
    check_req(S("x \"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"\\q\"\r\n"), NULL,
              "2:x|AJ\\x0a\\x0d\\x09\\x08\\x07\\x5c\"q\n");
    /* \x needs two hex digits; otherwise the backslash escapes the 'x'. */
    check_req(S("\"\\xZZ\" \"\\x4\" \"\\x00\"\r\n"), NULL, "3:xZZ|x4|\\x00\n");
    check_req(S("'it\\'s' 'a\\nb' 'x\"y'\r\n"), NULL, "3:it\\x27s|a\\x5cnb|x\"y\n");
    /* A quote inside a word starts a quoted part, as in Redis. */
    check_req(S("set k\"e y\" v\r\n"), NULL, "3:set|ke y|v\n");
    check_req(S("set k'e y' v\r\n"), NULL, "3:set|ke y|v\n");
    /* Quotes next to each other and a quote after blanks. */
    check_req(S("\"a\"\t'b'\n"), NULL, "2:a|b\n");
    check_req(S("a\"b\"c\n"), NULL, "ERR:Protocol error: unbalanced quotes in request\n");
    check_req(S("\"abc\r\n"), NULL, "ERR:Protocol error: unbalanced quotes in request\n");
    check_req(S("'abc\r\n"), NULL, "ERR:Protocol error: unbalanced quotes in request\n");
    check_req(S("\"abc\\\"\r\n"), NULL, "ERR:Protocol error: unbalanced quotes in request\n");
    check_req(S("\"a\"b\r\n"), NULL, "ERR:Protocol error: unbalanced quotes in request\n");
    check_req(S("'a'b\r\n"), NULL, "ERR:Protocol error: unbalanced quotes in request\n");
    /* The closing quote may end the line. */
    check_req(S("get \"k\"\n"), NULL, "2:get|k\n");
}

TEST(req_inline_args_stay_valid)
{
    /* Inline arguments live in the parser: they survive the caller's buffer. */
    char *buf = malloc(32);
    CHECK(buf != NULL);
    memcpy(buf, "set \"a\\x00b\" c\r\n", 16);
    struct resp_req r;
    CHECK_EQ_INT(parse_once(&r, NULL, buf, 16), RESP_DONE);
    memset(buf, 'z', 16);
    free(buf);
    CHECK_EQ_INT(r.argc, 3);
    CHECK_MEM(r.argv[1], r.argvlen[1], "a\0b", 3);
    CHECK_MEM(r.argv[2], r.argvlen[2], "c", 1);
    resp_req_deinit(&r);
}

/* ---- Request parser: limits ------------------------------------------------------- */

TEST(req_limit_max_bulk)
{
    struct lim l = {.bulk = 10};
    check_req(S("*1\r\n$10\r\n0123456789\r\n"), &l, "1:0123456789\n");
    check_req(S("*1\r\n$9\r\n012345678\r\n"), &l, "1:012345678\n");
    expect_req_err(S("*1\r\n$11\r\n01234567890\r\n"), &l, "Protocol error: invalid bulk length");
    /* The default is Redis's proto-max-bulk-len, 512 MB. */
    expect_req_more(S("*1\r\n$536870912\r\n"), NULL);
    expect_req_err(S("*1\r\n$536870913\r\n"), NULL, "Protocol error: invalid bulk length");
}

TEST(req_limit_max_args)
{
    struct lim l = {.args = 3};
    check_req(S("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), &l, "3:a|b|c\n");
    expect_req_err(S("*4\r\n"), &l, "Protocol error: invalid multibulk length");
    /* The default is RESP_MAX_ARGS; past it, Redis's own bound INT_MAX holds. */
    expect_req_more(S("*1073741824\r\n"), NULL);
    expect_req_err(S("*1073741825\r\n"), NULL, "Protocol error: invalid multibulk length");
    expect_req_more(S("*2147483647\r\n"), &(struct lim){.args = LLONG_MAX});
    expect_req_err(S("*2147483648\r\n"), &(struct lim){.args = LLONG_MAX},
                   "Protocol error: invalid multibulk length");
}

TEST(req_limit_inline_line)
{
    struct lim l = {.inl = 16};
    /* 16 bytes of line: accepted with \r\n or \n, and pending while incomplete. */
    check_req(S("0123456789abcdef\r\n"), &l, "1:0123456789abcdef\n");
    check_req(S("0123456789abcdef\n"), &l, "1:0123456789abcdef\n");
    check_req(S("0123456789 bcdef\r\n"), &l, "2:0123456789|bcdef\n");
    expect_req_more(S("0123456789abcdef"), &l);
    expect_req_more(S("0123456789abcdef\r"), &l);
    /* 17 bytes: too big, whether the line end has come or not. */
    expect_req_err(S("0123456789abcdefg\r\n"), &l, "Protocol error: too big inline request");
    expect_req_err(S("0123456789abcdefg\n"), &l, "Protocol error: too big inline request");
    expect_req_err(S("0123456789abcdefg"), &l, "Protocol error: too big inline request");
    expect_req_err(S("0123456789abcdef\rx"), &l, "Protocol error: too big inline request");
}

TEST(req_limit_count_line)
{
    /* max_inline also bounds the "*N" and "$N" lines, counting the type byte. */
    struct lim l = {.inl = 4};
    check_req(S("*1\r\n$3\r\nabc\r\n"), &l, "1:abc\n");
    expect_req_more(S("*123"), &l);
    expect_req_more(S("*123\r"), &l);
    expect_req_more(S("*123\r\n"), &l);
    expect_req_err(S("*1234"), &l, "Protocol error: too big mbulk count string");
    expect_req_err(S("*1234\r\n"), &l, "Protocol error: too big mbulk count string");
    expect_req_more(S("*1\r\n$123"), &l);
    expect_req_more(S("*1\r\n$123\r"), &l);
    expect_req_more(S("*1\r\n$123\r\n"), &l);
    expect_req_err(S("*1\r\n$1234"), &l, "Protocol error: too big bulk count string");
    expect_req_err(S("*1\r\n$1234\r\n"), &l, "Protocol error: too big bulk count string");
}

/* ---- Request parser: errors ------------------------------------------------------- */

TEST(req_bad_lengths)
{
    const char *mb = "Protocol error: invalid multibulk length";
    const char *bl = "Protocol error: invalid bulk length";
    expect_req_err(S("*x\r\n"), NULL, mb);
    expect_req_err(S("*\r\n"), NULL, mb);
    expect_req_err(S("*+1\r\n"), NULL, mb);
    expect_req_err(S("*01\r\n"), NULL, mb);
    expect_req_err(S("* 1\r\n"), NULL, mb);
    expect_req_err(S("*1 \r\n"), NULL, mb);
    expect_req_err(S("*99999999999999999999\r\n"), NULL, mb);
    expect_req_err(S("*1\r\n$-1\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$-2\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$x\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$+1\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$01\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$1099511627776\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$99999999999999999999\r\n"), NULL, bl);
    expect_req_err(S("*1\r\n$9223372036854775808\r\n"), &(struct lim){.bulk = LLONG_MAX}, bl);
}

TEST(req_expected_dollar)
{
    expect_req_err(S("*1\r\nx"), NULL, "Protocol error: expected '$', got 'x'");
    expect_req_err(S("*2\r\n$1\r\na\r\n:1\r\n"), NULL, "Protocol error: expected '$', got ':'");
    expect_req_err(S("*1\r\n*1\r\n"), NULL, "Protocol error: expected '$', got '*'");
}

TEST(req_missing_crlf_after_bulk)
{
    const char *e = "Protocol error: expected CRLF after bulk argument";
    expect_req_err(S("*1\r\n$3\r\nabcd\r\n"), NULL, e);
    expect_req_err(S("*1\r\n$3\r\nabc\n\r"), NULL, e);
    expect_req_err(S("*1\r\n$3\r\nabc\rx"), NULL, e);
    expect_req_err(S("*2\r\n$1\r\na\r\n$0\r\nxx"), NULL, e);
}

TEST(req_errors_are_sticky)
{
    struct resp_req r;
    CHECK_EQ_INT(parse_once(&r, NULL, S("*x\r\n")), RESP_BAD);
    CHECK_EQ_INT(resp_req_parse(&r, S("*1\r\n$1\r\na\r\n")), RESP_BAD);
    CHECK_STR(r.err, "Protocol error: invalid multibulk length");
    resp_req_next(&r);
    CHECK_EQ_INT(resp_req_parse(&r, S("PING\r\n")), RESP_BAD);
    CHECK_EQ_INT(resp_req_parse(&r, "", 0), RESP_BAD);
    CHECK_STR(r.err, "Protocol error: invalid multibulk length");
    resp_req_deinit(&r);
    resp_req_init(&r);
    CHECK_EQ_INT(resp_req_parse(&r, S("PING\r\n")), RESP_DONE);
    CHECK_EQ_INT(r.argc, 1);
    resp_req_deinit(&r);
}

TEST(req_need_hint)
{
    enum { BIG = 100000 };
    size_t hdr = strlen("*2\r\n$1\r\na\r\n$100000\r\n");
    size_t total = hdr + BIG + 2;
    char *f = malloc(total);
    CHECK(f != NULL);
    memcpy(f, "*2\r\n$1\r\na\r\n$100000\r\n", hdr);
    memset(f + hdr, 'v', BIG);
    memcpy(f + hdr + BIG, "\r\n", 2);

    struct resp_req r;
    resp_req_init(&r);
    /* No hint until the bulk header has been read. */
    CHECK_EQ_INT(resp_req_parse(&r, f, hdr - 1), RESP_MORE);
    CHECK_EQ_INT(r.need, 0);
    for (size_t n = hdr; n < total; n += 7919) {
        CHECK_EQ_INT(resp_req_parse(&r, f, n), RESP_MORE);
        CHECK_EQ_INT(r.need, total);
    }
    CHECK_EQ_INT(resp_req_parse(&r, f, total - 1), RESP_MORE);
    CHECK_EQ_INT(r.need, total);
    CHECK_EQ_INT(resp_req_parse(&r, f, total), RESP_DONE);
    CHECK_EQ_INT(r.need, 0);
    CHECK_EQ_INT(r.argc, 2);
    CHECK_EQ_INT(r.argvlen[1], BIG);
    CHECK(r.argv[1] == f + hdr);
    resp_req_next(&r);
    CHECK_EQ_INT(r.need, 0);
    resp_req_deinit(&r);
    free(f);
}

/* Builds "*n\r\n" followed by n bulks holding the decimal index. */
static void build_many_args(struct cm_buf *f, long n)
{
    cm_buf_appendf(f, "*%ld\r\n", n);
    for (long i = 0; i < n; i++) {
        char num[24];
        int k = snprintf(num, sizeof(num), "%ld", i);
        cm_buf_appendf(f, "$%d\r\n%s\r\n", k, num);
    }
}

static void check_many_args(const struct resp_req *r, long n)
{
    CHECK_EQ_INT(r->argc, n);
    for (long i = 0; i < n; i += 997) {
        char num[24];
        int k = snprintf(num, sizeof(num), "%ld", i);
        CHECK_MEM(r->argv[i], r->argvlen[i], num, (size_t)k);
    }
    char last[24];
    int k = snprintf(last, sizeof(last), "%ld", n - 1);
    CHECK_MEM(r->argv[n - 1], r->argvlen[n - 1], last, (size_t)k);
}

TEST(req_million_args_4k_chunks)
{
    enum { N = 1000000 };
    struct cm_buf f, q;
    cm_buf_init(&f);
    cm_buf_init(&q);
    build_many_args(&f, N);
    struct resp_req r;
    resp_req_init(&r);
    int64_t t0 = cm_mono_us();
    int rc = RESP_MORE;
    size_t off = 0;
    /* The caller's buffer grows (and moves) as 4 KB reads arrive. */
    while (off < f.len) {
        size_t n = f.len - off < 4096 ? f.len - off : 4096;
        CHECK_EQ_INT(cm_buf_append(&q, f.p + off, n), 0);
        off += n;
        rc = resp_req_parse(&r, q.p, q.len);
        if (rc != RESP_MORE)
            break;
    }
    int64_t us = cm_mono_us() - t0;
    CHECK_EQ_INT(rc, RESP_DONE);
    CHECK_EQ_INT(off, f.len);
    CHECK_EQ_INT(r.frame_len, f.len);
    check_many_args(&r, N);
    if (us > 30 * 1000000)
        UNIT_FAIL("1M arguments took %lld ms", (long long)(us / 1000));
    resp_req_deinit(&r);
    cm_buf_deinit(&f);
    cm_buf_deinit(&q);
}

TEST(req_bytewise_is_linear)
{
    /* 100,000 arguments fed one byte at a time: about 700,000 calls. A parser that
     * rescanned the frame on every call would need ~10^11 steps and time out. */
    enum { N = 100000 };
    struct cm_buf f;
    cm_buf_init(&f);
    build_many_args(&f, N);
    struct resp_req r;
    resp_req_init(&r);
    for (size_t n = 1; n < f.len; n++)
        if (resp_req_parse(&r, f.p, n) != RESP_MORE)
            UNIT_FAIL("not RESP_MORE at %zu of %zu", n, f.len);
    CHECK_EQ_INT(resp_req_parse(&r, f.p, f.len), RESP_DONE);
    check_many_args(&r, N);
    resp_req_deinit(&r);
    cm_buf_deinit(&f);
}

TEST(req_inline_bytewise_is_linear)
{
    /* A 4 MB inline line fed one byte at a time. Rescanning from the start on each
     * call would cost ~8*10^12 byte comparisons (minutes, past the timeout). */
    enum { N = 4 * 1024 * 1024 };
    int64_t t0 = cm_mono_us();
    char *f = malloc(N + 2);
    CHECK(f != NULL);
    memset(f, 'a', N);
    f[N / 2] = ' ';
    memcpy(f + N, "\r\n", 2);
    struct resp_req r;
    resp_req_init(&r);
    r.max_inline = 2 * N;
    for (size_t n = 1; n < N + 2; n++)
        if (resp_req_parse(&r, f, n) != RESP_MORE)
            UNIT_FAIL("not RESP_MORE at %zu", n);
    CHECK_EQ_INT(resp_req_parse(&r, f, N + 2), RESP_DONE);
    CHECK_EQ_INT(r.argc, 2);
    CHECK_EQ_INT(r.argvlen[0], N / 2);
    CHECK_EQ_INT(r.argvlen[1], N - N / 2 - 1);
    CHECK_EQ_INT(r.frame_len, N + 2);
    int64_t us = cm_mono_us() - t0;
    if (us > 30 * 1000000)
        UNIT_FAIL("4 MB inline line a byte at a time took %lld ms", (long long)(us / 1000));
    resp_req_deinit(&r);
    free(f);
}

TEST(req_oom)
{
    /* Fail each allocation in turn while parsing a multibulk and an inline command:
     * the result is either the command or a clean error, and nothing leaks. */
    struct cm_buf f;
    cm_buf_init(&f);
    build_many_args(&f, 40);
    static const char inl[] = "a b c d e f g h i j k l m n o p q r s t u v w x y z \"0 1\"\r\n";
    for (int which = 0; which < 2; which++) {
        const char *buf = which == 0 ? f.p : inl;
        size_t len = which == 0 ? f.len : sizeof(inl) - 1;
        size_t want_argc = which == 0 ? 40 : 27;
        int failed = 0;
        long n;
        for (n = 1; n < 100; n++) {
            size_t before = cm_alloc_used();
            struct resp_req r;
            resp_req_init(&r);
            cm_alloc_fail_at(n);
            int rc = resp_req_parse(&r, buf, len);
            cm_alloc_fail_at(0);
            if (rc == RESP_BAD) {
                CHECK_STR(r.err, "Protocol error: out of memory");
                CHECK_EQ_INT(resp_req_parse(&r, buf, len), RESP_BAD);
                failed++;
            } else {
                CHECK_EQ_INT(rc, RESP_DONE);
                CHECK_EQ_INT(r.argc, want_argc);
            }
            resp_req_deinit(&r);
            CHECK_EQ_INT(cm_alloc_used(), before);
            if (rc == RESP_DONE)
                break;
        }
        CHECK(failed > 0);
        CHECK(n < 100);
    }
    cm_buf_deinit(&f);
}

/* ---- Reply writers ---------------------------------------------------------------- */

static int add_all_scalars(struct cm_buf *b, int proto)
{
    int rc = 0;
    rc |= resp_add_simple(b, "OK");
    rc |= resp_add_error(b, "ERR bad\r\nthing\n");
    rc |= resp_add_errorf(b, "ERR %s is %d\r\n", "x\ny", 5);
    rc |= resp_add_int(b, 0);
    rc |= resp_add_int(b, LLONG_MIN);
    rc |= resp_add_int(b, LLONG_MAX);
    rc |= resp_add_bulk(b, "", 0);
    rc |= resp_add_bulk(b, NULL, 0);
    rc |= resp_add_bulk(b, "a\0\r\n", 4);
    rc |= resp_add_cstr(b, "hello");
    rc |= resp_add_null(b, proto);
    rc |= resp_add_null_array(b, proto);
    rc |= resp_add_array(b, 0);
    rc |= resp_add_array(b, 3);
    rc |= resp_add_map(b, 0, proto);
    rc |= resp_add_map(b, 2, proto);
    rc |= resp_add_set(b, 3, proto);
    rc |= resp_add_double(b, 1.5, proto);
    rc |= resp_add_double(b, 3.0, proto);
    rc |= resp_add_double(b, -0.25, proto);
    rc |= resp_add_double(b, 1e20, proto);
    rc |= resp_add_double(b, INFINITY, proto);
    rc |= resp_add_double(b, -INFINITY, proto);
    rc |= resp_add_bool(b, true, proto);
    rc |= resp_add_bool(b, false, proto);
    rc |= resp_add_verbatim(b, "txt", "Some string", 11, proto);
    rc |= resp_add_verbatim(b, "mkd", "", 0, proto);
    return rc;
}

TEST(add_resp2)
{
    static const char want[] = "+OK\r\n"
                               "-ERR bad  thing \r\n"
                               "-ERR x y is 5  \r\n"
                               ":0\r\n"
                               ":-9223372036854775808\r\n"
                               ":9223372036854775807\r\n"
                               "$0\r\n\r\n"
                               "$0\r\n\r\n"
                               "$4\r\na\0\r\n\r\n"
                               "$5\r\nhello\r\n"
                               "$-1\r\n"
                               "*-1\r\n"
                               "*0\r\n"
                               "*3\r\n"
                               "*0\r\n"
                               "*4\r\n"
                               "*3\r\n"
                               "$3\r\n1.5\r\n"
                               "$1\r\n3\r\n"
                               "$5\r\n-0.25\r\n"
                               "$5\r\n1e+20\r\n"
                               "$3\r\ninf\r\n"
                               "$4\r\n-inf\r\n"
                               ":1\r\n"
                               ":0\r\n"
                               "$11\r\nSome string\r\n"
                               "$0\r\n\r\n";
    struct cm_buf b;
    cm_buf_init(&b);
    CHECK_EQ_INT(add_all_scalars(&b, 2), 0);
    CHECK_MEM(b.p, b.len, want, sizeof(want) - 1);
    cm_buf_deinit(&b);
}

TEST(add_resp3)
{
    static const char want[] = "+OK\r\n"
                               "-ERR bad  thing \r\n"
                               "-ERR x y is 5  \r\n"
                               ":0\r\n"
                               ":-9223372036854775808\r\n"
                               ":9223372036854775807\r\n"
                               "$0\r\n\r\n"
                               "$0\r\n\r\n"
                               "$4\r\na\0\r\n\r\n"
                               "$5\r\nhello\r\n"
                               "_\r\n"
                               "_\r\n"
                               "*0\r\n"
                               "*3\r\n"
                               "%0\r\n"
                               "%2\r\n"
                               "~3\r\n"
                               ",1.5\r\n"
                               ",3\r\n"
                               ",-0.25\r\n"
                               ",1e+20\r\n"
                               ",inf\r\n"
                               ",-inf\r\n"
                               "#t\r\n"
                               "#f\r\n"
                               "=15\r\ntxt:Some string\r\n"
                               "=4\r\nmkd:\r\n";
    struct cm_buf b;
    cm_buf_init(&b);
    CHECK_EQ_INT(add_all_scalars(&b, 3), 0);
    CHECK_MEM(b.p, b.len, want, sizeof(want) - 1);
    cm_buf_deinit(&b);
}

TEST(add_command)
{
    static const char want[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n*0\r\n";
    const char *argv[] = {"SET", "k", "a\0b"};
    size_t lens[] = {3, 1, 3};
    struct cm_buf b;
    cm_buf_init(&b);
    CHECK_EQ_INT(resp_add_command(&b, 3, argv, lens), 0);
    CHECK_EQ_INT(resp_add_command(&b, 0, NULL, NULL), 0);
    CHECK_MEM(b.p, b.len, want, sizeof(want) - 1);
    /* The encoding parses back to the same arguments. */
    struct resp_req r;
    CHECK_EQ_INT(parse_once(&r, NULL, b.p, b.len), RESP_DONE);
    CHECK_EQ_INT(r.argc, 3);
    CHECK_MEM(r.argv[2], r.argvlen[2], "a\0b", 3);
    resp_req_deinit(&r);
    cm_buf_deinit(&b);
}

TEST(add_oom_leaves_buffer)
{
    /* Every writer on a buffer that must grow fails cleanly when the allocation does. */
    for (int proto = 2; proto <= 3; proto++) {
        for (long n = 1;; n++) {
            struct cm_buf b;
            cm_buf_init(&b);
            size_t before = cm_alloc_used();
            cm_alloc_fail_at(n);
            int rc = add_all_scalars(&b, proto);
            cm_alloc_fail_at(0);
            cm_buf_deinit(&b);
            CHECK_EQ_INT(cm_alloc_used(), before);
            if (rc == 0)
                break;
            CHECK(n < 100);
        }
    }
    /* A failed append leaves earlier bytes alone; resp_add_command undoes its part. */
    char big[300];
    memset(big, 'x', sizeof(big));
    const char *argv[] = {"SET", "k", big};
    size_t lens[] = {3, 1, sizeof(big)};
    struct cm_buf b;
    cm_buf_init(&b);
    CHECK_EQ_INT(cm_buf_append(&b, "prefix", 6), 0);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(resp_add_command(&b, 3, argv, lens), CM_ENOMEM);
    CHECK_MEM(b.p, b.len, "prefix", 6);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(resp_add_bulk(&b, big, sizeof(big)), CM_ENOMEM);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(resp_add_verbatim(&b, "txt", big, sizeof(big), 3), CM_ENOMEM);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(resp_add_error(&b, "ERR xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                    "xxx"),
                 CM_ENOMEM);
    cm_alloc_fail_at(0);
    CHECK_MEM(b.p, b.len, "prefix", 6);
    cm_buf_deinit(&b);
}

/* ---- Reply reader ------------------------------------------------------------------ */

static void dump(struct cm_buf *out, const struct resp_value *v)
{
    static const char *const open[] = {[RESP_T_ARRAY] = "[", [RESP_T_MAP] = "%{",
                                       [RESP_T_SET] = "~{", [RESP_T_ATTR] = "|{",
                                       [RESP_T_PUSH] = ">["};
    switch (v->type) {
    case RESP_T_STRING:
    case RESP_T_STATUS:
    case RESP_T_ERROR:
    case RESP_T_DOUBLE:
    case RESP_T_BIGNUM:
    case RESP_T_VERB:
        CHECK(v->str != NULL && v->str[v->len] == '\0');
        break;
    default:
        CHECK(v->str == NULL);
    }
    switch (v->type) {
    case RESP_T_STRING:
        cm_buf_appendc(out, '\'');
        esc(out, v->str, v->len);
        cm_buf_appendc(out, '\'');
        break;
    case RESP_T_STATUS:
    case RESP_T_ERROR:
    case RESP_T_DOUBLE:
    case RESP_T_BIGNUM:
        cm_buf_appendc(out, "+-,("[v->type == RESP_T_STATUS  ? 0
                                    : v->type == RESP_T_ERROR ? 1
                                    : v->type == RESP_T_DOUBLE ? 2
                                                               : 3]);
        esc(out, v->str, v->len);
        break;
    case RESP_T_VERB:
        cm_buf_appendf(out, "=%s:", v->vtype);
        esc(out, v->str, v->len);
        break;
    case RESP_T_INTEGER:
        cm_buf_appendf(out, ":%lld", v->integer);
        break;
    case RESP_T_BOOL:
        cm_buf_appendf(out, "#%c", v->integer ? 't' : 'f');
        break;
    case RESP_T_NIL:
        cm_buf_appendf(out, "nil");
        break;
    case RESP_T_ARRAY:
    case RESP_T_MAP:
    case RESP_T_SET:
    case RESP_T_ATTR:
    case RESP_T_PUSH:
        cm_buf_appendf(out, "%s", open[v->type]);
        for (size_t i = 0; i < v->elements; i++) {
            if (i > 0)
                cm_buf_appendc(out, ' ');
            dump(out, v->element[i]);
        }
        cm_buf_appendc(out, v->type == RESP_T_ARRAY || v->type == RESP_T_PUSH ? ']' : '}');
        break;
    default:
        UNIT_FAIL("bad type %d", (int)v->type);
    }
}

struct rlim {
    long long bulk, elements;
    int depth;
};

static void reader_init_lim(struct resp_reader *r, const struct rlim *lim)
{
    resp_reader_init(r);
    if (lim != NULL) {
        if (lim->bulk)
            r->max_bulk = lim->bulk;
        if (lim->elements)
            r->max_elements = lim->elements;
        if (lim->depth)
            r->max_depth = lim->depth;
    }
}

/* Feeds s to a reader in pieces ending at cuts[], taking replies out after each one.
 * Each reply is written to out as its dump and "\n"; an error as "ERR:text\n", after
 * which the reader must stay bad. */
static const char *run_reader(const char *s, size_t len, const size_t *cuts, size_t ncuts,
                              const struct rlim *lim, struct cm_buf *out)
{
    struct resp_reader r;
    size_t before = cm_alloc_used() - out->cap; /* out grows as it goes: not counted */
    size_t fed = 0;
    CHECK(ncuts > 0 && cuts[ncuts - 1] == len);
    out->len = 0;
    reader_init_lim(&r, lim);
    for (size_t c = 0; c < ncuts; c++) {
        CHECK_EQ_INT(resp_reader_feed(&r, s + fed, cuts[c] - fed), 0);
        fed = cuts[c];
        for (;;) {
            struct resp_value *v = NULL;
            int rc = resp_reader_get(&r, &v);
            if (rc == RESP_MORE)
                break;
            if (rc == RESP_BAD) {
                cm_buf_appendf(out, "ERR:%s\n", r.err);
                CHECK_EQ_INT(resp_reader_feed(&r, S("+OK\r\n")), 0);
                CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_BAD);
                goto done;
            }
            CHECK_EQ_INT(rc, RESP_DONE);
            CHECK(v != NULL);
            dump(out, v);
            cm_buf_appendc(out, '\n');
            resp_value_free(v);
        }
    }
done:
    resp_reader_deinit(&r);
    CHECK_EQ_INT(cm_alloc_used() - out->cap, before);
    cm_buf_appendc(out, '\0');
    out->len--;
    return out->p;
}

static void check_reader(const char *s, size_t len, const struct rlim *lim, const char *want)
{
    struct cm_buf out;
    cm_buf_init(&out);
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    CHECK(cuts != NULL);
    cuts[0] = len;
    CHECK_STR(run_reader(s, len, cuts, 1, lim, &out), want);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    CHECK_STR(run_reader(s, len, cuts, len, lim, &out), want);
    for (size_t k = 1; k < len; k++) {
        size_t two[2] = {k, len};
        const char *got = run_reader(s, len, two, 2, lim, &out);
        if (strcmp(got, want) != 0)
            UNIT_FAIL("split at %zu: got \"%s\", expected \"%s\"", k, got, want);
    }
    free(cuts);
    cm_buf_deinit(&out);
}

static void expect_reader_err(const char *s, size_t len, const struct rlim *lim, const char *err)
{
    struct cm_buf want;
    cm_buf_init(&want);
    cm_buf_appendf(&want, "ERR:%s\n", err);
    cm_buf_appendc(&want, '\0');
    check_reader(s, len, lim, want.p);
    cm_buf_deinit(&want);
}

/* One value parsed from s, which must be complete. */
static struct resp_value *read_value(const char *s, size_t len)
{
    struct resp_reader r;
    struct resp_value *v = NULL;
    resp_reader_init(&r);
    CHECK_EQ_INT(resp_reader_feed(&r, s, len), 0);
    int rc = resp_reader_get(&r, &v);
    if (rc != RESP_DONE)
        UNIT_FAIL("rc %d: %s", rc, r.err);
    resp_reader_deinit(&r);
    return v;
}

/* Found by a review: an attribute inside an aggregate counted against the
 * aggregate's length (RESP3 does not count it), so the aggregate ended one element
 * early and its last element became the reply to the next command. */
TEST(reader_attribute_inside_aggregate)
{
    check_reader(S("*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n+PONG\r\n"), NULL,
                 "[|{+k +v} :1 :2]\n+PONG\n");
    check_reader(S("*3\r\n|1\r\n+a\r\n+b\r\n:1\r\n|1\r\n+c\r\n+d\r\n:2\r\n:3\r\n"
                   "%1\r\n|1\r\n+e\r\n+f\r\n+key\r\n:4\r\n"),
                 NULL, "[|{+a +b} :1 |{+c +d} :2 :3]\n%{|{+e +f} +key :4}\n");
}

TEST(reader_resp2_types)
{
    check_reader(S("+OK\r\n-ERR bad thing\r\n:-42\r\n:9223372036854775807\r\n"
                   "$5\r\nhe\r\no\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
                   "*3\r\n:1\r\n$3\r\na\0b\r\n+\r\n"),
                 NULL,
                 "+OK\n-ERR bad thing\n:-42\n:9223372036854775807\n"
                 "'he\\x0d\\x0ao'\n''\nnil\nnil\n[]\n"
                 "[:1 'a\\x00b' +]\n");
    struct resp_value *v = read_value(S(":-9223372036854775808\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_INTEGER);
    CHECK(v->integer == LLONG_MIN);
    resp_value_free(v);
    v = read_value(S("$3\r\nabc\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_STRING);
    CHECK_EQ_INT(v->len, 3);
    CHECK_STR(v->str, "abc");
    resp_value_free(v);
    v = read_value(S("*2\r\n$1\r\nx\r\n*-1\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_ARRAY);
    CHECK_EQ_INT(v->elements, 2);
    CHECK_EQ_INT(v->element[1]->type, RESP_T_NIL);
    resp_value_free(v);
}

TEST(reader_resp3_types)
{
    check_reader(S("_\r\n#t\r\n#f\r\n,1.5\r\n,-inf\r\n,inf\r\n,nan\r\n,1e3\r\n"
                   "(12345678901234567890123\r\n"
                   "=15\r\ntxt:Some string\r\n=4\r\nmkd:\r\n"
                   "!10\r\nSYNTAX bad\r\n"
                   "%2\r\n+a\r\n:1\r\n$1\r\nb\r\n_\r\n%0\r\n"
                   "~3\r\n#t\r\n:2\r\n,0.5\r\n"
                   "|1\r\n+key\r\n:7\r\n"
                   ">2\r\n+message\r\n$2\r\nhi\r\n"),
                 NULL,
                 "nil\n#t\n#f\n,1.5\n,-inf\n,inf\n,nan\n,1e3\n"
                 "(12345678901234567890123\n"
                 "=txt:Some string\n=mkd:\n"
                 "-SYNTAX bad\n"
                 "%{+a :1 'b' nil}\n%{}\n"
                 "~{#t :2 ,0.5}\n"
                 "|{+key :7}\n"
                 ">[+message 'hi']\n");
    struct resp_value *v = read_value(S(",-2.5e-3\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_DOUBLE);
    CHECK(v->dval == -2.5e-3);
    resp_value_free(v);
    v = read_value(S(",-inf\r\n"));
    CHECK(isinf(v->dval) && v->dval < 0);
    resp_value_free(v);
    v = read_value(S(",nan\r\n"));
    CHECK(isnan(v->dval));
    resp_value_free(v);
    v = read_value(S("#t\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_BOOL);
    CHECK_EQ_INT(v->integer, 1);
    resp_value_free(v);
    v = read_value(S("%1\r\n+k\r\n+v\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_MAP);
    CHECK_EQ_INT(v->elements, 2);
    resp_value_free(v);
    v = read_value(S("=7\r\ntxt:a\0b\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_VERB);
    CHECK_STR(v->vtype, "txt");
    CHECK_MEM(v->str, v->len, "a\0b", 3);
    resp_value_free(v);
    v = read_value(S("!3\r\nERR\r\n"));
    CHECK_EQ_INT(v->type, RESP_T_ERROR);
    resp_value_free(v);
    CHECK_STR(resp_type_name(RESP_T_MAP), "map");
    CHECK_STR(resp_type_name(RESP_T_VERB), "verbatim");
    CHECK_STR(resp_type_name((enum resp_type)99), "?");
}

TEST(reader_nested_every_split)
{
    check_reader(S("*3\r\n*2\r\n*1\r\n*0\r\n%1\r\n~1\r\n:1\r\n>1\r\n$1\r\n*\r\n"
                   "|0\r\n"
                   "*2\r\n%2\r\n+a\r\n*1\r\n*1\r\n*-1\r\n,2\r\n$0\r\n\r\n_\r\n"
                   "+third\r\n+after\r\n"),
                 NULL, /* the attribute is not one of the 3 (RESP3) */
                 "[[[[]] %{~{:1} >['*']}] |{} [%{+a [[nil]] ,2 ''} nil] +third]\n+after\n");
}

TEST(reader_large_array)
{
    enum { N = 100000 };
    struct cm_buf f;
    cm_buf_init(&f);
    cm_buf_appendf(&f, "*%d\r\n", N);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            cm_buf_appendf(&f, ":%d\r\n", i);
        else
            cm_buf_appendf(&f, "$%d\r\n%.*s\r\n", i % 7, i % 7, "zzzzzzz");
    }
    cm_buf_appendf(&f, "+next\r\n");
    size_t before = cm_alloc_used();
    struct resp_reader r;
    resp_reader_init(&r);
    struct resp_value *v = NULL;
    int rc = RESP_MORE;
    size_t off;
    for (off = 0; off < f.len && rc == RESP_MORE;) {
        size_t n = f.len - off < 1024 ? f.len - off : 1024;
        CHECK_EQ_INT(resp_reader_feed(&r, f.p + off, n), 0);
        off += n;
        rc = resp_reader_get(&r, &v);
    }
    CHECK_EQ_INT(rc, RESP_DONE);
    CHECK_EQ_INT(v->type, RESP_T_ARRAY);
    CHECK_EQ_INT(v->elements, N);
    for (int i = 0; i < N; i++) {
        struct resp_value *e = v->element[i];
        if (i % 3 == 0) {
            CHECK_EQ_INT(e->type, RESP_T_INTEGER);
            CHECK_EQ_INT(e->integer, i);
        } else {
            CHECK_EQ_INT(e->type, RESP_T_STRING);
            CHECK_EQ_INT(e->len, i % 7);
        }
    }
    resp_value_free(v);
    CHECK_EQ_INT(resp_reader_feed(&r, f.p + off, f.len - off), 0);
    CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_DONE);
    CHECK_EQ_INT(v->type, RESP_T_STATUS);
    CHECK_STR(v->str, "next");
    resp_value_free(v);
    CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_MORE);
    resp_reader_deinit(&r);
    CHECK_EQ_INT(cm_alloc_used(), before);
    cm_buf_deinit(&f);
}

TEST(reader_big_bulk)
{
    enum { N = 10 * 1024 * 1024 };
    char *data = malloc(N);
    CHECK(data != NULL);
    for (size_t i = 0; i < N; i++)
        data[i] = (char)(i * 131 + 7);
    size_t before = cm_alloc_used();
    struct resp_reader r;
    resp_reader_init(&r);
    struct resp_value *v = NULL;
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "$%d\r\n", N);
    CHECK_EQ_INT(resp_reader_feed(&r, hdr, (size_t)h), 0);
    CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_MORE);
    for (size_t off = 0; off < N; off += 1024) {
        CHECK_EQ_INT(resp_reader_feed(&r, data + off, 1024), 0);
        CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_MORE);
    }
    CHECK_EQ_INT(resp_reader_feed(&r, "\r", 1), 0);
    CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_MORE);
    CHECK_EQ_INT(resp_reader_feed(&r, "\n", 1), 0);
    CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_DONE);
    CHECK_EQ_INT(v->type, RESP_T_STRING);
    CHECK_MEM(v->str, v->len, data, N);
    CHECK(v->str[N] == '\0');
    resp_value_free(v);
    resp_reader_deinit(&r);
    CHECK_EQ_INT(cm_alloc_used(), before);
    free(data);
}

TEST(reader_limits)
{
    struct rlim l = {.bulk = 10, .elements = 3, .depth = 3};
    check_reader(S("$10\r\n0123456789\r\n!10\r\n0123456789\r\n=10\r\ntxt:012345\r\n"), &l,
                 "'0123456789'\n-0123456789\n=txt:012345\n");
    expect_reader_err(S("$11\r\n01234567890\r\n"), &l, "Protocol error: invalid bulk length");
    expect_reader_err(S("!11\r\n01234567890\r\n"), &l, "Protocol error: invalid bulk length");
    expect_reader_err(S("=11\r\ntxt:0123456\r\n"), &l, "Protocol error: invalid bulk length");

    check_reader(S("*3\r\n:1\r\n:2\r\n:3\r\n~3\r\n:1\r\n:2\r\n:3\r\n>3\r\n:1\r\n:2\r\n:3\r\n"), &l,
                 "[:1 :2 :3]\n~{:1 :2 :3}\n>[:1 :2 :3]\n");
    expect_reader_err(S("*4\r\n"), &l, "Protocol error: invalid multibulk length");
    expect_reader_err(S("~4\r\n"), &l, "Protocol error: invalid multibulk length");
    expect_reader_err(S("%4\r\n"), &l, "Protocol error: invalid multibulk length");

    check_reader(S("*1\r\n*1\r\n*1\r\n:1\r\n"), &l, "[[[:1]]]\n");
    check_reader(S("*1\r\n%1\r\n+k\r\n~1\r\n:1\r\n"), &l, "[%{+k ~{:1}}]\n");
    expect_reader_err(S("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), &l, "Protocol error: nesting too deep");
    expect_reader_err(S("*1\r\n%1\r\n+k\r\n~1\r\n>1\r\n:1\r\n"), &l,
                      "Protocol error: nesting too deep");

    /* The default depth is 64. */
    struct cm_buf f;
    cm_buf_init(&f);
    for (int i = 0; i < 64; i++)
        cm_buf_appendf(&f, "*1\r\n");
    cm_buf_appendf(&f, ":1\r\n");
    struct cm_buf out;
    cm_buf_init(&out);
    size_t cut = f.len;
    CHECK(strstr(run_reader(f.p, f.len, &cut, 1, NULL, &out), "ERR") == NULL);
    f.len -= 4;
    cm_buf_appendf(&f, "*1\r\n:1\r\n");
    cut = f.len;
    const char *deep_err = "ERR:Protocol error: nesting too deep\n";
    CHECK_STR(run_reader(f.p, f.len, &cut, 1, NULL, &out), deep_err);
    /* A max_depth above the reader's stack is capped, not trusted. */
    struct rlim deep = {.depth = 1000};
    for (int i = 0; i < 100; i++)
        cm_buf_appendf(&f, "*1\r\n");
    cut = f.len;
    CHECK_STR(run_reader(f.p, f.len, &cut, 1, &deep, &out), deep_err);
    cm_buf_deinit(&out);
    cm_buf_deinit(&f);
}

TEST(reader_malformed)
{
    expect_reader_err(S("x\r\n"), NULL, "Protocol error: invalid type byte 0x78");
    expect_reader_err(S("\r\n"), NULL, "Protocol error: invalid type byte 0x0d");
    expect_reader_err(S(":12a\r\n"), NULL, "Protocol error: bad integer value");
    expect_reader_err(S(":\r\n"), NULL, "Protocol error: bad integer value");
    expect_reader_err(S(": 1\r\n"), NULL, "Protocol error: bad integer value");
    expect_reader_err(S(":99999999999999999999\r\n"), NULL, "Protocol error: bad integer value");
    expect_reader_err(S("$-2\r\n"), NULL, "Protocol error: invalid bulk length");
    expect_reader_err(S("$abc\r\n"), NULL, "Protocol error: invalid bulk length");
    expect_reader_err(S("$\r\n"), NULL, "Protocol error: invalid bulk length");
    expect_reader_err(S("$1099511627776\r\n"), NULL, "Protocol error: invalid bulk length");
    expect_reader_err(S("$99999999999999999999\r\n"), NULL, "Protocol error: invalid bulk length");
    expect_reader_err(S("*-2\r\n"), NULL, "Protocol error: invalid multibulk length");
    expect_reader_err(S("%-2\r\n"), NULL, "Protocol error: invalid multibulk length");
    expect_reader_err(S("*x\r\n"), NULL, "Protocol error: invalid multibulk length");
    expect_reader_err(S("*1099511627776\r\n"), NULL, "Protocol error: invalid multibulk length");
    expect_reader_err(S("$3\r\nabcde\r\n"), NULL, "Protocol error: bad bulk string terminator");
    expect_reader_err(S("$3\r\nabc\n\r"), NULL, "Protocol error: bad bulk string terminator");
    expect_reader_err(S("#x\r\n"), NULL, "Protocol error: bad bool value");
    expect_reader_err(S("#\r\n"), NULL, "Protocol error: bad bool value");
    expect_reader_err(S("#tt\r\n"), NULL, "Protocol error: bad bool value");
    expect_reader_err(S("_x\r\n"), NULL, "Protocol error: bad null value");
    expect_reader_err(S(",abc\r\n"), NULL, "Protocol error: bad double value");
    expect_reader_err(S(",\r\n"), NULL, "Protocol error: bad double value");
    expect_reader_err(S("=3\r\ntxt\r\n"), NULL, "Protocol error: bad verbatim string");
    expect_reader_err(S("=5\r\ntxt-a\r\n"), NULL, "Protocol error: bad verbatim string");
    /* An error inside an aggregate frees the partial tree (run_reader checks leaks). */
    expect_reader_err(S("*3\r\n:1\r\n*2\r\n+a\r\n:x\r\n"), NULL,
                      "Protocol error: bad integer value");
    /* Replies before the bad one are delivered. */
    check_reader(S("+a\r\n:1\r\n?\r\n"), NULL,
                 "+a\n:1\nERR:Protocol error: invalid type byte 0x3f\n");
}

/* Runs the nested reply s under allocation failure N = 1, 2, ... fed in pieces ending at
 * cuts; each run must give want or "Out of memory", and leak nothing. */
static void reader_oom_run(const char *s, size_t len, const size_t *cuts, size_t ncuts,
                           const char *want)
{
    struct cm_buf out;
    cm_buf_init(&out);
    CHECK_EQ_INT(cm_buf_reserve(&out, 4096), 0); /* so that dump allocates nothing */
    CHECK(ncuts > 0 && cuts[ncuts - 1] == len);
    int failed = 0, ok = 0;
    for (long n = 1; n < 2000 && !ok; n++) {
        size_t before = cm_alloc_used();
        struct resp_reader r;
        resp_reader_init(&r);
        out.len = 0;
        int rc = RESP_MORE;
        size_t fed = 0;
        cm_alloc_fail_at(n);
        for (size_t c = 0; c < ncuts && rc == RESP_MORE; c++) {
            if (resp_reader_feed(&r, s + fed, cuts[c] - fed) != 0) {
                rc = CM_ENOMEM;
                break;
            }
            fed = cuts[c];
            struct resp_value *v = NULL;
            rc = resp_reader_get(&r, &v);
            if (rc == RESP_DONE) {
                dump(&out, v);
                resp_value_free(v);
            }
        }
        cm_alloc_fail_at(0);
        if (rc == RESP_DONE) {
            cm_buf_appendc(&out, '\0');
            CHECK_STR(out.p, want);
            ok = 1;
        } else if (rc == RESP_BAD) {
            CHECK_STR(r.err, "Out of memory");
            struct resp_value *v = NULL;
            CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_BAD);
            failed++;
        } else {
            CHECK_EQ_INT(rc, CM_ENOMEM);
            failed++;
        }
        resp_reader_deinit(&r);
        if (cm_alloc_used() != before)
            UNIT_FAIL("failing allocation %ld leaked %zu bytes", n, cm_alloc_used() - before);
    }
    CHECK(ok);
    CHECK(failed > 5);
    cm_buf_deinit(&out);
}

TEST(reader_oom)
{
    static const char s[] = "*4\r\n%2\r\n+k\r\n*2\r\n$3\r\nabc\r\n,1.5\r\n(123\r\n"
                            "~1\r\n=5\r\ntxt:x\r\n"
                            ":1\r\n*0\r\n>2\r\n-ERR e\r\n_\r\n";
    const char *want = "[%{+k ['abc' ,1.5] (123 ~{=txt:x}} :1 [] >[-ERR e nil]]";
    size_t len = sizeof(s) - 1;
    size_t whole = len;
    reader_oom_run(s, len, &whole, 1, want);
    size_t *cuts = malloc(len * sizeof(*cuts));
    CHECK(cuts != NULL);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    reader_oom_run(s, len, cuts, len, want);
    free(cuts);

    /* An aggregate past 1024 elements grows its element array: fail those steps too. */
    struct cm_buf f;
    cm_buf_init(&f);
    cm_buf_appendf(&f, "*3000\r\n");
    for (int i = 0; i < 3000; i++)
        cm_buf_appendf(&f, "_\r\n");
    size_t before = cm_alloc_used();
    int saw_bad = 0, saw_done = 0;
    /* 3004 allocations: the array, its first 1024 slots, 3000 nils, and two regrowths
     * (the 1028th and the 2053rd). Fail around both regrowths, then none. */
    static const long fail_at[] = {1026, 1027, 1028, 1029, 2052, 2053, 2054, 3004, 3005};
    for (size_t i = 0; i < sizeof(fail_at) / sizeof(fail_at[0]); i++) {
        long n = fail_at[i];
        struct resp_reader r;
        resp_reader_init(&r);
        CHECK_EQ_INT(resp_reader_feed(&r, f.p, f.len), 0);
        struct resp_value *v = NULL;
        cm_alloc_fail_at(n);
        int rc = resp_reader_get(&r, &v);
        cm_alloc_fail_at(0);
        if (rc == RESP_DONE) {
            CHECK_EQ_INT(v->elements, 3000);
            resp_value_free(v);
            saw_done++;
        } else {
            CHECK_EQ_INT(rc, RESP_BAD);
            CHECK_STR(r.err, "Out of memory");
            saw_bad++;
        }
        resp_reader_deinit(&r);
        CHECK_EQ_INT(cm_alloc_used(), before);
    }
    CHECK_EQ_INT(saw_bad, 8);
    CHECK_EQ_INT(saw_done, 1);
    cm_buf_deinit(&f);
}

TEST(reader_free_null)
{
    resp_value_free(NULL);
    size_t before = cm_alloc_used();
    struct resp_reader r;
    resp_reader_init(&r);
    struct resp_value *v = NULL;
    CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_MORE);
    CHECK(v == NULL);
    /* Deinit with a partial reply pending frees it. */
    CHECK_EQ_INT(resp_reader_feed(&r, S("*2\r\n$3\r\nabc\r\n*1\r\n")), 0);
    CHECK_EQ_INT(resp_reader_get(&r, &v), RESP_MORE);
    resp_reader_deinit(&r);
    CHECK_EQ_INT(cm_alloc_used(), before);
}

/* ---- MAPREDUCE partial results on the node bus (net/mapreduce.c) ---------------------- */

/* The body of the one RESP bulk string in b. */
static const char *bulk_body(const struct cm_buf *b, size_t *n)
{
    const char *nl = memchr(b->p, '\n', b->len);
    CHECK(b->p[0] == '$' && nl != NULL);
    *n = (size_t)strtoull(b->p + 1, NULL, 10);
    CHECK((size_t)(nl + 1 - b->p) + *n + 2 == b->len);
    return nl + 1;
}

TEST(mapreduce_partials_pack)
{
    size_t base = cm_alloc_used();
    struct cm_err err = {0};
    char big[20000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "abcd"[i % 4];
    /* Compressible and large: "Z" + a smaller zstd frame, unpacked to the same bytes. */
    struct cm_buf b, out;
    cm_buf_init(&b);
    cm_buf_init(&out);
    CHECK_EQ_INT(mr_pack(&b, big, sizeof(big)), 0);
    size_t n;
    const char *p = bulk_body(&b, &n);
    CHECK(p[0] == 'Z' && n < sizeof(big) / 10);
    CHECK_EQ_INT(mr_unpack(p, n, sizeof(big), &out, &err), 0);
    CHECK(out.len == sizeof(big) && memcmp(out.p, big, sizeof(big)) == 0);
    /* Larger than the limit: refused before anything is allocated for it. */
    out.len = 0;
    CHECK_EQ_INT(mr_unpack(p, n, sizeof(big) - 1, &out, &err), CM_EPROTO);
    CHECK(strstr(err.msg, "larger than") != NULL);
    /* Every cut and every flipped byte of the frame (it carries a checksum): an error,
     * or the same bytes when the flip hit what the decoder skips. */
    char *z = malloc(n);
    for (size_t cut = 0; cut < n; cut++) {
        out.len = 0;
        CHECK(mr_unpack(p, cut, sizeof(big), &out, &err) != 0);
    }
    for (size_t i = 1; i < n; i++) {
        memcpy(z, p, n);
        z[i] ^= 0x5a;
        out.len = 0;
        int rc = mr_unpack(z, n, sizeof(big), &out, &err);
        CHECK(rc == CM_EPROTO ||
              (rc == 0 && out.len == sizeof(big) && memcmp(out.p, big, sizeof(big)) == 0));
    }
    free(z);
    /* Small or incompressible: "R" + the raw bytes; the empty partial too. */
    const char *small[] = {"", "x", "a short partial"};
    for (int i = 0; i < 3; i++) {
        b.len = out.len = 0;
        CHECK_EQ_INT(mr_pack(&b, small[i], strlen(small[i])), 0);
        p = bulk_body(&b, &n);
        CHECK(p[0] == 'R' && n == strlen(small[i]) + 1);
        CHECK_EQ_INT(mr_unpack(p, n, 100, &out, &err), 0);
        CHECK(out.len == strlen(small[i]) && memcmp(out.p, small[i], out.len) == 0);
    }
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)((x = x * 1103515245u + 12345u) >> 16);
    b.len = out.len = 0;
    CHECK_EQ_INT(mr_pack(&b, big, sizeof(big)), 0);
    p = bulk_body(&b, &n);
    CHECK(p[0] == 'R' && n == sizeof(big) + 1);
    /* Unknown tags. */
    CHECK_EQ_INT(mr_unpack("", 0, 100, &out, &err), CM_EPROTO);
    CHECK_EQ_INT(mr_unpack("Xabc", 4, 100, &out, &err), CM_EPROTO);
    cm_buf_deinit(&b);
    cm_buf_deinit(&out);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

int main(void)
{
    RUN(req_simple);
    RUN(req_pipelined_every_split);
    RUN(req_binary_args);
    RUN(req_empty_multibulk);
    RUN(req_inline_basic);
    RUN(req_inline_quotes);
    RUN(req_inline_args_stay_valid);
    RUN(req_limit_max_bulk);
    RUN(req_limit_max_args);
    RUN(req_limit_inline_line);
    RUN(req_limit_count_line);
    RUN(req_bad_lengths);
    RUN(req_expected_dollar);
    RUN(req_missing_crlf_after_bulk);
    RUN(req_errors_are_sticky);
    RUN(req_need_hint);
    RUN(req_million_args_4k_chunks);
    RUN(req_bytewise_is_linear);
    RUN(req_inline_bytewise_is_linear);
    RUN(req_oom);
    RUN(add_resp2);
    RUN(add_resp3);
    RUN(add_command);
    RUN(add_oom_leaves_buffer);
    RUN(reader_resp2_types);
    RUN(reader_resp3_types);
    RUN(reader_nested_every_split);
    RUN(reader_attribute_inside_aggregate);
    RUN(reader_large_array);
    RUN(reader_big_bulk);
    RUN(reader_limits);
    RUN(reader_malformed);
    RUN(reader_oom);
    RUN(reader_free_null);
    RUN(mapreduce_partials_pack);
    return unit_done();
}
