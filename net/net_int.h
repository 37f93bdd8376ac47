/* net_int.h - declarations private to net/: the event-loop API (loop.c), the
 * configuration (config.c), the server and its worker threads (server.c),
 * connections (conn.c) and the command table (cmd*.c). */
#ifndef EDDY_NET_INT_H
#define EDDY_NET_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "../engine/engine.h"
#include "../udf/udf.h"
#include "net.h"
#include "resp.h"

/* ---- Event loop (loop.c; the only user of libev) ------------------------------------ */
enum { LOOP_READ = 1, LOOP_WRITE = 2 };
struct loop;
struct loop_io;
struct loop_timer;
struct loop_async;
typedef void (*loop_io_fn)(void *ud, int events);
typedef void (*loop_timer_fn)(void *ud);

struct loop *loop_new(bool is_default);
void loop_free(struct loop *l);
void loop_run(struct loop *l);
void loop_stop(struct loop *l);
double loop_now(struct loop *l);
struct loop_io *loop_io_new(struct loop *l, int fd, loop_io_fn fn, void *ud);
void loop_io_set(struct loop_io *io, int events); /* LOOP_READ|LOOP_WRITE, 0 = off */
/* Batching: fn(ud) runs before the loop blocks for events, and before every callback
 * except those of fd watchers marked with loop_io_batched, so work those leave
 * pending (a worker's unapplied writes and unsent replies) is finished once per loop
 * iteration and never seen by timers, wake-ups or other watchers. */
void loop_set_batch_end(struct loop *l, loop_timer_fn fn, void *ud);
void loop_io_batched(struct loop_io *io);
int loop_io_events(const struct loop_io *io);
void loop_io_free(struct loop_io *io);
struct loop_timer *loop_timer_new(struct loop *l, double after, double repeat, loop_timer_fn fn,
                                  void *ud);
void loop_timer_free(struct loop_timer *t);
struct loop_async *loop_async_new(struct loop *l, loop_timer_fn fn, void *ud);
void loop_async_send(struct loop_async *a); /* thread-safe */
void loop_async_free(struct loop_async *a);
int loop_on_signal(struct loop *l, int signum, loop_timer_fn fn, void *ud);

/* ---- Configuration (config.c) --------------------------------------------------------- */
struct net_config {
    int port;
    char bind[256];            /* space-separated addresses */
    char dir[1024];
    int threads;               /* I/O threads; 0 = number of cores */
    int appendfsync;           /* enum eng_fsync */
    char requirepass[512];
    long long maxclients;
    long long timeout;         /* idle seconds; 0 = never */
    long long output_limit;    /* client-output-buffer-limit (bytes, 0 = none) */
    long long query_limit;     /* client-query-buffer-limit */
    long long max_bulk;        /* proto-max-bulk-len */
    int loglevel;
    char logfile[1024];
    long long udf_time_limit;  /* ms */
    long long udf_memory_limit; /* bytes per Lua state */
    long long block_cache;     /* bytes */
    long long memtable;        /* bytes */
    long long value_cache;     /* bytes, 0 = no value cache */
    int hz;
    int protected_mode;        /* refuse non-loopback clients when no password is set */
    char config_file[1024];
    int cluster_enabled;       /* --cluster-enabled yes: slot map, routing (cmd_cluster.c) */
    int enable_debug;          /* DEBUG command: 0 no, 1 yes, 2 local (loopback clients) */
    long long min_free_disk;   /* bytes; -N: N% of the data directory's file system; 0 off */
};

/* A number of cfg that CONFIG SET may change on another thread: read it with this
 * (a relaxed atomic load; config.c stores atomically). */
#define NET_CFG(cfg, field) __atomic_load_n(&(cfg)->field, __ATOMIC_RELAXED)
/* requirepass, read under the lock CONFIG SET writes it with: whether one is set, and a
 * copy into buf. */
bool net_config_has_password(struct net_config *cfg);
void net_config_password(struct net_config *cfg, char *buf, size_t cap);

/* CONFIG GET: appends the name/value pairs of the options matching any of the npats
 * patterns as a map, each option once (as Redis). */
