/* attention.c - attention of new rows over the KV cache, tuned: blocks of
 * ATTN_ROWS query rows walk the keys in tiles with an online softmax (a
 * running max and sum per row and head), two sgemm calls per head and tile
 * (scores, then P V). The blocks (a decode step's one block: its heads, split)
 * run on the OpenMP threads, each in its own part of the scratch, each
 * head's arithmetic the same on any thread: the output does not depend on
 * the thread count. Nothing is n_keys x n_keys.
 * The mask is looked at per tile (tile_kind): a tile the rule hides from
 * every row of the block is skipped, one it shows to every row takes the
 * fast path, and only the others (the diagonal, a pruned key, an isolated
 * set, a dense mask) are computed cell by cell (tempo_mask_cell). Its
 * definition is attention_plain in tempo.c; sgemm, the online softmax and
 * exp_nonpositive round differently, so the two agree within a bound
 * (tests/test_kernels.c). NOTES explains the online softmax. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels.h"

/* Rows per block. Keys per tile (tile_keys) keep each sgemm at most
 * 64 x 64 x 64 multiply-adds, which OpenBLAS runs on the calling thread. */
enum { ATTN_ROWS = 64, ATTN_MAX_KEYS = 256, ATTN_SGEMM_CELLS = 64 * 64 * 64 };

static int tile_keys(int head_dim) {
    int keys = ATTN_SGEMM_CELLS / (ATTN_ROWS * head_dim) / 16 * 16;
    return keys < 16 ? 16 : keys > ATTN_MAX_KEYS ? ATTN_MAX_KEYS : keys;
}

/* One thread's scratch: scores [ATTN_ROWS][ATTN_MAX_KEYS], the tile's mask
 * as bytes (ATTN_ROWS * ATTN_MAX_KEYS / 4 floats), the running max and sum
 * [n_heads][ATTN_ROWS] each. */
static size_t thread_scratch(const Config *c) {
    return (size_t)ATTN_ROWS * ATTN_MAX_KEYS * 5 / 4 + 2 * (size_t)c->n_heads * ATTN_ROWS;
}

/* A scratch for every thread the kernel may run on (at least one [n_keys] row). */
size_t tempo_attention_fast_scratch(const Config *c, int k, int n_keys) {
    (void)k;
    size_t all = thread_scratch(c) * (size_t)omp_get_max_threads();
    return all > (size_t)n_keys ? all : (size_t)n_keys;
}

typedef enum { TILE_HIDDEN, TILE_SHOWN, TILE_MIXED } TileKind;

/* What the mask says about keys j0..j0+keys-1 for rows q_lo..q_hi, from
 * tempo_mask_cell's rule: every key after every row: hidden; every key
 * before every row, none pruned before q_hi, and (isolated layers) none in
 * a set of the block's rows: shown; else mixed (ask per cell). */
static TileKind tile_kind(const AttentionInputs *a, int q_lo, int q_hi, int j0, int keys) {
    const Mask *m = a->mask;
    if (m->dense) return TILE_MIXED;
    if (j0 > q_hi) return TILE_HIDDEN;
    if (j0 + keys - 1 >= q_lo) return TILE_MIXED;
    int l = m->layers > 1 ? a->layer : 0, set_lo = INT_MAX, set_hi = INT_MIN;
    int isolated = (m->layer_kinds ? m->layer_kinds[l] : m->kind) == MASK_ISOLATED;
    for (int q = q_lo; isolated && q <= q_hi; q++) {
        if (m->sets[q] < set_lo) set_lo = m->sets[q];
        if (m->sets[q] > set_hi) set_hi = m->sets[q];
    }
    for (int j = j0; j < j0 + keys; j++) {
        if (m->hidden_from && m->hidden_from[j] >= 0 && m->hidden_from[j] <= q_hi) return TILE_MIXED;
        if (isolated && m->sets[j] >= set_lo && m->sets[j] <= set_hi) return TILE_MIXED;
    }
    return TILE_SHOWN;
}

