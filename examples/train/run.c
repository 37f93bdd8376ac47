/* run.c - featurization and training. Store mode ships code to data: each epoch is one
 * MAPREDUCE train_grad train_step (train.lua), so only the command and a few numbers
 * cross the link. Client mode ships data to code: each epoch pulls every feature
 * block with SCAN + MGET (pipelined) and computes the same gradient here (model.c).
 * Both start from zero weights, see the same records and take the same steps; per
 * epoch they report time, the bytes the client sent and received (counted from the
 * RESP frames) and the server's INFO byte counters, loss and accuracy. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train.h"

#define MAX_EPOCHS 10000

/* ---- The Lua library and the server's UDF limits --------------------------------------- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* train.lua: --lib, $EDDY_TRAIN_LUA, <binary>/../examples/train/train.lua, then
 * ./examples/train/train.lua. */
static char *find_lib(const struct tr_opts *o, size_t *len, char *path, size_t cap)
{
    const char *cands[4] = {o->lib, getenv("EDDY_TRAIN_LUA"), NULL, "examples/train/train.lua"};
    char exe[PATH_MAX], rel[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(rel, sizeof(rel), "%s/../examples/train/train.lua", exe);
            cands[2] = rel;
        }
    }
    for (int i = 0; i < 4; i++) {
        if (cands[i] == NULL || *cands[i] == '\0')
            continue;
        char *src = read_all(cands[i], len);
        if (src != NULL) {
            snprintf(path, cap, "%s", cands[i]);
            return src;
        }
        if (i < 2) { /* named explicitly: say so */
            fprintf(stderr, "eddy-train: cannot read %s: %s\n", cands[i], strerror(errno));
            return NULL;
        }
    }
    fprintf(stderr, "eddy-train: cannot find train.lua (give --lib PATH)\n");
    return NULL;
}

static int load_lib(struct tr_conn *c, const struct tr_opts *o)
{
    size_t len;
    char path[PATH_MAX];
    char *src = find_lib(o, &len, path, sizeof(path));
    if (src == NULL)
        return -1;
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", src};
    size_t lens[] = {8, 4, 7, len};
    struct eddy_reply *r = tr_cmd(c, 4, argv, lens);
    free(src);
    int rc = r != NULL && r->type == EDDY_REPLY_STRING ? 0 : -1;
    if (rc != 0)
        tr_report(c, path, r);
    eddy_reply_free(r);
    return rc;
}

/* A map over a large data set runs longer than the default udf-time-limit (5 s), and
 * softmax weights with their gradients need more than 64 MB of Lua memory: raise both
 * for the run, and restore them afterwards. */
struct limits {
    char time[32], mem[32];
    bool raised_time, raised_mem;
};

static int config_get(struct tr_conn *c, const char *name, char *out, size_t cap)
{
    const char *argv[] = {"CONFIG", "GET", name};
    struct eddy_reply *r = tr_cmd(c, 3, argv, NULL);
    int rc = -1;
    if (r != NULL && r->type == EDDY_REPLY_ARRAY && r->elements == 2 && r->element[1]->str) {
        snprintf(out, cap, "%s", r->element[1]->str);
        rc = 0;
    } else {
        tr_report(c, "CONFIG GET", r);
    }
    eddy_reply_free(r);
    return rc;
}

static int config_set(struct tr_conn *c, const char *name, const char *value)
{
    const char *argv[] = {"CONFIG", "SET", name, value};
    struct eddy_reply *r = tr_cmd(c, 4, argv, NULL);
    int rc = r != NULL && r->type == EDDY_REPLY_STATUS ? 0 : -1;
    if (rc != 0)
        tr_report(c, "CONFIG SET", r);
    eddy_reply_free(r);
    return rc;
}

/* Raises the limits of one node (the current one), remembering what to restore. */
static int limits_raise_node(struct tr_conn *c, struct limits *l)
{
    memset(l, 0, sizeof(*l));
    if (config_get(c, "udf-time-limit", l->time, sizeof(l->time)) != 0 ||
        config_get(c, "udf-memory-limit", l->mem, sizeof(l->mem)) != 0)
        return -1;
    if (atoll(l->time) < 3600000) {
        if (config_set(c, "udf-time-limit", "3600000") != 0)
            return -1;
        l->raised_time = true;
    }
    if (atoll(l->mem) < 1024LL << 20) {
        if (config_set(c, "udf-memory-limit", "1073741824") != 0)
            return -1;
        l->raised_mem = true;
    }
    return 0;
}

