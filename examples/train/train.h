/* train.h - eddy-train, the model-training example's driver (examples/train/README.md).
 *
 * One binary, several subcommands: loaders for the real UCI sentences and for synthetic
 * reviews (load.c, synth.c), featurization and training through MAPREDUCE next to the
 * data ("store" mode), and the same training in the client ("client" mode: every epoch
 * pulls every feature vector and computes the gradient here, model.c), with a table,
 * CSV and SVG charts of both (run.c, plot.c), over a byte-counting connection (conn.c).
 * It talks to eddyd only through libeddy.
 * Every name has the prefix tr_.
 */
#ifndef EDDY_TRAIN_H
#define EDDY_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../client/eddy.h"
#include "../../common/common.h"

/* ---- Options of every subcommand (main.c fills them) ------------------------------ */
enum tr_mode { TR_STORE = 1, TR_CLIENT = 2, TR_BOTH = 3 };

struct tr_opts {
    const char *host;
    int port;
    const char *password;   /* NULL: no AUTH */
    const char *lib;        /* path of train.lua; NULL: look next to the binary, then ./ */
    /* loaders */
    const char *dir;        /* UCI data folder */
    const char *files[8];   /* UCI files to load (empty: amazon_cells_labelled.txt) */
    int nfiles;
    unsigned long long bytes;   /* synthetic: stop after this many bytes of reviews */
    unsigned long long reviews; /* synthetic: or after this many reviews */
    unsigned long long seed;
    int vocab;              /* synthetic vocabulary size */
    int classes;            /* 2 or 5; 0: from train:meta */
    bool clear;             /* delete earlier training keys before loading */
    /* featurize */
    int bits;               /* D = 2^bits; 0: from train:meta (featurize: 18) */
    int block;              /* featurize: reviews per feature block at most */
    /* train */
    enum tr_mode mode;
    int epochs;
    double lr, l2, momentum;
    const char *plot_dir;   /* NULL: no charts */
    const char *csv;        /* NULL: no CSV */
    int batch;              /* client mode: blocks per SCAN/MGET round */
    bool quiet;             /* no progress bars */
};

/* ---- A counted connection (conn.c) --------------------------------------------------- */

/* A libeddy handle that counts the RESP bytes it sends and receives. Against a cluster
 * (CLUSTER SLOTS answers) it holds a connection to every node: commands with a key
 * (GET SET DEL EXISTS MGET: their first key) go to the key's owner, the others to the
 * current node (tr_use_node), and replies are read back in the order of the commands. */
#define TR_MAX_NODES 64
struct tr_conn {
    eddy_ctx *ctx;          /* the current node */
    unsigned long long sent, recv;
    int nnodes, cur;        /* 1 and 0 against a single server */
    eddy_ctx *node[TR_MAX_NODES];
    short *owner;           /* cluster: node index of each slot, -1 if none */
    int *fifo;              /* cluster: the node of each reply still to read */
    size_t fhead, ftail, fcap;
};

/* Connects (10 s timeout), then waits for replies without a timeout: a map over a
 * large data set answers late. Returns 0, or -1 after printing why. */
int tr_conn_open(struct tr_conn *c, const struct tr_opts *o);
void tr_conn_close(struct tr_conn *c);
/* Sends one command and waits for its reply (owned by the caller); NULL after printing
 * the connection failure. Counts the bytes both ways. */
struct eddy_reply *tr_cmd(struct tr_conn *c, int argc, const char **argv, const size_t *lens);
/* Pipelining: queue, then read replies in order (counted like tr_cmd). */
int tr_append(struct tr_conn *c, int argc, const char **argv, const size_t *lens);
struct eddy_reply *tr_reply(struct tr_conn *c);
/* Flushes the queued commands of every node. Returns 0 or -1 after printing why. */
int tr_flush(struct tr_conn *c);
/* Cluster mode: the number of nodes (1 otherwise) and the node that commands without a
 * key go to from now on (SCAN, INFO, CONFIG...). */
int tr_nodes(const struct tr_conn *c);
void tr_use_node(struct tr_conn *c, int i);
/* Size of a command / of a reply in RESP2 bytes. */
size_t tr_cmd_size(int argc, const size_t *lens);
size_t tr_reply_size(const struct eddy_reply *r);
/* Prints "eddy-train: what: <error reply or connection error>" to stderr. */
void tr_report(struct tr_conn *c, const char *what, const struct eddy_reply *r);

