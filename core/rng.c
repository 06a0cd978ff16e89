/* rng.c - PCG32 (XSH-RR variant, M. O'Neill) and SplitMix64 seed derivation.
 * Every consumer owns its ln_rng; nothing here is global. */
#include "lunet.h"

#define PCG_MULT 6364136223846793005ULL

uint32_t ln_rng_u32(ln_rng *rng)
{
    uint64_t old = rng->state;
    rng->state = old * PCG_MULT + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

/* Jumping ahead: n steps of state -> state * MULT + inc compose to state * A + C with
 * A = MULT^n and C = inc * (MULT^(n-1) + ... + 1), built from the steps of 1, 2, 4, ...
 * by squaring (one bit of n at a time), all mod 2^64. */
void ln_rng_advance(ln_rng *rng, uint64_t n)
{
    uint64_t acc_mult = 1, acc_plus = 0, mult = PCG_MULT, plus = rng->inc;
    for (; n; n >>= 1) {
        if (n & 1u) {
            acc_mult *= mult;
            acc_plus = acc_plus * mult + plus;
        }
        plus = (mult + 1) * plus;
        mult *= mult;
    }
    rng->state = acc_mult * rng->state + acc_plus;
}

void ln_rng_seed(ln_rng *rng, uint64_t seed, uint64_t stream)
{
    rng->state = 0;
    rng->inc = (stream << 1) | 1u; /* the increment must be odd */
    ln_rng_u32(rng);
    rng->state += seed;
    ln_rng_u32(rng);
}

float ln_rng_uniform(ln_rng *rng)
{
    /* 24 bits: every value is exactly representable, and 1.0 is never returned. */
    return (float)(ln_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

uint32_t ln_rng_below(ln_rng *rng, uint32_t n)
{
    /* Rejection of the short top range keeps the draw unbiased. */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t r = ln_rng_u32(rng);
        if (r >= threshold) return r % n;
    }
}

uint64_t ln_seed_derive(uint64_t seed, uint64_t index)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (index + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
