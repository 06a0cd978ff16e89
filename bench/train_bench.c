/* train_bench.c - times lunet training of the study's CNN from C, without Lua, for
 * profiling (perf record ./train_bench ...) and for the OpenBLAS comparison.
 * Usage: train_bench [batch] [epochs] [n]   (MNIST_DIR set: real images, else random) */
#include "../core/lunet.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static ln_layer_spec specs[13];

int main(int argc, char **argv)
{
    int batch = argc > 1 ? atoi(argv[1]) : 64;
    int epochs = argc > 2 ? atoi(argv[2]) : 5;
    int n = argc > 3 ? atoi(argv[3]) : 3000;
    ln_error err;
    int i = 0;
    specs[i++] = ln_conv2d(1, 10, 5, 1, 0);
    specs[i++] = ln_maxpool2d(2, 0);
    specs[i++] = ln_simple_layer(LN_RELU);
    specs[i++] = ln_conv2d(10, 20, 5, 1, 0);
    specs[i++] = ln_dropout(LN_DROPOUT2D, 0.5f);
    specs[i++] = ln_maxpool2d(2, 0);
    specs[i++] = ln_simple_layer(LN_RELU);
    specs[i++] = ln_simple_layer(LN_FLATTEN);
    specs[i++] = ln_linear(320, 50);
    specs[i++] = ln_simple_layer(LN_RELU);
    specs[i++] = ln_dropout(LN_DROPOUT, 0.5f);
    specs[i++] = ln_linear(50, 10);
    specs[i++] = ln_simple_layer(LN_LOG_SOFTMAX);
    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_INIT);
    ln_net *net;
    int64_t dims[3] = {1, 28, 28};
    if (ln_net_create(&net, specs, i, ln_shape_make(3, dims), &rng, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    ln_dataset *ds = NULL;
    const char *dir = getenv("MNIST_DIR");
    if (dir) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
        snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte.gz", dir);
        if (ln_dataset_load_idx(a, b, n, 0.1307f, 0.3081f, &ds, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    } else {
        float *img = malloc(sizeof(float) * 784 * (size_t)n);
        int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
        for (int64_t j = 0; j < 784 * (int64_t)n; j++) img[j] = ln_rng_uniform(&rng) * 2 - 0.5f;
        for (int j = 0; j < n; j++) lab[j] = (int32_t)ln_rng_below(&rng, 10);
        ln_dataset_from_arrays(img, lab, n, 1, 28, 28, &ds, &err);
    }
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.optim = ln_sgd_spec(0.01, 0.5);
    cfg.batch = batch;
    cfg.iterations = epochs;
    ln_history h;
    if (ln_train(net, ds, &cfg, &h, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("batch %d: %.0f samples/s, loss", batch, (double)h.samples / h.seconds);
    for (int64_t e = 0; e < h.iterations; e++) printf(" %.6f", h.loss[e]);
    printf("\n");
    ln_history_release(&h);
    ln_dataset_free(ds);
    ln_net_free(net);
    return 0;
}
