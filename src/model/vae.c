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
#include "core/mem.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/act.h"
#include "model/bernoulli.h"
#include "model/conv.h"
#include "model/linear.h"
#include "model/vmath.h"

#define LOG_2PI 1.8378770664093453

/* The layer's tensors w and b, named name.w and name.b, with their PyTorch shapes. */
static void add_tensors(struct vae *m, struct vae_layer *l, const char *name, const size_t w_shape[4],
                        size_t n_w, size_t n_b)
{
    l->w_off = m->n_params;
    l->b_off = l->w_off + n_w;
    l->b_len = n_b;
    m->n_params = l->b_off + n_b;
    struct tensor_view *t = &m->tensor[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s.w", name);
    t->off = l->w_off;
    t->rows = w_shape[0];
    t->cols = n_w / w_shape[0];
    memcpy(t->shape, w_shape, sizeof t->shape);
    t = &m->tensor[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s.b", name);
    t->off = l->b_off;
    t->rows = t->shape[0] = n_b;
    t->cols = 1;
}

static void add_linear(struct vae *m, size_t n_in, size_t n_out, int has_act, const char *name)
{
    struct vae_layer *l = &m->layer[m->n_layers++];
    *l = (struct vae_layer){
        .kind = LAYER_LINEAR, .n_in = n_in, .n_out = n_out, .has_act = has_act, .fan_in = n_in};
    add_tensors(m, l, name, (size_t[4]){n_out, n_in, 0, 0}, n_out * n_in, n_out);
}

/* A convolution of geometry g, or its transpose (output g's input). */
static void add_conv(struct vae *m, const struct conv_geom *g, int transposed, int has_act, const char *name)
{
    struct vae_layer *l = &m->layer[m->n_layers++];
    size_t pixels_in = g->c * g->h * g->w, pixels_out = g->o * g->ho * g->wo;
    *l = (struct vae_layer){.kind = transposed ? LAYER_CONVT : LAYER_CONV,
                            .n_in = transposed ? pixels_out : pixels_in,
                            .n_out = transposed ? pixels_in : pixels_out,
                            .has_act = has_act,
                            .fan_in = g->c * g->k * g->k,
                            .g = *g};
    add_tensors(m, l, name, (size_t[4]){g->o, g->c, g->k, g->k}, g->o * g->c * g->k * g->k,
                transposed ? g->c : g->o);
}

/* The conv stages of cfg on C×H×W images into g (one per stage). Returns 0, or -1 naming the stage that does
 * not fit. */
static int conv_stages(const struct config *cfg, const size_t image[3], struct conv_geom *g)
{
    size_t c = image[0], h = image[1], w = image[2];
    for (size_t i = 0; i < cfg->channels.n; i++) {
        char err[256];
        size_t k = cfg->kernel.v[cfg->kernel.n > 1 ? i : 0], s = cfg->stride.v[cfg->stride.n > 1 ? i : 0];
        size_t p = cfg->padding.v[cfg->padding.n > 1 ? i : 0];
        if (conv_geom_init(&g[i], c, h, w, cfg->channels.v[i], k, s, p, err, sizeof err)) {
            log_error(
                "[model] conv stage %zu (%zux%zux%zu -> %zu channels, kernel %zu, stride %zu, padding %zu) "
                "does not fit: %s (HINT: change model.kernel, stride or padding, or use fewer stages)",
                i, c, h, w, cfg->channels.v[i], k, s, p, err);
            return -1;
        }
        c = g[i].o, h = g[i].ho, w = g[i].wo;
    }
    return 0;
}

/* The layers and tensors of cfg's architecture, in forward order. Returns 0 or -1. */
static int lay_out(struct vae *m, const struct config *cfg, const size_t image[3])
{
    char name[32];
    struct conv_geom g[CONFIG_MAX_LIST];
    size_t n_conv = cfg->arch == ARCH_CONV ? cfg->channels.n : 0, prev = m->n_in;
    if (n_conv && conv_stages(cfg, image, g))
        return -1;
    for (size_t i = 0; i < n_conv; i++) {
        snprintf(name, sizeof name, "enc.conv%zu", i);
        add_conv(m, &g[i], 0, 1, name);
        prev = m->layer[m->n_layers - 1].n_out;
    }
    size_t flat = prev; /* the conv part's output, flattened */
    for (size_t i = 0; i < cfg->hidden.n; i++) {
        snprintf(name, sizeof name, "enc.%zu", i);
        add_linear(m, prev, cfg->hidden.v[i], 1, name);
        prev = cfg->hidden.v[i];
    }
    m->head = m->n_layers;
    add_linear(m, prev, 2 * m->n_latent, 0, "enc.head");
    prev = m->n_latent;
    for (size_t i = cfg->hidden.n; i-- > 0;) {
        snprintf(name, sizeof name, "dec.%zu", cfg->hidden.n - 1 - i);
        add_linear(m, prev, cfg->hidden.v[i], 1, name);
        prev = cfg->hidden.v[i];
    }
    add_linear(m, prev, flat, n_conv > 0, n_conv ? "dec.in" : "dec.out");
    for (size_t i = n_conv; i-- > 0;) {
        snprintf(name, sizeof name, "dec.conv%zu", n_conv - 1 - i);
        add_conv(m, &g[i], 1, i > 0, name);
    }
    m->obs_logvar_off = SIZE_MAX;
    if (m->likelihood == LIK_GAUSSIAN_LEARNED) {
        m->obs_logvar_off = m->n_params;
        struct tensor_view *t = &m->tensor[m->n_tensors++];
        snprintf(t->name, sizeof t->name, "dec.obs_logvar");
        t->off = m->n_params;
        t->rows = t->shape[0] = m->n_in;
        t->cols = 1;
        m->n_params += m->n_in;
    }
    return 0;
}

/* Parameters, gradients and the workspace of max_batch samples. Returns 0 or -1. */
static int alloc_buffers(struct vae *m, int zero)
{
    size_t width = m->n_in, n_b = m->max_batch;
    for (size_t l = 0; l < m->n_layers; l++)
        if (m->layer[l].n_out > width)
            width = m->layer[l].n_out;
    m->params =
        zero ? mem_calloc(m->n_params, sizeof *m->params) : mem_alloc(m->n_params * sizeof *m->params);
    m->grads = zero ? mem_calloc(m->n_params, sizeof *m->grads) : mem_alloc(m->n_params * sizeof *m->grads);
    m->z = mem_alloc(n_b * m->n_latent * sizeof *m->z);
    m->d_a = mem_alloc(n_b * width * sizeof *m->d_a);
    m->d_b = mem_alloc(n_b * width * sizeof *m->d_b);
    int ok = m->params && m->grads && m->z && m->d_a && m->d_b;
    size_t tmp = 0;
    for (size_t l = 0; l < m->n_layers && ok; l++) {
        struct vae_layer *ly = &m->layer[l];
        m->out[l] = mem_alloc(n_b * ly->n_out * sizeof *m->out[l]);
        ok = m->out[l] != NULL;
        if (ly->kind != LAYER_LINEAR && ok) {
            int tr = ly->kind == LAYER_CONVT;
            ly->keep = mem_alloc(conv_keep_floats(&ly->g, n_b, tr) * sizeof *ly->keep);
            ok = ly->keep != NULL;
            size_t t = conv_tmp_floats(&ly->g, n_b, tr);
            tmp = t > tmp ? t : tmp;
        }
    }
    if (ok && tmp) {
        m->conv_tmp = mem_alloc(tmp * sizeof *m->conv_tmp);
        ok = m->conv_tmp != NULL;
    }
    return ok ? 0 : -1;
}

static int init_model(struct vae *m, const struct config *cfg, size_t n_in, const long image[3],
                      size_t max_batch, int zero)
{
    memset(m, 0, sizeof *m);
    size_t shape[3] = {0, 0, 0};
    for (int k = 0; k < 3 && image; k++)
        shape[k] = image[k] > 0 ? (size_t)image[k] : 0;
    if (cfg->arch == ARCH_CONV && shape[0] * shape[1] * shape[2] != n_in) {
        log_error("model.arch = conv needs images: the data have %zu values per sample and no image shape "
                  "(HINT: store x as (N, C, H, W) or (N, H, W), or set image_channels, image_rows and "
                  "image_cols; or use model.arch = mlp)",
                  n_in);
        return -1;
    }
    m->n_in = n_in;
    m->n_latent = (size_t)cfg->latent;
    m->activation = cfg->activation;
    m->likelihood = cfg->likelihood;
    m->obs_logvar = (float)cfg->obs_logvar;
    m->max_batch = max_batch;
    if (lay_out(m, cfg, shape))
        return -1;
    if (m->n_params > (size_t)1 << 34) {
        log_error("model has %zu parameters; the limit is 2^34", m->n_params);
        return -1;
    }
    if (alloc_buffers(m, zero)) {
        log_error("out of memory for a model of %zu parameters at batch %zu", m->n_params, max_batch);
        vae_free(m);
        return -1;
    }
    return 0;
}

int vae_init(struct vae *m, const struct config *cfg, size_t n_in, const long image[3], size_t max_batch)
{
    return init_model(m, cfg, n_in, image, max_batch, 1);
}

int vae_init_unzeroed(struct vae *m, const struct config *cfg, size_t n_in, const long image[3],
                      size_t max_batch)
{
    return init_model(m, cfg, n_in, image, max_batch, 0);
}

void vae_free(struct vae *m)
{
    free(m->params);
    free(m->grads);
    free(m->z);
    free(m->d_a);
    free(m->d_b);
    free(m->conv_tmp);
    for (size_t l = 0; l < VAE_MAX_LAYERS; l++) {
        free(m->out[l]);
        free(m->layer[l].keep);
    }
    memset(m, 0, sizeof *m);
}

void vae_init_params(struct vae *m, uint64_t seed)
{
    vae_init_params_range(m, m->params, 0, m->n_params, seed);
}

/* Elements [lo, hi) of n draws of U(-bound, bound) that start at offset off of p. */
static void init_part(float *p, size_t off, size_t n, size_t lo, size_t hi, float bound, uint64_t seed,
                      uint32_t stream)
{
    size_t a = lo > off ? lo : off, b = hi < off + n ? hi : off + n;
    if (a < b)
        rng_uniform_from(p + a, a - off, b - a, -bound, bound, seed, RNG_INIT, stream, 0);
}

void vae_init_params_range(struct vae *m, float *p, size_t lo, size_t hi, uint64_t seed)
{
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct vae_layer *ly = &m->layer[l];
        float bound = 1.0f / sqrtf((float)ly->fan_in);
        init_part(p, ly->w_off, ly->b_off - ly->w_off, lo, hi, bound, seed, (uint32_t)(2 * l));
        init_part(p, ly->b_off, ly->b_len, lo, hi, bound, seed, (uint32_t)(2 * l + 1));
    }
    if (m->obs_logvar_off != SIZE_MAX)
        for (size_t d = 0; d < m->n_in; d++)
            if (m->obs_logvar_off + d >= lo && m->obs_logvar_off + d < hi)
                p[m->obs_logvar_off + d] = m->obs_logvar;
}

static void layer_forward(struct vae *m, const struct vae_layer *ly, float *out, const float *in, size_t n_b)
{
    const float *w = m->params + ly->w_off, *b = m->params + ly->b_off;
    switch (ly->kind) {
    case LAYER_LINEAR:
        linear_forward(out, in, w, b, n_b, ly->n_in, ly->n_out);
        break;
    case LAYER_CONV:
        conv2d_forward(out, ly->keep, m->conv_tmp, in, w, b, n_b, &ly->g);
        break;
    case LAYER_CONVT:
        conv_transpose2d_forward(out, ly->keep, m->conv_tmp, in, w, b, n_b, &ly->g);
        break;
    }
}

static void layer_backward(struct vae *m, const struct vae_layer *ly, float *dx, const float *dy,
                           const float *in, size_t n_b)
{
    const float *w = m->params + ly->w_off;
    float *dw = m->grads + ly->w_off, *db = m->grads + ly->b_off;
    switch (ly->kind) {
    case LAYER_LINEAR: {
        double t0 = timer_now();
        linear_backward_weights(dw, db, dy, in, n_b, ly->n_in, ly->n_out);
        m->t_grads += timer_now() - t0;
        linear_backward_input(dx, dy, w, n_b, ly->n_in, ly->n_out);
        break;
    }
    case LAYER_CONV:
        conv2d_backward(dx, dw, db, ly->keep, m->conv_tmp, dy, w, n_b, &ly->g);
        break;
    case LAYER_CONVT:
        conv_transpose2d_backward(dx, dw, db, ly->keep, m->conv_tmp, dy, w, n_b, &ly->g);
        break;
    }
}

/* Run layers [first, last] from input `in`. */
static void run_layers(struct vae *m, size_t first, size_t last, const float *in, size_t n_b)
{
    for (size_t l = first; l <= last; l++) {
        const struct vae_layer *ly = &m->layer[l];
        layer_forward(m, ly, m->out[l], in, n_b);
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

/* Layer l's block of the stash: n_ranks row blocks of its input, then of its
 * output gradient; l = n_layers: the ranks' parts of the learned log σ²'s
 * gradient (n_ranks rows of D), when it is learned. */
static float *stash_block(const struct vae *m, size_t l)
{
    float *p = m->stash;
    for (size_t k = 0; k < l; k++)
        p += m->stash_ranks * m->stash_rows * (m->layer[k].n_in + m->layer[k].n_out);
    return p;
}

static void stash_layer(struct vae *m, size_t l, const float *in, const float *d, size_t n_b)
{
    VAE_ASSERT(n_b == m->stash_rows);
    const struct vae_layer *ly = &m->layer[l];
    float *x = stash_block(m, l), *dy = x + m->stash_ranks * n_b * ly->n_in;
    mem_stream_copy(x + m->stash_rank * n_b * ly->n_in, in, n_b * ly->n_in);
    mem_stream_copy(dy + m->stash_rank * n_b * ly->n_out, d, n_b * ly->n_out);
}

size_t vae_stash_floats(const struct vae *m, size_t n_rows, size_t n_ranks)
{
    size_t n = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        if (m->layer[l].kind != LAYER_LINEAR)
            return 0;
        n += n_ranks * n_rows * (m->layer[l].n_in + m->layer[l].n_out);
    }
    return n + (m->obs_logvar_off != SIZE_MAX ? n_ranks * m->n_in : 0);
}

void vae_stash(struct vae *m, float *stash, size_t n_rows, size_t rank, size_t n_ranks)
{
    m->stash = stash;
    m->stash_rows = n_rows;
    m->stash_rank = rank;
    m->stash_ranks = n_ranks;
}

void vae_grads_range(struct vae *m, size_t lo, size_t hi)
{
    size_t n_b = m->stash_ranks * m->stash_rows;
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct vae_layer *ly = &m->layer[l];
        size_t end = ly->b_off + ly->b_len;
        if (hi <= ly->w_off || lo >= end)
            continue;
        const float *x = stash_block(m, l), *dy = x + n_b * ly->n_in;
        size_t a = lo > ly->w_off ? lo - ly->w_off : 0, b = (hi < end ? hi : end) - ly->w_off;
        linear_grad_range(m->grads + ly->w_off, dy, x, n_b, ly->n_in, ly->n_out, a, b);
    }
    size_t obs = m->obs_logvar_off;
    if (obs == SIZE_MAX)
        return;
    const float *part = stash_block(m, m->n_layers);
    for (size_t i = lo > obs ? lo : obs; i < hi && i < obs + m->n_in; i++) {
        float g = part[i - obs];
        for (size_t q = 1; q < m->stash_ranks; q++) /* rank order */
            g += part[q * m->n_in + i - obs];
        m->grads[i] = g;
    }
}

/* The reconstruction term's sum over the batch, and its gradient (times
 * scale) into m->d_a and the learned log σ² gradients. */
static double rec_and_grad(struct vae *m, const float *x, size_t n_b, float scale)
{
    size_t n_d = m->n_in;
    const float *out = m->out[m->n_layers - 1];
    float *dlv = m->obs_logvar_off == SIZE_MAX ? NULL : m->grads + m->obs_logvar_off;
    if (dlv && m->stash) { /* this rank's part of the sum, in its row of the stash */
        dlv = stash_block(m, m->n_layers) + m->stash_rank * n_d;
        memset(dlv, 0, n_d * sizeof *dlv);
    }
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
        if (m->stash) {
            stash_layer(m, l, in, d, n_b);
            linear_backward_input(dx, d, m->params + ly->w_off, n_b, ly->n_in, ly->n_out);
        } else {
            layer_backward(m, ly, dx, d, in, n_b);
        }
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
