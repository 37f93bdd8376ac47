/* cluster_fn.c - FUNCTION LOAD, DELETE, FLUSH and RESTORE in cluster mode: every node
 * applies every change, in the one order the coordinator of the slot map gives them.
 *
 * A change sent to any node goes to the coordinator (CLUSTER FUNCTION PROPOSE over the
 * node bus); the coordinator hands it to its first worker thread, the orderer, which
 * applies it, gives it the next function epoch and sends CLUSTER FUNCTION EPOCH <e>
 * ... to every other node, the proposer included, over that thread's bus connections:
 * one connection per peer, so every node receives the changes in epoch order. When
 * every node has answered, the reply (the change's own, or an error naming the nodes
 * that missed it) goes back to the client, through the proposer when there is one.
 * Nothing blocks a thread meanwhile: the client's connection waits (c->job), its
 * thread serves the others. A node that cannot reach the coordinator orders the change
 * itself the same way (docs/CLUSTER.md, "Functions cluster-wide"). */
#include "net_int.h"

#include "../cluster/cluster.h"

#include <stdio.h>
#include <string.h>

struct fc_job {
    struct conn_job base;     /* first: the connection's c->job */
    struct server *srv;
    struct worker *home;      /* the thread of the connection that asked */
    struct conn *c;           /* NULL once it went away */
    int argc;                 /* the FUNCTION command: argv[0] is "FUNCTION" */
    const char **argv;
    size_t *argvlen;
    char *args;               /* the arguments' bytes */
    struct cm_buf reply;      /* the reply to send */
    int pending, applied, failed; /* forwards to other nodes */
    char first[600];          /* the first failure */
};

static void job_free(struct fc_job *j)
{
    cm_free(j->argv);
    cm_free(j->argvlen);
    cm_free(j->args);
    cm_buf_deinit(&j->reply);
    cm_free(j);
}

static void job_detach(struct conn_job *job)
{
    ((struct fc_job *)job)->c = NULL;
}

/* A job for the FUNCTION command in argv[from..argc) (argv[from] stands for the word
 * FUNCTION), or NULL (no memory). */
static struct fc_job *job_new(struct cmd_ctx *x, size_t from)
{
    struct fc_job *j = cm_calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->srv = x->srv;
    j->home = x->c->w;
    j->c = x->c;
    j->argc = (int)(x->argc - from);
    j->argv = cm_calloc((size_t)j->argc, sizeof(*j->argv));
    j->argvlen = cm_calloc((size_t)j->argc, sizeof(*j->argvlen));
    size_t total = 1;
    for (size_t i = from + 1; i < x->argc; i++)
        total += x->argvlen[i];
    j->args = cm_malloc(total);
    cm_buf_init(&j->reply);
    if (j->argv == NULL || j->argvlen == NULL || j->args == NULL) {
        job_free(j);
        return NULL;
    }
    j->argv[0] = "FUNCTION";
    j->argvlen[0] = 8;
    char *p = j->args;
    for (int i = 1; i < j->argc; i++) {
        memcpy(p, x->argv[from + (size_t)i], x->argvlen[from + (size_t)i]);
        j->argv[i] = p;
        j->argvlen[i] = x->argvlen[from + (size_t)i];
        p += j->argvlen[i];
    }
    j->base.detach = job_detach;
    return j;
}

/* On the home thread: the reply is ready. */
static void finish(struct worker *w, void *arg)
{
    struct fc_job *j = arg;
    struct conn *c = j->c;
    if (j->failed > 0) {
        int n = (int)(j->argvlen[1] > 16 ? 16 : j->argvlen[1]);
        cm_log(CM_LOG_WARNING, "FUNCTION %.*s applied on %d other node(s), failed on %d: %s", n,
               j->argv[1], j->applied, j->failed, j->first);
        j->reply.len = 0;
        resp_add_errorf(&j->reply,
                        "ERR FUNCTION %.*s was applied on this node and %d other node(s) but "
                        "failed on %d node(s); first failure: %s",
                        n, j->argv[1], j->applied, j->failed, j->first);
    }
    if (c != NULL) {
        c->job = NULL;
        cm_buf_append(&c->out, j->reply.p, j->reply.len);
        conn_serve(c);
    }
    job_free(j);
}

static void post_finish(struct fc_job *j)
{
    if (server_post(j->home, finish, j) != 0)
        cm_log(CM_LOG_WARNING, "FUNCTION reply lost: out of memory"); /* the client waits */
}

