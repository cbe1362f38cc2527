/*
 * One data-parallel training step and what it needs: this rank's shards,
 * the model, the optimizer and the gradient reduction. trainer_step is only
 * the maths of a step (docs/design.md):
 *   batch → gradient → reduction → non-finite agreement → clip → optimizer.
 * The driver around it (train.c) owns epochs, logging, evaluation,
 * checkpoints and signals.
 */
#ifndef VAE_TRAINER_H
#define VAE_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/config.h"
#include "data/dataset.h"
#include "infer/eval.h"
#include "model/vae.h"
#include "optim/optim.h"
#include "train/reduction.h"

/* Where a step's time goes (seconds accumulated in trainer.t_phase).
 * PH_GRADS is part of PH_COMPUTE: the fully connected layers' parameter
 * gradients (in the sliced mode, the slice's over the node's rows). */
enum phase { PH_DATA, PH_COMPUTE, PH_WAIT, PH_OPT, PH_CKPT, PH_GRADS, N_PHASES };

struct trainer {
    const struct config *cfg;
    const struct comm *c;
    int rank, size;
    size_t n_local;         /* B/P: this rank's samples of each global batch */
    size_t steps_per_epoch; /* N / B */
    struct dataset_info info;
    struct shard train, test; /* this rank's block of each split (test in whole EVAL_CHUNKs) */
    struct shard epoch_buf;   /* this rank's samples of the current epoch, in batch order */
    long epoch_loaded;        /* epoch held in epoch_buf, or -1 */
    struct vae m;
    int params_shared; /* node mode: m.params is the node's window vector (reduction_step) */
    struct optim opt;
    int64_t skipped; /* steps skipped as non-finite since step 0 (resumed runs included) */
    struct reduction red;
    float *x;                 /* (B/P, D) the batch */
    float *eps;               /* (B/P, Z) its noise */
    double t_phase[N_PHASES]; /* this rank's seconds per phase since the driver last reset them */
};

/* What one step leaves: this rank's loss sums and the reduced gradient's norm. */
struct step_result {
    double rec, kl; /* sums over this rank's samples */
    double norm;    /* global L2 norm before clipping (non-finite: the step was skipped) */
    int finite;     /* the optimizer stepped */
};

/*
 * Check cfg against the job (batch divisible by P, ...), read this rank's
 * shards of cfg->data_path, build the model (initialized from the seed), the
 * optimizer and the reduction. Collective; returns 0 or -1 (agreed, message
 * printed). trainer_free is safe after a failed init.
 */
int trainer_init(struct trainer *t, const struct config *cfg, const struct comm *c);
void trainer_free(struct trainer *t);

/*
 * Load model and optimizer state as resume says: "none" (keep the fresh
 * model; step 0), "auto" (newest loadable checkpoint of run_dir, if any) or a
 * checkpoint path. Collective; returns 0 and the step, or -1 (agreed).
 */
int trainer_resume(struct trainer *t, const char *resume, int64_t *step);

/* Shuffle and exchange the samples of `epoch` unless held already. Collective; 0 or -1. */
int trainer_epoch(struct trainer *t, long epoch);

/* One training step at global step `step` (its epoch prepared). Collective. */
struct step_result trainer_step(struct trainer *t, int64_t step);

/* Evaluate the test split with the evaluator of `vae_dist eval` (needs info.n_test > 0). Collective. */
void trainer_eval(struct trainer *t, struct eval_result *r);

/* Checkpoint model and optimizer as of `step`. Collective; 0 or -1 (agreed, previous ones kept). */
int trainer_save(struct trainer *t, int64_t step);

/* End the job, naming the rank, if any replica's parameters differ from rank 0's. Collective. */
void trainer_check_replicas(struct trainer *t, int64_t step);

#endif