int net_config_get(struct net_config *cfg, const char *const *pats, const size_t *plens,
                   size_t npats, struct cm_buf *out, int proto);
/* CONFIG SET of one name; returns 0 or CM_EINVAL with msg set (Redis's wording).
 * With cfg NULL it only checks the name and the value. */
int net_config_set(struct net_config *cfg, const char *name, size_t nlen, const char *val,
                   size_t vlen, char *msg, size_t msgcap);
/* Parses "1gb", "64mb", "100" into bytes. */
int net_parse_memory(const char *s, long long *out);

/* ---- Server and workers (server.c) ------------------------------------------------------ */
struct conn;
struct worker;
struct conn_job;
struct cluster;

/* A call waiting on a worker between slices: a connection's FCALL/EVAL, or one
 * partition of a MAPREDUCE. done is called on the worker when the call finished; it
 * owns the call from then on. */
struct wcall {
    struct udf_call *call;
    void (*done)(struct worker *w, struct wcall *wc);
    struct wcall *next, *prev;
    bool linked;
    struct bus_call *bus;    /* the call waits for a key of another node (bus.c) */
    struct worker *w;        /* the worker running it (set by worker_run_call) */
    bool holding;            /* w holds stripes for its attempt (UDF_COMMIT_HOLD) */
};

/* Work posted to a worker from another thread, run on the worker's thread. */
struct task {
    void (*fn)(struct worker *w, void *arg);
    void *arg;
    struct task *next;
};

struct server {
    /* Until when (cm_now_ms) a key stripe counts as hot: a call's commit found it held
     * by another thread. Calls writing hot stripes do not keep them until their
     * worker's batch end (net/conn.c worker_commit). Relaxed atomics: a hint. */
    _Atomic int64_t stripe_hot_until[ENG_STRIPES];
    struct net_config *cfg;
    struct eng *eng;
    struct udf *udf;
    int nworkers;
    struct worker **workers;
    int listen_fds[8];
    int nlisten;
    int64_t start_us;
    atomic_bool shutting_down;
    int exit_code;

    /* All clients, for CLIENT KILL; guarded by clients_lock. Other threads read only
     * what is fixed before a connection joins the list (id, addr, laddr, w) and its
     * atomic kill flag; CLIENT LIST asks each worker instead (clients.c). */
    pthread_mutex_t clients_lock;
    struct conn *clients;
    atomic_long nclients;
    atomic_long handing;  /* accepted, on their way to another worker (hand_to_worker) */
    atomic_ullong next_client_id;
    unsigned next_worker;

    /* Counters for INFO stats. */
    atomic_ullong conns_received, conns_rejected, commands, net_in, net_out, auth_failures;

    /* Lines about failed writes, WAL flushes and expiry: net_log_write_failure. */
    struct cm_log_limit write_fail_log; /* net_log_write_failure */
    /* commands counts those run from scripts; workers count the rest (st_*). */
    struct loop_timer *cron;
    struct cluster *cluster;   /* NULL unless cluster-enabled (cluster/cluster.h) */
};

extern struct server *g_server;

struct worker {
    int id;
    struct server *srv;
    long long space_held;      /* --min-free-disk bytes let through for this batch's
                                * writes, until its WAL flush (eng_space_refuses) */
    struct loop *loop;
    pthread_t thread;
    struct loop_async *wake;   /* new connections or kill requests are pending */
    pthread_mutex_t inbox_lock;
    int *inbox;                /* accepted fds handed to this worker */
    int inbox_len, inbox_cap;
    struct conn *conns;        /* this worker's connections */
    struct loop_timer *cron;
    struct eng_batch *batch;   /* pending writes of this loop iteration's commands */
    struct eng_lockset held;   /* key stripes held for them (see cmd.c) */
    uint64_t held_bits[ENG_STRIPES / 64]; /* the same stripes as a bit set */
    struct conn *ready;        /* served this iteration: replies wait for the batch end */
    struct conn *exec;         /* the connection whose command cmd_execute is running */
    /* Statistics written by this thread only, summed by INFO. */
    atomic_ullong st_commands, st_hits, st_misses;
    struct udf_vm *vm;         /* this thread's Lua state */
    struct loop_async *resume; /* run a slice of the preempted calls */
    struct wcall *calls;       /* preempted calls */
    struct task *tasks, **tasks_tail; /* posted work (inbox_lock) */
    struct bus_link *bus;      /* connections to other nodes (bus.c) */
};

