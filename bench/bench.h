/* bench.h - the library of eddy-bench (bin/eddy-bench), a RESP load generator.
 *
 * eddy_bench.c holds main(); the other .c files of bench/ are this library, which
 * tests/unit/test_bench.c links too: the latency histogram (hist.c), the random
 * generator and key distributions (keys.c), the command line (args.c), the
 * workloads and their commands (workload.c), MOVED/ASK and the slot map (route.c),
 * the open-loop schedule and the worker threads (run.c), and the reports
 * (report.c). It talks to servers only through libeddy (client/eddy.h).
 *
 * Conventions: functions that act return 0 or a negative code (-1 unless said
 * otherwise) and write a message into an optional err buffer of EB_ERRLEN bytes;
 * nothing returned is owned by the caller unless the comment says so.
 */
#ifndef EDDY_BENCH_H
#define EDDY_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EB_ERRLEN 256

/* ---- Histogram (hist.c) -------------------------------------------------------------
 * Log-linear buckets in the manner of HdrHistogram: values below 2^(bits+1) are exact;
 * above, each power of two is split into 2^bits buckets, so a reported value (the
 * middle of its bucket) is within 2^-(bits+1) of the true one (0.4% at the default
 * bits = 7). The unit is the caller's (eddy-bench records nanoseconds). min, max,
 * count and sum are exact. Not thread-safe: one per thread, merged at the end. */
#define EB_HIST_BITS 7

struct eb_hist {
    int bits;
    size_t nbuckets;
    uint64_t *counts; /* owned; nbuckets entries */
    uint64_t count, min, max;
    double sum;
};

/* Prepares h with 2^bits sub-buckets (1 <= bits <= 16). Returns 0 or -1 (no memory). */
int eb_hist_init(struct eb_hist *h, int bits);
/* Frees the buckets; h may be zeroed memory or already deinitialised. */
void eb_hist_deinit(struct eb_hist *h);
/* Forgets every value. */
void eb_hist_reset(struct eb_hist *h);
/* Records n occurrences of v. */
void eb_hist_add_n(struct eb_hist *h, uint64_t v, uint64_t n);
static inline void eb_hist_add(struct eb_hist *h, uint64_t v) { eb_hist_add_n(h, v, 1); }
/* Adds every value of src into dst (same bits). Returns 0, or -1 if the bits differ. */
int eb_hist_merge(struct eb_hist *dst, const struct eb_hist *src);
/* The value at percentile p (0..100): the smallest recorded value v such that at least
 * p% of the values are <= v, reported as the middle of its bucket and clamped to
 * [min, max]. p <= 0 gives min, p >= 100 max; an empty histogram gives 0. */
uint64_t eb_hist_percentile(const struct eb_hist *h, double p);
double eb_hist_mean(const struct eb_hist *h);
/* Bucket arithmetic, exposed for tests: the index of v, and the lowest and highest
 * value of bucket i. */
size_t eb_hist_index(int bits, uint64_t v);
uint64_t eb_hist_bucket_low(int bits, size_t i);
uint64_t eb_hist_bucket_high(int bits, size_t i);

/* ---- Random numbers and key distributions (keys.c) -------------------------------- */

/* xoshiro256**, seeded through splitmix64. One per thread. */
struct eb_rng {
    uint64_t s[4];
};
void eb_rng_seed(struct eb_rng *r, uint64_t seed);
uint64_t eb_rng_next(struct eb_rng *r);
double eb_rng_double(struct eb_rng *r);             /* uniform in [0, 1) */
uint64_t eb_rng_below(struct eb_rng *r, uint64_t n); /* uniform in [0, n), n > 0 */

/* The Zipfian generator of Gray et al., "Quickly Generating Billion-Record Synthetic
 * Databases" (SIGMOD 1994), as YCSB implements it: rank 0 is the most popular, and
 * P(rank i) is about (i+1)^-theta / zeta(n, theta). It grows incrementally (for the
 * "latest" distribution, whose item count rises with inserts). */
