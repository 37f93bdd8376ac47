/* redislib.c - the redis.* API of Redis 7 functions and scripts (call, pcall,
 * error_reply, status_reply, sha1hex, log, setresp, register_function, versions),
 * eddy's own data API (eddy.get/set/del/exists/slot/scan), and the Lua <-> RESP
 * conversions Redis documents. */
#include "udf_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper replies are refused: RESP readers (libeddy's among them) stop at 64 levels. */
#define MAX_DEPTH 60

struct udf_call *udf__current(lua_State *L)
{
    struct udf_vm *vm = udf__vm_of(L);
    if (vm->current == NULL)
        luaL_error(L, "this function can only be called from a running function or script");
    return vm->current;
}

/* ---- Lua -> RESP (return values) --------------------------------------------------------- */

/* The conversion runs after the call's coroutine returned, outside any protected call
 * and outside the hook's reach: it reads tables raw, so no metamethod (which could
 * raise, a panic there, or loop for ever) runs. As Redis does. */
static int raw_field(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, name);
    return lua_rawget(L, idx);
}

static bool field_string(lua_State *L, int idx, const char *name)
{
    raw_field(L, idx, name);
    if (lua_type(L, -1) == LUA_TSTRING)
        return true;
    lua_pop(L, 1);
    return false;
}

static void to_resp(lua_State *L, int idx, struct cm_buf *out, int resp, int depth);

/* The script's protocol (redis.setresp) decides how booleans convert, as in Redis;
 * everything else is encoded for the client's protocol. */
static int script_resp_of(lua_State *L)
{
    struct udf_vm *vm = udf__vm_of(L);
    return vm->converting != NULL ? vm->converting->script_resp : 2;
}

/* {map={k=v...}} or {set={k=true...}}: the table at the top, popped when done. */
static void keyed_to_resp(lua_State *L, struct cm_buf *out, int resp, int depth, bool is_map)
{
    int m = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, m)) {
        n++;
        lua_pop(L, 1);
    }
    if (is_map)
        resp_add_map(out, n, resp);
    else
        resp_add_set(out, n, resp);
    lua_pushnil(L);
    while (lua_next(L, m)) {
        to_resp(L, -2, out, resp, depth + 1);
        if (is_map)
            to_resp(L, -1, out, resp, depth + 1);
        lua_pop(L, 1);
    }
    lua_settop(L, m - 1);
}

static void table_to_resp(lua_State *L, int idx, struct cm_buf *out, int resp, int depth)
{
    if (field_string(L, idx, "err")) {
        resp_add_error(out, lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    if (field_string(L, idx, "ok")) {
        resp_add_simple(out, lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    if (raw_field(L, idx, "double") == LUA_TNUMBER) {
        resp_add_double(out, lua_tonumber(L, -1), resp);
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    if (field_string(L, idx, "big_number")) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        bool digits = n > 0;
        for (size_t i = 0; i < n && digits; i++)
            digits = (s[i] >= '0' && s[i] <= '9') || (i == 0 && (s[i] == '-' || s[i] == '+') && n > 1);
        if (!digits) {
            resp_add_error(out, "ERR big_number must be an optionally signed string of digits");
            lua_pop(L, 1);
            return;
        }
        if (resp >= 3) {
            cm_buf_appendc(out, '(');
            cm_buf_append(out, s, n);
            cm_buf_append(out, "\r\n", 2);
        } else {
            resp_add_bulk(out, s, n);
        }
        lua_pop(L, 1);
        return;
    }
    if (raw_field(L, idx, "verbatim_string") == LUA_TTABLE) {
        int v = lua_gettop(L);
        raw_field(L, v, "format");
        raw_field(L, v, "string");
        size_t n;
        size_t fn = 0;
        const char *fmt = lua_tolstring(L, -2, &fn), *s = lua_tolstring(L, -1, &n);
        if (fmt != NULL && s != NULL && fn == 3)
            resp_add_verbatim(out, fmt, s, n, resp);
        else
            resp_add_error(out, "ERR verbatim_string needs a 3-character format and a string");
        lua_settop(L, v - 1);
        return;
    }
    lua_pop(L, 1);
    if (raw_field(L, idx, "map") == LUA_TTABLE) {
        keyed_to_resp(L, out, resp, depth, true);
        return;
    }
    lua_pop(L, 1);
    if (raw_field(L, idx, "set") == LUA_TTABLE) {
        keyed_to_resp(L, out, resp, depth, false);
        return;
    }
    lua_pop(L, 1);
    /* An array: elements 1..n up to the first nil, as Redis does. */
    size_t n = 0;
    while (lua_rawgeti(L, idx, (lua_Integer)n + 1) != LUA_TNIL) {
        lua_pop(L, 1);
        n++;
    }
    lua_pop(L, 1);
    resp_add_array(out, n);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i);
        to_resp(L, lua_gettop(L), out, resp, depth + 1);
        lua_pop(L, 1);
    }
}

static void to_resp(lua_State *L, int idx, struct cm_buf *out, int resp, int depth)
{
    idx = lua_absindex(L, idx);
    struct udf_vm *vm = udf__vm_of(L);
    if (vm->conv_over || out->len > vm->conv_cap || vm->conv_nodes-- == 0) {
        vm->conv_over = true; /* udf__lua_to_resp replaces the whole reply */
        return;
    }
    if (depth > MAX_DEPTH || !lua_checkstack(L, 8)) {
        resp_add_error(out, "ERR reached lua stack limit");
        return;
    }
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        resp_add_bulk(out, s, n);
        break;
    }
    case LUA_TBOOLEAN:
        if (script_resp_of(L) >= 3)
            resp_add_bool(out, lua_toboolean(L, idx), resp);
        else if (lua_toboolean(L, idx))
            resp_add_int(out, 1);
        else
            resp_add_null(out, resp);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            resp_add_int(out, (long long)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            resp_add_int(out, isfinite(d) && fabs(d) < 9.2e18 ? (long long)d : 0);
        }
        break;
    case LUA_TTABLE:
        table_to_resp(L, idx, out, resp, depth);
        break;
    case LUA_TUSERDATA: {
        struct udf_vec *v = udf__testvec(L, idx);
        if (v != NULL) { /* a vector is returned as an array of doubles */
            resp_add_array(out, v->n);
            for (size_t i = 0; i < v->n; i++)
                resp_add_double(out, v->v[i], resp);
            break;
        }
    }
        /* fall through */
    default:
        resp_add_null(out, resp);
        break;
    }
}

