/* ggml.c - llama.cpp's CPU arithmetic as kernels (NOTES "Numerics of real
 * engines"), written from ggml's source (ggml-cpu/arch/x86/quants.c,
 * ggml-quants.c, ggml-cpu/ops.cpp, vec.h):
 *   - a matrix product first converts each activation row to the weight
 *     type's dot-product type (ggml's vec_dot_type): Q8_0/Q8_1/Q8_K blocks
 *     with ggml's scales and rounding, or f16/bf16; the product is then taken
 *     with the dequantized weights (tempo_matmul_fast, f32);
 *   - an f16 cache rounds K and V to f16 as they are stored; without flash
 *     attention, K.Q rounds Q to f16 and P.V rounds P to f16 (mul_mat
 *     converts its second operand to the cache's type);
 *   - flash attention (ggml_compute_forward_flash_attn_ext_f16_one_chunk)
 *     stores K and V as f16 whatever the cache type, rounds Q to f16, and
 *     keeps an online softmax whose V accumulator is f16, rounded after every
 *     key. */
#include <cblas.h>
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
    case WEIGHT_TQ1_0: case WEIGHT_TQ2_0: return GGML_DOT_Q8_K;
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

static size_t ggml_matmul_scratch(int n, int m) { return rounded_rows_values(n, m); }

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
 * scratch, then the scales), then ggml's block dot. */
static void q8_0_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    int8_t *q = (int8_t *)scratch;
    float *dx = scratch + ((size_t)n * m + 3) / 4;
    for (int i = 0; i < n; i++)
        for (int b = 0; b < m / Q8_BLOCK; b++)
            dx[(size_t)i * (m / Q8_BLOCK) + b] = q8_0_quantize(in + (size_t)i * m + b * Q8_BLOCK, q + (size_t)i * m + b * Q8_BLOCK);
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
#pragma omp parallel for schedule(static) if ((size_t)d * m >= ((size_t)1 << 18))
    for (int r = 0; r < d; r++)
        for (int i = 0; i < n; i++)
            out[(size_t)i * d + r] = q8_0_dot(w.type, (const uint8_t *)w.data + r * row_bytes, q + (size_t)i * m,
                                              dx + (size_t)i * (m / Q8_BLOCK), m);
}

/* out = round(in) W^T: each input row converted to W's dot-product type,
 * then the product: in ggml's order for Q8_0 and Q4_0; else with the f32
 * dequantized weights, TEMPO_FEW_ROWS rows at a time (the blocked kernel's
 * order, the same for every row and thread count, where sgemm's would
 * depend on them: a different last bit can flip a later rounding). */
