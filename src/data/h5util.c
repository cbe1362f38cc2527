/* libhdf5 helpers (see h5util.h). */
#include "data/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/path.h"

void h5_quiet(void)
{
    H5_CHECK(H5Eset_auto2(H5E_DEFAULT, NULL, NULL));
}

hid_t h5_fapl(const struct comm *c)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5_CHECK(fapl);
    if (c) {
        MPI_Comm mpi = *(const MPI_Comm *)comm_native(c);
        H5_CHECK(H5Pset_fapl_mpio(fapl, mpi, MPI_INFO_NULL));
        H5_CHECK(H5Pset_all_coll_metadata_ops(fapl, 1));
    }
    return fapl;
}

hid_t h5_fapl_create(const struct comm *c)
{
    hid_t fapl = h5_fapl(c);
    H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V110));
    return fapl;
}

const char *h5_create_failure(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return errno == EEXIST ? "the file exists and libhdf5 cannot replace it" : strerror(errno);
    close(fd);
    unlink(path);
    return "libhdf5 refused it";
}

hid_t h5_open_read(const struct comm *c, const char *path)
{
    h5_quiet();
    /* H5Fopen over MPI-IO is collective: agree that every rank can read the
     * path first, or a rank-local fault would leave the others waiting. The
     * lowest rank that fails says why (every rank, when all fail alike). */
    int rank = c ? comm_rank(c) : 0;
    log_hold();
    int ok = access(path, R_OK) == 0 && !(c && fault_unreadable(rank));
    if (!ok)
        log_error("%s: cannot read the file (missing or no permission on this rank)", path);
    else
        ok = path_check_regular(path, "HDF5 file") == 0;
    int first = c ? comm_first_failure(c, ok) : (ok ? -1 : 0);
    log_release(first == rank);
    if (first >= 0)
        return -1;
    hid_t fapl = h5_fapl(c);
    log_hold();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5_CHECK(H5Pclose(fapl));
    if (f < 0)
        log_error("%s: not a readable HDF5 file (truncated, corrupt or another format)", path);
    first = c ? comm_first_failure(c, f >= 0) : (f >= 0 ? -1 : 0);
    log_release(first == rank);
    if (first >= 0) {
        if (f >= 0)
            H5_CHECK(H5Fclose(f));
        return -1;
    }
    return f;
}

/* 0 if attribute `name` exists; else -1 with a message telling a missing
 * attribute from metadata that cannot be read (a checksum failure). */
static int attr_missing(hid_t obj, const char *path, const char *name)
{
    htri_t e = H5Aexists(obj, name);
    if (e > 0)
        return 0;
    if (e == 0)
        log_error("%s: attribute '%s' is missing", path, name);
    else
        log_error("%s: cannot read attribute '%s': the file's metadata are damaged (HDF5 checksum or "
                  "structure error)",
                  path, name);
    return -1;
}

/* A variable-length string attribute (h5py's default for str) into out. */
static int read_vlen_string(hid_t a, hid_t t, const char *path, const char *name, char *out, size_t out_bytes)
{
    hid_t s = H5Aget_space(a), mt = H5Tcopy(H5T_C_S1);
    H5_CHECK(H5Tset_size(mt, H5T_VARIABLE));
    H5_CHECK(H5Tset_cset(mt, H5Tget_cset(t))); /* h5py writes UTF-8; HDF5 converts no charset */
    char *v = NULL;
    int rc = -1;
    if (s < 0 || H5Sget_simple_extent_npoints(s) != 1 || H5Aread(a, mt, &v) < 0 || !v)
        log_error("%s: cannot read attribute '%s' (expected one string)", path, name);
    else if (strlen(v) >= out_bytes)
        log_error("%s: attribute '%s' should be a string under %zu bytes, found %zu", path, name, out_bytes,
                  strlen(v));
    else {
        strcpy(out, v);
        rc = 0;
    }
    if (v)
        H5free_memory(v);
    H5_CHECK(H5Tclose(mt));
    if (s >= 0)
        H5_CHECK(H5Sclose(s));
    return rc;
}

int h5_attr_get_string(hid_t obj, const char *path, const char *name, char *out, size_t out_bytes)
{
    int rc = -1;
    hid_t a = -1, t = -1, mt = -1;
    if (attr_missing(obj, path, name))
        return -1;
    a = H5Aopen(obj, name, H5P_DEFAULT);
    t = a >= 0 ? H5Aget_type(a) : -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0) {
        rc = read_vlen_string(a, t, path, name, out, out_bytes);
        goto out_close;
    }
    if (t < 0 || H5Tget_class(t) != H5T_STRING || H5Tget_size(t) >= out_bytes) {
        log_error("%s: attribute '%s' should be a string under %zu bytes", path, name, out_bytes);
        goto out_close;
    }
    mt = H5Tcopy(H5T_C_S1);
    H5_CHECK(H5Tset_size(mt, out_bytes));
    H5_CHECK(H5Tset_strpad(mt, H5T_STR_NULLTERM));
    H5_CHECK(H5Tset_cset(mt, H5Tget_cset(t)));
    memset(out, 0, out_bytes);
    if (H5Aread(a, mt, out) < 0) {
        log_error("%s: cannot read attribute '%s'", path, name);
        goto out_close;
    }
    out[out_bytes - 1] = 0;
    rc = 0;
