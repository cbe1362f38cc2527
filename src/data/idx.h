/*
 * IDX files (the MNIST / Fashion-MNIST layout), gzip-compressed or not:
 * big-endian magic 0x00000803 (images: n, rows, cols, then n·rows·cols
 * uint8) or 0x00000801 (labels: n, then n uint8). The reader checks the
 * magic, the sizes and that the payload is exactly as long as the header says.
 */
#ifndef VAE_IDX_H
#define VAE_IDX_H

#include <stddef.h>
#include <stdint.h>

struct idx {
    size_t n;          /* items */
    size_t rows, cols; /* 1, 1 for labels */
    uint8_t *data;     /* (n, rows·cols) */
};

/* expect_images: 1 for an image file, 0 for labels. Returns 0, or -1 with a
 * message naming the file and what was wrong. */
int idx_read(struct idx *out, const char *path, int expect_images);
void idx_free(struct idx *x);

#endif