struct eb_zipf {
    uint64_t n;
    double theta, alpha, zetan, zeta2, eta;
};
/* zeta(n, theta) = sum of i^-theta for i = 1..n. */
double eb_zeta(uint64_t n, double theta);
/* n >= 1, 0 < theta < 1. Returns 0 or -1. O(n) once (computes zeta(n)). */
int eb_zipf_init(struct eb_zipf *z, uint64_t n, double theta);
/* Extends to n items (n larger than before; smaller is ignored). O(new - old). */
void eb_zipf_grow(struct eb_zipf *z, uint64_t n);
uint64_t eb_zipf_next(const struct eb_zipf *z, struct eb_rng *r);

enum eb_dist {
    EB_DIST_UNIFORM,
    EB_DIST_ZIPF,   /* Zipfian over key ranks, scrambled by default (see eb_keygen) */
    EB_DIST_LATEST, /* Zipfian over recency: the newest key is the most popular */
    EB_DIST_SEQ     /* sequential (the load phase) */
};
const char *eb_dist_name(enum eb_dist d);

/* Chooses key numbers. With scramble (as YCSB's ScrambledZipfianGenerator), the
 * popular ranks are spread over the keyspace by a 64-bit FNV-1a hash, so hot keys
 * are not neighbours in the store. */
struct eb_keygen {
    enum eb_dist dist;
    uint64_t n;
    bool scramble;
    struct eb_zipf z;
};
int eb_keygen_init(struct eb_keygen *g, enum eb_dist dist, uint64_t n, double theta,
                   bool scramble);
/* A key number in [0, count). count is the current number of keys: the initial n for
 * uniform and zipf (pass g->n), and the insert counter for latest, which then returns
 * count - 1 - zipf(count). */
uint64_t eb_keygen_next(struct eb_keygen *g, struct eb_rng *r, uint64_t count);
uint64_t eb_fnv64(uint64_t v);

/* Writes the name of key k into buf (cap bytes, NUL-terminated) and returns its
 * length: prefix then k in 12 zero-padded digits (redis-benchmark's __rand_int__
 * form, so both tools address the same keys), or with tags > 0 prefix "{g}:" digits,
 * where g = k % tags, so that the keys of one group share a hash slot. */
size_t eb_key_name(char *buf, size_t cap, const char *prefix, uint64_t k, uint64_t tags);

/* ---- Options (args.c) ---------------------------------------------------------------- */
#define EB_MAX_MKEYS 64
#define EB_MAX_TEMPLATES 16

enum eb_workload {
    EB_WL_GET, EB_WL_SET, EB_WL_INCR, EB_WL_MGET, EB_WL_MSET, EB_WL_FCALL,
    EB_WL_YCSB_A, EB_WL_YCSB_B, EB_WL_YCSB_C, EB_WL_YCSB_D, EB_WL_YCSB_E, EB_WL_YCSB_F,
    EB_WL_UDF, EB_WL_PING, EB_WL_LOAD, EB_WL_COUNT
};

struct eb_opts {
    char host[256];
    int port;
    char password[256];
    bool cluster;
    int timeout_ms;
    enum eb_workload workload;
    int connections, threads, pipeline;
    uint64_t ops;           /* 0 = use duration */
    double duration;        /* seconds of measurement */
    double warmup;          /* seconds before measurement */
    double rate;            /* open loop: total ops/s; 0 = closed loop */
    uint64_t keys;
    char key_prefix[64];
    char counter_prefix[64];
    enum eb_dist dist;
    bool dist_set;          /* --dist given (else the workload's default) */
    double theta;
    bool scramble;
    size_t value_min, value_max;
    uint64_t hashtags;      /* 0 = none */
    int mkeys;              /* keys per MGET/MSET */
    int scan_max;           /* YCSB E scan length: uniform 1..scan_max */
    char scan_fcall[128];   /* YCSB E: FCALL_RO this function instead of SCAN */
    char fcall[128];
    bool fcall_ro;
    char fcall_keys[EB_MAX_TEMPLATES][128]; /* key templates, default "{key}" */
    int nfcall_keys;
    char fcall_args[EB_MAX_TEMPLATES][128]; /* argument templates, default "{value}" */
    int nfcall_args;
    char function_file[1024];
    bool load;              /* fill the keyspace before the workload */
    int load_pipeline;
    char json[1024];
    bool progress, quiet;
    uint64_t seed;
};

