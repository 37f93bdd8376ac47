/* config.c - eddy's configuration: defaults, a Redis-style file of "name value"
 * lines, command-line flags (which override the file), CONFIG GET and CONFIG SET. */
#include "net_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum opt_type {
    OPT_INT, OPT_MEM, OPT_STR, OPT_FSYNC, OPT_LOGLEVEL, OPT_YESNO_FIXED, OPT_BOOL,
    OPT_YESNOLOCAL, /* no = 0, yes = 1, local = 2 */
    OPT_SPACE       /* a memory value, or N% with up to two decimals (stored as -100 N) */
};

struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;     /* in struct net_config */
    size_t size;       /* for strings */
    bool mutable_;     /* CONFIG SET allowed at run time */
    long long min, max;
    const char *help;
    const char *fixed; /* OPT_YESNO_FIXED: the only value, kept for client compatibility */
};

#define F(field) offsetof(struct net_config, field), sizeof(((struct net_config *)0)->field)

static const struct opt opts[] = {
    {"port", OPT_INT, F(port), false, 0, 65535, "TCP port (default 7711)", NULL},
    {"bind", OPT_STR, F(bind), false, 0, 0,
     "addresses to listen on; a leading - makes one optional (default \"127.0.0.1 -::1\")", NULL},
    {"protected-mode", OPT_BOOL, F(protected_mode), true, 0, 0,
     "yes: without requirepass, refuse clients not on loopback (default yes)", NULL},
    {"dir", OPT_STR, F(dir), false, 0, 0, "data directory (default ./data)", NULL},
    {"threads", OPT_INT, F(threads), false, 0, 256, "I/O threads (default: number of cores)",
     NULL},
    {"appendfsync", OPT_FSYNC, F(appendfsync), true, 0, 0,
     "always | everysec | no (default everysec)", NULL},
    {"requirepass", OPT_STR, F(requirepass), true, 0, 0, "password clients must AUTH with",
     NULL},
    {"maxclients", OPT_INT, F(maxclients), true, 1, 1000000, "most connected clients (10000)",
     NULL},
    {"timeout", OPT_INT, F(timeout), true, 0, 100000000, "close clients idle this many seconds (0 = never)",
     NULL},
    {"client-output-buffer-limit", OPT_MEM, F(output_limit), true, 0, LLONG_MAX,
     "close a client whose pending replies exceed this (default 1gb; 0 = no limit)", NULL},
    {"client-query-buffer-limit", OPT_MEM, F(query_limit), true, 1024 * 1024, LLONG_MAX,
     "close a client whose unparsed input exceeds this (default 1gb)", NULL},
    {"proto-max-bulk-len", OPT_MEM, F(max_bulk), true, 1024 * 1024, LLONG_MAX,
     "longest bulk string accepted (default 512mb)", NULL},
    {"loglevel", OPT_LOGLEVEL, F(loglevel), true, 0, 0, "debug | verbose | notice | warning",
     NULL},
    {"logfile", OPT_STR, F(logfile), false, 0, 0, "log file (default: standard error)", NULL},
    {"block-cache-size", OPT_MEM, F(block_cache), false, 1024 * 1024, LLONG_MAX,
     "RocksDB block cache (default 256mb)", NULL},
    {"memtable-size", OPT_MEM, F(memtable), false, 4 * 1024 * 1024, LLONG_MAX,
     "RocksDB memtable budget (default 64mb)", NULL},
    {"value-cache-size", OPT_MEM, F(value_cache), false, 0, LLONG_MAX,
     "memory for recently read and written small values, so reads skip RocksDB "
     "(default 64mb; 0 = off)", NULL},
    {"min-free-disk", OPT_SPACE, F(min_free_disk), true, 0, 0,
     "refuse commands that add data while the data directory's file system has, or "
     "would have after them, less free space than this: bytes (64mb) or a percentage "
     "(5%, 0.5%) of it (default 2%; 0 = off)",
     NULL},
    {"hz", OPT_INT, F(hz), true, 0, INT_MAX, "background tasks per second, 1 to 500 (default 10)",
     NULL},
    {"udf-time-limit", OPT_INT, F(udf_time_limit), true, 1, 86400000,
     "milliseconds a function call may run before it is killed (default 5000)", NULL},
    {"udf-memory-limit", OPT_MEM, F(udf_memory_limit), true, 1024 * 1024, LLONG_MAX,
     "memory of each thread's Lua state (default 64mb)", NULL},
    {"cluster-enabled", OPT_BOOL, F(cluster_enabled), false, 0, 0,
     "yes: cluster mode, slot map and MOVED routing (docs/CLUSTER.md; default no)", NULL},
    {"enable-debug-command", OPT_YESNOLOCAL, F(enable_debug), false, 0, 0,
     "no | yes | local: allow DEBUG (fault injection and held writes, for tests; "
     "local: from loopback clients only; default no)", NULL},
    /* Answered for compatibility with tools that ask (redis-benchmark asks for these). */
    {"save", OPT_YESNO_FIXED, 0, 0, false, 0, 0, NULL, ""},
    {"appendonly", OPT_YESNO_FIXED, 0, 0, false, 0, 0, NULL, "yes"},
    {"databases", OPT_YESNO_FIXED, 0, 0, false, 0, 0, NULL, "1"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void defaults(struct net_config *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 7711;
    strcpy(c->bind, "127.0.0.1 -::1");
    c->protected_mode = 1;
    strcpy(c->dir, "./data");
    c->threads = 0;
    c->appendfsync = ENG_FSYNC_EVERYSEC;
    c->maxclients = 10000;
    c->timeout = 0;
    c->output_limit = 1024LL * 1024 * 1024;
    c->query_limit = 1024LL * 1024 * 1024;
    c->max_bulk = 512LL * 1024 * 1024;
    c->loglevel = CM_LOG_NOTICE;
    c->block_cache = 256LL * 1024 * 1024;
    c->memtable = 64LL * 1024 * 1024;
    c->value_cache = 64LL * 1024 * 1024;
    c->hz = 10;
    c->udf_time_limit = 5000;
    c->udf_memory_limit = 64LL * 1024 * 1024;
    c->min_free_disk = -200; /* 2% (hundredths of a percent, negative) */
}

static const struct opt *find_opt(const char *name, size_t n)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (cm_streq_ci(name, n, opts[i].name))
            return &opts[i];
    return NULL;
}

int net_parse_memory(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0)
        return CM_EINVAL;
    long long mul = 1;
    if (*end != '\0') {
        static const struct {
            const char *u;
            long long m;
        } units[] = {{"b", 1},           {"k", 1000},       {"kb", 1024},
                     {"m", 1000000},     {"mb", 1 << 20},   {"g", 1000000000},
                     {"gb", 1LL << 30}};
        size_t i;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strcasecmp(end, units[i].u) == 0)
                break;
        if (i == sizeof(units) / sizeof(units[0]))
            return CM_EINVAL;
        mul = units[i].m;
    }
    if (v > LLONG_MAX / mul)
        return CM_EINVAL;
    *out = v * mul;
    return 0;
}

