/* run.c - eddy-bench's engine: worker threads, each driving its share of the
 * connections through libeddy, closed loop (a batch of --pipeline commands per round
 * trip, as redis-benchmark does) or open loop (commands sent at their intended times,
 * latency measured from those), following MOVED/ASK, recording results.
 *
 * A connection holds one eddy_ctx per cluster node it has talked to. Commands are
 * appended, flushed, and their replies read back in order once the socket is readable
 * (the whole in-flight window of that node is read then, since libeddy may buffer
 * several replies out of poll's sight). Redirected ops and the second step of a
 * read-modify-write go to a pending list and are sent in the connection's next round. */
#include "bench.h"

#include "../client/eddy.h"
#include "../common/common.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t eb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t eb_sched_intended(uint64_t t0_ns, double rate, uint64_t i)
{
    return t0_ns + (uint64_t)((double)i * 1e9 / rate);
}

uint64_t eb_sched_due(uint64_t t0_ns, double rate, uint64_t now_ns)
{
    if (now_ns < t0_ns)
        return 0;
    uint64_t n = (uint64_t)floor((double)(now_ns - t0_ns) * rate / 1e9) + 1;
    /* Floating point may put the boundary one op off; settle it with the exact rule. */
    while (n > 0 && eb_sched_intended(t0_ns, rate, n - 1) > now_ns)
        n--;
    while (eb_sched_intended(t0_ns, rate, n) <= now_ns)
        n++;
    return n;
}

/* ---- Results ------------------------------------------------------------------------------ */

int eb_result_init(struct eb_result *res)
{
    memset(res, 0, sizeof(*res));
    if (eb_hist_init(&res->all, EB_HIST_BITS) != 0)
        return -1;
    for (int i = 0; i < EB_OP_COUNT; i++)
        if (eb_hist_init(&res->per_op[i], EB_HIST_BITS) != 0)
            return -1;
    return 0;
}

void eb_result_deinit(struct eb_result *res)
{
    eb_hist_deinit(&res->all);
    for (int i = 0; i < EB_OP_COUNT; i++)
        eb_hist_deinit(&res->per_op[i]);
    for (size_t i = 0; i < res->nsec; i++)
        eb_hist_deinit(&res->sec[i].hist);
    cm_free(res->sec);
    res->sec = NULL;
    res->nsec = 0;
}

static void add_error(struct eb_result *res, const char *name, size_t n, uint64_t count)
{
    if (n > 31)
        n = 31;
    for (int i = 0; i < res->nerr; i++) {
        if (strlen(res->err[i].name) == n && memcmp(res->err[i].name, name, n) == 0) {
            res->err[i].count += count;
            return;
        }
    }
    int slot = res->nerr;
    if (slot >= EB_MAX_ERRKINDS) {
        slot = EB_MAX_ERRKINDS;
        name = "OTHER", n = 5;
    } else {
        res->nerr++;
    }
    if (res->err[slot].count == 0) {
        memcpy(res->err[slot].name, name, n);
        res->err[slot].name[n] = '\0';
    }
    res->err[slot].count += count;
}

void eb_result_error(struct eb_result *res, const char *s, size_t n)
{
    size_t w = 0;
    while (w < n && s[w] != ' ' && s[w] != '\r' && s[w] != '\n')
        w++;
    if (w == 0)
        s = "ERR", w = 3;
    add_error(res, s, w, 1);
    res->errors++;
}

/* Makes sure seconds 0..i exist. */
static int grow_secs(struct eb_result *res, size_t i)
{
    if (i < res->nsec)
        return 0;
    size_t n = i + 1;
    size_t cap = res->nsec ? res->nsec : 16;
    while (cap < n)
        cap *= 2;
    struct eb_second *s = cm_realloc(res->sec, cap * sizeof(*s));
    if (s == NULL)
        return -1;
    res->sec = s;
    for (size_t k = res->nsec; k < n; k++) {
        memset(&s[k], 0, sizeof(s[k]));
        if (eb_hist_init(&s[k].hist, 4) != 0)
            return -1;
        res->nsec = k + 1;
    }
    return 0;
}

