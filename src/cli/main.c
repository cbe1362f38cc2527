/*
 * vae_dist: one binary, subcommands (the contract is in docs/usage.md).
 * Parses flags, builds the config and calls into libvae; owns no logic of
 * its own beyond argument handling.
 */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/path.h"
#include "data/ckpt.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "infer/infer.h"
#include "model/linear.h"
#include "train/train.h"

static const char usage_main[] =
    "usage: vae_dist [COMMAND] [OPTIONS]\n"
    "\n"
    "Distributed data-parallel training of Variational Autoencoders (run under mpirun).\n"
    "\n"
    "commands:\n"
    "  train    train a VAE (the default command)\n"
    "  prep     convert IDX files (MNIST / Fashion-MNIST layout) to the HDF5 dataset format\n"
    "  eval     test -ELBO and the importance-weighted bound (IWAE) of a checkpoint, as JSON\n"
    "  sample   a grid of decoder means for z ~ N(0, I), as PNG\n"
    "  recon    inputs above their reconstructions, as PNG\n"
    "  encode   mu and log sigma^2 of every sample, as HDF5\n"
    "  score    per-sample anomaly scores (-ELBO, -IWAE), as HDF5, with AUROC for 0/1 labels\n"
    "  synth    write a synthetic dataset (images, or tabular with anomalies)\n"
    "  info     print a checkpoint's header\n"
    "  config   print the configuration reference (every key, default, allowed values)\n"
    "\n"
    "  vae_dist COMMAND --help   shows the options of a command; --version prints the version.\n";

static const char usage_train[] =
    "usage: vae_dist train [--config FILE] [--set section.key=value ...] [--resume auto|none|PATH]\n"
    "                      [--resume-override]\n"
    "\n"
    "  --config FILE     INI file with sections [data] [model] [optim] [train] [ckpt] [comm] [run]\n"
    "  --set S.K=V       override one key (repeatable), e.g. --set optim.lr=3e-4\n"
    "  --resume MODE     auto (default): newest valid checkpoint in run.dir/ckpt, if any;\n"
    "                    none: start fresh (an earlier run's checkpoints in run.dir/ckpt move to\n"
    "                    run.dir/ckpt.before-TIME/, kept, never loaded); PATH: that checkpoint or fail\n"
    "  --resume-override resume even where the model, the data, the batch, the seed or the mode\n"
    "                    differ from the checkpoint's (refused otherwise; docs/config.md)\n"
    "\n"
    "exit codes: 0 done, 1 error, 2 usage, 3 internal/MPI error, 42 stopped by a signal after a\n"
    "checkpoint (requeue and run again with --resume auto).\n";

static const char usage_prep[] =
    "usage: vae_dist prep --train-images F [--train-labels F] [--test-images F] [--test-labels F]\n"
    "                     --out data.h5\n"
    "\n"
    "Reads IDX files (gzip or plain) and writes the vae_dist HDF5 dataset (docs/formats.md).\n";

static const char usage_synth[] =
    "usage: vae_dist synth --out data.h5 [--n-train N] [--n-test N] [--dim D | --image C,H,W]\n"
    "                      [--tabular] [--anomalies FRACTION] [--seed S]\n"
    "\n"
    "Writes a synthetic dataset: uint8 images (default; --image 3,64,64 makes C x H x W pictures\n"
    "for conv models) or float32 tabular rows near a 2-D manifold, with a FRACTION of the test\n"
    "rows made anomalous (label 1) for `score` demos.\n";

static const char usage_info[] = "usage: vae_dist info --checkpoint PATH\n";

static const char usage_tools[] =
    "usage: vae_dist eval   --checkpoint PATH [--data FILE] [--split test|train] [--iw-samples K] [--n N]\n"
    "       vae_dist sample --checkpoint PATH --n N --out grid.png [--scale S]\n"
    "       vae_dist recon  --checkpoint PATH [--data FILE] [--split S] --n N --out grid.png [--scale S]\n"
    "       vae_dist encode --checkpoint PATH [--data FILE] [--split S] --out latents.h5\n"
    "       vae_dist score  --checkpoint PATH [--data FILE] [--split S] [--iw-samples K] --out scores.h5\n"
    "\n"
    "The model is rebuilt from the config stored in the checkpoint; --data defaults to its data.path,\n"
    "--split to the test split (train when the file has none). Run under mpirun to split the work;\n"
    "results are the same on any number of ranks. eval --n N uses the first N samples. --scale S draws\n"
    "each pixel as S x S (1 to 16). stdout of eval and score is one JSON object; notes go to stderr.\n";

