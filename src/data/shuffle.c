/* Global per-epoch shuffle and exchange (see shuffle.h). Both sides derive
 * the whole plan from the permutation, so no counts are exchanged. */
#include "data/shuffle.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"

/* Rank whose block [lo, hi) holds row id. */
static int owner_of(size_t id, size_t n, int p)
{
    int q = (int)(((unsigned __int128)id * (unsigned)p) / n);
    size_t lo, hi;
    for (;;) {
        dataset_block(n, 1, p, q, &lo, &hi);
        if (id < lo)
            q--;
        else if (id >= hi)
            q++;
        else
            return q;
    }
}

/* One epoch's exchange, derived from the permutation alone. */
struct plan {
    int p, me;
    size_t batch, b, steps, n_mine; /* global batch, B/P, steps per epoch, samples this rank consumes */
    size_t lo, hi;                  /* the rows this rank holds */
    uint32_t *perm;                 /* (N) the epoch's order of global ids */
    int *owner;                     /* (n_mine) rank holding each sample this rank consumes */
    size_t *cnt;                    /* (4P) send bytes, send offsets, receive bytes, receive offsets */
    size_t send_total, recv_total;  /* bytes */
};

/* Global id of local sample j of step t that rank q consumes. */
static size_t consumed(const struct plan *pl, int q, size_t t, size_t j)
{
    return pl->perm[t * pl->batch + (size_t)q * pl->b + j];
}

/* Byte counts and offsets of the exchange; dst->ids in consumption order. */
static void plan_counts(struct plan *pl, size_t n_total, size_t rb, struct shard *dst)
{
    size_t *send_bytes = pl->cnt, *send_off = pl->cnt + pl->p;
    size_t *recv_bytes = pl->cnt + 2 * pl->p, *recv_off = pl->cnt + 3 * pl->p;
    /* What this rank sends to q: rows it holds that q consumes, in q's order. */
    for (int q = 0; q < pl->p; q++)
        for (size_t t = 0; t < pl->steps; t++)
            for (size_t j = 0; j < pl->b; j++) {
                size_t id = consumed(pl, q, t, j);
                send_bytes[q] += (id >= pl->lo && id < pl->hi) ? rb : 0;
            }
    /* What it receives: its own samples, grouped by the rank that holds them. */
    for (size_t k = 0; k < pl->n_mine; k++) {
        size_t id = consumed(pl, pl->me, k / pl->b, k % pl->b);
        dst->ids[k] = (uint32_t)id;
        pl->owner[k] = owner_of(id, n_total, pl->p);
        recv_bytes[pl->owner[k]] += rb;
    }
    for (int q = 0; q < pl->p; q++) {
        send_off[q] = pl->send_total;
        recv_off[q] = pl->recv_total;
        pl->send_total += send_bytes[q];
        pl->recv_total += recv_bytes[q];
    }
}

/* The send buffer: for each rank q in turn, the held rows q consumes, in q's order. */
static void pack(const struct plan *pl, const struct shard *src, unsigned char *w)
{
    const size_t rb = src->row_bytes;
    for (int q = 0; q < pl->p; q++)
        for (size_t t = 0; t < pl->steps; t++)
            for (size_t j = 0; j < pl->b; j++) {
                size_t id = consumed(pl, q, t, j);
                if (id >= pl->lo && id < pl->hi) {
                    memcpy(w, src->rows + (id - pl->lo) * rb, rb);
                    w += rb;
                }
            }
}

/* Rows from each source arrive in this rank's consumption order. */
static void unpack(const struct plan *pl, const unsigned char *recvbuf, struct shard *dst)
{
    const size_t rb = dst->row_bytes;
    size_t *recv_off = pl->cnt + 3 * pl->p;
    for (size_t k = 0; k < pl->n_mine; k++) {
        memcpy(dst->rows + k * rb, recvbuf + recv_off[pl->owner[k]], rb);
        recv_off[pl->owner[k]] += rb;
    }
}

int shuffle_epoch(const struct comm *c, const struct shard *src, size_t n_total, size_t batch, uint64_t seed,
                  uint32_t epoch, int shuffle, struct shard *dst)
{
    struct plan pl = {.p = comm_size(c), .me = comm_rank(c), .batch = batch};
    pl.b = batch / (size_t)pl.p;
    pl.steps = n_total / batch;
    pl.n_mine = pl.steps * pl.b;
    const size_t rb = src->row_bytes;
    dataset_block(n_total, 1, pl.p, pl.me, &pl.lo, &pl.hi);
    VAE_ASSERT(src->n_rows == pl.hi - pl.lo && batch % (size_t)pl.p == 0);
    memset(dst, 0, sizeof *dst);
    pl.perm = malloc(n_total * sizeof *pl.perm);
    pl.cnt = calloc(4 * (size_t)pl.p, sizeof *pl.cnt);
    pl.owner = malloc(pl.n_mine * sizeof *pl.owner + 1);
    int ok = pl.perm && pl.cnt && pl.owner && shard_alloc(dst, pl.n_mine, src->n_dim, src->is_u8, 0) == 0;
    unsigned char *sendbuf = NULL, *recvbuf = NULL;
    if (ok) {
        if (shuffle)
            rng_permutation(pl.perm, n_total, seed, RNG_SHUFFLE, epoch);
        else
            for (size_t i = 0; i < n_total; i++)
                pl.perm[i] = (uint32_t)i;
        plan_counts(&pl, n_total, rb, dst);
        sendbuf = mem_alloc(pl.send_total + 1);
        recvbuf = mem_alloc(pl.recv_total + 1);
        ok = sendbuf && recvbuf;
    }
    if (ok)
        pack(&pl, src, sendbuf);
    else
        log_error("out of memory for the epoch shuffle (%zu rows of %zu bytes)", pl.n_mine, rb);
    ok = comm_agree(c, ok);
    if (ok) {
        comm_alltoallv_bytes(c, sendbuf, pl.cnt, pl.cnt + pl.p, recvbuf, pl.cnt + 2 * pl.p,
                             pl.cnt + 3 * pl.p);
        unpack(&pl, recvbuf, dst);
    } else {
        shard_free(dst);
    }
    free(sendbuf);
    free(recvbuf);
    free(pl.owner);
    free(pl.cnt);
    free(pl.perm);
    return ok ? 0 : -1;
}
