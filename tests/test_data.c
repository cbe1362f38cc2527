/*
 * Data input: IDX parsing and its errors (missing, wrong magic, truncated,
 * trailing bytes, gzip and plain), HDF5 dataset validation (not HDF5, wrong
 * format attribute, newer version, wrong rank, dtype or shape), and the
 * sharded reader on one rank. Every bad file must give -1 and a message
 * naming the file and the cause; none may crash (also run under ASan).
 */
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "comm/comm.h"
#include "core/config.h"
#include "data/ckpt.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "testutil.h"

static struct comm *g_comm;
static const char *captured;
static char dir[] = "/tmp/vae_test_data_XXXXXX";

static const char *path_of(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* Write an IDX image file: header for n items of r×c, then `payload` bytes. */
static void write_idx(const char *path, int gz, uint32_t magic, uint32_t n, uint32_t r, uint32_t c,
                      size_t payload)
{
    unsigned char h[16];
    uint32_t v[4] = {magic, n, r, c};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++)
            h[i * 4 + b] = (unsigned char)(v[i] >> (24 - 8 * b));
    size_t hbytes = magic == 0x801 ? 8 : 16;
    unsigned char *body = calloc(payload + 1, 1);
    for (size_t i = 0; i < payload; i++)
        body[i] = (unsigned char)(i * 7);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, h, (unsigned)hbytes);
        if (payload)
            gzwrite(f, body, (unsigned)payload);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(h, 1, hbytes, f);
        fwrite(body, 1, payload, f);
        fclose(f);
    }
    free(body);
}

static void expect_idx_error(const char *path, int images, const char *needle)
{
    struct idx x;
    struct capture cap;
    capture_begin(&cap);
    int rc = idx_read(&x, path, images);
    captured = capture_end(&cap);
    assert_int_equal(rc, -1);
    if (!strstr(captured, needle) || !strstr(captured, path))
        fail_msg("idx_read(%s) printed '%s'; expected the path and '%s'", path, captured, needle);
}

static void test_idx_good_gzip_and_plain(void **state)
{
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        const char *p = path_of(gz ? "ok.gz" : "ok.idx");
        write_idx(p, gz, 0x803, 3, 2, 5, 30);
        struct idx x;
        assert_int_equal(idx_read(&x, p, 1), 0);
        assert_int_equal(x.n, 3);
        assert_int_equal(x.rows * x.cols, 10);
        assert_int_equal(x.data[29], (unsigned char)(29 * 7));
        idx_free(&x);
    }
}

static void test_idx_errors(void **state)
{
    (void)state;
    expect_idx_error(path_of("missing.gz"), 1, "cannot open");
    const char *p = path_of("labels.gz");
    write_idx(p, 1, 0x801, 10, 0, 0, 10);
    expect_idx_error(p, 1, "images and labels swapped");
    p = path_of("trunc.gz");
    write_idx(p, 1, 0x803, 100, 28, 28, 5000);
    expect_idx_error(p, 1, "truncated");
    p = path_of("trailing.idx");
    write_idx(p, 0, 0x803, 2, 2, 2, 9);
    expect_idx_error(p, 1, "trailing bytes");
    p = path_of("junk.txt");
    FILE *f = fopen(p, "w");
    fputs("this is not an IDX file at all", f);
    fclose(f);
    expect_idx_error(p, 1, "expected magic 0x00000803");
    p = path_of("zero.gz");
    write_idx(p, 1, 0x803, 0, 28, 28, 0);
    expect_idx_error(p, 1, "implausible");
    /* A gzip stream cut in the middle. */
    p = path_of("cut.gz");
    write_idx(p, 1, 0x803, 50, 28, 28, 50 * 784);
    assert_int_equal(truncate(p, 200), 0);
    expect_idx_error(p, 1, "truncated");
}

static void expect_open_error(const char *path, const char *needle)
{
    struct dataset_info info;
    struct capture cap;
    capture_begin(&cap);
    int rc = dataset_open(g_comm, path, &info);
    captured = capture_end(&cap);
    assert_int_equal(rc, -1);
    if (!strstr(captured, needle) || !strstr(captured, path))
        fail_msg("dataset_open(%s) printed '%s'; expected the path and '%s'", path, captured, needle);
}

/* An HDF5 file with chosen attributes and one /train/x of the given shape/type. */
static void write_h5(const char *path, const char *format, long version, int rank, hsize_t d0, hsize_t d1,
                     hid_t type)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (format) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(format) + 1);
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "format", t, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, format);
        H5Aclose(a);
        H5Tclose(t);
        const char *names[] = {"version", "image_rows", "image_cols"};
        long vals[] = {version, 0, 0};
        for (int i = 0; i < 3; i++) {
            a = H5Acreate2(f, names[i], H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
            H5Awrite(a, H5T_NATIVE_LONG, &vals[i]);
            H5Aclose(a);
        }
        H5Sclose(s);
    }
    if (rank > 0) {
        hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t dims[3] = {d0, d1, 2};
        hid_t s = H5Screate_simple(rank, dims, NULL);
        hid_t d = H5Dcreate2(g, "x", type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(s);
        H5Gclose(g);
    }
    H5Fclose(f);
}

