/* IDX reader through zlib's gz* calls, which read plain files too (see idx.h). */
#include "data/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/log.h"

#define IDX_MAX_ITEMS ((size_t)1 << 31)

static int read_u32(gzFile f, uint32_t *v)
{
    unsigned char b[4];
    if (gzread(f, b, 4) != 4)
        return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

int idx_read(struct idx *out, const char *path, int expect_images)
{
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        log_error("%s: cannot open IDX file: %s", path, strerror(errno ? errno : ENOENT));
        return -1;
    }
    int rc = -1;
    uint32_t magic = 0, n = 0, rows = 1, cols = 1;
    uint32_t want = expect_images ? 0x803 : 0x801;
    if (read_u32(f, &magic)) {
        int errnum = 0;
        const char *zmsg = gzerror(f, &errnum);
        log_error("%s: truncated or damaged: cannot read the 4-byte IDX magic%s%s", path,
                  errnum ? "; gzip: " : "", errnum ? zmsg : "");
        goto out_close;
    }
    if (magic != want) {
        log_error("%s: not an IDX %s file: expected magic 0x%08x, found 0x%08x%s", path,
                  expect_images ? "image" : "label", want, magic,
                  magic == 0x801 || magic == 0x803 ? " (images and labels swapped?)" : "");
        goto out_close;
    }
    if (read_u32(f, &n) || (expect_images && (read_u32(f, &rows) || read_u32(f, &cols)))) {
        log_error("%s: IDX header truncated", path);
        goto out_close;
    }
    if (n == 0 || rows == 0 || cols == 0 || n > IDX_MAX_ITEMS || (uint64_t)rows * cols > 1u << 24) {
        log_error("%s: implausible IDX sizes n=%u rows=%u cols=%u", path, n, rows, cols);
        goto out_close;
    }
    size_t n_bytes = (size_t)n * rows * cols;
    out->data = malloc(n_bytes);
    if (!out->data) {
        log_error("%s: out of memory for %zu bytes", path, n_bytes);
        goto out_close;
    }
    size_t got = 0;
    while (got < n_bytes) {
        unsigned chunk = n_bytes - got > (1u << 30) ? 1u << 30 : (unsigned)(n_bytes - got);
        int r = gzread(f, out->data + got, chunk);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int errnum = 0;
    const char *zmsg = gzerror(f, &errnum);
    if (got != n_bytes) {
        log_error("%s: truncated: header promises %zu payload bytes, found %zu%s%s", path, n_bytes, got,
                  errnum ? "; gzip: " : "", errnum ? zmsg : "");
        goto out_free;
    }
    unsigned char extra;
    if (gzread(f, &extra, 1) != 0) {
        log_error("%s: trailing bytes after the %zu items the header declares", path, (size_t)n);
        goto out_free;
    }
    out->n = n;
    out->rows = rows;
    out->cols = cols;
    rc = 0;
    goto out_close;
out_free:
    free(out->data);
    out->data = NULL;
out_close:
    gzclose(f);
    return rc;
}

void idx_free(struct idx *x)
{
    free(x->data);
    x->data = NULL;
}
