/* vec.c - eddy.vec: dense float64 vectors for user Lua code, at C speed.
 *
 * A vector is a full userdata (struct udf_vec) with the metatable "eddy.vec"; all
 * loops run in C with no Lua work per element. Sparse operands are (index, value)
 * lists given as two vectors or two Lua array tables, read with lua_rawgeti. The API
 * and the binary formats are specified in docs/VEC.md; the C side in udf/udf_lib.h.
 * Uses the public Lua API only.
 */
#include "udf_lib.h"

#include "../common/common.h"

#include <lauxlib.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAGIC_DENSE "EVd1"
#define MAGIC_SPARSE "EVs1"
#define HEADER 8           /* magic + uint32 count */
#define SHOW_MAX 10        /* elements shown by __tostring */

static void ensure_meta(lua_State *L);

/* ---- C access ------------------------------------------------------------------------ */

/* Vector and matrix operations loop in C over all their elements, one instruction
 * for the count hook: a loop of v:fill(1) on 3 million elements overran a 200 ms limit
 * by 3.3 s. Each operation charges its operands' elements, and every 4 million the
 * time limit and kills are checked (udf__tick raises if the call must end). */
static _Atomic(udf_tick_fn) vec_tick; /* the server's (udf__vec_set_tick); NULL: none */
static _Thread_local size_t vec_work; /* elements since the last tick (a state per thread) */

void udf__vec_set_tick(udf_tick_fn tick)
{
    atomic_store_explicit(&vec_tick, tick, memory_order_relaxed);
}

static void charge(lua_State *L, size_t n)
{
    udf_tick_fn tick = atomic_load_explicit(&vec_tick, memory_order_relaxed);
    if (tick != NULL && (vec_work += n) >= (1u << 22)) {
        vec_work = 0;
        tick(L);
    }
}

struct udf_vec *udf__checkvec(lua_State *L, int idx)
{
    struct udf_vec *v = luaL_checkudata(L, idx, UDF_VEC_META);
    charge(L, v->n);
    return v;
}

struct udf_vec *udf__testvec(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, UDF_VEC_META);
}

struct udf_vec *udf__pushvec(lua_State *L, size_t n)
{
    if (n > UDF_VEC_MAX)
        luaL_error(L, "eddy.vec: size %I out of range 0..%I", (lua_Integer)n,
                   (lua_Integer)UDF_VEC_MAX);
    size_t bytes = sizeof(struct udf_vec) + n * sizeof(double);
    struct udf_vec *v = lua_newuserdatauv(L, bytes, 0);
    memset(v, 0, bytes);
    v->n = n;
    ensure_meta(L);
    lua_setmetatable(L, -2);
    return v;
}

/* ---- Argument helpers ------------------------------------------------------------------ */

/* Index argument arg (1-based, an integer) of v as a 0-based offset. */
static size_t check_index(lua_State *L, const struct udf_vec *v, int arg)
{
    int ok;
    lua_Integer i = lua_tointegerx(L, arg, &ok);
    if (!ok) {
        if (lua_type(L, arg) == LUA_TNUMBER)
            luaL_error(L, "eddy.vec: index %f is not an integer", lua_tonumber(L, arg));
        luaL_error(L, "eddy.vec: index must be an integer, got %s", luaL_typename(L, arg));
    }
    if (i < 1 || (lua_Unsigned)i > v->n)
        luaL_error(L, "eddy.vec: index %I out of range 1..%I", i, (lua_Integer)v->n);
    return (size_t)(i - 1);
}

/* An element value: a Lua number, no string coercion. */
static double check_value(lua_State *L, int arg)
{
    if (lua_type(L, arg) != LUA_TNUMBER)
        luaL_error(L, "eddy.vec: value must be a number, got %s", luaL_typename(L, arg));
    return lua_tonumber(L, arg);
}

/* Second vector operand of the same length as v. */
static const struct udf_vec *check_same(lua_State *L, const struct udf_vec *v, int arg)
{
    const struct udf_vec *w = udf__checkvec(L, arg);
    if (w->n != v->n)
        luaL_error(L, "eddy.vec: length mismatch (%I vs %I)", (lua_Integer)v->n,
                   (lua_Integer)w->n);
    return w;
}

