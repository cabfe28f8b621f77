/* tempo.c - TEMPO (Threshold-Enabled Multipath Parallel Output) generation
 * for Llama models, written to be read top to bottom:
 *
 *   Small helpers
 *   The math, one step per function
 *   The KV cache
 *   The forward pass over a position map and a mask
 *   Masks: causal, isolated, visible
 *   TEMPO generation: the loop, then choosing a parallel set, feeding it,
 *   pruning, storage, buffers, and last the settings
 *
 * The structs are in tempo.h. Each step is written here in plain loops; the
 * tuned versions of the linear layer, attention and the embedding lookup
 * are in kernels/, tested equal to these (the loaders set them in
 * Model.kernels). Checkpoints, tokenizers and trace files are read and
 * written in formats/, the command-line tool and the analysis live in
 * tools/. NOTES.md explains the why; each title below names its section there. */
#define _GNU_SOURCE
#include "tempo.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ==== Small helpers (NOTES 15) ==== */

int tempo_error(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, TEMPO_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Grows *buf so it holds at least `need` elements of `elem` bytes. */
int tempo_grow(void **buf, size_t *cap, size_t need, size_t elem, char *err) {
    if (need <= *cap) return 0;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need) new_cap *= 2;
    void *p = realloc(*buf, new_cap * elem);
    if (!p) return tempo_error(err, "out of memory growing a buffer to %zu bytes", new_cap * elem);
    *buf = p;
    *cap = new_cap;
    return 0;
}

void tempo_set_threads(int n) {
    openblas_set_num_threads(1); /* its calls run inside our threads (NOTES 12) */
    if (n > 0) omp_set_num_threads(n);
}

const char *tempo_weight_type_name(WeightType t) {
    static const char *const names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "q4_1",
                                        "q5_0", "q5_1", "q2_k", "q3_k", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0",
                                        "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "q1_0", "q2_0"};
    _Static_assert(sizeof names / sizeof names[0] == WEIGHT_N_TYPES, "a name for every WeightType");
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

int tempo_is_eos(const Config *c, int token) {
    for (int i = 0; i < c->n_eos; i++) if (c->eos_token_ids[i] == token) return 1;
    return 0;
}

/* ==== The math, one step per function (NOTES 1) ==== */

/* RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight, for each of n rows. */
static void rmsnorm(float *out, const float *x, const float *weight, int n, int dim, float eps) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) out[(size_t)r * dim + i] = xr[i] * scale * weight[i];
    }
}

/* RoPE angles of each row: angle[r][i] = logical_pos[r] * inv_freq[i],
 * inv_freq[i] = theta^(-2i/head_dim) (rescaled for llama3/linear RoPE).
 * m->rope_angles says how the angle is formed: exactly, in double; as
 * transformers does, inv_freq = 1 / theta^(2i/head_dim) in f32 (times the
 * rescaling), then inv_freq * position in f32; or as ggml does,
 * angle_0 = position, angle_{i+1} = angle_i * f32(theta^(-2/head_dim)) in
 * f32, a rescaled frequency dividing by its factor (ggml's freq_factors),
 * and its cos and sin by libm's f32 cosf and sinf (not correctly rounded). */
static void rope_angles(float *cos_out, float *sin_out, const int *logical_pos, int n, const Model *m) {
    int head_dim = m->config.head_dim, half = head_dim / 2, f32_libm = m->rope_angles == ROPE_ANGLES_GGML;
    float ggml_step = powf(m->config.rope_theta, -2.0f / (float)head_dim);
    for (int r = 0; r < n; r++) {
        float ggml_angle = (float)logical_pos[r];
        for (int i = 0; i < half; i++) {
            double angle = logical_pos[r] * m->rope_inv_freq[i];
            if (m->rope_angles == ROPE_ANGLES_TORCH) {
                double plain = pow(m->config.rope_theta, -2.0 * i / head_dim); /* rescaling, if any, applied after */
                float inv32 = 1.0f / powf(m->config.rope_theta, (float)(2 * i) / (float)head_dim);
                angle = (float)(inv32 * (m->rope_inv_freq[i] / plain)) * (float)logical_pos[r];
            } else if (m->rope_angles == ROPE_ANGLES_GGML) {
                float factor = (float)(pow(m->config.rope_theta, -2.0 * i / head_dim) / m->rope_inv_freq[i]);
                angle = ggml_angle / factor;
                ggml_angle *= ggml_step;
            }
            cos_out[r * half + i] = f32_libm ? cosf((float)angle) : (float)cos(angle);
            sin_out[r * half + i] = f32_libm ? sinf((float)angle) : (float)sin(angle);
        }
    }
}

/* Rotates each head of each row by its row's angles. A pair (a, b) becomes
 * (a cos - b sin, a sin + b cos); the pair is (2i, 2i+1) when interleaved
 * (llama2.c) or (i, i + head_dim/2) otherwise (Hugging Face). */
static void rope_rotate(float *x, int n, int n_heads, int head_dim, int interleaved, const float *cos_t,
                        const float *sin_t, void (*pair)(float *a, float *b, float c, float s)) {
    int half = head_dim / 2;
    for (int r = 0; r < n; r++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)r * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
                float c = cos_t[r * half + i], s = sin_t[r * half + i];
                float a = v[ia], b = v[ib];
                if (pair) pair(&v[ia], &v[ib], c, s); /* an engine's arithmetic (Kernels.rope_pair) */
                else v[ia] = a * c - b * s, v[ib] = a * s + b * c;
            }
        }
}

/* Softmax over the allowed entries (allowed NULL: all of them):
 * x_j = exp(x_j - max) / sum_j' exp(x_j' - max); masked entries get exactly 0. */
void tempo_softmax(float *x, const uint8_t *allowed, int n) {
    float max = -INFINITY;
    for (int j = 0; j < n; j++) if ((!allowed || allowed[j]) && x[j] > max) max = x[j];
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        x[j] = (!allowed || allowed[j]) ? expf(x[j] - max) : 0.0f;
        sum += x[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++) x[j] *= inv;
}