/* A reply is at most REPLY_CAP_FACTOR times udf-memory-limit, and has at most one
 * value per 16 bytes of it: the values converted fit in the Lua state (16 bytes a
 * value at least), so only a table that holds the same values many times (itself,
 * say) makes more, and its conversion would take unbounded time and memory. */
#define REPLY_CAP_FACTOR 4

void udf__lua_to_resp(lua_State *L, int idx, struct cm_buf *out, int resp)
{
    struct udf_vm *vm = udf__vm_of(L);
    size_t start = out->len, limit = vm->u->limits.memory;
    if (limit < (1u << 20))
        limit = 1u << 20;
    vm->conv_cap = start + REPLY_CAP_FACTOR * limit;
    vm->conv_nodes = limit / 16 + 1024;
    vm->conv_over = false;
    to_resp(L, idx, out, resp, 0);
    if (vm->conv_over) {
        out->len = start;
        cm_buf_shrink(out, 64 * 1024);
        resp_add_errorf(out, "ERR the reply is larger than udf-memory-limit allows (a table "
                             "that holds itself, or the same values many times)");
        vm->conv_over = false;
    }
}

/* ---- RESP -> Lua (redis.call replies) --------------------------------------------------------- */

static void push_aggregate(lua_State *L, const struct resp_value *v, int script_resp,
                           const char *wrap)
{
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, (int)(v->elements / 2));
    for (size_t i = 0; i + 1 < v->elements || (wrap[0] == 's' && i < v->elements);) {
        udf__push_resp(L, v->element[i], script_resp);
        if (wrap[0] == 's') {
            lua_pushboolean(L, 1);
            i++;
        } else {
            udf__push_resp(L, v->element[i + 1], script_resp);
            i += 2;
        }
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, wrap);
}

void udf__push_resp(lua_State *L, const struct resp_value *v, int script_resp)
{
    luaL_checkstack(L, 6, "reply too deeply nested");
    switch (v->type) {
    case RESP_T_STRING:
        lua_pushlstring(L, v->str, v->len);
        break;
    case RESP_T_INTEGER:
        lua_pushinteger(L, (lua_Integer)v->integer);
        break;
    case RESP_T_NIL:
        if (script_resp >= 3)
            lua_pushnil(L);
        else
            lua_pushboolean(L, 0);
        break;
    case RESP_T_STATUS:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, v->str, v->len);
        lua_setfield(L, -2, "ok");
        break;
    case RESP_T_ERROR:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, v->str, v->len);
        lua_setfield(L, -2, "err");
        break;
    case RESP_T_BOOL:
        if (script_resp >= 3)
            lua_pushboolean(L, (int)v->integer);
        else
            lua_pushinteger(L, v->integer);
        break;
    case RESP_T_DOUBLE:
        if (script_resp >= 3) {
            lua_createtable(L, 0, 1);
            lua_pushnumber(L, v->dval);
            lua_setfield(L, -2, "double");
        } else {
            lua_pushlstring(L, v->str, v->len);
        }
        break;
    case RESP_T_BIGNUM:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, v->str, v->len);
        lua_setfield(L, -2, "big_number");
        break;
    case RESP_T_VERB:
        if (script_resp >= 3) {
            lua_createtable(L, 0, 1);
            lua_createtable(L, 0, 2);
            lua_pushlstring(L, v->vtype, strnlen(v->vtype, 3));
            lua_setfield(L, -2, "format");
            lua_pushlstring(L, v->str, v->len);
            lua_setfield(L, -2, "string");
            lua_setfield(L, -2, "verbatim_string");
        } else {
            lua_pushlstring(L, v->str, v->len);
        }
        break;
    case RESP_T_MAP:
        if (script_resp >= 3) {
            push_aggregate(L, v, script_resp, "map");
            break;
        }
        /* RESP2 sees a map as a flat array */
        /* fall through */
    case RESP_T_SET:
        if (v->type == RESP_T_SET && script_resp >= 3) {
            push_aggregate(L, v, script_resp, "set");
            break;
        }
        /* fall through */
    default: /* arrays, pushes, attributes */
        lua_createtable(L, (int)v->elements, 0);
        for (size_t i = 0; i < v->elements; i++) {
            udf__push_resp(L, v->element[i], script_resp);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
}

