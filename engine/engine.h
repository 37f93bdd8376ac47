/* engine.h - eddy's storage engine: hash slots on one RocksDB per server.
 *
 * The physical key of a user key is its 2-byte big-endian slot (CRC16 of the key or
 * its {hash tag}, mod 16384) followed by the key, so each slot is one contiguous
 * range. Column families: "default" holds the data, "expire" an index of keys with a
 * TTL (8-byte big-endian expiry in ms + physical key), "meta" metadata (functions,
 * node identity). The engine is thread-safe: any thread may read and write. Writers
 * that read-modify-write take the key's lock stripe (eng_lock_*), so commands on
 * one key are linearizable across I/O threads. Depends on common/ and RocksDB.
 */
#ifndef EDDY_ENGINE_H
#define EDDY_ENGINE_H

#include "../common/common.h"

struct eng;

enum eng_fsync { ENG_FSYNC_NO, ENG_FSYNC_EVERYSEC, ENG_FSYNC_ALWAYS };

/* Value types stored in the first byte of every value. */
enum eng_type { ENG_T_STRING = 1 };

struct eng_options {
    const char *dir;            /* data directory (created if missing); borrowed */
    enum eng_fsync fsync;       /* appendfsync mode */
    size_t block_cache_bytes;   /* RocksDB block cache; default 256 MB */
    size_t memtable_bytes;      /* total memtable budget; default 64 MB */
    size_t value_cache_bytes;   /* the value cache (docs/STORAGE.md); default 64 MB, 0 = off */
};

/* Fills o with the defaults (dir "./data", everysec). */
void eng_options_init(struct eng_options *o);

/* Opens (creating if needed) the store. Returns NULL with err set on failure. The
 * options are copied. */
struct eng *eng_open(const struct eng_options *o, struct cm_err *err);
/* Syncs the WAL and closes. NULL is a no-op. */
void eng_close(struct eng *e);

/* Writes append to an in-memory WAL buffer (RocksDB's manual_wal_flush); nothing is
 * acknowledged before it is persisted by one of these. Concurrent callers share one
 * flush or fsync (group commit). Each returns 0 or CM_EIO.
 * eng_persist: every write the calling thread may have seen (its own, and other
 *   threads' applied so far, even those still in flight) reaches the OS (and the disk
 *   under "always"): call it before any reply leaves, to reads too, so no client is
 *   sent a value a crash could then lose (unless the WAL has failed: then it returns
 *   CM_EIO, and a caller that serves reads anyway accepts that). A few atomic loads
 *   when nothing is pending. Relies on RocksDB's default write path (no
 *   unordered_write, two_write_queues or pipelined writes): a write's WAL record is
 *   buffered before readers can see it.
 * eng_sync: the calling thread's writes reach the disk.
 * eng_sync_all / eng_flush_all_wal: every write so far, to the disk / the OS (the
 *   everysec timer, the cron, shutdown). */
int eng_persist(struct eng *e, struct cm_err *err);
int eng_sync(struct eng *e, struct cm_err *err);
int eng_sync_all(struct eng *e, struct cm_err *err);
int eng_flush_all_wal(struct eng *e, struct cm_err *err);
/* Writes not yet flushed to the OS. */
bool eng_unflushed(const struct eng *e);
void eng_set_fsync(struct eng *e, enum eng_fsync mode);
enum eng_fsync eng_get_fsync(const struct eng *e);
/* Writes made since the last eng_sync (for the everysec timer). */
bool eng_dirty(const struct eng *e);
/* True while the last write or WAL flush failed (until a write succeeds again), with
 * its error in why (n bytes): for the cron's log line. */
bool eng_failing(struct eng *e, char *why, size_t n);

/* ---- Values ---------------------------------------------------------------------- */

/* A value read from the store. data points into memory pinned by RocksDB (or a copy)
 * until eng_item_release, which must run on the thread that read it; expire_ms is 0
 * when the key has no TTL. */
