/* cluster.h - eddy's cluster: node identity, the slot map and its store, routing
 * decisions, and a small blocking node-to-node client.
 *
 * docs/CLUSTER.md: membership is static; the slot map (an epoch, the nodes, the
 * coordinator, the owner of each of the 16384 slots) is created by a tool (eddy-cli
 * --cluster create) and pushed to every node with CLUSTER SETMAP; later changes are
 * proposals to the coordinator node, which orders them and pushes each map. A node
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
 *     coordinator <id>                     the node that holds the map (optional,
 *                                           after the node lines; default: the first)
 *     slots <id> <range> [<range> ...]      slots owned by that node (at most 62
 *                                           ranges a line; repeat the line for more)
 * where a range is "lo-hi" or a single slot "n" (0 <= lo <= hi <= 16383). A slot may
 * be owned by one node only; slots listed by nobody are unassigned. */
#define CLU_MAX_NODES 1000
/* The largest epoch a map may have: far from overflow (a move makes base + 1, and the
 * stored map is parsed back as a signed number at start). */
#define CLU_EPOCH_MAX (1ULL << 62)

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
    int coord;                 /* index of the coordinator; -1: not named (the first) */
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
/* Index of m's coordinator: the node named by its "coordinator" line, else the first
 * node; -1 for a map without nodes. */
int clu_map_coordinator(const struct clu_map *m);
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

/* ---- The coordinator (cluster.c) ----------------------------------------------------------
 * Every change of the map after its creation is a proposal to the coordinator named
 * by the installed map (CLUSTER PROPOSEMAP): it accepts a map of exactly its epoch + 1
 * (or the map it has, again: a retried proposal), saves and installs it, and pushes
 * it (CLUSTER SETMAP) to the node `first` (may be NULL), then to every other node of
 * the new map; a refused proposal gets the coordinator's reason. */

/* Proposes m (owned, freed in every case): on this node if it is the coordinator,
 * else with CLUSTER PROPOSEMAP on the coordinator; then installs it here if the
 * coordinator's push has not done so. When the coordinator cannot be reached, this
 * node installs and pushes m itself (logged; the coordinator catches up from its
 * peers when it returns). password: requirepass of the nodes ("" or NULL: none).
 * Blocks for the node-to-node calls. Returns 0, CM_EINVAL (refused: err->msg is the
 * reason as an error reply text), CM_EIO or CM_ENOMEM. */
int clu_map_propose(struct cluster *cl, struct clu_map *m, const char *first,
                    const char *password, struct cm_err *err);
/* CLUSTER PROPOSEMAP on this node: like clu_map_propose when this node is the
 * coordinator of its installed map; refused with "ERR not the coordinator ..." (naming
 * it) otherwise. */
int clu_map_accept(struct cluster *cl, struct clu_map *m, const char *first,
                   const char *password, struct cm_err *err);
/* Pushes m to the node `first` (if not NULL and not this node), then to every other
 * node of m but this one. Failures are logged. */
void clu_map_push_all(struct cluster *cl, const struct clu_map *m, const char *first,
                      const char *password);
/* Counters of this node as coordinator: proposals accepted and refused; and of this
 * node as proposer: proposals it applied itself because the coordinator was away. */
struct clu_coord_stats {
    unsigned long long accepted, refused, fallbacks;
};
void clu_coord_stats(const struct cluster *cl, struct clu_coord_stats *out);

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
/* The same over a connection kept open for many calls (a migration's stream). open
 * returns NULL with err set; cmd returns as clu_link_call (after an error the link is
 * unusable: close it). close(NULL) is a no-op. */
struct clu_link;
struct clu_link *clu_link_open(const char *host, int port, const char *password, int timeout_ms,
                               struct cm_err *err);
int clu_link_cmd(struct clu_link *l, int argc, const char *const *argv, const size_t *argvlen,
                 struct resp_value **reply, struct cm_err *err);
void clu_link_close(struct clu_link *l);
/* Pipelining on a link: send one command without waiting, and read the next reply (in
 * the order sent). Return as clu_link_cmd. */
int clu_link_send(struct clu_link *l, int argc, const char *const *argv, const size_t *argvlen,
                  struct cm_err *err);
int clu_link_recv(struct clu_link *l, struct resp_value **reply, struct cm_err *err);

