/*
 * Allreduce latency and bandwidth, for the step-time model of
 * launch/scaling.sh: the median time of comm_allreduce_sum_f32 (the call
 * the trainer makes) at sizes from 4 KiB to 16 MiB. Prints one line per size:
 *   ranks bytes seconds
 * Run under mpirun: mpirun -np 2 build/bench/vae_allreduce_bench [reps]
 */
#include <stdio.h>
#include <stdlib.h>

#include "comm/comm.h"
#include "core/timer.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    struct comm *c = comm_init(&argc, &argv);
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    if (reps < 1)
        reps = 1;
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
