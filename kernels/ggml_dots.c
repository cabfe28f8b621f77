/* ggml_dots.c - ggml's quantized dot products as plain definitions (NOTES
 * "Numerics of real engines"): the activation row quantized to Q8_0 or
 * Q8_K blocks, then one weight row times it in the order of ggml's x86 AVX2
 * code (ggml-cpu/arch/x86/quants.c). Integer sums are exact, so only the f32
 * part follows that code: 8 f32 lanes, each adding per block f32(d_w d_x)
 * times its integer sum in one fused multiply-add, then hsum_float_8. The
 * vectorized versions (ggml_dots_avx.c) are tested bitwise equal to these. */
#include <math.h>
#include <string.h>

#include "../formats/quant.h" /* tempo_f32_to_f16 */
#include "kernels.h"


static float f16_at(const uint8_t *p) { return tempo_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* Q8_0, as quantize_row_q8_0 computes it with AVX: d = amax/127 stored as
 * f16, q = round-half-even(x * (127/amax)); value q d. Returns d. */
static float q8_0_quantize(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int j = 0; j < TEMPO_GGML_Q8_0_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < TEMPO_GGML_Q8_0_BLOCK; j++) q[j] = (int8_t)nearbyintf(x[j] * id);
    return tempo_f16_to_f32(tempo_f32_to_f16(amax / 127.0f));
}

/* Q8_K, as quantize_row_q8_K_ref: max = the value of largest magnitude (the
 * first of them), iscale = -127/max, q = min(127, round-half-even(iscale x)),
 * d = 1/iscale (f32); value q d; bsums the sums of each 16 q. Returns d (0
 * for a block of zeros). */
static float q8_k_quantize(const float *x, int8_t *q, int16_t *bsums) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < TEMPO_QK_K; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    float iscale = amax == 0.0f ? 0.0f : -127.0f / max;
    for (int j = 0; j < TEMPO_QK_K; j++) q[j] = (int8_t)fminf(127.0f, nearbyintf(iscale * x[j]));
    for (int g = 0; g < TEMPO_QK_K / 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += q[16 * g + j];
        bsums[g] = (int16_t)sum;
    }
    return amax == 0.0f ? 0.0f : 1.0f / iscale;
}

void tempo_ggml_quantize_plain(GgmlDotType t, const float *x, int m, GgmlQ8Row out) {
    if (t == GGML_DOT_Q8_K)
        for (int b = 0; b < m / TEMPO_QK_K; b++)
            out.d[b] = q8_k_quantize(x + b * TEMPO_QK_K, out.q + b * TEMPO_QK_K, out.bsums + b * (TEMPO_QK_K / 16));
    else
        for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++)
            out.d[b] = q8_0_quantize(x + b * TEMPO_GGML_Q8_0_BLOCK, out.q + b * TEMPO_GGML_Q8_0_BLOCK);
    if (t == GGML_DOT_Q8_1) tempo_ggml_q8_1_sums(x, m, out);
}

/* A Q8_0 or Q4_0 weight block: its 32 values as integers (Q4_0: nibble - 8,
 * low nibbles first) and its scale. */
static float q_block(WeightType t, const uint8_t *b, int8_t *q) {
    for (int j = 0; j < TEMPO_GGML_Q8_0_BLOCK; j++)
        q[j] = t == WEIGHT_Q8_0 ? (int8_t)b[2 + j] : (int8_t)((j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4) - 8);
    return f16_at(b);
}

/* One weight row times one Q8_0 activation row as ggml computes it on x86
 * (ggml_vec_dot_q8_0_q8_0 / _q4_0_q8_0 with AVX2, and llamafile's
 * tinyBLAS_Q0_AVX for batches): 8 lanes, lane k adding, for each block,
 * f32(d_w d_x) times the integer sum of products 4k..4k+3 in one fused
 * multiply-add; then hsum_float_8. */
static float q8_0_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    (void)ints; /* its own integer sums */
    float lane[8] = {0};
    size_t block_bytes = tempo_block_bytes(t);
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++) {
        int8_t qw[TEMPO_GGML_Q8_0_BLOCK];
        const int8_t *qx = x.q + b * TEMPO_GGML_Q8_0_BLOCK;
        float d = q_block(t, w + b * block_bytes, qw) * x.d[b];
        for (int k = 0; k < 8; k++) {
            int sum = 0;
            for (int j = 4 * k; j < 4 * k + 4; j++) sum += qw[j] * qx[j];
            lane[k] = fmaf(d, (float)sum, lane[k]);
        }
    }
    return tempo_ggml_hsum_float_8(lane);
}

