/* ggml_attention.c - llama.cpp's CPU attention as kernels (NOTES "Numerics of
 * real engines"), written from ggml's source (ggml-cpu/ops.cpp, vec.h):
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

#include "../formats/quant.h" /* tempo_f32_to_f16 */
#include "kernels.h"

static float round_f16(float x) { return tempo_f16_to_f32(tempo_f32_to_f16(x)); }

/* An f16 cache: K and V rounded to f16 as they are stored. */
void tempo_ggml_cache_store_f16(float *values, size_t n) {
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
void tempo_ggml_attention_f16_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
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
void tempo_ggml_attention_flash(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
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
void tempo_ggml_attention_f32_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
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

size_t tempo_ggml_attention_f32_cache_scratch(const Config *c, int k, int n_keys) {
    (void)c;
    return (size_t)k * n_keys;
}

/* Scratch of the row-at-a-time attentions: one row of scores. */
size_t tempo_ggml_attention_row_scratch(const Config *c, int k, int n_keys) {
    (void)c, (void)k;
    return (size_t)n_keys;
}
