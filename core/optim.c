/* optim.c - SGD (momentum, dampening, Nesterov, L2 weight decay), Adam and AdamW,
 * following PyTorch 1.13's single-tensor formulas step for step.
 *
 * State: sgd with momentum: one buffer of `count` floats; adam/adamw: m then v,
 * 2 * count floats; plain sgd: none. One block, so a reset is a single clear.
 *
 * Precision: PyTorch keeps the per-element arithmetic in float32 and the scalars
 * (bias corrections, step size, 1 - beta) in double, rounding each scalar to float
 * where it meets a tensor. The code below does the same operations in the same order
 * (mul_ then add_, addcmul's (value * a) * b, addcdiv's (value * a) / b), so results
 * agree with PyTorch to rounding (PyTorch's vectorised kernels fuse some of these
 * into FMAs, a difference of an ulp or so).
 */
#include "lunet.h"
#include "simd.h"

#include <math.h>
#include <string.h>

/* One descriptor per optimizer, in enum order: its name and torch.optim's defaults
 * (SGD's lr has no default in PyTorch; lunet's is 0.01). The bindings take their
 * defaults from here (ln_optim_defaults). */
typedef struct {
    const char *name;
    ln_optim_spec defaults;
} optim_kind;

static const optim_kind optims[] = {
    /* torch.optim.SGD: momentum 0, dampening 0, nesterov off, weight_decay 0 */
    [LN_OPT_SGD] = {"sgd", {.kind = LN_OPT_SGD, .lr = 0.01}},
    [LN_OPT_ADAM] = {"adam",
                     {.kind = LN_OPT_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}},
    /* torch.optim.AdamW decays by default (0.01); torch.optim.Adam does not. */
    [LN_OPT_ADAMW] = {"adamw",
                      {.kind = LN_OPT_ADAMW, .lr = 1e-3, .weight_decay = 1e-2, .beta1 = 0.9,
                       .beta2 = 0.999, .eps = 1e-8}},
};
#define OPTIM_COUNT ((int)(sizeof optims / sizeof optims[0]))

static int is_optim(int k) { return k >= 0 && k < OPTIM_COUNT; }

int ln_optim_kind_count(void) { return OPTIM_COUNT; }

const char *ln_optim_name(ln_optim_kind k) { return is_optim((int)k) ? optims[k].name : "unknown"; }

int ln_optim_kind_from_name(const char *name)
{
    for (int k = 0; name && k < OPTIM_COUNT; k++)
        if (!strcmp(optims[k].name, name)) return k;
    return -1;
}

ln_optim_spec ln_optim_defaults(ln_optim_kind kind)
{
    if (is_optim((int)kind)) return optims[kind].defaults;
    ln_optim_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    return s;
}

ln_optim_spec ln_sgd_spec(double lr, double momentum)
{
    ln_optim_spec s = optims[LN_OPT_SGD].defaults;
    s.lr = lr;
    s.momentum = momentum;
    return s;
}

ln_optim_spec ln_adam_spec(ln_optim_kind kind, double lr)
{
    ln_optim_spec s = ln_optim_defaults(kind);
    s.lr = lr;
    return s;
}

