/* dataset.c - labelled image datasets in memory: loading from IDX files, copying
 * from arrays, selecting samples and drawing (stratified) random subsets.
 *
 * Subsets always list their samples in the source's order (ascending indices),
 * random or not: the draw decides *which* samples, never their order, so a subset
 * of a file reads like the file and training shuffles it separately anyway.
 */
#include "lunet.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* A dataset with room for count samples (contents uninitialised, classes 1), stored as
 * bytes (as_bytes: pixels + pixel_value) or as float32 (images). */
static ln_status dataset_new(int64_t count, int channels, int height, int width, int as_bytes,
                             const char *what, ln_dataset **out, ln_error *err)
{
    *out = NULL;
    size_t per = 0, values = 0, image_bytes = 0, label_bytes = 0;
    if (!ln_mul_size((size_t)channels, (size_t)height, &per) ||
        !ln_mul_size(per, (size_t)width, &per) || !ln_mul_size(per, (size_t)count, &values) ||
        !ln_mul_size(values, as_bytes ? 1 : sizeof(float), &image_bytes) ||
        !ln_mul_size((size_t)count, sizeof(int32_t), &label_bytes)) {
        return ln_fail(err, LN_ENOMEM, "%s: %lld samples of %dx%dx%d do not fit in memory",
                       what, (long long)count, channels, height, width);
    }
    ln_dataset *ds = ln_alloc_zeroed(1, sizeof *ds);
    if (!ds) return ln_fail(err, LN_ENOMEM, "%s: out of memory", what);
    if (as_bytes)
        ds->pixels = ln_alloc(image_bytes);
    else
        ds->images = ln_alloc(image_bytes);
    ds->labels = ln_alloc(label_bytes);
    if (!(ds->images || ds->pixels) || !ds->labels) {
        ln_dataset_free(ds);
        return ln_fail(err, LN_ENOMEM, "%s: cannot allocate %lld samples of %dx%dx%d", what,
                       (long long)count, channels, height, width);
    }
    ds->count = count;
    ds->channels = channels;
    ds->height = height;
    ds->width = width;
    ds->classes = 1;
    *out = ds;
    return LN_OK;
}

void ln_dataset_free(ln_dataset *ds)
{
    if (!ds) return;
    ln_dealloc(ds->images);
    ln_dealloc(ds->pixels);
    ln_dealloc(ds->labels);
    ln_dealloc(ds);
}

static size_t sample_size(const ln_dataset *ds)
{
    return (size_t)ds->channels * (size_t)ds->height * (size_t)ds->width;
}

/* One sample as float32: a copy, or a table lookup per byte (the same values). */
static void read_sample(const ln_dataset *ds, int64_t index, size_t per, float *out)
{
    if (ds->images) {
        memcpy(out, ds->images + (size_t)index * per, per * sizeof(float));
        return;
    }
    const uint8_t *px = ds->pixels + (size_t)index * per;
    const size_t plane = (size_t)ds->height * (size_t)ds->width;
    for (int c = 0; c < ds->channels; c++) {
        const float *value = ds->pixel_value[c];
        const uint8_t *p = px + (size_t)c * plane;
        float *o = out + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) o[i] = value[p[i]];
    }
}

