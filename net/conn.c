/* conn.c - one client connection on one worker loop: read, parse (resp.c), execute
 * (cmd.c), reply in request order, with limits on what a client may buffer. */
#include "net_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Stop executing a client's commands while this much reply data is pending: a
 * pipeline of a million commands then proceeds as fast as the client reads. */
#define OUT_PAUSE_BYTES (1 << 20)
#define READ_CHUNK (16 * 1024)

static void conn_io(void *ud, int events);

static void format_addr(const struct sockaddr_storage *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, cap, "%s:%d", host, port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, cap, "[%s]:%d", host, port);
    } else {
        snprintf(buf, cap, "?:0");
    }
}

static bool is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
    }
    return sa->ss_family == AF_UNIX;
}

static const char denied_msg[] =
    "-DENIED eddy is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from "
    "the loopback interface. If you want to connect from external computers to eddy you may "
    "adopt one of the following solutions: 1) Set a password with --requirepass (or CONFIG "
    "SET requirepass from the loopback interface) and AUTH with it. 2) Disable protected mode "
    "with 'CONFIG SET protected-mode no' from the loopback interface, or start eddyd with "
    "'--protected-mode no', but MAKE SURE eddy is not publicly accessible from the internet "
    "if you do so. 3) Bind only to loopback addresses.\r\n";

void conn_accept(struct worker *w, int fd)
{
    struct server *s = w->srv;
    struct conn *c = cm_calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->w = w;
    c->id = atomic_fetch_add(&s->next_client_id, 1);
    c->resp = 2;
    bool nopass = !net_config_has_password(s->cfg);
    c->authed = nopass;
    c->ctime_ms = c->last_ms = cm_now_ms();
    cm_buf_init(&c->in);
    cm_buf_init(&c->out);
    resp_req_init(&c->req);
    c->req.max_bulk = NET_CFG(s->cfg, max_bulk);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0) {
        format_addr(&sa, c->addr, sizeof(c->addr));
        c->loopback = is_loopback(&sa);
    }
    sl = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        format_addr(&sa, c->laddr, sizeof(c->laddr));
    if (!c->loopback && NET_CFG(s->cfg, protected_mode) && nopass) {
        ssize_t n = write(fd, denied_msg, sizeof(denied_msg) - 1);
        (void)n;
        cm_log(CM_LOG_WARNING, "Refused client %s: protected mode (no requirepass)", c->addr);
        resp_req_deinit(&c->req);
        cm_free(c);
        close(fd);
        return;
    }
    c->io = loop_io_new(w->loop, fd, conn_io, c);
    if (c->io == NULL) {
        resp_req_deinit(&c->req);
        cm_free(c);
        close(fd);
        return;
    }
    loop_io_batched(c->io);
    loop_io_set(c->io, LOOP_READ);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    pthread_mutex_lock(&s->clients_lock);
    c->gnext = s->clients;
    if (s->clients)
        s->clients->gprev = c;
    s->clients = c;
    pthread_mutex_unlock(&s->clients_lock);
    atomic_fetch_add(&s->nclients, 1);
    cm_log(CM_LOG_VERBOSE, "Accepted %s (id %llu)", c->addr, c->id);
}

bool conn_needs_auth(const struct conn *c)
{
    return !c->authed && net_config_has_password(c->w->srv->cfg);
}

void conn_close(struct conn *c)
{
    struct worker *w = c->w;
    struct server *s = w->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_lock(&s->clients_lock);
    if (c->gprev)
        c->gprev->gnext = c->gnext;
    else
        s->clients = c->gnext;
    if (c->gnext)
        c->gnext->gprev = c->gprev;
    pthread_mutex_unlock(&s->clients_lock);
    atomic_fetch_sub(&s->nclients, 1);
    if (c->in_ready) { /* its pending writes still apply at the batch end */
        struct conn **pp = &w->ready;
        while (*pp != c)
            pp = &(*pp)->rnext;
        *pp = c->rnext;
    }
    if (c->wc.linked) {
        if (c->wc.prev)
            c->wc.prev->next = c->wc.next;
        else
            w->calls = c->wc.next;
        if (c->wc.next)
            c->wc.next->prev = c->wc.prev;
    }
    if (c->wc.bus != NULL) { /* it waited for another node: the reply goes nowhere */
        bus_cancel(w, c->wc.bus);
        c->wc.bus = NULL;
    }
    if (c->wc.call != NULL) {
        /* The call is aborted: nothing it wrote is applied. */
        udf_call_free(c->wc.call);
        c->wc.call = NULL;
    }
    if (c->job != NULL)
        c->job->detach(c->job);
    loop_io_free(c->io);
    close(c->fd);
    cm_buf_deinit(&c->in);
    cm_buf_deinit(&c->out);
    resp_req_deinit(&c->req);
    cm_free(c->name);
    cm_log(CM_LOG_VERBOSE, "Client closed connection %s (id %llu)", c->addr, c->id);
    cm_free(c);
}

