/* util.c - error names, key hashing, clocks, logging and strict string conversions
 * shared by the server and the client library. */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *cm_strerror(int code)
{
    switch (code) {
    case CM_OK: return "success";
    case CM_ERR: return "error";
    case CM_ENOMEM: return "out of memory";
    case CM_EPROTO: return "protocol error";
    case CM_EIO: return "I/O error";
    case CM_ENOTFOUND: return "not found";
    case CM_EINVAL: return "invalid argument";
    case CM_ELIMIT: return "limit exceeded";
    case CM_ECONFLICT: return "conflict";
    case CM_EAGAIN: return "try again";
    case CM_ESYNC: return "applied, not synced";
    }
    return "unknown error";
}

int cm_err_set(struct cm_err *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        /* Formatted aside first: an argument may be err->msg itself ("wrap: %s"). */
        char msg[sizeof(err->msg)];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        err->code = code;
        memcpy(err->msg, msg, sizeof(msg));
    }
    return code;
}

/* ---- CRC16 (XModem: poly 0x1021, init 0), table built once, on first use --------- */
static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int j = 0; j < 8; j++)
            c = (c & 0x8000) ? (uint16_t)((c << 1) ^ 0x1021) : (uint16_t)(c << 1);
        crc_table[i] = c;
    }
}

uint16_t cm_crc16(const char *p, size_t n)
{
    pthread_once(&crc_once, crc_init); /* threads racing to build it was a data race */
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ (uint8_t)p[i]) & 0xff]);
    return crc;
}

unsigned cm_key_slot(const char *key, size_t n)
{
    const char *open = memchr(key, '{', n);
    if (open != NULL) {
        size_t start = (size_t)(open - key) + 1;
        const char *close = memchr(key + start, '}', n - start);
        if (close != NULL && close > key + start)
            return cm_crc16(key + start, (size_t)(close - (key + start))) & (CM_SLOTS - 1);
    }
    return cm_crc16(key, n) & (CM_SLOTS - 1);
}

/* ---- Clocks -------------------------------------------------------------------- */
int64_t cm_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t cm_now_ms(void)
{
    return cm_now_us() / 1000;
}

int64_t cm_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- Logging ------------------------------------------------------------------- */
/* CONFIG SET loglevel changes the level while other threads log: atomics. */
static atomic_int log_level = CM_LOG_NOTICE;
static atomic_int log_fd = 2;

