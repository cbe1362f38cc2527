/*
 * Collective checkpoints with atomic commit (see ckpt.h).
 *
 * Parameters and optimizer state are replicated on every rank, so each rank
 * writes only its contiguous slice [r·n/P, (r+1)·n/P) of each flat buffer
 * (collective MPI-IO), and every rank can compute the same CRC-32 of the
 * whole buffer, stored as the dataset's "crc32" attribute and checked on load.
 */
#include "data/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/path.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "data/h5util.h"

#define PATH_BYTES (CONFIG_STR_MAX + 64)
#define MAX_STEP   1000000000000000LL /* train.max_steps' limit */

/*
 * The header's numeric fields, one row each: this table drives the write,
 * the read with its range checks, and `vae_dist info` (ckpt_header_*).
 * `format`, `version` and `config` are not numbers and stand apart; the
 * checks that relate fields to each other are in check_header.
 */
enum field_type { FT_I64, FT_LONG, FT_U64, FT_SIZE };
struct header_field {
    const char *name;
    size_t offset; /* in struct ckpt_meta */
    enum field_type type;
    long long lo, hi; /* the range a read accepts (lo > hi: any value) */
    int optional;     /* may be missing (checkpoints before it): then `absent` */
    long absent;
};
#define M(field) offsetof(struct ckpt_meta, field)
static const struct header_field header[] = {
    {"step", M(step), FT_I64, 0, MAX_STEP, 0, 0},
    {"epoch", M(epoch), FT_LONG, 0, MAX_STEP, 0, 0},
    {"seed", M(seed), FT_U64, 1, 0, 0, 0},
    {"world_size", M(world_size), FT_LONG, 1, 1LL << 24, 0, 0},
    {"n_params", M(n_params), FT_SIZE, 1, 1LL << 34, 0, 0},
    {"optim", M(optim), FT_LONG, 0, N_OPTIMS - 1, 0, 0},
    {"optim_t", M(optim_t), FT_I64, 0, MAX_STEP, 0, 0},
    {"steps_skipped", M(steps_skipped), FT_I64, 0, MAX_STEP, 1, -1},
    {"data_n_train", M(data_n_train), FT_LONG, 1, UINT32_MAX, 0, 0},
    {"data_n_dim", M(data_n_dim), FT_LONG, 1, 1LL << 30, 0, 0},
    {"image_channels", M(image_channels), FT_LONG, 0, 1 << 24, 1, 0},
    {"image_rows", M(image_rows), FT_LONG, 0, 1 << 24, 0, 0},
    {"image_cols", M(image_cols), FT_LONG, 0, 1 << 24, 0, 0},
    {"data_crc32", M(data_crc32), FT_LONG, 0, UINT32_MAX, 1, -1},
    {"data_labels_crc32", M(data_labels_crc32), FT_LONG, 0, UINT32_MAX, 1, -1},
};
#undef M
#define N_HEADER (sizeof header / sizeof header[0])

static long field_get(const struct ckpt_meta *m, const struct header_field *h)
{
    const char *p = (const char *)m + h->offset;
    switch (h->type) {
    case FT_I64:
        return (long)*(const int64_t *)p;
    case FT_LONG:
        return *(const long *)p;
    case FT_U64:
        return (long)*(const uint64_t *)p;
    case FT_SIZE:
        return (long)*(const size_t *)p;
    }
    return 0;
}

static void field_set(struct ckpt_meta *m, const struct header_field *h, long v)
{
    char *p = (char *)m + h->offset;
    switch (h->type) {
    case FT_I64:
        *(int64_t *)p = v;
        break;
    case FT_LONG:
        *(long *)p = v;
        break;
    case FT_U64:
        *(uint64_t *)p = (uint64_t)v;
        break;
    case FT_SIZE:
        *(size_t *)p = (size_t)v;
        break;
    }
}

size_t ckpt_header_count(void)
{
    return N_HEADER;
}

const char *ckpt_header_field(const struct ckpt_meta *m, size_t i, double *value)
{
    long v = field_get(m, &header[i]);
    *value = header[i].optional && v == header[i].absent && v < 0 ? NAN : (double)v;
    return header[i].name;
}

static uint32_t crc_of(const float *p, size_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *b = (const unsigned char *)p;
    size_t bytes = n * sizeof *p;
    for (size_t off = 0; off < bytes; off += 1u << 30) {
        size_t k = bytes - off < (1u << 30) ? bytes - off : 1u << 30;
        crc = crc32(crc, b + off, (uInt)k);
    }
    return (uint32_t)crc;
}

/*
 * CRC-32 of a whole buffer of n values, each rank checksumming only its
 * range [lo, hi), whose values start at part: the ranges' CRCs are gathered
 * and joined in file order with crc32_combine, so the cost per rank falls
 * with P. The ranges must tile [0, n); -1 (on every rank) if they do not.
 * Collective.
 */
