/* test_train.c - the model-training example (examples/train, issue 4) and MAPREDUCE
 * under stress: the loaders (key counts, idempotent reloads), featurization (blocks
 * decode, block sizes, the same review gives the same features), the map/reduce gradient against an
 * independent computation here, store and client modes agreeing to 1e-9 after 3
 * epochs, accuracy on the real Amazon sentences (> 0.726, the word-list baseline) and
 * on synthetic data (within 0.02 of the true model), a map failing on one partition,
 * FUNCTION KILL during a map, and writers running during a map.
 * Each test starts its own eddyd and drives bin/eddy-train ($EDDY_TRAIN, default:
 * eddy-train next to $EDDYD) as a user would; the UCI data must be in
 * ../shared/data/uci-sentiment (relative to the repository root, where tests run). */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/common.h"
#include "harness.h"

void suite_train(void);

#define UCI_DIR "../shared/data/uci-sentiment"

/* ---- Helpers ------------------------------------------------------------------------------ */

static const char *train_bin(void)
{
    static char path[1024];
    const char *e = getenv("EDDY_TRAIN");
    if (e != NULL && *e != '\0')
        return e;
    const char *d = getenv("EDDYD");
    if (d == NULL || *d == '\0')
        d = "bin/eddyd";
    const char *slash = strrchr(d, '/');
    if (slash == NULL)
        snprintf(path, sizeof(path), "eddy-train");
    else
        snprintf(path, sizeof(path), "%.*s/eddy-train", (int)(slash - d), d);
    return path;
}

/* Runs eddy-train -p port -q args... (NULL-terminated) with its output in *out
 * (malloc'd, NUL-terminated); fails the test unless it exits with status 0. */
static char *run_train(const char *file, int line, int port, const char *arg, ...)
{
    const char *argv[64];
    char portbuf[16], outpath[] = "/tmp/eddy-train-test-XXXXXX";
    int n = 0;
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    argv[n++] = train_bin();
    argv[n++] = "-p";
    argv[n++] = portbuf;
    argv[n++] = "-q";
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL && n < 62; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int fd = mkstemp(outpath);
    if (fd < 0)
        h_fail(file, line, "mkstemp failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s (build it with make, or set EDDY_TRAIN)\n", argv[0]);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = malloc((size_t)len + 1);
    if (out == NULL || pread(fd, out, (size_t)len, 0) != (ssize_t)len)
        h_fail(file, line, "cannot read the output of eddy-train");
    out[len] = '\0';
    close(fd);
    unlink(outpath);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        size_t l = strlen(out);
        h_fail(file, line, "eddy-train %s exited with %d; output:\n%s", arg,
               WIFEXITED(st) ? WEXITSTATUS(st) : -1, l > 3000 ? out + l - 3000 : out);
    }
    return out;
}
#define TRAIN(port, ...) run_train(H_AT, (port), __VA_ARGS__, (char *)NULL)

