/*
 * The training driver (see train.h): sets up the run, then per step
 *   trainer_step → agree on the loss sums and the stop flag → account →
 *   skip policy → replica check → progress / log interval → epoch end →
 *   checkpoint when due → stop after a signal's checkpoint.
 */
#define _DEFAULT_SOURCE /* realpath */
#include "train/train.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/path.h"
#include "core/runlock.h"
#include "core/timer.h"
#include "model/linear.h"
#include "data/ckpt.h"
#include "train/report.h"
#include "train/trainer.h"

static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
}

static const int stop_signals[] = {SIGTERM, SIGUSR1, SIGUSR2};

void train_signals(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
        sigaddset(set, stop_signals[i]);
}

void train_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
        sigaction(stop_signals[i], &sa, NULL);
}

/* The driver's state across steps. */
struct run {
    struct trainer t;
    struct report rp;
    const struct config *cfg;
    int64_t step, end;           /* next global step; the step to stop at */
    int64_t log_from;            /* step at the last log line */
    double t_log, t_ckpt;        /* wall clock at the last log line and checkpoint */
    double log_rec, log_kl;      /* loss sums since the last log line */
    double epoch_sum;            /* −ELBO sum over the current epoch */
    int64_t epoch_steps;         /* steps of the current epoch taken in this run */
    long skipped, skipped_total; /* non-finite steps: in a row, in all */
    double last_norm;
    double sps_samples, sps_time; /* for the mean throughput */
    int64_t steps_taken;
    double test_neg_elbo;
    int lock_fd; /* rank 0: the run lock (runlock.h) */
};

/* mkdir -p dir; 0 or -1 with errno. */
static int make_dirs(const char *dir)
{
    char path[CONFIG_STR_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0777) == 0 || errno == EEXIST ? 0 : -1;
        *p = '/';
        if (rc)
            return -1;
    }
    return mkdir(path, 0777) == 0 || errno == EEXIST ? 0 : -1;
}

/*
 * 0 if dir may take a run: missing, empty (job files aside: a batch
 * system's logs and the job's own script or config, *.out *.err *.log *.ini
 * *.sh *.sbatch), or holding a vae_dist run (any of the names one writes),
 * and not /. Else -1 with a message: a run writes
 * config.ini, status, metrics.jsonl and ckpt/ into it, and a typo such as
 * run.dir=/ or a home directory would scatter them among files of others.
 * Rank 0.
 */
