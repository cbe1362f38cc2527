/*
 * Configuration (see config.h). One table lists every key with its type,
 * field, range or allowed names, default and one-line description; parsing,
 * validation, writing and the reference documentation all walk it, so a key
 * added here is parsed, checked, saved in checkpoints and documented at once.
 */
#include "core/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/path.h"

enum key_type { K_INT, K_U64, K_FLOAT, K_UNIT, K_BOOL, K_STR, K_ENUM, K_LIST }; /* K_UNIT: [0, 1) */

struct key {
    const char *section, *name;
    enum key_type type;
    size_t offset;
    double min, max;          /* K_INT, K_FLOAT, K_LIST elements */
    const char *const *names; /* K_ENUM: NULL-terminated */
    const char *def;          /* default, as text */
    const char *doc;
    int fixed; /* FIXED: a resumed run must keep it (see config_diff) */
};

static const char *const arch_names[] = {"mlp", "conv", NULL};
static const char *const sliced_names[] = {"auto", "true", "false", NULL};
static const char *const act_names[] = {"relu", "tanh", "sigmoid", NULL};
static const char *const lik_names[] = {"bernoulli", "gaussian", "gaussian_learned", NULL};
static const char *const optim_names[] = {"sgd", "adagrad", "rmsprop", "adam", "adamw", NULL};
static const char *const sched_names[] = {"constant", "warmup", "cosine", NULL};

/*
 * FIXED keys change the model, the order of the data or the noise: a run
 * resumed with another value would not continue the one checkpointed, so
 * the resume is refused. Every other key (lr and its schedule, epochs,
 * max_steps, logging, checkpointing, comm) may change.
 */
