/* libhdf5 helpers (see h5util.h). */
#define _GNU_SOURCE /* O_DIRECT */
#include "data/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    /* Collective inside libhdf5, where a rank that reads other bytes than
     * the rest (a file changing under the job) waits in another collective. */
    comm_watch_begin("opening an HDF5 file collectively");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    comm_watch_end();
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

int h5_reserve(const char *path, double bytes)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc && errno != EOPNOTSUPP && errno != ENOSYS ? -1 : 0;
}

/* The blocks of path past its end (what h5_reserve kept and the file did not use) freed. */
static void release_reserve(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size, (off_t)1 << 40) &&
        ftruncate(fd, st.st_size + 1) == 0 && ftruncate(fd, st.st_size)) /* no hole punching: grow, shrink */
        log_warn("%s: cannot release the disk reserved past its end: %s", path, strerror(errno));
    close(fd);
}

#define BALLAST_BYTES ((off_t)64 << 10)

static void ballast_name(const char *path, char *out, size_t out_bytes)
{
    snprintf(out, out_bytes, "%s.room", path);
}

int h5_ballast(const struct comm *c, const char *path)
{
    int ok = 1;
    if (!c || comm_rank(c) == 0) {
        char room[PATH_MAX + 8];
        ballast_name(path, room, sizeof room);
        int fd = open(room, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
        ok = fd >= 0 || (errno != ENOSPC && errno != EDQUOT);
        if (fd >= 0 && fallocate(fd, 0, 0, BALLAST_BYTES) && (errno == ENOSPC || errno == EDQUOT)) {
            int saved = errno;
            unlink(room);
            errno = saved;
            ok = 0;
        }
        int saved = errno;
        if (fd >= 0)
            close(fd);
        errno = saved;
    }
    return (c ? comm_agree(c, ok) : ok) ? 0 : -1;
}

int h5_close_written(const struct comm *c, hid_t f, const char *path, int ok)
{
    int lead = !c || comm_rank(c) == 0;
    char room[PATH_MAX + 8];
    ballast_name(path, room, sizeof room);
    /* Flushed first (collective), so that a disk that fills only now fails
     * here, where the file can still be emptied, and not in the close. */
    ok = f >= 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0 && ok;
    ok = c ? comm_agree(c, ok) : ok;
    if (!ok) {
        if (lead && f >= 0 && truncate(path, 0))
            log_warn("%s: cannot truncate the failed file: %s", path, strerror(errno));
        if (lead)
            unlink(room);
        if (c)
            comm_barrier(c);
    }
    /* Not retried on failure: libhdf5 has then half-destroyed the file. */
    int closed = f >= 0 && H5Fclose(f) >= 0;
    if (lead) {
        release_reserve(path);
        unlink(room);
    }
    if (c)
        closed = comm_agree(c, closed);
    return ok && closed ? 0 : -1;
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

/* What a stored value is, for messages: "a scalar 64-bit integer", "a (41) array of 61-byte strings". */
static void describe(hid_t t, hid_t s, char *out, size_t out_bytes)
{
    static const char *const names[H5T_NCLASSES] = {
        [H5T_INTEGER] = "integer",   [H5T_FLOAT] = "float",
        [H5T_TIME] = "time",         [H5T_STRING] = "string",
        [H5T_BITFIELD] = "bitfield", [H5T_OPAQUE] = "opaque value",
        [H5T_COMPOUND] = "compound", [H5T_REFERENCE] = "reference",
        [H5T_ENUM] = "enum",         [H5T_VLEN] = "variable-length sequence",
        [H5T_ARRAY] = "array type"};
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    const char *kind = cls > H5T_NO_CLASS && cls < H5T_NCLASSES && names[cls] ? names[cls] : "unknown type";
    char size[32] = "variable-length";
    if (t >= 0 && H5Tis_variable_str(t) <= 0)
        snprintf(size, sizeof size, "%zu-byte", H5Tget_size(t));
    H5S_class_t sc = s >= 0 ? H5Sget_simple_extent_type(s) : H5S_NO_CLASS;
    hsize_t dims[H5S_MAX_RANK];
    int rank = sc == H5S_SIMPLE ? H5Sget_simple_extent_dims(s, dims, NULL) : 0;
    if (sc == H5S_NULL || sc == H5S_NO_CLASS) {
        snprintf(out, out_bytes, "an attribute of %s %s with no value", size, kind);
        return;
    }
    if (sc == H5S_SCALAR || rank <= 0) {
        snprintf(out, out_bytes, "one %s %s", size, kind);
        return;
    }
    int at = snprintf(out, out_bytes, "a (");
    for (int k = 0; k < rank && at > 0 && (size_t)at < out_bytes; k++)
        at +=
            snprintf(out + at, out_bytes - (size_t)at, "%s%llu", k ? ", " : "", (unsigned long long)dims[k]);
    if (at > 0 && (size_t)at < out_bytes)
        snprintf(out + at, out_bytes - (size_t)at, ") array of %s %ss", size, kind);
}

/*
 * Open attribute `name` of obj that must hold exactly one value of class
 * cls: scalar, or a simple dataspace of one element. Returns the attribute
 * (its type in *type; the caller closes both), or -1 with a message naming
 * path, attribute, `want` and what was found.
 */
static hid_t open_one(hid_t obj, const char *path, const char *name, H5T_class_t cls, const char *want,
                      hid_t *type)
{
    *type = -1;
    if (attr_missing(obj, path, name))
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, s = a >= 0 ? H5Aget_space(a) : -1;
    H5S_class_t sc = s >= 0 ? H5Sget_simple_extent_type(s) : H5S_NO_CLASS;
    int one = (sc == H5S_SCALAR || sc == H5S_SIMPLE) && H5Sget_simple_extent_npoints(s) == 1;
    if (a < 0 || t < 0 || s < 0) {
        log_error("%s: cannot read attribute '%s' (damaged file)", path, name);
    } else if (!one || H5Tget_class(t) != cls) {
        char found[160];
        describe(t, s, found, sizeof found);
        log_error("%s: attribute '%s' should be %s, found %s", path, name, want, found);
    } else {
        *type = t;
        H5_CHECK(H5Sclose(s));
        return a;
    }
    if (s >= 0)
        H5_CHECK(H5Sclose(s));
    if (t >= 0)
        H5_CHECK(H5Tclose(t));
    if (a >= 0)
        H5_CHECK(H5Aclose(a));
    return -1;
}

int h5_attr_get_text(hid_t obj, const char *path, const char *name, size_t max_bytes, char **out)
{
    *out = NULL;
    hid_t t, a = open_one(obj, path, name, H5T_STRING, "one string", &t);
    if (a < 0)
        return -1;
    int vlen = H5Tis_variable_str(t) > 0;
    size_t len = vlen ? 0 : H5Tget_size(t);
    char *v = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5_CHECK(mt);
    H5_CHECK(H5Tset_cset(mt, H5Tget_cset(t))); /* h5py writes UTF-8; HDF5 converts no charset */
    if (vlen) {
        H5_CHECK(H5Tset_size(mt, H5T_VARIABLE));
        if (H5Aread(a, mt, &v) < 0)
            v = NULL;
        len = v ? strlen(v) : 0;
    } else if (len <= max_bytes) {
        /* One element of len bytes, read into len + 1: the terminator is ours. */
        H5_CHECK(H5Tset_size(mt, len + 1));
        H5_CHECK(H5Tset_strpad(mt, H5T_STR_NULLTERM));
        *out = calloc(len + 2, 1);
        if (*out && H5Aread(a, mt, *out) < 0) {
            free(*out);
            *out = NULL;
        }
    }
    int rc = -1;
    if (len > max_bytes)
        log_error("%s: attribute '%s' should be a string of at most %zu bytes, found %zu", path, name,
                  max_bytes, len);
    else if (vlen && v && (*out = strdup(v)))
        rc = 0;
    else if (!vlen && *out)
        rc = 0;
    else
        log_error("%s: cannot read attribute '%s' (damaged file, or out of memory)", path, name);
    if (v)
        H5free_memory(v);
    H5_CHECK(H5Tclose(mt));
    H5_CHECK(H5Tclose(t));
    H5_CHECK(H5Aclose(a));
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int h5_attr_get_string(hid_t obj, const char *path, const char *name, char *out, size_t out_bytes)
{
    char *v;
    if (h5_attr_get_text(obj, path, name, out_bytes - 1, &v))
        return -1;
    strcpy(out, v);
    free(v);
    return 0;
}

int h5_attr_get_long(hid_t obj, const char *path, const char *name, long *out)
{
    hid_t t, a = open_one(obj, path, name, H5T_INTEGER, "one integer", &t);
    if (a < 0)
        return -1;
    int is_unsigned = H5Tget_sign(t) == H5T_SGN_NONE;
    size_t bytes = H5Tget_size(t);
    int64_t s = 0;
    uint64_t u = 0;
    int rc = -1;
    if (bytes > 8)
        log_error("%s: attribute '%s' should be an integer of at most 8 bytes, found %zu bytes", path, name,
                  bytes);
    else if (H5Aread(a, is_unsigned ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64, is_unsigned ? (void *)&u : &s) <
             0)
        log_error("%s: cannot read attribute '%s' (damaged file)", path, name);
    else if (is_unsigned && u > (uint64_t)LONG_MAX)
        log_error("%s: attribute '%s' is %llu, beyond the signed 64-bit range", path, name,
                  (unsigned long long)u);
    else {
        *out = is_unsigned ? (long)u : (long)s;
        rc = 0;
    }
    H5_CHECK(H5Tclose(t));
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

/* 0 if every component of dset ("/a/b/x") is a hard link; else -1 with a message. */
static int check_links(hid_t file, const char *path, const char *dset)
{
    char part[256];
    size_t n = strlen(dset);
    if (n >= sizeof part) {
        log_error("%s: object name '%.40s...' is too long", path, dset);
        return -1;
    }
    for (size_t i = 1; i <= n; i++) {
        if (i < n && dset[i] != '/')
            continue;
        memcpy(part, dset, i);
        part[i] = 0;
        H5L_info_t li;
        if (H5Lget_info(file, part, &li, H5P_DEFAULT) < 0) {
            log_error("%s: cannot look up '%s' (damaged file)", path, part);
            return -1;
        }
        if (li.type != H5L_TYPE_HARD) {
            log_error("%s: '%s' is a %s link; vae_dist reads only objects stored under their own name "
                      "(HINT: copy the data there instead of linking it)",
                      path, part, li.type == H5L_TYPE_SOFT ? "soft" : "external or user-defined");
            return -1;
        }
    }
    return 0;
}

/* 0 if dataset d keeps its values in the file, in a layout and with filters
 * this libhdf5 can read (compression a file was written with: lzf from h5py,
 * say, is not); else -1 with a message naming it. External files (any path
 * on this machine, a FIFO even) and virtual datasets are refused. */
static int check_storage(hid_t d, const char *path, const char *dset)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int n = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1, rc = n < 0 ? -1 : 0;
    H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    int external = dcpl >= 0 ? H5Pget_external_count(dcpl) : -1;
    if (rc == 0 && (external != 0 || layout == H5D_VIRTUAL || layout == H5D_LAYOUT_ERROR)) {
        log_error("%s: dataset '%s' keeps its values %s; vae_dist reads only values stored in the file "
                  "(HINT: rewrite it as a plain dataset, e.g. with h5py: f2['x'] = f['x'][...])",
                  path, dset,
                  external != 0           ? "in external files"
                  : layout == H5D_VIRTUAL ? "in a virtual mapping"
                                          : "in "
                                            "an unknown layout");
        rc = -1;
    }
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
    if (check_links(file, path, dset))
        return -1;
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
    } else if (check_storage(d, path, dset) == 0) {
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

int h5_read_all(hid_t f, const char *path, const char *name, hid_t mem_type, size_t n_values, void *buf)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t s = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    int rc = -1;
    if (d < 0 || n < 0)
        log_error("%s: cannot open dataset '%s'", path, name);
    else if ((size_t)n != n_values)
        log_error("%s: dataset '%s' should hold %zu values, found %lld", path, name, n_values, (long long)n);
    else if (H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        log_error("%s: cannot read dataset '%s' (damaged, or of a type that does not convert to what "
                  "vae_dist writes there)",
                  path, name);
    else
        rc = 0;
    if (s >= 0)
        H5_CHECK(H5Sclose(s));
    if (d >= 0)
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
/* O_DIRECT: file offsets, lengths and memory aligned to 4 KiB (every block
 * size in use); 64 MiB requests straight from aligned memory (measured
 * against 4 MiB ones through a stage: 0.10 s against 0.33 s for 269 MB,
 * docs/performance.md), 4 MiB through an aligned stage from other memory. */
#define DIO_ALIGN   ((uint64_t)4096)
#define DIO_REQUEST ((size_t)64 << 20)
#define DIO_STAGE   ((size_t)4 << 20)

/* Values [start, start + n) of dataset d (file space fs) written from, or
 * read into, mem through MPI-IO, staged in pieces through stage. 0 or -1. */
static int transfer_staged(hid_t d, hid_t fs, hid_t xfer, float *stage, int writing, size_t start, size_t n,
                           float *mem)
{
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < n; j += STAGE_FLOATS) {
        hsize_t at = start + j, count = n - j < STAGE_FLOATS ? n - j : STAGE_FLOATS;
        if (writing)
            memcpy(stage, mem + j, count * sizeof *stage);
        hid_t ms = H5Screate_simple(1, &count, NULL);
        H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &count, NULL));
        rc = (writing ? H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, xfer, stage)
                      : H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, xfer, stage)) < 0
                 ? -1
                 : 0;
        if (rc == 0 && !writing)
            memcpy(mem + j, stage, count * sizeof *stage);
        H5_CHECK(H5Sclose(ms));
    }
    return rc;
}