int eb_result_merge(struct eb_result *dst, const struct eb_result *src)
{
    dst->ops += src->ops;
    dst->errors += src->errors;
    dst->misses += src->misses;
    dst->redirects += src->redirects;
    if (src->seconds > dst->seconds)
        dst->seconds = src->seconds;
    eb_hist_merge(&dst->all, &src->all);
    for (int i = 0; i < EB_OP_COUNT; i++) {
        eb_hist_merge(&dst->per_op[i], &src->per_op[i]);
        dst->op_count[i] += src->op_count[i];
    }
    for (int i = 0; i <= EB_MAX_ERRKINDS; i++)
        if (src->err[i].count)
            add_error(dst, src->err[i].name, strlen(src->err[i].name), src->err[i].count);
    if (src->nsec && grow_secs(dst, src->nsec - 1) != 0)
        return -1;
    for (size_t i = 0; i < src->nsec; i++) {
        dst->sec[i].ops += src->sec[i].ops;
        dst->sec[i].errors += src->sec[i].errors;
        eb_hist_merge(&dst->sec[i].hist, &src->sec[i].hist);
    }
    if (src->fatal[0] && !dst->fatal[0])
        memcpy(dst->fatal, src->fatal, sizeof(dst->fatal));
    return 0;
}

/* ---- Workers ------------------------------------------------------------------------------- */

struct shared {
    const struct eb_opts *o;
    bool load_phase;
    struct eb_mix mix;
    pthread_mutex_t lock; /* guards map's node table */
    struct eb_slotmap map;
    _Atomic uint64_t next_key; /* next key of LOAD / INSERT */
    _Atomic uint64_t acked;    /* keys + inserts completed: what "latest" reads from */
    uint64_t t_start, t_measure, t_end; /* t_end 0: run by op count */
    char *values;
    atomic_int stop;
};

struct conn {
    eddy_ctx *ctx[EB_MAX_NODES];
    int *q[EB_MAX_NODES]; /* in-flight op indices per node, in send order */
    int qn[EB_MAX_NODES];
    int nodes_used;       /* ctx[0..nodes_used-1] may be set */
    int inflight;
    int depth;
    struct eb_op *ops;
    int *free_ops, nfree;
    int *pending, npending;
};

struct worker {
    int id;
    struct shared *sh;
    const struct eb_opts *o;
    struct conn *conns;
    int nconns;
    struct eb_rng rng;
    struct eb_keygen kg;
    struct eb_result res;
    uint8_t slot_node[16384];
    uint64_t quota, started;   /* measured ops to start (op-count mode) */
    uint64_t sched_i;          /* open loop: ops scheduled so far */
    double rate;               /* open loop: this thread's ops/s */
    uint64_t last_done;
    atomic_ullong done;        /* for the progress line */
    char *scratch;
    size_t scratch_cap;
    struct eb_cmd cmd;
    pthread_t th;
};

static int wfail(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wfail(struct worker *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->res.fatal, sizeof(w->res.fatal), fmt, ap);
    va_end(ap);
    atomic_store(&w->sh->stop, 1);
    return -1;
}

static eddy_ctx *node_ctx(struct worker *w, struct conn *c, int node)
{
    if (c->ctx[node])
        return c->ctx[node];
    char host[256];
    int port;
    pthread_mutex_lock(&w->sh->lock);
    strcpy(host, w->sh->map.node[node].host);
    port = w->sh->map.node[node].port;
    pthread_mutex_unlock(&w->sh->lock);
    char err[EDDY_ERRLEN];
    const char *pw = w->o->password[0] ? w->o->password : NULL;
    eddy_ctx *ctx = eddy_connect(host, port, w->o->timeout_ms, pw, err);
    if (ctx == NULL) {
        wfail(w, "connect to %s:%d: %s", host, port, err);
        return NULL;
    }
    c->q[node] = cm_malloc(((size_t)c->depth * 2 + 4) * sizeof(int));
    if (c->q[node] == NULL) {
        eddy_free(ctx);
        wfail(w, "out of memory");
        return NULL;
    }
    c->ctx[node] = ctx;
    if (node + 1 > c->nodes_used)
        c->nodes_used = node + 1;
    return ctx;
}

