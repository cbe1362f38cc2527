/*
 * The Bernoulli likelihood on logits, per row of D pixels: the negative log
 * likelihood Σ_d BCE(l_d, x_d) = Σ_d max(l,0) − l·x + log(1 + e^−|l|), stable
 * for any l, with targets x in [0, 1] (as in the PyTorch example).
 */
#ifndef VAE_BERNOULLI_H
#define VAE_BERNOULLI_H

#include <stddef.h>

/* Σ_d BCE of one row: l (D) logits, x (D) targets. */
float bernoulli_nll(const float *l, const float *x, size_t n_d);

/* The same sum, and dl (D) = scale·(σ(l) − x), its gradient times scale. */
float bernoulli_nll_grad(float *dl, const float *l, const float *x, size_t n_d, float scale);

#endif
