/* cluster_sync.c - a node catching up with the others: the slot map and the functions.
 * The map: a node that missed a newer map (it was down when it was pushed) installs
 * the newest map any peer has (CLUSTER GETMAP). Functions: every FUNCTION change a node
 * propagates (LOAD, DELETE, FLUSH, RESTORE; cmd_cluster.c) carries a new function epoch,
 * one more than the highest the node has seen; each node keeps the highest epoch it
 * applied in its store ("cluster:fn-epoch"). A node that missed changes notices a
 * higher epoch on another node and copies that node's libraries (FUNCTION DUMP, then
 * RESTORE with FLUSH). Both happen at start, before the node accepts clients, and then
 * every CATCHUP_MS from a thread of its own. See docs/CLUSTER.md. */
#include "net_int.h"

#include "../cluster/cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EPOCH_KEY "cluster:fn-epoch"
#define PEER_TIMEOUT_MS 1000
#define CATCHUP_MS 2000

static atomic_ullong fn_epoch;
static pthread_mutex_t fn_lock = PTHREAD_MUTEX_INITIALIZER; /* epoch updates, catch-ups */
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static bool stopping, running;
static pthread_t thread;

static void persist(struct server *s, unsigned long long e)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", e);
    struct cm_err err = {0};
    int rc = eng_meta_put(s->eng, EPOCH_KEY, strlen(EPOCH_KEY), buf, (size_t)n, &err);
    if (rc == CM_ESYNC)
        cm_log(CM_LOG_WARNING, "Function epoch %llu saved, but not synced: %s", e, err.msg);
    else if (rc != 0)
        cm_log(CM_LOG_WARNING, "Cannot save the function epoch: %s", err.msg);
}

unsigned long long net_cluster_fn_epoch(void)
{
    return atomic_load(&fn_epoch);
}

unsigned long long net_cluster_fn_epoch_next(struct server *s)
{
    pthread_mutex_lock(&fn_lock);
    unsigned long long e = atomic_load(&fn_epoch) + 1;
    atomic_store(&fn_epoch, e);
    persist(s, e);
    pthread_mutex_unlock(&fn_lock);
    return e;
}

void net_cluster_fn_epoch_seen(struct server *s, unsigned long long e)
{
    pthread_mutex_lock(&fn_lock);
    if (e > atomic_load(&fn_epoch)) {
        atomic_store(&fn_epoch, e);
        persist(s, e);
    }
    pthread_mutex_unlock(&fn_lock);
}

void net_cluster_fn_epoch_applied(struct server *s, unsigned long long e)
{
    pthread_mutex_lock(&fn_lock);
    if (e == atomic_load(&fn_epoch) + 1) {
        atomic_store(&fn_epoch, e);
        persist(s, e);
    }
    pthread_mutex_unlock(&fn_lock);
}

/* One command to a peer; its reply (owned) or NULL. */
static struct resp_value *ask(struct server *s, const struct clu_node *nd, int argc,
                              const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    struct resp_value *r = NULL;
    struct cm_err err = {0};
    char pass[sizeof(s->cfg->requirepass)];
    net_config_password(s->cfg, pass, sizeof(pass));
    if (clu_link_call(nd->host, nd->port, pass, PEER_TIMEOUT_MS, argc, argv, lens,
                      &r, &err) != 0)
        return NULL;
    if (r->type == RESP_T_ERROR) {
        resp_value_free(r);
        return NULL;
    }
    return r;
}