static int64_t crc_ranges(const struct comm *c, const float *part, size_t n, size_t lo, size_t hi)
{
    int p = comm_size(c);
    uint64_t mine[3] = {lo, hi, crc_of(part, hi - lo)};
    uint64_t *all = malloc(3 * (size_t)p * sizeof *all);
    VAE_ASSERT(all);
    comm_allgather_bytes(c, mine, sizeof mine, all);
    uLong crc = crc32(0L, Z_NULL, 0);
    size_t at = 0;
    for (int k = 0; k < p; k++) { /* the range that starts where the last ended (an empty one adds nothing) */
        int q = 0;
        while (q < p && !(all[3 * q] == at && all[3 * q + 1] > at))
            q++;
        if (q == p)
            break;
        crc = crc32_combine(crc, (uLong)all[3 * q + 2], (z_off_t)((all[3 * q + 1] - at) * sizeof *part));
        at = all[3 * q + 1];
    }
    free(all);
    return at == n ? (int64_t)crc : -1;
}

/* crc_ranges over each rank's block of n / P. */
static uint32_t crc_distributed(const struct comm *c, const float *buf, size_t n)
{
    size_t lo, hi;
    dataset_block(n, 1, comm_size(c), comm_rank(c), &lo, &hi);
    return (uint32_t)crc_ranges(c, buf + lo, n, lo, hi);
}

/* Write a buffer of n values as the 1-D float32 dataset `name`, each rank
 * its range [lo, hi), whose values start at part, with the CRC-32 of the
 * whole buffer as its attribute "crc32". */
static int write_flat(const struct comm *c, const struct comm *node, hid_t f, const char *name,
                      const float *part, size_t n, size_t lo, size_t hi, const char *direct_path,
                      size_t *direct_bytes)
{
    /* Agreed before the next collective: a rank whose write failed (disk
     * full) must not leave the others waiting in a different call. */
    if (!comm_agree(c, h5_write_floats(f, name, n, lo, hi - lo, part, node, direct_path, direct_bytes) == 0))
        return -1;
    int64_t crc = crc_ranges(c, part, n, lo, hi);
    VAE_ASSERT(crc >= 0); /* the caller's ranges do not tile the buffer: a bug, not a bad file */
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    int rc = d >= 0 && h5_attr_put_long(d, "crc32", (long)crc) == 0 ? 0 : -1;
    if (d >= 0)
        H5_CHECK(H5Dclose(d));
    return rc;
}

/*
 * Read the 1-D float32 dataset of b into b on every rank and check its
 * CRC-32 against the stored one. A buffer held whole: each rank reads its
 * block of n / P (collective), the blocks' CRC-32 is checked and the blocks
 * are shared with an allgather. A buffer held in part: each rank reads what
 * it holds, and checks the CRC-32 over the ranks' ranges [lo, hi), which
 * tile the buffer and lie inside what each holds. Collective: every rank
 * returns the same result.
 */
static int read_flat(const struct comm *c, hid_t f, const char *path, const struct ckpt_buffer *b, size_t lo,
                     size_t hi, int direct)
{
    const char *name = b->name;
    float *buf = b->data;
    size_t n = b->n;
    int rank, is_signed, ok = 0;
    size_t dims[4], elem;
    H5T_class_t cls;
    long crc = -1;
    hid_t d = -1;
    if (h5_dataset_shape(f, path, name, &rank, dims, &cls, &elem, &is_signed) == 0) {
        if (rank != 1 || dims[0] != n || cls != H5T_FLOAT || elem != 4)
            log_error("%s: dataset '%s' should be (%zu) float32, found %d-D (%zu) of %zu-byte %s", path, name,
                      n, rank, dims[0], elem, cls == H5T_FLOAT ? "floats" : "non-floats");
        else if ((d = H5Dopen2(f, name, H5P_DEFAULT)) >= 0 && h5_attr_get_long(d, path, "crc32", &crc) == 0)
            ok = 1;
    }
    if (d >= 0)
        H5_CHECK(H5Dclose(d));
    /* The header is the same file for all: still, agree before the collective read. */
    if (!comm_agree(c, ok))
        return -1;
    if (b->held_hi) {
        VAE_ASSERT(b->held_lo <= lo && lo <= hi && hi <= b->held_hi && b->held_hi <= n);
        ok = h5_read_floats(f, path, name, b->held_lo, b->held_hi - b->held_lo, buf, direct) == 0;
        if (!comm_agree(c, ok))
            return -1;
        int64_t computed = crc_ranges(c, buf + (lo - b->held_lo), n, lo, hi);
        VAE_ASSERT(computed >= 0); /* the caller's ranges do not tile the buffer: a bug, not a bad file */
        if ((uint32_t)crc != (uint32_t)computed) {
            log_error("%s: checksum mismatch in '%s' (stored %08lx, computed %08x): the file is damaged",
                      path, name, crc, (uint32_t)computed);
            return -1;
        }
        return 0;
    }
    int p = comm_size(c);
    size_t *count = malloc(2 * (size_t)p * sizeof *count);
    VAE_ASSERT(count);
    size_t *off = count + p;
    for (int q = 0; q < p; q++) {
        size_t q_hi;
        dataset_block(n, 1, p, q, &off[q], &q_hi);
        count[q] = q_hi - off[q];
    }
    size_t me = (size_t)comm_rank(c);
    ok = h5_read_floats(f, path, name, off[me], count[me], buf + off[me], direct) == 0;
    if (!comm_agree(c, ok)) {
        free(count);
        return -1;
    }
    uint32_t computed = crc_distributed(c, buf, n);
    if ((uint32_t)crc != computed) {
        log_error("%s: checksum mismatch in '%s' (stored %08lx, computed %08x): the file is damaged", path,
                  name, crc, computed);
        free(count);
        return -1;
    }
    comm_allgatherv_f32(c, buf, count, off);
    free(count);
    return 0;
}

