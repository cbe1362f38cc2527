/* eval, sample, recon, encode, score (see infer.h). */
#include "infer/infer.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/path.h"
#include "core/rng.h"
#include "data/ckpt.h"
#include "data/dataset.h"
#include "infer/eval.h"
#include "model/vae.h"
#include "picture/picture.h"

/* A trained model and what every command needs with it: the config, the
 * checkpoint header, and (trained_read_split) this rank's shard of the split
 * it works on. */
struct trained {
    struct config cfg;
    struct ckpt_meta meta;
    struct vae m;
    struct dataset_info info;
    struct shard s;
    const char *split;
    size_t n_total; /* rows of the split worked on, over all ranks */
};

static int trained_load(const struct comm *c, const struct infer_args *a, struct trained *l)
{
    memset(l, 0, sizeof *l);
    if (!a->checkpoint) {
        log_error("--checkpoint PATH is required");
        return -1;
    }
    if (ckpt_inspect(c, a->checkpoint, &l->meta))
        return -1;
    char err[256];
    config_defaults(&l->cfg);
    int ok = config_from_string(&l->cfg, l->meta.config, err, sizeof err) == 0;
    if (!ok)
        log_error("%s: %s", a->checkpoint, err);
    long image[3] = {l->meta.image_channels, l->meta.image_rows, l->meta.image_cols};
    ok = ok && vae_init(&l->m, &l->cfg, (size_t)l->meta.data_n_dim, image, EVAL_CHUNK) == 0;
    struct ckpt_meta want = {.optim = -1};
    struct ckpt_buffer params = {"/model/params", l->m.params, l->m.n_params, 0, 0, 0};
    struct ckpt_content ct = {l->m.tensor, l->m.n_tensors, &params, 1, 0, 0, 0, NULL, NULL};
    if (!comm_agree(c, ok) || ckpt_load(c, a->checkpoint, &want, &ct, NULL)) {
        vae_free(&l->m);
        ckpt_meta_free(&l->meta);
        return -1;
    }
    return 0;
}

static void trained_free(struct trained *l)
{
    shard_free(&l->s);
    vae_free(&l->m);
    ckpt_meta_free(&l->meta);
}

/*
 * This rank's shard of the chosen split into l (in whole evaluation chunks),
 * checked against the model's D; `cmd` names the command when it needs
 * --out. Collective over c.
 */
static int trained_read_split(const struct comm *c, const struct infer_args *a, struct trained *l,
                              const char *cmd)
{
    if (cmd && !a->out) {
        log_error("%s: --out FILE is required", cmd);
        return -1;
    }
    const char *path = a->data ? a->data : l->cfg.data_path;
    /* The stored data.path too: `--data` left out still names an input. */
    int same = cmd && path_same_file(a->out, path);
    if (same)
        log_error("%s: --out %s is the data file %s: writing would replace the input (HINT: choose another "
                  "--out)",
                  cmd, a->out, path);
    if (!comm_agree(c, !same) || dataset_open(c, path, &l->info))
        return -1;
    if (l->info.n_dim != (size_t)l->meta.data_n_dim) {
        log_error("%s: samples have D = %zu, the model in %s was trained on D = %ld", path, l->info.n_dim,
                  a->checkpoint, l->meta.data_n_dim);
        return -1;
    }
    const char *split = a->split ? a->split : (l->info.n_test ? "test" : "train");
    if (strcmp(split, "train") && strcmp(split, "test")) {
        log_error("--split: expected train or test, found '%s'", split);
        return -1;
    }
    if (!strcmp(split, "test") && l->info.n_test == 0) {
        log_error("%s: has no test split (use --split train)", path);
        return -1;
    }
    l->split = split;
    l->n_total = !strcmp(split, "test") ? l->info.n_test : l->info.n_train;
    if (a->n > 0 && (size_t)a->n < l->n_total)
        l->n_total = (size_t)a->n;
    return dataset_read_shard(c, path, &l->info, split, a->n > 0 ? (size_t)a->n : 0, EVAL_CHUNK, &l->s);
}

