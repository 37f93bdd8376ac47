/* common.h - primitives shared by every eddy module and by the client library.
 *
 * Provides the error codes and fixed-size error message, the counting allocator
 * wrapper (with allocation-failure injection for tests), the growable byte buffer,
 * Redis Cluster key hashing, monotonic and wall clocks, and leveled logging.
 * Depends on libc only.
 */
#ifndef EDDY_COMMON_H
#define EDDY_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDDY_VERSION "0.1.0"

/* Error codes. Action functions return 0 or one of these (always negative). */
enum {
    CM_OK = 0,
    CM_ERR = -1,      /* generic failure, detail in the message */
    CM_ENOMEM = -2,   /* allocation failed */
    CM_EPROTO = -3,   /* protocol violation by the peer */
    CM_EIO = -4,      /* storage or socket I/O failed */
    CM_ENOTFOUND = -5,
    CM_EINVAL = -6,   /* bad argument from a caller or a user */
    CM_ELIMIT = -7,   /* a configured limit was exceeded */
    CM_ECONFLICT = -8, /* a transaction conflicted and may be retried */
    CM_EAGAIN = -9,    /* refused for now (a slot being migrated is fenced); retry */
    CM_ESYNC = -10     /* applied, but its WAL sync failed: it may not survive a crash */
};

/* Names a code ("out of memory"); the string is static. */
const char *cm_strerror(int code);

/* Detail for a failed call. Callers pass one optionally (NULL allowed); callees
 * fill it with cm_err_set. Nobody frees it. */
struct cm_err {
    int code;
    char msg[256];
};

/* Sets code and a printf-style message in err, if err is not NULL. Returns code so
 * that `return cm_err_set(err, CM_EIO, "...")` reads naturally. An argument may be
 * err->msg itself, to wrap the message already there. */
