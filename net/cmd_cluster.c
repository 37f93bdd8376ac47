/* cmd_cluster.c - eddy's cluster mode on the command side: the CLUSTER command
 * (KEYSLOT always; MYID SLOTS SHARDS NODES INFO COUNTKEYSINSLOT GETKEYSINSLOT and the
 * internal SETMAP PROPOSEMAP GETMAP FUNCTION with --cluster-enabled yes), the routing
 * of keyed commands (CROSSSLOT, MOVED, CLUSTERDOWN), the slot check of commands run by
 * functions, and FUNCTION LOAD/DELETE/FLUSH/RESTORE on every node, in the order the
 * coordinator gives them. The map and the node-to-node client are in cluster/ (cluster.h). */
#include "net_int.h"

#include "../cluster/cluster.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Milliseconds a command on a fenced slot waits for the end of the fence (its thread
 * blocks). A fence that outlasts it (a source restarted with its target down keeps
 * its slots fenced until the target answers) is remembered for FENCE_STUCK_MS: the
 * commands on that slot meanwhile get -TRYAGAIN at once, instead of blocking their
 * thread (and its other clients) 3 s each, as they did. */
#define FENCE_WAIT_MS 500
#define FENCE_STUCK_MS 5000

static _Atomic int fence_stuck_slot = -1;
static _Atomic int64_t fence_stuck_at;

/* ---- Key positions ------------------------------------------------------------------ */

static bool is_call(const struct cmd_def *d)
{
    static const char *const names[] = {"fcall", "fcall_ro", "eval", "eval_ro", "evalsha",
                                        "evalsha_ro", NULL};
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(d->name, names[i]) == 0)
            return true;
    return false;
}

/* The argv positions of the command's keys: [*first, *last] by *step. Returns false
 * when it has none (or an FCALL/EVAL whose numkeys is 0 or invalid: the command
 * itself reports that). */
static bool key_range(const struct cmd_def *d, size_t argc, const char **argv,
                      const size_t *argvlen, size_t *first, size_t *last, size_t *step)
{
    if (is_call(d)) {
        long long nk;
        if (argc < 3 || cm_str_to_ll(argv[2], argvlen[2], &nk) != 0 || nk <= 0 ||
            nk > (long long)argc - 3)
            return false;
        *first = 3;
        *last = 3 + (size_t)nk - 1;
        *step = 1;
        return true;
    }
    if (d->first_key <= 0 || (size_t)d->first_key >= argc)
        return false;
    long last_i = d->last_key < 0 ? (long)argc + d->last_key : d->last_key;
    if (last_i >= (long)argc)
        last_i = (long)argc - 1;
    if (last_i < d->first_key)
        return false;
    *first = (size_t)d->first_key;
    *last = (size_t)last_i;
    *step = d->step > 0 ? (size_t)d->step : 1;
    return true;
}

bool net_cluster_route(struct conn *c, const struct cmd_def *d, size_t argc, const char **argv,
                       const size_t *argvlen)
{
    struct cluster *cl = c->w->srv->cluster;
    size_t first, last, step;
    bool asking = c->asking; /* ASKING holds for the next command only */
    if (d->fn != net_cluster_asking)
        c->asking = false;
    if (cl == NULL || !key_range(d, argc, argv, argvlen, &first, &last, &step))
        return true;
    unsigned slot = cm_key_slot(argv[first], argvlen[first]);
    /* A function may touch keys of any slot (the others through their owners). */
    for (size_t i = first + step; i <= last && !(d->flags & CMD_ANYSLOT); i += step)
        if (cm_key_slot(argv[i], argvlen[i]) != slot) {
            resp_add_error(&c->out, "CROSSSLOT Keys in request don't hash to the same slot");
            return false;
        }
    char msg[CLU_HOST_LEN + 64];
    int r = clu_route_mig(cl, slot, asking, msg, sizeof(msg));
    if (r == CLU_WAIT) {
        /* A slot in its migration's fence: this thread waits (briefly) for the
         * handoff, then routes again (-ASK, or MOVED once the map moved). Its own
         * pending writes go first, so none of them waits behind the fence. */
        cmd_flush_writes(c->w);
        bool stuck = atomic_load(&fence_stuck_slot) == (int)slot &&
                     cm_now_ms() - atomic_load(&fence_stuck_at) < FENCE_STUCK_MS;
        if (!stuck) {
            clu_mig_wait(cl, slot, FENCE_WAIT_MS);
            r = clu_route_mig(cl, slot, asking, msg, sizeof(msg));
            if (r == CLU_WAIT) {
                atomic_store(&fence_stuck_at, cm_now_ms());
                atomic_store(&fence_stuck_slot, (int)slot);
            }
        }
    }
    if (r == CLU_LOCAL)
        return true;
    resp_add_error(&c->out, msg);
    return false;
}

