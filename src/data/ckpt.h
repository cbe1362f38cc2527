/*
 * Checkpoints: one HDF5 file per commit, written collectively. A checkpoint
 * is a header and a list of named flat float32 buffers; the first buffer is
 * the parameters, described tensor by tensor by a layout:
 *
 *   /              attrs format = "vae_dist-checkpoint", version, step, epoch,
 *                        seed, world_size, n_params, optim, optim_t,
 *                        steps_skipped (optional), config,
 *                        data_n_train, data_n_dim, image_channels (optional),
 *                        image_rows, image_cols,
 *                        data_crc32 (of the training data's /train/x; -1: none)
 *   /model/params  (n_params) float32, attribute crc32 (CRC-32 of the data)
 *   /model/layout  compound {name, offset, rows, cols, shape} per tensor:
 *                  rows × cols its matrix view, shape (uint64[4], 0 past the
 *                  tensor's rank) its PyTorch shape, e.g. (32, 1, 4, 4)
 *   /optim/state0, /optim/state1   (n_params) float32 with crc32, as many as the optimizer has
 *
 * Each rank writes its contiguous slice of every buffer (collective MPI-IO).
 * Commit is atomic: write ckpt/step-N.h5.tmp, close, fsync, rename to
 * step-N.h5, fsync the directory, then replace ckpt/latest (a one-line text
 * file naming the checkpoint) by rename. Because batches and noise are
 * functions of (seed, step) only, the step is the whole data position, and a
 * checkpoint resumes on any number of ranks.
 *
 * This module knows nothing of the model or the optimizer: callers describe
 * what they store with struct ckpt_content.
 */
#ifndef VAE_CKPT_H
#define VAE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/tensor.h"

#define CKPT_FORMAT  "vae_dist-checkpoint"
#define CKPT_VERSION 1

/* The header: what a checkpoint says about itself. */
struct ckpt_meta {
    long version; /* read only */
    int64_t step;
    long epoch;
    uint64_t seed;
    long world_size; /* read only: ckpt_save stores the comm's size */
    size_t n_params;
    long optim; /* enum optim_kind */
    int64_t optim_t;
    int64_t steps_skipped;         /* steps skipped as non-finite up to step: optim_t + steps_skipped = step
                                      (read: -1 in checkpoints before it) */
    long params_crc32;             /* read only: CRC-32 of /model/params */
    long data_n_train, data_n_dim; /* the training data's shape */
    long image_channels, image_rows, image_cols; /* C, H, W; 0s: not images */
    long data_crc32;                             /* its /train/x crc32, -1: unknown */
    long data_labels_crc32;                      /* its /train/y crc32, -1: none or unknown */
    char *config;                                /* resolved config text (read: malloc'd) */
};

/* One flat float32 buffer of a checkpoint: all n values on the rank, or
 * (held_hi > 0) only values [held_lo, held_hi), data[0] being held_lo's. */
struct ckpt_buffer {
    const char *name; /* HDF5 path: "/model/params", "/optim/state0", ... */
    float *data;
    size_t n;
    size_t held_lo, held_hi;
    int nonneg; /* every value must be >= 0 (a sum of squares): checked on load */
};

/*
 * What is stored: buf[0] is /model/params, whose tensors layout describes.
 * ckpt_save has each rank write [lo, hi) of every buffer, which only needs
 * to be current there (a rank that updates a slice of the optimizer state
 * writes that slice, and nothing is gathered first); the ranks' ranges must
 * tile [0, n) and lie inside what each buffer holds. hi = 0: the rank's
 * block of n / P. ckpt_load fills each buffer with what it holds: a buffer
 * held whole gets every value, one held in part reads only that part (each
 * rank checks the CRC-32 over its [lo, hi), which must then lie inside).
 * Both write and read the buffers with O_DIRECT where the file system
 * allows it, and through the page cache with `buffered` (config
 * ckpt.direct_io = false).
 */
struct ckpt_content {
    const struct tensor_view *layout;
    size_t n_layout;
    const struct ckpt_buffer *buf;
    size_t n_buf;
    size_t lo, hi;
    int buffered;
    /* Optional: called with the header (config included) before any tensor
     * is read; nonzero refuses the checkpoint as not this run's (a changed
     * model, say), and ckpt_resume_auto then tries no older one: the caller
     * has said why. Every rank must decide alike from the header. */
    int (*accept)(const struct ckpt_meta *got, const void *arg);
    const void *accept_arg;
};

/*
 * Write a checkpoint of meta and ct into run_dir/ckpt (after checking there
 * is room), commit it, then delete the oldest beyond `keep`. Collective.
 * Returns 0, or -1 (agreed on all ranks) with the previous checkpoints untouched.
 */
int ckpt_save(const struct comm *c, const char *run_dir, const struct ckpt_meta *meta,
              const struct ckpt_content *ct, long keep);

/*
 * Validate `path` and load its buffers into ct's (each must exist with the
 * same length; the stored layout must equal ct's, tensor by tensor). `want`
 * names what else must match: optim (>= 0) and the training data's
 * data_n_train and data_n_dim (> 0); mismatches are named. The header goes to
 * got when not NULL (free with ckpt_meta_free). Collective; returns 0, -1, or
 * -2 when ct->accept refused it (agreed).
 */
int ckpt_load(const struct comm *c, const char *path, const struct ckpt_meta *want,
              const struct ckpt_content *ct, struct ckpt_meta *got);

/* Read and validate the header only (collective when c is not NULL). */
int ckpt_inspect(const struct comm *c, const char *path, struct ckpt_meta *meta);
void ckpt_meta_free(struct ckpt_meta *meta);

/*
 * For a run that starts over in run_dir (--resume none): when run_dir/ckpt
 * holds committed checkpoints of an earlier run, move that directory to
 * run_dir/ckpt.before-YYYYmmddTHHMMSSZ (kept, never loaded) and make a new
 * empty ckpt/, so that a later resume can never take the earlier run's
 * newer steps for this run's. Local (rank 0, holding the run lock); 0, or
 * -1 with a message.
 */
int ckpt_archive(const char *run_dir);

/*
 * What a --checkpoint argument names, as a checkpoint file into out: a run
 * directory (or its ckpt/) gives its newest committed checkpoint, the
 * `latest` pointer the file it names, anything else itself. Local; 0, or -1
 * with a message (a directory without checkpoints, a pointer that names
 * none).
 */
int ckpt_resolve(const char *arg, char *out, size_t out_bytes);

/* The header's numeric fields, in file order, for display: the name of field
 * i < ckpt_header_count() and its value in m (NAN: an optional field the
 * checkpoint does not hold). One table in ckpt.c drives these, the write and
 * the read. */
size_t ckpt_header_count(void);
const char *ckpt_header_field(const struct ckpt_meta *m, size_t i, double *value);

/*
 * Resume with `--resume auto`: ckpt_load every step-*.h5 of run_dir/ckpt
 * from the newest step to the oldest until one loads, warning for each one
 * that does not (partial .tmp files are never candidates; ckpt/latest is for
 * people and tools: a run killed before updating it left a newer file).
 * Returns 1 if one was loaded (got set), 0 if the run has no checkpoint
 * (fresh start), -1 if checkpoints exist but none loads (the run stops
 * rather than start over). Collective.
 */
int ckpt_resume_auto(const struct comm *c, const char *run_dir, const struct ckpt_meta *want,
                     const struct ckpt_content *ct, struct ckpt_meta *got);

#endif