#define FIXED    1
#define F(field) offsetof(struct config, field)
#define NONE     NULL
static const struct key keys[] = {
    {"data", "path", K_STR, F(data_path), 0, 0, NONE, "data/fashion-mnist.h5",
     "HDF5 dataset made by `vae_dist prep`", 0},
    {"data", "shuffle", K_BOOL, F(shuffle), 0, 0, NONE, "true",
     "one global permutation of the training set per epoch", FIXED},
    {"model", "arch", K_ENUM, F(arch), 0, 0, arch_names, "mlp",
     "mlp: fully connected; conv: convolutional stages, then fully connected layers", FIXED},
    {"model", "channels", K_LIST, F(channels), 1, 1 << 16, NONE, "32,64",
     "conv: output channels of each encoder stage (the decoder mirrors them back to the input's)", FIXED},
    {"model", "kernel", K_LIST, F(kernel), 1, 64, NONE, "4", "conv: kernel size, one value or one per stage",
     FIXED},
    {"model", "stride", K_LIST, F(stride), 1, 64, NONE, "2", "conv: stride, one value or one per stage",
     FIXED},
    {"model", "padding", K_LIST, F(padding), 0, 64, NONE, "1", "conv: padding, one value or one per stage",
     FIXED},
    {"model", "hidden", K_LIST, F(hidden), 1, 1 << 20, NONE, "400",
     "fully connected widths, comma-separated, or none (after the conv stages; the decoder mirrors them)",
     FIXED},
    {"model", "latent", K_INT, F(latent), 1, 1 << 16, NONE, "20", "latent dimension Z", FIXED},
    {"model", "activation", K_ENUM, F(activation), 0, 0, act_names, "relu", "hidden activation", FIXED},
    {"model", "likelihood", K_ENUM, F(likelihood), 0, 0, lik_names, "bernoulli", "decoder likelihood p(x|z)",
     FIXED},
    {"model", "obs_logvar", K_FLOAT, F(obs_logvar), -20, 20, NONE, "0",
     "Gaussian likelihood log variance (fixed, or initial value when learned)", FIXED},
    {"optim", "name", K_ENUM, F(optim), 0, 0, optim_names, "adam", "optimizer", FIXED},
    {"optim", "lr", K_FLOAT, F(lr), 0, 1e6, NONE, "0.001", "learning rate (epsilon in the notes)", 0},
    {"optim", "momentum", K_UNIT, F(momentum), 0, 1, NONE, "0", "momentum (sgd; rmsprop with nesterov)", 0},
    {"optim", "nesterov", K_BOOL, F(nesterov), 0, 0, NONE, "false", "Nesterov momentum (sgd, rmsprop)", 0},
    {"optim", "rho", K_UNIT, F(rho), 0, 1, NONE, "0.9", "rmsprop decay rate", 0},
    {"optim", "beta1", K_UNIT, F(beta1), 0, 1, NONE, "0.9", "adam first-moment decay", 0},
    {"optim", "beta2", K_UNIT, F(beta2), 0, 1, NONE, "0.999", "adam second-moment decay", 0},
    {"optim", "eps", K_FLOAT, F(eps), 0, 1, NONE, "1e-8", "adam denominator constant", 0},
    {"optim", "delta", K_FLOAT, F(delta), 0, 1, NONE, "0",
     "adagrad/rmsprop constant; 0 picks the notes' 1e-7 (adagrad) or 1e-6 (rmsprop)", 0},
    {"optim", "weight_decay", K_FLOAT, F(weight_decay), 0, 1e3, NONE, "0", "L2 penalty (decoupled for adamw)",
     0},
    {"optim", "schedule", K_ENUM, F(schedule), 0, 0, sched_names, "constant", "learning-rate schedule", 0},
    {"optim", "warmup_steps", K_INT, F(warmup_steps), 0, 1e12, NONE, "0",
     "linear warm-up steps (warmup, cosine)", 0},
    {"optim", "min_lr", K_FLOAT, F(min_lr), 0, 1e6, NONE, "0", "final learning rate of cosine", 0},
    {"train", "epochs", K_INT, F(epochs), 1, 1e9, NONE, "10", "epochs", 0},
    {"train", "batch_size", K_INT, F(batch_size), 1, 1 << 24, NONE, "128",
     "global batch B (each of P ranks takes B/P)", FIXED},
    {"train", "micro_batch", K_INT, F(micro_batch), 1, 1 << 24, NONE, "16",
     "reproducible mode: fixed micro-batch whose gradient is summed exactly", FIXED},
    {"train", "seed", K_U64, F(seed), 0, 0, NONE, "1", "seed of all randomness", FIXED},
    {"train", "reproducible", K_BOOL, F(reproducible), 0, 0, NONE, "false",
     "exact int64 gradient reduction: bit-identical for any P", FIXED},
    {"train", "beta", K_FLOAT, F(beta), 0, 1e6, NONE, "1", "KL weight", 0},
    {"train", "kl_warmup_steps", K_INT, F(kl_warmup_steps), 0, 1e12, NONE, "0",
     "steps over which the KL weight rises linearly from 0 to beta", 0},
    {"train", "clip_norm", K_FLOAT, F(clip_norm), 0, 1e12, NONE, "0",
     "clip gradients to this global norm (0: off)", 0},
    {"train", "log_every", K_INT, F(log_every), 1, 1e9, NONE, "100", "steps between progress lines", 0},
    {"train", "max_skipped", K_INT, F(max_skipped), 1, 1e9, NONE, "10",
     "consecutive non-finite steps before the run aborts", 0},
    {"train", "replica_check_every", K_INT, F(replica_check_every), 0, 1e12, NONE, "1000",
     "steps between parameter-hash checks across ranks (0: off)", 0},
    {"train", "max_steps", K_INT, F(max_steps), 0, 1e15, NONE, "0",
     "stop after this many steps (0: all epochs)", 0},
    {"ckpt", "every_steps", K_INT, F(ckpt_every_steps), 0, 1e15, NONE, "0",
     "checkpoint every N steps (0: off)", 0},
    {"ckpt", "every_seconds", K_FLOAT, F(ckpt_every_seconds), 0, 1e9, NONE, "600",
     "checkpoint every T seconds (0: off)", 0},
    {"ckpt", "keep", K_INT, F(ckpt_keep), 1, 1e6, NONE, "3", "checkpoints kept", 0},
    {"ckpt", "direct_io", K_BOOL, F(ckpt_direct_io), 0, 0, NONE, "true",
     "write and read checkpoints with O_DIRECT, past the page cache, where the file system allows it; "
     "false: through the page cache (see docs/performance.md)",
     0},
    {"comm", "bucket_mb", K_FLOAT, F(bucket_mb), 0.001, 1e5, NONE, "4",
     "gradient bucket size (MiB) for overlapped allreduce", 0},
    {"comm", "overlap", K_BOOL, F(overlap), 0, 0, NONE, "false",
     "start each bucket's MPI_Iallreduce while backward runs; false: one blocking allreduce "
     "(faster on shared memory, see docs/performance.md)",
     0},
    {"comm", "shared_memory", K_BOOL, F(shared_memory), 0, 0, NONE, "true",
     "within a node, reduce gradients through an MPI-3 shared-memory window and let each rank run the "
     "optimizer on its slice of the parameters (float mode without overlap); false: one MPI_Allreduce "
     "and the whole optimizer step on every rank",
     0},
    {"comm", "sliced_gradients", K_ENUM, F(sliced_gradients), 0, 0, sliced_names, "auto",
     "with comm.shared_memory, each rank computes only its slice's parameter gradients, from the layer "
     "inputs and output gradients of every rank of the node (fully connected models); auto: where those "
     "activations of the node's batch are no more values than the parameters, so that they move less "
     "than whole gradients would; false: each rank computes all of them and the node sums them",
     0},
    {"comm", "timeout_s", K_FLOAT, F(timeout_s), 0, 1e7, NONE, "600",
     "end the job when a rank waits longer than this (seconds) in one collective or collective "
     "checkpoint I/O: a dead node or a cut link (0: off)",
     0},
    {"run", "dir", K_STR, F(run_dir), 0, 0, NONE, "runs/default",
     "run directory: config.ini, metrics.jsonl, ckpt/. Must be new, empty (job files `*.out *.err *.log "
     "*.ini "
     "*.sh *.sbatch` aside) or an earlier run's; `/` and a directory of other files are refused",
     0},
};
#undef F
#define N_KEYS (sizeof keys / sizeof keys[0])

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