/* Value of flag argv[*i] (advancing *i), or NULL with a usage error. */
static const char *flag_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        log_error("option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* The IDX files of prep agree: as many labels as images, one image shape, labels for both splits or neither.
 */
static int prep_check(const struct idx x[2], const struct idx y[2], const char *ti, const char *tl,
                      const char *vi, const char *vl)
{
    for (int s = 0; s < 2; s++) {
        if (y[s].data && y[s].n != x[s].n) {
            log_error("%s: %zu labels for %zu images in %s", s ? vl : tl, y[s].n, x[s].n, s ? vi : ti);
            return -1;
        }
    }
    if (x[1].data && (x[1].rows != x[0].rows || x[1].cols != x[0].cols)) {
        log_error("%s: images are %zux%zu but the training images are %zux%zu", vi, x[1].rows, x[1].cols,
                  x[0].rows, x[0].cols);
        return -1;
    }
    if ((tl == NULL) != (vi && vl == NULL) && vi) {
        log_error("prep: give labels for both splits or for neither");
        return -1;
    }
    return 0;
}

/* mkdir -p of the directory that will hold `path`; 0 or -1 with a message. */
static int make_parent_dirs(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(dir, 0777) && errno != EEXIST) {
            log_error("%s: cannot make the directory %s: %s", path, dir, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    return 0;
}

static int cmd_prep(int argc, char **argv)
{
    const char *ti = NULL, *tl = NULL, *vi = NULL, *vl = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char **dst = !strcmp(argv[i], "--train-images")   ? &ti
                           : !strcmp(argv[i], "--train-labels") ? &tl
                           : !strcmp(argv[i], "--test-images")  ? &vi
                           : !strcmp(argv[i], "--test-labels")  ? &vl
                           : !strcmp(argv[i], "--out")          ? &out
                                                                : NULL;
        if (!strcmp(argv[i], "--help")) {
            fputs(usage_prep, stdout);
            return VAE_EXIT_OK;
        }
        if (!dst) {
            log_error("prep: unknown option '%s'\n%s", argv[i], usage_prep);
            return VAE_EXIT_USAGE;
        }
        if (!(*dst = flag_value(argc, argv, &i)))
            return VAE_EXIT_USAGE;
    }
    if (!ti || !out || (vl && !vi)) {
        log_error("prep: --train-images and --out are required (and --test-labels needs "
                  "--test-images)\n%s",
                  usage_prep);
        return VAE_EXIT_USAGE;
    }
    struct idx x[2] = {{0}}, y[2] = {{0}};
    int rc = VAE_EXIT_ERROR;
    if (make_parent_dirs(out))
        return VAE_EXIT_ERROR;
    if (idx_read(&x[0], ti, 1) || (tl && idx_read(&y[0], tl, 0)) || (vi && idx_read(&x[1], vi, 1)) ||
        (vl && idx_read(&y[1], vl, 0)))
        goto out_free;
    if (prep_check(x, y, ti, tl, vi, vl))
        goto out_free;
    struct dataset_info info = {
        .n_train = x[0].n,
        .n_test = x[1].n,
        .n_dim = x[0].rows * x[0].cols,
        .is_u8 = 1,
        .has_labels = tl != NULL,
        .image_channels = 1,
        .image_rows = (long)x[0].rows,
        .image_cols = (long)x[0].cols,
    };
    if (dataset_write(out, &info, x[0].data, y[0].data, x[1].data, y[1].data) == 0) {
        log_info("wrote %s: train %zu x %zu%s, test %zu", out, info.n_train, info.n_dim,
                 info.has_labels ? " with labels" : "", info.n_test);
        rc = VAE_EXIT_OK;
    }
out_free:
    for (int s = 0; s < 2; s++) {
        idx_free(&x[s]);
        idx_free(&y[s]);
    }
    return rc;
}

static int parse_size(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    /* Decimal only: strtod also takes "0x10", "nan" and "inf". */
    if (!v || end == v || *end || v[strspn(v, "0123456789+-.eE")] || !(d >= lo && d <= hi)) {
        log_error("%s: expected a number in [%g, %g], found '%s'", flag, lo, hi, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

/* A whole number in [lo, hi] ("1e4" is fine, "1.5" is not). */
static int parse_count(const char *flag, const char *v, double lo, double hi, double *out)
{
    if (parse_size(flag, v, lo, hi, out))
        return -1;
    if (*out != (double)(long long)*out) {
        log_error("%s: expected a whole number, found '%s'", flag, v);
        return -1;
    }
    return 0;
}

/* --image C,H,W: three whole numbers in [1, 4096], at most 2^24 values in all. 0 or -1 with a message. */
static int parse_image(const char *flag, const char *v, size_t image[3])
{
    unsigned long c, h, w;
    char tail;
    if (v && sscanf(v, "%lu,%lu,%lu%c", &c, &h, &w, &tail) == 3 && c >= 1 && h >= 1 && w >= 1 && c <= 4096 &&
        h <= 4096 && w <= 4096 && c * h * w <= (1ul << 24)) {
        image[0] = c, image[1] = h, image[2] = w;
        return 0;
    }
    log_error("%s: expected C,H,W (e.g. 3,64,64), three whole numbers in [1, 4096] with C*H*W <= 2^24, found "
              "'%s'",
              flag, v ? v : "nothing");
    return -1;
}

static int cmd_synth(int argc, char **argv)
{
    const char *out = NULL;
    double n_train = 4096, n_test = 512, dim = 64, anomalies = 0, seed = 1;
    size_t image[3];
    int tabular = 0, has_image = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "--help")) {
            fputs(usage_synth, stdout);
            return VAE_EXIT_OK;
        } else if (!strcmp(a, "--tabular")) {
            tabular = 1;
        } else if (!strcmp(a, "--out")) {
            bad = !(out = flag_value(argc, argv, &i));
        } else if (!strcmp(a, "--n-train")) {
            bad = parse_count(a, flag_value(argc, argv, &i), 1, 4e9, &n_train);
        } else if (!strcmp(a, "--n-test")) {
            bad = parse_count(a, flag_value(argc, argv, &i), 0, 4e9, &n_test);
        } else if (!strcmp(a, "--dim")) {
            bad = parse_count(a, flag_value(argc, argv, &i), 1, 1 << 24, &dim);
        } else if (!strcmp(a, "--image")) {
            bad = parse_image(a, flag_value(argc, argv, &i), image);
            has_image = !bad;
            dim = has_image ? (double)(image[0] * image[1] * image[2]) : dim;
        } else if (!strcmp(a, "--anomalies")) {
            bad = parse_size(a, flag_value(argc, argv, &i), 0, 1, &anomalies);
        } else if (!strcmp(a, "--seed")) {
            bad = parse_count(a, flag_value(argc, argv, &i), 0, 9e15, &seed);
        } else {
            log_error("synth: unknown option '%s'\n%s", a, usage_synth);
            return VAE_EXIT_USAGE;
        }
        if (bad)
            return VAE_EXIT_USAGE;
    }
    if (!out) {
        log_error("synth: --out is required\n%s", usage_synth);
        return VAE_EXIT_USAGE;
    }
    if (has_image && tabular) {
        log_error("synth: --image makes uint8 pictures; it cannot be combined with --tabular");
        return VAE_EXIT_USAGE;
    }
    if (dataset_make_synthetic(out, (size_t)n_train, (size_t)n_test, (size_t)dim, has_image ? image : NULL,
                               !tabular, anomalies, (uint64_t)seed))
        return VAE_EXIT_ERROR;
    log_info("wrote %s: %s, train %zu x %zu, test %zu", out, tabular ? "tabular float32" : "uint8 images",
             (size_t)n_train, (size_t)dim, (size_t)n_test);
    return VAE_EXIT_OK;
}

/* train's flags into cfg and resume: -1 to go on, or the VAE_EXIT_* to end with. Local. */
/*
 * After a command's flags were read under log_hold: agree across ranks.
 * rc is the reader's (-1: go on, else an exit code). Returns -1 to go on,
 * or the exit code: a rank's own, or `fallback` on a rank that was fine
 * while another failed. Only the lowest failing rank prints why.
 */
static int agree_args(const struct comm *c, int rc, int fallback)
{
    int first = comm_first_failure(c, rc < 0 || rc == VAE_EXIT_OK);
    log_release(first == comm_rank(c));
    if (first >= 0)
        return rc >= 0 ? rc : fallback;
    return rc;
}

/* The --config file named on the command line, or "none (defaults)". */
static const char *config_file(int argc, char **argv)
{
    const char *f = "none (defaults)";
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config"))
            f = argv[i + 1];
    return f;
}

static int train_args(const struct comm *c, int argc, char **argv, struct config *cfg, const char **resume)
{
    config_defaults(cfg);
    /* The config file first, so that --set overrides it wherever it stands. */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            const char *v = flag_value(argc, argv, &i);
            if (!v)
                return VAE_EXIT_USAGE;
            if (config_load_file(cfg, v))
                return VAE_EXIT_ERROR;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) {
            if (comm_rank(c) == 0)
                fputs(usage_train, stdout);
            return VAE_EXIT_OK;
        } else if (!strcmp(argv[i], "--config")) {
            i++;
        } else if (!strcmp(argv[i], "--set")) {
            if (!(v = flag_value(argc, argv, &i)))
                return VAE_EXIT_USAGE;
            if (config_set(cfg, v, "--set"))
                return VAE_EXIT_ERROR;
        } else if (!strcmp(argv[i], "--resume")) {
            if (!(*resume = flag_value(argc, argv, &i)))
                return VAE_EXIT_USAGE;
            if (!strcasecmp(*resume, "auto") || !strcasecmp(*resume, "none"))
                *resume = tolower((unsigned char)**resume) == 'a' ? "auto" : "none";
        } else if (!strcmp(argv[i], "--resume-override")) {
            cfg->resume_override = 1;
        } else {
            log_error("train: unknown option '%s' (see vae_dist train --help)", argv[i]);
            return VAE_EXIT_USAGE;
        }
    }
    return -1;
}

