/* cache.c - the value cache: recently read or written small values of the data column
 * family, kept in memory so that a point read (GET, the read of INCR) skips RocksDB's
 * memtable and block lookups. Used by engine.c only (engine_int.h), which keeps it
 * coherent: every write of the data column family updates or drops its keys here
 * after RocksDB has applied it, and fills are refused when a write raced them (the
 * generation rule in engine_int.h). */
#include "engine_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define LOCKS 1024    /* lock groups; bucket i belongs to group i % LOCKS */
#define WAYS 4        /* entries per bucket */
#define EVICT_STEPS 4 /* buckets an insert may empty to stay within the budget */
#define GENS_MAX 65536 /* write counts (a multiple of LOCKS, at most one per bucket) */

struct centry {
    uint64_t hash;
    uint32_t klen, vlen; /* key, then the encoded value, in data */
    size_t cap;          /* bytes allocated for data */
    char data[];
};

struct eng__cache {
    size_t budget;
    atomic_size_t bytes; /* entries' allocations, headers included */
    size_t nbuckets;     /* a power of 2, a multiple of LOCKS */
    struct centry *(*b)[WAYS];
    pthread_mutex_t locks[LOCKS];
    /* Write counts: bucket bi's is gen[bi & (ngens - 1)], under lock bi % LOCKS (ngens
     * is a multiple of LOCKS). One per lock group made unrelated writes drop each
     * other's keys: a write stores its value only if its count did not move. */
    atomic_uint *gen;
    size_t ngens;
    size_t hand[LOCKS]; /* the next bucket of the group to evict, under its lock */
    /* Entries of the group, under its lock: eng__cache_clear (each FLUSHALL) skips
     * the empty groups instead of visiting every bucket (131,072 at the default
     * 64 MB: most of fuzz_commands' time once scans skipped the empty slots). */
    size_t count[LOCKS];
};

struct eng__cache *eng__cache_new(size_t budget)
{
    if (budget == 0)
        return NULL;
    struct eng__cache *c = cm_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    /* About one bucket (4 ways) per 512 bytes of budget: 100-byte values fill the
     * budget before the buckets overflow much. With 2 ways per 256 bytes, 100,000
     * keys in the default 64 MB (262,144 buckets) leave about 2% of them out by the
     * Poisson arithmetic (a third key in a bucket evicts one), and each of their
     * reads goes to RocksDB, often to a table file: 20 times a hit's cost (GET P16
     * in bench/icount.sh: 1,853 -> 1,654 instructions with 4 ways). With 4 ways
     * about 0.1% are left out. */
    size_t n = LOCKS;
    while (n < budget / 512 && n < ((size_t)1 << 21))
        n *= 2;
    c->nbuckets = n;
    c->budget = budget;
    c->ngens = n < GENS_MAX ? n : GENS_MAX;
    c->b = cm_calloc(n, sizeof(*c->b));
    c->gen = cm_calloc(c->ngens, sizeof(*c->gen));
    if (c->b == NULL || c->gen == NULL) {
        cm_free(c->b);
        cm_free(c->gen);
        cm_free(c);
        return NULL;
    }
    for (int i = 0; i < LOCKS; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    return c;
}

static size_t entry_size(const struct centry *e)
{
    return sizeof(*e) + e->cap;
}

/* Frees an entry of lock group g (its lock held, or the cache being freed). */
static void entry_free(struct eng__cache *c, size_t g, struct centry *e)
{
    if (e == NULL)
        return;
    c->count[g]--;
    atomic_fetch_sub_explicit(&c->bytes, entry_size(e), memory_order_relaxed);
    cm_free(e);
}

void eng__cache_free(struct eng__cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (int w = 0; w < WAYS; w++)
            entry_free(c, i % LOCKS, c->b[i][w]);
    for (int i = 0; i < LOCKS; i++)
        pthread_mutex_destroy(&c->locks[i]);
    cm_free(c->b);
    cm_free(c->gen);
    cm_free(c);
}

static size_t bucket_of(const struct eng__cache *c, uint64_t hash)
{
    return (size_t)hash & (c->nbuckets - 1);
}

/* The way of bucket bi holding key, or -1. Under the bucket's lock. */
static int find(struct eng__cache *c, size_t bi, uint64_t hash, const char *key, size_t klen)
{
    for (int w = 0; w < WAYS; w++) {
        const struct centry *e = c->b[bi][w];
        if (e != NULL && e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0)
            return w;
    }
    return -1;
}

int eng__cache_get(struct eng__cache *c, uint64_t hash, const char *key, size_t klen,
                   struct cm_buf *out)
{
    size_t bi = bucket_of(c, hash);
    pthread_mutex_t *m = &c->locks[bi % LOCKS];
    int rc = CM_ENOTFOUND;
    out->len = 0;
    pthread_mutex_lock(m);
    int w = find(c, bi, hash, key, klen);
    if (w >= 0) {
        const struct centry *e = c->b[bi][w];
        if (cm_buf_reserve(out, e->vlen ? e->vlen : 1) == 0) {
            memcpy(out->p, e->data + e->klen, e->vlen);
            out->len = e->vlen;
            rc = 0;
        }
    }
    pthread_mutex_unlock(m);
    return rc;
}

static atomic_uint *gen_of(struct eng__cache *c, size_t bi)
{
    return &c->gen[bi & (c->ngens - 1)];
}

unsigned eng__cache_gen(struct eng__cache *c, uint64_t hash)
{
    return atomic_load(gen_of(c, bucket_of(c, hash)));
}

size_t eng__cache_gen_slot(const struct eng__cache *c, uint64_t hash)
{
    return bucket_of(c, hash) & (c->ngens - 1);
}

/* Empties up to EVICT_STEPS buckets of lock group g (whose lock is held, and which
 * holds bucket keep: that one is left alone) until need more bytes fit. */
static bool make_room(struct eng__cache *c, size_t g, size_t keep, size_t need)
{
    size_t per = c->nbuckets / LOCKS;
    for (int i = 0; i < EVICT_STEPS; i++) {
        if (atomic_load_explicit(&c->bytes, memory_order_relaxed) + need <= c->budget)
            return true;
        size_t bi = g + (c->hand[g]++ % per) * LOCKS;
        if (bi == keep)
            continue;
        for (int w = 0; w < WAYS; w++) {
            entry_free(c, g, c->b[bi][w]);
            c->b[bi][w] = NULL;
        }
    }
    return atomic_load_explicit(&c->bytes, memory_order_relaxed) + need <= c->budget;
}

/* Stores key = val in bucket bi (its lock held), replacing the key's entry, else an
 * empty way, else the way the hash picks. Out of memory or budget: the key is not
 * cached (its old entry, if any, is gone). */
static void store(struct eng__cache *c, size_t bi, uint64_t hash, const char *key, size_t klen,
                  const char *val, size_t n)
{
    int w = find(c, bi, hash, key, klen);
    struct centry *e = w >= 0 ? c->b[bi][w] : NULL;
    if (e != NULL && e->cap >= klen + n && e->cap <= 2 * (klen + n)) {
        memcpy(e->data + klen, val, n); /* the same key: overwrite in place */
        e->vlen = (uint32_t)n;
        return;
    }
    if (w < 0) {
        w = (int)((hash >> 40) & (WAYS - 1));
        for (int i = 0; i < WAYS; i++)
            if (c->b[bi][i] == NULL) {
                w = i;
                break;
            }
        e = c->b[bi][w];
    }
    entry_free(c, bi % LOCKS, e);
    c->b[bi][w] = NULL;
    size_t need = sizeof(*e) + klen + n;
    if (!make_room(c, bi % LOCKS, bi, need) || (e = cm_malloc(need)) == NULL)
        return;
    atomic_fetch_add_explicit(&c->bytes, need, memory_order_relaxed);
    e->hash = hash;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)n;
    e->cap = klen + n;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, val, n);
    c->b[bi][w] = e;
    c->count[bi % LOCKS]++;
}

