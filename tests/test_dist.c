/*
 * Data parallelism, run under mpiexec with P = 1, 2, 3, 4, 8. Each test runs
 * the P-rank version on the world, then rank 0 runs the 1-rank reference on
 * MPI_COMM_SELF inside the same job and compares:
 *   - the epoch shuffle: every sample exactly once, same order as P = 1,
 *     and each row's bytes are the file's row of that id;
 *   - default (float) mode: per-step losses match 1 rank within float
 *     tolerance over 100 steps;
 *   - reproducible mode: final parameters bit-identical to 1 rank, for the
 *     MLP and for a conv model;
 *   - plain SGD (whose step is proportional to the gradient, unlike Adam's):
 *     float mode on P ranks and reproducible mode (fixed point) on 1 rank
 *     both match float mode on 1 rank, so a gradient summed instead of
 *     averaged, or decoded from fixed point at the wrong scale, shows;
 *   - KL warm-up: its first steps equal steps at the β they should weigh;
 *   - node mode's one parameter vector: no rank reads it before every rank
 *     has written its slice, at start and after each step.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "comm/comm.h"
#include "core/config.h"
#include "data/shuffle.h"
#define VAE_TEST_MPI_ASSERT
#include "testutil.h"
#include "model/vae.h"
#include "optim/optim.h"
#include "train/reduction.h"
#include "train/train.h"
#include "train/trainer.h"

/* 512 rows: not a multiple of 3, so on P = 3 shard boundaries fall inside
 * the id range (the shuffle's owner lookup); 48 is divisible by 1, 2, 3, 4, 8. */
enum { N_TRAIN = 512, N_TEST = 64, DIM = 16, BATCH = 48 };

static struct comm *g_world;
static char g_dir[256];

static void small_config(struct config *cfg, const char *run)
{
    config_defaults(cfg);
    snprintf(cfg->data_path, sizeof cfg->data_path, "%s/data.h5", g_dir);
    snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s/%s", g_dir, run);
    cfg->hidden.v[0] = 12;
    cfg->latent = 3;
    cfg->batch_size = BATCH;
    cfg->micro_batch = 2;
    cfg->epochs = 10;
    cfg->max_steps = 100;
    cfg->log_every = 50;
    cfg->ckpt_every_seconds = 0;
    cfg->bucket_mb = 0.001; /* several buckets even for a tiny model */
    cfg->replica_check_every = 10;
}

static void test_shuffle_exactly_once_and_rank_invariant(void **state)
{
    (void)state;
    const int p = comm_size(g_world), me = comm_rank(g_world);
    struct config cfg;
    small_config(&cfg, "unused");
    struct dataset_info info;
    assert_int_equal(dataset_open(g_world, cfg.data_path, &info), 0);
    struct shard mine, full, buf;
    assert_int_equal(dataset_read_shard(g_world, cfg.data_path, &info, "train", 0, 1, &mine), 0);
    assert_int_equal(dataset_read_shard(comm_self(), cfg.data_path, &info, "train", 0, 1, &full), 0);
    const size_t steps = N_TRAIN / BATCH, b = BATCH / (size_t)p;
    for (uint32_t epoch = 0; epoch < 3; epoch++) {
        assert_int_equal(shuffle_epoch(g_world, &mine, N_TRAIN, BATCH, 5, epoch, 1, &buf), 0);
        assert_int_equal(buf.n_rows, steps * b);
        /* Global order, assembled: position → id + 1. */
        int64_t *order = calloc(steps * BATCH, sizeof *order);
        for (size_t k = 0; k < buf.n_rows; k++) {
            size_t pos = (k / b) * BATCH + (size_t)me * b + k % b;
            order[pos] = (int64_t)buf.ids[k] + 1;
            assert_memory_equal(buf.rows + k * buf.row_bytes, full.rows + buf.ids[k] * full.row_bytes,
                                buf.row_bytes);
        }
        comm_allreduce_sum_i64(g_world, order, steps * BATCH);
        if (me == 0) {
            struct shard ref;
            assert_int_equal(shuffle_epoch(comm_self(), &full, N_TRAIN, BATCH, 5, epoch, 1, &ref), 0);
            char *seen = calloc(N_TRAIN, 1);
            for (size_t pos = 0; pos < steps * BATCH; pos++) {
                assert_true(order[pos] >= 1 && order[pos] <= N_TRAIN);
                assert_false(seen[order[pos] - 1]);
                seen[order[pos] - 1] = 1;
                assert_int_equal(order[pos] - 1, ref.ids[pos]);
            }
            free(seen);
            shard_free(&ref);
        }
        free(order);
        shard_free(&buf);
    }
    shard_free(&mine);
    shard_free(&full);
}

