/*
 * simd_impl.h - the fast kernels, written once against a vector vocabulary and
 * compiled once per ISA by core/simd.c (do not include it anywhere else):
 *   #include "simd_avx2_begin.h"   (or simd_generic_begin.h, simd_avx512_begin.h)
 *   #include "simd_impl.h"         defines the ISA's kernels and SFX(kernels), its table
 *   #include "simd_end.h"          undefines the vocabulary, closes the target region
 *
 * The contract: each begin header defines every one of these (a missing one is a
 * compile error below), and simd_end.h undefines every one.
 *   SIMD_TARGET_REGION  1 if the header opened a `#pragma GCC target` region, else 0
 *   SIMD_ISA        the ln_isa value of the table
 *   vf, vi          vector of VL floats / VL int32 (GCC vector extensions, so that
 *                   +, *, comparisons and casts between them work on every ISA)
 *   VL              lanes
 *   SFX(name)       name with the ISA's suffix
 *   V_LOADU(p), V_STOREU(p, v)        unaligned load and store of VL floats
 *   V_SET1(x), V_ZERO()               broadcast, zeros
 *   V_ADD(a, b), V_MUL(a, b), V_DIV(a, b), V_SQRT(a)   lane by lane, IEEE rounding
 *   V_FMA(a, b, c)  a*b + c (fused where the ISA has FMA)
 *   V_LOADU_N(p, n), V_STOREU_N(p, v, n)   first n lanes (0 < n <= VL), zeros beyond;
 *                                          only those lanes of p are touched
 *   V_HSUM(v)       sum of the lanes, in a fixed order
 *   V_HAS_REDUCE16  1 if V_REDUCE16(part, out) is defined: out[i] += sum of the lanes of
 *                   part[i*VL ..], for i < 16, in a fixed order (0: V_HSUM one by one)
 *   V_LOADU_LANES(p, l0, l1)     lanes [l0, l1) from p + lane, zeros elsewhere; p + lane
 *                                is only dereferenced for those lanes
 *   V_LMASK, V_LMASK_MAKE(l0, l1), V_LOADU_LMASK(p, m)   the same as V_LOADU_LANES with
 *                                a lane mask made once
 *   V_COPY8(d, s, n)             d[0..n) = s[0..n), n <= 8; may write d[n..8) (garbage)
 *   V_PREFETCH_W(p)  asks for p's cache line, to be written (a hint: never faults)
 *   V_HAS_PREFETCH_W 1 if V_PREFETCH_W fetches the line for writing (PREFETCHW), 0 if
 *                    it is a prefetch for reading or nothing
 *   TM, TN          register tile of the GEMM-like kernels: TM rows x TN vectors
 *                   (TM <= 6, TN <= 4)
 *   DW_TN           unfolded rows per tile of the conv2d lane-partial weight gradient
 *                   (<= TN; its tile also holds DW_TN row vectors and one dy vector)
 *   DW_TM(nr)       unfolded rows per tile of the conv2d transposed weight gradient whose
 *                   tile is nr vectors of channels wide (<= 6; its tile also holds nr dy
 *                   vectors and a broadcast)
 *   SIMD_M256       1 if the region has the AVX2 intrinsics on __m256 (x86), else 0
 *   DW_FILL         the transposed weight gradient is used when at least DW_FILL percent
 *                   of its lanes are channels (the rest are padding), the lane partials
 *                   otherwise
 *   LIN_N           samples per tile of linear forward
 *   CONV_WIDE_CK    0, or the reduction length (ck) from which conv_fwd takes TMAX_M x
 *                   TMAX_N tiles for channel counts that TM does not divide
 *   SIMD_MAXPOOL    which twin of the 2x2 max pooling kernels to compile (they use the
 *                   ISA's own intrinsics): SIMD_MAXPOOL_SCALAR (plain C, any vector
 *                   width), SIMD_MAXPOOL_AVX2 (AVX2 intrinsics) or
 *                   SIMD_MAXPOOL_AVX512
 *
 * Every kernel is a loop nest over tiles of TM x TN accumulators that stay in registers
 * for the whole reduction; the reduction order depends only on the shapes.
 */

#if !defined(SIMD_TARGET_REGION) || !defined(SIMD_ISA) || !defined(vf) || !defined(vi) || \
    !defined(VL) || !defined(SFX)
#error "simd_impl.h: the ISA header must define SIMD_TARGET_REGION, SIMD_ISA, vf, vi, VL, SFX"
#endif
#if !defined(V_LOADU) || !defined(V_STOREU) || !defined(V_SET1) || !defined(V_ZERO) || \
    !defined(V_ADD) || !defined(V_MUL) || !defined(V_DIV) || !defined(V_SQRT) || !defined(V_FMA)
#error "simd_impl.h: the ISA header must define V_LOADU, V_STOREU, V_SET1, V_ZERO, V_ADD, V_MUL, V_DIV, V_SQRT, V_FMA"
#endif
#if !defined(V_LOADU_N) || !defined(V_STOREU_N) || !defined(V_HSUM) || !defined(V_HAS_REDUCE16) || \
    (V_HAS_REDUCE16 && !defined(V_REDUCE16))
#error "simd_impl.h: the ISA header must define V_LOADU_N, V_STOREU_N, V_HSUM, V_HAS_REDUCE16 (and V_REDUCE16 if 1)"
#endif
#if !defined(V_LOADU_LANES) || !defined(V_LMASK) || !defined(V_LMASK_MAKE) || \
    !defined(V_LOADU_LMASK) || !defined(V_COPY8)
#error "simd_impl.h: the ISA header must define V_LOADU_LANES, V_LMASK, V_LMASK_MAKE, V_LOADU_LMASK, V_COPY8"
#endif
#if !defined(TM) || !defined(TN) || !defined(DW_TN) || !defined(DW_TM) || !defined(DW_FILL) || \
    !defined(SIMD_M256) || !defined(LIN_N) || !defined(SIMD_MAXPOOL) || !defined(CONV_WIDE_CK)
#error "simd_impl.h: the ISA header must define TM, TN, DW_TN, DW_TM, DW_FILL, SIMD_M256, LIN_N, SIMD_MAXPOOL, CONV_WIDE_CK"
#endif

/* the values of SIMD_MAXPOOL */
#define SIMD_MAXPOOL_SCALAR 0
#define SIMD_MAXPOOL_AVX2 1
#define SIMD_MAXPOOL_AVX512 2

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Calls fn(M, N, ...) with M = mr and N = nr as compile-time constants, so that the
 * tile's loops unroll and its accumulators live in registers. Only M <= TM, N <= TN. */
#define TCASE(fn, LM, LN, M, N, ...)                         \
    case (M)*8 + (N):                                        \
        if ((M) <= (LM) && (N) <= (LN)) fn(M, N, __VA_ARGS__); \
        break;
#define TROW(fn, LM, LN, M, ...)                                           \
    TCASE(fn, LM, LN, M, 1, __VA_ARGS__) TCASE(fn, LM, LN, M, 2, __VA_ARGS__) \
    TCASE(fn, LM, LN, M, 3, __VA_ARGS__) TCASE(fn, LM, LN, M, 4, __VA_ARGS__)
/* mr <= LM <= 6 rows, nr <= LN <= 4 vectors */
#define TILE_SWITCH_LIM(fn, LM, LN, mr, nr, ...)                          \
    switch ((mr) * 8 + (nr)) {                                            \
        TROW(fn, LM, LN, 1, __VA_ARGS__) TROW(fn, LM, LN, 2, __VA_ARGS__) \
        TROW(fn, LM, LN, 3, __VA_ARGS__) TROW(fn, LM, LN, 4, __VA_ARGS__) \
        TROW(fn, LM, LN, 5, __VA_ARGS__) TROW(fn, LM, LN, 6, __VA_ARGS__) \
    default: break;                                                       \
    }
#define TILE_SWITCH(fn, mr, nr, ...) TILE_SWITCH_LIM(fn, TM, TN, mr, nr, __VA_ARGS__)

#define TMAX_M 6
#define TMAX_N 4
#if TM > TMAX_M || TN > TMAX_N || DW_TN > TN || DW_TM(1) > TMAX_M || DW_TM(TN) > TMAX_M
#error "simd_impl.h: tiles are at most TMAX_M x TMAX_N, and DW_TN <= TN"
#endif

/* ================================================================== conv2d */

/* The ReLU's rule, wherever one is applied (relu_fwd, and the ReLUs fused into conv2d
 * and batchnorm): v where v > 0 or v is NaN (NaN passes, as in PyTorch), +0 elsewhere */
ALWAYS_INLINE vf SFX(relu_of)(vf v) { return (vf)((vi)v & ((v > V_ZERO()) | (v != v))); }

/* Its backward: g where the ReLU's input (or output) v is > 0, +0 elsewhere (NaN: +0) */
ALWAYS_INLINE vf SFX(relu_grad_at)(vf g, vf v) { return (vf)((vi)g & (v > V_ZERO())); }

/* Copies n floats (n >= 1) with whole-vector stores that may write up to VL - 1 floats
 * of garbage after d[n): only for buffers filled in increasing address order, where
 * the garbage is overwritten next (or lands in the buffer's slack). Reads are exact. */
ALWAYS_INLINE void SFX(copy_spill)(float *d, const float *src, int n)
{
    if (n <= 8) {
        V_COPY8(d, src, n);
        return;
    }
    int i = 0;
    for (; i + VL <= n; i += VL) V_STOREU(d + i, V_LOADU(src + i));
    if (n - i == 8) /* plain (the study's conv1, 24 wide, on AVX-512): no lane mask */
        memcpy(d + i, src + i, 8 * sizeof(float));
    else if (i < n)
        V_STOREU(d + i, V_LOADU_N(src + i, n - i));
}

#if SIMD_M256
/* the even and odd lanes of the 16 floats a:b, in order (2x2 pooling's columns) */
static inline void SFX(deinterleave)(__m256 a, __m256 b, __m256 *even, __m256 *odd)
{
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}
#endif

#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512 || SIMD_MAXPOOL == SIMD_MAXPOOL_AVX2
/* The even places of a then b (2 VL floats, loaded): one permutation on AVX-512;
 * deinterleave's even half on AVX2. (The strided convolutions' unfolding and the
 * stride-2 poolings.) */
ALWAYS_INLINE vf SFX(even_of)(vf a, vf b)
{
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return (vf)_mm512_permutex2var_ps((__m512)a, even, (__m512)b);
#else
    __m256 even, odd;
    SFX(deinterleave)((__m256)a, (__m256)b, &even, &odd);
    return (vf)even;
#endif
}

#define IM2COL_S2 1 /* the stride-2 unfolding and folding below (their C twins otherwise) */
/* The columns ox of an output row whose input column ox*s + kj - pad is inside x
 * (0 <= it < w): [*lo, *hi) */
ALWAYS_INLINE void SFX(inside_columns)(const ln_conv_geom *g, int kj, int *lo, int *hi)
{
    const int s = g->stride, a = g->pad - kj, b = g->w - 1 + g->pad - kj;
    *lo = a > 0 ? (a + s - 1) / s : 0;
    *hi = b >= 0 ? b / s + 1 : 0;
    if (*hi > g->ow) *hi = g->ow;
    if (*lo > *hi) *lo = *hi;
}

/* Vectors of an output row, times k, that the stride-2 kernels below keep lane masks for */
#define IM2COL_MASKS 64

/* The im2col rows (stride > 1) of ln_conv_unfold_c with stride 2: row (c, kj, ki)'s
 * output row oy holds x's row oy*2 + ki - pad at columns ox*2 + kj - pad, 0 outside x.
 * A vector of them is the even places of two masked loads of the row, the masks made
 * once per kj and vector (only columns inside x are read), where the reference tests
 * every column. Rows are written in increasing address order, so a row's last vector
 * may spill into the next (the last one into the slack). 0 (nothing written) for rows
 * too long for the masks. */
static int SFX(unfold_im2col_s2)(const ln_conv_geom *g, const float *x, float *rows)
{
    const int k = g->k, pad = g->pad, h = g->h, w = g->w, ow = g->ow;
    const int nv = (ow + VL - 1) / VL;
    if (k * nv > IM2COL_MASKS) return 0;
    /* lanes [l0, l1) of vector v inside x: places [2 l0, 2 l1 - 1) of its two loads */
    V_LMASK ma[IM2COL_MASKS], mb[IM2COL_MASKS];
    for (int kj = 0; kj < k; kj++) {
        int lo, hi;
        SFX(inside_columns)(g, kj, &lo, &hi);
        for (int v = 0; v < nv; v++) {
            const int l0 = lo - v * VL > 0 ? lo - v * VL : 0, l1 = hi - v * VL < VL ? hi - v * VL : VL;
            const int a0 = 2 * l0, a1 = 2 * l1 - 1 < VL ? 2 * l1 - 1 : VL;
            const int b0 = 2 * l0 - VL > 0 ? 2 * l0 - VL : 0, b1 = 2 * l1 - 1 - VL;
            ma[kj * nv + v] = V_LMASK_MAKE(a0 < a1 ? a0 : 0, a0 < a1 ? a1 : 0);
            mb[kj * nv + v] = V_LMASK_MAKE(b0 < b1 ? b0 : 0, b0 < b1 ? b1 : 0);
        }
    }
    float *dst = rows;
    if (2 * ow == VL) {
        /* output rows of half a vector (32x16x16 -> 8x8 on AVX-512): two a vector, the
         * even places of one load of each of their input rows, two apart (a vector a
         * row took 3.8-5.4 us a sample there) */
        for (int c = 0; c < g->c; c++)
            for (int kj = 0; kj < k; kj++)
                for (int ki = 0; ki < k; ki++, dst += g->p)
                    for (int oy = 0; oy < g->oh; oy += 2) {
                        const int sy = oy * 2 + ki - pad;
                        const float *src = x + ((int64_t)c * h + sy) * w + kj - pad;
                        const vf a = sy >= 0 && sy < h ? V_LOADU_LMASK(src, ma[kj]) : V_ZERO();
                        const vf b = oy + 1 < g->oh && sy + 2 >= 0 && sy + 2 < h ? V_LOADU_LMASK(src + 2 * w, ma[kj])
                                                                                : V_ZERO();
                        V_STOREU(dst + oy * ow, SFX(even_of)(a, b)); /* an odd last row: spills */
                    }
        return 1;
    }
    for (int c = 0; c < g->c; c++)
        for (int kj = 0; kj < k; kj++)
            for (int ki = 0; ki < k; ki++)
                for (int oy = 0; oy < g->oh; oy++, dst += ow) {
                    const int sy = oy * 2 + ki - pad;
                    if (sy < 0 || sy >= h) {
                        for (int v = 0; v < nv; v++) V_STOREU(dst + v * VL, V_ZERO());
                        continue;
                    }
                    const float *src = x + ((int64_t)c * h + sy) * w + kj - pad;
                    for (int v = 0; v < nv; v++)
                        V_STOREU(dst + v * VL, SFX(even_of)(V_LOADU_LMASK(src + 2 * v * VL, ma[kj * nv + v]),
                                                            V_LOADU_LMASK(src + 2 * v * VL + VL, mb[kj * nv + v])));
                }
    return 1;
}

#else
#define IM2COL_S2 0
#endif

/* ln_conv_unfold for the shifted (stride 1) layout; im2col goes to unfold_im2col_s2 or C.
 * The buffer is written row after row in increasing address order, so each row can
 * be one spilling copy; the zero columns of padded rows are written after the copy. */
static void SFX(conv_unfold)(const ln_conv_geom *g, const float *x, float *rows)
{
    if (!g->shifted) {
#if IM2COL_S2
        if (g->stride == 2 && SFX(unfold_im2col_s2)(g, x, rows)) return;
#endif
        ln_conv_unfold_c(g, x, rows);
        return;
    }
    const int k = g->k, pad = g->pad, h = g->h, w = g->w, ow = g->ow;
    if (pad == 0) { /* every row is a plain copy of OW floats */
        for (int c = 0; c < g->c; c++)
            for (int kj = 0; kj < k; kj++) {
                float *dst = rows + (int64_t)(c * k + kj) * g->rs1;
                const float *src = x + (int64_t)c * h * w + kj;
                if (ow == 8) { /* a plain copy (the study's conv2): no lane mask to apply */
                    int iy = 0;
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
                    /* two rows, contiguous in the buffer, per 64-byte store */
                    for (; iy + 2 <= h; iy += 2, dst += 2 * ow, src += 2 * w)
                        _mm512_storeu_si512(dst, _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)src)),
                                                                    _mm256_loadu_si256((const __m256i *)(src + w)), 1));
#endif
                    for (; iy < h; iy++, dst += ow, src += w) memcpy(dst, src, 8 * sizeof(float));
                }
                else if (ow < 8)
                    for (int iy = 0; iy < h; iy++, dst += ow, src += w) V_COPY8(dst, src, ow);
                else {
                    int iy = 0;
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
                    /* 24 wide (the study's conv1): two rows, 48 contiguous floats in the
                     * buffer, by three 64-byte stores */
                    for (; ow == 24 && iy + 2 <= h; iy += 2, dst += 2 * ow, src += 2 * w) {
                        const __m512 a = _mm512_loadu_ps(src), b = _mm512_loadu_ps(src + w + 8);
                        const __m512 mid = _mm512_castsi512_ps(_mm512_inserti64x4(
                            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(src + 16))),
                            _mm256_loadu_si256((const __m256i *)(src + w)), 1));
                        _mm512_storeu_ps(dst, a);
                        _mm512_storeu_ps(dst + 16, mid);
                        _mm512_storeu_ps(dst + 32, b);
                    }
#endif
                    for (; iy < h; iy++, dst += ow, src += w) SFX(copy_spill)(dst, src, ow);
                }
            }
        return;
    }
    const int nvx = (ow + VL - 1) / VL;
    if (k * nvx <= 64) {
        /* padded rows as whole vectors: lane l of vector column x0 holds input column
         * x0 + l + kj - pad when that is inside the input (a lane mask made once per
         * (kj, x0)), zero otherwise; the last vector of a row spills into the next row,
         * which is written after it (the last one into the slack) */
        V_LMASK mask[64];
        for (int kj = 0; kj < k; kj++)
            for (int v = 0; v < nvx; v++) {
                int l0 = pad - kj - v * VL, l1 = w + pad - kj - v * VL;
                if (l0 < 0) l0 = 0;
                if (l0 > VL) l0 = VL;
                if (l1 > VL) l1 = VL;
                if (l1 < l0) l1 = l0;
                mask[kj * nvx + v] = V_LMASK_MAKE(l0, l1);
            }
        if (nvx == 1) {
            /* one vector a row (the custom net's conv2, 14 wide): the loop over a row's
             * vectors gone, a kernel column's mask held for its rows and the padding's
             * zero rows in loops of their own (the loop below took 1.1-2.2 us a sample
             * there, this 0.6-0.8) */
            const int hp = g->hp;
            float *dst = rows;
            for (int c = 0; c < g->c; c++)
                for (int kj = 0; kj < k; kj++) {
                    const V_LMASK m = mask[kj];
                    const float *src = x + (int64_t)c * h * w + kj - pad;
                    int iy = 0;
                    for (; iy < pad && iy < hp; iy++, dst += ow) V_STOREU(dst, V_ZERO());
                    for (; iy < hp && iy - pad < h; iy++, dst += ow)
                        V_STOREU(dst, V_LOADU_LMASK(src + (int64_t)(iy - pad) * w, m));
                    for (; iy < hp; iy++, dst += ow) V_STOREU(dst, V_ZERO());
                }
            return;
        }
        float *dst = rows;
        for (int c = 0; c < g->c; c++)
            for (int kj = 0; kj < k; kj++) {
                const V_LMASK *m = mask + kj * nvx;
                for (int iy = 0; iy < g->hp; iy++, dst += ow) {
                    const int sy = iy - pad;
                    if (sy < 0 || sy >= h) {
                        for (int v = 0; v < nvx; v++) V_STOREU(dst + v * VL, V_ZERO());
                        continue;
                    }
                    const float *src = x + ((int64_t)c * h + sy) * w + kj - pad;
                    for (int v = 0; v < nvx; v++) V_STOREU(dst + v * VL, V_LOADU_LMASK(src + v * VL, m[v]));
                }
            }
        return;
    }
    for (int c = 0; c < g->c; c++)
        for (int kj = 0; kj < k; kj++) {
            /* columns ox with 0 <= ox + kj - pad < w */
            const int lo = pad - kj > 0 ? pad - kj : 0;
            const int hi = w + pad - kj < ow ? w + pad - kj : ow;
            float *dst = rows + (int64_t)(c * k + kj) * g->rs1;
            for (int iy = 0; iy < g->hp; iy++, dst += ow) {
                const int sy = iy - pad;
                if (sy < 0 || sy >= h || hi <= lo) {
                    for (int ox = 0; ox < ow; ox++) dst[ox] = 0.0f;
                    continue;
                }
                const float *src = x + ((int64_t)c * h + sy) * w + kj - pad;
                SFX(copy_spill)(dst + lo, src + lo, hi - lo);
                for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                for (int ox = hi; ox < ow; ox++) dst[ox] = 0.0f;
            }
        }
}

#if IM2COL_S2
/* ln_conv_fold_c for the im2col rows of stride 2, gathered: each input row takes its
 * terms in the reference's order, kj then ki, from +0, a vector at a time in registers,
 * instead of the reference's sweeps over the whole input per (kj, ki) behind a memset.
 * The output rows that reach input row sy, (ki, oy) with oy*2 + ki - pad = sy, are
 * listed once per sy; the columns, once per kj and vector. A vector of the row takes,
 * for each (kj, ki), the output row's values in every other lane (the lanes whose
 * column ox*2 + kj - pad is theirs) and +0 in the others: a sum that starts from +0 is
 * never -0, and adding +0 to it changes no bit, so these are the reference's sums bit
 * for bit. 0 (nothing written) for kernels or rows too large for its tables. */

/* v's first VL/2 lanes in lanes lp, lp + 2, ... (lp: 0 or 1), +0 in the others */
ALWAYS_INLINE vf SFX(spread_lanes)(vf v, int lp)
{
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    const __m512i half = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    return (vf)_mm512_maskz_permutexvar_ps(lp ? 0xAAAA : 0x5555, half, (__m512)v);
#else
    const __m256i half = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256 keep = _mm256_castsi256_ps(lp ? _mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1)
                                                : _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0));
    return (vf)_mm256_and_ps(_mm256_permutevar8x32_ps((__m256)v, half), keep);
#endif
}

/* Kernel sizes the fold's per-row lists hold */
#define IM2COL_MAX_K 32

static int SFX(fold_im2col_s2)(const ln_conv_geom *g, const float *drows, float *dx)
{
    const int k = g->k, pad = g->pad, h = g->h, w = g->w, ow = g->ow, oh = g->oh;
    const int nv = (w + VL - 1) / VL;
    if (k > IM2COL_MAX_K || k * nv > IM2COL_MASKS) return 0;
    /* for each (kj, vector): lane l's column (q + l) / 2 when q + l is even (lp: the
     * first such lane), output columns ox0 + i for i in [i0, i1) inside [0, ow) */
    V_LMASK m[IM2COL_MASKS];
    int ox0[IM2COL_MASKS], lp[IM2COL_MASKS], any[IM2COL_MASKS];
    for (int kj = 0; kj < k; kj++)
        for (int v = 0; v < nv; v++) {
            const int e = kj * nv + v, q = v * VL + pad - kj;
            lp[e] = q & 1;
            ox0[e] = (q + lp[e]) >> 1;
            const int i0 = ox0[e] < 0 ? -ox0[e] : 0, i1 = ow - ox0[e] < VL / 2 ? ow - ox0[e] : VL / 2;
            any[e] = i1 > i0;
            m[e] = V_LMASK_MAKE(any[e] ? i0 : 0, any[e] ? i1 : 0);
        }
    for (int sy = 0; sy < h; sy++) {
        /* the output rows that reach input row sy, in the order of their kernel rows ki:
         * their offsets in a (c, kj) block of rows */
        int n = 0;
        int64_t at[IM2COL_MAX_K];
        for (int ki = 0; ki < k; ki++) {
            const int t = sy + pad - ki;
            if (t < 0 || (t & 1) || t / 2 >= oh) continue;
            at[n++] = (int64_t)ki * g->rs2 + (int64_t)(t / 2) * ow;
        }
        for (int c = 0; c < g->c; c++) {
            float *out = dx + ((int64_t)c * h + sy) * w;
            const float *blk = drows + (int64_t)c * k * g->rs1;
            for (int v = 0; v < nv; v++) {
                vf acc = V_ZERO();
                for (int kj = 0; kj < k; kj++) {
                    const int e = kj * nv + v;
                    if (!any[e]) continue;
                    const float *col = blk + (int64_t)kj * g->rs1 + ox0[e];
                    for (int r = 0; r < n; r++)
                        acc = V_ADD(acc, SFX(spread_lanes)(V_LOADU_LMASK(col + at[r], m[e]), lp[e]));
                }
                if (w - v * VL >= VL)
                    V_STOREU(out + v * VL, acc);
                else
                    V_STOREU_N(out + v * VL, acc, w - v * VL);
            }
        }
    }
    return 1;
}
#endif

/* ln_conv_fold for the shifted layout: dx[c][sy][sx] = sum over kj (in order) of
 * drows(c, kj)[sy + pad][sx - kj + pad], a vector of sx at a time in registers. The
 * lane masks depend only on (sx0, kj): they are made once per vector column. */
