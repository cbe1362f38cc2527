/*
 * Checkpoints and restart, under mpiexec with P = 1, 2, 4 (reproducible
 * mode, so "nothing lost" means bit-identical final parameters):
 *   - stop at step 20, resume to 40 == 40 straight;
 *   - the same in float mode on the same P, where each rank steps its slice
 *     of the optimizer state (comm.shared_memory);
 *   - the P-rank checkpoint resumed on 1 rank (elastic) == 40 straight;
 *   - latest checkpoint with flipped bytes, or truncated: detected on every
 *     rank, resume falls back to the previous one and still ends identical;
 *   - a model-shape mismatch fails, naming the tensor;
 *   - an unwritable checkpoint directory fails cleanly on every rank and
 *     leaves the committed checkpoints as they were;
 *   - a checkpoint whose rename into place fails leaves `latest` naming the
 *     previous one;
 *   - optimizer state held in uneven slices (node mode) saved, loaded into
 *     other slices and whole on one rank; a NaN in one slice stops all;
 *   - values written with O_DIRECT (the aligned middle of each rank's slice)
 *     read back as those written through MPI-IO, slices not 4 KiB-aligned.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "comm/comm.h"
#include "core/config.h"
#include "data/ckpt.h"
#include "data/dataset.h"
#include "data/h5util.h"
#include "model/vae.h"
#include "optim/optim.h"
#define VAE_TEST_MPI_ASSERT
#include "testutil.h"
#include "train/train.h"

static struct comm *g_world;
static char g_dir[256];
static struct train_result g_straight; /* 40 uninterrupted steps */

static void small_config(struct config *cfg, const char *run)
{
    config_defaults(cfg);
    snprintf(cfg->data_path, sizeof cfg->data_path, "%s/data.h5", g_dir);
    snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s/%s", g_dir, run);
    cfg->hidden.v[0] = 12;
    cfg->latent = 3;
    cfg->batch_size = 32;
    cfg->micro_batch = 8;
    cfg->reproducible = 1;
    cfg->epochs = 10;
    cfg->log_every = 100;
    cfg->ckpt_every_seconds = 0;
    cfg->ckpt_every_steps = 10;
    cfg->ckpt_keep = 5;
}

static void expect_same_params(const struct train_result *r, const char *what)
{
    if (comm_rank(g_world) != 0)
        return;
    assert_int_equal(r->n_params, g_straight.n_params);
    assert_int_equal(r->final_step, 40);
    assert_memory_equal(r->params, g_straight.params, r->n_params * sizeof(float));
    printf("%s: final parameters bit-identical to the uninterrupted run\n", what);
}

static int setup(void **state)
{
    (void)state;
    struct config cfg;
    small_config(&cfg, "straight");
    cfg.max_steps = 40;
    return train_run(&cfg, g_world, "none", &g_straight);
}

static int teardown(void **state)
{
    (void)state;
    train_result_free(&g_straight);
    return 0;
}

/* Train the first 20 steps of run `name` (checkpoints at 10 and 20). */
static void first_half(const char *name)
{
    struct config cfg;
    small_config(&cfg, name);
    cfg.max_steps = 20;
    struct train_result r;
    assert_int_equal(train_run(&cfg, g_world, "none", &r), 0);
    train_result_free(&r);
}

static void second_half(const char *name, const struct comm *c, struct train_result *r)
{
    struct config cfg;
    small_config(&cfg, name);
    cfg.max_steps = 40;
    assert_int_equal(train_run(&cfg, c, "auto", r), 0);
}

static void test_resume_exact(void **state)
{
    (void)state;
    first_half("resume");
    struct train_result r;
    second_half("resume", g_world, &r);
    assert_int_equal(r.n_steps, 20);
    expect_same_params(&r, "stop at 20, resume to 40");
    train_result_free(&r);
}

