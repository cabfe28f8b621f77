/* The IQ grid types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M)
 * on hand-built blocks: each test packs, group by group, a chosen grid index
 * (using its high bits), chosen signs and chosen scales by ggml's documented
 * layout (ggml-common.h), and checks that tempo_dequantize gives back
 * scale * grid point * signs (IQ1: scale * (grid point +- 1/8)). A sign bit
 * read in the wrong order, scale nibbles swapped, or an index's high bits
 * taken from the wrong place fails here without llama.cpp. The grids are
 * the build's (kernels/iq_grids.h); files written by llama.cpp's quantizer
 * are compared with gguf-py's grids in tests/test_llama.py. */
#include "helpers.h"

#include "../kernels/iq_grids.h"

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xFFFF), put16(p + 2, v >> 16); }

/* Chosen contents of group g (0..31, 8 values each): an index of `bits` bits, 7-bit and 8-bit signs. */
static unsigned index_of(int g, int bits) { return (unsigned)(g * 149 + 7) & ((1u << bits) - 1); }
static unsigned signs7_of(int g) { return (unsigned)(g * 23 + 3) & 127; }
static unsigned signs8_of(int g) { return (unsigned)(g * 89 + 17) & 255; }
/* Two 4-bit scales per 32 values ib, never equal. */
static unsigned low_scale(int ib) { return (unsigned)(ib * 5 + 1) & 15; }
static unsigned high_scale(int ib) { return (unsigned)(ib * 3 + 8) & 15; }

/* A 7-bit sign index's 8 signs: the eighth makes the count of minus signs even. */
static unsigned all_signs(unsigned signs7) {
    int count = 0;
    for (int j = 0; j < 7; j++) count += signs7 >> j & 1;
    return signs7 | (unsigned)(count % 2) << 7;
}

/* Group g of y is scale * point[j], negated where bit j of signs is set (points of 8 bytes, or two of 4). */
static void expect_signed_group(const float *y, int g, float scale, const uint8_t *first, const uint8_t *second, unsigned signs,
                                const char *type) {
    for (int j = 0; j < 8; j++) {
        float v = scale * (float)(second && j >= 4 ? second[j - 4] : first[j]);
        cr_expect_eq(y[8 * g + j], signs >> j & 1 ? -v : v, "%s group %d value %d: %g, want %g", type, g, j, y[8 * g + j],
                     signs >> j & 1 ? -v : v);
    }
}

/* IQ2_XXS (d = 1): per 32 values, 4 index bytes and a word of four 7-bit sign indices and a scale
 * in the top 4 bits; value = (0.5 + s) / 4 * grid[j] * sign. */
Test(quant_grids, iq2_xxs_indices_signs_scale) {
    uint8_t b[66];
    float y[256];
    put16(b, 0x3C00);
    for (int ib = 0; ib < 8; ib++) {
        uint32_t word = low_scale(ib) << 28;
        for (int l = 0; l < 4; l++) b[2 + 8 * ib + l] = (uint8_t)index_of(4 * ib + l, 8), word |= signs7_of(4 * ib + l) << 7 * l;
        put32(b + 2 + 8 * ib + 4, word);
    }
    tempo_dequantize(WEIGHT_IQ2_XXS, b, 256, y);
    for (int g = 0; g < 32; g++)
        expect_signed_group(y, g, (0.5f + (float)low_scale(g / 4)) * 0.25f, tempo_iq2xxs_grid[index_of(g, 8)], NULL,
                            all_signs(signs7_of(g)), "iq2_xxs");
}

/* IQ2_XS (d = 1): a 16-bit word per group, 9-bit index below a 7-bit sign index; scales[ib]:
 * low nibble for groups 0-1 of the 32, high for 2-3. */
Test(quant_grids, iq2_xs_nine_bit_index_and_nibbles) {
    uint8_t b[74];
    float y[256];
    put16(b, 0x3C00);
    for (int g = 0; g < 32; g++) put16(b + 2 + 2 * g, index_of(g, 9) | signs7_of(g) << 9);
    for (int ib = 0; ib < 8; ib++) b[66 + ib] = (uint8_t)(low_scale(ib) | high_scale(ib) << 4);
    tempo_dequantize(WEIGHT_IQ2_XS, b, 256, y);
    for (int g = 0; g < 32; g++) {
        unsigned s = g % 4 < 2 ? low_scale(g / 4) : high_scale(g / 4);
        expect_signed_group(y, g, (0.5f + (float)s) * 0.25f, tempo_iq2xs_grid[index_of(g, 9)], NULL, all_signs(signs7_of(g)), "iq2_xs");
    }
}

/* IQ2_S (d = 1): index low byte in qs[g], its bits 8-9 in bits 2l, 2l+1 of qh[ib]; a whole sign
 * byte per group; scales as IQ2_XS's. */
