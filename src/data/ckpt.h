/*
 * Checkpoints: one HDF5 file per commit, written collectively.
 *
 *   /              attrs format = "vae_dist-checkpoint", version, step, epoch,
 *                        seed, world_size, n_params, optim, optim_t, config,
 *                        data_n_train, data_n_dim, image_rows, image_cols
 *   /model/params  (n_params) float32, Fletcher32-checksummed chunks
 *   /model/layout  compound {name, offset, rows, cols} per tensor
 *   /optim/state0, /optim/state1   (n_params) float32, as many as the optimizer has
 *
 * Each rank writes its contiguous slice of every flat buffer (collective
 * MPI-IO). Commit is atomic: write ckpt/step-N.h5.tmp, close, fsync, rename
 * to step-N.h5, fsync the directory, then replace ckpt/latest (a one-line
 * text file naming the checkpoint) by rename. Because batches and noise are
 * functions of (seed, step) only, the step is the whole data position, and a
 * checkpoint resumes on any number of ranks.
 */
#ifndef VAE_CKPT_H
#define VAE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/config.h"
#include "data/dataset.h"
#include "model/vae.h"
#include "optim/optim.h"

#define CKPT_FORMAT  "vae_dist-checkpoint"
#define CKPT_VERSION 1

/* What a checkpoint says about itself (read by ckpt_inspect). */
struct ckpt_meta {
    long version;
    int64_t step;
    long epoch;
    uint64_t seed;
    long world_size;
    size_t n_params;
    long optim;
    int64_t optim_t;
    long params_crc32;                                     /* CRC-32 of /model/params as stored */
    long data_n_train, data_n_dim, image_rows, image_cols; /* the training data's shape */
    char *config;                                          /* resolved config text (malloc'd) */
};

/*
 * Write a checkpoint of the model and optimizer at `step` into dir/ckpt,
 * commit it, then delete the oldest beyond `keep`. Collective. Returns 0, or
 * -1 (agreed on all ranks) with the previous checkpoints untouched.
 */
int ckpt_save(const struct comm *c, const char *run_dir, const struct config *cfg,
              const struct dataset_info *data, const struct vae *m, const struct optim *o, int64_t step,
              long epoch);

/*
 * Validate and load `path` into m and o (already built from the config; o
 * may be NULL to load the model only). The file's model shape must match m,
 * and when data is not NULL its training-set size and dimension must match:
 * mismatches are named. Collective. Returns 0 and the step, or -1 (agreed).
 */
int ckpt_load(const struct comm *c, const char *path, const struct dataset_info *data, struct vae *m,
              struct optim *o, int64_t *step);

/* Read and validate the header only (collective when c is not NULL). */
int ckpt_inspect(const struct comm *c, const char *path, struct ckpt_meta *meta);
void ckpt_meta_free(struct ckpt_meta *meta);

/*
 * Resume with `--resume auto`: try the checkpoint named by run_dir/ckpt/latest,
 * then every step-*.h5 from newest to oldest, warning for each one that does
 * not load (partial .tmp files are never candidates). Returns 1 if one was
 * loaded (step set), 0 if the run has no checkpoint (fresh start), -1 if
 * checkpoints exist but none loads (the run stops rather than start over).
 */
int ckpt_resume_auto(const struct comm *c, const char *run_dir, const struct dataset_info *data,
                     struct vae *m, struct optim *o, int64_t *step);

#endif
