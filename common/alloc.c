/* alloc.c - the allocator wrapper every eddy module uses (cm_malloc and friends).
 *
 * Counts live bytes with a small header, and can fail the Nth allocation so that
 * tests reach every out-of-memory path (see cm_alloc_fail_at).
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Header kept before each block: the requested size, padded to max alignment. */
typedef union {
    size_t size;
    max_align_t align;
} header;

static atomic_size_t used;
static atomic_long fail_countdown;

static bool should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n <= 0)
        return false;
    n = atomic_fetch_sub(&fail_countdown, 1);
    return n == 1;
}

void cm_alloc_fail_at(long n)
{
    atomic_store(&fail_countdown, n);
}

size_t cm_alloc_used(void)
{
    return atomic_load_explicit(&used, memory_order_relaxed);
}

void *cm_malloc(size_t n)
{
    if (should_fail() || n > SIZE_MAX - sizeof(header))
        return NULL;
    /* At least one byte past the header: a pointer to the end of the block would not
     * count as a reference to it for LeakSanitizer. */
    header *h = malloc(sizeof(header) + (n > 0 ? n : 1));
    if (h == NULL)
        return NULL;
    h->size = n;
    atomic_fetch_add_explicit(&used, n, memory_order_relaxed);
    return h + 1;
}

void *cm_calloc(size_t count, size_t n)
{
    if (n != 0 && count > SIZE_MAX / n)
        return NULL;
    void *p = cm_malloc(count * n);
    if (p != NULL)
        memset(p, 0, count * n);
    return p;
}

void *cm_realloc(void *p, size_t n)
{
    if (p == NULL)
        return cm_malloc(n);
    if (should_fail() || n > SIZE_MAX - sizeof(header))
        return NULL;
    header *h = (header *)p - 1;
    size_t old = h->size;
    header *nh = realloc(h, sizeof(header) + (n > 0 ? n : 1));
    if (nh == NULL)
        return NULL;
    nh->size = n;
    if (n >= old)
        atomic_fetch_add_explicit(&used, n - old, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&used, old - n, memory_order_relaxed);
    return nh + 1;
}

void cm_free(void *p)
{
    if (p == NULL)
        return;
    header *h = (header *)p - 1;
    atomic_fetch_sub_explicit(&used, h->size, memory_order_relaxed);
    free(h);
}

char *cm_strdup(const char *s)
{
    return cm_memdup(s, strlen(s) + 1);
}

void *cm_memdup(const void *p, size_t n)
{
    void *q = cm_malloc(n);
    if (q != NULL && n > 0)
        memcpy(q, p, n);
    return q;
}

/* glibc's malloc_trim initializes its allocator on its first call, without a lock: it
 * marks the allocator initialized before it sets up the bins, so a second thread's
 * trim can walk bins that are still NULL. Normally malloc has done that long before
 * any thread starts; under the sanitizers, whose allocator replaces malloc, nothing
 * else does, and two function calls killed at the same moment on two threads crashed
 * eddyd in the TSan pass of make test-all (SEGV in glibc's mtrim). Hence the lock; a
 * trim is rare (after a call that was killed or ran out of memory). */
void cm_malloc_trim(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    malloc_trim(0);
    pthread_mutex_unlock(&lock);
}
