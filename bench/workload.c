/* workload.c - eddy-bench's workloads: the operation mix of each (YCSB A-F and the
 * point ones), the UDF library of the "udf" mix, choosing an operation's keys, and
 * building its RESP command (argv) from the options and FCALL templates. */
#include "bench.h"

#include "../common/common.h"

#include <stdio.h>
#include <string.h>

static const char *const op_names[EB_OP_COUNT] = {
    "GET", "SET", "INCR", "MGET", "MSET", "FCALL", "READ", "UPDATE", "INSERT", "SCAN",
    "RMW", "EB_GET", "EB_RMW", "EB_INCR", "EB_MGET", "PING", "LOAD",
};

const char *eb_op_name(enum eb_opkind k)
{
    return (unsigned)k < EB_OP_COUNT ? op_names[k] : "?";
}

const char eb_udf_library[] =
    "#!lua name=ebench\n"
    "redis.register_function{function_name='eb_get', flags={'no-writes'},\n"
    "  callback=function(keys) return redis.call('GET', keys[1]) end}\n"
    "redis.register_function('eb_rmw', function(keys, args)\n"
    "  local v = redis.call('GET', keys[1])\n"
    "  redis.call('SET', keys[1], args[1])\n"
    "  if v then return #v end\n"
    "  return 0\n"
    "end)\n"
    "redis.register_function('eb_incr', function(keys, args)\n"
    "  return redis.call('INCRBY', keys[1], args[1])\n"
    "end)\n"
    "redis.register_function{function_name='eb_mget', flags={'no-writes', 'allow-cross-slot-keys'},\n"
    "  callback=function(keys)\n"
    "    local n = 0\n"
    "    for i = 1, #keys do\n"
    "      local v = redis.call('GET', keys[i])\n"
    "      if v then n = n + #v end\n"
    "    end\n"
    "    return n\n"
    "  end}\n";

static void mix_set(struct eb_mix *m, enum eb_dist dist, int n, const enum eb_opkind *k,
                    const double *p)
{
    m->n = n;
    m->dist = dist;
    double c = 0;
    for (int i = 0; i < n; i++) {
        c += p[i];
        m->kind[i] = k[i];
        m->cum[i] = c;
    }
    m->cum[n - 1] = 1.0;
}

#define MIX(dist, ...)                                                                       \
    do {                                                                                     \
        static const enum eb_opkind k_[] = {__VA_ARGS__};                                    \
        mix_set(m, dist, (int)(sizeof(k_) / sizeof(k_[0])), k_, p_);                         \
    } while (0)

void eb_mix_of(enum eb_workload w, struct eb_mix *m)
{
    static const double one[] = {1.0};
    static const double half[] = {0.5, 0.5};
    static const double p95[] = {0.95, 0.05};
    static const double udf[] = {0.4, 0.3, 0.2, 0.1};
    const double *p_ = one;
    switch (w) {
    case EB_WL_GET: MIX(EB_DIST_UNIFORM, EB_OP_GET); break;
    case EB_WL_SET: MIX(EB_DIST_UNIFORM, EB_OP_SET); break;
    case EB_WL_INCR: MIX(EB_DIST_UNIFORM, EB_OP_INCR); break;
    case EB_WL_MGET: MIX(EB_DIST_UNIFORM, EB_OP_MGET); break;
    case EB_WL_MSET: MIX(EB_DIST_UNIFORM, EB_OP_MSET); break;
    case EB_WL_FCALL: MIX(EB_DIST_UNIFORM, EB_OP_FCALL); break;
    case EB_WL_PING: MIX(EB_DIST_UNIFORM, EB_OP_PING); break;
    case EB_WL_LOAD: MIX(EB_DIST_SEQ, EB_OP_LOAD); break;
    case EB_WL_YCSB_A: p_ = half; MIX(EB_DIST_ZIPF, EB_OP_READ, EB_OP_UPDATE); break;
    case EB_WL_YCSB_B: p_ = p95; MIX(EB_DIST_ZIPF, EB_OP_READ, EB_OP_UPDATE); break;
    case EB_WL_YCSB_C: MIX(EB_DIST_ZIPF, EB_OP_READ); break;
    case EB_WL_YCSB_D: p_ = p95; MIX(EB_DIST_LATEST, EB_OP_READ, EB_OP_INSERT); break;
    case EB_WL_YCSB_E: p_ = p95; MIX(EB_DIST_ZIPF, EB_OP_SCAN, EB_OP_INSERT); break;
    case EB_WL_YCSB_F: p_ = half; MIX(EB_DIST_ZIPF, EB_OP_READ, EB_OP_RMW); break;
    case EB_WL_UDF:
        p_ = udf;
        MIX(EB_DIST_ZIPF, EB_OP_UDF_GET, EB_OP_UDF_RMW, EB_OP_UDF_INCR, EB_OP_UDF_MGET);
        break;
    case EB_WL_COUNT: MIX(EB_DIST_UNIFORM, EB_OP_PING); break;
    }
}