/* A sparse operand: an eddy.vec or a Lua array table at stack index arg. */
struct list {
    const struct udf_vec *vec; /* NULL for a table */
    int arg;
    size_t n;
};

static void list_open(lua_State *L, int arg, struct list *l)
{
    l->arg = arg;
    l->vec = udf__testvec(L, arg);
    if (l->vec != NULL)
        l->n = l->vec->n;
    else if (lua_type(L, arg) == LUA_TTABLE)
        l->n = lua_rawlen(L, arg);
    else
        luaL_typeerror(L, arg, "eddy.vec or table");
}

/* Element k (0-based) of a list, which must be a number. */
static double list_get(lua_State *L, const struct list *l, size_t k)
{
    if (l->vec != NULL)
        return l->vec->v[k];
    if (lua_rawgeti(L, l->arg, (lua_Integer)k + 1) != LUA_TNUMBER)
        luaL_error(L, "eddy.vec: element %I is not a number (a %s)", (lua_Integer)k + 1,
                   luaL_typename(L, -1));
    double x = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return x;
}

/* Element k of an index list as a 0-based offset below n (the target's length). */
static size_t list_index(lua_State *L, const struct list *l, size_t k, size_t n)
{
    double x = list_get(L, l, k);
    if (x >= 1 && x <= (double)n && x == floor(x))
        return (size_t)x - 1;
    if (x != floor(x)) /* also NaN and infinities */
        luaL_error(L, "eddy.vec: index %f is not an integer (sparse entry %I)", x,
                   (lua_Integer)k + 1);
    if (fabs(x) < 0x1p62) /* print 7, not 7.0 */
        luaL_error(L, "eddy.vec: index %I out of range 1..%I (sparse entry %I)", (lua_Integer)x,
                   (lua_Integer)n, (lua_Integer)k + 1);
    luaL_error(L, "eddy.vec: index %f out of range 1..%I (sparse entry %I)", x, (lua_Integer)n,
               (lua_Integer)k + 1);
    return 0;
}

/* Opens the (idx, vals) pair at args ai, ai + 1 and checks their lengths. */
static size_t pair_open(lua_State *L, int ai, struct list *idx, struct list *vals)
{
    list_open(L, ai, idx);
    list_open(L, ai + 1, vals);
    if (idx->n != vals->n)
        luaL_error(L, "eddy.vec: length mismatch (%I vs %I)", (lua_Integer)idx->n,
                   (lua_Integer)vals->n);
    return idx->n;
}

/* ---- Little-endian encoding -------------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t x)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(x >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_f64(unsigned char *p, double d)
{
    uint64_t x;
    memcpy(&x, &d, 8);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(x >> (8 * i));
}

static double get_f64(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | p[i];
    double d;
    memcpy(&d, &x, 8);
    return d;
}

/* n doubles from / to little-endian bytes: one copy on little-endian hosts (a dense
 * model of 2^18 weights is decoded and encoded every training epoch). */
static void get_f64s(double *d, const unsigned char *p, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(d, p, 8 * n);
#else
    for (size_t k = 0; k < n; k++)
        d[k] = get_f64(p + 8 * k);
#endif
}

static void put_f64s(unsigned char *p, const double *d, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, d, 8 * n);
#else
    for (size_t k = 0; k < n; k++)
        put_f64(p + 8 * k, d[k]);
#endif
}

/* Checks the header of an encoded string and returns its count. per is the size of one
 * element; fn names the function for errors. */
static size_t check_header(lua_State *L, const char *fn, const unsigned char *s, size_t len,
                           const char *magic, size_t per)
{
    if (len < HEADER)
        luaL_error(L, "eddy.vec.%s: truncated input (%I bytes, header needs 8)", fn,
                   (lua_Integer)len);
    if (memcmp(s, magic, 4) != 0)
        luaL_error(L, "eddy.vec.%s: bad magic (expected \"%s\")", fn, magic);
    size_t n = get_u32(s + 4);
    if (n > UDF_VEC_MAX)
        luaL_error(L, "eddy.vec.%s: length %I exceeds %I", fn, (lua_Integer)n,
                   (lua_Integer)UDF_VEC_MAX);
    if (len - HEADER != n * per)
        luaL_error(L, "eddy.vec.%s: size mismatch (%I elements need %I bytes, got %I)", fn,
                   (lua_Integer)n, (lua_Integer)(HEADER + n * per), (lua_Integer)len);
    return n;
}