/* Train; on a run that ended or stopped for a requeue, rank 0 gets run.dir in plot_dir. */
static int cmd_train(const struct comm *c, int argc, char **argv, char plot_dir[CONFIG_STR_MAX])
{
    struct config cfg;
    const char *resume = "auto";
    /* Every rank reads the same flags and files: the lowest rank that fails says why, once. */
    log_hold();
    int rc = agree_args(c, train_args(c, argc, argv, &cfg, &resume), VAE_EXIT_ERROR);
    if (rc >= 0)
        return rc;
    if (comm_rank(c) == 0)
        log_note("vae_dist train: config %s, data %s, run.dir %s (vae_dist train --help for the options)",
                 config_file(argc, argv), cfg.data_path, cfg.run_dir);
    rc = train_run(&cfg, c, resume, NULL);
    if (comm_rank(c) == 0 && (rc == VAE_EXIT_OK || rc == VAE_EXIT_SIGNAL))
        snprintf(plot_dir, CONFIG_STR_MAX, "%s", cfg.run_dir);
    return rc;
}

/*
 * run_dir/loss.png through plot_metrics.sh beside the binary (gnuplot).
 * Called after MPI_Finalize: a fork inside an MPI job is not safe on every
 * transport. A missing script or gnuplot costs the picture, never the run.
 */
