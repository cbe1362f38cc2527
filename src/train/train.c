/*
 * Training loop (see train.h). One step, per rank:
 *   batch rows from the epoch buffer → noise ε = Philox(seed, step, sample id)
 *   → forward/backward into the flat gradient (buckets start reducing as
 *   backward finishes them) → wait → non-finite check and clip on the reduced
 *   gradient (identical on every rank, so every rank decides alike) →
 *   optimizer step → one small allreduce of loss sums and the stop flag.
 */
#include "train/train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/ckpt.h"
#include "data/dataset.h"
#include "data/png.h"
#include "data/shuffle.h"
#include "model/linear.h"
#include "model/vae.h"
#include "optim/optim.h"
#include "train/metrics.h"

/* Reproducible mode's fixed point: value · 2^32 in int64. A micro-batch
 * gradient element beyond ±2^20 counts as an overflow (like a non-finite). */
#define FIXED_SCALE 4294967296.0
#define FIXED_LIMIT 1048576.0f

#define EVAL_CHUNK 500

static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
}

void train_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
}

enum phase { PH_DATA, PH_COMPUTE, PH_WAIT, PH_OPT, PH_CKPT, N_PHASES };

/* A step event: the loss terms, then each phase's seconds per step as the
 * mean over ranks and its min and max (a rank that waits long in the
 * allreduce is waiting for a slower one). */
enum { M_STEP, M_EPOCH, M_NEG_ELBO, M_REC, M_KL, M_SPS, M_LR, M_NORM, M_SKIPPED, M_PHASES };
/* clang-format off: a table, kept as one */
static const char *const step_names[M_PHASES + 3 * N_PHASES] = {"step",
                                                                "epoch",
                                                                "neg_elbo",
                                                                "rec",
                                                                "kl",
                                                                "samples_per_s",
                                                                "lr",
                                                                "grad_norm",
                                                                "skipped_total",
                                                                "t_data",
                                                                "t_compute",
                                                                "t_allreduce_wait",
                                                                "t_optim",
                                                                "t_ckpt",
                                                                "t_data_min",
                                                                "t_compute_min",
                                                                "t_allreduce_wait_min",
                                                                "t_optim_min",
                                                                "t_ckpt_min",
                                                                "t_data_max",
                                                                "t_compute_max",
                                                                "t_allreduce_wait_max",
                                                                "t_optim_max",
                                                                "t_ckpt_max"};
/* clang-format on */

struct trainer {
    const struct config *cfg;
    const struct comm *c;
    int rank, size;
    size_t n_local; /* B/P */
    size_t steps_per_epoch;
    struct dataset_info info;
    struct shard train, test, epoch_buf;
    long epoch_loaded; /* epoch held in epoch_buf, or -1 */
    struct vae m;
    struct optim opt;
    float *x;       /* (B/P, D) */
    float *eps;     /* (B/P, Z) */
    int64_t *fixed; /* (n_params + 1) reproducible accumulator; last: overflow count */
    struct comm_reducer *red;
    struct comm_node *node;        /* gradient exchange through node shared memory, or NULL */
    size_t lo, hi;                 /* the slice of the parameters this rank updates */
    size_t *bucket_off;            /* (n_buckets + 1) */
    size_t n_buckets, next_bucket; /* buckets >= next_bucket have been started */
    struct metrics mt;
    double t_phase[N_PHASES];
    double *curve; /* mean −ELBO of each log interval, for loss.png */
    size_t n_curve, cap_curve;
    int tty;      /* rank 0 writes to a terminal: draw a progress bar */
    double t_bar; /* when the bar was last drawn */
    /* Fault-suite hooks, read once from the environment (docs/usage.md). */
    long delay_ms;            /* VAE_TEST_STEP_DELAY_MS: sleep per step */
    int64_t nan_from, nan_to; /* VAE_TEST_NAN_STEPS=a:b: last rank's gradient NaN in [a, b) */
    int diverge_rank;         /* VAE_TEST_DIVERGE_RANK=r: rank r nudges a weight after step 1 */
};