/*
 * Bytes [at, at + len) of the file `path` written from, or read into, mem
 * with O_DIRECT (at and len aligned to DIO_ALIGN; mem through a stage unless
 * it is aligned too).
 * Returns 0, -1 on an I/O error or a short read (errno set), or 1 when the
 * file system refuses direct I/O before any byte moved.
 */
static int transfer_direct(const char *path, int writing, uint64_t at, size_t len, char *mem)
{
    int fd = open(path, (writing ? O_WRONLY : O_RDONLY) | O_DIRECT);
    if (fd < 0)
        return errno == EINVAL ? 1 : -1;
    /* Memory aligned too (a buffer of vae_dist's own, not the node window's
     * vectors or a slice off a 4 KiB boundary): no stage, larger requests.
     * A 64 MiB stage instead of 4 MiB was slower: 1.9-2.1 s against
     * 1.1-1.3 s for 1.15 GB on 2 ranks (fresh pages, a copy out of cache). */
    int in_place = (uintptr_t)mem % DIO_ALIGN == 0;
    size_t step = in_place ? DIO_REQUEST : DIO_STAGE;
    char *stage = in_place ? NULL : aligned_alloc(DIO_ALIGN, DIO_STAGE);
    int rc = stage || in_place ? 0 : -1;
    for (size_t j = 0; rc == 0 && j < len;) {
        size_t count = len - j < step ? len - j : step;
        char *io = in_place ? mem + j : stage;
        if (writing && !in_place)
            memcpy(stage, mem + j, count);
        ssize_t got =
            writing ? pwrite(fd, io, count, (off_t)(at + j)) : pread(fd, io, count, (off_t)(at + j));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EINVAL && j == 0)
            rc = 1;
        else if (got <= 0) /* a short transfer goes on from where it stopped; none at all is the end */
            rc = -1, errno = got < 0 ? errno : writing ? ENOSPC : EIO;
        else if (!writing && !in_place)
            memcpy(mem + j, stage, (size_t)got);
        j += got > 0 ? (size_t)got : 0;
    }
    int saved = errno;
    free(stage);
    close(fd);
    errno = saved;
    return rc;
}

