/* idx.c - reading IDX files (the MNIST container format), raw or gzip-compressed.
 *
 * An IDX file is: two zero bytes, a type code, the number of dimensions, then one
 * big-endian uint32 per dimension, then the elements (big-endian) filling the rest
 * of the file exactly. We insist on "exactly": a file with bytes missing or left
 * over is almost always a wrong or damaged download, and silently loading it would
 * train on garbage.
 *
 * Limits: a file holding no elements (some dimension is 0) is an error, since no
 * caller can use it and it usually means a broken writer. Files larger than
 * LN_IDX_MAX_BYTES (after decompression) are refused with LN_ENOMEM, so a small
 * hostile .gz cannot make us allocate without bound.
 *
 * Reading only the first n items of a gzipped file with LN_IDX_CHECK_KEPT stops decoding
 * after them when the gzip trailer's size agrees with the size the header declares
 * (deflate decodes front to back, so the kept bytes are the same either way); a cut or
 * padded file disagrees and is decoded whole to say what is wrong.
 */
#include "lunet.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define LN_IDX_MAX_BYTES ((size_t)1 << 30) /* 1 GiB: MNIST's largest file is 47 MB */
#define LN_IDX_MAX_TEXT "1 GiB"
#define LN_IDX_FIRST_READ ((size_t)1 << 16)