static void plot_loss(const char *run_dir)
{
    char exe[4096], script[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = 0;
    snprintf(script, sizeof script, "%s/plot_metrics.sh", dirname(exe));
    if (access(script, R_OK)) {
        log_info("no loss picture: %s not found (HINT: launch/plot_metrics.sh %s draws it)", script, run_dir);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("bash", "bash", script, run_dir, (char *)NULL);
        _exit(127);
    }
    int status;
    if (pid > 0)
        waitpid(pid, &status, 0);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcasecmp(s + n - k, tail);
}

/* The tools' paths: --checkpoint given, none too long, --out of the kind the command writes.
 * -1 to go on, or VAE_EXIT_USAGE. */
static int check_tool_paths(const char *cmd, const struct infer_args *a)
{
    if (!a->checkpoint) {
        log_error("%s: --checkpoint PATH is required\n%s", cmd, usage_tools);
        return VAE_EXIT_USAGE;
    }
    const char *paths[] = {a->checkpoint, a->data, a->out};
    for (size_t i = 0; i < 3; i++) {
        if (paths[i] && strlen(paths[i]) >= CONFIG_STR_MAX) {
            log_error("%s: a path of %zu bytes; paths are limited to %d bytes", cmd, strlen(paths[i]),
                      CONFIG_STR_MAX - 1);
            return VAE_EXIT_USAGE;
        }
    }
    for (size_t i = 0; a->out && i < 2; i++) {
        if (path_same_file(a->out, paths[i])) {
            log_error("%s: --out %s is the %s file (%s): writing would replace the input (HINT: choose "
                      "another --out)",
                      cmd, a->out, i ? "--data" : "--checkpoint", paths[i]);
            return VAE_EXIT_USAGE;
        }
    }
    int picture = !strcmp(cmd, "sample") || !strcmp(cmd, "recon");
    if (a->out && picture && !ends_with(a->out, ".png")) {
        log_error("%s: --out %s: pictures are written as PNG; expected a name ending in .png", cmd, a->out);
        return VAE_EXIT_USAGE;
    }
    if (a->out && !picture && !ends_with(a->out, ".h5") && !ends_with(a->out, ".hdf5")) {
        log_error("%s: --out %s: results are written as HDF5; expected a name ending in .h5", cmd, a->out);
        return VAE_EXIT_USAGE;
    }
    return -1;
}

/* The tools' flags into a: -1 to go on, or the VAE_EXIT_* to end with. Local. */
static int tool_args(const struct comm *c, const char *cmd, int argc, char **argv, struct infer_args *a)
{
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        const char **dst = !strcmp(f, "--checkpoint") ? &a->checkpoint
                           : !strcmp(f, "--data")     ? &a->data
                           : !strcmp(f, "--split")    ? &a->split
                           : !strcmp(f, "--out")      ? &a->out
                                                      : NULL;
        double v;
        if (!strcmp(f, "--help")) {
            if (comm_rank(c) == 0)
                fputs(usage_tools, stdout);
            return VAE_EXIT_OK;
        } else if (dst) {
            if (!(*dst = flag_value(argc, argv, &i)))
                return VAE_EXIT_USAGE;
        } else if (!strcmp(f, "--n")) {
            if (parse_count(f, flag_value(argc, argv, &i), 1, 1e9, &v))
                return VAE_EXIT_USAGE;
            a->n = (long)v;
        } else if (!strcmp(f, "--iw-samples")) {
            if (parse_count(f, flag_value(argc, argv, &i), 0, 1e6, &v))
                return VAE_EXIT_USAGE;
            a->k = (long)v;
        } else if (!strcmp(f, "--scale")) {
            if (parse_count(f, flag_value(argc, argv, &i), 1, 16, &v))
                return VAE_EXIT_USAGE;
            a->scale = (int)v;
        } else {
            log_error("%s: unknown option '%s'\n%s", cmd, f, usage_tools);
            return VAE_EXIT_USAGE;
        }
    }
    return check_tool_paths(cmd, a);
}

