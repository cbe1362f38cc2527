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
    switch (o->kind) {
    case OPT_SGD:
        o->n_states = o->momentum > 0 ? 1 : 0;
        break;
    case OPT_ADAGRAD:
        o->n_states = 1;
        break;
    case OPT_RMSPROP:
        o->n_states = o->nesterov ? 2 : 1;
        break;
    default:
        o->n_states = 2;
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

/* One update rule each, over [lo, hi) (see optim.h for the formulas). */
static void sgd_range(const struct optim *o, float *params, const float *grads, size_t lo, size_t hi,
                      float lr)
{
    const float wd = (float)o->weight_decay, mu = (float)o->momentum;
    float *v = o->state[0];
    const size_t at = o->lo;
    for (size_t i = lo; i < hi; i++) {
        float g = grads[i] + wd * params[i];
        if (v) {
            v[i - at] = mu * v[i - at] + g;
            g = o->nesterov ? g + mu * v[i - at] : v[i - at];
        }
        params[i] -= lr * g;
    }
}

static void adagrad_range(const struct optim *o, float *params, const float *grads, size_t lo, size_t hi,
                          float lr)
{
    const float wd = (float)o->weight_decay, delta = (float)o->delta;
    float *r = o->state[0];
    const size_t at = o->lo;
    for (size_t i = lo; i < hi; i++) {
        float g = grads[i] + wd * params[i];
        r[i - at] += g * g;
        params[i] -= lr / (delta + sqrtf(r[i - at])) * g;
    }
}

static void rmsprop_range(const struct optim *o, float *params, const float *grads, size_t lo, size_t hi,
                          float lr)
{
    const float wd = (float)o->weight_decay, mu = (float)o->momentum, delta = (float)o->delta;
    const float rho = (float)o->rho;
    float *r = o->state[0], *v = o->state[1];
    const size_t at = o->lo;
    for (size_t i = lo; i < hi; i++) {
        float g = grads[i] + wd * params[i];
        r[i - at] = rho * r[i - at] + (1.0f - rho) * g * g;
        float step = lr / sqrtf(delta + r[i - at]) * g;
        if (v) {
            float v_new = mu * v[i - at] - step;
            params[i] += v_new + mu * (v_new - v[i - at]);
            v[i - at] = v_new;
        } else {
            params[i] -= step;
        }
    }
}

static void adam_range(const struct optim *o, float *params, const float *grads, size_t lo, size_t hi,
                       float lr)
{
    const float wd = (float)o->weight_decay;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    float *m = o->state[0], *v = o->state[1];
    const float step = o->adam_step, rs2 = o->adam_rs2;
    const float l2 = o->kind == OPT_ADAM ? wd : 0.0f;
    const float decay = o->kind == OPT_ADAMW ? 1.0f - lr * wd : 1.0f;
    const size_t at = o->lo;
    for (size_t i = lo; i < hi; i++) {
        float g = grads[i] + l2 * params[i];
        m[i - at] = b1 * m[i - at] + (1.0f - b1) * g;
        v[i - at] = b2 * v[i - at] + (1.0f - b2) * g * g;
        params[i] = decay * params[i] - step * m[i - at] / (sqrtf(v[i - at]) * rs2 + eps);
    }
}

void optim_step_blocks(struct optim *o, float *params, const float *grads, size_t lo, size_t hi,
                       void (*on_block)(void *ctx, size_t b0, size_t b1), void *ctx)
{
    VAE_ASSERT(o->lo <= lo && lo <= hi && hi <= o->hi);
    const float lr = (float)optim_lr(o, o->t);
    o->t++;
    /* Adam's lr·m̂/(√v̂ + eps) with the bias corrections as per-step constants:
     * lr/(1−β1^t) · m / (√v / √(1−β2^t) + eps), the same eps, one division
     * and one square root per element instead of three and one. */
    o->adam_step = (float)((double)lr / (1.0 - pow(o->beta1, (double)o->t)));
    o->adam_rs2 = (float)(1.0 / sqrt(1.0 - pow(o->beta2, (double)o->t)));
    const size_t block = on_block ? OPTIM_BLOCK : hi - lo;
    for (size_t b0 = lo; b0 < hi; b0 += block) {
        size_t b1 = hi - b0 < block ? hi : b0 + block;
        switch (o->kind) {
        case OPT_SGD:
            sgd_range(o, params, grads, b0, b1, lr);
            break;
        case OPT_ADAGRAD:
            adagrad_range(o, params, grads, b0, b1, lr);
            break;
        case OPT_RMSPROP:
            rmsprop_range(o, params, grads, b0, b1, lr);
            break;
        case OPT_ADAM:
        case OPT_ADAMW:
            adam_range(o, params, grads, b0, b1, lr);
            break;
        }
        if (on_block)
            on_block(ctx, b0, b1);
    }
}

void optim_step_range(struct optim *o, float *params, const float *grads, size_t lo, size_t hi)
{
    optim_step_blocks(o, params, grads, lo, hi, NULL, NULL);
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
