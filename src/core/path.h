/*
 * Checks on input paths before they are opened. Opening a FIFO for reading
 * blocks until a writer appears: a FIFO (or a device, or a directory) given
 * as a data, config or checkpoint path would hang the job instead of failing.
 * Local.
 */
#ifndef VAE_PATH_H
#define VAE_PATH_H

/* 0 if path is a regular file (after symlinks); else -1, and a message naming path and `what` it should be.
 */
int path_check_regular(const char *path, const char *what);

#endif
