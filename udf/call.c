/* call.c - running calls: each in a coroutine of its thread's VM and inside an engine
 * transaction. Preempted by the count hook (vm.c) when its slice ends, killed past
 * the time limit or by FUNCTION/SCRIPT KILL, retried from the start when its commit
 * conflicts, and its result converted to a RESP reply. */
#include "udf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char **copy_strings(int n, const char **s, const size_t *lens, size_t **lens_out)
{
    char **out = cm_calloc((size_t)(n ? n : 1), sizeof(char *));
    size_t *l = cm_calloc((size_t)(n ? n : 1), sizeof(size_t));
    if (out == NULL || l == NULL)
        goto oom;
    for (int i = 0; i < n; i++) {
        if ((out[i] = cm_malloc(lens[i] + 1)) == NULL)
            goto oom;
        memcpy(out[i], s[i], lens[i]);
        out[i][lens[i]] = '\0';
        l[i] = lens[i];
    }
    *lens_out = l;
    return out;
oom:
    if (out != NULL)
        for (int i = 0; i < n; i++)
            cm_free(out[i]);
    cm_free(out);
    cm_free(l);
    return NULL;
}

static void free_strings(char **s, size_t *lens, int n)
{
    if (s != NULL)
        for (int i = 0; i < n; i++)
            cm_free(s[i]);
    cm_free(s);
    cm_free(lens);
}

int udf__load_script(lua_State *L, const char *code, size_t len, size_t off)
{
    /* KEYS and ARGV are locals of the chunk, so calls interleaved on one VM cannot
     * see each other's; the prefix keeps the script's line numbers. */
    struct cm_buf src;
    cm_buf_init(&src);
    cm_buf_appendf(&src, "local KEYS, ARGV = ...; ");
    if (len > off) /* an empty script has no buffer: no NULL + 0 */
        cm_buf_append(&src, code + off, len - off);
    if (src.p == NULL) {
        lua_pushliteral(L, "out of memory");
        return LUA_ERRMEM;
    }
    int rc = luaL_loadbufferx(L, src.p, src.len, "@user_script", "t");
    cm_buf_deinit(&src);
    return rc;
}

/* Pushes the compiled chunk of script sha (compiling and caching it on first use),
 * from src (src_len bytes) if not NULL, else from the registry's copy. Returns 0, or
 * an error reply in err_out. */
static int push_script(struct udf_vm *vm, const char *sha, const char *src, size_t src_len,
                       int *flags, bool *shebang, struct cm_buf *err_out)
{
    lua_State *L = vm->L;
    struct cm_buf code;
    struct cm_err err = {0};
    char name[8];
    size_t off;
    cm_buf_init(&code);
    if (src == NULL) {
        if (udf__script_code(vm->u, sha, &code) != 0) {
            resp_add_error(err_out, "NOSCRIPT No matching script. Please use EVAL.");
            return CM_ENOTFOUND;
        }
        src = code.p;
        src_len = code.len;
    }
    int rc = udf__parse_shebang(src, src_len, false, name, sizeof(name), flags, &off, &err);
    if (shebang != NULL)
        *shebang = src_len >= 2 && src[0] == '#' && src[1] == '!';
    if (rc != 0) {
        resp_add_error(err_out, err.msg);
        cm_buf_deinit(&code);
        return rc;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->scripts_ref);
    if (lua_getfield(L, -1, sha) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        cm_buf_deinit(&code);
        return 0;
    }
    lua_pop(L, 1);
    rc = udf__load_script(L, src, src_len, off);
    cm_buf_deinit(&code);
    if (rc != LUA_OK) {
        resp_add_errorf(err_out, "ERR Error compiling script (new function): %s",
                        lua_tostring(L, -1));
        lua_pop(L, 2);
        return CM_EINVAL;
    }
    /* The cache lives in the state, inside udf-memory-limit: 10,000 distinct scripts
     * filled it and every call of the thread failed for memory. It is emptied when it
     * holds UDF_SCRIPT_CACHE scripts or half the limit is in use. */
    if (vm->nscripts >= UDF_SCRIPT_CACHE || vm->mem_used > vm->mem_limit / 2) {
        lua_newtable(L);
        lua_rawseti(L, LUA_REGISTRYINDEX, vm->scripts_ref);
        vm->nscripts = 0;
        lua_gc(L, LUA_GCCOLLECT, 0);
    } else {
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, sha);
        vm->nscripts++;
    }
    lua_remove(L, -2);
    return 0;
}