static size_t idx_elem_size(int type)
{
    switch (type) {
    case 0x08: return 1; /* unsigned byte */
    case 0x09: return 1; /* signed byte */
    case 0x0B: return 2; /* short */
    case 0x0C: return 4; /* int */
    case 0x0D: return 4; /* float */
    case 0x0E: return 8; /* double */
    }
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Validates the header against the whole buffer; fills everything but hdr->data and
 * returns the header length in *header_bytes. */
static ln_status idx_header(const unsigned char *bytes, size_t size, const char *name,
                            ln_idx *hdr, size_t *header_bytes, ln_error *err)
{
    if (size == 0) return ln_fail(err, LN_EFORMAT, "%s: empty file", name);
    if (size < 4)
        return ln_fail(err, LN_EFORMAT,
                       "%s: too short for an IDX header (%zu bytes, need at least 4)", name, size);
    if (bytes[0] != 0 || bytes[1] != 0)
        return ln_fail(err, LN_EFORMAT,
                       "%s: bad magic: expected 00 00 <type> <ndim>, found %02x %02x %02x %02x",
                       name, bytes[0], bytes[1], bytes[2], bytes[3]);
    int type = bytes[2];
    size_t elem_size = idx_elem_size(type);
    if (elem_size == 0)
        return ln_fail(err, LN_EFORMAT,
                       "%s: unknown IDX type code 0x%02X (expected 0x08, 0x09, 0x0B, 0x0C, "
                       "0x0D or 0x0E)", name, (unsigned)type);
    int ndim = bytes[3];
    if (ndim < 1 || ndim > LN_MAX_DIMS)
        return ln_fail(err, LN_EFORMAT, "%s: unsupported number of dimensions %d (expected 1 to %d)",
                       name, ndim, LN_MAX_DIMS);
    size_t header = 4 + 4 * (size_t)ndim;
    if (size < header)
        return ln_fail(err, LN_EFORMAT,
                       "%s: header truncated: %d dimensions need %zu header bytes, file has %zu",
                       name, ndim, header, size);

    hdr->type = type;
    hdr->ndim = ndim;
    hdr->elem_size = elem_size;
    for (int i = 0; i < ndim; i++) hdr->dim[i] = be32(bytes + 4 + 4 * (size_t)i);
    /* Zero dimensions first: once they are excluded, a product can only grow. */
    for (int i = 0; i < ndim; i++)
        if (hdr->dim[i] == 0)
            return ln_fail(err, LN_EFORMAT, "%s: holds no items (dimension %d is 0)", name, i + 1);

    size_t count = 1, data_bytes = 0;
    int fits = 1;
    for (int i = 0; i < ndim && fits; i++) fits = ln_mul_size(count, hdr->dim[i], &count);
    if (fits) fits = ln_mul_size(count, elem_size, &data_bytes);
    if (!fits) {
        char dims[64];
        size_t used = 0;
        dims[0] = '\0';
        for (int i = 0; i < ndim && used < sizeof dims; i++) /* 4 x 11 chars fit anyway */
            used += (size_t)snprintf(dims + used, sizeof dims - used, i ? "x%lu" : "%lu",
                                     (unsigned long)hdr->dim[i]);
        return ln_fail(err, LN_EFORMAT,
                       "%s: dimension overflow: %s elements of %zu bytes do not fit in memory",
                       name, dims, elem_size);
    }
    hdr->count = count;

    size_t found = size - header;
    if (found < data_bytes)
        return ln_fail(err, LN_EFORMAT, "%s: truncated: expected %zu bytes of data, found %zu",
                       name, data_bytes, found);
    if (found > data_bytes)
        return ln_fail(err, LN_EFORMAT,
                       "%s: %zu trailing bytes after the %zu bytes of data the header declares",
                       name, found - data_bytes, data_bytes);
    *header_bytes = header;
    return LN_OK;
}

ln_status ln_idx_parse(const unsigned char *bytes, size_t size, const char *name, ln_idx *out,
                       ln_error *err)
{
    if (!name) name = "<memory>";
    if (!out) return ln_fail(err, LN_EINVAL, "%s: output is NULL", name);
    memset(out, 0, sizeof *out);
    if (!bytes && size > 0) return ln_fail(err, LN_EINVAL, "%s: bytes is NULL", name);

    ln_idx hdr;
    memset(&hdr, 0, sizeof hdr);
    size_t header = 0;
    ln_status st = idx_header(bytes, size, name, &hdr, &header, err);
    if (st != LN_OK) return st;
    size_t data_bytes = size - header;
    hdr.data = ln_alloc(data_bytes);
    if (!hdr.data)
        return ln_fail(err, LN_ENOMEM, "%s: cannot allocate %zu bytes of data", name, data_bytes);
    memcpy(hdr.data, bytes + header, data_bytes);
    hdr.file_items = hdr.dim[0];
    *out = hdr;
    return LN_OK;
}

void ln_idx_release(ln_idx *idx)
{
    if (!idx) return;
    ln_dealloc(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* Replaces *buf (holding len bytes) by a block of new_cap bytes with the same start. */
static int grow(unsigned char **buf, size_t len, size_t new_cap)
{
    unsigned char *bigger = ln_alloc(new_cap);
    if (!bigger) return 0;
    if (len) memcpy(bigger, *buf, len);
    ln_dealloc(*buf);
    *buf = bigger;
    return 1;
}

/* The next capacity: doubling, but one byte past the limit at most, which is
 * enough to notice that the limit was exceeded. */
static size_t next_cap(size_t cap)
{
    size_t most = LN_IDX_MAX_BYTES + 1;
    return cap >= most / 2 ? most : cap * 2;
}

static ln_status too_big(const char *path, const char *what, ln_error *err)
{
    return ln_fail(err, LN_ENOMEM, "%s: %s exceeds the limit of " LN_IDX_MAX_TEXT " (%zu bytes)",
                   path, what, LN_IDX_MAX_BYTES);
}

/* Reads the whole file into a fresh block; *out_buf is NULL on failure. */
static ln_status read_file(const char *path, unsigned char **out_buf, size_t *out_len,
                           ln_error *err)
{
    *out_buf = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ln_fail(err, LN_EIO, "%s: cannot open: %s", path, strerror(errno));

    /* Knowing the size up front saves regrowing; one spare byte lets fread report
     * end-of-file without another round. Pipes and the like get a guess. */
    size_t cap = LN_IDX_FIRST_READ;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) {
        if ((unsigned long long)sb.st_size > LN_IDX_MAX_BYTES) {
            fclose(f);
            return too_big(path, "file size", err);
        }
        cap = (size_t)sb.st_size + 1;
    }
    unsigned char *buf = ln_alloc(cap);
    if (!buf) {
        fclose(f);
        return ln_fail(err, LN_ENOMEM, "%s: cannot allocate %zu bytes to read it", path, cap);
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap > LN_IDX_MAX_BYTES) {
                ln_dealloc(buf);
                fclose(f);
                return too_big(path, "file size", err);
            }
            size_t bigger = next_cap(cap);
            if (!grow(&buf, len, bigger)) {
                ln_dealloc(buf);
                fclose(f);
                return ln_fail(err, LN_ENOMEM, "%s: cannot allocate %zu bytes to read it", path,
                               bigger);
            }
            cap = bigger;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0 || len < cap) {
            if (ferror(f)) {
                int e = errno;
                ln_dealloc(buf);
                fclose(f);
                return ln_fail(err, LN_EIO, "%s: read error: %s", path, strerror(e));
            }
            if (feof(f)) break;
        }
    }
    fclose(f);
    if (len > LN_IDX_MAX_BYTES) {
        ln_dealloc(buf);
        return too_big(path, "file size", err);
    }
    *out_buf = buf;
    *out_len = len;
    return LN_OK;
}

