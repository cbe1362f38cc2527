/* Optimizers, schedules and clipping on flat buffers (formulas in optim.h). */
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"

int optim_init(struct optim *o, const struct config *cfg, size_t n, long total_steps)
{
    return optim_init_slice(o, cfg, n, 0, n, total_steps);
}

int optim_init_slice(struct optim *o, const struct config *cfg, size_t n, size_t lo, size_t hi,
                     long total_steps)
{
    VAE_ASSERT(lo <= hi && hi <= n);
    memset(o, 0, sizeof *o);
    o->kind = cfg->optim;
    o->lr = cfg->lr;
    o->momentum = cfg->momentum;
    o->nesterov = cfg->nesterov;
    o->rho = cfg->rho;
    o->beta1 = cfg->beta1;
    o->beta2 = cfg->beta2;
    o->eps = cfg->eps;
    o->weight_decay = cfg->weight_decay;
    o->schedule = cfg->schedule;
    o->warmup_steps = cfg->warmup_steps;
    o->total_steps = total_steps;
    o->min_lr = cfg->min_lr;
    o->delta = cfg->delta > 0 ? cfg->delta : (o->kind == OPT_ADAGRAD ? 1e-7 : 1e-6);
    o->n = n;
    o->lo = lo;
    o->hi = hi;
    /* Every kind has its arm and none a default: -Wswitch names this site for a new one. */
    switch ((enum optim_kind)o->kind) {
    case OPT_SGD:
        o->n_states = o->momentum > 0 ? 1 : 0;
        break;
    case OPT_ADAGRAD:
        o->n_states = 1;
        break;
    case OPT_RMSPROP:
        o->n_states = o->nesterov ? 2 : 1;
        break;
    case OPT_ADAM:
    case OPT_ADAMW:
        o->n_states = 2;
        break;
    }
    for (size_t s = 0; s < o->n_states; s++) {
        o->state[s] = mem_calloc(hi - lo ? hi - lo : 1, sizeof(float));
        if (!o->state[s]) {
            log_error("out of memory for optimizer state (%zu parameters)", hi - lo);
            optim_free(o);
            return -1;
        }
    }
    return 0;
}

void optim_free(struct optim *o)
{
    free(o->state[0]);
    free(o->state[1]);
    o->state[0] = o->state[1] = NULL;
}

int optim_state_nonneg(const struct optim *o, size_t s)
{
    switch ((enum optim_kind)o->kind) {
    case OPT_SGD:
        return 0;
    case OPT_ADAGRAD:
    case OPT_RMSPROP:
        return s == 0;
    case OPT_ADAM:
    case OPT_ADAMW:
        return s == 1;
    }
    return 0;
}

double optim_lr(const struct optim *o, int64_t t)
{
    if (o->schedule != SCHED_CONSTANT && t < o->warmup_steps)
        return o->lr * (double)(t + 1) / (double)o->warmup_steps;
    if (o->schedule == SCHED_COSINE) {
        double span = (double)(o->total_steps - o->warmup_steps);
        double p = span > 0 ? (double)(t - o->warmup_steps) / span : 1.0;
        p = p > 1 ? 1 : p;
        return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(3.14159265358979323846 * p));
    }
    return o->lr;
}

void optim_step(struct optim *o, float *params, const float *grads)
{
    optim_step_range(o, params, grads, 0, o->n);
}

/* One update rule each, in place over n elements: p, g and the state
 * vectors point at the block (see optim.h for the formulas). */
static void sgd_block(const struct optim *o, float *p, const float *g_in, float *v, size_t n, float lr)
{
    const float wd = (float)o->weight_decay, mu = (float)o->momentum;
    for (size_t i = 0; i < n; i++) {
        float g = g_in[i] + wd * p[i];
        if (v) {
            v[i] = mu * v[i] + g;
            g = o->nesterov ? g + mu * v[i] : v[i];
        }
        p[i] -= lr * g;
    }
}