int udf_function_flags(struct udf_vm *vm, const char *name, size_t len)
{
    struct cm_err err = {0};
    lua_State *L = vm->L;
    udf__vm_sync(vm, &err);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->funcs_ref);
    lua_pushlstring(L, name, len);
    int flags = -1;
    if (lua_gettable(L, -2) == LUA_TTABLE) {
        lua_getfield(L, -1, "flags");
        flags = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return flags;
}

struct udf_call *udf_call_new(struct udf_vm *vm, const struct udf_call_req *req,
                              struct cm_buf *err_out)
{
    struct udf *u = vm->u;
    lua_State *L = vm->L;
    struct cm_err err = {0};
    if (udf__vm_sync(vm, &err) != 0 && err.code == CM_ENOMEM) {
        resp_add_error(err_out, "OOM cannot instantiate the function libraries");
        return NULL;
    }
    char sha[41];
    int flags = 0;
    bool shebang = false;
    char *label = NULL;
    int top = lua_gettop(L);
    vm->mem_limit = u->limits.memory + (2u << 20); /* CONFIG SET applies at once */
    if (req->kind == UDF_REDUCE && req->name_len > 0 && req->name[0] == '@') {
        struct cm_buf b;
        cm_buf_init(&b);
        cm_buf_append(&b, req->name, req->name_len);
        cm_buf_appendc(&b, '\0');
        if (b.p == NULL || !udf__push_builtin_reducer(L, b.p)) {
            cm_buf_deinit(&b);
            resp_add_error(err_out, "ERR unknown built-in reducer (there are @sum and @list)");
            return NULL;
        }
        lua_settop(L, top);
        label = b.p;
        memcpy(sha, "-", 2);
    } else if (req->kind == UDF_FCALL || req->kind == UDF_MAP || req->kind == UDF_REDUCE) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->funcs_ref);
        lua_pushlstring(L, req->name, req->name_len);
        if (lua_gettable(L, -2) != LUA_TTABLE) {
            lua_settop(L, top);
            resp_add_error(err_out, "ERR Function not found");
            return NULL;
        }
        lua_getfield(L, -1, "flags");
        flags = (int)lua_tointeger(L, -1);
        lua_getfield(L, -2, "lib");
        size_t liblen;
        const char *lib = lua_tolstring(L, -1, &liblen);
        struct cm_buf b; /* "lib.name", without printf: this runs for every call */
        cm_buf_init(&b);
        if (lib != NULL)
            cm_buf_append(&b, lib, liblen);
        cm_buf_appendc(&b, '.');
        cm_buf_append(&b, req->name, req->name_len);
        cm_buf_appendc(&b, '\0');
        label = b.p;
        lua_settop(L, top);
        memcpy(sha, "-", 2);
    } else {
        if (req->kind == UDF_EVAL) {
            if (udf_script_load(u, req->name, req->name_len, sha, &err) != 0) {
                resp_add_error(err_out, err.msg);
                return NULL;
            }
        } else {
            if (req->name_len != 40) {
                resp_add_error(err_out, "NOSCRIPT No matching script. Please use EVAL.");
                return NULL;
            }
            for (int i = 0; i < 40; i++)
                sha[i] = (char)tolower((unsigned char)req->name[i]);
            sha[40] = '\0';
        }
        if (push_script(vm, sha, req->kind == UDF_EVAL ? req->name : NULL,
                        req->kind == UDF_EVAL ? req->name_len : 0, &flags, &shebang,
                        err_out) != 0)
            return NULL;
        lua_settop(L, top);
        label = cm_strdup(sha);
    }
    bool is_func = req->kind == UDF_FCALL || req->kind == UDF_MAP || req->kind == UDF_REDUCE;
    /* Functions and scripts with a shebang declare their flags: without no-writes
     * they may write, so *_RO refuses them (Redis 7's rule). */
    if (req->readonly && (flags & UDF_F_NO_WRITES) == 0 && (is_func || shebang)) {
        cm_free(label);
        resp_add_error(err_out, "ERR Can not execute a script with write flag using *_ro command.");
        return NULL;
    }
    struct udf_call *c = cm_calloc(1, sizeof(*c));
    if (c == NULL || label == NULL)
        goto oom;
    c->vm = vm;
    c->kind = req->kind;
    c->label = label;
    c->name = is_func ? cm_malloc(req->name_len + 1) : cm_strdup(sha);
    if (c->name == NULL)
        goto oom;
    if (is_func) {
        memcpy(c->name, req->name, req->name_len);
        c->name[req->name_len] = '\0';
    }
    if (req->kind == UDF_EVAL) {
        if ((c->src = cm_memdup(req->name, req->name_len)) == NULL && req->name_len > 0)
            goto oom;
        c->src_len = req->name_len;
    }
    c->part = req->part;
    if (req->kind == UDF_REDUCE) {
        c->npartials = req->npartials;
        c->partials = copy_strings(req->npartials, req->partials, req->partial_lens,
                                   &c->partial_lens);
        if (c->partials == NULL)
            goto oom;
    }
    c->flags = flags;
    c->readonly = req->readonly || (flags & UDF_F_NO_WRITES);
    c->resp = req->resp;
    c->script_resp = 2;
    c->owner = req->owner;
    c->nkeys = req->nkeys;
    c->nargs = req->nargs;
    c->keys = copy_strings(req->nkeys, req->keys, req->keylens, &c->keylens);
    c->args = copy_strings(req->nargs, req->args, req->arglens, &c->arglens);
    if (c->keys == NULL || c->args == NULL)
        goto oom;
    c->co_ref = c->iters_ref = LUA_NOREF;
    cm_buf_init(&c->reply);
    cm_buf_init(&c->remote_cmd);
    c->start_us = cm_mono_us();
    c->deadline_us = c->start_us + u->limits.time_ms * 1000;
    udf__running_add(u, c);
    return c;