void ln_dataset_read(const ln_dataset *ds, int64_t first, int64_t n, float *out)
{
    const size_t per = sample_size(ds);
    if (ds->images) {
        memcpy(out, ds->images + (size_t)first * per, (size_t)n * per * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < n; i++) read_sample(ds, first + i, per, out + (size_t)i * per);
}

/* Samples ahead of the one being read whose bytes a gather asks for: a shuffled batch's
 * samples are far apart in memory, and by the next batch the net's activations have
 * pushed the dataset out of L2, so each sample's first lines missed before the hardware
 * prefetcher caught on (the study's gather: 3.0% of its profile, 1.4% with this; 2
 * and 8 ahead did no better). */
#define GATHER_AHEAD 4

static void prefetch_sample(const ln_dataset *ds, int64_t index, size_t per)
{
    const char *p = ds->images ? (const char *)(ds->images + (size_t)index * per)
                               : (const char *)(ds->pixels + (size_t)index * per);
    const size_t bytes = ds->images ? per * sizeof(float) : per;
    for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
}

void ln_dataset_prefetch(const ln_dataset *ds, const int64_t *indices, int64_t n)
{
    const size_t per = sample_size(ds);
    for (int64_t i = 0; i < n; i++) prefetch_sample(ds, indices[i], per);
}

void ln_dataset_gather(const ln_dataset *ds, const int64_t *indices, int64_t n, float *out,
                       int32_t *labels)
{
    const size_t per = sample_size(ds);
    for (int64_t i = 0; i < n; i++) {
        if (i + GATHER_AHEAD < n) prefetch_sample(ds, indices[i + GATHER_AHEAD], per);
        read_sample(ds, indices[i], per, out + (size_t)i * per);
        if (labels) labels[i] = ds->labels[indices[i]];
    }
}

size_t ln_dataset_bytes(const ln_dataset *ds)
{
    if (!ds) return 0;
    const size_t values = sample_size(ds) * (size_t)ds->count;
    return values * (ds->images ? sizeof(float) : 1) + (size_t)ds->count * sizeof(int32_t);
}

static int max_label_classes(const int32_t *labels, int64_t count)
{
    int32_t max = 0;
    for (int64_t i = 0; i < count; i++)
        if (labels[i] > max) max = labels[i];
    /* max + 1 stays an int: callers reject a label of INT32_MAX. */
    return (int)max + 1;
}

/* Fills in the per-channel mean and std a normalisation asks for: given (one value for
 * every channel, or one per channel), computed from the samples, or none. */
static ln_status resolve_norm(const uint8_t *bytes, const float *values, int64_t count,
                              int channels, size_t plane, ln_norm *norm, const char *what,
                              ln_error *err)
{
    if (channels > LN_MAX_NORM_CHANNELS)
        return ln_fail(err, LN_EINVAL, "%s: %d channels; normalisation handles at most %d", what,
                       channels, LN_MAX_NORM_CHANNELS);
    if (norm->mode == LN_NORM_NONE) {
        for (int c = 0; c < channels; c++) norm->mean[c] = 0.0, norm->std[c] = 1.0;
    } else if (norm->mode == LN_NORM_GIVEN) {
        if (norm->count != 1 && norm->count != channels)
            return ln_fail(err, LN_EINVAL,
                           "%s: mean and std need 1 value or one per channel (%d), got %d", what,
                           channels, norm->count);
        for (int c = channels - 1; c >= 0; c--) {
            const int k = norm->count == 1 ? 0 : c;
            const double m = norm->mean[k], sd = norm->std[k];
            if (!isfinite(m) || !isfinite(sd) || (float)sd == 0.0f)
                return ln_fail(err, LN_EINVAL,
                               "%s: normalisation needs a finite mean and a finite nonzero std "
                               "(got mean %g, std %g)", what, m, sd);
            norm->mean[c] = m;
            norm->std[c] = sd;
        }
    } else if (norm->mode == LN_NORM_AUTO) {
        /* Two passes in double: the mean, then the mean squared deviation. A constant
         * channel gets std 1 (nothing to scale). */
        for (int c = 0; c < channels; c++) {
            double sum = 0.0, dev = 0.0, lo = INFINITY, hi = -INFINITY;
            const double n = (double)count * (double)plane;
            for (int pass = 0; pass < 2; pass++) {
                const double mean = sum / n;
                for (int64_t i = 0; i < count; i++) {
                    const size_t at = ((size_t)i * (size_t)channels + (size_t)c) * plane;
                    for (size_t j = 0; j < plane; j++) {
                        const double x = bytes ? (double)bytes[at + j] / 255.0 : (double)values[at + j];
                        if (pass == 0) {
                            sum += x;
                            lo = x < lo ? x : lo;
                            hi = x > hi ? x : hi;
                        } else
                            dev += (x - mean) * (x - mean);
                    }
                }
            }
            norm->mean[c] = sum / n;
            norm->std[c] = lo < hi ? sqrt(dev / n) : 1.0;
            if (!isfinite(norm->mean[c]) || !isfinite(norm->std[c]))
                return ln_fail(err, LN_EFORMAT, "%s: channel %d has values that are not finite",
                               what, c + 1);
        }
    } else {
        return ln_fail(err, LN_EINVAL, "%s: unknown normalisation mode %d", what, (int)norm->mode);
    }
    norm->count = channels;
    return LN_OK;
}

ln_status ln_dataset_from_raw(const uint8_t *bytes, const float *values, const int32_t *labels,
                              int64_t count, int channels, int height, int width, ln_norm *norm,
                              const char *what, ln_dataset **out, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "dataset: output is NULL");
    *out = NULL;
    if (!what) what = "dataset";
    if ((bytes == NULL) == (values == NULL))
        return ln_fail(err, LN_EINVAL, "%s: give bytes or float values (exactly one)", what);
    if (!labels || !norm) return ln_fail(err, LN_EINVAL, "%s: labels and norm are required", what);
    if (count < 1 || channels < 1 || height < 1 || width < 1)
        return ln_fail(err, LN_EINVAL, "%s: %lld samples of %dx%dx%d: nothing to load", what,
                       (long long)count, channels, height, width);
    for (int64_t i = 0; i < count; i++)
        if (labels[i] < 0 || labels[i] > 65535)
            return ln_fail(err, LN_EFORMAT, "%s: sample %lld has label %ld (expected 0 to 65535)",
                           what, (long long)i + 1, (long)labels[i]);
    const size_t plane = (size_t)height * (size_t)width;
    ln_status st = resolve_norm(bytes, values, count, channels, plane, norm, what, err);
    if (st) return st;
    const int as_bytes = bytes != NULL && channels <= LN_PIXEL_CHANNELS;
    ln_dataset *ds = NULL;
    st = dataset_new(count, channels, height, width, as_bytes, what, &ds, err);
    if (st) return st;
    const size_t per = plane * (size_t)channels;
    if (bytes) {
        /* 256 possible values per channel: normalise each once, in float (as float32
         * frameworks do); the formula of ln_dataset_load_idx. */
        float table[LN_MAX_NORM_CHANNELS][256];
        for (int c = 0; c < channels; c++) {
            const float mean = (float)norm->mean[c], std = (float)norm->std[c];
            for (int x = 0; x < 256; x++) table[c][x] = ((float)x / 255.0f - mean) / std;
        }
        if (as_bytes) {
            for (int c = 0; c < channels; c++)
                memcpy(ds->pixel_value[c], table[c], sizeof ds->pixel_value[c]);
            memcpy(ds->pixels, bytes, per * (size_t)count);
        } else {
            for (size_t i = 0; i < per * (size_t)count; i++)
                ds->images[i] = table[(i / plane) % (size_t)channels][bytes[i]];
        }
    } else {
        for (size_t i = 0; i < per * (size_t)count; i++) {
            const size_t c = (i / plane) % (size_t)channels;
            ds->images[i] = (values[i] - (float)norm->mean[c]) / (float)norm->std[c];
        }
    }
    memcpy(ds->labels, labels, (size_t)count * sizeof(int32_t));
    ds->classes = max_label_classes(ds->labels, count);
    *out = ds;
    return LN_OK;
}

