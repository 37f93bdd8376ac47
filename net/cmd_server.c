/* cmd_server.c - connection and server commands: PING ECHO HELLO AUTH SELECT QUIT
 * INFO CONFIG CLIENT COMMAND TIME SHUTDOWN (CLUSTER is in cmd_cluster.c). */
#include "net_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

/* The Redis version whose commands and replies eddy follows; INFO and HELLO report
 * it as redis_version/version so clients enable the matching features. */
#define REDIS_COMPAT_VERSION "7.0.0"

/* INFO server says which sanitizer the binary was built with (tests that measure
 * memory need to know: AddressSanitizer keeps freed memory in quarantine). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER "address"
#elif defined(__SANITIZE_THREAD__)
#define SANITIZER "thread"
#else
#define SANITIZER "none"
#endif

static void ping_cmd(struct cmd_ctx *x)
{
    if (x->argc > 2)
        reply_errf(x, "ERR wrong number of arguments for 'ping' command");
    else if (x->argc == 2)
        resp_add_bulk(x->out, x->argv[1], x->argvlen[1]);
    else
        resp_add_simple(x->out, "PONG");
}

static void echo_cmd(struct cmd_ctx *x)
{
    resp_add_bulk(x->out, x->argv[1], x->argvlen[1]);
}

/* Constant-time comparison of a password attempt with requirepass. */
static bool password_ok(struct cmd_ctx *x, const char *p, size_t n)
{
    char want[sizeof(x->srv->cfg->requirepass)];
    net_config_password(x->srv->cfg, want, sizeof(want));
    size_t wn = strlen(want);
    unsigned char diff = (unsigned char)(n != wn);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(p[i] ^ want[wn ? i % wn : 0]);
    return diff == 0 && wn > 0;
}

/* AUTH failures are logged at most AUTH_LOG_PER_SEC times a second: one client can
 * send hundreds of thousands a second, a log line each. Every failure is counted
 * (INFO auth_failures); the next line written says how many were not. */
#define AUTH_LOG_PER_SEC 10

static void log_auth_failure(const char *addr)
{
    static struct cm_log_limit limit;
    long long n;
    if (!cm_log_allow(&limit, AUTH_LOG_PER_SEC, &n))
        return;
    if (n > 0)
        cm_log(CM_LOG_WARNING, "AUTH failed for client %s (%lld more failures not logged)", addr,
               n);
    else
        cm_log(CM_LOG_WARNING, "AUTH failed for client %s", addr);
}

/* Checks AUTH [user] pass at argv[i..] (user 0: none given); replies on failure. As
 * Redis, the only user is "default" (case-sensitive), and without requirepass it
 * takes any password. */
static bool check_auth(struct cmd_ctx *x, size_t user, size_t pass)
{
    bool has_password = net_config_has_password(x->srv->cfg);
    if (!has_password && user == 0) {
        reply_err(x, "ERR AUTH <password> called without any password configured for the "
                     "default user. Are you sure your configuration is correct?");
        return false;
    }
    bool user_ok = user == 0 || (x->argvlen[user] == 7 && memcmp(x->argv[user], "default", 7) == 0);
    if (!user_ok || (has_password && !password_ok(x, x->argv[pass], x->argvlen[pass]))) {
        atomic_fetch_add(&x->srv->auth_failures, 1);
        log_auth_failure(x->c->addr);
        reply_err(x, "WRONGPASS invalid username-password pair or user is disabled.");
        return false;
    }
    x->c->authed = true;
    return true;
}

static void auth_cmd(struct cmd_ctx *x)
{
    if (x->argc > 3) {
        reply_syntax(x);
        return;
    }
    if (check_auth(x, x->argc == 3 ? 1 : 0, x->argc - 1))
        reply_ok(x);
}