/* SwiGLU: gate = silu(gate) * up, elementwise. */
static void swiglu(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* p[j].out = in p[j].w^T for products of one input: one call, which a kernel may run as one parallel step. */
static void products(const Kernels *kern, const Product *p, int count, const float *in, int n, int m, float *scratch) {
    if (kern->products) kern->products(p, count, in, n, m, scratch);
    else
        for (int j = 0; j < count; j++) kern->matmul(p[j].out, in, p[j].w, n, m, p[j].d, scratch);
}

static void add_into(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* ---- the linear layer, attention and the embedding lookup, plainly ----
 * These are the definitions; kernels/ holds tuned versions of the same
 * steps, tested equal to them (tests/test_kernels.c). The plain ones read
 * f32 weights only. */

/* Value i of an f32 row stored at any alignment (files need not align it). */
static float f32_at(const void *row, size_t i) {
    float v;
    memcpy(&v, (const char *)row + i * sizeof(float), sizeof v);
    return v;
}

/* y = sum_t w[t] x[t], in a fixed order: 16 partial sums, lane j adding
 * the products at t = j, j + 16, j + 32, ... in turn; then the lanes are
 * added pairwise (lane j += lane j + 8, then + 4, + 2, + 1). The tuned
 * kernel keeps this order, one vector register of 16 lanes. */
enum { LANES = 16 };
static float dot_in_lanes(const void *w, const float *x, int m) {
    float lane[LANES] = {0};
    for (int t = 0; t < m; t++) lane[t % LANES] += f32_at(w, (size_t)t) * x[t];
    for (int half = LANES / 2; half > 0; half /= 2)
        for (int j = 0; j < half; j++) lane[j] += lane[j + half];
    return lane[0];
}

/* Linear layer: out[i][r] = sum_t W[r][t] in[i][t], for n input rows and W [d][m]. */
static void matmul_plain(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    (void)scratch;
    for (int r = 0; r < d; r++)
        for (int i = 0; i < n; i++)
            out[(size_t)i * d + r] = dot_in_lanes((const float *)w.data + (size_t)r * m, in + (size_t)i * m, m);
}

static size_t matmul_plain_scratch(int n, int m) {
    (void)n, (void)m;
    return 0;
}

/* Embedding lookup: out = row `row` of W [rows][cols]. */
static void matrix_row_plain(Matrix w, int row, int cols, float *out) {
    memcpy(out, (const float *)w.data + (size_t)row * cols, (size_t)cols * sizeof(float));
}

/* Attention of each new row i, head h, over the keys: s_j = q . k_j /
 * sqrt(head_dim) where the mask allows key j, -inf where not; p =
 * softmax(s) (masked keys get exactly 0); out = sum_j p_j v_j. Head h reads
 * key/value head g = h / (n_heads / n_kv_heads) (grouped-query). One
 * [n_keys] row of scores at a time; the kept rows and heads copy p out. */
static void attention_plain(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs) {
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    int first = a->n_keys - a->k, n_kept_rows = a->keep_rows ? a->n_keep_rows : a->k;
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < a->k; i++) {
        int row_slot = tempo_kept_slot(a->keep_rows, a->n_keep_rows, i); /* its place among the kept rows, or -1 */
        for (int h = 0; h < c->n_heads; h++) {
            const float *q = a->q + (size_t)i * q_dim + h * hd;
            const float *keys = a->keys + (h / group) * hd, *values = a->values + (h / group) * hd;
            for (int j = 0; j < a->n_keys; j++) {
                float dot = 0.0f;
                for (int t = 0; t < hd; t++) dot += q[t] * keys[(size_t)j * kv_dim + t];
                scores[j] = tempo_mask_cell(a->mask, a->layer, first + i, j) ? scale * dot : -INFINITY;
            }
            tempo_softmax(scores, NULL, a->n_keys);
            int head_slot = tempo_kept_slot(a->keep_heads, a->n_keep_heads, h);
            if (probs && row_slot >= 0 && head_slot >= 0)
                memcpy(probs + ((size_t)head_slot * n_kept_rows + row_slot) * a->n_keys, scores, (size_t)a->n_keys * sizeof(float));
            float *o = out + (size_t)i * q_dim + h * hd;
            for (int t = 0; t < hd; t++) o[t] = 0.0f;
            for (int j = 0; j < a->n_keys; j++)
                for (int t = 0; t < hd; t++) o[t] += scores[j] * values[(size_t)j * kv_dim + t];
        }
    }
}

static size_t attention_plain_scratch(const Config *c, int k, int n_keys) {
    (void)c, (void)k;
    return (size_t)n_keys;
}

const Kernels tempo_plain_kernels = {
    .name = "plain",
    .weight_types = 1u << WEIGHT_F32,
    .matmul = matmul_plain,
    .matmul_scratch = matmul_plain_scratch,
    .matrix_row = matrix_row_plain,
    .attention = attention_plain,
    .attention_scratch = attention_plain_scratch,
};
/* ==== The KV cache (NOTES 2) ==== */

static int kv_dim_of(const Config *c) { return c->n_kv_heads * c->head_dim; }
static int q_dim_of(const Config *c) { return c->n_heads * c->head_dim; }

int tempo_state_init(State *s, const Config *c, int capacity, char *err) {
    memset(s, 0, sizeof *s);
    if (capacity <= 0) return tempo_error(err, "KV cache capacity must be positive, got %d", capacity);
    size_t per_layer = (size_t)capacity * kv_dim_of(c);
    s->capacity = capacity;
    s->key_cache = calloc(per_layer * c->n_layers, sizeof(float));
    s->value_cache = calloc(per_layer * c->n_layers, sizeof(float));
    if (!s->key_cache || !s->value_cache) {
        tempo_state_free(s);
        return tempo_error(err, "out of memory for a KV cache of %d rows", capacity);
    }
    return 0;
}

void tempo_state_free(State *s) {
    free(s->key_cache); free(s->value_cache);
    free(s->x); free(s->xb); free(s->q); free(s->att_out);
    free(s->hb); free(s->hb2); free(s->scores);
    free(s->rope_cos); free(s->rope_sin); free(s->weight_panel); free(s->kept_rows);
    memset(s, 0, sizeof *s);
}

enum { ALIGN = 64 }; /* bytes: a cache line, and one AVX-512 vector */

/* n floats (at least one) starting on a cache line. */
static float *aligned_floats(size_t n) { return aligned_alloc(ALIGN, ((n ? n : 1) * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN); }

/* Makes a kernel's scratch *buf hold `values` floats (*have: what it holds). */
static int ensure_kernel_scratch(float **buf, size_t *have, size_t values, char *err) {
    if (values <= *have && *buf) return 0;
    free(*buf);
    *buf = aligned_floats(values);
    *have = *buf ? values : 0;
    return *buf ? 0 : tempo_error(err, "out of memory for kernel scratch of %zu values", values);
}

/* Makes the scratch buffers fit `rows` new rows. */
static int ensure_scratch(State *s, const Config *c, int rows, char *err) {
    if (rows <= s->scratch_rows) return 0;
    int wide = c->dim > q_dim_of(c) ? c->dim : q_dim_of(c);
    float **bufs[] = {&s->x, &s->xb, &s->q, &s->att_out, &s->hb, &s->hb2, &s->rope_cos, &s->rope_sin};
    size_t sizes[] = {(size_t)rows * c->dim, (size_t)rows * wide, (size_t)rows * q_dim_of(c),
                      (size_t)rows * q_dim_of(c), (size_t)rows * c->hidden_dim,
                      (size_t)rows * c->hidden_dim, (size_t)rows * c->head_dim / 2, (size_t)rows * c->head_dim / 2};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) { /* rows start on cache lines when dim % 16 == 0 */
        free(*bufs[i]);
        if (!(*bufs[i] = aligned_floats(sizes[i]))) return tempo_error(err, "out of memory for scratch of %d rows", rows);
    }
    free(s->kept_rows);
    s->kept_rows = malloc((size_t)rows * sizeof(int));
    if (!s->kept_rows) return tempo_error(err, "out of memory for scratch of %d rows", rows);
    s->scratch_rows = rows;
    return 0;
}

/* ==== The forward pass over a position map and a mask (NOTES 3) ==== */

/* 0 if the mask covers rows first..first+k-1 over n_keys keys; else an error. */
static int check_mask(const Mask *mask, const Config *c, int first, int k, int n_keys, char *err) {
    if (!mask) return tempo_error(err, "forward needs a mask");
    if (mask->layers != 1 && mask->layers != c->n_layers)
        return tempo_error(err, "mask has %d layers; expected 1 or n_layers = %d", mask->layers, c->n_layers);
    if (!mask->dense && !mask->sets) return tempo_error(err, "a rule mask needs the rows' sets");
    int last = mask->dense_first + mask->dense_rows - 1;
    if (mask->dense && (mask->dense_first > first || last < first + k - 1 || mask->dense_keys < n_keys))
        return tempo_error(err, "the mask covers rows %d-%d over %d keys, not rows %d-%d over %d", mask->dense_first,
                           last, mask->dense_keys, first, first + k - 1, n_keys);
    for (int l = 0; l < mask->layers; l++)
        for (int q = first; q < first + k; q++) {
            int any = tempo_mask_cell(mask, l, q, q); /* a rule row sees itself; else look at every key */
            for (int j = 0; j < n_keys && !any; j++) any = tempo_mask_cell(mask, l, q, j);
            if (!any) return tempo_error(err, "mask row %d (layer %d) allows no key", q, l);
        }
    return 0;
}

/* 0 if a keep list is ascending within its bounds; else an error naming it. */
static int check_keep_list(const int *list, int n, int bound, const char *what, char *err) {
    if (list && n < 1) return tempo_error(err, "the attention keep list of %s is empty", what);
    for (int i = 0; list && i < n; i++)
        if (list[i] < 0 || list[i] >= bound || (i > 0 && list[i] <= list[i - 1]))
            return tempo_error(err, "attention %s %d is out of range [0, %d) or not ascending", what, list[i], bound);
    return 0;
}

static int check_inputs(const Model *m, const State *s, int k, const int *tokens, const int *logical_pos,
                        const Mask *mask, Outputs out, char *err) {
    const Config *c = &m->config;
    if (k <= 0) return tempo_error(err, "forward needs at least one new row, got %d", k);
    if (out.last_logits < 0 || out.last_logits > k)
        return tempo_error(err, "logits asked for the last %d rows of %d new rows", out.last_logits, k);
    if (s->n_rows + k > s->capacity)
        return tempo_error(err, "KV cache full: %d rows cached + %d new > capacity %d", s->n_rows, k, s->capacity);
    for (int i = 0; i < k; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return tempo_error(err, "token id %d at row %d is out of range [0, %d)", tokens[i], s->n_rows + i, c->vocab_size);
        if (logical_pos[i] < 0 || logical_pos[i] >= c->seq_len)
            return tempo_error(err, "logical position %d at row %d is out of range [0, %d)", logical_pos[i],
                        s->n_rows + i, c->seq_len);
    }
    const AttentionKeep *keep = out.keep;
    if (keep && (check_keep_list(keep->layers, keep->n_layers, c->n_layers, "layer", err) != 0 ||
                 check_keep_list(keep->heads, keep->n_heads, c->n_heads, "head", err) != 0 ||
                 check_keep_list(keep->rows, keep->n_rows, s->capacity, "row", err) != 0))
        return -1;
    return check_mask(mask, c, s->n_rows, k, s->n_rows + k, err);
}

/* 0 if the kernels read matrix x in its stored type; else an error naming it. */
static int kernels_read(const Kernels *kern, Matrix x, const char *name, char *err) {
    if (kern->weight_types >> x.type & 1u) return 0;
    return tempo_error(err, "the %s kernels do not read %s matrices (%s); a model loaded by "
                       "tempo_model_load has kernels that do", kern->name, tempo_weight_type_name(x.type), name);
}

static int check_weight_types(const Model *m, const Kernels *kern, char *err) {
    const Weights *w = &m->weights;
    if (kernels_read(kern, w->token_embedding, "token embedding", err) != 0 ||
        kernels_read(kern, w->wcls, "classifier", err) != 0)
        return -1;
    for (int l = 0; l < m->config.n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];
        Matrix layer[] = {lw->wq, lw->wk, lw->wv, lw->wo, lw->w1, lw->w2, lw->w3};
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
            if (kernels_read(kern, layer[i], "a layer matrix", err) != 0) return -1;
    }
    return 0;
}

