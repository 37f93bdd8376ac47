/* test_udflib.c - unit tests for udf/udf_lib.h: SHA-1 (FIPS test vectors and block
 * boundaries), the registry's library generation (udf.h) over a real engine, eddy.vec (values against naive C loops, errors, encode/decode round
 * trips, corrupt inputs, sparse operations) and the budgeted pattern functions, which
 * are compared with Lua 5.4's own string library on hundreds of hand-written and a few
 * thousand random cases, and stopped on pathological patterns. Uses tests/unit/unit.h.
 */
#include "../../common/common.h"
#include "unit.h"

#include "../../engine/engine.h"
#include "../../udf/udf.h"
#include "../../udf/udf_lib.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* ---- Helpers ---------------------------------------------------------------------------- */

static int tick_calls;
static int tick_limit;

/* A tick that raises after tick_limit calls (never when tick_limit is 0). */
static void tick_counting(lua_State *L)
{
    tick_calls++;
    if (tick_limit > 0 && tick_calls >= tick_limit)
        luaL_error(L, "tick: time limit");
}

/* A state with the standard libraries, the budgeted pattern functions in the global
 * table mystr (a copy of string with find/match/gmatch/gsub replaced) and eddy.vec as
 * the global vec. */
static lua_State *new_state(udf_tick_fn tick)
{
    lua_State *L = luaL_newstate();
    CHECK(L != NULL);
    luaL_openlibs(L);
    lua_newtable(L);
    lua_getglobal(L, "string");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -5);
    }
    lua_pop(L, 1);
    int top = lua_gettop(L);
    udf__open_patterns(L, tick);
    CHECK_EQ_INT(lua_gettop(L), top);
    lua_setglobal(L, "mystr");
    CHECK_EQ_INT(udf__open_vec(L), 1);
    lua_setglobal(L, "vec");
    CHECK_EQ_INT(lua_gettop(L), 0);
    return L;
}

/* Runs code, failing the test on a Lua error; leaves its results on the stack. */
static void run(lua_State *L, const char *code)
{
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK)
        UNIT_FAIL("lua error: %s", lua_tostring(L, -1));
}

/* Runs code that must raise; returns the message (valid until the state closes). */
static const char *run_err(lua_State *L, const char *code)
{
    if (luaL_loadstring(L, code) != LUA_OK)
        UNIT_FAIL("syntax: %s", lua_tostring(L, -1));
    if (lua_pcall(L, 0, 0, 0) == LUA_OK)
        UNIT_FAIL("no error from: %s", code);
    const char *msg = lua_tostring(L, -1);
    return msg != NULL ? msg : "(non-string error)";
}

/* Runs code returning one string and checks it. */
#define CHECK_LUA_STR(L, code, want)                                                          \
    do {                                                                                      \
        lua_settop(L, 0);                                                                     \
        run(L, "return " code);                                                               \
        CHECK_STR(lua_tostring(L, 1), want);                                                  \
        lua_settop(L, 0);                                                                     \
    } while (0)