struct eng_item {
    enum eng_type type;
    int64_t expire_ms;
    const char *data;
    size_t len;
    void *pin;   /* private: RocksDB pinned slice, or */
    char *owned; /* private: RocksDB-allocated copy, or */
    char *copy;  /* private: a copy from the value cache */
};

/* Reads key. Returns 0 and fills it, CM_ENOTFOUND when the key does not exist or has
 * expired at now_ms, or CM_EIO. For an expired key it->expire_ms is set (non-zero)
 * so the caller may purge it with eng_purge_expired; the active expire cycle deletes
 * it anyway. On 0 the caller must call eng_item_release. */
int eng_get(struct eng *e, const char *key, size_t klen, int64_t now_ms, struct eng_item *it,
            struct cm_err *err);
void eng_item_release(struct eng_item *it);
/* A consistent view for multi-key reads (MGET). NULL when out of memory. */
struct eng_snap;
struct eng_snap *eng_snap_new(struct eng *e);
void eng_snap_free(struct eng *e, struct eng_snap *s); /* NULL is a no-op */
/* eng_get through a snapshot (s NULL: the current state). */
int eng_get_at(struct eng *e, const struct eng_snap *s, const char *key, size_t klen,
               int64_t now_ms, struct eng_item *it, struct cm_err *err);
/* Deletes key if it has expired at now_ms; takes the key's lock (the caller must not
 * hold it). Returns 1 if it deleted the key, 0 if not, or CM_EIO. */
int eng_purge_expired(struct eng *e, const char *key, size_t klen, int64_t now_ms,
                      struct cm_err *err);
/* Returns 1 if the key exists (and has not expired), 0 if not, or CM_EIO. */
int eng_exists(struct eng *e, const char *key, size_t klen, int64_t now_ms, struct cm_err *err);

/* ---- Writes ---------------------------------------------------------------------------
 * A batch collects puts and deletes and applies them atomically with eng_write. */
struct eng_batch;

/* A batch for engine e; NULL when out of memory. */
struct eng_batch *eng_batch_new(struct eng *e);
void eng_batch_free(struct eng_batch *b); /* NULL is a no-op */
void eng_batch_clear(struct eng_batch *b);
/* Queues key = value with type and expiry (0 = none). Returns 0 or CM_ENOMEM. */
int eng_batch_put(struct eng_batch *b, const char *key, size_t klen, enum eng_type type,
                  int64_t expire_ms, const void *val, size_t vlen);
void eng_batch_del(struct eng_batch *b, const char *key, size_t klen);
size_t eng_batch_count(const struct eng_batch *b);
/* Marks a point to roll back to (one level), and rolls back to it. */
void eng_batch_savepoint(struct eng_batch *b);
void eng_batch_rollback(struct eng_batch *b);
/* True if the batch writes a key of this lock stripe. */
bool eng_batch_touches(const struct eng_batch *b, unsigned stripe);
/* Applies the batch atomically (WAL first) and marks its keys written, so that
 * transactions (eng_txn) that read them conflict. Returns 0 or CM_EIO (disk full, I/O
 * error: err names it). Under "always" the caller must eng_sync before replying.
 * Callers that read-modify-write hold the keys' lock stripes (see below). */
int eng_write(struct eng *e, struct eng_batch *b, struct cm_err *err);
/* eng_write for a caller that holds no key stripes (a slot import): takes the lock
 * stripes of the batch's keys, in order, around the write. */
int eng_write_locked(struct eng *e, struct eng_batch *b, struct cm_err *err);

/* ---- Key locks ---------------------------------------------------------------------------
 * Striped mutexes by key hash. Take them around read-modify-write sequences. A lock
 * set takes several stripes in a global order (no deadlock). Stripes are numbered
 * 0 .. ENG_STRIPES-1. */