static void start_ready_buckets(void *ctx, size_t off)
{
    struct trainer *t = ctx;
    while (t->next_bucket > 0 && t->bucket_off[t->next_bucket - 1] >= off) {
        t->next_bucket--;
        comm_reducer_start(t->red, t->next_bucket);
    }
    comm_reducer_progress(t->red);
}

/* Cut the flat gradient at layer boundaries into buckets of about bucket_mb,
 * from the end (where backward starts). */
static int make_buckets(struct trainer *t)
{
    const struct vae *m = &t->m;
    size_t cap = (size_t)(t->cfg->bucket_mb * 1048576.0 / sizeof(float));
    size_t cuts[VAE_MAX_LAYERS + 2], n_cuts = 0, end = m->n_params;
    cuts[n_cuts++] = m->n_params;
    size_t starts[VAE_MAX_LAYERS + 1], n_starts = 0;
    if (m->obs_logvar_off != SIZE_MAX)
        starts[n_starts++] = m->obs_logvar_off;
    for (size_t l = m->n_layers; l-- > 0;)
        starts[n_starts++] = m->layer[l].w_off;
    for (size_t i = 0; i < n_starts; i++) {
        if (end - starts[i] >= cap || starts[i] == 0) {
            cuts[n_cuts++] = starts[i];
            end = starts[i];
        }
    }
    t->n_buckets = n_cuts - 1;
    t->bucket_off = malloc(n_cuts * sizeof *t->bucket_off);
    if (!t->bucket_off)
        return -1;
    for (size_t i = 0; i < n_cuts; i++)
        t->bucket_off[i] = cuts[n_cuts - 1 - i];
    t->red = comm_reducer_init(t->c, t->m.grads, t->bucket_off, t->n_buckets);
    return 0;
}

