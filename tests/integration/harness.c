/* harness.c - the integration test harness (see harness.h): starting, stopping and
 * killing eddyd processes, running tests in forked children with a timeout, reply
 * checks over libeddy, and raw-socket helpers. Uses only libc and libeddy. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int h_port;

static char root[64];           /* every temporary directory lives under it */
static bool external;
static struct h_server shared;  /* the shared server (pid 0 when external) */
static const char *cur_name;    /* the running test, in the child */
static bool in_helper;          /* a process forked by a test (see h_helper) */
static int npassed, nfailed;
static int64_t suite_start_ms;

/* Servers started by the current test child, killed if the test fails. */
static struct h_server *owned[16];
static int nowned;

/* ---- Time ---------------------------------------------------------------------------- */

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int h_scaled(int t)
{
    static int scale;
    if (scale == 0) {
        const char *e = getenv("EDDY_TIMEOUT_SCALE");
        scale = e != NULL && atoi(e) > 1 ? atoi(e) : 1;
    }
    return t > INT32_MAX / scale ? INT32_MAX : t * scale;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

long h_raise_nofile(long n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((long)rl.rlim_cur < n) {
        rl.rlim_cur = (rlim_t)n;
        if (rl.rlim_max < rl.rlim_cur) {
            rl.rlim_max = rl.rlim_cur;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
                getrlimit(RLIMIT_NOFILE, &rl);
                rl.rlim_cur = rl.rlim_max;
            }
        }
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

/* ---- Failing ------------------------------------------------------------------------------ */

static void kill_owned(void)
{
    for (int i = 0; i < nowned; i++)
        if (owned[i] != NULL && owned[i]->pid > 0) {
            kill(owned[i]->pid, SIGKILL);
            waitpid(owned[i]->pid, NULL, 0);
            owned[i]->pid = 0;
        }
}

void h_fail(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    const char *base = strrchr(file, '/');
    if (in_helper) {
        fprintf(stderr, "  %s helper %d: %s:%d: %s\n", cur_name ? cur_name : "?", (int)getpid(),
                base ? base + 1 : file, line, msg);
        _exit(1);
    }
    printf("FAIL %s: %s:%d: %s\n", cur_name ? cur_name : "setup", base ? base + 1 : file, line,
           msg);
    fflush(stdout);
    for (int i = 0; i < nowned; i++)
        if (owned[i] != NULL && owned[i]->pid > 0)
            h_server_log_tail(owned[i], 5);
    kill_owned();
    _exit(1);
}

void h_helper(void)
{
    in_helper = true;
    nowned = 0;
}

/* ---- Files ---------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path)
{
    if (path[0] != '\0')
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- Servers -------------------------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof(sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static const char *eddyd_path(void)
{
    const char *p = getenv("EDDYD");
    return p && *p ? p : "bin/eddyd";
}

static pid_t spawn(struct h_server *s)
{
    char port[16], data[300], logpath[300];
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(data, sizeof(data), "%s/data", s->dir);
    snprintf(logpath, sizeof(logpath), "%s/eddyd.log", s->dir);
    const char *argv[48];
    int n = 0;
    argv[n++] = eddyd_path();
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = data;
    argv[n++] = "--threads";
    argv[n++] = "2";
    for (int i = 0; i < s->nargs; i++)
        argv[n++] = s->args[i];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDONLY);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        if (null >= 0)
            dup2(null, 0);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char **)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Waits until the server answers PING (any reply counts: it may want AUTH). */
static bool wait_ready(struct h_server *s, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    while (h_now_ms() < end) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return false;
        }
        eddy_ctx *c = eddy_connect("127.0.0.1", s->port, 1000, NULL, NULL);
        if (c != NULL) {
            struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
            bool ok = r != NULL;
            eddy_reply_free(r);
            eddy_free(c);
            if (ok)
                return true;
        }
        h_sleep_ms(20);
    }
    return false;
}

void h_server_log_tail(const struct h_server *s, int lines)
{
    char path[300], cmd[400];
    snprintf(path, sizeof(path), "%s/eddyd.log", s->dir);
    if (access(path, R_OK) != 0)
        return;
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' | sed 's/^/  eddyd: /' >&2", lines, path);
    fflush(stderr);
    if (system(cmd) != 0)
        fprintf(stderr, "  (cannot show %s)\n", path);
}