static int cmd_tool(const struct comm *c, const char *cmd, int argc, char **argv)
{
    struct infer_args a = {0};
    log_hold();
    int rc = agree_args(c, tool_args(c, cmd, argc, argv, &a), VAE_EXIT_USAGE);
    if (rc >= 0)
        return rc;
    static char resolved[CONFIG_STR_MAX + 80];
    if (!comm_agree(c, ckpt_resolve(a.checkpoint, resolved, sizeof resolved) == 0))
        return VAE_EXIT_ERROR;
    if (a.out && path_same_file(a.out, resolved)) { /* the run directory's newest checkpoint */
        log_error("%s: --out %s is the checkpoint %s names: writing would replace it", cmd, a.out,
                  a.checkpoint);
        return VAE_EXIT_USAGE;
    }
    a.checkpoint = resolved;
    if (!strcmp(cmd, "eval"))
        return infer_eval(c, &a);
    if (!strcmp(cmd, "sample"))
        return infer_sample(c, &a);
    if (!strcmp(cmd, "recon"))
        return infer_recon(c, &a);
    if (!strcmp(cmd, "encode"))
        return infer_encode(c, &a);
    return infer_score(c, &a);
}

static int cmd_info(const struct comm *c, int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(usage_info, stdout);
            return VAE_EXIT_OK;
        }
        if (strcmp(argv[i], "--checkpoint") || !(path = flag_value(argc, argv, &i))) {
            log_error("info: expected --checkpoint PATH\n%s", usage_info);
            return VAE_EXIT_USAGE;
        }
    }
    if (!path) {
        log_error("info: expected --checkpoint PATH\n%s", usage_info);
        return VAE_EXIT_USAGE;
    }
    static char resolved[CONFIG_STR_MAX + 80];
    if (!comm_agree(c, ckpt_resolve(path, resolved, sizeof resolved) == 0))
        return VAE_EXIT_ERROR;
    path = resolved;
    struct ckpt_meta meta;
    if (ckpt_inspect(c, path, &meta))
        return VAE_EXIT_ERROR;
    /* One JSON object on stdout: every header field, the stored config as text. */
    struct metrics out = {comm_rank(c) == 0 ? stdout : NULL, 0};
    metrics_begin(&out, "info");
    metrics_str(&out, "checkpoint", path);
    metrics_str(&out, "optim", config_optim_name((int)meta.optim));
    char crc[16];
    snprintf(crc, sizeof crc, "%08lx", meta.params_crc32);
    metrics_str(&out, "params_crc32", crc);
    metrics_num(&out, "version", (double)meta.version);
    for (size_t i = 0; i < ckpt_header_count(); i++) {
        double v;
        const char *name = ckpt_header_field(&meta, i, &v);
        size_t len = strlen(name);
        if (!strcmp(name, "optim")) /* shown by name above */
            continue;
        if (len > 6 && !strcmp(name + len - 6, "_crc32") && v >= 0) { /* CRCs in hex, as params_crc32 */
            snprintf(crc, sizeof crc, "%08lx", (unsigned long)v);
            metrics_str(&out, name, crc);
        } else {
            metrics_num(&out, name, v);
        }
    }
    metrics_str(&out, "config", meta.config);
    metrics_end(&out);
    ckpt_meta_free(&meta);
    return VAE_EXIT_OK;
}