/* A row of /model/layout, and its HDF5 compound type (caller closes it):
 * with_shape adds the tensor's PyTorch shape (uint64[4], 0 past its rank),
 * which readers may skip (checkpoints before it have none). */
struct layout_row {
    char name[TENSOR_NAME_BYTES];
    uint64_t off, rows, cols;
    uint64_t shape[TENSOR_MAX_DIMS];
};

static hid_t layout_type(int with_shape)
{
    hid_t st = H5Tcopy(H5T_C_S1);
    H5_CHECK(st);
    H5_CHECK(H5Tset_size(st, TENSOR_NAME_BYTES));
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(struct layout_row));
    H5_CHECK(t);
    H5_CHECK(H5Tinsert(t, "name", offsetof(struct layout_row, name), st));
    H5_CHECK(H5Tinsert(t, "offset", offsetof(struct layout_row, off), H5T_NATIVE_UINT64));
    H5_CHECK(H5Tinsert(t, "rows", offsetof(struct layout_row, rows), H5T_NATIVE_UINT64));
    H5_CHECK(H5Tinsert(t, "cols", offsetof(struct layout_row, cols), H5T_NATIVE_UINT64));
    if (with_shape) {
        hsize_t n = TENSOR_MAX_DIMS;
        hid_t at = H5Tarray_create2(H5T_NATIVE_UINT64, 1, &n);
        H5_CHECK(at);
        H5_CHECK(H5Tinsert(t, "shape", offsetof(struct layout_row, shape), at));
        H5_CHECK(H5Tclose(at));
    }
    H5_CHECK(H5Tclose(st));
    return t;
}

/* Values [lo, hi) of b finite, and >= 0 where they must be; else -1 with a
 * message naming `path` and the element, ending with `consequence`. Local:
 * the caller agrees on it (a buffer held in slices differs from rank to rank). */
static int check_values(const char *path, const struct ckpt_buffer *b, size_t lo, size_t hi,
                        const char *consequence)
{
    size_t held = b->held_hi ? b->held_lo : 0;
    for (size_t i = lo; i < hi; i++) {
        float v = b->data[i - held];
        if (!isfinite(v) || (b->nonneg && v < 0)) {
            log_error("%s: '%s' holds %s value at element %zu (%g)%s: %s", path, b->name,
                      isfinite(v) ? "a negative" : "a non-finite", i, (double)v,
                      isfinite(v) ? ", where the optimizer keeps sums of squares" : "", consequence);
            return -1;
        }
    }
    return 0;
}

/* Rank 0 writes every row; the others take part in the collective write with none. */
static int write_layout(const struct comm *c, hid_t f, const struct tensor_view *layout, size_t n)
{
    struct layout_row *rows = calloc(n + 1, sizeof *rows);
    VAE_ASSERT(rows);
    for (size_t i = 0; i < n; i++) {
        memcpy(rows[i].name, layout[i].name, TENSOR_NAME_BYTES);
        rows[i].off = layout[i].off;
        rows[i].rows = layout[i].rows;
        rows[i].cols = layout[i].cols;
        for (int k = 0; k < TENSOR_MAX_DIMS; k++)
            rows[i].shape[k] = layout[i].shape[k];
    }
    hid_t t = layout_type(1);
    int rc = h5_write_rows(f, "/model/layout", t, t, n, 1, 0, comm_rank(c) ? 0 : n, rows);
    H5_CHECK(H5Tclose(t));
    free(rows);
    return rc;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int name_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
}