ln_status ln_dataset_load_idx(const char *images_path, const char *labels_path, int64_t limit,
                              float mean, float std, ln_dataset **out, ln_error *err)
{
    ln_norm norm;
    memset(&norm, 0, sizeof norm);
    norm.mode = LN_NORM_GIVEN;
    norm.count = 1;
    norm.mean[0] = mean;
    norm.std[0] = std;
    return ln_dataset_load_idx_norm(images_path, labels_path, limit, LN_IDX_CHECK_WHOLE, &norm, out,
                                    err);
}

/* Big-endian IDX float32 -> host floats. */
static void idx_floats(const unsigned char *be, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = be + 4 * i;
        uint32_t u = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        memcpy(&out[i], &u, sizeof u);
    }
}

ln_status ln_dataset_load_idx_norm(const char *images_path, const char *labels_path,
                                   int64_t limit, ln_idx_check check, ln_norm *norm,
                                   ln_dataset **out, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "dataset: output is NULL");
    *out = NULL;
    if (!images_path || !labels_path)
        return ln_fail(err, LN_EINVAL, "dataset: %s path is NULL", images_path ? "labels" : "images");
    if (!norm) return ln_fail(err, LN_EINVAL, "dataset: norm is NULL");
    if (norm->mode == LN_NORM_GIVEN && norm->count == 1 &&
        (!isfinite(norm->mean[0]) || !isfinite(norm->std[0]) || (float)norm->std[0] == 0.0f))
        return ln_fail(err, LN_EINVAL,
                       "dataset: normalisation needs a finite mean and a finite nonzero std "
                       "(got mean %g, std %g)", norm->mean[0], norm->std[0]);

    ln_idx img, lab;
    memset(&lab, 0, sizeof lab);
    float *values = NULL;
    int32_t *labels = NULL;
    /* Only the first `limit` samples are kept in memory (the files are checked as
     * `check` says). */
    const size_t keep = limit > 0 ? (size_t)limit : 0;
    ln_status st = ln_idx_read_items(images_path, keep, check, &img, err);
    if (st != LN_OK) return st;
    if ((img.type != 0x08 && img.type != 0x0D) || (img.ndim != 3 && img.ndim != 4)) {
        st = img.type != 0x08 && img.type != 0x0D
                 ? ln_fail(err, LN_EFORMAT,
                           "%s: images must be unsigned bytes (IDX type 0x08) or float32 (0x0D), "
                           "found type 0x%02X", images_path, (unsigned)img.type)
                 : ln_fail(err, LN_EFORMAT,
                           "%s: images must have 3 (N x H x W) or 4 (N x C x H x W) dimensions, "
                           "found %d", images_path, img.ndim);
        goto done;
    }
    st = ln_idx_read_items(labels_path, keep, check, &lab, err);
    if (st != LN_OK) goto done;
    if (lab.type != 0x08 || lab.ndim != 1) {
        st = lab.type != 0x08
                 ? ln_fail(err, LN_EFORMAT,
                           "%s: labels must be unsigned bytes (IDX type 0x08), found type 0x%02X",
                           labels_path, (unsigned)lab.type)
                 : ln_fail(err, LN_EFORMAT, "%s: labels must have 1 dimension, found %d",
                           labels_path, lab.ndim);
        goto done;
    }
    if (img.file_items != lab.file_items) {
        st = ln_fail(err, LN_EFORMAT, "%s holds %lu images but %s holds %lu labels", images_path,
                     (unsigned long)img.file_items, labels_path, (unsigned long)lab.file_items);
        goto done;
    }
    int64_t available = (int64_t)img.file_items;
    if (limit > available) {
        st = ln_fail(err, LN_EINVAL, "dataset: limit %lld is more than the %lld samples %s holds",
                     (long long)limit, (long long)available, images_path);
        goto done;
    }
    int64_t n = limit <= 0 ? available : limit;

    uint32_t c = img.ndim == 4 ? img.dim[1] : 1;
    uint32_t h = img.dim[img.ndim - 2], w = img.dim[img.ndim - 1];
    if (c > INT_MAX || h > INT_MAX || w > INT_MAX) {
        st = ln_fail(err, LN_EFORMAT, "%s: image dimensions %lux%lux%lu are too large",
                     images_path, (unsigned long)c, (unsigned long)h, (unsigned long)w);
        goto done;
    }
    if (n < 1) {
        st = ln_fail(err, LN_EFORMAT, "%s: the file holds no images", images_path);
        goto done;
    }
    size_t pixels = (size_t)n * c * h * w; /* fits: the file held at least this many */
    labels = ln_alloc_zeroed((size_t)n, sizeof *labels);
    if (img.type == 0x0D) values = ln_alloc_zeroed(pixels, sizeof *values);
    if (!labels || (img.type == 0x0D && !values)) {
        st = ln_fail(err, LN_ENOMEM, "%s: out of memory for %lld samples", images_path, (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) labels[i] = lab.data[i];
    if (values) {
        idx_floats(img.data, pixels, values);
        for (size_t i = 0; i < pixels; i++)
            if (!isfinite(values[i])) {
                st = ln_fail(err, LN_EFORMAT, "%s: image %zu holds a value that is not finite",
                             images_path, i / ((size_t)c * h * w) + 1);
                goto done;
            }
    }
    st = ln_dataset_from_raw(values ? NULL : img.data, values, labels, n, (int)c, (int)h, (int)w,
                             norm, images_path, out, err);

done:
    ln_dealloc(values);
    ln_dealloc(labels);
    ln_idx_release(&img);
    ln_idx_release(&lab);
    ln_release_free_memory();
    return st;
}

ln_status ln_dataset_from_arrays(const float *images, const int32_t *labels, int64_t count,
                                 int channels, int height, int width, ln_dataset **out,
                                 ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "dataset: output is NULL");
    *out = NULL;
    if (!images) return ln_fail(err, LN_EINVAL, "dataset: images is NULL");
    if (count < 1)
        return ln_fail(err, LN_EINVAL, "dataset: count must be >= 1 (got %lld)", (long long)count);
    if (channels < 1 || height < 1 || width < 1)
        return ln_fail(err, LN_EINVAL,
                       "dataset: channels, height and width must be >= 1 (got %dx%dx%d)",
                       channels, height, width);
    if (labels) {
        for (int64_t i = 0; i < count; i++)
            if (labels[i] < 0 || labels[i] == INT32_MAX)
                return ln_fail(err, LN_EINVAL,
                               "dataset: labels[%lld] is %ld; labels must be in [0, %ld)",
                               (long long)i, (long)labels[i], (long)INT32_MAX);
    }
    ln_dataset *ds = NULL;
    ln_status st = dataset_new(count, channels, height, width, 0, "dataset", &ds, err);
    if (st != LN_OK) return st;
    size_t floats = (size_t)count * (size_t)channels * (size_t)height * (size_t)width;
    memcpy(ds->images, images, floats * sizeof(float));
    if (labels) {
        memcpy(ds->labels, labels, (size_t)count * sizeof(int32_t));
        ds->classes = max_label_classes(ds->labels, count);
    } else {
        memset(ds->labels, 0, (size_t)count * sizeof(int32_t));
    }
    *out = ds;
    return LN_OK;
}