/* Checks that code raises an error containing want. */
#define CHECK_LUA_ERR(L, code, want)                                                          \
    do {                                                                                      \
        const char *m_ = run_err(L, code);                                                    \
        if (strstr(m_, want) == NULL)                                                         \
            UNIT_FAIL("error \"%s\" lacks \"%s\" (code: %s)", m_, want, code);                \
        lua_settop(L, 0);                                                                     \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- SHA-1 ------------------------------------------------------------------------------- */

static void check_sha1(const void *p, size_t n, const char *want)
{
    char hex[41];
    memset(hex, 'x', sizeof(hex));
    cm_sha1_hex(p, n, hex);
    CHECK_STR(hex, want);
    unsigned char raw[20];
    cm_sha1(p, n, raw);
    for (int i = 0; i < 20; i++) {
        unsigned hi = (unsigned)(want[2 * i] <= '9' ? want[2 * i] - '0' : want[2 * i] - 'a' + 10);
        unsigned lo =
            (unsigned)(want[2 * i + 1] <= '9' ? want[2 * i + 1] - '0' : want[2 * i + 1] - 'a' + 10);
        CHECK_EQ_INT(raw[i], hi * 16 + lo);
    }
}

TEST(sha1_fips_vectors)
{
    check_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *s56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_sha1(s56, strlen(s56), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    char *m = malloc(1000000);
    CHECK(m != NULL);
    memset(m, 'a', 1000000);
    check_sha1(m, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(m);
}

/* Lengths around the one-or-two padding blocks boundary (55/56) and block edges;
 * expected digests from Python's hashlib over bytes (i * 7 + 3) & 255. */
TEST(sha1_block_boundaries)
{
    static const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        {55, "ddf57317ef34bfee3b6df83d359098930eb278bc"},
        {56, "a0d492bb0fc889d0eca3bc137066ab6f4f74f369"},
        {63, "c55856749bef509bdfe6bfebfc7bf4e793e82132"},
        {64, "bede92be29c3874e1b54ddc77988d606fc857a8e"},
        {65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f"},
        {119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23"},
        {120, "82134b02fb3f702491be9bed581eeab59334acb2"},
        {128, "a09133e6730ffe899efb70204cb5646cd5dc24ee"},
    };
    unsigned char buf[128];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)((i * 7 + 3) & 255);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_sha1(buf, cases[i].n, cases[i].hex);
}

/* ---- eddy.vec: C API ------------------------------------------------------------------------ */

TEST(vec_c_api)
{
    lua_State *L = new_state(NULL);
    struct udf_vec *v = udf__pushvec(L, 5);
    CHECK(v != NULL && v->n == 5);
    for (int i = 0; i < 5; i++)
        CHECK(v->v[i] == 0.0);
    CHECK(udf__testvec(L, -1) == v);
    CHECK(udf__checkvec(L, -1) == v);
    lua_pushinteger(L, 3);
    CHECK(udf__testvec(L, -1) == NULL);
    lua_newtable(L);
    CHECK(udf__testvec(L, -1) == NULL);
    lua_newuserdatauv(L, 16, 0); /* a userdata of another kind */
    CHECK(udf__testvec(L, -1) == NULL);
    lua_settop(L, 0);
    struct udf_vec *e = udf__pushvec(L, 0);
    CHECK(e->n == 0);
    lua_setglobal(L, "e");
    v = udf__pushvec(L, 3);
    v->v[0] = 1.5;
    v->v[2] = -2;
    lua_setglobal(L, "v");
    CHECK_LUA_STR(L, "tostring(v) .. ' ' .. #e .. ' ' .. tostring(vec.isvec(e))",
                  "vec(3)[1.5, 0, -2] 0 true");
    lua_close(L);
}

static int call_checkvec(lua_State *L)
{
    udf__checkvec(L, 1);
    return 0;
}

static int call_pushvec_big(lua_State *L)
{
    udf__pushvec(L, UDF_VEC_MAX + 1);
    return 1;
}

TEST(vec_c_api_errors)
{
    lua_State *L = new_state(NULL);
    lua_register(L, "checkvec", call_checkvec);
    lua_register(L, "pushbig", call_pushvec_big);
    CHECK_LUA_ERR(L, "checkvec(42)", "eddy.vec expected, got number");
    CHECK_LUA_ERR(L, "checkvec({})", "eddy.vec expected, got table");
    CHECK_LUA_ERR(L, "pushbig()", "eddy.vec: size 134217729 out of range 0..134217728");
    run(L, "checkvec(vec.new(2))");
    lua_close(L);
}

/* ---- eddy.vec: Lua API -------------------------------------------------------------------- */

TEST(vec_basics)
{
    lua_State *L = new_state(NULL);
    run(L, "v = vec.new(5); z = vec.zeros(0); w = vec.from({1, 2, 3})");
    CHECK_LUA_STR(L, "#v .. ',' .. v:len() .. ',' .. #z .. ',' .. #w", "5,5,0,3");
    CHECK_LUA_STR(L, "tostring(w)", "vec(3)[1, 2, 3]");
    CHECK_LUA_STR(L, "tostring(z)", "vec(0)[]");
    CHECK_LUA_STR(L, "tostring(vec.from({0.5, -1e300, 1/0, -1/0}))",
                  "vec(4)[0.5, -1e+300, inf, -inf]");
    CHECK_LUA_STR(L, "tostring(vec.new(12))", "vec(12)[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...]");
    run(L, "v[1] = 10; v[5] = -5; v:set(2, 2.5); v[3.0] = 3");
    CHECK_LUA_STR(L, "v[1] .. ',' .. v[2] .. ',' .. v:get(3) .. ',' .. v[4] .. ',' .. v[5]",
                  "10.0,2.5,3.0,0.0,-5.0");
    CHECK_LUA_STR(L, "math.type(v[1])", "float");
    CHECK_LUA_STR(L, "tostring(v:set(4, 4) == v)", "true");
    CHECK_LUA_STR(L, "tostring(v.nosuchmethod)", "nil");
    CHECK_LUA_STR(L, "type(v.dot) .. type(v['len'])", "functionfunction");
    CHECK_LUA_STR(L, "getmetatable(v)", "eddy.vec");
    CHECK_LUA_STR(L, "type(v)", "userdata");
    CHECK_LUA_STR(L, "tostring(vec.isvec(v)) .. tostring(vec.isvec({})) .. tostring(vec.isvec())",
                  "truefalsefalse");
    /* __eq by value. */
    CHECK_LUA_STR(L,
                  "tostring(vec.from{1,2} == vec.from{1,2}) .. tostring(vec.from{1,2} == "
                  "vec.from{1,3}) .. tostring(vec.from{1} == vec.from{1,0}) .. tostring(vec.new(0) "
                  "== vec.zeros(0)) .. tostring(vec.from{0} == vec.from{-0.0}) .. "
                  "tostring(vec.from{0/0} == vec.from{0/0}) .. tostring(w == {1,2,3})",
                  "truefalsefalsetruetruefalsefalse");
    /* totable, copy independence, fill. */
    CHECK_LUA_STR(L, "table.concat(w:totable(), ' ')", "1.0 2.0 3.0");
    run(L, "c = w:copy(); c[1] = 100");
    CHECK_LUA_STR(L, "w[1] .. ' ' .. c[1] .. ' ' .. tostring(vec.isvec(c))", "1.0 100.0 true");
    CHECK_LUA_STR(L, "tostring(vec.new(3):fill(7))", "vec(3)[7, 7, 7]");
    CHECK_LUA_STR(L, "#vec.new(0):totable()", "0");
    lua_close(L);
}

TEST(vec_errors)
{
    lua_State *L = new_state(NULL);
    run(L, "v = vec.new(5); w = vec.new(4)");
    CHECK_LUA_ERR(L, "return v[7]", "eddy.vec: index 7 out of range 1..5");
    CHECK_LUA_ERR(L, "return v[0]", "eddy.vec: index 0 out of range 1..5");
    CHECK_LUA_ERR(L, "return v[-1]", "eddy.vec: index -1 out of range 1..5");
    CHECK_LUA_ERR(L, "v[6] = 1", "eddy.vec: index 6 out of range 1..5");
    CHECK_LUA_ERR(L, "return v:get(6)", "eddy.vec: index 6 out of range 1..5");
    CHECK_LUA_ERR(L, "v:set(0, 1)", "eddy.vec: index 0 out of range 1..5");
    CHECK_LUA_ERR(L, "return v[1.5]", "eddy.vec: index 1.5 is not an integer");
    CHECK_LUA_ERR(L, "return v[0/0]", "is not an integer");
    CHECK_LUA_ERR(L, "return v:get('x')", "eddy.vec: index must be an integer, got string");
    CHECK_LUA_ERR(L, "v[1] = 'x'", "eddy.vec: value must be a number, got string");
    CHECK_LUA_ERR(L, "v[1] = nil", "eddy.vec: value must be a number, got nil");
    CHECK_LUA_ERR(L, "v:set(1, '3')", "eddy.vec: value must be a number, got string");
    CHECK_LUA_ERR(L, "v.x = 1", "eddy.vec: cannot set field of type string");
    CHECK_LUA_ERR(L, "v:fill('a')", "eddy.vec: value must be a number");
    CHECK_LUA_ERR(L, "return vec.new(0)[1]", "eddy.vec: index 1 out of range 1..0");
    CHECK_LUA_ERR(L, "return v:dot(w)", "eddy.vec: length mismatch (5 vs 4)");
    CHECK_LUA_ERR(L, "v:axpy(1, w)", "eddy.vec: length mismatch (5 vs 4)");
    CHECK_LUA_ERR(L, "v:add(w)", "eddy.vec: length mismatch (5 vs 4)");
    CHECK_LUA_ERR(L, "v:sub(w)", "eddy.vec: length mismatch (5 vs 4)");
    CHECK_LUA_ERR(L, "v:dot({1,2,3,4,5})", "eddy.vec expected, got table");
    CHECK_LUA_ERR(L, "v:scale('x')", "number expected, got string");
    CHECK_LUA_ERR(L, "v:axpy(nil, v)", "number expected, got nil");
    CHECK_LUA_ERR(L, "vec.new(-1)", "eddy.vec: size -1 out of range 0..134217728");
    CHECK_LUA_ERR(L, "vec.new(2^27 + 1)", "eddy.vec: size 134217729 out of range 0..134217728");
    CHECK_LUA_ERR(L, "vec.new(1.5)", "number has no integer representation");
    CHECK_LUA_ERR(L, "vec.new()", "number expected, got no value");
    CHECK_LUA_ERR(L, "vec.from({1, 'a', 3})", "eddy.vec: element 2 is not a number (a string)");
    CHECK_LUA_ERR(L, "vec.from({1, {}, 3})", "eddy.vec: element 2 is not a number (a table)");
    CHECK_LUA_ERR(L, "vec.from(5)", "table expected, got number");
    CHECK_LUA_ERR(L, "vec.len(5)", "attempt to call a nil value");
    CHECK_LUA_ERR(L, "v.len(5)", "eddy.vec expected, got number");
    CHECK_LUA_ERR(L, "v:nosuch()", "attempt to call a nil value (method 'nosuch')");
    /* The metatable is protected. */
    CHECK_LUA_ERR(L, "getmetatable(v).__index = nil", "attempt to index a string value");
    /* Array part only: a hash key or hole after the border is not read. */
    CHECK_LUA_STR(L, "#vec.from({1, 2, x = 3})", "2");
    lua_close(L);
}

static double frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return ((double)(*seed >> 8) / (double)(1u << 24)) * 20.0 - 10.0;
}

/* Puts a vector with the n values of a into global name. */
static void set_vec(lua_State *L, const char *name, const double *a, size_t n)
{
    struct udf_vec *v = udf__pushvec(L, n);
    if (n > 0)
        memcpy(v->v, a, n * sizeof(double));
    lua_setglobal(L, name);
}

static struct udf_vec *get_vec(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    struct udf_vec *v = udf__testvec(L, -1);
    CHECK(v != NULL);
    lua_pop(L, 1); /* still referenced by the global */
    return v;
}

static double get_num(lua_State *L, const char *expr)
{
    char code[256];
    snprintf(code, sizeof(code), "return %s", expr);
    lua_settop(L, 0);
    run(L, code);
    CHECK(lua_type(L, 1) == LUA_TNUMBER);
    double d = lua_tonumber(L, 1);
    lua_settop(L, 0);
    return d;
}

TEST(vec_dense_math_matches_naive_c)
{
    lua_State *L = new_state(NULL);
    unsigned seed = 7;
    static const size_t sizes[] = {0, 1, 2, 3, 7, 64, 1000, 4097};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t n = sizes[si];
        double *a = malloc((n + 1) * sizeof(double)), *b = malloc((n + 1) * sizeof(double));
        CHECK(a != NULL && b != NULL);
        for (size_t i = 0; i < n; i++) {
            a[i] = frand(&seed);
            b[i] = frand(&seed);
        }
        set_vec(L, "a", a, n);
        set_vec(L, "b", b, n);
        double dot = 0, sum = 0, sq = 0;
        for (size_t i = 0; i < n; i++) {
            dot += a[i] * b[i];
            sum += a[i];
            sq += a[i] * a[i];
        }
        CHECK(get_num(L, "a:dot(b)") == dot);
        CHECK(get_num(L, "a:sum()") == sum);
        CHECK(get_num(L, "a:norm2()") == sqrt(sq));

        run(L, "r = a:copy():axpy(0.75, b)");
        struct udf_vec *r = get_vec(L, "r");
        for (size_t i = 0; i < n; i++)
            CHECK(r->v[i] == a[i] + 0.75 * b[i]);
        run(L, "r = a:copy():scale(-3.5)");
        r = get_vec(L, "r");
        for (size_t i = 0; i < n; i++)
            CHECK(r->v[i] == a[i] * -3.5);
        run(L, "r = a:copy():add(b)");
        r = get_vec(L, "r");
        for (size_t i = 0; i < n; i++)
            CHECK(r->v[i] == a[i] + b[i]);
        run(L, "r = a:copy():sub(b)");
        r = get_vec(L, "r");
        for (size_t i = 0; i < n; i++)
            CHECK(r->v[i] == a[i] - b[i]);
        /* In place and chained: the returned value is the receiver. */
        run(L, "r = a:copy(); assert(r:axpy(2, b):scale(0.5):add(b):sub(a) == r)");
        r = get_vec(L, "r");
        for (size_t i = 0; i < n; i++)
            CHECK(r->v[i] == ((a[i] + 2 * b[i]) * 0.5 + b[i]) - a[i]);
        /* Aliasing: v:add(v) doubles. */
        run(L, "r = a:copy(); r:add(r)");
        r = get_vec(L, "r");
        for (size_t i = 0; i < n; i++)
            CHECK(r->v[i] == a[i] + a[i]);
        /* totable and from round trip. */
        run(L, "r = vec.from(a:totable()); assert(r == a and #r == #a)");
        free(a);
        free(b);
    }
    lua_close(L);
}

TEST(vec_encode_decode_round_trip)
{
    lua_State *L = new_state(NULL);
    run(L, "v = vec.from({1, -2.5, 1/0, -1/0, 0/0, -0.0, 5e-324, 1.7976931348623157e308})");
    struct udf_vec *v = get_vec(L, "v");
    run(L, "s = v:encode(); d = vec.decode(s)");
    struct udf_vec *d = get_vec(L, "d");
    CHECK_EQ_INT(d->n, 8);
    CHECK(memcmp(v->v, d->v, 8 * sizeof(double)) == 0); /* bit exact, NaN and -0 too */
    CHECK_LUA_STR(L, "tostring(#s)", "72");
    /* The exact bytes of the format. */
    CHECK_LUA_STR(L, "(vec.from({1, -2}):encode():gsub('.', function(c) "
                     "return string.format('%02x', c:byte()) end))",
                  "45566431" "02000000" "000000000000f03f" "00000000000000c0");
    CHECK_LUA_STR(L, "(vec.new(0):encode():gsub('.', function(c) "
                     "return string.format('%02x', c:byte()) end))",
                  "4556643100000000");
    CHECK_LUA_STR(L, "tostring(#vec.decode(vec.new(0):encode()))", "0");
    /* Large vector. */
    run(L, "big = vec.new(100000); for i = 1, #big, 997 do big[i] = i / 3 end; "
           "assert(vec.decode(big:encode()) == big)");
    lua_close(L);
}

TEST(vec_decode_rejects_corrupt_input)
{
    lua_State *L = new_state(NULL);
    run(L, "good = vec.from({1, 2, 3}):encode()");
    /* Every truncation of a valid encoding, and one byte too many. */
    run(L, "for n = 0, #good - 1 do "
           "  local ok, err = pcall(vec.decode, good:sub(1, n)); "
           "  assert(not ok, n); "
           "  assert(err:find('eddy.vec.decode: ', 1, true), err) "
           "end "
           "assert(not pcall(vec.decode, good .. 'x'))");
    CHECK_LUA_ERR(L, "vec.decode('EVd')",
                  "eddy.vec.decode: truncated input (3 bytes, header needs 8)");
    CHECK_LUA_ERR(L, "vec.decode('XVd1\\0\\0\\0\\0')",
                  "eddy.vec.decode: bad magic (expected \"EVd1\")");
    CHECK_LUA_ERR(L, "vec.decode('EVd1\\1\\0\\0\\0' .. ('\\0'):rep(7))",
                  "eddy.vec.decode: size mismatch (1 elements need 16 bytes, got 15)");
    CHECK_LUA_ERR(L, "vec.decode('EVd1\\255\\255\\255\\255')",
                  "eddy.vec.decode: length 4294967295 exceeds 134217728");
    CHECK_LUA_ERR(L, "vec.decode('EVd1\\1\\0\\0\\8')", "exceeds 134217728");
    CHECK_LUA_ERR(L, "vec.decode(vec.encode_sparse({1}, {2}))", "bad magic");
    CHECK_LUA_ERR(L, "vec.decode_sparse(good)", "eddy.vec.decode_sparse: bad magic");
    CHECK_LUA_ERR(L, "vec.decode()", "string expected, got no value");
    /* Every single-byte change and random garbage: an error or a vector, never a crash
     * (ASan and valgrind runs check the reads). */
    run(L, "for i = 1, #good do for _, b in ipairs({0, 1, 8, 0x7f, 0x80, 0xff}) do "
           "  local s = good:sub(1, i - 1) .. string.char(b) .. good:sub(i + 1); "
           "  local ok, r = pcall(vec.decode, s); "
           "  assert(ok and vec.isvec(r) or type(r) == 'string') "
           "  ok, r = pcall(vec.decode_sparse, s); assert(not ok) "
           "end end "
           "math.randomseed(3) "
           "for i = 1, 3000 do local t = {} for j = 1, math.random(0, 40) do "
           "  t[j] = string.char(math.random(0, 255)) end "
           "  local s = table.concat(t) "
           "  if i % 3 == 0 then s = 'EVd1' .. s elseif i % 3 == 1 then s = 'EVs1' .. s end "
           "  pcall(vec.decode, s); pcall(vec.decode_sparse, s) end");
    lua_close(L);
}

TEST(vec_sparse)
{
    lua_State *L = new_state(NULL);
    double a[6] = {1, 2, 3, 4, 5, 6};
    set_vec(L, "v", a, 6);
    /* sdot with tables, vectors, and mixed. */
    CHECK(get_num(L, "v:sdot({1, 3, 6}, {10, 100, 1000})") == 1 * 10 + 3 * 100 + 6 * 1000.0);
    CHECK(get_num(L, "v:sdot(vec.from{1, 3, 6}, vec.from{10, 100, 1000})") == 6310);
    CHECK(get_num(L, "v:sdot({2, 2}, vec.from{1, 1})") == 4);
    CHECK(get_num(L, "v:sdot({}, {})") == 0);
    CHECK(get_num(L, "v:sdot({6.0}, {1})") == 6);
    /* saxpy. */
    run(L, "assert(v:saxpy(2, {1, 6, 1}, {1, 1, 0.5}) == v)");
    struct udf_vec *v = get_vec(L, "v");
    CHECK(v->v[0] == 1 + 2 + 1 && v->v[5] == 6 + 2 && v->v[1] == 2);
    /* Errors, and saxpy leaves v unchanged on error. */
    run(L, "before = v:copy()");
    CHECK_LUA_ERR(L, "v:saxpy(1, {1, 7}, {1, 1})",
                  "eddy.vec: index 7 out of range 1..6 (sparse entry 2)");
    CHECK_LUA_ERR(L, "v:saxpy(1, {1, 0}, {1, 1})",
                  "eddy.vec: index 0 out of range 1..6 (sparse entry 2)");
    CHECK_LUA_ERR(L, "v:saxpy(1, {1, 1.5}, {1, 1})",
                  "eddy.vec: index 1.5 is not an integer (sparse entry 2)");
    CHECK_LUA_ERR(L, "v:saxpy(1, {1, 2}, {1, 'x'})",
                  "eddy.vec: element 2 is not a number (a string)");
    CHECK_LUA_ERR(L, "v:saxpy(1, {1, 2}, {1})", "eddy.vec: length mismatch (2 vs 1)");
    CHECK_LUA_ERR(L, "v:saxpy(1, vec.from{1, 0/0}, {1, 1})", "is not an integer (sparse entry 2)");
    CHECK_LUA_ERR(L, "v:saxpy(1, {1, 2^70}, {1, 1})",
                  "index 1.1805916207174e+21 out of range 1..6");
    CHECK_LUA_ERR(L, "v:saxpy(1, 5, {1})", "eddy.vec or table expected, got number");
    CHECK_LUA_ERR(L, "v:sdot({1, 2}, {1, nil})", "eddy.vec: length mismatch (2 vs 1)");
    CHECK_LUA_ERR(L, "v:sdot({9}, {1})", "eddy.vec: index 9 out of range 1..6 (sparse entry 1)");
    CHECK_LUA_ERR(L, "v:sdot({1}, {true})", "element 1 is not a number (a boolean)");
    CHECK_LUA_STR(L, "tostring(v == before)", "true");
    /* Aliasing: idx is v itself (values 1..6 are valid indices here). */
    run(L, "u = vec.from{1, 2, 3}; u:saxpy(1, u, vec.from{0, 0, 0}); "
           "assert(u == vec.from{1, 2, 3})");

    /* Sparse encoding: exact bytes, round trip, errors. */
    CHECK_LUA_STR(L, "(vec.encode_sparse({3, 1}, {0.5, -1}):gsub('.', function(c) "
                     "return string.format('%02x', c:byte()) end))",
                  "45567331" "02000000" "03000000" "01000000" "000000000000e03f"
                  "000000000000f0bf");
    run(L, "i, x = vec.decode_sparse(vec.encode_sparse(vec.from{5, 134217728, 1}, {1, 2, 1/0}))");
    CHECK_LUA_STR(L, "tostring(i) .. ' ' .. tostring(x)",
                  "vec(3)[5, 134217728, 1] vec(3)[1, 2, inf]");
    run(L, "i, x = vec.decode_sparse(vec.encode_sparse({}, {}))");
    CHECK_LUA_STR(L, "#i .. ' ' .. #x", "0 0");
    CHECK_LUA_ERR(L, "vec.encode_sparse({0}, {1})", "eddy.vec: index 0 out of range 1..134217728");
    CHECK_LUA_ERR(L, "vec.encode_sparse({2^27 + 1}, {1})", "out of range 1..134217728");
    CHECK_LUA_ERR(L, "vec.encode_sparse({1, 2}, {1})", "eddy.vec: length mismatch (2 vs 1)");
    /* Corrupt sparse inputs: every truncation, zero and too-large indices. */
    run(L, "good = vec.encode_sparse({1, 2, 3}, {1, 2, 3}) "
           "for n = 0, #good - 1 do local ok, err = pcall(vec.decode_sparse, good:sub(1, n)) "
           "  assert(not ok and err:find('eddy.vec.decode_sparse: ', 1, true), n) end "
           "assert(not pcall(vec.decode_sparse, good .. '\\0'))");
    CHECK_LUA_ERR(L, "vec.decode_sparse('EVs1\\1\\0\\0\\0\\0\\0\\0\\0' .. ('\\0'):rep(8))",
                  "eddy.vec.decode_sparse: index 0 out of range 1..134217728 (entry 1)");
    CHECK_LUA_ERR(L, "vec.decode_sparse('EVs1\\1\\0\\0\\0\\1\\0\\0\\9' .. ('\\0'):rep(8))",
                  "eddy.vec.decode_sparse: index 150994945 out of range");
    CHECK_LUA_ERR(L, "vec.decode_sparse('EVs1\\1\\0\\0\\0\\1\\0\\0\\0' .. ('\\0'):rep(7))",
                  "size mismatch (1 elements need 20 bytes, got 19)");
    /* Sparse ops against a naive C loop on a bigger case. */
    run(L, "math.randomseed(11) d = vec.new(1000) for k = 1, #d do d[k] = math.random() end "
           "idx, vals = {}, {} for k = 1, 300 do idx[k] = math.random(1, 1000) vals[k] = "
           "math.random() - 0.5 end iv, vv = vec.from(idx), vec.from(vals) "
           "e = d:copy():saxpy(-1.25, iv, vals) "
           "sd = d:sdot(idx, vv)");
    struct udf_vec *dv = get_vec(L, "d"), *ev = get_vec(L, "e"), *iv = get_vec(L, "iv"),
                   *vv = get_vec(L, "vv");
    double *want = malloc(1000 * sizeof(double));
    CHECK(want != NULL);
    memcpy(want, dv->v, 1000 * sizeof(double));
    double sd = 0;
    for (int k = 0; k < 300; k++) {
        size_t i = (size_t)iv->v[k] - 1;
        sd += dv->v[i] * vv->v[k];
        want[i] += -1.25 * vv->v[k];
    }
    CHECK(memcmp(want, ev->v, 1000 * sizeof(double)) == 0);
    CHECK(get_num(L, "sd") == sd);
    free(want);
    lua_close(L);
}

/* A Lua allocator with a cap, as the sandbox has: big vectors and big gsub results
 * fail with Lua's memory error and leave the state usable. */
struct capped {
    size_t used, cap;
};

static void *capped_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    struct capped *c = ud;
    size_t old = p != NULL ? osize : 0;
    if (nsize == 0) {
        free(p);
        c->used -= old;
        return NULL;
    }
    if (nsize > old && c->used + (nsize - old) > c->cap)
        return NULL;
    void *q = realloc(p, nsize);
    if (q != NULL)
        c->used = c->used - old + nsize;
    return q;
}

