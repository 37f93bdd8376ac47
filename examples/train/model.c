/* model.c - the features' hashing and split rule, the feature record format and the
 * gradient of the client ("ship data to code") mode, with the arithmetic of train.lua
 * operation for operation (eddy.vec's sdot/saxpy/scale/axpy sum in index order with one
 * accumulator), so both modes compute the same numbers up to summation order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

uint32_t tr_fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

bool tr_is_test(const char *id, size_t n)
{
    return tr_fnv1a(id, n) % 100 < 20;
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static double rdf64(const unsigned char *p)
{
    double d;
    memcpy(&d, p, 8); /* little-endian hosts only, as eddy.vec's format */
    return d;
}

int tr_record_parse(const char *v, size_t len, size_t dim, struct tr_record *r)
{
    const unsigned char *p = (const unsigned char *)v;
    if (len < 10 || p[0] < '0' || p[0] > '9' || (p[1] != '0' && p[1] != '1') ||
        memcmp(p + 2, "EVs1", 4) != 0)
        return -1;
    uint32_t n = rd32(p + 6);
    if ((len - 10) / 12 != n || (len - 10) % 12 != 0)
        return -1;
    r->y = p[0] - '0';
    r->test = p[1] == '1';
    r->n = n;
    r->idx = p + 10;
    r->val = p + 10 + 4 * (size_t)n;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = rd32(r->idx + 4 * k);
        if (i < 1 || i > dim)
            return -1;
    }
    return 0;
}

int tr_model_init(struct tr_model *m, int classes, size_t dim)
{
    memset(m, 0, sizeof(*m));
    m->K = classes == 2 ? 1 : classes;
    m->dim = dim;
    size_t n = (size_t)m->K * dim;
    m->w = calloc(n, sizeof(double));
    m->v = calloc(n, sizeof(double));
    m->g = calloc(n, sizeof(double));
    if (m->w == NULL || m->v == NULL || m->g == NULL) {
        tr_model_deinit(m);
        return -1;
    }
    return 0;
}

void tr_model_deinit(struct tr_model *m)
{
    free(m->w);
    free(m->v);
    free(m->g);
    m->w = m->v = m->g = NULL;
}

void tr_model_begin(struct tr_model *m)
{
    memset(m->g, 0, (size_t)m->K * m->dim * sizeof(double));
    m->ntr = m->nte = m->corr = m->tcorr = 0;
    m->loss = m->tloss = 0;
}

/* v:sdot(idx, vals) */
static double sdot(const double *w, const struct tr_record *r)
{
    double s = 0;
    for (uint32_t k = 0; k < r->n; k++)
        s += w[rd32(r->idx + 4 * k) - 1] * rdf64(r->val + 8 * k);
    return s;
}

/* v:saxpy(a, idx, vals) */
static void saxpy(double *g, double a, const struct tr_record *r)
{
    for (uint32_t k = 0; k < r->n; k++)
        g[rd32(r->idx + 4 * k) - 1] += a * rdf64(r->val + 8 * k);
}

/* train.lua's logistic(z, y). */
static double logistic(double z, int y, double *loss)
{
    double e, p;
    if (z >= 0) {
        e = exp(-z);
        p = 1 / (1 + e);
        *loss = y == 1 ? log(1 + e) : z + log(1 + e);
    } else {
        e = exp(z);
        p = e / (1 + e);
        *loss = y == 1 ? -z + log(1 + e) : log(1 + e);
    }
    return p;
}

void tr_model_add(struct tr_model *m, const struct tr_record *r)
{
    int pred;
    double l;
    if (m->K == 1) {
        double z = sdot(m->w, r);
        double p = logistic(z, r->y, &l);
        pred = z > 0 ? 1 : 0;
        if (!r->test)
            saxpy(m->g, p - r->y, r);
    } else {
        double s[16] = {0}, e[16] = {0}, mx = -HUGE_VAL, Z = 0;
        int K = m->K;
        pred = 0;
        for (int k = 0; k < K; k++) {
            s[k] = sdot(m->w + (size_t)k * m->dim, r);
            if (s[k] > mx) {
                mx = s[k];
                pred = k;
            }
        }
        for (int k = 0; k < K; k++) {
            e[k] = exp(s[k] - mx);
            Z = Z + e[k];
        }
        l = log(Z) + mx - s[r->y];
        if (!r->test)
            for (int k = 0; k < K; k++)
                saxpy(m->g + (size_t)k * m->dim, e[k] / Z - (k == r->y ? 1 : 0), r);
    }
    if (r->test) {
        m->nte++;
        m->tloss += l;
        m->tcorr += pred == r->y;
    } else {
        m->ntr++;
        m->loss += l;
        m->corr += pred == r->y;
    }
}

double tr_model_step(struct tr_model *m, double lr, double l2, double mu)
{
    if (m->ntr == 0 || lr == 0)
        return 0;
    double gnorm2 = 0, inv = 1 / (double)m->ntr;
    for (int k = 0; k < m->K; k++) {
        double *g = m->g + (size_t)k * m->dim, *w = m->w + (size_t)k * m->dim;
        double *v = m->v + (size_t)k * m->dim;
        double ss = 0;
        for (size_t i = 0; i < m->dim; i++) {
            g[i] = inv * g[i];
            if (l2 != 0)
                g[i] += l2 * w[i];
            ss += g[i] * g[i];
        }
        double n = sqrt(ss);
        gnorm2 = gnorm2 + n * n;
        for (size_t i = 0; i < m->dim; i++) {
            if (mu != 0) {
                v[i] = mu * v[i];
                v[i] = v[i] + g[i];
                w[i] += -lr * v[i];
            } else {
                w[i] += -lr * g[i];
            }
        }
    }
    return sqrt(gnorm2);
}

char *tr_model_encode(const struct tr_model *m, size_t *len)
{
    size_t one = 8 + 8 * m->dim;
    char *out = malloc((size_t)m->K * one);
    if (out == NULL)
        return NULL;
    for (int k = 0; k < m->K; k++) {
        char *p = out + (size_t)k * one;
        uint32_t n = (uint32_t)m->dim;
        unsigned char h[4] = {(unsigned char)n, (unsigned char)(n >> 8),
                              (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
        memcpy(p, "EVd1", 4);
        memcpy(p + 4, h, 4);
        memcpy(p + 8, m->w + (size_t)k * m->dim, 8 * m->dim);
    }
    *len = (size_t)m->K * one;
    return out;
}
