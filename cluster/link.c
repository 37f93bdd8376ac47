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

static int send_all(int fd, const char *p, size_t n, int timeout_ms, const char *peer,
                    struct cm_err *err)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, timeout_ms, peer, err) != 0)
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
    for (;;) {
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
            if (wait_fd(fd, POLLIN, timeout_ms, peer, err) != 0)
                return CM_EIO;
        } else {
            return cm_err_set(err, CM_EIO, "%s: %s", peer, strerror(errno));
        }
    }
}

int clu_link_call(const char *host, int port, const char *password, int timeout_ms, int argc,
                  const char *const *argv, const size_t *argvlen, struct resp_value **reply,
                  struct cm_err *err)
{
    char peer[CLU_HOST_LEN + 16];
    snprintf(peer, sizeof(peer), "%s:%d", host, port);
    *reply = NULL;
    struct cm_buf out;
    struct resp_reader rd;
    cm_buf_init(&out);
    resp_reader_init(&rd);
    struct resp_value *auth = NULL;
    int rc = 0;
    bool with_auth = password != NULL && password[0] != '\0';
    if (with_auth) {
        const char *av[] = {"AUTH", password};
        const size_t al[] = {4, strlen(password)};
        rc = resp_add_command(&out, 2, av, al);
    }
    if (rc == 0)
        rc = resp_add_command(&out, argc, argv, argvlen);
    if (rc != 0) {
        rc = cm_err_set(err, CM_ENOMEM, "out of memory");
        goto out;
    }
    int fd = connect_to(host, port, timeout_ms, peer, err);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rc = send_all(fd, out.p, out.len, timeout_ms, peer, err);
    if (rc == 0 && with_auth && (rc = read_reply(fd, &rd, timeout_ms, peer, &auth, err)) == 0 &&
        auth->type == RESP_T_ERROR)
        rc = cm_err_set(err, CM_EIO, "%s: AUTH failed: %s", peer, auth->str);
    if (rc == 0)
        rc = read_reply(fd, &rd, timeout_ms, peer, reply, err);
    close(fd);
out:
    resp_value_free(auth);
    resp_reader_deinit(&rd);
    cm_buf_deinit(&out);
    return rc;
}
