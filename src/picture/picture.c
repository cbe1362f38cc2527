/* PNG grids through libpng (see picture.h); the only file that includes png.h. */
#include "picture/picture.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/path.h"

/* The libpng calls, alone in a function: libpng reports errors by longjmp.
 * color_type: PNG_COLOR_TYPE_GRAY (1 byte a pixel). */
static int write_rows(FILE *f, png_bytep *lines, size_t w, size_t h, int color_type)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, lines);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* Create path and write the rows into it; -1 with a message naming path. */
static int save(const char *path, png_bytep *rows, size_t w, size_t h, int color_type)
{
    FILE *f = path_fopen_output(path, "wb", "picture");
    if (!f)
        return -1;
    int rc = write_rows(f, rows, w, h, color_type);
    if (fclose(f))
        rc = -1;
    if (rc)
        log_error("%s: writing the PNG failed (disk full?)", path);
    return rc;
}

/* The colour of pixel (r, c) of one C×rows×cols image into px (1 or 3 bytes). */
static void pixel(unsigned char *px, const float *img, size_t ch, size_t plane, size_t at)
{
    size_t n_out = ch == 3 ? 3 : 1;
    for (size_t k = 0; k < n_out; k++) {
        float v = 0;
        if (ch == 3) {
            v = img[k * plane + at];
        } else {
            for (size_t c = 0; c < ch; c++)
                v += img[c * plane + at];
            v /= (float)ch;
        }
        v = v < 0 ? 0 : (v > 1 ? 1 : v);
        px[k] = (unsigned char)(v * 255.0f + 0.5f);
    }
}

int picture_write_grid(const char *path, const float *images, size_t n, size_t channels, size_t rows,
                       size_t cols, size_t n_cols, size_t scale)
{
    size_t n_rows = (n + n_cols - 1) / n_cols, sr = rows * scale, sc = cols * scale,
           bpp = channels == 3 ? 3 : 1;
    size_t w = n_cols * (sc + 1) + 1, h = n_rows * (sr + 1) + 1, plane = rows * cols;
    unsigned char *pix = malloc(w * h * bpp);
    png_bytep *lines = malloc(h * sizeof *lines);
    int rc = -1;
    if (!pix || !lines) {
        log_error("%s: out of memory for a %zux%zu picture", path, w, h);
        goto out_free;
    }
    memset(pix, 128, w * h * bpp);
    for (size_t i = 0; i < n; i++) {
        size_t r0 = 1 + (i / n_cols) * (sr + 1), c0 = 1 + (i % n_cols) * (sc + 1);
        for (size_t r = 0; r < sr; r++)
            for (size_t c = 0; c < sc; c++)
                pixel(pix + ((r0 + r) * w + c0 + c) * bpp, images + i * channels * plane, channels, plane,
                      (r / scale) * cols + c / scale);
    }
    for (size_t r = 0; r < h; r++)
        lines[r] = pix + r * w * bpp;
    rc = save(path, lines, w, h, bpp == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY);
out_free:
    free(pix);
    free(lines);
    return rc;
}
