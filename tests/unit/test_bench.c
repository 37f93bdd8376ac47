/* test_bench.c - unit tests of eddy-bench's library (bench/): the command line, the
 * histogram against known inputs, the Zipf/uniform/latest key distributions, MOVED/ASK
 * parsing and the slot map, the open-loop schedule, and command building. No server. */
#include "../../bench/bench.h"
#include "../../client/eddy.h"
#include "unit.h"

#include <math.h>

/* ---- Command line ------------------------------------------------------------------------ */

static int parse(struct eb_opts *o, char *err, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"eddy-bench";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    err[0] = '\0';
    return eb_args_parse(o, argc, argv, err);
}

TEST(args_defaults)
{
    struct eb_opts o;
    char err[EB_ERRLEN];
    const char *a[] = {NULL};
    CHECK_EQ_INT(parse(&o, err, a), 0);
    CHECK_STR(o.host, "127.0.0.1");
    CHECK_EQ_INT(o.port, 7711);
    CHECK_EQ_INT(o.workload, EB_WL_GET);
    CHECK_EQ_INT(o.connections, 50);
    CHECK_EQ_INT(o.threads, 1);
    CHECK_EQ_INT(o.pipeline, 1);
    CHECK_EQ_INT(o.ops, 100000);
    CHECK_EQ_INT(o.keys, 100000);
    CHECK(o.theta == 0.99);
    CHECK_EQ_INT(o.value_min, 100);
    CHECK_EQ_INT(o.value_max, 100);
    CHECK(o.rate == 0);
    CHECK_EQ_INT(o.nfcall_keys, 1);
    CHECK_STR(o.fcall_keys[0], "{key}");
}

TEST(args_full)
{
    struct eb_opts o;
    char err[EB_ERRLEN];
    const char *a[] = {"-h", "10.0.0.1", "-p", "6379", "-w", "ycsb-a", "-c", "8", "-t", "2",
                       "-P", "16", "-d", "30s", "--warmup", "500ms", "--rate=10k", "-k", "1m",
                       "--dist", "latest", "--theta", "0.9", "-s", "10-200", "--hashtags",
                       "16", "--json", "out.json", "--fcall", "rw", "--fcall-keys",
                       "{key} x:{n}", "--fcall-args", " {value}  {rand} ", "--cluster",
                       "--load", "--no-scramble", "--progress", "--seed", "7", "--mkeys", "4",
                       NULL};
    CHECK_EQ_INT(parse(&o, err, a), 0);
    CHECK_STR(o.host, "10.0.0.1");
    CHECK_EQ_INT(o.port, 6379);
    CHECK_EQ_INT(o.workload, EB_WL_YCSB_A);
    CHECK_EQ_INT(o.connections, 8);
    CHECK_EQ_INT(o.threads, 2);
    CHECK_EQ_INT(o.pipeline, 16);
    CHECK_EQ_INT(o.ops, 0);
    CHECK(o.duration == 30);
    CHECK(o.warmup == 0.5);
    CHECK(o.rate == 10000);
    CHECK_EQ_INT(o.keys, 1000000);
    CHECK(o.dist_set && o.dist == EB_DIST_LATEST);
    CHECK(o.theta == 0.9);
    CHECK_EQ_INT(o.value_min, 10);
    CHECK_EQ_INT(o.value_max, 200);
    CHECK_EQ_INT(o.hashtags, 16);
    CHECK_STR(o.json, "out.json");
    CHECK_STR(o.fcall, "rw");
    CHECK_EQ_INT(o.nfcall_keys, 2);
    CHECK_STR(o.fcall_keys[1], "x:{n}");
    CHECK_EQ_INT(o.nfcall_args, 2);
    CHECK_STR(o.fcall_args[0], "{value}");
    CHECK_STR(o.fcall_args[1], "{rand}");
    CHECK(o.cluster && o.load && !o.scramble && o.progress);
    CHECK_EQ_INT(o.seed, 7);
    CHECK_EQ_INT(o.mkeys, 4);
}

