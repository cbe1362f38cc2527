/* The gradient reduction modes (see reduction.h). */
#include "train/reduction.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

/* Fixed point: value · 2^32 in int64. A micro-batch gradient element beyond
 * ±2^20 counts as an overflow (like a non-finite one). */
#define GRAD_FIXED_SCALE 4294967296.0
#define GRAD_FIXED_LIMIT 1048576.0f

/* Cut the flat gradient at layer boundaries into buckets of about bucket_mb,
 * from the end (where backward starts). */
static int make_buckets(struct reduction *r, const struct vae *m, double bucket_mb)
{
    size_t cap = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
    size_t cuts[VAE_MAX_LAYERS + 2], n_cuts = 0, end = m->n_params;
    cuts[n_cuts++] = m->n_params;
    size_t starts[VAE_MAX_LAYERS + 1], n_starts = 0;
    if (m->obs_logvar_off != SIZE_MAX)
        starts[n_starts++] = m->obs_logvar_off;
    for (size_t l = m->n_layers; l-- > 0;)
        starts[n_starts++] = m->layer[l].w_off;
    for (size_t i = 0; i < n_starts; i++) {
        if (end - starts[i] >= cap || starts[i] == 0) {
            cuts[n_cuts++] = starts[i];
            end = starts[i];
        }
    }
    r->n_buckets = n_cuts - 1;
    r->bucket_off = malloc(n_cuts * sizeof *r->bucket_off);
    if (!r->bucket_off)
        return -1;
    for (size_t i = 0; i < n_cuts; i++)
        r->bucket_off[i] = cuts[n_cuts - 1 - i];
    r->red = comm_reducer_init(r->c, m->grads, r->bucket_off, r->n_buckets);
    return 0;
}

int reduction_init(struct reduction *r, const struct comm *c, const struct config *cfg, struct vae *m)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->m = m;
    r->n = m->n_params;
    r->hi = m->n_params;
    if (cfg->reproducible) {
        r->fixed = malloc((r->n + 1) * sizeof *r->fixed);
        return r->fixed ? 0 : -1;
    }
    if (cfg->overlap && comm_size(c) > 1)
        return make_buckets(r, m, cfg->bucket_mb);
    if (!cfg->shared_memory || comm_size(c) == 1)
        return 0;
    size_t rows = (size_t)cfg->batch_size / (size_t)comm_size(c);
    size_t stash = cfg->sliced_gradients != SLICED_FALSE ? vae_stash_floats(m, rows, 1) : 0;
    size_t per_node = (size_t)comm_size(c) / (size_t)comm_nodes(c);
    if (cfg->sliced_gradients == SLICED_AUTO && stash * per_node > m->n_params)
        stash = 0; /* the node's activations outweigh a gradient: summing gradients moves less */
    r->node = comm_node_open(c, r->n, stash, stash > 0);
    if (r->node) {
        comm_node_range(r->node, &r->lo, &r->hi);
        if (stash) {
            int q, n_q;
            comm_node_rank(r->node, &q, &n_q);
            vae_stash(m, comm_node_extra(r->node), rows, (size_t)q, (size_t)n_q);
            r->sliced = 1;
        }
    }
    return 0;
}

void reduction_free(struct reduction *r)
{
    comm_reducer_free(r->red);
    comm_node_close(r->node);
    free(r->bucket_off);
    free(r->fixed);
    memset(r, 0, sizeof *r);
}

const char *reduction_mode(const struct reduction *r)
{
    return r->fixed    ? "reproducible (int64 allreduce)"
           : r->red    ? "float, overlapped allreduce"
           : r->sliced ? "float, shared-memory reduction of sliced parameter gradients, sliced optimizer"
           : r->node   ? "float, shared-memory reduction, sliced optimizer"
                       : "float, allreduce";
}

