/* resp.c - RESP2/RESP3 request parser, reply writers and reply reader (see resp.h).
 * No I/O here: everything works on caller-provided bytes. */
#include "resp.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { ST_START, ST_MULTI_COUNT, ST_MULTI_ARGS };

/* ---- Request parser -------------------------------------------------------------- */

void resp_req_init(struct resp_req *r)
{
    memset(r, 0, sizeof(*r));
    r->max_bulk = RESP_MAX_BULK;
    r->max_args = RESP_MAX_ARGS;
    r->max_inline = RESP_MAX_INLINE;
    r->bulk = -1;
    cm_buf_init(&r->inl);
}

size_t resp_req_mem(const struct resp_req *r)
{
    return r->cap * (2 * sizeof(size_t) + sizeof(char *)) + r->inl.cap;
}

void resp_req_deinit(struct resp_req *r)
{
    cm_free(r->argv);
    cm_free(r->argvlen);
    cm_free(r->argoff);
    cm_buf_deinit(&r->inl);
    memset(r, 0, sizeof(*r));
}

void resp_req_next(struct resp_req *r)
{
    r->state = ST_START;
    r->argc = 0;
    r->expect = 0;
    r->bulk = -1;
    r->pos = 0;
    r->need = 0;
    r->frame_len = 0;
    r->is_inline = false;
    r->inl.len = 0;
    cm_buf_shrink(&r->inl, 64 * 1024);
    if (r->cap > 4096) { /* a huge command's arrays go back */
        cm_free(r->argv);
        cm_free(r->argvlen);
        cm_free(r->argoff);
        r->argv = NULL;
        r->argvlen = r->argoff = NULL;
        r->cap = 0;
    }
}

static int bad(struct resp_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct resp_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    return RESP_BAD;
}

/* Makes room for argument index argc (offset and length). */
static int grow_args(struct resp_req *r)
{
    if (r->argc < r->cap)
        return 0;
    size_t cap = r->cap ? r->cap * 2 : 8;
    size_t *off = cm_realloc(r->argoff, cap * sizeof(*off));
    if (off == NULL)
        return CM_ENOMEM;
    r->argoff = off;
    size_t *lens = cm_realloc(r->argvlen, cap * sizeof(*lens));
    if (lens == NULL)
        return CM_ENOMEM;
    r->argvlen = lens;
    const char **argv = cm_realloc(r->argv, cap * sizeof(*argv));
    if (argv == NULL)
        return CM_ENOMEM;
    r->argv = argv;
    r->cap = cap;
    return 0;
}

/* Finds "\r\n" ending the line that starts at buf[from]; returns its offset of '\r',
 * or -1 when it is not there yet. */
static long find_crlf(const char *buf, size_t len, size_t from)
{
    const char *cr = from < len ? memchr(buf + from, '\r', len - from) : NULL;
    while (cr != NULL) {
        size_t at = (size_t)(cr - buf);
        if (at + 1 >= len)
            return -1;
        if (buf[at + 1] == '\n')
            return (long)at;
        cr = memchr(cr + 1, '\r', len - at - 1);
    }
    return -1;
}

/* Reads the number of a "*N\r\n" or "$N\r\n" line at buf[pos]. Returns 1 with *v and
 * *next set, 0 when the line is incomplete, -1 when it is too long (toolong is
 * reported), -2 when it is not a number. */
static int read_count(struct resp_req *r, const char *buf, size_t len, size_t pos, long long *v,
                      size_t *next)
{
    /* Fast path for nearly every line: 1 to 9 digits, no leading zero, CR LF. */
    size_t i = pos + 1, end = pos + 10 < len ? pos + 10 : len;
    if (i < end && buf[i] >= '1' && buf[i] <= '9') {
        long long n = 0;
        for (; i < end && buf[i] >= '0' && buf[i] <= '9'; i++)
            n = n * 10 + (buf[i] - '0');
        if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n' && i - pos <= r->max_inline) {
            *v = n;
            *next = i + 2;
            return 1;
        }
    }
    long cr = find_crlf(buf, len, pos + 1);
    if (cr < 0) /* a final '\r' may still turn out to end the line */
        return len - pos - (buf[len - 1] == '\r') > r->max_inline ? -1 : 0;
    if ((size_t)cr - pos > r->max_inline)
        return -1;
    if (cm_str_to_ll(buf + pos + 1, (size_t)cr - pos - 1, v) != 0)
        return -2;
    *next = (size_t)cr + 2;
    return 1;
}