#define ENG_STRIPES 4096
/* Values at least this long are stored in RocksDB blob files, not in table blocks. */
#define ENG_BLOB_MIN (256u * 1024)
void eng_lock_key(struct eng *e, const char *key, size_t klen);
void eng_unlock_key(struct eng *e, const char *key, size_t klen);

struct eng_lockset {
    unsigned n;
    unsigned cap;
    unsigned *stripes;
    unsigned small[8];
};
void eng_lockset_init(struct eng_lockset *ls);
/* Adds a key's stripe; returns 0 or CM_ENOMEM. */
int eng_lockset_add(struct eng *e, struct eng_lockset *ls, const char *key, size_t klen);
int eng_lockset_add_stripe(struct eng_lockset *ls, unsigned stripe);
/* The lock stripe of a key, and single-stripe locking (trylock returns true when it
 * took the lock). */
unsigned eng_key_stripe(const char *key, size_t klen);
bool eng_stripe_trylock(struct eng *e, unsigned stripe);
void eng_stripe_lock(struct eng *e, unsigned stripe);
void eng_stripe_unlock(struct eng *e, unsigned stripe);
/* Sorts and removes duplicates (eng_lockset_lock does it too). */
void eng_lockset_normalize(struct eng_lockset *ls);
void eng_lockset_lock(struct eng *e, struct eng_lockset *ls);
void eng_lockset_unlock(struct eng *e, struct eng_lockset *ls);
void eng_lockset_deinit(struct eng_lockset *ls);

/* Records a write to the stripes of ls for transaction validation (the caller holds
 * them); eng_write does this for its batch. */
void eng_lockset_mark_written(struct eng *e, struct eng_lockset *ls);

/* ---- Transactions ---------------------------------------------------------------------------
 * Optimistic and serializable: reads come from the transaction's own writes, the value
 * cache (the current state) or a snapshot taken at the first read that needs one;
 * writes are buffered. At commit the lock stripes of every key read or written are
 * locked in order, and if any key read was written by someone else since the
 * transaction began (tracked per stripe, so a false conflict is possible, a missed
 * one is not), the commit fails with CM_ECONFLICT and nothing is applied;
 * the caller retries from the start. Used by function calls (udf/). Not thread-safe:
 * one transaction belongs to one thread at a time. */
struct eng_txn;

struct eng_txn *eng_txn_begin(struct eng *e);
/* Like eng_get, through the transaction: its own writes, else the value cache's
 * current value of the key, else its snapshot (taken by the transaction's first read
 * that needs it: that read, or an iterator). A current value newer than the
 * snapshot makes the commit (and eng_txn_check) fail with CM_ECONFLICT, so what
 * commits read one consistent state; an attempt that fails can have read a mix, and
 * eng_txn_check tells. Records the key as read. */
int eng_txn_get(struct eng_txn *t, const char *key, size_t klen, int64_t now_ms,
                struct eng_item *it, struct cm_err *err);
int eng_txn_put(struct eng_txn *t, const char *key, size_t klen, enum eng_type type,
                int64_t expire_ms, const void *val, size_t vlen);
int eng_txn_del(struct eng_txn *t, const char *key, size_t klen);
/* Records a key as read without reading it (e.g. EXISTS-like checks done elsewhere). */
int eng_txn_note_read(struct eng_txn *t, const char *key, size_t klen);
size_t eng_txn_write_count(const struct eng_txn *t);
/* Bytes of the writes staged by t (its batch). */
size_t eng_txn_write_bytes(const struct eng_txn *t);
/* Validates and applies. Returns 0, CM_ECONFLICT (nothing applied), CM_EIO or
 * CM_ENOMEM. The transaction cannot be used afterwards except to free it. */
int eng_txn_commit(struct eng_txn *t, struct cm_err *err);
/* Commits what the transaction wrote so far (as eng_txn_commit) and goes on with an
 * empty write set, empty read set and a fresh snapshot; iterators opened before keep
 * reading their old snapshot, which stays alive until eng_txn_free. For bulk jobs
 * (a map call writing millions of keys) that must not buffer everything. */
