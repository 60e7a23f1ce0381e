/*
 * Progressive JPEG AC scans decoded straight into scaled IDCT sums (lambda_resizer/formats/jpeg_scaled.py).
 *
 * libjpeg keeps every DCT coefficient of a progressive file (128 bytes a block) until the last scan,
 * whatever the output scale. At 1/4, 3/8 or 1/2 scale a block becomes n x n pixels (n = 2, 3, 4, or
 * up to 8 for subsampled chroma), each a fixed linear combination of the coefficients: the reduced
 * IDCT. So each coefficient's value, as each scan delivers it (first scans: the value; refinement
 * scans: one more bit), is added straight into the block's n x n sums, times its weight, in 1/16
 * fixed point. What a block keeps: those sums (uint16, modular: only the final sum must fit) and,
 * for the refinement scans' correction bits, which coefficients are nonzero and their signs (two
 * 64-bit masks). 2 x 2: 24 bytes a block instead of 128.
 *
 * The entropy decoding follows libjpeg's jdphuff.c (decode_mcu_AC_first, decode_mcu_AC_refine),
 * its bit reader and its restart handling; it differs where libjpeg recovers from damage: a bad
 * Huffman code and data that runs out are errors here, and a lost restart marker is left to
 * libjpeg (the caller falls back to it). Plain C, no libc calls: the same object runs in Lambda.
 */
#include <stdint.h>

enum { OK = 0, BAD_CODE = 1, TRUNCATED = 2, LOST_RESTART = 3 };

typedef struct {
    const uint8_t *p, *end;
    uint64_t buf;  /* the last `bits` bits read, right-aligned */
    int bits;
    int fake;      /* of those, the trailing zero bits fed after the data ended (libjpeg's too) */
    int marker;    /* a marker (or the data's end) was reached: only zeros follow */
} reader;

static void fill(reader *r) {
    while (r->bits <= 56) {
        if (!r->marker && r->p < r->end) {
            uint32_t c = *r->p;
            if (c == 0xFF) {
                const uint8_t *q = r->p + 1;
                while (q < r->end && *q == 0xFF) q++; /* fill bytes */
                if (q < r->end && *q == 0x00) {
                    r->p = q + 1; /* a stuffed zero: the data byte 0xFF */
                } else {
                    r->marker = 1; /* r->p stays on the marker's first 0xFF */
                    continue;
                }
            } else {
                r->p++;
            }
            r->buf = (r->buf << 8) | c;
            r->bits += 8;
        } else {
            r->marker = 1;
            r->buf <<= 8;
            r->bits += 8;
            r->fake += 8;
        }
    }
}

static inline uint32_t get_bits(reader *r, int n) {
    if (n == 0) return 0;
    if (r->bits < n) fill(r);
    r->bits -= n;
    return (uint32_t)(r->buf >> r->bits) & ((1u << n) - 1u);
}

/* The next Huffman symbol, or -1 when no code of the table matches the next 16 bits. */
static inline int decode(reader *r, const uint16_t *lut) {
    if (r->bits < 32) fill(r);
    uint16_t e = lut[(r->buf >> (r->bits - 16)) & 0xFFFF];
    if (!e) return -1;
    r->bits -= e >> 8;
    return e & 0xFF;
}

static inline int32_t extend(uint32_t v, int s) {
    return v < (1u << (s - 1)) ? (int32_t)v - (int32_t)(1u << s) + 1 : (int32_t)v;
}

/* At an interval's end: drop the buffered bits, pass junk as libjpeg's next_marker does, and take
 * the expected restart marker. */
static int take_restart(reader *r, int number) {
    if (r->fake > r->bits) return TRUNCATED;
    r->buf = 0;
    r->bits = r->fake = 0;
    const uint8_t *q = r->p;
    for (;;) {
        while (q < r->end && *q != 0xFF) q++;
        while (q < r->end && *q == 0xFF) q++;
        if (q >= r->end) return LOST_RESTART;
        if (*q != 0x00) break;
        q++; /* FF 00 is junk here too */
    }
    if (*q != 0xD0 + number) return LOST_RESTART;
    r->p = q + 1;
    r->marker = 0;
    return OK;
}

