/* tap.h - the report every C test program prints, in the form spec/c_spec.lua reads:
 *
 *   ok N - what                  one passed check (N counts from 1)
 *   not ok N - what: detail      one failed check (": detail" only when there is one)
 *   # skip: why                  a part not run here (c_spec.lua shows it as pending)
 *   # passed P failed F          the last line; the exit status is 1 if F > 0
 *
 * Each line is flushed at once, so that a crash still leaves the checks before it.
 * Header only: every test program is a single translation unit. */
#ifndef LUNET_SPEC_TAP_H
#define LUNET_SPEC_TAP_H

#include <stdarg.h>
#include <stdio.h>

typedef struct tap {
    int n;      /* checks reported so far */
    int failed; /* of which failed */
} tap;

#if defined(__GNUC__)
#define TAP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TAP_PRINTF(fmt, args)
#endif

/* Reports one check; detail (NULL or "" for none) says what went wrong. Returns ok. */
static inline int tap_result(tap *t, int ok, const char *what, const char *detail)
{
    t->n++;
    if (ok) {
        printf("ok %d - %s\n", t->n, what);
    } else {
        t->failed++;
        printf("not ok %d - %s%s%s\n", t->n, what, detail && *detail ? ": " : "", detail ? detail : "");
    }
    fflush(stdout);
    return ok;
}

/* A check whose description is formatted from fmt. */
static inline int tap_check(tap *t, int ok, const char *fmt, ...) TAP_PRINTF(3, 4);
static inline int tap_check(tap *t, int ok, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tap_result(t, ok, what, NULL);
}

/* A check described by what, whose detail on failure is formatted from fmt (may be NULL). */
static inline int tap_checkd(tap *t, int ok, const char *what, const char *fmt, ...) TAP_PRINTF(4, 5);
static inline int tap_checkd(tap *t, int ok, const char *what, const char *fmt, ...)
{
    char detail[600] = "";
    if (!ok && fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    return tap_result(t, ok, what, detail);
}

/* A part not run here, and why. */
static inline void tap_skip(const char *fmt, ...) TAP_PRINTF(1, 2);
static inline void tap_skip(const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    printf("# skip: %s\n", why);
    fflush(stdout);
}

/* The last line; returns the program's exit status. */
static inline int tap_done(const tap *t)
{
    printf("# passed %d failed %d\n", t->n - t->failed, t->failed);
    fflush(stdout);
    return t->failed ? 1 : 0;
}

#endif
