/*
 * One global permutation per epoch, the same for any number of ranks.
 *
 * π_e = Philox(seed, RNG_SHUFFLE, epoch) permutes all N training rows. An
 * epoch has S = ⌊N/B⌋ global batches; batch t is π_e[t·B, (t+1)·B), and rank
 * r of P consumes its slice [r·B/P, (r+1)·B/P) of every batch. The N − S·B
 * rows left over are not seen this epoch (a different set each epoch).
 *
 * shuffle_epoch moves every row from the rank whose shard holds it to the rank
 * that will consume it, with one MPI_Alltoallv, into an epoch buffer whose row
 * k is this rank's k-th sample of the epoch (step k / (B/P)). Memory per rank
 * stays O(N/P) for rows, plus O(N) 4-byte indices for the permutation.
 */
#ifndef VAE_SHUFFLE_H
#define VAE_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "data/dataset.h"

/*
 * src: this rank's contiguous shard of N rows. dst: filled (allocated here,
 * shard_free it) with S·B/P rows in consumption order, ids = global row ids.
 * shuffle = 0 keeps the file order (π = identity). Collective.
 */
int shuffle_epoch(const struct comm *c, const struct shard *src, size_t n_total, size_t batch, uint64_t seed,
                  uint32_t epoch, int shuffle, struct shard *dst);

#endif
