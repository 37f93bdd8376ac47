/* cmd_string.c - the string commands (GET, SET and its options, counters, ranges),
 * with Redis's arguments, replies and error texts. */
#include "net_int.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses a relative or absolute expiry argument into absolute ms. unit_ms is 1000
 * for seconds; absolute says EXAT/PXAT. Returns false after replying. */
static bool parse_expire(struct cmd_ctx *x, size_t i, long long unit_ms, bool absolute,
                         const char *cmdname, int64_t *out)
{
    long long v;
    if (!arg_ll(x, i, &v))
        return false;
    if (v <= 0 || v > LLONG_MAX / unit_ms ||
        (!absolute && v * unit_ms > LLONG_MAX - x->now_ms)) {
        reply_errf(x, "ERR invalid expire time in '%s' command", cmdname);
        return false;
    }
    *out = absolute ? v * unit_ms : x->now_ms + v * unit_ms;
    return true;
}

static void get_cmd(struct cmd_ctx *x)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND)
        resp_add_null(x->out, x->resp);
    else if (rc == 0) {
        resp_add_bulk(x->out, it.data, it.len);
        eng_item_release(&it);
    }
}

enum { SET_NX = 1, SET_XX = 2, SET_GET = 4, SET_KEEPTTL = 8, SET_EXPIRE = 16 };

/* Which of EX PX EXAT PXAT (1..4) argument i is, or 0. As in Redis, one of them may
 * be given again (the last counts), but not two different ones. */
static int expire_kind(struct cmd_ctx *x, size_t i)
{
    static const char *const kinds[] = {"EX", "PX", "EXAT", "PXAT"};
    for (int k = 0; k < 4; k++)
        if (arg_is(x, i, kinds[k]))
            return k + 1;
    return 0;
}

static void set_cmd(struct cmd_ctx *x)
{
    int flags = 0, kind = 0, k;
    int64_t expire = 0;
    for (size_t i = 3; i < x->argc; i++) {
        bool more = i + 1 < x->argc;
        if (arg_is(x, i, "NX") && !(flags & SET_XX))
            flags |= SET_NX;
        else if (arg_is(x, i, "XX") && !(flags & SET_NX))
            flags |= SET_XX;
        else if (arg_is(x, i, "GET"))
            flags |= SET_GET;
        else if (arg_is(x, i, "KEEPTTL") && !(flags & SET_EXPIRE))
            flags |= SET_KEEPTTL;
        else if (more && !(flags & SET_KEEPTTL) && (k = expire_kind(x, i)) != 0 &&
                 (kind == 0 || kind == k)) {
            bool secs = k == 1 || k == 3, abs = k >= 3;
            if (!parse_expire(x, i + 1, secs ? 1000 : 1, abs, "set", &expire))
                return;
            flags |= SET_EXPIRE;
            kind = k;
            i++;
        } else {
            reply_syntax(x);
            return;
        }
    }
    const char *key = x->argv[1];
    size_t klen = x->argvlen[1];
    struct eng_item old;
    bool exists = false;
    if (flags & (SET_NX | SET_XX | SET_GET | SET_KEEPTTL)) {
        int rc = kv_get(x, key, klen, &old);
        if (rc != 0 && rc != CM_ENOTFOUND)
            return;
        exists = rc == 0;
    }
    bool do_set = !((flags & SET_NX) && exists) && !((flags & SET_XX) && !exists);
    if (do_set) {
        if (flags & SET_KEEPTTL)
            expire = exists ? old.expire_ms : 0;
        if (kv_put(x, key, klen, expire, x->argv[2], x->argvlen[2]) != 0)
            goto out;
    }
    if (flags & SET_GET) {
        if (exists)
            resp_add_bulk(x->out, old.data, old.len);
        else
            resp_add_null(x->out, x->resp);
    } else if (do_set) {
        reply_ok(x);
    } else {
        resp_add_null(x->out, x->resp);
    }
out:
    if (exists)
        eng_item_release(&old);
}

static void setnx_cmd(struct cmd_ctx *x)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == 0) {
        eng_item_release(&it);
        resp_add_int(x->out, 0);
    } else if (rc == CM_ENOTFOUND &&
               kv_put(x, x->argv[1], x->argvlen[1], 0, x->argv[2], x->argvlen[2]) == 0) {
        resp_add_int(x->out, 1);
    }
}

