/*
 * Pictures the commands write: a grid of images as one PNG (libpng, whose
 * header only picture.c includes). Local (no communication).
 */
#ifndef VAE_PICTURE_H
#define VAE_PICTURE_H

#include <stddef.h>

/*
 * Write n images (n, channels, rows, cols) with values in [0, 1] (clamped)
 * as a grid n_cols wide: 3 channels in colour (RGB), any other count in grey
 * (the channels' mean). Each pixel is drawn as a scale x scale block
 * (scale >= 1), with 1-pixel grey borders. Returns 0, or -1 with a message
 * naming path.
 */
int picture_write_grid(const char *path, const float *images, size_t n, size_t channels, size_t rows,
                       size_t cols, size_t n_cols, size_t scale);

#endif