static int check_run_dir(const char *dir)
{
    static const char *const ours[] = {"config.ini", "metrics.jsonl", "status", "lock", "ckpt", "loss.png"};
    char real[PATH_MAX];
    if (realpath(dir, real) && !strcmp(real, "/")) {
        log_error("run.dir = %s is the root directory; a run writes its files there (HINT: set run.dir to a "
                  "directory of its own, e.g. runs/NAME)",
                  dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* missing: made below; not a directory: make_dirs says so */
    char other[256] = "";
    long n_other = 0;
    int known = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int mine = 0;
        for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
            mine |= !strcmp(e->d_name, ours[i]);
        known |= mine;
        const char *dot = strrchr(e->d_name, '.');
        static const char *const job[] = {".out", ".err", ".log", ".ini", ".sh", ".sbatch"};
        for (size_t i = 0; dot && i < sizeof job / sizeof job[0]; i++)
            mine |= !strcmp(dot, job[i]);
        if (!mine && n_other++ == 0)
            snprintf(other, sizeof other, "%s", e->d_name);
    }
    closedir(d);
    if (n_other == 0 || known)
        return 0;
    log_error(
        "run.dir = %s holds %ld entr%s that vae_dist did not write (e.g. '%s') and no vae_dist run "
        "(config.ini, metrics.jsonl, ckpt/); a run would write its files among them (HINT: set run.dir to "
        "a new or empty directory, or to an earlier run's)",
        dir, n_other, n_other == 1 ? "y" : "ies", other);
    return -1;
}

/*
 * Rank 0 makes run.dir and run.dir/ckpt and takes the run lock, before
 * anything reads a checkpoint; with --resume none it moves an earlier run's
 * checkpoints aside (ckpt_archive). Collective; 0 or -1 (agreed).
 */
static int open_run_dir(struct run *r, const struct config *cfg, const struct comm *c, const char *resume)
{
    int ok = 1;
    if (comm_rank(c) == 0) {
        char ckpt[CONFIG_STR_MAX + 8];
        struct stat st;
        snprintf(ckpt, sizeof ckpt, "%s/ckpt", cfg->run_dir);
        if (make_dirs(cfg->run_dir) || make_dirs(ckpt)) {
            log_error("%s: cannot make the run directory and its ckpt/ subdirectory: %s", cfg->run_dir,
                      strerror(errno));
            ok = 0;
        } else if (stat(ckpt, &st) || !S_ISDIR(st.st_mode)) {
            log_error("%s exists and is not a directory; checkpoints go there (HINT: move it away)", ckpt);
            ok = 0;
        } else {
            r->lock_fd = runlock_acquire(cfg->run_dir);
            ok = r->lock_fd != -1;
            char status[CONFIG_STR_MAX + 16];
            snprintf(status, sizeof status, "%s/status", cfg->run_dir);
            if (ok)
                unlink(status); /* the last run's; this run writes its own at the end */
            if (ok && !strcmp(resume, "none"))
                ok = ckpt_archive(cfg->run_dir) == 0;
        }
    }
    return comm_agree(c, ok) ? 0 : -1;
}

/* run.dir/config.ini: this run's resolved config (rank 0). Collective; 0 or -1. */
static int write_config(const struct config *cfg, const struct comm *c)
{
    int ok = 1;
    if (comm_rank(c) == 0) {
        char path[CONFIG_STR_MAX + 16];
        snprintf(path, sizeof path, "%s/config.ini", cfg->run_dir);
        FILE *f = path_fopen_output(path, "w", "resolved config");
        ok = f && config_write(cfg, f) == 0;
        if (f && fclose(f))
            ok = 0;
        if (f && !ok)
            log_error("%s: cannot write config.ini: %s", path, strerror(errno));
    }
    return comm_agree(c, ok) ? 0 : -1;
}

static int run_init(struct run *r, const struct config *cfg, const struct comm *c, const char *resume)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->test_neg_elbo = NAN;
    r->lock_fd = -1;
    struct trainer *t = &r->t;
    if (comm_watchdog_start(cfg->timeout_s))
        log_warn("cannot start the collective watchdog thread; comm.timeout_s is not enforced");
    /* The data before the run directory is made: a run that cannot start leaves none behind. */
    if (!comm_agree(c, comm_rank(c) || check_run_dir(cfg->run_dir) == 0) || trainer_init(t, cfg, c) ||
        open_run_dir(r, cfg, c, resume) || trainer_resume(t, resume, &r->step))
        return -1;
    trainer_check_replicas(t, r->step);
    if (write_config(cfg, c) || report_init(&r->rp, c, cfg->run_dir, r->step))
        return -1;
    const int64_t spe = (int64_t)t->steps_per_epoch;
    r->end = cfg->epochs * spe;
    if (cfg->max_steps > 0 && cfg->max_steps < r->end)
        r->end = cfg->max_steps;
    int nodes = comm_nodes(c);
    const char *forced = getenv("OPENBLAS_CORETYPE"), *own = getenv("VAE_DIST_OPENBLAS_OWN");
    log_info("vae_dist %s | %d rank%s on %d node%s | %zu parameters | N = %zu, D = %zu | batch %ld (%zu per "
             "rank) | "
             "%lld steps/epoch | %s | OpenBLAS %s kernels%s%s%s, %d thread%s per rank",
             VAE_VERSION, t->size, t->size == 1 ? "" : "s", nodes, nodes == 1 ? "" : "s", t->m.n_params,
             t->info.n_train, t->info.n_dim, cfg->batch_size, t->n_local, (long long)spe,
             reduction_mode(&t->red), linear_kernels(), own ? " (for this CPU; OpenBLAS alone chose " : "",
             own ? own : "", own ? ")" : "", linear_threads(), linear_threads() == 1 ? "" : "s");
    const char *cpu = linear_kernels_for_cpu(linear_kernels());
    if (t->rank == 0 && cpu)
        log_warn(
            "OpenBLAS runs its %s kernels (%s) on a CPU that runs its %s kernels, which ran this program's "
            "default model 1.6x faster than Haswell's and 3.2x faster than Prescott's on test machines "
            "(docs/performance.md) (HINT: %s)",
            linear_kernels(), forced ? "as OPENBLAS_CORETYPE says" : "its own choice", cpu,
            forced ? "unset OPENBLAS_CORETYPE to let vae_dist choose" : "set OPENBLAS_CORETYPE to name them");
    if (r->step > 0 && r->step < r->end)
        log_info("resuming at step %lld (epoch %lld)", (long long)r->step, (long long)(r->step / spe) + 1);
    else if (r->step > 0)
        log_info("%s holds a finished run (step %lld of %lld): nothing to train (HINT: raise train.epochs or "
                 "train.max_steps to go on, or use another run.dir for a new run)",
                 cfg->run_dir, (long long)r->step, (long long)r->end);
    r->log_from = r->step;
    r->t_log = r->t_ckpt = timer_now();
    memset(t->t_phase, 0, sizeof t->t_phase);
    return 0;
}

