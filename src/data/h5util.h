/*
 * Small helpers around libhdf5, private to src/data (the only room that
 * includes hdf5.h). HDF5's own error stack printing is switched off: every
 * failure becomes one message that names the file and object.
 */
#ifndef VAE_H5UTIL_H
#define VAE_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

#include "comm/comm.h"

/*
 * Every HDF5 call's result is checked. A call that can fail on bad input
 * (opening, existence tests, reads of a damaged file, writes to a full disk)
 * is checked where it stands, and its failure becomes one message naming
 * the file and object. Every other call (closes, property and selection
 * calls on valid handles) goes through H5_CHECK: its failure is an internal
 * error that names the call, file, line and rank and ends the whole job.
 */
#define H5_CHECK(call)                                                                                       \
    do {                                                                                                     \
        if ((call) < 0)                                                                                      \
            vae_fatal(__FILE__, __LINE__, "HDF5 call failed: %s", #call);                                    \
    } while (0)

/* Switch off HDF5's automatic error printing (once per process). */
void h5_quiet(void);

/* File access list: MPI-IO over the comm, or the default driver when c is NULL. */
hid_t h5_fapl(const struct comm *c);

/*
 * h5_fapl for files vae_dist creates: the 1.8 file format and later, whose
 * superblock and object headers carry checksums, so that a damaged file is
 * refused by libhdf5's checks instead of parsed (libhdf5 1.10 crashes on
 * some damaged headers of the older format: found by tests/fuzz). h5py and
 * any HDF5 since 1.10 read it.
 */
hid_t h5_fapl_create(const struct comm *c);

/*
 * Why libhdf5 could not create `path`: the system's reason for creating it
 * by hand ("No space left on device" for a full disk or no free inodes,
 * "Permission denied", ...), or that libhdf5 alone refused it.
 */
const char *h5_create_failure(const char *path);

/*
 * Files vae_dist writes survive a disk that fills under them. libhdf5 (1.10)
 * keeps a file whose closing flush fails half-destroyed, and crashes on it
 * in MPI_Finalize. So, before creating path, h5_ballast sets aside 64 KiB
 * beside it (path.room; 0, or -1 with errno ENOSPC or EDQUOT when even
 * that finds no room: create nothing then; other errors are left to the
 * create that follows); and h5_close_written, after a failed write or a
 * failed flush, truncates the file and deletes the ballast before closing,
 * so that the closing flush finds room. Both are called by every rank;
 * only c's rank 0 touches the disk.
 *
 * h5_close_written closes f (f < 0: a file not created; the ballast goes);
 * ok: every write succeeded on this rank.
 * Collective over c (NULL: this process alone). Returns 0 when everything
 * was written and closed, else -1 (agreed); the file's contents are then
 * lost (the caller removes it).
 */
int h5_ballast(const struct comm *c, const char *path);
int h5_close_written(const struct comm *c, hid_t f, const char *path, int ok);

/*
 * Reserve `bytes` of disk for the file at path (just created, still empty
 * or nearly) without changing its size (fallocate KEEP_SIZE), so that the
 * writes that follow cannot meet a full disk half-way: a file that fails
 * there leaves libhdf5 a closing flush that fails too, and it crashes on
 * the half-closed file in MPI_Finalize. Local (one rank calls it). Returns
 * 0, or -1 with errno (ENOSPC: no room); a file system without fallocate
 * gets no reservation and 0.
 */
int h5_reserve(const char *path, double bytes);

/* Open read-only; -1 with a message (not HDF5, unreadable) on failure. */
hid_t h5_open_read(const struct comm *c, const char *path);

/*
 * The one way vae_dist reads what a file holds: these readers, and the
 * dataset readers below, check the class, sign, size, rank and element
 * count against what the caller expects before anything is read, so that a
 * file from elsewhere (an array where one value belongs, a string longer
 * than the buffer, an enum for an integer) is refused with a message naming
 * path, object, what was expected and what was found. No H5Aread or H5Dread
 * outside this file.
 *
 * Attributes hold exactly one value (scalar, or a 1-element array). Each
 * returns 0, or -1 with that message.
 *   h5_attr_get_text:   one fixed- or variable-length string of at most
 *                       max_bytes bytes, malloc'd into *out (caller frees).
 *   h5_attr_get_string: the same into out (out_bytes with the terminator).
 *   h5_attr_get_long:   one integer of at most 8 bytes that fits a long.
 */
int h5_attr_get_text(hid_t obj, const char *path, const char *name, size_t max_bytes, char **out);
int h5_attr_get_string(hid_t obj, const char *path, const char *name, char *out, size_t out_bytes);
int h5_attr_get_long(hid_t obj, const char *path, const char *name, long *out);
int h5_attr_put_string(hid_t obj, const char *name, const char *value);
int h5_attr_put_long(hid_t obj, const char *name, long value);

/*
 * Rank and dims of a dataset (up to 4; dims beyond the rank are 1), its
 * class, element size and sign; -1 with a message when it is missing, is
 * reached through a soft or external link (every component of dset must be
 * a hard link: a checkpoint's /optim/m must not be its /model/params), keeps
 * its values outside the file (external or virtual storage) or needs a
 * filter this libhdf5 lacks. The dataset readers below assume it passed.
 */
int h5_dataset_shape(hid_t file, const char *path, const char *dset, int *rank, size_t dims[4],
                     H5T_class_t *cls, size_t *elem_bytes, int *is_signed);

/*
 * Independent read of all n_values values of dataset `name` (checked with
 * h5_dataset_shape) into buf as mem_type; -1 with a message naming path and
 * dataset when it holds another count or cannot be converted to mem_type.
 */
int h5_read_all(hid_t f, const char *path, const char *name, hid_t mem_type, size_t n_values, void *buf);

/*
 * Collective read of rows [lo, hi) of the 1-D or 2-D (N, n_cols) dataset
 * `name` into buf (memory type mem_type); a rank may read none (lo == hi).
 * Returns 0 or -1 with a message naming path and dataset.
 */
int h5_read_rows(hid_t f, const char *path, const char *name, hid_t mem_type, size_t lo, size_t hi,
                 size_t n_cols, void *buf);

/*
 * Create the dataset `name` of n_total rows (1-D when width is 1, else
 * (n_total, width)) of file type ft, and write this rank's rows
 * [lo, lo + n) from buf (memory type mt) collectively. Returns 0 or -1.
 */
int h5_write_rows(hid_t f, const char *name, hid_t ft, hid_t mt, size_t n_total, size_t width, size_t lo,
                  size_t n, const void *buf);

/*
 * Create the 1-D float32 dataset `name` of n_total values (collective) and
 * write this rank's values [lo, lo + n) from buf (its first value is the
 * slice's) independently. With direct_path (the file's path), the 4 KiB-
 * aligned middle of the rank's bytes is written with O_DIRECT from a 4 MiB
 * aligned stage, and *direct_bytes grows by its size: no page cache, which
 * on this VM is what checkpoint writes of large models waited for
 * (docs/performance.md). That needs the dataset's offset aligned
 * (H5Pset_alignment on the file); a file system that refuses O_DIRECT gets
 * the buffered path. The rest (or all, without direct_path) goes through
 * MPI-IO in pieces staged through a 256 KiB buffer: the kernel copies a
 * small hot buffer into the page cache several times faster than a large
 * cold one. With `turns` (the ranks of one node), those ranks write one
 * after another, in rank order (barriers over turns): they share one page
 * cache and disk, and two writers of one file only contend for its lock.
 * Returns 0 or -1 (not agreed).
 */
int h5_write_floats(hid_t f, const char *name, size_t n_total, size_t lo, size_t n, const float *buf,
                    const struct comm *turns, const char *direct_path, size_t *direct_bytes);

/* The read twin: values [lo, lo + n) of the 1-D float dataset `name` into buf
 * (its first value is the slice's), independently, staged alike; with
 * `direct`, the aligned middle with O_DIRECT where the dataset is one
 * contiguous run of native floats at an aligned offset (what
 * h5_write_floats writes). 0 or -1 with a message naming path and dataset
 * (not agreed). */
int h5_read_floats(hid_t f, const char *path, const char *name, size_t lo, size_t n, float *buf, int direct);
#endif
