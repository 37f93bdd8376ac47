/* engine.c - slots on RocksDB: open/close, reads, batched writes with group-committed
 * WAL syncs, key lock stripes, scans, expiry, metadata. See engine.h. */
#include "engine_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#define STRIPES ENG_STRIPES
#define CF_DATA 0
#define CF_EXPIRE 1
#define CF_META 2
#define NCF 3

#define VAL_F_EXPIRE 0x01
#define TXN_SPARES 16              /* freed transactions kept for reuse */
#define TXN_SPARE_MAX_BYTES 65536  /* ... if their write batch stayed this small */
#define TXN_LOG_MAX 65536          /* eng_txn_commit_into takes transactions this small */
/* Values up to this size go into a write batch as one copied piece (RocksDB's
 * put_cf); larger ones as pieces (putv_cf, no copy of ours), whose C wrapper builds
 * two std::vectors per call: about 500 instructions more per small put. */
#define PUT_COPY_MAX 4096
/* A batch whose buffer grew past this is replaced when cleared. */
#define BATCH_KEEP_BYTES (4u << 20)

struct eng {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_options_t *cf_opts[NCF];
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_filterpolicy_t *bloom; /* owned by the table options once set */
    rocksdb_column_family_handle_t *cf[NCF];
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    atomic_int fsync;

    /* Group commit: writes take increasing sequence numbers after they reach the
     * WAL; a sync covers every write numbered up to what it read before fsync. */
    atomic_ullong written_seq;
    /* Writes in flight: from before their RocksDB write (which makes them visible to
     * readers) until their number is in written_seq (write_enter, write_leave). */
    atomic_uint writing;
    atomic_int hold_write_ms; /* DEBUG HOLD-WRITE: the next write waits this long */
    atomic_bool wal_failed;  /* a write or WAL flush failed: no flush until a write succeeds */
    atomic_bool wal_poisoned; /* writes refused until restart (write_result) */
    atomic_ullong flushed_seq; /* in the OS */
    atomic_ullong synced_seq;  /* on disk */
    pthread_mutex_t sync_lock;
    pthread_mutex_t err_lock;  /* guards wal_error only: a leaf lock */
    char wal_error[200];       /* the last failure's error */

    atomic_ullong n_expired, n_writes, n_syncs, n_flushes;
    /* Free space of the store's file system (less the memtables') and the server's
     * threshold (eng_set_space); space_free -1: not measured. space_written: what the
     * writes let through since count (eng_space_refuses); space_pending: the part their
     * writers still hold (a function call's until it ends, a worker batch's until its
     * WAL flush), carried over to the next measure. */
    _Atomic long long space_free, space_min, space_written, space_pending;
    atomic_ullong n_space_refused;
    pthread_mutex_t stripes[STRIPES];
    /* Optimistic transactions: commit_seq counts commits; stripe_seq[s] is the
     * commit_seq of the last write to stripe s (read and written under its mutex). */
    atomic_ullong commit_seq;
    unsigned long long stripe_seq[STRIPES];

    /* Slot watch (online migration, see engine.h). Every write holds watch_lock for
     * reading around its check, its RocksDB write and the recording of its keys;
     * the watch_* fields change only under it for writing, so a write is either
     * wholly before a change or wholly after it. */
    pthread_rwlock_t watch_lock;
    bool watch_on, watch_fenced, watch_lost;
    uint8_t watch_slots[CM_SLOTS / 8];
    bool refuse_on;                     /* some slot is in refuse_slots */
    uint8_t refuse_slots[CM_SLOTS / 8]; /* slots given away: writes to them fail */
    pthread_mutex_t watch_mu;  /* guards watch_keys (writers record concurrently) */
    struct cm_buf watch_keys;  /* 4-byte length + user key, per recorded write */
    size_t watch_nkeys;
    /* Freed transactions, kept with their write batch, read options and buffers
     * for the next eng_txn_begin (a call's transaction costs less to reuse than to
     * build); guarded by spare_lock. */
    pthread_mutex_t spare_lock;
    struct eng_txn *spares[TXN_SPARES];
    int nspares;
    atomic_long faults[ENG_FAULT_KINDS]; /* injected failures to come (eng_fault_set) */
    atomic_ullong n_faults;
    struct eng__cache *vcache; /* NULL: no value cache (cache.c) */
    /* Slots that may hold keys (of the data column family): a superset of the
     * non-empty slots, so that a scan of every slot seeks only those (an iterator
     * stays inside one slot's prefix, and 16384 seeks on an empty store were most of
     * a KEYS, DBSIZE or RANDOMKEY). A write sets its keys' bits before RocksDB has
     * it (eng_batch_put, eng_txn_put) and again in eng_write / eng_txn_commit if a
     * clear came in between; only FLUSHALL and a dropped range clear bits, with
     * watch_lock held for writing, so no write is half done meanwhile. eng_open sets
     * them with one pass. slot_gen counts the clears, odd while one is under way: an
     * iterator trusts a zero bit only if no clear began since it took its snapshot. */
    _Atomic uint64_t slot_bits[CM_SLOTS / 64];
    atomic_ulong slot_gen;
};

struct eng_txn {
    struct eng *e;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    rocksdb_writebatch_wi_t *wb;
    unsigned long long start_seq;
    struct eng_lockset reads, writes;
    struct cm_buf key, val;
    struct cm_buf ukeys; /* the user keys written (4-byte length + key), for the watch */
    unsigned long slot_gen; /* e->slot_gen before the snapshot was taken */
    /* Snapshots of earlier checkpoints, kept for the iterators that read them. */
    const rocksdb_snapshot_t **old_snaps;
    rocksdb_readoptions_t **old_ros;
    int nold;
    /* The writes again, in order, for eng_txn_commit_into: records of op (1 byte),
     * type (1), expiry (8), key length (4), value length (4), key, value. Not kept
     * (log_off) once they pass TXN_LOG_MAX bytes: such a transaction writes itself. */
    struct cm_buf log;
    bool log_off;
    const struct eng_batch *pending; /* see eng_txn_set_pending */
    void (*apply)(void *);
    void *apply_ud;
    bool pending_hit;
    bool cache_reads; /* read the value cache: validate even if it wrote nothing */
    bool held;        /* the caller holds its stripes (eng_txn_set_held) */
    long long space;  /* bytes it got through eng_space_refuses, not yet written */
};

struct eng_iter {
    struct eng *e;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    char lo[2], hi[2];
    unsigned slot_hi;
    bool started, reseeked;
    unsigned slot;      /* the slot being iterated (iterators stay in one slot) */
    char *after;
    size_t after_len;
    const char *pos;
    size_t pos_len;
    char *seek;         /* NULL, or 2 slot bytes + the prefix of eng_iter_set_prefix */
    size_t seek_len;
    bool skip_empty;        /* slot_gen was even before the snapshot: may use slot_bits */
    unsigned long slot_gen; /* ... as long as it still has this value */
};

struct eng_batch {
    struct eng *e;
    rocksdb_writebatch_t *wb;
    struct cm_buf key;
    struct cm_buf val;          /* header + value of a small put (PUT_COPY_MAX) */
    struct eng_lockset stripes; /* of the keys written, marked by eng_write; no repeats */
    unsigned saved_stripes;     /* stripes.n at the savepoint */
    struct cm_buf ukeys;        /* the user keys written (4-byte length + key) */
    size_t saved_ukeys;         /* ukeys.len at the savepoint */
    struct cm_buf cvals;        /* for the value cache: a struct crec per write */
    size_t saved_cvals;         /* cvals.len at the savepoint */
    uint64_t touched[STRIPES / 64]; /* the same stripes as a bit set */
    unsigned long slot_gen;         /* e->slot_gen before the first key was staged */
};

/* A batch's write as the value cache sees it: the header, then the user key, then
 * the encoded value (vlen bytes; none when vlen is CREC_DROP: a delete, a large
 * value). gen is taken just before the batch is written (eng__cache_gen). */
struct crec {
    uint64_t hash;
    uint32_t klen, vlen;
    unsigned gen;
};
#define CREC_DROP UINT32_MAX

static _Thread_local unsigned long long tls_last_seq;
/* The copy of a value-cache hit, reused by the thread's next hit once its item is
 * released (busy until then; a second hit meanwhile gets a buffer of its own): a hit
 * then costs no malloc and free. */
static _Thread_local struct cm_buf tls_hit;
static _Thread_local bool tls_hit_busy;

static unsigned stripe_of(const char *key, size_t klen);
static unsigned stripe_of_hash(uint64_t h);
static void mark_stripe(struct eng *e, unsigned s);
static void txn_destroy(struct eng_txn *t);
static void slot_scan_all(struct eng *e);

static const char *cf_names[NCF] = {"default", "expire", "meta"};

/* ---- Encoding ---------------------------------------------------------------------- */

static void put_be64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

static uint64_t get_be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

int eng_encode_key(struct cm_buf *out, const char *key, size_t klen)
{
    unsigned slot = cm_key_slot(key, klen);
    char s[2] = {(char)(slot >> 8), (char)(slot & 0xff)};
    out->len = 0;
    if (cm_buf_reserve(out, klen + 2) != 0)
        return CM_ENOMEM;
    cm_buf_append(out, s, 2);
    cm_buf_append(out, key, klen);
    return 0;
}

/* The header of a stored value (type, flags, optional expiry) into h[10]; returns its
 * length. */
static size_t encode_header(char *h, enum eng_type type, int64_t expire_ms)
{
    h[0] = (char)type;
    h[1] = expire_ms > 0 ? VAL_F_EXPIRE : 0;
    if (expire_ms <= 0)
        return 2;
    put_be64(h + 2, (uint64_t)expire_ms);
    return 10;
}

int eng_encode_value(struct cm_buf *out, enum eng_type type, int64_t expire_ms, const void *val,
                     size_t vlen)
{
    char h[10];
    size_t hn = encode_header(h, type, expire_ms);
    out->len = 0;
    if (cm_buf_reserve(out, hn + vlen) != 0)
        return CM_ENOMEM;
    cm_buf_append(out, h, hn);
    cm_buf_append(out, val, vlen);
    return 0;
}

int eng_decode_value(const char *p, size_t n, struct eng_item *it)
{
    if (n < 2 || (uint8_t)p[0] != ENG_T_STRING || ((uint8_t)p[1] & ~VAL_F_EXPIRE) != 0)
        return CM_EINVAL;
    it->type = (enum eng_type)p[0];
    it->expire_ms = 0;
    size_t hn = 2;
    if (p[1] & VAL_F_EXPIRE) {
        if (n < 10)
            return CM_EINVAL;
        it->expire_ms = (int64_t)get_be64(p + 2);
        if (it->expire_ms <= 0)
            return CM_EINVAL; /* the encoder never writes these */
        hn = 10;
    }
    it->data = p + hn;
    it->len = n - hn;
    return 0;
}

/* A physical key in a stack buffer when small. */
struct pkey {
    char small[256];
    char *p;
    size_t n;
};

static int pkey_make(struct pkey *k, const char *key, size_t klen)
{
    k->p = klen + 2 <= sizeof(k->small) ? k->small : cm_malloc(klen + 2);
    if (k->p == NULL)
        return CM_ENOMEM;
    unsigned slot = cm_key_slot(key, klen);
    k->p[0] = (char)(slot >> 8);
    k->p[1] = (char)(slot & 0xff);
    memcpy(k->p + 2, key, klen);
    k->n = klen + 2;
    return 0;
}

static void pkey_free(struct pkey *k)
{
    if (k->p != k->small)
        cm_free(k->p);
}

/* The error of a write refused because the WAL is poisoned (write_result); static, so
 * rerr_free leaves it. */
static char wal_refusal[] = "IO error: an append to the write-ahead log failed earlier (see "
                            "the server log); writes are refused until eddyd restarts";

static void rerr_free(char *rerr)
{
    if (rerr != wal_refusal)
        rocksdb_free(rerr);
}

static int rocks_err(struct cm_err *err, char *rerr, const char *what)
{
    cm_err_set(err, CM_EIO, "%s: %s", what, rerr ? rerr : "unknown RocksDB error");
    rerr_free(rerr);
    return CM_EIO;
}

/* ---- Fault injection ------------------------------------------------------------------ */

void eng_fault_set(struct eng *e, enum eng_fault kind, long n)
{
    atomic_store(&e->faults[kind], n < 0 ? -1 : n);
}

long eng_fault_pending(struct eng *e, enum eng_fault kind)
{
    return atomic_load(&e->faults[kind]);
}

unsigned long long eng_fault_count(struct eng *e)
{
    return atomic_load(&e->n_faults);
}

/* True when an injected fault takes this operation: *rerr is then set as RocksDB
 * sets an error (malloc'd, freed by rocks_err). */
static bool fault_hit(struct eng *e, enum eng_fault kind, char **rerr)
{
    long n = atomic_load_explicit(&e->faults[kind], memory_order_relaxed);
    if (n == 0)
        return false;
    char *msg = strdup("IO error: injected fault");
    if (msg == NULL)
        return false; /* out of memory: the operation runs */
    while (n != 0) {
        if (n < 0 || atomic_compare_exchange_weak(&e->faults[kind], &n, n - 1)) {
            atomic_fetch_add_explicit(&e->n_faults, 1, memory_order_relaxed);
            *rerr = msg;
            return true;
        }
    }
    free(msg);
    return false;
}

/* ---- Open and close -------------------------------------------------------------------- */

