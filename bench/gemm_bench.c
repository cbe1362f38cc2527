/*
 * The GEMM bound of a training step: the time the model's matrix products
 * alone take in OpenBLAS sgemm, at the shapes of one step (forward, and
 * backward's weight and input gradients; convolutions at their im2row
 * shapes), for a local batch of B samples. This is what a step could cost
 * if everything but the GEMMs were free. Prints one JSON line with the
 * median step GEMM time, its GFLOP/s, the samples/s bound and the name of
 * the OpenBLAS kernels that ran.
 *   vae_gemm_bench [--hidden 400] [--latent 20] [--dim 784 | --image C,H,W]
 *                  [--set section.key=value ...] [--batch 128] [--reps 200]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/timer.h"
#include "model/linear.h"
#include "model/vae.h"

/* One sgemm of the step: C (m, n) = op(A) (m, k) · op(B) (k, n). */
struct gemm {
    int ta, tb;
    size_t m, n, k;
};

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The three products of layer ly at batch n_b, as the layer code calls them (linear.c, conv.c). */
static size_t layer_gemms(const struct vae_layer *ly, size_t n_b, int first, struct gemm *g)
{
    if (ly->kind == LAYER_LINEAR) {
        g[0] = (struct gemm){0, 1, n_b, ly->n_out, ly->n_in};
        g[1] = (struct gemm){1, 0, ly->n_out, ly->n_in, n_b};
        g[2] = (struct gemm){0, 0, n_b, ly->n_in, ly->n_out};
    } else {
        size_t bn = n_b * ly->g.ho * ly->g.wo, kk = ly->g.c * ly->g.k * ly->g.k, o = ly->g.o;
        int tr = ly->kind == LAYER_CONVT;
        g[0] = tr ? (struct gemm){0, 0, bn, kk, o} : (struct gemm){0, 1, bn, o, kk};
        g[1] = (struct gemm){1, 0, o, kk, bn};
        g[2] = tr ? (struct gemm){0, 1, bn, o, kk} : (struct gemm){0, 0, bn, kk, o};
    }
    return first ? 2 : 3; /* the first layer's input needs no gradient */
}

static int parse_args(int argc, char **argv, struct config *cfg, long *dim, long image[3], long *batch,
                      long *reps)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        char set[256];
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--hidden") || !strcmp(a, "--latent")) {
            snprintf(set, sizeof set, "model.%s=%s", a + 2, v);
            if (config_set(cfg, set, a))
                return -1;
        } else if (!strcmp(a, "--set")) {
            if (config_set(cfg, v, a))
                return -1;
        } else if (!strcmp(a, "--image")) {
            if (sscanf(v, "%ld,%ld,%ld", &image[0], &image[1], &image[2]) != 3)
                return -1;
            *dim = image[0] * image[1] * image[2];
        } else if (!strcmp(a, "--dim")) {
            *dim = atol(v);
        } else if (!strcmp(a, "--batch")) {
            *batch = atol(v);
        } else if (!strcmp(a, "--reps")) {
            *reps = atol(v);
        } else {
            fprintf(stderr, "vae_gemm_bench: unknown option %s\n", a);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    config_defaults(&cfg);
    long dim = 784, image[3] = {0, 0, 0}, batch = 128, reps = 200;
    if (parse_args(argc, argv, &cfg, &dim, image, &batch, &reps))
        return 2;
    if (!getenv("OPENBLAS_NUM_THREADS"))
        linear_set_threads(1);
    struct vae m;
    if (vae_init(&m, &cfg, (size_t)dim, image[0] ? image : NULL, 1))
        return 1;
    struct gemm g[3 * VAE_MAX_LAYERS];
    size_t n_g = 0, most = 0;
    double flop = 0;
    for (size_t l = 0; l < m.n_layers; l++)
        n_g += layer_gemms(&m.layer[l], (size_t)batch, l == 0, g + n_g);
    for (size_t i = 0; i < n_g; i++) {
        size_t s[3] = {g[i].m * g[i].k, g[i].k * g[i].n, g[i].m * g[i].n};
        for (int j = 0; j < 3; j++)
            most = s[j] > most ? s[j] : most;
        flop += 2.0 * (double)g[i].m * (double)g[i].n * (double)g[i].k;
    }
    float *a = calloc(most, sizeof *a), *b = calloc(most, sizeof *b), *c = calloc(most, sizeof *c);
    double *t = malloc((size_t)reps * sizeof *t);
    for (long r = -5; r < reps; r++) {
        double t0 = timer_now();
        for (size_t i = 0; i < n_g; i++) {
            const struct gemm *q = &g[i];
            cblas_sgemm(CblasRowMajor, q->ta ? CblasTrans : CblasNoTrans, q->tb ? CblasTrans : CblasNoTrans,
                        (int)q->m, (int)q->n, (int)q->k, 1.0f, a, q->ta ? (int)q->m : (int)q->k, b,
                        q->tb ? (int)q->k : (int)q->n, 1.0f, c, (int)q->n);
        }
        if (r >= 0)
            t[r] = timer_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    double med = t[reps / 2];
    printf(
        "{\"bench\": \"gemm_bound\", \"batch\": %ld, \"n_params\": %zu, \"step_gflop\": %.4f, "
        "\"step_gemm_s\": %.9f, \"gflop_per_s\": %.2f, \"samples_per_s_bound\": %.1f, \"kernels\": \"%s\"}\n",
        batch, m.n_params, flop * 1e-9, med, flop * 1e-9 / med, (double)batch / med, linear_kernels());
    free(a);
    free(b);
    free(c);
    free(t);
    vae_free(&m);
    return 0;
}