/* Train on the world (P ranks) and on MPI_COMM_SELF (rank 0); compare. */
static void run_both(struct config *cfg, struct train_result *rp, struct train_result *r1)
{
    char run[CONFIG_STR_MAX];
    strcpy(run, cfg->run_dir);
    assert_int_equal(train_run(cfg, g_world, "none", rp), 0);
    memset(r1, 0, sizeof *r1);
    if (comm_rank(g_world) == 0) {
        snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s-ref", run);
        assert_int_equal(train_run(cfg, comm_self(), "none", r1), 0);
        strcpy(cfg->run_dir, run);
    }
    comm_barrier(g_world);
}

static void test_float_mode_matches_one_rank(void **state)
{
    (void)state;
    struct config cfg;
    small_config(&cfg, "float");
    struct train_result rp, r1;
    run_both(&cfg, &rp, &r1);
    if (comm_rank(g_world) == 0) {
        assert_int_equal(rp.n_steps, 100);
        assert_int_equal(r1.n_steps, 100);
        double worst = 0;
        for (int64_t s = 0; s < 100; s++)
            worst = nan_max(worst, fabs(rp.loss[s] - r1.loss[s]) / fabs(r1.loss[s]));
        printf("float mode, P = %d vs 1: max relative loss difference over 100 steps %.2e "
               "(first %.4f, last %.4f)\n",
               comm_size(g_world), worst, r1.loss[0], r1.loss[99]);
        assert_true(worst < 1e-4);
        assert_true(r1.loss[99] < r1.loss[0]); /* it learns */
    }
    train_result_free(&rp);
    train_result_free(&r1);
}

/* How many parameters of two runs differ in their bits. */
static size_t params_differing(const struct train_result *a, const struct train_result *b)
{
    assert_int_equal(a->n_params, b->n_params);
    size_t differ = 0;
    for (size_t i = 0; i < a->n_params; i++)
        differ += memcmp(&a->params[i], &b->params[i], sizeof(float)) != 0;
    return differ;
}

static void test_reproducible_bit_identical(void **state)
{
    (void)state;
    struct config cfg;
    small_config(&cfg, "repro");
    cfg.reproducible = 1;
    cfg.max_steps = 60;
    struct train_result rp, r1;
    run_both(&cfg, &rp, &r1);
    if (comm_rank(g_world) == 0) {
        size_t differ = params_differing(&rp, &r1);
        printf("reproducible mode, P = %d vs 1: %zu of %zu parameters differ after 60 steps\n",
               comm_size(g_world), differ, rp.n_params);
        assert_int_equal(differ, 0);
        for (int64_t s = 0; s < 60; s++)
            assert_true(fabs(rp.loss[s] - r1.loss[s]) <= 1e-9 * fabs(r1.loss[s]));
    }
    train_result_free(&rp);
    train_result_free(&r1);
}

