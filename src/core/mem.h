/*
 * Allocation of large buffers (parameters, gradients, optimizer state,
 * activations, data shards): 2 MiB-aligned and marked for transparent huge
 * pages (madvise), so that the first touch of a buffer costs one page fault
 * per 2 MiB instead of one per 4 KiB. On a VM each fault is a trip through
 * the hypervisor: loading a 1.15 GB checkpoint into fresh optimizer state
 * took 2.7 s with 4 KiB pages and 0.5 s with huge pages here
 * (docs/performance.md). Smaller requests are plain malloc/calloc, and a
 * kernel without huge pages just gets the alignment. Free with free().
 */
#ifndef VAE_MEM_H
#define VAE_MEM_H

#include <stddef.h>

void *mem_alloc(size_t bytes);
/* n · size bytes, zeroed; NULL on overflow or out of memory. */
void *mem_calloc(size_t n, size_t size);

/*
 * Copy n floats into memory that another core reads, with non-temporal
 * stores. A plain store to a line that another core has read must first take
 * the line back from that core's cache, one line at a time: measured here
 * 0.04 to 0.7 ms for 1.3 MB depending on where the host places the two cores,
 * against 0.05 to 0.13 ms for streaming stores, which invalidate without
 * reading.
 */
void mem_stream_copy(float *dst, const float *src, size_t n);

#endif
