/* model_file.c - saving and loading a net: layers, input shape, parameters, buffers.
 *
 * Format (version 1), all integers little-endian:
 *   "LUNETNET"                         8 bytes magic
 *   u32 format version (1)
 *   u32 layer count L, u32 input ndim, 3 x i64 input dims (unused ones 0)
 *   L x layer: u32 kind tag (the kind's file_tag, core/layer.c); i32 in_channels, out_channels, in_features, out_features,
 *              kernel, stride, padding, bias; f32 p, eps, momentum
 *   u64 parameter count P, u64 buffer count B
 *   P x f32 parameters, B x f32 buffers (layer after layer, weight then bias)
 *   u32 CRC-32 (zlib) of every byte before it
 * Saving writes a temporary file beside the target, fsyncs it and renames it over the
 * target, so a crash leaves either the old file or the new one, never half of one.
 */
#include "layer.h" /* shape inference (ln_layer_setup) to check a file before allocating */

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "LUNETNET"
#define FORMAT_VERSION 1u
#define LAYER_BYTES (4 + 8 * 4 + 3 * 4)
#define MAX_LAYERS 10000
#define MAX_FILE ((size_t)1 << 31)

typedef struct {
    unsigned char *p;
    size_t used, cap;
} writer;

static void put(writer *w, const void *src, size_t n)
{
    if (w->used + n <= w->cap) memcpy(w->p + w->used, src, n);
    w->used += n;
}

static void put_u32(writer *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(w, b, 4);
}

