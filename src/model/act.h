/*
 * Elementwise activations. Forward writes y = f(x) in place; backward turns
 * dy into dx using the stored *output* y (relu: y > 0; tanh: 1 - y²;
 * sigmoid: y(1 - y)), so no pre-activation copy is kept.
 */
#ifndef VAE_ACT_H
#define VAE_ACT_H

#include <stddef.h>

#include "core/config.h"

/* x (n) := f(x). */
void act_forward(float *x, size_t n, enum act_kind kind);
/* d (n) := d ⊙ f'(·), given the forward output y (n). */
void act_backward(float *d, const float *y, size_t n, enum act_kind kind);

#endif
