/*
 * Gradient checks: every analytic gradient (float, the code the trainer
 * runs) against central finite differences of an independent double-
 * precision reference of the same function. Covers the linear layer (w, b,
 * and x), conv2d and conv_transpose2d (several kernels, strides, paddings,
 * non-square images, C > 1), each activation, each likelihood, and the full
 * −ELBO with fixed ε for every activation × likelihood pair and for conv
 * models. Prints the max relative error.
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
#include "model/conv.h"
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

/* Convolution (transposed = 0: x (B, C, H, W) → y (B, O, Ho, Wo)) or its
 * transpose (x (B, O, Ho, Wo) → y (B, C, H, W)) in double, straight from the
 * definition, then act (or none for act < 0). */
static void conv_ref_d(double *y, const double *x, const double *w, const double *b, size_t n_b,
                       const struct conv_geom *g, int transposed, int act)
{
    size_t n_y = n_b * (transposed ? g->c * g->h * g->w : g->o * g->ho * g->wo);
    size_t per = transposed ? g->h * g->w : g->ho * g->wo, ch = transposed ? g->c : g->o;
    for (size_t i = 0; i < n_y; i++)
        y[i] = b[(i / per) % ch];
    for (size_t s = 0; s < n_b; s++)
        for (size_t o = 0; o < g->o; o++)
            for (size_t oy = 0; oy < g->ho; oy++)
                for (size_t ox = 0; ox < g->wo; ox++)
                    for (size_t c = 0; c < g->c; c++)
                        for (size_t ky = 0; ky < g->k; ky++)
                            for (size_t kx = 0; kx < g->k; kx++) {
                                long iy = (long)(oy * g->s + ky) - (long)g->p,
                                     ix = (long)(ox * g->s + kx) - (long)g->p;
                                if (iy < 0 || ix < 0 || iy >= (long)g->h || ix >= (long)g->w)
                                    continue;
                                size_t pi = ((s * g->c + c) * g->h + (size_t)iy) * g->w + (size_t)ix;
                                size_t qi = ((s * g->o + o) * g->ho + oy) * g->wo + ox;
                                double wv = w[((o * g->c + c) * g->k + ky) * g->k + kx];
                                if (transposed)
                                    y[pi] += x[qi] * wv;
                                else
                                    y[qi] += x[pi] * wv;
                            }
    if (act >= 0)
        for (size_t i = 0; i < n_y; i++)
            y[i] = act_ref(y[i], act);
}