/* This process's rank when a launcher (mpirun, srun) started several, else -1. */
static long launcher_rank(void)
{
    static const char *const vars[][2] = {{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
                                          {"PMI_SIZE", "PMI_RANK"},
                                          {"SLURM_NTASKS", "SLURM_PROCID"}};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *size = getenv(vars[i][0]), *rank = getenv(vars[i][1]);
        if (size && rank && atol(size) > 1)
            return atol(rank);
    }
    return -1;
}

/* prep and synth write one file: under a launcher only its first process runs them. */
static int cmd_serial(const char *cmd, int argc, char **argv)
{
    long rank = launcher_rank();
    if (rank > 0)
        return VAE_EXIT_OK;
    if (rank == 0)
        log_note("%s runs on one process; the launcher's other processes do nothing", cmd);
    return !strcmp(cmd, "prep") ? cmd_prep(argc, argv) : cmd_synth(argc, argv);
}

/* OpenBLAS picks its kernels by CPU model when it loads, and falls back to
 * narrower ones than the CPU runs on a model newer than itself (linear.h).
 * Unless the user named kernels in OPENBLAS_CORETYPE, start again with it
 * naming the CPU's, before anything else (MPI_Init above all), as the same
 * file (so the process keeps its name for pgrep and kill);
 * VAE_DIST_OPENBLAS_OWN keeps OpenBLAS's own choice for the start line.
 * train's stop signals are held back across the exec: one that arrives
 * meanwhile waits for the new image's handler (main). Returns when there is
 * nothing to change, or when the exec fails. */