/* train:meta, "name=value" lines: source, classes, reviews, D, true_test_acc... */
struct tr_meta {
    int classes;
    long long D;
    long long reviews;
    double true_test_acc;   /* < 0: unknown (real data) */
    char source[128];
};
/* Reads train:meta; returns 0, 1 if it is missing, -1 on a connection failure. */
int tr_meta_get(struct tr_conn *c, struct tr_meta *m);
int tr_meta_set(struct tr_conn *c, const struct tr_meta *m);

/* ---- Subcommands ------------------------------------------------------------------------ */
int tr_load_uci(const struct tr_opts *o);      /* load.c */
int tr_load_synth(const struct tr_opts *o);    /* synth.c */
int tr_clear(const struct tr_opts *o);         /* load.c */
int tr_featurize(const struct tr_opts *o);     /* run.c */
int tr_train(const struct tr_opts *o);         /* run.c */

/* ---- Bulk writer with a progress bar (load.c) --------------------------------------- */
struct tr_writer;
/* total: expected bytes (0: unknown) for the progress bar. */
struct tr_writer *tr_writer_new(struct tr_conn *c, unsigned long long total, bool quiet);
/* Queues SET key value; sends in batches and checks every reply. Returns 0 or -1. */
int tr_writer_set(struct tr_writer *w, const char *key, size_t klen, const char *val,
                  size_t vlen);
/* Waits for every reply, ends the progress bar, frees w. Returns 0 or -1 (also when an
 * earlier tr_writer_set failed). Sets *written to the number of SETs acknowledged. */
int tr_writer_finish(struct tr_writer *w, unsigned long long *written);

/* A progress bar on stderr (only when stderr is a terminal and not quiet). */
void tr_progress(const char *what, unsigned long long done, unsigned long long total,
                 double t0, bool quiet, bool final);

/* ---- Features and the model in C (model.c) -------------------------------------------- */

/* 32-bit FNV-1a, as train.lua computes it. */
uint32_t tr_fnv1a(const void *p, size_t n);
/* True if review id (the text between the braces) is in the held-out test split. */
bool tr_is_test(const char *id, size_t n);

/* A feature block fb:{id}:n (train.lua): "TRB1" | uint32 rows | rows bytes class |
 * rows bytes split | eddy.vec CSR matrix. Borrowed from the value. */
struct tr_block {
    size_t rows;
    const unsigned char *y, *test;
    struct cm_csr X;
};
/* Parses a block value; returns 0, or -1 if it is malformed or not dim columns wide. */
int tr_block_parse(const char *v, size_t len, size_t dim, struct tr_block *b);

/* Gradient state of the client mode: K vectors of dim doubles. */
struct tr_model {
    int K;
    size_t dim;
    double *w, *v, *g;      /* K * dim each: weights, velocity, gradient sum */
    /* statistics of the current pass */
    long long ntr, nte, corr, tcorr;
    double loss, tloss;
};
int tr_model_init(struct tr_model *m, int classes, size_t dim);
void tr_model_deinit(struct tr_model *m);
/* Starts a pass: zero gradient and statistics. */
void tr_model_begin(struct tr_model *m);
/* Adds one block with eddy.vec's kernel (cm_glm_grad), as train.lua does; returns 0,
 * or -1 if a class is out of range. */
int tr_model_add(struct tr_model *m, const struct tr_block *b);
/* Applies one step (train.lua's train_step): returns the gradient norm. */
double tr_model_step(struct tr_model *m, double lr, double l2, double mu);
/* The weights in train:w's layout (K dense eddy.vec encodings); malloc'd, *len set. */
char *tr_model_encode(const struct tr_model *m, size_t *len);

/* ---- Charts (plot.c) ---------------------------------------------------------------------- */
struct tr_series {
    const char *name;
    const char *color;
    const double *y;        /* y[0..n-1] for epochs 1..n */
    int n;
};
/* Writes an SVG line chart to path; returns 0 or -1 (errno). */
int tr_plot_svg(const char *path, const char *title, const char *ylabel,
                const struct tr_series *s, int ns);

/* ---- Utilities ------------------------------------------------------------------------------ */
double tr_now(void);        /* monotonic seconds */
/* "1.5 GB", "312 B": human bytes into buf. Returns buf. */
const char *tr_bytes(unsigned long long n, char *buf, size_t cap);

#endif
