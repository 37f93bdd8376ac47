/* cluster.c - libeddy's cluster mode: routes each command to the node that owns its
 * key's slot, using a slot map read with CLUSTER SLOTS; follows MOVED (refreshing the
 * map) and ASK (ASKING, then the command, once) like Redis Cluster clients, and
 * retries TRYAGAIN (a slot move's write fence, which lasts milliseconds) after a
 * growing pause. Built on the public API of eddy.c only. */
#include "eddy.h"

#include "../common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_NODES 64
#define MAX_HOPS 5
/* TRYAGAIN: retried after 2, 4, 8 ... 256 ms, then capped: about 1.5 s in all, longer
 * than any write fence of a slot move (docs/CLUSTER.md). */
#define MAX_TRYAGAIN 12

struct node {
    char host[256];
    int port;
    eddy_ctx *ctx; /* connected on first use */
};

struct eddy_cluster {
    struct node nodes[MAX_NODES];
    int nnodes;
    short owner[CM_SLOTS]; /* index into nodes, -1 unknown */
    int timeout_ms;
    char *password;
    char errstr[EDDY_ERRLEN];
};

static void cl_note(eddy_cluster *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cl_note(eddy_cluster *cl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->errstr, sizeof(cl->errstr), fmt, ap);
    va_end(ap);
}

static int node_index(eddy_cluster *cl, const char *host, size_t hlen, int port)
{
    for (int i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].port == port && strlen(cl->nodes[i].host) == hlen &&
            memcmp(cl->nodes[i].host, host, hlen) == 0)
            return i;
    if (cl->nnodes == MAX_NODES || hlen >= sizeof(cl->nodes[0].host))
        return -1;
    struct node *n = &cl->nodes[cl->nnodes];
    memcpy(n->host, host, hlen);
    n->host[hlen] = '\0';
    n->port = port;
    n->ctx = NULL;
    return cl->nnodes++;
}

static eddy_ctx *node_ctx(eddy_cluster *cl, int i)
{
    struct node *n = &cl->nodes[i];
    if (n->ctx != NULL && eddy_err(n->ctx) != EDDY_OK) {
        eddy_free(n->ctx); /* a broken connection is replaced */
        n->ctx = NULL;
    }
    if (n->ctx == NULL) {
        char err[EDDY_ERRLEN];
        n->ctx = eddy_connect(n->host, n->port, cl->timeout_ms, cl->password, err);
        if (n->ctx == NULL)
            cl_note(cl, "%s:%d: %s", n->host, n->port, err);
    }
    return n->ctx;
}