int eng_txn_checkpoint(struct eng_txn *t, struct cm_err *err);
/* Frees (aborting if not committed). NULL is a no-op. */
void eng_txn_free(struct eng_txn *t);

/* Pipelined writes of the thread that runs t and are not applied yet (b, the
 * thread's batch): t's snapshot misses them. So a read of a key whose stripe b
 * touched, or any iteration while b holds writes, first calls apply(ud), which must
 * write b (eng_write) and release its stripes, if t has read nothing yet: t then
 * begins anew from there. Otherwise the read fails with CM_ECONFLICT and marks t
 * (eng_txn_pending_hit): the caller applies b and runs the transaction again. b NULL
 * (the default) for none; apply may be NULL. */
void eng_txn_set_pending(struct eng_txn *t, const struct eng_batch *b, void (*apply)(void *),
                         void *ud);
bool eng_txn_pending_hit(const struct eng_txn *t);
/* For reads that go around t (the whole keyspace, the current state): true, marking
 * t, if its thread's batch holds any pending write. */
bool eng_txn_pending_any(struct eng_txn *t);
/* The stripes of every key t read or wrote, added to ls (see eng_lockset_normalize). */
int eng_txn_stripes(const struct eng_txn *t, struct eng_lockset *ls);
/* Whether committing t must validate its reads (it wrote, or read the current state
 * through the value cache): then it takes the stripes of its reads. */
bool eng_txn_must_validate(const struct eng_txn *t);
/* CM_ECONFLICT (err set) if a key t read was written since t began, else 0. The caller
 * holds the stripes of t's reads. */
int eng_txn_validate(struct eng_txn *t, struct cm_err *err);
/* Whether t read the current state through the value cache (see eng_txn_get). */
bool eng_txn_cache_reads(const struct eng_txn *t);
/* eng_txn_validate, taking and releasing the stripes of t's reads itself. */
int eng_txn_check(struct eng_txn *t, struct cm_err *err);
/* Whether the caller holds every stripe of eng_txn_stripes(t) (eng_stripe_lock): then
 * eng_txn_commit, eng_txn_checkpoint and eng_txn_check take none themselves. */
void eng_txn_set_held(struct eng_txn *t, bool held);
/* Whether eng_txn_commit_into can take t: its writes were recorded (not too large). */
bool eng_txn_joinable(const struct eng_txn *t);
/* Validates t and, instead of writing it, appends its writes to b, so they reach
 * RocksDB with b's other writes in one write (eng_write). The caller holds the
 * stripes of eng_txn_stripes and keeps them until b is written. Returns 0,
 * CM_ECONFLICT (nothing added) or CM_ENOMEM (nothing added). */
int eng_txn_commit_into(struct eng_txn *t, struct eng_batch *b, struct cm_err *err);

/* ---- Iteration ---------------------------------------------------------------------------- */

/* An iterator over live keys of slots [slot_lo, slot_hi] in (slot, key) order,
 * starting after the physical position `after` (NULL = from the start). With t, it
 * reads t's snapshot, and with ENG_ITER_OWN_WRITES also t's own writes (then t must
 * not be written while the iterator lives); without t, the current state. t must
 * outlive the iterator. The blocks it reads enter the block cache only with
 * ENG_ITER_FILL_CACHE (for scans that will be repeated, such as a map's: a one-off
 * SCAN should not evict the hot point-read blocks). */
enum { ENG_ITER_OWN_WRITES = 1, ENG_ITER_FILL_CACHE = 2 };
struct eng_iter;
struct eng_iter *eng_iter_new(struct eng *e, struct eng_txn *t, int flags, unsigned slot_lo,
                              unsigned slot_hi, const char *after, size_t after_len);
