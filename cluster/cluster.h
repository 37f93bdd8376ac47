/* cluster.h - eddy's cluster: node identity, the slot map and its store, routing
 * decisions, and a small blocking node-to-node client.
 *
 * First milestone (docs/CLUSTER.md): membership is static; the slot map (an epoch,
 * the nodes, the owner of each of the 16384 slots) is computed by a tool (eddy-cli
 * --cluster create/add-node) and pushed to every node with CLUSTER SETMAP. A node
 * installs a pushed map only if its epoch is newer than the one it has, and keeps it
 * through a store interface (struct clu_store); the only store now is the engine's
 * metadata column family, a consensus service can replace it later. Depends on
 * engine/, common/ and the RESP codec (net/resp.h); never on net/'s server.
 */
#ifndef EDDY_CLUSTER_H
#define EDDY_CLUSTER_H

#include "../common/common.h"
#include "../engine/engine.h"
#include "../net/resp.h"

#define CLU_ID_LEN 40   /* node ids are 40 lowercase hex digits, like Redis's */
#define CLU_HOST_LEN 256

/* ---- The slot map (map.c) --------------------------------------------------------------
 * Payload format (CLUSTER SETMAP's second argument, CLUSTER GETMAP's reply, and the
 * stored form after an "<epoch>\n" line): text lines separated by "\n", empty lines
 * ignored, in this order:
 *     node <id> <host> <port>              one per node (at most CLU_MAX_NODES)
 *     slots <id> <range> [<range> ...]      slots owned by that node (at most 62
 *                                           ranges a line; repeat the line for more)
 * where a range is "lo-hi" or a single slot "n" (0 <= lo <= hi <= 16383). A slot may
 * be owned by one node only; slots listed by nobody are unassigned. */
#define CLU_MAX_NODES 1000

struct clu_node {
    char id[CLU_ID_LEN + 1];
    char host[CLU_HOST_LEN];
    int port;
};

struct clu_map {
    unsigned long long epoch;  /* 0: no map yet */
    int nnodes;
    struct clu_node *nodes;    /* owned */
    int16_t owner[CM_SLOTS];   /* index in nodes, -1 = unassigned */
};

/* A new empty map (epoch 0, no nodes, every slot unassigned), or NULL (no memory).
 * Freed with clu_map_free (NULL is a no-op). */
struct clu_map *clu_map_new(void);
void clu_map_free(struct clu_map *m);
/* Parses a payload into a new map with the given epoch. Returns 0 with *out set
 * (owned), or CM_EINVAL / CM_ENOMEM with err->msg saying what is wrong. */
int clu_map_parse(const char *p, size_t n, unsigned long long epoch, struct clu_map **out,
                  struct cm_err *err);
/* Appends m's payload (without the epoch) to out. Returns 0 or CM_ENOMEM. */
int clu_map_format(const struct clu_map *m, struct cm_buf *out);
/* Index of the node with that id in m, or -1. */
int clu_map_find(const struct clu_map *m, const char *id);
/* Appends a node with no slots. Returns its index, CM_EINVAL (bad id, host or port,
 * or the id is already there) or CM_ENOMEM. */
int clu_map_add_node(struct clu_map *m, const char *id, const char *host, int port);
/* Number of assigned slots. */
int clu_map_assigned(const struct clu_map *m);
/* True if both maps have the same nodes (in order) and owners; epochs are ignored. */
bool clu_map_same(const struct clu_map *a, const struct clu_map *b);
/* True if id is 40 hex digits. */
bool clu_id_valid(const char *id, size_t n);

/* ---- The map's store (store.c) ------------------------------------------------------------
 * Where a node keeps its map and its identity between runs. Every function returns 0
 * or a negative code with err set; none keeps a pointer to its arguments. */
