/* test_data.c - checks for IDX reading (core/idx.c) and datasets (core/dataset.c).
 *
 * Standalone: writes its own small IDX files (raw and gzipped) into a fresh
 * directory under /tmp and removes it at the end. With MNIST_DIR set it also loads
 * the real MNIST files. Output is TAP-like: `ok N - what` / `not ok N - what: why`,
 * then `# passed P failed F`; the exit status is 0 iff nothing failed.
 *
 * Build (see the brief in the repository):
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g -Wall -Wextra \
 *       -fsanitize=address,undefined spec/c/test_data.c core/idx.c core/dataset.c \
 *       core/alloc.c core/error.c core/rng.c core/tensor.c -lz -lm -o /tmp/test_data
 * Set LUNET_TEST_SLOW=1 to also decompress a 1 GiB gzip bomb.
 */
#include "../../core/lunet.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "tap.h"

/* ------------------------------------------------------------ harness */

typedef struct {
    tap checks;     /* the checks reported */
    ln_error err;   /* every call under test reports here; cleared after each check */
    char dir[64];   /* the temp directory */
} suite;

/* One check of cond (its text expr, at line); a failure also names the last error. */
static void suite_check(suite *t, int ok, const char *expr, int line, const char *fmt, ...)
{
    char what[256], detail[600] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!ok)
        snprintf(detail, sizeof detail, "`%s` is false (line %d; last error: %s%s%s)", expr, line,
                 t->err.msg[0] ? ln_status_name(t->err.code) : "none", t->err.msg[0] ? ": " : "", t->err.msg);
    tap_result(&t->checks, ok, what, detail);
    t->err.code = LN_OK;
    t->err.msg[0] = '\0';
}

#define CHECK(t, cond, ...) suite_check((t), (cond) ? 1 : 0, #cond, __LINE__, __VA_ARGS__)

static int msg_has(const suite *t, const char *s) { return strstr(t->err.msg, s) != NULL; }

/* ------------------------------------------------------------ writing test files */

static void path_of(const suite *t, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", t->dir, name);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX image in a malloc'd block: header for (type, ndim, dims) then `data`. */
static unsigned char *make_idx(int type, int ndim, const uint32_t *dims, const void *data,
                               size_t data_bytes, size_t *size)
{
    size_t header = 4 + 4 * (size_t)ndim;
    unsigned char *b = malloc(header + data_bytes + 1);
    if (!b) {
        fprintf(stderr, "test_data: out of memory\n");
        exit(2);
    }
    b[0] = 0;
    b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) put_be32(b + 4 + 4 * i, dims[i]);
    if (data_bytes) memcpy(b + header, data, data_bytes);
    *size = header + data_bytes;
    return b;
}

