/* harness.h - the integration test harness: real eddyd processes on ephemeral ports
 * with temporary data directories, driven through libeddy and raw sockets.
 *
 * Each test runs in a forked child with a timeout (libuv style), so a crash, a hang
 * or a failed check fails that test only. The parent prints exactly one line per
 * test that ran, "PASS name" or "FAIL name: why", which tests/run.sh counts.
 *
 * Most tests share one server (h_port), started by main.c with --threads 2. Tests
 * that need their own configuration, a restart or a kill start their own server
 * with h_server_start. If EDDY_TEST_PORT is set, the shared server is the one
 * already listening there, and tests flagged H_OWN (they start, restart or kill a
 * server) are not run and print nothing. Point it only at a scratch server: some
 * tests run FLUSHALL (CONFIG SET changes are restored).
 *
 *   static void t_ping(void) { eddy_ctx *c = h_connect(); EXPECT_STATUS("PONG", c, "PING"); }
 *   void suite_x(void) { h_run("ping", t_ping, 0, 10); }
 */
#ifndef EDDY_HARNESS_H
#define EDDY_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../client/eddy.h"

/* ---- Running tests --------------------------------------------------------------------- */

/* h_run flag: the test starts its own server(s); skipped against EDDY_TEST_PORT. */
#define H_OWN 1

/* Runs fn in a forked child with a timeout of timeout_s seconds and prints its
 * PASS/FAIL line. A test also fails if the shared server died while it ran (the
 * shared server is then restarted for the next tests). */
void h_run(const char *name, void (*fn)(void), int flags, int timeout_s);

/* Starts the shared server (or attaches to EDDY_TEST_PORT); false if impossible. */
bool h_setup(void);
/* Stops the shared server and removes every temporary directory. Returns the exit
 * status for main: 0 if every test passed. */
int h_teardown(void);

/* True when the tests point at an external server (EDDY_TEST_PORT). */
bool h_external(void);

/* Port of the shared server. */
extern int h_port;

/* ---- Failing ---------------------------------------------------------------------------- */

#define H_AT __FILE__, __LINE__

/* Prints "FAIL name: file:line: message" and ends the test child. */
void h_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Marks the calling process as a helper forked by a test: its failures go to stderr
 * and end it with status 1 (the test checks that status), without a FAIL line. */
void h_helper(void);

