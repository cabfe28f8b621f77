/* ggml.c - llama.cpp's CPU arithmetic for matrix products and RMSNorm, and
 * the ggml profile's Kernels tables (NOTES "Numerics of real engines"),
 * written from ggml's source (ggml-cpu/arch/x86/quants.c, ggml-quants.c,
 * ggml-cpu/ops.cpp, vec.h): a matrix product first converts each activation
 * row to the weight type's dot-product type (ggml's vec_dot_type): Q8_0/Q8_1/
 * Q8_K blocks with ggml's scales and rounding, or f16/bf16; the product is
 * then taken as ggml's dot products take it. The attention paths are in
 * ggml_attention.c. */
#include <math.h>
#include <string.h>

#include "../formats/quant.h" /* tempo_f32_to_f16, tempo_f32_to_bf16 */
#include "kernels.h"

enum { Q8_BLOCK = 32 };

/* ggml's vec_dot_type of each weight type. A new weight type adds its line. */
GgmlDotType tempo_ggml_dot_type(WeightType t) {
    switch (t) {
    case WEIGHT_F16: return GGML_DOT_F16;
    case WEIGHT_BF16: return GGML_DOT_BF16;
    case WEIGHT_Q8_0: case WEIGHT_Q4_0: case WEIGHT_Q5_0: case WEIGHT_IQ4_NL: return GGML_DOT_Q8_0;
    case WEIGHT_Q4_1: case WEIGHT_Q5_1: return GGML_DOT_Q8_1;
    case WEIGHT_Q2_K: case WEIGHT_Q3_K: case WEIGHT_Q4_K: case WEIGHT_Q5_K: case WEIGHT_Q6_K: case WEIGHT_IQ4_XS:
    case WEIGHT_TQ1_0: case WEIGHT_TQ2_0: case WEIGHT_IQ2_XXS: case WEIGHT_IQ2_XS: case WEIGHT_IQ2_S: case WEIGHT_IQ3_XXS:
    case WEIGHT_IQ3_S: case WEIGHT_IQ1_S: case WEIGHT_IQ1_M: return GGML_DOT_Q8_K;
    default: return GGML_DOT_F32;
    }
}

static float round_f16(float x) { return tempo_f16_to_f32(tempo_f32_to_f16(x)); }
static float round_bf16(float x) { return tempo_bf16_to_f32(tempo_f32_to_bf16(x)); }

/* Q8_0 (and Q8_1's values), as quantize_row_q8_0 computes them with AVX:
 * d = amax/127 stored as f16, q = round-half-even(x * (127/amax)); value q d. */
static float q8_0_quantize(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int j = 0; j < Q8_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < Q8_BLOCK; j++) q[j] = (int8_t)nearbyintf(x[j] * id);
    return round_f16(amax / 127.0f);
}

static void q8_0_round_trip(const float *x, float *out) {
    int8_t q[Q8_BLOCK];
    float d = q8_0_quantize(x, q);
    for (int j = 0; j < Q8_BLOCK; j++) out[j] = q[j] * d;
}

/* Q8_K, as quantize_row_q8_K_ref: max = the value of largest magnitude,
 * iscale = -127/max, q = min(127, round-half-even(iscale x)), d = 1/iscale
 * (f32); value q d. Returns d (0 for a block of zeros). */
static float q8_k_quantize(const float *x, int8_t *q) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < TEMPO_QK_K; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    if (amax == 0.0f) {
        memset(q, 0, TEMPO_QK_K);
        return 0.0f;
    }
    float iscale = -127.0f / max;
    for (int j = 0; j < TEMPO_QK_K; j++) q[j] = (int8_t)fminf(127.0f, nearbyintf(iscale * x[j]));
    return 1.0f / iscale;
}

static void q8_k_round_trip(const float *x, float *out) {
    int8_t q[TEMPO_QK_K];
    float d = q8_k_quantize(x, q);
    for (int j = 0; j < TEMPO_QK_K; j++) out[j] = q[j] * d;
}

/* The values a row of m activations has once converted to `t` (m a multiple of its block). */
void tempo_ggml_round_activations(GgmlDotType t, const float *x, int m, float *out) {
    switch (t) {
    case GGML_DOT_F16: for (int i = 0; i < m; i++) out[i] = round_f16(x[i]); break;
    case GGML_DOT_BF16: for (int i = 0; i < m; i++) out[i] = round_bf16(x[i]); break;
    case GGML_DOT_Q8_0:
    case GGML_DOT_Q8_1: for (int b = 0; b < m; b += Q8_BLOCK) q8_0_round_trip(x + b, out + b); break;
    case GGML_DOT_Q8_K: for (int b = 0; b < m; b += TEMPO_QK_K) q8_k_round_trip(x + b, out + b); break;
    default: memcpy(out, x, (size_t)m * sizeof(float)); break;
    }
}

