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
#else
#define LN_SIMD_X86 0
#endif

/* Each ISA: its vocabulary (simd_*_begin.h), the kernels (simd_impl.h), the close
 * (simd_end.h), which leaves kernels_<isa>, the ISA's table. */
#include "simd_generic_begin.h"
#include "simd_impl.h"
#include "simd_end.h"

#if LN_SIMD_X86
#include <cpuid.h>

#include "simd_avx2_begin.h"
#include "simd_impl.h"
#include "simd_end.h"

#include "simd_avx512_begin.h"
#include "simd_impl.h"
#include "simd_end.h"
#endif

/* ============================================================== dispatch */

#if LN_SIMD_X86
/* PREFETCHW (CPUID 0x80000001, ECX bit 8), which the AVX-512 region is compiled to use:
 * every CPU with AVX-512 has it, but the check costs nothing (and clang's
 * __builtin_cpu_supports does not know the name) */
static int cpu_has_prefetchw(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c >> 8 & 1u);
}
#endif

static int cpu_has(ln_isa isa)
{
#if LN_SIMD_X86
    __builtin_cpu_init();
    switch (isa) {
    case LN_ISA_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                               cpu_has_prefetchw();
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
