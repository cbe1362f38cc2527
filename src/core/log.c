/* Rank-aware logging (see log.h). Each message is one write, so lines from
 * different ranks do not interleave mid-line. */
#include "core/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int g_rank, g_size = 1;
static char *g_held; /* warnings and errors held by log_hold */
static size_t g_held_bytes;
static int g_holding;

void log_set_rank(int rank, int size)
{
    g_rank = rank;
    g_size = size;
}

int log_rank(void)
{
    return g_rank;
}

__attribute__((format(printf, 3, 0))) static void emit(FILE *f, const char *tag, const char *fmt, va_list ap)
{
    char line[2048];
    int n = 0;
    if (tag)
        n = snprintf(line, sizeof line, "[rank %d/%d] %s: ", g_rank, g_size, tag);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = strlen(line);
    line[len] = '\n';
    if (g_holding && f == stderr) {
        char *more = realloc(g_held, g_held_bytes + len + 1);
        if (more) {
            memcpy(more + g_held_bytes, line, len + 1);
            g_held = more;
            g_held_bytes += len + 1;
            return;
        }
    }
    fwrite(line, 1, len + 1, f);
    fflush(f);
}

void log_info(const char *fmt, ...)
{
    if (g_rank != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(stdout, NULL, fmt, ap);
    va_end(ap);
}

void log_note(const char *fmt, ...)
{
    if (g_rank != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(stderr, NULL, fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(stderr, "warning", fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(stderr, "error", fmt, ap);
    va_end(ap);
}

void log_hold(void)
{
    g_holding = 1;
}

void log_release(int print)
{
    if (print && g_held_bytes) {
        fwrite(g_held, 1, g_held_bytes, stderr);
        fflush(stderr);
    }
    free(g_held);
    g_held = NULL;
    g_held_bytes = 0;
    g_holding = 0;
}