static int section_known(const char *section)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section))
            return 1;
    return 0;
}

/* "a, b, c" listing of the keys of a section, or of the sections. */
static void list_names(char *out, size_t out_bytes, const char *section)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *name;
        if (section) {
            if (strcmp(keys[i].section, section))
                continue;
            name = keys[i].name;
        } else {
            if (i > 0 && !strcmp(keys[i - 1].section, keys[i].section))
                continue;
            name = keys[i].section;
        }
        n += (size_t)snprintf(out + n, n < out_bytes ? out_bytes - n : 0, "%s%s", n ? ", " : "", name);
    }
}

static void enum_list(char *out, size_t out_bytes, const char *const *names)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; names[i]; i++)
        n += (size_t)snprintf(out + n, n < out_bytes ? out_bytes - n : 0, "%s%s", i ? "|" : "", names[i]);
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    /* Decimal only (docs/config.md): strtod also takes "0x10". */
    if (s[strspn(s, "0123456789+-.eE \t")])
        return -1;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == s || *end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_long(const char *s, long *out)
{
    double v;
    /* Accept "1e6" and "128"; reject fractions. */
    if (parse_double(s, &v) || v != floor(v) || fabs(v) > 9e15)
        return -1;
    *out = (long)v;
    return 0;
}

/*
 * Parsers of one value each, by key type: write the field, or return -1
 * with err saying what was expected and what was found.
 */
static int set_int(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    long l;
    if (parse_long(value, &l) || l < k->min || l > k->max) {
        snprintf(err, err_bytes, "[%s] %s: expected an integer in [%.0f, %.0f], found '%s'", k->section,
                 k->name, k->min, k->max, value);
        return -1;
    }
    *(long *)field = l;
    return 0;
}

static int set_u64(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    char *end;
    errno = 0;
    unsigned long long u = strtoull(value, &end, 10); /* "010" is ten, not octal eight */
    if (end == value || *end || errno || value[0] == '-') {
        snprintf(err, err_bytes, "[%s] %s: expected a non-negative integer, found '%s'", k->section, k->name,
                 value);
        return -1;
    }
    *(uint64_t *)field = (uint64_t)u;
    return 0;
}