/* Counts keys matching pattern with SCAN. */
static long long count_keys(eddy_ctx *c, const char *pattern)
{
    char cursor[32] = "0";
    long long n = 0;
    do {
        struct eddy_reply *r = CMD(c, "SCAN", cursor, "MATCH", pattern, "COUNT", "5000");
        if (r->type != EDDY_REPLY_ARRAY || r->elements != 2)
            FAILF("SCAN: %s", h_describe(r));
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += (long long)r->element[1]->elements;
        eddy_reply_free(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

static double num(const struct eddy_reply *r)
{
    if (r->type == EDDY_REPLY_INTEGER)
        return (double)r->integer;
    if (r->type == EDDY_REPLY_DOUBLE)
        return r->dval;
    if (r->str == NULL)
        FAILF("expected a number, got %s", h_describe(r));
    return strtod(r->str, NULL);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A weights value: one or more dense eddy.vec encodings ("EVd1" n, n doubles) one
 * after the other. Returns all their doubles (malloc'd); *n is the total, *k the count
 * of vectors. */
static double *weights(const struct eddy_reply *r, size_t *n, int *k)
{
    if (r->type != EDDY_REPLY_STRING)
        FAILF("weights: %s", h_describe(r));
    double *v = malloc(r->len + 8);
    size_t off = 0;
    *n = 0;
    *k = 0;
    while (off < r->len) {
        if (r->len - off < 8 || memcmp(r->str + off, "EVd1", 4) != 0)
            FAILF("not a dense vector at byte %zu of %zu", off, r->len);
        size_t m = rd32((const unsigned char *)r->str + off + 4);
        if (r->len - off - 8 < 8 * m)
            FAILF("dense vector of %zu elements is cut short", m);
        memcpy(v + *n, r->str + off + 8, 8 * m);
        *n += m;
        (*k)++;
        off += 8 + 8 * m;
    }
    return v;
}

/* Value of "key=" in the CSV line of mode,final (column col, 0-based). */
static double csv_final(const char *csv_path, const char *mode, int col)
{
    FILE *f = fopen(csv_path, "r");
    if (f == NULL)
        FAILF("no CSV at %s", csv_path);
    char line[512], want[32];
    snprintf(want, sizeof(want), "%s,final,", mode);
    double v = NAN;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, want, strlen(want)) == 0) {
            char *p = line;
            for (int i = 0; i < col && p; i++) {
                p = strchr(p, ',');
                p = p ? p + 1 : NULL;
            }
            if (p)
                v = strtod(p, NULL);
        }
    fclose(f);
    if (isnan(v))
        FAILF("no %s,final line in %s", mode, csv_path);
    return v;
}

/* The losses of the epochs of one mode, from the CSV (column 7); returns the count. */
static int csv_losses(const char *csv_path, const char *mode, double *out, int cap)
{
    FILE *f = fopen(csv_path, "r");
    if (f == NULL)
        FAILF("no CSV at %s", csv_path);
    char line[512];
    int n = 0;
    size_t ml = strlen(mode);
    while (fgets(line, sizeof(line), f) && n < cap) {
        if (strncmp(line, mode, ml) != 0 || line[ml] != ',' || strstr(line, ",final,"))
            continue;
        char *p = line;
        for (int i = 0; i < 7 && p; i++) {
            p = strchr(p, ',');
            p = p ? p + 1 : NULL;
        }
        if (p)
            out[n++] = strtod(p, NULL);
    }
    fclose(f);
    return n;
}

static void csv_path_for(struct h_server *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/train.csv", s->dir);
}

/* ---- Loaders ------------------------------------------------------------------------------ */

static void t_loaders(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    free(TRAIN(s->port, "load-uci", "--dir", UCI_DIR));
    CHECK_EQ_INT(count_keys(c, "r:{amazon-*}"), 1000);
    free(TRAIN(s->port, "load-uci", "--dir", UCI_DIR)); /* a reload writes the same keys */
    CHECK_EQ_INT(count_keys(c, "r:{amazon-*}"), 1000);
    char *v = CMD_TEXT(c, "GET", "r:{amazon-1}");
    CHECK((v[0] == '0' || v[0] == '1') && v[1] == '\t' && strlen(v) > 3);
    free(v);
    v = CMD_TEXT(c, "GET", "train:meta");
    CHECK(strstr(v, "classes=2") != NULL && strstr(v, "reviews=1000") != NULL);
    free(v);
    /* Synthetic: deterministic by seed, idempotent, --clear removes the UCI keys. */
    char *out = TRAIN(s->port, "load-synth", "--clear", "--reviews", "700", "--seed", "5");
    CHECK(strstr(out, "true model accuracy on the test split") != NULL);
    free(out);
    CHECK_EQ_INT(count_keys(c, "r:{amazon-*}"), 0);
    CHECK_EQ_INT(count_keys(c, "r:{s-*}"), 700);
    char *a = CMD_TEXT(c, "GET", "r:{s-123}");
    free(TRAIN(s->port, "load-synth", "--reviews", "700", "--seed", "5"));
    CHECK_EQ_INT(count_keys(c, "r:{s-*}"), 700);
    char *b = CMD_TEXT(c, "GET", "r:{s-123}");
    CHECK_STR(b, a);
    free(b);
    free(TRAIN(s->port, "load-synth", "--reviews", "700", "--seed", "6", "--classes", "5"));
    b = CMD_TEXT(c, "GET", "r:{s-123}");
    CHECK(strcmp(a, b) != 0 && b[0] >= '1' && b[0] <= '5' && b[1] == '\t');
    free(a);
    free(b);
    /* --bytes stops at the size. */
    free(TRAIN(s->port, "load-synth", "--clear", "--bytes", "64k"));
    long long n = count_keys(c, "r:{s-*}");
    CHECK(n > 300 && n < 1000);
    eddy_free(c);
    h_server_free(s);
}

/* ---- Featurization ------------------------------------------------------------------------ */

/* A feature block (train.lua): "TRB1" | rows | rows classes | rows split flags | CSR
 * "EVm1" rows cols nnz | rows+1 offsets | nnz indices | nnz values. Parsed here
 * independently of the example's and the server's code. */
struct blk {
    uint32_t rows, cols, nnz;
    const unsigned char *y, *test, *ptr, *idx, *val;
};

static void blk_parse(const char *key, const struct eddy_reply *v, struct blk *b)
{
    const unsigned char *p = (const unsigned char *)v->str;
    if (v->type != EDDY_REPLY_STRING || v->len < 8 || memcmp(p, "TRB1", 4) != 0)
        FAILF("%s is not a feature block: %s", key, h_describe(v));
    b->rows = rd32(p + 4);
    b->y = p + 8;
    b->test = b->y + b->rows;
    const unsigned char *m = b->test + b->rows;
    CHECK(memcmp(m, "EVm1", 4) == 0 && rd32(m + 4) == b->rows);
    b->cols = rd32(m + 8);
    b->nnz = rd32(m + 12);
    b->ptr = m + 16;
    b->idx = b->ptr + 4 * ((size_t)b->rows + 1);
    b->val = b->idx + 4 * (size_t)b->nnz;
    CHECK_EQ_INT(v->len, 8 + 2 * (size_t)b->rows + 16 + 4 * ((size_t)b->rows + 1) + 12 * (size_t)b->nnz);
    CHECK_EQ_INT(rd32(b->ptr), 0);
    CHECK_EQ_INT(rd32(b->ptr + 4 * (size_t)b->rows), b->nnz);
}

static double blk_val(const struct blk *b, size_t k)
{
    double x;
    memcpy(&x, b->val + 8 * k, 8);
    return x;
}

/* Calls fn for every feature block (SCAN MATCH fb:* and GET). */
static void each_block(eddy_ctx *c, void (*fn)(const struct blk *, void *), void *ud)
{
    char cursor[32] = "0";
    do {
        struct eddy_reply *r = CMD(c, "SCAN", cursor, "MATCH", "fb:*", "COUNT", "100");
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            struct eddy_reply *v = CMD(c, "GET", r->element[1]->element[i]->str);
            struct blk b;
            blk_parse(r->element[1]->element[i]->str, v, &b);
            fn(&b, ud);
            eddy_reply_free(v);
        }
        eddy_reply_free(r);
    } while (strcmp(cursor, "0") != 0);
}

struct shape {
    long long rows, blocks, max_rows;
};

/* Every row: class 0/1, split 0/1, indices in 1..4097, values 1, the bias last. */
static void check_shape(const struct blk *b, void *ud)
{
    struct shape *sh = ud;
    CHECK_EQ_INT(b->cols, 4097);
    for (uint32_t r = 0; r < b->rows; r++) {
        CHECK(b->y[r] <= 1 && b->test[r] <= 1);
        uint32_t lo = rd32(b->ptr + 4 * r), hi = rd32(b->ptr + 4 * (r + 1));
        CHECK(hi >= lo + 2);
        for (uint32_t k = lo; k < hi; k++) {
            uint32_t i = rd32(b->idx + 4 * k);
            CHECK(i >= 1 && i <= 4097 && blk_val(b, k) == 1.0);
        }
        CHECK_EQ_INT(rd32(b->idx + 4 * (hi - 1)), 4097);
    }
    sh->rows += b->rows;
    sh->blocks++;
    if (b->rows > sh->max_rows)
        sh->max_rows = b->rows;
}

static struct shape shape_of(eddy_ctx *c)
{
    struct shape sh = {0};
    each_block(c, check_shape, &sh);
    return sh;
}

/* The block of one review alone in its slot: fb:{id}:0 with one row. */
static struct eddy_reply *lone_block(eddy_ctx *c, const char *id)
{
    char key[64];
    snprintf(key, sizeof(key), "fb:{%s}:0", id);
    struct eddy_reply *v = CMD(c, "GET", key);
    struct blk b;
    blk_parse(key, v, &b);
    CHECK_EQ_INT(b.rows, 1);
    return v;
}

/* An id formatted with one integer (a static buffer, valid until the next call). */
static const char *fmt_id(const char *fmt, int n)
{
    static char buf[32];
    snprintf(buf, sizeof(buf), fmt, n);
    return buf;
}

/* True if no review s-0..s-299 other than s-<self> is in the slot of id. */
static bool slot_free(const char *id, int self)
{
    unsigned sl = cm_key_slot(id, strlen(id));
    for (int j = 0; j < 300; j++) {
        const char *o = fmt_id("s-%d", j);
        if (j != self && cm_key_slot(o, strlen(o)) == sl)
            return false;
    }
    return true;
}

static void t_featurize(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    free(TRAIN(s->port, "load-synth", "--reviews", "300", "--seed", "2"));
    /* Ids whose slots hold no other review: s-<a> and a copy of it under another id. */
    int a = 0;
    while (!slot_free(fmt_id("s-%d", a), a))
        a++;
    CHECK(a < 300);
    int cn = 0;
    while (!slot_free(fmt_id("copy-%d", cn), -1))
        cn++;
    char copy[32];
    snprintf(copy, sizeof(copy), "copy-%d", cn);
    char rk[48], ck[48], ida[32];
    snprintf(ida, sizeof(ida), "s-%d", a);
    snprintf(rk, sizeof(rk), "r:{%s}", ida);
    snprintf(ck, sizeof(ck), "r:{%s}", copy);
    char *r0 = CMD_TEXT(c, "GET", rk);
    EXPECT_OK(c, "SET", ck, r0);
    free(r0);
    /* One review per block: 301 blocks. */
    char *out = TRAIN(s->port, "featurize", "--bits", "12", "--block", "1");
    CHECK(strstr(out, "featurized 301 of 301 reviews") != NULL && strstr(out, "301 blocks") != NULL);
    free(out);
    struct shape sh = shape_of(c);
    CHECK_EQ_INT(sh.rows, 301);
    CHECK_EQ_INT(sh.blocks, 301);
    CHECK_EQ_INT(count_keys(c, "fb:*"), 301);
    /* The same text gives the same row (class and features; the split depends on the id). */
    struct eddy_reply *f0 = lone_block(c, ida), *f1 = lone_block(c, copy);
    CHECK(f0->len == f1->len && f0->str[8] == f1->str[8] &&
          memcmp(f0->str + 10, f1->str + 10, f0->len - 10) == 0);
    eddy_reply_free(f1);
    /* Blocks of up to 1000 reviews: one block per slot here; the old blocks are gone. */
    out = TRAIN(s->port, "featurize", "--bits", "12");
    CHECK(strstr(out, "featurized 301 of 301 reviews") != NULL);
    free(out);
    sh = shape_of(c);
    CHECK_EQ_INT(sh.rows, 301);
    static bool used[CM_SLOTS];
    int slots = 0;
    for (int i = 0; i <= 300; i++) {
        char k[32];
        if (i < 300)
            snprintf(k, sizeof(k), "s-%d", i);
        else
            snprintf(k, sizeof(k), "%s", copy);
        unsigned sl = cm_key_slot(k, strlen(k));
        slots += !used[sl];
        used[sl] = true;
    }
    CHECK_EQ_INT(sh.blocks, slots); /* one block per slot with reviews */
    CHECK_EQ_INT(count_keys(c, "fb:*"), sh.blocks);
    /* A lone review's row is the same whichever block size made it. */
    f1 = lone_block(c, ida);
    CHECK(f0->len == f1->len && memcmp(f0->str, f1->str, f0->len) == 0);
    eddy_reply_free(f0);
    eddy_reply_free(f1);
    /* Three reviews in one slot (and no other there) with blocks of 2 rows at most: in
     * key order, fb:{<id 1>}:0 with reviews 1 and 2, fb:{<id 3>}:1 with review 3. */
    static unsigned short seen[CM_SLOTS];
    char ids[3][32];
    int found = 0;
    for (int n = 0; found < 3; n++) {
        char k[32];
        snprintf(k, sizeof(k), "t-%d", n);
        unsigned sl = cm_key_slot(k, strlen(k));
        if (!slot_free(k, -1) || ++seen[sl] < 3)
            continue;
        for (int m = 0; m <= n && found < 3; m++) { /* the three ids of this slot */
            snprintf(k, sizeof(k), "t-%d", m);
            if (cm_key_slot(k, strlen(k)) == sl)
                snprintf(ids[found++], sizeof(ids[0]), "%s", k);
        }
    }
    char keys[3][48];
    for (int i = 0; i < 3; i++) {
        snprintf(keys[i], sizeof(keys[i]), "r:{%s}", ids[i]);
        EXPECT_OK(c, "SET", keys[i], i == 1 ? "0\tbad" : "1\tgood good");
    }
    qsort(keys, 3, sizeof(keys[0]), (int (*)(const void *, const void *))strcmp);
    out = TRAIN(s->port, "featurize", "--bits", "12", "--block", "2");
    free(out);
    sh = shape_of(c);
    CHECK_EQ_INT(sh.rows, 304);
    CHECK_EQ_INT(sh.max_rows, 2);
    char bk[160];
    struct blk b;
    snprintf(bk, sizeof(bk), "fb:%s:0", keys[0] + 2); /* named after their first review */
    struct eddy_reply *v = CMD(c, "GET", bk);
    blk_parse(bk, v, &b);
    CHECK_EQ_INT(b.rows, 2);
    eddy_reply_free(v);
    snprintf(bk, sizeof(bk), "fb:%s:1", keys[2] + 2);
    v = CMD(c, "GET", bk);
    blk_parse(bk, v, &b);
    CHECK_EQ_INT(b.rows, 1);
    eddy_reply_free(v);
    /* Featurizing again changes nothing. */
    struct eddy_reply *before = lone_block(c, copy);
    free(TRAIN(s->port, "featurize", "--bits", "12", "--block", "2"));
    struct eddy_reply *after = lone_block(c, copy);
    CHECK(before->len == after->len && memcmp(before->str, after->str, before->len) == 0);
    eddy_reply_free(before);
    eddy_reply_free(after);
    CHECK_EQ_INT(shape_of(c).rows, 304);
    eddy_free(c);
    h_server_free(s);
}

/* ---- The gradient against an independent computation --------------------------------------- */

/* Logistic gradient sum, loss and counts over every feature row, computed here. */
struct ref {
    double *g, loss, tloss;
    const double *w;
    long long ntr, nte, corr, tcorr;
};

static void ref_block(const struct blk *b, void *ud)
{
    struct ref *R = ud;
    for (uint32_t r = 0; r < b->rows; r++) {
        uint32_t lo = rd32(b->ptr + 4 * r), hi = rd32(b->ptr + 4 * (r + 1));
        int y = b->y[r];
        double z = 0;
        for (uint32_t k = lo; k < hi; k++)
            z += R->w[rd32(b->idx + 4 * k) - 1] * blk_val(b, k);
        double prob = 1 / (1 + exp(-z));
        double loss = -(y ? log(prob) : log(1 - prob));
        bool hit = (z > 0) == (y == 1);
        if (b->test[r]) {
            R->nte++;
            R->tloss += loss;
            R->tcorr += hit;
        } else {
            R->ntr++;
            R->loss += loss;
            R->corr += hit;
            for (uint32_t k = lo; k < hi; k++)
                R->g[rd32(b->idx + 4 * k) - 1] += (prob - y) * blk_val(b, k);
        }
    }
}

static void ref_compute(eddy_ctx *c, const double *w, size_t dim, struct ref *R)
{
    memset(R, 0, sizeof(*R));
    R->g = calloc(dim, sizeof(double));
    R->w = w;
    each_block(c, ref_block, R);
}

static bool close_to(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(1, fmax(fabs(a), fabs(b)));
}

/* Checks a MAPREDUCE train_grad train_sum reply against the reference. */
static void check_grad(const struct eddy_reply *r, const struct ref *R, size_t dim)
{
    if (r->type != EDDY_REPLY_ARRAY || r->elements != 7)
        FAILF("MAPREDUCE train_grad train_sum: %s", h_describe(r));
    CHECK_EQ_INT(num(r->element[0]), R->ntr);
    CHECK_EQ_INT(num(r->element[2]), R->corr);
    CHECK_EQ_INT(num(r->element[3]), R->nte);
    CHECK_EQ_INT(num(r->element[5]), R->tcorr);
    /* Lua floats reach RESP as integers (truncated, as in Redis): the exact losses are
     * checked through train_step, which returns them as strings. */
    CHECK_EQ_INT(num(r->element[1]), (long long)R->loss);
    CHECK_EQ_INT(num(r->element[4]), (long long)R->tloss);
    const struct eddy_reply *g = r->element[6];
    CHECK_EQ_INT(g->elements, dim);
    for (size_t i = 0; i < dim; i++)
        if (!close_to(num(g->element[i]), R->g[i], 1e-9))
            FAILF("gradient[%zu] = %.17g, expected %.17g", i, num(g->element[i]), R->g[i]);
}

static double *get_weights(eddy_ctx *c, const char *key, size_t *n, int *k)
{
    struct eddy_reply *r = CMD(c, "GET", key);
    double *w = weights(r, n, k);
    eddy_reply_free(r);
    return w;
}

static void t_grad_vs_client(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    free(TRAIN(s->port, "load-synth", "--reviews", "600", "--seed", "3"));
    free(TRAIN(s->port, "featurize", "--bits", "10"));
    /* Two store epochs give non-trivial weights; then one gradient with train_sum. */
    free(TRAIN(s->port, "train", "--mode", "store", "--epochs", "2"));
    size_t dim;
    int k;
    double *w = get_weights(c, "_train:{model}:w", &dim, &k);
    CHECK_EQ_INT(dim, 1025);
    CHECK_EQ_INT(k, 1);
    struct ref R;
    ref_compute(c, w, dim, &R);
    CHECK_EQ_INT(R.ntr + R.nte, 600);
    CHECK(R.nte > 60 && R.nte < 200);
    struct eddy_reply *r = CMD(c, "MAPREDUCE", "train_grad", "train_sum", "1024", "2");
    check_grad(r, &R, dim);
    eddy_reply_free(r);
    r = CMD(c, "MAPREDUCE", "train_grad", "train_step", "1024", "2", "0", "0", "0");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 7);
    CHECK_EQ_INT(num(r->element[0]), R.ntr);
    CHECK_EQ_INT(num(r->element[5]), R.tcorr);
    if (!close_to(num(r->element[1]), R.loss, 1e-9) || !close_to(num(r->element[4]), R.tloss, 1e-9))
        FAILF("loss %.17g / %.17g, expected %.17g / %.17g", num(r->element[1]),
              num(r->element[4]), R.loss, R.tloss);
    eddy_reply_free(r);
    /* A step applies w - lr * (g / ntr + l2 * w) with momentum 0. */
    r = CMD(c, "MAPREDUCE", "train_grad", "train_step", "1024", "2", "0.5", "0.01", "0");
    CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 7);
    eddy_reply_free(r);
    size_t dim2;
    double *w2 = get_weights(c, "_train:{model}:w", &dim2, &k);
    CHECK_EQ_INT(dim2, dim);
    for (size_t i = 0; i < dim; i++) {
        double want = w[i] - 0.5 * (R.g[i] / (double)R.ntr + 0.01 * w[i]);
        if (!close_to(w2[i], want, 1e-9))
            FAILF("w[%zu] after the step = %.17g, expected %.17g", i, w2[i], want);
    }
    free(w);
    free(w2);
    free(R.g);
    eddy_free(c);
    h_server_free(s);
}

