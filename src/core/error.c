/* Fatal errors: one message, then the whole job ends (see error.h). */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

static void (*abort_hook)(int code);

void error_set_abort_hook(void (*hook)(int code))
{
    abort_hook = hook;
}

_Noreturn void vae_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    if (abort_hook)
        abort_hook(code); /* does not return */
    exit(code);
}

_Noreturn void vae_fatal(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_error("fatal: %s (%s:%d)", msg, file, line);
    vae_abort(VAE_EXIT_FATAL);
}