/* Fills o with defaults and parses argv[1..argc-1]. Returns 0, 1 if --help or
 * --version was given (the caller prints eb_args_usage or the version and exits 0),
 * or -1 with a message in err (EB_ERRLEN bytes). o keeps no pointer into argv. */
int eb_args_parse(struct eb_opts *o, int argc, char **argv, char *err);
void eb_args_defaults(struct eb_opts *o);
void eb_args_usage(FILE *f);
const char *eb_workload_name(enum eb_workload w);
/* Parses a workload name ("get", "ycsb-a", "a"...); returns -1 if unknown. */
int eb_workload_parse(const char *s);

/* ---- Workloads (workload.c) ---------------------------------------------------------- */
enum eb_opkind {
    EB_OP_GET, EB_OP_SET, EB_OP_INCR, EB_OP_MGET, EB_OP_MSET, EB_OP_FCALL,
    EB_OP_READ, EB_OP_UPDATE, EB_OP_INSERT, EB_OP_SCAN, EB_OP_RMW,
    EB_OP_UDF_GET, EB_OP_UDF_RMW, EB_OP_UDF_INCR, EB_OP_UDF_MGET, EB_OP_PING,
    EB_OP_LOAD, EB_OP_COUNT
};
const char *eb_op_name(enum eb_opkind k);

/* A workload: a mix of operation kinds with cumulative probabilities. */
struct eb_mix {
    int n;
    enum eb_opkind kind[6];
    double cum[6];
    enum eb_dist dist; /* default key distribution */
};
void eb_mix_of(enum eb_workload w, struct eb_mix *m);
enum eb_opkind eb_mix_pick(const struct eb_mix *m, double u);

/* The library that the "udf" workload loads with FUNCTION LOAD REPLACE. */
extern const char eb_udf_library[];

/* One operation in flight. */
struct eb_op {
    enum eb_opkind kind;
    int phase;          /* RMW: 0 = GET, 1 = SET */
    int nkeys;
    int node;           /* node index it goes to, or -1 to route by slot */
    bool asking;        /* send ASKING first (after an ASK redirect) */
    int redirects;
    int scan_len;
    uint64_t keys[EB_MAX_MKEYS];
    uint64_t start_ns;  /* intended (open loop) or actual send time */
};

/* Starts a new op of kind: picks its keys from g over count keys (the caller then
 * overwrites keys[0] of an INSERT or LOAD with the new key), and a SCAN length. */
void eb_op_choose(struct eb_op *op, const struct eb_opts *o, enum eb_opkind kind,
                  struct eb_keygen *g, struct eb_rng *r, uint64_t count);

/* Builds the command of op into argv/argvlen, using scratch (cap bytes) for the
 * text; returns argc, or -1 if scratch is too small. values is a buffer of random
 * printable bytes of at least value_max + 64 bytes; r picks value lengths and offsets. */
struct eb_cmd {
    int argc;
    const char *argv[2 * EB_MAX_MKEYS + 2 * EB_MAX_TEMPLATES + 8];
    size_t argvlen[2 * EB_MAX_MKEYS + 2 * EB_MAX_TEMPLATES + 8];
};
int eb_op_build(const struct eb_opts *o, const struct eb_op *op, struct eb_rng *r,
                const char *values, char *scratch, size_t cap, struct eb_cmd *cmd);
/* The key slot that routes op (of its first key); -1 for keyless commands. */
int eb_op_slot(const struct eb_opts *o, const struct eb_op *op);
/* Expands one FCALL template ("{key}", "{counter}", "{value}", "{rand}", "{n}" are
 * replaced; "{{" is a literal "{") into out. Returns the length or -1 if out is too
 * small. key is the name of the op's key number key_n. */
long eb_template_expand(const char *tmpl, const char *key, size_t keylen,
                        const char *counter, size_t counterlen, const char *value,
                        size_t valuelen, uint64_t rnd, uint64_t key_n, char *out, size_t cap);

/* ---- Cluster routing (route.c) -------------------------------------------------------- */
enum eb_redirect_kind { EB_REDIR_NONE = 0, EB_REDIR_MOVED = 1, EB_REDIR_ASK = 2 };

