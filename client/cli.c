/* cli.c - eddy-cli, the command-line client, modeled on redis-cli.
 *
 * One-shot (`eddy-cli SET a b`) or interactive (a prompt that reads lines split with
 * redis-cli's quoting rules). Replies print as redis-cli prints them: quoted and typed
 * on a terminal, raw otherwise. Uses only the public libeddy API (client/eddy.h).
 */
#include "eddy.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 7711

struct config {
    const char *host;
    int port;
    const char *socket_path;
    const char *password;
    int db;
    bool raw;           /* raw output (the default when stdout is not a terminal) */
    bool stdin_arg;     /* -x: the last argument comes from stdin */
    long long repeat;   /* -r: times to run a one-shot command; < 0 forever */
    double interval;    /* -i: seconds between repeats */
    bool resp3;         /* -3: HELLO 3 after connecting */
    bool cluster;       /* -c: follow MOVED redirections */
    bool interactive;   /* reading commands at the prompt */
};

static eddy_ctx *connect_server(const struct config *cfg);

/* ---- Output buffer ------------------------------------------------------------------ */

/* A growable byte string; the CLI gives up on out-of-memory. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void die_oom(void)
{
    fprintf(stderr, "Out of memory\n");
    exit(1);
}

static void sb_add(struct sbuf *s, const void *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *q = realloc(s->p, cap);
        if (q == NULL)
            die_oom();
        s->p = q;
        s->cap = cap;
    }
    if (n > 0)
        memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_str(struct sbuf *s, const char *str)
{
    sb_add(s, str, strlen(str));
}

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    sb_add(s, tmp, n < 0 ? 0 : (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---- Reply formatting ------------------------------------------------------------------ */

/* Appends p quoted the way redis-cli quotes strings: "a\n\x01". */
static void format_repr(struct sbuf *s, const char *p, size_t n)
{
    sb_add(s, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (c) {
        case '\\': sb_add(s, "\\\\", 2); break;
        case '"': sb_add(s, "\\\"", 2); break;
        case '\n': sb_add(s, "\\n", 2); break;
        case '\r': sb_add(s, "\\r", 2); break;
        case '\t': sb_add(s, "\\t", 2); break;
        case '\a': sb_add(s, "\\a", 2); break;
        case '\b': sb_add(s, "\\b", 2); break;
        default:
            if (isprint(c))
                sb_add(s, &c, 1);
            else
                sb_printf(s, "\\x%02x", c);
        }
    }
    sb_add(s, "\"", 1);
}

static bool is_aggregate(const struct eddy_reply *r)
{
    return r->type == EDDY_REPLY_ARRAY || r->type == EDDY_REPLY_SET ||
           r->type == EDDY_REPLY_PUSH || r->type == EDDY_REPLY_MAP ||
           r->type == EDDY_REPLY_ATTR;
}

static bool is_map(const struct eddy_reply *r)
{
    return r->type == EDDY_REPLY_MAP || r->type == EDDY_REPLY_ATTR;
}

/* Whether a map value takes several lines, so that it starts on a line of its own. */
static bool is_multiline(const struct eddy_reply *r)
{
    if (!is_aggregate(r) || r->elements == 0)
        return false;
    if (r->elements > (is_map(r) ? 2u : 1u))
        return true;
    return is_multiline(r->element[r->elements - 1]);
}

static const char *empty_name(const struct eddy_reply *r)
{
    switch (r->type) {
    case EDDY_REPLY_ARRAY: return "(empty array)\n";
    case EDDY_REPLY_MAP: return "(empty hash)\n";
    case EDDY_REPLY_SET: return "(empty set)\n";
    case EDDY_REPLY_PUSH: return "(empty push)\n";
    default: return "(empty aggregate type)\n";
    }
}

static void format_tty(struct sbuf *s, const struct eddy_reply *r, const char *prefix);

/* Formats a non-empty aggregate: "1) a\n2) b", nested items indented under their index. */
static void format_tty_aggregate(struct sbuf *s, const struct eddy_reply *r, const char *prefix)
{
    bool map = is_map(r);
    size_t count = map ? r->elements / 2 : r->elements;
    int width = snprintf(NULL, 0, "%zu", count);
    char sep = r->type == EDDY_REPLY_SET ? '~' : map ? '#' : r->type == EDDY_REPLY_PUSH ? '>' : ')';
    size_t plen = strlen(prefix);
    char *inner = malloc(plen + (size_t)width + 3);
    if (inner == NULL)
        die_oom();
    memcpy(inner, prefix, plen);
    memset(inner + plen, ' ', (size_t)width + 2);
    inner[plen + (size_t)width + 2] = '\0';

    for (size_t i = 0; i < r->elements; i++) {
        sb_printf(s, "%s%*zu%c ", i == 0 ? "" : prefix, width, (map ? i / 2 : i) + 1, sep);
        format_tty(s, r->element[i], inner);
        if (map && i + 1 < r->elements) {
            s->len--; /* the key's newline */
            sb_str(s, " => ");
            i++;
            if (is_multiline(r->element[i])) {
                sb_str(s, "\n");
                sb_str(s, inner);
            }
            format_tty(s, r->element[i], inner);
        }
    }
    free(inner);
}

/* The type label redis-cli prints before a value on a terminal. */
static const char *tty_label(enum eddy_reply_type t)
{
    switch (t) {
    case EDDY_REPLY_ERROR: return "(error) ";
    case EDDY_REPLY_INTEGER: return "(integer) ";
    case EDDY_REPLY_DOUBLE: return "(double) ";
    case EDDY_REPLY_BIGNUM: return "(big number) ";
    default: return "";
    }
}

/* Formats a reply as redis-cli does on a terminal; every reply ends with a newline. */
static void format_tty(struct sbuf *s, const struct eddy_reply *r, const char *prefix)
{
    if (is_aggregate(r)) {
        if (r->elements == 0)
            sb_str(s, empty_name(r));
        else
            format_tty_aggregate(s, r, prefix); /* each element ends its own line */
        return;
    }
    sb_str(s, tty_label(r->type));
    if (r->type == EDDY_REPLY_INTEGER)
        sb_printf(s, "%lld", r->integer);
    else if (r->type == EDDY_REPLY_NIL)
        sb_str(s, "(nil)");
    else if (r->type == EDDY_REPLY_BOOL)
        sb_str(s, r->integer ? "(true)" : "(false)");
    else if (r->type == EDDY_REPLY_STRING)
        format_repr(s, r->str, r->len);
    else
        sb_add(s, r->str, r->len); /* status, error, double, big number, verbatim */
    sb_str(s, "\n");
}

