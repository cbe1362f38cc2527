/* metrics.jsonl writer (see metrics.h). */
#include "core/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "core/log.h"

int metrics_open(struct metrics *mt, const char *run_dir, int rank)
{
    mt->f = NULL;
    if (rank != 0)
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    mt->f = fopen(path, "a");
    if (!mt->f) {
        log_error("%s: cannot open for appending: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void write_pair(FILE *f, const char *k, double v)
{
    if (isfinite(v))
        fprintf(f, ", \"%s\": %.10g", k, v);
    else
        fprintf(f, ", \"%s\": null", k);
}

void metrics_write(struct metrics *mt, const char *event, ...)
{
    if (!mt->f)
        return;
    va_list ap;
    va_start(ap, event);
    fprintf(mt->f, "{\"event\": \"%s\"", event);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *))
        write_pair(mt->f, k, va_arg(ap, double));
    va_end(ap);
    fputs("}\n", mt->f);
    fflush(mt->f);
}

void metrics_write_array(struct metrics *mt, const char *event, const char *const *names,
                         const double *values, size_t n)
{
    if (!mt->f)
        return;
    fprintf(mt->f, "{\"event\": \"%s\"", event);
    for (size_t i = 0; i < n; i++)
        write_pair(mt->f, names[i], values[i]);
    fputs("}\n", mt->f);
    fflush(mt->f);
}

void metrics_close(struct metrics *mt)
{
    if (mt->f)
        fclose(mt->f);
    mt->f = NULL;
}