static int set_float(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    double d;
    if (parse_double(value, &d) || d < k->min || d > k->max) {
        snprintf(err, err_bytes, "[%s] %s: expected a number in [%g, %g], found '%s'", k->section, k->name,
                 k->min, k->max, value);
        return -1;
    }
    *(double *)field = d;
    return 0;
}

static int set_unit(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    double d;
    if (parse_double(value, &d) || d < 0 || d >= 1) {
        snprintf(err, err_bytes, "[%s] %s: expected a number in [0, 1) (1 excluded), found '%s'", k->section,
                 k->name, value);
        return -1;
    }
    *(double *)field = d;
    return 0;
}

static int set_bool(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
        *(int *)field = 1;
    else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
        *(int *)field = 0;
    else {
        snprintf(err, err_bytes, "[%s] %s: expected true|false, found '%s'", k->section, k->name, value);
        return -1;
    }
    return 0;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int set_str(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    if (has_control(value)) {
        snprintf(err, err_bytes, "[%s] %s: expected text without control characters (newline, tab, ...)",
                 k->section, k->name);
        return -1;
    }
    if (!value[0] || strlen(value) >= CONFIG_STR_MAX) {
        snprintf(err, err_bytes, "[%s] %s: expected a non-empty string under %d bytes, found %zu bytes",
                 k->section, k->name, CONFIG_STR_MAX, strlen(value));
        return -1;
    }
    strcpy(field, value);
    return 0;
}

static int set_enum(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    for (int i = 0; k->names[i]; i++) {
        if (!strcmp(k->names[i], value)) {
            *(int *)field = i;
            return 0;
        }
    }
    char allowed[512];
    enum_list(allowed, sizeof allowed, k->names);
    snprintf(err, err_bytes, "[%s] %s: expected one of %s, found '%s'", k->section, k->name, allowed, value);
    return -1;
}

/* A comma-separated list into a struct config_list; "none" is the empty list. */
static int set_list(const struct key *k, void *field, const char *value, char *err, size_t err_bytes)
{
    struct config_list list = {0};
    long l;
    for (const char *p = strcmp(value, "none") ? value : ""; *p; p += *p == ',') {
        char item[64];
        size_t len = strcspn(p, ",");
        if (len >= sizeof item || list.n == CONFIG_MAX_LIST)
            goto bad_list;
        memcpy(item, p, len);
        item[len] = 0;
        if (parse_long(item, &l) || l < k->min || l > k->max)
            goto bad_list;
        list.v[list.n++] = (size_t)l;
        p += len;
    }
    if (list.n == 0 && strcmp(value, "none"))
        goto bad_list;
    memcpy(field, &list, sizeof list);
    return 0;
bad_list:
    snprintf(err, err_bytes,
             "[%s] %s: expected 1 to %d comma-separated integers in [%.0f, %.0f], or none, found '%s'",
             k->section, k->name, CONFIG_MAX_LIST, k->min, k->max, value);
    return -1;
}

int config_set_kv(struct config *cfg, const char *section, const char *name, const char *value, char *err,
                  size_t err_bytes)
{
    char allowed[512];
    if (!section_known(section)) {
        list_names(allowed, sizeof allowed, NULL);
        snprintf(err, err_bytes, "unknown section [%s]; allowed sections: %s", section, allowed);
        return -1;
    }
    const struct key *k = find_key(section, name);
    if (!k) {
        list_names(allowed, sizeof allowed, section);
        snprintf(err, err_bytes, "unknown key '%s' in [%s]; allowed keys: %s", name, section, allowed);
        return -1;
    }
    void *field = (char *)cfg + k->offset;
    switch (k->type) {
    case K_INT:
        return set_int(k, field, value, err, err_bytes);
    case K_U64:
        return set_u64(k, field, value, err, err_bytes);
    case K_FLOAT:
        return set_float(k, field, value, err, err_bytes);
    case K_UNIT:
        return set_unit(k, field, value, err, err_bytes);
    case K_BOOL:
        return set_bool(k, field, value, err, err_bytes);
    case K_STR:
        return set_str(k, field, value, err, err_bytes);
    case K_ENUM:
        return set_enum(k, field, value, err, err_bytes);
    case K_LIST:
        return set_list(k, field, value, err, err_bytes);
    }
    return -1;
}

void config_defaults(struct config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        int rc = config_set_kv(cfg, keys[i].section, keys[i].name, keys[i].def, err, sizeof err);
        (void)rc; /* defaults are valid by construction; test_config checks it */
    }
}