static void put_u64(writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_f32(writer *w, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(w, v);
}

/* Serialises into w (a first pass with cap 0 only measures). */
static void serialise(const ln_net *net_c, writer *w)
{
    ln_net *net = (ln_net *)net_c; /* the getters are not const-qualified; nothing is written */
    int count = ln_net_layer_count(net);
    ln_shape in = ln_net_input_shape(net);
    put(w, MAGIC, 8);
    put_u32(w, FORMAT_VERSION);
    put_u32(w, (uint32_t)count);
    put_u32(w, (uint32_t)in.ndim);
    for (int i = 0; i < 3; i++) put_u64(w, (uint64_t)(i < in.ndim ? in.dim[i] : 0));
    for (int i = 0; i < count; i++) {
        const ln_layer_spec *s = ln_net_layer_spec(net, i);
        put_u32(w, ln_layer_kind_info_of(s->kind)->file_tag);
        int32_t f[8] = {s->in_channels, s->out_channels, s->in_features, s->out_features,
                        s->kernel,      s->stride,       s->padding,     s->bias};
        for (int k = 0; k < 8; k++) put_u32(w, (uint32_t)f[k]);
        put_f32(w, s->p);
        put_f32(w, s->eps);
        put_f32(w, s->momentum);
    }
    int64_t np = ln_net_param_count(net), nb = ln_net_buffer_count(net);
    put_u64(w, (uint64_t)np);
    put_u64(w, (uint64_t)nb);
    const float *params = ln_net_params(net), *buffers = ln_net_buffers(net);
    for (int64_t i = 0; i < np; i++) put_f32(w, params[i]);
    for (int64_t i = 0; i < nb; i++) put_f32(w, buffers[i]);
}

int ln_write_all(int fd, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* CRC-32 of any number of bytes (zlib counts in uInt). */
static uint32_t crc_of(const unsigned char *p, size_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}

/* A file image in a new block of *size bytes: what `fill` writes (a first pass with
 * cap 0 measures it, the second writes it into a block of exactly that size), then the
 * CRC-32 of those bytes. Model files and checkpoints are both made this way. */
static ln_status image_of(void (*fill)(const void *src, writer *w), const void *src,
                          const char *path, unsigned char **out, size_t *size, ln_error *err)
{
    writer w = {NULL, 0, 0};
    fill(src, &w);
    size_t total = w.used + 4;
    w.p = ln_alloc(total);
    if (!w.p) return ln_fail(err, LN_ENOMEM, "%s: out of memory for %zu bytes", path, total);
    w.cap = total;
    w.used = 0;
    fill(src, &w);
    put_u32(&w, crc_of(w.p, w.used));
    *out = w.p;
    *size = w.used;
    return LN_OK;
}

static void fill_net(const void *net, writer *w) { serialise(net, w); }

/* Writes bytes to a temporary file beside path, fsyncs it and renames it over path. */
static ln_status write_atomic(const char *path, const unsigned char *bytes, size_t size,
                              ln_error *err)
{
    size_t plen = strlen(path);
    char *tmp = ln_alloc(plen + 48);
    if (!tmp) return ln_fail(err, LN_ENOMEM, "%s: out of memory", path);
    /* A fresh temporary name beside the target. Not mkstemp: its files are 0600, and a
     * model file should get the usual permissions (0666 minus the umask). */
    static atomic_uint serial;
    ln_status st = LN_OK;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, plen + 48, "%s.tmp-%ld-%u", path, (long)getpid(),
                 atomic_fetch_add(&serial, 1u));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        st = ln_fail(err, LN_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    } else {
        if (ln_write_all(fd, bytes, size) || fsync(fd) != 0)
            st = ln_fail(err, LN_EIO, "%s: write failed: %s", path, strerror(errno));
        if (close(fd) != 0 && !st)
            st = ln_fail(err, LN_EIO, "%s: close failed: %s", path, strerror(errno));
        if (!st && rename(tmp, path) != 0)
            st = ln_fail(err, LN_EIO, "%s: cannot rename the temporary file: %s", path,
                         strerror(errno));
        if (st) unlink(tmp);
    }
    ln_dealloc(tmp);
    return st;
}

ln_status ln_net_save(const ln_net *net, const char *path, ln_error *err)
{
    if (!net || !path) return ln_fail(err, LN_EINVAL, "save: %s is NULL", net ? "path" : "net");
    unsigned char *bytes = NULL;
    size_t size = 0;
    ln_status st = image_of(fill_net, net, path, &bytes, &size, err);
    if (!st) st = write_atomic(path, bytes, size, err);
    ln_dealloc(bytes);
    return st;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
    const unsigned char *p;
    size_t left;
} reader;

static int get(reader *r, void *dst, size_t n)
{
    if (r->left < n) return 0;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return 1;
}

/* The little-endian u32 at b. */
static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int get_u32(reader *r, uint32_t *v)
{
    unsigned char b[4];
    if (!get(r, b, 4)) return 0;
    *v = le32(b);
    return 1;
}

static int get_u64(reader *r, uint64_t *v)
{
    uint32_t lo, hi;
    if (!get_u32(r, &lo) || !get_u32(r, &hi)) return 0;
    *v = (uint64_t)hi << 32 | lo;
    return 1;
}

static int get_f32(reader *r, float *f)
{
    uint32_t v;
    if (!get_u32(r, &v)) return 0;
    memcpy(f, &v, 4);
    return 1;
}

/* Shape inference over the layer list without allocating anything: the parameter and
 * buffer counts the layers need, so a file can be checked against them before the
 * net (whose size follows from the layers, not from the file) is allocated. */
static ln_status dry_run(const ln_layer_spec *specs, uint32_t count, ln_shape input,
                         int64_t *params, int64_t *buffers, ln_error *err)
{
    *params = *buffers = 0;
    ln_shape shape = input;
    for (uint32_t i = 0; i < count; i++) {
        ln_layer l;
        memset(&l, 0, sizeof l);
        l.spec = specs[i];
        l.in = shape;
        ln_status st = ln_layer_setup(&l, (int)i + 1, err);
        if (st) return st;
        *params += l.weight_n + l.bias_n; /* each below 2^62 (layer setup), count <= 10000 */
        *buffers += ln_layer_buffer_count(&l);
        if (*params > ((int64_t)1 << 40) || *buffers > ((int64_t)1 << 40))
            return ln_fail(err, LN_ENOMEM, "%u layers hold more than 2^40 parameters", i + 1);
        shape = l.out;
    }
    return LN_OK;
}

ln_status ln_net_load_bytes(const unsigned char *bytes, size_t size, const char *name,
                            ln_net **out, ln_error *err)
{
    if (!name) name = "<memory>";
    if (!out) return ln_fail(err, LN_EINVAL, "%s: output is NULL", name);
    *out = NULL;
    if (!bytes && size > 0) return ln_fail(err, LN_EINVAL, "%s: bytes is NULL", name);
    if (size < 8 + 4 || memcmp(bytes, MAGIC, 8) != 0)
        return ln_fail(err, LN_EFORMAT, "%s: not a lunet model file (bad magic)", name);
    reader r = {bytes + 8, size - 8};
    uint32_t version, count, ndim;
    get_u32(&r, &version);
    if (version != FORMAT_VERSION)
        return ln_fail(err, LN_EFORMAT, "%s: model format version %u is not supported (this is %u)",
                       name, version, FORMAT_VERSION);
    if (size < 8 + 4 + 4) return ln_fail(err, LN_EFORMAT, "%s: truncated header", name);
    if (crc_of(bytes, size - 4) != le32(bytes + size - 4))
        return ln_fail(err, LN_EFORMAT, "%s: checksum mismatch (the file is corrupt or truncated)",
                       name);
    r.left -= 4; /* the CRC is not part of the body */
    uint64_t dims[3];
    if (!get_u32(&r, &count) || !get_u32(&r, &ndim) || !get_u64(&r, &dims[0]) ||
        !get_u64(&r, &dims[1]) || !get_u64(&r, &dims[2]))
        return ln_fail(err, LN_EFORMAT, "%s: truncated header", name);
    if (count < 1 || count > MAX_LAYERS)
        return ln_fail(err, LN_EFORMAT, "%s: layer count %u out of range [1, %d]", name, count,
                       MAX_LAYERS);
    if (ndim < 1 || ndim > 3) return ln_fail(err, LN_EFORMAT, "%s: input rank %u out of range", name, ndim);
    int64_t in_dims[3];
    for (uint32_t i = 0; i < 3; i++) {
        if (i < ndim && (dims[i] < 1 || dims[i] > (1u << 24)))
            return ln_fail(err, LN_EFORMAT, "%s: input dimension %u out of range", name, i + 1);
        in_dims[i] = (int64_t)dims[i];
    }
    if (r.left < (size_t)count * LAYER_BYTES)
        return ln_fail(err, LN_EFORMAT, "%s: truncated layer list", name);
    ln_layer_spec *specs = ln_alloc_zeroed(count, sizeof *specs);
    if (!specs) return ln_fail(err, LN_ENOMEM, "%s: out of memory", name);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t tag = 0, f[8] = {0};
        get_u32(&r, &tag);
        for (int k = 0; k < 8; k++) get_u32(&r, &f[k]);
        ln_layer_spec *s = &specs[i];
        const int kind = ln_layer_kind_from_file_tag(tag);
        if (kind < 0) {
            ln_dealloc(specs);
            return ln_fail(err, LN_EFORMAT, "%s: layer %u has unknown kind %u", name, i + 1, tag);
        }
        for (int k = 0; k < 8; k++)
            if ((int32_t)f[k] < 0 || (int32_t)f[k] > (1 << 24)) {
                ln_dealloc(specs);
                return ln_fail(err, LN_EFORMAT, "%s: layer %u has an out-of-range field", name, i + 1);
            }
        s->kind = (ln_layer_kind)kind;
        s->in_channels = (int)f[0];
        s->out_channels = (int)f[1];
        s->in_features = (int)f[2];
        s->out_features = (int)f[3];
        s->kernel = (int)f[4];
        s->stride = (int)f[5];
        s->padding = (int)f[6];
        s->bias = f[7] ? 1 : 0;
        get_f32(&r, &s->p);
        get_f32(&r, &s->eps);
        get_f32(&r, &s->momentum);
    }
    /* The parameter block must be in the file before anything its size depends on is
     * allocated: a few bytes declaring a huge layer are refused here, not by malloc. */
    uint64_t np, nb;
    ln_shape input = ln_shape_make((int)ndim, in_dims);
    int64_t need_p = 0, need_b = 0;
    ln_error inner;
    ln_status st = dry_run(specs, count, input, &need_p, &need_b, &inner);
    if (st) {
        ln_dealloc(specs);
        return ln_fail(err, LN_EFORMAT, "%s: invalid net: %s", name, inner.msg);
    }
    if (!get_u64(&r, &np) || !get_u64(&r, &nb)) {
        ln_dealloc(specs);
        return ln_fail(err, LN_EFORMAT, "%s: truncated parameter header", name);
    }
    if (np != (uint64_t)need_p || nb != (uint64_t)need_b) {
        ln_dealloc(specs);
        return ln_fail(err, LN_EFORMAT,
                       "%s: holds %llu parameters and %llu buffers, the layers need %lld and %lld",
                       name, (unsigned long long)np, (unsigned long long)nb, (long long)need_p,
                       (long long)need_b);
    }
    if (r.left / 4 < np + nb || r.left != (np + nb) * 4) { /* np + nb <= 2^41: no overflow */
        ln_dealloc(specs);
        return ln_fail(err, LN_EFORMAT, "%s: expected %llu bytes of parameters, found %zu", name,
                       (unsigned long long)((np + nb) * 4), r.left);
    }
    ln_net *net = NULL;
    st = ln_net_create(&net, specs, (int)count, input, NULL, &inner);
    ln_dealloc(specs);
    if (st)
        return ln_fail(err, st == LN_ENOMEM ? LN_ENOMEM : LN_EFORMAT, "%s: invalid net: %s", name,
                       inner.msg);
    if (np != (uint64_t)ln_net_param_count(net) || nb != (uint64_t)ln_net_buffer_count(net)) {
        ln_net_free(net); /* cannot happen: dry_run is the same shape inference */
        return ln_fail(err, LN_EFORMAT, "%s: parameter counts disagree with the layers", name);
    }
    float *params = ln_net_params(net), *buffers = ln_net_buffers(net);
    for (uint64_t i = 0; i < np; i++) get_f32(&r, &params[i]);
    for (uint64_t i = 0; i < nb; i++) get_f32(&r, &buffers[i]);
    *out = net;
    return LN_OK;
}

