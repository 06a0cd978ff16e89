/* gemm_compare.c - lunet's conv2d and linear kernels against OpenBLAS sgemm on the
 * study's exact shapes, one thread, batch 64. Not part of `make bench` (it needs
 * libopenblas-dev); bench/README.md has its output. Build and run from the repo root:
 *   cc -O2 -Icore bench/gemm_compare.c build/release/liblunet.a -lopenblas -lz -lm -pthread \
 *      -o build/bench/gemm_compare && OPENBLAS_NUM_THREADS=1 build/bench/gemm_compare
 *
 * Every line is microseconds per sample (best of several repeats of a loop):
 *  - lunet: the fast kernels as the layer calls them, including the unfolding of the
 *    input (and, for dx, the fold back onto the input);
 *  - sgemm: the same product by cblas_sgemm on an im2col matrix prepared beforehand
 *    (im2col not timed), per sample (the shapes the layer sees) and for the whole batch
 *    at once (one wide product; its layout would need a transpose afterwards, not timed).
 */
#define _POSIX_C_SOURCE 200809L
#include "layer.h"
#include "simd.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rnd(int64_t n)
{
    float *p = ln_alloc(sizeof(float) * (size_t)(n + 64));
    for (int64_t i = 0; i < n + 64; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

#define B 64
#define TIME(label, flops, body)                                                        \
    do {                                                                                \
        double best = 1e30;                                                             \
        for (int rep = 0; rep < 20; rep++) {                                            \
            double t0 = now();                                                          \
            body;                                                                       \
            double t = now() - t0;                                                      \
            if (t < best) best = t;                                                     \
        }                                                                               \
        printf("  %-44s %8.3f us/sample %7.1f GFLOP/s\n", label, best / B * 1e6,        \
               (flops) / (best / B) * 1e-9);                                            \
    } while (0)

static void conv(const char *name, int c, int h, int w, int oc, int k)
{
    ln_layer l;
    memset(&l, 0, sizeof l);
    l.spec = ln_conv2d(c, oc, k, 1, 0);
    int64_t d[3] = {c, h, w};
    l.in = ln_shape_make(3, d);
    ln_error err;
    if (ln_layer_setup(&l, 1, &err)) exit(1);
    ln_conv_geom g;
    ln_conv_geom_of(&l.spec, &l.in, &l.out, &g);
    const ln_simd_kernels *K = ln_simd();
    const int M = oc, N = (int)g.p, KK = (int)g.ck;
    float *x = rnd(l.in_n * B), *y = rnd(l.out_n * B), *dy = rnd(l.out_n * B), *dx = rnd(l.in_n * B);
    float *wt = rnd(l.weight_n), *bias = rnd(oc), *dw = rnd(l.weight_n), *db = rnd(oc);
    const int chunk = ln_conv_chunk(&g);
    const ln_conv_ws ws = ln_conv_ws_of(&g, rnd(ln_conv_workspace(&g)));
    const int64_t unf = ws.unf;
    float *rows = ws.rows, *drows = ws.drows, *part = ws.sums;
    int *chans = ws.chans; /* every channel's input gradient */
    for (int o = 0; o < g.oc; o++) chans[o] = o;
    float *col = rnd((int64_t)KK * N * B), *dcol = rnd((int64_t)KK * N * B);
    float *ybig = rnd((int64_t)M * N * B);
    const double f = 2.0 * M * N * KK;
    printf("%s: weight %dx%d, columns %dx%d per sample\n", name, M, KK, KK, N);

    TIME("forward  lunet (unfold + kernel)", f, for (int n = 0; n < B; n++) {
        K->conv_unfold(&g, x + n * l.in_n, rows);
        K->conv_fwd(&g, wt, bias, rows, y + n * l.out_n, 0);
    });
    TIME("forward  sgemm per sample (M N K above)", f, for (int n = 0; n < B; n++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, KK, 1.0f, wt, KK,
                    col + (int64_t)n * KK * N, N, 0.0f, y + n * l.out_n, N));
    TIME("forward  sgemm whole batch (N x 64)", f,
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N * B, KK, 1.0f, wt, KK, col,
                     N * B, 0.0f, ybig, N * B));

    TIME("dweight  lunet (unfold + kernel + reduce)", f, {
        memset(part, 0, sizeof(float) * (size_t)((g.oc * g.ck + g.oc) * LN_SIMD_MAX_LANES));
        for (int n0 = 0; n0 < B; n0 += chunk) {
            for (int s = 0; s < chunk; s++) K->conv_unfold(&g, x + (n0 + s) * l.in_n, rows + s * unf);
            K->conv_dw_lanes(&g, 0, g.oc, 0, g.ck, chunk, dy + n0 * l.out_n, l.out_n, rows, unf, part, part + g.oc * g.ck * K->lanes, 0);
        }
        K->reduce_lanes(g.oc * g.ck, part, dw);
        K->reduce_lanes(g.oc, part + g.oc * g.ck * K->lanes, db);
    });
    TIME("dweight  sgemm per sample (dy * col^T)", f, for (int n = 0; n < B; n++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, KK, N, 1.0f, dy + n * l.out_n, N,
                    col + (int64_t)n * KK * N, N, 1.0f, dw, KK));
    TIME("dweight  sgemm whole batch (K = P x 64)", f,
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, KK, N * B, 1.0f, ybig, N * B, col,
                     N * B, 1.0f, dw, KK));

    TIME("dinput   lunet (kernel + fold)", f, for (int n = 0; n < B; n++) {
        memset(drows, 0, sizeof(float) * (size_t)g.unf_n);
        K->conv_dx(&g, wt, dy + n * l.out_n, g.p, chans, (int)g.oc, drows);
        K->conv_fold(&g, drows, dx + n * l.in_n);
    });
    TIME("dinput   sgemm per sample (W^T * dy, no col2im)", f, for (int n = 0; n < B; n++)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, KK, N, M, 1.0f, wt, KK, dy + n * l.out_n,
                    N, 0.0f, dcol + (int64_t)n * KK * N, N));
    TIME("dinput   sgemm whole batch (no col2im)", f,
         cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, KK, N * B, M, 1.0f, wt, KK, ybig, N * B,
                     0.0f, dcol, N * B));
    printf("\n");
}

