/* Dataset validation, sharded collective reads and writing (see dataset.h). */
#include "data/dataset.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/path.h"
#include "core/rng.h"
#include "data/h5util.h"

void dataset_block(size_t n, size_t unit, int p, int r, size_t *lo, size_t *hi)
{
    size_t n_units = (n + unit - 1) / unit;
    *lo = unit * (size_t)(((unsigned __int128)n_units * (unsigned)r) / (unsigned)p);
    *hi = unit * (size_t)(((unsigned __int128)n_units * (unsigned)(r + 1)) / (unsigned)p);
    *lo = *lo < n ? *lo : n;
    *hi = *hi < n ? *hi : n;
}

/* How to fix a dtype, in NumPy, for the message. */
static const char *dtype_hint(H5T_class_t cls)
{
    return cls == H5T_INTEGER ? "x = x.astype(np.uint8) for pixels 0..255, or x = x.astype(np.float32)"
                              : "x = x.astype(np.float32)";
}

/*
 * /split/x: (N, D), (N, H, W) or (N, C, H, W); uint8, float32 or float64
 * (read as float32). Fills n, D and the dtype on the first split, and the
 * image shape C, H, W its dimensions imply (0s for (N, D)). 0 or -1.
 */
static int check_x(hid_t f, const char *path, const char *name, struct dataset_info *info, size_t *n_out,
                   long shape[3], int first)
{
    int rank, is_signed;
    size_t dims[4], elem;
    H5T_class_t cls;
    if (h5_dataset_shape(f, path, name, &rank, dims, &cls, &elem, &is_signed))
        return -1;
    int u8 = cls == H5T_INTEGER && elem == 1 && !is_signed;
    int fl = cls == H5T_FLOAT && (elem == 4 || elem == 8);
    if (rank < 2 || !(u8 || fl)) {
        log_error(
            "%s: dataset '%s' should be (N, D), (N, H, W) or (N, C, H, W) of uint8, float32 or float64, "
            "found %d-D %s of %zu bytes (HINT: %s)",
            path, name, rank,
            cls == H5T_INTEGER ? "integer"
            : cls == H5T_FLOAT ? "float"
                               : "other",
            elem, dtype_hint(cls));
        return -1;
    }
    size_t d = 1;
    for (int k = 1; k < rank; k++)
        d = dims[k] && d <= ((size_t)1 << 40) / dims[k] ? d * dims[k] : 0;
    if (dims[0] == 0 || dims[0] > UINT32_MAX || d == 0 || d > ((size_t)1 << 30)) {
        log_error("%s: dataset '%s' has %zu rows of %zu values; expected 1 <= N < 2^32 and 1 <= D <= 2^30",
                  path, name, dims[0], d);
        return -1;
    }
    for (int k = 0; k < 3; k++)
        shape[k] = rank == 4 ? (long)dims[k + 1] : rank == 3 ? (k ? (long)dims[k] : 1) : 0;
    /* (N, H, W, C) as NumPy and PIL keep pictures: a few channels last, wide dims before them. */
    if (first && rank == 4 && dims[3] <= 4 && dims[1] > 4 && dims[2] > 4)
        info->channels_last = 1;
    if (first) {
        info->n_dim = d;
        info->is_u8 = u8;
    } else if (d != info->n_dim || u8 != info->is_u8) {
        log_error("%s: dataset '%s' has D = %zu (%s) but /train/x has D = %zu (%s)", path, name, d,
                  u8 ? "uint8" : "float", info->n_dim, info->is_u8 ? "uint8" : "float");
        return -1;
    }
    *n_out = dims[0];
    return 0;
}

/* Check one split: x, and y when present (integer labels, one per row). */
static int check_split(hid_t f, const char *path, const char *split, struct dataset_info *info, size_t *n_out,
                       long shape[3], int first)
{
    char name[64];
    int rank, is_signed;
    size_t dims[4], elem;
    H5T_class_t cls;
    snprintf(name, sizeof name, "/%s/x", split);
    if (check_x(f, path, name, info, n_out, shape, first))
        return -1;
    snprintf(name, sizeof name, "/%s/y", split);
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) {
        if (h5_dataset_shape(f, path, name, &rank, dims, &cls, &elem, &is_signed))
            return -1;
        if (rank != 1 || dims[0] != *n_out || cls != H5T_INTEGER) {
            log_error("%s: dataset '%s' should be integer labels of shape (%zu), found %d-D (%zu) %s "
                      "(HINT: y = y.astype(np.uint8))",
                      path, name, *n_out, rank, dims[0], cls == H5T_INTEGER ? "integers" : "non-integers");
            return -1;
        }
        if (first)
            info->has_labels = 1;
    } else if (!first && info->has_labels) {
        info->has_labels = 0;
    }
    return 0;
}

