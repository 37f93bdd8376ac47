/* vm.c - sandboxed Lua states: the capped allocator, the safe subset of the standard
 * libraries behind read-only proxies, the count hook (preemption, time limit, kill),
 * and running library code in load mode (FUNCTION LOAD and each VM's copy). */
#include "udf_int.h"

#include <ctype.h>
#include <lua-cjson.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_COUNT 10000          /* instructions between hook calls */
#define PROTECTED "protected"     /* __metatable of every read-only proxy */

/* ---- Allocator ------------------------------------------------------------------------ */

#define ALLOC_CHECK (1u << 20) /* bytes allocated between the allocator's time checks */

/* Whether the running call is out of time or killed (then marked so). The count hook
 * checks every HOOK_COUNT instructions, but one instruction can be a C function that
 * works on megabytes (s:upper() of 8 MB, say): 10,000 of them overran a 200 ms limit
 * by 48 s. Such work allocates, so the allocator checks too, every ALLOC_CHECK bytes,
 * and fails the allocation of a call out of time: Lua raises, and the call's error
 * reply says it timed out (the kill is recorded). */
static bool call_expired(struct udf_vm *vm)
{
    struct udf_call *c = vm->current;
    if (c == NULL || vm->loading)
        return false;
    if (c->killing || atomic_load(&c->kill) != 0)
        return true;
    if (cm_mono_us() > c->deadline_us) {
        atomic_store(&c->kill, KILL_TIMEOUT);
        return true;
    }
    return false;
}

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct udf_vm *vm = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        vm->mem_used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && vm->mem_used + (nsize - old) > vm->mem_limit)
        return NULL; /* Lua collects garbage and retries, then raises "not enough memory" */
    if (nsize > old && (vm->alloc_since_check += nsize - old) >= ALLOC_CHECK) {
        vm->alloc_since_check = 0;
        if (call_expired(vm))
            return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    vm->mem_used = vm->mem_used - old + nsize;
    return p;
}

struct udf_vm *udf__vm_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---- Hook ------------------------------------------------------------------------------ */

/* The hook leaves by longjmp (lua_yield, lua_error) to a setjmp made inside liblua,
 * which ThreadSanitizer does not see (liblua is not instrumented): instrumented, every
 * preemption leaked one entry of TSan's shadow call stack until it overflowed (a SEGV
 * of eddyd in udf_hostile_loops under make tsan). These functions (the hook and the
 * coroutine.resume/yield wrappers, which yield the same way) are therefore not
 * instrumented; they touch only this thread's Lua state and call. Other C functions
 * that raise Lua errors still leak one entry per error under TSan: a script raising
 * tens of thousands of caught errors would overflow a TSan build (only). */
#if defined(__SANITIZE_THREAD__)
#define NO_TSAN __attribute__((no_sanitize_thread))
#else
#define NO_TSAN
#endif

static void hook(lua_State *L, lua_Debug *ar);

NO_TSAN void udf__tick(lua_State *L)
{
    struct udf_vm *vm = udf__vm_of(L);
    if (vm->loading) {
        if (cm_mono_us() > vm->load_deadline_us) {
            lua_sethook(L, hook, LUA_MASKCOUNT, 1);
            luaL_error(L, "FUNCTION LOAD timeout");
        }
        return;
    }
    struct udf_call *c = vm->current;
    if (c == NULL)
        return;
    if (!c->killing) {
        int why = atomic_load(&c->kill);
        if (why == 0 && cm_mono_us() > c->deadline_us) {
            why = KILL_TIMEOUT;
            atomic_store(&c->kill, why);
        }
        if (why == 0)
            return;
        c->killing = true;
    }
    /* From now on every instruction of this coroutine raises again, so a pcall in the
     * script cannot swallow the kill: the error reaches the top. */
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    lua_pushliteral(L, "eddy: call killed");
    lua_error(L);
}

NO_TSAN static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct udf_vm *vm = udf__vm_of(L);
    udf__tick(L);
    struct udf_call *c = vm->current;
    if (c == NULL || vm->loading)
        return;
    struct udf_limits lim;
    lim.slice_us = vm->u->limits.slice_us;
    /* A held attempt (UDF_COMMIT_HOLD) runs to its end, as a Redis function does:
     * other threads wait for the stripes it holds, not for this thread's clients. */
    if (!c->held && cm_mono_us() - c->slice_start_us >= lim.slice_us && lua_isyieldable(L)) {
        if (L != c->co)
            c->inner_preempt = true; /* our coroutine.resume passes the yield outward */
        lua_yield(L, 0);
    }
}