/* The example on a 3-node cluster: the reviews spread over the nodes, MAPREDUCE runs
 * the maps of every node (each reads the weights from their owner), the client mode
 * pulls every node's blocks, and both give the losses a single server gives. */
static void t_cluster(void)
{
    enum { N = 3 };
    struct h_server *s[N];
    eddy_ctx *c[N];
    char payload[1024];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        s[i] = h_server_start("--cluster-enabled", "yes", NULL);
        c[i] = h_connect_port(s[i]->port);
        char *id = CMD_TEXT(c[i], "CLUSTER", "MYID");
        n += (size_t)snprintf(payload + n, sizeof(payload) - n, "node %s 127.0.0.1 %d\n", id,
                              s[i]->port);
        free(id);
    }
    for (int i = 0; i < N; i++) {
        char *id = CMD_TEXT(c[i], "CLUSTER", "MYID");
        n += (size_t)snprintf(payload + n, sizeof(payload) - n, "slots %s %d-%d\n", id,
                              i * CM_SLOTS / N, (i + 1) * CM_SLOTS / N - 1);
        free(id);
    }
    for (int i = 0; i < N; i++)
        EXPECT_OK(c[i], "CLUSTER", "SETMAP", "1", payload);
    char csv[512];
    csv_path_for(s[0], csv, sizeof(csv));
    free(TRAIN(s[0]->port, "load-synth", "--reviews", "1500", "--seed", "11"));
    for (int i = 0; i < N; i++) {
        long long keys = CMD_INT(c[i], "DBSIZE");
        CHECK(keys > 300 && keys < 800); /* about a third of the reviews each */
    }
    free(TRAIN(s[0]->port, "featurize", "--bits", "12"));
    free(TRAIN(s[1]->port, "train", "--mode", "both", "--epochs", "3", "--lr", "1", "--csv", csv));
    double ls[3], lc[3], l1[3];
    CHECK_EQ_INT(csv_losses(csv, "store", ls, 3), 3);
    CHECK_EQ_INT(csv_losses(csv, "client", lc, 3), 3);
    for (int i = 0; i < N; i++) {
        eddy_free(c[i]);
        h_server_free(s[i]);
    }
    /* The same data and epochs on one server. */
    struct h_server *one = h_server_start(NULL);
    csv_path_for(one, csv, sizeof(csv));
    free(TRAIN(one->port, "load-synth", "--reviews", "1500", "--seed", "11"));
    free(TRAIN(one->port, "featurize", "--bits", "12"));
    free(TRAIN(one->port, "train", "--mode", "store", "--epochs", "3", "--lr", "1", "--csv", csv));
    CHECK_EQ_INT(csv_losses(csv, "store", l1, 3), 3);
    h_server_free(one);
    for (int i = 0; i < 3; i++)
        if (!close_to(ls[i], lc[i], 1e-9) || !close_to(ls[i], l1[i], 1e-9))
            FAILF("epoch %d: loss %.17g (cluster, store) %.17g (cluster, client) %.17g (one "
                  "server)", i + 1, ls[i], lc[i], l1[i]);
    CHECK(ls[2] < ls[0]);
}

