/* eddy_bench.c - main() of eddy-bench: parses the command line, loads function
 * libraries, runs the load phase and the workload (run.c), and prints the summary
 * and the JSON result (report.c). Usage: eddy-bench --help. */
#include "bench.h"

#include "../client/eddy.h"
#include "../common/common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, EB_ERRLEN, "%.200s: %s", path, strerror(errno));
        return NULL;
    }
    struct cm_buf b;
    cm_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (cm_buf_append(&b, chunk, n) != 0) {
            snprintf(err, EB_ERRLEN, "out of memory");
            cm_buf_deinit(&b);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    *len = b.len;
    if (cm_buf_appendc(&b, '\0') != 0) {
        cm_buf_deinit(&b);
        snprintf(err, EB_ERRLEN, "out of memory");
        return NULL;
    }
    return b.p;
}

static int load_functions(const struct eb_opts *o, char *err)
{
    if (o->function_file[0]) {
        size_t len;
        char *code = read_file(o->function_file, &len, err);
        if (code == NULL)
            return -1;
        int rc = eb_function_load(o, code, len, err);
        cm_free(code);
        if (rc != 0)
            return -1;
    }
    if (o->workload == EB_WL_UDF)
        return eb_function_load(o, eb_udf_library, strlen(eb_udf_library), err);
    return 0;
}

static bool wants_version(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    struct eb_opts o;
    char err[EB_ERRLEN] = "";
    int rc = eb_args_parse(&o, argc, argv, err);
    if (rc < 0) {
        fprintf(stderr, "eddy-bench: %s\n", err);
        return 2;
    }
    if (rc > 0) {
        if (wants_version(argc, argv))
            printf("eddy-bench %s (libeddy %s)\n", EDDY_VERSION, eddy_version());
        else
            eb_args_usage(stdout);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (load_functions(&o, err) != 0) {
        fprintf(stderr, "eddy-bench: %s\n", err);
        return 1;
    }
    struct eb_result load, res;
    bool have_load = false;
    int status = 0;
    if (eb_result_init(&load) != 0 || eb_result_init(&res) != 0) {
        fprintf(stderr, "eddy-bench: out of memory\n");
        return 1;
    }
    if (o.load || o.workload == EB_WL_LOAD) {
        have_load = true;
        if (eb_run(&o, true, &load, err) != 0) {
            fprintf(stderr, "eddy-bench: load: %s\n", err);
            status = 1;
            goto out;
        }
        if (!o.quiet)
            eb_report_human(stdout, &o, &load, true);
    }
    if (o.workload != EB_WL_LOAD) {
        if (eb_run(&o, false, &res, err) != 0) {
            fprintf(stderr, "eddy-bench: %s\n", err);
            status = 1;
        }
        if (!o.quiet)
            eb_report_human(stdout, &o, &res, false);
    } else if (eb_result_merge(&res, &load) != 0) {
        status = 1;
    }
    if (o.json[0] && eb_report_json(o.json, &o, &res, have_load ? &load : NULL, err) != 0) {
        fprintf(stderr, "eddy-bench: %s\n", err);
        status = 1;
    }
out:
    eb_result_deinit(&load);
    eb_result_deinit(&res);
    return status;
}
