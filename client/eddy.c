/* eddy.c - libeddy: blocking connections, pipelined commands and reply reading (eddy.h).
 *
 * Commands are encoded with resp_add_command and replies decoded with resp_reader
 * (net/resp.h); all socket I/O lives here, on a non-blocking socket with poll()
 * bounding every wait. Memory comes from common/'s allocator.
 */
#include "eddy.h"

#include "../common/common.h"
#include "../net/resp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Replies are the codec's resp_value handed out as they are, so the public struct
 * must be the same memory layout and the type enums the same numbers. */
#define SAME_FIELD(f)                                                                         \
    _Static_assert(offsetof(struct eddy_reply, f) == offsetof(struct resp_value, f) &&       \
                       sizeof(((struct eddy_reply *)0)->f) ==                                 \
                           sizeof(((struct resp_value *)0)->f),                               \
                   "eddy_reply." #f " differs from resp_value." #f)
#define SAME_TYPE(t)                                                                          \
    _Static_assert((int)EDDY_REPLY_##t == (int)RESP_T_##t, "EDDY_REPLY_" #t " differs")

_Static_assert(sizeof(struct eddy_reply) == sizeof(struct resp_value), "eddy_reply size");
SAME_FIELD(type);
SAME_FIELD(integer);
SAME_FIELD(dval);
SAME_FIELD(str);
SAME_FIELD(len);
SAME_FIELD(elements);
SAME_FIELD(element);
SAME_FIELD(vtype);
SAME_TYPE(STRING);
SAME_TYPE(ARRAY);
SAME_TYPE(INTEGER);
SAME_TYPE(NIL);
SAME_TYPE(STATUS);
SAME_TYPE(ERROR);
SAME_TYPE(DOUBLE);
SAME_TYPE(BOOL);
SAME_TYPE(MAP);
SAME_TYPE(SET);
SAME_TYPE(ATTR);
SAME_TYPE(PUSH);
SAME_TYPE(BIGNUM);
SAME_TYPE(VERB);

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define READ_CHUNK (64 * 1024)
#define MAX_VARARGS 256

struct eddy_ctx {
    int fd;
    int timeout_ms;          /* bound on each wait for the socket; <= 0 waits forever */
    int err;                 /* sticky failure; EDDY_OK while healthy */
    char errstr[EDDY_ERRLEN];
    struct cm_buf out;       /* encoded commands not yet written */
    size_t out_pos;          /* bytes of out already written */
    struct resp_reader rd;   /* bytes read and not yet taken as replies */
    char in[READ_CHUNK];
};

const char *eddy_strerror(int code)
{
    switch (code) {
    case EDDY_OK: return "success";
    case EDDY_ERR_IO: return "I/O error";
    case EDDY_ERR_EOF: return "connection closed by the server";
    case EDDY_ERR_PROTOCOL: return "protocol error";
    case EDDY_ERR_TIMEOUT: return "timeout";
    case EDDY_ERR_NOMEM: return "out of memory";
    case EDDY_ERR_INVAL: return "invalid argument";
    case EDDY_ERR_REPLY: return "error reply";
    default: return "unknown error";
    }
}

const char *eddy_version(void)
{
    return EDDY_VERSION;
}

void eddy_reply_free(struct eddy_reply *reply)
{
    resp_value_free((struct resp_value *)reply);
}

const char *eddy_reply_type_name(enum eddy_reply_type type)
{
    return resp_type_name((enum resp_type)type);
}

/* ---- Errors ----------------------------------------------------------------------- */

static void set_msg(char *buf, const char *fmt, va_list ap)
{
    if (buf != NULL)
        vsnprintf(buf, EDDY_ERRLEN, fmt, ap);
}

/* Records a failure that does not break the stream; returns code. */
static int note(eddy_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int note(eddy_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msg(c->errstr, fmt, ap);
    va_end(ap);
    return code;
}

/* Records a failure that makes the connection unusable; returns code. */
static int fail(eddy_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(eddy_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msg(c->errstr, fmt, ap);
    va_end(ap);
    c->err = code;
    return code;
}

static void errbuf_set(char *errbuf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errbuf_set(char *errbuf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msg(errbuf, fmt, ap);
    va_end(ap);
}

/* ---- Waiting ---------------------------------------------------------------------- */

/* Waits until fd has one of events, at most timeout_ms (<= 0: forever), restarting
 * after signals. Returns the ready events (> 0), EDDY_ERR_TIMEOUT or EDDY_ERR_IO. */
static int wait_fd(int fd, short events, int timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? cm_mono_us() + (int64_t)timeout_ms * 1000 : 0;
    for (;;) {
        int left = -1;
        if (deadline != 0) {
            int64_t us = deadline - cm_mono_us();
            if (us <= 0)
                return EDDY_ERR_TIMEOUT;
            left = (int)((us + 999) / 1000);
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left);
        if (n > 0)
            return p.revents;
        if (n == 0)
            return EDDY_ERR_TIMEOUT;
        if (errno != EINTR)
            return EDDY_ERR_IO;
    }
}

/* Turns a failed wait_fd into a sticky failure of c. */
static int fail_wait(eddy_ctx *c, int code)
{
    if (code == EDDY_ERR_TIMEOUT)
        return fail(c, code, "Timeout after %d ms", c->timeout_ms);
    return fail(c, code, "poll: %s", strerror(errno));
}

/* ---- Connecting ------------------------------------------------------------------- */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

/* Connects a new non-blocking socket to addr. Returns the fd, or -1 with errno set
 * (ETIMEDOUT when the timeout expired). */
static int open_socket(int family, const struct sockaddr *addr, socklen_t alen, int timeout_ms)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (set_nonblock(fd) < 0)
        goto close_fd;
    if (connect(fd, addr, alen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EINTR)
        goto close_fd;
    int ev = wait_fd(fd, POLLOUT, timeout_ms);
    if (ev < 0) {
        errno = ev == EDDY_ERR_TIMEOUT ? ETIMEDOUT : errno;
        goto close_fd;
    }
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        goto close_fd;
    if (soerr != 0) {
        errno = soerr;
        goto close_fd;
    }
    return fd;
close_fd:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Resolves host and connects to the first address that answers. Returns the fd,
 * or -1 with a message in errbuf. */
static int tcp_open(const char *host, int port, int timeout_ms, char *errbuf)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        errbuf_set(errbuf, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = open_socket(ai->ai_family, ai->ai_addr, ai->ai_addrlen, timeout_ms);
        if (fd < 0)
            errbuf_set(errbuf, "%s", strerror(errno));
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
    return fd;
}

static eddy_ctx *ctx_new(int fd, int timeout_ms)
{
    eddy_ctx *c = cm_malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    c->err = EDDY_OK;
    c->errstr[0] = '\0';
    cm_buf_init(&c->out);
    c->out_pos = 0;
    resp_reader_init(&c->rd);
    return c;
}

/* Sends AUTH password and checks for +OK. */
static int auth(eddy_ctx *c, const char *password)
{
    const char *argv[2] = {"AUTH", password};
    struct eddy_reply *r = eddy_command_argv(c, 2, argv, NULL);
    if (r == NULL)
        return c->err != EDDY_OK ? c->err : EDDY_ERR_NOMEM;
    int rc = EDDY_OK;
    if (r->type == EDDY_REPLY_ERROR)
        rc = note(c, EDDY_ERR_REPLY, "%s", r->str);
    else if (r->type != EDDY_REPLY_STATUS || strcmp(r->str, "OK") != 0)
        rc = note(c, EDDY_ERR_REPLY, "Unexpected reply to AUTH (%s)",
                  eddy_reply_type_name(r->type));
    eddy_reply_free(r);
    return rc;
}

/* Wraps a connected fd in a handle and authenticates. Consumes fd. */
static eddy_ctx *finish(int fd, int timeout_ms, const char *password, char *errbuf)
{
    eddy_ctx *c = ctx_new(fd, timeout_ms);
    if (c == NULL) {
        close(fd);
        errbuf_set(errbuf, "Out of memory");
        return NULL;
    }
    if (password != NULL && auth(c, password) != EDDY_OK) {
        errbuf_set(errbuf, "%s", c->errstr);
        eddy_free(c);
        return NULL;
    }
    return c;
}

eddy_ctx *eddy_connect(const char *host, int port, int timeout_ms, const char *password,
                       char *errbuf)
{
    if (host == NULL || port <= 0 || port > 65535) {
        errbuf_set(errbuf, "Invalid host or port");
        return NULL;
    }
    int fd = tcp_open(host, port, timeout_ms, errbuf);
    return fd < 0 ? NULL : finish(fd, timeout_ms, password, errbuf);
}

eddy_ctx *eddy_connect_unix(const char *path, int timeout_ms, const char *password,
                            char *errbuf)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path == NULL || strlen(path) >= sizeof(sa.sun_path)) {
        errbuf_set(errbuf, "Invalid socket path");
        return NULL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = open_socket(AF_UNIX, (const struct sockaddr *)&sa, sizeof(sa), timeout_ms);
    if (fd < 0) {
        errbuf_set(errbuf, "%s", strerror(errno));
        return NULL;
    }
    return finish(fd, timeout_ms, password, errbuf);
}

void eddy_free(eddy_ctx *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->fd >= 0)
        close(ctx->fd);
    cm_buf_deinit(&ctx->out);
    resp_reader_deinit(&ctx->rd);
    cm_free(ctx);
}

int eddy_set_timeout(eddy_ctx *ctx, int timeout_ms)
{
    if (ctx->err != EDDY_OK)
        return ctx->err;
    ctx->timeout_ms = timeout_ms;
    return EDDY_OK;
}

int eddy_fd(const eddy_ctx *ctx)
{
    return ctx->fd;
}

int eddy_err(const eddy_ctx *ctx)
{
    return ctx->err;
}

const char *eddy_errstr(const eddy_ctx *ctx)
{
    return ctx->errstr;
}

/* ---- Sending and receiving ---------------------------------------------------------- */

/* Reads what the socket has into the reader. If block, waits for at least one byte;
 * otherwise returns EDDY_OK when nothing is there. */
static int read_some(eddy_ctx *c, bool block)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in, sizeof(c->in));
        if (n > 0) {
            if (resp_reader_feed(&c->rd, c->in, (size_t)n) != 0)
                return fail(c, EDDY_ERR_NOMEM, "Out of memory");
            return EDDY_OK;
        }
        if (n == 0)
            return fail(c, EDDY_ERR_EOF, "Server closed the connection");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(c, EDDY_ERR_IO, "read: %s", strerror(errno));
        if (!block)
            return EDDY_OK;
        int ev = wait_fd(c->fd, POLLIN, c->timeout_ms);
        if (ev < 0)
            return fail_wait(c, ev);
    }
}

int eddy_append_argv(eddy_ctx *ctx, int argc, const char **argv, const size_t *argvlen)
{
    if (ctx->err != EDDY_OK)
        return ctx->err;
    if (argc < 1 || argv == NULL)
        return note(ctx, EDDY_ERR_INVAL, "A command needs at least one argument");
    size_t *lens = NULL;
    int rc = EDDY_OK;
    if (argvlen == NULL) {
        lens = cm_malloc((size_t)argc * sizeof(*lens));
        if (lens == NULL)
            return note(ctx, EDDY_ERR_NOMEM, "Out of memory");
        for (int i = 0; i < argc; i++) {
            if (argv[i] == NULL) {
                rc = note(ctx, EDDY_ERR_INVAL, "Argument %d is NULL", i);
                goto free_lens;
            }
            lens[i] = strlen(argv[i]);
        }
        argvlen = lens;
    }
    if (resp_add_command(&ctx->out, argc, argv, argvlen) != 0)
        rc = note(ctx, EDDY_ERR_NOMEM, "Out of memory");
free_lens:
    cm_free(lens);
    return rc;
}

int eddy_flush(eddy_ctx *ctx)
{
    if (ctx->err != EDDY_OK)
        return ctx->err;
    while (ctx->out_pos < ctx->out.len) {
        ssize_t n = send(ctx->fd, ctx->out.p + ctx->out_pos, ctx->out.len - ctx->out_pos,
                         MSG_NOSIGNAL);
        if (n > 0) {
            ctx->out_pos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(ctx, EDDY_ERR_IO, "write: %s", strerror(errno));
        /* While the server cannot take more, take its replies, so that neither side
         * waits for the other with full buffers. */
        int ev = wait_fd(ctx->fd, POLLIN | POLLOUT, ctx->timeout_ms);
        if (ev < 0)
            return fail_wait(ctx, ev);
        if ((ev & POLLIN) && !(ev & POLLOUT)) {
            int rc = read_some(ctx, false);
            if (rc != EDDY_OK)
                return rc;
        }
    }
    ctx->out.len = 0;
    ctx->out_pos = 0;
    cm_buf_shrink(&ctx->out, READ_CHUNK);
    return EDDY_OK;
}

int eddy_get_reply(eddy_ctx *ctx, struct eddy_reply **out)
{
    if (out == NULL)
        return note(ctx, EDDY_ERR_INVAL, "out is NULL");
    *out = NULL;
    int rc = eddy_flush(ctx);
    if (rc != EDDY_OK)
        return rc;
    for (;;) {
        struct resp_value *v = NULL;
        int got = resp_reader_get(&ctx->rd, &v);
        if (got == RESP_DONE && v->type == RESP_T_ATTR) {
            /* An attribute describes the reply that follows it; dropping it keeps
             * one reply per command. */
            resp_value_free(v);
            continue;
        }
        if (got == RESP_DONE) {
            *out = (struct eddy_reply *)v;
            return EDDY_OK;
        }
        if (got == RESP_BAD) {
            bool oom = strcmp(ctx->rd.err, "Out of memory") == 0;
            return fail(ctx, oom ? EDDY_ERR_NOMEM : EDDY_ERR_PROTOCOL, "%s", ctx->rd.err);
        }
        if ((rc = read_some(ctx, true)) != EDDY_OK)
            return rc;
    }
}

struct eddy_reply *eddy_command_argv(eddy_ctx *ctx, int argc, const char **argv,
                                     const size_t *argvlen)
{
    struct eddy_reply *r = NULL;
    if (eddy_append_argv(ctx, argc, argv, argvlen) != EDDY_OK)
        return NULL;
    eddy_get_reply(ctx, &r);
    return r;
}

struct eddy_reply *eddy_command(eddy_ctx *ctx, const char *arg, ...)
{
    const char *argv[MAX_VARARGS];
    size_t lens[MAX_VARARGS];
    int argc = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        if (argc == MAX_VARARGS) {
            va_end(ap);
            note(ctx, EDDY_ERR_INVAL, "More than %d arguments", MAX_VARARGS);
            return NULL;
        }
        argv[argc] = a;
        lens[argc++] = strlen(a);
    }
    va_end(ap);
    return eddy_command_argv(ctx, argc, argv, lens);
}

int eddy_hello(eddy_ctx *ctx, int proto)
{
    if (proto != 2 && proto != 3)
        return note(ctx, EDDY_ERR_INVAL, "Protocol version must be 2 or 3");
    struct eddy_reply *r = eddy_command(ctx, "HELLO", proto == 3 ? "3" : "2", (char *)NULL);
    if (r == NULL)
        return ctx->err != EDDY_OK ? ctx->err : EDDY_ERR_NOMEM;
    int rc = EDDY_OK;
    if (r->type == EDDY_REPLY_ERROR)
        rc = note(ctx, EDDY_ERR_REPLY, "%s", r->str);
    eddy_reply_free(r);
    return rc;
}

struct eddy_reply *eddy_mapreduce(eddy_ctx *ctx, const char *map, const char *reduce, int argc,
                                  const char **argv, const size_t *argvlen)
{
    if (argc < 0 || argc > 1 << 20 || map == NULL || reduce == NULL || (argc > 0 && argv == NULL)) {
        note(ctx, EDDY_ERR_INVAL, "eddy_mapreduce: bad arguments");
        return NULL;
    }
    const char **av = cm_malloc((size_t)(argc + 3) * sizeof(*av));
    size_t *al = cm_malloc((size_t)(argc + 3) * sizeof(*al));
    struct eddy_reply *r = NULL;
    if (av == NULL || al == NULL) {
        note(ctx, EDDY_ERR_NOMEM, "Out of memory");
        goto out;
    }
    av[0] = "MAPREDUCE";
    av[1] = map;
    av[2] = reduce;
    for (int i = 0; i < 3; i++)
        al[i] = strlen(av[i]);
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    r = eddy_command_argv(ctx, argc + 3, av, al);
out:
    cm_free(av);
    cm_free(al);
    return r;
}
