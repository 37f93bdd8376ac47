/* main.c - eddy-train's command line: global options, the subcommands and their
 * options, then the subcommand (load.c, synth.c, run.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: eddy-train [-h host] [-p port] [-a password] [--lib train.lua] [-q] COMMAND [options]\n"
        "\n"
        "The model-training example of eddy (examples/train/README.md): reviews are stored in\n"
        "eddy, featurized next to the data, and a logistic (2 classes) or softmax (5 classes)\n"
        "regression is trained either in the store (MAPREDUCE: ship code to data) or in this\n"
        "client (SCAN + MGET of every feature block each epoch: ship data to code).\n"
        "\n"
        "commands:\n"
        "  load-uci [--dir DIR] [--file NAME]...  the UCI review sentences (sentence TAB label;\n"
        "        default ../shared/data/uci-sentiment, amazon_cells_labelled.txt)\n"
        "  load-synth [--bytes SIZE | --reviews N] [--seed S] [--classes 2|5] [--vocab V]\n"
        "        synthetic reviews from a known true model (default 20000 reviews, seed 1,\n"
        "        2 classes, 600 words); SIZE like 1G, 300M; prints the true model's accuracy\n"
        "  featurize [--bits B] [--block R]  hashing-trick features of every review (D = 2^B;\n"
        "        default: 16 per review, 2^12..2^18), in blocks of at most R reviews of one\n"
        "        slot (default 1000)\n"
        "  train [--mode store|client|both] [--epochs N] [--lr X] [--momentum M] [--l2 L]\n"
        "        [--classes 2|5] [--batch K] [--plot DIR] [--csv FILE]\n"
        "        defaults: both, 30 epochs, lr 1, momentum 0.9, l2 0, batch 16 blocks per\n"
        "        SCAN + MGET; --plot writes DIR/time.svg and DIR/accuracy.svg\n"
        "  clear                    delete every key of the example (r:{*} fb:* train:* _train:*)\n"
        "  (load-uci and load-synth take --clear to run clear first)\n"
        "\n"
        "global options: -h host (127.0.0.1), -p port (7711), -a password, --lib path of\n"
        "train.lua (default: next to the binary in ../examples/train, then ./examples/train),\n"
        "-q no progress bars, --help.\n");
}

static int bad(const char *opt, const char *why)
{
    fprintf(stderr, "eddy-train: %s: %s (see --help)\n", opt, why);
    return -1;
}

/* "1G", "300M", "64k", "1000": bytes (powers of 1024). */
static int parse_size(const char *s, unsigned long long *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    double m = 1;
    switch (tolower((unsigned char)*end)) {
    case 'k': m = 1024.0; end++; break;
    case 'm': m = 1024.0 * 1024; end++; break;
    case 'g': m = 1024.0 * 1024 * 1024; end++; break;
    case 't': m = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (tolower((unsigned char)*end) == 'b')
        end++;
    if (*end != '\0')
        return -1;
    *out = (unsigned long long)(v * m);
    return 0;
}

static int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof(why), "expected an integer in %lld..%lld, got \"%s\"", lo, hi, s);
        return bad(opt, why);
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v != v)
        return bad(opt, "expected a number");
    *out = v;
    return 0;
}

