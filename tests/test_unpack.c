/* The vector unpackers (kernels/unpack.c, unpack.h) against the scalar
 * reference (kernels/dequant.c): every value the same float, bit for bit,
 * on random blocks and on blocks of edge values (every scale code, negative
 * zero, subnormal, infinite and NaN f16 scales, every 4- and 6-bit code);
 * and the matrix product over f16 and bf16 rows of any width, converted in
 * registers, against the plain product on their f32 copy. */
#include "helpers.h"

#include "../formats/quant.h"
#include "../kernels/unpack.h"
#include "../kernels/unpack_low_bit.h"

/* Halves for block scales: normal, zero and negative zero, subnormal (smallest, largest), largest, Inf, NaNs. */
static const uint16_t edge_halves[] = {0x3c00, 0x2e66, 0xb800, 0x0000, 0x8000, 0x0001, 0x03ff, 0x8001,
                                       0x83ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7d01};
enum { N_EDGE_HALVES = sizeof edge_halves / sizeof edge_halves[0] };

/* Where a type's f16 scales sit in its block (-1: none). */
static void scale_offsets(WeightType t, int *first, int *second) {
    *first = t == WEIGHT_Q6_K ? 208 : t == WEIGHT_Q2_K ? 80 : t == WEIGHT_Q3_K ? 108 : t == WEIGHT_TQ1_0 ? 52 : t == WEIGHT_TQ2_0 ? 64 : 0;
    *second = t == WEIGHT_Q4_K || t == WEIGHT_Q5_K || t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1 ? 2 : t == WEIGHT_Q2_K ? 82 : -1;
}

static void put_half(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* n blocks of type t: block i's bytes are random, except that (for i <
 * 256) byte j of the block is (i + j) % 256 in turn, so that every code of
 * every field appears, and scales cycle through edge_halves. The first two
 * blocks are all zero bits and all one bits. */
static uint8_t *edge_blocks(WeightType t, size_t n, uint64_t seed) {
    size_t bytes = tempo_block_bytes(t);
    uint8_t *b = malloc(n * bytes);
    cr_assert(b, "out of memory");
    int first, second;
    scale_offsets(t, &first, &second);
    for (size_t i = 0; i < n; i++) {
        uint8_t *block = b + i * bytes;
        for (size_t j = 0; j < bytes; j++)
            block[j] = i == 0 ? 0 : i == 1 ? 0xff : i < 256 ? (uint8_t)(i + j) : (uint8_t)tempo_splitmix64(&seed);
        if (i < 2) continue;
        if (i % 3 != 0) put_half(block + first, edge_halves[i % N_EDGE_HALVES]);
        if (second >= 0 && i % 5 != 0) put_half(block + second, edge_halves[(i / 7) % N_EDGE_HALVES]);
    }
    return b;
}

static void expect_same_bits(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            uint32_t g, w;
            memcpy(&g, &got[i], 4);
            memcpy(&w, &want[i], 4);
            cr_assert_fail("%s: value %zu is %.9g (0x%08x), the reference gives %.9g (0x%08x)", what, i, got[i], g, want[i], w);
        }
}

Test(unpack, block_types_equal_reference_bitwise) {
    const WeightType types[] = {WEIGHT_Q8_0, WEIGHT_Q4_0, WEIGHT_Q4_K, WEIGHT_Q5_K, WEIGHT_Q6_K};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        WeightType t = types[k];
        size_t n_blocks = 2048, n_values = n_blocks * (size_t)tempo_block_values(t);
        uint8_t *blocks = edge_blocks(t, n_blocks, 17 + k);
        float *got = malloc(n_values * sizeof(float)), *want = malloc(n_values * sizeof(float));
        tempo_dequantize(t, blocks, n_values, want);
        tempo_unpack(t, blocks, n_values, got);
        expect_same_bits(got, want, n_values, tempo_weight_type_name(t));
        /* one block at a time from an odd address: no alignment assumed */
        uint8_t *odd = malloc(tempo_block_bytes(t) + 1);
        for (size_t i = 0; i < 300; i++) {
            memcpy(odd + 1, blocks + i * tempo_block_bytes(t), tempo_block_bytes(t));
            tempo_unpack(t, odd + 1, (size_t)tempo_block_values(t), got);
            expect_same_bits(got, want + i * (size_t)tempo_block_values(t), (size_t)tempo_block_values(t), "odd address");
        }
        free(odd); free(blocks); free(got); free(want);
    }
}