static void SFX(conv_fold)(const ln_conv_geom *g, const float *drows, float *dx)
{
    if (!g->shifted) {
#if IM2COL_S2
        if (g->stride == 2 && SFX(fold_im2col_s2)(g, drows, dx)) return;
#endif
        ln_conv_fold_c(g, drows, dx);
        return;
    }
    if (g->k > 16) {
        ln_conv_fold_c(g, drows, dx);
        return;
    }
    const int k = g->k, pad = g->pad, h = g->h, w = g->w, ow = g->ow;
    const int64_t end = (int64_t)g->c * h * w;
    for (int sx0 = 0; sx0 < w; sx0 += VL) {
        V_LMASK mask[16];
        int64_t off[16];
        int nk = 0;
        for (int kj = 0; kj < k; kj++) {
            /* lanes l with 0 <= sx0 + l - kj + pad < ow (and sx0 + l < w) */
            int l0 = kj - pad - sx0, l1 = ow + kj - pad - sx0;
            if (l0 < 0) l0 = 0;
            if (l1 > VL) l1 = VL;
            if (l1 > w - sx0) l1 = w - sx0;
            if (l0 >= l1) continue;
            mask[nk] = V_LMASK_MAKE(l0, l1);
            off[nk] = (int64_t)kj * g->rs1 + (sx0 - kj + pad);
            nk++;
        }
        const int n = w - sx0 < VL ? w - sx0 : VL;
        for (int c = 0; c < g->c; c++) {
            const float *blk = drows + (int64_t)c * k * g->rs1;
            float *out = dx + (int64_t)c * h * w + sx0;
            int sy = 0;
            /* two rows at a time: their chains of nk adds interleave */
            for (; sy + 2 <= h && (n == VL || (sx0 == 0 && (out - dx) + w + VL <= end)); sy += 2, out += 2 * w) {
                const float *row = blk + (int64_t)(sy + pad) * ow;
                vf acc0 = V_ZERO(), acc1 = V_ZERO();
                for (int q = 0; q < nk; q++) {
                    acc0 = V_ADD(acc0, V_LOADU_LMASK(row + off[q], mask[q]));
                    acc1 = V_ADD(acc1, V_LOADU_LMASK(row + ow + off[q], mask[q]));
                }
                V_STOREU(out, acc0);
                V_STOREU(out + w, acc1);
            }
            for (; sy < h; sy++, out += w) {
                const float *row = blk + (int64_t)(sy + pad) * ow;
                vf acc = V_ZERO();
                for (int q = 0; q < nk; q++) acc = V_ADD(acc, V_LOADU_LMASK(row + off[q], mask[q]));
                /* a row in one vector: a full store spills into the next row, which is
                 * written after this one; otherwise the last vector is masked */
                if (n == VL || (sx0 == 0 && (out - dx) + VL <= end))
                    V_STOREU(out, acc);
                else
                    V_STOREU_N(out, acc, n);
            }
        }
    }
}

/* Offsets of the unfolded rows k0, k0 + 1, ... (n of them) given the position (c, ki, kj)
 * of row k0, which is advanced past them: no divisions in the tile loops. */
ALWAYS_INLINE void SFX(row_offsets)(const ln_conv_geom *g, int pos[3], int n, int64_t *off)
{
    for (int i = 0; i < n; i++) {
        off[i] = (int64_t)(pos[0] * g->k + pos[2]) * g->rs1 + pos[1] * g->rs2;
        if (++pos[2] == g->k) {
            pos[2] = 0;
            if (++pos[1] == g->k) {
                pos[1] = 0;
                pos[0]++;
            }
        }
    }
}

/* y[m][p0 + ...] = bias[m] + sum_k w[m*ck + k] * row_k[p0 + ...] for MR rows and NR
 * vectors, then a ReLU if relu (relu_fwd's operations); the last vector keeps `last`
 * lanes. rows/y point at p0 already. */
ALWAYS_INLINE void SFX(conv_fwd_tile)(const int MR, const int NR, const ln_conv_geom *g,
                                      const float *w, const float *bias, const float *rows,
                                      float *y, int last, int relu)
{
    vf acc[TMAX_M][TMAX_N];
    for (int m = 0; m < MR; m++) {
        const vf b = V_SET1(bias ? bias[m] : 0.0f);
        for (int j = 0; j < NR; j++) acc[m][j] = b;
    }
    const int k = g->k;
    const int64_t ck = g->ck, rs1 = g->rs1, rs2 = g->rs2;
    const float *wk = w;
    for (int c = 0; c < g->c; c++)
        for (int ki = 0; ki < k; ki++) {
            const float *r = rows + (int64_t)c * k * rs1 + ki * rs2;
            for (int kj = 0; kj < k; kj++, r += rs1, wk++) {
                vf xv[TMAX_N];
                for (int j = 0; j < NR; j++) xv[j] = V_LOADU(r + j * VL);
                for (int m = 0; m < MR; m++) {
                    const vf wv = V_SET1(wk[m * ck]);
                    for (int j = 0; j < NR; j++) acc[m][j] = V_FMA(wv, xv[j], acc[m][j]);
                }
            }
        }
    const int64_t P = g->p;
    if (relu)
        for (int m = 0; m < MR; m++)
            for (int j = 0; j < NR; j++) acc[m][j] = SFX(relu_of)(acc[m][j]);
    for (int m = 0; m < MR; m++) {
        for (int j = 0; j < NR - 1; j++) V_STOREU(y + m * P + j * VL, acc[m][j]);
        if (last == VL)
            V_STOREU(y + m * P + (NR - 1) * VL, acc[m][NR - 1]);
        else
            V_STOREU_N(y + m * P + (NR - 1) * VL, acc[m][NR - 1], last);
    }
}

/* The widest a taller tile of conv_fwd gets (TM + 1 rows or more, TM x TN chains at most) */
#define CONV_TALL_TN (TM * TN / (TM + 1) < TN ? TM * TN / (TM + 1) : TN)

static void SFX(conv_fwd)(const ln_conv_geom *g, const float *w, const float *bias,
                          const float *rows, float *y, int relu)
{
    const int64_t P = g->p, nvec = (P + VL - 1) / VL;
    const int tail = (int)(P - (nvec - 1) * VL);
    /* Rows per tile: TM, unless the channels are not a multiple of it and are one of a
     * taller tile (up to TMAX_M rows, as many accumulators as TM x TN at most, at least
     * 2 vectors wide): the study's first layer, 10 channels, takes 2 tiles of 5 x 2
     * rather than 4 + 4 + 2, whose 2 x 3 tile has too few accumulator chains to hide the
     * FMA latency. (Each output is one sum whatever the tiles: the same bits.) */
    int tm = TM, tn = TN, wide = 0;
    if (CONV_WIDE_CK && g->oc % TM && g->ck >= CONV_WIDE_CK) {
        tm = TMAX_M;
        tn = TMAX_N;
        wide = 1;
    }
    for (int m = TM + 1; !wide && g->oc % TM && m <= TMAX_M; m++)
        if (g->oc % m == 0 && TM * TN / m >= 2) {
            tm = m;
            tn = TM * TN / m < TN ? TM * TN / m : TN;
            break;
        }
    /* The rows and the vectors in tiles as even as they can be (custom conv2, 32 channels
     * by 13 vectors: 5,5,5,5,4,4,4 by 4,3,3,3 rather than 5 x 6 + 2 by 4,4,4,1, whose
     * narrow tiles had too few chains to hide the FMA latency) */
    const int mt = (g->oc + tm - 1) / tm;
    const int64_t nt = (nvec + tn - 1) / tn;
    int o0 = 0;
    for (int ti = 0; ti < mt; ti++) {
        const int mr = g->oc / mt + (ti < g->oc % mt);
        int64_t v0 = 0;
        for (int64_t tj = 0; tj < nt; tj++) {
            const int nr = (int)(nvec / nt + (tj < nvec % nt));
            const int last = v0 + nr == nvec ? tail : VL;
#if CONV_WIDE_CK
            if (wide)
                TILE_SWITCH_LIM(SFX(conv_fwd_tile), TMAX_M, TMAX_N, mr, nr, g, w + o0 * g->ck,
                                bias ? bias + o0 : NULL, rows + v0 * VL, y + o0 * P + v0 * VL, last, relu)
            else
#endif
            if (tm <= TM)
                TILE_SWITCH(SFX(conv_fwd_tile), mr, nr, g, w + o0 * g->ck, bias ? bias + o0 : NULL,
                            rows + v0 * VL, y + o0 * P + v0 * VL, last, relu)
            else /* a taller tile is at most CONV_TALL_TN vectors wide: no others compiled */
                TILE_SWITCH_LIM(SFX(conv_fwd_tile), TMAX_M, CONV_TALL_TN, mr, nr, g, w + o0 * g->ck,
                                bias ? bias + o0 : NULL, rows + v0 * VL, y + o0 * P + v0 * VL, last, relu)
            v0 += nr;
        }
        o0 += mr;
    }
}

/* The modes of conv_dx's tiles (their SPARSE argument): every channel, the listed ones,
 * or no channel: each tile's sums read from a matrix of them (ck rows of pstride floats
 * at dy), computed by conv_dx_listed, and added onto drows as the other modes add theirs */
#define DX_ALL 0
#define DX_LISTED 1
#define DX_REPLAY 2

/* One channel's step of conv_dx's tiles: acc[m][j] += w_o[k0 + m] * dy_o[j] for the
 * weights wo_ = w_o + k0 and dy row dyo_ */
#define DX_STEP(NR_, wo_, dyo_)                                                                  \
    do {                                                                                         \
        const float *wo = (wo_), *dyo = (dyo_);                                                  \
        vf dv[8]; /* (a constant size: NR_ would make a VLA) */                              \
        for (int j = 0; j < (NR_); j++) dv[j] = V_LOADU(dyo + j * VL);                           \
        for (int m = 0; m < MR; m++) {                                                           \
            const vf wv = V_SET1(wo[m]);                                                         \
            for (int j = 0; j < (NR_); j++) acc[m][j] = V_FMA(wv, dv[j], acc[m][j]);             \
        }                                                                                        \
    } while (0)

/* For MR consecutive rows k0.. (in (c, ki, kj) order) and NR vectors of p:
 * acc = sum_o w[o][k] * dy[o][p], then added onto the rows' places in drows.
 * dy has P floats per channel and is readable (zero-padded) to a whole vector. */
ALWAYS_INLINE void SFX(conv_dx_tile)(const int MR, const int NR, const ln_conv_geom *g,
                                     const float *w, int64_t k0, const int64_t *roff,
                                     const float *dy, float *drows, int64_t pstride, int last,
                                     const int *chans, int nch, const int SPARSE)
{
    vf acc[TMAX_M][TMAX_N];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NR; j++) acc[m][j] = V_ZERO();
    const int64_t ck = g->ck;
    /* every channel in a plain loop (an index a step made the Fashion net's conv2 input
     * gradient 3-10% slower), or those of chans (the SPARSE twin: a function of its own,
     * since the two loops in one slowed the plain one by 2-4%) */
    if (SPARSE == DX_REPLAY)
        for (int m = 0; m < MR; m++)
            for (int j = 0; j < NR; j++) acc[m][j] = V_LOADU(dy + (k0 + m) * pstride + j * VL);
    else if (!SPARSE)
        for (int o = 0; o < nch; o++) DX_STEP(NR, w + k0 + o * ck, dy + o * pstride);
    else
        for (int i = 0; i < nch; i++) DX_STEP(NR, w + k0 + chans[i] * ck, dy + chans[i] * pstride);
    for (int m = 0; m < MR; m++) {
        float *r = drows + roff[m];
        for (int j = 0; j < NR - 1; j++)
            V_STOREU(r + j * VL, V_ADD(V_LOADU(r + j * VL), acc[m][j]));
        float *t = r + (NR - 1) * VL;
        if (last == VL)
            V_STOREU(t, V_ADD(V_LOADU(t), acc[m][NR - 1]));
        else
            V_STOREU_N(t, V_ADD(V_LOADU_N(t, last), acc[m][NR - 1]), last);
    }
}

#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
/* A row block's last 5 vectors when the vectors split 4,...,4,1 and the cut must stay
 * (3x3 kernels: see conv_dx): the 4-wide tile and the 1-wide one computed together, 25
 * chains instead of 20 and then 5, whose 5 chains a step waited on the FMA latency,
 * stored as the two tiles store (the 4 vectors of every row, then the last vector of
 * every row), so every place in drows gets its adds in the same order. */
ALWAYS_INLINE void SFX(conv_dx_tile_4_1)(const int MR, const ln_conv_geom *g, const float *w, int64_t k0,
                                         const int64_t *roff, const float *dy, float *drows, int64_t pstride,
                                         int last, const int *chans, int nch, const int SPARSE)
{
    vf acc[TMAX_M][5];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < 5; j++) acc[m][j] = V_ZERO();
    const int64_t ck = g->ck;
    if (SPARSE == DX_REPLAY)
        for (int m = 0; m < MR; m++)
            for (int j = 0; j < 5; j++) acc[m][j] = V_LOADU(dy + (k0 + m) * pstride + j * VL);
    else if (!SPARSE)
        for (int o = 0; o < nch; o++) DX_STEP(5, w + k0 + o * ck, dy + o * pstride);
    else
        for (int i = 0; i < nch; i++) DX_STEP(5, w + k0 + chans[i] * ck, dy + chans[i] * pstride);
    for (int m = 0; m < MR; m++) {
        float *r = drows + roff[m];
        for (int j = 0; j < 4; j++) V_STOREU(r + j * VL, V_ADD(V_LOADU(r + j * VL), acc[m][j]));
    }
    for (int m = 0; m < MR; m++) {
        float *t = drows + roff[m] + 4 * VL;
        if (last == VL)
            V_STOREU(t, V_ADD(V_LOADU(t), acc[m][4]));
        else
            V_STOREU_N(t, V_ADD(V_LOADU_N(t, last), acc[m][4]), last);
    }
}
#endif

/* drows += W^T dy for one sample; dy: OC rows of pstride floats, each readable up to a
 * whole number of vectors with zeros after P (the caller pads when P % VL != 0). Tiles go row block by row block, then along p, so that rows
 * sharing a place in drows are added in a fixed order. */
ALWAYS_INLINE void SFX(conv_dx_pass)(const ln_conv_geom *g, const float *w, const float *dy,
                                     int64_t pstride, const int *chans, int nch, float *drows, const int SPARSE)
{
    const int64_t P = g->p, nvec = (P + VL - 1) / VL;
    const int tail = (int)(P - (nvec - 1) * VL);
    int pos[3] = {0, 0, 0};
    /* The vectors in even tiles (Fashion's conv2, 13 vectors: 4,3,3,3 rather than
     * 4,4,4,1, whose 5 chains wait on the FMA latency) when no row block holds two rows
     * of one (c, kj) block: then no two tiles of a row block add to one place, and the
     * cut along p leaves every sum's order as it was. (With 3x3 kernels a block of 5
     * rows holds (c, ki, kj) and (c, ki + 1, kj), and moving the cut would reorder them.) */
    const int even = !g->shifted || g->k >= TM;
    const int64_t nt = (nvec + TN - 1) / TN;
    for (int64_t k0 = 0; k0 < g->ck; k0 += TM) {
        const int mr = (int)(g->ck - k0 < TM ? g->ck - k0 : TM);
        int64_t roff[TMAX_M];
        SFX(row_offsets)(g, pos, mr, roff);
        for (int64_t v0 = 0, tj = 0; v0 < nvec; tj++) {
            const int nr = even ? (int)(nvec / nt + (tj < nvec % nt)) : (int)(nvec - v0 < TN ? nvec - v0 : TN);
            const int last = v0 + nr == nvec ? tail : VL;
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
            if (!even && TN == 4 && nr == 4 && v0 + 5 == nvec) {
                switch (mr) {
                case 5: SFX(conv_dx_tile_4_1)(5, g, w, k0, roff, dy + v0 * VL, drows + v0 * VL, pstride, tail, chans, nch, SPARSE); break;
                case 4: SFX(conv_dx_tile_4_1)(4, g, w, k0, roff, dy + v0 * VL, drows + v0 * VL, pstride, tail, chans, nch, SPARSE); break;
                case 3: SFX(conv_dx_tile_4_1)(3, g, w, k0, roff, dy + v0 * VL, drows + v0 * VL, pstride, tail, chans, nch, SPARSE); break;
                case 2: SFX(conv_dx_tile_4_1)(2, g, w, k0, roff, dy + v0 * VL, drows + v0 * VL, pstride, tail, chans, nch, SPARSE); break;
                default: SFX(conv_dx_tile_4_1)(1, g, w, k0, roff, dy + v0 * VL, drows + v0 * VL, pstride, tail, chans, nch, SPARSE); break;
                }
                break; /* the row block's last vectors */
            }
#endif
            TILE_SWITCH(SFX(conv_dx_tile), mr, nr, g, w, k0, roff, dy + v0 * VL, drows + v0 * VL,
                        pstride, last, chans, nch, SPARSE)
            v0 += nr;
        }
    }
}

static void SFX(conv_dx)(const ln_conv_geom *g, const float *w, const float *dy, int64_t pstride,
                         const int *chans, int nch, float *drows)
{
    if (nch == g->oc) /* every channel */
        SFX(conv_dx_pass)(g, w, dy, pstride, NULL, nch, drows, DX_ALL);
    else
        SFX(conv_dx_pass)(g, w, dy, pstride, chans, nch, drows, DX_LISTED);
}

#if SIMD_M256
/* dst[i*dstride + j] = src[j][i] (add: dst[...] + src[j][i]) for i, j < 8, from 8 rows
 * anywhere: an 8 x 8 block transposed in registers (unpack pairs, then quads, then
 * halves) */
ALWAYS_INLINE void SFX(transpose8_from)(const float *const *src, float *dst, int64_t dstride, const int add)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src[i]);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        __m256 lo = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20), hi = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
        if (add) {
            lo = _mm256_add_ps(_mm256_loadu_ps(dst + i * dstride), lo);
            hi = _mm256_add_ps(_mm256_loadu_ps(dst + (i + 4) * dstride), hi);
        }
        _mm256_storeu_ps(dst + i * dstride, lo);
        _mm256_storeu_ps(dst + (i + 4) * dstride, hi);
    }
}

/* The same from 8 rows sstride floats apart. */
ALWAYS_INLINE void SFX(transpose8_to)(const float *src, int64_t sstride, float *dst, int64_t dstride,
                                      const int add)
{
    const float *rows[8];
    for (int i = 0; i < 8; i++) rows[i] = src + i * sstride;
    SFX(transpose8_from)(rows, dst, dstride, add);
}

ALWAYS_INLINE void SFX(transpose8)(const float *src, int64_t sstride, float *dst, int64_t dstride)
{
    SFX(transpose8_to)(src, sstride, dst, dstride, 0);
}
#endif

/* rowst[p*ck + k] = row_k[p] for one sample's unfolded rows (at their row_offsets):
 * blocks of 8 rows by 8 positions transposed in registers where the region has them. */
static void SFX(conv_rows_transpose)(const ln_conv_geom *g, const float *rows, float *rowst)
{
    const int64_t P = g->p, ck = g->ck;
    int pos[3] = {0, 0, 0};
    int64_t k0 = 0;
#if SIMD_M256
    const int64_t p8 = P / 8 * 8;
    for (; k0 + 8 <= ck; k0 += 8) {
        int64_t off[8];
        SFX(row_offsets)(g, pos, 8, off);
        const float *src[8];
        for (int64_t p = 0; p < p8; p += 8) {
            for (int i = 0; i < 8; i++) src[i] = rows + off[i] + p;
            SFX(transpose8_from)(src, rowst + p * ck + k0, ck, 0);
        }
        for (int64_t p = p8; p < P; p++)
            for (int i = 0; i < 8; i++) rowst[p * ck + k0 + i] = rows[off[i] + p];
    }
#endif
    for (; k0 < ck; k0++) {
        int64_t off;
        SFX(row_offsets)(g, pos, 1, &off);
        for (int64_t p = 0; p < P; p++) rowst[p * ck + k0] = rows[off + p];
    }
}

/* dst[o*dstride + k] += src[k*sstride + o] for k < rows, o < cols: the transposed weight
 * gradient's sums (ck x ocp) added to the layer's (oc x ck). One addition per element,
 * so any order gives the same bits as the element loop it replaced; blocks of 8 x 8
 * transposed in registers where the region has them (at batch 1 the scalar loop's
 * strided reads were 5.6% of the study's time on AVX-512). */
static void SFX(transpose_add)(int64_t rows, int cols, const float *src, int64_t sstride, float *dst,
                               int64_t dstride)
{
    int64_t k0 = 0;
#if SIMD_M256
    const int64_t r8 = rows / 8 * 8;
    const int c8 = cols / 8 * 8;
    for (int o = 0; o < c8; o += 8)
        for (int64_t k = 0; k < r8; k += 8)
            SFX(transpose8_to)(src + k * sstride + o, sstride, dst + o * dstride + k, dstride, 1);
    for (int o = c8; o < cols; o++)
        for (int64_t k = 0; k < r8; k++) dst[o * dstride + k] += src[k * sstride + o];
    k0 = r8;
#endif
    for (int o = 0; o < cols; o++)
        for (int64_t k = k0; k < rows; k++) dst[o * dstride + k] += src[k * sstride + o];
}

/* dyt[p*ocp + o] = dy[o*P + p] for one sample, zeros for o in [oc, ocp): blocks of 8 x 8
 * transposed in registers where the region has them, element by element elsewhere. */
static void SFX(conv_dy_transpose)(const ln_conv_geom *g, const float *dy, float *dyt)
{
    const int64_t P = g->p, ocp = g->ocp;
    const int oc = g->oc;
    int64_t p0 = 0;
#if SIMD_M256
    /* 8 channels at a time along p: their 8 rows are read in order (rows P floats apart
     * may share an L1 set; walking across channels first evicted them between uses) */
    const int oc8 = oc / 8 * 8;
    const int64_t p8 = P / 8 * 8;
    for (int o = 0; o < oc8; o += 8)
        for (int64_t p = 0; p < p8; p += 8) SFX(transpose8)(dy + o * P + p, P, dyt + p * ocp + o, ocp);
    for (; p0 < p8; p0++) {
        for (int o = oc8; o < oc; o++) dyt[p0 * ocp + o] = dy[o * P + p0];
        for (int64_t o = oc; o < ocp; o++) dyt[p0 * ocp + o] = 0.0f;
    }
#endif
    for (; p0 < P; p0++) {
        for (int o = 0; o < oc; o++) dyt[p0 * ocp + o] = dy[o * P + p0];
        for (int64_t o = oc; o < ocp; o++) dyt[p0 * ocp + o] = 0.0f;
    }
}

/* Vectors of k that conv_dx_listed keeps in registers at once */
#define DXL_KV 8

/* The sums of both listed gradients: out[j*VL ..] = (from_zero ? 0 : out) + the n terms
 * val[i] * (the vector at rows + idx[i]*stride + j*VL), added in order, for NV vectors,
 * the last one `tail` lanes long (the others of out untouched). In registers: NV <=
 * DXL_KV, a constant (listed_sums). */
ALWAYS_INLINE void SFX(listed_sums_n)(const int NV, const float *rows, int64_t stride, const int *idx,
                                      const float *val, int n, int tail, int from_zero, float *out)
{
    vf acc[DXL_KV];
    for (int j = 0; j < NV - 1; j++) acc[j] = from_zero ? V_ZERO() : V_LOADU(out + j * VL);
    acc[NV - 1] = from_zero ? V_ZERO() : tail == VL ? V_LOADU(out + (NV - 1) * VL) : V_LOADU_N(out + (NV - 1) * VL, tail);
    for (int i = 0; i < n; i++) {
        const vf d = V_SET1(val[i]);
        const float *r = rows + (int64_t)idx[i] * stride;
        for (int j = 0; j < NV - 1; j++) acc[j] = V_FMA(d, V_LOADU(r + j * VL), acc[j]);
        acc[NV - 1] = V_FMA(d, tail == VL ? V_LOADU(r + (NV - 1) * VL) : V_LOADU_N(r + (NV - 1) * VL, tail),
                            acc[NV - 1]);
    }
    for (int j = 0; j < NV - 1; j++) V_STOREU(out + j * VL, acc[j]);
    if (tail == VL)
        V_STOREU(out + (NV - 1) * VL, acc[NV - 1]);
    else
        V_STOREU_N(out + (NV - 1) * VL, acc[NV - 1], tail);
}

static void SFX(listed_sums)(int nv, const float *rows, int64_t stride, const int *idx, const float *val, int n,
                             int tail, int from_zero, float *out)
{
    switch (nv) { /* a constant count: the sums stay in registers */
    case 8: SFX(listed_sums_n)(8, rows, stride, idx, val, n, tail, from_zero, out); break;
    case 7: SFX(listed_sums_n)(7, rows, stride, idx, val, n, tail, from_zero, out); break;
    case 6: SFX(listed_sums_n)(6, rows, stride, idx, val, n, tail, from_zero, out); break;
    case 5: SFX(listed_sums_n)(5, rows, stride, idx, val, n, tail, from_zero, out); break;
    case 4: SFX(listed_sums_n)(4, rows, stride, idx, val, n, tail, from_zero, out); break;
    case 3: SFX(listed_sums_n)(3, rows, stride, idx, val, n, tail, from_zero, out); break;
    case 2: SFX(listed_sums_n)(2, rows, stride, idx, val, n, tail, from_zero, out); break;
    default: SFX(listed_sums_n)(1, rows, stride, idx, val, n, tail, from_zero, out); break;
    }
}