/* Floats of scratch for the rounded rows, rounded up to a cache line. */
static size_t rounded_rows_values(int n, int m) { return ((size_t)n * m + 15) / 16 * 16; }

static size_t ggml_matmul_scratch(int n, int m) { return rounded_rows_values(n, m) + (size_t)m; }

/* A Q8_0 or Q4_0 weight block: its 32 values as integers (Q4_0: nibble - 8,
 * low nibbles first) and its scale. */
static float q_block(WeightType t, const uint8_t *b, int8_t *q) {
    for (int j = 0; j < Q8_BLOCK; j++)
        q[j] = t == WEIGHT_Q8_0 ? (int8_t)b[2 + j] : (int8_t)((j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4) - 8);
    return tempo_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
}

/* One weight row times one Q8_0 activation row as ggml computes it on x86
 * (ggml_vec_dot_q8_0_q8_0 / _q4_0_q8_0 with AVX2, and llamafile's
 * tinyBLAS_Q0_AVX for batches): 8 lanes, lane k adding, for each block,
 * f32(d_w d_x) times the integer sum of products 4k..4k+3 in one fused
 * multiply-add; then ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static float q8_0_dot(WeightType t, const uint8_t *w, const int8_t *qx, const float *dx, int m) {
    float lane[8] = {0};
    size_t block_bytes = tempo_block_bytes(t);
    for (int b = 0; b < m / Q8_BLOCK; b++) {
        int8_t qw[Q8_BLOCK];
        float d = q_block(t, w + b * block_bytes, qw) * dx[b];
        for (int k = 0; k < 8; k++) {
            int sum = 0;
            for (int j = 4 * k; j < 4 * k + 4; j++) sum += qw[j] * qx[b * Q8_BLOCK + j];
            lane[k] = fmaf(d, (float)sum, lane[k]);
        }
    }
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

/* One Q6_K row times one Q8_K row as ggml_vec_dot_q6_K_q8_K computes it
 * with AVX2: per super-block an integer in each of 8 lanes, lane k holding
 * the scaled sums of products 4k..4k+3 of each 32-value chunk (6-bit
 * values 0..63; the -32 comes off as 32 sum(scale bsum) over groups 2k and
 * 2k+1), then one fused multiply-add by f32(d_x d_w); then hsum_float_8. */
static float q6_k_dot(const uint8_t *w, const int8_t *qx, const float *dx, int m) {
    float lane[8] = {0};
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192), *q8 = qx + b * TEMPO_QK_K;
        float d = dx[b] * tempo_f16_to_f32((uint16_t)(w[208] | w[209] << 8));
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
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

/* Q5_K's 6-bit scale and min of sub-block j (get_scale_min_k4). */
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *mn) {
    *sc = j < 4 ? q[j] & 63 : (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
    *mn = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | (q[j] >> 6) << 4;
}

/* One Q5_K row times one Q8_K row as ggml_vec_dot_q5_K_q8_K computes it
 * with AVX2: per super-block 8 integer lanes (lane k: the scaled sums of
 * products 4k..4k+3 of each 32-value chunk) added by one fused multiply-add
 * of f32(d_x d_w); the mins as one integer sum(min_g bsum_g) times
 * f32(-d_x dmin), added to a separate f32 sum; hsum_float_8(lanes) + that sum. */
static float q5_k_dot(const uint8_t *w, const int8_t *qx, const float *dx, int m) {
    float lane[8] = {0}, mins = 0.0f;
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 176) {
        const uint8_t *scales = w + 4, *qh = w + 16, *qs = w + 48;
        const int8_t *q8 = qx + b * TEMPO_QK_K;
        float d = dx[b] * tempo_f16_to_f32((uint16_t)(w[0] | w[1] << 8));
        float dmin = -dx[b] * tempo_f16_to_f32((uint16_t)(w[2] | w[3] << 8));
        int sum[8] = {0}, min_sum = 0;
        for (int g = 0; g < 8; g++) {
            int sc, mn, bsum = 0;
            scale_min_k4(g, scales, &sc, &mn);
            for (int t = 0; t < 32; t++) bsum += q8[32 * g + t];
            min_sum += mn * bsum;
            for (int t = 0; t < 32; t++) {
                int low = g & 1 ? qs[32 * (g / 2) + t] >> 4 : qs[32 * (g / 2) + t] & 15;
                sum[t / 4] += sc * (low | (qh[t] >> g & 1) << 4) * q8[32 * g + t];
            }
        }
        mins += dmin * (float)min_sum;
        for (int k = 0; k < 8; k++) lane[k] = fmaf(d, (float)sum[k], lane[k]);
    }
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7])) + mins;
}

