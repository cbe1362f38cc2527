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

#endif
