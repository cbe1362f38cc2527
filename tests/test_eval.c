/*
 * Evaluation, under mpiexec with P = 1, 2, 4:
 *   - IWAE with K = 1 equals the single-sample ELBO estimate with the same ε,
 *     computed independently here in double, and the evaluator's mean −ELBO
 *     equals the mean of per-sample values summed here;
 *   - on a trained model the bound rises with K (1 < 10 < 100): tabular data
 *     with 2 latent factors, so the posterior is informative;
 *   - on a model with a 1-D latent, IWAE with K = 5000 converges to log p(x)
 *     computed by numerical integration over z (a 20001-point grid);
 *   - P ranks give the same numbers as 1 rank, bit for bit;
 *   - the test −ELBO that training reports at an epoch's end equals, bit for
 *     bit, the evaluator's on the checkpoint of that step (what `vae_dist
 *     eval` computes), on P and on 1 rank;
 *   - AUROC on a hand-checked example.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "comm/comm.h"
#include "core/config.h"
#include "core/rng.h"
#include "data/ckpt.h"
#define VAE_TEST_MPI_ASSERT
#include "testutil.h"
#include "infer/eval.h"
#include "train/train.h"

static struct comm *g_world;
static char g_dir[256];

/* Train a small model on a synthetic set ("data": images, Bernoulli;
 * "tabular": 2 latent factors, Gaussian with learned variance). */
static void trained_model(struct vae *m, long latent, long steps, const char *run, const char *data)
{
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s/%s.h5", g_dir, data);
    if (!strcmp(data, "tabular"))
        cfg.likelihood = LIK_GAUSSIAN_LEARNED;
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s/%s", g_dir, run);
    cfg.hidden.v[0] = 16;
    cfg.latent = latent;
    cfg.batch_size = 32;
    cfg.epochs = 100;
    cfg.max_steps = steps;
    cfg.lr = 3e-3;
    cfg.log_every = 1000;
    cfg.ckpt_every_seconds = 0;
    struct train_result r;
    assert_int_equal(train_run(&cfg, g_world, "none", &r), 0);
    assert_int_equal(vae_init(m, &cfg, 16, NULL, EVAL_CHUNK), 0);
    memcpy(m->params, r.params, m->n_params * sizeof *m->params);
    train_result_free(&r);
}

static void read_test(const struct comm *c, struct shard *s, const char *data)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s.h5", g_dir, data);
    struct dataset_info info;
    assert_int_equal(dataset_open(c, path, &info), 0);
    assert_int_equal(dataset_read_shard(c, path, &info, "test", 0, EVAL_CHUNK, s), 0);
}

static void test_iwae_k1_is_single_sample_elbo(void **state)
{
    (void)state;
    struct vae m;
    trained_model(&m, 3, 50, "k1", "data");
    struct shard s;
    read_test(comm_self(), &s, "data");
    size_t n_z = 3;
    float x[16], eps[3], mu[3], lv[3];
    double worst = 0;
    for (size_t i = 0; i < 20; i++) {
        shard_rows_to_float(x, &s, i, 1);
        rng_normal(eps, n_z, 1, RNG_EVAL_NOISE, 0, s.ids[i]);
        double rec;
        vae_forward(&m, x, eps, 1, &rec, NULL);
        vae_encode(&m, mu, lv, x, 1);
        /* log p(z) − log q(z|x) for z = μ + σε, in double. */
        double lpq = 0;
        for (size_t j = 0; j < n_z; j++) {
            double z = mu[j] + exp(0.5 * lv[j]) * eps[j];
            lpq += -0.5 * z * z + 0.5 * (double)eps[j] * eps[j] + 0.5 * lv[j];
        }
        double logw;
        vae_log_weights(&m, &logw, x, mu, lv, eps, 1);
        worst = nan_max(worst, fabs(logw - (-rec + lpq)) / fabs(rec));
    }
    printf("IWAE K=1 vs single-sample ELBO (same eps): max relative difference %.2e\n", worst);
    assert_true(worst < 1e-5);
    /* The evaluator's mean −ELBO against the per-sample values, summed here in double. */
    struct eval_result r;
    eval_shard(comm_self(), &m, &s, 1, 0, NULL, NULL, &r);
    double sum = 0;
    for (size_t i = 0; i < s.n_rows; i++) {
        double rec, kl;
        shard_rows_to_float(x, &s, i, 1);
        rng_normal(eps, n_z, 1, RNG_EVAL_NOISE, 0, s.ids[i]);
        vae_forward(&m, x, eps, 1, &rec, &kl);
        sum += rec + kl;
    }
    double mean = sum / (double)s.n_rows;
    printf("evaluator -ELBO %.9f over %zu samples, mean of per-sample values %.9f\n", r.neg_elbo, r.n, mean);
    assert_int_equal(r.n, s.n_rows);
    assert_true(fabs(r.neg_elbo - mean) <= 1e-6 * fabs(mean));
    shard_free(&s);
    vae_free(&m);
}