int tempo_kept_slot(const int *list, int n, int value) {
    if (!list) return value;
    for (int i = 0; i < n && list[i] <= value; i++) if (list[i] == value) return i;
    return -1;
}

/* Where layer l's kept probabilities go in Outputs.attention, or NULL
 * (none asked for, or layer l not kept). */
static float *kept_layer_attention(const Config *c, Outputs out, int l, int kept_rows, int n_keys) {
    const AttentionKeep *keep = out.keep;
    int slot = keep ? tempo_kept_slot(keep->layers, keep->n_layers, l) : l;
    int heads = keep && keep->heads ? keep->n_heads : c->n_heads;
    return out.attention && slot >= 0 ? out.attention + (size_t)slot * heads * kept_rows * n_keys : NULL;
}

/* Multi-head attention of the k new rows (queries in s->q) over every
 * cached key of layer l; probabilities of the kept heads and rows into out. */
static void attention(const Kernels *kern, const Config *c, State *s, int l, int k, const Mask *mask, Outputs out) {
    size_t layer = (size_t)l * s->capacity * kv_dim_of(c);
    const AttentionKeep *keep = out.keep;
    AttentionInputs a = {.q = s->q, .keys = s->key_cache + layer, .values = s->value_cache + layer,
                         .mask = mask, .layer = mask->layers > 1 ? l : 0, .k = k, .n_keys = s->n_rows + k};
    if (keep && keep->heads) a.keep_heads = keep->heads, a.n_keep_heads = keep->n_heads;
    if (keep && keep->rows) { /* the kept rows among the new ones, as indices 0..k-1 */
        a.keep_rows = s->kept_rows;
        for (int i = 0; i < keep->n_rows; i++)
            if (keep->rows[i] >= s->n_rows && keep->rows[i] < a.n_keys) s->kept_rows[a.n_keep_rows++] = keep->rows[i] - s->n_rows;
    }
    float *probs = kept_layer_attention(c, out, l, a.keep_rows ? a.n_keep_rows : k, a.n_keys);
    if (a.keep_rows && a.n_keep_rows == 0) probs = NULL; /* no kept row in this call */
    kern->attention(c, &a, s->att_out, s->scores, probs);
}

/* 0 if values [rows][cols] (rows first..) are finite, else the error naming the least index not (a min: it vectorizes). */
static int check_finite(const float *values, int rows, int cols, int first, const char *what, char *err) {
    size_t n = (size_t)rows * cols, i = n, at;
    for (size_t j = 0; j < n; j++) at = isfinite(values[j]) ? n : j, i = at < i ? at : i;
    return i == n ? 0 : tempo_error(err, "%s %zu of row %d is %g: the forward pass overflowed f32 (or a weight is not "
                                    "finite: tempo check MODEL)", what, i % cols, first + (int)(i / cols), values[i]);
}

