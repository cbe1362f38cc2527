/*
 * Rank-aware logging. Progress and results come from rank 0 only (log_info);
 * warnings and errors come from whichever rank saw them, prefixed
 * "[rank r/P]" so that a message in a 64-rank log names its origin.
 */
#ifndef VAE_LOG_H
#define VAE_LOG_H

#include <stdio.h>

/* Set by comm_init; before that every process behaves as rank 0 of 1. */
void log_set_rank(int rank, int size);
int log_rank(void);

/* Rank 0 only, to stdout. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Any rank, to stderr, prefixed "[rank r/P] warning: ". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Any rank, to stderr, prefixed "[rank r/P] error: ". */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
