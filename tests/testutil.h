/* Shared helpers of the tests: small synthetic datasets, the MPI tests' work directory. */
#ifndef VAE_TESTUTIL_H
#define VAE_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/config.h"
#include "core/log.h"
#include "data/dataset.h"

/*
 * The running maximum of an error: a NaN in either argument gives NaN, so a
 * comparison "worst < tolerance" after it fails (fmax and ">" skip NaN).
 */
static inline double nan_max(double worst, double d)
{
    return isnan(worst) || isnan(d) ? NAN : (d > worst ? d : worst);
}

/*
 * Multi-rank tests (they define VAE_TEST_MPI_ASSERT before including this
 * file, after cmocka.h): a failed assertion on any rank ends the whole job at
 * once, naming the rank, file and line. cmocka's own failure would end the
 * test on that rank only and leave the others waiting in a collective until
 * the test's timeout.
 */
static inline void mpi_check(int ok, const char *what, const char *file, int line)
{
    if (ok)
        return;
    fprintf(stderr, "[rank %d] test assertion failed: %s (%s:%d); ending the job\n", log_rank(), what, file,
            line);
    fflush(NULL);
    comm_abort(1);
}

static inline void mpi_check_int(intmax_t a, intmax_t b, const char *what, const char *file, int line)
{
    if (a != b)
        fprintf(stderr, "[rank %d] %jd != %jd\n", log_rank(), a, b);
    mpi_check(a == b, what, file, line);
}

#ifdef VAE_TEST_MPI_ASSERT
#undef assert_true
#undef assert_false
#undef assert_int_equal
#undef assert_memory_equal
#define assert_true(c)         mpi_check((c) ? 1 : 0, #c, __FILE__, __LINE__)
#define assert_false(c)        mpi_check((c) ? 0 : 1, "!(" #c ")", __FILE__, __LINE__)
#define assert_int_equal(a, b) mpi_check_int((intmax_t)(a), (intmax_t)(b), #a " == " #b, __FILE__, __LINE__)
#define assert_memory_equal(a, b, n)                                                                         \
    mpi_check(memcmp((a), (b), (n)) == 0, "memcmp(" #a ", " #b ", " #n ") == 0", __FILE__, __LINE__)
#endif

/* A small conv model for the 1x4x4 synthetic images (D = 16): 4x4 -> 3x2x2 -> 4x1x1 -> hidden. */
static inline void conv_model(struct config *cfg)
{
    cfg->arch = ARCH_CONV;
    cfg->channels = (struct config_list){2, {3, 4}};
    cfg->kernel = (struct config_list){1, {4}};
    cfg->stride = (struct config_list){1, {2}};
    cfg->padding = (struct config_list){1, {1}};
}

/* The synthetic uint8 image set of `vae_dist synth` (serial write). */
static inline int make_dataset(const char *path, size_t n_train, size_t n_test, size_t n_dim)
{
    return dataset_make_synthetic(path, n_train, n_test, n_dim, NULL, 1, 0.0, 2024);
}

/* What this process printed to stderr between capture_begin and capture_end. */
struct capture {
    int saved_fd;
    FILE *tmp;
    char text[8192];
};

static inline void capture_begin(struct capture *cap)
{
    fflush(stderr);
    cap->saved_fd = dup(2);
    cap->tmp = tmpfile();
    dup2(fileno(cap->tmp), 2);
}

static inline const char *capture_end(struct capture *cap)
{
    fflush(stderr);
    dup2(cap->saved_fd, 2);
    close(cap->saved_fd);
    rewind(cap->tmp);
    size_t n = fread(cap->text, 1, sizeof cap->text - 1, cap->tmp);
    cap->text[n] = 0;
    fclose(cap->tmp);
    return cap->text;
}

/*
 * Rank 0 makes a fresh directory /tmp/<name>_XXXXXX holding data.h5 (the
 * synthetic images, n_train + n_test rows of n_dim) and, when n_tabular > 0,
 * tabular.h5 (float32, 16-D, n_tabular + 64 rows); every rank gets its name.
 */
static inline void test_dir_setup(const struct comm *w, char dir[256], const char *name, size_t n_train,
                                  size_t n_test, size_t n_dim, size_t n_tabular)
{
    if (comm_rank(w) == 0) {
        char path[300];
        snprintf(dir, 256, "/tmp/%s_XXXXXX", name);
        if (!mkdtemp(dir))
            comm_abort(1);
        snprintf(path, sizeof path, "%s/data.h5", dir);
        if (make_dataset(path, n_train, n_test, n_dim))
            comm_abort(1);
        snprintf(path, sizeof path, "%s/tabular.h5", dir);
        if (n_tabular && dataset_make_synthetic(path, n_tabular, 64, 16, NULL, 0, 0.0, 7))
            comm_abort(1);
    }
    comm_bcast(w, dir, 256, 0);
}

/* The job's result: failed if cmocka failed on any rank; rank 0 removes dir. */
static inline int test_dir_finish(const struct comm *w, int cmocka_rc, const char *dir)
{
    int rc = comm_agree(w, cmocka_rc == 0) ? 0 : 1;
    if (comm_rank(w) == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            rc = 1;
    }
    return rc;
}

#endif