/* The whole file in a new block (one spare byte), refusing files over `max` bytes. */
static ln_status read_whole(const char *path, size_t max, const char *what, unsigned char **out,
                            size_t *out_size, ln_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ln_fail(err, LN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb; /* fopen opens a directory for reading on Linux; its "size" is not one */
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return ln_fail(err, LN_EIO, "%s: is a directory", path);
    }
    ln_status st = LN_OK;
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = ln_fail(err, LN_EIO, "%s: cannot read: %s", path, strerror(errno));
    } else if ((size_t)size > max) {
        st = ln_fail(err, LN_EFORMAT, "%s: %ld bytes is larger than any %s", path, size, what);
    } else if (!(buf = ln_alloc((size_t)size + 1))) {
        st = ln_fail(err, LN_ENOMEM, "%s: out of memory for %ld bytes", path, size);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = ln_fail(err, LN_EIO, "%s: read failed", path);
    }
    fclose(f);
    if (st) {
        ln_dealloc(buf);
        return st;
    }
    *out = buf;
    *out_size = (size_t)size;
    return LN_OK;
}

ln_status ln_net_load(const char *path, ln_net **out, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "load: output is NULL");
    *out = NULL;
    if (!path) return ln_fail(err, LN_EINVAL, "load: path is NULL");
    unsigned char *buf = NULL;
    size_t size = 0;
    ln_status st = read_whole(path, MAX_FILE, "model file", &buf, &size, err);
    if (!st) st = ln_net_load_bytes(buf, size, path, out, err);
    ln_dealloc(buf);
    return st;
}

