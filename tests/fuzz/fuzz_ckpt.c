/*
 * libFuzzer target: a checkpoint as `vae_dist info` and `vae_dist eval` read
 * it: header, stored config, model shape, buffers and their CRCs, then an
 * evaluation on a small fixed dataset. Any file is either evaluated or
 * refused with a message; never a crash, a hang or an abort.
 */
#include <stdlib.h>

#include "data/ckpt.h"
#include "data/dataset.h"
#include "fuzz_files.h"
#include "infer/infer.h"

static char g_data[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init(argc, argv);
    snprintf(g_data, sizeof g_data, "/dev/shm/vae_fuzz_data_%ld.h5", (long)getpid());
    VAE_ASSERT(dataset_make_synthetic(g_data, 64, 32, 16, NULL, 1, 0, 1) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_input(data, size);
    struct ckpt_meta meta;
    if (ckpt_inspect(g_comm, g_input, &meta) != 0)
        return 0;
    ckpt_meta_free(&meta);
    struct infer_args a = {.checkpoint = g_input, .data = g_data, .split = "test", .n = 32};
    infer_eval(g_comm, &a);
    return 0;
}
