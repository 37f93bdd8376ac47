/* cluster_int.h - declarations private to cluster/: the link between a node's cluster
 * state (cluster.c) and its migration machinery (migrate.c). */
#ifndef EDDY_CLUSTER_INT_H
#define EDDY_CLUSTER_INT_H

#include "cluster.h"

struct clu_mig;

/* The migration state of cl, NULL before clu_mig_open. */
struct clu_mig *clu__mig(const struct cluster *cl);
void clu__set_mig(struct cluster *cl, struct clu_mig *g);
/* Called by clu_map_install after m (now installed) was published. */
void clu__mig_on_map(struct clu_mig *g, const struct clu_map *m);

/* Slot-migration batches (migrate.c), what CLUSTER IMPORT LOAD carries: entries,
 * little-endian, 'P' klen:u32 key type:u8 expire_ms:i64 vlen:u32 value or 'D' klen:u32
 * key, zstd-compressed, sent with the raw length. Exposed for tests and the fuzzer. */
struct clu_mig_entry {
    char op;         /* 'P' (put) or 'D' (delete) */
    const char *key; /* borrowed: inside the batch */
    size_t klen;
    int type; /* 'P': ENG_T_STRING, the only type a batch carries */
    int64_t expire_ms;
    const char *val; /* 'P': borrowed, inside the batch; 'D': NULL */
    size_t vlen;
};

/* Decompresses the zstd frame z[0..zn) into *raw (owned: cm_free; a NUL follows the
 * bytes), which must come out at exactly rawlen bytes. Returns 0; CM_EINVAL when rawlen
 * is negative or over 64 MB; CM_ENOMEM; CM_EPROTO when z is not a frame of rawlen
 * bytes. *raw is NULL on failure. */
int clu__mig_unzip(const char *z, size_t zn, long long rawlen, char **raw);
/* Reads the entry at *off of the raw batch p[0..n) into e and moves *off past it.
 * Returns 1; 0 at the end of the batch; CM_EPROTO with err set ("truncated entry",
 * "truncated key", "bad value", "bad entry"), *off unchanged. */
int clu__mig_next(const char *p, size_t n, size_t *off, struct clu_mig_entry *e,
                  struct cm_err *err);

#endif