/* ---- Library functions ------------------------------------------------------------------- */

/* vec.new(n), vec.zeros(n) */
static int udflib_vec_new(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0 || (lua_Unsigned)n > UDF_VEC_MAX)
        luaL_error(L, "eddy.vec: size %I out of range 0..%I", n, (lua_Integer)UDF_VEC_MAX);
    udf__pushvec(L, (size_t)n);
    return 1;
}

/* vec.from(table): the array part 1..#t (raw), numbers only. */
static int udflib_vec_from(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct list l;
    list_open(L, 1, &l);
    struct udf_vec *v = udf__pushvec(L, l.n);
    for (size_t k = 0; k < l.n; k++)
        v->v[k] = list_get(L, &l, k);
    return 1;
}

/* vec.decode(s): a dense vector from v:encode()'s format. */
static int udflib_vec_decode(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    size_t n = check_header(L, "decode", s, len, MAGIC_DENSE, 8);
    struct udf_vec *v = udf__pushvec(L, n);
    get_f64s(v->v, s + HEADER, n);
    return 1;
}

/* vec.encode_sparse(idx, vals) -> string */
static int udflib_vec_encode_sparse(lua_State *L)
{
    struct list idx, vals;
    size_t n = pair_open(L, 1, &idx, &vals);
    if (n > UDF_VEC_MAX)
        luaL_error(L, "eddy.vec: sparse length %I exceeds %I", (lua_Integer)n,
                   (lua_Integer)UDF_VEC_MAX);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, HEADER + 12 * n);
    memcpy(out, MAGIC_SPARSE, 4);
    put_u32(out + 4, (uint32_t)n);
    for (size_t k = 0; k < n; k++) {
        put_u32(out + HEADER + 4 * k, (uint32_t)(list_index(L, &idx, k, UDF_VEC_MAX) + 1));
        put_f64(out + HEADER + 4 * n + 8 * k, list_get(L, &vals, k));
    }
    luaL_pushresultsize(&b, HEADER + 12 * n);
    return 1;
}

/* vec.decode_sparse(s) -> idx, vals */
static int udflib_vec_decode_sparse(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    size_t n = check_header(L, "decode_sparse", s, len, MAGIC_SPARSE, 12);
    struct udf_vec *idx = udf__pushvec(L, n);
    struct udf_vec *vals = udf__pushvec(L, n);
    for (size_t k = 0; k < n; k++) {
        uint32_t i = get_u32(s + HEADER + 4 * k);
        if (i < 1 || i > UDF_VEC_MAX)
            luaL_error(L, "eddy.vec.decode_sparse: index %I out of range 1..%I (entry %I)",
                       (lua_Integer)i, (lua_Integer)UDF_VEC_MAX, (lua_Integer)k + 1);
        idx->v[k] = i;
        vals->v[k] = get_f64(s + HEADER + 4 * n + 8 * k);
    }
    return 2;
}

/* vec.isvec(x) */
static int udflib_vec_isvec(lua_State *L)
{
    lua_pushboolean(L, udf__testvec(L, 1) != NULL);
    return 1;
}

/* ---- Methods ------------------------------------------------------------------------------ */

static int udflib_vec_get(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    lua_pushnumber(L, v->v[check_index(L, v, 2)]);
    return 1;
}

/* v:set(i, x) -> v */
static int udflib_vec_set(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    size_t i = check_index(L, v, 2);
    v->v[i] = check_value(L, 3);
    lua_settop(L, 1);
    return 1;
}

static int udflib_vec_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)udf__checkvec(L, 1)->n);
    return 1;
}

