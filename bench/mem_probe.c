/* mem_probe.c - how fast one core reads memory right now: the read bandwidth of a
 * buffer the size of the nets' working sets (8 MiB: in the last-level cache when the
 * host leaves it to us) and of one far beyond any cache (256 MiB: DRAM).
 *
 * Prints
 *   l3_gbs <GB/s> dram_gbs <GB/s>   each the best of 5 passes
 * The development VM's host has slow phases lasting minutes, in which the layers that
 * wait on memory (batchnorm, the custom net) lose more than the convolutions: `make
 * bench` prints this before and after its tables so that a figure can be read against
 * the state it was measured in. Build: cc -O2 mem_probe.c -o mem_probe.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the sums go here, so that the reads are not optimised away */
static volatile float sink;

/* GB/s of summing n floats `passes` times, the best pass */
static double read_gbs(const float *a, size_t n, int passes)
{
    double best = 0.0;
    for (int p = 0; p < passes; p++) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        const double t0 = now();
        for (size_t i = 0; i + 8 <= n; i += 8) {
            s0 += a[i], s1 += a[i + 1], s2 += a[i + 2], s3 += a[i + 3];
            s4 += a[i + 4], s5 += a[i + 5], s6 += a[i + 6], s7 += a[i + 7];
        }
        const double t = now() - t0;
        sink = sink + s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
        const double gbs = (double)n * sizeof(float) / t / 1e9;
        if (gbs > best) best = gbs;
    }
    return best;
}

int main(void)
{
    const size_t small = (8u << 20) / sizeof(float), big = (256u << 20) / sizeof(float);
    float *a = malloc(big * sizeof(float));
    if (!a) {
        printf("l3_gbs none dram_gbs none\n");
        return 0;
    }
    for (size_t i = 0; i < big; i++) a[i] = (float)(i & 7);
    read_gbs(a, small, 2); /* warm: the small buffer into the cache */
    const double l3 = read_gbs(a, small, 5), dram = read_gbs(a, big, 5);
    printf("l3_gbs %.1f dram_gbs %.1f\n", l3, dram);
    free(a);
    return 0;
}
