/*
 * Every MPI call of vae_dist. A `struct comm` wraps a communicator (the world,
 * or MPI_COMM_SELF so that a test can run a 1-rank reference inside a P-rank
 * job). Every call is checked by MPI_CHECK, which names the call, file, line
 * and rank and ends the whole job with MPI_Abort: errors return to us
 * (MPI_ERRORS_RETURN) instead of killing one rank silently.
 *
 * Counts are element counts (size_t); wrappers check them against INT_MAX
 * and split larger buffers, so callers never see MPI's int counts.
 */
#ifndef VAE_COMM_H
#define VAE_COMM_H

#include <stddef.h>
#include <stdint.h>

struct comm;

/* MPI_Init, error handler, log rank, abort hook. Returns the world comm. Collective (world). */
struct comm *comm_init(int *argc, char ***argv);
/* A 1-rank comm over MPI_COMM_SELF (for references inside tests). Local. */
struct comm *comm_self(void);
/* MPI_Finalize. Collective (world). */
void comm_finalize(void);

/* This rank's number and the comm's size. Local. */
int comm_rank(const struct comm *c);
int comm_size(const struct comm *c);

/* The number of nodes (shared-memory domains) the comm's ranks run on. Collective. */
int comm_nodes(const struct comm *c);
/* The ranks of c on this rank's node, as a comm of their own (in c's rank
 * order; free it with comm_free). Collective. */
struct comm *comm_split_node(const struct comm *c);
void comm_free(struct comm *c);

/* End every rank of the job with `code` (MPI_Abort). Local: one rank may call it alone. */
_Noreturn void comm_abort(int code);

/*
 * Agreement: every rank passes its own `ok` (nonzero = fine); returns nonzero
 * only if every rank passed nonzero. The way a recoverable error on one rank
 * becomes a decision that all ranks act on together. Collective.
 */
int comm_agree(const struct comm *c, int ok);

/* The lowest rank whose ok is 0, or -1 when every rank is ok (with log_hold:
 * that rank alone prints what went wrong). Collective. */
int comm_first_failure(const struct comm *c, int ok);

/* Collective, each of them; sums in MPI's reduction order (floats: not associative). */
void comm_barrier(const struct comm *c);
void comm_bcast(const struct comm *c, void *buf, size_t n_bytes, int root);
void comm_allreduce_sum_f32(const struct comm *c, float *buf, size_t n);
void comm_allreduce_sum_f64(const struct comm *c, double *buf, size_t n);
void comm_allreduce_sum_i64(const struct comm *c, int64_t *buf, size_t n);
void comm_allreduce_max_f64(const struct comm *c, double *buf, size_t n);
void comm_allreduce_min_f64(const struct comm *c, double *buf, size_t n);
/* all[r] = value of rank r. Collective. */
void comm_allgather_u64(const struct comm *c, uint64_t value, uint64_t *all);

/* all (P · n_bytes) = every rank's n_bytes from `mine`, in rank order. Collective. */
void comm_allgather_bytes(const struct comm *c, const void *mine, size_t n_bytes, void *all);

/*
 * In place: rank r holds buf[off[r], off[r] + count[r]) and afterwards every
 * rank holds all of buf (floats; off and count per rank, in elements). Collective.
 */
void comm_allgatherv_f32(const struct comm *c, float *buf, const size_t *count, const size_t *off);

/*
 * Personalised exchange of bytes: rank r sends send_bytes[q] bytes at
 * send + send_off[q] to each rank q and receives into recv + recv_off[q].
 * Collective.
 */
void comm_alltoallv_bytes(const struct comm *c, const void *send, const size_t *send_bytes,
                          const size_t *send_off, void *recv, const size_t *recv_bytes,
                          const size_t *recv_off);

/*
 * Bucketed, overlapped allreduce of one flat float buffer. The buffer is cut
 * into buckets at tensor boundaries by the caller; comm_reducer_start(k) is
 * called as soon as backward has finished every tensor of bucket k, and
 * starts its non-blocking sum; comm_reducer_wait completes them all.
 * init, start (in the same bucket order on every rank), wait and free are
 * collective; progress is local.
 */
struct comm_reducer;
struct comm_reducer *comm_reducer_init(const struct comm *c, float *buf, const size_t *bucket_off,
                                       size_t n_buckets);
