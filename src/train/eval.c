/* Evaluation: −ELBO and the IWAE bound, rank-count invariant (see eval.h). */
#include "train/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"

#define FIX 16777216.0 /* 2^24 */

void eval_shard(const struct comm *c, struct vae *m, const struct shard *s, uint64_t seed, long k,
                float *per_elbo, float *per_iwae, struct eval_result *out)
{
    double t0 = timer_now();
    size_t n_z = m->n_latent, n_d = s->n_dim;
    VAE_ASSERT(m->max_batch >= EVAL_K_CHUNK);
    float *x = malloc(n_d * sizeof *x), *eps = malloc(EVAL_K_CHUNK * n_z * sizeof *eps);
    float *mu = malloc(2 * n_z * sizeof *mu);
    double *logw = malloc(EVAL_K_CHUNK * sizeof *logw);
    VAE_ASSERT(x && eps && mu && logw);
    float *lv = mu + n_z;
    int64_t sum[4] = {0, 0, 0, 0}; /* rec, kl, −iwae, samples */
    for (size_t i = 0; i < s->n_rows; i++) {
        uint32_t id = s->ids[i];
        shard_rows_to_float(x, s, i, 1);
        rng_normal(eps, n_z, seed, RNG_EVAL_NOISE, 0, id);
        double rec, kl;
        vae_forward(m, x, eps, 1, &rec, &kl);
        sum[0] += (int64_t)llrint(rec * FIX);
        sum[1] += (int64_t)llrint(kl * FIX);
        if (per_elbo)
            per_elbo[i] = (float)(rec + kl);
        if (k > 0) {
            vae_encode(m, mu, lv, x, 1);
            double mx = -INFINITY, acc = 0; /* streaming log-sum-exp */
            for (long k0 = 0; k0 < k; k0 += EVAL_K_CHUNK) {
                size_t n_k = (size_t)(k - k0 < EVAL_K_CHUNK ? k - k0 : EVAL_K_CHUNK);
                for (size_t j = 0; j < n_k; j++)
                    rng_normal(eps + j * n_z, n_z, seed, RNG_EVAL_NOISE, (uint32_t)(k0 + (long)j), id);
                vae_log_weights(m, logw, x, mu, lv, eps, n_k);
                for (size_t j = 0; j < n_k; j++) {
                    if (logw[j] > mx) {
                        acc = acc * exp(mx - logw[j]) + 1.0;
                        mx = logw[j];
                    } else {
                        acc += exp(logw[j] - mx);
                    }
                }
            }
            double iwae = mx + log(acc) - log((double)k);
            sum[2] += (int64_t)llrint(-iwae * FIX);
            if (per_iwae)
                per_iwae[i] = (float)-iwae;
        }
        sum[3]++;
    }
    comm_allreduce_sum_i64(c, sum, 4);
    double n = (double)sum[3];
    out->n = (size_t)sum[3];
    out->rec = (double)sum[0] / FIX / n;
    out->kl = (double)sum[1] / FIX / n;
    out->neg_elbo = out->rec + out->kl;
    out->k = k;
    out->neg_iwae = k > 0 ? (double)sum[2] / FIX / n : NAN;
    double dt = timer_now() - t0;
    comm_allreduce_max_f64(c, &dt, 1);
    out->seconds = dt;
    free(x);
    free(eps);
    free(mu);
    free(logw);
}

static const float *g_sort_score;

static int by_score(const void *a, const void *b)
{
    float x = g_sort_score[*(const size_t *)a], y = g_sort_score[*(const size_t *)b];
    return (x > y) - (x < y);
}

double eval_auroc(const float *score, const uint8_t *label, size_t n)
{
    size_t *idx = malloc(n * sizeof *idx);
    VAE_ASSERT(idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    g_sort_score = score;
    qsort(idx, n, sizeof *idx, by_score);
    /* Mann-Whitney: sum of the positives' ranks, ties given their mean rank. */
    double rank_sum = 0, n_pos = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && score[idx[j]] == score[idx[i]])
            j++;
        double mean_rank = 0.5 * (double)(i + 1 + j);
        for (size_t t = i; t < j; t++)
            if (label[idx[t]]) {
                rank_sum += mean_rank;
                n_pos++;
            }
        i = j;
    }
    free(idx);
    double n_neg = (double)n - n_pos;
    if (n_pos == 0 || n_neg == 0)
        return NAN;
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg);
}