Test(quant_grids, iq2_s_high_index_bits_from_qh) {
    uint8_t b[82] = {0};
    float y[256];
    put16(b, 0x3C00);
    for (int g = 0; g < 32; g++) {
        b[2 + g] = (uint8_t)index_of(g, 10), b[34 + g] = (uint8_t)signs8_of(g);
        b[66 + g / 4] |= (uint8_t)((index_of(g, 10) >> 8) << 2 * (g % 4));
    }
    for (int ib = 0; ib < 8; ib++) b[74 + ib] = (uint8_t)(low_scale(ib) | high_scale(ib) << 4);
    tempo_dequantize(WEIGHT_IQ2_S, b, 256, y);
    for (int g = 0; g < 32; g++) {
        unsigned s = g % 4 < 2 ? low_scale(g / 4) : high_scale(g / 4);
        expect_signed_group(y, g, (0.5f + (float)s) * 0.25f, tempo_iq2s_grid[index_of(g, 10)], NULL, signs8_of(g), "iq2_s");
    }
}

/* IQ3_XXS (d = 1): two byte indices per group (points of 4: values 0-3, 4-7), then per 32 values
 * a word as IQ2_XXS's; value = (0.5 + s) / 2 * grid * sign. */
Test(quant_grids, iq3_xxs_point_pairs) {
    uint8_t b[98];
    float y[256];
    put16(b, 0x3C00);
    for (int k = 0; k < 64; k++) b[2 + k] = (uint8_t)index_of(k, 8);
    for (int ib = 0; ib < 8; ib++) {
        uint32_t word = low_scale(ib) << 28;
        for (int l = 0; l < 4; l++) word |= signs7_of(4 * ib + l) << 7 * l;
        put32(b + 66 + 4 * ib, word);
    }
    tempo_dequantize(WEIGHT_IQ3_XXS, b, 256, y);
    for (int g = 0; g < 32; g++)
        expect_signed_group(y, g, (0.5f + (float)low_scale(g / 4)) * 0.5f, tempo_iq3xxs_grid[index_of(2 * g, 8)],
                            tempo_iq3xxs_grid[index_of(2 * g + 1, 8)], all_signs(signs7_of(g)), "iq3_xxs");
}

/* IQ3_S (d = 1): 9-bit indices of points of 4, 8 per 32 values, bit 8 of index k in bit k of
 * qh[ib]; a sign byte per group; a scale nibble per 32 values (low first), value = (1 + 2s) * grid * sign. */
Test(quant_grids, iq3_s_high_bits_and_scale_nibbles) {
    uint8_t b[110] = {0};
    float y[256];
    put16(b, 0x3C00);
    for (int k = 0; k < 64; k++) b[2 + k] = (uint8_t)index_of(k, 9), b[66 + k / 8] |= (uint8_t)((index_of(k, 9) >> 8) << k % 8);
    for (int g = 0; g < 32; g++) b[74 + g] = (uint8_t)signs8_of(g);
    for (int ib = 0; ib < 8; ib += 2) b[106 + ib / 2] = (uint8_t)(low_scale(ib) | low_scale(ib + 1) << 4);
    tempo_dequantize(WEIGHT_IQ3_S, b, 256, y);
    for (int g = 0; g < 32; g++)
        expect_signed_group(y, g, (float)(1 + 2 * low_scale(g / 4)), tempo_iq3s_grid[index_of(2 * g, 9)],
                            tempo_iq3s_grid[index_of(2 * g + 1, 9)], signs8_of(g), "iq3_s");
}

/* Group g of y is dl * (point[j] + delta), delta -1/8 when `minus`, else +1/8. */
static void expect_shifted_group(const float *y, int g, float dl, const int8_t *point, int minus, const char *type) {
    for (int j = 0; j < 8; j++) {
        float want = dl * ((float)point[j] + (minus ? -0.125f : 0.125f));
        cr_expect_eq(y[8 * g + j], want, "%s group %d value %d: %g, want %g", type, g, j, y[8 * g + j], want);
    }
}

/* IQ1_S (d = 1): index low byte in qs[g]; per 32 values a 16-bit qh: bits 3l.. index l's high 3
 * bits, 12-14 a scale s (dl = 2s + 1), 15 the delta's sign. */
Test(quant_grids, iq1_s_eleven_bit_index_scale_delta) {
    uint8_t b[50];
    float y[256];
    put16(b, 0x3C00);
    for (int ib = 0; ib < 8; ib++) {
        unsigned qh = (low_scale(ib) & 7) << 12 | (unsigned)(ib % 3 == 1) << 15;
        for (int l = 0; l < 4; l++) b[2 + 4 * ib + l] = (uint8_t)index_of(4 * ib + l, 11), qh |= (index_of(4 * ib + l, 11) >> 8) << 3 * l;
        put16(b + 34 + 2 * ib, qh);
    }
    tempo_dequantize(WEIGHT_IQ1_S, b, 256, y);
    for (int g = 0; g < 32; g++)
        expect_shifted_group(y, g, (float)(2 * (low_scale(g / 4) & 7) + 1), tempo_iq1s_grid[index_of(g, 11)], g / 4 % 3 == 1, "iq1_s");
}

