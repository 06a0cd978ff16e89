/* simd.c - compiles core/simd_impl.h once per ISA (portable C, AVX2+FMA, AVX-512) and
 * picks one at run time.
 * See simd.h for the design. No -march flag is needed: each ISA's code is compiled
 * under its own `#pragma GCC target` and only called when the CPU reports the ISA. */
#include "simd.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define LN_SIMD_X86 1
#include <immintrin.h>
#else
#define LN_SIMD_X86 0
#endif

/* ============================================================ portable C */

typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));

static inline vf4 g_loadu(const float *p)
{
    vf4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void g_storeu(float *p, vf4 v) { memcpy(p, &v, sizeof v); }
static inline vf4 g_loadu_n(const float *p, int n)
{
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(t, p, sizeof(float) * (size_t)n);
    return g_loadu(t);
}
static inline void g_storeu_n(float *p, vf4 v, int n)
{
    float t[4];
    g_storeu(t, v);
    memcpy(p, t, sizeof(float) * (size_t)n);
}

static inline vf4 g_sqrt(vf4 v)
{
    return (vf4){sqrtf(v[0]), sqrtf(v[1]), sqrtf(v[2]), sqrtf(v[3])};
}

static inline vf4 g_loadu_lanes(const float *p, int l0, int l1)
{
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int l = l0; l < l1; l++) t[l] = p[l];
    return g_loadu(t);
}

#define vf vf4
#define vi vi4
#define VL 4
#define SFX(name) name##_generic
#define SIMD_ISA LN_ISA_GENERIC
#define V_LOADU(p) g_loadu(p)
#define V_STOREU(p, v) g_storeu((p), (v))
#define V_SET1(x) ((vf4){(x), (x), (x), (x)})
#define V_ZERO() ((vf4){0.0f, 0.0f, 0.0f, 0.0f})
#define V_ADD(a, b) ((a) + (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_SQRT(a) g_sqrt(a)
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_LOADU_N(p, n) g_loadu_n((p), (n))
#define V_STOREU_N(p, v, n) g_storeu_n((p), (v), (n))
#define V_HSUM(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))
#define V_LOADU_LANES(p, l0, l1) g_loadu_lanes((p), (l0), (l1))
#define V_COPY8(d, s, n) memcpy((d), (s), sizeof(float) * (size_t)(n))
typedef struct {
    int l0, l1;
} g_lmask;
#define V_LMASK g_lmask
#define V_LMASK_MAKE(l0, l1) ((g_lmask){(l0), (l1)})
#define V_LOADU_LMASK(p, m) g_loadu_lanes((p), (m).l0, (m).l1)
#define TM 4
#define TN 2
#define LIN_N 2
#include "simd_impl.h"
#include "simd_undef.h"

#if LN_SIMD_X86
/* ============================================================ AVX2 + FMA */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

static const int32_t mask_table8[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256i a2_mask(int n) { return _mm256_loadu_si256((const __m256i *)(mask_table8 + 8 - n)); }
static inline float a2_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline __m256i a2_lanes(int l0, int l1)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ge = _mm256_cmpgt_epi32(iota, _mm256_set1_epi32(l0 - 1));
    const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(l1), iota);
    return _mm256_and_si256(ge, lt);
}

#define vf vf8
#define vi vi8
#define VL 8
#define SFX(name) name##_avx2
#define SIMD_ISA LN_ISA_AVX2
#define SIMD_MAXPOOL_AVX2 1
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
#define V_LOADU_LANES(p, l0, l1) _mm256_maskload_ps((p), a2_lanes((l0), (l1)))
#define V_COPY8(d, s, n) _mm256_storeu_ps((d), _mm256_maskload_ps((s), a2_mask(n)))
#define V_LMASK __m256i
#define V_LMASK_MAKE(l0, l1) a2_lanes((l0), (l1))
#define V_LOADU_LMASK(p, m) _mm256_maskload_ps((p), (m))
/* 4 x 3 tiles: 12 accumulators, 3 vector loads and a broadcast fill the 16 ymm registers
 * (7 loads per 12 FMAs, where 4 x 2 needed 6 per 8); the weight gradient's tile, which
 * also holds its 4 dy vectors, keeps 2 rows */
