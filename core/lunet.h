/*
 * lunet.h - the one public header of the lunet CNN training engine (C11).
 *
 * Conventions
 *  - Every function that can fail returns an ln_status and, on failure, fills the
 *    caller's ln_error with a message that names the argument or file and what was
 *    expected. The engine never aborts and never exits.
 *  - Tensors are float32, row-major, NCHW for images. Shapes given "per sample"
 *    leave out the batch dimension.
 *  - Random state is always passed explicitly (ln_rng); there is no global RNG.
 *  - No allocation happens inside a training step: ln_net_reserve sizes the
 *    activations once per batch size; ln_train calls it before the first step.
 */
#ifndef LUNET_H
#define LUNET_H

#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
#include <atomic>
using std::atomic_int; /* the same type as C11's (what C++23's <stdatomic.h> does) */
#else
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define LUNET_VERSION "0.1.0"
/* Model files and result caches are keyed by this; bump when results change. */
#define LUNET_ENGINE_REVISION 5

/* ---------------------------------------------------------------- status */

typedef enum {
    LN_OK = 0,
    LN_EINVAL,      /* an argument is out of range or of the wrong kind */
    LN_ENOMEM,      /* allocation failed or a size limit would be exceeded */
    LN_EIO,         /* a file could not be opened, read or written */
    LN_EFORMAT,     /* a file's contents are malformed */
    LN_ESHAPE,      /* tensor shapes do not fit together */
    LN_EINTERRUPTED /* a stop was requested; partial results are valid */
} ln_status;

typedef struct {
    ln_status code;
    char msg[512];
} ln_error;