/* ------------------------------------------------------------- checkpoints
 *
 * A checkpoint is a model file image plus what ln_train needs to go on as if it had
 * never stopped (format version 1, little-endian):
 *   "LUNETCKP" magic, u32 version (1), u32 engine revision
 *   u64 M, M bytes: the model file (its own format and CRC, see above)
 *   u64 seed; optimizer: u32 kind, f64 lr, momentum, dampening, weight_decay,
 *     u32 nesterov, f64 beta1, beta2, eps, u64 parameters, u64 steps, u64 S, S x f32 state
 *   4 x u64: shuffle and dropout streams (state, inc)
 *   i64 steps, epochs, pos, count; count x u32: the current epoch's order
 *   i64 call_done; f64 stop_best; i64 stop_wait
 *   u32 CRC-32 of every byte before it
 * Written atomically like model files.
 */
#define CKP_MAGIC "LUNETCKP"
#define CKP_VERSION 1u

static void put_f64(writer *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(w, v);
}

static int get_f64(reader *r, double *d)
{
    uint64_t v;
    if (!get_u64(r, &v)) return 0;
    memcpy(d, &v, 8);
    return 1;
}

static int64_t optim_state_floats(const ln_optim *opt)
{
    if (!opt->state) return 0;
    return opt->spec.kind == LN_OPT_SGD ? opt->count : 2 * opt->count;
}