void cm_log_set_level(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

void cm_log_set_file(int fd)
{
    atomic_store_explicit(&log_fd, fd, memory_order_relaxed);
}

bool cm_log_allow(struct cm_log_limit *l, int per_sec, long long *dropped)
{
    long long sec = cm_mono_us() / 1000000, w = atomic_load(&l->window);
    if (w != sec && atomic_compare_exchange_strong(&l->window, &w, sec))
        atomic_store(&l->in_window, 0);
    if (atomic_fetch_add(&l->in_window, 1) >= per_sec) {
        atomic_fetch_add(&l->dropped, 1);
        *dropped = -1;
        return false;
    }
    *dropped = atomic_exchange(&l->dropped, 0);
    return true;
}

int cm_log_level_parse(const char *name)
{
    static const char *names[] = {"debug", "verbose", "notice", "warning"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

void cm_log(int level, const char *fmt, ...)
{
    if (level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%d:M ", (int)getpid());
    n += (int)strftime(line + n, sizeof(line) - (size_t)n, "%d %b %Y %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03d %c ", (int)(ts.tv_nsec / 1000000),
                  ".-*#"[level & 3]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(atomic_load_explicit(&log_fd, memory_order_relaxed), line, (size_t)n);
    (void)w;
}

/* ---- Strings ------------------------------------------------------------------- */
int cm_str_to_ll(const char *s, size_t n, long long *out)
{
    /* Like Redis's string2ll: digits only, an optional '-', no leading zeros, no
     * '+' or spaces, no overflow. */
    if (n == 0 || n > 20)
        return CM_EINVAL;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        if (++i == n)
            return CM_EINVAL;
    }
    if (s[i] == '0')
        return (n == 1) ? (*out = 0, 0) : CM_EINVAL;
    unsigned long long v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (ULLONG_MAX - d) / 10)
            return CM_EINVAL;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return CM_EINVAL;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return CM_EINVAL;
        *out = (long long)v;
    }
    return 0;
}

int cm_str_to_double(const char *s, size_t n, double *out)
{
    char buf[320];
    if (n == 0 || n >= sizeof(buf) || isspace((unsigned char)s[0]))
        return CM_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    /* Like Redis: overflow and underflow to zero are errors; so is a NUL inside s. */
    if (end != buf + n || isnan(v) || (errno == ERANGE && (isinf(v) || v == 0)))
        return CM_EINVAL;
    *out = v;
    return 0;
}

int cm_str_to_ldouble(const char *s, size_t n, long double *out)
{
    char buf[320];
    if (n == 0 || n >= sizeof(buf) || isspace((unsigned char)s[0]) || memchr(s, '\0', n) != NULL)
        return CM_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long double v = strtold(buf, &end);
    if (*end != '\0' || isnan(v) || errno == ERANGE)
        return CM_EINVAL;
    *out = v;
    return 0;
}

int cm_ll_to_str(char *buf, long long v)
{
    /* Without printf: INCR formats its result with this, and every reply header and
     * integer reply goes through it (resp.c). */
    char digits[24];
    int n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = digits[--n];
    buf[len] = '\0';
    return len;
}

int cm_double_to_str(char *buf, size_t cap, long double v)
{
    int n = snprintf(buf, cap, "%.17Lf", v);
    if (n < 0 || (size_t)n >= cap) {
        /* Too long for buf: the exponent form, or an empty string (as Redis's
         * ld2string fails) rather than a length past the end of buf. */
        n = snprintf(buf, cap, "%.17Lg", v);
        if (n >= 0 && (size_t)n < cap)
            return n;
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    if (strchr(buf, '.') != NULL) {
        while (n > 0 && buf[n - 1] == '0')
            n--;
        if (n > 0 && buf[n - 1] == '.')
            n--;
        buf[n] = '\0';
    }
    if (n == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        buf[1] = '\0';
        n = 1;
    }
    return n;
}

bool cm_streq_ci(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && strncasecmp(s, lit, n) == 0;
}

static int fold(int c, bool nocase)
{
    return nocase ? tolower(c) : c;
}

/* Matches a [...] class starting after '['; advances *pp past ']'. */
static bool match_class(const char **pp, const char *pend, unsigned char c, bool nocase)
{
    const char *p = *pp;
    bool negate = false, hit = false;
    if (p < pend && *p == '^') {
        negate = true;
        p++;
    }
    while (p < pend && *p != ']') {
        if (*p == '\\' && p + 1 < pend) {
            p++;
            if (fold((unsigned char)*p, nocase) == fold(c, nocase))
                hit = true;
        } else if (p + 2 < pend && p[1] == '-' && p[2] != ']') {
            int lo = fold((unsigned char)p[0], nocase), hi = fold((unsigned char)p[2], nocase);
            if (lo > hi) {
                int t = lo;
                lo = hi;
                hi = t;
            }
            int cc = fold(c, nocase);
            if (cc >= lo && cc <= hi)
                hit = true;
            p += 2;
        } else if (fold((unsigned char)*p, nocase) == fold(c, nocase)) {
            hit = true;
        }
        p++;
    }
    *pp = p < pend ? p + 1 : p; /* an unterminated class ends the pattern */
    return negate ? !hit : hit;
}

/* *skip is set when a '*' has tried every rest of the string and failed: then no
 * outer '*' can succeed by matching more, which keeps patterns like "a*a*a*...b"
 * polynomial (Redis's skipLongerMatches, CVE-2022-36021). */
static bool glob(const char *p, const char *pend, const char *s, const char *send, bool nocase,
                 int depth, bool *skip)
{
    if (depth > 1000)
        return false; /* pathological pattern: refuse rather than recurse forever */
    while (p < pend) {
        switch (*p) {
        case '*':
            while (p + 1 < pend && p[1] == '*')
                p++;
            if (p + 1 == pend)
                return true;
            /* The rest of the pattern needs at least one character. */
            for (const char *t = s; t < send; t++) {
                if (glob(p + 1, pend, t, send, nocase, depth + 1, skip))
                    return true;
                if (*skip)
                    return false;
            }
            *skip = true;
            return false;
        case '?':
            if (s == send)
                return false;
            s++;
            p++;
            break;
        case '[': {
            if (s == send)
                return false;
            p++;
            if (!match_class(&p, pend, (unsigned char)*s, nocase))
                return false;
            s++;
            break;
        }
        case '\\':
            if (p + 1 < pend)
                p++;
            /* fall through */
        default:
            if (s == send || fold((unsigned char)*p, nocase) != fold((unsigned char)*s, nocase))
                return false;
            s++;
            p++;
            break;
        }
    }
    return s == send;
}

bool cm_glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase)
{
    bool skip = false;
    return glob(pat, pat + plen, s, s + slen, nocase, 0, &skip);
}
