/* Shared helpers of the tests: small synthetic datasets. */
#ifndef VAE_TESTUTIL_H
#define VAE_TESTUTIL_H

#include "data/dataset.h"

/* The synthetic uint8 image set of `vae_dist synth` (serial write). */
static inline int make_dataset(const char *path, size_t n_train, size_t n_test, size_t n_dim)
{
    return dataset_make_synthetic(path, n_train, n_test, n_dim, 1, 0.0, 2024);
}

#endif
