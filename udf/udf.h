/* udf.h - Lua 5.4 functions next to the data: libraries, scripts and calls.
 *
 * The registry (struct udf, one per process) holds the libraries loaded with
 * FUNCTION LOAD and the scripts seen by EVAL/SCRIPT LOAD, persisted in the engine's
 * metadata column family so they survive restarts. Each I/O thread owns one VM
 * (struct udf_vm: a sandboxed Lua state with a memory cap) that instantiates every
 * library. A call (struct udf_call) runs in a coroutine of its thread's VM inside an
 * engine transaction: it reads a snapshot, buffers its writes and commits them
 * atomically at the end (retried from the start on conflict). A count hook yields
 * the coroutine when its time slice is used up, so the thread serves other clients
 * and resumes the call later; past the time limit, or on FUNCTION/SCRIPT KILL, the
 * call is stopped with an error that no pcall can catch, and nothing it wrote is
 * applied. Depends on engine/, common/ and the RESP codec; reaches the command table
 * only through the udf_exec_fn that net/ registers.
 */
#ifndef EDDY_UDF_H
#define EDDY_UDF_H

#include "../common/common.h"
#include "../engine/engine.h"

struct udf;
struct udf_vm;
struct udf_call;
struct resp_value;

/* Flags of a function (register_function's flags) or of a script (#!lua flags=). */
enum {
    UDF_F_NO_WRITES = 1,
    UDF_F_ALLOW_OOM = 2,
    UDF_F_ALLOW_STALE = 4,
    UDF_F_NO_CLUSTER = 8,
    UDF_F_ALLOW_CROSS_SLOT = 16
};

/* Flags for udf_exec_fn. UDF_EXEC_ROUTE only asks where the command's keys are:
 * nothing runs. UDF_EXEC_HELD: the call holds key stripes (UDF_COMMIT_HOLD). */
enum { UDF_EXEC_READONLY = 1, UDF_EXEC_ROUTE = 2, UDF_EXEC_HELD = 4 };
/* udf_exec_fn's result when the keys belong to another node (cluster mode): out holds
 * "<slot> <host>:<port>" (plain text: the first key's slot and its owner), and nothing
 * ran here. */
#define UDF_EXEC_REMOTE 1
/* udf_exec_fn's result with UDF_EXEC_HELD for a command that works outside the call's
 * transaction (no key positions: RANDOMKEY, CLUSTER ...) and may wait for stripes or
 * for locks whose holders wait for stripes: nothing ran; the call gives its stripes
 * back (UDF_COMMIT_UNHOLD) and runs the command then. */
#define UDF_EXEC_UNHOLD 2

/* Runs one command for redis.call/pcall inside the call's transaction and appends
 * its RESP reply (an error reply for a refused command) to out. owner is the
 * udf_call_req's owner. Returns 0, UDF_EXEC_REMOTE, or CM_ENOMEM. With
 * UDF_EXEC_ROUTE: 0 if the keys are local (out unchanged), UDF_EXEC_REMOTE, or 0 with
 * an error reply in out. Implemented by net/. */
typedef int (*udf_exec_fn)(void *owner, struct eng_txn *txn, int resp, int flags, int argc,
                           const char **argv, const size_t *argvlen, struct cm_buf *out);

struct udf_limits {
    size_t memory;          /* bytes per Lua state (udf-memory-limit); default 64 MB */
    int64_t time_ms;        /* wall time of one call (udf-time-limit); default 5000 */
    int64_t slice_us;       /* run this long before yielding to other clients; 2000 */
    int max_retries;        /* conflict retries before giving up; default 100 */
};

/* ---- Registry ------------------------------------------------------------------------ */

/* Creates the registry and loads the persisted libraries and scripts from e. Returns
 * NULL with err set if a stored library no longer loads. */
struct udf *udf_new(struct eng *e, udf_exec_fn exec, struct cm_err *err);
void udf_free(struct udf *u); /* NULL is a no-op; no VM may be alive */
void udf_set_limits(struct udf *u, const struct udf_limits *l);
void udf_get_limits(struct udf *u, struct udf_limits *l);

/* FUNCTION LOAD [REPLACE]. On success the library's name is copied to name (cleared
 * first). On failure err->msg holds the reply text (e.g. "ERR Library 'x' already
 * exists"). */
