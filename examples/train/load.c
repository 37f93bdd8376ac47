/* load.c - bulk loading: a pipelined writer with a progress bar (two batches in flight,
 * every reply checked), the loader of the real UCI review sentences, and `clear`,
 * which deletes every key of the example. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train.h"

#define BATCH_CMDS 1000
#define BATCH_BYTES (1 << 20)

struct tr_writer {
    struct tr_conn *c;
    unsigned long long total, bytes, acked;
    int queued;      /* appended, not flushed */
    size_t qbytes;
    int inflight;    /* flushed, replies not read */
    bool failed;
    bool quiet;
    double t0;
};

struct tr_writer *tr_writer_new(struct tr_conn *c, unsigned long long total, bool quiet)
{
    struct tr_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->c = c;
    w->total = total;
    w->quiet = quiet;
    w->t0 = tr_now();
    return w;
}

/* Reads n replies, each of which must be +OK. */
static int read_acks(struct tr_writer *w, int n)
{
    for (int i = 0; i < n; i++) {
        struct eddy_reply *r = tr_reply(w->c);
        if (r == NULL) {
            w->failed = true;
            return -1;
        }
        if (r->type == EDDY_REPLY_STATUS) {
            w->acked++;
        } else if (!w->failed) {
            tr_report(w->c, "SET", r);
            w->failed = true;
        }
        eddy_reply_free(r);
    }
    return w->failed ? -1 : 0;
}

static int send_batch(struct tr_writer *w)
{
    if (tr_flush(w->c) != 0) {
        w->failed = true;
        return -1;
    }
    int rc = read_acks(w, w->inflight);
    w->inflight = w->queued;
    w->queued = 0;
    w->qbytes = 0;
    tr_progress("loading", w->bytes, w->total, w->t0, w->quiet, false);
    return rc;
}

int tr_writer_set(struct tr_writer *w, const char *key, size_t klen, const char *val,
                  size_t vlen)
{
    if (w->failed)
        return -1;
    const char *argv[] = {"SET", key, val};
    size_t lens[] = {3, klen, vlen};
    if (tr_append(w->c, 3, argv, lens) != 0) {
        w->failed = true;
        return -1;
    }
    w->queued++;
    w->qbytes += klen + vlen;
    w->bytes += klen + vlen;
    if (w->queued >= BATCH_CMDS || w->qbytes >= BATCH_BYTES)
        return send_batch(w);
    return 0;
}

int tr_writer_finish(struct tr_writer *w, unsigned long long *written)
{
    int rc = -1;
    if (!w->failed && send_batch(w) == 0 && read_acks(w, w->inflight) == 0)
        rc = 0;
    if (rc == 0)
        tr_progress("loading", w->total ? w->total : w->bytes, w->total ? w->total : 0, w->t0,
                    w->quiet, true);
    if (written != NULL)
        *written = w->acked;
    free(w);
    return rc;
}

/* The tag of a UCI file: its name up to the first '_' ("amazon", "imdb", "yelp"). */
static void file_tag(const char *file, char *tag, size_t cap)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strcspn(base, "_.");
    if (n >= cap)
        n = cap - 1;
    memcpy(tag, base, n);
    tag[n] = '\0';
}

/* Loads one file of "sentence<TAB>label" lines as r:{<tag>-<line>} = "label<TAB>sentence".
 * Returns the number of reviews, or -1. */
static long long load_file(struct tr_writer *w, const char *path, long long *bad)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "eddy-train: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char tag[64], key[128];
    file_tag(path, tag, sizeof(tag));
    char *line = NULL, *val = NULL;
    size_t cap = 0, vcap = 0;
    ssize_t n;
    long long lineno = 0, count = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *tab = strrchr(line, '\t');
        if (n == 0)
            continue;
        if (tab == NULL || (strcmp(tab + 1, "0") != 0 && strcmp(tab + 1, "1") != 0)) {
            (*bad)++;
            continue;
        }
        size_t slen = (size_t)(tab - line);
        if (vcap < slen + 3) {
            vcap = slen + 64;
            char *nv = realloc(val, vcap);
            if (nv == NULL) {
                count = -1;
                break;
            }
            val = nv;
        }
        val[0] = tab[1];
        val[1] = '\t';
        memcpy(val + 2, line, slen);
        int kl = snprintf(key, sizeof(key), "r:{%s-%lld}", tag, lineno);
        if (tr_writer_set(w, key, (size_t)kl, val, slen + 2) != 0) {
            count = -1;
            break;
        }
        count++;
    }
    free(line);
    free(val);
    fclose(f);
    return count;
}