static void t_store_vs_client(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    char csv[512];
    csv_path_for(s, csv, sizeof(csv));
    for (int classes = 2; classes <= 5; classes += 3) {
        char k[4];
        snprintf(k, sizeof(k), "%d", classes);
        free(TRAIN(s->port, "load-synth", "--clear", "--reviews", "1500", "--seed", "11",
                   "--classes", k));
        free(TRAIN(s->port, "featurize", "--bits", "12"));
        free(TRAIN(s->port, "train", "--mode", "both", "--epochs", "3", "--lr", "1",
                   "--momentum", "0.9", "--l2", "0.001", "--csv", csv));
        double ls[3], lc[3];
        CHECK_EQ_INT(csv_losses(csv, "store", ls, 3), 3);
        CHECK_EQ_INT(csv_losses(csv, "client", lc, 3), 3);
        for (int i = 0; i < 3; i++)
            if (!close_to(ls[i], lc[i], 1e-9))
                FAILF("%d classes, epoch %d: loss %.17g (store) vs %.17g (client)", classes,
                      i + 1, ls[i], lc[i]);
        CHECK(ls[2] < ls[0]);
        size_t ds, dc;
        int ks, kc;
        double *ws = get_weights(c, "_train:{model}:w", &ds, &ks);
        double *wc = get_weights(c, "_train:{model}:client", &dc, &kc);
        CHECK_EQ_INT(ks, classes == 2 ? 1 : 5);
        CHECK_EQ_INT(kc, ks);
        CHECK_EQ_INT(ds, (size_t)ks * 4097);
        CHECK_EQ_INT(dc, ds);
        double maxabs = 0;
        for (size_t i = 0; i < ds; i++) {
            if (!close_to(ws[i], wc[i], 1e-9))
                FAILF("%d classes: w[%zu] = %.17g (store) vs %.17g (client)", classes, i, ws[i],
                      wc[i]);
            maxabs = fmax(maxabs, fabs(ws[i]));
        }
        CHECK(maxabs > 1e-3);
        CHECK(close_to(csv_final(csv, "store", 9), csv_final(csv, "client", 9), 1e-12));
        free(ws);
        free(wc);
    }
    eddy_free(c);
    h_server_free(s);
}