static void ggml_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    GgmlDotType t = tempo_ggml_dot_type(w.type);
    if (w.type == WEIGHT_Q8_0 || w.type == WEIGHT_Q4_0) {
        q8_0_matmul(out, in, w, n, m, d, scratch);
        return;
    }
    if (w.type == WEIGHT_Q6_K || w.type == WEIGHT_Q5_K) {
        q8_k_matmul(out, in, w, n, m, d, scratch);
        return;
    }
    const float *rows = in;
    if (t != GGML_DOT_F32) {
        for (int i = 0; i < n; i++) tempo_ggml_round_activations(t, in + (size_t)i * m, m, scratch + (size_t)i * m);
        rows = scratch;
    }
    for (int i0 = 0; i0 < n; i0 += TEMPO_FEW_ROWS) {
        int k = n - i0 < TEMPO_FEW_ROWS ? n - i0 : TEMPO_FEW_ROWS;
        tempo_matmul_fast(out + (size_t)i0 * d, rows + (size_t)i0 * m, w, k, m, d, NULL);
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

/* An f16 cache: K and V rounded to f16 as they are stored. */
static void cache_store_f16(float *values, size_t n) {
    for (size_t i = 0; i < n; i++) values[i] = round_f16(values[i]);
}

/* Row i's scores s_j = f16(q) . k_j * scale over every key (exact f16
 * products, added in double), -inf where the mask hides key j. */
static void f16_scores(const AttentionInputs *a, int hd, int kv_dim, const float *q, const float *keys, int i,
                       float scale, float *scores) {
    float q16[TEMPO_GGML_MAX_HEAD_DIM];
    for (int t = 0; t < hd; t++) q16[t] = round_f16(q[t]);
    for (int j = 0; j < a->n_keys; j++) {
        double dot = 0.0; /* f16 products are exact in f32; ggml adds them in f32 lanes */
        for (int t = 0; t < hd; t++) dot += q16[t] * keys[(size_t)j * kv_dim + t];
        scores[j] = tempo_mask_cell(a->mask, a->layer, a->n_keys - a->k + i, j) ? (float)dot * scale : -INFINITY;
    }
}

/* P of row i, head h into probs when both are kept ([kept heads][kept rows][n_keys]). */
static void keep_probs(const AttentionInputs *a, int i, int h, const float *p, float *probs) {
    int row_slot = tempo_kept_slot(a->keep_rows, a->n_keep_rows, i), head_slot = tempo_kept_slot(a->keep_heads, a->n_keep_heads, h);
    int n_kept_rows = a->keep_rows ? a->n_keep_rows : a->k;
    if (probs && row_slot >= 0 && head_slot >= 0)
        memcpy(probs + ((size_t)head_slot * n_kept_rows + row_slot) * a->n_keys, p, (size_t)a->n_keys * sizeof(float));
}

/* Without flash attention, over an f16 cache: s_j = f16(q) . k_j / sqrt(head_dim);
 * P = softmax over the allowed keys; out = f16(P) V. */
static void attention_f16_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < a->k; i++)
        for (int h = 0; h < c->n_heads; h++) {
            const float *q = a->q + (size_t)i * q_dim + h * hd;
            const float *keys = a->keys + (h / group) * hd, *values = a->values + (h / group) * hd;
            f16_scores(a, hd, kv_dim, q, keys, i, scale, scores);
            tempo_softmax(scores, NULL, a->n_keys);
            keep_probs(a, i, h, scores, probs);
            double acc[TEMPO_GGML_MAX_HEAD_DIM] = {0};
            for (int j = 0; j < a->n_keys; j++) {
                float p = round_f16(scores[j]);
                for (int t = 0; t < hd; t++) acc[t] += p * values[(size_t)j * kv_dim + t];
            }
            float *o = out + (size_t)i * q_dim + h * hd;
            for (int t = 0; t < hd; t++) o[t] = (float)acc[t];
        }
}

/* One query row of one head, as ggml's flash attention (one_chunk) computes it:
 * keys in cache order; s = f16(q) . k * scale; on a new maximum M the f16
 * accumulator is scaled by exp(M_old - M), else the key weighs exp(s - M);
 * V_acc = f16(V_acc + v * weight) (one fused multiply-add); S = S ms + vs; out = V_acc / S. */
static void flash_row(int hd, int kv_dim, const float *q, const float *keys, const float *values,
                      const AttentionInputs *a, int i, float scale, float *o) {
    int n_keys = a->n_keys, row = a->n_keys - a->k + i;
    float q16[TEMPO_GGML_MAX_HEAD_DIM], acc[TEMPO_GGML_MAX_HEAD_DIM];
    for (int t = 0; t < hd; t++) q16[t] = round_f16(q[t]), acc[t] = 0.0f;
    float S = 0.0f, M = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        if (!tempo_mask_cell(a->mask, a->layer, row, j)) continue;
        double dot = 0.0;
        for (int t = 0; t < hd; t++) dot += q16[t] * keys[(size_t)j * kv_dim + t];
        float s = (float)dot * scale, ms = 1.0f, vs = 1.0f;
        if (s > M) {
            float m_old = M;
            M = s;
            ms = expf(m_old - M);
            for (int t = 0; t < hd; t++) acc[t] = round_f16(acc[t] * ms);
        } else {
            vs = expf(s - M);
        }
        for (int t = 0; t < hd; t++) acc[t] = round_f16(fmaf(values[(size_t)j * kv_dim + t], vs, acc[t]));
        S = S * ms + vs;
    }
    float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int t = 0; t < hd; t++) o[t] = acc[t] * inv;
}

