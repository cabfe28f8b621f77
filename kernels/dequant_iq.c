/* dequant_iq.c - the IQ types whose values are points of ggml's lookup
 * grids: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M, each a
 * super-block of 256 values in groups of 8 (IQ3: two grid points of 4).
 * A group is a grid index, a scale per 32 values and (IQ2, IQ3) 8 signs;
 * IQ1 has no signs but a shift of +-1/8. The grids (iq_grids.h) are
 * generated at build time from llama.cpp's ggml-common.h (NOTES §16).
 *
 * Written from ggml's block layouts (ggml-common.h) and its reference
 * dequantize_row_* (ggml-quants.c): the same float operations in the same
 * order; halves and 16/32-bit fields read byte by byte (little-endian, any
 * alignment). */
#include "iq_grids.h"
#include "kernels.h"

/* Little-endian 16- and 32-bit fields at p. */
static unsigned u16_at(const uint8_t *p) { return (unsigned)(p[0] | p[1] << 8); }
static uint32_t u32_at(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* The 8 signs of a 7-bit sign index (ggml's ksigns_iq2xs): bit j set makes
 * value j negative; bit 7 is the parity of bits 0..6, so every group of 8
 * has an even number of minus signs and the eighth need not be stored. */
static unsigned signs_of(unsigned index7) { return index7 | (unsigned)__builtin_parity(index7) << 7; }

/* db * grid value, negated when the sign bit is set. ggml multiplies by
 * -1 or 1; a negation is the same float for every value but NaN, whose sign
 * x * -1 keeps on x86 and a negation flips. GCC compiles ggml's product to
 * the negation at -O3 but not always: spelled here, the vector decoders
 * (unpack_grids.h) can match it bit for bit. */
static float signed_value(float db, uint8_t grid, unsigned negative) {
    float v = db * (float)grid;
    return negative ? -v : v;
}

/* Group of 8 = scale * grid point, value j negated when bit j of signs is set. */
static void signed_group(const uint8_t *grid, float db, unsigned signs, float *y) {
    for (int j = 0; j < 8; j++) y[j] = signed_value(db, grid[j], signs >> j & 1);
}

/* IQ2_XXS: d, then per 32 values 8 bytes: 4 grid indices (one byte each,
 * tempo_iq2xxs_grid) and a 32-bit word of four 7-bit sign indices (bits
 * 7l..7l+6) and a 4-bit scale s (bits 28..31); db = d * (0.5 + s) * 0.25. */
void tempo_dequant_iq2_xxs(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *q = b + 2;
    for (int ib = 0; ib < 8; ib++, q += 8) {
        uint32_t aux = u32_at(q + 4);
        float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
        for (int l = 0; l < 4; l++, y += 8) signed_group(tempo_iq2xxs_grid[q[l]], db, signs_of(aux >> 7 * l & 127), y);
    }
}

/* IQ2_XS: d, qs[32] 16-bit (a 9-bit index into tempo_iq2xs_grid and a 7-bit
 * sign index above it), scales[8]: the low nibble scales the first 16 values
 * of a 32, the high nibble the second; db = d * (0.5 + s) * 0.25. */
void tempo_dequant_iq2_xs(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 2, *scales = b + 66;
    for (int ib = 0; ib < 8; ib++) {
        float db[2] = {d * (0.5f + (float)(scales[ib] & 0x0F)) * 0.25f, d * (0.5f + (float)(scales[ib] >> 4)) * 0.25f};
        for (int l = 0; l < 4; l++, y += 8) {
            unsigned q = u16_at(qs + 2 * (4 * ib + l));
            signed_group(tempo_iq2xs_grid[q & 511], db[l / 2], signs_of(q >> 9), y);
        }
    }
}

/* IQ2_S: d, qs[32] (low 8 bits of a 10-bit index into tempo_iq2s_grid),
 * signs[32] (one byte per group, all 8 stored), qh[8] (bits 2l..2l+1 of
 * qh[ib] are the index's bits 8..9 for group l of 32 values ib), scales[8]
 * as IQ2_XS's. */
void tempo_dequant_iq2_s(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *scales = b + 74;
    for (int ib = 0; ib < 8; ib++) {
        float db[2] = {d * (0.5f + (float)(scales[ib] & 0x0F)) * 0.25f, d * (0.5f + (float)(scales[ib] >> 4)) * 0.25f};
        for (int l = 0; l < 4; l++, y += 8) {
            unsigned index = qs[4 * ib + l] | (qh[ib] >> 2 * l & 3) << 8;
            signed_group(tempo_iq2s_grid[index], db[l / 2], signs[4 * ib + l], y);
        }
    }
}

/* Two grid points of 4 with the 8 signs of a group: values 0..3 from g1, 4..7 from g2. */
static void signed_pair(const uint8_t *g1, const uint8_t *g2, float db, unsigned signs, float *y) {
    for (int j = 0; j < 4; j++) {
        y[j] = signed_value(db, g1[j], signs >> j & 1);
        y[j + 4] = signed_value(db, g2[j], signs >> (j + 4) & 1);
    }
}

/* IQ3_XXS: d, qs[64] (two byte indices into tempo_iq3xxs_grid per group),
 * then per 32 values a 32-bit word as IQ2_XXS's; db = d * (0.5 + s) * 0.5. */
void tempo_dequant_iq3_xxs(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 2, *words = b + 66;
    for (int ib = 0; ib < 8; ib++, qs += 8) {
        uint32_t aux = u32_at(words + 4 * ib);
        float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
        for (int l = 0; l < 4; l++, y += 8)
            signed_pair(tempo_iq3xxs_grid[qs[2 * l]], tempo_iq3xxs_grid[qs[2 * l + 1]], db, signs_of(aux >> 7 * l & 127), y);
    }
}

/* IQ3_S: d, qs[64] (low 8 bits of 9-bit indices into tempo_iq3s_grid, 8 per
 * 32 values), qh[8] (bit k of qh[ib] is bit 8 of index k of 32 values ib),
 * signs[32] (one byte per group), scales[4] (a nibble per 32 values, low
 * first); db = d * (1 + 2s). */
void tempo_dequant_iq3_s(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
    for (int ib = 0; ib < 8; ib++, qs += 8) {
        float db = d * (float)(1 + 2 * (scales[ib / 2] >> 4 * (ib % 2) & 0x0F));
        for (int l = 0; l < 4; l++, y += 8) {
            unsigned i1 = qs[2 * l] | (qh[ib] >> 2 * l & 1) << 8, i2 = qs[2 * l + 1] | (qh[ib] >> (2 * l + 1) & 1) << 8;
            signed_pair(tempo_iq3s_grid[i1], tempo_iq3s_grid[i2], db, signs[4 * ib + l], y);
        }
    }
}

/* IQ1's shift of a group: -1/8 when the bit is set, +1/8 when not (ggml's IQ1S_DELTA). */
static float iq1_delta(unsigned bit) { return bit ? -0.125f : 0.125f; }

/* Group of 8 = dl * (grid point + delta), the grid's values -1, 0, 1. */
static void shifted_group(const int8_t *grid, float dl, float delta, float *y) {
    for (int j = 0; j < 8; j++) y[j] = dl * ((float)grid[j] + delta);
}

/* IQ1_S: d, qs[32] (low 8 bits of 11-bit indices into tempo_iq1s_grid),
 * qh[8] 16-bit, one per 32 values: bits 3l..3l+2 are index l's high bits,
 * 12..14 the scale s (dl = d * (2s + 1)), 15 the sign of the delta. */
void tempo_dequant_iq1_s(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 2, *qh = b + 34;
    for (int ib = 0; ib < 8; ib++) {
        unsigned h = u16_at(qh + 2 * ib);
        float dl = d * (float)(2 * (h >> 12 & 7) + 1), delta = iq1_delta(h & 0x8000);
        for (int l = 0; l < 4; l++, y += 8) shifted_group(tempo_iq1s_grid[qs[4 * ib + l] | (h >> 3 * l & 7) << 8], dl, delta, y);
    }
}

/* IQ1_M: qs[32], qh[16], scales[8] read as four 16-bit words w0..w3. The
 * block's f16 scale is the top nibbles of w0..w3 (w0's lowest). Per 32
 * values ib: 3-bit scales s1 (first 16 values), s2 (second 16) at bits
 * 6(ib%2) and 6(ib%2)+3 of word ib/2, dl = d * (2s + 1); group l's index is
 * qs | (nibble l%2 of qh[2ib + l/2], low 3 bits) << 8, its bit 3 the sign
 * of the delta. */
void tempo_dequant_iq1_m(const uint8_t *b, float *y) {
    const uint8_t *qs = b, *qh = b + 32, *sc = b + 48;
    unsigned w[4] = {u16_at(sc), u16_at(sc + 2), u16_at(sc + 4), u16_at(sc + 6)};
    float d = tempo_f16_to_f32((uint16_t)(w[0] >> 12 | (w[1] >> 8 & 0x00F0) | (w[2] >> 4 & 0x0F00) | (w[3] & 0xF000)));
    for (int ib = 0; ib < 8; ib++) {
        unsigned s = w[ib / 2] >> 6 * (ib % 2);
        float dl[2] = {d * (float)(2 * (s & 7) + 1), d * (float)(2 * (s >> 3 & 7) + 1)};
        for (int l = 0; l < 4; l++, y += 8) {
            unsigned nibble = qh[2 * ib + l / 2] >> 4 * (l % 2) & 0x0F;
            shifted_group(tempo_iq1s_grid[qs[4 * ib + l] | (nibble & 7) << 8], dl[l / 2], iq1_delta(nibble & 8), y);
        }
    }
}