static void test_resume_exact_float_sliced_optimizer(void **state)
{
    (void)state;
    /* Float mode on P ranks of one node: each rank steps its slice of the
     * optimizer state (comm.shared_memory), so each rank writes its slice.
     * Stop at 20 and resume to 40 on the same P == 40 straight, with the
     * node's gradients summed and sliced (comm.sliced_gradients). */
    for (int sliced = 0; sliced < 2; sliced++) {
        struct config cfg;
        char name[32];
        snprintf(name, sizeof name, "float_straight%d", sliced);
        small_config(&cfg, name);
        cfg.reproducible = 0;
        cfg.sliced_gradients = sliced ? SLICED_TRUE : SLICED_FALSE;
        cfg.max_steps = 40;
        struct train_result straight, r;
        assert_int_equal(train_run(&cfg, g_world, "none", &straight), 0);
        snprintf(name, sizeof name, "float_resume%d", sliced);
        small_config(&cfg, name);
        cfg.reproducible = 0;
        cfg.sliced_gradients = sliced ? SLICED_TRUE : SLICED_FALSE;
        cfg.max_steps = 20;
        assert_int_equal(train_run(&cfg, g_world, "none", &r), 0);
        train_result_free(&r);
        cfg.max_steps = 40;
        assert_int_equal(train_run(&cfg, g_world, "auto", &r), 0);
        assert_int_equal(r.n_steps, 20);
        assert_memory_equal(r.params, straight.params, r.n_params * sizeof(float));
        train_result_free(&r);
        train_result_free(&straight);
    }
}

static void test_resume_elastic_on_one_rank(void **state)
{
    (void)state;
    first_half("elastic");
    if (comm_rank(g_world) == 0) {
        struct train_result r;
        second_half("elastic", comm_self(), &r);
        expect_same_params(&r, "checkpoint of P ranks resumed on 1 rank");
        train_result_free(&r);
    }
    comm_barrier(g_world);
}

static void test_conv_resume_elastic(void **state)
{
    (void)state;
    /* A conv model: 40 straight steps on P ranks against 20 on P ranks resumed to 40 on 1 rank. */
    struct config cfg;
    struct train_result straight, r;
    small_config(&cfg, "conv_straight");
    conv_model(&cfg);
    cfg.max_steps = 40;
    assert_int_equal(train_run(&cfg, g_world, "none", &straight), 0);
    small_config(&cfg, "conv_elastic");
    conv_model(&cfg);
    cfg.max_steps = 20;
    assert_int_equal(train_run(&cfg, g_world, "none", &r), 0);
    train_result_free(&r);
    if (comm_rank(g_world) == 0) {
        cfg.max_steps = 40;
        assert_int_equal(train_run(&cfg, comm_self(), "auto", &r), 0);
        assert_int_equal(r.n_steps, 20);
        assert_memory_equal(r.params, straight.params, r.n_params * sizeof(float));
        printf("conv checkpoint of %d ranks resumed on 1 rank: bit-identical to the uninterrupted run\n",
               comm_size(g_world));
        train_result_free(&r);
    }
    comm_barrier(g_world);
    train_result_free(&straight);
}

/* Damage ckpt/step-00000020.h5 of run `name`: flip bytes or truncate. */
static void damage(const char *name, int truncate_it)
{
    if (comm_rank(g_world) == 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s/ckpt/step-00000020.h5", g_dir, name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (truncate_it) {
            assert_int_equal(truncate(path, st.st_size / 2), 0);
        } else {
            /* Flip bytes in the last quarter: the parameter and state data. */
            int fd = open(path, O_RDWR);
            unsigned char b[64];
            off_t at = st.st_size - st.st_size / 4;
            assert_int_equal(pread(fd, b, sizeof b, at), (ssize_t)sizeof b);
            for (size_t i = 0; i < sizeof b; i++)
                b[i] ^= 0x5a;
            assert_int_equal(pwrite(fd, b, sizeof b, at), (ssize_t)sizeof b);
            close(fd);
        }
    }
    comm_barrier(g_world);
}

static void test_flipped_bytes_fall_back(void **state)
{
    (void)state;
    first_half("flipped");
    damage("flipped", 0);
    struct train_result r;
    second_half("flipped", g_world, &r);
    assert_int_equal(r.n_steps, 30); /* resumed from step 10 */
    expect_same_params(&r, "flipped bytes in the latest checkpoint, fallback to step 10");
    train_result_free(&r);
}

static void test_truncated_falls_back(void **state)
{
    (void)state;
    first_half("truncated");
    damage("truncated", 1);
    struct train_result r;
    second_half("truncated", g_world, &r);
    assert_int_equal(r.n_steps, 30);
    expect_same_params(&r, "truncated latest checkpoint, fallback to step 10");
    train_result_free(&r);
}

