/* args.c - eddy-bench's command line: defaults, a table-driven parser of "--name value",
 * "--name=value" and short flags, validation, and --help. See bench.h. */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const workload_names[EB_WL_COUNT] = {
    "get", "set", "incr", "mget", "mset", "fcall", "ycsb-a", "ycsb-b",
    "ycsb-c", "ycsb-d", "ycsb-e", "ycsb-f", "udf", "ping", "load",
};

const char *eb_workload_name(enum eb_workload w)
{
    return (unsigned)w < EB_WL_COUNT ? workload_names[w] : "?";
}

int eb_workload_parse(const char *s)
{
    for (int i = 0; i < EB_WL_COUNT; i++)
        if (strcasecmp(s, workload_names[i]) == 0)
            return i;
    /* "a".."f" and "ycsba" are accepted for the YCSB workloads. */
    const char *letter = NULL;
    if (strlen(s) == 1)
        letter = s;
    else if (strncasecmp(s, "ycsb", 4) == 0 && strlen(s) == 5)
        letter = s + 4;
    if (letter && *letter >= 'a' && *letter <= 'f')
        return EB_WL_YCSB_A + (*letter - 'a');
    if (letter && *letter >= 'A' && *letter <= 'F')
        return EB_WL_YCSB_A + (*letter - 'A');
    return -1;
}