static int udflib_vec_dot(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    const struct udf_vec *w = check_same(L, v, 2);
    double s = 0;
    for (size_t k = 0; k < v->n; k++)
        s += v->v[k] * w->v[k];
    lua_pushnumber(L, s);
    return 1;
}

/* v:axpy(a, x): v = v + a * x -> v */
static int udflib_vec_axpy(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    double a = luaL_checknumber(L, 2);
    const struct udf_vec *x = check_same(L, v, 3);
    for (size_t k = 0; k < v->n; k++)
        v->v[k] += a * x->v[k];
    lua_settop(L, 1);
    return 1;
}

/* v:scale(a): v = a * v -> v */
static int udflib_vec_scale(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    double a = luaL_checknumber(L, 2);
    for (size_t k = 0; k < v->n; k++)
        v->v[k] *= a;
    lua_settop(L, 1);
    return 1;
}

/* v:add(w): v = v + w -> v */
static int udflib_vec_add(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    const struct udf_vec *w = check_same(L, v, 2);
    for (size_t k = 0; k < v->n; k++)
        v->v[k] += w->v[k];
    lua_settop(L, 1);
    return 1;
}

/* v:sub(w): v = v - w -> v */
static int udflib_vec_sub(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    const struct udf_vec *w = check_same(L, v, 2);
    for (size_t k = 0; k < v->n; k++)
        v->v[k] -= w->v[k];
    lua_settop(L, 1);
    return 1;
}

static int udflib_vec_copy(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    struct udf_vec *c = udf__pushvec(L, v->n);
    if (v->n > 0)
        memcpy(c->v, v->v, v->n * sizeof(double));
    return 1;
}

static int udflib_vec_sum(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    double s = 0;
    for (size_t k = 0; k < v->n; k++)
        s += v->v[k];
    lua_pushnumber(L, s);
    return 1;
}

/* v:norm2(): the Euclidean norm, sqrt(sum of squares). */
static int udflib_vec_norm2(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    double s = 0;
    for (size_t k = 0; k < v->n; k++)
        s += v->v[k] * v->v[k];
    lua_pushnumber(L, sqrt(s));
    return 1;
}

/* v:nonzeros() -> idx, vals: the elements that are not 0 (NaN included) as a sparse
 * pair, so a vector that is mostly zeros travels and adds up in proportion to its
 * non-zeros (a partition's gradient, say). */
static int udflib_vec_nonzeros(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    size_t n = 0;
    for (size_t k = 0; k < v->n; k++)
        n += v->v[k] != 0;
    struct udf_vec *idx = udf__pushvec(L, n);
    struct udf_vec *vals = udf__pushvec(L, n);
    for (size_t k = 0, j = 0; k < v->n; k++)
        if (v->v[k] != 0) {
            idx->v[j] = (double)(k + 1);
            vals->v[j++] = v->v[k];
        }
    return 2;
}

/* v:fill(x) -> v */
static int udflib_vec_fill(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    double x = check_value(L, 2);
    for (size_t k = 0; k < v->n; k++)
        v->v[k] = x;
    lua_settop(L, 1);
    return 1;
}

static int udflib_vec_totable(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    lua_createtable(L, (int)v->n, 0);
    for (size_t k = 0; k < v->n; k++) {
        lua_pushnumber(L, v->v[k]);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    return 1;
}

/* v:encode() -> "EVd1" .. u32 n .. n * f64, little-endian */
static int udflib_vec_encode(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    size_t size = HEADER + 8 * v->n;
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, size);
    memcpy(out, MAGIC_DENSE, 4);
    put_u32(out + 4, (uint32_t)v->n);
    put_f64s(out + HEADER, v->v, v->n);
    luaL_pushresultsize(&b, size);
    return 1;
}

/* v:sdot(idx, vals): sum of v[idx[k]] * vals[k] */
static int udflib_vec_sdot(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    struct list idx, vals;
    size_t n = pair_open(L, 2, &idx, &vals);
    double s = 0;
    for (size_t k = 0; k < n; k++)
        s += v->v[list_index(L, &idx, k, v->n)] * list_get(L, &vals, k);
    lua_pushnumber(L, s);
    return 1;
}