/* ---- Node-to-node calls (bus.c) --------------------------------------------------------------
 * Asynchronous, on the calling worker's loop, pipelined on one connection per (peer,
 * lane) that opens when needed (AUTH password first when not NULL or "") and again
 * after it broke. fn(w, ud, reply, NULL) gets the reply (owned by fn; it may be an
 * error reply), or fn(w, ud, NULL, "host:port: why") when the connection fails. Returns
 * 0 (fn will be called exactly once, unless the call is cancelled or the worker shuts
 * down first) or an error with err set (fn is not called). */
enum { BUS_LANE_KEYS = 0, BUS_LANE_BULK = 1 }; /* short calls / MAPREDUCE's maps */
struct bus_call;
typedef void (*bus_reply_fn)(struct worker *w, void *ud, struct resp_value *reply,
                             const char *error);
int bus_call(struct worker *w, const char *host, int port, int lane, const char *password,
             int argc, const char *const *argv, const size_t *argvlen, bus_reply_fn fn, void *ud,
             struct cm_err *err);
/* The same with the command already RESP-encoded (cmd, len) and the node as "host:port";
 * *handle (if not NULL) names the call for bus_cancel until fn runs. */
int bus_call_raw(struct worker *w, const char *addr, int lane, const char *password,
                 const char *cmd, size_t len, bus_reply_fn fn, void *ud,
                 struct bus_call **handle, struct cm_err *err);
/* Drops a call's reply when it comes (its owner went away); fn will not run. */
void bus_cancel(struct worker *w, struct bus_call *c);
/* Closes every connection without calling back (worker teardown). */
void bus_close_all(struct worker *w);
/* From the worker's cron: fails the links whose oldest short call waited too long. */
void bus_cron(struct worker *w);

/* Requests shutdown from any thread (SHUTDOWN, signals). */
void server_shutdown(struct server *s, int exit_code);
/* Runs fn(w, arg) on w's thread soon (from any thread). Returns 0 or CM_ENOMEM. */
int server_post(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg);
/* Runs the first slice of a call on w (the current thread's worker); if it does not
 * finish, later slices run from w's loop until it does; then wc->done. */
void worker_run_call(struct worker *w, struct wcall *wc);
/* Gives every preempted call of w one more slice. */
void worker_resume_calls(struct worker *w);
/* Pushes the udf-* configuration to the function registry. */
void server_apply_udf_limits(struct server *s);
/* Wakes the worker that owns c so it notices a kill request. */
void server_wake_worker(struct worker *w);

/* ---- Connections (conn.c) ------------------------------------------------------------------ */
enum {
    CONN_CLOSE_AFTER_REPLY = 1, /* QUIT, protocol errors */
    CONN_CLOSE_ASAP = 2
};

struct conn {
    unsigned long long id;
    int fd;
    struct worker *w;
    struct loop_io *io;
    struct cm_buf in;          /* query buffer; frames start at in.p[qpos] */
    size_t qpos;
    struct resp_req req;
    struct cm_buf out;         /* replies; out.p[opos..] not yet written */
    size_t opos;
    int resp;                  /* 2 or 3 */
    bool authed;
    bool asking;               /* ASKING: the next command may use an importing slot */
    int flags;
    atomic_bool kill;
    bool paused;               /* reading paused: too much pending output */
    bool dirty;                /* wrote since the last WAL sync check */
    /* Batching (conn.c, cmd.c): a connection served in this loop iteration is on
     * its worker's ready list; its replies leave at the batch end, after its writes
     * were applied and the WAL flushed. */
    bool in_ready;
    struct conn *rnext;
    size_t rmark;              /* out.len when it joined the list */
    unsigned rcmds;            /* commands replied since */
    bool wpend;                /* has writes in the worker's batch */
    size_t wmark;              /* out.len before its first pending write command */
    unsigned wcmds;            /* commands replied since */
    char *name;
    char addr[64], laddr[64];
    bool loopback;             /* the peer is on the loopback interface */
    int64_t ctime_ms, last_ms;
    int64_t frame_ms;          /* when the unparsed input began arriving */
    unsigned long long ncmds;
    char last_cmd[32];
    struct wcall wc;                   /* wc.call: a running call blocks the connection */
    struct conn_job *job;              /* a running MAPREDUCE or CLIENT LIST blocks it too */
    struct conn *next, *prev;          /* worker list */
    struct conn *gnext, *gprev;        /* server list (clients_lock) */
};