/* mask[r][j] for rows first+i0+r and keys j0+j, cell by cell; returns how many are allowed. */
static int tile_mask(const AttentionInputs *a, int i0, int rows, int j0, int keys, uint8_t *mask) {
    int first = a->n_keys - a->k, allowed = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < keys; j++)
            allowed += mask[r * ATTN_MAX_KEYS + j] = (uint8_t)tempo_mask_cell(a->mask, a->layer, first + i0 + r, j0 + j);
    return allowed;
}

/* Sixteen floats, and sixteen int32, as one vector (GCC vector extensions). */
typedef float Floats16 __attribute__((vector_size(64)));
typedef int32_t Ints16 __attribute__((vector_size(64)));
enum { LANES = 16 };

/* e^x for x <= 0, lane by lane, the same on every thread: x = n ln2 + r
 * with n = round(x / ln2) (by adding and taking away 1.5 2^23) and ln2 in
 * two parts, e^r by Cephes' expf polynomial, times 2^n from the exponent
 * bits; 0 below -87 (e^x under FLT_MIN). A few ulp from expf (the
 * attention tests bound the probabilities); expf does not vectorize. */
static Floats16 exp_nonpositive(Floats16 x) {
    const Floats16 zero = {0}, low = zero - 87.0f, round = zero + 12582912.0f;
    Ints16 below = x < low, above = x > zero; /* above: only masked keys, whose p is dropped */
    Floats16 clamped = (Floats16)((below & (Ints16)low) | (~below & ~above & (Ints16)x));
    Floats16 n = (clamped * 1.44269504088896341f + round) - round;
    Floats16 r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
    Floats16 p = zero + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    Ints16 scale = (__builtin_convertvector(n, Ints16) + 127) << 23;
    return (Floats16)(~below & (Ints16)(p * (Floats16)scale));
}

/* p_j = e^(s_j - max) in place for the allowed keys (allowed NULL: all),
 * else 0; returns sum_j p_j, summed in LANES partial sums (lane t: keys
 * t, t + LANES, ...) then lane by lane. s holds whole vectors: keys are
 * padded with 0 up to a multiple of LANES. */
static float exp_and_sum(float *s, const uint8_t *allowed, int keys, float max) {
    Floats16 lane = {0};
    for (int j = 0; j < keys; j += LANES) {
        Floats16 v, p;
        memcpy(&v, s + j, sizeof v);
        p = exp_nonpositive(v - max);
        for (int t = 0; (allowed || j + LANES > keys) && t < LANES; t++) /* masked keys and padding: 0 */
            if (j + t >= keys || (allowed && !allowed[j + t])) p[t] = 0.0f;
        memcpy(s + j, &p, sizeof p);
        lane += p;
    }
    float sum = 0.0f;
    for (int t = 0; t < LANES; t++) sum += lane[t];
    return sum;
}

/* Online softmax of one row's tile: m' = max(m, max_j s_j), p_j = exp(s_j -
 * m') where allowed (allowed NULL: every key), else 0; sum' = sum exp(m -
 * m') + sum_j p_j; the row's output so far is scaled by exp(m - m'). */
static void online_softmax_row(float *s, const uint8_t *allowed, int keys, float *max, float *sum, float *out, int hd) {
    float tile_max = -INFINITY;
    for (int j = 0; j < keys; j++)
        if ((!allowed || allowed[j]) && s[j] > tile_max) tile_max = s[j];
    if (tile_max == -INFINITY) { /* nothing allowed in this tile */
        memset(s, 0, (size_t)keys * sizeof(float));
        return;
    }
    float new_max = tile_max > *max ? tile_max : *max;
    float correction = expf(*max - new_max);
    *sum = *sum * correction + exp_and_sum(s, allowed, keys, new_max);
    *max = new_max;
    if (correction != 1.0f)
        for (int t = 0; t < hd; t++) out[t] *= correction;
}

/* A block's rows i0..i0+rows-1 and its heads h0..h1-1: one item of work for a thread. */
typedef struct {
    int i0, rows, h0, h1;
} AttentionPart;

/* One tile of keys j0..j0+keys-1 for the part's heads and rows:
 * scores = Q K^T / sqrt(hd), the online softmax, out += P V. mask NULL: all shown. */