/* drows += W^T dy for one sample whose dy is +-0 but at the listed places (simd.h): each
 * position's sums over its listed channels (a weight row's vectors against a broadcast
 * dy value, so only the places a 2x2 max pooling sent a gradient to cost anything),
 * position-major in scratch, transposed to rows of positions, then added onto drows by
 * conv_dx's own tiles in their order (DX_REPLAY). Each sum is conv_dx's: the same terms
 * in the same (channel) order from +0, less terms that are +-0 exactly. */
static void SFX(conv_dx_listed)(const ln_conv_geom *g, const float *w, const int *start, const int *chan,
                                const float *val, float *scratch, float *drows)
{
    const int64_t P = g->p, ck = g->ck, pp = (P + VL - 1) / VL * VL, kb = DXL_KV * VL;
    float *cols = scratch, *rows = scratch + P * kb;
    /* blocks of rows outside: a block's weights (every channel's, DXL_KV vectors each)
     * stay in L1 while the positions' lists stream (inside out, the weight rows came from
     * L2 at every term: no faster than conv_dx on the Fashion net's conv2); each block's
     * sums, position-major, are transposed before the next (one block's, not the whole
     * sample's, so that they stay in L2) */
    for (int64_t k0 = 0; k0 < ck; k0 += kb) {
        const int64_t left = ck - k0, kw = left < kb ? left : kb;
        const int nv = (int)((kw + VL - 1) / VL);
        const int tail = (int)(kw - (int64_t)(nv - 1) * VL);
        for (int64_t p = 0; p < P; p++) /* position p's sums, from +0, into its column */
            SFX(listed_sums)(nv, w + k0, ck, chan + start[p], val + start[p], start[p + 1] - start[p], tail, 1,
                             cols + p * kb);
        /* rows[(k0 + k)*pp + p] = cols[p*kb + k], zeros for p in [P, pp) */
        int64_t k = 0;
#if SIMD_M256
        const int64_t p8 = P / 8 * 8, k8 = kw / 8 * 8;
        for (; k < k8; k += 8) {
            for (int64_t p = 0; p < p8; p += 8) SFX(transpose8)(cols + p * kb + k, kb, rows + (k0 + k) * pp + p, pp);
            for (int64_t i = k; i < k + 8; i++)
                for (int64_t p = p8; p < pp; p++) rows[(k0 + i) * pp + p] = p < P ? cols[p * kb + i] : 0.0f;
        }
#endif
        for (; k < kw; k++)
            for (int64_t p = 0; p < pp; p++) rows[(k0 + k) * pp + p] = p < P ? cols[p * kb + k] : 0.0f;
    }
    SFX(conv_dx_pass)(g, w, rows, pp, NULL, 0, drows, DX_REPLAY);
}

/* The weight-gradient sums of one sample whose dy is +-0 but at the listed places
 * (simd.h): sums[o*ck + k] += dy * row_k[p] for channel o's listed (p, dy), in
 * increasing p; bsums[o] += dy likewise (if bsums). Each channel's sums stay in
 * registers, a block of rows at a time, while its positions' rows (rowst,
 * position-major) are read. Each sum gets conv_dw's products in conv_dw's order,
 * samples then positions, less those of a +-0 dy (exact when the rows are finite). */
static void SFX(conv_dw_listed)(const ln_conv_geom *g, const float *rowst, const int *ostart, const int *pos,
                                const float *val, float *sums, float *bsums)
{
    const int64_t ck = g->ck, kb = DXL_KV * VL;
    for (int64_t k0 = 0; k0 < ck; k0 += kb) {
        const int64_t left = ck - k0, kw = left < kb ? left : kb;
        const int nv = (int)((kw + VL - 1) / VL);
        const int tail = (int)(kw - (int64_t)(nv - 1) * VL);
        for (int o = 0; o < g->oc; o++) /* channel o's sums go on from where they are */
            SFX(listed_sums)(nv, rowst + k0, ck, pos + ostart[o], val + ostart[o], ostart[o + 1] - ostart[o], tail, 0,
                             sums + (int64_t)o * ck + k0);
    }
    if (!bsums) return;
    for (int o = 0; o < g->oc; o++)
        for (int i = ostart[o]; i < ostart[o + 1]; i++) bsums[o] += val[i]; /* in position order */
}

/* Weight-gradient sums of MR unfolded rows (offsets roff, the first is row k0) and NR
 * vectors of channels from channel ov, over the ns samples of a chunk (unfolded rows
 * `rstride` floats apart; dy transposed, P x ocp floats per sample):
 * sums[k*ocp + o] (= if first, else +=) sum over the samples, then over p in order, of
 * row_k[p] * dyt[p*ocp + o]. The rows are broadcast and the channels are the vector
 * lanes, as in the forward kernel: NR loads and MR broadcasts per MR x NR FMAs, and one
 * accumulator chain per (o, k), so that the bits do not depend on the tiling. */
ALWAYS_INLINE void SFX(conv_dw_tile)(const int MR, const int NR, const ln_conv_geom *g, int64_t k0,
                                     const int64_t *roff, int ov, int ns, const float *dyt,
                                     const float *rows, int64_t rstride, float *sums, int first)
{
    const int64_t P = g->p, ocp = g->ocp;
    float *s0 = sums + k0 * ocp + ov;
    vf acc[TMAX_M][TMAX_N];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NR; j++) acc[m][j] = first ? V_ZERO() : V_LOADU(s0 + m * ocp + j * VL);
    for (int smp = 0; smp < ns; smp++) {
        const float *d = dyt + smp * P * ocp + ov;
        const float *r[TMAX_M];
        for (int m = 0; m < MR; m++) r[m] = rows + smp * rstride + roff[m];
        for (int64_t p = 0; p < P; p++, d += ocp) {
            vf dv[TMAX_N];
            for (int j = 0; j < NR; j++) dv[j] = V_LOADU(d + j * VL);
            for (int m = 0; m < MR; m++) {
                const vf b = V_SET1(r[m][p]);
                for (int j = 0; j < NR; j++) acc[m][j] = V_FMA(b, dv[j], acc[m][j]);
            }
        }
    }
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NR; j++) V_STOREU(s0 + m * ocp + j * VL, acc[m][j]);
}

/* Chains of vectors summed side by side, each chain its own adds in the order of one
 * (a single chain waits on the adds' latency, not on its loads): out[j*VL ..] (+)= the
 * sum over samples s < ns and steps i < steps of the vector at src + j*cstride +
 * s*sstride + i*istride, then of the first `tail` lanes at step i = steps (tail 0:
 * none), for chains j < chains. The bias sums of both weight-gradient kernels: the
 * transposed one's vectors of channels (one at a time, Fashion's conv2 waited on 4
 * chains of 588) and the lane partials' channels (the study's conv1 on 10 chains of 36,
 * 9% of its weight gradient). */
#define SUM_CHAINS 8
ALWAYS_INLINE void SFX(chain_sums_n)(const int NC, int ns, int64_t sstride, int64_t cstride, int64_t istride,
                                     int64_t steps, int tail, const float *src, float *out, int first)
{
    vf s[SUM_CHAINS];
    for (int j = 0; j < NC; j++) s[j] = first ? V_ZERO() : V_LOADU(out + j * VL);
    for (int smp = 0; smp < ns; smp++) {
        const float *d = src + smp * sstride;
        for (int64_t i = 0; i < steps; i++)
            for (int j = 0; j < NC; j++) s[j] = V_ADD(s[j], V_LOADU(d + j * cstride + i * istride));
        if (tail)
            for (int j = 0; j < NC; j++) s[j] = V_ADD(s[j], V_LOADU_N(d + j * cstride + steps * istride, tail));
    }
    for (int j = 0; j < NC; j++) V_STOREU(out + j * VL, s[j]);
}

