/* clients.c - CLIENT LIST across the I/O threads without reading another thread's
 * connections: the requesting connection waits (c->job) while every worker describes
 * its own connections (conn_describe, posted with server_post) and sends the lines
 * back to the requester's thread ("home"), which sorts them by client id and replies.
 * No loop blocks; the job's bookkeeping is touched only by the home thread. */
#include "net_int.h"

#include <stdlib.h>
#include <string.h>

struct clist_job {
    struct conn_job base;   /* first: the connection's c->job */
    struct worker *home;
    struct conn *c;         /* NULL once the client went away */
    int resp;
    int pending;            /* parts not yet back */
    bool starting;          /* client_list_start is still running on the home thread */
    bool failed;            /* a part could not be posted (out of memory) */
    size_t nids;            /* 0: every client */
    struct cm_buf text;     /* the lines that came back, in arrival order */
    unsigned long long ids[]; /* nids of them */
};

/* One worker's share: its lines, made on its thread, appended on the home thread. */
struct clist_part {
    struct clist_job *job;
    struct cm_buf text;
};

static void job_detach(struct conn_job *job)
{
    ((struct clist_job *)job)->c = NULL;
}

static void job_free(struct clist_job *j)
{
    cm_buf_deinit(&j->text);
    cm_free(j);
}

struct line {
    unsigned long long id;
    const char *p;
    size_t n;
};

static int cmp_line(const void *a, const void *b)
{
    const struct line *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Appends the lines of text to out ordered by client id (creation order, as Redis
 * lists them). Returns 0 or CM_ENOMEM. */
static int append_sorted(const struct cm_buf *text, struct cm_buf *sorted)
{
    if (text->len == 0)
        return 0; /* no client matched: text->p may be NULL (NULL + 0 is undefined) */
    size_t n = 0;
    for (size_t i = 0; i < text->len; i++)
        n += text->p[i] == '\n';
    struct line *lines = cm_malloc((n ? n : 1) * sizeof(*lines));
    if (lines == NULL)
        return CM_ENOMEM;
    const char *p = text->p, *end = text->p + text->len;
    for (size_t i = 0; i < n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lines[i].id = strtoull(p + 3, NULL, 10); /* every line starts "id=" */
        lines[i].p = p;
        lines[i].n = (size_t)(nl - p) + 1;
        p = nl + 1;
    }
    qsort(lines, n, sizeof(*lines), cmp_line);
    int rc = cm_buf_reserve(sorted, text->len);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cm_buf_append(sorted, lines[i].p, lines[i].n);
    cm_free(lines);
    return rc;
}

/* On the home thread: every part is back. */
static void finish(struct clist_job *j)
{
    struct conn *c = j->c;
    if (c == NULL) {
        job_free(j);
        return;
    }
    c->job = NULL;
    struct cm_buf sorted;
    cm_buf_init(&sorted);
    if (j->failed || append_sorted(&j->text, &sorted) != 0)
        resp_add_error(&c->out, "OOM out of memory listing the clients");
    else
        resp_add_verbatim(&c->out, "txt", sorted.p ? sorted.p : "", sorted.len, j->resp);
    cm_buf_deinit(&sorted);
    bool starting = j->starting;
    job_free(j);
    /* Finished inside the command itself (one thread): process_input goes on. */
    if (!starting)
        conn_serve(c);
}

/* On the home thread: a worker's lines arrived. */
static void part_arrived(struct worker *w, void *arg)
{
    struct clist_part *p = arg;
    struct clist_job *j = p->job;
    if (p->text.len > 0 && cm_buf_append(&j->text, p->text.p, p->text.len) != 0)
        j->failed = true;
    cm_buf_deinit(&p->text);
    cm_free(p);
    if (--j->pending == 0)
        finish(j);
}

static int cmp_id(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

static bool wanted(const struct clist_job *j, unsigned long long id)
{
    return j->nids == 0 || bsearch(&id, j->ids, j->nids, sizeof(id), cmp_id) != NULL;
}

/* On each worker's thread: describe its own connections, then report home. The job's
 * filter (nids, ids) is written before the post and never changes. */
static void describe_own(struct worker *w, void *arg)
{
    struct clist_part *p = arg;
    struct clist_job *j = p->job;
    for (struct conn *c = w->conns; c != NULL; c = c->next)
        if (wanted(j, c->id))
            conn_describe(c, &p->text);
    if (j->home == w) {
        part_arrived(w, p);
    } else if (server_post(j->home, part_arrived, p) != 0) {
        /* Nothing can tell the home thread: the client waits until it disconnects. */
        cm_log(CM_LOG_WARNING, "CLIENT LIST: cannot report to the client's thread (out of memory)");
        cm_buf_deinit(&p->text);
        cm_free(p);
    }
}

/* CLIENT LIST for x's connection, of the clients in ids (nids 0: all). The reply is
 * appended when every worker has answered, now or later. */
void client_list_start(struct cmd_ctx *x, const unsigned long long *ids, size_t nids)
{
    struct server *s = x->srv;
    struct worker *home = x->c->w;
    struct clist_job *j = cm_calloc(1, sizeof(*j) + nids * sizeof(*ids));
    if (j == NULL) {
        reply_err(x, "OOM out of memory listing the clients");
        return;
    }
    j->base.detach = job_detach;
    j->home = home;
    j->c = x->c;
    j->resp = x->resp;
    j->nids = nids;
    if (nids > 0) { /* sorted for wanted() */
        memcpy(j->ids, ids, nids * sizeof(*ids));
        qsort(j->ids, nids, sizeof(*ids), cmp_id);
    }
    cm_buf_init(&j->text);
    j->pending = s->nworkers;
    j->starting = true;
    x->c->job = &j->base; /* the connection waits for the job */
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = s->workers[(home->id + i) % s->nworkers];
        struct clist_part *p = cm_calloc(1, sizeof(*p));
        if (p != NULL) {
            p->job = j;
            cm_buf_init(&p->text);
        }
        if (p != NULL && w == home) {
            describe_own(w, p);
        } else if (p == NULL || server_post(w, describe_own, p) != 0) {
            cm_free(p);
            j->failed = true;
            if (--j->pending == 0)
                finish(j);
        }
        if (x->c->job != &j->base)
            return; /* every part is back and the job is over (j is freed) */
    }
    j->starting = false;
}