int net_cluster_script_check(const struct cmd_def *d, size_t argc, const char **argv,
                             const size_t *argvlen, struct cm_buf *out)
{
    struct cluster *cl = g_server != NULL ? g_server->cluster : NULL;
    size_t first, last, step;
    if (cl == NULL || !key_range(d, argc, argv, argvlen, &first, &last, &step))
        return 0;
    char msg[CLU_HOST_LEN + 64], remote[CLU_HOST_LEN + 16] = "";
    size_t mark = out->len;
    for (size_t i = first; i <= last; i += step) {
        unsigned slot = cm_key_slot(argv[i], argvlen[i]);
        /* A slot whose import has committed here is served to function calls too: its
         * data is complete on this node and its old owner answers -ASK. */
        int r = clu_route_mig(cl, slot, true, msg, sizeof(msg));
        if (r == CLU_WAIT || r == CLU_ASK) {
            /* The slot is in the last step of a move: the call applies nothing of its
             * own and the client may run it again. (A slot moved away during the call is
             * accessed remotely like any other node's; the call's earlier local writes
             * to it make its commit fail with TRYAGAIN, see eng_slots_refuse.) */
            resp_add_errorf(out, "TRYAGAIN key '%.*s' is in slot %u, which is being migrated",
                            (int)(argvlen[i] > 128 ? 128 : argvlen[i]), argv[i], slot);
            return -1;
        }
        if (r == CLU_DOWN) {
            resp_add_error(out, msg);
            return -1;
        }
        /* msg is "MOVED <slot> <host:port>": the owner's address. */
        const char *addr = r == CLU_MOVED ? strrchr(msg, ' ') : NULL;
        addr = addr != NULL ? addr + 1 : "";
        if (i == first && r == CLU_MOVED)
            snprintf(remote, sizeof(remote), "%u %s", slot, addr);
        else if ((r == CLU_MOVED) != (remote[0] != '\0') ||
                 (r == CLU_MOVED && strcmp(addr, strchr(remote, ' ') + 1) != 0)) {
            resp_add_error(out, "ERR the keys of one command in a function must all be on one node");
            return -1;
        }
    }
    if (remote[0] == '\0')
        return 0;
    out->len = mark;
    cm_buf_append(out, remote, strlen(remote));
    return 1;
}

/* ---- CLUSTER subcommands ----------------------------------------------------------------- */

/* The first address of the bind list, for this node's entry before it is in a map. */
static void my_host(struct cmd_ctx *x, char *host, size_t cap)
{
    const char *b = x->srv->cfg->bind;
    if (*b == '-')
        b++;
    size_t n = strcspn(b, " ,");
    snprintf(host, cap, "%.*s", (int)n, b);
}

/* Calls fn(x, lo, hi, owner) for each run of slots with one owner (owner >= 0). */
static size_t slot_runs(const struct clu_map *m, int node,
                        void (*fn)(struct cmd_ctx *x, const struct clu_map *m, int lo, int hi),
                        struct cmd_ctx *x)
{
    size_t n = 0;
    for (int s = 0; s < CM_SLOTS; s++) {
        int o = m->owner[s];
        if (o < 0 || (node >= 0 && o != node))
            continue;
        int e = s;
        while (e + 1 < CM_SLOTS && m->owner[e + 1] == o)
            e++;
        if (fn != NULL)
            fn(x, m, s, e);
        n++;
        s = e;
    }
    return n;
}

static void slots_entry(struct cmd_ctx *x, const struct clu_map *m, int lo, int hi)
{
    const struct clu_node *nd = &m->nodes[m->owner[lo]];
    resp_add_array(x->out, 3);
    resp_add_int(x->out, lo);
    resp_add_int(x->out, hi);
    resp_add_array(x->out, 4);
    resp_add_cstr(x->out, nd->host);
    resp_add_int(x->out, nd->port);
    resp_add_cstr(x->out, nd->id);
    resp_add_map(x->out, 0, x->resp); /* networking metadata: none (Redis 7) */
}