static int parse_multibulk(struct resp_req *r, const char *buf, size_t len)
{
    if (r->state == ST_MULTI_COUNT) {
        long long n;
        size_t next;
        int rc = read_count(r, buf, len, 0, &n, &next);
        if (rc == 0)
            return RESP_MORE;
        if (rc == -1)
            return bad(r, "Protocol error: too big mbulk count string");
        if (rc == -2 || n > INT_MAX || n > r->max_args)
            return bad(r, "Protocol error: invalid multibulk length");
        if (r->unauth && n > RESP_UNAUTH_ARGS)
            return bad(r, "Protocol error: unauthenticated multibulk length");
        r->pos = next;
        if (n <= 0) {
            r->frame_len = next;
            return RESP_DONE;
        }
        r->expect = n;
        r->state = ST_MULTI_ARGS;
    }
    while ((long long)r->argc < r->expect) {
        if (r->bulk < 0) {
            if (r->pos >= len)
                return RESP_MORE;
            if (buf[r->pos] != '$')
                return bad(r, "Protocol error: expected '$', got '%c'", buf[r->pos]);
            long long n;
            size_t next;
            int rc = read_count(r, buf, len, r->pos, &n, &next);
            if (rc == 0)
                return RESP_MORE;
            if (rc == -1)
                return bad(r, "Protocol error: too big bulk count string");
            if (rc == -2 || n < 0 || n > r->max_bulk)
                return bad(r, "Protocol error: invalid bulk length");
            if (r->unauth && n > RESP_UNAUTH_BULK)
                return bad(r, "Protocol error: unauthenticated bulk length");
            r->bulk = n;
            r->pos = next;
        }
        size_t end = r->pos + (size_t)r->bulk + 2;
        if (len < end) {
            r->need = end;
            return RESP_MORE;
        }
        if (buf[end - 2] != '\r' || buf[end - 1] != '\n')
            return bad(r, "Protocol error: expected CRLF after bulk argument");
        if (grow_args(r) != 0)
            return bad(r, "Protocol error: out of memory");
        r->argoff[r->argc] = r->pos;
        r->argvlen[r->argc] = (size_t)r->bulk;
        r->argc++;
        r->pos = end;
        r->bulk = -1;
        r->need = 0;
    }
    for (size_t i = 0; i < r->argc; i++)
        r->argv[i] = buf + r->argoff[i];
    r->frame_len = r->pos;
    return RESP_DONE;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Splits an inline line like Redis's sdssplitargs: blanks separate arguments,
 * "double quotes" take \n \r \t \b \a \\ \" and \xHH, 'single quotes' take \'. */
static int split_inline(struct resp_req *r, const char *p, const char *end)
{
    for (;;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p == end)
            break;
        if (grow_args(r) != 0)
            return bad(r, "Protocol error: out of memory");
        size_t start = r->inl.len;
        int quote = 0; /* 0, '"' or '\'' */
        for (;;) {
            char c;
            if (p == end) {
                if (quote)
                    return bad(r, "Protocol error: unbalanced quotes in request");
                break;
            }
            if (quote == '"') {
                if (*p == '\\' && p + 3 < end && p[1] == 'x' && hexval(p[2]) >= 0 &&
                    hexval(p[3]) >= 0) {
                    c = (char)(hexval(p[2]) * 16 + hexval(p[3]));
                    p += 4;
                } else if (*p == '\\' && p + 1 < end) {
                    p++;
                    switch (*p) {
                    case 'n': c = '\n'; break;
                    case 'r': c = '\r'; break;
                    case 't': c = '\t'; break;
                    case 'b': c = '\b'; break;
                    case 'a': c = '\a'; break;
                    default: c = *p; break;
                    }
                    p++;
                } else if (*p == '"') {
                    p++;
                    if (p < end && !isspace((unsigned char)*p))
                        return bad(r, "Protocol error: unbalanced quotes in request");
                    break;
                } else {
                    c = *p++;
                }
            } else if (quote == '\'') {
                if (*p == '\\' && p + 1 < end && p[1] == '\'') {
                    c = '\'';
                    p += 2;
                } else if (*p == '\'') {
                    p++;
                    if (p < end && !isspace((unsigned char)*p))
                        return bad(r, "Protocol error: unbalanced quotes in request");
                    break;
                } else {
                    c = *p++;
                }
            } else {
                /* As in sdssplitargs: these end a word, and a quote anywhere in a
                 * word starts a quoted part ("k\"e y\"" is one argument, "ke y"). */
                if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
                    break;
                if (*p == '"' || *p == '\'') {
                    quote = *p++;
                    continue;
                }
                c = *p++;
            }
            if (cm_buf_appendc(&r->inl, c) != 0)
                return bad(r, "Protocol error: out of memory");
        }
        r->argoff[r->argc] = start;
        r->argvlen[r->argc] = r->inl.len - start;
        r->argc++;
    }
    return RESP_DONE;
}

