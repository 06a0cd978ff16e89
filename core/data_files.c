/* data_files.c - datasets from CSV files and CIFAR-10 binary batches.
 *
 * Both read through zlib's gz* functions, which read gzip-compressed and plain files
 * alike. The samples are collected raw (bytes or floats) and handed to
 * ln_dataset_from_raw, which normalises them as every loader does. Errors name the
 * file and the place in it (CSV: line and column; CIFAR: record).
 */
#include "lunet.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* A growing array of `size`-byte elements. */
typedef struct {
    void *data;
    size_t count, capacity, size;
} growing;

static int grow_push(growing *g, const void *elem, size_t n)
{
    if (g->count + n > g->capacity) {
        size_t cap = g->capacity ? g->capacity : 4096;
        while (cap < g->count + n) {
            if (cap > SIZE_MAX / 2 / g->size) return 0;
            cap *= 2;
        }
        unsigned char *p = ln_alloc(cap * g->size);
        if (!p) return 0;
        if (g->count) memcpy(p, g->data, g->count * g->size);
        ln_dealloc(g->data);
        g->data = p;
        g->capacity = cap;
    }
    memcpy((unsigned char *)g->data + g->count * g->size, elem, n * g->size);
    g->count += n;
    return 1;
}

/* Reads one line (without its end of line) into *buf, growing it; 0 at end of file,
 * -1 on a read error, -2 out of memory. */
static int read_line(gzFile f, char **buf, size_t *cap, size_t *len)
{
    *len = 0;
    int got = 0;
    for (;;) {
        if (*len + 2 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 65536;
            char *p = ln_alloc(ncap);
            if (!p) return -2;
            if (*len) memcpy(p, *buf, *len);
            ln_dealloc(*buf);
            *buf = p;
            *cap = ncap;
        }
        if (!gzgets(f, *buf + *len, (int)(*cap - *len < INT_MAX ? *cap - *len : INT_MAX))) {
            int errnum;
            gzerror(f, &errnum);
            if (errnum != Z_OK && errnum != Z_STREAM_END) return -1;
            break;
        }
        got = 1;
        *len += strlen(*buf + *len);
        if (*len > 0 && (*buf)[*len - 1] == '\n') break;
    }
    while (*len > 0 && ((*buf)[*len - 1] == '\n' || (*buf)[*len - 1] == '\r')) (*len)--;
    (*buf)[*len] = '\0';
    return got;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return 0;
    return 1;
}

