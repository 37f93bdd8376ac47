/* migrate.c - online slot migration (docs/CLUSTER.md, "Moving slots"): the source's
 * thread that streams a snapshot of the slots and the writes made meanwhile to the
 * target in zstd batches, fences, commits with a handoff and installs the map of the
 * next epoch; the target's CLUSTER IMPORT commands; routing during a move (-ASK,
 * fence waits, ASKING); the persisted state of both sides and its recovery after a
 * restart. Uses the engine (snapshots, slot watch, range deletion, metadata), the
 * node-to-node link (link.c) and zstd. */
#include "cluster.h"
#include "cluster_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#define KEY_OUT "cluster:mig-out"
#define KEY_IN "cluster:mig-in"
#define KEY_IN_DONE "cluster:mig-in-done" /* id of the last import completed here */
#define BATCH_BYTES (256 * 1024)          /* raw bytes per IMPORT LOAD */
/* IMPORT LOADs in flight. 1 (no overlap) measured faster than 4 on a 2-core machine
 * moving 100k 1 kB values (about 23 against 16 MB/s): the target's insert dominates and
 * the two processes share the cores. Raise it where they do not. */
#define LOAD_WINDOW 1
#define LINK_TIMEOUT_MS 10000
#define CATCHUP_SMALL 200 /* a delta this small is sent under the fence */
#define CATCHUP_MAX_ROUNDS 30
#define MAX_RAW (64u << 20)   /* largest decompressed batch a target accepts */
#define HANDOFF_WAIT_MS 10000 /* a target finishes a committed import alone after this */
#define SLOT_BYTES (CM_SLOTS / 8)

/* Per-slot routing state. */
enum { SS_NONE, SS_OUT, SS_FENCED, SS_ASK, SS_IN, SS_IN_ASK };

/* Phases of the outgoing migration, shown by CLUSTER MIGRATION STATUS. */
enum {
    OUT_IDLE,
    OUT_STREAM,
    OUT_CATCHUP,
    OUT_FENCED,
    OUT_HANDOFF,
    OUT_DONE,
    OUT_FAILED,
    OUT_CANCELLED,
    OUT_RECOVER
};
static const char *const phase_names[] = {"idle", "streaming", "catchup",   "fenced",    "handoff",
                                          "done", "failed",    "cancelled", "recovering"};

struct clu_mig {
    struct cluster *cl;
    struct eng *e;
    clu_password_fn password; /* requirepass, read when a call needs it */
    void *password_ud;
    pthread_mutex_t mu;   /* guards everything below but ss */
    pthread_cond_t cv;    /* broadcast when a slot's state changes */
    _Atomic unsigned char ss[CM_SLOTS];
    atomic_bool cancel, closing;

    /* The outgoing migration (this node is the source). */
    bool out_busy; /* its thread runs */
    bool asking;   /* HANDOFF sent: the target decides, CANCEL is refused */
    bool joinable;
    pthread_t thread;
    int phase;
    char id[64];
    char target_id[CLU_ID_LEN + 1];
    char host[CLU_HOST_LEN];
    /* "ASK <slot> <host:port>" after "%u": published (publish_ask) before slots enter
     * SS_ASK, so routing reads it without g->mu, which a worker holding key stripes
     * must not wait for (an import applies its batch with g->mu, then the stripes).
     * Replaced strings are kept until clu_mig_close. */
    _Atomic(char *) ask_to;
    struct ask_old {
        char *s;
        struct ask_old *next;
    } *ask_old;
    int port;
    unsigned long long base; /* map epoch when it started; the switch installs base + 1 */
    uint8_t slots[SLOT_BYTES];
    int nslots;
    double rate_mb;
    char error[256];
    long long keys, bytes_raw, bytes_wire, snap_keys, rounds, catchup_keys;
    int64_t t_start, t_end, t_fence, fence_ms;
    int64_t rate_due;   /* when the bytes sent so far are paid for at RATE (0: no RATE) */

    /* The incoming migration (this node is the target). */
    bool in_on;
    int in_phase; /* 1 importing, 2 handoff (committed) */
    bool in_unsure; /* in_phase 1, but a "handoff" record may be durable (settle) */
    char in_id[64];
    char in_source[CLU_ID_LEN + 1];
    unsigned long long in_base;
    uint8_t in_slots[SLOT_BYTES];
    long long in_keys, in_batches;
    unsigned long long in_flushes; /* the engine's flush count at BEGIN */
    bool in_joinable;
    pthread_t in_thread;
    int in_delay_ms;
    pthread_mutex_t in_thread_mu; /* serializes start_in_finish (worker threads) */
};

static int start_in_finish(struct clu_mig *g, int delay_ms);

/* ---- Slot sets ------------------------------------------------------------------------- */

static bool has(const uint8_t *b, unsigned s)
{
    return (b[s >> 3] >> (s & 7)) & 1;
}

static void add(uint8_t *b, unsigned s)
{
    b[s >> 3] |= (uint8_t)(1u << (s & 7));
}

static int count_slots(const uint8_t *b)
{
    int n = 0;
    for (unsigned s = 0; s < CM_SLOTS; s++)
        n += has(b, s);
    return n;
}

int clu_slots_parse(const char *p, size_t n, uint8_t slots[SLOT_BYTES])
{
    char a[32];
    if (n == 0 || n >= sizeof(a))
        return CM_EINVAL;
    memcpy(a, p, n);
    a[n] = '\0';
    char *dash = strchr(a, '-'), *end;
    if (dash != NULL)
        *dash = '\0';
    long lo = strtol(a, &end, 10);
    if (end == a || *end != '\0')
        return CM_EINVAL;
    long hi = lo;
    if (dash != NULL) {
        hi = strtol(dash + 1, &end, 10);
        if (end == dash + 1 || *end != '\0')
            return CM_EINVAL;
    }
    if (lo < 0 || hi >= CM_SLOTS || hi < lo)
        return CM_EINVAL;
    for (long s = lo; s <= hi; s++)
        add(slots, (unsigned)s);
    return 0;
}

/* Appends "lo-hi n ..." (space-separated runs). */
static int fmt_slots(const uint8_t *b, struct cm_buf *out)
{
    int rc = 0;
    bool first = true;
    for (unsigned s = 0; s < CM_SLOTS && rc == 0; s++) {
        if (!has(b, s))
            continue;
        unsigned e = s;
        while (e + 1 < CM_SLOTS && has(b, e + 1))
            e++;
        rc = e == s ? cm_buf_appendf(out, "%s%u", first ? "" : " ", s)
                    : cm_buf_appendf(out, "%s%u-%u", first ? "" : " ", s, e);
        first = false;
        s = e;
    }
    return rc;
}

static int drop_slots(struct eng *e, const uint8_t *b, struct cm_err *err)
{
    for (unsigned s = 0; s < CM_SLOTS; s++) {
        if (!has(b, s))
            continue;
        unsigned e2 = s;
        while (e2 + 1 < CM_SLOTS && has(b, e2 + 1))
            e2++;
        int rc = eng_drop_slots(e, s, e2, err);
        if (rc != 0)
            return rc;
        s = e2;
    }
    return 0;
}

/* Publishes "host:port" of the target for routing's -ASK replies (g->mu held or the
 * migration thread's own state). */
static void publish_ask(struct clu_mig *g)
{
    char buf[CLU_HOST_LEN + 16];
    snprintf(buf, sizeof(buf), "%s:%d", g->host, g->port);
    char *s = cm_strdup(buf);
    struct ask_old *o = cm_malloc(sizeof(*o));
    if (s == NULL || o == NULL) {
        cm_free(s);
        cm_free(o);
        return; /* routing keeps the previous address or says TRYAGAIN */
    }
    o->s = atomic_exchange(&g->ask_to, s);
    o->next = g->ask_old;
    g->ask_old = o;
}