static void SFX(chain_sums)(int chains, int ns, int64_t sstride, int64_t cstride, int64_t istride, int64_t steps,
                            int tail, const float *src, float *out, int first)
{
    for (int j0 = 0; j0 < chains; j0 += SUM_CHAINS) {
        const int nc = chains - j0 < SUM_CHAINS ? chains - j0 : SUM_CHAINS;
        const float *d = src + j0 * cstride;
        float *o = out + j0 * VL;
        switch (nc) { /* a constant count: the sums stay in registers */
        case 8: SFX(chain_sums_n)(8, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        case 7: SFX(chain_sums_n)(7, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        case 6: SFX(chain_sums_n)(6, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        case 5: SFX(chain_sums_n)(5, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        case 4: SFX(chain_sums_n)(4, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        case 3: SFX(chain_sums_n)(3, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        case 2: SFX(chain_sums_n)(2, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        default: SFX(chain_sums_n)(1, ns, sstride, cstride, istride, steps, tail, d, o, first); break;
        }
    }
}

/* Weight and bias gradient sums of a chunk of `ns` samples (simd.h), for channels
 * [o_begin, o_end) (o_begin a multiple of VL) and unfolded rows [k_begin, k_end) (the
 * bias sums of those channels go with k_begin == 0). The channel vectors are cut into
 * ceil(nv / TN) even tiles, each swept over the rows in blocks of DW_TM(width): a tile's
 * slice of dyt stays in L1 while the unfolded rows stream through, broadcast. */
static void SFX(conv_dw)(const ln_conv_geom *g, int o_begin, int o_end, int64_t k_begin,
                         int64_t k_end, int ns, const float *dyt, const float *rows, int64_t rstride,
                         float *sums, float *bsums, int first)
{
    int start[3];
    start[0] = (int)(k_begin / ((int64_t)g->k * g->k));
    start[1] = (int)(k_begin / g->k % g->k);
    start[2] = (int)(k_begin % g->k);
    const int v0 = o_begin / VL, nv = (o_end - o_begin + VL - 1) / VL;
    const int tiles = (nv + TN - 1) / TN;
    for (int t = 0; t < tiles; t++) {
        const int a = v0 + nv * t / tiles, nr = v0 + nv * (t + 1) / tiles - a, tm = DW_TM(nr);
        int pos[3] = {start[0], start[1], start[2]};
        for (int64_t k0 = k_begin; k0 < k_end; k0 += tm) {
            const int mr = (int)(k_end - k0 < tm ? k_end - k0 : tm);
            int64_t roff[TMAX_M];
            SFX(row_offsets)(g, pos, mr, roff);
            TILE_SWITCH_LIM(SFX(conv_dw_tile), TMAX_M, TN, mr, nr, g, k0, roff, a * VL, ns, dyt, rows,
                            rstride, sums, first)
        }
    }
    if (!bsums || k_begin != 0) return;
    /* the bias sums: a chain per vector of channels, over the samples and positions */
    SFX(chain_sums)(nv, ns, g->p * g->ocp, VL, g->ocp, g->p, 0, dyt + v0 * VL, bsums + v0 * VL, first);
}

/* Lane partials of the weight gradient for MR channels o0.. and NK rows k0.., over the
 * `ns` samples of a chunk (unfolded rows `rstride` floats apart, dy `dstride` apart):
 * part[(o*ck + k)*VL + l] += sum over samples and vectors v of dy[o][v*VL + l] *
 * row_k[v*VL + l]. The accumulators stay in registers for the whole chunk. */
ALWAYS_INLINE void SFX(conv_dw_dot_tile)(const int MR, const int NK, const ln_conv_geom *g,
                                         int o0, int64_t k0, const int64_t *roff, int ns,
                                         const float *dy, int64_t dstride, const float *rows,
                                         int64_t rstride, float *part, int first, const int P64)
{
    /* P64: the caller knows P == 64, so the loop over a sample's vectors is unrolled
     * (the study's conv2, 4 vectors a sample: its weight gradient 2.97-3.02 -> 2.86-2.88
     * us per sample) */
    const int64_t P = P64 ? 64 : g->p, full = P / VL, ck = g->ck;
    const int tail = (int)(P - full * VL);
    vf acc[TMAX_M][TMAX_N];
    for (int m = 0; m < MR; m++)
        for (int n = 0; n < NK; n++)
            acc[m][n] = first ? V_ZERO() : V_LOADU(part + ((o0 + m) * ck + k0 + n) * VL);
    for (int smp = 0; smp < ns; smp++) {
        const float *d = dy + smp * dstride + (int64_t)o0 * P;
        const float *r = rows + smp * rstride;
        for (int64_t v = 0; v < full; v++) {
            vf xv[TMAX_N];
            for (int n = 0; n < NK; n++) xv[n] = V_LOADU(r + roff[n] + v * VL);
            for (int m = 0; m < MR; m++) {
                const vf dv = V_LOADU(d + m * P + v * VL);
                for (int n = 0; n < NK; n++) acc[m][n] = V_FMA(dv, xv[n], acc[m][n]);
            }
        }
        if (tail) {
            vf xv[TMAX_N], dv[TMAX_M];
            for (int n = 0; n < NK; n++) xv[n] = V_LOADU_N(r + roff[n] + full * VL, tail);
            for (int m = 0; m < MR; m++) dv[m] = V_LOADU_N(d + m * P + full * VL, tail);
            for (int m = 0; m < MR; m++)
                for (int n = 0; n < NK; n++) acc[m][n] = V_FMA(dv[m], xv[n], acc[m][n]);
        }
    }
    for (int m = 0; m < MR; m++)
        for (int n = 0; n < NK; n++) V_STOREU(part + ((o0 + m) * ck + k0 + n) * VL, acc[m][n]);
}

/* The lane-partial weight gradient (simd.h): partials of a chunk of `ns` samples, for channels [o_begin,
 * o_end) and unfolded rows [k_begin, k_end) (the bias partials of those channels go
 * with k_begin == 0). Channel blocks outside, so the chunk's dy for a block stays in L1
 * while the unfolded rows stream from L2. Every partial sums over the samples and
 * vectors in the same order whatever the ranges: a split of the ranges over threads
 * gives the same bits. */
static void SFX(conv_dw_lanes)(const ln_conv_geom *g, int o_begin, int o_end, int64_t k_begin,
                               int64_t k_end, int ns, const float *dy, int64_t dstride,
                               const float *rows, int64_t rstride, float *part, float *bpart,
                               int first)
{
    int start[3];
    start[0] = (int)(k_begin / ((int64_t)g->k * g->k));
    start[1] = (int)(k_begin / g->k % g->k);
    start[2] = (int)(k_begin % g->k);
    /* the channels in even blocks of at most TM (the custom net's conv1, 16 channels:
     * 4,4,4,4 rather than 5,5,5,1, whose one chain per row waited on its loads) */
    const int nob = (o_end - o_begin + TM - 1) / TM;
    for (int ob = 0, o0 = o_begin; ob < nob; ob++) {
        const int mr = (o_end - o_begin) / nob + (ob < (o_end - o_begin) % nob);
        int pos[3] = {start[0], start[1], start[2]};
        for (int64_t k0 = k_begin; k0 < k_end; k0 += DW_TN) {
            const int nk = (int)(k_end - k0 < DW_TN ? k_end - k0 : DW_TN);
            int64_t roff[TMAX_N];
            SFX(row_offsets)(g, pos, nk, roff);
            if (g->p == 64)
                TILE_SWITCH_LIM(SFX(conv_dw_dot_tile), TM, DW_TN, mr, nk, g, o0, k0, roff, ns, dy,
                                dstride, rows, rstride, part, first, 1)
            else
                TILE_SWITCH_LIM(SFX(conv_dw_dot_tile), TM, DW_TN, mr, nk, g, o0, k0, roff, ns, dy,
                                dstride, rows, rstride, part, first, 0)
        }
        o0 += mr;
    }
    if (!bpart || k_begin != 0) return;
    /* the bias partials: a chain per channel, over the samples and vectors */
    const int64_t full = g->p / VL;
    SFX(chain_sums)(o_end - o_begin, ns, dstride, g->p, VL, full, (int)(g->p - full * VL), dy + (int64_t)o_begin * g->p,
                    bpart + o_begin * VL, first);
}

/* NK rows (offsets roff) of one sample against its channels' dy planes, 4 vectors each:
 * each (channel, row) partial loaded, its 4 products added in vector order, stored */
ALWAYS_INLINE void SFX(dw_some_rows)(const int NK, int64_t ck, int64_t k0, const int64_t *roff, const float *r,
                                     const float *d, const int *cs, int nc, float *part)
{
    vf xv[4][4];
    for (int n = 0; n < NK; n++)
        for (int v = 0; v < 4; v++) xv[n][v] = V_LOADU(r + roff[n] + v * VL);
    for (int i = 0; i < nc; i++) {
        const int o = cs[i];
        const float *dp = d + (int64_t)o * 4 * VL;
        vf dv[4];
        for (int v = 0; v < 4; v++) dv[v] = V_LOADU(dp + v * VL);
        for (int n = 0; n < NK; n++) {
            float *pp = part + ((int64_t)o * ck + k0 + n) * VL;
            vf acc = V_LOADU(pp);
            for (int v = 0; v < 4; v++) acc = V_FMA(dv[v], xv[n][v], acc);
            V_STOREU(pp, acc);
        }
    }
}

/* conv_dw_lanes over each sample's channels only (simd.h): rows in blocks of 4 whose
 * vectors stay in registers while the sample's channels (half of the study's conv2 ones
 * after its dropout2d) stream their partials through L1; every partial gets its products
 * in conv_dw_lanes' order, samples then vectors. */
static void SFX(conv_dw_lanes_some)(const ln_conv_geom *g, int ns, const float *dy, int64_t dstride,
                                    const float *rows, int64_t rstride, float *part, float *bpart, int first,
                                    const int *chans, const int *nch)
{
    const int64_t ck = g->ck;
    int pos[3] = {0, 0, 0};
    for (int64_t k0 = 0; k0 < ck; k0 += 4) {
        const int nk = (int)(ck - k0 < 4 ? ck - k0 : 4);
        int64_t roff[TMAX_N];
        SFX(row_offsets)(g, pos, nk, roff);
        if (first)
            for (int o = 0; o < g->oc; o++)
                for (int n = 0; n < nk; n++) V_STOREU(part + ((int64_t)o * ck + k0 + n) * VL, V_ZERO());
        for (int s = 0; s < ns; s++) {
            const float *r = rows + s * rstride, *d = dy + s * dstride;
            const int *cs = chans + (int64_t)s * g->oc;
            switch (nk) {
            case 4: SFX(dw_some_rows)(4, ck, k0, roff, r, d, cs, nch[s], part); break;
            case 3: SFX(dw_some_rows)(3, ck, k0, roff, r, d, cs, nch[s], part); break;
            case 2: SFX(dw_some_rows)(2, ck, k0, roff, r, d, cs, nch[s], part); break;
            default: SFX(dw_some_rows)(1, ck, k0, roff, r, d, cs, nch[s], part); break;
            }
        }
    }
    if (!bpart) return;
    /* the bias partials: every channel, as conv_dw_lanes sums them */
    SFX(chain_sums)(g->oc, ns, dstride, g->p, VL, 4, 0, dy, bpart, first);
}

/* out[i] += sum of the VL lane partials part[i*VL ..], for i < n, in a fixed order. */
static void SFX(reduce_lanes)(int64_t n, const float *part, float *out)
{
    int64_t i = 0;
#if V_HAS_REDUCE16
    for (; i + 16 <= n; i += 16) V_REDUCE16(part + i * VL, out + i);
#endif
    for (; i < n; i++) out[i] += V_HSUM(V_LOADU(part + i * VL));
}

/* ================================================================== linear */

/* Floats of inputs (x rows or w rows) that a pass of the linear kernels keeps in L2
 * while the other operand streams: blocks of samples (forward) or of input columns (dx)
 * are cut to fit, so that a large weight matrix is read from memory a few times per
 * batch, not once per tile. */
#define LIN_L2_FLOATS (48 * 1024)
/* Floats of dy columns the weight gradient gathers on the stack (16 KiB) */
#define LIN_DYB_FLOATS 4096
/* Floats of a dy row up to which the weight gradient reads dy's columns in place */
#define LIN_DY_NEAR 64
/* Input vectors per block of the forward: the LIN_O weight rows of a block (1024 floats
 * each, 16 KiB) stay in L1 while the block's samples sweep over them (whole rows gave
 * 46-47 GFLOP/s on 3136 -> 1024 at batch 64 on the AVX2 machine, 512-float blocks 50-57;
 * on the AVX-512 one 1024 floats trained the Fashion net 1% faster than 512) */
#define LIN_KV (1024 / VL)
/* Samples per block of the forward whose lane sums are parked between input blocks,
 * and floats of their rows kept in L2 (1 MiB on the development machines): a batch of
 * 64 rows of 3136 (784 KiB) is one block, so the 12.8 MB weight matrix, which does not
 * stay in L3 between steps, is read from memory once per forward instead of three
 * times (24-sample blocks): the Fashion net +4%, 2 threads +3%; AVX2 unchanged */
#define LIN_AB 64
#define LIN_FWD_L2 (256 * 1024)

/* outputs per tile of the forward: TMAX_N while LIN_N x TMAX_N chains fit in 12 (AVX2:
 * 3 x 4, 12 lane chains, 3 x loads and one w load at a time fill the 16 registers: 7
 * loads per 12 FMAs, where 2 x 4 needed 6 per 8 (3136 -> 1024 forward 42 -> 50-54
 * GFLOP/s); generic: 2 x 4), TMAX_M otherwise (AVX-512: 4 samples x 6 outputs, 24
 * chains: the samples' rows come from L2 and each of their vectors now feeds 6 FMAs
 * instead of 4: 3136 -> 1024 forward 161-178 -> 176-199 GFLOP/s). The same sums
 * whatever the tile. */
#define LIN_O (LIN_N * TMAX_N <= 12 ? TMAX_N : TMAX_M)
#if LIN_N > TMAX_N
#error "simd_impl.h: LIN_N samples per forward tile, at most TMAX_N"
#endif

/* y[n][o] = b[o] + x[n] . w[o] for NN samples and NO outputs: dot products over the
 * inputs in VL lanes, then each lane set summed. One call covers the input vectors
 * [v0, v1): the lane sums start at zero (v0 == 0) or where the previous call left them
 * in part (NN x LIN_O vectors), and are summed into y after the last full vector
 * (v1 == in / VL) and the tail; otherwise they are left in part. Cutting the vectors
 * into blocks this way keeps every lane's sum in the same order. (Outputs first: the
 * tile switch takes up to TMAX_M of them and TMAX_N samples.) */
ALWAYS_INLINE void SFX(linear_fwd_tile)(const int NO, const int NN, int in, int out, int v0, int v1,
                                        const float *x, const float *w, const float *b, float *y,
                                        float *part)
{
    const int full = in / VL, tail = in - full * VL;
    vf acc[TMAX_M][TMAX_N]; /* [output][sample] */
    for (int a = 0; a < NN; a++)
        for (int o = 0; o < NO; o++)
            acc[o][a] = v0 == 0 ? V_ZERO() : V_LOADU(part + (a * LIN_O + o) * VL);
    for (int v = v0; v < v1; v++) {
        vf xv[TMAX_N];
        for (int a = 0; a < NN; a++) xv[a] = V_LOADU(x + (int64_t)a * in + v * VL);
        for (int o = 0; o < NO; o++) {
            const vf wv = V_LOADU(w + (int64_t)o * in + v * VL);
            for (int a = 0; a < NN; a++) acc[o][a] = V_FMA(xv[a], wv, acc[o][a]);
        }
    }
    if (v1 < full) {
        for (int a = 0; a < NN; a++)
            for (int o = 0; o < NO; o++) V_STOREU(part + (a * LIN_O + o) * VL, acc[o][a]);
        return;
    }
    if (tail) {
        vf xv[TMAX_N];
        for (int a = 0; a < NN; a++) xv[a] = V_LOADU_N(x + (int64_t)a * in + full * VL, tail);
        for (int o = 0; o < NO; o++) {
            const vf wv = V_LOADU_N(w + (int64_t)o * in + full * VL, tail);
            for (int a = 0; a < NN; a++) acc[o][a] = V_FMA(xv[a], wv, acc[o][a]);
        }
    }
    for (int a = 0; a < NN; a++)
        for (int o = 0; o < NO; o++)
            y[(int64_t)a * out + o] = V_HSUM(acc[o][a]) + (b ? b[o] : 0.0f);
}

static void SFX(linear_fwd)(int n, int in, int out, const float *x, const float *w,
                            const float *b, float *y)
{
    /* samples in blocks of at most LIN_AB whose rows stay in L2 (as many blocks as
     * L2 needs, evened out); within a block, each tile of LIN_O weight rows is cut into
     * blocks of input vectors that stay in L1 while the block's samples sweep over them,
     * so that a weight row is read from memory once per sample block and from L1 by
     * every tile of samples. The lane sums wait in part between input blocks. */
    const int full = in / VL;
    const int64_t total = (int64_t)n * (in > 0 ? in : 1);
    int nab = (int)((total + LIN_FWD_L2 - 1) / LIN_FWD_L2);
    if (nab < (n + LIN_AB - 1) / LIN_AB) nab = (n + LIN_AB - 1) / LIN_AB;
    if (nab < 1) nab = 1;
    int ab = (n + nab - 1) / nab;
    ab = (ab + LIN_N - 1) / LIN_N * LIN_N;
    const int nkb = full > LIN_KV ? (full + LIN_KV - 1) / LIN_KV : 1;
    const int kv = (full + nkb - 1) / nkb > 0 ? (full + nkb - 1) / nkb : 1;
    float part[LIN_AB * LIN_O * VL + LIN_N * LIN_O * VL];
    for (int ab0 = 0; ab0 < n; ab0 += ab) {
        const int ab1 = n - ab0 < ab ? n : ab0 + ab;
        for (int o0 = 0; o0 < out; o0 += LIN_O) {
            const int no = out - o0 < LIN_O ? out - o0 : LIN_O;
            for (int v0 = 0; v0 < full || v0 == 0; v0 += kv) {
                const int v1 = full - v0 < kv ? full : v0 + kv;
                for (int a0 = ab0; a0 < ab1; a0 += LIN_N) {
                    const int na = ab1 - a0 < LIN_N ? ab1 - a0 : LIN_N;
                    TILE_SWITCH_LIM(SFX(linear_fwd_tile), LIN_O, LIN_N, no, na, in, out, v0, v1,
                                    x + (int64_t)a0 * in, w + (int64_t)o0 * in, b ? b + o0 : NULL,
                                    y + (int64_t)a0 * out + o0, part + (a0 - ab0) * LIN_O * VL)
                }
            }
        }
    }
}

/* dw[o][i] = 0 + sum_n dy[n][o] * x[n][i] for MR outputs and NR vectors of inputs (the
 * bits of adding the sum to a zeroed gradient: -0 becomes +0). */
ALWAYS_INLINE void SFX(linear_dw_tile)(const int MR, const int NR, int n, int in, int dstride,
                                       const float *x, const float *dy, float *dw, int last)
{
    vf acc[TMAX_M][TMAX_N];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NR; j++) acc[m][j] = V_ZERO();
    for (int a = 0; a < n; a++) {
        vf xv[TMAX_N];
        const float *xa = x + (int64_t)a * in;
        for (int j = 0; j < NR - 1; j++) xv[j] = V_LOADU(xa + j * VL);
        xv[NR - 1] = last == VL ? V_LOADU(xa + (NR - 1) * VL) : V_LOADU_N(xa + (NR - 1) * VL, last);
        for (int m = 0; m < MR; m++) {
            const vf dv = V_SET1(dy[(int64_t)a * dstride + m]);
            for (int j = 0; j < NR; j++) acc[m][j] = V_FMA(dv, xv[j], acc[m][j]);
        }
    }
    const vf zero = V_ZERO();
    for (int m = 0; m < MR; m++) {
        float *t = dw + (int64_t)m * in;
        for (int j = 0; j < NR - 1; j++) V_STOREU(t + j * VL, V_ADD(zero, acc[m][j]));
        t += (NR - 1) * VL;
        if (last == VL)
            V_STOREU(t, V_ADD(zero, acc[m][NR - 1]));
        else
            V_STOREU_N(t, V_ADD(zero, acc[m][NR - 1]), last);
    }
}

/* dx[n][i] = sum_o dy[n][o] * w[o][i] for MR samples and NR vectors of inputs. */
ALWAYS_INLINE void SFX(linear_dx_tile)(const int MR, const int NR, int in, int out,
                                       const float *w, const float *dy, float *dx, int last)
{
    vf acc[TMAX_M][TMAX_N];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NR; j++) acc[m][j] = V_ZERO();
    for (int o = 0; o < out; o++) {
        vf wv[TMAX_N];
        const float *wo = w + (int64_t)o * in;
        for (int j = 0; j < NR - 1; j++) wv[j] = V_LOADU(wo + j * VL);
        wv[NR - 1] = last == VL ? V_LOADU(wo + (NR - 1) * VL) : V_LOADU_N(wo + (NR - 1) * VL, last);
        for (int m = 0; m < MR; m++) {
            const vf dv = V_SET1(dy[(int64_t)m * out + o]);
            for (int j = 0; j < NR; j++) acc[m][j] = V_FMA(dv, wv[j], acc[m][j]);
        }
    }
    for (int m = 0; m < MR; m++) {
        float *t = dx + (int64_t)m * in;
        for (int j = 0; j < NR - 1; j++) V_STOREU(t + j * VL, acc[m][j]);
        if (last == VL)
            V_STOREU(t + (NR - 1) * VL, acc[m][NR - 1]);
        else
            V_STOREU_N(t + (NR - 1) * VL, acc[m][NR - 1], last);
    }
}

/* Vectors of columns per slab of `rows` rows that stays in L2: whole tiles of TN. */
ALWAYS_INLINE int SFX(lin_slab)(int64_t rows)
{
    const int s = (int)(LIN_L2_FLOATS / ((rows > 0 ? rows : 1) * VL)) / TN * TN;
    return s < TN ? TN : s;
}

/* dw rows [o_begin, o_end) (and those entries of db) over all n samples; dx rows
 * [a_begin, a_end). Each output element is one sum in a fixed order, so the ranges (a
 * split over threads) do not change any bit. */
static void SFX(linear_bwd)(int n, int in, int out, const float *x, const float *w,
                            const float *dy, float *dw, float *db, float *dx, int o_begin,
                            int o_end, int a_begin, int a_end)
{
    const int nvec = (in + VL - 1) / VL, tail = in - (nvec - 1) * VL;
    /* columns of x in slabs that stay in L2 (whole tiles of TN vectors); within a slab,
     * each block of TM rows of dw is walked along its rows, which the hardware
     * prefetches (a slab of one tile touched a few dozen bytes per row of a large dw) */
    const int xslab = SFX(lin_slab)(n);
    for (int s0 = 0; s0 < nvec; s0 += xslab) {
        const int s1 = nvec - s0 < xslab ? nvec : s0 + xslab;
        for (int o0 = o_begin; o0 < o_end; o0 += TM) {
            const int mr = o_end - o0 < TM ? o_end - o0 : TM;
            /* the block's columns of dy gathered (n x mr floats) when dy's rows are far
             * apart: read in place, they are n rows `out` floats apart, which for out a
             * multiple of 1024 all fall into one set of L1. Rows of at most LIN_DY_NEAR
             * floats are read in place: they fill whole lines of every set, and the
             * gather's copies showed in the profile of a batch-1 conv weight gradient
             * (positions as samples, dy rows of 10 or 20 channels). */
            float dyb[LIN_DYB_FLOATS];
            const float *d = dy + o0;
            int dstride = out;
            if (out > LIN_DY_NEAR && (int64_t)n * mr <= LIN_DYB_FLOATS) {
                for (int a = 0; a < n; a++)
                    for (int m = 0; m < mr; m++) dyb[a * mr + m] = dy[(int64_t)a * out + o0 + m];
                d = dyb;
                dstride = mr;
            }
            for (int v0 = s0; v0 < s1; v0 += TN) {
                const int nr = s1 - v0 < TN ? s1 - v0 : TN;
                const int last = v0 + nr == nvec ? tail : VL;
                TILE_SWITCH(SFX(linear_dw_tile), mr, nr, n, in, dstride, x + v0 * VL, d,
                            dw + (int64_t)o0 * in + v0 * VL, last)
            }
        }
    }
    if (db) {
        /* column sums of dy, sample after sample, a vector of columns at a time (each
         * lane the scalar loop's chain 0 + dy[0][o] + dy[1][o] ...: one chain of adds
         * per column had the study's conv2 at batch 1, 64 positions x 20 channels, wait
         * 0.3 us on the adds' latency, 10% of its weight gradient) */
        for (int o = o_begin; o < o_end; o += VL) {
            const int no = o_end - o < VL ? o_end - o : VL;
            vf s = V_ZERO();
            if (no == VL)
                for (int a = 0; a < n; a++) s = V_ADD(s, V_LOADU(dy + (int64_t)a * out + o));
            else
                for (int a = 0; a < n; a++) s = V_ADD(s, V_LOADU_N(dy + (int64_t)a * out + o, no));
            V_STOREU_N(db + o, s, no);
        }
    }
    if (!dx) return;
    /* columns of w in slabs that stay in L2 (whole tiles of TN vectors) while the samples
     * sweep over them */
    const int slab = SFX(lin_slab)(out);
    for (int s0 = 0; s0 < nvec; s0 += slab) {
        const int s1 = nvec - s0 < slab ? nvec : s0 + slab;
        for (int a0 = a_begin; a0 < a_end; a0 += TM) {
            const int mr = a_end - a0 < TM ? a_end - a0 : TM;
            for (int v0 = s0; v0 < s1; v0 += TN) {
                const int nr = s1 - v0 < TN ? s1 - v0 : TN;
                const int last = v0 + nr == nvec ? tail : VL;
                TILE_SWITCH(SFX(linear_dx_tile), mr, nr, in, out, w + v0 * VL,
                            dy + (int64_t)a0 * out, dx + (int64_t)a0 * in + v0 * VL, last)
            }
        }
    }
}

/* ==================================================================== relu */

static void SFX(relu_fwd)(int64_t n, const float *x, float *y)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL) V_STOREU(y + i, SFX(relu_of)(V_LOADU(x + i)));
    for (; i < n; i++) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
}

static void SFX(relu_bwd)(int64_t n, const float *y, const float *dy, float *dx)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL) V_STOREU(dx + i, SFX(relu_grad_at)(V_LOADU(dy + i), V_LOADU(y + i)));
    for (; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* ========================================================== tanh, sigmoid */

/* Lanes of a where m is set, b elsewhere (m: all-ones or all-zeros lanes). */
ALWAYS_INLINE vf SFX(select)(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

/* exp(a) for a <= 0 (0 below -87, where expf is below 1.7e-38 and the callers cannot
 * tell it from 0; NaN stays NaN). Cephes' expf scheme: a = n ln2
 * + r with |r| <= ln2/2, a degree-7 polynomial for exp(r), 2^n from the exponent bits;
 * within 2 ulp of expf. */
ALWAYS_INLINE vf SFX(exp_nonpos)(vf a)
{
    const vf lo = V_SET1(-87.0f), magic = V_SET1(12582912.0f); /* 1.5 * 2^23 */
    const vi under = a < lo;
    a = SFX(select)(under, lo, a);
    const vf t = V_FMA(a, V_SET1(1.44269504088896341f), magic); /* n + magic, n rounded */
    const vf n = t - magic;
    vf r = V_FMA(n, V_SET1(-0.693359375f), a);                    /* ln2 in two parts */
    r = V_FMA(n, V_SET1(2.12194440e-4f), r);
    vf p = V_SET1(1.9875691500e-4f);
    p = V_FMA(p, r, V_SET1(1.3981999507e-3f));
    p = V_FMA(p, r, V_SET1(8.3334519073e-3f));
    p = V_FMA(p, r, V_SET1(4.1665795894e-2f));
    p = V_FMA(p, r, V_SET1(1.6666665459e-1f));
    p = V_FMA(p, r, V_SET1(5.0000001201e-1f));
    p = V_FMA(p, r * r, r + V_SET1(1.0f));
    const vi e = ((vi)t - (vi)magic + 127) << 23;                 /* 2^n */
    return (vf)((vi)(p * (vf)e) & ~under);
}

/* tanh: for |x| < 0.625 the odd polynomial x + x^3 P(x^2) (Cephes' tanhf), else
 * (1 - e) / (1 + e) with e = exp(-2|x|) and x's sign; NaN stays NaN. */
ALWAYS_INLINE vf SFX(tanh_v)(vf x)
{
    const vi sign = (vi)V_SET1(-0.0f);
    const vf ax = (vf)((vi)x & ~sign);
    const vf e = SFX(exp_nonpos)(V_SET1(-2.0f) * ax);
    const vf one = V_SET1(1.0f);
    const vf big = (one - e) / (one + e);
    const vf z = x * x;
    vf p = V_SET1(-5.70498872745e-3f);
    p = V_FMA(p, z, V_SET1(2.06390887954e-2f));
    p = V_FMA(p, z, V_SET1(-5.37397155531e-2f));
    p = V_FMA(p, z, V_SET1(1.33314422036e-1f));
    p = V_FMA(p, z, V_SET1(-3.33332819422e-1f));
    const vf small = V_FMA(p * z, ax, ax);
    return (vf)((vi)SFX(select)(ax < V_SET1(0.625f), small, big) | ((vi)x & sign));
}

/* sigmoid: with e = exp(-|x|), 1 / (1 + e) for x >= 0 and e / (1 + e) below, so
 * nothing overflows and small outputs keep their relative precision. */
ALWAYS_INLINE vf SFX(sigmoid_v)(vf x)
{
    const vf ax = (vf)((vi)x & ~(vi)V_SET1(-0.0f));
    const vf e = SFX(exp_nonpos)(V_ZERO() - ax);
    const vf one = V_SET1(1.0f);
    const vf d = one + e;
    return SFX(select)(x >= V_ZERO(), one / d, e / d);
}

/* kind: LN_TANH or LN_SIGMOID; y = f(x) over n floats, the tail through masked loads. */
static void SFX(squash_fwd)(int kind, int64_t n, const float *x, float *y)
{
    int64_t i = 0;
    if (kind == LN_TANH) {
        for (; i + VL <= n; i += VL) V_STOREU(y + i, SFX(tanh_v)(V_LOADU(x + i)));
        if (i < n) V_STOREU_N(y + i, SFX(tanh_v)(V_LOADU_N(x + i, (int)(n - i))), (int)(n - i));
    } else {
        for (; i + VL <= n; i += VL) V_STOREU(y + i, SFX(sigmoid_v)(V_LOADU(x + i)));
        if (i < n) V_STOREU_N(y + i, SFX(sigmoid_v)(V_LOADU_N(x + i, (int)(n - i))), (int)(n - i));
    }
}

/* From the saved output y, the reference's operations in its order (bit for bit):
 * tanh: dx = dy * (1 - y*y); sigmoid: dx = (dy * y) * (1 - y). */
static void SFX(squash_bwd)(int kind, int64_t n, const float *y, const float *dy, float *dx)
{
    const vf one = V_SET1(1.0f);
    int64_t i = 0;
    if (kind == LN_TANH) {
        for (; i + VL <= n; i += VL) {
            const vf v = V_LOADU(y + i);
            V_STOREU(dx + i, V_LOADU(dy + i) * (one - v * v));
        }
        for (; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    } else {
        for (; i + VL <= n; i += VL) {
            const vf v = V_LOADU(y + i);
            V_STOREU(dx + i, (V_LOADU(dy + i) * v) * (one - v));
        }
        for (; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
    }
}

/* =============================================================== batchnorm */

/* Lane sums of a vector in a fixed order, in double. */
ALWAYS_INLINE double SFX(hsum_d)(vf v)
{
    double s = 0.0;
    for (int l = 0; l < VL; l++) s += (double)v[l];
    return s;
}

/* ha[r] = hsum_d(a[r]), hb[r] = hsum_d(b[r]) for R runs, bit for bit. With 4 runs and
 * 8 x 8 transposes in the region, each sum is the same chain of double adds, lane after
 * lane, but the 8 chains go side by side in two vectors of doubles instead of one scalar
 * chain of 16 dependent adds after another (the custom net's second batchnorm, 32
 * planes of 14 x 14 a sample: its sums 0.59 -> 0.50 us a sample, the gradient's 1.13 ->
 * 1.07). */
ALWAYS_INLINE void SFX(hsum_d_runs)(const int R, const vf *a, const vf *b, double *ha, double *hb)
{
#if SIMD_M256
    if (R == 4) {
        float rows[8][VL] __attribute__((aligned(32))), lanes[VL][8] __attribute__((aligned(32)));
        for (int r = 0; r < 4; r++) {
            V_STOREU(rows[r], a[r]);
            V_STOREU(rows[r + 4], b[r]);
        }
        for (int l0 = 0; l0 < VL; l0 += 8) SFX(transpose8)(rows[0] + l0, VL, lanes[l0], 8); /* lanes[l][k] = rows[k][l] */
        __m256d sa = _mm256_setzero_pd(), sb = _mm256_setzero_pd();
        for (int l = 0; l < VL; l++) {
            sa = _mm256_add_pd(sa, _mm256_cvtps_pd(_mm_load_ps(lanes[l])));
            sb = _mm256_add_pd(sb, _mm256_cvtps_pd(_mm_load_ps(lanes[l] + 4)));
        }
        _mm256_storeu_pd(ha, sa);
        _mm256_storeu_pd(hb, sb);
        return;
    }
#endif
    for (int r = 0; r < R; r++) {
        ha[r] = SFX(hsum_d)(a[r]);
        hb[r] = SFX(hsum_d)(b[r]);
    }
}

/* The sum of x, and of (x - mean)^2, over `runs` runs of n floats (run r at x + r
 * stride) into out[r], each run's as if alone: two chains of float lanes (even and odd
 * vectors), the tail as it was, then summed in double. Up to 4 runs side by side: one
 * run's two chains of 25 adds (a 28x28 plane) waited on the adds' latency. */
ALWAYS_INLINE void SFX(bn_sum_runs)(const int R, int64_t n, int64_t stride, const float *x, double *out)
{
    vf a[4], b[4];
    for (int r = 0; r < R; r++) a[r] = b[r] = V_ZERO();
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL)
        for (int r = 0; r < R; r++) {
            a[r] = V_ADD(a[r], V_LOADU(x + r * stride + i));
            b[r] = V_ADD(b[r], V_LOADU(x + r * stride + i + VL));
        }
    for (; i + VL <= n; i += VL)
        for (int r = 0; r < R; r++) a[r] = V_ADD(a[r], V_LOADU(x + r * stride + i));
    if (i < n)
        for (int r = 0; r < R; r++) b[r] = V_ADD(b[r], V_LOADU_N(x + r * stride + i, (int)(n - i)));
    double ha[4], hb[4];
    SFX(hsum_d_runs)(R, a, b, ha, hb);
    for (int r = 0; r < R; r++) out[r] = ha[r] + hb[r];
}

ALWAYS_INLINE void SFX(bn_sqdev_runs)(const int R, int64_t n, int64_t stride, const float *x, float mean,
                                      double *out)
{
    const vf m = V_SET1(mean);
    vf a[4], b[4];
    for (int r = 0; r < R; r++) a[r] = b[r] = V_ZERO();
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL)
        for (int r = 0; r < R; r++) {
            const vf d0 = V_LOADU(x + r * stride + i) - m, d1 = V_LOADU(x + r * stride + i + VL) - m;
            a[r] = V_FMA(d0, d0, a[r]);
            b[r] = V_FMA(d1, d1, b[r]);
        }
    for (; i + VL <= n; i += VL)
        for (int r = 0; r < R; r++) {
            const vf d0 = V_LOADU(x + r * stride + i) - m;
            a[r] = V_FMA(d0, d0, a[r]);
        }
    double ha[4], hb[4];
    SFX(hsum_d_runs)(R, a, b, ha, hb);
    for (int r = 0; r < R; r++) {
        double s = ha[r] + hb[r];
        for (int64_t j = i; j < n; j++) s += ((double)x[r * stride + j] - mean) * ((double)x[r * stride + j] - mean);
        out[r] = s;
    }
}

static void SFX(bn_sums)(int64_t n, int runs, int64_t stride, const float *x, double *out)
{
    int r = 0;
    for (; r + 4 <= runs; r += 4) SFX(bn_sum_runs)(4, n, stride, x + r * stride, out + r);
    for (; r < runs; r++) SFX(bn_sum_runs)(1, n, stride, x + r * stride, out + r);
}

static void SFX(bn_sqdevs)(int64_t n, int runs, int64_t stride, const float *x, float mean, double *out)
{
    int r = 0;
    for (; r + 4 <= runs; r += 4) SFX(bn_sqdev_runs)(4, n, stride, x + r * stride, mean, out + r);
    for (; r < runs; r++) SFX(bn_sqdev_runs)(1, n, stride, x + r * stride, mean, out + r);
}

static void SFX(bn_affine)(int64_t n, const float *x, float *y, float mean, float alpha, float beta,
                           int act)
{
    const vf m = V_SET1(mean), a = V_SET1(alpha), b = V_SET1(beta);
    int64_t i = 0;
    if (act == LN_RELU) { /* the fused ReLU: relu_fwd's rule on each value */
        for (; i + VL <= n; i += VL) {
            const vf v = V_ADD(V_MUL(V_LOADU(x + i) - m, a), b);
            V_STOREU(y + i, SFX(relu_of)(v));
        }
        for (; i < n; i++) {
            const float v = (x[i] - mean) * alpha + beta;
            y[i] = (v > 0.0f || v != v) ? v : 0.0f;
        }
        return;
    }
    if (act == LN_TANH || act == LN_SIGMOID) { /* squash_fwd on each value, the tail masked */
        /* four vectors at a time: their chains interleave instead of each waiting on its
         * own latencies (tanh: 6.0 -> 5.4 ns a vector on the custom net's 196-float runs) */
        for (; i + 4 * VL <= n; i += 4 * VL) {
            vf v[4];
            for (int j = 0; j < 4; j++) v[j] = V_ADD(V_MUL(V_LOADU(x + i + j * VL) - m, a), b);
            for (int j = 0; j < 4; j++) v[j] = act == LN_TANH ? SFX(tanh_v)(v[j]) : SFX(sigmoid_v)(v[j]);
            for (int j = 0; j < 4; j++) V_STOREU(y + i + j * VL, v[j]);
        }
        for (; i < n; i += VL) {
            const int k = n - i < VL ? (int)(n - i) : VL;
            const vf v = V_ADD(V_MUL((k == VL ? V_LOADU(x + i) : V_LOADU_N(x + i, k)) - m, a), b);
            const vf r = act == LN_TANH ? SFX(tanh_v)(v) : SFX(sigmoid_v)(v);
            if (k == VL)
                V_STOREU(y + i, r);
            else
                V_STOREU_N(y + i, r, k);
        }
        return;
    }
    for (; i + VL <= n; i += VL) V_STOREU(y + i, V_ADD(V_MUL(V_LOADU(x + i) - m, a), b));
    for (; i < n; i++) y[i] = (x[i] - mean) * alpha + beta;
}

/* dy through a fused activation's backward (KIND 0: dy; act its constants). A ReLU's mask y > 0 is the
 * forward's value (x - mean) * alpha + beta > 0, recomputed from xm = x - mean with the
 * forward's operations (bit for bit the same value, so the same mask; NaN: false, as
 * y > 0); tanh and sigmoid take squash_bwd's formulas from their output at act->y + at. */
ALWAYS_INLINE vf SFX(act_grad)(const int KIND, vf g, vf xm, const ln_bn_act *act, int64_t at)
{
    if (!KIND) return g;
    if (KIND == LN_RELU) {
        const vf v = V_ADD(V_MUL(xm, V_SET1(act->alpha)), V_SET1(act->beta));
        return SFX(relu_grad_at)(g, v);
    }
    const vf y = V_LOADU(act->y + at), one = V_SET1(1.0f);
    return KIND == LN_TANH ? g * (one - y * y) : (g * y) * (one - y);
}

ALWAYS_INLINE float SFX(act_grad1)(const int KIND, float g, float xm, const ln_bn_act *act, int64_t at)
{
    if (!KIND) return g;
    if (KIND == LN_RELU) return !(xm * act->alpha + act->beta > 0.0f) ? 0.0f : g;
    const float y = act->y[at];
    return KIND == LN_TANH ? g * (1.0f - y * y) : g * y * (1.0f - y);
}

/* The kernels below take the fused activation's kind as a constant (KIND: 0 for none,
 * LN_RELU, LN_TANH or LN_SIGMOID), so that their loops do not test it value by value:
 * CALL(KIND) with the kind act says (act_grad's rule: any other than ReLU and tanh is
 * sigmoid). */
#define ACT_DISPATCH(act, CALL)                                                                    \
    do {                                                                                           \
        if (!(act))                                                                                \
            CALL(0);                                                                               \
        else if ((act)->kind == LN_RELU)                                                           \
            CALL(LN_RELU);                                                                         \
        else if ((act)->kind == LN_TANH)                                                           \
            CALL(LN_TANH);                                                                         \
        else                                                                                       \
            CALL(LN_SIGMOID);                                                                      \
    } while (0)

/* A fused 2x2 average pooling's gradient at VL places of a plane (avgpool2_bwd's 0 + g *
 * 0.25 at each, bit for bit) read from the pooled plane p instead of a spread copy: e is
 * the places' entry of the plane's unpool map (batchnorm.c: the first pooled value read,
 * then each lane's offset from it, below UNPOOL_WINDOW). Spreading the plane first cost
 * its stores, then loads that waited on them (avgpool2_bwd: 5.8% of the custom net's
 * step). AVX-512: a vector's 16 places read from 16 pooled values, one load and one
 * permutation; AVX2: 8 places from 16 values (a vector of the custom net's 28-wide rows
 * can end one row and start the next, which reads the same pooled row again from its
 * start), two of each and a blend on the offsets' bit 3; the generic ISA: lane by lane,
 * any offsets. */
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512 || SIMD_MAXPOOL == SIMD_MAXPOOL_AVX2
#define UNPOOL_WINDOW 16
#else
#define UNPOOL_WINDOW 0
#endif
ALWAYS_INLINE vf SFX(unpooled)(const float *p, const int32_t *e)
{
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    const vf v = _mm512_permutexvar_ps(_mm512_loadu_si512(e + 1), _mm512_loadu_ps(p + e[0]));
#elif SIMD_MAXPOOL == SIMD_MAXPOOL_AVX2
    const __m256i at = _mm256_loadu_si256((const __m256i *)(e + 1));
    const vf v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(p + e[0]), at),
                                  _mm256_permutevar8x32_ps(_mm256_loadu_ps(p + e[0] + 8), at),
                                  _mm256_castsi256_ps(_mm256_slli_epi32(at, 28)));
#else
    vf v = V_ZERO();
    for (int l = 0; l < VL; l++) v[l] = p[e[0] + e[1 + l]];
#endif
    return V_ADD(V_ZERO(), V_MUL(v, V_SET1(0.25f)));
}

/* The same for the place in lane l of entry e. */
static inline float SFX(unpooled1)(const float *p, const int32_t *e, int l)
{
    return 0.0f + p[e[0] + e[1 + l]] * 0.25f;
}

/* The int32s of an unpool map's entry (one per vector of places): the first pooled
 * value read, then each lane's offset from it */
#define UNPOOL_ENTRY (VL + 1)

/* R runs (R <= 4, a constant) side by side, run r at x + r stride (dy, act->y
 * likewise): each run's sums in the order one run alone would take, the runs
 * interleaved so that their add and FMA chains overlap instead of waiting on each
 * other's latency. UP (a constant): dy holds pooled planes, read through the unpool
 * map up. */
ALWAYS_INLINE void SFX(bn_grad_sums_runs)(const int R, const int UP, const int KIND, int64_t n, int64_t stride,
                                          int64_t dstride, const float *x, const float *dy, const int32_t *up,
                                          const ln_bn_act *act, int64_t at, float mean,
                                          float invstd, double *sum_dy, double *sum_dy_xhat)
{
    const vf m = V_SET1(mean), is = V_SET1(invstd);
    vf a[4], b[4];
    for (int r = 0; r < R; r++) a[r] = b[r] = V_ZERO();
    int64_t i = 0;
    const int32_t *e = up;
    for (; i + VL <= n; i += VL, e += UP ? UNPOOL_ENTRY : 0)
        for (int r = 0; r < R; r++) {
            const vf xm = V_LOADU(x + r * stride + i) - m;
            const vf d = UP ? SFX(unpooled)(dy + r * dstride, e) : (vf)V_LOADU(dy + r * dstride + i);
            const vf g = SFX(act_grad)(KIND, d, xm, act, at + r * stride + i);
            a[r] = V_ADD(a[r], g);
            b[r] = V_FMA(g, V_MUL(xm, is), b[r]);
        }
    double ha[4], hb[4];
    SFX(hsum_d_runs)(R, a, b, ha, hb);
    for (int r = 0; r < R; r++) {
        const float *xr = x + r * stride, *dyr = dy + r * dstride;
        double sa = ha[r], sb = hb[r];
        for (int64_t j = i; j < n; j++) {
            const float d = UP ? SFX(unpooled1)(dyr, e, (int)(j - i)) : dyr[j];
            const float g = SFX(act_grad1)(KIND, d, xr[j] - mean, act, at + r * stride + j);
            sa += g;
            sb += (double)g * (double)((xr[j] - mean) * invstd);
        }
        sum_dy[r] = sa;
        sum_dy_xhat[r] = sb;
    }
}

ALWAYS_INLINE void SFX(bn_grad_sums_all)(const int UP, const int KIND, int64_t n, int runs, int64_t stride,
                                         int64_t dstride, const float *x, const float *dy, const int32_t *up,
                                         const ln_bn_act *act, float mean, float invstd, double *sum_dy,
                                         double *sum_dy_xhat)
{
    int r = 0;
    for (; r + 4 <= runs; r += 4)
        SFX(bn_grad_sums_runs)(4, UP, KIND, n, stride, dstride, x + r * stride, dy + r * dstride, up, act, r * stride,
                               mean, invstd, sum_dy + r, sum_dy_xhat + r);
    for (; r < runs; r++)
        SFX(bn_grad_sums_runs)(1, UP, KIND, n, stride, dstride, x + r * stride, dy + r * dstride, up, act, r * stride,
                               mean, invstd, sum_dy + r, sum_dy_xhat + r);
}

static void SFX(bn_grad_sums)(int64_t n, int runs, int64_t stride, int64_t dstride, const float *x,
                              const float *dy, const int32_t *up, const ln_bn_act *act, float mean, float invstd,
                              double *sum_dy, double *sum_dy_xhat)
{
#define GRAD_SUMS(K_)                                                                                     \
    (up ? SFX(bn_grad_sums_all)(1, K_, n, runs, stride, dstride, x, dy, up, act, mean, invstd, sum_dy, sum_dy_xhat) \
        : SFX(bn_grad_sums_all)(0, K_, n, runs, stride, dstride, x, dy, NULL, act, mean, invstd, sum_dy, sum_dy_xhat))
    ACT_DISPATCH(act, GRAD_SUMS);
#undef GRAD_SUMS
}

ALWAYS_INLINE void SFX(bn_dx_run)(const int UP, const int KIND, int64_t n, const float *x, const float *dy,
                                  const int32_t *up, const ln_bn_act *act, float *dx, float mean, float invstd,
                                  float k, float mdy, float mdyx, int training)
{
    const vf m = V_SET1(mean), is = V_SET1(invstd), kv = V_SET1(k);
    const vf md = V_SET1(mdy), mx = V_SET1(mdyx);
    int64_t i = 0;
    const int32_t *e = up;
#define BN_DY(i_) (UP ? SFX(unpooled)(dy, e) : (vf)V_LOADU(dy + (i_)))
#define BN_DY1(j_) (UP ? SFX(unpooled1)(dy, e, (int)((j_) - i)) : dy[j_])
    if (!training) {
        for (; i + VL <= n; i += VL, e += UP ? UNPOOL_ENTRY : 0)
            V_STOREU(dx + i, V_MUL(SFX(act_grad)(KIND, BN_DY(i), V_LOADU(x + i) - m, act, i), kv));
        for (int64_t j = i; j < n; j++) dx[j] = SFX(act_grad1)(KIND, BN_DY1(j), x[j] - mean, act, j) * k;
        return;
    }
    for (; i + VL <= n; i += VL, e += UP ? UNPOOL_ENTRY : 0) {
        const vf xm = V_LOADU(x + i) - m;
        const vf xhat = V_MUL(xm, is);
        V_STOREU(dx + i, V_MUL(kv, (SFX(act_grad)(KIND, BN_DY(i), xm, act, i) - md) - V_MUL(xhat, mx)));
    }
    for (int64_t j = i; j < n; j++) {
        const float xhat = (x[j] - mean) * invstd;
        dx[j] = k * (SFX(act_grad1)(KIND, BN_DY1(j), x[j] - mean, act, j) - mdy - xhat * mdyx);
    }
#undef BN_DY
#undef BN_DY1
}

static void SFX(bn_dx)(int64_t n, const float *x, const float *dy, const int32_t *up, const ln_bn_act *act,
                       float *dx, float mean, float invstd, float k, float mdy, float mdyx, int training)
{
#define DX_RUN(K_)                                                                                        \
    (up ? SFX(bn_dx_run)(1, K_, n, x, dy, up, act, dx, mean, invstd, k, mdy, mdyx, training)                \
        : SFX(bn_dx_run)(0, K_, n, x, dy, NULL, act, dx, mean, invstd, k, mdy, mdyx, training))
    ACT_DISPATCH(act, DX_RUN);
#undef DX_RUN
}

/* ============================================ batchnorm over features (1d) */

/* A batchnorm1d on N x F (one value per feature and sample: batchnorm.c's runs of one)
 * takes its statistics down the columns of a batch. These kernels go along the rows
 * instead, a vector of features at a time, and compute each feature's sums as the
 * reference does, value after value in sample order and in double, so bit for bit the
 * reference's (batchnorm.c's forward_reference and backward_reference), only in lanes:
 * features [0, f) of rows `stride` floats apart. Before these, the reference's loops
 * went down each column alone: a net of linear 784-512, batchnorm1d, ReLU, linear
 * 512-256, batchnorm1d, ReLU, linear 256-10 trained at 60% of its speed without the
 * batchnorms. */

/* VL/2 doubles, in the bytes of one vector of floats; VL/2 floats */
typedef double SFX(vd) __attribute__((vector_size(VL * sizeof(float))));
typedef float SFX(vh) __attribute__((vector_size(VL * sizeof(float) / 2)));
#define VD (VL / 2)

/* VL/2 floats at p, as doubles */
ALWAYS_INLINE SFX(vd) SFX(widen_at)(const float *p)
{
    SFX(vh) h;
    memcpy(&h, p, sizeof h);
    return __builtin_convertvector(h, SFX(vd));
}

/* the two halves of a vector of floats, as doubles */
ALWAYS_INLINE void SFX(widen)(vf v, SFX(vd) *lo, SFX(vd) *hi)
{
    float t[VL];
    memcpy(t, &v, sizeof t);
    *lo = SFX(widen_at)(t);
    *hi = SFX(widen_at)(t + VD);
}

ALWAYS_INLINE SFX(vd) SFX(load_d)(const double *p)
{
    SFX(vd) v;
    memcpy(&v, p, sizeof v);
    return v;
}

ALWAYS_INLINE void SFX(store_d)(double *p, SFX(vd) v) { memcpy(p, &v, sizeof v); }

/* out[j] = 0 + x[0][j] + x[1][j] + ... (SQ: the squares of x - mean[j] instead, each
 * (double)x - mean[j] times itself) for NV vectors of features: 2 NV chains of double
 * adds side by side */
ALWAYS_INLINE void SFX(feat_sums_n)(const int NV, const int SQ, int batch, int64_t stride, const float *x,
                                    const double *mean, double *out)
{
    SFX(vd) acc[8], m[8];
    for (int h = 0; h < 2 * NV; h++) {
        acc[h] = (SFX(vd)){0};
        if (SQ) m[h] = SFX(load_d)(mean + h * VD);
    }
    for (int n = 0; n < batch; n++) {
        const float *r = x + (int64_t)n * stride;
        for (int h = 0; h < 2 * NV; h++) {
            SFX(vd) v = SFX(widen_at)(r + h * VD);
            if (SQ) {
                v = v - m[h];
                v = v * v;
            }
            acc[h] = acc[h] + v;
        }
    }
    for (int h = 0; h < 2 * NV; h++) SFX(store_d)(out + h * VD, acc[h]);
}

/* One feature's, as the reference */
static double SFX(feat_sum1)(int SQ, int batch, int64_t stride, const float *x, double mean)
{
    double s = 0.0;
    for (int n = 0; n < batch; n++) {
        const double v = SQ ? (double)x[(int64_t)n * stride] - mean : (double)x[(int64_t)n * stride];
        s += SQ ? v * v : v;
    }
    return s;
}

/* out[j] for features j < f: the sum of x down column j (mean NULL), or of the squared
 * deviations from mean[j] */
static void SFX(bn_feat_sums)(int batch, int64_t f, int64_t stride, const float *x, const double *mean,
                              double *out)
{
    int64_t j = 0;
    if (mean) {
        for (; j + 4 * VL <= f; j += 4 * VL) SFX(feat_sums_n)(4, 1, batch, stride, x + j, mean + j, out + j);
        for (; j + VL <= f; j += VL) SFX(feat_sums_n)(1, 1, batch, stride, x + j, mean + j, out + j);
        for (; j < f; j++) out[j] = SFX(feat_sum1)(1, batch, stride, x + j, mean[j]);
    } else {
        for (; j + 4 * VL <= f; j += 4 * VL) SFX(feat_sums_n)(4, 0, batch, stride, x + j, NULL, out + j);
        for (; j + VL <= f; j += VL) SFX(feat_sums_n)(1, 0, batch, stride, x + j, NULL, out + j);
        for (; j < f; j++) out[j] = SFX(feat_sum1)(0, batch, stride, x + j, 0.0);
    }
}

/* y = (x - mean[j]) * alpha[j] + beta[j] over batch rows of f features (the
 * reference's float operations in its order), then a fused ReLU if relu */
static void SFX(bn_feat_affine)(int batch, int64_t f, int64_t stride, const float *x, float *y, const float *mean,
                                const float *alpha, const float *beta, int relu)
{
    for (int n = 0; n < batch; n++) {
        const float *xr = x + (int64_t)n * stride;
        float *yr = y + (int64_t)n * stride;
        int64_t j = 0;
        for (; j + VL <= f; j += VL) {
            const vf v = V_ADD(V_MUL(V_LOADU(xr + j) - V_LOADU(mean + j), V_LOADU(alpha + j)), V_LOADU(beta + j));
            V_STOREU(yr + j, relu ? SFX(relu_of)(v) : v);
        }
        if (j < f) {
            const int k = (int)(f - j);
            const vf v = V_ADD(V_MUL(V_LOADU_N(xr + j, k) - V_LOADU_N(mean + j, k), V_LOADU_N(alpha + j, k)),
                               V_LOADU_N(beta + j, k));
            V_STOREU_N(yr + j, relu ? SFX(relu_of)(v) : v, k);
        }
    }
}

/* dy through a fused ReLU (alpha NULL: none): +0 where the forward's value (x - mean) *
 * alpha + beta, recomputed from xm = x - mean with its operations, is not > 0 (what
 * relu_bwd gives from the ReLU's output) */
ALWAYS_INLINE vf SFX(feat_relu_grad)(vf d, vf xm, const float *alpha, const float *beta, int64_t j, int w)
{
    if (!alpha) return d;
    const vf a = w == VL ? V_LOADU(alpha + j) : V_LOADU_N(alpha + j, w);
    const vf b = w == VL ? V_LOADU(beta + j) : V_LOADU_N(beta + j, w);
    return SFX(relu_grad_at)(d, V_ADD(V_MUL(xm, a), b));
}

/* sum_dy[j] = 0 + dy[0][j] + dy[1][j] + ... and sum_dy_xhat[j] likewise of (double)dy *
 * (double)xhat, xhat = (x - mean[j]) * invstd[j] in float, for NV vectors of features
 * (4 NV chains side by side) */
ALWAYS_INLINE void SFX(feat_grad_sums_n)(const int NV, int batch, int64_t stride, const float *x, const float *dy,
                                         const float *mean, const float *invstd, const float *alpha,
                                         const float *beta, double *sum_dy, double *sum_dy_xhat)
{
    SFX(vd) a[4], b[4];
    vf m[2], is[2];
    for (int h = 0; h < 2 * NV; h++) a[h] = b[h] = (SFX(vd)){0};
    for (int v = 0; v < NV; v++) {
        m[v] = V_LOADU(mean + v * VL);
        is[v] = V_LOADU(invstd + v * VL);
    }
    for (int n = 0; n < batch; n++) {
        const float *xr = x + (int64_t)n * stride, *dr = dy + (int64_t)n * stride;
        for (int v = 0; v < NV; v++) {
            const vf xm = V_LOADU(xr + v * VL) - m[v], xhat = V_MUL(xm, is[v]);
            const vf d = SFX(feat_relu_grad)(V_LOADU(dr + v * VL), xm, alpha, beta, v * VL, VL);
            SFX(vd) dlo, dhi, xlo, xhi;
            SFX(widen)(d, &dlo, &dhi);
            SFX(widen)(xhat, &xlo, &xhi);
            a[2 * v] = a[2 * v] + dlo;
            a[2 * v + 1] = a[2 * v + 1] + dhi;
            b[2 * v] = b[2 * v] + dlo * xlo;
            b[2 * v + 1] = b[2 * v + 1] + dhi * xhi;
        }
    }
    for (int h = 0; h < 2 * NV; h++) {
        SFX(store_d)(sum_dy + h * VD, a[h]);
        SFX(store_d)(sum_dy_xhat + h * VD, b[h]);
    }
}

/* The sums of the backward for features j < f: of dy, and of dy * xhat (dy through a
 * fused ReLU first unless alpha is NULL) */
static void SFX(bn_feat_grad_sums)(int batch, int64_t f, int64_t stride, const float *x, const float *dy,
                                   const float *mean, const float *invstd, const float *alpha, const float *beta,
                                   double *sum_dy, double *sum_dy_xhat)
{
    int64_t j = 0;
    for (; j + 2 * VL <= f; j += 2 * VL)
        SFX(feat_grad_sums_n)(2, batch, stride, x + j, dy + j, mean + j, invstd + j, alpha ? alpha + j : NULL,
                              beta + j, sum_dy + j, sum_dy_xhat + j);
    for (; j + VL <= f; j += VL)
        SFX(feat_grad_sums_n)(1, batch, stride, x + j, dy + j, mean + j, invstd + j, alpha ? alpha + j : NULL,
                              beta + j, sum_dy + j, sum_dy_xhat + j);
    for (; j < f; j++) {
        double sa = 0.0, sb = 0.0;
        for (int n = 0; n < batch; n++) {
            const float xm = x[(int64_t)n * stride + j] - mean[j];
            float d = dy[(int64_t)n * stride + j];
            if (alpha && !(xm * alpha[j] + beta[j] > 0.0f)) d = 0.0f;
            sa += d;
            sb += (double)d * (double)(xm * invstd[j]);
        }
        sum_dy[j] = sa;
        sum_dy_xhat[j] = sb;
    }
}

/* dx = k[j] * (dy - mdy[j] - xhat * mdyx[j]), xhat = (x - mean[j]) * invstd[j], in
 * training; dy * k[j] otherwise (the reference's float operations in its order); dy
 * through a fused ReLU first unless alpha is NULL */
static void SFX(bn_feat_dx)(int batch, int64_t f, int64_t stride, const float *x, const float *dy, float *dx,
                            const float *mean, const float *invstd, const float *alpha, const float *beta,
                            const float *k, const float *mdy, const float *mdyx, int training)
{
    for (int n = 0; n < batch; n++) {
        const float *xr = x + (int64_t)n * stride, *dr = dy + (int64_t)n * stride;
        float *o = dx + (int64_t)n * stride;
        for (int64_t j = 0; j < f; j += VL) {
            const int w = f - j < VL ? (int)(f - j) : VL;
#define FEAT_LOAD(p_) (w == VL ? V_LOADU(p_) : V_LOADU_N((p_), w))
            vf r;
            const vf xm = FEAT_LOAD(xr + j) - FEAT_LOAD(mean + j);
            const vf d = SFX(feat_relu_grad)(FEAT_LOAD(dr + j), xm, alpha, beta, j, w);
            if (!training) {
                r = V_MUL(d, FEAT_LOAD(k + j));
            } else {
                const vf xhat = V_MUL(xm, FEAT_LOAD(invstd + j));
                r = V_MUL(FEAT_LOAD(k + j), (d - FEAT_LOAD(mdy + j)) - V_MUL(xhat, FEAT_LOAD(mdyx + j)));
            }
#undef FEAT_LOAD
            if (w == VL)
                V_STOREU(o + j, r);
            else
                V_STOREU_N(o + j, r, w);
        }
    }
}

#undef VD

/* ================================================================= avgpool */

/* 2x2 windows, stride 2, floor mode: pool.c's reference sum ((((0 + tl) + tr) + bl) + br)
 * times 0.25, bit for bit. One row pair: output row yo of ow values from input rows r0,
 * r1. With the __m256 intrinsics (the AVX2 and AVX-512 regions): 8 windows at a time
 * from the even and odd columns (as maxpool), the last 8 (or 4 when the row has fewer
 * than 8) overlapping the ones before instead of a scalar tail; the generic ISA: a plain
 * loop. (The AVX-512 region took the plain loop until session 10, which the compiler did
 * not vectorise: the custom net's avgpool2_bwd was 6.7% of its profile.) */
#if SIMD_M256
ALWAYS_INLINE __m256 SFX(avgpool2_8)(const float *r0, const float *r1)
{
    __m256 tl, tr, bl, br;
    SFX(deinterleave)(_mm256_loadu_ps(r0), _mm256_loadu_ps(r0 + 8), &tl, &tr);
    SFX(deinterleave)(_mm256_loadu_ps(r1), _mm256_loadu_ps(r1 + 8), &bl, &br);
    const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_setzero_ps(), tl), tr), bl), br);
    return _mm256_mul_ps(s, _mm256_set1_ps(0.25f));
}