/* The result of eval as one JSON line (stdout, and the run's metrics.jsonl). */
static void eval_event(struct metrics *m, const struct infer_args *a, const struct trained *l,
                       const struct eval_result *r, int ranks)
{
    metrics_begin(m, "eval");
    metrics_str(m, "checkpoint", a->checkpoint);
    metrics_str(m, "split", l->split);
    const char *keys[] = {"step", "n", "neg_elbo", "rec", "kl", "iw_samples", "neg_iwae", "ranks", "seconds"};
    double vals[] = {(double)l->meta.step, (double)r->n, r->neg_elbo,   r->rec,    r->kl,
                     (double)r->k,         r->neg_iwae,  (double)ranks, r->seconds};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        metrics_num(m, keys[i], vals[i]);
    metrics_end(m);
}

int infer_eval(const struct comm *c, const struct infer_args *a)
{
    struct trained l;
    if (trained_load(c, a, &l))
        return VAE_EXIT_ERROR;
    int rc = VAE_EXIT_ERROR;
    if (trained_read_split(c, a, &l, NULL))
        goto out_free;
    struct eval_result r;
    eval_shard(c, &l.m, &l.s, l.cfg.seed, a->k, NULL, NULL, &r);
    struct metrics out = {comm_rank(c) == 0 ? stdout : NULL, 0};
    eval_event(&out, a, &l, &r, comm_size(c));
    /* Append to the run's metrics when the checkpoint sits in a run directory
     * (one that holds metrics.jsonl: none is made elsewhere). A run directory
     * that cannot take it (read-only, shared) costs the line, not the result. */
    char dir[CONFIG_STR_MAX + 8], log[CONFIG_STR_MAX + 32];
    snprintf(dir, sizeof dir, "%s", a->checkpoint);
    char *run = dirname(dirname(dir));
    snprintf(log, sizeof log, "%s/metrics.jsonl", run);
    int in_run = comm_rank(c) == 0 && access(log, F_OK) == 0;
    if (in_run && access(log, W_OK)) {
        log_warn("%s: cannot append the eval event (%s); the result above stands", log, strerror(errno));
        in_run = 0;
    }
    struct metrics mt;
    if (in_run && metrics_open(&mt, run, 0) == 0) {
        eval_event(&mt, a, &l, &r, comm_size(c));
        if (metrics_close(&mt))
            log_warn(
                "%s/metrics.jsonl: appending the eval event failed (disk full?); the result above stands",
                run);
    }
    rc = VAE_EXIT_OK;
out_free:
    trained_free(&l);
    return rc;
}

static int need_images(const struct trained *l, const char *path, const char *what)
{
    if (l->meta.image_rows > 0 && l->meta.image_cols > 0)
        return 0;
    log_error("%s: the model was trained on data without an image shape (image_rows, image_cols); "
              "%s draws pictures only for image data",
              path, what);
    return -1;
}

int infer_sample(const struct comm *c, const struct infer_args *a)
{
    struct trained l;
    if (trained_load(c, a, &l))
        return VAE_EXIT_ERROR;
    int rc = VAE_EXIT_ERROR;
    if (need_images(&l, a->checkpoint, "sample") || !a->out || a->n < 1) {
        if (!a->out || a->n < 1)
            log_error("sample: --out FILE.png and --n N (N >= 1) are required");
        goto out_free;
    }
    if (a->n > 10000) {
        log_error("sample: --n %ld: one grid picture holds at most 10000 samples", a->n);
        goto out_free;
    }
    /* z_i ~ N(0, I) = Philox(seed, RNG_PRIOR, 0, i): the same picture on any rank count. */
    size_t n = (size_t)a->n, n_z = l.m.n_latent, n_d = l.m.n_in;
    float *z = malloc(EVAL_CHUNK * n_z * sizeof *z), *img = malloc(n * n_d * sizeof *img);
    if (!z || !img)
        log_error(
            "sample: --n %zu pictures of %zu values need %.1f GB of memory, which this machine does not "
            "give (HINT: a smaller --n)",
            n, n_d, (double)n * (double)n_d * sizeof *img / 1e9);
    if (!comm_agree(c, z && img)) {
        free(z);
        free(img);
        goto out_free;
    }
    for (size_t i0 = 0; i0 < n; i0 += EVAL_CHUNK) {
        size_t b = n - i0 < EVAL_CHUNK ? n - i0 : EVAL_CHUNK;
        for (size_t i = 0; i < b; i++)
            rng_normal(z + i * n_z, n_z, l.cfg.seed, RNG_PRIOR, 0, (uint32_t)(i0 + i));
        vae_decode(&l.m, img + i0 * n_d, z, b);
    }
    int ok =
        comm_rank(c) != 0 || picture_write_grid(a->out, img, n, (size_t)l.meta.image_channels,
                                                (size_t)l.meta.image_rows, (size_t)l.meta.image_cols,
                                                n < 16 ? n : 16, a->scale > 0 ? (size_t)a->scale : 1) == 0;
    free(z);
    free(img);
    if (comm_agree(c, ok)) {
        log_info("wrote %s: %zu samples of the decoder mean, z ~ N(0, I)", a->out, n);
        rc = VAE_EXIT_OK;
    }
out_free:
    trained_free(&l);
    return rc;
}