/* Writes pending output and sets the watcher. Returns -1 if c was closed. */
static int flush_out(struct conn *c)
{
    while (c->opos < c->out.len) {
        ssize_t n = write(c->fd, c->out.p + c->opos, c->out.len - c->opos);
        if (n > 0) {
            c->opos += (size_t)n;
            atomic_fetch_add_explicit(&c->w->srv->net_out, (unsigned long long)n,
                                      memory_order_relaxed);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(c);
        return -1;
    }
    bool pending = c->opos < c->out.len;
    if (!pending) {
        c->out.len = c->opos = 0;
        if (c->out.cap > 4 * OUT_PAUSE_BYTES)
            cm_buf_shrink(&c->out, 0);
        if (c->flags & CONN_CLOSE_AFTER_REPLY) {
            conn_close(c);
            return -1;
        }
    }
    loop_io_set(c->io, (c->paused ? 0 : LOOP_READ) | (pending ? LOOP_WRITE : 0));
    return 0;
}

/* Puts c on its worker's ready list: its replies from now on leave at the batch end. */
static void join_batch(struct conn *c)
{
    if (c->in_ready)
        return;
    c->in_ready = true;
    c->rnext = c->w->ready;
    c->w->ready = c;
    c->rmark = c->out.len;
    c->rcmds = 0;
}

/* Durability before acknowledgement: the WAL is flushed once for all the commands of
 * the batch (and fsynced under appendfsync always), sharing the flush with other
 * threads (group commit), before any reply leaves. A batch of reads flushes too when
 * another thread's write is applied but not yet flushed: a read may have seen it, and
 * a crash must not lose what a client was sent. (Redis gets this from its single
 * thread: every reply of a loop iteration leaves after its AOF write.) */
static void persist_batch(struct worker *w)
{
    bool dirty = false;
    for (struct conn *c = w->ready; c != NULL; c = c->rnext)
        dirty |= c->dirty;
    struct eng *e = w->srv->eng;
    struct cm_err err = {0};
    int rc = eng_persist(e, &err);
    if (!dirty)
        return; /* on a failure, the writes were refused; reads keep working */
    for (struct conn *c = w->ready; c != NULL; c = c->rnext) {
        if (!c->dirty)
            continue;
        c->dirty = false;
        if (rc == 0)
            continue;
        /* The batch's replies must not claim success: replace them with errors. (Redis
         * exits when an fsync fails under appendfsync always; eddy refuses the writes
         * instead and keeps serving: a full disk is the common cause, and the engine
         * flushes nothing more until RocksDB has recovered, so no later write is
         * acknowledged on top of the failed one. docs/STORAGE.md) */
        net_log_write_failure(w->srv, "Can't write the WAL (%s): failing %u commands",
                              err.msg, c->rcmds);
        c->out.len = c->rmark > c->opos ? c->rmark : c->opos;
        for (unsigned i = 0; i < c->rcmds; i++)
            resp_add_errorf(&c->out, "ERR write-ahead log write failed: %s", err.msg);
        c->flags |= CONN_CLOSE_AFTER_REPLY;
    }
}

/* Parses and executes every whole command in the query buffer. */
static void process_input(struct conn *c)
{
    struct server *s = c->w->srv;
    join_batch(c);
    while (!c->paused && c->wc.call == NULL && c->job == NULL &&
           !(c->flags & CONN_CLOSE_AFTER_REPLY) &&
           c->qpos < c->in.len) {
        /* Limits as they are now (CONFIG SET applies to connections already open),
         * and Redis's small ones for a client that must AUTH first. */
        c->req.max_bulk = NET_CFG(s->cfg, max_bulk);
        c->req.unauth = conn_needs_auth(c);
        int rc = resp_req_parse(&c->req, c->in.p + c->qpos, c->in.len - c->qpos);
        if (rc == RESP_MORE)
            break;
        if (rc == RESP_BAD) {
            resp_add_errorf(&c->out, "ERR %s", c->req.err);
            cm_log(CM_LOG_VERBOSE, "Protocol error (%s) from client %s", c->req.err, c->addr);
            c->flags |= CONN_CLOSE_AFTER_REPLY;
            break;
        }
        if (c->req.argc > 0) {
            cmd_execute(c, c->req.argc, c->req.argv, c->req.argvlen);
            c->rcmds++;
        }
        c->qpos += c->req.frame_len;
        resp_req_next(&c->req);
        if (c->out.len - c->opos > OUT_PAUSE_BYTES)
            c->paused = true;
        if (atomic_load(&s->shutting_down))
            break;
    }
    if (c->qpos == c->in.len) {
        c->in.len = c->qpos = 0;
        if (c->in.cap > 1024 * 1024)
            cm_buf_shrink(&c->in, 0);
    } else if (c->qpos > 0) {
        cm_buf_consume(&c->in, c->qpos);
        c->qpos = 0;
    }
}

/* Reads what the socket has. Returns -1 if c was closed. */
static int read_in(struct conn *c)
{
    struct server *s = c->w->srv;
    size_t want = READ_CHUNK;
    if (c->req.need > c->in.len - c->qpos) {
        /* A large bulk is pending: read it straight into place. */
        size_t missing = c->req.need - (c->in.len - c->qpos);
        want = missing > want ? missing : want;
    }
    if (cm_buf_reserve(&c->in, want) != 0) {
        cm_log(CM_LOG_WARNING, "Out of memory reading from client %s", c->addr);
        conn_close(c);
        return -1;
    }
    bool fresh = c->qpos == c->in.len; /* no partial frame buffered before this read */
    ssize_t n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c);
        return -1;
    }
    if (n < 0)
        return 0;
    c->in.len += (size_t)n;
    c->last_ms = cm_now_ms();
    if (fresh)
        c->frame_ms = c->last_ms;
    atomic_fetch_add_explicit(&s->net_in, (unsigned long long)n, memory_order_relaxed);
    /* The parser's arrays count too: 24 bytes per argument of the frame in progress,
     * more than the argument's own bytes when they are short. */
    size_t q = c->in.len - c->qpos + resp_req_mem(&c->req);
    if ((long long)q > NET_CFG(s->cfg, query_limit)) {
        cm_log(CM_LOG_WARNING, "Closing client %s that reached max query buffer length (%zu bytes)",
               c->addr, q);
        conn_close(c);
        return -1;
    }
    return 0;
}