/* On every node (the maps of a cluster run on all of them); l holds TR_MAX_NODES. */
static int limits_raise(struct tr_conn *c, struct limits *l)
{
    int rc = 0;
    for (int i = 0; i < tr_nodes(c) && rc == 0; i++) {
        tr_use_node(c, i);
        rc = limits_raise_node(c, &l[i]);
    }
    tr_use_node(c, 0);
    return rc;
}

static void limits_restore(struct tr_conn *c, const struct limits *l)
{
    for (int i = 0; i < tr_nodes(c); i++) {
        tr_use_node(c, i);
        if (l[i].raised_time)
            config_set(c, "udf-time-limit", l[i].time);
        if (l[i].raised_mem)
            config_set(c, "udf-memory-limit", l[i].mem);
    }
    tr_use_node(c, 0);
}

/* ---- Server counters --------------------------------------------------------------------- */

struct netstat {
    unsigned long long in, out;
};

static unsigned long long info_field(const char *text, const char *field)
{
    const char *p = strstr(text, field);
    return p ? strtoull(p + strlen(field), NULL, 10) : 0;
}

/* Reads INFO stats without counting it in the client's figures. The server counts
 * input when it reads it and output when it writes it, so the difference of two
 * snapshots includes the second INFO request and the first INFO reply: *req and *rep
 * receive their sizes so the caller can take them out. */
static int netstat_get(struct tr_conn *c, struct netstat *ns, size_t *req, size_t *rep)
{
    unsigned long long s = c->sent, rv = c->recv;
    int rc = 0;
    ns->in = ns->out = 0;
    *req = *rep = 0;
    for (int i = 0; i < tr_nodes(c) && rc == 0; i++) { /* a cluster: the sum of its nodes */
        tr_use_node(c, i);
        unsigned long long s1 = c->sent, r1 = c->recv;
        const char *argv[] = {"INFO", "stats"};
        struct eddy_reply *r = tr_cmd(c, 2, argv, NULL);
        rc = -1;
        if (r != NULL && r->str != NULL && r->type != EDDY_REPLY_ERROR) {
            ns->in += info_field(r->str, "total_net_input_bytes:");
            ns->out += info_field(r->str, "total_net_output_bytes:");
            *req += (size_t)(c->sent - s1);
            *rep += (size_t)(c->recv - r1);
            rc = 0;
        } else {
            tr_report(c, "INFO stats", r);
        }
        eddy_reply_free(r);
    }
    tr_use_node(c, 0);
    c->sent = s;
    c->recv = rv;
    return rc;
}

/* ---- Featurize ---------------------------------------------------------------------------- */

static int need_meta(struct tr_conn *c, struct tr_meta *m)
{
    int rc = tr_meta_get(c, m);
    if (rc == 1)
        fprintf(stderr, "eddy-train: no data set in the store (train:meta is missing): run "
                        "load-uci or load-synth first\n");
    return rc == 0 ? 0 : -1;
}

static long long int_of(const struct eddy_reply *r)
{
    if (r->type == EDDY_REPLY_INTEGER)
        return r->integer;
    return r->str ? atoll(r->str) : 0;
}

static double num_of(const struct eddy_reply *r)
{
    if (r->type == EDDY_REPLY_INTEGER)
        return (double)r->integer;
    if (r->type == EDDY_REPLY_DOUBLE)
        return r->dval;
    return r->str ? strtod(r->str, NULL) : 0;
}