/* CSR matrices: encoding, products and the regression kernel against plain Lua
 * arithmetic on the same rows (the same operations in the same order: equal bits). */
TEST(vec_csr)
{
    lua_State *L = new_state(NULL);
    run(L, "rows = {{1, 3}, {}, {2, 2, 4}}; vals = {{0.5, 2}, {}, {1, -1, 3}}\n"
           "s = vec.encode_csr(4, rows, vals); X = vec.decode_csr(s)");
    CHECK_LUA_STR(L, "#s", "92"); /* 16 + 4 * 4 + 12 * 5 */
    CHECK_LUA_STR(L, "tostring(X)", "csr(3 x 4, 5 entries)");
    CHECK_LUA_STR(L, "#X .. ' ' .. X:rows() .. ' ' .. X:cols() .. ' ' .. X:nnz()", "3 3 4 5");
    CHECK_LUA_STR(L, "getmetatable(X)", "eddy.csr");
    CHECK_LUA_STR(L, "tostring(vec.ismatrix(X)) .. tostring(vec.ismatrix(s))", "truefalse");
    CHECK_LUA_STR(L, "(function() local i, v = X:row(3); return tostring(i) .. tostring(v) end)()",
                  "vec(3)[2, 2, 4]vec(3)[1, -1, 3]");
    CHECK_LUA_STR(L, "(function() local i, v = X:row(2); return #i .. #v end)()", "00");
    CHECK_LUA_STR(L, "tostring(X:mul(vec.from{1, 10, 100, 1000}))", "vec(3)[200.5, 0, 3000]");
    CHECK_LUA_STR(L, "tostring(X:tmul(vec.from{1, 5, 2}, vec.from{1, 1, 1, 1}))",
                  "vec(4)[1.5, 1, 3, 7]");
    /* No values: every value is 1; decoding from an offset inside a string. */
    CHECK_LUA_STR(L, "tostring(vec.decode_csr('head' .. vec.encode_csr(3, {{1}, {3, 3}}), 5)"
                     ":mul(vec.from{2, 0, 5}))",
                  "vec(2)[2, 10]");
    /* Logistic regression: the kernel against the same arithmetic in Lua. */
    run(L, "function ref(X, W, y, test)\n"
           "  local K = #W; local G = {}; for k = 1, K do G[k] = vec.new(X:cols()) end\n"
           "  local st = {0, 0.0, 0, 0, 0.0, 0}\n"
           "  for r = 1, X:rows() do\n"
           "    local idx, val = X:row(r); local yr = y:byte(r); local held = test and test:byte(r) ~= 0\n"
           "    local l, pred\n"
           "    if K == 1 then\n"
           "      local z = W[1]:sdot(idx, val); local e, p\n"
           "      if z >= 0 then e = math.exp(-z); p = 1 / (1 + e); l = yr == 1 and math.log(1 + e) or z + math.log(1 + e)\n"
           "      else e = math.exp(z); p = e / (1 + e); l = yr == 1 and -z + math.log(1 + e) or math.log(1 + e) end\n"
           "      pred = z > 0 and 1 or 0\n"
           "      if not held then G[1]:saxpy(p - yr, idx, val) end\n"
           "    else\n"
           "      local s, e, m, Z = {}, {}, -math.huge, 0.0; pred = 0\n"
           "      for k = 1, K do s[k] = W[k]:sdot(idx, val); if s[k] > m then m, pred = s[k], k - 1 end end\n"
           "      for k = 1, K do e[k] = math.exp(s[k] - m); Z = Z + e[k] end\n"
           "      l = math.log(Z) + m - s[yr + 1]\n"
           "      if not held then for k = 1, K do G[k]:saxpy(e[k] / Z - (k == yr + 1 and 1 or 0), idx, val) end end\n"
           "    end\n"
           "    local hit = pred == yr and 1 or 0\n"
           "    if held then st[4], st[5], st[6] = st[4] + 1, st[5] + l, st[6] + hit\n"
           "    else st[1], st[2], st[3] = st[1] + 1, st[2] + l, st[3] + hit end\n"
           "  end\n"
           "  return st, G\n"
           "end\n"
           "math.randomseed(7)\n"
           "rows, vals = {}, {}\n"
           "for r = 1, 200 do rows[r], vals[r] = {}, {}\n"
           "  for k = 1, math.random(0, 12) do rows[r][k] = math.random(1, 50); vals[r][k] = math.random() * 4 - 2 end end\n"
           "X = vec.decode_csr(vec.encode_csr(50, rows, vals))\n"
           "function rnd(n) local v = vec.new(n); for i = 1, n do v[i] = math.random() - 0.5 end; return v end\n"
           "function labels(K) local t = {}; for r = 1, 200 do t[r] = string.char(math.random(0, K - 1)) end; return table.concat(t) end\n"
           "test = {}; for r = 1, 200 do test[r] = string.char(math.random() < 0.2 and 1 or 0) end; test = table.concat(test)\n"
           "function same(K)\n"
           "  local W = {}; for k = 1, K do W[k] = rnd(50) end\n"
           "  local y = labels(K == 1 and 2 or K)\n"
           "  local st, Gr = ref(X, W, y, test)\n"
           "  local G = {}; for k = 1, K do G[k] = vec.new(50) end\n"
           "  local got = {X:glm_grad(K == 1 and W[1] or W, K == 1 and G[1] or G, y, test)}\n"
           "  for i = 1, 6 do if got[i] ~= st[i] then return 'stat ' .. i .. ': ' .. tostring(got[i]) .. ' vs ' .. tostring(st[i]) end end\n"
           "  for k = 1, K do if not (G[k] == Gr[k]) then return 'gradient ' .. k end end\n"
           "  return 'same ' .. got[1] .. ' ' .. got[4]\n"
           "end");
    CHECK_LUA_STR(L, "same(1)", "same 167 33");
    CHECK_LUA_STR(L, "same(5)", "same 167 33");
    /* Without test flags every row is a training row. */
    CHECK_LUA_STR(L, "select(1, X:glm_grad(vec.new(50), vec.new(50), labels(2)))", "200");
    lua_close(L);
}

