/* ggml_attention.c - llama.cpp's CPU attention as kernels (NOTES "Numerics of
 * real engines"), written from ggml's source (ggml-cpu/ops.cpp, vec.h,
 * llama-graph.cpp build_attn_mha), each product in ggml's order (ggml_dot.c):
 *   - without flash attention: s = mul_mat(K, Q) (an f16 cache rounds Q to
 *     f16, and tinyBLAS takes a call of 2+ rows; an f32 cache reads Q in
 *     place, not contiguous, so vec_dot_f32), ggml's softmax (ggml_v_expf,
 *     sums of 16 in double), out = mul_mat(V^T, P) (f16: P rounded); the
 *     keys are padded as llama.cpp's cache view is (masked, zero);
 *   - flash attention (ggml_compute_forward_flash_attn_ext_f16_one_chunk,
 *     calls of fewer than 64 rows): K and V f16 whatever the cache type, Q
 *     rounded to f16, s by vec_dot_f16, an online softmax (libm expf) whose
 *     V accumulator is f16, rounded after every key. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../formats/quant.h" /* tempo_f32_to_f16 */
#include "kernels.h"

static float round_f16(float x) { return tempo_f16_to_f32(tempo_f32_to_f16(x)); }

/* An f16 cache: K and V rounded to f16 as they are stored. */
void tempo_ggml_cache_store_f16(float *values, size_t n) {
    for (size_t i = 0; i < n; i++) values[i] = round_f16(values[i]);
}

/* The keys llama.cpp's attention runs over: its cache view is padded to a
 * multiple of 256 cells (masked, zero); zero products change no sum, so a
 * multiple of 64 (one vec_dot step) sums the same. */
static int padded_keys(int n_keys) { return (n_keys + 63) / 64 * 64; }

/* The arithmetic of one attention call: the plain definitions (ggml_dot.c),
 * or the vectorized ones (ggml_dot_avx.c, bitwise equal) on every thread. */
typedef struct {
    float (*dot)(GgmlDotType type, int batched, const float *w, const float *x, int n);
    void (*dots)(GgmlDotType type, int batched, const float *w, size_t stride, int rows, const float *x, int n, float *out);
    double (*exp_sum)(float *s, int n, float max);
    void (*f16_scale)(float *acc, float ms, int n);
    void (*f16_fma)(float *acc, const float *v, float vs, int n);
    int threads;
} AttentionOps;

static const AttentionOps plain_ops = {tempo_ggml_dot, tempo_ggml_dots, tempo_ggml_exp_sum, tempo_ggml_f16_scale, tempo_ggml_f16_fma, 1};

static AttentionOps fast_ops(void) {
    return (AttentionOps){tempo_ggml_dot_fast, tempo_ggml_dots_fast, tempo_ggml_exp_sum_fast, tempo_ggml_f16_scale_fast, tempo_ggml_f16_fma_fast,
                          omp_get_max_threads()};
}

/* Row i's scores s_j = q . k_j in the cache's type (f16: q rounded to f16),
 * in ggml's order (batched: tinyBLAS, else vec_dot), -inf where the mask
 * hides key j or past n_keys. KEY_BLOCK keys a call (those of a block the
 * mask hides cost a product each, unless it hides the whole block). */
static void cache_scores(const AttentionOps *ops, const AttentionInputs *a, GgmlDotType cache, int hd, int kv_dim,
                         const float *q, const float *keys, int i, int batched, float *scores) {
    enum { KEY_BLOCK = 16 };
    float qc[TEMPO_GGML_MAX_HEAD_DIM];
    tempo_ggml_round_activations(cache, q, hd, qc);
    for (int j0 = 0; j0 < padded_keys(a->n_keys); j0 += KEY_BLOCK) { /* padded_keys: a multiple of KEY_BLOCK */
        int seen[KEY_BLOCK], any = 0, rows = a->n_keys - j0 < KEY_BLOCK ? a->n_keys - j0 : KEY_BLOCK;
        for (int j = 0; j < KEY_BLOCK; j++)
            any |= seen[j] = j < rows && tempo_mask_cell(a->mask, a->layer, a->n_keys - a->k + i, j0 + j);
        if (any) ops->dots(cache, batched, keys + (size_t)j0 * kv_dim, (size_t)kv_dim, rows, qc, hd, scores + j0);
        for (int j = 0; j < KEY_BLOCK; j++)
            if (!seen[j]) scores[j0 + j] = -INFINITY;
    }
}

