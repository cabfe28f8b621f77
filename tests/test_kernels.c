/* The tuned kernels (kernels/) against their plain definitions in tempo.c
 * (tempo_plain_kernels): bitwise where the summation order is the same,
 * within a stated bound where it is not; and the loaders give every model
 * the tuned ones, while the plain ones refuse what they cannot read. */
#include "helpers.h"

#include <float.h>

/* n normal values, seeded. */
static float *normal_values(size_t n, uint64_t seed) {
    float *v = malloc(n * sizeof(float));
    cr_assert(v, "out of memory");
    for (size_t i = 0; i < n; i++) v[i] = (float)tempo_normal(&seed);
    return v;
}

/* Fast and plain out = in W^T over n rows, compared bit for bit. */
static void expect_bitwise(const float *fast, const float *plain, size_t count, const char *what) {
    for (size_t i = 0; i < count; i++)
        if (memcmp(&fast[i], &plain[i], sizeof(float)) != 0)
            cr_assert_fail("%s: fast %.9g != plain %.9g at %zu (the blocked kernel must keep the plain order)", what,
                           fast[i], plain[i], i);
}

/* A matmul's error bound: recursive summation of m products is within
 * (m + 1) u sum_t |w_t x_t| of the exact sum (u = FLT_EPSILON / 2), so two
 * orders are within (m + 1) FLT_EPSILON sum_t |w_t x_t| of each other. */
static double matmul_bound(const float *w, const float *x, int m) {
    double s = 0.0;
    for (int t = 0; t < m; t++) s += fabs((double)w[t] * x[t]);
    return (m + 1) * (double)FLT_EPSILON * s;
}

static const int widths[] = {1, 5, 15, 16, 17, 31, 100, 256, 257, 300, 523, 1031};

/* Up to TEMPO_FEW_ROWS rows the blocked kernel sums in the plain order:
 * every row count, widths off the 16-lane and 256-value tiles, and W at an
 * address that is not a multiple of 4 (read through a converted tile). */
Test(kernels, matmul_few_rows_equals_plain_bitwise) {
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        int m = widths[wi], d = m == 1031 ? 300 : 37; /* 300 x 1031 is big enough for the threads */
        float *w = normal_values((size_t)d * m, 1 + wi), *in = normal_values((size_t)TEMPO_FEW_ROWS * m, 100 + wi);
        char *shifted = malloc((size_t)d * m * sizeof(float) + 1);
        memcpy(shifted + 1, w, (size_t)d * m * sizeof(float));
        float *fast = malloc((size_t)TEMPO_FEW_ROWS * d * sizeof(float)), *plain = malloc((size_t)TEMPO_FEW_ROWS * d * sizeof(float));
        for (int n = 1; n <= TEMPO_FEW_ROWS; n++) {
            char what[96];
            tempo_plain_kernels.matmul(plain, in, (Matrix){w, WEIGHT_F32}, n, m, d, NULL);
            tempo_matmul_fast(fast, in, (Matrix){w, WEIGHT_F32}, n, m, d, NULL);
            snprintf(what, sizeof what, "n=%d m=%d d=%d", n, m, d);
            expect_bitwise(fast, plain, (size_t)n * d, what);
            tempo_matmul_fast(fast, in, (Matrix){shifted + 1, WEIGHT_F32}, n, m, d, NULL);
            snprintf(what, sizeof what, "unaligned W, n=%d m=%d d=%d", n, m, d);
            expect_bitwise(fast, plain, (size_t)n * d, what);
        }
        free(w); free(in); free(shifted); free(fast); free(plain);
    }
}

/* The plain definition is a matrix product (a bug shared by both would pass
 * the bitwise test): each value within the summation bound of the exact one. */
Test(kernels, plain_matmul_is_the_product) {
    int n = 3, d = 11;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        int m = widths[wi];
        float *w = normal_values((size_t)d * m, 7 + wi), *in = normal_values((size_t)n * m, 70 + wi);
        float out[3 * 11];
        tempo_plain_kernels.matmul(out, in, (Matrix){w, WEIGHT_F32}, n, m, d, NULL);
        for (int i = 0; i < n; i++)
            for (int r = 0; r < d; r++) {
                double exact = 0.0;
                for (int t = 0; t < m; t++) exact += (double)w[(size_t)r * m + t] * in[(size_t)i * m + t];
                double bound = matmul_bound(w + (size_t)r * m, in + (size_t)i * m, m) / 2;
                cr_expect(fabs(out[i * d + r] - exact) <= bound, "m=%d row %d col %d: %.9g vs exact %.9g (bound %.3g)", m,
                          i, r, out[i * d + r], exact, bound);
            }
        free(w); free(in);
    }
}