/*
 * Where the values [lo, lo + n) of the contiguous dataset at file offset off
 * can go direct: *head values first through MPI-IO, then *mid values with
 * O_DIRECT, the rest through MPI-IO. *mid = 0 when none can.
 */
static void aligned_middle(haddr_t off, size_t lo, size_t n, size_t *head, size_t *mid)
{
    *head = n, *mid = 0;
    if (off == HADDR_UNDEF || off % DIO_ALIGN)
        return;
    uint64_t b0 = off + lo * sizeof(float), b1 = b0 + n * sizeof(float);
    uint64_t a0 = (b0 + DIO_ALIGN - 1) / DIO_ALIGN * DIO_ALIGN, a1 = b1 / DIO_ALIGN * DIO_ALIGN;
    if (a1 > a0)
        *head = (a0 - b0) / sizeof(float), *mid = (a1 - a0) / sizeof(float);
}

/* The file offset of dataset d's values when they are one run of native
 * floats at an offset that means what it says (no user block, no external
 * file); else HADDR_UNDEF. */
static haddr_t raw_offset(hid_t f, hid_t d)
{
    hid_t t = H5Dget_type(d), dcpl = H5Dget_create_plist(d), fcpl = H5Fget_create_plist(f);
    hsize_t userblock = 1;
    int plain = t >= 0 && H5Tequal(t, H5T_NATIVE_FLOAT) > 0 && dcpl >= 0 &&
                H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0 && fcpl >= 0 &&
                H5Pget_userblock(fcpl, &userblock) >= 0 && userblock == 0;
    if (t >= 0)
        H5_CHECK(H5Tclose(t));
    if (dcpl >= 0)
        H5_CHECK(H5Pclose(dcpl));
    if (fcpl >= 0)
        H5_CHECK(H5Pclose(fcpl));
    return plain ? H5Dget_offset(d) : HADDR_UNDEF;
}