int tr_load_uci(const struct tr_opts *o)
{
    const char *deflt[] = {"amazon_cells_labelled.txt"};
    const char **files = o->nfiles > 0 ? (const char **)o->files : deflt;
    int nfiles = o->nfiles > 0 ? o->nfiles : 1;
    char paths[8][1024];
    unsigned long long total = 0;
    for (int i = 0; i < nfiles; i++) {
        struct stat st;
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", o->dir, files[i]);
        if (stat(paths[i], &st) != 0) {
            fprintf(stderr, "eddy-train: %s: %s (the UCI sentences: see --dir)\n", paths[i],
                    strerror(errno));
            return 1;
        }
        total += (unsigned long long)st.st_size;
    }
    if (o->clear && tr_clear(o) != 0)
        return 1;
    struct tr_conn c;
    if (tr_conn_open(&c, o) != 0)
        return 1;
    printf("Loading the UCI Sentiment Labelled Sentences (Kotzias et al., \"From Group to "
           "Individual Labels\nusing Deep Features\", KDD 2015; UCI Machine Learning "
           "Repository, CC BY 4.0)\n");
    double t0 = tr_now();
    struct tr_writer *w = tr_writer_new(&c, total, o->quiet);
    long long reviews = 0, bad = 0;
    int rc = w ? 0 : -1;
    for (int i = 0; i < nfiles && rc == 0; i++) {
        long long n = load_file(w, paths[i], &bad);
        if (n < 0)
            rc = -1;
        else
            reviews += n;
    }
    unsigned long long written = 0;
    if (w != NULL && tr_writer_finish(w, &written) != 0)
        rc = -1;
    double el = tr_now() - t0;
    if (rc == 0) {
        struct tr_meta m = {.classes = 2, .reviews = reviews, .true_test_acc = -1};
        snprintf(m.source, sizeof(m.source), "uci:%s%s", files[0], nfiles > 1 ? "+" : "");
        rc = tr_meta_set(&c, &m);
    }
    if (rc == 0) {
        char a[32];
        printf("loaded %lld reviews (r:{<file>-<line>}) from %d file(s) in %.2f s; %lld "
               "malformed lines skipped; %s sent\n",
               reviews, nfiles, el, bad, tr_bytes(c.sent, a, sizeof(a)));
    }
    tr_conn_close(&c);
    return rc == 0 ? 0 : 1;
}

/* DEL of keys[0..n): one command against a single server; against a cluster one DEL
 * per key (pipelined), since the keys lie in different slots. Returns the count or -1. */
static long long del_keys(struct tr_conn *c, const struct eddy_reply *keys)
{
    size_t n = keys->elements;
    bool one = tr_nodes(c) == 1;
    const char **argv = malloc((n + 1) * sizeof(char *));
    size_t *lens = malloc((n + 1) * sizeof(size_t));
    long long deleted = 0;
    int rc = argv != NULL && lens != NULL ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        argv[i + 1] = keys->element[i]->str;
        lens[i + 1] = keys->element[i]->len;
    }
    if (rc == 0) {
        argv[0] = "DEL";
        lens[0] = 3;
        if (one) {
            rc = tr_append(c, (int)n + 1, argv, lens);
        } else {
            for (size_t i = 0; rc == 0 && i < n; i++) {
                const char *a[] = {"DEL", argv[i + 1]};
                const size_t l[] = {3, lens[i + 1]};
                rc = tr_append(c, 2, a, l);
            }
        }
    }
    for (size_t i = 0; rc == 0 && i < (one ? 1 : n); i++) {
        struct eddy_reply *d = tr_reply(c);
        if (d == NULL || d->type != EDDY_REPLY_INTEGER) {
            tr_report(c, "DEL", d);
            rc = -1;
        } else {
            deleted += d->integer;
        }
        eddy_reply_free(d);
    }
    free(argv);
    free(lens);
    return rc == 0 ? deleted : -1;
}

/* Deletes every key matching pattern with SCAN + DEL on every node; returns the count
 * or -1. */
static long long clear_pattern(struct tr_conn *c, const char *pattern)
{
    long long n = 0;
    for (int node = 0; node < tr_nodes(c); node++) {
        char cursor[32] = "0";
        tr_use_node(c, node);
        do {
            const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "10000"};
            struct eddy_reply *r = tr_cmd(c, 6, argv, NULL);
            if (r == NULL || r->type != EDDY_REPLY_ARRAY || r->elements != 2) {
                tr_report(c, "SCAN", r);
                eddy_reply_free(r);
                return -1;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            long long d = r->element[1]->elements > 0 ? del_keys(c, r->element[1]) : 0;
            eddy_reply_free(r);
            if (d < 0)
                return -1;
            n += d;
        } while (strcmp(cursor, "0") != 0);
    }
    tr_use_node(c, 0);
    return n;
}

int tr_clear(const struct tr_opts *o)
{
    struct tr_conn c;
    if (tr_conn_open(&c, o) != 0)
        return 1;
    long long r = clear_pattern(&c, "r:{*}");
    long long f = r < 0 ? -1 : clear_pattern(&c, "fb:*");
    long long t = f < 0 ? -1 : clear_pattern(&c, "train:*");
    long long u = t < 0 ? -1 : clear_pattern(&c, "_train:*");
    t = u < 0 ? -1 : t + u;
    if (t >= 0)
        printf("cleared %lld reviews, %lld feature blocks, %lld model keys\n", r, f, t);
    tr_conn_close(&c);
    return t < 0 ? 1 : 0;
}