/* Formats a reply as redis-cli --raw does: bare values, one per line. */
static void format_raw(struct sbuf *s, const struct eddy_reply *r)
{
    switch (r->type) {
    case EDDY_REPLY_NIL: break;
    case EDDY_REPLY_ERROR: sb_add(s, r->str, r->len); sb_str(s, "\n"); break;
    case EDDY_REPLY_INTEGER: sb_printf(s, "%lld", r->integer); break;
    case EDDY_REPLY_BOOL: sb_str(s, r->integer ? "(true)" : "(false)"); break;
    case EDDY_REPLY_STRING:
    case EDDY_REPLY_STATUS:
    case EDDY_REPLY_VERB:
    case EDDY_REPLY_DOUBLE:
    case EDDY_REPLY_BIGNUM: sb_add(s, r->str, r->len); break;
    default:
        for (size_t i = 0; i < r->elements; i++) {
            if (i > 0)
                sb_str(s, "\n");
            format_raw(s, r->element[i]);
            if (is_map(r) && ++i < r->elements) {
                sb_str(s, " ");
                format_raw(s, r->element[i]);
            }
        }
    }
}

/* How a reply prints: quoted (terminal), raw, or raw as is for text made to be read
 * (INFO, CLIENT LIST), which redis-cli prints without adding a newline. */
enum output { OUT_TTY, OUT_RAW, OUT_VERBATIM };

static void print_reply(const struct eddy_reply *r, enum output mode)
{
    struct sbuf s = {0};
    if (mode == OUT_TTY) {
        format_tty(&s, r, "");
    } else {
        format_raw(&s, r);
        if (mode == OUT_RAW)
            sb_str(&s, "\n");
    }
    fwrite(s.p, 1, s.len, stdout);
    free(s.p);
}

/* ---- Line splitting -------------------------------------------------------------------- */

/* A list of binary-safe arguments. */
struct args {
    int argc, cap;
    char **argv;
    size_t *len;
};

static void args_push(struct args *a, struct sbuf *arg)
{
    if (a->argc == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->argv = realloc(a->argv, (size_t)a->cap * sizeof(*a->argv));
        a->len = realloc(a->len, (size_t)a->cap * sizeof(*a->len));
        if (a->argv == NULL || a->len == NULL)
            die_oom();
    }
    if (arg->p == NULL)
        sb_add(arg, "", 0);
    a->argv[a->argc] = arg->p;
    a->len[a->argc++] = arg->len;
    *arg = (struct sbuf){0};
}