TEST(vec_nonzeros)
{
    lua_State *L = new_state(NULL);
    CHECK_LUA_STR(L, "(function() local i, v = vec.from{0, 2.5, 0, -1, 0/0, 0}:nonzeros()\n"
                     "return tostring(i) .. v[1] .. ' ' .. v[2] .. ' ' .. tostring(v[3] ~= v[3]) end)()",
                  "vec(3)[2, 4, 5]2.5 -1.0 true"); /* NaN counts as non-zero */
    CHECK_LUA_STR(L, "(function() local i, v = vec.new(4):nonzeros() return #i .. #v end)()", "00");
    /* Added back with saxpy, the non-zeros rebuild the vector. */
    CHECK_LUA_STR(L, "(function() local w = vec.from{0, 3, 0, 0, 7}\n"
                     "local i, v = w:nonzeros() return tostring(vec.new(5):saxpy(1, i, v) == w) end)()",
                  "true");
    lua_close(L);
}

TEST(vec_csr_errors)
{
    lua_State *L = new_state(NULL);
    run(L, "s = vec.encode_csr(4, {{1, 3}, {2}}); X = vec.decode_csr(s)");
    CHECK_LUA_ERR(L, "vec.encode_csr(4, {{5}})", "index 5 out of range 1..4");
    CHECK_LUA_ERR(L, "vec.encode_csr(4, {{1, 2}}, {{1}})", "row 1 has 2 indices and 1 values");
    CHECK_LUA_ERR(L, "vec.encode_csr(-1, {})", "columns -1 out of range");
    CHECK_LUA_ERR(L, "vec.decode_csr('EVm1')", "bad magic or too short");
    CHECK_LUA_ERR(L, "vec.decode_csr(s:sub(1, -2))", "size mismatch");
    CHECK_LUA_ERR(L, "vec.decode_csr(s .. 'x')", "size mismatch");
    CHECK_LUA_ERR(L, "vec.decode_csr(s, 0)", "init 0 out of range");
    CHECK_LUA_ERR(L, "vec.decode_csr(s, #s + 2)", "out of range");
    /* An index beyond the columns, offsets that decrease or do not end at nnz. */
    CHECK_LUA_ERR(L, "vec.decode_csr(s:sub(1, 28) .. string.pack('<I4', 9) .. s:sub(33))",
                  "column index out of range");
    CHECK_LUA_ERR(L, "vec.decode_csr(s:sub(1, 20) .. string.pack('<I4', 4) .. s:sub(25))",
                  "row offsets must not decrease");
    CHECK_LUA_ERR(L, "vec.decode_csr(s:sub(1, 24) .. string.pack('<I4', 2) .. s:sub(29))",
                  "row offsets must end at the number of entries");
    CHECK_LUA_ERR(L, "X:mul(vec.new(3))", "w has 3 elements, the matrix needs 4");
    CHECK_LUA_ERR(L, "X:tmul(vec.new(2), vec.new(5))", "g has 5 elements");
    CHECK_LUA_ERR(L, "X:row(3)", "row 3 out of range 1..2");
    CHECK_LUA_ERR(L, "X:glm_grad(vec.new(4), vec.new(4), 'a')", "one byte per row");
    CHECK_LUA_ERR(L, "X:glm_grad(vec.new(4), vec.new(4), '\\0\\2')", "label is out of range 0..1");
    CHECK_LUA_ERR(L, "X:glm_grad({vec.new(4), vec.new(4)}, {vec.new(4)}, '\\0\\1')", "2..64 vectors");
    CHECK_LUA_ERR(L, "local w = vec.new(4); X:glm_grad(w, w, '\\0\\1')", "distinct");
    CHECK_LUA_ERR(L, "X.nosuch()", "attempt to call");
    lua_close(L);
}

