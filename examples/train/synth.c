/* synth.c - a deterministic generator of review-like texts whose ratings come from a
 * known true model, streamed into eddy with the pipelined writer.
 *
 * The vocabulary (seeded): common English function words (weight 0), an English
 * sentiment lexicon with fixed weights, then pronounceable made-up words, 30% of which
 * carry a weight drawn from N(0, 0.8^2). Word frequencies follow Zipf's law: the
 * function words first, the rest in a seeded random order. A review is 8..32 words
 * drawn independently; its true score is z = the sum of its words' weights. Labels:
 *   2 classes: P(y = 1) = sigmoid(z), stored as 0|1;
 *   5 classes: P(stars = k) proportional to exp((k - 3) z - (k - 3)^2 / 2), stored 1..5.
 * That is a logistic / softmax regression on word counts, which the example's
 * features and model can represent, so the true model's accuracy on the held-out split
 * (the rule of train.lua) is the best a learner can expect; the loader reports it and
 * stores it in train:meta. Review i depends only on (seed, i), so any size streams. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

struct word {
    char text[16];
    double weight;
};

struct vocab {
    struct word *w;
    int n;
    double *cdf; /* Zipf cumulative probabilities */
};

static const char *const function_words[] = {
    "the", "i", "it", "and", "a", "this", "is", "to", "was", "of", "for", "my", "with",
    "in", "that", "but", "on", "you", "have", "not", "they", "so", "as", "very", "are",
    "at", "be", "one", "all", "just", "phone", "product", "would", "had", "after", "time",
    "get", "its", "me", "from", "if", "use", "an", "or", "item", "when", "also", "did"};

static const struct {
    const char *w;
    double weight;
} lexicon[] = {
    {"great", 1.6},         {"excellent", 2.0}, {"love", 1.8},     {"good", 1.0},
    {"nice", 1.0},          {"perfect", 1.8},   {"amazing", 1.8},  {"happy", 1.2},
    {"recommend", 1.2},     {"works", 0.6},     {"fine", 0.4},     {"best", 1.4},
    {"easy", 0.8},          {"comfortable", 0.8}, {"awesome", 1.6}, {"sturdy", 0.8},
    {"fast", 0.6},          {"clear", 0.6},     {"solid", 0.8},    {"worth", 0.8},
    {"bad", -1.4},          {"terrible", -2.0}, {"poor", -1.4},    {"broke", -1.6},
    {"worst", -2.0},        {"disappointed", -1.6}, {"waste", -1.8}, {"useless", -1.8},
    {"return", -1.0},       {"cheap", -0.8},    {"problem", -1.0}, {"junk", -1.8},
    {"slow", -0.8},         {"awful", -2.0},    {"hate", -1.8},    {"unreliable", -1.4},
    {"refund", -1.2},       {"horrible", -2.0}, {"flimsy", -1.0},  {"annoying", -1.2}};

