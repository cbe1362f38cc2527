/*
 * A training step and its state (see trainer.h). Per rank, each step:
 *   batch rows from the epoch buffer, noise ε = Philox(seed, step, sample id)
 *   → forward/backward into the flat gradient → reduction across ranks →
 *   norm of the reduced gradient (identical on every rank, so every rank
 *   decides alike whether to skip a non-finite step) → clip → optimizer on
 *   this rank's slice → the slices shared (node mode).
 */
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/ckpt.h"
#include "data/shuffle.h"

/* The batch shape against the job: P divides B, the micro-batch divides B/P.
 * The checks fail alike on every rank: rank 0 says why. */
static int check_batch(const struct trainer *t)
{
    const struct config *cfg = t->cfg;
    char err[512] = "";
    size_t n_local = (size_t)cfg->batch_size / (size_t)t->size;
    if (config_validate(cfg, err, sizeof err) == 0 && cfg->batch_size % t->size)
        snprintf(err, sizeof err,
                 "[train] batch_size = %ld is not divisible by the %d ranks: the global batch is split "
                 "evenly (HINT: use a batch that is a multiple of the rank count)",
                 cfg->batch_size, t->size);
    else if (!err[0] && cfg->reproducible && n_local % (size_t)cfg->micro_batch)
        snprintf(err, sizeof err,
                 "reproducible mode: micro_batch = %ld must divide the per-rank batch %zu "
                 "(batch_size %ld over %d ranks)",
                 cfg->micro_batch, n_local, cfg->batch_size, t->size);
    if (err[0] && t->rank == 0)
        log_error("config: %s", err);
    return err[0] ? -1 : 0;
}

/* Float data outside [0, 1] under the Bernoulli likelihood trains, but not on
 * what the user meant: say so (rank 0, once). Collective. */
static int check_range(const struct trainer *t)
{
    if (t->info.is_u8 || t->cfg->likelihood != LIK_BERNOULLI)
        return 0;
    const float *x = (const float *)t->train.rows;
    double r[2] = {-INFINITY, -INFINITY}; /* max, -min */
    for (size_t i = 0; i < t->train.n_rows * t->train.n_dim; i++) {
        r[0] = x[i] > r[0] ? x[i] : r[0];
        r[1] = -x[i] > r[1] ? -x[i] : r[1];
    }
    comm_allreduce_max_f64(t->c, r, 2);
    /* Rounding just past the ends (a normalisation's -1e-7) trains; more
     * makes the Bernoulli loss unbounded below, and the run would end in
     * non-finite gradients whose hint (lr, clipping) names the wrong cause. */
    int refuse = r[0] > 1.001 || r[1] > 0.001;
    if (t->rank == 0 && refuse)
        log_error("%s: the training data range over [%g, %g], but model.likelihood = bernoulli models values "
                  "in [0, 1]: training would diverge (HINT: %s, or set model.likelihood = gaussian)",
                  t->cfg->data_path, -r[1], r[0],
                  r[0] <= 255 && r[1] <= 0
                      ? "pixels in 0..255? divide them by 255 (x / 255.0), or store them as "
                        "uint8, which vae_dist scales itself"
                      : "scale the data to [0, 1]");
    else if (t->rank == 0 && (r[0] > 1 || r[1] > 0))
        log_warn(
            "%s: the training data range over [%g, %g], a little outside [0, 1] where model.likelihood = "
            "bernoulli models them",
            t->cfg->data_path, -r[1], r[0]);
    return refuse ? -1 : 0;
}