/* The selected samples keep the source's number of classes even if some class is
 * missing from the selection: a net for the source must fit the subset too. */
ln_status ln_dataset_select(const ln_dataset *src, const int64_t *indices, int64_t count,
                            ln_dataset **out, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "select: output is NULL");
    *out = NULL;
    if (!src) return ln_fail(err, LN_EINVAL, "select: source dataset is NULL");
    if (!indices) return ln_fail(err, LN_EINVAL, "select: indices is NULL");
    if (count < 1)
        return ln_fail(err, LN_EINVAL, "select: count must be >= 1 (got %lld)", (long long)count);
    for (int64_t i = 0; i < count; i++)
        if (indices[i] < 0 || indices[i] >= src->count)
            return ln_fail(err, LN_EINVAL,
                           "select: indices[%lld] = %lld is out of range for a dataset of %lld "
                           "samples", (long long)i, (long long)indices[i], (long long)src->count);
    ln_dataset *ds = NULL;
    ln_status st = dataset_new(count, src->channels, src->height, src->width, src->pixels != NULL,
                               "select", &ds, err);
    if (st != LN_OK) return st;
    const size_t per = sample_size(src);
    for (int64_t i = 0; i < count; i++) {
        if (src->pixels)
            memcpy(ds->pixels + (size_t)i * per, src->pixels + (size_t)indices[i] * per, per);
        else
            memcpy(ds->images + (size_t)i * per, src->images + (size_t)indices[i] * per,
                   per * sizeof(float));
        ds->labels[i] = src->labels[indices[i]];
    }
    memcpy(ds->pixel_value, src->pixel_value, sizeof ds->pixel_value);
    ds->classes = src->classes;
    *out = ds;
    return LN_OK;
}