static void args_free(struct args *a)
{
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    free(a->len);
    *a = (struct args){0};
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Reads one double-quoted token body starting after the quote; returns the position
 * after the closing quote, or NULL when the quotes are unbalanced. */
static const char *split_dquoted(const char *p, struct sbuf *cur)
{
    for (;; p++) {
        if (*p == '\0')
            return NULL;
        if (*p == '"')
            return p + 1;
        if (p[0] == '\\' && p[1] == 'x' && isxdigit((unsigned char)p[2]) &&
            isxdigit((unsigned char)p[3])) {
            char byte = (char)(hexval((unsigned char)p[2]) * 16 + hexval((unsigned char)p[3]));
            sb_add(cur, &byte, 1);
            p += 3;
        } else if (p[0] == '\\' && p[1] != '\0') {
            p++;
            char c = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t'
                   : *p == 'b' ? '\b' : *p == 'a' ? '\a' : *p;
            sb_add(cur, &c, 1);
        } else {
            sb_add(cur, p, 1);
        }
    }
}

/* Reads one single-quoted token body (only \' is an escape), as split_dquoted. */
static const char *split_squoted(const char *p, struct sbuf *cur)
{
    for (;; p++) {
        if (*p == '\0')
            return NULL;
        if (*p == '\'')
            return p + 1;
        if (p[0] == '\\' && p[1] == '\'')
            p++;
        sb_add(cur, p, 1);
    }
}

/* Splits a line into arguments with redis-cli's rules (sdssplitargs). Returns 0, or
 * -1 for unbalanced quotes or a closing quote followed by something other than a
 * space. */
static int split_line(const char *p, struct args *out)
{
    struct sbuf cur = {0};
    for (;;) {
        while (*p != '\0' && isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return 0;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            if (*p == '"' || *p == '\'') {
                p = (*p == '"' ? split_dquoted : split_squoted)(p + 1, &cur);
                if (p == NULL || (*p != '\0' && !isspace((unsigned char)*p)))
                    goto unbalanced;
                break;
            }
            sb_add(&cur, p++, 1);
        }
        args_push(out, &cur);
    }
unbalanced:
    free(cur.p);
    args_free(out);
    return -1;
}

/* ---- Commands ---------------------------------------------------------------------------- */

/* With -c, a "MOVED slot host:port" or "ASK slot host:port" reply: reconnects *ctx to
 * that node (cfg->host and port follow it, as redis-cli's prompt does; after ASK the
 * new connection sends ASKING first) and prints the redirection line. Returns true if
 * the command should be sent again. */
static bool follow_moved(eddy_ctx **ctx, struct config *cfg, const struct eddy_reply *r)
{
    static char host[256];
    unsigned slot;
    char where[300];
    bool ask = r->type == EDDY_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0;
    if (!cfg->cluster || r->type != EDDY_REPLY_ERROR ||
        (strncmp(r->str, "MOVED ", 6) != 0 && !ask) ||
        sscanf(r->str + (ask ? 4 : 6), "%u %299s", &slot, where) != 2)
        return false;
    char *colon = strrchr(where, ':');
    if (colon == NULL || colon - where >= (long)sizeof(host))
        return false;
    *colon = '\0';
    struct config next = *cfg;
    memcpy(host, where, (size_t)(colon - where) + 1);
    next.host = host;
    next.port = atoi(colon + 1);
    next.socket_path = NULL;
    if (cfg->interactive) /* as redis-cli: only at the prompt */
        printf("-> Redirected to slot [%u] located at %s:%d\n", slot, host, next.port);
    eddy_ctx *n = connect_server(&next);
    if (n == NULL)
        return false;
    if (ask) {
        struct eddy_reply *a = eddy_command(n, "ASKING", (char *)NULL);
        bool ok = a != NULL && a->type == EDDY_REPLY_STATUS;
        eddy_reply_free(a);
        if (!ok) {
            eddy_free(n);
            return false;
        }
    }
    eddy_free(*ctx);
    *ctx = n;
    *cfg = next;
    return true;
}

/* Runs one command and prints its reply. Returns 0, or -1 when the connection failed
 * (the message has been printed). */
static int run_once(eddy_ctx **ctxp, const struct args *a, enum output mode, struct config *cfg)
{
    struct eddy_reply *r;
    for (int hop = 0;; hop++) {
        r = eddy_command_argv(*ctxp, a->argc, (const char **)a->argv, a->len);
        if (r == NULL && eddy_err(*ctxp) == EDDY_ERR_EOF && a->argc >= 1 && a->len[0] == 8 &&
            strncasecmp(a->argv[0], "SHUTDOWN", 8) == 0)
            return 0; /* like redis-cli: the server closing the connection is the answer */
        if (r == NULL) {
            fprintf(stderr, "Error: %s\n", eddy_errstr(*ctxp));
            return -1;
        }
        if (hop == 5 || !follow_moved(ctxp, cfg, r))
            break;
        eddy_reply_free(r);
    }
    print_reply(r, mode);
    eddy_reply_free(r);
    fflush(stdout);
    return 0;
}

/* Commands whose text replies redis-cli always prints raw. */
static bool always_raw(const struct args *a)
{
    const char *c = a->argv[0];
    if (strcasecmp(c, "info") == 0)
        return true;
    if (a->argc == 2 && (strcasecmp(c, "cluster") == 0 || strcasecmp(c, "client") == 0))
        return strcasecmp(a->argv[1], "nodes") == 0 || strcasecmp(a->argv[1], "info") == 0 ||
               strcasecmp(a->argv[1], "list") == 0;
    return false;
}

static void sleep_seconds(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Runs a command repeat times (forever if negative). Returns 0 or -1 as run_once. */
static int run_command(eddy_ctx **ctx, const struct args *a, struct config *cfg,
                       long long repeat)
{
    enum output mode = always_raw(a) ? OUT_VERBATIM : cfg->raw ? OUT_RAW : OUT_TTY;
    for (long long i = 0; repeat < 0 || i < repeat; i++) {
        if (i > 0)
            sleep_seconds(cfg->interval);
        if (run_once(ctx, a, mode, cfg) != 0)
            return -1;
    }
    return 0;
}

/* ---- Interactive mode -------------------------------------------------------------------- */

/* Reads one line of any length from stdin without its newline; NULL at EOF. */
static char *read_line(void)
{
    struct sbuf s = {0};
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        char ch = (char)c;
        sb_add(&s, &ch, 1);
    }
    if (c == EOF && s.p == NULL)
        return NULL;
    if (s.p == NULL)
        sb_add(&s, "", 0);
    return s.p;
}

/* Runs one typed line. Returns 1 to leave, 0 to go on, -1 when the connection died. */
static int repl_line(eddy_ctx **ctx, const char *line, struct config *cfg)
{
    struct args a = {0};
    if (split_line(line, &a) != 0) {
        printf("Invalid argument(s)\n");
        return 0;
    }
    int rc = 0;
    long long repeat = 1;
    if (a.argc == 0)
        goto free_args;
    if (strcasecmp(a.argv[0], "quit") == 0 || strcasecmp(a.argv[0], "exit") == 0) {
        rc = 1;
        goto free_args;
    }
    /* "3 INCR x" runs INCR three times, as in redis-cli. */
    char *end;
    long long n = strtoll(a.argv[0], &end, 10);
    if (a.argc > 1 && *end == '\0' && n > 0) {
        repeat = n;
        free(a.argv[0]);
        memmove(a.argv, a.argv + 1, (size_t)(a.argc - 1) * sizeof(*a.argv));
        memmove(a.len, a.len + 1, (size_t)(a.argc - 1) * sizeof(*a.len));
        a.argc--;
    }
    rc = run_command(ctx, &a, cfg, repeat);
free_args:
    args_free(&a);
    return rc;
}

static int repl(eddy_ctx **ctx, struct config *cfg)
{
    bool tty = isatty(STDIN_FILENO);
    char prompt[300];
    for (;;) {
        if (cfg->socket_path != NULL)
            snprintf(prompt, sizeof(prompt), "%s", cfg->socket_path);
        else
            snprintf(prompt, sizeof(prompt), "%s:%d", cfg->host, cfg->port);
        if (cfg->db != 0)
            snprintf(prompt + strlen(prompt), sizeof(prompt) - strlen(prompt), "[%d]", cfg->db);
        if (tty) {
            printf("%s> ", prompt);
            fflush(stdout);
        }
        char *line = read_line();
        if (line == NULL)
            return 0;
        int rc = repl_line(ctx, line, cfg);
        free(line);
        if (rc != 0)
            return rc < 0 ? 1 : 0;
    }
}

/* ---- Options and setup ------------------------------------------------------------------- */

static void usage(int status)
{
    FILE *f = status == 0 ? stdout : stderr;
    fprintf(f,
            "eddy-cli %s\n\n"
            "Usage: eddy-cli [OPTIONS] [cmd [arg [arg ...]]]\n"
            "  -h <hostname>      Server hostname (default: 127.0.0.1).\n"
            "  -p <port>          Server port (default: %d).\n"
            "  -s <socket>        Server socket (overrides hostname and port).\n"
            "  -a <password>      Password to use when connecting to the server.\n"
            "  -n <db>            Database number (eddy has only database 0).\n"
            "  -3                 Start session in RESP3 protocol mode (HELLO 3).\n"
            "  -c                 Enable cluster mode (follow -MOVED and -ASK redirections).\n"
            "  -x                 Read last argument from STDIN.\n"
            "  -r <repeat>        Execute specified command N times (-1: forever).\n"
            "  -i <interval>      When -r is used, waits <interval> seconds per command.\n"
            "  --raw              Use raw formatting for replies (default when STDOUT is\n"
            "                     not a tty).\n"
            "  --no-raw           Force formatted output even when STDOUT is not a tty.\n"
            "  --cluster <command> [args...]\n"
            "                     Cluster manager commands (docs/CLUSTER.md):\n"
            "                       create host:port [host:port ...]  (the first coordinates the map)\n"
            "                       add-node new_host:new_port existing_host:existing_port\n"
            "                       info host:port\n"
            "                       check host:port\n"
            "                       move host:port --slots N[-M] [--slots ...]\n"
            "                            --to <node-id|host:port> [--rate MB/s]\n"
            "                         (moves slots online; waits until the move ends)\n"
            "  --help             Output this help and exit.\n"
            "  --version          Output version and exit.\n\n"
            "Without a command, eddy-cli reads commands interactively; 'quit' leaves.\n",
            eddy_version(), DEFAULT_PORT);
    exit(status);
}

/* Parses options; returns the index of the first command argument. */
static int parse_options(int argc, char **argv, struct config *cfg)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(o, "-h") == 0 && has) cfg->host = argv[++i];
        else if (strcmp(o, "-p") == 0 && has) cfg->port = atoi(argv[++i]);
        else if (strcmp(o, "-s") == 0 && has) cfg->socket_path = argv[++i];
        else if (strcmp(o, "-a") == 0 && has) cfg->password = argv[++i];
        else if (strcmp(o, "-n") == 0 && has) cfg->db = atoi(argv[++i]);
        else if (strcmp(o, "-r") == 0 && has) cfg->repeat = strtoll(argv[++i], NULL, 10);
        else if (strcmp(o, "-i") == 0 && has) cfg->interval = atof(argv[++i]);
        else if (strcmp(o, "-x") == 0) cfg->stdin_arg = true;
        else if (strcmp(o, "-3") == 0) cfg->resp3 = true;
        else if (strcmp(o, "-c") == 0) cfg->cluster = true;
        else if (strcmp(o, "--cluster") == 0) break; /* the cluster manager: see main */
        else if (strcmp(o, "--raw") == 0) cfg->raw = true;
        else if (strcmp(o, "--no-raw") == 0) cfg->raw = false;
        else if (strcmp(o, "--no-auth-warning") == 0) continue;
        else if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) usage(0);
        else if (strcmp(o, "--version") == 0 || strcmp(o, "-v") == 0) {
            printf("eddy-cli %s\n", eddy_version());
            exit(0);
        } else if (o[0] == '-') {
            fprintf(stderr, "Unrecognized option or bad number of args for: '%s'\n", o);
            exit(1);
        } else {
            break; /* the command name */
        }
    }
    return i;
}

