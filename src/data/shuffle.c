/* Global per-epoch shuffle and exchange (see shuffle.h). Both sides derive
 * the whole plan from the permutation, so no counts are exchanged. */
#include "data/shuffle.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
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

int shuffle_epoch(const struct comm *c, const struct shard *src, size_t n_total, size_t batch, uint64_t seed,
                  uint32_t epoch, int shuffle, struct shard *dst)
{
    const int p = comm_size(c), me = comm_rank(c);
    const size_t b = batch / (size_t)p, steps = n_total / batch, n_mine = steps * b;
    const size_t rb = src->row_bytes;
    size_t lo, hi;
    dataset_block(n_total, 1, p, me, &lo, &hi);
    VAE_ASSERT(src->n_rows == hi - lo && batch % (size_t)p == 0);
    memset(dst, 0, sizeof *dst);

    uint32_t *perm = malloc(n_total * sizeof *perm);
    size_t *cnt = calloc(4 * (size_t)p, sizeof *cnt);
    int *owner = malloc(n_mine * sizeof *owner + 1);
    int ok = perm && cnt && owner && shard_alloc(dst, n_mine, src->n_dim, src->is_u8, 0) == 0;
    size_t *send_bytes = cnt, *send_off = cnt + p, *recv_bytes = cnt + 2 * p, *recv_off = cnt + 3 * p;
    unsigned char *sendbuf = NULL, *recvbuf = NULL;
    if (ok) {
        if (shuffle)
            rng_permutation(perm, n_total, seed, RNG_SHUFFLE, epoch);
        else
            for (size_t i = 0; i < n_total; i++)
                perm[i] = (uint32_t)i;
        /* What this rank sends to q: rows it holds that q consumes, in q's order. */
        for (int q = 0; q < p; q++)
            for (size_t t = 0; t < steps; t++)
                for (size_t j = 0; j < b; j++) {
                    size_t id = perm[t * batch + (size_t)q * b + j];
                    send_bytes[q] += (id >= lo && id < hi) ? rb : 0;
                }
        /* What it receives: its own samples, grouped by the rank that holds them. */
        for (size_t k = 0; k < n_mine; k++) {
            size_t id = perm[(k / b) * batch + (size_t)me * b + k % b];
            dst->ids[k] = (uint32_t)id;
            owner[k] = owner_of(id, n_total, p);
            recv_bytes[owner[k]] += rb;
        }
        size_t s_total = 0, r_total = 0;
        for (int q = 0; q < p; q++) {
            send_off[q] = s_total;
            recv_off[q] = r_total;
            s_total += send_bytes[q];
            r_total += recv_bytes[q];
        }
        sendbuf = malloc(s_total + 1);
        recvbuf = malloc(r_total + 1);
        ok = sendbuf && recvbuf;
        if (ok) {
            unsigned char *w = sendbuf;
            for (int q = 0; q < p; q++)
                for (size_t t = 0; t < steps; t++)
                    for (size_t j = 0; j < b; j++) {
                        size_t id = perm[t * batch + (size_t)q * b + j];
                        if (id >= lo && id < hi) {
                            memcpy(w, src->rows + (id - lo) * rb, rb);
                            w += rb;
                        }
                    }
        }
    }
    if (!ok)
        log_error("out of memory for the epoch shuffle (%zu rows of %zu bytes)", n_mine, rb);
    ok = comm_agree(c, ok);
    if (ok) {
        comm_alltoallv_bytes(c, sendbuf, send_bytes, send_off, recvbuf, recv_bytes, recv_off);
        /* Rows from each source arrive in this rank's consumption order. */
        for (size_t k = 0; k < n_mine; k++) {
            memcpy(dst->rows + k * rb, recvbuf + recv_off[owner[k]], rb);
            recv_off[owner[k]] += rb;
        }
    } else {
        shard_free(dst);
    }
    free(sendbuf);
    free(recvbuf);
    free(owner);
    free(cnt);
    free(perm);
    return ok ? 0 : -1;
}
