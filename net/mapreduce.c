/* mapreduce.c - MAPREDUCE map_function reduce_function [arg ...]: runs the map
 * function once per partition of this node's slots, each partition on its own I/O
 * thread (partition i of n covers slots [i*16384/n, (i+1)*16384/n - 1]), as an
 * ordinary call (sandboxed, budgeted, preemptible, over its own snapshot), then runs
 * the reduce function (or @sum / @list) on the partial results in the client's thread
 * and replies once. The job's bookkeeping lives on the client's thread ("home"):
 * partitions report back to it with server_post, so it needs no lock.
 * In cluster mode the home thread also sends MAPREDUCE map @partials [arg ...] to every
 * other node of the slot map (bus.c, without blocking): each runs the map on its own
 * partitions and replies with their serialized results (@zpartials: each compressed
 * with zstd when that makes it smaller, mr_pack), which join the local ones (local
 * first, then by node in map order) before the one reduce. */
#include "net_int.h"

#include "../cluster/cluster.h"

#include <stdio.h>
#include <string.h>
#include <zstd.h>

/* The partial results of one other node. */
struct mr_remote {
    int n;
    char **partials;
    size_t *lens;
};

struct mr_job {
    struct conn_job base;    /* first: the connection's c->job */
    struct worker *home;
    struct conn *c;          /* NULL once the client went away */
    char *map, *reduce;
    int nargs;
    char **args;
    size_t *arglens;
    int resp;
    int nparts, pending;
    char **partials;         /* serialized results, by partition */
    size_t *partial_lens;
    struct cm_buf error;     /* the first failure, as an error reply */
    bool starting;           /* mapreduce_cmd is still running on the home thread */
    bool partials_only;      /* reduce @partials: reply with the serialized results */
    bool packed;             /* @zpartials: the same, each packed with mr_pack */
    int nremote;             /* cluster: slots in remote (one per node of the map) */
    struct mr_remote *remote;
    bool has_owned;          /* cluster: the slots this node owns when the job began */
    unsigned char owned[CM_SLOTS / 8];
};

/* The home thread's request to one other node. */
struct mr_req {
    struct mr_job *job;
    int node;
};

struct mr_part {
    struct wcall wc;         /* first: the worker's list links it */
    struct mr_job *job;
    int index;
    bool ok;
    struct cm_buf result;
};

int mr_pack(struct cm_buf *out, const char *p, size_t n)
{
    if (n >= MR_PACK_MIN) {
        size_t bound = ZSTD_compressBound(n);
        char *z = cm_malloc(bound + 1);
        if (z == NULL)
            return CM_ENOMEM;
        z[0] = 'Z';
        /* Level 1, with the frame's content checksum: a damaged frame is refused. */
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        size_t zn = cc == NULL ? (size_t)-1 : 0;
        if (cc != NULL && !ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1)) &&
            !ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1)))
            zn = ZSTD_compress2(cc, z + 1, bound, p, n);
        ZSTD_freeCCtx(cc);
        int rc = 1;
        if (!ZSTD_isError(zn) && zn < n)
            rc = resp_add_bulk(out, z, zn + 1);
        cm_free(z);
        if (rc <= 0)
            return rc;
    }
    if (cm_buf_appendf(out, "$%zu\r\nR", n + 1) != 0 || cm_buf_append(out, p, n) != 0 ||
        cm_buf_append(out, "\r\n", 2) != 0)
        return CM_ENOMEM;
    return 0;
}

