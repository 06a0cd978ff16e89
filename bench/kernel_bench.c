/* kernel_bench.c - times each layer kernel of the study's CNN in isolation (batch B,
 * default 64), fast path and reference, and prints microseconds per sample and GFLOP/s.
 * Build (from the repo root): cc -O2 -Icore bench/kernel_bench.c build/release/liblunet.a -lz -lm -pthread
 * Usage: kernel_bench [batch] [isa: generic|avx2|avx512]
 * Environment: PARTS_ONLY=1 stops after the per-step conv timings, PARTS_NET=name keeps
 * the other nets' convolutions whose name holds it, CONV_LAYERS=1 times those as whole
 * layers on a batch (forward, backward) instead of step by step, LISTED=1 times the
 * gradients after a fused max pooling (conv_dx and conv_dw against their listed twins),
 * POOLS_ONLY=1 times the 3x3 stride-2 poolings of train_bench's pool3max and pool3avg
 * nets (max and average, 32 x 32 and 15 x 15 planes), IM2COL_ONLY=1 the strided
 * convolutions' unfolding and folding (conv_unfold, conv_fold) against the plain C
 * ln_conv_unfold_c and ln_conv_fold_c, per sample (train_bench's strided net and two
 * more stride-2 shapes, one of stride 3). */
#define _POSIX_C_SOURCE 200809L
#include "../core/layer.h"
#include "../core/simd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust to other load */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *fl(int64_t n, ln_rng *r)
{
    float *p = ln_alloc(sizeof(float) * (size_t)(n + 64));
    for (int64_t i = 0; i < n + 64; i++) p[i] = 2.0f * ln_rng_uniform(r) - 1.0f;
    return p;
}

