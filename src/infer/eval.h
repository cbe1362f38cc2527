/*
 * The evaluator, used by training (the epoch test −ELBO) and by the eval and
 * score commands alike: the −ELBO (analytic KL, one ε per sample) and the
 * importance-weighted bound of Burda et al.,
 * log p(x) ≥ E[log (1/K) Σ_k p(x, z_k)/q(z_k|x)], with a streaming log-sum-exp.
 *
 * Every number is the same on any number of ranks, bit for bit. Samples are
 * evaluated in chunks of EVAL_CHUNK consecutive global rows, starting at
 * multiples of EVAL_CHUNK, so a chunk holds the same rows whatever P is (a
 * shard is read in whole chunks: dataset_read_shard with unit EVAL_CHUNK).
 * A sample's K draws ε_k = Philox(seed, RNG_EVAL_NOISE, k, sample id) are
 * decoded in chunks of EVAL_CHUNK draws; the sums over samples are taken in
 * 64-bit fixed point (EVAL_FIXED_SCALE), which is associative. Draw 0 is the
 * ε of the −ELBO, so K = 1 gives the single-sample ELBO estimate.
 */
#ifndef VAE_EVAL_H
#define VAE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "data/dataset.h"
#include "model/vae.h"

/* Rows per evaluation chunk, draws per IWAE chunk, and the batch of the commands. */
#define EVAL_CHUNK 256

struct eval_result {
    size_t n;                 /* samples evaluated (all ranks) */
    double neg_elbo, rec, kl; /* means per sample */
    long k;                   /* importance samples (0: none) */
    double neg_iwae;          /* −(IWAE bound), mean per sample (NAN if k = 0) */
    double seconds;
};

/*
 * Evaluate this rank's rows of s: consecutive global ids from a multiple of
 * EVAL_CHUNK (or none). m needs max_batch >= EVAL_CHUNK. per_elbo / per_iwae
 * (s->n_rows), when not NULL, receive each row's −ELBO and −IWAE. Collective;
 * the result is the same on every rank.
 */
void eval_shard(const struct comm *c, struct vae *m, const struct shard *s, uint64_t seed, long k,
                float *per_elbo, float *per_iwae, struct eval_result *out);

/* Area under the ROC curve of scores against 0/1 labels (ties count one half); local. */
double eval_auroc(const float *score, const uint8_t *label, size_t n);

#endif
