/* cmd_keys.c - commands on keys of any type: DEL, EXISTS, TYPE, the TTL family,
 * SCAN, KEYS, DBSIZE, FLUSHALL, RANDOMKEY. */
#include "net_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- DEL, EXISTS, TYPE ---------------------------------------------------------------- */

struct argref {
    const char *p;
    size_t n;
};

static int cmp_arg(const void *a, const void *b)
{
    const struct argref *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return memcmp(x->p, y->p, x->n);
}

static void del_cmd(struct cmd_ctx *x)
{
    /* Count each distinct key once, as Redis does for DEL a a. */
    size_t n = x->argc - 1;
    struct argref *keys = cm_malloc(n * sizeof(*keys));
    if (keys == NULL) {
        reply_err(x, "OOM out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        keys[i] = (struct argref){x->argv[i + 1], x->argvlen[i + 1]};
    qsort(keys, n, sizeof(*keys), cmp_arg);
    long long deleted = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cmp_arg(&keys[i - 1], &keys[i]) == 0)
            continue;
        struct eng_item it;
        int rc = kv_get(x, keys[i].p, keys[i].n, &it);
        if (rc == 0) {
            eng_item_release(&it);
            kv_del(x, keys[i].p, keys[i].n);
            deleted++;
        } else if (rc != CM_ENOTFOUND) {
            cm_free(keys);
            return;
        }
    }
    cm_free(keys);
    resp_add_int(x->out, deleted);
}

static void exists_cmd(struct cmd_ctx *x)
{
    long long n = 0;
    for (size_t i = 1; i < x->argc; i++) {
        struct eng_item it;
        int rc = kv_get(x, x->argv[i], x->argvlen[i], &it);
        if (rc == 0) {
            eng_item_release(&it);
            n++;
        } else if (rc != CM_ENOTFOUND) {
            return;
        }
    }
    resp_add_int(x->out, n);
}

static const char *type_name(enum eng_type t)
{
    return t == ENG_T_STRING ? "string" : "none";
}

static void type_cmd(struct cmd_ctx *x)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND)
        resp_add_simple(x->out, "none");
    else if (rc == 0) {
        resp_add_simple(x->out, type_name(it.type));
        eng_item_release(&it);
    }
}