typedef struct {
    const unsigned char *model; /* the model file image */
    size_t model_size;
    const ln_train_state *ts;
} checkpoint_parts;

static void serialise_checkpoint(const void *src, writer *w)
{
    const checkpoint_parts *parts = src;
    const unsigned char *model = parts->model;
    const size_t model_size = parts->model_size;
    const ln_train_state *ts = parts->ts;
    put(w, CKP_MAGIC, 8);
    put_u32(w, CKP_VERSION);
    put_u32(w, LUNET_ENGINE_REVISION);
    put_u64(w, model_size);
    put(w, model, model_size);
    put_u64(w, ts->seed);
    const ln_optim_spec *o = &ts->opt.spec;
    put_u32(w, (uint32_t)o->kind);
    put_f64(w, o->lr);
    put_f64(w, o->momentum);
    put_f64(w, o->dampening);
    put_f64(w, o->weight_decay);
    put_u32(w, (uint32_t)o->nesterov);
    put_f64(w, o->beta1);
    put_f64(w, o->beta2);
    put_f64(w, o->eps);
    put_u64(w, (uint64_t)ts->opt.count);
    put_u64(w, (uint64_t)ts->opt.steps);
    const int64_t n = optim_state_floats(&ts->opt);
    put_u64(w, (uint64_t)n);
    for (int64_t i = 0; i < n; i++) put_f32(w, ts->opt.state[i]);
    put_u64(w, ts->shuffle_rng.state);
    put_u64(w, ts->shuffle_rng.inc);
    put_u64(w, ts->dropout_rng.state);
    put_u64(w, ts->dropout_rng.inc);
    put_u64(w, (uint64_t)ts->steps);
    put_u64(w, (uint64_t)ts->epochs);
    put_u64(w, (uint64_t)ts->pos);
    put_u64(w, (uint64_t)ts->count);
    for (int64_t i = 0; i < ts->count; i++) put_u32(w, (uint32_t)ts->order[i]);
    put_u64(w, (uint64_t)ts->call_done);
    put_f64(w, ts->stop_best);
    put_u64(w, (uint64_t)ts->stop_wait);
}

ln_status ln_checkpoint_save(const ln_net *net, const ln_train_state *ts, const char *path,
                             ln_error *err)
{
    if (!net || !ts || !path)
        return ln_fail(err, LN_EINVAL, "checkpoint: %s is NULL", !net ? "net" : !ts ? "state" : "path");
    if (!ts->active || !ts->order)
        return ln_fail(err, LN_EINVAL, "%s: nothing to checkpoint (no training state)", path);
    unsigned char *model = NULL, *bytes = NULL;
    size_t model_size = 0, size = 0;
    ln_status st = image_of(fill_net, net, path, &model, &model_size, err);
    if (st) return st;
    const checkpoint_parts parts = {model, model_size, ts};
    st = image_of(serialise_checkpoint, &parts, path, &bytes, &size, err);
    ln_dealloc(model);
    if (!st) st = write_atomic(path, bytes, size, err);
    ln_dealloc(bytes);
    return st;
}