/* scale · Σ (rec + β KL) of the whole VAE in double (same layout as struct vae). */
static double vae_loss_ref(const struct vae *m, const double *p, const float *xf, const float *epsf,
                           size_t n_b, double beta, double scale)
{
    size_t n_d = m->n_in, n_z = m->n_latent;
    double *buf[2];
    buf[0] = calloc(n_b * 8192, sizeof(double));
    buf[1] = calloc(n_b * 8192, sizeof(double));
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
        int act = ly->has_act ? m->activation : -1;
        if (ly->kind == LAYER_LINEAR)
            linear_ref_d(buf[cur], in, p + ly->w_off, p + ly->b_off, n_b, ly->n_in, ly->n_out, act);
        else
            conv_ref_d(buf[cur], in, p + ly->w_off, p + ly->b_off, n_b, &ly->g, ly->kind == LAYER_CONVT, act);
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

/* One geometry, one direction: BLAS version = direct reference, and both = finite differences. */
static double check_conv(const struct conv_geom *g, int transposed, size_t n_b)
{
    size_t n_x = n_b * (transposed ? g->o * g->ho * g->wo : g->c * g->h * g->w);
    size_t n_y = n_b * (transposed ? g->c * g->h * g->w : g->o * g->ho * g->wo);
    size_t n_w = g->o * g->c * g->k * g->k, n_bias = transposed ? g->c : g->o;
    size_t sizes[3] = {n_x, n_w, n_bias};
    float *f[3], *an[3], *an_ref[3], *keep = malloc(conv_keep_floats(g, n_b, transposed) * sizeof(float));
    float *tmp = malloc(conv_tmp_floats(g, n_b, transposed) * sizeof(float));
    float *y = malloc(n_y * sizeof *y), *y_ref = malloc(n_y * sizeof *y), *c = malloc(n_y * sizeof *c);
    double *v[3], *yd = malloc(n_y * sizeof *yd);
    for (int i = 0; i < 3; i++) {
        f[i] = malloc(sizes[i] * sizeof(float));
        an[i] = calloc(sizes[i], sizeof(float));
        an_ref[i] = calloc(sizes[i], sizeof(float));
        v[i] = malloc(sizes[i] * sizeof(double));
        fill(f[i], sizes[i], -1, 1, 60 + (uint32_t)i);
        for (size_t j = 0; j < sizes[i]; j++)
            v[i][j] = f[i][j];
    }
    fill(c, n_y, -1, 1, 63); /* L = Σ c ⊙ y, so dL/dy = c */
    if (transposed) {
        conv_transpose2d_forward(y, keep, tmp, f[0], f[1], f[2], n_b, g);
        conv_transpose2d_forward_ref(y_ref, f[0], f[1], f[2], n_b, g);
        conv_transpose2d_backward(an[0], an[1], an[2], keep, tmp, c, f[1], n_b, g);
        conv_transpose2d_backward_ref(an_ref[0], an_ref[1], an_ref[2], c, f[0], f[1], n_b, g);
    } else {
        conv2d_forward(y, keep, tmp, f[0], f[1], f[2], n_b, g);
        conv2d_forward_ref(y_ref, f[0], f[1], f[2], n_b, g);
        conv2d_backward(an[0], an[1], an[2], keep, tmp, c, f[1], n_b, g);
        conv2d_backward_ref(an_ref[0], an_ref[1], an_ref[2], c, f[0], f[1], n_b, g);
    }
    for (size_t i = 0; i < n_y; i++)
        assert_true(fabsf(y[i] - y_ref[i]) < 1e-5f * (1 + fabsf(y_ref[i])));
    double worst = 0;
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < sizes[t]; i++) {
            assert_true(fabsf(an[t][i] - an_ref[t][i]) < 1e-4f * (1 + fabsf(an_ref[t][i])));
            double keep_v = v[t][i], fs[2];
            for (int s = 0; s < 2; s++) {
                v[t][i] = keep_v + (s ? -1e-6 : 1e-6);
                conv_ref_d(yd, v[0], v[1], v[2], n_b, g, transposed, -1);
                fs[s] = 0;
                for (size_t k = 0; k < n_y; k++)
                    fs[s] += c[k] * yd[k];
            }
            v[t][i] = keep_v;
            worst = nan_max(worst, rel_err(an[t][i], (fs[0] - fs[1]) / 2e-6, 1e-3));
        }
    for (int i = 0; i < 3; i++) {
        free(f[i]);
        free(an[i]);
        free(an_ref[i]);
        free(v[i]);
    }
    free(keep);
    free(tmp);
    free(y);
    free(y_ref);
    free(c);
    free(yd);
    return worst;
}

static void test_conv_matches_ref_and_fd(void **state)
{
    (void)state;
    /* C, H, W, O, k, s, p: non-square, C > 1, strides 1 to 3, paddings 0 to 2, 1×1 kernels. */
    static const size_t cases[][7] = {{3, 7, 9, 4, 3, 2, 1}, {2, 6, 5, 3, 2, 1, 0}, {1, 8, 6, 2, 4, 2, 1},
                                      {2, 5, 5, 3, 3, 3, 2}, {3, 4, 6, 2, 1, 1, 0}, {1, 28, 28, 2, 4, 2, 1}};
    double overall = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const size_t *q = cases[i];
        struct conv_geom g;
        char err[256];
        assert_int_equal(conv_geom_init(&g, q[0], q[1], q[2], q[3], q[4], q[5], q[6], err, sizeof err), 0);
        for (int tr = 0; tr < 2; tr++) {
            double e = check_conv(&g, tr, 2);
            printf("%s %zux%zux%zu -> %zux%zux%zu, k %zu s %zu p %zu: max relative error %.2e\n",
                   tr ? "conv_transpose2d" : "conv2d", g.c, g.h, g.w, g.o, g.ho, g.wo, g.k, g.s, g.p, e);
            overall = nan_max(overall, e);
        }
    }
    printf("convolutions: max relative error over all cases %.2e\n", overall);
    assert_true(overall < TOL);
}