/* v:saxpy(a, idx, vals): v[idx[k]] += a * vals[k] -> v. All entries are checked
 * before v changes, so an error leaves v as it was. */
static int udflib_vec_saxpy(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    double a = luaL_checknumber(L, 2);
    struct list idx, vals;
    size_t n = pair_open(L, 3, &idx, &vals);
    for (size_t k = 0; k < n; k++) {
        list_index(L, &idx, k, v->n);
        list_get(L, &vals, k);
    }
    /* list_index checks again: idx or vals may be v itself. */
    for (size_t k = 0; k < n; k++) {
        size_t i = list_index(L, &idx, k, v->n);
        v->v[i] += a * list_get(L, &vals, k);
    }
    lua_settop(L, 1);
    return 1;
}

/* ---- Sparse matrices (CSR) -----------------------------------------------------------------
 * A matrix is a full userdata over an encoded string (common/csr.c), which it keeps
 * alive as its user value: decoding validates and copies nothing. */

#define MAT_META "eddy.csr"

struct udf_mat {
    struct cm_csr m;
};

static struct udf_mat *check_mat(lua_State *L, int arg)
{
    struct udf_mat *m = luaL_checkudata(L, arg, MAT_META);
    charge(L, m->m.nnz + m->m.rows);
    return m;
}

static void ensure_mat_meta(lua_State *L);

/* vec.encode_csr(cols, rows [, vals]) -> string. rows[r] is the index list of row r,
 * vals[r] its values (a vector or table each); without vals every value is 1. */
static int udflib_vec_encode_csr(lua_State *L)
{
    lua_Integer cols = luaL_checkinteger(L, 1);
    if (cols < 0 || (lua_Unsigned)cols > CM_CSR_MAX)
        luaL_error(L, "eddy.vec.encode_csr: columns %I out of range 0..%I", cols,
                   (lua_Integer)CM_CSR_MAX);
    luaL_checktype(L, 2, LUA_TTABLE);
    bool has_vals = !lua_isnoneornil(L, 3);
    if (has_vals)
        luaL_checktype(L, 3, LUA_TTABLE);
    size_t rows = lua_rawlen(L, 2), nnz = 0;
    if (rows > CM_CSR_MAX)
        luaL_error(L, "eddy.vec.encode_csr: %I rows exceed %I", (lua_Integer)rows,
                   (lua_Integer)CM_CSR_MAX);
    lua_settop(L, 3);
    /* First pass: sizes (the lists stay reachable from the argument tables). */
    for (size_t r = 0; r < rows; r++) {
        struct list idx;
        lua_rawgeti(L, 2, (lua_Integer)r + 1);
        list_open(L, 4, &idx);
        if (has_vals) {
            struct list vals;
            lua_rawgeti(L, 3, (lua_Integer)r + 1);
            list_open(L, 5, &vals);
            if (vals.n != idx.n)
                luaL_error(L, "eddy.vec.encode_csr: row %I has %I indices and %I values",
                           (lua_Integer)r + 1, (lua_Integer)idx.n, (lua_Integer)vals.n);
        }
        nnz += idx.n;
        if (nnz > CM_CSR_MAX)
            luaL_error(L, "eddy.vec.encode_csr: more than %I entries", (lua_Integer)CM_CSR_MAX);
        lua_settop(L, 3);
    }
    size_t size = cm_csr_size(rows, nnz);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, size);
    cm_csr_put_header(out, rows, (size_t)cols, nnz);
    unsigned char *ptr = out + CM_CSR_HEADER, *ip = ptr + 4 * (rows + 1), *vp = ip + 4 * nnz;
    size_t at = 0;
    put_u32(ptr, 0);
    int top = lua_gettop(L); /* the buffer may sit on the stack */
    for (size_t r = 0; r < rows; r++) {
        struct list idx, vals = {0};
        lua_rawgeti(L, 2, (lua_Integer)r + 1);
        list_open(L, top + 1, &idx);
        if (has_vals) {
            lua_rawgeti(L, 3, (lua_Integer)r + 1);
            list_open(L, top + 2, &vals);
        }
        if (at + idx.n > nnz || (has_vals && vals.n != idx.n))
            luaL_error(L, "eddy.vec.encode_csr: a row changed while it was encoded");
        for (size_t k = 0; k < idx.n; k++, at++) {
            put_u32(ip + 4 * at, (uint32_t)(list_index(L, &idx, k, (size_t)cols) + 1));
            put_f64(vp + 8 * at, has_vals ? list_get(L, &vals, k) : 1.0);
        }
        put_u32(ptr + 4 * (r + 1), (uint32_t)at);
        lua_settop(L, top);
    }
    if (at != nnz)
        luaL_error(L, "eddy.vec.encode_csr: a row changed while it was encoded");
    luaL_pushresultsize(&b, size);
    return 1;
}

