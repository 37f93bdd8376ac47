/* fuzz_decoders.c - libFuzzer target for every decoder of stored or streamed bytes:
 *   byte 0 % 6 == 0: eng_decode_value (a stored value: type, flags, expiry, payload);
 *               1: eddy.vec.decode (dense vectors), then encode must give the input back;
 *               2: eddy.vec.decode_sparse, then encode_sparse must give the input back;
 *               3: udf__ser_decode (MAPREDUCE partial results), then encode and decode
 *                  again: same size, decodes again;
 *               4: eddy.vec.decode_csr (sparse matrices, common/csr.c), then encode_csr of
 *                  its rows must give the input back, and the products run;
 *               5: mr_unpack (a MAPREDUCE partial as it crosses the node bus: 'R' + raw
 *                  or 'Z' + zstd frame, at most 1 MB), then mr_pack of what came out
 *                  must unpack to the same bytes.
 * The rest of the input is the bytes to decode. zstd: RocksDB compresses its blocks
 * internally; eddy's own zstd streams are mode 5 here and slot migration's batches
 * (fuzz_migrate.c).
 * The Lua state has a 256 MB cap so that a huge announced length is refused, not
 * allocated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "../../engine/engine.h"
#include "../../net/net_int.h"
#include "../../udf/udf_int.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t lua_used;
#define LUA_CAP ((size_t)256 << 20)

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        lua_used -= osize;
        return NULL;
    }
    if (nsize > osize && lua_used + (nsize - osize) > LUA_CAP)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p != NULL)
        lua_used = lua_used - osize + nsize;
    return p;
}

static lua_State *L;

/* Mode 5: unpack a bus partial; what came out must survive mr_pack and mr_unpack. */
static void check_partial(const uint8_t *p, size_t n)
{
    enum { MAX = 1 << 20 };
    struct cm_buf out, packed, again;
    cm_buf_init(&out);
    cm_buf_init(&packed);
    cm_buf_init(&again);
    struct cm_err err = {0};
    int rc = mr_unpack((const char *)p, n, MAX, &out, &err);
    if (rc != 0 && (rc != CM_EPROTO || err.msg[0] == '\0'))
        abort();
    if (rc == 0 && (out.len > MAX || (p[0] == 'R' && out.len != n - 1) ||
                    (p[0] == 'R' && n > 1 && memcmp(out.p, p + 1, n - 1) != 0)))
        abort();
    if (rc == 0) {
        /* mr_pack writes one RESP bulk string: $<len> CR LF <payload> CR LF. */
        if (mr_pack(&packed, out.p, out.len) != 0 || packed.len < 4 || packed.p[0] != '$')
            abort();
        char *body = memchr(packed.p, '\n', packed.len);
        if (body == NULL)
            abort();
        body++;
        size_t bl = (size_t)(packed.p + packed.len - body) - 2;
        if ((size_t)strtoull(packed.p + 1, NULL, 10) != bl ||
            mr_unpack(body, bl, MAX, &again, &err) != 0 || again.len != out.len ||
            (out.len > 0 && memcmp(again.p, out.p, out.len) != 0))
            abort();
    }
    cm_buf_deinit(&out);
    cm_buf_deinit(&packed);
    cm_buf_deinit(&again);
}

static void check_value(const uint8_t *p, size_t n)
{
    struct eng_item it;
    memset(&it, 0, sizeof(it));
    if (eng_decode_value((const char *)p, n, &it) != 0)
        return;
    const char *b = (const char *)p;
    if (it.len > n || it.data < b || it.data + it.len > b + n)
        abort(); /* the payload must lie inside the input */
    if (it.type != ENG_T_STRING)
        abort(); /* only known types decode */
    /* The encoder writes an expiry only when it is > 0; the decoder also takes
     * flag 0x01 with an expiry <= 0 (a value eddy never writes), so compare the
     * round trip for what the encoder can express. */
    if (it.expire_ms < 0)
        it.expire_ms = 0;
    struct cm_buf out;
    cm_buf_init(&out);
    if (eng_encode_value(&out, it.type, it.expire_ms, it.data, it.len) != 0)
        abort();
    struct eng_item again;
    memset(&again, 0, sizeof(again));
    if (eng_decode_value(out.p, out.len, &again) != 0 || again.len != it.len ||
        again.expire_ms != it.expire_ms || again.type != it.type ||
        memcmp(again.data, it.data, it.len) != 0)
        abort();
    cm_buf_deinit(&out);
}