static int parse_inline(struct resp_req *r, const char *buf, size_t len)
{
    /* r->pos counts the bytes already searched for '\n', so that a line fed a byte
     * at a time costs O(line). */
    size_t scan = len < r->max_inline + 2 ? len : r->max_inline + 2;
    const char *nl = r->pos < scan ? memchr(buf + r->pos, '\n', scan - r->pos) : NULL;
    if (nl == NULL) {
        r->pos = scan;
        /* A final '\r' may still be followed by the '\n' that ends the line. */
        if (len - (buf[len - 1] == '\r') > r->max_inline)
            return bad(r, "Protocol error: too big inline request");
        return RESP_MORE;
    }
    const char *end = nl;
    if (end > buf && end[-1] == '\r')
        end--;
    if ((size_t)(end - buf) > r->max_inline)
        return bad(r, "Protocol error: too big inline request");
    r->is_inline = true;
    int rc = split_inline(r, buf, end);
    if (rc != RESP_DONE)
        return rc;
    if (r->inl.p == NULL && cm_buf_reserve(&r->inl, 1) != 0) /* "" args need a pointer */
        return bad(r, "Protocol error: out of memory");
    for (size_t i = 0; i < r->argc; i++)
        r->argv[i] = r->inl.p + r->argoff[i];
    r->frame_len = (size_t)(nl - buf) + 1;
    return RESP_DONE;
}

int resp_req_parse(struct resp_req *r, const char *buf, size_t len)
{
    if (r->err[0] != '\0')
        return RESP_BAD;
    if (len == 0)
        return RESP_MORE;
    if (r->state == ST_START)
        r->state = buf[0] == '*' ? ST_MULTI_COUNT : -1;
    int rc = r->state == -1 ? parse_inline(r, buf, len) : parse_multibulk(r, buf, len);
    if (rc == RESP_BAD)
        r->err[sizeof(r->err) - 1] = '\0';
    return rc;
}

/* ---- Reply writers ------------------------------------------------------------------ */

/* Writes "<type><v>\r\n" into tmp (32 bytes) without printf (hot: every reply). */
static size_t format_line(char *tmp, char type, long long v)
{
    tmp[0] = type;
    size_t len = 1 + (size_t)cm_ll_to_str(tmp + 1, v);
    tmp[len++] = '\r';
    tmp[len++] = '\n';
    return len;
}

static int add_line(struct cm_buf *b, char type, long long v)
{
    char tmp[32];
    return cm_buf_append(b, tmp, format_line(tmp, type, v));
}

int resp_add_simple(struct cm_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (cm_buf_reserve(b, n + 3) != 0)
        return CM_ENOMEM;
    b->p[b->len++] = '+';
    for (size_t i = 0; i < n; i++) /* CR/LF would end the line early: as Redis, spaces */
        b->p[b->len++] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    memcpy(b->p + b->len, "\r\n", 2);
    b->len += 2;
    return 0;
}

int resp_add_error(struct cm_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (cm_buf_reserve(b, n + 3) != 0)
        return CM_ENOMEM;
    b->p[b->len++] = '-';
    for (size_t i = 0; i < n; i++)
        b->p[b->len++] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    memcpy(b->p + b->len, "\r\n", 2);
    b->len += 2;
    return 0;
}

int resp_add_errorf(struct cm_buf *b, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return resp_add_error(b, msg);
}

int resp_add_int(struct cm_buf *b, long long v)
{
    return add_line(b, ':', v);
}

