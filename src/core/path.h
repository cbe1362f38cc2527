/*
 * Checks on the paths vae_dist opens, inputs and outputs alike. Opening a
 * FIFO blocks until the other end appears, and a device or a kernel pseudo-
 * file (/proc/self/mem) reads as something no writer meant: given as a data,
 * config, checkpoint or output path, each would hang the job or mislead it
 * instead of failing. Local.
 */
#ifndef VAE_PATH_H
#define VAE_PATH_H

#include <stdio.h>

/* 0 if path is a regular file (after symlinks) outside the kernel's pseudo
 * file systems (/proc, /sys); else -1, and a message naming path and `what`
 * it should be. A missing or unreadable path is 0: the open that follows says so. */
int path_check_regular(const char *path, const char *what);

/* 0 if path is missing (it will be created) or a regular file; else -1 with
 * a message naming path and `what` it is for. */
int path_check_output(const char *path, const char *what);

/* path_check_output, then fopen(path, mode) ("w", "wb" or "a") without ever
 * blocking (opened O_NONBLOCK and checked again on the descriptor). NULL
 * with a message naming path and `what` on failure. */
FILE *path_fopen_output(const char *path, const char *mode, const char *what);

/* Nonzero when a and b exist and are the same file (device and inode). */
int path_same_file(const char *a, const char *b);

#endif
