/*
 * Gradient checks: every analytic gradient (float, the code the trainer
 * runs) against central finite differences of an independent double-
 * precision reference of the same function. Covers the linear layer (w, b,
 * and x), each activation, each likelihood, and the full −ELBO with fixed ε
 * for every activation × likelihood pair. Prints the max relative error.
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

#include "comm/comm.h"
#include "core/config.h"
#include "core/rng.h"
#include "model/act.h"
#include "model/linear.h"
#include "model/vae.h"
#include "model/vmath.h"

#define TOL 2e-3

/* |a − n| / max(|a|, |n|, floor): relative, but not for gradients that are
 * pure float noise (the floor is 1e-3 of the largest gradient). */
static double rel_err(double a, double n, double floor)
{
    double d = fabs(a - n), s = fmax(fmax(fabs(a), fabs(n)), floor);
    return d / s;
}

static void fill(float *x, size_t n, float lo, float hi, uint32_t stream)
{
    rng_uniform(x, n, lo, hi, 7, RNG_TEST, stream, 0);
}

/* ---- double references ---- */

static double act_ref(double x, int kind)
{
    switch (kind) {
    case ACT_RELU:
        return x > 0 ? x : 0;
    case ACT_TANH:
        return tanh(x);
    default:
        return 1.0 / (1.0 + exp(-x));
    }
}

/* y (B, O) = act?(x Wᵀ + b) in double, from double params. */
static void linear_ref_d(double *y, const double *x, const double *w, const double *b, size_t n_b,
                         size_t n_in, size_t n_out, int act)
{
    for (size_t r = 0; r < n_b; r++)
        for (size_t o = 0; o < n_out; o++) {
            double s = b[o];
            for (size_t i = 0; i < n_in; i++)
                s += x[r * n_in + i] * w[o * n_in + i];
            y[r * n_out + o] = act >= 0 ? act_ref(s, act) : s;
        }
}

/* scale · Σ (rec + β KL) of the whole VAE in double (same layout as struct vae). */
static double vae_loss_ref(const struct vae *m, const double *p, const float *xf, const float *epsf,
                           size_t n_b, double beta, double scale)
{
    size_t n_d = m->n_in, n_z = m->n_latent;
    double *buf[2];
    buf[0] = calloc(n_b * 4096, sizeof(double));
    buf[1] = calloc(n_b * 4096, sizeof(double));
    double *x = calloc(n_b * n_d, sizeof(double)), *z = calloc(n_b * n_z, sizeof(double));
    for (size_t i = 0; i < n_b * n_d; i++)
        x[i] = xf[i];
    const double *in = x;
    int cur = 0;
    double total = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct vae_layer *ly = &m->layer[l];
        if (l == m->head + 1)
            in = z;
        linear_ref_d(buf[cur], in, p + ly->w_off, p + ly->b_off, n_b, ly->n_in, ly->n_out,
                     ly->has_act ? m->activation : -1);
        if (l == m->head) {
            for (size_t r = 0; r < n_b; r++)
                for (size_t j = 0; j < n_z; j++) {
                    double mu = buf[cur][r * 2 * n_z + j], lv = buf[cur][r * 2 * n_z + n_z + j];
                    z[r * n_z + j] = mu + exp(0.5 * lv) * epsf[r * n_z + j];
                    total += beta * -0.5 * (1 + lv - mu * mu - exp(lv));
                }
        }
        in = buf[cur];
        cur ^= 1;
    }
    for (size_t r = 0; r < n_b; r++)
        for (size_t d = 0; d < n_d; d++) {
            double o = in[r * n_d + d], t = x[r * n_d + d];
            if (m->likelihood == LIK_BERNOULLI) {
                total += fmax(o, 0) - o * t + log1p(exp(-fabs(o)));
            } else {
                double v = m->obs_logvar_off != SIZE_MAX ? p[m->obs_logvar_off + d] : m->obs_logvar;
                total += 0.5 * (log(2 * 3.14159265358979323846) + v + (t - o) * (t - o) * exp(-v));
            }
        }
    free(buf[0]);
    free(buf[1]);
    free(x);
    free(z);
    return scale * total;
}