void eng_options_init(struct eng_options *o)
{
    memset(o, 0, sizeof(*o));
    o->dir = "./data";
    o->fsync = ENG_FSYNC_EVERYSEC;
    o->block_cache_bytes = 256u << 20;
    o->memtable_bytes = 64u << 20;
    o->value_cache_bytes = 64u << 20;
}

static rocksdb_options_t *data_cf_options(struct eng *e, size_t memtable)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_block_based_table_factory(o, e->table);
    rocksdb_options_set_write_buffer_size(o, memtable);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    /* Hot upper levels stay uncompressed for speed; zstd from level 2 down. */
    int levels[7] = {rocksdb_no_compression, rocksdb_no_compression, rocksdb_zstd_compression,
                     rocksdb_zstd_compression, rocksdb_zstd_compression,
                     rocksdb_zstd_compression, rocksdb_zstd_compression};
    rocksdb_options_set_num_levels(o, 7);
    rocksdb_options_set_compression_per_level(o, levels, 7);
    rocksdb_options_set_bottommost_compression(o, rocksdb_zstd_compression);
    /* No memtable bloom filter (these options serve all three column families):
     * every insert paid for hashing the key into it (~540 instructions of a SET, 8%),
     * and what it saves in the data column family, a read of an absent key walking
     * its slot's bucket, is a handful of comparisons (slot_prefix_options); INCR of new
     * counters came out even (bench/RESULTS.md, seventh round). The expire column
     * family is never point-read, the meta one rarely. */
    return o;
}

/* The data column family: keys begin with their 2-byte slot, which is the prefix
 * of a hash memtable with one small sorted list per slot, so inserts and lookups
 * compare a handful of keys instead of climbing one big skiplist (the key
 * comparisons of that skiplist were half of the server's instructions under
 * redis-benchmark). Iterators therefore stay within one slot and move from slot to
 * slot by seeking (eng_iter). Inserts into this memtable are not concurrent. The
 * slots are hashed into 4 buckets per slot: with one per slot, a third of the
 * buckets stayed empty and the others held the keys of 1.6 slots on average; at 4,
 * 1.1, which made SET and GET about 7% cheaper (bench/RESULTS.md) for 512 KB of
 * bucket array per memtable. Each bucket is a linked list that RocksDB turns into a
 * skiplist past 256 entries (the hash link-list rep): the hash skiplist rep's insert
 * searched its skiplist twice in Debian's build (an assertion that the key is new),
 * about 600 instructions more per write. */
static void slot_prefix_options(rocksdb_options_t *o)
{
    rocksdb_options_set_prefix_extractor(o, rocksdb_slicetransform_create_fixed_prefix(2));
    rocksdb_options_set_hash_link_list_rep(o, 4 * CM_SLOTS);
    rocksdb_options_set_allow_concurrent_memtable_write(o, 0);
}

/* The size of one data memtable out of the --memtable-size budget: an eighth, at
 * least 4 MB and at most half. Each slot's bucket holds every version of its keys
 * written since the last flush, and a write walks its bucket twice (the insert and
 * Debian's "key is new" assertion), so the worker's cost of a write grows with the
 * memtable, while smaller memtables give the flushes and compactions more to do: with
 * the 64 MB default, 8 MB memtables instead of 32 MB ran INCR at -P 16 1.1-1.4 times
 * as fast, MSET 1.5-1.6 times in short rows, SET about even (bench/RESULTS.md, fifth
 * round). Up to 4 memtables may wait for their flush. */
static size_t data_memtable_bytes(size_t budget)
{
    size_t m = budget / 8;
    if (m < (4u << 20))
        m = 4u << 20;
    if (m > budget / 2 && budget / 2 >= (4u << 20))
        m = budget / 2;
    return m;
}

/* fsync of every WAL file (*.log) in dir. With avoid_flush_during_recovery (eng_open)
 * what a start recovers stays in the old WAL files, which RocksDB does not sync: after
 * a kill -9, writes that reached the OS but not the disk (the last second under
 * everysec, a record whose sync failed) would be served and could still vanish at a
 * power loss. RocksDB's default flush at recovery made them durable; this does it
 * without needing free space. */
static int sync_wal_files(const char *dir, struct cm_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return cm_err_set(err, CM_EIO, "cannot list %s: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(d)) != NULL;) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".log") != 0)
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            rc = cm_err_set(err, CM_EIO, "cannot sync %s/%s: %s", dir, de->d_name,
                            strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    closedir(d);
    return rc;
}

struct eng *eng_open(const struct eng_options *o, struct cm_err *err)
{
    struct eng *e = cm_calloc(1, sizeof(*e));
    char *rerr = NULL;
    if (e == NULL) {
        cm_err_set(err, CM_ENOMEM, "out of memory");
        return NULL;
    }
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST) {
        cm_err_set(err, CM_EIO, "cannot create data directory %s: %s", o->dir, strerror(errno));
        cm_free(e);
        return NULL;
    }
    atomic_store(&e->fsync, o->fsync);
    atomic_store(&e->space_free, -1);
    pthread_mutex_init(&e->sync_lock, NULL);
    pthread_mutex_init(&e->err_lock, NULL);
    pthread_mutex_init(&e->spare_lock, NULL);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&e->stripes[i], NULL);
    pthread_rwlockattr_t rwa;
    pthread_rwlockattr_init(&rwa);
    /* The migration's fence must not starve behind a steady stream of writes. */
    pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&e->watch_lock, &rwa);
    pthread_rwlockattr_destroy(&rwa);
    pthread_mutex_init(&e->watch_mu, NULL);
    cm_buf_init(&e->watch_keys);

    e->cache = rocksdb_cache_create_lru(o->block_cache_bytes ? o->block_cache_bytes : 1 << 20);
    e->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(e->table, e->cache);
    e->bloom = rocksdb_filterpolicy_create_bloom_full(10);
    rocksdb_block_based_options_set_filter_policy(e->table, e->bloom);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(e->table, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(e->table, 1);
    rocksdb_block_based_options_set_format_version(e->table, 5);

    size_t mem = o->memtable_bytes ? o->memtable_bytes : 64u << 20;
    e->opts = data_cf_options(e, data_memtable_bytes(mem));
    rocksdb_options_set_max_write_buffer_number(e->opts, 4);
    slot_prefix_options(e->opts);
    /* Values of ENG_BLOB_MIN bytes and more go to blob files, the table keeps a
     * reference. Kept in the table, a 100 MB value was one 100 MB data block: every
     * read that reached it (a bloom false positive, a neighbour key) read and
     * checksummed all of it again, since a block larger than a block-cache shard is
     * not kept; 100,000 EXISTS took 3 s of CPU after one such value had been flushed
     * (protocol_100000_arguments after value_100mb_roundtrip). Obsolete blobs go at
     * compaction (blob GC). */
    rocksdb_options_set_enable_blob_files(e->opts, 1);
    rocksdb_options_set_min_blob_size(e->opts, ENG_BLOB_MIN);
    rocksdb_options_set_enable_blob_gc(e->opts, 1);
    rocksdb_options_set_create_if_missing(e->opts, 1);
    rocksdb_options_set_create_missing_column_families(e->opts, 1);
    rocksdb_options_set_db_write_buffer_size(e->opts, mem);
    rocksdb_options_set_max_background_jobs(e->opts, 2);
    rocksdb_options_set_max_total_wal_size(e->opts, 4 * mem);
    rocksdb_options_set_keep_log_file_num(e->opts, 4);
    /* RocksDB's info log (LOG in the data directory) gets only the header written at
     * open (version, options). Its writer ignores a failed write, and Debian's build
     * asserts on the next one (WritableFileWriter::AssertFalseAndGetStatusForPrevError):
     * at WARN, a full disk aborted eddyd at the second warning RocksDB logged about it
     * (2 runs in 57 of hardening_diskfull.sh under load). At HEADER level nothing is
     * written after open; eddy logs the errors it is given (writes, WAL flushes) and
     * the count of RocksDB's background errors (eng_background_errors). */
    rocksdb_options_set_info_log_level(e->opts, 5 /* HEADER */);
    rocksdb_options_set_max_open_files(e->opts, 1000);
    rocksdb_options_set_manual_wal_flush(e->opts, 1);
    /* A start after a crash keeps what it replays from the WAL in memtables instead
     * of writing it to a table file at once (RocksDB's default), which needs free
     * space: with 2 MB free after a kill -9 that left 4 MB of WAL, eddyd could not
     * start ("cannot open the store: ... No space left on device"). Not in the C API
     * of RocksDB 7.8 but for its option strings. */
    rocksdb_get_options_from_string(e->opts, "avoid_flush_during_recovery=true", e->opts, &rerr);
    if (rerr != NULL) {
        rocks_err(err, rerr, "cannot set the store's options");
        eng_close(e);
        return NULL;
    }

    e->cf_opts[CF_DATA] = e->opts;
    e->cf_opts[CF_EXPIRE] = data_cf_options(e, 4u << 20);
    e->cf_opts[CF_META] = data_cf_options(e, 4u << 20);
    rocksdb_options_set_allow_concurrent_memtable_write(e->cf_opts[CF_EXPIRE], 0);
    rocksdb_options_set_allow_concurrent_memtable_write(e->cf_opts[CF_META], 0);
    const rocksdb_options_t *cfo[NCF] = {e->cf_opts[0], e->cf_opts[1], e->cf_opts[2]};
    e->db = rocksdb_open_column_families(e->opts, o->dir, NCF, cf_names, cfo, e->cf, &rerr);
    if (e->db == NULL) {
        rocks_err(err, rerr, "cannot open the store");
        eng_close(e);
        return NULL;
    }
    if (sync_wal_files(o->dir, err) != 0) {
        eng_close(e);
        return NULL;
    }
    e->ropts = rocksdb_readoptions_create();
    e->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(e->wopts, 0);
    e->vcache = eng__cache_new(o->value_cache_bytes);
    slot_scan_all(e);
    return e;
}

void eng_close(struct eng *e)
{
    if (e == NULL)
        return;
    for (int i = 0; i < e->nspares; i++)
        txn_destroy(e->spares[i]);
    e->nspares = 0;
    if (e->db != NULL) {
        eng_sync_all(e, NULL);
        for (int i = 0; i < NCF; i++)
            if (e->cf[i] != NULL)
                rocksdb_column_family_handle_destroy(e->cf[i]);
        rocksdb_close(e->db);
    }
    if (e->ropts)
        rocksdb_readoptions_destroy(e->ropts);
    if (e->wopts)
        rocksdb_writeoptions_destroy(e->wopts);
    for (int i = 1; i < NCF; i++)
        if (e->cf_opts[i])
            rocksdb_options_destroy(e->cf_opts[i]);
    if (e->opts)
        rocksdb_options_destroy(e->opts);
    if (e->table)
        rocksdb_block_based_options_destroy(e->table);
    if (e->cache)
        rocksdb_cache_destroy(e->cache);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&e->stripes[i]);
    pthread_mutex_destroy(&e->sync_lock);
    pthread_mutex_destroy(&e->err_lock);
    pthread_rwlock_destroy(&e->watch_lock);
    pthread_mutex_destroy(&e->watch_mu);
    cm_buf_deinit(&e->watch_keys);
    pthread_mutex_destroy(&e->spare_lock);
    eng__cache_free(e->vcache);
    cm_free(e);
}

/* Every RocksDB write is bracketed by these: a reader that has seen a write then
 * finds it either in flight or numbered (eng_persist). write_leave numbers a write
 * that succeeded (the calling thread's last, for eng_sync). */
static void write_enter(struct eng *e)
{
    atomic_fetch_add(&e->writing, 1);
}