static int send_op(struct worker *w, struct conn *c, int opi)
{
    struct eb_op *op = &c->ops[opi];
    int node = op->node;
    if (node < 0) {
        node = 0;
        if (w->o->cluster) {
            int slot = eb_op_slot(w->o, op);
            node = slot < 0 ? 0 : w->slot_node[slot];
        }
    }
    eddy_ctx *ctx = node_ctx(w, c, node);
    if (ctx == NULL)
        return -1;
    if (op->asking) {
        static const char *asking[] = {"ASKING"};
        if (eddy_append_argv(ctx, 1, asking, NULL) != EDDY_OK)
            return wfail(w, "append: %s", eddy_errstr(ctx));
    }
    int argc = eb_op_build(w->o, op, &w->rng, w->sh->values, w->scratch, w->scratch_cap,
                           &w->cmd);
    if (argc < 0)
        return wfail(w, "command too large for the scratch buffer");
    if (eddy_append_argv(ctx, argc, w->cmd.argv, w->cmd.argvlen) != EDDY_OK)
        return wfail(w, "append: %s", eddy_errstr(ctx));
    c->q[node][c->qn[node]++] = opi;
    c->inflight++;
    return 0;
}

static int flush_conn(struct worker *w, struct conn *c)
{
    for (int n = 0; n < c->nodes_used; n++) {
        if (c->qn[n] == 0)
            continue;
        int rc = eddy_flush(c->ctx[n]);
        if (rc != EDDY_OK)
            return wfail(w, "write: %s", eddy_errstr(c->ctx[n]));
    }
    return 0;
}

/* May this thread start another op now (intended or actual start time t)? */
static bool may_start(struct worker *w, uint64_t t)
{
    struct shared *sh = w->sh;
    if (atomic_load_explicit(&sh->stop, memory_order_relaxed))
        return false;
    if (sh->load_phase)
        return atomic_load_explicit(&sh->next_key, memory_order_relaxed) < w->o->keys;
    if (sh->t_end)
        return t < sh->t_end;
    return t < sh->t_measure || w->started < w->quota;
}

/* Fills op opi of c as a new operation starting at t. Returns false when the load
 * phase has run out of keys. */
static bool new_op(struct worker *w, struct conn *c, int opi, uint64_t t)
{
    struct shared *sh = w->sh;
    struct eb_op *op = &c->ops[opi];
    enum eb_opkind kind = eb_mix_pick(&sh->mix, eb_rng_double(&w->rng));
    uint64_t count = w->o->keys;
    if (sh->mix.dist == EB_DIST_LATEST || w->kg.dist == EB_DIST_LATEST)
        count = atomic_load_explicit(&sh->acked, memory_order_relaxed);
    if (kind == EB_OP_LOAD) {
        uint64_t k = atomic_fetch_add(&sh->next_key, 1);
        if (k >= w->o->keys)
            return false;
        eb_op_choose(op, w->o, kind, &w->kg, &w->rng, w->o->keys);
        op->keys[0] = k;
    } else {
        eb_op_choose(op, w->o, kind, &w->kg, &w->rng, count);
        if (kind == EB_OP_INSERT)
            op->keys[0] = atomic_fetch_add(&sh->next_key, 1);
    }
    op->start_ns = t;
    if (t >= sh->t_measure)
        w->started++;
    return true;
}