static uint64_t hash_params(const float *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * sizeof *p; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Abort naming the first rank whose parameters differ from rank 0's. */
static void replica_check(struct trainer *t, int64_t step)
{
    uint64_t *all = malloc((size_t)t->size * sizeof *all);
    VAE_ASSERT(all);
    comm_allgather_u64(t->c, hash_params(t->m.params, t->m.n_params), all);
    for (int q = 1; q < t->size; q++) {
        if (all[q] != all[0]) {
            if (t->rank == 0)
                log_error("replica check at step %lld: parameters of rank %d differ from rank 0 "
                          "(hash %016llx vs %016llx); the replicas diverged",
                          (long long)step, q, (unsigned long long)all[q], (unsigned long long)all[0]);
            free(all);
            comm_barrier(t->c);
            vae_abort(VAE_EXIT_FATAL);
        }
    }
    free(all);
}

/* Reduce through node shared memory where it applies (comm_node_open);
 * this rank then updates the slice [lo, hi) of the parameters. */
static void open_node_exchange(struct trainer *t)
{
    const struct config *cfg = t->cfg;
    t->lo = 0;
    t->hi = t->m.n_params;
    if (!cfg->shared_memory || cfg->overlap || cfg->reproducible || t->size == 1)
        return;
    t->node = comm_node_open(t->c, t->m.n_params);
    if (t->node)
        comm_node_range(t->node, &t->lo, &t->hi);
}

/* Node-shared exchange: every rank updated only its slice of the optimizer
 * state; complete it on every rank before it is written. */
static void gather_optim_state(struct trainer *t)
{
    for (size_t s = 0; t->node && s < t->opt.n_states; s++)
        comm_node_allgather(t->node, t->opt.state[s]);
}

static int make_run_dir(const struct trainer *t)
{
    int ok = 1;
    if (t->rank == 0) {
        char path[CONFIG_STR_MAX + 32];
        const char *dir = t->cfg->run_dir;
        /* mkdir -p */
        snprintf(path, sizeof path, "%s", dir);
        for (char *p = path + 1; *p && ok; p++) {
            if (*p != '/')
                continue;
            *p = 0;
            ok = mkdir(path, 0777) == 0 || errno == EEXIST;
            *p = '/';
        }
        ok = ok && (mkdir(path, 0777) == 0 || errno == EEXIST);
        snprintf(path, sizeof path, "%s/ckpt", dir);
        ok = ok && (mkdir(path, 0777) == 0 || errno == EEXIST);
        snprintf(path, sizeof path, "%s/config.ini", dir);
        FILE *f = ok ? fopen(path, "w") : NULL;
        ok = f && config_write(t->cfg, f) == 0;
        if (f && fclose(f))
            ok = 0;
        if (!ok)
            log_error("%s: cannot create the run directory or write config.ini: %s", dir, strerror(errno));
    }
    return comm_agree(t->c, ok) ? 0 : -1;
}

static void trainer_free(struct trainer *t)
{
    free(t->curve);
    metrics_close(&t->mt);
    comm_reducer_free(t->red);
    comm_node_close(t->node);
    free(t->bucket_off);
    free(t->fixed);
    free(t->x);
    free(t->eps);
    shard_free(&t->epoch_buf);
    shard_free(&t->test);
    shard_free(&t->train);
}

static int trainer_init(struct trainer *t, const struct config *cfg, const struct comm *c)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->c = c;
    t->rank = comm_rank(c);
    t->size = comm_size(c);
    t->epoch_loaded = -1;
    char err[512];
    if (config_validate(cfg, err, sizeof err)) {
        log_error("config: %s", err);
        return -1;
    }
    if (cfg->batch_size % t->size) {
        log_error("[train] batch_size = %ld is not divisible by the %d ranks: the global batch is split "
                  "evenly (HINT: use a batch that is a multiple of the rank count)",
                  cfg->batch_size, t->size);
        return -1;
    }
    t->n_local = (size_t)cfg->batch_size / (size_t)t->size;
    if (cfg->reproducible && t->n_local % (size_t)cfg->micro_batch) {
        log_error("reproducible mode: micro_batch = %ld must divide the per-rank batch %zu "
                  "(batch_size %ld over %d ranks)",
                  cfg->micro_batch, t->n_local, cfg->batch_size, t->size);
        return -1;
    }
    if (dataset_open(c, cfg->data_path, &t->info))
        return -1;
    if ((size_t)cfg->batch_size > t->info.n_train) {
        log_error("%s: batch_size = %ld exceeds the %zu training samples", cfg->data_path, cfg->batch_size,
                  t->info.n_train);
        return -1;
    }
    t->steps_per_epoch = t->info.n_train / (size_t)cfg->batch_size;
    if (dataset_read_shard(c, cfg->data_path, &t->info, "train", 0, &t->train))
        return -1;
    if (t->info.n_test && dataset_read_shard(c, cfg->data_path, &t->info, "test", 0, &t->test))
        return -1;
    size_t max_b = t->n_local > EVAL_CHUNK ? t->n_local : EVAL_CHUNK;
    int ok = vae_init(&t->m, cfg, t->info.n_dim, max_b) == 0;
    long total = cfg->epochs * (long)t->steps_per_epoch;
    ok = ok && optim_init(&t->opt, cfg, t->m.n_params, total) == 0;
    if (ok) {
        t->x = malloc(t->n_local * t->info.n_dim * sizeof *t->x);
        t->eps = malloc(t->n_local * t->m.n_latent * sizeof *t->eps);
        if (cfg->reproducible)
            t->fixed = malloc((t->m.n_params + 1) * sizeof *t->fixed);
        ok = t->x && t->eps && (!cfg->reproducible || t->fixed) && make_buckets(t) == 0;
    }
    if (!comm_agree(c, ok))
        return -1;
    vae_init_params(&t->m, cfg->seed);
    /* A progress bar only on a terminal, and never in a batch job: under
     * mpirun a rank's stdout is a pty even when mpirun's own is a file, so
     * VAE_PROGRESS=0 turns the bar off and =1 forces it. */
    const char *bar = getenv("VAE_PROGRESS");
    t->tty = t->rank == 0 && (bar ? atoi(bar) != 0 : isatty(STDOUT_FILENO) && !getenv("SLURM_JOB_ID"));
    /* Fault-suite hook: slow steps down so a test can signal or kill a run
     * mid-training on any machine. */
    const char *hook = getenv("VAE_TEST_STEP_DELAY_MS");
    t->delay_ms = hook ? atol(hook) : 0;
    hook = getenv("VAE_TEST_NAN_STEPS");
    long long a = -1, b = -1;
    if (!hook || sscanf(hook, "%lld:%lld", &a, &b) != 2)
        a = b = -1;
    t->nan_from = a;
    t->nan_to = b;
    hook = getenv("VAE_TEST_DIVERGE_RANK");
    t->diverge_rank = hook ? atoi(hook) : -1;
    if (make_run_dir(t))
        return -1;
    return comm_agree(c, metrics_open(&t->mt, cfg->run_dir, t->rank) == 0) ? 0 : -1;
}

