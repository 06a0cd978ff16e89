/* loss.c - the training losses, reduction='mean' as PyTorch's defaults.
 *
 * Shapes: pred batch x classes; labels batch (class indices); targets batch x classes.
 *  - NLL: pred holds log-probabilities; loss = -mean_n pred[n][label_n].
 *  - CrossEntropy: pred holds raw scores; log_softmax then NLL, fused so the gradient
 *    is the exact (softmax - onehot) / batch instead of a difference of roundings.
 *  - MSE: mean over all batch*classes elements of (pred - target)^2, the target being
 *    `targets` or, without it, the one-hot encoding of the labels.
 * Losses are summed in double. A NaN in pred yields a NaN loss and LN_OK: deciding
 * that a run diverged is the trainer's business, not an argument error.
 * All arguments are checked before anything is written, so a failed call leaves
 * *loss and dpred untouched.
 */
#include "layer.h"
#include "lunet.h"

#include <math.h>
#include <string.h>

static ln_status check_labels(const char *name, const int32_t *labels, int batch, int classes,
                              ln_error *err)
{
    if (!labels) return ln_fail(err, LN_EINVAL, "%s loss: labels is NULL", name);
    for (int n = 0; n < batch; n++)
        if (labels[n] < 0 || labels[n] >= classes)
            return ln_fail(err, LN_EINVAL,
                           "%s loss: label of sample %d (0-based) is %d, outside the valid "
                           "range [0, %d)",
                           name, n, (int)labels[n], classes);
    return LN_OK;
}

static double nll(const float *pred, int batch, int classes, const int32_t *labels,
                  const float *targets, float *dpred)
{
    (void)targets;
    double sum = 0.0;
    for (int n = 0; n < batch; n++) sum -= pred[(int64_t)n * classes + labels[n]];
    if (dpred) {
        const float g = (float)(-1.0 / batch);
        for (int n = 0; n < batch; n++) {
            float *d = dpred + (int64_t)n * classes;
            for (int j = 0; j < classes; j++) d[j] = 0.0f;
            d[labels[n]] = g;
        }
    }
    return sum / batch;
}

static double cross_entropy(const float *pred, int batch, int classes, const int32_t *labels,
                            const float *targets, float *dpred)
{
    (void)targets;
    double sum = 0.0;
    for (int n = 0; n < batch; n++) {
        const float *p = pred + (int64_t)n * classes;
        const double lse = ln_log_sum_exp(p, classes);
        sum += lse - (double)p[labels[n]];
        if (dpred) {
            float *d = dpred + (int64_t)n * classes;
            for (int j = 0; j < classes; j++)
                d[j] = (float)((exp((double)p[j] - lse) - (j == labels[n] ? 1.0 : 0.0)) / batch);
        }
    }
    return sum / batch;
}

static double mse(const float *pred, int batch, int classes, const int32_t *labels,
                  const float *targets, float *dpred)
{
    const int64_t total = (int64_t)batch * classes;
    /* PyTorch scales the gradient by the double 2/numel, then works in float. */
    const float scale = (float)(2.0 / (double)total);
    double sum = 0.0;
    for (int64_t i = 0; i < total; i++) {
        float t;
        if (targets)
            t = targets[i];
        else
            t = (int64_t)labels[i / classes] == i % classes ? 1.0f : 0.0f;
        const float diff = pred[i] - t;
        sum += (double)diff * (double)diff;
        if (dpred) dpred[i] = scale * diff;
    }
    return sum / (double)total;
}

/* One descriptor per loss, in enum order. */
typedef struct {
    const char *name;
    /* The mean loss over the batch; the gradient into dpred when it is not NULL. */
    double (*mean)(const float *pred, int batch, int classes, const int32_t *labels,
                   const float *targets, float *dpred);
    int takes_targets; /* 1: `targets`, when given, replace the labels */
} loss_kind;

static const loss_kind losses[] = {
    [LN_LOSS_NLL] = {"nll", nll, 0},
    [LN_LOSS_CROSS_ENTROPY] = {"cross_entropy", cross_entropy, 0},
    [LN_LOSS_MSE] = {"mse", mse, 1},
};
#define LOSS_COUNT ((int)(sizeof losses / sizeof losses[0]))

int ln_loss_kind_count(void) { return LOSS_COUNT; }

const char *ln_loss_name(ln_loss_kind k)
{
    return (int)k >= 0 && (int)k < LOSS_COUNT ? losses[k].name : "unknown";
}

int ln_loss_kind_from_name(const char *name)
{
    for (int k = 0; name && k < LOSS_COUNT; k++)
        if (!strcmp(losses[k].name, name)) return k;
    return -1;
}

ln_status ln_loss(ln_loss_kind kind, const float *pred, int batch, int classes,
                  const int32_t *labels, const float *targets, double *loss, float *dpred,
                  ln_error *err)
{
    if ((int)kind < 0 || (int)kind >= LOSS_COUNT)
        return ln_fail(err, LN_EINVAL, "loss: unknown loss kind %d", (int)kind);
    const loss_kind *lk = &losses[kind];
    const char *name = lk->name;
    if (batch < 1) return ln_fail(err, LN_EINVAL, "%s loss: batch must be >= 1 (got %d)", name, batch);
    if (classes < 1)
        return ln_fail(err, LN_EINVAL, "%s loss: classes must be >= 1 (got %d)", name, classes);
    if (!pred) return ln_fail(err, LN_EINVAL, "%s loss: pred is NULL", name);
    if (!loss) return ln_fail(err, LN_EINVAL, "%s loss: loss (the result pointer) is NULL", name);
    if (!lk->takes_targets || !targets) {
        ln_status st = check_labels(name, labels, batch, classes, err);
        if (st != LN_OK) return st;
    }
    *loss = lk->mean(pred, batch, classes, labels, lk->takes_targets ? targets : NULL, dpred);
    return LN_OK;
}
