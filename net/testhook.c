/* testhook.c - an in-process server for fuzz targets (tests/fuzz/testhook.h): the
 * engine, the function registry and one worker built as server.c builds them, with
 * no listening socket; the client is a socketpair driven from the worker's own loop,
 * so every command takes the real path (conn.c, resp.c, cmd.c) and preempted calls
 * and MAPREDUCE finish as in eddyd. Test-only: eddyd never calls it. */
#include "net_int.h"

#include "../tests/fuzz/testhook.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

struct th {
    struct server srv;
    struct net_config saved;   /* th_reset_config restores it */
    struct worker *w;
    int peer;                  /* our end of the socketpair, -1 when none */
    struct loop_io *peer_io;
    struct cm_buf pending;     /* the command being sent */
    size_t sent;
    struct resp_reader rd;
    struct resp_value *reply;
    int status;                /* of the running th_exec: 1 = still waiting */
    char reason[256];
    int timeout_ms;            /* of the running th_exec, and when it began: */
    int64_t start_ms, start_cpu_ms;
};

static struct th *the_hook;

/* What server.c's worker_wake does: posted tasks, kill requests, shutdown. Keep
 * worker_make/worker_drop below in step with server.c's worker_new/worker_free. */
static void hook_wake(void *ud)
{
    struct worker *w = ud;
    pthread_mutex_lock(&w->inbox_lock);
    struct task *t = w->tasks;
    w->tasks = NULL;
    w->tasks_tail = &w->tasks;
    pthread_mutex_unlock(&w->inbox_lock);
    while (t != NULL) {
        struct task *next = t->next;
        t->fn(w, t->arg);
        cm_free(t);
        t = next;
    }
    bool down = atomic_load(&w->srv->shutting_down);
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (down || atomic_load(&c->kill))
            conn_close(c);
    }
}

static void hook_resume(void *ud)
{
    worker_resume_calls(ud);
}

static void hook_cron(void *ud)
{
    conn_worker_cron(ud);
}

static void peer_io(void *ud, int events)
{
    struct th *h = ud;
    if (h->status != 1)
        return;
    if ((events & LOOP_WRITE) && h->sent < h->pending.len) {
        ssize_t n = send(h->peer, h->pending.p + h->sent, h->pending.len - h->sent, MSG_NOSIGNAL);
        if (n > 0)
            h->sent += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            h->status = TH_CLOSED;
        if (h->sent == h->pending.len)
            loop_io_set(h->peer_io, LOOP_READ);
    }
    if (events & LOOP_READ) {
        char buf[16384];
        ssize_t n = read(h->peer, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            h->status = TH_CLOSED;
        } else if (n > 0 && resp_reader_feed(&h->rd, buf, (size_t)n) != 0) {
            h->status = TH_BADREPLY;
            snprintf(h->reason, sizeof(h->reason), "out of memory in the reader");
        } else if (n > 0) {
            int rc = resp_reader_get(&h->rd, &h->reply);
            char extra;
            if (rc == RESP_DONE && (h->rd.buf.len > h->rd.pos ||
                                    recv(h->peer, &extra, 1, MSG_PEEK | MSG_DONTWAIT) == 1)) {
                /* One command, one reply: more bytes mean the reply stream lost its
                 * framing (e.g. CR LF inside a simple string). */
                h->status = TH_BADREPLY;
                size_t left = h->rd.buf.len - h->rd.pos;
                snprintf(h->reason, sizeof(h->reason), "bytes after the whole reply: \"%.*s\"",
                         (int)(left > 60 ? 60 : left), left ? h->rd.buf.p + h->rd.pos : "");
            } else if (rc == RESP_DONE) {
                h->status = 0;
            } else if (rc == RESP_BAD) {
                h->status = TH_BADREPLY;
                snprintf(h->reason, sizeof(h->reason), "%s", h->rd.err);
            }
        }
    }
    if (h->status != 1)
        loop_stop(h->w->loop);
}

/* CPU milliseconds of the whole process (every thread). */
static int64_t cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs timeout_ms after th_exec began, then every second. A hang is timeout_ms of the
 * process's CPU time (a loop) or 60 times timeout_ms of wall time (waiting on
 * nothing): on a busy machine a fuzzer at nice 19 may get a few percent of a core,
 * and an input that needs 1 s of CPU then takes far longer than timeout_ms. */
