/* The run lock (see runlock.h). */
#include "core/runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/path.h"

int runlock_acquire(const char *dir)
{
    char path[CONFIG_STR_MAX + 16];
    snprintf(path, sizeof path, "%s/lock", dir);
    if (path_check_output(path, "run lock"))
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0) {
        log_error("%s: cannot create the run lock: %s", path, strerror(errno));
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        char host[256] = "?", when[64] = "?";
        time_t now = time(NULL);
        gethostname(host, sizeof host - 1);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
        if (ftruncate(fd, 0) == 0)
            dprintf(fd, "PID %ld on host %s since %s\n", (long)getpid(), host, when);
        return fd;
    }
    if (errno == EACCES || errno == EAGAIN) {
        char holder[512] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        log_error("%s is in use by another training run (%s); two runs on one run.dir would mix their "
                  "checkpoints. HINT: wait for it to end, or give this run another run.dir",
                  dir, holder[0] ? holder : "holder unknown");
        close(fd);
        return -1;
    }
    log_warn("%s: this file system has no file locks (%s); nothing stops a second run on this run.dir", path,
             strerror(errno));
    close(fd);
    return -2;
}

void runlock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}
