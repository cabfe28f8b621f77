/* ggml_dots_more.c - ggml's dot products for the other weight types
 * llama-quantize writes (Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K, TQ1_0,
 * TQ2_0, Q1_0, Q2_0) as plain definitions (NOTES "Numerics of real engines"), written from
 * ggml-cpu/arch/x86/quants.c (ggml_vec_dot_*, AVX2 paths, as the zen4
 * build compiles them), llamafile/sgemm.cpp (tinyBLAS_Q0_AVX) and
 * ggml-cpu/arch/x86/repack.cpp (the repacked iq4_nl_8x8 and q2_K_8x8).
 * Integer sums are exact; only the f32 part follows ggml: 8 lanes, lane k
 * adding per block (or super-block) f32(d_w d_x) times the integer sum of
 * products 4k..4k+3 of each 32 values by a fused multiply-add, then
 * hsum_float_8. Each dot makes its integers through a GgmlInts: a block's
 * integers, then its lanes (the grid types: their lanes at once); the
 * plain ones are here, the vectorized ones (the same integers) in
 * ggml_ints_avx.c; ggml_dots_avx.c vectorizes most of these dots whole. */
#include <math.h>
#include <string.h>

#include "../formats/quant.h" /* tempo_f32_to_f16 */
#include "kernels.h"
#include "unpack.h" /* tempo_half_scale: tempo_f16_at's value, inline */

static float round_f16(float x) { return tempo_f16_to_f32(tempo_f32_to_f16(x)); }

/* Q8_1's block sums, as quantize_row_q8_1 forms them with AVX2:
 * s = f16(d sum q), d = amax/127 in f32 (before its rounding to f16). */
void tempo_ggml_q8_1_sums(const float *x, int m, GgmlQ8Row out) {
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++) {
        float amax = 0.0f;
        int sum = 0;
        for (int j = 0; j < TEMPO_GGML_Q8_0_BLOCK; j++) {
            amax = fmaxf(amax, fabsf(x[b * TEMPO_GGML_Q8_0_BLOCK + j]));
            sum += out.q[b * TEMPO_GGML_Q8_0_BLOCK + j];
        }
        out.sums[b] = round_f16(amax / 127.0f * (float)sum);
    }
}

/* The fifth bit of value j (0..31) of a Q5_0/Q5_1 block: bit j of qh. */
static int fifth_bit(const uint8_t *qh, int j) { return (qh[j / 8] >> (j % 8) & 1) << 4; }

/* The 32 weight integers of a Q4_1, Q5_0, Q5_1 or IQ4_NL block (low
 * nibbles are values 0..15): Q4_1 the nibble, Q5_1 nibble | fifth bit,
 * Q5_0 that - 16, IQ4_NL kvalues_iq4nl[nibble]. */
static void block32_ints(WeightType t, const uint8_t *b, int16_t *q) {
    const uint8_t *qs = b + tempo_block32_nibbles_at(t), *qh = b + tempo_q5_high_bits_at(t);
    for (int j = 0; j < TEMPO_GGML_Q8_0_BLOCK; j++) {
        int nibble = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
        if (t == WEIGHT_IQ4_NL) q[j] = tempo_iq4_levels[nibble];
        else if (t == WEIGHT_Q4_1) q[j] = (int16_t)nibble;
        else q[j] = (int16_t)((nibble | fifth_bit(qh, j)) - (t == WEIGHT_Q5_0 ? 16 : 0));
    }
}

/* IQ4_XS: value 32g + t is its sub-block's scale - 32 times the level of its nibble. */
static void iq4_xs_ints(const uint8_t *b, int16_t *w) {
    for (int g = 0; g < 8; g++) {
        const uint8_t *qs = b + 8 + 16 * g;
        int ls = tempo_iq4_xs_scale(b, g) - 32;
        for (int t = 0; t < 32; t++) w[32 * g + t] = (int16_t)(ls * tempo_iq4_levels[t < 16 ? qs[t] & 15 : qs[t - 16] >> 4]);
    }
}

/* Value t (0..31) of 32-value chunk c (0..7) of a Q2_K/Q3_K super-block's 2
 * low bits: bits 2(c%4).. of byte 32(c/4) + t of qs. */
static int low2(const uint8_t *qs, int c, int t) { return qs[32 * (c / 4) + t] >> 2 * (c % 4) & 3; }

/* Q3_K: value 32c + t is its 16-value sub-block's scale - 32 times its low
 * 2 bits, minus 4 where its hmask bit is clear. */