void udf__install_hook(lua_State *L)
{
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_COUNT);
}

/* ---- Sandbox ------------------------------------------------------------------------------ */

static int udflib_ro_newindex(lua_State *L)
{
    return luaL_error(L, "Attempt to modify a readonly table");
}

static int udflib_ro_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1)); /* next */
    lua_pushvalue(L, lua_upvalueindex(2)); /* the real table */
    lua_pushnil(L);
    return 3;
}

static int udflib_global_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "Script attempted to access nonexistent global variable '%s'",
                          lua_tostring(L, 2));
    return luaL_error(L, "Script attempted to access nonexistent global variable");
}

/* Replaces the table at the top with a read-only proxy of it. globals: missing names
 * raise instead of reading nil, as in Redis. */
static void make_proxy(lua_State *L, bool globals)
{
    int real = lua_gettop(L);
    lua_newtable(L);                  /* proxy */
    lua_createtable(L, 0, 4);         /* its metatable */
    if (globals) {
        lua_pushvalue(L, real);
        lua_pushcclosure(L, udflib_global_index, 1);
    } else {
        lua_pushvalue(L, real);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, udflib_ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_getglobal(L, "next");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, udflib_ro_pairs, 2);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, PROTECTED);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, real);
}

static bool is_protected(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    lua_getfield(L, -1, "__metatable");
    bool p = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), PROTECTED) == 0;
    lua_pop(L, 2);
    return p;
}

static int udflib_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_protected(L, 1))
        return luaL_error(L, "Attempt to modify a readonly table");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* setmetatable without __gc: finalizers run with hooks off, where a loop could not
 * be stopped. */
static int udflib_setmetatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in eddy functions");
        lua_pop(L, 1);
    }
    if (is_protected(L, 1))
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int udflib_collectgarbage(lua_State *L)
{
    static const char *const opts[] = {"count", "step", "isrunning", "collect", NULL};
    int o = luaL_checkoption(L, 1, "collect", opts);
    switch (o) {
    case 0: {
        int kb = lua_gc(L, LUA_GCCOUNT, 0), b = lua_gc(L, LUA_GCCOUNTB, 0);
        lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024);
        return 1;
    }
    case 1:
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)luaL_optinteger(L, 2, 0)));
        return 1;
    case 2:
        lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING, 0));
        return 1;
    default:
        lua_gc(L, LUA_GCCOLLECT, 0);
        lua_pushinteger(L, 0);
        return 1;
    }
}

/* load(chunk [, chunkname [, mode [, env]]]) for text chunks only. */
static int udflib_load(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strchr(mode, 'b') != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "attempt to load a binary chunk (bytecode is not allowed)");
        return 2;
    }
    int has_env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, s, n, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* coroutine.resume that passes the hook's preemption of an inner coroutine on to the
 * call's own coroutine (see udf.h), so scripts that use coroutines are preempted too. */
static int resume_loop(lua_State *L, lua_State *co, int narg);

NO_TSAN static int resume_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return resume_loop(L, lua_tothread(L, 1), (int)ctx);
}

NO_TSAN static int resume_loop(lua_State *L, lua_State *co, int narg)
{
    struct udf_vm *vm = udf__vm_of(L);
    for (;;) {
        int nres;
        int st = lua_resume(co, L, narg, &nres);
        narg = 0;
        struct udf_call *c = vm->current;
        if (st == LUA_YIELD && c != NULL && c->inner_preempt) {
            /* The hook paused an inner coroutine: pass the pause outward level by
             * level; the flag is cleared only when the call's own coroutine yields. */
            lua_pop(co, nres);
            if (lua_isyieldable(L)) {
                if (L == c->co)
                    c->inner_preempt = false;
                return lua_yieldk(L, 0, 0, resume_k);
            }
            c->inner_preempt = false;
            continue; /* cannot yield here: go on running the inner coroutine */
        }
        if (st == LUA_OK || st == LUA_YIELD) {
            if (!lua_checkstack(L, nres + 1)) {
                lua_pop(co, nres);
                lua_pushboolean(L, 0);
                lua_pushliteral(L, "too many results to resume");
                return 2;
            }
            lua_pushboolean(L, 1);
            lua_xmove(co, L, nres);
            return nres + 1;
        }
        lua_pushboolean(L, 0);
        lua_xmove(co, L, 1); /* the error object */
        return 2;
    }
}