int h_server_log_lines(const struct h_server *s, const char *text)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "grep -c '%s' '%s/eddyd.log'", text, s->dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p == NULL || fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p != NULL)
        pclose(p);
    return n;
}

/* Starts s (dir set); with pick_port, on a fresh port, trying others if it fails. */
static bool start_server(struct h_server *s, bool pick_port)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        if (pick_port)
            s->port = free_port();
        s->pid = spawn(s);
        if (s->pid > 0 && wait_ready(s, h_scaled(10000)))
            return true;
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
        h_server_log_tail(s, 10);
        h_sleep_ms(200);
    }
    return false;
}

static bool server_init(struct h_server *s, va_list ap, const char *arg)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s/srv.XXXXXX", root);
    if (mkdtemp(s->dir) == NULL)
        return false;
    for (const char *a = arg; a != NULL && s->nargs < 32; a = va_arg(ap, const char *))
        s->args[s->nargs++] = strdup(a);
    return true;
}

struct h_server *h_server_start(const char *arg, ...)
{
    if (external)
        FAILF("h_server_start called against an external server (flag the test H_OWN)");
    struct h_server *s = malloc(sizeof(*s));
    va_list ap;
    va_start(ap, arg);
    bool ok = s != NULL && server_init(s, ap, arg);
    va_end(ap);
    if (!ok)
        FAILF("cannot create a temporary directory under %s: %s", root, strerror(errno));
    if (nowned < 16)
        owned[nowned++] = s;
    if (!start_server(s, true))
        FAILF("eddyd did not start (log in %s)", s->dir);
    return s;
}

bool h_server_wait_exit(struct h_server *s, int timeout_ms, int *status)
{
    int64_t end = h_now_ms() + h_scaled(timeout_ms);
    for (;;) {
        int st;
        if (s->pid <= 0)
            return true;
        pid_t p = waitpid(s->pid, &st, WNOHANG);
        if (p == s->pid || (p < 0 && errno == ECHILD)) {
            if (status)
                *status = p == s->pid ? st : 0;
            s->pid = 0;
            return true;
        }
        if (h_now_ms() >= end)
            return false;
        h_sleep_ms(10);
    }
}

int h_server_stop(struct h_server *s)
{
    int st = 0;
    if (s->pid <= 0)
        return 0;
    kill(s->pid, SIGTERM);
    if (!h_server_wait_exit(s, 10000, &st)) {
        fprintf(stderr, "  eddyd pid %d ignored SIGTERM for 10 s: SIGKILL\n", (int)s->pid);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
        s->pid = 0;
    }
    return st;
}

void h_server_kill9(struct h_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void h_server_restart(struct h_server *s)
{
    if (s->pid > 0)
        h_server_stop(s);
    if (!start_server(s, false))
        FAILF("eddyd did not restart on port %d (log in %s)", s->port, s->dir);
}

void h_server_free(struct h_server *s)
{
    if (s == NULL)
        return;
    h_server_stop(s);
    for (int i = 0; i < nowned; i++)
        if (owned[i] == s)
            owned[i] = NULL;
    rm_rf(s->dir);
    for (int i = 0; i < s->nargs; i++)
        free(s->args[i]);
    free(s);
}

/* ---- Running tests ------------------------------------------------------------------------- */

bool h_external(void)
{
    return external;
}

static bool shared_start(void)
{
    memset(&shared, 0, sizeof(shared));
    snprintf(shared.dir, sizeof(shared.dir), "%s/shared.XXXXXX", root);
    if (mkdtemp(shared.dir) == NULL)
        return false;
    return start_server(&shared, true);
}

bool h_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    suite_start_ms = h_now_ms();
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(root, sizeof(root), "/tmp/eddy-it.XXXXXX");
    if (mkdtemp(root) == NULL) {
        printf("FAIL setup: mkdtemp: %s\n", strerror(errno));
        return false;
    }
    const char *ext = getenv("EDDY_TEST_PORT");
    if (ext != NULL && *ext != '\0') {
        external = true;
        h_port = atoi(ext);
        shared.port = h_port;
        if (!wait_ready(&shared, 2000)) {
            printf("FAIL setup: no server answers PING on port %d (EDDY_TEST_PORT)\n", h_port);
            return false;
        }
        return true;
    }
    if (access(eddyd_path(), X_OK) != 0) {
        printf("FAIL setup: %s is not executable (set EDDYD)\n", eddyd_path());
        return false;
    }
    if (!shared_start()) {
        printf("FAIL setup: the shared eddyd did not start\n");
        return false;
    }
    h_port = shared.port;
    return true;
}