static void q3_k_ints(const uint8_t *b, int16_t *w) {
    const uint8_t *hmask = b, *qs = b + 32, *scales = b + 96;
    for (int c = 0; c < 8; c++)
        for (int t = 0; t < 32; t++)
            w[32 * c + t] = (int16_t)((tempo_q3_k_scale(scales, 2 * c + t / 16) - 32) * (low2(qs, c, t) - (hmask[t] >> c & 1 ? 0 : 4)));
}

/* Q2_K: value 32c + t is its 16-value sub-block's scale (the low nibble) times its 2 bits. */
static void q2_k_ints(const uint8_t *b, int16_t *w) {
    for (int c = 0; c < 8; c++)
        for (int t = 0; t < 32; t++) w[32 * c + t] = (int16_t)((b[2 * c + t / 16] & 15) * low2(b + 16, c, t));
}

/* Trit n (0..4) of a TQ1_0 byte: the byte times 3^n (mod 256) brings it to
 * the top, (x * 3) >> 8 reads it (ggml's AVX2 avg_epu8 steps give the same). */
static int trit(uint8_t byte, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return ((uint8_t)(byte * pow3[n]) * 3) >> 8;
}

/* The 256 ternary digits (0, 1, 2; the value is q - 1) of a TQ1_0 or
 * TQ2_0 super-block, in value order (tempo_dequant_tq1_0, _tq2_0). */
static void ternary_digits(WeightType t, const uint8_t *b, int16_t *q) {
    if (t == WEIGHT_TQ2_0) {
        for (int v = 0; v < TEMPO_QK_K; v++) q[v] = (int16_t)(b[32 * (v / 128) + v % 32] >> 2 * (v / 32 % 4) & 3);
        return;
    }
    for (int v = 0; v < 160; v++) q[v] = (int16_t)trit(b[v % 32], v / 32);
    for (int v = 160; v < 240; v++) q[v] = (int16_t)trit(b[32 + (v - 160) % 16], (v - 160) / 16);
    for (int v = 240; v < TEMPO_QK_K; v++) q[v] = (int16_t)trit(b[48 + (v - 240) % 4], (v - 240) / 4);
}

/* The integers of every type whose dot is below (the grid types: ggml_dots_iq.c). */
static void block_ints(WeightType t, const uint8_t *b, int16_t *w) {
    switch (t) {
    case WEIGHT_IQ4_XS: iq4_xs_ints(b, w); break;
    case WEIGHT_Q3_K: q3_k_ints(b, w); break;
    case WEIGHT_Q2_K: q2_k_ints(b, w); break;
    case WEIGHT_TQ1_0: case WEIGHT_TQ2_0: ternary_digits(t, b, w); break;
    case WEIGHT_Q4_1: case WEIGHT_Q5_0: case WEIGHT_Q5_1: case WEIGHT_IQ4_NL: block32_ints(t, b, w); break;
    default: tempo_ggml_iq_ints(t, b, w); break;
    }
}

/* ggml's integer lanes as their definition: lane k, products 4k..4k+3 of each 32 values. */
static void lanes_plain(const int16_t *w, const int8_t *q8, int n, int32_t lane[8]) {
    for (int k = 0; k < 8; k++) lane[k] = 0;
    for (int v = 0; v < n; v++) lane[v % 32 / 4] += w[v] * q8[v];
}

/* A grid type's lanes as their definition: its integers, then their lanes (IQ1: its delta terms' too). */
static void grid_lanes_plain(WeightType t, const uint8_t *b, const int8_t *q8, int32_t lane[8], int32_t delta[8]) {
    int16_t q[2 * TEMPO_QK_K];
    tempo_ggml_iq_ints(t, b, q);
    lanes_plain(q, q8, TEMPO_QK_K, lane);
    for (int k = 0; k < 8; k++) delta[k] = 0;
    if (t == WEIGHT_IQ1_S || t == WEIGHT_IQ1_M) lanes_plain(q + TEMPO_QK_K, q8, TEMPO_QK_K, delta);
}

const GgmlInts TEMPO_GGML_INTS_PLAIN = {block_ints, lanes_plain, grid_lanes_plain};

/* The 8 integer lanes of the block of type t at w times q8: its integers, then their lanes (not IQ1,
 * whose integers are twice as many: tempo_ggml_iq_dot). */
static void block_lanes(const GgmlInts *ints, WeightType t, const uint8_t *w, const int8_t *q8, int32_t lane[8]) {
    int16_t q[TEMPO_QK_K];
    ints->ints(t, w, q);
    ints->lanes(q, q8, tempo_block_values(t), lane);
}