NO_TSAN static int udflib_co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    int narg = lua_gettop(L) - 1;
    int st = lua_status(co);
    if (co == L || (st == LUA_OK && lua_gettop(co) == 0) || (st != LUA_OK && st != LUA_YIELD)) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, co == L ? "cannot resume non-suspended coroutine"
                                  : "cannot resume dead coroutine");
        return 2;
    }
    if (st == LUA_OK) {
        lua_Debug ar;
        if (lua_getstack(co, 0, &ar)) { /* running (it resumed us): not suspended */
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "cannot resume non-suspended coroutine");
            return 2;
        }
    }
    if (!lua_checkstack(co, narg)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "too many arguments to resume");
        return 2;
    }
    lua_xmove(L, co, narg);
    return resume_loop(L, co, narg);
}

/* coroutine.yield may not yield the call's own coroutine: that is eddy's to pause. */
NO_TSAN static int udflib_co_yield(lua_State *L)
{
    struct udf_vm *vm = udf__vm_of(L);
    if ((vm->current != NULL && L == vm->current->co) || vm->loading || !lua_isyieldable(L))
        return luaL_error(L, "attempt to yield from outside a coroutine");
    return lua_yield(L, lua_gettop(L));
}

static const char wrap_src[] =
    "local create, resume = ...\n"
    "return function(f)\n"
    "  local co = create(f)\n"
    "  return function(...)\n"
    "    local r = table.pack(resume(co, ...))\n"
    "    if r[1] then return table.unpack(r, 2, r.n) end\n"
    "    local e = r[2]\n"
    "    if type(e) == 'string' then e = e end\n"
    "    error(e, 0)\n"
    "  end\n"
    "end\n";

/* The built-in reducers of MAPREDUCE. @sum adds numbers, vectors (in C, in place on
 * the decoded copy) and tables key by key; nil partials are skipped. */
static const char reducers_src[] =
    "local isvec, type, pairs, error = eddy.vec.isvec, type, pairs, error\n"
    "local function add(a, b)\n"
    "  if a == nil then return b end\n"
    "  if b == nil then return a end\n"
    "  local ta = type(a)\n"
    "  if ta == 'number' and type(b) == 'number' then return a + b end\n"
    "  if isvec(a) and isvec(b) then return a:add(b) end\n"
    "  if ta == 'table' and type(b) == 'table' then\n"
    "    for k, v in pairs(b) do a[k] = add(a[k], v) end\n"
    "    return a\n"
    "  end\n"
    "  error('@sum cannot add a ' .. ta .. ' and a ' .. type(b), 0)\n"
    "end\n"
    "local r = {}\n"
    "r['@sum'] = function(keys, args, partials)\n"
    "  local acc = nil\n"
    "  for i = 1, partials.n do acc = add(acc, partials[i]) end\n"
    "  return acc\n"
    "end\n"
    "r['@list'] = function(keys, args, partials) return partials end\n"
    "return r\n";

bool udf__push_builtin_reducer(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "eddy.reducers");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1))
        return true;
    lua_pop(L, 1);
    return false;
}

/* ---- Guards around standard functions ---------------------------------------------
 * Some C functions of the standard library loop without running Lua code or
 * allocating, so neither the hook nor the memory limit can stop them; others run a
 * script's function where the hook is off. Each guard checks its arguments (or takes
 * the risky part over) and then calls the original, its upvalue 1. */

static int call_original(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* string.rep: an empty string (and separator) repeated math.maxinteger times loops
 * for ever without allocating. (A result over the memory limit fails its allocation
 * at once.) */
static int guard_str_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return call_original(L);
}

/* The most elements a table can hold within the memory limit (16 bytes each). */
static lua_Integer max_elements(lua_State *L)
{
    return (lua_Integer)(udf__vm_of(L)->mem_limit / 16) + 1;
}

/* table.move(a1, f, e, t): e - f + 1 moves, each of a nil costs nothing to store. */
static int guard_tmove(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    if (e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= (lua_Unsigned)max_elements(L))
        return luaL_error(L, "table.move: too many elements to move (udf-memory-limit)");
    return call_original(L);
}

/* table.insert(t, pos, v) and table.remove(t, pos) shift every element up to #t, and
 * __len can claim any length. */
