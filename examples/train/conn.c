/* conn.c - eddy-train's connection to eddyd through libeddy, counting the RESP bytes
 * that cross the link in each direction (the figure the two training modes are
 * compared on), train:meta, and small utilities. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "train.h"

double tr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *tr_bytes(unsigned long long n, char *buf, size_t cap)
{
    static const char *unit[] = {"B", "kB", "MB", "GB", "TB"};
    double d = (double)n;
    int u = 0;
    while (d >= 1000 && u < 4) {
        d /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", n);
    else
        snprintf(buf, cap, "%.*f %s", d < 10 ? 2 : d < 100 ? 1 : 0, d, unit[u]);
    return buf;
}

static eddy_ctx *connect_node(const char *host, int port, const struct tr_opts *o)
{
    char err[EDDY_ERRLEN];
    eddy_ctx *ctx = eddy_connect(host, port, 10000, o->password, err);
    if (ctx == NULL) {
        fprintf(stderr, "eddy-train: cannot connect to %s:%d: %s\n", host, port, err);
        return NULL;
    }
    /* A MAPREDUCE over a large data set is silent until it is done (featurizing 1 GB of
     * reviews takes more than 10 minutes on 2 cores): wait as long as the server works.
     * A server that dies closes the connection, which ends the wait. */
    eddy_set_timeout(ctx, 0);
    return ctx;
}

/* The node index of host:port, connecting to it if it is new; -1 on failure. */
static int node_of(struct tr_conn *c, const struct tr_opts *o, const char *host, int port,
                   char (*addrs)[300])
{
    char addr[300];
    snprintf(addr, sizeof(addr), "%s:%d", host, port);
    for (int i = 0; i < c->nnodes; i++)
        if (strcmp(addrs[i], addr) == 0)
            return i;
    if (c->nnodes == TR_MAX_NODES) {
        fprintf(stderr, "eddy-train: more than %d nodes\n", TR_MAX_NODES);
        return -1;
    }
    if ((c->node[c->nnodes] = connect_node(host, port, o)) == NULL)
        return -1;
    snprintf(addrs[c->nnodes], 300, "%s", addr);
    return c->nnodes++;
}

/* Reads the slot map if the server is a cluster node; 0 (also for a single server) or
 * -1 after printing why. */
static int open_cluster(struct tr_conn *c, const struct tr_opts *o)
{
    const char *argv[] = {"CLUSTER", "SLOTS"};
    struct eddy_reply *r = eddy_command_argv(c->ctx, 2, argv, NULL);
    if (r == NULL) {
        fprintf(stderr, "eddy-train: %s\n", eddy_errstr(c->ctx));
        return -1;
    }
    int rc = 0;
    if (r->type == EDDY_REPLY_ARRAY) {
        char(*addrs)[300] = calloc(TR_MAX_NODES, 300);
        c->owner = malloc(CM_SLOTS * sizeof(short));
        c->fcap = 1024;
        c->fifo = malloc(c->fcap * sizeof(int));
        if (addrs == NULL || c->owner == NULL || c->fifo == NULL) {
            free(addrs);
            eddy_reply_free(r);
            return -1;
        }
        snprintf(addrs[0], 300, "%s:%d", o->host, o->port);
        for (int s = 0; s < CM_SLOTS; s++)
            c->owner[s] = -1;
        for (size_t i = 0; i < r->elements && rc == 0; i++) {
            const struct eddy_reply *e = r->element[i];
            if (e->type != EDDY_REPLY_ARRAY || e->elements < 3 ||
                e->element[0]->type != EDDY_REPLY_INTEGER ||
                e->element[1]->type != EDDY_REPLY_INTEGER || e->element[0]->integer < 0 ||
                e->element[1]->integer >= CM_SLOTS ||
                e->element[2]->type != EDDY_REPLY_ARRAY || e->element[2]->elements < 2 ||
                e->element[2]->element[0]->type != EDDY_REPLY_STRING ||
                e->element[2]->element[1]->type != EDDY_REPLY_INTEGER) {
                fprintf(stderr, "eddy-train: CLUSTER SLOTS: unexpected reply\n");
                rc = -1;
                break;
            }
            const struct eddy_reply *n = e->element[2];
            int idx = node_of(c, o, n->element[0]->str, (int)n->element[1]->integer, addrs);
            if (idx < 0)
                rc = -1;
            for (long long s = e->element[0]->integer; rc == 0 && s <= e->element[1]->integer &&
                                                       s < CM_SLOTS; s++)
                c->owner[s] = (short)idx;
        }
        free(addrs);
    }
    eddy_reply_free(r);
    return rc;
}