/* The sum of the 8 lanes of n values (exact). */
static int lanes_sum(const GgmlInts *ints, const int16_t *w, const int8_t *q8, int n) {
    int32_t lane[8];
    ints->lanes(w, q8, n, lane);
    return tempo_ggml_lanes_total(lane);
}

/* One Q4_1, Q5_0, Q5_1 or IQ4_NL row times one Q8_0/Q8_1 row as
 * ggml_vec_dot_q4_1_q8_1 / _q5_0_q8_0 / _q5_1_q8_1 (and tinyBLAS_Q0_AVX,
 * Q5_0's and IQ4_NL's batches) compute it with AVX2: lane k adds per block
 * f32(d_w d_x) times the integer sum of products 4k..4k+3 by a fused
 * multiply-add; Q4_1 and Q5_1 add the min term m_w s_x of each block to a
 * separate f32 sum (summs += m * s, one vfmadd231ss in llama.cpp's zen4
 * build); hsum_float_8(lanes) + summs. */
float tempo_ggml_block32_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    float lane[8] = {0}, summs = 0.0f;
    size_t bytes = tempo_block_bytes(t);
    int has_min = t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1;
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++, w += bytes) {
        int32_t sum[8];
        block_lanes(ints, t, w, x.q + b * TEMPO_GGML_Q8_0_BLOCK, sum);
        float d = tempo_half_scale(w) * x.d[b];
        if (has_min) summs = fmaf(tempo_half_scale(w + 2), x.sums[b], summs);
        for (int k = 0; k < 8; k++) lane[k] = fmaf(d, (float)sum[k], lane[k]);
    }
    return has_min ? tempo_ggml_hsum_float_8(lane) + summs : tempo_ggml_hsum_float_8(lane);
}

/* One IQ4_NL row times one Q8_0 row as ggml_vec_dot_iq4_nl_q8_0 computes
 * it with AVX2 (a call of one row; tinyBLAS takes calls of 2+ in
 * tempo_ggml_block32_dot's order): blocks in pairs, the even block's lanes in one
 * accumulator and the odd block's in another (lane k: products 4k..4k+3,
 * a fused multiply-add of f32(d_x d_w)), hsum_float_8 of their lane sums;
 * an odd last block added as fma(d, isum, sum) (vfmadd231ss). */
float tempo_ggml_iq4_nl_vec_dot(const GgmlInts *ints, const uint8_t *w, GgmlQ8Row x, int m) {
    float lane[2][8] = {{0}};
    int blocks = m / TEMPO_GGML_Q8_0_BLOCK, b = 0;
    int32_t sum[8];
    for (; b < blocks - blocks % 2; b++, w += 18) {
        block_lanes(ints, WEIGHT_IQ4_NL, w, x.q + b * TEMPO_GGML_Q8_0_BLOCK, sum);
        float d = x.d[b] * tempo_half_scale(w);
        for (int k = 0; k < 8; k++) lane[b % 2][k] = fmaf(d, (float)sum[k], lane[b % 2][k]);
    }
    for (int k = 0; k < 8; k++) lane[0][k] += lane[1][k];
    float total = tempo_ggml_hsum_float_8(lane[0]);
    if (b < blocks) {
        block_lanes(ints, WEIGHT_IQ4_NL, w, x.q + b * TEMPO_GGML_Q8_0_BLOCK, sum);
        total = fmaf(x.d[b] * tempo_half_scale(w), (float)tempo_ggml_lanes_total(sum), total);
    }
    return total;
}

/* One IQ4_XS, Q3_K or Q2_K row times one Q8_K row as ggml_vec_dot_iq4_xs_q8_K,
 * _q3_K_q8_K and _q2_K_q8_K compute it with AVX2: per super-block 8 integer
 * lanes (lane k: the scaled sums of products 4k..4k+3 of each 32 values),
 * one fused multiply-add of f32(d_w d_x) (IQ4_XS: d_w at 0; Q3_K: at 108;
 * Q2_K: at 80, after lane k's fused multiply-add of the integer
 * min_2k bsum_2k + min_2k+1 bsum_2k+1 of its 16-value sub-blocks times
 * f32(-d_x dmin), dmin at 82); hsum_float_8. */
