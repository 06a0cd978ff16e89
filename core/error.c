/* error.c - status codes and the caller-owned error message. */
#include "lunet.h"

#include <stdarg.h>
#include <stdio.h>

ln_status ln_fail(ln_error *err, ln_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *ln_status_name(ln_status s)
{
    switch (s) {
    case LN_OK: return "ok";
    case LN_EINVAL: return "invalid argument";
    case LN_ENOMEM: return "out of memory";
    case LN_EIO: return "i/o error";
    case LN_EFORMAT: return "bad format";
    case LN_ESHAPE: return "shape mismatch";
    case LN_EINTERRUPTED: return "interrupted";
    }
    return "unknown status";
}