#define NFUNC (int)(sizeof(function_words) / sizeof(function_words[0]))
#define NLEX (int)(sizeof(lexicon) / sizeof(lexicon[0]))

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unif(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static double rng_normal(uint64_t *s)
{
    double u = rng_unif(s), v = rng_unif(s);
    return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

/* Open-addressing set of the words so far (indices + 1 into v->w), so made-up words
 * are unique in O(1) each. */
static bool vocab_add(struct vocab *v, int *set, size_t mask, const char *t)
{
    size_t h = tr_fnv1a(t, strlen(t)) & mask;
    while (set[h] != 0) {
        if (strcmp(v->w[set[h] - 1].text, t) == 0)
            return false;
        h = (h + 1) & mask;
    }
    set[h] = v->n + 1;
    return true;
}

/* A made-up word of 2-3 syllables, not already in the vocabulary. */
static void made_up(struct vocab *v, int *set, size_t mask, uint64_t *s, char *out)
{
    static const char cons[] = "bcdfghklmnprstvz", vow[] = "aeiou";
    for (;;) {
        int syl = 2 + (int)(rng_next(s) % 2), n = 0;
        for (int i = 0; i < syl; i++) {
            out[n++] = cons[rng_next(s) % 16];
            out[n++] = vow[rng_next(s) % 5];
            if (rng_next(s) % 4 == 0)
                out[n++] = cons[rng_next(s) % 16];
        }
        out[n] = '\0';
        if (vocab_add(v, set, mask, out))
            return;
    }
}

static int vocab_build(struct vocab *v, int size, uint64_t seed)
{
    if (size < NFUNC + NLEX + 10)
        size = NFUNC + NLEX + 10;
    v->w = calloc((size_t)size, sizeof(struct word));
    v->cdf = calloc((size_t)size, sizeof(double));
    if (v->w == NULL || v->cdf == NULL)
        return -1;
    size_t mask = 1;
    while (mask < 2 * (size_t)size)
        mask <<= 1;
    int *set = calloc(mask, sizeof(int));
    if (set == NULL)
        return -1;
    mask--;
    uint64_t s = seed ^ 0x766f636162ULL;
    v->n = 0;
    for (int i = 0; i < NFUNC; i++) {
        snprintf(v->w[v->n].text, 16, "%s", function_words[i]);
        vocab_add(v, set, mask, v->w[v->n].text);
        v->n++;
    }
    for (int i = 0; i < NLEX; i++) {
        snprintf(v->w[v->n].text, 16, "%s", lexicon[i].w);
        vocab_add(v, set, mask, v->w[v->n].text);
        v->w[v->n++].weight = lexicon[i].weight;
    }
    while (v->n < size) {
        made_up(v, set, mask, &s, v->w[v->n].text);
        v->w[v->n].weight = rng_unif(&s) < 0.3 ? 0.8 * rng_normal(&s) : 0;
        v->n++;
    }
    free(set);
    /* The lexicon and made-up words take seeded random frequency ranks. */
    for (int i = v->n - 1; i > NFUNC; i--) {
        int j = NFUNC + (int)(rng_next(&s) % (uint64_t)(i - NFUNC + 1));
        struct word t = v->w[i];
        v->w[i] = v->w[j];
        v->w[j] = t;
    }
    double acc = 0;
    for (int i = 0; i < v->n; i++) {
        acc += 1.0 / (i + 3.0);
        v->cdf[i] = acc;
    }
    for (int i = 0; i < v->n; i++)
        v->cdf[i] /= acc;
    return 0;
}

static const struct word *vocab_draw(const struct vocab *v, uint64_t *s)
{
    double u = rng_unif(s);
    int lo = 0, hi = v->n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return &v->w[lo];
}

/* Review i: writes "label<TAB>text" into buf (cap >= 1024) and returns its length;
 * *best is the true model's prediction, in the same encoding as the label. */
static size_t review(const struct vocab *v, uint64_t seed, unsigned long long i, int classes,
                     char *buf, int *best)
{
    uint64_t s = seed * 0x2545F4914F6CDD1DULL ^ (i + 1) * 0x9e3779b97f4a7c15ULL;
    rng_next(&s);
    int len = 8 + (int)(rng_next(&s) % 25);
    size_t n = 2;
    double z = 0;
    for (int k = 0; k < len; k++) {
        const struct word *w = vocab_draw(v, &s);
        z += w->weight;
        size_t wl = strlen(w->text);
        memcpy(buf + n, w->text, wl);
        if (k == 0)
            buf[n] = (char)(buf[n] - 'a' + 'A');
        n += wl;
        if (k + 1 < len) {
            if (rng_next(&s) % 16 == 0)
                buf[n++] = ',';
            buf[n++] = ' ';
        }
    }
    buf[n++] = '.';
    int label;
    if (classes == 2) {
        label = rng_unif(&s) < 1 / (1 + exp(-z));
        *best = z > 0;
    } else {
        double p[5], tot = 0, mx = -HUGE_VAL;
        int arg = 0;
        for (int k = 0; k < 5; k++) {
            double logit = (k - 2) * z - 0.5 * (k - 2) * (k - 2);
            if (logit > mx) {
                mx = logit;
                arg = k;
            }
            p[k] = logit;
        }
        for (int k = 0; k < 5; k++)
            tot += p[k] = exp(p[k] - mx);
        double u = rng_unif(&s) * tot;
        label = 4;
        for (int k = 0; k < 5; k++) {
            if (u < p[k]) {
                label = k;
                break;
            }
            u -= p[k];
        }
        label += 1;
        *best = arg + 1;
    }
    buf[0] = (char)('0' + label);
    buf[1] = '\t';
    return n;
}

int tr_load_synth(const struct tr_opts *o)
{
    int classes = o->classes ? o->classes : 2;
    if (classes != 2 && classes != 5) {
        fprintf(stderr, "eddy-train: --classes must be 2 or 5\n");
        return 2;
    }
    unsigned long long limit = o->reviews, bytes = o->bytes;
    if (limit == 0 && bytes == 0)
        limit = 20000;
    struct vocab v = {0};
    if (vocab_build(&v, o->vocab, o->seed) != 0) {
        fprintf(stderr, "eddy-train: out of memory\n");
        return 1;
    }
    if (o->clear && tr_clear(o) != 0)
        return 1;
    struct tr_conn c;
    if (tr_conn_open(&c, o) != 0)
        return 1;
    unsigned long long total = bytes ? bytes : limit * 150;
    struct tr_writer *w = tr_writer_new(&c, total, o->quiet);
    double t0 = tr_now();
    char buf[1024], key[64];
    unsigned long long i = 0, made = 0, ntest = 0, best_ok = 0;
    int rc = w ? 0 : -1;
    printf("Synthetic reviews: seed %llu, %d classes, vocabulary %d words; examples:\n",
           o->seed, classes, v.n);
    while (rc == 0 && (limit == 0 || i < limit) && (bytes == 0 || made < bytes)) {
        int best;
        size_t n = review(&v, o->seed, i, classes, buf, &best);
        int kl = snprintf(key, sizeof(key), "r:{s-%llu}", i);
        if (i < 3)
            printf("  %s = \"%.*s\"\n", key, (int)n, buf);
        if (tr_is_test(key + 3, (size_t)kl - 4)) {
            ntest++;
            best_ok += best == buf[0] - '0';
        }
        rc = tr_writer_set(w, key, (size_t)kl, buf, n);
        made += (unsigned long long)kl + n;
        i++;
    }
    unsigned long long written = 0;
    if (w != NULL && tr_writer_finish(w, &written) != 0)
        rc = -1;
    double el = tr_now() - t0;
    double acc = ntest ? (double)best_ok / (double)ntest : 0;
    if (rc == 0) {
        struct tr_meta m = {.classes = classes, .reviews = (long long)i, .true_test_acc = acc};
        snprintf(m.source, sizeof(m.source), "synth:seed=%llu,vocab=%d,classes=%d", o->seed,
                 v.n, classes);
        rc = tr_meta_set(&c, &m);
    }
    if (rc == 0) {
        char a[32], b[32];
        printf("loaded %llu reviews (%s of keys and values) in %.2f s, %.1f MB/s; %s sent\n", i,
               tr_bytes(made, a, sizeof(a)), el, (double)made / el / 1e6,
               tr_bytes(c.sent, b, sizeof(b)));
        printf("true model accuracy on the test split (%llu reviews): %.4f\n", ntest, acc);
    }
    free(v.w);
    free(v.cdf);
    tr_conn_close(&c);
    return rc == 0 ? 0 : 1;
}
