/*
 * libFuzzer target: dataset validation and the sharded read. Any file is
 * either a dataset whose splits read (and pass their checksum) or is refused
 * with a message; never a crash, a hang or an abort.
 */
#include "data/dataset.h"
#include "fuzz_files.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init(argc, argv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_input(data, size);
    struct dataset_info info;
    /* Reading is tried below 16 MiB of rows: a header that claims more is
     * valid HDF5 (unallocated storage reads as fill values) and would only
     * make every run slow. Allocation failures have their own test. */
    if (dataset_open(g_comm, g_input, &info) == 0 && (info.n_train + info.n_test) * info.n_dim < (1u << 24)) {
        struct shard s;
        if (dataset_read_shard(g_comm, g_input, &info, "train", 0, 1, &s) == 0)
            shard_free(&s);
        if (info.n_test && dataset_read_shard(g_comm, g_input, &info, "test", 0, 256, &s) == 0)
            shard_free(&s);
    }
    return 0;
}