void ln_dataset_class_counts(const ln_dataset *ds, int64_t *counts, int classes)
{
    if (!counts || classes < 1) return;
    memset(counts, 0, (size_t)classes * sizeof *counts);
    if (!ds) return;
    for (int64_t i = 0; i < ds->count; i++) {
        int32_t y = ds->labels[i];
        if (y >= 0 && y < classes) counts[y]++; /* other labels belong to no counted class */
    }
}

/* Moves k of the m entries of pool[] to its front, chosen uniformly without
 * replacement (a partial Fisher-Yates shuffle). */
static void draw_front(int64_t *pool, int64_t m, int64_t k, ln_rng *rng)
{
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + (int64_t)ln_rng_below(rng, (uint32_t)(m - i));
        int64_t t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
    }
}

/* Class c before class d in the order that hands out the leftover samples: larger
 * remainder first, lower class index on ties. */
static int remainder_before(const uint64_t *rem, int64_t c, int64_t d)
{
    if (rem[c] != rem[d]) return rem[c] > rem[d];
    return c < d;
}

static void sift_down(int64_t *order, int64_t root, int64_t end, const uint64_t *rem)
{
    for (;;) {
        int64_t child = 2 * root + 1;
        if (child >= end) return;
        if (child + 1 < end && remainder_before(rem, order[child], order[child + 1])) child++;
        if (!remainder_before(rem, order[root], order[child])) return;
        int64_t t = order[root];
        order[root] = order[child];
        order[child] = t;
        root = child;
    }
}