int resp_add_bulk(struct cm_buf *b, const void *p, size_t n)
{
    char tmp[32];
    int h = (int)format_line(tmp, '$', (long long)n);
    if (cm_buf_reserve(b, (size_t)h + n + 2) != 0)
        return CM_ENOMEM;
    memcpy(b->p + b->len, tmp, (size_t)h);
    b->len += (size_t)h;
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    memcpy(b->p + b->len, "\r\n", 2);
    b->len += 2;
    return 0;
}

int resp_add_cstr(struct cm_buf *b, const char *s)
{
    return resp_add_bulk(b, s, strlen(s));
}

int resp_add_null(struct cm_buf *b, int proto)
{
    return proto >= 3 ? cm_buf_append(b, "_\r\n", 3) : cm_buf_append(b, "$-1\r\n", 5);
}

int resp_add_null_array(struct cm_buf *b, int proto)
{
    return proto >= 3 ? cm_buf_append(b, "_\r\n", 3) : cm_buf_append(b, "*-1\r\n", 5);
}

int resp_add_array(struct cm_buf *b, size_t n)
{
    return add_line(b, '*', (long long)n);
}

int resp_add_map(struct cm_buf *b, size_t n, int proto)
{
    return proto >= 3 ? add_line(b, '%', (long long)n) : add_line(b, '*', 2 * (long long)n);
}

int resp_add_set(struct cm_buf *b, size_t n, int proto)
{
    return add_line(b, proto >= 3 ? '~' : '*', (long long)n);
}

int resp_add_double(struct cm_buf *b, double d, int proto)
{
    char tmp[64];
    int n;
    if (isnan(d))
        n = snprintf(tmp, sizeof(tmp), "nan");
    else if (isinf(d))
        n = snprintf(tmp, sizeof(tmp), "%s", d > 0 ? "inf" : "-inf");
    else
        n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    if (proto < 3)
        return resp_add_bulk(b, tmp, (size_t)n);
    if (cm_buf_reserve(b, (size_t)n + 3) != 0)
        return CM_ENOMEM;
    b->p[b->len++] = ',';
    memcpy(b->p + b->len, tmp, (size_t)n);
    b->len += (size_t)n;
    memcpy(b->p + b->len, "\r\n", 2);
    b->len += 2;
    return 0;
}

int resp_add_bool(struct cm_buf *b, bool v, int proto)
{
    if (proto >= 3)
        return cm_buf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
    return resp_add_int(b, v ? 1 : 0);
}

int resp_add_verbatim(struct cm_buf *b, const char *fmt3, const void *p, size_t n, int proto)
{
    if (proto < 3)
        return resp_add_bulk(b, p, n);
    char tmp[40];
    int h = snprintf(tmp, sizeof(tmp), "=%zu\r\n%.3s:", n + 4, fmt3);
    if (cm_buf_reserve(b, (size_t)h + n + 2) != 0)
        return CM_ENOMEM;
    cm_buf_append(b, tmp, (size_t)h);
    cm_buf_append(b, p, n);
    return cm_buf_append(b, "\r\n", 2);
}

int resp_add_command(struct cm_buf *b, int argc, const char *const *argv, const size_t *argvlen)
{
    size_t old = b->len;
    if (add_line(b, '*', argc) != 0)
        goto oom;
    for (int i = 0; i < argc; i++)
        if (resp_add_bulk(b, argv[i], argvlen[i]) != 0)
            goto oom;
    return 0;
oom:
    b->len = old;
    return CM_ENOMEM;
}

/* ---- Reply reader ---------------------------------------------------------------------- */

