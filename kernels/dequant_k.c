/* dequant_k.c - the low-bit types that llama-quantize's Q2_K, Q3_K and IQ4
 * presets and the ternary ones store: the super-blocks of 256 values Q2_K,
 * Q3_K, IQ4_XS, TQ1_0 and TQ2_0, IQ4_NL (32 values, IQ4_XS's levels), and
 * the sign bits of Q1_0 (128 values) and the 2-bit codes of Q2_0 (64).
 * Q4_K, Q5_K and Q6_K are in dequant.c, which calls these one block at a
 * time.
 *
 * Written from ggml's block layouts (ggml-common.h) and its reference
 * dequantize_row_* (ggml-quants.c): the same float operations in the same
 * order, a product and a following difference as separate statements (no
 * FMA), the halves read byte by byte (little-endian, any alignment). */
#include "kernels.h"

/* Q2_K: 16 sub-blocks of 16 with a 4-bit scale (low nibble) and min (high
 * nibble) each; 2-bit q, four to a byte: in each half (128 values, 32 bytes
 * of qs) the pair of sub-blocks j (0..3) takes bits 2j..2j+1 of bytes 0..15
 * and 16..31. y = (d*sc) * q - (dmin*m). */
void tempo_dequant_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *q = b + 16;
    float d = tempo_f16_at(b + 80), dmin = tempo_f16_at(b + 82);
    int is = 0;
    for (int half = 0; half < 2; half++, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int part = 0; part < 2; part++, is++, y += 16) {
                float dl = d * (float)(scales[is] & 0x0F), ml = dmin * (float)(scales[is] >> 4);
                for (int l = 0; l < 16; l++) {
                    float p = dl * (float)((q[16 * part + l] >> shift) & 3);
                    y[l] = p - ml;
                }
            }
}

/* Q3_K: 16 sub-blocks of 16; q is 2 low bits (Q2_K's order) and a high bit
 * from hmask (bit 4*half + j of hmask[l] for the pair j of half `half`),
 * the value q - 4 when that bit is clear. y = (d*(sc - 32)) * q. */
void tempo_dequant_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *q = b + 32, *scales = b + 96;
    float d = tempo_f16_at(b + 108);
    int is = 0;
    for (int half = 0; half < 2; half++, q += 32)
        for (int j = 0; j < 4; j++)
            for (int part = 0; part < 2; part++, is++, y += 16) {
                float dl = d * (float)(tempo_q3_k_scale(scales, is) - 32);
                int bit = 1 << (4 * half + j);
                for (int l = 0; l < 16; l++) {
                    int v = ((q[16 * part + l] >> (2 * j)) & 3) - (hmask[16 * part + l] & bit ? 0 : 4);
                    y[l] = dl * (float)v;
                }
            }
}

const int8_t tempo_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* IQ4_NL: Q4_0's nibbles index the 16 non-uniform levels; y = d * kvalues[q]. */
void tempo_dequant_iq4_nl(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)tempo_iq4_levels[qs[j] & 0x0F];
        y[j + 16] = d * (float)tempo_iq4_levels[qs[j] >> 4];
    }
}

/* IQ4_XS: 8 sub-blocks of 32 with a 6-bit scale (low 4 bits in a nibble of
 * scales_l, top 2 in scales_h); each is IQ4_NL's nibble layout.
 * y = (d*(ls - 32)) * kvalues[q]. */
void tempo_dequant_iq4_xs(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 8;
    for (int ib = 0; ib < 8; ib++, qs += 16, y += 32) {
        float dl = d * (float)(tempo_iq4_xs_scale(b, ib) - 32);
        for (int j = 0; j < 16; j++) {
            y[j] = dl * (float)tempo_iq4_levels[qs[j] & 0x0F];
            y[j + 16] = dl * (float)tempo_iq4_levels[qs[j] >> 4];
        }
    }
}

/* Trit n of a byte holding a base-3 fraction: the byte times 3^n (mod 256)
 * brings trit n to the top; (x * 3) >> 8 reads it (0, 1 or 2). */
static float ternary(uint8_t byte, int n, float d) {
    static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    uint8_t x = (uint8_t)(byte * pow3[n]);
    int t = (x * 3) >> 8;
    return (float)(t - 1) * d;
}

/* TQ1_0: ternary values in {-1, 0, 1} * d: five per byte of qs (bytes 0..31
 * give values 0..159, trit n of byte m being value 32n + m; bytes 32..47
 * give 160..239 the same way in 16s), four per byte of qh (240..255). */
void tempo_dequant_tq1_0(const uint8_t *b, float *y) {
    const uint8_t *qs = b, *qh = b + 48;
    float d = tempo_f16_at(b + 52);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++) *y++ = ternary(qs[m], n, d);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++) *y++ = ternary(qs[32 + m], n, d);
    for (int n = 0; n < 4; n++)
        for (int m = 0; m < 4; m++) *y++ = ternary(qh[m], n, d);
}

/* TQ2_0: 2-bit q, four to a byte: bits 2l..2l+1 of byte m of each 32-byte
 * half are value 32l + m of its 128; y = (q - 1) * d. */
void tempo_dequant_tq2_0(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b + 64);
    for (int j = 0; j < 64; j += 32)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) *y++ = (float)(((b[j + m] >> (2 * l)) & 3) - 1) * d;
}

/* Q1_0 (128 values): value j is bit j % 8 of qs[j / 8]; y = d if it is set,
 * else -d; d as ggml converts it (a signaling NaN quieted: no product here
 * would quiet it, as the other types' products do). */
void tempo_dequant_q1_0(const uint8_t *b, float *y) {
    float d = tempo_f16_quieted_at(b), neg_d = -d;
    for (int j = 0; j < 128; j++) y[j] = (b[2 + j / 8] >> (j % 8)) & 1 ? d : neg_d;
}

/* Q2_0 (64 values): value j is bits 2(j % 4)..2(j % 4)+1 of qs[j / 4]; y = (q - 1) * d. */
void tempo_dequant_q2_0(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    for (int j = 0; j < 64; j++) y[j] = (float)(((b[2 + j / 4] >> (2 * (j % 4))) & 3) - 1) * d;
}
