/*
 * What a run tells its user while it trains: a progress bar on a terminal,
 * a log line and a metrics.jsonl "step" event per log interval (loss terms,
 * samples/s, and each phase's seconds per step as the mean over ranks with
 * its min and max: a rank that waits long in the allreduce is waiting for a
 * slower one), and an "epoch" event per epoch.
 */
#ifndef VAE_REPORT_H
#define VAE_REPORT_H

#include <stdint.h>

#include "comm/comm.h"
#include "core/metrics.h"
#include "train/trainer.h"

/* One log interval, as the driver accumulated it. */
struct interval {
    int64_t step, steps;   /* global step at its end; steps in it */
    long epoch;            /* 0-based epoch of its last step */
    int64_t in_epoch;      /* steps of that epoch done */
    double rec, kl, n;     /* loss sums over all ranks, and samples */
    double seconds;        /* wall time */
    double lr, norm;       /* of the last step */
    long skipped_total;    /* non-finite steps skipped in this run */
    const double *t_phase; /* (N_PHASES) this rank's seconds in each phase */
};

struct report {
    struct metrics mt;
    int bar;        /* rank 0 draws a progress bar */
    double t_bar;   /* when it was last drawn */
    long bar_steps; /* times it was drawn (no ETA before 10) */
};

/*
 * Open run_dir/metrics.jsonl on rank 0 and decide on the bar: only on a
 * terminal and never in a batch job (under mpirun a rank's stdout is a pty
 * even when mpirun's own is a file), unless VAE_PROGRESS = 0 or 1 says.
 * Collective; 0 or -1 (agreed).
 */
int report_init(struct report *rp, const struct comm *c, const char *run_dir, int64_t step);
void report_free(struct report *rp);

/* Redraw the bar (rank 0, at most 5 times a second): epoch, bar, step, speed, −ELBO, ETA. Local. */
void report_bar(struct report *rp, const struct trainer *t, int64_t step, int64_t end, double sps,
                double loss);

/* The interval's log line and step event. Collective (phase min/max/mean). */
void report_interval(struct report *rp, const struct trainer *t, const struct interval *iv);

/* An epoch's log line and event; r is the test evaluation or NULL. Local (rank 0 writes). */
void report_epoch(struct report *rp, const struct trainer *t, long epoch, int64_t step, double train_neg_elbo,
                  const struct eval_result *r);

#endif