/* One Q6_K row times one Q8_K row as ggml_vec_dot_q6_K_q8_K computes it
 * with AVX2: per super-block an integer in each of 8 lanes, lane k holding
 * the scaled sums of products 4k..4k+3 of each 32-value chunk (6-bit
 * values 0..63; the -32 comes off as 32 sum(scale bsum) over groups 2k and
 * 2k+1), then one fused multiply-add by f32(d_x d_w); then hsum_float_8. */
static float q6_k_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    (void)ints, (void)t; /* one type, its own integer sums: t and ints are there for the table below */
    float lane[8] = {0};
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192), *q8 = x.q + b * TEMPO_QK_K;
        float d = x.d[b] * f16_at(w + 208);
        int sum[8] = {0};
        for (int j = 0; j < 2; j++)
            for (int c = 0; c < 4; c++)
                for (int t = 0; t < 32; t++) {
                    int low = c & 1 ? ql[64 * j + 32 + t] : ql[64 * j + t], h = qh[32 * j + t] >> (2 * c) & 3;
                    int q6 = (c < 2 ? low & 15 : low >> 4) | h << 4;
                    sum[t / 4] += sc[8 * j + 2 * c + (t >= 16)] * q6 * q8[128 * j + 32 * c + t];
                }
        for (int k = 0; k < 8; k++) {
            int bsum0 = 0, bsum1 = 0;
            for (int t = 0; t < 16; t++) bsum0 += q8[32 * k + t], bsum1 += q8[32 * k + 16 + t];
            sum[k] -= 32 * (bsum0 * sc[2 * k] + bsum1 * sc[2 * k + 1]);
            lane[k] = fmaf(d, (float)sum[k], lane[k]);
        }
    }
    return tempo_ggml_hsum_float_8(lane);
}

/* Q4_K's and Q5_K's 6-bit scales and mins of the 8 sub-blocks, from their
 * 12 bytes (get_scale_min_k4). */
void tempo_ggml_k4_scales(const uint8_t *q, int *sc, int *mn) {
    for (int j = 0; j < 8; j++) {
        sc[j] = j < 4 ? q[j] & 63 : (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
        mn[j] = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* The sum of the 32 activation integers of sub-block g. */
static int sub_block_sum(const int8_t *q8, int g) {
    int sum = 0;
    for (int t = 0; t < 32; t++) sum += q8[32 * g + t];
    return sum;
}

/* One Q5_K row times one Q8_K row as ggml_vec_dot_q5_K_q8_K computes it
 * with AVX2: per super-block 8 integer lanes (lane k: the scaled sums of
 * products 4k..4k+3 of each 32-value chunk) added by one fused multiply-add
 * of f32(d_x d_w); the mins as one integer sum(min_g bsum_g) times
 * f32(-d_x dmin), added to a separate f32 sum by a fused multiply-add;
 * hsum_float_8(lanes) + that sum. */
static float q5_k_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    (void)ints, (void)t; /* one type, its own integer sums: t and ints are there for the table below */
    float lane[8] = {0}, mins = 0.0f;
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 176) {
        const uint8_t *scales = w + 4, *qh = w + 16, *qs = w + 48;
        const int8_t *q8 = x.q + b * TEMPO_QK_K;
        float d = x.d[b] * f16_at(w), dmin = -x.d[b] * f16_at(w + 2);
        int sum[8] = {0}, min_sum = 0, sc[8], mn[8];
        tempo_ggml_k4_scales(scales, sc, mn);
        for (int g = 0; g < 8; g++) {
            min_sum += mn[g] * sub_block_sum(q8, g);
            for (int t = 0; t < 32; t++) {
                int low = g & 1 ? qs[32 * (g / 2) + t] >> 4 : qs[32 * (g / 2) + t] & 15;
                sum[t / 4] += sc[g] * (low | (qh[t] >> g & 1) << 4) * q8[32 * g + t];
            }
        }
        mins = fmaf(dmin, (float)min_sum, mins); /* fused in llama.cpp's build (vfmadd231ss) */
        for (int k = 0; k < 8; k++) lane[k] = fmaf(d, (float)sum[k], lane[k]);
    }
    return tempo_ggml_hsum_float_8(lane) + mins;
}

/* One Q4_K row times one Q8_K row as ggml_vec_dot_q4_K_q8_K computes it
 * with AVX2: per super-block 8 integer lanes (lane k: the scaled sums of
 * products 4k..4k+3 of each 32-value chunk) added by one fused multiply-add
 * of f32(d_x d_w); the mins in 4 f32 lanes, lane i adding the integer
 * min_2i bsum_2i + min_2i+1 bsum_2i+1 times f32(-d_x dmin) in one fused
 * multiply-add; hsum_float_8(lanes) + ((m0+m2) + (m1+m3)). */
static float q4_k_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    (void)ints, (void)t; /* one type, its own integer sums: t and ints are there for the table below */
    float lane[8] = {0}, min_lane[4] = {0};
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 144) {
        const uint8_t *scales = w + 4, *qs = w + 16;
        const int8_t *q8 = x.q + b * TEMPO_QK_K;
        float d = x.d[b] * f16_at(w), dmin = -x.d[b] * f16_at(w + 2);
        int sum[8] = {0}, min_sum[4] = {0}, sc[8], mn[8];
        tempo_ggml_k4_scales(scales, sc, mn);
        for (int g = 0; g < 8; g++) {
            min_sum[g / 2] += mn[g] * sub_block_sum(q8, g);
            for (int t = 0; t < 32; t++) {
                int q4 = g & 1 ? qs[32 * (g / 2) + t] >> 4 : qs[32 * (g / 2) + t] & 15;
                sum[t / 4] += sc[g] * q4 * q8[32 * g + t];
            }
        }
        for (int i = 0; i < 4; i++) min_lane[i] = fmaf(dmin, (float)min_sum[i], min_lane[i]);
        for (int k = 0; k < 8; k++) lane[k] = fmaf(d, (float)sum[k], lane[k]);
    }
    return tempo_ggml_hsum_float_8(lane) + ((min_lane[0] + min_lane[2]) + (min_lane[1] + min_lane[3]));
}

