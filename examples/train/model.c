/* model.c - the features' hashing and split rule, the feature block format and the
 * gradient of the client ("ship data to code") mode. A block's gradient is computed by
 * the same C kernel eddy.vec runs in the server (common/csr.c) and the step has the
 * arithmetic of train.lua's train_step operation for operation, so both modes compute
 * the same numbers up to the order in which blocks and partitions are added up. */
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

int tr_block_parse(const char *v, size_t len, size_t dim, struct tr_block *b)
{
    const unsigned char *p = (const unsigned char *)v;
    if (len < 8 || memcmp(p, "TRB1", 4) != 0)
        return -1;
    size_t rows = (size_t)p[4] | (size_t)p[5] << 8 | (size_t)p[6] << 16 | (size_t)p[7] << 24;
    const char *why;
    if (len - 8 < 2 * rows || cm_csr_parse(p + 8 + 2 * rows, len - 8 - 2 * rows, &b->X, &why) != 0 ||
        b->X.rows != rows || b->X.cols != dim)
        return -1;
    b->rows = rows;
    b->y = p + 8;
    b->test = p + 8 + rows;
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

int tr_model_add(struct tr_model *m, const struct tr_block *b)
{
    double *W[CM_GLM_KMAX], *G[CM_GLM_KMAX];
    for (int k = 0; k < m->K; k++) {
        W[k] = m->w + (size_t)k * m->dim;
        G[k] = m->g + (size_t)k * m->dim;
    }
    /* Per block, then added up: the order of train.lua's sums. */
    struct cm_glm_stats st = {0};
    if (cm_glm_grad(&b->X, m->K, (const double *const *)W, G, b->y, b->test, &st) != 0)
        return -1;
    m->ntr += st.ntr;
    m->loss += st.loss;
    m->corr += st.corr;
    m->nte += st.nte;
    m->tloss += st.tloss;
    m->tcorr += st.tcorr;
    return 0;
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