static void setex_generic(struct cmd_ctx *x, long long unit, const char *name)
{
    int64_t expire;
    if (!parse_expire(x, 2, unit, false, name, &expire))
        return;
    if (kv_put(x, x->argv[1], x->argvlen[1], expire, x->argv[3], x->argvlen[3]) == 0)
        reply_ok(x);
}

static void setex_cmd(struct cmd_ctx *x)
{
    setex_generic(x, 1000, "setex");
}

static void psetex_cmd(struct cmd_ctx *x)
{
    setex_generic(x, 1, "psetex");
}

static void getdel_cmd(struct cmd_ctx *x)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND) {
        resp_add_null(x->out, x->resp);
    } else if (rc == 0) {
        resp_add_bulk(x->out, it.data, it.len);
        kv_del(x, x->argv[1], x->argvlen[1]);
        eng_item_release(&it);
    }
}

static void getex_cmd(struct cmd_ctx *x)
{
    int64_t expire = -1; /* -1: leave the TTL as it is; 0: persist */
    int kind = 0, k;     /* expire_kind; 5: PERSIST. Each may repeat, as in Redis. */
    for (size_t i = 2; i < x->argc; i++) {
        if (arg_is(x, i, "PERSIST") && (kind == 0 || kind == 5)) {
            expire = 0;
            kind = 5;
        } else if (i + 1 < x->argc && (k = expire_kind(x, i)) != 0 && (kind == 0 || kind == k)) {
            bool secs = k == 1 || k == 3, abs = k >= 3;
            if (!parse_expire(x, i + 1, secs ? 1000 : 1, abs, "getex", &expire))
                return;
            kind = k;
            i++;
        } else {
            reply_syntax(x);
            return;
        }
    }
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND) {
        resp_add_null(x->out, x->resp);
        return;
    }
    if (rc != 0)
        return;
    /* A time already past deletes the key, as in Redis (and as EXPIRE does). Else the
     * write first: a refusal (or its failure) is the only reply. */
    if (expire > 0 && expire <= x->now_ms) {
        kv_del(x, x->argv[1], x->argvlen[1]);
    } else if (expire >= 0 && expire != it.expire_ms &&
               kv_rewrite(x, x->argv[1], x->argvlen[1], expire, it.data, it.len) != 0) {
        eng_item_release(&it);
        return;
    }
    resp_add_bulk(x->out, it.data, it.len);
    eng_item_release(&it);
}

static void mget_cmd(struct cmd_ctx *x)
{
    /* One snapshot for all the keys: MGET is atomic with respect to MSET. */
    if (x->argc > 2 && x->txn == NULL && (x->snap = eng_snap_new(x->eng)) == NULL) {
        reply_err(x, "OOM out of memory");
        return;
    }
    resp_add_array(x->out, x->argc - 1);
    for (size_t i = 1; i < x->argc; i++) {
        struct eng_item it;
        int rc = kv_get(x, x->argv[i], x->argvlen[i], &it);
        if (rc == 0) {
            resp_add_bulk(x->out, it.data, it.len);
            eng_item_release(&it);
        } else if (rc == CM_ENOTFOUND) {
            resp_add_null(x->out, x->resp);
        } else {
            break; /* kv_get replied with the storage error */
        }
    }
    eng_snap_free(x->eng, x->snap);
    x->snap = NULL;
}

static bool check_pairs(struct cmd_ctx *x)
{
    if (x->argc % 2 == 1)
        return true;
    reply_errf(x, "ERR wrong number of arguments for '%s' command", x->cmd->name);
    return false;
}

/* Queues every key/value pair of MSET and MSETNX; false after an error reply. */
static bool put_pairs(struct cmd_ctx *x)
{
    for (size_t i = 1; i < x->argc; i += 2)
        if (kv_put(x, x->argv[i], x->argvlen[i], 0, x->argv[i + 1], x->argvlen[i + 1]) != 0)
            return false;
    return true;
}

static void mset_cmd(struct cmd_ctx *x)
{
    if (check_pairs(x) && put_pairs(x))
        reply_ok(x);
}

static void msetnx_cmd(struct cmd_ctx *x)
{
    if (!check_pairs(x))
        return;
    for (size_t i = 1; i < x->argc; i += 2) {
        struct eng_item it;
        int rc = kv_get(x, x->argv[i], x->argvlen[i], &it);
        if (rc == 0) {
            eng_item_release(&it);
            resp_add_int(x->out, 0);
            return;
        }
        if (rc != CM_ENOTFOUND)
            return;
    }
    if (put_pairs(x))
        resp_add_int(x->out, 1);
}