out_close:
    if (mt >= 0)
        H5_CHECK(H5Tclose(mt));
    if (t >= 0)
        H5_CHECK(H5Tclose(t));
    if (a >= 0)
        H5_CHECK(H5Aclose(a));
    return rc;
}

int h5_attr_get_long(hid_t obj, const char *path, const char *name, long *out)
{
    int rc = -1;
    if (attr_missing(obj, path, name))
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    hid_t s = a >= 0 ? H5Aget_space(a) : -1;
    if (t < 0 || s < 0 || H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(s) != 1) {
        log_error("%s: attribute '%s' should be one integer", path, name);
    } else if (H5Aread(a, H5T_NATIVE_LONG, out) < 0) {
        log_error("%s: cannot read attribute '%s'", path, name);
    } else {
        rc = 0;
    }
    if (s >= 0)
        H5_CHECK(H5Sclose(s));
    if (t >= 0)
        H5_CHECK(H5Tclose(t));
    if (a >= 0)
        H5_CHECK(H5Aclose(a));
    return rc;
}

int h5_attr_put_string(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5_CHECK(H5Tset_size(t, strlen(value) + 1));
    H5_CHECK(H5Tset_strpad(t, H5T_STR_NULLTERM));
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, t, value) >= 0 ? 0 : -1;
    if (a >= 0)
        H5_CHECK(H5Aclose(a));
    H5_CHECK(H5Sclose(s));
    H5_CHECK(H5Tclose(t));
    return rc;
}

int h5_attr_put_long(hid_t obj, const char *name, long value)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_LONG, &value) >= 0 ? 0 : -1;
    if (a >= 0)
        H5_CHECK(H5Aclose(a));
    H5_CHECK(H5Sclose(s));
    return rc;
}

/* 0 if libhdf5 can decode every filter of dataset d (compression a file
 * was written with: lzf from h5py, say); else -1 with a message naming it. */
static int check_filters(hid_t d, const char *path, const char *dset)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int n = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1, rc = n < 0 ? -1 : 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char name[64] = "";
        unsigned flags;
        size_t n_values = 0;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, NULL, sizeof name, name, NULL);
        if (id < 0 || H5Zfilter_avail(id) <= 0) {
            log_error("%s: dataset '%s' is stored with HDF5 filter %d (%s), which this libhdf5 cannot decode "
                      "(HINT: rewrite it uncompressed or with gzip, e.g. h5py's compression=\"gzip\")",
                      path, dset, (int)id, name[0] ? name : "unnamed");
            rc = -1;
        }
    }
    if (dcpl >= 0)
        H5_CHECK(H5Pclose(dcpl));
    return rc;
}

int h5_dataset_shape(hid_t file, const char *path, const char *dset, int *rank, size_t dims[4],
                     H5T_class_t *cls, size_t *elem_bytes, int *is_signed)
{
    if (H5Lexists(file, dset, H5P_DEFAULT) <= 0) {
        /* H5Lexists fails on "/a/b" when "/a" is missing: both mean absent. */
        log_error("%s: dataset '%s' is missing", path, dset);
        return -1;
    }
    hid_t d = H5Dopen2(file, dset, H5P_DEFAULT);
    if (d < 0) {
        log_error("%s: cannot open '%s' as a dataset (damaged file, or not a dataset)", path, dset);
        return -1;
    }
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    hsize_t h[4] = {0, 1, 1, 1};
    int r = H5Sget_simple_extent_ndims(s);
    int rc = -1;
    if (r < 1 || r > 4 || H5Sget_simple_extent_dims(s, h, NULL) < 0) {
        log_error("%s: dataset '%s' should have 1 to 4 dimensions, found %d", path, dset, r);
    } else if (check_filters(d, path, dset) == 0) {
        *rank = r;
        for (int k = 0; k < 4; k++)
            dims[k] = (size_t)h[k];
        *cls = H5Tget_class(t);
        *elem_bytes = H5Tget_size(t);
        *is_signed = *cls == H5T_INTEGER ? H5Tget_sign(t) == H5T_SGN_2 : 1;
        rc = 0;
    }
    H5_CHECK(H5Tclose(t));
    H5_CHECK(H5Sclose(s));
    H5_CHECK(H5Dclose(d));
    return rc;
}

