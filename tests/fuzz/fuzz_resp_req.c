/* fuzz_resp_req.c - libFuzzer target for the request parser (net/resp.c).
 *
 * Input: byte 0 picks the limits (bit 0: small limits, 16-byte bulks, 8 arguments,
 * 32-byte lines) and byte 1 a split point; the rest is the client's byte stream. The
 * stream is parsed the way conn.c does (consume each frame, resp_req_next) three
 * ways: whole, in two pieces split at the chosen point, and (for short inputs) a byte
 * at a time, each time in a freshly allocated buffer so that the parser may keep no
 * pointer into an old one. All three must give the same commands and the same end
 * (need more, or the same error). Checks that every argument lies inside its frame
 * (or the parser's inline buffer) and that frame_len is within the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    uint64_t hash;   /* of every command parsed */
    size_t ncmds;
    size_t consumed; /* bytes consumed by whole frames */
    int end;         /* RESP_MORE or RESP_BAD */
    char err[128];
};

static void set_limits(struct resp_req *r, int small)
{
    if (small) {
        r->max_bulk = 16;
        r->max_args = 8;
        r->max_inline = 32;
    }
}

/* Parses what the buffer holds; records whole commands. Returns RESP_MORE or
 * RESP_BAD. The buffer is (p, len), frames start at *start. */
static int drain(struct resp_req *r, const char *p, size_t len, size_t *start, struct outcome *o)
{
    for (;;) {
        int rc = resp_req_parse(r, p + *start, len - *start);
        if (rc != RESP_DONE)
            return rc;
        size_t fl = r->frame_len;
        if (fl == 0 || fl > len - *start)
            abort(); /* a frame must be non-empty and inside the buffer */
        for (size_t i = 0; i < r->argc; i++) {
            const char *a = r->argv[i];
            size_t n = r->argvlen[i];
            bool in_frame = a >= p + *start && a + n <= p + *start + fl;
            bool in_inline = r->is_inline && r->inl.p != NULL && a >= r->inl.p &&
                             a + n <= r->inl.p + r->inl.len;
            if (!in_frame && !in_inline && !(n == 0 && r->is_inline))
                abort();
            if (!r->is_inline && n > (size_t)r->max_bulk)
                abort();
            o->hash = fz_hash(o->hash, &n, sizeof(n));
            if (n > 0)
                o->hash = fz_hash(o->hash, a, n);
        }
        if (!r->is_inline && r->argc > (size_t)r->max_args)
            abort();
        o->hash = fz_hash(o->hash, &r->argc, sizeof(r->argc));
        o->ncmds++;
        *start += fl;
        o->consumed = *start;
        resp_req_next(r);
    }
}

/* Feeds the stream in pieces ending at cuts[0] < cuts[1] < ... = size. */
static void run(const uint8_t *s, size_t size, const size_t *cuts, size_t ncuts, int small,
                struct outcome *o)
{
    struct resp_req r;
    resp_req_init(&r);
    set_limits(&r, small);
    memset(o, 0, sizeof(*o));
    o->hash = 14695981039346656037ULL;
    char *buf = NULL;
    size_t start = 0, have = 0;
    int rc = RESP_MORE;
    for (size_t c = 0; c < ncuts && rc != RESP_BAD; c++) {
        /* A new buffer holding the unconsumed bytes plus the next piece: the old one
         * is freed, so a stale pointer in the parser is a use-after-free. */
        size_t keep = have - start, add = cuts[c] - (c ? cuts[c - 1] : 0);
        char *nb = malloc(keep + add + 1);
        if (keep)
            memcpy(nb, buf + start, keep);
        memcpy(nb + keep, s + (c ? cuts[c - 1] : 0), add);
        free(buf);
        buf = nb;
        have = keep + add;
        size_t base = o->consumed;
        start = 0;
        struct outcome tmp = *o;
        tmp.consumed = 0;
        rc = drain(&r, buf, have, &start, &tmp);
        o->hash = tmp.hash;
        o->ncmds = tmp.ncmds;
        o->consumed = base + tmp.consumed;
    }
    o->end = rc;
    if (rc == RESP_BAD) {
        memcpy(o->err, r.err, sizeof(o->err));
        if (r.err[0] == '\0' || strlen(r.err) >= sizeof(r.err))
            abort();
        /* The error sticks. */
        if (resp_req_parse(&r, "PING\r\n", 6) != RESP_BAD)
            abort();
    }
    free(buf);
    resp_req_deinit(&r);
}

static void same(const struct outcome *a, const struct outcome *b)
{
    if (a->ncmds != b->ncmds || a->hash != b->hash || a->end != b->end ||
        a->consumed != b->consumed || (a->end == RESP_BAD && strcmp(a->err, b->err) != 0)) {
        fprintf(stderr, "outcomes differ: %zu vs %zu commands, end %d vs %d, consumed %zu vs %zu, "
                "err \"%s\" vs \"%s\"\n", a->ncmds, b->ncmds, a->end, b->end, a->consumed,
                b->consumed, a->err, b->err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int small = data[0] & 1;
    size_t split = data[1];
    const uint8_t *s = data + 2;
    size -= 2;
    if (size == 0)
        return 0;
    split = split % (size + 1);

    struct outcome whole, two, bytes;
    size_t cut1[1] = {size};
    run(s, size, cut1, 1, small, &whole);
    if (split > 0 && split < size) {
        size_t cut2[2] = {split, size};
        run(s, size, cut2, 2, small, &two);
        same(&whole, &two);
    }
    if (size <= 512) {
        size_t *cuts = malloc(size * sizeof(*cuts));
        for (size_t i = 0; i < size; i++)
            cuts[i] = i + 1;
        run(s, size, cuts, size, small, &bytes);
        free(cuts);
        same(&whole, &bytes);
    }
    return 0;
}
