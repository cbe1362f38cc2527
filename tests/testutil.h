/* Shared helpers of the tests: small synthetic datasets. */
#ifndef VAE_TESTUTIL_H
#define VAE_TESTUTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"
#include "data/dataset.h"

/*
 * A synthetic uint8 "image" dataset of n_train + n_test rows of D pixels:
 * each row is one of 4 smooth prototypes plus noise, so a VAE has something
 * to learn. Pixel (i, d) depends only on (seed, i, d). Serial write.
 */
static inline int make_dataset(const char *path, size_t n_train, size_t n_test, size_t n_dim)
{
    size_t n = n_train + n_test;
    uint8_t *x = malloc(n * n_dim), *y = malloc(n);
    float *u = malloc(n_dim * sizeof *u);
    for (size_t i = 0; i < n; i++) {
        y[i] = (uint8_t)(i % 4);
        rng_uniform(u, n_dim, 0, 1, 2024, RNG_TEST, 1, (uint32_t)i);
        for (size_t d = 0; d < n_dim; d++) {
            float proto = (float)((d * (y[i] + 1)) % n_dim) / (float)n_dim;
            float v = 0.7f * proto + 0.3f * u[d];
            x[i * n_dim + d] = (uint8_t)(v * 255.0f);
        }
    }
    struct dataset_info info = {.n_train = n_train, .n_test = n_test, .n_dim = n_dim, .is_u8 = 1,
                                .has_labels = 1, .image_rows = 0, .image_cols = 0};
    int rc = dataset_write(path, &info, x, y, n_test ? x + n_train * n_dim : NULL,
                           n_test ? y + n_train : NULL);
    free(x);
    free(y);
    free(u);
    return rc;
}

#endif