TEST(args_workload_names)
{
    CHECK_EQ_INT(eb_workload_parse("a"), EB_WL_YCSB_A);
    CHECK_EQ_INT(eb_workload_parse("F"), EB_WL_YCSB_F);
    CHECK_EQ_INT(eb_workload_parse("ycsbe"), EB_WL_YCSB_E);
    CHECK_EQ_INT(eb_workload_parse("YCSB-C"), EB_WL_YCSB_C);
    CHECK_EQ_INT(eb_workload_parse("mset"), EB_WL_MSET);
    CHECK_EQ_INT(eb_workload_parse("udf"), EB_WL_UDF);
    CHECK_EQ_INT(eb_workload_parse("g"), -1);
    CHECK_EQ_INT(eb_workload_parse("ycsb-g"), -1);
    CHECK_EQ_INT(eb_workload_parse(""), -1);
    for (int w = 0; w < EB_WL_COUNT; w++)
        CHECK_EQ_INT(eb_workload_parse(eb_workload_name((enum eb_workload)w)), w);
}

TEST(args_help_and_version)
{
    struct eb_opts o;
    char err[EB_ERRLEN];
    const char *h[] = {"-p", "1", "--help", NULL};
    CHECK_EQ_INT(parse(&o, err, h), 1);
    const char *v[] = {"-V", NULL};
    CHECK_EQ_INT(parse(&o, err, v), 1);
}

