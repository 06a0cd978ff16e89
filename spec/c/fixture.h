/* fixture.h - what the C test programs build their checks on: memory, nets and
 * datasets that must exist for a check to mean anything. A fixture that cannot be
 * made ends the program with status 2 and one line on stderr ("fixture WHAT:
 * message"), which c_spec.lua reports as a failure: never a check that passes.
 *
 * Header only, like tap.h: every test program is a single translation unit. */
#ifndef LUNET_SPEC_FIXTURE_H
#define LUNET_SPEC_FIXTURE_H

#include "../../core/lunet.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void fixture_fail(const char *what, const char *msg)
{
    fprintf(stderr, "fixture %s: %s\n", what, msg);
    exit(2);
}

/* n zeroed floats (a block of 1 when n <= 0). No slack after the block: an overrun
 * shows under ASan. */
static inline float *falloc(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) fixture_fail("memory", "out of memory");
    return p;
}

static inline ln_net *fixture_net(const ln_layer_spec *layers, int count, ln_shape input, ln_rng *rng)
{
    ln_net *net = NULL;
    ln_error err;
    if (ln_net_create(&net, layers, count, input, rng, &err)) fixture_fail("net", err.msg);
    return net;
}

/* A dataset copied from count images of channels x height x width floats and their labels. */
static inline ln_dataset *fixture_dataset(const float *images, const int32_t *labels, int64_t count,
                                          int channels, int height, int width)
{
    ln_dataset *ds = NULL;
    ln_error err;
    if (ln_dataset_from_arrays(images, labels, count, channels, height, width, &ds, &err))
        fixture_fail("dataset", err.msg);
    return ds;
}

#endif
