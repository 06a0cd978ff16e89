/* train_bench.c - times lunet training from C, without Lua, for profiling
 * (perf record / valgrind --tool=callgrind ./train_bench ...).
 * Usage: train_bench [batch] [epochs] [n] [net] [threads] [optimizer]
 *   net: study (default), tanh (the study's layout with tanh before pooling), custom,
 *        cifar, fashion (see bench/README.md), pool3max and pool3avg (the cifar net with
 *        3x3 stride-2 max or average poolings), mlpbn (linear 784-512-256-10 with
 *        batchnorm1d and ReLU), strided (3x32x32: conv 3-32 and 32-64 3x3 stride 2 pad 1,
 *        ReLU, linear 4096-10); optimizer: sgd (default) or adam.
 * MNIST_DIR set and a 1x28x28 net: real images; random ones otherwise. */
#define _POSIX_C_SOURCE 200809L
#include "../core/lunet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The cifar and fashion nets: two blocks of conv (k x k, stride 1, padding pad) - ReLU -
 * pool (2x2 max pooling unless given), then flatten (flat values) - linear to hidden -
 * ReLU - dropout (when dropout > 0) - linear to 10 classes. Fills s from 0; returns the
 * layer count. */
static int two_conv_blocks(ln_layer_spec *s, int in, int c1, int c2, int k, int pad, int flat, int hidden,
                           float dropout, const ln_layer_spec *pool)
{
    int i = 0;
    const ln_layer_spec max2 = ln_maxpool2d(2, 0);
    if (!pool) pool = &max2;
    s[i++] = ln_conv2d(in, c1, k, 1, pad);
    s[i++] = ln_simple_layer(LN_RELU);
    s[i++] = *pool;
    s[i++] = ln_conv2d(c1, c2, k, 1, pad);
    s[i++] = ln_simple_layer(LN_RELU);
    s[i++] = *pool;
    s[i++] = ln_simple_layer(LN_FLATTEN);
    s[i++] = ln_linear(flat, hidden);
    s[i++] = ln_simple_layer(LN_RELU);
    if (dropout > 0) s[i++] = ln_dropout(LN_DROPOUT, dropout);
    s[i++] = ln_linear(hidden, 10);
    return i;
}

static int net_specs(const char *name, ln_layer_spec *s, int64_t *dims)
{
    int i = 0;
    dims[0] = 1;
    dims[1] = dims[2] = 28;
    const int tanh_net = !strcmp(name, "tanh");
    if (!strcmp(name, "study") || tanh_net) {
        const ln_layer_kind act = tanh_net ? LN_TANH : LN_RELU;
        s[i++] = ln_conv2d(1, 10, 5, 1, 0);
        if (tanh_net) s[i++] = ln_simple_layer(act);
        s[i++] = ln_maxpool2d(2, 0);
        if (!tanh_net) s[i++] = ln_simple_layer(act);
        s[i++] = ln_conv2d(10, 20, 5, 1, 0);
        s[i++] = ln_dropout(LN_DROPOUT2D, 0.5f);
        if (tanh_net) s[i++] = ln_simple_layer(act);
        s[i++] = ln_maxpool2d(2, 0);
        if (!tanh_net) s[i++] = ln_simple_layer(act);
        s[i++] = ln_simple_layer(LN_FLATTEN);
        s[i++] = ln_linear(320, 50);
        s[i++] = ln_simple_layer(act);
        s[i++] = ln_dropout(LN_DROPOUT, 0.5f);
        s[i++] = ln_linear(50, 10);
    } else if (!strcmp(name, "custom")) {
        s[i++] = ln_conv2d(1, 16, 3, 1, 1);
        s[i++] = ln_batchnorm(LN_BATCHNORM2D, 16);
        s[i++] = ln_simple_layer(LN_RELU);
        s[i++] = ln_avgpool2d(2, 0);
        s[i++] = ln_conv2d(16, 32, 3, 1, 1);
        s[i++] = ln_batchnorm(LN_BATCHNORM2D, 32);
        s[i++] = ln_simple_layer(LN_TANH);
        s[i++] = ln_avgpool2d(2, 0);
        s[i++] = ln_simple_layer(LN_FLATTEN);
        s[i++] = ln_linear(1568, 10);
    } else if (!strcmp(name, "cifar")) {
        dims[0] = 3;
        dims[1] = dims[2] = 32;
        i = two_conv_blocks(s, 3, 32, 64, 3, 1, 4096, 128, 0, NULL);
    } else if (!strcmp(name, "pool3max") || !strcmp(name, "pool3avg")) {
        /* 32x32 -> 15x15 -> 7x7 */
        const ln_layer_spec pool = name[5] == 'm' ? ln_maxpool2d(3, 2) : ln_avgpool2d(3, 2);
        dims[0] = 3;
        dims[1] = dims[2] = 32;
        i = two_conv_blocks(s, 3, 32, 64, 3, 1, 64 * 7 * 7, 128, 0, &pool);
    } else if (!strcmp(name, "fashion")) {
        i = two_conv_blocks(s, 1, 32, 64, 5, 2, 3136, 1024, 0.4f, NULL);
    } else if (!strcmp(name, "mlpbn")) {
        s[i++] = ln_simple_layer(LN_FLATTEN);
        s[i++] = ln_linear(784, 512);
        s[i++] = ln_batchnorm(LN_BATCHNORM1D, 512);
        s[i++] = ln_simple_layer(LN_RELU);
        s[i++] = ln_linear(512, 256);
        s[i++] = ln_batchnorm(LN_BATCHNORM1D, 256);
        s[i++] = ln_simple_layer(LN_RELU);
        s[i++] = ln_linear(256, 10);
    } else if (!strcmp(name, "strided")) { /* 32x32 -> 16x16 -> 8x8 */
        dims[0] = 3;
        dims[1] = dims[2] = 32;
        s[i++] = ln_conv2d(3, 32, 3, 2, 1);
        s[i++] = ln_simple_layer(LN_RELU);
        s[i++] = ln_conv2d(32, 64, 3, 2, 1);
        s[i++] = ln_simple_layer(LN_RELU);
        s[i++] = ln_simple_layer(LN_FLATTEN);
        s[i++] = ln_linear(4096, 10);
    } else {
        return 0;
    }
    s[i++] = ln_simple_layer(LN_LOG_SOFTMAX);
    return i;
}

