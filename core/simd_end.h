/* simd_end.h - closes one ISA opened by a simd_*_begin.h: closes its target region (if
 * it opened one) and undefines every macro of simd_impl.h's contract, so that core/simd.c
 * can open the next ISA. Deliberately without an include guard. */
#ifndef SIMD_ISA
#error "simd_end.h: no ISA is open (include a simd_*_begin.h first)"
#endif

#if SIMD_TARGET_REGION
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

#undef SIMD_TARGET_REGION
#undef vf
#undef vi
#undef VL
#undef SFX
#undef SIMD_ISA
#undef V_LOADU
#undef V_STOREU
#undef V_SET1
#undef V_ZERO
#undef V_ADD
#undef V_MUL
#undef V_DIV
#undef V_SQRT
#undef V_FMA
#undef V_LOADU_N
#undef V_STOREU_N
#undef V_HSUM
#undef V_HAS_REDUCE16
#undef V_REDUCE16
#undef V_LOADU_LANES
#undef V_LMASK
#undef V_LMASK_MAKE
#undef V_LOADU_LMASK
#undef V_COPY8
#undef V_PREFETCH_W
#undef V_HAS_PREFETCH_W
#undef TM
#undef TN
#undef DW_TN
#undef DW_TM
#undef DW_FILL
#undef SIMD_M256
#undef LIN_N
#undef CONV_WIDE_CK
#undef SIMD_MAXPOOL
#undef UNPOOL_WINDOW