/* After a test: is the shared server still running and answering? */
static const char *shared_health(void)
{
    if (!external) {
        int st;
        if (shared.pid <= 0 || waitpid(shared.pid, &st, WNOHANG) == shared.pid) {
            shared.pid = 0;
            return "the shared eddyd died during this test";
        }
    }
    eddy_ctx *c = eddy_connect("127.0.0.1", h_port, 5000, NULL, NULL);
    struct eddy_reply *r = c ? eddy_command(c, "PING", (char *)NULL) : NULL;
    bool ok = r != NULL && r->type == EDDY_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    eddy_reply_free(r);
    eddy_free(c);
    return ok ? NULL : "the shared eddyd no longer answers PING after this test";
}

/* True if name contains one of the words of list (separated by commas). */
static bool name_listed(const char *list, const char *name)
{
    for (const char *p = list; *p != '\0';) {
        size_t w = strcspn(p, ",");
        char word[128];
        if (w > 0 && w < sizeof(word)) {
            memcpy(word, p, w);
            word[w] = '\0';
            if (strstr(name, word) != NULL)
                return true;
        }
        p += w;
        p += strspn(p, ",");
    }
    return false;
}

void h_run(const char *name, void (*fn)(void), int flags, int timeout_s)
{
    if ((flags & H_OWN) && external)
        return;
    const char *only_test = getenv("EDDY_TEST_NAME");
    if (only_test != NULL && *only_test != '\0' && !name_listed(only_test, name))
        return;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        printf("FAIL %s: fork: %s\n", name, strerror(errno));
        nfailed++;
        return;
    }
    if (pid == 0) {
        setpgid(0, 0);
        cur_name = name;
        nowned = 0;
        alarm((unsigned)h_scaled(timeout_s));
        fn();
        kill_owned();
        _exit(0);
    }
    setpgid(pid, pid);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    kill(-pid, SIGKILL); /* helpers and servers the test left behind */
    const char *health = shared_health();
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (ok && health == NULL) {
        printf("PASS %s\n", name);
        npassed++;
    } else {
        nfailed++;
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
            printf("FAIL %s: timed out after %d s\n", name, h_scaled(timeout_s));
        else if (WIFSIGNALED(st))
            printf("FAIL %s: killed by signal %d\n", name, WTERMSIG(st));
        else if (ok)
            printf("FAIL %s: %s\n", name, health);
        else if (WEXITSTATUS(st) != 1)
            printf("FAIL %s: exited with status %d\n", name, WEXITSTATUS(st));
        if (health != NULL)
            fprintf(stderr, "  %s\n", health);
    }
    fflush(stdout);
    if (health != NULL && !external) {
        h_server_log_tail(&shared, 10);
        if (shared.pid > 0)
            h_server_kill9(&shared);
        rm_rf(shared.dir);
        if (shared_start()) {
            h_port = shared.port;
        } else {
            fprintf(stderr, "  cannot restart the shared eddyd\n");
        }
    }
}

int h_teardown(void)
{
    if (!external && shared.pid > 0) {
        int st = h_server_stop(&shared);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("FAIL shared_server_clean_exit: eddyd exit status 0x%x on SIGTERM\n", st);
            nfailed++;
            h_server_log_tail(&shared, 10);
        } else {
            printf("PASS shared_server_clean_exit\n");
            npassed++;
        }
    }
    rm_rf(root);
    fprintf(stderr, "integration: %d passed, %d failed in %.1f s\n", npassed, nfailed,
            (double)(h_now_ms() - suite_start_ms) / 1000.0);
    return nfailed == 0 ? 0 : 1;
}

/* ---- Commands -------------------------------------------------------------------------------- */

static char last_cmd[256];

const char *h_last_cmd(void)
{
    return last_cmd;
}