/* ---- tests ---- */

static void test_linear_matches_ref_and_fd(void **state)
{
    (void)state;
    enum { B = 5, I = 7, O = 4 };
    float x[B * I], w[O * I], b[O], y[B * O], y_ref[B * O], c[B * O];
    float dw[O * I] = {0}, db[O] = {0}, dx[B * I];
    float dw_r[O * I] = {0}, db_r[O] = {0}, dx_r[B * I];
    fill(x, B * I, -1, 1, 1);
    fill(w, O * I, -1, 1, 2);
    fill(b, O, -1, 1, 3);
    fill(c, B * O, -1, 1, 4); /* L = Σ c ⊙ y, so dL/dy = c */
    linear_forward(y, x, w, b, B, I, O);
    linear_forward_ref(y_ref, x, w, b, B, I, O);
    for (int i = 0; i < B * O; i++)
        assert_true(fabsf(y[i] - y_ref[i]) < 1e-5f);
    linear_backward(dx, dw, db, c, x, w, B, I, O);
    linear_backward_ref(dx_r, dw_r, db_r, c, x, w, B, I, O);
    /* Finite differences of L(x, w, b) in double. */
    double xd[B * I], wd[O * I], bd[O], yd[B * O], worst = 0;
    for (int i = 0; i < B * I; i++)
        xd[i] = x[i];
    for (int i = 0; i < O * I; i++)
        wd[i] = w[i];
    for (int i = 0; i < O; i++)
        bd[i] = b[i];
    double *vars[3] = {xd, wd, bd};
    const float *an[3] = {dx, dw, db}, *an_ref[3] = {dx_r, dw_r, db_r};
    int sizes[3] = {B * I, O * I, O};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < sizes[v]; i++) {
            double keep = vars[v][i], f[2];
            for (int s = 0; s < 2; s++) {
                vars[v][i] = keep + (s ? -1e-6 : 1e-6);
                linear_ref_d(yd, xd, wd, bd, B, I, O, -1);
                f[s] = 0;
                for (int k = 0; k < B * O; k++)
                    f[s] += c[k] * yd[k];
            }
            vars[v][i] = keep;
            double num = (f[0] - f[1]) / 2e-6;
            worst = nan_max(worst, rel_err(an[v][i], num, 1e-3));
            assert_true(fabsf(an[v][i] - an_ref[v][i]) < 1e-4f);
        }
    printf("linear: max relative error vs finite differences %.2e\n", worst);
    assert_true(worst < TOL);
}

static void test_activations_fd(void **state)
{
    (void)state;
    enum { N = 64 };
    const char *names[] = {"relu", "tanh", "sigmoid"};
    for (int kind = ACT_RELU; kind <= ACT_SIGMOID; kind++) {
        float x[N], y[N], d[N];
        fill(x, N, -3, 3, 10 + (uint32_t)kind);
        memcpy(y, x, sizeof y);
        act_forward(y, N, (enum act_kind)kind);
        fill(d, N, -1, 1, 20);
        float c[N];
        memcpy(c, d, sizeof c);
        act_backward(d, y, N, (enum act_kind)kind);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            assert_true(fabs(y[i] - act_ref(x[i], kind)) < 1e-6);
            if (kind == ACT_RELU && fabsf(x[i]) < 1e-4f)
                continue; /* the kink */
            double num = c[i] * (act_ref(x[i] + 1e-6, kind) - act_ref(x[i] - 1e-6, kind)) / 2e-6;
            worst = nan_max(worst, rel_err(d[i], num, 1e-3));
        }
        printf("activation %s: max relative error %.2e\n", names[kind], worst);
        assert_true(worst < TOL);
    }
}

