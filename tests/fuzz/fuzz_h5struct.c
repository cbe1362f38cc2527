/*
 * libFuzzer target, structure-aware: the input bytes do not become the file;
 * they choose HDF5 objects to build into a valid dataset or checkpoint,
 * shapes a byte-flipping mutator cannot reach (libhdf5 checksums its
 * metadata, so flipped bytes mostly meet a checksum error). Each input:
 *
 *   byte 0       the family: a dataset (train, then read a shard) or a
 *                checkpoint (info, then eval on a fixed dataset);
 *   then edits,  each an op byte and its operands, applied with the HDF5 API
 *                to a copy of a valid file made at start-up:
 *     attribute  one of the header's, rewritten as a fixed or variable
 *                string, an integer of 1-8 bytes either sign, a float, an
 *                enum, a compound, an opaque value, an array type or a
 *                variable-length sequence; scalar, null, or 1-D/2-D of 0-40;
 *     dataset    one of the file's, replaced: any of those types, 1-5 dims,
 *                contiguous, compact, chunked (gzip, shuffle, fletcher32) or
 *                with external storage; values from input (no scale-offset:
 *                libhdf5 1.10's own writer crashes with it, in the builder);
 *     link       an object replaced by a soft link, an external link or a
 *                second hard link to another object, or a group;
 *     delete     an object or attribute removed.
 *
 * Every file is read or refused with a message; never a crash, a hang, an
 * abort or a leak. Crashes found go to tests/fuzz/regress/h5struct/.
 */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "data/ckpt.h"
#include "data/dataset.h"
#include "fuzz_files.h"
#include "infer/infer.h"
#include "train/train.h"

static char g_data[64], g_ckpt[128], g_ext[64];

/* The input, consumed a byte at a time (zeros past its end). */
struct bytes {
    const uint8_t *p;
    size_t n, at;
};

static unsigned take(struct bytes *b)
{
    return b->at < b->n ? b->p[b->at++] : 0;
}

static const char *const g_attrs[] = {
    "format",     "version",        "step",       "epoch",         "seed",       "world_size",
    "n_params",   "optim",          "optim_t",    "steps_skipped", "config",     "data_n_train",
    "data_n_dim", "image_channels", "image_rows", "image_cols",    "data_crc32", "crc32"};
static const char *const g_objects[] = {"/train/x",      "/train/y",      "/test/x",       "/test/y",
                                        "/model/params", "/model/layout", "/optim/state0", "/optim/state1",
                                        "/train",        "/model",        "/optim",        "/test"};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* A datatype chosen by the input (caller closes it). */
static hid_t make_type(struct bytes *b, int depth)
{
    const hid_t ints[] = {H5T_STD_I8LE,  H5T_STD_U8LE,  H5T_STD_I16LE, H5T_STD_U16BE,
                          H5T_STD_I32LE, H5T_STD_U32LE, H5T_STD_I64BE, H5T_STD_U64LE};
    unsigned k = take(b) % 10;
    hid_t t;
    switch (k) {
    case 0:
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 1 + take(b) % 120);
        H5Tset_strpad(t, (H5T_str_t)(take(b) % 3));
        return t;
    case 1:
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, take(b) & 1 ? H5T_CSET_UTF8 : H5T_CSET_ASCII);
        return t;
    case 2:
    case 3:
        return H5Tcopy(ints[take(b) % 8]);
    case 4:
        return H5Tcopy(take(b) & 1 ? H5T_IEEE_F64BE : H5T_IEEE_F32LE);
    case 5: {
        t = H5Tenum_create(H5T_NATIVE_INT);
        for (int v = 0; v < 3; v++) {
            char name[8];
            snprintf(name, sizeof name, "e%d", v);
            H5Tenum_insert(t, name, &v);
        }
        return t;
    }
    case 6: {
        t = H5Tcreate(H5T_COMPOUND, 16);
        H5Tinsert(t, take(b) & 1 ? "name" : "offset", 0, H5T_NATIVE_INT64);
        H5Tinsert(t, "rows", 8, H5T_NATIVE_DOUBLE);
        return t;
    }
    case 7:
        t = H5Tcreate(H5T_OPAQUE, 1 + take(b) % 16);
        H5Tset_tag(t, "fuzz");
        return t;
    case 8: {
        hsize_t n = 1 + take(b) % 6;
        hid_t base = depth < 2 ? make_type(b, depth + 1) : H5Tcopy(H5T_NATIVE_INT);
        t = H5Tarray_create2(base, 1, &n);
        H5Tclose(base);
        return t;
    }
    default: {
        hid_t base = depth < 2 ? make_type(b, depth + 1) : H5Tcopy(H5T_NATIVE_INT);
        t = H5Tvlen_create(base);
        H5Tclose(base);
        return t;
    }
    }
}