/* Fill x and eps for local samples [k0, k0 + n) of the epoch buffer at global step. */
static void fill_batch(struct trainer *t, size_t k0, size_t n, int64_t step)
{
    shard_rows_to_float(t->x, &t->epoch_buf, k0, n);
    size_t n_z = t->m.n_latent;
    for (size_t i = 0; i < n; i++)
        rng_normal(t->eps + i * n_z, n_z, t->cfg->seed, RNG_NOISE, (uint32_t)step, t->epoch_buf.ids[k0 + i]);
}

/* Gradient of this rank's samples, reduced across ranks into m.grads.
 * Returns this rank's loss sums. */
static struct vae_loss compute_gradient(struct trainer *t, size_t k0, int64_t step, float beta)
{
    const struct config *cfg = t->cfg;
    struct vae *m = &t->m;
    const float scale = 1.0f / (float)cfg->batch_size;
    struct vae_loss sum = {0, 0};
    double t0 = timer_now();
    if (!cfg->reproducible) {
        fill_batch(t, k0, t->n_local, step);
        double t1 = timer_now();
        t->t_phase[PH_DATA] += t1 - t0;
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
        if (step >= t->nan_from && step < t->nan_to && t->rank == t->size - 1)
            m->grads[0] = NAN; /* test hook; backward adds to it, buckets carry it */
        t->next_bucket = t->n_buckets;
        int overlap = cfg->overlap && t->size > 1;
        sum = vae_forward_backward(m, t->x, t->eps, t->n_local, beta, scale,
                                   overlap ? start_ready_buckets : NULL, t);
        double t2 = timer_now();
        t->t_phase[PH_COMPUTE] += t2 - t1;
        if (overlap)
            comm_reducer_wait(t->red);
        else if (t->node)
            comm_node_reduce(t->node, m->grads);
        else
            comm_allreduce_sum_f32(t->c, m->grads, m->n_params);
        t->t_phase[PH_WAIT] += timer_now() - t2;
        return sum;
    }
    /* Reproducible: each fixed micro-batch's gradient goes to int64 fixed
     * point; integer sums are associative, so any P gives the same bits. */
    size_t mb = (size_t)cfg->micro_batch;
    memset(t->fixed, 0, (m->n_params + 1) * sizeof *t->fixed);
    for (size_t k = 0; k < t->n_local; k += mb) {
        double t1 = timer_now();
        fill_batch(t, k0 + k, mb, step);
        double t2 = timer_now();
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
        struct vae_loss l = vae_forward_backward(m, t->x, t->eps, mb, beta, scale, NULL, NULL);
        sum.rec += l.rec;
        sum.kl += l.kl;
        /* Truncation toward zero is as exact a rule as rounding, and vectorises. */
        int64_t bad = 0;
#pragma omp simd reduction(+ : bad)
        for (size_t i = 0; i < m->n_params; i++) {
            float g = m->grads[i];
            int ok = fabsf(g) < FIXED_LIMIT;
            bad += !ok;
            t->fixed[i] += (int64_t)((double)(ok ? g : 0.0f) * FIXED_SCALE);
        }
        t->fixed[m->n_params] += bad;
        t->t_phase[PH_DATA] += t2 - t1;
        t->t_phase[PH_COMPUTE] += timer_now() - t2;
    }
    if (step >= t->nan_from && step < t->nan_to && t->rank == t->size - 1)
        t->fixed[m->n_params]++; /* test hook: as if a micro-batch overflowed */
    double t3 = timer_now();
    comm_allreduce_sum_i64(t->c, t->fixed, m->n_params + 1);
    t->t_phase[PH_WAIT] += timer_now() - t3;
    for (size_t i = 0; i < m->n_params; i++)
        m->grads[i] = (float)((double)t->fixed[i] / FIXED_SCALE);
    if (t->fixed[m->n_params])
        m->grads[0] = NAN; /* overflow: the step is skipped like a non-finite one */
    return sum;
}