/* vec.decode(s):encode() == s, and the sparse pair. Runs in lua_pcall. */
static int vec_roundtrip(lua_State *S)
{
    bool sparse = lua_toboolean(S, 2);
    lua_getfield(S, 1, sparse ? "decode_sparse" : "decode");
    lua_pushvalue(S, 3);
    lua_call(S, 1, sparse ? 2 : 1);
    if (sparse) {
        lua_getfield(S, 1, "encode_sparse");
        lua_insert(S, -3);
        lua_call(S, 2, 1);
    } else {
        struct udf_vec *v = udf__checkvec(S, -1);
        (void)v;
        lua_getfield(S, -1, "encode");
        lua_insert(S, -2);
        lua_call(S, 1, 1);
    }
    size_t a, b;
    const char *x = lua_tolstring(S, 3, &a);
    const char *y = lua_tolstring(S, -1, &b);
    if (y == NULL || a != b || memcmp(x, y, a) != 0)
        abort(); /* decode and encode must be inverses */
    return 0;
}

static int ser_roundtrip(lua_State *S)
{
    size_t n;
    const char *p = lua_tolstring(S, 1, &n);
    if (udf__ser_decode(S, p, n) != 0)
        return 0;
    struct cm_buf b;
    cm_buf_init(&b);
    const char *why = NULL;
    int rc = udf__ser_encode(S, -1, 64u << 20, &b, &why);
    if (rc != 0) {
        /* Everything the decoder builds can be encoded again. */
        fprintf(stderr, "re-encoding a decoded value failed: %s\n", why ? why : "?");
        abort();
    }
    if (udf__ser_decode(S, b.p, b.len) != 0)
        abort();
    struct cm_buf c;
    cm_buf_init(&c);
    if (udf__ser_encode(S, -1, 64u << 20, &c, &why) != 0 || c.len != b.len)
        abort();
    cm_buf_deinit(&b);
    cm_buf_deinit(&c);
    return 0;
}

/* vec.decode_csr(s): rebuilt from its rows it is s again; mul and glm_grad run over it.
 * Runs in lua_pcall. */
static const char csr_check[] =
    "local vec, s = ...\n"
    "local X = vec.decode_csr(s)\n"
    "local rows, vals = {}, {}\n"
    "for r = 1, X:rows() do rows[r], vals[r] = X:row(r) end\n"
    "if vec.encode_csr(X:cols(), rows, vals) ~= s then error('ROUNDTRIP') end\n"
    "if X:cols() <= 4096 and X:rows() <= 4096 then\n"
    "  local w = vec.new(X:cols()):fill(0.5)\n"
    "  X:mul(w)\n"
    "  X:tmul(vec.new(X:rows()):fill(1), vec.new(X:cols()))\n"
    "  X:glm_grad(w, vec.new(X:cols()), string.rep('\\0', X:rows()))\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (L == NULL) {
        L = lua_newstate(capped_alloc, NULL);
        udf__open_vec(L);
        lua_setglobal(L, "vec");
    }
    int mode = data[0] % 6;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int top = lua_gettop(L);
    switch (mode) {
    case 0:
        check_value(p, n);
        break;
    case 1:
    case 2:
        lua_pushcfunction(L, vec_roundtrip);
        lua_getglobal(L, "vec");
        lua_pushboolean(L, mode == 2);
        lua_pushlstring(L, (const char *)p, n);
        lua_pcall(L, 3, 0, 0); /* errors are the decoder refusing bad input: fine */
        break;
    case 3:
        lua_pushcfunction(L, ser_roundtrip);
        lua_pushlstring(L, (const char *)p, n);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            const char *m = lua_tostring(L, -1);
            /* Only running out of the 256 MB cap may raise here. */
            if (m == NULL || strstr(m, "not enough memory") == NULL) {
                fprintf(stderr, "ser decode raised: %s\n", m ? m : "?");
                abort();
            }
        }
        break;
    case 4:
        if (luaL_loadstring(L, csr_check) != LUA_OK)
            abort();
        lua_getglobal(L, "vec");
        lua_pushlstring(L, (const char *)p, n);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
            const char *m = lua_tostring(L, -1);
            /* Refusing bad input or the memory cap is fine; a round trip that differs
             * is a bug. */
            if (m != NULL && strstr(m, "ROUNDTRIP") != NULL) {
                fprintf(stderr, "decode_csr round trip differs\n");
                abort();
            }
        }
        break;
    case 5:
        check_partial(p, n);
        break;
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