/*
 * The INI reader. It is ours rather than inih's because the packaged inih
 * cuts lines at 200 bytes (a long run.dir broke every stored config) and
 * joins an indented line to the key above it (an indented "128" after
 * "hidden = 64" silently set hidden to 128). Here a line may be any length,
 * every line is a comment, a [section] or "key = value", and a key set twice
 * in one file is an error.
 */
struct ini_ctx {
    struct config *cfg;
    char section[64];
    int line;
    int set_on[N_KEYS]; /* line that set each key, 0: not yet */
    char err[1024];
};

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = 0;
    return s;
}

/* Cut an inline comment: ';' or '#' after whitespace. */
static void cut_comment(char *s)
{
    for (char *c = s; *c; c++)
        if ((*c == ';' || *c == '#') && c > s && (c[-1] == ' ' || c[-1] == '\t')) {
            *c = 0;
            return;
        }
}

static int ini_section(struct ini_ctx *ctx, char *s)
{
    char *close = strchr(s, ']'), *rest = close ? trim(close + 1) : NULL;
    if (!close || (*rest && *rest != ';' && *rest != '#') || (size_t)(close - s - 1) >= sizeof ctx->section) {
        snprintf(ctx->err, sizeof ctx->err, "expected '[section]', found '%s'", s);
        return -1;
    }
    *close = 0;
    strcpy(ctx->section, trim(s + 1));
    /* Refused here, not at its first key: an empty unknown section is a typo too. */
    if (!section_known(ctx->section)) {
        char allowed[256];
        list_names(allowed, sizeof allowed, NULL);
        snprintf(ctx->err, sizeof ctx->err, "unknown section [%s]; allowed sections: %s", ctx->section,
                 allowed);
        return -1;
    }
    return 0;
}

static int ini_key(struct ini_ctx *ctx, char *s)
{
    char *eq = strchr(s, '=');
    if (!eq || eq == s) {
        snprintf(ctx->err, sizeof ctx->err, "expected 'key = value', '[section]' or a comment, found '%s'",
                 s);
        return -1;
    }
    if (!ctx->section[0]) {
        snprintf(ctx->err, sizeof ctx->err, "'%s' comes before any [section]", s);
        return -1;
    }
    *eq = 0;
    char *name = trim(s), *value = eq + 1;
    const struct key *k = find_key(ctx->section, name);
    /* Inline comments follow numbers and names, never text: a path may hold " #". */
    if (!k || k->type != K_STR)
        cut_comment(value);
    value = trim(value);
    if (k && ctx->set_on[k - keys]) {
        snprintf(ctx->err, sizeof ctx->err, "[%s] %s is set twice (line %d and here)", ctx->section, name,
                 ctx->set_on[k - keys]);
        return -1;
    }
    if (config_set_kv(ctx->cfg, ctx->section, name, value, ctx->err, sizeof ctx->err))
        return -1;
    ctx->set_on[k - keys] = ctx->line;
    return 0;
}

/* Parse `text` (modified in place) line by line; 0, or -1 with ctx->err set. */
static int ini_parse(struct ini_ctx *ctx, char *text)
{
    for (char *next, *line = text; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        ctx->line++;
        if (line[0] == ' ' || line[0] == '\t') {
            char *t = trim(line);
            if (*t && *t != ';' && *t != '#' && !strchr(t, '=') && *t != '[') {
                snprintf(ctx->err, sizeof ctx->err,
                         "indented line '%s': a value cannot continue on the next line", t);
                return -1;
            }
        }
        char *s = trim(line);
        if (!*s || *s == ';' || *s == '#')
            continue;
        if (*s == '[' ? ini_section(ctx, s) : ini_key(ctx, s))
            return -1;
    }
    return 0;
}

