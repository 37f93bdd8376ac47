/* server.c - eddyd's process: opens the engine, listens, runs one libev loop per I/O
 * thread (worker 0 is the main thread and also accepts and runs the background
 * tasks), hands each accepted connection to a worker, and shuts down cleanly. */
#include "net_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct server *g_server;

static void raise_fd_limit(long long maxclients)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)maxclients + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = want;
    if (rl.rlim_max < want)
        rl.rlim_max = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        cm_log(CM_LOG_WARNING,
               "Could not raise the open files limit to %llu (now %llu, was %llu): "
               "fewer than maxclients clients can connect",
               (unsigned long long)want, (unsigned long long)rl.rlim_cur, (unsigned long long)old);
    }
}

static int listen_on(struct server *s, const char *addr, int port)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    int rc = getaddrinfo(addr, portstr, &hints, &res);
    if (rc != 0) {
        cm_log(CM_LOG_WARNING, "Cannot resolve bind address %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        cm_log(CM_LOG_WARNING, "Could not create server TCP listening socket %s:%d: %s", addr,
               port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    s->listen_fds[s->nlisten++] = fd;
    return 0;
}

/* ---- Workers -------------------------------------------------------------------------- */

static void run_tasks(struct worker *w);

static void worker_wake(void *ud)
{
    struct worker *w = ud;
    pthread_mutex_lock(&w->inbox_lock);
    int n = w->inbox_len;
    int fds[256];
    int take = n < 256 ? n : 256;
    if (take > 0) {
        memcpy(fds, w->inbox, (size_t)take * sizeof(int));
        memmove(w->inbox, w->inbox + take, (size_t)(n - take) * sizeof(int));
    }
    w->inbox_len = n - take;
    pthread_mutex_unlock(&w->inbox_lock);
    for (int i = 0; i < take; i++) {
        conn_accept(w, fds[i]);
        atomic_fetch_sub(&w->srv->handing, 1); /* now in nclients (or closed) */
    }
    if (n > take)
        loop_async_send(w->wake);
    run_tasks(w);
    if (atomic_load(&w->srv->shutting_down)) {
        while (w->conns != NULL)
            conn_close(w->conns);
        loop_stop(w->loop);
        return;
    }
    /* Kill requests from other threads (CLIENT KILL). */
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (atomic_load(&c->kill))
            conn_close(c);
    }
}

void server_apply_udf_limits(struct server *s)
{
    struct udf_limits l;
    udf_get_limits(s->udf, &l);
    l.time_ms = NET_CFG(s->cfg, udf_time_limit);
    l.memory = (size_t)NET_CFG(s->cfg, udf_memory_limit);
    udf_set_limits(s->udf, &l);
}

void server_wake_worker(struct worker *w)
{
    loop_async_send(w->wake);
}

static void worker_resume(void *ud)
{
    worker_resume_calls(ud);
}

int server_post(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg)
{
    struct task *t = cm_malloc(sizeof(*t));
    if (t == NULL)
        return CM_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&w->inbox_lock);
    *w->tasks_tail = t;
    w->tasks_tail = &t->next;
    pthread_mutex_unlock(&w->inbox_lock);
    loop_async_send(w->wake);
    return 0;
}

static void run_tasks(struct worker *w)
{
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
}

static void worker_cron(void *ud)
{
    conn_worker_cron(ud);
}

static void *worker_main(void *ud)
{
    struct worker *w = ud;
    loop_run(w->loop);
    return NULL;
}

static struct worker *worker_new(struct server *s, int id)
{
    struct worker *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->id = id;
    w->srv = s;
    w->tasks_tail = &w->tasks;
    eng_lockset_init(&w->held);
    w->loop = loop_new(id == 0);
    pthread_mutex_init(&w->inbox_lock, NULL);
    if (w->loop == NULL)
        goto fail;
    w->wake = loop_async_new(w->loop, worker_wake, w);
    w->cron = loop_timer_new(w->loop, 1.0, 1.0, worker_cron, w);
    w->batch = eng_batch_new(s->eng);
    w->resume = loop_async_new(w->loop, worker_resume, w);
    loop_set_batch_end(w->loop, conn_batch_end, w);
    struct cm_err err = {0};
    w->vm = udf_vm_new(s->udf, &err);
    if (w->wake == NULL || w->cron == NULL || w->batch == NULL || w->resume == NULL ||
        w->vm == NULL)
        goto fail;
    return w;
fail:
    udf_vm_free(w->vm);
    loop_async_free(w->resume);
    loop_async_free(w->wake);
    loop_timer_free(w->cron);
    eng_batch_free(w->batch);
    loop_free(w->loop);
    cm_free(w);
    return NULL;
}

