/* attention.c - attention of new rows over the KV cache, tuned: for each
 * head two sgemm calls (scores for every row and key, then P V) around the
 * one softmax. Its definition is attention_plain in tempo.c; sgemm sums in
 * another order, so the two agree within a bound (tests/test_kernels.c). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels.h"

void tempo_attention_fast(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd;
    int k = a->k, n_keys = a->n_keys, group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < c->n_heads; h++) {
        int g = h / group;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, n_keys, hd, scale,
                    a->q + h * hd, q_dim, a->keys + g * hd, kv_dim, 0.0f, scores, n_keys);
        for (int i = 0; i < k; i++)
            tempo_softmax(scores + (size_t)i * n_keys, a->allowed + (size_t)i * n_keys, n_keys);
        if (probs) memcpy(probs + (size_t)h * k * n_keys, scores, (size_t)k * n_keys * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, hd, n_keys, 1.0f,
                    scores, n_keys, a->values + g * hd, kv_dim, 0.0f, out + h * hd, q_dim);
    }
}