/* Checkpoint files step-NNNNNNNN.h5 in dir, newest first; returns count. */
static size_t list_ckpts(const char *dir, char (*names)[64], size_t max)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) && n < max;) {
        unsigned long long s;
        char tail[8];
        if (sscanf(e->d_name, "step-%llu.h%2s", &s, tail) == 2 && !strcmp(tail, "5") &&
            strlen(e->d_name) < 64 && !strstr(e->d_name, ".tmp"))
            strcpy(names[n++], e->d_name);
    }
    closedir(d);
    /* Zero-padded names sort by step (a longer name is a larger step); newest first. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && name_cmp(names[j - 1], names[j]) < 0; j--) {
            char tmp[64];
            strcpy(tmp, names[j]);
            strcpy(names[j], names[j - 1]);
            strcpy(names[j - 1], tmp);
        }
    return n;
}

int ckpt_resolve(const char *arg, char *out, size_t out_bytes)
{
    struct stat st;
    char dir[PATH_BYTES], names[1][64];
    size_t n = strlen(arg);
    const char *base = strrchr(arg, '/') ? strrchr(arg, '/') + 1 : arg;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s/ckpt", arg);
        if (stat(dir, &st) || !S_ISDIR(st.st_mode))
            snprintf(dir, sizeof dir, "%s", arg);
        if (list_ckpts(dir, names, 1) == 0) {
            log_error(
                "%s: a directory without committed checkpoints (step-NNNNNNNN.h5); expected a checkpoint "
                "file, a run directory or its ckpt/latest",
                arg);
            return -1;
        }
        snprintf(out, out_bytes, "%s/%s", dir, names[0]);
        return 0;
    }
    if (!strcmp(base, "latest") && stat(arg, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < 64) {
        FILE *f = fopen(arg, "r");
        char name[64] = "";
        int got = f && fgets(name, sizeof name, f) != NULL;
        if (f)
            fclose(f);
        name[strcspn(name, "\r\n")] = 0;
        unsigned long long step;
        char tail[4];
        if (!got || strchr(name, '/') || sscanf(name, "step-%llu.h%3s", &step, tail) != 2 ||
            strcmp(tail, "5")) {
            log_error("%s: a `latest` pointer should hold one checkpoint name (step-NNNNNNNN.h5), found '%s'",
                      arg, name);
            return -1;
        }
        snprintf(out, out_bytes, "%.*s%s", (int)(base - arg), arg, name);
        return 0;
    }
    snprintf(out, out_bytes, "%s", arg);
    return n < out_bytes ? 0 : -1;
}

int ckpt_archive(const char *run_dir)
{
    char dir[PATH_BYTES], names[1][64];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    if (list_ckpts(dir, names, 1) == 0)
        return 0;
    char stamp[32], moved[PATH_BYTES + 48];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime(&now));
    for (int k = 0; k < 100; k++) {
        snprintf(moved, sizeof moved, "%s/ckpt.before-%s%s%.0d", run_dir, stamp, k ? "-" : "", k);
        if (rename(dir, moved) == 0) {
            if (mkdir(dir, 0777)) {
                log_error("%s: cannot make a new checkpoint directory: %s", dir, strerror(errno));
                return -1;
            }
            log_note("%s held checkpoints of an earlier run: moved to %s (kept, never loaded); --resume none "
                     "starts this run at step 0",
                     dir, moved);
            return 0;
        }
        if (errno != EEXIST && errno != ENOTEMPTY)
            break;
    }
    log_error("%s: cannot move the earlier run's checkpoints aside: %s (HINT: move them yourself, or use "
              "another run.dir)",
              dir, strerror(errno));
    return -1;
}

/* Rank 0: rename into place, fsync, update latest, prune. Returns 0 or -1. */
static int commit(const char *run_dir, const char *tmp, const char *final, const char *base, long keep)
{
    char dir[PATH_BYTES], latest[PATH_BYTES], latest_tmp[PATH_BYTES + 8];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    if (fsync_path(tmp)) {
        log_error("%s: fsync failed: %s", tmp, strerror(errno));
        return -1;
    }
    fault_before_commit();
    if (rename(tmp, final)) {
        log_error("%s: cannot rename into place: %s", final, strerror(errno));
        return -1;
    }
    fsync_path(dir);
    snprintf(latest, sizeof latest, "%s/latest", dir);
    snprintf(latest_tmp, sizeof latest_tmp, "%s/latest.tmp", dir);
    FILE *f = path_fopen_output(latest_tmp, "w", "latest pointer");
    int ok = f && fprintf(f, "%s\n", base) > 0;
    if (f && (fflush(f) || fsync(fileno(f))))
        ok = 0;
    if (f && fclose(f))
        ok = 0;
    if (!ok || rename(latest_tmp, latest)) {
        log_error("%s: cannot update the latest pointer: %s (the checkpoint itself is committed)", latest,
                  strerror(errno));
        unlink(latest_tmp);
        return -1;
    }
    fsync_path(dir);
    /* Prune only after the new one committed; never below one good file. */
    char names[256][64];
    size_t n = list_ckpts(dir, names, 256);
    for (size_t i = (size_t)keep; i < n; i++) {
        char old[PATH_BYTES + 64];
        snprintf(old, sizeof old, "%s/%s", dir, names[i]);
        if (strcmp(names[i], base))
            unlink(old);
    }
    return 0;
}