static void set_ss(struct clu_mig *g, const uint8_t *b, unsigned char st)
{
    if (st == SS_ASK)
        publish_ask(g);
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (has(b, s))
            atomic_store(&g->ss[s], st);
    pthread_mutex_lock(&g->mu);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* ---- Persisted state ----------------------------------------------------------------------- */

/* Record of the source: "<id> <target-id> <host> <port> <base> <stream|handoff> <slots>". */
static int save_out(struct clu_mig *g, const char *phase, struct cm_err *err)
{
    struct cm_buf b;
    cm_buf_init(&b);
    int rc = cm_buf_appendf(&b, "%s %s %s %d %llu %s ", g->id, g->target_id, g->host, g->port,
                            g->base, phase);
    if (rc == 0)
        rc = fmt_slots(g->slots, &b);
    rc = rc != 0 ? cm_err_set(err, CM_ENOMEM, "out of memory")
                 : eng_meta_put(g->e, KEY_OUT, strlen(KEY_OUT), b.p, b.len, err);
    cm_buf_deinit(&b);
    return rc;
}

/* Record of the target: "<id> <source-id> <base> <importing|handoff> <slots>". */
static int save_in(struct clu_mig *g, struct cm_err *err)
{
    struct cm_buf b;
    cm_buf_init(&b);
    int rc = cm_buf_appendf(&b, "%s %s %llu %s ", g->in_id, g->in_source, g->in_base,
                            g->in_phase == 2 ? "handoff" : "importing");
    if (rc == 0)
        rc = fmt_slots(g->in_slots, &b);
    rc = rc != 0 ? cm_err_set(err, CM_ENOMEM, "out of memory")
                 : eng_meta_put(g->e, KEY_IN, strlen(KEY_IN), b.p, b.len, err);
    cm_buf_deinit(&b);
    return rc;
}

/* Splits a NUL-terminated record into at most max words. */
static int words(char *s, char **w, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, " ", &save); t != NULL && n < max;
         t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    return n;
}

static int load_record(struct eng *e, const char *key, char **text, struct cm_err *err)
{
    struct cm_buf b;
    cm_buf_init(&b);
    int rc = eng_meta_get(e, key, strlen(key), &b, err);
    if (rc == 0 && (rc = cm_buf_appendc(&b, '\0')) == 0)
        *text = b.p;
    else
        cm_buf_deinit(&b);
    return rc;
}

/* The current requirepass (it may change with CONFIG SET) into buf. */
static const char *pass(struct clu_mig *g, char buf[CLU_PASS_MAX])
{
    buf[0] = '\0';
    if (g->password != NULL)
        g->password(g->password_ud, buf, CLU_PASS_MAX);
    return buf;
}

/* ---- The map of the next epoch ----------------------------------------------------------------
 */

/* The installed map with the slots given to node `to`, epoch base + 1, in *out (owned).
 * CM_ENOTFOUND when the installed map is not of epoch base any more. */
static int next_map(struct clu_mig *g, unsigned long long base, const uint8_t *slots,
                    const char *to, struct clu_map **out, struct cm_err *err)
{
    const struct clu_map *cur = clu_map_get(g->cl);
    if (cur->epoch != base)
        return CM_ENOTFOUND;
    struct cm_buf b;
    cm_buf_init(&b);
    int rc = clu_map_format(cur, &b);
    if (rc == 0)
        rc = clu_map_parse(b.p ? b.p : "", b.len, base + 1, out, err);
    cm_buf_deinit(&b);
    if (rc != 0)
        return rc;
    int idx = clu_map_find(*out, to);
    if (idx < 0) {
        clu_map_free(*out);
        *out = NULL;
        return cm_err_set(err, CM_EINVAL, "node %s is not in the map", to);
    }
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (has(slots, s))
            (*out)->owner[s] = (int16_t)idx;
    return 0;
}

/* Proposes the map of epoch base + 1 giving slots to `to` (if this node is still at
 * epoch base) to the coordinator, which pushes it to the new owner first, so that no
 * node sends clients to a node that would send them back, then to every other node.
 * When this node is past epoch base, its installed map is pushed again (pushes are
 * idempotent). */
static void switch_map(struct clu_mig *g, unsigned long long base, const uint8_t *slots,
                       const char *to)
{
    struct clu_map *m = NULL;
    struct cm_err err = {0};
    char pw[CLU_PASS_MAX];
    int rc = next_map(g, base, slots, to, &m, &err);
    if (rc == 0 && (rc = clu_map_propose(g->cl, m, to, pass(g, pw), &err)) != 0)
        cm_log(CM_LOG_WARNING, "Map of epoch %llu not installed: %s", base + 1, err.msg);
    else if (rc == CM_ENOTFOUND)
        clu_map_push_all(g->cl, clu_map_get(g->cl), to, pass(g, pw));
    else if (rc != 0)
        cm_log(CM_LOG_WARNING, "Map of epoch %llu not made: %s", base + 1, err.msg);
}

/* True if every slot of b is owned by node id in the installed map. */
static bool owns_all(struct clu_mig *g, const struct clu_map *m, const uint8_t *b, const char *id)
{
    int idx = clu_map_find(m, id);
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (has(b, s) && (idx < 0 || m->owner[s] != idx))
            return false;
    return true;
}

/* ---- Routing
 * ------------------------------------------------------------------------------------- */

int clu_route_mig(const struct cluster *cl, unsigned slot, bool asking, char *msg, size_t cap)
{
    int r = clu_route(cl, slot, msg, cap);
    struct clu_mig *g = clu__mig(cl);
    if (g == NULL || slot >= CM_SLOTS)
        return r;
    unsigned char st = atomic_load(&g->ss[slot]);
    if (r == CLU_LOCAL && st == SS_FENCED) {
        snprintf(msg, cap, "TRYAGAIN Slot %u is being migrated, try again", slot);
        return CLU_WAIT;
    }
    if (r == CLU_LOCAL && st == SS_ASK) {
        const char *to = atomic_load(&g->ask_to);
        if (to == NULL) {
            snprintf(msg, cap, "TRYAGAIN Slot %u is being migrated, try again", slot);
            return CLU_WAIT;
        }
        snprintf(msg, cap, "ASK %u %s", slot, to);
        return CLU_ASK;
    }
    if (r == CLU_MOVED && st == SS_IN_ASK && asking)
        return CLU_LOCAL;
    return r;
}

bool clu_mig_wait(struct cluster *cl, unsigned slot, int timeout_ms)
{
    struct clu_mig *g = clu__mig(cl);
    if (g == NULL || slot >= CM_SLOTS)
        return true;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->mu);
    while (atomic_load(&g->ss[slot]) == SS_FENCED)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) != 0)
            break;
    bool ok = atomic_load(&g->ss[slot]) != SS_FENCED;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

/* ---- The source: streaming
 * ------------------------------------------------------------------------ */

static void put_u32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (char)(v & 0xff);
}

static uint32_t get_u32(const char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

static void put_u64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (char)(v & 0xff);
}

static uint64_t get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

/* Batch entries (little-endian): 'P' klen:u32 key type:u8 expire_ms:i64 vlen:u32 value,
 * or 'D' klen:u32 key. */
static int enc_put(struct cm_buf *b, const char *k, size_t kl, const struct eng_item *it)
{
    char h[5], t[13];
    h[0] = 'P';
    put_u32(h + 1, (uint32_t)kl);
    t[0] = (char)it->type;
    put_u64(t + 1, (uint64_t)it->expire_ms);
    put_u32(t + 9, (uint32_t)it->len);
    if (cm_buf_append(b, h, 5) != 0 || cm_buf_append(b, k, kl) != 0 ||
        cm_buf_append(b, t, 13) != 0 || cm_buf_append(b, it->data, it->len) != 0)
        return CM_ENOMEM;
    return 0;
}

static int enc_del(struct cm_buf *b, const char *k, size_t kl)
{
    char h[5];
    h[0] = 'D';
    put_u32(h + 1, (uint32_t)kl);
    return cm_buf_append(b, h, 5) == 0 ? cm_buf_append(b, k, kl) : CM_ENOMEM;
}

struct stream {
    struct clu_mig *g;
    struct clu_link *link;
    struct cm_buf raw;
    long long n; /* entries in raw */
    struct cm_buf z;
    int inflight; /* IMPORT LOADs sent whose reply has not been read */
};

/* Reads the replies of in-flight batches until at most `keep` remain. */
static int drain(struct stream *st, int keep, struct cm_err *err)
{
    while (st->inflight > keep) {
        struct resp_value *r = NULL;
        int rc = clu_link_recv(st->link, &r, err);
        if (rc == 0 && r->type == RESP_T_ERROR)
            rc = cm_err_set(err, CM_EINVAL, "%s:%d: %s", st->g->host, st->g->port, r->str);
        resp_value_free(r);
        if (rc != 0)
            return rc;
        st->inflight--;
    }
    return 0;
}

/* A command to the target over the stream's link, after the replies of the batches in
 * flight; an error reply becomes CM_EINVAL with its text in err. */
static int target_cmd(struct stream *st, int argc, const char *const *argv, const size_t *al,
                      struct resp_value **reply, struct cm_err *err)
{
    int rc = drain(st, 0, err);
    if (rc != 0)
        return rc;
    rc = clu_link_cmd(st->link, argc, argv, al, reply, err);
    if (rc == 0 && (*reply)->type == RESP_T_ERROR) {
        rc = cm_err_set(err, CM_EINVAL, "%s:%d: %s", st->g->host, st->g->port, (*reply)->str);
        resp_value_free(*reply);
        *reply = NULL;
    }
    return rc;
}