int udf_lib_load(struct udf *u, const char *code, size_t len, bool replace, struct cm_buf *name,
                 struct cm_err *err);
int udf_lib_delete(struct udf *u, const char *name, size_t len, struct cm_err *err);
int udf_lib_flush(struct udf *u, struct cm_err *err);
/* Counts the changes of the libraries made by the calling thread (not SCRIPT FLUSH, not
 * other threads' changes): a FUNCTION command that failed but moved it changed
 * something (CM_ESYNC, or a FLUSH that failed part-way). */
unsigned long long udf_lib_generation(struct udf *u);
/* Appends the FUNCTION LIST reply (libraries matching pattern, NULL = all). */
void udf_lib_list(struct udf *u, const char *pattern, size_t plen, bool withcode,
                  struct cm_buf *out, int resp);
/* FUNCTION DUMP: appends an opaque payload (versioned, checksummed) to out. */
int udf_lib_dump(struct udf *u, struct cm_buf *out);
enum udf_restore { UDF_RESTORE_APPEND, UDF_RESTORE_REPLACE, UDF_RESTORE_FLUSH };
int udf_lib_restore(struct udf *u, const char *p, size_t n, enum udf_restore policy,
                    struct cm_err *err);
/* FUNCTION STATS reply. */
void udf_stats(struct udf *u, struct cm_buf *out, int resp);
/* Attempts of calls that lost to another writer and were run again, and how many of
 * those retries held their keys (UDF_COMMIT_HOLD). */
void udf_conflict_stats(struct udf *u, unsigned long long *conflicts, unsigned long long *holds);
/* FUNCTION KILL (scripts false) or SCRIPT KILL (scripts true): kills running calls
 * of that kind on every thread. Returns how many were killed. */
int udf_kill(struct udf *u, bool scripts);

/* SCRIPT LOAD: stores the script and writes its SHA-1 (40 hex + NUL). */
int udf_script_load(struct udf *u, const char *code, size_t len, char sha[41],
                    struct cm_err *err);
bool udf_script_exists(struct udf *u, const char *sha, size_t len);
int udf_script_flush(struct udf *u, struct cm_err *err);

/* ---- VMs --------------------------------------------------------------------------------- */

/* One per thread; NULL on failure. */
struct udf_vm *udf_vm_new(struct udf *u, struct cm_err *err);
void udf_vm_free(struct udf_vm *vm); /* frees running calls too; NULL is a no-op */
/* Bytes in use by the VM's Lua state. */
size_t udf_vm_memory(const struct udf_vm *vm);

/* ---- Calls ---------------------------------------------------------------------------------- */

/* UDF_MAP runs a function over one partition of the local slots for MAPREDUCE: it is
 * called as fn(keys, args, part) with part = {index=, count=, slot_lo=, slot_hi=}, and
 * its result is serialized (udf_call_reply) for the reducer. UDF_REDUCE calls
 * fn(keys, args, partials) with the decoded partial results (partials.n of them), or a
 * built-in reducer: "@sum" (adds numbers, eddy.vec vectors and tables of them key by
 * key) or "@list" (the array of partials). */
enum udf_kind { UDF_FCALL, UDF_EVAL, UDF_EVALSHA, UDF_MAP, UDF_REDUCE };

struct udf_part {
    int index, count;
    unsigned slot_lo, slot_hi;
    const unsigned char *owned; /* cluster mode: a bit per slot this node owns (NULL: all);
                                 * eddy.scan in the map skips the others (a move's staged
                                 * keys on its target were counted twice) */
};

struct udf_call_req {
    enum udf_kind kind;
    const char *name;      /* function name, script body (EVAL) or SHA-1 (EVALSHA) */
    size_t name_len;
    int nkeys, nargs;
    const char **keys, **args;
    const size_t *keylens, *arglens;
    bool readonly;         /* FCALL_RO, EVAL_RO, EVALSHA_RO */
    int resp;              /* the client's protocol, 2 or 3 */
    void *owner;           /* passed to udf_exec_fn */
    struct udf_part part;  /* UDF_MAP */
    int npartials;         /* UDF_REDUCE: serialized partial results */
    const char **partials;
    const size_t *partial_lens;
};

enum { UDF_DONE = 0, UDF_YIELD = 1, UDF_REMOTE = 2, UDF_PENDING = 3 };