/* A dataspace chosen by the input: scalar, null, or 1-5 dims of small sizes. */
static hid_t make_space(struct bytes *b, int max_rank, hsize_t max_dim)
{
    unsigned k = take(b) % 8;
    if (k == 0)
        return H5Screate(H5S_SCALAR);
    if (k == 1)
        return H5Screate(H5S_NULL);
    int rank = 1 + (int)(k % (unsigned)max_rank);
    hsize_t dims[5];
    for (int i = 0; i < rank; i++)
        dims[i] = take(b) % (max_dim + 1);
    return H5Screate_simple(rank, dims, NULL);
}

/* Nonzero when values of t hold pointers below the top level (an array of
 * variable-length strings or sequences): those are left at the fill value. */
static int nested_pointers(hid_t t)
{
    if (H5Tget_class(t) != H5T_ARRAY)
        return 0;
    hid_t base = H5Tget_super(t);
    int bad = H5Tget_class(base) == H5T_VLEN || H5Tis_variable_str(base) > 0 || nested_pointers(base);
    H5Tclose(base);
    return bad;
}

/* Values for n elements of type t: input bytes, with vlen and string
 * pointers set to valid memory (HDF5 writes what they point at). */
static void *make_values(struct bytes *b, hid_t t, hssize_t n, void **keep)
{
    size_t size = H5Tget_size(t), total = (size_t)(n > 0 ? n : 1) * size;
    if (total > (1u << 20) || nested_pointers(t))
        return NULL;
    unsigned char *v = calloc(total + 1, 1);
    H5T_class_t cls = H5Tget_class(t);
    int pointers = cls == H5T_VLEN || (cls == H5T_STRING && H5Tis_variable_str(t) > 0);
    static char text[] = "vae_dist-dataset\0vae_dist-checkpoint\0[model]\nlatent = 2\n";
    static int ints[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < total; i++)
        v[i] = (unsigned char)take(b);
    for (hssize_t i = 0; pointers && i < (n > 0 ? n : 1); i++) {
        if (cls == H5T_VLEN) {
            hvl_t *h = (hvl_t *)(v + (size_t)i * size);
            hid_t base = H5Tget_super(t);
            /* Points at 16 bytes: as many base values as fit, none of them pointers. */
            size_t fit =
                H5Tget_class(base) == H5T_VLEN || H5Tis_variable_str(base) > 0 || nested_pointers(base)
                    ? 0
                    : sizeof ints / H5Tget_size(base);
            H5Tclose(base);
            h->len = fit ? take(b) % (fit + 1) : 0;
            h->p = ints;
        } else {
            *(char **)(v + (size_t)i * size) = text + (take(b) % 3 == 0 ? 17 : 0);
        }
    }
    *keep = v;
    return v;
}

static void edit_attr(hid_t f, struct bytes *b)
{
    const char *name = g_attrs[take(b) % N_OF(g_attrs)];
    hid_t obj = f;
    if (!strcmp(name, "crc32"))
        obj = H5Oopen(f, g_objects[take(b) % 8], H5P_DEFAULT);
    if (obj < 0)
        return;
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    hid_t t = make_type(b, 0), s = make_space(b, 2, 40);
    hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    void *keep = NULL, *v = make_values(b, t, H5Sget_simple_extent_npoints(s), &keep);
    if (a >= 0 && v && H5Sget_simple_extent_type(s) != H5S_NULL)
        H5Awrite(a, t, v);
    free(keep);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    if (obj != f)
        H5Oclose(obj);
}

static void edit_dataset(hid_t f, struct bytes *b)
{
    const char *name = g_objects[take(b) % 8];
    if (H5Lexists(f, name, H5P_DEFAULT) > 0)
        H5Ldelete(f, name, H5P_DEFAULT);
    unsigned k = take(b);
    hid_t t = k & 1 ? make_type(b, 0) : H5Tcopy(k & 2 ? H5T_STD_U8LE : H5T_IEEE_F32LE);
    hid_t s = make_space(b, 5, 70);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    int rank = H5Sget_simple_extent_ndims(s);
    hsize_t chunk[5] = {1, 1, 1, 1, 1};
    switch (take(b) % 6) {
    case 1:
        H5Pset_layout(dcpl, H5D_COMPACT);
        break;
    case 2:
    case 3:
        if (rank > 0) {
            for (int i = 0; i < rank; i++)
                chunk[i] = 1 + take(b) % 8;
            H5Pset_chunk(dcpl, rank, chunk);
            unsigned filters = take(b);
            if (filters & 1)
                H5Pset_shuffle(dcpl);
            if (filters & 2)
                H5Pset_deflate(dcpl, filters % 9);
            if (filters & 4)
                H5Pset_fletcher32(dcpl);
        }
        break;
    case 4:
        H5Pset_external(dcpl, g_ext, 0, H5F_UNLIMITED);
        break;
    default:
        break;
    }
    hid_t d = H5Dcreate2(f, name, t, s, lcpl, dcpl, H5P_DEFAULT);
    void *keep = NULL, *v = make_values(b, t, H5Sget_simple_extent_npoints(s), &keep);
    if (d >= 0 && v && H5Sget_simple_extent_type(s) != H5S_NULL)
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(keep);
    if (d >= 0)
        H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Tclose(t);
}