static void shard_range(struct cmd_ctx *x, const struct clu_map *m, int lo, int hi)
{
    resp_add_int(x->out, lo);
    resp_add_int(x->out, hi);
}

static void cluster_shards(struct cmd_ctx *x, const struct clu_map *m)
{
    resp_add_array(x->out, (size_t)m->nnodes);
    for (int i = 0; i < m->nnodes; i++) {
        const struct clu_node *nd = &m->nodes[i];
        resp_add_map(x->out, 2, x->resp);
        resp_add_cstr(x->out, "slots");
        resp_add_array(x->out, 2 * slot_runs(m, i, NULL, x));
        slot_runs(m, i, shard_range, x);
        resp_add_cstr(x->out, "nodes");
        resp_add_array(x->out, 1);
        resp_add_map(x->out, 7, x->resp);
        resp_add_cstr(x->out, "id");
        resp_add_cstr(x->out, nd->id);
        resp_add_cstr(x->out, "port");
        resp_add_int(x->out, nd->port);
        resp_add_cstr(x->out, "ip");
        resp_add_cstr(x->out, nd->host);
        resp_add_cstr(x->out, "endpoint");
        resp_add_cstr(x->out, nd->host);
        resp_add_cstr(x->out, "role");
        resp_add_cstr(x->out, "master");
        resp_add_cstr(x->out, "replication-offset");
        resp_add_int(x->out, 0);
        resp_add_cstr(x->out, "health");
        resp_add_cstr(x->out, "online");
    }
}

/* One CLUSTER NODES line. The cluster-bus port is the client port: node-to-node
 * traffic uses the same protocol and port. */
static void nodes_line(struct cm_buf *b, const struct clu_map *m, int i, const char *id,
                       const char *host, int port, bool myself)
{
    cm_buf_appendf(b, "%s %s:%d@%d %s - 0 %lld %llu connected", id, host, port, port,
                   myself ? "myself,master" : "master", myself ? 0LL : (long long)cm_now_ms(),
                   m->epoch);
    for (int s = 0; i >= 0 && s < CM_SLOTS; s++) {
        if (m->owner[s] != i)
            continue;
        int e = s;
        while (e + 1 < CM_SLOTS && m->owner[e + 1] == i)
            e++;
        if (e == s)
            cm_buf_appendf(b, " %d", s);
        else
            cm_buf_appendf(b, " %d-%d", s, e);
        s = e;
    }
    cm_buf_appendc(b, '\n');
}

static void cluster_nodes(struct cmd_ctx *x, struct cluster *cl, const struct clu_map *m)
{
    struct cm_buf b;
    cm_buf_init(&b);
    int self = clu_map_self(cl, m);
    if (self < 0) {
        char host[256];
        my_host(x, host, sizeof(host));
        nodes_line(&b, m, -1, clu_myid(cl), host, x->srv->cfg->port, true);
    }
    for (int i = 0; i < m->nnodes; i++)
        nodes_line(&b, m, i, m->nodes[i].id, m->nodes[i].host, m->nodes[i].port, i == self);
    resp_add_verbatim(x->out, "txt", b.p ? b.p : "", b.len, x->resp);
    cm_buf_deinit(&b);
}

static void cluster_info(struct cmd_ctx *x, struct cluster *cl, const struct clu_map *m)
{
    int assigned = clu_map_assigned(m), size = 0;
    for (int i = 0; i < m->nnodes; i++)
        size += slot_runs(m, i, NULL, x) > 0;
    struct cm_buf b;
    cm_buf_init(&b);
    cm_buf_appendf(&b,
                   "cluster_state:%s\r\ncluster_slots_assigned:%d\r\ncluster_slots_ok:%d\r\n"
                   "cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:%d\r\n"
                   "cluster_size:%d\r\ncluster_current_epoch:%llu\r\ncluster_my_epoch:%llu\r\n"
                   "cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n"
                   "total_cluster_links_buffer_limit_exceeded:0\r\n",
                   assigned == CM_SLOTS ? "ok" : "fail", assigned, assigned,
                   m->nnodes + (clu_map_self(cl, m) < 0 ? 1 : 0), size, m->epoch, m->epoch);
    /* eddy's own: the map's coordinator and this node's proposals (docs/CLUSTER.md). */
    struct clu_coord_stats cs;
    clu_coord_stats(cl, &cs);
    int c = clu_map_coordinator(m);
    cm_buf_appendf(&b,
                   "cluster_coordinator:%s\r\ncluster_map_proposals_accepted:%llu\r\n"
                   "cluster_map_proposals_refused:%llu\r\ncluster_map_coordinator_fallbacks:%llu\r\n",
                   c >= 0 ? m->nodes[c].id : "", cs.accepted, cs.refused, cs.fallbacks);
    resp_add_verbatim(x->out, "txt", b.p, b.len, x->resp);
    cm_buf_deinit(&b);
}