/* The crc32 attribute of a dataset, or -1 when it has none. */
static int read_crc(hid_t f, const char *path, const char *name, long *crc)
{
    *crc = -1;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0)
        return -1;
    int rc = H5Aexists(d, "crc32") > 0 ? h5_attr_get_long(d, path, "crc32", crc) : 0;
    if (rc == 0 && (*crc < -1 || *crc > (long)UINT32_MAX)) {
        log_error("%s: attribute crc32 of '%s' is %ld; expected a CRC-32 in [0, 2^32)", path, name, *crc);
        rc = -1;
    }
    H5_CHECK(H5Dclose(d));
    return rc;
}

/* CRC-32 of a shard's bytes: len bytes from the start of the rows. */
static uint32_t crc_bytes(const unsigned char *p, size_t len)
{
    return (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, len);
}

/* The CRC-32 of every rank's len bytes at p, joined in rank order: the
 * split's CRC when the ranks hold its blocks in order. Collective. */
static uint32_t combined_crc(const struct comm *c, const unsigned char *p, size_t len)
{
    int n = comm_size(c);
    uint64_t *crc = malloc(2 * (size_t)n * sizeof *crc);
    VAE_ASSERT(crc);
    comm_allgather_u64(c, crc_bytes(p, len), crc);
    comm_allgather_u64(c, len, crc + n);
    uLong total = (uLong)crc[0];
    for (int r = 1; r < n; r++)
        total = crc32_combine(total, (uLong)crc[r], (z_off_t)crc[n + r]);
    free(crc);
    return (uint32_t)total;
}

void shard_checksums(const struct comm *c, const struct shard *s, long *rows_crc, long *labels_crc)
{
    *rows_crc = (long)combined_crc(c, s->rows, s->n_rows * s->row_bytes);
    int labels = comm_agree(c, s->labels != NULL);
    *labels_crc = labels ? (long)combined_crc(c, s->labels, s->n_rows) : -1;
}

/*
 * Every rank's shard CRC, combined in rank order into the split's CRC and
 * compared with the file's. Collective; 0, or -1 on every rank (rank 0 says why).
 */
static int verify_crc(const struct comm *c, const char *path, const char *name, long want,
                      const struct shard *s)
{
    uint32_t total = combined_crc(c, s->rows, s->n_rows * s->row_bytes);
    if (total == (uLong)want)
        return 0;
    if (comm_rank(c) == 0)
        log_error("%s: dataset '%s' fails its checksum (crc32 %08lx stored, %08lx read): the file was "
                  "altered or damaged after it was written; HINT: make it again with `vae_dist prep`",
                  path, name, (unsigned long)want, (unsigned long)total);
    return -1;
}

/* An integer attribute that may be absent (out keeps its value then). */
static int optional_long(hid_t f, const char *path, const char *name, long *out)
{
    return H5Aexists(f, name) > 0 ? h5_attr_get_long(f, path, name, out) : 0;
}