/* Validate the dataset and read this rank's block of each split. Collective. */
static int read_data(struct trainer *t)
{
    const struct config *cfg = t->cfg;
    if (dataset_open(t->c, cfg->data_path, &t->info))
        return -1;
    if ((size_t)cfg->batch_size > t->info.n_train) {
        if (t->rank == 0)
            log_error("%s: batch_size = %ld exceeds the %zu training samples", cfg->data_path,
                      cfg->batch_size, t->info.n_train);
        return -1;
    }
    t->steps_per_epoch = t->info.n_train / (size_t)cfg->batch_size;
    if (dataset_read_shard(t->c, cfg->data_path, &t->info, "train", 0, 1, &t->train))
        return -1;
    /* The training data's identity for resumes, of any file: the stored crc32 was checked above. */
    shard_checksums(t->c, &t->train, &t->info.crc32_train, &t->info.crc32_labels);
    if (t->info.n_test && dataset_read_shard(t->c, cfg->data_path, &t->info, "test", 0, EVAL_CHUNK, &t->test))
        return -1;
    return check_range(t);
}

int trainer_init(struct trainer *t, const struct config *cfg, const struct comm *c)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->c = c;
    t->rank = comm_rank(c);
    t->size = comm_size(c);
    t->epoch_loaded = -1;
    if (check_batch(t) || read_data(t))
        return -1;
    t->n_local = (size_t)cfg->batch_size / (size_t)t->size;
    size_t max_b = t->n_local > EVAL_CHUNK ? t->n_local : EVAL_CHUNK;
    long image[3] = {t->info.image_channels, t->info.image_rows, t->info.image_cols};
    int ok = vae_init_unzeroed(&t->m, cfg, t->info.n_dim, image, max_b) == 0; /* the reduction zeroes grads */
    if (ok) {
        t->x = malloc(t->n_local * t->info.n_dim * sizeof *t->x);
        t->eps = malloc(t->n_local * t->m.n_latent * sizeof *t->eps);
        ok = t->x && t->eps;
    }
    if (!comm_agree(c, ok))
        return -1;
    if (!comm_agree(c, reduction_init(&t->red, c, cfg, &t->m) == 0)) {
        log_error("out of memory for the gradient reduction");
        return -1;
    }
    /* The state of the parameters this rank steps: its slice in node mode. */
    long total = cfg->epochs * (long)t->steps_per_epoch;
    if (!comm_agree(c, optim_init_slice(&t->opt, cfg, t->m.n_params, t->red.lo, t->red.hi, total) == 0))
        return -1;
    float *shared = reduction_grads(&t->red);
    if (shared) { /* backward writes where the other ranks read: no exchange copy */
        free(t->m.grads);
        t->m.grads = shared;
    }
    float *node_params = reduction_params(&t->red);
    if (node_params) { /* the node's ranks read one vector: each fills its slice (its own buffer unwritten) */
        free(t->m.params);
        t->m.params = node_params;
        t->params_shared = 1;
        vae_init_params_range(&t->m, node_params, t->red.lo, t->red.hi, cfg->seed);
    } else {
        vae_init_params(&t->m, cfg->seed);
    }
    reduction_params_ready(&t->red);
    return 0;
}

void trainer_free(struct trainer *t)
{
    if (t->m.grads == reduction_grads(&t->red))
        t->m.grads = NULL; /* the window's, not the model's */
    if (t->params_shared)
        t->m.params = NULL; /* the window's */
    reduction_free(&t->red);
    free(t->x);
    free(t->eps);
    optim_free(&t->opt);
    vae_free(&t->m);
    shard_free(&t->epoch_buf);
    shard_free(&t->test);
    shard_free(&t->train);
}

