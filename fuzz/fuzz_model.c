/* fuzz_model.c - libFuzzer harness for the model file reader (core/model_file.c).
 *
 * A model file ends with a CRC-32 of everything before it, so almost every mutation
 * would stop at the checksum. Each input is therefore tried three ways:
 *  1. as it is (magic, version and checksum checks);
 *  2. with its last 4 bytes replaced by the CRC-32 of the rest;
 *  3. with the CRC-32 of the whole input appended;
 * so the parser behind the checksum (layer list, shape inference, parameter counts)
 * sees the fuzzed bytes. A net that loads is then checked for consistency and, when
 * its activations are small, run forward and backward on a batch of two, so specs the
 * loader accepts are specs the kernels can handle.
 *
 * Build and run: fuzz/run.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include "../core/lunet.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void exercise(ln_net *net)
{
    int layers = ln_net_layer_count(net);
    if (layers < 1) abort();
    int64_t total = ln_shape_numel(ln_net_input_shape(net));
    for (int i = 0; i < layers; i++) {
        int64_t n = ln_shape_numel(ln_net_layer_output_shape(net, i));
        if (n < 1) abort();
        total += n;
        if (total > (1 << 16)) return; /* big but valid: loading it was the test */
    }
    if (ln_net_param_count(net) > (1 << 18)) return;
    const int batch = 2;
    ln_error err;
    if (ln_net_reserve(net, batch, &err)) {
        if (err.code != LN_ENOMEM) abort();
        return;
    }
    int64_t in_n = ln_shape_numel(ln_net_input_shape(net));
    int64_t out_n = ln_shape_numel(ln_net_output_shape(net));
    float *x = calloc((size_t)(batch * in_n), sizeof(float));
    float *dx = calloc((size_t)(batch * in_n), sizeof(float));
    float *dout = calloc((size_t)(batch * out_n), sizeof(float));
    if (!x || !dx || !dout) abort();
    for (int64_t i = 0; i < batch * in_n; i++) x[i] = (float)((i % 7) - 3) * 0.25f;
    for (int64_t i = 0; i < batch * out_n; i++) dout[i] = 1.0f / (float)(1 + i % 5);
    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_DROPOUT);
    const float *y = NULL;
    for (int training = 0; training <= 1; training++) {
        if (ln_net_forward(net, x, batch, training, &rng, &y, &err) == LN_OK) {
            volatile float sink = 0.0f;
            for (int64_t i = 0; i < batch * out_n; i++) sink += y[i];
            (void)sink;
            if (ln_net_backward(net, dout, dx, &err) != LN_OK) abort();
        } else if (err.msg[0] == '\0') {
            abort();
        }
    }
    free(x);
    free(dx);
    free(dout);
}

static void try_load(const unsigned char *data, size_t size)
{
    ln_net *net = (ln_net *)1;
    ln_error err;
    memset(&err, 0, sizeof err);
    ln_status st = ln_net_load_bytes(data, size, "fuzz", &net, &err);
    if (st != LN_OK) {
        if (net != NULL || err.msg[0] == '\0') abort();
        return;
    }
    if (!net) abort();
    exercise(net);
    ln_net_free(net);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    try_load(data, size);
    unsigned char *copy = malloc(size + 4);
    if (!copy) abort();
    if (size) memcpy(copy, data, size);
    if (size >= 4) {
        put_le32(copy + size - 4, (uint32_t)crc32(0L, copy, (uInt)(size - 4)));
        try_load(copy, size);
        if (size) memcpy(copy + size - 4, data + size - 4, 4);
    }
    put_le32(copy + size, (uint32_t)crc32(0L, copy, (uInt)size));
    try_load(copy, size + 4);
    free(copy);
    return 0;
}
