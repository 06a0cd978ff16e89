/* core_link.c - measures how far apart two cores' caches are: the round trip of one
 * cache line between two threads, each waiting for the other's write before writing.
 *
 * Prints
 *   round_trip_ns <ns>   median of 5 runs of 100000 round trips
 * On the development VM this reads about 100 ns when its two vCPUs share an L3 and
 * about 400 ns when they are on two dies (the host moves them from minute to minute),
 * and a single run of the study on 2 threads is about 9% slower in the second case (13-20%
 * before the prefetches of bench/README.md,
 * session 14): `make bench` prints it next to the 2-thread figures.
 * Build: cc -O2 -pthread core_link.c -o core_link. Threads are pinned to CPUs 0 and 1
 * when the system allows it (Linux); otherwise the scheduler places them. With fewer
 * than 2 CPUs to run on it prints "round_trip_ns none".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TRIPS 100000L
#define RUNS 5

/* the line the threads hand back and forth (alone on its cache line) */
static _Alignas(64) atomic_long line;

static void pin(int cpu)
{
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
#else
    (void)cpu;
#endif
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the other side: answers each odd value with the next even one */
static void *echo(void *arg)
{
    (void)arg;
    pin(1);
    for (long i = 0; i < TRIPS; i++) {
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1) {
        }
        atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* CPUs this process may run on (2 assumed where that cannot be asked) */
static int cpus(void)
{
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return 2;
}

int main(void)
{
    double ns[RUNS];
    if (cpus() < 2) { /* two spinning threads on one CPU would take a time slice a trip */
        printf("round_trip_ns none\n");
        return 0;
    }
    pin(0);
    for (int r = 0; r < RUNS; r++) {
        atomic_store(&line, 0);
        pthread_t t;
        if (pthread_create(&t, NULL, echo, NULL) != 0) {
            fprintf(stderr, "core_link: cannot start a thread\n");
            return 1;
        }
        const double t0 = now();
        for (long i = 0; i < TRIPS; i++) {
            atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2) {
            }
        }
        ns[r] = (now() - t0) / (double)TRIPS * 1e9;
        pthread_join(t, NULL);
    }
    qsort(ns, RUNS, sizeof ns[0], by_value);
    printf("round_trip_ns %.1f\n", ns[RUNS / 2]);
    return 0;
}