/* The checkpoint's buffers: the parameters, then each optimizer state. */
static struct ckpt_content content_of(struct trainer *t, struct ckpt_buffer buf[3])
{
    static const char *const state_names[2] = {"/optim/state0", "/optim/state1"};
    /* Node mode: this rank's slice of the shared parameters and of the state. */
    int part = t->opt.hi - t->opt.lo < t->opt.n;
    buf[0] = (struct ckpt_buffer){"/model/params",      t->m.params + (part ? t->opt.lo : 0),
                                  t->m.n_params,        part ? t->opt.lo : 0,
                                  part ? t->opt.hi : 0, 0};
    for (size_t s = 0; s < t->opt.n_states; s++)
        buf[1 + s] =
            (struct ckpt_buffer){state_names[s],       t->opt.state[s],      t->opt.n,
                                 part ? t->opt.lo : 0, part ? t->opt.hi : 0, optim_state_nonneg(&t->opt, s)};
    struct ckpt_content ct = {t->m.tensor, t->m.n_tensors, buf, 1 + t->opt.n_states, 0, 0, 0, NULL, NULL};
    reduction_write_range(&t->red, &ct.lo, &ct.hi);
    return ct;
}

/* 1, with a line appended to list, when both CRCs are known and differ; else 0. */
static int crc_differs(char *list, size_t list_bytes, const char *what, long was, long now, const char *path)
{
    if (was < 0 || now < 0 || was == now)
        return 0;
    size_t used = strlen(list);
    snprintf(list + used, list_bytes - used, "\n  %s crc32 %08lx, now %08lx (%s)", what, (unsigned long)was,
             (unsigned long)now, path);
    return 1;
}

/*
 * A resume continues the checkpointed run only with the same keys fixed on
 * resume and the same training data: otherwise it is refused with the list
 * of differences, unless --resume-override. Other changes are named. Rank 0
 * speaks; every rank decides alike from the same header.
 */
static int check_resumed_config(const struct trainer *t, const struct ckpt_meta *got)
{
    struct config was;
    char err[1024], fixed[4096], other[4096];
    config_defaults(&was);
    if (config_from_string(&was, got->config, err, sizeof err)) {
        log_error("the checkpoint of step %lld: %s", (long long)got->step, err);
        return -1;
    }
    int n_fixed = config_diff(&was, t->cfg, 1, fixed, sizeof fixed);
    int n_other = config_diff(&was, t->cfg, 0, other, sizeof other);
    n_fixed += crc_differs(fixed, sizeof fixed, "training data: checkpoint /train/x", got->data_crc32,
                           t->info.crc32_train, t->cfg->data_path);
    n_fixed += crc_differs(fixed, sizeof fixed, "training labels: checkpoint /train/y",
                           got->data_labels_crc32, t->info.crc32_labels, t->cfg->data_path);
    if (n_fixed && !t->cfg->resume_override) {
        if (t->rank == 0)
            log_error("refusing to resume step %lld: this run differs from the checkpoint's in what a resume "
                      "must keep:%s\nHINT: use another run.dir (or --resume none) for a new run, or "
                      "--resume-override to resume anyway",
                      (long long)got->step, fixed);
        return -1;
    }
    if (n_fixed && t->rank == 0)
        log_warn("--resume-override: resuming step %lld although the run differs from the checkpoint's:%s",
                 (long long)got->step, fixed);
    if (n_other)
        log_info("resuming step %lld with %d key%s changed since the checkpoint:%s", (long long)got->step,
                 n_other, n_other == 1 ? "" : "s", other);
    return 0;
}

/* ckpt_content.accept: the resumed run's config against the checkpoint's, before any tensor is read. */
static int accept_config(const struct ckpt_meta *got, const void *arg)
{
    return check_resumed_config(arg, got);
}

int trainer_resume(struct trainer *t, const char *resume, int64_t *step)
{
    struct ckpt_buffer buf[3];
    struct ckpt_content ct = content_of(t, buf);
    ct.accept = accept_config;
    ct.accept_arg = t;
    struct ckpt_meta got, want = {
                              .optim = t->opt.kind,
                              .data_n_train = (long)t->info.n_train,
                              .data_n_dim = (long)t->info.n_dim,
                          };
    *step = 0;
    if (!strcmp(resume, "none"))
        return 0;
    if (!strcmp(resume, "auto")) {
        int rc = ckpt_resume_auto(t->c, t->cfg->run_dir, &want, &ct, &got);
        if (rc <= 0)
            return rc;
    } else if (ckpt_load(t->c, resume, &want, &ct, &got)) {
        return -1;
    }
    reduction_params_ready(&t->red); /* every rank loaded its slice */
    t->opt.t = got.optim_t;
    t->skipped = got.steps_skipped >= 0 ? got.steps_skipped : got.step - got.optim_t;
    *step = got.step;
    ckpt_meta_free(&got);
    return 0;
}