void eng__cache_fill(struct eng__cache *c, uint64_t hash, const char *key, size_t klen,
                     unsigned gen, const char *val, size_t n)
{
    if (n > ENG__CACHE_VALUE_MAX)
        return;
    size_t bi = bucket_of(c, hash);
    pthread_mutex_lock(&c->locks[bi % LOCKS]);
    if (atomic_load(gen_of(c, bi)) == gen)
        store(c, bi, hash, key, klen, val, n);
    pthread_mutex_unlock(&c->locks[bi % LOCKS]);
}

void eng__cache_set(struct eng__cache *c, uint64_t hash, const char *key, size_t klen,
                    unsigned gen, const char *val, size_t n)
{
    size_t bi = bucket_of(c, hash);
    pthread_mutex_t *m = &c->locks[bi % LOCKS];
    pthread_mutex_lock(m);
    if (val != NULL && n <= ENG__CACHE_VALUE_MAX && atomic_load(gen_of(c, bi)) == gen) {
        store(c, bi, hash, key, klen, val, n);
    } else {
        int w = find(c, bi, hash, key, klen);
        if (w >= 0) {
            entry_free(c, bi % LOCKS, c->b[bi][w]);
            c->b[bi][w] = NULL;
        }
    }
    atomic_fetch_add(gen_of(c, bi), 1);
    pthread_mutex_unlock(m);
}

void eng__cache_clear(struct eng__cache *c)
{
    for (size_t g = 0; g < LOCKS; g++) {
        pthread_mutex_lock(&c->locks[g]);
        for (size_t bi = g; c->count[g] > 0 && bi < c->nbuckets; bi += LOCKS)
            for (int w = 0; w < WAYS; w++) {
                entry_free(c, g, c->b[bi][w]);
                c->b[bi][w] = NULL;
            }
        for (size_t i = g; i < c->ngens; i += LOCKS)
            atomic_fetch_add(&c->gen[i], 1);
        pthread_mutex_unlock(&c->locks[g]);
    }
}

size_t eng__cache_bytes(struct eng__cache *c)
{
    return c == NULL ? 0 : atomic_load_explicit(&c->bytes, memory_order_relaxed);
}