/* Compresses and sends the pending entries, then sleeps if the rate limit asks. */
static int send_batch(struct stream *st, struct cm_err *err)
{
    struct clu_mig *g = st->g;
    if (st->n == 0)
        return 0;
    size_t bound = ZSTD_compressBound(st->raw.len);
    if (cm_buf_reserve(&st->z, bound) != 0)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    size_t zn = ZSTD_compress(st->z.p, bound, st->raw.p, st->raw.len, 1);
    if (ZSTD_isError(zn))
        return cm_err_set(err, CM_ERR, "zstd: %s", ZSTD_getErrorName(zn));
    char rawlen[32];
    snprintf(rawlen, sizeof(rawlen), "%zu", st->raw.len);
    const char *av[] = {"CLUSTER", "IMPORT", "LOAD", g->id, rawlen, st->z.p};
    const size_t al[] = {7, 6, 4, strlen(g->id), strlen(rawlen), zn};
    /* Up to LOAD_WINDOW batches in flight (the target may apply one while this thread
     * reads and compresses the next). */
    int rc = drain(st, LOAD_WINDOW - 1, err);
    if (rc == 0 && (rc = clu_link_send(st->link, 6, av, al, err)) == 0)
        st->inflight++;
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&g->mu);
    g->keys += st->n;
    g->bytes_raw += (long long)st->raw.len;
    g->bytes_wire += (long long)zn;
    long long raw = g->bytes_raw;
    int64_t start = g->t_start;
    double rate = g->rate_mb;
    pthread_mutex_unlock(&g->mu);
    st->raw.len = 0;
    st->n = 0;
    cm_buf_shrink(&st->raw, 4 * BATCH_BYTES);
    if (rate > 0) {
        /* In steps of 50 ms, so CANCEL and shutdown are seen (a tiny RATE made one
         * sleep of minutes). */
        int64_t due = start + (int64_t)((double)raw / (rate * 1e6) * 1000.0);
        pthread_mutex_lock(&g->mu);
        g->rate_due = due; /* a move cancelled in this sleep still reports its RATE */
        pthread_mutex_unlock(&g->mu);
        for (int64_t now = cm_now_ms(); due > now && !atomic_load(&g->cancel); now = cm_now_ms())
            usleep((useconds_t)((due - now < 50 ? due - now : 50) * 1000));
    }
    return 0;
}

static bool cancelled(struct clu_mig *g, struct cm_err *err)
{
    if (!atomic_load(&g->cancel))
        return false;
    cm_err_set(err, CM_EINVAL, "%s",
               atomic_load(&g->closing) ? "the server is shutting down" : "cancelled");
    return true;
}

/* Streams a snapshot of every slot of the migration. */
static int stream_snapshot(struct stream *st, struct cm_err *err)
{
    struct clu_mig *g = st->g;
    struct eng_txn *t = eng_txn_begin(g->e);
    if (t == NULL)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    int rc = 0;
    int64_t now = cm_now_ms();
    for (unsigned s = 0; s < CM_SLOTS && rc == 0; s++) {
        if (!has(g->slots, s))
            continue;
        struct eng_iter *it = eng_iter_new(g->e, t, 0, s, s, NULL, 0);
        if (it == NULL) {
            rc = cm_err_set(err, CM_ENOMEM, "out of memory");
            break;
        }
        const char *k;
        size_t kl;
        struct eng_item item;
        int r;
        while ((r = eng_iter_next(it, now, &k, &kl, &item, err)) == 1) {
            if (enc_put(&st->raw, k, kl, &item) != 0) {
                rc = cm_err_set(err, CM_ENOMEM, "out of memory");
                break;
            }
            st->n++;
            pthread_mutex_lock(&g->mu);
            g->snap_keys++;
            pthread_mutex_unlock(&g->mu);
            if (st->raw.len >= BATCH_BYTES &&
                ((rc = send_batch(st, err)) != 0 || (cancelled(g, err) && (rc = CM_EINVAL))))
                break;
        }
        if (r < 0 && rc == 0)
            rc = r;
        eng_iter_free(it);
    }
    eng_txn_free(t);
    return rc == 0 ? send_batch(st, err) : rc;
}

struct kref {
    const char *p;
    uint32_t n;
};