/* Bytes of every buffer of ct. */
static double content_bytes(const struct ckpt_content *ct)
{
    double n = 0;
    for (size_t i = 0; i < ct->n_buf; i++)
        n += (double)ct->buf[i].n * sizeof(float);
    return n;
}

/*
 * Room first, the cheap check: a write that fails half-way costs a write
 * (write_file then stops every rank together and frees the file's blocks).
 * Data plus 1 MiB and 1 % for the HDF5 structure and the config text. Collective.
 */
static int check_room(const struct comm *c, const char *run_dir, int64_t step, double bytes)
{
    double need = bytes * 1.01 + 1048576.0, avail = need;
    if (comm_rank(c) == 0) {
        char dir[PATH_BYTES];
        struct statvfs sv;
        snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
        if (statvfs(dir, &sv) == 0)
            avail = (double)sv.f_bavail * (double)sv.f_frsize;
    }
    comm_bcast(c, &avail, sizeof avail, 0);
    if (avail >= need || fault_skip_room_check())
        return 0;
    if (comm_rank(c) == 0)
        log_error("%s/ckpt: no room for the checkpoint of step %lld: it needs about %.1f MB, %.1f MB "
                  "are free (disk full?); previous checkpoints are kept",
                  run_dir, (long long)step, need / 1e6, avail / 1e6);
    return -1;
}

static int write_group(hid_t f, const char *name)
{
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    H5_CHECK(H5Gclose(g));
    return 0;
}

/* The header attributes of meta, on the root group: 0, or -1 naming the first that failed. */
static int write_meta(const struct comm *c, hid_t f, const char *tmp, const struct ckpt_meta *m)
{
    struct ckpt_meta own = *m;
    own.world_size = comm_size(c);
    int rc = h5_attr_put_string(f, "format", CKPT_FORMAT) | h5_attr_put_long(f, "version", CKPT_VERSION) |
             h5_attr_put_string(f, "config", m->config ? m->config : "");
    for (size_t i = 0; rc == 0 && i < N_HEADER; i++) {
        if (h5_attr_put_long(f, header[i].name, (long)field_get(&own, &header[i]))) {
            log_error("%s: cannot write attribute '%s'", tmp, header[i].name);
            rc = -1;
        }
    }
    return rc ? -1 : 0;
}

/* Create tmp and write everything into it, collectively; *direct_bytes: this
 * rank's bytes written with O_DIRECT. Returns 0 or -1 (agreed). */
static int write_file(const struct comm *c, const char *tmp, const struct ckpt_meta *meta,
                      const struct ckpt_content *ct, size_t *direct_bytes)
{
    if (!comm_agree(c, comm_rank(c) || path_check_output(tmp, "checkpoint") == 0))
        return -1;
    if (h5_ballast(c, tmp)) {
        if (comm_rank(c) == 0)
            log_error("%s: no room to start the checkpoint: %s; previous checkpoints are kept", tmp,
                      strerror(errno));
        return -1;
    }
    h5_quiet();
    hid_t fapl = h5_fapl_create(c);
    /* Every object of 4 KiB or more starts on a 4 KiB boundary: what O_DIRECT needs. */
    H5_CHECK(H5Pset_alignment(fapl, 4096, 4096));
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5_CHECK(H5Pclose(fapl));
    int ok = f >= 0;
    if (!comm_agree(c, ok)) {
        h5_close_written(c, f, tmp, 1);
        if (!ok)
            log_error("%s: cannot create the checkpoint: %s; previous checkpoints are kept", tmp,
                      h5_create_failure(tmp));
        return -1;
    }
    /* The room checked before may be gone (another job fills the disk): a
     * reservation fails now, while the file holds next to nothing. */
    /* The data; the ballast covers the structure's last writes. */
    double reserve = content_bytes(ct) * 1.01;
    ok = comm_rank(c) || h5_reserve(tmp, reserve) == 0;
    if (!ok)
        log_error("%s: cannot reserve %.1f MB for the checkpoint: %s; previous checkpoints are kept", tmp,
                  reserve / 1e6, strerror(errno));
    if (!comm_agree(c, ok))
        return h5_close_written(c, f, tmp, 0);
    /* Each part agreed before the next: after a failure every rank stops
     * together instead of waiting in different collectives. */
    ok = comm_agree(c,
                    (write_meta(c, f, tmp, meta) | write_group(f, "/model") | write_group(f, "/optim")) == 0);
    struct comm *node = comm_split_node(c); /* its ranks write in turns */
    for (size_t i = 0; ok && i < ct->n_buf; i++) {
        const struct ckpt_buffer *b = &ct->buf[i];
        size_t n = b->n, lo = ct->lo, hi = ct->hi, held = b->held_hi ? b->held_lo : 0;
        if (!hi)
            dataset_block(n, 1, comm_size(c), comm_rank(c), &lo, &hi);
        VAE_ASSERT(lo <= hi && hi <= n && held <= lo && (!b->held_hi || hi <= b->held_hi));
        ok = write_flat(c, node, f, b->name, b->data + (lo - held), n, lo, hi, ct->buffered ? NULL : tmp,
                        direct_bytes) == 0;
    }
    comm_free(node);
    ok = ok && comm_agree(c, write_layout(c, f, ct->layout, ct->n_layout) == 0);
    return h5_close_written(c, f, tmp, ok);
}

