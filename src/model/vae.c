/*
 * VAE forward and backward (see vae.h). The step reads like the maths:
 * encoder layers, reparameterization, decoder layers, likelihood and KL, then
 * the same in reverse. All buffers come from vae_init; the step allocates
 * nothing.
 */
#include "model/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/act.h"
#include "model/bernoulli.h"
#include "model/linear.h"
#include "model/vmath.h"

#define LOG_2PI 1.8378770664093453

static void add_layer(struct vae *m, size_t n_in, size_t n_out, int has_act, const char *name)
{
    struct vae_layer *l = &m->layer[m->n_layers++];
    l->n_in = n_in;
    l->n_out = n_out;
    l->has_act = has_act;
    l->w_off = m->n_params;
    l->b_off = l->w_off + n_out * n_in;
    m->n_params = l->b_off + n_out;
    struct tensor_view *t = &m->tensor[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s.w", name);
    t->off = l->w_off;
    t->rows = n_out;
    t->cols = n_in;
    t = &m->tensor[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s.b", name);
    t->off = l->b_off;
    t->rows = n_out;
    t->cols = 1;
}

/* The layers and tensors of cfg's architecture, in forward order. */
static void lay_out(struct vae *m, const struct config *cfg)
{
    char name[32];
    size_t prev = m->n_in;
    for (size_t i = 0; i < cfg->n_hidden; i++) {
        snprintf(name, sizeof name, "enc.%zu", i);
        add_layer(m, prev, cfg->hidden[i], 1, name);
        prev = cfg->hidden[i];
    }
    m->head = m->n_layers;
    add_layer(m, prev, 2 * m->n_latent, 0, "enc.head");
    prev = m->n_latent;
    for (size_t i = cfg->n_hidden; i-- > 0;) {
        snprintf(name, sizeof name, "dec.%zu", cfg->n_hidden - 1 - i);
        add_layer(m, prev, cfg->hidden[i], 1, name);
        prev = cfg->hidden[i];
    }
    add_layer(m, prev, m->n_in, 0, "dec.out");
    m->obs_logvar_off = SIZE_MAX;
    if (m->likelihood == LIK_GAUSSIAN_LEARNED) {
        m->obs_logvar_off = m->n_params;
        struct tensor_view *t = &m->tensor[m->n_tensors++];
        snprintf(t->name, sizeof t->name, "dec.obs_logvar");
        t->off = m->n_params;
        t->rows = m->n_in;
        t->cols = 1;
        m->n_params += m->n_in;
    }
}

/* Parameters, gradients and the workspace of max_batch samples. Returns 0 or -1. */
static int alloc_buffers(struct vae *m)
{
    size_t width = m->n_in, n_b = m->max_batch;
    for (size_t l = 0; l < m->n_layers; l++)
        if (m->layer[l].n_out > width)
            width = m->layer[l].n_out;
    m->params = calloc(m->n_params, sizeof *m->params);
    m->grads = calloc(m->n_params, sizeof *m->grads);
    m->z = malloc(n_b * m->n_latent * sizeof *m->z);
    m->d_a = malloc(n_b * width * sizeof *m->d_a);
    m->d_b = malloc(n_b * width * sizeof *m->d_b);
    int ok = m->params && m->grads && m->z && m->d_a && m->d_b;
    for (size_t l = 0; l < m->n_layers && ok; l++) {
        m->out[l] = malloc(n_b * m->layer[l].n_out * sizeof *m->out[l]);
        ok = m->out[l] != NULL;
    }
    return ok ? 0 : -1;
}

int vae_init(struct vae *m, const struct config *cfg, size_t n_in, size_t max_batch)
{
    memset(m, 0, sizeof *m);
    m->n_in = n_in;
    m->n_latent = (size_t)cfg->latent;
    m->activation = cfg->activation;
    m->likelihood = cfg->likelihood;
    m->obs_logvar = (float)cfg->obs_logvar;
    m->max_batch = max_batch;
    lay_out(m, cfg);
    if (m->n_params > (size_t)1 << 34) {
        log_error("model has %zu parameters; the limit is 2^34", m->n_params);
        return -1;
    }
    if (alloc_buffers(m)) {
        log_error("out of memory for a model of %zu parameters at batch %zu", m->n_params, max_batch);
        vae_free(m);
        return -1;
    }
    return 0;
}

void vae_free(struct vae *m)
{
    free(m->params);
    free(m->grads);
    free(m->z);
    free(m->d_a);
    free(m->d_b);
    for (size_t l = 0; l < VAE_MAX_LAYERS; l++)
        free(m->out[l]);
    memset(m, 0, sizeof *m);
}

void vae_init_params(struct vae *m, uint64_t seed)
{
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct vae_layer *ly = &m->layer[l];
        float bound = 1.0f / sqrtf((float)ly->n_in);
        rng_uniform(m->params + ly->w_off, ly->n_out * ly->n_in, -bound, bound, seed, RNG_INIT,
                    (uint32_t)(2 * l), 0);
        rng_uniform(m->params + ly->b_off, ly->n_out, -bound, bound, seed, RNG_INIT, (uint32_t)(2 * l + 1),
                    0);
    }
    if (m->obs_logvar_off != SIZE_MAX)
        for (size_t d = 0; d < m->n_in; d++)
            m->params[m->obs_logvar_off + d] = m->obs_logvar;
}

/* Run layers [first, last] from input `in`. */
static void run_layers(struct vae *m, size_t first, size_t last, const float *in, size_t n_b)
{
    for (size_t l = first; l <= last; l++) {
        const struct vae_layer *ly = &m->layer[l];
        linear_forward(m->out[l], in, m->params + ly->w_off, m->params + ly->b_off, n_b, ly->n_in, ly->n_out);
        if (ly->has_act)
            act_forward(m->out[l], n_b * ly->n_out, (enum act_kind)m->activation);
        in = m->out[l];
    }
}

static const float *obs_logvar_of(const struct vae *m)
{
    return m->obs_logvar_off == SIZE_MAX ? NULL : m->params + m->obs_logvar_off;
}

/*
 * Reconstruction term −log p(x|z) of one sample; when dout is not NULL also
 * writes its gradient (times scale) w.r.t. the decoder output, and adds the
 * gradient w.r.t. a learned log σ² into dlv.
 */
static double rec_term(const struct vae *m, const float *out, const float *x, float *dout, float *dlv,
                       float scale)
{
    size_t n_d = m->n_in;
    double s = 0;
    if (m->likelihood == LIK_BERNOULLI)
        return (double)(dout ? bernoulli_nll_grad(dout, out, x, n_d, scale) : bernoulli_nll(out, x, n_d));
    const float *lv = obs_logvar_of(m);
    for (size_t d = 0; d < n_d; d++) {
        float v = lv ? lv[d] : m->obs_logvar, r = x[d] - out[d], iv = vexpf(-v);
        s += 0.5 * ((double)LOG_2PI + v + (double)(r * r * iv));
        if (dout) {
            dout[d] = -scale * r * iv;
            if (lv)
                dlv[d] += scale * 0.5f * (1.0f - r * r * iv);
        }
    }
    return s;
}

/* Encoder, z = μ + σ·ε, analytic KL (per sample into kl when not NULL, summed
 * into sum->kl), decoder: leaves the output in m->out[last]. */
static void forward_to_output(struct vae *m, const float *x, const float *eps, size_t n_b, double *kl,
                              struct vae_loss *sum)
{
    VAE_ASSERT(n_b <= m->max_batch);
    size_t n_z = m->n_latent;
    run_layers(m, 0, m->head, x, n_b);
    const float *h = m->out[m->head]; /* (B, 2Z): μ | log σ² */
    for (size_t r = 0; r < n_b; r++) {
        const float *mu = h + r * 2 * n_z, *lv = mu + n_z;
        double k = 0;
        for (size_t j = 0; j < n_z; j++) {
            float sd = vexpf(0.5f * lv[j]);
            m->z[r * n_z + j] = mu[j] + sd * eps[r * n_z + j];
            k += (double)(-0.5f * (1.0f + lv[j] - mu[j] * mu[j] - sd * sd));
        }
        if (kl)
            kl[r] = k;
        sum->kl += k;
    }
    run_layers(m, m->head + 1, m->n_layers - 1, m->z, n_b);
}

struct vae_loss vae_forward(struct vae *m, const float *x, const float *eps, size_t n_b, double *rec,
                            double *kl)
{
    size_t n_d = m->n_in;
    struct vae_loss sum = {0, 0};
    forward_to_output(m, x, eps, n_b, kl, &sum);
    const float *out = m->out[m->n_layers - 1];
    for (size_t r = 0; r < n_b; r++) {
        double s = rec_term(m, out + r * n_d, x + r * n_d, NULL, NULL, 0.0f);
        if (rec)
            rec[r] = s;
        sum.rec += s;
    }
    return sum;
}

/* The reconstruction term's sum over the batch, and its gradient (times
 * scale) into m->d_a and the learned log σ² gradients. */
static double rec_and_grad(struct vae *m, const float *x, size_t n_b, float scale)
{
    size_t n_d = m->n_in;
    const float *out = m->out[m->n_layers - 1];
    float *dlv = m->obs_logvar_off == SIZE_MAX ? NULL : m->grads + m->obs_logvar_off;
    double s = 0;
    for (size_t r = 0; r < n_b; r++)
        s += rec_term(m, out + r * n_d, x + r * n_d, m->d_a + r * n_d, dlv, scale);
    return s;
}

/* Backward through layers [first, last] given d (B, O_last) in *d; returns
 * the gradient w.r.t. the input of `first` (NULL when first == 0). */
static float *back_layers(struct vae *m, size_t first, size_t last, const float *in0, float *d, float *spare,
                          size_t n_b, void (*on_ready)(void *, size_t), void *ctx)
{
    for (size_t l = last + 1; l-- > first;) {
        const struct vae_layer *ly = &m->layer[l];
        const float *in = l == first ? in0 : m->out[l - 1];
        if (ly->has_act)
            act_backward(d, m->out[l], n_b * ly->n_out, (enum act_kind)m->activation);
        float *dx = l == 0 ? NULL : spare;
        linear_backward(dx, m->grads + ly->w_off, m->grads + ly->b_off, d, in, m->params + ly->w_off, n_b,
                        ly->n_in, ly->n_out);
        if (on_ready)
            on_ready(ctx, ly->w_off);
        spare = d;
        d = dx;
    }
    return d;
}

/* Backward from the output gradient in m->d_a down to the input. */
static void backward_from_output(struct vae *m, const float *x, const float *eps, size_t n_b, float beta,
                                 float scale, void (*on_ready)(void *ctx, size_t off), void *ctx)
{
    size_t n_z = m->n_latent;
    if (m->obs_logvar_off != SIZE_MAX && on_ready)
        on_ready(ctx, m->obs_logvar_off);
    /* Decoder, down to dz (B, Z). */
    float *dz = back_layers(m, m->head + 1, m->n_layers - 1, m->z, m->d_a, m->d_b, n_b, on_ready, ctx);
    /* Through z = μ + σ·ε and the KL into d_head (B, 2Z). */
    float *dh = dz == m->d_a ? m->d_b : m->d_a;
    const float *h = m->out[m->head];
    float kb = scale * beta;
    for (size_t r = 0; r < n_b; r++) {
        const float *mu = h + r * 2 * n_z, *lv = mu + n_z;
        const float *dzr = dz + r * n_z, *er = eps + r * n_z;
        float *dmu = dh + r * 2 * n_z, *dlvr = dmu + n_z;
        for (size_t j = 0; j < n_z; j++) {
            float sd = vexpf(0.5f * lv[j]);
            dmu[j] = dzr[j] + kb * mu[j];
            dlvr[j] = dzr[j] * er[j] * 0.5f * sd + kb * 0.5f * (sd * sd - 1.0f);
        }
    }
    back_layers(m, 0, m->head, x, dh, dz, n_b, on_ready, ctx);
}

void vae_backward(struct vae *m, const float *x, const float *eps, size_t n_b, float beta, float scale,
                  void (*on_ready)(void *ctx, size_t off), void *ctx)
{
    rec_and_grad(m, x, n_b, scale);
    backward_from_output(m, x, eps, n_b, beta, scale, on_ready, ctx);
}

struct vae_loss vae_forward_backward(struct vae *m, const float *x, const float *eps, size_t n_b, float beta,
                                     float scale, void (*on_ready)(void *ctx, size_t off), void *ctx)
{
    struct vae_loss sum = {0, 0};
    forward_to_output(m, x, eps, n_b, NULL, &sum);
    sum.rec = rec_and_grad(m, x, n_b, scale);
    backward_from_output(m, x, eps, n_b, beta, scale, on_ready, ctx);
    return sum;
}

void vae_log_weights(struct vae *m, double *logw, const float *x, const float *mu, const float *logvar,
                     const float *eps, size_t n_k)
{
    VAE_ASSERT(n_k <= m->max_batch);
    size_t n_z = m->n_latent, n_d = m->n_in;
    double prior_q = 0; /* Σ_j 0.5·log σ²_j: the part of log p(z) − log q(z|x) shared by all draws */
    for (size_t j = 0; j < n_z; j++)
        prior_q += 0.5 * (double)logvar[j];
    for (size_t k = 0; k < n_k; k++) {
        double s = prior_q;
        for (size_t j = 0; j < n_z; j++) {
            float e = eps[k * n_z + j], z = mu[j] + vexpf(0.5f * logvar[j]) * e;
            m->z[k * n_z + j] = z;
            s += 0.5 * ((double)e * e - (double)z * z);
        }
        logw[k] = s;
    }
    run_layers(m, m->head + 1, m->n_layers - 1, m->z, n_k);
    const float *out = m->out[m->n_layers - 1];
    for (size_t k = 0; k < n_k; k++)
        logw[k] -= rec_term(m, out + k * n_d, x, NULL, NULL, 0.0f);
}

void vae_decode(struct vae *m, float *out, const float *z, size_t n_b)
{
    VAE_ASSERT(n_b <= m->max_batch);
    run_layers(m, m->head + 1, m->n_layers - 1, z, n_b);
    size_t n = n_b * m->n_in;
    memcpy(out, m->out[m->n_layers - 1], n * sizeof *out);
    if (m->likelihood == LIK_BERNOULLI)
        act_forward(out, n, ACT_SIGMOID);
}

void vae_encode(struct vae *m, float *mu, float *logvar, const float *x, size_t n_b)
{
    VAE_ASSERT(n_b <= m->max_batch);
    size_t n_z = m->n_latent;
    run_layers(m, 0, m->head, x, n_b);
    const float *h = m->out[m->head];
    for (size_t r = 0; r < n_b; r++) {
        memcpy(mu + r * n_z, h + r * 2 * n_z, n_z * sizeof *mu);
        memcpy(logvar + r * n_z, h + r * 2 * n_z + n_z, n_z * sizeof *logvar);
    }
}