#define FAILF(...) h_fail(H_AT, __VA_ARGS__)
#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond))                                                                          \
            h_fail(H_AT, "check failed: %s", #cond);                                          \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                    \
    do {                                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                                   \
        if (a_ != b_)                                                                         \
            h_fail(H_AT, "%s == %lld, expected %lld", #a, a_, b_);                            \
    } while (0)
#define CHECK_STR(a, b)                                                                       \
    do {                                                                                      \
        const char *a_ = (a), *b_ = (b);                                                      \
        if (a_ == NULL || strcmp(a_, b_) != 0)                                                \
            h_fail(H_AT, "%s is \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_);        \
    } while (0)

/* ---- Servers ------------------------------------------------------------------------------ */

struct h_server {
    pid_t pid;       /* 0 when not running (or external) */
    int port;
    char dir[256];   /* the temporary directory: data in dir/data, log in dir/eddyd.log */
    char *args[32];  /* extra eddyd arguments, owned */
    int nargs;
};

/* Starts eddyd on a fresh ephemeral port with a fresh temporary directory, --threads 2
 * and the extra arguments (a NULL-terminated list, e.g. "--maxclients", "10", NULL),
 * and waits until it answers PING (10 s). Fails the test if it cannot. */
struct h_server *h_server_start(const char *arg, ...);
/* Sends SIGTERM and waits for the exit (10 s), then SIGKILL. Returns the exit status
 * as waitpid reports it. */
int h_server_stop(struct h_server *s);
/* Sends SIGKILL and reaps the process. */
void h_server_kill9(struct h_server *s);
/* Waits up to timeout_ms for the server process to exit by itself; returns true and
 * stores the waitpid status if it did. */
bool h_server_wait_exit(struct h_server *s, int timeout_ms, int *status);
/* Starts the server again on the same directory and port and waits for PING. */
void h_server_restart(struct h_server *s);
/* Stops the server if it runs and removes its directory. */
void h_server_free(struct h_server *s);
/* Prints the last lines of the server's log to stderr (for diagnosing failures). */
void h_server_log_tail(const struct h_server *s, int lines);
/* The number of lines of the server's log that contain text (no quote in it), -1 if
 * it cannot be read. */
int h_server_log_lines(const struct h_server *s, const char *text);

/* ---- Connections and commands ---------------------------------------------------------- */

/* Connects to the shared server / to port with a 10 s timeout; fails the test if it
 * cannot. */
eddy_ctx *h_connect(void);
eddy_ctx *h_connect_port(int port);

/* Sends a command (NULL-terminated C strings) and returns its reply, or fails the
 * test on a connection failure. */
struct eddy_reply *h_cmd(const char *file, int line, eddy_ctx *c, const char *arg, ...);
/* The same with binary-safe arguments. */
struct eddy_reply *h_cmdv(const char *file, int line, eddy_ctx *c, int argc, const char **argv,
                          const size_t *argvlen);
/* Text of the last command sent by h_cmd (for messages). */
const char *h_last_cmd(void);

/* Short description of a reply for failure messages, in a static buffer. */
const char *h_describe(const struct eddy_reply *r);

/* Checks a reply and frees it; fails the test with a clear message otherwise. */
void h_expect_status(const char *file, int line, struct eddy_reply *r, const char *want);
void h_expect_err(const char *file, int line, struct eddy_reply *r, const char *want);
void h_expect_err_prefix(const char *file, int line, struct eddy_reply *r, const char *prefix);
void h_expect_int(const char *file, int line, struct eddy_reply *r, long long want);
void h_expect_bulk(const char *file, int line, struct eddy_reply *r, const char *want,
                   size_t len);
void h_expect_nil(const char *file, int line, struct eddy_reply *r);

#define CMD(c, ...) h_cmd(H_AT, (c), __VA_ARGS__, (char *)NULL)
#define EXPECT_OK(c, ...) h_expect_status(H_AT, CMD(c, __VA_ARGS__), "OK")
#define EXPECT_STATUS(want, c, ...) h_expect_status(H_AT, CMD(c, __VA_ARGS__), (want))
#define EXPECT_ERR(want, c, ...) h_expect_err(H_AT, CMD(c, __VA_ARGS__), (want))
#define EXPECT_ERR_PREFIX(want, c, ...) h_expect_err_prefix(H_AT, CMD(c, __VA_ARGS__), (want))
#define EXPECT_INT(want, c, ...) h_expect_int(H_AT, CMD(c, __VA_ARGS__), (want))
#define EXPECT_BULK(want, c, ...) h_expect_bulk(H_AT, CMD(c, __VA_ARGS__), (want), strlen(want))
#define EXPECT_NIL(c, ...) h_expect_nil(H_AT, CMD(c, __VA_ARGS__))

/* Returns the integer reply of a command, failing the test on any other reply. */
long long h_int(const char *file, int line, struct eddy_reply *r);
#define CMD_INT(c, ...) h_int(H_AT, CMD(c, __VA_ARGS__))

/* Text of a bulk, status or verbatim reply, copied with malloc (free it); fails the
 * test on any other type. */
char *h_text(const char *file, int line, struct eddy_reply *r);
#define CMD_TEXT(c, ...) h_text(H_AT, CMD(c, __VA_ARGS__))

/* The value of "field:" in an INFO text (section given to INFO), or -1. */
long long h_info_field(eddy_ctx *c, const char *section, const char *field);

/* Removes every key of the shared server (FLUSHALL). */
void h_flushall(eddy_ctx *c);

/* ---- Raw sockets ------------------------------------------------------------------------ */

/* A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY; -1 on failure. */
int h_raw_connect(int port);
/* Writes all of buf (MSG_NOSIGNAL); -1 if the peer closed or failed. */
int h_raw_send(int fd, const void *buf, size_t len);
/* Reads until n bytes arrived, EOF, or timeout_ms of silence. Returns the count read
 * (NUL-terminated in buf of cap >= n + 1); *closed says whether EOF/reset was seen. */
size_t h_raw_recv(int fd, char *buf, size_t n, int timeout_ms, bool *closed);
/* Reads until EOF (true) or timeout_ms of silence (false); the bytes read go to buf
 * (up to cap - 1, NUL-terminated) and their count to *got. */
bool h_raw_wait_close(int fd, char *buf, size_t cap, size_t *got, int timeout_ms);
/* Fails the test unless a new connection to port answers PING with PONG. */
void h_expect_alive(const char *file, int line, int port);
#define EXPECT_ALIVE(port) h_expect_alive(H_AT, (port))

/* ---- Utilities ----------------------------------------------------------------------------- */

void h_sleep_ms(int ms);
/* t times EDDY_TIMEOUT_SCALE (default 1; make tsan sets it): the harness scales every
 * timeout it is given (h_run, connections, h_raw_*, h_server_wait_exit) with it, for
 * sanitizer builds that run several times slower. */
int h_scaled(int t);
int64_t h_now_ms(void);
/* Raises RLIMIT_NOFILE to at least n (up to the hard limit); returns the new limit. */
long h_raise_nofile(long n);

/* ---- Suites (one per file) -------------------------------------------------------------- */
void suite_conn(void);
void suite_strings(void);
void suite_keys(void);
void suite_server(void);
void suite_pipeline(void);
void suite_persist(void);
void suite_protocol(void);
void suite_limits(void);
void suite_udf(void);
void suite_cluster(void);
void suite_migrate(void);
void suite_train(void);
void suite_hardening(void);
void suite_faults(void);

#endif