oom:
    if (c != NULL) {
        cm_free(c->name);
        free_strings(c->keys, c->keylens, c->nkeys);
        free_strings(c->args, c->arglens, c->nargs);
        free_strings(c->partials, c->partial_lens, c->npartials);
        cm_free(c);
    }
    cm_free(label);
    resp_add_error(err_out, "OOM out of memory starting the call");
    return NULL;
}

static void push_array(lua_State *L, char **s, size_t *lens, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, s[i], lens[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

void udf_call_set_commit(struct udf_call *c, udf_commit_fn fn, void *ud,
                         const struct eng_batch *pending)
{
    c->commit = fn;
    c->commit_ud = ud;
    c->pending = pending;
}

int udf_commit_direct(struct eng_txn *t, int how, struct cm_err *err)
{
    if (how == UDF_COMMIT_HOLD)
        return CM_EAGAIN; /* no thread's batch to hold stripes for */
    if (how == UDF_COMMIT_UNHOLD)
        return 0;
    return how == UDF_COMMIT_END    ? eng_txn_commit(t, err)
           : how == UDF_COMMIT_STEP ? eng_txn_checkpoint(t, err)
                                    : eng_txn_check(t, err);
}

int udf__commit(struct udf_call *c, int how, struct cm_err *err)
{
    if (c->commit != NULL)
        return c->commit(c->commit_ud, c->txn, how, err);
    return udf_commit_direct(c->txn, how, err);
}

/* eng_txn_set_pending's apply: the thread writes its pending batch. */
static void apply_pending(void *ud)
{
    struct udf_call *c = ud;
    struct cm_err err = {0};
    c->commit(c->commit_ud, c->txn, UDF_COMMIT_APPLY_PENDING, &err);
}

/* Whether a failed attempt may have failed only because it read keys in a state no
 * snapshot had (the value cache's current values mixed with its snapshot): then it
 * runs again, as a conflict at its commit would. */
static bool failed_on_torn_reads(struct udf_call *c)
{
    struct cm_err err = {0};
    return eng_txn_cache_reads(c->txn) && udf__commit(c, UDF_COMMIT_CHECK, &err) == CM_ECONFLICT;
}

/* After an attempt lost to another writer: true if the next one may start at once,
 * holding the stripes of this one's keys (UDF_COMMIT_HOLD); false to wait for a
 * later loop iteration. */
static bool hold_for_retry(struct udf_call *c)
{
    struct udf *u = c->vm->u;
    struct cm_err err = {0};
    atomic_fetch_add_explicit(&u->conflicts, 1, memory_order_relaxed);
    if (++c->conflicts < UDF_HOLD_AFTER || udf__commit(c, UDF_COMMIT_HOLD, &err) != 0)
        return false;
    atomic_fetch_add_explicit(&u->holds, 1, memory_order_relaxed);
    return true;
}

void udf__unhold(struct udf_call *c)
{
    struct cm_err err = {0};
    if (!c->held)
        return;
    c->held = false;
    (void)udf__commit(c, UDF_COMMIT_UNHOLD, &err);
}

/* Ends an attempt: drops the coroutine, the iterators and the transaction. */
static void end_attempt(struct udf_call *c)
{
    lua_State *L = c->vm->L;
    udf__close_iters(c);
    luaL_unref(L, LUA_REGISTRYINDEX, c->co_ref);
    if (c->iters_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, c->iters_ref);
    c->co_ref = c->iters_ref = LUA_NOREF;
    c->co = NULL;
    eng_txn_free(c->txn);
    c->txn = NULL;
    c->started = false;
    c->commit_conflict = false;
    c->held = false;
    c->remote = REMOTE_NONE;
    resp_value_free(c->remote_reply);
    c->remote_reply = NULL;
}

/* lua_CFunction (protected, on the call's coroutine): pushes the call's arguments:
 * keys, args, and a map's partition or a reducer's partial results. */
static int push_args(lua_State *co)
{
    struct udf_call *c = lua_touserdata(co, 1);
    lua_pop(co, 1);
    push_array(co, c->keys, c->keylens, c->nkeys);
    push_array(co, c->args, c->arglens, c->nargs);
    if (c->kind == UDF_MAP) {
        lua_createtable(co, 0, 4);
        lua_pushinteger(co, c->part.index);
        lua_setfield(co, -2, "index");
        lua_pushinteger(co, c->part.count);
        lua_setfield(co, -2, "count");
        lua_pushinteger(co, c->part.slot_lo);
        lua_setfield(co, -2, "slot_lo");
        lua_pushinteger(co, c->part.slot_hi);
        lua_setfield(co, -2, "slot_hi");
    } else if (c->kind == UDF_REDUCE) {
        lua_createtable(co, c->npartials, 1);
        for (int i = 0; i < c->npartials; i++) {
            if (udf__ser_decode(co, c->partials[i], c->partial_lens[i]) != 0)
                return luaL_error(co, "corrupt partial result");
            lua_rawseti(co, -2, i + 1);
        }
        lua_pushinteger(co, c->npartials);
        lua_setfield(co, -2, "n");
    }
    return lua_gettop(co);
}

/* Begins an attempt; returns the number of arguments pushed on the coroutine, or -1
 * with an error reply. */
static int start_attempt(struct udf_call *c)
{
    struct udf_vm *vm = c->vm;
    lua_State *L = vm->L;
    c->txn = eng_txn_begin(vm->u->eng);
    if (c->txn == NULL || !lua_checkstack(L, 8)) {
        resp_add_error(&c->reply, "OOM out of memory starting the call");
        return -1;
    }
    eng_txn_set_pending(c->txn, c->pending, c->commit != NULL ? apply_pending : NULL, c);
    c->co = lua_newthread(L);
    c->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (c->name[0] == '@') {
        udf__push_builtin_reducer(L, c->name);
    } else if (c->kind == UDF_FCALL || c->kind == UDF_MAP || c->kind == UDF_REDUCE) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->funcs_ref);
        lua_getfield(L, -1, c->name);
        if (!lua_istable(L, -1)) { /* the library was deleted while we waited */
            lua_pop(L, 2);
            resp_add_error(&c->reply, "ERR Function not found");
            return -1;
        }
        lua_getfield(L, -1, "fn");
        lua_remove(L, -2);
        lua_remove(L, -2);
    } else {
        struct cm_buf err;
        int flags;
        cm_buf_init(&err);
        if (push_script(vm, c->name, c->src, c->src_len, &flags, NULL, &err) != 0) {
            cm_buf_append(&c->reply, err.p, err.len);
            cm_buf_deinit(&err);
            return -1;
        }
    }
    lua_xmove(L, c->co, 1);
    c->started = true;
    c->attempts++;
    /* The arguments are pushed in protected mode: they can be larger than what is left
     * of udf-memory-limit (a 40 MB argument, two 24 MB vectors for a reducer), and an
     * allocation that fails outside a protected call is a Lua panic: eddyd aborted. */
    lua_pushcfunction(c->co, push_args);
    lua_pushlightuserdata(c->co, c);
    int st = lua_pcall(c->co, 1, LUA_MULTRET, 0);
    if (st == LUA_OK)
        return lua_gettop(c->co) - 1; /* below them: the function */
    if (st == LUA_ERRMEM)
        resp_add_errorf(&c->reply,
                        "ERR Out of memory: the arguments of %s exceed udf-memory-limit (%zu "
                        "bytes)",
                        c->label, vm->u->limits.memory);
    else
        resp_add_error(&c->reply, "ERR a partial result of the map is corrupt");
    return -1;
}

