/* keys.c - eddy-bench's random numbers and key choice: xoshiro256**, the Zipfian
 * generator of Gray et al. (YCSB's), uniform, latest and sequential keys, and key
 * names. See bench.h. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void eb_rng_seed(struct eb_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t eb_rng_next(struct eb_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double eb_rng_double(struct eb_rng *r)
{
    return (double)(eb_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Lemire's multiply-shift with rejection: unbiased. */
uint64_t eb_rng_below(struct eb_rng *r, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)eb_rng_next(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            m = (unsigned __int128)eb_rng_next(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ---- Zipf ------------------------------------------------------------------------------ */

double eb_zeta(uint64_t n, double theta)
{
    double sum = 0;
    for (uint64_t i = 1; i <= n; i++)
        sum += pow((double)i, -theta);
    return sum;
}

static void zipf_derive(struct eb_zipf *z)
{
    z->eta = (1 - pow(2.0 / (double)z->n, 1 - z->theta)) / (1 - z->zeta2 / z->zetan);
}

int eb_zipf_init(struct eb_zipf *z, uint64_t n, double theta)
{
    if (n < 1 || !(theta > 0 && theta < 1))
        return -1;
    z->n = n;
    z->theta = theta;
    z->alpha = 1 / (1 - theta);
    z->zeta2 = eb_zeta(2, theta);
    z->zetan = eb_zeta(n, theta);
    zipf_derive(z);
    return 0;
}

void eb_zipf_grow(struct eb_zipf *z, uint64_t n)
{
    if (n <= z->n)
        return;
    for (uint64_t i = z->n + 1; i <= n; i++)
        z->zetan += pow((double)i, -z->theta);
    z->n = n;
    zipf_derive(z);
}

uint64_t eb_zipf_next(const struct eb_zipf *z, struct eb_rng *r)
{
    double u = eb_rng_double(r);
    double uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (z->n >= 2 && uz < 1.0 + pow(0.5, z->theta))
        return 1;
    uint64_t k = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1, z->alpha));
    return k < z->n ? k : z->n - 1;
}

/* ---- Key generators ------------------------------------------------------------------------ */

const char *eb_dist_name(enum eb_dist d)
{
    switch (d) {
    case EB_DIST_UNIFORM: return "uniform";
    case EB_DIST_ZIPF: return "zipf";
    case EB_DIST_LATEST: return "latest";
    case EB_DIST_SEQ: return "sequential";
    }
    return "?";
}

uint64_t eb_fnv64(uint64_t v)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        h *= 0x100000001b3ULL;
        v >>= 8;
    }
    return h;
}

int eb_keygen_init(struct eb_keygen *g, enum eb_dist dist, uint64_t n, double theta,
                   bool scramble)
{
    memset(g, 0, sizeof(*g));
    g->dist = dist;
    g->n = n ? n : 1;
    g->scramble = scramble;
    if (dist == EB_DIST_ZIPF || dist == EB_DIST_LATEST)
        return eb_zipf_init(&g->z, g->n, theta);
    return 0;
}

uint64_t eb_keygen_next(struct eb_keygen *g, struct eb_rng *r, uint64_t count)
{
    if (count == 0)
        count = 1;
    switch (g->dist) {
    case EB_DIST_ZIPF: {
        uint64_t rank = eb_zipf_next(&g->z, r);
        return g->scramble ? eb_fnv64(rank) % g->n : rank;
    }
    case EB_DIST_LATEST:
        eb_zipf_grow(&g->z, count);
        return count - 1 - eb_zipf_next(&g->z, r) % count;
    case EB_DIST_UNIFORM:
    case EB_DIST_SEQ:
    default:
        return eb_rng_below(r, count);
    }
}

/* Writes v in decimal, at least width digits (zero-padded); returns the length. */
static size_t put_digits(char *out, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return (size_t)n;
}

/* Formats by hand: this runs for every key of every op and snprintf showed up first
 * in the client's profile. */
size_t eb_key_name(char *buf, size_t cap, const char *prefix, uint64_t k, uint64_t tags)
{
    char tmp[160];
    size_t pl = strnlen(prefix, 64), n = 0;
    memcpy(tmp, prefix, pl);
    n = pl;
    if (tags > 0) {
        tmp[n++] = '{';
        n += put_digits(tmp + n, k % tags, 1);
        tmp[n++] = '}';
        tmp[n++] = ':';
    }
    n += put_digits(tmp + n, k, 12);
    if (cap == 0)
        return 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}