/* A dataset compressed with a filter this libhdf5 lacks (h5py's lzf) is
 * named at validation, not reported later as a damaged file. */
static void test_unknown_filter_named(void **state)
{
    (void)state;
    const char *p = path_of("lzf.h5");
    write_h5(p, DATASET_FORMAT, 1, 0, 0, 0, 0);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {10, 4};
    hid_t s = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 2, dims) >= 0);
    assert_true(H5Pset_filter(dcpl, 32000, H5Z_FLAG_OPTIONAL, 0, NULL) >= 0);
    hid_t d = H5Dcreate2(g, "x", H5T_NATIVE_UINT8, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Gclose(g);
    H5Fclose(f);
    expect_open_error(p, "stored with HDF5 filter 32000");
}

static void test_dataset_validation_errors(void **state)
{
    (void)state;
    expect_open_error(path_of("nope.h5"), "cannot read the file");
    const char *p = path_of("text.h5");
    FILE *f = fopen(p, "w");
    fputs("plain text, not HDF5\n", f);
    fclose(f);
    expect_open_error(p, "not a readable HDF5 file");
    p = path_of("noattr.h5");
    write_h5(p, NULL, 0, 2, 10, 4, H5T_NATIVE_UINT8);
    expect_open_error(p, "attribute 'format' is missing");
    p = path_of("wrongfmt.h5");
    write_h5(p, "vae_dist-checkpoint", 1, 2, 10, 4, H5T_NATIVE_UINT8);
    expect_open_error(p, "expected 'vae_dist-dataset'");
    p = path_of("newer.h5");
    write_h5(p, DATASET_FORMAT, 99, 2, 10, 4, H5T_NATIVE_UINT8);
    expect_open_error(p, "version 99 is not supported");
    p = path_of("nodata.h5");
    write_h5(p, DATASET_FORMAT, 1, 0, 0, 0, 0);
    expect_open_error(p, "dataset '/train/x' is missing");
    p = path_of("rank3.h5"); /* (N, H, W) images: the shape is the image's */
    write_h5(p, DATASET_FORMAT, 1, 3, 10, 4, H5T_NATIVE_UINT8);
    struct dataset_info ok;
    assert_int_equal(dataset_open(g_comm, p, &ok), 0);
    assert_true(ok.n_dim == 8 && ok.image_rows == 4 && ok.image_cols == 2);
    p = path_of("int32.h5");
    write_h5(p, DATASET_FORMAT, 1, 2, 10, 4, H5T_NATIVE_INT32);
    expect_open_error(
        p, "uint8, float32 or float64, found 2-D integer of 4 bytes (HINT: x = x.astype(np.uint8)");
    p = path_of("rank1.h5");
    write_h5(p, DATASET_FORMAT, 1, 1, 10, 4, H5T_NATIVE_UINT8);
    expect_open_error(p, "found 1-D");
    /* A valid file cut short: the superblock survives, the data does not. */
    p = path_of("trunc.h5");
    assert_int_equal(make_dataset(p, 2000, 0, 64), 0);
    assert_int_equal(truncate(p, 4096), 0);
    struct dataset_info info;
    struct capture cap;
    capture_begin(&cap);
    int rc = dataset_open(g_comm, p, &info);
    struct shard s;
    if (rc == 0)
        rc = dataset_read_shard(g_comm, p, &info, "train", 0, 1, &s);
    captured = capture_end(&cap);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(captured, p));
}

static void test_shard_read_roundtrip(void **state)
{
    (void)state;
    const char *p = path_of("good.h5");
    assert_int_equal(make_dataset(p, 300, 50, 12), 0);
    struct dataset_info info;
    assert_int_equal(dataset_open(g_comm, p, &info), 0);
    assert_int_equal(info.n_train, 300);
    assert_int_equal(info.n_test, 50);
    assert_int_equal(info.n_dim, 12);
    assert_true(info.is_u8 && info.has_labels);
    struct shard s;
    assert_int_equal(dataset_read_shard(g_comm, p, &info, "test", 0, 1, &s), 0);
    assert_int_equal(s.n_rows, 50);
    assert_int_equal(s.ids[0], 0);
    assert_int_equal(s.labels[5], (uint8_t)((300 + 5) % 4));
    float x[12];
    shard_rows_to_float(x, &s, 3, 1);
    for (int d = 0; d < 12; d++)
        assert_true(x[d] >= 0 && x[d] <= 1);
    shard_free(&s);
}