static void on_timeout(void *ud)
{
    struct th *h = ud;
    int64_t cpu = cpu_ms() - h->start_cpu_ms, wall = cm_mono_us() / 1000 - h->start_ms;
    if (h->status == 1 && (cpu >= h->timeout_ms || wall >= 60LL * h->timeout_ms)) {
        h->status = TH_TIMEOUT;
        snprintf(h->reason, sizeof(h->reason), "%lld ms of CPU, %lld ms of wall time",
                 (long long)cpu, (long long)wall);
        loop_stop(h->w->loop);
    }
}

static void disconnect(struct th *h)
{
    loop_io_free(h->peer_io);
    h->peer_io = NULL;
    if (h->peer >= 0)
        close(h->peer);
    h->peer = -1;
    resp_reader_deinit(&h->rd);
    resp_reader_init(&h->rd);
}

static int connect_peer(struct th *h)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return CM_EIO;
    h->peer = sv[1];
    h->peer_io = loop_io_new(h->w->loop, h->peer, peer_io, h);
    if (h->peer_io == NULL) {
        close(sv[0]);
        disconnect(h);
        return CM_ENOMEM;
    }
    conn_accept(h->w, sv[0]); /* closes sv[0] itself if it fails */
    return 0;
}

static struct worker *worker_make(struct server *s)
{
    struct worker *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->srv = s;
    w->tasks_tail = &w->tasks;
    eng_lockset_init(&w->held);
    pthread_mutex_init(&w->inbox_lock, NULL);
    w->loop = loop_new(false);
    if (w->loop == NULL)
        return w;
    w->wake = loop_async_new(w->loop, hook_wake, w);
    w->resume = loop_async_new(w->loop, hook_resume, w);
    w->cron = loop_timer_new(w->loop, 1.0, 1.0, hook_cron, w);
    w->batch = eng_batch_new(s->eng);
    loop_set_batch_end(w->loop, conn_batch_end, w);
    struct cm_err err = {0};
    w->vm = udf_vm_new(s->udf, &err);
    return w;
}

static void worker_drop(struct worker *w)
{
    if (w == NULL)
        return;
    conn_batch_end(w);
    while (w->conns != NULL)
        conn_close(w->conns);
    for (struct wcall *wc = w->calls, *next; wc != NULL; wc = next) {
        next = wc->next; /* MAPREDUCE partitions still waiting: abort them */
        udf_call_free(wc->call);
        wc->call = NULL;
        wc->linked = false;
    }
    w->calls = NULL;
    while (w->tasks != NULL) {
        struct task *t = w->tasks;
        w->tasks = t->next;
        cm_free(t);
    }
    loop_async_free(w->wake);
    loop_async_free(w->resume);
    loop_timer_free(w->cron);
    eng_batch_free(w->batch);
    eng_lockset_deinit(&w->held);
    udf_vm_free(w->vm);
    loop_free(w->loop);
    pthread_mutex_destroy(&w->inbox_lock);
    cm_free(w);
}

struct th *th_open(const char *dir, const char *const *args, struct cm_err *err)
{
    if (the_hook != NULL) {
        cm_err_set(err, CM_EINVAL, "a test hook is already open");
        return NULL;
    }
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"eddyd";
    for (int i = 0; args != NULL && args[i] != NULL && argc < 61; i++)
        argv[argc++] = (char *)args[i];
    argv[argc++] = (char *)"--dir";
    argv[argc++] = (char *)dir;
    argv[argc] = NULL;
    bool exit_now;
    struct net_config *cfg = net_config_load(argc, argv, &exit_now, err);
    if (cfg == NULL)
        return NULL;
    struct th *h = cm_calloc(1, sizeof(*h));
    if (h == NULL) {
        net_config_free(cfg);
        cm_err_set(err, CM_ENOMEM, "out of memory");
        return NULL;
    }
    h->peer = -1;
    h->saved = *cfg;
    resp_reader_init(&h->rd);
    struct server *s = &h->srv;
    s->cfg = cfg;
    s->start_us = cm_now_us();
    pthread_mutex_init(&s->clients_lock, NULL);
    atomic_store(&s->next_client_id, 1);
    g_server = s;
    the_hook = h;
    signal(SIGPIPE, SIG_IGN);
    cm_log_set_level(cfg->loglevel);

