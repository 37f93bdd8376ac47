/* bus.c - the node bus: asynchronous node-to-node calls on a worker's event loop.
 * Each worker keeps one connection per (peer node, lane) and pipelines the calls on
 * it: commands go out in order, replies come back in order and each goes to its
 * callback on the same thread. A connection is opened without blocking when the first
 * call needs it (AUTH first when the cluster has a password) and again after it broke;
 * a break fails the calls in flight with an error. Two lanes keep short calls (the keys
 * of other nodes that functions read and write) from waiting behind long ones (a
 * MAPREDUCE's maps on another node). A call has no time limit (a map may run for
 * minutes); it ends with an error when the peer closes the connection or the node
 * shuts down. See docs/CLUSTER.md. */
#include "net_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A reply the link waits for, in order. */
struct bus_call {
    struct bus_call *next;
    bus_reply_fn fn;         /* NULL for the AUTH of a new connection */
    void *ud;
    bool cancelled;          /* its owner went away: drop the reply */
    int64_t t_ms;            /* when it was queued */
};

struct bus_link {
    struct bus_link *next;   /* the worker's links */
    struct worker *w;
    char host[256];
    int port, lane;
    char peer[300];          /* "host:port" for messages */
    int fd;                  /* -1: not connected */
    struct loop_io *io;
    bool connected;          /* the non-blocking connect completed */
    struct cm_buf out;       /* bytes not yet sent */
    size_t sent;
    struct resp_reader rd;
    struct bus_call *head, *tail;
};

static void link_reset(struct bus_link *l)
{
    loop_io_free(l->io);
    l->io = NULL;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    l->connected = false;
    l->out.len = 0;
    l->sent = 0;
    resp_reader_deinit(&l->rd);
    resp_reader_init(&l->rd); /* bulks up to RESP_MAX_BULK (512 MB), as any reply */
}

/* The connection broke: every call in flight fails with why; the next call reconnects. */
static void link_fail(struct bus_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void link_fail(struct bus_link *l, const char *fmt, ...)
{
    char why[256], msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof(msg), "%s: %s", l->peer, why);
    link_reset(l);
    struct bus_call *c = l->head;
    l->head = l->tail = NULL;
    while (c != NULL) { /* the callbacks may start calls on this link again */
        struct bus_call *next = c->next;
        if (c->fn != NULL && !c->cancelled)
            c->fn(l->w, c->ud, NULL, msg);
        cm_free(c);
        c = next;
    }
}

static void on_io(void *ud, int events)
{
    struct bus_link *l = ud;
    if (!l->connected) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            link_fail(l, "%s", strerror(soerr));
            return;
        }
        l->connected = true;
    }
    while (l->sent < l->out.len) {
        ssize_t n = send(l->fd, l->out.p + l->sent, l->out.len - l->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            link_fail(l, "%s", strerror(errno));
            return;
        }
        l->sent += (size_t)n;
    }
    if (l->sent == l->out.len) {
        l->out.len = l->sent = 0;
        loop_io_set(l->io, LOOP_READ);
    } else {
        loop_io_set(l->io, LOOP_READ | LOOP_WRITE);
    }
    if (!(events & LOOP_READ))
        return;
    for (;;) {
        char buf[65536];
        ssize_t n = recv(l->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            link_fail(l, "%s", n == 0 ? "connection closed by the node" : strerror(errno));
            return;
        }
        if (resp_reader_feed(&l->rd, buf, (size_t)n) != 0) {
            link_fail(l, "out of memory");
            return;
        }
        struct resp_value *v;
        int rc;
        while ((rc = resp_reader_get(&l->rd, &v)) == RESP_DONE) {
            struct bus_call *c = l->head;
            if (c == NULL) {
                resp_value_free(v);
                link_fail(l, "a reply nobody asked for");
                return;
            }
            l->head = c->next;
            if (l->head == NULL)
                l->tail = NULL;
            if (c->fn == NULL && v->type == RESP_T_ERROR) { /* the AUTH of this connection */
                char why[200];
                snprintf(why, sizeof(why), "AUTH failed: %s", v->str);
                resp_value_free(v);
                cm_free(c);
                link_fail(l, "%s", why);
                return;
            }
            if (c->fn != NULL && !c->cancelled)
                c->fn(l->w, c->ud, v, NULL); /* takes v */
            else
                resp_value_free(v);
            cm_free(c);
            if (l->fd < 0)
                return; /* a callback's new call failed the link: it starts again */
        }
        if (rc == RESP_BAD) {
            link_fail(l, "protocol error: %s", l->rd.err);
            return;
        }
    }
}

