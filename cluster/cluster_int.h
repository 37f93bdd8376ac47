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

#endif
