/* Convolutions on OpenBLAS sgemm through im2row (see conv.h). */
#include "model/conv.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int conv_geom_init(struct conv_geom *g, size_t c, size_t h, size_t w, size_t o, size_t k, size_t s, size_t p,
                   char *err, size_t err_bytes)
{
    *g = (struct conv_geom){.c = c, .h = h, .w = w, .o = o, .k = k, .s = s, .p = p};
    size_t side[2] = {h, w};
    for (int i = 0; i < 2; i++) {
        if (k > side[i] + 2 * p) {
            snprintf(err, err_bytes, "kernel %zu is larger than the padded input %zu + 2·%zu", k, side[i], p);
            return -1;
        }
        if ((side[i] + 2 * p - k) % s) {
            snprintf(
                err, err_bytes,
                "stride %zu does not tile the input: (%zu + 2·%zu − %zu) = %zu is not a multiple of %zu, "
                "so the decoder's transposed convolution cannot give %zu back",
                s, side[i], p, k, side[i] + 2 * p - k, s, side[i]);
            return -1;
        }
    }
    g->ho = (h + 2 * p - k) / s + 1;
    g->wo = (w + 2 * p - k) / s + 1;
    return 0;
}

static size_t n_out(const struct conv_geom *g)
{
    return g->ho * g->wo;
}

static size_t k_len(const struct conv_geom *g)
{
    return g->c * g->k * g->k;
}

size_t conv_keep_floats(const struct conv_geom *g, size_t n_b, int transposed)
{
    return n_b * n_out(g) * (transposed ? g->o : k_len(g));
}

size_t conv_tmp_floats(const struct conv_geom *g, size_t n_b, int transposed)
{
    return conv_keep_floats(g, n_b, !transposed);
}

/* rows (B·N, K) = the input patch under each output position (zero in the padding). */
static void im2row(float *rows, const float *x, size_t n_b, const struct conv_geom *g)
{
    size_t k = g->k, kk = k_len(g);
    for (size_t b = 0; b < n_b; b++)
        for (size_t oy = 0; oy < g->ho; oy++)
            for (size_t ox = 0; ox < g->wo; ox++) {
                float *r = rows + ((b * g->ho + oy) * g->wo + ox) * kk;
                for (size_t c = 0; c < g->c; c++)
                    for (size_t ky = 0; ky < k; ky++, r += k) {
                        long iy = (long)(oy * g->s + ky) - (long)g->p;
                        if (iy < 0 || iy >= (long)g->h) {
                            memset(r, 0, k * sizeof *r);
                            continue;
                        }
                        const float *xr = x + ((b * g->c + c) * g->h + (size_t)iy) * g->w;
                        for (size_t kx = 0; kx < k; kx++) {
                            long ix = (long)(ox * g->s + kx) - (long)g->p;
                            r[kx] = ix >= 0 && ix < (long)g->w ? xr[ix] : 0.0f;
                        }
                    }
            }
}

/* The adjoint of im2row: x (B, C, H, W) = the sum of every row entry at its pixel. */
static void row2im(float *x, const float *rows, size_t n_b, const struct conv_geom *g)
{
    size_t k = g->k, kk = k_len(g);
    memset(x, 0, n_b * g->c * g->h * g->w * sizeof *x);
    for (size_t b = 0; b < n_b; b++)
        for (size_t oy = 0; oy < g->ho; oy++)
            for (size_t ox = 0; ox < g->wo; ox++) {
                const float *r = rows + ((b * g->ho + oy) * g->wo + ox) * kk;
                for (size_t c = 0; c < g->c; c++)
                    for (size_t ky = 0; ky < k; ky++, r += k) {
                        long iy = (long)(oy * g->s + ky) - (long)g->p;
                        if (iy < 0 || iy >= (long)g->h)
                            continue;
                        float *xr = x + ((b * g->c + c) * g->h + (size_t)iy) * g->w;
                        for (size_t kx = 0; kx < k; kx++) {
                            long ix = (long)(ox * g->s + kx) - (long)g->p;
                            if (ix >= 0 && ix < (long)g->w)
                                xr[ix] += r[kx];
                        }
                    }
            }
}

/* t (B·N, ch) = y (B, ch, N) transposed per sample. */
static void to_rows(float *t, const float *y, size_t n_b, size_t ch, size_t n)
{
    for (size_t b = 0; b < n_b; b++)
        for (size_t c = 0; c < ch; c++)
            for (size_t i = 0; i < n; i++)
                t[(b * n + i) * ch + c] = y[(b * ch + c) * n + i];
}