/* CONFIG SET runs on any I/O thread while the others read the settings: numbers are
 * stored and loaded atomically (NET_CFG in net_int.h), strings (requirepass) change
 * under str_lock. */
static pthread_mutex_t str_lock = PTHREAD_MUTEX_INITIALIZER;

bool net_config_has_password(struct net_config *cfg)
{
    pthread_mutex_lock(&str_lock);
    bool set = cfg->requirepass[0] != '\0';
    pthread_mutex_unlock(&str_lock);
    return set;
}

void net_config_password(struct net_config *cfg, char *buf, size_t cap)
{
    pthread_mutex_lock(&str_lock);
    snprintf(buf, cap, "%s", cfg->requirepass);
    pthread_mutex_unlock(&str_lock);
}

/* Stores an int-sized (or long long) number into an option's field. */
static void store_num(char *field, size_t size, long long v)
{
    if (size == sizeof(int))
        __atomic_store_n((int *)field, (int)v, __ATOMIC_RELAXED);
    else
        __atomic_store_n((long long *)field, v, __ATOMIC_RELAXED);
}

/* A percentage's number ("2", "2.5", "0.25") in hundredths of a percent: 250 for
 * "2.5". -1 unless it is digits, or digits, a point and one or two digits. */
static long long parse_hundredths(const char *p, size_t n)
{
    long long whole = 0, frac = 0;
    size_t i = 0, w = 0, d = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, w++)
        if ((whole = whole * 10 + (p[i] - '0')) > 100)
            return -1;
    if (i < n && p[i] == '.')
        for (i++; i < n && p[i] >= '0' && p[i] <= '9' && d < 2; i++, d++)
            frac = frac * 10 + (p[i] - '0');
    if (i != n || w == 0 || (i > w && d == 0))
        return -1;
    return whole * 100 + (d == 1 ? frac * 10 : frac);
}

