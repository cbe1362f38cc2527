/* metrics.jsonl writer (see metrics.h). */
#include "core/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/path.h"

/* This process's run id, made once: "20261125T190301Z-12345". */
static const char *run_id(void)
{
    static char id[64];
    if (!id[0]) {
        time_t now = time(NULL);
        struct tm tm;
        strftime(id, sizeof id, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
        snprintf(id + strlen(id), sizeof id - strlen(id), "-%ld", (long)getpid());
    }
    return id;
}

int metrics_open(struct metrics *mt, const char *run_dir, int rank)
{
    mt->f = NULL;
    mt->failed = 0;
    if (rank != 0)
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    mt->f = path_fopen_output(path, "a", "metrics log");
    return mt->f ? 0 : -1;
    return 0;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void metrics_begin(struct metrics *mt, const char *event)
{
    if (!mt->f)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    fprintf(mt->f, "{\"event\": \"%s\", \"time\": %.3f, \"run\": \"%s\"", event,
            (double)tv.tv_sec + (double)tv.tv_usec * 1e-6, run_id());
}

void metrics_num(struct metrics *mt, const char *key, double value)
{
    if (!mt->f)
        return;
    if (isfinite(value))
        fprintf(mt->f, ", \"%s\": %.10g", key, value);
    else
        fprintf(mt->f, ", \"%s\": null", key);
}

void metrics_str(struct metrics *mt, const char *key, const char *value)
{
    if (!mt->f)
        return;
    fprintf(mt->f, ", \"%s\": ", key);
    put_string(mt->f, value);
}

void metrics_end(struct metrics *mt)
{
    if (!mt->f)
        return;
    fputs("}\n", mt->f);
    if (fflush(mt->f) || ferror(mt->f))
        mt->failed = 1;
}

void metrics_write(struct metrics *mt, const char *event, ...)
{
    va_list ap;
    va_start(ap, event);
    metrics_begin(mt, event);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *))
        metrics_num(mt, k, va_arg(ap, double));
    va_end(ap);
    metrics_end(mt);
}

void metrics_write_array(struct metrics *mt, const char *event, const char *const *names,
                         const double *values, size_t n)
{
    metrics_begin(mt, event);
    for (size_t i = 0; i < n; i++)
        metrics_num(mt, names[i], values[i]);
    metrics_end(mt);
}

int metrics_close(struct metrics *mt)
{
    int failed = mt->failed;
    if (mt->f && fclose(mt->f))
        failed = 1;
    mt->f = NULL;
    mt->failed = 0;
    return failed ? -1 : 0;
}