int ckpt_save(const struct comm *c, const char *run_dir, const struct ckpt_meta *meta,
              const struct ckpt_content *ct, long keep)
{
    char base[64], tmp[PATH_BYTES + 64], final[PATH_BYTES + 64];
    snprintf(base, sizeof base, "step-%08lld.h5", (long long)meta->step);
    snprintf(final, sizeof final, "%s/ckpt/%s", run_dir, base);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    double t0 = timer_now(), bytes = content_bytes(ct);
    /* A model gone non-finite (or an optimizer state that breaks its
     * invariant) is never committed: under ckpt.keep it would push the good
     * checkpoints out, and no resume could load it. Each rank checks what it writes. */
    int ok = 1;
    for (size_t i = 0; ok && i < ct->n_buf; i++) {
        size_t lo = ct->lo, hi = ct->hi;
        if (!hi)
            dataset_block(ct->buf[i].n, 1, comm_size(c), comm_rank(c), &lo, &hi);
        ok = check_values(final, &ct->buf[i], lo, hi, "not written; the committed checkpoints are kept") == 0;
    }
    if (!comm_agree(c, ok) || check_room(c, run_dir, meta->step, bytes))
        return -1;
    comm_watch_begin("the collective checkpoint write");
    size_t direct_bytes = 0;
    ok = write_file(c, tmp, meta, ct, &direct_bytes) == 0;
    comm_watch_end();
    double t_written = timer_now();
    if (ok && comm_rank(c) == 0)
        ok = commit(run_dir, tmp, final, base, keep) == 0;
    else if (!ok && comm_rank(c) == 0)
        log_error("%s: writing the checkpoint failed (disk full?); previous checkpoints are kept", tmp);
    if (!ok && comm_rank(c) == 0)
        unlink(tmp);
    if (!comm_agree(c, ok))
        return -1;
    double dt = timer_now() - t0, direct = (double)direct_bytes;
    comm_allreduce_sum_f64(c, &direct, 1);
    log_info(
        "checkpoint %s committed (step %lld): %.1f MB in %.3f s, %.0f MB/s (written %.3f s, %.0f %% with "
        "direct I/O; fsync and rename %.3f s)",
        final, (long long)meta->step, bytes / 1e6, dt, bytes / 1e6 / dt, t_written - t0,
        bytes > 0 ? 100 * direct / bytes : 0.0, dt - (t_written - t0));
    return 0;
}

/* A header attribute out of its range: named, with the range and the value. */
static int out_of_range(const char *path, const char *name, long long lo, long long hi, long long found)
{
    log_error("%s: checkpoint attribute '%s' should be in [%lld, %lld], found %lld (damaged or not written "
              "by vae_dist)",
              path, name, lo, hi, found);
    return -1;
}

/* What relates header fields to each other (each is already within its own range). */
static int check_header(const char *path, const struct ckpt_meta *m)
{
    if (m->optim_t > m->step)
        return out_of_range(path, "optim_t", 0, (long long)m->step, (long long)m->optim_t);
    /* Every step is either taken (counted by optim_t, which Adam's bias
     * correction and the schedules read) or skipped: a checkpoint that says
     * otherwise was edited or damaged, and would resume on another path. */
    if (m->steps_skipped >= 0 && m->optim_t + m->steps_skipped != m->step) {
        log_error("%s: checkpoint attributes optim_t = %lld and steps_skipped = %lld do not add up to step = "
                  "%lld (every step is taken or skipped): damaged or edited",
                  path, (long long)m->optim_t, (long long)m->steps_skipped, (long long)m->step);
        return -1;
    }
    if (m->epoch > m->step)
        return out_of_range(path, "epoch", 0, (long long)m->step, m->epoch);
    long ch = m->image_channels, r = m->image_rows, c = m->image_cols;
    if ((r == 0) != (c == 0) || (r == 0) != (ch == 0) || (r && ch * r * c != m->data_n_dim)) {
        log_error("%s: checkpoint attributes image_channels x image_rows x image_cols = %ld x %ld x %ld; "
                  "expected 0 x 0 x 0 or three sizes whose product is data_n_dim = %ld",
                  path, ch, r, c, m->data_n_dim);
        return -1;
    }
    return 0;
}

