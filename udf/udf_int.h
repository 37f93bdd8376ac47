/* udf_int.h - declarations private to udf/: the registry, VMs and calls, shared by
 * registry.c (libraries and scripts), vm.c (sandboxed Lua states), call.c (running
 * calls: coroutines, budgets, transactions) and redislib.c (the redis.* and eddy.*
 * APIs and the Lua <-> RESP conversions). */
#ifndef EDDY_UDF_INT_H
#define EDDY_UDF_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../net/resp.h"
#include "udf.h"
#include "udf_lib.h"

#define UDF_REDIS_VERSION "7.0.0"
#define UDF_REDIS_VERSION_NUM 0x070000
#define UDF_LOAD_TIME_MS 500 /* FUNCTION LOAD timeout, as in Redis */
#define UDF_SCRIPT_CACHE 500 /* compiled EVAL scripts kept per state (Redis 7.4: 500) */
/* Running an accepted library's code again (from the store at start, in each thread's
 * state): it once ran within UDF_LOAD_TIME_MS, so ten times that is left for a starved
 * CPU (a library must not vanish because the machine was busy). It is not preempted:
 * a library whose code runs longer later (it reads os.time) stalls its thread this
 * long at each library change, and then is missing from that thread's state. */
#define UDF_RELOAD_TIME_MS 5000

struct udf_func {
    char *name;
    int flags;
};

struct udf_lib {
    char *name;
    char *code;
    size_t len;
    struct udf_func *funcs;
    int nfuncs;
    struct udf_lib *next;
};

struct udf_script {
    char sha[41];
    char *code;
    size_t len;
    bool stored; /* in the store (add_script tries again while it is not) */
    struct udf_script *next;
};

#define SCRIPT_BUCKETS 256

struct udf {
    struct eng *eng;
    udf_exec_fn exec;
    pthread_mutex_t lock; /* guards everything below */
    struct udf_lib *libs;
    struct udf_script *scripts[SCRIPT_BUCKETS];
    atomic_ullong generation;  /* bumped by every change of the libraries or scripts */
    atomic_ullong conflicts, holds; /* udf_conflict_stats */
    struct udf_limits limits;
    struct udf_call *running; /* live calls of every VM, for KILL and STATS */
    struct udf_access *access; /* remote accesses by (function, local slot, remote slot) */
    size_t naccess, access_cap;
};

/* One row of the remote-access counters (cluster mode). */
struct udf_access {
    char *label;          /* "lib.fn" or a script's SHA-1 */
    int local_slot;       /* the slot of the call's first key, -1 without keys */
    int remote_slot;
    unsigned long long count;
};

struct udf_vm {
    struct udf *u;
    lua_State *L;
    size_t mem_used, mem_limit;
    unsigned long long generation; /* of the libraries instantiated in L */
    int funcs_ref;                 /* registry: name -> {fn, flags, lib} */
    int scripts_ref;               /* registry: sha -> compiled chunk */
    struct udf_call *current;      /* the call whose code runs now, or NULL */
    struct udf_call *converting;   /* the call whose result is being converted */
    size_t conv_cap;               /* udf__lua_to_resp: the reply's size limit, */
    bool conv_over;                /* and whether it was reached */
    size_t conv_nodes;             /* values it may still convert */
    size_t alloc_since_check;      /* vm_alloc: bytes since its last time check */
    bool reseed;                   /* math.randomseed ran: reseed after the call */
    int nscripts;                  /* compiled scripts cached (call.c) */
    /* FUNCTION LOAD in progress in this state. */
    bool loading;
    int load_ref;                  /* registry: the library's name -> {fn, flags} */
    int64_t load_deadline_us;
    int load_time_ms;              /* the budget of the next load (UDF_LOAD_TIME_MS) */
    struct cm_buf cmd_out;         /* the reply of redis.call's command (redislib.c) */
};

enum { REMOTE_NONE, REMOTE_WAIT, REMOTE_READY };

struct udf_call {
    struct udf_vm *vm;
    enum udf_kind kind;
    char *name;           /* function name, or SHA-1 for scripts */
    char *src;            /* EVAL: the script's source, compiled from it if the VM has
                           * not cached it (a SCRIPT FLUSH may run meanwhile) */
    size_t src_len;
    char *label;          /* "lib.fn" or the SHA-1, for error messages */
    int flags;            /* UDF_F_* of the function or script */
    bool readonly;
    int resp;             /* the client's protocol */
    int script_resp;      /* redis.setresp() */
    void *owner;
    int nkeys, nargs;
    char **keys, **args;
    size_t *keylens, *arglens;