/* Returns only keys that start with prefix (copied; len 0 = every key): in each slot
 * the iterator seeks to the prefix and leaves the slot past it, so keys without it
 * cost nothing. Call before the first eng_iter_next. Returns 0 or CM_ENOMEM. */
int eng_iter_set_prefix(struct eng_iter *it, const char *prefix, size_t len);
/* Repositions so that the next key returned is the first at or after pos. */
void eng_iter_seek(struct eng_iter *it, const char *pos, size_t len);
/* Moves to the next live key. Returns 1 with key/item set (valid until the next call
 * or free), 0 at the end, CM_EIO on error. */
int eng_iter_next(struct eng_iter *it, int64_t now_ms, const char **key, size_t *klen,
                  struct eng_item *item, struct cm_err *err);
/* The physical position of the last key returned (slot + key), valid until next. */
const char *eng_iter_pos(struct eng_iter *it, size_t *len);
void eng_iter_free(struct eng_iter *it); /* NULL is a no-op */


/* Called for each live key; key and value are valid during the call only. Return 0
 * to go on, non-zero to stop (the value is returned by the scan function). */
typedef int (*eng_key_fn)(void *ud, const char *key, size_t klen, const struct eng_item *it);

/* Visits live keys of slots [slot_lo, slot_hi] in (slot, key) order, starting after
 * the physical position `after` (slot + key bytes, NULL = from the start of slot_lo),
 * for at most max_visit stored keys (0 = no limit), expired ones included in the
 * count but not passed to fn. On return *next_pos (owned, cm_free) is the physical
 * key to resume after, or NULL when the range is exhausted. Returns 0, fn's
 * non-zero value, or CM_EIO. */
int eng_scan(struct eng *e, struct eng_txn *t, unsigned slot_lo, unsigned slot_hi, const char *after,
             size_t after_len, size_t max_visit, int64_t now_ms, eng_key_fn fn, void *ud,
             char **next_pos, size_t *next_len, struct cm_err *err);
/* eng_scan over the keys that start with prefix only (eng_iter_set_prefix); max_visit
 * counts those keys. */
int eng_scan_prefix(struct eng *e, struct eng_txn *t, unsigned slot_lo, unsigned slot_hi,
                    const char *prefix, size_t plen, const char *after, size_t after_len,
                    size_t max_visit, int64_t now_ms, eng_key_fn fn, void *ud, char **next_pos,
                    size_t *next_len, struct cm_err *err);

/* Counts live keys (O(n)), through t when not NULL. */
long long eng_count_keys(struct eng *e, struct eng_txn *t, unsigned slot_lo, unsigned slot_hi,
                         int64_t now_ms);

/* Deletes every key (data and expiry index). Returns 0 or CM_EIO. */
int eng_flush_all(struct eng *e, struct cm_err *err);

/* A random live key, copied into out (cleared first). Returns 0, CM_ENOTFOUND when
 * the store is empty, or CM_EIO. */
int eng_random_key(struct eng *e, int64_t now_ms, struct cm_buf *out, struct cm_err *err);

/* Deletes up to max keys whose TTL passed before now_ms, using the expiry index.
 * Returns how many keys it deleted (>= 0) or CM_EIO. */
long eng_expire_cycle(struct eng *e, int64_t now_ms, long max, struct cm_err *err);

/* ---- Slot watch (online slot migration) ---------------------------------------------------
 * While a watch is on, every write through eng_write or a transaction commit that
 * touches a key of a watched slot records that key (the expire cycle's deletions are
 * not recorded: the copy elsewhere carries the same expiry). A fenced watch refuses
 * such writes with CM_EAGAIN (err->msg starts with "TRYAGAIN"), applying nothing of
 * them. A change of the watch waits for the writes in progress, so each write is
 * wholly before or wholly after it. One watch at a time. */
/* Starts watching the slots whose bit is set in slots (bit s%8 of byte s/8). Returns 0
 * or CM_EINVAL when a watch is already on. */