/* out = in W^T for Q6_K and Q5_K weights: the rows quantized to Q8_K, then ggml's dot. */
static void q8_k_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    int8_t *q = (int8_t *)scratch;
    float *dx = scratch + ((size_t)n * m + 3) / 4;
    int blocks = m / TEMPO_QK_K;
    for (int i = 0; i < n; i++)
        for (int b = 0; b < blocks; b++)
            dx[(size_t)i * blocks + b] = q8_k_quantize(in + (size_t)i * m + b * TEMPO_QK_K, q + (size_t)i * m + b * TEMPO_QK_K);
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
#pragma omp parallel for schedule(static) if ((size_t)d * m >= ((size_t)1 << 18))
    for (int r = 0; r < d; r++)
        for (int i = 0; i < n; i++)
            out[(size_t)i * d + r] = (w.type == WEIGHT_Q6_K ? q6_k_dot : q5_k_dot)(
                (const uint8_t *)w.data + r * row_bytes, q + (size_t)i * m, dx + (size_t)i * blocks, m);
}

/* out = in W^T for Q8_0/Q4_0 weights: the rows quantized to Q8_0 (q into
 * scratch, then the scales), then ggml's block dot (vec_dot's, or
 * the repacked kernels' for `repacked` Q4_0). */
static void q8_0_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch, int repacked) {
    int8_t *q = (int8_t *)scratch;
    float *dx = scratch + ((size_t)n * m + 3) / 4;
    for (int i = 0; i < n; i++)
        for (int b = 0; b < m / Q8_BLOCK; b++)
            dx[(size_t)i * (m / Q8_BLOCK) + b] = q8_0_quantize(in + (size_t)i * m + b * Q8_BLOCK, q + (size_t)i * m + b * Q8_BLOCK);
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
#pragma omp parallel for schedule(static) if ((size_t)d * m >= ((size_t)1 << 18))
    for (int r = 0; r < d; r++)
        for (int i = 0; i < n; i++) {
            const uint8_t *row = (const uint8_t *)w.data + r * row_bytes;
            const float *dxi = dx + (size_t)i * (m / Q8_BLOCK);
            out[(size_t)i * d + r] = repacked ? tempo_ggml_q4_0_8x8_dot(row, q + (size_t)i * m, dxi, m)
                                              : q8_0_dot(w.type, row, q + (size_t)i * m, dxi, m);
        }
}

/* out = round(in) W^T for F32, F16 and BF16 weights in ggml's order: each
 * input row rounded to the weight type, then each output as tinyBLAS takes
 * it for a call of 2+ rows, else as the one-row vec_dot (tempo_ggml_dot).
 * Scratch: the rounded rows, then one weight row as f32. */
static void float_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    GgmlDotType t = tempo_ggml_dot_type(w.type);
    float *rows = scratch, *weights = scratch + rounded_rows_values(n, m);
    for (int i = 0; i < n; i++) tempo_ggml_round_activations(t, in + (size_t)i * m, m, rows + (size_t)i * m);
    int batched = tempo_ggml_tinyblas(t, n, m, d);
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
    for (int r = 0; r < d; r++) {
        tempo_dequantize(w.type, (const char *)w.data + (size_t)r * row_bytes, (size_t)m, weights);
        for (int i = 0; i < n; i++) out[(size_t)i * d + r] = tempo_ggml_dot(t, batched, weights, rows + (size_t)i * m, m);
    }
}

/* out = round(in) W^T: each input row converted to W's dot-product type,
 * then the product: in ggml's order for Q8_0, Q4_0, Q6_K, Q5_K, F32, F16
 * and BF16; else with the f32 dequantized weights, TEMPO_FEW_ROWS rows at a
 * time (the blocked kernel's order, the same for every row and thread
 * count, where sgemm's would depend on them: a different last bit can flip
 * a later rounding). */