static void edit_link(hid_t f, struct bytes *b)
{
    const char *name = g_objects[take(b) % N_OF(g_objects)];
    const char *target = g_objects[take(b) % N_OF(g_objects)];
    unsigned k = take(b) % 4;
    if (H5Lexists(f, name, H5P_DEFAULT) > 0)
        H5Ldelete(f, name, H5P_DEFAULT);
    if (k == 0)
        H5Lcreate_soft(target, f, name, H5P_DEFAULT, H5P_DEFAULT);
    else if (k == 1)
        H5Lcreate_external(take(b) & 1 ? g_data : g_ckpt, target, f, name, H5P_DEFAULT, H5P_DEFAULT);
    else if (k == 2 && H5Lexists(f, target, H5P_DEFAULT) > 0)
        H5Lcreate_hard(f, target, f, name, H5P_DEFAULT, H5P_DEFAULT);
    else {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t g = H5Gcreate2(f, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0)
            H5Gclose(g);
        H5Pclose(lcpl);
    }
}

static void edit_delete(hid_t f, struct bytes *b)
{
    if (take(b) & 1) {
        const char *name = g_attrs[take(b) % (N_OF(g_attrs) - 1)];
        if (H5Aexists(f, name) > 0)
            H5Adelete(f, name);
    } else {
        const char *name = g_objects[take(b) % N_OF(g_objects)];
        if (H5Lexists(f, name, H5P_DEFAULT) > 0)
            H5Ldelete(f, name, H5P_DEFAULT);
    }
}

/* A copy of src at g_input, edited as the input says. 0, or -1 when libhdf5 cannot open the copy. */
static int build(const char *src, struct bytes *b)
{
    FILE *in = fopen(src, "rb"), *out = fopen(g_input, "wb");
    VAE_ASSERT(in && out);
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof buf, in)) > 0;)
        VAE_ASSERT(fwrite(buf, 1, n, out) == n);
    fclose(in);
    VAE_ASSERT(fclose(out) == 0);
    hid_t f = H5Fopen(g_input, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        return -1;
    for (int e = 0; e < 6 && b->at < b->n; e++) {
        switch (take(b) % 4) {
        case 0:
            edit_attr(f, b);
            break;
        case 1:
            edit_dataset(f, b);
            break;
        case 2:
            edit_link(f, b);
            break;
        default:
            edit_delete(f, b);
        }
    }
    H5Fclose(f);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init(argc, argv);
    (void)fuzz_write_input; /* this target builds its files itself */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    long pid = (long)getpid();
    snprintf(g_data, sizeof g_data, "/dev/shm/vae_fuzz_sdata_%ld.h5", pid);
    snprintf(g_ext, sizeof g_ext, "/dev/shm/vae_fuzz_ext_%ld.bin", pid);
    VAE_ASSERT(dataset_make_synthetic(g_data, 64, 32, 16, NULL, 1, 0, 1) == 0);
    /* A valid checkpoint: two steps of a tiny model on that dataset. */
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", g_data);
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "/dev/shm/vae_fuzz_run_%ld", pid);
    cfg.hidden.v[0] = 8;
    cfg.latent = 2;
    cfg.batch_size = 32;
    cfg.max_steps = 2;
    VAE_ASSERT(train_run(&cfg, g_comm, "none", NULL) == 0);
    snprintf(g_ckpt, sizeof g_ckpt, "%s/ckpt/step-00000002.h5", cfg.run_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bytes b = {data, size, 0};
    int ckpt = take(&b) & 1;
    if (build(ckpt ? g_ckpt : g_data, &b))
        return 0;
    if (ckpt) {
        struct ckpt_meta meta;
        if (ckpt_inspect(g_comm, g_input, &meta) != 0)
            return 0;
        ckpt_meta_free(&meta);
        struct infer_args a = {.checkpoint = g_input, .data = g_data, .split = "test", .n = 32};
        infer_eval(g_comm, &a);
        return 0;
    }
    struct dataset_info info;
    struct shard s;
    if (dataset_open(g_comm, g_input, &info) == 0 &&
        dataset_read_shard(g_comm, g_input, &info, "train", 0, 1, &s) == 0)
        shard_free(&s);
    return 0;
}