/* Installs the newest map a peer has if it is newer than this node's. */
static void map_catchup(struct server *s)
{
    const struct clu_map *m = clu_map_get(s->cluster);
    int self = clu_map_self(s->cluster, m);
    struct resp_value *best = NULL;
    unsigned long long best_epoch = m->epoch;
    const char *host = NULL;
    int port = 0;
    for (int i = 0; i < m->nnodes; i++) {
        if (i == self)
            continue;
        const char *argv[] = {"CLUSTER", "GETMAP"};
        struct resp_value *r = ask(s, &m->nodes[i], 2, argv);
        if (r != NULL && r->type == RESP_T_ARRAY && r->elements == 2 &&
            r->element[0]->type == RESP_T_INTEGER && r->element[1]->type == RESP_T_STRING &&
            (unsigned long long)r->element[0]->integer > best_epoch) {
            best_epoch = (unsigned long long)r->element[0]->integer;
            resp_value_free(best);
            best = r;
            host = m->nodes[i].host;
            port = m->nodes[i].port;
            continue;
        }
        resp_value_free(r);
    }
    if (best == NULL)
        return;
    struct clu_map *nm = NULL;
    struct cm_err err = {0};
    if (clu_map_parse(best->element[1]->str, best->element[1]->len, best_epoch, &nm, &err) == 0 &&
        clu_map_install(s->cluster, nm, &err) == 0)
        cm_log(CM_LOG_NOTICE, "Cluster: installed map epoch %llu from %s:%d", best_epoch, host,
               port);
    else if (err.code != CM_EINVAL) /* EINVAL: a newer one arrived meanwhile */
        cm_log(CM_LOG_WARNING, "Cluster: the map of %s:%d (epoch %llu) was refused: %s", host,
               port, best_epoch, err.msg);
    resp_value_free(best);
}

int net_cluster_catchup(struct server *s)
{
    if (s->cluster == NULL)
        return 0;
    map_catchup(s);
    const struct clu_map *m = clu_map_get(s->cluster);
    int self = clu_map_self(s->cluster, m), best = -1;
    unsigned long long best_epoch = atomic_load(&fn_epoch);
    for (int i = 0; i < m->nnodes; i++) {
        if (i == self)
            continue;
        const char *argv[] = {"CLUSTER", "FNEPOCH"};
        struct resp_value *r = ask(s, &m->nodes[i], 2, argv);
        if (r != NULL && r->type == RESP_T_INTEGER && (unsigned long long)r->integer > best_epoch) {
            best_epoch = (unsigned long long)r->integer;
            best = i;
        }
        resp_value_free(r);
    }
    if (best < 0)
        return 0;
    const char *argv[] = {"FUNCTION", "DUMP"};
    struct resp_value *d = ask(s, &m->nodes[best], 2, argv);
    int rc = -1;
    if (d != NULL && d->type == RESP_T_STRING) {
        struct cm_err err = {0};
        pthread_mutex_lock(&fn_lock);
        /* The dump may be newer than the epoch read before it: never older. */
        rc = udf_lib_restore(s->udf, d->str, d->len, UDF_RESTORE_FLUSH, &err);
        pthread_mutex_unlock(&fn_lock);
        if (rc == 0) {
            net_cluster_fn_epoch_seen(s, best_epoch);
            cm_log(CM_LOG_NOTICE, "Functions: caught up with %s:%d (function epoch %llu)",
                   m->nodes[best].host, m->nodes[best].port, best_epoch);
        } else {
            cm_log(CM_LOG_WARNING, "Functions: catching up with %s:%d failed: %s",
                   m->nodes[best].host, m->nodes[best].port, err.msg);
        }
    }
    resp_value_free(d);
    return rc;
}

static void *catchup_main(void *arg)
{
    struct server *s = arg;
    pthread_mutex_lock(&stop_lock);
    while (!stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += CATCHUP_MS / 1000;
        ts.tv_nsec += (CATCHUP_MS % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&stop_cv, &stop_lock, &ts);
        if (stopping)
            break;
        pthread_mutex_unlock(&stop_lock);
        net_cluster_catchup(s);
        pthread_mutex_lock(&stop_lock);
    }
    pthread_mutex_unlock(&stop_lock);
    return NULL;
}

int net_cluster_sync_start(struct server *s)
{
    struct cm_buf b;
    cm_buf_init(&b);
    if (eng_meta_get(s->eng, EPOCH_KEY, strlen(EPOCH_KEY), &b, NULL) == 0) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%.*s", (int)(b.len < 23 ? b.len : 23), b.p ? b.p : "");
        atomic_store(&fn_epoch, strtoull(buf, NULL, 10));
    }
    cm_buf_deinit(&b);
    net_cluster_catchup(s); /* before clients can call a function */
    stopping = false;
    if (pthread_create(&thread, NULL, catchup_main, s) != 0)
        return CM_ERR;
    running = true;
    return 0;
}

void net_cluster_sync_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&stop_lock);
    stopping = true;
    pthread_cond_signal(&stop_cv);
    pthread_mutex_unlock(&stop_lock);
    pthread_join(thread, NULL);
    running = false;
}