/* Something a connection waits for that other threads work on (a MAPREDUCE job, a
 * CLIENT LIST gathering every thread's connections). While c->job is set the
 * connection executes no further command; the job's owner clears it, appends the reply
 * and calls conn_serve. If the connection closes first, conn_close calls detach (on
 * the connection's thread) and the job finishes without it. */
struct conn_job {
    void (*detach)(struct conn_job *job);
};

void conn_accept(struct worker *w, int fd);
void conn_close(struct conn *c);
/* Whether c must AUTH before other commands: it has not, and a password is set now
 * (as Redis: clearing requirepass lets in the connections that never authenticated). */
bool conn_needs_auth(const struct conn *c);
/* Appends the CLIENT LIST line of c to out. Only c's own thread may call it: the
 * fields it reads are written by that thread without a lock (clients.c gathers the
 * lines of other threads' connections through server_post). */
void conn_describe(struct conn *c, struct cm_buf *out);
/* Closes idle clients and finished kills on this worker; called by its cron. */
void conn_worker_cron(struct worker *w);
/* Runs a new call for c (from FCALL/EVAL): its reply is appended now if it finishes
 * within its first slice, else when a later slice finishes it. Takes ownership. */
void conn_run_call(struct conn *c, struct udf_call *call);
/* Executes c's buffered commands (after a call or job ended); the replies leave at
 * the batch end. */
void conn_serve(struct conn *c);
/* The batch end of worker w (loop_set_batch_end): applies the pending writes in one
 * RocksDB write, flushes the WAL once (fsync under appendfsync always), then writes
 * the replies of every connection served since the last batch end. */
void conn_batch_end(void *w);

/* ---- CLIENT LIST (clients.c) ------------------------------------------------------------ */
struct cmd_ctx;
/* Lists the clients in ids (nids 0: all; at most 64 ids) for x's connection, which
 * waits (c->job) while each worker describes its own connections; the reply is
 * appended when all have answered, now or later. */
void client_list_start(struct cmd_ctx *x, const unsigned long long *ids, size_t nids);

/* ---- MAPREDUCE (mapreduce.c) ----------------------------------------------------------- */
/* A partial result as it crosses the node bus (the reply to MAPREDUCE map @zpartials):
 * "Z" + a zstd frame (with its content size and checksum) when that is smaller, else
 * "R" + the raw bytes. mr_pack appends it to out as a RESP bulk string (0 or CM_ENOMEM).
 * mr_unpack decodes p[0..n) into out (appended): 0, or CM_EPROTO for a bad tag, a
 * corrupt frame, or content larger than max bytes (err says which), or CM_ENOMEM. */
enum { MR_PACK_MIN = 512 }; /* smaller partials are sent raw */
int mr_pack(struct cm_buf *out, const char *p, size_t n);
int mr_unpack(const char *p, size_t n, size_t max, struct cm_buf *out, struct cm_err *err);
/* The udf_exec_fn for redis.call (cmd.c). */
int cmd_exec_from_script(void *owner, struct eng_txn *txn, int resp, int flags, int argc,
                         const char **argv, const size_t *argvlen, struct cm_buf *out);