/* Q4_1 and Q5_1 add the min m to q*d: when both are NaN (m NaN, d Inf or
 * NaN), which NaN the sum keeps is the compiler's choice of operand order
 * (GCC's vectorized reference picks them differently for values 0..15 and
 * 16..31), so no decoder could match it. Such blocks get m = 1. */
static void drop_nan_pairs(uint8_t *blocks, size_t n, size_t bytes) {
    for (size_t i = 0; i < n; i++) {
        uint8_t *b = blocks + i * bytes;
        int d_special = (b[1] & 0x7c) == 0x7c, m_nan = (b[3] & 0x7c) == 0x7c && ((b[3] & 3) | b[2]);
        if (d_special && m_nan) put_half(b + 2, 0x3c00);
    }
}

/* The decoders of the other types (unpack_low_bit.h), vector by vector,
 * against the scalar reference on the edge blocks: every code of every
 * field (scales, mins, fifth and high bits, levels), every edge half as
 * the block's scale and min, from an odd address. */
Test(unpack, low_bit_types_equal_reference_bitwise) {
    const WeightType types[] = {WEIGHT_Q4_1,   WEIGHT_Q5_0,  WEIGHT_Q5_1,  WEIGHT_IQ4_NL,  WEIGHT_Q2_K,  WEIGHT_Q3_K,
                                WEIGHT_IQ4_XS, WEIGHT_TQ1_0, WEIGHT_TQ2_0, WEIGHT_IQ2_XXS, WEIGHT_IQ2_XS, WEIGHT_IQ2_S,
                                WEIGHT_IQ3_XXS, WEIGHT_IQ3_S, WEIGHT_IQ1_S, WEIGHT_IQ1_M, WEIGHT_Q1_0,  WEIGHT_Q2_0};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        WeightType t = types[k];
        cr_assert(tempo_low_bit_decoded(t), "%s has a decoder", tempo_weight_type_name(t));
        size_t n_blocks = 2048, values = (size_t)tempo_block_values(t), bytes = tempo_block_bytes(t);
        uint8_t *blocks = edge_blocks(t, n_blocks, 31 + k), *odd = malloc(bytes + 1);
        float *want = malloc(n_blocks * values * sizeof(float)), got[256];
        if (t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1) drop_nan_pairs(blocks, n_blocks, bytes);
        tempo_dequantize(t, blocks, n_blocks * values, want);
        for (size_t i = 0; i < n_blocks; i++) {
            memcpy(odd + 1, blocks + i * bytes, bytes);
            for (int g = 0; g < (values > 32 ? (int)values / 64 : 1); g++) { /* groups of 64 values (a 32-value block: one) */
                F32x16 w[4];
                tempo_low_bit_vectors(t, odd + 1, g, tempo_low_bit_block(t, odd + 1), w);
                memcpy(got + 64 * g, w, (values > 32 ? 4 : 2) * sizeof(F32x16));
            }
            char what[64];
            snprintf(what, sizeof what, "%s block %zu", tempo_weight_type_name(t), i);
            expect_same_bits(got, want + i * values, values, what);
        }
        float *unpacked = malloc(n_blocks * values * sizeof(float)); /* tempo_unpack (the prefill panels) decodes with them */
        tempo_unpack(t, blocks, n_blocks * values, unpacked);
        expect_same_bits(unpacked, want, n_blocks * values, tempo_weight_type_name(t));
        free(unpacked); free(odd); free(blocks); free(want);
    }
    cr_expect(!tempo_low_bit_decoded(WEIGHT_Q4_K) && !tempo_low_bit_decoded(WEIGHT_Q8_0));
}

/* The 256 values of a block of t, group by group (tempo_low_bit_vectors). */
static void decoded_256(WeightType t, const uint8_t *block, float got[256]) {
    for (int g = 0; g < 4; g++) {
        F32x16 w[4];
        tempo_low_bit_vectors(t, block, g, tempo_low_bit_block(t, block), w);
        memcpy(got + 64 * g, w, sizeof w);
    }
}