static bool has_error_code(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && isupper((unsigned char)s[i]))
        i++;
    return i >= 2 && (i == n || s[i] == ' ');
}

/* Formats the error that ended the coroutine (at its top) as Redis does:
 * "<CODE> <message> script: <lib.fn>, on @user_function:<line>." */
static void error_reply(struct udf_call *c, int status)
{
    lua_State *co = c->co;
    struct udf_limits lim = c->vm->u->limits;
    int why = atomic_load(&c->kill);
    /* What eddy.commit() applied stays applied (docs/UDF.md). */
    const char *applied = c->stepped ? "What it wrote before its last eddy.commit() stays "
                                       "applied; nothing after it was."
                                     : "Nothing it wrote was applied.";
    if (why == KILL_USER) {
        resp_add_errorf(&c->reply, "ERR Script killed by user with %s. %s",
                        c->kind == UDF_FCALL ? "FUNCTION KILL" : "SCRIPT KILL", applied);
        return;
    }
    if (why == KILL_TIMEOUT) {
        resp_add_errorf(&c->reply, "ERR Script timed out: %s exceeded udf-time-limit (%lld ms). %s",
                        c->label, (long long)lim.time_ms, applied);
        return;
    }
    if (status == LUA_ERRMEM) {
        resp_add_errorf(&c->reply, "ERR Out of memory: %s exceeded udf-memory-limit (%zu bytes). %s",
                        c->label, lim.memory, applied);
        return;
    }
    const char *msg = NULL;
    size_t n = 0;
    if (lua_istable(co, -1)) {
        lua_pushliteral(co, "err"); /* raw: no metamethod runs here (see raw_field) */
        lua_rawget(co, -2);
        int t = lua_type(co, -1);
        msg = t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tolstring(co, -1, &n) : NULL;
        lua_pop(co, 1); /* the table keeps the string alive */
    } else if (lua_type(co, -1) == LUA_TSTRING) {
        msg = lua_tolstring(co, -1, &n);
    }
    if (msg == NULL) {
        msg = "unknown error (the error object is not a string)";
        n = strlen(msg);
    }
    const char *chunk = c->kind == UDF_EVAL || c->kind == UDF_EVALSHA ? "user_script" : "user_function";
    int line = -1;
    lua_Debug ar;
    for (int level = 0; lua_getstack(co, level, &ar); level++) {
        lua_getinfo(co, "Sl", &ar);
        if (ar.currentline > 0 && ar.source[0] == '@') {
            line = ar.currentline;
            break;
        }
    }
    struct cm_buf b;
    cm_buf_init(&b);
    if (!has_error_code(msg, n))
        cm_buf_append(&b, "ERR ", 4);
    cm_buf_append(&b, msg, n > 400 ? 400 : n);
    cm_buf_appendf(&b, " script: %s, on @%s:%d.", c->label, chunk, line);
    cm_buf_appendc(&b, '\0');
    resp_add_error(&c->reply, b.p ? b.p : "ERR out of memory");
    cm_buf_deinit(&b);
}