const char *resp_type_name(enum resp_type t)
{
    static const char *names[] = {"?",      "string", "array", "integer", "nil",
                                  "status", "error",  "double", "bool",   "map",
                                  "set",    "attribute", "push", "bignum", "verbatim"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

void resp_value_free(struct resp_value *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->elements; i++)
        resp_value_free(v->element[i]);
    cm_free(v->element);
    cm_free(v->str);
    cm_free(v);
}

void resp_reader_init(struct resp_reader *r)
{
    memset(r, 0, sizeof(*r));
    r->max_bulk = RESP_MAX_BULK;
    r->max_elements = RESP_MAX_ARGS;
    r->max_depth = 64;
    cm_buf_init(&r->buf);
}

void resp_reader_deinit(struct resp_reader *r)
{
    resp_value_free(r->root);
    cm_buf_deinit(&r->buf);
    r->root = NULL;
}

int resp_reader_feed(struct resp_reader *r, const void *p, size_t n)
{
    /* Drop consumed bytes first when that is cheap relative to what remains. */
    if (r->pos > 0 && (r->pos == r->buf.len || r->pos >= 64 * 1024)) {
        cm_buf_consume(&r->buf, r->pos);
        r->pos = 0;
    }
    return cm_buf_append(&r->buf, p, n);
}

static int rbad(struct resp_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rbad(struct resp_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    r->bad = 1;
    return RESP_BAD;
}

static struct resp_value *new_value(enum resp_type t)
{
    struct resp_value *v = cm_calloc(1, sizeof(*v));
    if (v != NULL)
        v->type = t;
    return v;
}

static int set_text(struct resp_value *v, const char *p, size_t n)
{
    v->str = cm_malloc(n + 1);
    if (v->str == NULL)
        return CM_ENOMEM;
    memcpy(v->str, p, n);
    v->str[n] = '\0';
    v->len = n;
    return 0;
}

/* Parses one element at r->pos. Returns RESP_DONE with *out, RESP_MORE, RESP_BAD. */
static int read_one(struct resp_reader *r, struct resp_value **out)
{
    const char *buf = r->buf.p;
    size_t len = r->buf.len, pos = r->pos;
    if (pos >= len)
        return RESP_MORE;
    /* Reject a bad type byte at once rather than after its line has come. */
    if (buf[pos] == '\0' || strchr("+-:$*_,#!=(%~|>", buf[pos]) == NULL)
        return rbad(r, "Protocol error: invalid type byte 0x%02x", (unsigned char)buf[pos]);
    long cr = find_crlf(buf, len, pos + 1);
    if (cr < 0)
        return RESP_MORE;
    char t = buf[pos];
    const char *line = buf + pos + 1;
    size_t ln = (size_t)cr - pos - 1;
    size_t next = (size_t)cr + 2;
    struct resp_value *v = NULL;
    long long n = 0;

    switch (t) {
    case '+': case '-': case '(': {
        v = new_value(t == '+' ? RESP_T_STATUS : t == '-' ? RESP_T_ERROR : RESP_T_BIGNUM);
        if (v == NULL || set_text(v, line, ln) != 0)
            goto oom;
        break;
    }
    case ':':
        if (cm_str_to_ll(line, ln, &n) != 0)
            return rbad(r, "Protocol error: bad integer value");
        if ((v = new_value(RESP_T_INTEGER)) == NULL)
            goto oom;
        v->integer = n;
        break;
    case ',': {
        if ((v = new_value(RESP_T_DOUBLE)) == NULL || set_text(v, line, ln) != 0)
            goto oom;
        if (strcasecmp(v->str, "inf") == 0)
            v->dval = INFINITY;
        else if (strcasecmp(v->str, "-inf") == 0)
            v->dval = -INFINITY;
        else if (strcasecmp(v->str, "nan") == 0)
            v->dval = NAN;
        else if (cm_str_to_double(line, ln, &v->dval) != 0) {
            resp_value_free(v);
            return rbad(r, "Protocol error: bad double value");
        }
        break;
    }
    case '#':
        if (ln != 1 || (line[0] != 't' && line[0] != 'f'))
            return rbad(r, "Protocol error: bad bool value");
        if ((v = new_value(RESP_T_BOOL)) == NULL)
            goto oom;
        v->integer = line[0] == 't';
        break;
    case '_':
        if (ln != 0)
            return rbad(r, "Protocol error: bad null value");
        if ((v = new_value(RESP_T_NIL)) == NULL)
            goto oom;
        break;
    case '$': case '!': case '=': {
        if (cm_str_to_ll(line, ln, &n) != 0 || n < -1 || n > r->max_bulk)
            return rbad(r, "Protocol error: invalid bulk length");
        if (n == -1) {
            if ((v = new_value(RESP_T_NIL)) == NULL)
                goto oom;
            break;
        }
        if (len - next < (size_t)n + 2)
            return RESP_MORE;
        if (buf[next + n] != '\r' || buf[next + n + 1] != '\n')
            return rbad(r, "Protocol error: bad bulk string terminator");
        v = new_value(t == '$' ? RESP_T_STRING : t == '!' ? RESP_T_ERROR : RESP_T_VERB);
        if (v == NULL)
            goto oom;
        if (t == '=') {
            if (n < 4 || buf[next + 3] != ':') {
                resp_value_free(v);
                return rbad(r, "Protocol error: bad verbatim string");
            }
            memcpy(v->vtype, buf + next, 3);
            if (set_text(v, buf + next + 4, (size_t)n - 4) != 0)
                goto oom;
        } else if (set_text(v, buf + next, (size_t)n) != 0) {
            goto oom;
        }
        next += (size_t)n + 2;
        break;
    }
    case '*': case '%': case '~': case '|': case '>': {
        if (cm_str_to_ll(line, ln, &n) != 0 || n < -1 || n > r->max_elements)
            return rbad(r, "Protocol error: invalid multibulk length");
        if (n == -1) {
            if ((v = new_value(RESP_T_NIL)) == NULL)
                goto oom;
            break;
        }
        enum resp_type at = t == '*'   ? RESP_T_ARRAY
                            : t == '%' ? RESP_T_MAP
                            : t == '~' ? RESP_T_SET
                            : t == '|' ? RESP_T_ATTR
                                       : RESP_T_PUSH;
        if ((v = new_value(at)) == NULL)
            goto oom;
        size_t count = (size_t)n * (t == '%' || t == '|' ? 2 : 1);
        if (count > 0) {
            /* Elements are allocated as they arrive, so a huge announced count costs
             * nothing until the data comes; grow the pointer array in steps. */
            v->element = cm_calloc(count < 1024 ? count : 1024, sizeof(*v->element));
            if (v->element == NULL)
                goto oom;
        }
        r->announced = count; /* v->elements grows as elements arrive */
        break;
    }
    default:
        return rbad(r, "Protocol error: invalid type byte 0x%02x", (unsigned char)t);
    }
    r->pos = next;
    *out = v;
    return RESP_DONE;
oom:
    resp_value_free(v);
    return rbad(r, "Out of memory");
}

static bool is_aggregate(const struct resp_value *v)
{
    return v->type == RESP_T_ARRAY || v->type == RESP_T_MAP || v->type == RESP_T_SET ||
           v->type == RESP_T_ATTR || v->type == RESP_T_PUSH;
}

int resp_reader_get(struct resp_reader *r, struct resp_value **out)
{
    if (r->bad)
        return RESP_BAD;
    for (;;) {
        struct resp_value *v = NULL;
        r->announced = 0;
        int rc = read_one(r, &v);
        if (rc != RESP_DONE)
            return rc;
        if (r->depth == 0) {
            r->root = v;
        } else {
            struct resp_value *parent = r->stack[r->depth - 1].v;
            size_t *total = &r->stack[r->depth - 1].total, *cap = &r->stack[r->depth - 1].cap;
            size_t idx = parent->elements;
            if (idx == *cap) {
                /* Slots double from 1024 up to the total (an attribute adds one). */
                size_t n = *cap * 2 < *total ? *cap * 2 : *total;
                struct resp_value **e = cm_realloc(parent->element, (n > idx ? n : idx + 1) * sizeof(*e));
                if (e == NULL) {
                    resp_value_free(v);
                    return rbad(r, "Out of memory");
                }
                parent->element = e;
                *cap = n > idx ? n : idx + 1;
            }
            parent->element[idx] = v;
            parent->elements = idx + 1;
            if (v->type == RESP_T_ATTR) /* it precedes the element it describes */
                (*total)++;
        }
        if (is_aggregate(v) && r->announced > 0) {
            if (r->depth >= r->max_depth || r->depth >= 64)
                return rbad(r, "Protocol error: nesting too deep");
            r->stack[r->depth].v = v;
            r->stack[r->depth].total = r->announced;
            r->stack[r->depth].cap = r->announced < 1024 ? r->announced : 1024; /* read_one's */
            r->depth++;
        }
        /* Pop finished aggregates. */
        while (r->depth > 0 && r->stack[r->depth - 1].v->elements == r->stack[r->depth - 1].total)
            r->depth--;
        if (r->depth == 0) {
            *out = r->root;
            r->root = NULL;
            if (r->pos == r->buf.len) {
                r->buf.len = 0;
                r->pos = 0;
                cm_buf_shrink(&r->buf, 64 * 1024);
            }
            return RESP_DONE;
        }
    }
}
