/*
 * The commands that use a trained model: eval, sample, recon, encode,
 * score. Each loads the model from a checkpoint (its stored config builds
 * the network) and works on the test split of a dataset (or the training
 * split when the file has none, or as --split says). Collective.
 */
#ifndef VAE_TOOLS_H
#define VAE_TOOLS_H

#include "comm/comm.h"

struct tool_args {
    const char *checkpoint; /* required */
    const char *data;       /* NULL: the data.path stored in the checkpoint's config */
    const char *split;      /* "test" (default) or "train" */
    const char *out;        /* output file (PNG or HDF5) */
    long n;                 /* samples or pictures (0: all for eval) */
    long k;                 /* importance samples (eval, score) */
};

/* Each returns an exit code (VAE_EXIT_*); messages are printed. */
int tool_eval(const struct comm *c, const struct tool_args *a);
int tool_sample(const struct comm *c, const struct tool_args *a);
int tool_recon(const struct comm *c, const struct tool_args *a);
int tool_encode(const struct comm *c, const struct tool_args *a);
int tool_score(const struct comm *c, const struct tool_args *a);

#endif