enum eb_opkind eb_mix_pick(const struct eb_mix *m, double u)
{
    for (int i = 0; i < m->n - 1; i++)
        if (u < m->cum[i])
            return m->kind[i];
    return m->kind[m->n - 1];
}

/* ---- Commands --------------------------------------------------------------------------- */

struct builder {
    struct eb_cmd *cmd;
    char *scratch;
    size_t cap, used;
    bool overflow;
};

static void arg(struct builder *b, const char *p, size_t n)
{
    if (b->cmd->argc >= (int)(sizeof(b->cmd->argv) / sizeof(b->cmd->argv[0]))) {
        b->overflow = true;
        return;
    }
    b->cmd->argv[b->cmd->argc] = p;
    b->cmd->argvlen[b->cmd->argc] = n;
    b->cmd->argc++;
}

static void arg_str(struct builder *b, const char *s) { arg(b, s, strlen(s)); }

/* Reserves room in scratch; NULL (and overflow) if there is none. */
static char *room(struct builder *b, size_t n)
{
    if (b->cap - b->used < n) {
        b->overflow = true;
        return NULL;
    }
    return b->scratch + b->used;
}

static void arg_key(struct builder *b, const char *prefix, uint64_t k, uint64_t tags)
{
    char *p = room(b, 128);
    if (p == NULL)
        return;
    size_t n = eb_key_name(p, 128, prefix, k, tags);
    b->used += n + 1;
    arg(b, p, n);
}

static void arg_num(struct builder *b, unsigned long long v)
{
    char *p = room(b, 24);
    if (p == NULL)
        return;
    int n = snprintf(p, 24, "%llu", v);
    b->used += (size_t)n + 1;
    arg(b, p, (size_t)n);
}

/* A value of the configured size, taken at a random offset of the random buffer. */
static void pick_value(const struct eb_opts *o, struct eb_rng *r, const char *values,
                       const char **p, size_t *n)
{
    *n = o->value_min;
    if (o->value_max > o->value_min)
        *n += (size_t)eb_rng_below(r, o->value_max - o->value_min + 1);
    *p = values + eb_rng_below(r, 64);
}

static void arg_value(struct builder *b, const struct eb_opts *o, struct eb_rng *r,
                      const char *values)
{
    const char *p;
    size_t n;
    pick_value(o, r, values, &p, &n);
    arg(b, p, n);
}

long eb_template_expand(const char *tmpl, const char *key, size_t keylen,
                        const char *counter, size_t counterlen, const char *value,
                        size_t valuelen, uint64_t rnd, uint64_t key_n, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *src = p;
        size_t n = 1;
        char num[24];
        if (p[0] == '{' && p[1] == '{') {
            p += 2;
        } else if (strncmp(p, "{key}", 5) == 0) {
            src = key, n = keylen, p += 5;
        } else if (strncmp(p, "{counter}", 9) == 0) {
            src = counter, n = counterlen, p += 9;
        } else if (strncmp(p, "{value}", 7) == 0) {
            src = value, n = valuelen, p += 7;
        } else if (strncmp(p, "{rand}", 6) == 0) {
            n = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)rnd);
            src = num, p += 6;
        } else if (strncmp(p, "{n}", 3) == 0) {
            n = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)key_n);
            src = num, p += 3;
        } else {
            p++;
        }
        if (cap - o < n + 1)
            return -1;
        memcpy(out + o, src, n);
        o += n;
    }
    out[o] = '\0';
    return (long)o;
}