/* The picture shape C×H×W: the attributes', else the one x's dimensions imply; checked against D. */
static int image_shape(const char *path, struct dataset_info *info, const long shape[3])
{
    long *have[3] = {&info->image_channels, &info->image_rows, &info->image_cols};
    if (info->image_rows == 0 && info->image_cols == 0) {
        for (int k = 0; k < 3; k++)
            *have[k] = shape[k];
    } else if (info->image_channels == 0) {
        info->image_channels = shape[0] ? shape[0] : 1; /* files before image_channels: one */
    }
    if (shape[1] &&
        (shape[0] != info->image_channels || shape[1] != info->image_rows || shape[2] != info->image_cols)) {
        log_error("%s: image_channels x image_rows x image_cols = %ld x %ld x %ld, but /train/x holds %ld x "
                  "%ld x %ld images",
                  path, info->image_channels, info->image_rows, info->image_cols, shape[0], shape[1],
                  shape[2]);
        return -1;
    }
    int ok = 1, any = 0;
    size_t d = 1;
    for (int k = 0; k < 3; k++) {
        ok &= *have[k] >= 0 && *have[k] <= (1 << 24);
        any |= *have[k] != 0;
        d = ok && d <= ((size_t)1 << 31) ? d * (size_t)*have[k] : SIZE_MAX;
    }
    if (!ok || (any && d != info->n_dim)) {
        log_error("%s: image_channels x image_rows x image_cols = %ld x %ld x %ld; expected 0 x 0 x 0 (not "
                  "images) or three sizes in [1, 2^24] whose product is D = %zu",
                  path, info->image_channels, info->image_rows, info->image_cols, info->n_dim);
        return -1;
    }
    return 0;
}

int dataset_open(const struct comm *c, const char *path, struct dataset_info *info)
{
    memset(info, 0, sizeof *info);
    info->crc32_labels = -1;
    int ok = 0;
    hid_t f = h5_open_read(c, path);
    if (f < 0)
        goto out_agree;
    /* Every rank validates the same file: the lowest that fails says why, once. */
    log_hold();
    char fmt[64];
    long version = 1, shape[3] = {0, 0, 0}, test_shape[3];
    if (h5_attr_get_string(f, path, "format", fmt, sizeof fmt))
        goto out_close;
    if (strcmp(fmt, DATASET_FORMAT)) {
        log_error("%s: attribute 'format' is '%s', expected '%s' (make one with `vae_dist prep`)", path, fmt,
                  DATASET_FORMAT);
        goto out_close;
    }
    /* version and the image shape may be left out (h5py users): 1, and the shape of x. */
    if (optional_long(f, path, "version", &version) ||
        optional_long(f, path, "image_channels", &info->image_channels) ||
        optional_long(f, path, "image_rows", &info->image_rows) ||
        optional_long(f, path, "image_cols", &info->image_cols))
        goto out_close;
    if (version < 1 || version > DATASET_VERSION) {
        log_error("%s: dataset version %ld is not supported (this build reads versions 1 to %d)", path,
                  version, DATASET_VERSION);
        goto out_close;
    }
    if (check_split(f, path, "train", info, &info->n_train, shape, 1) ||
        read_crc(f, path, "/train/x", &info->crc32_train))
        goto out_close;
    if (H5Lexists(f, "/test", H5P_DEFAULT) > 0 &&
        check_split(f, path, "test", info, &info->n_test, test_shape, 0))
        goto out_close;
    ok = image_shape(path, info, shape) == 0;
out_close:
    H5_CHECK(H5Fclose(f));
    int first = comm_first_failure(c, ok);
    log_release(first == comm_rank(c));
    if (first < 0 && info->channels_last && comm_rank(c) == 0)
        log_warn(
            "%s: /train/x is (N, %ld, %ld, %ld): vae_dist reads pictures as (N, C, H, W), so these are %ld "
            "channels of %ld x %ld; if the last dimension holds the channels (NumPy/PIL order), "
            "reconstructions will be noise (HINT: store x.transpose(0, 3, 1, 2))",
            path, info->image_channels, info->image_rows, info->image_cols, info->image_channels,
            info->image_rows, info->image_cols);
    return first < 0 ? 0 : -1;
out_agree:
    return -1; /* h5_open_read agreed and said why */
}

int shard_alloc(struct shard *s, size_t n_rows, size_t n_dim, int is_u8, int with_labels)
{
    memset(s, 0, sizeof *s);
    s->n_rows = n_rows;
    s->n_dim = n_dim;
    s->is_u8 = is_u8;
    s->row_bytes = n_dim * (is_u8 ? 1 : sizeof(float));
    s->rows = mem_alloc(n_rows * s->row_bytes + 1);
    s->ids = malloc(n_rows * sizeof *s->ids + 1);
    if (with_labels)
        s->labels = malloc(n_rows + 1);
    if (!s->rows || !s->ids || (with_labels && !s->labels)) {
        log_error("out of memory for %zu rows of %zu bytes", n_rows, s->row_bytes);
        shard_free(s);
        return -1;
    }
    return 0;
}

