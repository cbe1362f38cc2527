/*
 * Counter-based randomness (Philox4x32-10 from Random123).
 *
 * Every random number is a pure function of (seed, purpose, stream, id,
 * index): key = seed, counter = {index, id, stream, purpose}. There is no
 * generator state to save in checkpoints and nothing depends on which rank
 * draws what, so the weights, the per-epoch permutation and the
 * reparameterization noise are the same for any number of ranks.
 *
 *   purpose         stream        id                 index
 *   RNG_INIT        tensor index  0                  element / 4
 *   RNG_SHUFFLE     epoch         0                  Fisher-Yates step
 *   RNG_NOISE       step          global sample id   latent element / 4
 *   RNG_EVAL_NOISE  draw k        global sample id   latent element / 4
 *   RNG_PRIOR       0             sample number      latent element / 4
 */
#ifndef VAE_RNG_H
#define VAE_RNG_H

#include <stddef.h>
#include <stdint.h>

enum rng_purpose {
    RNG_INIT = 1,
    RNG_SHUFFLE = 2,
    RNG_NOISE = 3,
    RNG_EVAL_NOISE = 4,
    RNG_PRIOR = 5,
    RNG_SYNTH = 99, /* synthetic datasets (vae_dist synth, tests, benchmarks) */
    RNG_TEST = 98,  /* inputs of the unit tests only */
};

/* The four raw 32-bit words of one Philox block. */
void rng_block(uint32_t out[4], uint64_t seed, uint32_t purpose, uint32_t stream, uint32_t id,
               uint32_t index);

/* n uniforms in (lo, hi), open at both ends; element i from block i/4. */
void rng_uniform(float *out, size_t n, float lo, float hi, uint64_t seed, uint32_t purpose, uint32_t stream,
                 uint32_t id);
/* Elements [first, first + n) of that sequence into out[0, n). */
void rng_uniform_from(float *out, size_t first, size_t n, float lo, float hi, uint64_t seed, uint32_t purpose,
                      uint32_t stream, uint32_t id);

/* n standard normals (Box-Muller on each pair of words); element i from block i/4. */
void rng_normal(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t stream, uint32_t id);

/* perm = a uniformly random permutation of 0..n-1 (Fisher-Yates), keyed by stream. */
void rng_permutation(uint32_t *perm, size_t n, uint64_t seed, uint32_t purpose, uint32_t stream);

#endif