/* Sends a setup command and checks it did not fail. Returns 0 or -1 (printed). */
static int setup_command(eddy_ctx *ctx, const char *what, const char **argv, int argc)
{
    struct eddy_reply *r = eddy_command_argv(ctx, argc, argv, NULL);
    if (r == NULL) {
        fprintf(stderr, "Error: %s\n", eddy_errstr(ctx));
        return -1;
    }
    int rc = 0;
    if (r->type == EDDY_REPLY_ERROR) {
        fprintf(stderr, "%s failed: %s\n", what, r->str);
        rc = -1;
    }
    eddy_reply_free(r);
    return rc;
}

static eddy_ctx *connect_server(const struct config *cfg)
{
    char err[EDDY_ERRLEN];
    eddy_ctx *ctx = cfg->socket_path != NULL
                        ? eddy_connect_unix(cfg->socket_path, 0, NULL, err)
                        : eddy_connect(cfg->host, cfg->port, 0, NULL, err);
    if (ctx == NULL) {
        if (cfg->socket_path != NULL)
            fprintf(stderr, "Could not connect to eddy at %s: %s\n", cfg->socket_path, err);
        else
            fprintf(stderr, "Could not connect to eddy at %s:%d: %s\n", cfg->host, cfg->port,
                    err);
        return NULL;
    }
    char db[24];
    snprintf(db, sizeof(db), "%d", cfg->db);
    const char *auth[] = {"AUTH", cfg->password};
    const char *select[] = {"SELECT", db};
    const char *hello[] = {"HELLO", "3"};
    /* Like redis-cli, a refused AUTH is reported and the session goes on, so the
     * commands that follow show the server's NOAUTH errors. */
    if (cfg->password != NULL && setup_command(ctx, "AUTH", auth, 2) != 0 &&
        eddy_err(ctx) != EDDY_OK) {
        eddy_free(ctx);
        return NULL;
    }
    if ((cfg->db != 0 && setup_command(ctx, "SELECT", select, 2) != 0) ||
        (cfg->resp3 && setup_command(ctx, "HELLO 3", hello, 2) != 0)) {
        eddy_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Reads all of stdin into a new argument (binary-safe). */
static void read_stdin_arg(struct sbuf *s)
{
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        sb_add(s, buf, n);
    if (s->p == NULL)
        sb_add(s, "", 0);
}

static int one_shot(eddy_ctx **ctx, int argc, char **argv, struct config *cfg)
{
    struct args a = {0};
    for (int i = 0; i < argc; i++) {
        struct sbuf s = {0};
        sb_str(&s, argv[i]);
        args_push(&a, &s);
    }
    if (cfg->stdin_arg) {
        struct sbuf s = {0};
        read_stdin_arg(&s);
        args_push(&a, &s);
    }
    int rc = run_command(ctx, &a, cfg, cfg->repeat);
    args_free(&a);
    return rc == 0 ? 0 : 1;
}

/* ---- Cluster manager (--cluster) ---------------------------------------------------------
 * Like redis-cli --cluster, over eddy's internal commands: CLUSTER MYID, CLUSTER GETMAP
 * (epoch and payload) and CLUSTER SETMAP epoch payload (the payload format is in
 * docs/CLUSTER.md and cluster/cluster.h). */

#define CLUSTER_SLOTS 16384
#define MAX_NODES 1000

struct cnode {
    char id[41];
    char host[256];
    int port;
    int slots;
};

/* Splits "host:port" (the last colon separates them). Returns 0 or -1 (printed). */
static int parse_hostport(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long p = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= cap || *end != '\0' || p <= 0 ||
        p > 65535) {
        fprintf(stderr, "[ERR] Invalid address '%s': expected host:port\n", s);
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

static eddy_ctx *node_connect(const char *host, int port, const struct config *cfg)
{
    char err[EDDY_ERRLEN];
    eddy_ctx *c = eddy_connect(host, port, 5000, cfg->password, err);
    if (c == NULL)
        fprintf(stderr, "[ERR] Could not connect to %s:%d: %s\n", host, port, err);
    return c;
}

/* Sends a command; returns its reply, or NULL after printing why (a failure or an
 * error reply). */
static struct eddy_reply *node_call(eddy_ctx *c, const char *where, int argc, const char **argv,
                                    const size_t *lens)
{
    struct eddy_reply *r = eddy_command_argv(c, argc, argv, lens);
    if (r == NULL) {
        fprintf(stderr, "[ERR] %s: %s\n", where, eddy_errstr(c));
        return NULL;
    }
    if (r->type == EDDY_REPLY_ERROR) {
        fprintf(stderr, "[ERR] %s: %s %s: %s\n", where, argv[0], argc > 1 ? argv[1] : "", r->str);
        eddy_reply_free(r);
        return NULL;
    }
    return r;
}

/* Reads a node's id (CLUSTER MYID) into id. Returns 0 or -1 (printed). */
static int node_myid(eddy_ctx *c, const char *where, char id[41])
{
    const char *argv[] = {"CLUSTER", "MYID"};
    struct eddy_reply *r = node_call(c, where, 2, argv, NULL);
    if (r == NULL)
        return -1;
    int rc = r->type == EDDY_REPLY_STRING && r->len == 40 ? 0 : -1;
    if (rc == 0)
        memcpy(id, r->str, 41);
    else
        fprintf(stderr, "[ERR] %s: unexpected CLUSTER MYID reply\n", where);
    eddy_reply_free(r);
    return rc;
}

/* Reads a node's map (CLUSTER GETMAP): *epoch and the payload (malloc'd). */
static int node_getmap(eddy_ctx *c, const char *where, long long *epoch, char **payload)
{
    const char *argv[] = {"CLUSTER", "GETMAP"};
    struct eddy_reply *r = node_call(c, where, 2, argv, NULL);
    if (r == NULL)
        return -1;
    int rc = -1;
    if (r->type == EDDY_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == EDDY_REPLY_INTEGER && r->element[1]->type == EDDY_REPLY_STRING) {
        *epoch = r->element[0]->integer;
        *payload = strdup(r->element[1]->str);
        rc = *payload != NULL ? 0 : -1;
    } else {
        fprintf(stderr, "[ERR] %s: unexpected CLUSTER GETMAP reply\n", where);
    }
    eddy_reply_free(r);
    return rc;
}

/* Parses the nodes of a payload and counts their slots. Returns the node count. */
static int payload_nodes(const char *payload, struct cnode *nodes, int max)
{
    int n = 0;
    char *copy = strdup(payload);
    if (copy == NULL)
        die_oom();
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char id[64], host[256], rest[16];
        int port;
        if (sscanf(line, "node %63s %255s %d %15s", id, host, &port, rest) == 3 && n < max) {
            nodes[n] = (struct cnode){.port = port};
            snprintf(nodes[n].id, sizeof(nodes[n].id), "%s", id);
            snprintf(nodes[n].host, sizeof(nodes[n].host), "%s", host);
            n++;
        } else if (strncmp(line, "slots ", 6) == 0 && sscanf(line + 6, "%63s", id) == 1) {
            int k;
            for (k = 0; k < n && strcmp(nodes[k].id, id) != 0; k++)
                ;
            char *p = line + 6 + strlen(id);
            long lo, hi;
            while (k < n && *p != '\0') {
                lo = strtol(p, &p, 10);
                hi = *p == '-' ? strtol(p + 1, &p, 10) : lo;
                nodes[k].slots += (int)(hi - lo + 1);
                while (*p == ' ')
                    p++;
            }
        }
    }
    free(copy);
    return n;
}

/* The index in nodes of the payload's coordinator (its "coordinator" line, else the
 * first node). */
static int payload_coordinator(const char *payload, const struct cnode *nodes, int n)
{
    const char *p = payload;
    while (p != NULL && *p != '\0') {
        char id[64];
        if (strncmp(p, "coordinator ", 12) == 0 && sscanf(p + 12, "%63s", id) == 1)
            for (int k = 0; k < n; k++)
                if (strcmp(nodes[k].id, id) == 0)
                    return k;
        if ((p = strchr(p, '\n')) != NULL)
            p++;
    }
    return 0;
}

/* Sends CLUSTER SETMAP epoch payload to host:port. Returns 0 or -1 (printed). */
static int push_map(const char *host, int port, long long epoch, const char *payload,
                    const struct config *cfg)
{
    char where[300], ep[24];
    snprintf(where, sizeof(where), "%s:%d", host, port);
    snprintf(ep, sizeof(ep), "%lld", epoch);
    eddy_ctx *c = node_connect(host, port, cfg);
    if (c == NULL)
        return -1;
    const char *argv[] = {"CLUSTER", "SETMAP", ep, payload};
    struct eddy_reply *r = node_call(c, where, 4, argv, NULL);
    eddy_free(c);
    eddy_reply_free(r);
    return r != NULL ? 0 : -1;
}

static void print_node(const struct cnode *n, int lo, int hi)
{
    printf("M: %s %s:%d\n", n->id, n->host, n->port);
    if (lo <= hi)
        printf("   slots:[%d-%d] (%d slots) master\n", lo, hi, hi - lo + 1);
    else
        printf("   slots: (0 slots) master\n");
}

static int cluster_create(int argc, char **argv, const struct config *cfg)
{
    if (argc < 1 || argc > MAX_NODES) {
        fprintf(stderr, "[ERR] create needs between 1 and %d host:port arguments\n", MAX_NODES);
        return 1;
    }
    struct cnode *nodes = calloc((size_t)argc, sizeof(*nodes));
    struct sbuf payload = {0};
    int rc = 1;
    if (nodes == NULL)
        die_oom();
    for (int i = 0; i < argc; i++) {
        struct cnode *n = &nodes[i];
        long long epoch;
        char *old = NULL;
        if (parse_hostport(argv[i], n->host, sizeof(n->host), &n->port) != 0)
            goto out;
        eddy_ctx *c = node_connect(n->host, n->port, cfg);
        if (c == NULL)
            goto out;
        int ok = node_myid(c, argv[i], n->id) == 0 && node_getmap(c, argv[i], &epoch, &old) == 0;
        eddy_free(c);
        free(old);
        if (!ok)
            goto out;
        if (epoch > 0) {
            fprintf(stderr, "[ERR] Node %s is already part of a cluster (map epoch %lld)\n",
                    argv[i], epoch);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(nodes[j].id, n->id) == 0) {
                fprintf(stderr, "[ERR] %s and %s are the same node\n", argv[j], argv[i]);
                goto out;
            }
        sb_printf(&payload, "node %s ", n->id);
        sb_str(&payload, n->host);
        sb_printf(&payload, " %d\n", n->port);
    }
    /* The first node holds the map from now on: later changes are proposed to it. */
    sb_printf(&payload, "coordinator %s\n", nodes[0].id);
    printf(">>> Performing hash slots allocation on %d nodes...\n", argc);
    /* Contiguous ranges as redis-cli makes them: node i gets [round(i*S/n), round((i+1)*S/n)-1]. */
    for (int i = 0; i < argc; i++) {
        int lo = (int)(((long)i * CLUSTER_SLOTS + argc / 2) / argc);
        int hi = (int)(((long)(i + 1) * CLUSTER_SLOTS + argc / 2) / argc) - 1;
        if (lo <= hi)
            sb_printf(&payload, "slots %s %d-%d\n", nodes[i].id, lo, hi);
        print_node(&nodes[i], lo, hi);
    }
    printf(">>> Sending the slot map (epoch 1) to every node\n");
    for (int i = 0; i < argc; i++)
        if (push_map(nodes[i].host, nodes[i].port, 1, payload.p, cfg) != 0)
            goto out;
    printf("[OK] All %d slots covered.\n", CLUSTER_SLOTS);
    printf(">>> Node %s:%d coordinates the slot map\n", nodes[0].host, nodes[0].port);
    rc = 0;
out:
    free(payload.p);
    free(nodes);
    return rc;
}

static int cluster_add_node(int argc, char **argv, const struct config *cfg)
{
    char host[256], ehost[256], id[41], where[300];
    int port, eport, rc = 1;
    long long epoch, nepoch;
    char *payload = NULL, *npayload = NULL;
    struct cnode *nodes = calloc(MAX_NODES, sizeof(*nodes));
    if (nodes == NULL)
        die_oom();
    if (argc != 2) {
        fprintf(stderr, "[ERR] usage: --cluster add-node new_host:new_port "
                        "existing_host:existing_port\n");
        goto out;
    }
    if (parse_hostport(argv[0], host, sizeof(host), &port) != 0 ||
        parse_hostport(argv[1], ehost, sizeof(ehost), &eport) != 0)
        goto out;
    eddy_ctx *c = node_connect(ehost, eport, cfg);
    if (c == NULL)
        goto out;
    int ok = node_getmap(c, argv[1], &epoch, &payload) == 0;
    eddy_free(c);
    if (!ok)
        goto out;
    if (epoch == 0) {
        fprintf(stderr, "[ERR] %s is not part of a cluster yet (use --cluster create)\n", argv[1]);
        goto out;
    }
    printf(">>> Adding node %s to cluster %s\n", argv[0], argv[1]);
    if ((c = node_connect(host, port, cfg)) == NULL)
        goto out;
    ok = node_myid(c, argv[0], id) == 0 && node_getmap(c, argv[0], &nepoch, &npayload) == 0;
    eddy_free(c);
    if (!ok)
        goto out;
    if (nepoch > 0) {
        fprintf(stderr, "[ERR] Node %s is already part of a cluster (map epoch %lld)\n", argv[0],
                nepoch);
        goto out;
    }
    int n = payload_nodes(payload, nodes, MAX_NODES);
    for (int i = 0; i < n; i++)
        if (strcmp(nodes[i].id, id) == 0) {
            fprintf(stderr, "[ERR] Node %s is already in the cluster\n", argv[0]);
            goto out;
        }
    struct sbuf p = {0};
    sb_str(&p, payload);
    sb_printf(&p, "node %s ", id);
    sb_str(&p, host);
    sb_printf(&p, " %d\n", port);
    snprintf(nodes[n].id, sizeof(nodes[n].id), "%s", id);
    snprintf(nodes[n].host, sizeof(nodes[n].host), "%s", host);
    nodes[n].port = port;
    /* The coordinator checks the epoch, keeps the map and pushes it to every node,
     * the new one included. */
    int k = payload_coordinator(payload, nodes, n);
    char ep[24];
    snprintf(ep, sizeof(ep), "%lld", epoch + 1);
    snprintf(where, sizeof(where), "%s:%d", nodes[k].host, nodes[k].port);
    printf(">>> Proposing the slot map of epoch %lld to the coordinator %s\n", epoch + 1, where);
    rc = 1;
    if ((c = node_connect(nodes[k].host, nodes[k].port, cfg)) != NULL) {
        const char *pv[] = {"CLUSTER", "PROPOSEMAP", ep, p.p};
        struct eddy_reply *r = node_call(c, where, 4, pv, NULL);
        rc = r == NULL;
        eddy_reply_free(r);
        eddy_free(c);
    }
    free(p.p);
    if (rc == 0) {
        snprintf(where, sizeof(where), "%s", argv[0]);
        printf("[OK] New node %s added.\n", where);
    }
out:
    free(payload);
    free(npayload);
    free(nodes);
    return rc;
}

/* Reads the map of host:port into nodes; returns the count, or -1 (printed). */
static int load_nodes(const char *addr, const struct config *cfg, struct cnode *nodes,
                      long long *epoch, char **payload)
{
    char host[256];
    int port;
    if (parse_hostport(addr, host, sizeof(host), &port) != 0)
        return -1;
    eddy_ctx *c = node_connect(host, port, cfg);
    if (c == NULL)
        return -1;
    int ok = node_getmap(c, addr, epoch, payload) == 0;
    eddy_free(c);
    return ok ? payload_nodes(*payload, nodes, MAX_NODES) : -1;
}

static int cluster_info(const char *addr, const struct config *cfg)
{
    struct cnode *nodes = calloc(MAX_NODES, sizeof(*nodes));
    long long epoch, total = 0;
    char *payload = NULL;
    if (nodes == NULL)
        die_oom();
    int n = load_nodes(addr, cfg, nodes, &epoch, &payload), masters = 0, rc = n < 0;
    for (int i = 0; i < n; i++) {
        eddy_ctx *c = node_connect(nodes[i].host, nodes[i].port, cfg);
        struct eddy_reply *r = c ? eddy_command(c, "DBSIZE", (char *)NULL) : NULL;
        long long keys = r && r->type == EDDY_REPLY_INTEGER ? r->integer : -1;
        eddy_reply_free(r);
        eddy_free(c);
        if (keys < 0)
            rc = 1;
        else
            total += keys;
        masters += nodes[i].slots > 0;
        printf("%s:%d (%.8s...) -> %lld keys | %d slots | 0 slaves.\n", nodes[i].host,
               nodes[i].port, nodes[i].id, keys, nodes[i].slots);
    }
    if (n >= 0)
        printf("[OK] %lld keys in %d masters.\n%.2f keys per slot on average.\n", total, masters,
               (double)total / CLUSTER_SLOTS);
    free(payload);
    free(nodes);
    return rc;
}

static int cluster_check(const char *addr, const struct config *cfg)
{
    struct cnode *nodes = calloc(MAX_NODES, sizeof(*nodes));
    long long epoch;
    char *payload = NULL;
    if (nodes == NULL)
        die_oom();
    int n = load_nodes(addr, cfg, nodes, &epoch, &payload), rc = n < 0, covered = 0;
    if (n < 0)
        goto out;
    printf(">>> Performing Cluster Check (using node %s, map epoch %lld)\n", addr, epoch);
    int k = payload_coordinator(payload, nodes, n);
    if (n > 0)
        printf("Coordinator: %s %s:%d\n", nodes[k].id, nodes[k].host, nodes[k].port);
    for (int i = 0; i < n; i++) {
        printf("M: %s %s:%d\n   slots: %d slots master\n", nodes[i].id, nodes[i].host,
               nodes[i].port, nodes[i].slots);
        covered += nodes[i].slots;
    }
    bool agree = true;
    for (int i = 0; i < n; i++) {
        char where[300], *other = NULL;
        long long e;
        snprintf(where, sizeof(where), "%s:%d", nodes[i].host, nodes[i].port);
        eddy_ctx *c = node_connect(nodes[i].host, nodes[i].port, cfg);
        if (c == NULL || node_getmap(c, where, &e, &other) != 0) {
            agree = false;
        } else if (e != epoch || strcmp(other, payload) != 0) {
            fprintf(stderr, "[ERR] Node %s has map epoch %lld, %s has %lld%s\n", where, e, addr,
                    epoch, e == epoch ? " with different contents" : "");
            agree = false;
        }
        free(other);
        eddy_free(c);
    }
    if (agree) {
        printf("[OK] All nodes agree about slots configuration.\n");
    } else {
        printf("[ERR] Nodes don't agree about configuration!\n");
        rc = 1;
    }
    printf(">>> Check slots coverage...\n");
    if (covered == CLUSTER_SLOTS) {
        printf("[OK] All %d slots covered.\n", CLUSTER_SLOTS);
    } else {
        printf("[ERR] Not all %d slots are covered by nodes (%d are).\n", CLUSTER_SLOTS, covered);
        rc = 1;
    }
out:
    free(payload);
    free(nodes);
    return rc;
}

/* The owner (index in nodes) of each slot of a payload; -1 when unassigned. */
static void payload_owners(const char *payload, const struct cnode *nodes, int n, short *owner)
{
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        owner[s] = -1;
    char *copy = strdup(payload);
    if (copy == NULL)
        die_oom();
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char id[64];
        if (strncmp(line, "slots ", 6) != 0 || sscanf(line + 6, "%63s", id) != 1)
            continue;
        int k;
        for (k = 0; k < n && strcmp(nodes[k].id, id) != 0; k++)
            ;
        char *p = line + 6 + strlen(id);
        while (k < n && *p != '\0') {
            long lo = strtol(p, &p, 10), hi = *p == '-' ? strtol(p + 1, &p, 10) : lo;
            for (long sl = lo; sl <= hi && sl < CLUSTER_SLOTS; sl++)
                if (sl >= 0)
                    owner[sl] = (short)k;
            while (*p == ' ')
                p++;
        }
    }
    free(copy);
}

/* The value of "field:" in a CLUSTER MIGRATION STATUS text, copied into out. */
static const char *status_field(const char *text, const char *field, char *out, size_t cap)
{
    size_t fl = strlen(field);
    out[0] = '\0';
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            size_t n = strcspn(p + fl + 1, "\r\n");
            snprintf(out, cap, "%.*s", (int)n, p + fl + 1);
            break;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return out;
}

/* move host:port --slots N[-M] [--slots ...] --to <node-id|host:port> [--rate MB/s]:
 * sends CLUSTER MIGRATESLOTS to the owner of the slots, then follows CLUSTER MIGRATION
 * STATUS until the move is done (exit 0), failed or cancelled (exit 1). */
static int cluster_move(int argc, char **argv, const struct config *cfg)
{
    const char *to = NULL, *rate = NULL, *ranges[64];
    int nr = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--slots") == 0 && nr < 64)
            ranges[nr++] = argv[i + 1];
        else if (strcmp(argv[i], "--to") == 0)
            to = argv[i + 1];
        else if (strcmp(argv[i], "--rate") == 0)
            rate = argv[i + 1];
        else
            to = NULL, nr = 0, i = argc; /* unknown option: usage below */
    }
    if (argc < 1 || argc % 2 == 0 || to == NULL || nr == 0) {
        fprintf(stderr, "[ERR] usage: --cluster move host:port --slots N[-M] [--slots ...] "
                        "--to <node-id|host:port> [--rate MB/s]\n");
        return 1;
    }
    struct cnode *nodes = calloc(MAX_NODES, sizeof(*nodes));
    short *owner = calloc(CLUSTER_SLOTS, sizeof(*owner));
    long long epoch;
    char *payload = NULL;
    int rc = 1, src = -1;
    eddy_ctx *c = NULL;
    if (nodes == NULL || owner == NULL)
        die_oom();
    int n = load_nodes(argv[0], cfg, nodes, &epoch, &payload);
    if (n < 0)
        goto out;
    payload_owners(payload, nodes, n, owner);
    for (int i = 0; i < nr; i++) {
        long lo, hi;
        char *end;
        lo = strtol(ranges[i], &end, 10);
        hi = *end == '-' ? strtol(end + 1, &end, 10) : lo;
        if (*end != '\0' || lo < 0 || hi < lo || hi >= CLUSTER_SLOTS) {
            fprintf(stderr, "[ERR] Invalid slot range '%s'\n", ranges[i]);
            goto out;
        }
        for (long s = lo; s <= hi; s++) {
            if (owner[s] < 0 || (src >= 0 && owner[s] != src)) {
                fprintf(stderr, "[ERR] Slot %ld is %s; move the slots of one node at a time\n",
                        s, owner[s] < 0 ? "not assigned" : "owned by another node");
                goto out;
            }
            src = owner[s];
        }
    }
    printf(">>> Moving %d range(s) from %s:%d to %s (map epoch %lld)\n", nr, nodes[src].host,
           nodes[src].port, to, epoch);
    if ((c = node_connect(nodes[src].host, nodes[src].port, cfg)) == NULL)
        goto out;
    const char *av[72];
    int ac = 0;
    av[ac++] = "CLUSTER";
    av[ac++] = "MIGRATESLOTS";
    av[ac++] = to;
    for (int i = 0; i < nr; i++)
        av[ac++] = ranges[i];
    if (rate != NULL) {
        av[ac++] = "RATE";
        av[ac++] = rate;
    }
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", nodes[src].host, nodes[src].port);
    struct eddy_reply *r = node_call(c, where, ac, av, NULL);
    if (r == NULL)
        goto out;
    printf(">>> Migration %s started\n", r->str);
    eddy_reply_free(r);
    long long last = -1;
    for (;;) {
        const char *st[] = {"CLUSTER", "MIGRATION", "STATUS"};
        r = node_call(c, where, 3, st, NULL);
        if (r == NULL)
            goto out;
        char state[32], keys[32], mb[32], kps[32], fence[32], err[256], bytes[32];
        status_field(r->str, "state", state, sizeof(state));
        status_field(r->str, "keys_sent", keys, sizeof(keys));
        if (atoll(keys) != last) {
            printf("    %s: %s keys sent\n", state, keys);
            last = atoll(keys);
        }
        if (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
            strcmp(state, "cancelled") == 0) {
            status_field(r->str, "mb_per_s", mb, sizeof(mb));
            status_field(r->str, "keys_per_s", kps, sizeof(kps));
            status_field(r->str, "fence_ms", fence, sizeof(fence));
            status_field(r->str, "bytes_raw", bytes, sizeof(bytes));
            status_field(r->str, "error", err, sizeof(err));
            if (strcmp(state, "done") == 0) {
                printf("[OK] Moved: %s keys, %s bytes, %s MB/s, %s keys/s, fence %s ms\n", keys,
                       bytes, mb, kps, fence);
                rc = 0;
            } else {
                fprintf(stderr, "[ERR] Migration %s: %s\n", state, err);
            }
            eddy_reply_free(r);
            break;
        }
        eddy_reply_free(r);
        usleep(100000);
    }
out:
    eddy_free(c);
    free(payload);
    free(owner);
    free(nodes);
    return rc;
}

