/* alloc.c - every engine allocation, 64-byte aligned (cache lines, AVX-512 loads),
 * with a test hook that makes allocations fail so error paths can be exercised. */
#include "lunet.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static atomic_long fail_countdown = -1; /* < 0: never fail */
static atomic_long alloc_total = 0;

long ln_alloc_fail_after(long countdown)
{
    atomic_store(&fail_countdown, countdown);
    return atomic_load(&alloc_total);
}

int ln_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void *ln_alloc(size_t bytes)
{
    long c = atomic_load(&fail_countdown);
    if (c >= 0) {
        if (c == 0) return NULL;
        atomic_fetch_sub(&fail_countdown, 1);
    }
    if (bytes == 0) bytes = 1;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p) atomic_fetch_add(&alloc_total, 1);
    return p;
}

void *ln_alloc_zeroed(size_t count, size_t size)
{
    size_t bytes;
    if (!ln_mul_size(count, size, &bytes)) return NULL;
    void *p = ln_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void ln_dealloc(void *p) { free(p); }

/* Under ASan (or TSan) malloc is the sanitizer's: glibc's heap is unused, and its first
 * malloc_trim calls, if made by several threads at once, race on initialising it. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LN_ASAN 1
#endif
#endif

void ln_release_free_memory(void)
{
#if defined(__GLIBC__) && !defined(LN_ASAN)
    /* glibc keeps freed blocks below its (adaptive) mmap threshold in the heap; after a
     * large temporary block (a decompressed IDX file) that can be tens of MB of RSS. */
    malloc_trim(0);
#endif
}