/* A dataset as h5py writes it by default: a variable-length string format
 * attribute and nothing else, (N, H, W) float64 images, int64 labels. */
static void write_h5py_style(const char *path, int64_t bad_label)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1), sc = H5Screate(H5S_SCALAR);
    H5Tset_size(t, H5T_VARIABLE);
    const char *fmt = DATASET_FORMAT;
    hid_t a = H5Acreate2(f, "format", t, sc, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Awrite(a, t, &fmt) >= 0);
    H5Aclose(a);
    H5Sclose(sc);
    H5Tclose(t);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[3] = {6, 2, 3};
    double x[36];
    int64_t y[6];
    for (int i = 0; i < 36; i++)
        x[i] = i / 36.0;
    for (int i = 0; i < 6; i++)
        y[i] = i == 4 ? bad_label : i % 3;
    hid_t s = H5Screate_simple(3, dims, NULL);
    hid_t d = H5Dcreate2(g, "x", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d);
    H5Sclose(s);
    s = H5Screate_simple(1, dims, NULL);
    d = H5Dcreate2(g, "y", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    H5Dclose(d);
    H5Sclose(s);
    H5Gclose(g);
    H5Fclose(f);
}

static void test_h5py_style_dataset(void **state)
{
    (void)state;
    const char *p = path_of("h5py.h5");
    write_h5py_style(p, 1);
    struct dataset_info info;
    assert_int_equal(dataset_open(g_comm, p, &info), 0);
    assert_int_equal(info.n_train, 6);
    assert_int_equal(info.n_dim, 6);
    assert_int_equal(info.image_rows, 2);
    assert_int_equal(info.image_cols, 3);
    assert_true(!info.is_u8 && info.has_labels);
    struct shard sh;
    assert_int_equal(dataset_read_shard(g_comm, p, &info, "train", 0, 1, &sh), 0);
    float x[6];
    shard_rows_to_float(x, &sh, 2, 1);
    for (int i = 0; i < 6; i++)
        assert_true(fabsf(x[i] - (float)((12 + i) / 36.0)) < 1e-7f);
    assert_int_equal(sh.labels[5], 2);
    shard_free(&sh);
    /* A label that does not fit a class number is named, not wrapped. */
    write_h5py_style(p, 300);
    assert_int_equal(dataset_open(g_comm, p, &info), 0);
    struct capture cap;
    capture_begin(&cap);
    int rc = dataset_read_shard(g_comm, p, &info, "train", 0, 1, &sh);
    captured = capture_end(&cap);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(captured, "row 4 holds label 300"));
}

static void test_pixels_scale_to_unit_interval(void **state)
{
    (void)state;
    /* uint8 pixels are read as v/255 (PyTorch's ToTensor): 0, 51 and 255 become
     * 0, 0.2 and 1 within 2 ulps (v times the rounded 1/255). */
    const char *p = path_of("pixels.h5");
    uint8_t x[2 * 3] = {0, 51, 255, 255, 51, 0};
    struct dataset_info w = {.n_train = 2, .n_dim = 3, .is_u8 = 1};
    assert_int_equal(dataset_write(p, &w, x, NULL, NULL, NULL), 0);
    struct dataset_info info;
    assert_int_equal(dataset_open(g_comm, p, &info), 0);
    struct shard s;
    assert_int_equal(dataset_read_shard(g_comm, p, &info, "train", 0, 1, &s), 0);
    float f[6];
    shard_rows_to_float(f, &s, 0, 2);
    const double want[6] = {0, 0.2, 1, 1, 0.2, 0};
    for (int i = 0; i < 6; i++)
        assert_true(fabs(f[i] - want[i]) <= 3e-7 * want[i]);
    shard_free(&s);
}

/* A small valid checkpoint at run/ckpt/step-00000007.h5: 6 parameters, one tensor. */
static const char *write_checkpoint(void)
{
    static char path[600];
    char run[520], ck[540];
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(ck, sizeof ck, "%s/ckpt", run);
    mkdir(run, 0755);
    mkdir(ck, 0755);
    float params[6] = {0.5f, -1, 2, 0, 0.25f, 3};
    struct tensor_view layout = {"w", 0, 2, 3, {2, 3, 0, 0}};
    struct ckpt_buffer buf = {"/model/params", params, 6, 0, 0, 0};
    struct ckpt_content ct = {&layout, 1, &buf, 1, 0, 0, 0, NULL, NULL};
    struct ckpt_meta meta = {.step = 7,
                             .epoch = 1,
                             .seed = 1,
                             .n_params = 6,
                             .optim = OPT_SGD,
                             .optim_t = 7,
                             .config = "[train]\nseed = 1\n",
                             .data_n_train = 10,
                             .data_n_dim = 6,
                             .image_rows = 2,
                             .image_cols = 3};
    assert_int_equal(ckpt_save(g_comm, run, &meta, &ct, 3), 0);
    snprintf(path, sizeof path, "%s/step-00000007.h5", ck);
    return path;
}