static void test_conv_geometry_refused(void **state)
{
    (void)state;
    struct conv_geom g;
    char err[256] = "";
    /* 7 → stride 2 cannot be inverted with k 4, p 1: (7 + 2 − 4) = 5 is odd. */
    assert_int_equal(conv_geom_init(&g, 1, 7, 7, 8, 4, 2, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a multiple of 2"));
    assert_int_equal(conv_geom_init(&g, 1, 2, 2, 8, 5, 1, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than the padded input"));
    assert_int_equal(conv_geom_init(&g, 1, 28, 28, 8, 4, 2, 1, err, sizeof err), 0);
    assert_int_equal(g.ho, 14);
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
    cfg.hidden.n = 2;
    cfg.hidden.v[0] = 7;
    cfg.hidden.v[1] = 5;
    cfg.latent = 3;
    cfg.activation = act;
    cfg.likelihood = lik;
    cfg.obs_logvar = -0.5;
    struct vae m;
    assert_int_equal(vae_init(&m, &cfg, D, NULL, B), 0);
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

/* Full −ELBO of a conv model on C×H×W images (two stages, a hidden layer): analytic vs FD. */
static double check_conv_vae(int act, int lik, size_t n_hidden)
{
    enum { B = 3, C = 2, H = 8, W = 6 };
    struct config cfg;
    config_defaults(&cfg);
    cfg.arch = ARCH_CONV;
    cfg.channels = (struct config_list){2, {3, 4}};
    cfg.kernel = (struct config_list){2, {4, 3}};
    cfg.stride = (struct config_list){2, {2, 1}};
    cfg.padding = (struct config_list){2, {1, 1}};
    cfg.hidden = (struct config_list){n_hidden, {5}};
    cfg.latent = 3;
    cfg.activation = act;
    cfg.likelihood = lik;
    struct vae m;
    assert_int_equal(vae_init(&m, &cfg, C * H * W, (long[3]){C, H, W}, B), 0);
    vae_init_params(&m, 13);
    if (m.obs_logvar_off != SIZE_MAX)
        fill(m.params + m.obs_logvar_off, C * H * W, -1, 0.5f, 34);
    float x[B * C * H * W], eps[B * 3];
    fill(x, B * C * H * W, 0, 1, 35);
    rng_normal(eps, B * 3, 5, RNG_TEST, 36, 0);
    const double scale = 1.0 / B;
    struct vae_loss l = vae_forward(&m, x, eps, B, NULL, NULL);
    memset(m.grads, 0, m.n_params * sizeof *m.grads);
    vae_backward(&m, x, eps, B, 1.0f, (float)scale, NULL, NULL);
    double *p = malloc(m.n_params * sizeof *p);
    for (size_t i = 0; i < m.n_params; i++)
        p[i] = m.params[i];
    double ref = vae_loss_ref(&m, p, x, eps, B, 1.0, scale);
    assert_true(fabs(ref - scale * (l.rec + l.kl)) < 1e-4 * fabs(ref));
    double gmax = 0, worst = 0;
    for (size_t i = 0; i < m.n_params; i++)
        gmax = nan_max(gmax, fabs(m.grads[i]));
    for (size_t i = 0; i < m.n_params; i++) {
        double keep = p[i], h = 1e-6;
        p[i] = keep + h;
        double fp = vae_loss_ref(&m, p, x, eps, B, 1.0, scale);
        p[i] = keep - h;
        double fm = vae_loss_ref(&m, p, x, eps, B, 1.0, scale);
        p[i] = keep;
        worst = nan_max(worst, rel_err(m.grads[i], (fp - fm) / (2 * h), 1e-3 * gmax));
    }
    free(p);
    vae_free(&m);
    return worst;
}

static void test_conv_vae_full_elbo_fd(void **state)
{
    (void)state;
    double overall = 0;
    for (int a = ACT_RELU; a <= ACT_TANH; a++)
        for (int l = LIK_BERNOULLI; l <= LIK_GAUSSIAN_LEARNED; l += 2)
            for (size_t h = 0; h < 2; h++) {
                double e = check_conv_vae(a, l, h);
                printf("conv -ELBO, act %d, likelihood %d, %zu hidden: max relative error %.2e\n", a, l, h,
                       e);
                overall = nan_max(overall, e);
            }
    printf("conv -ELBO: max relative error over all 8 configurations %.2e\n", overall);
    assert_true(overall < TOL);
}

static void test_conv_model_shapes(void **state)
{
    (void)state;
    /* The model: 1×28×28 → 32×14×14 → 64×7×7 → 3136 → 2Z; back through 64×7×7 to 1×28×28. */
    struct config cfg;
    config_defaults(&cfg);
    cfg.arch = ARCH_CONV;
    cfg.hidden.n = 0;
    struct vae m;
    assert_int_equal(vae_init(&m, &cfg, 784, (long[3]){1, 28, 28}, 2), 0);
    const char *names[] = {"enc.conv0", "enc.conv1", "enc.head", "dec.in", "dec.conv0", "dec.conv1"};
    size_t n_out[] = {32 * 14 * 14, 64 * 7 * 7, 40, 3136, 32 * 14 * 14, 784};
    assert_int_equal(m.n_layers, 6);
    for (size_t l = 0; l < 6; l++) {
        assert_int_equal(m.layer[l].n_out, n_out[l]);
        assert_true(!strncmp(m.tensor[2 * l].name, names[l], strlen(names[l])));
    }
    /* PyTorch's parameter count of the same model: 32·16+32 + 64·512+64 + 3136·40+40 + 20·3136+3136 +
     * 64·32·16+32 + 32·16+1. */
    assert_int_equal(m.n_params, 544 + 32832 + 125480 + 65856 + 32800 + 513);
    assert_int_equal(m.tensor[8].shape[0],
                     64); /* dec.conv0.w: ConvTranspose2d(64, 32, 4) is (64, 32, 4, 4) */
    assert_int_equal(m.tensor[8].shape[1], 32);
    vae_free(&m);
    /* 7×7 images: (7 + 2 − 4) is odd, so stage 0 is refused; and no image shape at all. */
    assert_int_equal(vae_init(&m, &cfg, 49, (long[3]){1, 7, 7}, 2), -1);
    vae_free(&m);
    assert_int_equal(vae_init(&m, &cfg, 49, NULL, 2), -1);
    vae_free(&m);
}

static void test_backward_accumulates(void **state)
{
    (void)state;
    /* Backward adds into grads: two identical passes give twice one pass. */
    struct config cfg;
    config_defaults(&cfg);
    cfg.hidden.v[0] = 6;
    cfg.latent = 2;
    struct vae m;
    enum { B = 4, D = 8 };
    assert_int_equal(vae_init(&m, &cfg, D, NULL, B), 0);
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
        cfg.hidden.v[0] = 7;
        cfg.latent = 3;
        cfg.likelihood = lik;
        struct vae m;
        assert_int_equal(vae_init(&m, &cfg, D, NULL, B), 0);
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

static void test_linear_grad_range_matches_ref(void **state)
{
    (void)state;
    /* Every range [lo, hi) of the (w, b) block: its elements as the reference
     * computes them, and nothing outside it written. */
    enum { B = 5, I = 7, O = 4, N = O * I + O };
    float x[B * I], w[O * I], c[B * O], dx_r[B * I], ref[N] = {0}, got[N];
    fill(x, B * I, -1, 1, 60);
    fill(w, O * I, -1, 1, 61);
    fill(c, B * O, -1, 1, 62);
    linear_backward_ref(dx_r, ref, ref + O * I, c, x, w, B, I, O);
    double worst = 0;
    for (size_t lo = 0; lo <= N; lo++)
        for (size_t hi = lo; hi <= N; hi++) {
            for (size_t i = 0; i < N; i++)
                got[i] = 99.0f;
            linear_grad_range(got, c, x, B, I, O, lo, hi);
            for (size_t i = 0; i < N; i++) {
                if (i < lo || i >= hi)
                    assert_true(got[i] == 99.0f);
                else
                    worst = nan_max(worst, fabs((double)got[i] - ref[i]));
            }
        }
    printf("linear_grad_range vs reference, all %d ranges: max |diff| %.2e\n", (N + 1) * (N + 2) / 2, worst);
    assert_true(worst < 1e-5);
}

static void test_stash_grads_match_full_backward(void **state)
{
    (void)state;
    /* Deferred parameter gradients: R "ranks" each stash a block of the
     * batch, then ranges tiling the parameters are computed from all blocks.
     * They match one backward over the whole batch, for every likelihood
     * (the learned log σ²'s gradient summed from the ranks' parts). */
    enum { R = 3, ROWS = 2, B = R * ROWS, D = 12, Z = 3 };
    for (int lik = LIK_BERNOULLI; lik <= LIK_GAUSSIAN_LEARNED; lik++) {
        struct config cfg;
        config_defaults(&cfg);
        cfg.hidden.v[0] = 7;
        cfg.latent = Z;
        cfg.likelihood = lik;
        struct vae m;
        assert_int_equal(vae_init(&m, &cfg, D, NULL, B), 0);
        vae_init_params(&m, 9);
        float x[B * D], eps[B * Z];
        fill(x, B * D, 0, 1, 70);
        rng_normal(eps, B * Z, 5, RNG_TEST, 71, 0);
        memset(m.grads, 0, m.n_params * sizeof *m.grads);
        struct vae_loss whole = vae_forward_backward(&m, x, eps, B, 0.7f, 0.2f, NULL, NULL);
        float *ref = malloc(m.n_params * sizeof *ref);
        memcpy(ref, m.grads, m.n_params * sizeof *ref);
        size_t n_stash = vae_stash_floats(&m, ROWS, R);
        float *stash = malloc(n_stash * sizeof *stash);
        assert_true(n_stash > 0 && stash);
        for (size_t i = 0; i < m.n_params; i++)
            m.grads[i] = 99.0f;
        double rec = 0;
        for (int q = 0; q < R; q++) {
            vae_stash(&m, stash, ROWS, (size_t)q, R);
            rec +=
                vae_forward_backward(&m, x + q * ROWS * D, eps + q * ROWS * Z, ROWS, 0.7f, 0.2f, NULL, NULL)
                    .rec;
        }
        for (size_t i = 0; i < m.n_params; i++) /* backward wrote no gradient */
            assert_true(m.grads[i] == 99.0f);
        size_t n = m.n_params, cuts[] = {0, 5, n / 3, n / 3 + 1, n - D - 2, n};
        for (size_t k = 0; k + 1 < sizeof cuts / sizeof *cuts; k++)
            vae_grads_range(&m, cuts[k], cuts[k + 1]);
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            worst = nan_max(worst, fabs((double)m.grads[i] - ref[i]) / (1e-3 + fabs(ref[i])));
        printf("likelihood %d: stashed and ranged gradients vs one backward: max rel diff %.2e\n", lik,
               worst);
        assert_true(worst < 1e-5);
        assert_true(fabs(rec - whole.rec) <= 1e-6 * fabs(whole.rec));
        vae_stash(&m, NULL, 0, 0, 0);
        free(ref);
        free(stash);
        vae_free(&m);
    }
}

/* The kernels vae_dist names for this CPU when OpenBLAS's own are narrower
 * (cli/main.c starts again with them): never for kernels as wide as the
 * CPU's, nor for names the table does not know, and never narrower than the
 * kernels it replaces. */
static void test_kernels_for_cpu(void **state)
{
    (void)state;
    const char *cpu = linear_kernels_for_cpu("Prescott");
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd")) {
        assert_non_null(cpu);
        assert_string_equal(cpu, __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX");
        assert_non_null(linear_kernels_for_cpu("Haswell"));
        assert_non_null(linear_kernels_for_cpu("Zen"));
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        assert_string_equal(cpu, "Haswell");
        assert_null(linear_kernels_for_cpu("Zen"));
    }
#endif
    if (cpu)
        assert_null(linear_kernels_for_cpu(cpu));
    assert_null(linear_kernels_for_cpu("SkylakeX"));
    assert_null(linear_kernels_for_cpu("Cooperlake"));
    assert_null(linear_kernels_for_cpu("SapphireRapids"));
    assert_null(linear_kernels_for_cpu("SomeNewerCore"));
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
        cmocka_unit_test(test_conv_matches_ref_and_fd),
        cmocka_unit_test(test_conv_geometry_refused),
        cmocka_unit_test(test_conv_vae_full_elbo_fd),
        cmocka_unit_test(test_conv_model_shapes),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_forward_backward_fused_equals_separate),
        cmocka_unit_test(test_linear_grad_range_matches_ref),
        cmocka_unit_test(test_stash_grads_match_full_backward),
        cmocka_unit_test(test_vmath_matches_libm),
        cmocka_unit_test(test_kernels_for_cpu),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    comm_finalize();
    return rc;
}