/* Matches val against names[0..n-1] (case-insensitive); the index or -1. */
static int pick(const char *val, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(val, names[i]) == 0)
            return i;
    return -1;
}

/* Sets one option from text; with c NULL only checks the value. Returns 0 or
 * CM_EINVAL with msg. */
static int set_opt(struct net_config *c, const struct opt *o, const char *val, char *msg,
                   size_t cap)
{
    static const char *const fsyncs[] = {"always", "everysec", "no"};
    static const int fsync_vals[] = {ENG_FSYNC_ALWAYS, ENG_FSYNC_EVERYSEC, ENG_FSYNC_NO};
    static const char *const noyes[] = {"no", "yes", "local"};
    char *field = c != NULL ? (char *)c + o->offset : NULL;
    long long v;
    int i;
    switch (o->type) {
    case OPT_INT:
        if (cm_str_to_ll(val, strlen(val), &v) != 0 || v < o->min || v > o->max) {
            snprintf(msg, cap, "argument must be an integer between %lld and %lld", o->min,
                     o->max);
            return CM_EINVAL;
        }
        if (o->offset == offsetof(struct net_config, hz)) /* clamped, as Redis's hz */
            v = v < 1 ? 1 : v > 500 ? 500 : v;
        break;
    case OPT_MEM:
        /* 0 only where it means something (no limit, off): its minimum is 0. */
        if (net_parse_memory(val, &v) != 0 || v < o->min) {
            snprintf(msg, cap, "argument must be a memory value of at least %lld bytes", o->min);
            return CM_EINVAL;
        }
        break;
    case OPT_STR:
        if (strlen(val) >= o->size) {
            snprintf(msg, cap, "value is too long");
            return CM_EINVAL;
        }
        if (field != NULL) {
            pthread_mutex_lock(&str_lock);
            strcpy(field, val);
            pthread_mutex_unlock(&str_lock);
        }
        return 0;
    case OPT_FSYNC:
        if ((i = pick(val, fsyncs, 3)) < 0) {
            snprintf(msg, cap, "argument(s) must be one of the following: always, everysec, no");
            return CM_EINVAL;
        }
        v = fsync_vals[i];
        break;
    case OPT_LOGLEVEL:
        if ((v = cm_log_level_parse(val)) < 0) {
            snprintf(msg, cap,
                     "argument(s) must be one of the following: debug, verbose, notice, warning");
            return CM_EINVAL;
        }
        break;
    case OPT_BOOL:
        if ((v = pick(val, noyes, 2)) < 0) {
            snprintf(msg, cap, "argument must be 'yes' or 'no'");
            return CM_EINVAL;
        }
        break;
    case OPT_YESNOLOCAL:
        if ((v = pick(val, noyes, 3)) < 0) {
            snprintf(msg, cap, "argument(s) must be one of the following: no, yes, local");
            return CM_EINVAL;
        }
        break;
    case OPT_SPACE: {
        size_t n = strlen(val);
        if (n > 1 && val[n - 1] == '%') {
            if ((v = parse_hundredths(val, n - 1)) < 0 || v > 10000) {
                snprintf(msg, cap, "argument must be a percentage from 0%% to 100%%, two "
                                   "decimals at most");
                return CM_EINVAL;
            }
            v = -v;
        } else if (net_parse_memory(val, &v) != 0) {
            snprintf(msg, cap, "argument must be a memory value or a percentage (5%%)");
            return CM_EINVAL;
        }
        break;
    }
    case OPT_YESNO_FIXED:
        if (strcasecmp(val, o->fixed) != 0) {
            snprintf(msg, cap, "eddy only supports '%s' for this option", o->fixed);
            return CM_EINVAL;
        }
        return 0;
    default:
        return CM_EINVAL;
    }
    if (field != NULL)
        store_num(field, o->type == OPT_INT || o->type == OPT_MEM || o->type == OPT_SPACE
                             ? o->size
                             : sizeof(int),
                  v);
    return 0;
}

