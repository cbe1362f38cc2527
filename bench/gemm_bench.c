/*
 * The GEMM bound of a training step: the time the model's matrix products
 * alone take in OpenBLAS sgemm, at the shapes of one step (forward, and
 * backward's weight and input gradients), for a local batch of B samples.
 * This is what a step could cost if everything but the GEMMs were free.
 * Prints one JSON line with the median step GEMM time and the samples/s bound.
 *   vae_gemm_bench [--hidden 400] [--latent 20] [--dim 784] [--batch 128] [--reps 200]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/timer.h"
#include "model/linear.h"
#include "model/vae.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    struct config cfg;
    config_defaults(&cfg);
    long dim = 784, batch = 128, reps = 200;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--hidden")) {
            char set[128];
            snprintf(set, sizeof set, "model.hidden=%s", argv[i + 1]);
            if (config_set(&cfg, set, "--hidden"))
                return 2;
        } else if (!strcmp(argv[i], "--latent")) {
            cfg.latent = atol(argv[i + 1]);
        } else if (!strcmp(argv[i], "--dim")) {
            dim = atol(argv[i + 1]);
        } else if (!strcmp(argv[i], "--batch")) {
            batch = atol(argv[i + 1]);
        } else if (!strcmp(argv[i], "--reps")) {
            reps = atol(argv[i + 1]);
        }
    }
    if (!getenv("OPENBLAS_NUM_THREADS"))
        linear_set_threads(1);
    struct vae m;
    if (vae_init(&m, &cfg, (size_t)dim, NULL, (size_t)batch))
        return 1;
    vae_init_params(&m, 1);
    size_t width = (size_t)dim;
    for (size_t l = 0; l < m.n_layers; l++)
        width = m.layer[l].n_out > width ? m.layer[l].n_out : width;
    float *x = calloc((size_t)batch * width, sizeof *x), *y = calloc((size_t)batch * width, sizeof *y);
    float *dx = calloc((size_t)batch * width, sizeof *dx);
    double *t = malloc((size_t)reps * sizeof *t);
    for (long r = -5; r < reps; r++) {
        double t0 = timer_now();
        for (size_t l = 0; l < m.n_layers; l++) {
            const struct vae_layer *ly = &m.layer[l];
            /* forward y = x Wᵀ + b; backward dW += dyᵀ x, dx = dy W (not for layer 0) */
            linear_forward(y, x, m.params + ly->w_off, m.params + ly->b_off, (size_t)batch, ly->n_in,
                           ly->n_out);
            linear_backward(l ? dx : NULL, m.grads + ly->w_off, m.grads + ly->b_off, y, x,
                            m.params + ly->w_off, (size_t)batch, ly->n_in, ly->n_out);
        }
        if (r >= 0)
            t[r] = timer_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    double med = t[reps / 2];
    printf("{\"bench\": \"gemm_bound\", \"batch\": %ld, \"n_params\": %zu, \"step_gemm_s\": %.9f, "
           "\"samples_per_s_bound\": %.1f}\n",
           batch, m.n_params, med, (double)batch / med);
    free(x);
    free(y);
    free(dx);
    free(t);
    vae_free(&m);
    return 0;
}