ALWAYS_INLINE __m128 SFX(avgpool2_4)(const float *r0, const float *r1)
{
    const __m128 a0 = _mm_loadu_ps(r0), a1 = _mm_loadu_ps(r0 + 4);
    const __m128 b0 = _mm_loadu_ps(r1), b1 = _mm_loadu_ps(r1 + 4);
    const __m128 tl = _mm_shuffle_ps(a0, a1, 0x88), tr = _mm_shuffle_ps(a0, a1, 0xDD);
    const __m128 bl = _mm_shuffle_ps(b0, b1, 0x88), br = _mm_shuffle_ps(b0, b1, 0xDD);
    const __m128 s = _mm_add_ps(_mm_add_ps(_mm_add_ps(_mm_add_ps(_mm_setzero_ps(), tl), tr), bl), br);
    return _mm_mul_ps(s, _mm_set1_ps(0.25f));
}
#endif

ALWAYS_INLINE void SFX(avgpool2_row)(int ow, const float *restrict r0, const float *restrict r1,
                                     float *restrict yo)
{
    int ox = 0;
#if SIMD_M256
    if (ow >= 8) {
        for (; ox + 8 <= ow; ox += 8) _mm256_storeu_ps(yo + ox, SFX(avgpool2_8)(r0 + 2 * ox, r1 + 2 * ox));
        if (ox < ow) _mm256_storeu_ps(yo + ow - 8, SFX(avgpool2_8)(r0 + 2 * (ow - 8), r1 + 2 * (ow - 8)));
        return;
    }
    if (ow >= 4) {
        _mm_storeu_ps(yo, SFX(avgpool2_4)(r0, r1));
        if (ow > 4) _mm_storeu_ps(yo + ow - 4, SFX(avgpool2_4)(r0 + 2 * (ow - 4), r1 + 2 * (ow - 4)));
        return;
    }
#endif
    for (; ox < ow; ox++)
        yo[ox] = ((((0.0f + r0[2 * ox]) + r0[2 * ox + 1]) + r1[2 * ox]) + r1[2 * ox + 1]) * 0.25f;
}

static void SFX(avgpool2_fwd)(int64_t planes, int h, int w, const float *x, float *y)
{
    const int oh = h / 2, ow = w / 2;
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    /* Even rows of at most 32: a row pair's windows from plain loads of 16 (masked
     * only where they would run past x), the columns parted by two permutations a row,
     * one store of 16 that spills into the next row pair's outputs (written after it;
     * masked near the end of y). Batchnorm calls this per plane. */
    if (!(w & 1) && w <= 32 && w >= 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        const __m512 q = _mm512_set1_ps(0.25f);
        const float *xend = x + planes * h * w;
        const float *yend = y + planes * oh * ow;
        const int lo = w < 16 ? w : 16, hi = w - lo;
        const __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
        const __mmask16 mn = (__mmask16)((1u << ow) - 1);
        for (int64_t pl = 0; pl < planes; pl++)
            for (int oy = 0; oy < oh; oy++) {
                const float *r0 = x + (pl * h + 2 * oy) * w, *r1 = r0 + w;
                float *yo = y + (pl * oh + oy) * ow;
                __m512 a0, a1, b0, b1;
                if (r1 + 16 + (hi ? 16 : 0) <= xend) {
                    a0 = _mm512_loadu_ps(r0);
                    b0 = _mm512_loadu_ps(r1);
                    a1 = hi ? _mm512_loadu_ps(r0 + 16) : a0;
                    b1 = hi ? _mm512_loadu_ps(r1 + 16) : b0;
                } else {
                    a0 = _mm512_maskz_loadu_ps(mlo, r0);
                    b0 = _mm512_maskz_loadu_ps(mlo, r1);
                    a1 = _mm512_maskz_loadu_ps(mhi, r0 + 16);
                    b1 = _mm512_maskz_loadu_ps(mhi, r1 + 16);
                }
                const __m512 tl = _mm512_permutex2var_ps(a0, even, a1), tr = _mm512_permutex2var_ps(a0, odd, a1);
                const __m512 bl = _mm512_permutex2var_ps(b0, even, b1), br = _mm512_permutex2var_ps(b0, odd, b1);
                const __m512 v = _mm512_mul_ps(
                    _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_setzero_ps(), tl), tr), bl), br), q);
                if (yo + 16 <= yend)
                    _mm512_storeu_ps(yo, v);
                else
                    _mm512_mask_storeu_ps(yo, mn, v);
            }
        return;
    }
#endif
    for (int64_t pl = 0; pl < planes; pl++)
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = x + (pl * h + 2 * oy) * w;
            SFX(avgpool2_row)(ow, r0, r0 + w, y + (pl * oh + oy) * ow);
        }
}

/* Backward of one row pair: every input position written once (0 + dy/4, as the
 * reference's zeroed buffer plus one contribution; an odd last column gets 0). With the
 * __m256 intrinsics, even rows of 8 or more: 8 inputs (4 windows) at a time, the last 8
 * overlapping. */
ALWAYS_INLINE void SFX(avgpool2_row_grad)(int ow, int w, const float *restrict g, float *restrict r0,
                                          float *restrict r1)
{
    int ox = 0;
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    /* 16 inputs (8 windows) at a time, each window's value to its two columns by one
     * permutation (28 wide: 2 iterations where 8-input steps took 4) */
    if (!(w & 1) && w >= 16) {
        const __m256 q = _mm256_set1_ps(0.25f);
        const __m512i pairs = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        for (int c = 0;; c += 16) {
            if (c + 16 > w) c = w - 16;
            const __m256 v = _mm256_add_ps(_mm256_setzero_ps(), _mm256_mul_ps(_mm256_loadu_ps(g + c / 2), q));
            const __m512 d = _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(v));
            _mm512_storeu_ps(r0 + c, d);
            _mm512_storeu_ps(r1 + c, d);
            if (c + 16 == w) return;
        }
    }
#endif
#if SIMD_M256
    if (!(w & 1) && w >= 8) {
        const __m128 q = _mm_set1_ps(0.25f);
        for (int c = 0;; c += 8) {
            if (c + 8 > w) c = w - 8;
            const __m128 v = _mm_add_ps(_mm_setzero_ps(), _mm_mul_ps(_mm_loadu_ps(g + c / 2), q));
            const __m256 d = _mm256_set_m128(_mm_unpackhi_ps(v, v), _mm_unpacklo_ps(v, v));
            _mm256_storeu_ps(r0 + c, d);
            _mm256_storeu_ps(r1 + c, d);
            if (c + 8 == w) return;
        }
    }
#endif
    for (; ox < ow; ox++) {
        const float v = 0.0f + g[ox] * 0.25f;
        r0[2 * ox] = v;
        r0[2 * ox + 1] = v;
        r1[2 * ox] = v;
        r1[2 * ox + 1] = v;
    }
    if (w & 1) r0[w - 1] = r1[w - 1] = 0.0f;
}

