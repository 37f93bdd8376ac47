/* engine_int.h - declarations private to engine/: the value cache (cache.c), used by
 * engine.c. */
#ifndef EDDY_ENGINE_INT_H
#define EDDY_ENGINE_INT_H

#include "engine.h"

/* ---- Value cache ----------------------------------------------------------------------
 * Encoded values (type, flags, expiry, payload, as stored in RocksDB) of user keys,
 * in a fixed table of 4-way buckets under 1024 lock groups, within a byte budget
 * (an insert that would pass it first empties a few buckets of its group). Values
 * longer than ENG__CACHE_VALUE_MAX are never cached. Thread-safe; its locks are
 * leaves (nothing else is locked while one is held).
 *
 * Coherence (the generation rule): a write count per group of buckets (65,536 at
 * most, each under one lock) counts the writes to its keys.
 * A reader takes eng__cache_gen before it reads RocksDB and passes it to
 * eng__cache_fill, which stores the value only if no write of the group came in
 * between. A writer takes eng__cache_gen before its RocksDB write and calls
 * eng__cache_set after it: the new value is stored only if no other write of the
 * group came in between (a batch expects its own earlier writes of the group), else
 * the key is dropped. Either way the count moves on. So
 * a value in the cache is never older than the last write RocksDB applied and
 * eng__cache_set has seen, whatever the order of concurrent writers and readers. */
#define ENG__CACHE_VALUE_MAX 2048

struct eng__cache;

/* A cache of budget bytes; NULL when budget is 0 (no cache) or out of memory. */
struct eng__cache *eng__cache_new(size_t budget);
void eng__cache_free(struct eng__cache *c); /* NULL is a no-op */
/* Looks key up (hash: eng__key_hash). Returns 0 with the encoded value copied into out
 * (cleared first), or CM_ENOTFOUND (also when out of memory). */
int eng__cache_get(struct eng__cache *c, uint64_t hash, const char *key, size_t klen,
                   struct cm_buf *out);
/* The write count of key's group, taken before a RocksDB read or write. */
unsigned eng__cache_gen(struct eng__cache *c, uint64_t hash);
/* The index of the write count key's hash falls under: a batch of several writes
 * counts its own earlier writes under the same one (engine.c cache_batch). */
size_t eng__cache_gen_slot(const struct eng__cache *c, uint64_t hash);
/* After a read: caches key = val (copied) unless a write came in since gen. */
void eng__cache_fill(struct eng__cache *c, uint64_t hash, const char *key, size_t klen,
                     unsigned gen, const char *val, size_t n);
/* After a write (applied or failed): key = val (copied) if no other write came in
 * since gen, else (or with val NULL: a delete, a large value) the key is dropped. */
void eng__cache_set(struct eng__cache *c, uint64_t hash, const char *key, size_t klen,
                    unsigned gen, const char *val, size_t n);
/* Drops every entry (FLUSHALL, dropped slots): every group's count moves on. */
void eng__cache_clear(struct eng__cache *c);
/* Bytes held (entries and their headers; not the bucket table). 0 for NULL. */
size_t eng__cache_bytes(struct eng__cache *c);

/* The 64-bit hash of a user key (FNV-1a): lock stripes and the cache use it. */
uint64_t eng__key_hash(const char *key, size_t klen);

#endif
