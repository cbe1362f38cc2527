/*
 * What this machine gives two cores at once, without vae_dist's own code in
 * the way: the ceiling of a 2-rank speedup on one node. Two kinds of work
 * run first in one process, then in two processes at once (forked, started
 * together), in interleaved rounds:
 *   arith: vector multiply-adds on registers only (what a core does alone);
 *   adam:  the optimizer's own update (optim_step, Adam) over N parameters,
 *          28 bytes moved per parameter (what the memory system shares).
 * For each, the medians over rounds of: one process's time per pass alone,
 * the slower process's time per pass when both run, and the pair's speedup
 * (2 × alone / slower); "spread" is the slower over the faster process's
 * time when both run (the two cores' speeds differ on a shared VM).
 * Prints one JSON line.
 *   vae_corun_bench [--params 326000] [--rounds 5] [--ms 300]
 * The default N is half the main job's parameters: a 2-rank rank's slice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/timer.h"
#include "optim/optim.h"

enum { ARITH, ADAM, N_KINDS };

static volatile float sink;

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One pass of register-only work: 16 independent vectors of 8 floats. */
static void arith_pass(void)
{
    typedef float v8 __attribute__((vector_size(32)));
    v8 a[16], x = {0}, y = {0};
    x += 0.999999f;
    y += 1e-7f;
    for (int i = 0; i < 16; i++)
        a[i] = x * (float)i;
    for (int r = 0; r < 20000; r++)
        for (int i = 0; i < 16; i++)
            a[i] = a[i] * x + y;
    float s = 0;
    for (int i = 0; i < 16; i++)
        s += a[i][0];
    sink = s;
}

struct adam_work {
    struct optim o;
    float *p, *g;
    size_t n;
};

/* Seconds per pass of kind k, over at least ms milliseconds. */
static double time_passes(int k, struct adam_work *w, double ms)
{
    long passes = 0;
    double t0 = timer_now(), t;
    do {
        if (k == ARITH)
            arith_pass();
        else
            optim_step(&w->o, w->p, w->g);
        passes++;
        t = timer_now();
    } while (t - t0 < ms * 1e-3);
    return (t - t0) / (double)passes;
}

/* Runs kind k in n_proc forked processes started together; their seconds per pass in out. */
static int run(int k, int n_proc, struct adam_work *w, double ms, double *out)
{
    int go[2], back[2];
    pid_t pid[2];
    if (pipe(go) || pipe(back))
        return -1;
    for (int i = 0; i < n_proc; i++) {
        pid[i] = fork();
        if (pid[i] < 0)
            return -1;
        if (pid[i] == 0) {
            char c;
            time_passes(k, w, 0.1 * ms); /* warm: caches, pages, clock */
            if (read(go[0], &c, 1) != 1)
                _exit(1);
            double s = time_passes(k, w, ms);
            _exit(write(back[1], &s, sizeof s) == sizeof s ? 0 : 1);
        }
    }
    close(go[0]);
    close(back[1]);
    nanosleep(&(struct timespec){0, 50000000}, NULL); /* both children warm before either starts */
    int ok = write(go[1], "gg", (size_t)n_proc) == n_proc;
    close(go[1]);
    for (int i = 0; i < n_proc; i++)
        ok &= read(back[0], &out[i], sizeof out[i]) == sizeof out[i];
    close(back[0]);
    for (int i = 0; i < n_proc; i++) {
        int st;
        waitpid(pid[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    long n = 326000, rounds = 5;
    double ms = 300;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--params"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--ms"))
            ms = atof(argv[i + 1]);
        else {
            fprintf(stderr, "vae_corun_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n < 1 || rounds < 1 || rounds > 100 || !(ms > 0)) {
        fprintf(stderr, "vae_corun_bench: --params, --rounds (1-100) and --ms must be positive\n");
        return 2;
    }
    struct config cfg;
    config_defaults(&cfg); /* Adam, as the main job */
    struct adam_work w = {.n = (size_t)n};
    w.p = malloc(w.n * sizeof *w.p);
    w.g = malloc(w.n * sizeof *w.g);
    if (!w.p || !w.g || optim_init(&w.o, &cfg, w.n, 1000000)) {
        fprintf(stderr, "vae_corun_bench: out of memory for %ld parameters\n", n);
        return 1;
    }
    for (size_t i = 0; i < w.n; i++) {
        w.p[i] = 0.01f * (float)(i % 97);
        w.g[i] = 1e-3f * (float)(i % 89) - 0.04f;
    }
    static const char *const names[N_KINDS] = {"arith", "adam"};
    double alone[N_KINDS][100], pair[N_KINDS][100], speedup[N_KINDS][100], spread[N_KINDS][100];
    for (long r = 0; r < rounds; r++) {
        for (int k = 0; k < N_KINDS; k++) {
            double a, b[2];
            if (run(k, 1, &w, ms, &a) || run(k, 2, &w, ms, b)) {
                fprintf(stderr, "vae_corun_bench: a forked process failed\n");
                return 1;
            }
            double slow = b[0] > b[1] ? b[0] : b[1], fast = b[0] > b[1] ? b[1] : b[0];
            alone[k][r] = a;
            pair[k][r] = slow;
            speedup[k][r] = 2.0 * a / slow;
            spread[k][r] = slow / fast;
        }
    }
    printf("{\"bench\": \"corun\", \"rounds\": %ld, \"adam_params\": %ld", rounds, n);
    for (int k = 0; k < N_KINDS; k++)
        printf(", \"%s_alone_ms\": %.4f, \"%s_pair_ms\": %.4f, \"%s_pair_speedup\": %.3f, "
               "\"%s_pair_spread\": %.3f",
               names[k], 1e3 * median(alone[k], (int)rounds), names[k], 1e3 * median(pair[k], (int)rounds),
               names[k], median(speedup[k], (int)rounds), names[k], median(spread[k], (int)rounds));
    printf("}\n");
    optim_free(&w.o);
    free(w.p);
    free(w.g);
    return 0;
}