/* The code test block `shift` puts at value v, of `codes` codes: a hash of v (so that the values
 * sharing a byte differ) plus shift; shift = 0 .. codes-1 meets every code in every lane. */
static int code_at(int v, int shift, int codes) { return (int)(((uint32_t)v * 2654435761u >> 16) + (uint32_t)shift) % codes; }

/* TQ1_0 blocks where byte j of block s is (s + 101 j) % 256: over the 256 blocks every byte of
 * qs and qh takes every value 0..255 (also those >= 243, which ggml's quantizer never writes but
 * its dequantizer reads), so every trit position of every byte meets every byte value; d cycles
 * through 1, -0.5 (the zero trits give -0) and the edge halves. Decoded (tempo_tq1_0_vectors,
 * group by group) equals the reference bit for bit. And blocks packed from chosen trits as
 * ggml's quantize_row_tq1_0_ref packs them (5 a byte, the most significant first, ceiling
 * division by 243; qh's 4 shifted up one trit) decode to (t - 1) * d: each value from its trit. */
Test(unpack, tq1_0_every_byte_value_and_trit) {
    enum { BYTES = 54, BLOCKS = 256 };
    uint8_t block[BYTES];
    float got[256], want[256];
    for (int s = 0; s < BLOCKS; s++) {
        for (int j = 0; j < BYTES; j++) block[j] = (uint8_t)(s + 101 * j);
        put_half(block + 52, s % 3 == 0 ? 0x3c00 : s % 3 == 1 ? 0xb800 : edge_halves[s % N_EDGE_HALVES]);
        decoded_256(WEIGHT_TQ1_0, block, got);
        tempo_dequantize(WEIGHT_TQ1_0, block, 256, want);
        char what[64];
        snprintf(what, sizeof what, "TQ1_0 block %d", s);
        expect_same_bits(got, want, 256, what);
    }
    for (int c = 0; c < 3; c++) {
        int trit[256]; /* value v's trit: value 32n + m of bytes 0..31 is trit n of qs[m], 160 + 16n + m of qs[32 + m], 240 + 4n + m of qh[m] */
        for (int v = 0; v < 256; v++) trit[v] = code_at(v, c, 3);
        for (int m = 0; m < 48; m++) {
            int q = 0, first = m < 32 ? m : 160 + (m - 32), step = m < 32 ? 32 : 16;
            for (int n = 0; n < 5; n++) q = 3 * q + trit[first + step * n];
            block[m] = (uint8_t)((q * 256 + 242) / 243);
        }
        for (int m = 0; m < 4; m++) {
            int q = 0;
            for (int n = 0; n < 4; n++) q = 3 * q + trit[240 + 4 * n + m];
            block[48 + m] = (uint8_t)((3 * q * 256 + 242) / 243);
        }
        put_half(block + 52, 0x3c00);
        decoded_256(WEIGHT_TQ1_0, block, got);
        for (int v = 0; v < 256; v++) cr_assert_eq(got[v], (float)(trit[v] - 1), "chosen trits %d: value %d is %g, its trit %d", c, v, got[v], trit[v]);
    }
}

/* Q1_0 (128 values, two groups of 64) and Q2_0 (64, one group) blocks
 * where byte j of qs in block s is (s + 101 j) % 256: over s = 0..255
 * every byte takes every value 0..255 at every position, under each edge
 * half as d (1, -0.5, zeros, subnormals, the largest, Inf, NaNs: 16 x 256
 * blocks a type). Decoded (tempo_q1_0_vectors, tempo_q2_0_vectors, group
 * by group, and tempo_unpack) equals the reference bit for bit: a lane fed
 * from the wrong bit or byte, a sign made by a subtraction (0 - d: +0 for
 * d = +0, not -0), a code off by one, or 0 * d with the wrong sign shows.
 * With d = 1 (h = 0) the reference itself gives each value from its bits
 * (Q1_0: bit j % 8 of qs[j / 8] set: 1, else -1; Q2_0: bits 2(j % 4) of
 * qs[j / 4], q - 1). */