struct clu_store {
    void *ud;
    /* Loads the saved map into *out (owned, clu_map_free): 0, CM_ENOTFOUND when no
     * map was ever saved, CM_EINVAL for a corrupt record, or CM_EIO. */
    int (*load_map)(void *ud, struct clu_map **out, struct cm_err *err);
    /* Saves m durably (it survives a crash once this returns 0). */
    int (*save_map)(void *ud, const struct clu_map *m, struct cm_err *err);
    /* Reads this node's id (41 bytes with the NUL): 0 or CM_ENOTFOUND or CM_EIO. */
    int (*load_id)(void *ud, char id[CLU_ID_LEN + 1], struct cm_err *err);
    int (*save_id)(void *ud, const char *id, struct cm_err *err);
    void (*free)(void *ud); /* may be NULL */
};
/* The store kept in e's metadata column family (keys "cluster:myid" and
 * "cluster:map"). e is borrowed and must outlive the store. */
void clu_store_meta_init(struct clu_store *st, struct eng *e);

/* ---- A node's cluster state (cluster.c) ------------------------------------------------------ */
struct cluster;

/* Opens the cluster state: loads the node id (creating a random one at first start)
 * and the saved map from store (copied; the cluster calls its free at the end).
 * Returns NULL with err set on a store failure. */
struct cluster *clu_new(const struct clu_store *store, struct cm_err *err);
void clu_free(struct cluster *cl); /* NULL is a no-op */
/* This node's id, 40 hex digits; borrowed for the cluster's life. */
const char *clu_myid(const struct cluster *cl);
/* The installed map (epoch 0 and no nodes before the first SETMAP). Lock-free and
 * thread-safe; the map is immutable and stays valid until clu_free (replaced maps
 * are kept, maps change rarely). */
const struct clu_map *clu_map_get(const struct cluster *cl);
/* Index of this node in m, or -1. */
int clu_map_self(const struct cluster *cl, const struct clu_map *m);
/* Installs m (owned, freed on failure too) if its epoch is newer than the installed
 * one: saves it through the store first, then publishes it. A map equal to the
 * installed one with the same epoch is accepted as a no-op (0). Returns 0, CM_EINVAL
 * (an older or conflicting epoch; err->msg is the reply text), or CM_EIO. Serialized
 * by an internal lock, so concurrent pushes cannot install an older map last. */
int clu_map_install(struct cluster *cl, struct clu_map *m, struct cm_err *err);

/* Routing of a command whose keys all hash to slot. Returns CLU_LOCAL, or CLU_MOVED /
 * CLU_DOWN with msg set to the error reply ("MOVED 3999 127.0.0.1:7712",
 * "CLUSTERDOWN Hash slot not served"). */
enum { CLU_LOCAL = 0, CLU_MOVED = 1, CLU_DOWN = 2 };
int clu_route(const struct cluster *cl, unsigned slot, char *msg, size_t cap);

/* ---- Node-to-node calls (link.c) -----------------------------------------------------------
 * A blocking, one-shot client over the RESP codec: connects to host:port (timeout_ms
 * bounds the connect and each wait), sends AUTH password first when password is not
 * NULL or "", then the command, and reads one reply. Returns 0 with *reply set
 * (owned, resp_value_free; it may be an error reply), or CM_EIO / CM_EPROTO /
 * CM_ENOMEM with err->msg set ("127.0.0.1:7712: Connection refused"). */
int clu_link_call(const char *host, int port, const char *password, int timeout_ms, int argc,
                  const char *const *argv, const size_t *argvlen, struct resp_value **reply,
                  struct cm_err *err);

/* ---- Function versions (fn.c) ---------------------------------------------------------------
 * Rewrites a FUNCTION LIST WITHCODE reply encoded in RESP3 (listing, n bytes) into the
 * reply for a client of protocol resp: each library gets a "library_version" field,
 * the SHA-1 (40 hex) of its code, and keeps "library_code" only if withcode. Returns 0,
 * CM_EPROTO (not such a listing) or CM_ENOMEM. */
int clu_fn_list_versions(const char *listing, size_t n, bool withcode, struct cm_buf *out,
                         int resp);

#endif