double train_eval(const struct comm *c, struct vae *m, const struct shard *test, size_t n_total,
                  uint64_t seed, double *rec_out, double *kl_out)
{
    size_t n_z = m->n_latent, chunk = m->max_batch < EVAL_CHUNK ? m->max_batch : EVAL_CHUNK;
    float *x = malloc(chunk * test->n_dim * sizeof *x);
    float *eps = malloc(chunk * n_z * sizeof *eps);
    VAE_ASSERT(x && eps);
    double s[2] = {0, 0};
    for (size_t k = 0; k < test->n_rows; k += chunk) {
        size_t n = test->n_rows - k < chunk ? test->n_rows - k : chunk;
        shard_rows_to_float(x, test, k, n);
        for (size_t i = 0; i < n; i++)
            rng_normal(eps + i * n_z, n_z, seed, RNG_EVAL_NOISE, 0, test->ids[k + i]);
        struct vae_loss l = vae_forward(m, x, eps, n, NULL, NULL);
        s[0] += l.rec;
        s[1] += l.kl;
    }
    free(x);
    free(eps);
    comm_allreduce_sum_f64(c, s, 2);
    if (rec_out)
        *rec_out = s[0] / (double)n_total;
    if (kl_out)
        *kl_out = s[1] / (double)n_total;
    return (s[0] + s[1]) / (double)n_total;
}

static void log_epoch_end(struct trainer *t, long epoch, int64_t step, double train_sum, double train_n,
                          struct train_result *res)
{
    double test = NAN, rec = NAN, kl = NAN;
    if (t->info.n_test)
        test = train_eval(t->c, &t->m, &t->test, t->info.n_test, t->cfg->seed, &rec, &kl);
    log_info("epoch %ld/%ld done | train -ELBO %.3f | test -ELBO %.3f (rec %.3f, KL %.3f)", epoch + 1,
             t->cfg->epochs, train_sum / train_n, test, rec, kl);
    metrics_write(&t->mt, "epoch", "epoch", (double)(epoch + 1), "step", (double)step, "train_neg_elbo",
                  train_sum / train_n, "test_neg_elbo", test, "test_rec", rec, "test_kl", kl, NULL);
    if (res)
        res->test_neg_elbo = test;
}

/* One line, redrawn in place: epoch, a bar of the epoch, step, speed, −ELBO, ETA. */
static void draw_progress(struct trainer *t, int64_t step, int64_t end, double sps, double loss)
{
    const int64_t spe = (int64_t)t->steps_per_epoch;
    int64_t in_epoch = (step - 1) % spe + 1;
    char bar[31];
    int fill = (int)(30 * in_epoch / spe);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = 0;
    double eta = sps > 0 ? (double)(end - step) * (double)t->cfg->batch_size / sps : 0;
    printf("\r\033[Kepoch %lld/%ld [%s] %lld/%lld | %.0f samples/s | -ELBO %.3f | ETA %dm%02ds",
           (long long)((step - 1) / spe + 1), t->cfg->epochs, bar, (long long)in_epoch, (long long)spe, sps,
           loss, (int)(eta / 60), (int)eta % 60);
    fflush(stdout);
}