int tempo_forward(const Model *m, State *s, int k, const int *tokens, const int *logical_pos,
                  const Mask *mask, Outputs out, char *err) {
    const Config *c = &m->config;
    const Weights *w = &m->weights;
    const Kernels *kern = m->kernels ? m->kernels : &tempo_plain_kernels;
    void (*norm)(float *, const float *, const float *, int, int, float) = kern->rmsnorm ? kern->rmsnorm : rmsnorm;
    if (check_inputs(m, s, k, tokens, logical_pos, mask, out, err) != 0 || check_weight_types(m, kern, err) != 0) return -1;
    int n_keys = s->n_rows + k, dim = c->dim, hid = c->hidden_dim, q_dim = q_dim_of(c), kv_dim = kv_dim_of(c);
    int widest_input = dim > q_dim ? (dim > hid ? dim : hid) : (q_dim > hid ? q_dim : hid);
    if (ensure_scratch(s, c, k, err) != 0 ||
        ensure_kernel_scratch(&s->weight_panel, &s->panel_values, kern->matmul_scratch(k, widest_input), err) != 0 ||
        ensure_kernel_scratch(&s->scores, &s->score_values, kern->attention_scratch(c, k, n_keys), err) != 0)
        return -1;
    float *panel = s->weight_panel;

    for (int i = 0; i < k; i++) /* x = embedding of each new token */
        kern->matrix_row(w->token_embedding, tokens[i], dim, s->x + (size_t)i * dim);
    rope_angles(s->rope_cos, s->rope_sin, logical_pos, k, m);

    for (int l = 0; l < c->n_layers; l++) {
        /* attention block: x += Wo attn(RoPE(Wq xn), RoPE(Wk xn), Wv xn), xn = rmsnorm(x) */
        const LayerWeights *lw = &w->layers[l];
        norm(s->xb, s->x, lw->rms_att, k, dim, c->norm_eps);
        float *k_rows = s->key_cache + ((size_t)l * s->capacity + s->n_rows) * kv_dim;
        float *v_rows = s->value_cache + ((size_t)l * s->capacity + s->n_rows) * kv_dim;
        Product qkv[] = {{s->q, lw->wq, q_dim}, {k_rows, lw->wk, kv_dim}, {v_rows, lw->wv, kv_dim}};
        products(kern, qkv, 3, s->xb, k, dim, panel);
        rope_rotate(s->q, k, c->n_heads, c->head_dim, c->rope_interleaved, s->rope_cos, s->rope_sin, kern->rope_pair);
        rope_rotate(k_rows, k, c->n_kv_heads, c->head_dim, c->rope_interleaved, s->rope_cos, s->rope_sin, kern->rope_pair);
        for (int kv = 0; kern->cache_store && kv < 2; kv++) /* K and V as the cache stores them */
            kern->cache_store(kv == 0 ? k_rows : v_rows, (size_t)k * kv_dim);
        attention(kern, c, s, l, k, mask, out);
        kern->matmul(s->xb, s->att_out, lw->wo, k, q_dim, dim, panel);
        add_into(s->x, s->xb, (size_t)k * dim);

        /* feed-forward block: x += W2 (silu(W1 xn) * W3 xn), xn = rmsnorm(x) */
        norm(s->xb, s->x, lw->rms_ffn, k, dim, c->norm_eps);
        Product gate_up[] = {{s->hb, lw->w1, hid}, {s->hb2, lw->w3, hid}};
        products(kern, gate_up, 2, s->xb, k, dim, panel);
        (kern->swiglu ? kern->swiglu : swiglu)(s->hb, s->hb2, (size_t)k * hid);
        kern->matmul(s->xb, s->hb, lw->w2, k, hid, dim, panel);
        add_into(s->x, s->xb, (size_t)k * dim);
    }

    /* logits = Wcls rmsnorm(x), for the rows asked for; a logit or final hidden value not finite is the error (NOTES 3) */
    norm(s->xb, s->x, w->rms_final, k, dim, c->norm_eps);
    if (out.hidden) memcpy(out.hidden, s->xb, (size_t)k * dim * sizeof(float));
    int first_logits = out.last_logits > 0 ? k - out.last_logits : 0;
    if (out.logits) kern->matmul(out.logits, s->xb + (size_t)first_logits * dim, w->wcls, k - first_logits, dim, c->vocab_size, panel);
    if ((out.logits && check_finite(out.logits, k - first_logits, c->vocab_size, s->n_rows + first_logits, "logit", err) != 0) ||
        check_finite(s->xb, k, dim, s->n_rows, "final hidden-state value", err) != 0)
        return -1; /* the new rows are not counted: the cache is as it was */
    s->n_rows += k;
    return 0;
}

int tempo_forward_chunk_rows(int n, int dense_mask, int keeps_attention) {
    return !dense_mask && !keeps_attention && n > TEMPO_CHUNK_ROWS ? TEMPO_CHUNK_ROWS : n;
}

/* All n rows from an empty cache, in chunks through the cache when they may
 * go in turn (tempo_forward_chunk_rows; logits of more than n rows: one call,
 * which says so), each chunk with its rows of the outputs. */
int tempo_forward_full(const Model *m, int n, const int *tokens, const int *logical_pos,
                       const Mask *mask, Outputs out, char *err) {
    State s;
    if (tempo_state_init(&s, &m->config, n > 0 ? n : 1, err) != 0) return -1;
    int whole = out.last_logits < 0 || out.last_logits > n, logits_from = out.last_logits > 0 ? n - out.last_logits : 0;
    int chunk = whole ? n : tempo_forward_chunk_rows(n, mask && mask->dense, out.attention != NULL), rc = 0, done = 0;
    do {
        int k = n - done < chunk ? n - done : chunk, from = done > logits_from ? done : logits_from;
        Outputs part = out;
        if (k < n) {
            part.logits = out.logits && from < done + k ? out.logits + (size_t)(from - logits_from) * m->config.vocab_size : NULL;
            part.last_logits = part.logits ? done + k - from : 0;
            part.hidden = out.hidden ? out.hidden + (size_t)done * m->config.dim : NULL;
        }
        rc = tempo_forward(m, &s, k, tokens + done, logical_pos + done, mask, part, err);
        done += k;
    } while (rc == 0 && done < n);
    tempo_state_free(&s);
    return rc;
}

/* ==== Masks: causal, isolated, visible (NOTES 4) ==== */
/* One rule says which keys a row sees (tempo_mask_cell); rows of one set share a logical position. */
Mask tempo_mask_rule(MaskKind kind, const int *sets) {
    return (Mask){.kind = kind, .sets = sets, .layers = 1};
}

Mask tempo_mask_dense(const uint8_t *allowed, int layers, int first, int rows, int keys) {
    return (Mask){.dense = allowed, .layers = layers, .dense_first = first, .dense_rows = rows, .dense_keys = keys};
}

/* The one rule: causal (key <= q), minus keys pruned before row q, minus,
 * in isolated layers, the other members of q's set. A dense mask is read. */
