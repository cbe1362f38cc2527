/*
 * The run lock: one training run per run directory. Two runs on one
 * run.dir would interleave checkpoints (a committed file once held one run's
 * parameters and the other's optimizer state). The lock is an advisory
 * fcntl lock on run.dir/lock, which also names its holder (PID, host, start
 * time). The kernel (or the NFS lock manager) drops it when the holder
 * exits, however it exits, so a crashed run leaves no stale lock: the file
 * stays, but nobody holds it. Local: rank 0 takes it for the job.
 */
#ifndef VAE_RUNLOCK_H
#define VAE_RUNLOCK_H

/*
 * Take the lock of directory `dir`. Returns an fd to keep open for the run
 * (>= 0); -1 when another process holds it (the message names its PID and
 * host) or the lock file cannot be made; -2 where the file system has no
 * locks (a warning says the run goes on unprotected).
 */
int runlock_acquire(const char *dir);

/* Release a lock taken by runlock_acquire (fd < 0: nothing to do). */
void runlock_release(int fd);

#endif