/* ---- Commands (cmd.c and cmd_*.c) ---------------------------------------------------------- */
enum {
    CMD_WRITE = 1,     /* may modify the keyspace: keys are locked, writes batched */
    CMD_READONLY = 2,
    CMD_NOAUTH = 4,    /* allowed before AUTH */
    CMD_ADMIN = 8,
    CMD_FAST = 16,
    CMD_LOADING = 32,
    CMD_NOSCRIPT = 64, /* not allowed from redis.call */
    CMD_ANYSLOT = 128, /* cluster: keys may be in any slots, routed by the first (calls) */
    CMD_OWNTXN = 256,  /* a function call: reads in its own transaction, which sees the
                        * worker's pending writes (no flush before it), and its commit
                        * joins the worker's batch (conn.c worker_commit) */
    CMD_DENYOOM = 512, /* adds data: refused while the disk is below min-free-disk */
    CMD_REWRITE = 1024 /* writes its key's whole value again (APPEND, EXPIRE ...): it
                        * checks the free space for what it writes (kv_rewrite) */
};

struct cmd_ctx;
typedef void (*cmd_fn)(struct cmd_ctx *x);

struct cmd_def {
    const char *name;
    cmd_fn fn;
    int arity;       /* Redis convention: N exact, -N at least N */
    int flags;
    int first_key, last_key, step; /* key positions (last -1 = until the end) */
    const char *group;
};

/* One command execution. Replies go to out; writes go to batch and are committed by
 * the dispatcher after fn returns (so every command applies atomically). */
struct cmd_ctx {
    struct conn *c;
    struct server *srv;
    struct eng *eng;
    const struct cmd_def *cmd;
    size_t argc;
    const char **argv;
    size_t *argvlen;
    struct cm_buf *out;
    int resp;
    int64_t now_ms;
    struct eng_batch *batch;
    struct eng_txn *txn; /* set inside a function call: reads and writes go through it */
    struct eng_snap *snap; /* a consistent view for multi-key reads */
    bool failed;     /* fn wrote an error reply: nothing to commit */
};

const struct cmd_def *cmd_lookup(const char *name, size_t len);
/* Runs argv on connection c, appending the reply to c->out; c is on its worker's
 * ready list (conn.c process_input). */
void cmd_execute(struct conn *c, size_t argc, const char **argv, size_t *argvlen);
/* Applies the pending writes of w's batch in one RocksDB write and releases their
 * key stripes (batch end, or before a command that must see them). On a storage
 * error the pending commands' replies become error replies. */
void cmd_flush_writes(struct worker *w);
/* Logs a line about a failed write, WAL flush or expiry, at most one a second (the
 * next line logged says how many were not): on a full disk every client's retry and
 * every cron tick fails. */