static void test_conv_reproducible_bit_identical(void **state)
{
    (void)state;
    struct config cfg;
    small_config(&cfg, "conv_repro");
    conv_model(&cfg);
    cfg.reproducible = 1;
    cfg.max_steps = 40;
    struct train_result rp, r1;
    run_both(&cfg, &rp, &r1);
    if (comm_rank(g_world) == 0) {
        size_t differ = params_differing(&rp, &r1);
        printf("conv model, reproducible mode, P = %d vs 1: %zu of %zu parameters differ after 40 steps "
               "(loss %.4f -> %.4f)\n",
               comm_size(g_world), differ, rp.n_params, r1.loss[0], r1.loss[39]);
        assert_int_equal(differ, 0);
        assert_true(r1.loss[39] < r1.loss[0]); /* it learns */
    }
    train_result_free(&rp);
    train_result_free(&r1);
}

static void test_sgd_float_fixed_and_one_rank_agree(void **state)
{
    (void)state;
    struct config cfg;
    small_config(&cfg, "sgd");
    cfg.optim = OPT_SGD;
    cfg.lr = 0.5;
    cfg.max_steps = 40;
    struct train_result rp, r1, fixed;
    run_both(&cfg, &rp, &r1);
    if (comm_rank(g_world) == 0) {
        small_config(&cfg, "sgd-fixed");
        cfg.optim = OPT_SGD;
        cfg.lr = 0.5;
        cfg.max_steps = 40;
        cfg.reproducible = 1;
        assert_int_equal(train_run(&cfg, comm_self(), "none", &fixed), 0);
        double d_p = 0, d_fixed = 0, moved = 0;
        for (size_t i = 0; i < r1.n_params; i++) {
            d_p = nan_max(d_p, fabs((double)rp.params[i] - r1.params[i]));
            d_fixed = nan_max(d_fixed, fabs((double)fixed.params[i] - r1.params[i]));
        }
        for (int64_t s = 0; s < 40; s++)
            moved = nan_max(moved, fabs(r1.loss[s] - r1.loss[0]));
        printf("SGD, 40 steps: max |dparam| float P = %d vs 1: %.2e; fixed point vs float, 1 rank: %.2e; "
               "loss moved by %.3f\n",
               comm_size(g_world), d_p, d_fixed, moved);
        assert_true(d_p < 1e-5);
        assert_true(d_fixed < 1e-5);
        assert_true(moved > 0.1); /* the steps are not negligible */
        train_result_free(&fixed);
    }
    comm_barrier(g_world);
    train_result_free(&rp);
    train_result_free(&r1);
}

static void test_kl_warmup_first_steps(void **state)
{
    (void)state;
    /* KL warm-up over W = 4 steps weighs the KL term by β·(s+1)/W at step s:
     * 2 steps with β = 1 warming up equal 1 step at β = 1/4, then 1 at β = 2/4. */
    struct config cfg;
    small_config(&cfg, "warmup");
    cfg.optim = OPT_SGD;
    cfg.lr = 0.5;
    cfg.reproducible = 1;
    cfg.kl_warmup_steps = 4;
    cfg.max_steps = 2;
    struct train_result warm, step1, step2;
    assert_int_equal(train_run(&cfg, g_world, "none", &warm), 0);
    small_config(&cfg, "warmup_fixed");
    cfg.optim = OPT_SGD;
    cfg.lr = 0.5;
    cfg.reproducible = 1;
    cfg.ckpt_every_steps = 1;
    cfg.beta = 0.25;
    cfg.max_steps = 1;
    assert_int_equal(train_run(&cfg, g_world, "none", &step1), 0);
    cfg.beta = 0.5;
    cfg.max_steps = 2;
    assert_int_equal(train_run(&cfg, g_world, "auto", &step2), 0);
    assert_int_equal(step2.n_steps, 1);
    assert_memory_equal(warm.params, step2.params, warm.n_params * sizeof *warm.params);
    train_result_free(&warm);
    train_result_free(&step1);
    train_result_free(&step2);
}