/* ---- Accuracy ------------------------------------------------------------------------------ */

static void t_real_accuracy(void)
{
    struct stat st;
    if (stat(UCI_DIR "/amazon_cells_labelled.txt", &st) != 0)
        FAILF("the UCI data is missing: %s/amazon_cells_labelled.txt (run from the repository "
              "root, with ../shared/data in place)", UCI_DIR);
    struct h_server *s = h_server_start(NULL);
    char csv[512];
    csv_path_for(s, csv, sizeof(csv));
    free(TRAIN(s->port, "load-uci", "--dir", UCI_DIR));
    free(TRAIN(s->port, "featurize"));
    free(TRAIN(s->port, "train", "--mode", "store", "--epochs", "30", "--lr", "1", "--csv", csv));
    double acc = csv_final(csv, "store", 9);
    fprintf(stderr, "amazon: held-out accuracy %.4f (baseline 0.726)\n", acc);
    if (!(acc > 0.726))
        FAILF("held-out accuracy %.4f is not above the word-list baseline 0.726", acc);
    h_server_free(s);
}

static void t_synth_accuracy(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    char csv[512];
    csv_path_for(s, csv, sizeof(csv));
    free(TRAIN(s->port, "load-synth", "--reviews", "20000", "--seed", "7", "--vocab", "600"));
    free(TRAIN(s->port, "featurize"));
    /* Client mode computes the same as store mode (t_store_vs_client), faster here. */
    free(TRAIN(s->port, "train", "--mode", "client", "--epochs", "30", "--lr", "2", "--csv",
               csv));
    char *meta = CMD_TEXT(c, "GET", "train:meta");
    const char *t = strstr(meta, "true_test_acc=");
    CHECK(t != NULL);
    double truth = strtod(t + 14, NULL), acc = csv_final(csv, "client", 9);
    free(meta);
    fprintf(stderr, "synthetic: held-out accuracy %.4f, true model %.4f\n", acc, truth);
    CHECK(truth > 0.6 && truth < 0.95);
    if (fabs(acc - truth) > 0.02)
        FAILF("held-out accuracy %.4f is not within 0.02 of the true model's %.4f", acc, truth);
    eddy_free(c);
    h_server_free(s);
}