/* More rows: sgemm over panels, another order; within matmul_bound of plain. */
Test(kernels, matmul_many_rows_within_bound) {
    const int rows[] = {9, 16, 33}, ms[] = {17, 300, 1031};
    int d = 29;
    for (int ri = 0; ri < 3; ri++)
        for (int mi = 0; mi < 3; mi++) {
            int n = rows[ri], m = ms[mi];
            float *w = normal_values((size_t)d * m, 3 + mi), *in = normal_values((size_t)n * m, 30 + ri);
            float *fast = malloc((size_t)n * d * sizeof(float)), *plain = malloc((size_t)n * d * sizeof(float));
            float *panel = malloc(tempo_matmul_fast_scratch(n) * sizeof(float));
            tempo_plain_kernels.matmul(plain, in, (Matrix){w, WEIGHT_F32}, n, m, d, NULL);
            tempo_matmul_fast(fast, in, (Matrix){w, WEIGHT_F32}, n, m, d, panel);
            for (int i = 0; i < n; i++)
                for (int r = 0; r < d; r++) {
                    double bound = matmul_bound(w + (size_t)r * m, in + (size_t)i * m, m);
                    double diff = fabs((double)fast[i * d + r] - plain[i * d + r]);
                    cr_expect(diff <= bound, "n=%d m=%d: row %d col %d differs by %.3g > bound %.3g", n, m, i, r, diff, bound);
                }
            free(w); free(in); free(fast); free(plain); free(panel);
        }
}

/* A [rows][cols] matrix of a stored type, converted to f32 row by row. */
static float *dequantized_copy(Matrix x, int rows, int cols) {
    float *f = malloc((size_t)rows * cols * sizeof(float));
    cr_assert(f, "out of memory");
    for (int r = 0; r < rows; r++) tempo_matrix_row_fast(x, r, cols, f + (size_t)r * cols);
    return f;
}

/* One stored matrix: fast on the stored values equals plain on its f32
 * copy bitwise up to TEMPO_FEW_ROWS rows; with more rows fast equals fast
 * on the f32 copy (the panels are the same f32 values). */
static void check_stored_matrix(Matrix x, int d, int m, const char *what) {
    float *copy = dequantized_copy(x, d, m);
    int n_max = 12;
    float *in = normal_values((size_t)n_max * m, 5), *fast = malloc((size_t)n_max * d * sizeof(float));
    float *plain = malloc((size_t)n_max * d * sizeof(float)), *panel = malloc(tempo_matmul_fast_scratch(n_max) * sizeof(float));
    for (int n = 1; n <= n_max; n++) {
        char label[128];
        snprintf(label, sizeof label, "%s (%s), n=%d", what, tempo_weight_type_name(x.type), n);
        tempo_matmul_fast(fast, in, x, n, m, d, panel);
        if (n <= TEMPO_FEW_ROWS) tempo_plain_kernels.matmul(plain, in, (Matrix){copy, WEIGHT_F32}, n, m, d, NULL);
        else tempo_matmul_fast(plain, in, (Matrix){copy, WEIGHT_F32}, n, m, d, panel);
        expect_bitwise(fast, plain, (size_t)n * d, label);
    }
    free(copy); free(in); free(fast); free(plain); free(panel);
}

Test(kernels, matmul_stored_types_equal_their_f32_copy) {
    const char *files[] = {"synth-gguf-f16.gguf", "synth-gguf-bf16.gguf", "synth-gguf-q8_0.gguf", "synth-gguf-q4_0.gguf",
                           "synth-gguf-q4_k.gguf", "synth-gguf-q5_k.gguf", "synth-gguf-q6_k.gguf"};
    const WeightType types[] = {WEIGHT_F16, WEIGHT_BF16, WEIGHT_Q8_0, WEIGHT_Q4_0, WEIGHT_Q4_K, WEIGHT_Q5_K, WEIGHT_Q6_K};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        Model m;
        load_synth(&m, files[f]);
        const Config *c = &m.config;
        const LayerWeights *lw = &m.weights.layers[0];
        cr_assert_eq(lw->wq.type, types[f], "%s: wq is %s", files[f], tempo_weight_type_name(lw->wq.type));
        check_stored_matrix(lw->wq, c->n_heads * c->head_dim, c->dim, files[f]);
        check_stored_matrix(lw->w2, c->dim, c->hidden_dim, files[f]);
        check_stored_matrix(m.weights.wcls, c->vocab_size, c->dim, files[f]);
        tempo_model_free(&m);
    }
}

/* Random blocks of each low-bit type of issue 23, with every half (d, m,
 * dmin) set to a random normal value near 1/16: the kernels on the stored
 * blocks equal plain (and sgemm) on their f32 copy. */