/* Rank 0: run_dir/loss.png from the logged −ELBO. */
static void write_loss_curve(struct trainer *t)
{
    if (t->rank != 0 || t->n_curve < 2)
        return;
    char path[CONFIG_STR_MAX + 16];
    snprintf(path, sizeof path, "%s/loss.png", t->cfg->run_dir);
    double lo = t->curve[0], hi = t->curve[0];
    for (size_t i = 1; i < t->n_curve; i++) {
        lo = t->curve[i] < lo ? t->curve[i] : lo;
        hi = t->curve[i] > hi ? t->curve[i] : hi;
    }
    if (png_write_curve(path, t->curve, t->n_curve, 800, 400) == 0)
        log_info("wrote %s: train -ELBO at %zu log points, y axis %.3f (bottom) to %.3f (top); "
                 "launch/plot_metrics.sh draws a labelled version",
                 path, t->n_curve, lo, hi);
}

static int save_checkpoint(struct trainer *t, int64_t step)
{
    double t0 = timer_now();
    gather_optim_state(t);
    int rc = ckpt_save(t->c, t->cfg->run_dir, t->cfg, &t->info, &t->m, &t->opt, step,
                       (long)(step / (int64_t)t->steps_per_epoch));
    t->t_phase[PH_CKPT] += timer_now() - t0;
    return rc;
}