Test(unpack, q1_0_q2_0_every_byte_value_at_every_position) {
    const WeightType types[] = {WEIGHT_Q1_0, WEIGHT_Q2_0};
    for (int ti = 0; ti < 2; ti++) {
        WeightType t = types[ti];
        int values = tempo_block_values(t);
        cr_assert(tempo_low_bit_decoded(t) && tempo_block_bytes(t) == 18, "%s", tempo_weight_type_name(t));
        uint8_t block[256] = {0}; /* 18 bytes used; the size of any block (the decoder switch inlines them all) */
        float got[128], want[128], unpacked[128];
        for (int h = 0; h < N_EDGE_HALVES; h++)
            for (int s = 0; s < 256; s++) {
                for (int j = 0; j < 16; j++) block[2 + j] = (uint8_t)(s + 101 * j);
                put_half(block, edge_halves[h]);
                for (int g = 0; g < values / 64; g++) {
                    F32x16 w[4];
                    tempo_low_bit_vectors(t, block, g, tempo_low_bit_block(t, block), w);
                    memcpy(got + 64 * g, w, sizeof w);
                }
                tempo_dequantize(t, block, (size_t)values, want);
                tempo_unpack(t, block, (size_t)values, unpacked);
                char what[64];
                snprintf(what, sizeof what, "%s block %d, d 0x%04x", tempo_weight_type_name(t), s, edge_halves[h]);
                expect_same_bits(got, want, (size_t)values, what);
                expect_same_bits(unpacked, want, (size_t)values, what);
                for (int v = 0; v < values && h == 0; v++) {
                    float value = t == WEIGHT_Q1_0 ? (block[2 + v / 8] >> (v % 8) & 1 ? 1.0f : -1.0f)
                                                   : (float)((block[2 + v / 4] >> (2 * (v % 4)) & 3) - 1);
                    cr_assert_eq(want[v], value, "%s value %d: %g, not %g", what, v, want[v], value);
                }
            }
    }
}

/* Sets the code of value v (0..255) of a Q2_K or Q3_K block by the
 * format's layout (dequant_k.c): its low 2 bits are bits 2j, 2j+1 of
 * qs[32 half + 16 part + l]; Q3_K's third bit is bit 4 half + j of
 * hmask[16 part + l] (v = 128 half + 32 j + 16 part + l). */
static void put_k_code(WeightType t, uint8_t *block, int v, int code) {
    int half = v / 128, j = v % 128 / 32, part = v % 32 / 16, l = v % 16, bit = 4 * half + j;
    uint8_t *q = block + (t == WEIGHT_Q3_K ? 32 : 16) + 32 * half + 16 * part + l;
    *q = (uint8_t)((*q & ~(3 << 2 * j)) | (code & 3) << 2 * j);
    if (t == WEIGHT_Q3_K) block[16 * part + l] = (uint8_t)((block[16 * part + l] & ~(1 << bit)) | (code >> 2 & 1) << bit);
}

/* Q2_K and Q3_K blocks written value by value: in block c value v takes
 * code (f(v) + c) % 4 (Q3_K: % 8, its table index; f a hash, so that the
 * values sharing a byte differ), so every code meets
 * every lane of every sub-block of every group, under each edge half as d
 * (and Q2_K's dmin), random scale bytes. The decoder (tempo_q2_k_entries,
 * tempo_q3_k_entries and their tables with VBMI) equals the reference bit
 * for bit: a lane fed from the wrong byte, bit or sub-block, a table
 * entry or a scale product off shows. With d = dmin = 1 the reference
 * itself gives sc * q - m (Q3_K: (sc - 32) * (q - 4)): the codes are where
 * the test put them. */