int udf_call_run(struct udf_call *c)
{
    struct udf_vm *vm = c->vm;
    lua_State *L = vm->L;
    bool collect = false;
    if (c->done)
        return UDF_DONE;
    for (;;) {
        int nargs = 0;
        if (!c->started) {
            nargs = start_attempt(c);
            if (nargs < 0)
                break;
        }
        vm->current = c;
        c->slice_start_us = cm_mono_us();
        int nres = 0;
        int st = lua_resume(c->co, L, nargs, &nres);
        vm->current = NULL;
        if (eng_txn_pending_hit(c->txn) && st != LUA_ERRMEM && !c->killing &&
            atomic_load(&c->kill) == 0 && c->attempts < vm->u->limits.max_retries) {
            /* It read around a write of the pipeline not applied yet: run it again
             * once that write is applied (counted as a retry: a call that yields
             * can meet new pending writes on every slice). */
            end_attempt(c);
            return UDF_PENDING;
        }
        if (st == LUA_YIELD && c->remote == REMOTE_WAIT && !c->killing &&
            atomic_load(&c->kill) == 0) {
            udf__unhold(c); /* no stripes held while it waits for another node */
            return UDF_REMOTE;
        }
        if (st == LUA_YIELD)
            return UDF_YIELD;
        if (st != LUA_OK && st != LUA_ERRMEM && !c->killing && atomic_load(&c->kill) == 0 &&
            c->attempts < vm->u->limits.max_retries &&
            (c->commit_conflict || failed_on_torn_reads(c))) {
            /* eddy.commit conflicted, or the error came from reading two states: run
             * it again on a fresh snapshot, after the worker served its other clients
             * (see below). */
            bool now = hold_for_retry(c);
            end_attempt(c);
            if (now) {
                c->held = true;
                continue;
            }
            return UDF_YIELD;
        }
        if (st != LUA_OK || c->killing || atomic_load(&c->kill) != 0) {
            /* Also a kill that the script swallowed (in a coroutine it created, say)
             * before it returned: the call still fails and applies nothing. */
            error_reply(c, st);
            collect = st == LUA_ERRMEM || c->killing;
            break;
        }
        c->reply.len = 0;
        if (c->kind == UDF_MAP) {
            /* The partial result travels to the reducer as bytes. */
            const char *why = NULL;
            if (nres == 0)
                lua_pushnil(c->co);
            if (udf__ser_encode(c->co, lua_gettop(c->co) - (nres ? nres : 1) + 1,
                                vm->u->limits.memory, &c->reply, &why) != 0) {
                resp_add_errorf(&c->reply, "ERR the result of map function %s cannot be sent: %s",
                                c->label, why);
                break;
            }
        } else if (nres > 0) {
            vm->converting = c;
            udf__lua_to_resp(c->co, lua_gettop(c->co) - nres + 1, &c->reply, c->resp);
            vm->converting = NULL;
        } else {
            resp_add_null(&c->reply, c->resp);
        }
        struct cm_err err = {0};
        size_t writes = eng_txn_write_count(c->txn);
        int rc = udf__commit(c, UDF_COMMIT_END, &err);
        if (rc == CM_ECONFLICT && c->attempts < vm->u->limits.max_retries) {
            /* Nothing was applied: run it again on a fresh snapshot, but after the
             * worker has served its other clients. Retried at once, a call can keep
             * losing to another thread's run of commits to the same key (the
             * conflicting calls of a busy thread follow each other with no gap);
             * spread over loop iterations, its attempts meet the gaps. A call that
             * still loses holds its keys for its next attempt (hold_for_retry). */
            bool now = hold_for_retry(c);
            end_attempt(c);
            if (now) {
                c->held = true;
                continue;
            }
            return UDF_YIELD;
        }
        if (rc == CM_ECONFLICT) {
            c->reply.len = 0;
            resp_add_errorf(&c->reply, "ERR %s conflicted with concurrent writes %d times; "
                                       "nothing was applied", c->label, c->attempts);
        } else if (rc == CM_EAGAIN) {
            c->reply.len = 0; /* a slot migration's fence: nothing applied, TRYAGAIN */
            resp_add_error(&c->reply, err.msg);
        } else if (rc != 0) {
            c->reply.len = 0;
            resp_add_errorf(&c->reply, "ERR storage error: %s", err.msg);
        } else {
            c->wrote = c->wrote || writes > 0;
            c->ok = true;
        }
        break;
    }
    end_attempt(c);
    if (vm->reseed)
        udf__vm_reseed(vm);
    if (collect) {
        /* After the coroutine is released, so its garbage goes too. */
        lua_gc(L, LUA_GCCOLLECT, 0);
        cm_malloc_trim();
    }
    udf__running_remove(vm->u, c); /* first: udf_kill reads started, not done */
    c->done = true;
    return UDF_DONE;
}