/* ---- Online slot migration (migrate.c) -------------------------------------------------------
 * docs/CLUSTER.md describes the protocol. The source streams a snapshot of the slots
 * (zstd batches of CLUSTER IMPORT LOAD) to the target from its own thread, then the
 * keys written meanwhile (engine slot watch), fences the slots, sends the last
 * writes, and commits with CLUSTER IMPORT HANDOFF: from then on the target holds the
 * slots' data (source answers -ASK, target serves ASKING clients) until the map of
 * epoch base+1 that gives them to the target is installed everywhere; then the source
 * drops its copy. Both sides persist their state in the metadata column family
 * ("cluster:mig-out", "cluster:mig-in") and finish or roll back after a restart
 * (clu_mig_recover). */

/* What routing does with a slot this node's map assigns (clu_route's result r): */
enum {
    CLU_ASK = 3,  /* msg is "ASK <slot> <host>:<port>" */
    CLU_WAIT = 4  /* the slot is fenced: wait with clu_mig_wait, then route again;
                     msg is the TRYAGAIN reply for when waiting is not possible */
};
/* Routing with migrations: clu_route, then CLU_WAIT / CLU_ASK for slots this node is
 * moving out, and CLU_LOCAL instead of CLU_MOVED for a slot being imported whose data
 * is complete here when the client sent ASKING. */
int clu_route_mig(const struct cluster *cl, unsigned slot, bool asking, char *msg, size_t cap);
/* Waits until the slot is no longer fenced or timeout_ms passed. True if unfenced. */
bool clu_mig_wait(struct cluster *cl, unsigned slot, int timeout_ms);

/* The password of the other nodes (requirepass, "" for none) into out (cap bytes); it
 * may change at run time, so it is asked for at each use, from any thread. */
#define CLU_PASS_MAX 512
typedef void (*clu_password_fn)(void *ud, char *out, size_t cap);
/* Starts the migration machinery of cl: e is borrowed for cl's life, password (with
 * password_ud) gives the nodes' password. Reads the persisted migration state and finishes or rolls
 * back an interrupted move (in a background thread when the peer must be asked).
 * Returns 0 or a negative code with err set. */
int clu_mig_open(struct cluster *cl, struct eng *e, clu_password_fn password, void *password_ud,
                 struct cm_err *err);
/* Stops the migration thread (a running move is rolled back if not yet committed). */
void clu_mig_close(struct cluster *cl);

/* A request to move slots from this node. slots: bit s%8 of byte s/8. */
struct clu_mig_req {
    char target[CLU_HOST_LEN + 16]; /* node id or host:port */
    uint8_t slots[CM_SLOTS / 8];
    double rate_mb;                 /* MB/s of raw data, 0 = unlimited */
};
/* Starts a migration in the background. Returns 0 with *id (the migration id) set, or
 * CM_EINVAL with err->msg the reply text (not the owner of every slot, unknown
 * target, one already running...). */
int clu_mig_start(struct cluster *cl, const struct clu_mig_req *rq, char id[64],
                  struct cm_err *err);
/* Asks the running outgoing migration to stop and roll back. CM_EINVAL with err set
 * when there is none or it has committed already. */
int clu_mig_cancel(struct cluster *cl, struct cm_err *err);
/* Appends the status text ("field:value\r\n" lines) to out. */
int clu_mig_status(struct cluster *cl, struct cm_buf *out);
/* CLUSTER IMPORT <sub> ...: the target side (args after IMPORT). Appends the reply
 * to out (RESP). Returns 0 or CM_ENOMEM. */
int clu_mig_import_cmd(struct cluster *cl, int argc, const char *const *argv,
                       const size_t *argvlen, struct cm_buf *out);
/* Parses "lo-hi" or "n" into the bitmap. 0 or CM_EINVAL. */
int clu_slots_parse(const char *s, size_t n, uint8_t slots[CM_SLOTS / 8]);

/* ---- Function versions (fn.c) ---------------------------------------------------------------
 * Rewrites a FUNCTION LIST WITHCODE reply encoded in RESP3 (listing, n bytes) into the
 * reply for a client of protocol resp: each library gets a "library_version" field,
 * the SHA-1 (40 hex) of its code, and keeps "library_code" only if withcode. Returns 0,
 * CM_EPROTO (not such a listing) or CM_ENOMEM. */
int clu_fn_list_versions(const char *listing, size_t n, bool withcode, struct cm_buf *out,
                         int resp);

#endif
