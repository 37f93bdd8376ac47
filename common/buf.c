/* buf.c - the growable byte buffer (cm_buf) used for sockets, replies and keys. */
#include "common.h"

#include <stdio.h>
#include <string.h>

void cm_buf_init(struct cm_buf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void cm_buf_deinit(struct cm_buf *b)
{
    cm_free(b->p);
    cm_buf_init(b);
}

int cm_buf_reserve(struct cm_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return CM_ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = cm_realloc(b->p, cap);
    if (p == NULL)
        return CM_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int cm_buf_append(struct cm_buf *b, const void *p, size_t n)
{
    if (cm_buf_reserve(b, n) != 0)
        return CM_ENOMEM;
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

int cm_buf_appendc(struct cm_buf *b, char c)
{
    return cm_buf_append(b, &c, 1);
}

int cm_buf_appendf(struct cm_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return CM_EINVAL;
    if ((size_t)n < sizeof(small))
        return cm_buf_append(b, small, (size_t)n);
    if (cm_buf_reserve(b, (size_t)n + 1) != 0)
        return CM_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void cm_buf_consume(struct cm_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void cm_buf_shrink(struct cm_buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep) {
        cm_free(b->p);
        cm_buf_init(b);
    }
}