static void run_free(struct run *r)
{
    report_free(&r->rp);
    trainer_free(&r->t);
    runlock_release(r->lock_fd);
}

/* Count the step taken: its global loss, the sums of the log interval and epoch. */
static void account(struct run *r, const double sums[2], double seconds, struct train_result *res)
{
    double b = (double)r->cfg->batch_size, loss = (sums[0] + sums[1]) / b;
    r->step++;
    r->steps_taken++;
    r->epoch_steps++;
    r->log_rec += sums[0];
    r->log_kl += sums[1];
    r->epoch_sum += sums[0] + sums[1];
    r->sps_samples += b;
    r->sps_time += seconds;
    if (res)
        res->loss[res->n_steps++] = loss;
    report_bar(&r->rp, &r->t, r->step, r->end, r->sps_time > 0 ? r->sps_samples / r->sps_time : 0, loss);
}

/* Non-finite gradients: skip the step; stop after max_skipped in a row. Returns -1 to stop. */
static int skip_policy(struct run *r, const struct step_result *s)
{
    if (s->finite) {
        r->skipped = 0;
        return 0;
    }
    r->skipped++;
    r->skipped_total++;
    log_info("step %lld: non-finite gradient (norm %g); step skipped on every rank (%ld in a row)",
             (long long)r->step, s->norm, r->skipped);
    if (r->skipped < r->cfg->max_skipped)
        return 0;
    log_error("%ld consecutive steps had non-finite gradients; stopping "
              "(HINT: lower optim.lr or set train.clip_norm)",
              r->skipped);
    return -1;
}

/* The log line and step event of the interval that ends now. Collective. */
static void log_interval(struct run *r)
{
    struct trainer *t = &r->t;
    const int64_t spe = (int64_t)t->steps_per_epoch;
    struct interval iv = {
        .step = r->step,
        .steps = r->step - r->log_from,
        .epoch = (long)((r->step - 1) / spe),
        .in_epoch = (r->step - 1) % spe + 1,
        .rec = r->log_rec,
        .kl = r->log_kl,
        .n = (double)(r->step - r->log_from) * (double)r->cfg->batch_size,
        .seconds = timer_now() - r->t_log,
        .lr = optim_lr(&t->opt, t->opt.t ? t->opt.t - 1 : 0),
        .norm = r->last_norm,
        .skipped_total = r->skipped_total,
        .t_phase = t->t_phase,
    };
    report_interval(&r->rp, t, &iv);
    r->log_rec = r->log_kl = 0;
    memset(t->t_phase, 0, sizeof t->t_phase);
    r->log_from = r->step;
    r->t_log = timer_now();
}

/* The epoch that ends now: its train −ELBO and the test split's. Collective. */
static void epoch_end(struct run *r)
{
    struct eval_result ev;
    int test = r->t.info.n_test > 0;
    if (test) {
        trainer_eval(&r->t, &ev);
        r->test_neg_elbo = ev.neg_elbo;
    }
    double train = r->epoch_sum / ((double)r->epoch_steps * (double)r->cfg->batch_size);
    report_epoch(&r->rp, &r->t, (long)(r->step / (int64_t)r->t.steps_per_epoch) - 1, r->step, train,
                 test ? &ev : NULL);
    r->epoch_sum = 0;
    r->epoch_steps = 0;
}

/* Every N steps, or every T seconds by rank 0's clock (broadcast, so every rank decides alike). */
static int checkpoint_due(struct run *r)
{
    const struct config *cfg = r->cfg;
    int due = cfg->ckpt_every_steps > 0 && r->step % cfg->ckpt_every_steps == 0;
    if (cfg->ckpt_every_seconds > 0 && r->step % 10 == 0) {
        int late = timer_now() - r->t_ckpt >= cfg->ckpt_every_seconds;
        comm_bcast(r->t.c, &late, sizeof late, 0);
        due = due || late;
    }
    return due;
}