int trainer_save(struct trainer *t, int64_t step)
{
    double t0 = timer_now();
    struct ckpt_buffer buf[3];
    struct ckpt_content ct = content_of(t, buf);
    ct.buffered = !t->cfg->ckpt_direct_io;
    struct ckpt_meta meta = {
        .step = step,
        .epoch = (long)(step / (int64_t)t->steps_per_epoch),
        .seed = t->cfg->seed,
        .n_params = t->m.n_params,
        .optim = t->opt.kind,
        .optim_t = t->opt.t,
        .steps_skipped = t->skipped,
        .config = config_to_string(t->cfg),
        .data_n_train = (long)t->info.n_train,
        .data_n_dim = (long)t->info.n_dim,
        .image_channels = t->info.image_channels,
        .image_rows = t->info.image_rows,
        .image_cols = t->info.image_cols,
        .data_crc32 = t->info.crc32_train,
        .data_labels_crc32 = t->info.crc32_labels,
    };
    int rc = ckpt_save(t->c, t->cfg->run_dir, &meta, &ct, t->cfg->ckpt_keep);
    free(meta.config);
    t->t_phase[PH_CKPT] += timer_now() - t0;
    return rc;
}

int trainer_epoch(struct trainer *t, long epoch)
{
    if (t->epoch_loaded == epoch)
        return 0;
    shard_free(&t->epoch_buf);
    if (shuffle_epoch(t->c, &t->train, t->info.n_train, (size_t)t->cfg->batch_size, t->cfg->seed,
                      (uint32_t)epoch, t->cfg->shuffle, &t->epoch_buf))
        return -1;
    t->epoch_loaded = epoch;
    return 0;
}

/* x and eps of local samples [k0, k0 + n) of the epoch buffer at global step. */
static void fill_batch(struct trainer *t, size_t k0, size_t n, int64_t step)
{
    shard_rows_to_float(t->x, &t->epoch_buf, k0, n);
    size_t n_z = t->m.n_latent;
    for (size_t i = 0; i < n; i++)
        rng_normal(t->eps + i * n_z, n_z, t->cfg->seed, RNG_NOISE, (uint32_t)step, t->epoch_buf.ids[k0 + i]);
}

/* Float modes: this rank's B/P samples in one pass, summed by the reduction. */
static struct vae_loss gradient_float(struct trainer *t, size_t k0, int64_t step, float beta)
{
    struct vae *m = &t->m;
    double t0 = timer_now();
    fill_batch(t, k0, t->n_local, step);
    double t1 = timer_now();
    m->t_grads = 0;
    reduction_begin(&t->red, m->grads, fault_nan_gradient(step, t->rank, t->size));
    int overlap = reduction_overlaps(&t->red);
    struct vae_loss l =
        vae_forward_backward(m, t->x, t->eps, t->n_local, beta, 1.0f / (float)t->cfg->batch_size,
                             overlap ? reduction_ready : NULL, &t->red);
    double t2 = timer_now();
    reduction_finish(&t->red, m->grads);
    t->t_phase[PH_DATA] += t1 - t0;
    t->t_phase[PH_COMPUTE] += t2 - t1 + t->red.t_grads; /* sliced: the slice's parameter gradients */
    t->t_phase[PH_GRADS] += m->t_grads + t->red.t_grads;
    t->t_phase[PH_WAIT] += timer_now() - t2 - t->red.t_grads;
    return l;
}

