/*
 * Optimizers against the seed notes' formulas, written out by hand in double
 * (independent of optim.c): each runs 25 steps on a quadratic whose gradient
 * is g(θ) = a ⊙ θ − c, and the trajectories must agree to float precision.
 * RMSProp with Nesterov momentum follows Goodfellow et al. Algorithm 8.6
 * literally (gradient at the interim point θ + αv); optim.c stores the
 * look-ahead point instead, which must equal θ + αv of the reference.
 * Also: schedules, clipping, bias correction at step 1.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "core/config.h"
#include "optim/optim.h"

enum { N = 6, STEPS = 25 };
static const double A[N] = {0.5, 2.0, 1.0, 3.0, 0.1, 1.5};
static const double C[N] = {1.0, -2.0, 0.3, 0.7, -0.2, 4.0};
static const double THETA0[N] = {0.3, -0.1, 2.0, -1.5, 0.8, 0.0};

/* Gradients are scaled by g_scale: at 1e-4 they are as small as the
 * optimizers' δ matters (where δ stands in the formula shows). */
static double g_scale = 1.0;

static void grad_d(double *g, const double *t)
{
    for (int i = 0; i < N; i++)
        g[i] = g_scale * (A[i] * t[i] - C[i]);
}

/* Run optim.c for STEPS steps; params out (float). */
static void run_ours(struct config *cfg, float *p)
{
    struct optim o;
    float g[N];
    assert_int_equal(optim_init(&o, cfg, N, STEPS), 0);
    for (int i = 0; i < N; i++)
        p[i] = (float)THETA0[i];
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)(g_scale * (A[i] * p[i] - C[i]));
        optim_step(&o, p, g);
    }
    optim_free(&o);
}