static void use_cpu_kernels(char **argv)
{
    const char *own = linear_kernels();
    const char *cpu = linear_kernels_for_cpu(own);
    if (!cpu || getenv("OPENBLAS_CORETYPE"))
        return;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe);
    if (n <= 0 || (size_t)n >= sizeof exe)
        return;
    exe[n] = '\0';
    sigset_t stop, old;
    train_signals(&stop);
    sigprocmask(SIG_BLOCK, &stop, &old);
    if (!setenv("OPENBLAS_CORETYPE", cpu, 1) && !setenv("VAE_DIST_OPENBLAS_OWN", own, 1))
        execv(exe, argv);
    sigprocmask(SIG_SETMASK, &old, NULL);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("VAE_DIST_OPENBLAS_OWN");
}

/* First of all, before the slow part of start-up (MPI_Init): train's
 * handler, so that a SIGTERM that arrives while the job starts still ends in
 * a checkpoint and exit 42. Then the signals held back across
 * use_cpu_kernels' exec go through. */
static void take_stop_signals(const char *cmd)
{
    if (!strcmp(cmd, "train"))
        train_install_signals();
    if (getenv("VAE_DIST_OPENBLAS_OWN")) {
        sigset_t stop;
        train_signals(&stop);
        sigprocmask(SIG_UNBLOCK, &stop, NULL);
    }
}

int main(int argc, char **argv)
{
    use_cpu_kernels(argv);
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : "train";
    int first = argc > 1 && argv[1][0] != '-' ? 2 : 1;
    take_stop_signals(cmd);
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
        fputs(usage_main, stdout);
        return VAE_EXIT_OK;
    }
    if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
        printf("vae_dist %s | OpenBLAS %s kernels\n", VAE_VERSION, linear_kernels());
        return VAE_EXIT_OK;
    }
    if (!strcmp(cmd, "config")) {
        if (argc == first + 1 && (!strcmp(argv[first], "--help") || !strcmp(argv[first], "-h"))) {
            puts("usage: vae_dist config\n\nprints every config key with its default, allowed values and "
                 "meaning, as a markdown table (docs/config.md)");
            return VAE_EXIT_OK;
        }
        if (argc > first) {
            log_error("config: takes no options, found '%s' (it prints every key as a markdown table)",
                      argv[first]);
            return VAE_EXIT_USAGE;
        }
        config_write_reference(stdout);
        return VAE_EXIT_OK;
    }
    if (!strcmp(cmd, "prep") || !strcmp(cmd, "synth"))
        return cmd_serial(cmd, argc - first, argv + first);
    struct comm *c = comm_init(&argc, &argv);
    /* The thread policy: one BLAS thread per rank unless the user says otherwise. */
    if (!getenv("OPENBLAS_NUM_THREADS"))
        linear_set_threads(1);
    char plot_dir[CONFIG_STR_MAX] = "";
    int rc;
    if (!strcmp(cmd, "train"))
        rc = cmd_train(c, argc - first, argv + first, plot_dir);
    else if (!strcmp(cmd, "info"))
        rc = cmd_info(c, argc - first, argv + first);
    else if (!strcmp(cmd, "eval") || !strcmp(cmd, "sample") || !strcmp(cmd, "recon") ||
             !strcmp(cmd, "encode") || !strcmp(cmd, "score"))
        rc = cmd_tool(c, cmd, argc - first, argv + first);
    else {
        log_error("unknown command '%s'\n%s", cmd, usage_main);
        rc = VAE_EXIT_USAGE;
    }
    comm_finalize();
    if (plot_dir[0])
        plot_loss(plot_dir);
    return rc;
}