void comm_reducer_start(struct comm_reducer *r, size_t bucket);
/* Give MPI a chance to progress started buckets (call between layers). */
void comm_reducer_progress(struct comm_reducer *r);
void comm_reducer_wait(struct comm_reducer *r);
void comm_reducer_free(struct comm_reducer *r);

/*
 * Gradient reduction through MPI-3 shared memory among the ranks of a node.
 * The window holds one gradient vector per rank (comm_node_grads: backward
 * can write there directly) and one parameter vector that every rank of the
 * node reads (comm_node_params). Local rank q owns the slice [lo_q, lo_{q+1}).
 * comm_node_reduce: with every rank's gradient in its window vector, each
 * rank sums its own slice over all ranks (rank order: the same bits on every
 * node) into its vector,
 * hands each summed block to on_block(ctx, block, n) (the caller's norm, in
 * the same pass), and allreduces that slice among the ranks of the same
 * local rank on the other nodes (on_block then sees the slice after it).
 * Only the own slice of the vector is reduced afterwards: the rank updates that
 * slice of the parameter vector in place, and after comm_node_sync every rank
 * reads the whole updated vector. No copies through MPI, and the optimizer
 * runs on 1/L of the parameters per rank. The update may start once the
 * reduction's first node sync has passed (every rank is done with backward,
 * the step's last reader of the parameters). A rank rewrites its gradient
 * vector only after the next collective on the node (the caller's
 * comm_node_sum), when every rank has read it.
 * comm_node_open returns NULL on every rank (use MPI_Allreduce then) when a
 * node holds 1 rank, nodes hold different rank counts, or the window cannot
 * be allocated. open, close, reduce, sync and sum are collective over
 * the node (open and reduce over all ranks when there are several nodes);
 * range is local.
 */
struct comm_node;
struct comm_node *comm_node_open(const struct comm *c, size_t n, size_t n_extra, int one_grads);
void comm_node_close(struct comm_node *nd);
void comm_node_range(const struct comm_node *nd, size_t *lo, size_t *hi);
/* This rank's part of its slice: the slice split over the nodes, whose
 * ranks of the same local rank hold it alike. The parts tile [0, n). */
void comm_node_part(const struct comm_node *nd, size_t *lo, size_t *hi);
float *comm_node_grads(struct comm_node *nd);
void comm_node_reduce(struct comm_node *nd, void (*on_block)(void *ctx, const float *g, size_t n), void *ctx);
float *comm_node_params(struct comm_node *nd);
void comm_node_sync(struct comm_node *nd);
/*
 * For a reduction whose ranks compute their slices themselves (the sliced
 * parameter gradients of train/reduction.h), open with one_grads: the node's
 * ranks then share one gradient vector, each rank writing its own slice of
 * it, instead of one whole vector each (comm_node_reduce is not for them).
 * comm_node_extra: an area of n_extra floats per rank of the node in the
 * window, which every rank of the node reads and writes (64-byte aligned);
 * comm_node_rank: this rank's place in the node and the node's rank count;
 * comm_node_cross_sum: allreduce the own slice of the gradient vector over
 * the nodes (collective over the ranks of the same local rank).
 */
float *comm_node_extra(struct comm_node *nd);
void comm_node_rank(const struct comm_node *nd, int *local, int *n_local);
void comm_node_cross_sum(struct comm_node *nd);
/* Sum of x over the ranks of this node. */
double comm_node_sum(struct comm_node *nd, double x);

/*
 * The collective watchdog: a thread that ends the job (exit code 3, with a
 * message naming the host, the call and the step) when this rank has waited
 * longer than timeout_s in one MPI call or watched region — what a dead
 * node or a cut link leaves behind, where MPI itself may wait for ever.
 * Every MPI call of this file is watched; comm_watch_begin/end watch a
 * region of collective work done elsewhere (parallel HDF5 I/O), and nest.
 * comm_watchdog_start: once per process, 0 = off; returns 0 or -1 (no
 * thread). All of these are local.
 */
int comm_watchdog_start(double timeout_s);
/* The training step, for the watchdog's message. */
void comm_watch_step(int64_t step);
void comm_watch_begin(const char *what);
void comm_watch_end(void);

/* The underlying MPI_Comm, as an opaque pointer, for parallel HDF5 in src/data. Local. */
const void *comm_native(const struct comm *c);

#endif