static void format_opt(const struct net_config *c, const struct opt *o, char *buf, size_t cap)
{
    const char *field = (const char *)c + o->offset;
    static const char *fsync_names[] = {"no", "everysec", "always"};
    static const char *levels[] = {"debug", "verbose", "notice", "warning"};
    switch (o->type) {
    case OPT_INT:
        snprintf(buf, cap, "%lld",
                 o->size == sizeof(int) ? (long long)__atomic_load_n((const int *)field, __ATOMIC_RELAXED) : __atomic_load_n((const long long *)field, __ATOMIC_RELAXED));
        break;
    case OPT_MEM:
        snprintf(buf, cap, "%lld", __atomic_load_n((const long long *)field, __ATOMIC_RELAXED));
        break;
    case OPT_SPACE: {
        long long v = __atomic_load_n((const long long *)field, __ATOMIC_RELAXED);
        if (v >= 0)
            snprintf(buf, cap, "%lld", v);
        else if (-v % 100 == 0)
            snprintf(buf, cap, "%lld%%", -v / 100);
        else if (-v % 10 == 0)
            snprintf(buf, cap, "%lld.%lld%%", -v / 100, -v % 100 / 10);
        else
            snprintf(buf, cap, "%lld.%02lld%%", -v / 100, -v % 100);
        break;
    }
    case OPT_STR:
        pthread_mutex_lock(&str_lock);
        snprintf(buf, cap, "%s", field);
        pthread_mutex_unlock(&str_lock);
        break;
    case OPT_FSYNC:
        snprintf(buf, cap, "%s", fsync_names[__atomic_load_n((const int *)field, __ATOMIC_RELAXED)]);
        break;
    case OPT_LOGLEVEL:
        snprintf(buf, cap, "%s", levels[__atomic_load_n((const int *)field, __ATOMIC_RELAXED) & 3]);
        break;
    case OPT_YESNO_FIXED:
        snprintf(buf, cap, "%s", o->fixed);
        break;
    case OPT_BOOL:
        snprintf(buf, cap, "%s", __atomic_load_n((const int *)field, __ATOMIC_RELAXED) ? "yes" : "no");
        break;
    case OPT_YESNOLOCAL:
        snprintf(buf, cap, "%s", (const char *[]){"no", "yes", "local"}[__atomic_load_n((const int *)field, __ATOMIC_RELAXED) % 3]);
        break;
    }
}

/* Whether option o matches one of the n patterns. */
static bool opt_matches(const struct opt *o, const char *const *pats, const size_t *plens,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cm_glob_match(pats[i], plens[i], o->name, strlen(o->name), true))
            return true;
    return false;
}

int net_config_get(struct net_config *cfg, const char *const *pats, const size_t *plens,
                   size_t npats, struct cm_buf *out, int proto)
{
    size_t n = 0;
    for (size_t i = 0; i < NOPTS; i++)
        n += opt_matches(&opts[i], pats, plens, npats);
    resp_add_map(out, n, proto);
    for (size_t i = 0; i < NOPTS; i++) {
        if (!opt_matches(&opts[i], pats, plens, npats))
            continue;
        char val[1100];
        format_opt(cfg, &opts[i], val, sizeof(val));
        resp_add_cstr(out, opts[i].name);
        resp_add_cstr(out, val);
    }
    return 0;
}

int net_config_set(struct net_config *cfg, const char *name, size_t nlen, const char *val,
                   size_t vlen, char *msg, size_t msgcap)
{
    const struct opt *o = find_opt(name, nlen);
    if (o == NULL) {
        snprintf(msg, msgcap, "Unknown option or number of arguments for CONFIG SET - '%.*s'",
                 (int)(nlen > 64 ? 64 : nlen), name);
        return CM_EINVAL;
    }
    if (!o->mutable_) {
        snprintf(msg, msgcap, "CONFIG SET failed (possibly related to argument '%s') - can't set immutable config",
                 o->name);
        return CM_EINVAL;
    }
    char *v = cm_malloc(vlen + 1);
    if (v == NULL) {
        snprintf(msg, msgcap, "out of memory");
        return CM_ENOMEM;
    }
    memcpy(v, val, vlen);
    v[vlen] = '\0';
    char detail[200];
    int rc = set_opt(cfg, o, v, detail, sizeof(detail)); /* cfg NULL: a check only */
    cm_free(v);
    if (rc != 0)
        snprintf(msg, msgcap, "CONFIG SET failed (possibly related to argument '%s') - %s",
                 o->name, detail);
    return rc;
}

