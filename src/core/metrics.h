/*
 * metrics.jsonl: one JSON object per line, written by rank 0 and flushed
 * per line so a killed run keeps everything it logged. Every line starts
 * with "event", "time" (Unix seconds, wall clock) and "run" (this process's
 * run id: start time and PID, so the segments of a resumed run tell apart).
 * Events: "start" (step, resumed), "step" (loss terms, samples/s, per-phase
 * seconds), "epoch" (train and test −ELBO), "eval" (checkpoint, split,
 * results). Non-finite numbers are written as null.
 */
#ifndef VAE_METRICS_H
#define VAE_METRICS_H

#include <stddef.h>
#include <stdio.h>

struct metrics {
    FILE *f;    /* NULL on ranks other than 0 */
    int failed; /* a write failed (disk full?) */
};

/* Open run_dir/metrics.jsonl for appending (rank 0 only; others get f = NULL). */
int metrics_open(struct metrics *mt, const char *run_dir, int rank);

/* One line piece by piece: begin, any number of num/str, end. */
void metrics_begin(struct metrics *mt, const char *event);
void metrics_num(struct metrics *mt, const char *key, double value);
void metrics_str(struct metrics *mt, const char *key, const char *value);
void metrics_end(struct metrics *mt);

/* Write one line: "event" then the pairs (name, value) ..., NULL-terminated. */
void metrics_write(struct metrics *mt, const char *event, ...);
/* Write one line from arrays: "event", then names[i]: values[i] for i < n. */
void metrics_write_array(struct metrics *mt, const char *event, const char *const *names,
                         const double *values, size_t n);

/* Close; -1 if any write failed since metrics_open (the caller says so). */
int metrics_close(struct metrics *mt);

#endif