int tr_featurize(const struct tr_opts *o)
{
    struct tr_conn c;
    struct tr_meta m;
    struct limits lim[TR_MAX_NODES] = {0};
    int rc = 1;
    if (tr_conn_open(&c, o) != 0)
        return 1;
    if (need_meta(&c, &m) != 0 || load_lib(&c, o) != 0 || limits_raise(&c, lim) != 0)
        goto out;
    /* Default D: 16 slots per review, a power of two in 2^12..2^18, so a small data set
     * does not carry (and in store mode read, add up and write back every epoch) a
     * model of 2^18 weights that its few thousand distinct features cannot use. */
    int bits = o->bits;
    if (bits == 0)
        for (bits = 12; bits < 18 && (1LL << bits) < 16 * m.reviews; bits++)
            ;
    char D[32], K[8], B[16];
    snprintf(D, sizeof(D), "%lld", 1LL << bits);
    snprintf(K, sizeof(K), "%d", m.classes);
    snprintf(B, sizeof(B), "%d", o->block);
    printf("featurize: MAPREDUCE train_featurize @sum %s %s %s (hashing trick, D = 2^%d, "
           "unigrams + bigrams + bias, blocks of <= %s reviews; %s)\n", D, K, B, bits, B,
           m.source);
    struct netstat n0, n1;
    size_t req, rep;
    netstat_get(&c, &n0, &req, &rep);
    unsigned long long s0 = c.sent, r0 = c.recv;
    double t0 = tr_now();
    const char *argv[] = {"MAPREDUCE", "train_featurize", "@sum", D, K, B};
    struct eddy_reply *r = tr_cmd(&c, 6, argv, NULL);
    double el = tr_now() - t0;
    if (r == NULL || r->type != EDDY_REPLY_ARRAY || r->elements != 5) {
        tr_report(&c, "MAPREDUCE train_featurize", r);
        eddy_reply_free(r);
        goto out;
    }
    netstat_get(&c, &n1, &req, &rep);
    long long n = int_of(r->element[0]), w = int_of(r->element[1]);
    long long skip = int_of(r->element[2]), nnz = int_of(r->element[3]);
    long long blocks = int_of(r->element[4]);
    eddy_reply_free(r);
    char a[32], b[32], x[32], y[32];
    printf("featurized %lld of %lld reviews (%lld skipped: bad label or key) in %.2f s, "
           "%.1f features each, %lld blocks;\nclient sent %s, received %s; server in %s, "
           "out %s\n",
           w, n, skip, el, w ? (double)nnz / (double)w : 0, blocks, tr_bytes(c.sent - s0, a, 32),
           tr_bytes(c.recv - r0, b, 32), tr_bytes(n1.in - n0.in - req, x, 32),
           tr_bytes(n1.out - n0.out - rep, y, 32));
    m.D = 1LL << bits;
    if (tr_meta_set(&c, &m) == 0)
        rc = 0;
out:
    limits_restore(&c, lim);
    tr_conn_close(&c);
    return rc;
}

/* ---- Training ------------------------------------------------------------------------------ */

struct epoch {
    double time, loss, train_acc, test_acc, gnorm;
    unsigned long long csent, crecv, sin, sout;
};

struct pass_stats {
    long long ntr, nte, corr, tcorr;
    double loss, tloss, gnorm;
};

struct run {
    const struct tr_opts *o;
    struct tr_conn *c;
    struct tr_meta meta;
    char D[32], K[8], lr[32], l2[32], mu[32];
    struct epoch *ep[2]; /* [0] store, [1] client */
    int nep[2];
    struct pass_stats final[2];
    double final_time[2];
    bool ran[2];
};

static void fill_epoch(struct epoch *e, const struct pass_stats *p)
{
    e->loss = p->ntr ? p->loss / (double)p->ntr : 0;
    e->train_acc = p->ntr ? (double)p->corr / (double)p->ntr : 0;
    e->test_acc = p->nte ? (double)p->tcorr / (double)p->nte : 0;
    e->gnorm = p->gnorm;
}

/* One MAPREDUCE epoch (lr "0": an evaluation pass that changes nothing). */
static int store_pass(struct run *R, const char *lr, struct pass_stats *p)
{
    const char *argv[] = {"MAPREDUCE", "train_grad", "train_step", R->D, R->K, lr, R->l2, R->mu};
    struct eddy_reply *r = tr_cmd(R->c, 8, argv, NULL);
    if (r == NULL || r->type != EDDY_REPLY_ARRAY || r->elements != 7) {
        tr_report(R->c, "MAPREDUCE train_grad train_step", r);
        eddy_reply_free(r);
        return -1;
    }
    p->ntr = int_of(r->element[0]);
    p->loss = num_of(r->element[1]);
    p->corr = int_of(r->element[2]);
    p->nte = int_of(r->element[3]);
    p->tloss = num_of(r->element[4]);
    p->tcorr = int_of(r->element[5]);
    p->gnorm = num_of(r->element[6]);
    eddy_reply_free(r);
    return 0;
}