/* After the step that was just taken: everything but the maths. Returns a VAE_EXIT_* or -1 to go on. */
static int after_step(struct run *r, const struct step_result *s, int stop)
{
    const struct config *cfg = r->cfg;
    r->last_norm = s->norm;
    if (skip_policy(r, s))
        return VAE_EXIT_ERROR;
    if (cfg->replica_check_every > 0 && r->step % cfg->replica_check_every == 0)
        trainer_check_replicas(&r->t, r->step);
    if (r->step % cfg->log_every == 0 || r->step == r->end)
        log_interval(r);
    if (r->step % (int64_t)r->t.steps_per_epoch == 0)
        epoch_end(r);
    int last = stop || r->step == r->end;
    if (last && !stop && r->skipped_total == r->steps_taken) {
        /* Nothing trained: a checkpoint would only relabel the resumed model.
         * (Stopped by a signal, it is still written: the job must requeue.) */
        log_error("all %lld steps of this run were skipped (non-finite gradients): the model did not train; "
                  "no checkpoint written (HINT: the resumed checkpoint or the data may hold bad values: try "
                  "an older checkpoint with --resume PATH)",
                  (long long)r->steps_taken);
        return VAE_EXIT_ERROR;
    }
    if (checkpoint_due(r) || last) {
        if (trainer_save(&r->t, r->step) && last)
            return VAE_EXIT_ERROR;
        r->t_ckpt = timer_now();
    }
    if (!stop)
        return r->step == r->end ? VAE_EXIT_OK : -1;
    log_info("stopped by a signal at step %lld after a checkpoint; exit code %d (requeue and "
             "resume with --resume auto)",
             (long long)r->step, VAE_EXIT_SIGNAL);
    return VAE_EXIT_SIGNAL;
}

static int run_loop(struct run *r, struct train_result *res)
{
    const int64_t spe = (int64_t)r->t.steps_per_epoch;
    int status = VAE_EXIT_OK;
    while (r->step < r->end) {
        if (trainer_epoch(&r->t, (long)(r->step / spe)))
            return VAE_EXIT_ERROR;
        double t0 = timer_now();
        comm_watch_step(r->step);
        struct step_result s = trainer_step(&r->t, r->step);
        fault_step_delay();
        /* Loss sums and the stop flag, agreed every step. */
        double sums[3] = {s.rec, s.kl, g_signal ? 1.0 : 0.0};
        comm_allreduce_sum_f64(r->t.c, sums, 3);
        account(r, sums, timer_now() - t0, res);
        if ((status = after_step(r, &s, sums[2] > 0)) >= 0)
            return status;
    }
    return status;
}

/* The closing line: steps, mean speed, and the peak memory of the largest rank. Collective. */
static void log_done(const struct run *r)
{
    struct rusage ru;
    double peak_mb = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0;
    comm_allreduce_max_f64(r->t.c, &peak_mb, 1);
    log_info(
        "done: %lld steps, %.0f samples/s (mean over steps), peak memory %.0f MB per rank (largest rank)",
        (long long)r->steps_taken, r->sps_time > 0 ? r->sps_samples / r->sps_time : 0.0, peak_mb);
}

static void fill_result(const struct run *r, struct train_result *res, int status)
{
    const struct vae *m = &r->t.m;
    res->n_params = m->n_params;
    res->params = malloc(m->n_params * sizeof *res->params);
    VAE_ASSERT(res->params);
    memcpy(res->params, m->params, m->n_params * sizeof *res->params);
    res->final_step = r->step;
    res->test_neg_elbo = r->test_neg_elbo;
    res->samples_per_s = r->sps_time > 0 ? r->sps_samples / r->sps_time : 0;
    res->stopped_by_signal = status == VAE_EXIT_SIGNAL;
}

/*
 * run.dir/status, one line for scripts: "EXIT STEP WHAT". A launcher killed
 * by the same SIGTERM as the ranks returns its own code (mpirun: 1), so
 * train.sbatch reads the ranks' 42 here. Rank 0, after the run.
 */
static void write_status(const struct run *r, int status)
{
    char path[CONFIG_STR_MAX + 16];
    snprintf(path, sizeof path, "%s/status", r->cfg->run_dir);
    FILE *f = path_fopen_output(path, "w", "run status");
    const char *what = status == VAE_EXIT_OK       ? "done"
                       : status == VAE_EXIT_SIGNAL ? "stopped-by-signal-after-checkpoint"
                                                   : "error";
    int ok = f && fprintf(f, "%d %lld %s\n", status, (long long)r->step, what) > 0;
    if (f && (fclose(f) || !ok))
        log_warn("%s: cannot write the run status: %s", path, strerror(errno));
}

int train_run(const struct config *cfg, const struct comm *c, const char *resume, struct train_result *res)
{
    struct run r;
    int status = VAE_EXIT_ERROR;
    if (res)
        memset(res, 0, sizeof *res);
    if (run_init(&r, cfg, c, resume) == 0) {
        if (res) {
            res->loss = malloc((size_t)(r.end > r.step ? r.end - r.step : 1) * sizeof *res->loss);
            VAE_ASSERT(res->loss);
        }
        status = run_loop(&r, res);
        if (res && status != VAE_EXIT_ERROR)
            fill_result(&r, res, status);
        if (status != VAE_EXIT_ERROR)
            log_done(&r);
        if (comm_rank(c) == 0)
            write_status(&r, status);
    }
    run_free(&r);
    return status;
}

void train_result_free(struct train_result *res)
{
    free(res->params);
    free(res->loss);
    memset(res, 0, sizeof *res);
}