static void test_shape_mismatch_named(void **state)
{
    (void)state;
    struct config cfg;
    small_config(&cfg, "straight");
    cfg.hidden.v[0] = 13;
    cfg.max_steps = 50;
    char path[512];
    snprintf(path, sizeof path, "%s/straight/ckpt/step-00000040.h5", g_dir);
    struct train_result r;
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s/mismatch", g_dir);
    assert_int_equal(train_run(&cfg, g_world, path, &r), 1);
    train_result_free(&r);
}

/* The model and optimizer of small_config, and the checkpoint content of their buffers. */
struct saved {
    struct config cfg;
    struct vae m;
    struct optim o;
    struct ckpt_buffer buf[3];
    struct ckpt_content ct;
};

static void saved_init(struct saved *s)
{
    small_config(&s->cfg, "straight");
    assert_int_equal(vae_init(&s->m, &s->cfg, 16, NULL, 4), 0);
    assert_int_equal(optim_init(&s->o, &s->cfg, s->m.n_params, 100), 0);
    s->buf[0] = (struct ckpt_buffer){"/model/params", s->m.params, s->m.n_params, 0, 0, 0};
    s->buf[1] = (struct ckpt_buffer){"/optim/state0", s->o.state[0], s->o.n, 0, 0, 0};
    s->buf[2] = (struct ckpt_buffer){"/optim/state1", s->o.state[1], s->o.n, 0, 0, 1};
    s->ct =
        (struct ckpt_content){s->m.tensor, s->m.n_tensors, s->buf, 1 + s->o.n_states, 0, 0, 0, NULL, NULL};
}

/* ckpt_save of the buffers as step `step` into run. */
static int saved_save(struct saved *s, const char *run, int64_t step)
{
    struct ckpt_meta meta = {.step = step,
                             .steps_skipped = step, /* optim_t 0: none taken */
                             .epoch = (long)(step / 20),
                             .n_params = s->m.n_params,
                             .optim = s->o.kind,
                             .data_n_train = 256,
                             .data_n_dim = 16};
    return ckpt_save(g_world, run, &meta, &s->ct, s->cfg.ckpt_keep);
}

static void saved_free(struct saved *s)
{
    optim_free(&s->o);
    vae_free(&s->m);
}

static void test_unwritable_dir_keeps_checkpoints(void **state)
{
    (void)state;
    /* ckpt/ replaced by a plain file: root ignores permissions, not this. */
    char run[512], ckdir[600], moved[600];
    snprintf(run, sizeof run, "%s/straight", g_dir);
    snprintf(ckdir, sizeof ckdir, "%s/ckpt", run);
    snprintf(moved, sizeof moved, "%s/ckpt.saved", run);
    if (comm_rank(g_world) == 0) {
        assert_int_equal(rename(ckdir, moved), 0);
        FILE *f = fopen(ckdir, "w");
        fclose(f);
    }
    comm_barrier(g_world);
    struct saved sv;
    saved_init(&sv);
    assert_int_equal(saved_save(&sv, run, 41), -1);
    if (comm_rank(g_world) == 0) {
        unlink(ckdir);
        assert_int_equal(rename(moved, ckdir), 0);
    }
    comm_barrier(g_world);
    /* The committed checkpoint still loads, bit for bit. */
    char path[700];
    snprintf(path, sizeof path, "%s/step-00000040.h5", ckdir);
    struct ckpt_meta want = {.optim = sv.o.kind, .data_n_train = 256, .data_n_dim = 16}, got;
    assert_int_equal(ckpt_load(g_world, path, &want, &sv.ct, &got), 0);
    assert_int_equal(got.step, 40);
    ckpt_meta_free(&got);
    if (comm_rank(g_world) == 0)
        assert_memory_equal(sv.m.params, g_straight.params, sv.m.n_params * sizeof(float));
    saved_free(&sv);
}

/* Every optimizer, the last kind included, round-trips through a checkpoint
 * with its state buffers: saved at step 5 and loaded bit for bit. */
