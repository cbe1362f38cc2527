/*
 * Allreduce latency and bandwidth, for the step-time model of
 * launch/scaling.sh: the median time of comm_allreduce_sum_f32 (the call
 * the trainer makes) at sizes from 4 KiB to 16 MiB. Prints one line per size:
 *   ranks bytes seconds
 * With a third argument BYTES it measures instead the node exchange of the
 * default reduction (comm.shared_memory) for a gradient of BYTES: the
 * reduction of the own slice with its squares (summed as the trainer sums
 * them), the node sum of the norm, a write of the own slice of the node's
 * parameter vector (as the optimizer updates it in place), the node barrier,
 * and the read of the other ranks' slices of that vector, which the next
 * forward makes where the other cores wrote them (what a step adds to the
 * optimizer on its slice and to a 1-rank forward), the median over reps, the
 * slowest rank's time. Prints
 *   node ranks bytes seconds
 * Run under mpirun: mpirun -np 2 build/bench/vae_allreduce_bench [reps [node BYTES]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/timer.h"
#include "optim/optim.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void add_squares(void *ctx, const float *g, size_t n)
{
    *(double *)ctx += optim_sum_squares(g, n); /* as the trainer sums them */
}

static volatile double sink; /* keeps the read of the parameter vector */

/* The node exchange for n floats; 0, or 1 when the ranks share no window. */
static int node_exchange(struct comm *c, int reps, size_t n, double *t)
{
    struct comm_node *nd = comm_node_open(c, n, 0, 0);
    if (!nd) {
        if (comm_rank(c) == 0)
            fprintf(stderr, "vae_allreduce_bench: no shared-memory window on these ranks\n");
        return 1;
    }
    size_t lo, hi;
    comm_node_range(nd, &lo, &hi);
    float *grads = comm_node_grads(nd);
    for (int r = -3; r < reps; r++) {
        for (size_t i = 0; i < n; i++) /* as backward leaves it: written by this rank */
            grads[i] = (float)(i % 7) * 0.25f;
        comm_barrier(c);
        double t0 = timer_now(), ss = 0;
        comm_node_reduce(nd, add_squares, &ss);
        comm_node_sum(nd, ss);
        float *v = comm_node_params(nd);
        for (size_t i = lo; i < hi; i++) /* the optimizer's in-place update, without its arithmetic */
            v[i] += 1.0f;
        comm_node_sync(nd);
        /* The next forward reads the other ranks' slices where they wrote them. */
        sink += optim_sum_squares(v, lo) + optim_sum_squares(v + hi, n - hi);
        double dt = timer_now() - t0;
        comm_allreduce_max_f64(c, &dt, 1);
        if (r >= 0)
            t[r] = dt;
    }
    comm_node_close(nd);
    return 0;
}

int main(int argc, char **argv)
{
    struct comm *c = comm_init(&argc, &argv);
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    if (reps < 1)
        reps = 1;
    if (argc > 3 && !strcmp(argv[2], "node")) {
        size_t n = (size_t)atoll(argv[3]) / sizeof(float);
        double *t = malloc((size_t)reps * sizeof *t);
        int rc = !t || n == 0 || node_exchange(c, reps, n, t);
        if (!rc) {
            qsort(t, (size_t)reps, sizeof *t, cmp);
            if (comm_rank(c) == 0)
                printf("node %d %zu %.9f\n", comm_size(c), n * sizeof(float), t[reps / 2]);
        }
        free(t);
        comm_finalize();
        return rc;
    }
    size_t max_n = (size_t)4 << 20; /* 16 MiB of floats */
    float *buf = calloc(max_n, sizeof *buf);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!buf || !t)
        return 1;
    for (size_t n = 1024; n <= max_n; n *= 4) {
        for (int r = -3; r < reps; r++) { /* 3 warm-up rounds */
            comm_barrier(c);
            double t0 = timer_now();
            comm_allreduce_sum_f32(c, buf, n);
            double dt = timer_now() - t0;
            comm_allreduce_max_f64(c, &dt, 1);
            if (r >= 0)
                t[r] = dt;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp);
        if (comm_rank(c) == 0)
            printf("%d %zu %.9f\n", comm_size(c), n * sizeof *buf, t[reps / 2]);
    }
    free(buf);
    free(t);
    comm_finalize();
    return 0;
}
