/* simd_avx2_begin.h - the vector vocabulary of simd_impl.h for AVX2 + FMA (8 lanes).
 * core/simd.c only, on x86: include it, then simd_impl.h, then simd_end.h. Opens a
 * region compiled for avx2,fma (simd_end.h closes it), so no -march flag is needed;
 * simd.c calls these kernels only when the CPU reports both. The contract (every macro
 * below) is documented in simd_impl.h. Deliberately without an include guard. */
#ifdef SIMD_ISA
#error "simd_avx2_begin.h: the previous ISA was not closed with simd_end.h"
#endif

#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

/* lanes [0, n) set, 0 <= n <= 8 */
static const int32_t mask_table8[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256i a2_mask(int n) { return _mm256_loadu_si256((const __m256i *)(mask_table8 + 8 - n)); }
static inline float a2_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* out[i] += a2_hsum(part[i*8 ..]) for i < 8, the same additions in the same association
 * (each lane i with lane i + 4, then pairs 0 + 2 and 1 + 3, then those two), eight sums
 * at a time instead of one latency chain each: the halves of two vectors are added in
 * one register, the pairs taken by shuffles, the last step is hadd's. */
static inline void a2_reduce8(const float *part, float *out)
{
    __m256 p[4], q[2];
    for (int j = 0; j < 4; j++) {
        const __m256 a = _mm256_loadu_ps(part + 16 * j), b = _mm256_loadu_ps(part + 16 * j + 8);
        /* lanes 0-3: a's s_i = a_i + a_(i+4); lanes 4-7: b's */
        p[j] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    }
    for (int j = 0; j < 2; j++) /* per half: s0 + s2, s1 + s3 of two vectors */
        q[j] = _mm256_add_ps(_mm256_shuffle_ps(p[2 * j], p[2 * j + 1], 0x44),
                             _mm256_shuffle_ps(p[2 * j], p[2 * j + 1], 0xEE));
    /* (s0 + s2) + (s1 + s3): sums of vectors 0, 2, 4, 6 in the low half, 1, 3, 5, 7 high */
    const __m256 r = _mm256_hadd_ps(q[0], q[1]);
    const __m256 sums = _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), sums));
}

static inline void a2_reduce16(const float *part, float *out)
{
    a2_reduce8(part, out);
    a2_reduce8(part + 64, out + 8);
}

/* lanes [l0, l1) set */
static inline __m256i a2_lanes(int l0, int l1)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ge = _mm256_cmpgt_epi32(iota, _mm256_set1_epi32(l0 - 1));
    const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(l1), iota);
    return _mm256_and_si256(ge, lt);
}

#define SIMD_TARGET_REGION 1
#define vf vf8
#define vi vi8
#define VL 8
#define SFX(name) name##_avx2
#define SIMD_ISA LN_ISA_AVX2
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps((p), (v))
#define V_SET1(x) _mm256_set1_ps(x)
#define V_ZERO() _mm256_setzero_ps()
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_DIV(a, b) _mm256_div_ps((a), (b))
#define V_SQRT(a) _mm256_sqrt_ps(a)
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_LOADU_N(p, n) _mm256_maskload_ps((p), a2_mask(n))
#define V_STOREU_N(p, v, n) _mm256_maskstore_ps((p), a2_mask(n), (v))
#define V_HSUM(v) a2_hsum(v)
#define V_HAS_REDUCE16 1
#define V_REDUCE16(part, out) a2_reduce16((part), (out))
#define V_LOADU_LANES(p, l0, l1) _mm256_maskload_ps((p), a2_lanes((l0), (l1)))
#define V_LMASK __m256i
#define V_LMASK_MAKE(l0, l1) a2_lanes((l0), (l1))
#define V_LOADU_LMASK(p, m) _mm256_maskload_ps((p), (m))
/* no PREFETCHW here (Haswell lacks it): a prefetch for reading, as batchnorm's
 * prefetch always was on every ISA, and nothing in the optimizers */
#define V_PREFETCH_W(p) __builtin_prefetch((p), 1)
#define V_HAS_PREFETCH_W 0
#define V_COPY8(d, s, n) _mm256_storeu_ps((d), _mm256_maskload_ps((s), a2_mask(n)))
/* 4 x 3 tiles: 12 accumulators, 3 vector loads and a broadcast fill the 16 ymm registers
 * (7 loads per 12 FMAs, where 4 x 2 needed 6 per 8); the lane-partial weight gradient's
 * tile is 4 channels x 3 rows too (its dy vectors are loaded one at a time: 12
 * accumulators, 3 rows and one dy; 4 x 2 ran study conv2 at 47 GF/s, 4 x 3 at 59-80,
 * kernel_bench on a loaded machine); the transposed one is 4 rows x
 * 3 vectors or 6 rows x 2 vectors (8 loads per 12 FMAs). The transposed one runs at
 * 85-100% of the FMA peak, the lane partials at 70-90% since their 4 x 3 tiles (55-60%
 * with 4 x 2); the transposed one is taken from 90% of its lanes in use, so that the
 * study's net (20 channels in 3 vectors) keeps its numbers (its lane partials, 7.5 us
 * per sample, now beat the transposed kernel's 8.2 plus 0.4 for transposing dy). */
#define TM 4
#define TN 3
#define DW_TN 3
#define DW_TM(nr) ((nr) >= 3 ? 4 : 6)
#define SIMD_M256 1 /* __m256 intrinsics (AVX2) are available in the region */
#define DW_FILL 90
#define LIN_N 3 /* 3 x 4 forward tiles (simd_impl.h, LIN_O) */
#define CONV_WIDE_CK 0 /* 16 registers: no 6 x 4 tiles */
#define SIMD_MAXPOOL SIMD_MAXPOOL_AVX2