void udf__access_count(struct udf_call *c, int remote_slot)
{
    struct udf *u = c->vm->u;
    int local = c->nkeys > 0 ? (int)cm_key_slot(c->keys[0], c->keylens[0]) : -1;
    pthread_mutex_lock(&u->lock);
    for (size_t i = 0; i < u->naccess; i++) {
        struct udf_access *a = &u->access[i];
        if (a->local_slot == local && a->remote_slot == remote_slot && strcmp(a->label, c->label) == 0) {
            a->count++;
            pthread_mutex_unlock(&u->lock);
            return;
        }
    }
    if (u->naccess == u->access_cap && u->naccess < 100000) {
        size_t cap = u->access_cap ? 2 * u->access_cap : 64;
        struct udf_access *na = cm_realloc(u->access, cap * sizeof(*na));
        if (na != NULL) {
            u->access = na;
            u->access_cap = cap;
        }
    }
    if (u->naccess < u->access_cap) { /* else the row is not counted (out of memory) */
        struct udf_access *a = &u->access[u->naccess];
        if ((a->label = cm_memdup(c->label, strlen(c->label) + 1)) != NULL) {
            a->local_slot = local;
            a->remote_slot = remote_slot;
            a->count = 1;
            u->naccess++;
        }
    }
    pthread_mutex_unlock(&u->lock);
}

