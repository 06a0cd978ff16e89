/*
 * conv_geom.h - the geometry of a 2-D convolution as conv2d's fast path lays it out
 * (internal): the unfolded rows, the samples per chunk of the weight gradient and the
 * workspace layout, in one place. conv2d.c owns and defines all of it; the SIMD kernels
 * (simd.h) take an ln_conv_geom and plain pointers, never a layer.
 */
#ifndef LUNET_CONV_GEOM_H
#define LUNET_CONV_GEOM_H

#include "lunet.h"

/* Lanes of the widest vector the SIMD kernels use (simd.h); workspace sizes are computed
 * with it, so that one workspace serves every ISA. */
#define LN_SIMD_MAX_LANES 16
/* n floats rounded up to whole cache lines (64 bytes): scratch whose parts all start on
 * a line, as the allocation does (alloc.c), so that no vector at a row's start splits
 * over two lines */
static inline int64_t ln_whole_lines(int64_t n)
{
    return (n + LN_SIMD_MAX_LANES - 1) / LN_SIMD_MAX_LANES * LN_SIMD_MAX_LANES;
}
/* Floats of slack after every unfolded buffer: full-vector loads may run past a row. */
#define LN_SIMD_SLACK (2 * LN_SIMD_MAX_LANES)

/* Geometry of a convolution as the fast kernels see it.
 *
 * The input of one sample is "unfolded" into rows so that the convolution is a
 * product weight[OC x CK] * rows[CK x P]: row (c, ki, kj) holds, for every output
 * position p = oy*OW + ox, the input pixel that kernel tap (ki, kj) of channel c sees.
 * Row (c, ki, kj) starts at base + (c*k + kj)*rs1 + ki*rs2 and is P floats long.
 *  - stride 1 (shifted): the buffer holds, for each (c, kj), the zero-padded input
 *    shifted left by kj and cropped to OW columns: Hp x OW floats, Hp = H + 2*pad.
 *    Row (c, ki, kj) is that block from its row ki on (rs1 = Hp*OW, rs2 = OW): k
 *    times less memory than im2col, and every row is still contiguous over p.
 *  - stride > 1 (im2col): the buffer holds the k*k*C rows of P floats each, ordered
 *    (c, kj, ki) (rs1 = k*P, rs2 = P).
 */
typedef struct {
    int c, h, w, oc, oh, ow, k, stride, pad;
    int hp;          /* padded input height (shifted layout) */
    int shifted;     /* 1: stride-1 shifted layout, 0: im2col layout */
    int64_t ck, p;   /* C*k*k, OH*OW */
    int64_t rs1, rs2;
    int64_t unf_n;   /* floats of one sample's unfolded input, without slack */
    int64_t ocp;     /* oc rounded up to LN_SIMD_MAX_LANES: floats per position of the
                        transposed dy and per row of the weight-gradient sums */
} ln_conv_geom;

/* The geometry of a conv2d layer as ln_layer_setup left it: spec, input C x H x W and
 * output OC x OH x OW (per sample). */
void ln_conv_geom_of(const ln_layer_spec *spec, const ln_shape *in, const ln_shape *out,
                     ln_conv_geom *g);
/* Samples per chunk of the weight gradient (1 to 8): its register tiles sweep over a
 * whole chunk before going back to memory. */
int ln_conv_chunk(const ln_conv_geom *g);

/* The workspace of the fast conv2d path, carved in this order: */
typedef struct {
    float *rows;  /* chunk * unf: unfolded inputs of a chunk of samples */
    float *drows; /* unf: gradient of one sample's unfolded input */
    float *dypad; /* oc * P rounded up to whole vectors: one sample's dy, zero-padded */
    float *dyt;   /* chunk * P * ocp: dy of a chunk of samples transposed (position-major) */
    float *dym;   /* chunk * OC * P: dy of a chunk of samples through a fused ReLU's
                     derivative (ln_layer.act_y), when there is one */
    float *sums;  /* the weight gradient's sums, then the bias gradient's: transposed
                     ((ck + 1) * ocp, k-major) or as lane partials ((oc*ck + oc) *
                     LN_SIMD_MAX_LANES), as the kernel that computes them lays them out */
    float *rowst;  /* DW_FEW_SAMPLES * P * ck, or nothing (layers with P * ck over
                      ROWST_MAX_FLOATS): the unfolded rows of a small batch transposed
                      (position-major), for the weight gradient along the rows (conv2d.c) */
    /* The listed gradients' (conv2d.c, after a fused max pooling; the parts are empty in
     * layers that never take them): */
    float *dxl;    /* ln_conv_dx_listed_scratch(g): conv_dx_listed's sums (simd.h), or one
                      sample's unfolded rows position-major for conv_dw_listed */
    int *dxl_start; /* P + 1: where each position's terms start in the lists below */
    int *dxl_chan;  /* oc * (OH/2) * (OW/2), a pooling window's maximum each: its channel */
    float *dxl_val; /* likewise: its dy */
    int *dwl_start; /* oc + 1, dwl_pos and dwl_val oc * P: conv_dw_listed's lists of one
                       sample's places, channel by channel (every place of a sample whose
                       input is not finite) */
    int *dwl_pos;
    float *dwl_val;
    int *chans;    /* chunk * (oc + 1): the channels each sample of a chunk takes, and
                      their counts (conv2d.c: dw_channels, nonzero_channels, kept_channels) */
    float *wsub;   /* oc*ck + 3*oc: the weights, biases and dropout scales of the channels
                      a sample's output takes, and every channel's weight bound
                      (conv2d.c, forward_samples) */
    float *groups; /* (DW_GROUPS_MAX - 1) * (oc*ck + oc): the weight and bias gradients of
                      the second and later groups of samples (conv2d.c), in the first
                      thread's workspace */
    int64_t unf;  /* floats per unfolded sample: unf_n + LN_SIMD_SLACK */
} ln_conv_ws;

/* Floats of conv_dx_listed's scratch (simd.h): a block of up to 8 vectors of rows of one
 * sample's sums, position-major, then all of its sums transposed (rows of positions
 * rounded up to whole vectors), for the widest ISA */
static inline int64_t ln_conv_dx_listed_scratch(const ln_conv_geom *g)
{
    const int64_t l = LN_SIMD_MAX_LANES, pp = (g->p + l - 1) / l * l;
    return g->p * 8 * l + g->ck * pp;
}
/* Floats of that workspace. */
int64_t ln_conv_workspace(const ln_conv_geom *g);
/* The parts of the workspace at ws (ln_conv_workspace(g) floats). */
ln_conv_ws ln_conv_ws_of(const ln_conv_geom *g, float *ws);

/* Unfolding, in plain C for any geometry (the kernels' versions vectorise the stride-1
 * cases and call these for the rest). rows must hold g->unf_n + LN_SIMD_SLACK floats. */
void ln_conv_unfold_c(const ln_conv_geom *g, const float *x, float *rows);
/* The adjoint of unfolding: dx (one sample, overwritten) from d(rows). */
void ln_conv_fold_c(const ln_conv_geom *g, const float *drows, float *dx);

#endif