static void write_leave(struct eng *e, bool ok)
{
    int hold = atomic_load_explicit(&e->hold_write_ms, memory_order_relaxed);
    if (hold > 0 && atomic_exchange(&e->hold_write_ms, 0) == hold) {
        struct timespec ts = {hold / 1000, (long)(hold % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (ok)
        tls_last_seq = atomic_fetch_add(&e->written_seq, 1) + 1;
    atomic_fetch_sub(&e->writing, 1);
}

void eng_debug_hold_write(struct eng *e, int ms)
{
    atomic_store(&e->hold_write_ms, ms);
}

/* Every RocksDB write (between write_enter and write_leave) is
 *     if (!write_refused(e, &rerr)) rocksdb_...(..., &rerr);
 *     write_result(e, rerr);
 *
 * A WAL file writer that saw a failed write keeps the error, and Debian's RocksDB
 * (built with assertions) aborts the process when it is used again
 * (WritableFileWriter::AssertFalseAndGetStatusForPrevError). After a failed write or
 * WAL flush, RocksDB refuses writes until it recovers, and its recovery replaces the
 * WAL file when it flushes a memtable; eddy flushes the WAL by hand only once a write
 * has succeeded again (wal_failed, persist_upto). But RocksDB 7.8 recovers without
 * replacing the WAL file when every active memtable is empty (the failed write is not
 * in one), and the next write then aborts: seen with a 3 MB SET as the first write on
 * a nearly full disk, once space came back. So when a write fails appending to the WAL
 * while every active memtable is empty, eddy refuses writes itself until it restarts
 * (reads go on; a restart opens a new WAL file). */
static bool write_refused(struct eng *e, char **rerr)
{
    if (fault_hit(e, ENG_FAULT_WRITE, rerr)) /* an injected one counts as a failure too */
        return true;
    if (!atomic_load_explicit(&e->wal_poisoned, memory_order_relaxed))
        return false;
    *rerr = wal_refusal;
    return true;
}

/* True if a RocksDB error is a failed append to a WAL file ("...: While appending to
 * file: <dir>/000012.log: <reason>"). */
static bool wal_append_error(const char *rerr)
{
    static const char what[] = "While appending to file: ";
    const char *p = strstr(rerr, what);
    if (p == NULL)
        return false;
    p += sizeof(what) - 1;
    const char *end = strstr(p, ": ");
    if (end == NULL)
        end = p + strlen(p);
    return end - p >= 4 && memcmp(end - 4, ".log", 4) == 0;
}

static bool active_memtables_empty(struct eng *e)
{
    for (int i = 0; i < NCF; i++) {
        uint64_t n = 1;
        if (rocksdb_property_int_cf(e->db, e->cf[i], "rocksdb.num-entries-active-mem-table",
                                    &n) != 0 || n != 0)
            return false;
    }
    return true;
}

/* Before wal_failed is set: the cron reads the reason when it sees the flag. */
static void note_failure(struct eng *e, const char *what, const char *why)
{
    pthread_mutex_lock(&e->err_lock);
    snprintf(e->wal_error, sizeof(e->wal_error), "%s: %s", what, why);
    pthread_mutex_unlock(&e->err_lock);
}

static void write_result(struct eng *e, const char *rerr)
{
    if (rerr != NULL)
        note_failure(e, "write failed", rerr);
    atomic_store(&e->wal_failed, rerr != NULL);
    if (rerr == NULL || rerr == wal_refusal || !wal_append_error(rerr) ||
        !active_memtables_empty(e))
        return;
    if (!atomic_exchange(&e->wal_poisoned, true))
        cm_log(CM_LOG_WARNING, "Storage: %s. RocksDB would reuse this WAL file after it "
                               "recovers, so writes are refused until eddyd restarts", rerr);
}

static void db_write(struct eng *e, rocksdb_writebatch_t *wb, char **rerr)
{
    if (!write_refused(e, rerr))
        rocksdb_write(e->db, e->wopts, wb, rerr);
    write_result(e, *rerr);
}

/* ---- Durability ---------------------------------------------------------------------------- */

/* The WAL is flushed by hand (manual_wal_flush): writes append to RocksDB's WAL
 * buffer without a system call, and the connection that acknowledges them flushes
 * once for its whole batch of commands (group commit), with an fsync under "always".
 * A flush or sync covers every write numbered up to what it read before it started. */
static int persist_upto(struct eng *e, unsigned long long seq, bool sync, struct cm_err *err)
{
    atomic_ullong *done = sync ? &e->synced_seq : &e->flushed_seq;
    if (atomic_load(done) >= seq)
        return 0;
    pthread_mutex_lock(&e->sync_lock);
    int rc = 0;
    if (atomic_load(done) < seq) {
        unsigned long long target = atomic_load(&e->written_seq);
        char *rerr = NULL;
        if (atomic_load(&e->wal_failed))
            rc = cm_err_set(err, CM_EIO, "%s: the write-ahead log failed earlier (no write has "
                                         "succeeded since)", sync ? "WAL sync failed" : "WAL write failed");
        else if (!fault_hit(e, ENG_FAULT_SYNC, &rerr))
            rocksdb_flush_wal(e->db, sync, &rerr);
        if (rc != 0) {
            /* nothing to add */
        } else if (rerr != NULL) {
            note_failure(e, sync ? "WAL sync failed" : "WAL write failed", rerr);
            atomic_store(&e->wal_failed, true);
            rc = rocks_err(err, rerr, sync ? "WAL sync failed" : "WAL write failed");
        } else {
            if (atomic_load(&e->flushed_seq) < target)
                atomic_store(&e->flushed_seq, target);
            if (sync) {
                atomic_store(&e->synced_seq, target);
                atomic_fetch_add_explicit(&e->n_syncs, 1, memory_order_relaxed);
            }
        }
    }
    pthread_mutex_unlock(&e->sync_lock);
    return rc;
}

/* A write is visible to readers from its memtable insert, when its WAL record is
 * already in RocksDB's buffer, and until write_leave it is counted in `writing`. So a
 * reader that has seen it then finds `writing` > 0 (a flush that starts now covers
 * the record: one past written_seq forces it) or, loading written_seq after
 * `writing`, finds the write numbered. */
int eng_persist(struct eng *e, struct cm_err *err)
{
    unsigned busy = atomic_load(&e->writing);
    unsigned long long seq = atomic_load(&e->written_seq) + (busy > 0);
    return persist_upto(e, seq, eng_get_fsync(e) == ENG_FSYNC_ALWAYS, err);
}

int eng_sync(struct eng *e, struct cm_err *err)
{
    return persist_upto(e, tls_last_seq, true, err);
}

int eng_sync_all(struct eng *e, struct cm_err *err)
{
    return persist_upto(e, atomic_load(&e->written_seq), true, err);
}

int eng_flush_all_wal(struct eng *e, struct cm_err *err)
{
    return persist_upto(e, atomic_load(&e->written_seq), false, err);
}

bool eng_failing(struct eng *e, char *why, size_t n)
{
    if (!atomic_load(&e->wal_failed))
        return false;
    pthread_mutex_lock(&e->err_lock);
    snprintf(why, n, "%s", e->wal_error);
    pthread_mutex_unlock(&e->err_lock);
    return true;
}

bool eng_dirty(const struct eng *e)
{
    return atomic_load(&((struct eng *)e)->synced_seq) < atomic_load(&((struct eng *)e)->written_seq);
}

bool eng_unflushed(const struct eng *e)
{
    return atomic_load(&((struct eng *)e)->flushed_seq) < atomic_load(&((struct eng *)e)->written_seq);
}

void eng_set_fsync(struct eng *e, enum eng_fsync mode)
{
    atomic_store(&e->fsync, mode);
}

enum eng_fsync eng_get_fsync(const struct eng *e)
{
    return (enum eng_fsync)atomic_load(&((struct eng *)e)->fsync);
}

/* ---- Reads ------------------------------------------------------------------------------------ */

struct eng_snap {
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
};

struct eng_snap *eng_snap_new(struct eng *e)
{
    struct eng_snap *s = cm_malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    s->snap = rocksdb_create_snapshot(e->db);
    s->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(s->ro, s->snap);
    return s;
}

void eng_snap_free(struct eng *e, struct eng_snap *s)
{
    if (s == NULL)
        return;
    rocksdb_readoptions_destroy(s->ro);
    rocksdb_release_snapshot(e->db, s->snap);
    cm_free(s);
}

int eng_get(struct eng *e, const char *key, size_t klen, int64_t now_ms, struct eng_item *it,
            struct cm_err *err)
{
    return eng_get_at(e, NULL, key, klen, now_ms, it, err);
}

/* Decodes the stored value p[0..n) into it, checking expiry. Returns 0, CM_ENOTFOUND
 * (expired: it->expire_ms set, nothing else) or CM_EIO; on an error it is cleared and
 * the caller frees what holds p. */
static int item_decode(const char *p, size_t n, int64_t now_ms, struct eng_item *it,
                       struct cm_err *err)
{
    if (eng_decode_value(p, n, it) != 0) {
        memset(it, 0, sizeof(*it));
        return cm_err_set(err, CM_EIO, "corrupt value stored for key");
    }
    if (it->expire_ms != 0 && it->expire_ms <= now_ms) {
        int64_t exp = it->expire_ms;
        memset(it, 0, sizeof(*it));
        it->expire_ms = exp;
        return CM_ENOTFOUND;
    }
    return 0;
}

/* A read of key (hash: eng__key_hash) from the value cache: 0 or CM_ENOTFOUND
 * (expired) or an error for a hit, decoded into it (its value copied into the
 * thread's hit buffer, or its own while that one is in use); 1 for a miss. */
static int cache_hit(struct eng *e, uint64_t hash, const char *key, size_t klen, int64_t now_ms,
                     struct eng_item *it, struct cm_err *err)
{
    struct cm_buf own, *out = tls_hit_busy ? &own : &tls_hit;
    cm_buf_init(&own);
    if (eng__cache_get(e->vcache, hash, key, klen, out) != 0) {
        cm_buf_deinit(&own);
        return 1;
    }
    int rc = item_decode(out->p, out->len, now_ms, it, err);
    if (rc == 0) {
        it->copy = out->p;
        tls_hit_busy = tls_hit_busy || out == &tls_hit;
    } else {
        cm_buf_deinit(&own);
    }
    return rc;
}

int eng_get_at(struct eng *e, const struct eng_snap *snap, const char *key, size_t klen,
               int64_t now_ms, struct eng_item *it, struct cm_err *err)
{
    struct pkey k;
    char *rerr = NULL;
    memset(it, 0, sizeof(*it));
    if (fault_hit(e, ENG_FAULT_READ, &rerr))
        return rocks_err(err, rerr, "read failed");
    /* The value cache serves reads of the current state, not of a snapshot. */
    bool cached = snap == NULL && e->vcache != NULL;
    uint64_t hash = 0;
    unsigned gen = 0;
    if (cached) {
        hash = eng__key_hash(key, klen);
        int rc = cache_hit(e, hash, key, klen, now_ms, it, err);
        if (rc <= 0)
            return rc;
        gen = eng__cache_gen(e->vcache, hash);
    }
    if (pkey_make(&k, key, klen) != 0)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(e->db, snap ? snap->ro : e->ropts,
                                                        e->cf[CF_DATA], k.p, k.n, &rerr);
    pkey_free(&k);
    if (rerr != NULL)
        return rocks_err(err, rerr, "read failed");
    if (ps == NULL)
        return CM_ENOTFOUND;
    size_t n;
    const char *p = rocksdb_pinnableslice_value(ps, &n);
    int rc = item_decode(p, n, now_ms, it, err);
    if (rc != 0) {
        rocksdb_pinnableslice_destroy(ps);
        return rc;
    }
    if (cached)
        eng__cache_fill(e->vcache, hash, key, klen, gen, p, n);
    it->pin = ps;
    return 0;
}

void eng_item_release(struct eng_item *it)
{
    if (it->pin != NULL)
        rocksdb_pinnableslice_destroy(it->pin);
    rocksdb_free(it->owned);
    if (it->copy != NULL && it->copy == tls_hit.p)
        tls_hit_busy = false;
    else
        cm_free(it->copy);
    it->pin = NULL;
    it->owned = NULL;
    it->copy = NULL;
}

int eng_exists(struct eng *e, const char *key, size_t klen, int64_t now_ms, struct cm_err *err)
{
    struct eng_item it;
    int rc = eng_get(e, key, klen, now_ms, &it, err);
    if (rc == 0) {
        eng_item_release(&it);
        return 1;
    }
    return rc == CM_ENOTFOUND ? 0 : rc;
}

/* ---- Slot watch ---------------------------------------------------------------------------------- */

/* Appends a written user key to a batch's or transaction's list (4-byte length + key). */
static int note_key(struct cm_buf *keys, const char *key, size_t klen)
{
    uint32_t l = (uint32_t)klen;
    return cm_buf_append(keys, &l, 4) == 0 ? cm_buf_append(keys, key, klen) : CM_ENOMEM;
}

/* ---- Slots that may hold keys (slot_bits) ---------------------------------------------- */

static void slot_mark(struct eng *e, unsigned slot)
{
    uint64_t m = (uint64_t)1 << (slot & 63);
    if (!(atomic_load_explicit(&e->slot_bits[slot >> 6], memory_order_acquire) & m))
        atomic_fetch_or(&e->slot_bits[slot >> 6], m);
}

/* The slot of an encoded key (2 bytes, big-endian). */
static unsigned pkey_slot(const char *p)
{
    return (unsigned)((uint8_t)p[0] << 8 | (uint8_t)p[1]);
}

/* With watch_lock held for reading, before a batch or transaction that staged keys
 * when slot_gen was gen is written: if a clear came in between, marks their slots
 * again (their bits may have been cleared after being set). */
static void slot_remark(struct eng *e, unsigned long gen, const struct cm_buf *keys)
{
    if (atomic_load(&e->slot_gen) == gen)
        return;
    for (size_t off = 0; off + 4 <= keys->len;) {
        uint32_t l;
        memcpy(&l, keys->p + off, 4);
        slot_mark(e, cm_key_slot(keys->p + off + 4, l));
        off += 4 + l;
    }
}

/* The bits of slots [lo, hi] that fall in word w (slot_bits[w]); lo <= hi and
 * lo >> 6 <= w <= hi >> 6 (else a shift could reach 64). */
static uint64_t slot_word_mask(unsigned w, unsigned lo, unsigned hi)
{
    unsigned first = w * 64 > lo ? 0 : lo - w * 64;
    unsigned last = w * 64 + 63 < hi ? 63 : hi - w * 64;
    uint64_t upto = last == 63 ? ~(uint64_t)0 : ((uint64_t)1 << (last + 1)) - 1;
    return upto & ~(((uint64_t)1 << first) - 1);
}

/* One atomic operation per 64 slots: a FLUSHALL covers all 16384. */
static void slot_mark_range(struct eng *e, unsigned lo, unsigned hi)
{
    for (unsigned w = lo >> 6; w <= hi >> 6; w++)
        atomic_fetch_or(&e->slot_bits[w], slot_word_mask(w, lo, hi));
}

/* With watch_lock held for writing, just before slots [lo, hi] are emptied: */
static void slot_clear_begin(struct eng *e, unsigned lo, unsigned hi)
{
    atomic_fetch_add(&e->slot_gen, 1); /* odd: a clear is under way */
    for (unsigned w = lo >> 6; w <= hi >> 6; w++)
        atomic_fetch_and(&e->slot_bits[w], ~slot_word_mask(w, lo, hi));
}

/* ... and after their write: if it failed, what is left of them is not known. */
static void slot_clear_end(struct eng *e, unsigned lo, unsigned hi, bool failed)
{
    if (failed)
        slot_mark_range(e, lo, hi);
    atomic_fetch_add(&e->slot_gen, 1);
}

/* The first slot in [from, hi] whose bit is set, or hi + 1. */
static unsigned slot_next_marked(struct eng *e, unsigned from, unsigned hi)
{
    unsigned s = from;
    while (s <= hi) {
        uint64_t w = atomic_load_explicit(&e->slot_bits[s >> 6], memory_order_acquire) >>
                     (s & 63);
        if (w != 0) {
            s += (unsigned)__builtin_ctzll(w);
            break;
        }
        s = (s | 63) + 1;
    }
    return s > hi ? hi + 1 : s;
}

/* Marks every slot that holds a key now (eng_open): one seek per slot. On an error,
 * every slot. */
static void slot_scan_all(struct eng *e)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_prefix_same_as_start(ro, 1);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->db, ro, e->cf[CF_DATA]);
    for (unsigned s = 0; s < CM_SLOTS; s++) {
        char p[2] = {(char)(s >> 8), (char)(s & 0xff)};
        rocksdb_iter_seek(it, p, 2);
        size_t kl;
        if (rocksdb_iter_valid(it)) {
            const char *k = rocksdb_iter_key(it, &kl);
            if (kl >= 2 && pkey_slot(k) == s)
                slot_mark(e, s);
        }
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr != NULL) {
        cm_log(CM_LOG_WARNING, "Scanning the slots at open: %s (every slot is scanned)", rerr);
        rocksdb_free(rerr);
        slot_mark_range(e, 0, CM_SLOTS - 1);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
}

static bool watched(const struct eng *e, unsigned slot)
{
    return (e->watch_slots[slot >> 3] >> (slot & 7)) & 1;
}

/* With watch_lock held for reading: 0 if the keys touch no watched slot, 1 if they
 * do (record them after the write), CM_EAGAIN (err set) if they do and the watch is
 * fenced. */
static int watch_check(struct eng *e, const struct cm_buf *keys, struct cm_err *err)
{
    if (!e->watch_on && !e->refuse_on)
        return 0;
    int hit = 0;
    for (size_t off = 0; off + 4 <= keys->len;) {
        uint32_t l;
        memcpy(&l, keys->p + off, 4);
        unsigned slot = cm_key_slot(keys->p + off + 4, l);
        if (e->refuse_on && (e->refuse_slots[slot >> 3] >> (slot & 7)) & 1)
            return cm_err_set(err, CM_EAGAIN, "TRYAGAIN slot %u was migrated to another node "
                                              "while this command ran; nothing was applied",
                              slot);
        if (e->watch_on && watched(e, slot))
            hit = 1;
        off += 4 + l;
    }
    if (hit && e->watch_fenced)
        return cm_err_set(err, CM_EAGAIN, "TRYAGAIN a slot written by this command is being "
                                          "migrated; nothing was applied, try again");
    return hit;
}

/* With watch_lock held for reading, after a write: records its keys of watched slots. */
static void watch_record(struct eng *e, const struct cm_buf *keys)
{
    pthread_mutex_lock(&e->watch_mu);
    for (size_t off = 0; off + 4 <= keys->len;) {
        uint32_t l;
        memcpy(&l, keys->p + off, 4);
        if (watched(e, cm_key_slot(keys->p + off + 4, l))) {
            if (cm_buf_append(&e->watch_keys, keys->p + off, 4 + l) != 0)
                e->watch_lost = true; /* out of memory: the migration must fail */
            else
                e->watch_nkeys++;
        }
        off += 4 + l;
    }
    pthread_mutex_unlock(&e->watch_mu);
}

int eng_watch_start(struct eng *e, const uint8_t slots[CM_SLOTS / 8])
{
    pthread_rwlock_wrlock(&e->watch_lock);
    if (e->watch_on) {
        pthread_rwlock_unlock(&e->watch_lock);
        return CM_EINVAL;
    }
    memcpy(e->watch_slots, slots, sizeof(e->watch_slots));
    e->watch_on = true;
    e->watch_fenced = false;
    e->watch_lost = false;
    pthread_mutex_lock(&e->watch_mu);
    e->watch_keys.len = 0;
    e->watch_nkeys = 0;
    pthread_mutex_unlock(&e->watch_mu);
    pthread_rwlock_unlock(&e->watch_lock);
    return 0;
}

void eng_watch_fence(struct eng *e, bool on)
{
    pthread_rwlock_wrlock(&e->watch_lock);
    e->watch_fenced = e->watch_on && on;
    pthread_rwlock_unlock(&e->watch_lock);
}

int eng_watch_take(struct eng *e, struct cm_buf *keys, size_t *nkeys)
{
    int rc = 0;
    keys->len = 0;
    pthread_rwlock_rdlock(&e->watch_lock);
    pthread_mutex_lock(&e->watch_mu);
    if (e->watch_lost) {
        rc = CM_ELIMIT;
    } else {
        struct cm_buf t = *keys;
        *keys = e->watch_keys;
        e->watch_keys = t;
        *nkeys = e->watch_nkeys;
        e->watch_nkeys = 0;
    }
    pthread_mutex_unlock(&e->watch_mu);
    pthread_rwlock_unlock(&e->watch_lock);
    return rc;
}

void eng_slots_refuse(struct eng *e, const uint8_t slots[CM_SLOTS / 8], bool on)
{
    pthread_rwlock_wrlock(&e->watch_lock);
    bool any = false;
    for (size_t i = 0; i < sizeof(e->refuse_slots); i++) {
        e->refuse_slots[i] = on ? (uint8_t)(e->refuse_slots[i] | slots[i])
                                : (uint8_t)(e->refuse_slots[i] & ~slots[i]);
        any = any || e->refuse_slots[i] != 0;
    }
    e->refuse_on = any;
    pthread_rwlock_unlock(&e->watch_lock);
}

void eng_watch_stop(struct eng *e)
{
    pthread_rwlock_wrlock(&e->watch_lock);
    e->watch_on = e->watch_fenced = e->watch_lost = false;
    memset(e->watch_slots, 0, sizeof(e->watch_slots));
    pthread_mutex_lock(&e->watch_mu);
    e->watch_keys.len = 0;
    e->watch_nkeys = 0;
    cm_buf_shrink(&e->watch_keys, 1 << 20);
    pthread_mutex_unlock(&e->watch_mu);
    pthread_rwlock_unlock(&e->watch_lock);
}

int eng_drop_slots(struct eng *e, unsigned slot_lo, unsigned slot_hi, struct cm_err *err)
{
    char lo[2] = {(char)(slot_lo >> 8), (char)(slot_lo & 0xff)};
    unsigned end = slot_hi + 1;
    char hi[2] = {(char)(end >> 8), (char)(end & 0xff)};
    char *rerr = NULL;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range_cf(wb, e->cf[CF_DATA], lo, 2, hi, 2);
    pthread_rwlock_wrlock(&e->watch_lock);
    slot_clear_begin(e, slot_lo, slot_hi);
    write_enter(e);
    db_write(e, wb, &rerr);
    slot_clear_end(e, slot_lo, slot_hi, rerr != NULL);
    pthread_rwlock_unlock(&e->watch_lock);
    if (e->vcache != NULL)
        eng__cache_clear(e->vcache);
    rocksdb_writebatch_destroy(wb);
    write_leave(e, rerr == NULL);
    if (rerr != NULL)
        return rocks_err(err, rerr, "drop of slots failed");
    /* Transactions that read keys of these slots must conflict (stale expiry index
     * entries are skipped by the expire cycle: their key is gone). */
    for (unsigned i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&e->stripes[i]);
        mark_stripe(e, i);
        pthread_mutex_unlock(&e->stripes[i]);
    }
    return eng_sync_all(e, err);
}

/* ---- Writes ----------------------------------------------------------------------------------- */

struct eng_batch *eng_batch_new(struct eng *e)
{
    struct eng_batch *b = cm_calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->e = e;
    b->wb = rocksdb_writebatch_create();
    cm_buf_init(&b->key);
    cm_buf_init(&b->val);
    cm_buf_init(&b->ukeys);
    cm_buf_init(&b->cvals);
    eng_lockset_init(&b->stripes);
    return b;
}

void eng_batch_free(struct eng_batch *b)
{
    if (b == NULL)
        return;
    rocksdb_writebatch_destroy(b->wb);
    cm_buf_deinit(&b->key);
    cm_buf_deinit(&b->val);
    cm_buf_deinit(&b->ukeys);
    cm_buf_deinit(&b->cvals);
    eng_lockset_deinit(&b->stripes);
    cm_free(b);
}

/* Records that the batch writes a key of stripe st. */
static int batch_touch(struct eng_batch *b, unsigned st)
{
    uint64_t bit = (uint64_t)1 << (st % 64);
    if (b->touched[st / 64] & bit)
        return 0;
    if (eng_lockset_add_stripe(&b->stripes, st) != 0)
        return CM_ENOMEM;
    b->touched[st / 64] |= bit;
    return 0;
}

void eng_batch_clear(struct eng_batch *b)
{
    size_t size;
    rocksdb_writebatch_data(b->wb, &size);
    if (size > BATCH_KEEP_BYTES) {
        /* Clearing keeps the capacity: a worker that once wrote 512 MB would hold it. */
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        if (wb != NULL) {
            rocksdb_writebatch_destroy(b->wb);
            b->wb = wb;
        }
    }
    rocksdb_writebatch_clear(b->wb);
    for (unsigned i = 0; i < b->stripes.n; i++)
        b->touched[b->stripes.stripes[i] / 64] = 0;
    b->stripes.n = 0;
    b->ukeys.len = 0;
    cm_buf_shrink(&b->ukeys, 1 << 20);
    b->cvals.len = 0;
    cm_buf_shrink(&b->cvals, 1 << 20);
}

void eng_batch_savepoint(struct eng_batch *b)
{
    rocksdb_writebatch_set_save_point(b->wb);
    b->saved_stripes = b->stripes.n;
    b->saved_ukeys = b->ukeys.len;
    b->saved_cvals = b->cvals.len;
}

void eng_batch_rollback(struct eng_batch *b)
{
    char *rerr = NULL;
    rocksdb_writebatch_rollback_to_save_point(b->wb, &rerr);
    rocksdb_free(rerr);
    for (unsigned i = b->saved_stripes; i < b->stripes.n; i++) {
        unsigned st = b->stripes.stripes[i]; /* first touched after the savepoint */
        b->touched[st / 64] &= ~((uint64_t)1 << (st % 64));
    }
    b->stripes.n = b->saved_stripes;
    b->ukeys.len = b->saved_ukeys;
    b->cvals.len = b->saved_cvals;
}

bool eng_batch_touches(const struct eng_batch *b, unsigned stripe)
{
    return (b->touched[stripe / 64] >> (stripe % 64)) & 1;
}

size_t eng_batch_count(const struct eng_batch *b)
{
    return (size_t)rocksdb_writebatch_count(b->wb);
}

/* Records a write for the value cache: key = the encoded value v[0..vn) (v NULL: the
 * key is dropped from the cache). */
static int note_cval(struct eng_batch *b, uint64_t hash, const char *key, size_t klen,
                     const char *v, size_t vn)
{
    if (b->e->vcache == NULL)
        return 0;
    struct crec r = {hash, (uint32_t)klen, v != NULL ? (uint32_t)vn : CREC_DROP, 0};
    size_t n = sizeof(r) + klen + (v != NULL ? vn : 0);
    if (cm_buf_reserve(&b->cvals, n) != 0)
        return CM_ENOMEM;
    char *p = b->cvals.p + b->cvals.len; /* one reserve, then plain copies (hot) */
    memcpy(p, &r, sizeof(r));
    memcpy(p + sizeof(r), key, klen);
    if (v != NULL)
        memcpy(p + sizeof(r) + klen, v, vn);
    b->cvals.len += n;
    return 0;
}

int eng_batch_put(struct eng_batch *b, const char *key, size_t klen, enum eng_type type,
                  int64_t expire_ms, const void *val, size_t vlen)
{
    uint64_t hash = eng__key_hash(key, klen);
    if (b->ukeys.len == 0)
        b->slot_gen = atomic_load(&b->e->slot_gen);
    if (eng_encode_key(&b->key, key, klen) != 0 || batch_touch(b, stripe_of_hash(hash)) != 0 ||
        note_key(&b->ukeys, key, klen) != 0)
        return CM_ENOMEM;
    slot_mark(b->e, pkey_slot(b->key.p));
    if (expire_ms > 0) {
        /* Index entry: expiry (8 bytes BE) + physical key, value empty. It goes first:
         * RocksDB's batch is a string that doubles when appended to past its size, so
         * a small entry after a 512 MB value would cost another 512 MB. */
        char h[8];
        put_be64(h, (uint64_t)expire_ms);
        const char *parts[2] = {h, b->key.p};
        size_t lens[2] = {8, b->key.len};
        rocksdb_writebatch_putv_cf(b->wb, b->e->cf[CF_EXPIRE], 2, parts, lens, 0, NULL, NULL);
    }
    if (vlen <= PUT_COPY_MAX) {
        if (eng_encode_value(&b->val, type, expire_ms, val, vlen) != 0 ||
            note_cval(b, hash, key, klen, vlen <= ENG__CACHE_VALUE_MAX ? b->val.p : NULL,
                      b->val.len) != 0)
            return CM_ENOMEM;
        rocksdb_writebatch_put_cf(b->wb, b->e->cf[CF_DATA], b->key.p, b->key.len, b->val.p,
                                  b->val.len);
        return 0;
    }
    /* A large value goes to the batch with its header as two pieces, without a copy
     * of its own here (one copy less of a 512 MB value). */
    if (note_cval(b, hash, key, klen, NULL, 0) != 0)
        return CM_ENOMEM;
    char h[10];
    const char *kp = b->key.p, *vp[2] = {h, val};
    size_t vl[2] = {encode_header(h, type, expire_ms), vlen};
    rocksdb_writebatch_putv_cf(b->wb, b->e->cf[CF_DATA], 1, &kp, &b->key.len, 2, vp, vl);
    return 0;
}

static int batch_del(struct eng_batch *b, const char *key, size_t klen)
{
    uint64_t hash = eng__key_hash(key, klen);
    if (b->ukeys.len == 0)
        b->slot_gen = atomic_load(&b->e->slot_gen);
    if (eng_encode_key(&b->key, key, klen) != 0 || batch_touch(b, stripe_of_hash(hash)) != 0 ||
        note_key(&b->ukeys, key, klen) != 0 || note_cval(b, hash, key, klen, NULL, 0) != 0)
        return CM_ENOMEM;
    rocksdb_writebatch_delete_cf(b->wb, b->e->cf[CF_DATA], b->key.p, b->key.len);
    return 0;
}

void eng_batch_del(struct eng_batch *b, const char *key, size_t klen)
{
    (void)batch_del(b, key, klen);
}

/* The record of cvals at off, and the offset of the next one. */
static size_t crec_at(const struct eng_batch *b, size_t off, struct crec *r)
{
    memcpy(r, b->cvals.p + off, sizeof(*r));
    return off + sizeof(*r) + r->klen + (r->vlen == CREC_DROP ? 0 : r->vlen);
}

/* Counts a batch's records per write count of the value cache (a small open-
 * addressing table: the count's index + 1, 0 when free). */
struct gen_seen {
    uint32_t slot, count;
};

/* Before a batch's write, each record takes the write count its eng__cache_set will
 * expect: the count now, plus one for each earlier record of the batch under the same
 * count (every set moves it on). Without the second part a batch's later keys under
 * a count were dropped from the cache instead of stored: of one batch of 20,000 keys,
 * 15,062 were cached (value_cache_learns_whole_batches). */
static void cache_batch_gens(struct eng *e, struct eng_batch *b)
{
    struct crec r;
    size_t n = 0, cap = 16;
    for (size_t off = 0; off + sizeof(r) <= b->cvals.len; n++)
        off = crec_at(b, off, &r);
    while (cap < 2 * n)
        cap *= 2;
    struct gen_seen local[256], *t = local;
    if (n > 1 && cap > 256 && (t = cm_malloc(cap * sizeof(*t))) == NULL)
        n = 1; /* out of memory: no counting, a later key of a count is dropped */
    if (n > 1)
        memset(t, 0, cap * sizeof(*t));
    for (size_t off = 0; off + sizeof(r) <= b->cvals.len;) {
        size_t next = crec_at(b, off, &r);
        r.gen = eng__cache_gen(e->vcache, r.hash);
        if (n > 1) {
            uint32_t slot = (uint32_t)eng__cache_gen_slot(e->vcache, r.hash) + 1;
            size_t i = (slot * 2654435761u) & (cap - 1);
            while (t[i].slot != 0 && t[i].slot != slot)
                i = (i + 1) & (cap - 1);
            t[i].slot = slot;
            r.gen += t[i].count++;
        }
        memcpy(b->cvals.p + off, &r, sizeof(r));
        off = next;
    }
    if (t != local)
        cm_free(t);
}

/* After a batch's write: the cache learns the new values (failed: drops the keys). */
static void cache_batch_learn(struct eng *e, struct eng_batch *b, bool failed)
{
    struct crec r;
    for (size_t off = 0; off + sizeof(r) <= b->cvals.len;) {
        size_t next = crec_at(b, off, &r);
        const char *k = b->cvals.p + off + sizeof(r);
        bool drop = failed || r.vlen == CREC_DROP;
        eng__cache_set(e->vcache, r.hash, k, r.klen, r.gen, drop ? NULL : k + r.klen,
                       drop ? 0 : r.vlen);
        off = next;
    }
}

/* Drops the keys of a list of user keys (4-byte length + key) from the value cache. */
static void cache_drop_keys(struct eng *e, const struct cm_buf *keys)
{
    if (e->vcache == NULL)
        return;
    for (size_t off = 0; off + 4 <= keys->len;) {
        uint32_t l;
        memcpy(&l, keys->p + off, 4);
        const char *k = keys->p + off + 4;
        eng__cache_set(e->vcache, eng__key_hash(k, l), k, l, 0, NULL, 0);
        off += 4 + l;
    }
}

int eng_write(struct eng *e, struct eng_batch *b, struct cm_err *err)
{
    char *rerr = NULL;
    pthread_rwlock_rdlock(&e->watch_lock);
    int w = watch_check(e, &b->ukeys, err);
    if (w < 0) {
        pthread_rwlock_unlock(&e->watch_lock);
        return w;
    }
    slot_remark(e, b->slot_gen, &b->ukeys);
    if (e->vcache != NULL)
        cache_batch_gens(e, b);
    write_enter(e);
    db_write(e, b->wb, &rerr);
    if (e->vcache != NULL)
        cache_batch_learn(e, b, rerr != NULL);
    if (rerr == NULL && w > 0)
        watch_record(e, &b->ukeys);
    pthread_rwlock_unlock(&e->watch_lock);
    write_leave(e, rerr == NULL);
    if (rerr != NULL)
        return rocks_err(err, rerr, "write failed");
    atomic_fetch_add_explicit(&e->n_writes, 1, memory_order_relaxed);
    /* Transactions that read these keys before this write must now conflict. */
    unsigned long long seq = atomic_fetch_add(&e->commit_seq, 1) + 1;
    for (unsigned i = 0; i < b->stripes.n; i++)
        e->stripe_seq[b->stripes.stripes[i]] = seq;
    return 0;
}

int eng_write_locked(struct eng *e, struct eng_batch *b, struct cm_err *err)
{
    struct eng_lockset ls;
    eng_lockset_init(&ls);
    for (unsigned i = 0; i < b->stripes.n; i++)
        if (eng_lockset_add_stripe(&ls, b->stripes.stripes[i]) != 0) {
            eng_lockset_deinit(&ls);
            return cm_err_set(err, CM_ENOMEM, "out of memory");
        }
    eng_lockset_lock(e, &ls);
    int rc = eng_write(e, b, err);
    eng_lockset_unlock(e, &ls);
    eng_lockset_deinit(&ls);
    return rc;
}

/* ---- Key locks --------------------------------------------------------------------------------- */

uint64_t eng__key_hash(const char *key, size_t klen)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < klen; i++)
        h = (h ^ (uint8_t)key[i]) * 1099511628211ULL;
    return h;
}