static void test_every_optimizer_round_trip(void **state)
{
    (void)state;
    for (int kind = 0; kind < N_OPTIMS; kind++) {
        char run[512], dir[600], path[700];
        snprintf(run, sizeof run, "%s/optim-%d", g_dir, kind);
        snprintf(dir, sizeof dir, "%s/ckpt", run);
        if (comm_rank(g_world) == 0) {
            assert_int_equal(mkdir(run, 0755), 0);
            assert_int_equal(mkdir(dir, 0755), 0);
        }
        comm_barrier(g_world);
        struct saved sv;
        small_config(&sv.cfg, "unused");
        sv.cfg.optim = kind;
        sv.cfg.momentum = 0.5; /* sgd keeps a state only with momentum */
        assert_int_equal(vae_init(&sv.m, &sv.cfg, 16, NULL, 4), 0);
        assert_int_equal(optim_init(&sv.o, &sv.cfg, sv.m.n_params, 100), 0);
        assert_true(sv.o.n_states >= 1);
        for (size_t s = 0; s < sv.o.n_states; s++)
            for (size_t i = 0; i < sv.o.n; i++)
                sv.o.state[s][i] = 0.25f * (float)(i % 7) + (float)s;
        sv.buf[0] = (struct ckpt_buffer){"/model/params", sv.m.params, sv.m.n_params, 0, 0, 0};
        for (size_t s = 0; s < sv.o.n_states; s++)
            sv.buf[1 + s] =
                (struct ckpt_buffer){s ? "/optim/state1" : "/optim/state0", sv.o.state[s], sv.o.n, 0, 0,
                                     optim_state_nonneg(&sv.o, s)};
        sv.ct = (struct ckpt_content){sv.m.tensor, sv.m.n_tensors, sv.buf, 1 + sv.o.n_states, 0, 0,
                                      0,           NULL,           NULL};
        struct ckpt_meta meta = {.step = 5,
                                 .optim = kind,
                                 .optim_t = 5,
                                 .n_params = sv.m.n_params,
                                 .data_n_train = 256,
                                 .data_n_dim = 16};
        assert_int_equal(ckpt_save(g_world, run, &meta, &sv.ct, 3), 0);
        float *want = malloc(sv.o.n * sizeof *want);
        assert_non_null(want);
        memcpy(want, sv.o.state[sv.o.n_states - 1], sv.o.n * sizeof *want);
        memset(sv.o.state[sv.o.n_states - 1], 0, sv.o.n * sizeof *want);
        snprintf(path, sizeof path, "%s/step-00000005.h5", dir);
        struct ckpt_meta ask = {.optim = kind, .data_n_train = 256, .data_n_dim = 16}, got;
        if (ckpt_load(g_world, path, &ask, &sv.ct, &got))
            fail_msg("optimizer %s (kind %d): its checkpoint does not load", config_optim_name(kind), kind);
        assert_int_equal(got.optim, kind);
        ckpt_meta_free(&got);
        assert_memory_equal(sv.o.state[sv.o.n_states - 1], want, sv.o.n * sizeof *want);
        free(want);
        saved_free(&sv);
    }
}

static void test_failed_rename_keeps_latest(void **state)
{
    (void)state;
    /* A directory where the next checkpoint goes: its data are written, the
     * rename into place fails, and `latest` must still name the previous
     * checkpoint (it is replaced only after the checkpoint is in place). */
    char run[512], blocker[700], latest[700];
    snprintf(run, sizeof run, "%s/straight", g_dir);
    snprintf(blocker, sizeof blocker, "%s/ckpt/step-00000042.h5", run);
    snprintf(latest, sizeof latest, "%s/ckpt/latest", run);
    if (comm_rank(g_world) == 0) {
        assert_int_equal(mkdir(blocker, 0755), 0);
        char inside[800];
        snprintf(inside, sizeof inside, "%s/x", blocker);
        FILE *f = fopen(inside, "w");
        assert_true(f != NULL);
        fclose(f);
    }
    comm_barrier(g_world);
    struct saved sv;
    saved_init(&sv);
    assert_int_equal(saved_save(&sv, run, 42), -1);
    if (comm_rank(g_world) == 0) {
        char name[64] = "";
        FILE *f = fopen(latest, "r");
        assert_true(f != NULL);
        assert_int_equal(fscanf(f, "%63s", name), 1);
        fclose(f);
        printf("rename into place failed: latest still names %s\n", name);
        assert_int_equal(strcmp(name, "step-00000040.h5"), 0);
        char cmd[800];
        snprintf(cmd, sizeof cmd, "rm -rf %s", blocker);
        assert_int_equal(system(cmd), 0);
    }
    comm_barrier(g_world);
    saved_free(&sv);
}