Test(kernels, matmul_low_bit_types_equal_their_f32_copy) {
    const struct { WeightType t; int halves[2]; } types[] = {
        {WEIGHT_Q4_1, {0, 2}},   {WEIGHT_Q5_0, {0, -1}},   {WEIGHT_Q5_1, {0, 2}},    {WEIGHT_IQ4_NL, {0, -1}}, {WEIGHT_Q2_K, {80, 82}},
        {WEIGHT_Q3_K, {108, -1}}, {WEIGHT_IQ4_XS, {0, -1}}, {WEIGHT_TQ1_0, {52, -1}}, {WEIGHT_TQ2_0, {64, -1}}};
    int d = 24, m = 512;
    uint64_t state = 88172645463325252u;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        WeightType t = types[i].t;
        size_t block = tempo_block_bytes(t), n_blocks = tempo_row_bytes(t, (size_t)m) * (size_t)d / block;
        uint8_t *w = malloc(n_blocks * block);
        cr_assert(w, "out of memory");
        for (size_t k = 0; k < n_blocks * block; k++) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            w[k] = (uint8_t)(state >> 32);
        }
        for (size_t k = 0; k < n_blocks; k++)
            for (int h = 0; h < 2 && types[i].halves[h] >= 0; h++) {
                uint8_t *p = w + k * block + types[i].halves[h];
                uint16_t half = (uint16_t)(((p[0] | p[1] << 8) & 0x83FF) | 0x2C00); /* sign, fraction random; 2^-4 */
                p[0] = (uint8_t)half, p[1] = (uint8_t)(half >> 8);
            }
        check_stored_matrix((Matrix){w, t}, d, m, "random blocks");
        free(w);
    }
}

/* The embedding lookup: plain reads f32 rows as they are; fast converts. */
Test(kernels, matrix_row_plain_equals_fast) {
    int rows = 7, cols = 19;
    float *w = normal_values((size_t)rows * cols, 9), plain[19], fast[19];
    for (int r = 0; r < rows; r++) {
        tempo_plain_kernels.matrix_row((Matrix){w, WEIGHT_F32}, r, cols, plain);
        tempo_fast_kernels.matrix_row((Matrix){w, WEIGHT_F32}, r, cols, fast);
        cr_expect(memcmp(plain, w + (size_t)r * cols, sizeof plain) == 0, "plain row %d is not row %d of W", r, r);
        cr_expect(memcmp(fast, plain, sizeof plain) == 0, "fast row %d differs from plain", r);
    }
    free(w);
}

/* Attention, fast (sgemm) against plain (per-row loops), grouped-query,
 * under a causal mask with holes: probabilities within 1e-6 + 8 Δ, outputs
 * within that times sum_j |v_j|, where Δ = (head_dim + 1) FLT_EPSILON
 * max_j |q||k_j| / sqrt(head_dim) bounds the difference of two scores;
 * masked keys get exactly 0 from both. */
Test(kernels, attention_fast_within_bound_of_plain) {
    Config c = {.n_heads = 6, .n_kv_heads = 2, .head_dim = 12};
    int k = 5, n_keys = 13, q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
    float *q = normal_values((size_t)k * q_dim, 41), *keys = normal_values((size_t)n_keys * kv_dim, 42);
    float *values = normal_values((size_t)n_keys * kv_dim, 43);
    uint8_t allowed[5 * 13];
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n_keys; j++) allowed[i * n_keys + j] = j <= n_keys - k + i && (j + i) % 3 != 1;
    AttentionInputs a = {.q = q, .keys = keys, .values = values, .allowed = allowed, .k = k, .n_keys = n_keys};
    float out_fast[5 * 72], out_plain[5 * 72], scores[5 * 13], p_fast[6 * 5 * 13], p_plain[6 * 5 * 13];
    tempo_attention_fast(&c, &a, out_fast, scores, p_fast);
    tempo_plain_kernels.attention(&c, &a, out_plain, scores, p_plain);
    double qk = 0.0, v_sum = 0.0;
    for (size_t i = 0; i < (size_t)k * q_dim; i++) qk = fmax(qk, fabs(q[i]));
    double kmax = 0.0;
    for (size_t i = 0; i < (size_t)n_keys * kv_dim; i++) kmax = fmax(kmax, fabs(keys[i])), v_sum += fabs(values[i]);
    double delta = (c.head_dim + 1) * (double)FLT_EPSILON * c.head_dim * qk * kmax / sqrt(c.head_dim);
    double p_bound = 1e-6 + 8 * delta;
    for (int h = 0; h < c.n_heads; h++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < n_keys; j++) {
                size_t at = ((size_t)h * k + i) * n_keys + j;
                if (!allowed[i * n_keys + j])
                    cr_expect(p_fast[at] == 0.0f && p_plain[at] == 0.0f, "head %d row %d: masked key %d got weight", h, i, j);
                cr_expect(fabs(p_fast[at] - p_plain[at]) <= p_bound, "head %d row %d key %d: p %.9g vs %.9g (bound %.3g)",
                          h, i, j, p_fast[at], p_plain[at], p_bound);
            }
    for (int i = 0; i < k * q_dim; i++)
        cr_expect(fabs(out_fast[i] - out_plain[i]) <= p_bound * v_sum, "output %d: %.9g vs %.9g", i, out_fast[i], out_plain[i]);
    free(q); free(keys); free(values);
}