static bool arg_slot(struct cmd_ctx *x, size_t i, unsigned *slot)
{
    long long v;
    if (cm_str_to_ll(x->argv[i], x->argvlen[i], &v) != 0 || v < 0 || v >= CM_SLOTS) {
        reply_err(x, "ERR Invalid slot");
        return false;
    }
    *slot = (unsigned)v;
    return true;
}

struct keys_collect {
    struct cm_buf keys; /* 4-byte length + bytes, per key */
    long long n, max;
};

static int collect_key(void *ud, const char *key, size_t klen, const struct eng_item *it)
{
    struct keys_collect *k = ud;
    uint32_t l = (uint32_t)klen;
    if (cm_buf_append(&k->keys, &l, 4) != 0 || cm_buf_append(&k->keys, key, klen) != 0)
        return CM_ENOMEM;
    return ++k->n >= k->max ? 1 : 0;
}

static void cluster_getkeysinslot(struct cmd_ctx *x)
{
    unsigned slot;
    long long count;
    if (!arg_slot(x, 2, &slot))
        return;
    if (cm_str_to_ll(x->argv[3], x->argvlen[3], &count) != 0 || count < 0) {
        reply_err(x, "ERR Invalid number of keys");
        return;
    }
    struct keys_collect k = {.max = count};
    cm_buf_init(&k.keys);
    char *next = NULL;
    size_t nlen = 0;
    struct cm_err err = {0};
    int rc = count == 0 ? 0
                        : eng_scan(x->eng, NULL, slot, slot, NULL, 0, 0, x->now_ms, collect_key,
                                   &k, &next, &nlen, &err);
    cm_free(next);
    if (rc < 0) {
        if (rc == CM_ENOMEM)
            reply_err(x, "OOM out of memory");
        else
            reply_storage_err(x, &err);
    } else {
        resp_add_array(x->out, (size_t)k.n);
        for (size_t off = 0; off < k.keys.len;) {
            uint32_t l;
            memcpy(&l, k.keys.p + off, 4);
            resp_add_bulk(x->out, k.keys.p + off + 4, l);
            off += 4 + l;
        }
    }
    cm_buf_deinit(&k.keys);
}

static void cluster_setmap(struct cmd_ctx *x, struct cluster *cl)
{
    long long epoch;
    struct cm_err err = {0};
    struct clu_map *m;
    if (cm_str_to_ll(x->argv[2], x->argvlen[2], &epoch) != 0 || epoch <= 0) {
        reply_err(x, "ERR Invalid epoch: a positive integer is expected");
        return;
    }
    if (clu_map_parse(x->argv[3], x->argvlen[3], (unsigned long long)epoch, &m, &err) != 0 ||
        clu_map_install(cl, m, &err) != 0)
        reply_err(x, err.msg);
    else
        reply_ok(x);
}

/* CLUSTER PROPOSEMAP <epoch> <payload> [<first-node-id>]: a map change for the
 * coordinator (cluster.h). Blocks this thread while it pushes the map to the nodes. */
static void cluster_proposemap(struct cmd_ctx *x, struct cluster *cl)
{
    long long epoch;
    struct cm_err err = {0};
    struct clu_map *m;
    char first[CLU_ID_LEN + 1];
    if (cm_str_to_ll(x->argv[2], x->argvlen[2], &epoch) != 0 || epoch <= 0) {
        reply_err(x, "ERR Invalid epoch: a positive integer is expected");
        return;
    }
    if (x->argc == 5) {
        if (!clu_id_valid(x->argv[4], x->argvlen[4])) {
            reply_err(x, "ERR Invalid node id");
            return;
        }
        memcpy(first, x->argv[4], CLU_ID_LEN);
        first[CLU_ID_LEN] = '\0';
    }
    char pass[sizeof(x->srv->cfg->requirepass)];
    net_config_password(x->srv->cfg, pass, sizeof(pass));
    if (clu_map_parse(x->argv[3], x->argvlen[3], (unsigned long long)epoch, &m, &err) != 0 ||
        clu_map_accept(cl, m, x->argc == 5 ? first : NULL, pass, &err) != 0)
        reply_err(x, err.msg);
    else
        reply_ok(x);
}

