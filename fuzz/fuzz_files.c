/* fuzz_files.c - libFuzzer harness for the file readers added with issue 18: CSV
 * datasets and CIFAR-10 batches (core/data_files.c) and training checkpoints
 * (core/model_file.c).
 *
 * Every input is written to one memfd (opened as /proc/self/fd/N) and read as:
 *  1. a CSV file of 1x2x2 samples with a header, labels in column 1 and then in column 3,
 *     normalised as given and automatically;
 *  2. a CIFAR-10 batch (records of 3073 bytes), the whole file and its first 2 records;
 *  3. a checkpoint for a small fixed net; its CRC is fixed up first (the last 4 bytes
 *     replaced by the CRC-32 of the rest) so the parser behind the checksum sees the
 *     fuzzed bytes, and a checkpoint that loads is trained on for one step from it.
 * Any result is fine; what must never happen is a crash, a leak, undefined behaviour, a
 * failure without a message, or a dataset whose samples cannot be read back.
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
static ln_net *net;
static ln_dataset *data;

static void setup(void)
{
    memfd = memfd_create("fuzz_files", 0);
    if (memfd < 0) abort();
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    ln_layer_spec layers[3] = {ln_simple_layer(LN_FLATTEN), ln_linear(4, 3),
                               ln_simple_layer(LN_LOG_SOFTMAX)};
    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_INIT);
    ln_error err;
    if (ln_net_create(&net, layers, 3, ln_shape_make(3, (int64_t[]){1, 2, 2}), &rng, &err)) abort();
    float x[16];
    int32_t y[4] = {0, 1, 2, 1};
    for (int i = 0; i < 16; i++) x[i] = (float)(i % 5) * 0.25f;
    if (ln_dataset_from_arrays(x, y, 4, 1, 2, 2, &data, &err)) abort();
}

static void put(const uint8_t *bytes, size_t size)
{
    if (ftruncate(memfd, 0) != 0 || lseek(memfd, 0, SEEK_SET) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t k = write(memfd, bytes + done, size - done);
        if (k <= 0) abort();
        done += (size_t)k;
    }
}

static void check_dataset(ln_status st, ln_dataset *ds, const ln_error *err)
{
    if (st != LN_OK) {
        if (err->msg[0] == '\0' || ds != NULL) abort();
        return;
    }
    const int64_t per = (int64_t)ds->channels * ds->height * ds->width;
    float *out = malloc(sizeof(float) * (size_t)per);
    if (!out) abort();
    for (int64_t i = 0; i < ds->count; i++) {
        ln_dataset_read(ds, i, 1, out);
        if (ds->labels[i] < 0 || ds->labels[i] >= ds->classes) abort();
    }
    free(out);
    ln_dataset_free(ds);
}

static void try_csv(void)
{
    for (int column = 1; column <= 3; column += 2) {
        for (int mode = 0; mode < 2; mode++) {
            ln_norm norm;
            memset(&norm, 0, sizeof norm);
            norm.mode = mode ? LN_NORM_AUTO : LN_NORM_GIVEN;
            norm.count = 1;
            norm.mean[0] = 0.5;
            norm.std[0] = 0.25;
            ln_dataset *ds = NULL;
            ln_error err;
            memset(&err, 0, sizeof err);
            ln_status st = ln_dataset_load_csv(memfd_path, column, 1, 2, 2, 1, 0, &norm, &ds, &err);
            check_dataset(st, ds, &err);
        }
    }
}

static void try_cifar(void)
{
    const char *paths[1] = {memfd_path};
    for (int64_t limit = 0; limit <= 2; limit += 2) {
        ln_norm norm;
        memset(&norm, 0, sizeof norm);
        norm.mode = LN_NORM_AUTO;
        ln_dataset *ds = NULL;
        ln_error err;
        memset(&err, 0, sizeof err);
        ln_status st = ln_dataset_load_cifar(paths, 1, limit, &norm, &ds, &err);
        check_dataset(st, ds, &err);
    }
}

static void try_checkpoint(const uint8_t *bytes, size_t size)
{
    if (size < 8) return;
    uint8_t *fixed = malloc(size);
    if (!fixed) abort();
    memcpy(fixed, bytes, size);
    uint32_t crc = (uint32_t)crc32(0L, fixed, (uInt)(size - 4));
    for (int i = 0; i < 4; i++) fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    put(fixed, size);
    free(fixed);
    ln_train_state ts;
    memset(&ts, 0, sizeof ts);
    ln_error err;
    memset(&err, 0, sizeof err);
    ln_status st = ln_checkpoint_load(memfd_path, net, &ts, &err);
    if (st != LN_OK) {
        if (err.msg[0] == '\0' || ts.active) abort();
        return;
    }
    /* a loaded state must be usable: one more step from it */
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.optim = ts.opt.spec;
    cfg.seed = ts.seed;
    cfg.batch = 2;
    cfg.unit = LN_UNIT_STEP;
    cfg.state = &ts;
    ln_history h;
    if (ln_optim_spec_check(&cfg.optim, &err) == LN_OK && ln_train(net, data, &cfg, &h, &err) == LN_OK)
        ln_history_release(&h);
    ln_train_state_release(&ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    if (memfd < 0) setup();
    if (size > (1 << 16)) return 0;
    put(bytes, size);
    try_csv();
    try_cifar();
    try_checkpoint(bytes, size);
    return 0;
}
