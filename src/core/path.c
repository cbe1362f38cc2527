/* Path checks (see path.h). */
#define _GNU_SOURCE /* O_CLOEXEC, O_NONBLOCK */
#include "core/path.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/log.h"

#define PROC_MAGIC  0x9fa0
#define SYSFS_MAGIC 0x62656572

static const char *kind_of(mode_t m)
{
    return S_ISFIFO(m)   ? "a FIFO (opening it would wait for the other end)"
           : S_ISDIR(m)  ? "a directory"
           : S_ISSOCK(m) ? "a socket"
                         : "a device";
}

int path_check_regular(const char *path, const char *what)
{
    struct stat st;
    struct statfs fs;
    if (stat(path, &st))
        return 0; /* missing or unreadable: the open that follows says so */
    if (!S_ISREG(st.st_mode)) {
        log_error("%s: the %s should be a regular file, found %s", path, what, kind_of(st.st_mode));
        return -1;
    }
    if (statfs(path, &fs) == 0 && (fs.f_type == PROC_MAGIC || fs.f_type == SYSFS_MAGIC)) {
        log_error("%s: the %s should be a regular file, found a kernel pseudo-file (/proc, /sys)", path,
                  what);
        return -1;
    }
    return 0;
}

int path_check_output(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) || S_ISREG(st.st_mode))
        return 0;
    log_error("%s: the %s would replace %s; expected a new or regular file (HINT: choose another path)", path,
              what, kind_of(st.st_mode));
    return -1;
}

FILE *path_fopen_output(const char *path, const char *mode, const char *what)
{
    if (path_check_output(path, what))
        return NULL;
    int append = mode[0] == 'a';
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | (append ? O_APPEND : O_TRUNC), 0644);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
        close(fd); /* replaced by something else since the check */
        log_error("%s: the %s is not a regular file", path, what);
        return NULL;
    }
    FILE *f = NULL;
    if (fd >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0)
        f = fdopen(fd, mode);
    if (!f) {
        log_error("%s: cannot open the %s for writing: %s", path, what, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return f;
}

int path_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}