/* Sets err (if not NULL) and returns code; printf-style message. */
ln_status ln_fail(ln_error *err, ln_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *ln_status_name(ln_status s);

/* ------------------------------------------------------------- allocation */

/* All engine memory goes through these, so a test can inject failures. */
void *ln_alloc(size_t bytes);                 /* 64-byte aligned, NULL on failure */
void *ln_alloc_zeroed(size_t count, size_t size); /* overflow-checked */
void ln_dealloc(void *p);
/* Test hook: after `countdown` more successful allocations, fail them all
 * (countdown < 0 disables the hook). Returns the number of allocations so far. */
long ln_alloc_fail_after(long countdown);

/* Gives memory freed by the engine back to the system where the C library allows it
 * (called after loading data and after each repeat run, to keep peak RSS low). */
void ln_release_free_memory(void);

/* Overflow-checked size arithmetic: returns 0 on overflow. */
int ln_mul_size(size_t a, size_t b, size_t *out);

/* --------------------------------------------------------------- random */

/* PCG32 (O'Neill, pcg-random.org): 64-bit state, 32-bit output, selectable stream. */
typedef struct {
    uint64_t state;
    uint64_t inc;
} ln_rng;

void ln_rng_seed(ln_rng *rng, uint64_t seed, uint64_t stream);
uint32_t ln_rng_u32(ln_rng *rng);
float ln_rng_uniform(ln_rng *rng);             /* [0, 1) with 24 random bits */
uint32_t ln_rng_below(ln_rng *rng, uint32_t n);/* unbiased, in [0, n); n > 0 */
/* The state n calls of ln_rng_u32 (or ln_rng_uniform) would leave, in O(log n) steps:
 * threads that draw parts of one stream start where the draws before theirs end. */
void ln_rng_advance(ln_rng *rng, uint64_t n);
/* SplitMix64 mix of (seed, index): independent seeds for run r, layer i, ... */
uint64_t ln_seed_derive(uint64_t seed, uint64_t index);

/* Streams used by a training run, so init, shuffling and dropout never share draws. */
enum { LN_STREAM_INIT = 1, LN_STREAM_SHUFFLE = 2, LN_STREAM_DROPOUT = 3, LN_STREAM_SUBSET = 4 };

/* ---------------------------------------------------------------- shapes */

#define LN_MAX_DIMS 4

typedef struct {
    int ndim;
    int64_t dim[LN_MAX_DIMS];
} ln_shape;

ln_shape ln_shape_make(int ndim, const int64_t *dims);
int64_t ln_shape_numel(ln_shape s);
int ln_shape_equal(ln_shape a, ln_shape b);
/* "10x24x24"; returns buf. */
const char *ln_shape_format(ln_shape s, char *buf, size_t size);

/* A float32 tensor that owns its memory (or views someone else's: owns == 0). */
typedef struct {
    ln_shape shape;
    float *data;
    int owns;
} ln_tensor;

ln_status ln_tensor_alloc(ln_tensor *t, ln_shape shape, ln_error *err);
void ln_tensor_release(ln_tensor *t); /* idempotent */

/* ---------------------------------------------------------------- layers */

/* The numbering is internal (model files store each kind's file_tag, below): a new kind
 * goes before LN_LAYER_KIND_COUNT. */
typedef enum {
    LN_CONV2D = 0,
    LN_MAXPOOL2D,
    LN_AVGPOOL2D,
    LN_RELU,
    LN_TANH,
    LN_SIGMOID,
    LN_LINEAR,
    LN_DROPOUT,
    LN_DROPOUT2D,
    LN_FLATTEN,
    LN_LOG_SOFTMAX,
    LN_BATCHNORM2D,
    LN_BATCHNORM1D,
    LN_LEAKY_RELU,
    LN_LAYER_KIND_COUNT
} ln_layer_kind;

/* Every kind is described once, in one table (core/layer.c): its name, its constructor
 * parameters, its number in model files, its shape rule, memory needs, initialisation
 * and kernels. Everything that lists, names, parses, prints, saves or runs layers
 * derives from that table, so a new kind is one enum value here and one table entry. */
const char *ln_layer_kind_name(ln_layer_kind k); /* "conv2d", "maxpool2d", ...; "unknown" */
int ln_layer_kind_count(void);                   /* LN_LAYER_KIND_COUNT */
int ln_layer_kind_from_name(const char *name);   /* the kind named so, or -1 */

/* The type of a constructor parameter: an int field, a float field, or an int field
 * holding 0 or 1. */
typedef enum { LN_PARAM_INT = 0, LN_PARAM_FLOAT, LN_PARAM_BOOL } ln_param_type;

/* One constructor parameter of a layer kind, in the order of the C constructor's (and
 * the Lua constructor's) arguments. The value lives in the ln_layer_spec field at
 * `offset` (an int for LN_PARAM_INT/BOOL, a float for LN_PARAM_FLOAT). */
typedef struct {
    const char *name;    /* the argument's name, e.g. "in_channels" (PyTorch's names) */
    ln_param_type type;
    int required;        /* 1: no default, the caller must give it */
    double fallback;     /* the default when not required (PyTorch's) */
    double min, max;     /* an int's accepted range, inclusive (the binding checks it;
                            every value is checked again by the kind's shape rule) */
    size_t offset;       /* offsetof(ln_layer_spec, field) */
} ln_layer_param;

/* The public, read-only part of a kind's descriptor. */
typedef struct {
    const char *name;             /* "conv2d" */
    /* The kind's number in model files. Fixed once a kind exists: never reused,
     * never changed (spec/c/test_kernels.c pins every one); a new kind takes the next
     * free number. The enum's order is not the file format; this is. */
    uint32_t file_tag;
    int param_count;
    const ln_layer_param *params; /* param_count entries */
} ln_layer_kind_info;

/* The descriptor of kind k, or NULL when k is not a kind. */
const ln_layer_kind_info *ln_layer_kind_info_of(ln_layer_kind k);

/* What a layer is; which fields matter depends on kind. */
typedef struct {
    ln_layer_kind kind;
    int in_channels, out_channels;   /* conv2d; batchnorm: in_channels = features */
    int in_features, out_features;   /* linear */
    int kernel, stride, padding;     /* conv2d, pools (pool stride 0 = kernel, set by ln_net_create) */
    int bias;                        /* conv2d, linear: 1 = has bias */
    union {
        float p;                     /* dropout probability */
        float negative_slope;        /* leaky_relu: y = x > 0 ? x : negative_slope * x */
    };                               /* (one field in model files) */
    float eps, momentum;             /* batchnorm (PyTorch: 1e-5, 0.1) */
} ln_layer_spec;

/* Specs with PyTorch's defaults filled in. */
ln_layer_spec ln_conv2d(int in_channels, int out_channels, int kernel, int stride, int padding);
ln_layer_spec ln_maxpool2d(int kernel, int stride);
ln_layer_spec ln_avgpool2d(int kernel, int stride);
ln_layer_spec ln_linear(int in_features, int out_features);
ln_layer_spec ln_dropout(ln_layer_kind kind, float p);
ln_layer_spec ln_batchnorm(ln_layer_kind kind, int features);
ln_layer_spec ln_leaky_relu(float negative_slope);  /* PyTorch's default slope: 0.01 */
ln_layer_spec ln_simple_layer(ln_layer_kind kind); /* relu, tanh, sigmoid, flatten, log_softmax */
/* A spec of kind k with every parameter at its default and the required ones 0, to be
 * filled from ln_layer_kind_info_of(k)->params (how the Lua binding builds layers). */
ln_layer_spec ln_layer_spec_defaults(ln_layer_kind k);
/* The value of constructor parameter p (one of its kind's) in spec s, and setting it: the
 * field is an int (a bool is 0 or 1) or a float; the value goes through a double, exact
 * for every int and float. */
double ln_layer_param_get(const ln_layer_spec *s, const ln_layer_param *p);
void ln_layer_param_set(ln_layer_spec *s, const ln_layer_param *p, double value);

/* ------------------------------------------------------------------ net */

typedef struct ln_net ln_net;

/* Builds a sequential net for inputs of shape `input` (per sample, e.g. 1x28x28),
 * inferring every layer's output shape; a mismatch is LN_ESHAPE naming the layer and
 * both shapes. Parameters are initialised like PyTorch's defaults from `rng`. */
ln_status ln_net_create(ln_net **out, const ln_layer_spec *layers, int count, ln_shape input,
                        ln_rng *rng, ln_error *err);
void ln_net_free(ln_net *net);
/* A new net with the same layers and a copy of parameters and buffers. */
ln_status ln_net_clone(const ln_net *net, ln_net **out, ln_error *err);
/* Re-initialise every parameter (and reset batchnorm buffers) from rng. */
void ln_net_init_params(ln_net *net, ln_rng *rng);

int ln_net_layer_count(const ln_net *net);
const ln_layer_spec *ln_net_layer_spec(const ln_net *net, int i);
ln_shape ln_net_input_shape(const ln_net *net);
ln_shape ln_net_layer_output_shape(const ln_net *net, int i); /* per sample */
ln_shape ln_net_output_shape(const ln_net *net);
int64_t ln_net_layer_param_count(const ln_net *net, int i);
/* Multiply-adds counted as 2 FLOPs, per sample. */
double ln_net_layer_flops(const ln_net *net, int i);
double ln_net_forward_flops(const ln_net *net);
double ln_net_backward_flops(const ln_net *net);

/* Parameters and gradients: one contiguous block each, layer after layer, weight
 * then bias. Buffers (batchnorm running mean/var) are a third block. */
int64_t ln_net_param_count(const ln_net *net);
float *ln_net_params(ln_net *net);
float *ln_net_grads(ln_net *net);
int64_t ln_net_buffer_count(const ln_net *net);
float *ln_net_buffers(ln_net *net);

/* Named views into a layer's parameters: "weight", "bias", "running_mean",
 * "running_var". Returns LN_EINVAL if the layer has no such tensor. */
ln_status ln_net_layer_tensor(ln_net *net, int layer, const char *name, ln_tensor *view,
                              ln_error *err);

/* Sizes activation memory for batches of up to max_batch samples. */
ln_status ln_net_reserve(ln_net *net, int max_batch, ln_error *err);
int ln_net_reserved_batch(const ln_net *net);

/* Forward pass over `batch` samples (batch <= reserved). training != 0 enables dropout
 * and batchnorm batch statistics (and updates running stats); rng feeds dropout.
 * *out points into the net's activation memory, valid until the next call. */
ln_status ln_net_forward(ln_net *net, const float *x, int batch, int training, ln_rng *rng,
                         const float **out, ln_error *err);
/* Eval-mode outputs of `batch` samples at x into out (batch x output shape floats),
 * forwarded ln_net_eval_chunk(net, batch) samples at a time: the bits of one
 * ln_net_forward of the whole batch, without sizing the activation memory for it. No
 * ln_net_backward goes back through it. */
ln_status ln_net_predict(ln_net *net, const float *x, int batch, float *out, ln_error *err);
/* The samples an eval pass over `batch` forwards at a time (ln_net_predict, ln_evaluate):
 * 64, or the batch the net already holds if that is larger, and at most `batch`. */
int ln_net_eval_chunk(const ln_net *net, int batch);
/* The net's own input slot (reserved batch x input shape floats): a caller that
 * writes a batch there and passes this pointer as x to ln_net_forward saves a copy.
 * Valid until the next ln_net_reserve that grows the batch. */
float *ln_net_input(ln_net *net);
/* Backward pass after a forward pass with the same batch: dout is d(loss)/d(output).
 * Gradients are overwritten (not accumulated). If dx is not NULL it receives
 * d(loss)/d(input). */
ln_status ln_net_backward(ln_net *net, const float *dout, float *dx, ln_error *err);
/* The batch of the forward pass ln_net_backward would go back through (dout holds that
 * many samples), 0 if none: before the first ln_net_forward, and after ln_train and
 * ln_evaluate, whose passes are no caller's (ln_net_forget_forward). */
int ln_net_forward_batch(const ln_net *net);
void ln_net_forget_forward(ln_net *net);

/* Reference twins: the plain (slow, obviously correct) versions of the kernels, used
 * by tests to check the fast ones. 1 = use reference kernels for this net, from its next
 * forward pass on (a backward goes through the kernels of the forward before it). */
void ln_net_use_reference_kernels(ln_net *net, int on);

/* ---------------------------------------------------------------- losses */

typedef enum { LN_LOSS_NLL = 0, LN_LOSS_CROSS_ENTROPY, LN_LOSS_MSE } ln_loss_kind;
/* Names ("nll", "cross_entropy", "mse") and the count come from one table in
 * core/loss.c, which bindings list and parse by. */
const char *ln_loss_name(ln_loss_kind k);       /* "unknown" when k is not a loss */
int ln_loss_kind_count(void);
int ln_loss_kind_from_name(const char *name);   /* the loss named so, or -1 */

/* pred: batch x classes. For NLL pred holds log-probabilities; for CrossEntropy raw
 * scores; for MSE the target is `targets` (batch x classes) if not NULL, else the
 * one-hot encoding of labels. Returns the mean loss over the batch (MSE: over all
 * elements, as PyTorch's reduction='mean') in *loss and, if dpred != NULL, its
 * gradient. Labels out of [0, classes) are LN_EINVAL. */
ln_status ln_loss(ln_loss_kind kind, const float *pred, int batch, int classes,
                  const int32_t *labels, const float *targets, double *loss, float *dpred,
                  ln_error *err);

/* ------------------------------------------------------------ optimizers */

typedef enum { LN_OPT_SGD = 0, LN_OPT_ADAM, LN_OPT_ADAMW } ln_optim_kind;
/* Names ("sgd", "adam", "adamw") and defaults come from one table in core/optim.c. */
const char *ln_optim_name(ln_optim_kind k);     /* "unknown" when k is not an optimizer */
int ln_optim_kind_count(void);
int ln_optim_kind_from_name(const char *name);  /* the optimizer named so, or -1 */

typedef struct {
    ln_optim_kind kind;
    double lr;
    double momentum, dampening, weight_decay; /* sgd (weight_decay for all) */
    int nesterov;
    double beta1, beta2, eps;                 /* adam, adamw */
} ln_optim_spec;

/* Every field at its default: torch.optim's, and lr 0.01 for SGD (which has none
 * there), 1e-3 for Adam and AdamW; AdamW's weight_decay 0.01, Adam's and SGD's 0;
 * betas (0.9, 0.999), eps 1e-8. A kind that is not an optimizer gets all zeros (which
 * ln_optim_spec_check refuses). */
ln_optim_spec ln_optim_defaults(ln_optim_kind kind);
ln_optim_spec ln_sgd_spec(double lr, double momentum);     /* the defaults but lr, momentum */
ln_optim_spec ln_adam_spec(ln_optim_kind kind, double lr); /* the defaults but lr */
ln_status ln_optim_spec_check(const ln_optim_spec *spec, ln_error *err);

typedef struct {
    ln_optim_spec spec;
    int64_t count;   /* parameters */
    int64_t steps;   /* steps taken */
    float *state;    /* sgd: momentum buffer; adam: m then v; one block */
} ln_optim;

ln_status ln_optim_init(ln_optim *opt, const ln_optim_spec *spec, int64_t count, ln_error *err);
void ln_optim_reset(ln_optim *opt);
void ln_optim_release(ln_optim *opt); /* idempotent */
void ln_optim_step(ln_optim *opt, float *params, const float *grads);

/* ------------------------------------------------------------------ data */

typedef struct {
    int type;               /* IDX type code: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
                               0x0D float, 0x0E double */
    int ndim;
    uint32_t dim[LN_MAX_DIMS];
    size_t count;           /* elements */
    size_t elem_size;       /* bytes per element */
    unsigned char *data;    /* count * elem_size bytes, big-endian as in the file */
    uint32_t file_items;    /* dim[0] as the file declares it (ln_idx_read_items may keep fewer) */
} ln_idx;

/* Reads an IDX file, gzip-compressed or raw (detected from the contents). Errors
 * name the file and what is wrong (missing, bad magic, truncated, overflow ...). */
ln_status ln_idx_read(const char *path, ln_idx *out, ln_error *err);
/* Parses an IDX image already in memory (used by ln_idx_read and the fuzzers);
 * `name` is used in error messages. */
ln_status ln_idx_parse(const unsigned char *bytes, size_t size, const char *name, ln_idx *out,
                       ln_error *err);
/* How much of a gzipped IDX file ln_idx_read_items decodes when it keeps a prefix. */
typedef enum {
    LN_IDX_CHECK_WHOLE = 0, /* every byte decoded and the gzip CRC-32 checked: the default */
    /* decoding stops after the kept items when the gzip trailer's size agrees with the
     * size the header declares (a cut or padded file is still decoded whole, to say what
     * is wrong); damage inside the kept items that inflate does not notice, and anything
     * after them, go unseen. Only for callers that verify the kept items another way:
     * `bin/lunet sweep task` compares the data's checksum with the one its plan recorded
     * after a whole read. MNIST's first 3000 training images: 1/20 of the decoding. */
    LN_IDX_CHECK_KEPT = 1
} ln_idx_check;

/* Like ln_idx_read, but keeps only the first max_items items (0 = all) in memory, so the
 * first 3000 of MNIST's 60000 images cost 2.4 MB, not 47 MB; with LN_IDX_CHECK_WHOLE the
 * rest of a gzipped file is still decoded and checked, never stored. */
ln_status ln_idx_read_items(const char *path, size_t max_items, ln_idx_check check, ln_idx *out,
                            ln_error *err);
void ln_idx_release(ln_idx *idx); /* idempotent */

/* Byte storage keeps a table per channel for up to this many channels; datasets of
 * bytes with more channels are stored as float32. */
#define LN_PIXEL_CHANNELS 4

/* A labelled image dataset in memory. Samples are stored one of two ways:
 * - images: normalised float32 (datasets made from arrays, float files), or
 * - pixels: the file's bytes with the normalised value of each of the 256 byte values
 *   of channel c in pixel_value[c] (datasets read from byte files: a quarter of the
 *   memory, and the values are exactly those the float storage would hold).
 * Exactly one of images / pixels is non-NULL. Read samples with ln_dataset_read /
 * ln_dataset_gather, which hide the difference. */
typedef struct {
    int64_t count;
    int channels, height, width;
    int classes;             /* max label + 1, at least 1 */
    float *images;           /* count x channels x height x width, or NULL */
    uint8_t *pixels;         /* count x channels x height x width, or NULL */
    float pixel_value[LN_PIXEL_CHANNELS][256]; /* pixels: channel, byte -> normalised value */
    int32_t *labels;         /* count */
} ln_dataset;

/* How a loader normalises: x' = (x - mean[c]) / std[c], where x is byte / 255 for byte
 * data and the value itself for float data. */
#define LN_MAX_NORM_CHANNELS 16
typedef enum {
    LN_NORM_GIVEN = 0, /* mean/std as given: count 1 (every channel) or one per channel */
    LN_NORM_AUTO,      /* per-channel mean and (population) std of the loaded samples */
    LN_NORM_NONE       /* mean 0, std 1: bytes become byte / 255 */
} ln_norm_mode;

/* MNIST's training-set mean and std (PyTorch's example's), the normalisation of the
 * Lua module's lunet.mnist. */
#define LN_MNIST_MEAN 0.1307
#define LN_MNIST_STD 0.3081

typedef struct {
    ln_norm_mode mode;
    int count;                            /* LN_NORM_GIVEN: 1 or channels; on return: channels */
    double mean[LN_MAX_NORM_CHANNELS];    /* on return: the values used, per channel */
    double std[LN_MAX_NORM_CHANNELS];
} ln_norm;

/* A dataset from raw samples: bytes (count x C x H x W, scaled by 1/255) or float
 * values (exactly one of the two), normalised as *norm says (and *norm then holds the
 * per-channel values used). labels: count entries in [0, 65535]. `what` names the source
 * in errors. */
ln_status ln_dataset_from_raw(const uint8_t *bytes, const float *values, const int32_t *labels,
                              int64_t count, int channels, int height, int width, ln_norm *norm,
                              const char *what, ln_dataset **out, ln_error *err);

/* Loads `limit` samples (limit <= 0: all) from IDX image and label files; pixels become
 * (x / 255 - mean) / std. The counts of the two files must agree. */
ln_status ln_dataset_load_idx(const char *images_path, const char *labels_path, int64_t limit,
                              float mean, float std, ln_dataset **out, ln_error *err);
/* The same for uint8 (0x08) or float32 (0x0D) images, normalised as *norm says; `check`
 * as for ln_idx_read_items (both files). */
ln_status ln_dataset_load_idx_norm(const char *images_path, const char *labels_path,
                                   int64_t limit, ln_idx_check check, ln_norm *norm,
                                   ln_dataset **out, ln_error *err);
/* A CSV file of one sample per line: a label column (1-based label_column) and C*H*W
 * values. Integer values in [0, 255] everywhere make byte data (scaled by 1/255); any
 * other number makes float data. header: skip the first line. limit <= 0: all rows.
 * Errors name the file, line and column. */
ln_status ln_dataset_load_csv(const char *path, int label_column, int channels, int height,
                              int width, int header, int64_t limit, ln_norm *norm,
                              ln_dataset **out, ln_error *err);
/* CIFAR-10 binary batches: records of one label byte (0-9) and 3072 pixel bytes (3 x 32 x 32,
 * red, green, blue planes), the files read one after the other (gzip or raw). */
ln_status ln_dataset_load_cifar(const char *const *paths, int path_count, int64_t limit,
                                ln_norm *norm, ln_dataset **out, ln_error *err);
/* A dataset from memory (copied); labels may be NULL (then all 0). */
ln_status ln_dataset_from_arrays(const float *images, const int32_t *labels, int64_t count,
                                 int channels, int height, int width, ln_dataset **out,
                                 ln_error *err);
/* The samples at `indices` (0-based), copied. */
ln_status ln_dataset_select(const ln_dataset *src, const int64_t *indices, int64_t count,
                            ln_dataset **out, ln_error *err);
/* First n, or n drawn at random without replacement from rng; stratified keeps the
 * class proportions (largest-remainder rounding). */
ln_status ln_dataset_subset(const ln_dataset *src, int64_t n, int random, int stratified,
                            ln_rng *rng, ln_dataset **out, ln_error *err);
void ln_dataset_free(ln_dataset *ds);
/* counts[classes]: samples per class. */
void ln_dataset_class_counts(const ln_dataset *ds, int64_t *counts, int classes);
/* Samples first .. first+n-1 as normalised float32 into out (n x C x H x W). The
 * range must be inside the dataset (not checked: this is the hot path). */
void ln_dataset_read(const ln_dataset *ds, int64_t first, int64_t n, float *out);
/* The samples at indices[0..n-1] into out (n x C x H x W) and, if labels is not NULL,
 * their labels; indices must be in range. */
void ln_dataset_gather(const ln_dataset *ds, const int64_t *indices, int64_t n, float *out,
                       int32_t *labels);
/* Asks the CPU to bring the samples at indices[0..n-1] into its caches: a hint (no value
 * changes), for a loop that knows what it gathers next (ln_train: the next batch's first
 * samples, so that a batch of 1 does not wait for its image). */
void ln_dataset_prefetch(const ln_dataset *ds, const int64_t *indices, int64_t n);
/* ln_dataset_gather of n samples (n <= the reserved batch) into the net's input slot
 * (ln_net_input), over the net's threads: each sample is copied whole by one of them, so
 * the same floats. Returns the slot. */
float *ln_net_gather_input(ln_net *net, const ln_dataset *data, const int64_t *indices, int n,
                           int32_t *labels);
/* Bytes the dataset holds in memory (samples and labels). */
size_t ln_dataset_bytes(const ln_dataset *ds);

/* -------------------------------------------------------------- training */

typedef enum { LN_UNIT_EPOCH = 0, LN_UNIT_STEP } ln_unit;

typedef struct {
    int64_t iteration;     /* iterations finished so far */
    int64_t iterations;    /* total */
    int64_t step;          /* optimizer steps so far */
    int64_t samples;       /* samples processed so far */
    double loss;           /* loss of the last finished iteration */
    double seconds;        /* since the start */
} ln_progress;

/* Return nonzero to stop training after this iteration. */
typedef int (*ln_progress_fn)(void *user, const ln_progress *p);

/* Learning-rate schedules, as torch.optim.lr_scheduler (see core/schedule.c). */
typedef enum {
    LN_SCHED_NONE = 0,
    LN_SCHED_STEP,        /* lr * gamma^floor(t / step_size)            (StepLR) */
    LN_SCHED_MULTISTEP,   /* lr * gamma^(milestones <= t)               (MultiStepLR) */
    LN_SCHED_EXPONENTIAL, /* lr * gamma^t                               (ExponentialLR) */
    LN_SCHED_COSINE       /* eta_min + (lr - eta_min)(1 + cos(pi t / t_max)) / 2 (CosineAnnealingLR) */
} ln_schedule_kind;

#define LN_MAX_MILESTONES 32

typedef struct {
    ln_schedule_kind kind;
    ln_unit per;          /* t counts finished epochs (LN_UNIT_EPOCH) or optimizer steps */
    int64_t step_size;    /* step */
    int64_t milestones[LN_MAX_MILESTONES]; /* multistep, non-decreasing */
    int milestone_count;
    double gamma;         /* step, multistep, exponential */
    int64_t t_max;        /* cosine */
    double eta_min;       /* cosine */
} ln_schedule;

const char *ln_schedule_name(ln_schedule_kind k);
ln_status ln_schedule_check(const ln_schedule *s, ln_error *err);
/* The rate used at scheduler time t (t = 0 before the first scheduler step). */
double ln_schedule_lr(const ln_schedule *s, double base_lr, int64_t t);

/* Early stopping as Keras' EarlyStopping and Lightning's: a check improves when its
 * value < best - min_delta; after `patience` checks in a row without improvement the
 * run stops. */
typedef enum { LN_STOP_NONE = 0, LN_STOP_LOSS, LN_STOP_VAL_LOSS } ln_stop_metric;

typedef struct {
    ln_stop_metric metric; /* loss: checked every iteration; val_loss: every validation */
    int64_t patience;
    double min_delta;
} ln_stop_rule;

/* What a net keeps between ln_train calls so that training twice for k iterations is
 * bit-identical to training once for 2k: the optimizer (its state and step count), the
 * random streams, the step and epoch counters and the position in the current epoch.
 * Zero it (or ln_train_state_release it) to start over. */
typedef struct {
    int active;            /* 0: the next ln_train starts over */
    uint64_t seed;         /* the seed the streams were drawn from */
    ln_optim opt;
    ln_rng shuffle_rng, dropout_rng;
    int64_t steps;         /* optimizer steps over all calls */
    int64_t epochs;        /* epochs finished over all calls */
    int64_t pos;           /* next sample of the current epoch's order; == count: new epoch */
    int64_t count;         /* samples in order[] */
    int64_t *order;        /* the current epoch's order */
    int64_t call_done;     /* iterations the current call has finished (for a resume) */
    double stop_best;      /* early stopping: best value so far (+inf: none) */
    int64_t stop_wait;     /* and checks since it */
} ln_train_state;

void ln_train_state_release(ln_train_state *s); /* idempotent; leaves it zeroed */

typedef struct {
    ln_loss_kind loss;
    ln_optim_spec optim;
    int batch;             /* samples per step; the last partial batch is kept */
    int64_t iterations;    /* epochs or steps, see unit */
    ln_unit unit;
    int shuffle;           /* reshuffle every epoch (PyTorch DataLoader shuffle=True) */
    uint64_t seed;         /* shuffling and dropout draw from streams of this seed */
    ln_progress_fn on_iteration; /* called after every iteration, may be NULL */
    void *user;
    atomic_int *stop;      /* if not NULL, checked before every step; may be set from
                              another thread or a signal handler (atomic_int is lock-free
                              where lunet builds: core/train.c checks it) */
    ln_schedule schedule;  /* kind LN_SCHED_NONE: a constant rate */
    const ln_dataset *validate; /* if not NULL: evaluated every validate_every iterations */
    int64_t validate_every;     /* and after the last one; <= 0 means 1 */
    ln_stop_rule early;         /* early stopping; metric LN_STOP_NONE: off */
    ln_train_state *state;      /* NULL: start over; else continue from and update it */
    const char *checkpoint;     /* if not NULL: ln_checkpoint_save there after every */
    int64_t checkpoint_every;   /* checkpoint_every iterations (<= 0: 1), the last and a stop */
    int resume;                 /* 1: state holds a loaded checkpoint: finish its call */
} ln_train_config;

/* Filled by ln_train; arrays allocated by it, freed by ln_history_release. */
typedef struct {
    int64_t iterations;    /* iterations finished */
    double *loss;          /* per iteration: sample-weighted mean loss */
    int64_t steps;         /* optimizer steps taken */
    float *step_loss;      /* per step: mean loss of the batch */
    int64_t samples;       /* samples processed */
    double seconds;
    int diverged;          /* a NaN or Inf loss stopped the run */
    int interrupted;       /* stopped by *stop or the callback */
    double *lr;            /* per iteration: the rate its first step used */
    int64_t validations;   /* entries of the three val_ arrays */
    int64_t *val_iteration;/* the iteration (1-based, of this call) after which it ran */
    double *val_loss, *val_accuracy;
    int64_t stopped_at;    /* early stopping: the iteration it stopped after, else 0 */
    int64_t first_iteration; /* a resumed call: iterations done before it (else 0) */
    char checkpoint_error[512]; /* a checkpoint that could not be written stopped the run */
    double cpu_seconds;    /* the process's CPU time over the same span as seconds: every
                            * thread's, so up to threads x seconds; less than seconds on
                            * one thread when other work took the core (0 after an error) */
} ln_history;

/* The batch of training (ln_train_config_defaults) and the Lua module's evaluation. */
#define LN_DEFAULT_BATCH 64
#define LN_DEFAULT_EVAL_BATCH 1000
void ln_train_config_defaults(ln_train_config *cfg);
ln_status ln_train_config_check(const ln_train_config *cfg, ln_error *err);
/* Trains in place. Returns LN_OK also when the run diverged or was stopped (see
 * the history's flags); errors are for bad arguments and allocation failures. */
ln_status ln_train(ln_net *net, const ln_dataset *data, const ln_train_config *cfg,
                   ln_history *hist, ln_error *err);
void ln_history_release(ln_history *hist); /* idempotent */

/* Mean loss and accuracy over a dataset in eval mode, `batch` samples at a time. */
ln_status ln_evaluate(ln_net *net, const ln_dataset *data, ln_loss_kind loss, int batch,
                      double *mean_loss, double *accuracy, ln_error *err);

/* The same, and if confusion is not NULL the confusion matrix into it: classes x classes
 * counts (classes = the net's outputs), row = true class, column = predicted class. */
ln_status ln_evaluate_confusion(ln_net *net, const ln_dataset *data, ln_loss_kind loss, int batch,
                                double *mean_loss, double *accuracy, int64_t *confusion,
                                ln_error *err);

/* ---------------------------------------------------------- repeat runs */

/* R independent runs of the same training config. Run r starts from a copy of the
 * template net's layers with parameters initialised from ln_seed_derive(seed, r)
 * (stream LN_STREAM_INIT), and trains with that same derived seed; the results do not
 * depend on the thread count or completion order. */
typedef struct {
    ln_history hist;
    uint64_t seed;
    int done;
    double test_loss, test_accuracy; /* after the last iteration; NaN when no test set */
    double *test_loss_at;            /* [test_at_count]: at the iterations of test_at; */
    double *test_accuracy_at;        /* NaN where not reached (diverged, stopped) */
} ln_run_result;

typedef struct {
    int runs_done, runs_total;
    int64_t iterations_done;    /* summed over all runs */
    int64_t iterations_total;
    int64_t samples;            /* summed over all runs */
    double seconds;
    double last_loss;           /* loss of the latest iteration finished by any run */
} ln_runs_progress;

typedef int (*ln_runs_progress_fn)(void *user, const ln_runs_progress *p);
/* Called on the calling thread before run `run` (0-based) starts: 1 = compute it,
 * 0 = skip it (another process has it, or its result is already stored), < 0 = stop
 * every run (ln_runs then fails with LN_EINVAL unless something failed first). */
typedef int (*ln_runs_claim_fn)(void *user, int run);
/* Called on the calling thread for every run that finished (res->done; diverged runs
 * included) as soon as it finished, before ln_runs returns, also when ln_runs then
 * fails or is stopped. It may release *res (ln_run_result_release). Nonzero = stop
 * starting runs (the ones running finish, and are handed over too). */
typedef int (*ln_runs_done_fn)(void *user, int run, ln_run_result *res);

typedef struct {
    const ln_net *template_net;
    const ln_dataset *data;
    const ln_dataset *test;     /* may be NULL */
    ln_train_config train;      /* train.seed is the base seed */
    int runs;                   /* 1 to LN_MAX_RUNS */
    int threads;                /* <= 0: number of cores; at most LN_MAX_THREADS */
    const int *only;            /* if not NULL: runs[i] is computed only if only[i] */
    const int64_t *test_at;     /* evaluate on `test` also after these iterations */
    int test_at_count;          /* (e.g. so a 100-epoch run also gives 50-epoch figures) */
    ln_runs_progress_fn on_progress; /* called on the calling thread about 10x a second
                                     and after each finished run */
    ln_runs_claim_fn claim;     /* may be NULL: every run of `only` is computed */
    ln_runs_done_fn on_run;     /* may be NULL */
    void *user;                 /* passed to on_progress, claim and on_run */
    int threads_per_run;        /* threads inside each run (ln_net_set_threads); <= 1: one */
} ln_runs_config;

#define LN_MAX_RUNS 1000000

/* results[runs] must be zeroed by the caller; release each with ln_run_result_release. */
ln_status ln_runs(const ln_runs_config *cfg, ln_run_result *results, ln_error *err);
void ln_run_result_release(ln_run_result *r); /* idempotent */
int ln_cpu_count(void);
/* The instruction set the fast kernels use here ("avx512", "avx2", "generic"; the
 * environment variable LUNET_ISA can lower it). Results are bit-identical for any
 * thread count, but the last digits depend on this, so result caches record it. */
const char *ln_kernel_isa(void);

/* ------------------------------------------------ threads inside one run */

/* A net can spread every forward and backward pass (and ln_train's optimizer step)
 * over a persistent pool of `threads` threads (1 = none, the default; at most
 * LN_MAX_THREADS, which also bounds ln_runs_config's threads).
 * Each thread computes whole output elements exactly as one thread would (samples,
 * output channels, parameter ranges; a sum over the batch in groups of samples fixed by
 * the batch size, added in group order), so results are bit-identical for any thread
 * count. The pool lives until the count changes or the net is freed. A net must not
 * be used by two threads at once (it never was). */
#define LN_MAX_THREADS 256
ln_status ln_net_set_threads(ln_net *net, int threads, ln_error *err);
int ln_net_threads(const ln_net *net);
/* ln_optim_step on the net's parameters and gradients, over its threads. */
void ln_net_optim_step(ln_net *net, ln_optim *opt);
/* ln_optim_step in two halves for a step split over threads: ln_optim_step_begin once,
 * then ln_optim_step_range on disjoint ranges that cover [0, count). */
void ln_optim_step_begin(ln_optim *opt);
void ln_optim_step_range(ln_optim *opt, float *params, const float *grads, int64_t begin,
                         int64_t end);

/* ------------------------------------------------------------ model files */

ln_status ln_net_save(const ln_net *net, const char *path, ln_error *err);
/* Writes all n bytes to fd, again after EINTR and short writes: 0, or the errno value
 * (errno is left set). Model files and the binding's run store use it. */
int ln_write_all(int fd, const void *bytes, size_t n);
/* Format and guarantees: see core/model_file.c. Saving is atomic (temp file, fsync,
 * rename). Loading checks magic, version, CRC-32, layer list and sizes; a bad file is
 * LN_EFORMAT naming it. ln_net_load_bytes parses a file image already in memory. */
ln_status ln_net_load(const char *path, ln_net **out, ln_error *err);
ln_status ln_net_load_bytes(const unsigned char *bytes, size_t size, const char *name,
                            ln_net **out, ln_error *err);

/* Checkpoints: the model file image plus the training state (optimizer state, random
 * streams, counters, the epoch's order, early stopping), written atomically; format in
 * core/model_file.c. Loading checks the file (magic, version, engine revision, CRC) and
 * that its net has `net`'s layers, then replaces net's parameters and buffers and *state. */
ln_status ln_checkpoint_save(const ln_net *net, const ln_train_state *state, const char *path,
                             ln_error *err);
ln_status ln_checkpoint_load(const char *path, ln_net *net, ln_train_state *state, ln_error *err);

#ifdef __cplusplus
}
#endif
#endif