static int guard_tshift(lua_State *L)
{
    if (lua_gettop(L) >= (lua_toboolean(L, lua_upvalueindex(2)) ? 3 : 2)) {
        lua_Integer n = luaL_len(L, 1);
        if (n > max_elements(L) || n < -max_elements(L))
            return luaL_error(L, "table length %I is more than udf-memory-limit can hold",
                              (LUAI_UACINT)n);
    }
    return call_original(L);
}

/* xpcall: Lua calls the message handler before the error unwinds. When the error is
 * the hook's (a kill, the time limit, FUNCTION LOAD's budget) the hook is off while
 * the handler runs, and a handler that loops could never be stopped. The handler is
 * wrapped: for those errors it is not called; for the script's own errors it runs
 * with the hook on. */
static int xpcall_msgh(lua_State *L)
{
    struct udf_vm *vm = udf__vm_of(L);
    struct udf_call *c = vm->current;
    if ((c != NULL && (c->killing || atomic_load(&c->kill) != 0)) ||
        (vm->loading && cm_mono_us() > vm->load_deadline_us))
        return 1; /* the error as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pcall(L, lua_gettop(L) - 1, 1, 0); /* its result, or its own error */
    return 1;
}

NO_TSAN static int xpcall_finish(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

NO_TSAN static int guard_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, xpcall_msgh, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1); /* as luaB_xpcall: true, the function, below its arguments */
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_finish);
    return xpcall_finish(L, status, 2);
}

/* cjson's settings live in the Lua state, which every library of the thread shares:
 * one library's encode_max_depth(1) broke another's encode, and a depth of 2^31-1
 * let decode overflow the C stack. They are fixed here (read them with no
 * arguments). */
static int guard_cjson_setting(lua_State *L)
{
    if (lua_gettop(L) > 0)
        return luaL_error(L, "cjson settings are fixed in eddy (every library of a thread "
                             "shares them)");
    return call_original(L);
}

/* How many bytes cjson may write for a string: quotes, escapes (\uXXXX for control
 * characters). */
static size_t json_string_bound(const char *s, size_t n, size_t left)
{
    size_t need = 2;
    for (size_t i = 0; i < n && need <= left; i++) {
        unsigned char ch = (unsigned char)s[i];
        need += ch < 32 || ch == 127 ? 6 : ch == '"' || ch == '\\' || ch == '/' ? 2 : 1;
    }
    return need;
}

/* Whether cjson.encode's output for the value at idx fits in *left bytes (counted
 * down). Raw reads, as cjson's; past cjson's own depth limit it raises by itself. */
static bool json_fits(lua_State *L, int idx, int depth, size_t *left)
{
    idx = lua_absindex(L, idx);
    size_t need;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        need = json_string_bound(s, n, *left);
        break;
    }
    case LUA_TNUMBER:
        need = 34; /* "%.14g", quoted as a key */
        break;
    case LUA_TTABLE:
        if (depth > 1000 || !lua_checkstack(L, 4))
            return true;
        need = 2;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (!json_fits(L, -2, depth + 1, left) || !json_fits(L, -1, depth + 1, left)) {
                lua_pop(L, 2);
                return false;
            }
            lua_pop(L, 1);
            need += 2; /* : and , */
        }
        break;
    default:
        need = 5; /* true, false, null */
        break;
    }
    if (need > *left)
        return false;
    *left -= need;
    return true;
}

/* cjson.encode writes into a buffer of its own, outside the memory limit (2,000
 * references to a 1 MB string took 2 GB): refused when the result cannot fit in what
 * is left of udf-memory-limit. */
static int guard_cjson_encode(lua_State *L)
{
    struct udf_vm *vm = udf__vm_of(L);
    size_t left = vm->mem_limit > vm->mem_used ? vm->mem_limit - vm->mem_used : 0;
    luaL_checkany(L, 1);
    if (!json_fits(L, 1, 0, &left))
        return luaL_error(L, "cjson.encode: the result would exceed udf-memory-limit");
    return call_original(L);
}

/* math.randomseed seeds the generator every library of the thread shares: after a
 * call that seeded it, the next call begins with a fresh random seed. */
static int guard_randomseed(lua_State *L)
{
    udf__vm_of(L)->reseed = true;
    return call_original(L);
}

void udf__vm_reseed(struct udf_vm *vm)
{
    lua_State *L = vm->L;
    vm->reseed = false;
    lua_getfield(L, LUA_REGISTRYINDEX, "eddy.randomseed");
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
        lua_pop(L, 1);
}

