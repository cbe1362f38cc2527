/* Large buffers on transparent huge pages (see mem.h). */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "core/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