static unsigned stripe_of_hash(uint64_t h)
{
    return (unsigned)(h ^ (h >> 32)) & (STRIPES - 1);
}

static unsigned stripe_of(const char *key, size_t klen)
{
    return stripe_of_hash(eng__key_hash(key, klen));
}

unsigned eng_key_stripe(const char *key, size_t klen)
{
    return stripe_of(key, klen);
}

bool eng_stripe_trylock(struct eng *e, unsigned stripe)
{
    return pthread_mutex_trylock(&e->stripes[stripe]) == 0;
}

void eng_stripe_lock(struct eng *e, unsigned stripe)
{
    pthread_mutex_lock(&e->stripes[stripe]);
}

void eng_stripe_unlock(struct eng *e, unsigned stripe)
{
    pthread_mutex_unlock(&e->stripes[stripe]);
}

void eng_lock_key(struct eng *e, const char *key, size_t klen)
{
    pthread_mutex_lock(&e->stripes[stripe_of(key, klen)]);
}

void eng_unlock_key(struct eng *e, const char *key, size_t klen)
{
    pthread_mutex_unlock(&e->stripes[stripe_of(key, klen)]);
}

/* Marks stripe s written by a new commit; the caller holds its mutex. */
static void mark_stripe(struct eng *e, unsigned s)
{
    e->stripe_seq[s] = atomic_fetch_add(&e->commit_seq, 1) + 1;
}