/* y (B, ch, N) = t (B·N, ch) transposed per sample, plus bias (ch) when not NULL. */
static void from_rows(float *y, const float *t, const float *bias, size_t n_b, size_t ch, size_t n)
{
    for (size_t b = 0; b < n_b; b++)
        for (size_t c = 0; c < ch; c++) {
            float add = bias ? bias[c] : 0.0f;
            for (size_t i = 0; i < n; i++)
                y[(b * ch + c) * n + i] = t[(b * n + i) * ch + c] + add;
        }
}

/* db (ch) += the sum of dy (B, ch, N) over samples and positions. */
static void bias_grad(float *db, const float *dy, size_t n_b, size_t ch, size_t n)
{
    for (size_t b = 0; b < n_b; b++)
        for (size_t c = 0; c < ch; c++) {
            const float *d = dy + (b * ch + c) * n;
            float s = 0;
            for (size_t i = 0; i < n; i++)
                s += d[i];
            db[c] += s;
        }
}

void conv2d_forward(float *y, float *keep, float *tmp, const float *x, const float *w, const float *b,
                    size_t n_b, const struct conv_geom *g)
{
    int m = (int)(n_b * n_out(g)), kk = (int)k_len(g), o = (int)g->o;
    im2row(keep, x, n_b, g);
    /* tmp (B·N, O) = rows (B·N, K) · wᵀ (K, O) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, o, kk, 1.0f, keep, kk, w, kk, 0.0f, tmp, o);
    from_rows(y, tmp, b, n_b, g->o, n_out(g));
}

void conv2d_backward(float *dx, float *dw, float *db, float *keep, float *tmp, const float *dy,
                     const float *w, size_t n_b, const struct conv_geom *g)
{
    int m = (int)(n_b * n_out(g)), kk = (int)k_len(g), o = (int)g->o;
    to_rows(tmp, dy, n_b, g->o, n_out(g));
    bias_grad(db, dy, n_b, g->o, n_out(g));
    /* dw (O, K) += dyᵀ (O, B·N) · rows (B·N, K) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, kk, m, 1.0f, tmp, o, keep, kk, 1.0f, dw, kk);
    if (!dx)
        return;
    /* drows (B·N, K) = dy (B·N, O) · w (O, K), over the spent rows */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, kk, o, 1.0f, tmp, o, w, kk, 0.0f, keep, kk);
    row2im(dx, keep, n_b, g);
}

void conv_transpose2d_forward(float *y, float *keep, float *tmp, const float *x, const float *w,
                              const float *b, size_t n_b, const struct conv_geom *g)
{
    int m = (int)(n_b * n_out(g)), kk = (int)k_len(g), o = (int)g->o;
    size_t hw = g->h * g->w;
    to_rows(keep, x, n_b, g->o, n_out(g));
    /* rows (B·N, K) = x (B·N, O) · w (O, K), then summed onto the pixels */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, kk, o, 1.0f, keep, o, w, kk, 0.0f, tmp, kk);
    row2im(y, tmp, n_b, g);
    for (size_t i = 0; i < n_b; i++)
        for (size_t c = 0; c < g->c; c++)
            for (size_t j = 0; j < hw; j++)
                y[(i * g->c + c) * hw + j] += b[c];
}

void conv_transpose2d_backward(float *dx, float *dw, float *db, float *keep, float *tmp, const float *dy,
                               const float *w, size_t n_b, const struct conv_geom *g)
{
    int m = (int)(n_b * n_out(g)), kk = (int)k_len(g), o = (int)g->o;
    bias_grad(db, dy, n_b, g->c, g->h * g->w);
    im2row(tmp, dy, n_b, g);
    /* dw (O, K) += xᵀ (O, B·N) · rows(dy) (B·N, K) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, kk, m, 1.0f, keep, o, tmp, kk, 1.0f, dw, kk);
    if (!dx)
        return;
    /* dx (B·N, O) = rows(dy) (B·N, K) · wᵀ (K, O), over the spent x */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, o, kk, 1.0f, tmp, kk, w, kk, 0.0f, keep, o);
    from_rows(dx, keep, NULL, n_b, g->o, n_out(g));
}

/* ---- references: every tap (input pixel xi, weight wi, output yi) visited directly, in double ---- */

struct ref {
    const float *a, *b; /* operands */
    double *acc;        /* accumulator */
};

static void each_tap(const struct conv_geom *g, size_t n_b, void (*f)(struct ref *, size_t, size_t, size_t),
                     struct ref *r)
{
    size_t k = g->k;
    for (size_t b = 0; b < n_b; b++)
        for (size_t o = 0; o < g->o; o++)
            for (size_t oy = 0; oy < g->ho; oy++)
                for (size_t ox = 0; ox < g->wo; ox++)
                    for (size_t c = 0; c < g->c; c++)
                        for (size_t ky = 0; ky < k; ky++)
                            for (size_t kx = 0; kx < k; kx++) {
                                long iy = (long)(oy * g->s + ky) - (long)g->p;
                                long ix = (long)(ox * g->s + kx) - (long)g->p;
                                if (iy < 0 || iy >= (long)g->h || ix < 0 || ix >= (long)g->w)
                                    continue;
                                f(r, ((b * g->c + c) * g->h + (size_t)iy) * g->w + (size_t)ix,
                                  ((o * g->c + c) * k + ky) * k + kx,
                                  ((b * g->o + o) * g->ho + oy) * g->wo + ox);
                            }
}