int infer_recon(const struct comm *c, const struct infer_args *a)
{
    struct trained l;
    if (trained_load(c, a, &l))
        return VAE_EXIT_ERROR;
    int rc = VAE_EXIT_ERROR;
    if (need_images(&l, a->checkpoint, "recon") || !a->out || a->n < 1) {
        if (!a->out || a->n < 1)
            log_error("recon: --out FILE.png and --n N (N >= 1) are required");
        goto out_free;
    }
    /* A picture is small: rank 0 reads the first n samples alone; the others wait. */
    int ok = 1;
    float *img = NULL;
    size_t n = 0;
    if (comm_rank(c) == 0) {
        ok = trained_read_split(comm_self(), a, &l, "recon") == 0;
        n = ok ? l.s.n_rows : 0;
        size_t n_d = l.m.n_in, n_z = l.m.n_latent, per_row = n < 16 ? n : 16;
        size_t cells = per_row ? 2 * ((n + per_row - 1) / per_row) * per_row : 0;
        img = calloc(cells * n_d + 1, sizeof *img); /* empty cells stay black */
        float *mu = malloc(2 * n_z * sizeof *mu);
        VAE_ASSERT(img && mu);
        /* Rows of the grid alternate: up to 16 inputs, then their reconstructions (z = μ). */
        for (size_t i = 0; ok && i < n; i++) {
            size_t block = i / per_row, col = i % per_row;
            float *in = img + (2 * block * per_row + col) * n_d;
            float *out = img + ((2 * block + 1) * per_row + col) * n_d;
            shard_rows_to_float(in, &l.s, i, 1);
            vae_encode(&l.m, mu, mu + n_z, in, 1);
            vae_decode(&l.m, out, mu, 1);
        }
        ok = ok &&
             picture_write_grid(a->out, img, cells, (size_t)l.meta.image_channels, (size_t)l.meta.image_rows,
                                (size_t)l.meta.image_cols, per_row, a->scale > 0 ? (size_t)a->scale : 1) == 0;
        free(mu);
    }
    free(img);
    if (comm_agree(c, ok)) {
        log_info("wrote %s: %zu inputs (odd rows) above their reconstructions (even rows)", a->out, n);
        rc = VAE_EXIT_OK;
    }
out_free:
    trained_free(&l);
    return rc;
}

int infer_encode(const struct comm *c, const struct infer_args *a)
{
    struct trained l;
    if (trained_load(c, a, &l))
        return VAE_EXIT_ERROR;
    int rc = VAE_EXIT_ERROR;
    if (trained_read_split(c, a, &l, "encode"))
        goto out_free;
    const struct shard *s = &l.s;
    size_t n_z = l.m.n_latent, n_d = l.m.n_in;
    float *mu = malloc(s->n_rows * n_z * sizeof *mu + 1), *lv = malloc(s->n_rows * n_z * sizeof *lv + 1);
    float *x = malloc(EVAL_CHUNK * n_d * sizeof *x);
    VAE_ASSERT(mu && lv && x);
    for (size_t i0 = 0; i0 < s->n_rows; i0 += EVAL_CHUNK) {
        size_t b = s->n_rows - i0 < EVAL_CHUNK ? s->n_rows - i0 : EVAL_CHUNK;
        shard_rows_to_float(x, s, i0, b);
        vae_encode(&l.m, mu + i0 * n_z, lv + i0 * n_z, x, b);
    }
    struct column cols[2] = {{"mu", mu, n_z}, {"logvar", lv, n_z}};
    size_t first = s->n_rows ? s->ids[0] : 0;
    if (dataset_write_columns(c, a->out, "vae_dist-latents", l.n_total, first, s->n_rows, cols, 2,
                              s->labels) == 0) {
        log_info("wrote %s: mu and logvar (%zu x %zu)%s of the %s split", a->out, l.n_total, n_z,
                 s->labels ? " and labels y" : "", l.split);
        rc = VAE_EXIT_OK;
    }
    free(mu);
    free(lv);
    free(x);
out_free:
    trained_free(&l);
    return rc;
}