static int process_value(struct tr_model *m, const struct eddy_reply *v)
{
    struct tr_block b;
    if (v->type == EDDY_REPLY_NIL)
        return 0; /* deleted between SCAN and MGET */
    if (v->type != EDDY_REPLY_STRING || tr_block_parse(v->str, v->len, m->dim, &b) != 0 ||
        tr_model_add(m, &b) != 0) {
        fprintf(stderr, "eddy-train: a feature block is malformed (featurize again with "
                        "the same D)\n");
        return -1;
    }
    return 0;
}

/* Asks for the blocks of a SCAN reply: one MGET, or against a cluster (where one
 * command's keys must share a slot) one GET per block, pipelined. */
static int append_fetch(struct run *R, const struct eddy_reply *keys)
{
    size_t n = keys->elements;
    if (tr_nodes(R->c) > 1) {
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const char *argv[] = {"GET", keys->element[i]->str};
            const size_t lens[] = {3, keys->element[i]->len};
            rc = tr_append(R->c, 2, argv, lens);
        }
        return rc;
    }
    const char **argv = malloc((n + 1) * sizeof(char *));
    size_t *lens = malloc((n + 1) * sizeof(size_t));
    int rc = -1;
    if (argv != NULL && lens != NULL) {
        argv[0] = "MGET";
        lens[0] = 4;
        for (size_t i = 0; i < n; i++) {
            argv[i + 1] = keys->element[i]->str;
            lens[i + 1] = keys->element[i]->len;
        }
        rc = tr_append(R->c, (int)n + 1, argv, lens);
    }
    free(argv);
    free(lens);
    return rc;
}

/* Reads what append_fetch asked for (n blocks) into the model. */
static int read_fetch(struct run *R, struct tr_model *m, size_t n)
{
    bool mget = tr_nodes(R->c) == 1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < (mget ? 1 : n); i++) {
        struct eddy_reply *r = tr_reply(R->c);
        if (r == NULL || (mget && r->type != EDDY_REPLY_ARRAY) || r->type == EDDY_REPLY_ERROR) {
            tr_report(R->c, mget ? "MGET" : "GET", r);
            rc = -1;
        } else if (mget) {
            for (size_t k = 0; rc == 0 && k < r->elements; k++)
                rc = process_value(m, r->element[k]);
        } else {
            rc = process_value(m, r);
        }
        eddy_reply_free(r);
    }
    return rc;
}

/* One pass of the client mode over every feature block of one node: SCAN for the next
 * keys and the fetch of the previous ones travel in the same round trip. */
static int client_pass_node(struct run *R, struct tr_model *m)
{
    char cursor[32] = "0", count[16];
    snprintf(count, sizeof(count), "%d", R->o->batch);
    struct eddy_reply *pending = NULL; /* the SCAN reply whose keys are to be fetched */
    bool done = false;
    int rc = 0;
    while (rc == 0 && (!done || pending != NULL)) {
        if (!done) {
            const char *argv[] = {"SCAN", cursor, "MATCH", "fb:*", "COUNT", count};
            rc = tr_append(R->c, 6, argv, NULL);
        }
        if (rc == 0 && pending != NULL)
            rc = append_fetch(R, pending->element[1]);
        struct eddy_reply *next = NULL;
        if (rc == 0 && !done) {
            next = tr_reply(R->c);
            if (next == NULL || next->type != EDDY_REPLY_ARRAY || next->elements != 2) {
                tr_report(R->c, "SCAN", next);
                rc = -1;
            } else {
                snprintf(cursor, sizeof(cursor), "%s", next->element[0]->str);
                done = strcmp(cursor, "0") == 0;
                if (next->element[1]->elements == 0) {
                    eddy_reply_free(next);
                    next = NULL;
                }
            }
        }
        if (rc == 0 && pending != NULL)
            rc = read_fetch(R, m, pending->element[1]->elements);
        eddy_reply_free(pending);
        pending = next;
        if (rc != 0) {
            eddy_reply_free(pending);
            pending = NULL;
        }
    }
    return rc;
}

/* One pass of the client mode: every node's blocks (one node against a single server). */
static int client_pass(struct run *R, struct tr_model *m)
{
    int rc = 0;
    tr_model_begin(m);
    for (int i = 0; rc == 0 && i < tr_nodes(R->c); i++) {
        tr_use_node(R->c, i);
        rc = client_pass_node(R, m);
    }
    tr_use_node(R->c, 0);
    return rc;
}

static void model_stats(const struct tr_model *m, struct pass_stats *p)
{
    p->ntr = m->ntr;
    p->nte = m->nte;
    p->corr = m->corr;
    p->tcorr = m->tcorr;
    p->loss = m->loss;
    p->tloss = m->tloss;
    p->gnorm = 0;
}