void eng_lockset_mark_written(struct eng *e, struct eng_lockset *ls)
{
    unsigned long long seq = atomic_fetch_add(&e->commit_seq, 1) + 1;
    for (unsigned i = 0; i < ls->n; i++)
        e->stripe_seq[ls->stripes[i]] = seq;
}

void eng_lockset_init(struct eng_lockset *ls)
{
    ls->n = 0;
    ls->cap = 8;
    ls->stripes = ls->small;
}

int eng_lockset_add(struct eng *e, struct eng_lockset *ls, const char *key, size_t klen)
{
    (void)e;
    return eng_lockset_add_stripe(ls, stripe_of(key, klen));
}

int eng_lockset_add_stripe(struct eng_lockset *ls, unsigned s)
{
    /* Duplicates are removed when locking; skip only the common repeat. */
    if (ls->n > 0 && ls->stripes[ls->n - 1] == s)
        return 0;
    if (ls->n == ls->cap) {
        unsigned cap = ls->cap * 2;
        unsigned *p = cm_malloc(cap * sizeof(*p));
        if (p == NULL)
            return CM_ENOMEM;
        memcpy(p, ls->stripes, ls->n * sizeof(*p));
        if (ls->stripes != ls->small)
            cm_free(ls->stripes);
        ls->stripes = p;
        ls->cap = cap;
    }
    ls->stripes[ls->n++] = s;
    return 0;
}

static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

void eng_lockset_normalize(struct eng_lockset *ls)
{
    if (ls->n > 16) {
        qsort(ls->stripes, ls->n, sizeof(unsigned), cmp_uint);
    } else { /* the usual few keys: insertion sort, without qsort's calls */
        for (unsigned i = 1; i < ls->n; i++) {
            unsigned v = ls->stripes[i], j = i;
            for (; j > 0 && ls->stripes[j - 1] > v; j--)
                ls->stripes[j] = ls->stripes[j - 1];
            ls->stripes[j] = v;
        }
    }
    unsigned n = 0;
    for (unsigned i = 0; i < ls->n; i++)
        if (n == 0 || ls->stripes[n - 1] != ls->stripes[i])
            ls->stripes[n++] = ls->stripes[i];
    ls->n = n;
}

void eng_lockset_lock(struct eng *e, struct eng_lockset *ls)
{
    eng_lockset_normalize(ls);
    for (unsigned i = 0; i < ls->n; i++)
        pthread_mutex_lock(&e->stripes[ls->stripes[i]]);
}

void eng_lockset_unlock(struct eng *e, struct eng_lockset *ls)
{
    for (unsigned i = ls->n; i > 0; i--)
        pthread_mutex_unlock(&e->stripes[ls->stripes[i - 1]]);
}

void eng_lockset_deinit(struct eng_lockset *ls)
{
    if (ls->stripes != ls->small)
        cm_free(ls->stripes);
    eng_lockset_init(ls);
}

/* ---- Transactions ----------------------------------------------------------------------- */

/* Frees what a transaction keeps between uses (see eng_txn_free). */
static void txn_destroy(struct eng_txn *t)
{
    rocksdb_writebatch_wi_destroy(t->wb);
    rocksdb_readoptions_destroy(t->ro);
    cm_buf_deinit(&t->key);
    cm_buf_deinit(&t->val);
    cm_buf_deinit(&t->ukeys);
    cm_buf_deinit(&t->log);
    cm_free(t);
}

struct eng_txn *eng_txn_begin(struct eng *e)
{
    struct eng_txn *t = NULL;
    pthread_mutex_lock(&e->spare_lock);
    if (e->nspares > 0)
        t = e->spares[--e->nspares];
    pthread_mutex_unlock(&e->spare_lock);
    if (t == NULL) {
        if ((t = cm_calloc(1, sizeof(*t))) == NULL)
            return NULL;
        t->e = e;
        t->ro = rocksdb_readoptions_create();
        t->wb = rocksdb_writebatch_wi_create(0, 1);
        cm_buf_init(&t->key);
        cm_buf_init(&t->val);
        cm_buf_init(&t->ukeys);
        cm_buf_init(&t->log);
    }
    t->log.len = 0;
    t->log_off = false;
    t->pending = NULL;
    t->apply = NULL;
    t->apply_ud = NULL;
    t->pending_hit = false;
    t->cache_reads = false;
    t->held = false;
    /* commit_seq is read before the snapshot is taken: a commit that the snapshot
     * misses has a larger number, so validation sees it (see struct eng). */
    t->start_seq = atomic_load(&e->commit_seq);
    /* Before anything is staged or read: the snapshot, taken later (txn_snap), sees
     * at least every clear before this, so iterators may use it too. */
    t->slot_gen = atomic_load(&e->slot_gen);
    t->snap = NULL; /* taken by the first read that needs it (txn_snap) */
    rocksdb_readoptions_set_snapshot(t->ro, NULL);
    eng_lockset_init(&t->reads);
    eng_lockset_init(&t->writes);
    return t;
}

static void space_release(struct eng_txn *t);