/* Parses one option at argv[*i] (and its value); returns 0, or -1 after printing why. */
static int parse_opt(struct tr_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    static const char *const with_value[] = {
        "-h", "-p", "-a", "--lib", "--dir", "--file", "--bytes", "--reviews", "--seed",
        "--classes", "--vocab", "--bits", "--mode", "--epochs", "--lr", "--l2", "--momentum",
        "--plot", "--csv", "--batch", "--block", NULL};
    const char *v = NULL;
    for (int k = 0; with_value[k]; k++)
        if (strcmp(a, with_value[k]) == 0) {
            if (*i + 1 >= argc)
                return bad(a, "needs a value");
            v = argv[++*i];
            break;
        }
    long long n;
    if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
        o->quiet = true;
    else if (strcmp(a, "--clear") == 0)
        o->clear = true;
    else if (v == NULL)
        return bad(a, "unknown option");
    else if (strcmp(a, "-h") == 0)
        o->host = v;
    else if (strcmp(a, "-p") == 0) {
        if (parse_int(a, v, 1, 65535, &n) != 0)
            return -1;
        o->port = (int)n;
    } else if (strcmp(a, "-a") == 0)
        o->password = v;
    else if (strcmp(a, "--lib") == 0)
        o->lib = v;
    else if (strcmp(a, "--dir") == 0)
        o->dir = v;
    else if (strcmp(a, "--file") == 0) {
        if (o->nfiles >= 8)
            return bad(a, "at most 8 files");
        o->files[o->nfiles++] = v;
    } else if (strcmp(a, "--bytes") == 0) {
        if (parse_size(v, &o->bytes) != 0 || o->bytes == 0)
            return bad(a, "expected a size such as 1G, 300M or 500000");
    } else if (strcmp(a, "--reviews") == 0) {
        if (parse_int(a, v, 1, 1LL << 40, &n) != 0)
            return -1;
        o->reviews = (unsigned long long)n;
    } else if (strcmp(a, "--seed") == 0) {
        if (parse_int(a, v, 0, 1LL << 62, &n) != 0)
            return -1;
        o->seed = (unsigned long long)n;
    } else if (strcmp(a, "--classes") == 0) {
        if (strcmp(v, "2") != 0 && strcmp(v, "5") != 0)
            return bad(a, "must be 2 or 5");
        o->classes = atoi(v);
    } else if (strcmp(a, "--vocab") == 0) {
        if (parse_int(a, v, 100, 200000, &n) != 0)
            return -1;
        o->vocab = (int)n;
    } else if (strcmp(a, "--bits") == 0) {
        if (parse_int(a, v, 4, 24, &n) != 0)
            return -1;
        o->bits = (int)n;
    } else if (strcmp(a, "--mode") == 0) {
        if (strcmp(v, "store") == 0)
            o->mode = TR_STORE;
        else if (strcmp(v, "client") == 0)
            o->mode = TR_CLIENT;
        else if (strcmp(v, "both") == 0)
            o->mode = TR_BOTH;
        else
            return bad(a, "must be store, client or both");
    } else if (strcmp(a, "--epochs") == 0) {
        if (parse_int(a, v, 1, 10000, &n) != 0)
            return -1;
        o->epochs = (int)n;
    } else if (strcmp(a, "--lr") == 0) {
        if (parse_double(a, v, &o->lr) != 0)
            return -1;
        if (o->lr <= 0)
            return bad(a, "must be positive");
    } else if (strcmp(a, "--l2") == 0) {
        if (parse_double(a, v, &o->l2) != 0)
            return -1;
    } else if (strcmp(a, "--momentum") == 0) {
        if (parse_double(a, v, &o->momentum) != 0)
            return -1;
        if (o->momentum < 0 || o->momentum >= 1)
            return bad(a, "must be in [0, 1)");
    } else if (strcmp(a, "--plot") == 0)
        o->plot_dir = v;
    else if (strcmp(a, "--csv") == 0)
        o->csv = v;
    else if (strcmp(a, "--batch") == 0) {
        if (parse_int(a, v, 1, 1000000, &n) != 0)
            return -1;
        o->batch = (int)n;
    } else if (strcmp(a, "--block") == 0) {
        if (parse_int(a, v, 1, 100000, &n) != 0)
            return -1;
        o->block = (int)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct tr_opts o = {
        .host = "127.0.0.1", .port = 7711, .dir = "../shared/data/uci-sentiment", .seed = 1,
        .vocab = 600, .mode = TR_BOTH, .epochs = 30, .lr = 1, .momentum = 0.9,
        .batch = 16, .block = 1000,
    };
    const char *cmd = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "help") == 0) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-') {
            if (parse_opt(&o, argc, argv, &i) != 0)
                return 2;
        } else if (cmd == NULL) {
            cmd = argv[i];
        } else {
            fprintf(stderr, "eddy-train: unexpected argument \"%s\" (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (cmd == NULL) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "load-uci") == 0)
        return tr_load_uci(&o);
    if (strcmp(cmd, "load-synth") == 0)
        return tr_load_synth(&o);
    if (strcmp(cmd, "featurize") == 0)
        return tr_featurize(&o);
    if (strcmp(cmd, "train") == 0)
        return tr_train(&o);
    if (strcmp(cmd, "clear") == 0)
        return tr_clear(&o);
    fprintf(stderr, "eddy-train: unknown command \"%s\" (see --help)\n", cmd);
    return 2;
}