static int cluster_manager(int argc, char **argv, const struct config *cfg)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "create") == 0)
        return cluster_create(argc - 1, argv + 1, cfg);
    if (strcmp(sub, "add-node") == 0)
        return cluster_add_node(argc - 1, argv + 1, cfg);
    if (strcmp(sub, "info") == 0 && argc == 2)
        return cluster_info(argv[1], cfg);
    if (strcmp(sub, "check") == 0 && argc == 2)
        return cluster_check(argv[1], cfg);
    if (strcmp(sub, "move") == 0)
        return cluster_move(argc - 1, argv + 1, cfg);
    fprintf(stderr, "Unknown --cluster subcommand or wrong arguments: '%s'\n"
                    "Cluster Manager Commands: create host:port..., add-node new existing, "
                    "info host:port, check host:port, move host:port --slots N[-M] --to node\n", sub);
    return 1;
}

int main(int argc, char **argv)
{
    struct config cfg = {.host = "127.0.0.1", .port = DEFAULT_PORT, .repeat = 1};
    cfg.raw = !isatty(STDOUT_FILENO);
    int first = parse_options(argc, argv, &cfg);
    if (first < argc && strcmp(argv[first], "--cluster") == 0)
        return cluster_manager(argc - first - 1, argv + first + 1, &cfg);
    eddy_ctx *ctx = connect_server(&cfg);
    if (ctx == NULL)
        return 1;
    int rc = first < argc || cfg.stdin_arg ? one_shot(&ctx, argc - first, argv + first, &cfg)
                                           : (cfg.interactive = true, repl(&ctx, &cfg));
    eddy_free(ctx);
    return rc;
}