/* On the orderer: one node answered an EPOCH forward. */
static void forwarded(struct worker *w, void *ud, struct resp_value *r, const char *error)
{
    struct fc_job *j = ud;
    if (error != NULL || r->type == RESP_T_ERROR) {
        if (j->failed++ == 0)
            snprintf(j->first, sizeof(j->first), "%s", error != NULL ? error : r->str);
    } else {
        j->applied++;
    }
    resp_value_free(r);
    if (--j->pending == 0)
        post_finish(j);
}

/* On the orderer (worker 0): applies the change here, gives it the next epoch and
 * sends it to every other node of the map. */
static void order(struct worker *w, void *arg)
{
    struct fc_job *j = arg;
    struct server *s = j->srv;
    struct cmd_ctx y = {
        .srv = s,
        .eng = s->eng,
        .argc = (size_t)j->argc,
        .argv = j->argv,
        .argvlen = j->argvlen,
        .out = &j->reply,
        .resp = 2,
    };
    unsigned long long gen = udf_lib_generation(s->udf);
    cmd_function_local(&y);
    if (y.failed && udf_lib_generation(s->udf) == gen) {
        post_finish(j);
        return;
    }
    /* Changed here (a failed one part-way, or applied without its WAL sync: the reply
     * is its error): the other nodes take the change, or they would differ for good. */
    char ebuf[24];
    snprintf(ebuf, sizeof(ebuf), "%llu", net_cluster_fn_epoch_next(s));
    int argc = j->argc + 3;
    const char **argv = cm_malloc((size_t)argc * sizeof(*argv));
    size_t *argvlen = cm_malloc((size_t)argc * sizeof(*argvlen));
    const struct clu_map *m = clu_map_get(s->cluster);
    int self = clu_map_self(s->cluster, m);
    j->pending = 1; /* held until every forward is sent */
    if (argv == NULL || argvlen == NULL) {
        j->failed = m->nnodes - (self >= 0);
        snprintf(j->first, sizeof(j->first), "out of memory");
    } else {
        const char *head[] = {"CLUSTER", "FUNCTION", "EPOCH", ebuf};
        for (int i = 0; i < 4; i++) {
            argv[i] = head[i];
            argvlen[i] = strlen(head[i]);
        }
        memcpy(argv + 4, j->argv + 1, (size_t)(j->argc - 1) * sizeof(*argv));
        memcpy(argvlen + 4, j->argvlen + 1, (size_t)(j->argc - 1) * sizeof(*argvlen));
        char pass[sizeof(s->cfg->requirepass)];
        net_config_password(s->cfg, pass, sizeof(pass));
        for (int i = 0; i < m->nnodes; i++) {
            if (i == self)
                continue;
            struct cm_err err = {0};
            if (bus_call(w, m->nodes[i].host, m->nodes[i].port, BUS_LANE_KEYS, pass, argc, argv,
                         argvlen, forwarded, j, &err) == 0)
                j->pending++;
            else if (j->failed++ == 0)
                snprintf(j->first, sizeof(j->first), "%s", err.msg);
        }
    }
    cm_free(argv);
    cm_free(argvlen);
    if (--j->pending == 0)
        post_finish(j);
}

/* Hands j to the orderer of this node. 0, or CM_ENOMEM (j is still the caller's). */
static int order_here(struct fc_job *j)
{
    return server_post(j->srv->workers[0], order, j);
}

/* Inside the command that made j: the reply now, no job. */
static void fail_now(struct cmd_ctx *x, struct fc_job *j)
{
    x->c->job = NULL;
    job_free(j);
    reply_err(x, "OOM out of memory ordering the function change");
}

/* On the home thread: the coordinator's reply to PROPOSE, relayed to the client; or
 * why it could not be reached (then this node orders the change itself). */
static void proposed(struct worker *w, void *ud, struct resp_value *r, const char *error)
{
    struct fc_job *j = ud;
    if (error != NULL) {
        cm_log(CM_LOG_WARNING, "Coordinator unreachable (%s): ordering the function change here",
               error);
        if (order_here(j) != 0) {
            resp_add_error(&j->reply, "OOM out of memory ordering the function change");
            finish(w, j);
        }
        return;
    }
    if (r->type == RESP_T_STRING)
        resp_add_bulk(&j->reply, r->str, r->len);
    else if (r->type == RESP_T_STATUS)
        resp_add_simple(&j->reply, r->str);
    else if (r->type == RESP_T_ERROR)
        resp_add_error(&j->reply, r->str);
    else
        resp_add_errorf(&j->reply, "ERR unexpected %s reply from the coordinator",
                        resp_type_name(r->type));
    resp_value_free(r);
    finish(w, j);
}