static void worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    conn_batch_end(w); /* writes and replies of the last iteration */
    while (w->conns != NULL)
        conn_close(w->conns);
    bus_close_all(w);
    /* Calls still waiting here belong to MAPREDUCE partitions: abort them now, while
     * the engine is open (their transactions hold snapshots and iterators). */
    for (struct wcall *wc = w->calls, *next; wc != NULL; wc = next) {
        next = wc->next;
        udf_call_free(wc->call);
        wc->call = NULL;
        wc->linked = false;
    }
    w->calls = NULL;
    while (w->tasks != NULL) { /* posted work that will never run */
        struct task *t = w->tasks;
        w->tasks = t->next;
        cm_free(t);
    }
    for (int i = 0; i < w->inbox_len; i++)
        close(w->inbox[i]);
    cm_free(w->inbox);
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

static void hand_to_worker(struct worker *w, int fd)
{
    pthread_mutex_lock(&w->inbox_lock);
    if (w->inbox_len == w->inbox_cap) {
        int cap = w->inbox_cap ? w->inbox_cap * 2 : 64;
        int *p = cm_realloc(w->inbox, (size_t)cap * sizeof(int));
        if (p == NULL) {
            pthread_mutex_unlock(&w->inbox_lock);
            close(fd);
            atomic_fetch_sub(&w->srv->handing, 1);
            return;
        }
        w->inbox = p;
        w->inbox_cap = cap;
    }
    w->inbox[w->inbox_len++] = fd;
    pthread_mutex_unlock(&w->inbox_lock);
    loop_async_send(w->wake);
}

/* ---- Accepting ------------------------------------------------------------------------------ */

/* A descriptor kept open so that, out of descriptors (EMFILE, ENFILE), the accept loop
 * can still take a waiting connection off the listen queue and refuse it. Without it
 * the connection stayed queued, the level-triggered listen socket woke the loop at once
 * again: one core at 100% and a warning per wake-up (hundreds of thousands a second),
 * and the client waited forever on a connection whose connect() had succeeded. */
static int spare_fd = -1;

static void spare_open(void)
{
    if (spare_fd < 0)
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void refuse(struct server *s, int fd)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";
    /* Counted before the client can see the refusal, so INFO after it does. */
    atomic_fetch_add(&s->conns_rejected, 1);
    ssize_t w = write(fd, msg, sizeof(msg) - 1);
    (void)w;
    close(fd);
}

static void accept_cb(void *ud, int events)
{
    int lfd = (int)(intptr_t)ud;
    struct server *s = g_server;
    static int64_t last_warn_ms;
    for (int i = 0; i < 1000; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
            int e = errno;
            int64_t now = cm_mono_us() / 1000;
            if (last_warn_ms == 0 || now - last_warn_ms >= 1000) {
                last_warn_ms = now;
                cm_log(CM_LOG_WARNING,
                       "Accepting client connection: %s: refusing clients (raise the open "
                       "files limit or lower maxclients)",
                       strerror(e));
            }
            if (spare_fd < 0)
                return; /* nothing to free: retried on the next wake-up */
            close(spare_fd);
            spare_fd = -1;
            fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                atomic_fetch_add(&s->conns_received, 1);
                refuse(s, fd);
            }
            spare_open();
            if (fd < 0)
                return;
            continue;
        }
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                cm_log(CM_LOG_WARNING, "Accepting client connection: %s", strerror(errno));
            return;
        }
        atomic_fetch_add(&s->conns_received, 1);
        /* Connections handed to other workers count: a burst must not get past
         * maxclients before those workers take them. */
        if (atomic_load(&s->nclients) + atomic_load(&s->handing) >= NET_CFG(s->cfg, maxclients)) {
            refuse(s, fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct worker *w = s->workers[s->next_worker++ % (unsigned)s->nworkers];
        if (w->id == 0) {
            conn_accept(w, fd);
        } else {
            atomic_fetch_add(&s->handing, 1);
            hand_to_worker(w, fd);
        }
    }
}

/* ---- Background tasks (worker 0) --------------------------------------------------------------- */

/* Measures the free space of the data directory's file system (statvfs: a system call,
 * no I/O) and gives it to the engine with min-free-disk (eng_set_space), logging when
 * it goes below or back above. Each cron tick, so that a fast writer does not run far
 * past the threshold between checks. */