/* zlib's own allocations go through ln_alloc too, so failure injection reaches them. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    size_t bytes;
    if (!ln_mul_size(items, size, &bytes)) return Z_NULL;
    return ln_alloc(bytes);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    ln_dealloc(p);
}

/* Decompresses a whole gzip file (one or more concatenated members, as gzip(1)
 * writes with `cat a.gz b.gz`) into a fresh block. */
/* The bytes worth storing when only the first keep_items items are wanted: the header
 * plus those items, once the header has been decoded (len bytes so far); 0 while it is
 * not known yet or when everything must be kept (then the usual checks report any
 * problem with the header). */
static size_t kept_prefix(const unsigned char *buf, size_t len, size_t keep_items)
{
    if (keep_items == 0 || len < 4) return 0;
    size_t elem = idx_elem_size(buf[2]);
    int ndim = buf[3];
    if (elem == 0 || ndim < 1 || ndim > LN_MAX_DIMS) return SIZE_MAX;
    size_t header = 4 + 4 * (size_t)ndim;
    if (len < header) return 0;
    if (be32(buf + 4) <= keep_items) return SIZE_MAX;
    size_t item = elem, bytes;
    for (int i = 1; i < ndim; i++)
        if (!ln_mul_size(item, be32(buf + 4 + 4 * (size_t)i), &item)) return SIZE_MAX;
    if (!ln_mul_size(item, keep_items, &bytes) || bytes > SIZE_MAX - header) return SIZE_MAX;
    return header + bytes;
}

/* The decoded length the IDX header at buf declares for the whole file (header and every
 * item), once it has been decoded (len bytes so far); 0 while unknown or not a sane header. */
static size_t declared_size(const unsigned char *buf, size_t len)
{
    if (len < 4) return 0;
    size_t elem = idx_elem_size(buf[2]);
    int ndim = buf[3];
    if (elem == 0 || ndim < 1 || ndim > LN_MAX_DIMS) return 0;
    size_t header = 4 + 4 * (size_t)ndim, bytes = elem;
    if (len < header) return 0;
    for (int i = 0; i < ndim; i++)
        if (!ln_mul_size(bytes, be32(buf + 4 + 4 * (size_t)i), &bytes)) return 0;
    return bytes <= LN_IDX_MAX_BYTES - header ? header + bytes : 0;
}

/* Counts the bytes the stream zs still decodes (through all following members), on a
 * copy of it, stopping once more than `most`; input[in_pos..] is not fed to zs yet.
 * Corrupt data just ends the count: the real decoding reports it. */
static ln_status count_rest(z_stream *zs, const unsigned char *in, size_t in_size, size_t in_pos,
                            size_t most, const char *path, size_t *rest, ln_error *err)
{
    z_stream probe;
    int zr = inflateCopy(&probe, zs);
    if (zr != Z_OK)
        return ln_fail(err, zr == Z_MEM_ERROR ? LN_ENOMEM : LN_EIO,
                       "%s: cannot copy the gzip decoder (zlib error %d)", path, zr);
    unsigned char scratch[1 << 14];
    size_t n = 0;
    while (n <= most) {
        if (probe.avail_in == 0 && in_pos < in_size) {
            size_t chunk = in_size - in_pos;
            if (chunk > UINT_MAX) chunk = UINT_MAX;
            probe.next_in = (Bytef *)(uintptr_t)(in + in_pos);
            probe.avail_in = (uInt)chunk;
            in_pos += chunk;
        }
        probe.next_out = scratch;
        probe.avail_out = sizeof scratch;
        zr = inflate(&probe, Z_NO_FLUSH);
        n += sizeof scratch - probe.avail_out;
        if (zr == Z_STREAM_END) {
            if (probe.avail_in == 0 && in_pos == in_size) break;
            if (inflateReset(&probe) != Z_OK) break;
        } else if (zr != Z_OK && !(zr == Z_BUF_ERROR && (probe.avail_in > 0 || in_pos < in_size))) {
            break;
        }
    }
    inflateEnd(&probe);
    *rest = n;
    return LN_OK;
}

/* The last gzip member's trailer: its decoded size mod 2^32 (little-endian, the last
 * 4 bytes). in_size >= 18 (the smallest gzip member). */