/* ---- TTLs ------------------------------------------------------------------------------- */

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static void expire_generic(struct cmd_ctx *x, long long unit, bool absolute)
{
    long long v;
    if (!arg_ll(x, 2, &v))
        return;
    int flags = 0;
    for (size_t i = 3; i < x->argc; i++) {
        if (arg_is(x, i, "NX"))
            flags |= EXP_NX;
        else if (arg_is(x, i, "XX"))
            flags |= EXP_XX;
        else if (arg_is(x, i, "GT"))
            flags |= EXP_GT;
        else if (arg_is(x, i, "LT"))
            flags |= EXP_LT;
        else {
            reply_errf(x, "ERR Unsupported option %.*s", (int)x->argvlen[i], x->argv[i]);
            return;
        }
    }
    if ((flags & EXP_NX) && (flags & (EXP_XX | EXP_GT | EXP_LT))) {
        reply_err(x, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if ((flags & EXP_GT) && (flags & EXP_LT)) {
        reply_err(x, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    int64_t base = absolute ? 0 : x->now_ms;
    if (v > LLONG_MAX / unit || v < LLONG_MIN / unit || (v > 0 && v * unit > LLONG_MAX - base)) {
        reply_errf(x, "ERR invalid expire time in '%s' command", x->cmd->name);
        return;
    }
    int64_t when = base + v * unit;
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND) {
        resp_add_int(x->out, 0);
        return;
    }
    if (rc != 0)
        return;
    int64_t cur = it.expire_ms; /* 0 = persistent, i.e. infinite */
    bool ok = !((flags & EXP_NX) && cur != 0) && !((flags & EXP_XX) && cur == 0) &&
              !((flags & EXP_GT) && (cur == 0 || when <= cur)) &&
              !((flags & EXP_LT) && cur != 0 && when >= cur);
    if (ok) {
        if (when <= x->now_ms) {
            kv_del(x, x->argv[1], x->argvlen[1]);
        } else if (kv_rewrite(x, x->argv[1], x->argvlen[1], when, it.data, it.len) != 0) {
            eng_item_release(&it);
            return; /* replied */
        }
    }
    eng_item_release(&it);
    resp_add_int(x->out, ok ? 1 : 0);
}

static void expire_cmd(struct cmd_ctx *x)
{
    expire_generic(x, 1000, false);
}

static void pexpire_cmd(struct cmd_ctx *x)
{
    expire_generic(x, 1, false);
}

static void expireat_cmd(struct cmd_ctx *x)
{
    expire_generic(x, 1000, true);
}

static void pexpireat_cmd(struct cmd_ctx *x)
{
    expire_generic(x, 1, true);
}

/* mode: 0 TTL, 1 PTTL, 2 EXPIRETIME, 3 PEXPIRETIME */
static void ttl_generic(struct cmd_ctx *x, int mode)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND) {
        resp_add_int(x->out, -2);
        return;
    }
    if (rc != 0)
        return;
    int64_t exp = it.expire_ms;
    eng_item_release(&it);
    if (exp == 0) {
        resp_add_int(x->out, -1);
        return;
    }
    long long left = exp - x->now_ms;
    switch (mode) {
    case 0: resp_add_int(x->out, (left + 500) / 1000); break;
    case 1: resp_add_int(x->out, left); break;
    case 2: resp_add_int(x->out, exp / 1000); break;
    default: resp_add_int(x->out, exp); break;
    }
}

static void ttl_cmd(struct cmd_ctx *x) { ttl_generic(x, 0); }
static void pttl_cmd(struct cmd_ctx *x) { ttl_generic(x, 1); }
static void expiretime_cmd(struct cmd_ctx *x) { ttl_generic(x, 2); }
static void pexpiretime_cmd(struct cmd_ctx *x) { ttl_generic(x, 3); }

static void persist_cmd(struct cmd_ctx *x)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND) {
        resp_add_int(x->out, 0);
        return;
    }
    if (rc != 0)
        return;
    bool had = it.expire_ms != 0;
    if (had && kv_rewrite(x, x->argv[1], x->argvlen[1], 0, it.data, it.len) != 0) {
        eng_item_release(&it);
        return; /* replied */
    }
    eng_item_release(&it);
    resp_add_int(x->out, had ? 1 : 0);
}

/* ---- SCAN and KEYS ------------------------------------------------------------------------
 * A cursor is (id << 14) | slot: slot says where to resume when the id is unknown
 * (an old cursor, or a restart): at the start of that slot, which may return keys
 * again but never skips one. id names the exact position in a table of recent
 * cursors. See docs/PROTOCOL.md. */

#define CURSORS 4096
static struct {
    unsigned long long id;
    char *pos;
    size_t len;
} cursors[CURSORS];
static unsigned long long cursor_next = 1;
static pthread_mutex_t cursor_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned long long cursor_save(char *pos, size_t len)
{
    unsigned slot = ((uint8_t)pos[0] << 8 | (uint8_t)pos[1]) & (CM_SLOTS - 1);
    pthread_mutex_lock(&cursor_lock);
    unsigned long long id = cursor_next++;
    if (cursor_next >= (1ULL << 49))
        cursor_next = 1;
    unsigned i = (unsigned)(id % CURSORS);
    cm_free(cursors[i].pos);
    cursors[i].id = id;
    cursors[i].pos = pos;
    cursors[i].len = len;
    pthread_mutex_unlock(&cursor_lock);
    return id << 14 | slot;
}

/* Finds the position of a cursor: a copy in *pos (NULL = start of *slot). */
static void cursor_load(unsigned long long cur, unsigned *slot, char **pos, size_t *len)
{
    unsigned long long id = cur >> 14;
    *slot = (unsigned)(cur & (CM_SLOTS - 1));
    *pos = NULL;
    *len = 0;
    if (id == 0)
        return;
    pthread_mutex_lock(&cursor_lock);
    unsigned i = (unsigned)(id % CURSORS);
    if (cursors[i].id == id && cursors[i].pos != NULL) {
        *pos = cm_memdup(cursors[i].pos, cursors[i].len);
        *len = *pos ? cursors[i].len : 0;
    }
    pthread_mutex_unlock(&cursor_lock);
}

struct collect {
    struct cm_buf keys; /* length-prefixed keys */
    size_t n;
    const char *pat;
    size_t plen;
    const char *type;
    size_t tlen;
};

