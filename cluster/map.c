/* map.c - the slot map: an epoch, the nodes and the owner of each slot; its text
 * payload (parse and format, see cluster.h) and small queries. Uses common/ only. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct clu_map *clu_map_new(void)
{
    struct clu_map *m = cm_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    for (int i = 0; i < CM_SLOTS; i++)
        m->owner[i] = -1;
    m->coord = -1;
    return m;
}

void clu_map_free(struct clu_map *m)
{
    if (m == NULL)
        return;
    cm_free(m->nodes);
    cm_free(m);
}

bool clu_id_valid(const char *id, size_t n)
{
    if (n != CLU_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

int clu_map_find(const struct clu_map *m, const char *id)
{
    for (int i = 0; i < m->nnodes; i++)
        if (strcmp(m->nodes[i].id, id) == 0)
            return i;
    return -1;
}

int clu_map_add_node(struct clu_map *m, const char *id, const char *host, int port)
{
    if (!clu_id_valid(id, strlen(id)) || strlen(host) == 0 || strlen(host) >= CLU_HOST_LEN ||
        strpbrk(host, " \t\r\n") != NULL || port <= 0 || port > 65535 ||
        m->nnodes >= CLU_MAX_NODES || clu_map_find(m, id) >= 0)
        return CM_EINVAL;
    struct clu_node *n = cm_realloc(m->nodes, (size_t)(m->nnodes + 1) * sizeof(*n));
    if (n == NULL)
        return CM_ENOMEM;
    m->nodes = n;
    struct clu_node *nd = &n[m->nnodes];
    snprintf(nd->id, sizeof(nd->id), "%s", id);
    snprintf(nd->host, sizeof(nd->host), "%s", host);
    nd->port = port;
    return m->nnodes++;
}

int clu_map_coordinator(const struct clu_map *m)
{
    if (m->coord >= 0 && m->coord < m->nnodes)
        return m->coord;
    return m->nnodes > 0 ? 0 : -1;
}

int clu_map_assigned(const struct clu_map *m)
{
    int n = 0;
    for (int i = 0; i < CM_SLOTS; i++)
        n += m->owner[i] >= 0;
    return n;
}

bool clu_map_same(const struct clu_map *a, const struct clu_map *b)
{
    if (a->nnodes != b->nnodes || memcmp(a->owner, b->owner, sizeof(a->owner)) != 0 ||
        clu_map_coordinator(a) != clu_map_coordinator(b))
        return false;
    for (int i = 0; i < a->nnodes; i++)
        if (strcmp(a->nodes[i].id, b->nodes[i].id) != 0 ||
            strcmp(a->nodes[i].host, b->nodes[i].host) != 0 || a->nodes[i].port != b->nodes[i].port)
            return false;
    return true;
}

#define MAX_WORDS 64
#define RANGES_PER_LINE 32

int clu_map_format(const struct clu_map *m, struct cm_buf *out)
{
    int rc = 0;
    for (int i = 0; i < m->nnodes && rc == 0; i++)
        rc = cm_buf_appendf(out, "node %s %s %d\n", m->nodes[i].id, m->nodes[i].host,
                            m->nodes[i].port);
    if (rc == 0 && m->coord >= 0 && m->coord < m->nnodes)
        rc = cm_buf_appendf(out, "coordinator %s\n", m->nodes[m->coord].id);
    /* A node's ranges go on "slots" lines of at most RANGES_PER_LINE ranges each. */
    for (int i = 0; i < m->nnodes && rc == 0; i++) {
        int on_line = 0;
        for (int s = 0; s < CM_SLOTS && rc == 0; s++) {
            if (m->owner[s] != i)
                continue;
            int e = s;
            while (e + 1 < CM_SLOTS && m->owner[e + 1] == i)
                e++;
            if (on_line == RANGES_PER_LINE) {
                rc = cm_buf_appendc(out, '\n');
                on_line = 0;
            }
            if (on_line == 0 && rc == 0)
                rc = cm_buf_appendf(out, "slots %s", m->nodes[i].id);
            on_line++;
            if (rc == 0)
                rc = e == s ? cm_buf_appendf(out, " %d", s) : cm_buf_appendf(out, " %d-%d", s, e);
            s = e;
        }
        if (on_line > 0 && rc == 0)
            rc = cm_buf_appendc(out, '\n');
    }
    return rc;
}

/* ---- Parsing ------------------------------------------------------------------------------ */

/* Splits line (NUL-terminated, modified) into words; returns their count, or -1 when
 * there are more than max. */
static int split_words(char *line, char **w, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t\r", &save); t != NULL;
         t = strtok_r(NULL, " \t\r", &save)) {
        if (n == max)
            return -1;
        w[n++] = t;
    }
    return n;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Assigns one "lo-hi" or "n" range to node idx. */