static void disk_check(struct server *s)
{
    static bool low;
    struct statvfs v;
    if (statvfs(s->cfg->dir, &v) != 0) {
        /* Not measured: nothing is refused (a count of writes against an old measure
         * would grow until it refused them all). */
        eng_set_space(s->eng, -1, 0);
        return;
    }
    long long avail = (long long)v.f_bavail * (long long)v.f_frsize;
    long long size = (long long)v.f_blocks * (long long)v.f_frsize;
    long long opt = NET_CFG(s->cfg, min_free_disk);
    long long min = opt < 0 ? (long long)((double)size * (double)-opt / 10000.0) : opt;
    eng_set_space(s->eng, avail, min);
    bool now = eng_space_low(s->eng, NULL, NULL);
    if (now == low)
        return;
    low = now;
    if (now)
        cm_log(CM_LOG_WARNING, "Disk space low: %.1f MB free in %s, below min-free-disk "
                               "(%.1f MB): commands that add data are refused",
               (double)avail / (1 << 20), s->cfg->dir, (double)min / (1 << 20));
    else
        cm_log(CM_LOG_WARNING, "Disk space back above min-free-disk (%.1f MB free): commands "
                               "that add data run again", (double)avail / (1 << 20));
}

static void server_cron(void *ud)
{
    struct server *s = ud;
    static int64_t last_sync_us, last_bg_check_us;
    static unsigned long long bg_errors;
    static bool failing; /* logged when it starts and when it ends, not each tick */
    int64_t now_us = cm_mono_us();
    struct cm_err err = {0};
    disk_check(s);
    /* Active expiry: delete keys whose TTL passed, in slices of at most ~20 ms. */
    long n;
    do {
        n = eng_expire_cycle(s->eng, cm_now_ms(), 200, &err);
        if (n < 0) {
            net_log_write_failure(s, "Active expire: %s", err.msg);
            break;
        }
    } while (n == 200 && cm_mono_us() - now_us < 20000);
    if (eng_get_fsync(s->eng) == ENG_FSYNC_EVERYSEC && now_us - last_sync_us >= 1000000) {
        last_sync_us = now_us;
        if (eng_dirty(s->eng))
            (void)eng_sync_all(s->eng, &err); /* a failure: see eng_failing below */
    }
    if (now_us - last_bg_check_us >= 1000000) {
        last_bg_check_us = now_us;
        unsigned long long nbg = eng_background_errors(s->eng);
        if (nbg > bg_errors)
            cm_log(CM_LOG_WARNING, "Storage: %llu RocksDB background flush or compaction "
                                   "error(s) (%llu in all); RocksDB slows writes down or "
                                   "refuses them while its flushes or compactions fail",
                   nbg - bg_errors, nbg);
        bg_errors = nbg;
    }
    /* Writes nobody acknowledged (active expiry) still leave the WAL buffer. */
    if (eng_unflushed(s->eng))
        (void)eng_flush_all_wal(s->eng, &err);
    char why[200];
    bool now = eng_failing(s->eng, why, sizeof(why));
    if (now != failing) {
        failing = now;
        if (now)
            cm_log(CM_LOG_WARNING, "Storage writes are failing: %s (logged again once a write "
                                   "works)", why);
        else
            cm_log(CM_LOG_WARNING, "Storage writes work again");
    }
}

static void on_signal(void *ud)
{
    cm_log(CM_LOG_WARNING, "Received shutdown signal, scheduling shutdown...");
    server_shutdown(ud, 0);
}

void server_shutdown(struct server *s, int exit_code)
{
    if (atomic_exchange(&s->shutting_down, true))
        return;
    s->exit_code = exit_code;
    for (int i = 0; i < s->nworkers; i++)
        loop_async_send(s->workers[i]->wake);
}