static ln_layer make(ln_layer_spec s, int c, int h, int w, ln_rng *r, int batch)
{
    ln_layer l;
    memset(&l, 0, sizeof l);
    l.spec = s;
    int64_t d3[3] = {c, h, w};
    int64_t d1[1] = {(int64_t)c * h * w};
    l.in = s.kind == LN_LINEAR ? ln_shape_make(1, d1) : ln_shape_make(3, d3);
    ln_error err;
    if (ln_layer_setup(&l, 1, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    l.weight = fl(l.weight_n, r);
    l.dweight = fl(l.weight_n, r);
    l.bias = l.bias_n ? fl(l.bias_n, r) : NULL;
    l.dbias = l.bias_n ? fl(l.bias_n, r) : NULL;
    l.argmax = ln_alloc(sizeof(int32_t) * (size_t)(l.out_n * batch + 64));
    return l;
}

typedef void (*fwd_fn)(ln_layer *, const float *, float *, const ln_ctx *);

static void run(const char *name, ln_layer *l, int batch, int reference, int with_dx, double flops)
{
    ln_rng r;
    ln_rng_seed(&r, 7, 1);
    float *x = fl(l->in_n * batch, &r), *y = fl(l->out_n * batch, &r);
    float *dy = fl(l->out_n * batch, &r), *dx = fl(l->in_n * batch, &r);
    int64_t wsn = ln_layer_workspace(l);
    float *ws = fl(wsn > 0 ? wsn : 1, &r);
    ln_ctx ctx = {batch, 1, reference, &r, ws, NULL};
    double best_f = 1e30, best_b = 1e30;
    int reps = reference ? 2 : 30;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        ln_layer_forward(l, x, y, &ctx);
        double t1 = now();
        if (l->spec.kind == LN_RELU) memcpy(dy, y, 0);
        ln_layer_backward(l, x, y, dy, with_dx ? dx : NULL, &ctx);
        double t2 = now();
        if (t1 - t0 < best_f) best_f = t1 - t0;
        if (t2 - t1 < best_b) best_b = t2 - t1;
    }
    double us_f = best_f / batch * 1e6, us_b = best_b / batch * 1e6;
    printf("%-22s %-9s fwd %7.3f us/sample", name, reference ? "reference" : "fast", us_f);
    if (flops > 0) printf(" (%6.1f GFLOP/s)", flops / (best_f / batch) * 1e-9);
    printf("   bwd %7.3f us/sample", us_b);
    if (flops > 0) printf(" (%6.1f GFLOP/s)", (with_dx ? 2 : 1) * flops / (best_b / batch) * 1e-9);
    printf("\n");
    ln_dealloc(x);
    ln_dealloc(y);
    ln_dealloc(dy);
    ln_dealloc(dx);
    ln_dealloc(ws);
}

/* Times the sub-steps of the fast conv2d path for one layer, per sample. */
static void parts(const char *name, ln_layer *l)
{
    ln_conv_geom g;
    ln_conv_geom_of(&l->spec, &l->in, &l->out, &g);
    const ln_simd_kernels *K = ln_simd();
    ln_rng r;
    ln_rng_seed(&r, 9, 1);
    float *x = fl(l->in_n, &r), *y = fl(l->out_n, &r), *dx = fl(l->in_n, &r);
    const int chunk = ln_conv_chunk(&g);
    const ln_conv_ws ws = ln_conv_ws_of(&g, fl(ln_conv_workspace(&g), &r));
    const int64_t unf = ws.unf;
    float *rows = ws.rows, *drows = ws.drows;
    for (int o = 0; o < g.oc; o++) ws.chans[o] = o; /* every channel's input gradient */
    double t[7] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
    const int inner = 200;
    for (int rep = 0; rep < 15; rep++) {
        double v[8];
        v[0] = now();
        for (int i = 0; i < inner; i++) K->conv_unfold(&g, x, rows);
        v[1] = now();
        for (int i = 0; i < inner; i++) K->conv_fwd(&g, l->weight, l->bias, rows, y, 0);
        v[2] = now();
        for (int i = 0; i < inner / chunk; i++)
            K->conv_dw(&g, 0, g.oc, 0, g.ck, chunk, ws.dyt, rows, unf, ws.sums, ws.sums + g.ck * g.ocp, 0);
        v[3] = now();
        for (int i = 0; i < inner; i++) K->conv_dy_transpose(&g, y, ws.dyt);
        v[4] = now();
        for (int i = 0; i < inner; i++) K->conv_dx(&g, l->weight, y, g.p, ws.chans, (int)g.oc, drows);
        v[5] = now();
        for (int i = 0; i < inner; i++) K->conv_fold(&g, drows, dx);
        v[6] = now();
        for (int i = 0; i < inner / chunk; i++)
            K->conv_dw_lanes(&g, 0, g.oc, 0, g.ck, chunk, y, 0, rows, unf, ws.sums,
                             ws.sums + g.oc * g.ck * K->lanes, 0);
        v[7] = now();
        double d[7];
        for (int j = 0; j < 7; j++) d[j] = (v[j + 1] - v[j]) / inner;
        d[2] = (v[3] - v[2]) / (inner / chunk * chunk); /* per sample */
        d[6] = (v[7] - v[6]) / (inner / chunk * chunk);
        for (int j = 0; j < 7; j++)
            if (d[j] < t[j]) t[j] = d[j];
    }
    const double gf = 2.0 * (double)g.oc * (double)g.ck * (double)g.p * 1e-9; /* one product */
    printf("%-22s us/sample: unfold %.3f  fwd %.3f (%.0f GF/s)  dw(chunk %d) %.3f (%.0f GF/s)  "
           "dx %.3f (%.0f GF/s)  fold %.3f  dy transpose %.3f  dw lanes %.3f (%.0f GF/s)\n",
           name, t[0] * 1e6, t[1] * 1e6, gf / t[1], chunk, t[2] * 1e6, gf / t[2], t[4] * 1e6,
           gf / t[4], t[5] * 1e6, t[3] * 1e6, t[6] * 1e6, gf / t[6]);
}

/* A fused 2x2 max pooling's gradient for one sample of layer g (oc x P floats): one
 * random place of each window, half of them +-0 (a ReLU's mask); its places listed
 * channel by channel (conv_dw_listed) and position by position (conv_dx_listed). */
static void pooled_dy(const ln_conv_geom *g, ln_rng *r, float *dy, const ln_conv_ws *ws)
{
    const int64_t P = g->p;
    memset(dy, 0, sizeof(float) * (size_t)(g->oc * P));
    for (int o = 0; o < g->oc; o++)
        for (int qy = 0; qy < g->oh / 2; qy++)
            for (int qx = 0; qx < g->ow / 2; qx++) {
                const int64_t p = (int64_t)(2 * qy + (int)(ln_rng_u32(r) & 1)) * g->ow + 2 * qx + (int)(ln_rng_u32(r) & 1);
                if (ln_rng_u32(r) & 1) dy[o * P + p] = ln_rng_uniform(r) - 0.5f;
            }
    int n = 0;
    for (int o = 0; o < g->oc; o++) {
        ws->dwl_start[o] = n;
        for (int64_t p = 0; p < P; p++)
            if (dy[o * P + p] != 0.0f) {
                ws->dwl_pos[n] = (int)p;
                ws->dwl_val[n++] = dy[o * P + p];
            }
    }
    ws->dwl_start[g->oc] = n;
    n = 0;
    for (int64_t p = 0; p < P; p++) {
        ws->dxl_start[p] = n;
        for (int o = 0; o < g->oc; o++)
            if (dy[o * P + p] != 0.0f) {
                ws->dxl_chan[n] = o;
                ws->dxl_val[n++] = dy[o * P + p];
            }
    }
    ws->dxl_start[P] = n;
}

/* The input and weight gradients of one sample after a fused max pooling, per sample:
 * conv_dx (every channel) against conv_dx_listed, and conv_dw over a chunk (dy
 * transposed first) against conv_dw_listed (rows transposed first); lists made
 * beforehand (conv2d.c makes them from the pooling's argmax). */
static void listed_parts(const char *name, ln_layer *l)
{
    ln_conv_geom g;
    ln_conv_geom_of(&l->spec, &l->in, &l->out, &g);
    const ln_simd_kernels *K = ln_simd();
    ln_rng r;
    ln_rng_seed(&r, 9, 1);
    const int chunk = ln_conv_chunk(&g);
    ln_conv_ws ws = ln_conv_ws_of(&g, fl(ln_conv_workspace(&g), &r));
    const int64_t P = g.p, pp = (P + K->lanes - 1) / K->lanes * K->lanes, terms = g.oc * P;
    /* the listed parts of their own: layers under conv2d.c's threshold (DX_LISTED_MIN_OC)
     * have none in their workspace, and those are timed too */
    ws.dxl = fl(ln_conv_dx_listed_scratch(&g), &r);
    ws.dxl_start = ln_alloc(sizeof(int) * (size_t)(P + 1));
    ws.dxl_chan = ln_alloc(sizeof(int) * (size_t)terms);
    ws.dxl_val = fl(terms, &r);
    ws.dwl_start = ln_alloc(sizeof(int) * (size_t)(g.oc + 1));
    ws.dwl_pos = ln_alloc(sizeof(int) * (size_t)terms);
    ws.dwl_val = fl(terms, &r);
    float *x = fl(l->in_n, &r), *dy = fl(g.oc * P, &r), *dypad = fl(g.oc * pp, &r);
    pooled_dy(&g, &r, dy, &ws);
    for (int o = 0; o < g.oc; o++)
        for (int64_t p = 0; p < pp; p++) dypad[o * pp + p] = p < P ? dy[o * P + p] : 0.0f;
    for (int s = 0; s < chunk; s++) K->conv_unfold(&g, x, ws.rows + s * ws.unf);
    double t[4] = {1e30, 1e30, 1e30, 1e30};
    const int inner = 60;
    for (int rep = 0; rep < 15; rep++) {
        double v[5];
        v[0] = now();
        for (int i = 0; i < inner; i++) {
            memset(ws.drows, 0, sizeof(float) * (size_t)g.unf_n);
            K->conv_dx(&g, l->weight, dypad, pp, NULL, g.oc, ws.drows);
        }
        v[1] = now();
        for (int i = 0; i < inner; i++) {
            memset(ws.drows, 0, sizeof(float) * (size_t)g.unf_n);
            K->conv_dx_listed(&g, l->weight, ws.dxl_start, ws.dxl_chan, ws.dxl_val, ws.dxl, ws.drows);
        }
        v[2] = now();
        for (int i = 0; i < inner / chunk; i++) {
            for (int s = 0; s < chunk; s++) K->conv_dy_transpose(&g, dy, ws.dyt + s * P * g.ocp);
            K->conv_dw(&g, 0, g.oc, 0, g.ck, chunk, ws.dyt, ws.rows, ws.unf, ws.sums, ws.sums + g.ck * g.ocp, 1);
        }
        v[3] = now();
        for (int i = 0; i < inner / chunk * chunk; i++) {
            K->conv_rows_transpose(&g, ws.rows + (i % chunk) * ws.unf, ws.dxl);
            K->conv_dw_listed(&g, ws.dxl, ws.dwl_start, ws.dwl_pos, ws.dwl_val, ws.sums, ws.sums + g.oc * g.ck);
        }
        v[4] = now();
        const double d[4] = {(v[1] - v[0]) / inner, (v[2] - v[1]) / inner, (v[3] - v[2]) / (inner / chunk * chunk),
                             (v[4] - v[3]) / (inner / chunk * chunk)};
        for (int j = 0; j < 4; j++)
            if (d[j] < t[j]) t[j] = d[j];
    }
    printf("%-22s us/sample, %d of %lld places listed: dx %.2f, listed %.2f;  dw %.2f, listed %.2f\n", name,
           ws.dxl_start[P], (long long)(g.oc * P), t[0] * 1e6, t[1] * 1e6, t[2] * 1e6, t[3] * 1e6);
    ln_dealloc(x);
    ln_dealloc(dy);
    ln_dealloc(dypad);
}

/* conv_unfold and conv_fold against ln_conv_unfold_c and ln_conv_fold_c for one
 * sample of an im2col (strided) layer: µs, best of 30 x 100 calls */
static void im2col_parts(int c, int hw, int k, int s, int pad)
{
    ln_rng r;
    ln_rng_seed(&r, 11, 1);
    int64_t d[3] = {c, hw, hw};
    ln_layer l;
    memset(&l, 0, sizeof l);
    l.spec = ln_conv2d(c, 8, k, s, pad);
    l.in = ln_shape_make(3, d);
    ln_error err;
    if (ln_layer_setup(&l, 1, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    ln_conv_geom g;
    ln_conv_geom_of(&l.spec, &l.in, &l.out, &g);
    const ln_simd_kernels *K = ln_simd();
    float *x = fl(l.in_n, &r), *rows = fl(g.unf_n, &r), *dx = fl(l.in_n, &r);
    double t[4] = {1e30, 1e30, 1e30, 1e30};
    for (int rep = 0; rep < 30; rep++) {
        double v[5];
        v[0] = now();
        for (int i = 0; i < 100; i++) K->conv_unfold(&g, x, rows);
        v[1] = now();
        for (int i = 0; i < 100; i++) ln_conv_unfold_c(&g, x, rows);
        v[2] = now();
        for (int i = 0; i < 100; i++) K->conv_fold(&g, rows, dx);
        v[3] = now();
        for (int i = 0; i < 100; i++) ln_conv_fold_c(&g, rows, dx);
        v[4] = now();
        for (int j = 0; j < 4; j++)
            if ((v[j + 1] - v[j]) / 100 < t[j]) t[j] = (v[j + 1] - v[j]) / 100;
    }
    printf("im2col %dx%dx%d k%d s%d p%d (output %dx%d) us/sample: unfold %.2f (C %.2f)  fold %.2f (C %.2f)\n", c, hw,
           hw, k, s, pad, g.oh, g.ow, t[0] * 1e6, t[1] * 1e6, t[2] * 1e6, t[3] * 1e6);
    ln_dealloc(x);
    ln_dealloc(rows);
    ln_dealloc(dx);
}

int main(int argc, char **argv)
{
    int batch = argc > 1 ? atoi(argv[1]) : 64;
    if (argc > 2) {
        int isa = !strcmp(argv[2], "avx512") ? LN_ISA_AVX512 : !strcmp(argv[2], "avx2") ? LN_ISA_AVX2 : LN_ISA_GENERIC;
        ln_simd_force(isa);
    }
    printf("isa %s, batch %d\n", ln_isa_name(ln_simd()->isa), batch);
    ln_rng r;
    ln_rng_seed(&r, 1, 1);
    ln_layer conv1 = make(ln_conv2d(1, 10, 5, 1, 0), 1, 28, 28, &r, batch);
    ln_layer conv2 = make(ln_conv2d(10, 20, 5, 1, 0), 10, 12, 12, &r, batch);
    ln_layer pool1 = make(ln_maxpool2d(2, 0), 10, 24, 24, &r, batch);
    ln_layer pool2 = make(ln_maxpool2d(2, 0), 20, 8, 8, &r, batch);
    ln_layer relu1 = make(ln_simple_layer(LN_RELU), 10, 12, 12, &r, batch);
    ln_layer lin1 = make(ln_linear(320, 50), 320, 1, 1, &r, batch);
    ln_layer lin2 = make(ln_linear(50, 10), 50, 1, 1, &r, batch);
    if (getenv("IM2COL_ONLY")) { /* train_bench's strided net, a smaller stride-2 layer, stride 3 */
        im2col_parts(3, 32, 3, 2, 1);
        im2col_parts(32, 16, 3, 2, 1);
        im2col_parts(64, 8, 3, 2, 1);
        im2col_parts(8, 15, 5, 3, 2);
        return 0;
    }
    if (getenv("LISTED"))
        listed_parts("study conv2 10-20 k5", &conv2);
    else {
        parts("study conv1 1-10 k5", &conv1);
        parts("study conv2 10-20 k5", &conv2);
    }
    /* the other nets' convolutions (bench/train_bench.c): custom, cifar, fashion */
    struct { const char *name; int c, oc, k, pad, hw; } other[] = {
        {"custom conv1 1-16 k3p1", 1, 16, 3, 1, 28},   {"custom conv2 16-32 k3p1", 16, 32, 3, 1, 14},
        {"cifar conv1 3-32 k3p1", 3, 32, 3, 1, 32},    {"cifar conv2 32-64 k3p1", 32, 64, 3, 1, 16},
        {"fashion conv1 1-32 k5p2", 1, 32, 5, 2, 28},  {"fashion conv2 32-64 k5p2", 32, 64, 5, 2, 14},
    };
    const char *only = getenv("PARTS_NET");
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        if (only && !strstr(other[i].name, only)) continue;
        ln_layer l = make(ln_conv2d(other[i].c, other[i].oc, other[i].k, 1, other[i].pad), other[i].c,
                          other[i].hw, other[i].hw, &r, batch);
        if (getenv("LISTED"))
            listed_parts(other[i].name, &l);
        else if (getenv("CONV_LAYERS")) /* the whole layer on a batch: fresh samples, as in training */
            run(other[i].name, &l, batch, 0, !strstr(other[i].name, "conv1"),
                2.0 * other[i].oc * other[i].c * other[i].k * other[i].k * other[i].hw * other[i].hw);
        else
            parts(other[i].name, &l);
    }
    if (getenv("PARTS_ONLY")) return 0;
    if (getenv("POOLS_ONLY")) { /* the pool3max and pool3avg nets' poolings: 3x3, stride 2 */
        for (int ref = 0; ref < 2; ref++)
            for (int avg = 0; avg < 2; avg++) {
                const ln_layer_spec spec = avg ? ln_avgpool2d(3, 2) : ln_maxpool2d(3, 2);
                ln_layer p1 = make(spec, 32, 32, 32, &r, batch), p2 = make(spec, 64, 15, 15, &r, batch);
                run(avg ? "avgpool3/2 32x32x32" : "maxpool3/2 32x32x32", &p1, batch, ref, 1, 0);
                run(avg ? "avgpool3/2 64x15x15" : "maxpool3/2 64x15x15", &p2, batch, ref, 1, 0);
            }
        return 0;
    }
    if (getenv("LINEAR_ONLY")) { /* the large linear layers of the fashion and cifar nets */
        ln_layer fl1 = make(ln_linear(3136, 1024), 3136, 1, 1, &r, batch);
        ln_layer cl1 = make(ln_linear(4096, 128), 4096, 1, 1, &r, batch);
        run("linear 3136->1024", &fl1, batch, 0, 1, 2.0 * 3136 * 1024);
        run("linear 3136->1024 no dx", &fl1, batch, 0, 0, 2.0 * 3136 * 1024);
        run("linear 4096->128", &cl1, batch, 0, 1, 2.0 * 4096 * 128);
        return 0;
    }
    for (int ref = 0; ref < 2; ref++) {
        run("conv1 1->10 k5 28x28", &conv1, batch, ref, 0, 2.0 * 10 * 25 * 576);
        run("conv2 10->20 k5 12x12", &conv2, batch, ref, 1, 2.0 * 20 * 250 * 64);
        run("maxpool 10x24x24", &pool1, batch, ref, 1, 0);
        run("maxpool 20x8x8", &pool2, batch, ref, 1, 0);
        run("relu 10x12x12", &relu1, batch, ref, 1, 0);
        run("linear 320->50", &lin1, batch, ref, 1, 2.0 * 320 * 50);
        run("linear 50->10", &lin2, batch, ref, 1, 2.0 * 50 * 10);
    }
    return 0;
}
