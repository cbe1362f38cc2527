/*
 * A named view into a flat buffer: the model lays its tensors out in one
 * parameter buffer and describes each with one of these; a checkpoint
 * stores the list as /model/layout. Shared by src/model and src/data, so
 * neither needs the other's headers.
 */
#ifndef VAE_TENSOR_H
#define VAE_TENSOR_H

#include <stddef.h>

#define TENSOR_NAME_BYTES 32
#define TENSOR_MAX_DIMS   4

struct tensor_view {
    char name[TENSOR_NAME_BYTES];  /* e.g. "enc0.w" */
    size_t off;                    /* first element in the flat buffer */
    size_t rows, cols;             /* matrix view; cols = 1 for vectors */
    size_t shape[TENSOR_MAX_DIMS]; /* PyTorch shape, 0 past its rank: (O, I), (O, C, k, k), (O) */
};

#endif
