/* hist.c - eddy-bench's latency histogram: log-linear buckets (HdrHistogram's layout
 * without its serialisation), exact min/max/count/sum, percentiles and merging.
 * Used by run.c per thread and per second; see bench.h for the error bound. */
#include "bench.h"

#include "../common/common.h"

#include <string.h>

/* Values below 2S (S = 2^bits) get one bucket each; then every power of two
 * [2^m, 2^(m+1)) with m > bits is cut into S buckets of width 2^(m-bits). */
size_t eb_hist_index(int bits, uint64_t v)
{
    uint64_t s = 1ULL << bits;
    if (v < 2 * s)
        return (size_t)v;
    int m = 63 - __builtin_clzll(v);
    int e = m - bits;
    return (size_t)(2 * s + (uint64_t)(e - 1) * s + ((v >> e) - s));
}

uint64_t eb_hist_bucket_low(int bits, size_t i)
{
    uint64_t s = 1ULL << bits;
    if (i < 2 * s)
        return i;
    uint64_t j = i - 2 * s;
    int e = (int)(j / s) + 1;
    return (j % s + s) << e;
}

uint64_t eb_hist_bucket_high(int bits, size_t i)
{
    uint64_t s = 1ULL << bits;
    if (i < 2 * s)
        return i;
    int e = (int)((i - 2 * s) / s) + 1;
    return eb_hist_bucket_low(bits, i) + ((1ULL << e) - 1);
}

int eb_hist_init(struct eb_hist *h, int bits)
{
    memset(h, 0, sizeof(*h));
    if (bits < 1 || bits > 16)
        return -1;
    h->bits = bits;
    h->nbuckets = eb_hist_index(bits, UINT64_MAX) + 1;
    h->counts = cm_calloc(h->nbuckets, sizeof(*h->counts));
    if (h->counts == NULL)
        return -1;
    h->min = UINT64_MAX;
    return 0;
}

void eb_hist_deinit(struct eb_hist *h)
{
    cm_free(h->counts);
    h->counts = NULL;
    h->nbuckets = 0;
}

void eb_hist_reset(struct eb_hist *h)
{
    if (h->counts)
        memset(h->counts, 0, h->nbuckets * sizeof(*h->counts));
    h->count = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sum = 0;
}

void eb_hist_add_n(struct eb_hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    h->counts[eb_hist_index(h->bits, v)] += n;
    h->count += n;
    h->sum += (double)v * (double)n;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

int eb_hist_merge(struct eb_hist *dst, const struct eb_hist *src)
{
    if (dst->bits != src->bits)
        return -1;
    if (src->count == 0)
        return 0;
    for (size_t i = 0; i < src->nbuckets; i++)
        dst->counts[i] += src->counts[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    return 0;
}

uint64_t eb_hist_percentile(const struct eb_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p <= 0)
        return h->min;
    if (p >= 100)
        return h->max;
    /* The rank of the wanted value, 1-based: ceil(p% of count), at least 1. */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < h->nbuckets; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo = eb_hist_bucket_low(h->bits, i);
            uint64_t hi = eb_hist_bucket_high(h->bits, i);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double eb_hist_mean(const struct eb_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