/* vec.decode_csr(s [, init]) -> matrix over s from byte init (default 1) to its end. */
static int udflib_vec_decode_csr(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_Integer init = luaL_optinteger(L, 2, 1);
    if (init < 1 || (lua_Unsigned)init > len + 1)
        luaL_error(L, "eddy.vec.decode_csr: init %I out of range 1..%I", init,
                   (lua_Integer)len + 1);
    struct cm_csr m;
    const char *why;
    if (cm_csr_parse(s + init - 1, len - (size_t)(init - 1), &m, &why) != 0)
        luaL_error(L, "eddy.vec.decode_csr: %s", why);
    struct udf_mat *x = lua_newuserdatauv(L, sizeof(*x), 1);
    x->m = m;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    ensure_mat_meta(L);
    lua_setmetatable(L, -2);
    return 1;
}

/* vec.ismatrix(x) */
static int udflib_vec_ismatrix(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, MAT_META) != NULL);
    return 1;
}

static int udflib_mat_rows(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_mat(L, 1)->m.rows);
    return 1;
}

static int udflib_mat_cols(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_mat(L, 1)->m.cols);
    return 1;
}

static int udflib_mat_nnz(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_mat(L, 1)->m.nnz);
    return 1;
}

/* X:row(i) -> idx, vals (vectors) */
static int udflib_mat_row(lua_State *L)
{
    const struct cm_csr *m = &check_mat(L, 1)->m;
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || (lua_Unsigned)i > m->rows)
        luaL_error(L, "eddy.vec: row %I out of range 1..%I", i, (lua_Integer)m->rows);
    size_t lo = get_u32(m->ptr + 4 * (size_t)(i - 1)), hi = get_u32(m->ptr + 4 * (size_t)i);
    struct udf_vec *idx = udf__pushvec(L, hi - lo);
    struct udf_vec *vals = udf__pushvec(L, hi - lo);
    for (size_t k = lo; k < hi; k++) {
        idx->v[k - lo] = get_u32(m->idx + 4 * k);
        vals->v[k - lo] = get_f64(m->val + 8 * k);
    }
    return 2;
}

/* A vector argument of exactly n elements. */
static struct udf_vec *check_len(lua_State *L, int arg, size_t n, const char *what)
{
    struct udf_vec *v = udf__checkvec(L, arg);
    if (v->n != n)
        luaL_error(L, "eddy.vec: %s has %I elements, the matrix needs %I", what,
                   (lua_Integer)v->n, (lua_Integer)n);
    return v;
}

/* X:mul(w) -> a new vector z of #rows elements, z[r] = row r . w */
static int udflib_mat_mul(lua_State *L)
{
    const struct cm_csr *m = &check_mat(L, 1)->m;
    const struct udf_vec *w = check_len(L, 2, m->cols, "w");
    struct udf_vec *z = udf__pushvec(L, m->rows);
    cm_csr_mul(m, w->v, z->v);
    return 1;
}

/* X:tmul(r, g) -> g, with g = g + X^T r in place */
static int udflib_mat_tmul(lua_State *L)
{
    const struct cm_csr *m = &check_mat(L, 1)->m;
    const struct udf_vec *r = check_len(L, 2, m->rows, "r");
    struct udf_vec *g = check_len(L, 3, m->cols, "g");
    if (r == g) { /* r is read while g changes: use a copy */
        struct udf_vec *c = udf__pushvec(L, r->n);
        memcpy(c->v, r->v, r->n * sizeof(double));
        r = c;
    }
    cm_csr_tmul(m, r->v, g->v);
    lua_settop(L, 3);
    return 1;
}