/* Reproducible mode: fixed micro-batches, each added in fixed point. */
static struct vae_loss gradient_fixed(struct trainer *t, size_t k0, int64_t step, float beta)
{
    struct vae *m = &t->m;
    size_t mb = (size_t)t->cfg->micro_batch;
    struct vae_loss sum = {0, 0};
    reduction_fixed_clear(&t->red);
    for (size_t k = 0; k < t->n_local; k += mb) {
        double t0 = timer_now();
        fill_batch(t, k0 + k, mb, step);
        double t1 = timer_now();
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
        m->t_grads = 0;
        struct vae_loss l =
            vae_forward_backward(m, t->x, t->eps, mb, beta, 1.0f / (float)t->cfg->batch_size, NULL, NULL);
        reduction_fixed_add(&t->red, m->grads);
        sum.rec += l.rec;
        sum.kl += l.kl;
        t->t_phase[PH_DATA] += t1 - t0;
        t->t_phase[PH_COMPUTE] += timer_now() - t1;
        t->t_phase[PH_GRADS] += m->t_grads;
    }
    double t2 = timer_now();
    reduction_fixed_finish(&t->red, m->grads, fault_nan_gradient(step, t->rank, t->size));
    t->t_phase[PH_WAIT] += timer_now() - t2;
    return sum;
}

/* β of the KL term at `step`: linear warm-up from β/W to β over W steps. */
static float kl_beta(const struct config *cfg, int64_t step)
{
    float beta = (float)cfg->beta;
    if (cfg->kl_warmup_steps > 0 && step < cfg->kl_warmup_steps)
        beta *= (float)(step + 1) / (float)cfg->kl_warmup_steps;
    return beta;
}

struct step_result trainer_step(struct trainer *t, int64_t step)
{
    struct reduction *r = &t->red;
    size_t k0 = (size_t)(step % (int64_t)t->steps_per_epoch) * t->n_local;
    float beta = kl_beta(t->cfg, step);
    struct vae_loss l =
        t->cfg->reproducible ? gradient_fixed(t, k0, step, beta) : gradient_float(t, k0, step, beta);
    double t0 = timer_now();
    struct step_result s = {.rec = l.rec, .kl = l.kl, .norm = reduction_norm(r, t->m.grads)};
    s.finite = isfinite(s.norm);
    if (s.finite) {
        optim_clip(t->m.grads + r->lo, r->hi - r->lo, s.norm, t->cfg->clip_norm);
        reduction_step(r, &t->opt, t->m.params, t->m.grads);
    } else {
        t->skipped++;
    }
    if (fault_diverge(step, t->rank) && !t->params_shared) /* a node's ranks read one copy: none drifts */
        t->m.params[0] += 1e-3f;
    t->t_phase[PH_OPT] += timer_now() - t0;
    return s;
}

void trainer_eval(struct trainer *t, struct eval_result *r)
{
    eval_shard(t->c, &t->m, &t->test, t->cfg->seed, 0, NULL, NULL, r);
}

static uint64_t hash_params(const float *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * sizeof *p; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

void trainer_check_replicas(struct trainer *t, int64_t step)
{
    uint64_t *all = malloc((size_t)t->size * sizeof *all);
    VAE_ASSERT(all);
    comm_allgather_u64(t->c, hash_params(t->m.params, t->m.n_params), all);
    int bad = 0;
    while (++bad < t->size && all[bad] == all[0])
        ;
    if (bad < t->size && t->rank == 0)
        log_error("replica check at step %lld: parameters of rank %d differ from rank 0 "
                  "(hash %016llx vs %016llx); the replicas diverged",
                  (long long)step, bad, (unsigned long long)all[bad], (unsigned long long)all[0]);
    free(all);
    if (bad < t->size) {
        comm_barrier(t->c);
        vae_abort(VAE_EXIT_FATAL);
    }
}