static const char *mode_name[2] = {"store", "client"};

static void print_header(void)
{
    printf("%-6s %5s %9s %12s %12s %12s %12s %9s %9s %9s\n", "mode", "epoch", "time(s)",
           "client sent", "client recv", "server in", "server out", "loss", "train acc",
           "test acc");
}

static void print_epoch(int mode, int i, const struct epoch *e)
{
    char a[32], b[32], c[32], d[32];
    printf("%-6s %5d %9.3f %12s %12s %12s %12s %9.5f %9.4f %9.4f\n", mode_name[mode], i + 1,
           e->time, tr_bytes(e->csent, a, 32), tr_bytes(e->crecv, b, 32), tr_bytes(e->sin, c, 32),
           tr_bytes(e->sout, d, 32), e->loss, e->train_acc, e->test_acc);
    fflush(stdout);
}

/* Runs the epochs of one mode (0 store, 1 client), then an evaluation of the final
 * weights that is not counted in the epochs. */
static int run_mode(struct run *R, int mode)
{
    struct tr_conn *c = R->c;
    struct tr_model m = {0};
    const struct tr_opts *o = R->o;
    int rc = 0;
    if (mode == 0) {
        const char *argv[] = {"FCALL", "train_reset", "0"};
        struct eddy_reply *r = tr_cmd(c, 3, argv, NULL);
        if (r == NULL || r->type != EDDY_REPLY_STATUS) {
            tr_report(c, "FCALL train_reset", r);
            rc = -1;
        }
        eddy_reply_free(r);
    } else if (tr_model_init(&m, R->meta.classes, (size_t)R->meta.D + 1) != 0) {
        fprintf(stderr, "eddy-train: out of memory for the model\n");
        rc = -1;
    }
    R->ran[mode] = true;
    for (int i = 0; rc == 0 && i < o->epochs; i++) {
        struct epoch *e = &R->ep[mode][i];
        struct netstat n0, n1;
        size_t req0, rep0, req1, rep1;
        struct pass_stats p;
        if (netstat_get(c, &n0, &req0, &rep0) != 0) {
            rc = -1;
            break;
        }
        unsigned long long s0 = c->sent, r0 = c->recv;
        double t0 = tr_now();
        if (mode == 0) {
            rc = store_pass(R, R->lr, &p);
        } else {
            rc = client_pass(R, &m);
            model_stats(&m, &p);
            p.gnorm = tr_model_step(&m, o->lr, o->l2, o->momentum);
        }
        e->time = tr_now() - t0;
        e->csent = c->sent - s0;
        e->crecv = c->recv - r0;
        if (rc != 0 || netstat_get(c, &n1, &req1, &rep1) != 0) {
            rc = -1;
            break;
        }
        e->sin = n1.in - n0.in - req1;
        e->sout = n1.out - n0.out - rep0;
        fill_epoch(e, &p);
        R->nep[mode] = i + 1;
        print_epoch(mode, i, e);
    }
    if (rc == 0) {
        double t0 = tr_now();
        if (mode == 0) {
            rc = store_pass(R, "0", &R->final[0]);
        } else {
            rc = client_pass(R, &m);
            model_stats(&m, &R->final[1]);
        }
        R->final_time[mode] = tr_now() - t0;
    }
    if (rc == 0 && mode == 1) {
        /* Leave the client's weights where a test can compare them with the store's. */
        size_t len;
        char *w = tr_model_encode(&m, &len);
        const char *argv[] = {"SET", "_train:{model}:client", w};
        size_t lens[] = {3, 21, len};
        unsigned long long s0 = c->sent, r0 = c->recv; /* not part of the figures */
        struct eddy_reply *r = w ? tr_cmd(c, 3, argv, lens) : NULL;
        c->sent = s0;
        c->recv = r0;
        if (r == NULL || r->type != EDDY_REPLY_STATUS) {
            tr_report(c, "SET _train:{model}:client", r);
            rc = -1;
        }
        eddy_reply_free(r);
        free(w);
    }
    tr_model_deinit(&m);
    return rc;
}

static double mean_of(const struct epoch *e, int n, size_t off)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += *(const double *)((const char *)&e[i] + off);
    return n ? s / n : 0;
}

