/*
 * embed.c - the lunet C API alone, without Lua: build a small CNN from layer specs,
 * train it on synthetic data, save it, load it back and predict.
 *
 * usage: embed [MODEL_FILE]      (default: embed_model.lnet in the current directory)
 *
 * Build:  make examples          -> build/release/examples/embed
 *   or, against an installed lunet (make install PREFIX=...):
 *         cc -std=c11 -O2 embed.c $(pkg-config --cflags --libs lunet) -lm -o embed
 *
 * Every engine call returns an ln_status and fills an ln_error; this program checks
 * each one, prints the message and exits with status 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunet.h"

enum { CLASSES = 4, SIDE = 8, COUNT = 256 };

/* Prints what failed and the engine's message; returns 1 for main's exit status. */
static int report(const char *what, const ln_error *err)
{
    fprintf(stderr, "embed: %s: %s (%s)\n", what, err->msg, ln_status_name(err->code));
    return 1;
}

/* Class c lights up one quadrant of an 8x8 image, plus noise. */
static void make_data(float *images, int32_t *labels, ln_rng *rng)
{
    for (int i = 0; i < COUNT; i++) {
        const int c = i % CLASSES;
        const int oy = (c / 2) * (SIDE / 2), ox = (c % 2) * (SIDE / 2);
        labels[i] = c;
        for (int y = 0; y < SIDE; y++) {
            for (int x = 0; x < SIDE; x++) {
                const int lit = y >= oy && y < oy + SIDE / 2 && x >= ox && x < ox + SIDE / 2;
                images[(i * SIDE + y) * SIDE + x] = (lit ? 1.0f : 0.0f) + 0.3f * ln_rng_uniform(rng);
            }
        }
    }
}

/* Class with the highest log-probability among `classes` outputs. */
static int argmax(const float *v, int classes)
{
    int best = 0;
    for (int k = 1; k < classes; k++)
        if (v[k] > v[best]) best = k;
    return best;
}

/* What the program holds; released in one place whatever step fails. */
typedef struct {
    float *images;
    int32_t *labels;
    ln_dataset *data;
    ln_net *net, *loaded;
    ln_history hist;
} resources;

static int run(resources *r, const char *model_path)
{
    ln_error err;
    r->images = malloc(sizeof(float) * COUNT * SIDE * SIDE);
    r->labels = malloc(sizeof(int32_t) * COUNT);
    if (!r->images || !r->labels) {
        fprintf(stderr, "embed: out of memory\n");
        return 1;
    }

    /* 1. data: the engine copies the arrays into a dataset */
    ln_rng rng;
    ln_rng_seed(&rng, 7, LN_STREAM_SUBSET);
    make_data(r->images, r->labels, &rng);
    if (ln_dataset_from_arrays(r->images, r->labels, COUNT, 1, SIDE, SIDE, &r->data, &err))
        return report("dataset", &err);

    /* 2. the net: 1x8x8 -> conv 3x3 (pad 1) 4x8x8 -> relu -> pool 4x4x4 -> 64 -> 4 */
    const ln_layer_spec layers[] = {
        ln_conv2d(1, 4, 3, 1, 1),
        ln_simple_layer(LN_RELU),
        ln_maxpool2d(2, 2),
        ln_simple_layer(LN_FLATTEN),
        ln_linear(4 * 4 * 4, CLASSES),
        ln_simple_layer(LN_LOG_SOFTMAX),
    };
    const int64_t dims[] = {1, SIDE, SIDE};
    ln_rng_seed(&rng, 1, LN_STREAM_INIT);
    if (ln_net_create(&r->net, layers, (int)(sizeof layers / sizeof layers[0]), ln_shape_make(3, dims), &rng,
                      &err))
        return report("building the net", &err);
    printf("net: %d layers, %lld parameters\n", ln_net_layer_count(r->net),
           (long long)ln_net_param_count(r->net));

    /* 3. train: SGD (lr 0.01, momentum 0.5), 5 epochs of mini-batches of 32 */
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.loss = LN_LOSS_NLL;
    cfg.optim = ln_sgd_spec(0.01, 0.5);
    cfg.batch = 32;
    cfg.iterations = 5;
    cfg.unit = LN_UNIT_EPOCH;
    cfg.seed = 1;
    if (ln_train(r->net, r->data, &cfg, &r->hist, &err)) return report("training", &err);
    for (int64_t i = 0; i < r->hist.iterations; i++)
        printf("epoch %lld: loss %.4f\n", (long long)i + 1, r->hist.loss[i]);
    if (r->hist.diverged) {
        fprintf(stderr, "embed: training diverged\n");
        return 1;
    }
    double loss, accuracy;
    if (ln_evaluate(r->net, r->data, LN_LOSS_NLL, 64, &loss, &accuracy, &err)) return report("evaluating", &err);
    printf("trained: loss %.4f, accuracy %.1f%%\n", loss, 100 * accuracy);

    /* 4. save (atomic, CRC-checked) and load back */
    if (ln_net_save(r->net, model_path, &err)) return report("saving", &err);
    if (ln_net_load(model_path, &r->loaded, &err)) return report("loading", &err);
    printf("saved and loaded %s\n", model_path);

    /* 5. predict with the loaded net: reserve activations for a batch of 1, then a
     * forward pass in eval mode (training = 0) per image */
    if (ln_net_reserve(r->loaded, 1, &err)) return report("reserving", &err);
    ln_rng_seed(&rng, 0, LN_STREAM_DROPOUT); /* only drawn from in training mode */
    int correct = 0;
    for (int i = 0; i < CLASSES; i++) {
        const float *logp;
        if (ln_net_forward(r->loaded, r->images + (size_t)i * SIDE * SIDE, 1, 0, &rng, &logp, &err))
            return report("predicting", &err);
        const int c = argmax(logp, CLASSES);
        correct += c == r->labels[i];
        printf("sample %d: label %d, predicted %d (confidence %.1f%%)\n", i + 1, (int)r->labels[i], c,
               100.0 * exp((double)logp[c]));
    }
    if (correct != CLASSES) {
        fprintf(stderr, "embed: %d of %d samples misclassified\n", CLASSES - correct, CLASSES);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
        fprintf(argc > 2 ? stderr : stdout, "usage: %s [MODEL_FILE]\n", argv[0]);
        return argc > 2 ? 1 : 0;
    }
    const char *model_path = argc > 1 ? argv[1] : "embed_model.lnet";
    printf("lunet %s (engine revision %d)\n", LUNET_VERSION, LUNET_ENGINE_REVISION);

    resources r;
    memset(&r, 0, sizeof r);
    const int status = run(&r, model_path);
    ln_history_release(&r.hist);
    ln_net_free(r.loaded);
    ln_net_free(r.net);
    ln_dataset_free(r.data);
    free(r.labels);
    free(r.images);
    return status;
}
