/* schedule.c - learning-rate schedules with torch.optim.lr_scheduler's semantics
 * (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR).
 *
 * t counts the scheduler's steps so far: finished epochs for a schedule stepped per
 * epoch, optimizer steps for one stepped per step. PyTorch calls scheduler.step() after
 * each epoch (or step), so the rate used during epoch t (0-based) is lr(t).
 *
 * The rate is computed in closed form from the base rate and t, never by updating the
 * previous rate: a continued, resumed or checkpointed run needs nothing but t, and a
 * later call's base rate (a lower lr) applies from its first step. PyTorch's chainable
 * form (each rate from the previous one) agrees to rounding (spec/fixtures: 1e-7).
 */
#include "lunet.h"

#include <math.h>
#include <string.h>

static const double pi = 3.14159265358979323846;

const char *ln_schedule_name(ln_schedule_kind k)
{
    switch (k) {
    case LN_SCHED_NONE: return "none";
    case LN_SCHED_STEP: return "step";
    case LN_SCHED_MULTISTEP: return "multistep";
    case LN_SCHED_EXPONENTIAL: return "exponential";
    case LN_SCHED_COSINE: return "cosine";
    }
    return "unknown";
}

ln_status ln_schedule_check(const ln_schedule *s, ln_error *err)
{
    if (!s) return ln_fail(err, LN_EINVAL, "schedule: NULL");
    const char *name = ln_schedule_name(s->kind);
    if (s->kind == LN_SCHED_NONE) return LN_OK;
    if (s->kind < LN_SCHED_NONE || s->kind > LN_SCHED_COSINE)
        return ln_fail(err, LN_EINVAL,
                       "schedule: unknown kind %d (expected step, multistep, exponential or cosine)",
                       (int)s->kind);
    if (s->per != LN_UNIT_EPOCH && s->per != LN_UNIT_STEP)
        return ln_fail(err, LN_EINVAL, "schedule %s: per must be epoch or step", name);
    if (s->kind != LN_SCHED_COSINE && (!(s->gamma > 0.0) || !isfinite(s->gamma)))
        return ln_fail(err, LN_EINVAL, "schedule %s: gamma must be > 0 and finite (got %g)", name,
                       s->gamma);
    switch (s->kind) {
    case LN_SCHED_STEP:
        if (s->step_size < 1)
            return ln_fail(err, LN_EINVAL, "schedule step: step_size must be >= 1 (got %lld)",
                           (long long)s->step_size);
        break;
    case LN_SCHED_MULTISTEP:
        if (s->milestone_count < 0 || s->milestone_count > LN_MAX_MILESTONES)
            return ln_fail(err, LN_EINVAL, "schedule multistep: 0 to %d milestones (got %d)",
                           LN_MAX_MILESTONES, s->milestone_count);
        for (int i = 0; i < s->milestone_count; i++) {
            if (s->milestones[i] < 1)
                return ln_fail(err, LN_EINVAL,
                               "schedule multistep: milestones[%d] must be >= 1 (got %lld)", i + 1,
                               (long long)s->milestones[i]);
            if (i > 0 && s->milestones[i] < s->milestones[i - 1])
                return ln_fail(err, LN_EINVAL,
                               "schedule multistep: milestones must be increasing (milestones[%d] "
                               "= %lld after %lld)", i + 1, (long long)s->milestones[i],
                               (long long)s->milestones[i - 1]);
        }
        break;
    case LN_SCHED_COSINE:
        if (s->t_max < 1)
            return ln_fail(err, LN_EINVAL, "schedule cosine: t_max must be >= 1 (got %lld)",
                           (long long)s->t_max);
        if (!isfinite(s->eta_min) || !(s->eta_min >= 0.0))
            return ln_fail(err, LN_EINVAL, "schedule cosine: eta_min must be >= 0 and finite (got %g)",
                           s->eta_min);
        break;
    default: break;
    }
    return LN_OK;
}

double ln_schedule_lr(const ln_schedule *s, double base_lr, int64_t t)
{
    if (t < 0) t = 0;
    switch (s->kind) {
    case LN_SCHED_STEP: return base_lr * pow(s->gamma, (double)(t / s->step_size));
    case LN_SCHED_MULTISTEP: {
        /* bisect_right(milestones, t): a milestone m counts once t >= m; repeated
         * milestones multiply by gamma once each, as PyTorch's Counter does. */
        int passed = 0;
        for (int i = 0; i < s->milestone_count; i++) passed += s->milestones[i] <= t;
        return base_lr * pow(s->gamma, (double)passed);
    }
    case LN_SCHED_EXPONENTIAL: return base_lr * pow(s->gamma, (double)t);
    case LN_SCHED_COSINE:
        return s->eta_min +
               (base_lr - s->eta_min) * (1.0 + cos(pi * (double)t / (double)s->t_max)) / 2.0;
    case LN_SCHED_NONE: break;
    }
    return base_lr;
}