int tempo_mask_cell(const Mask *m, int layer, int q, int key) {
    int l = m->layers > 1 ? layer : 0;
    if (m->dense) return m->dense[((size_t)l * m->dense_rows + (size_t)(q - m->dense_first)) * m->dense_keys + (size_t)key] != 0;
    if (key > q) return 0;
    if (m->hidden_from && m->hidden_from[key] >= 0 && q >= m->hidden_from[key]) return 0;
    MaskKind kind = m->layer_kinds ? m->layer_kinds[l] : m->kind;
    return !(kind == MASK_ISOLATED && key != q && m->sets[key] == m->sets[q]);
}

void tempo_mask_rows(MaskKind kind, const int *sets, int first, int k, uint8_t *allowed) {
    Mask rule = tempo_mask_rule(kind, sets);
    int n_keys = first + k;
    for (int i = 0; i < k; i++)
        for (int key = 0; key < n_keys; key++)
            allowed[(size_t)i * n_keys + key] = (uint8_t)tempo_mask_cell(&rule, 0, first + i, key);
}

/* ==== TEMPO generation (NOTES 5: the loop, 6: dynamic threshold, 7: pruning) ==== */
/* One logical step: the next-token distribution, every token with p >=
 * threshold appended at the SAME logical position with one set id, the
 * cached forward of those rows, then optionally pruning. NOTES.md has each rule. */

/* What one generation works with, besides the Generation it fills. */
typedef struct {
    const Model *model;
    const GenConfig *g;
    State cache;                          /* the KV cache */
    float *probs, *scratch;               /* [vocab]: the next-token distribution, and room for one more */
    const float **live_rows;              /* [width]: logits of the last set's live members */
    int *parallel_set;                    /* [vocab]: candidates, then the selected tokens */
    int *row_tokens, *row_pos, *row_sets; /* [capacity]: the rows of one forward call */
    float *batch_attention;               /* [L][H][rows][keys]: when captured or pruned by */
} Run;

static int run_open(Run *r, const Model *m, const GenConfig *g, int n_prompt, Generation *gen, char *err);
static void run_close(Run *r);
static int feed_prompt(Run *r, Generation *gen, const int *prompt, int n_prompt, char *err);
static void next_distribution(Run *r, const Generation *gen, int vocab);
static int record_step(Generation *gen, int logical_pos, float threshold, const int *selected, int n_sel,
                       const float *probs, char *err);
static int feed_parallel_set(Run *r, Generation *gen, int step, char *err);
static int prune_sets(Generation *gen, const GenConfig *g, const Config *c, int step, int first, int k,
                      const float *batch_attention, char *err);

int tempo_generate(const Model *m, const int *prompt, int n_prompt, const GenConfig *g, Generation *gen,
                   char *err) {
    const Config *c = &m->config;
    Run r;
    if (run_open(&r, m, g, n_prompt, gen, err) != 0) return -1;
    double t0 = now_seconds(); /* the prompt: logical positions 0..P-1, causal, each token its own set */
    int rc = feed_prompt(&r, gen, prompt, n_prompt, err);
    gen->prefill_seconds = now_seconds() - t0;
    gen->stop_reason = "max-tokens";
    for (int step = 0; step < g->max_steps && rc == 0; step++) {
        /* every member of this step's set sits here: after the prompt (0..P-1), G positions skipped */
        int logical_pos = n_prompt + g->position_gap + step;
        if (logical_pos >= c->seq_len) { gen->stop_reason = "context-full"; break; }
        /* the parallel set: every token with p >= threshold(step), most probable first */
        float threshold = tempo_threshold_at(g, step);
        next_distribution(&r, gen, c->vocab_size);
        int width = tempo_choose_set(r.probs, c->vocab_size, threshold, g, r.parallel_set);
        if (width == 0) { gen->stop_reason = "empty-set"; break; }
        if (tempo_is_eos(c, r.parallel_set[0])) { gen->stop_reason = "eos"; break; }
        /* all members at one logical position, in one forward call; then pruning */
        rc = record_step(gen, logical_pos, threshold, r.parallel_set, width, r.probs, err);
        int first = gen->n_rows;
        if (rc == 0) rc = feed_parallel_set(&r, gen, step, err);
        if (rc == 0 && g->prune)
            rc = prune_sets(gen, g, c, step, first, gen->n_rows - first, r.batch_attention, err);
    }
    gen->total_seconds = now_seconds() - t0;
    run_close(&r);
    if (rc != 0) tempo_generation_free(gen);
    return rc;
}

/* ---- choosing the parallel set ---- */

/* The logits of physical row `row` (which must be kept). */
const float *tempo_row_logits(const Generation *gen, int row, int vocab) {
    return gen->logits + (size_t)(row - gen->logits_first) * vocab;
}

/* p = softmax(logits) of one row. */
void tempo_probs(float *p, const float *logits, int vocab) {
    memcpy(p, logits, (size_t)vocab * sizeof(float));
    tempo_softmax(p, NULL, vocab);
}

/* The next-token distribution: p = softmax(last_row), or with NEXT_MEAN
 * p = (1/n) sum_i softmax(set_rows[i]) over the live members of the last
 * set (the last row when there are none: the prompt). The audit calls it
 * over an engine's trace rows. */
void tempo_next_distribution(NextFrom from, const float *const *set_rows, int n_set, const float *last_row, int vocab,
                             float *probs, float *tmp) {
    if (from == NEXT_LAST_ROW || n_set == 0) {
        tempo_probs(probs, last_row, vocab);
        return;
    }
    memset(probs, 0, (size_t)vocab * sizeof(float));
    for (int i = 0; i < n_set; i++) {
        tempo_probs(tmp, set_rows[i], vocab);
        for (int v = 0; v < vocab; v++) probs[v] += tmp[v];
    }
    for (int v = 0; v < vocab; v++) probs[v] /= (float)n_set;
}

/* The run's next distribution, from the live members of its last step. */
static void next_distribution(Run *r, const Generation *gen, int vocab) {
    int n_live = 0;
    const Step *st = gen->n_steps > 0 ? &gen->steps[gen->n_steps - 1] : NULL;
    for (int mi = 0; st && r->g->next_from == NEXT_MEAN && mi < st->n_members; mi++) { /* last row: no member's logits kept */
        const Member *mem = &gen->members[st->first_member + mi];
        if (mem->row >= 0 && mem->pruned_at < 0) r->live_rows[n_live++] = tempo_row_logits(gen, mem->row, vocab);
    }
    tempo_next_distribution(r->g->next_from, r->live_rows, n_live, tempo_row_logits(gen, gen->n_rows - 1, vocab), vocab,
                            r->probs, r->scratch);
}

static int by_probability(const void *a, const void *b, void *probs) {
    const float *p = probs;
    int x = *(const int *)a, y = *(const int *)b;
    if (p[x] != p[y]) return p[x] > p[y] ? -1 : 1;
    return x < y ? -1 : 1;
}

