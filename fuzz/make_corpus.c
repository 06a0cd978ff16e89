/* make_corpus.c - writes the seed corpus of the fuzz harnesses:
 *   fuzz/corpus/fuzz_idx/    small IDX files, valid and invalid, raw and gzipped
 *   fuzz/corpus/fuzz_model/  small model files written by ln_net_save
 * The seeds are committed; this program documents how they were made and can
 * remake them: `sh fuzz/run.sh --corpus` (or build it like the harnesses, without
 * -fsanitize=fuzzer, and run it from the repository root).
 */
#include "../core/lunet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void write_file(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        exit(1);
    }
}

static void write_gz(const char *path, const unsigned char *b, size_t n)
{
    gzFile g = gzopen(path, "wb9");
    if (!g || (n && gzwrite(g, b, (unsigned)n) != (int)n) || gzclose(g) != Z_OK) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        exit(1);
    }
}

/* An IDX image: 00 00 type ndim, big-endian dims, then `data_bytes` of pattern. */
static size_t make_idx(unsigned char *b, int type, int ndim, const uint32_t *dims,
                       size_t data_bytes)
{
    b[0] = 0;
    b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    size_t h = 4 + 4 * (size_t)ndim;
    for (size_t i = 0; i < data_bytes; i++) b[h + i] = (unsigned char)(i * 37 + 11);
    return h + data_bytes;
}

static void idx_seed(const char *name, int type, int ndim, const uint32_t *dims, size_t data_bytes)
{
    unsigned char b[4096];
    size_t n = make_idx(b, type, ndim, dims, data_bytes);
    char path[256];
    snprintf(path, sizeof path, "fuzz/corpus/fuzz_idx/%s", name);
    write_file(path, b, n);
    snprintf(path, sizeof path, "fuzz/corpus/fuzz_idx/%s.gz", name);
    write_gz(path, b, n);
}

static void model_seed(const char *name, const ln_layer_spec *layers, int count, ln_shape input)
{
    ln_net *net;
    ln_error err;
    ln_rng rng;
    ln_rng_seed(&rng, 7, LN_STREAM_INIT);
    if (ln_net_create(&net, layers, count, input, &rng, &err)) {
        fprintf(stderr, "make_corpus: %s: %s\n", name, err.msg);
        exit(1);
    }
    char path[256];
    snprintf(path, sizeof path, "fuzz/corpus/fuzz_model/%s", name);
    if (ln_net_save(net, path, &err)) {
        fprintf(stderr, "make_corpus: %s\n", err.msg);
        exit(1);
    }
    ln_net_free(net);
}