/* Heapsort of class indices by remainder_before: in place and O(K log K), so even a
 * dataset with very many classes sorts quickly without extra memory. The heap keeps
 * the class that comes last on top, which is then moved to the back. */
static void sort_by_remainder(int64_t *order, int64_t k, const uint64_t *rem)
{
    for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(order, i, k, rem);
    for (int64_t end = k - 1; end > 0; end--) {
        int64_t t = order[0];
        order[0] = order[end];
        order[end] = t;
        sift_down(order, 0, end, rem);
    }
}

/* Marks the chosen samples for a stratified draw: per class quota by largest-remainder
 * rounding of n * count_c / total, then quota_c samples of class c at random. */
static ln_status mark_stratified(const ln_dataset *src, int64_t n, ln_rng *rng,
                                 unsigned char *chosen, ln_error *err)
{
    int64_t k = src->classes;
    size_t kk = (size_t)k;
    int64_t *counts = ln_alloc_zeroed(kk, sizeof *counts);
    int64_t *quota = ln_alloc_zeroed(kk, sizeof *quota);
    uint64_t *rem = ln_alloc_zeroed(kk, sizeof *rem);
    int64_t *order = ln_alloc_zeroed(kk, sizeof *order);
    int64_t *start = ln_alloc_zeroed(kk + 1, sizeof *start);
    int64_t *members = ln_alloc_zeroed((size_t)src->count, sizeof *members);
    ln_status st = LN_OK;
    if (!counts || !quota || !rem || !order || !start || !members) {
        st = ln_fail(err, LN_ENOMEM, "subset: out of memory for a stratified draw of %lld",
                     (long long)n);
        goto done;
    }
    ln_dataset_class_counts(src, counts, src->classes);
    int64_t labelled = 0;
    for (int64_t c = 0; c < k; c++) labelled += counts[c];
    /* Only a hand-built dataset can have labels outside [0, classes); they take no part. */
    if (labelled < n) {
        st = ln_fail(err, LN_EINVAL,
                     "subset: n = %lld is more than the %lld samples with labels in [0, %d)",
                     (long long)n, (long long)labelled, src->classes);
        goto done;
    }

    /* Products stay below 2^64: n and every count are below 2^32 (checked by caller). */
    uint64_t total = (uint64_t)labelled;
    int64_t given = 0;
    for (int64_t c = 0; c < k; c++) {
        uint64_t p = (uint64_t)n * (uint64_t)counts[c];
        quota[c] = (int64_t)(p / total);
        rem[c] = p % total;
        given += quota[c];
        order[c] = c;
    }
    /* The remainders sum to (n - given) * total with each below total, so more than
     * n - given classes have a positive remainder, and each of those has room for
     * one more sample (quota < count whenever n < total). */
    sort_by_remainder(order, k, rem);
    for (int64_t i = 0; i < n - given; i++) quota[order[i]]++;

    /* Members of each class in file order (a counting sort by label). */
    for (int64_t c = 0; c < k; c++) start[c + 1] = start[c] + counts[c];
    memcpy(order, start, kk * sizeof *order); /* order[] reused as fill positions */
    for (int64_t i = 0; i < src->count; i++) {
        int32_t y = src->labels[i];
        if (y >= 0 && y < k) members[order[y]++] = i;
    }
    for (int64_t c = 0; c < k; c++) {
        draw_front(members + start[c], counts[c], quota[c], rng);
        for (int64_t i = 0; i < quota[c]; i++) chosen[members[start[c] + i]] = 1;
    }

done:
    ln_dealloc(counts);
    ln_dealloc(quota);
    ln_dealloc(rem);
    ln_dealloc(order);
    ln_dealloc(start);
    ln_dealloc(members);
    return st;
}