/* Replaces table.name (the real table, before it is proxied) with guard, which gets
 * the original as upvalue 1 (and extra as upvalue 2). */
static void guard(lua_State *L, const char *table, const char *name, lua_CFunction g, int extra)
{
    lua_getglobal(L, table);
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return;
    }
    int nup = 1;
    if (extra >= 0) {
        lua_pushboolean(L, extra);
        nup = 2;
    }
    lua_pushcclosure(L, g, nup);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static void remove_global(lua_State *L, const char *name)
{
    lua_pushnil(L);
    lua_setglobal(L, name);
}

static void set_field_fn(lua_State *L, const char *table, const char *name, lua_CFunction f)
{
    lua_getglobal(L, table);
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static int open_all(lua_State *L)
{
    struct udf_vm *vm = lua_touserdata(L, 1);
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
                                    {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->name != NULL; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    /* os: only the clocks. */
    luaL_requiref(L, "os_full", luaopen_os, 0);
    lua_createtable(L, 0, 2);
    lua_getfield(L, -2, "clock");
    lua_setfield(L, -2, "clock");
    lua_getfield(L, -2, "time");
    lua_setfield(L, -2, "time");
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    static const char *const gone[] = {"dofile", "loadfile", "require", "print", "package",
                                       "debug", "io", NULL};
    for (int i = 0; gone[i] != NULL; i++)
        remove_global(L, gone[i]);
    lua_pushcfunction(L, udflib_load);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, udflib_rawset);
    lua_setglobal(L, "rawset");
    lua_pushcfunction(L, udflib_setmetatable);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, udflib_collectgarbage);
    lua_setglobal(L, "collectgarbage");
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    udf__open_patterns(L, udf__tick);
    udf__vec_set_tick(udf__tick);
    lua_pop(L, 1);
    set_field_fn(L, LUA_COLIBNAME, "resume", udflib_co_resume);
    set_field_fn(L, LUA_COLIBNAME, "yield", udflib_co_yield);
    /* coroutine.wrap on top of the preemption-aware resume. */
    if (luaL_loadbufferx(L, wrap_src, sizeof(wrap_src) - 1, "=wrap", "t") != LUA_OK)
        return lua_error(L);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_getfield(L, -1, "create");
    lua_getfield(L, -2, "resume");
    lua_remove(L, -3);
    lua_call(L, 2, 1);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_insert(L, -2);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);

    luaopen_cjson(L);
    lua_setglobal(L, "cjson");
    /* cjson frees its output buffer after each encode (it kept the largest one). */
    lua_getglobal(L, "cjson");
    if (lua_getfield(L, -1, "encode_keep_buffer") == LUA_TFUNCTION) {
        lua_pushboolean(L, 0);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    static const char *const cjson_settings[] = {
        "encode_sparse_array", "encode_max_depth", "decode_max_depth", "encode_number_precision",
        "encode_keep_buffer", "encode_invalid_numbers", "decode_invalid_numbers",
        "encode_escape_forward_slash", "encode_empty_table_as_object", "decode_array_with_array_mt",
        NULL};
    for (int i = 0; cjson_settings[i] != NULL; i++)
        guard(L, "cjson", cjson_settings[i], guard_cjson_setting, -1);
    guard(L, "cjson", "encode", guard_cjson_encode, -1);
    guard(L, LUA_STRLIBNAME, "rep", guard_str_rep, -1);
    guard(L, LUA_TABLIBNAME, "move", guard_tmove, -1);
    guard(L, LUA_TABLIBNAME, "insert", guard_tshift, 1);
    guard(L, LUA_TABLIBNAME, "remove", guard_tshift, 0);
    lua_getglobal(L, LUA_MATHLIBNAME);
    lua_getfield(L, -1, "randomseed");
    lua_setfield(L, LUA_REGISTRYINDEX, "eddy.randomseed");
    lua_pop(L, 1);
    guard(L, LUA_MATHLIBNAME, "randomseed", guard_randomseed, -1);
    lua_pushcfunction(L, guard_xpcall);
    lua_setglobal(L, "xpcall");
    udf__open_redis(L);
    lua_getglobal(L, "eddy");
    udf__open_vec(L);
    lua_setfield(L, -2, "vec");
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, reducers_src, sizeof(reducers_src) - 1, "=reducers", "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "eddy.reducers");

    /* Every library table becomes a read-only proxy, the string metatable is hidden,
     * and code runs with a proxy of the globals as _ENV. */
    static const char *const ro[] = {"string", "table", "math", "utf8", "coroutine", "os",
                                     "redis", "eddy", "cjson", NULL};
    for (int i = 0; ro[i] != NULL; i++) {
        lua_getglobal(L, ro[i]);
        if (lua_istable(L, -1)) {
            if (strcmp(ro[i], "eddy") == 0) {
                lua_getfield(L, -1, "vec");
                make_proxy(L, false);
                lua_setfield(L, -2, "vec");
            }
            make_proxy(L, false);
            lua_setglobal(L, ro[i]);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushliteral(L, PROTECTED);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    lua_pushglobaltable(L);
    make_proxy(L, true);
    lua_pushglobaltable(L);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "_G"); /* _G names the proxy */
    lua_pop(L, 1);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    (void)vm;
    return 0;
}

/* An error outside any protected call: Lua aborts the process after this. eddy runs
 * every call's code protected; this only says what happened, in the log. */
static int panic_log(lua_State *L)
{
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
    cm_log(CM_LOG_WARNING, "Lua panic (an error outside a protected call): %s", msg);
    return 0;
}

lua_State *udf__state_new(struct udf_vm *vm)
{
    lua_State *L = lua_newstate(vm_alloc, vm);
    if (L == NULL)
        return NULL;
    lua_atpanic(L, panic_log);
    lua_pushcfunction(L, open_all);
    lua_pushlightuserdata(L, vm);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        cm_log(CM_LOG_WARNING, "Cannot create a Lua state: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    lua_newtable(L);
    vm->funcs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    vm->scripts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    udf__install_hook(L);
    lua_gc(L, LUA_GCGEN, 0, 0);
    return L;
}

/* ---- Shebang and flags ----------------------------------------------------------------------- */

int udf__parse_flag(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int flag;
    } flags[] = {{"no-writes", UDF_F_NO_WRITES},   {"allow-oom", UDF_F_ALLOW_OOM},
                 {"allow-stale", UDF_F_ALLOW_STALE}, {"no-cluster", UDF_F_NO_CLUSTER},
                 {"allow-cross-slot-keys", UDF_F_ALLOW_CROSS_SLOT}};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strlen(flags[i].name) == n && memcmp(flags[i].name, s, n) == 0)
            return flags[i].flag;
    return -1;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

int udf__parse_shebang(const char *code, size_t len, bool is_lib, char *name, size_t namecap,
                       int *flags, size_t *body_off, struct cm_err *err)
{
    *flags = 0;
    *body_off = 0;
    if (name)
        name[0] = '\0';
    if (len < 2 || code[0] != '#' || code[1] != '!') {
        if (is_lib)
            return cm_err_set(err, CM_EINVAL, "ERR Missing library metadata");
        return 0;
    }
    const char *nl = memchr(code, '\n', len);
    size_t line = nl ? (size_t)(nl - code) : len;
    /* Tokens separated by spaces: the engine first, then name=... and flags=... */
    size_t i = 2, tok = 0;
    bool got_name = false;
    while (i < line) {
        while (i < line && (code[i] == ' ' || code[i] == '\r'))
            i++;
        size_t start = i;
        while (i < line && code[i] != ' ' && code[i] != '\r')
            i++;
        if (i == start)
            break;
        const char *t = code + start;
        size_t tn = i - start;
        if (tok++ == 0) {
            if (!(tn == 3 && memcmp(t, "lua", 3) == 0))
                return cm_err_set(err, CM_EINVAL, "ERR Engine '%.*s' not found", (int)tn, t);
        } else if (is_lib && tn > 5 && memcmp(t, "name=", 5) == 0) {
            if (!valid_name(t + 5, tn - 5))
                return cm_err_set(err, CM_EINVAL,
                                  "ERR Library names can only contain letters, numbers, or "
                                  "underscores(_) and must be at least one character long");
            if (tn - 5 >= namecap)
                return cm_err_set(err, CM_EINVAL, "ERR Library name is too long");
            memcpy(name, t + 5, tn - 5);
            name[tn - 5] = '\0';
            got_name = true;
        } else if (!is_lib && tn >= 6 && memcmp(t, "flags=", 6) == 0) {
            const char *f = t + 6, *end = t + tn;
            while (f < end) {
                const char *comma = memchr(f, ',', (size_t)(end - f));
                size_t fl = comma ? (size_t)(comma - f) : (size_t)(end - f);
                int v = fl ? udf__parse_flag(f, fl) : 0;
                if (v < 0)
                    return cm_err_set(err, CM_EINVAL, "ERR Unexpected flag in script shebang: %.*s",
                                      (int)fl, f);
                *flags |= v;
                f += fl + 1;
            }
        } else {
            return cm_err_set(err, CM_EINVAL, "ERR Invalid metadata value given: %.*s", (int)tn, t);
        }
    }
    if (tok == 0)
        return cm_err_set(err, CM_EINVAL, "ERR Missing library metadata");
    if (is_lib && !got_name)
        return cm_err_set(err, CM_EINVAL, "ERR Library name was not given");
    *body_off = line; /* keep the newline: line numbers stay those of the source */
    return 0;
}

void udf__free_funcs(struct udf_func *f, int n)
{
    for (int i = 0; i < n; i++)
        cm_free(f[i].name);
    cm_free(f);
}

/* ---- Loading a library ------------------------------------------------------------------------ */

/* Collects the registered functions (table at top) into an array. */
static int collect_funcs(lua_State *L, struct udf_func **out, int *nout)
{
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        n++;
        lua_pop(L, 1);
    }
    struct udf_func *f = cm_calloc((size_t)(n ? n : 1), sizeof(*f));
    if (f == NULL)
        return CM_ENOMEM;
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        f[i].name = cm_strdup(lua_tostring(L, -2));
        lua_getfield(L, -1, "flags");
        f[i].flags = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
        if (f[i].name == NULL) {
            udf__free_funcs(f, i);
            return CM_ENOMEM;
        }
        i++;
    }
    *out = f;
    *nout = n;
    return 0;
}