int train_run(const struct config *cfg, const struct comm *c, const char *resume, struct train_result *res)
{
    struct trainer tr, *t = &tr;
    int status = VAE_EXIT_ERROR;
    if (res)
        memset(res, 0, sizeof *res);
    if (!getenv("OPENBLAS_NUM_THREADS"))
        linear_set_threads(1);
    if (trainer_init(t, cfg, c))
        goto out_free;
    int64_t step = 0;
    if (!strcmp(resume, "auto")) {
        if (ckpt_resume_auto(c, cfg->run_dir, &t->info, &t->m, &t->opt, &step) < 0)
            goto out_free;
    } else if (strcmp(resume, "none")) {
        if (ckpt_load(c, resume, &t->info, &t->m, &t->opt, &step))
            goto out_free;
    }
    replica_check(t, step);
    open_node_exchange(t);
    const int64_t spe = (int64_t)t->steps_per_epoch;
    int64_t end = cfg->epochs * spe;
    if (cfg->max_steps > 0 && cfg->max_steps < end)
        end = cfg->max_steps;
    if (res) {
        res->loss = malloc((size_t)(end > step ? end - step : 1) * sizeof *res->loss);
        VAE_ASSERT(res->loss);
    }
    log_info("vae_dist %s | %d ranks | %zu parameters | N = %zu, D = %zu | batch %ld (%zu per rank) | "
             "%lld steps/epoch | %s%s%s",
             VAE_VERSION, t->size, t->m.n_params, t->info.n_train, t->info.n_dim, cfg->batch_size, t->n_local,
             (long long)spe, cfg->reproducible ? "reproducible" : "float",
             cfg->overlap && !cfg->reproducible ? " overlapped allreduce" : "",
             t->node ? " | shared-memory reduction, sliced optimizer" : "");
    if (step > 0)
        log_info("resuming at step %lld (epoch %lld)", (long long)step, (long long)(step / spe) + 1);

    double t_start = timer_now(), t_log = t_start, t_ckpt = t_start;
    double log_sum[3] = {0, 0, 0}, epoch_sum = 0, epoch_n = 0;
    long skipped = 0, skipped_total = 0;
    int64_t log_from = step, steps_taken = 0;
    double sps_samples = 0, sps_time = 0;
    memset(t->t_phase, 0, sizeof t->t_phase);
    while (step < end) {
        long epoch = (long)(step / spe);
        size_t in_epoch = (size_t)(step % spe);
        if (t->epoch_loaded != epoch) {
            shard_free(&t->epoch_buf);
            if (shuffle_epoch(c, &t->train, t->info.n_train, (size_t)cfg->batch_size, cfg->seed,
                              (uint32_t)epoch, cfg->shuffle, &t->epoch_buf))
                goto out_free;
            t->epoch_loaded = epoch;
        }
        double ts = timer_now();
        float beta = (float)cfg->beta;
        if (cfg->kl_warmup_steps > 0 && step < cfg->kl_warmup_steps)
            beta *= (float)(step + 1) / (float)cfg->kl_warmup_steps;
        struct vae_loss l = compute_gradient(t, in_epoch * t->n_local, step, beta);

        double t_opt = timer_now();
        /* Each rank steps its slice (all of it unless node-shared). */
        double norm = optim_sum_squares(t->m.grads + t->lo, t->hi - t->lo);
        norm = sqrt(t->node ? comm_node_sum(t->node, norm) : norm);
        int finite = isfinite(norm);
        if (finite) {
            if (cfg->clip_norm > 0 && norm > cfg->clip_norm)
                optim_scale(t->m.grads + t->lo, t->hi - t->lo, (float)(cfg->clip_norm / norm));
            optim_step_range(&t->opt, t->m.params, t->m.grads, t->lo, t->hi);
            skipped = 0;
        } else {
            skipped++;
            skipped_total++;
        }
        if (t->node && finite)
            comm_node_allgather(t->node, t->m.params); /* every rank's slice to every rank */
        t->t_phase[PH_OPT] += timer_now() - t_opt;
        if (step == 0 && t->rank == t->diverge_rank)
            t->m.params[0] += 1e-3f; /* test hook: this replica drifts */
        if (t->delay_ms > 0)
            nanosleep(&(struct timespec){t->delay_ms / 1000, (t->delay_ms % 1000) * 1000000L}, NULL);
        /* Loss sums and the stop flag, agreed every step. */
        double red[4] = {l.rec, l.kl, g_signal ? 1.0 : 0.0, 0};
        comm_allreduce_sum_f64(c, red, 3);
        step++;
        steps_taken++;
        double loss = (red[0] + red[1]) / (double)cfg->batch_size;
        if (res)
            res->loss[res->n_steps++] = loss;
        log_sum[0] += red[0];
        log_sum[1] += red[1];
        log_sum[2] += (double)cfg->batch_size;
        epoch_sum += red[0] + red[1];
        epoch_n += (double)cfg->batch_size;
        sps_samples += (double)cfg->batch_size;
        sps_time += timer_now() - ts;
        if (!finite) {
            log_info("step %lld: non-finite gradient (norm %g); step skipped on every rank (%ld in a row)",
                     (long long)step, norm, skipped);
            if (skipped >= cfg->max_skipped) {
                log_error("%ld consecutive steps had non-finite gradients; stopping "
                          "(HINT: lower optim.lr or set train.clip_norm)",
                          skipped);
                status = VAE_EXIT_ERROR;
                goto out_free;
            }
        }
        if (cfg->replica_check_every > 0 && step % cfg->replica_check_every == 0)
            replica_check(t, step);
        if (t->tty && timer_now() - t->t_bar > 0.2) {
            draw_progress(t, step, end, sps_time > 0 ? sps_samples / sps_time : 0, loss);
            t->t_bar = timer_now();
        }
        if (step % cfg->log_every == 0 || step == end) {
            double now = timer_now(), n = log_sum[2];
            double sps = n / (now - t_log);
            if (t->tty)
                printf("\r\033[K");
            if (t->n_curve == t->cap_curve) {
                t->cap_curve = t->cap_curve ? 2 * t->cap_curve : 256;
                t->curve = realloc(t->curve, t->cap_curve * sizeof *t->curve);
                VAE_ASSERT(t->curve);
            }
            t->curve[t->n_curve++] = (log_sum[0] + log_sum[1]) / n;
            log_info("epoch %ld/%ld step %lld/%lld | -ELBO %.3f (rec %.3f, KL %.3f) | %.0f samples/s | "
                     "lr %.3g%s",
                     epoch + 1, cfg->epochs, (long long)(in_epoch + 1), (long long)spe,
                     (log_sum[0] + log_sum[1]) / n, log_sum[0] / n, log_sum[1] / n, sps,
                     optim_lr(&t->opt, t->opt.t ? t->opt.t - 1 : 0), skipped_total ? " | skipped steps" : "");
            double v[M_PHASES + 3 * N_PHASES], k = 1.0 / (double)(step - log_from);
            double *mean = v + M_PHASES, *lo = mean + N_PHASES, *hi = lo + N_PHASES;
            for (int p = 0; p < N_PHASES; p++)
                mean[p] = lo[p] = hi[p] = t->t_phase[p] * k;
            comm_allreduce_sum_f64(c, mean, N_PHASES);
            comm_allreduce_min_f64(c, lo, N_PHASES);
            comm_allreduce_max_f64(c, hi, N_PHASES);
            for (int p = 0; p < N_PHASES; p++)
                mean[p] /= t->size;
            v[M_STEP] = (double)step;
            v[M_EPOCH] = (double)(epoch + 1);
            v[M_NEG_ELBO] = (log_sum[0] + log_sum[1]) / n;
            v[M_REC] = log_sum[0] / n;
            v[M_KL] = log_sum[1] / n;
            v[M_SPS] = sps;
            v[M_LR] = optim_lr(&t->opt, t->opt.t ? t->opt.t - 1 : 0);
            v[M_NORM] = norm;
            v[M_SKIPPED] = (double)skipped_total;
            metrics_write_array(&t->mt, "step", step_names, v, M_PHASES + 3 * N_PHASES);
            memset(log_sum, 0, sizeof log_sum);
            memset(t->t_phase, 0, sizeof t->t_phase);
            log_from = step;
            t_log = timer_now();
        }
        if (step % spe == 0) {
            log_epoch_end(t, epoch, step, epoch_sum, epoch_n, res);
            epoch_sum = epoch_n = 0;
        }
        /* Checkpoint triggers: every N steps, every T seconds (rank 0's clock,
         * shared through a broadcast so every rank decides alike), signal, end. */
        int want = cfg->ckpt_every_steps > 0 && step % cfg->ckpt_every_steps == 0;
        if (cfg->ckpt_every_seconds > 0 && step % 10 == 0) {
            int late = timer_now() - t_ckpt >= cfg->ckpt_every_seconds;
            comm_bcast(c, &late, sizeof late, 0);
            want = want || late;
        }
        int stop = red[2] > 0;
        if (want || stop || step == end) {
            if (save_checkpoint(t, step) && (stop || step == end))
                goto out_free;
            t_ckpt = timer_now();
        }
        if (stop) {
            log_info("stopped by a signal at step %lld after a checkpoint; exit code %d (requeue and "
                     "resume with --resume auto)",
                     (long long)step, VAE_EXIT_SIGNAL);
            if (res)
                res->stopped_by_signal = 1;
            status = VAE_EXIT_SIGNAL;
            goto out_result;
        }
    }
    status = VAE_EXIT_OK;
out_result:
    write_loss_curve(t);
    if (res) {
        res->n_params = t->m.n_params;
        res->params = malloc(t->m.n_params * sizeof *res->params);
        VAE_ASSERT(res->params);
        memcpy(res->params, t->m.params, t->m.n_params * sizeof *res->params);
        res->final_step = step;
        res->samples_per_s = sps_time > 0 ? sps_samples / sps_time : 0;
    }
    if (steps_taken)
        log_info("done: %lld steps, %.0f samples/s (mean over steps)", (long long)steps_taken,
                 sps_time > 0 ? sps_samples / sps_time : 0.0);
out_free:
    trainer_free(t);
    return status;
}

void train_result_free(struct train_result *res)
{
    free(res->params);
    free(res->loss);
    memset(res, 0, sizeof *res);
}