#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
/* A row pair of a pooling's input gradient, rows r0 and r1 of up to 32 floats: the top
 * row's lanes in t0 (and t1 past 16, when hi), the bottom row's in b0 (b1). Full stores
 * spill into the next row (r0's into r1, stored next) or the next row pairs (stored
 * later); near the end of the gradient (end) they are masked (mlo, mhi: the row's lanes). */
ALWAYS_INLINE void SFX(store_row_pair)(float *r0, float *r1, __m512 t0, __m512 t1, __m512 b0, __m512 b1, int hi,
                                       __mmask16 mlo, __mmask16 mhi, const float *end)
{
    if (r1 + (hi ? 32 : 16) <= end) {
        _mm512_storeu_ps(r0, t0);
        if (hi) _mm512_storeu_ps(r0 + 16, t1);
        _mm512_storeu_ps(r1, b0);
        if (hi) _mm512_storeu_ps(r1 + 16, b1);
    } else {
        _mm512_mask_storeu_ps(r0, mlo, t0);
        _mm512_mask_storeu_ps(r0 + 16, mhi, t1);
        _mm512_mask_storeu_ps(r1, mlo, b0);
        _mm512_mask_storeu_ps(r1 + 16, mhi, b1);
    }
}
#endif

/* Backward (the odd last row and column get 0). */
static void SFX(avgpool2_bwd)(int64_t planes, int h, int w, const float *dy, float *dx)
{
    const int oh = h / 2, ow = w / 2;
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    /* Even rows of at most 32: a row pair's ow gradients from one plain load, each to its
     * two columns by one permutation per 16 inputs, four full stores that spill into
     * the rows stored after them (masked near the end of dx); a load that would run past
     * the end of dy ends at it instead, the permutation's indices shifted to match.
     * Batchnorm calls this for planes its unpool map cannot serve (it took the custom
     * net's 14x14 planes one at a time, 19.5 ns each with the 8-input steps of
     * avgpool2_row_grad) */
    const int64_t gn = planes * oh * ow;
    if (!(w & 1) && w <= 32 && gn >= 16) {
        const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        const __m512i eight = _mm512_set1_epi32(8);
        const __m512 q = _mm512_set1_ps(0.25f);
        const float *gend = dy + gn, *dxend = dx + planes * h * w;
        const int lo = w < 16 ? w : 16, hi = w - lo;
        const __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
        for (int64_t pl = 0; pl < planes; pl++) {
            float *xp = dx + pl * h * w;
            for (int oy = 0; oy < oh; oy++) {
                const float *g = dy + (pl * oh + oy) * ow;
                float *r0 = xp + (int64_t)(2 * oy) * w, *r1 = r0 + w;
                __m512i i0 = dup;
                if (g + 16 > gend) { /* the last 16 of dy, the indices moved up */
                    i0 = _mm512_add_epi32(dup, _mm512_set1_epi32((int)(g + 16 - gend)));
                    g = gend - 16;
                }
                const __m512 v = _mm512_add_ps(_mm512_setzero_ps(), _mm512_mul_ps(_mm512_loadu_ps(g), q));
                const __m512 a = _mm512_permutexvar_ps(i0, v);
                const __m512 b = _mm512_permutexvar_ps(_mm512_add_epi32(i0, eight), v);
                SFX(store_row_pair)(r0, r1, a, b, a, b, hi, mlo, mhi, dxend);
            }
            if (h & 1) memset(xp + (int64_t)(h - 1) * w, 0, sizeof(float) * (size_t)w);
        }
        return;
    }
#endif
    for (int64_t pl = 0; pl < planes; pl++) {
        float *xp = dx + pl * h * w;
        for (int oy = 0; oy < oh; oy++) {
            float *r0 = xp + (int64_t)(2 * oy) * w;
            SFX(avgpool2_row_grad)(ow, w, dy + (pl * oh + oy) * ow, r0, r0 + w);
        }
        if (h & 1) memset(xp + (int64_t)(h - 1) * w, 0, sizeof(float) * (size_t)w);
    }
}

/* =================================================== pooling, any window */

/* The values at one place of VL windows side by side (lane l's at p + lane_at[l]; only
 * the first n lanes are used, the others hold any value): with stride 1, plain loads
 * (masked for a row's last windows); with stride 2 on AVX-512 and AVX2, two loads and
 * a permutation picking the even places (masked where they would run past `end`, the
 * end of x); else lane by lane. */
ALWAYS_INLINE vf SFX(window_values)(const float *p, int s, int n, vi lane_at, const float *end)
{
    if (s == 1) {
        if (n == VL) return V_LOADU(p);
        return V_LOADU_N(p, n);
    }
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512 || SIMD_MAXPOOL == SIMD_MAXPOOL_AVX2
    if (s == 2) {
        if (p + 2 * VL <= end) return SFX(even_of)(V_LOADU(p), V_LOADU(p + VL));
        const int64_t left = end - p; /* >= 1: lane 0's value is in x */
        return SFX(even_of)(V_LOADU_N(p, left < VL ? (int)left : VL),
                            left > VL ? V_LOADU_N(p + VL, (int)(left - VL)) : V_ZERO());
    }
#else
    (void)end;
#endif
    /* lane by lane (the gathers of AVX2 and AVX-512 took longer here: 31-34 against 21
     * ns an output of a 5x5 stride-3 pooling) */
    float v[VL];
    for (int l = 0; l < VL; l++) v[l] = p[lane_at[l]];
    return V_LOADU(v);
}

/* Lane l's window offset l * s; for a row's last n windows, the last window's in the
 * lanes past n (so that those lanes read places of the row, not past x). */
ALWAYS_INLINE vi SFX(window_lanes)(int n, int s)
{
    int32_t at[VL];
    for (int l = 0; l < VL; l++) at[l] = (l < n ? l : n - 1) * s;
    vi v;
    memcpy(&v, at, sizeof v);
    return v;
}

/* Whether b, later in the window's order, takes the place of a: greater, or the first
 * NaN (not (b <= a) is greater or unordered; a NaN a is never replaced). The 2x2
 * kernels' later_wins is this rule (AVX2: this function; AVX-512: as a lane mask). */
ALWAYS_INLINE vi SFX(window_takes)(vf a, vf b) { return ~(b <= a) & (a == a); }

#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512 || SIMD_MAXPOOL == SIMD_MAXPOOL_AVX2
#define POOL_S2_FAST 1
/* Stride 2: the even places of VL floats at a in the low half of the lanes and of VL
 * floats at b in the high half. With b = a + VL, the even places of 2 VL floats from a
 * (window_values); with b two input rows below a, the windows of two output rows of at
 * most VL / 2 (a row pair: planes whose output rows fill half a vector or less, the
 * second pooling of a 3x3 stride-2 net, 7 wide, taking one vector for two rows). */
ALWAYS_INLINE vf SFX(even_halves)(const float *a, const float *b) { return SFX(even_of)(V_LOADU(a), V_LOADU(b)); }

/* The first n lanes of the low half of v at lo, those of the high half at hi (a row
 * pair's outputs; n <= VL / 2). */
ALWAYS_INLINE void SFX(store_halves)(float *lo, float *hi, vf v, vi at, int n, int32_t *alo, int32_t *ahi)
{
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    const __mmask16 m = a5_mask(n);
    _mm512_mask_storeu_ps(lo, m, (__m512)v);
    _mm512_mask_storeu_ps(hi, m, _mm512_shuffle_f32x4((__m512)v, (__m512)v, _MM_SHUFFLE(3, 2, 3, 2)));
    if (alo) {
        _mm512_mask_storeu_epi32(alo, m, (__m512i)at);
        _mm512_mask_storeu_epi32(ahi, m, _mm512_shuffle_i32x4((__m512i)at, (__m512i)at, _MM_SHUFFLE(3, 2, 3, 2)));
    }
#else
    const __m256i m = a2_mask(n);
    _mm256_maskstore_ps(lo, m, (__m256)v);
    _mm256_maskstore_ps(hi, m, _mm256_permute2f128_ps((__m256)v, (__m256)v, 0x11));
    if (alo) {
        _mm256_maskstore_epi32(alo, m, (__m256i)at);
        _mm256_maskstore_epi32(ahi, m, _mm256_permute2x128_si256((__m256i)at, (__m256i)at, 0x11));
    }
#endif
}

/* The values at offset q of the windows of one output vector (pair 0: VL windows of a row;
 * 1: a row pair, rows w apart in the input). */
ALWAYS_INLINE vf SFX(s2_values)(const float *q, int w, const int pair)
{
    return SFX(even_halves)(q, pair ? q + 2 * (int64_t)w : q + VL);
}

/* One output vector of a max pooling with stride 2 from the row at p (first window's
 * top-left), rows w apart, whole vectors read without bounds (the caller checks): each
 * window row's maximum over its k columns, then the rows' in order. Taking the later
 * value only when it wins, rows first or all at once give the same value and offset
 * (the first of the greatest, NaN the greatest); the rows' chains run side by side.
 * *off: the offset from the window's top-left. */
ALWAYS_INLINE void SFX(maxpool_s2_vector)(const float *p, int w, const int k, const int pair, vf *best, vi *off)
{
    const vi zero = {0};
    vf b = V_ZERO();
    vi at = zero;
    for (int ki = 0; ki < k; ki++) {
        const float *r = p + (int64_t)ki * w;
        vf rb = SFX(s2_values)(r, w, pair);
        vi ra = zero; /* the column */
        for (int kj = 1; kj < k; kj++) {
            const vf v = SFX(s2_values)(r + kj, w, pair);
            const vi take = SFX(window_takes)(rb, v);
            rb = SFX(select)(take, v, rb);
            ra = (vi)SFX(select)(take, (vf)(zero + kj), (vf)ra);
        }
        ra += ki * w;
        if (ki == 0) {
            b = rb;
            at = ra;
        } else {
            const vi take = SFX(window_takes)(b, rb);
            b = SFX(select)(take, rb, b);
            at = (vi)SFX(select)(take, (vf)ra, (vf)at);
        }
    }
    *best = b;
    *off = at;
}

/* One output vector's window sums with stride 2, in the reference's order from +0; whole
 * vectors read without bounds (the caller checks). */
ALWAYS_INLINE vf SFX(avgpool_s2_vector)(const float *p, int w, const int k, const int pair)
{
    vf sum = V_ZERO();
    for (int ki = 0; ki < k; ki++)
        for (int kj = 0; kj < k; kj++) sum = V_ADD(sum, SFX(s2_values)(p + (int64_t)ki * w + kj, w, pair));
    return sum;
}

/* One output vector of stride 2 (max: *at its offsets from p; else the window sums),
 * k a constant for 2 and 3. */
ALWAYS_INLINE vf SFX(pool_s2_vector)(const float *p, int w, int k, const int pair, const int max, vi *at)
{
    vf v;
    if (max) {
        if (k == 3)
            SFX(maxpool_s2_vector)(p, w, 3, pair, &v, at);
        else if (k == 2)
            SFX(maxpool_s2_vector)(p, w, 2, pair, &v, at);
        else
            SFX(maxpool_s2_vector)(p, w, k, pair, &v, at);
    } else {
        if (k == 3)
            v = SFX(avgpool_s2_vector)(p, w, 3, pair);
        else if (k == 2)
            v = SFX(avgpool_s2_vector)(p, w, 2, pair);
        else
            v = SFX(avgpool_s2_vector)(p, w, k, pair);
    }
    return v;
}
#else
#define POOL_S2_FAST 0
#endif

/* Max (argmax given) or average pooling with any square window k and stride s (floor
 * mode, no padding) over `planes` planes of h x w: pool.c's reference bit for bit, the
 * max pooling's argmax included (offsets in the plane). VL windows of an output row go
 * side by side (the row's last ones in n <= VL lanes), each lane reading its window in
 * the reference's order (rows, then columns): the max taking a value that is greater,
 * or the first NaN; the average summing from +0, times 1 / k^2. The reference's branch
 * on every value cost 10 ms of a 32 ms step of a CIFAR-shaped net with two 3x3 stride-2
 * poolings (21-22 ns an output). Stride 2 on AVX-512 and AVX2 goes to pool_s2_vector
 * where its reads stay inside x (bounds checked once per vector, no test of the stride
 * per value), two output rows to a vector where they fit in half of one
 * (`POOLS_ONLY=1 kernel_bench 4`, 64 planes of 15 x 15, 3x3 windows: max 14.5 -> 3.4 us
 * a sample, average 6.6 -> 2.6). */
ALWAYS_INLINE void SFX(pool_fwd_any)(int64_t planes, int h, int w, int k, int s, const float *x, float *y,
                                     int32_t *argmax, const int max)
{
    const int oh = (h - k) / s + 1, ow = (w - k) / s + 1, last = ow - (ow - 1) / VL * VL;
    const vi full = SFX(window_lanes)(VL, s), part = SFX(window_lanes)(last, s);
    const float *end = x + planes * h * w;
    const vf inv = V_SET1(1.0f / (float)(k * k));
#if POOL_S2_FAST
    /* the furthest a vector's reads go past its first window's top-left */
    const int64_t reach = (int64_t)(k - 1) * w + (k - 1) + 2 * VL;
    vi pair_at = full; /* a row pair's lanes: offsets of the low half's row, then the high half's */
    for (int l = VL / 2; l < VL; l++) pair_at[l] = 2 * w + 2 * (l - VL / 2);
    const int pairs = s == 2 && 2 * ow <= VL;
#endif
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        int32_t *ap = max ? argmax + pl * oh * ow : NULL;
        int oy = 0;
#if POOL_S2_FAST
        for (; pairs && oy + 1 < oh && xp + (int64_t)oy * 2 * w + 2 * w + reach - VL <= end; oy += 2) {
            const int first = oy * 2 * w;
            vi at;
            vf v = SFX(pool_s2_vector)(xp + first, w, k, 1, max, &at);
            if (!max) v = V_MUL(v, inv);
            SFX(store_halves)(yp + oy * ow, yp + (oy + 1) * ow, v, at + pair_at + first, ow,
                              max ? ap + oy * ow : NULL, max ? ap + (oy + 1) * ow : NULL);
        }
#endif
        for (; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox += VL) {
                const int n = ow - ox < VL ? last : VL;
                const vi lane_at = n == VL ? full : part;
                const int first = oy * s * w + ox * s;
                vf v;
                vi at;
#if POOL_S2_FAST
                if (s == 2 && xp + first + reach <= end) {
                    v = SFX(pool_s2_vector)(xp + first, w, k, 0, max, &at);
                    at += full + first;
                } else
#endif
                if (max) {
                    v = SFX(window_values)(xp + first, s, n, lane_at, end);
                    at = lane_at + first;
                    for (int ki = 0; ki < k; ki++)
                        for (int kj = ki ? 0 : 1; kj < k; kj++) {
                            const int off = first + ki * w + kj;
                            const vf u = SFX(window_values)(xp + off, s, n, lane_at, end);
                            const vi take = SFX(window_takes)(v, u);
                            v = SFX(select)(take, u, v);
                            at = (vi)SFX(select)(take, (vf)(lane_at + off), (vf)at);
                        }
                } else {
                    v = V_ZERO();
                    for (int ki = 0; ki < k; ki++)
                        for (int kj = 0; kj < k; kj++)
                            v = V_ADD(v, SFX(window_values)(xp + first + ki * w + kj, s, n, lane_at, end));
                }
                if (!max) v = V_MUL(v, inv);
                if (n == VL) {
                    V_STOREU(yp + oy * ow + ox, v);
                    if (max) memcpy(ap + oy * ow + ox, &at, sizeof at);
                } else {
                    V_STOREU_N(yp + oy * ow + ox, v, n);
                    if (max) memcpy(ap + oy * ow + ox, &at, sizeof(int32_t) * (size_t)n);
                }
            }
    }
}

static void SFX(maxpool_fwd)(int64_t planes, int h, int w, int k, int s, const float *x, float *y,
                             int32_t *argmax)
{
    SFX(pool_fwd_any)(planes, h, w, k, s, x, y, argmax, 1);
}

static void SFX(avgpool_fwd)(int64_t planes, int h, int w, int k, int s, const float *x, float *y)
{
    SFX(pool_fwd_any)(planes, h, w, k, s, x, y, NULL, 0);
}

/* The average pooling's input gradient with any window, gathered: each input takes the
 * gradients of the outputs whose windows hold it, in the order of those outputs (rows,
 * then columns), from +0, as the reference adds them to its zeroed dx: the same
 * additions, bit for bit, without the memset and without additions that wait on each
 * other through memory. A lane with no c-th window adds +0, which changes nothing (a sum
 * that starts at +0 is never -0). pool.c's passes along the rows (avgpool_backward_any)
 * took 24.7-25.6 us a sample of 32 planes of 32 x 32 with 3x3 windows of stride 2; this,
 * 6.5-6.7 (`POOLS_ONLY=1 kernel_bench 64`). */

#if SIMD_MAXPOOL != SIMD_MAXPOOL_SCALAR /* the gather's permutations */
/* Most entries of a row's gather table (vectors of a row x windows per input), most
 * windows per input along a row, most rows of a plane. */
#define POOL_GATHER_MAX 64
#define POOL_HOLDERS_MAX 8
#define POOL_ROWS_MAX 1024

/* The windows that hold each input of a row, VL inputs at a time: entry v * cmax + c
 * says where the c-th window (in column order) of each lane of vector v has its output,
 * as base + rel[lane] (rel -1: the lane has no c-th window; no lane has one: base 0, all
 * -1), and how many outputs from base on the row still has (avail). Rows: the windows
 * rlo[iy] .. rhi[iy] hold input row iy (none when rlo > rhi). */
typedef struct {
    int nv, cmax;
    int base[POOL_GATHER_MAX], avail[POOL_GATHER_MAX];
    int32_t rel[POOL_GATHER_MAX * VL];
    int16_t rlo[POOL_ROWS_MAX], rhi[POOL_ROWS_MAX];
} SFX(pool_gather);

/* The windows (first and last output index) of n_out that hold input i along one axis. */
ALWAYS_INLINE void SFX(pool_holders)(int i, int k, int s, int n_out, int *lo, int *hi)
{
    *lo = i < k ? 0 : (i - k) / s + 1;
    *hi = i / s < n_out - 1 ? i / s : n_out - 1;
}

/* 0 when the table would not fit or a vector's windows span VL outputs or more. */
static int SFX(pool_gather_make)(SFX(pool_gather) *t, int h, int w, int k, int s, int oh, int ow)
{
    if (h > POOL_ROWS_MAX) return 0;
    int cmax = 0;
    for (int i = 0; i < w; i++) {
        int lo, hi;
        SFX(pool_holders)(i, k, s, ow, &lo, &hi);
        if (hi - lo + 1 > cmax) cmax = hi - lo + 1;
    }
    t->nv = (w + VL - 1) / VL;
    t->cmax = cmax;
    if (cmax < 1 || cmax > POOL_HOLDERS_MAX || t->nv * cmax > POOL_GATHER_MAX) return 0;
    for (int v = 0; v < t->nv; v++)
        for (int c = 0; c < cmax; c++) {
            const int e = v * cmax + c;
            int ox[VL], base = -1;
            for (int l = 0; l < VL; l++) {
                const int ix = v * VL + l;
                int lo = 0, hi = -1;
                if (ix < w) SFX(pool_holders)(ix, k, s, ow, &lo, &hi);
                ox[l] = lo + c <= hi ? lo + c : -1;
                if (ox[l] >= 0 && (base < 0 || ox[l] < base)) base = ox[l];
            }
            if (base < 0) base = 0;
            t->base[e] = base;
            t->avail[e] = ow - base < VL ? ow - base : VL;
            for (int l = 0; l < VL; l++) {
                if (ox[l] >= 0 && ox[l] - base >= VL) return 0;
                t->rel[e * VL + l] = ox[l] >= 0 ? ox[l] - base : -1;
            }
        }
    for (int iy = 0; iy < h; iy++) {
        int lo, hi;
        SFX(pool_holders)(iy, k, s, oh, &lo, &hi);
        t->rlo[iy] = (int16_t)lo;
        t->rhi[iy] = (int16_t)hi;
    }
    return 1;
}

/* Lanes p[rel[l]] of the n values at p (1 <= n <= VL, rel < n; lanes with rel -1 hold
 * anything): one load, masked short of VL values, and a permutation. */
ALWAYS_INLINE vf SFX(pick)(const float *p, int n, vi rel)
{
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
    const __m512 v = n == 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(a5_mask(n), p);
    return _mm512_permutexvar_ps((__m512i)rel, v);
#else
    const __m256 v = n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, a2_mask(n));
    return _mm256_permutevar8x32_ps(v, (__m256i)rel);
#endif
}

/* One plane: vector by vector along the rows (its C table entries loaded once for all
 * the rows), each row's vector from +0 over the windows that hold it. C is a constant
 * where the caller can make it one. */
ALWAYS_INLINE void SFX(avgpool_bwd_plane)(const SFX(pool_gather) *t, const int C, int h, int w, int ow,
                                          const float *dyp, float *dxp, vf inv)
{
    for (int v = 0; v < t->nv; v++) {
        vi rel[POOL_HOLDERS_MAX], take[POOL_HOLDERS_MAX];
        int base[POOL_HOLDERS_MAX], avail[POOL_HOLDERS_MAX];
        for (int c = 0; c < C; c++) {
            const int e = v * C + c;
            memcpy(&rel[c], t->rel + e * VL, sizeof rel[c]);
            take[c] = rel[c] >= 0;
            base[c] = t->base[e];
            avail[c] = t->avail[e];
        }
        const int ix0 = v * VL, n = w - ix0 < VL ? w - ix0 : VL;
        for (int iy = 0; iy < h; iy++) {
            vf acc = V_ZERO();
            for (int oy = t->rlo[iy]; oy <= t->rhi[iy]; oy++)
                for (int c = 0; c < C; c++) {
                    const vf g = SFX(pick)(dyp + oy * ow + base[c], avail[c], rel[c]);
                    acc = V_ADD(acc, V_MUL(SFX(select)(take[c], g, V_ZERO()), inv));
                }
            if (n == VL)
                V_STOREU(dxp + iy * w + ix0, acc);
            else
                V_STOREU_N(dxp + iy * w + ix0, acc, n);
        }
    }
}

/* The average pooling's dx over `planes` planes of h x w: dy / k^2 to every input of
 * the window. Returns 0, dx untouched, for planes whose tables do not fit (more than
 * POOL_ROWS_MAX rows, POOL_GATHER_MAX entries or POOL_HOLDERS_MAX windows).
 * (Gathering a max pooling's gradient the same way, a lane taking an output's
 * gradient where its argmax names the lane, was slower than the reference's scatter,
 * which touches each output once: 47 against 31 us for 4 x 32 planes of 32 x 32,
 * 3x3 windows, stride 2, in a throwaway benchmark.) */
static int SFX(avgpool_bwd_any)(int64_t planes, int h, int w, int k, int s, const float *dy, float *dx)
{
    const int oh = (h - k) / s + 1, ow = (w - k) / s + 1;
    SFX(pool_gather) t;
    if (!SFX(pool_gather_make)(&t, h, w, k, s, oh, ow)) return 0;
    const vf inv = V_SET1(1.0f / (float)(k * k));
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *dyp = dy + pl * oh * ow;
        float *dxp = dx + pl * h * w;
        if (t.cmax == 2) /* windows of 3 or 4 with stride 2, of 2 with stride 1 */
            SFX(avgpool_bwd_plane)(&t, 2, h, w, ow, dyp, dxp, inv);
        else
            SFX(avgpool_bwd_plane)(&t, t.cmax, h, w, ow, dyp, dxp, inv);
    }
    return 1;
}
#else
/* Lane by lane, the gather lost to pool.c's passes along the rows (a throwaway
 * benchmark, 4 x 32 planes of 32 x 32, 3x3, stride 2: 156 against 99 us): they keep
 * those planes. */
static int SFX(avgpool_bwd_any)(int64_t planes, int h, int w, int k, int s, const float *dy, float *dx)
{
    (void)planes, (void)h, (void)w, (void)k, (void)s, (void)dy, (void)dx;
    return 0;
}
#endif
#undef POOL_GATHER_MAX
#undef POOL_HOLDERS_MAX
#undef POOL_ROWS_MAX

#undef POOL_S2_FAST

/* ================================================================= maxpool */

/* 2x2 windows, stride 2. The order of the window (top-left, top-right, bottom-left,
 * bottom-right), the first maximum and NaN handling are those of pool.c's reference.
 *
 * pre (0: none; LN_TANH, LN_SIGMOID): the activation layer before the pooling, fused
 * into it (net.c; a ReLU takes the `relu` path, see activation.c): applied to every
 * input with squash_fwd's operations before the windows are compared, so the maxima and their offsets are those
 * of the two layers; its full output is never written. Backward: the activation's
 * derivative at the window's output (pre_y, the pooled output: the activation's value
 * where the maximum was) is applied to dy first, squash_bwd's formulas;
 * the other inputs of the window get 0, as the two layers give them for finite values. */
ALWAYS_INLINE vf SFX(pre_act)(int pre, vf v)
{
    if (pre == LN_TANH) return SFX(tanh_v)(v);
    if (pre == LN_SIGMOID) return SFX(sigmoid_v)(v);
    return v;
}

ALWAYS_INLINE vf SFX(pre_grad)(int pre, vf g, vf y)
{
    const vf one = V_SET1(1.0f);
    if (pre == LN_TANH) return g * (one - y * y);
    if (pre == LN_SIGMOID) return (g * y) * (one - y);
    return g;
}

