/*
 * The training driver: data-parallel over the ranks of a comm. It owns the
 * run directory, epochs, logging, evaluation at each epoch's end,
 * checkpoints (every N steps, every T seconds, on a signal, at the end) and
 * the agreed stop; each step's maths is trainer_step (trainer.h). See
 * docs/design.md for the step's data flow.
 */
#ifndef VAE_TRAIN_H
#define VAE_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/config.h"

/* What a run leaves for its caller (tests compare these across rank counts). */
struct train_result {
    float *params; /* (n_params) final parameters, malloc'd */
    size_t n_params;
    double *loss;         /* (n_steps) global mean −ELBO of each step taken */
    int64_t n_steps;      /* steps taken in this run */
    int64_t final_step;   /* global step count at the end */
    double test_neg_elbo; /* last end-of-epoch test −ELBO (NAN if no test split or no epoch ended) */
    double samples_per_s; /* mean training throughput */
    int stopped_by_signal;
};

/*
 * Train with cfg over c. resume: "none", "auto" or a checkpoint path.
 * Returns VAE_EXIT_OK, VAE_EXIT_SIGNAL (checkpointed after a signal), or
 * VAE_EXIT_ERROR after an agreed error (message printed); res (may be NULL)
 * is filled for the first two. Collective.
 */
int train_run(const struct config *cfg, const struct comm *c, const char *resume, struct train_result *res);
void train_result_free(struct train_result *res);

/* SIGTERM, SIGUSR1, SIGUSR2 set a flag the ranks agree on after the next step. Local. */
void train_install_signals(void);
/* Those signals, as a set (held back across cli/main.c's exec). */
void train_signals(sigset_t *set);

#endif