ln_status ln_dataset_subset(const ln_dataset *src, int64_t n, int random, int stratified,
                            ln_rng *rng, ln_dataset **out, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "subset: output is NULL");
    *out = NULL;
    if (!src) return ln_fail(err, LN_EINVAL, "subset: source dataset is NULL");
    if (n <= 0 || n > src->count)
        return ln_fail(err, LN_EINVAL, "subset: n = %lld is out of range: the dataset holds %lld "
                       "samples", (long long)n, (long long)src->count);
    if (stratified && !random)
        return ln_fail(err, LN_EINVAL, "subset: a stratified subset must be random");
    if (random && !rng) return ln_fail(err, LN_EINVAL, "subset: a random subset needs an rng");
    if (random && src->count > (int64_t)UINT32_MAX)
        return ln_fail(err, LN_EINVAL,
                       "subset: random draws support at most %lu samples (dataset holds %lld)",
                       (unsigned long)UINT32_MAX, (long long)src->count);
    if (stratified && src->classes < 1)
        return ln_fail(err, LN_EINVAL, "subset: dataset has %d classes", src->classes);

    size_t count = (size_t)src->count;
    int64_t *indices = ln_alloc_zeroed(random ? count : (size_t)n, sizeof *indices);
    unsigned char *chosen = random ? ln_alloc_zeroed(count, 1) : NULL;
    ln_status st = LN_OK;
    if (!indices || (random && !chosen)) {
        st = ln_fail(err, LN_ENOMEM, "subset: out of memory for %lld indices", (long long)n);
        goto done;
    }
    if (!random) {
        for (int64_t i = 0; i < n; i++) indices[i] = i;
    } else {
        if (stratified) {
            st = mark_stratified(src, n, rng, chosen, err);
            if (st != LN_OK) goto done;
        } else {
            for (int64_t i = 0; i < src->count; i++) indices[i] = i;
            draw_front(indices, src->count, n, rng);
            for (int64_t i = 0; i < n; i++) chosen[indices[i]] = 1;
        }
        /* Read the marks back in file order: the subset keeps ascending indices. */
        int64_t m = 0;
        for (int64_t i = 0; i < src->count; i++)
            if (chosen[i]) indices[m++] = i;
    }
    st = ln_dataset_select(src, indices, n, out, err);

done:
    ln_dealloc(indices);
    ln_dealloc(chosen);
    return st;
}
