/* cmd.c - the command table and dispatcher: lookup, AUTH and arity checks, key
 * locks for writing commands, one atomic commit of each command's writes, and the
 * reply helpers and key-access functions the command files share. */
#include "net_int.h"

#include <stdio.h>
#include <string.h>

static const struct cmd_def *const tables[] = {cmd_string_table, cmd_keys_table,
                                               cmd_server_table, cmd_udf_table,
                                               cmd_mapreduce_table, cmd_debug_table};

#define HASH_SIZE 512
static const struct cmd_def *hash_tab[HASH_SIZE];
static size_t hash_len[HASH_SIZE]; /* strlen of hash_tab[i]->name */
static const struct cmd_def *all_cmds[HASH_SIZE];
static int ncmds;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ASCII lower case (command names are ASCII; tolower is a call per byte). */
static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static unsigned name_hash(const char *s, size_t n)
{
    unsigned h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + lower((unsigned char)s[i]);
    return h;
}

/* name (any case) equals the table's lower-case name d of length dn. */
static bool name_eq(const char *name, size_t len, const char *d, size_t dn)
{
    if (len != dn)
        return false;
    for (size_t i = 0; i < len; i++)
        if (lower((unsigned char)name[i]) != (unsigned char)d[i])
            return false;
    return true;
}

static void build_table(void)
{
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const struct cmd_def *d = tables[t]; d->name != NULL; d++) {
            unsigned h = name_hash(d->name, strlen(d->name)) % HASH_SIZE;
            while (hash_tab[h] != NULL)
                h = (h + 1) % HASH_SIZE;
            hash_tab[h] = d;
            hash_len[h] = strlen(d->name);
            all_cmds[ncmds++] = d;
        }
}

const struct cmd_def *cmd_lookup(const char *name, size_t len)
{
    pthread_once(&init_once, build_table);
    if (len > 32)
        return NULL;
    unsigned h = name_hash(name, len) % HASH_SIZE;
    while (hash_tab[h] != NULL) {
        if (name_eq(name, len, hash_tab[h]->name, hash_len[h]))
            return hash_tab[h];
        h = (h + 1) % HASH_SIZE;
    }
    return NULL;
}

int cmd_count(void)
{
    pthread_once(&init_once, build_table);
    return ncmds;
}

const struct cmd_def *cmd_at(int i)
{
    pthread_once(&init_once, build_table);
    return i >= 0 && i < ncmds ? all_cmds[i] : NULL;
}

/* ---- Replies ----------------------------------------------------------------------- */

void reply_ok(struct cmd_ctx *x)
{
    resp_add_simple(x->out, "OK");
}

void reply_err(struct cmd_ctx *x, const char *msg)
{
    x->failed = true;
    resp_add_error(x->out, msg);
}

void reply_errf(struct cmd_ctx *x, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_err(x, msg);
}

void reply_syntax(struct cmd_ctx *x)
{
    reply_err(x, "ERR syntax error");
}

void reply_wrongtype(struct cmd_ctx *x)
{
    reply_err(x, "WRONGTYPE Operation against a key holding the wrong kind of value");
}

void reply_storage_err(struct cmd_ctx *x, const struct cm_err *err)
{
    reply_errf(x, "ERR storage error: %s", err->msg);
}

bool arg_is(struct cmd_ctx *x, size_t i, const char *lit)
{
    return i < x->argc && cm_streq_ci(x->argv[i], x->argvlen[i], lit);
}

bool arg_ll(struct cmd_ctx *x, size_t i, long long *v)
{
    if (cm_str_to_ll(x->argv[i], x->argvlen[i], v) != 0) {
        reply_err(x, "ERR value is not an integer or out of range");
        return false;
    }
    return true;
}

/* ---- Key access ----------------------------------------------------------------------- */