void eng_txn_free(struct eng_txn *t)
{
    if (t == NULL)
        return;
    struct eng *e = t->e;
    space_release(t);
    if (t->snap != NULL)
        rocksdb_release_snapshot(e->db, t->snap);
    t->snap = NULL;
    for (int i = 0; i < t->nold; i++) {
        rocksdb_readoptions_destroy(t->old_ros[i]);
        if (t->old_snaps[i] != NULL)
            rocksdb_release_snapshot(e->db, t->old_snaps[i]);
    }
    cm_free(t->old_snaps);
    cm_free(t->old_ros);
    t->old_snaps = NULL;
    t->old_ros = NULL;
    t->nold = 0;
    eng_lockset_deinit(&t->reads);
    eng_lockset_deinit(&t->writes);
    /* Kept for the next transaction unless its batch grew large. */
    size_t size = 0;
    rocksdb_writebatch_wi_data(t->wb, &size);
    bool keep = size <= TXN_SPARE_MAX_BYTES;
    if (keep) {
        rocksdb_writebatch_wi_clear(t->wb);
        t->key.len = t->val.len = t->ukeys.len = t->log.len = 0;
        cm_buf_shrink(&t->log, TXN_SPARE_MAX_BYTES);
        cm_buf_shrink(&t->key, TXN_SPARE_MAX_BYTES);
        cm_buf_shrink(&t->val, TXN_SPARE_MAX_BYTES);
        cm_buf_shrink(&t->ukeys, TXN_SPARE_MAX_BYTES);
        pthread_mutex_lock(&e->spare_lock);
        keep = e->nspares < TXN_SPARES;
        if (keep)
            e->spares[e->nspares++] = t;
        pthread_mutex_unlock(&e->spare_lock);
    }
    if (!keep)
        txn_destroy(t);
}

/* A read of t meets a pending write (see eng_txn_set_pending): before t read
 * anything, the batch is applied and t begins again from the state after it (its
 * own buffered writes stay); afterwards, t is marked. Returns whether it is marked. */
static bool txn_pending_hit(struct eng_txn *t)
{
    if (t->apply != NULL && t->reads.n == 0 && t->snap == NULL && !t->cache_reads) {
        t->apply(t->apply_ud);
        if (eng_batch_count(t->pending) == 0) {
            t->start_seq = atomic_load(&t->e->commit_seq);
            return false;
        }
    }
    t->pending_hit = true;
    return true;
}

/* Whether key has a write pending in t's thread's batch (marks t: see
 * eng_txn_set_pending). */
static bool txn_pending(struct eng_txn *t, const char *key, size_t klen)
{
    if (t->pending == NULL || eng_batch_count(t->pending) == 0 ||
        !eng_batch_touches(t->pending, stripe_of(key, klen)))
        return false;
    return txn_pending_hit(t);
}

/* A read through the value cache (the current state, see eng_get_at) of a key t has
 * not written. The value can be newer than t's snapshot; then the write that made it
 * marked the key's stripe after t began, and t's validation at commit fails (which
 * read-only transactions that read here do too, see cache_reads). Returns 0 or
 * CM_ENOTFOUND (a hit), 1 (not cached: read the snapshot) or an error. */
static int txn_cache_get(struct eng_txn *t, const char *key, size_t klen, int64_t now_ms,
                         struct eng_item *it, struct cm_err *err)
{
    struct eng *e = t->e;
    if (e->vcache == NULL || t->writes.n > 16)
        return 1;
    unsigned st = stripe_of(key, klen);
    for (unsigned i = 0; i < t->writes.n; i++)
        if (t->writes.stripes[i] == st)
            return 1; /* perhaps its own write: the write batch has it */
    int rc = cache_hit(e, eng__key_hash(key, klen), key, klen, now_ms, it, err);
    if (rc <= 0)
        t->cache_reads = true;
    return rc;
}

static const char pending_msg[] = "a key read by the call has a write pending in this "
                                  "connection's pipeline; the call runs again";

/* t's snapshot, taken at its first use. Taken after t began (start_seq), it can hold
 * writes newer than start_seq; those marked their stripes after start_seq was read,
 * so t's validation fails if it read them, as for values read from the cache. A
 * snapshot is one consistent state whenever it is taken. */
static const rocksdb_snapshot_t *txn_snap(struct eng_txn *t)
{
    if (t->snap == NULL) {
        t->snap = rocksdb_create_snapshot(t->e->db);
        rocksdb_readoptions_set_snapshot(t->ro, t->snap);
    }
    return t->snap;
}

int eng_txn_note_read(struct eng_txn *t, const char *key, size_t klen)
{
    if (txn_pending(t, key, klen))
        return CM_ECONFLICT;
    return eng_lockset_add(t->e, &t->reads, key, klen);
}

int eng_txn_get(struct eng_txn *t, const char *key, size_t klen, int64_t now_ms,
                struct eng_item *it, struct cm_err *err)
{
    memset(it, 0, sizeof(*it));
    if (txn_pending(t, key, klen))
        return cm_err_set(err, CM_ECONFLICT, pending_msg);
    if (eng_lockset_add(t->e, &t->reads, key, klen) != 0 || eng_encode_key(&t->key, key, klen) != 0)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    char *rerr = NULL;
    if (fault_hit(t->e, ENG_FAULT_READ, &rerr))
        return rocks_err(err, rerr, "read failed");
    int rc = txn_cache_get(t, key, klen, now_ms, it, err);
    if (rc <= 0)
        return rc;
    size_t n;
    txn_snap(t);
    char *v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(t->wb, t->e->db, t->ro,
                                                             t->e->cf[CF_DATA], t->key.p,
                                                             t->key.len, &n, &rerr);
    if (rerr != NULL)
        return rocks_err(err, rerr, "read failed");
    if (v == NULL)
        return CM_ENOTFOUND;
    if (eng_decode_value(v, n, it) != 0) {
        rocksdb_free(v);
        memset(it, 0, sizeof(*it));
        return cm_err_set(err, CM_EIO, "corrupt value stored for key");
    }
    if (it->expire_ms != 0 && it->expire_ms <= now_ms) {
        int64_t exp = it->expire_ms;
        rocksdb_free(v);
        memset(it, 0, sizeof(*it));
        it->expire_ms = exp;
        return CM_ENOTFOUND;
    }
    it->owned = v;
    return 0;
}

/* Appends a write to t's log (see struct eng_txn). */
static int txn_log(struct eng_txn *t, char op, enum eng_type type, int64_t expire_ms,
                   const char *key, size_t klen, const void *val, size_t vlen)
{
    if (t->log_off)
        return 0;
    size_t n = 18 + klen + vlen;
    if (t->log.len + n > TXN_LOG_MAX) {
        t->log_off = true;
        t->log.len = 0;
        return 0;
    }
    if (cm_buf_reserve(&t->log, n) != 0)
        return CM_ENOMEM;
    char *p = t->log.p + t->log.len;
    uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
    p[0] = op;
    p[1] = (char)type;
    memcpy(p + 2, &expire_ms, 8);
    memcpy(p + 10, &kl, 4);
    memcpy(p + 14, &vl, 4);
    memcpy(p + 18, key, klen);
    if (vlen > 0)
        memcpy(p + 18 + klen, val, vlen);
    t->log.len += n;
    return 0;
}

int eng_txn_put(struct eng_txn *t, const char *key, size_t klen, enum eng_type type,
                int64_t expire_ms, const void *val, size_t vlen)
{
    if (eng_lockset_add(t->e, &t->writes, key, klen) != 0 ||
        eng_encode_key(&t->key, key, klen) != 0 ||
        eng_encode_value(&t->val, type, expire_ms, val, vlen) != 0 ||
        note_key(&t->ukeys, key, klen) != 0 ||
        txn_log(t, 'P', type, expire_ms, key, klen, val, vlen) != 0)
        return CM_ENOMEM;
    slot_mark(t->e, pkey_slot(t->key.p)); /* its own iterators see it */
    rocksdb_writebatch_wi_put_cf(t->wb, t->e->cf[CF_DATA], t->key.p, t->key.len, t->val.p,
                                 t->val.len);
    if (expire_ms > 0) {
        char h[8];
        put_be64(h, (uint64_t)expire_ms);
        const char *parts[2] = {h, t->key.p};
        size_t lens[2] = {8, t->key.len};
        rocksdb_writebatch_wi_putv_cf(t->wb, t->e->cf[CF_EXPIRE], 2, parts, lens, 0, NULL, NULL);
    }
    return 0;
}

int eng_txn_del(struct eng_txn *t, const char *key, size_t klen)
{
    if (eng_lockset_add(t->e, &t->writes, key, klen) != 0 ||
        eng_encode_key(&t->key, key, klen) != 0 || note_key(&t->ukeys, key, klen) != 0 ||
        txn_log(t, 'D', ENG_T_STRING, 0, key, klen, NULL, 0) != 0)
        return CM_ENOMEM;
    rocksdb_writebatch_wi_delete_cf(t->wb, t->e->cf[CF_DATA], t->key.p, t->key.len);
    return 0;
}

size_t eng_txn_write_count(const struct eng_txn *t)
{
    return (size_t)rocksdb_writebatch_wi_count(t->wb);
}

size_t eng_txn_write_bytes(const struct eng_txn *t)
{
    size_t n = 0;
    rocksdb_writebatch_wi_data(t->wb, &n);
    return n;
}

