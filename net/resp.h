/* resp.h - the RESP2/RESP3 codec, shared by the server (net/) and libeddy (client/).
 *
 * It does no I/O: callers feed it bytes and take out whole messages or "need more".
 * Three parts:
 *   - the request parser (server side): multibulk and inline commands into argv;
 *   - the reply writers: append RESP2/RESP3 encodings to a cm_buf;
 *   - the reply reader (client side): bytes into a tree of resp_value.
 * Every length is checked against explicit limits; errors use Redis's texts and
 * stick until the parser is reset. Depends on common/ only.
 */
#ifndef EDDY_RESP_H
#define EDDY_RESP_H

#include "../common/common.h"

enum { RESP_MORE = 0, RESP_DONE = 1, RESP_BAD = -1 };

/* Redis's defaults. */
#define RESP_MAX_INLINE (64 * 1024)          /* PROTO_INLINE_MAX_SIZE */
#define RESP_MAX_BULK (512LL * 1024 * 1024)  /* proto-max-bulk-len */
#define RESP_MAX_ARGS (1024LL * 1024 * 1024) /* multibulk count limit (INT_MAX in Redis) */
#define RESP_BIG_ARG (32 * 1024)             /* PROTO_MBULK_BIG_ARG */
#define RESP_UNAUTH_ARGS 10                  /* multibulk count before AUTH (Redis) */
#define RESP_UNAUTH_BULK 16384               /* bulk length before AUTH (Redis) */

/* ---- Request parser ------------------------------------------------------------
 * Parses one command at a time from a buffer that the caller owns and grows.
 * The parser remembers its progress, so feeding a frame a byte at a time costs
 * O(frame), not O(frame^2). Argument pointers point into the caller's buffer
 * (multibulk) or into the parser (inline) and stay valid until the caller
 * consumes the frame or changes the buffer. */
struct resp_req {
    /* Limits, set by the owner at any time before a frame starts. */
    long long max_bulk;   /* longest bulk argument */
    long long max_args;   /* most arguments in a multibulk */
    size_t max_inline;    /* longest inline line or count line */
    bool unauth;          /* a client before AUTH: at most RESP_UNAUTH_ARGS arguments of
                           * RESP_UNAUTH_BULK bytes, as Redis */

    /* Result of the last RESP_DONE: argc arguments, the frame's size in bytes. */
    size_t argc;
    const char **argv;
    size_t *argvlen;
    size_t frame_len;
    /* When > 0, the buffer must hold at least this many bytes before the next
     * call can make progress (a large bulk is pending): a hint for reserving. */
    size_t need;
    bool is_inline;
    char err[128]; /* set on RESP_BAD; the connection should be closed */

    /* Private state. */
    int state;
    long long expect;   /* arguments announced by the multibulk header */
    long long bulk;     /* length of the pending bulk, -1 when none */
    size_t pos;         /* parse position in the frame */
    size_t cap;         /* allocated argv slots */
    size_t *argoff;     /* offsets of the arguments in the buffer */
    struct cm_buf inl;  /* unescaped inline arguments */
};

void resp_req_init(struct resp_req *r);
/* Bytes the parser holds for the frame in progress (argument arrays, inline text). */
size_t resp_req_mem(const struct resp_req *r);
void resp_req_deinit(struct resp_req *r);
/* Parses the next command from buf[0..len). The frame must start at buf[0].
 * RESP_DONE: argc/argv/frame_len are set (argc may be 0 for an empty line or
 * "*0", which the caller skips); the caller then consumes frame_len bytes and calls
 * resp_req_next before parsing again. RESP_MORE: wait for more bytes (the buffer
 * may move between calls). RESP_BAD: err holds the reply text (without "-ERR "
 * prefix; e.g. "Protocol error: invalid bulk length"). */
int resp_req_parse(struct resp_req *r, const char *buf, size_t len);
/* Forgets the finished frame; keeps limits and allocations. */
void resp_req_next(struct resp_req *r);

/* ---- Reply writers ----------------------------------------------------------------
 * Each appends one RESP element to b and returns 0 or CM_ENOMEM. proto is 2 or 3:
 * RESP3-only types fall back to their RESP2 forms (map -> flat array, double ->
 * bulk string, null -> $-1 or *-1, bool -> integer). */