TEST(vec_and_patterns_under_memory_cap)
{
    struct capped c = {0, 8 << 20};
    lua_State *L = lua_newstate(capped_alloc, &c);
    CHECK(L != NULL);
    luaL_openlibs(L);
    lua_getglobal(L, "string");
    udf__open_patterns(L, NULL);
    lua_pop(L, 1);
    udf__open_vec(L);
    lua_setglobal(L, "vec");
    CHECK_LUA_ERR(L, "local v = vec.new(2^27)", "not enough memory");
    CHECK_LUA_ERR(L, "local v = vec.new(2^20)", "not enough memory");
    CHECK_LUA_ERR(L, "local s = vec.new(2^19):encode()", "not enough memory");
    CHECK_LUA_ERR(L, "local s = string.gsub(('x'):rep(2^20), 'x', 'yyyyyyyy')",
                  "not enough memory");
    CHECK_LUA_ERR(L, "local t = {} for w in string.gmatch(('ab '):rep(2^20 // 3), '%a+') do "
                     "t[#t + 1] = w end",
                  "not enough memory");
    run(L, "local v = vec.new(1000):fill(2); assert(v:sum() == 2000); "
           "assert(string.gsub('abc', '%w', '%0%0') == 'aabbcc')");
    lua_close(L);
    CHECK_EQ_INT(c.used, 0);
}

/* ---- Patterns: differential tests against Lua 5.4's string library ------------------------- */

/* Lua harness: compare(lib_a, lib_b, fn, args...) serializes the outcome (results
 * with their types, or the error message) of lib.fn(args...) for both libraries. All
 * calls go through the same call sites so argument errors name the same function. */