/* How a call's transaction is committed, set by the thread that runs it (net/conn.c
 * merges the writes into its pipelined batch): UDF_COMMIT_END at the call's end (as
 * eng_txn_commit), UDF_COMMIT_STEP for eddy.commit() (as eng_txn_checkpoint),
 * UDF_COMMIT_CHECK to learn whether an attempt that failed read a state no snapshot
 * had (CM_ECONFLICT; as eng_txn_check, nothing applied), UDF_COMMIT_APPLY_PENDING to
 * apply the thread's pending writes (the batch given to udf_call_set_commit) before
 * the call's first read (see eng_txn_set_pending), UDF_COMMIT_HOLD after a call
 * conflicted UDF_HOLD_AFTER times: take the stripes of t's keys (blocking) and keep
 * them while the call runs its next attempt at once and without yielding, so another
 * thread's run of writes to those keys cannot make it lose again (0; anything else:
 * the call waits for a later loop iteration as before; udf_commit_direct cannot
 * hold). The thread commits a held attempt under those stripes and gives them back
 * when the call returns, or at UDF_COMMIT_UNHOLD: the attempt's first eddy.commit(),
 * a wait for another node, a command without keys (UDF_EXEC_UNHOLD). */
enum { UDF_COMMIT_END, UDF_COMMIT_STEP, UDF_COMMIT_CHECK, UDF_COMMIT_APPLY_PENDING,
       UDF_COMMIT_HOLD, UDF_COMMIT_UNHOLD };
enum { UDF_HOLD_AFTER = 3 };
typedef int (*udf_commit_fn)(void *ud, struct eng_txn *t, int how, struct cm_err *err);
/* The engine's own commit of t for how (eng_txn_commit, eng_txn_checkpoint, eng_txn_check):
 * what a commit function does when it has nothing better to do. */
int udf_commit_direct(struct eng_txn *t, int how, struct cm_err *err);
void udf_call_set_commit(struct udf_call *c, udf_commit_fn fn, void *ud,
                         const struct eng_batch *pending);

/* The flags of function name in vm (syncing it first), or -1 if there is none. */
int udf_function_flags(struct udf_vm *vm, const char *name, size_t len);

/* Starts a call: every argument is copied. On a request error (no such function,
 * NOSCRIPT, writes from _ro, ...) returns NULL and appends the error reply to err_out. */
struct udf_call *udf_call_new(struct udf_vm *vm, const struct udf_call_req *req,
                              struct cm_buf *err_out);
/* Runs the call until it finishes (UDF_DONE: its reply is in udf_call_reply), it read
 * around a write pending in the batch of udf_call_set_commit (UDF_PENDING: nothing of
 * the attempt applies; write that batch, then run it again), its
 * time slice ends or its commit conflicted and it will be retried (UDF_YIELD: run it
 * again later, from the same thread) or it waits for a key of another node
 * (UDF_REMOTE: send udf_call_remote's command to that node, give the reply to
 * udf_call_remote_done, then run it again). */
int udf_call_run(struct udf_call *c);
/* The remote-access counters as a reply: an array of [function, local slot, remote
 * slot, count] rows, most accessed first. reset clears them after. Returns 0 or
 * CM_ENOMEM. */
int udf_access_stats(struct udf *u, struct cm_buf *out, bool reset);
/* After UDF_REMOTE: the node's address ("host:port") and the command (RESP bytes). */
void udf_call_remote(const struct udf_call *c, const char **addr, const char **cmd, size_t *len);
/* The node's reply (taken: freed by the call), or why there is none (reply NULL). */
void udf_call_remote_done(struct udf_call *c, struct resp_value *reply, const char *error);
/* The reply (RESP bytes) of a finished call; borrowed until udf_call_free. For a
 * successful UDF_MAP call, the serialized partial result instead. */
const struct cm_buf *udf_call_reply(const struct udf_call *c);
/* True if the finished call succeeded (its reply is not an error). */
bool udf_call_ok(const struct udf_call *c);
/* True if the finished call committed writes (the caller syncs under "always"). */
bool udf_call_wrote(const struct udf_call *c);
/* Frees a call; a call that did not finish is aborted (nothing applied). */
void udf_call_free(struct udf_call *c);

#endif
