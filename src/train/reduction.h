/*
 * The gradient reduction of a training step: how the ranks' gradients
 * become one sum that every rank steps with. Four modes, chosen once at
 * init from the config and the job's shape:
 *   node      ranks of a node sum through MPI-3 shared memory, each rank then
 *             owns the slice [lo, hi) of the parameters that it updates
 *             (comm_node_*); the default where it applies (float mode,
 *             no overlap, equal nodes of more than one rank). With
 *             comm.sliced_gradients on a fully connected model (sliced; by
 *             default where the activations of the node's batch are no
 *             more values than the parameters), backward leaves each
 *             layer's input and output gradient in the window (vae_stash)
 *             instead of computing the parameter gradients, and after one
 *             node barrier each rank computes those of its slice alone,
 *             over all the node's samples (vae_grads_range), into the one
 *             gradient vector the node's ranks share: no whole gradient per
 *             rank, and nothing to sum but, across nodes, the slice;
 *   overlap   buckets cut at layer boundaries start their allreduce while
 *             backward still runs (comm_reducer_*);
 *   blocking  one MPI_Allreduce of the whole gradient;
 *   fixed     reproducible mode: each micro-batch's gradient is added in
 *             64-bit fixed point (value · 2^32), summed by an integer
 *             allreduce, which is associative: any P gives the same bits.
 * Outside node mode the slice is the whole buffer.
 */
#ifndef VAE_REDUCTION_H
#define VAE_REDUCTION_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/config.h"
#include "model/vae.h"
#include "optim/optim.h"

struct reduction {
    const struct comm *c;
    struct vae *m;
    size_t n;                      /* gradient elements */
    size_t lo, hi;                 /* the slice of the parameters this rank updates */
    struct comm_node *node;        /* node mode, or NULL */
    struct comm_reducer *red;      /* overlap mode, or NULL */
    size_t *bucket_off;            /* (n_buckets + 1) bucket boundaries, overlap mode */
    size_t n_buckets, next_bucket; /* buckets >= next_bucket have been started */
    int64_t *fixed;                /* (n + 1) fixed mode's accumulator; last: overflow count */
    double ss;                     /* node mode: the reduced slice's sum of squares */
    int sliced;                    /* node mode: parameter gradients of the slice only (vae_stash) */
    int poison;                    /* this step's gradient counts as non-finite */
    double t_grads;                /* seconds of the last reduction_finish spent computing gradients */
};

/*
 * Choose the mode for model m under cfg on c and allocate it. Collective.
 * Returns 0 or -1 (out of memory; not agreed: the caller agrees).
 */
int reduction_init(struct reduction *r, const struct comm *c, const struct config *cfg, struct vae *m);
void reduction_free(struct reduction *r);
const char *reduction_mode(const struct reduction *r);

/*
 * Float modes. Before backward: reduction_begin zeroes what backward adds
 * into and, when poison (a fault hook's NaN gradient on this rank), makes the
 * step's norm NaN on every rank. As vae_backward finishes each layer it calls
 * reduction_ready(r, off) (pass it as on_ready when reduction_overlaps(r));
 * then reduction_finish completes the sum into grads (only [lo, hi) in node
 * mode). Collective.
 */
void reduction_begin(struct reduction *r, float *grads, int poison);
int reduction_overlaps(const struct reduction *r);
void reduction_ready(void *r, size_t off);
void reduction_finish(struct reduction *r, float *grads);

/*
 * Fixed mode: reduction_fixed_clear, then reduction_fixed_add (local) for
 * each micro-batch's gradient, then reduction_fixed_finish (collective)
 * writes the exact sum into grads; poison (a rank's overflow or injected
 * fault) makes grads[0] NaN on every rank, so the step is skipped.
 */
void reduction_fixed_clear(struct reduction *r);
void reduction_fixed_add(struct reduction *r, const float *grads);
void reduction_fixed_finish(struct reduction *r, float *grads, int poison);

/*
 * L2 norm of the reduced gradient (collective over the node in node mode,
 * where it must follow every reduction_finish: it is what lets a rank write
 * its gradient vector again).
 */
double reduction_norm(struct reduction *r, const float *grads);

/* Node mode: this rank's gradient vector in the shared window, where
 * backward can write directly (no exchange copy); else NULL. */
float *reduction_grads(struct reduction *r);

/*
 * The range of the parameters and optimizer state this rank writes to a
 * checkpoint: in node mode its part of the slice it updates (the state
 * outside the slice is stale there), tiling [0, n) over the ranks; else
 * lo = hi = 0 (the checkpoint's default split).
 */
void reduction_write_range(const struct reduction *r, size_t *lo, size_t *hi);

/*
 * The optimizer step of this rank's slice of params (in place) from the
 * reduced grads. Node mode (collective): params is the node's window vector
 * (reduction_params), which every rank of the node reads; each rank updates
 * its slice, after the reduction's node sync, and a node barrier makes the
 * whole vector visible before the next forward. Else the whole of params.
 */
void reduction_step(struct reduction *r, struct optim *o, float *params, const float *grads);

/*
 * Node mode: the window vector that holds the parameters before the first
 * step (else NULL). Each rank writes its slice [lo, hi) there (initial
 * values or a checkpoint's), then reduction_params_ready (collective; a
 * no-op outside node mode) makes every slice visible to every rank.
 */
float *reduction_params(struct reduction *r);
void reduction_params_ready(struct reduction *r);

#endif