/* One FCALL template, expanded for key number k. */
static void arg_template(struct builder *b, const struct eb_opts *o, const char *tmpl,
                         uint64_t k, struct eb_rng *r, const char *values)
{
    char key[128], counter[128];
    size_t kl = eb_key_name(key, sizeof(key), o->key_prefix, k, o->hashtags);
    size_t cl = eb_key_name(counter, sizeof(counter), o->counter_prefix, k, o->hashtags);
    const char *v;
    size_t vl;
    pick_value(o, r, values, &v, &vl);
    if (strcmp(tmpl, "{value}") == 0) { /* the common case, without a copy */
        arg(b, v, vl);
        return;
    }
    size_t cap = b->cap - b->used;
    long n = eb_template_expand(tmpl, key, kl, counter, cl, v, vl, eb_rng_next(r) >> 33, k,
                                b->scratch + b->used, cap);
    if (n < 0) {
        b->overflow = true;
        return;
    }
    arg(b, b->scratch + b->used, (size_t)n);
    b->used += (size_t)n + 1;
}

static void build_fcall(struct builder *b, const struct eb_opts *o, const struct eb_op *op,
                        struct eb_rng *r, const char *values)
{
    arg_str(b, o->fcall_ro ? "FCALL_RO" : "FCALL");
    arg_str(b, o->fcall);
    arg_num(b, (unsigned long long)o->nfcall_keys);
    for (int i = 0; i < o->nfcall_keys; i++)
        arg_template(b, o, o->fcall_keys[i], op->keys[i < op->nkeys ? i : 0], r, values);
    for (int i = 0; i < o->nfcall_args; i++)
        arg_template(b, o, o->fcall_args[i], op->keys[0], r, values);
}

int eb_op_build(const struct eb_opts *o, const struct eb_op *op, struct eb_rng *r,
                const char *values, char *scratch, size_t cap, struct eb_cmd *cmd)
{
    struct builder b = {cmd, scratch, cap, 0, false};
    const char *pfx = o->key_prefix;
    uint64_t tags = o->hashtags;
    cmd->argc = 0;
    switch (op->kind) {
    case EB_OP_GET:
    case EB_OP_READ:
        arg_str(&b, "GET");
        arg_key(&b, pfx, op->keys[0], tags);
        break;
    case EB_OP_RMW:
        arg_str(&b, op->phase == 0 ? "GET" : "SET");
        arg_key(&b, pfx, op->keys[0], tags);
        if (op->phase != 0)
            arg_value(&b, o, r, values);
        break;
    case EB_OP_SET:
    case EB_OP_UPDATE:
    case EB_OP_INSERT:
    case EB_OP_LOAD:
        arg_str(&b, "SET");
        arg_key(&b, pfx, op->keys[0], tags);
        arg_value(&b, o, r, values);
        break;
    case EB_OP_INCR:
        arg_str(&b, "INCR");
        arg_key(&b, o->counter_prefix, op->keys[0], tags);
        break;
    case EB_OP_MGET:
        arg_str(&b, "MGET");
        for (int i = 0; i < op->nkeys; i++)
            arg_key(&b, pfx, op->keys[i], tags);
        break;
    case EB_OP_MSET:
        arg_str(&b, "MSET");
        for (int i = 0; i < op->nkeys; i++) {
            arg_key(&b, pfx, op->keys[i], tags);
            arg_value(&b, o, r, values);
        }
        break;
    case EB_OP_FCALL:
        build_fcall(&b, o, op, r, values);
        break;
    case EB_OP_SCAN:
        if (o->scan_fcall[0]) {
            arg_str(&b, "FCALL_RO");
            arg_str(&b, o->scan_fcall);
            arg_str(&b, "1");
            arg_key(&b, pfx, op->keys[0], tags);
        } else {
            char key[128];
            size_t kl = eb_key_name(key, sizeof(key), pfx, op->keys[0], tags);
            arg_str(&b, "SCAN");
            arg_num(&b, cm_key_slot(key, kl));
            arg_str(&b, "COUNT");
        }
        arg_num(&b, (unsigned long long)op->scan_len);
        break;
    case EB_OP_UDF_GET:
        arg_str(&b, "FCALL_RO");
        arg_str(&b, "eb_get");
        arg_str(&b, "1");
        arg_key(&b, pfx, op->keys[0], tags);
        break;
    case EB_OP_UDF_RMW:
        arg_str(&b, "FCALL");
        arg_str(&b, "eb_rmw");
        arg_str(&b, "1");
        arg_key(&b, pfx, op->keys[0], tags);
        arg_value(&b, o, r, values);
        break;
    case EB_OP_UDF_INCR:
        arg_str(&b, "FCALL");
        arg_str(&b, "eb_incr");
        arg_str(&b, "1");
        arg_key(&b, o->counter_prefix, op->keys[0], tags);
        arg_str(&b, "1");
        break;
    case EB_OP_UDF_MGET:
        arg_str(&b, "FCALL_RO");
        arg_str(&b, "eb_mget");
        arg_num(&b, (unsigned long long)op->nkeys);
        for (int i = 0; i < op->nkeys; i++)
            arg_key(&b, pfx, op->keys[i], tags);
        break;
    case EB_OP_PING:
    case EB_OP_COUNT:
        arg_str(&b, "PING");
        break;
    }
    return b.overflow ? -1 : cmd->argc;
}