/* ---- MAPREDUCE under failure, kill and concurrent writes ------------------------------------- */

static const char test_lib[] =
    "#!lua name=trtest\n"
    "local function fail_one(keys, args, part)\n"
    "  if part.index == 1 then error('partition ' .. part.index .. ' refuses') end\n"
    "  return 1\n"
    "end\n"
    "local function spin(keys, args, part) local x = 0 while true do x = x + 1 end end\n"
    "local function count(keys, args, part)\n"
    "  local n, sum = 0, 0\n"
    "  for k, v in eddy.scan() do\n"
    "    if k:sub(1, 3) == 'r:{' then n = n + 1; sum = sum + #v end\n"
    "  end\n"
    "  return {n, sum}\n"
    "end\n"
    "local function mark(keys, args, partials) eddy.set('reduced', 'yes') return partials.n end\n"
    "redis.register_function{function_name='trtest_fail', callback=fail_one, flags={'no-writes'}}\n"
    "redis.register_function{function_name='trtest_spin', callback=spin, flags={'no-writes'}}\n"
    "redis.register_function{function_name='trtest_count', callback=count, flags={'no-writes'}}\n"
    "redis.register_function('trtest_mark', mark)\n";

static void load_test_lib(eddy_ctx *c)
{
    struct eddy_reply *r = CMD(c, "FUNCTION", "LOAD", "REPLACE", test_lib);
    if (r->type != EDDY_REPLY_STRING)
        FAILF("FUNCTION LOAD: %s", h_describe(r));
    eddy_reply_free(r);
}