int resp_add_simple(struct cm_buf *b, const char *s);       /* +s */
int resp_add_error(struct cm_buf *b, const char *s);        /* -s, CR/LF replaced by spaces */
int resp_add_errorf(struct cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int resp_add_int(struct cm_buf *b, long long v);            /* :v */
int resp_add_bulk(struct cm_buf *b, const void *p, size_t n);
int resp_add_cstr(struct cm_buf *b, const char *s);         /* bulk of a C string */
int resp_add_null(struct cm_buf *b, int proto);             /* $-1 / _ */
int resp_add_null_array(struct cm_buf *b, int proto);       /* *-1 / _ */
int resp_add_array(struct cm_buf *b, size_t n);             /* *n */
int resp_add_map(struct cm_buf *b, size_t n, int proto);    /* %n / *2n */
int resp_add_set(struct cm_buf *b, size_t n, int proto);    /* ~n / *n */
int resp_add_double(struct cm_buf *b, double d, int proto); /* ,d / bulk */
int resp_add_bool(struct cm_buf *b, bool v, int proto);     /* #t / :1 */
int resp_add_verbatim(struct cm_buf *b, const char *fmt3, const void *p, size_t n, int proto);
/* Encodes a command as a multibulk of argc binary-safe arguments. */
int resp_add_command(struct cm_buf *b, int argc, const char *const *argv, const size_t *argvlen);

/* ---- Reply reader -------------------------------------------------------------------- */
enum resp_type {
    RESP_T_STRING = 1, /* $ bulk string (binary safe) */
    RESP_T_ARRAY,      /* * */
    RESP_T_INTEGER,    /* : */
    RESP_T_NIL,        /* $-1, *-1, _ */
    RESP_T_STATUS,     /* + */
    RESP_T_ERROR,      /* - and ! */
    RESP_T_DOUBLE,     /* , (str holds the text too) */
    RESP_T_BOOL,       /* # */
    RESP_T_MAP,        /* % (elements: k1 v1 k2 v2 ...) */
    RESP_T_SET,        /* ~ */
    RESP_T_ATTR,       /* | */
    RESP_T_PUSH,       /* > */
    RESP_T_BIGNUM,     /* ( (str holds the digits) */
    RESP_T_VERB        /* = (vtype holds the 3-letter format, str the text) */
};

/* A reply. Owned by whoever took it from the reader; freed with resp_value_free.
 * str is NUL-terminated (len excludes the NUL) for every type that has text. */
struct resp_value {
    enum resp_type type;
    long long integer;   /* INTEGER, BOOL (0/1) */
    double dval;         /* DOUBLE */
    char *str;           /* STRING STATUS ERROR DOUBLE BIGNUM VERB */
    size_t len;
    size_t elements;     /* ARRAY MAP SET ATTR PUSH; for MAP: 2 * pairs */
    struct resp_value **element;
    char vtype[4];
};

void resp_value_free(struct resp_value *v); /* NULL is a no-op */
const char *resp_type_name(enum resp_type t);

struct resp_reader {
    long long max_bulk;     /* default RESP_MAX_BULK */
    long long max_elements; /* default RESP_MAX_ARGS */
    int max_depth;          /* default 64 */
    char err[128];          /* set when resp_reader_get returns RESP_BAD; sticky */
    int bad;

    /* Private state. */
    struct cm_buf buf;
    size_t pos;
    struct resp_value *root;
    int depth;
    struct {
        struct resp_value *v;
        size_t total; /* announced elements, plus the attributes among them (RESP3
                       * does not count those); v->elements counts the filled ones */
        size_t cap;   /* slots allocated in v->element */
    } stack[65];
    size_t announced; /* set by the element parser for aggregates */
};

void resp_reader_init(struct resp_reader *r);
void resp_reader_deinit(struct resp_reader *r);
/* Copies n bytes into the reader. Returns 0 or CM_ENOMEM. */
int resp_reader_feed(struct resp_reader *r, const void *p, size_t n);
/* Takes one whole reply out: RESP_DONE with *out set (owned by the caller),
 * RESP_MORE, or RESP_BAD (r->err says why; the stream is unusable). */
int resp_reader_get(struct resp_reader *r, struct resp_value **out);

#endif