int eb_op_slot(const struct eb_opts *o, const struct eb_op *op)
{
    if (op->kind == EB_OP_PING || (op->kind == EB_OP_SCAN && o->scan_fcall[0] == '\0'))
        return -1;
    if (op->kind == EB_OP_FCALL && o->nfcall_keys == 0)
        return -1;
    bool counter = op->kind == EB_OP_INCR || op->kind == EB_OP_UDF_INCR;
    char key[128];
    size_t kl = eb_key_name(key, sizeof(key), counter ? o->counter_prefix : o->key_prefix,
                            op->keys[0], o->hashtags);
    return (int)cm_key_slot(key, kl);
}

/* The other keys of a multi-key op: from the first key's hash-tag group if there
 * are tags (so that they share a slot), else from the distribution. */
static uint64_t other_key(const struct eb_opts *o, struct eb_keygen *g, struct eb_rng *r,
                          uint64_t count, uint64_t first)
{
    if (o->hashtags == 0)
        return eb_keygen_next(g, r, count);
    uint64_t group = first % o->hashtags;
    if (group >= count)
        return first;
    uint64_t members = (count - 1 - group) / o->hashtags + 1;
    return group + o->hashtags * eb_rng_below(r, members);
}

void eb_op_choose(struct eb_op *op, const struct eb_opts *o, enum eb_opkind kind,
                  struct eb_keygen *g, struct eb_rng *r, uint64_t count)
{
    op->kind = kind;
    op->phase = 0;
    op->node = -1;
    op->asking = false;
    op->redirects = 0;
    op->scan_len = 0;
    switch (kind) {
    case EB_OP_MGET:
    case EB_OP_MSET:
    case EB_OP_UDF_MGET:
        op->nkeys = o->mkeys;
        break;
    case EB_OP_FCALL:
        op->nkeys = o->nfcall_keys > 0 ? o->nfcall_keys : 1;
        break;
    default:
        op->nkeys = 1;
    }
    op->keys[0] = eb_keygen_next(g, r, count);
    for (int i = 1; i < op->nkeys; i++)
        op->keys[i] = other_key(o, g, r, count, op->keys[0]);
    if (kind == EB_OP_SCAN)
        op->scan_len = 1 + (int)eb_rng_below(r, (uint64_t)o->scan_max);
}
