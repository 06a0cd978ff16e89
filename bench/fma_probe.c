/* fma_probe.c - measures this core's FP32 FMA throughput (the "peak" the bench divides by).
 *
 * Runs independent chains of vector FMAs (enough of them to cover the FMA latency times
 * the number of FMA pipes) on 512-bit (AVX-512F) and 256-bit (AVX2+FMA) registers, each
 * for a fixed number of iterations, best of several repeats, and prints
 *   zmm <GFLOP/s>
 *   ymm <GFLOP/s>
 *   peak <GFLOP/s>       (the larger of the two the CPU supports: FP32 peak of one core)
 * Build: cc -O2 fma_probe.c -o fma_probe (no -march needed: target attributes select ISAs).
 * Timed in thread CPU time (robust to other load), best of 5 repeats; one thread.
 */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

/* CPU time of this thread: the probe measures what a core can do while it runs, so
 * other work on a shared machine (time-slicing) does not lower the "peak". */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CHAINS 12 /* >= latency (4) x pipes (2); kept in registers */
#define ITERS 10000000L

/* One probe per register width: CHAINS independent FMA chains of `vec` (LANES floats)
 * for ITERS iterations; returns GFLOP/s (an FMA counts 2 per lane). The chains' sum is
 * stored through a volatile so that the compiler keeps the work. */
#define FMA_PROBE(name, isa, vec, lanes, set1, fmadd, add, storeu)                \
    __attribute__((target(isa))) static double name(float seed)                    \
    {                                                                              \
        vec acc[CHAINS];                                                           \
        for (int i = 0; i < CHAINS; i++) acc[i] = set1(seed + (float)i);           \
        const vec a = set1(0.999999f), b = set1(1e-7f);                            \
        double t0 = now();                                                         \
        for (long it = 0; it < ITERS; it++) {                                      \
            _Pragma("GCC unroll 12")                                               \
            for (int i = 0; i < CHAINS; i++) acc[i] = fmadd(acc[i], a, b);         \
        }                                                                          \
        double t = now() - t0;                                                     \
        vec s = acc[0];                                                            \
        for (int i = 1; i < CHAINS; i++) s = add(s, acc[i]);                       \
        float out[lanes];                                                          \
        storeu(out, s);                                                            \
        volatile float sink = out[0];                                              \
        (void)sink;                                                                \
        return (double)ITERS * CHAINS * lanes * 2 / t * 1e-9;                      \
    }

FMA_PROBE(run_zmm, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps)
FMA_PROBE(run_ymm, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps)

int main(void)
{
    __builtin_cpu_init();
    double zmm = 0.0, ymm = 0.0;
    const int has512 = __builtin_cpu_supports("avx512f");
    const int has256 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    for (int rep = 0; rep < 5; rep++) {
        if (has512) {
            double g = run_zmm(1.0f + (float)rep);
            if (g > zmm) zmm = g;
        }
        if (has256) {
            double g = run_ymm(1.0f + (float)rep);
            if (g > ymm) ymm = g;
        }
    }
    printf("zmm %.1f\nymm %.1f\npeak %.1f\n", zmm, ymm, zmm > ymm ? zmm : ymm);
    return 0;
}