/* Sorts token ids by probability, most probable first (ties: lower id). */
void tempo_sort_by_probability(int *ids, int n, const float *probs) {
    qsort_r(ids, (size_t)n, sizeof(int), by_probability, (void *)probs);
}

/* Token ids with p >= threshold, most probable first, at most max_width.
 * `candidates` has room for the whole vocabulary. */
int tempo_select_tokens(const float *probs, int vocab, float threshold, int max_width, int *candidates) {
    int n = 0;
    for (int v = 0; v < vocab; v++)
        if (probs[v] >= threshold) candidates[n++] = v;
    tempo_sort_by_probability(candidates, n, probs);
    return n < max_width ? n : max_width;
}

/* The parallel set of one step: tempo_select_tokens, else (none clears the
 * threshold) the argmax alone, or nothing with stop_on_empty. */
int tempo_choose_set(const float *probs, int vocab, float threshold, const GenConfig *g, int *candidates) {
    int width = tempo_select_tokens(probs, vocab, threshold, g->max_width, candidates);
    if (width == 0 && !g->stop_on_empty) candidates[width++] = tempo_argmax(probs, vocab); /* greedy */
    return width;
}

int tempo_argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (p[i] > p[best]) best = i;
    return best;
}

/* ---- feeding rows at shared logical positions ---- */

static int append_rows(Run *r, Generation *gen, int k, char *err);

static int feed_prompt(Run *r, Generation *gen, const int *prompt, int n_prompt, char *err) {
    for (int i = 0; i < n_prompt; i++) {
        r->row_tokens[i] = prompt[i];
        r->row_pos[i] = r->row_sets[i] = i;
    }
    return append_rows(r, gen, n_prompt, err);
}

/* Feeds the members of `step` as rows at the step's logical position, with
 * the step's set id: every member except EOS (a branch that ends: it keeps
 * row -1), or only the last such under --emulate last-member-only. The
 * first member is never EOS (that ends the generation). */
static int feed_parallel_set(Run *r, Generation *gen, int step, char *err) {
    Step *st = &gen->steps[step];
    Member *members = gen->members + st->first_member;
    const Config *c = &r->model->config;
    int last = 0, k = 0;
    for (int i = 0; i < st->n_members; i++)
        if (!tempo_is_eos(c, members[i].token)) last = i;
    for (int i = 0; i < st->n_members; i++) {
        if (tempo_is_eos(c, members[i].token) || (r->g->emulate == EMULATE_LAST_MEMBER_ONLY && i != last)) continue;
        r->row_tokens[k] = members[i].token;
        members[i].row = gen->n_rows + k++;
    }
    for (int i = 0; i < k; i++) r->row_pos[i] = r->row_sets[i] = st->logical_pos; /* one position, one set */
    double t0 = now_seconds();
    int rc = append_rows(r, gen, k, err);
    st->seconds = now_seconds() - t0;
    return rc;
}

int tempo_mask_layers(const GenConfig *g, const Config *c) {
    return g->mode == MASK_ISOLATED && (g->isolate_first > 0 || g->isolate_last < c->n_layers - 1) ? c->n_layers : 1;
}

MaskKind tempo_layer_mask_kind(const GenConfig *g, int mask_layers, int l) {
    if (mask_layers == 1) return g->mode;
    return g->mode == MASK_ISOLATED && l >= g->isolate_first && l <= g->isolate_last ? MASK_ISOLATED : MASK_VISIBLE;
}

/* The run's mask as a rule: the mode (per layer with --isolate-layers),
 * minus the rows pruned so far (each from the step after its pruning on). */
Mask tempo_generation_mask(const Generation *gen) {
    return (Mask){.kind = gen->mode, .sets = gen->sets, .layers = gen->mask_layers, .layer_kinds = gen->layer_kinds,
                  .hidden_from = gen->hidden_from};
}

static int grow_generation(Generation *gen, const Config *c, size_t n_rows, char *err);
static int store_rows(Generation *gen, const Config *c, int first, int k, const float *batch, int every, char *err);

/* Feeds k rows (r->row_tokens, row_pos, row_sets) to the model under the
 * run's mask, and keeps what was computed. */
static int append_rows(Run *r, Generation *gen, int k, char *err) {
    const Config *c = &r->model->config;
    int first = gen->n_rows;
    size_t n_keys = (size_t)first + k;
    /* without keep_logits only the logits next_distribution reads: the newest rows' (mean), else the last row's */
    int logit_rows = r->g->keep_logits || (first > 0 && r->g->next_from == NEXT_MEAN) ? k : 1;
    if (!r->g->keep_logits) gen->logits_first = first + k - logit_rows;
    if (grow_generation(gen, c, n_keys, err) != 0) return -1;
    for (int i = 0; i < k; i++) {
        gen->tokens[first + i] = r->row_tokens[i];
        gen->positions[first + i] = r->row_pos[i];
        gen->sets[first + i] = r->row_sets[i];
        gen->pruned[first + i] = gen->hidden_from[first + i] = -1;
    }
    Mask mask = tempo_generation_mask(gen);
    /* attention is needed when captured (what attention_keep lists), and to prune by (a step's rows, every layer and head) */
    int every = r->g->prune && first > 0, need_attention = r->g->capture_attention || every;
    Outputs out = {.logits = gen->logits + (size_t)(first + k - logit_rows - gen->logits_first) * c->vocab_size,
                   .attention = need_attention ? r->batch_attention : NULL, .last_logits = logit_rows,
                   .keep = every ? NULL : r->g->attention_keep};
    int rc = tempo_forward(r->model, &r->cache, k, r->row_tokens, r->row_pos, &mask, out, err);
    return rc == 0 ? store_rows(gen, c, first, k, r->batch_attention, every, err) : -1;
}

/* The share of attention each live member of step s's set receives from
 * the new rows first..first+k-1: summed over those rows, the heads and
 * the last prune_layers layers (unnormalised; 0 for members not live).
 * Returns the live members; *strongest is the largest share's index. */
static int received_shares(const Generation *gen, const GenConfig *g, const Config *c, int s, int first, int k,
                           const float *batch_attention, double *share, int *strongest) {
    int n_keys = first + k, H = c->n_heads, live = 0;
    const Step *st = &gen->steps[s];
    *strongest = -1;
    for (int mi = 0; mi < st->n_members; mi++) {
        const Member *mem = &gen->members[st->first_member + mi];
        share[mi] = 0.0;
        if (mem->row < 0 || mem->pruned_at >= 0) continue;
        live++;
        for (int l = c->n_layers - g->prune_layers; l < c->n_layers; l++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < k; i++)
                    share[mi] += batch_attention[(((size_t)l * H + h) * k + i) * n_keys + mem->row];
        if (*strongest < 0 || share[mi] > share[*strongest]) *strongest = mi;
    }
    return live;
}

static int record_decision(Generation *gen, PruneDecision d, char *err) {
    if (tempo_grow((void **)&gen->decisions, &gen->cap_decisions, (size_t)gen->n_decisions + 1, sizeof d, err) != 0) return -1;
    gen->decisions[gen->n_decisions++] = d;
    return 0;
}