/* One flat buffer written three ways into one file, on every rank count:
 * O_DIRECT straight from aligned memory, O_DIRECT through the stage (memory
 * off 4 KiB boundaries), and MPI-IO. The ranks' slices start and end off
 * 4 KiB boundaries of the file. */
static void test_direct_write_matches_buffered(void **state)
{
    (void)state;
    /* Past one 64 MiB request on 1 rank, so that both ways take more than one. */
    const size_t n = ((size_t)64 << 20) / sizeof(float) + 3075;
    float *want = malloc(n * sizeof *want), *back = malloc(n * sizeof *back);
    float *aligned = aligned_alloc(4096, (n / 1024 + 2) * 4096), *odd = aligned + 1;
    assert_true(want && back && aligned);
    for (size_t i = 0; i < n; i++)
        want[i] = (float)i * 0.5f - 7.0f;
    char path[320];
    snprintf(path, sizeof path, "%s/direct.h5", g_dir);
    hid_t fapl = h5_fapl_create(g_world);
    assert_true(H5Pset_alignment(fapl, 4096, 4096) >= 0);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    assert_true(f >= 0);
    size_t lo, hi, direct[2] = {0, 0};
    dataset_block(n, 1, comm_size(g_world), comm_rank(g_world), &lo, &hi);
    struct comm *node = comm_split_node(g_world);
    const char *names[3] = {"/direct", "/staged", "/buffered"};
    memcpy(aligned, want, n * sizeof *want);
    assert_int_equal(h5_write_floats(f, names[0], n, lo, hi - lo, aligned + lo, node, path, &direct[0]), 0);
    memcpy(odd, want, n * sizeof *want);
    assert_int_equal(h5_write_floats(f, names[1], n, lo, hi - lo, odd + lo, node, path, &direct[1]), 0);
    assert_int_equal(h5_write_floats(f, names[2], n, lo, hi - lo, odd + lo, node, NULL, NULL), 0);
    comm_free(node);
    assert_true(H5Fclose(f) >= 0);

    /* Where the file system takes O_DIRECT, all but the unaligned ends went that way. */
    int fd = open(path, O_RDONLY | O_DIRECT);
    for (int k = 0; k < 2; k++)
        if (fd >= 0)
            assert_true(direct[k] + 2 * 4096 >= (hi - lo) * sizeof *want);
        else
            assert_int_equal(direct[k], 0);
    if (fd >= 0)
        close(fd);
    /* Each dataset read with O_DIRECT and without, into aligned memory and
     * not, from an unaligned start: the read's head, middle and tail. */
    f = h5_open_read(g_world, path);
    assert_true(f >= 0);
    for (int k = 0; k < 12; k++) {
        size_t at = (size_t)comm_rank(g_world) * 999 + 1;
        float *into = k % 4 < 2 ? aligned : back;
        memset(into, 0, n * sizeof *into);
        assert_int_equal(h5_read_floats(f, path, names[k / 4], at, n - at, into + at, k % 2), 0);
        for (size_t i = at; i < n; i++)
            if (into[i] != want[i])
                fail_msg("%s[%zu] = %g, written %g (direct read %d, aligned %d; rank %d of %d)", names[k / 4],
                         i, into[i], want[i], k % 2, into == aligned, comm_rank(g_world), comm_size(g_world));
    }
    H5Fclose(f);
    free(want);
    free(back);
    free(aligned);
}

/* Rank r of p holds [cut(r), cut(r + 1)) of n: uneven slices that tile [0, n). */
static size_t cut(size_t n, int r, int p, int reversed)
{
    size_t k = (size_t)(reversed ? p - r : r);
    size_t at = n * k * k / ((size_t)p * (size_t)p);
    return reversed ? n - at : at;
}

/* A state buffer held in slices, as node mode holds it, saved on P ranks;
 * loaded on P ranks into other slices, and on one rank whole. A non-finite
 * value in one rank's slice stops the save on every rank (the committed file
 * stays), and a negative one where the state must be >= 0 stops every
 * rank's load, although only the first slice holds one. */