void net_log_write_failure(struct server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* cmd_flush_writes, returning 0 or the write's error (err set). */
int cmd_apply_writes(struct worker *w, struct cm_err *err);
/* Takes the stripes of ls (sorted, unique) for w's pending writes, keeping those it
 * holds; may apply w's pending writes first to wait for a contended one. Returns 0 or
 * CM_ENOMEM. */
int cmd_hold(struct worker *w, struct eng_lockset *ls);
/* cmd_hold without waiting: CM_EAGAIN (taking nothing new) if another thread holds
 * one of the stripes. */
int cmd_try_hold(struct worker *w, struct eng_lockset *ls);
/* Whether w holds every stripe of ls. */
bool cmd_holds_all(const struct worker *w, const struct eng_lockset *ls);
int cmd_count(void);
const struct cmd_def *cmd_at(int i);

/* Reply helpers used by the command files. */
void reply_ok(struct cmd_ctx *x);
void reply_err(struct cmd_ctx *x, const char *msg);
void reply_errf(struct cmd_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_syntax(struct cmd_ctx *x);
void reply_wrongtype(struct cmd_ctx *x);
void reply_storage_err(struct cmd_ctx *x, const struct cm_err *err);
bool arg_is(struct cmd_ctx *x, size_t i, const char *lit);
/* Parses argv[i] as an integer; replies "value is not an integer or out of range"
 * and returns false when it is not one. */
bool arg_ll(struct cmd_ctx *x, size_t i, long long *v);

/* Key access for commands: reads see the store; writes go to the command's batch. */
int kv_get(struct cmd_ctx *x, const char *key, size_t klen, struct eng_item *it);
int kv_put(struct cmd_ctx *x, const char *key, size_t klen, int64_t expire_ms, const void *val,
           size_t vlen);
/* kv_put for a CMD_REWRITE command: first the free-space check for what it writes
 * (--min-free-disk), which replies the error and returns CM_ELIMIT when it refuses. */
int kv_rewrite(struct cmd_ctx *x, const char *key, size_t klen, int64_t expire_ms,
               const void *val, size_t vlen);
int kv_del(struct cmd_ctx *x, const char *key, size_t klen);

/* FUNCTION's work on this node only (cmd_udf.c): FUNCTION itself, and CLUSTER
 * FUNCTION, the form another node forwards. */
void cmd_function_local(struct cmd_ctx *x);

/* ---- Cluster mode (cmd_cluster.c) ----------------------------------------------------------- */
/* Opens the cluster state when cluster-enabled (s->cluster stays NULL otherwise).
 * Returns 0 or a negative code with err set. */
int net_cluster_open(struct server *s, struct cm_err *err);
void net_cluster_close(struct server *s);
/* Catching up with the other nodes (cluster_sync.c): the highest function epoch this
 * node applied, a new one for a change it propagates, one it applied from another node;
 * net_cluster_catchup installs a peer's newer slot map and copies the libraries of
 * a node with a higher function epoch (FUNCTION DUMP there, RESTORE FLUSH here); done at
 * start (net_cluster_sync_start, before clients) and then every 2 s by a thread. */
unsigned long long net_cluster_fn_epoch(void);
unsigned long long net_cluster_fn_epoch_next(struct server *s);
void net_cluster_fn_epoch_seen(struct server *s, unsigned long long epoch);
/* One change of epoch e was applied here: it becomes this node's epoch only if it is
 * the next one (e = epoch + 1); after a gap the catch-up copies a newer node's state. */
void net_cluster_fn_epoch_applied(struct server *s, unsigned long long e);
int net_cluster_catchup(struct server *s);
int net_cluster_sync_start(struct server *s);
void net_cluster_sync_stop(void);
/* The CLUSTER command, and ASKING. */
void net_cluster_cmd(struct cmd_ctx *x);
void net_cluster_asking(struct cmd_ctx *x);
/* Routing of a client's command: true if it runs here; false after appending the
 * CROSSSLOT, MOVED or CLUSTERDOWN reply to c->out. Always true without cluster mode. */
bool net_cluster_route(struct conn *c, const struct cmd_def *d, size_t argc, const char **argv,
                       const size_t *argvlen);
/* For a command run by a function: 0 if all its keys are in slots of this node; 1 if
 * they are all on one other node, then "<first key's slot> <host>:<port>" is appended
 * to out (plain text); else -1 after appending the error reply to out. */
int net_cluster_script_check(const struct cmd_def *d, size_t argc, const char **argv,
                             const size_t *argvlen, struct cm_buf *out);
/* True for the FUNCTION subcommands that every node applies (LOAD DELETE FLUSH RESTORE)
 * when in cluster mode. */
bool net_cluster_fn_propagates(struct cmd_ctx *x);
/* Function changes in cluster mode (cluster_fn.c, docs/CLUSTER.md). fn_change: a
 * FUNCTION LOAD/DELETE/FLUSH/RESTORE of a client, ordered by the coordinator of the
 * map, which applies it, gives it the next function epoch and forwards it to every
 * other node; x's connection waits (c->job) and gets the reply when every node has
 * answered (an error naming the nodes that missed it). net_cluster_function: the
 * internal CLUSTER FUNCTION [PROPOSE | EPOCH <e>] <FUNCTION arguments>. */
void net_cluster_fn_change(struct cmd_ctx *x);
void net_cluster_function(struct cmd_ctx *x);
/* FUNCTION LIST in cluster mode: each library also shows library_version (SHA-1). */
void net_cluster_fn_list(struct cmd_ctx *x, const char *pat, size_t plen, bool withcode);

/* Command groups, each a table of definitions. */
extern const struct cmd_def cmd_string_table[];
extern const struct cmd_def cmd_keys_table[];
extern const struct cmd_def cmd_server_table[];
extern const struct cmd_def cmd_udf_table[];
extern const struct cmd_def cmd_mapreduce_table[];
extern const struct cmd_def cmd_debug_table[];

#endif
