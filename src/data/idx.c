/* IDX reader through zlib's gz* calls, which read plain files too (see idx.h). */
#include "data/idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/log.h"
#include "core/path.h"

#define IDX_MAX_ITEMS ((size_t)1 << 31)

static int read_u32(gzFile f, uint32_t *v)
{
    unsigned char b[4];
    if (gzread(f, b, 4) != 4)
        return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

/* gzip's own error after a short read, as "; gzip: <why>" or "". */
static const char *gz_why(gzFile f, char *buf, size_t n)
{
    int errnum = 0;
    const char *zmsg = gzerror(f, &errnum);
    snprintf(buf, n, "%s%s", errnum ? "; gzip: " : "", errnum ? zmsg : "");
    return buf;
}

/* The header: magic, item count and (images) rows and columns, checked. */
static int read_header(gzFile f, const char *path, int expect_images, struct idx *out)
{
    char why[256];
    uint32_t magic = 0, n = 0, rows = 1, cols = 1;
    uint32_t want = expect_images ? 0x803 : 0x801;
    if (read_u32(f, &magic)) {
        log_error("%s: truncated or damaged: cannot read the 4-byte IDX magic%s", path,
                  gz_why(f, why, sizeof why));
        return -1;
    }
    if (magic != want) {
        log_error("%s: not an IDX %s file: expected magic 0x%08x, found 0x%08x%s", path,
                  expect_images ? "image" : "label", want, magic,
                  magic == 0x801 || magic == 0x803 ? " (images and labels swapped?)" : "");
        return -1;
    }
    if (read_u32(f, &n) || (expect_images && (read_u32(f, &rows) || read_u32(f, &cols)))) {
        log_error("%s: IDX header truncated", path);
        return -1;
    }
    if (n == 0 || rows == 0 || cols == 0 || n > IDX_MAX_ITEMS || (uint64_t)rows * cols > 1u << 24) {
        log_error("%s: implausible IDX sizes n=%u rows=%u cols=%u", path, n, rows, cols);
        return -1;
    }
    out->n = n;
    out->rows = rows;
    out->cols = cols;
    return 0;
}

/* The n · rows · cols payload bytes into out->data (malloc'd), and nothing after them. */
static int read_payload(gzFile f, const char *path, struct idx *out)
{
    char why[256];
    size_t n_bytes = out->n * out->rows * out->cols, got = 0;
    out->data = malloc(n_bytes);
    if (!out->data) {
        log_error("%s: out of memory for %zu bytes", path, n_bytes);
        return -1;
    }
    while (got < n_bytes) {
        unsigned chunk = n_bytes - got > (1u << 30) ? 1u << 30 : (unsigned)(n_bytes - got);
        int r = gzread(f, out->data + got, chunk);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got != n_bytes) {
        log_error("%s: truncated: header promises %zu payload bytes, found %zu%s", path, n_bytes, got,
                  gz_why(f, why, sizeof why));
        return -1;
    }
    unsigned char extra;
    if (gzread(f, &extra, 1) != 0) {
        log_error("%s: trailing bytes after the %zu items the header declares", path, out->n);
        return -1;
    }
    return 0;
}

int idx_read(struct idx *out, const char *path, int expect_images)
{
    memset(out, 0, sizeof *out);
    if (path_check_regular(path, "IDX file"))
        return -1;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        log_error("%s: cannot open IDX file: %s", path, strerror(errno ? errno : ENOENT));
        return -1;
    }
    int rc = read_header(f, path, expect_images, out) == 0 && read_payload(f, path, out) == 0 ? 0 : -1;
    gzclose(f);
    if (rc) {
        idx_free(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

void idx_free(struct idx *x)
{
    free(x->data);
    x->data = NULL;
}