int h5_read_rows(hid_t f, const char *path, const char *name, hid_t mem_type, size_t lo, size_t hi,
                 size_t n_cols, void *buf)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) {
        log_error("%s: cannot open dataset '%s'", path, name);
        return -1;
    }
    /* Rows of a (N, ...) dataset of any rank: row i is everything at [i, ...]. */
    hid_t fs = H5Dget_space(d);
    hsize_t dims[4] = {0, 1, 1, 1}, start[4] = {lo, 0, 0, 0}, count[4];
    int r = H5Sget_simple_extent_ndims(fs);
    VAE_ASSERT(r >= 1 && r <= 4 && H5Sget_simple_extent_dims(fs, dims, NULL) == r);
    count[0] = hi - lo;
    for (int k = 1; k < 4; k++)
        count[k] = dims[k];
    hsize_t mcount[1] = {(hi - lo) * n_cols};
    hid_t ms = H5Screate_simple(1, mcount, NULL);
    if (hi == lo) {
        H5_CHECK(H5Sselect_none(fs));
        H5_CHECK(H5Sselect_none(ms));
    } else {
        H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
    }
    hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
    H5_CHECK(H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE));
    herr_t rc = H5Dread(d, mem_type, ms, fs, xfer, buf);
    H5_CHECK(H5Pclose(xfer));
    H5_CHECK(H5Sclose(ms));
    H5_CHECK(H5Sclose(fs));
    H5_CHECK(H5Dclose(d));
    if (rc < 0) {
        log_error("%s: reading rows [%zu, %zu) of '%s' failed (file truncated or damaged?)", path, lo, hi,
                  name);
        return -1;
    }
    return 0;
}

int h5_write_rows(hid_t f, const char *name, hid_t ft, hid_t mt, size_t n_total, size_t width, size_t lo,
                  size_t n, const void *buf)
{
    hsize_t dims[2] = {n_total, width}, start[2] = {lo, 0}, count[2] = {n, width};
    int rank = width == 1 ? 1 : 2;
    hid_t fs = H5Screate_simple(rank, dims, NULL), ms = H5Screate_simple(rank, count, NULL);
    hid_t d = H5Dcreate2(f, name, ft, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (d >= 0) {
        if (n == 0) {
            H5_CHECK(H5Sselect_none(fs));
            H5_CHECK(H5Sselect_none(ms));
        } else {
            H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
        }
        hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
        H5_CHECK(H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE));
        rc = H5Dwrite(d, mt, ms, fs, xfer, buf) < 0 ? -1 : 0;
        H5_CHECK(H5Pclose(xfer));
        H5_CHECK(H5Dclose(d));
    }
    H5_CHECK(H5Sclose(ms));
    H5_CHECK(H5Sclose(fs));
    return rc;
}

/* 256 KiB: the stage stays in the core's L2 (measured: docs/performance.md). */
#define STAGE_FLOATS ((size_t)64 * 1024)

int h5_write_floats(hid_t f, const char *name, size_t n_total, size_t lo, size_t n, const float *buf,
                    const struct comm *turns)
{
    hsize_t dims = n_total;
    hid_t fs = H5Screate_simple(1, &dims, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float *stage = n ? malloc(STAGE_FLOATS * sizeof *stage) : NULL;
    int rc = d >= 0 && (stage || !n) ? 0 : -1;
    hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
    H5_CHECK(H5Pset_dxpl_mpio(xfer, H5FD_MPIO_INDEPENDENT));
    int n_turns = turns ? comm_size(turns) : 1, mine = turns ? comm_rank(turns) : 0;
    for (int q = 0; q < n_turns; q++) {
        for (size_t j = 0; q == mine && rc == 0 && j < n; j += STAGE_FLOATS) {
            hsize_t start = lo + j, count = n - j < STAGE_FLOATS ? n - j : STAGE_FLOATS;
            memcpy(stage, buf + j, count * sizeof *stage);
            hid_t ms = H5Screate_simple(1, &count, NULL);
            H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL));
            rc = H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, xfer, stage) < 0 ? -1 : 0;
            H5_CHECK(H5Sclose(ms));
        }
        if (turns)
            comm_barrier(turns);
    }
    H5_CHECK(H5Pclose(xfer));
    free(stage);
    if (d >= 0 && H5Dclose(d) < 0)
        rc = -1;
    H5_CHECK(H5Sclose(fs));
    return rc;
}

int h5_read_floats(hid_t f, const char *path, const char *name, size_t lo, size_t n, float *buf)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) {
        log_error("%s: cannot open dataset '%s'", path, name);
        return -1;
    }
    hid_t fs = H5Dget_space(d), xfer = H5Pcreate(H5P_DATASET_XFER);
    H5_CHECK(H5Pset_dxpl_mpio(xfer, H5FD_MPIO_INDEPENDENT));
    float *stage = n ? malloc(STAGE_FLOATS * sizeof *stage) : NULL;
    int rc = stage || !n ? 0 : -1;
    for (size_t j = 0; rc == 0 && j < n; j += STAGE_FLOATS) {
        hsize_t start = lo + j, count = n - j < STAGE_FLOATS ? n - j : STAGE_FLOATS;
        hid_t ms = H5Screate_simple(1, &count, NULL);
        H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL));
        rc = H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, xfer, stage) < 0 ? -1 : 0;
        if (rc == 0)
            memcpy(buf + j, stage, count * sizeof *stage);
        H5_CHECK(H5Sclose(ms));
    }
    if (rc)
        log_error("%s: reading dataset '%s' failed (truncated or damaged file?)", path, name);
    free(stage);
    H5_CHECK(H5Pclose(xfer));
    H5_CHECK(H5Sclose(fs));
    H5_CHECK(H5Dclose(d));
    return rc;
}
