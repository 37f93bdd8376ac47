/* fuzz_migrate.c - libFuzzer target for the slot-migration batch decoder (cluster/migrate.c),
 * what CLUSTER IMPORT LOAD decodes before it applies anything:
 *   byte 0 even: the rest is a raw batch, read entry by entry with clu__mig_next;
 *   byte 0 odd:  bytes 1-3 are the announced raw length (little-endian, reduced to at most
 *                1 MB) and the rest is the zstd frame, unpacked with clu__mig_unzip and,
 *                when it unpacks, read the same way.
 * Checks: every key and value lies inside the batch and entries follow each other without
 * gap; re-encoding the entries read gives the batch's bytes back up to where reading
 * stopped; an error leaves the offset where it was. For even inputs the batch is also
 * compressed here: it must unpack to the same bytes at its own length and be refused
 * (CM_EPROTO) at one byte less or more; a length past 64 MB is refused with CM_EINVAL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "../../cluster/cluster_int.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FUZZ_RAW (1u << 20)

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)(v & 0xff);
}

/* Reads the whole batch and checks each entry against its own bytes. */
static void check_entries(const char *p, size_t n)
{
    size_t off = 0;
    struct clu_mig_entry e;
    struct cm_err err = {0};
    int rc;
    while ((rc = clu__mig_next(p, n, &off, &e, &err)) == 1) {
        size_t start = off - 5 - e.klen - (e.op == 'P' ? 13 + e.vlen : 0);
        if (off > n || start > off || e.key != p + start + 5)
            abort(); /* the entry must be the bytes just read */
        uint8_t h[5], t[13];
        h[0] = (uint8_t)e.op;
        put_le(h + 1, e.klen, 4);
        if (memcmp(p + start, h, 5) != 0)
            abort();
        if (e.op == 'P') {
            if (e.val != e.key + e.klen + 13 || e.type != ENG_T_STRING)
                abort();
            t[0] = (uint8_t)e.type;
            put_le(t + 1, (uint64_t)e.expire_ms, 8);
            put_le(t + 9, e.vlen, 4);
            if (memcmp(e.key + e.klen, t, 13) != 0)
                abort();
        } else if (e.op != 'D' || e.val != NULL || e.vlen != 0) {
            abort();
        }
        (void)cm_key_slot(e.key, e.klen); /* what apply_batch asks next */
    }
    if (rc != 0 && (rc != CM_EPROTO || err.msg[0] == '\0' || off >= n))
        abort(); /* an error names itself and leaves the offset on the bad entry */
}

/* Compresses the raw batch and unpacks it at its length and one byte off either way. */
static void check_round_trip(const char *p, size_t n)
{
    static ZSTD_CCtx *cctx; /* kept: a new context per input cost most of the time */
    if (cctx == NULL && (cctx = ZSTD_createCCtx()) == NULL)
        abort();
    size_t bound = ZSTD_compressBound(n);
    char *z = malloc(bound);
    size_t zn = ZSTD_compressCCtx(cctx, z, bound, p, n, 1);
    if (ZSTD_isError(zn))
        abort();
    char *raw = NULL;
    if (clu__mig_unzip(z, zn, (long long)n, &raw) != 0 || memcmp(raw, p, n) != 0 ||
        raw[n] != '\0')
        abort();
    cm_free(raw);
    if (clu__mig_unzip(z, zn, (long long)n + 1, &raw) != CM_EPROTO || raw != NULL)
        abort();
    if (n > 0 && (clu__mig_unzip(z, zn, (long long)n - 1, &raw) != CM_EPROTO || raw != NULL))
        abort();
    if (clu__mig_unzip(z, zn, (64ll << 20) + 1, &raw) != CM_EINVAL || raw != NULL)
        abort();
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        check_entries(rest, n);
        check_round_trip(rest, n);
        return 0;
    }
    if (n < 3)
        return 0;
    long long rawlen = (long long)(data[1] | data[2] << 8 | data[3] << 16) % (MAX_FUZZ_RAW + 1);
    char *raw = NULL;
    int rc = clu__mig_unzip(rest + 3, n - 3, rawlen, &raw);
    if (rc == 0) {
        check_entries(raw, (size_t)rawlen);
        cm_free(raw);
    } else if ((rc != CM_EPROTO && rc != CM_ENOMEM) || raw != NULL) {
        abort();
    }
    return 0;
}