/* Add value x weight, in 1/16, rounded (weights are in 1/16 x 2^-16: one multiply, one shift). */
static inline void add(uint16_t *sums, const int64_t *w, int npix, int32_t value) {
    for (int p = 0; p < npix; p++) sums[p] = (uint16_t)(sums[p] + (uint16_t)((value * w[p] + 32768) >> 16));
}

/*
 * Decode one AC scan of one component (its blocks in raster order, `restart` blocks an interval,
 * 0 for none) into the blocks' sums and masks.
 *
 * lut: 65536 entries by the next 16 bits, (code length << 8) | symbol, 0 for no code.
 * weights: 64 x npix, by zigzag index: the coefficient's dequantised reduced-IDCT weight x 16 x 2^16.
 * Returns OK, BAD_CODE, TRUNCATED or LOST_RESTART.
 */
int decode_ac_scan(const uint8_t *data, int64_t length, int64_t blocks, int32_t restart,
                   const uint16_t *lut, int32_t ss, int32_t se, int32_t ah, int32_t al,
                   const int64_t *weights, int32_t npix, uint16_t *sums, uint64_t *nonzero,
                   uint64_t *negative) {
    reader r = {data, data + length, 0, 0, 0, 0};
    int32_t eobrun = 0;
    const int32_t p1 = (int32_t)1 << al, m1 = -p1;
    for (int64_t b = 0; b < blocks; b++) {
        if (restart && b && b % restart == 0) {
            int rc = take_restart(&r, (int)((b / restart - 1) & 7));
            if (rc != OK) return rc;
            eobrun = 0;
        }
        uint16_t *s_b = sums + b * npix;
        uint64_t nz = nonzero[b], ng = negative[b];
        if (ah == 0) {
            if (eobrun > 0) {
                eobrun--;
                continue;
            }
            for (int k = ss; k <= se; k++) {
                int sym = decode(&r, lut);
                if (sym < 0) return BAD_CODE;
                int run = sym >> 4, s = sym & 15;
                if (s) {
                    k += run;
                    int32_t v = extend(get_bits(&r, s), s) * p1;
                    int z = k > 63 ? 63 : k; /* libjpeg's natural order is padded with 63 */
                    add(s_b, weights + z * npix, npix, v);
                    nz |= (uint64_t)1 << z;
                    if (v < 0) ng |= (uint64_t)1 << z;
                } else if (run == 15) {
                    k += 15;
                } else {
                    eobrun = (1 << run) + (int32_t)get_bits(&r, run) - 1;
                    break;
                }
            }
        } else {
            int k = ss;
            if (eobrun == 0) {
                for (; k <= se; k++) {
                    int sym = decode(&r, lut);
                    if (sym < 0) return BAD_CODE;
                    int run = sym >> 4, s = sym & 15;
                    int32_t value = 0;
                    if (s) {
                        value = get_bits(&r, 1) ? p1 : m1; /* libjpeg reads any s as 1 */
                    } else if (run != 15) {
                        eobrun = (1 << run) + (int32_t)get_bits(&r, run);
                        break;
                    }
                    /* Pass already-nonzero coefficients (a correction bit each) and `run` zero ones. */
                    do {
                        if (nz >> k & 1) {
                            if (get_bits(&r, 1)) add(s_b, weights + k * npix, npix, (ng >> k & 1) ? m1 : p1);
                        } else if (--run < 0) {
                            break;
                        }
                        k++;
                    } while (k <= se);
                    if (value) {
                        int z = k > 63 ? 63 : k;
                        add(s_b, weights + z * npix, npix, value);
                        nz |= (uint64_t)1 << z;
                        if (value < 0) ng |= (uint64_t)1 << z;
                    }
                }
            }
            if (eobrun > 0) {
                /* The band's rest: a correction bit for each nonzero coefficient, found by its mask bit. */
                uint64_t left = k <= se ? nz & (~(uint64_t)0 << k) & (~(uint64_t)0 >> (63 - se)) : 0;
                while (left) {
                    int z = __builtin_ctzll(left);
                    left &= left - 1;
                    if (get_bits(&r, 1)) add(s_b, weights + z * npix, npix, (ng >> z & 1) ? m1 : p1);
                }
                eobrun--;
            }
        }
        nonzero[b] = nz;
        negative[b] = ng;
    }
    return r.fake > r.bits ? TRUNCATED : OK;
}