static void test_sliced_state_roundtrip(void **state)
{
    (void)state;
    const size_t n = 5003;
    int p = comm_size(g_world), r = comm_rank(g_world);
    char run[300], path[340];
    snprintf(run, sizeof run, "%s/sliced", g_dir);
    snprintf(path, sizeof path, "%s/ckpt/step-00000003.h5", run);
    if (r == 0) {
        char ckpt_dir[320];
        snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run);
        assert_int_equal(mkdir(run, 0755), 0);
        assert_int_equal(mkdir(ckpt_dir, 0755), 0);
    }
    comm_barrier(g_world);
    float *params = calloc(n, sizeof *params), *whole = malloc(n * sizeof *whole);
    assert_true(params && whole);
    struct tensor_view layout = {"w", 0, 1, n, {1, n, 0, 0}};
    struct ckpt_meta meta = {.step = 3,
                             .n_params = n,
                             .optim = OPT_SGD,
                             .optim_t = 3,
                             .config = "",
                             .data_n_train = 10,
                             .data_n_dim = 6};
    for (int bad = 0; bad < 2; bad++) {
        size_t lo = cut(n, r, p, 0), hi = cut(n, r + 1, p, 0);
        float *mine = malloc((hi - lo + 1) * sizeof *mine);
        assert_non_null(mine);
        for (size_t i = lo; i < hi; i++)
            mine[i - lo] = bad && i == n - 2 ? NAN : (float)i * 0.25f - 3.0f;
        struct ckpt_buffer buf[2] = {{"/model/params", params, n, 0, 0, 0},
                                     {"/optim/state0", mine, n, lo, hi, 0}};
        struct ckpt_content ct = {&layout, 1, buf, 2, lo, hi, 0, NULL, NULL};
        assert_int_equal(ckpt_save(g_world, run, &meta, &ct, 3), bad ? -1 : 0);
        free(mine);

        /* Other slices: rank r now holds what rank p - 1 - r held. */
        lo = cut(n, r, p, 1), hi = cut(n, r + 1, p, 1);
        mine = malloc((hi - lo + 1) * sizeof *mine);
        assert_non_null(mine);
        buf[1] = (struct ckpt_buffer){"/optim/state0", mine, n, lo, hi, bad};
        ct.lo = lo, ct.hi = hi;
        struct ckpt_meta want = {.optim = OPT_SGD};
        assert_int_equal(ckpt_load(g_world, path, &want, &ct, NULL), bad ? -1 : 0);
        for (size_t i = lo; !bad && i < hi; i++)
            if (mine[i - lo] != (float)i * 0.25f - 3.0f)
                fail_msg("state0[%zu] = %g loaded into the slice [%zu, %zu) of rank %d of %d", i,
                         mine[i - lo], lo, hi, r, p);
        free(mine);
        if (r == 0) { /* whole, on one rank */
            buf[1] = (struct ckpt_buffer){"/optim/state0", whole, n, 0, 0, bad};
            ct.lo = ct.hi = 0;
            assert_int_equal(ckpt_load(comm_self(), path, &want, &ct, NULL), bad ? -1 : 0);
            for (size_t i = 0; !bad && i < n; i++)
                if (whole[i] != (float)i * 0.25f - 3.0f)
                    fail_msg("state0[%zu] = %g loaded whole on one rank", i, whole[i]);
        }
        comm_barrier(g_world);
    }
    free(params);
    free(whole);
}

int main(int argc, char **argv)
{
    g_world = comm_init(&argc, &argv);
    test_dir_setup(g_world, g_dir, "vae_test_ckpt", 256, 32, 16, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_resume_exact_float_sliced_optimizer),
        cmocka_unit_test(test_resume_elastic_on_one_rank),
        cmocka_unit_test(test_conv_resume_elastic),
        cmocka_unit_test(test_flipped_bytes_fall_back),
        cmocka_unit_test(test_truncated_falls_back),
        cmocka_unit_test(test_shape_mismatch_named),
        cmocka_unit_test(test_unwritable_dir_keeps_checkpoints),
        cmocka_unit_test(test_every_optimizer_round_trip),
        cmocka_unit_test(test_failed_rename_keeps_latest),
        cmocka_unit_test(test_direct_write_matches_buffered),
        cmocka_unit_test(test_sliced_state_roundtrip),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    rc = test_dir_finish(g_world, rc, g_dir);
    comm_finalize();
    return rc;
}