static const char *harness =
    "local function ser(v)\n"
    "  local t = type(v)\n"
    "  if t == 'string' then return string.format('%q', v)\n"
    "  elseif t == 'number' then return math.type(v) .. ':' .. string.format('%.17g', v)\n"
    "  else return t .. ':' .. tostring(v) end\n"
    "end\n"
    "local function serall(r)\n"
    "  local o = {}\n"
    "  for i = 1, r.n do o[i] = ser(r[i]) end\n"
    "  return table.concat(o, ',')\n"
    "end\n"
    /* Called from a Lua call site, so that argument errors name the function after
     * the local 'f' for both libraries (a direct pcall would name Lua's own functions
     * after their package.loaded entry, 'string.find', and ours '?'). */
    "local function plain(lib, fn, ...)\n"
    "  local f = lib[fn]\n"
    "  local r = table.pack(pcall(function(...)\n"
    "    local res = table.pack(f(...))\n"
    "    return table.unpack(res, 1, res.n)\n"
    "  end, ...))\n"
    "  return serall(r)\n"
    "end\n"
    /* gmatch: every step, at most 100. */
    "local function gm(lib, s, p, init)\n"
    "  local out = {}\n"
    "  local ok, err = pcall(function()\n"
    "    local it = lib.gmatch(s, p, init)\n"
    "    for i = 1, 100 do\n"
    "      local r = table.pack(it())\n"
    "      out[#out + 1] = serall(r)\n"
    "      if r[1] == nil then break end\n"
    "    end\n"
    "  end)\n"
    "  if not ok then out[#out + 1] = 'error:' .. tostring(err) end\n"
    "  return table.concat(out, ';')\n"
    "end\n"
    /* gsub with a logging function replacement whose answers depend on the call
     * number: string, nil, false, number, then every 7th a table (an error). */
    "local log\n"
    "local calls = 0\n"
    "local function frepl(...)\n"
    "  local a = table.pack(...)\n"
    "  log[#log + 1] = serall(a)\n"
    "  calls = calls + 1\n"
    "  local k = calls % 5\n"
    "  if k == 0 then return '<' .. tostring(a[1]) .. '>'\n"
    "  elseif k == 1 then return nil\n"
    "  elseif k == 2 then return false\n"
    "  elseif k == 3 then return calls\n"
    "  elseif calls % 7 == 0 then return {} end\n"
    "  return tostring(a[a.n]):upper()\n"
    "end\n"
    "local trepl = {a = 'A', b = false, ['1'] = 1.5, [''] = 'E', ab = 'X', c = {}}\n"
    "local function gs(lib, s, p, r, n)\n"
    "  log = {}\n"
    "  calls = 0\n"
    "  if r == 'F' then r = frepl elseif r == 'T' then r = trepl end\n"
    "  local res = plain(lib, 'gsub', s, p, r, n)\n"
    "  return res .. ' log=' .. table.concat(log, '|')\n"
    "end\n"
    "function outcome(lib, what, s, p, a, b)\n"
    "  if what == 'find' then return plain(lib, 'find', s, p, a, b)\n"
    "  elseif what == 'match' then return plain(lib, 'match', s, p, a)\n"
    "  elseif what == 'gmatch' then return gm(lib, s, p, a)\n"
    "  else return gs(lib, s, p, a, b) end\n"
    "end\n"
    "nfail, ncase, fails = 0, 0, {}\n"
    "function compare(what, s, p, a, b)\n"
    "  ncase = ncase + 1\n"
    "  local want = outcome(string, what, s, p, a, b)\n"
    "  local got = outcome(mystr, what, s, p, a, b)\n"
    "  if want ~= got then\n"
    "    nfail = nfail + 1\n"
    "    if #fails < 8 then\n"
    "      fails[#fails + 1] = string.format('%s(%s, %s, %s, %s)\\n  lua: %s\\n  ours: %s',\n"
    "        what, ser(s), ser(p), ser(a), ser(b), want, got)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "function all4(s, p)\n"
    "  compare('find', s, p)\n"
    "  compare('match', s, p)\n"
    "  compare('gmatch', s, p)\n"
    "  compare('gsub', s, p, '[%0]')\n"
    "end\n";

/* Runs the harness and then code; fails with the first mismatches if any. Returns the
 * number of cases compared. */
static long differential(lua_State *L, const char *code)
{
    run(L, harness);
    run(L, code);
    lua_getglobal(L, "nfail");
    long nfail = (long)lua_tointeger(L, -1);
    lua_getglobal(L, "ncase");
    long ncase = (long)lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (nfail > 0) {
        lua_settop(L, 0);
        run(L, "return table.concat(fails, '\\n')");
        UNIT_FAIL("%ld of %ld cases differ from Lua:\n%s", nfail, ncase, lua_tostring(L, -1));
    }
    CHECK(ncase > 0);
    return ncase;
}

/* Subjects crossed with patterns, through all four functions. */
TEST(patterns_cross_product)
{
    lua_State *L = new_state(tick_counting);
    long n = differential(
        L,
        "local subjects = {'', 'a', 'aaa', 'abc', 'hello world', '  x = 10, y=2.5e3 ',\n"
        "  'THE (quick) [brown] {fox}', 'f(a(b)c)d((e)', 'x\\0y\\0z', '\\0',\n"
        "  '\\255\\128abc\\200',\n"
        "  'caf\\195\\169 \\226\\130\\172 \\240\\159\\152\\128', 'key=val; k2=v2;k3 = v3',\n"
        "  'THE END', 'aXbXcX', '%d%%', '^$^$', '[]]', 'line1\\nline2\\r\\n\\tx', 'abab',\n"
        "  'aaab', 'ababab', '12 34 5', '<a><b></b></a>', 'hello_there-you'}\n"
        "local patterns = {'', 'a', '.', '..', 'a*', 'a+', 'a-', 'a?', 'b*', '^a', 'a$', '^$',\n"
        "  '^', '$', 'x$y', 'a^', '%a+', '%A+', '%d+', '%D', '%l+', '%u+', '%s+', '%S+', '%w+',\n"
        "  '%W', '%p', '%P+', '%x+', '%X', '%c', '%C+', '%g+', '%G', '%.', '%%', '%z', '%Z+',\n"
        "  '[abc]', '[^abc]+', '[a-c]+', '[%a_]+', '[%d.e]+', '[]]', '[^]]+', '[a-]', '[-a]',\n"
        "  '[%]]', '[%-]', '[a%-z]+', '[^%s]+', '[\\0-\\31]', '[\\128-\\255]+', '[z-a]',\n"
        "  '(a)', '(a*)', '()', '()a()', '(a)(b)', '((a)(b))', '(a(b)c)', '(.)%1', '(a*)%1',\n"
        "  '(%a+)%s*=%s*(%w+)', '(h)(e)(l)(l)(o)', '()()()()()()()()()', '%b()', '%b<>',\n"
        "  '%b[]', '%bxx', '%b%%', '%f[%w]%w+', '%f[%W]', '%f[%a]', '%f[^%z]', '%f[%z]',\n"
        "  '%f[\\0]', '%f[^\\0]', '.-', '.-b', 'a.-b', '.*b', '(.-)%s', '^(%s*)(.-)(%s*)$',\n"
        "  'a-b', 'a*b+c?', '[%w_]*', '\\0', '\\0+', 'y\\0', '[\\0]', '%\\0', '\\195\\169',\n"
        "  '[\\226-\\240]', '(%S+)%s?', '(%d)%d', '%d%d?%d?', '(ab)+', 'x*$', '%a*$', '%1',\n"
        "  '(%1)', '(a%1)', '(()%1)', '%0', '(a', 'a)', '(a))', '%', 'a%', '[', '[a', '[^',\n"
        "  '[a-', '[%', '[%a', '%b', '%ba', '%f', '%fa', '%f[a', '%g', '(()', '((a)', '(.)%2',\n"
        "  '%B()', '%F[a]', '[^%]]', '[]', '[^]', '[]-a]', '*', '+a', '-', '?', 'a**', 'a+?',\n"
        "  '(a?)*', '$$', '^^', '^^a', '%^', '%$', '.%d', '[.]', '%.%.'}\n"
        "for _, s in ipairs(subjects) do for _, p in ipairs(patterns) do all4(s, p) end end\n");
    printf("  (%ld cross-product cases)\n", n);
    lua_close(L);
}