static void expect_close(const float *ours, const double *ref, const char *what)
{
    double worst = 0;
    for (int i = 0; i < N; i++)
        worst = nan_max(worst, fabs(ours[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
    printf("%s: max deviation from the hand formula after %d steps %.2e\n", what, STEPS, worst);
    assert_true(worst < 2e-5);
}

static void test_sgd(void **state)
{
    (void)state;
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        struct config cfg;
        config_defaults(&cfg);
        cfg.optim = OPT_SGD;
        cfg.lr = 0.05;
        cfg.momentum = 0.9;
        cfg.nesterov = nesterov;
        float p[N];
        run_ours(&cfg, p);
        double t[N], v[N] = {0}, g[N];
        memcpy(t, THETA0, sizeof t);
        for (int s = 0; s < STEPS; s++) {
            grad_d(g, t);
            for (int i = 0; i < N; i++) {
                v[i] = 0.9 * v[i] + g[i];
                t[i] -= 0.05 * (nesterov ? g[i] + 0.9 * v[i] : v[i]);
            }
        }
        expect_close(p, t, nesterov ? "sgd nesterov" : "sgd momentum");
    }
}

static void test_adagrad_notes(void **state)
{
    (void)state;
    for (g_scale = 1.0; g_scale > 1e-9; g_scale *= 1e-6) { /* 1, then 1e-6: δ = 1e-7 matters */
        struct config cfg;
        config_defaults(&cfg);
        cfg.optim = OPT_ADAGRAD;
        cfg.lr = 0.1;
        float p[N];
        run_ours(&cfg, p);
        /* Algorithm 8.4: r ← r + g⊙g; Δθ = −ε/(δ + √r) ⊙ g, δ = 1e-7. */
        double t[N], r[N] = {0}, g[N];
        memcpy(t, THETA0, sizeof t);
        for (int s = 0; s < STEPS; s++) {
            grad_d(g, t);
            for (int i = 0; i < N; i++) {
                r[i] += g[i] * g[i];
                t[i] += -0.1 / (1e-7 + sqrt(r[i])) * g[i];
            }
        }
        expect_close(p, t, g_scale < 1 ? "adagrad (notes 8.4), gradients x 1e-6" : "adagrad (notes 8.4)");
    }
    g_scale = 1.0;
}

static void test_rmsprop_notes(void **state)
{
    (void)state;
    for (g_scale = 1.0; g_scale > 1e-5; g_scale *= 1e-4) { /* 1, then 1e-4: δ = 1e-6 matters */
        struct config cfg;
        config_defaults(&cfg);
        cfg.optim = OPT_RMSPROP;
        cfg.lr = 0.01;
        cfg.rho = 0.9;
        float p[N];
        run_ours(&cfg, p);
        /* Algorithm 8.5: r ← ρr + (1−ρ)g⊙g; Δθ = −ε/√(δ + r) ⊙ g, δ = 1e-6. */
        double t[N], r[N] = {0}, g[N];
        memcpy(t, THETA0, sizeof t);
        for (int s = 0; s < STEPS; s++) {
            grad_d(g, t);
            for (int i = 0; i < N; i++) {
                r[i] = 0.9 * r[i] + 0.1 * g[i] * g[i];
                t[i] += -0.01 / sqrt(1e-6 + r[i]) * g[i];
            }
        }
        expect_close(p, t, g_scale < 1 ? "rmsprop (notes 8.5), gradients x 1e-4" : "rmsprop (notes 8.5)");
    }
    g_scale = 1.0;
}

static void test_rmsprop_nesterov(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    cfg.optim = OPT_RMSPROP;
    cfg.lr = 0.01;
    cfg.rho = 0.9;
    cfg.momentum = 0.8;
    cfg.nesterov = 1;
    float p[N];
    run_ours(&cfg, p);
    /* Algorithm 8.6: θ̃ = θ + αv; g at θ̃; r ← ρr + (1−ρ)g⊙g;
     * v ← αv − ε/√(δ + r) ⊙ g; θ ← θ + v. */
    double t[N], v[N] = {0}, r[N] = {0}, g[N], interim[N], look[N];
    memcpy(t, THETA0, sizeof t);
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < N; i++)
            interim[i] = t[i] + 0.8 * v[i];
        grad_d(g, interim);
        for (int i = 0; i < N; i++) {
            r[i] = 0.9 * r[i] + 0.1 * g[i] * g[i];
            v[i] = 0.8 * v[i] - 0.01 / sqrt(1e-6 + r[i]) * g[i];
            t[i] += v[i];
        }
    }
    for (int i = 0; i < N; i++)
        look[i] = t[i] + 0.8 * v[i];
    expect_close(p, look, "rmsprop nesterov (Alg. 8.6, look-ahead point)");
}

static void test_adam_and_adamw(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        struct config cfg;
        config_defaults(&cfg);
        cfg.optim = w ? OPT_ADAMW : OPT_ADAM;
        cfg.lr = 0.01;
        cfg.weight_decay = w ? 0.1 : 0.0;
        float p[N];
        run_ours(&cfg, p);
        double t[N], m[N] = {0}, v[N] = {0}, g[N];
        memcpy(t, THETA0, sizeof t);
        for (int s = 1; s <= STEPS; s++) {
            grad_d(g, t);
            for (int i = 0; i < N; i++) {
                t[i] -= 0.01 * 0.1 * w * t[i];
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                double mh = m[i] / (1 - pow(0.9, s)), vh = v[i] / (1 - pow(0.999, s));
                t[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
            }
        }
        expect_close(p, t, w ? "adamw" : "adam");
    }
}

static void test_adam_first_step_is_lr_sign(void **state)
{
    (void)state;
    /* With bias correction the first Adam step is lr·sign(g) (up to eps). */
    struct config cfg;
    config_defaults(&cfg);
    struct optim o;
    assert_int_equal(optim_init(&o, &cfg, 2, 1), 0);
    float p[2] = {1, 1}, g[2] = {1e-3f, -50};
    optim_step(&o, p, g);
    assert_true(fabsf(p[0] - (1 - 1e-3f)) < 1e-6f);
    assert_true(fabsf(p[1] - (1 + 1e-3f)) < 1e-6f);
    optim_free(&o);
}