void shard_free(struct shard *s)
{
    free(s->rows);
    free(s->ids);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

/* Labels [lo, hi) of any integer type into uint8, each checked to be in [0, 255]. */
static int read_labels(hid_t f, const char *path, const char *name, size_t lo, size_t hi, uint8_t *out)
{
    int64_t *v = malloc((hi - lo) * sizeof *v + 1);
    int rc = v ? h5_read_rows(f, path, name, H5T_NATIVE_INT64, lo, hi, 1, v) : -1;
    for (size_t i = 0; rc == 0 && i < hi - lo; i++) {
        if (v[i] < 0 || v[i] > 255) {
            log_error("%s: dataset '%s' row %zu holds label %lld; labels are class numbers in [0, 255]", path,
                      name, lo + i, (long long)v[i]);
            rc = -1;
        }
        out[i] = (uint8_t)v[i];
    }
    if (!v)
        log_error("%s: out of memory for the labels of rows [%zu, %zu)", path, lo, hi);
    free(v);
    return rc;
}

int dataset_read_shard(const struct comm *c, const char *path, const struct dataset_info *info,
                       const char *split, size_t limit, size_t unit, struct shard *out)
{
    size_t n = !strcmp(split, "train") ? info->n_train : info->n_test;
    if (limit > 0 && limit < n)
        n = limit;
    size_t lo, hi;
    dataset_block(n, unit, comm_size(c), comm_rank(c), &lo, &hi);
    memset(out, 0, sizeof *out);
    int ok = shard_alloc(out, hi - lo, info->n_dim, info->is_u8, info->has_labels) == 0;
    if (!comm_agree(c, ok))
        return -1;
    ok = 0;
    hid_t f = h5_open_read(c, path);
    char name[64], x_name[64];
    long crc = -1;
    snprintf(x_name, sizeof x_name, "/%s/x", split);
    if (f >= 0) {
        hid_t t = info->is_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
        ok = read_crc(f, path, x_name, &crc) == 0;
        ok = ok && h5_read_rows(f, path, x_name, t, lo, hi, info->n_dim, out->rows) == 0;
        snprintf(name, sizeof name, "/%s/y", split);
        if (ok && info->has_labels)
            ok = read_labels(f, path, name, lo, hi, out->labels) == 0;
        H5_CHECK(H5Fclose(f));
    }
    for (size_t i = 0; i < out->n_rows; i++)
        out->ids[i] = (uint32_t)(lo + i);
    if (ok && !info->is_u8) {
        const float *x = (const float *)out->rows;
        for (size_t i = 0; i < out->n_rows * info->n_dim; i++) {
            if (!isfinite(x[i])) {
                log_error("%s: /%s/x row %zu holds a non-finite value", path, split, lo + i / info->n_dim);
                ok = 0;
                break;
            }
        }
    }
    if (!comm_agree(c, ok)) {
        if (ok)
            log_error("%s: another rank failed to read its shard of '%s'; stopping", path, split);
        shard_free(out);
        return -1;
    }
    /* The CRC covers the whole split: only a whole read can be checked. */
    if (crc >= 0 && (limit == 0 || limit >= (!strcmp(split, "train") ? info->n_train : info->n_test)) &&
        verify_crc(c, path, x_name, crc, out)) {
        shard_free(out);
        return -1;
    }
    return 0;
}

void shard_rows_to_float(float *x, const struct shard *s, size_t first, size_t n)
{
    size_t n_el = n * s->n_dim;
    if (s->is_u8) {
        const uint8_t *u = s->rows + first * s->row_bytes;
        for (size_t i = 0; i < n_el; i++)
            x[i] = (float)u[i] * (1.0f / 255.0f);
    } else {
        memcpy(x, s->rows + first * s->row_bytes, n_el * sizeof *x);
    }
}

static int write_split(hid_t f, const char *split, size_t n, size_t n_dim, int is_u8, const void *x,
                       const uint8_t *y)
{
    hid_t g = H5Gcreate2(f, split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    hsize_t dims[2] = {n, n_dim};
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t ft = is_u8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, mt = is_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
    hid_t d = H5Dcreate2(g, "x", ft, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d >= 0 && H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0 ? 0 : -1;
    if (rc == 0)
        rc = h5_attr_put_long(d, "crc32", (long)crc_bytes(x, n * n_dim * (is_u8 ? 1 : sizeof(float))));
    if (d >= 0)
        H5_CHECK(H5Dclose(d));
    H5_CHECK(H5Sclose(s));
    if (rc == 0 && y) {
        s = H5Screate_simple(1, dims, NULL);
        d = H5Dcreate2(g, "y", H5T_STD_U8LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = d >= 0 && H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0 ? 0 : -1;
        if (d >= 0)
            H5_CHECK(H5Dclose(d));
        H5_CHECK(H5Sclose(s));
    }
    H5_CHECK(H5Gclose(g));
    return rc;
}

int dataset_write(const char *path, const struct dataset_info *info, const void *x_train,
                  const uint8_t *y_train, const void *x_test, const uint8_t *y_test)
{
    if (path_check_output(path, "dataset"))
        return -1;
    if (h5_ballast(NULL, path)) {
        log_error("%s: no room to write the dataset: %s", path, strerror(errno));
        return -1;
    }
    h5_quiet();
    hid_t fapl = h5_fapl_create(NULL);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5_CHECK(H5Pclose(fapl));
    if (f < 0) {
        log_error("%s: cannot create the dataset file: %s", path, h5_create_failure(path));
        h5_close_written(NULL, f, path, 0);
        return -1;
    }
    int rc = 0;
    rc |= h5_attr_put_string(f, "format", DATASET_FORMAT);
    rc |= h5_attr_put_long(f, "version", DATASET_VERSION);
    rc |= h5_attr_put_long(f, "image_channels", info->image_channels);
    rc |= h5_attr_put_long(f, "image_rows", info->image_rows);
    rc |= h5_attr_put_long(f, "image_cols", info->image_cols);
    rc |= write_split(f, "train", info->n_train, info->n_dim, info->is_u8, x_train, y_train);
    if (x_test && info->n_test)
        rc |= write_split(f, "test", info->n_test, info->n_dim, info->is_u8, x_test, y_test);
    if (h5_close_written(NULL, f, path, rc == 0)) {
        log_error("%s: writing the dataset failed (disk full?)", path);
        unlink(path);
        return -1;
    }
    return 0;
}

int dataset_write_columns(const struct comm *c, const char *path, const char *format, size_t n_total,
                          size_t first_row, size_t n_rows, const struct column *cols, size_t n_cols,
                          const uint8_t *labels)
{
    /* Written beside it and renamed into place: a failure leaves no partial
     * file, and whatever was at path (another result, or an input given by
     * mistake) is replaced only by a whole one. */
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int lead = comm_rank(c) == 0;
    if (!comm_agree(c,
                    strlen(path) < PATH_MAX && (!lead || (path_check_output(path, "output") == 0 &&
                                                          path_check_output(tmp, "temporary output") == 0))))
        return -1;
    if (h5_ballast(c, tmp)) {
        if (lead)
            log_error("%s: no room to write the output: %s", path, strerror(errno));
        return -1;
    }
    h5_quiet();
    hid_t fapl = h5_fapl_create(c);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5_CHECK(H5Pclose(fapl));
    if (!comm_agree(c, f >= 0)) {
        h5_close_written(c, f, tmp, 1);
        if (f < 0)
            log_error("%s: cannot create the output file: %s", tmp, h5_create_failure(tmp));
        return -1;
    }
    int rc = h5_attr_put_string(f, "format", format);
    rc |= h5_attr_put_long(f, "version", 1);
    for (size_t i = 0; i < n_cols; i++)
        rc |= h5_write_rows(f, cols[i].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n_total, cols[i].width,
                            first_row, n_rows, cols[i].data);
    if (labels)
        rc |= h5_write_rows(f, "y", H5T_STD_U8LE, H5T_NATIVE_UINT8, n_total, 1, first_row, n_rows, labels);
    int ok = h5_close_written(c, f, tmp, rc == 0) == 0;
    if (ok && lead && rename(tmp, path)) {
        log_error("%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        ok = 0;
    } else if (!ok && lead) {
        log_error("%s: writing the output failed (disk full?); nothing written", path);
    }
    if (!ok && lead)
        unlink(tmp);
    return comm_agree(c, ok) ? 0 : -1;
}

/* Image row i of class y, C×H×W: a soft blob whose place is set by the class and whose size,
 * jitter and channel tint by u (D + 4 uniforms), with a little noise. */
static void synth_picture(unsigned char *row, const size_t image[3], uint8_t y, const float *u)
{
    size_t ch = image[0], h = image[1], w = image[2];
    double cy = (double)h * (0.3 + 0.4 * (y >> 1) + 0.1 * (u[0] - 0.5));
    double cx = (double)w * (0.3 + 0.4 * (y & 1) + 0.1 * (u[1] - 0.5));
    double r = (double)(h < w ? h : w) * (0.12 + 0.08 * u[2]);
    for (size_t c = 0; c < ch; c++) {
        double tint = 0.5 + 0.5 * (double)((c + y) % 2) * u[3];
        for (size_t i = 0; i < h; i++)
            for (size_t j = 0; j < w; j++) {
                double d2 = ((double)i - cy) * ((double)i - cy) + ((double)j - cx) * ((double)j - cx);
                double v = tint * exp(-d2 / (2 * r * r)) + 0.1 * u[4 + (c * h + i) * w + j];
                row[(c * h + i) * w + j] = (unsigned char)(fmin(v, 1.0) * 255.0);
            }
    }
}

int dataset_make_synthetic(const char *path, size_t n_train, size_t n_test, size_t n_dim, const size_t *image,
                           int is_u8, double anomalies, uint64_t seed)
{
    size_t n = n_train + n_test, elem = is_u8 ? 1 : sizeof(float);
    unsigned char *x = malloc(n * n_dim * elem + 1);
    uint8_t *y = malloc(n + 1);
    float *u = malloc((n_dim + 4) * sizeof *u);
    int rc = -1;
    if (!x || !y || !u) {
        log_error("%s: out of memory for %zu synthetic rows", path, n);
        goto out_free;
    }
    for (size_t i = 0; i < n; i++) {
        rng_uniform(u, n_dim + 4, 0, 1, seed, RNG_SYNTH, 1, (uint32_t)i);
        if (is_u8 && image) {
            y[i] = (uint8_t)(i % 4);
            synth_picture(x + i * n_dim, image, y[i], u);
            continue;
        }
        if (is_u8) {
            y[i] = (uint8_t)(i % 4);
            for (size_t d = 0; d < n_dim; d++) {
                float proto = (float)((d * (y[i] + 1u)) % n_dim) / (float)n_dim;
                x[i * n_dim + d] = (uint8_t)((0.7f * proto + 0.3f * u[d]) * 255.0f);
            }
            continue;
        }
        /* Tabular: two latent factors through fixed smooth maps, small noise. */
        float a = 2.0f * u[n_dim] - 1.0f, b = 2.0f * u[n_dim + 1] - 1.0f;
        int anomalous = i >= n_train && u[n_dim + 2] < anomalies;
        y[i] = (uint8_t)anomalous;
        float *row = (float *)x + i * n_dim;
        for (size_t d = 0; d < n_dim; d++) {
            float f = (float)(d + 1) / (float)n_dim;
            row[d] = sinf(3.0f * f * a) + f * b * b - 0.5f * cosf(2.0f * f * b) + 0.05f * (u[d] - 0.5f);
            if (anomalous)
                row[d] += 0.3f * (u[d] - 0.5f); /* up to ±0.15: six times the noise */
        }
    }
    struct dataset_info info = {
        .n_train = n_train, .n_test = n_test, .n_dim = n_dim, .is_u8 = is_u8, .has_labels = 1};
    long side = lrint(sqrt((double)n_dim));
    if (image) {
        info.image_channels = (long)image[0];
        info.image_rows = (long)image[1];
        info.image_cols = (long)image[2];
    } else if (is_u8 && (size_t)(side * side) == n_dim) {
        info.image_channels = 1; /* square images can be drawn */
        info.image_rows = info.image_cols = side;
    }
    rc = dataset_write(path, &info, x, y, n_test ? x + n_train * n_dim * elem : NULL,
                       n_test ? y + n_train : NULL);
out_free:
    free(x);
    free(y);
    free(u);
    return rc;
}
