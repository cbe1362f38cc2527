/*
 * Evaluation: the −ELBO (analytic KL, one ε per sample) and the importance-
 * weighted bound of Burda et al., log p(x) ≥ E[log (1/K) Σ_k p(x, z_k)/q(z_k|x)],
 * computed with a streaming log-sum-exp.
 *
 * Every number is the same on any number of ranks, bit for bit: each sample
 * is encoded alone, its K draws ε_k = Philox(seed, RNG_EVAL_NOISE, k, sample id)
 * are decoded in fixed chunks of EVAL_K_CHUNK, and the sums over samples are
 * taken in 64-bit fixed point (·2^24), which is associative. Draw 0 is the ε
 * of the −ELBO, so K = 1 gives the single-sample ELBO estimate.
 */
#ifndef VAE_EVAL_H
#define VAE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "data/dataset.h"
#include "model/vae.h"

#define EVAL_K_CHUNK 250

struct eval_result {
    size_t n;                 /* samples evaluated (all ranks) */
    double neg_elbo, rec, kl; /* means per sample */
    long k;                   /* importance samples (0: none) */
    double neg_iwae;          /* −(IWAE bound), mean per sample (NAN if k = 0) */
    double seconds;
};

/*
 * Evaluate this rank's rows of s (global ids in s->ids); m needs max_batch >=
 * EVAL_K_CHUNK. per_elbo / per_iwae (s->n_rows), when not NULL, receive each
 * row's −ELBO and −IWAE. Collective; the result is the same on every rank.
 */
void eval_shard(const struct comm *c, struct vae *m, const struct shard *s, uint64_t seed, long k,
                float *per_elbo, float *per_iwae, struct eval_result *out);

/* Area under the ROC curve of scores against 0/1 labels (ties count one half). */
double eval_auroc(const float *score, const uint8_t *label, size_t n);

#endif
