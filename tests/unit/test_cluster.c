/* test_cluster.c - unit tests for cluster/ on their own, without a server: the decoder of
 * slot-migration batches (clu__mig_unzip, clu__mig_next in migrate.c, what CLUSTER IMPORT
 * LOAD reads; fuzzed by tests/fuzz/fuzz_migrate.c). The whole migration is tested through
 * real nodes in tests/integration/test_migrate.c. Uses tests/unit/unit.h. */
#include "unit.h"

#include "../../cluster/cluster_int.h"

#include <stdint.h>
#include <zstd.h>

static void put_le(char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (char)(v & 0xff);
}

/* Appends a 'P' entry to b at *n. */
static void enc_put(char *b, size_t *n, const char *k, const char *v, int64_t exp, int type)
{
    size_t kl = strlen(k), vl = strlen(v);
    b[*n] = 'P';
    put_le(b + *n + 1, kl, 4);
    memcpy(b + *n + 5, k, kl);
    *n += 5 + kl;
    b[*n] = (char)type;
    put_le(b + *n + 1, (uint64_t)exp, 8);
    put_le(b + *n + 9, vl, 4);
    memcpy(b + *n + 13, v, vl);
    *n += 13 + vl;
}

static void enc_del(char *b, size_t *n, const char *k)
{
    size_t kl = strlen(k);
    b[*n] = 'D';
    put_le(b + *n + 1, kl, 4);
    memcpy(b + *n + 5, k, kl);
    *n += 5 + kl;
}

TEST(mig_batch_entries)
{
    char b[256];
    size_t n = 0;
    enc_put(b, &n, "k1", "value", 1700000000000LL, ENG_T_STRING);
    enc_del(b, &n, "{t}gone");
    enc_put(b, &n, "", "", -1, ENG_T_STRING);
    size_t off = 0;
    struct clu_mig_entry e;
    struct cm_err err = {0};
    CHECK_EQ_INT(clu__mig_next(b, n, &off, &e, &err), 1);
    CHECK(e.op == 'P' && e.klen == 2 && memcmp(e.key, "k1", 2) == 0);
    CHECK(e.vlen == 5 && memcmp(e.val, "value", 5) == 0);
    CHECK_EQ_INT(e.expire_ms, 1700000000000LL);
    CHECK_EQ_INT(e.type, ENG_T_STRING);
    CHECK_EQ_INT(clu__mig_next(b, n, &off, &e, &err), 1);
    CHECK(e.op == 'D' && e.klen == 7 && memcmp(e.key, "{t}gone", 7) == 0 && e.val == NULL);
    CHECK_EQ_INT(clu__mig_next(b, n, &off, &e, &err), 1);
    CHECK(e.op == 'P' && e.klen == 0 && e.vlen == 0 && e.expire_ms == -1);
    CHECK_EQ_INT(off, n);
    CHECK_EQ_INT(clu__mig_next(b, n, &off, &e, &err), 0);
    CHECK_EQ_INT(clu__mig_next(b, 0, &(size_t){0}, &e, &err), 0); /* an empty batch */
}

/* Reads b[0..n) to its end or first error; returns that error's text ("" for none) and
 * checks that the offset stopped at the start of the bad entry. */
static const char *first_error(const char *b, size_t n, size_t bad_at)
{
    static struct cm_err err;
    memset(&err, 0, sizeof(err));
    size_t off = 0;
    struct clu_mig_entry e;
    int rc;
    while ((rc = clu__mig_next(b, n, &off, &e, &err)) == 1)
        ;
    if (rc != 0) {
        CHECK_EQ_INT(rc, CM_EPROTO);
        CHECK_EQ_INT(off, bad_at);
    }
    return err.msg;
}

TEST(mig_batch_malformed)
{
    char b[256];
    size_t n = 0;
    enc_put(b, &n, "k", "v", 0, ENG_T_STRING);
    size_t one = n;
    CHECK_STR(first_error(b, n, one), "");
    CHECK_STR(first_error(b, n - 1, 0), "bad value");     /* the value cut short */
    CHECK_STR(first_error(b, one + 4, one), "truncated entry");
    b[one] = 'D';
    put_le(b + one + 1, 100, 4);
    CHECK_STR(first_error(b, one + 5 + 3, one), "truncated key");
    put_le(b + one + 1, 0xffffffffu, 4);
    CHECK_STR(first_error(b, one + 5, one), "truncated key");
    b[one] = 'X';
    put_le(b + one + 1, 1, 4);
    b[one + 5] = 'k';
    CHECK_STR(first_error(b, one + 6, one), "bad entry");
    b[one] = 'P'; /* a put without its 13 bytes of type, expiry and length */
    CHECK_STR(first_error(b, one + 6, one), "bad entry");
    n = 0;
    enc_put(b, &n, "k", "v", 0, ENG_T_STRING + 1);
    CHECK_STR(first_error(b, n, 0), "bad value");
}

TEST(mig_batch_unzip)
{
    size_t base = cm_alloc_used();
    char raw[300];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (char)(i % 7);
    char z[512];
    size_t zn = ZSTD_compress(z, sizeof(z), raw, sizeof(raw), 1);
    CHECK(!ZSTD_isError(zn));
    char *out = NULL;
    CHECK_EQ_INT(clu__mig_unzip(z, zn, sizeof(raw), &out), 0);
    CHECK_MEM(out, sizeof(raw), raw, sizeof(raw));
    CHECK(out[sizeof(raw)] == '\0');
    cm_free(out);
    CHECK_EQ_INT(clu__mig_unzip(z, zn, sizeof(raw) - 1, &out), CM_EPROTO);
    CHECK(out == NULL);
    CHECK_EQ_INT(clu__mig_unzip(z, zn, sizeof(raw) + 1, &out), CM_EPROTO);
    CHECK_EQ_INT(clu__mig_unzip(z, zn - 1, sizeof(raw), &out), CM_EPROTO);
    CHECK_EQ_INT(clu__mig_unzip("not zstd", 8, 8, &out), CM_EPROTO);
    CHECK_EQ_INT(clu__mig_unzip(z, zn, -1, &out), CM_EINVAL);
    CHECK_EQ_INT(clu__mig_unzip(z, zn, (64LL << 20) + 1, &out), CM_EINVAL);
    CHECK(out == NULL);
    cm_alloc_fail_at(1);
    CHECK_EQ_INT(clu__mig_unzip(z, zn, sizeof(raw), &out), CM_ENOMEM);
    cm_alloc_fail_at(0);
    CHECK(out == NULL);
    CHECK_EQ_INT(cm_alloc_used(), base);
}

int main(void)
{
    RUN(mig_batch_entries);
    RUN(mig_batch_malformed);
    RUN(mig_batch_unzip);
    return unit_done();
}
