/* Pictures: a grid of grey images written as one PNG (libpng). */
#ifndef VAE_PNG_H
#define VAE_PNG_H

#include <stddef.h>

/*
 * Write n images (n, rows·cols) with values in [0, 1] (clamped) as a grid
 * n_cols wide, 1-pixel grey borders. Returns 0, or -1 with a message.
 */
int png_write_grid(const char *path, const float *images, size_t n, size_t rows, size_t cols, size_t n_cols);

/*
 * A line plot of y (n) against its index, w × h pixels: white ground, grey
 * grid (10 × 10), black axes, the curve in blue. No text: the caller states
 * the ranges (the y range is [y_min, y_max] of the data). Returns 0 or -1.
 */
int png_write_curve(const char *path, const double *y, size_t n, size_t w, size_t h);

#endif