static void complete(struct worker *w, struct conn *c, int opi, uint64_t now, bool error)
{
    struct eb_op *op = &c->ops[opi];
    struct shared *sh = w->sh;
    c->free_ops[c->nfree++] = opi;
    if (op->kind == EB_OP_INSERT)
        atomic_fetch_add_explicit(&sh->acked, 1, memory_order_relaxed);
    atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (op->start_ns < sh->t_measure)
        return;
    uint64_t lat = now > op->start_ns ? now - op->start_ns : 0;
    w->res.ops++;
    w->res.op_count[op->kind]++;
    eb_hist_add(&w->res.all, lat);
    eb_hist_add(&w->res.per_op[op->kind], lat);
    size_t s = (size_t)((now - sh->t_measure) / 1000000000ULL);
    if (grow_secs(&w->res, s) == 0) {
        w->res.sec[s].ops++;
        w->res.sec[s].errors += error;
        eb_hist_add(&w->res.sec[s].hist, lat);
    }
    if (now > w->last_done)
        w->last_done = now;
}

static bool is_read(enum eb_opkind k)
{
    return k == EB_OP_GET || k == EB_OP_READ || k == EB_OP_RMW || k == EB_OP_UDF_GET;
}

/* Follows a MOVED or ASK: the op is re-sent to the node named. */
static bool redirect(struct worker *w, struct conn *c, int opi, const struct eddy_reply *r,
                     int from_node)
{
    struct eb_op *op = &c->ops[opi];
    struct eb_redirect rd;
    if (eb_redirect_parse(r->str, r->len, &rd) <= 0 || op->redirects >= 5)
        return false;
    char host[256];
    pthread_mutex_lock(&w->sh->lock);
    strcpy(host, rd.host[0] ? rd.host : w->sh->map.node[from_node].host);
    int idx = eb_slotmap_node(&w->sh->map, host, rd.port);
    pthread_mutex_unlock(&w->sh->lock);
    if (idx < 0)
        return false;
    if (rd.kind == EB_REDIR_MOVED)
        w->slot_node[rd.slot] = (uint8_t)idx;
    op->node = idx;
    op->asking = rd.kind == EB_REDIR_ASK;
    op->redirects++;
    if (op->start_ns >= w->sh->t_measure)
        w->res.redirects++;
    c->pending[c->npending++] = opi;
    return true;
}

static void handle_reply(struct worker *w, struct conn *c, int opi, struct eddy_reply *r,
                         int node, uint64_t now)
{
    struct eb_op *op = &c->ops[opi];
    bool measured = op->start_ns >= w->sh->t_measure;
    if (r->type == EDDY_REPLY_ERROR) {
        if (redirect(w, c, opi, r, node))
            return;
        if (measured)
            eb_result_error(&w->res, r->str, r->len);
        complete(w, c, opi, now, true);
        return;
    }
    op->node = -1;
    op->asking = false;
    if (measured && r->type == EDDY_REPLY_NIL && is_read(op->kind) && op->phase == 0)
        w->res.misses++;
    if (op->kind == EB_OP_RMW && op->phase == 0) {
        op->phase = 1;
        c->pending[c->npending++] = opi;
        return;
    }
    complete(w, c, opi, now, false);
}

/* Reads the replies of every op in flight on node of c. */
static int drain(struct worker *w, struct conn *c, int node)
{
    eddy_ctx *ctx = c->ctx[node];
    int n = c->qn[node];
    c->qn[node] = 0;
    for (int k = 0; k < n; k++) {
        int opi = c->q[node][k];
        struct eddy_reply *r;
        if (c->ops[opi].asking) {
            if (eddy_get_reply(ctx, &r) != EDDY_OK)
                return wfail(w, "read: %s", eddy_errstr(ctx));
            eddy_reply_free(r);
            c->ops[opi].asking = false;
        }
        if (eddy_get_reply(ctx, &r) != EDDY_OK)
            return wfail(w, "read: %s", eddy_errstr(ctx));
        handle_reply(w, c, opi, r, node, eb_now_ns());
        eddy_reply_free(r);
        c->inflight--;
    }
    return 0;
}

/* Sends c's pending ops. */
static int send_pending(struct worker *w, struct conn *c)
{
    int n = c->npending;
    c->npending = 0;
    for (int i = 0; i < n; i++)
        if (send_op(w, c, c->pending[i]) != 0)
            return -1;
    return 0;
}