/* Opens the connection of l without waiting for it. Returns 0 or an error. */
static int link_connect(struct bus_link *l, const char *password, struct cm_err *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", l->port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    /* Hosts in the slot map are addresses, so this does not wait on DNS. */
    int gai = getaddrinfo(l->host, portstr, &hints, &res);
    if (gai != 0)
        return cm_err_set(err, CM_EIO, "%s: %s", l->peer, gai_strerror(gai));
    int rc = 0;
    l->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0 || (connect(l->fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS))
        rc = errno;
    freeaddrinfo(res);
    if (rc != 0) {
        link_reset(l);
        return cm_err_set(err, CM_EIO, "%s: %s", l->peer, strerror(rc));
    }
    int one = 1;
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(l->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    if ((l->io = loop_io_new(l->w->loop, l->fd, on_io, l)) == NULL) {
        link_reset(l);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    if (password != NULL && password[0] != '\0') {
        struct bus_call *a = cm_calloc(1, sizeof(*a));
        const char *av[] = {"AUTH", password};
        const size_t al[] = {4, strlen(password)};
        if (a == NULL || resp_add_command(&l->out, 2, av, al) != 0) {
            cm_free(a);
            link_reset(l);
            return cm_err_set(err, CM_ENOMEM, "out of memory");
        }
        a->next = l->head; /* nothing else is in flight on a new connection */
        l->head = a;
        if (l->tail == NULL)
            l->tail = a;
    }
    return 0;
}

/* The worker's link to host:port on lane, created if needed (not connected yet). */
static struct bus_link *link_get(struct worker *w, const char *host, int port, int lane)
{
    for (struct bus_link *l = w->bus; l != NULL; l = l->next)
        if (l->port == port && l->lane == lane && strcmp(l->host, host) == 0)
            return l;
    struct bus_link *l = cm_calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->w = w;
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->lane = lane;
    snprintf(l->peer, sizeof(l->peer), "%s:%d", host, port);
    l->fd = -1;
    cm_buf_init(&l->out);
    resp_reader_init(&l->rd); /* a peer announcing more is cut off (it grew to GBs) */
    l->next = w->bus;
    w->bus = l;
    return l;
}

int bus_call_raw(struct worker *w, const char *addr, int lane, const char *password,
                 const char *cmd, size_t len, bus_reply_fn fn, void *ud,
                 struct bus_call **handle, struct cm_err *err)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host))
        return cm_err_set(err, CM_EINVAL, "bad node address '%s'", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct bus_link *l = link_get(w, host, atoi(colon + 1), lane);
    struct bus_call *c = cm_calloc(1, sizeof(*c));
    if (l == NULL || c == NULL) {
        cm_free(c);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    int rc = l->fd < 0 ? link_connect(l, password, err) : 0;
    if (rc == 0 && cm_buf_append(&l->out, cmd, len) != 0)
        rc = cm_err_set(err, CM_ENOMEM, "out of memory");
    if (rc != 0) {
        cm_free(c);
        return rc;
    }
    c->fn = fn;
    c->ud = ud;
    c->t_ms = cm_now_ms();
    if (l->tail != NULL)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    loop_io_set(l->io, LOOP_READ | LOOP_WRITE);
    if (handle != NULL)
        *handle = c;
    return 0;
}

int bus_call(struct worker *w, const char *host, int port, int lane, const char *password,
             int argc, const char *const *argv, const size_t *argvlen, bus_reply_fn fn, void *ud,
             struct cm_err *err)
{
    struct cm_buf b;
    char addr[300];
    cm_buf_init(&b);
    snprintf(addr, sizeof(addr), "%s:%d", host, port);
    int rc = resp_add_command(&b, argc, argv, argvlen) != 0
                 ? cm_err_set(err, CM_ENOMEM, "out of memory")
                 : bus_call_raw(w, addr, lane, password, b.p, b.len, fn, ud, NULL, err);
    cm_buf_deinit(&b);
    return rc;
}

/* A short call (the keys lane: a function's access to a key of another node, a
 * function change for the coordinator) that has had no reply for this long fails with
 * its link: the peer is up but does not answer (a stopped process), and its callers
 * would wait for ever. Calls of the bulk lane (MAPREDUCE's maps, which may run for
 * minutes) have no such limit. EDDY_TEST_BUS_TIMEOUT_MS shortens it for tests. */
#define BUS_KEYS_TIMEOUT_MS 30000

static int64_t keys_timeout_ms(void)
{
    const char *e = getenv("EDDY_TEST_BUS_TIMEOUT_MS");
    return e != NULL && atoi(e) > 0 ? atoi(e) : BUS_KEYS_TIMEOUT_MS;
}

void bus_cron(struct worker *w)
{
    int64_t now = cm_now_ms(), limit = keys_timeout_ms();
    for (struct bus_link *l = w->bus; l != NULL; l = l->next)
        if (l->lane == BUS_LANE_KEYS && l->head != NULL && now - l->head->t_ms > limit)
            link_fail(l, "no reply within %lld ms", (long long)limit);
}

void bus_cancel(struct worker *w, struct bus_call *c)
{
    c->cancelled = true; /* freed when its reply arrives or the link breaks */
}

void bus_close_all(struct worker *w)
{
    while (w->bus != NULL) {
        struct bus_link *l = w->bus;
        w->bus = l->next;
        link_reset(l);
        while (l->head != NULL) { /* at shutdown: the callbacks do not run */
            struct bus_call *c = l->head;
            l->head = c->next;
            cm_free(c);
        }
        cm_buf_deinit(&l->out);
        resp_reader_deinit(&l->rd);
        cm_free(l);
    }
}