static double mean_bytes(const struct epoch *e, int n, bool client)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += client ? (double)(e[i].csent + e[i].crecv) : (double)(e[i].sin + e[i].sout);
    return n ? s / n : 0;
}

static void print_summary(const struct run *R)
{
    char a[32], b[32];
    printf("\nfinal weights (an evaluation pass, not timed in the epochs):\n");
    for (int m = 0; m < 2; m++) {
        if (!R->ran[m] || R->nep[m] == 0)
            continue;
        const struct pass_stats *p = &R->final[m];
        printf("  %-6s loss %.6f  train acc %.4f  test acc %.4f (%lld held out)  [%.3f s]\n",
               mode_name[m], p->ntr ? p->loss / (double)p->ntr : 0,
               p->ntr ? (double)p->corr / (double)p->ntr : 0,
               p->nte ? (double)p->tcorr / (double)p->nte : 0, p->nte, R->final_time[m]);
    }
    if (R->meta.true_test_acc >= 0)
        printf("  true model (synthetic data): test acc %.4f\n", R->meta.true_test_acc);
    if (!R->ran[0] || !R->ran[1] || R->nep[0] == 0 || R->nep[1] == 0)
        return;
    const struct epoch *s = R->ep[0], *c = R->ep[1];
    int ns = R->nep[0], nc = R->nep[1];
    double ts = mean_of(s, ns, offsetof(struct epoch, time));
    double tc = mean_of(c, nc, offsetof(struct epoch, time));
    double bs = mean_bytes(s, ns, true), bc = mean_bytes(c, nc, true);
    double ss = mean_bytes(s, ns, false), sc = mean_bytes(c, nc, false);
    printf("\nper epoch (mean)          %14s %14s %14s\n", "store", "client", "client/store");
    printf("  time                    %12.3f s %12.3f s %13.1fx\n", ts, tc, ts > 0 ? tc / ts : 0);
    if (ns > 1 && nc > 1) {
        /* The first epoch of a mode also reads the data set into the caches (the
         * store's block cache, the server's for the client's GETs): the others are the
         * steady state. */
        double ws = mean_of(s + 1, ns - 1, offsetof(struct epoch, time));
        double wc = mean_of(c + 1, nc - 1, offsetof(struct epoch, time));
        printf("  time, epochs 2..%-2d      %12.3f s %12.3f s %13.1fx\n", ns < nc ? ns : nc, ws, wc,
               ws > 0 ? wc / ws : 0);
    }
    printf("  client bytes (sent+recv)%14s %14s %13.0fx\n", tr_bytes((unsigned long long)bs, a, 32),
           tr_bytes((unsigned long long)bc, b, 32), bs > 0 ? bc / bs : 0);
    printf("  server bytes (in+out)   %14s %14s %13.0fx\n", tr_bytes((unsigned long long)ss, a, 32),
           tr_bytes((unsigned long long)sc, b, 32), ss > 0 ? sc / ss : 0);
}

static int write_csv(const struct run *R, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "eddy-train: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "mode,epoch,time_s,client_sent,client_recv,server_in,server_out,loss,train_acc,"
               "test_acc,grad_norm\n");
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < R->nep[m]; i++) {
            const struct epoch *e = &R->ep[m][i];
            fprintf(f, "%s,%d,%.6f,%llu,%llu,%llu,%llu,%.17g,%.6f,%.6f,%.17g\n", mode_name[m],
                    i + 1, e->time, e->csent, e->crecv, e->sin, e->sout, e->loss, e->train_acc,
                    e->test_acc, e->gnorm);
        }
    for (int m = 0; m < 2; m++)
        if (R->ran[m] && R->nep[m] > 0) {
            const struct pass_stats *p = &R->final[m];
            fprintf(f, "%s,final,%.6f,0,0,0,0,%.17g,%.6f,%.6f,0\n", mode_name[m],
                    R->final_time[m], p->ntr ? p->loss / (double)p->ntr : 0,
                    p->ntr ? (double)p->corr / (double)p->ntr : 0,
                    p->nte ? (double)p->tcorr / (double)p->nte : 0);
        }
    return fclose(f) == 0 ? 0 : -1;
}