/* Closed loop: one round of c, pending ops then new ones up to the pipeline depth. */
static int refill(struct worker *w, struct conn *c)
{
    if (send_pending(w, c) != 0)
        return -1;
    uint64_t t = eb_now_ns();
    while (c->nfree > 0 && may_start(w, t)) {
        int opi = c->free_ops[c->nfree - 1];
        if (!new_op(w, c, opi, t))
            break;
        c->nfree--;
        if (send_op(w, c, opi) != 0)
            return -1;
    }
    return flush_conn(w, c);
}

static int build_pollfds(struct worker *w, struct pollfd *pfd, int *map_conn, int *map_node)
{
    int n = 0;
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        for (int k = 0; k < c->nodes_used; k++) {
            if (c->qn[k] == 0)
                continue;
            pfd[n].fd = eddy_fd(c->ctx[k]);
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            map_conn[n] = i;
            map_node[n] = k;
            n++;
        }
    }
    return n;
}

/* Waits for replies (at most timeout_ns; < 0 forever) and handles them; in closed
 * loop, a connection whose window is empty starts its next round at once. Returns
 * the number of sockets that were ready, 0 on timeout, -1 on failure. */
static int wait_and_drain(struct worker *w, struct pollfd *pfd, int *mc, int *mn,
                          int64_t timeout_ns, bool closed)
{
    int n = build_pollfds(w, pfd, mc, mn);
    if (n == 0 && timeout_ns < 0)
        return 0;
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    int ready = ppoll(pfd, (nfds_t)n, tsp, NULL);
    if (ready < 0) {
        if (errno == EINTR)
            return 1;
        return wfail(w, "poll: %s", strerror(errno));
    }
    for (int i = 0; i < n && ready > 0; i++) {
        if (pfd[i].revents == 0)
            continue;
        struct conn *c = &w->conns[mc[i]];
        if (drain(w, c, mn[i]) != 0)
            return -1;
        if (closed && c->inflight == 0) {
            if (refill(w, c) != 0)
                return -1;
        } else if (c->npending) {
            if (send_pending(w, c) != 0 || flush_conn(w, c) != 0)
                return -1;
        }
    }
    return ready;
}

static int total_inflight(struct worker *w)
{
    int n = 0;
    for (int i = 0; i < w->nconns; i++)
        n += w->conns[i].inflight + w->conns[i].npending;
    return n;
}

static int run_closed(struct worker *w, struct pollfd *pfd, int *mc, int *mn)
{
    for (int i = 0; i < w->nconns; i++)
        if (refill(w, &w->conns[i]) != 0)
            return -1;
    int64_t idle_ns = w->o->timeout_ms > 0 ? (int64_t)w->o->timeout_ms * 1000000 : -1;
    while (total_inflight(w) > 0) {
        int rc = wait_and_drain(w, pfd, mc, mn, idle_ns, true);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return wfail(w, "no reply within %d ms", w->o->timeout_ms);
    }
    return 0;
}

/* Open loop: op i of this thread is due at t_start + i/rate; it is sent on the next
 * connection with room in its window, or waits (its latency still counts from its due
 * time). */