static void test_schedules(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    cfg.lr = 1.0;
    cfg.schedule = SCHED_WARMUP;
    cfg.warmup_steps = 4;
    struct optim o;
    assert_int_equal(optim_init(&o, &cfg, 1, 100), 0);
    assert_true(fabs(optim_lr(&o, 0) - 0.25) < 1e-12);
    assert_true(fabs(optim_lr(&o, 3) - 1.0) < 1e-12);
    assert_true(fabs(optim_lr(&o, 50) - 1.0) < 1e-12);
    optim_free(&o);
    cfg.schedule = SCHED_COSINE;
    cfg.min_lr = 0.1;
    assert_int_equal(optim_init(&o, &cfg, 1, 104), 0);
    assert_true(fabs(optim_lr(&o, 4) - 1.0) < 1e-12);
    assert_true(fabs(optim_lr(&o, 54) - 0.55) < 1e-12);
    assert_true(fabs(optim_lr(&o, 104) - 0.1) < 1e-12);
    optim_free(&o);
}

static void test_clip(void **state)
{
    (void)state;
    float g[2] = {3, 4};
    double norm = sqrt(optim_sum_squares(g, 2));
    assert_true(fabs(norm - 5) < 1e-9);
    optim_clip(g, 2, norm, 10);
    assert_true(g[0] == 3 && g[1] == 4);
    optim_clip(g, 2, norm, 0);
    assert_true(g[0] == 3 && g[1] == 4);
    /* A slice is scaled by the global norm: here the first half of {3, 4}. */
    optim_clip(g, 1, norm, 1);
    assert_true(fabs(g[0] - 0.6) < 1e-6 && g[1] == 4);
    optim_clip(g + 1, 1, norm, 1);
    assert_true(fabs(sqrt(optim_sum_squares(g, 2)) - 1) < 1e-6);
    /* Just above the limit: scaled to it exactly. */
    float h[2] = {3, 4};
    optim_clip(h, 2, 5.0, 4.0);
    assert_true(fabs(h[0] - 2.4) < 1e-6 && fabs(h[1] - 3.2) < 1e-6);
}

/* Every optimizer holding only the state of a slice [2, 5) steps that slice
 * to the same bits as the one holding it all (as a rank of a node does),
 * and leaves the rest alone. */
static void test_slice_matches_whole(void **state)
{
    (void)state;
    const int kinds[5] = {OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW};
    for (int k = 0; k < 10; k++) {
        struct config cfg;
        config_defaults(&cfg);
        cfg.optim = kinds[k % 5];
        cfg.momentum = 0.9;
        cfg.nesterov = k >= 5;
        cfg.weight_decay = 0.01;
        struct optim whole, part;
        assert_int_equal(optim_init(&whole, &cfg, N, STEPS), 0);
        assert_int_equal(optim_init_slice(&part, &cfg, N, 2, 5, STEPS), 0);
        float p[N], q[N], g[N];
        for (int i = 0; i < N; i++)
            p[i] = q[i] = (float)THETA0[i];
        for (int s = 0; s < STEPS; s++) {
            for (int i = 0; i < N; i++)
                g[i] = (float)(A[i] * p[i] - C[i]);
            optim_step(&whole, p, g);
            optim_step_range(&part, q, g, 2, 5);
            for (int i = 0; i < N; i++)
                if (i >= 2 && i < 5 ? memcmp(&p[i], &q[i], sizeof p[i]) != 0 : q[i] != (float)THETA0[i])
                    fail_msg("optimizer %d (nesterov %d), step %d, element %d: slice %.9g, whole %.9g",
                             cfg.optim, cfg.nesterov, s, i, q[i], p[i]);
        }
        optim_free(&whole);
        optim_free(&part);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adagrad_notes),
        cmocka_unit_test(test_rmsprop_notes),
        cmocka_unit_test(test_rmsprop_nesterov),
        cmocka_unit_test(test_adam_and_adamw),
        cmocka_unit_test(test_adam_first_step_is_lr_sign),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_slice_matches_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
