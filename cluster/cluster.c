/* cluster.c - a node's cluster state: its persistent id, the installed slot map
 * (published through an atomic pointer so routing takes no lock), the coordinator's
 * part in changing it (proposals, pushes) and the routing decision for a slot. Uses
 * the map store (store.c) given at creation and link.c for the node-to-node calls. */
#include "cluster.h"
#include "cluster_int.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Replaced maps are kept until clu_free: readers hold plain pointers to the map they
 * loaded, and maps change a handful of times in a cluster's life. */
struct old_map {
    struct clu_map *m;
    struct old_map *next;
};

struct cluster {
    struct clu_store store;
    char myid[CLU_ID_LEN + 1];
    _Atomic(struct clu_map *) map;
    pthread_mutex_t install_lock; /* serializes clu_map_install */
    struct old_map *old;
    _Atomic(struct clu_mig *) mig;  /* migrate.c, set by clu_mig_open */
    _Atomic unsigned long long accepted, refused, fallbacks; /* clu_coord_stats */
};

#define PUSH_TIMEOUT_MS 5000

struct clu_mig *clu__mig(const struct cluster *cl)
{
    return atomic_load(&((struct cluster *)cl)->mig);
}

void clu__set_mig(struct cluster *cl, struct clu_mig *g)
{
    atomic_store(&cl->mig, g);
}