int tr_conn_open(struct tr_conn *c, const struct tr_opts *o)
{
    memset(c, 0, sizeof(*c));
    if ((c->ctx = connect_node(o->host, o->port, o)) == NULL)
        return -1;
    c->node[0] = c->ctx;
    c->nnodes = 1;
    if (open_cluster(c, o) != 0) {
        tr_conn_close(c);
        return -1;
    }
    return 0;
}

void tr_conn_close(struct tr_conn *c)
{
    for (int i = 0; i < c->nnodes; i++)
        eddy_free(c->node[i]);
    free(c->owner);
    free(c->fifo);
    memset(c, 0, sizeof(*c));
}

int tr_nodes(const struct tr_conn *c)
{
    return c->nnodes;
}

void tr_use_node(struct tr_conn *c, int i)
{
    c->cur = i;
    c->ctx = c->node[i];
}

int tr_flush(struct tr_conn *c)
{
    for (int i = 0; i < c->nnodes; i++)
        if (eddy_flush(c->node[i]) != EDDY_OK) {
            fprintf(stderr, "eddy-train: %s\n", eddy_errstr(c->node[i]));
            return -1;
        }
    return 0;
}

/* The node a command goes to: its key's owner for the keyed commands the example
 * sends, else the current node. */
static int route(const struct tr_conn *c, int argc, const char **argv, const size_t *lens)
{
    static const char *const keyed[] = {"GET", "SET", "DEL", "EXISTS", "MGET", NULL};
    if (c->owner == NULL || argc < 2)
        return c->cur;
    for (int k = 0; keyed[k]; k++)
        if (lens[0] == strlen(keyed[k]) && strncasecmp(argv[0], keyed[k], lens[0]) == 0) {
            int o = c->owner[cm_key_slot(argv[1], lens[1])];
            return o >= 0 ? o : c->cur;
        }
    return c->cur;
}