/* ---- redis.call and redis.pcall ------------------------------------------------------------------ */

/* Runs the command in the arguments; leaves the parsed reply in *out (owned). Raises
 * Lua errors for bad arguments. Returns false when the reply could not be parsed. */
static int call_k(lua_State *L, int status, lua_KContext ctx);
static int remote_yield(lua_State *L, struct udf_call *c, const char *addr, int argc,
                        const char **argv, const size_t *lens, lua_KContext ctx, lua_KFunction k);

/* Empties the VM's buffer of command replies (struct udf_vm cmd_out), keeping up to
 * 64 KB of it for the next command. */
static void release_out(struct cm_buf *buf)
{
    buf->len = 0;
    if (buf->cap > 65536) {
        cm_buf_deinit(buf);
        cm_buf_init(buf);
    }
}

/* The length of the line at p (up to CR LF) within n bytes, or -1. */
static long line_len(const char *p, size_t n)
{
    const char *e = memchr(p, '\r', n);
    return e != NULL && (size_t)(e - p) + 1 < n && e[1] == '\n' ? (long)(e - p) : -1;
}

/* The common one-value replies (a bulk string, nil, an integer, a status, an error),
 * converted as udf__push_resp would, without parsing them into a resp_value: pushes
 * the value (or raises the error, unless protected) and frees buf. Returns false,
 * leaving buf alone, for anything else. */
static bool push_simple_reply(lua_State *L, struct udf_call *c, struct cm_buf *buf,
                              bool protected_call)
{
    const char *p = buf->p;
    size_t n = buf->len;
    if (n < 3)
        return false;
    long l = line_len(p + 1, n - 1);
    if (l < 0)
        return false;
    size_t head = 1 + (size_t)l + 2; /* type byte, line, CR LF */
    long long v;
    switch (p[0]) {
    case '$':
        if (cm_str_to_ll(p + 1, (size_t)l, &v) != 0)
            return false;
        if (v == -1 && head == n) {
            if (c->script_resp >= 3)
                lua_pushnil(L);
            else
                lua_pushboolean(L, 0);
            break;
        }
        if (v < 0 || head + (size_t)v + 2 != n || p[n - 2] != '\r' || p[n - 1] != '\n')
            return false;
        lua_pushlstring(L, p + head, (size_t)v);
        break;
    case '_':
        if (head != n || l != 0)
            return false;
        if (c->script_resp >= 3)
            lua_pushnil(L);
        else
            lua_pushboolean(L, 0);
        break;
    case ':':
        if (head != n || cm_str_to_ll(p + 1, (size_t)l, &v) != 0)
            return false;
        lua_pushinteger(L, (lua_Integer)v);
        break;
    case '+':
    case '-':
        if (head != n)
            return false;
        if (p[0] == '-' && !protected_call) { /* raised as the reply's text, code and all */
            lua_pushlstring(L, p + 1, (size_t)l);
            release_out(buf);
            lua_error(L);
        }
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, p + 1, (size_t)l);
        lua_setfield(L, -2, p[0] == '+' ? "ok" : "err");
        break;
    default:
        return false;
    }
    release_out(buf);
    return true;
}

/* Before each command of the call and after eddy.set: the time limit is checked every
 * 16 of them (one command can take long: an 8 MB SET, say), and the writes the call
 * staged must fit in
 * udf-memory-limit. They are kept outside the Lua state (the transaction's batch), so
 * without this a loop of 8 MB SETs grew eddyd to 7.8 GB under a 32 MB limit. */
static void check_staged(lua_State *L, struct udf_call *c)
{
    if (++c->ncommands % 16 == 0) /* a clock read each time cost 2% of an FCALL */
        udf__tick(L);
    size_t limit = c->vm->u->limits.memory, staged;
    if (c->txn != NULL && (staged = eng_txn_write_bytes(c->txn)) > limit)
        luaL_error(L, "ERR the writes of %s exceed udf-memory-limit (%I bytes staged, limit %I)",
                   c->label, (lua_Integer)staged, (lua_Integer)limit);
}

