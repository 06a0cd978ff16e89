/* tensor.c - shapes and owned float32 tensors. */
#include "lunet.h"

#include <stdio.h>
#include <string.h>

ln_shape ln_shape_make(int ndim, const int64_t *dims)
{
    ln_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = ndim < 0 ? 0 : (ndim > LN_MAX_DIMS ? LN_MAX_DIMS : ndim);
    for (int i = 0; i < s.ndim; i++) s.dim[i] = dims[i];
    return s;
}

int64_t ln_shape_numel(ln_shape s)
{
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.dim[i];
    return n;
}

int ln_shape_equal(ln_shape a, ln_shape b)
{
    if (a.ndim != b.ndim) return 0;
    for (int i = 0; i < a.ndim; i++)
        if (a.dim[i] != b.dim[i]) return 0;
    return 1;
}

const char *ln_shape_format(ln_shape s, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0) return buf;
    buf[0] = '\0';
    if (s.ndim == 0) {
        snprintf(buf, size, "scalar");
        return buf;
    }
    for (int i = 0; i < s.ndim && used < size; i++) {
        int n = snprintf(buf + used, size - used, i ? "x%lld" : "%lld", (long long)s.dim[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    return buf;
}

ln_status ln_tensor_alloc(ln_tensor *t, ln_shape shape, ln_error *err)
{
    memset(t, 0, sizeof *t);
    size_t n = 1;
    for (int i = 0; i < shape.ndim; i++) {
        if (shape.dim[i] < 0 || !ln_mul_size(n, (size_t)shape.dim[i], &n))
            return ln_fail(err, LN_EINVAL, "tensor shape: dimension %d is negative or too large", i + 1);
    }
    t->data = ln_alloc_zeroed(n, sizeof(float));
    if (!t->data) return ln_fail(err, LN_ENOMEM, "tensor: cannot allocate %zu floats", n);
    t->shape = shape;
    t->owns = 1;
    return LN_OK;
}

void ln_tensor_release(ln_tensor *t)
{
    if (t->owns) ln_dealloc(t->data);
    t->data = NULL;
    t->owns = 0;
}