static void t_map_partial_failure(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    load_test_lib(c);
    struct eddy_reply *r = CMD(c, "MAPREDUCE", "trtest_fail", "trtest_mark");
    if (r->type != EDDY_REPLY_ERROR || strstr(r->str, "map partition 2/2 failed") == NULL ||
        strstr(r->str, "partition 1 refuses") == NULL)
        FAILF("expected the failure of partition 2/2, got %s", h_describe(r));
    eddy_reply_free(r);
    EXPECT_NIL(c, "GET", "reduced"); /* the reduce did not run */
    EXPECT_INT(2, c, "MAPREDUCE", "trtest_count", "trtest_mark");
    EXPECT_BULK("yes", c, "GET", "reduced");
    eddy_free(c);
    h_server_free(s);
}

static void t_kill_during_map(void)
{
    struct h_server *s = h_server_start("--udf-time-limit", "60000", NULL);
    eddy_ctx *a = h_connect_port(s->port), *b = h_connect_port(s->port);
    load_test_lib(b);
    const char *argv[] = {"MAPREDUCE", "trtest_spin", "@sum"};
    if (eddy_append_argv(a, 3, argv, NULL) != EDDY_OK || eddy_flush(a) != EDDY_OK)
        FAILF("cannot send MAPREDUCE: %s", eddy_errstr(a));
    h_sleep_ms(300);
    EXPECT_STATUS("PONG", b, "PING"); /* served while the maps spin */
    EXPECT_OK(b, "SET", "other", "1");
    int64_t t0 = h_now_ms();
    struct eddy_reply *k = CMD(b, "FUNCTION", "KILL");
    if (k->type != EDDY_REPLY_STATUS) {
        /* As of this writing udf_kill (udf/registry.c) treats every call that is not
         * UDF_FCALL as a script: FUNCTION KILL skips map calls, SCRIPT KILL kills them. */
        struct eddy_reply *sk = CMD(b, "SCRIPT", "KILL");
        bool script_kill_works = sk->type == EDDY_REPLY_STATUS;
        eddy_reply_free(sk);
        FAILF("FUNCTION KILL while a map runs: %s%s", h_describe(k),
              script_kill_works ? " (SCRIPT KILL killed the map instead)" : "");
    }
    eddy_reply_free(k);
    struct eddy_reply *r = NULL;
    if (eddy_get_reply(a, &r) != EDDY_OK)
        FAILF("no MAPREDUCE reply: %s", eddy_errstr(a));
    if (r->type != EDDY_REPLY_ERROR)
        FAILF("a killed map must fail the MAPREDUCE, got %s", h_describe(r));
    eddy_reply_free(r);
    CHECK(h_now_ms() - t0 < 5000);
    /* Another partition may still spin until killed: kill again until none runs. */
    for (int i = 0; i < 20; i++) {
        struct eddy_reply *x = CMD(b, "FUNCTION", "KILL");
        bool none = x->type == EDDY_REPLY_ERROR;
        eddy_reply_free(x);
        if (none)
            break;
        h_sleep_ms(50);
    }
    EXPECT_STATUS("PONG", a, "PING");
    EXPECT_BULK("1", b, "GET", "other");
    EXPECT_INT(0, a, "EXISTS", "reduced");
    EXPECT_OK(a, "SET", "r:{x}", "abc");
    struct eddy_reply *cnt = CMD(a, "MAPREDUCE", "trtest_count", "@sum");
    CHECK(cnt->type == EDDY_REPLY_ARRAY && cnt->elements == 2 && num(cnt->element[0]) == 1);
    eddy_reply_free(cnt);
    eddy_free(a);
    eddy_free(b);
    EXPECT_ALIVE(s->port);
    h_server_free(s);
}