static void test_bound_rises_with_k_and_rank_invariant(void **state)
{
    (void)state;
    struct vae m;
    trained_model(&m, 2, 1500, "rise", "tabular");
    struct shard s;
    read_test(g_world, &s, "tabular");
    struct eval_result r[3];
    long ks[3] = {1, 10, 100};
    for (int i = 0; i < 3; i++)
        eval_shard(g_world, &m, &s, 1, ks[i], NULL, NULL, &r[i]);
    if (comm_rank(g_world) == 0)
        printf("trained model, %zu test samples: -ELBO %.4f, -IWAE K=1 %.4f, K=10 %.4f, K=100 %.4f\n", r[0].n,
               r[0].neg_elbo, r[0].neg_iwae, r[1].neg_iwae, r[2].neg_iwae);
    assert_true(r[0].neg_iwae > r[1].neg_iwae);
    assert_true(r[1].neg_iwae > r[2].neg_iwae);
    /* The same on 1 rank, bit for bit. */
    if (comm_rank(g_world) == 0) {
        struct shard all;
        read_test(comm_self(), &all, "tabular");
        for (int i = 0; i < 3; i++) {
            struct eval_result one;
            eval_shard(comm_self(), &m, &all, 1, ks[i], NULL, NULL, &one);
            assert_memory_equal(&one.neg_elbo, &r[i].neg_elbo, sizeof(double));
            assert_memory_equal(&one.neg_iwae, &r[i].neg_iwae, sizeof(double));
        }
        printf("P = %d: -ELBO and -IWAE identical to 1 rank for K = 1, 10, 100\n", comm_size(g_world));
        shard_free(&all);
    }
    comm_barrier(g_world);
    shard_free(&s);
    vae_free(&m);
}

static void test_iwae_converges_to_integral(void **state)
{
    (void)state;
    struct vae m;
    trained_model(&m, 1, 300, "integral", "data");
    if (comm_rank(g_world) == 0) {
        struct shard s;
        read_test(comm_self(), &s, "data");
        s.n_rows = 5;
        float iw[5];
        struct eval_result r;
        eval_shard(comm_self(), &m, &s, 1, 5000, NULL, iw, &r);
        /* log p(x) = log ∫ p(x|z) N(z; 0, 1) dz on a grid. With q = N(0, 1)
         * (μ = 0, log σ² = 0) and ε = z, a log weight is exactly log p(x|z). */
        enum { G = 20001 };
        const double lo = -10, hi = 10, dz = (hi - lo) / (G - 1);
        float zero = 0, z[EVAL_CHUNK];
        double lw[EVAL_CHUNK], worst = 0;
        for (size_t i = 0; i < 5; i++) {
            float x[16];
            shard_rows_to_float(x, &s, i, 1);
            double mx = -INFINITY, acc = 0;
            for (int g0 = 0; g0 < G; g0 += EVAL_CHUNK) {
                int n = G - g0 < EVAL_CHUNK ? G - g0 : EVAL_CHUNK;
                for (int g = 0; g < n; g++)
                    z[g] = (float)(lo + (g0 + g) * dz);
                vae_log_weights(&m, lw, x, &zero, &zero, z, (size_t)n);
                for (int g = 0; g < n; g++) {
                    double t = lw[g] - 0.5 * (double)z[g] * z[g] - 0.5 * log(2 * 3.14159265358979323846);
                    if (t > mx) {
                        acc = acc * exp(mx - t) + 1;
                        mx = t;
                    } else {
                        acc += exp(t - mx);
                    }
                }
            }
            double log_px = mx + log(acc * dz);
            double d = fabs(-iw[i] - log_px);
            printf("sample %zu: log p(x) by integration %.5f, IWAE K=5000 %.5f, |diff| %.2e\n", i, log_px,
                   -iw[i], d);
            worst = nan_max(worst, d);
        }
        assert_true(worst < 0.02);
        shard_free(&s);
    }
    comm_barrier(g_world);
    vae_free(&m);
}

