/*
 * Lossless WebP (VP8L) decoded a row at a time, for lambda_resizer/formats/webp_lossless.py.
 *
 * libwebp decodes a VP8L image into one 32-bit ARGB plane of the whole image (96 MB at 24 MP)
 * before its transforms and scaler see the first row, because a backward reference may copy from
 * any earlier pixel. The format bounds how far back: a distance is at most 1,048,456 pixels
 * (prefix code 39: (3 << 18) + 2^18 - 120) or 7 rows and 8 columns, and what is decoded but not
 * yet handed out is at most a row and one copy (4,096 pixels). So the coded pixels are kept in a
 * ring of 2^20 pixels (4 MB), and each row is inverse-transformed (colour indexing,
 * subtract green, cross colour, predictor, in reverse order of the bitstream) and handed out as
 * soon as it is complete: memory is the ring, the transforms' sub-images and Huffman tables, and
 * a few rows, whatever the image size.
 *
 * The bitstream logic is a transcription of libwebp's src/dec/vp8l_dec.c, its bit reader
 * (src/utils/bit_reader_utils.c), table builder (src/utils/huffman_utils.c) and inverse
 * transforms (src/dsp/lossless.c), so valid files give libwebp's pixels exactly and files libwebp
 * rejects are rejected (tests/lambda_resizer/formats/test_webp_lossless.py compares them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h> /* psadbw for the Select predictor: part of every x86_64 CPU */
#endif

enum { OK = 0, BITSTREAM = 1, TRUNCATED = 2, NOMEM = 3, TOO_MANY_TABLES = 4 };

#define NUM_LITERAL_CODES 256
#define NUM_LENGTH_CODES 24
#define NUM_DISTANCE_CODES 40
#define MAX_CACHE_BITS 11
#define MAX_ALPHABET (NUM_LITERAL_CODES + NUM_LENGTH_CODES + (1 << MAX_CACHE_BITS))
#define TABLE_BITS 8
#define LENGTHS_TABLE_BITS 7
#define MAX_CODE_LENGTH 15
#define RING_BITS 20
/* Huffman tables kept for one image at most. The format allows 65,536 groups of five codes (up
 * to 20 KB of tables each: 1.3 GB); libwebp's encoder writes at most 2,600. A file asking for more
 * than this is refused rather than allowed to exhaust the function's memory. */
#ifndef MAX_TABLE_BYTES /* lowered by a test */
#define MAX_TABLE_BYTES ((int64_t)192 << 20)
#endif

static const uint16_t kAlphabetSize[5] = {NUM_LITERAL_CODES + NUM_LENGTH_CODES, NUM_LITERAL_CODES,
                                          NUM_LITERAL_CODES, NUM_LITERAL_CODES, NUM_DISTANCE_CODES};
