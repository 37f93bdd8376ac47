/* fuzz_lua.c - libFuzzer target for the Lua sandbox: the input is a library's source,
 * loaded with FUNCTION LOAD REPLACE (a "#!lua name=fz" line is put in front unless the
 * input starts with "#!"), then each function it registered (up to 4) is called with
 * FCALL (one key, two arguments), under RESP2 and RESP3, and the first one also as
 * the map of MAPREDUCE with @sum and @list, all under small budgets: 4 ms per
 * call (two 2 ms slices, so preemption is still exercised; at 200 ms, then 20 ms,
 * the inputs that run to the limit took most of the time), 16 MB per Lua state. Through
 * net/testhook.c, so redis.call reaches the real command table over a real engine in a
 * temporary directory. Checks: every reply is valid RESP and comes in time (a hang or
 * a crash is a finding), and the server still answers PING afterwards. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "testhook.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct th *hook;
static unsigned long runs;

static struct resp_value *run(int argc, const char **argv, const size_t *lens)
{
    char why[256];
    struct resp_value *r = NULL;
    size_t l[16];
    for (int i = 0; i < argc; i++)
        l[i] = lens ? lens[i] : strlen(argv[i]);
    int rc = th_exec(hook, argc, argv, l, 10000, &r, why);
    if (rc == TH_BADREPLY && !fz_known_bad_reply(why)) {
        fprintf(stderr, "server sent invalid RESP for %s %s: %s\n", argv[0],
                argc > 1 ? argv[1] : "", why);
        abort();
    }
    if (rc == TH_TIMEOUT) {
        fprintf(stderr, "no reply for %s %s (%s)\n", argv[0], argc > 1 ? argv[1] : "", why);
        abort();
    }
    return r; /* NULL when the connection closed */
}

static void run_free(int argc, const char **argv)
{
    resp_value_free(run(argc, argv, NULL));
}

/* Finds the names of the functions in a FUNCTION LIST reply (RESP2: flat maps). */
static int function_names(const struct resp_value *r, char names[4][64])
{
    int n = 0;
    if (r == NULL || r->type != RESP_T_ARRAY || r->elements < 1)
        return 0;
    const struct resp_value *lib = r->element[0];
    for (size_t i = 0; i + 1 < lib->elements; i += 2) {
        const struct resp_value *k = lib->element[i];
        if (k->str == NULL || strcmp(k->str, "functions") != 0)
            continue;
        const struct resp_value *fs = lib->element[i + 1];
        for (size_t f = 0; f < fs->elements && n < 4; f++) {
            const struct resp_value *fn = fs->element[f];
            for (size_t j = 0; j + 1 < fn->elements; j += 2)
                if (fn->element[j]->str && strcmp(fn->element[j]->str, "name") == 0 &&
                    fn->element[j + 1]->str && fn->element[j + 1]->len < 64)
                    snprintf(names[n++], 64, "%s", fn->element[j + 1]->str);
        }
    }
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_server_flags(argc, argv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (hook == NULL) {
        fz_quiet();
        const char *args[] = {"--udf-time-limit", "4",  "--udf-memory-limit", "16mb",
                              "--loglevel",       "warning", "--appendfsync",   "no",
                              "--memtable-size",  "8mb",  "--block-cache-size", "8mb",
                              "--value-cache-size", "1mb", NULL};
        struct cm_err err = {0};
        hook = th_open(fz_tmpdir(), args, &err);
        if (hook == NULL) {
            fprintf(stderr, "th_open: %s\n", err.msg);
            abort();
        }
    }
    if (size > 32 * 1024)
        return 0;
    if (fz_ignore_known() && memmem(data, size, "verbatim", 8) != NULL)
        return 0; /* a bad format breaks the reply's framing (reported) */
    th_reset_config(hook);
    fz_upkeep(hook, &runs);
    if (runs % 64 == 0)
        run_free(1, (const char *[]){"FLUSHALL"});
    run_free(2, (const char *[]){"HELLO", "2"});
    run_free(2, (const char *[]){"FUNCTION", "FLUSH"});

    static const char prefix[] = "#!lua name=fz\n";
    bool raw = size >= 2 && data[0] == '#' && data[1] == '!';
    size_t n = raw ? size : sizeof(prefix) - 1 + size;
    char *code = malloc(n + 1);
    if (raw) {
        memcpy(code, data, size);
    } else {
        memcpy(code, prefix, sizeof(prefix) - 1);
        memcpy(code + sizeof(prefix) - 1, data, size);
    }
    const char *load[] = {"FUNCTION", "LOAD", "REPLACE", code};
    size_t loadl[] = {8, 4, 7, n};
    struct resp_value *r = run(4, load, loadl);
    free(code);
    if (r != NULL && r->type == RESP_T_STRING) {
        char lib[128];
        snprintf(lib, sizeof(lib), "%s", r->str);
        resp_value_free(r);
        r = run(4, (const char *[]){"FUNCTION", "LIST", "LIBRARYNAME", lib}, NULL);
        char names[4][64];
        int nf = function_names(r, names);
        resp_value_free(r);
        for (int i = 0; i < nf; i++) {
            run_free(6, (const char *[]){"FCALL", names[i], "1", "k1", "a1", "7"});
            run_free(2, (const char *[]){"HELLO", "3"});
            run_free(5, (const char *[]){"FCALL_RO", names[i], "1", "k1", "-1.5"});
            run_free(2, (const char *[]){"HELLO", "2"});
        }
        if (nf > 0 && !fz_ignore_known()) {
            run_free(4, (const char *[]){"MAPREDUCE", names[0], "@sum", "a"});
            run_free(3, (const char *[]){"MAPREDUCE", names[0], "@list"});
        }
    } else {
        resp_value_free(r);
    }
    /* Still serving. */
    th_reset_config(hook);
    r = run(1, (const char *[]){"PING"}, NULL);
    if (r == NULL)
        r = run(1, (const char *[]){"PING"}, NULL);
    if (r == NULL || r->type != RESP_T_STATUS || strcmp(r->str, "PONG") != 0) {
        fprintf(stderr, "PING after the input failed\n");
        abort();
    }
    resp_value_free(r);
    return 0;
}
