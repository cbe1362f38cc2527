/* Fault hooks that do nothing: linked into the release binary (see fault.h). */
#include "core/fault.h"

int fault_unreadable(int rank)
{
    (void)rank;
    return 0;
}

void fault_before_commit(void)
{
}

int fault_nan_gradient(int64_t step, int rank, int size)
{
    (void)step;
    (void)rank;
    (void)size;
    return 0;
}

int fault_diverge(int64_t step, int rank)
{
    (void)step;
    (void)rank;
    return 0;
}

int fault_skip_room_check(void)
{
    return 0;
}

void fault_step_delay(void)
{
}