static int run_open(struct worker *w, struct pollfd *pfd, int *mc, int *mn)
{
    uint64_t t0 = w->sh->t_start;
    int rr = 0;
    for (;;) {
        uint64_t now = eb_now_ns();
        bool more = true, full = false;
        for (;;) {
            uint64_t due = eb_sched_intended(t0, w->rate, w->sched_i);
            if (!may_start(w, due)) {
                more = false;
                break;
            }
            if (due > now)
                break;
            struct conn *c = NULL;
            for (int k = 0; k < w->nconns && c == NULL; k++) {
                struct conn *cand = &w->conns[(rr + k) % w->nconns];
                if (cand->nfree > 0)
                    c = cand, rr = (rr + k + 1) % w->nconns;
            }
            if (c == NULL) {
                full = true; /* every window is full: the op waits, its clock running */
                break;
            }
            int opi = c->free_ops[--c->nfree];
            if (!new_op(w, c, opi, due)) {
                c->nfree++;
                more = false;
                break;
            }
            w->sched_i++;
            if (send_op(w, c, opi) != 0 || flush_conn(w, c) != 0)
                return -1;
        }
        if (!more && total_inflight(w) == 0)
            return 0;
        int64_t timeout = -1;
        if (more && !full) {
            uint64_t due = eb_sched_intended(t0, w->rate, w->sched_i);
            now = eb_now_ns();
            timeout = due > now ? (int64_t)(due - now) : 0;
        }
        if (wait_and_drain(w, pfd, mc, mn, timeout, false) < 0)
            return -1;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int maxfds = w->nconns * EB_MAX_NODES;
    struct pollfd *pfd = cm_malloc((size_t)maxfds * sizeof(*pfd));
    int *mc = cm_malloc((size_t)maxfds * sizeof(int));
    int *mn = cm_malloc((size_t)maxfds * sizeof(int));
    if (pfd == NULL || mc == NULL || mn == NULL)
        wfail(w, "out of memory");
    else if (w->rate > 0 && !w->sh->load_phase)
        run_open(w, pfd, mc, mn);
    else
        run_closed(w, pfd, mc, mn);
    cm_free(pfd);
    cm_free(mc);
    cm_free(mn);
    return NULL;
}

/* ---- Set-up ----------------------------------------------------------------------------------- */

static int conn_init(struct conn *c, int depth)
{
    memset(c, 0, sizeof(*c));
    c->depth = depth;
    c->ops = cm_calloc((size_t)depth, sizeof(*c->ops));
    c->free_ops = cm_malloc((size_t)depth * sizeof(int));
    c->pending = cm_malloc((size_t)depth * sizeof(int));
    if (c->ops == NULL || c->free_ops == NULL || c->pending == NULL)
        return -1;
    for (int i = 0; i < depth; i++)
        c->free_ops[i] = depth - 1 - i;
    c->nfree = depth;
    return 0;
}

static void conn_deinit(struct conn *c)
{
    for (int k = 0; k < EB_MAX_NODES; k++) {
        eddy_free(c->ctx[k]);
        cm_free(c->q[k]);
    }
    cm_free(c->ops);
    cm_free(c->free_ops);
    cm_free(c->pending);
}

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, EB_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static eddy_ctx *connect_seed(const struct eb_opts *o, const char *host, int port, char *err)
{
    char e[EDDY_ERRLEN];
    eddy_ctx *ctx = eddy_connect(host, port, o->timeout_ms, o->password[0] ? o->password : NULL,
                                 e);
    if (ctx == NULL)
        fail(err, "connect to %s:%d: %s", host, port, e);
    return ctx;
}

/* Reads CLUSTER SLOTS from the seed node into map. */
static int load_slots(const struct eb_opts *o, struct eb_slotmap *map, char *err)
{
    eddy_ctx *ctx = connect_seed(o, o->host, o->port, err);
    if (ctx == NULL)
        return -1;
    struct eddy_reply *r = eddy_command(ctx, "CLUSTER", "SLOTS", (char *)NULL);
    int rc = 0;
    if (r == NULL)
        rc = fail(err, "CLUSTER SLOTS: %s", eddy_errstr(ctx));
    else if (r->type == EDDY_REPLY_ERROR)
        fprintf(stderr, "eddy-bench: CLUSTER SLOTS: %s; using %s:%d for every slot\n",
                r->str, o->host, o->port);
    else if (eb_slotmap_from_reply(map, r) < 0)
        rc = fail(err, "CLUSTER SLOTS: unexpected reply");
    eddy_reply_free(r);
    eddy_free(ctx);
    return rc;
}

int eb_function_load(const struct eb_opts *o, const char *code, size_t len, char *err)
{
    struct eb_slotmap map;
    eb_slotmap_init(&map, o->host, o->port);
    if (o->cluster && load_slots(o, &map, err) != 0)
        return -1;
    for (int i = 0; i < map.nnodes; i++) {
        eddy_ctx *ctx = connect_seed(o, map.node[i].host, map.node[i].port, err);
        if (ctx == NULL)
            return -1;
        const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", code};
        size_t lens[] = {8, 4, 7, len};
        struct eddy_reply *r = eddy_command_argv(ctx, 4, argv, lens);
        int rc = 0;
        if (r == NULL)
            rc = fail(err, "FUNCTION LOAD: %s", eddy_errstr(ctx));
        else if (r->type == EDDY_REPLY_ERROR)
            rc = fail(err, "FUNCTION LOAD on %s:%d: %s", map.node[i].host, map.node[i].port,
                      r->str);
        eddy_reply_free(r);
        eddy_free(ctx);
        if (rc)
            return rc;
    }
    return 0;
}

static char *random_values(size_t n)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char *v = cm_malloc(n + 1);
    if (v == NULL)
        return NULL;
    struct eb_rng r;
    eb_rng_seed(&r, 42);
    for (size_t i = 0; i < n; i++)
        v[i] = alphabet[eb_rng_below(&r, sizeof(alphabet) - 1)];
    v[n] = '\0';
    return v;
}

