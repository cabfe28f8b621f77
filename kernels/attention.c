/* attention.c - attention of new rows over the KV cache, tuned: blocks of
 * ATTN_ROWS query rows walk the keys in tiles of ATTN_KEYS with an online
 * softmax (a running max and sum per row and head), two sgemm calls per
 * head and tile (scores, then P V). Nothing is n_keys x n_keys: the mask of
 * a tile is computed from the rule (tempo_mask_cell) when needed, and tiles
 * it hides completely are skipped. Its definition is attention_plain in
 * tempo.c; sgemm and the online softmax sum in another order, so the two
 * agree within a bound (tests/test_kernels.c). NOTES explains the online
 * softmax. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels.h"

enum { ATTN_ROWS = 64, ATTN_KEYS = 256 };

/* The scratch: scores [ATTN_ROWS][ATTN_KEYS], the tile's mask as bytes
 * (ATTN_ROWS * ATTN_KEYS / 4 floats), the running max and sum
 * [n_heads][ATTN_ROWS] each; and at least one [n_keys] row (kept probabilities). */
size_t tempo_attention_fast_scratch(const Config *c, int k, int n_keys) {
    (void)k;
    size_t tiles = (size_t)ATTN_ROWS * ATTN_KEYS * 5 / 4 + 2 * (size_t)c->n_heads * ATTN_ROWS;
    return tiles > (size_t)n_keys ? tiles : (size_t)n_keys;
}

/* mask[r][j] for rows first+i0+r and keys j0+j; returns how many are allowed. */
static int tile_mask(const AttentionInputs *a, int i0, int rows, int j0, int keys, uint8_t *mask) {
    int first = a->n_keys - a->k, allowed = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < keys; j++)
            allowed += mask[r * ATTN_KEYS + j] = (uint8_t)tempo_mask_cell(a->mask, a->layer, first + i0 + r, j0 + j);
    return allowed;
}

/* Online softmax of one row's tile: m' = max(m, max_j s_j), p_j = exp(s_j -
 * m') where allowed (else 0), sum' = sum exp(m - m') + sum_j p_j; the row's
 * output so far is scaled by exp(m - m'). */
static void online_softmax_row(float *s, const uint8_t *allowed, int keys, float *max, float *sum, float *out, int hd) {
    float tile_max = -INFINITY;
    for (int j = 0; j < keys; j++)
        if (allowed[j] && s[j] > tile_max) tile_max = s[j];
    if (tile_max == -INFINITY) { /* nothing allowed in this tile */
        memset(s, 0, (size_t)keys * sizeof(float));
        return;
    }
    float new_max = tile_max > *max ? tile_max : *max;
    float correction = expf(*max - new_max), tile_sum = 0.0f;
    for (int j = 0; j < keys; j++) {
        s[j] = allowed[j] ? expf(s[j] - new_max) : 0.0f;
        tile_sum += s[j];
    }
    *sum = *sum * correction + tile_sum;
    *max = new_max;
    if (correction != 1.0f)
        for (int t = 0; t < hd; t++) out[t] *= correction;
}

/* One block of rows i0..i0+rows-1, every head: out = softmax(Q K^T / sqrt(hd)) V over all tiles. */
static void attention_block(const Config *c, const AttentionInputs *a, float *out, float *scratch, int i0, int rows) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    float *scores = scratch, *max = scratch + ATTN_ROWS * ATTN_KEYS * 5 / 4, *sum = max + c->n_heads * ATTN_ROWS;
    uint8_t *mask = (uint8_t *)(scratch + ATTN_ROWS * ATTN_KEYS);
    for (int i = 0; i < c->n_heads * ATTN_ROWS; i++) max[i] = -INFINITY, sum[i] = 0.0f;
    for (int r = 0; r < rows; r++) memset(out + (size_t)(i0 + r) * q_dim, 0, (size_t)q_dim * sizeof(float));
    for (int j0 = 0; j0 < a->n_keys; j0 += ATTN_KEYS) {
        int keys = a->n_keys - j0 < ATTN_KEYS ? a->n_keys - j0 : ATTN_KEYS;
        if (tile_mask(a, i0, rows, j0, keys, mask) == 0) continue; /* hidden from every row: skipped */
        for (int h = 0; h < c->n_heads; h++) {
            int g = h / group;
            float *o = out + (size_t)i0 * q_dim + h * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, hd, scale, a->q + (size_t)i0 * q_dim + h * hd,
                        q_dim, a->keys + (size_t)j0 * kv_dim + g * hd, kv_dim, 0.0f, scores, ATTN_KEYS);
            for (int r = 0; r < rows; r++)
                online_softmax_row(scores + r * ATTN_KEYS, mask + r * ATTN_KEYS, keys, &max[h * ATTN_ROWS + r],
                                   &sum[h * ATTN_ROWS + r], o + (size_t)r * q_dim, hd);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, keys, 1.0f, scores, ATTN_KEYS,
                        a->values + (size_t)j0 * kv_dim + g * hd, kv_dim, 1.0f, o, q_dim);
        }
    }
    for (int h = 0; h < c->n_heads; h++) /* out /= sum */
        for (int r = 0; r < rows; r++) {
            float inv = 1.0f / sum[h * ATTN_ROWS + r], *o = out + (size_t)(i0 + r) * q_dim + h * hd;
            for (int t = 0; t < hd; t++) o[t] *= inv;
        }
}

/* The probabilities of new row i, head h, over every key: p = softmax of the
 * allowed s_j = q . k_j / sqrt(hd) (masked: exactly 0). row: [n_keys]. */
static void probability_row(const Config *c, const AttentionInputs *a, int i, int h, float *row) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, g = h / (c->n_heads / c->n_kv_heads);
    int q = a->n_keys - a->k + i;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, a->n_keys, hd, 1.0f / sqrtf((float)hd), a->keys + g * hd, kv_dim,
                a->q + (size_t)i * q_dim + h * hd, 1, 0.0f, row, 1);
    for (int j = 0; j < a->n_keys; j++)
        if (!tempo_mask_cell(a->mask, a->layer, q, j)) row[j] = -INFINITY;
    tempo_softmax(row, NULL, a->n_keys);
}

/* probs [kept heads][kept rows][n_keys]: the probabilities of the kept rows and heads only. */
static void kept_probabilities(const Config *c, const AttentionInputs *a, float *probs) {
    int n_rows = a->keep_rows ? a->n_keep_rows : a->k;
    int n_heads = a->keep_heads ? a->n_keep_heads : c->n_heads;
    for (int slot = 0; slot < n_heads; slot++)
        for (int r = 0; r < n_rows; r++)
            probability_row(c, a, a->keep_rows ? a->keep_rows[r] : r, a->keep_heads ? a->keep_heads[slot] : slot,
                            probs + ((size_t)slot * n_rows + r) * a->n_keys);
}

void tempo_attention_fast(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    for (int i0 = 0; i0 < a->k; i0 += ATTN_ROWS)
        attention_block(c, a, out, scores, i0, a->k - i0 < ATTN_ROWS ? a->k - i0 : ATTN_ROWS);
    if (probs) kept_probabilities(c, a, probs);
}
