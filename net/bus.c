/* bus.c - asynchronous node-to-node calls on a worker's event loop: connect without
 * blocking, AUTH when the cluster has a password, one command, one reply, then the
 * callback on the same thread. Used by MAPREDUCE in cluster mode to run the maps of
 * every other node while this thread keeps serving its clients (docs/CLUSTER.md).
 * A call has no time limit (a map may run for minutes); it ends with an error when the
 * peer closes the connection or the node shuts down. */
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

struct bus_call {
    struct bus_call *next;   /* the worker's list of calls in flight */
    struct worker *w;
    int fd;
    struct loop_io *io;
    bool connected;
    int replies;             /* replies still expected (AUTH, the command) */
    struct cm_buf out;       /* bytes not yet sent */
    size_t sent;
    struct resp_reader rd;
    bus_reply_fn fn;
    void *ud;
    char peer[300];
};

static void call_unlink(struct bus_call *b)
{
    for (struct bus_call **p = &b->w->bus; *p != NULL; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            return;
        }
}

static void call_free(struct bus_call *b)
{
    loop_io_free(b->io);
    if (b->fd >= 0)
        close(b->fd);
    cm_buf_deinit(&b->out);
    resp_reader_deinit(&b->rd);
    cm_free(b);
}

/* Ends a call: the callback gets the reply (owned by it) or an error message. */
static void finish(struct bus_call *b, struct resp_value *reply, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct bus_call *b, struct resp_value *reply, const char *fmt, ...)
{
    char msg[600] = "";
    if (fmt != NULL) {
        char why[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        snprintf(msg, sizeof(msg), "%s: %s", b->peer, why);
    }
    call_unlink(b);
    bus_reply_fn fn = b->fn;
    void *ud = b->ud;
    struct worker *w = b->w;
    call_free(b);
    fn(w, ud, reply, fmt != NULL ? msg : NULL);
}

static void on_io(void *ud, int events)
{
    struct bus_call *b = ud;
    if (!b->connected) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            finish(b, NULL, "%s", strerror(soerr));
            return;
        }
        b->connected = true;
    }
    while (b->sent < b->out.len) {
        ssize_t n = send(b->fd, b->out.p + b->sent, b->out.len - b->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            loop_io_set(b->io, LOOP_READ | LOOP_WRITE);
            return;
        }
        if (n < 0) {
            finish(b, NULL, "%s", strerror(errno));
            return;
        }
        b->sent += (size_t)n;
    }
    loop_io_set(b->io, LOOP_READ);
    if (!(events & LOOP_READ))
        return;
    for (;;) {
        char buf[65536];
        ssize_t n = recv(b->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            finish(b, NULL, "%s", n == 0 ? "connection closed by the node" : strerror(errno));
            return;
        }
        if (resp_reader_feed(&b->rd, buf, (size_t)n) != 0) {
            finish(b, NULL, "out of memory");
            return;
        }
        struct resp_value *v;
        int rc;
        while ((rc = resp_reader_get(&b->rd, &v)) == RESP_DONE) {
            if (--b->replies > 0) { /* the AUTH reply */
                if (v->type == RESP_T_ERROR) {
                    finish(b, NULL, "AUTH failed: %s", v->str);
                    resp_value_free(v);
                    return;
                }
                resp_value_free(v);
                continue;
            }
            finish(b, v, NULL);
            return;
        }
        if (rc == RESP_BAD) {
            finish(b, NULL, "protocol error: %s", b->rd.err);
            return;
        }
    }
}

/* A new call to host:port, with the AUTH command queued if there is a password. */
static struct bus_call *call_new(struct worker *w, const char *host, int port,
                                 const char *password, bus_reply_fn fn, void *ud)
{
    struct bus_call *b = cm_calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->w = w;
    b->fd = -1;
    b->fn = fn;
    b->ud = ud;
    snprintf(b->peer, sizeof(b->peer), "%s:%d", host, port);
    cm_buf_init(&b->out);
    resp_reader_init(&b->rd);
    b->rd.max_bulk = LLONG_MAX; /* partial results of any size */
    b->replies = 1;
    if (password != NULL && password[0] != '\0') {
        const char *av[] = {"AUTH", password};
        const size_t al[] = {4, strlen(password)};
        b->replies = 2;
        if (resp_add_command(&b->out, 2, av, al) != 0) {
            call_free(b);
            return NULL;
        }
    }
    return b;
}

static int call_start(struct bus_call *b, const char *host, int port, struct cm_err *err);

int bus_call(struct worker *w, const char *host, int port, const char *password, int argc,
             const char *const *argv, const size_t *argvlen, bus_reply_fn fn, void *ud,
             struct cm_err *err)
{
    struct bus_call *b = call_new(w, host, port, password, fn, ud);
    if (b == NULL || resp_add_command(&b->out, argc, argv, argvlen) != 0) {
        if (b != NULL)
            call_free(b);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    return call_start(b, host, port, err);
}

int bus_call_raw(struct worker *w, const char *addr, const char *password, const char *cmd,
                 size_t len, bus_reply_fn fn, void *ud, struct bus_call **handle,
                 struct cm_err *err)
{
    char host[300];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host))
        return cm_err_set(err, CM_EINVAL, "bad node address '%s'", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int port = atoi(colon + 1);
    struct bus_call *b = call_new(w, host, port, password, fn, ud);
    if (b == NULL || cm_buf_append(&b->out, cmd, len) != 0) {
        if (b != NULL)
            call_free(b);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    int rc = call_start(b, host, port, err);
    if (rc == 0 && handle != NULL)
        *handle = b;
    return rc;
}

void bus_cancel(struct worker *w, struct bus_call *b)
{
    call_unlink(b);
    call_free(b);
}

/* Connects (without waiting) and puts the call on the worker's loop; frees it on
 * failure. */
static int call_start(struct bus_call *b, const char *host, int port, struct cm_err *err)
{
    struct worker *w = b->w;
    int rc = 0;
    /* Hosts in the slot map are addresses, so this does not wait on DNS. */
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        call_free(b);
        return cm_err_set(err, CM_EIO, "%s:%d: %s", host, port, gai_strerror(gai));
    }
    b->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (b->fd >= 0 && connect(b->fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS)
        rc = errno;
    else if (b->fd < 0)
        rc = errno;
    freeaddrinfo(res);
    if (rc != 0) {
        call_free(b);
        return cm_err_set(err, CM_EIO, "%s:%d: %s", host, port, strerror(rc));
    }
    int one = 1;
    setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(b->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    b->io = loop_io_new(w->loop, b->fd, on_io, b);
    if (b->io == NULL) {
        call_free(b);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    loop_io_set(b->io, LOOP_WRITE);
    b->next = w->bus;
    w->bus = b;
    return 0;
}

void bus_close_all(struct worker *w)
{
    while (w->bus != NULL) {
        struct bus_call *b = w->bus;
        w->bus = b->next;
        call_free(b); /* at shutdown: the callbacks will not run */
    }
}