Test(unpack, q2_k_q3_k_every_code_in_every_lane) {
    const WeightType types[] = {WEIGHT_Q2_K, WEIGHT_Q3_K};
    uint64_t seed = 99;
    for (int ti = 0; ti < 2; ti++) {
        WeightType t = types[ti];
        int codes = t == WEIGHT_Q3_K ? 8 : 4, first, second;
        scale_offsets(t, &first, &second);
        uint8_t block[110];
        for (int c = 0; c < codes * N_EDGE_HALVES; c++) {
            int shift = c % codes, h = c / codes;
            for (size_t j = 0; j < sizeof block; j++) block[j] = (uint8_t)tempo_splitmix64(&seed);
            for (int v = 0; v < 256; v++) put_k_code(t, block, v, code_at(v, shift, codes));
            put_half(block + first, edge_halves[h]);
            if (second >= 0) put_half(block + second, edge_halves[h * 5 % N_EDGE_HALVES]);
            float want[256], got[256];
            tempo_dequantize(t, block, 256, want);
            decoded_256(t, block, got);
            expect_same_bits(got, want, 256, tempo_weight_type_name(t));
            for (int v = 0; v < 256 && h == 0; v++) { /* d = dmin = 1.0 */
                int q = code_at(v, shift, codes), sub = v / 16;
                float value = t == WEIGHT_Q3_K ? (float)(tempo_q3_k_scale(block + 96, sub) - 32) * (float)(q - 4)
                                               : (float)(block[sub] & 15) * (float)q - (float)(block[sub] >> 4);
                cr_assert_eq(want[v], value, "%s value %d: %g, not %g", tempo_weight_type_name(t), v, want[v], value);
            }
        }
    }
}

/* Sets the 5-bit code of value v (0..255) of a Q5_K block by the format's
 * layout (dequant_k.c): v = 64 j + 32 h + l, its low 4 bits nibble h of
 * qs[32 j + l] (at byte 48), its bit 4 bit 2j + h of qh[l] (at byte 16). */
static void put_q5_k_code(uint8_t *block, int v, int code) {
    int j = v / 64, h = v % 64 / 32, l = v % 32;
    uint8_t *q = block + 48 + 32 * j + l, *qh = block + 16 + l;
    *q = (uint8_t)((*q & (h ? 0x0f : 0xf0)) | (code & 15) << 4 * h);
    *qh = (uint8_t)((*qh & ~(1 << (2 * j + h))) | (code >> 4 & 1) << (2 * j + h));
}

/* Q5_K blocks written value by value: in block c value v takes code
 * (f(v) + c) % 32 (f a hash, so that the values sharing a byte differ), so
 * every code meets every lane of every group, under each edge half as d
 * and dmin, random scale bytes. The decoder (with VBMI: tempo_q5_k_codes,
 * its bytes spread by tempo_lane_bytes, then vpermt2ps) equals the
 * reference bit for bit: a code taken from the wrong nibble, qh bit or
 * byte, or a leftover high bit read as bit 4, shows. With d = 1, every sc
 * 1 and m 0 the reference gives q itself: the codes are where the test put
 * them. */
Test(unpack, q5_k_every_code_in_every_lane) {
    uint64_t seed = 5;
    for (int c = 0; c < 32 * N_EDGE_HALVES; c++) {
        int shift = c % 32, h = c / 32;
        uint8_t block[176];
        for (size_t j = 0; j < sizeof block; j++) block[j] = (uint8_t)tempo_splitmix64(&seed);
        for (int v = 0; v < 256; v++) put_q5_k_code(block, v, code_at(v, shift, 32));
        put_half(block, edge_halves[h]);
        put_half(block + 2, edge_halves[h * 5 % N_EDGE_HALVES]);
        if (h == 0) memcpy(block + 4, (const uint8_t[12]){1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1}, 12); /* sc 1, m 0 */
        float want[256], got[256];
        tempo_dequantize(WEIGHT_Q5_K, block, 256, want);
        tempo_unpack(WEIGHT_Q5_K, block, 256, got);
        expect_same_bits(got, want, 256, "q5_k");
        for (int v = 0; v < 256 && h == 0; v++) {
            int q = code_at(v, shift, 32);
            cr_assert_eq(want[v], (float)q, "q5_k value %d: %g, not %d", v, want[v], q);
        }
    }
}

#if defined(__AVX512VBMI__)
/* Q6_K's code-to-float lookup (tempo_q6_k_floats, tempo_q6_k_table): every
 * code q in every lane of every vector v gives the float q - 32, bit for
 * bit, whatever bits 6 and 7 of its byte hold (a shifted qh leaves them
 * set; the lookup must read bits 0..5 only). A wrong table entry, a lane
 * taken from the wrong byte or a high bit that leaks into the index shows. */