static void adagrad_block(const struct optim *o, float *p, const float *g_in, float *r, size_t n, float lr)
{
    const float wd = (float)o->weight_decay, delta = (float)o->delta;
    for (size_t i = 0; i < n; i++) {
        float g = g_in[i] + wd * p[i];
        r[i] += g * g;
        p[i] -= lr / (delta + sqrtf(r[i])) * g;
    }
}

static void rmsprop_block(const struct optim *o, float *p, const float *g_in, float *r, float *v, size_t n,
                          float lr)
{
    const float wd = (float)o->weight_decay, mu = (float)o->momentum, delta = (float)o->delta;
    const float rho = (float)o->rho;
    for (size_t i = 0; i < n; i++) {
        float g = g_in[i] + wd * p[i];
        r[i] = rho * r[i] + (1.0f - rho) * g * g;
        float step = lr / sqrtf(delta + r[i]) * g;
        if (v) {
            float v_new = mu * v[i] - step;
            p[i] += v_new + mu * (v_new - v[i]);
            v[i] = v_new;
        } else {
            p[i] -= step;
        }
    }
}

static void adam_block(const struct optim *o, float *p, const float *g_in, float *m, float *v, size_t n,
                       float lr)
{
    const float wd = (float)o->weight_decay;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float step = o->adam_step, rs2 = o->adam_rs2;
    const float l2 = o->kind == OPT_ADAM ? wd : 0.0f;
    const float decay = o->kind == OPT_ADAMW ? 1.0f - lr * wd : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float g = g_in[i] + l2 * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        p[i] = decay * p[i] - step * m[i] / (sqrtf(v[i]) * rs2 + eps);
    }
}

/* The step's constants. */
static void prepare(struct optim *o)
{
    o->step_lr = (float)optim_lr(o, o->t);
    /* Adam's lr·m̂/(√v̂ + eps) with the bias corrections as per-step constants:
     * lr/(1−β1^t) · m / (√v / √(1−β2^t) + eps), the same eps, one division
     * and one square root per element instead of three and one. */
    double t = (double)(o->t + 1);
    o->adam_step = (float)((double)o->step_lr / (1.0 - pow(o->beta1, t)));
    o->adam_rs2 = (float)(1.0 / sqrt(1.0 - pow(o->beta2, t)));
}

/* Steps n parameters from element i0 on, in place (p and g point at element i0). */
static void update(const struct optim *o, float *p, const float *g, size_t i0, size_t n)
{
    VAE_ASSERT(o->lo <= i0 && n <= o->hi - i0);
    float *s0 = o->state[0] ? o->state[0] + (i0 - o->lo) : NULL;
    float *s1 = o->state[1] ? o->state[1] + (i0 - o->lo) : NULL;
    switch ((enum optim_kind)o->kind) {
    case OPT_SGD:
        sgd_block(o, p, g, s0, n, o->step_lr);
        break;
    case OPT_ADAGRAD:
        adagrad_block(o, p, g, s0, n, o->step_lr);
        break;
    case OPT_RMSPROP:
        rmsprop_block(o, p, g, s0, s1, n, o->step_lr);
        break;
    case OPT_ADAM:
    case OPT_ADAMW:
        adam_block(o, p, g, s0, s1, n, o->step_lr);
        break;
    }
}

void optim_step_range(struct optim *o, float *params, const float *grads, size_t lo, size_t hi)
{
    VAE_ASSERT(o->lo <= lo && lo <= hi && hi <= o->hi);
    prepare(o);
    update(o, params + lo, grads + lo, lo, hi - lo);
    o->t++;
}

double optim_sum_squares(const float *g, size_t n)
{
    /* Eight independent partial sums: the adds pipeline instead of waiting
     * on one another (a strict double sum cannot be vectorised). */
    double s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += (double)g[i + k] * g[i + k];
    for (; i < n; i++)
        s[0] += (double)g[i] * g[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

void optim_clip(float *g, size_t n, double norm, double max_norm)
{
    if (max_norm <= 0 || !(norm > max_norm))
        return;
    const float k = (float)(max_norm / norm);
    for (size_t i = 0; i < n; i++)
        g[i] *= k;
}