/* Full −ELBO for one (activation, likelihood, beta): analytic vs FD. */
static double check_vae(int act, int lik, double beta)
{
    enum { B = 6, D = 10 };
    struct config cfg;
    config_defaults(&cfg);
    cfg.n_hidden = 2;
    cfg.hidden[0] = 7;
    cfg.hidden[1] = 5;
    cfg.latent = 3;
    cfg.activation = act;
    cfg.likelihood = lik;
    cfg.obs_logvar = -0.5;
    struct vae m;
    assert_int_equal(vae_init(&m, &cfg, D, B), 0);
    vae_init_params(&m, 11);
    if (m.obs_logvar_off != SIZE_MAX)
        fill(m.params + m.obs_logvar_off, D, -1, 0.5f, 30);
    float x[B * D], eps[B * 3];
    fill(x, B * D, 0, 1, 31);
    rng_normal(eps, B * 3, 5, RNG_TEST, 32, 0);
    const double scale = 1.0 / B;
    struct vae_loss l = vae_forward(&m, x, eps, B, NULL, NULL);
    memset(m.grads, 0, m.n_params * sizeof *m.grads);
    vae_backward(&m, x, eps, B, (float)beta, (float)scale, NULL, NULL);
    double *p = malloc(m.n_params * sizeof *p);
    for (size_t i = 0; i < m.n_params; i++)
        p[i] = m.params[i];
    double ref = vae_loss_ref(&m, p, x, eps, B, beta, scale);
    assert_true(fabs(ref - scale * (l.rec + beta * l.kl)) < 1e-4 * fabs(ref));
    double gmax = 0;
    for (size_t i = 0; i < m.n_params; i++)
        gmax = nan_max(gmax, fabs(m.grads[i]));
    double worst = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        double keep = p[i], h = 1e-6;
        p[i] = keep + h;
        double fp = vae_loss_ref(&m, p, x, eps, B, beta, scale);
        p[i] = keep - h;
        double fm = vae_loss_ref(&m, p, x, eps, B, beta, scale);
        p[i] = keep;
        double num = (fp - fm) / (2 * h);
        double e = rel_err(m.grads[i], num, 1e-3 * gmax);
        worst = nan_max(worst, e);
    }
    free(p);
    vae_free(&m);
    return worst;
}

static void test_vae_full_elbo_fd(void **state)
{
    (void)state;
    const char *an[] = {"relu", "tanh", "sigmoid"}, *ln[] = {"bernoulli", "gaussian", "gaussian_learned"};
    double overall = 0;
    for (int a = ACT_RELU; a <= ACT_SIGMOID; a++)
        for (int l = LIK_BERNOULLI; l <= LIK_GAUSSIAN_LEARNED; l++) {
            double e = check_vae(a, l, l == LIK_GAUSSIAN ? 0.5 : 1.0);
            printf("full -ELBO, %s + %s: max relative error %.2e\n", an[a], ln[l], e);
            overall = nan_max(overall, e);
            assert_true(e < TOL);
        }
    printf("full -ELBO: max relative error over all 9 configurations %.2e\n", overall);
}

static void test_backward_accumulates(void **state)
{
    (void)state;
    /* Backward adds into grads: two identical passes give twice one pass. */
    struct config cfg;
    config_defaults(&cfg);
    cfg.hidden[0] = 6;
    cfg.latent = 2;
    struct vae m;
    enum { B = 4, D = 8 };
    assert_int_equal(vae_init(&m, &cfg, D, B), 0);
    vae_init_params(&m, 3);
    float x[B * D], eps[B * 2];
    fill(x, B * D, 0, 1, 40);
    rng_normal(eps, B * 2, 5, RNG_TEST, 41, 0);
    memset(m.grads, 0, m.n_params * sizeof *m.grads);
    vae_forward(&m, x, eps, B, NULL, NULL);
    vae_backward(&m, x, eps, B, 1.0f, 1.0f, NULL, NULL);
    float *once = malloc(m.n_params * sizeof *once);
    memcpy(once, m.grads, m.n_params * sizeof *once);
    vae_forward(&m, x, eps, B, NULL, NULL);
    vae_backward(&m, x, eps, B, 1.0f, 1.0f, NULL, NULL);
    for (size_t i = 0; i < m.n_params; i++)
        assert_true(fabsf(m.grads[i] - 2 * once[i]) <= 1e-5f * (1 + fabsf(once[i])));
    free(once);
    vae_free(&m);
}