/* The weight vectors of glm_grad at arg: one vector (K = 1) or an array of K >= 2. */
static int check_weights(lua_State *L, int arg, const struct cm_csr *m, double **out,
                         const char *what)
{
    if (udf__testvec(L, arg) != NULL) {
        out[0] = check_len(L, arg, m->cols, what)->v;
        return 1;
    }
    if (lua_type(L, arg) != LUA_TTABLE)
        luaL_typeerror(L, arg, "eddy.vec or table of eddy.vec");
    size_t K = lua_rawlen(L, arg);
    if (K < 2 || K > CM_GLM_KMAX)
        luaL_error(L, "eddy.vec: %s must hold 2..%d vectors, got %I", what, CM_GLM_KMAX,
                   (lua_Integer)K);
    for (size_t k = 0; k < K; k++) {
        lua_rawgeti(L, arg, (lua_Integer)k + 1);
        out[k] = check_len(L, lua_gettop(L), m->cols, what)->v;
        lua_pop(L, 1); /* still referenced by the table */
    }
    return (int)K;
}

/* X:glm_grad(W, G, y [, test]) -> ntrain, loss, correct, ntest, test loss, test correct
 * (common/csr.c cm_glm_grad; docs/VEC.md). */
static int udflib_mat_glm_grad(lua_State *L)
{
    const struct cm_csr *m = &check_mat(L, 1)->m;
    double *W[CM_GLM_KMAX], *G[CM_GLM_KMAX];
    int K = check_weights(L, 2, m, W, "W");
    if (check_weights(L, 3, m, G, "G") != K)
        luaL_error(L, "eddy.vec: W and G must hold the same number of vectors");
    for (int k = 0; k < K; k++)
        for (int j = 0; j < K; j++)
            if (G[k] == W[j] || (j != k && G[k] == G[j]))
                luaL_error(L, "eddy.vec: each G vector must be distinct from W and from the other G");
    size_t yl, tl = 0;
    const unsigned char *y = (const unsigned char *)luaL_checklstring(L, 4, &yl);
    const unsigned char *test = (const unsigned char *)luaL_optlstring(L, 5, NULL, &tl);
    if (yl != m->rows || (test != NULL && tl != m->rows))
        luaL_error(L, "eddy.vec: labels and test flags need one byte per row (%I rows, got %I and %I)",
                   (lua_Integer)m->rows, (lua_Integer)yl, (lua_Integer)tl);
    struct cm_glm_stats st = {0};
    if (cm_glm_grad(m, K, (const double *const *)W, G, y, test, &st) != 0)
        luaL_error(L, "eddy.vec: a label is out of range 0..%d", K == 1 ? 1 : K - 1);
    lua_pushinteger(L, st.ntr);
    lua_pushnumber(L, st.loss);
    lua_pushinteger(L, st.corr);
    lua_pushinteger(L, st.nte);
    lua_pushnumber(L, st.tloss);
    lua_pushinteger(L, st.tcorr);
    return 6;
}

static int udflib_mat_tostring(lua_State *L)
{
    const struct cm_csr *m = &check_mat(L, 1)->m;
    lua_pushfstring(L, "csr(%I x %I, %I entries)", (lua_Integer)m->rows, (lua_Integer)m->cols,
                    (lua_Integer)m->nnz);
    return 1;
}

static void ensure_mat_meta(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"rows", udflib_mat_rows}, {"cols", udflib_mat_cols}, {"nnz", udflib_mat_nnz},
        {"row", udflib_mat_row},   {"mul", udflib_mat_mul},   {"tmul", udflib_mat_tmul},
        {"glm_grad", udflib_mat_glm_grad}, {NULL, NULL},
    };
    if (!luaL_newmetatable(L, MAT_META))
        return;
    lua_pushcfunction(L, udflib_mat_rows);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, udflib_mat_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, MAT_META);
    lua_setfield(L, -2, "__metatable");
}

/* ---- Metamethods -------------------------------------------------------------------------- */