/* ggml_compute_forward_soft_max_f32 over n (a multiple of 16) scores:
 * w = s scale; p = ggml_v_expf(w - max), each 16 summed by hsum into a
 * double (tempo_ggml_exp_sum); p *= (float)(1 / sum). */
static void ggml_softmax(const AttentionOps *ops, float *s, int n, float scale) {
    float max = -INFINITY; /* ggml_vec_max_f32: MAX(max, w) */
    for (int j = 0; j < n; j++) {
        s[j] *= scale;
        max = max > s[j] ? max : s[j];
    }
    float inv = (float)(1.0 / ops->exp_sum(s, n, max));
    for (int j = 0; j < n; j++) s[j] *= inv;
}

/* P of row i, head h into probs when both are kept ([kept heads][kept rows][n_keys]). */
static void keep_probs(const AttentionInputs *a, int i, int h, const float *p, float *probs) {
    int row_slot = tempo_kept_slot(a->keep_rows, a->n_keep_rows, i), head_slot = tempo_kept_slot(a->keep_heads, a->n_keep_heads, h);
    int n_kept_rows = a->keep_rows ? a->n_keep_rows : a->k;
    if (probs && row_slot >= 0 && head_slot >= 0)
        memcpy(probs + ((size_t)head_slot * n_kept_rows + row_slot) * a->n_keys, p, (size_t)a->n_keys * sizeof(float));
}

/* V^T over the padded keys: vt[c n + j] = V[j][c] (0 past n_keys), so
 * that each output of mul_mat(V^T, P) reads one contiguous row. */
static void transpose_values(const AttentionInputs *a, int kv_dim, int threads, float *vt) {
    int n = padded_keys(a->n_keys);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int col = 0; col < kv_dim; col++)
        for (int j = 0; j < n; j++) vt[(size_t)col * n + j] = j < a->n_keys ? a->values[(size_t)j * kv_dim + col] : 0.0f;
}

/* out = P V over the padded keys (f16 cache: f16(P)), each output t as
 * ggml's mul_mat(V^T, P) takes it, vt the head's rows of V^T. */
static void cache_values(const AttentionOps *ops, GgmlDotType cache, const float *p, const float *vt, int hd, int n,
                         int batched, float *pc, float *o) {
    tempo_ggml_round_activations(cache, p, n, pc);
    ops->dots(cache, batched, vt, (size_t)n, hd, pc, n, o);
}

/* Scratch of a cache attention: V^T, then scores and P for each thread. */
static size_t cache_scratch(const Config *c, int n_keys, int threads) {
    size_t n = (size_t)padded_keys(n_keys);
    return (size_t)c->n_kv_heads * c->head_dim * n + 2 * n * (size_t)threads;
}

/* Without flash attention, as llama.cpp's graph: s = mul_mat(K, Q) (an f16
 * cache rounds Q to f16 and tinyBLAS takes a call of 2+ rows; an f32 cache:
 * Q is not contiguous, so vec_dot_f32 always); P = ggml's softmax of
 * s / sqrt(head_dim) over the allowed keys; out = mul_mat(V^T, P) (f16: P
 * rounded). Each (row, head) alone, on any thread: the same values. */
static void cache_attention(const AttentionOps *ops, GgmlDotType cache, const Config *c, const AttentionInputs *a,
                            float *out, float *scratch, float *probs) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    int n = padded_keys(a->n_keys);
    int kq_batched = cache == GGML_DOT_F16 && tempo_ggml_tinyblas(cache, a->k, hd, n);
    int kqv_batched = tempo_ggml_tinyblas(cache, a->k, n, hd);
    float *vt = scratch;
    transpose_values(a, kv_dim, ops->threads, vt);
#pragma omp parallel for schedule(dynamic, 4) num_threads(ops->threads)
    for (int ih = 0; ih < a->k * c->n_heads; ih++) {
        int i = ih / c->n_heads, h = ih % c->n_heads;
        float *scores = vt + (size_t)kv_dim * n + 2 * (size_t)n * omp_get_thread_num();
        const float *q = a->q + (size_t)i * q_dim + h * hd, *keys = a->keys + (h / group) * hd;
        cache_scores(ops, a, cache, hd, kv_dim, q, keys, i, kq_batched, scores);
        ggml_softmax(ops, scores, n, 1.0f / sqrtf((float)hd));
        keep_probs(a, i, h, scores, probs);
        cache_values(ops, cache, scores, vt + (size_t)(h / group) * hd * n, hd, n, kqv_batched, scores + n,
                     out + (size_t)i * q_dim + h * hd);
    }
}

