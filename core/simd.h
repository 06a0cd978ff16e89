/*
 * simd.h - the vectorised kernels behind conv2d, linear, maxpool and relu (internal).
 *
 * core/simd_impl.h holds every kernel once, written against a small vector vocabulary
 * (V_LOADU, V_FMA, ...; its head comment is the contract). core/simd.c includes it three
 * times, each between an ISA's simd_<isa>_begin.h (the vocabulary) and simd_end.h: for
 * AVX-512, for AVX2+FMA and for portable C (GCC vector extensions); it picks one at run
 * time from what the CPU supports (no -march needed at build time). The choice is made once per
 * process; LUNET_ISA=generic|avx2|avx512 in the environment (or ln_simd_force from a
 * test) overrides it, never above what the CPU has.
 *
 * Every kernel sums in an order fixed by the shapes alone, so results are bit-identical
 * from run to run and independent of thread counts; different ISAs may round
 * differently (FMA versus separate multiply and add, 16 versus 8 lanes).
 */
#ifndef LUNET_SIMD_H
#define LUNET_SIMD_H

#include "conv_geom.h" /* the convolution geometry the conv2d kernels take (and lunet.h) */

typedef enum { LN_ISA_GENERIC = 0, LN_ISA_AVX2 = 1, LN_ISA_AVX512 = 2 } ln_isa;

/* Constants of one Adam/AdamW step (core/optim.c computes them as PyTorch does). */
enum { LN_DECAY_NONE = 0, LN_DECAY_L2, LN_DECAY_DECOUPLED };
typedef struct {
    float b1, c1, b2, c2, eps, wd, shrink, neg_step, bc2_sqrt;
    int decay;
} ln_adam_consts;
/* The Adam step element by element (optim.c): the reference twin of the kernel. */
void ln_adam_reference(int64_t n, float *p, const float *grad, float *m, float *v,
                       const ln_adam_consts *k);

/* The activation fused into a batchnorm (see bn_grad_sums): its kind (LN_RELU, LN_TANH,
 * LN_SIGMOID), the channel's affine map (the ReLU's mask is recomputed from it) and
 * the activation's output where x is (tanh and sigmoid read it). */
typedef struct {
    int kind;
    float alpha, beta;
    const float *y;
} ln_bn_act;