static void incr_generic(struct cmd_ctx *x, long long by)
{
    struct eng_item it;
    long long v = 0;
    int64_t expire = 0;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc != 0 && rc != CM_ENOTFOUND)
        return;
    if (rc == 0) {
        int bad = cm_str_to_ll(it.data, it.len, &v);
        expire = it.expire_ms;
        eng_item_release(&it);
        if (bad) {
            reply_err(x, "ERR value is not an integer or out of range");
            return;
        }
    }
    if ((by < 0 && v < LLONG_MIN - by) || (by > 0 && v > LLONG_MAX - by)) {
        reply_err(x, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    char buf[24];
    int n = cm_ll_to_str(buf, v);
    if (kv_put(x, x->argv[1], x->argvlen[1], expire, buf, (size_t)n) == 0)
        resp_add_int(x->out, v);
}

static void incr_cmd(struct cmd_ctx *x)
{
    incr_generic(x, 1);
}

static void decr_cmd(struct cmd_ctx *x)
{
    incr_generic(x, -1);
}

static void incrby_cmd(struct cmd_ctx *x)
{
    long long by;
    if (arg_ll(x, 2, &by))
        incr_generic(x, by);
}

static void decrby_cmd(struct cmd_ctx *x)
{
    long long by;
    if (!arg_ll(x, 2, &by))
        return;
    if (by == LLONG_MIN) {
        reply_err(x, "ERR decrement would overflow");
        return;
    }
    incr_generic(x, -by);
}

static void incrbyfloat_cmd(struct cmd_ctx *x)
{
    long double by, v = 0;
    if (cm_str_to_ldouble(x->argv[2], x->argvlen[2], &by) != 0) {
        reply_err(x, "ERR value is not a valid float");
        return;
    }
    struct eng_item it;
    int64_t expire = 0;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc != 0 && rc != CM_ENOTFOUND)
        return;
    if (rc == 0) {
        int bad = cm_str_to_ldouble(it.data, it.len, &v);
        expire = it.expire_ms;
        eng_item_release(&it);
        if (bad) {
            reply_err(x, "ERR value is not a valid float");
            return;
        }
    }
    long double r = v + by;
    if (isnan(r) || isinf(r)) {
        reply_err(x, "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[5120]; /* %Lf of the largest long double */
    int n = cm_double_to_str(buf, sizeof(buf), r);
    if (kv_put(x, x->argv[1], x->argvlen[1], expire, buf, (size_t)n) == 0)
        resp_add_bulk(x->out, buf, (size_t)n);
}

static void append_cmd(struct cmd_ctx *x)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc != 0 && rc != CM_ENOTFOUND)
        return;
    size_t oldlen = rc == 0 ? it.len : 0;
    if ((long long)(oldlen + x->argvlen[2]) > NET_CFG(x->srv->cfg, max_bulk)) {
        if (rc == 0)
            eng_item_release(&it);
        reply_err(x, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return;
    }
    struct cm_buf v;
    cm_buf_init(&v);
    if (cm_buf_reserve(&v, oldlen + x->argvlen[2]) != 0) {
        if (rc == 0)
            eng_item_release(&it);
        reply_err(x, "OOM out of memory");
        return;
    }
    int64_t expire = rc == 0 ? it.expire_ms : 0;
    if (rc == 0) {
        cm_buf_append(&v, it.data, it.len);
        eng_item_release(&it);
    }
    cm_buf_append(&v, x->argv[2], x->argvlen[2]);
    if (kv_rewrite(x, x->argv[1], x->argvlen[1], expire, v.p, v.len) == 0)
        resp_add_int(x->out, (long long)v.len);
    cm_buf_deinit(&v);
}

static void strlen_cmd(struct cmd_ctx *x)
{
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND)
        resp_add_int(x->out, 0);
    else if (rc == 0) {
        resp_add_int(x->out, (long long)it.len);
        eng_item_release(&it);
    }
}

