/* report.c - eddy-bench's output: the human summary (stdout) and the JSON result file
 * (--json). Latencies are recorded in nanoseconds and shown in microseconds. */
#include "bench.h"

#include <errno.h>
#include <string.h>

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static const char *dist_of(const struct eb_opts *o)
{
    struct eb_mix m;
    eb_mix_of(o->workload, &m);
    return eb_dist_name(o->dist_set ? o->dist : m.dist);
}

static void lat_row(FILE *f, const char *name, const struct eb_hist *h)
{
    fprintf(f, "  %-9s %10llu %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", name,
            (unsigned long long)h->count, us(h->min), eb_hist_mean(h) / 1000.0,
            us(eb_hist_percentile(h, 50)), us(eb_hist_percentile(h, 90)),
            us(eb_hist_percentile(h, 99)), us(eb_hist_percentile(h, 99.9)), us(h->max));
}

static double per_sec(const struct eb_result *res)
{
    return res->seconds > 0 ? (double)res->ops / res->seconds : 0.0;
}

void eb_report_human(FILE *f, const struct eb_opts *o, const struct eb_result *res,
                     bool load_phase)
{
    if (load_phase) {
        fprintf(f, "load: %llu keys in %.2f s (%.0f ops/s), errors %llu\n",
                (unsigned long long)res->ops, res->seconds, per_sec(res),
                (unsigned long long)res->errors);
        return;
    }
    fprintf(f, "eddy-bench %s on %s:%d: %d connection%s, %d thread%s, pipeline %d, ",
            eb_workload_name(o->workload), o->host, o->port, o->connections,
            o->connections == 1 ? "" : "s", o->threads, o->threads == 1 ? "" : "s",
            o->pipeline);
    if (o->rate > 0)
        fprintf(f, "open loop at %.0f ops/s\n", o->rate);
    else
        fprintf(f, "closed loop\n");
    fprintf(f, "  keys %llu (%s", (unsigned long long)o->keys, dist_of(o));
    if (strcmp(dist_of(o), "uniform") != 0)
        fprintf(f, ", theta %.2f%s", o->theta, o->scramble ? ", scrambled" : "");
    if (o->value_min == o->value_max)
        fprintf(f, "), values %zu bytes\n", o->value_min);
    else
        fprintf(f, "), values %zu-%zu bytes\n", o->value_min, o->value_max);
    fprintf(f, "  %llu ops in %.2f s: %.1f ops/s; errors %llu, misses %llu, redirects %llu\n\n",
            (unsigned long long)res->ops, res->seconds, per_sec(res),
            (unsigned long long)res->errors, (unsigned long long)res->misses,
            (unsigned long long)res->redirects);
    fprintf(f, "  %-9s %10s %9s %9s %9s %9s %9s %9s %9s\n", "latency", "count", "min", "mean",
            "p50", "p90", "p99", "p99.9", "max");
    lat_row(f, "all (us)", &res->all);
    for (int k = 0; k < EB_OP_COUNT; k++)
        if (res->per_op[k].count)
            lat_row(f, eb_op_name((enum eb_opkind)k), &res->per_op[k]);
    if (res->nerr || res->err[EB_MAX_ERRKINDS].count) {
        fprintf(f, "\n  errors by kind:");
        for (int i = 0; i <= EB_MAX_ERRKINDS; i++)
            if (res->err[i].count)
                fprintf(f, " %s %llu", res->err[i].name, (unsigned long long)res->err[i].count);
        fputc('\n', f);
    }
    if (res->nsec > 1) {
        size_t step = (res->nsec + 29) / 30;
        fprintf(f, "\n  %6s %10s %9s %9s %9s %7s%s\n", "second", "ops/s", "p50 us", "p99 us",
                "max us", "errors", step > 1 ? "  (every few seconds; all in --json)" : "");
        for (size_t i = 0; i < res->nsec; i += step) {
            const struct eb_second *s = &res->sec[i];
            fprintf(f, "  %6zu %10llu %9.1f %9.1f %9.1f %7llu\n", i + 1,
                    (unsigned long long)s->ops, us(eb_hist_percentile(&s->hist, 50)),
                    us(eb_hist_percentile(&s->hist, 99)), us(s->hist.max),
                    (unsigned long long)s->errors);
        }
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_lat(FILE *f, const struct eb_hist *h)
{
    fprintf(f,
            "{\"min\": %.1f, \"mean\": %.1f, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
            "\"p99_9\": %.1f, \"max\": %.1f}",
            us(h->count ? h->min : 0), eb_hist_mean(h) / 1000.0, us(eb_hist_percentile(h, 50)),
            us(eb_hist_percentile(h, 90)), us(eb_hist_percentile(h, 99)),
            us(eb_hist_percentile(h, 99.9)), us(h->max));
}

static void json_body(FILE *f, const struct eb_opts *o, const struct eb_result *res,
                      const struct eb_result *load)
{
    fprintf(f, "{\n  \"tool\": \"eddy-bench\",\n  \"workload\": \"%s\",\n  \"host\": ",
            eb_workload_name(o->workload));
    json_str(f, o->host);
    fprintf(f,
            ",\n  \"port\": %d,\n  \"connections\": %d,\n  \"threads\": %d,\n"
            "  \"pipeline\": %d,\n  \"mode\": \"%s\",\n  \"rate\": %.0f,\n"
            "  \"keys\": %llu,\n  \"dist\": \"%s\",\n  \"theta\": %.4f,\n"
            "  \"value_min\": %zu,\n  \"value_max\": %zu,\n  \"hashtags\": %llu,\n",
            o->port, o->connections, o->threads, o->pipeline, o->rate > 0 ? "open" : "closed",
            o->rate, (unsigned long long)o->keys, dist_of(o), o->theta, o->value_min,
            o->value_max, (unsigned long long)o->hashtags);
    fprintf(f,
            "  \"ops\": %llu,\n  \"seconds\": %.3f,\n  \"ops_per_sec\": %.1f,\n"
            "  \"errors\": %llu,\n  \"misses\": %llu,\n  \"redirects\": %llu,\n"
            "  \"latency_us\": ",
            (unsigned long long)res->ops, res->seconds, per_sec(res),
            (unsigned long long)res->errors, (unsigned long long)res->misses,
            (unsigned long long)res->redirects);
    json_lat(f, &res->all);
    fprintf(f, ",\n  \"per_op\": {");
    const char *sep = "";
    for (int k = 0; k < EB_OP_COUNT; k++) {
        if (res->per_op[k].count == 0)
            continue;
        fprintf(f, "%s\n    \"%s\": {\"count\": %llu, \"latency_us\": ", sep,
                eb_op_name((enum eb_opkind)k), (unsigned long long)res->per_op[k].count);
        json_lat(f, &res->per_op[k]);
        fputc('}', f);
        sep = ",";
    }
    fprintf(f, "},\n  \"error_kinds\": {");
    sep = "";
    for (int i = 0; i <= EB_MAX_ERRKINDS; i++) {
        if (res->err[i].count == 0)
            continue;
        fputs(sep, f);
        json_str(f, res->err[i].name);
        fprintf(f, ": %llu", (unsigned long long)res->err[i].count);
        sep = ", ";
    }
    fputs("},\n", f);
    if (load)
        fprintf(f, "  \"load\": {\"ops\": %llu, \"seconds\": %.3f, \"ops_per_sec\": %.1f},\n",
                (unsigned long long)load->ops, load->seconds, per_sec(load));
    fprintf(f, "  \"timeseries\": [");
    for (size_t i = 0; i < res->nsec; i++) {
        const struct eb_second *s = &res->sec[i];
        fprintf(f,
                "%s\n    {\"t\": %zu, \"ops\": %llu, \"errors\": %llu, \"p50_us\": %.1f, "
                "\"p99_us\": %.1f, \"max_us\": %.1f}",
                i ? "," : "", i + 1, (unsigned long long)s->ops, (unsigned long long)s->errors,
                us(eb_hist_percentile(&s->hist, 50)), us(eb_hist_percentile(&s->hist, 99)),
                us(s->hist.max));
    }
    fprintf(f, "\n  ]\n}\n");
}

int eb_report_json(const char *path, const struct eb_opts *o, const struct eb_result *res,
                   const struct eb_result *load, char *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, EB_ERRLEN, "%.200s: %s", path, strerror(errno));
        return -1;
    }
    json_body(f, o, res, load);
    if (fclose(f) != 0) {
        snprintf(err, EB_ERRLEN, "%.200s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