/* The numeric header fields, each read and range-checked by its row of header[]. */
static int read_fields(hid_t f, const char *path, struct ckpt_meta *meta)
{
    for (size_t i = 0; i < N_HEADER; i++) {
        const struct header_field *h = &header[i];
        long v = h->absent;
        if (!(h->optional && H5Aexists(f, h->name) <= 0) && h5_attr_get_long(f, path, h->name, &v))
            return -1;
        if (h->lo <= h->hi && (v < h->lo || v > h->hi) && !(h->optional && v == h->absent))
            return out_of_range(path, h->name, h->lo, h->hi, v);
        field_set(meta, h, v);
    }
    /* Checkpoints before image_channels held one channel (or none without an image shape). */
    if (meta->image_channels == 0 && meta->image_rows > 0)
        meta->image_channels = 1;
    return check_header(path, meta);
}

/* The config text attribute (malloc'd into meta->config): one string of at most 1 MiB. */
static int read_config_text(hid_t f, const char *path, struct ckpt_meta *meta)
{
    return h5_attr_get_text(f, path, "config", (size_t)1 << 20, &meta->config);
}

/* Validate the header of an open checkpoint. */
static int read_meta(hid_t f, const char *path, struct ckpt_meta *meta)
{
    char fmt[64];
    memset(meta, 0, sizeof *meta);
    if (h5_attr_get_string(f, path, "format", fmt, sizeof fmt))
        return -1;
    if (strcmp(fmt, CKPT_FORMAT)) {
        log_error("%s: attribute 'format' is '%s', expected '%s'", path, fmt, CKPT_FORMAT);
        return -1;
    }
    if (h5_attr_get_long(f, path, "version", &meta->version))
        return -1;
    if (meta->version < 1 || meta->version > CKPT_VERSION) {
        log_error("%s: checkpoint version %ld is not supported (this build reads 1 to %d)", path,
                  meta->version, CKPT_VERSION);
        return -1;
    }
    if (read_fields(f, path, meta))
        return -1;
    hid_t d = H5Dopen2(f, "/model/params", H5P_DEFAULT);
    int bad = d < 0 || h5_attr_get_long(d, path, "crc32", &meta->params_crc32);
    if (d >= 0)
        H5_CHECK(H5Dclose(d));
    if (bad) {
        log_error("%s: dataset '/model/params' or its crc32 attribute is missing", path);
        return -1;
    }
    return read_config_text(f, path, meta);
}

void ckpt_meta_free(struct ckpt_meta *meta)
{
    free(meta->config);
    meta->config = NULL;
}

int ckpt_inspect(const struct comm *c, const char *path, struct ckpt_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    hid_t f = h5_open_read(c, path);
    if (f < 0)
        return -1;
    int ok = read_meta(f, path, meta) == 0;
    H5_CHECK(H5Fclose(f));
    if (c)
        ok = comm_agree(c, ok);
    if (!ok)
        ckpt_meta_free(meta);
    return ok ? 0 : -1;
}

/* The stored layout must equal the expected one, tensor by tensor. */
static int check_layout(hid_t f, const char *path, const struct tensor_view *want, size_t n_want)
{
    int rank, is_signed;
    size_t dims[4], elem;
    H5T_class_t cls;
    if (h5_dataset_shape(f, path, "/model/layout", &rank, dims, &cls, &elem, &is_signed))
        return -1;
    if (cls != H5T_COMPOUND || rank != 1 || dims[0] > 4096) {
        log_error("%s: '/model/layout' should be a 1-D compound table of at most 4096 tensors", path);
        return -1;
    }
    struct layout_row *rows = calloc(dims[0] + 1, sizeof *rows);
    VAE_ASSERT(rows);
    hid_t t = layout_type(0);
    int rc = h5_read_all(f, path, "/model/layout", t, dims[0], rows);
    H5_CHECK(H5Tclose(t));
    if (!rc && dims[0] != n_want) {
        log_error("%s: the checkpoint has %zu tensors, the configured model %zu (different number "
                  "of layers or likelihood)",
                  path, dims[0], n_want);
        rc = -1;
    }
    for (size_t i = 0; !rc && i < n_want; i++) {
        const struct layout_row *got = &rows[i];
        rows[i].name[TENSOR_NAME_BYTES - 1] = 0;
        if (strcmp(got->name, want[i].name) || got->off != want[i].off || got->rows != want[i].rows ||
            got->cols != want[i].cols) {
            log_error("%s: tensor %zu is '%s' of shape (%llu, %llu) in the checkpoint but '%s' of shape "
                      "(%zu, %zu) in the configured model (different model.arch, channels, kernel, "
                      "hidden, latent or dataset shape)",
                      path, i, got->name, (unsigned long long)got->rows, (unsigned long long)got->cols,
                      want[i].name, want[i].rows, want[i].cols);
            rc = -1;
        }
    }
    free(rows);
    return rc;
}