int h5_write_floats(hid_t f, const char *name, size_t n_total, size_t lo, size_t n, const float *buf,
                    const struct comm *turns, const char *direct_path, size_t *direct_bytes)
{
    hsize_t dims = n_total;
    hid_t fs = H5Screate_simple(1, &dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* Nothing but this function writes the values: no fill pass to race the direct writes. */
    H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER));
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5_CHECK(H5Pclose(dcpl));
    float *stage = n ? malloc(STAGE_FLOATS * sizeof *stage) : NULL;
    int rc = d >= 0 && (stage || !n) ? 0 : -1;
    /*
     * The aligned middle of this rank's bytes goes straight to the disk
     * (parallel HDF5 allocates a contiguous dataset at creation; the file
     * aligns large objects to DIO_ALIGN); the unaligned head and tail, a few
     * KiB shared with the neighbouring slices, through MPI-IO as before.
     */
    size_t head = n, mid = 0;
    haddr_t off = rc == 0 && direct_path && n ? raw_offset(f, d) : HADDR_UNDEF;
    aligned_middle(off, lo, n, &head, &mid);
    hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
    H5_CHECK(H5Pset_dxpl_mpio(xfer, H5FD_MPIO_INDEPENDENT));
    int n_turns = turns ? comm_size(turns) : 1, mine = turns ? comm_rank(turns) : 0;
    for (int q = 0; q < n_turns; q++) {
        if (q == mine && rc == 0 && mid) {
            int r = transfer_direct(direct_path, 1, off + (lo + head) * sizeof *buf, mid * sizeof *buf,
                                    (char *)(buf + head));
            if (r == 1) {
                head = n, mid = 0; /* no direct I/O here: all of it through MPI-IO */
            } else if (r < 0) {
                log_warn("%s: direct write of dataset '%s' failed: %s", direct_path, name, strerror(errno));
                rc = -1;
            } else if (direct_bytes) {
                *direct_bytes += mid * sizeof *buf;
            }
        }
        if (q == mine && rc == 0)
            rc = transfer_staged(d, fs, xfer, stage, 1, lo, head, (float *)buf);
        if (q == mine && rc == 0)
            rc = transfer_staged(d, fs, xfer, stage, 1, lo + head + mid, n - head - mid,
                                 (float *)buf + head + mid);
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

int h5_read_floats(hid_t f, const char *path, const char *name, size_t lo, size_t n, float *buf, int direct)
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
    size_t head = n, mid = 0;
    haddr_t off = rc == 0 && direct && n ? raw_offset(f, d) : HADDR_UNDEF;
    aligned_middle(off, lo, n, &head, &mid);
    if (mid) {
        int r = transfer_direct(path, 0, off + (lo + head) * sizeof *buf, mid * sizeof *buf,
                                (char *)(buf + head));
        if (r == 1)
            head = n, mid = 0; /* no direct I/O here: all of it through MPI-IO */
        else if (r < 0)
            rc = -1;
    }
    if (rc == 0)
        rc = transfer_staged(d, fs, xfer, stage, 0, lo, head, buf);
    if (rc == 0)
        rc = transfer_staged(d, fs, xfer, stage, 0, lo + head + mid, n - head - mid, buf + head + mid);
    if (rc)
        log_error("%s: reading dataset '%s' failed (truncated or damaged file?)", path, name);
    free(stage);
    H5_CHECK(H5Pclose(xfer));
    H5_CHECK(H5Sclose(fs));
    H5_CHECK(H5Dclose(d));
    return rc;
}