/* IQ1_M (d = 0x3C21 = 1.0322265625, its nibbles 1, 2, C, 3 in the top nibbles of the four scale
 * words): group l's high index bits (low 3) and delta sign (bit 3) in nibble l%2 of qh[2ib + l/2];
 * 3-bit scales s1 (groups 0-1) and s2 (2-3) at bits 6(ib%2) and 6(ib%2)+3 of word ib/2. */
Test(quant_grids, iq1_m_scattered_scale_and_nibbles) {
    uint8_t b[56] = {0};
    float y[256], d = 0x1.084p0f;
    unsigned words[4] = {0x1000, 0x2000, 0xC000, 0x3000};
    for (int g = 0; g < 32; g++) {
        b[g] = (uint8_t)index_of(g, 11);
        unsigned nibble = index_of(g, 11) >> 8 | (unsigned)(g % 3 == 0) << 3;
        b[32 + g / 2] |= (uint8_t)(nibble << 4 * (g % 2));
    }
    for (int ib = 0; ib < 8; ib++) words[ib / 2] |= ((low_scale(ib) & 7) | (high_scale(ib) & 7) << 3) << 6 * (ib % 2);
    for (int k = 0; k < 4; k++) put16(b + 48 + 2 * k, words[k]);
    tempo_dequantize(WEIGHT_IQ1_M, b, 256, y);
    for (int g = 0; g < 32; g++) {
        unsigned s = g % 4 < 2 ? low_scale(g / 4) & 7 : high_scale(g / 4) & 7;
        expect_shifted_group(y, g, d * (float)(2 * s + 1), tempo_iq1s_grid[index_of(g, 11)], g % 3 == 0, "iq1_m");
    }
}

/* Block sizes as ggml-common.h's static_asserts state them. */
Test(quant_grids, block_sizes_match_ggml) {
    struct { WeightType t; size_t bytes; } want[] = {
        {WEIGHT_IQ2_XXS, 2 + 256 / 8 * 2},      {WEIGHT_IQ2_XS, 2 + 256 / 8 * 2 + 256 / 32}, {WEIGHT_IQ2_S, 2 + 256 / 4 + 256 / 16},
        {WEIGHT_IQ3_XXS, 2 + 3 * (256 / 8)},    {WEIGHT_IQ3_S, 2 + 13 * (256 / 32) + 256 / 64},
        {WEIGHT_IQ1_S, 2 + 256 / 8 + 256 / 16}, {WEIGHT_IQ1_M, 256 / 8 + 256 / 16 + 256 / 32}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_expect_eq(tempo_block_values(want[i].t), 256, "%s", tempo_weight_type_name(want[i].t));
        cr_expect_eq(tempo_block_bytes(want[i].t), want[i].bytes, "%s", tempo_weight_type_name(want[i].t));
    }
}

/* The generated grids hold only their types' levels (IQ2: 8, 25, 43; IQ3_XXS: 4..62 in steps of
 * 8, and 62; IQ3_S: odd 1..15; IQ1: -1, 0, 1), and no two points of a grid are equal. */
Test(quant_grids, generated_grids_hold_their_levels) {
    const struct { const uint8_t *grid; int points, width; const char *name; } g[] = {
        {&tempo_iq2xxs_grid[0][0], 256, 8, "iq2xxs"}, {&tempo_iq2xs_grid[0][0], 512, 8, "iq2xs"}, {&tempo_iq2s_grid[0][0], 1024, 8, "iq2s"},
        {&tempo_iq3xxs_grid[0][0], 256, 4, "iq3xxs"}, {&tempo_iq3s_grid[0][0], 512, 4, "iq3s"},
        {(const uint8_t *)&tempo_iq1s_grid[0][0], 2048, 8, "iq1s"}};
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++)
        for (int i = 0; i < g[k].points; i++) {
            const uint8_t *p = g[k].grid + (size_t)i * g[k].width;
            for (int j = 0; j < g[k].width; j++) {
                int v = g[k].name[2] == '1' ? (int)(int8_t)p[j] : p[j];
                int ok = g[k].name[2] == '2'   ? v == 8 || v == 25 || v == 43
                         : g[k].name[2] == '1' ? v >= -1 && v <= 1
                         : g[k].name[3] == 'x' ? (v >= 4 && v <= 52 && v % 8 == 4) || v == 62
                                               : v % 2 == 1 && v <= 15;
                cr_expect(ok, "%s point %d value %d is %d", g[k].name, i, j, v);
            }
            for (int e = 0; e < i; e++)
                if (memcmp(p, g[k].grid + (size_t)e * g[k].width, (size_t)g[k].width) == 0)
                    cr_expect_fail("%s points %d and %d are equal", g[k].name, e, i);
        }
}
