/*
 * Fault hooks driven by the environment: linked only into vae_dist_faults,
 * the binary the fault suite runs (see fault.h, docs/usage.md):
 *   VAE_TEST_UNREADABLE_RANK=r      rank r sees every input file as unreadable
 *   VAE_TEST_KILL_BEFORE_COMMIT=1   SIGKILL after a checkpoint's data, before its commit
 *   VAE_TEST_NAN_STEPS=a:b          the last rank's gradient is NaN at steps [a, b)
 *   VAE_TEST_DIVERGE_RANK=r         rank r's parameters drift after step 0
 *   VAE_TEST_STEP_DELAY_MS=n        every step sleeps n ms
 *   VAE_TEST_SKIP_ROOM_CHECK=1      checkpoints skip their free-space check
 */
#include "core/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long env_long(const char *name, long fallback)
{
    const char *v = getenv(name);
    return v ? atol(v) : fallback;
}

int fault_unreadable(int rank)
{
    return env_long("VAE_TEST_UNREADABLE_RANK", -1) == rank;
}

void fault_before_commit(void)
{
    if (getenv("VAE_TEST_KILL_BEFORE_COMMIT"))
        raise(SIGKILL);
}

int fault_nan_gradient(int64_t step, int rank, int size)
{
    const char *v = getenv("VAE_TEST_NAN_STEPS");
    long long a, b;
    return v && sscanf(v, "%lld:%lld", &a, &b) == 2 && rank == size - 1 && step >= a && step < b;
}

int fault_diverge(int64_t step, int rank)
{
    return step == 0 && env_long("VAE_TEST_DIVERGE_RANK", -1) == rank;
}

int fault_skip_room_check(void)
{
    return getenv("VAE_TEST_SKIP_ROOM_CHECK") != NULL;
}

void fault_step_delay(void)
{
    long ms = env_long("VAE_TEST_STEP_DELAY_MS", 0);
    if (ms > 0)
        nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}