static bool progress_wanted(const struct eb_opts *o)
{
    return o->progress || isatty(2);
}

/* The main thread's wait: a progress line each second until every worker is done. */
static void watch(const struct eb_opts *o, struct shared *sh, struct worker *w, int nw,
                  atomic_int *running, bool load_phase)
{
    bool show = progress_wanted(o);
    bool tty = isatty(2);
    uint64_t last = 0, last_t = eb_now_ns();
    while (atomic_load(running) > 0) {
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
        uint64_t now = eb_now_ns();
        if (!show || now - last_t < 1000000000ULL)
            continue;
        uint64_t done = 0;
        for (int i = 0; i < nw; i++)
            done += atomic_load_explicit(&w[i].done, memory_order_relaxed);
        double el = (double)(now - sh->t_start) / 1e9;
        double rate = (double)(done - last) / ((double)(now - last_t) / 1e9);
        const char *phase = load_phase ? "load" : now < sh->t_measure ? "warm-up" : "run";
        fprintf(stderr, "%s[%6.1fs] %-7s %12llu ops %12.0f ops/s%s", tty ? "\r" : "", el, phase,
                (unsigned long long)done, rate, tty ? "   " : "\n");
        last = done, last_t = now;
    }
    if (show && tty)
        fputc('\n', stderr);
}

struct start {
    struct worker *w;
    atomic_int *running;
};

static void *worker_thread(void *arg)
{
    struct start *s = arg;
    worker_main(s->w);
    atomic_fetch_sub(s->running, 1);
    return NULL;
}

static int workers_init(const struct eb_opts *o, struct shared *sh, struct worker *w, int nw,
                        struct conn *conns, int depth, char *err)
{
    int next_conn = 0;
    for (int i = 0; i < nw; i++) {
        struct worker *x = &w[i];
        x->id = i;
        x->sh = sh;
        x->o = o;
        x->nconns = o->connections / nw + (i < o->connections % nw);
        x->conns = conns + next_conn;
        next_conn += x->nconns;
        eb_rng_seed(&x->rng, o->seed + (uint64_t)i * 7919);
        enum eb_dist d = sh->load_phase ? EB_DIST_SEQ : o->dist_set ? o->dist : sh->mix.dist;
        if (eb_keygen_init(&x->kg, d, o->keys, o->theta, o->scramble) != 0)
            return fail(err, "bad key distribution");
        if (eb_result_init(&x->res) != 0)
            return fail(err, "out of memory");
        memcpy(x->slot_node, sh->map.slot_node, sizeof(x->slot_node));
        x->quota = o->ops / (uint64_t)nw + ((uint64_t)i < o->ops % (uint64_t)nw);
        x->rate = o->rate / nw;
        bool templated = o->workload == EB_WL_FCALL;
        x->scratch_cap = 65536 + (templated ? EB_MAX_TEMPLATES * (o->value_max + 256) : 0);
        x->scratch = cm_malloc(x->scratch_cap);
        if (x->scratch == NULL)
            return fail(err, "out of memory");
        for (int k = 0; k < x->nconns; k++)
            if (conn_init(&x->conns[k], depth) != 0)
                return fail(err, "out of memory");
    }
    return 0;
}

