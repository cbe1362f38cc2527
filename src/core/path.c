/* Input path checks (see path.h). */
#include "core/path.h"

#include <sys/stat.h>

#include "core/log.h"

int path_check_regular(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) || S_ISREG(st.st_mode))
        return 0; /* missing or unreadable: the open that follows says so */
    log_error("%s: the %s should be a regular file, found %s", path, what,
              S_ISFIFO(st.st_mode)  ? "a FIFO (reading it would wait for a writer)"
              : S_ISDIR(st.st_mode) ? "a directory"
                                    : "a device or socket");
    return -1;
}