/* Returns 1 when it pushed the reply itself (push_simple_reply), else 0 with the
 * parsed reply in *out. */
static int run_command(lua_State *L, struct resp_value **out, bool protected_call)
{
    struct udf_vm *vm = udf__vm_of(L);
    if (vm->loading)
        return luaL_error(L, "Script attempted to access nonexistent global variable 'call'");
    struct udf_call *c = udf__current(L);
    check_staged(L, c); /* before cmd_out is used: it must be empty when this raises */
    int argc = lua_gettop(L);
    if (argc == 0) {
        lua_pushliteral(L, "ERR Please specify at least one argument for this redis lib call");
        return lua_error(L);
    }
    const char *argv_small[16];
    size_t lens_small[16];
    char numbuf[16][32];
    const char **argv = argv_small;
    size_t *lens = lens_small;
    if (argc > 16) {
        argv = lua_newuserdatauv(L, (size_t)argc * sizeof(*argv), 0);
        lens = lua_newuserdatauv(L, (size_t)argc * sizeof(*lens), 0);
    }
    for (int i = 0; i < argc; i++) {
        int t = lua_type(L, i + 1);
        if (t == LUA_TNUMBER && !lua_isinteger(L, i + 1) && i < 16) {
            /* Integral floats print as integers, as Lua 5.1 (and so Redis) does. */
            lua_Number d = lua_tonumber(L, i + 1);
            if (d == floor(d) && fabs(d) < 1e15) {
                lens[i] = (size_t)snprintf(numbuf[i], sizeof(numbuf[i]), "%lld", (long long)d);
                argv[i] = numbuf[i];
                continue;
            }
        }
        if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            lua_pushliteral(L, "ERR Lua redis lib command arguments must be strings or integers");
            return lua_error(L);
        }
        argv[i] = lua_tolstring(L, i + 1, &lens[i]);
    }
    struct cm_buf *buf = &vm->cmd_out; /* empty: every path below empties it again */
    int flags = (c->readonly ? UDF_EXEC_READONLY : 0) | (c->held ? UDF_EXEC_HELD : 0);
    int rc = vm->u->exec(c->owner, c->txn, c->script_resp, flags, argc, argv, lens, buf);
    if (rc == UDF_EXEC_UNHOLD) {
        udf__unhold(c);
        rc = vm->u->exec(c->owner, c->txn, c->script_resp, flags & ~UDF_EXEC_HELD, argc, argv,
                         lens, buf);
    }
    if (rc == UDF_EXEC_REMOTE) {
        char addr[300];
        snprintf(addr, sizeof(addr), "%.*s", (int)buf->len, buf->p ? buf->p : "");
        release_out(buf);
        *out = NULL;
        return remote_yield(L, c, addr, argc, argv, lens, protected_call, call_k);
    }
    *out = NULL;
    if (rc == 0 && push_simple_reply(L, c, buf, protected_call))
        return 1;
    struct resp_reader rd;
    resp_reader_init(&rd);
    if (rc == 0 && resp_reader_feed(&rd, buf->p, buf->len) == 0)
        resp_reader_get(&rd, out);
    resp_reader_deinit(&rd);
    release_out(buf);
    if (*out == NULL)
        return luaL_error(L, "out of memory running a command");
    return 0;
}

/* ---- Keys of other nodes (cluster mode) ------------------------------------------------------
 * A command (or eddy.get/set/del/exists) whose keys belong to another node suspends the
 * call: its coroutine yields, net/ sends the command to the owner without blocking the
 * thread (udf_call_run returns UDF_REMOTE), and the continuation k gets the reply. Such
 * an access is not part of the call's transaction (docs/CLUSTER.md). */

/* Suspends the call until the command (argc, argv) has run on addr; k continues. */
static int remote_yield(lua_State *L, struct udf_call *c, const char *addr, int argc,
                        const char **argv, const size_t *lens, lua_KContext ctx, lua_KFunction k)
{
    if (L != c->co || !lua_isyieldable(L)) { /* raised as is, like a command's error */
        lua_pushliteral(L, "ERR a key of another node cannot be accessed here (in a coroutine, "
                           "a sort comparator or a gsub callback)");
        return lua_error(L);
    }
    c->remote_cmd.len = 0;
    if (resp_add_command(&c->remote_cmd, argc, argv, lens) != 0)
        return luaL_error(L, "out of memory");
    /* addr is "<slot> <host:port>" (udf_exec_fn). */
    char *end;
    long slot = strtol(addr, &end, 10);
    snprintf(c->remote_addr, sizeof(c->remote_addr), "%s", *end == ' ' ? end + 1 : addr);
    udf__access_count(c, (int)slot);
    c->remote = REMOTE_WAIT;
    return lua_yieldk(L, 0, ctx, k);
}