void tempo_ggml_attention_f16_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    AttentionOps ops = fast_ops();
    cache_attention(&ops, GGML_DOT_F16, c, a, out, scores, probs);
}

void tempo_ggml_attention_f32_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    AttentionOps ops = fast_ops();
    cache_attention(&ops, GGML_DOT_F32, c, a, out, scores, probs);
}

size_t tempo_ggml_attention_cache_scratch(const Config *c, int k, int n_keys) {
    (void)k;
    return cache_scratch(c, n_keys, omp_get_max_threads());
}

/* One query row of one head, as ggml's flash attention (one_chunk) computes it:
 * keys in cache order; s = f16(q) . k * scale; on a new maximum M the f16
 * accumulator is scaled by exp(M_old - M), else the key weighs exp(s - M);
 * V_acc = f16(V_acc + v * weight) (one fused multiply-add); S = S ms + vs; out = V_acc / S. */
static void flash_row(const AttentionOps *ops, int hd, int kv_dim, const float *q, const float *keys, const float *values,
                      const AttentionInputs *a, int i, float scale, float *o) {
    int n_keys = a->n_keys, row = a->n_keys - a->k + i;
    float q16[TEMPO_GGML_MAX_HEAD_DIM], acc[TEMPO_GGML_MAX_HEAD_DIM];
    for (int t = 0; t < hd; t++) q16[t] = round_f16(q[t]), acc[t] = 0.0f;
    float S = 0.0f, M = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        if (!tempo_mask_cell(a->mask, a->layer, row, j)) continue;
        float s = ops->dot(GGML_DOT_F16, 0, keys + (size_t)j * kv_dim, q16, hd) * scale, ms = 1.0f, vs = 1.0f;
        if (s > M) {
            float m_old = M;
            M = s;
            ms = expf(m_old - M);
            ops->f16_scale(acc, ms, hd);
        } else {
            vs = expf(s - M);
        }
        ops->f16_fma(acc, values + (size_t)j * kv_dim, vs, hd);
        S = S * ms + vs;
    }
    float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int t = 0; t < hd; t++) o[t] = acc[t] * inv;
}

/* Flash attention (K and V stored as f16 by cache_store_f16), each (row,
 * head) alone on any thread. probs, when asked for, are the plain softmax
 * of the scores (flash attention keeps none). Scratch: a row of scores a thread. */
static void flash_attention(const AttentionOps *ops, const Config *c, const AttentionInputs *a, float *out, float *scratch,
                            float *probs) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 4) num_threads(ops->threads)
    for (int ih = 0; ih < a->k * c->n_heads; ih++) {
        int i = ih / c->n_heads, h = ih % c->n_heads;
        const float *q = a->q + (size_t)i * q_dim + h * hd;
        const float *keys = a->keys + (h / group) * hd, *values = a->values + (h / group) * hd;
        flash_row(ops, hd, kv_dim, q, keys, values, a, i, scale, out + (size_t)i * q_dim + h * hd);
        if (!probs) continue;
        float *scores = scratch + (size_t)padded_keys(a->n_keys) * omp_get_thread_num();
        cache_scores(ops, a, GGML_DOT_F16, hd, kv_dim, q, keys, i, 0, scores);
        ggml_softmax(ops, scores, padded_keys(a->n_keys), scale);
        keep_probs(a, i, h, scores, probs);
    }
}

void tempo_ggml_attention_flash(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    AttentionOps ops = fast_ops();
    flash_attention(&ops, c, a, out, scores, probs);
}

/* Scratch of flash attention: one row of scores for each thread. */
size_t tempo_ggml_attention_row_scratch(const Config *c, int k, int n_keys) {
    (void)c, (void)k;
    return (size_t)padded_keys(n_keys) * (size_t)omp_get_max_threads();
}

/* The definitions the kernels above are bitwise equal to: plain loops, one thread. */
void tempo_ggml_attention_plain(GgmlAttention kind, const Config *c, const AttentionInputs *a, float *out, float *scratch,
                                float *probs) {
    if (kind == GGML_ATTENTION_FLASH) flash_attention(&plain_ops, c, a, out, scratch, probs);
    else cache_attention(&plain_ops, kind == GGML_ATTENTION_F16_CACHE ? GGML_DOT_F16 : GGML_DOT_F32, c, a, out, scratch, probs);
}