/* 40 random hex digits from /dev/urandom (or the clock and pid if it is missing). */
static void random_id(char id[CLU_ID_LEN + 1])
{
    unsigned char raw[CLU_ID_LEN / 2];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof(raw)) {
        unsigned long long x = (unsigned long long)cm_now_us() ^ ((unsigned long long)getpid() << 32);
        for (size_t i = 0; i < sizeof(raw); i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            raw[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
}

struct cluster *clu_new(const struct clu_store *store, struct cm_err *err)
{
    struct cluster *cl = cm_calloc(1, sizeof(*cl));
    struct clu_map *m = NULL;
    if (cl == NULL) {
        cm_err_set(err, CM_ENOMEM, "out of memory");
        if (store->free)
            store->free(store->ud);
        return NULL;
    }
    cl->store = *store;
    pthread_mutex_init(&cl->install_lock, NULL);
    int rc = cl->store.load_id(cl->store.ud, cl->myid, err);
    if (rc == CM_ENOTFOUND) {
        random_id(cl->myid);
        rc = cl->store.save_id(cl->store.ud, cl->myid, err);
        if (rc == 0)
            cm_log(CM_LOG_NOTICE, "No cluster configuration found, I'm %s", cl->myid);
    }
    if (rc != 0)
        goto fail;
    rc = cl->store.load_map(cl->store.ud, &m, err);
    if (rc == CM_ENOTFOUND) {
        if ((m = clu_map_new()) == NULL) {
            cm_err_set(err, CM_ENOMEM, "out of memory");
            goto fail;
        }
    } else if (rc != 0) {
        goto fail;
    } else {
        cm_log(CM_LOG_NOTICE, "Cluster node %s: slot map of epoch %llu loaded (%d nodes)",
               cl->myid, m->epoch, m->nnodes);
    }
    atomic_store(&cl->map, m);
    return cl;
fail:
    clu_free(cl);
    return NULL;
}

void clu_free(struct cluster *cl)
{
    if (cl == NULL)
        return;
    clu_mig_close(cl);
    clu_map_free(atomic_load(&cl->map));
    for (struct old_map *o = cl->old, *next; o != NULL; o = next) {
        next = o->next;
        clu_map_free(o->m);
        cm_free(o);
    }
    if (cl->store.free)
        cl->store.free(cl->store.ud);
    pthread_mutex_destroy(&cl->install_lock);
    cm_free(cl);
}

const char *clu_myid(const struct cluster *cl)
{
    return cl->myid;
}

const struct clu_map *clu_map_get(const struct cluster *cl)
{
    return atomic_load_explicit(&((struct cluster *)cl)->map, memory_order_acquire);
}

int clu_map_self(const struct cluster *cl, const struct clu_map *m)
{
    return clu_map_find(m, cl->myid);
}

/* Sends CLUSTER SETMAP (payload is m formatted) to node i of m. */
static void push_one(const struct clu_map *m, int i, const char *payload, size_t plen,
                     const char *password)
{
    char epoch[32];
    snprintf(epoch, sizeof(epoch), "%llu", m->epoch);
    const char *av[] = {"CLUSTER", "SETMAP", epoch, payload};
    const size_t al[] = {7, 6, strlen(epoch), plen};
    struct resp_value *r = NULL;
    struct cm_err err = {0};
    if (clu_link_call(m->nodes[i].host, m->nodes[i].port, password, PUSH_TIMEOUT_MS, 4, av, al,
                      &r, &err) != 0 ||
        r->type == RESP_T_ERROR)
        cm_log(CM_LOG_WARNING, "Map of epoch %llu not pushed to %s:%d: %s", m->epoch,
               m->nodes[i].host, m->nodes[i].port, r != NULL ? r->str : err.msg);
    resp_value_free(r);
}

/* Formats m and pushes it to node i of m. */
static void push_node(const struct clu_map *m, int i, const char *password)
{
    struct cm_buf b;
    cm_buf_init(&b);
    if (clu_map_format(m, &b) == 0)
        push_one(m, i, b.p ? b.p : "", b.len, password);
    else
        cm_log(CM_LOG_WARNING, "Map of epoch %llu not pushed: out of memory", m->epoch);
    cm_buf_deinit(&b);
}

/* Installs m if its epoch is newer than the installed one (exact: exactly one more),
 * or accepts it as a no-op if it equals the installed map. With first (a node id, not
 * this node's), m is pushed to that node once it passed the checks and before it is
 * installed here, under the install lock: the new owner of moved slots has the map
 * before this node sends clients to it. */
static int install(struct cluster *cl, struct clu_map *m, bool exact, const char *first,
                   const char *password, struct cm_err *err)
{
    struct old_map *o = cm_malloc(sizeof(*o));
    int rc = 0;
    if (o == NULL) {
        clu_map_free(m);
        return cm_err_set(err, CM_ENOMEM, "ERR out of memory");
    }
    /* A stale map is refused without the lock, which a push may hold (for at most
     * PUSH_TIMEOUT_MS): old maps are never freed while the node runs, so cur stays
     * valid. */
    struct clu_map *cur = atomic_load(&cl->map);
    if (m->epoch < cur->epoch) {
        rc = cm_err_set(err, CM_EINVAL,
                        "ERR the map's epoch %llu is not newer than this node's epoch %llu",
                        m->epoch, cur->epoch);
        cm_free(o);
        clu_map_free(m);
        return rc;
    }
    pthread_mutex_lock(&cl->install_lock);
    cur = atomic_load(&cl->map);
    if (m->epoch == cur->epoch && clu_map_same(m, cur)) {
        rc = 0; /* a repeated push: nothing to do */
        goto drop;
    }
    if (m->epoch <= cur->epoch) {
        rc = cm_err_set(err, CM_EINVAL,
                        "ERR the map's epoch %llu is not newer than this node's epoch %llu",
                        m->epoch, cur->epoch);
        goto drop;
    }
    if (exact && m->epoch != cur->epoch + 1) {
        rc = cm_err_set(err, CM_EINVAL,
                        "ERR stale proposal: the map's epoch is %llu, the coordinator expects %llu",
                        m->epoch, cur->epoch + 1);
        goto drop;
    }
    int f = first != NULL && strcmp(first, cl->myid) != 0 ? clu_map_find(m, first) : -1;
    if (f >= 0)
        push_node(m, f, password);
    /* CM_ESYNC: the store has the map but its WAL sync failed. It is installed, as the
     * store would load it at a restart (it was refused before, while the store kept
     * it, and the node took it at its next start); a crash before the WAL is flushed
     * again brings back the old one, which the coordinator's catch-up replaces. */
    rc = cl->store.save_map(cl->store.ud, m, err);
    if (rc == CM_ESYNC) {
        cm_log(CM_LOG_WARNING, "Slot map of epoch %llu: %s (installed; a crash before the "
                               "next WAL flush would bring back epoch %llu)",
               m->epoch, err != NULL ? err->msg : "WAL sync failed", cur->epoch);
        rc = 0;
    } else if (rc != 0) {
        if (err != NULL)
            cm_err_set(err, rc, "ERR storage error: %s", err->msg);
        goto drop;
    }
    o->m = cur;
    o->next = cl->old;
    cl->old = o;
    atomic_store_explicit(&cl->map, m, memory_order_release);
    pthread_mutex_unlock(&cl->install_lock);
    cm_log(CM_LOG_NOTICE, "Slot map of epoch %llu installed (%d nodes, %d slots assigned)",
           m->epoch, m->nnodes, clu_map_assigned(m));
    if (clu__mig(cl) != NULL)
        clu__mig_on_map(clu__mig(cl), m);
    return 0;
drop:
    pthread_mutex_unlock(&cl->install_lock);
    cm_free(o);
    clu_map_free(m);
    return rc;
}

int clu_map_install(struct cluster *cl, struct clu_map *m, struct cm_err *err)
{
    return install(cl, m, false, NULL, NULL, err);
}

/* ---- The coordinator ----------------------------------------------------------------------- */

/* Pushes m to every node but this one and skip (a node id or NULL). */
static void push_rest(struct cluster *cl, const struct clu_map *m, const char *skip,
                      const char *password)
{
    struct cm_buf b;
    cm_buf_init(&b);
    if (clu_map_format(m, &b) != 0) {
        cm_log(CM_LOG_WARNING, "Map of epoch %llu not pushed: out of memory", m->epoch);
        cm_buf_deinit(&b);
        return;
    }
    for (int i = 0; i < m->nnodes; i++)
        if (strcmp(m->nodes[i].id, cl->myid) != 0 &&
            (skip == NULL || strcmp(m->nodes[i].id, skip) != 0))
            push_one(m, i, b.p ? b.p : "", b.len, password);
    cm_buf_deinit(&b);
}

void clu_map_push_all(struct cluster *cl, const struct clu_map *m, const char *first,
                      const char *password)
{
    int f = first != NULL && strcmp(first, cl->myid) != 0 ? clu_map_find(m, first) : -1;
    if (f >= 0)
        push_node(m, f, password);
    push_rest(cl, m, f >= 0 ? first : NULL, password);
}

int clu_map_accept(struct cluster *cl, struct clu_map *m, const char *first,
                   const char *password, struct cm_err *err)
{
    const struct clu_map *cur = clu_map_get(cl);
    int c = clu_map_coordinator(cur);
    if (c < 0 || strcmp(cur->nodes[c].id, cl->myid) != 0) {
        clu_map_free(m);
        atomic_fetch_add(&cl->refused, 1);
        if (c < 0)
            return cm_err_set(err, CM_EINVAL, "ERR this node has no slot map");
        return cm_err_set(err, CM_EINVAL, "ERR not the coordinator: it is %s %s:%d",
                          cur->nodes[c].id, cur->nodes[c].host, cur->nodes[c].port);
    }
    unsigned long long epoch = m->epoch;
    int rc = install(cl, m, true, first, password, err);
    if (rc != 0) {
        atomic_fetch_add(&cl->refused, 1);
        return rc;
    }
    atomic_fetch_add(&cl->accepted, 1);
    cur = clu_map_get(cl);
    cm_log(CM_LOG_NOTICE, "Coordinator: map of epoch %llu accepted; pushing it to %d node(s)",
           epoch, cur->nnodes - 1);
    push_rest(cl, cur, first, password); /* install pushed it to first already */
    return 0;
}

int clu_map_propose(struct cluster *cl, struct clu_map *m, const char *first,
                    const char *password, struct cm_err *err)
{
    const struct clu_map *cur = clu_map_get(cl);
    const struct clu_map *by = cur->nnodes > 0 ? cur : m;
    int c = clu_map_coordinator(by);
    if (c < 0) {
        clu_map_free(m);
        return cm_err_set(err, CM_EINVAL, "ERR the map has no nodes");
    }
    if (strcmp(by->nodes[c].id, cl->myid) == 0)
        return clu_map_accept(cl, m, first, password, err);
    struct cm_buf b;
    cm_buf_init(&b);
    char epoch[32];
    snprintf(epoch, sizeof(epoch), "%llu", m->epoch);
    if (clu_map_format(m, &b) != 0) {
        cm_buf_deinit(&b);
        clu_map_free(m);
        return cm_err_set(err, CM_ENOMEM, "ERR out of memory");
    }
    const char *av[] = {"CLUSTER", "PROPOSEMAP", epoch, b.p ? b.p : "", first};
    const size_t al[] = {7, 10, strlen(epoch), b.len, first != NULL ? strlen(first) : 0};
    struct resp_value *r = NULL;
    struct cm_err lerr = {0};
    int rc = clu_link_call(by->nodes[c].host, by->nodes[c].port, password, PUSH_TIMEOUT_MS,
                           first != NULL ? 5 : 4, av, al, &r, &lerr);
    cm_buf_deinit(&b);
    if (rc == 0 && r->type == RESP_T_ERROR) {
        rc = cm_err_set(err, CM_EINVAL, "%s", r->str);
        resp_value_free(r);
        clu_map_free(m);
        return rc;
    }
    resp_value_free(r);
    if (rc != 0) {
        /* The coordinator is away: apply the change here, as the coordinator would
         * have (first, then this node, then the others). */
        atomic_fetch_add(&cl->fallbacks, 1);
        cm_log(CM_LOG_WARNING,
               "Coordinator %s:%d unreachable (%s): installing and pushing the map of epoch "
               "%llu from this node",
               by->nodes[c].host, by->nodes[c].port, lerr.msg, m->epoch);
        if ((rc = install(cl, m, false, first, password, err)) == 0)
            push_rest(cl, clu_map_get(cl), first, password);
        return rc;
    }
    /* Accepted: the coordinator's push has installed it here, unless it could not. */
    unsigned long long ep = m->epoch;
    rc = install(cl, m, false, NULL, NULL, err);
    return rc == CM_EINVAL && clu_map_get(cl)->epoch >= ep ? 0 : rc; /* or a newer one came */
}

void clu_coord_stats(const struct cluster *cl, struct clu_coord_stats *out)
{
    struct cluster *c = (struct cluster *)cl;
    out->accepted = atomic_load(&c->accepted);
    out->refused = atomic_load(&c->refused);
    out->fallbacks = atomic_load(&c->fallbacks);
}

int clu_route(const struct cluster *cl, unsigned slot, char *msg, size_t cap)
{
    const struct clu_map *m = clu_map_get(cl);
    int owner = slot < CM_SLOTS ? m->owner[slot] : -1;
    if (owner < 0) {
        snprintf(msg, cap, "CLUSTERDOWN Hash slot not served");
        return CLU_DOWN;
    }
    if (strcmp(m->nodes[owner].id, cl->myid) == 0)
        return CLU_LOCAL;
    snprintf(msg, cap, "MOVED %u %s:%d", slot, m->nodes[owner].host, m->nodes[owner].port);
    return CLU_MOVED;
}