static int load_file(struct net_config *c, const char *path, struct cm_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cm_err_set(err, CM_EIO, "cannot open config file %s: %s", path, strerror(errno));
    char line[2048];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        p[strcspn(p, "\r\n")] = '\0';
        if (*p == '\0' || *p == '#')
            continue;
        char *name = p;
        p += strcspn(p, " \t");
        if (*p != '\0')
            *p++ = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        /* Strip one pair of surrounding quotes. */
        size_t vl = strlen(p);
        if (vl >= 2 && (p[0] == '"' || p[0] == '\'') && p[vl - 1] == p[0]) {
            p[vl - 1] = '\0';
            p++;
        }
        const struct opt *o = find_opt(name, strlen(name));
        char msg[200];
        if (o == NULL)
            rc = cm_err_set(err, CM_EINVAL, "%s:%d: unknown option '%s'", path, lineno, name);
        else if (set_opt(c, o, p, msg, sizeof(msg)) != 0)
            rc = cm_err_set(err, CM_EINVAL, "%s:%d: %s: %s", path, lineno, name, msg);
    }
    fclose(f);
    return rc;
}

static void usage(void)
{
    printf("Usage: eddyd [--config FILE] [--NAME VALUE ...]\n"
           "eddy %s: a key-value store that runs Lua functions next to the data.\n"
           "Speaks the Redis protocol (RESP2/RESP3); data lives in RocksDB.\n\n"
           "Options (also valid as 'NAME VALUE' lines in the config file; a flag\n"
           "overrides the file):\n",
           EDDY_VERSION);
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].help != NULL)
            printf("  --%-28s %s\n", opts[i].name, opts[i].help);
    printf("  --%-28s %s\n", "config FILE", "read options from FILE first");
    printf("  --%-28s %s\n", "help", "print this help and exit");
    printf("  --%-28s %s\n", "version", "print the version and exit");
    printf("\nExample: eddyd --port 7711 --dir ./data --appendfsync always\n");
}

struct net_config *net_config_load(int argc, char **argv, bool *exit_now, struct cm_err *err)
{
    struct net_config *c = cm_malloc(sizeof(*c));
    *exit_now = false;
    if (c == NULL) {
        cm_err_set(err, CM_ENOMEM, "out of memory");
        return NULL;
    }
    defaults(c);
    /* First pass: --help, --version, --config. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            *exit_now = true;
            return c;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-v") == 0) {
            printf("eddyd %s\n", EDDY_VERSION);
            *exit_now = true;
            return c;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                cm_err_set(err, CM_EINVAL, "--config needs a file name");
                goto fail;
            }
            snprintf(c->config_file, sizeof(c->config_file), "%s", argv[i + 1]);
            if (load_file(c, argv[i + 1], err) != 0)
                goto fail;
        }
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            cm_err_set(err, CM_EINVAL, "unexpected argument '%s' (see --help)", argv[i]);
            goto fail;
        }
        const char *name = argv[i] + 2;
        const struct opt *o = find_opt(name, strlen(name));
        if (o == NULL || o->help == NULL) {
            cm_err_set(err, CM_EINVAL, "unknown option --%s (see --help)", name);
            goto fail;
        }
        if (i + 1 >= argc) {
            cm_err_set(err, CM_EINVAL, "--%s needs a value", name);
            goto fail;
        }
        char msg[200];
        if (set_opt(c, o, argv[++i], msg, sizeof(msg)) != 0) {
            cm_err_set(err, CM_EINVAL, "--%s: %s", name, msg);
            goto fail;
        }
    }
    return c;
fail:
    cm_free(c);
    return NULL;
}

void net_config_free(struct net_config *cfg)
{
    cm_free(cfg);
}