/* Hand-picked cases for init, plain, max n, replacements and error paths. */
TEST(patterns_edge_cases)
{
    lua_State *L = new_state(NULL);
    long n = differential(
        L,
        /* find: init (negative, zero, past the end, huge), plain. */
        "for _, init in ipairs({-100, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 100,\n"
        "    math.maxinteger, math.mininteger}) do\n"
        "  for _, p in ipairs({'', 'a', 'b', 'c', '.', '^a', '^b', '$', 'c$', '.-', '()',\n"
        "      'a.', '%', '[', '(', '(a)', 'x'}) do\n"
        "    compare('find', 'abcab', p, init)\n"
        "    compare('find', 'abcab', p, init, true)\n"
        "    compare('find', 'abcab', p, init, false)\n"
        "    compare('match', 'abcab', p, init)\n"
        "    compare('gmatch', 'abcab', p, init)\n"
        "    compare('find', '', p, init)\n"
        "    compare('match', '', p, init)\n"
        "    compare('gmatch', '', p, init)\n"
        "  end\n"
        "end\n"
        "compare('find', 'a+b', '+', 1, true)\n"
        "compare('find', 'a.b', '.', 1, 1)\n"
        "compare('find', 'a.b', '.', 3, 'yes')\n"
        "compare('find', 'x\\0y', '\\0', 1, true)\n"
        "compare('find', 'x\\0y', 'y\\0', 1)\n"
        "compare('find', 'x\\0y.', '\\0y.', 1)\n"
        "compare('find', 'x\\0y.', '\\0y%.', 1)\n"
        "compare('find', 'abc', 'b)', 1)\n"
        "compare('find', 'a)c', ')', 1)\n"
        "compare('match', 'a)c', ')', 1)\n"
        "compare('find', 12345, 34)\n"
        "compare('find', 12.5, '%.')\n"
        "compare('match', 2^53, '%d+')\n"
        "compare('gsub', 12345, 3, 9)\n"
        "compare('gsub', 'abc', 'b', 1.5)\n"
        "compare('gsub', 'abc', 'b', 7)\n"
        /* Argument errors. */
        "compare('find')\n"
        "compare('find', 'a')\n"
        "compare('find', {}, 'a')\n"
        "compare('find', 'a', 'a', 'x')\n"
        "compare('find', 'a', 'a', 1.5)\n"
        "compare('match', nil, 'a')\n"
        "compare('gmatch', 'a')\n"
        "compare('gmatch', 'a', 'a', 1.5)\n"
        "compare('gsub', 'a', 'a')\n"
        "compare('gsub', 'a', 'a', true)\n"
        "compare('gsub', 'a', 'a', 'b', 'x')\n"
        "compare('gsub', 'a', {}, 'b')\n"
        /* gsub: max n, anchors, string replacements. */
        "for _, n in ipairs({-1, 0, 1, 2, 3, 100, math.mininteger}) do\n"
        "  for _, p in ipairs({'a', '', '^a', '^', 'a*', '$', '%f[%w]', 'x*', '^a*', '.-'}) do\n"
        "    compare('gsub', 'abaab', p, '-', n)\n"
        "    compare('gsub', '', p, '-', n)\n"
        "  end\n"
        "end\n"
        "for _, r in ipairs({'', '%%', '%0', '%1', '%2', '%9', '[%0|%1]', '%', 'x%', '%a',\n"
        "    '%\\0',\n"
        "    '%%%1%%', '%0%0', 'a%%b', '\\0%1\\0'}) do\n"
        "  for _, p in ipairs({'a', '(a)', '(a)(b)', '()a', 'a()', '(a', 'a*', '()', '(a)%1'}) do\n"
        "    compare('gsub', 'xabaab', p, r)\n"
        "  end\n"
        "end\n"
        "compare('gsub', 'hello world', '(%w+)', '%1 %1')\n"
        "compare('gsub', 'hello world', '%w+', '%0 %0', 1)\n"
        "compare('gsub', 'hello world from Lua', '(%w+)%s*(%w+)', '%2 %1')\n"
        "compare('gsub', 'abc', '%w', '%1')\n"
        "compare('gsub', 'abc', '', '-')\n"
        "compare('gsub', 'abc', '()', '%1')\n"
        "compare('gsub', 'abc', 'b*', '-')\n"
        "compare('gsub', 'a,b,,c', '[^,]*', '<%0>')\n"
        /* Function and table replacements (logged calls, nil/false keep the match,
         * numbers, tables are errors). */
        "for _, s in ipairs({'', 'a', 'abc abc', 'a1b2c3', 'hello world', 'x\\0y'}) do\n"
        "  for _, p in ipairs({'', '.', '%w+', '(%w)(%w)', '()', '(a)', 'b', '((a)(b))',\n"
        "      '(%w)()', '.-', '$', '^.', '(a', '%f[%w]'}) do\n"
        "    for _, n in ipairs({-1, 1, 100}) do\n"
        "      compare('gsub', s, p, 'F', n)\n"
        "      compare('gsub', s, p, 'T', n)\n"
        "    end\n"
        "  end\n"
        "end\n"
        /* gmatch: anchors are literal, empty matches, position captures. */
        "for _, s in ipairs({'', 'aaa', '^a^a', 'hello world', 'a,b,,c', 'x\\0y\\0'}) do\n"
        "  for _, p in ipairs({'', '^', '^a', 'a*', '()', '(%w+)', '[^,]*', '%w*', '.-',\n"
        "      '()(.)()', '\\0', '$', '^$'}) do\n"
        "    for _, init in ipairs({-2, 0, 1, 2, 4, 10}) do compare('gmatch', s, p, init) end\n"
        "  end\n"
        "end\n"
        /* Depth limit (200) and capture limit (32) hit at the same place as Lua. */
        "for _, k in ipairs({190, 198, 199, 200, 201, 202, 250}) do\n"
        "  compare('match', ('a'):rep(300), ('a?'):rep(k))\n"
        "  compare('match', ('a'):rep(k), ('a?'):rep(k) .. '$')\n"
        "  compare('match', ('a'):rep(k), '^' .. ('a?'):rep(k) .. '$')\n"
        "  compare('find', ('a'):rep(300), ('a*'):rep(k))\n"
        "  compare('match', ('a'):rep(300), ('(a?)'):rep(k // 10))\n"
        "  compare('find', ('a'):rep(k), ('(a)'):rep(math.min(k, 40)))\n"
        "  compare('gsub', ('a'):rep(k), ('%f[a]a?'):rep(k), 'x')\n"
        "end\n"
        "for k = 30, 34 do\n"
        "  compare('match', ('a'):rep(40), ('(a)'):rep(k))\n"
        "  compare('match', ('a'):rep(40), ('()'):rep(k))\n"
        "  compare('match', ('a'):rep(40), ('('):rep(k) .. ('a)'):rep(k))\n"
        "  compare('gsub', ('a'):rep(40), ('(a)'):rep(k), '%1')\n"
        "  compare('gsub', ('a'):rep(40), ('(a)'):rep(k), 'F')\n"
        "end\n"
        "compare('match', 'a', ('('):rep(33) .. 'a' .. (')'):rep(33))\n"
        /* Long subjects. */
        "local long = ('ab'):rep(5000) .. 'c'\n"
        "compare('find', long, 'c')\n"
        "compare('find', long, '(ab)*c')\n"
        "compare('match', long, '(.-)c')\n"
        "compare('gsub', long, 'ab', 'X')\n"
        "compare('gsub', long, '%f[a]', '|', 10)\n"
        "compare('match', long, '.*(a)')\n");
    printf("  (%ld edge cases)\n", n);
    lua_close(L);
}

/* Random patterns over a small alphabet, against random subjects. */
TEST(patterns_random)
{
    lua_State *L = new_state(NULL);
    long n = differential(
        L,
        "math.randomseed(20240607)\n"
        "local atoms = {'a', 'b', 'c', '.', '%a', '%d', '%s', '%w', '%A', '[ab]', '[^a]',\n"
        "  '[a-c]', '[%d]', '%%', '%(', '(', ')', '()', '%1', '%2', '%b()', '%bab', '%f[a]',\n"
        "  '%f[%w]', '%f[^a]', '^', '$', '%', '[', ']', '-', '\\0', '1', ' '}\n"
        "local quants = {'', '', '', '*', '+', '-', '?'}\n"
        "local chars = {'a', 'a', 'b', 'c', '(', ')', '1', '2', ' ', '\\0', 'x', '\\200'}\n"
        "local function rpat()\n"
        "  local t = {}\n"
        "  for i = 1, math.random(1, 6) do\n"
        "    t[#t + 1] = atoms[math.random(#atoms)] .. quants[math.random(#quants)]\n"
        "  end\n"
        "  return table.concat(t)\n"
        "end\n"
        "local function rsub()\n"
        "  local t = {}\n"
        "  for i = 1, math.random(0, 12) do t[i] = chars[math.random(#chars)] end\n"
        "  return table.concat(t)\n"
        "end\n"
        "local reps = {'x', '%0', '%1', '<%2>', '%%', 'F', 'T'}\n"
        "for i = 1, 4000 do\n"
        "  local s, p = rsub(), rpat()\n"
        "  local init = math.random(-3, 14)\n"
        "  compare('find', s, p, init)\n"
        "  compare('match', s, p, init)\n"
        "  compare('gmatch', s, p, init)\n"
        "  compare('gsub', s, p, reps[math.random(#reps)], math.random(-1, 5))\n"
        "end\n");
    printf("  (%ld random cases)\n", n);
    lua_close(L);
}