static inline float SFX(pre_grad1)(int pre, float g, float y)
{
    if (pre == LN_TANH) return g * (1.0f - y * y);
    if (pre == LN_SIGMOID) return g * y * (1.0f - y);
    return g;
}
/* One 2x2 window, output column ox of the row pair r0, r1 (row 2 oy of its plane,
 * at = 2 oy w): in window order (top-left, top-right, bottom-left, bottom-right) the
 * first maximum, or the first NaN; its offset in the plane. With relu, the ReLU that
 * follows the pooling (net.c fuses it: relu_fwd's rule) is applied to the maximum. The
 * scalar kernels, and the vector kernels' last columns. */
ALWAYS_INLINE void SFX(maxpool2_window)(const float *r0, const float *r1, int w, int at, int ox, int relu,
                                        int pre, float *y, int32_t *argmax)
{
    float v[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
    if (pre) { /* the vector kernels' values */
        float a[VL];
        V_STOREU(a, SFX(pre_act)(pre, V_LOADU_N(v, 4)));
        for (int q = 0; q < 4; q++) v[q] = a[q];
    }
    const int offs[4] = {0, 1, w, w + 1};
    float bv = v[0];
    int bo = 0;
    for (int q = 1; q < 4; q++)
        if (v[q] > bv || (v[q] != v[q] && bv == bv)) {
            bv = v[q];
            bo = offs[q];
        }
    *y = relu && !(bv > 0.0f || bv != bv) ? 0.0f : bv;
    *argmax = at + 2 * ox + bo;
}

/* Its backward: the window's four input gradients, g where the maximum was, else 0
 * (the caller has applied a fused ReLU's mask to g). */
ALWAYS_INLINE void SFX(maxpool2_window_grad)(float *r0, float *r1, int w, int at, int ox, float g, int32_t argmax)
{
    const int rel = argmax - (at + 2 * ox);
    r0[2 * ox] = rel == 0 ? g : 0.0f;
    r0[2 * ox + 1] = rel == 1 ? g : 0.0f;
    r1[2 * ox] = rel == w ? g : 0.0f;
    r1[2 * ox + 1] = rel == w + 1 ? g : 0.0f;
}

/* A window's output gradient through a fused ReLU (relu_y NULL: none): dy where the
 * ReLU's output at q is > 0, else +0 (one window of window_dy's rule). dy + 0 is the
 * reference's sum for the window's input (its dx starts at +0): a -0 gradient gives +0
 * there, before a fused activation's derivative scales it. */
ALWAYS_INLINE float SFX(window_dy1)(float dy, const float *relu_y, int64_t q)
{
    return relu_y && !(relu_y[q] > 0.0f) ? 0.0f : dy + 0.0f;
}

#if SIMD_M256
/* The backward's inputs of the plane MAXPOOL_PREFETCH planes after pl (of pn windows), a
 * cache line at a time. In a net they come from L3 or memory: the pooled gradient was
 * written a whole layer before, the offsets and a fused ReLU's output in the forward;
 * the CIFAR net's backward stalled on them (maxpool2_bwd 7.4% of its profile, against
 * 2% of the time the same planes take from L1). AVX-512: CIFAR +4%, Fashion +5%; AVX2
 * (the same CPU, LUNET_ISA=avx2): CIFAR unchanged. */
#define MAXPOOL_PREFETCH 2
ALWAYS_INLINE void SFX(pool_grad_prefetch)(int64_t pl, int64_t planes, int64_t pn, const float *dy,
                                           const int32_t *argmax, const float *relu_y, const float *pre_y)
{
    if (pl + MAXPOOL_PREFETCH >= planes) return;
    for (int64_t i = 0; i < pn; i += 16) {
        const int64_t at = (pl + MAXPOOL_PREFETCH) * pn + i;
        _mm_prefetch((const char *)(dy + at), _MM_HINT_T0);
        _mm_prefetch((const char *)(argmax + at), _MM_HINT_T0);
        if (relu_y) _mm_prefetch((const char *)(relu_y + at), _MM_HINT_T0);
        if (pre_y) _mm_prefetch((const char *)(pre_y + at), _MM_HINT_T0);
    }
}
#endif

#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
/* Whether b replaces a as the window's pick when b comes later in the window order:
 * strictly greater, or NaN where a is not. For two picks, the later one in window order
 * wins ties only through its own earlier position (see maxpool2_fwd). */
static inline __mmask16 SFX(later_wins)(__m512 a, __m512 b)
{
    /* window_takes' rule: not (b <= a), and a not NaN */
    return _mm512_cmp_ps_mask(b, a, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(a, a, _CMP_ORD_Q);
}

/* The four input gradients of 16 windows: g where the offset rel of the maximum within
 * its window is 0, 1, w or w + 1 (top-left, top-right, bottom-left, bottom-right), else 0 */
ALWAYS_INLINE void SFX(window_grads)(__m512i rel, __m512 g, __m512i c1, __m512i cw, __m512i cw1, __m512 *v00,
                                     __m512 *v01, __m512 *v10, __m512 *v11)
{
    *v00 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, _mm512_setzero_si512()), g);
    *v01 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, c1), g);
    *v10 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, cw), g);
    *v11 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, cw1), g);
}

/* The pick of 16 windows from their four inputs, in window order tl, tr, bl, br: first
 * maximum, first NaN. Pick within each row, then the bottom pick wins only if it beats
 * the top pick strictly (or is NaN where the top is not): the same as scanning in order.
 * relu: the fused ReLU (kept where > 0 or NaN). *idx: base (each window's top-left
 * offset in the plane) plus the pick's offset within the window (0, 1, w or w + 1). */
ALWAYS_INLINE __m512 SFX(window_pick)(__m512 tl, __m512 tr, __m512 bl, __m512 br, int relu, int w, __m512i base,
                                      __m512i *idx)
{
    const __m512i one = _mm512_set1_epi32(1), wv = _mm512_set1_epi32(w);
    __mmask16 t, b, v;
    __m512 top, bot, best;
    /* Without a NaN among the 64 inputs (their sum is not NaN: a NaN input makes it NaN),
     * later_wins is b > a and the ReLU a max with +0: the same picks and bits from 4 mask
     * operations instead of 13, which were the kernel's bottleneck (conv1's 10 planes of
     * 24x24 from L1: 563 -> 514 ns, the same bits) */
    const __m512 any = _mm512_add_ps(_mm512_add_ps(tl, tr), _mm512_add_ps(bl, br));
    if (!_mm512_cmp_ps_mask(any, any, _CMP_UNORD_Q)) {
        t = _mm512_cmp_ps_mask(tr, tl, _CMP_GT_OQ);
        b = _mm512_cmp_ps_mask(br, bl, _CMP_GT_OQ);
        top = _mm512_mask_mov_ps(tl, t, tr);
        bot = _mm512_mask_mov_ps(bl, b, br);
        v = _mm512_cmp_ps_mask(bot, top, _CMP_GT_OQ);
        best = _mm512_mask_mov_ps(top, v, bot);
        if (relu) best = _mm512_max_ps(best, _mm512_setzero_ps()); /* +0 where best <= 0 */
    } else {
        t = SFX(later_wins)(tl, tr);
        b = SFX(later_wins)(bl, br);
        top = _mm512_mask_mov_ps(tl, t, tr);
        bot = _mm512_mask_mov_ps(bl, b, br);
        v = SFX(later_wins)(top, bot);
        best = _mm512_mask_mov_ps(top, v, bot);
        if (relu) best = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_NLE_UQ), best);
    }
    __m512i off = _mm512_maskz_mov_epi32(t, one);
    off = _mm512_mask_mov_epi32(off, v, _mm512_mask_add_epi32(wv, b, wv, one));
    *idx = _mm512_add_epi32(base, off);
    return best;
}

/* The output gradient of 16 windows (the lanes of m) at offset `at` of the pooled
 * planes, through a fused activation's derivative (pre, from its output pre_y) and a
 * fused ReLU's (dy where relu_y > 0), as the backward applies them. */
ALWAYS_INLINE __m512 SFX(window_dy)(__mmask16 m, int64_t at, const float *dy, int pre, const float *pre_y,
                                    const float *relu_y)
{
    __m512 g = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dy + at), _mm512_setzero_ps()); /* window_dy1: + 0 */
    if (pre) g = (__m512)SFX(pre_grad)(pre, (vf)g, (vf)_mm512_maskz_loadu_ps(m, pre_y + at));
    if (relu_y)
        g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, relu_y + at), _mm512_setzero_ps(), _CMP_GT_OQ),
                                g);
    return g;
}

ALWAYS_INLINE void SFX(maxpool2_fwd_pre)(int64_t planes, int h, int w, const float *x, float *y,
                                         int32_t *argmax, int relu, const int pre)
{
    const int oh = h / 2, ow = w / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const float *yend = y + planes * oh * ow;
    /* 8 wide (the study's conv2: 8x8 planes): 4 row pairs at a time, 16 windows from 4 plain
     * loads of 2 rows each; lanes 0-7 of a permutation pick the top row's even columns of
     * two row pairs, lanes 8-15 their odd ones (one row pair at a time, 4 windows of 16
     * lanes from masked loads: 595 ns for the 20 planes, against 839 for conv1's 10 planes
     * of 24x24) */
    const __m512i top8 = _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 1, 3, 5, 7, 17, 19, 21, 23);
    const __m512i bot8 = _mm512_add_epi32(top8, _mm512_set1_epi32(8));
    const __m512i base8 = _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 32, 34, 36, 38, 48, 50, 52, 54);
    if (w != 8 && w <= 32 && h % 2 == 0) {
        /* Rows of at most 32 floats (one chunk of windows a row pair) and an even height:
         * the row pairs of all planes are 2w floats apart and their windows ow apart, so
         * one flat loop takes them all, with the lane masks made once (a loop per plane and
         * per chunk, its masks made per row pair, kept its counters on the stack: conv1's
         * 10 planes of 24x24 from L1 took 514 ns, now 431; the backward 469 -> 312) */
        const int lo = 2 * ow < 16 ? 2 * ow : 16, hi = 2 * ow - lo;
        const __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
        const __mmask16 mn = (__mmask16)((1u << ow) - 1);
        const int64_t pairs = planes * oh;
        int oy = 0;
        for (int64_t q = 0; q < pairs; q++) {
            const float *r0 = x + q * 2 * w, *r1 = r0 + w;
            /* rows of 16 or more: the first 16 lanes by plain loads (masked loads with a
             * full mask took conv1's 24-wide planes 490 ns forward here, plain ones 400-430) */
            const __m512 a0 = (__m512)SFX(pre_act)(pre, (vf)(lo == 16 ? _mm512_loadu_ps(r0) : _mm512_maskz_loadu_ps(mlo, r0)));
            const __m512 a1 = (__m512)SFX(pre_act)(pre, (vf)_mm512_maskz_loadu_ps(mhi, r0 + 16));
            const __m512 b0 = (__m512)SFX(pre_act)(pre, (vf)(lo == 16 ? _mm512_loadu_ps(r1) : _mm512_maskz_loadu_ps(mlo, r1)));
            const __m512 b1 = (__m512)SFX(pre_act)(pre, (vf)_mm512_maskz_loadu_ps(mhi, r1 + 16));
            const __m512 tl = _mm512_permutex2var_ps(a0, even, a1), tr = _mm512_permutex2var_ps(a0, odd, a1);
            const __m512 bl = _mm512_permutex2var_ps(b0, even, b1), br = _mm512_permutex2var_ps(b0, odd, b1);
            __m512i idx;
            const __m512 best = SFX(window_pick)(tl, tr, bl, br, relu, w,
                                                 _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w), even), &idx);
            /* a full store runs into the next row pairs' windows, written after these; near
             * the end of the output it is masked */
            if ((q + 1) * ow + 16 - ow <= pairs * ow) {
                _mm512_storeu_ps(y + q * ow, best);
                _mm512_storeu_si512(argmax + q * ow, idx);
            } else {
                _mm512_mask_storeu_ps(y + q * ow, mn, best);
                _mm512_mask_storeu_epi32(argmax + q * ow, mn, idx);
            }
            if (++oy == oh) oy = 0;
        }
        return;
    }
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        int32_t *ap = argmax + pl * oh * ow;
        int oy = 0;
        for (; w == 8 && oy + 4 <= oh; oy += 4) {
            const float *r = xp + (int64_t)(2 * oy) * w;
            const __m512 z0 = (__m512)SFX(pre_act)(pre, (vf)_mm512_loadu_ps(r));
            const __m512 z1 = (__m512)SFX(pre_act)(pre, (vf)_mm512_loadu_ps(r + 16));
            const __m512 z2 = (__m512)SFX(pre_act)(pre, (vf)_mm512_loadu_ps(r + 32));
            const __m512 z3 = (__m512)SFX(pre_act)(pre, (vf)_mm512_loadu_ps(r + 48));
            const __m512 t01 = _mm512_permutex2var_ps(z0, top8, z1), t23 = _mm512_permutex2var_ps(z2, top8, z3);
            const __m512 b01 = _mm512_permutex2var_ps(z0, bot8, z1), b23 = _mm512_permutex2var_ps(z2, bot8, z3);
            const __m512 tl = _mm512_shuffle_f32x4(t01, t23, 0x44), tr = _mm512_shuffle_f32x4(t01, t23, 0xEE);
            const __m512 bl = _mm512_shuffle_f32x4(b01, b23, 0x44), br = _mm512_shuffle_f32x4(b01, b23, 0xEE);
            __m512i idx;
            const __m512 best = SFX(window_pick)(tl, tr, bl, br, relu, w,
                                                 _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w), base8), &idx);
            _mm512_storeu_ps(yp + oy * ow, best);
            _mm512_storeu_si512(ap + oy * ow, idx);
        }
        for (; oy < oh; oy++) {
            const float *r0 = xp + (int64_t)(2 * oy) * w, *r1 = r0 + w;
            for (int ox = 0; ox < ow; ox += 16) {
                const int n = ow - ox < 16 ? ow - ox : 16;
                const int lo = 2 * n < 16 ? 2 * n : 16, hi = 2 * n - lo;
                const __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
                const __m512 a0 = (__m512)SFX(pre_act)(pre, (vf)_mm512_maskz_loadu_ps(mlo, r0 + 2 * ox));
                const __m512 a1 = (__m512)SFX(pre_act)(pre, (vf)_mm512_maskz_loadu_ps(mhi, r0 + 2 * ox + 16));
                const __m512 b0 = (__m512)SFX(pre_act)(pre, (vf)_mm512_maskz_loadu_ps(mlo, r1 + 2 * ox));
                const __m512 b1 = (__m512)SFX(pre_act)(pre, (vf)_mm512_maskz_loadu_ps(mhi, r1 + 2 * ox + 16));
                const __m512 tl = _mm512_permutex2var_ps(a0, even, a1), tr = _mm512_permutex2var_ps(a0, odd, a1);
                const __m512 bl = _mm512_permutex2var_ps(b0, even, b1), br = _mm512_permutex2var_ps(b0, odd, b1);
                __m512i idx;
                const __m512 best = SFX(window_pick)(tl, tr, bl, br, relu, w,
                                                     _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w + 2 * ox), even), &idx);
                float *yo = yp + oy * ow + ox;
                /* a full store runs into the next output row, written after this one */
                if (yo + 16 <= yend) {
                    _mm512_storeu_ps(yo, best);
                    _mm512_storeu_si512(ap + oy * ow + ox, idx);
                } else {
                    const __mmask16 mn = (__mmask16)((1u << n) - 1);
                    _mm512_mask_storeu_ps(yo, mn, best);
                    _mm512_mask_storeu_epi32(ap + oy * ow + ox, mn, idx);
                }
            }
        }
    }
}

ALWAYS_INLINE void SFX(maxpool2_bwd_pre)(int64_t planes, int h, int w, const float *dy,
                                         const int32_t *argmax, const float *relu_y, const int pre,
                                         const float *pre_y, float *dx)
{
    const int oh = h / 2, ow = w / 2;
    const __m512i two_iota = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ihi = _mm512_add_epi32(ilo, _mm512_set1_epi32(8));
    const __m512i c1 = _mm512_set1_epi32(1), cw = _mm512_set1_epi32(w), cw1 = _mm512_set1_epi32(w + 1);
    const float *dxend = dx + planes * h * w;
    const __m512i base8 = _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 32, 34, 36, 38, 48, 50, 52, 54);
    const int64_t pn = (int64_t)oh * ow;
    if (w != 8 && w <= 32 && h % 2 == 0) { /* the forward's flat loop over all row pairs */
        const int lo = 2 * ow < 16 ? 2 * ow : 16, hi = 2 * ow - lo;
        const __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
        const __mmask16 mn = (__mmask16)((1u << ow) - 1);
        const int64_t pairs = planes * oh;
        int oy = 0;
        int64_t pl = 0;
        for (int64_t q = 0; q < pairs; q++) {
            if (oy == 0) SFX(pool_grad_prefetch)(pl, planes, pn, dy, argmax, relu_y, pre_y);
            const __m512 g = SFX(window_dy)(mn, q * ow, dy, pre, pre_y, relu_y);
            const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w), two_iota);
            const __m512i rel = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(mn, argmax + q * ow), base);
            __m512 v00, v01, v10, v11;
            SFX(window_grads)(rel, g, c1, cw, cw1, &v00, &v01, &v10, &v11);
            const __m512 t0 = _mm512_permutex2var_ps(v00, ilo, v01), t1 = _mm512_permutex2var_ps(v00, ihi, v01);
            const __m512 b0 = _mm512_permutex2var_ps(v10, ilo, v11), b1 = _mm512_permutex2var_ps(v10, ihi, v11);
            float *r0 = dx + q * 2 * w, *r1 = r0 + w;
            SFX(store_row_pair)(r0, r1, t0, t1, b0, b1, hi, mlo, mhi, dxend);
            if (w & 1) r0[w - 1] = r1[w - 1] = 0.0f;
            if (++oy == oh) {
                oy = 0;
                pl++;
            }
        }
        return;
    }
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *gp = dy + pl * pn;
        const int32_t *ap = argmax + pl * pn;
        float *xp = dx + pl * h * w;
        SFX(pool_grad_prefetch)(pl, planes, pn, dy, argmax, relu_y, pre_y);
        int oy = 0;
        /* 8 wide: 4 row pairs (16 windows) at a time, the forward's permutations undone:
         * the windows' top halves interleaved into rows, then two rows to a store */
        for (; w == 8 && oy + 4 <= oh; oy += 4) {
            const __m512 g = SFX(window_dy)((__mmask16)0xFFFF, (gp - dy) + oy * ow, dy, pre, pre_y, relu_y);
            const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w), base8);
            const __m512i rel = _mm512_sub_epi32(_mm512_loadu_si512(ap + oy * ow), base);
            __m512 v00, v01, v10, v11;
            SFX(window_grads)(rel, g, c1, cw, cw1, &v00, &v01, &v10, &v11);
            const __m512 t01 = _mm512_permutex2var_ps(v00, ilo, v01), t23 = _mm512_permutex2var_ps(v00, ihi, v01);
            const __m512 b01 = _mm512_permutex2var_ps(v10, ilo, v11), b23 = _mm512_permutex2var_ps(v10, ihi, v11);
            float *r = xp + (int64_t)(2 * oy) * w;
            _mm512_storeu_ps(r, _mm512_shuffle_f32x4(t01, b01, 0x44));
            _mm512_storeu_ps(r + 16, _mm512_shuffle_f32x4(t01, b01, 0xEE));
            _mm512_storeu_ps(r + 32, _mm512_shuffle_f32x4(t23, b23, 0x44));
            _mm512_storeu_ps(r + 48, _mm512_shuffle_f32x4(t23, b23, 0xEE));
        }
        for (; oy < oh; oy++) {
            float *r0 = xp + (int64_t)(2 * oy) * w, *r1 = r0 + w;
            for (int ox = 0; ox < ow; ox += 16) {
                const int n = ow - ox < 16 ? ow - ox : 16;
                const int lo = 2 * n < 16 ? 2 * n : 16, hi = 2 * n - lo;
                const __mmask16 mn = (__mmask16)((1u << n) - 1);
                const __m512 g = SFX(window_dy)(mn, (gp - dy) + oy * ow + ox, dy, pre, pre_y, relu_y);
                const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w + 2 * ox), two_iota);
                const __m512i rel = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(mn, ap + oy * ow + ox), base);
                __m512 v00, v01, v10, v11;
                SFX(window_grads)(rel, g, c1, cw, cw1, &v00, &v01, &v10, &v11);
                const __m512 t0 = _mm512_permutex2var_ps(v00, ilo, v01), t1 = _mm512_permutex2var_ps(v00, ihi, v01);
                const __m512 b0 = _mm512_permutex2var_ps(v10, ilo, v11), b1 = _mm512_permutex2var_ps(v10, ihi, v11);
                /* Full stores are safe inside the row, or when the row is one chunk:
                 * then r0's spill lands in r1 (stored next) and r1's in the next row
                 * pair (stored later); the end of the buffer is masked. */
                if (2 * ox + 32 <= w || (ow <= 16 && r1 + 32 <= dxend)) {
                    _mm512_storeu_ps(r0 + 2 * ox, t0);
                    if (hi) _mm512_storeu_ps(r0 + 2 * ox + 16, t1);
                    _mm512_storeu_ps(r1 + 2 * ox, b0);
                    if (hi) _mm512_storeu_ps(r1 + 2 * ox + 16, b1);
                } else {
                    const __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
                    _mm512_mask_storeu_ps(r0 + 2 * ox, mlo, t0);
                    _mm512_mask_storeu_ps(r0 + 2 * ox + 16, mhi, t1);
                    _mm512_mask_storeu_ps(r1 + 2 * ox, mlo, b0);
                    _mm512_mask_storeu_ps(r1 + 2 * ox + 16, mhi, b1);
                }
            }
            if (w & 1) r0[w - 1] = r1[w - 1] = 0.0f;
        }
        if (h & 1) memset(xp + (int64_t)(h - 1) * w, 0, sizeof(float) * (size_t)w);
    }
}
#elif SIMD_MAXPOOL == SIMD_MAXPOOL_AVX2
/* AVX2: the same tournament as the AVX-512 kernels above, 8 windows at a time, then 4
 * (the low half of the same computation), then one by one: no masked loads or stores,
 * which cost far more than plain ones on AMD cores (the masked kernels took 1.37 + 2.94
 * us per sample on conv1's 10x24x24 output, their backward slower than the scalar
 * reference; these 1.12 + 0.88 us: bench/README.md). Even and odd columns separated
 * with shuffles, masks as vectors. */
static inline __m256 SFX(later_wins)(__m256 a, __m256 b) { return (__m256)SFX(window_takes)((vf)a, (vf)b); }

/* SFX(deinterleave): see even_of, before the convolutions */

/* The windows of the row pair r0, r1 from output column ox on (8 of them from the 16
 * floats of each row at 2 ox, or 4 from 8 when `half`: then the upper lanes repeat the
 * lower ones): their maxima and input offsets (relative to the plane, row 2 oy). */
ALWAYS_INLINE void SFX(maxpool2_windows)(const float *r0, const float *r1, int half, int w, int at,
                                          int pre, __m256 *best, __m256i *idx)
{
    const __m256i two_iota = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256 a0 = (__m256)SFX(pre_act)(pre, _mm256_loadu_ps(r0));
    const __m256 b0 = (__m256)SFX(pre_act)(pre, _mm256_loadu_ps(r1));
    const __m256 a1 = half ? a0 : (__m256)SFX(pre_act)(pre, _mm256_loadu_ps(r0 + 8));
    const __m256 b1 = half ? b0 : (__m256)SFX(pre_act)(pre, _mm256_loadu_ps(r1 + 8));
    __m256 tl, tr, bl, br;
    SFX(deinterleave)(a0, a1, &tl, &tr);
    SFX(deinterleave)(b0, b1, &bl, &br);
    /* window order tl, tr, bl, br: first maximum, first NaN (see AVX-512) */
    const __m256 t = SFX(later_wins)(tl, tr), b = SFX(later_wins)(bl, br);
    const __m256 top = _mm256_blendv_ps(tl, tr, t), bot = _mm256_blendv_ps(bl, br, b);
    const __m256 v = SFX(later_wins)(top, bot);
    *best = _mm256_blendv_ps(top, bot, v);
    const __m256i toff = _mm256_and_si256(_mm256_castps_si256(t), one);
    const __m256i boff = _mm256_add_epi32(_mm256_set1_epi32(w), _mm256_and_si256(_mm256_castps_si256(b), one));
    const __m256i off =
        _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(toff), _mm256_castsi256_ps(boff), v));
    *idx = _mm256_add_epi32(_mm256_add_epi32(_mm256_set1_epi32(at), two_iota), off);
}

ALWAYS_INLINE void SFX(maxpool2_fwd_pre)(int64_t planes, int h, int w, const float *x, float *y,
                                         int32_t *argmax, int relu, const int pre)
{
    const int oh = h / 2, ow = w / 2;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = xp + (int64_t)(2 * oy) * w, *r1 = r0 + w;
            float *yo = y + (pl * oh + oy) * ow;
            int32_t *ao = argmax + (pl * oh + oy) * ow;
            int ox = 0;
            __m256 best;
            __m256i idx;
            for (; ox + 8 <= ow; ox += 8) {
                SFX(maxpool2_windows)(r0 + 2 * ox, r1 + 2 * ox, 0, w, 2 * oy * w + 2 * ox, pre, &best, &idx);
                if (relu) best = _mm256_and_ps(best, _mm256_cmp_ps(best, zero, _CMP_NLE_UQ)); /* > 0 or NaN */
                _mm256_storeu_ps(yo + ox, best);
                _mm256_storeu_si256((__m256i *)(ao + ox), idx);
            }
            if (ox + 4 <= ow) {
                SFX(maxpool2_windows)(r0 + 2 * ox, r1 + 2 * ox, 1, w, 2 * oy * w + 2 * ox, pre, &best, &idx);
                if (relu) best = _mm256_and_ps(best, _mm256_cmp_ps(best, zero, _CMP_NLE_UQ));
                _mm_storeu_ps(yo + ox, _mm256_castps256_ps128(best));
                _mm_storeu_si128((__m128i *)(ao + ox), _mm256_castsi256_si128(idx));
                ox += 4;
            }
            for (; ox < ow; ox++) SFX(maxpool2_window)(r0, r1, w, 2 * oy * w, ox, relu, pre, yo + ox, ao + ox);
        }
    }
}