/* In a continuation: the owner's reply (taken), or raises why there is none. */
static struct resp_value *remote_reply(lua_State *L, struct udf_call *c)
{
    struct resp_value *v = c->remote == REMOTE_READY ? c->remote_reply : NULL;
    c->remote_reply = NULL;
    int was = c->remote;
    c->remote = REMOTE_NONE;
    if (v == NULL) {
        lua_pushfstring(L, "ERR remote access to %s failed: %s", c->remote_addr,
                        was == REMOTE_READY ? c->remote_error : "interrupted");
        lua_error(L);
    }
    return v;
}

/* Where a command's keys are: 0 here, 1 on another node (its address in addr). Raises
 * the routing error (CLUSTERDOWN, keys on several nodes, ...). */
static int route(lua_State *L, struct udf_call *c, int argc, const char **argv,
                 const size_t *lens, char *addr, size_t cap)
{
    struct udf_vm *vm = c->vm;
    struct cm_buf buf;
    cm_buf_init(&buf);
    int rc = vm->u->exec(c->owner, c->txn, c->script_resp, UDF_EXEC_ROUTE, argc, argv, lens, &buf);
    if (rc == UDF_EXEC_REMOTE)
        snprintf(addr, cap, "%.*s", (int)buf.len, buf.p ? buf.p : "");
    else if (buf.len > 3) { /* an error reply: "-<text>\r\n" */
        lua_pushlstring(L, buf.p + 1, buf.len - 3);
        cm_buf_deinit(&buf);
        return lua_error(L);
    }
    cm_buf_deinit(&buf);
    return rc == UDF_EXEC_REMOTE;
}

static int call_reply(lua_State *L, struct resp_value *v, bool protected)
{
    struct udf_call *c = udf__current(L);
    if (v->type == RESP_T_ERROR && !protected) {
        /* Raised as the reply's text, which keeps its error code. */
        lua_pushlstring(L, v->str, v->len);
        resp_value_free(v);
        return lua_error(L);
    }
    udf__push_resp(L, v, c->script_resp);
    resp_value_free(v);
    return 1;
}

/* redis.call / redis.pcall after a remote command: ctx 1 = pcall. */
static int call_k(lua_State *L, int status, lua_KContext ctx)
{
    struct udf_call *c = udf__current(L);
    return call_reply(L, remote_reply(L, c), ctx != 0);
}

static int udflib_call(lua_State *L)
{
    struct resp_value *v;
    if (run_command(L, &v, false) == 1) /* does not return when the command runs elsewhere */
        return 1;
    return call_reply(L, v, false);
}

static int udflib_pcall(lua_State *L)
{
    struct resp_value *v;
    if (run_command(L, &v, true) == 1)
        return 1;
    return call_reply(L, v, true);
}

static int udflib_error_reply(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "err");
    return 1;
}

static int udflib_status_reply(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "ok");
    return 1;
}