float tempo_ggml_k_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    float lane[8] = {0};
    size_t bytes = tempo_block_bytes(t);
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += bytes) {
        int32_t sum[8];
        block_lanes(ints, t, w, x.q + b * TEMPO_QK_K, sum);
        if (t == WEIGHT_Q2_K) {
            const uint8_t *scales = w; /* scale | min << 4 of each 16 values */
            const int16_t *bsums = x.bsums + b * (TEMPO_QK_K / 16);
            float dmin = -x.d[b] * tempo_half_scale(w + 82);
            for (int k = 0; k < 8; k++) {
                int mins = (scales[2 * k] >> 4) * bsums[2 * k] + (scales[2 * k + 1] >> 4) * bsums[2 * k + 1];
                lane[k] = fmaf(dmin, (float)mins, lane[k]);
            }
        }
        float d = t == WEIGHT_IQ4_XS ? tempo_half_scale(w) * x.d[b] : x.d[b] * tempo_half_scale(w + (t == WEIGHT_Q3_K ? 108 : 80));
        for (int k = 0; k < 8; k++) lane[k] = fmaf(d, (float)sum[k], lane[k]);
    }
    return tempo_ggml_hsum_float_8(lane);
}

/* One TQ1_0 or TQ2_0 row times one Q8_K row as ggml_vec_dot_tq1_0_q8_K /
 * _tq2_0_q8_K compute it with AVX2: per super-block 8 integer lanes, lane
 * k the sums of digit times q8 over values 4k..4k+3 of each 32 minus
 * bsum_2k + bsum_2k+1 (the -1 of each value, taken from the 16-value sums
 * lane by lane), times f32(d_x d_w) added in one fused multiply-add (the
 * source's separate mul and add, contracted by GCC: vfmadd231ps);
 * hsum_float_8. */
float tempo_ggml_ternary_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    float lane[8] = {0};
    size_t bytes = tempo_block_bytes(t);
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += bytes) {
        const int16_t *bsums = x.bsums + b * (TEMPO_QK_K / 16);
        int32_t sum[8];
        block_lanes(ints, t, w, x.q + b * TEMPO_QK_K, sum);
        float d = x.d[b] * tempo_half_scale(w + bytes - 2);
        for (int k = 0; k < 8; k++) lane[k] = fmaf((float)(sum[k] - bsums[2 * k] - bsums[2 * k + 1]), d, lane[k]);
    }
    return tempo_ggml_hsum_float_8(lane);
}

/* IQ4_NL repacked (iq4_nl_8x8): ggml_gemv/gemm_iq4_nl_8x8_q8_0 run Q4_0's
 * kernels (gemv/gemm_q4_b32_8x8_q8_0_lut_avx) with IQ4_NL's levels as the
 * lookup table: per 32-value block the exact integer sum of products,
 * added to one f32 accumulator by a fused multiply-add with f32(d_w d_x). */
float tempo_ggml_iq4_nl_8x8_dot(const GgmlInts *ints, const uint8_t *w, GgmlQ8Row x, int m) {
    float acc = 0.0f;
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++, w += 18) {
        int32_t sum[8];
        block_lanes(ints, WEIGHT_IQ4_NL, w, x.q + b * TEMPO_GGML_Q8_0_BLOCK, sum);
        acc = fmaf((float)tempo_ggml_lanes_total(sum), tempo_half_scale(w) * x.d[b], acc);
    }
    return acc;
}

/* Q2_K repacked (q2_K_8x8, x86 with AVX-512): ggml_gemv_q2_K_8x8_q8_K
 * (decoding, and the 1 to 3 rows a call has beyond a multiple of 4) sums
 * per super-block one exact integer isum = sum_g sc_g sum_t q2 q8 and one
 * imin = sum_g mn_g bsum16_g over the 16 sub-blocks of 16, then
 * acc = fma(f32(isum), f32(d_w d_x), acc), acc_min = fma(f32(imin),
 * f32(dmin_w d_x), acc_min), output acc - acc_min. ggml_gemm_q2_K_8x8_q8_K
 * (the groups of 4 rows; its AVX-512 and AVX2 paths alike) does the same
 * per half super-block (128 values, 8 sub-blocks) (`gemm`). */
