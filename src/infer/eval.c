/* Evaluation: −ELBO and the IWAE bound, rank-count invariant (see eval.h). */
#include "infer/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"

/* Per-sample losses are summed as int64 multiples of 2^-24. */
#define EVAL_FIXED_SCALE 16777216.0

/* Workspace for one chunk of EVAL_CHUNK rows or draws. */
struct eval_work {
    float *x, *eps, *mu, *logvar; /* (C, D), (C, Z), (C, Z), (C, Z) */
    double *rec, *kl, *logw;      /* (C) each */
};

static void work_init(struct eval_work *w, size_t n_d, size_t n_z)
{
    const size_t n = EVAL_CHUNK;
    w->x = malloc(n * n_d * sizeof *w->x);
    w->eps = malloc(n * n_z * sizeof *w->eps);
    w->mu = malloc(n * n_z * sizeof *w->mu);
    w->logvar = malloc(n * n_z * sizeof *w->logvar);
    w->rec = malloc(3 * n * sizeof *w->rec);
    VAE_ASSERT(w->x && w->eps && w->mu && w->logvar && w->rec);
    w->kl = w->rec + n;
    w->logw = w->kl + n;
}

static void work_free(struct eval_work *w)
{
    free(w->x);
    free(w->eps);
    free(w->mu);
    free(w->logvar);
    free(w->rec);
}

/* −(IWAE bound) of one sample x (D) with encoder output mu, logvar (Z). */
static double neg_iwae(struct vae *m, struct eval_work *w, const float *x, const float *mu,
                       const float *logvar, uint32_t id, uint64_t seed, long k)
{
    size_t n_z = m->n_latent;
    double mx = -INFINITY, acc = 0; /* streaming log-sum-exp */
    for (long k0 = 0; k0 < k; k0 += EVAL_CHUNK) {
        size_t n_k = (size_t)(k - k0 < EVAL_CHUNK ? k - k0 : EVAL_CHUNK);
        for (size_t j = 0; j < n_k; j++)
            rng_normal(w->eps + j * n_z, n_z, seed, RNG_EVAL_NOISE, (uint32_t)(k0 + (long)j), id);
        vae_log_weights(m, w->logw, x, mu, logvar, w->eps, n_k);
        for (size_t j = 0; j < n_k; j++) {
            if (w->logw[j] > mx) {
                acc = acc * exp(mx - w->logw[j]) + 1.0;
                mx = w->logw[j];
            } else {
                acc += exp(w->logw[j] - mx);
            }
        }
    }
    return -(mx + log(acc) - log((double)k));
}

static int64_t fixed(double v)
{
    return (int64_t)llrint(v * EVAL_FIXED_SCALE);
}

void eval_shard(const struct comm *c, struct vae *m, const struct shard *s, uint64_t seed, long k,
                float *per_elbo, float *per_iwae, struct eval_result *out)
{
    double t0 = timer_now();
    size_t n_z = m->n_latent, n_d = s->n_dim;
    VAE_ASSERT(m->max_batch >= EVAL_CHUNK);
    VAE_ASSERT(s->n_rows == 0 || s->ids[0] % EVAL_CHUNK == 0);
    struct eval_work w;
    work_init(&w, n_d, n_z);
    int64_t sum[4] = {0, 0, 0, 0}; /* rec, kl, −iwae, samples */
    for (size_t i0 = 0; i0 < s->n_rows; i0 += EVAL_CHUNK) {
        size_t n = s->n_rows - i0 < EVAL_CHUNK ? s->n_rows - i0 : EVAL_CHUNK;
        shard_rows_to_float(w.x, s, i0, n);
        for (size_t j = 0; j < n; j++)
            rng_normal(w.eps + j * n_z, n_z, seed, RNG_EVAL_NOISE, 0, s->ids[i0 + j]);
        vae_forward(m, w.x, w.eps, n, w.rec, w.kl);
        if (k > 0)
            vae_encode(m, w.mu, w.logvar, w.x, n);
        for (size_t j = 0; j < n; j++) {
            sum[0] += fixed(w.rec[j]);
            sum[1] += fixed(w.kl[j]);
            if (per_elbo)
                per_elbo[i0 + j] = (float)(w.rec[j] + w.kl[j]);
            if (k <= 0)
                continue;
            double v =
                neg_iwae(m, &w, w.x + j * n_d, w.mu + j * n_z, w.logvar + j * n_z, s->ids[i0 + j], seed, k);
            sum[2] += fixed(v);
            if (per_iwae)
                per_iwae[i0 + j] = (float)v;
        }
        sum[3] += (int64_t)n;
    }
    work_free(&w);
    comm_allreduce_sum_i64(c, sum, 4);
    double n = (double)sum[3];
    out->n = (size_t)sum[3];
    out->rec = (double)sum[0] / EVAL_FIXED_SCALE / n;
    out->kl = (double)sum[1] / EVAL_FIXED_SCALE / n;
    out->neg_elbo = out->rec + out->kl;
    out->k = k;
    out->neg_iwae = k > 0 ? (double)sum[2] / EVAL_FIXED_SCALE / n : NAN;
    double dt = timer_now() - t0;
    comm_allreduce_max_f64(c, &dt, 1);
    out->seconds = dt;
}

struct scored {
    float score;
    uint8_t label;
};

static int by_score(const void *a, const void *b)
{
    float x = ((const struct scored *)a)->score, y = ((const struct scored *)b)->score;
    return (x > y) - (x < y);
}

double eval_auroc(const float *score, const uint8_t *label, size_t n)
{
    struct scored *s = malloc((n + 1) * sizeof *s);
    VAE_ASSERT(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (struct scored){score[i], label[i]};
    qsort(s, n, sizeof *s, by_score);
    /* Mann-Whitney: sum of the positives' ranks, ties given their mean rank. */
    double rank_sum = 0, n_pos = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j].score == s[i].score)
            j++;
        double mean_rank = 0.5 * (double)(i + 1 + j);
        for (size_t q = i; q < j; q++)
            if (s[q].label) {
                rank_sum += mean_rank;
                n_pos++;
            }
        i = j;
    }
    free(s);
    double n_neg = (double)n - n_pos;
    if (n_pos == 0 || n_neg == 0)
        return NAN;
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg);
}