int eng_watch_start(struct eng *e, const uint8_t slots[CM_SLOTS / 8]);
/* Fences (on) or unfences the watched slots. */
void eng_watch_fence(struct eng *e, bool on);
/* Moves the keys recorded so far into keys (cleared first; 4-byte native-endian length
 * + key bytes per write, duplicates possible) and their count into *nkeys. Returns 0,
 * or CM_ELIMIT when a record was lost (out of memory, or eng_flush_all ran): the
 * watcher cannot know what changed. */
int eng_watch_take(struct eng *e, struct cm_buf *keys, size_t *nkeys);
/* Ends the watch (and its fence). */
void eng_watch_stop(struct eng *e);
/* Refuses (on) or accepts again (off) writes to the slots whose bit is set: a node that
 * gave slots away refuses the late writes of commands and function calls that began
 * before the move and commit after it (CM_EAGAIN, err->msg "TRYAGAIN ...", nothing
 * applied). Cleared for the slots of an import; not kept across restarts. */
void eng_slots_refuse(struct eng *e, const uint8_t slots[CM_SLOTS / 8], bool on);
/* Deletes every key of slots [slot_lo, slot_hi] with one range deletion, and syncs.
 * Running transactions conflict. Returns 0 or CM_EIO. */
int eng_drop_slots(struct eng *e, unsigned slot_lo, unsigned slot_hi, struct cm_err *err);

/* ---- Metadata column family ------------------------------------------------------------------ */
/* Reads a metadata value into out (cleared first). 0, CM_ENOTFOUND or CM_EIO. */
int eng_meta_get(struct eng *e, const char *key, size_t klen, struct cm_buf *out,
                 struct cm_err *err);
/* Writes or deletes a metadata key and syncs the WAL. 0; CM_EIO (nothing applied); or
 * CM_ESYNC: applied (readers see it, a clean shutdown keeps it) but the sync failed. */
int eng_meta_put(struct eng *e, const char *key, size_t klen, const void *val, size_t vlen,
                 struct cm_err *err);
int eng_meta_del(struct eng *e, const char *key, size_t klen, struct cm_err *err);
/* Calls fn for each metadata key starting with prefix, in key order; fn returns
 * non-zero to stop (returned). Returns 0, fn's value or CM_EIO. */
typedef int (*eng_meta_fn)(void *ud, const char *key, size_t klen, const char *val, size_t vlen);
int eng_meta_scan(struct eng *e, const char *prefix, size_t plen, eng_meta_fn fn, void *ud,
                  struct cm_err *err);

/* Flushes the memtables and compacts every column family into the last level, where
 * blocks are zstd-compressed (tests, maintenance). Blocks the caller until done.
 * Returns 0 or CM_EIO. */
int eng_compact(struct eng *e, struct cm_err *err);

/* ---- Fault injection (tests; the DEBUG FAULT command) -----------------------------------
 * Makes the next n operations of one kind fail as if RocksDB had returned an IOError
 * status ("IO error: injected fault"). The fault is injected before the RocksDB call,
 * so nothing of a failed write is applied; RocksDB itself stays healthy, so the next
 * operation after the fault clears works (a real I/O error may leave RocksDB
 * read-only until restart: tests/integration/hardening_diskfull.sh covers that).
 *   ENG_FAULT_WRITE: eng_write, transaction commits, eng_flush_all, eng_drop_slots,
 *                    the expire cycle, metadata writes;
 *   ENG_FAULT_SYNC:  WAL flushes and fsyncs (eng_persist, eng_sync*, eng_flush_all_wal);
 *   ENG_FAULT_READ:  point reads (eng_get*, eng_txn_get, eng_meta_get).
 * The engine treats an injected failure as a real one (after a failed write or WAL
 * flush, no flush until a write succeeds again).
 * n > 0: the next n fail; n < 0: every one until cleared; 0 clears. Off unless set;
 * the check costs one relaxed atomic load. Thread-safe. */
