/*
 * Fully connected layer y = x Wᵀ + b, row-major as in PyTorch:
 *   x (B, I), w (O, I), b (O), y (B, O).
 * Argument order everywhere: outputs, inputs, weights, sizes. Backward *adds*
 * into dw and db (gradients accumulate) and overwrites dx; dx may be NULL
 * for the first layer, whose input needs no gradient.
 * The *_ref twins are naive triple loops that the tests hold the BLAS
 * versions against.
 */
#ifndef VAE_LINEAR_H
#define VAE_LINEAR_H

#include <stddef.h>

void linear_forward(float *y, const float *x, const float *w, const float *b, size_t n_b, size_t n_in,
                    size_t n_out);
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                     size_t n_b, size_t n_in, size_t n_out);

/* The parameter gradients alone, added: dw += dyᵀ · x, db += dy's column sums. */
void linear_backward_weights(float *dw, float *db, const float *dy, const float *x, size_t n_b, size_t n_in,
                             size_t n_out);

/* The input gradient alone: dx = dy · w (nothing when dx is NULL). */
void linear_backward_input(float *dx, const float *dy, const float *w, size_t n_b, size_t n_in, size_t n_out);
/*
 * The parameter gradients alone, and only part of them: dwb is the layer's
 * gradient block, w (O, I) then b (O), and the elements at offsets [lo, hi)
 * of it are *overwritten* with those of dy (B, O) and x (B, I) — whole rows
 * of w in one sgemm, a row's part by sgemv, b by a sum over the batch.
 */
void linear_grad_range(float *dwb, const float *dy, const float *x, size_t n_b, size_t n_in, size_t n_out,
                       size_t lo, size_t hi);

void linear_forward_ref(float *y, const float *x, const float *w, const float *b, size_t n_b, size_t n_in,
                        size_t n_out);
void linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                         size_t n_b, size_t n_in, size_t n_out);

/* BLAS threads per process (the thread policy: 1 per rank by default), and
 * the count OpenBLAS itself reports (benchmarks check it). */
void linear_set_threads(int n);
int linear_threads(void);

/* The name of the kernels OpenBLAS runs ("Cooperlake", "Haswell"): its
 * DYNAMIC_ARCH build picks them by CPU model when it loads, or as
 * OPENBLAS_CORETYPE says (docs/performance.md). */
const char *linear_kernels(void);
/* The kernels this CPU and its OS run ("Cooperlake", "SkylakeX", "Haswell",
 * "Sandybridge") when the kernels named are narrower than them, else NULL:
 * OpenBLAS 0.3.21 (Debian 12) falls back to its SSE3 Prescott kernels on CPU
 * models newer than itself (Intel's model 207), 5x slower at this program's
 * GEMMs than its AVX-512 ones there. */
const char *linear_kernels_for_cpu(const char *kernels);

#endif