/* A config file is small: read it whole (refusing anything over 1 MiB). */
static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_error("%s: cannot open config file: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc((1 << 20) + 1);
    size_t n = text ? fread(text, 1, 1 << 20, f) : 0;
    int too_big = n == 1 << 20 && fgetc(f) != EOF;
    int failed = !text || ferror(f) || too_big || memchr(text, 0, n);
    fclose(f);
    if (failed) {
        log_error("%s: not a config file: expected INI text under 1 MiB, found %s", path,
                  too_big ? "a larger file" : "binary or unreadable content");
        free(text);
        return NULL;
    }
    text[n] = 0;
    return text;
}

int config_load_file(struct config *cfg, const char *path)
{
    if (path_check_regular(path, "config file"))
        return -1;
    char *text = read_small_file(path);
    if (!text)
        return -1;
    struct ini_ctx *ctx = calloc(1, sizeof *ctx);
    int rc = -1;
    if (ctx) {
        *ctx = (struct ini_ctx){.cfg = cfg};
        rc = ini_parse(ctx, text);
        if (rc)
            log_error("%s:%d: %s", path, ctx->line, ctx->err);
    }
    free(ctx);
    free(text);
    return rc;
}

int config_from_string(struct config *cfg, const char *text, char *err, size_t err_bytes)
{
    char *copy = strdup(text);
    struct ini_ctx *ctx = calloc(1, sizeof *ctx);
    int rc = -1;
    if (copy && ctx) {
        *ctx = (struct ini_ctx){.cfg = cfg};
        rc = ini_parse(ctx, copy);
        if (rc)
            snprintf(err, err_bytes, "stored config line %d: %s", ctx->line, ctx->err);
    } else {
        snprintf(err, err_bytes, "out of memory reading the stored config");
    }
    free(ctx);
    free(copy);
    return rc;
}

int config_set(struct config *cfg, const char *assignment, const char *origin)
{
    char err[768];
    char *buf = strdup(assignment);
    VAE_ASSERT(buf);
    char *eq = strchr(buf, '=');
    char *dot = strchr(buf, '.');
    int rc = -1;
    if (!eq || !dot || dot > eq) {
        log_error("%s '%s': expected section.key=value (e.g. optim.lr=0.001)", origin, assignment);
    } else {
        *eq = 0;
        *dot = 0;
        rc = config_set_kv(cfg, trim(buf), trim(dot + 1), trim(eq + 1), err, sizeof err);
        if (rc)
            log_error("%s '%.200s%s': %s", origin, assignment, strlen(assignment) > 200 ? "..." : "", err);
    }
    free(buf);
    return rc;
}

/* The conv stages: at least one, and kernel, stride, padding given once or per stage. */
static int validate_conv(const struct config *cfg, char *err, size_t err_bytes)
{
    const struct config_list *per_stage[] = {&cfg->kernel, &cfg->stride, &cfg->padding};
    const char *names[] = {"kernel", "stride", "padding"};
    if (cfg->channels.n == 0) {
        snprintf(err, err_bytes, "[model] channels: model.arch = conv needs at least one stage, found none");
        return -1;
    }
    for (int i = 0; i < 3; i++)
        if (per_stage[i]->n != 1 && per_stage[i]->n != cfg->channels.n) {
            snprintf(err, err_bytes, "[model] %s: expected one value or one per stage (%zu), found %zu",
                     names[i], cfg->channels.n, per_stage[i]->n);
            return -1;
        }
    return 0;
}

int config_validate(const struct config *cfg, char *err, size_t err_bytes)
{
    if (cfg->arch == ARCH_CONV && validate_conv(cfg, err, err_bytes))
        return -1;
    if (cfg->reproducible && cfg->batch_size % cfg->micro_batch) {
        snprintf(err, err_bytes,
                 "[train] micro_batch = %ld must divide batch_size = %ld in reproducible mode",
                 cfg->micro_batch, cfg->batch_size);
        return -1;
    }
    if (cfg->schedule == SCHED_COSINE && cfg->min_lr > cfg->lr) {
        snprintf(err, err_bytes, "[optim] min_lr = %g must not exceed lr = %g", cfg->min_lr, cfg->lr);
        return -1;
    }
    return 0;
}