/* Same layers and input: a checkpoint's parameters fit this net. */
static int same_layers(ln_net *a, ln_net *b)
{
    if (ln_net_layer_count(a) != ln_net_layer_count(b)) return 0;
    if (!ln_shape_equal(ln_net_input_shape(a), ln_net_input_shape(b))) return 0;
    for (int i = 0; i < ln_net_layer_count(a); i++) {
        const ln_layer_spec *x = ln_net_layer_spec(a, i), *y = ln_net_layer_spec(b, i);
        if (x->kind != y->kind || x->in_channels != y->in_channels ||
            x->out_channels != y->out_channels || x->in_features != y->in_features ||
            x->out_features != y->out_features || x->kernel != y->kernel ||
            x->stride != y->stride || x->padding != y->padding || x->bias != y->bias ||
            x->p != y->p || x->eps != y->eps || x->momentum != y->momentum)
            return 0;
    }
    return 1;
}

static ln_status parse_checkpoint(const unsigned char *bytes, size_t size, const char *name,
                                  ln_net *net, ln_train_state *ts, ln_error *err)
{
    if (size < 8 + 4 + 4 + 8 + 4 || memcmp(bytes, CKP_MAGIC, 8) != 0)
        return ln_fail(err, LN_EFORMAT, "%s: not a lunet checkpoint (bad magic)", name);
    if (crc_of(bytes, size - 4) != le32(bytes + size - 4))
        return ln_fail(err, LN_EFORMAT, "%s: checksum mismatch (the checkpoint is corrupt or truncated)",
                       name);
    reader r = {bytes + 8, size - 8 - 4};
    uint32_t version, revision;
    uint64_t model_size;
    get_u32(&r, &version);
    get_u32(&r, &revision);
    if (version != CKP_VERSION)
        return ln_fail(err, LN_EFORMAT, "%s: checkpoint format version %u is not supported (this is %u)",
                       name, version, CKP_VERSION);
    if (revision != LUNET_ENGINE_REVISION)
        return ln_fail(err, LN_EFORMAT,
                       "%s: written by engine revision %u; this engine is revision %u and would not "
                       "continue it bit for bit", name, revision, LUNET_ENGINE_REVISION);
    if (!get_u64(&r, &model_size) || model_size > r.left)
        return ln_fail(err, LN_EFORMAT, "%s: truncated model", name);
    ln_net *saved = NULL;
    ln_error inner;
    ln_status st = ln_net_load_bytes(r.p, (size_t)model_size, name, &saved, &inner);
    if (st) return ln_fail(err, st, "%s", inner.msg);
    r.p += model_size;
    r.left -= model_size;
    if (!same_layers(saved, net)) {
        ln_net_free(saved);
        return ln_fail(err, LN_EINVAL, "%s: the checkpoint's net has other layers than this net", name);
    }

    ln_train_state s;
    memset(&s, 0, sizeof s);
    ln_optim_spec o;
    memset(&o, 0, sizeof o);
    uint32_t kind = 0, nesterov = 0;
    uint64_t count = 0, steps = 0, n = 0;
    int ok = get_u64(&r, &s.seed) && get_u32(&r, &kind) && get_f64(&r, &o.lr) &&
             get_f64(&r, &o.momentum) && get_f64(&r, &o.dampening) &&
             get_f64(&r, &o.weight_decay) && get_u32(&r, &nesterov) && get_f64(&r, &o.beta1) &&
             get_f64(&r, &o.beta2) && get_f64(&r, &o.eps) && get_u64(&r, &count) &&
             get_u64(&r, &steps) && get_u64(&r, &n);
    o.kind = (ln_optim_kind)kind;
    o.nesterov = (int)nesterov;
    if (!ok || count != (uint64_t)ln_net_param_count(net)) {
        ln_net_free(saved);
        return ln_fail(err, LN_EFORMAT, "%s: bad optimizer state", name);
    }
    st = ln_optim_init(&s.opt, &o, (int64_t)count, &inner);
    if (st || n != (uint64_t)optim_state_floats(&s.opt) || r.left / 4 < n) {
        ln_net_free(saved);
        ln_optim_release(&s.opt);
        return ln_fail(err, st == LN_ENOMEM ? LN_ENOMEM : LN_EFORMAT, "%s: %s%s%s", name,
                       st == LN_ENOMEM ? "" : "bad optimizer state", st && st != LN_ENOMEM ? ": " : "",
                       st ? inner.msg : "");
    }
    s.opt.steps = (int64_t)steps;
    for (uint64_t i = 0; i < n; i++) get_f32(&r, &s.opt.state[i]);
    uint64_t v[8];
    ok = 1;
    for (int i = 0; i < 8; i++) ok = ok && get_u64(&r, &v[i]);
    s.shuffle_rng.state = v[0];
    s.shuffle_rng.inc = v[1];
    s.dropout_rng.state = v[2];
    s.dropout_rng.inc = v[3];
    s.steps = (int64_t)v[4];
    s.epochs = (int64_t)v[5];
    s.pos = (int64_t)v[6];
    s.count = (int64_t)v[7];
    /* PCG32 needs an odd increment: with an even one a state can repeat at once (state 0,
     * increment 0 draws 0 forever), and the unbiased draw below n would never end */
    if (ok && ((v[1] & 1u) == 0 || (v[3] & 1u) == 0)) {
        ln_net_free(saved);
        ln_optim_release(&s.opt);
        return ln_fail(err, LN_EFORMAT, "%s: bad random state (a stream increment is even)", name);
    }
    /* counters far below 2^62, so that training on from them cannot overflow */
    const uint64_t counter_max = (uint64_t)1 << 62;
    if (!ok || v[7] < 1 || v[7] > UINT32_MAX || v[6] > v[7] || r.left / 4 < v[7] ||
        v[4] > counter_max || v[5] > counter_max || steps > counter_max) {
        ln_net_free(saved);
        ln_optim_release(&s.opt);
        return ln_fail(err, LN_EFORMAT, "%s: bad training counters", name);
    }
    s.order = ln_alloc_zeroed((size_t)s.count, sizeof *s.order);
    if (!s.order) {
        ln_net_free(saved);
        ln_optim_release(&s.opt);
        return ln_fail(err, LN_ENOMEM, "%s: out of memory", name);
    }
    for (int64_t i = 0; i < s.count; i++) {
        uint32_t k = 0;
        get_u32(&r, &k);
        s.order[i] = k;
        if ((int64_t)k >= s.count) ok = 0;
    }
    uint64_t done = 0, wait = 0;
    ok = ok && get_u64(&r, &done) && get_f64(&r, &s.stop_best) && get_u64(&r, &wait) && r.left == 0 &&
         done <= counter_max && wait <= counter_max && !isnan(s.stop_best);
    if (!ok) {
        ln_net_free(saved);
        ln_train_state_release(&s);
        return ln_fail(err, LN_EFORMAT, "%s: bad training state", name);
    }
    s.call_done = (int64_t)done;
    s.stop_wait = (int64_t)wait;
    s.active = 1;
    /* Everything checked: now replace the net's parameters and the state. */
    memcpy(ln_net_params(net), ln_net_params(saved), sizeof(float) * (size_t)ln_net_param_count(net));
    memcpy(ln_net_buffers(net), ln_net_buffers(saved),
           sizeof(float) * (size_t)ln_net_buffer_count(net));
    ln_net_free(saved);
    ln_train_state_release(ts);
    *ts = s;
    return LN_OK;
}

ln_status ln_checkpoint_load(const char *path, ln_net *net, ln_train_state *ts, ln_error *err)
{
    if (!path || !net || !ts)
        return ln_fail(err, LN_EINVAL, "resume: %s is NULL", !path ? "path" : !net ? "net" : "state");
    unsigned char *buf = NULL;
    size_t size = 0;
    ln_status st = read_whole(path, 2 * MAX_FILE, "checkpoint", &buf, &size, err);
    if (!st) st = parse_checkpoint(buf, size, path, net, ts, err);
    ln_dealloc(buf);
    return st;
}
