/*
 * Run configuration: INI sections [data] [model] [optim] [train] [ckpt]
 * [comm] [run], each key also settable as --set section.key=value.
 *
 * The keys live in one table (config.c) that drives parsing, range checks,
 * the error messages (which list the allowed values), writing the resolved
 * config and its reference in docs/config.md. Defaults reproduce the PyTorch
 * example VAE: 784-400-20, relu, Bernoulli, Adam lr 1e-3, batch 128.
 */
#ifndef VAE_CONFIG_H
#define VAE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LIST 8
#define CONFIG_STR_MAX  1024

enum arch_kind { ARCH_MLP, ARCH_CONV };
enum sliced_kind { SLICED_AUTO, SLICED_TRUE, SLICED_FALSE };
enum act_kind { ACT_RELU, ACT_TANH, ACT_SIGMOID };
enum likelihood_kind { LIK_BERNOULLI, LIK_GAUSSIAN, LIK_GAUSSIAN_LEARNED };
enum optim_kind { OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW };
#define N_OPTIMS                                                                                             \
    (OPT_ADAMW + 1) /* the count, beside the enum (not a member: switches need no arm for it)                \
                     */
enum sched_kind { SCHED_CONSTANT, SCHED_WARMUP, SCHED_COSINE };

/* A list key's values (model.hidden, model.channels, ...); n = 0 is "none". */
struct config_list {
    size_t n;
    size_t v[CONFIG_MAX_LIST];
};

struct config {
    /* [data] */
    char data_path[CONFIG_STR_MAX];
    int shuffle;
    /* [model] */
    int arch;                                   /* enum arch_kind */
    struct config_list channels;                /* conv: channels of each encoder stage */
    struct config_list kernel, stride, padding; /* conv: one value, or one per stage */
    struct config_list hidden; /* fully connected widths (after the conv stages); the decoder mirrors them */
    long latent;               /* Z */
    int activation;            /* enum act_kind */
    int likelihood;            /* enum likelihood_kind */
    double obs_logvar;         /* Gaussian log σ² (fixed, or initial if learned) */
    /* [optim] */
    int optim; /* enum optim_kind */
    double lr, momentum, rho, beta1, beta2, eps, delta, weight_decay;
    int nesterov;
    int schedule; /* enum sched_kind */
    long warmup_steps;
    double min_lr;
    /* [train] */
    long epochs;
    long batch_size;  /* global batch B */
    long micro_batch; /* reproducible-mode micro-batch */
    uint64_t seed;
    int reproducible;
    double beta;
    long kl_warmup_steps;
    double clip_norm; /* 0: off */
    long log_every;
    long max_skipped;         /* consecutive non-finite steps before abort */
    long replica_check_every; /* 0: off */
    long max_steps;           /* 0: run all epochs */
    /* [ckpt] */
    long ckpt_every_steps;     /* 0: off */
    double ckpt_every_seconds; /* 0: off */
    long ckpt_keep;
    int ckpt_direct_io;
    /* [comm] */
    double bucket_mb;
    int overlap;
    int shared_memory;
    int sliced_gradients; /* enum sliced_kind */
    double timeout_s;     /* collective watchdog; 0: off */
    /* [run] */
    char run_dir[CONFIG_STR_MAX];
    /* Not a key (never stored): `train --resume-override` resumes a checkpoint
     * whose keys fixed on resume differ from these. */
    int resume_override;
};

/* Fill every key with its default. */
void config_defaults(struct config *cfg);

/*
 * Read an INI file over the current values. Returns 0, or -1 after printing
 * "FILE:LINE: [section] key: expected ..., found ..." for the first bad line.
 */
int config_load_file(struct config *cfg, const char *path);

/*
 * Apply one "section.key=value" override; `origin` names where it came from
 * in messages (e.g. "--set"). Returns 0 or -1 with a message printed.
 */
int config_set(struct config *cfg, const char *assignment, const char *origin);

/* Set one key from its parts (the INI handler and config_set share it). */
int config_set_kv(struct config *cfg, const char *section, const char *key, const char *value, char *err,
                  size_t err_bytes);

/* Cross-key checks (e.g. reproducible micro-batch divides the batch). */
int config_validate(const struct config *cfg, char *err, size_t err_bytes);

/* Write the resolved config as INI (every key). Returns 0 or -1. */
int config_write(const struct config *cfg, FILE *f);

/* The resolved config as an INI string (malloc'd; caller frees). */
char *config_to_string(const struct config *cfg);

/* Parse an INI string as produced by config_to_string. Returns 0 or -1. */
int config_from_string(struct config *cfg, const char *text, char *err, size_t err_bytes);

/*
 * The keys whose values differ between `was` (a checkpoint's config) and
 * `now`, as lines "\n  [section] key: checkpoint A, now B" in out: with
 * fixed = 1 the keys a resume must keep (model, data order, noise; marked in
 * the reference), with fixed = 0 the others. Returns how many differ.
 */
int config_diff(const struct config *was, const struct config *now, int fixed, char *out, size_t out_bytes);

/* Write the key reference (markdown table) used for docs/config.md. */
void config_write_reference(FILE *f);

const char *config_act_name(int act);
const char *config_optim_name(int optim);

#endif