static size_t digits(unsigned long long v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

size_t tr_cmd_size(int argc, const size_t *lens)
{
    size_t n = 1 + digits((unsigned)argc) + 2;
    for (int i = 0; i < argc; i++)
        n += 1 + digits(lens[i]) + 2 + lens[i] + 2;
    return n;
}

size_t tr_reply_size(const struct eddy_reply *r)
{
    size_t n;
    switch (r->type) {
    case EDDY_REPLY_STRING:
    case EDDY_REPLY_BIGNUM:
        return 1 + digits(r->len) + 2 + r->len + 2;
    case EDDY_REPLY_VERB:
        return 1 + digits(r->len + 4) + 2 + r->len + 4 + 2;
    case EDDY_REPLY_STATUS:
    case EDDY_REPLY_ERROR:
    case EDDY_REPLY_DOUBLE:
        return 1 + r->len + 2;
    case EDDY_REPLY_INTEGER:
        return 1 + (r->integer < 0) +
               digits(r->integer < 0 ? 0ULL - (unsigned long long)r->integer
                                     : (unsigned long long)r->integer) + 2;
    case EDDY_REPLY_NIL:
        return 5;
    case EDDY_REPLY_BOOL:
        return 4;
    case EDDY_REPLY_MAP:
    case EDDY_REPLY_ATTR:
        n = 1 + digits(r->elements / 2) + 2;
        break;
    default:
        n = 1 + digits(r->elements) + 2;
        break;
    }
    for (size_t i = 0; i < r->elements; i++)
        n += tr_reply_size(r->element[i]);
    return n;
}

static size_t *arg_lens(int argc, const char **argv, const size_t *lens, size_t *tmp, int cap)
{
    if (lens != NULL || argc > cap)
        return (size_t *)lens;
    for (int i = 0; i < argc; i++)
        tmp[i] = strlen(argv[i]);
    return tmp;
}

int tr_append(struct tr_conn *c, int argc, const char **argv, const size_t *lens)
{
    size_t tmp[16];
    const size_t *l = arg_lens(argc, argv, lens, tmp, 16);
    if (l == NULL)
        return -1;
    int n = route(c, argc, argv, l);
    if (c->fifo != NULL && c->ftail - c->fhead == c->fcap) {
        /* Replies still to read: grow the ring (moving it to the front). */
        int *f = malloc(2 * c->fcap * sizeof(int));
        if (f == NULL)
            return -1;
        for (size_t i = c->fhead; i < c->ftail; i++)
            f[i - c->fhead] = c->fifo[i % c->fcap];
        free(c->fifo);
        c->fifo = f;
        c->ftail -= c->fhead;
        c->fhead = 0;
        c->fcap *= 2;
    }
    int rc = eddy_append_argv(c->node[n], argc, argv, l);
    if (rc != EDDY_OK) {
        fprintf(stderr, "eddy-train: %s\n", eddy_errstr(c->node[n]));
        return -1;
    }
    if (c->fifo != NULL)
        c->fifo[c->ftail++ % c->fcap] = n;
    c->sent += tr_cmd_size(argc, l);
    return 0;
}

struct eddy_reply *tr_reply(struct tr_conn *c)
{
    struct eddy_reply *r = NULL;
    int n = c->fifo != NULL && c->fhead < c->ftail ? c->fifo[c->fhead++ % c->fcap] : c->cur;
    int rc = eddy_get_reply(c->node[n], &r);
    if (rc != EDDY_OK) {
        fprintf(stderr, "eddy-train: connection failed: %s (%s)\n", eddy_strerror(rc),
                eddy_errstr(c->node[n]));
        return NULL;
    }
    c->recv += tr_reply_size(r);
    return r;
}

struct eddy_reply *tr_cmd(struct tr_conn *c, int argc, const char **argv, const size_t *lens)
{
    if (tr_append(c, argc, argv, lens) != 0)
        return NULL;
    return tr_reply(c);
}

void tr_report(struct tr_conn *c, const char *what, const struct eddy_reply *r)
{
    if (r != NULL && r->type == EDDY_REPLY_ERROR)
        fprintf(stderr, "eddy-train: %s: %.*s\n", what, (int)r->len, r->str);
    else if (r != NULL)
        fprintf(stderr, "eddy-train: %s: unexpected %s reply\n", what,
                eddy_reply_type_name(r->type));
    else
        fprintf(stderr, "eddy-train: %s: %s\n", what, eddy_errstr(c->ctx));
}

int tr_meta_get(struct tr_conn *c, struct tr_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->true_test_acc = -1;
    const char *argv[] = {"GET", "train:meta"};
    struct eddy_reply *r = tr_cmd(c, 2, argv, NULL);
    if (r == NULL)
        return -1;
    if (r->type != EDDY_REPLY_STRING) {
        int rc = r->type == EDDY_REPLY_NIL ? 1 : -1;
        if (rc < 0)
            tr_report(c, "GET train:meta", r);
        eddy_reply_free(r);
        return rc;
    }
    char *save = NULL;
    for (char *line = strtok_r(r->str, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(line, "classes") == 0)
            m->classes = atoi(v);
        else if (strcmp(line, "D") == 0)
            m->D = atoll(v);
        else if (strcmp(line, "reviews") == 0)
            m->reviews = atoll(v);
        else if (strcmp(line, "true_test_acc") == 0)
            m->true_test_acc = atof(v);
        else if (strcmp(line, "source") == 0)
            snprintf(m->source, sizeof(m->source), "%s", v);
    }
    eddy_reply_free(r);
    return 0;
}

int tr_meta_set(struct tr_conn *c, const struct tr_meta *m)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "source=%s\nclasses=%d\nreviews=%lld\nD=%lld\n",
                     m->source, m->classes, m->reviews, m->D);
    if (m->true_test_acc >= 0)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "true_test_acc=%.6f\n",
                      m->true_test_acc);
    const char *argv[] = {"SET", "train:meta", buf};
    struct eddy_reply *r = tr_cmd(c, 3, argv, NULL);
    int rc = r != NULL && r->type == EDDY_REPLY_STATUS ? 0 : -1;
    if (rc != 0)
        tr_report(c, "SET train:meta", r);
    eddy_reply_free(r);
    return rc;
}

void tr_progress(const char *what, unsigned long long done, unsigned long long total,
                 double t0, bool quiet, bool final)
{
    static double last;
    if (quiet || !isatty(2))
        return;
    double now = tr_now();
    if (!final && now - last < 0.1)
        return;
    last = now;
    char a[32], b[32];
    double el = now - t0 > 1e-9 ? now - t0 : 1e-9;
    if (total > 0) {
        double f = (double)done / (double)total;
        if (f > 1)
            f = 1;
        int fill = (int)(f * 30);
        fprintf(stderr, "\r%-10s [%.*s%*s] %3.0f%% %s / %s  %.1f MB/s ", what, fill,
                "##############################", 30 - fill, "", f * 100, tr_bytes(done, a, 32),
                tr_bytes(total, b, 32), (double)done / el / 1e6);
    } else {
        fprintf(stderr, "\r%-10s %s  %.1f MB/s ", what, tr_bytes(done, a, 32),
                (double)done / el / 1e6);
    }
    if (final)
        fputc('\n', stderr);
}