Test(unpack, q6_k_floats_every_code_is_q_minus_32) {
    __m512i table[2] = {tempo_q6_k_table(0), tempo_q6_k_table(1)};
    for (int shift = 0; shift < 64; shift++) {
        uint8_t codes[64];
        for (int j = 0; j < 64; j++) codes[j] = (uint8_t)((j + shift) % 64 | (j * 7 + shift) % 4 << 6);
        __m512i packed;
        memcpy(&packed, codes, sizeof packed);
        for (int v = 0; v < 4; v++) {
            F32x16 got = tempo_q6_k_floats(packed, v, table);
            float want[16];
            for (int i = 0; i < 16; i++) want[i] = (float)((codes[16 * v + i] & 63) - 32);
            expect_same_bits((const float *)&got, want, 16, "tempo_q6_k_floats");
        }
    }
}
#endif

/* The kernels' inline block scales are the scalar ones for every one of the 65536 halves:
 * tempo_half_scale is tempo_f16_at's value (a NaN kept as stored), tempo_half_scale_quieted
 * tempo_f16_quieted_at's (a signalling NaN quieted, as ggml converts it); a scale read the
 * other way fails on the signalling NaNs. */
Test(unpack, inline_block_scales_equal_the_scalar_ones) {
    for (int i = 0; i < 65536; i++) {
        uint8_t p[2] = {(uint8_t)i, (uint8_t)(i >> 8)};
        float kept = tempo_half_scale(p), quieted = tempo_half_scale_quieted(p), want_kept = tempo_f16_at(p),
              want_quieted = tempo_f16_quieted_at(p);
        cr_assert(memcmp(&kept, &want_kept, 4) == 0, "half 0x%04x: tempo_half_scale %a, tempo_f16_at %a", i, kept, want_kept);
        cr_assert(memcmp(&quieted, &want_quieted, 4) == 0, "half 0x%04x: tempo_half_scale_quieted %a, tempo_f16_quieted_at %a", i,
                  quieted, want_quieted);
    }
}

/* Every one of the 65536 halves and bfloat16s, 16 lanes at a time, and through tempo_unpack. */
Test(unpack, every_half_and_bfloat16_equals_scalar) {
    uint16_t *all = malloc(65536 * sizeof(uint16_t));
    float *got = malloc(65536 * sizeof(float)), *want = malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    const WeightType types[] = {WEIGHT_F16, WEIGHT_BF16};
    for (int k = 0; k < 2; k++) {
        WeightType t = types[k];
        for (int i = 0; i < 65536; i++) want[i] = t == WEIGHT_F16 ? tempo_f16_to_f32(all[i]) : tempo_bf16_to_f32(all[i]);
        for (int i = 0; i < 65536; i += 16) {
            F32x16 v = t == WEIGHT_F16 ? tempo_f16x16(all + i) : tempo_bf16x16(all + i);
            memcpy(got + i, &v, sizeof v);
        }
        expect_same_bits(got, want, 65536, t == WEIGHT_F16 ? "f16, 16 lanes" : "bf16, 16 lanes");
        memset(got, 0, 65536 * sizeof(float));
        tempo_unpack(t, (const uint8_t *)all + 2, 65535 - 5, got); /* odd count, from the second value */
        expect_same_bits(got, want + 1, 65535 - 5, tempo_weight_type_name(t));
    }
    /* the scalar reference itself: 1.0, -0.0, the smallest subnormal, Inf, a NaN's payload */
    cr_expect(tempo_f16_to_f32(0x3c00) == 1.0f && signbit(tempo_f16_to_f32(0x8000)));
    cr_expect(tempo_f16_to_f32(0x0001) == 0x1p-24f && isinf(tempo_f16_to_f32(0x7c00)));
    uint32_t nan_bits;
    float nan = tempo_f16_to_f32(0x7d01);
    memcpy(&nan_bits, &nan, 4);
    cr_expect_eq(nan_bits, 0x7fa02000u, "f16 0x7d01 (a signalling NaN) keeps its payload: 0x%08x", nan_bits);
    free(all); free(got); free(want);
}

/* f16 and bf16 rows of widths off the 16-lane vector and the 256-value
 * tile, from an odd address, for 1..8 input rows: the kernel's conversion
 * in registers gives the plain product on the f32 copy, bit for bit. */
