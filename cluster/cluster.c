/* cluster.c - a node's cluster state: its persistent id, the installed slot map
 * (published through an atomic pointer so routing takes no lock) and the routing
 * decision for a slot. Uses the map store (store.c) given at creation. */
#include "cluster.h"
#include "cluster_int.h"

#include <errno.h>
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
};

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

int clu_map_install(struct cluster *cl, struct clu_map *m, struct cm_err *err)
{
    struct old_map *o = cm_malloc(sizeof(*o));
    int rc = 0;
    if (o == NULL) {
        clu_map_free(m);
        return cm_err_set(err, CM_ENOMEM, "ERR out of memory");
    }
    pthread_mutex_lock(&cl->install_lock);
    struct clu_map *cur = atomic_load(&cl->map);
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
    if ((rc = cl->store.save_map(cl->store.ud, m, err)) != 0)
        goto drop;
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
