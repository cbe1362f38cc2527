/* Philox-based random numbers (see rng.h for the counter scheme). */
#include "core/rng.h"

#include <Random123/philox.h>
#include <math.h>

void rng_block(uint32_t out[4], uint64_t seed, uint32_t purpose, uint32_t stream, uint32_t id, uint32_t index)
{
    philox4x32_ctr_t c = {{index, id, stream, purpose}};
    philox4x32_key_t k = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    philox4x32_ctr_t r = philox4x32(c, k);
    for (int i = 0; i < 4; i++)
        out[i] = r.v[i];
}

/* 24 random bits to a float in (0, 1), never 0 or 1. */
static inline float u01(uint32_t w)
{
    return ((float)(w >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

void rng_uniform(float *out, size_t n, float lo, float hi, uint64_t seed, uint32_t purpose, uint32_t stream,
                 uint32_t id)
{
    rng_uniform_from(out, 0, n, lo, hi, seed, purpose, stream, id);
}

void rng_uniform_from(float *out, size_t first, size_t n, float lo, float hi, uint64_t seed, uint32_t purpose,
                      uint32_t stream, uint32_t id)
{
    uint32_t w[4];
    for (size_t i = first; i < first + n; i++) {
        if (i % 4 == 0 || i == first)
            rng_block(w, seed, purpose, stream, id, (uint32_t)(i / 4));
        out[i - first] = lo + (hi - lo) * u01(w[i % 4]);
    }
}

void rng_normal(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t stream, uint32_t id)
{
    uint32_t w[4];
    for (size_t i = 0; i < n; i += 2) {
        if (i % 4 == 0)
            rng_block(w, seed, purpose, stream, id, (uint32_t)(i / 4));
        /* Box-Muller in double: the pair (w[j], w[j+1]) gives two normals. */
        size_t j = i % 4;
        double r = sqrt(-2.0 * log((double)u01(w[j])));
        double t = 6.283185307179586 * (double)u01(w[j + 1]);
        out[i] = (float)(r * cos(t));
        if (i + 1 < n)
            out[i + 1] = (float)(r * sin(t));
    }
}

void rng_permutation(uint32_t *perm, size_t n, uint64_t seed, uint32_t purpose, uint32_t stream)
{
    uint32_t w[4];
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t step = n - i;
        if (step % 2 == 0)
            rng_block(w, seed, purpose, stream, 0, (uint32_t)(step / 2));
        /* 64 random bits scaled to [0, i): bias below 2^-32 for any n < 2^32. */
        uint64_t r = ((uint64_t)w[(step % 2) * 2] << 32) | w[(step % 2) * 2 + 1];
        size_t j = (size_t)(((unsigned __int128)r * i) >> 64);
        uint32_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
}