enum eng_fault { ENG_FAULT_WRITE, ENG_FAULT_SYNC, ENG_FAULT_READ, ENG_FAULT_KINDS };
void eng_fault_set(struct eng *e, enum eng_fault kind, long n);
/* Failures still to inject (-1: until cleared). */
long eng_fault_pending(struct eng *e, enum eng_fault kind);
/* Operations failed by injection since open, all kinds. */
unsigned long long eng_fault_count(struct eng *e);
/* The next write to RocksDB waits ms milliseconds after it is applied, visible to
 * readers, before it counts as written (DEBUG HOLD-WRITE: tests of what readers are
 * sent while a write is in flight). Any write takes it, a failed one, the cron's
 * expiry or a metadata write too, holding whatever locks it holds. 0 clears. */
void eng_debug_hold_write(struct eng *e, int ms);

/* ---- Statistics ---------------------------------------------------------------------------------- */
struct eng_stats {
    unsigned long long estimated_keys;
    unsigned long long sst_bytes;
    unsigned long long memtable_bytes;
    unsigned long long block_cache_bytes;
    unsigned long long value_cache_bytes; /* the value cache's entries (in used_memory too) */
    unsigned long long expired_keys; /* deleted because their TTL passed */
    unsigned long long writes;       /* eng_write calls */
    unsigned long long syncs;        /* WAL syncs */
    unsigned long long flushes;      /* eng_flush_all calls */
    unsigned long long bg_errors;    /* RocksDB's failed flushes and compactions */
    int writes_refused;              /* 1: a failed WAL append stops writes until restart */
    unsigned long long space_refused; /* writes refused by eng_space_refuses */
};
void eng_get_stats(struct eng *e, struct eng_stats *st);
/* RocksDB's count of failed background flushes and compactions (its info log keeps
 * no messages after open: the server's cron logs when this grows). */
unsigned long long eng_background_errors(struct eng *e);

/* Free space of the store's file system against the server's min-free-disk. The engine
 * keeps what the server's cron measured (eng_set_space) for every writer that adds
 * data: commands, function calls (redis.call, eddy.set), slot imports. eng_space_low:
 * below the threshold as measured (free and min may be NULL). eng_space_refuses: true
 * when a write of need bytes would go below it, less what it let through since the
 * last measure (a fast writer cannot pass it by a tick's writes, a pipeline by its
 * batch, nor one large MSET by its size); then it counts a refusal and writes the reply
 * text (without "ERR ") into msg; else it counts need as let through. What a writer
 * holds is carried over measures until eng_space_release: t, if not NULL, is the
 * writer's transaction (held until it is committed or freed); else held, if not NULL,
 * is the writer's own count (a worker's batch: its writes are applied, and the WAL
 * flushed, at the end of the loop iteration). eng_space_margin: the bytes left above
 * the threshold by that count, LLONG_MAX when off or not measured. */
void eng_set_space(struct eng *e, long long free_bytes, long long min_bytes);
bool eng_space_low(struct eng *e, long long *free_bytes, long long *min_bytes);
bool eng_space_refuses(struct eng *e, struct eng_txn *t, long long *held, size_t need,
                       char *msg, size_t cap);
void eng_space_release(struct eng *e, long long *held);
long long eng_space_margin(struct eng *e);

/* ---- Key encoding (exposed for tests) -------------------------------------------------------------- */
/* Writes slot(2) + key into out (cleared first). Returns 0 or CM_ENOMEM. */
int eng_encode_key(struct cm_buf *out, const char *key, size_t klen);
/* Encodes a stored value: type, flags, optional expiry, payload. */
int eng_encode_value(struct cm_buf *out, enum eng_type type, int64_t expire_ms, const void *val,
                     size_t vlen);
/* Decodes a stored value; returns 0 or CM_EINVAL for a corrupt one. */
int eng_decode_value(const char *p, size_t n, struct eng_item *it);

#endif