static void note_cmd(int argc, const char **argv, const size_t *argvlen)
{
    size_t n = 0;
    last_cmd[0] = '\0';
    for (int i = 0; i < argc && n + 4 < sizeof(last_cmd); i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        if (i > 0)
            last_cmd[n++] = ' ';
        for (size_t j = 0; j < len && n + 4 < sizeof(last_cmd); j++) {
            unsigned char ch = (unsigned char)argv[i][j];
            last_cmd[n++] = ch >= 32 && ch < 127 ? (char)ch : '.';
        }
    }
    if (n >= sizeof(last_cmd))
        n = sizeof(last_cmd) - 1;
    last_cmd[n] = '\0';
}

struct eddy_reply *h_cmdv(const char *file, int line, eddy_ctx *c, int argc, const char **argv,
                          const size_t *argvlen)
{
    note_cmd(argc, argv, argvlen);
    struct eddy_reply *r = eddy_command_argv(c, argc, argv, argvlen);
    if (r == NULL)
        h_fail(file, line, "%s: no reply: %s (%s)", last_cmd, eddy_strerror(eddy_err(c)),
               eddy_errstr(c));
    return r;
}

struct eddy_reply *h_cmd(const char *file, int line, eddy_ctx *c, const char *arg, ...)
{
    const char *argv[300];
    int argc = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL && argc < 300; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    return h_cmdv(file, line, c, argc, argv, NULL);
}

const char *h_describe(const struct eddy_reply *r)
{
    static char buf[300];
    if (r == NULL)
        return "(no reply)";
    switch (r->type) {
    case EDDY_REPLY_INTEGER:
    case EDDY_REPLY_BOOL:
        snprintf(buf, sizeof(buf), "%s %lld", eddy_reply_type_name(r->type), r->integer);
        break;
    case EDDY_REPLY_NIL:
        snprintf(buf, sizeof(buf), "nil");
        break;
    case EDDY_REPLY_ARRAY:
    case EDDY_REPLY_MAP:
    case EDDY_REPLY_SET:
    case EDDY_REPLY_PUSH:
    case EDDY_REPLY_ATTR:
        snprintf(buf, sizeof(buf), "%s of %zu elements", eddy_reply_type_name(r->type),
                 r->elements);
        break;
    default: {
        char text[200];
        size_t n = 0;
        for (size_t i = 0; i < r->len && n < sizeof(text) - 4; i++) {
            unsigned char ch = (unsigned char)r->str[i];
            text[n++] = ch >= 32 && ch < 127 ? (char)ch : '.';
        }
        text[n] = '\0';
        snprintf(buf, sizeof(buf), "%s \"%s\"%s (%zu bytes)", eddy_reply_type_name(r->type),
                 text, r->len > n ? "..." : "", r->len);
    }
    }
    return buf;
}

static void expect_fail(const char *file, int line, struct eddy_reply *r, const char *want)
{
    char got[320];
    snprintf(got, sizeof(got), "%s", h_describe(r));
    eddy_reply_free(r);
    h_fail(file, line, "%s: expected %s, got %s", last_cmd, want, got);
}

static bool is_text(const struct eddy_reply *r, enum eddy_reply_type t, const char *s, size_t n)
{
    return r->type == t && r->len == n && memcmp(r->str, s, n) == 0;
}

void h_expect_status(const char *file, int line, struct eddy_reply *r, const char *want)
{
    if (!is_text(r, EDDY_REPLY_STATUS, want, strlen(want))) {
        char w[200];
        snprintf(w, sizeof(w), "status \"%s\"", want);
        expect_fail(file, line, r, w);
    }
    eddy_reply_free(r);
}

void h_expect_err(const char *file, int line, struct eddy_reply *r, const char *want)
{
    if (!is_text(r, EDDY_REPLY_ERROR, want, strlen(want))) {
        char w[300];
        snprintf(w, sizeof(w), "error \"%s\"", want);
        expect_fail(file, line, r, w);
    }
    eddy_reply_free(r);
}

void h_expect_err_prefix(const char *file, int line, struct eddy_reply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    if (r->type != EDDY_REPLY_ERROR || r->len < n || memcmp(r->str, prefix, n) != 0) {
        char w[300];
        snprintf(w, sizeof(w), "error starting with \"%s\"", prefix);
        expect_fail(file, line, r, w);
    }
    eddy_reply_free(r);
}

void h_expect_int(const char *file, int line, struct eddy_reply *r, long long want)
{
    if (r->type != EDDY_REPLY_INTEGER || r->integer != want) {
        char w[64];
        snprintf(w, sizeof(w), "integer %lld", want);
        expect_fail(file, line, r, w);
    }
    eddy_reply_free(r);
}