static void linear(int in, int out)
{
    const ln_simd_kernels *K = ln_simd();
    float *x = rnd((int64_t)in * B), *w = rnd((int64_t)in * out), *b = rnd(out), *y = rnd((int64_t)out * B);
    float *dy = rnd((int64_t)out * B), *dw = rnd((int64_t)in * out), *db = rnd(out), *dx = rnd((int64_t)in * B);
    const double f = 2.0 * in * out;
    printf("linear %d -> %d, batch %d\n", in, out, B);
    TIME("forward  lunet", f, K->linear_fwd(B, in, out, x, w, b, y));
    TIME("forward  sgemm (x W^T)", f,
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, x, in, w, in, 0.0f, y, out));
    TIME("backward lunet (dW, db, dx)", 2 * f, K->linear_bwd(B, in, out, x, w, dy, dw, db, dx, 0, out, 0, B));
    TIME("backward sgemm (dW = dy^T x, dx = dy W)", 2 * f, {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dy, out, x, in, 1.0f, dw, in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
    });
    printf("\n");
}

int main(void)
{
    printf("isa %s, batch %d, one thread; OpenBLAS %s\n\n", ln_isa_name(ln_simd()->isa), B,
           openblas_get_config());
    conv("conv1 1->10 k5 on 28x28", 1, 28, 28, 10, 5);
    conv("conv2 10->20 k5 on 12x12", 10, 12, 12, 20, 5);
    linear(320, 50);
    linear(50, 10);
    return 0;
}