ln_status ln_optim_spec_check(const ln_optim_spec *spec, ln_error *err)
{
    if (!spec) return ln_fail(err, LN_EINVAL, "optimizer: spec is NULL");
    if (!is_optim((int)spec->kind))
        return ln_fail(err, LN_EINVAL, "optimizer: unknown kind %d (expected sgd, adam or adamw)",
                       (int)spec->kind);
    const char *name = ln_optim_name(spec->kind);
    /* Written as !(ok) so NaN fails every test. */
    if (!(spec->lr > 0.0) || !isfinite(spec->lr))
        return ln_fail(err, LN_EINVAL, "%s: lr must be > 0 and finite (got %g)", name, spec->lr);
    if (!(spec->weight_decay >= 0.0) || !isfinite(spec->weight_decay))
        return ln_fail(err, LN_EINVAL, "%s: weight_decay must be >= 0 and finite (got %g)", name,
                       spec->weight_decay);
    if (spec->kind == LN_OPT_SGD) {
        if (!(spec->momentum >= 0.0) || !isfinite(spec->momentum))
            return ln_fail(err, LN_EINVAL, "%s: momentum must be >= 0 and finite (got %g)", name,
                           spec->momentum);
        if (!isfinite(spec->dampening))
            return ln_fail(err, LN_EINVAL, "%s: dampening must be finite (got %g)", name,
                           spec->dampening);
        if (spec->nesterov && (!(spec->momentum > 0.0) || spec->dampening != 0.0))
            return ln_fail(err, LN_EINVAL,
                           "%s: nesterov requires momentum > 0 and dampening == 0 (got momentum "
                           "%g, dampening %g)",
                           name, spec->momentum, spec->dampening);
        return LN_OK;
    }
    if (!(spec->beta1 >= 0.0 && spec->beta1 < 1.0))
        return ln_fail(err, LN_EINVAL, "%s: beta1 (betas[1]) must be in [0, 1) (got %g)", name, spec->beta1);
    if (!(spec->beta2 >= 0.0 && spec->beta2 < 1.0))
        return ln_fail(err, LN_EINVAL, "%s: beta2 (betas[2]) must be in [0, 1) (got %g)", name, spec->beta2);
    if (!(spec->eps > 0.0) || !isfinite(spec->eps))
        return ln_fail(err, LN_EINVAL, "%s: eps must be > 0 and finite (got %g)", name, spec->eps);
    return LN_OK;
}

static int64_t state_floats(const ln_optim_spec *spec, int64_t count)
{
    if (spec->kind == LN_OPT_SGD) return spec->momentum != 0.0 ? count : 0;
    return 2 * count;
}

ln_status ln_optim_init(ln_optim *opt, const ln_optim_spec *spec, int64_t count, ln_error *err)
{
    if (!opt) return ln_fail(err, LN_EINVAL, "optimizer: opt is NULL");
    memset(opt, 0, sizeof *opt);
    ln_status st = ln_optim_spec_check(spec, err);
    if (st != LN_OK) return st;
    if (count < 0 || count > INT64_MAX / 2)
        return ln_fail(err, LN_EINVAL, "%s: parameter count must be >= 0 and below 2^62 (got %lld)",
                       ln_optim_name(spec->kind), (long long)count);
    const int64_t n = state_floats(spec, count);
    if (n > 0) {
        if ((uint64_t)n > SIZE_MAX / sizeof(float))
            return ln_fail(err, LN_ENOMEM, "%s: state of %lld floats is too large",
                           ln_optim_name(spec->kind), (long long)n);
        opt->state = ln_alloc_zeroed((size_t)n, sizeof(float));
        if (!opt->state)
            return ln_fail(err, LN_ENOMEM, "%s: cannot allocate state of %lld floats",
                           ln_optim_name(spec->kind), (long long)n);
    }
    opt->spec = *spec;
    opt->count = count;
    opt->steps = 0;
    return LN_OK;
}

void ln_optim_reset(ln_optim *opt)
{
    if (!opt) return;
    const int64_t n = state_floats(&opt->spec, opt->count);
    if (opt->state && n > 0) memset(opt->state, 0, sizeof(float) * (size_t)n);
    opt->steps = 0;
}

void ln_optim_release(ln_optim *opt)
{
    if (!opt) return;
    ln_dealloc(opt->state);
    opt->state = NULL;
    opt->count = 0;
    opt->steps = 0;
}

/* The general SGD loop over [b, e); `first`: this is the first step (the momentum
 * buffer starts as a copy of the gradient). */