/* The shortest text that reads back to the same double: 0.0003, not
 * 0.00029999999999999997. */
static void write_double(double v, FILE *f)
{
    char buf[32];
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, f);
}

static void write_value(const struct config *cfg, const struct key *k, FILE *f)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case K_INT:
        fprintf(f, "%ld", *(const long *)field);
        break;
    case K_U64:
        fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case K_FLOAT:
    case K_UNIT:
        write_double(*(const double *)field, f);
        break;
    case K_BOOL:
        fputs(*(const int *)field ? "true" : "false", f);
        break;
    case K_STR:
        fputs(field, f);
        break;
    case K_ENUM:
        fputs(k->names[*(const int *)field], f);
        break;
    case K_LIST: {
        const struct config_list *l = (const struct config_list *)field;
        for (size_t i = 0; i < l->n; i++)
            fprintf(f, "%s%zu", i ? "," : "", l->v[i]);
        if (l->n == 0)
            fputs("none", f);
        break;
    }
    }
}

int config_write(const struct config *cfg, FILE *f)
{
    const char *section = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(section, keys[i].section)) {
            section = keys[i].section;
            fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
        }
        fprintf(f, "%s = ", keys[i].name);
        write_value(cfg, &keys[i], f);
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

char *config_to_string(const struct config *cfg)
{
    char *buf = NULL;
    size_t bytes = 0;
    FILE *f = open_memstream(&buf, &bytes);
    if (!f)
        return NULL;
    config_write(cfg, f);
    fclose(f);
    return buf;
}

void config_write_reference(FILE *f)
{
    char allowed[256];
    fprintf(f, "| key | default | allowed | meaning |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        switch (k->type) {
        case K_ENUM:
            enum_list(allowed, sizeof allowed, k->names);
            break;
        case K_BOOL:
            strcpy(allowed, "true|false");
            break;
        case K_INT:
        case K_LIST:
            snprintf(allowed, sizeof allowed, "integer in [%.0f, %.0f]%s", k->min, k->max,
                     k->type == K_LIST ? ", comma-separated, or none" : "");
            break;
        case K_FLOAT:
            snprintf(allowed, sizeof allowed, "number in [%g, %g]", k->min, k->max);
            break;
        case K_UNIT:
            strcpy(allowed, "number in [0, 1)");
            break;
        case K_U64:
        case K_STR:
            strcpy(allowed, k->type == K_U64 ? "non-negative integer" : "text");
            break;
        }
        fprintf(f, "| `%s.%s` | `%s` | ", k->section, k->name, k->def);
        for (const char *c = allowed; *c; c++) /* '|' would end the markdown cell */
            fputs(*c == '|' ? "\\|" : (char[2]){*c, 0}, f);
        fprintf(f, " | %s%s |\n", k->doc, k->fixed ? " (fixed on resume)" : "");
    }
}

/* A key's value as text (into a caller's buffer). */
static void value_text(const struct config *cfg, const struct key *k, char *out, size_t out_bytes)
{
    char *buf = NULL;
    size_t bytes = 0;
    FILE *f = open_memstream(&buf, &bytes);
    if (f) {
        write_value(cfg, k, f);
        fclose(f);
    }
    snprintf(out, out_bytes, "%s", buf ? buf : "?");
    free(buf);
}

int config_diff(const struct config *was, const struct config *now, int fixed, char *out, size_t out_bytes)
{
    int n_diff = 0;
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].fixed != fixed)
            continue;
        char a[CONFIG_STR_MAX], b[CONFIG_STR_MAX];
        value_text(was, &keys[i], a, sizeof a);
        value_text(now, &keys[i], b, sizeof b);
        if (!strcmp(a, b))
            continue;
        n_diff++;
        used += (size_t)snprintf(out + used, used < out_bytes ? out_bytes - used : 0,
                                 "\n  [%s] %s: checkpoint %s, now %s", keys[i].section, keys[i].name, a, b);
    }
    return n_diff;
}

const char *config_act_name(int act)
{
    return act_names[act];
}

const char *config_optim_name(int optim)
{
    return optim_names[optim];
}
