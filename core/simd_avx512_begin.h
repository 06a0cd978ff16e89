/* simd_avx512_begin.h - the vector vocabulary of simd_impl.h for AVX-512F + VL (16
 * lanes, with AVX2 and FMA). core/simd.c only, on x86: include it, then simd_impl.h,
 * then simd_end.h. Opens a region compiled for those extensions (simd_end.h closes it),
 * so no -march flag is needed; simd.c calls these kernels only when the CPU reports
 * them all. The contract (every macro below) is documented in simd_impl.h.
 * Deliberately without an include guard. */
#ifdef SIMD_ISA
#error "simd_avx512_begin.h: the previous ISA was not closed with simd_end.h"
#endif

#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx2,fma,prfchw"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx2,fma,prfchw")
#endif

typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

/* out[0..16) += lane sums of the 16 vectors at part: a transposing tree of 15 adds */
static inline void a5_reduce16(const float *part, float *out)
{
    const __m512i lo8 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i hi8 = _mm512_add_epi32(lo8, _mm512_set1_epi32(8));
    const __m512i lo4 = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const __m512i hi4 = _mm512_add_epi32(lo4, _mm512_set1_epi32(4));
    const __m512i lo2 = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29);
    const __m512i hi2 = _mm512_add_epi32(lo2, _mm512_set1_epi32(2));
    const __m512i lo1 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i hi1 = _mm512_add_epi32(lo1, _mm512_set1_epi32(1));
    __m512 u[8], t[4], r[2];
    for (int j = 0; j < 8; j++) {
        const __m512 a = _mm512_loadu_ps(part + (2 * j) * 16), b = _mm512_loadu_ps(part + (2 * j + 1) * 16);
        u[j] = _mm512_add_ps(_mm512_permutex2var_ps(a, lo8, b), _mm512_permutex2var_ps(a, hi8, b));
    }
    for (int j = 0; j < 4; j++)
        t[j] = _mm512_add_ps(_mm512_permutex2var_ps(u[2 * j], lo4, u[2 * j + 1]),
                             _mm512_permutex2var_ps(u[2 * j], hi4, u[2 * j + 1]));
    for (int j = 0; j < 2; j++)
        r[j] = _mm512_add_ps(_mm512_permutex2var_ps(t[2 * j], lo2, t[2 * j + 1]),
                             _mm512_permutex2var_ps(t[2 * j], hi2, t[2 * j + 1]));
    const __m512 s = _mm512_add_ps(_mm512_permutex2var_ps(r[0], lo1, r[1]),
                                   _mm512_permutex2var_ps(r[0], hi1, r[1]));
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), s));
}

/* lanes [0, n) set, 0 <= n <= 16; lanes [l0, l1) set (always inlined: as the plain
 * expressions, they leave the kernels' code as it was) */
static inline __attribute__((always_inline)) __mmask16 a5_mask(int n)
{
    return (__mmask16)((1u << n) - 1u);
}
static inline __attribute__((always_inline)) __mmask16 a5_lanes(int l0, int l1)
{
    return (__mmask16)(((1u << l1) - 1u) & ~((1u << l0) - 1u));
}

#define SIMD_TARGET_REGION 1
#define vf vf16
#define vi vi16
#define VL 16
#define SFX(name) name##_avx512
#define SIMD_ISA LN_ISA_AVX512
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps((p), (v))
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ZERO() _mm512_setzero_ps()
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_SQRT(a) _mm512_sqrt_ps(a)
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_LOADU_N(p, n) _mm512_maskz_loadu_ps(a5_mask(n), (p))
#define V_STOREU_N(p, v, n) _mm512_mask_storeu_ps((p), a5_mask(n), (v))
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_HAS_REDUCE16 1
#define V_REDUCE16(part, out) a5_reduce16((part), (out))
#define V_LOADU_LANES(p, l0, l1) _mm512_maskz_loadu_ps(a5_lanes((l0), (l1)), (p))
#define V_LMASK __mmask16
#define V_LMASK_MAKE(l0, l1) a5_lanes((l0), (l1))
#define V_LOADU_LMASK(p, m) _mm512_maskz_loadu_ps((m), (p))
/* a line about to be written, fetched for writing (PREFETCHW: simd.c requires it with
 * AVX-512, which every CPU that has AVX-512 also has) */
#define V_PREFETCH_W(p) __builtin_prefetch((p), 1)
#define V_HAS_PREFETCH_W 1
#define V_COPY8(d, s, n) _mm256_storeu_ps((d), _mm256_maskz_loadu_ps((__mmask8)((1u << (n)) - 1u), (s)))
#define TM 5
#define TN 4
#define DW_TN TN
/* the transposed weight gradient: up to 24 accumulators, 4 loads and a broadcast; the
 * lane partials (5 x 4 tiles) ran at ~87% of the peak here, so the transposed one is
 * taken only when (nearly) every lane is a channel */
#define DW_TM(nr) 6
#define SIMD_M256 1 /* __m256 intrinsics (AVX2) are available in the region */
#define DW_FILL 90
#define LIN_N 4
/* conv_fwd takes 6 x 4 tiles (24 accumulators, 4 row vectors, a broadcast: 29 of the 32
 * registers) for channels that 5 does not divide, when the reduction is at least this
 * long (64 channels, ck 288 and 800, and 32, ck 144: forward +1-5%; conv1s of ck 9-25
 * were slower) */
#define CONV_WIDE_CK 64
#define SIMD_MAXPOOL SIMD_MAXPOOL_AVX512