/* Flash attention (K and V stored as f16 by cache_store_f16). probs, when
 * asked for, are the plain softmax of the scores (flash attention keeps none). */
static void attention_flash(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < a->k; i++)
        for (int h = 0; h < c->n_heads; h++) {
            const float *q = a->q + (size_t)i * q_dim + h * hd;
            const float *keys = a->keys + (h / group) * hd, *values = a->values + (h / group) * hd;
            flash_row(hd, kv_dim, q, keys, values, a, i, scale, out + (size_t)i * q_dim + h * hd);
            if (!probs) continue;
            f16_scores(a, hd, kv_dim, q, keys, i, scale, scores);
            tempo_softmax(scores, NULL, a->n_keys);
            keep_probs(a, i, h, scores, probs);
        }
}

/* Without flash attention, over an f32 cache: per head, S = Q K^T * scale and
 * O = P V as two sgemm calls over all the call's rows, the order llama.cpp's
 * results were matched in (the tiled fast attention sums in another order,
 * and a last-bit difference flips later Q8 roundings). Scratch: k x n_keys. */
static void attention_f32_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    int k = a->k, n_keys = a->n_keys;
    for (int h = 0; h < c->n_heads; h++) {
        int g = h / group;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, n_keys, hd, 1.0f / sqrtf((float)hd), a->q + h * hd, q_dim,
                    a->keys + g * hd, kv_dim, 0.0f, scores, n_keys);
        for (int i = 0; i < k; i++) {
            float *row = scores + (size_t)i * n_keys;
            for (int j = 0; j < n_keys; j++)
                if (!tempo_mask_cell(a->mask, a->layer, n_keys - k + i, j)) row[j] = -INFINITY;
            tempo_softmax(row, NULL, n_keys);
            keep_probs(a, i, h, row, probs);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, hd, n_keys, 1.0f, scores, n_keys, a->values + g * hd, kv_dim,
                    0.0f, out + h * hd, q_dim);
    }
}

static size_t attention_f32_cache_scratch(const Config *c, int k, int n_keys) {
    (void)c;
    return (size_t)k * n_keys;
}

/* Scratch of the row-at-a-time attentions: one row of scores. */
static size_t attention_row_scratch(const Config *c, int k, int n_keys) {
    (void)c, (void)k;
    return (size_t)n_keys;
}

enum { /* the types tempo_ggml_dot_type maps */
    GGML_WEIGHT_TYPES = (1u << WEIGHT_N_TYPES) - 1, /* every type: each has its activation type */
};

static const Kernels ggml_f32_cache = {
    .name = "ggml (K/V f32)", .weight_types = GGML_WEIGHT_TYPES, .matmul = ggml_matmul,
    .matmul_scratch = ggml_matmul_scratch, .matrix_row = tempo_matrix_row_fast, .attention = attention_f32_cache,
    .attention_scratch = attention_f32_cache_scratch, .rmsnorm = ggml_rmsnorm,
};
static const Kernels ggml_f16_cache = {
    .name = "ggml (K/V f16)", .weight_types = GGML_WEIGHT_TYPES, .matmul = ggml_matmul,
    .matmul_scratch = ggml_matmul_scratch, .matrix_row = tempo_matrix_row_fast, .attention = attention_f16_cache,
    .attention_scratch = attention_row_scratch, .cache_store = cache_store_f16, .rmsnorm = ggml_rmsnorm,
};
static const Kernels ggml_flash = {
    .name = "ggml (flash attention)", .weight_types = GGML_WEIGHT_TYPES, .matmul = ggml_matmul,
    .matmul_scratch = ggml_matmul_scratch, .matrix_row = tempo_matrix_row_fast, .attention = attention_flash,
    .attention_scratch = attention_row_scratch, .cache_store = cache_store_f16, .rmsnorm = ggml_rmsnorm,
};

const Kernels *tempo_ggml_kernels(int kv_f16, int flash_attn) {
    if (flash_attn) return &ggml_flash; /* llama.cpp casts an f32 cache to f16 for flash attention */
    return kv_f16 ? &ggml_f16_cache : &ggml_f32_cache;
}