/* Each weight type's plain dot, whichever file defines it (a family's serves several types); NULL: ggml's
 * dot for that type is not followed. The one place a type is given its dot. */
static GgmlRowDot *const ROW_DOTS[WEIGHT_N_TYPES] = {
    [WEIGHT_Q8_0] = q8_0_dot, [WEIGHT_Q4_0] = q8_0_dot, [WEIGHT_Q4_K] = q4_k_dot, [WEIGHT_Q5_K] = q5_k_dot,
    [WEIGHT_Q6_K] = q6_k_dot,
    /* ggml_dots_more.c */
    [WEIGHT_Q4_1] = tempo_ggml_block32_dot, [WEIGHT_Q5_0] = tempo_ggml_block32_dot,
    [WEIGHT_Q5_1] = tempo_ggml_block32_dot, [WEIGHT_IQ4_NL] = tempo_ggml_block32_dot,
    [WEIGHT_IQ4_XS] = tempo_ggml_k_dot, [WEIGHT_Q2_K] = tempo_ggml_k_dot, [WEIGHT_Q3_K] = tempo_ggml_k_dot,
    [WEIGHT_TQ1_0] = tempo_ggml_ternary_dot, [WEIGHT_TQ2_0] = tempo_ggml_ternary_dot,
    [WEIGHT_Q1_0] = tempo_ggml_q1_0_dot, [WEIGHT_Q2_0] = tempo_ggml_q2_0_dot,
    /* ggml_dots_iq.c: the grid types */
    [WEIGHT_IQ2_XXS] = tempo_ggml_iq_dot, [WEIGHT_IQ2_XS] = tempo_ggml_iq_dot, [WEIGHT_IQ2_S] = tempo_ggml_iq_dot,
    [WEIGHT_IQ3_XXS] = tempo_ggml_iq_dot, [WEIGHT_IQ3_S] = tempo_ggml_iq_dot, [WEIGHT_IQ1_S] = tempo_ggml_iq_dot,
    [WEIGHT_IQ1_M] = tempo_ggml_iq_dot,
};

int tempo_ggml_has_dot(WeightType t) { return (unsigned)t < WEIGHT_N_TYPES && ROW_DOTS[t] != NULL; }

float tempo_ggml_dot_with(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    return ROW_DOTS[t](ints, t, w, x, m);
}

float tempo_ggml_dot_plain(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    return tempo_ggml_dot_with(&TEMPO_GGML_INTS_PLAIN, t, w, x, m);
}