struct eb_redirect {
    int kind;
    unsigned slot;
    char host[256]; /* "" when the server sent ":port" (same host as the current node) */
    int port;
};
/* Parses an error reply's text ("MOVED 3999 127.0.0.1:6381", "ASK 1 [::1]:7000",
 * "ASK 1 ::1:7000"). Returns EB_REDIR_MOVED or EB_REDIR_ASK and fills out,
 * EB_REDIR_NONE if the text is not a redirect, or -1 if it starts with MOVED/ASK
 * but is malformed (bad slot, missing port). */
int eb_redirect_parse(const char *s, size_t n, struct eb_redirect *out);

#define EB_MAX_NODES 64
struct eb_node {
    char host[256];
    int port;
};
/* The nodes known and which serves each slot. Guarded by the caller. */
struct eb_slotmap {
    int nnodes;
    struct eb_node node[EB_MAX_NODES];
    uint8_t slot_node[16384];
};
void eb_slotmap_init(struct eb_slotmap *m, const char *host, int port);
/* Returns the index of host:port, adding it if new; -1 if the table is full. */
int eb_slotmap_node(struct eb_slotmap *m, const char *host, int port);
struct eddy_reply;
/* Fills m from a CLUSTER SLOTS reply. Returns the number of slot ranges used, or -1
 * if the reply is not a CLUSTER SLOTS array. */
int eb_slotmap_from_reply(struct eb_slotmap *m, const struct eddy_reply *r);

/* ---- Open-loop schedule (run.c) ------------------------------------------------------
 * Operation i of a thread is due at t0 + i * 1e9 / rate nanoseconds (rate in ops/s).
 * Its latency is measured from that intended time, not from when it could be sent,
 * so a stalled server shows as latency rather than as fewer samples (no coordinated
 * omission). */
uint64_t eb_sched_intended(uint64_t t0_ns, double rate, uint64_t i);
/* How many operations are due at now_ns (those with intended time <= now). */
uint64_t eb_sched_due(uint64_t t0_ns, double rate, uint64_t now_ns);
uint64_t eb_now_ns(void);

/* ---- Running and results (run.c, report.c) --------------------------------------------- */
#define EB_MAX_ERRKINDS 16

struct eb_errkind {
    char name[32];
    uint64_t count;
};

struct eb_second {
    uint64_t ops, errors;
    struct eb_hist hist; /* bits 4 */
};

struct eb_result {
    uint64_t ops, errors, misses, redirects;
    double seconds;
    struct eb_hist all;
    struct eb_hist per_op[EB_OP_COUNT];
    uint64_t op_count[EB_OP_COUNT];
    struct eb_errkind err[EB_MAX_ERRKINDS + 1]; /* the last is "OTHER" */
    int nerr;
    struct eb_second *sec;
    size_t nsec;
    char fatal[EB_ERRLEN]; /* a connection failed: why */
};

/* Counts one error reply under its first word (at most 31 bytes). */
void eb_result_error(struct eb_result *res, const char *s, size_t n);
int eb_result_init(struct eb_result *res);
void eb_result_deinit(struct eb_result *res);
/* Adds src into dst (histograms, counters, seconds). Returns 0 or -1 (no memory). */
int eb_result_merge(struct eb_result *dst, const struct eb_result *src);

/* Runs o->workload (or the load phase when load_phase) with o->threads threads and
 * fills res (initialised by the caller). Returns 0, or -1 with err set when the run
 * could not start or a connection failed. */
int eb_run(const struct eb_opts *o, bool load_phase, struct eb_result *res, char *err);
/* Sends FUNCTION LOAD REPLACE code to every node. Returns 0 or -1 with err. */
int eb_function_load(const struct eb_opts *o, const char *code, size_t len, char *err);

void eb_report_human(FILE *f, const struct eb_opts *o, const struct eb_result *res,
                     bool load_phase);
/* Writes the JSON result to path. Returns 0 or -1 with err. */
int eb_report_json(const char *path, const struct eb_opts *o, const struct eb_result *res,
                   const struct eb_result *load, char *err);

#endif
