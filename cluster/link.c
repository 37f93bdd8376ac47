/* link.c - a blocking, one-shot node-to-node call over the RESP codec: connect with a
 * timeout, optional AUTH, one command, one reply. Used for the rare cluster-wide
 * operations of this milestone (FUNCTION LOAD/DELETE/FLUSH/RESTORE); the pipelined,
 * reconnecting node bus comes later (docs/CLUSTER.md). */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Waits until fd is ready for events; 0, or CM_EIO with err set. */
static int wait_fd(int fd, short events, int timeout_ms, const char *peer, struct cm_err *err)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do
        n = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return cm_err_set(err, CM_EIO, "%s: timeout", peer);
    if (n < 0)
        return cm_err_set(err, CM_EIO, "%s: %s", peer, strerror(errno));
    return 0;
}

static int connect_to(const char *host, int port, int timeout_ms, const char *peer,
                      struct cm_err *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return cm_err_set(err, CM_EIO, "%s: %s", peer, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = cm_err_set(err, CM_EIO, "%s: %s", peer, strerror(errno));
        goto out;
    }
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        int soerr = errno;
        socklen_t sl = sizeof(soerr);
        if (soerr == EINPROGRESS &&
            (rc = wait_fd(fd, POLLOUT, timeout_ms, peer, err)) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            goto out;
        if (rc == 0)
            rc = cm_err_set(err, CM_EIO, "%s: %s", peer, strerror(soerr));
        close(fd);
        fd = -1;
    }
out:
    freeaddrinfo(res);
    return fd >= 0 ? fd : rc;
}

/* What is left of timeout_ms since start_ms (at least 1 ms; 0: no timeout). A
 * command's timeout covers all of it, not each wait: a peer sending a byte now and then
 * held a node in a map push for ever. */
static int left_ms(int timeout_ms, int64_t start_ms)
{
    if (timeout_ms <= 0)
        return 0;
    int64_t left = timeout_ms - (cm_mono_us() / 1000 - start_ms);
    return left > 0 ? (int)left : 1;
}

static int send_all(int fd, const char *p, size_t n, int timeout_ms, const char *peer,
                    struct cm_err *err)
{
    int64_t start = cm_mono_us() / 1000;
    while (n > 0) {
        if (timeout_ms > 0 && cm_mono_us() / 1000 - start >= timeout_ms)
            return cm_err_set(err, CM_EIO, "%s: timeout", peer);
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, left_ms(timeout_ms, start), peer, err) != 0)
                return CM_EIO;
        } else {
            return cm_err_set(err, CM_EIO, "%s: %s", peer, strerror(errno));
        }
    }
    return 0;
}

static int read_reply(int fd, struct resp_reader *rd, int timeout_ms, const char *peer,
                      struct resp_value **out, struct cm_err *err)
{
    char buf[16384];
    int64_t start = cm_mono_us() / 1000;
    for (;;) {
        if (timeout_ms > 0 && cm_mono_us() / 1000 - start >= timeout_ms)
            return cm_err_set(err, CM_EIO, "%s: timeout", peer);
        int st = resp_reader_get(rd, out);
        if (st == RESP_DONE)
            return 0;
        if (st == RESP_BAD)
            return cm_err_set(err, CM_EPROTO, "%s: protocol error: %s", peer, rd->err);
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (resp_reader_feed(rd, buf, (size_t)n) != 0)
                return cm_err_set(err, CM_ENOMEM, "out of memory");
        } else if (n == 0) {
            return cm_err_set(err, CM_EIO, "%s: connection closed", peer);
        } else if (errno == EAGAIN || errno == EINTR) {
            if (wait_fd(fd, POLLIN, left_ms(timeout_ms, start), peer, err) != 0)
                return CM_EIO;
        } else {
            return cm_err_set(err, CM_EIO, "%s: %s", peer, strerror(errno));
        }
    }
}

struct clu_link {
    int fd;
    int timeout_ms;
    char peer[CLU_HOST_LEN + 16];
    struct resp_reader rd;
    struct cm_buf out;
};

struct clu_link *clu_link_open(const char *host, int port, const char *password, int timeout_ms,
                               struct cm_err *err)
{
    struct clu_link *l = cm_calloc(1, sizeof(*l));
    if (l == NULL) {
        cm_err_set(err, CM_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(l->peer, sizeof(l->peer), "%s:%d", host, port);
    l->timeout_ms = timeout_ms;
    resp_reader_init(&l->rd);
    cm_buf_init(&l->out);
    l->fd = connect_to(host, port, timeout_ms, l->peer, err);
    if (l->fd < 0) {
        clu_link_close(l);
        return NULL;
    }
    if (password != NULL && password[0] != '\0') {
        const char *av[] = {"AUTH", password};
        const size_t al[] = {4, strlen(password)};
        struct resp_value *r = NULL;
        int rc = clu_link_cmd(l, 2, av, al, &r, err);
        if (rc == 0 && r->type == RESP_T_ERROR)
            rc = cm_err_set(err, CM_EIO, "%s: AUTH failed: %s", l->peer, r->str);
        resp_value_free(r);
        if (rc != 0) {
            clu_link_close(l);
            return NULL;
        }
    }
    return l;
}

int clu_link_cmd(struct clu_link *l, int argc, const char *const *argv, const size_t *argvlen,
                 struct resp_value **reply, struct cm_err *err)
{
    *reply = NULL;
    l->out.len = 0;
    if (resp_add_command(&l->out, argc, argv, argvlen) != 0)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    int rc = send_all(l->fd, l->out.p, l->out.len, l->timeout_ms, l->peer, err);
    if (rc == 0)
        rc = read_reply(l->fd, &l->rd, l->timeout_ms, l->peer, reply, err);
    cm_buf_shrink(&l->out, 1 << 20);
    return rc;
}

int clu_link_send(struct clu_link *l, int argc, const char *const *argv, const size_t *argvlen,
                  struct cm_err *err)
{
    l->out.len = 0;
    if (resp_add_command(&l->out, argc, argv, argvlen) != 0)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    int rc = send_all(l->fd, l->out.p, l->out.len, l->timeout_ms, l->peer, err);
    cm_buf_shrink(&l->out, 1 << 20);
    return rc;
}

int clu_link_recv(struct clu_link *l, struct resp_value **reply, struct cm_err *err)
{
    *reply = NULL;
    return read_reply(l->fd, &l->rd, l->timeout_ms, l->peer, reply, err);
}

void clu_link_close(struct clu_link *l)
{
    if (l == NULL)
        return;
    if (l->fd >= 0)
        close(l->fd);
    resp_reader_deinit(&l->rd);
    cm_buf_deinit(&l->out);
    cm_free(l);
}

int clu_link_call(const char *host, int port, const char *password, int timeout_ms, int argc,
                  const char *const *argv, const size_t *argvlen, struct resp_value **reply,
                  struct cm_err *err)
{
    *reply = NULL;
    struct clu_link *l = clu_link_open(host, port, password, timeout_ms, err);
    if (l == NULL)
        return err != NULL && err->code != 0 ? err->code : CM_EIO;
    int rc = clu_link_cmd(l, argc, argv, argvlen, reply, err);
    clu_link_close(l);
    return rc;
}