static void write_raw(const suite *t, const char *name, const void *bytes, size_t size, char *path,
                      size_t path_size)
{
    path_of(t, name, path, path_size);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(bytes, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "test_data: cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* mode "wb" starts a file, "ab" appends another gzip member. */
static void write_gz(const suite *t, const char *name, const void *bytes, size_t size,
                     const char *mode, char *path, size_t path_size)
{
    path_of(t, name, path, path_size);
    gzFile g = gzopen(path, mode);
    if (!g || (size && gzwrite(g, bytes, (unsigned)size) != (int)size) || gzclose(g) != Z_OK) {
        fprintf(stderr, "test_data: cannot write %s\n", path);
        exit(2);
    }
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return b;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rmdir(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ------------------------------------------------------------ fixtures */

/* Three 2x3 images with labels 1, 0, 2. */
enum { FX_N = 3, FX_H = 2, FX_W = 3, FX_PIX = FX_N * FX_H * FX_W };
static const unsigned char fx_pixels[FX_PIX] = {0,  255, 51, 102, 128, 1,   2,  3,   250,
                                                77, 200, 17, 33,  99,  254, 64, 192, 0};
static const unsigned char fx_labels[FX_N] = {1, 0, 2};

typedef struct {
    char img[256], lab[256], img_gz[256], lab_gz[256];
} fixture;

static void write_fixture(const suite *t, fixture *fx)
{
    uint32_t idims[3] = {FX_N, FX_H, FX_W}, ldims[1] = {FX_N};
    size_t isz, lsz;
    unsigned char *ib = make_idx(0x08, 3, idims, fx_pixels, FX_PIX, &isz);
    unsigned char *lb = make_idx(0x08, 1, ldims, fx_labels, FX_N, &lsz);
    write_raw(t, "img.idx", ib, isz, fx->img, sizeof fx->img);
    write_raw(t, "lab.idx", lb, lsz, fx->lab, sizeof fx->lab);
    write_gz(t, "img.idx.gz", ib, isz, "wb", fx->img_gz, sizeof fx->img_gz);
    write_gz(t, "lab.idx.gz", lb, lsz, "wb", fx->lab_gz, sizeof fx->lab_gz);
    free(ib);
    free(lb);
}

static float norm(unsigned char x, float mean, float std) { return ((float)x / 255.0f - mean) / std; }

/* Value k of the dataset's samples laid end to end, read through the public accessor
 * (IDX datasets keep bytes, so there is no float array to index). */
static float value_at(const ln_dataset *ds, int64_t k)
{
    const int64_t per = (int64_t)ds->channels * ds->height * ds->width;
    float sample[64];
    if (per > 64) return NAN;
    ln_dataset_read(ds, k / per, 1, sample);
    return sample[k % per];
}

/* ------------------------------------------------------------ IDX: valid files */

static void test_idx_valid(suite *t, const fixture *fx)
{
    ln_idx a, b;
    ln_status st = ln_idx_read(fx->img, &a, &t->err);
    CHECK(t, st == LN_OK && a.type == 0x08 && a.ndim == 3 && a.dim[0] == FX_N &&
                 a.dim[1] == FX_H && a.dim[2] == FX_W && a.count == FX_PIX && a.elem_size == 1 &&
                 a.data && memcmp(a.data, fx_pixels, FX_PIX) == 0,
          "raw ubyte 3-D IDX file: header and data");

    st = ln_idx_read(fx->img_gz, &b, &t->err);
    CHECK(t, st == LN_OK && b.type == a.type && b.ndim == a.ndim && b.count == a.count &&
                 memcmp(b.dim, a.dim, sizeof a.dim) == 0 && memcmp(b.data, a.data, a.count) == 0,
          "gzipped IDX file reads the same as the raw one");
    ln_idx_release(&b);

    /* Two gzip members back to back, as `cat a.gz b.gz` makes. */
    uint32_t dims[3] = {FX_N, FX_H, FX_W};
    size_t sz;
    unsigned char *whole = make_idx(0x08, 3, dims, fx_pixels, FX_PIX, &sz);
    char p[256];
    write_gz(t, "multi.gz", whole, 7, "wb", p, sizeof p);
    write_gz(t, "multi.gz", whole + 7, sz - 7, "ab", p, sizeof p);
    st = ln_idx_read(p, &b, &t->err);
    CHECK(t, st == LN_OK && b.count == FX_PIX && memcmp(b.data, fx_pixels, FX_PIX) == 0,
          "concatenated gzip members are decoded as one file");
    ln_idx_release(&b);
    free(whole);

    ln_idx_release(&a);
    ln_idx_release(&a);
    CHECK(t, a.data == NULL && a.count == 0, "ln_idx_release is idempotent and zeroes the struct");
    ln_idx_release(NULL);

    /* Every type code, big-endian bytes kept as in the file. */
    static const int types[6] = {0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E};
    static const size_t sizes[6] = {1, 1, 2, 4, 4, 8};
    int all_ok = 1;
    for (int i = 0; i < 6; i++) {
        unsigned char data[2 * 3 * 8];
        for (size_t j = 0; j < sizeof data; j++) data[j] = (unsigned char)(j * 7 + (size_t)i);
        uint32_t d2[2] = {2, 3};
        size_t n;
        unsigned char *img = make_idx(types[i], 2, d2, data, 6 * sizes[i], &n);
        st = ln_idx_parse(img, n, "mem", &b, &t->err);
        if (st != LN_OK || b.type != types[i] || b.elem_size != sizes[i] || b.count != 6 ||
            memcmp(b.data, data, 6 * sizes[i]) != 0)
            all_ok = 0;
        ln_idx_release(&b);
        free(img);
    }
    CHECK(t, all_ok, "all six type codes parse with the right element size and raw data");

    uint32_t d4[4] = {1, 2, 1, 2};
    unsigned char four[4] = {9, 8, 7, 6};
    unsigned char *img = make_idx(0x08, 4, d4, four, 4, &sz);
    st = ln_idx_parse(img, sz, "mem", &b, &t->err);
    CHECK(t, st == LN_OK && b.ndim == 4 && b.count == 4 && b.dim[3] == 2, "4-D IDX parses");
    ln_idx_release(&b);
    free(img);
}

/* ------------------------------------------------------------ IDX: errors */

/* Parses bytes (from memory, name "buf") expecting failure `want` whose message
 * contains `needle`; also checks that *out was left zeroed. */
static void expect_parse_error(suite *t, const unsigned char *bytes, size_t size, ln_status want,
                               const char *needle, const char *what)
{
    ln_idx out;
    memset(&out, 0x5A, sizeof out);
    ln_status st = ln_idx_parse(bytes, size, "buf", &out, &t->err);
    int zeroed = out.data == NULL && out.count == 0 && out.ndim == 0 && out.type == 0;
    CHECK(t, st == want && zeroed && strncmp(t->err.msg, "buf: ", 5) == 0 && msg_has(t, needle),
          "%s -> %s mentioning \"%s\"", what, ln_status_name(want), needle);
    if (st == LN_OK) ln_idx_release(&out);
}

/* The same through a file: the message must start with the path. */
static void expect_file_error(suite *t, const char *name, const unsigned char *bytes, size_t size,
                              ln_status want, const char *needle, const char *what)
{
    char p[256];
    write_raw(t, name, bytes, size, p, sizeof p);
    ln_idx out;
    memset(&out, 0x5A, sizeof out);
    ln_status st = ln_idx_read(p, &out, &t->err);
    int zeroed = out.data == NULL && out.count == 0 && out.ndim == 0;
    CHECK(t, st == want && zeroed && strncmp(t->err.msg, p, strlen(p)) == 0 && msg_has(t, needle),
          "file: %s -> %s naming the file and \"%s\"", what, ln_status_name(want), needle);
    if (st == LN_OK) ln_idx_release(&out);
}

static void test_idx_errors(suite *t, const fixture *fx)
{
    unsigned char ten[12] = {0};
    uint32_t d10[1] = {10};
    size_t sz;
    unsigned char *b;

    b = make_idx(0x08, 1, d10, ten, 10, &sz);
    b[0] = 0x01;
    expect_parse_error(t, b, sz, LN_EFORMAT, "bad magic", "wrong magic (first byte 01)");
    expect_file_error(t, "magic.idx", b, sz, LN_EFORMAT, "bad magic", "wrong magic");
    b[0] = 0;
    b[1] = 0x08;
    expect_parse_error(t, b, sz, LN_EFORMAT, "bad magic", "wrong magic (second byte 08)");
    b[1] = 0;
    b[2] = 0x0A;
    expect_parse_error(t, b, sz, LN_EFORMAT, "type code 0x0A", "bad type code 0x0A");
    b[2] = 0x00;
    expect_file_error(t, "type.idx", b, sz, LN_EFORMAT, "type code 0x00", "bad type code 0x00");
    b[2] = 0x08;
    b[3] = 0;
    expect_parse_error(t, b, sz, LN_EFORMAT, "number of dimensions 0", "ndim 0");
    b[3] = 5;
    expect_parse_error(t, b, sz, LN_EFORMAT, "number of dimensions 5", "ndim 5");
    expect_file_error(t, "ndim5.idx", b, sz, LN_EFORMAT, "number of dimensions 5", "ndim 5");
    free(b);

    b = make_idx(0x08, 1, d10, ten, 7, &sz);
    expect_parse_error(t, b, sz, LN_EFORMAT, "truncated: expected 10 bytes of data, found 7",
                       "truncated data");
    expect_file_error(t, "trunc.idx", b, sz, LN_EFORMAT,
                      "truncated: expected 10 bytes of data, found 7", "truncated data");
    free(b);
    b = make_idx(0x08, 1, d10, ten, 12, &sz);
    expect_parse_error(t, b, sz, LN_EFORMAT, "2 trailing bytes", "trailing bytes");
    expect_file_error(t, "trail.idx", b, sz, LN_EFORMAT, "trailing bytes", "trailing bytes");
    free(b);

    uint32_t huge[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    b = make_idx(0x08, 3, huge, NULL, 0, &sz);
    expect_parse_error(t, b, sz, LN_EFORMAT, "dimension overflow",
                       "dims 0xFFFFFFFF^3 overflow size_t");
    expect_file_error(t, "overflow.idx", b, sz, LN_EFORMAT, "dimension overflow",
                      "dims 0xFFFFFFFF^3");
    free(b);
    b = make_idx(0x0E, 2, huge, NULL, 0, &sz);
    expect_parse_error(t, b, sz, LN_EFORMAT, "dimension overflow",
                       "doubles 0xFFFFFFFF^2 overflow in bytes");
    free(b);
    uint32_t big[2] = {0x10000, 0x10000};
    b = make_idx(0x08, 2, big, NULL, 0, &sz);
    expect_parse_error(t, b, sz, LN_EFORMAT, "truncated: expected 4294967296 bytes of data, found 0",
                       "4 GiB declared, header only");
    free(b);

    uint32_t zero_mid[3] = {3, 0, 2}, zero_first[1] = {0};
    b = make_idx(0x08, 3, zero_mid, NULL, 0, &sz);
    expect_parse_error(t, b, sz, LN_EFORMAT, "holds no items (dimension 2 is 0)",
                       "a zero dimension");
    free(b);
    b = make_idx(0x08, 1, zero_first, NULL, 0, &sz);
    expect_file_error(t, "zero.idx", b, sz, LN_EFORMAT, "holds no items (dimension 1 is 0)",
                      "zero items");
    free(b);

    unsigned char hdr[12] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1};
    expect_parse_error(t, hdr, 0, LN_EFORMAT, "empty file", "0 bytes");
    expect_file_error(t, "empty.idx", hdr, 0, LN_EFORMAT, "empty file", "empty file");
    expect_parse_error(t, hdr, 3, LN_EFORMAT, "too short", "3 bytes");
    expect_parse_error(t, hdr, 12, LN_EFORMAT, "header truncated", "ndim 3 with 2 dims present");

    ln_idx out;
    ln_status st = ln_idx_parse(hdr, 2, NULL, &out, &t->err);
    CHECK(t, st == LN_EFORMAT && strncmp(t->err.msg, "<memory>: ", 10) == 0,
          "ln_idx_parse with a NULL name says <memory>");

    char p[256];
    path_of(t, "no-such-file.idx", p, sizeof p);
    memset(&out, 0x5A, sizeof out);
    st = ln_idx_read(p, &out, &t->err);
    CHECK(t, st == LN_EIO && strncmp(t->err.msg, p, strlen(p)) == 0 && msg_has(t, strerror(ENOENT)) &&
                 out.data == NULL,
          "missing file -> LN_EIO naming the path and the OS reason");
    st = ln_idx_read(t->dir, &out, &t->err);
    CHECK(t, st == LN_EIO && msg_has(t, t->dir), "a directory -> LN_EIO naming it");
    st = ln_idx_read(NULL, &out, &t->err);
    CHECK(t, st == LN_EINVAL, "NULL path -> LN_EINVAL");

    /* Damaged gzip files. */
    size_t gsz;
    unsigned char *gz = slurp(fx->img_gz, &gsz);
    CHECK(t, gz && gsz > 20, "fixture gzip file readable");
    if (gz && gsz > 20) {
        expect_file_error(t, "half.gz", gz, gsz / 2, LN_EFORMAT, "gzip data is truncated",
                          "gzip file cut in half");
        expect_file_error(t, "magiconly.gz", gz, 2, LN_EFORMAT, "gzip data is truncated",
                          "gzip magic only");
        unsigned char *bad = malloc(gsz);
        memcpy(bad, gz, gsz);
        bad[gsz - 6] ^= 0xFF; /* inside the CRC-32 of the trailer */
        expect_file_error(t, "crc.gz", bad, gsz, LN_EFORMAT, "corrupt gzip data",
                          "gzip with a wrong CRC");
        memcpy(bad, gz, gsz);
        bad[3] = 0xE0; /* reserved flag bits */
        expect_file_error(t, "flags.gz", bad, gsz, LN_EFORMAT, "corrupt gzip data",
                          "gzip with a bad header");
        unsigned char *junk = malloc(gsz + 3);
        memcpy(junk, gz, gsz);
        memcpy(junk + gsz, "xyz", 3);
        expect_file_error(t, "junk.gz", junk, gsz + 3, LN_EFORMAT, "corrupt gzip data",
                          "gzip followed by junk");
        free(junk);
        free(bad);
    }
    free(gz);

    /* Well-formed gzip whose contents are not IDX: the parse error still names the file. */
    write_gz(t, "text.gz", "hello, world", 12, "wb", p, sizeof p);
    st = ln_idx_read(p, &out, &t->err);
    CHECK(t, st == LN_EFORMAT && strncmp(t->err.msg, p, strlen(p)) == 0 && msg_has(t, "bad magic"),
          "gzipped non-IDX contents -> LN_EFORMAT naming the file");

    /* A sparse raw file just over 1 GiB is refused from its size, before reading. */
    path_of(t, "sparse.idx", p, sizeof p);
    FILE *f = fopen(p, "wb");
    int made = f && ftruncate(fileno(f), (off_t)((1L << 30) + 1)) == 0;
    if (f) fclose(f);
    if (made) {
        st = ln_idx_read(p, &out, &t->err);
        CHECK(t, st == LN_ENOMEM && msg_has(t, "1 GiB") && msg_has(t, p),
              "raw file over 1 GiB -> LN_ENOMEM naming the limit");
    }
    unlink(p);
}

/* 1 GiB + 1 of decompressed data from ~1 MB of gzip: many members of 1 MiB zeros. */
static void test_gzip_bomb(suite *t)
{
    if (!getenv("LUNET_TEST_SLOW")) {
        tap_skip("gzip bomb (set LUNET_TEST_SLOW=1)");
        return;
    }
    size_t mib = (size_t)1 << 20;
    unsigned char *zeros = calloc(mib, 1);
    char p[256];
    path_of(t, "bomb.gz", p, sizeof p);
    gzFile g = gzopen(p, "wb1");
    for (int i = 0; i < 1024 && g; i++) gzwrite(g, zeros, (unsigned)mib);
    gzwrite(g, zeros, 1);
    gzclose(g);
    free(zeros);
    ln_idx out;
    ln_status st = ln_idx_read(p, &out, &t->err);
    CHECK(t, st == LN_ENOMEM && msg_has(t, "decompressed size exceeds the limit of 1 GiB") &&
                 out.data == NULL,
          "gzip bomb (1 GiB + 1 byte) -> LN_ENOMEM naming the limit");
    unlink(p);
}

/* ------------------------------------------------------------ datasets from IDX */

static void test_dataset_load(suite *t, const fixture *fx)
{
    ln_dataset *ds = NULL, *dz = NULL;
    const float mean = 0.1307f, std = 0.3081f;
    ln_status st = ln_dataset_load_idx(fx->img, fx->lab, 0, mean, std, &ds, &t->err);
    CHECK(t, st == LN_OK && ds && ds->count == FX_N && ds->channels == 1 && ds->height == FX_H &&
                 ds->width == FX_W && ds->classes == 3,
          "raw dataset: count 3, 1x2x3, 3 classes");
    if (!ds) return;
    int same = 1;
    for (int i = 0; i < FX_PIX; i++)
        if (value_at(ds, i) != norm(fx_pixels[i], mean, std)) same = 0;
    CHECK(t, same, "pixels are ((float)x/255 - mean)/std exactly");
    CHECK(t, ds->images == NULL && ds->pixels != NULL && memcmp(ds->pixels, fx_pixels, FX_PIX) == 0 &&
                 ln_dataset_bytes(ds) == FX_PIX + FX_N * sizeof(int32_t),
          "an IDX dataset keeps the file's bytes (1 byte per pixel + the labels)");
    float all_read[FX_PIX], all_gathered[FX_PIX];
    int32_t gathered_labels[FX_N];
    int64_t backwards[FX_N] = {2, 1, 0};
    ln_dataset_read(ds, 0, FX_N, all_read);
    ln_dataset_gather(ds, backwards, FX_N, all_gathered, gathered_labels);
    const int per = FX_PIX / FX_N;
    int gather_ok = gathered_labels[0] == 2 && gathered_labels[2] == 1;
    for (int i = 0; i < FX_N; i++)
        if (memcmp(all_gathered + i * per, all_read + (FX_N - 1 - i) * per, per * sizeof(float)))
            gather_ok = 0;
    CHECK(t, gather_ok, "gather in reverse order = read, reversed, with the labels");
    int64_t pick[2] = {2, 0};
    ln_dataset *sel = NULL;
    st = ln_dataset_select(ds, pick, 2, &sel, &t->err);
    CHECK(t, st == LN_OK && sel->pixels && !sel->images && value_at(sel, 0) == value_at(ds, 2 * per) &&
                 value_at(sel, per + 1) == value_at(ds, 1) && sel->labels[0] == 2,
          "select from a byte dataset keeps bytes and the same values");
    ln_dataset_free(sel);
    CHECK(t, ds->labels[0] == 1 && ds->labels[1] == 0 && ds->labels[2] == 2, "labels 1 0 2");

    st = ln_dataset_load_idx(fx->img_gz, fx->lab_gz, 0, mean, std, &dz, &t->err);
    CHECK(t, st == LN_OK && dz && dz->count == ds->count &&
                 memcmp(dz->pixels, ds->pixels, FX_PIX) == 0 &&
                 memcmp(dz->pixel_value, ds->pixel_value, sizeof ds->pixel_value) == 0 &&
                 memcmp(dz->labels, ds->labels, FX_N * sizeof(int32_t)) == 0 &&
                 dz->classes == ds->classes,
          "gzipped dataset is identical to the raw one");
    ln_dataset_free(dz);
    ln_dataset_free(ds);

    st = ln_dataset_load_idx(fx->img, fx->lab_gz, 0, 0.5f, 0.25f, &ds, &t->err);
    CHECK(t, st == LN_OK && value_at(ds, 0) == -2.0f && value_at(ds, 1) == 2.0f,
          "mean 0.5 std 0.25: 0 -> -2, 255 -> 2 (raw images, gzipped labels)");
    ln_dataset_free(ds);
    st = ln_dataset_load_idx(fx->img, fx->lab, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_OK && value_at(ds, 2) == 0.2f && value_at(ds, 3) == 0.4f && value_at(ds, 1) == 1.0f,
          "mean 0 std 1: 51 -> 0.2f, 102 -> 0.4f, 255 -> 1");
    ln_dataset_free(ds);

    /* limit */
    st = ln_dataset_load_idx(fx->img, fx->lab, 2, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_OK && ds->count == 2 && ds->classes == 2 && ds->labels[1] == 0 &&
                 value_at(ds, 11) == norm(fx_pixels[11], 0.0f, 1.0f),
          "limit 2 loads the first two samples (classes from them: 2)");
    ln_dataset_free(ds);
    int all = 1;
    int64_t limits[3] = {0, -5, 3};
    for (int i = 0; i < 3; i++) {
        st = ln_dataset_load_idx(fx->img, fx->lab, limits[i], 0.0f, 1.0f, &ds, &t->err);
        if (st != LN_OK || ds->count != 3) all = 0;
        ln_dataset_free(ds);
    }
    CHECK(t, all, "limit 0, -5 and 3 load all three samples");
    ds = (ln_dataset *)&all; /* must be reset to NULL on failure */
    st = ln_dataset_load_idx(fx->img, fx->lab, 4, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EINVAL && ds == NULL && msg_has(t, "limit 4") && msg_has(t, "3 samples"),
          "limit 4 > 3 -> LN_EINVAL saying how many the file holds");
    ln_dataset_free(NULL);

    /* 4-D images: N x C x H x W */
    unsigned char px[2 * 3 * 2 * 2];
    for (int i = 0; i < 24; i++) px[i] = (unsigned char)(i * 10);
    unsigned char lb[2] = {4, 1};
    uint32_t d4[4] = {2, 3, 2, 2}, d1[1] = {2};
    size_t isz, lsz;
    unsigned char *ib = make_idx(0x08, 4, d4, px, 24, &isz);
    unsigned char *lbb = make_idx(0x08, 1, d1, lb, 2, &lsz);
    char ip[256], lp[256];
    write_raw(t, "img4.idx", ib, isz, ip, sizeof ip);
    write_gz(t, "lab4.idx.gz", lbb, lsz, "wb", lp, sizeof lp);
    st = ln_dataset_load_idx(ip, lp, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_OK && ds->count == 2 && ds->channels == 3 && ds->height == 2 &&
                 ds->width == 2 && ds->classes == 5 && value_at(ds, 23) == norm(230, 0.0f, 1.0f),
          "4-D image file: 2 samples of 3x2x2, classes 5");
    ln_dataset_free(ds);
    free(ib);
    free(lbb);
}

static void test_dataset_errors(suite *t, const fixture *fx)
{
    ln_dataset *ds = NULL;
    char p[256], q[256];
    size_t sz;
    unsigned char data[24] = {0};
    ln_status st;

    uint32_t d2[2] = {3, 2};
    unsigned char *b = make_idx(0x0C, 2, d2, data, 24, &sz);
    write_raw(t, "int_images.idx", b, sz, p, sizeof p);
    free(b);
    st = ln_dataset_load_idx(p, fx->lab, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EFORMAT && ds == NULL && msg_has(t, p) && msg_has(t, "0x0C"),
          "int images -> LN_EFORMAT (must be ubyte)");
    b = make_idx(0x08, 2, d2, data, 6, &sz);
    write_raw(t, "img2d.idx", b, sz, p, sizeof p);
    free(b);
    st = ln_dataset_load_idx(p, fx->lab, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EFORMAT && msg_has(t, "found 2"), "2-D images -> LN_EFORMAT");
    b = make_idx(0x08, 2, d2, data, 6, &sz);
    write_raw(t, "lab2d.idx", b, sz, p, sizeof p);
    free(b);
    st = ln_dataset_load_idx(fx->img, p, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EFORMAT && msg_has(t, p) && msg_has(t, "1 dimension"),
          "2-D labels -> LN_EFORMAT naming the labels file");
    uint32_t d3[1] = {3};
    b = make_idx(0x09, 1, d3, data, 3, &sz);
    write_raw(t, "lab_signed.idx", b, sz, p, sizeof p);
    free(b);
    st = ln_dataset_load_idx(fx->img, p, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EFORMAT && msg_has(t, "0x09"), "signed-byte labels -> LN_EFORMAT");

    uint32_t d4[1] = {4};
    b = make_idx(0x08, 1, d4, data, 4, &sz);
    write_raw(t, "lab4.idx", b, sz, p, sizeof p);
    free(b);
    st = ln_dataset_load_idx(fx->img, p, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EFORMAT && ds == NULL && msg_has(t, fx->img) && msg_has(t, p) &&
                 msg_has(t, "holds 3 images") && msg_has(t, "holds 4 labels"),
          "3 images vs 4 labels -> LN_EFORMAT naming both files and counts");

    path_of(t, "missing-labels.idx", q, sizeof q);
    st = ln_dataset_load_idx(fx->img, q, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EIO && msg_has(t, q), "missing labels file -> LN_EIO naming it");
    st = ln_dataset_load_idx(q, fx->lab, 0, 0.0f, 1.0f, &ds, &t->err);
    CHECK(t, st == LN_EIO && msg_has(t, q), "missing images file -> LN_EIO naming it");
    st = ln_dataset_load_idx(fx->img, fx->lab, 0, 0.0f, 0.0f, &ds, &t->err);
    CHECK(t, st == LN_EINVAL && ds == NULL, "std 0 -> LN_EINVAL");
}

/* ------------------------------------------------------------ datasets from memory */

static void test_arrays_select(suite *t)
{
    float img[4 * 2] = {0, 1, 2, 3, 4, 5, 6, 7};
    int32_t lab[4] = {3, 0, 1, 0};
    ln_dataset *ds = NULL, *sel = NULL;
    ln_status st = ln_dataset_from_arrays(img, lab, 4, 1, 1, 2, &ds, &t->err);
    img[0] = 99;
    CHECK(t, st == LN_OK && ds->count == 4 && ds->classes == 4 && ds->images[0] == 0 &&
                 ds->images[7] == 7 && ds->labels[0] == 3 && ds->width == 2,
          "from_arrays copies images and labels; classes = max label + 1");
    int64_t counts[6];
    ln_dataset_class_counts(ds, counts, 6);
    CHECK(t, counts[0] == 2 && counts[1] == 1 && counts[2] == 0 && counts[3] == 1 &&
                 counts[4] == 0 && counts[5] == 0,
          "class_counts, with extra classes counted as 0");

    int64_t idx[3] = {3, 0, 3};
    st = ln_dataset_select(ds, idx, 3, &sel, &t->err);
    CHECK(t, st == LN_OK && sel->count == 3 && sel->images[0] == 6 && sel->images[1] == 7 &&
                 sel->images[2] == 0 && sel->images[5] == 7 && sel->labels[0] == 0 &&
                 sel->labels[1] == 3 && sel->classes == 4,
          "select copies samples in the given order and keeps the source's classes");
    ln_dataset_free(sel);
    int64_t badidx[2] = {1, 4};
    st = ln_dataset_select(ds, badidx, 2, &sel, &t->err);
    CHECK(t, st == LN_EINVAL && sel == NULL && msg_has(t, "indices[1] = 4"),
          "select with an index out of range -> LN_EINVAL naming it");
    ln_dataset_free(ds);

    st = ln_dataset_from_arrays(img, NULL, 2, 2, 1, 2, &ds, &t->err);
    CHECK(t, st == LN_OK && ds->classes == 1 && ds->labels[0] == 0 && ds->labels[1] == 0 &&
                 ds->channels == 2,
          "from_arrays with NULL labels: all 0, one class");
    ln_dataset_free(ds);
    lab[2] = -1;
    st = ln_dataset_from_arrays(img, lab, 4, 1, 1, 2, &ds, &t->err);
    CHECK(t, st == LN_EINVAL && ds == NULL && msg_has(t, "labels[2]"),
          "negative label -> LN_EINVAL naming it");
    st = ln_dataset_from_arrays(img, NULL, 0, 1, 1, 1, &ds, &t->err);
    CHECK(t, st == LN_EINVAL, "count 0 -> LN_EINVAL");
    st = ln_dataset_from_arrays(img, NULL, 1, 0, 1, 1, &ds, &t->err);
    CHECK(t, st == LN_EINVAL, "0 channels -> LN_EINVAL");
}

/* ------------------------------------------------------------ subsets */

/* Largest-remainder quotas, computed the slow obvious way as a reference. */
static void expected_quotas(const int64_t *counts, int k, int64_t n, int64_t *quota)
{
    int64_t total = 0, given = 0;
    for (int c = 0; c < k; c++) total += counts[c];
    int64_t rem[64];
    int taken[64] = {0};
    for (int c = 0; c < k; c++) {
        quota[c] = n * counts[c] / total;
        rem[c] = n * counts[c] % total;
        given += quota[c];
    }
    for (int64_t left = n - given; left > 0; left--) {
        int best = -1;
        for (int c = 0; c < k; c++)
            if (!taken[c] && (best < 0 || rem[c] > rem[best])) best = c;
        taken[best] = 1;
        quota[best]++;
    }
}

/* A dataset whose one pixel is the sample's index, so a subset shows what it took. */
static ln_dataset *indexed(suite *t, int64_t n, const int32_t *labels)
{
    float *img = malloc((size_t)n * sizeof *img);
    for (int64_t i = 0; i < n; i++) img[i] = (float)i;
    ln_dataset *ds = NULL;
    if (ln_dataset_from_arrays(img, labels, n, 1, 1, 1, &ds, &t->err) != LN_OK) ds = NULL;
    free(img);
    return ds;
}

/* The subset's indices are distinct, ascending, in range and match the labels. */
static int well_formed(const ln_dataset *src, const ln_dataset *sub)
{
    for (int64_t i = 0; i < sub->count; i++) {
        float v = sub->images[i];
        int64_t j = (int64_t)v;
        if ((float)j != v || j < 0 || j >= src->count) return 0;
        if (i > 0 && !(sub->images[i - 1] < v)) return 0;
        if (sub->labels[i] != src->labels[j]) return 0;
    }
    return sub->classes == src->classes;
}

static ln_dataset *draw(suite *t, const ln_dataset *src, int64_t n, int random, int stratified,
                        uint64_t seed)
{
    ln_rng rng;
    ln_rng_seed(&rng, seed, LN_STREAM_SUBSET);
    ln_dataset *out = NULL;
    if (ln_dataset_subset(src, n, random, stratified, &rng, &out, &t->err) != LN_OK) return NULL;
    return out;
}

static int same_samples(const ln_dataset *a, const ln_dataset *b)
{
    return a && b && a->count == b->count &&
           memcmp(a->images, b->images, (size_t)a->count * sizeof(float)) == 0;
}

static void test_subset(suite *t)
{
    /* 100 samples, classes 50/30/20, interleaved. */
    int32_t lab[100];
    for (int i = 0; i < 100; i++) lab[i] = i % 10 < 5 ? 0 : (i % 10 < 8 ? 1 : 2);
    ln_dataset *src = indexed(t, 100, lab);
    CHECK(t, src != NULL, "indexed dataset of 100");
    if (!src) return;

    ln_dataset *a = draw(t, src, 7, 0, 0, 1);
    int first = a && a->count == 7 && well_formed(src, a);
    for (int i = 0; first && i < 7; i++) first = a->images[i] == (float)i;
    CHECK(t, first, "subset random=0 takes the first n samples");
    ln_dataset_free(a);

    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_SUBSET);
    int64_t bad_n[3] = {0, -1, 101};
    for (int i = 0; i < 3; i++) {
        a = (ln_dataset *)src;
        ln_status st = ln_dataset_subset(src, bad_n[i], 1, 0, &rng, &a, &t->err);
        char want[32];
        snprintf(want, sizeof want, "n = %lld", (long long)bad_n[i]);
        CHECK(t, st == LN_EINVAL && a == NULL && msg_has(t, want) && msg_has(t, "holds 100"),
              "subset n = %lld -> LN_EINVAL naming n and the size", (long long)bad_n[i]);
    }
    ln_status st = ln_dataset_subset(src, 5, 0, 1, &rng, &a, &t->err);
    CHECK(t, st == LN_EINVAL, "stratified without random -> LN_EINVAL");
    st = ln_dataset_subset(src, 5, 1, 0, NULL, &a, &t->err);
    CHECK(t, st == LN_EINVAL, "random without an rng -> LN_EINVAL");

    /* random */
    a = draw(t, src, 10, 1, 0, 42);
    ln_dataset *b = draw(t, src, 10, 1, 0, 42);
    ln_dataset *c = draw(t, src, 10, 1, 0, 43);
    CHECK(t, a && b && c && a->count == 10 && well_formed(src, a) && well_formed(src, c),
          "random subset: 10 distinct ascending indices in range");
    CHECK(t, same_samples(a, b), "random subset: same seed, same indices");
    CHECK(t, a && c && !same_samples(a, c), "random subset: different seeds, different indices");
    ln_dataset_free(a);
    ln_dataset_free(b);
    ln_dataset_free(c);
    a = draw(t, src, 100, 1, 0, 5);
    int whole = a && a->count == 100 && well_formed(src, a);
    CHECK(t, whole, "random subset of n = count is the whole dataset in order");
    ln_dataset_free(a);

    /* Uniformity: over 3000 draws of 3 out of 10 each index is expected 900 times
     * (sd about 25); allow +-150. */
    ln_dataset *ten = indexed(t, 10, NULL);
    int hits[10] = {0};
    ln_rng_seed(&rng, 7, LN_STREAM_SUBSET);
    for (int r = 0; ten && r < 3000; r++) {
        ln_dataset *s = NULL;
        if (ln_dataset_subset(ten, 3, 1, 0, &rng, &s, &t->err) == LN_OK)
            for (int i = 0; i < 3; i++) hits[(int)s->images[i]]++;
        ln_dataset_free(s);
    }
    int lo = hits[0], hi = hits[0];
    for (int i = 1; i < 10; i++) {
        if (hits[i] < lo) lo = hits[i];
        if (hits[i] > hi) hi = hits[i];
    }
    CHECK(t, lo >= 750 && hi <= 1050,
          "random subset draws every index about equally often (%d..%d times, expected 900)",
          lo, hi);
    ln_dataset_free(ten);

    /* stratified */
    int64_t counts[3], want[3], src_counts[3] = {50, 30, 20};
    int strat_ok = 1;
    for (int64_t n = 1; n <= 100; n++) {
        ln_dataset *s = draw(t, src, n, 1, 1, (uint64_t)n);
        if (!s || s->count != n || !well_formed(src, s)) {
            strat_ok = 0;
        } else {
            ln_dataset_class_counts(s, counts, 3);
            expected_quotas(src_counts, 3, n, want);
            if (memcmp(counts, want, sizeof want) != 0) strat_ok = 0;
        }
        ln_dataset_free(s);
    }
    CHECK(t, strat_ok, "stratified n = 1..100 of 50/30/20: class counts are the largest-remainder quotas");
    a = draw(t, src, 10, 1, 1, 9);
    ln_dataset_class_counts(a, counts, 3);
    CHECK(t, a && counts[0] == 5 && counts[1] == 3 && counts[2] == 2,
          "stratified 10 of 50/30/20 -> 5/3/2");
    b = draw(t, src, 10, 1, 1, 9);
    c = draw(t, src, 10, 1, 1, 10);
    CHECK(t, same_samples(a, b) && c && !same_samples(a, c),
          "stratified: same seed same samples, other seed other samples");
    ln_dataset_free(a);
    ln_dataset_free(b);
    ln_dataset_free(c);
    ln_dataset_free(src);

    /* 5/3/2 with n = 7: exact 3.5/2.1/1.4 -> floors 3/2/1, the one left over goes to
     * class 0 (largest remainder). n = 3: 1.5/0.9/0.6 -> 1/0/0 + classes 1 and 2. */
    int32_t lab532[10] = {0, 1, 2, 0, 1, 0, 2, 0, 1, 0};
    src = indexed(t, 10, lab532);
    a = draw(t, src, 7, 1, 1, 3);
    ln_dataset_class_counts(a, counts, 3);
    CHECK(t, a && counts[0] == 4 && counts[1] == 2 && counts[2] == 1,
          "largest remainder: 7 of 5/3/2 -> 4/2/1");
    ln_dataset_free(a);
    a = draw(t, src, 3, 1, 1, 3);
    ln_dataset_class_counts(a, counts, 3);
    CHECK(t, a && counts[0] == 1 && counts[1] == 1 && counts[2] == 1,
          "largest remainder: 3 of 5/3/2 -> 1/1/1");
    ln_dataset_free(a);
    ln_dataset_free(src);

    /* Equal remainders: the lower class index wins. */
    int32_t lab210[3] = {2, 1, 0};
    src = indexed(t, 3, lab210);
    a = draw(t, src, 2, 1, 1, 11);
    CHECK(t, a && a->count == 2 && a->images[0] == 1.0f && a->images[1] == 2.0f,
          "ties in the remainder go to the lower class (2 of 1/1/1 -> classes 0 and 1)");
    ln_dataset_free(a);
    ln_dataset_free(src);

    /* An empty class in the middle gets nothing. */
    int32_t labgap[6] = {0, 2, 0, 2, 0, 2};
    src = indexed(t, 6, labgap);
    a = draw(t, src, 4, 1, 1, 12);
    ln_dataset_class_counts(a, counts, 3);
    CHECK(t, a && counts[0] == 2 && counts[1] == 0 && counts[2] == 2 && a->classes == 3,
          "stratified with an empty class: 4 of 3/0/3 -> 2/0/2");
    ln_dataset_free(a);
    ln_dataset_free(src);
}

/* ------------------------------------------------------------ allocation failures */

typedef struct {
    suite *t;
    const fixture *fx;
    const ln_dataset *src;
} op_ctx;

typedef ln_status (*op_fn)(op_ctx *c, ln_dataset **out);

static ln_status op_load_raw(op_ctx *c, ln_dataset **out)
{
    return ln_dataset_load_idx(c->fx->img, c->fx->lab, 0, 0.5f, 0.5f, out, &c->t->err);
}
static ln_status op_load_gz(op_ctx *c, ln_dataset **out)
{
    return ln_dataset_load_idx(c->fx->img_gz, c->fx->lab_gz, 2, 0.5f, 0.5f, out, &c->t->err);
}
static ln_status op_idx_gz(op_ctx *c, ln_dataset **out)
{
    ln_idx idx;
    memset(&idx, 0x5A, sizeof idx);
    ln_status st = ln_idx_read(c->fx->img_gz, &idx, &c->t->err);
    /* Report a failed read that left *out dirty as a non-ENOMEM status. */
    if (st != LN_OK && (idx.data || idx.count)) return LN_EINTERRUPTED;
    ln_idx_release(&idx);
    *out = NULL;
    return st;
}
static ln_status op_subset_random(op_ctx *c, ln_dataset **out)
{
    ln_rng rng;
    ln_rng_seed(&rng, 3, LN_STREAM_SUBSET);
    return ln_dataset_subset(c->src, 5, 1, 0, &rng, out, &c->t->err);
}
static ln_status op_subset_strat(op_ctx *c, ln_dataset **out)
{
    ln_rng rng;
    ln_rng_seed(&rng, 3, LN_STREAM_SUBSET);
    return ln_dataset_subset(c->src, 5, 1, 1, &rng, out, &c->t->err);
}
static ln_status op_subset_first(op_ctx *c, ln_dataset **out)
{
    return ln_dataset_subset(c->src, 5, 0, 0, NULL, out, &c->t->err);
}
static ln_status op_from_arrays(op_ctx *c, ln_dataset **out)
{
    return ln_dataset_from_arrays(c->src->images, c->src->labels, c->src->count, 1, 1, 1, out,
                                  &c->t->err);
}

/* Fails the (k+1)-th allocation and all after it, for k = 0, 1, ... until the
 * operation succeeds: every failure must be LN_ENOMEM with *out NULL. Leaks show
 * up under LeakSanitizer / valgrind. */
static void fail_each_allocation(suite *t, op_ctx *c, op_fn fn, const char *what)
{
    int ok = 1;
    long k;
    for (k = 0; k < 1000; k++) {
        ln_dataset *out = (ln_dataset *)c; /* garbage that must be overwritten */
        ln_alloc_fail_after(k);
        ln_status st = fn(c, &out);
        ln_alloc_fail_after(-1);
        if (st == LN_OK) {
            ln_dataset_free(out);
            break;
        }
        if (st != LN_ENOMEM || out != NULL) {
            ok = 0;
            break;
        }
        t->err.msg[0] = '\0';
    }
    CHECK(t, ok && k > 0 && k < 1000,
          "%s: allocation failures 0..%ld all give LN_ENOMEM and a NULL result, then success",
          what, k - 1);
}

static void test_alloc_failures(suite *t, const fixture *fx)
{
    int32_t lab[20];
    for (int i = 0; i < 20; i++) lab[i] = i % 3;
    ln_dataset *src = indexed(t, 20, lab);
    op_ctx c = {t, fx, src};
    if (!src) return;
    fail_each_allocation(t, &c, op_load_raw, "load raw IDX");
    fail_each_allocation(t, &c, op_load_gz, "load gzipped IDX");
    fail_each_allocation(t, &c, op_idx_gz, "ln_idx_read gzipped (out zeroed)");
    fail_each_allocation(t, &c, op_subset_first, "subset first-n");
    fail_each_allocation(t, &c, op_subset_random, "subset random");
    fail_each_allocation(t, &c, op_subset_strat, "subset stratified");
    fail_each_allocation(t, &c, op_from_arrays, "from_arrays");
    ln_dataset_free(src);
}

/* ------------------------------------------------------------ real MNIST */

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void check_mnist_set(suite *t, const char *dir, const char *prefix, int64_t n,
                            const int *first5, const int64_t *per_class)
{
    char ip[512], lp[512];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    ln_dataset *ds = NULL;
    const float mean = 0.1307f, std = 0.3081f;
    ln_status st = ln_dataset_load_idx(ip, lp, 0, mean, std, &ds, &t->err);
    CHECK(t, st == LN_OK && ds && ds->count == n && ds->channels == 1 && ds->height == 28 &&
                 ds->width == 28 && ds->classes == 10,
          "MNIST %s: %lld images of 1x28x28, 10 classes", prefix, (long long)n);
    if (!ds) return;
    CHECK(t, ds->labels[0] == first5[0] && ds->labels[1] == first5[1] &&
                 ds->labels[2] == first5[2] && ds->labels[3] == first5[3] &&
                 ds->labels[4] == first5[4],
          "MNIST %s: first labels %d %d %d %d %d", prefix, first5[0], first5[1], first5[2],
          first5[3], first5[4]);
    int64_t counts[10];
    ln_dataset_class_counts(ds, counts, 10);
    CHECK(t, memcmp(counts, per_class, sizeof counts) == 0, "MNIST %s: images per class", prefix);
    float lo = INFINITY, hi = -INFINITY, sample[784];
    for (int64_t k = 0; k < ds->count; k++) {
        ln_dataset_read(ds, k, 1, sample);
        for (int i = 0; i < 784; i++) {
            if (sample[i] < lo) lo = sample[i];
            if (sample[i] > hi) hi = sample[i];
        }
    }
    CHECK(t, lo == norm(0, mean, std) && hi == norm(255, mean, std),
          "MNIST %s: pixels span (0 - mean)/std .. (1 - mean)/std", prefix);

    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_SUBSET);
    ln_dataset *s = NULL;
    st = ln_dataset_subset(ds, 1000, 1, 1, &rng, &s, &t->err);
    int64_t want[10], got[10];
    expected_quotas(per_class, 10, 1000, want);
    ln_dataset_class_counts(s, got, 10);
    CHECK(t, st == LN_OK && s->count == 1000 && memcmp(got, want, sizeof want) == 0,
          "MNIST %s: stratified 1000 has the largest-remainder class quotas", prefix);
    ln_dataset_free(s);
    ln_dataset_free(ds);
}

static void test_mnist(suite *t)
{
    const char *dir = getenv("MNIST_DIR");
    if (!dir || !*dir) {
        tap_skip("MNIST_DIR not set");
        return;
    }
    const char *names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (!exists(p)) {
            tap_skip("MNIST_DIR has no %s", names[i]);
            return;
        }
    }
    static const int train5[5] = {5, 0, 4, 1, 9}, test5[5] = {7, 2, 1, 0, 4};
    static const int64_t train_counts[10] = {5923, 6742, 5958, 6131, 5842,
                                             5421, 5918, 6265, 5851, 5949};
    static const int64_t test_counts[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
    check_mnist_set(t, dir, "train", 60000, train5, train_counts);
    check_mnist_set(t, dir, "t10k", 10000, test5, test_counts);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    suite t;
    memset(&t, 0, sizeof t);
    snprintf(t.dir, sizeof t.dir, "/tmp/lunet_test_data_XXXXXX");
    if (!mkdtemp(t.dir)) {
        fprintf(stderr, "test_data: mkdtemp: %s\n", strerror(errno));
        return 2;
    }
    fixture fx;
    write_fixture(&t, &fx);

    test_idx_valid(&t, &fx);
    test_idx_errors(&t, &fx);
    test_gzip_bomb(&t);
    test_dataset_load(&t, &fx);
    test_dataset_errors(&t, &fx);
    test_arrays_select(&t);
    test_subset(&t);
    test_alloc_failures(&t, &fx);
    test_mnist(&t);

    remove_dir(t.dir);
    return tap_done(&t.checks);
}