/* conv2d: y[yi] += x[xi]·w[wi]. a = x, b = w, acc = y. */
static void tap_conv(struct ref *r, size_t xi, size_t wi, size_t yi)
{
    r->acc[yi] += (double)r->a[xi] * r->b[wi];
}

/* conv_transpose2d: y[xi] += x[yi]·w[wi]. a = x, b = w, acc = y. */
static void tap_convt(struct ref *r, size_t xi, size_t wi, size_t yi)
{
    r->acc[xi] += (double)r->a[yi] * r->b[wi];
}

/* Both backwards' dw[wi] += a[xi]·b[yi]: a at input pixels, b at output
 * positions (conv2d: a = x, b = dy; transposed: a = dy, b = x). */
static void tap_dw(struct ref *r, size_t xi, size_t wi, size_t yi)
{
    r->acc[wi] += (double)r->a[xi] * r->b[yi];
}

static double *zeros(size_t n)
{
    double *d = calloc(n + 1, sizeof *d);
    VAE_ASSERT(d);
    return d;
}

static void store(float *dst, const double *src, size_t n, int add)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)(src[i] + (add ? (double)dst[i] : 0.0));
}

/* acc (B, ch, n) += bias[ch]; db (ch) += Σ dy (B, ch, n) over samples and positions. */
static void ref_bias(double *acc, const float *b, size_t n_b, size_t ch, size_t n)
{
    for (size_t i = 0; i < n_b * ch; i++)
        for (size_t j = 0; j < n; j++)
            acc[i * n + j] += b[i % ch];
}

static void ref_bias_grad(float *db, const float *dy, size_t n_b, size_t ch, size_t n)
{
    for (size_t c = 0; c < ch; c++) {
        double s = 0;
        for (size_t b = 0; b < n_b; b++)
            for (size_t j = 0; j < n; j++)
                s += dy[(b * ch + c) * n + j];
        db[c] += (float)s;
    }
}

void conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, size_t n_b,
                        const struct conv_geom *g)
{
    size_t ny = n_b * g->o * n_out(g);
    double *acc = zeros(ny);
    ref_bias(acc, b, n_b, g->o, n_out(g));
    each_tap(g, n_b, tap_conv, &(struct ref){.a = x, .b = w, .acc = acc});
    store(y, acc, ny, 0);
    free(acc);
}

void conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                         size_t n_b, const struct conv_geom *g)
{
    size_t nx = n_b * g->c * g->h * g->w, nw = g->o * k_len(g);
    double *adw = zeros(nw), *adx = zeros(nx);
    each_tap(g, n_b, tap_dw, &(struct ref){.a = x, .b = dy, .acc = adw});
    /* dx is the transposed convolution of dy */
    each_tap(g, n_b, tap_convt, &(struct ref){.a = dy, .b = w, .acc = adx});
    store(dw, adw, nw, 1);
    ref_bias_grad(db, dy, n_b, g->o, n_out(g));
    if (dx)
        store(dx, adx, nx, 0);
    free(adw);
    free(adx);
}

void conv_transpose2d_forward_ref(float *y, const float *x, const float *w, const float *b, size_t n_b,
                                  const struct conv_geom *g)
{
    size_t ny = n_b * g->c * g->h * g->w;
    double *acc = zeros(ny);
    ref_bias(acc, b, n_b, g->c, g->h * g->w);
    each_tap(g, n_b, tap_convt, &(struct ref){.a = x, .b = w, .acc = acc});
    store(y, acc, ny, 0);
    free(acc);
}

void conv_transpose2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                                   const float *w, size_t n_b, const struct conv_geom *g)
{
    size_t nx = n_b * g->o * n_out(g), nw = g->o * k_len(g);
    double *adw = zeros(nw), *adx = zeros(nx);
    each_tap(g, n_b, tap_dw, &(struct ref){.a = dy, .b = x, .acc = adw});
    /* dx is the convolution of dy */
    each_tap(g, n_b, tap_conv, &(struct ref){.a = dy, .b = w, .acc = adx});
    store(dw, adw, nw, 1);
    ref_bias_grad(db, dy, n_b, g->c, g->h * g->w);
    if (dx)
        store(dx, adx, nx, 0);
    free(adw);
    free(adx);
}
