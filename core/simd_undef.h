/* simd_undef.h - ends one instantiation of simd_impl.h: forgets the macros that
 * described the instruction set, so simd.c can include simd_impl.h again for the next.
 * Deliberately without an include guard. */
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
#undef V_LMASK
#undef V_LMASK_MAKE
#undef V_LOADU_LMASK
#undef V_REDUCE16
#undef A5_LANES
#undef V_COPY8
#undef V_LOADU_LANES
#undef TM
#undef TN
#undef LIN_N
