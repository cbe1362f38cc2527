/*
 * The commands that use a trained model: eval, sample, recon, encode,
 * score. Each loads the model from a checkpoint (its stored config builds
 * the network) and works on the test split of a dataset (or the training
 * split when the file has none, or as --split says). Every function here is
 * collective over c and returns an exit code (VAE_EXIT_*), messages printed.
 */
#ifndef VAE_INFER_H
#define VAE_INFER_H

#include "comm/comm.h"

struct infer_args {
    const char *checkpoint; /* required */
    const char *data;       /* NULL: the data.path stored in the checkpoint's config */
    const char *split;      /* "test" (default) or "train" */
    const char *out;        /* output file (PNG or HDF5) */
    long n;                 /* samples or pictures (0: all for eval) */
    long k;                 /* importance samples (eval, score) */
    int scale;              /* sample, recon: pixels per image pixel (0: 1) */
};

int infer_eval(const struct comm *c, const struct infer_args *a);
int infer_sample(const struct comm *c, const struct infer_args *a);
int infer_recon(const struct comm *c, const struct infer_args *a);
int infer_encode(const struct comm *c, const struct infer_args *a);
int infer_score(const struct comm *c, const struct infer_args *a);

#endif