/* The four input gradients of 8 windows (or the first 4, `half`) from their output
 * gradients g and input offsets rel (relative to the window's top-left): the top row's
 * 16 (8) floats in t0:t1, the bottom row's in b0:b1. */
ALWAYS_INLINE void SFX(maxpool2_spread)(__m256 g, __m256i rel, int w, __m256 *t0, __m256 *t1, __m256 *b0,
                                         __m256 *b1)
{
    const __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_set1_epi32(1);
    const __m256i cw = _mm256_set1_epi32(w), cw1 = _mm256_set1_epi32(w + 1);
    const __m256 v00 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(rel, c0)), g);
    const __m256 v01 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(rel, c1)), g);
    const __m256 v10 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(rel, cw)), g);
    const __m256 v11 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(rel, cw1)), g);
    const __m256 tlo = _mm256_unpacklo_ps(v00, v01), thi = _mm256_unpackhi_ps(v00, v01);
    const __m256 blo = _mm256_unpacklo_ps(v10, v11), bhi = _mm256_unpackhi_ps(v10, v11);
    *t0 = _mm256_permute2f128_ps(tlo, thi, 0x20);
    *t1 = _mm256_permute2f128_ps(tlo, thi, 0x31);
    *b0 = _mm256_permute2f128_ps(blo, bhi, 0x20);
    *b1 = _mm256_permute2f128_ps(blo, bhi, 0x31);
}

ALWAYS_INLINE void SFX(maxpool2_bwd_pre)(int64_t planes, int h, int w, const float *dy,
                                         const int32_t *argmax, const float *relu_y, const int pre,
                                         const float *pre_y, float *dx)
{
    const int oh = h / 2, ow = w / 2;
    const __m256i two_iota = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t pl = 0; pl < planes; pl++) {
        float *xp = dx + pl * h * w;
        SFX(pool_grad_prefetch)(pl, planes, (int64_t)oh * ow, dy, argmax, relu_y, pre_y);
        for (int oy = 0; oy < oh; oy++) {
            float *r0 = xp + (int64_t)(2 * oy) * w, *r1 = r0 + w;
            const float *go = dy + (pl * oh + oy) * ow;
            const float *ro = relu_y ? relu_y + (pl * oh + oy) * ow : NULL; /* a fused ReLU's output */
            const float *po = pre_y ? pre_y + (pl * oh + oy) * ow : NULL;   /* a fused activation's */
            const int32_t *ao = argmax + (pl * oh + oy) * ow;
            int ox = 0;
            __m256 t0, t1, b0, b1;
            for (; ox + 8 <= ow; ox += 8) {
                const __m256i base = _mm256_add_epi32(_mm256_set1_epi32(2 * oy * w + 2 * ox), two_iota);
                const __m256i rel = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(ao + ox)), base);
                __m256 g = _mm256_add_ps(_mm256_loadu_ps(go + ox), zero); /* window_dy1: + 0 */
                if (ro) g = _mm256_and_ps(g, _mm256_cmp_ps(_mm256_loadu_ps(ro + ox), zero, _CMP_GT_OQ));
                if (pre) g = SFX(pre_grad)(pre, g, _mm256_loadu_ps(po + ox));
                SFX(maxpool2_spread)(g, rel, w, &t0, &t1, &b0, &b1);
                _mm256_storeu_ps(r0 + 2 * ox, t0);
                _mm256_storeu_ps(r0 + 2 * ox + 8, t1);
                _mm256_storeu_ps(r1 + 2 * ox, b0);
                _mm256_storeu_ps(r1 + 2 * ox + 8, b1);
            }
            if (ox + 4 <= ow) {
                const __m128i base = _mm_add_epi32(_mm_set1_epi32(2 * oy * w + 2 * ox),
                                                   _mm256_castsi256_si128(two_iota));
                const __m128i rel = _mm_sub_epi32(_mm_loadu_si128((const __m128i *)(ao + ox)), base);
                /* the upper lanes repeat the lower ones; only t0 and b0 are stored */
                __m128 g = _mm_add_ps(_mm_loadu_ps(go + ox), _mm_setzero_ps());
                if (ro) g = _mm_and_ps(g, _mm_cmpgt_ps(_mm_loadu_ps(ro + ox), _mm_setzero_ps()));
                if (pre)
                    g = _mm256_castps256_ps128(
                        SFX(pre_grad)(pre, _mm256_castps128_ps256(g), _mm256_castps128_ps256(_mm_loadu_ps(po + ox))));
                SFX(maxpool2_spread)(_mm256_set_m128(g, g), _mm256_set_m128i(rel, rel), w, &t0, &t1, &b0, &b1);
                _mm256_storeu_ps(r0 + 2 * ox, t0);
                _mm256_storeu_ps(r1 + 2 * ox, b0);
                ox += 4;
            }
            for (; ox < ow; ox++) {
                float g = SFX(window_dy1)(go[ox], ro, ox);
                if (pre) g = SFX(pre_grad1)(pre, g, po[ox]);
                SFX(maxpool2_window_grad)(r0, r1, w, 2 * oy * w, ox, g, ao[ox]);
            }
            if (w & 1) r0[w - 1] = r1[w - 1] = 0.0f;
        }
        if (h & 1) memset(xp + (int64_t)(h - 1) * w, 0, sizeof(float) * (size_t)w);
    }
}
#elif SIMD_MAXPOOL == SIMD_MAXPOOL_SCALAR
/* plain C, one window at a time (SFX(maxpool2_window): the order and tie rules written out) */
ALWAYS_INLINE void SFX(maxpool2_fwd_pre)(int64_t planes, int h, int w, const float *x, float *y,
                                         int32_t *argmax, int relu, const int pre)
{
    const int oh = h / 2, ow = w / 2;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = xp + (int64_t)(2 * oy) * w, *r1 = r0 + w;
            const int64_t o = (pl * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++)
                SFX(maxpool2_window)(r0, r1, w, 2 * oy * w, ox, relu, pre, y + o + ox, argmax + o + ox);
        }
    }
}

ALWAYS_INLINE void SFX(maxpool2_bwd_pre)(int64_t planes, int h, int w, const float *dy,
                                         const int32_t *argmax, const float *relu_y, const int pre,
                                         const float *pre_y, float *dx)
{
    const int oh = h / 2, ow = w / 2;
    for (int64_t pl = 0; pl < planes; pl++) {
        float *xp = dx + pl * h * w;
        for (int oy = 0; oy < oh; oy++) {
            float *r0 = xp + (int64_t)(2 * oy) * w, *r1 = r0 + w;
            const int64_t o = (pl * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++) {
                float g = SFX(window_dy1)(dy[o + ox], relu_y, o + ox);
                if (pre) g = SFX(pre_grad1)(pre, g, pre_y[o + ox]);
                SFX(maxpool2_window_grad)(r0, r1, w, 2 * oy * w, ox, g, argmax[o + ox]);
            }
            if (w & 1) r0[w - 1] = r1[w - 1] = 0.0f;
        }
        if (h & 1) memset(xp + (int64_t)(h - 1) * w, 0, sizeof(float) * (size_t)w);
    }
}
#else
#error "simd_impl.h: SIMD_MAXPOOL is not one of SIMD_MAXPOOL_SCALAR, _AVX2, _AVX512"
#endif

/* The kernels with the fused activation before the pooling as a constant: the plain
 * pooling's loops carry no test of it. */
static void SFX(maxpool2_fwd)(int64_t planes, int h, int w, const float *x, float *y, int32_t *argmax,
                              int relu, int pre)
{
    if (pre == LN_TANH)
        SFX(maxpool2_fwd_pre)(planes, h, w, x, y, argmax, relu, LN_TANH);
    else if (pre == LN_SIGMOID)
        SFX(maxpool2_fwd_pre)(planes, h, w, x, y, argmax, relu, LN_SIGMOID);
    else
        SFX(maxpool2_fwd_pre)(planes, h, w, x, y, argmax, relu, 0);
}

static void SFX(maxpool2_bwd)(int64_t planes, int h, int w, const float *dy, const int32_t *argmax,
                              const float *relu_y, int pre, const float *pre_y, float *dx)
{
    if (pre == LN_TANH)
        SFX(maxpool2_bwd_pre)(planes, h, w, dy, argmax, relu_y, LN_TANH, pre_y, dx);
    else if (pre == LN_SIGMOID)
        SFX(maxpool2_bwd_pre)(planes, h, w, dy, argmax, relu_y, LN_SIGMOID, pre_y, dx);
    else
        SFX(maxpool2_bwd_pre)(planes, h, w, dy, argmax, relu_y, 0, pre_y, dx);
}

/* The pooling's places (simd.h, pool_places). A window's place is in its upper row when
 * it is below `lower`, the first place of the lower row: a pooled row's upper places,
 * then its lower ones, are in increasing position. A window's gradient is listed when it
 * is not +-0, its place and value written at n and n moved on by that test's 0 or 1, so
 * that no branch follows the data (the ReLU's zeros are a coin flip). AVX-512: the
 * windows of a pooled row 16 at a time, the listed ones packed by a register compress
 * (the memory form is slow on AMD) and stored whole. The CIFAR net's conv2 in training:
 * 5-7 us a sample, where spreading the gradient (maxpool2_bwd) and the scalar loop that
 * read the lists off the spread plane took 9 and 16. */

#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
/* the lanes of p and v that take sets, packed to the front of pos and val; their count */
ALWAYS_INLINE int SFX(put_places)(__mmask16 take, __m512i p, __m512 v, int *pos, float *val)
{
    _mm512_storeu_si512(pos, _mm512_maskz_compress_epi32(take, p));
    _mm512_storeu_ps(val, _mm512_maskz_compress_ps(take, v));
    return __builtin_popcount(take);
}
#endif

static int SFX(pool_places)(int oc, int oh, int ow, const int32_t *argmax, const float *g, const float *relu_y,
                            const float *scale, int *start, int *pos, float *val)
{
    const int ph = oh / 2, pw = ow / 2;
    int n = 0;
    for (int o = 0; o < oc; o++) {
        start[o] = n;
        for (int qy = 0; qy < ph; qy++) {
            const int32_t lower = (2 * qy + 1) * ow;
            const int64_t q0 = ((int64_t)o * ph + qy) * pw; /* the row's first window */
#if SIMD_MAXPOOL == SIMD_MAXPOOL_AVX512
            /* a row of up to 16 windows: the upper places, then the lower ones, from one
             * vector; longer rows: all their upper places, then all their lower ones */
            for (int half = 0; half < (pw <= 16 ? 1 : 2); half++)
                for (int qx = 0; qx < pw; qx += 16) {
                    const __mmask16 in = (__mmask16)(pw - qx >= 16 ? 0xFFFF : (1u << (pw - qx)) - 1);
                    const __m512i p = _mm512_maskz_loadu_epi32(in, argmax + q0 + qx);
                    __m512 v = SFX(window_dy)(in, q0 + qx, g, 0, NULL, relu_y); /* maxpool2_bwd's */
                    if (scale) v = _mm512_mul_ps(v, _mm512_set1_ps(scale[o]));
                    const __mmask16 nz = _mm512_mask_cmp_ps_mask(in, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
                    const __mmask16 up = _mm512_mask_cmplt_epi32_mask(nz, p, _mm512_set1_epi32(lower));
                    if (pw <= 16 || !half) n += SFX(put_places)(up, p, v, pos + n, val + n);
                    if (pw <= 16 || half) n += SFX(put_places)((__mmask16)(nz & ~up), p, v, pos + n, val + n);
                }
#else
            for (int half = 0; half < 2; half++)
                for (int qx = 0; qx < pw; qx++) {
                    const int32_t p = argmax[q0 + qx];
                    float v = SFX(window_dy1)(g[q0 + qx], relu_y, q0 + qx);
                    if (scale) v = v * scale[o];
                    pos[n] = p;
                    val[n] = v;
                    n += (half ? p >= lower : p < lower) & (v != 0.0f);
                }
#endif
        }
    }
    start[oc] = n;
    return n;
}

/* ================================================================= dropout */

/* The keep-scales of n mask entries: mask[i] = (draw i of rng as ln_rng_uniform) < p ?
 * 0 : scale, rng left past the n draws; bit for bit dropout.c's loop (its twin). PCG32
 * is one serial chain of 64-bit multiplies, and the loop's branch on each draw is a coin
 * flip the predictor loses half the time (3% of the study's training step). So 8 lanes
 * hold states 0..7 draws ahead and each step moves all of them 8 draws on (state * a + c,
 * a and c read off ln_rng_advance), lane j of step t yielding draw 8t + j: the same draws
 * in the same order, without a branch. The types are GCC vector extensions, so every ISA
 * compiles the same lines (the compiler builds the 64-bit multiplies from 32-bit ones
 * where the ISA has none). */
#ifndef LN_DRAW_LANE_TYPES
#define LN_DRAW_LANE_TYPES
typedef uint64_t ln_u64x8 __attribute__((vector_size(64)));
typedef uint32_t ln_u32x8 __attribute__((vector_size(32)));
typedef int32_t ln_i32x8 __attribute__((vector_size(32)));
typedef float ln_f32x8 __attribute__((vector_size(32)));
#endif
static void SFX(dropout_mask)(ln_rng *rng, int64_t n, float p, float scale, float *mask)
{
    int64_t i = 0;
    if (n >= 8) {
        uint64_t states[8];
        ln_rng r = *rng;
        for (int j = 0; j < 8; j++) {
            states[j] = r.state;
            ln_rng_advance(&r, 1);
        }
        ln_u64x8 s;
        memcpy(&s, states, sizeof s);
        ln_rng from0 = {0, rng->inc}, from1 = {1, rng->inc};
        ln_rng_advance(&from0, 8); /* 8 steps from state x give x * a + c: c from 0 ... */
        ln_rng_advance(&from1, 8); /* ... and a + c from 1 */
        const uint64_t c = from0.state, a = from1.state - from0.state;
        int32_t bits1;
        memcpy(&bits1, &scale, sizeof bits1);
        const ln_i32x8 keep_bits = (ln_i32x8){0} + bits1; /* the scale's bits in every lane */
        for (; i + 8 <= n; i += 8) {
            /* ln_rng_u32's output function of each lane's state, then ln_rng_uniform */
            const ln_u32x8 xs = __builtin_convertvector(((s >> 18) ^ s) >> 27, ln_u32x8);
            const ln_u32x8 rot = __builtin_convertvector(s >> 59, ln_u32x8);
            const ln_u32x8 bits = (xs >> rot) | (xs << ((-rot) & 31));
            const ln_f32x8 u = __builtin_convertvector((ln_i32x8)(bits >> 8), ln_f32x8) * (1.0f / 16777216.0f);
            const ln_i32x8 dropped = u < p; /* all ones where dropped */
            const ln_i32x8 out = keep_bits & ~dropped;
            memcpy(mask + i, &out, sizeof out);
            s = s * a + c;
        }
        rng->state = s[0];
    }
    for (; i < n; i++) mask[i] = ln_rng_uniform(rng) < p ? 0.0f : scale;
}

/* out = in * mask, each mask entry scaling its run of `span` elements; out may be in. */
/* The magnitudes as integers (the sign bit cleared), whose order is the floats' with
 * the non-finite ones (0x7F800000 and above) on top: a vector of running maxima, then
 * its lanes (a scalar loop was not vectorised: 0.8 us per sample of the study's conv2
 * input, compiled for SSE2) */
static float SFX(max_abs)(int64_t n, const float *x)
{
    const vi mag = (vi)V_SET1(0.0f) | 0x7FFFFFFF;
    /* four running maxima: one was a chain of compare-and-select, two cycles a vector
     * (5% of a batch-1 step of the study) */
    vi m[4] = {(vi)V_ZERO(), (vi)V_ZERO(), (vi)V_ZERO(), (vi)V_ZERO()};
    int64_t i = 0;
    for (; i + 4 * VL <= n; i += 4 * VL)
        for (int c = 0; c < 4; c++) {
            const vi a = (vi)V_LOADU(x + i + c * VL) & mag;
            const vi gt = a > m[c];
            m[c] = (a & gt) | (m[c] & ~gt);
        }
    for (; i + VL <= n; i += VL) {
        const vi a = (vi)V_LOADU(x + i) & mag;
        const vi gt = a > m[0];
        m[0] = (a & gt) | (m[0] & ~gt);
    }
    for (int c = 1; c < 4; c++) {
        const vi gt = m[c] > m[0];
        m[0] = (m[c] & gt) | (m[0] & ~gt);
    }
    uint32_t r = 0;
    for (int j = 0; j < VL; j++) r = (uint32_t)m[0][j] > r ? (uint32_t)m[0][j] : r;
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7FFFFFFFu;
        r = u > r ? u : r;
    }
    if (r >= 0x7F800000u) return INFINITY;
    float f;
    memcpy(&f, &r, sizeof f);
    return f;
}

static void SFX(scale_runs)(int64_t entries, int64_t span, const float *in, const float *mask, float *out)
{
    if (span == 1) {
        int64_t i = 0;
        for (; i + VL <= entries; i += VL) V_STOREU(out + i, V_MUL(V_LOADU(in + i), V_LOADU(mask + i)));
        for (; i < entries; i++) out[i] = in[i] * mask[i];
        return;
    }
    for (int64_t e = 0; e < entries; e++) {
        const float s = mask[e];
        const vf sv = V_SET1(s);
        const float *ins = in + e * span;
        float *outs = out + e * span;
        int64_t i = 0;
        for (; i + VL <= span; i += VL) V_STOREU(outs + i, V_MUL(V_LOADU(ins + i), sv));
        for (; i < span; i++) outs[i] = ins[i] * s;
    }
}

/* ============================================================= optimizers */

/* The optimizers ask for the parameters OPT_AHEAD floats ahead to be written, a line
 * per 16 floats. In a run on 2 threads the other thread has read them (its share of
 * the forward), so each line's store must first invalidate that copy; where the two
 * cores share no L3 (a VM's two vCPUs on two dies: a 400 ns round trip, not 100), the
 * study's step (22k parameters, on one thread) took 17-19 us instead of 3.3, waiting
 * for those invalidations; 13-14 us with this (the rest was not broken down: a read
 * prefetch of the gradients did not shorten it). Only with PREFETCHW: a prefetch for reading fetches the line
 * shared, and the store still has to invalidate the other copy. */
#define OPT_AHEAD 512
ALWAYS_INLINE void SFX(opt_prefetch)(float *p, int64_t i, int64_t n)
{
#if V_HAS_PREFETCH_W
    if (i % 16 == 0 && i + OPT_AHEAD < n) V_PREFETCH_W(p + i + OPT_AHEAD);
#else
    (void)p, (void)i, (void)n;
#endif
}

/* simd.h: the 64-byte lines of bytes at p asked for, to be written (a hint) */
static void SFX(prefetch_write)(const void *p, int64_t bytes)
{
    const char *c = p;
    for (int64_t i = 0; i < bytes; i += 64) V_PREFETCH_W(c + i);
}

/* SGD with momentum (no weight decay, not the first step): per element
 * buf = buf*mom + keep*g; p = p + neg_lr*buf, rounded after every operation. */
static void SFX(sgd_momentum)(int64_t n, float *p, const float *g, float *buf, float mom,
                              float keep, float neg_lr)
{
    const vf vm = V_SET1(mom), vk = V_SET1(keep), vl = V_SET1(neg_lr);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        SFX(opt_prefetch)(p, i, n);
        const vf b = V_ADD(V_MUL(V_LOADU(buf + i), vm), V_MUL(vk, V_LOADU(g + i)));
        V_STOREU(buf + i, b);
        V_STOREU(p + i, V_ADD(V_LOADU(p + i), V_MUL(vl, b)));
    }
    for (; i < n; i++) {
        const float decayed = buf[i] * mom;
        buf[i] = decayed + keep * g[i];
        p[i] = p[i] + neg_lr * buf[i];
    }
}

/* Adam / AdamW: ln_adam_reference (optim.c) a vector at a time, the same operations. */
static void SFX(adam)(int64_t n, float *p, const float *g, float *m, float *v,
                      const ln_adam_consts *k)
{
    const vf b1 = V_SET1(k->b1), c1 = V_SET1(k->c1), b2 = V_SET1(k->b2), c2 = V_SET1(k->c2);
    const vf eps = V_SET1(k->eps), wd = V_SET1(k->wd), shrink = V_SET1(k->shrink);
    const vf step = V_SET1(k->neg_step), bc2 = V_SET1(k->bc2_sqrt);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        SFX(opt_prefetch)(p, i, n);
        vf gv = V_LOADU(g + i), pv = V_LOADU(p + i);
        if (k->decay == LN_DECAY_DECOUPLED)
            pv = V_MUL(pv, shrink);
        else if (k->decay == LN_DECAY_L2)
            gv = V_ADD(gv, V_MUL(wd, pv));
        const vf mv = V_ADD(V_MUL(V_LOADU(m + i), b1), V_MUL(c1, gv));
        const vf vv = V_ADD(V_MUL(V_LOADU(v + i), b2), V_MUL(V_MUL(c2, gv), gv));
        V_STOREU(m + i, mv);
        V_STOREU(v + i, vv);
        const vf denom = V_ADD(V_DIV(V_SQRT(vv), bc2), eps);
        V_STOREU(p + i, V_ADD(pv, V_DIV(V_MUL(step, mv), denom)));
    }
    if (i < n) ln_adam_reference(n - i, p + i, g + i, m + i, v + i, k);
}

/* ================================================================== table */

static const ln_simd_kernels SFX(kernels) = {
    .isa = SIMD_ISA,
    .lanes = VL,
    .tile_rows = TM,
    .unpool_window = UNPOOL_WINDOW,
    .dw_fill = DW_FILL,
    .conv_unfold = SFX(conv_unfold),
    .conv_fold = SFX(conv_fold),
    .conv_fwd = SFX(conv_fwd),
    .conv_dx = SFX(conv_dx),
    .conv_dx_listed = SFX(conv_dx_listed),
    .conv_dw_listed = SFX(conv_dw_listed),
    .conv_dy_transpose = SFX(conv_dy_transpose),
    .transpose_add = SFX(transpose_add),
    .conv_rows_transpose = SFX(conv_rows_transpose),
    .conv_dw = SFX(conv_dw),
    .conv_dw_lanes = SFX(conv_dw_lanes),
    .conv_dw_lanes_some = SFX(conv_dw_lanes_some),
    .reduce_lanes = SFX(reduce_lanes),
    .linear_fwd = SFX(linear_fwd),
    .linear_bwd = SFX(linear_bwd),
    .relu_fwd = SFX(relu_fwd),
    .relu_bwd = SFX(relu_bwd),
    .maxpool2_fwd = SFX(maxpool2_fwd),
    .maxpool2_bwd = SFX(maxpool2_bwd),
    .bn_sums = SFX(bn_sums),
    .bn_sqdevs = SFX(bn_sqdevs),
    .bn_affine = SFX(bn_affine),
    .bn_grad_sums = SFX(bn_grad_sums),
    .bn_dx = SFX(bn_dx),
    .bn_feat_sums = SFX(bn_feat_sums),
    .bn_feat_affine = SFX(bn_feat_affine),
    .bn_feat_grad_sums = SFX(bn_feat_grad_sums),
    .bn_feat_dx = SFX(bn_feat_dx),
    .avgpool2_fwd = SFX(avgpool2_fwd),
    .avgpool2_bwd = SFX(avgpool2_bwd),
    .maxpool_fwd = SFX(maxpool_fwd),
    .avgpool_fwd = SFX(avgpool_fwd),
    .avgpool_bwd_any = SFX(avgpool_bwd_any),
    .squash_fwd = SFX(squash_fwd),
    .squash_bwd = SFX(squash_bwd),
    .pool_places = SFX(pool_places),
    .scale_runs = SFX(scale_runs),
    .max_abs = SFX(max_abs),
    .dropout_mask = SFX(dropout_mask),
    .sgd_momentum = SFX(sgd_momentum),
    .adam = SFX(adam),
    .prefetch_write = SFX(prefetch_write),
};

#undef ALWAYS_INLINE
#undef IM2COL_S2
#undef IM2COL_MASKS
#undef IM2COL_MAX_K
#undef DX_STEP
#undef DX_ALL
#undef DX_LISTED
#undef DX_REPLAY
#undef DXL_KV
#undef CONV_TALL_TN
#undef LIN_L2_FLOATS
#undef LIN_DYB_FLOATS
#undef LIN_DY_NEAR
#undef LIN_O
#undef LIN_KV
#undef OPT_AHEAD
#undef LIN_AB
#undef SUM_CHAINS
#undef LIN_FWD_L2
#undef TCASE
#undef TROW
#undef TILE_SWITCH
#undef TILE_SWITCH_LIM
#undef TMAX_M
#undef TMAX_N
#undef SIMD_MAXPOOL_SCALAR
#undef SIMD_MAXPOOL_AVX2
#undef SIMD_MAXPOOL_AVX512