int cm_err_set(struct cm_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Allocation -------------------------------------------------------------
 * All heap memory of eddy goes through these, so that tests can count live
 * allocations and fail the Nth one. cm_malloc(0) returns a unique pointer. */
void *cm_malloc(size_t n);
void *cm_calloc(size_t count, size_t n);
void *cm_realloc(void *p, size_t n);
void cm_free(void *p);
char *cm_strdup(const char *s);
void *cm_memdup(const void *p, size_t n);
/* Makes the Nth allocation from now (1 = the next) fail and every later one succeed;
 * 0 disables. For tests. Not thread-safe with concurrent allocators. */
void cm_alloc_fail_at(long n);
/* Bytes currently allocated through cm_* (approximate: counts requested sizes). */
size_t cm_alloc_used(void);
/* Gives free heap memory back to the system (glibc's malloc_trim), one thread at a
 * time. Safe from any thread. */
void cm_malloc_trim(void);

/* ---- Growable byte buffer ----------------------------------------------------
 * A simple owned buffer. p is NULL when cap is 0. Append functions return 0 or
 * CM_ENOMEM and leave the buffer unchanged on failure. */
struct cm_buf {
    char *p;
    size_t len;
    size_t cap;
};

void cm_buf_init(struct cm_buf *b);
void cm_buf_deinit(struct cm_buf *b); /* frees the memory; the buffer is empty */
int cm_buf_reserve(struct cm_buf *b, size_t extra); /* room for extra more bytes */
int cm_buf_append(struct cm_buf *b, const void *p, size_t n);
int cm_buf_appendf(struct cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cm_buf_appendc(struct cm_buf *b, char c);
/* Removes the first n bytes (n <= len). */
void cm_buf_consume(struct cm_buf *b, size_t n);
/* Shrinks the allocation to at most keep bytes when it is empty and larger. */
void cm_buf_shrink(struct cm_buf *b, size_t keep);

/* ---- Key hashing (Redis Cluster) ---------------------------------------------- */
#define CM_SLOTS 16384
/* CRC16-CCITT (XModem), as in the Redis Cluster specification. */
uint16_t cm_crc16(const char *p, size_t n);
/* Slot of a key: CRC16 of the {hash tag} if it has a non-empty one, else of the
 * whole key, modulo 16384. */
unsigned cm_key_slot(const char *key, size_t n);

/* ---- SHA-1 (FIPS 180-4; common/sha1.c) ------------------------------------------------
 * For script ids, library versions and payload checksums, not for security. */
void cm_sha1(const void *p, size_t n, unsigned char out[20]);
void cm_sha1_hex(const void *p, size_t n, char out[41]); /* lowercase hex + NUL */

/* ---- Clocks ------------------------------------------------------------------- */
int64_t cm_now_ms(void);      /* wall clock, milliseconds since the epoch */
int64_t cm_now_us(void);      /* wall clock, microseconds since the epoch */
int64_t cm_mono_us(void);     /* monotonic clock, microseconds */

/* ---- Logging -------------------------------------------------------------------
 * One line per event: "pid:role dd Mon yyyy hh:mm:ss.mmm <level-char> message",
 * like Redis. Thread-safe (one write(2) per line). */
enum { CM_LOG_DEBUG, CM_LOG_VERBOSE, CM_LOG_NOTICE, CM_LOG_WARNING };
void cm_log_set_level(int level);
void cm_log_set_file(int fd);
int cm_log_level_parse(const char *name); /* -1 if unknown */
void cm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A rate limit for lines one client can cause at will (failed AUTH, failed writes on
 * a full disk): cm_log_allow is true for at most per_sec events a second, and then
 * *dropped is how many it refused since the last it allowed (-1 when it refuses).
 * Zero-initialised. */
struct cm_log_limit {
    _Atomic long long window; /* the second being counted */
    _Atomic int in_window;    /* events in it */
    _Atomic long long dropped;
};
bool cm_log_allow(struct cm_log_limit *l, int per_sec, long long *dropped);

/* ---- Strings ---------------------------------------------------------------------
 * Strict conversions in Redis's sense: the whole string must be a number with no
 * spaces; return 0 or CM_EINVAL. */
int cm_str_to_ll(const char *s, size_t n, long long *out);
int cm_str_to_double(const char *s, size_t n, double *out);
/* The same in long double precision (INCRBYFLOAT computes in it, as Redis does). */
int cm_str_to_ldouble(const char *s, size_t n, long double *out);
/* Formats a long long, returns the length. buf must hold 21 bytes. */
int cm_ll_to_str(char *buf, long long v);
/* Formats a double the way Redis does for INCRBYFLOAT (%.17Lg, no trailing zeros). */
int cm_double_to_str(char *buf, size_t cap, long double v);
/* Redis glob matching (*, ?, [..], \), case-sensitive unless nocase. */
bool cm_glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);
/* Case-insensitive compare of a counted string with a C string. */
bool cm_streq_ci(const char *s, size_t n, const char *lit);

/* ---- Sparse matrices (common/csr.c) -------------------------------------------------
 * The CSR encoding of eddy.vec (docs/VEC.md), read in place, and the kernels that run
 * over it: the server's eddy.vec matrices and a client computing the same thing call
 * the same code, so both get the same numbers. Little-endian hosts only. */
#define CM_CSR_MAGIC "EVm1"
#define CM_CSR_HEADER 16            /* magic, rows, cols, nnz */
#define CM_CSR_MAX ((size_t)1 << 27) /* rows, cols and nnz at most */
#define CM_GLM_KMAX 64              /* weight vectors of a softmax regression at most */

struct cm_csr {
    size_t rows, cols, nnz;
    const unsigned char *ptr; /* rows + 1 uint32: row r is entries ptr[r] .. ptr[r+1]-1 */
    const unsigned char *idx; /* nnz uint32, column indices 1..cols */
    const unsigned char *val; /* nnz float64 */
};

/* Bytes of an encoding of rows x nnz. */
size_t cm_csr_size(size_t rows, size_t nnz);
/* Writes the header of an encoding at p (the caller fills ptr, idx and val after it). */
void cm_csr_put_header(unsigned char *p, size_t rows, size_t cols, size_t nnz);
/* Validates an encoding of exactly len bytes (sizes, offsets, every index) and points
 * m into it. Returns 0, or CM_EINVAL with *why set to a static explanation. */
int cm_csr_parse(const void *p, size_t len, struct cm_csr *m, const char **why);
/* z[r] = sum of row r's val[k] * w[idx[k] - 1], r < rows, entries in order. */
void cm_csr_mul(const struct cm_csr *m, const double *w, double *z);
/* g[idx[k] - 1] += r[row] * val[k] for every entry (g += X^T r). */
void cm_csr_tmul(const struct cm_csr *m, const double *r, double *g);

/* Statistics of a regression pass: counts and loss sums of training and held-out rows. */
struct cm_glm_stats {
    long long ntr, corr, nte, tcorr;
    double loss, tloss;
};
/* One pass of logistic (K = 1; y in 0..1) or softmax (K >= 2; y in 0..K-1) regression
 * over the rows of m: for each row, the scores s_k = x . W[k], the cross-entropy loss
 * and the prediction (logistic: s > 0; softmax: the first largest score), added to st;
 * for rows with test[r] == 0 (or test NULL) also the loss gradient
 * G[k] += (p_k - [y == k]) x (logistic: G[0] += (sigmoid(s) - y) x). W[k] and G[k] hold
 * m->cols doubles. Returns 0, or CM_EINVAL (nothing added) if K or a label is out of
 * range. */
int cm_glm_grad(const struct cm_csr *m, int K, const double *const *W, double *const *G,
                const unsigned char *y, const unsigned char *test, struct cm_glm_stats *st);
/* The logistic loss of score z for label y (0 or 1); returns sigmoid(z). Computed
 * without overflow. */
double cm_logistic(double z, int y, double *loss);

#endif