/* Opens every connection before the clock starts. */
static int connect_all(struct worker *w, int nw, char *err)
{
    for (int i = 0; i < nw; i++)
        for (int k = 0; k < w[i].nconns; k++)
            if (node_ctx(&w[i], &w[i].conns[k], 0) == NULL)
                return fail(err, "%s", w[i].res.fatal);
    return 0;
}

int eb_run(const struct eb_opts *o, bool load_phase, struct eb_result *res, char *err)
{
    int nw = o->threads;
    int depth = load_phase ? o->load_pipeline : o->pipeline;
    int rc = -1;
    struct shared sh;
    memset(&sh, 0, sizeof(sh));
    sh.o = o;
    sh.load_phase = load_phase;
    eb_mix_of(load_phase ? EB_WL_LOAD : o->workload, &sh.mix);
    pthread_mutex_init(&sh.lock, NULL);
    eb_slotmap_init(&sh.map, o->host, o->port);
    atomic_init(&sh.next_key, load_phase ? 0 : o->keys);
    atomic_init(&sh.acked, o->keys);
    atomic_init(&sh.stop, 0);
    struct worker *w = cm_calloc((size_t)nw, sizeof(*w));
    struct conn *conns = cm_calloc((size_t)o->connections, sizeof(*conns));
    struct start *st = cm_calloc((size_t)nw, sizeof(*st));
    sh.values = random_values(o->value_max + 64);
    atomic_int running;
    atomic_init(&running, 0);
    int started = 0;
    if (w == NULL || conns == NULL || st == NULL || sh.values == NULL) {
        fail(err, "out of memory");
        goto out;
    }
    if (o->cluster && load_slots(o, &sh.map, err) != 0)
        goto out;
    if (workers_init(o, &sh, w, nw, conns, depth, err) != 0 || connect_all(w, nw, err) != 0)
        goto out;
    sh.t_start = eb_now_ns();
    sh.t_measure = sh.t_start + (load_phase ? 0 : (uint64_t)(o->warmup * 1e9));
    if (!load_phase && o->ops == 0)
        sh.t_end = sh.t_measure + (uint64_t)(o->duration * 1e9);
    for (int i = 0; i < nw; i++) {
        st[i].w = &w[i];
        st[i].running = &running;
        atomic_fetch_add(&running, 1);
        if (pthread_create(&w[i].th, NULL, worker_thread, &st[i]) != 0) {
            atomic_fetch_sub(&running, 1);
            atomic_store(&sh.stop, 1);
            fail(err, "pthread_create failed");
            break;
        }
        started++;
    }
    watch(o, &sh, w, nw, &running, load_phase);
    uint64_t last = sh.t_measure;
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].th, NULL);
        if (w[i].last_done > last)
            last = w[i].last_done;
        eb_result_merge(res, &w[i].res);
    }
    res->seconds = (double)(last - sh.t_measure) / 1e9;
    if (started == nw)
        rc = res->fatal[0] ? fail(err, "%s", res->fatal) : 0;
out:
    for (int i = 0; w && i < nw; i++) {
        eb_result_deinit(&w[i].res);
        cm_free(w[i].scratch);
    }
    for (int k = 0; conns && k < o->connections; k++)
        conn_deinit(&conns[k]);
    cm_free(conns);
    cm_free(w);
    cm_free(st);
    cm_free(sh.values);
    pthread_mutex_destroy(&sh.lock);
    return rc;
}