ln_status ln_dataset_load_csv(const char *path, int label_column, int channels, int height,
                              int width, int header, int64_t limit, ln_norm *norm,
                              ln_dataset **out, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "csv: output is NULL");
    *out = NULL;
    if (!path) return ln_fail(err, LN_EINVAL, "csv: path is NULL");
    if (channels < 1 || height < 1 || width < 1 || (int64_t)channels * height * width > (1 << 24))
        return ln_fail(err, LN_EINVAL, "csv: shape %dx%dx%d is not a valid C x H x W", channels,
                       height, width);
    const int64_t values = (int64_t)channels * height * width;
    const int64_t columns = values + 1;
    if (label_column < 1 || label_column > columns)
        return ln_fail(err, LN_EINVAL, "csv: label_column must be in [1, %lld] (got %d)",
                       (long long)columns, label_column);
    gzFile f = gzopen(path, "rb");
    if (!f) return ln_fail(err, LN_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));

    growing samples = {NULL, 0, 0, sizeof(float)};
    growing labels = {NULL, 0, 0, sizeof(int32_t)};
    float *row = ln_alloc_zeroed((size_t)values, sizeof *row);
    char *line = NULL;
    size_t cap = 0, len = 0;
    int64_t lineno = 0, rows = 0;
    int bytes_only = 1; /* every value an integer in [0, 255] */
    ln_status st = LN_OK;
    if (!row) {
        st = ln_fail(err, LN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (;;) {
        if (limit > 0 && rows >= limit) break;
        int r = read_line(f, &line, &cap, &len);
        if (r < 0) {
            st = r == -2 ? ln_fail(err, LN_ENOMEM, "%s: line %lld: out of memory", path,
                                   (long long)lineno + 1)
                         : ln_fail(err, LN_EIO, "%s: line %lld: cannot read (corrupt gzip data?)",
                                   path, (long long)lineno + 1);
            goto done;
        }
        if (r == 0) break;
        lineno++;
        if (lineno == 1 && header) continue;
        if (blank(line)) continue;
        int32_t label = 0;
        int64_t col = 0, k = 0;
        const char *p = line;
        for (;;) {
            col++;
            if (col > columns) {
                st = ln_fail(err, LN_EFORMAT,
                             "%s: line %lld: more than %lld columns (1 label + %lld values for shape "
                             "%dx%dx%d)", path, (long long)lineno, (long long)columns,
                             (long long)values, channels, height, width);
                goto done;
            }
            while (*p == ' ' || *p == '\t') p++;
            char *end;
            errno = 0;
            const double v = strtod(p, &end);
            const char *q = end;
            while (*q == ' ' || *q == '\t') q++;
            if (end == p || (*q != ',' && *q != '\0') || !isfinite(v) || errno == ERANGE) {
                const char *stop = strchr(p, ',');
                int shown = stop ? (int)(stop - p) : (int)strlen(p);
                if (shown > 24) shown = 24;
                st = ln_fail(err, LN_EFORMAT, "%s: line %lld, column %lld: \"%.*s\" is not a %s",
                             path, (long long)lineno, (long long)col, shown, p,
                             col == label_column ? "label (an integer from 0 to 65535)"
                                                 : "finite number");
                goto done;
            }
            if (col == label_column) {
                if (v != floor(v) || v < 0 || v > 65535) {
                    st = ln_fail(err, LN_EFORMAT,
                                 "%s: line %lld, column %lld: label %g is not an integer from 0 to "
                                 "65535", path, (long long)lineno, (long long)col, v);
                    goto done;
                }
                label = (int32_t)v;
            } else {
                row[k++] = (float)v;
                if (v != floor(v) || v < 0 || v > 255) bytes_only = 0;
            }
            if (*q == '\0') break;
            p = q + 1;
        }
        if (col < columns) {
            st = ln_fail(err, LN_EFORMAT,
                         "%s: line %lld: %lld columns, expected %lld (1 label + %lld values for shape "
                         "%dx%dx%d)", path, (long long)lineno, (long long)col, (long long)columns,
                         (long long)values, channels, height, width);
            goto done;
        }
        if (!grow_push(&samples, row, (size_t)values) || !grow_push(&labels, &label, 1)) {
            st = ln_fail(err, LN_ENOMEM, "%s: out of memory at line %lld", path, (long long)lineno);
            goto done;
        }
        rows++;
    }
    if (rows == 0) {
        st = ln_fail(err, LN_EFORMAT, "%s: no data lines%s", path, header ? " after the header" : "");
        goto done;
    }
    if (limit > rows) {
        st = ln_fail(err, LN_EINVAL, "%s: n = %lld is more than the %lld samples the file holds",
                     path, (long long)limit, (long long)rows);
        goto done;
    }
    const float *v = samples.data;
    if (bytes_only) {
        /* convert in place: the bytes take the first quarter of the float block */
        uint8_t *b = samples.data;
        for (size_t i = 0; i < samples.count; i++) b[i] = (uint8_t)v[i];
        st = ln_dataset_from_raw(b, NULL, labels.data, rows, channels, height,
                                 width, norm, path, out, err);
    } else {
        st = ln_dataset_from_raw(NULL, v, labels.data, rows, channels, height,
                                 width, norm, path, out, err);
    }
done:
    gzclose(f);
    ln_dealloc(row);
    ln_dealloc(line);
    ln_dealloc(samples.data);
    ln_dealloc(labels.data);
    ln_release_free_memory();
    return st;
}

enum { CIFAR_PIXELS = 3 * 32 * 32, CIFAR_RECORD = 1 + CIFAR_PIXELS };

ln_status ln_dataset_load_cifar(const char *const *paths, int path_count, int64_t limit,
                                ln_norm *norm, ln_dataset **out, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "cifar10: output is NULL");
    *out = NULL;
    if (!paths || path_count < 1) return ln_fail(err, LN_EINVAL, "cifar10: no files given");
    growing pixels = {NULL, 0, 0, 1};
    growing labels = {NULL, 0, 0, sizeof(int32_t)};
    unsigned char record[CIFAR_RECORD];
    int64_t n = 0;
    ln_status st = LN_OK;
    for (int i = 0; i < path_count && (limit <= 0 || n < limit); i++) {
        gzFile f = gzopen(paths[i], "rb");
        if (!f) {
            st = ln_fail(err, LN_EIO, "%s: cannot open: %s", paths[i], strerror(errno ? errno : ENOENT));
            goto done;
        }
        for (int64_t r = 1; limit <= 0 || n < limit; r++) {
            int got = gzread(f, record, CIFAR_RECORD);
            if (got == 0) {
                if (r == 1)
                    st = ln_fail(err, LN_EFORMAT, "%s: the file is empty (expected records of %d bytes)",
                                 paths[i], CIFAR_RECORD);
                break;
            }
            if (got < 0) {
                st = ln_fail(err, LN_EFORMAT, "%s: record %lld: cannot read (corrupt gzip data?)",
                             paths[i], (long long)r);
                break;
            }
            if (got != CIFAR_RECORD) {
                st = ln_fail(err, LN_EFORMAT,
                             "%s: record %lld is truncated: %d of %d bytes (a label byte and 3072 "
                             "pixel bytes)", paths[i], (long long)r, got, CIFAR_RECORD);
                break;
            }
            if (record[0] > 9) {
                st = ln_fail(err, LN_EFORMAT,
                             "%s: record %lld: label %d is not a CIFAR-10 class (0 to 9)", paths[i],
                             (long long)r, record[0]);
                break;
            }
            int32_t label = record[0];
            if (!grow_push(&pixels, record + 1, CIFAR_PIXELS) || !grow_push(&labels, &label, 1)) {
                st = ln_fail(err, LN_ENOMEM, "%s: out of memory at record %lld", paths[i], (long long)r);
                break;
            }
            n++;
        }
        gzclose(f);
        if (st) goto done;
    }
    if (limit > n) {
        st = ln_fail(err, LN_EINVAL, "cifar10: n = %lld is more than the %lld records of the files",
                     (long long)limit, (long long)n);
        goto done;
    }
    st = ln_dataset_from_raw(pixels.data, NULL, labels.data, n, 3, 32, 32, norm,
                             paths[0], out, err);
done:
    ln_dealloc(pixels.data);
    ln_dealloc(labels.data);
    ln_release_free_memory();
    return st;
}