void h_expect_bulk(const char *file, int line, struct eddy_reply *r, const char *want,
                   size_t len)
{
    if (!is_text(r, EDDY_REPLY_STRING, want, len)) {
        char w[200];
        snprintf(w, sizeof(w), "bulk \"%.*s\" (%zu bytes)", (int)(len > 100 ? 100 : len), want,
                 len);
        expect_fail(file, line, r, w);
    }
    eddy_reply_free(r);
}

void h_expect_nil(const char *file, int line, struct eddy_reply *r)
{
    if (r->type != EDDY_REPLY_NIL)
        expect_fail(file, line, r, "nil");
    eddy_reply_free(r);
}

long long h_int(const char *file, int line, struct eddy_reply *r)
{
    if (r->type != EDDY_REPLY_INTEGER)
        expect_fail(file, line, r, "an integer");
    long long v = r->integer;
    eddy_reply_free(r);
    return v;
}

char *h_text(const char *file, int line, struct eddy_reply *r)
{
    if (r->type != EDDY_REPLY_STRING && r->type != EDDY_REPLY_STATUS &&
        r->type != EDDY_REPLY_VERB)
        expect_fail(file, line, r, "a string");
    char *s = malloc(r->len + 1);
    if (s == NULL)
        h_fail(file, line, "out of memory");
    memcpy(s, r->str, r->len);
    s[r->len] = '\0';
    eddy_reply_free(r);
    return s;
}

long long h_info_field(eddy_ctx *c, const char *section, const char *field)
{
    char *info = CMD_TEXT(c, "INFO", section);
    char key[128];
    snprintf(key, sizeof(key), "\n%s:", field);
    long long v = -1;
    const char *p = strstr(info, key);
    if (p == NULL && strncmp(info, key + 1, strlen(key + 1)) == 0)
        p = info - 1;
    if (p != NULL)
        v = strtoll(p + strlen(key), NULL, 10);
    free(info);
    return v;
}

void h_flushall(eddy_ctx *c)
{
    EXPECT_OK(c, "FLUSHALL");
}

eddy_ctx *h_connect_port(int port)
{
    char err[EDDY_ERRLEN];
    eddy_ctx *c = eddy_connect("127.0.0.1", port, h_scaled(10000), NULL, err);
    if (c == NULL)
        FAILF("cannot connect to 127.0.0.1:%d: %s", port, err);
    return c;
}

eddy_ctx *h_connect(void)
{
    return h_connect_port(h_port);
}

/* ---- Raw sockets --------------------------------------------------------------------------- */

int h_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int h_raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t h_raw_recv(int fd, char *buf, size_t n, int timeout_ms, bool *closed)
{
    size_t got = 0;
    *closed = false;
    while (got < n) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll(&pfd, 1, h_scaled(timeout_ms));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *closed = true;
            break;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

bool h_raw_wait_close(int fd, char *buf, size_t cap, size_t *got, int timeout_ms)
{
    char scratch[4096];
    *got = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll(&pfd, 1, h_scaled(timeout_ms));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        char *dst = buf != NULL && *got + 1 < cap ? buf + *got : scratch;
        size_t room = buf != NULL && *got + 1 < cap ? cap - 1 - *got : sizeof(scratch);
        ssize_t r = recv(fd, dst, room, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (buf != NULL)
                buf[*got < cap ? *got : cap - 1] = '\0';
            return true;
        }
        if (dst != scratch)
            *got += (size_t)r;
    }
    if (buf != NULL)
        buf[*got < cap ? *got : cap - 1] = '\0';
    return false;
}

void h_expect_alive(const char *file, int line, int port)
{
    char err[EDDY_ERRLEN];
    eddy_ctx *c = eddy_connect("127.0.0.1", port, 5000, NULL, err);
    if (c == NULL)
        h_fail(file, line, "server on port %d refuses connections: %s", port, err);
    struct eddy_reply *r = eddy_command(c, "PING", (char *)NULL);
    if (r == NULL)
        h_fail(file, line, "server on port %d does not answer PING: %s", port, eddy_errstr(c));
    h_expect_status(file, line, r, "PONG");
    eddy_free(c);
}
