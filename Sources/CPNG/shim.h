/*
 * CPNG: libpng (Debian: libpng-dev), for the display backend's headless sink.
 *
 * libpng reports errors through longjmp, which Swift cannot survive, so the one entry point the
 * sink uses is written here in C: it sets the jump buffer, writes the whole image and returns
 * 0, or -1 after libpng reported an error (its message copied into `message`).
 */
#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

struct cpng_error {
    jmp_buf jump;
    char message[200];
};

static void cpng_on_error(png_structp png, png_const_charp text) {
    struct cpng_error *error = (struct cpng_error *)png_get_error_ptr(png);
    snprintf(error->message, sizeof error->message, "%s", text ? text : "libpng error");
    longjmp(error->jump, 1);
}

static void cpng_on_warning(png_structp png, png_const_charp text) { (void)png; (void)text; }

/*
 * Writes `rows` rows of `width` RGB pixels (3 bytes each, `stride` bytes apart) to `path`
 * as an 8-bit RGB PNG. Returns 0, or -1 with `message` set (at most `capacity` bytes).
 */
static inline int cpng_write_rgb(const char *path, const unsigned char *pixels, unsigned width,
                                 unsigned rows, size_t stride, char *message, size_t capacity) {
    struct cpng_error error;
    error.message[0] = 0;
    FILE *volatile file = NULL;
    png_structp volatile png = NULL;
    png_infop volatile info = NULL;
    if (setjmp(error.jump)) {
        if (png) { png_infop i = info; png_structp p = png; png_destroy_write_struct(&p, &i); }
        if (file) fclose(file);
        snprintf(message, capacity, "%s", error.message);
        return -1;
    }
    file = fopen(path, "wb");
    if (!file) { snprintf(message, capacity, "cannot open %s", path); return -1; }
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, cpng_on_error, cpng_on_warning);
    if (!png) { fclose(file); snprintf(message, capacity, "png_create_write_struct failed"); return -1; }
    info = png_create_info_struct(png);
    if (!info) png_error(png, "png_create_info_struct failed");
    png_init_io(png, file);
    png_set_IHDR(png, info, width, rows, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 1);
    png_write_info(png, info);
    for (unsigned row = 0; row < rows; row++)
        png_write_row(png, (png_const_bytep)(pixels + (size_t)row * stride));
    png_write_end(png, info);
    { png_infop i = info; png_structp p = png; png_destroy_write_struct(&p, &i); }
    png = NULL;
    if (fclose(file) != 0) { snprintf(message, capacity, "cannot write %s", path); return -1; }
    return 0;
}

#endif /* CPNG_SHIM_H */
