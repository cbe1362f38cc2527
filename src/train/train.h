/*
 * The training loop: data-parallel over the ranks of a comm. Each step every
 * rank computes the gradient of its B/P samples of the global batch, the
 * gradients are summed across ranks (overlapped buckets, one blocking
 * allreduce, or exact int64 in reproducible mode), and every rank takes the
 * same optimizer step. See docs/design.md for the step's data flow.
 */
#ifndef VAE_TRAIN_H
#define VAE_TRAIN_H

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
    double test_neg_elbo; /* last end-of-epoch test −ELBO (NAN if no test split) */
    double samples_per_s; /* mean training throughput */
    int stopped_by_signal;
};

/*
 * Train with cfg over c. resume: "none", "auto" or a checkpoint path.
 * Returns VAE_EXIT_OK, VAE_EXIT_SIGNAL (checkpointed after a signal), or
 * VAE_EXIT_ERROR after an agreed error (message printed). res may be NULL.
 */
int train_run(const struct config *cfg, const struct comm *c, const char *resume, struct train_result *res);
void train_result_free(struct train_result *res);

/* SIGTERM, SIGUSR1, SIGUSR2 set a flag the loop agrees on at the next step. */
void train_install_signals(void);

/* Evaluate the test −ELBO of a model on a test shard (collective); used by `eval`. */
struct vae;
struct shard;
double train_eval(const struct comm *c, struct vae *m, const struct shard *test, size_t n_total,
                  uint64_t seed, double *rec_out, double *kl_out);

#endif