/* AUROC of each score against 0/1 labels, over all ranks' rows (NAN if the
 * labels are not 0/1). Collective. */
static void auroc_all(const struct comm *c, const struct trained *l, const float *elbo, const float *iwae,
                      double auroc[2])
{
    size_t n = l->n_total, first = l->s.n_rows ? l->s.ids[0] : 0;
    int p = comm_size(c);
    size_t *count = malloc(2 * (size_t)p * sizeof *count);
    float *all = malloc(3 * n * sizeof *all + 1);
    uint8_t *lab = malloc(n + 1);
    VAE_ASSERT(count && all && lab);
    size_t *off = count + p;
    memcpy(all + first, elbo, l->s.n_rows * sizeof *all);
    if (iwae)
        memcpy(all + n + first, iwae, l->s.n_rows * sizeof *all);
    for (size_t i = 0; i < l->s.n_rows; i++)
        all[2 * n + first + i] = l->s.labels[i];
    for (int col = 0; col < 3; col++) { /* the three columns, one allgather each */
        for (int q = 0; q < p; q++) {
            size_t hi;
            dataset_block(n, EVAL_CHUNK, p, q, &off[q], &hi);
            count[q] = hi - off[q];
            off[q] += (size_t)col * n;
        }
        comm_allgatherv_f32(c, all, count, off);
    }
    int binary = 1;
    for (size_t i = 0; i < n; i++) {
        lab[i] = (uint8_t)all[2 * n + i];
        binary &= lab[i] <= 1;
    }
    auroc[0] = binary ? eval_auroc(all, lab, n) : NAN;
    auroc[1] = binary && iwae ? eval_auroc(all + n, lab, n) : NAN;
    free(count);
    free(all);
    free(lab);
}

int infer_score(const struct comm *c, const struct infer_args *a)
{
    struct trained l;
    if (trained_load(c, a, &l))
        return VAE_EXIT_ERROR;
    int rc = VAE_EXIT_ERROR;
    if (trained_read_split(c, a, &l, "score"))
        goto out_free;
    const struct shard *s = &l.s;
    float *elbo = malloc(s->n_rows * sizeof *elbo + 1), *iwae = malloc(s->n_rows * sizeof *iwae + 1);
    VAE_ASSERT(elbo && iwae);
    struct eval_result r;
    eval_shard(c, &l.m, s, l.cfg.seed, a->k, elbo, a->k > 0 ? iwae : NULL, &r);
    struct column cols[2] = {{"neg_elbo", elbo, 1}, {"neg_iwae", iwae, 1}};
    size_t first = s->n_rows ? s->ids[0] : 0;
    if (dataset_write_columns(c, a->out, "vae_dist-scores", l.n_total, first, s->n_rows, cols,
                              a->k > 0 ? 2 : 1, s->labels) == 0) {
        /* With 0/1 labels (anomaly flags), how well each score separates them. */
        double auroc[2] = {NAN, NAN};
        if (s->labels)
            auroc_all(c, &l, elbo, a->k > 0 ? iwae : NULL, auroc);
        struct metrics out = {comm_rank(c) == 0 ? stdout : NULL, 0};
        metrics_begin(&out, "score");
        metrics_str(&out, "out", a->out);
        metrics_str(&out, "split", l.split);
        const char *keys[] = {
            "n", "neg_elbo", "iw_samples", "neg_iwae", "auroc_neg_elbo", "auroc_neg_iwae", "seconds"};
        double vals[] = {(double)r.n, r.neg_elbo, (double)r.k, r.neg_iwae, auroc[0], auroc[1], r.seconds};
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
            metrics_num(&out, keys[i], vals[i]);
        metrics_end(&out);
        rc = VAE_EXIT_OK;
    }
    free(elbo);
    free(iwae);
out_free:
    trained_free(&l);
    return rc;
}