static void test_epoch_eval_equals_eval_of_checkpoint(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s/data.h5", g_dir);
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s/epoch_eval", g_dir);
    cfg.hidden.v[0] = 16;
    cfg.latent = 3;
    cfg.batch_size = 64;
    cfg.epochs = 2; /* 512 / 64 = 8 steps an epoch: two epoch ends, a checkpoint at the last */
    cfg.log_every = 1000;
    cfg.ckpt_every_seconds = 0;
    struct train_result r;
    assert_int_equal(train_run(&cfg, g_world, "none", &r), 0);
    assert_true(isfinite(r.test_neg_elbo));
    /* The checkpoint, loaded as the eval command loads it. */
    struct vae m;
    assert_int_equal(vae_init(&m, &cfg, 16, NULL, EVAL_CHUNK), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/ckpt/step-00000016.h5", cfg.run_dir);
    struct ckpt_meta want = {.optim = -1};
    struct ckpt_buffer params = {"/model/params", m.params, m.n_params, 0, 0, 0};
    struct ckpt_content ct = {m.tensor, m.n_tensors, &params, 1, 0, 0, 0, NULL, NULL};
    assert_int_equal(ckpt_load(g_world, path, &want, &ct, NULL), 0);
    const struct comm *comms[2] = {g_world, comm_self()};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && comm_rank(g_world) != 0)
            break;
        struct shard s;
        struct eval_result e;
        read_test(comms[i], &s, "data");
        eval_shard(comms[i], &m, &s, cfg.seed, 0, NULL, NULL, &e);
        if (comm_rank(g_world) == 0)
            printf("epoch-end test -ELBO %.17g, evaluator on the checkpoint (%d ranks) %.17g\n",
                   r.test_neg_elbo, comm_size(comms[i]), e.neg_elbo);
        assert_memory_equal(&e.neg_elbo, &r.test_neg_elbo, sizeof(double));
        shard_free(&s);
    }
    comm_barrier(g_world);
    vae_free(&m);
    train_result_free(&r);
}

static void test_auroc(void **state)
{
    (void)state;
    float score[] = {0.1f, 0.4f, 0.35f, 0.8f};
    uint8_t label[] = {0, 0, 1, 1};
    assert_true(fabs(eval_auroc(score, label, 4) - 0.75) < 1e-12);
    float tie[] = {1, 1, 1, 1};
    assert_true(fabs(eval_auroc(tie, label, 4) - 0.5) < 1e-12);
}

int main(int argc, char **argv)
{
    g_world = comm_init(&argc, &argv);
    test_dir_setup(g_world, g_dir, "vae_test_eval", 512, 600, 16,
                   2048); /* 600 test rows: 3 evaluation chunks, the last partial */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iwae_k1_is_single_sample_elbo),
        cmocka_unit_test(test_bound_rises_with_k_and_rank_invariant),
        cmocka_unit_test(test_iwae_converges_to_integral),
        cmocka_unit_test(test_epoch_eval_equals_eval_of_checkpoint),
        cmocka_unit_test(test_auroc),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rc = test_dir_finish(g_world, rc, g_dir);
    comm_finalize();
    return rc;
}