float tempo_ggml_q2_k_8x8_dot(const GgmlInts *ints, const uint8_t *w, GgmlQ8Row x, int m, int gemm) {
    float acc = 0.0f, acc_min = 0.0f;
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 84) {
        const uint8_t *scales = w; /* scale | min << 4 of each 16 values */
        const int8_t *q8 = x.q + b * TEMPO_QK_K;
        float d = tempo_half_scale(w + 80) * x.d[b], dmin = tempo_half_scale(w + 82) * x.d[b];
        int16_t q[TEMPO_QK_K];
        ints->ints(WEIGHT_Q2_K, w, q);
        int isum = 0, imin = 0;
        for (int h = 0; h < 2; h++) { /* the halves of 128 values: sub-blocks 8h .. 8h+7 */
            isum += lanes_sum(ints, q + 128 * h, q8 + 128 * h, 128);
            for (int g = 8 * h; g < 8 * h + 8; g++) imin += (scales[g] >> 4) * x.bsums[b * 16 + g];
            if (gemm || h == 1) {
                acc = fmaf((float)isum, d, acc), acc_min = fmaf((float)imin, dmin, acc_min);
                isum = imin = 0;
            }
        }
    }
    return acc - acc_min;
}

/* Lane k's integer sum of one Q8_0 block times its 32 Q1_0 signs (bit j of
 * `bits` set: +q8[j], clear: -q8[j]): products 4k..4k+3. Branch-free, so the
 * compiler vectorizes it (integer sums: any order gives the same). */
static void q1_0_lane_sums(uint32_t bits, const int8_t *q8, int sum[8]) {
    int p[32];
    for (int j = 0; j < 32; j++) p[j] = (int)(bits >> j & 1) * 2 * q8[j] - q8[j];
    for (int k = 0; k < 8; k++) sum[k] = p[4 * k] + p[4 * k + 1] + p[4 * k + 2] + p[4 * k + 3];
}

/* One Q8_0 block times 32 Q2_0 values q - 1, q of value j bits 2j..2j+1 of
 * the block's 8 code bytes read as two 32-bit words (little-endian, as the
 * decoders read them): the integer sum. */
static int q2_0_block_sum(const uint8_t *qs, const int8_t *q8) {
    int s = 0;
    for (int h = 0; h < 2; h++) {
        uint32_t half;
        memcpy(&half, qs + 4 * h, sizeof half);
        for (int j = 0; j < 16; j++) s += ((int)(half >> 2 * j & 3) - 1) * q8[16 * h + j];
    }
    return s;
}

/* One Q1_0 row times one Q8_0 row as ggml_vec_dot_q1_0_q8_0 computes it
 * with AVX2: per 128-value block, lane k of its four Q8_0 blocks K gets the
 * integer sum s of products 4k..4k+3 (q8 or -q8 by the sign bit): a_k =
 * d_x0 s for K = 0, then fma(d_xK, s, a_k); lane k then adds fma(d_w, a_k,
 * lane_k); hsum_float_8. */
float tempo_ggml_q1_0_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    float lane[8] = {0};
    (void)ints, (void)t; /* one type; its integer sums below */
    for (int b = 0; b < m / 128; b++, w += 18) {
        float block[8], d_w = tempo_half_scale(w);
        for (int K = 0; K < 4; K++) {
            int sum[8];
            uint32_t bits;
            memcpy(&bits, w + 2 + 4 * K, sizeof bits); /* bit j: value 32K + j (little-endian, as the decoders read it) */
            q1_0_lane_sums(bits, x.q + 128 * b + 32 * K, sum);
            for (int k = 0; k < 8; k++)
                block[k] = K == 0 ? x.d[4 * b] * (float)sum[k] : fmaf(x.d[4 * b + K], (float)sum[k], block[k]);
        }
        for (int k = 0; k < 8; k++) lane[k] = fmaf(d_w, block[k], lane[k]);
    }
    return tempo_ggml_hsum_float_8(lane);
}

/* One Q2_0 row times one Q8_0 row as ggml_vec_dot_q2_0_q8_0_generic (x86
 * has no other): per 64-value block the integer sum s_K of each of its two
 * Q8_0 blocks, b = fma(d_x1, s_1, fma(d_x0, s_0, 0)), then sum = fma(d_w, b, sum), in
 * block order (the zen4 build fuses each multiply-add). */
float tempo_ggml_q2_0_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    float sum = 0.0f;
    (void)ints, (void)t; /* one type; its integer sums below */
    for (int b = 0; b < m / 64; b++, w += 18) {
        float block = 0.0f;
        for (int K = 0; K < 2; K++) {
            int s = q2_0_block_sum(w + 2 + 8 * K, x.q + 64 * b + 32 * K);
            block = fmaf(x.d[2 * b + K], (float)s, block);
        }
        sum = fmaf(tempo_half_scale(w), block, sum);
    }
    return sum;
}
