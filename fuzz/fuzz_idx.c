/* fuzz_idx.c - libFuzzer harness for the IDX reader (core/idx.c).
 *
 * Every input goes through three paths:
 *  1. ln_idx_parse on the raw bytes (the header checks and size arithmetic);
 *  2. ln_idx_read on a file holding exactly these bytes, so a gzip stream (1f 8b ...)
 *     is decoded by zlib through our gunzip loop (hostile compressed input, bad
 *     trailers, size hints, concatenated members) and anything else takes the raw
 *     file path (read loop, header, memmove);
 *  3. for inputs that are not gzip: ln_idx_read on a gzip-compressed copy, so valid
 *     streams of fuzzed content reach the parser through the decompressor too;
 *  4. the dataset path: ln_idx_read_items with a small item limit (both checks: the
 *     prefix-only read must agree with the whole read wherever that succeeds), and
 *     ln_dataset_load_idx with the input as the image file and a labels file of as
 *     many items as the input claims (when that is small), every sample then read
 *     back through ln_dataset_read (byte storage) and ln_dataset_gather.
 * The file is one memfd, rewritten for each input and opened as /proc/self/fd/N.
 * Any result is fine; what must never happen is a crash, a leak, undefined
 * behaviour, or a successful parse whose header disagrees with its size.
 *
 * Build and run: fuzz/run.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#define _GNU_SOURCE
#include "../core/lunet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

static int memfd = -1;
static char memfd_path[64];

static void check_result(ln_status st, const ln_idx *idx, const ln_error *err)
{
    if (st != LN_OK) {
        /* every failure carries a message */
        if (err->msg[0] == '\0') abort();
        if (idx->data != NULL) abort();
        return;
    }
    size_t count = 1;
    for (int i = 0; i < idx->ndim; i++) count *= idx->dim[i];
    if (idx->ndim < 1 || idx->ndim > LN_MAX_DIMS || count != idx->count || idx->data == NULL)
        abort();
    /* touch every byte so ASan sees any short allocation */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < idx->count * idx->elem_size; i++) sink ^= idx->data[i];
    (void)sink;
}

static void read_as_file(const unsigned char *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz_idx", 0);
        if (memfd < 0) abort();
        snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    }
    if (ftruncate(memfd, 0) != 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t k = pwrite(memfd, data + off, size - off, (off_t)off);
        if (k <= 0) abort();
        off += (size_t)k;
    }
    ln_idx idx;
    ln_error err;
    memset(&err, 0, sizeof err);
    ln_status st = ln_idx_read(memfd_path, &idx, &err);
    check_result(st, &idx, &err);
    ln_idx_release(&idx);
}

static int labels_fd = -1;
static char labels_path[64];

/* A labels file (IDX ubyte, 1-D) of `count` items, labels 0..9. */
static void write_labels(uint32_t count)
{
    if (labels_fd < 0) {
        labels_fd = memfd_create("fuzz_idx_labels", 0);
        if (labels_fd < 0) abort();
        snprintf(labels_path, sizeof labels_path, "/proc/self/fd/%d", labels_fd);
    }
    unsigned char buf[8 + 4096];
    buf[0] = buf[1] = 0;
    buf[2] = 0x08;
    buf[3] = 1;
    buf[4] = (unsigned char)(count >> 24);
    buf[5] = (unsigned char)(count >> 16);
    buf[6] = (unsigned char)(count >> 8);
    buf[7] = (unsigned char)count;
    for (uint32_t i = 0; i < count; i++) buf[8 + i] = (unsigned char)(i % 10);
    if (ftruncate(labels_fd, 0) != 0) abort();
    if (pwrite(labels_fd, buf, 8 + count, 0) != (ssize_t)(8 + count)) abort();
}

/* Step 4: the input (already in the memfd) as a dataset's image file. */
static void read_as_dataset(const unsigned char *data, size_t size)
{
    const size_t max_items = size > 0 ? data[size - 1] % 4 : 0; /* 0 = all */
    ln_idx whole, kept;
    ln_error err;
    memset(&err, 0, sizeof err);
    ln_status st = ln_idx_read_items(memfd_path, max_items, LN_IDX_CHECK_WHOLE, &whole, &err);
    check_result(st, &whole, &err);
    /* the prefix-only decoding: where the whole read succeeds it does too, with the same
     * items (it may succeed where the whole read finds damage after them) */
    ln_status st_kept = ln_idx_read_items(memfd_path, max_items, LN_IDX_CHECK_KEPT, &kept, &err);
    check_result(st_kept, &kept, &err);
    if (st == LN_OK &&
        (st_kept != LN_OK || kept.type != whole.type || kept.ndim != whole.ndim ||
         kept.count != whole.count || kept.file_items != whole.file_items ||
         memcmp(kept.dim, whole.dim, sizeof whole.dim) != 0 ||
         memcmp(kept.data, whole.data, whole.count * whole.elem_size) != 0))
        abort();
    const int float_file = st == LN_OK && whole.type == 0x0D; /* the file may be gzip */
    ln_idx_release(&whole);
    ln_idx_release(&kept);

    /* labels for as many items as the header claims, when that is small */
    uint32_t claimed = size >= 8 ? (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 |
                                       (uint32_t)data[6] << 8 | data[7]
                                 : 0;
    if (claimed > 4096) return;
    write_labels(claimed);
    ln_dataset *ds = NULL;
    st = ln_dataset_load_idx(memfd_path, labels_path, (int64_t)max_items, 0.1307f, 0.3081f, &ds,
                             &err);
    if (st != LN_OK) {
        if (ds != NULL || err.msg[0] == '\0') abort();
        return;
    }
    const size_t per = (size_t)ds->channels * (size_t)ds->height * (size_t)ds->width;
    /* Storage: bytes (pixels) for byte images of at most LN_PIXEL_CHANNELS channels,
     * float32 (images) for float files (IDX 0x0D) and wider byte images; exactly one. */
    const int want_bytes = !float_file && ds->channels <= LN_PIXEL_CHANNELS;
    if (!ds->pixels == !ds->images || !ds->pixels != !want_bytes) abort();
    if (ds->count < 1 || per == 0 || per > ((size_t)1 << 24)) abort();
    float *sample = malloc(per * sizeof(float) * 2);
    if (!sample) abort();
    int32_t label;
    for (int64_t i = 0; i < ds->count; i++) {
        ln_dataset_read(ds, i, 1, sample);
        ln_dataset_gather(ds, &i, 1, sample + per, &label);
        if (memcmp(sample, sample + per, per * sizeof(float)) != 0 || label != ds->labels[i]) abort();
    }
    free(sample);
    ln_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    ln_idx idx;
    ln_error err;
    memset(&err, 0, sizeof err);
    ln_status st = ln_idx_parse(data, size, "fuzz", &idx, &err);
    check_result(st, &idx, &err);
    ln_idx_release(&idx);

    read_as_file(data, size);
    read_as_dataset(data, size);

    if (!(size >= 2 && data[0] == 0x1f && data[1] == 0x8b)) {
        /* gzip-compress the input (gzip wrapper: windowBits 15 + 16) and read that */
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
        uLong bound = deflateBound(&zs, (uLong)size) + 32;
        unsigned char *gz = malloc(bound);
        if (!gz) abort();
        zs.next_in = (Bytef *)(uintptr_t)data;
        zs.avail_in = (uInt)size;
        zs.next_out = gz;
        zs.avail_out = (uInt)bound;
        if (deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
        size_t gz_size = bound - zs.avail_out;
        deflateEnd(&zs);
        read_as_file(gz, gz_size);
        free(gz);
    }
    return 0;
}
