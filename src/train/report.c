/* Progress bar, log lines and metrics events of a run (see report.h). */
#include "train/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/timer.h"
#include "model/linear.h"

/* The step event: the loss terms, then each phase's mean, min and max. */
enum { M_STEP, M_EPOCH, M_NEG_ELBO, M_REC, M_KL, M_SPS, M_LR, M_NORM, M_SKIPPED, M_PHASES };
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
                                                                "t_grads",
                                                                "t_data_min",
                                                                "t_compute_min",
                                                                "t_allreduce_wait_min",
                                                                "t_optim_min",
                                                                "t_ckpt_min",
                                                                "t_grads_min",
                                                                "t_data_max",
                                                                "t_compute_max",
                                                                "t_allreduce_wait_max",
                                                                "t_optim_max",
                                                                "t_ckpt_max",
                                                                "t_grads_max"};

int report_init(struct report *rp, const struct comm *c, const char *run_dir, int64_t step)
{
    memset(rp, 0, sizeof *rp);
    const char *bar = getenv("VAE_PROGRESS");
    rp->bar = comm_rank(c) == 0 && (bar ? atoi(bar) != 0 : isatty(STDOUT_FILENO) && !getenv("SLURM_JOB_ID"));
    if (!comm_agree(c, metrics_open(&rp->mt, run_dir, comm_rank(c)) == 0))
        return -1;
    /* Marks a segment: the plot keeps, of steps logged twice, the later one. */
    metrics_write(&rp->mt, "start", "step", (double)step, "resumed", step > 0 ? 1.0 : 0.0, "ranks",
                  (double)comm_size(c), "blas_threads", (double)linear_threads(), NULL);
    return 0;
}

void report_free(struct report *rp)
{
    if (metrics_close(&rp->mt))
        log_warn("metrics.jsonl: a write failed (disk full?): some events are missing from it; the "
                 "checkpoints are not affected");
}

void report_bar(struct report *rp, const struct trainer *t, int64_t step, int64_t end, double sps,
                double loss)
{
    if (!rp->bar || timer_now() - rp->t_bar < 0.2)
        return;
    const int64_t spe = (int64_t)t->steps_per_epoch;
    int64_t in_epoch = (step - 1) % spe + 1;
    char bar[31];
    int fill = (int)(30 * in_epoch / spe);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = 0;
    /* No ETA from the first steps, whose warm-up (page faults, first GEMMs) would make it minutes. */
    if (rp->bar_steps++ < 10) {
        printf("\r\033[Kepoch %lld/%ld [%s] %lld/%lld | -ELBO %.3f | ETA --",
               (long long)((step - 1) / spe + 1), t->cfg->epochs, bar, (long long)in_epoch, (long long)spe,
               loss);
    } else {
        double eta = sps > 0 ? (double)(end - step) * (double)t->cfg->batch_size / sps : 0;
        printf("\r\033[Kepoch %lld/%ld [%s] %lld/%lld | %.0f samples/s | -ELBO %.3f | ETA %dm%02ds",
               (long long)((step - 1) / spe + 1), t->cfg->epochs, bar, (long long)in_epoch, (long long)spe,
               sps, loss, (int)(eta / 60), (int)eta % 60);
    }
    fflush(stdout);
    rp->t_bar = timer_now();
}

/* v[M_PHASES...]: each phase's seconds per step, mean over ranks, then min, then max. */
static void phase_stats(const struct comm *c, const struct interval *iv, double *v)
{
    double *mean = v, *lo = mean + N_PHASES, *hi = lo + N_PHASES;
    for (int p = 0; p < N_PHASES; p++)
        mean[p] = lo[p] = hi[p] = iv->t_phase[p] / (double)iv->steps;
    comm_allreduce_sum_f64(c, mean, N_PHASES);
    comm_allreduce_min_f64(c, lo, N_PHASES);
    comm_allreduce_max_f64(c, hi, N_PHASES);
    for (int p = 0; p < N_PHASES; p++)
        mean[p] /= comm_size(c);
}

void report_interval(struct report *rp, const struct trainer *t, const struct interval *iv)
{
    double v[M_PHASES + 3 * N_PHASES], n = iv->n;
    v[M_STEP] = (double)iv->step;
    v[M_EPOCH] = (double)(iv->epoch + 1);
    v[M_NEG_ELBO] = (iv->rec + iv->kl) / n;
    v[M_REC] = iv->rec / n;
    v[M_KL] = iv->kl / n;
    v[M_SPS] = n / iv->seconds;
    v[M_LR] = iv->lr;
    v[M_NORM] = iv->norm;
    v[M_SKIPPED] = (double)iv->skipped_total;
    phase_stats(t->c, iv, v + M_PHASES);
    if (rp->bar)
        printf("\r\033[K");
    log_info("epoch %ld/%ld step %lld/%lld | -ELBO %.3f (rec %.3f, KL %.3f) | %.0f samples/s | lr %.3g%s",
             iv->epoch + 1, t->cfg->epochs, (long long)iv->in_epoch, (long long)t->steps_per_epoch,
             v[M_NEG_ELBO], v[M_REC], v[M_KL], v[M_SPS], iv->lr, iv->skipped_total ? " | skipped steps" : "");
    metrics_write_array(&rp->mt, "step", step_names, v, M_PHASES + 3 * N_PHASES);
}

void report_epoch(struct report *rp, const struct trainer *t, long epoch, int64_t step, double train_neg_elbo,
                  const struct eval_result *r)
{
    double test = r ? r->neg_elbo : NAN, rec = r ? r->rec : NAN, kl = r ? r->kl : NAN;
    if (rp->bar) /* the bar's line, cleared: the epoch line starts a line of its own */
        printf("\r\033[K");
    if (r)
        log_info("epoch %ld/%ld done | train -ELBO %.3f | test -ELBO %.3f (rec %.3f, KL %.3f)", epoch + 1,
                 t->cfg->epochs, train_neg_elbo, test, rec, kl);
    else
        log_info("epoch %ld/%ld done | train -ELBO %.3f (no test split)", epoch + 1, t->cfg->epochs,
                 train_neg_elbo);
    metrics_write(&rp->mt, "epoch", "epoch", (double)(epoch + 1), "step", (double)step, "train_neg_elbo",
                  train_neg_elbo, "test_neg_elbo", test, "test_rec", rec, "test_kl", kl, NULL);
}