int main(void)
{
    /* IDX: valid files of every type and rank (tiny), then broken ones */
    idx_seed("images_2x3x3", 0x08, 3, (uint32_t[]){2, 3, 3}, 18);
    idx_seed("images_2x1x2x2", 0x08, 4, (uint32_t[]){2, 1, 2, 2}, 8);
    idx_seed("labels_5", 0x08, 1, (uint32_t[]){5}, 5);
    /* the two float32 dataset stores: float files, and byte images wider than
     * LN_PIXEL_CHANNELS (values of the pattern below are finite for these sizes) */
    idx_seed("float_images_1x1x1", 0x0D, 3, (uint32_t[]){1, 1, 1}, 4);
    idx_seed("images_1x5x1x1", 0x08, 4, (uint32_t[]){1, 5, 1, 1}, 5);
    idx_seed("bytes_signed", 0x09, 2, (uint32_t[]){2, 3}, 6);
    idx_seed("shorts", 0x0B, 1, (uint32_t[]){3}, 6);
    idx_seed("ints", 0x0C, 2, (uint32_t[]){1, 2}, 8);
    idx_seed("floats", 0x0D, 1, (uint32_t[]){2}, 8);
    idx_seed("doubles", 0x0E, 1, (uint32_t[]){1}, 8);
    idx_seed("bad_truncated", 0x08, 3, (uint32_t[]){2, 3, 3}, 10);
    idx_seed("bad_trailing", 0x08, 1, (uint32_t[]){2}, 5);
    idx_seed("bad_zero_dim", 0x08, 2, (uint32_t[]){0, 3}, 0);
    idx_seed("bad_overflow", 0x08, 4, (uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 2}, 4);
    idx_seed("bad_type", 0x0A, 1, (uint32_t[]){2}, 2);
    idx_seed("bad_rank", 0x08, 5, (uint32_t[]){1, 1, 1, 1, 1}, 1);
    {
        unsigned char two[2] = {0x1f, 0x8b};
        write_file("fuzz/corpus/fuzz_idx/bad_gzip_magic_only", two, 2);
        unsigned char magic[4] = {0x00, 0x00, 0x08, 0x01};
        write_file("fuzz/corpus/fuzz_idx/bad_header_only", magic, 4);
    }

    /* Models: one of every layer kind, all small */
    ln_shape img = ln_shape_make(3, (int64_t[]){1, 6, 6});
    ln_layer_spec conv[] = {ln_conv2d(1, 2, 3, 1, 1), ln_maxpool2d(2, 0),
                            ln_simple_layer(LN_RELU), ln_simple_layer(LN_FLATTEN),
                            ln_linear(18, 3), ln_simple_layer(LN_LOG_SOFTMAX)};
    model_seed("conv_pool_linear.lunet", conv, 6, img);
    ln_layer_spec strided[] = {ln_conv2d(1, 2, 3, 2, 0), ln_avgpool2d(2, 1),
                               ln_simple_layer(LN_TANH), ln_dropout(LN_DROPOUT2D, 0.25f),
                               ln_simple_layer(LN_FLATTEN), ln_linear(2, 2)};
    strided[0].bias = 0;
    model_seed("strided_nobias.lunet", strided, 6, img);
    ln_layer_spec bn[] = {ln_batchnorm(LN_BATCHNORM2D, 1), ln_simple_layer(LN_SIGMOID),
                          ln_simple_layer(LN_FLATTEN), ln_linear(36, 4),
                          ln_batchnorm(LN_BATCHNORM1D, 4), ln_dropout(LN_DROPOUT, 0.5f),
                          ln_simple_layer(LN_LOG_SOFTMAX)};
    model_seed("batchnorm.lunet", bn, 7, img);
    /* the fused passes of the fast kernels: conv+ReLU, batchnorm+tanh+average pooling,
     * sigmoid+max pooling; batchnorm+ReLU+average pooling, ReLU+max pooling */
    ln_shape img8 = ln_shape_make(3, (int64_t[]){1, 8, 8});
    ln_layer_spec fused[] = {ln_conv2d(1, 2, 3, 1, 1), ln_simple_layer(LN_RELU),
                             ln_batchnorm(LN_BATCHNORM2D, 2), ln_simple_layer(LN_TANH),
                             ln_avgpool2d(2, 0), ln_simple_layer(LN_SIGMOID), ln_maxpool2d(2, 0),
                             ln_simple_layer(LN_FLATTEN), ln_linear(8, 3),
                             ln_simple_layer(LN_LOG_SOFTMAX)};
    model_seed("fused_act_pool.lunet", fused, 10, img8);
    ln_layer_spec fused2[] = {ln_conv2d(1, 2, 3, 1, 1), ln_batchnorm(LN_BATCHNORM2D, 2),
                              ln_simple_layer(LN_RELU), ln_avgpool2d(2, 0),
                              ln_dropout(LN_DROPOUT2D, 0.5f), ln_simple_layer(LN_RELU),
                              ln_maxpool2d(2, 0), ln_simple_layer(LN_FLATTEN), ln_linear(8, 2)};
    model_seed("fused_bn_relu_pool.lunet", fused2, 9, img8);
    ln_layer_spec vec[] = {ln_linear(4, 3), ln_simple_layer(LN_RELU), ln_linear(3, 2)};
    model_seed("mlp.lunet", vec, 3, ln_shape_make(1, (int64_t[]){4}));
    ln_layer_spec one[] = {ln_simple_layer(LN_FLATTEN)};
    model_seed("flatten_only.lunet", one, 1, ln_shape_make(2, (int64_t[]){2, 3}));
    return 0;
}
