/*
 * Fault injection for the fault suite: hooks that the library calls where
 * the suite needs a fault. Which implementation is linked decides what they
 * do, so the release binary carries no injection at all:
 *   fault_off.c  (vae_dist, the unit tests): every hook does nothing;
 *   fault_env.c  (vae_dist_faults, run by tests/e2e_*.sh): the hooks read
 *                the VAE_TEST_* variables listed in docs/usage.md.
 * Each hook is local (no communication) and cheap.
 */
#ifndef VAE_FAULT_H
#define VAE_FAULT_H

#include <stdint.h>

/* Nonzero: this rank sees every input file as unreadable. */
int fault_unreadable(int rank);

/* Rank 0, after a checkpoint's data are on disk and before its commit: may kill the process. */
void fault_before_commit(void);

/* Nonzero: this rank's gradient of this step is poisoned (NaN, or a fixed-point overflow). */
int fault_nan_gradient(int64_t step, int rank, int size);

/* Nonzero: this rank nudges its replica after this step (for the replica check). */
int fault_diverge(int64_t step, int rank);

/* Nonzero: skip the checkpoint's free-space check, as when another writer fills the disk after it. */
int fault_skip_room_check(void);

/* Called once per step: may sleep, so that a test can signal or kill a run mid-training. */
void fault_step_delay(void);

#endif