static int kref_cmp(const void *a, const void *b)
{
    const struct kref *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

/* Sends the current value (or deletion) of every key written since the last round;
 * *nkeys is the number of distinct keys. */
static int catchup(struct stream *st, size_t *nkeys, struct cm_err *err)
{
    struct clu_mig *g = st->g;
    struct cm_buf keys;
    size_t n = 0;
    cm_buf_init(&keys);
    int rc = eng_watch_take(g->e, &keys, &n);
    if (rc != 0) {
        cm_buf_deinit(&keys);
        return cm_err_set(err, rc,
                          "the writes to the slots could not be tracked (FLUSHALL or "
                          "out of memory)");
    }
    struct kref *v = n > 0 ? cm_malloc(n * sizeof(*v)) : NULL;
    if (n > 0 && v == NULL) {
        cm_buf_deinit(&keys);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    size_t m = 0;
    for (size_t off = 0; off + 4 <= keys.len && m < n; m++) {
        memcpy(&v[m].n, keys.p + off, 4);
        v[m].p = keys.p + off + 4;
        off += 4 + v[m].n;
    }
    if (m > 1)
        qsort(v, m, sizeof(*v), kref_cmp);
    size_t uniq = 0;
    int64_t now = cm_now_ms();
    for (size_t i = 0; i < m && rc == 0; i++) {
        if (i > 0 && kref_cmp(&v[i], &v[i - 1]) == 0)
            continue;
        uniq++;
        struct eng_item it;
        int r = eng_get(g->e, v[i].p, v[i].n, now, &it, err);
        if (r == 0) {
            rc = enc_put(&st->raw, v[i].p, v[i].n, &it);
            eng_item_release(&it);
        } else if (r == CM_ENOTFOUND) {
            rc = enc_del(&st->raw, v[i].p, v[i].n);
        } else {
            rc = r;
        }
        if (rc == CM_ENOMEM)
            cm_err_set(err, rc, "out of memory");
        st->n++;
        if (rc == 0 && st->raw.len >= BATCH_BYTES)
            rc = send_batch(st, err);
    }
    if (rc == 0)
        rc = send_batch(st, err);
    cm_free(v);
    cm_buf_deinit(&keys);
    pthread_mutex_lock(&g->mu);
    g->catchup_keys += (long long)uniq;
    pthread_mutex_unlock(&g->mu);
    *nkeys = uniq;
    return rc;
}

static void set_phase(struct clu_mig *g, int phase)
{
    pthread_mutex_lock(&g->mu);
    g->phase = phase;
    pthread_mutex_unlock(&g->mu);
}

/* Begin, snapshot, catch-up rounds, fence, last catch-up. 0 when the slots are fenced
 * and the target has every write. */
static int out_stream(struct stream *st, struct cm_err *err)
{
    struct clu_mig *g = st->g;
    char base[32];
    struct cm_buf ranges;
    cm_buf_init(&ranges);
    snprintf(base, sizeof(base), "%llu", g->base);
    if (fmt_slots(g->slots, &ranges) != 0 || cm_buf_appendc(&ranges, '\0') != 0) {
        cm_buf_deinit(&ranges);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    char pw[CLU_PASS_MAX];
    st->link = clu_link_open(g->host, g->port, pass(g, pw), LINK_TIMEOUT_MS, err);
    if (st->link == NULL) {
        cm_buf_deinit(&ranges);
        return CM_EIO;
    }
    const char *av[] = {"CLUSTER", "IMPORT", "BEGIN", g->id, clu_myid(g->cl), base, ranges.p};
    const size_t al[] = {7, 6, 5, strlen(g->id), CLU_ID_LEN, strlen(base), ranges.len - 1};
    struct resp_value *r = NULL;
    int rc = target_cmd(st, 7, av, al, &r, err);
    resp_value_free(r);
    cm_buf_deinit(&ranges);
    if (rc != 0)
        return rc;
    /* Writes from now on are recorded; the snapshot taken after this has the rest. */
    if (eng_watch_start(g->e, g->slots) != 0)
        return cm_err_set(err, CM_EINVAL, "another slot watch is on");
    if ((rc = stream_snapshot(st, err)) != 0)
        return rc;
    set_phase(g, OUT_CATCHUP);
    for (;;) {
        size_t n = 0;
        if (cancelled(g, err))
            return CM_EINVAL;
        if ((rc = catchup(st, &n, err)) != 0)
            return rc;
        pthread_mutex_lock(&g->mu);
        long long rounds = ++g->rounds;
        pthread_mutex_unlock(&g->mu);
        if (n <= CATCHUP_SMALL || rounds >= CATCHUP_MAX_ROUNDS)
            break;
    }
    if (cancelled(g, err))
        return CM_EINVAL;
    /* The fence: new commands on these slots wait (routing); in-flight pipelines get a
     * moment to land, then the engine refuses any write to the slots. */
    pthread_mutex_lock(&g->mu);
    g->phase = OUT_FENCED;
    g->t_fence = cm_now_ms();
    pthread_mutex_unlock(&g->mu);
    set_ss(g, g->slots, SS_FENCED);
    usleep(2000);
    eng_watch_fence(g->e, true);
    size_t n = 0;
    return catchup(st, &n, err);
}

/* Asks the target where the import stands: 2 handoff (committed), 1 importing, 0 none,
 * or CM_EIO when it cannot be reached. */
static int query_target(struct clu_mig *g)
{
    const char *av[] = {"CLUSTER", "IMPORT", "QUERY", g->id};
    const size_t al[] = {7, 6, 5, strlen(g->id)};
    struct resp_value *r = NULL;
    struct cm_err err = {0};
    char pw[CLU_PASS_MAX];
    int rc = clu_link_call(g->host, g->port, pass(g, pw), LINK_TIMEOUT_MS, 4, av, al, &r, &err);
    if (rc == 0)
        rc = r->type != RESP_T_STATUS && r->type != RESP_T_STRING ? CM_EIO
             : strcmp(r->str, "handoff") == 0                     ? 2
             : strcmp(r->str, "importing") == 0                   ? 1
                                                                  : 0;
    resp_value_free(r);
    return rc;
}

/* Until the target answers (or shutdown): true if it committed the import. *known is
 * false when the server shuts down first. */
static bool resolve(struct clu_mig *g, bool *known)
{
    for (;;) {
        if (clu_map_get(g->cl)->epoch > g->base &&
            owns_all(g, clu_map_get(g->cl), g->slots, g->target_id)) {
            *known = true; /* the target finished it and pushed the map here */
            return true;
        }
        int q = query_target(g);
        if (q >= 0) {
            *known = true;
            return q == 2;
        }
        if (atomic_load(&g->closing)) {
            *known = false;
            return false;
        }
        usleep(300000);
    }
}

/* The commit: the target makes the data durable and takes the slots. 1 committed, 0
 * refused, -1 unknown (shutting down before the target could be asked). */
static int out_handoff(struct stream *st, struct cm_err *err)
{
    struct clu_mig *g = st->g;
    const char *av[] = {"CLUSTER", "IMPORT", "HANDOFF", g->id};
    const size_t al[] = {7, 6, 7, strlen(g->id)};
    struct resp_value *r = NULL;
    int rc = target_cmd(st, 4, av, al, &r, err);
    resp_value_free(r);
    if (rc == 0)
        return 1;
    if (rc == CM_EINVAL && strstr(err->msg, ": TRYAGAIN ") == NULL)
        return 0; /* an error reply: the target did not commit */
    /* Unanswered, or TRYAGAIN: the target cannot tell yet (its record is not durable). */
    cm_log(CM_LOG_WARNING, "Migration %s: handoff to %s:%d unanswered (%s); asking the target",
           g->id, g->host, g->port, err->msg);
    bool known;
    bool committed = resolve(g, &known);
    if (known && !committed) /* cm_err_set formats aside: err->msg may be an argument */
        cm_err_set(err, CM_EINVAL, "the target did not commit (asked after: %s)", err->msg);
    return !known ? -1 : committed ? 1 : 0;
}

static void send_abort(struct clu_mig *g)
{
    const char *av[] = {"CLUSTER", "IMPORT", "ABORT", g->id};
    const size_t al[] = {7, 6, 5, strlen(g->id)};
    struct resp_value *r = NULL;
    struct cm_err err = {0};
    char pw[CLU_PASS_MAX];
    if (clu_link_call(g->host, g->port, pass(g, pw), LINK_TIMEOUT_MS, 4, av, al, &r, &err) != 0 ||
        r->type == RESP_T_ERROR)
        cm_log(CM_LOG_WARNING,
               "Migration %s: abort not delivered to %s:%d (%s); the target "
               "drops the staged keys when it restarts or imports again",
               g->id, g->host, g->port, r != NULL ? r->str : err.msg);
    resp_value_free(r);
}

/* Rolls back: the source keeps the slots and serves them again. */
static void out_rollback(struct clu_mig *g, const char *why)
{
    send_abort(g);
    eng_watch_stop(g->e);
    eng_meta_del(g->e, KEY_OUT, strlen(KEY_OUT), NULL);
    set_ss(g, g->slots, SS_NONE);
    pthread_mutex_lock(&g->mu);
    g->phase = atomic_load(&g->cancel) && !atomic_load(&g->closing) ? OUT_CANCELLED : OUT_FAILED;
    snprintf(g->error, sizeof(g->error), "%s", why);
    g->t_end = cm_now_ms() > g->rate_due ? cm_now_ms() : g->rate_due;
    pthread_mutex_unlock(&g->mu);
    cm_log(CM_LOG_WARNING, "Migration %s of %d slot(s) to %s:%d rolled back: %s", g->id, g->nslots,
           g->host, g->port, why);
}

/* After the commit: ASK until this node's map gives the slots to the target, push the
 * map everywhere, drop the old copy. */
static void out_complete(struct clu_mig *g)
{
    struct cm_err err = {0};
    if (save_out(g, "handoff", &err) != 0)
        cm_log(CM_LOG_WARNING, "Migration %s: handoff not recorded: %s", g->id, err.msg);
    set_ss(g, g->slots, SS_ASK);
    pthread_mutex_lock(&g->mu);
    g->phase = OUT_HANDOFF;
    if (g->t_fence > 0)
        g->fence_ms = cm_now_ms() - g->t_fence;
    pthread_mutex_unlock(&g->mu);
    /* Tests widen the ASK window to observe it and to kill a node inside it. */
    const char *pause = getenv("EDDY_TEST_MIGRATE_HANDOFF_PAUSE_MS");
    if (pause != NULL && atoi(pause) > 0)
        usleep((useconds_t)atoi(pause) * 1000);
    switch_map(g, g->base, g->slots, g->target_id);
    const struct clu_map *m = clu_map_get(g->cl);
    bool moved = owns_all(g, m, g->slots, g->target_id);
    if (moved) {
        set_ss(g, g->slots, SS_NONE); /* routing now says MOVED */
        /* Still fenced here; from now on refused for good: a function call that began
         * before the move must not commit into the dropped copy. */
        eng_slots_refuse(g->e, g->slots, true);
        eng_watch_stop(g->e);
        if (drop_slots(g->e, g->slots, &err) != 0)
            cm_log(CM_LOG_WARNING, "Migration %s: old copy not deleted: %s", g->id, err.msg);
        else
            eng_meta_del(g->e, KEY_OUT, strlen(KEY_OUT), NULL);
    } else {
        cm_log(CM_LOG_WARNING,
               "Migration %s: the installed map (epoch %llu) does not give the "
               "slots to %s; they stay answered with ASK",
               g->id, m->epoch, g->target_id);
    }
    pthread_mutex_lock(&g->mu);
    g->phase = moved ? OUT_DONE : OUT_HANDOFF;
    g->t_end = cm_now_ms();
    double secs = (double)(g->t_end - g->t_start) / 1000.0;
    if (secs <= 0)
        secs = 0.001;
    cm_log(CM_LOG_NOTICE,
           "Migration %s of %d slot(s) to %s:%d done: %lld keys, %.1f MB raw (%.1f MB "
           "compressed) in %.3f s: %.1f MB/s, %.0f keys/s; %lld catch-up round(s), %lld "
           "catch-up keys, fence %lld ms; map epoch %llu",
           g->id, g->nslots, g->host, g->port, g->keys, (double)g->bytes_raw / 1e6,
           (double)g->bytes_wire / 1e6, secs, (double)g->bytes_raw / 1e6 / secs,
           (double)g->keys / secs, g->rounds, g->catchup_keys, (long long)g->fence_ms, m->epoch);
    pthread_mutex_unlock(&g->mu);
}

static void out_finish_thread(struct clu_mig *g)
{
    pthread_mutex_lock(&g->mu);
    g->out_busy = false;
    g->asking = false;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void *out_main(void *arg)
{
    struct clu_mig *g = arg;
    struct stream st = {.g = g};
    struct cm_err err = {0};
    cm_buf_init(&st.raw);
    cm_buf_init(&st.z);
    int rc = out_stream(&st, &err);
    int committed = 0;
    if (rc == 0) {
        pthread_mutex_lock(&g->mu);
        if (cancelled(g, &err))
            rc = CM_EINVAL; /* the last moment a cancel can win */
        else
            g->asking = true;
        pthread_mutex_unlock(&g->mu);
        /* Tests widen the window before HANDOFF to fail the target's syncs in it. */
        const char *pause = getenv("EDDY_TEST_MIGRATE_ASK_PAUSE_MS");
        if (rc == 0 && pause != NULL && atoi(pause) > 0)
            usleep((useconds_t)atoi(pause) * 1000);
    }
    if (rc == 0)
        committed = out_handoff(&st, &err);
    clu_link_close(st.link);
    cm_buf_deinit(&st.raw);
    cm_buf_deinit(&st.z);
    if (committed == 1)
        out_complete(g);
    else if (committed == 0)
        out_rollback(g, err.msg[0] ? err.msg : "the target refused the handoff");
    /* committed == -1: shutting down with the outcome unknown; the record stays and the
     * next start resolves it. */
    out_finish_thread(g);
    return NULL;
}

/* After a restart with an outgoing record: ask the target, then finish or roll back. */
static void *out_recover_main(void *arg)
{
    struct clu_mig *g = arg;
    bool known = true, committed = g->phase == OUT_HANDOFF;
    if (!committed)
        committed = resolve(g, &known);
    if (known && committed)
        out_complete(g);
    else if (known)
        out_rollback(g, "interrupted by a restart before the handoff");
    out_finish_thread(g);
    return NULL;
}

/* ---- The source: commands -----------------------------------------------------------------------
 */

/* Index of the node named by target (an id or host:port) in m, or -1. */
static int find_target(const struct clu_map *m, const char *target)
{
    if (clu_id_valid(target, strlen(target)))
        return clu_map_find(m, target);
    const char *colon = strrchr(target, ':');
    if (colon == NULL)
        return -1;
    int port = atoi(colon + 1);
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].port == port && strlen(m->nodes[i].host) == (size_t)(colon - target) &&
            memcmp(m->nodes[i].host, target, (size_t)(colon - target)) == 0)
            return i;
    return -1;
}

int clu_mig_start(struct cluster *cl, const struct clu_mig_req *rq, char id[64], struct cm_err *err)
{
    struct clu_mig *g = clu__mig(cl);
    if (g == NULL)
        return cm_err_set(err, CM_EINVAL, "ERR migrations are not available");
    const struct clu_map *m = clu_map_get(cl);
    int self = clu_map_self(cl, m), t = find_target(m, rq->target);
    if (t < 0)
        return cm_err_set(err, CM_EINVAL, "ERR unknown target node '%.64s'", rq->target);
    if (t == self)
        return cm_err_set(err, CM_EINVAL, "ERR the target is this node");
    int n = 0;
    for (unsigned s = 0; s < CM_SLOTS; s++) {
        if (!has(rq->slots, s))
            continue;
        if (self < 0 || m->owner[s] != self)
            return cm_err_set(err, CM_EINVAL, "ERR slot %u is not owned by this node", s);
        n++;
    }
    if (n == 0)
        return cm_err_set(err, CM_EINVAL, "ERR no slot given");
    pthread_mutex_lock(&g->mu);
    if (g->out_busy) {
        pthread_mutex_unlock(&g->mu);
        return cm_err_set(err, CM_EINVAL, "ERR migration %s is running; wait for it or cancel it",
                          g->id);
    }
    if (g->joinable) {
        pthread_join(g->thread, NULL); /* it has finished: out_busy is false */
        g->joinable = false;
    }
    snprintf(g->id, sizeof(g->id), "%.8s-%llx", clu_myid(cl), (unsigned long long)cm_now_us());
    snprintf(g->target_id, sizeof(g->target_id), "%s", m->nodes[t].id);
    snprintf(g->host, sizeof(g->host), "%s", m->nodes[t].host);
    g->port = m->nodes[t].port;
    g->base = m->epoch;
    memcpy(g->slots, rq->slots, SLOT_BYTES);
    g->nslots = n;
    g->rate_mb = rq->rate_mb;
    g->error[0] = '\0';
    g->keys = g->bytes_raw = g->bytes_wire = g->snap_keys = g->rounds = g->catchup_keys = 0;
    g->t_start = cm_now_ms();
    g->t_end = g->t_fence = g->fence_ms = g->rate_due = 0;
    g->phase = OUT_STREAM;
    atomic_store(&g->cancel, false);
    int rc = save_out(g, "stream", err);
    struct cm_err derr = {0};
    int drc = rc == CM_ESYNC ? eng_meta_del(g->e, KEY_OUT, strlen(KEY_OUT), &derr) : 0;
    if (drc != 0 && drc != CM_ESYNC)
        /* in the store: a restart fences the slots until the target says "none" */
        cm_log(CM_LOG_WARNING, "Migration %s: its refused record stays (%s); a restart will "
                               "ask %s:%d about it", g->id, derr.msg, g->host, g->port);
    if (rc == 0) {
        g->out_busy = true;
        if (pthread_create(&g->thread, NULL, out_main, g) != 0) {
            g->out_busy = false;
            eng_meta_del(g->e, KEY_OUT, strlen(KEY_OUT), NULL);
            rc = cm_err_set(err, CM_ERR, "ERR cannot start the migration thread");
        } else {
            g->joinable = true;
        }
    } else {
        rc = cm_err_set(err, rc, "ERR cannot record the migration: %s", err->msg);
    }
    if (rc != 0)
        g->phase = OUT_IDLE;
    else
        snprintf(id, 64, "%s", g->id);
    pthread_mutex_unlock(&g->mu);
    if (rc == 0) {
        for (unsigned s = 0; s < CM_SLOTS; s++)
            if (has(rq->slots, s))
                atomic_store(&g->ss[s], SS_OUT);
        cm_log(CM_LOG_NOTICE, "Migration %s: moving %d slot(s) to %s:%d (map epoch %llu)%s", id, n,
               g->host, g->port, g->base, rq->rate_mb > 0 ? ", rate-limited" : "");
    }
    return rc;
}

int clu_mig_cancel(struct cluster *cl, struct cm_err *err)
{
    struct clu_mig *g = clu__mig(cl);
    int rc = 0;
    if (g == NULL)
        return cm_err_set(err, CM_EINVAL, "ERR no migration is running");
    pthread_mutex_lock(&g->mu);
    if (!g->out_busy)
        rc = cm_err_set(err, CM_EINVAL, "ERR no migration is running");
    else if (g->phase == OUT_HANDOFF || g->phase == OUT_RECOVER)
        rc = cm_err_set(err, CM_EINVAL, "ERR migration %s has committed; it cannot be cancelled",
                        g->id);
    else if (g->asking)
        rc = cm_err_set(err, CM_EINVAL,
                        "ERR migration %s has asked the target to commit; it completes or rolls "
                        "back as the target answers",
                        g->id);
    else
        atomic_store(&g->cancel, true);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

int clu_mig_status(struct cluster *cl, struct cm_buf *out)
{
    struct clu_mig *g = clu__mig(cl);
    if (g == NULL)
        return cm_buf_appendf(out, "role:none\r\n");
    pthread_mutex_lock(&g->mu);
    int64_t end = g->t_end > 0 ? g->t_end : cm_now_ms();
    double secs = g->t_start > 0 ? (double)(end - g->t_start) / 1000.0 : 0;
    int rc = cm_buf_appendf(out, "state:%s\r\n", phase_names[g->phase]);
    if (rc == 0 && g->phase != OUT_IDLE) {
        rc = cm_buf_appendf(out, "id:%s\r\ntarget:%s %s:%d\r\nslots:", g->id, g->target_id, g->host,
                            g->port);
        if (rc == 0)
            rc = fmt_slots(g->slots, out);
        if (rc == 0)
            rc = cm_buf_appendf(
                out,
                "\r\nslots_count:%d\r\nkeys_sent:%lld\r\nsnapshot_keys:%lld\r\n"
                "catchup_rounds:%lld\r\ncatchup_keys:%lld\r\nbytes_raw:%lld\r\nbytes_sent:%lld\r\n"
                "elapsed_ms:%lld\r\nmb_per_s:%.2f\r\nkeys_per_s:%.0f\r\nfence_ms:%lld\r\n"
                "rate_limit_mb_per_s:%.2f\r\nerror:%s\r\n",
                g->nslots, g->keys, g->snap_keys, g->rounds, g->catchup_keys, g->bytes_raw,
                g->bytes_wire, (long long)(end - g->t_start),
                secs > 0 ? (double)g->bytes_raw / 1e6 / secs : 0.0,
                secs > 0 ? (double)g->keys / secs : 0.0, (long long)g->fence_ms, g->rate_mb,
                g->error);
    }
    if (rc == 0)
        rc = cm_buf_appendf(out, "import_state:%s\r\n",
                            !g->in_on          ? "none"
                            : g->in_unsure     ? "unsure"
                            : g->in_phase == 2 ? "handoff"
                                               : "importing");
    if (rc == 0 && g->in_on) {
        rc = cm_buf_appendf(out,
                            "import_id:%s\r\nimport_source:%s\r\nimport_keys:%lld\r\n"
                            "import_slots:",
                            g->in_id, g->in_source, g->in_keys);
        if (rc == 0)
            rc = fmt_slots(g->in_slots, out);
        if (rc == 0)
            rc = cm_buf_appendf(out, "\r\n");
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* ---- The target
 * ---------------------------------------------------------------------------------- */

static bool arg_eq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

/* Drops an unfinished import (not committed). Caller holds mu. */
static void in_drop(struct clu_mig *g)
{
    struct cm_err err = {0};
    if (drop_slots(g->e, g->in_slots, &err) != 0)
        cm_log(CM_LOG_WARNING, "Import %s: staged keys not dropped: %s", g->in_id, err.msg);
    eng_meta_del(g->e, KEY_IN, strlen(KEY_IN), NULL);
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (has(g->in_slots, s))
            atomic_store(&g->ss[s], SS_NONE);
    g->in_on = false;
    g->in_unsure = false;
    pthread_cond_broadcast(&g->cv);
}

/* The commit record was written but its WAL sync failed (CM_ESYNC): the store holds
 * "handoff", perhaps not durably. Answered as not committed, the source would roll
 * back while a restart (or the memtable's flush once the disk works) commits the
 * import here too: both nodes would own the slots. So the record is rewritten as
 * "importing"; once that is durable the answer is a refusal. Until then neither
 * outcome can be promised: the import is unsure. The source keeps its fence and asks
 * with QUERY, which settles it as not committed once an "importing" record is durable
 * (nothing was promised to the source, so that is always allowed), or a restart of this
 * node decides from what the store kept. Caller holds mu, in_phase is 1. 0: refused for
 * sure. */
static int take_back_handoff(struct clu_mig *g)
{
    struct cm_err err = {0};
    int rc = save_in(g, &err);
    if (rc == 0)
        return 0;
    g->in_unsure = true;
    cm_log(CM_LOG_WARNING, "Import %s: its handoff record is not durable and could not be "
                           "taken back (%s); the outcome waits for a durable write",
           g->in_id, err.msg);
    return rc;
}

/* An unsure import (take_back_handoff): writes "importing" again; once that is durable
 * the import is not committed (the source, told TRYAGAIN so far, rolls back). While the
 * store refuses writes (RocksDB after a real I/O error), only a restart settles it.
 * Caller holds mu. 0 when settled (or never unsure). */
static int settle(struct clu_mig *g, struct cm_err *err)
{
    if (!g->in_unsure)
        return 0;
    int rc = save_in(g, err);
    if (rc != 0)
        return rc;
    g->in_unsure = false;
    cm_log(CM_LOG_NOTICE, "Import %s: settled as not committed", g->in_id);
    return 0;
}

static void imp_begin(struct clu_mig *g, int argc, const char *const *argv, const size_t *al,
                      struct cm_buf *out)
{
    /* BEGIN <id> <source-id> <base-epoch> <slots...> */
    uint8_t slots[SLOT_BYTES] = {0};
    char src[CLU_ID_LEN + 1];
    long long base;
    if (argc < 5 || al[1] >= 64 || !clu_id_valid(argv[2], al[2]) ||
        cm_str_to_ll(argv[3], al[3], &base) != 0) {
        resp_add_error(out, "ERR usage: CLUSTER IMPORT BEGIN <id> <source-id> <epoch> <slots>");
        return;
    }
    for (int i = 4; i < argc; i++) {
        /* one argument may hold several space-separated ranges */
        const char *p = argv[i], *end = argv[i] + al[i];
        while (p < end) {
            const char *sp = memchr(p, ' ', (size_t)(end - p));
            size_t n = sp ? (size_t)(sp - p) : (size_t)(end - p);
            if (n > 0 && clu_slots_parse(p, n, slots) != 0) {
                resp_add_error(out, "ERR bad slot range");
                return;
            }
            p += n + 1;
        }
    }
    memcpy(src, argv[2], CLU_ID_LEN);
    src[CLU_ID_LEN] = '\0';
    if (strcmp(src, clu_myid(g->cl)) == 0) {
        /* It would drop this node's own data of those slots at once (drop_slots). */
        resp_add_error(out, "ERR the source of an import cannot be this node");
        return;
    }
    const struct clu_map *m = clu_map_get(g->cl);
    if (m->epoch != (unsigned long long)base) {
        resp_add_errorf(out, "ERR this node's map has epoch %llu, the source's %lld", m->epoch,
                        base);
        return;
    }
    if (!owns_all(g, m, slots, src)) {
        resp_add_error(out, "ERR the source does not own every slot in this node's map");
        return;
    }
    pthread_mutex_lock(&g->mu);
    struct cm_err serr = {0};
    if (g->in_on && settle(g, &serr) != 0) {
        pthread_mutex_unlock(&g->mu);
        resp_add_errorf(out, "ERR import %s is not settled (its handoff is not durable yet: %s)",
                        g->in_id, serr.msg);
        return;
    }
    if (g->in_on && g->in_phase == 2) {
        pthread_mutex_unlock(&g->mu);
        resp_add_errorf(out, "ERR import %s has committed and is not finished", g->in_id);
        return;
    }
    if (g->in_on)
        in_drop(g); /* an abandoned earlier import */
    memcpy(g->in_id, argv[1], al[1]);
    g->in_id[al[1]] = '\0';
    memcpy(g->in_source, src, sizeof(src));
    g->in_base = (unsigned long long)base;
    memcpy(g->in_slots, slots, SLOT_BYTES);
    g->in_phase = 1;
    g->in_keys = g->in_batches = 0;
    struct eng_stats es;
    eng_get_stats(g->e, &es);
    g->in_flushes = es.flushes;
    struct cm_err err = {0};
    eng_slots_refuse(g->e, slots, false);   /* given away earlier, coming back now */
    int rc = drop_slots(g->e, slots, &err); /* leftovers of an older move */
    if (rc == 0)
        rc = save_in(g, &err);
    if (rc != 0) {
        pthread_mutex_unlock(&g->mu);
        resp_add_errorf(out, "ERR cannot start the import: %s", err.msg);
        return;
    }
    g->in_on = true;
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (has(slots, s))
            atomic_store(&g->ss[s], SS_IN);
    pthread_mutex_unlock(&g->mu);
    cm_log(CM_LOG_NOTICE, "Import %s: receiving %d slot(s) from %s", g->in_id, count_slots(slots),
           src);
    resp_add_simple(out, "OK");
}

int clu__mig_next(const char *p, size_t n, size_t *off, struct clu_mig_entry *e, struct cm_err *err)
{
    size_t o = *off;
    if (o >= n)
        return 0;
    if (n - o < 5)
        return cm_err_set(err, CM_EPROTO, "truncated entry");
    memset(e, 0, sizeof(*e));
    e->op = p[o];
    uint32_t kl = get_u32(p + o + 1);
    o += 5;
    if (kl > n - o)
        return cm_err_set(err, CM_EPROTO, "truncated key");
    e->key = p + o;
    e->klen = kl;
    o += kl;
    if (e->op == 'P' && n - o >= 13) {
        e->type = (uint8_t)p[o];
        e->expire_ms = (int64_t)get_u64(p + o + 1);
        uint32_t vl = get_u32(p + o + 9);
        o += 13;
        if (vl > n - o || e->type != ENG_T_STRING)
            return cm_err_set(err, CM_EPROTO, "bad value");
        e->val = p + o;
        e->vlen = vl;
        o += vl;
    } else if (e->op != 'D') {
        return cm_err_set(err, CM_EPROTO, "bad entry");
    }
    *off = o;
    return 1;
}

int clu__mig_unzip(const char *z, size_t zn, long long rawlen, char **raw)
{
    *raw = NULL;
    if (rawlen < 0 || rawlen > (long long)MAX_RAW)
        return CM_EINVAL;
    char *p = cm_malloc((size_t)rawlen + 1);
    if (p == NULL)
        return CM_ENOMEM;
    size_t got = ZSTD_decompress(p, (size_t)rawlen, z, zn);
    if (ZSTD_isError(got) || got != (size_t)rawlen) {
        cm_free(p);
        return CM_EPROTO;
    }
    p[rawlen] = '\0';
    *raw = p;
    return 0;
}

/* Applies one decompressed batch. Caller holds mu. Returns the entries applied or a
 * negative code with err set. */
static long long apply_batch(struct clu_mig *g, const char *p, size_t n, struct cm_err *err)
{
    struct eng_batch *b = eng_batch_new(g->e);
    long long count = 0;
    int rc = b == NULL ? cm_err_set(err, CM_ENOMEM, "out of memory") : 0;
    size_t off = 0;
    struct clu_mig_entry e;
    while (rc == 0 && (rc = clu__mig_next(p, n, &off, &e, err)) == 1) {
        rc = 0;
        if (!has(g->in_slots, cm_key_slot(e.key, e.klen)))
            rc = cm_err_set(err, CM_EPROTO, "a key of a slot that is not imported");
        else if (e.op == 'D')
            eng_batch_del(b, e.key, e.klen);
        else if (eng_batch_put(b, e.key, e.klen, (enum eng_type)e.type, e.expire_ms, e.val,
                               e.vlen) != 0)
            rc = cm_err_set(err, CM_ENOMEM, "out of memory");
        count++;
    }
    if (rc == 0) /* with the keys' stripes, as every writer: transactions see it */
        rc = eng_write_locked(g->e, b, err);
    eng_batch_free(b);
    return rc != 0 ? rc : count;
}

static void imp_load(struct clu_mig *g, int argc, const char *const *argv, const size_t *al,
                     struct cm_buf *out)
{
    long long rawlen;
    char *raw = NULL;
    int rc = argc != 4 || cm_str_to_ll(argv[2], al[2], &rawlen) != 0
                 ? CM_EINVAL
                 : clu__mig_unzip(argv[3], al[3], rawlen, &raw);
    if (rc != 0) {
        resp_add_error(out, rc == CM_EINVAL
                                ? "ERR usage: CLUSTER IMPORT LOAD <id> <raw-length> <zstd-batch>"
                            : rc == CM_ENOMEM ? "OOM out of memory"
                                              : "ERR corrupt batch (zstd)");
        return;
    }
    pthread_mutex_lock(&g->mu);
    if (!g->in_on || g->in_phase != 1 || !arg_eq(argv[1], al[1], g->in_id)) {
        pthread_mutex_unlock(&g->mu);
        cm_free(raw);
        resp_add_error(out, "ERR no such import in progress");
        return;
    }
    struct cm_err err = {0};
    long long n = apply_batch(g, raw, (size_t)rawlen, &err);
    if (n >= 0) {
        g->in_keys += n;
        g->in_batches++;
    }
    pthread_mutex_unlock(&g->mu);
    cm_free(raw);
    if (n < 0)
        resp_add_errorf(out, "ERR batch not applied: %s", err.msg);
    else
        resp_add_int(out, n);
}

static void imp_handoff(struct clu_mig *g, const char *id, size_t idlen, struct cm_buf *out)
{
    pthread_mutex_lock(&g->mu);
    if (!g->in_on || !arg_eq(id, idlen, g->in_id)) {
        pthread_mutex_unlock(&g->mu);
        resp_add_error(out, "ERR no such import in progress");
        return;
    }
    struct cm_err err = {0};
    int rc = 0;
    if (settle(g, &err) != 0) {
        pthread_mutex_unlock(&g->mu);
        resp_add_errorf(out, "TRYAGAIN the handoff is not durable yet: %s", err.msg);
        return;
    }
    struct eng_stats es;
    eng_get_stats(g->e, &es);
    if (g->in_phase == 1 && es.flushes != g->in_flushes) {
        pthread_mutex_unlock(&g->mu);
        resp_add_error(out, "ERR FLUSHALL ran on the target during the import: not committed");
        return;
    }
    if (g->in_phase == 1) {
        /* Every staged key on disk first, then the commit record. */
        g->in_phase = 2;
        if ((rc = eng_sync_all(g->e, &err)) != 0 || (rc = save_in(g, &err)) != 0)
            g->in_phase = 1;
        if (rc == CM_ESYNC && take_back_handoff(g) != 0) {
            pthread_mutex_unlock(&g->mu);
            resp_add_errorf(out, "TRYAGAIN the handoff is not durable yet: %s", err.msg);
            return;
        }
    }
    if (rc == 0)
        for (unsigned s = 0; s < CM_SLOTS; s++)
            if (has(g->in_slots, s))
                atomic_store(&g->ss[s], SS_IN_ASK);
    pthread_mutex_unlock(&g->mu);
    if (rc != 0) {
        resp_add_errorf(out, "ERR handoff not recorded: %s", err.msg);
        return;
    }
    cm_log(CM_LOG_NOTICE, "Import %s: committed (%lld keys received)", g->in_id, g->in_keys);
    /* If the source does not finish (it dies now), this node finishes by itself. */
    pthread_mutex_lock(&g->in_thread_mu);
    if (start_in_finish(g, HANDOFF_WAIT_MS) != 0)
        cm_log(CM_LOG_WARNING, "Import %s: no watchdog thread", g->in_id);
    pthread_mutex_unlock(&g->in_thread_mu);
    resp_add_simple(out, "OK");
}

static void imp_abort(struct clu_mig *g, const char *id, size_t idlen, struct cm_buf *out)
{
    pthread_mutex_lock(&g->mu);
    struct cm_err err = {0};
    if (g->in_on && arg_eq(id, idlen, g->in_id) && settle(g, &err) != 0) {
        pthread_mutex_unlock(&g->mu);
        resp_add_errorf(out, "TRYAGAIN the handoff is not durable yet: %s", err.msg);
        return;
    }
    if (g->in_on && arg_eq(id, idlen, g->in_id)) {
        if (g->in_phase == 2) {
            pthread_mutex_unlock(&g->mu);
            resp_add_error(out, "ERR the import has committed; it completes, it cannot be aborted");
            return;
        }
        cm_log(CM_LOG_NOTICE, "Import %s aborted by the source: staged keys dropped", g->in_id);
        in_drop(g);
    }
    pthread_mutex_unlock(&g->mu);
    resp_add_simple(out, "OK");
}

/* What a CLUSTER IMPORT LOAD adds to the store: its batch's announced raw length (0 for
 * BEGIN, or a length that does not parse or is over MAX_RAW: imp_load refuses it with
 * its usage error). */
static size_t load_size(int argc, const char *const *argv, const size_t *argvlen)
{
    long long n;
    if (argc != 4 || cm_str_to_ll(argv[2], argvlen[2], &n) != 0 || n < 0 || n > (long long)MAX_RAW)
        return 0;
    return (size_t)n;
}

int clu_mig_import_cmd(struct cluster *cl, int argc, const char *const *argv, const size_t *argvlen,
                       struct cm_buf *out)
{
    struct clu_mig *g = clu__mig(cl);
    size_t mark = out->len;
    char msg[320];
    if (g == NULL || argc < 2) {
        resp_add_error(out, "ERR usage: CLUSTER IMPORT BEGIN|LOAD|HANDOFF|ABORT|QUERY <id> ...");
    } else if ((arg_eq(argv[0], argvlen[0], "BEGIN") || arg_eq(argv[0], argvlen[0], "LOAD")) &&
               eng_space_refuses(g->e, NULL, NULL, load_size(argc, argv, argvlen), msg,
                                 sizeof(msg))) {
        resp_add_errorf(out, "ERR %s", msg); /* the source rolls the move back */
    } else if (arg_eq(argv[0], argvlen[0], "BEGIN")) {
        imp_begin(g, argc, argv, argvlen, out);
    } else if (arg_eq(argv[0], argvlen[0], "LOAD")) {
        imp_load(g, argc, argv, argvlen, out);
    } else if (arg_eq(argv[0], argvlen[0], "HANDOFF") && argc == 2) {
        imp_handoff(g, argv[1], argvlen[1], out);
    } else if (arg_eq(argv[0], argvlen[0], "ABORT") && argc == 2) {
        imp_abort(g, argv[1], argvlen[1], out);
    } else if (arg_eq(argv[0], argvlen[0], "QUERY") && argc == 2) {
        pthread_mutex_lock(&g->mu);
        bool mine = g->in_on && arg_eq(argv[1], argvlen[1], g->in_id);
        struct cm_err err = {0};
        if (mine && settle(g, &err) != 0) {
            pthread_mutex_unlock(&g->mu);
            resp_add_errorf(out, "TRYAGAIN the handoff is not durable yet: %s", err.msg);
            return out->len > mark ? 0 : CM_ENOMEM;
        }
        struct cm_buf done;
        cm_buf_init(&done);
        bool was_done = !mine &&
                        eng_meta_get(g->e, KEY_IN_DONE, strlen(KEY_IN_DONE), &done, NULL) == 0 &&
                        arg_eq(argv[1], argvlen[1], "") == false && done.len == argvlen[1] &&
                        memcmp(done.p, argv[1], done.len) == 0;
        cm_buf_deinit(&done);
        resp_add_simple(out, was_done           ? "handoff"
                             : !mine            ? "none"
                             : g->in_phase == 2 ? "handoff"
                                                : "importing");
        pthread_mutex_unlock(&g->mu);
    } else {
        resp_add_error(out, "ERR usage: CLUSTER IMPORT BEGIN|LOAD|HANDOFF|ABORT|QUERY <id> ...");
    }
    return out->len > mark ? 0 : CM_ENOMEM;
}

void clu__mig_on_map(struct clu_mig *g, const struct clu_map *m)
{
    /* Slots this map gives to this node take writes again, however they came back (an
     * import clears them too; this covers a map set by hand). */
    uint8_t mine[SLOT_BYTES] = {0};
    int self = clu_map_find(m, clu_myid(g->cl));
    for (unsigned s = 0; s < CM_SLOTS && self >= 0; s++)
        if (m->owner[s] == self)
            add(mine, s);
    eng_slots_refuse(g->e, mine, false);
    pthread_mutex_lock(&g->mu);
    if (g->in_on && g->in_phase == 2 && owns_all(g, m, g->in_slots, clu_myid(g->cl))) {
        /* Remembered so that a source asking late still learns it committed. */
        eng_meta_put(g->e, KEY_IN_DONE, strlen(KEY_IN_DONE), g->in_id, strlen(g->in_id), NULL);
        eng_meta_del(g->e, KEY_IN, strlen(KEY_IN), NULL);
        for (unsigned s = 0; s < CM_SLOTS; s++)
            if (has(g->in_slots, s))
                atomic_store(&g->ss[s], SS_NONE);
        g->in_on = false;
        cm_log(CM_LOG_NOTICE, "Import %s: done, this node owns the slots (epoch %llu)", g->in_id,
               m->epoch);
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
}

/* A committed import that the source does not finish (it died after the handoff, or
 * this node restarted with the import committed): after in_delay_ms, if the import is
 * still waiting for its map, this node installs the map of epoch base + 1 itself and
 * pushes it (the same map the source would make). */
static void *in_finish_main(void *arg)
{
    struct clu_mig *g = arg;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += g->in_delay_ms / 1000;
    dl.tv_nsec += (long)(g->in_delay_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->mu);
    char id[64];
    snprintf(id, sizeof(id), "%s", g->in_id);
    while (g->in_on && g->in_phase == 2 && strcmp(g->in_id, id) == 0 && !atomic_load(&g->closing))
        if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) != 0)
            break;
    bool act =
        g->in_on && g->in_phase == 2 && strcmp(g->in_id, id) == 0 && !atomic_load(&g->closing);
    unsigned long long base = g->in_base;
    uint8_t slots[SLOT_BYTES];
    memcpy(slots, g->in_slots, SLOT_BYTES);
    pthread_mutex_unlock(&g->mu);
    if (act) {
        if (g->in_delay_ms > 0)
            cm_log(CM_LOG_WARNING,
                   "Import %s: the source did not install the map of epoch %llu "
                   "within %d ms; installing it here",
                   id, base + 1, g->in_delay_ms);
        switch_map(g, base, slots, clu_myid(g->cl));
    }
    return NULL;
}

/* Starts in_finish_main (joining the previous one, which has ended or is about to). */
static int start_in_finish(struct clu_mig *g, int delay_ms)
{
    if (g->in_joinable) {
        pthread_join(g->in_thread, NULL);
        g->in_joinable = false;
    }
    g->in_delay_ms = delay_ms;
    if (pthread_create(&g->in_thread, NULL, in_finish_main, g) != 0)
        return CM_ERR;
    g->in_joinable = true;
    return 0;
}

/* ---- Start and stop
 * ------------------------------------------------------------------------------------ */

static int parse_slot_words(char **w, int n, uint8_t *slots)
{
    for (int i = 0; i < n; i++)
        if (clu_slots_parse(w[i], strlen(w[i]), slots) != 0)
            return CM_EINVAL;
    return 0;
}

static int recover_out(struct clu_mig *g, struct cm_err *err)
{
    char *text = NULL, *w[80];
    int rc = load_record(g->e, KEY_OUT, &text, err);
    if (rc == CM_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    int n = words(text, w, 80);
    if (n < 7 || strlen(w[0]) >= sizeof(g->id) || !clu_id_valid(w[1], strlen(w[1])) ||
        parse_slot_words(w + 6, n - 6, g->slots) != 0) {
        cm_free(text);
        return cm_err_set(err, CM_EINVAL, "corrupt migration record %s", KEY_OUT);
    }
    snprintf(g->id, sizeof(g->id), "%s", w[0]);
    snprintf(g->target_id, sizeof(g->target_id), "%s", w[1]);
    snprintf(g->host, sizeof(g->host), "%s", w[2]);
    g->port = atoi(w[3]);
    g->base = strtoull(w[4], NULL, 10);
    bool handoff = strcmp(w[5], "handoff") == 0;
    cm_free(text);
    g->nslots = count_slots(g->slots);
    g->t_start = cm_now_ms();
    g->phase = handoff ? OUT_HANDOFF : OUT_RECOVER;
    cm_log(CM_LOG_NOTICE, "Migration %s of %d slot(s) to %s:%d was interrupted (%s); %s", g->id,
           g->nslots, g->host, g->port, handoff ? "committed" : "not committed",
           handoff ? "completing it" : "asking the target, the slots wait meanwhile");
    /* Until it is resolved nobody writes the slots here. */
    eng_watch_start(g->e, g->slots);
    eng_watch_fence(g->e, true);
    if (handoff)
        publish_ask(g);
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (has(g->slots, s))
            atomic_store(&g->ss[s], handoff ? SS_ASK : SS_FENCED);
    g->out_busy = true;
    if (pthread_create(&g->thread, NULL, out_recover_main, g) != 0) {
        g->out_busy = false;
        return cm_err_set(err, CM_ERR, "cannot start the migration thread");
    }
    g->joinable = true;
    return 0;
}

static int recover_in(struct clu_mig *g, struct cm_err *err)
{
    char *text = NULL, *w[80];
    int rc = load_record(g->e, KEY_IN, &text, err);
    if (rc == CM_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    int n = words(text, w, 80);
    if (n < 5 || strlen(w[0]) >= sizeof(g->in_id) || !clu_id_valid(w[1], strlen(w[1])) ||
        parse_slot_words(w + 4, n - 4, g->in_slots) != 0) {
        cm_free(text);
        return cm_err_set(err, CM_EINVAL, "corrupt migration record %s", KEY_IN);
    }
    snprintf(g->in_id, sizeof(g->in_id), "%s", w[0]);
    snprintf(g->in_source, sizeof(g->in_source), "%s", w[1]);
    g->in_base = strtoull(w[2], NULL, 10);
    g->in_phase = strcmp(w[3], "handoff") == 0 ? 2 : 1;
    cm_free(text);
    g->in_on = true;
    if (g->in_phase == 1) {
        cm_log(CM_LOG_NOTICE, "Import %s was interrupted before its handoff: staged keys dropped",
               g->in_id);
        in_drop(g);
        return 0;
    }
    const struct clu_map *m = clu_map_get(g->cl);
    if (owns_all(g, m, g->in_slots, clu_myid(g->cl))) {
        eng_meta_del(g->e, KEY_IN, strlen(KEY_IN), NULL);
        g->in_on = false;
        return 0;
    }
    cm_log(CM_LOG_NOTICE, "Import %s had committed: installing the map of epoch %llu", g->in_id,
           g->in_base + 1);
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (has(g->in_slots, s))
            atomic_store(&g->ss[s], SS_IN_ASK);
    if (start_in_finish(g, 0) != 0)
        return cm_err_set(err, CM_ERR, "cannot start the migration thread");
    return 0;
}

int clu_mig_open(struct cluster *cl, struct eng *e, clu_password_fn password, void *password_ud,
                 struct cm_err *err)
{
    struct clu_mig *g = cm_calloc(1, sizeof(*g));
    if (g == NULL)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    g->cl = cl;
    g->e = e;
    g->password = password;
    g->password_ud = password_ud;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->in_thread_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    clu__set_mig(cl, g);
    int rc = recover_in(g, err);
    if (rc == 0)
        rc = recover_out(g, err);
    return rc;
}

void clu_mig_close(struct cluster *cl)
{
    struct clu_mig *g = clu__mig(cl);
    if (g == NULL)
        return;
    atomic_store(&g->closing, true);
    atomic_store(&g->cancel, true);
    pthread_mutex_lock(&g->mu);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->joinable)
        pthread_join(g->thread, NULL);
    if (g->in_joinable)
        pthread_join(g->in_thread, NULL);
    clu__set_mig(cl, NULL);
    for (struct ask_old *o = g->ask_old, *next; o != NULL; o = next) {
        next = o->next;
        cm_free(o->s);
        cm_free(o);
    }
    cm_free(atomic_load(&g->ask_to));
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->in_thread_mu);
    pthread_cond_destroy(&g->cv);
    cm_free(g);
}