TEST(args_bad)
{
    static const char *const bad[][8] = {
        {"--nope", NULL},
        {"-x", NULL},
        {"-p", NULL},
        {"-p", "0", NULL},
        {"-p", "70000", NULL},
        {"-p", "12ab", NULL},
        {"-p", "-5", NULL},
        {"-c", "0", NULL},
        {"-c", "2", "-t", "3", NULL},
        {"-P", "0", NULL},
        {"-n", "10", "-d", "5", NULL},
        {"-n", "1.5", NULL},
        {"-d", "0", NULL},
        {"-d", "5h", NULL},
        {"--theta", "1", NULL},
        {"--theta", "0", NULL},
        {"--theta", "abc", NULL},
        {"--dist", "gauss", NULL},
        {"-w", "nope", NULL},
        {"-w", "fcall", NULL},
        {"-s", "0", NULL},
        {"-s", "200-100", NULL},
        {"-s", "-5", NULL},
        {"--rate", "0", NULL},
        {"--mkeys", "65", NULL},
        {"--load=yes", NULL},
        {"--port=", NULL},
        {"--fcall-keys", "a b c d e f g h i j k l m n o p q", NULL},
        {"--cluster", "-w", "mget", NULL},
        {"-t", "4", "-c", "4", "--rate", "3", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct eb_opts o;
        char err[EB_ERRLEN];
        int rc = parse(&o, err, bad[i]);
        if (rc != -1)
            UNIT_FAIL("command line %zu (%s %s) was accepted", i, bad[i][0],
                      bad[i][1] ? bad[i][1] : "");
        CHECK(err[0] != '\0');
    }
}

/* ---- Histogram --------------------------------------------------------------------------- */

static void check_close(double got, double want, double rel, const char *what)
{
    if (fabs(got - want) > rel * want)
        UNIT_FAIL("%s: got %.1f, want %.1f within %.2f%%", what, got, want, rel * 100);
}

TEST(hist_uniform)
{
    struct eb_hist h;
    CHECK_EQ_INT(eb_hist_init(&h, EB_HIST_BITS), 0);
    for (uint64_t v = 1; v <= 1000000; v++)
        eb_hist_add(&h, v);
    CHECK_EQ_INT(h.count, 1000000);
    CHECK_EQ_INT(h.min, 1);
    CHECK_EQ_INT(h.max, 1000000);
    CHECK_EQ_INT(eb_hist_percentile(&h, 0), 1);
    CHECK_EQ_INT(eb_hist_percentile(&h, 100), 1000000);
    /* The bound is 2^-(bits+1) = 0.39%. */
    double rel = 1.0 / 256;
    check_close((double)eb_hist_percentile(&h, 50), 500000, rel, "p50");
    check_close((double)eb_hist_percentile(&h, 90), 900000, rel, "p90");
    check_close((double)eb_hist_percentile(&h, 99), 990000, rel, "p99");
    check_close((double)eb_hist_percentile(&h, 99.9), 999000, rel, "p99.9");
    check_close((double)eb_hist_percentile(&h, 0.01), 100, rel, "p0.01");
    check_close(eb_hist_mean(&h), 500000.5, 1e-9, "mean");
    eb_hist_deinit(&h);
}

TEST(hist_constant)
{
    struct eb_hist h;
    CHECK_EQ_INT(eb_hist_init(&h, EB_HIST_BITS), 0);
    eb_hist_add_n(&h, 123457, 1000);
    double ps[] = {0, 1, 50, 90, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        CHECK_EQ_INT(eb_hist_percentile(&h, ps[i]), 123457);
    eb_hist_reset(&h);
    CHECK_EQ_INT(eb_hist_percentile(&h, 50), 0);
    CHECK_EQ_INT(h.count, 0);
    eb_hist_deinit(&h);
}

TEST(hist_bimodal)
{
    struct eb_hist h;
    CHECK_EQ_INT(eb_hist_init(&h, EB_HIST_BITS), 0);
    eb_hist_add_n(&h, 100, 900);      /* exact region: below 2^8 */
    eb_hist_add_n(&h, 1000000, 100);
    CHECK_EQ_INT(eb_hist_percentile(&h, 50), 100);
    CHECK_EQ_INT(eb_hist_percentile(&h, 90), 100);
    CHECK_EQ_INT(eb_hist_percentile(&h, 90.1), 1000000); /* clamped to max */
    CHECK_EQ_INT(eb_hist_percentile(&h, 99), 1000000);
    CHECK_EQ_INT(h.min, 100);
    CHECK_EQ_INT(h.max, 1000000);
    eb_hist_add(&h, 999000);
    check_close((double)eb_hist_percentile(&h, 95), 999000, 1.0 / 256, "p95");
    eb_hist_deinit(&h);
}

TEST(hist_bucket_bounds)
{
    struct eb_rng r;
    eb_rng_seed(&r, 3);
    for (int i = 0; i < 200000; i++) {
        uint64_t v = eb_rng_next(&r) >> (eb_rng_next(&r) % 64);
        size_t idx = eb_hist_index(EB_HIST_BITS, v);
        uint64_t lo = eb_hist_bucket_low(EB_HIST_BITS, idx);
        uint64_t hi = eb_hist_bucket_high(EB_HIST_BITS, idx);
        CHECK(lo <= v && v <= hi);
        CHECK((double)(hi - lo) / 2 <= (double)v / 256 + 0.5);
    }
    /* Consecutive buckets tile the number line. */
    for (size_t i = 0; i + 1 < eb_hist_index(EB_HIST_BITS, UINT64_MAX); i++)
        CHECK_EQ_INT(eb_hist_bucket_high(EB_HIST_BITS, i) + 1,
                     eb_hist_bucket_low(EB_HIST_BITS, i + 1));
    CHECK_EQ_INT(eb_hist_bucket_high(EB_HIST_BITS, eb_hist_index(EB_HIST_BITS, UINT64_MAX)),
                 UINT64_MAX);
}

TEST(hist_merge)
{
    struct eb_hist a, b, c;
    CHECK_EQ_INT(eb_hist_init(&a, 7), 0);
    CHECK_EQ_INT(eb_hist_init(&b, 7), 0);
    CHECK_EQ_INT(eb_hist_init(&c, 4), 0);
    for (uint64_t v = 1; v <= 1000; v++)
        eb_hist_add(v % 2 ? &a : &b, v);
    CHECK_EQ_INT(eb_hist_merge(&a, &b), 0);
    CHECK_EQ_INT(a.count, 1000);
    CHECK_EQ_INT(a.min, 1);
    CHECK_EQ_INT(a.max, 1000);
    check_close((double)eb_hist_percentile(&a, 50), 500, 1.0 / 256, "merged p50");
    CHECK_EQ_INT(eb_hist_merge(&a, &c), -1);
    CHECK_EQ_INT(eb_hist_init(&c, 0), -1);
    eb_hist_deinit(&a);
    eb_hist_deinit(&b);
    eb_hist_deinit(&c);
    eb_hist_deinit(&c); /* twice is fine */
}

/* ---- Distributions ------------------------------------------------------------------------- */

TEST(zipf_shape)
{
    const uint64_t n = 1000;
    const int samples = 2000000;
    struct eb_zipf z;
    struct eb_rng r;
    CHECK_EQ_INT(eb_zipf_init(&z, n, 0.99), 0);
    eb_rng_seed(&r, 12345);
    static uint64_t freq[1000];
    for (int i = 0; i < samples; i++) {
        uint64_t k = eb_zipf_next(&z, &r);
        CHECK(k < n);
        freq[k]++;
    }
    double zeta = eb_zeta(n, 0.99);
    /* Ranks 1 and 2 are exact in Gray's method: within 1.5% (about 4 sigma). */
    check_close((double)freq[0] / samples, 1 / zeta, 0.015, "rank 1");
    check_close((double)freq[1] / samples, pow(2, -0.99) / zeta, 0.02, "rank 2");
    /* The rest is an approximation: groups of ranks within 10% of the theory. */
    uint64_t edges[] = {2, 10, 100, 1000};
    for (int g = 0; g + 1 < 4; g++) {
        double want = 0, got = 0;
        for (uint64_t k = edges[g]; k < edges[g + 1]; k++) {
            want += pow((double)(k + 1), -0.99) / zeta;
            got += (double)freq[k] / samples;
        }
        check_close(got, want, 0.10, "rank group");
    }
    /* Frequencies fall with rank. */
    CHECK(freq[0] > freq[1] && freq[1] > freq[2] && freq[2] > freq[10] && freq[10] > freq[500]);
    /* Growing gives the same zeta as computing afresh. */
    struct eb_zipf g2;
    CHECK_EQ_INT(eb_zipf_init(&g2, 10, 0.99), 0);
    eb_zipf_grow(&g2, n);
    check_close(g2.zetan, z.zetan, 1e-12, "grown zeta");
    CHECK_EQ_INT(eb_zipf_init(&g2, 10, 1.0), -1);
    CHECK_EQ_INT(eb_zipf_init(&g2, 0, 0.5), -1);
}

TEST(zipf_scrambled_keys)
{
    struct eb_keygen g;
    struct eb_rng r;
    CHECK_EQ_INT(eb_keygen_init(&g, EB_DIST_ZIPF, 1000, 0.99, true), 0);
    eb_rng_seed(&r, 1);
    static uint64_t freq[1000];
    for (int i = 0; i < 200000; i++) {
        uint64_t k = eb_keygen_next(&g, &r, 1000);
        CHECK(k < 1000);
        freq[k]++;
    }
    /* The hottest key is where rank 0 hashes to, not key 0. */
    uint64_t hot = eb_fnv64(0) % 1000;
    for (int k = 0; k < 1000; k++)
        CHECK(freq[k] <= freq[hot]);
}

TEST(uniform_chi_square)
{
    struct eb_rng r;
    eb_rng_seed(&r, 99);
    enum { B = 100, N = 1000000 };
    static uint64_t freq[B];
    for (int i = 0; i < N; i++)
        freq[eb_rng_below(&r, B)]++;
    double chi = 0, want = (double)N / B;
    for (int b = 0; b < B; b++)
        chi += ((double)freq[b] - want) * ((double)freq[b] - want) / want;
    /* 99 degrees of freedom: mean 99, sd 14; 160 is beyond 4 sd. */
    CHECK(chi < 160);
    CHECK(chi > 50);
    for (int i = 0; i < 1000; i++) {
        double d = eb_rng_double(&r);
        CHECK(d >= 0 && d < 1);
    }
    /* The uniform key generator too. */
    struct eb_keygen g;
    CHECK_EQ_INT(eb_keygen_init(&g, EB_DIST_UNIFORM, 10, 0.99, true), 0);
    uint64_t f10[10] = {0};
    for (int i = 0; i < 100000; i++)
        f10[eb_keygen_next(&g, &r, 10)]++;
    for (int b = 0; b < 10; b++)
        check_close((double)f10[b], 10000, 0.05, "uniform key");
}

TEST(latest_distribution)
{
    struct eb_keygen g;
    struct eb_rng r;
    CHECK_EQ_INT(eb_keygen_init(&g, EB_DIST_LATEST, 1000, 0.99, true), 0);
    eb_rng_seed(&r, 5);
    static uint64_t freq[2000];
    const int samples = 500000;
    for (int i = 0; i < samples; i++) {
        uint64_t k = eb_keygen_next(&g, &r, 1000);
        CHECK(k < 1000);
        freq[k]++;
    }
    double zeta = eb_zeta(1000, 0.99);
    check_close((double)freq[999] / samples, 1 / zeta, 0.02, "newest key");
    CHECK(freq[999] > freq[998] && freq[998] > freq[990] && freq[990] > freq[500]);
    /* After inserts, the newest key moves up. */
    memset(freq, 0, sizeof(freq));
    for (int i = 0; i < samples; i++) {
        uint64_t k = eb_keygen_next(&g, &r, 2000);
        CHECK(k < 2000);
        freq[k]++;
    }
    CHECK_EQ_INT(g.z.n, 2000);
    check_close((double)freq[1999] / samples, 1 / eb_zeta(2000, 0.99), 0.02, "newest after grow");
    CHECK(freq[1999] > freq[999]);
}

TEST(key_names)
{
    char buf[128];
    CHECK_EQ_INT(eb_key_name(buf, sizeof(buf), "key:", 42, 0), 16);
    CHECK_STR(buf, "key:000000000042");
    eb_key_name(buf, sizeof(buf), "key:", 1234567890123ULL, 0);
    CHECK_STR(buf, "key:1234567890123");
    eb_key_name(buf, sizeof(buf), "u:", 42, 16);
    CHECK_STR(buf, "u:{10}:000000000042");
    CHECK_EQ_INT(eb_key_name(buf, 5, "key:", 42, 0), 4);
    CHECK_STR(buf, "key:");
}

/* ---- MOVED / ASK and the slot map ------------------------------------------------------------ */

TEST(redirect_parse)
{
    struct eb_redirect r;
    const char *m = "MOVED 3999 127.0.0.1:6381";
    CHECK_EQ_INT(eb_redirect_parse(m, strlen(m), &r), EB_REDIR_MOVED);
    CHECK_EQ_INT(r.slot, 3999);
    CHECK_STR(r.host, "127.0.0.1");
    CHECK_EQ_INT(r.port, 6381);
    const char *a = "ASK 16383 node-7.example:7000";
    CHECK_EQ_INT(eb_redirect_parse(a, strlen(a), &r), EB_REDIR_ASK);
    CHECK_EQ_INT(r.slot, 16383);
    CHECK_STR(r.host, "node-7.example");
    CHECK_EQ_INT(r.port, 7000);
    const char *v6 = "MOVED 0 ::1:7001";
    CHECK_EQ_INT(eb_redirect_parse(v6, strlen(v6), &r), EB_REDIR_MOVED);
    CHECK_STR(r.host, "::1");
    CHECK_EQ_INT(r.port, 7001);
    const char *br = "MOVED 1 [fe80::1]:7002";
    CHECK_EQ_INT(eb_redirect_parse(br, strlen(br), &r), EB_REDIR_MOVED);
    CHECK_STR(r.host, "fe80::1");
    const char *empty = "MOVED 12 :7003";
    CHECK_EQ_INT(eb_redirect_parse(empty, strlen(empty), &r), EB_REDIR_MOVED);
    CHECK_STR(r.host, "");
    CHECK_EQ_INT(r.port, 7003);
    /* Not length-terminated: only n bytes count. */
    const char *longer = "MOVED 5 h:1234garbage";
    CHECK_EQ_INT(eb_redirect_parse(longer, 14, &r), EB_REDIR_MOVED);
    CHECK_EQ_INT(r.port, 1234);
    static const char *const none[] = {"ERR wrong type", "MOVEDX 1 h:1", "ASKING", "", "moved 1 h:1"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        CHECK_EQ_INT(eb_redirect_parse(none[i], strlen(none[i]), &r), EB_REDIR_NONE);
    static const char *const bad[] = {
        "MOVED",           "MOVED ",         "MOVED 16384 h:1", "MOVED x h:1",
        "MOVED 1 host",    "MOVED 1 host:",  "MOVED 1 h:0",     "MOVED 1 h:65536",
        "MOVED 1 h:12a",   "ASK 1",          "ASK -1 h:1",      "MOVED 123456 h:1",
        "MOVED 1 h:123456", "MOVED  1 h:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (eb_redirect_parse(bad[i], strlen(bad[i]), &r) != -1)
            UNIT_FAIL("accepted \"%s\"", bad[i]);
}

static struct eddy_reply *rep(enum eddy_reply_type t)
{
    struct eddy_reply *r = calloc(1, sizeof(*r));
    r->type = t;
    return r;
}

static struct eddy_reply *rep_int(long long v)
{
    struct eddy_reply *r = rep(EDDY_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static struct eddy_reply *rep_str(const char *s)
{
    struct eddy_reply *r = rep(EDDY_REPLY_STRING);
    r->str = (char *)s;
    r->len = strlen(s);
    return r;
}

static struct eddy_reply *rep_arr(size_t n, struct eddy_reply **el)
{
    struct eddy_reply *r = rep(EDDY_REPLY_ARRAY);
    r->elements = n;
    r->element = calloc(n, sizeof(*el));
    memcpy(r->element, el, n * sizeof(*el));
    return r;
}

static struct eddy_reply *range(long long lo, long long hi, const char *host, long long port)
{
    struct eddy_reply *node[] = {rep_str(host), rep_int(port), rep_str("id")};
    struct eddy_reply *e[] = {rep_int(lo), rep_int(hi), rep_arr(3, node)};
    return rep_arr(3, e);
}

TEST(slotmap)
{
    struct eb_slotmap m;
    eb_slotmap_init(&m, "127.0.0.1", 7000);
    CHECK_EQ_INT(m.nnodes, 1);
    struct eddy_reply *ranges[] = {range(0, 5460, "127.0.0.1", 7000),
                                   range(5461, 10922, "127.0.0.1", 7001),
                                   range(10923, 16383, "", 7002)};
    struct eddy_reply *r = rep_arr(3, ranges);
    CHECK_EQ_INT(eb_slotmap_from_reply(&m, r), 3);
    CHECK_EQ_INT(m.nnodes, 3);
    CHECK_EQ_INT(m.slot_node[0], 0);
    CHECK_EQ_INT(m.slot_node[5460], 0);
    CHECK_EQ_INT(m.slot_node[5461], 1);
    CHECK_EQ_INT(m.slot_node[16383], 2);
    CHECK_STR(m.node[2].host, "127.0.0.1"); /* empty endpoint: the seed's host */
    CHECK_EQ_INT(eb_slotmap_node(&m, "127.0.0.1", 7001), 1);
    CHECK_EQ_INT(eb_slotmap_node(&m, "10.0.0.2", 7001), 3);
    struct eddy_reply *bad[] = {range(10, 5, "h", 1)};
    CHECK_EQ_INT(eb_slotmap_from_reply(&m, rep_arr(1, bad)), -1);
    CHECK_EQ_INT(eb_slotmap_from_reply(&m, rep_int(1)), -1);
    CHECK_EQ_INT(eb_slotmap_from_reply(&m, NULL), -1);
}

/* ---- Open-loop schedule ----------------------------------------------------------------------- */

TEST(sched_math)
{
    uint64_t t0 = 1000000000ULL;
    CHECK_EQ_INT(eb_sched_intended(t0, 1000, 0), t0);
    CHECK_EQ_INT(eb_sched_intended(t0, 1000, 500), t0 + 500000000ULL);
    CHECK_EQ_INT(eb_sched_intended(t0, 4e6, 1), t0 + 250);
    CHECK_EQ_INT(eb_sched_due(t0, 1000, t0 - 1), 0);
    CHECK_EQ_INT(eb_sched_due(t0, 1000, t0), 1);
    CHECK_EQ_INT(eb_sched_due(t0, 1000, t0 + 999999), 1);
    CHECK_EQ_INT(eb_sched_due(t0, 1000, t0 + 1000000), 2);
    CHECK_EQ_INT(eb_sched_due(t0, 1000, t0 + 1000000000ULL), 1001);
    /* An awkward rate: due() agrees with intended() at every boundary. */
    double rate = 3.0 / 7.0 * 1000;
    for (uint64_t i = 0; i < 5000; i++) {
        uint64_t t = eb_sched_intended(t0, rate, i);
        CHECK_EQ_INT(eb_sched_due(t0, rate, t), i + 1);
        CHECK_EQ_INT(eb_sched_due(t0, rate, t - 1), i);
    }
    /* No drift: op 10^9 at 10^6 ops/s is due at exactly 1000 s. */
    CHECK_EQ_INT(eb_sched_intended(0, 1e6, 1000000000ULL), 1000000000000ULL);
}

/* ---- Commands ---------------------------------------------------------------------------------- */

static char values[1024];

static void setup_values(void)
{
    memset(values, 'v', sizeof(values) - 1);
}

TEST(op_build)
{
    struct eb_opts o;
    eb_args_defaults(&o);
    o.ops = 1;
    setup_values();
    struct eb_rng r;
    eb_rng_seed(&r, 1);
    char scratch[65536];
    struct eb_cmd cmd;
    struct eb_op op;
    memset(&op, 0, sizeof(op));
    op.kind = EB_OP_GET;
    op.nkeys = 1;
    op.keys[0] = 7;
    CHECK_EQ_INT(eb_op_build(&o, &op, &r, values, scratch, sizeof(scratch), &cmd), 2);
    CHECK_MEM(cmd.argv[0], cmd.argvlen[0], "GET", 3);
    CHECK_MEM(cmd.argv[1], cmd.argvlen[1], "key:000000000007", 16);
    op.kind = EB_OP_MSET;
    op.nkeys = 3;
    op.keys[1] = 8, op.keys[2] = 9;
    CHECK_EQ_INT(eb_op_build(&o, &op, &r, values, scratch, sizeof(scratch), &cmd), 7);
    CHECK_EQ_INT(cmd.argvlen[2], 100);
    CHECK_MEM(cmd.argv[5], cmd.argvlen[5], "key:000000000009", 16);
    op.kind = EB_OP_INCR;
    CHECK_EQ_INT(eb_op_build(&o, &op, &r, values, scratch, sizeof(scratch), &cmd), 2);
    CHECK_MEM(cmd.argv[1], cmd.argvlen[1], "counter:000000000007", 20);
    op.kind = EB_OP_SCAN;
    op.scan_len = 17;
    CHECK_EQ_INT(eb_op_build(&o, &op, &r, values, scratch, sizeof(scratch), &cmd), 4);
    CHECK_MEM(cmd.argv[3], cmd.argvlen[3], "17", 2);
    op.kind = EB_OP_RMW;
    op.phase = 1;
    CHECK_EQ_INT(eb_op_build(&o, &op, &r, values, scratch, sizeof(scratch), &cmd), 3);
    CHECK_MEM(cmd.argv[0], cmd.argvlen[0], "SET", 3);
    /* FCALL from templates. */
    strcpy(o.fcall, "rw");
    strcpy(o.fcall_args[0], "n={n}");
    op.kind = EB_OP_FCALL;
    op.nkeys = 1;
    CHECK_EQ_INT(eb_op_build(&o, &op, &r, values, scratch, sizeof(scratch), &cmd), 5);
    CHECK_MEM(cmd.argv[0], cmd.argvlen[0], "FCALL", 5);
    CHECK_MEM(cmd.argv[2], cmd.argvlen[2], "1", 1);
    CHECK_MEM(cmd.argv[3], cmd.argvlen[3], "key:000000000007", 16);
    CHECK_MEM(cmd.argv[4], cmd.argvlen[4], "n=7", 3);
    /* Too small a scratch buffer is reported, not overrun. */
    CHECK_EQ_INT(eb_op_build(&o, &op, &r, values, scratch, 10, &cmd), -1);
}

TEST(template_expand)
{
    char out[64];
    long n = eb_template_expand("a{key}b{{c{counter}{n}{rand}{value}{x}", "K", 1, "C", 1, "VV",
                                2, 9, 42, out, sizeof(out));
    CHECK_STR(out, "aKb{cC429VV{x}");
    CHECK_EQ_INT(n, (long)strlen(out));
    CHECK_EQ_INT(eb_template_expand("{value}", "K", 1, "C", 1, "VVVV", 4, 0, 0, out, 4), -1);
}

TEST(mix_and_hashtags)
{
    struct eb_mix m;
    eb_mix_of(EB_WL_YCSB_B, &m);
    CHECK_EQ_INT(m.dist, EB_DIST_ZIPF);
    CHECK_EQ_INT(eb_mix_pick(&m, 0.0), EB_OP_READ);
    CHECK_EQ_INT(eb_mix_pick(&m, 0.9499), EB_OP_READ);
    CHECK_EQ_INT(eb_mix_pick(&m, 0.95), EB_OP_UPDATE);
    CHECK_EQ_INT(eb_mix_pick(&m, 0.99999), EB_OP_UPDATE);
    eb_mix_of(EB_WL_YCSB_D, &m);
    CHECK_EQ_INT(m.dist, EB_DIST_LATEST);
    eb_mix_of(EB_WL_UDF, &m);
    CHECK_EQ_INT(m.n, 4);
    /* With hash tags, the keys of one MGET share a slot. */
    struct eb_opts o;
    eb_args_defaults(&o);
    o.hashtags = 8;
    o.mkeys = 10;
    struct eb_keygen g;
    struct eb_rng r;
    eb_rng_seed(&r, 2);
    CHECK_EQ_INT(eb_keygen_init(&g, EB_DIST_UNIFORM, 1000, 0.99, true), 0);
    for (int i = 0; i < 100; i++) {
        struct eb_op op;
        eb_op_choose(&op, &o, EB_OP_MGET, &g, &r, 1000);
        CHECK_EQ_INT(op.nkeys, 10);
        int slot = eb_op_slot(&o, &op);
        for (int k = 0; k < op.nkeys; k++) {
            CHECK(op.keys[k] < 1000);
            CHECK_EQ_INT(op.keys[k] % 8, op.keys[0] % 8);
        }
        CHECK(slot >= 0 && slot < 16384);
    }
}

TEST(result_errors)
{
    struct eb_result res;
    CHECK_EQ_INT(eb_result_init(&res), 0);
    eb_result_error(&res, "ERR syntax error", 16);
    eb_result_error(&res, "ERR other", 9);
    eb_result_error(&res, "WRONGTYPE Operation", 19);
    eb_result_error(&res, "", 0);
    CHECK_EQ_INT(res.errors, 4);
    CHECK_EQ_INT(res.nerr, 2);
    CHECK_STR(res.err[0].name, "ERR");
    CHECK_EQ_INT(res.err[0].count, 3);
    CHECK_STR(res.err[1].name, "WRONGTYPE");
    char name[8];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "E%d", i);
        eb_result_error(&res, name, strlen(name));
    }
    CHECK_EQ_INT(res.nerr, EB_MAX_ERRKINDS);
    CHECK_STR(res.err[EB_MAX_ERRKINDS].name, "OTHER");
    CHECK_EQ_INT(res.err[EB_MAX_ERRKINDS].count, 40 - (EB_MAX_ERRKINDS - 2));
    struct eb_result sum;
    CHECK_EQ_INT(eb_result_init(&sum), 0);
    CHECK_EQ_INT(eb_result_merge(&sum, &res), 0);
    CHECK_EQ_INT(sum.errors, res.errors);
    CHECK_EQ_INT(sum.nerr, EB_MAX_ERRKINDS);
    CHECK_EQ_INT(sum.err[0].count, 3);
    CHECK_EQ_INT(sum.err[EB_MAX_ERRKINDS].count, res.err[EB_MAX_ERRKINDS].count);
    eb_result_deinit(&res);
    eb_result_deinit(&sum);
}

int main(void)
{
    RUN(args_defaults);
    RUN(args_full);
    RUN(args_workload_names);
    RUN(args_help_and_version);
    RUN(args_bad);
    RUN(hist_uniform);
    RUN(hist_constant);
    RUN(hist_bimodal);
    RUN(hist_bucket_bounds);
    RUN(hist_merge);
    RUN(zipf_shape);
    RUN(zipf_scrambled_keys);
    RUN(uniform_chi_square);
    RUN(latest_distribution);
    RUN(key_names);
    RUN(redirect_parse);
    RUN(slotmap);
    RUN(sched_math);
    RUN(op_build);
    RUN(template_expand);
    RUN(mix_and_hashtags);
    RUN(result_errors);
    return unit_done();
}