static void sgd_range(ln_optim *opt, float *restrict p, const float *restrict grad, int64_t b,
                      int64_t e)
{
    const ln_optim_spec *s = &opt->spec;
    const float neg_lr = (float)-s->lr;
    const float wd = (float)s->weight_decay;
    const float mom = (float)s->momentum;
    const float keep = (float)(1.0 - s->dampening);
    const int first = opt->steps == 1;
    float *restrict buf = opt->state;
    if (s->weight_decay == 0.0 && s->momentum != 0.0 && !s->nesterov && !first) {
        /* The study's case: a vectorised kernel with the same operations in the same
         * order as the loop below (core/simd_impl.h, sgd_momentum). */
        ln_simd()->sgd_momentum(e - b, p + b, grad + b, buf + b, mom, keep, neg_lr);
        return;
    }
    for (int64_t i = b; i < e; i++) {
        float g = grad[i];
        if (s->weight_decay != 0.0) g = g + wd * p[i];
        if (s->momentum != 0.0) {
            /* PyTorch creates the buffer as a copy of the first gradient: no dampening. */
            if (first)
                buf[i] = g;
            else {
                const float decayed = buf[i] * mom;
                buf[i] = decayed + keep * g;
            }
            g = s->nesterov ? g + mom * buf[i] : buf[i];
        }
        p[i] = p[i] + neg_lr * g;
    }
}

/* The constants of an Adam/AdamW step (opt->steps already counts it). */
static ln_adam_consts adam_consts(const ln_optim *opt)
{
    const ln_optim_spec *s = &opt->spec;
    const double t = (double)opt->steps;
    const double bc1 = 1.0 - pow(s->beta1, t);
    const double bc2 = 1.0 - pow(s->beta2, t);
    ln_adam_consts k;
    k.neg_step = (float)-(s->lr / bc1);
    k.bc2_sqrt = (float)sqrt(bc2);
    k.b1 = (float)s->beta1;
    k.c1 = (float)(1.0 - s->beta1);
    k.b2 = (float)s->beta2;
    k.c2 = (float)(1.0 - s->beta2);
    k.eps = (float)s->eps;
    k.wd = (float)s->weight_decay;
    k.shrink = (float)(1.0 - s->lr * s->weight_decay);
    k.decay = s->weight_decay == 0.0 ? LN_DECAY_NONE
              : s->kind == LN_OPT_ADAMW ? LN_DECAY_DECOUPLED : LN_DECAY_L2;
    return k;
}

/* Reference twin of the vectorised Adam step (simd_impl.h), element by element:
 * PyTorch's single-tensor formulas in the same order. */
void ln_adam_reference(int64_t n, float *p, const float *grad, float *m, float *v,
                       const ln_adam_consts *k)
{
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (k->decay == LN_DECAY_DECOUPLED)
            p[i] = p[i] * k->shrink; /* AdamW: decay the weight, not the gradient */
        else if (k->decay == LN_DECAY_L2)
            g = g + k->wd * p[i];
        const float md = m[i] * k->b1;
        m[i] = md + k->c1 * g;
        const float vd = v[i] * k->b2;
        v[i] = vd + (k->c2 * g) * g;
        const float denom = sqrtf(v[i]) / k->bc2_sqrt + k->eps;
        p[i] = p[i] + (k->neg_step * m[i]) / denom;
    }
}

void ln_optim_step_begin(ln_optim *opt) { opt->steps++; }

void ln_optim_step_range(ln_optim *opt, float *params, const float *grads, int64_t begin,
                         int64_t end)
{
    if (!opt || begin >= end) return;
    if (opt->spec.kind == LN_OPT_SGD) {
        sgd_range(opt, params, grads, begin, end);
        return;
    }
    const ln_adam_consts k = adam_consts(opt);
    float *m = opt->state, *v = opt->state + opt->count;
    ln_simd()->adam(end - begin, params + begin, grads + begin, m + begin, v + begin, &k);
}

void ln_optim_step(ln_optim *opt, float *params, const float *grads)
{
    if (!opt) return;
    ln_optim_step_begin(opt); /* the bias corrections use the 1-based step number */
    if (opt->count > 0) ln_optim_step_range(opt, params, grads, 0, opt->count);
}