static uint32_t gzip_trailer_size(const unsigned char *in, size_t in_size)
{
    const unsigned char *t = in + in_size - 4;
    return (uint32_t)t[0] | ((uint32_t)t[1] << 8) | ((uint32_t)t[2] << 16) | ((uint32_t)t[3] << 24);
}

static ln_status gunzip(const unsigned char *in, size_t in_size, const char *path,
                        size_t keep_items, ln_idx_check check, unsigned char **out_buf,
                        size_t *out_len, size_t *out_total, ln_error *err)
{
    *out_buf = NULL;
    *out_len = 0;
    *out_total = 0;
    size_t keep = 0;          /* bytes to store; 0 = not known yet, SIZE_MAX = all */
    size_t discarded = 0;     /* decoded past `keep`, counted but not stored */
    unsigned char scratch[1 << 14];

    /* The gzip trailer stores the uncompressed size mod 2^32: a good first guess
     * (plus one spare byte so the end is seen without regrowing), never trusted
     * beyond the limit. */
    size_t cap = in_size * 4 > LN_IDX_FIRST_READ ? in_size * 4 : LN_IDX_FIRST_READ;
    if (in_size >= 18) {
        size_t hint = gzip_trailer_size(in, in_size);
        /* deflate expands at most 1032:1, so a larger claim is a lie: ignore it rather
         * than allocate up to the limit for a few hostile bytes */
        if (hint > 0 && hint <= LN_IDX_MAX_BYTES && hint / 1032 <= in_size) cap = hint + 1;
        /* a prefix is wanted: grow from small instead of reserving the whole file */
        if (keep_items > 0) cap = LN_IDX_FIRST_READ;
    }
    if (cap > LN_IDX_MAX_BYTES + 1) cap = LN_IDX_MAX_BYTES + 1;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    zs.opaque = Z_NULL;
    int zr = inflateInit2(&zs, 15 + 32); /* 15 + 32: full window, gzip or zlib header */
    if (zr != Z_OK) {
        if (zr == Z_MEM_ERROR)
            return ln_fail(err, LN_ENOMEM, "%s: cannot allocate the gzip decoder", path);
        return ln_fail(err, LN_EIO, "%s: cannot start the gzip decoder (zlib error %d)", path, zr);
    }
    unsigned char *buf = ln_alloc(cap);
    if (!buf) {
        inflateEnd(&zs);
        return ln_fail(err, LN_ENOMEM, "%s: cannot allocate %zu bytes to decompress it", path,
                       cap);
    }

    ln_status st = LN_OK;
    size_t in_pos = 0, len = 0;
    for (;;) {
        /* zlib counts in uInt, so very large buffers are fed in slices. */
        if (zs.avail_in == 0 && in_pos < in_size) {
            size_t chunk = in_size - in_pos;
            if (chunk > UINT_MAX) chunk = UINT_MAX;
            zs.next_in = (Bytef *)(uintptr_t)(in + in_pos); /* zlib never writes input */
            zs.avail_in = (uInt)chunk;
            in_pos += chunk;
        }
        if (keep == 0) keep = kept_prefix(buf, len, keep_items);
        if (keep == 0 && keep_items == 0) keep = SIZE_MAX;
        const int discarding = keep != 0 && keep != SIZE_MAX && len >= keep;
        if (discarding && discarded == 0 && check == LN_IDX_CHECK_KEPT && in_size >= 18) {
            /* The kept items are decoded: stop here when the trailer's size (mod 2^32)
             * agrees with the header's; else decode the rest below to report it. */
            const size_t whole = declared_size(buf, len);
            if (whole > len && (uint32_t)whole == gzip_trailer_size(in, in_size)) {
                discarded = whole - len;
                break;
            }
        }
        if (discarding) {
            zs.next_out = scratch;
            zs.avail_out = sizeof scratch;
            zr = inflate(&zs, Z_NO_FLUSH);
            discarded += sizeof scratch - zs.avail_out;
            if (len + discarded > LN_IDX_MAX_BYTES) {
                st = too_big(path, "decompressed size", err);
                break;
            }
        } else {
        if (len == cap) {
            /* Full. The limit is checked before growing: a prefix has a known size;
             * otherwise the rest is counted first on a copy of the stream (decoded
             * twice, but only when the trailer's size was wrong), so a gzip bomb is
             * refused with the memory it already has instead of growing past the limit. */
            size_t bigger;
            if (keep != 0 && keep != SIZE_MAX && keep <= LN_IDX_MAX_BYTES) {
                bigger = keep + 1;
            } else {
                size_t rest = 0;
                st = count_rest(&zs, in, in_size, in_pos, LN_IDX_MAX_BYTES - len + 1, path, &rest, err);
                if (st) break;
                if (len + rest > LN_IDX_MAX_BYTES) {
                    st = too_big(path, "decompressed size", err);
                    break;
                }
                bigger = len + rest + 1; /* one spare byte: the end is seen without regrowing */
            }
            if (!grow(&buf, len, bigger)) {
                st = ln_fail(err, LN_ENOMEM, "%s: cannot allocate %zu bytes to decompress it",
                             path, bigger);
                break;
            }
            cap = bigger;
        }
        size_t room = cap - len;
        if (room > UINT_MAX) room = UINT_MAX;
        zs.next_out = buf + len;
        zs.avail_out = (uInt)room;
        zr = inflate(&zs, Z_NO_FLUSH);
        len += room - zs.avail_out;
        if (len > LN_IDX_MAX_BYTES) {
            st = too_big(path, "decompressed size", err);
            break;
        }
        }
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0 && in_pos == in_size) break;
            /* More input after a complete member: decode it as the next member;
             * anything that is not one is reported as corrupt below. */
            if (inflateReset(&zs) != Z_OK) {
                st = ln_fail(err, LN_EIO, "%s: cannot restart the gzip decoder", path);
                break;
            }
            continue;
        }
        if (zr == Z_OK) continue;
        if (zr == Z_BUF_ERROR) {
            /* No progress: either out of output room (grown above) or out of input. */
            if (zs.avail_in == 0 && in_pos == in_size) {
                st = ln_fail(err, LN_EFORMAT,
                             "%s: gzip data is truncated (ends after %zu decompressed bytes)",
                             path, len + discarded);
                break;
            }
            continue;
        }
        if (zr == Z_MEM_ERROR) {
            st = ln_fail(err, LN_ENOMEM, "%s: out of memory while decompressing", path);
            break;
        }
        st = ln_fail(err, LN_EFORMAT, "%s: corrupt gzip data (%s)", path,
                     zs.msg ? zs.msg : "zlib error");
        break;
    }
    inflateEnd(&zs);
    if (st != LN_OK) {
        ln_dealloc(buf);
        return st;
    }
    *out_buf = buf;
    *out_len = len;
    *out_total = len + discarded;
    return LN_OK;
}