#define TM 4
#define TN 3
#define DW_TN 2
#define LIN_N 2
#include "simd_impl.h"
#include "simd_undef.h"
#undef SIMD_MAXPOOL_AVX2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* ============================================================== AVX-512 */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx2,fma")
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

#define vf vf16
#define vi vi16
#define VL 16
#define SFX(name) name##_avx512
#define SIMD_ISA LN_ISA_AVX512
#define SIMD_MAXPOOL_AVX512 1
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps((p), (v))
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ZERO() _mm512_setzero_ps()
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_SQRT(a) _mm512_sqrt_ps(a)
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_LOADU_N(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), (p))
#define V_STOREU_N(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1u), (v))
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_REDUCE16(part, out) a5_reduce16((part), (out))
#define A5_LANES(l0, l1) ((__mmask16)(((1u << (l1)) - 1u) & ~((1u << (l0)) - 1u)))
#define V_LOADU_LANES(p, l0, l1) _mm512_maskz_loadu_ps(A5_LANES((l0), (l1)), (p))
#define V_COPY8(d, s, n) _mm256_storeu_ps((d), _mm256_maskz_loadu_ps((__mmask8)((1u << (n)) - 1u), (s)))
#define V_LMASK __mmask16
#define V_LMASK_MAKE(l0, l1) A5_LANES((l0), (l1))
#define V_LOADU_LMASK(p, m) _mm512_maskz_loadu_ps((m), (p))
#define TM 5
#define TN 4
#define LIN_N 4
#include "simd_impl.h"
#include "simd_undef.h"
#undef SIMD_MAXPOOL_AVX512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

/* ============================================================== dispatch */

static int cpu_has(ln_isa isa)
{
#if LN_SIMD_X86
    __builtin_cpu_init();
    switch (isa) {
    case LN_ISA_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case LN_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return 1;
    }
#else
    return isa == LN_ISA_GENERIC;
#endif
}

const ln_simd_kernels *ln_simd_for(ln_isa isa)
{
    if (!cpu_has(isa)) return NULL;
    switch (isa) {
#if LN_SIMD_X86
    case LN_ISA_AVX512: return &kernels_avx512;
    case LN_ISA_AVX2: return &kernels_avx2;
#endif
    case LN_ISA_GENERIC: return &kernels_generic;
    default: return NULL;
    }
}

const char *ln_isa_name(ln_isa isa)
{
    switch (isa) {
    case LN_ISA_AVX512: return "avx512";
    case LN_ISA_AVX2: return "avx2";
    default: return "generic";
    }
}

static _Atomic(const ln_simd_kernels *) active;

static const ln_simd_kernels *detect(void)
{
    int best = LN_ISA_AVX512;
    const char *env = getenv("LUNET_ISA");
    if (env && *env) {
        if (!strcmp(env, "generic")) best = LN_ISA_GENERIC;
        else if (!strcmp(env, "avx2")) best = LN_ISA_AVX2;
    }
    for (int isa = best; isa >= LN_ISA_GENERIC; isa--) {
        const ln_simd_kernels *k = ln_simd_for((ln_isa)isa);
        if (k) return k;
    }
    return &kernels_generic;
}

const ln_simd_kernels *ln_simd(void)
{
    const ln_simd_kernels *k = atomic_load_explicit(&active, memory_order_acquire);
    if (!k) {
        k = detect(); /* idempotent: racing threads store the same pointer */
        atomic_store_explicit(&active, k, memory_order_release);
    }
    return k;
}

ln_isa ln_simd_force(int isa)
{
    const ln_simd_kernels *k = isa < 0 ? detect() : ln_simd_for((ln_isa)isa);
    if (!k) k = detect();
    atomic_store_explicit(&active, k, memory_order_release);
    return k->isa;
}

const char *ln_kernel_isa(void) { return ln_isa_name(ln_simd()->isa); }