static void test_overlap_and_blocking_agree(void **state)
{
    (void)state;
    /* The bucketed overlapped reduction and one blocking allreduce sum the
     * same numbers: results agree to float rounding. */
    struct config cfg;
    small_config(&cfg, "blocking");
    cfg.max_steps = 30;
    cfg.overlap = 0;
    struct train_result a, b;
    assert_int_equal(train_run(&cfg, g_world, "none", &a), 0);
    cfg.overlap = 1;
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s/overlap", g_dir);
    assert_int_equal(train_run(&cfg, g_world, "none", &b), 0);
    for (int64_t s = 0; s < 30; s++)
        assert_true(fabs(a.loss[s] - b.loss[s]) <= 1e-5 * fabs(a.loss[s]));
    train_result_free(&a);
    train_result_free(&b);
}

static void test_node_shared_and_allreduce_agree(void **state)
{
    (void)state;
    /* Node-shared parameters and sliced optimizer steps, against a replica
     * per rank and one MPI_Allreduce; the node's gradient either summed from
     * every rank's whole gradient or computed slice by slice from every
     * rank's stashed activations (comm.sliced_gradients). Summed on 2 ranks,
     * both add the same two numbers, so without clipping the results are the
     * same bits; otherwise (a norm summed by slices, another summation order,
     * a slice's gradient in one GEMM over the node's samples) they agree to
     * float rounding. Case 2 learns the Gaussian log σ², whose gradient the
     * sliced mode still sums over the ranks. */
    for (int c = 0; c < 3; c++) {
        struct config cfg;
        small_config(&cfg, "allreduce");
        cfg.max_steps = 30;
        cfg.clip_norm = c == 1 ? 0.05 : 0;
        if (c == 2)
            cfg.likelihood = LIK_GAUSSIAN_LEARNED;
        cfg.shared_memory = 0;
        struct train_result a, b;
        assert_int_equal(train_run(&cfg, g_world, "none", &a), 0);
        for (int sliced = 0; sliced < 2; sliced++) {
            cfg.shared_memory = 1;
            cfg.sliced_gradients = sliced ? SLICED_TRUE : SLICED_FALSE;
            snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s/shared%d%d", g_dir, c, sliced);
            assert_int_equal(train_run(&cfg, g_world, "none", &b), 0);
            assert_int_equal(a.n_params, b.n_params);
            if (comm_size(g_world) == 2 && c == 0 && !sliced) {
                assert_memory_equal(a.params, b.params, a.n_params * sizeof *a.params);
                assert_memory_equal(a.loss, b.loss, 30 * sizeof *a.loss);
            }
            for (int64_t s = 0; s < 30; s++)
                assert_true(fabs(a.loss[s] - b.loss[s]) <= 1e-5 * fabs(a.loss[s]));
            double worst = 0;
            for (size_t i = 0; i < a.n_params; i++)
                worst = nan_max(worst, fabs((double)a.params[i] - b.params[i]));
            if (comm_rank(g_world) == 0)
                printf("case %d, node %s vs MPI_Allreduce: max |dparam| %.2e\n", c,
                       sliced ? "sliced gradients" : "summed gradients", worst);
            assert_true(worst < 1e-4);
            train_result_free(&b);
        }
        train_result_free(&a);
    }
}

/* The first element of p (n) that is not (i mod 97)/2 + add, or n if none. */
static size_t first_wrong(const float *p, size_t n, float add)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (float)(i % 97) * 0.5f + add)
            return i;
    return n;
}