/* One ISA's kernels. All pointers are to float32; see simd_impl.h for each contract. */
typedef struct {
    ln_isa isa;
    int lanes;
    int tile_rows;    /* rows (output channels, samples) of the GEMM-like kernels' register tiles */
    int unpool_window; /* the pooled floats one entry of batchnorm's unpool map may span (bn_grad_sums'
                          `up`): the floats its kernels load per vector of places; 0: any */
    int dw_fill;      /* conv2d takes conv_dw when at least dw_fill percent of the lanes of
                         its channel vectors are channels, conv_dw_lanes otherwise */
    /* conv2d data movement: as ln_conv_unfold_c and ln_conv_fold_c (conv_geom.h) */
    void (*conv_unfold)(const ln_conv_geom *g, const float *x, float *rows);
    void (*conv_fold)(const ln_conv_geom *g, const float *drows, float *dx);
    /* conv2d: y (one sample, OC x P) = W * rows + bias, then relu_fwd's ReLU if relu */
    void (*conv_fwd)(const ln_conv_geom *g, const float *w, const float *bias,
                     const float *rows, float *y, int relu);
    /* conv2d: drows += W^T * dy (one sample); dy rows pstride apart, zero-padded to
     * whole vectors; only the nch channels chans[0..nch) (increasing), whose sum over
     * the channels is then the full one's to the bit when the others' dy rows are all
     * +-0 and w is finite (each skipped term is a +-0 added to a sum that starts at +0,
     * and so is never -0) */
    void (*conv_dx)(const ln_conv_geom *g, const float *w, const float *dy, int64_t pstride,
                    const int *chans, int nch, float *drows);
    /* conv_dx with every channel, for one sample whose dy is +-0 but at the listed places
     * (a fused 2x2 max pooling's gradient): position p's terms are entries [start[p],
     * start[p + 1]), channel chan[i] (increasing within a position) with the value val[i].
     * drows gets conv_dx's sums to the bit when the unlisted dy are +-0 and w is finite.
     * scratch: conv_dx_listed_scratch(g) floats */
    void (*conv_dx_listed)(const ln_conv_geom *g, const float *w, const int *start, const int *chan,
                           const float *val, float *scratch, float *drows);
    /* conv2d weight gradient of one sample whose dy is +-0 but at the listed places,
     * channel by channel: channel o's are entries [ostart[o], ostart[o + 1]), position
     * pos[i] (increasing) with the value val[i]: sums[o*ck + k] += val * row_k[pos] in
     * that order, and bsums[o] += val (if bsums); rowst: the sample's unfolded rows
     * position-major (conv_rows_transpose). Sample after sample, each sum gets conv_dw's
     * products in conv_dw's order less those of a +-0 dy: its bits when the rows are
     * finite (a non-finite sample's every place must be listed) */
    void (*conv_dw_listed)(const ln_conv_geom *g, const float *rowst, const int *ostart, const int *pos,
                           const float *val, float *sums, float *bsums);
    /* conv2d: dyt[p*ocp + o] = dy[o*P + p] for one sample, zeros for o in [oc, ocp) */
    void (*conv_dy_transpose)(const ln_conv_geom *g, const float *dy, float *dyt);
    /* conv2d weight gradient of a chunk of ns samples (unfolded rows of sample s at
     * rows + s*rstride; dy transposed, dyt + s*P*ocp, dyt[p*ocp + o] = dy[o][p], zeros
     * for o in [oc, ocp)): sums[k*ocp + o] += sum over the samples, then over p in order,
     * of row_k[p] * dyt[p][o], for o in [o0, o1) (o0 a multiple of lanes), k in [k0, k1);
     * bsums[o] likewise for the bias (if bsums and k0 == 0). first != 0: the sums start
     * from zero (= instead of +=). One chain per (o, k): the ranges do not change any bit,
     * and the lanes of the last vector of channels up to ocp are written too. */
    void (*conv_dw)(const ln_conv_geom *g, int o0, int o1, int64_t k0, int64_t k1, int ns,
                    const float *dyt, const float *rows, int64_t rstride, float *sums, float *bsums,
                    int first);
    /* the same gradient as lane partials (for few channels: no lane is padding), from dy
     * as it is (sample s at dy + s*dstride): part[(o*ck + k)*lanes + l] += sum over samples
     * and p = v*lanes + l of dy[o][p] * row_k[p] for o in [o0, o1) (any o0), k in [k0, k1);
     * bpart[o*lanes + l] likewise; first as above. reduce_lanes then sums the lanes. */
    void (*conv_dw_lanes)(const ln_conv_geom *g, int o0, int o1, int64_t k0, int64_t k1, int ns,
                          const float *dy, int64_t dstride, const float *rows, int64_t rstride,
                          float *part, float *bpart, int first);
    /* conv_dw_lanes for every channel and row, with P == 4 * lanes, but sample s's
     * products only for its nch[s] channels chans[s*oc ..] (increasing): the partials
     * are conv_dw_lanes' to the bit when the others' dy planes are all +-0 and the rows
     * finite (each left-out product a +-0 added to a partial that starts at +0) */
    void (*conv_dw_lanes_some)(const ln_conv_geom *g, int ns, const float *dy, int64_t dstride, const float *rows,
                               int64_t rstride, float *part, float *bpart, int first, const int *chans,
                               const int *nch);
    /* rowst[p*ck + k] = row_k[p]: one sample's unfolded rows, position-major */
    void (*conv_rows_transpose)(const ln_conv_geom *g, const float *rows, float *rowst);
    /* dst[o*dstride + k] += src[k*sstride + o] for k < rows, o < cols (conv_dw's sums
     * into the layer's gradient; one addition per element, so the same bits in any order) */
    void (*transpose_add)(int64_t rows, int cols, const float *src, int64_t sstride, float *dst,
                          int64_t dstride);
    /* out[i] += sum of part[i*lanes .. i*lanes + lanes), fixed order */
    void (*reduce_lanes)(int64_t n, const float *part, float *out);
    /* linear: y = x W^T + b, x: n x in, y: n x out */
    void (*linear_fwd)(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y);
    /* linear: dw = dy^T x and db = column sums of dy (if db) for outputs [o0, o1),
     * written as 0 + the sum (the bits of adding it to zeros);
     * dx = dy W (if dx) for samples [a0, a1) */
    void (*linear_bwd)(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dw, float *db, float *dx, int o0, int o1, int a0, int a1);
    /* relu over n floats: y = x > 0 or NaN ? x : 0;  dx = y > 0 ? dy : 0 */
    void (*relu_fwd)(int64_t n, const float *x, float *y);
    void (*relu_bwd)(int64_t n, const float *y, const float *dy, float *dx);
    /* 2x2 average pooling, stride 2, over `planes` planes of h x w (floor mode), bit for
     * bit pool.c's reference */
    void (*avgpool2_fwd)(int64_t planes, int h, int w, const float *x, float *y);
    void (*avgpool2_bwd)(int64_t planes, int h, int w, const float *dy, float *dx);
    /* max and average pooling with any square window k and stride s (floor mode, no
     * padding) over `planes` planes of h x w, bit for bit pool.c's reference (the max
     * pooling's argmax too) */
    void (*maxpool_fwd)(int64_t planes, int h, int w, int k, int s, const float *x, float *y, int32_t *argmax);
    void (*avgpool_fwd)(int64_t planes, int h, int w, int k, int s, const float *x, float *y);
    /* the average pooling's input gradient, bit for bit the reference's; 0 (dx untouched)
     * for planes too large for its tables, which the caller then takes elsewhere */
    int (*avgpool_bwd_any)(int64_t planes, int h, int w, int k, int s, const float *dy, float *dx);
    /* batchnorm over one run of n floats of a channel (batchnorm.c's fast path):
     * the sum of x; the sum of (x - mean)^2; y = (x - mean) * alpha + beta (the
     * reference's operations: bit for bit); the sums of dy and of dy * xhat with
     * xhat = (x - mean) * invstd; dx = k * (dy - mdy - xhat * mdyx) in training and
     * dy * k otherwise (bit for bit). Sums in float lanes, returned as double; bn_sums
     * and bn_sqdevs take `runs` runs stride floats apart, out[r] each run's as if alone. */
    void (*bn_sums)(int64_t n, int runs, int64_t stride, const float *x, double *out);
    void (*bn_sqdevs)(int64_t n, int runs, int64_t stride, const float *x, float mean, double *out);
    /* An activation that follows the layer may be fused (net.c): act (LN_RELU, LN_TANH,
     * LN_SIGMOID; 0: none) is applied to y in bn_affine (relu_fwd's and squash_fwd's
     * operations); in backward, act (NULL: none) replaces dy by the activation's
     * backward: dy where (x - mean) * alpha + beta > 0 for a ReLU (its output > 0,
     * recomputed instead of read), squash_bwd's formula from act->y (at the places of x)
     * otherwise. bn_grad_sums: `runs` runs of n, run r at x + r stride (act->y likewise,
     * dy at dy + r dstride), its sums in sum_dy[r], sum_dy_xhat[r] (each run's as if
     * alone: bit for bit). up (NULL: none): a fused 2x2 average pooling's unpool map
     * (batchnorm.c) for runs of n = h x w places, dy then holding each run's pooled plane,
     * whose gradient is taken as avgpool2_bwd would spread it, bit for bit. */
    void (*bn_affine)(int64_t n, const float *x, float *y, float mean, float alpha, float beta, int act);
    void (*bn_grad_sums)(int64_t n, int runs, int64_t stride, int64_t dstride, const float *x,
                         const float *dy, const int32_t *up, const ln_bn_act *act, float mean, float invstd,
                         double *sum_dy, double *sum_dy_xhat);
    void (*bn_dx)(int64_t n, const float *x, const float *dy, const int32_t *up, const ln_bn_act *act, float *dx,
                  float mean, float invstd, float k, float mdy, float mdyx, int training);
    /* batchnorm1d over rows of features (runs of one: batchnorm.c), features [0, f) of
     * `batch` rows `stride` floats apart, each feature's sums down its column in sample
     * order and in double and each value's float operations, bit for bit the reference's:
     * bn_feat_sums: out[j] = the sum of x (mean NULL) or of ((double)x - mean[j])^2;
     * bn_feat_affine: y = (x - mean[j]) * alpha[j] + beta[j];
     * bn_feat_grad_sums: the sums of dy and of (double)dy * (double)xhat with xhat =
     * (x - mean[j]) * invstd[j]; bn_feat_dx: dx = k[j] * (dy - mdy[j] - xhat * mdyx[j])
     * in training, dy * k[j] otherwise. A ReLU that follows may be fused (net.c): relu
     * applies relu_fwd's rule to y; in backward, alpha (NULL: none) and beta say where
     * (x - mean) * alpha + beta > 0, recomputed with the forward's operations, and dy is
     * +0 elsewhere (relu_bwd's result) */
    void (*bn_feat_sums)(int batch, int64_t f, int64_t stride, const float *x, const double *mean, double *out);
    void (*bn_feat_affine)(int batch, int64_t f, int64_t stride, const float *x, float *y, const float *mean,
                           const float *alpha, const float *beta, int relu);
    void (*bn_feat_grad_sums)(int batch, int64_t f, int64_t stride, const float *x, const float *dy,
                              const float *mean, const float *invstd, const float *alpha, const float *beta,
                              double *sum_dy, double *sum_dy_xhat);
    void (*bn_feat_dx)(int batch, int64_t f, int64_t stride, const float *x, const float *dy, float *dx,
                       const float *mean, const float *invstd, const float *alpha, const float *beta, const float *k,
                       const float *mdy, const float *mdyx, int training);
    /* tanh or sigmoid (kind LN_TANH / LN_SIGMOID) over n floats, within a few ulp of
     * tanhf and 1/(1+expf(-x)); backward from the saved output, bit for bit the
     * reference's dy*(1-y*y) and dy*y*(1-y) */
    void (*squash_fwd)(int kind, int64_t n, const float *x, float *y);
    void (*squash_bwd)(int kind, int64_t n, const float *y, const float *dy, float *dx);
    /* 2x2 max pooling, stride 2, over `planes` planes of h x w (floor mode); relu != 0
     * applies a ReLU that follows (net.c fuses it); relu_y (NULL: none) is that ReLU's
     * output, and dy is taken where it is > 0, else 0. pre (0: none; LN_TANH, LN_SIGMOID):
     * the activation before the pooling, fused (its values are compared);
     * backward applies its derivative from pre_y, the pooled output (simd_impl.h). */
    void (*maxpool2_fwd)(int64_t planes, int h, int w, const float *x, float *y, int32_t *argmax, int relu,
                         int pre);
    void (*maxpool2_bwd)(int64_t planes, int h, int w, const float *dy, const int32_t *argmax,
                         const float *relu_y, int pre, const float *pre_y, float *dx);
    /* the places of one sample's oc planes of oh x ow (a convolution's output) that a
     * fused 2x2 max pooling (argmax: oc x oh/2 x ow/2) sends a gradient other than +-0
     * (NaN included) to, and that gradient: channel o's places are entries [start[o],
     * start[o + 1]) of pos and val, in increasing position. Window q's gradient is g[q],
     * +0 where relu_y[q] is not > 0 (relu_y NULL: no fused ReLU), times scale[o] (NULL:
     * no fused dropout2d): what maxpool2_bwd then scale_runs put at argmax[q], bit for
     * bit. Returns start[oc]; pos and val take 16 entries past it (whole vectors). */
    int (*pool_places)(int oc, int oh, int ow, const int32_t *argmax, const float *g, const float *relu_y,
                       const float *scale, int *start, int *pos, float *val);
    /* dropout: out[e*span + i] = in[e*span + i] * mask[e] for e < entries, i < span
     * (one product per element: bit for bit dropout.c's loops; out may be in) */
    void (*scale_runs)(int64_t entries, int64_t span, const float *in, const float *mask, float *out);
    /* the largest |x[i]| of n floats, or infinity if one is not finite */
    float (*max_abs)(int64_t n, const float *x);
    /* dropout's keep-scales: mask[i] = (draw i of rng, as ln_rng_uniform) < p ? 0 : scale
     * for i < n, rng left past the n draws (bit for bit dropout.c's loop) */
    void (*dropout_mask)(ln_rng *rng, int64_t n, float p, float scale, float *mask);
    /* optimizers, the same operations in the same order as optim.c's scalar code (no
     * FMA contraction, IEEE sqrt and division), so bit for bit equal to it:
     * buf = buf*mom + keep*g; p = p + neg_lr*buf */
    void (*sgd_momentum)(int64_t n, float *p, const float *g, float *buf, float mom, float keep,
                         float neg_lr);
    void (*adam)(int64_t n, float *p, const float *g, float *m, float *v, const ln_adam_consts *k);
    /* asks for the cache lines of bytes at p, to be written soon: fetched for writing
     * where the ISA's region has PREFETCHW (AVX-512), so that another core's copy is
     * invalidated now rather than at the store; for reading elsewhere. A hint only */
    void (*prefetch_write)(const void *p, int64_t bytes);
} ln_simd_kernels;

/* The kernels of the active ISA (detected on first use). */
const ln_simd_kernels *ln_simd(void);
/* The kernels of one ISA, or NULL if this CPU cannot run it. */
const ln_simd_kernels *ln_simd_for(ln_isa isa);
/* Tests and benchmarks: make `isa` the active one (-1 = back to automatic). Returns the
 * ISA now active. Not thread-safe: call before starting work. */
ln_isa ln_simd_force(int isa);
const char *ln_isa_name(ln_isa isa);

#endif
