/* fuzz_resp_reader.c - libFuzzer target for the reply reader (net/resp.c), which
 * libeddy and the server's redis.call conversion use.
 *
 * Input: byte 0 picks the limits (bit 0: small ones: 16-byte bulks, 8 elements,
 * depth 3), byte 1 a split point; the rest is the server's byte stream. It is read
 * whole, in two pieces, and (short inputs) a byte at a time; the replies taken out
 * (hashed as trees) and the end state (need more, or the same error) must agree.
 * Every reply is also re-encoded with the reply writers and read back to the same
 * tree where the writers can express it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    uint64_t hash;
    size_t nreplies;
    int end;
    char err[128];
};

static void set_limits(struct resp_reader *r, int small)
{
    if (small) {
        r->max_bulk = 16;
        r->max_elements = 8;
        r->max_depth = 3;
    }
}

/* Re-encodes v (RESP3) when every node is of a kind the writers produce. Returns
 * false when it is not. */
static bool encode(struct cm_buf *b, const struct resp_value *v)
{
    switch (v->type) {
    case RESP_T_STRING: return resp_add_bulk(b, v->str, v->len) == 0;
    case RESP_T_INTEGER: return resp_add_int(b, v->integer) == 0;
    case RESP_T_NIL: return resp_add_null(b, 3) == 0;
    case RESP_T_BOOL: return resp_add_bool(b, v->integer != 0, 3) == 0;
    case RESP_T_VERB:
        /* The writer takes the format as a C string of 3 characters. */
        if (strlen(v->vtype) != 3)
            return false;
        return resp_add_verbatim(b, v->vtype, v->str, v->len, 3) == 0;
    case RESP_T_ARRAY:
    case RESP_T_SET:
    case RESP_T_MAP:
        if (v->type == RESP_T_MAP) {
            if (v->elements % 2 != 0)
                abort(); /* a map holds pairs */
            resp_add_map(b, v->elements / 2, 3);
        } else if (v->type == RESP_T_SET) {
            resp_add_set(b, v->elements, 3);
        } else {
            resp_add_array(b, v->elements);
        }
        for (size_t i = 0; i < v->elements; i++)
            if (!encode(b, v->element[i]))
                return false;
        return true;
    default:
        return false; /* status/error text may hold CR/LF; doubles, bignums, attrs, push */
    }
}

static void roundtrip(const struct resp_value *v)
{
    struct cm_buf b;
    cm_buf_init(&b);
    if (encode(&b, v)) {
        struct resp_reader r;
        resp_reader_init(&r);
        struct resp_value *w = NULL;
        if (resp_reader_feed(&r, b.p, b.len) != 0 || resp_reader_get(&r, &w) != RESP_DONE)
            abort();
        if (fz_hash_value(1, v) != fz_hash_value(1, w))
            abort();
        resp_value_free(w);
        w = NULL;
        if (resp_reader_get(&r, &w) != RESP_MORE)
            abort(); /* exactly one reply */
        resp_reader_deinit(&r);
    }
    cm_buf_deinit(&b);
}

static void run(const uint8_t *s, size_t size, const size_t *cuts, size_t ncuts, int small,
                bool check_roundtrip, struct outcome *o)
{
    struct resp_reader r;
    resp_reader_init(&r);
    set_limits(&r, small);
    memset(o, 0, sizeof(*o));
    o->hash = 14695981039346656037ULL;
    int rc = RESP_MORE;
    for (size_t c = 0; c < ncuts && rc != RESP_BAD; c++) {
        size_t from = c ? cuts[c - 1] : 0;
        if (resp_reader_feed(&r, s + from, cuts[c] - from) != 0)
            abort();
        for (;;) {
            struct resp_value *v = NULL;
            rc = resp_reader_get(&r, &v);
            if (rc != RESP_DONE)
                break;
            if (v == NULL)
                abort();
            o->hash = fz_hash_value(o->hash, v);
            o->nreplies++;
            if (check_roundtrip && !small)
                roundtrip(v);
            resp_value_free(v);
        }
    }
    o->end = rc;
    if (rc == RESP_BAD) {
        memcpy(o->err, r.err, sizeof(o->err));
        struct resp_value *v = NULL;
        if (resp_reader_get(&r, &v) != RESP_BAD || v != NULL)
            abort(); /* the error sticks */
    }
    resp_reader_deinit(&r);
}

static void same(const struct outcome *a, const struct outcome *b)
{
    if (a->nreplies != b->nreplies || a->hash != b->hash || a->end != b->end ||
        (a->end == RESP_BAD && strcmp(a->err, b->err) != 0)) {
        fprintf(stderr, "outcomes differ: %zu vs %zu replies, end %d vs %d, \"%s\" vs \"%s\"\n",
                a->nreplies, b->nreplies, a->end, b->end, a->err, b->err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int small = data[0] & 1;
    const uint8_t *s = data + 2;
    size_t n = size - 2;
    if (n == 0)
        return 0;
    size_t split = data[1] % (n + 1);
    struct outcome whole, two, bytes;
    size_t cut1[1] = {n};
    run(s, n, cut1, 1, small, true, &whole);
    if (split > 0 && split < n) {
        size_t cut2[2] = {split, n};
        run(s, n, cut2, 2, small, false, &two);
        same(&whole, &two);
    }
    if (n <= 512) {
        size_t *cuts = malloc(n * sizeof(*cuts));
        for (size_t i = 0; i < n; i++)
            cuts[i] = i + 1;
        run(s, n, cuts, n, small, false, &bytes);
        free(cuts);
        same(&whole, &bytes);
    }
    return 0;
}