static int collect_fn(void *ud, const char *key, size_t klen, const struct eng_item *it)
{
    struct collect *c = ud;
    if (c->pat != NULL && !(c->plen == 1 && c->pat[0] == '*') &&
        !cm_glob_match(c->pat, c->plen, key, klen, false))
        return 0;
    if (c->type != NULL && !cm_streq_ci(c->type, c->tlen, type_name(it->type)))
        return 0;
    if (cm_buf_append(&c->keys, &klen, sizeof(klen)) != 0 || cm_buf_append(&c->keys, key, klen) != 0)
        return CM_ENOMEM;
    c->n++;
    return 0;
}

/* The literal head of a glob pattern (up to its first special character): only keys
 * with it can match, so the scan seeks to it in each slot instead of walking. */
static size_t glob_prefix(const char *pat, size_t plen)
{
    size_t n = 0;
    while (n < plen && pat[n] != '*' && pat[n] != '?' && pat[n] != '[' && pat[n] != '\\')
        n++;
    return n;
}

static void emit_keys(struct cmd_ctx *x, struct collect *c)
{
    resp_add_array(x->out, c->n);
    for (size_t off = 0; off < c->keys.len;) {
        size_t kl;
        memcpy(&kl, c->keys.p + off, sizeof(kl));
        resp_add_bulk(x->out, c->keys.p + off + sizeof(kl), kl);
        off += sizeof(kl) + kl;
    }
}

static void scan_cmd(struct cmd_ctx *x)
{
    /* Parsed as Redis does (strtoul): "" is 0 and "-1" wraps to the largest cursor;
     * leading space, trailing bytes and overflow are invalid. */
    char *end;
    char tmp[128];
    if (x->argvlen[1] >= sizeof(tmp)) {
        reply_err(x, "ERR invalid cursor");
        return;
    }
    memcpy(tmp, x->argv[1], x->argvlen[1]);
    tmp[x->argvlen[1]] = '\0';
    errno = 0;
    unsigned long long cur = strtoull(tmp, &end, 10);
    if (isspace((unsigned char)tmp[0]) || *end != '\0' || errno == ERANGE) {
        reply_err(x, "ERR invalid cursor");
        return;
    }
    struct collect c = {0};
    long long count = 10;
    for (size_t i = 2; i < x->argc; i += 2) {
        if (i + 1 >= x->argc) {
            reply_syntax(x);
            return;
        }
        if (arg_is(x, i, "MATCH")) {
            c.pat = x->argv[i + 1];
            c.plen = x->argvlen[i + 1];
        } else if (arg_is(x, i, "COUNT")) {
            if (!arg_ll(x, i + 1, &count))
                return;
            if (count < 1) {
                reply_syntax(x);
                return;
            }
        } else if (arg_is(x, i, "TYPE")) {
            c.type = x->argv[i + 1];
            c.tlen = x->argvlen[i + 1];
        } else {
            reply_syntax(x);
            return;
        }
    }
    unsigned slot;
    char *pos, *next = NULL;
    size_t len, nlen = 0;
    cursor_load(cur, &slot, &pos, &len);
    struct cm_err err = {0};
    cm_buf_init(&c.keys);
    size_t lit = c.pat != NULL ? glob_prefix(c.pat, c.plen) : 0;
    int rc = eng_scan_prefix(x->eng, x->txn, slot, CM_SLOTS - 1, c.pat, lit, pos, len, (size_t)count,
                             x->now_ms, collect_fn, &c, &next, &nlen, &err);
    cm_free(pos);
    if (rc < 0) {
        cm_free(next);
        cm_buf_deinit(&c.keys);
        if (rc == CM_ENOMEM)
            reply_err(x, "OOM out of memory");
        else
            reply_storage_err(x, &err);
        return;
    }
    unsigned long long ncur = next != NULL ? cursor_save(next, nlen) : 0;
    char curs[24];
    int cl = snprintf(curs, sizeof(curs), "%llu", ncur);
    resp_add_array(x->out, 2);
    resp_add_bulk(x->out, curs, (size_t)cl);
    emit_keys(x, &c);
    cm_buf_deinit(&c.keys);
}