static void cluster_getmap(struct cmd_ctx *x, const struct clu_map *m)
{
    struct cm_buf b;
    cm_buf_init(&b);
    if (clu_map_format(m, &b) != 0) {
        reply_err(x, "OOM out of memory");
    } else {
        resp_add_array(x->out, 2);
        resp_add_int(x->out, (long long)m->epoch);
        resp_add_bulk(x->out, b.p ? b.p : "", b.len);
    }
    cm_buf_deinit(&b);
}

/* CLUSTER MIGRATESLOTS <target-id|host:port> <slot|lo-hi> [...] [RATE <MB/s>] */
static void cluster_migrateslots(struct cmd_ctx *x, struct cluster *cl)
{
    struct clu_mig_req rq = {0};
    struct cm_err err = {0};
    char id[64];
    if (x->argvlen[2] >= sizeof(rq.target)) {
        reply_err(x, "ERR unknown target node");
        return;
    }
    memcpy(rq.target, x->argv[2], x->argvlen[2]);
    for (size_t i = 3; i < x->argc; i++) {
        if (arg_is(x, i, "RATE") && i + 1 < x->argc) {
            char num[32];
            char *end;
            size_t n = x->argvlen[i + 1] < sizeof(num) - 1 ? x->argvlen[i + 1] : sizeof(num) - 1;
            memcpy(num, x->argv[i + 1], n);
            num[n] = '\0';
            rq.rate_mb = strtod(num, &end);
            if (end == num || *end != '\0' || rq.rate_mb < 0) {
                reply_err(x, "ERR RATE needs a number of MB/s (0 = unlimited)");
                return;
            }
            i++;
        } else if (clu_slots_parse(x->argv[i], x->argvlen[i], rq.slots) != 0) {
            reply_errf(x, "ERR bad slot or range '%.*s'",
                       (int)(x->argvlen[i] > 32 ? 32 : x->argvlen[i]), x->argv[i]);
            return;
        }
    }
    if (clu_mig_start(cl, &rq, id, &err) != 0)
        reply_err(x, err.msg);
    else
        resp_add_cstr(x->out, id);
}

void net_cluster_asking(struct cmd_ctx *x)
{
    if (x->srv->cluster == NULL) {
        reply_err(x, "ERR This instance has cluster support disabled");
        return;
    }
    if (x->c != NULL)
        x->c->asking = true;
    reply_ok(x);
}