static int assign_range(struct clu_map *m, const char *r, int idx, struct cm_err *err)
{
    char a[16], *dash;
    long lo, hi;
    if (strlen(r) >= sizeof(a))
        return cm_err_set(err, CM_EINVAL, "ERR bad slot range '%.20s'", r);
    strcpy(a, r);
    dash = strchr(a, '-');
    if (dash != NULL)
        *dash = '\0';
    if (!parse_int(a, 0, CM_SLOTS - 1, &lo) ||
        !parse_int(dash ? dash + 1 : a, 0, CM_SLOTS - 1, &hi) || hi < lo)
        return cm_err_set(err, CM_EINVAL, "ERR bad slot range '%s'", r);
    for (long s = lo; s <= hi; s++) {
        if (m->owner[s] >= 0)
            return cm_err_set(err, CM_EINVAL, "ERR slot %ld is assigned twice", s);
        m->owner[s] = (int16_t)idx;
    }
    return 0;
}

static int parse_line(struct clu_map *m, char *line, int lineno, struct cm_err *err)
{
    char *w[MAX_WORDS];
    int n = split_words(line, w, MAX_WORDS);
    long port;
    if (n < 0)
        return cm_err_set(err, CM_EINVAL, "ERR map line %d: more than %d words", lineno, MAX_WORDS);
    if (n == 0)
        return 0;
    if (strcmp(w[0], "node") == 0) {
        if (n != 4 || !parse_int(w[3], 1, 65535, &port))
            return cm_err_set(err, CM_EINVAL, "ERR map line %d: expected 'node <id> <host> <port>'",
                              lineno);
        int rc = clu_map_add_node(m, w[1], w[2], (int)port);
        if (rc == CM_ENOMEM)
            return cm_err_set(err, rc, "ERR out of memory");
        if (rc < 0)
            return cm_err_set(err, CM_EINVAL, "ERR map line %d: bad or duplicate node '%.64s'",
                              lineno, w[1]);
        return 0;
    }
    if (strcmp(w[0], "slots") == 0 && n >= 2) {
        int idx = clu_map_find(m, w[1]);
        if (idx < 0)
            return cm_err_set(err, CM_EINVAL, "ERR map line %d: unknown node '%.64s'", lineno, w[1]);
        for (int i = 2; i < n; i++)
            if (assign_range(m, w[i], idx, err) != 0)
                return CM_EINVAL;
        return 0;
    }
    if (strcmp(w[0], "coordinator") == 0 && n == 2) {
        int idx = clu_map_find(m, w[1]);
        if (idx < 0 || m->coord >= 0)
            return cm_err_set(err, CM_EINVAL, "ERR map line %d: unknown or second coordinator '%.64s'",
                              lineno, w[1]);
        m->coord = idx;
        return 0;
    }
    return cm_err_set(err, CM_EINVAL, "ERR map line %d: expected 'node', 'coordinator' or 'slots'",
                      lineno);
}

int clu_map_parse(const char *p, size_t n, unsigned long long epoch, struct clu_map **out,
                  struct cm_err *err)
{
    *out = NULL;
    if (epoch == 0 || epoch > CLU_EPOCH_MAX)
        return cm_err_set(err, CM_EINVAL, "ERR epoch out of range (1 to %llu)", CLU_EPOCH_MAX);
    struct clu_map *m = clu_map_new();
    char *text = cm_malloc(n + 1);
    int rc = 0;
    if (m == NULL || text == NULL) {
        rc = cm_err_set(err, CM_ENOMEM, "ERR out of memory");
        goto fail;
    }
    memcpy(text, p, n);
    text[n] = '\0';
    if (strlen(text) != n) {
        rc = cm_err_set(err, CM_EINVAL, "ERR map payload contains a NUL byte");
        goto fail;
    }
    m->epoch = epoch;
    int lineno = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if ((rc = parse_line(m, line, lineno, err)) != 0)
            goto fail;
    }
    /* Two ids at one address: MOVED could send a client back to the node it asked. */
    for (int i = 0; i < m->nnodes; i++)
        for (int j = i + 1; j < m->nnodes; j++)
            if (m->nodes[i].port == m->nodes[j].port &&
                strcasecmp(m->nodes[i].host, m->nodes[j].host) == 0) {
                rc = cm_err_set(err, CM_EINVAL, "ERR nodes %.8s and %.8s have one address %s:%d",
                                m->nodes[i].id, m->nodes[j].id, m->nodes[i].host, m->nodes[i].port);
                goto fail;
            }
    cm_free(text);
    *out = m;
    return 0;
fail:
    cm_free(text);
    clu_map_free(m);
    return rc;
}