static int set_name(struct cmd_ctx *x, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '!' || p[i] > '~') {
            reply_err(x, "ERR Client names cannot contain spaces, newlines or special characters.");
            return -1;
        }
    char *name = n ? cm_malloc(n + 1) : NULL;
    if (n && name == NULL) {
        reply_err(x, "OOM out of memory");
        return -1;
    }
    if (name) {
        memcpy(name, p, n);
        name[n] = '\0';
    }
    /* Only this connection's thread reads its name (conn_describe): no lock. */
    cm_free(x->c->name);
    x->c->name = name;
    return 0;
}

static void hello_cmd(struct cmd_ctx *x)
{
    long long proto = x->c->resp;
    size_t i = 1;
    if (x->argc >= 2) {
        if (cm_str_to_ll(x->argv[1], x->argvlen[1], &proto) != 0) {
            reply_err(x, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (proto < 2 || proto > 3) {
            reply_err(x, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
    }
    const char *name = NULL;
    size_t namelen = 0;
    for (; i < x->argc; i++) {
        if (arg_is(x, i, "AUTH") && i + 2 < x->argc) {
            if (!check_auth(x, i + 1, i + 2))
                return;
            i += 2;
        } else if (arg_is(x, i, "SETNAME") && i + 1 < x->argc) {
            name = x->argv[i + 1];
            namelen = x->argvlen[i + 1];
            i++;
        } else {
            reply_errf(x, "ERR Syntax error in HELLO option '%.*s'", (int)x->argvlen[i],
                       x->argv[i]);
            return;
        }
    }
    if (conn_needs_auth(x->c)) {
        reply_err(x, "NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                     "authenticate the client and select the RESP protocol version at the "
                     "same time");
        return;
    }
    if (name != NULL && set_name(x, name, namelen) != 0)
        return;
    x->c->resp = (int)proto;
    x->resp = (int)proto;
    resp_add_map(x->out, 8, x->resp);
    resp_add_cstr(x->out, "server");
    resp_add_cstr(x->out, "redis");
    resp_add_cstr(x->out, "version");
    resp_add_cstr(x->out, REDIS_COMPAT_VERSION);
    resp_add_cstr(x->out, "proto");
    resp_add_int(x->out, proto);
    resp_add_cstr(x->out, "id");
    resp_add_int(x->out, (long long)x->c->id);
    resp_add_cstr(x->out, "mode");
    resp_add_cstr(x->out, x->srv->cluster != NULL ? "cluster" : "standalone");
    resp_add_cstr(x->out, "role");
    resp_add_cstr(x->out, "master");
    resp_add_cstr(x->out, "modules");
    resp_add_array(x->out, 0);
    resp_add_cstr(x->out, "eddy_version");
    resp_add_cstr(x->out, EDDY_VERSION);
}

static void select_cmd(struct cmd_ctx *x)
{
    long long db;
    if (!arg_ll(x, 1, &db))
        return;
    if (db != 0)
        reply_err(x, "ERR DB index is out of range");
    else
        reply_ok(x);
}

static void quit_cmd(struct cmd_ctx *x)
{
    reply_ok(x);
    x->c->flags |= CONN_CLOSE_AFTER_REPLY;
}

static void time_cmd(struct cmd_ctx *x)
{
    int64_t us = cm_now_us();
    char a[24], b[24];
    int na = snprintf(a, sizeof(a), "%lld", (long long)(us / 1000000));
    int nb = snprintf(b, sizeof(b), "%lld", (long long)(us % 1000000));
    resp_add_array(x->out, 2);
    resp_add_bulk(x->out, a, (size_t)na);
    resp_add_bulk(x->out, b, (size_t)nb);
}

static void shutdown_cmd(struct cmd_ctx *x)
{
    for (size_t i = 1; i < x->argc; i++)
        if (!arg_is(x, i, "NOSAVE") && !arg_is(x, i, "SAVE") && !arg_is(x, i, "NOW") &&
            !arg_is(x, i, "FORCE")) {
            reply_syntax(x);
            return;
        }
    cm_log(CM_LOG_WARNING, "SHUTDOWN requested by client %s", x->c->addr);
    server_shutdown(x->srv, 0);
    x->c->flags |= CONN_CLOSE_AFTER_REPLY; /* like Redis: no reply, the connection closes */
}

/* ---- INFO ------------------------------------------------------------------------------- */

static size_t rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static bool want(struct cmd_ctx *x, const char *section, bool in_default)
{
    if (x->argc == 1)
        return in_default;
    for (size_t i = 1; i < x->argc; i++)
        if (arg_is(x, i, section) || arg_is(x, i, "all") || arg_is(x, i, "everything") ||
            (in_default && arg_is(x, i, "default")))
            return true;
    return false;
}

static void info_cmd(struct cmd_ctx *x)
{
    struct server *s = x->srv;
    struct cm_buf b;
    cm_buf_init(&b);
    int64_t up = (cm_now_us() - s->start_us) / 1000000;
    if (want(x, "server", true))
        cm_buf_appendf(&b,
                       "# Server\r\nredis_version:%s\r\neddy_version:%s\r\nredis_mode:%s\r\n"
                       "os:Linux\r\narch_bits:64\r\nmultiplexing_api:libev\r\nprocess_id:%d\r\n"
                       "tcp_port:%d\r\nuptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n"
                       "hz:%d\r\nio_threads_active:%d\r\nexecutable:eddyd\r\nconfig_file:%s\r\n"
                       "sanitizer:%s\r\n\r\n",
                       REDIS_COMPAT_VERSION, EDDY_VERSION,
                       s->cluster != NULL ? "cluster" : "standalone", (int)getpid(), s->cfg->port,
                       (long long)up, (long long)up / 86400, NET_CFG(s->cfg, hz), s->nworkers,
                       s->cfg->config_file, SANITIZER);
    if (want(x, "clients", true))
        cm_buf_appendf(&b, "# Clients\r\nconnected_clients:%ld\r\nmaxclients:%lld\r\n\r\n",
                       atomic_load(&s->nclients), NET_CFG(s->cfg, maxclients));
    struct eng_stats st;
    eng_get_stats(s->eng, &st);
    long long dfree, dmin;
    bool dlow = eng_space_low(s->eng, &dfree, &dmin);
    if (want(x, "memory", true)) {
        size_t rss = rss_bytes();
        cm_buf_appendf(&b,
                       "# Memory\r\nused_memory:%zu\r\nused_memory_rss:%zu\r\n"
                       "used_memory_engine_memtables:%llu\r\nused_memory_engine_block_cache:%llu\r\n"
                       "used_memory_engine_value_cache:%llu\r\n"
                       "maxmemory:0\r\nmaxmemory_policy:noeviction\r\n\r\n",
                       cm_alloc_used() + (size_t)st.memtable_bytes + (size_t)st.block_cache_bytes,
                       rss, st.memtable_bytes, st.block_cache_bytes, st.value_cache_bytes);
    }
    if (want(x, "persistence", true)) {
        static const char *modes[] = {"no", "everysec", "always"};
        cm_buf_appendf(&b,
                       "# Persistence\r\nloading:0\r\naof_enabled:1\r\nappendfsync:%s\r\n"
                       "engine:rocksdb\r\nengine_sst_bytes:%llu\r\nengine_writes:%llu\r\n"
                       "engine_wal_syncs:%llu\r\nengine_background_errors:%llu\r\n"
                       "engine_writes_refused_until_restart:%d\r\n"
                       "disk_free_bytes:%lld\r\nmin_free_disk_bytes:%lld\r\n"
                       "disk_space_low:%d\r\ndisk_space_low_refused:%llu\r\n"
                       "rdb_changes_since_last_save:0\r\n\r\n",
                       modes[eng_get_fsync(s->eng)], st.sst_bytes, st.writes, st.syncs,
                       st.bg_errors, st.writes_refused, dfree, dmin, (int)dlow, st.space_refused);
    }
    unsigned long long cmds = atomic_load(&s->commands), hits = 0, misses = 0;
    for (int i = 0; i < s->nworkers; i++) {
        cmds += atomic_load(&s->workers[i]->st_commands);
        hits += atomic_load(&s->workers[i]->st_hits);
        misses += atomic_load(&s->workers[i]->st_misses);
    }
    unsigned long long conflicts, holds;
    udf_conflict_stats(s->udf, &conflicts, &holds);
    if (want(x, "stats", true))
        cm_buf_appendf(&b,
                       "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                       "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
                       "rejected_connections:%llu\r\nexpired_keys:%llu\r\nkeyspace_hits:%llu\r\n"
                       "keyspace_misses:%llu\r\nauth_failures:%llu\r\n"
                       "function_conflict_retries:%llu\r\nfunction_held_retries:%llu\r\n\r\n",
                       atomic_load(&s->conns_received), cmds,
                       atomic_load(&s->net_in), atomic_load(&s->net_out),
                       atomic_load(&s->conns_rejected), st.expired_keys,
                       hits, misses,
                       atomic_load(&s->auth_failures), conflicts, holds);
    if (want(x, "cluster", true))
        cm_buf_appendf(&b, "# Cluster\r\ncluster_enabled:%d\r\n\r\n", s->cluster != NULL);
    if (want(x, "keyspace", true)) {
        cm_buf_appendf(&b, "# Keyspace\r\n");
        if (st.estimated_keys > 0)
            cm_buf_appendf(&b, "db0:keys=%llu,expires=0,avg_ttl=0\r\n", st.estimated_keys);
    }
    resp_add_verbatim(x->out, "txt", b.p ? b.p : "", b.len, x->resp);
    cm_buf_deinit(&b);
}

/* ---- CONFIG ------------------------------------------------------------------------------ */

static void config_cmd(struct cmd_ctx *x)
{
    struct net_config *cfg = x->srv->cfg;
    if (arg_is(x, 1, "GET") && x->argc >= 3) {
        net_config_get(cfg, x->argv + 2, x->argvlen + 2, x->argc - 2, x->out, x->resp);
    } else if (arg_is(x, 1, "SET") && x->argc >= 4 && x->argc % 2 == 1) {
        reply_syntax(x);
    } else if (arg_is(x, 1, "SET") && x->argc >= 4) {
        /* All or nothing, as Redis: every name and value is checked before any is
         * set, and a name may appear once. */
        char msg[300];
        for (size_t i = 2; i < x->argc; i += 2) {
            for (size_t j = 2; j < i; j += 2)
                if (x->argvlen[j] == x->argvlen[i] &&
                    strncasecmp(x->argv[i], x->argv[j], x->argvlen[i]) == 0) {
                    reply_errf(x, "ERR CONFIG SET failed (possibly related to argument '%.*s') - "
                                  "duplicate parameter",
                               (int)(x->argvlen[i] > 64 ? 64 : x->argvlen[i]), x->argv[i]);
                    return;
                }
            if (net_config_set(NULL, x->argv[i], x->argvlen[i], x->argv[i + 1],
                               x->argvlen[i + 1], msg, sizeof(msg)) != 0) {
                reply_errf(x, "ERR %s", msg);
                return;
            }
        }
        int rc = 0;
        for (size_t i = 2; i < x->argc && rc == 0; i += 2) /* checked: fails only for memory */
            rc = net_config_set(cfg, x->argv[i], x->argvlen[i], x->argv[i + 1], x->argvlen[i + 1],
                                msg, sizeof(msg));
        eng_set_fsync(x->eng, (enum eng_fsync)NET_CFG(cfg, appendfsync));
        cm_log_set_level(NET_CFG(cfg, loglevel));
        server_apply_udf_limits(x->srv);
        if (rc != 0)
            reply_errf(x, "ERR %s", msg);
        else
            reply_ok(x);
    } else if (arg_is(x, 1, "RESETSTAT") && x->argc == 2) {
        struct server *s = x->srv;
        atomic_store(&s->commands, 0);
        atomic_store(&s->conns_received, 0);
        atomic_store(&s->net_in, 0);
        atomic_store(&s->net_out, 0);
        for (int i = 0; i < s->nworkers; i++) {
            atomic_store(&s->workers[i]->st_commands, 0);
            atomic_store(&s->workers[i]->st_hits, 0);
            atomic_store(&s->workers[i]->st_misses, 0);
        }
        atomic_store(&s->auth_failures, 0);
        atomic_store(&s->conns_rejected, 0);
        reply_ok(x);
    } else if (arg_is(x, 1, "GET") || arg_is(x, 1, "SET") || arg_is(x, 1, "RESETSTAT")) {
        reply_errf(x, "ERR wrong number of arguments for 'config|%s' command",
                   arg_is(x, 1, "GET") ? "get" : arg_is(x, 1, "SET") ? "set" : "resetstat");
    } else {
        reply_errf(x, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
                   (int)(x->argvlen[1] > 64 ? 64 : x->argvlen[1]), x->argv[1]);
    }
}

/* ---- CLIENT ------------------------------------------------------------------------------ */

/* What CLIENT KILL's filters select; every client is a normal one of user default. */
struct kill_filter {
    unsigned long long id;  /* 0: any */
    const char *addr;       /* NULL: any */
    size_t addrlen;
    bool laddr;             /* addr is the local address */
    bool skipme;
    bool none;              /* TYPE master/replica/slave/pubsub: no client is one */
    long long maxage_ms;    /* -1: any age */
};

static long kill_matching(struct cmd_ctx *x, const struct kill_filter *f)
{
    struct server *s = x->srv;
    long n = 0;
    if (f->none)
        return 0;
    int64_t now = cm_now_ms();
    pthread_mutex_lock(&s->clients_lock);
    for (struct conn *c = s->clients; c != NULL; c = c->gnext) {
        if (f->id != 0 && c->id != f->id)
            continue;
        if (f->addr != NULL && !cm_streq_ci(f->addr, f->addrlen, f->laddr ? c->laddr : c->addr))
            continue;
        if (f->maxage_ms >= 0 && now - c->ctime_ms < f->maxage_ms)
            continue;
        if (f->skipme && c == x->c)
            continue;
        if (c == x->c) {
            x->c->flags |= CONN_CLOSE_AFTER_REPLY;
        } else {
            atomic_store(&c->kill, true);
            server_wake_worker(c->w);
        }
        n++;
    }
    pthread_mutex_unlock(&s->clients_lock);
    return n;
}

static void client_kill(struct cmd_ctx *x)
{
    struct kill_filter f = {.skipme = true, .maxage_ms = -1};
    if (x->argc == 3) { /* old form: CLIENT KILL addr:port */
        f.addr = x->argv[2];
        f.addrlen = x->argvlen[2];
        f.skipme = false;
        if (kill_matching(x, &f) == 0)
            reply_err(x, "ERR No such client");
        else
            reply_ok(x);
        return;
    }
    if (x->argc % 2 != 0) {
        reply_syntax(x);
        return;
    }
    for (size_t i = 2; i < x->argc; i += 2) {
        long long v;
        const char *a = x->argv[i + 1];
        size_t al = x->argvlen[i + 1];
        int show = (int)(al > 64 ? 64 : al);
        if (arg_is(x, i, "ID")) {
            if (cm_str_to_ll(a, al, &v) != 0 || v <= 0) {
                reply_err(x, "ERR client-id should be greater than 0");
                return;
            }
            f.id = (unsigned long long)v;
        } else if (arg_is(x, i, "ADDR") || arg_is(x, i, "LADDR")) {
            f.laddr = arg_is(x, i, "LADDR");
            f.addr = a;
            f.addrlen = al;
        } else if (arg_is(x, i, "SKIPME")) {
            if (arg_is(x, i + 1, "yes"))
                f.skipme = true;
            else if (arg_is(x, i + 1, "no"))
                f.skipme = false;
            else {
                reply_syntax(x);
                return;
            }
        } else if (arg_is(x, i, "TYPE")) {
            if (arg_is(x, i + 1, "master") || arg_is(x, i + 1, "replica") ||
                arg_is(x, i + 1, "slave") || arg_is(x, i + 1, "pubsub")) {
                f.none = true;
            } else if (!arg_is(x, i + 1, "normal")) {
                reply_errf(x, "ERR Unknown client type '%.*s'", show, a);
                return;
            }
        } else if (arg_is(x, i, "USER")) {
            if (!(al == 7 && memcmp(a, "default", 7) == 0)) { /* user names are case-sensitive */
                reply_errf(x, "ERR No such user '%.*s'", show, a);
                return;
            }
        } else if (arg_is(x, i, "MAXAGE")) { /* Redis 7.4: clients at least this many seconds old */
            if (cm_str_to_ll(a, al, &v) != 0 || v < 0 || v > LLONG_MAX / 1000) {
                reply_err(x, "ERR maxage is not an integer or out of range");
                return;
            }
            f.maxage_ms = v * 1000;
        } else {
            reply_syntax(x);
            return;
        }
    }
    resp_add_int(x->out, kill_matching(x, &f));
}

static void client_cmd(struct cmd_ctx *x)
{
    struct conn *c = x->c;
    if (arg_is(x, 1, "ID") && x->argc == 2) {
        resp_add_int(x->out, (long long)c->id);
    } else if (arg_is(x, 1, "SETNAME") && x->argc == 3) {
        if (set_name(x, x->argv[2], x->argvlen[2]) == 0)
            reply_ok(x);
    } else if (arg_is(x, 1, "GETNAME") && x->argc == 2) {
        if (c->name)
            resp_add_cstr(x->out, c->name);
        else
            resp_add_null(x->out, x->resp);
    } else if (arg_is(x, 1, "LIST")) {
        /* CLIENT LIST [TYPE normal] [ID id ...]: every client is a normal one. */
        unsigned long long *want_ids = NULL; /* any number of them, as Redis */
        size_t nids = 0;
        if (x->argc == 4 && arg_is(x, 2, "TYPE")) {
            if (!arg_is(x, 3, "normal") && !arg_is(x, 3, "master") && !arg_is(x, 3, "replica") &&
                !arg_is(x, 3, "pubsub")) {
                reply_errf(x, "ERR Unknown client type '%.*s'", (int)x->argvlen[3], x->argv[3]);
                return;
            }
            if (!arg_is(x, 3, "normal")) {
                resp_add_verbatim(x->out, "txt", "", 0, x->resp);
                return;
            }
        } else if (x->argc >= 4 && arg_is(x, 2, "ID")) {
            want_ids = cm_malloc((x->argc - 3) * sizeof(*want_ids));
            if (want_ids == NULL) {
                reply_err(x, "OOM out of memory");
                return;
            }
            for (size_t i = 3; i < x->argc; i++) {
                long long v;
                if (cm_str_to_ll(x->argv[i], x->argvlen[i], &v) != 0 || v <= 0) {
                    cm_free(want_ids);
                    reply_err(x, "ERR Invalid client ID");
                    return;
                }
                want_ids[nids++] = (unsigned long long)v;
            }
        } else if (x->argc != 2) {
            reply_syntax(x);
            return;
        }
        /* Each I/O thread describes its own connections (clients.c). */
        client_list_start(x, want_ids, nids);
        cm_free(want_ids);
    } else if (arg_is(x, 1, "INFO") && x->argc == 2) {
        struct cm_buf b;
        cm_buf_init(&b);
        conn_describe(c, &b);
        resp_add_verbatim(x->out, "txt", b.p ? b.p : "", b.len, x->resp);
        cm_buf_deinit(&b);
    } else if (arg_is(x, 1, "KILL") && x->argc >= 3) {
        client_kill(x);
    } else if ((arg_is(x, 1, "SETINFO") && x->argc == 4) ||
               (arg_is(x, 1, "NO-EVICT") && x->argc == 3 &&
                (arg_is(x, 2, "on") || arg_is(x, 2, "off")))) {
        reply_ok(x);
    } else if (arg_is(x, 1, "NO-EVICT") && x->argc == 3) {
        reply_syntax(x);
    } else {
        static const char *const subs[] = {"id", "setname", "getname", "list", "info", "kill",
                                           "setinfo", "no-evict", NULL};
        for (int i = 0; subs[i] != NULL; i++)
            if (arg_is(x, 1, subs[i])) {
                reply_errf(x, "ERR wrong number of arguments for 'client|%s' command", subs[i]);
                return;
            }
        reply_errf(x, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.",
                   (int)(x->argvlen[1] > 64 ? 64 : x->argvlen[1]), x->argv[1]);
    }
}

/* ---- COMMAND ------------------------------------------------------------------------------- */

static void add_flags(struct cmd_ctx *x, const struct cmd_def *d)
{
    const char *names[7];
    size_t n = 0;
    if (d->flags & CMD_WRITE)
        names[n++] = "write";
    if (d->flags & CMD_DENYOOM)
        names[n++] = "denyoom";
    if (d->flags & CMD_READONLY)
        names[n++] = "readonly";
    if (d->flags & CMD_FAST)
        names[n++] = "fast";
    if (d->flags & CMD_NOAUTH)
        names[n++] = "no_auth";
    if (d->flags & CMD_ADMIN)
        names[n++] = "admin";
    resp_add_set(x->out, n, x->resp);
    for (size_t i = 0; i < n; i++)
        resp_add_simple(x->out, names[i]);
}

static void describe_cmd(struct cmd_ctx *x, const struct cmd_def *d)
{
    resp_add_array(x->out, 10);
    resp_add_cstr(x->out, d->name);
    resp_add_int(x->out, d->arity);
    add_flags(x, d);
    resp_add_int(x->out, d->first_key);
    resp_add_int(x->out, d->last_key);
    resp_add_int(x->out, d->step);
    resp_add_set(x->out, 0, x->resp);
    resp_add_set(x->out, 0, x->resp);
    resp_add_array(x->out, 0);
    resp_add_array(x->out, 0);
}

static void command_cmd(struct cmd_ctx *x)
{
    int n = cmd_count();
    if (x->argc == 1) {
        resp_add_array(x->out, (size_t)n);
        for (int i = 0; i < n; i++)
            describe_cmd(x, cmd_at(i));
    } else if (arg_is(x, 1, "COUNT")) {
        if (x->argc != 2)
            reply_err(x, "ERR wrong number of arguments for 'command|count' command");
        else
            resp_add_int(x->out, n);
    } else if (arg_is(x, 1, "INFO") && x->argc == 2) { /* all, as Redis 7 */
        resp_add_array(x->out, (size_t)n);
        for (int i = 0; i < n; i++)
            describe_cmd(x, cmd_at(i));
    } else if (arg_is(x, 1, "INFO")) {
        resp_add_array(x->out, x->argc - 2);
        for (size_t i = 2; i < x->argc; i++) {
            const struct cmd_def *d = cmd_lookup(x->argv[i], x->argvlen[i]);
            if (d)
                describe_cmd(x, d);
            else
                resp_add_null_array(x->out, x->resp);
        }
    } else if (arg_is(x, 1, "LIST")) {
        /* COMMAND LIST [FILTERBY MODULE name | ACLCAT group | PATTERN glob]: eddy has no
         * modules; its command groups stand for ACL categories. */
        bool filter = x->argc == 5 && arg_is(x, 2, "FILTERBY");
        if (x->argc != 2 && !(filter && (arg_is(x, 3, "MODULE") || arg_is(x, 3, "ACLCAT") ||
                                         arg_is(x, 3, "PATTERN")))) {
            reply_syntax(x);
            return;
        }
        size_t count = 0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1)
                resp_add_array(x->out, count);
            for (int i = 0; i < n; i++) {
                const struct cmd_def *d = cmd_at(i);
                bool in = !filter ||
                          (arg_is(x, 3, "ACLCAT") && cm_streq_ci(x->argv[4], x->argvlen[4], d->group)) ||
                          (arg_is(x, 3, "PATTERN") && cm_glob_match(x->argv[4], x->argvlen[4], d->name,
                                                                    strlen(d->name), true));
                if (in && pass == 0)
                    count++;
                else if (in)
                    resp_add_cstr(x->out, d->name);
            }
        }
    } else if (arg_is(x, 1, "DOCS")) {
        /* Name -> {summary, group}: enough for redis-cli's hints. */
        size_t count = 0;
        for (int i = 0; i < n; i++) {
            bool asked = x->argc == 2;
            for (size_t j = 2; j < x->argc && !asked; j++)
                asked = cm_streq_ci(x->argv[j], x->argvlen[j], cmd_at(i)->name);
            count += asked;
        }
        resp_add_map(x->out, count, x->resp);
        for (int i = 0; i < n; i++) {
            const struct cmd_def *d = cmd_at(i);
            bool asked = x->argc == 2;
            for (size_t j = 2; j < x->argc && !asked; j++)
                asked = cm_streq_ci(x->argv[j], x->argvlen[j], d->name);
            if (!asked)
                continue;
            resp_add_cstr(x->out, d->name);
            resp_add_map(x->out, 2, x->resp);
            resp_add_cstr(x->out, "summary");
            resp_add_cstr(x->out, "");
            resp_add_cstr(x->out, "group");
            resp_add_cstr(x->out, d->group);
        }
    } else {
        reply_errf(x, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
                   (int)(x->argvlen[1] > 64 ? 64 : x->argvlen[1]), x->argv[1]);
    }
}

#define A CMD_ADMIN
const struct cmd_def cmd_server_table[] = {
    {"ping", ping_cmd, -1, CMD_FAST, 0, 0, 0, "connection"},
    {"echo", echo_cmd, 2, CMD_FAST, 0, 0, 0, "connection"},
    {"hello", hello_cmd, -1, CMD_NOAUTH | CMD_FAST | CMD_NOSCRIPT, 0, 0, 0, "connection"},
    {"auth", auth_cmd, -2, CMD_NOAUTH | CMD_FAST | CMD_NOSCRIPT, 0, 0, 0, "connection"},
    {"select", select_cmd, 2, CMD_FAST, 0, 0, 0, "connection"},
    {"quit", quit_cmd, -1, CMD_NOAUTH | CMD_FAST | CMD_NOSCRIPT, 0, 0, 0, "connection"},
    {"client", client_cmd, -2, CMD_NOSCRIPT, 0, 0, 0, "connection"},
    {"info", info_cmd, -1, 0, 0, 0, 0, "server"},
    {"config", config_cmd, -2, A | CMD_NOSCRIPT, 0, 0, 0, "server"},
    {"command", command_cmd, -1, 0, 0, 0, 0, "server"},
    {"time", time_cmd, 1, CMD_FAST, 0, 0, 0, "server"},
    {"shutdown", shutdown_cmd, -1, A | CMD_NOSCRIPT, 0, 0, 0, "server"},
    {"cluster", net_cluster_cmd, -2, 0, 0, 0, 0, "cluster"},
    {"asking", net_cluster_asking, 1, CMD_FAST, 0, 0, 0, "cluster"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL},
};
