/*
 * Optimizers on flat buffers: one loop updates every parameter.
 *
 *   sgd      v ← μv + g;  θ ← θ − ε·v   (Nesterov: θ ← θ − ε·(g + μv))   [PyTorch]
 *   adagrad  r ← r + g⊙g;  θ ← θ − ε/(δ + √r) ⊙ g,  δ = 1e-7            [notes, Alg. 8.4]
 *   rmsprop  r ← ρr + (1−ρ) g⊙g;  θ ← θ − ε/√(δ + r) ⊙ g,  δ = 1e-6     [notes, Alg. 8.5]
 *   rmsprop + Nesterov (Goodfellow et al. Alg. 8.6): the gradient is taken at
 *            the look-ahead θ + αv. We store φ = θ + αv as the parameters, so
 *            the loop always differentiates at the stored point:
 *            r ← ρr + (1−ρ)g⊙g;  v' ← αv − ε/√(δ + r) ⊙ g;  φ ← φ + v' + α(v' − v)
 *   adam     m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g⊙g;
 *            θ ← θ − ε · (m / (1−β1^t)) / (√(v / (1−β2^t)) + eps)   [Kingma & Ba]
 *   adamw    θ ← θ − ε·λ·θ, then adam                               [Loshchilov & Hutter]
 * weight_decay λ for all but adamw adds λθ to g (L2).
 */
#ifndef VAE_OPTIM_H
#define VAE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct optim {
    int kind; /* enum optim_kind */
    double lr, momentum, rho, beta1, beta2, eps, delta, weight_decay;
    int nesterov;
    int schedule; /* enum sched_kind */
    long warmup_steps, total_steps;
    double min_lr;
    size_t n;        /* parameter count */
    size_t lo, hi;   /* the parameters whose state this holds: [0, n), or a rank's slice */
    int64_t t;       /* steps taken (Adam's bias-correction t) */
    size_t n_states; /* 0, 1 or 2 state vectors */
    float *state[2]; /* (hi − lo) each, element i at [i − lo]: sgd/rmsprop-nesterov v;
                        adagrad/rmsprop r; adam m, v */
    float step_lr;   /* the step's learning rate, and Adam's constants (optim_prepare) */
    float adam_step, adam_rs2;
};

/* Allocate the state for n parameters (zeroed). total_steps feeds the cosine schedule. */
int optim_init(struct optim *o, const struct config *cfg, size_t n, long total_steps);
/* The same, holding the state of parameters [lo, hi) only: a rank that
 * steps only its slice (node mode) holds 1/L of the state, and steps may
 * cover only parts of [lo, hi). */
int optim_init_slice(struct optim *o, const struct config *cfg, size_t n, size_t lo, size_t hi,
                     long total_steps);
void optim_free(struct optim *o);

/*
 * Nonzero when state vector s must hold no negative value: a sum or running
 * mean of squares (adagrad and rmsprop r, adam v). A loaded checkpoint that
 * breaks it would turn the parameters into NaN at the first step.
 */
int optim_state_nonneg(const struct optim *o, size_t s);

/* Learning rate at step t (0-based) under the schedule. */
double optim_lr(const struct optim *o, int64_t t);

/* One step: params (n) updated from grads (n); increments o->t. */
void optim_step(struct optim *o, float *params, const float *grads);
/* The same step for elements [lo, hi) only (a rank's share of node-shared
 * parameters); every rank calls it once per step, so o->t stays agreed. */
void optim_step_range(struct optim *o, float *params, const float *grads, size_t lo, size_t hi);

/* Σ g² over g (n), in double: the global squared L2 norm, or a slice's share of it. */
double optim_sum_squares(const float *g, size_t n);
/*
 * Clip by global norm: g (n) is all or a slice of a gradient whose L2 norm is
 * `norm`; scale it by max_norm/norm when norm > max_norm (max_norm 0: off).
 */
void optim_clip(float *g, size_t n, double norm, double max_norm);

#endif