/* ---- Patterns: budget ------------------------------------------------------------------------ */

TEST(patterns_tick_stops_exponential_find)
{
    tick_calls = 0;
    tick_limit = 2000; /* about 8 million steps */
    lua_State *L = new_state(tick_counting);
    double t0 = now_s();
    CHECK_LUA_ERR(L, "return mystr.find(string.rep('a', 100000), string.rep('a*', 20) .. 'b')",
                  "tick: time limit");
    CHECK_EQ_INT(tick_calls, 2000);
    tick_calls = 0;
    CHECK_LUA_ERR(L, "return mystr.match(('a'):rep(30000), '.-.-.-.-.-.-b')", "tick: time limit");
    tick_calls = 0;
    CHECK_LUA_ERR(L, "return mystr.gsub(('a'):rep(30000), '.-.-.-.-.-.-b', 'x')",
                  "tick: time limit");
    tick_calls = 0;
    CHECK_LUA_ERR(L, "for x in mystr.gmatch(('a'):rep(30000), '.-.-.-.-.-.-b') do end",
                  "tick: time limit");
    tick_calls = 0;
    /* Also inside a gsub whose replacement function runs Lua code. */
    CHECK_LUA_ERR(L, "return mystr.gsub(('a'):rep(3000), 'a', function(x) "
                     "return mystr.match(('a'):rep(30000), '.-.-.-.-.-.-b') end)",
                  "tick: time limit");
    tick_calls = 0;
    /* Balanced and back-reference scans are counted too. */
    CHECK_LUA_ERR(L, "return mystr.find(('('):rep(20000), '%b()')", "tick: time limit");
    tick_calls = 0;
    CHECK_LUA_ERR(L, "return mystr.find(('a'):rep(100000), '(a*)%1%1b')", "tick: time limit");
    double dt = now_s() - t0;
    printf("  (stopped 7 runaway matches in %.2f s)\n", dt);
    /* The state is still usable after the errors. */
    CHECK_LUA_STR(L, "mystr.match('key=val', '(%w+)=(%w+)')", "key");
    lua_close(L);
}

TEST(patterns_default_limit_without_tick)
{
    lua_State *L = new_state(NULL);
    double t0 = now_s();
    CHECK_LUA_ERR(L, "return mystr.find(string.rep('a', 100000), string.rep('a*', 20) .. 'b')",
                  "pattern matching too complex");
    double dt = now_s() - t0;
    /* About 1 s plain, 35 s under valgrind: the test's 60 s alarm is the bound. */
    printf("  (100M steps took %.2f s)\n", dt);
    lua_close(L);
}

TEST(patterns_tick_rate)
{
    tick_calls = 0;
    tick_limit = 0; /* count only */
    lua_State *L = new_state(tick_counting);
    /* A linear scan of 1 MB: a few steps per byte, so a few hundred ticks. */
    run(L, "s = ('x'):rep(1000000) .. 'y'; assert(mystr.find(s, 'x*y') == 1)");
    CHECK(tick_calls >= 1000000 / 4096 && tick_calls < 4000);
    int before = tick_calls;
    /* No ticks for a tiny match, or for a plain find (linear memmem). */
    run(L, "assert(mystr.find('abc', 'b') == 2); assert(mystr.find(s, 'y', 1, true) == 1000001)");
    CHECK_EQ_INT(tick_calls, before);
    lua_close(L);
}

/* The functions only replace the four fields and keep the table's other entries. */
TEST(patterns_open_replaces_fields)
{
    lua_State *L = new_state(NULL);
    CHECK_LUA_STR(L, "tostring(mystr.find ~= string.find and mystr.gsub ~= string.gsub and "
                     "mystr.match ~= string.match and mystr.gmatch ~= string.gmatch and "
                     "mystr.rep == string.rep and mystr.format == string.format)",
                  "true");
    /* Method syntax when the string metatable points at the budgeted table. */
    run(L, "getmetatable('').__index = mystr");
    CHECK_LUA_STR(L, "('hello world'):gsub('o', '0')", "hell0 w0rld");
    CHECK_LUA_STR(L, "select(2, ('a,b,c'):find(',', 3, true))", "4");
    lua_close(L);
}

/* ---- The registry's library generation ---------------------------------------------------- */

struct gen_load {
    struct udf *u;
    int rc;
};

static void *load_other_lib(void *arg)
{
    struct gen_load *l = arg;
    static const char lib[] = "#!lua name=otherlib\n"
                              "redis.register_function('otherf', function() return 2 end)";
    struct cm_buf name;
    cm_buf_init(&name);
    struct cm_err err = {0};
    l->rc = udf_lib_load(l->u, lib, strlen(lib), false, &name, &err);
    cm_buf_deinit(&name);
    return NULL;
}

/* udf_lib_generation moves with every change of the libraries the calling thread makes
 * and with nothing else: a cluster's coordinator forwards a failed FUNCTION command
 * when it moved (the change was applied here), so a SCRIPT FLUSH, or a change another
 * thread makes meanwhile (a forwarded CLUSTER FUNCTION EPOCH), must not move it. */
TEST(lib_generation_counts_library_changes_only)
{
    char dir[] = "/tmp/eddy-test-udflib-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct eng_options o;
    eng_options_init(&o);
    o.dir = dir;
    o.block_cache_bytes = 8 << 20;
    o.memtable_bytes = 8 << 20;
    struct cm_err err = {0};
    struct eng *e = eng_open(&o, &err);
    CHECK(e != NULL);
    struct udf *u = udf_new(e, NULL, &err);
    CHECK(u != NULL);
    static const char lib[] = "#!lua name=genlib\n"
                              "redis.register_function('genf', function() return 1 end)";
    struct cm_buf name;
    cm_buf_init(&name);
    char sha[41];
    unsigned long long g = udf_lib_generation(u);
    CHECK_EQ_INT(udf_lib_load(u, lib, strlen(lib), false, &name, &err), 0);
    CHECK(udf_lib_generation(u) == g + 1);
    CHECK(udf_lib_load(u, lib, strlen(lib), false, &name, &err) != 0); /* exists */
    CHECK(udf_lib_load(u, "#!lua name=bad\n(", 17, false, &name, &err) != 0);
    CHECK(udf_lib_generation(u) == g + 1);
    CHECK_EQ_INT(udf_script_load(u, "return 1", 8, sha, &err), 0);
    CHECK_EQ_INT(udf_script_flush(u, &err), 0);
    CHECK(!udf_script_exists(u, sha, 40));
    CHECK(udf_lib_generation(u) == g + 1);
    CHECK(udf_lib_delete(u, "nolib", 5, &err) != 0);
    CHECK(udf_lib_generation(u) == g + 1);
    CHECK_EQ_INT(udf_lib_delete(u, "genlib", 6, &err), 0);
    CHECK(udf_lib_generation(u) == g + 2);
    struct gen_load other = {.u = u, .rc = -1};
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, load_other_lib, &other), 0);
    CHECK_EQ_INT(pthread_join(t, NULL), 0);
    CHECK_EQ_INT(other.rc, 0);
    CHECK(udf_lib_generation(u) == g + 2);
    CHECK_EQ_INT(udf_lib_delete(u, "otherlib", 8, &err), 0);
    CHECK(udf_lib_generation(u) == g + 3);
    cm_buf_deinit(&name);
    udf_free(u);
    eng_close(e);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
    RUN(sha1_fips_vectors);
    RUN(sha1_block_boundaries);
    RUN(lib_generation_counts_library_changes_only);
    RUN(vec_c_api);
    RUN(vec_c_api_errors);
    RUN(vec_basics);
    RUN(vec_errors);
    RUN(vec_dense_math_matches_naive_c);
    RUN(vec_encode_decode_round_trip);
    RUN(vec_decode_rejects_corrupt_input);
    RUN(vec_sparse);
    RUN(vec_csr);
    RUN(vec_csr_errors);
    RUN(vec_nonzeros);
    RUN(vec_and_patterns_under_memory_cap);
    RUN(patterns_cross_product);
    RUN(patterns_edge_cases);
    RUN(patterns_random);
    RUN(patterns_tick_stops_exponential_find);
    RUN(patterns_default_limit_without_tick);
    RUN(patterns_tick_rate);
    RUN(patterns_open_replaces_fields);
    return unit_done();
}