/* FUNCTION LOAD's budget: UDF_LOAD_TIME_MS; tests shrink it with
 * EDDY_TEST_LOAD_TIME_MS to play a machine too busy to load a library in time. */
static int load_budget_ms(void)
{
    const char *t = getenv("EDDY_TEST_LOAD_TIME_MS");
    return t != NULL && atoi(t) > 0 ? atoi(t) : UDF_LOAD_TIME_MS;
}

int udf__load_lib(struct udf_vm *vm, const char *libname, const char *code, size_t len,
                  struct udf_func **funcs, int *nfuncs, struct cm_err *err)
{
    lua_State *L = vm->L;
    int top = lua_gettop(L);
    char name[128];
    int flags;
    size_t off;
    *funcs = NULL;
    *nfuncs = 0;
    if (udf__parse_shebang(code, len, true, name, sizeof(name), &flags, &off, err) != 0)
        return CM_EINVAL;
    if (libname != NULL && strcmp(libname, name) != 0)
        return cm_err_set(err, CM_EINVAL, "ERR Library name mismatch");
    if (luaL_loadbufferx(L, code + off, len - off, "@user_function", "t") != LUA_OK) {
        cm_err_set(err, CM_EINVAL, "ERR Error compiling function: %s", lua_tostring(L, -1));
        lua_settop(L, top);
        return CM_EINVAL;
    }
    lua_newtable(L);
    lua_pushvalue(L, -1);
    vm->load_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_insert(L, -2); /* registrations table below the chunk */
    vm->loading = true;
    vm->load_deadline_us = cm_mono_us() + (int64_t)vm->load_time_ms * 1000;
    int st = lua_pcall(L, 0, 0, 0);
    vm->loading = false;
    udf__install_hook(L); /* the timeout may have set a count of 1 */
    luaL_unref(L, LUA_REGISTRYINDEX, vm->load_ref);
    vm->load_ref = LUA_NOREF;
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg != NULL && strstr(msg, "FUNCTION LOAD timeout") != NULL)
            cm_err_set(err, CM_EINVAL, "ERR Error registering functions: ERR FUNCTION LOAD timeout");
        else if (st == LUA_ERRMEM)
            cm_err_set(err, CM_EINVAL, "ERR Error registering functions: out of memory");
        else
            cm_err_set(err, CM_EINVAL, "ERR Error registering functions: ERR %s",
                       msg ? msg : "(error object is not a string)");
        lua_settop(L, top);
        lua_gc(L, LUA_GCCOLLECT, 0);
        return CM_EINVAL;
    }
    if (collect_funcs(L, funcs, nfuncs) != 0) {
        lua_settop(L, top);
        return cm_err_set(err, CM_ENOMEM, "ERR out of memory");
    }
    if (*nfuncs == 0) {
        udf__free_funcs(*funcs, 0);
        *funcs = NULL;
        lua_settop(L, top);
        return cm_err_set(err, CM_EINVAL, "ERR No functions registered");
    }
    lua_settop(L, top + 1); /* leave the registrations table */
    return 0;
}

