/* Large buffers on transparent huge pages (see mem.h). */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "core/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#define HUGE_BYTES ((size_t)2 << 20)

void *mem_alloc(size_t bytes)
{
    if (bytes < HUGE_BYTES)
        return malloc(bytes);
    void *p = NULL;
    size_t rounded = (bytes + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES;
    if (posix_memalign(&p, HUGE_BYTES, rounded))
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE); /* advice: a refusal changes nothing */
#endif
    return p;
}

void *mem_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    if (n * size < HUGE_BYTES)
        return calloc(n, size);
    void *p = mem_alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

/* The vector part of mem_stream_copy: copies a prefix of src with streaming
 * stores and returns its length. One definition per instruction set. */
#if defined(__AVX512F__)
static size_t stream_vectors(float *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 63); i++)
        dst[i] = src[i];
    for (; i + 16 <= n; i += 16)
        _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    _mm_sfence();
    return i;
}
#elif defined(__AVX__)
static size_t stream_vectors(float *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 31); i++)
        dst[i] = src[i];
    for (; i + 8 <= n; i += 8)
        _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
    _mm_sfence();
    return i;
}
#else
static size_t stream_vectors(float *dst, const float *src, size_t n)
{
    (void)dst;
    (void)src;
    (void)n;
    return 0;
}
#endif

/* Non-temporal copy (see mem.h). */
void mem_stream_copy(float *dst, const float *src, size_t n)
{
    size_t i = stream_vectors(dst, src, n);
    memcpy(dst + i, src + i, (n - i) * sizeof *dst);
}