/* Reads CLUSTER SLOTS from node i into the slot map. Returns 0 or -1. */
static int load_slots(eddy_cluster *cl, int i)
{
    eddy_ctx *c = node_ctx(cl, i);
    if (c == NULL)
        return -1;
    struct eddy_reply *r = eddy_command(c, "CLUSTER", "SLOTS", (char *)NULL);
    if (r == NULL || r->type != EDDY_REPLY_ARRAY) {
        cl_note(cl, "CLUSTER SLOTS failed: %s", r && r->str ? r->str : eddy_errstr(c));
        eddy_reply_free(r);
        return -1;
    }
    for (size_t s = 0; s < CM_SLOTS; s++)
        cl->owner[s] = -1;
    for (size_t k = 0; k < r->elements; k++) {
        struct eddy_reply *e = r->element[k];
        if (e->type != EDDY_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != EDDY_REPLY_INTEGER || e->element[1]->type != EDDY_REPLY_INTEGER ||
            e->element[2]->type != EDDY_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        struct eddy_reply *m = e->element[2];
        if (m->element[0]->type != EDDY_REPLY_STRING || m->element[1]->type != EDDY_REPLY_INTEGER)
            continue;
        int idx = node_index(cl, m->element[0]->str, m->element[0]->len, (int)m->element[1]->integer);
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        for (long long s = lo; idx >= 0 && s <= hi && s < CM_SLOTS; s++)
            if (s >= 0)
                cl->owner[s] = (short)idx;
    }
    eddy_reply_free(r);
    return 0;
}

eddy_cluster *eddy_cluster_connect(const char *host, int port, int timeout_ms,
                                   const char *password, char *errbuf)
{
    eddy_cluster *cl = cm_calloc(1, sizeof(*cl));
    if (cl == NULL) {
        if (errbuf)
            snprintf(errbuf, EDDY_ERRLEN, "Out of memory");
        return NULL;
    }
    cl->timeout_ms = timeout_ms;
    if (password != NULL && (cl->password = cm_strdup(password)) == NULL) {
        cm_free(cl);
        if (errbuf)
            snprintf(errbuf, EDDY_ERRLEN, "Out of memory");
        return NULL;
    }
    int seed = node_index(cl, host, strlen(host), port);
    if (seed < 0 || load_slots(cl, seed) != 0) {
        if (errbuf)
            snprintf(errbuf, EDDY_ERRLEN, "%s", seed < 0 ? "host name too long" : cl->errstr);
        eddy_cluster_free(cl);
        return NULL;
    }
    return cl;
}

void eddy_cluster_free(eddy_cluster *cl)
{
    if (cl == NULL)
        return;
    for (int i = 0; i < cl->nnodes; i++)
        eddy_free(cl->nodes[i].ctx);
    cm_free(cl->password);
    cm_free(cl);
}

const char *eddy_cluster_errstr(const eddy_cluster *cl)
{
    return cl->errstr;
}

/* The slot of the command's first key, or -1 for a command without keys. FCALL and
 * the EVAL family take their key after numkeys; a short list of keyless commands go
 * to any node; every other command's key is its first argument. */
static int command_slot(int argc, const char **argv, const size_t *len)
{
    static const char *const keyless[] = {
        "PING", "ECHO", "INFO", "TIME", "DBSIZE", "KEYS", "SCAN", "CONFIG", "CLIENT",
        "FUNCTION", "MAPREDUCE", "CLUSTER", "COMMAND", "HELLO", "AUTH", "SELECT", "FLUSHALL",
        "FLUSHDB", "RANDOMKEY", "SHUTDOWN", "SCRIPT", "QUIT", NULL};
    if (argc < 2)
        return -1;
    for (int i = 0; keyless[i] != NULL; i++)
        if (len[0] == strlen(keyless[i]) && strncasecmp(argv[0], keyless[i], len[0]) == 0)
            return -1;
    const char *evals[] = {"FCALL", "FCALL_RO", "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", NULL};
    for (int i = 0; evals[i] != NULL; i++)
        if (len[0] == strlen(evals[i]) && strncasecmp(argv[0], evals[i], len[0]) == 0) {
            if (argc < 4 || len[2] == 0 || (len[2] == 1 && argv[2][0] == '0'))
                return -1; /* no keys: any node */
            return (int)cm_key_slot(argv[3], len[3]);
        }
    return (int)cm_key_slot(argv[1], len[1]);
}

/* Parses "MOVED 3999 127.0.0.1:6381" / "ASK ..."; returns the node index or -1. */
static int redirect_target(eddy_cluster *cl, const struct eddy_reply *r, bool *ask, int *slot)
{
    const char *s = r->str;
    size_t skip;
    if (strncmp(s, "MOVED ", 6) == 0) {
        *ask = false;
        skip = 6;
    } else if (strncmp(s, "ASK ", 4) == 0) {
        *ask = true;
        skip = 4;
    } else {
        return -1;
    }
    char *end;
    long v = strtol(s + skip, &end, 10);
    if (end == s + skip || *end != ' ' || v < 0 || v >= CM_SLOTS)
        return -1;
    *slot = (int)v;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr)
        return -1;
    int port = atoi(colon + 1);
    return port > 0 ? node_index(cl, addr, (size_t)(colon - addr), port) : -1;
}

struct eddy_reply *eddy_cluster_command_argv(eddy_cluster *cl, int argc, const char **argv,
                                             const size_t *argvlen)
{
    size_t lens_small[16];
    size_t *lens = (size_t *)argvlen;
    if (argc <= 0 || argv == NULL) {
        cl_note(cl, "no command");
        return NULL;
    }
    if (argvlen == NULL) {
        lens = argc <= 16 ? lens_small : cm_malloc((size_t)argc * sizeof(*lens));
        if (lens == NULL) {
            cl_note(cl, "Out of memory");
            return NULL;
        }
        for (int i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
    }
    int slot = command_slot(argc, argv, lens);
    int target = slot >= 0 && cl->owner[slot] >= 0 ? cl->owner[slot] : 0;
    bool asking = false;
    int tries = 0;
    struct eddy_reply *r = NULL;
    int hop;
    for (hop = 0; hop <= MAX_HOPS; hop++) {
        eddy_ctx *c = node_ctx(cl, target);
        if (c == NULL)
            break;
        if (asking) {
            struct eddy_reply *a = eddy_command(c, "ASKING", (char *)NULL);
            eddy_reply_free(a);
        }
        r = eddy_command_argv(c, argc, argv, lens);
        if (r == NULL) {
            cl_note(cl, "%s:%d: %s", cl->nodes[target].host, cl->nodes[target].port,
                    eddy_errstr(c));
            break;
        }
        if (r->type != EDDY_REPLY_ERROR)
            break;
        if (strncmp(r->str, "TRYAGAIN", 8) == 0 && tries < MAX_TRYAGAIN) {
            long ms = 2L << (tries < 7 ? tries : 7);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            tries++;
            hop--; /* the same node again: not a hop */
            eddy_reply_free(r);
            r = NULL;
            continue;
        }
        int rslot, next = redirect_target(cl, r, &asking, &rslot);
        if (next < 0)
            break; /* an ordinary error reply */
        if (!asking) { /* the slot moved: refresh the whole map from its new owner */
            cl->owner[rslot] = (short)next;
            load_slots(cl, next);
        }
        eddy_reply_free(r);
        r = NULL;
        target = next;
    }
    if (r == NULL && hop > MAX_HOPS)
        cl_note(cl, "Too many cluster redirections (more than %d)", MAX_HOPS);
    if (lens != argvlen && lens != lens_small)
        cm_free(lens);
    return r;
}