/* ---- VMs ----------------------------------------------------------------------------------------- */

struct udf_vm *udf_vm_new(struct udf *u, struct cm_err *err)
{
    struct udf_vm *vm = cm_calloc(1, sizeof(*vm));
    if (vm == NULL) {
        cm_err_set(err, CM_ENOMEM, "out of memory");
        return NULL;
    }
    vm->u = u;
    cm_buf_init(&vm->cmd_out);
    vm->mem_limit = u->limits.memory + (2u << 20); /* the libraries themselves need room */
    vm->load_ref = LUA_NOREF;
    vm->load_time_ms = load_budget_ms();
    vm->generation = (unsigned long long)-1;
    vm->L = udf__state_new(vm);
    if (vm->L == NULL) {
        cm_free(vm);
        cm_err_set(err, CM_ENOMEM, "cannot create a Lua state");
        return NULL;
    }
    return vm;
}

void udf_vm_free(struct udf_vm *vm)
{
    if (vm == NULL)
        return;
    lua_close(vm->L);
    cm_buf_deinit(&vm->cmd_out);
    cm_free(vm);
}

size_t udf_vm_memory(const struct udf_vm *vm)
{
    return vm->mem_used;
}

struct libcopy {
    char *name, *code;
    size_t len;
};

int udf__vm_sync(struct udf_vm *vm, struct cm_err *err)
{
    struct udf *u = vm->u;
    unsigned long long gen = atomic_load(&u->generation);
    if (vm->generation == gen)
        return 0;
    /* Copy the libraries out, so no lock is held while Lua runs. */
    pthread_mutex_lock(&u->lock);
    gen = atomic_load(&u->generation);
    int n = 0;
    for (struct udf_lib *l = u->libs; l != NULL; l = l->next)
        n++;
    struct libcopy *libs = cm_calloc((size_t)(n ? n : 1), sizeof(*libs));
    int i = 0;
    for (struct udf_lib *l = u->libs; l != NULL && libs != NULL; l = l->next, i++) {
        libs[i].name = cm_strdup(l->name);
        libs[i].code = cm_memdup(l->code, l->len);
        libs[i].len = l->len;
    }
    vm->mem_limit = u->limits.memory + (2u << 20);
    pthread_mutex_unlock(&u->lock);
    if (libs == NULL)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    lua_State *L = vm->L;
    lua_newtable(L); /* the new name -> {fn, flags, lib} table */
    int rc = 0;
    for (i = 0; i < n; i++) {
        struct udf_func *funcs;
        int nf;
        if (libs[i].name == NULL || libs[i].code == NULL) {
            rc = cm_err_set(err, CM_ENOMEM, "out of memory");
            continue;
        }
        vm->load_time_ms = UDF_RELOAD_TIME_MS; /* accepted already */
        int lrc = udf__load_lib(vm, libs[i].name, libs[i].code, libs[i].len, &funcs, &nf, err);
        vm->load_time_ms = load_budget_ms();
        if (lrc != 0) {
            cm_log(CM_LOG_WARNING, "Library %s does not load in a VM: %s", libs[i].name, err->msg);
            rc = CM_EINVAL;
            continue;
        }
        udf__free_funcs(funcs, nf);
        lua_pushnil(L);
        while (lua_next(L, -2)) { /* name -> {fn, flags} */
            lua_pushstring(L, libs[i].name);
            lua_setfield(L, -2, "lib");
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -5);
        }
        lua_pop(L, 1);
    }
    for (i = 0; i < n; i++) {
        cm_free(libs[i].name);
        cm_free(libs[i].code);
    }
    cm_free(libs);
    lua_rawseti(L, LUA_REGISTRYINDEX, vm->funcs_ref);
    lua_newtable(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, vm->scripts_ref); /* scripts recompile lazily */
    vm->nscripts = 0;
    vm->generation = gen;
    lua_gc(L, LUA_GCCOLLECT, 0);
    return rc;
}