static void test_forward_backward_fused_equals_separate(void **state)
{
    (void)state;
    /* The training step's fused call gives the separate calls' loss and
     * gradients bit for bit, for both likelihood kinds. */
    enum { B = 5, D = 12 };
    for (int lik = LIK_BERNOULLI; lik <= LIK_GAUSSIAN_LEARNED; lik++) {
        struct config cfg;
        config_defaults(&cfg);
        cfg.hidden[0] = 7;
        cfg.latent = 3;
        cfg.likelihood = lik;
        struct vae m;
        assert_int_equal(vae_init(&m, &cfg, D, B), 0);
        vae_init_params(&m, 5);
        float x[B * D], eps[B * 3];
        fill(x, B * D, 0, 1, 50);
        rng_normal(eps, B * 3, 5, RNG_TEST, 51, 0);
        memset(m.grads, 0, m.n_params * sizeof *m.grads);
        struct vae_loss a = vae_forward(&m, x, eps, B, NULL, NULL);
        vae_backward(&m, x, eps, B, 0.7f, 0.2f, NULL, NULL);
        float *g = malloc(m.n_params * sizeof *g);
        memcpy(g, m.grads, m.n_params * sizeof *g);
        memset(m.grads, 0, m.n_params * sizeof *m.grads);
        struct vae_loss b = vae_forward_backward(&m, x, eps, B, 0.7f, 0.2f, NULL, NULL);
        assert_memory_equal(&a.rec, &b.rec, sizeof a.rec);
        assert_memory_equal(&a.kl, &b.kl, sizeof a.kl);
        assert_memory_equal(g, m.grads, m.n_params * sizeof *g);
        free(g);
        vae_free(&m);
    }
}

static void test_vmath_matches_libm(void **state)
{
    (void)state;
    /* The vectorisable exp/log against libm, the reference, over the ranges used. */
    double worst_exp = 0, worst_log = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        worst_exp = nan_max(worst_exp, fabs(vexpf(x) - exp((double)x)) / exp((double)x));
        float y = 1e-30f * powf(1e36f, (float)i / 200000.0f); /* 1e-30 .. 1e6 */
        worst_log = nan_max(worst_log, fabs(vlogf(y) - log((double)y)) / fmax(fabs(log((double)y)), 1e-3));
    }
    double worst_log1p = 0;
    for (int i = 0; i <= 100000; i++) {
        float e = (float)i / 100000.0f; /* log(1 + e), e in [0, 1], as the BCE uses it */
        worst_log1p = nan_max(worst_log1p, fabs(vlogf(1.0f + e) - log1p((double)e)));
    }
    /* The 8-lane versions give the scalar versions' values. */
    for (int i = 0; i < 4096; i++) {
        float x = -90.0f + 180.0f * (float)i / 4096.0f, y = 1e-20f * powf(1e30f, (float)i / 4096.0f);
        vf8 e = vexpf8(vsplat8(x)), l = vlogf8(vsplat8(y));
        for (int k = 0; k < 8; k++) {
            assert_true(e[k] == vexpf(x));
            assert_true(l[k] == vlogf(y));
        }
    }
    printf("vexpf: max relative error %.2e; vlogf: %.2e; log(1+e) absolute %.2e\n", worst_exp, worst_log,
           worst_log1p);
    assert_true(worst_exp < 5e-7);
    assert_true(worst_log < 5e-7);
    assert_true(worst_log1p < 2e-7);
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_matches_ref_and_fd),
        cmocka_unit_test(test_activations_fd),
        cmocka_unit_test(test_vae_full_elbo_fd),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_forward_backward_fused_equals_separate),
        cmocka_unit_test(test_vmath_matches_libm),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    comm_finalize();
    return rc;
}