static int write_plots(const struct run *R, const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "eddy-train: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    static const char *colors[2] = {"#1f77b4", "#d62728"};
    double *y[2][2] = {{NULL, NULL}, {NULL, NULL}};
    struct tr_series ts[2], as[2];
    int n = 0, rc = 0;
    for (int m = 0; m < 2; m++) {
        if (R->nep[m] == 0)
            continue;
        y[m][0] = calloc((size_t)R->nep[m], sizeof(double));
        y[m][1] = calloc((size_t)R->nep[m], sizeof(double));
        if (y[m][0] == NULL || y[m][1] == NULL) {
            rc = -1;
            break;
        }
        for (int i = 0; i < R->nep[m]; i++) {
            y[m][0][i] = R->ep[m][i].time;
            y[m][1][i] = R->ep[m][i].test_acc;
        }
        ts[n] = (struct tr_series){mode_name[m], colors[m], y[m][0], R->nep[m]};
        as[n] = (struct tr_series){mode_name[m], colors[m], y[m][1], R->nep[m]};
        n++;
    }
    char p1[PATH_MAX], p2[PATH_MAX];
    snprintf(p1, sizeof(p1), "%s/time.svg", dir);
    snprintf(p2, sizeof(p2), "%s/accuracy.svg", dir);
    if (rc == 0 && (tr_plot_svg(p1, "Time per epoch", "seconds", ts, n) != 0 ||
                    tr_plot_svg(p2, "Held-out accuracy per epoch", "accuracy", as, n) != 0)) {
        fprintf(stderr, "eddy-train: cannot write the charts in %s: %s\n", dir, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        printf("charts: %s %s\n", p1, p2);
    for (int m = 0; m < 2; m++) {
        free(y[m][0]);
        free(y[m][1]);
    }
    return rc;
}

int tr_train(const struct tr_opts *o)
{
    struct tr_conn c;
    struct limits lim[TR_MAX_NODES] = {0};
    struct run R = {.o = o, .c = &c};
    int rc = 1;
    if (o->epochs < 1 || o->epochs > MAX_EPOCHS) {
        fprintf(stderr, "eddy-train: --epochs must be in 1..%d\n", MAX_EPOCHS);
        return 2;
    }
    if (tr_conn_open(&c, o) != 0)
        return 1;
    if (need_meta(&c, &R.meta) != 0)
        goto out;
    if (R.meta.D == 0) {
        fprintf(stderr, "eddy-train: the reviews are not featurized: run featurize first\n");
        goto out;
    }
    if (o->classes != 0 && o->classes != R.meta.classes) {
        fprintf(stderr, "eddy-train: the data set has %d classes (train:meta), not %d\n",
                R.meta.classes, o->classes);
        goto out;
    }
    if (load_lib(&c, o) != 0 || limits_raise(&c, lim) != 0)
        goto out;
    snprintf(R.D, sizeof(R.D), "%lld", R.meta.D);
    snprintf(R.K, sizeof(R.K), "%d", R.meta.classes);
    snprintf(R.lr, sizeof(R.lr), "%.17g", o->lr);
    snprintf(R.l2, sizeof(R.l2), "%.17g", o->l2);
    snprintf(R.mu, sizeof(R.mu), "%.17g", o->momentum);
    for (int m = 0; m < 2; m++) {
        R.ep[m] = calloc((size_t)o->epochs, sizeof(struct epoch));
        if (R.ep[m] == NULL)
            goto out;
    }
    printf("train: %s regression, %d classes, D = %lld, %lld reviews (%s); %d epochs, lr %g, "
           "l2 %g, momentum %g\n",
           R.meta.classes == 2 ? "logistic" : "softmax", R.meta.classes, R.meta.D,
           R.meta.reviews, R.meta.source, o->epochs, o->lr, o->l2, o->momentum);
    printf("store = MAPREDUCE next to the data; client = SCAN+MGET of every feature block, "
           "gradient in the client\n");
    printf("loss and accuracies of each epoch are those of the weights it started with\n\n");
    print_header();
    rc = 0;
    if ((o->mode & TR_STORE) && run_mode(&R, 0) != 0)
        rc = 1;
    if (rc == 0 && (o->mode & TR_CLIENT) && run_mode(&R, 1) != 0)
        rc = 1;
    if (rc == 0)
        print_summary(&R);
    if (rc == 0 && o->csv && write_csv(&R, o->csv) != 0)
        rc = 1;
    if (rc == 0 && o->plot_dir && write_plots(&R, o->plot_dir) != 0)
        rc = 1;
out:
    limits_restore(&c, lim);
    tr_conn_close(&c);
    free(R.ep[0]);
    free(R.ep[1]);
    return rc;
}
