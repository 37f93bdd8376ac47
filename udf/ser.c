/* ser.c - serialization of Lua values between Lua states: the partial results of a
 * map call travel to the thread (and later the node) that reduces them. Format, one
 * tag byte then the payload, little-endian:
 *   'n' nil   'f' false   't' true   'i' int64   'd' float64
 *   's' u32 length + bytes   'v' u32 n + n float64 (an eddy.vec)
 *   'T' u32 pairs + pairs of (key, value)
 * Tables nest at most 64 deep (which also stops cycles); functions, threads and other
 * userdata are refused. The decoder checks every length against what is left. */
#include "udf_int.h"

#include <string.h>

#define SER_DEPTH 64

static void put32(struct cm_buf *b, uint32_t v)
{
    unsigned char h[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    cm_buf_append(b, h, 4);
}

/* What an encoding may still use: a result holding the same table many times (a few
 * hundred bytes of Lua: t = {t, t} forty times) expanded without end, in C, where the
 * time limit and kills cannot reach. */
struct budget {
    size_t end;   /* b->len may not pass this */
    size_t nodes; /* values left */
};

static int enc(lua_State *L, int idx, struct cm_buf *b, int depth, struct budget *bd,
               const char **why)
{
    idx = lua_absindex(L, idx);
    if (bd->nodes-- == 0 || b->len > bd->end) {
        *why = "it is larger than udf-memory-limit allows (a table held many times?)";
        return CM_ELIMIT;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return cm_buf_appendc(b, 'n');
    case LUA_TBOOLEAN:
        return cm_buf_appendc(b, lua_toboolean(L, idx) ? 't' : 'f');
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            int64_t v = (int64_t)lua_tointeger(L, idx);
            cm_buf_appendc(b, 'i');
            return cm_buf_append(b, &v, 8);
        } else {
            double d = lua_tonumber(L, idx);
            cm_buf_appendc(b, 'd');
            return cm_buf_append(b, &d, 8);
        }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n > UINT32_MAX) {
            *why = "string too long";
            return CM_ELIMIT;
        }
        cm_buf_appendc(b, 's');
        put32(b, (uint32_t)n);
        return cm_buf_append(b, s, n);
    }
    case LUA_TUSERDATA: {
        struct udf_vec *v = udf__testvec(L, idx);
        if (v == NULL)
            break;
        cm_buf_appendc(b, 'v');
        put32(b, (uint32_t)v->n);
        return cm_buf_append(b, v->v, v->n * sizeof(double));
    }
    case LUA_TTABLE: {
        if (depth >= SER_DEPTH || !lua_checkstack(L, 4)) {
            *why = "tables nested too deep (or a cycle)";
            return CM_ELIMIT;
        }
        uint32_t pairs = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            pairs++;
            lua_pop(L, 1);
        }
        cm_buf_appendc(b, 'T');
        put32(b, pairs);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int rc = enc(L, -2, b, depth + 1, bd, why);
            if (rc == 0)
                rc = enc(L, -1, b, depth + 1, bd, why);
            lua_pop(L, 1);
            if (rc != 0) {
                lua_pop(L, 1);
                return rc;
            }
        }
        return 0;
    }
    default:
        break;
    }
    *why = "only nil, booleans, numbers, strings, tables and eddy.vec can be returned";
    return CM_EINVAL;
}

int udf__ser_encode(lua_State *L, int idx, size_t limit, struct cm_buf *out, const char **why)
{
    *why = "out of memory";
    size_t mark = out->len;
    if (limit < (1u << 20))
        limit = 1u << 20;
    struct budget bd = {mark + 4 * limit, limit / 16 + 1024};
    int rc = enc(L, idx, out, 0, &bd, why);
    if (rc == 0 && out->len == mark)
        rc = CM_ENOMEM;
    if (rc != 0)
        out->len = mark;
    return rc;
}

struct rd {
    const unsigned char *p;
    size_t n, off;
};

static bool take(struct rd *r, void *dst, size_t n)
{
    if (r->n - r->off < n)
        return false;
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return true;
}

static bool take32(struct rd *r, uint32_t *v)
{
    unsigned char h[4];
    if (!take(r, h, 4))
        return false;
    *v = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    return true;
}

static bool dec(lua_State *L, struct rd *r, int depth)
{
    unsigned char tag;
    if (depth > SER_DEPTH || !lua_checkstack(L, 4) || !take(r, &tag, 1))
        return false;
    switch (tag) {
    case 'n': lua_pushnil(L); return true;
    case 'f': lua_pushboolean(L, 0); return true;
    case 't': lua_pushboolean(L, 1); return true;
    case 'i': {
        int64_t v;
        if (!take(r, &v, 8))
            return false;
        lua_pushinteger(L, (lua_Integer)v);
        return true;
    }
    case 'd': {
        double d;
        if (!take(r, &d, 8))
            return false;
        lua_pushnumber(L, d);
        return true;
    }
    case 's': {
        uint32_t n;
        if (!take32(r, &n) || r->n - r->off < n)
            return false;
        lua_pushlstring(L, (const char *)r->p + r->off, n);
        r->off += n;
        return true;
    }
    case 'v': {
        uint32_t n;
        if (!take32(r, &n) || n > UDF_VEC_MAX || (r->n - r->off) / sizeof(double) < n)
            return false;
        struct udf_vec *v = udf__pushvec(L, n);
        memcpy(v->v, r->p + r->off, (size_t)n * sizeof(double));
        r->off += (size_t)n * sizeof(double);
        return true;
    }
    case 'T': {
        uint32_t pairs;
        if (!take32(r, &pairs) || pairs > (r->n - r->off) / 2)
            return false;
        lua_createtable(L, 0, 0);
        for (uint32_t i = 0; i < pairs; i++) {
            if (!dec(L, r, depth + 1))
                return false;
            if (!dec(L, r, depth + 1))
                return false;
            if (lua_isnil(L, -2) || (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
                return false; /* nil or NaN keys cannot exist */
            lua_rawset(L, -3);
        }
        return true;
    }
    default:
        return false;
    }
}

int udf__ser_decode(lua_State *L, const void *p, size_t n)
{
    struct rd r = {p, n, 0};
    int top = lua_gettop(L);
    if (!dec(L, &r, 0) || r.off != n) {
        lua_settop(L, top);
        return CM_EINVAL;
    }
    return 0;
}