static int udflib_sha1hex(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char hex[41];
    cm_sha1_hex(s, n, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int udflib_log(lua_State *L)
{
    int level = (int)luaL_checkinteger(L, 1);
    if (level < CM_LOG_DEBUG || level > CM_LOG_WARNING)
        return luaL_error(L, "Invalid debug level.");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 2; i <= lua_gettop(L); i++) {
        if (i > 2)
            luaL_addchar(&b, ' ');
        size_t n;
        const char *s = luaL_tolstring(L, i, &n);
        lua_pop(L, 1);
        luaL_addlstring(&b, s, n > 4000 ? 4000 : n);
    }
    luaL_pushresult(&b);
    cm_log(level, "<script> %s", lua_tostring(L, -1));
    return 0;
}

static int udflib_setresp(lua_State *L)
{
    lua_Integer v = luaL_checkinteger(L, 1);
    if (v != 2 && v != 3)
        return luaL_error(L, "RESP version must be 2 or 3.");
    udf__current(L)->script_resp = (int)v;
    return 0;
}

static int udflib_noop(lua_State *L)
{
    return 0;
}

static int udflib_true(lua_State *L)
{
    lua_pushboolean(L, 1);
    return 1;
}

/* redis.register_function(name, fn) or redis.register_function{function_name=,
 * callback=, flags=, description=}: only while FUNCTION LOAD runs the library. */
static int udflib_register_function(lua_State *L)
{
    struct udf_vm *vm = udf__vm_of(L);
    if (!vm->loading)
        return luaL_error(L, "redis.register_function can only be called on FUNCTION LOAD command");
    int flags = 0;
    if (lua_gettop(L) == 2) {
        if (lua_type(L, 1) != LUA_TSTRING)
            return luaL_error(L, "function_name argument given to redis.register_function must be a string");
        if (lua_type(L, 2) != LUA_TFUNCTION)
            return luaL_error(L, "callback argument given to redis.register_function must be a function");
    } else if (lua_gettop(L) == 1 && lua_istable(L, 1)) {
        lua_settop(L, 1);
        lua_getfield(L, 1, "function_name");
        lua_getfield(L, 1, "callback");
        if (lua_type(L, 2) != LUA_TSTRING)
            return luaL_error(L, "function_name argument given to redis.register_function must be a string");
        if (lua_type(L, 3) != LUA_TFUNCTION)
            return luaL_error(L, "callback argument given to redis.register_function must be a function");
        if (lua_getfield(L, 1, "flags") == LUA_TTABLE) {
            for (lua_Integer i = 1; lua_rawgeti(L, 4, i) != LUA_TNIL; i++) {
                size_t n;
                const char *f = lua_tolstring(L, -1, &n);
                int v = f ? udf__parse_flag(f, n) : -1;
                if (v < 0)
                    return luaL_error(L, "unknown flag given");
                flags |= v;
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        } else if (!lua_isnil(L, -1)) {
            return luaL_error(L, "flags argument to redis.register_function must be a table representing function flags");
        }
        lua_pop(L, 1);
        lua_remove(L, 1);
    } else {
        return luaL_error(L, "wrong number of arguments to redis.register_function");
    }
    size_t n;
    const char *name = lua_tolstring(L, 1, &n);
    for (size_t i = 0; i < n; i++)
        if (!(name[i] == '_' || (name[i] >= '0' && name[i] <= '9') ||
              (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z')))
            n = 0;
    if (n == 0)
        return luaL_error(L, "Function names can only contain letters, numbers, or underscores(_) "
                             "and must be at least one character long");
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->load_ref);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return luaL_error(L, "Function already exists in the library");
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "fn");
    lua_pushinteger(L, flags);
    lua_setfield(L, -2, "flags");
    lua_rawset(L, -3);
    return 0;
}

/* ---- eddy.* -------------------------------------------------------------------------------------- */

static struct udf_call *data_call(lua_State *L, bool write)
{
    struct udf_call *c = udf__current(L);
    if (write && c->readonly)
        luaL_error(L, "Write commands are not allowed from read-only scripts.");
    return c;
}

/* eddy.get/set/del/exists of a key of another node run GET/SET/DEL/EXISTS there. */
enum { RK_GET, RK_SET, RK_DEL, RK_EXISTS };
static const char *const rk_names[] = {"eddy.get", "eddy.set", "eddy.del", "eddy.exists"};

static int data_k(lua_State *L, int status, lua_KContext ctx)
{
    struct resp_value *v = remote_reply(L, udf__current(L));
    if (v->type == RESP_T_ERROR) {
        lua_pushfstring(L, "%s: %s", rk_names[ctx], v->str);
        resp_value_free(v);
        return lua_error(L);
    }
    if (ctx == RK_GET && v->type == RESP_T_STRING)
        lua_pushlstring(L, v->str, v->len);
    else if (ctx == RK_GET)
        lua_pushnil(L);
    else if (ctx == RK_SET)
        lua_pushboolean(L, 1);
    else
        lua_pushboolean(L, v->type == RESP_T_INTEGER && v->integer > 0);
    resp_value_free(v);
    return 1;
}

/* In cluster mode, runs eddy.<kind>'s command on the key's owner if that is another
 * node: the call yields and data_k returns the result (this does not return). Returns
 * if the key is local. */
static void data_remote(lua_State *L, struct udf_call *c, int kind, int argc, const char **argv,
                        const size_t *lens)
{
    char addr[300];
    if (route(L, c, argc, argv, lens, addr, sizeof(addr)))
        remote_yield(L, c, addr, argc, argv, lens, kind, data_k);
}

static int udflib_get(lua_State *L)
{
    size_t n;
    const char *k = luaL_checklstring(L, 1, &n);
    struct udf_call *c = data_call(L, false);
    const char *argv[] = {"GET", k};
    const size_t lens[] = {3, n};
    data_remote(L, c, RK_GET, 2, argv, lens);
    struct eng_item it;
    struct cm_err err = {0};
    int rc = eng_txn_get(c->txn, k, n, cm_now_ms(), &it, &err);
    if (rc == CM_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != 0)
        return luaL_error(L, "eddy.get: %s", err.msg);
    /* Copy out before anything can raise, so the item is always released. */
    lua_pushlstring(L, it.data, it.len);
    eng_item_release(&it);
    return 1;
}

static int udflib_set(lua_State *L)
{
    size_t n, vn;
    const char *k = luaL_checklstring(L, 1, &n);
    const char *v = luaL_checklstring(L, 2, &vn);
    lua_Integer ttl = luaL_optinteger(L, 3, 0);
    struct udf_call *c = data_call(L, true);
    if (ttl < 0)
        return luaL_error(L, "eddy.set: the TTL must be a positive number of milliseconds");
    char ms[32];
    const char *argv[] = {"SET", k, v, "PX", ms};
    const size_t lens[] = {3, n, vn, 2, (size_t)snprintf(ms, sizeof(ms), "%lld", (long long)ttl)};
    data_remote(L, c, RK_SET, ttl > 0 ? 5 : 3, argv, lens);
    char msg[320];
    if (eng_space_refuses(c->vm->u->eng, c->txn, NULL, n + vn, msg, sizeof(msg)))
        return luaL_error(L, "eddy.set: %s", msg); /* as SET (net/cmd.c disk_refuses) */
    int64_t expire = ttl > 0 ? cm_now_ms() + ttl : 0;
    if (eng_txn_put(c->txn, k, n, ENG_T_STRING, expire, v, vn) != 0)
        return luaL_error(L, "eddy.set: out of memory");
    check_staged(L, c);
    lua_pushboolean(L, 1);
    return 1;
}

/* eddy.exists of a local key (eddy.del uses it too). */
static int exists_here(lua_State *L, struct udf_call *c, const char *k, size_t n)
{
    struct eng_item it;
    struct cm_err err = {0};
    int rc = eng_txn_get(c->txn, k, n, cm_now_ms(), &it, &err);
    if (rc == 0)
        eng_item_release(&it);
    else if (rc != CM_ENOTFOUND)
        return luaL_error(L, "eddy.exists: %s", err.msg);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int udflib_exists(lua_State *L)
{
    size_t n;
    const char *k = luaL_checklstring(L, 1, &n);
    struct udf_call *c = data_call(L, false);
    const char *argv[] = {"EXISTS", k};
    const size_t lens[] = {6, n};
    data_remote(L, c, RK_EXISTS, 2, argv, lens);
    return exists_here(L, c, k, n);
}

static int udflib_del(lua_State *L)
{
    size_t n;
    const char *k = luaL_checklstring(L, 1, &n);
    struct udf_call *c = data_call(L, true);
    const char *argv[] = {"DEL", k};
    const size_t lens[] = {3, n};
    data_remote(L, c, RK_DEL, 2, argv, lens);
    exists_here(L, c, k, n);
    if (lua_toboolean(L, -1) && eng_txn_del(c->txn, k, n) != 0)
        return luaL_error(L, "eddy.del: out of memory");
    return 1;
}

/* eddy.commit(): applies the call's writes so far and goes on in a new transaction
 * (see eng_txn_checkpoint). A conflict raises, and the call is retried from the start
 * like any conflicting call; what earlier checkpoints applied stays applied. */
static int udflib_commit(lua_State *L)
{
    struct udf_call *c = data_call(L, true);
    struct cm_err err = {0};
    size_t writes = eng_txn_write_count(c->txn);
    int rc = udf__commit(c, UDF_COMMIT_STEP, &err);
    udf__unhold(c); /* a held attempt's hold covers it up to its first eddy.commit() */
    if (rc == CM_ECONFLICT) {
        c->commit_conflict = true; /* the call ends with this error: udf_call_run retries */
        return luaL_error(L, "eddy.commit: conflict with a concurrent write");
    }
    if (rc != 0)
        return luaL_error(L, "eddy.commit: %s", err.msg);
    if (writes > 0)
        c->wrote = c->stepped = true;
    return 0;
}

static int udflib_slot(lua_State *L)
{
    size_t n;
    const char *k = luaL_checklstring(L, 1, &n);
    lua_pushinteger(L, cm_key_slot(k, n));
    return 1;
}

/* eddy.scan([{prefix=, slot=, slot_lo=, slot_hi=}]): an iterator over the keys of this
 * node in (slot, key) order, reading the call's snapshot. */
struct scan_state {
    struct eng_iter *it;
    const unsigned char *owned; /* a map's udf_part.owned: keys of other slots skipped */
};

static int udflib_scan_next(lua_State *L)
{
    struct scan_state *s = lua_touserdata(L, lua_upvalueindex(1));
    udf__current(L); /* only inside the call that opened it */
    if (s->it == NULL) {
        lua_pushnil(L);
        return 1;
    }
    const char *key;
    size_t klen;
    struct eng_item item;
    struct cm_err err = {0};
    int rc;
    while ((rc = eng_iter_next(s->it, cm_now_ms(), &key, &klen, &item, &err)) > 0 &&
           s->owned != NULL) {
        unsigned slot = cm_key_slot(key, klen);
        if (s->owned[slot / 8] & (1u << (slot % 8)))
            break; /* (an iterator's items need no release) */
    }
    if (rc < 0)
        return luaL_error(L, "eddy.scan: %s", err.msg);
    if (rc == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, key, klen);
    lua_pushlstring(L, item.data, item.len);
    return 2;
}

static int udflib_scan(lua_State *L)
{
    struct udf_call *c = data_call(L, false);
    size_t plen = 0;
    const char *prefix = NULL;
    /* Inside a map call the default range is the call's partition. */
    lua_Integer lo = c->kind == UDF_MAP ? c->part.slot_lo : 0;
    lua_Integer hi = c->kind == UDF_MAP ? c->part.slot_hi : CM_SLOTS - 1;
    if (lua_istable(L, 1)) {
        if (lua_getfield(L, 1, "prefix") == LUA_TSTRING)
            prefix = lua_tolstring(L, -1, &plen);
        lua_pop(L, 1);
        if (lua_getfield(L, 1, "slot") != LUA_TNIL)
            lo = hi = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        if (lua_getfield(L, 1, "slot_lo") != LUA_TNIL)
            lo = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        if (lua_getfield(L, 1, "slot_hi") != LUA_TNIL)
            hi = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 1)) {
        return luaL_error(L, "eddy.scan: the argument must be a table of options");
    }
    if (lo < 0 || hi >= CM_SLOTS || lo > hi)
        return luaL_error(L, "eddy.scan: slots must satisfy 0 <= slot_lo <= slot_hi <= 16383");
    if (plen > 512)
        return luaL_error(L, "eddy.scan: the prefix is longer than 512 bytes");
    bool none = false; /* the prefix's slot is outside the range: no key */
    if (prefix != NULL && memchr(prefix, '{', plen) != NULL && memchr(prefix, '}', plen) != NULL) {
        const char *o = memchr(prefix, '{', plen);
        const char *cl = memchr(o, '}', plen - (size_t)(o - prefix));
        if (cl != NULL && cl > o + 1) { /* a complete hash tag: one slot, if in the range */
            lua_Integer t = cm_key_slot(prefix, plen);
            none = t < lo || t > hi; /* a map's other partitions must not see it again */
            lo = hi = t;
        }
    }
    struct scan_state *s = lua_newuserdatauv(L, sizeof(*s), 0);
    s->it = NULL;
    s->owned = c->kind == UDF_MAP ? c->part.owned : NULL;
    /* Owned by the call: closed when it ends, whatever the script does. The call's
     * table of them is made by its first scan. */
    if (c->iters_ref == LUA_NOREF) {
        lua_newtable(L);
        c->iters_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->iters_ref);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    /* Function scans fill the block cache: a map runs again (every epoch of a training
     * run), and its blocks should then be read without decompressing them again. */
    if (!none) {
        s->it = eng_iter_new(c->vm->u->eng, c->txn, ENG_ITER_FILL_CACHE, (unsigned)lo,
                             (unsigned)hi, NULL, 0);
        if (s->it == NULL || eng_iter_set_prefix(s->it, prefix, plen) != 0)
            return luaL_error(L, "eddy.scan: out of memory");
    }
    lua_pushcclosure(L, udflib_scan_next, 1);
    return 1;
}

void udf__close_iters(struct udf_call *c)
{
    lua_State *L = c->vm->L;
    if (c->iters_ref == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->iters_ref);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        struct scan_state *s = lua_touserdata(L, -1);
        if (s != NULL) {
            eng_iter_free(s->it);
            s->it = NULL;
        }
    }
    lua_pop(L, 1);
}

/* ---- Opening -------------------------------------------------------------------------------------- */

void udf__open_redis(lua_State *L)
{
    static const luaL_Reg redis[] = {
        {"call", udflib_call},
        {"pcall", udflib_pcall},
        {"error_reply", udflib_error_reply},
        {"status_reply", udflib_status_reply},
        {"sha1hex", udflib_sha1hex},
        {"log", udflib_log},
        {"setresp", udflib_setresp},
        {"register_function", udflib_register_function},
        {"set_repl", udflib_noop},
        {"replicate_commands", udflib_true},
        {"breakpoint", udflib_noop},
        {"debug", udflib_noop},
        {NULL, NULL},
    };
    luaL_newlib(L, redis);
    static const struct {
        const char *name;
        int v;
    } consts[] = {{"LOG_DEBUG", CM_LOG_DEBUG}, {"LOG_VERBOSE", CM_LOG_VERBOSE},
                  {"LOG_NOTICE", CM_LOG_NOTICE}, {"LOG_WARNING", CM_LOG_WARNING},
                  {"REPL_NONE", 0}, {"REPL_SLAVE", 1}, {"REPL_REPLICA", 1}, {"REPL_AOF", 2},
                  {"REPL_ALL", 3}, {"REDIS_VERSION_NUM", UDF_REDIS_VERSION_NUM}};
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++) {
        lua_pushinteger(L, consts[i].v);
        lua_setfield(L, -2, consts[i].name);
    }
    lua_pushliteral(L, UDF_REDIS_VERSION);
    lua_setfield(L, -2, "REDIS_VERSION");
    lua_setglobal(L, "redis");

    static const luaL_Reg eddy[] = {
        {"get", udflib_get},       {"set", udflib_set},   {"del", udflib_del},
        {"exists", udflib_exists}, {"slot", udflib_slot}, {"scan", udflib_scan},
        {"commit", udflib_commit},
        {NULL, NULL},
    };
    luaL_newlib(L, eddy);
    lua_pushliteral(L, EDDY_VERSION);
    lua_setfield(L, -2, "VERSION");
    lua_setglobal(L, "eddy");
}