int eng_txn_commit(struct eng_txn *t, struct cm_err *err)
{
    struct eng *e = t->e;
    if (t->pending_hit) /* it read around a pending write: nothing applies, run again */
        return cm_err_set(err, CM_ECONFLICT, pending_msg);
    if (rocksdb_writebatch_wi_count(t->wb) == 0 && !t->cache_reads)
        return 0; /* read-only: the snapshot was a consistent view, nothing to apply */
    if (rocksdb_writebatch_wi_count(t->wb) == 0) /* it read the current state too */
        return eng_txn_check(t, err);
    struct eng_lockset all;
    eng_lockset_init(&all);
    int rc = 0;
    for (unsigned i = 0; i < t->reads.n && rc == 0; i++)
        rc = eng_lockset_add_stripe(&all, t->reads.stripes[i]);
    for (unsigned i = 0; i < t->writes.n && rc == 0; i++)
        rc = eng_lockset_add_stripe(&all, t->writes.stripes[i]);
    if (rc != 0) {
        eng_lockset_deinit(&all);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    if (!t->held)
        eng_lockset_lock(e, &all);
    for (unsigned i = 0; i < t->reads.n; i++)
        if (e->stripe_seq[t->reads.stripes[i]] > t->start_seq) {
            rc = cm_err_set(err, CM_ECONFLICT, "a key read by the transaction was written");
            goto out;
        }
    char *rerr = NULL;
    pthread_rwlock_rdlock(&e->watch_lock);
    int w = watch_check(e, &t->ukeys, err);
    if (w < 0) {
        pthread_rwlock_unlock(&e->watch_lock);
        rc = w;
        goto out;
    }
    slot_remark(e, t->slot_gen, &t->ukeys);
    write_enter(e);
    if (!write_refused(e, &rerr))
        rocksdb_write_writebatch_wi(e->db, e->wopts, t->wb, &rerr);
    write_result(e, rerr);
    cache_drop_keys(e, &t->ukeys);
    if (rerr == NULL && w > 0)
        watch_record(e, &t->ukeys);
    pthread_rwlock_unlock(&e->watch_lock);
    write_leave(e, rerr == NULL);
    if (rerr != NULL) {
        rc = rocks_err(err, rerr, "write failed");
        goto out;
    }
    atomic_fetch_add_explicit(&e->n_writes, 1, memory_order_relaxed);
    eng_lockset_mark_written(e, &t->writes);
out:
    if (!t->held)
        eng_lockset_unlock(e, &all);
    eng_lockset_deinit(&all);
    return rc;
}

void eng_txn_set_pending(struct eng_txn *t, const struct eng_batch *b, void (*apply)(void *),
                         void *ud)
{
    t->pending = b;
    t->apply = apply;
    t->apply_ud = ud;
}

bool eng_txn_pending_hit(const struct eng_txn *t)
{
    return t->pending_hit;
}

bool eng_txn_pending_any(struct eng_txn *t)
{
    if (t->pending == NULL || eng_batch_count(t->pending) == 0)
        return false;
    return txn_pending_hit(t);
}

int eng_txn_stripes(const struct eng_txn *t, struct eng_lockset *ls)
{
    for (unsigned i = 0; i < t->reads.n; i++)
        if (eng_lockset_add_stripe(ls, t->reads.stripes[i]) != 0)
            return CM_ENOMEM;
    for (unsigned i = 0; i < t->writes.n; i++)
        if (eng_lockset_add_stripe(ls, t->writes.stripes[i]) != 0)
            return CM_ENOMEM;
    eng_lockset_normalize(ls);
    return 0;
}

bool eng_txn_must_validate(const struct eng_txn *t)
{
    return t->cache_reads || rocksdb_writebatch_wi_count(t->wb) > 0;
}

int eng_txn_validate(struct eng_txn *t, struct cm_err *err)
{
    struct eng *e = t->e;
    if (t->pending_hit)
        return cm_err_set(err, CM_ECONFLICT, pending_msg);
    for (unsigned i = 0; i < t->reads.n; i++)
        if (e->stripe_seq[t->reads.stripes[i]] > t->start_seq)
            return cm_err_set(err, CM_ECONFLICT, "a key read by the transaction was written");
    return 0;
}

bool eng_txn_cache_reads(const struct eng_txn *t)
{
    return t->cache_reads;
}

int eng_txn_check(struct eng_txn *t, struct cm_err *err)
{
    if (t->held)
        return eng_txn_validate(t, err);
    eng_lockset_lock(t->e, &t->reads);
    int rc = eng_txn_validate(t, err);
    eng_lockset_unlock(t->e, &t->reads);
    return rc;
}

void eng_txn_set_held(struct eng_txn *t, bool held)
{
    t->held = held;
}

bool eng_txn_joinable(const struct eng_txn *t)
{
    return !t->log_off && t->nold == 0;
}

int eng_txn_commit_into(struct eng_txn *t, struct eng_batch *b, struct cm_err *err)
{
    if (t->log_off)
        return cm_err_set(err, CM_ENOMEM, "transaction too large to join a batch");
    int rc = eng_txn_validate(t, err);
    if (rc != 0)
        return rc;
    eng_batch_savepoint(b);
    for (size_t off = 0; off < t->log.len;) {
        const char *p = t->log.p + off;
        int64_t exp;
        uint32_t kl, vl;
        memcpy(&exp, p + 2, 8);
        memcpy(&kl, p + 10, 4);
        memcpy(&vl, p + 14, 4);
        if (p[0] == 'P')
            rc = eng_batch_put(b, p + 18, kl, (enum eng_type)p[1], exp, p + 18 + kl, vl);
        else
            rc = batch_del(b, p + 18, kl);
        if (rc != 0) {
            eng_batch_rollback(b);
            return cm_err_set(err, CM_ENOMEM, "out of memory");
        }
        off += 18 + (size_t)kl + vl;
    }
    return 0;
}

int eng_txn_checkpoint(struct eng_txn *t, struct cm_err *err)
{
    struct eng *e = t->e;
    const rocksdb_snapshot_t **snaps = cm_realloc(t->old_snaps, (size_t)(t->nold + 1) * sizeof(*snaps));
    if (snaps == NULL)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    t->old_snaps = snaps;
    rocksdb_readoptions_t **ros = cm_realloc(t->old_ros, (size_t)(t->nold + 1) * sizeof(*ros));
    if (ros == NULL)
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    t->old_ros = ros;
    int rc = eng_txn_commit(t, err);
    if (rc != 0)
        return rc;
    space_release(t);
    rocksdb_writebatch_wi_clear(t->wb);
    t->ukeys.len = 0;
    t->log.len = 0;
    t->cache_reads = false;
    eng_lockset_deinit(&t->reads);
    eng_lockset_deinit(&t->writes);
    t->old_snaps[t->nold] = t->snap;
    t->old_ros[t->nold] = t->ro;
    t->nold++;
    t->start_seq = atomic_load(&e->commit_seq);
    t->snap = NULL;
    t->ro = rocksdb_readoptions_create();
    return 0;
}

/* ---- Iteration ----------------------------------------------------------------------------------- */

struct eng_iter *eng_iter_new(struct eng *e, struct eng_txn *t, int flags, unsigned slot_lo,
                              unsigned slot_hi, const char *after, size_t after_len)
{
    struct eng_iter *it = cm_calloc(1, sizeof(*it));
    if (it == NULL)
        return NULL;
    unsigned end = slot_hi + 1;
    it->e = e;
    it->slot = slot_lo;
    it->slot_hi = slot_hi;
    it->lo[0] = (char)(slot_lo >> 8);
    it->lo[1] = (char)(slot_lo & 0xff);
    it->hi[0] = (char)(end >> 8);
    it->hi[1] = (char)(end & 0xff);
    if (after != NULL && (it->after = cm_memdup(after, after_len)) == NULL) {
        cm_free(it);
        return NULL;
    }
    it->after_len = after_len;
    if (t != NULL) {
        eng_txn_pending_any(t); /* it may meet a pending write: the call runs again */
        txn_snap(t);
    }
    /* Read before the snapshot (the transaction's, see txn_snap, or the one the
     * RocksDB iterator takes when created): a clear that the snapshot misses changes
     * it. */
    it->slot_gen = t != NULL ? t->slot_gen : atomic_load(&e->slot_gen);
    it->skip_empty = (it->slot_gen & 1) == 0;
    it->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_prefix_same_as_start(it->ro, 1);
    rocksdb_readoptions_set_fill_cache(it->ro, (flags & ENG_ITER_FILL_CACHE) != 0);
    if (t != NULL)
        rocksdb_readoptions_set_snapshot(it->ro, t->snap);
    rocksdb_iterator_t *base = rocksdb_create_iterator_cf(e->db, it->ro, e->cf[CF_DATA]);
    it->it = t != NULL && (flags & ENG_ITER_OWN_WRITES)
                 ? rocksdb_writebatch_wi_create_iterator_with_base_cf(t->wb, base, e->cf[CF_DATA])
                 : base;
    return it;
}

void eng_iter_seek(struct eng_iter *it, const char *pos, size_t len)
{
    it->started = true;
    if (len >= 2)
        it->slot = (unsigned)((uint8_t)pos[0] << 8 | (uint8_t)pos[1]);
    rocksdb_iter_seek(it->it, pos, len);
    it->reseeked = true;
}

void eng_iter_free(struct eng_iter *it)
{
    if (it == NULL)
        return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    cm_free(it->after);
    cm_free(it->seek);
    cm_free(it);
}

int eng_iter_set_prefix(struct eng_iter *it, const char *prefix, size_t len)
{
    cm_free(it->seek);
    it->seek = NULL;
    it->seek_len = 0;
    if (len == 0)
        return 0;
    if ((it->seek = cm_malloc(len + 2)) == NULL)
        return CM_ENOMEM;
    memcpy(it->seek + 2, prefix, len);
    it->seek_len = len + 2;
    return 0;
}

const char *eng_iter_pos(struct eng_iter *it, size_t *len)
{
    *len = it->pos_len;
    return it->pos;
}

/* Positions at the start of slot (at its first key with the prefix, if one is set),
 * or of the first slot after it that may hold keys; past slot_hi, the iterator is left
 * at the end (not valid, it->slot = slot_hi). */
static void seek_slot(struct eng_iter *it, unsigned slot)
{
    if (it->skip_empty) {
        unsigned next = slot_next_marked(it->e, slot, it->slot_hi);
        /* The bits read are trusted only if no clear began since the snapshot. */
        if (atomic_load(&it->e->slot_gen) != it->slot_gen) {
            it->skip_empty = false;
        } else if (next > it->slot_hi) {
            it->slot = it->slot_hi;
            char end[2] = {(char)0xff, (char)0xff};
            rocksdb_iter_seek(it->it, end, 2); /* prefix 0xffff: no such slot, invalid */
            return;
        } else {
            slot = next;
        }
    }
    char p[2] = {(char)(slot >> 8), (char)(slot & 0xff)};
    it->slot = slot;
    if (it->seek != NULL) {
        memcpy(it->seek, p, 2);
        rocksdb_iter_seek(it->it, it->seek, it->seek_len);
        return;
    }
    rocksdb_iter_seek(it->it, p, 2);
}

int eng_iter_next(struct eng_iter *it, int64_t now_ms, const char **key, size_t *klen,
                  struct eng_item *item, struct cm_err *err)
{
    if (!it->started) {
        it->started = true;
        if (it->after != NULL && it->after_len >= 2) {
            it->slot = (unsigned)((uint8_t)it->after[0] << 8 | (uint8_t)it->after[1]);
            rocksdb_iter_seek(it->it, it->after, it->after_len);
            size_t kl;
            if (rocksdb_iter_valid(it->it)) {
                const char *k = rocksdb_iter_key(it->it, &kl);
                if (kl == it->after_len && memcmp(k, it->after, kl) == 0)
                    rocksdb_iter_next(it->it);
            }
        } else {
            seek_slot(it, it->slot);
        }
    } else if (it->reseeked) {
        it->reseeked = false;
    } else {
        rocksdb_iter_next(it->it);
    }
    for (;;) {
        if (!rocksdb_iter_valid(it->it)) {
            char *rerr = NULL;
            rocksdb_iter_get_error(it->it, &rerr);
            if (rerr != NULL)
                return rocks_err(err, rerr, "scan failed");
            if (it->slot >= it->slot_hi)
                return 0;
            seek_slot(it, it->slot + 1); /* this slot is done: the next one */
            continue;
        }
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it->it, &kl);
        if (kl < 2) {
            rocksdb_iter_next(it->it);
            continue;
        }
        unsigned slot = (unsigned)((uint8_t)k[0] << 8 | (uint8_t)k[1]);
        if (slot > it->slot_hi)
            return 0;
        if (slot != it->slot) {
            /* A transaction's own writes can run ahead into a later slot: seek there,
             * so the stored keys of that slot are merged in too. */
            if (slot < it->slot) {
                rocksdb_iter_next(it->it);
                continue;
            }
            seek_slot(it, slot);
            continue;
        }
        if (it->seek != NULL) {
            /* Keys of a slot are sorted: before the prefix, seek to it; past it, the
             * next slot. */
            size_t pl = it->seek_len - 2, n = kl - 2 < pl ? kl - 2 : pl;
            int cmp = memcmp(k + 2, it->seek + 2, n);
            if (cmp < 0 || (cmp == 0 && kl - 2 < pl)) {
                seek_slot(it, slot);
                continue;
            }
            if (cmp > 0) {
                if (slot >= it->slot_hi)
                    return 0;
                seek_slot(it, slot + 1);
                continue;
            }
        }
        const char *v = rocksdb_iter_value(it->it, &vl);
        memset(item, 0, sizeof(*item));
        if (eng_decode_value(v, vl, item) != 0 ||
            (item->expire_ms != 0 && item->expire_ms <= now_ms)) {
            rocksdb_iter_next(it->it);
            continue;
        }
        it->pos = k;
        it->pos_len = kl;
        *key = k + 2;
        *klen = kl - 2;
        return 1;
    }
}

int eng_scan(struct eng *e, struct eng_txn *t, unsigned slot_lo, unsigned slot_hi,
             const char *after, size_t after_len, size_t max_visit, int64_t now_ms, eng_key_fn fn,
             void *ud, char **next_pos, size_t *next_len, struct cm_err *err)
{
    return eng_scan_prefix(e, t, slot_lo, slot_hi, NULL, 0, after, after_len, max_visit, now_ms,
                           fn, ud, next_pos, next_len, err);
}

int eng_scan_prefix(struct eng *e, struct eng_txn *t, unsigned slot_lo, unsigned slot_hi,
                    const char *prefix, size_t plen, const char *after, size_t after_len,
                    size_t max_visit, int64_t now_ms, eng_key_fn fn, void *ud, char **next_pos,
                    size_t *next_len, struct cm_err *err)
{
    struct eng_iter *it = eng_iter_new(e, t, ENG_ITER_OWN_WRITES, slot_lo, slot_hi, after, after_len);
    *next_pos = NULL;
    *next_len = 0;
    if (it == NULL || eng_iter_set_prefix(it, prefix, plen) != 0) {
        eng_iter_free(it);
        return cm_err_set(err, CM_ENOMEM, "out of memory");
    }
    size_t visited = 0;
    int rc;
    const char *key;
    size_t klen;
    struct eng_item item;
    while ((rc = eng_iter_next(it, now_ms, &key, &klen, &item, err)) == 1) {
        rc = fn(ud, key, klen, &item);
        if (rc != 0)
            break;
        if (max_visit != 0 && ++visited == max_visit) {
            size_t pl;
            const char *pos = eng_iter_pos(it, &pl);
            char *copy = cm_memdup(pos, pl);
            /* Resume after this key, unless nothing follows it. */
            rc = eng_iter_next(it, now_ms, &key, &klen, &item, err);
            if (rc == 1 && copy != NULL) {
                *next_pos = copy;
                *next_len = pl;
            } else {
                cm_free(copy);
            }
            rc = rc < 0 ? rc : 0;
            break;
        }
    }
    eng_iter_free(it);
    return rc;
}

static int count_fn(void *ud, const char *key, size_t klen, const struct eng_item *it)
{
    (*(long long *)ud)++;
    return 0;
}

long long eng_count_keys(struct eng *e, struct eng_txn *t, unsigned slot_lo, unsigned slot_hi,
                         int64_t now_ms)
{
    long long n = 0;
    char *next;
    size_t nl;
    if (eng_scan(e, t, slot_lo, slot_hi, NULL, 0, 0, now_ms, count_fn, &n, &next, &nl, NULL) < 0)
        return -1;
    return n;
}

int eng_flush_all(struct eng *e, struct cm_err *err)
{
    char *rerr = NULL;
    char lo[2] = {0, 0}, hi[2] = {0x40, 0};
    char elo[1] = {0}, ehi[9];
    memset(ehi, 0xff, sizeof(ehi));
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range_cf(wb, e->cf[CF_DATA], lo, 2, hi, 2);
    rocksdb_writebatch_delete_range_cf(wb, e->cf[CF_EXPIRE], elo, 0, ehi, 9);
    pthread_rwlock_wrlock(&e->watch_lock); /* for slot_bits: no write half done */
    if (e->watch_on) {
        pthread_mutex_lock(&e->watch_mu);
        e->watch_lost = true; /* a migration cannot replay a flush: it fails */
        pthread_mutex_unlock(&e->watch_mu);
    }
    slot_clear_begin(e, 0, CM_SLOTS - 1);
    write_enter(e);
    db_write(e, wb, &rerr);
    slot_clear_end(e, 0, CM_SLOTS - 1, rerr != NULL);
    if (e->vcache != NULL)
        eng__cache_clear(e->vcache);
    pthread_rwlock_unlock(&e->watch_lock);
    rocksdb_writebatch_destroy(wb);
    write_leave(e, rerr == NULL);
    if (rerr != NULL)
        return rocks_err(err, rerr, "flush failed");
    atomic_fetch_add(&e->n_flushes, 1);
    /* Every transaction that read anything before the flush must now conflict. */
    for (unsigned i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&e->stripes[i]);
        mark_stripe(e, i);
        pthread_mutex_unlock(&e->stripes[i]);
    }
    return 0;
}