static void ggml_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    GgmlDotType t = tempo_ggml_dot_type(w.type);
    if (w.type == WEIGHT_Q8_0 || w.type == WEIGHT_Q4_0) {
        q8_0_matmul(out, in, w, n, m, d, scratch, 0);
        return;
    }
    if (w.type == WEIGHT_Q6_K || w.type == WEIGHT_Q5_K) {
        q8_k_matmul(out, in, w, n, m, d, scratch);
        return;
    }
    if (w.type == WEIGHT_F32 || w.type == WEIGHT_F16 || w.type == WEIGHT_BF16) {
        float_matmul(out, in, w, n, m, d, scratch);
        return;
    }
    for (int i = 0; i < n; i++) tempo_ggml_round_activations(t, in + (size_t)i * m, m, scratch + (size_t)i * m);
    for (int i0 = 0; i0 < n; i0 += TEMPO_FEW_ROWS) {
        int k = n - i0 < TEMPO_FEW_ROWS ? n - i0 : TEMPO_FEW_ROWS;
        tempo_matmul_fast(out + (size_t)i0 * d, scratch + (size_t)i0 * m, w, k, m, d, NULL);
    }
}

/* RMSNorm as ggml_compute_forward_rms_norm_f32: the squares in f32, summed
 * in double; mean and scale = 1/sqrtf(mean + eps) in f32; y = x scale w. */
static void ggml_rmsnorm(float *out, const float *x, const float *weight, int n, int dim, float eps) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim;
        double sum = 0.0;
        for (int i = 0; i < dim; i++) sum += (double)(xr[i] * xr[i]);
        float mean = (float)(sum / dim), scale = 1.0f / sqrtf(mean + eps);
        for (int i = 0; i < dim; i++) out[(size_t)r * dim + i] = xr[i] * scale * weight[i];
    }
}

/* RoPE's pair as ggml's rotate_pairs runs on zen4 (GCC fused one product
 * of each sum; its scalar loop, the one llama.cpp's traces match):
 * a' = fma(a, c, -(b s)), b' = fma(a, s, b c). */
static void ggml_rope_pair(float *a, float *b, float c, float s) {
    float a0 = *a, b0 = *b;
    *a = fmaf(a0, c, -(b0 * s));
    *b = fmaf(a0, s, b0 * c);
}

enum { /* the types tempo_ggml_dot_type maps */
    GGML_WEIGHT_TYPES = (1u << WEIGHT_N_TYPES) - 1, /* every type: each has its activation type */
};

/* ggml_matmul with Q4_0 weights as llama.cpp repacks them (tempo_ggml_repacks). */
static void ggml_matmul_repacked(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    if (tempo_ggml_repacks(w.type, d)) q8_0_matmul(out, in, w, n, m, d, scratch, 1);
    else ggml_matmul(out, in, w, n, m, d, scratch);
}

/* One ggml table: the matmul (Q4_0 repacked or not) and the attention path. */
#define GGML_KERNELS(label, product, attend, attend_scratch, store)                                              \
    {.name = label, .weight_types = GGML_WEIGHT_TYPES, .matmul = product, .matmul_scratch = ggml_matmul_scratch, \
     .matrix_row = tempo_matrix_row_fast, .attention = attend, .attention_scratch = attend_scratch,             \
     .cache_store = store, .rmsnorm = ggml_rmsnorm, .rope_pair = ggml_rope_pair, .swiglu = tempo_ggml_swiglu,  \
     .by_call = 1}
static const Kernels ggml_tables[2][3] = { /* [repack][K/V f32, K/V f16, flash attention] */
    {GGML_KERNELS("ggml (K/V f32)", ggml_matmul, tempo_ggml_attention_f32_cache, tempo_ggml_attention_cache_scratch, NULL),
     GGML_KERNELS("ggml (K/V f16)", ggml_matmul, tempo_ggml_attention_f16_cache, tempo_ggml_attention_cache_scratch,
                  tempo_ggml_cache_store_f16),
     GGML_KERNELS("ggml (flash attention)", ggml_matmul, tempo_ggml_attention_flash, tempo_ggml_attention_row_scratch,
                  tempo_ggml_cache_store_f16)},
    {GGML_KERNELS("ggml (K/V f32, repack)", ggml_matmul_repacked, tempo_ggml_attention_f32_cache,
                  tempo_ggml_attention_cache_scratch, NULL),
     GGML_KERNELS("ggml (K/V f16, repack)", ggml_matmul_repacked, tempo_ggml_attention_f16_cache,
                  tempo_ggml_attention_cache_scratch, tempo_ggml_cache_store_f16),
     GGML_KERNELS("ggml (flash attention, repack)", ggml_matmul_repacked, tempo_ggml_attention_flash,
                  tempo_ggml_attention_row_scratch, tempo_ggml_cache_store_f16)},
};

const Kernels *tempo_ggml_kernels(int kv_f16, int flash_attn, int repack) {
    /* llama.cpp casts an f32 cache to f16 for flash attention */
    return &ggml_tables[repack != 0][flash_attn ? 2 : kv_f16 ? 1 : 0];
}