/* Retroactive pruning after step `step` added rows first..first+k-1: for
 * each earlier set within the window with more than one live member, the
 * share of attention each member receives from the new rows (received_shares,
 * normalised within the set); a member whose share < prune_threshold / live
 * members is pruned, except the set's strongest. Each weighing is recorded. */
static int prune_sets(Generation *gen, const GenConfig *g, const Config *c, int step, int first, int k,
                      const float *batch_attention, char *err) {
    for (int s = step - g->prune_window; s < step; s++) {
        if (s < 0) continue;
        const Step *st = &gen->steps[s];
        double share[TEMPO_PRUNE_MAX_WIDTH], total = 0.0;
        int strongest, live = received_shares(gen, g, c, s, first, k, batch_attention, share, &strongest);
        for (int mi = 0; mi < st->n_members; mi++) total += share[mi];
        if (live < 2 || total <= 0.0) continue;
        for (int mi = 0; mi < st->n_members; mi++) {
            Member *mem = &gen->members[st->first_member + mi];
            if (mem->row < 0 || mem->pruned_at >= 0) continue;
            PruneDecision d = {.step = step, .set_step = s, .member = st->first_member + mi, .live = live,
                               .share = share[mi] / total, .bar = (double)g->prune_threshold / live,
                               .strongest = mi == strongest};
            d.pruned = !d.strongest && d.share < d.bar;
            if (record_decision(gen, d, err) != 0) return -1;
            if (d.pruned) {
                mem->pruned_at = gen->pruned[mem->row] = step;
                gen->hidden_from[mem->row] = first + k; /* rows after this step no longer see it */
            }
        }
    }
    return 0;
}

static int record_step(Generation *gen, int logical_pos, float threshold, const int *selected, int n_sel,
                       const float *probs, char *err) {
    if (tempo_grow((void **)&gen->steps, &gen->cap_steps, (size_t)gen->n_steps + 1, sizeof(Step), err) != 0 ||
        tempo_grow((void **)&gen->members, &gen->cap_members, (size_t)gen->n_members + n_sel, sizeof(Member), err) != 0)
        return -1;
    gen->steps[gen->n_steps++] = (Step){.logical_pos = logical_pos, .threshold = threshold,
                                        .first_member = gen->n_members, .n_members = n_sel};
    for (int i = 0; i < n_sel; i++) /* row -1: not fed yet; pruned_at -1: live */
        gen->members[gen->n_members++] = (Member){.token = selected[i], .prob = probs[selected[i]], .row = -1,
                                                  .logical_pos = logical_pos, .pruned_at = -1};
    return 0;
}

/* threshold(s) = start + (final - start) B(s / (max_steps - 1)), with the
 * cubic Bezier easing B(u) = 3(1-u)^2 u P1 + 3(1-u) u^2 P2 + u^3, or B(u) = u. */
float tempo_threshold_at(const GenConfig *g, int step) {
    if (g->schedule == SCHEDULE_CONSTANT) return g->threshold;
    double u = g->max_steps > 1 ? (double)step / (g->max_steps - 1) : 0.0;
    if (u > 1.0) u = 1.0;
    double b = g->schedule == SCHEDULE_LINEAR
                   ? u
                   : 3 * (1 - u) * (1 - u) * u * g->bezier_p1 + 3 * (1 - u) * u * u * g->bezier_p2 + u * u * u;
    return (float)(g->threshold + ((double)g->final_threshold - g->threshold) * b); /* in double: ends exactly at final */
}

/* ---- storage: a generation's rows ---- */

/* Makes the per-row arrays of a generation hold n_rows rows. */
static int grow_generation(Generation *gen, const Config *c, size_t n_rows, char *err) {
    if (tempo_grow((void **)&gen->tokens, &gen->cap_rows, n_rows, sizeof(int), err) != 0) return -1;
    int **per_row[] = {&gen->positions, &gen->sets, &gen->pruned, &gen->hidden_from};
    for (int i = 0; i < 4; i++) {
        int *p = realloc(*per_row[i], gen->cap_rows * sizeof(int));
        if (!p) return tempo_error(err, "out of memory growing the generation to %zu rows", gen->cap_rows);
        *per_row[i] = p;
    }
    size_t V = c->vocab_size;
    return tempo_grow((void **)&gen->logits, &gen->cap_logits, (n_rows - gen->logits_first) * V, sizeof(float), err);
}

/* Counts rows first..first+k-1 in and keeps, when captured, the kept rows'
 * attention ([kept layers][kept heads][row+1] each, appended) from the
 * forward's batch, [layers][heads][rows][n_keys] of the kept ones, or of
 * every layer, head and new row when pruning asked for them (every). */
static int store_rows(Generation *gen, const Config *c, int first, int k, const float *batch, int every, char *err) {
    gen->n_rows += k;
    if (!gen->attention_captured) return 0;
    const AttentionKeep *keep = &gen->attention_keep;
    int KL = keep->layers ? keep->n_layers : c->n_layers, KH = keep->heads ? keep->n_heads : c->n_heads;
    int n_list = keep->rows ? keep->n_rows : first + k, kept = keep->rows ? 0 : k, slot = 0;
    for (int j = 0; keep->rows && j < n_list; j++) kept += keep->rows[j] >= first && keep->rows[j] < first + k;
    size_t n_keys = (size_t)first + k, BH = every ? c->n_heads : KH, BR = every ? k : kept;
    for (int j = 0; j < n_list; j++) { /* the kept rows among the new ones, appended */
        int row = keep->rows ? keep->rows[j] : j;
        if (row < first || row >= first + k) continue;
        size_t br = every ? (size_t)(row - first) : (size_t)slot++, need = gen->n_attention + (size_t)KL * KH * (row + 1);
        if (tempo_grow((void **)&gen->attention, &gen->cap_attention, need, sizeof(float), err) != 0) return -1;
        for (int a = 0; a < KL; a++)
            for (int b = 0; b < KH; b++, gen->n_attention += row + 1) {
                size_t bl = every && keep->layers ? keep->layers[a] : a, bh = every && keep->heads ? keep->heads[b] : b;
                memcpy(gen->attention + gen->n_attention, batch + ((bl * BH + bh) * BR + br) * n_keys, (row + 1) * sizeof(float));
            }
    }
    return 0;
}

void tempo_generation_free(Generation *gen) {
    free(gen->tokens); free(gen->positions); free(gen->sets); free(gen->pruned); free(gen->hidden_from);
    free(gen->layer_kinds); free(gen->attention); free(gen->logits);
    free(gen->members); free(gen->steps); free(gen->decisions);
    memset(gen, 0, sizeof *gen);
}

/* ---- a run's buffers ---- */

/* The most rows one step feeds: max_width, at most the vocabulary; one under --emulate. */
static int set_width(const GenConfig *g, const Config *c) {
    return g->emulate == EMULATE_LAST_MEMBER_ONLY ? 1 : g->max_width < c->vocab_size ? g->max_width : c->vocab_size;
}