/* The coordinator of this node's map, or NULL (no map yet). */
static const struct clu_node *coordinator(struct server *s)
{
    const struct clu_map *m = clu_map_get(s->cluster);
    int c = clu_map_coordinator(m);
    return c >= 0 ? &m->nodes[c] : NULL;
}

static bool is_self(struct server *s, const struct clu_node *n)
{
    return n == NULL || strcmp(n->id, clu_myid(s->cluster)) == 0;
}

void net_cluster_fn_change(struct cmd_ctx *x)
{
    struct fc_job *j = job_new(x, 0);
    if (j == NULL) {
        reply_err(x, "OOM out of memory");
        return;
    }
    x->c->job = &j->base; /* the connection waits for the reply */
    const struct clu_node *c = coordinator(x->srv);
    if (is_self(x->srv, c)) {
        if (order_here(j) != 0)
            fail_now(x, j);
        return;
    }
    int argc = j->argc + 2;
    const char **argv = cm_malloc((size_t)argc * sizeof(*argv));
    size_t *argvlen = cm_malloc((size_t)argc * sizeof(*argvlen));
    struct cm_err err = {0};
    int rc = CM_ENOMEM;
    if (argv != NULL && argvlen != NULL) {
        argv[0] = "CLUSTER";
        argvlen[0] = 7;
        argv[1] = "FUNCTION";
        argvlen[1] = 8;
        argv[2] = "PROPOSE";
        argvlen[2] = 7;
        memcpy(argv + 3, j->argv + 1, (size_t)(j->argc - 1) * sizeof(*argv));
        memcpy(argvlen + 3, j->argvlen + 1, (size_t)(j->argc - 1) * sizeof(*argvlen));
        char pass[sizeof(x->srv->cfg->requirepass)];
        net_config_password(x->srv->cfg, pass, sizeof(pass));
        rc = bus_call(j->home, c->host, c->port, BUS_LANE_KEYS, pass, argc, argv, argvlen,
                      proposed, j, &err);
    }
    cm_free(argv);
    cm_free(argvlen);
    if (rc != 0) {
        cm_log(CM_LOG_WARNING, "Coordinator %s:%d unreachable (%s): ordering the function change "
               "here", c->host, c->port, err.msg);
        if (order_here(j) != 0)
            fail_now(x, j);
    }
}

/* CLUSTER FUNCTION PROPOSE <FUNCTION arguments>: a change for the coordinator to order. */
static void propose(struct cmd_ctx *x)
{
    const struct clu_node *c = coordinator(x->srv);
    if (!is_self(x->srv, c)) {
        reply_errf(x, "ERR not the coordinator: it is %s %s:%d", c->id, c->host, c->port);
        return;
    }
    if (x->c == NULL) {
        reply_err(x, "ERR CLUSTER FUNCTION PROPOSE needs a connection");
        return;
    }
    struct fc_job *j = job_new(x, 2);
    if (j == NULL) {
        reply_err(x, "OOM out of memory");
        return;
    }
    x->c->job = &j->base;
    if (order_here(j) != 0)
        fail_now(x, j);
}

/* Runs FUNCTION with the arguments after x->argv[skip] (which stands for the word
 * FUNCTION during the call), appending its reply to x->out. */
static void function_at(struct cmd_ctx *x, size_t skip)
{
    struct cmd_ctx y = *x;
    y.argv = x->argv + skip;
    y.argvlen = x->argvlen + skip;
    y.argc = x->argc - skip;
    const char *save = x->argv[skip];
    size_t save_len = x->argvlen[skip];
    x->argv[skip] = "FUNCTION";
    x->argvlen[skip] = 8;
    cmd_function_local(&y);
    x->argv[skip] = save;
    x->argvlen[skip] = save_len;
    x->failed = y.failed;
}

void net_cluster_function(struct cmd_ctx *x)
{
    if (x->argc >= 4 && arg_is(x, 2, "PROPOSE")) {
        propose(x);
        return;
    }
    if (!(x->argc >= 5 && arg_is(x, 2, "EPOCH"))) {
        function_at(x, 1); /* CLUSTER FUNCTION <FUNCTION arguments>: here only */
        return;
    }
    long long e;
    if (cm_str_to_ll(x->argv[3], x->argvlen[3], &e) != 0 || e < 0) {
        reply_err(x, "ERR bad function epoch");
        return;
    }
    if ((unsigned long long)e <= net_cluster_fn_epoch()) {
        reply_ok(x); /* applied already: this node caught up with a newer state */
        return;
    }
    function_at(x, 3);
    if (!x->failed)
        net_cluster_fn_epoch_applied(x->srv, (unsigned long long)e);
}
