/* Activations (see act.h). Plain loops the compiler vectorises; tanh and
 * sigmoid call libm, which dominates their cost. */
#include "model/act.h"

#include <math.h>

void act_forward(float *x, size_t n, enum act_kind kind)
{
    switch (kind) {
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            x[i] = tanhf(x[i]);
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    }
}

void act_backward(float *d, const float *y, size_t n, enum act_kind kind)
{
    switch (kind) {
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            d[i] = y[i] > 0.0f ? d[i] : 0.0f;
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            d[i] *= 1.0f - y[i] * y[i];
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            d[i] *= y[i] * (1.0f - y[i]);
        break;
    }
}