    struct eng_options eo;
    eng_options_init(&eo);
    eo.dir = cfg->dir;
    eo.fsync = (enum eng_fsync)cfg->appendfsync;
    eo.block_cache_bytes = (size_t)cfg->block_cache;
    eo.memtable_bytes = (size_t)cfg->memtable;
    eo.value_cache_bytes = (size_t)cfg->value_cache;
    if ((s->eng = eng_open(&eo, err)) == NULL)
        goto fail;
    if ((s->udf = udf_new(s->eng, cmd_exec_from_script, err)) == NULL)
        goto fail;
    server_apply_udf_limits(s);
    s->nworkers = 1;
    s->workers = cm_calloc(1, sizeof(*s->workers));
    if (s->workers == NULL)
        goto oom;
    h->w = s->workers[0] = worker_make(s);
    if (h->w == NULL || h->w->loop == NULL || h->w->wake == NULL || h->w->resume == NULL ||
        h->w->cron == NULL || h->w->batch == NULL || h->w->vm == NULL)
        goto oom;
    if (connect_peer(h) != 0)
        goto oom;
    return h;
oom:
    cm_err_set(err, CM_ENOMEM, "cannot set up the worker");
fail:
    th_close(h);
    return NULL;
}

void th_close(struct th *h)
{
    if (h == NULL)
        return;
    disconnect(h);
    resp_reader_deinit(&h->rd);
    cm_buf_deinit(&h->pending);
    struct server *s = &h->srv;
    worker_drop(h->w);
    cm_free(s->workers);
    udf_free(s->udf);
    eng_close(s->eng);
    net_config_free(s->cfg);
    pthread_mutex_destroy(&s->clients_lock);
    g_server = NULL;
    the_hook = NULL;
    cm_free(h);
}

int th_compact(struct th *h, struct cm_err *err)
{
    return eng_compact(h->srv.eng, err);
}

void th_reset_config(struct th *h)
{
    *h->srv.cfg = h->saved;
    atomic_store(&h->srv.shutting_down, false);
    eng_set_fsync(h->srv.eng, (enum eng_fsync)h->saved.appendfsync);
    server_apply_udf_limits(&h->srv);
    cm_log_set_level(h->saved.loglevel);
}

int th_exec(struct th *h, int argc, const char *const *argv, const size_t *argvlen,
            int timeout_ms, struct resp_value **reply, char *reason)
{
    *reply = NULL;
    if (h->peer < 0 && connect_peer(h) != 0)
        return TH_CLOSED;
    h->pending.len = 0;
    h->sent = 0;
    if (resp_add_command(&h->pending, argc, argv, argvlen) != 0)
        return CM_ENOMEM;
    h->status = 1;
    h->reply = NULL;
    h->reason[0] = '\0';
    /* A reply may already be complete in the reader (never, for one command at a
     * time; kept for safety). */
    loop_io_set(h->peer_io, LOOP_READ | LOOP_WRITE);
    h->timeout_ms = timeout_ms;
    h->start_ms = cm_mono_us() / 1000;
    h->start_cpu_ms = cpu_ms();
    struct loop_timer *t = loop_timer_new(h->w->loop, timeout_ms / 1000.0, 1.0, on_timeout, h);
    if (t == NULL)
        return CM_ENOMEM;
    loop_run(h->w->loop);
    loop_timer_free(t);
    loop_io_set(h->peer_io, 0);
    int rc = h->status;
    if (reason != NULL)
        snprintf(reason, 256, "%s", h->reason);
    if (rc == 0)
        *reply = h->reply;
    else
        resp_value_free(h->reply);
    h->reply = NULL;
    if (rc == TH_CLOSED || rc == TH_BADREPLY || rc == TH_TIMEOUT) {
        /* Start over with a fresh connection: the old stream is unusable. */
        disconnect(h);
        for (struct conn *c = h->w->conns, *next; c != NULL; c = next) {
            next = c->next;
            conn_close(c);
        }
        atomic_store(&h->srv.shutting_down, false);
        connect_peer(h);
    }
    return rc;
}
