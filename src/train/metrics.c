/* metrics.jsonl writer (see metrics.h). */
#include "train/metrics.h"

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

void metrics_write(struct metrics *mt, const char *event, ...)
{
    if (!mt->f)
        return;
    va_list ap;
    va_start(ap, event);
    fprintf(mt->f, "{\"event\": \"%s\"", event);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
        double v = va_arg(ap, double);
        if (isfinite(v))
            fprintf(mt->f, ", \"%s\": %.10g", k, v);
        else
            fprintf(mt->f, ", \"%s\": null", k);
    }
    va_end(ap);
    fputs("}\n", mt->f);
    fflush(mt->f);
}

void metrics_close(struct metrics *mt)
{
    if (mt->f)
        fclose(mt->f);
    mt->f = NULL;
}