/* A copy of src at name with the long attribute attr set to v. */
static const char *tampered(const char *src, const char *name, const char *attr, long v)
{
    const char *p = path_of(name);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp %s %s", src, p);
    assert_int_equal(system(cmd), 0);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, attr, H5P_DEFAULT);
    assert_true(f >= 0 && a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_LONG, &v) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    return p;
}

static void test_checkpoint_header_fields_checked(void **state)
{
    (void)state;
    const char *good = write_checkpoint();
    struct ckpt_meta meta;
    assert_int_equal(ckpt_inspect(g_comm, good, &meta), 0);
    ckpt_meta_free(&meta);
    /* What a hostile or damaged header may hold, each named in the error. */
    const struct {
        const char *attr;
        long v;
    } bad[] = {{"optim", 99},     {"optim", -2147483648L}, {"step", 1L << 62}, {"epoch", -5},
               {"world_size", 0}, {"image_rows", 100000},  {"image_cols", -1}, {"optim_t", 8},
               {"data_n_dim", 0}, {"n_params", -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = tampered(good, "tampered.h5", bad[i].attr, bad[i].v);
        struct capture cap;
        capture_begin(&cap);
        int rc = ckpt_inspect(g_comm, p, &meta);
        captured = capture_end(&cap);
        if (rc != -1 || !strstr(captured, bad[i].attr))
            fail_msg("%s = %ld: rc %d, message '%s'", bad[i].attr, bad[i].v, rc, captured);
        printf("%s = %ld refused: %s", bad[i].attr, bad[i].v, captured);
    }
}

static void test_checkpoint_non_finite_refused(void **state)
{
    (void)state;
    const char *good = write_checkpoint();
    const char *p = path_of("inf.h5");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp %s %s", good, p);
    assert_int_equal(system(cmd), 0);
    /* +Inf everywhere, with a CRC that matches: only the value check can refuse it. */
    float inf[6];
    for (int i = 0; i < 6; i++)
        inf[i] = INFINITY;
    long crc = (long)crc32(crc32(0L, Z_NULL, 0), (const unsigned char *)inf, sizeof inf);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/model/params", H5P_DEFAULT);
    hid_t a = H5Aopen(d, "crc32", H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, inf) >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_LONG, &crc) >= 0);
    H5Aclose(a);
    H5Dclose(d);
    H5Fclose(f);
    float params[6];
    struct tensor_view layout = {"w", 0, 2, 3, {2, 3, 0, 0}};
    struct ckpt_buffer buf = {"/model/params", params, 6, 0, 0, 0};
    struct ckpt_content ct = {&layout, 1, &buf, 1, 0, 0, 0, NULL, NULL};
    struct ckpt_meta want = {.optim = -1};
    struct capture cap;
    capture_begin(&cap);
    int rc = ckpt_load(g_comm, p, &want, &ct, NULL);
    captured = capture_end(&cap);
    printf("all-Inf parameters with a matching CRC: %s", captured);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(captured, "non-finite"));
}

static void test_fifo_refused_not_waited_on(void **state)
{
    (void)state;
    /* Opening a FIFO for reading waits for a writer: every input path is checked first. */
    const char *fifo = path_of("fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    struct capture cap;
    struct dataset_info info;
    struct ckpt_meta meta;
    struct config cfg;
    struct idx x;
    config_defaults(&cfg);
    capture_begin(&cap);
    int rc_data = dataset_open(g_comm, fifo, &info), rc_ckpt = ckpt_inspect(g_comm, fifo, &meta);
    int rc_cfg = config_load_file(&cfg, fifo), rc_idx = idx_read(&x, fifo, 1);
    captured = capture_end(&cap);
    printf("%s", captured);
    assert_true(rc_data == -1 && rc_ckpt == -1 && rc_cfg == -1 && rc_idx == -1);
    assert_non_null(strstr(captured, "FIFO"));
    unlink(fifo);
}

int main(int argc, char **argv)
{
    g_comm = comm_init(&argc, &argv);
    if (!mkdtemp(dir))
        return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_good_gzip_and_plain),
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_dataset_validation_errors),
        cmocka_unit_test(test_unknown_filter_named),
        cmocka_unit_test(test_h5py_style_dataset),
        cmocka_unit_test(test_shard_read_roundtrip),
        cmocka_unit_test(test_pixels_scale_to_unit_interval),
        cmocka_unit_test(test_checkpoint_header_fields_checked),
        cmocka_unit_test(test_checkpoint_non_finite_refused),
        cmocka_unit_test(test_fifo_refused_not_waited_on),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    comm_finalize();
    return rc;
}
