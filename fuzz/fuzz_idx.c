/* fuzz_idx.c - libFuzzer harness for the IDX reader (core/idx.c).
 *
 * Every input goes through three paths:
 *  1. ln_idx_parse on the raw bytes (the header checks and size arithmetic);
 *  2. ln_idx_read on a file holding exactly these bytes, so a gzip stream (1f 8b ...)
 *     is decoded by zlib through our gunzip loop (hostile compressed input, bad
 *     trailers, size hints, concatenated members) and anything else takes the raw
 *     file path (read loop, header, memmove);
 *  3. for inputs that are not gzip: ln_idx_read on a gzip-compressed copy, so valid
 *     streams of fuzzed content reach the parser through the decompressor too.
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

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    ln_idx idx;
    ln_error err;
    memset(&err, 0, sizeof err);
    ln_status st = ln_idx_parse(data, size, "fuzz", &idx, &err);
    check_result(st, &idx, &err);
    ln_idx_release(&idx);

    read_as_file(data, size);

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