/* Every loader gives the model the fast kernels. */
Test(kernels, loaders_set_fast_kernels) {
    const char *synth[] = {"synth-tied.bin", "synth-hf-bf16", "synth-gguf-q4_k.gguf"};
    for (int i = 0; i < 3; i++) {
        Model m;
        load_synth(&m, synth[i]);
        cr_expect(m.kernels == &tempo_fast_kernels, "%s: loaded without the fast kernels", synth[i]);
        tempo_model_free(&m);
    }
    const char *buffers[] = {"synth-untied.bin", "synth-gguf-q8_0.gguf"}; /* both branches of tempo_model_from_buffer */
    for (int i = 0; i < 2; i++) {
        char path[4096], err[TEMPO_ERR_SIZE];
        unsigned char *buf;
        size_t len;
        cr_assert(tempo_read_file(synth_path(buffers[i], path, sizeof path), "model", &buf, &len, err) == 0, "%s", err);
        Model m;
        cr_assert(tempo_model_from_buffer(&m, buf, len, "buffer", err) == 0, "%s", err);
        cr_expect(m.kernels == &tempo_fast_kernels, "%s from a buffer has no fast kernels", buffers[i]);
        tempo_model_free(&m);
        free(buf);
    }
}

/* The plain kernels read f32 only: any other stored type is refused by
 * name, and the cache is left as it was. */
Test(kernels, plain_refuses_other_types) {
    Model m;
    load_synth(&m, "synth-hf-bf16");
    m.kernels = &tempo_plain_kernels;
    State s;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_state_init(&s, &m.config, 4, err) == 0, "%s", err);
    int token = 1, pos = 0;
    uint8_t allowed = 1;
    Outputs out = {0};
    cr_expect(tempo_forward(&m, &s, 1, &token, &pos, &allowed, 1, out, err) == -1, "plain kernels ran a bf16 model");
    cr_expect(strstr(err, "bf16") && strstr(err, "plain"), "the message names the type and the kernels: %s", err);
    cr_expect_eq(s.n_rows, 0, "a refused forward changed the cache");
    tempo_state_free(&s);
    tempo_model_free(&m);
}

/* stories260K through the plain kernels (Model.kernels NULL means plain)
 * and the fast ones: a prompt of 12 rows (sgemm) then 3 rows of one
 * parallel set (the blocked kernel): logits within 1e-4 of the largest
 * |logit|, the same top token for every row. */
Test(kernels, plain_forward_matches_fast_on_stories260K) {
    Model fast;
    load_real(&fast, "stories260K.bin");
    Model plain = fast;
    plain.kernels = NULL;
    const int tokens[] = {1, 403, 407, 261, 378, 416, 264, 322, 287, 307, 318, 259, 300, 301, 302};
    const int positions[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12, 12};
    int n = 15, V = fast.config.vocab_size;
    uint8_t allowed[15 * 15];
    tempo_mask_rows(MASK_ISOLATED, positions, 0, n, allowed);
    float *logits_fast, *logits_plain;
    full_forward(&fast, n, tokens, positions, allowed, 1, &logits_fast, NULL, NULL);
    full_forward(&plain, n, tokens, positions, allowed, 1, &logits_plain, NULL, NULL);
    double scale = 1.0;
    for (size_t i = 0; i < (size_t)n * V; i++) scale = fmax(scale, fabs(logits_fast[i]));
    size_t at;
    double d = max_abs_diff(logits_fast, logits_plain, (size_t)n * V, &at);
    cr_expect(d <= 1e-4 * scale, "plain and fast logits differ by %.3g at row %zu token %zu", d, at / V, at % V);
    cr_expect(d > 0.0 || n <= TEMPO_FEW_ROWS, "sgemm and the plain loops agree to the bit: is the fast table in use?");
    for (int i = 0; i < n; i++)
        cr_expect_eq(tempo_argmax(logits_fast + (size_t)i * V, V), tempo_argmax(logits_plain + (size_t)i * V, V),
                     "row %d: plain and fast disagree on the top token", i);
    free(logits_fast); free(logits_plain);
    tempo_model_free(&fast);
}