int net_server_run(struct net_config *cfg)
{
    struct server srv;
    struct cm_err err = {0};
    int rc = 1;
    memset(&srv, 0, sizeof(srv));
    g_server = &srv;
    srv.cfg = cfg;
    srv.start_us = cm_now_us();
    pthread_mutex_init(&srv.clients_lock, NULL);
    atomic_store(&srv.next_client_id, 1);

    cm_log_set_level(cfg->loglevel);
    if (cfg->logfile[0] != '\0') {
        int fd = open(cfg->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "Can't open the log file %s: %s\n", cfg->logfile, strerror(errno));
            return 1;
        }
        cm_log_set_file(fd);
    }
    signal(SIGPIPE, SIG_IGN);
    cm_log(CM_LOG_NOTICE, "eddy %s starting, pid=%d, port=%d, dir=%s", EDDY_VERSION,
           (int)getpid(), cfg->port, cfg->dir);
    raise_fd_limit(cfg->maxclients);

    struct eng_options eo;
    eng_options_init(&eo);
    eo.dir = cfg->dir;
    eo.fsync = (enum eng_fsync)cfg->appendfsync;
    eo.block_cache_bytes = (size_t)cfg->block_cache;
    eo.memtable_bytes = (size_t)cfg->memtable;
    eo.value_cache_bytes = (size_t)cfg->value_cache;
    srv.eng = eng_open(&eo, &err);
    if (srv.eng == NULL) {
        cm_log(CM_LOG_WARNING, "Fatal: %s", err.msg);
        return 1;
    }
    cm_log(CM_LOG_NOTICE, "Store opened at %s (appendfsync %s)", cfg->dir,
           cfg->appendfsync == ENG_FSYNC_ALWAYS     ? "always"
           : cfg->appendfsync == ENG_FSYNC_EVERYSEC ? "everysec"
                                                    : "no");

    srv.udf = udf_new(srv.eng, cmd_exec_from_script, &err);
    if (srv.udf == NULL) {
        cm_log(CM_LOG_WARNING, "Fatal: %s", err.msg);
        goto out;
    }
    server_apply_udf_limits(&srv);
    if (net_cluster_open(&srv, &err) != 0) {
        cm_log(CM_LOG_WARNING, "Fatal: cluster state: %s", err.msg);
        goto out;
    }

    srv.nworkers = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv.nworkers < 1)
        srv.nworkers = 1;
    srv.workers = cm_calloc((size_t)srv.nworkers, sizeof(*srv.workers));
    if (srv.workers == NULL)
        goto out;
    for (int i = 0; i < srv.nworkers; i++)
        if ((srv.workers[i] = worker_new(&srv, i)) == NULL) {
            cm_log(CM_LOG_WARNING, "Fatal: cannot create I/O thread %d", i);
            goto out;
        }

    char binds[sizeof(cfg->bind)];
    snprintf(binds, sizeof(binds), "%s", cfg->bind);
    for (char *save = NULL, *a = strtok_r(binds, " ,", &save); a != NULL && srv.nlisten < 8;
         a = strtok_r(NULL, " ,", &save)) {
        bool optional = a[0] == '-'; /* "-::1": skip it if the host has no such address */
        if (optional)
            a++;
        if (listen_on(&srv, a, cfg->port) != 0) {
            if (optional)
                continue;
            goto out;
        }
        cm_log(CM_LOG_NOTICE, "Listening on %s:%d", a, cfg->port);
    }
    if (srv.nlisten == 0) {
        cm_log(CM_LOG_WARNING, "Fatal: no address to listen on");
        goto out;
    }
    spare_open();
    struct loop *main_loop = srv.workers[0]->loop;
    struct loop_io *accepts[8];
    for (int i = 0; i < srv.nlisten; i++) {
        accepts[i] = loop_io_new(main_loop, srv.listen_fds[i], accept_cb,
                                 (void *)(intptr_t)srv.listen_fds[i]);
        loop_io_set(accepts[i], LOOP_READ);
    }
    disk_check(&srv);
    srv.cron = loop_timer_new(main_loop, 1.0 / cfg->hz, 1.0 / cfg->hz, server_cron, &srv);
    loop_on_signal(main_loop, SIGTERM, on_signal, &srv);
    loop_on_signal(main_loop, SIGINT, on_signal, &srv);
    for (int i = 1; i < srv.nworkers; i++)
        pthread_create(&srv.workers[i]->thread, NULL, worker_main, srv.workers[i]);
    cm_log(CM_LOG_NOTICE, "Ready to accept connections (%d I/O threads)", srv.nworkers);

    loop_run(main_loop);

    cm_log(CM_LOG_WARNING, "User requested shutdown...");
    for (int i = 1; i < srv.nworkers; i++)
        pthread_join(srv.workers[i]->thread, NULL);
    for (int i = 0; i < srv.nlisten; i++) {
        loop_io_free(accepts[i]);
        close(srv.listen_fds[i]);
    }
    srv.nlisten = 0;
    if (spare_fd >= 0)
        close(spare_fd);
    spare_fd = -1;
    loop_timer_free(srv.cron);
    rc = srv.exit_code;
out:
    for (int i = 0; i < srv.nlisten; i++)
        close(srv.listen_fds[i]);
    if (srv.workers != NULL)
        for (int i = srv.nworkers - 1; i >= 0; i--)
            worker_free(srv.workers[i]);
    cm_free(srv.workers);
    net_cluster_close(&srv);
    udf_free(srv.udf);
    eng_close(srv.eng); /* syncs the WAL */
    cm_log(CM_LOG_WARNING, "eddy is now ready to exit, bye bye...");
    pthread_mutex_destroy(&srv.clients_lock);
    g_server = NULL;
    return rc;
}