int kv_get(struct cmd_ctx *x, const char *key, size_t klen, struct eng_item *it)
{
    struct cm_err err = {0};
    int rc = x->txn ? eng_txn_get(x->txn, key, klen, x->now_ms, it, &err)
                    : eng_get_at(x->eng, x->snap, key, klen, x->now_ms, it, &err);
    struct worker *w = x->c != NULL ? x->c->w : NULL;
    if (rc == 0) {
        if (w != NULL)
            atomic_store_explicit(&w->st_hits,
                                  atomic_load_explicit(&w->st_hits, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        return 0;
    }
    if (rc == CM_ENOTFOUND) {
        if (w != NULL)
            atomic_store_explicit(&w->st_misses,
                                  atomic_load_explicit(&w->st_misses, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        if (it->expire_ms != 0 && x->txn == NULL) {
            /* Lazy expiry. A writing command holds the key's stripe: delete in its
             * batch; a reading one takes the stripe in eng_purge_expired, unless this
             * thread holds stripes for pending writes (then the active cycle will). */
            if (x->cmd->flags & CMD_WRITE)
                eng_batch_del(x->batch, key, klen);
            else if (x->c == NULL || x->c->w->held.n == 0)
                eng_purge_expired(x->eng, key, klen, x->now_ms, NULL);
        }
        return CM_ENOTFOUND;
    }
    reply_storage_err(x, &err);
    return rc;
}

int kv_put(struct cmd_ctx *x, const char *key, size_t klen, int64_t expire_ms, const void *val,
           size_t vlen)
{
    int rc = x->txn ? eng_txn_put(x->txn, key, klen, ENG_T_STRING, expire_ms, val, vlen)
                    : eng_batch_put(x->batch, key, klen, ENG_T_STRING, expire_ms, val, vlen);
    if (rc != 0) {
        reply_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return CM_ENOMEM;
    }
    return 0;
}

int kv_rewrite(struct cmd_ctx *x, const char *key, size_t klen, int64_t expire_ms,
               const void *val, size_t vlen)
{
    char msg[320];
    if (eng_space_refuses(x->eng, x->txn, x->c != NULL ? &x->c->w->space_held : NULL,
                          klen + vlen, msg, sizeof(msg))) {
        reply_errf(x, "ERR %s", msg);
        return CM_ELIMIT;
    }
    return kv_put(x, key, klen, expire_ms, val, vlen);
}

int kv_del(struct cmd_ctx *x, const char *key, size_t klen)
{
    if (x->txn == NULL) {
        eng_batch_del(x->batch, key, klen);
        return 0;
    }
    if (eng_txn_del(x->txn, key, klen) != 0) {
        reply_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return CM_ENOMEM;
    }
    return 0;
}

/* ---- Dispatch --------------------------------------------------------------------------- */

/* A command that adds data while the disk is below min-free-disk (the cron measures it),
 * or that would take it below (its arguments' size counts): true with the error reply
 * in out. t: the function call's transaction the command runs in, or NULL; held: else
 * the worker's count for its batch (NULL: none). A
 * CMD_REWRITE command checks the value it writes instead (kv_rewrite). RocksDB needs
 * free space to flush and compact; out of it, writes stay refused even after space
 * comes back (docs/STORAGE.md). */
static bool disk_refuses(struct server *s, const struct cmd_def *d, struct eng_txn *t,
                         long long *held, size_t argc, const size_t *argvlen,
                         struct cm_buf *out)
{
    char msg[320];
    if (!(d->flags & CMD_DENYOOM) || (d->flags & CMD_REWRITE))
        return false;
    size_t need = 0;
    for (size_t i = 1; i < argc; i++)
        need += argvlen[i];
    if (!eng_space_refuses(s->eng, t, held, need, msg, sizeof(msg)))
        return false;
    resp_add_errorf(out, "ERR %s", msg);
    return true;
}

static void unknown_command(struct conn *c, size_t argc, const char **argv, size_t *argvlen)
{
    /* Like Redis: quote arguments until the list reaches 128 bytes, cutting the last. */
    struct cm_buf args, msg;
    cm_buf_init(&args);
    cm_buf_init(&msg);
    for (size_t i = 1; i < argc && args.len < 128; i++)
        cm_buf_appendf(&args, "'%.*s' ",
                       (int)(argvlen[i] < 128 - args.len ? argvlen[i] : 128 - args.len), argv[i]);
    cm_buf_appendf(&msg, "ERR unknown command '%.*s', with args beginning with: %.*s",
                   (int)(argvlen[0] > 128 ? 128 : argvlen[0]), argv[0], (int)args.len,
                   args.p ? args.p : "");
    cm_buf_appendc(&msg, '\0');
    resp_add_error(&c->out, msg.p ? msg.p : "ERR unknown command");
    cm_buf_deinit(&args);
    cm_buf_deinit(&msg);
}

/* ---- Pipelined write batching ---------------------------------------------------------
 * The writes of the commands a worker executes in one loop iteration (the read
 * batches of all the connections it serves in that iteration) go into the worker's
 * batch and reach RocksDB in one write at the batch end (conn_batch_end), or
 * earlier, instead of one write per command. Each writing command first takes the
 * lock stripes of its keys and keeps them until that write, so its read-modify-write
 * stays atomic. Deadlock-free: while the worker holds stripes it only try-locks; if a
 * stripe is taken, it applies its pending writes, releases everything, and then
 * blocks for the stripes in ascending order like everyone else. A command that reads
 * a key whose stripe has a pending write, or any command without key positions
 * (SCAN, FCALL, FLUSHALL, ...), first applies the pending writes, so every command
 * sees the effects of the commands before it; every loop callback other than a
 * connection's I/O ends the batch first (loop_set_batch_end). Replies leave only
 * after the write and the WAL flush (conn_batch_end). */

/* Unlocks the stripes the worker took from the from-th on. */
static void release_held(struct worker *w, unsigned from)
{
    for (unsigned i = from; i < w->held.n; i++) {
        unsigned h = w->held.stripes[i];
        eng_stripe_unlock(w->srv->eng, h);
        w->held_bits[h / 64] &= ~((uint64_t)1 << (h % 64));
    }
    w->held.n = from;
}

void net_log_write_failure(struct server *s, const char *fmt, ...)
{
    long long unlogged;
    if (!cm_log_allow(&s->write_fail_log, 1, &unlogged))
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (unlogged > 0)
        cm_log(CM_LOG_WARNING, "%s (%lld lines like it not logged)", line, unlogged);
    else
        cm_log(CM_LOG_WARNING, "%s", line);
}

void cmd_flush_writes(struct worker *w)
{
    struct cm_err err = {0};
    (void)cmd_apply_writes(w, &err);
}

int cmd_apply_writes(struct worker *w, struct cm_err *errp)
{
    struct server *s = w->srv;
    int rc = 0;
    if (eng_batch_count(w->batch) > 0) {
        struct cm_err err = {0};
        rc = eng_write(s->eng, w->batch, &err);
        if (rc != 0) {
            cm_err_set(errp, err.code, "%s", err.msg);
            net_log_write_failure(s, "Write failed: %s", err.msg);
        }
        for (struct conn *c = w->ready; c != NULL; c = c->rnext) {
            if (!c->wpend)
                continue;
            if (rc == 0) {
                c->dirty = true;
            } else { /* the replies must not claim what did not happen */
                c->out.len = c->wmark > c->opos ? c->wmark : c->opos;
                for (unsigned i = 0; i < c->wcmds; i++)
                    if (err.code == CM_EAGAIN) /* a migration's fence: err.msg is TRYAGAIN */
                        resp_add_error(&c->out, err.msg);
                    else
                        resp_add_errorf(&c->out, "ERR storage error: %s", err.msg);
            }
        }
        eng_batch_clear(w->batch);
    }
    for (struct conn *c = w->ready; c != NULL; c = c->rnext)
        c->wpend = false;
    release_held(w, 0);
    return rc;
}

static bool holds(const struct worker *w, unsigned stripe)
{
    return (w->held_bits[stripe / 64] >> (stripe % 64)) & 1;
}

/* Records that w holds stripe st (locked by the caller). */
static int hold(struct worker *w, unsigned st)
{
    if (eng_lockset_add_stripe(&w->held, st) != 0)
        return CM_ENOMEM;
    w->held_bits[st / 64] |= (uint64_t)1 << (st % 64);
    return 0;
}

/* The stripes of the command's keys, sorted and unique. */
static int key_stripes(struct cmd_ctx *x, struct eng_lockset *ls)
{
    const struct cmd_def *d = x->cmd;
    int last = d->last_key < 0 ? (int)x->argc + d->last_key : d->last_key;
    for (int i = d->first_key; i > 0 && i <= last && i < (int)x->argc;
         i += d->step > 0 ? d->step : 1)
        if (eng_lockset_add_stripe(ls, eng_key_stripe(x->argv[i], x->argvlen[i])) != 0)
            return CM_ENOMEM;
    eng_lockset_normalize(ls);
    return 0;
}

int cmd_try_hold(struct worker *w, struct eng_lockset *ls)
{
    struct eng *e = w->srv->eng;
    unsigned before = w->held.n;
    for (unsigned i = 0; i < ls->n; i++) {
        unsigned st = ls->stripes[i];
        if (holds(w, st))
            continue;
        if (eng_stripe_trylock(e, st)) {
            if (hold(w, st) == 0)
                continue;
            eng_stripe_unlock(e, st);
        }
        release_held(w, before); /* taken by another thread (or no memory) */
        return CM_EAGAIN;
    }
    return 0;
}

bool cmd_holds_all(const struct worker *w, const struct eng_lockset *ls)
{
    for (unsigned i = 0; i < ls->n; i++)
        if (!holds(w, ls->stripes[i]))
            return false;
    return true;
}

int cmd_hold(struct worker *w, struct eng_lockset *ls)
{
    struct eng *e = w->srv->eng;
    for (unsigned i = 0; i < ls->n; i++) {
        unsigned st = ls->stripes[i];
        if (holds(w, st))
            continue;
        if (eng_stripe_trylock(e, st)) {
            if (hold(w, st) != 0) {
                eng_stripe_unlock(e, st);
                return CM_ENOMEM;
            }
            continue;
        }
        /* Contended: give everything back, then wait in order. */
        cmd_flush_writes(w);
        for (unsigned j = 0; j < ls->n; j++) {
            eng_stripe_lock(e, ls->stripes[j]);
            if (hold(w, ls->stripes[j]) != 0) {
                eng_stripe_unlock(e, ls->stripes[j]);
                return CM_ENOMEM;
            }
        }
        return 0;
    }
    return 0;
}

void cmd_execute(struct conn *c, size_t argc, const char **argv, size_t *argvlen)
{
    struct server *s = c->w->srv;
    struct worker *w = c->w;
    atomic_store_explicit(&w->st_commands,
                          atomic_load_explicit(&w->st_commands, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    c->ncmds++;
    const struct cmd_def *d = cmd_lookup(argv[0], argvlen[0]);
    if (d == NULL) {
        if (conn_needs_auth(c))
            resp_add_error(&c->out, "NOAUTH Authentication required.");
        else
            unknown_command(c, argc, argv, argvlen);
        goto replied;
    }
    size_t nl = strlen(d->name);
    if (nl >= sizeof(c->last_cmd))
        nl = sizeof(c->last_cmd) - 1;
    memcpy(c->last_cmd, d->name, nl);
    c->last_cmd[nl] = '\0';
    if (!c->authed && !(d->flags & CMD_NOAUTH) && conn_needs_auth(c)) {
        resp_add_error(&c->out, "NOAUTH Authentication required.");
        goto replied;
    }
    if ((d->arity > 0 && (int)argc != d->arity) || (d->arity < 0 && (int)argc < -d->arity)) {
        resp_add_errorf(&c->out, "ERR wrong number of arguments for '%s' command", d->name);
        goto replied;
    }
    if (s->cluster != NULL && !net_cluster_route(c, d, argc, argv, argvlen))
        goto replied; /* CROSSSLOT, MOVED or CLUSTERDOWN */
    if (disk_refuses(s, d, NULL, &w->space_held, argc, argvlen, &c->out))
        goto replied;
    struct cmd_ctx x = {
        .c = c, .srv = s, .eng = s->eng, .cmd = d, .argc = argc, .argv = argv,
        .argvlen = argvlen, .out = &c->out, .resp = c->resp, .now_ms = cm_now_ms(),
        .batch = w->batch,
    };
    struct eng_lockset ls;
    eng_lockset_init(&ls);
    if (d->flags & CMD_OWNTXN) {
        ; /* its transaction sees the pending writes (eng_txn_set_pending) */
    } else if (d->first_key <= 0) {
        cmd_flush_writes(w); /* it may read anything, or run code that does */
    } else if (!(d->flags & CMD_WRITE) && eng_batch_count(w->batch) == 0) {
        ; /* a read, and nothing pending to read: no stripes needed */
    } else if (key_stripes(&x, &ls) != 0) {
        resp_add_error(&c->out, "OOM out of memory locking keys");
        goto out;
    } else if (eng_batch_count(w->batch) > 0) {
        for (unsigned i = 0; i < ls.n; i++)
            if (eng_batch_touches(w->batch, ls.stripes[i])) {
                cmd_flush_writes(w); /* read your (pipeline's) writes */
                break;
            }
    }
    w->exec = c;
    if (!(d->flags & CMD_WRITE)) {
        d->fn(&x);
        goto out;
    }
    if (cmd_hold(w, &ls) != 0) {
        resp_add_error(&c->out, "OOM out of memory locking keys");
        goto out;
    }
    if (!c->wpend) {
        c->wpend = true;
        c->wmark = c->out.len;
        c->wcmds = 0;
    }
    eng_batch_savepoint(w->batch);
    d->fn(&x);
    if (x.failed)
        eng_batch_rollback(w->batch); /* an error reply: nothing of it applies */
out:
    w->exec = NULL;
    eng_lockset_deinit(&ls);
replied:
    if (c->wpend)
        c->wcmds++;
}

int cmd_exec_from_script(void *owner, struct eng_txn *txn, int resp, int flags, int argc,
                         const char **argv, const size_t *argvlen, struct cm_buf *out)
{
    struct conn *c = owner; /* NULL for map and reduce calls */
    struct server *s = g_server;
    if ((flags & UDF_EXEC_ROUTE) && s->cluster == NULL)
        return 0; /* one node: every key is here */
    const struct cmd_def *d = cmd_lookup(argv[0], argvlen[0]);
    size_t mark = out->len;
    int where = 0;
    if (flags & UDF_EXEC_ROUTE)
        return d != NULL ? net_cluster_script_check(d, (size_t)argc, argv, argvlen, out) > 0
                                 ? UDF_EXEC_REMOTE
                                 : 0
                         : 0;
    if (d == NULL)
        resp_add_error(out, "ERR Unknown Redis command called from script");
    else if (d->flags & CMD_NOSCRIPT)
        resp_add_error(out, "ERR This Redis command is not allowed from script");
    else if ((d->arity > 0 && argc != d->arity) || (d->arity < 0 && argc < -d->arity))
        resp_add_error(out, "ERR Wrong number of args calling Redis command from script");
    else if ((flags & UDF_EXEC_READONLY) && (d->flags & CMD_WRITE))
        resp_add_error(out, "ERR Write commands are not allowed from read-only scripts.");
    else if (s->cluster != NULL &&
             (where = net_cluster_script_check(d, (size_t)argc, argv, argvlen, out)) != 0)
        return where > 0 ? UDF_EXEC_REMOTE : 0; /* another node's key, or an error reply */
    else if (disk_refuses(s, d, txn, NULL, (size_t)argc, argvlen, out))
        ; /* the function sees the error, as under Redis's maxmemory; a remote key's owner
           * checks its own disk */
    else if (d->first_key <= 0 && (flags & UDF_EXEC_HELD))
        return UDF_EXEC_UNHOLD; /* cluster commands wait for g->mu, slot drops for stripes */
    else if (d->first_key <= 0 && txn != NULL && eng_txn_pending_any(txn))
        /* Keyless commands (RANDOMKEY, FLUSHALL, CLUSTER COUNTKEYSINSLOT ...) work on the
         * current state, not through the call's transaction: with writes of the
         * pipeline still pending, the call runs again once they are applied. */
        resp_add_error(out, "ERR the pipeline's pending writes must be applied first; "
                            "the call runs again");
    else {
        struct cmd_ctx x = {
            .c = c, .srv = s, .eng = s->eng, .cmd = d, .argc = (size_t)argc, .argv = argv,
            .argvlen = (size_t *)argvlen, .out = out, .resp = resp, .now_ms = cm_now_ms(),
            .batch = NULL, .txn = txn,
        };
        atomic_fetch_add_explicit(&s->commands, 1, memory_order_relaxed);
        d->fn(&x);
    }
    return out->len > mark ? 0 : CM_ENOMEM;
}
