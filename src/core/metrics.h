/*
 * metrics.jsonl: one JSON object per line, written by rank 0 and flushed
 * per line so a killed run keeps everything it logged. Events: "step"
 * (loss terms, samples/s, per-phase seconds), "epoch" (train and test
 * −ELBO), "eval".
 */
#ifndef VAE_METRICS_H
#define VAE_METRICS_H

#include <stddef.h>
#include <stdio.h>

struct metrics {
    FILE *f; /* NULL on ranks other than 0 */
};

/* Open run_dir/metrics.jsonl for appending (rank 0 only; others get f = NULL). */
int metrics_open(struct metrics *mt, const char *run_dir, int rank);
/* Write one line: "event" then the pairs (name, value) ..., NULL-terminated. */
void metrics_write(struct metrics *mt, const char *event, ...);
/* Write one line from arrays: "event", then names[i]: values[i] for i < n. */
void metrics_write_array(struct metrics *mt, const char *event, const char *const *names,
                         const double *values, size_t n);
void metrics_close(struct metrics *mt);

#endif