void eb_args_defaults(struct eb_opts *o)
{
    memset(o, 0, sizeof(*o));
    strcpy(o->host, "127.0.0.1");
    o->port = 7711;
    o->timeout_ms = 10000;
    o->workload = EB_WL_GET;
    o->connections = 50;
    o->threads = 1;
    o->pipeline = 1;
    o->keys = 100000;
    strcpy(o->key_prefix, "key:");
    strcpy(o->counter_prefix, "counter:");
    o->dist = EB_DIST_UNIFORM;
    o->theta = 0.99;
    o->scramble = true;
    o->value_min = o->value_max = 100;
    o->mkeys = 10;
    o->scan_max = 100;
    strcpy(o->fcall_keys[0], "{key}");
    o->nfcall_keys = 1;
    strcpy(o->fcall_args[0], "{value}");
    o->nfcall_args = 1;
    o->load_pipeline = 64;
    o->seed = 1;
}

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, EB_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A count with an optional k/m/g suffix (powers of 1000): "100k". */
static int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (*s == '\0' || *s == '-')
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1e6, end++;
    else if (*end == 'g' || *end == 'G')
        v *= 1e9, end++;
    if (*end != '\0' || v != floor(v) || v < (double)min || v > (double)max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_int(const char *s, int min, int max, int *out)
{
    uint64_t v;
    if (parse_count(s, (uint64_t)min, (uint64_t)max, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* Seconds, with an optional unit: "10", "2.5s", "500ms", "2m". */
static int parse_seconds(const char *s, double *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || isinf(v))
        return -1;
    if (strcmp(end, "ms") == 0)
        v /= 1000;
    else if (strcmp(end, "m") == 0)
        v *= 60;
    else if (*end != '\0' && strcmp(end, "s") != 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || isnan(v) || isinf(v))
        return -1;
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        return -1;
    memcpy(dst, s, n + 1);
    return 0;
}

/* Splits space-separated templates into the fixed slots. */
static int parse_templates(const char *s, char (*dst)[128], int *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (*n >= EB_MAX_TEMPLATES || len >= 128)
            return -1;
        memcpy(dst[*n], p, len);
        dst[*n][len] = '\0';
        (*n)++;
        p += len;
    }
    return 0;
}

static int parse_value_size(struct eb_opts *o, const char *s)
{
    uint64_t lo, hi;
    const char *dash = strchr(s, '-');
    char a[64];
    if (dash) {
        size_t n = (size_t)(dash - s);
        if (n == 0 || n >= sizeof(a))
            return -1;
        memcpy(a, s, n);
        a[n] = '\0';
        if (parse_count(a, 1, 512u << 20, &lo) || parse_count(dash + 1, 1, 512u << 20, &hi))
            return -1;
    } else {
        if (parse_count(s, 1, 512u << 20, &lo))
            return -1;
        hi = lo;
    }
    if (lo > hi)
        return -1;
    o->value_min = (size_t)lo;
    o->value_max = (size_t)hi;
    return 0;
}

enum opt_id {
    O_HOST, O_PORT, O_PASSWORD, O_CLUSTER, O_TIMEOUT, O_WORKLOAD, O_CONNS, O_THREADS,
    O_PIPELINE, O_OPS, O_DURATION, O_WARMUP, O_RATE, O_KEYS, O_KEY_PREFIX, O_COUNTER_PREFIX,
    O_DIST, O_THETA, O_NO_SCRAMBLE, O_VALUE, O_HASHTAGS, O_MKEYS, O_SCAN_MAX, O_SCAN_FCALL,
    O_FCALL, O_FCALL_RO, O_FCALL_KEYS, O_FCALL_ARGS, O_FUNCTION_FILE, O_LOAD, O_LOAD_PIPE,
    O_JSON, O_PROGRESS, O_QUIET, O_SEED, O_HELP, O_VERSION
};

struct opt {
    const char *name;
    char short_name;
    bool has_arg;
    enum opt_id id;
};

static const struct opt opts[] = {
    {"host", 'h', true, O_HOST},
    {"port", 'p', true, O_PORT},
    {"password", 'a', true, O_PASSWORD},
    {"cluster", 0, false, O_CLUSTER},
    {"timeout", 0, true, O_TIMEOUT},
    {"workload", 'w', true, O_WORKLOAD},
    {"connections", 'c', true, O_CONNS},
    {"threads", 't', true, O_THREADS},
    {"pipeline", 'P', true, O_PIPELINE},
    {"ops", 'n', true, O_OPS},
    {"duration", 'd', true, O_DURATION},
    {"warmup", 0, true, O_WARMUP},
    {"rate", 'R', true, O_RATE},
    {"keys", 'k', true, O_KEYS},
    {"key-prefix", 0, true, O_KEY_PREFIX},
    {"counter-prefix", 0, true, O_COUNTER_PREFIX},
    {"dist", 0, true, O_DIST},
    {"theta", 0, true, O_THETA},
    {"no-scramble", 0, false, O_NO_SCRAMBLE},
    {"value-size", 's', true, O_VALUE},
    {"hashtags", 0, true, O_HASHTAGS},
    {"mkeys", 0, true, O_MKEYS},
    {"scan-max", 0, true, O_SCAN_MAX},
    {"scan-fcall", 0, true, O_SCAN_FCALL},
    {"fcall", 0, true, O_FCALL},
    {"fcall-ro", 0, false, O_FCALL_RO},
    {"fcall-keys", 0, true, O_FCALL_KEYS},
    {"fcall-args", 0, true, O_FCALL_ARGS},
    {"function-file", 0, true, O_FUNCTION_FILE},
    {"load", 0, false, O_LOAD},
    {"load-pipeline", 0, true, O_LOAD_PIPE},
    {"json", 0, true, O_JSON},
    {"progress", 0, false, O_PROGRESS},
    {"quiet", 'q', false, O_QUIET},
    {"seed", 0, true, O_SEED},
    {"help", 0, false, O_HELP},
    {"version", 'V', false, O_VERSION},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt *find_opt(const char *arg, const char **inline_val)
{
    *inline_val = NULL;
    if (arg[0] == '-' && arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        for (size_t i = 0; i < NOPTS; i++) {
            if (strlen(opts[i].name) == n && strncmp(opts[i].name, name, n) == 0) {
                if (eq)
                    *inline_val = eq + 1;
                return &opts[i];
            }
        }
        return NULL;
    }
    if (arg[0] == '-' && arg[1] != '\0' && arg[2] == '\0') {
        for (size_t i = 0; i < NOPTS; i++)
            if (opts[i].short_name == arg[1])
                return &opts[i];
    }
    return NULL;
}

/* Applies one option; returns 0, 1 (help/version) or -1. */
static int apply(struct eb_opts *o, const struct opt *op, const char *v, char *err,
                 bool *ops_set, bool *dur_set)
{
    uint64_t u;
    switch (op->id) {
    case O_HOST:
        if (*v == '\0' || copy_str(o->host, sizeof(o->host), v))
            return fail(err, "bad --host");
        return 0;
    case O_PORT:
        return parse_int(v, 1, 65535, &o->port) ? fail(err, "bad --port '%s' (1..65535)", v) : 0;
    case O_PASSWORD:
        return copy_str(o->password, sizeof(o->password), v) ? fail(err, "--password too long") : 0;
    case O_CLUSTER: o->cluster = true; return 0;
    case O_TIMEOUT:
        return parse_int(v, 0, 86400000, &o->timeout_ms) ? fail(err, "bad --timeout '%s'", v) : 0;
    case O_WORKLOAD: {
        int w = eb_workload_parse(v);
        if (w < 0)
            return fail(err, "unknown workload '%s' (see --help)", v);
        o->workload = (enum eb_workload)w;
        return 0;
    }
    case O_CONNS:
        return parse_int(v, 1, 100000, &o->connections) ? fail(err, "bad --connections '%s'", v) : 0;
    case O_THREADS:
        return parse_int(v, 1, 1024, &o->threads) ? fail(err, "bad --threads '%s'", v) : 0;
    case O_PIPELINE:
        return parse_int(v, 1, 100000, &o->pipeline) ? fail(err, "bad --pipeline '%s'", v) : 0;
    case O_OPS:
        *ops_set = true;
        return parse_count(v, 1, UINT64_MAX / 2, &o->ops) ? fail(err, "bad --ops '%s'", v) : 0;
    case O_DURATION:
        *dur_set = true;
        if (parse_seconds(v, &o->duration) || o->duration <= 0)
            return fail(err, "bad --duration '%s' (seconds > 0; 10, 10s, 500ms, 2m)", v);
        return 0;
    case O_WARMUP:
        return parse_seconds(v, &o->warmup) ? fail(err, "bad --warmup '%s'", v) : 0;
    case O_RATE:
        if (parse_count(v, 1, 1000000000, &u))
            return fail(err, "bad --rate '%s' (ops/s, 1..1g)", v);
        o->rate = (double)u;
        return 0;
    case O_KEYS:
        return parse_count(v, 1, 1ULL << 40, &o->keys) ? fail(err, "bad --keys '%s'", v) : 0;
    case O_KEY_PREFIX:
        return copy_str(o->key_prefix, sizeof(o->key_prefix), v) ? fail(err, "--key-prefix too long") : 0;
    case O_COUNTER_PREFIX:
        return copy_str(o->counter_prefix, sizeof(o->counter_prefix), v)
                   ? fail(err, "--counter-prefix too long") : 0;
    case O_DIST:
        o->dist_set = true;
        if (strcmp(v, "uniform") == 0)
            o->dist = EB_DIST_UNIFORM;
        else if (strcmp(v, "zipf") == 0 || strcmp(v, "zipfian") == 0)
            o->dist = EB_DIST_ZIPF;
        else if (strcmp(v, "latest") == 0)
            o->dist = EB_DIST_LATEST;
        else
            return fail(err, "bad --dist '%s' (uniform, zipf, latest)", v);
        return 0;
    case O_THETA:
        if (parse_double(v, &o->theta) || !(o->theta > 0 && o->theta < 1))
            return fail(err, "bad --theta '%s' (0 < theta < 1)", v);
        return 0;
    case O_NO_SCRAMBLE: o->scramble = false; return 0;
    case O_VALUE:
        return parse_value_size(o, v) ? fail(err, "bad --value-size '%s' (N or MIN-MAX, 1..512m)", v) : 0;
    case O_HASHTAGS:
        return parse_count(v, 1, 1ULL << 40, &o->hashtags) ? fail(err, "bad --hashtags '%s'", v) : 0;
    case O_MKEYS:
        return parse_int(v, 1, EB_MAX_MKEYS, &o->mkeys) ? fail(err, "bad --mkeys '%s' (1..%d)", v, EB_MAX_MKEYS) : 0;
    case O_SCAN_MAX:
        return parse_int(v, 1, 100000, &o->scan_max) ? fail(err, "bad --scan-max '%s'", v) : 0;
    case O_SCAN_FCALL:
        return copy_str(o->scan_fcall, sizeof(o->scan_fcall), v) ? fail(err, "--scan-fcall too long") : 0;
    case O_FCALL:
        if (*v == '\0' || copy_str(o->fcall, sizeof(o->fcall), v))
            return fail(err, "bad --fcall");
        return 0;
    case O_FCALL_RO: o->fcall_ro = true; return 0;
    case O_FCALL_KEYS:
        return parse_templates(v, o->fcall_keys, &o->nfcall_keys) ? fail(err, "bad --fcall-keys (at most %d templates of 127 bytes)", EB_MAX_TEMPLATES) : 0;
    case O_FCALL_ARGS:
        return parse_templates(v, o->fcall_args, &o->nfcall_args) ? fail(err, "bad --fcall-args (at most %d templates of 127 bytes)", EB_MAX_TEMPLATES) : 0;
    case O_FUNCTION_FILE:
        return copy_str(o->function_file, sizeof(o->function_file), v) ? fail(err, "--function-file too long") : 0;
    case O_LOAD: o->load = true; return 0;
    case O_LOAD_PIPE:
        return parse_int(v, 1, 100000, &o->load_pipeline) ? fail(err, "bad --load-pipeline '%s'", v) : 0;
    case O_JSON:
        return copy_str(o->json, sizeof(o->json), v) ? fail(err, "--json path too long") : 0;
    case O_PROGRESS: o->progress = true; return 0;
    case O_QUIET: o->quiet = true; return 0;
    case O_SEED:
        return parse_count(v, 0, UINT64_MAX / 2, &o->seed) ? fail(err, "bad --seed '%s'", v) : 0;
    case O_HELP:
    case O_VERSION:
        return 1;
    }
    return fail(err, "internal: unhandled option");
}

static int validate(struct eb_opts *o, bool ops_set, bool dur_set, char *err)
{
    if (ops_set && dur_set)
        return fail(err, "give --ops or --duration, not both");
    if (!ops_set && !dur_set)
        o->ops = 100000;
    if (o->threads > o->connections)
        return fail(err, "--threads (%d) must not exceed --connections (%d)", o->threads,
                    o->connections);
    if (o->workload == EB_WL_FCALL && o->fcall[0] == '\0')
        return fail(err, "workload fcall needs --fcall NAME");
    if (o->workload == EB_WL_FCALL && o->nfcall_keys > 0 && o->hashtags == 0 && o->cluster &&
        o->nfcall_keys > 1)
        return fail(err, "several --fcall-keys in a cluster need --hashtags");
    if ((o->workload == EB_WL_MGET || o->workload == EB_WL_MSET) && o->cluster &&
        o->mkeys > 1 && o->hashtags == 0)
        return fail(err, "MGET/MSET of several keys in a cluster need --hashtags");
    if (o->rate > 0 && o->rate < o->threads)
        return fail(err, "--rate must be at least --threads");
    return 0;
}

int eb_args_parse(struct eb_opts *o, int argc, char **argv, char *err)
{
    eb_args_defaults(o);
    bool ops_set = false, dur_set = false;
    for (int i = 1; i < argc; i++) {
        const char *val;
        const struct opt *op = find_opt(argv[i], &val);
        if (op == NULL)
            return fail(err, "unknown option '%s' (see --help)", argv[i]);
        if (op->has_arg && val == NULL) {
            if (i + 1 >= argc)
                return fail(err, "option '%s' needs a value", argv[i]);
            val = argv[++i];
        } else if (!op->has_arg && val != NULL) {
            return fail(err, "option '--%s' takes no value", op->name);
        }
        int rc = apply(o, op, val, err, &ops_set, &dur_set);
        if (rc != 0)
            return rc;
    }
    return validate(o, ops_set, dur_set, err);
}

void eb_args_usage(FILE *f)
{
    fputs(
        "Usage: eddy-bench [OPTIONS]\n"
        "A load generator for eddy and any RESP server (redis-server too).\n"
        "\n"
        "Server\n"
        "  -h, --host HOST          server address (127.0.0.1)\n"
        "  -p, --port PORT          server port (7711)\n"
        "  -a, --password PASS      AUTH with PASS on every connection\n"
        "      --cluster            read CLUSTER SLOTS and route each key to its node\n"
        "                           (MOVED and ASK are always followed: MOVED updates the\n"
        "                           slot map and retries there, ASK sends ASKING + retry)\n"
        "      --timeout MS         socket timeout (10000; 0 = none)\n"
        "\n"
        "Workload (-w, --workload NAME; default get)\n"
        "  get set incr             one key per op (INCR uses --counter-prefix keys)\n"
        "  mget mset                --mkeys keys per op (10)\n"
        "  fcall                    FCALL --fcall NAME numkeys KEYS... ARGS... built from\n"
        "                           templates (see below); --fcall-ro sends FCALL_RO\n"
        "  ycsb-a (or a)            50% READ (GET), 50% UPDATE (SET)            zipf\n"
        "  ycsb-b                   95% READ, 5% UPDATE                          zipf\n"
        "  ycsb-c                   100% READ                                    zipf\n"
        "  ycsb-d                   95% READ, 5% INSERT (SET of a new key)       latest\n"
        "  ycsb-e                   95% SCAN, 5% INSERT                          zipf\n"
        "                           SCAN is 'SCAN <slot of the chosen key> COUNT L', L\n"
        "                           uniform in 1..--scan-max (100): a short scan from a\n"
        "                           key-dependent position (eddy resumes at that slot; in\n"
        "                           Redis it is a hash-table position). With --scan-fcall\n"
        "                           NAME it is 'FCALL_RO NAME 1 key L' instead.\n"
        "  ycsb-f                   50% READ, 50% RMW (GET, then SET of a new value; one\n"
        "                           op whose latency spans both round trips)      zipf\n"
        "  udf                      UDF-heavy: loads library 'ebench' (FUNCTION LOAD\n"
        "                           REPLACE), then 40% FCALL_RO eb_get, 30% FCALL eb_rmw\n"
        "                           (GET+SET), 20% FCALL eb_incr (INCRBY on a counter),\n"
        "                           10% FCALL_RO eb_mget of --mkeys keys      zipf\n"
        "  ping                     PING (no key)\n"
        "  load                     only the load phase (as --load)\n"
        "  A YCSB record is one string value; reads and updates touch the whole value.\n"
        "\n"
        "Keys and values\n"
        "  -k, --keys N             keyspace size (100000; k/m/g suffixes)\n"
        "      --key-prefix P       key names are P + 12 zero-padded digits (\"key:\"), the\n"
        "                           names redis-benchmark -r uses\n"
        "      --counter-prefix P   INCR and eb_incr keys (\"counter:\")\n"
        "      --dist D             uniform | zipf | latest (default: the workload's)\n"
        "      --theta T            Zipf skew, 0 < T < 1 (0.99), Gray et al. generator\n"
        "      --no-scramble        zipf: rank 0 is key 0 (default: ranks hashed over the\n"
        "                           keyspace, as YCSB's scrambled zipfian)\n"
        "  -s, --value-size N|A-B   value bytes, fixed or uniform in A..B (100)\n"
        "      --hashtags G         name keys P{g}:digits with g = key % G; the extra keys\n"
        "                           of MGET/MSET/FCALL come from the first key's group\n"
        "      --mkeys N            keys per MGET/MSET/eb_mget (10, at most 64)\n"
        "  FCALL templates: --fcall-keys \"T ...\" (default \"{key}\") and --fcall-args\n"
        "  \"T ...\" (default \"{value}\"), space-separated; in each, {key} is a key from\n"
        "  the distribution, {counter} its counter key, {value} a random value, {rand} a\n"
        "  random integer, {n} the key number, {{ a literal '{'.\n"
        "      --function-file F    FUNCTION LOAD REPLACE the file's code first\n"
        "\n"
        "Load shape\n"
        "  -c, --connections N      connections in all (50)\n"
        "  -t, --threads N          threads; connections are shared out among them (1)\n"
        "  -P, --pipeline N         closed loop: commands sent per round trip on each\n"
        "                           connection (1); open loop: most in flight on one\n"
        "  -n, --ops N              measured operations (100000 unless --duration)\n"
        "  -d, --duration T         measure for T seconds (10, 10s, 500ms, 2m)\n"
        "      --warmup T           run T seconds unmeasured first (0)\n"
        "  -R, --rate N             open loop at N ops/s in all: op i of a thread is due at\n"
        "                           t0 + i/rate_per_thread, and its latency is measured\n"
        "                           from that intended time (no coordinated omission)\n"
        "      --load               first SET every key 0..keys-1 (pipelined, sequential)\n"
        "      --load-pipeline N    pipeline depth of the load phase (64)\n"
        "      --seed N             random seed (1); thread i uses seed + i\n"
        "\n"
        "Output\n"
        "  A summary: ops/s, latency min/mean/p50/p90/p99/p99.9/max per op kind (from a\n"
        "  log-bucketed histogram, < 0.5% error), errors by kind (first word of the error\n"
        "  reply), misses (GET of a missing key), redirects, and a per-second series.\n"
        "      --json FILE          also write the result (and the series) as JSON\n"
        "      --progress           a progress line on stderr each second (default when\n"
        "                           stderr is a terminal)\n"
        "  -q, --quiet              no summary on stdout\n"
        "      --help, -V --version\n"
        "\n"
        "Examples\n"
        "  eddy-bench -w ycsb-a --load -k 1m -c 50 -d 30 --json a.json\n"
        "  eddy-bench -w set -P 16 -n 1m\n"
        "  eddy-bench -w fcall --fcall rw --fcall-args \"{value}\" -R 20000 -d 60\n"
        "Exit status: 0, 1 on a failed run (connection lost), 2 on a bad command line.\n",
        f);
}