static void writer(int port, int id)
{
    h_helper();
    eddy_ctx *c = h_connect_port(port);
    char key[64], val[64];
    for (long i = 0;; i++) {
        snprintf(key, sizeof(key), "cw:%d:%ld", id, i % 5000);
        snprintf(val, sizeof(val), "value %ld", i);
        struct eddy_reply *r = h_cmd(H_AT, c, "SET", key, val, (char *)NULL);
        eddy_reply_free(r);
    }
}

static void t_concurrent_writes(void)
{
    struct h_server *s = h_server_start(NULL);
    eddy_ctx *c = h_connect_port(s->port);
    free(TRAIN(s->port, "load-synth", "--reviews", "4000", "--seed", "9"));
    free(TRAIN(s->port, "featurize", "--bits", "12"));
    free(TRAIN(s->port, "train", "--mode", "store", "--epochs", "1"));
    load_test_lib(c);
    struct eddy_reply *ref = CMD(c, "MAPREDUCE", "train_grad", "train_sum", "4096", "2");
    CHECK(ref->type == EDDY_REPLY_ARRAY && ref->elements == 7);
    struct eddy_reply *cref = CMD(c, "MAPREDUCE", "trtest_count", "@sum");
    CHECK(cref->type == EDDY_REPLY_ARRAY && num(cref->element[0]) == 4000);
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = fork();
        if (w[i] == 0)
            writer(s->port, i);
    }
    h_sleep_ms(200);
    for (int round = 0; round < 3; round++) {
        struct eddy_reply *r = CMD(c, "MAPREDUCE", "train_grad", "train_sum", "4096", "2");
        CHECK(r->type == EDDY_REPLY_ARRAY && r->elements == 7);
        for (int j = 0; j < 6; j++)
            CHECK(num(r->element[j]) == num(ref->element[j]));
        CHECK_EQ_INT(r->element[6]->elements, ref->element[6]->elements);
        for (size_t i = 0; i < ref->element[6]->elements; i++)
            if (num(r->element[6]->element[i]) != num(ref->element[6]->element[i]))
                FAILF("round %d: gradient[%zu] changed under concurrent writes", round, i);
        eddy_reply_free(r);
        struct eddy_reply *cnt = CMD(c, "MAPREDUCE", "trtest_count", "@sum");
        CHECK(cnt->type == EDDY_REPLY_ARRAY && num(cnt->element[0]) == 4000 &&
              num(cnt->element[1]) == num(cref->element[1]));
        eddy_reply_free(cnt);
    }
    long long written = count_keys(c, "cw:*");
    for (int i = 0; i < 2; i++) {
        kill(w[i], SIGKILL);
        waitpid(w[i], NULL, 0);
    }
    CHECK(written > 0); /* the writers did run during the maps */
    eddy_reply_free(ref);
    eddy_reply_free(cref);
    eddy_free(c);
    EXPECT_ALIVE(s->port);
    h_server_free(s);
}

void suite_train(void)
{
    h_run("train_loaders", t_loaders, H_OWN, 60);
    h_run("train_featurize", t_featurize, H_OWN, 60);
    h_run("train_cluster", t_cluster, H_OWN, 90);
    h_run("train_grad_vs_client", t_grad_vs_client, H_OWN, 60);
    h_run("train_store_vs_client", t_store_vs_client, H_OWN, 120);
    h_run("train_real_accuracy", t_real_accuracy, H_OWN, 120);
    h_run("train_synth_accuracy", t_synth_accuracy, H_OWN, 180);
    h_run("train_map_partial_failure", t_map_partial_failure, H_OWN, 30);
    h_run("train_kill_during_map", t_kill_during_map, H_OWN, 60);
    h_run("train_concurrent_writes", t_concurrent_writes, H_OWN, 120);
}