int mr_unpack(const char *p, size_t n, size_t max, struct cm_buf *out, struct cm_err *err)
{
    if (n >= 1 && p[0] == 'R') {
        if (n - 1 > max)
            return cm_err_set(err, CM_EPROTO, "partial result larger than %zu bytes", max);
        return cm_buf_append(out, p + 1, n - 1) == 0 ? 0 : cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    if (n < 1 || p[0] != 'Z')
        return cm_err_set(err, CM_EPROTO, "partial result with an unknown encoding");
    unsigned long long size = ZSTD_getFrameContentSize(p + 1, n - 1);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
        return cm_err_set(err, CM_EPROTO, "corrupt partial result (zstd)");
    if (size > max)
        return cm_err_set(err, CM_EPROTO, "partial result larger than %zu bytes", max);
    if (cm_buf_reserve(out, (size_t)size + 1) != 0)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    size_t got = ZSTD_decompress(out->p + out->len, (size_t)size, p + 1, n - 1);
    if (ZSTD_isError(got) || got != size)
        return cm_err_set(err, CM_EPROTO, "corrupt partial result (zstd)");
    out->len += got;
    return 0;
}

static void job_free(struct mr_job *j)
{
    for (int i = 0; i < j->nparts; i++)
        cm_free(j->partials[i]);
    for (int i = 0; i < j->nremote; i++) {
        for (int k = 0; k < j->remote[i].n; k++)
            cm_free(j->remote[i].partials[k]);
        cm_free(j->remote[i].partials);
        cm_free(j->remote[i].lens);
    }
    cm_free(j->remote);
    cm_free(j->partials);
    cm_free(j->partial_lens);
    for (int i = 0; i < j->nargs; i++)
        cm_free(j->args[i]);
    cm_free(j->args);
    cm_free(j->arglens);
    cm_free(j->map);
    cm_free(j->reduce);
    cm_buf_deinit(&j->error);
    cm_free(j);
}

/* The client went away: the job finishes alone. */
static void job_detach(struct conn_job *job)
{
    ((struct mr_job *)job)->c = NULL;
}

/* On the home thread: every partition has answered. */
static void finish(struct mr_job *j)
{
    struct conn *c = j->c;
    if (c == NULL) {
        job_free(j);
        return;
    }
    c->job = NULL;
    if (j->error.len > 0) {
        bool starting = j->starting;
        cm_buf_append(&c->out, j->error.p, j->error.len);
        job_free(j);
        if (!starting)
            conn_serve(c);
        return;
    }
    if (j->partials_only) {
        size_t mark = c->out.len;
        int rc = resp_add_array(&c->out, (size_t)j->nparts);
        for (int i = 0; i < j->nparts && rc == 0; i++)
            rc = j->packed ? mr_pack(&c->out, j->partials[i], j->partial_lens[i])
                           : resp_add_bulk(&c->out, j->partials[i], j->partial_lens[i]);
        if (rc != 0) {
            c->out.len = mark;
            resp_add_error(&c->out, "OOM out of memory sending partial results");
        }
        bool starting = j->starting;
        job_free(j);
        if (!starting)
            conn_serve(c);
        return;
    }
    /* Every partial result in order: this node's, then each other node's. */
    int total = j->nparts;
    for (int i = 0; i < j->nremote; i++)
        total += j->remote[i].n;
    const char **all = cm_malloc((size_t)total * sizeof(char *) + 1);
    size_t *lens = cm_malloc((size_t)total * sizeof(size_t) + 1);
    struct udf_call *call = NULL;
    if (all != NULL && lens != NULL) {
        int k = 0;
        for (int i = 0; i < j->nparts; i++, k++) {
            all[k] = j->partials[i];
            lens[k] = j->partial_lens[i];
        }
        for (int i = 0; i < j->nremote; i++)
            for (int p = 0; p < j->remote[i].n; p++, k++) {
                all[k] = j->remote[i].partials[p];
                lens[k] = j->remote[i].lens[p];
            }
        struct udf_call_req req = {
            .kind = UDF_REDUCE,
            .name = j->reduce,
            .name_len = strlen(j->reduce),
            .nargs = j->nargs,
            .args = (const char **)j->args,
            .arglens = j->arglens,
            .resp = j->resp,
            .owner = c,
            .npartials = total,
            .partials = all,
            .partial_lens = lens,
        };
        call = udf_call_new(c->w->vm, &req, &c->out);
    } else {
        resp_add_error(&c->out, "OOM out of memory collecting partial results");
    }
    cm_free(all);
    cm_free(lens);
    bool starting = j->starting;
    job_free(j);
    if (call != NULL)
        conn_run_call(c, call);
    /* Finished inside MAPREDUCE's own command (one thread, fast maps): the caller,
     * process_input, goes on with the connection; serving it from here would run the
     * same frame again. */
    if (!starting)
        conn_serve(c);
}

/* On the home thread: a partition's result arrived. */
static void part_arrived(struct worker *w, void *arg)
{
    struct mr_part *p = arg;
    struct mr_job *j = p->job;
    if (p->ok) {
        j->partials[p->index] = cm_memdup(p->result.p ? p->result.p : "", p->result.len);
        j->partial_lens[p->index] = p->result.len;
        if (j->partials[p->index] == NULL && j->error.len == 0)
            resp_add_error(&j->error, "OOM out of memory collecting partial results");
    } else if (j->error.len == 0) {
        /* "-ERR why\r\n" -> "-ERR map partition i/n failed: ERR why\r\n" */
        const char *e = p->result.p ? p->result.p : "-ERR unknown\r\n";
        size_t n = p->result.len >= 3 ? p->result.len - 3 : 0;
        resp_add_errorf(&j->error, "ERR map partition %d/%d failed: %.*s", p->index + 1,
                        j->nparts, (int)n, e + 1);
    }
    cm_buf_deinit(&p->result);
    cm_free(p);
    if (--j->pending == 0)
        finish(j);
}

/* On the home thread: another node's partial results (an array of strings) or why
 * they are missing. */
static void remote_done(struct worker *w, void *ud, struct resp_value *r, const char *error)
{
    struct mr_req *q = ud;
    struct mr_job *j = q->job;
    struct mr_remote *rm = &j->remote[q->node];
    if (j->error.len == 0) {
        if (error != NULL) {
            resp_add_errorf(&j->error, "ERR map on node %s", error);
        } else if (r->type == RESP_T_ERROR) {
            resp_add_errorf(&j->error, "ERR map on another node failed: %s", r->str);
        } else if (r->type != RESP_T_ARRAY) {
            resp_add_errorf(&j->error, "ERR map on another node: unexpected %s reply",
                            resp_type_name(r->type));
        } else {
            rm->partials = cm_calloc(r->elements + 1, sizeof(char *));
            rm->lens = cm_calloc(r->elements + 1, sizeof(size_t));
            bool ok = rm->partials != NULL && rm->lens != NULL;
            struct cm_err err = {0};
            size_t max = (size_t)NET_CFG(w->srv->cfg, max_bulk);
            for (size_t i = 0; ok && i < r->elements; i++) {
                const struct resp_value *e = r->element[i];
                struct cm_buf raw;
                cm_buf_init(&raw);
                ok = e->type == RESP_T_STRING;
                if (ok && mr_unpack(e->str, e->len, max, &raw, &err) != 0) {
                    cm_buf_deinit(&raw);
                    ok = false;
                } else if (ok) { /* take the buffer */
                    rm->partials[i] = raw.p != NULL ? raw.p : cm_calloc(1, 1);
                    rm->lens[i] = raw.len;
                    ok = rm->partials[i] != NULL;
                    rm->n++;
                }
            }
            if (!ok && err.code != 0)
                resp_add_errorf(&j->error, "ERR map on another node: %s", err.msg);
            else if (!ok)
                resp_add_error(&j->error, rm->partials == NULL || rm->lens == NULL
                                              ? "OOM out of memory collecting partial results"
                                              : "ERR map on another node: malformed reply");
        }
    }
    resp_value_free(r);
    cm_free(q);
    if (--j->pending == 0)
        finish(j);
}

/* On the home thread, cluster mode: asks every other node of the map for its
 * partial results. Counts the requests sent in j->pending. */
static void fan_out(struct server *s, struct worker *home, struct mr_job *j)
{
    const struct clu_map *m = clu_map_get(s->cluster);
    int self = clu_map_self(s->cluster, m);
    if (m->nnodes <= 1 || (j->remote = cm_calloc((size_t)m->nnodes, sizeof(*j->remote))) == NULL) {
        if (m->nnodes > 1)
            resp_add_error(&j->error, "OOM out of memory starting MAPREDUCE");
        return;
    }
    j->nremote = m->nnodes;
    int argc = j->nargs + 3;
    const char **argv = cm_malloc((size_t)argc * sizeof(char *));
    size_t *argvlen = cm_malloc((size_t)argc * sizeof(size_t));
    if (argv == NULL || argvlen == NULL) {
        resp_add_error(&j->error, "OOM out of memory starting MAPREDUCE");
        goto out;
    }
    argv[0] = "MAPREDUCE";
    argvlen[0] = 9;
    argv[1] = j->map;
    argvlen[1] = strlen(j->map);
    argv[2] = "@zpartials";
    argvlen[2] = 10;
    for (int i = 0; i < j->nargs; i++) {
        argv[3 + i] = j->args[i];
        argvlen[3 + i] = j->arglens[i];
    }
    char pass[sizeof(s->cfg->requirepass)];
    net_config_password(s->cfg, pass, sizeof(pass));
    for (int i = 0; i < m->nnodes && j->error.len == 0; i++) {
        if (i == self)
            continue;
        struct mr_req *q = cm_calloc(1, sizeof(*q));
        struct cm_err err = {0};
        if (q == NULL) {
            resp_add_error(&j->error, "OOM out of memory starting MAPREDUCE");
            break;
        }
        q->job = j;
        q->node = i;
        if (bus_call(home, m->nodes[i].host, m->nodes[i].port, BUS_LANE_BULK, pass,
                     argc, argv, argvlen, remote_done, q, &err) != 0) {
            cm_free(q);
            resp_add_errorf(&j->error, "ERR map on node %s", err.msg);
            break;
        }
        j->pending++;
    }
out:
    cm_free(argv);
    cm_free(argvlen);
}

/* On a partition's thread: its call finished. */
static void part_done(struct worker *w, struct wcall *wc)
{
    struct mr_part *p = (struct mr_part *)wc;
    const struct cm_buf *r = udf_call_reply(wc->call);
    p->ok = udf_call_ok(wc->call);
    /* What this partition wrote or read is persisted here, before the job can reply
     * (conn.c persist_batch); a failure fails the partition only if it wrote. */
    struct cm_err err = {0};
    if (eng_persist(w->srv->eng, &err) != 0 && udf_call_wrote(wc->call) && p->ok) {
        p->ok = false;
        cm_buf_init(&p->result);
        resp_add_errorf(&p->result, "ERR write-ahead log write failed: %s", err.msg);
        udf_call_free(wc->call);
        wc->call = NULL;
        goto report;
    }
    cm_buf_append(&p->result, r->p, r->len);
    udf_call_free(wc->call);
    wc->call = NULL;
report:
    if (p->job->home == w)
        part_arrived(w, p);
    else if (server_post(p->job->home, part_arrived, p) != 0)
        cm_log(CM_LOG_WARNING, "MAPREDUCE: cannot report a partition (out of memory)");
}

/* On a partition's thread: start its map call. */
static void part_start(struct worker *w, void *arg)
{
    struct mr_part *p = arg;
    struct mr_job *j = p->job;
    int n = j->nparts;
    struct udf_call_req req = {
        .kind = UDF_MAP,
        .name = j->map,
        .name_len = strlen(j->map),
        .nargs = j->nargs,
        .args = (const char **)j->args,
        .arglens = j->arglens,
        .resp = j->resp,
        .owner = NULL,
        .part = {p->index, n, (unsigned)(p->index * CM_SLOTS / n),
                 (unsigned)((p->index + 1) * CM_SLOTS / n - 1), j->has_owned ? j->owned : NULL},
    };
    p->wc.done = part_done;
    p->wc.call = udf_call_new(w->vm, &req, &p->result);
    if (p->wc.call == NULL) {
        p->ok = false;
        if (j->home == w)
            part_arrived(w, p);
        else
            server_post(j->home, part_arrived, p);
        return;
    }
    worker_run_call(w, &p->wc);
}

static void mapreduce_cmd(struct cmd_ctx *x)
{
    struct server *s = x->srv;
    struct worker *home = x->c->w;
    if (udf_function_flags(home->vm, x->argv[1], x->argvlen[1]) < 0) {
        reply_errf(x, "ERR Function not found: %.*s", (int)x->argvlen[1], x->argv[1]);
        return;
    }
    bool packed = cm_streq_ci(x->argv[2], x->argvlen[2], "@zpartials");
    bool partials_only = packed || cm_streq_ci(x->argv[2], x->argvlen[2], "@partials");
    if (x->argvlen[2] == 0 ||
        (x->argv[2][0] != '@' && udf_function_flags(home->vm, x->argv[2], x->argvlen[2]) < 0)) {
        reply_errf(x, "ERR Function not found: %.*s", (int)x->argvlen[2], x->argv[2]);
        return;
    }
    struct mr_job *j = cm_calloc(1, sizeof(*j));
    if (j == NULL)
        goto oom;
    j->home = home;
    j->c = x->c;
    j->resp = x->resp;
    j->nparts = s->nworkers;
    j->pending = j->nparts;
    j->map = cm_memdup(x->argv[1], x->argvlen[1] + 1);
    j->reduce = cm_memdup(x->argv[2], x->argvlen[2] + 1);
    j->nargs = (int)x->argc - 3;
    j->args = cm_calloc((size_t)j->nargs + 1, sizeof(char *));
    j->arglens = cm_calloc((size_t)j->nargs + 1, sizeof(size_t));
    j->partials = cm_calloc((size_t)j->nparts, sizeof(char *));
    j->partial_lens = cm_calloc((size_t)j->nparts, sizeof(size_t));
    if (j->map == NULL || j->reduce == NULL || j->args == NULL || j->arglens == NULL ||
        j->partials == NULL || j->partial_lens == NULL)
        goto oom;
    j->map[x->argvlen[1]] = '\0';
    j->reduce[x->argvlen[2]] = '\0';
    for (int i = 0; i < j->nargs; i++) {
        j->args[i] = cm_memdup(x->argv[3 + i], x->argvlen[3 + i]);
        j->arglens[i] = x->argvlen[3 + i];
        if (j->args[i] == NULL && j->arglens[i] > 0)
            goto oom;
    }
    cm_buf_init(&j->error);
    struct mr_part *parts[256];
    int n = j->nparts < 256 ? j->nparts : 256;
    j->nparts = j->pending = n;
    for (int i = 0; i < n; i++) {
        parts[i] = cm_calloc(1, sizeof(struct mr_part));
        if (parts[i] == NULL) {
            while (i-- > 0)
                cm_free(parts[i]);
            goto oom;
        }
        parts[i]->job = j;
        parts[i]->index = i;
        cm_buf_init(&parts[i]->result);
    }
    if (s->cluster != NULL) {
        const struct clu_map *m = clu_map_get(s->cluster);
        int self = clu_map_self(s->cluster, m);
        for (unsigned slot = 0; slot < CM_SLOTS; slot++)
            if (self >= 0 && m->owner[slot] == self)
                j->owned[slot / 8] |= (unsigned char)(1u << (slot % 8));
        j->has_owned = true;
    }
    j->base.detach = job_detach;
    x->c->job = &j->base; /* the connection waits for the job */
    j->starting = true;
    j->partials_only = partials_only;
    j->packed = packed;
    if (s->cluster != NULL && !partials_only)
        fan_out(s, home, j); /* before the local partitions, which may finish at once */
    for (int i = 0; i < n; i++) {
        struct worker *w = s->workers[(home->id + i) % s->nworkers];
        if (w == home)
            part_start(w, parts[i]);
        else if (server_post(w, part_start, parts[i]) != 0)
            part_start(home, parts[i]); /* cannot post: run it here */
        if (x->c->job != &j->base)
            return; /* every partition ran here and the job is over (j is freed) */
    }
    j->starting = false;
    return;
oom:
    if (j != NULL) {
        cm_buf_init(&j->error);
        j->nparts = 0;
        job_free(j);
    }
    reply_err(x, "OOM out of memory starting MAPREDUCE");
}

const struct cmd_def cmd_mapreduce_table[] = {
    {"mapreduce", mapreduce_cmd, -3, CMD_NOSCRIPT, 0, 0, 0, "scripting"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL},
};