static const uint8_t kCodeLengthCodeOrder[19] = {17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t kCodeLengthExtraBits[3] = {2, 3, 7};
static const uint8_t kCodeLengthRepeatOffsets[3] = {3, 3, 11};
static const uint8_t kCodeToPlane[120] = {
    0x18, 0x07, 0x17, 0x19, 0x28, 0x06, 0x27, 0x29, 0x16, 0x1a, 0x26, 0x2a, 0x38, 0x05, 0x37, 0x39, 0x15, 0x1b, 0x36, 0x3a,
    0x25, 0x2b, 0x48, 0x04, 0x47, 0x49, 0x14, 0x1c, 0x35, 0x3b, 0x46, 0x4a, 0x24, 0x2c, 0x58, 0x45, 0x4b, 0x34, 0x3c, 0x03,
    0x57, 0x59, 0x13, 0x1d, 0x56, 0x5a, 0x23, 0x2d, 0x44, 0x4c, 0x55, 0x5b, 0x33, 0x3d, 0x68, 0x02, 0x67, 0x69, 0x12, 0x1e,
    0x66, 0x6a, 0x22, 0x2e, 0x54, 0x5c, 0x43, 0x4d, 0x65, 0x6b, 0x32, 0x3e, 0x78, 0x01, 0x77, 0x79, 0x53, 0x5d, 0x11, 0x1f,
    0x64, 0x6c, 0x42, 0x4e, 0x76, 0x7a, 0x21, 0x2f, 0x75, 0x7b, 0x31, 0x3f, 0x63, 0x6d, 0x52, 0x5e, 0x00, 0x74, 0x7c, 0x41,
    0x4f, 0x10, 0x20, 0x62, 0x6e, 0x30, 0x73, 0x7d, 0x51, 0x5f, 0x40, 0x72, 0x7e, 0x61, 0x6f, 0x50, 0x71, 0x7f, 0x60, 0x70};
/* The most table entries one group's five codes need with 8-bit root tables (libwebp's kTableSize). */
#define FIXED_TABLE_SIZE (630 * 3 + 410)
static const uint16_t kTableSize[12] = {
    FIXED_TABLE_SIZE + 654, FIXED_TABLE_SIZE + 656, FIXED_TABLE_SIZE + 658, FIXED_TABLE_SIZE + 662,
    FIXED_TABLE_SIZE + 670, FIXED_TABLE_SIZE + 686, FIXED_TABLE_SIZE + 718, FIXED_TABLE_SIZE + 782,
    FIXED_TABLE_SIZE + 912, FIXED_TABLE_SIZE + 1168, FIXED_TABLE_SIZE + 1680, FIXED_TABLE_SIZE + 2704};

/* ---- bit reader (libwebp's VP8LBitReader) ---- */

typedef struct {
    uint64_t val;
    const uint8_t *buf;
    size_t len, pos;
    int bit_pos, eos;
} BitReader;

static void br_init(BitReader *br, const uint8_t *start, size_t length) {
    br->buf = start;
    br->len = length;
    br->bit_pos = 0;
    br->eos = 0;
    br->val = 0;
    size_t n = length > 8 ? 8 : length;
    for (size_t i = 0; i < n; i++) br->val |= (uint64_t)start[i] << (8 * i);
    br->pos = n;
}

static inline int br_is_eos(const BitReader *br) { return br->eos || (br->pos == br->len && br->bit_pos > 64); }

static inline void br_shift(BitReader *br) {
    while (br->bit_pos >= 8 && br->pos < br->len) {
        br->val >>= 8;
        br->val |= (uint64_t)br->buf[br->pos] << 56;
        br->pos++;
        br->bit_pos -= 8;
    }
    if (br_is_eos(br)) {
        br->eos = 1;
        br->bit_pos = 0;
    }
}

static inline uint32_t br_prefetch(const BitReader *br) { return (uint32_t)(br->val >> (br->bit_pos & 63)); }

static inline void br_fill(BitReader *br) {
    if (br->bit_pos >= 32) br_shift(br);
}

static inline uint32_t br_read(BitReader *br, int n) {
    if (!br->eos && n <= 24) {
        const uint32_t v = br_prefetch(br) & ((1u << n) - 1u);
        br->bit_pos += n;
        br_shift(br);
        return v;
    }
    br->eos = 1;
    br->bit_pos = 0;
    return 0;
}

/* ---- Huffman tables (libwebp's BuildHuffmanTable, 2-level, reversed codes) ---- */

typedef struct {
    uint8_t bits;
    uint16_t value;
} HCode;

static inline uint32_t next_key(uint32_t key, int len) {
    uint32_t step = 1u << (len - 1);
    while (key & step) step >>= 1;
    return step ? (key & (step - 1)) + step : key;
}

static inline void replicate(HCode *table, int step, int end, HCode code) {
    do {
        end -= step;
        table[end] = code;
    } while (end > 0);
}

static int next_table_bits(const int *count, int len, int root_bits) {
    int left = 1 << (len - root_bits);
    while (len < MAX_CODE_LENGTH) {
        left -= count[len];
        if (left <= 0) break;
        ++len;
        left <<= 1;
    }
    return len - root_bits;
}

/* Build into root_table (NULL: only check); return its size, 0 for an invalid code. */
static int build_table(HCode *root_table, int root_bits, const int *code_lengths, int size, uint16_t *sorted) {
    HCode *table = root_table;
    int total_size = 1 << root_bits;
    int count[MAX_CODE_LENGTH + 1] = {0};
    int offset[MAX_CODE_LENGTH + 1];
    int len, symbol;
    for (symbol = 0; symbol < size; ++symbol) {
        if (code_lengths[symbol] > MAX_CODE_LENGTH) return 0;
        ++count[code_lengths[symbol]];
    }
    if (count[0] == size) return 0;
    offset[1] = 0;
    for (len = 1; len < MAX_CODE_LENGTH; ++len) {
        if (count[len] > (1 << len)) return 0;
        offset[len + 1] = offset[len] + count[len];
    }
    for (symbol = 0; symbol < size; ++symbol) {
        const int l = code_lengths[symbol];
        if (l > 0) {
            if (offset[l] >= size) return 0;
            sorted[offset[l]++] = (uint16_t)symbol;
        }
    }
    if (offset[MAX_CODE_LENGTH] == 1) {
        if (root_table) {
            HCode code = {0, sorted[0]};
            replicate(table, 1, total_size, code);
        }
        return total_size;
    }
    {
        int step;
        uint32_t low = 0xffffffffu, mask = (uint32_t)total_size - 1, key = 0;
        int num_nodes = 1, num_open = 1, table_bits = root_bits, table_size = 1 << table_bits;
        symbol = 0;
        for (len = 1, step = 2; len <= root_bits; ++len, step <<= 1) {
            num_open <<= 1;
            num_nodes += num_open;
            num_open -= count[len];
            if (num_open < 0) return 0;
            for (; count[len] > 0; --count[len]) {
                if (root_table) {
                    HCode code = {(uint8_t)len, sorted[symbol]};
                    replicate(&table[key], step, table_size, code);
                }
                symbol++;
                key = next_key(key, len);
            }
        }
        for (len = root_bits + 1, step = 2; len <= MAX_CODE_LENGTH; ++len, step <<= 1) {
            num_open <<= 1;
            num_nodes += num_open;
            num_open -= count[len];
            if (num_open < 0) return 0;
            for (; count[len] > 0; --count[len]) {
                if ((key & mask) != low) {
                    if (root_table) table += table_size;
                    table_bits = next_table_bits(count, len, root_bits);
                    table_size = 1 << table_bits;
                    total_size += table_size;
                    low = key & mask;
                    if (root_table) {
                        root_table[low].bits = (uint8_t)(table_bits + root_bits);
                        root_table[low].value = (uint16_t)((table - root_table) - low);
                    }
                }
                if (root_table) {
                    HCode code = {(uint8_t)(len - root_bits), sorted[symbol]};
                    replicate(&table[key >> root_bits], step, table_size, code);
                }
                symbol++;
                key = next_key(key, len);
            }
        }
        if (num_nodes != 2 * offset[MAX_CODE_LENGTH] - 1) return 0;
    }
    return total_size;
}

static inline int read_symbol(const HCode *table, BitReader *br) {
    uint32_t val = br_prefetch(br);
    table += val & ((1u << TABLE_BITS) - 1);
    const int nbits = table->bits - TABLE_BITS;
    if (nbits > 0) {
        br->bit_pos += TABLE_BITS;
        val = br_prefetch(br);
        table += table->value;
        table += val & ((1u << nbits) - 1);
    }
    br->bit_pos += table->bits;
    return table->value;
}

/* ---- the decoder ---- */

typedef struct {
    HCode *htrees[5];
} Group;

typedef struct {
    int xsize, ysize;
    int cache_bits;
    uint32_t *cache;
    int meta_bits, meta_xsize;
    uint32_t meta_mask;
    uint32_t *meta; /* group of each meta block (NULL: one group) */
    int ngroups;
    Group *groups;
    HCode *pool;
} Stream;

typedef struct {
    int type, bits, xsize, ysize;
    uint32_t *data;
} Transform;

enum { PREDICTOR = 0, CROSS_COLOR = 1, SUBTRACT_GREEN = 2, COLOR_INDEXING = 3 };

typedef struct {
    BitReader br;
    int status;
    int64_t held; /* bytes of sub-images and Huffman tables kept for the main image */
    int width, height, has_alpha;
    int ntransforms;
    unsigned seen;
    Transform tr[4];
    Stream main;
    /* main image state */
    uint32_t *ring;
    uint64_t ring_mask;
    int64_t pos, total;
    int col, row;
    const Group *group;
    int out_row;
    uint32_t *a, *b; /* row buffers, width each */
    uint32_t *pred;  /* predictor rows: previous then current, its width each */
    int *code_lengths;
    uint16_t *sorted;
} Dec;

static int fail(Dec *d, int status) {
    if (d->status == OK) d->status = status;
    return 0;
}

static inline int sub_sample(int size, int bits) { return (size + (1 << bits) - 1) >> bits; }

static void free_stream(Stream *s) {
    free(s->cache);
    free(s->meta);
    free(s->groups);
    free(s->pool);
    memset(s, 0, sizeof(*s));
}

static int read_code_lengths(Dec *d, const int *cl_code_lengths, int num_symbols, int *code_lengths) {
    BitReader *br = &d->br;
    HCode table[1 << LENGTHS_TABLE_BITS];
    uint16_t sorted[19];
    int prev_code_len = 8, max_symbol, symbol = 0;
    if (!build_table(table, LENGTHS_TABLE_BITS, cl_code_lengths, 19, sorted)) return fail(d, BITSTREAM);
    if (br_read(br, 1)) {
        const int length_nbits = 2 + 2 * (int)br_read(br, 3);
        max_symbol = 2 + (int)br_read(br, length_nbits);
        if (max_symbol > num_symbols) return fail(d, BITSTREAM);
    } else {
        max_symbol = num_symbols;
    }
    while (symbol < num_symbols) {
        if (max_symbol-- == 0) break;
        br_fill(br);
        const HCode *p = &table[br_prefetch(br) & ((1u << LENGTHS_TABLE_BITS) - 1)];
        br->bit_pos += p->bits;
        const int code_len = p->value;
        if (code_len < 16) {
            code_lengths[symbol++] = code_len;
            if (code_len != 0) prev_code_len = code_len;
        } else {
            const int slot = code_len - 16;
            int repeat = (int)br_read(br, kCodeLengthExtraBits[slot]) + kCodeLengthRepeatOffsets[slot];
            if (symbol + repeat > num_symbols) return fail(d, BITSTREAM);
            const int length = code_len == 16 ? prev_code_len : 0;
            while (repeat-- > 0) code_lengths[symbol++] = length;
        }
    }
    return 1;
}

/* Read one code into table (NULL: check only); return its table size, 0 on error. */
static int read_code(Dec *d, int alphabet_size, HCode *table) {
    BitReader *br = &d->br;
    int *code_lengths = d->code_lengths;
    int ok;
    memset(code_lengths, 0, MAX_ALPHABET * sizeof(*code_lengths));
    if (br_read(br, 1)) { /* simple code */
        const int num_symbols = (int)br_read(br, 1) + 1;
        const int first_bits = br_read(br, 1) ? 8 : 1;
        code_lengths[br_read(br, first_bits)] = 1;
        if (num_symbols == 2) code_lengths[br_read(br, 8)] = 1;
        ok = 1;
    } else {
        int cl_code_lengths[19] = {0};
        const int num_codes = (int)br_read(br, 4) + 4;
        for (int i = 0; i < num_codes; ++i) cl_code_lengths[kCodeLengthCodeOrder[i]] = (int)br_read(br, 3);
        ok = read_code_lengths(d, cl_code_lengths, alphabet_size, code_lengths);
    }
    ok = ok && !br->eos;
    int size = 0;
    /* Checked before it is built, as libwebp's VP8LBuildHuffmanTable does: an incomplete code is
     * only found invalid at the end of a build, and one can need more table than a complete code of
     * its alphabet (an incomplete distance code: over 500 entries, the group's tables keep 410). */
    if (ok) size = build_table(NULL, TABLE_BITS, code_lengths, alphabet_size, d->sorted);
    if (size) build_table(table, TABLE_BITS, code_lengths, alphabet_size, d->sorted);
    if (!ok || size == 0) {
        fail(d, br->eos ? TRUNCATED : BITSTREAM);
        return 0;
    }
    return size;
}

static int decode_image(Dec *d, int xsize, int ysize, uint32_t **out);

static int read_codes(Dec *d, Stream *s, int allow_meta) {
    BitReader *br = &d->br;
    int max_groups = 1, ngroups = 1;
    int *mapping = NULL;
    if (allow_meta && br_read(br, 1)) {
        const int bits = 2 + (int)br_read(br, 3);
        const int mx = sub_sample(s->xsize, bits), my = sub_sample(s->ysize, bits);
        uint32_t *image = NULL;
        if (!decode_image(d, mx, my, &image)) return 0;
        s->meta = image;
        s->meta_bits = bits;
        s->meta_xsize = mx;
        const int64_t pixels = (int64_t)mx * my;
        for (int64_t i = 0; i < pixels; ++i) {
            const int g = (int)((image[i] >> 8) & 0xffff);
            image[i] = (uint32_t)g;
            if (g >= max_groups) max_groups = g + 1;
        }
        /* Only the groups the image uses are kept (each is up to 18 KB of tables). */
        mapping = (int *)malloc((size_t)max_groups * sizeof(int));
        if (!mapping) return fail(d, NOMEM);
        memset(mapping, 0xff, (size_t)max_groups * sizeof(int));
        ngroups = 0;
        for (int64_t i = 0; i < pixels; ++i) {
            int *m = &mapping[image[i]];
            if (*m == -1) *m = ngroups++;
            image[i] = (uint32_t)*m;
        }
    }
    s->meta_mask = s->meta_bits ? (1u << s->meta_bits) - 1 : ~0u;
    if (br->eos) {
        free(mapping);
        return fail(d, TRUNCATED);
    }
    const int table_size = kTableSize[s->cache_bits];
    if ((int64_t)ngroups * table_size * (int64_t)sizeof(HCode) > MAX_TABLE_BYTES) {
        free(mapping);
        return fail(d, TOO_MANY_TABLES);
    }
    s->groups = (Group *)calloc((size_t)ngroups, sizeof(Group));
    s->pool = (HCode *)malloc((size_t)ngroups * table_size * sizeof(HCode));
    d->held += (int64_t)ngroups * (table_size * (int64_t)sizeof(HCode) + (int64_t)sizeof(Group));
    HCode *scratch = (HCode *)malloc((size_t)table_size * sizeof(HCode));
    int ok = s->groups && s->pool && scratch;
    if (!ok) fail(d, NOMEM);
    s->ngroups = ngroups;
    for (int i = 0; ok && i < max_groups; ++i) {
        const int target = mapping ? mapping[i] : i;
        HCode *next = target >= 0 ? s->pool + (size_t)target * table_size : scratch;
        for (int j = 0; ok && j < 5; ++j) {
            const int alphabet = kAlphabetSize[j] + (j == 0 && s->cache_bits ? 1 << s->cache_bits : 0);
            const int size = read_code(d, alphabet, next);
            if (size == 0) {
                ok = 0;
                break;
            }
            if (target >= 0) s->groups[target].htrees[j] = next;
            next += size;
        }
    }
    free(scratch);
    free(mapping);
    return ok;
}

/* Read a stream's header: colour cache and codes (and, for the main image, its transforms). */
static int read_stream(Dec *d, Stream *s, int xsize, int ysize, int level0);

static inline const Group *group_at(const Stream *s, int col, int row) {
    if (!s->meta) return s->groups;
    return s->groups + s->meta[(int64_t)s->meta_xsize * (row >> s->meta_bits) + (col >> s->meta_bits)];
}

static inline int copy_value(int symbol, BitReader *br) {
    if (symbol < 4) return symbol + 1;
    const int extra = (symbol - 2) >> 1;
    const int offset = (2 + (symbol & 1)) << extra;
    return offset + (int)br_read(br, extra) + 1;
}

static inline int plane_to_distance(int xsize, int code) {
    if (code > 120) return code - 120;
    const int dist_code = kCodeToPlane[code - 1];
    const int dist = (dist_code >> 4) * xsize + (8 - (dist_code & 0xf));
    return dist >= 1 ? dist : 1;
}

/*
 * Decode pixels of stream s into buf (indexed by position & mask) from *pos until at least `stop`
 * (a backward reference may go past it, never past the image's end). col/row track *pos.
 */
static int decode_pixels(Dec *d, Stream *s, uint32_t *buf, uint64_t mask, int64_t *pos, int64_t stop, int64_t total,
                         int *col, int *row, const Group **group) {
    BitReader *br = &d->br;
    const int width = s->xsize;
    const int len_code_limit = NUM_LITERAL_CODES + NUM_LENGTH_CODES;
    const int cache_limit = len_code_limit + (s->cache_bits ? 1 << s->cache_bits : 0);
    const int cache_shift = 32 - s->cache_bits;
    uint32_t *cache = s->cache;
    int64_t p = *pos;
    int c = *col, r = *row;
    const Group *g = *group;
    while (p < stop) {
        if ((c & s->meta_mask) == 0) g = group_at(s, c, r);
        br_fill(br);
        const int code = read_symbol(g->htrees[0], br);
        if (code < NUM_LITERAL_CODES) {
            br_fill(br);
            const int red = read_symbol(g->htrees[1], br);
            br_fill(br);
            const int blue = read_symbol(g->htrees[2], br);
            br_fill(br);
            const int alpha = read_symbol(g->htrees[3], br);
            if (br_is_eos(br)) return fail(d, TRUNCATED);
            const uint32_t argb = ((uint32_t)alpha << 24) | ((uint32_t)red << 16) | ((uint32_t)code << 8) | (uint32_t)blue;
            buf[p & mask] = argb;
            if (cache) cache[(argb * 0x1e35a7bdu) >> cache_shift] = argb;
            p++;
            if (++c >= width) {
                c = 0;
                r++;
            }
        } else if (code < len_code_limit) {
            const int length = copy_value(code - NUM_LITERAL_CODES, br);
            br_fill(br);
            const int dist_symbol = read_symbol(g->htrees[4], br);
            br_fill(br);
            const int dist = plane_to_distance(width, copy_value(dist_symbol, br));
            if (br_is_eos(br)) return fail(d, TRUNCATED);
            if (p < dist || total - p < length) return fail(d, BITSTREAM);
            for (int i = 0; i < length; i++) {
                const uint32_t argb = buf[(p - dist) & mask];
                buf[p & mask] = argb;
                if (cache) cache[(argb * 0x1e35a7bdu) >> cache_shift] = argb;
                p++;
            }
            c += length;
            while (c >= width) {
                c -= width;
                r++;
            }
            if (c & s->meta_mask) g = group_at(s, c, r);
        } else if (code < cache_limit) {
            if (br_is_eos(br)) return fail(d, TRUNCATED);
            const uint32_t argb = cache[code - len_code_limit];
            buf[p & mask] = argb;
            cache[(argb * 0x1e35a7bdu) >> cache_shift] = argb;
            p++;
            if (++c >= width) {
                c = 0;
                r++;
            }
        } else {
            return fail(d, BITSTREAM);
        }
    }
    *pos = p;
    *col = c;
    *row = r;
    *group = g;
    return 1;
}

/* A sub-image (transform data, entropy image, palette): decoded whole. */
static int decode_image(Dec *d, int xsize, int ysize, uint32_t **out) {
    Stream s;
    memset(&s, 0, sizeof(s));
    if (!read_stream(d, &s, xsize, ysize, 0)) {
        free_stream(&s);
        return 0;
    }
    const int64_t total = (int64_t)xsize * ysize;
    uint32_t *data = (uint32_t *)malloc((size_t)total * sizeof(uint32_t));
    if (!data) {
        free_stream(&s);
        return fail(d, NOMEM);
    }
    d->held += total * (int64_t)sizeof(uint32_t);
    int64_t pos = 0;
    int col = 0, row = 0;
    const Group *group = s.groups;
    int ok = decode_pixels(d, &s, data, ~(uint64_t)0, &pos, total, total, &col, &row, &group);
    if (ok && br_is_eos(&d->br)) ok = fail(d, TRUNCATED);
    free_stream(&s);
    if (!ok) {
        free(data);
        return 0;
    }
    *out = data;
    return 1;
}

static int read_transform(Dec *d, int *xsize, int ysize) {
    BitReader *br = &d->br;
    const int type = (int)br_read(br, 2);
    if (d->seen & (1u << type)) return fail(d, BITSTREAM);
    d->seen |= 1u << type;
    Transform *t = &d->tr[d->ntransforms++];
    t->type = type;
    t->xsize = *xsize;
    t->ysize = ysize;
    t->data = NULL;
    if (type == PREDICTOR || type == CROSS_COLOR) {
        t->bits = 2 + (int)br_read(br, 3);
        return decode_image(d, sub_sample(t->xsize, t->bits), sub_sample(t->ysize, t->bits), &t->data);
    }
    if (type == COLOR_INDEXING) {
        const int num_colors = (int)br_read(br, 8) + 1;
        const int bits = num_colors > 16 ? 0 : num_colors > 4 ? 1 : num_colors > 2 ? 2 : 3;
        *xsize = sub_sample(t->xsize, bits);
        t->bits = bits;
        uint32_t *palette = NULL;
        if (!decode_image(d, num_colors, 1, &palette)) return 0;
        const int final_colors = 1 << (8 >> bits);
        uint32_t *map = (uint32_t *)calloc((size_t)final_colors, sizeof(uint32_t));
        if (!map) {
            free(palette);
            return fail(d, NOMEM);
        }
        const uint8_t *src = (const uint8_t *)palette;
        uint8_t *dst = (uint8_t *)map;
        map[0] = palette[0];
        for (int i = 4; i < 4 * num_colors; ++i) dst[i] = (uint8_t)((src[i] + dst[i - 4]) & 0xff);
        free(palette);
        t->data = map;
    }
    return 1;
}

static int read_stream(Dec *d, Stream *s, int xsize, int ysize, int level0) {
    BitReader *br = &d->br;
    int txsize = xsize;
    if (level0) {
        while (br_read(br, 1)) {
            if (!read_transform(d, &txsize, ysize)) return 0;
        }
    }
    s->xsize = txsize;
    s->ysize = ysize;
    if (br_read(br, 1)) {
        s->cache_bits = (int)br_read(br, 4);
        if (s->cache_bits < 1 || s->cache_bits > MAX_CACHE_BITS) return fail(d, BITSTREAM);
    }
    if (!read_codes(d, s, level0)) return 0;
    if (s->cache_bits) {
        s->cache = (uint32_t *)calloc((size_t)1 << s->cache_bits, sizeof(uint32_t));
        if (!s->cache) return fail(d, NOMEM);
    }
    return 1;
}

/* ---- inverse transforms, one row ---- */

static inline uint32_t add_pixels(uint32_t a, uint32_t b) {
    const uint32_t ag = (a & 0xff00ff00u) + (b & 0xff00ff00u);
    const uint32_t rb = (a & 0x00ff00ffu) + (b & 0x00ff00ffu);
    return (ag & 0xff00ff00u) | (rb & 0x00ff00ffu);
}
static inline uint32_t average2(uint32_t a, uint32_t b) { return (((a ^ b) & 0xfefefefeu) >> 1) + (a & b); }
static inline uint32_t clip255(uint32_t a) { return a < 256 ? a : ~a >> 24; }
static inline int add_sub_full(int a, int b, int c) { return (int)clip255((uint32_t)(a + b - c)); }
static inline uint32_t clamped_full(uint32_t c0, uint32_t c1, uint32_t c2) {
    const int a = add_sub_full(c0 >> 24, c1 >> 24, c2 >> 24);
    const int r = add_sub_full((c0 >> 16) & 0xff, (c1 >> 16) & 0xff, (c2 >> 16) & 0xff);
    const int g = add_sub_full((c0 >> 8) & 0xff, (c1 >> 8) & 0xff, (c2 >> 8) & 0xff);
    const int b = add_sub_full(c0 & 0xff, c1 & 0xff, c2 & 0xff);
    return ((uint32_t)a << 24) | ((uint32_t)r << 16) | ((uint32_t)g << 8) | (uint32_t)b;
}
static inline int add_sub_half(int a, int b) { return (int)clip255((uint32_t)(a + (a - b) / 2)); }
static inline uint32_t clamped_half(uint32_t c0, uint32_t c1, uint32_t c2) {
    const uint32_t ave = average2(c0, c1);
    const int a = add_sub_half(ave >> 24, c2 >> 24);
    const int r = add_sub_half((ave >> 16) & 0xff, (c2 >> 16) & 0xff);
    const int g = add_sub_half((ave >> 8) & 0xff, (c2 >> 8) & 0xff);
    const int b = add_sub_half(ave & 0xff, c2 & 0xff);
    return ((uint32_t)a << 24) | ((uint32_t)r << 16) | ((uint32_t)g << 8) | (uint32_t)b;
}
/* libwebp's Select: a (top) when the channels' summed |b - c| is at most their summed |a - c|, else b. */
#ifdef __SSE2__
static inline uint32_t select_pixel(uint32_t a, uint32_t b, uint32_t c) {
    const __m128i va = _mm_cvtsi32_si128((int)a), vb = _mm_cvtsi32_si128((int)b), vc = _mm_cvtsi32_si128((int)c);
    const int pb = _mm_cvtsi128_si32(_mm_sad_epu8(vb, vc)), pa = _mm_cvtsi128_si32(_mm_sad_epu8(va, vc));
    return pb - pa <= 0 ? a : b;
}
#else
static inline int sub3(int a, int b, int c) {
    const int pb = b - c, pa = a - c;
    return abs(pb) - abs(pa);
}
static inline uint32_t select_pixel(uint32_t a, uint32_t b, uint32_t c) {
    const int pa_minus_pb = sub3(a >> 24, b >> 24, c >> 24) + sub3((a >> 16) & 0xff, (b >> 16) & 0xff, (c >> 16) & 0xff) +
                            sub3((a >> 8) & 0xff, (b >> 8) & 0xff, (c >> 8) & 0xff) + sub3(a & 0xff, b & 0xff, c & 0xff);
    return pa_minus_pb <= 0 ? a : b;
}
#endif

/* One tile's run of a predictor mode: out[x] = row[x] + predictor(out[x - 1], top + x). */
#define PREDICT_RUN(EXPR)                                                     \
    for (; x < x_end; x++) {                                                  \
        const uint32_t left = out[x - 1];                                     \
        const uint32_t *t = top + x;                                          \
        (void)left;                                                           \
        (void)t;                                                              \
        out[x] = add_pixels(row[x], (EXPR));                                  \
    }

static void predictor_row(Dec *d, const Transform *t, int y, uint32_t *row) {
    const int width = t->xsize;
    uint32_t *top = d->pred, *out = d->pred + width; /* contiguous: top[x + 1] at the end is out[0] */
    if (y == 0) {
        out[0] = add_pixels(row[0], 0xff000000u);
        for (int x = 1; x < width; x++) out[x] = add_pixels(row[x], out[x - 1]);
    } else {
        const uint32_t *modes = t->data + (int64_t)(y >> t->bits) * sub_sample(width, t->bits);
        out[0] = add_pixels(row[0], top[0]);
        const int tile = 1 << t->bits;
        for (int x = 1; x < width;) {
            const int mode = (int)((modes[x >> t->bits] >> 8) & 0xf);
            int x_end = (x & ~(tile - 1)) + tile;
            if (x_end > width) x_end = width;
            switch (mode) {
            case 1: PREDICT_RUN(left) break;
            case 2: PREDICT_RUN(t[0]) break;
            case 3: PREDICT_RUN(t[1]) break;
            case 4: PREDICT_RUN(t[-1]) break;
            case 5: PREDICT_RUN(average2(average2(left, t[1]), t[0])) break;
            case 6: PREDICT_RUN(average2(left, t[-1])) break;
            case 7: PREDICT_RUN(average2(left, t[0])) break;
            case 8: PREDICT_RUN(average2(t[-1], t[0])) break;
            case 9: PREDICT_RUN(average2(t[0], t[1])) break;
            case 10: PREDICT_RUN(average2(average2(left, t[-1]), average2(t[0], t[1]))) break;
            case 11: PREDICT_RUN(select_pixel(t[0], left, t[-1])) break;
            case 12: PREDICT_RUN(clamped_full(left, t[0], t[-1])) break;
            case 13: PREDICT_RUN(clamped_half(left, t[0], t[-1])) break;
            default: PREDICT_RUN(0xff000000u) break; /* 0, and 14, 15: libwebp pads its table with predictor 0 */
            }
        }
    }
    memcpy(row, out, (size_t)width * sizeof(uint32_t));
    memcpy(top, out, (size_t)width * sizeof(uint32_t));
}

static void cross_color_row(const Transform *t, int y, uint32_t *row) {
    const int width = t->xsize, tile = 1 << t->bits;
    const uint32_t *codes = t->data + (int64_t)(y >> t->bits) * sub_sample(width, t->bits);
    for (int x0 = 0; x0 < width; x0 += tile) {
        const uint32_t code = codes[x0 >> t->bits];
        const int g2r = (int8_t)(code & 0xff), g2b = (int8_t)((code >> 8) & 0xff), r2b = (int8_t)((code >> 16) & 0xff);
        const int x_end = x0 + tile < width ? x0 + tile : width;
        for (int x = x0; x < x_end; x++) {
            const uint32_t argb = row[x];
            const int green = (int8_t)(argb >> 8);
            int new_red = (int)((argb >> 16) & 0xff), new_blue = (int)(argb & 0xff);
            new_red += (g2r * green) >> 5;
            new_red &= 0xff;
            new_blue += (g2b * green) >> 5;
            new_blue += (r2b * (int8_t)new_red) >> 5;
            new_blue &= 0xff;
            row[x] = (argb & 0xff00ff00u) | ((uint32_t)new_red << 16) | (uint32_t)new_blue;
        }
    }
}

static void add_green_row(const Transform *t, uint32_t *row) {
    for (int x = 0; x < t->xsize; x++) {
        const uint32_t argb = row[x], green = (argb >> 8) & 0xff;
        uint32_t red_blue = (argb & 0x00ff00ffu) + ((green << 16) | green);
        row[x] = (argb & 0xff00ff00u) | (red_blue & 0x00ff00ffu);
    }
}

static void color_index_row(const Transform *t, const uint32_t *src, uint32_t *dst) {
    const int width = t->xsize, bits_per_pixel = 8 >> t->bits;
    if (bits_per_pixel == 8) {
        for (int x = 0; x < width; x++) dst[x] = t->data[(src[x] >> 8) & 0xff];
        return;
    }
    const int per = 1 << t->bits;
    const uint32_t mask = (1u << bits_per_pixel) - 1;
    for (int x = 0; x < width; x++) {
        const uint32_t packed = (src[x >> t->bits] >> 8) & 0xff;
        dst[x] = t->data[(packed >> ((x & (per - 1)) * bits_per_pixel)) & mask];
    }
}

/* ---- API ---- */

void vp8l_close(void *handle) {
    Dec *d = (Dec *)handle;
    if (!d) return;
    free_stream(&d->main);
    for (int i = 0; i < d->ntransforms; i++) free(d->tr[i].data);
    free(d->ring);
    free(d->a);
    free(d->b);
    free(d->pred);
    free(d->code_lengths);
    free(d->sorted);
    free(d);
}

/*
 * Read a VP8L bitstream's header, transforms and codes. data: from the VP8L chunk's payload to the
 * file's end, as libwebp reads it (kept by the caller until vp8l_close). info: width, height,
 * has_alpha, status (OK or why not), and the KB of sub-images and tables it holds.
 * Returns the decoder, or NULL (status in info[3]).
 */
void *vp8l_open(const uint8_t *data, int64_t length, int32_t *info) {
    Dec *d = (Dec *)calloc(1, sizeof(Dec));
    if (!d) {
        info[3] = NOMEM;
        return NULL;
    }
    d->code_lengths = (int *)malloc(MAX_ALPHABET * sizeof(int));
    d->sorted = (uint16_t *)malloc(MAX_ALPHABET * sizeof(uint16_t));
    if (!d->code_lengths || !d->sorted) fail(d, NOMEM);
    br_init(&d->br, data, (size_t)length);
    if (d->status == OK && length < 5) fail(d, TRUNCATED);
    if (d->status == OK) {
        if (br_read(&d->br, 8) != 0x2f) fail(d, BITSTREAM);
        d->width = (int)br_read(&d->br, 14) + 1;
        d->height = (int)br_read(&d->br, 14) + 1;
        d->has_alpha = (int)br_read(&d->br, 1);
        if (br_read(&d->br, 3) != 0) fail(d, BITSTREAM);
    }
    if (d->status == OK) read_stream(d, &d->main, d->width, d->height, 1);
    if (d->status == OK && d->br.eos) fail(d, TRUNCATED);
    if (d->status == OK) {
        d->total = (int64_t)d->main.xsize * d->height;
        int64_t ring = (int64_t)1 << RING_BITS;
        while (ring / 2 >= d->total && ring > 1) ring /= 2;
        d->ring_mask = (uint64_t)ring - 1;
        d->ring = (uint32_t *)malloc((size_t)ring * sizeof(uint32_t));
        d->a = (uint32_t *)malloc((size_t)d->width * sizeof(uint32_t));
        d->b = (uint32_t *)malloc((size_t)d->width * sizeof(uint32_t));
        d->pred = (uint32_t *)malloc((size_t)d->width * 2 * sizeof(uint32_t));
        if (!d->ring || !d->a || !d->b || !d->pred) fail(d, NOMEM);
        d->group = d->main.groups;
    }
    info[0] = d->width;
    info[1] = d->height;
    info[2] = d->has_alpha;
    info[3] = d->status;
    info[4] = (int32_t)(d->held >> 10);
    if (d->status != OK) {
        vp8l_close(d);
        return NULL;
    }
    return d;
}

/* Decode the next `rows` rows into out (channels 3: RGB, 4: RGBA, rows packed). Returns a status. */
int vp8l_read_rows(void *handle, uint8_t *out, int32_t rows, int32_t channels) {
    Dec *d = (Dec *)handle;
    if (d->status != OK) return d->status;
    const int xsize = d->main.xsize;
    for (int i = 0; i < rows; i++) {
        const int y = d->out_row;
        if (y >= d->height) return fail(d, BITSTREAM), d->status;
        const int64_t end = (int64_t)(y + 1) * xsize;
        if (d->pos < end &&
            !decode_pixels(d, &d->main, d->ring, d->ring_mask, &d->pos, end, d->total, &d->col, &d->row, &d->group))
            return d->status;
        if (y + 1 == d->height && br_is_eos(&d->br)) return fail(d, TRUNCATED), d->status;
        uint32_t *row = d->a, *other = d->b;
        const int64_t start = (int64_t)y * xsize;
        for (int x = 0; x < xsize; x++) row[x] = d->ring[(start + x) & d->ring_mask];
        for (int n = d->ntransforms - 1; n >= 0; n--) {
            const Transform *t = &d->tr[n];
            if (t->type == PREDICTOR) {
                predictor_row(d, t, y, row);
            } else if (t->type == CROSS_COLOR) {
                cross_color_row(t, y, row);
            } else if (t->type == SUBTRACT_GREEN) {
                add_green_row(t, row);
            } else {
                color_index_row(t, row, other);
                uint32_t *swap = row;
                row = other;
                other = swap;
            }
        }
        uint8_t *o = out + (int64_t)i * d->width * channels;
        for (int x = 0; x < d->width; x++) {
            const uint32_t argb = row[x];
            o[0] = (uint8_t)(argb >> 16);
            o[1] = (uint8_t)(argb >> 8);
            o[2] = (uint8_t)argb;
            if (channels == 4) o[3] = (uint8_t)(argb >> 24);
            o += channels;
        }
        d->out_row++;
    }
    return OK;
}