static void keys_cmd(struct cmd_ctx *x)
{
    struct collect c = {0};
    c.pat = x->argv[1];
    c.plen = x->argvlen[1];
    cm_buf_init(&c.keys);
    char *next;
    size_t nlen;
    struct cm_err err = {0};
    int rc = eng_scan_prefix(x->eng, x->txn, 0, CM_SLOTS - 1, c.pat, glob_prefix(c.pat, c.plen), NULL,
                             0, 0, x->now_ms, collect_fn, &c, &next, &nlen, &err);
    if (rc < 0) {
        cm_buf_deinit(&c.keys);
        if (rc == CM_ENOMEM)
            reply_err(x, "OOM out of memory");
        else
            reply_storage_err(x, &err);
        return;
    }
    emit_keys(x, &c);
    cm_buf_deinit(&c.keys);
}

static void dbsize_cmd(struct cmd_ctx *x)
{
    long long n = eng_count_keys(x->eng, x->txn, 0, CM_SLOTS - 1, x->now_ms);
    if (n < 0)
        reply_err(x, "ERR storage error while counting keys");
    else
        resp_add_int(x->out, n);
}

static void flushall_cmd(struct cmd_ctx *x)
{
    if (x->argc > 2 || (x->argc == 2 && !arg_is(x, 1, "ASYNC") && !arg_is(x, 1, "SYNC"))) {
        reply_syntax(x);
        return;
    }
    struct cm_err err = {0};
    if (eng_flush_all(x->eng, &err) != 0) {
        reply_storage_err(x, &err);
        return;
    }
    x->c->dirty = true;
    cm_log(CM_LOG_NOTICE, "%s by client %s", x->cmd->name, x->c->addr);
    reply_ok(x);
}

static void randomkey_cmd(struct cmd_ctx *x)
{
    struct cm_buf k;
    struct cm_err err = {0};
    cm_buf_init(&k);
    int rc = eng_random_key(x->eng, x->now_ms, &k, &err);
    if (rc == 0)
        resp_add_bulk(x->out, k.p, k.len);
    else if (rc == CM_ENOTFOUND)
        resp_add_null(x->out, x->resp);
    else
        reply_storage_err(x, &err);
    cm_buf_deinit(&k);
}

#define W CMD_WRITE
#define D CMD_DENYOOM
#define R CMD_READONLY
const struct cmd_def cmd_keys_table[] = {
    {"del", del_cmd, -2, W, 1, -1, 1, "keyspace"},
    {"unlink", del_cmd, -2, W, 1, -1, 1, "keyspace"},
    {"exists", exists_cmd, -2, R | CMD_FAST, 1, -1, 1, "keyspace"},
    {"type", type_cmd, 2, R | CMD_FAST, 1, 1, 1, "keyspace"},
    {"expire", expire_cmd, -3, W | D | CMD_REWRITE, 1, 1, 1, "keyspace"},
    {"pexpire", pexpire_cmd, -3, W | D | CMD_REWRITE, 1, 1, 1, "keyspace"},
    {"expireat", expireat_cmd, -3, W | D | CMD_REWRITE, 1, 1, 1, "keyspace"},
    {"pexpireat", pexpireat_cmd, -3, W | D | CMD_REWRITE, 1, 1, 1, "keyspace"},
    {"ttl", ttl_cmd, 2, R | CMD_FAST, 1, 1, 1, "keyspace"},
    {"pttl", pttl_cmd, 2, R | CMD_FAST, 1, 1, 1, "keyspace"},
    {"expiretime", expiretime_cmd, 2, R | CMD_FAST, 1, 1, 1, "keyspace"},
    {"pexpiretime", pexpiretime_cmd, 2, R | CMD_FAST, 1, 1, 1, "keyspace"},
    {"persist", persist_cmd, 2, W | D | CMD_REWRITE, 1, 1, 1, "keyspace"},
    {"scan", scan_cmd, -2, R, 0, 0, 0, "keyspace"},
    {"keys", keys_cmd, 2, R, 0, 0, 0, "keyspace"},
    {"dbsize", dbsize_cmd, 1, R, 0, 0, 0, "keyspace"},
    {"flushall", flushall_cmd, -1, W | CMD_NOSCRIPT, 0, 0, 0, "keyspace"},
    {"flushdb", flushall_cmd, -1, W | CMD_NOSCRIPT, 0, 0, 0, "keyspace"},
    {"randomkey", randomkey_cmd, 1, R, 0, 0, 0, "keyspace"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL},
};