static int by_count(const void *a, const void *b)
{
    unsigned long long x = ((const struct udf_access *)a)->count;
    unsigned long long y = ((const struct udf_access *)b)->count;
    return x < y ? 1 : x > y ? -1 : 0;
}

int udf_access_stats(struct udf *u, struct cm_buf *out, bool reset)
{
    pthread_mutex_lock(&u->lock);
    qsort(u->access, u->naccess, sizeof(*u->access), by_count);
    int rc = resp_add_array(out, u->naccess);
    for (size_t i = 0; i < u->naccess && rc == 0; i++) {
        const struct udf_access *a = &u->access[i];
        rc |= resp_add_array(out, 4);
        rc |= resp_add_bulk(out, a->label, strlen(a->label));
        rc |= resp_add_int(out, a->local_slot);
        rc |= resp_add_int(out, a->remote_slot);
        rc |= resp_add_int(out, (long long)a->count);
    }
    if (reset) {
        for (size_t i = 0; i < u->naccess; i++)
            cm_free(u->access[i].label);
        u->naccess = 0;
    }
    pthread_mutex_unlock(&u->lock);
    return rc != 0 ? CM_ENOMEM : 0;
}

void udf_call_remote(const struct udf_call *c, const char **addr, const char **cmd, size_t *len)
{
    *addr = c->remote_addr;
    *cmd = c->remote_cmd.p;
    *len = c->remote_cmd.len;
}

void udf_call_remote_done(struct udf_call *c, struct resp_value *reply, const char *error)
{
    resp_value_free(c->remote_reply);
    c->remote_reply = reply;
    snprintf(c->remote_error, sizeof(c->remote_error), "%s", error != NULL ? error : "");
    c->remote = REMOTE_READY;
}

const struct cm_buf *udf_call_reply(const struct udf_call *c)
{
    return &c->reply;
}

bool udf_call_ok(const struct udf_call *c)
{
    return c->ok;
}

bool udf_call_wrote(const struct udf_call *c)
{
    return c->wrote;
}

void udf_call_free(struct udf_call *c)
{
    if (c == NULL)
        return;
    if (!c->done) {
        end_attempt(c);
        udf__running_remove(c->vm->u, c);
    }
    cm_buf_deinit(&c->reply);
    cm_buf_deinit(&c->remote_cmd);
    resp_value_free(c->remote_reply);
    free_strings(c->partials, c->partial_lens, c->npartials);
    free_strings(c->keys, c->keylens, c->nkeys);
    free_strings(c->args, c->arglens, c->nargs);
    cm_free(c->name);
    cm_free(c->src);
    cm_free(c->label);
    cm_free(c);
}
