/*
 * 2-D convolution and transposed convolution, NCHW as in PyTorch, on
 * OpenBLAS sgemm through an im2row matrix:
 *   rows (B·N, K), row (b, oy, ox), column (c, ky, kx), K = C·k·k, N = Ho·Wo,
 *   holds the input patch under each output position (zero in the padding).
 *
 * One geometry describes a convolution C×H×W → O×Ho×Wo with kernel k,
 * stride s and padding p, Ho = (H + 2p − k)/s + 1 (exact: the stride must
 * tile the padded input, so that the transposed convolution inverts it).
 *
 *   conv2d            x (B, C, H, W) → y (B, O, Ho, Wo), w (O, C, k, k), b (O)
 *   conv_transpose2d  x (B, O, Ho, Wo) → y (B, C, H, W), w (O, C, k, k), b (C)
 *
 * The transposed convolution of a geometry is its convolution's adjoint:
 * PyTorch's ConvTranspose2d(O, C, k, s, p) with weight (O, C, k, k), whose
 * output C×H×W is the geometry's input. Argument order as in linear.h:
 * outputs, workspace, inputs, weights, sizes. Backward *adds* into dw and db
 * and overwrites dx (NULL: not needed). Workspace (sized by the caller at
 * init, so the step allocates nothing):
 *   keep   forward → backward: conv2d its rows (B·N, K); conv_transpose2d x
 *          as (B·N, O). Backward uses keep as scratch: it is spent after.
 *   tmp    (B·N, O) for conv2d; (B·N, K) for conv_transpose2d.
 * The *_ref twins are direct loops in double that the tests hold these to.
 */
#ifndef VAE_CONV_H
#define VAE_CONV_H

#include <stddef.h>

struct conv_geom {
    size_t c, h, w;   /* input C×H×W */
    size_t o, ho, wo; /* output O×Ho×Wo */
    size_t k, s, p;   /* kernel, stride, padding */
};

/*
 * Fill g for C×H×W → O×?×? with kernel k, stride s, padding p. Returns 0,
 * or -1 with err saying which size does not fit (k > H + 2p, or a stride
 * that does not tile H + 2p − k).
 */
int conv_geom_init(struct conv_geom *g, size_t c, size_t h, size_t w, size_t o, size_t k, size_t s, size_t p,
                   char *err, size_t err_bytes);

/* Sizes of the workspace above, in floats, for n_b samples. */
size_t conv_keep_floats(const struct conv_geom *g, size_t n_b, int transposed);
size_t conv_tmp_floats(const struct conv_geom *g, size_t n_b, int transposed);

void conv2d_forward(float *y, float *keep, float *tmp, const float *x, const float *w, const float *b,
                    size_t n_b, const struct conv_geom *g);
void conv2d_backward(float *dx, float *dw, float *db, float *keep, float *tmp, const float *dy,
                     const float *w, size_t n_b, const struct conv_geom *g);

void conv_transpose2d_forward(float *y, float *keep, float *tmp, const float *x, const float *w,
                              const float *b, size_t n_b, const struct conv_geom *g);
void conv_transpose2d_backward(float *dx, float *dw, float *db, float *keep, float *tmp, const float *dy,
                               const float *w, size_t n_b, const struct conv_geom *g);

void conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, size_t n_b,
                        const struct conv_geom *g);
void conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                         size_t n_b, const struct conv_geom *g);
void conv_transpose2d_forward_ref(float *y, const float *x, const float *w, const float *b, size_t n_b,
                                  const struct conv_geom *g);
void conv_transpose2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                                   const float *w, size_t n_b, const struct conv_geom *g);

#endif
