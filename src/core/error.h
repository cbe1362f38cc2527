/*
 * Fatal errors and always-on assertions.
 *
 * A fatal error prints one line naming the rank, the cause and the source
 * location, then ends the *whole job* through the abort hook that src/comm
 * installs (MPI_Abort), so no rank is left waiting in a collective. Before
 * MPI is up (or in serial tools) the hook is unset and the process exits.
 * Recoverable errors do not come here: they return -1 to the caller, which
 * agrees with the other ranks before acting (see comm_agree).
 */
#ifndef VAE_ERROR_H
#define VAE_ERROR_H

/* Exit codes a batch script can act on (documented in docs/usage.md). */
enum vae_exit {
    VAE_EXIT_OK = 0,
    VAE_EXIT_ERROR = 1,   /* bad input, bad config, I/O failure */
    VAE_EXIT_USAGE = 2,   /* bad command line */
    VAE_EXIT_FATAL = 3,   /* internal error or a failed MPI/HDF5 call */
    VAE_EXIT_SIGNAL = 42, /* stopped by a signal after a checkpoint: requeue */
};

#define VAE_ASSERT(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            vae_fatal(__FILE__, __LINE__, "assertion failed: %s", #cond);                                    \
    } while (0)

/* Print "[rank r/P] fatal: <message> (file:line)" and end the job. */
_Noreturn void vae_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Installed by comm_init: ends every rank (MPI_Abort). */
void error_set_abort_hook(void (*hook)(int code));

/* End the job with an exit code, through the abort hook when one is set. */
_Noreturn void vae_abort(int code);

#endif