ln_status ln_idx_read(const char *path, ln_idx *out, ln_error *err)
{
    return ln_idx_read_items(path, 0, LN_IDX_CHECK_WHOLE, out, err);
}

ln_status ln_idx_read_items(const char *path, size_t max_items, ln_idx_check check, ln_idx *out,
                            ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "ln_idx_read: output is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return ln_fail(err, LN_EINVAL, "ln_idx_read: path is NULL");

    unsigned char *bytes = NULL;
    size_t size = 0;
    ln_status st = read_file(path, &bytes, &size, err);
    if (st != LN_OK) return st;
    size_t total = size; /* the decoded file's length; only `size` bytes are in memory */

    /* IDX files start with 00 00, so the gzip magic cannot be mistaken for one. */
    if (size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
        unsigned char *plain = NULL;
        size_t plain_size = 0;
        st = gunzip(bytes, size, path, max_items, check, &plain, &plain_size, &total, err);
        ln_dealloc(bytes);
        if (st != LN_OK) return st;
        bytes = plain;
        size = plain_size;
    }

    ln_idx hdr;
    memset(&hdr, 0, sizeof hdr);
    size_t header = 0;
    st = idx_header(bytes, total, path, &hdr, &header, err);
    if (st != LN_OK) {
        ln_dealloc(bytes);
        return st;
    }
    hdr.file_items = hdr.dim[0];
    if (max_items > 0 && max_items < hdr.dim[0]) {
        hdr.count = hdr.count / hdr.dim[0] * max_items;
        hdr.dim[0] = (uint32_t)max_items;
        size = header + hdr.count * hdr.elem_size; /* what a raw file keeps, too */
    }
    /* Keep the block we already have instead of copying tens of megabytes: slide the
     * data down over the header (the block stays ours to free via ln_dealloc). */
    memmove(bytes, bytes + header, size - header);
    hdr.data = bytes;
    *out = hdr;
    return LN_OK;
}