void reduction_begin(struct reduction *r, float *grads, int poison)
{
    r->next_bucket = r->n_buckets;
    r->poison = poison;
    if (r->sliced) /* backward writes no gradient: the slice's are computed whole */
        return;
    memset(grads, 0, r->n * sizeof *grads);
    if (poison)
        grads[0] = NAN; /* backward adds to it; the reduction carries it to every rank */
}

int reduction_overlaps(const struct reduction *r)
{
    return r->red != NULL;
}

void reduction_ready(void *ctx, size_t off)
{
    struct reduction *r = ctx;
    while (r->next_bucket > 0 && r->bucket_off[r->next_bucket - 1] >= off) {
        r->next_bucket--;
        comm_reducer_start(r->red, r->next_bucket);
    }
    comm_reducer_progress(r->red);
}

static void add_squares(void *ctx, const float *g, size_t n)
{
    *(double *)ctx += optim_sum_squares(g, n);
}

void reduction_finish(struct reduction *r, float *grads)
{
    r->ss = 0;
    r->t_grads = 0;
    if (r->red) {
        comm_reducer_wait(r->red);
    } else if (r->sliced) {
        comm_node_sync(r->node); /* every rank's stash is in */
        double t0 = timer_now();
        vae_grads_range(r->m, r->lo, r->hi);
        r->t_grads = timer_now() - t0;
        comm_node_cross_sum(r->node);
        r->ss = r->poison ? NAN : optim_sum_squares(grads + r->lo, r->hi - r->lo);
    } else if (r->node) {
        comm_node_reduce(r->node, add_squares, &r->ss); /* grads is this rank's window vector */
    } else {
        comm_allreduce_sum_f32(r->c, grads, r->n);
    }
}

void reduction_fixed_clear(struct reduction *r)
{
    memset(r->fixed, 0, (r->n + 1) * sizeof *r->fixed);
}

void reduction_fixed_add(struct reduction *r, const float *grads)
{
    int64_t bad = 0, *acc = r->fixed;
    /* Truncation toward zero is as exact a rule as rounding, and vectorises. */
#pragma omp simd reduction(+ : bad)
    for (size_t i = 0; i < r->n; i++) {
        float g = grads[i];
        int ok = fabsf(g) < GRAD_FIXED_LIMIT;
        bad += !ok;
        acc[i] += (int64_t)((double)(ok ? g : 0.0f) * GRAD_FIXED_SCALE);
    }
    acc[r->n] += bad;
}

void reduction_fixed_finish(struct reduction *r, float *grads, int poison)
{
    r->fixed[r->n] += poison != 0;
    comm_allreduce_sum_i64(r->c, r->fixed, r->n + 1);
    for (size_t i = 0; i < r->n; i++)
        grads[i] = (float)((double)r->fixed[i] / GRAD_FIXED_SCALE);
    if (r->fixed[r->n])
        grads[0] = NAN;
}

double reduction_norm(struct reduction *r, const float *grads)
{
    if (r->node) /* the squares were summed as the slice was reduced */
        return sqrt(comm_node_sum(r->node, r->ss));
    return sqrt(optim_sum_squares(grads, r->n));
}

float *reduction_grads(struct reduction *r)
{
    return r->node ? comm_node_grads(r->node) : NULL;
}

void reduction_write_range(const struct reduction *r, size_t *lo, size_t *hi)
{
    *lo = *hi = 0;
    if (r->node)
        comm_node_part(r->node, lo, hi);
}

void reduction_step(struct reduction *r, struct optim *o, float *params, const float *grads)
{
    optim_step_range(o, params, grads, r->lo, r->hi);
    if (r->node)
        comm_node_sync(r->node); /* every slice is in before the next forward reads the vector */
}

float *reduction_params(struct reduction *r)
{
    return r->node ? comm_node_params(r->node) : NULL;
}

void reduction_params_ready(struct reduction *r)
{
    if (r->node)
        comm_node_sync(r->node);
}