Test(unpack, matmul_f16_bf16_any_width_equals_plain) {
    const int widths[] = {1, 15, 17, 31, 256, 300, 1031};
    uint64_t seed = 5;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (int k = 0; k < 2; k++) {
            WeightType t = k ? WEIGHT_BF16 : WEIGHT_F16;
            int m = widths[wi], d = m == 1031 ? 300 : 23;
            size_t count = (size_t)d * m;
            uint8_t *stored = malloc(2 * count + 1);
            float *copy = malloc(count * sizeof(float)), *in = malloc((size_t)TEMPO_FEW_ROWS * m * sizeof(float));
            float *fast = malloc((size_t)TEMPO_FEW_ROWS * d * sizeof(float)), *plain = malloc((size_t)TEMPO_FEW_ROWS * d * sizeof(float));
            for (size_t i = 0; i < count; i++) {
                float v = (float)tempo_normal(&seed);
                put_half(stored + 1 + 2 * i, t == WEIGHT_F16 ? tempo_f32_to_f16(v) : tempo_f32_to_bf16(v));
            }
            for (size_t i = 0; i < (size_t)TEMPO_FEW_ROWS * m; i++) in[i] = (float)tempo_normal(&seed);
            tempo_dequantize(t, stored + 1, count, copy);
            for (int n = 1; n <= TEMPO_FEW_ROWS; n++) {
                char what[64];
                snprintf(what, sizeof what, "%s m=%d n=%d", tempo_weight_type_name(t), m, n);
                tempo_matmul_fast(fast, in, (Matrix){stored + 1, t}, n, m, d, NULL);
                tempo_plain_kernels.matmul(plain, in, (Matrix){copy, WEIGHT_F32}, n, m, d, NULL);
                expect_same_bits(fast, plain, (size_t)n * d, what);
            }
            free(stored); free(copy); free(in); free(fast); free(plain);
        }
}

/* Marks the fields of an IQ2_XXS block as seen: seen[i] point index i,
 * seen[256 + i] 7-bit sign field i, seen[384 + s] 4-bit scale s. */
static void mark_iq2_xxs_fields(const uint8_t *block, uint8_t seen[400]) {
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *q = block + 2 + 8 * ib;
        uint32_t aux = (uint32_t)q[4] | (uint32_t)q[5] << 8 | (uint32_t)q[6] << 16 | (uint32_t)q[7] << 24;
        for (int l = 0; l < 4; l++) seen[q[l]] = seen[256 + (aux >> 7 * l & 127)] = 1;
        seen[384 + (aux >> 28)] = 1;
    }
}

/* IQ2_XS, IQ2_S, IQ3_XXS and IQ2_XXS (tempo_iq2_looked_up, tempo_iq3_xxs_64
 * with VBMI, GFNI and BITALG: entries built from the points, the signs by
 * an affine map of bits, the scale products once a block) against the
 * scalar reference on random blocks: every bit of every index, sign field
 * and scale random, d a random finite half (the edge halves: the test
 * above). 4,096 blocks each meet every point index, 7-bit sign field and
 * 4-bit scale (asserted for IQ2_XXS). */
Test(unpack, iq2_iq3_xxs_random_blocks_equal_reference_bitwise) {
    const WeightType types[] = {WEIGHT_IQ2_XS, WEIGHT_IQ2_S, WEIGHT_IQ3_XXS, WEIGHT_IQ2_XXS};
    uint64_t seed = 2026;
    uint8_t seen[400] = {0};
    for (int k = 0; k < 4; k++) {
        WeightType t = types[k];
        size_t bytes = tempo_block_bytes(t);
        uint8_t block[128];
        for (int i = 0; i < 4096; i++) {
            for (size_t j = 0; j < bytes; j++) block[j] = (uint8_t)tempo_splitmix64(&seed);
            block[1] &= 0xfb; /* exponent below 31: finite */
            if (t == WEIGHT_IQ2_XXS) mark_iq2_xxs_fields(block, seen);
            float want[256], got[256];
            tempo_dequantize(t, block, 256, want);
            decoded_256(t, block, got);
            expect_same_bits(got, want, 256, tempo_weight_type_name(t));
        }
    }
    for (int i = 0; i < 400; i++) cr_assert(seen[i], "IQ2_XXS field %d (index, sign field from 256, scale from 384) never met", i);
}