    lua_State *co;        /* the call's coroutine, anchored by co_ref */
    int co_ref;
    int iters_ref;        /* registry table of open eddy.scan iterators */
    /* Read by FUNCTION KILL / SCRIPT KILL on other threads (udf_kill, under the
     * registry lock), written here without it: atomic. A call leaves the running list
     * before done is set, so udf_kill never needs done. */
    atomic_bool started;
    struct eng_txn *txn;
    int attempts;
    unsigned ncommands;   /* redis.call/eddy.set of the call (check_staged) */
    int conflicts;        /* attempts that lost to another writer (UDF_HOLD_AFTER) */
    bool held;            /* this attempt holds its keys: it runs without yielding */
    int64_t start_us, deadline_us, slice_start_us;
    atomic_int kill;      /* 0, or why: KILL_USER, KILL_TIMEOUT */
    bool killing;         /* the hook raises on every instruction from now on */
    bool inner_preempt;   /* the hook yielded a coroutine the script created */
    bool done, wrote, ok;
    bool commit_conflict; /* eddy.commit failed with a conflict in this attempt */
    bool stepped;         /* an eddy.commit applied writes (they stay, whatever follows) */
    udf_commit_fn commit; /* udf_call_set_commit */
    void *commit_ud;
    const struct eng_batch *pending;
    /* A key of another node (cluster mode): the call waits for its owner's reply. */
    int remote;                     /* REMOTE_NONE, REMOTE_WAIT, REMOTE_READY */
    char remote_addr[300];          /* "host:port" */
    struct cm_buf remote_cmd;       /* the command, RESP-encoded */
    struct resp_value *remote_reply;
    char remote_error[320];         /* when there is no reply */
    struct cm_buf reply;
    struct udf_part part;       /* UDF_MAP */
    int npartials;              /* UDF_REDUCE */
    char **partials;
    size_t *partial_lens;
    struct udf_call *rnext, *rprev; /* udf->running */
};

enum { KILL_USER = 1, KILL_TIMEOUT = 2 };

/* vm.c */
/* Pushes the built-in reducer named name ("@sum", "@list"); false if unknown. */
bool udf__push_builtin_reducer(lua_State *L, const char *name);
lua_State *udf__state_new(struct udf_vm *vm);
/* Runs a library's code in vm->L in load mode; on success its functions are in a
 * new table at the top of the stack (name -> {fn, flags}) and their names/flags are
 * returned in *funcs (cm_malloc'd array, *nfuncs entries). err->msg has the reply. */
int udf__load_lib(struct udf_vm *vm, const char *libname, const char *code, size_t len,
                  struct udf_func **funcs, int *nfuncs, struct cm_err *err);
/* Parses "#!lua name=x" (functions) or "#!lua flags=a,b" (scripts). */
int udf__parse_shebang(const char *code, size_t len, bool is_lib, char *name, size_t namecap,
                       int *flags, size_t *body_off, struct cm_err *err);
int udf__parse_flag(const char *s, size_t n);
void udf__free_funcs(struct udf_func *f, int n);
/* Brings vm's instantiated libraries up to the registry's generation. */
int udf__vm_sync(struct udf_vm *vm, struct cm_err *err);
/* The count hook's work for calls and loads. */
void udf__install_hook(lua_State *L);

/* registry.c */
void udf__running_add(struct udf *u, struct udf_call *c);
void udf__running_remove(struct udf *u, struct udf_call *c);
/* Copies the code of script sha into out; CM_ENOTFOUND if unknown. */
int udf__script_code(struct udf *u, const char *sha, struct cm_buf *out);
/* call.c: compiles a script's body (code + off, after its shebang) as EVAL runs it,
 * with KEYS and ARGV as the chunk's locals, and pushes the chunk or the error message.
 * Returns luaL_loadbufferx's status (LUA_ERRMEM also when out of memory here). */
int udf__load_script(lua_State *L, const char *code, size_t len, size_t off);

/* ser.c: Lua values <-> bytes, for partial results of map calls. encode returns 0
 * or an error with *why (also past 4 x limit bytes or limit / 16 values: limit is
 * udf-memory-limit); decode pushes the value, or returns CM_EINVAL for bad input. */
int udf__ser_encode(lua_State *L, int idx, size_t limit, struct cm_buf *out,
                     const char **why);
int udf__ser_decode(lua_State *L, const void *p, size_t n);

/* redislib.c */
void udf__open_redis(lua_State *L);  /* redis, eddy (without vec) into the globals */
/* Converts the Lua value at idx to a RESP reply in out for a client speaking resp. */
void udf__lua_to_resp(lua_State *L, int idx, struct cm_buf *out, int resp);
/* Seeds the state's math.random afresh (after a call ran math.randomseed). */
void udf__vm_reseed(struct udf_vm *vm);
/* Pushes the Lua form of a RESP reply (the redis.call conversion). */
void udf__push_resp(lua_State *L, const struct resp_value *v, int script_resp);
/* The running call of L's VM (raises if none). */
struct udf_call *udf__current(lua_State *L);
struct udf_vm *udf__vm_of(lua_State *L);
/* Frees the eddy.scan iterators a call left open. */
void udf__close_iters(struct udf_call *c);
/* Raises when the call was killed or ran out of time (called by the pattern
 * functions every few thousand steps and by the count hook). */
void udf__tick(lua_State *L);

/* Counts one access of call c to a key of remote_slot on another node (call.c). */
void udf__access_count(struct udf_call *c, int remote_slot);
/* Commits or checks the call's transaction (how: see udf_call_set_commit). */
int udf__commit(struct udf_call *c, int how, struct cm_err *err);
/* Ends a held attempt's hold (UDF_COMMIT_UNHOLD): its stripes go back, it may yield. */
void udf__unhold(struct udf_call *c);

#endif
