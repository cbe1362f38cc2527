/*
 * Shared by the file fuzz targets: MPI as a singleton (one process, no
 * launcher), and each input written to a file in /dev/shm, since the code
 * under test opens paths through MPI-IO as it does in a job.
 */
#ifndef VAE_FUZZ_FILES_H
#define VAE_FUZZ_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct comm *g_comm;
static char g_input[64];

static void fuzz_init(int *argc, char ***argv)
{
    g_comm = comm_init(argc, argv);
    snprintf(g_input, sizeof g_input, "/dev/shm/vae_fuzz_%ld.h5", (long)getpid());
}

static void fuzz_write_input(const uint8_t *data, size_t size)
{
    FILE *f = fopen(g_input, "wb");
    VAE_ASSERT(f && fwrite(data, 1, size, f) == size && fclose(f) == 0);
}

#endif