/* capacity = prompt + width * (steps that fit: no more than the context's logical positions left) */
int tempo_generation_capacity(const GenConfig *g, const Config *c, int n_prompt) {
    long positions_left = (long)c->seq_len - n_prompt - g->position_gap;
    long steps = positions_left < 0 ? 0 : g->max_steps < positions_left ? g->max_steps : positions_left;
    long rows = n_prompt + steps * set_width(g, c);
    return rows > INT_MAX / 2 ? INT_MAX / 2 : (int)rows;
}

/* Checks the settings and allocates the cache and buffers for the most
 * rows the run can reach. */
static int run_open(Run *r, const Model *m, const GenConfig *g, int n_prompt, Generation *gen, char *err) {
    const Config *c = &m->config;
    memset(gen, 0, sizeof *gen);
    memset(r, 0, sizeof *r);
    if (tempo_gen_validate(g, c, err) != 0) return -1;
    if (n_prompt < 1) return tempo_error(err, "the prompt needs at least one token (BOS)");
    if (n_prompt + g->position_gap >= c->seq_len) /* step 0 sits at P + G, which must lie in the context */
        return tempo_error(err, "prompt of %d tokens and position-gap %d leave no position for a step (seq_len %d)", n_prompt,
                           g->position_gap, c->seq_len);
    r->model = m;
    r->g = g;
    int width = set_width(g, c), capacity = tempo_generation_capacity(g, c, n_prompt);
    gen->mask_layers = tempo_mask_layers(g, c);
    gen->n_prompt = n_prompt;
    gen->mode = g->mode;
    if (tempo_state_init(&r->cache, c, capacity, err) != 0) return -1;
    size_t V = c->vocab_size;
    r->probs = malloc(V * sizeof(float));
    r->scratch = malloc(V * sizeof(float));
    r->parallel_set = malloc(V * sizeof(int));
    r->live_rows = malloc((size_t)width * sizeof(float *));
    int **per_row[] = {&r->row_tokens, &r->row_pos, &r->row_sets};
    for (int i = 0; i < 3; i++) *per_row[i] = malloc((size_t)capacity * sizeof(int));
    gen->attention_captured = g->capture_attention; /* what is kept: the lists given, or everything */
    if (g->attention_keep) gen->attention_keep = *g->attention_keep;
    /* the most attention one call keeps: the prompt's kept rows, or a step's (every layer and head when pruning) */
    const AttentionKeep *keep = &gen->attention_keep;
    size_t KLH = (size_t)(keep->layers ? keep->n_layers : c->n_layers) * (keep->heads ? keep->n_heads : c->n_heads);
    size_t prompt_rows = keep->rows ? 0 : (size_t)n_prompt, batch = 0;
    for (int i = 0; keep->rows && i < keep->n_rows; i++) prompt_rows += keep->rows[i] < n_prompt;
    if (g->capture_attention) batch = KLH * prompt_rows * n_prompt; /* never the prompt's N x N unless asked */
    size_t step = (g->prune ? (size_t)c->n_layers * c->n_heads : g->capture_attention ? KLH : 0) * width * capacity;
    if (step > batch) batch = step;
    if (batch) r->batch_attention = malloc(batch * sizeof(float));
    gen->layer_kinds = malloc((size_t)gen->mask_layers * sizeof(MaskKind));
    if (!r->probs || !r->scratch || !r->parallel_set || !r->live_rows || !r->row_tokens || !r->row_pos || !r->row_sets ||
        (batch && !r->batch_attention) || !gen->layer_kinds) {
        run_close(r);
        tempo_generation_free(gen);
        return tempo_error(err, "out of memory for a generation of %d rows", capacity);
    }
    for (int l = 0; l < gen->mask_layers; l++) gen->layer_kinds[l] = tempo_layer_mask_kind(g, gen->mask_layers, l);
    return 0;
}

static void run_close(Run *r) {
    free(r->probs); free(r->scratch); free(r->parallel_set); free(r->live_rows);
    free(r->row_tokens); free(r->row_pos); free(r->row_sets); free(r->batch_attention);
    tempo_state_free(&r->cache);
}

/* ---- settings: defaults and validation ---- */

void tempo_gen_defaults(GenConfig *g, const Config *c) {
    *g = (GenConfig){.threshold = 0.1f, .max_width = 8, .max_steps = 32, .mode = MASK_ISOLATED, .isolate_first = 0,
                     .isolate_last = c->n_layers - 1, .next_from = NEXT_LAST_ROW, .schedule = SCHEDULE_CONSTANT,
                     .final_threshold = 1.0f, .bezier_p1 = 0.2f, .bezier_p2 = 0.8f, .prune_window = 4,
                     .prune_layers = c->n_layers / 2 > 0 ? c->n_layers / 2 : 1, .prune_threshold = 0.5f, .keep_logits = 1};
}

int tempo_gen_validate(const GenConfig *g, const Config *c, char *err) {
    if (!(g->threshold > 0.0f && g->threshold <= 1.0f)) return tempo_error(err, "threshold %g is outside (0, 1]", g->threshold);
    if (!(g->final_threshold > 0.0f && g->final_threshold <= 1.0f))
        return tempo_error(err, "final threshold %g is outside (0, 1]", g->final_threshold);
    if (g->max_width < 1) return tempo_error(err, "max-width %d must be at least 1", g->max_width);
    if (g->max_steps < 1) return tempo_error(err, "max-tokens %d must be at least 1", g->max_steps);
    if (g->position_gap < 0 || g->position_gap >= c->seq_len)
        return tempo_error(err, "position-gap %d is outside [0, %d) (seq_len)", g->position_gap, c->seq_len);
    if (g->mode != MASK_ISOLATED && g->mode != MASK_VISIBLE) return tempo_error(err, "mode must be isolated or visible");
    if (g->isolate_first < 0 || g->isolate_last >= c->n_layers || g->isolate_first > g->isolate_last)
        return tempo_error(err, "isolate-layers %d-%d is not a range within 0-%d", g->isolate_first, g->isolate_last,
                    c->n_layers - 1);
    if (!(g->bezier_p1 >= 0.0f && g->bezier_p1 <= 1.0f && g->bezier_p2 >= 0.0f && g->bezier_p2 <= 1.0f))
        return tempo_error(err, "bezier points %g,%g must lie in [0, 1]", g->bezier_p1, g->bezier_p2);
    if (g->prune && (g->prune_window < 1 || g->prune_layers < 1 || g->prune_layers > c->n_layers))
        return tempo_error(err, "prune-window %d must be >= 1 and prune-layers %d within 1-%d", g->prune_window,
                    g->prune_layers, c->n_layers);
    if (g->prune && !(g->prune_threshold > 0.0f && g->prune_threshold <= 1.0f))
        return tempo_error(err, "prune-threshold %g is outside (0, 1]", g->prune_threshold);
    if (g->prune && g->max_width > TEMPO_PRUNE_MAX_WIDTH)
        return tempo_error(err, "max-width %d is more than pruning weighs (%d members a set): lower it or drop --prune",
                           g->max_width, TEMPO_PRUNE_MAX_WIDTH);
    if (g->prune && g->emulate != EMULATE_NONE) return tempo_error(err, "pruning cannot be combined with --emulate");
    return 0;
}