void net_cluster_cmd(struct cmd_ctx *x)
{
    struct cluster *cl = x->srv->cluster;
    if (arg_is(x, 1, "KEYSLOT")) {
        if (x->argc == 3)
            resp_add_int(x->out, cm_key_slot(x->argv[2], x->argvlen[2]));
        else
            reply_err(x, "ERR wrong number of arguments for 'cluster|keyslot' command");
        return;
    }
    if (cl == NULL) {
        reply_err(x, "ERR This instance has cluster support disabled");
        return;
    }
    if (x->txn != NULL) {
        reply_err(x, "ERR This Redis command is not allowed from script");
        return;
    }
    const struct clu_map *m = clu_map_get(cl);
    unsigned slot;
    if (arg_is(x, 1, "MYID") && x->argc == 2) {
        resp_add_cstr(x->out, clu_myid(cl));
    } else if (arg_is(x, 1, "SLOTS") && x->argc == 2) {
        resp_add_array(x->out, slot_runs(m, -1, NULL, x));
        slot_runs(m, -1, slots_entry, x);
    } else if (arg_is(x, 1, "SHARDS") && x->argc == 2) {
        cluster_shards(x, m);
    } else if (arg_is(x, 1, "NODES") && x->argc == 2) {
        cluster_nodes(x, cl, m);
    } else if (arg_is(x, 1, "INFO") && x->argc == 2) {
        cluster_info(x, cl, m);
    } else if (arg_is(x, 1, "COUNTKEYSINSLOT") && x->argc == 3) {
        if (arg_slot(x, 2, &slot))
            resp_add_int(x->out, eng_count_keys(x->eng, NULL, slot, slot, x->now_ms));
    } else if (arg_is(x, 1, "GETKEYSINSLOT") && x->argc == 4) {
        cluster_getkeysinslot(x);
    } else if (arg_is(x, 1, "SETMAP") && x->argc == 4) {
        cluster_setmap(x, cl);
    } else if (arg_is(x, 1, "PROPOSEMAP") && (x->argc == 4 || x->argc == 5)) {
        cluster_proposemap(x, cl);
    } else if (arg_is(x, 1, "GETMAP") && x->argc == 2) {
        cluster_getmap(x, m);
    } else if (arg_is(x, 1, "FUNCTION") && x->argc >= 3) {
        net_cluster_function(x);
    } else if (arg_is(x, 1, "MIGRATESLOTS") && x->argc >= 4) {
        cluster_migrateslots(x, cl);
    } else if (arg_is(x, 1, "MIGRATION") && x->argc == 3 && arg_is(x, 2, "STATUS")) {
        struct cm_buf b;
        cm_buf_init(&b);
        if (clu_mig_status(cl, &b) != 0)
            reply_err(x, "OOM out of memory");
        else
            resp_add_verbatim(x->out, "txt", b.p, b.len, x->resp);
        cm_buf_deinit(&b);
    } else if (arg_is(x, 1, "MIGRATION") && x->argc == 3 && arg_is(x, 2, "CANCEL")) {
        struct cm_err err = {0};
        if (clu_mig_cancel(cl, &err) != 0)
            reply_err(x, err.msg);
        else
            reply_ok(x);
    } else if (arg_is(x, 1, "IMPORT") && x->argc >= 4) {
        size_t mark = x->out->len;
        clu_mig_import_cmd(cl, (int)x->argc - 2, x->argv + 2, x->argvlen + 2, x->out);
        if (x->out->len > mark && x->out->p[mark] == '-')
            x->failed = true;
    } else if (arg_is(x, 1, "FNEPOCH") && x->argc == 2) {
        resp_add_int(x->out, (long long)net_cluster_fn_epoch());
    } else if (arg_is(x, 1, "REMOTESTATS") &&
               (x->argc == 2 || (x->argc == 3 && arg_is(x, 2, "RESET")))) {
        if (udf_access_stats(x->srv->udf, x->out, x->argc == 3) != 0)
            reply_err(x, "OOM out of memory");
    } else {
        reply_errf(x, "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try "
                      "CLUSTER HELP.",
                   (int)(x->argvlen[1] > 64 ? 64 : x->argvlen[1]), x->argv[1]);
    }
}

/* ---- Functions cluster-wide ------------------------------------------------------------------- */

bool net_cluster_fn_propagates(struct cmd_ctx *x)
{
    return x->srv->cluster != NULL && (arg_is(x, 1, "LOAD") || arg_is(x, 1, "DELETE") ||
                                       arg_is(x, 1, "FLUSH") || arg_is(x, 1, "RESTORE"));
}

void net_cluster_fn_list(struct cmd_ctx *x, const char *pat, size_t plen, bool withcode)
{
    struct cm_buf tmp;
    cm_buf_init(&tmp);
    udf_lib_list(x->srv->udf, pat, plen, true, &tmp, 3);
    if (clu_fn_list_versions(tmp.p, tmp.len, withcode, x->out, x->resp) != 0)
        reply_err(x, "OOM out of memory");
    cm_buf_deinit(&tmp);
}

/* ---- Startup ------------------------------------------------------------------------------------ */

static void mig_password(void *cfg, char *out, size_t cap)
{
    net_config_password(cfg, out, cap);
}

int net_cluster_open(struct server *s, struct cm_err *err)
{
    if (!s->cfg->cluster_enabled)
        return 0;
    struct clu_store st;
    clu_store_meta_init(&st, s->eng);
    s->cluster = clu_new(&st, err);
    if (s->cluster == NULL)
        return err->code ? err->code : CM_ERR;
    int rc = clu_mig_open(s->cluster, s->eng, mig_password, s->cfg, err);
    if (rc != 0)
        return rc;
    cm_log(CM_LOG_NOTICE, "Cluster mode: node id %s, map epoch %llu", clu_myid(s->cluster),
           clu_map_get(s->cluster)->epoch);
    if (net_cluster_sync_start(s) != 0)
        return cm_err_set(err, CM_ERR, "cannot start the function catch-up thread");
    return 0;
}

void net_cluster_close(struct server *s)
{
    net_cluster_sync_stop();
    clu_free(s->cluster);
    s->cluster = NULL;
}