static int check_output_limit(struct conn *c)
{
    long long limit = NET_CFG(c->w->srv->cfg, output_limit);
    if (limit > 0 && (long long)(c->out.len - c->opos) > limit) {
        cm_log(CM_LOG_WARNING,
               "Client id=%llu addr=%s closed for overcoming of output buffer limits.", c->id,
               c->addr);
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Executes buffered commands; the replies leave at the batch end. */
static void serve(struct conn *c)
{
    process_input(c);
    check_output_limit(c);
}

static void conn_io(void *ud, int events)
{
    struct conn *c = ud;
    if (atomic_load(&c->kill)) {
        conn_close(c);
        return;
    }
    if ((events & LOOP_READ) && !c->paused && read_in(c) < 0)
        return;
    serve(c);
}

void conn_serve(struct conn *c)
{
    serve(c);
}

/* Like Redis's beforeSleep: one RocksDB write for the writes of every connection
 * served since the last batch end, one WAL flush (group commit), then each
 * connection's replies in one write(2). A connection paused for its output goes on
 * with its pipeline once that output has left. */
void conn_batch_end(void *ud)
{
    struct worker *w = ud;
    /* A connection closed in its batch (its output limit, CLIENT KILL) left the
     * ready list, but not its staged writes and held stripes: apply and release them
     * even when no other connection is ready, or the stripes stay locked. */
    if (w->ready == NULL) {
        cmd_flush_writes(w);
        /* Not flushed here (no reply waits for them): the cron's WAL flush writes them
         * out; the count is released as if they were, or it stays until this worker's
         * next batch, on an idle worker for good. */
        eng_space_release(w->srv->eng, &w->space_held);
    }
    while (w->ready != NULL) {
        cmd_flush_writes(w);
        persist_batch(w);
        /* The batch's writes are in the OS now: the next free-space measure sees them. */
        eng_space_release(w->srv->eng, &w->space_held);
        struct conn *list = w->ready, *next;
        w->ready = NULL;
        for (struct conn *c = list; c != NULL; c = next) {
            next = c->rnext;
            c->in_ready = false;
            c->rnext = NULL;
            if (flush_out(c) < 0)
                continue;
            if (c->paused && c->out.len - c->opos <= OUT_PAUSE_BYTES) {
                c->paused = false;
                loop_io_set(c->io, LOOP_READ | (c->opos < c->out.len ? LOOP_WRITE : 0));
                if (c->qpos < c->in.len)
                    serve(c); /* back on the ready list: the next round sends it */
            }
        }
    }
}

/* A connection's call finished: append its reply and let the connection go on. */
static void conn_call_done(struct worker *w, struct wcall *wc)
{
    struct conn *c = (struct conn *)((char *)wc - offsetof(struct conn, wc));
    struct udf_call *call = wc->call;
    const struct cm_buf *r = udf_call_reply(call);
    wc->call = NULL;
    cm_buf_append(&c->out, r->p, r->len);
    /* Writes still in the worker's batch (wpend): the batch end marks the connection
     * dirty if they apply, and replaces the reply with the error if they fail (as a
     * SET's); marked dirty here, a failed batch also failed the WAL flush of the
     * connection's reads and closed it (a full disk, found by review). */
    if (udf_call_wrote(call) && !c->wpend)
        c->dirty = true;
    udf_call_free(call);
}

void conn_run_call(struct conn *c, struct udf_call *call)
{
    c->wc.call = call;
    c->wc.done = conn_call_done;
    worker_run_call(c->w, &c->wc);
    /* If it finished at once, the caller (process_input) goes on with the next
     * command; otherwise the connection waits and worker_resume_calls serves it. */
}

static bool start_remote(struct worker *w, struct wcall *wc);

/* Links a preempted call: the worker serves others and resumes it on its next loop
 * iterations. */
static void link_call(struct worker *w, struct wcall *wc)
{
    wc->linked = true;
    wc->prev = NULL;
    wc->next = w->calls;
    if (w->calls)
        w->calls->prev = wc;
    w->calls = wc;
    loop_async_send(w->resume);
}

static void unlink_call(struct worker *w, struct wcall *wc)
{
    wc->linked = false;
    if (wc->prev)
        wc->prev->next = wc->next;
    else
        w->calls = wc->next;
    if (wc->next)
        wc->next->prev = wc->prev;
}

#define HOT_STRIPE_MS 100 /* see struct server stripe_hot_until */

/* How a call on w commits (udf_commit_fn). A connection's call that ends inside its
 * command (cmd_execute) adds its writes to the worker's batch, holding their stripes
 * like any write command, so calls of one loop iteration share one RocksDB write
 * and WAL record with the other commands; its reply then waits for that write like
 * theirs. A call on a hot stripe applies the batch at once instead. Any other commit
 * first applies the pending writes and gives their stripes back (it takes stripes
 * itself, blocking), then writes on its own. */

static int worker_commit(void *ud, struct eng_txn *t, int how, struct cm_err *err);

/* Gives back the stripes a held attempt of wc took (the batch is empty: nothing else
 * ran on w meanwhile, so only they are released). */
static void unhold(struct worker *w, struct wcall *wc)
{
    if (!wc->holding)
        return;
    wc->holding = false;
    cmd_flush_writes(w);
}

/* worker_commit for a call that conflicted UDF_HOLD_AFTER times. UDF_COMMIT_HOLD:
 * applies the pending writes (giving every stripe back), then takes the stripes of
 * t's keys in order, waiting for them; they go back at UDF_COMMIT_UNHOLD, at the
 * held commit's end, or when the call returns (run_call). A commit whose keys are all
 * held (the batch is empty: nothing else ran on w meanwhile) writes under them at
 * once; one that read other keys as well commits as any other call (worker_commit). */
static int held_commit(struct wcall *wc, struct eng_txn *t, int how, struct cm_err *err)
{
    struct worker *w = wc->w;
    struct eng_lockset ls;
    eng_lockset_init(&ls);
    int rc = eng_txn_stripes(t, &ls);
    if (how == UDF_COMMIT_HOLD) {
        cmd_flush_writes(w);
        if (rc == 0)
            rc = cmd_hold(w, &ls);
        eng_lockset_deinit(&ls);
        if (rc != 0) {
            cmd_flush_writes(w); /* gives back what it took */
            return cm_err_set(err, CM_ENOMEM, "out of memory");
        }
        wc->holding = true;
        return 0;
    }
    bool held = rc == 0 && eng_batch_count(w->batch) == 0 && cmd_holds_all(w, &ls);
    eng_lockset_deinit(&ls);
    if (!held) {
        wc->holding = false;
        return worker_commit(wc, t, how, err);
    }
    eng_txn_set_held(t, true);
    rc = udf_commit_direct(t, how, err);
    eng_txn_set_held(t, false);
    if (how == UDF_COMMIT_END)
        unhold(w, wc);
    return rc;
}

static int worker_commit(void *ud, struct eng_txn *t, int how, struct cm_err *err)
{
    struct wcall *wc = ud;
    struct worker *w = wc->w;
    struct conn *c = wc->done == conn_call_done
                         ? (struct conn *)((char *)wc - offsetof(struct conn, wc))
                         : NULL;
    if (how == UDF_COMMIT_APPLY_PENDING) {
        cmd_flush_writes(w);
        return 0;
    }
    if (how == UDF_COMMIT_END && !eng_txn_must_validate(t))
        return eng_txn_commit(t, err); /* validates nothing, takes no stripe */
    if (how == UDF_COMMIT_UNHOLD) {
        unhold(w, wc);
        return 0;
    }
    if (how == UDF_COMMIT_HOLD || wc->holding)
        return held_commit(wc, t, how, err);
    if (c == NULL || w->exec != c || how == UDF_COMMIT_STEP ||
        (how == UDF_COMMIT_END && !eng_txn_joinable(t))) {
        cmd_flush_writes(w);
        return udf_commit_direct(t, how, err);
    }
    struct eng_lockset ls;
    eng_lockset_init(&ls);
    int rc = eng_txn_stripes(t, &ls) == 0 ? cmd_try_hold(w, &ls) : CM_ENOMEM;
    int64_t now = cm_now_ms();
    bool hot = false;
    for (unsigned i = 0; i < ls.n && rc != CM_ENOMEM; i++) {
        _Atomic int64_t *h = &w->srv->stripe_hot_until[ls.stripes[i]];
        if (rc == CM_EAGAIN)
            atomic_store_explicit(h, now + HOT_STRIPE_MS, memory_order_relaxed);
        hot = hot || atomic_load_explicit(h, memory_order_relaxed) > now;
    }
    eng_lockset_deinit(&ls);
    if (rc == CM_EAGAIN) {
        /* Another thread holds one of its keys: commit on its own, as outside a
         * command (waiting with none of this worker's stripes held). */
        cmd_flush_writes(w);
        return udf_commit_direct(t, how, err);
    }
    if (rc != 0)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    if (how == UDF_COMMIT_CHECK)
        return eng_txn_validate(t, err);
    rc = eng_txn_write_count(t) == 0 ? eng_txn_validate(t, err) /* nothing to write */
                                     : eng_txn_commit_into(t, w->batch, err);
    if (rc != 0 || hot) {
        /* A conflict (run again on a later loop iteration), or a hot key: apply now
         * and give the stripes back rather than keep them until the batch end, when
         * other threads wait for them. A failed write fails this call, and the
         * earlier commands of the batch reply their errors as at a batch end. */
        if (rc == 0)
            rc = cmd_apply_writes(w, err);
        else
            cmd_flush_writes(w);
        return rc;
    }
    if (eng_txn_write_count(t) > 0 && !c->wpend) { /* as a write command */
        c->wpend = true;
        c->wmark = c->out.len;
        c->wcmds = 0;
    }
    return rc;
}

/* udf_call_run, applying w's pending writes whenever the call asks for that. */
static int run_call(struct worker *w, struct wcall *wc)
{
    int st;
    while ((st = udf_call_run(wc->call)) == UDF_PENDING)
        cmd_flush_writes(w);
    unhold(w, wc); /* a held attempt failed or waits for another node */
    return st;
}

void worker_run_call(struct worker *w, struct wcall *wc)
{
    wc->w = w;
    udf_call_set_commit(wc->call, worker_commit, wc, w->batch);
    int st = run_call(w, wc);
    if (st == UDF_DONE) {
        wc->done(w, wc);
        return;
    }
    if (st == UDF_REMOTE && start_remote(w, wc))
        return; /* waits for another node; remote_done runs it again */
    link_call(w, wc);
}

/* Runs a call again after its remote access; a connection then goes on. */
static void remote_done(struct worker *w, void *ud, struct resp_value *reply, const char *error)
{
    struct wcall *wc = ud;
    wc->bus = NULL;
    udf_call_remote_done(wc->call, reply, error);
    bool is_conn = wc->done == conn_call_done;
    struct conn *c = is_conn ? (struct conn *)((char *)wc - offsetof(struct conn, wc)) : NULL;
    worker_run_call(w, wc);
    if (c != NULL && c->wc.call == NULL)
        serve(c);
}

/* Sends the command a call waits for to the node that owns its keys. On failure the
 * call gets the error as its reply and false is returned (run it again). */
static bool start_remote(struct worker *w, struct wcall *wc)
{
    const char *addr, *cmd;
    size_t len;
    struct cm_err err = {0};
    udf_call_remote(wc->call, &addr, &cmd, &len);
    /* The command may carry what the call read here, another thread's write among it:
     * that reaches the WAL first, as before a reply (persist_batch; a failure is
     * ignored like a read batch's). */
    if (eng_persist(w->srv->eng, &err) != 0)
        err = (struct cm_err){0};
    char pass[sizeof(w->srv->cfg->requirepass)];
    net_config_password(w->srv->cfg, pass, sizeof(pass));
    if (bus_call_raw(w, addr, BUS_LANE_KEYS, pass, cmd, len, remote_done, wc,
                     &wc->bus, &err) == 0)
        return true;
    udf_call_remote_done(wc->call, NULL, err.msg);
    return false;
}

void worker_resume_calls(struct worker *w)
{
    for (struct wcall *wc = w->calls, *next; wc != NULL; wc = next) {
        next = wc->next;
        int st = run_call(w, wc);
        if (st == UDF_YIELD)
            continue;
        if (st == UDF_REMOTE) {
            unlink_call(w, wc);
            if (!start_remote(w, wc))
                link_call(w, wc); /* at the head: `next` stays valid */
            continue;
        }
        unlink_call(w, wc);
        bool is_conn = wc->done == conn_call_done;
        wc->done(w, wc);
        /* A connection goes on with its pipeline; that may close it or start another
         * call (linked at the head, so `next` stays valid). */
        if (is_conn)
            serve((struct conn *)((char *)wc - offsetof(struct conn, wc)));
    }
    if (w->calls != NULL)
        loop_async_send(w->resume);
}

void conn_worker_cron(struct worker *w)
{
    bus_cron(w);
    long long timeout = NET_CFG(w->srv->cfg, timeout);
    int64_t now = cm_now_ms();
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (atomic_load(&c->kill)) {
            conn_close(c);
        } else if (timeout > 0 && now - c->last_ms > timeout * 1000 && c->opos == c->out.len) {
            cm_log(CM_LOG_VERBOSE, "Closing idle client %s", c->addr);
            conn_close(c);
        } else if (timeout > 0 && c->qpos < c->in.len && c->wc.call == NULL && c->job == NULL &&
                   now - c->frame_ms > timeout * 1000) {
            /* A command trickling in byte by byte (slowloris) is as idle as silence. */
            cm_log(CM_LOG_VERBOSE, "Closing client %s: a command took longer than timeout to arrive",
                   c->addr);
            conn_close(c);
        }
    }
}

void conn_describe(struct conn *c, struct cm_buf *out)
{
    int64_t now = cm_now_ms();
    cm_buf_appendf(out,
                   "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=N db=0 "
                   "sub=0 psub=0 ssub=0 multi=-1 qbuf=%zu qbuf-free=%zu obl=0 oll=0 omem=%zu "
                   "tot-mem=%zu events=r cmd=%s user=default redir=-1 resp=%d\n",
                   c->id, c->addr, c->laddr, c->fd, c->name ? c->name : "",
                   (long long)((now - c->ctime_ms) / 1000), (long long)((now - c->last_ms) / 1000),
                   c->in.len - c->qpos, c->in.cap - c->in.len, c->out.len - c->opos,
                   c->in.cap + c->out.cap + sizeof(*c), c->last_cmd[0] ? c->last_cmd : "NULL",
                   c->resp);
}
