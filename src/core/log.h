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
/* Rank 0 only, to stderr: notes beside a command's machine-readable stdout. */
void log_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Any rank, to stderr, prefixed "[rank r/P] warning: ". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Any rank, to stderr, prefixed "[rank r/P] error: ". */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Errors that every rank meets alike (a bad config, a bad dataset) are
 * printed once per job: between log_hold and log_release, warnings and
 * errors are held, and log_release(1) prints them, log_release(0) drops
 * them. Callers release with print = (this rank is the lowest that failed),
 * from comm_first_failure.
 */
void log_hold(void);
void log_release(int print);

#endif