/* The header against what the caller needs (see ckpt_load). */
static int check_meta(const char *path, const struct ckpt_meta *got, const struct ckpt_meta *want,
                      const struct ckpt_content *ct)
{
    if (got->n_params != ct->buf[0].n) {
        log_error("%s: checkpoint has %zu parameters, the configured model %zu", path, got->n_params,
                  ct->buf[0].n);
        return -1;
    }
    if (want->data_n_train > 0 &&
        (got->data_n_train != want->data_n_train || got->data_n_dim != want->data_n_dim)) {
        log_error("%s: checkpoint was trained on %ld samples of dimension %ld, the dataset has %ld of %ld "
                  "(HINT: resume with the same data.path, or start fresh with --resume none)",
                  path, got->data_n_train, got->data_n_dim, want->data_n_train, want->data_n_dim);
        return -1;
    }
    if (want->optim >= 0 && got->optim != want->optim) {
        log_error("%s: checkpoint was trained with optimizer '%s', the config asks for '%s'", path,
                  config_optim_name((int)got->optim), config_optim_name((int)want->optim));
        return -1;
    }
    return 0;
}

int ckpt_load(const struct comm *c, const char *path, const struct ckpt_meta *want,
              const struct ckpt_content *ct, struct ckpt_meta *got)
{
    struct ckpt_meta meta;
    double t0 = timer_now();
    comm_watch_begin("the collective checkpoint read");
    hid_t f = h5_open_read(c, path);
    if (f < 0) {
        comm_watch_end();
        return -1;
    }
    int ok = read_meta(f, path, &meta) == 0, refused = 0;
    if (ok && ct->accept && ct->accept(&meta, ct->accept_arg))
        ok = 0, refused = 1;
    ok = ok && check_layout(f, path, ct->layout, ct->n_layout) == 0;
    ok = ok && check_meta(path, &meta, want, ct) == 0;
    /* Reads below are collective: agree on the header first. */
    ok = comm_agree(c, ok);
    /* Each rank checks what it holds: agreed, since a buffer held in part
     * may be finite on one rank and not on another. */
    for (size_t i = 0; ok && i < ct->n_buf; i++) {
        const struct ckpt_buffer *b = &ct->buf[i];
        size_t lo = ct->lo, hi = ct->hi;
        if (!hi)
            dataset_block(b->n, 1, comm_size(c), comm_rank(c), &lo, &hi);
        ok = read_flat(c, f, path, b, lo, hi, !ct->buffered) == 0 &&
             comm_agree(c, check_values(path, b, b->held_hi ? b->held_lo : 0, b->held_hi ? b->held_hi : b->n,
                                        "the checkpoint is unusable") == 0);
    }
    H5_CHECK(H5Fclose(f));
    comm_watch_end();
    if (ok) {
        double dt = timer_now() - t0, mb = content_bytes(ct) / 1e6;
        log_note("loaded checkpoint %s (step %lld, written by %ld rank%s): %.1f MB in %.3f s, %.0f MB/s",
                 path, (long long)meta.step, meta.world_size, meta.world_size == 1 ? "" : "s", mb, dt,
                 mb / dt);
    }
    if (ok && got)
        *got = meta;
    else
        ckpt_meta_free(&meta);
    if (!comm_agree(c, !refused))
        return -2;
    return ok ? 0 : -1;
}

int ckpt_resume_auto(const struct comm *c, const char *run_dir, const struct ckpt_meta *want,
                     const struct ckpt_content *ct, struct ckpt_meta *got)
{
    /*
     * Rank 0 lists the candidates, newest step first, and shares the list.
     * Not the latest pointer: a run that died between a checkpoint's rename
     * and the pointer's update left a newer committed file than it names.
     */
    char names[256][64];
    int n = 0;
    if (comm_rank(c) == 0) {
        char dir[PATH_BYTES];
        snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
        n = (int)list_ckpts(dir, names, 256);
    }
    comm_bcast(c, &n, sizeof n, 0);
    comm_bcast(c, names, (size_t)n * sizeof names[0], 0);
    for (int i = 0; i < n; i++) {
        char path[PATH_BYTES + 64];
        snprintf(path, sizeof path, "%s/ckpt/%s", run_dir, names[i]);
        int rc = ckpt_load(c, path, want, ct, got);
        if (rc == 0)
            return 1;
        if (rc == -2) /* not this run's: an older one would not be either */
            return -1;
        log_info("warning: skipping checkpoint %s (see the error above); trying an older one", path);
    }
    if (n > 0) {
        log_error("%s/ckpt: no checkpoint could be loaded (%d tried)", run_dir, n);
        return -1;
    }
    return 0;
}