static int first_fn(void *ud, const char *key, size_t klen, const struct eng_item *it)
{
    struct cm_buf *out = ud;
    if (cm_buf_append(out, key, klen) != 0)
        return CM_ENOMEM;
    return 1;
}

int eng_random_key(struct eng *e, int64_t now_ms, struct cm_buf *out, struct cm_err *err)
{
    out->len = 0;
    unsigned start = (unsigned)random() & (CM_SLOTS - 1);
    char *next;
    size_t nl;
    int rc = eng_scan(e, NULL, start, CM_SLOTS - 1, NULL, 0, 0, now_ms, first_fn, out, &next, &nl, err);
    if (rc == 0 && start > 0)
        rc = eng_scan(e, NULL, 0, start - 1, NULL, 0, 0, now_ms, first_fn, out, &next, &nl, err);
    if (rc < 0)
        return rc;
    return rc == 1 ? 0 : CM_ENOTFOUND;
}

/* ---- Expiry ---------------------------------------------------------------------------------------- */

int eng_purge_expired(struct eng *e, const char *key, size_t klen, int64_t now_ms,
                      struct cm_err *err)
{
    struct eng_item it;
    int deleted = 0;
    eng_lock_key(e, key, klen);
    int rc = eng_get(e, key, klen, now_ms, &it, err);
    if (rc == 0) {
        eng_item_release(&it);
    } else if (rc == CM_ENOTFOUND && it.expire_ms != 0) {
        struct eng_batch *b = eng_batch_new(e);
        if (b == NULL) {
            rc = CM_ENOMEM;
        } else {
            eng_batch_del(b, key, klen);
            rc = eng_write(e, b, err);
            eng_batch_free(b);
            if (rc == 0) {
                mark_stripe(e, stripe_of(key, klen));
                deleted = 1;
                atomic_fetch_add_explicit(&e->n_expired, 1, memory_order_relaxed);
            }
        }
    }
    eng_unlock_key(e, key, klen);
    if (rc < 0 && rc != CM_ENOTFOUND)
        return rc;
    return deleted;
}

long eng_expire_cycle(struct eng *e, int64_t now_ms, long max, struct cm_err *err)
{
    char hi[8];
    put_be64(hi, (uint64_t)now_ms + 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, hi, 8);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->db, ro, e->cf[CF_EXPIRE]);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    long deleted = 0, seen = 0;
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && seen < max;
         rocksdb_iter_next(it), seen++) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        rocksdb_writebatch_clear(wb);
        rocksdb_writebatch_delete_cf(wb, e->cf[CF_EXPIRE], k, kl);
        if (kl >= 10) {
            int64_t when = (int64_t)get_be64(k);
            const char *ukey = k + 10;
            size_t ulen = kl - 10;
            eng_lock_key(e, ukey, ulen);
            struct eng_item item;
            int g = eng_get(e, ukey, ulen, now_ms, &item, NULL);
            if (g == 0)
                eng_item_release(&item); /* live: a newer write replaced the TTL */
            else if (g == CM_ENOTFOUND && item.expire_ms == when) {
                rocksdb_writebatch_delete_cf(wb, e->cf[CF_DATA], k + 8, kl - 8);
                deleted++;
            }
            char *rerr = NULL;
            write_enter(e);
            db_write(e, wb, &rerr);
            if (e->vcache != NULL)
                eng__cache_set(e->vcache, eng__key_hash(ukey, ulen), ukey, ulen, 0, NULL, 0);
            if (rerr == NULL)
                mark_stripe(e, stripe_of(ukey, ulen));
            eng_unlock_key(e, ukey, ulen);
            write_leave(e, rerr == NULL);
            if (rerr != NULL) {
                rc = rocks_err(err, rerr, "expire failed");
                break;
            }
        } else {
            char *rerr = NULL;
            write_enter(e);
            db_write(e, wb, &rerr);
            write_leave(e, rerr == NULL);
            rerr_free(rerr);
        }
    }
    rocksdb_writebatch_destroy(wb);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    atomic_fetch_add_explicit(&e->n_expired, (unsigned long long)deleted, memory_order_relaxed);
    return rc < 0 ? rc : deleted;
}

/* ---- Metadata ------------------------------------------------------------------------------------------ */

int eng_meta_get(struct eng *e, const char *key, size_t klen, struct cm_buf *out,
                 struct cm_err *err)
{
    char *rerr = NULL;
    size_t vl;
    out->len = 0;
    char *v = fault_hit(e, ENG_FAULT_READ, &rerr)
                  ? NULL
                  : rocksdb_get_cf(e->db, e->ropts, e->cf[CF_META], key, klen, &vl, &rerr);
    if (rerr != NULL)
        return rocks_err(err, rerr, "metadata read failed");
    if (v == NULL)
        return CM_ENOTFOUND;
    int rc = cm_buf_append(out, v, vl);
    rocksdb_free(v);
    return rc;
}

int eng_meta_put(struct eng *e, const char *key, size_t klen, const void *val, size_t vlen,
                 struct cm_err *err)
{
    char *rerr = NULL;
    write_enter(e);
    if (!write_refused(e, &rerr))
        rocksdb_put_cf(e->db, e->wopts, e->cf[CF_META], key, klen, val, vlen, &rerr);
    write_result(e, rerr);
    write_leave(e, rerr == NULL);
    if (rerr != NULL)
        return rocks_err(err, rerr, "metadata write failed");
    return eng_sync(e, err) != 0 ? CM_ESYNC : 0; /* metadata is rare and must survive */
}

int eng_meta_del(struct eng *e, const char *key, size_t klen, struct cm_err *err)
{
    char *rerr = NULL;
    write_enter(e);
    if (!write_refused(e, &rerr))
        rocksdb_delete_cf(e->db, e->wopts, e->cf[CF_META], key, klen, &rerr);
    write_result(e, rerr);
    write_leave(e, rerr == NULL);
    if (rerr != NULL)
        return rocks_err(err, rerr, "metadata delete failed");
    return eng_sync(e, err) != 0 ? CM_ESYNC : 0;
}

int eng_meta_scan(struct eng *e, const char *prefix, size_t plen, eng_meta_fn fn, void *ud,
                  struct cm_err *err)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->db, e->ropts, e->cf[CF_META]);
    int rc = 0;
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < plen || memcmp(k, prefix, plen) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vl);
        if ((rc = fn(ud, k, kl, v, vl)) != 0)
            break;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr != NULL)
        rc = rocks_err(err, rerr, "metadata scan failed");
    rocksdb_iter_destroy(it);
    return rc;
}

int eng_compact(struct eng *e, struct cm_err *err)
{
    char *rerr = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < NCF && rerr == NULL; i++)
        rocksdb_flush_cf(e->db, fo, e->cf[i], &rerr);
    rocksdb_flushoptions_destroy(fo);
    if (rerr != NULL)
        return rocks_err(err, rerr, "memtable flush failed");
    rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
    rocksdb_compactoptions_set_bottommost_level_compaction(co, 2 /* kForce */);
    for (int i = 0; i < NCF; i++)
        rocksdb_compact_range_cf_opt(e->db, e->cf[i], co, NULL, 0, NULL, 0);
    rocksdb_compactoptions_destroy(co);
    return 0;
}

/* ---- Statistics ------------------------------------------------------------------------------------------ */

static unsigned long long prop(struct eng *e, const char *name)
{
    char *v = rocksdb_property_value_cf(e->db, e->cf[CF_DATA], name);
    unsigned long long n = v ? strtoull(v, NULL, 10) : 0;
    rocksdb_free(v);
    return n;
}

void eng_get_stats(struct eng *e, struct eng_stats *st)
{
    st->estimated_keys = prop(e, "rocksdb.estimate-num-keys");
    st->sst_bytes = prop(e, "rocksdb.total-sst-files-size");
    st->memtable_bytes = prop(e, "rocksdb.cur-size-all-mem-tables");
    st->block_cache_bytes = rocksdb_cache_get_usage(e->cache);
    st->value_cache_bytes = eng__cache_bytes(e->vcache);
    st->expired_keys = atomic_load(&e->n_expired);
    st->writes = atomic_load(&e->n_writes);
    st->syncs = atomic_load(&e->n_syncs);
    st->flushes = atomic_load(&e->n_flushes);
    st->bg_errors = eng_background_errors(e);
    st->writes_refused = atomic_load(&e->wal_poisoned);
    st->space_refused = atomic_load(&e->n_space_refused);
}

void eng_set_space(struct eng *e, long long free_bytes, long long min_bytes)
{
    /* What was written before the measure is in free_bytes; what transactions hold
     * staged is not yet. (A write let through as the measure is taken may be counted
     * in neither: a worker's batch is written within its loop iteration. The count is
     * set before the measure: a check in between errs on letting one write through,
     * not on refusing one.) */
    atomic_store(&e->space_written, atomic_load(&e->space_pending));
    atomic_store(&e->space_min, min_bytes);
    /* What the memtables hold is in the WAL, and their flushes will write it again to
     * table and blob files before the WAL goes: not free space for new writes. */
    if (free_bytes > 0) {
        long long mem = (long long)prop(e, "rocksdb.cur-size-all-mem-tables");
        free_bytes = free_bytes > mem ? free_bytes - mem : 0;
    }
    atomic_store(&e->space_free, free_bytes);
}

void eng_space_release(struct eng *e, long long *held)
{
    if (*held > 0)
        atomic_fetch_sub(&e->space_pending, *held);
    *held = 0;
}

/* t no longer holds what it got through eng_space_refuses staged: written or dropped. */
static void space_release(struct eng_txn *t)
{
    eng_space_release(t->e, &t->space);
}

long long eng_space_margin(struct eng *e)
{
    long long m = atomic_load(&e->space_min), f = atomic_load(&e->space_free);
    if (m <= 0 || f < 0)
        return LLONG_MAX;
    return f - atomic_load(&e->space_written) - m;
}

bool eng_space_low(struct eng *e, long long *free_bytes, long long *min_bytes)
{
    long long f = atomic_load(&e->space_free), m = atomic_load(&e->space_min);
    if (free_bytes != NULL)
        *free_bytes = f;
    if (min_bytes != NULL)
        *min_bytes = m;
    return f >= 0 && f < m;
}

#define SPACE_FAR (1ll << 30)
#define SPACE_SMALL (64ll << 10)

bool eng_space_refuses(struct eng *e, struct eng_txn *t, long long *held, size_t need,
                       char *msg, size_t cap)
{
    /* A transaction's writes are held until it ends, maybe seconds later: counted even
     * when small and far above the threshold. */
    bool always = t != NULL;
    if (t != NULL)
        held = &t->space;
    long long m = atomic_load(&e->space_min);
    if (m <= 0)
        return false;
    long long f = atomic_load(&e->space_free);
    if (f < 0)
        return false; /* not measured yet */
    /* A write takes its size twice: in the WAL and, when its memtable is flushed (at
     * once, for a batch larger than the memtable), in a table or blob file, before the
     * WAL file goes. Counted once, a pipeline of 1 GB with 1.1 GB to spare filled the
     * disk during the flush. (Once measured, the second copy is the memtables' size,
     * which eng_set_space takes off the free space.) */
    long long n = 2 * (need < (1ull << 40) ? (long long)need : 1ll << 40);
    long long w = atomic_load(&e->space_written);
    if (f >= m) {
        long long margin = f - m; /* >= 0; w and n are at most about 2^62 and 2^40 */
        /* Far above the threshold a small write outside a transaction is not counted
         * (the count is a write to a cache line that every such command on either
         * thread would share): going from SPACE_FAR above it to below between two
         * measures takes writing that much in small writes in a tick. Large writes
         * and a transaction's are always counted. */
        if (!always && (long long)need < SPACE_SMALL && margin - w - n > SPACE_FAR)
            return false;
        /* Counted when let through, not when written (pending first, so that a
         * measure taken meanwhile carries them over). Two threads must not both take
         * the same margin. */
        if (held != NULL)
            atomic_fetch_add(&e->space_pending, n);
        while (w + n <= margin)
            if (atomic_compare_exchange_weak(&e->space_written, &w, w + n)) {
                if (held != NULL)
                    *held += n;
                return false;
            }
        if (held != NULL)
            atomic_fetch_sub(&e->space_pending, n);
    }
    atomic_fetch_add_explicit(&e->n_space_refused, 1, memory_order_relaxed);
    if (f < m)
        snprintf(msg, cap,
                 "disk space low: %.1f MB free, below min-free-disk (%.1f MB); commands that "
                 "add data are refused until space is freed",
                 (double)f / (1 << 20), (double)m / (1 << 20));
    else
        snprintf(msg, cap,
                 "disk space low: %.1f MB free when last measured, %.1f MB for the writes "
                 "since (not measured yet), this write (%.1f MB: its size in the WAL and in "
                 "a table file) would go below min-free-disk (%.1f MB)",
                 (double)f / (1 << 20), (double)w / (1 << 20), (double)n / (1 << 20),
                 (double)m / (1 << 20));
    return true;
}

unsigned long long eng_background_errors(struct eng *e)
{
    return prop(e, "rocksdb.background-errors"); /* counted on "default", CF_DATA */
}