/* __index: v[i] for numbers, methods (upvalue 1) for anything else. */
static int udflib_vec_index(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_pushnumber(L, v->v[check_index(L, v, 2)]);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

/* __newindex: v[i] = x; no other fields can be set. */
static int udflib_vec_newindex(lua_State *L)
{
    struct udf_vec *v = udf__checkvec(L, 1);
    if (lua_type(L, 2) != LUA_TNUMBER)
        luaL_error(L, "eddy.vec: cannot set field of type %s (only numeric indices)",
                   luaL_typename(L, 2));
    size_t i = check_index(L, v, 2);
    v->v[i] = check_value(L, 3);
    return 0;
}

/* __tostring: "vec(3)[1, 2, 3]", at most SHOW_MAX elements then ", ...". */
static int udflib_vec_tostring(lua_State *L)
{
    const struct udf_vec *v = udf__checkvec(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char num[64];
    snprintf(num, sizeof(num), "vec(%zu)[", v->n);
    luaL_addstring(&b, num);
    for (size_t k = 0; k < v->n && k < SHOW_MAX; k++) {
        snprintf(num, sizeof(num), "%s%.14g", k > 0 ? ", " : "", v->v[k]);
        luaL_addstring(&b, num);
    }
    if (v->n > SHOW_MAX)
        luaL_addstring(&b, ", ...");
    luaL_addchar(&b, ']');
    luaL_pushresult(&b);
    return 1;
}

/* __eq: same length and equal elements (so a vector holding NaN is not equal to
 * itself as a value, though Lua's == on the same userdata is still true). */
static int udflib_vec_eq(lua_State *L)
{
    const struct udf_vec *v = udf__testvec(L, 1), *w = udf__testvec(L, 2);
    bool eq = v != NULL && w != NULL && v->n == w->n;
    for (size_t k = 0; eq && k < v->n; k++)
        eq = v->v[k] == w->v[k];
    lua_pushboolean(L, eq);
    return 1;
}

static void ensure_meta(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"get", udflib_vec_get},         {"set", udflib_vec_set},
        {"len", udflib_vec_len},         {"dot", udflib_vec_dot},
        {"axpy", udflib_vec_axpy},       {"scale", udflib_vec_scale},
        {"add", udflib_vec_add},         {"sub", udflib_vec_sub},
        {"copy", udflib_vec_copy},       {"sum", udflib_vec_sum},
        {"norm2", udflib_vec_norm2},     {"fill", udflib_vec_fill},
        {"totable", udflib_vec_totable}, {"encode", udflib_vec_encode},
        {"sdot", udflib_vec_sdot},       {"saxpy", udflib_vec_saxpy},
        {"nonzeros", udflib_vec_nonzeros},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__newindex", udflib_vec_newindex},
        {"__len", udflib_vec_len},
        {"__tostring", udflib_vec_tostring},
        {"__eq", udflib_vec_eq},
        {NULL, NULL},
    };
    if (!luaL_newmetatable(L, UDF_VEC_META))
        return; /* already registered; it is on the stack */
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_pushcclosure(L, udflib_vec_index, 1);
    lua_setfield(L, -2, "__index");
    /* getmetatable(v) gives this string, so user code cannot change the shared
     * metatable of every vector. */
    lua_pushliteral(L, UDF_VEC_META);
    lua_setfield(L, -2, "__metatable");
}

int udf__open_vec(lua_State *L)
{
    static const luaL_Reg lib[] = {
        {"new", udflib_vec_new},
        {"zeros", udflib_vec_new},
        {"from", udflib_vec_from},
        {"decode", udflib_vec_decode},
        {"encode_sparse", udflib_vec_encode_sparse},
        {"decode_sparse", udflib_vec_decode_sparse},
        {"isvec", udflib_vec_isvec},
        {"encode_csr", udflib_vec_encode_csr},
        {"decode_csr", udflib_vec_decode_csr},
        {"ismatrix", udflib_vec_ismatrix},
        {NULL, NULL},
    };
    ensure_meta(L);
    lua_pop(L, 1);
    luaL_newlib(L, lib);
    return 1;
}