int main(int argc, char **argv)
{
    int batch = argc > 1 ? atoi(argv[1]) : 64;
    int epochs = argc > 2 ? atoi(argv[2]) : 5;
    int n = argc > 3 ? atoi(argv[3]) : 3000;
    const char *name = argc > 4 ? argv[4] : "study";
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    const char *opt = argc > 6 ? argv[6] : "sgd";
    ln_error err;
    ln_layer_spec specs[16];
    int64_t dims[3];
    int count = net_specs(name, specs, dims);
    if (!count) {
        fprintf(stderr, "unknown net %s (study, tanh, custom, cifar, fashion, pool3max, pool3avg, mlpbn, strided)\n", name);
        return 1;
    }
    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_INIT);
    ln_net *net;
    if (ln_net_create(&net, specs, count, ln_shape_make(3, dims), &rng, &err) ||
        ln_net_set_threads(net, threads, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    ln_dataset *ds = NULL;
    const char *dir = getenv("MNIST_DIR");
    const int64_t per = dims[0] * dims[1] * dims[2];
    if (dir && per == 784) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
        snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte.gz", dir);
        if (ln_dataset_load_idx(a, b, n, 0.1307f, 0.3081f, &ds, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    } else {
        float *img = malloc(sizeof(float) * (size_t)(per * n));
        int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
        for (int64_t j = 0; j < per * n; j++) img[j] = ln_rng_uniform(&rng) * 2 - 0.5f;
        for (int j = 0; j < n; j++) lab[j] = (int32_t)ln_rng_below(&rng, 10);
        ln_dataset_from_arrays(img, lab, n, (int)dims[0], (int)dims[1], (int)dims[2], &ds, &err);
        free(img);
        free(lab);
    }
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.optim = !strcmp(opt, "adam") ? ln_adam_spec(LN_OPT_ADAM, 1e-3) : ln_sgd_spec(0.01, 0.5);
    cfg.batch = batch;
    cfg.iterations = epochs;
    ln_history h;
    if (ln_train(net, ds, &cfg, &h, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* samples per CPU-second (the training loop's, all threads): other load on a shared
     * machine stretches wall time far more than it does this */
    const double cpu = h.cpu_seconds;
    const double flops = ln_net_forward_flops(net) + ln_net_backward_flops(net);
    printf("%s batch %d threads %d: %.0f samples/s, %.1f GFLOP/s, %.0f samples per CPU-second, loss", name,
           batch, threads, (double)h.samples / h.seconds, flops * (double)h.samples / h.seconds * 1e-9,
           (double)h.samples / cpu);
    for (int64_t e = 0; e < h.iterations; e++) printf(" %.6f", h.loss[e]);
    printf("\n");
    ln_history_release(&h);
    ln_dataset_free(ds);
    ln_net_free(net);
    return 0;
}
