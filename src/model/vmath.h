/*
 * exp and log for the elementwise parts of the ELBO, written so that the
 * compiler vectorises the loops that call them (libm's expf/log1pf are
 * opaque calls and kept those loops scalar: 8% of a training step).
 * Cephes-style range reduction and polynomials; relative error below 3e-7
 * over the ranges used. test_grad holds them against libm (the reference).
 */
#ifndef VAE_VMATH_H
#define VAE_VMATH_H

#include <math.h>
#include <stdint.h>

/* Bit casts through a union (defined in C11); memcpy here kept the loops scalar. */
union vmath_bits {
    float f;
    int32_t i;
};

/* e^x for x in [-87, 88]; inputs outside are clamped. */
static inline float vexpf(float x)
{
    x = fminf(fmaxf(x, -87.0f), 88.0f);
    /* Round to nearest by adding and removing 1.5·2^23 (exact for |t| < 2^22);
     * roundf would be a library call and keep the loop scalar. */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* x − n·ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union vmath_bits scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

/* log(x) for finite x > 0 (normal floats). */
static inline float vlogf(float x)
{
    union vmath_bits b = {.f = x};
    int32_t k = ((b.i >> 23) & 0xff) - 126;
    b.i = (b.i & 0x007fffff) | 0x3f000000; /* mantissa m in [0.5, 1) */
    float m = b.f;
    /* m < √½: use 2m − 1 and k − 1, so that the argument stays near 0. */
    int small = m < 0.707106781186547524f;
    k -= small;
    float f = small ? m + m - 1.0f : m - 1.0f;
    float z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float kf = (float)k;
    float y = f * z * p - 2.12194440e-4f * kf - 0.5f * z;
    return f + y + 0.693359375f * kf;
}

/*
 * The same two functions on 8 lanes at once, with GCC's vector extensions
 * (plain C operators on vector types; AVX/AVX-512 or SSE pairs, whichever
 * the target has). GCC 12 did not vectorise the scalar versions' loops here
 * on its own, even when it reported that it had.
 */
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

/* Lane-wise m ? a : b, m from a comparison (all ones or all zeros). */
static inline vf8 vsel8(vi8 m, vf8 a, vf8 b)
{
    return (vf8)((m & (vi8)a) | (~m & (vi8)b));
}

static inline vf8 vsplat8(float x)
{
    return (vf8){x, x, x, x, x, x, x, x};
}

static inline vf8 vexpf8(vf8 x)
{
    vf8 lo = vsplat8(-87.0f), hi = vsplat8(88.0f);
    x = vsel8(x < lo, lo, x);
    x = vsel8(x > hi, hi, x);
    vf8 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    vf8 r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vf8 p = vsplat8(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi8 e = (__builtin_convertvector(n, vi8) + 127) << 23;
    return p * (vf8)e;
}

static inline vf8 vlogf8(vf8 x)
{
    vi8 b = (vi8)x;
    vi8 k = ((b >> 23) & 0xff) - 126;
    vf8 m = (vf8)((b & 0x007fffff) | 0x3f000000);
    vi8 small = m < 0.707106781186547524f;
    k += small; /* small is −1 where true */
    vf8 f = vsel8(small, m + m - 1.0f, m - 1.0f);
    vf8 z = f * f;
    vf8 p = vsplat8(7.0376836292e-2f);
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    vf8 kf = __builtin_convertvector(k, vf8);
    vf8 y = f * z * p - 2.12194440e-4f * kf - 0.5f * z;
    return f + y + 0.693359375f * kf;
}

#endif
