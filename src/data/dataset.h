/*
 * The vae_dist dataset format (HDF5; schema in docs/formats.md):
 *   /            attrs format = "vae_dist-dataset", version = 1,
 *                      image_channels, image_rows, image_cols (0s for non-image
 *                      data; rows of x hold C·H·W values in NCHW order)
 *   /train/x     (N, D) uint8 (pixels, scaled by 1/255 on read) or float32,
 *                attribute crc32 (CRC-32 of the stored bytes, row-major;
 *                written by prep and synth, verified on every whole read)
 *   /train/y     (N) uint8 labels, optional
 *   /test/x, /test/y   the same for the test split, optional
 *
 * dataset_open validates all of it before any sample is read. Reading is
 * sharded: rank r of P reads rows [r·N/P, (r+1)·N/P) of a split with one
 * collective hyperslab read (MPI-IO), so memory per rank is O(N/P).
 */
#ifndef VAE_DATASET_H
#define VAE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"

#define DATASET_FORMAT  "vae_dist-dataset"
#define DATASET_VERSION 1

struct dataset_info {
    size_t n_train, n_test; /* N of each split (n_test = 0: no test split) */
    size_t n_dim;           /* D */
    int is_u8;              /* uint8 pixels (else float32) */
    int has_labels;
    long image_channels, image_rows, image_cols; /* C, H, W; 0s: not images */
    long crc32_train;  /* attribute crc32 of /train/x; -1: the file has none (trainer: shard_checksums') */
    long crc32_labels; /* -1 (trainer: shard_checksums' of /train/y, -1 without labels) */
    int channels_last; /* /train/x looks (N, H, W, C) with C <= 4: said in a warning */
};

/* Rows of one split held by this rank (a shard, or an epoch buffer). */
struct shard {
    size_t n_rows, n_dim; /* rows held, D */
    size_t row_bytes;     /* D (uint8) or 4·D (float32) */
    int is_u8;
    unsigned char *rows; /* (n_rows, row_bytes) */
    uint32_t *ids;       /* (n_rows) global row id of each row */
    uint8_t *labels;     /* (n_rows), or NULL */
};

/*
 * Validate the file on every rank of c (collective): format and version
 * attributes, datasets present, 2-D x with D equal across splits, dtype
 * uint8 or float32, labels shaped (N). Returns 0 or -1 with one message;
 * the result is agreed across ranks.
 */
int dataset_open(const struct comm *c, const char *path, struct dataset_info *info);

/*
 * Collective read of this rank's contiguous shard of a split ("train"/"test"),
 * of its first `limit` rows when limit > 0 (all rows otherwise): the block
 * dataset_block(n, unit, P, rank) (unit 1 for training, EVAL_CHUNK where the
 * evaluator needs whole chunks). A whole split with a crc32 attribute is
 * checked against it: each rank sums its shard, the sums are combined in
 * rank order, and a mismatch is an error (agreed) naming the dataset.
 */
int dataset_read_shard(const struct comm *c, const char *path, const struct dataset_info *info,
                       const char *split, size_t limit, size_t unit, struct shard *out);

/*
 * The CRC-32 of a split held in blocks, rank r the r-th (as
 * dataset_read_shard reads a whole split): of its x rows as read, and of
 * its labels (-1 without). Computed whether or not the file stores one, so
 * that a resume on other data is caught for any file. Collective.
 */
void shard_checksums(const struct comm *c, const struct shard *s, long *rows_crc, long *labels_crc);

/* Allocate a shard of n_rows (rows, ids, and labels if with_labels). */
int shard_alloc(struct shard *s, size_t n_rows, size_t n_dim, int is_u8, int with_labels);
void shard_free(struct shard *s);

/* x (n, D) = rows [first, first+n) of s as floats in [0,1] (uint8) or as stored. */
void shard_rows_to_float(float *x, const struct shard *s, size_t first, size_t n);

/*
 * The contiguous block of rank r: rows [lo, hi) of n over p ranks, cut at
 * multiples of `unit` rows (unit 1: the even split [r·n/p, (r+1)·n/p)). Local.
 */
void dataset_block(size_t n, size_t unit, int p, int r, size_t *lo, size_t *hi);

/*
 * Write a dataset file (serial; used by `vae_dist prep` and the tests).
 * x_* are (N, D) uint8 when is_u8, else float32; y_* may be NULL.
 */
int dataset_write(const char *path, const struct dataset_info *info, const void *x_train,
                  const uint8_t *y_train, const void *x_test, const uint8_t *y_test);

/* One per-sample output column: this rank's rows (n_rows, width). */
struct column {
    const char *name;  /* dataset name, e.g. "mu" */
    const float *data; /* (n_rows, width) */
    size_t width;      /* 1: stored as (N); else (N, width) */
};

/*
 * Write per-sample results (latents, scores) collectively: root attributes
 * format and version = 1, one float32 dataset per column of N = n_total
 * rows, and /y (uint8) when labels is not NULL. This rank's rows are
 * [first_row, first_row + n_rows). Returns 0 or -1 (agreed).
 */
int dataset_write_columns(const struct comm *c, const char *path, const char *format, size_t n_total,
                          size_t first_row, size_t n_rows, const struct column *cols, size_t n_cols,
                          const uint8_t *labels);

/*
 * Synthetic data for tests, benchmarks and demos, a pure function of
 * (seed, row): images (uint8) are one of 4 smooth prototypes plus noise,
 * or with image = {C, H, W} (else NULL) C×H×W pictures of a soft blob
 * placed by the class (4 classes);
 * tabular data (float32) lie near a 2-D manifold in D dimensions, and with
 * anomalies > 0 that fraction of the *test* rows is pushed off it (label 1;
 * normal rows have label 0), for anomaly-scoring demos.
 */
int dataset_make_synthetic(const char *path, size_t n_train, size_t n_test, size_t n_dim, const size_t *image,
                           int is_u8, double anomalies, uint64_t seed);

#endif