static void getrange_cmd(struct cmd_ctx *x)
{
    long long start, end;
    if (!arg_ll(x, 2, &start) || !arg_ll(x, 3, &end))
        return;
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc == CM_ENOTFOUND) {
        resp_add_bulk(x->out, "", 0);
        return;
    }
    if (rc != 0)
        return;
    long long len = (long long)it.len;
    if (start < 0 && end < 0 && start > end) {
        resp_add_bulk(x->out, "", 0);
    } else {
        if (start < 0)
            start += len;
        if (end < 0)
            end += len;
        if (start < 0)
            start = 0;
        if (end < 0)
            end = 0;
        if (end >= len)
            end = len - 1;
        if (len == 0 || start > end)
            resp_add_bulk(x->out, "", 0);
        else
            resp_add_bulk(x->out, it.data + start, (size_t)(end - start + 1));
    }
    eng_item_release(&it);
}

static void setrange_cmd(struct cmd_ctx *x)
{
    long long off;
    if (!arg_ll(x, 2, &off))
        return;
    if (off < 0) {
        reply_err(x, "ERR offset is out of range");
        return;
    }
    size_t vlen = x->argvlen[3];
    struct eng_item it;
    int rc = kv_get(x, x->argv[1], x->argvlen[1], &it);
    if (rc != 0 && rc != CM_ENOTFOUND)
        return;
    size_t oldlen = rc == 0 ? it.len : 0;
    if (vlen == 0) { /* as Redis: nothing to write, so no size check */
        resp_add_int(x->out, (long long)oldlen);
        if (rc == 0)
            eng_item_release(&it);
        return;
    }
    long long max = NET_CFG(x->srv->cfg, max_bulk);
    if ((long long)vlen > max || off > max - (long long)vlen) { /* off + vlen, no overflow */
        if (rc == 0)
            eng_item_release(&it);
        reply_err(x, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return;
    }
    size_t newlen = (size_t)off + vlen > oldlen ? (size_t)off + vlen : oldlen;
    char *v = cm_calloc(1, newlen);
    if (v == NULL) {
        if (rc == 0)
            eng_item_release(&it);
        reply_err(x, "OOM out of memory");
        return;
    }
    int64_t expire = 0;
    if (rc == 0) {
        memcpy(v, it.data, it.len);
        expire = it.expire_ms;
        eng_item_release(&it);
    }
    memcpy(v + off, x->argv[3], vlen);
    if (kv_rewrite(x, x->argv[1], x->argvlen[1], expire, v, newlen) == 0)
        resp_add_int(x->out, (long long)newlen);
    cm_free(v);
}

#define W CMD_WRITE
#define D CMD_DENYOOM
#define R (CMD_READONLY | CMD_FAST)
const struct cmd_def cmd_string_table[] = {
    {"get", get_cmd, 2, R, 1, 1, 1, "string"},
    {"set", set_cmd, -3, W | D, 1, 1, 1, "string"},
    {"setnx", setnx_cmd, 3, W | D, 1, 1, 1, "string"},
    {"setex", setex_cmd, 4, W | D, 1, 1, 1, "string"},
    {"psetex", psetex_cmd, 4, W | D, 1, 1, 1, "string"},
    {"getdel", getdel_cmd, 2, W, 1, 1, 1, "string"},
    {"getex", getex_cmd, -2, W | D | CMD_REWRITE, 1, 1, 1, "string"},
    {"mget", mget_cmd, -2, CMD_READONLY, 1, -1, 1, "string"},
    {"mset", mset_cmd, -3, W | D, 1, -1, 2, "string"},
    {"msetnx", msetnx_cmd, -3, W | D, 1, -1, 2, "string"},
    {"incr", incr_cmd, 2, W | D, 1, 1, 1, "string"},
    {"decr", decr_cmd, 2, W | D, 1, 1, 1, "string"},
    {"incrby", incrby_cmd, 3, W | D, 1, 1, 1, "string"},
    {"decrby", decrby_cmd, 3, W | D, 1, 1, 1, "string"},
    {"incrbyfloat", incrbyfloat_cmd, 3, W | D, 1, 1, 1, "string"},
    {"append", append_cmd, 3, W | D | CMD_REWRITE, 1, 1, 1, "string"},
    {"strlen", strlen_cmd, 2, R, 1, 1, 1, "string"},
    {"getrange", getrange_cmd, 4, CMD_READONLY, 1, 1, 1, "string"},
    {"substr", getrange_cmd, 4, CMD_READONLY, 1, 1, 1, "string"},
    {"setrange", setrange_cmd, 4, W | D | CMD_REWRITE, 1, 1, 1, "string"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL},
};