static void test_node_params_published_whole(void **state)
{
    (void)state;
    /* Node mode keeps one parameter vector per node: each rank writes its
     * slice (initial values, then its optimizer step, in place) and the
     * others read the whole of it. reduction_params_ready and reduction_step
     * must hold every rank until every slice is written: here the ranks after
     * the first write theirs 50 ms late, so a rank let through early reads
     * their old values. */
    struct config cfg;
    small_config(&cfg, "publish");
    cfg.optim = OPT_SGD;
    cfg.lr = 1.0;
    struct vae m;
    long image[3] = {0, 0, 0};
    assert_int_equal(vae_init(&m, &cfg, DIM, image, BATCH), 0);
    struct reduction r;
    assert_int_equal(reduction_init(&r, g_world, &cfg, &m), 0);
    float *p = reduction_params(&r), *g = reduction_grads(&r);
    if (!p) { /* one rank, or no node mode: nothing shared */
        assert_true(comm_size(g_world) == 1 || !r.node);
        reduction_free(&r);
        vae_free(&m);
        return;
    }
    struct optim o;
    assert_int_equal(optim_init_slice(&o, &cfg, m.n_params, r.lo, r.hi, 10), 0);
    const struct timespec late = {0, 50 * 1000 * 1000};
    for (int round = 0; round < 3; round++) {
        if (comm_rank(g_world) > 0)
            nanosleep(&late, NULL);
        for (size_t i = r.lo; i < r.hi; i++) {
            if (round == 0)
                p[i] = (float)(i % 97) * 0.5f;
            g[i] = -1.0f; /* SGD with lr 1: each step adds 1 */
        }
        if (round == 0)
            reduction_params_ready(&r);
        else
            reduction_step(&r, &o, p, g);
        assert_int_equal(first_wrong(p, m.n_params, (float)round), m.n_params);
        comm_barrier(g_world); /* every rank has read the vector, as backward has before a step */
    }
    optim_free(&o);
    reduction_free(&r);
    vae_free(&m);
}

/*
 * What the trainer sets up, as properties: each epoch a new permutation of
 * the rank's samples (a fixed order every epoch would train on the same
 * batches), and the schedule's length in steps, epochs x steps per epoch
 * (in epochs, a cosine schedule would reach its floor after a few steps).
 */
static void test_trainer_epochs_and_schedule(void **state)
{
    (void)state;
    struct config cfg;
    small_config(&cfg, "trainer-props");
    cfg.epochs = 3;
    struct trainer t;
    assert_int_equal(trainer_init(&t, &cfg, g_world), 0);
    assert_int_equal(t.opt.total_steps, 3 * (long)t.steps_per_epoch);
    assert_int_equal(trainer_epoch(&t, 0), 0);
    size_t n = t.epoch_buf.n_rows;
    uint32_t *first = malloc((n + 1) * sizeof *first);
    assert_non_null(first);
    memcpy(first, t.epoch_buf.ids, n * sizeof *first);
    assert_int_equal(trainer_epoch(&t, 1), 0);
    assert_int_equal(t.epoch_buf.n_rows, n);
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += t.epoch_buf.ids[i] == first[i];
    double s = (double)same, m = (double)n;
    comm_allreduce_sum_f64(g_world, &s, 1);
    comm_allreduce_sum_f64(g_world, &m, 1);
    if (s > 0.5 * m)
        fail_msg("epochs 0 and 1 put %.0f of %.0f samples at the same place: the shuffle does not change", s,
                 m);
    free(first);
    trainer_free(&t);
}

int main(int argc, char **argv)
{
    g_world = comm_init(&argc, &argv);
    test_dir_setup(g_world, g_dir, "vae_test_dist", N_TRAIN, N_TEST, DIM, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shuffle_exactly_once_and_rank_invariant),
        cmocka_unit_test(test_float_mode_matches_one_rank),
        cmocka_unit_test(test_reproducible_bit_identical),
        cmocka_unit_test(test_conv_reproducible_bit_identical),
        cmocka_unit_test(test_sgd_float_fixed_and_one_rank_agree),
        cmocka_unit_test(test_kl_warmup_first_steps),
        cmocka_unit_test(test_overlap_and_blocking_agree),
        cmocka_unit_test(test_node_shared_and_allreduce_agree),
        cmocka_unit_test(test_node_params_published_whole),
        cmocka_unit_test(test_trainer_epochs_and_schedule),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* A failure on any rank fails the job. */
    rc = test_dir_finish(g_world, rc, g_dir);
    comm_finalize();
    return rc;
}
