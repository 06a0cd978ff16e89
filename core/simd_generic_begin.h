/* simd_generic_begin.h - the vector vocabulary of simd_impl.h in portable C (GCC vector
 * extensions, 4 lanes), for any CPU. core/simd.c only: include it, then simd_impl.h,
 * then simd_end.h. The contract (every macro below) is documented in simd_impl.h.
 * Deliberately without an include guard (the helpers are static and included once). */
#ifdef SIMD_ISA
#error "simd_generic_begin.h: the previous ISA was not closed with simd_end.h"
#endif

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

typedef struct {
    int l0, l1;
} g_lmask;

#define SIMD_TARGET_REGION 0 /* plain C: no target region to close */
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
#define V_HAS_REDUCE16 0
#define V_LOADU_LANES(p, l0, l1) g_loadu_lanes((p), (l0), (l1))
#define V_LMASK g_lmask
#define V_LMASK_MAKE(l0, l1) ((g_lmask){(l0), (l1)})
#define V_LOADU_LMASK(p, m) g_loadu_lanes((p), (m).l0, (m).l1)
/* a prefetch as the compiler has it (for reading on x86 without PREFETCHW); nothing in
 * the optimizers */
#define V_PREFETCH_W(p) __builtin_prefetch((p), 1)
#define V_HAS_PREFETCH_W 0
#define V_COPY8(d, s, n) memcpy((d), (s), sizeof(float) * (size_t)(n))
#define TM 4
#define TN 2
#define DW_TN TN
#define DW_TM(nr) 6 /* 12 accumulators, 2 loads, a broadcast and a product */
#define SIMD_M256 0
#define DW_FILL 90
#define LIN_N 2
#define CONV_WIDE_CK 0
#define SIMD_MAXPOOL SIMD_MAXPOOL_SCALAR