static void attention_tile(const Config *c, const AttentionInputs *a, float *out, float *scratch, AttentionPart part,
                           int j0, int keys, const uint8_t *mask) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    int i0 = part.i0, rows = part.rows;
    float *scores = scratch, *max = scratch + ATTN_ROWS * ATTN_MAX_KEYS * 5 / 4, *sum = max + c->n_heads * ATTN_ROWS;
    for (int h = part.h0; h < part.h1; h++) {
        int g = h / group;
        float *o = out + (size_t)i0 * q_dim + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, hd, 1.0f / sqrtf((float)hd),
                    a->q + (size_t)i0 * q_dim + h * hd, q_dim, a->keys + (size_t)j0 * kv_dim + g * hd, kv_dim, 0.0f,
                    scores, ATTN_MAX_KEYS);
        for (int r = 0; r < rows; r++)
            online_softmax_row(scores + r * ATTN_MAX_KEYS, mask ? mask + r * ATTN_MAX_KEYS : NULL, keys,
                               &max[h * ATTN_ROWS + r], &sum[h * ATTN_ROWS + r], o + (size_t)r * q_dim, hd);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, keys, 1.0f, scores, ATTN_MAX_KEYS,
                    a->values + (size_t)j0 * kv_dim + g * hd, kv_dim, 1.0f, o, q_dim);
    }
}

/* One part (rows i0..i0+rows-1, heads h0..h1-1): out = softmax(Q K^T / sqrt(hd)) V over all tiles. */
static void attention_part(const Config *c, const AttentionInputs *a, float *out, float *scratch, AttentionPart part) {
    int hd = c->head_dim, q_dim = c->n_heads * hd, first = a->n_keys - a->k, tile = tile_keys(hd);
    int i0 = part.i0, rows = part.rows;
    float *max = scratch + ATTN_ROWS * ATTN_MAX_KEYS * 5 / 4, *sum = max + c->n_heads * ATTN_ROWS;
    uint8_t *mask = (uint8_t *)(scratch + ATTN_ROWS * ATTN_MAX_KEYS);
    for (int i = 0; i < c->n_heads * ATTN_ROWS; i++) max[i] = -INFINITY, sum[i] = 0.0f;
    for (int r = 0; r < rows; r++)
        memset(out + (size_t)(i0 + r) * q_dim + part.h0 * hd, 0, (size_t)(part.h1 - part.h0) * hd * sizeof(float));
    for (int j0 = 0; j0 < a->n_keys; j0 += tile) {
        int keys = a->n_keys - j0 < tile ? a->n_keys - j0 : tile;
        TileKind kind = tile_kind(a, first + i0, first + i0 + rows - 1, j0, keys);
        if (kind == TILE_HIDDEN || (kind == TILE_MIXED && tile_mask(a, i0, rows, j0, keys, mask) == 0))
            continue; /* hidden from every row: skipped */
        attention_tile(c, a, out, scratch, part, j0, keys, kind == TILE_SHOWN ? NULL : mask);
    }
    for (int h = part.h0; h < part.h1; h++) /* out /= sum */
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

/* The parts in turn on each thread (later blocks see more keys: handed out
 * one at a time). Fewer blocks than threads (a decode step: one block) split
 * their heads between the threads, so that the threads share the step. A
 * head's arithmetic is the same in any part and on any thread. */
void tempo_attention_fast(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    int blocks = (a->k + ATTN_ROWS - 1) / ATTN_ROWS, threads = omp_get_max_threads();
    int splits = blocks < threads ? (threads + blocks - 1) / blocks : 1; /* head ranges per block */
    if (splits > c->n_heads) splits = c->n_heads;
    int parts = blocks * splits;
#pragma omp parallel for schedule(dynamic, 1) num_threads(parts < threads ? parts : threads)
    for (int p = 0; p < parts; p++) {
        int b = p / splits, s = p % splits, i0 = b * ATTN_ROWS;
        AttentionPart part = {.i0 = i0, .rows = a->k - i0 < ATTN_ROWS ? a->k - i0 : ATTN_ROWS,
                     .h0 = c->n_heads * s / splits, .h1 = c->n_heads * (s + 1) / splits};
        attention_part(c, a, out, scores + thread_scratch(c) * (size_t)omp_get_thread_num(), part);
    }
    if (probs) kept_probabilities(c, a, probs);
}