/*
 * Decode one DC scan (first or refinement) into the members' MCU-padded DC grids (int16, the
 * values << al as libjpeg's coefficients). A scan of one component codes its blocks in raster order
 * (pass h = v = 1 and its block grid as across x down); an interleaved one codes MCUs of each
 * member's h x v blocks. DC categories over 11 are bad codes (8-bit samples), as in jpeg_dc.
 */
int decode_dc_scan(const uint8_t *data, int64_t length, int32_t members, const int32_t *h, const int32_t *v,
                   int16_t *const *grids, const int64_t *strides, const uint16_t *const *luts,
                   int64_t across, int64_t down, int32_t restart, int32_t ah, int32_t al) {
    reader r = {data, data + length, 0, 0, 0, 0};
    uint32_t pred[4] = {0, 0, 0, 0}; /* modular, as the int16 values they give */
    const int64_t mcus = across * down;
    for (int64_t m = 0; m < mcus; m++) {
        if (restart && m && m % restart == 0) {
            int rc = take_restart(&r, (int)((m / restart - 1) & 7));
            if (rc != OK) return rc;
            pred[0] = pred[1] = pred[2] = pred[3] = 0;
        }
        const int64_t my = m / across, mx = m % across;
        for (int c = 0; c < members; c++) {
            for (int by = 0; by < v[c]; by++) {
                int16_t *row = grids[c] + (my * v[c] + by) * strides[c] + mx * h[c];
                for (int bx = 0; bx < h[c]; bx++) {
                    if (ah == 0) {
                        int s = decode(&r, luts[c]);
                        if (s < 0 || s > 11) return BAD_CODE;
                        pred[c] += s ? (uint32_t)extend(get_bits(&r, s), s) : 0;
                        row[bx] = (int16_t)(uint16_t)(pred[c] << al);
                    } else if (get_bits(&r, 1)) {
                        row[bx] = (int16_t)(uint16_t)((uint16_t)row[bx] | (1u << al));
                    }
                }
            }
        }
    }
    return r.fake > r.bits ? TRUNCATED : OK;
}

/*
 * Write a component's plane: each block's sums plus its DC term (dc x quant x 2, in 1/16), rounded,
 * through libjpeg's range-limit table (1024 entries by value & 1023). Only the plane's own
 * width x height pixels are written (the blocks cover a little more).
 */
void finish_plane(const uint16_t *sums, int32_t n, int64_t blocks_w, const int16_t *dc, int64_t dc_stride,
                  int32_t quant_dc, const uint8_t *range_limit, uint8_t *plane, int64_t width, int64_t height) {
    const int npix = n * n;
    for (int64_t y = 0; y < height; y++) {
        const int64_t by = y / n, i = y % n;
        for (int64_t x = 0; x < width; x++) {
            const int64_t bx = x / n, j = x % n;
            const int64_t b = by * blocks_w + bx;
            int32_t total = (int32_t)(int16_t)sums[b * npix + i * n + j] + (int32_t)dc[by * dc_stride + bx] * quant_dc * 2;
            plane[y * width + x] = range_limit[((total + 8) >> 4) & 1023];
        }
    }
}
