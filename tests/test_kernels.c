/* The tuned kernels (kernels/) against their plain definitions in tempo.c
 * (tempo_plain_kernels): bitwise where the summation order is the same,
 * within a stated bound where it is not; and the loaders give every model
 * the tuned ones, while the plain ones refuse what they cannot read. */
#include "helpers.h"

#include <cblas.h>
#include <float.h>
#include <omp.h>

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

/* More rows: tiles over panels of W split among the threads, in the plain
 * order, so bitwise plain too: row counts off the 6-row tile, weight rows
 * off the 4-row tile and the panels (d = 301 with m = 1031 makes 3-4 panels
 * of 76-104 rows), widths off the 16-lane vector, f32 W misaligned (read in
 * place) and bf16 W (converted into each thread's own panel), 1-3 threads.
 * The output starts as NaN, so a tile or panel skipped shows. */
static void expect_many_rows_plain(Matrix w, const float *w_f32, int n, int m, int d, const char *how) {
    float *in = normal_values((size_t)n * m, (uint64_t)(30 + n));
    float *fast = malloc((size_t)n * d * sizeof(float)), *plain = malloc((size_t)n * d * sizeof(float));
    float *panel = malloc(tempo_matmul_fast_scratch(n, m) * sizeof(float));
    cr_assert(fast && plain && panel, "out of memory");
    tempo_plain_kernels.matmul(plain, in, (Matrix){(void *)w_f32, WEIGHT_F32}, n, m, d, NULL);
    memset(fast, 0xff, (size_t)n * d * sizeof(float)); /* NaN */
    tempo_matmul_fast(fast, in, w, n, m, d, panel);
    char what[128];
    snprintf(what, sizeof what, "%s W, n=%d m=%d d=%d, %d threads", how, n, m, d, omp_get_max_threads());
    expect_bitwise(fast, plain, (size_t)n * d, what);
    free(in); free(fast); free(plain); free(panel);
}

/* W as f32 at an odd address, and rounded to bf16 (with its exact f32 values). */
static void expect_many_rows_plain_stored(int n, int m, int d) {
    size_t count = (size_t)d * m;
    float *w = normal_values(count, (uint64_t)(3 + m + d)), *w_bf16_values = malloc(count * sizeof(float));
    char *shifted = malloc(count * sizeof(float) + 1);
    uint16_t *bf16 = malloc(count * sizeof(uint16_t));
    cr_assert(w_bf16_values && shifted && bf16, "out of memory");
    memcpy(shifted + 1, w, count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], sizeof bits);
        bf16[i] = (uint16_t)(bits >> 16);
        bits &= 0xffff0000u;
        memcpy(&w_bf16_values[i], &bits, sizeof bits);
    }
    expect_many_rows_plain((Matrix){shifted + 1, WEIGHT_F32}, w, n, m, d, "unaligned f32");
    expect_many_rows_plain((Matrix){bf16, WEIGHT_BF16}, w_bf16_values, n, m, d, "bf16");
    free(w); free(w_bf16_values); free(shifted); free(bf16);
}

Test(kernels, matmul_many_rows_equals_plain_bitwise) {
    const int rows[] = {9, 13, 17}, ms[] = {17, 300, 1031}, ds[] = {3, 29, 301};
    int threads_before = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        for (int ri = 0; ri < 3; ri++)
            for (int mi = 0; mi < 3; mi++)
                for (int di = 0; di < 3; di++) expect_many_rows_plain_stored(rows[ri], ms[mi], ds[di]);
    }
    omp_set_num_threads(threads_before);
}

/* Rows longer than W2's at 2-4 input rows (their inputs exceed the L1,
 * where a kernel may read each row's columns in pieces: NOTES.md §12): 2829
 * values (13 past the last vector) and 4111, 301 weight rows, f32 at an odd
 * address and bf16, 1-3 threads. A column-piece kernel (not kept) that
 * reset its sums between pieces failed it. */
Test(kernels, matmul_long_rows_few_inputs_equal_plain_bitwise) {
    const int ms[] = {2829, 4111};
    int threads_before = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        for (int mi = 0; mi < 2; mi++)
            for (int n = 2; n <= 4; n++) expect_many_rows_plain_stored(n, ms[mi], 301);
    }
    omp_set_num_threads(threads_before);
}

/* A [rows][cols] matrix of a stored type, converted to f32 row by row. */
static float *dequantized_copy(Matrix x, int rows, int cols) {
    float *f = malloc((size_t)rows * cols * sizeof(float));
    cr_assert(f, "out of memory");
    for (int r = 0; r < rows; r++) tempo_matrix_row_fast(x, r, cols, f + (size_t)r * cols);
    return f;
}

/* One stored matrix: fast on the stored values equals plain on its f32
 * copy bitwise, for the few-row kernel (n <= TEMPO_FEW_ROWS) and the
 * tiles over converted panels (more rows, two 6-row tiles and a part). */
static void check_stored_matrix(Matrix x, int d, int m, const char *what) {
    float *copy = dequantized_copy(x, d, m);
    int n_max = 14;
    float *in = normal_values((size_t)n_max * m, 5), *fast = malloc((size_t)n_max * d * sizeof(float));
    float *plain = malloc((size_t)n_max * d * sizeof(float)), *panel = malloc(tempo_matmul_fast_scratch(n_max, m) * sizeof(float));
    for (int n = 1; n <= n_max; n++) {
        char label[128];
        snprintf(label, sizeof label, "%s (%s), n=%d", what, tempo_weight_type_name(x.type), n);
        tempo_matmul_fast(fast, in, x, n, m, d, panel);
        tempo_plain_kernels.matmul(plain, in, (Matrix){copy, WEIGHT_F32}, n, m, d, NULL);
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

/* A random half made a normal value near 1/16: sign and fraction kept, exponent 2^-4. */
static uint16_t tame_half(unsigned h) { return (uint16_t)((h & 0x83FF) | 0x2C00); }

/* IQ1_M's half is the top nibbles of its four scale words (bytes 49, 51, 53, 55, lowest first). */
static void tame_iq1_m_half(uint8_t *block) {
    unsigned h = 0;
    for (int k = 0; k < 4; k++) h |= (unsigned)(block[49 + 2 * k] >> 4) << 4 * k;
    h = tame_half(h);
    for (int k = 0; k < 4; k++) block[49 + 2 * k] = (uint8_t)((block[49 + 2 * k] & 0x0F) | (h >> 4 * k & 0x0F) << 4);
}

/* A random half made finite: Inf and NaN (exponent 31) become normal values (exponent 15). */
static uint16_t finite_half(unsigned h) { return (uint16_t)((h & 0x7C00) == 0x7C00 ? h & ~0x4000u : h); }

/* A [d][m] matrix of type t, random bytes, with the halves at byte
 * offsets halves[] of each block (-1: none; IQ1_M: its scattered half) set
 * to a random normal value near 1/16, so that every value is finite; or
 * (wild set) to any finite half: subnormal, zero, up to 65504. */
static uint8_t *random_blocks(WeightType t, int d, int m, const int halves[2], int wild, uint64_t *state) {
    size_t block = tempo_block_bytes(t), n_blocks = tempo_row_bytes(t, (size_t)m) * (size_t)d / block;
    uint8_t *w = malloc(n_blocks * block);
    cr_assert(w, "out of memory");
    for (size_t k = 0; k < n_blocks * block; k++) {
        *state ^= *state << 13, *state ^= *state >> 7, *state ^= *state << 17;
        w[k] = (uint8_t)(*state >> 32);
    }
    for (size_t k = 0; k < n_blocks; k++) {
        for (int h = 0; h < 2 && halves[h] >= 0; h++) {
            uint8_t *p = w + k * block + halves[h];
            unsigned bits = (unsigned)(p[0] | p[1] << 8);
            uint16_t half = wild ? finite_half(bits) : tame_half(bits);
            p[0] = (uint8_t)half, p[1] = (uint8_t)(half >> 8);
        }
        if (t == WEIGHT_IQ1_M) tame_iq1_m_half(w + k * block);
    }
    return w;
}

/* Random blocks of each low-bit type of issue 23 and each IQ grid type:
 * the kernels on the stored blocks equal plain on their f32 copy. */
Test(kernels, matmul_low_bit_types_equal_their_f32_copy) {
    const struct { WeightType t; int halves[2]; } types[] = {
        {WEIGHT_Q4_1, {0, 2}},   {WEIGHT_Q5_0, {0, -1}},   {WEIGHT_Q5_1, {0, 2}},    {WEIGHT_IQ4_NL, {0, -1}}, {WEIGHT_Q2_K, {80, 82}},
        {WEIGHT_Q3_K, {108, -1}}, {WEIGHT_IQ4_XS, {0, -1}}, {WEIGHT_TQ1_0, {52, -1}}, {WEIGHT_TQ2_0, {64, -1}},
        {WEIGHT_IQ2_XXS, {0, -1}}, {WEIGHT_IQ2_XS, {0, -1}}, {WEIGHT_IQ2_S, {0, -1}}, {WEIGHT_IQ3_XXS, {0, -1}},
        {WEIGHT_IQ3_S, {0, -1}},  {WEIGHT_IQ1_S, {0, -1}},  {WEIGHT_IQ1_M, {-1, -1}}, {WEIGHT_Q1_0, {0, -1}},
        {WEIGHT_Q2_0, {0, -1}}};
    int d = 24, m = 512;
    uint64_t state = 88172645463325252u;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint8_t *w = random_blocks(types[i].t, d, m, types[i].halves, 0, &state);
        check_stored_matrix((Matrix){w, types[i].t}, d, m, "random blocks");
        free(w);
    }
}

/* The types decoded in registers (unpack.h, unpack_low_bit.h, unpack_grids.h), in the shapes the kernel
 * treats apart: 1 weight row and counts that leave 1, 2 or 3 rows after the
 * passes (rows are read in pairs, the 32-value types in fours), a
 * row of one block and of an odd number of blocks (an odd number of 32-value
 * blocks is not a whole number of 64-value groups; Q2_0's 64-value and
 * Q1_0's 128-value blocks: 3, 5 and 7 of them), and W large enough for
 * the threads; 1..12 input rows each (check_stored_matrix). The 2 x 3
 * shape takes any finite block scales (products that overflow to Inf,
 * Inf - Inf: the same NaN either way). */
Test(kernels, matmul_decoded_types_every_shape_equal_their_f32_copy) {
    const struct { WeightType t; int halves[2]; } types[] = {
        {WEIGHT_Q8_0, {0, -1}}, {WEIGHT_Q4_0, {0, -1}}, {WEIGHT_Q4_K, {0, 2}},  {WEIGHT_Q5_K, {0, 2}},    {WEIGHT_Q6_K, {208, -1}},
        {WEIGHT_Q4_1, {0, 2}},  {WEIGHT_Q5_0, {0, -1}}, {WEIGHT_Q5_1, {0, 2}},  {WEIGHT_IQ4_NL, {0, -1}}, {WEIGHT_Q2_K, {80, 82}},
        {WEIGHT_Q3_K, {108, -1}}, {WEIGHT_IQ4_XS, {0, -1}}, {WEIGHT_TQ1_0, {52, -1}}, {WEIGHT_TQ2_0, {64, -1}},
        {WEIGHT_IQ2_XXS, {0, -1}}, {WEIGHT_IQ2_XS, {0, -1}}, {WEIGHT_IQ2_S, {0, -1}}, {WEIGHT_IQ3_XXS, {0, -1}},
        {WEIGHT_IQ3_S, {0, -1}},  {WEIGHT_IQ1_S, {0, -1}},  {WEIGHT_IQ1_M, {-1, -1}}, {WEIGHT_Q1_0, {0, -1}},
        {WEIGHT_Q2_0, {0, -1}}};
    uint64_t state = 2463534242u;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int block = tempo_block_values(types[i].t);
        const int shapes[][2] = {{1, 1}, {2, 3}, {5, 7}, {3, 2}, {6, 5}, {7, 3}, {300, block == 32 ? 33 : 5}}; /* rows, blocks per row */
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int d = shapes[s][0], m = shapes[s][1] * block;
            uint8_t *w = random_blocks(types[i].t, d, m, types[i].halves, s == 1, &state);
            char what[64];
            snprintf(what, sizeof what, "random blocks %d x %d%s", d, m, s == 1 ? ", any finite scales" : "");
            check_stored_matrix((Matrix){w, types[i].t}, d, m, what);
            free(w);
        }
    }
}

/* Products of one input in one call (tempo_products_fast: Wq, Wk, Wv of a
 * decode step) equal each product by the plain definition on the f32 copy,
 * bitwise: odd row counts and mixed types (Q4_K, Q6_K, f32), 1..12 input
 * rows (the few-row step and the tiles), 1-4 threads, whose ranges start
 * inside a matrix (3 threads) or at a matrix's edge (2 threads: the f32
 * one's first pass). Outputs start as NaN: a pass skipped at a range's
 * edge, or written into the wrong product, shows. */
Test(kernels, products_of_one_input_equal_separate_products_bitwise) {
    int m = 768, n_max = 12, threads_before = omp_get_max_threads();
    uint64_t state = 977;
    int q4_k_halves[2] = {0, 2}, q6_k_halves[2] = {208, -1};
    uint8_t *q4_k = random_blocks(WEIGHT_Q4_K, 181, m, q4_k_halves, 0, &state);
    uint8_t *q6_k = random_blocks(WEIGHT_Q6_K, 3, m, q6_k_halves, 0, &state);
    float *f32 = normal_values((size_t)185 * m, 61), *in = normal_values((size_t)n_max * m, 62);
    Product p[3] = {{NULL, {q4_k, WEIGHT_Q4_K}, 181}, {NULL, {q6_k, WEIGHT_Q6_K}, 3}, {NULL, {f32, WEIGHT_F32}, 185}};
    float *copy[3], *plain[3];
    for (int j = 0; j < 3; j++) {
        copy[j] = p[j].w.type == WEIGHT_F32 ? f32 : dequantized_copy(p[j].w, p[j].d, m);
        plain[j] = malloc((size_t)n_max * p[j].d * sizeof(float));
        p[j].out = malloc((size_t)n_max * p[j].d * sizeof(float));
    }
    float *panel = malloc(tempo_matmul_fast_scratch(n_max, m) * 4 * sizeof(float)); /* up to 4 threads */
    for (int threads = 1; threads <= 4; threads++) {
        omp_set_num_threads(threads);
        for (int n = 1; n <= n_max; n++) {
            for (int j = 0; j < 3; j++) memset(p[j].out, 0xff, (size_t)n * p[j].d * sizeof(float)); /* NaN */
            tempo_products_fast(p, 3, in, n, m, panel);
            for (int j = 0; j < 3; j++) {
                char what[96];
                tempo_plain_kernels.matmul(plain[j], in, (Matrix){copy[j], WEIGHT_F32}, n, m, p[j].d, NULL);
                snprintf(what, sizeof what, "product %d (%s), n=%d, %d threads", j, tempo_weight_type_name(p[j].w.type), n,
                         threads);
                expect_bitwise(p[j].out, plain[j], (size_t)n * p[j].d, what);
            }
        }
    }
    omp_set_num_threads(threads_before);
    for (int j = 0; j < 3; j++) {
        if (copy[j] != f32) free(copy[j]);
        free(plain[j]); free(p[j].out);
    }
    free(q4_k); free(q6_k); free(f32); free(in); free(panel);
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

/* Queries of k rows and keys and values of n rows for config c, normal, seeded seed, seed + 1, seed + 2. */
static void random_qkv(const Config *c, int k, int n, uint64_t seed, float **q, float **keys, float **values) {
    *q = normal_values((size_t)k * c->n_heads * c->head_dim, seed);
    *keys = normal_values((size_t)n * c->n_kv_heads * c->head_dim, seed + 1);
    *values = normal_values((size_t)n * c->n_kv_heads * c->head_dim, seed + 2);
}

/* Attention, fast (tiles, online softmax, sgemm) against plain (one row of
 * scores at a time), grouped-query, k new rows after n_keys - k cached ones
 * under `mask`: probabilities within 1e-6 + 8 Δ, outputs within that times
 * sum_j |v_j|, where Δ = (head_dim + 1) FLT_EPSILON max_j |q||k_j| /
 * sqrt(head_dim) bounds the difference of two scores; masked keys get
 * exactly 0 from both. Sizes cross the kernel's row blocks (64) and key tiles (256). */
static void check_attention_scaled(const Mask *mask, int k, int n_keys, float q_scale) {
    Config c = {.n_heads = 6, .n_kv_heads = 2, .head_dim = 12};
    int q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim, first = n_keys - k;
    float *q, *keys, *values;
    random_qkv(&c, k, n_keys, 41, &q, &keys, &values);
    for (size_t i = 0; i < (size_t)k * q_dim; i++) q[i] *= q_scale;
    AttentionInputs a = {.q = q, .keys = keys, .values = values, .mask = mask, .k = k, .n_keys = n_keys};
    size_t probs = (size_t)c.n_heads * k * n_keys;
    float *out_fast = malloc((size_t)k * q_dim * sizeof(float)), *out_plain = malloc((size_t)k * q_dim * sizeof(float));
    float *s_fast = malloc(tempo_attention_fast_scratch(&c, k, n_keys) * sizeof(float));
    float *s_plain = malloc(tempo_plain_kernels.attention_scratch(&c, k, n_keys) * sizeof(float));
    float *p_fast = malloc(probs * sizeof(float)), *p_plain = malloc(probs * sizeof(float));
    tempo_attention_fast(&c, &a, out_fast, s_fast, p_fast);
    tempo_plain_kernels.attention(&c, &a, out_plain, s_plain, p_plain);
    double qk = 0.0, v_sum = 0.0;
    for (size_t i = 0; i < (size_t)k * q_dim; i++) qk = fmax(qk, fabs(q[i]));
    double kmax = 0.0;
    for (size_t i = 0; i < (size_t)n_keys * kv_dim; i++) kmax = fmax(kmax, fabs(keys[i])), v_sum += fabs(values[i]);
    double delta = (c.head_dim + 1) * (double)FLT_EPSILON * c.head_dim * qk * kmax / sqrt(c.head_dim);
    double p_bound = 1e-6 + 8 * delta;
    int bad = 0;
    for (int h = 0; h < c.n_heads; h++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < n_keys; j++) {
                size_t at = ((size_t)h * k + i) * n_keys + j;
                if (!tempo_mask_cell(mask, 0, first + i, j) && (p_fast[at] != 0.0f || p_plain[at] != 0.0f) && bad++ < 5)
                    cr_expect_fail("head %d row %d: masked key %d got weight", h, i, j);
                if (fabs(p_fast[at] - p_plain[at]) > p_bound && bad++ < 5)
                    cr_expect_fail("head %d row %d key %d: p %.9g vs %.9g (bound %.3g)", h, i, j, p_fast[at], p_plain[at], p_bound);
            }
    for (int i = 0; i < k * q_dim; i++)
        if (fabs(out_fast[i] - out_plain[i]) > p_bound * v_sum && bad++ < 5)
            cr_expect_fail("output %d: %.9g vs %.9g", i, out_fast[i], out_plain[i]);
    cr_expect(bad == 0, "%d differences beyond the bound", bad);
    free(q); free(keys); free(values); free(out_fast); free(out_plain);
    free(s_fast); free(s_plain); free(p_fast); free(p_plain);
}

static void check_attention(const Mask *mask, int k, int n_keys) { check_attention_scaled(mask, k, n_keys, 1.0f); }

/* Set ids of n rows: a prompt of `prompt` rows, then sets of 1..4 members at shared positions. */
static int *test_sets(int n, int prompt) {
    int *sets = malloc((size_t)n * sizeof(int));
    for (int i = 0, pos = 0, left = 0; i < n; i++) {
        if (i < prompt) { sets[i] = pos++; continue; }
        if (left == 0) left = 1 + (i * 7) % 4, pos++;
        sets[i] = pos - 1;
        left--;
    }
    return sets;
}

/* A causal mask with holes, given dense (an irregular --mask): the first test's shape. */
Test(kernels, attention_fast_within_bound_of_plain) {
    int k = 5, n_keys = 13;
    uint8_t allowed[5 * 13];
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n_keys; j++) allowed[i * n_keys + j] = j <= n_keys - k + i && (j + i) % 3 != 1;
    Mask dense = tempo_mask_dense(allowed, 1, n_keys - k, k, n_keys);
    check_attention(&dense, k, n_keys);
}

/* Every kind of mask as a rule, over sizes that cross row blocks and key
 * tiles: causal, isolated, visible, pruned rows, and a per-layer mask
 * (layer 1 of isolated-then-visible layers); and a dense irregular one that
 * also lets rows see later keys. */
Test(kernels, attention_tiled_equals_plain_on_every_mask) {
    int n = 700, k = 150, first = n - k;
    int *sets = test_sets(n, 300), *hidden = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) hidden[i] = i > 300 && i % 5 == 0 ? i + 3 + i % 200 : -1; /* pruned from a later row on */
    MaskKind kinds[2] = {MASK_ISOLATED, MASK_VISIBLE};
    Mask masks[5] = {tempo_mask_rule(MASK_CAUSAL, sets), tempo_mask_rule(MASK_ISOLATED, sets),
                     tempo_mask_rule(MASK_VISIBLE, sets), tempo_mask_rule(MASK_ISOLATED, sets),
                     tempo_mask_rule(MASK_ISOLATED, sets)};
    masks[3].hidden_from = hidden;
    masks[4].layers = 2, masks[4].layer_kinds = kinds;
    for (int i = 0; i < 5; i++) check_attention(&masks[i], k, n);
    masks[4].layer_kinds = (MaskKind[]){MASK_VISIBLE, MASK_ISOLATED}; /* the test reads layer 0 */
    check_attention(&masks[4], k, n);
    uint8_t *allowed = malloc((size_t)k * n);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n; j++) allowed[(size_t)i * n + j] = (j * 31 + i * 17) % 7 < 3 || j == first + i;
    Mask dense = tempo_mask_dense(allowed, 1, first, k, n);
    check_attention(&dense, k, n);
    check_attention(&masks[1], 1, n); /* one row: a decode step */
    free(sets); free(hidden); free(allowed);
}

/* The mask taken per tile, at the tiles' edges (for this head width: key
 * tiles of 256, row blocks of 64 from the first new row): a parallel set
 * straddling key 256 whose later members are the first new rows (isolated:
 * they must not see its earlier members, though every one of those keys
 * precedes the block); the same sets visible; keys pruned from a row in a
 * later block (a whole tile before the rows, yet not shown to all of them);
 * and scores 40 times larger, so that most probabilities underflow. */
Test(kernels, attention_tiles_at_their_edges) {
    int n = 700, first = 260, k = n - first;
    int *sets = malloc((size_t)n * sizeof(int)), *hidden = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) sets[i] = i < 250 ? i : i < 266 ? 250 : i - 15, hidden[i] = -1;
    hidden[10] = first + 70, hidden[200] = first + 127, hidden[255] = first + 64, hidden[300] = first + 300;
    Mask isolated = tempo_mask_rule(MASK_ISOLATED, sets), visible = tempo_mask_rule(MASK_VISIBLE, sets);
    Mask pruned = isolated, pruned_causal = tempo_mask_rule(MASK_CAUSAL, sets);
    pruned.hidden_from = pruned_causal.hidden_from = hidden;
    check_attention(&isolated, k, n);
    check_attention(&visible, k, n);
    check_attention(&pruned, k, n);
    check_attention(&pruned_causal, k, n);
    check_attention_scaled(&isolated, k, n, 40.0f);
    check_attention(&isolated, 6, 256 + 6); /* the set's new members alone, one key tile before them */
    free(sets); free(hidden);
}

/* The row blocks run on several threads: the output is the same to the bit on one thread and on two. */
Test(kernels, attention_same_on_one_thread_and_two) {
    Config c = {.n_heads = 4, .n_kv_heads = 2, .head_dim = 16};
    int n = 900, k = 600, q_dim = 64;
    int *sets = test_sets(n, 400);
    Mask mask = tempo_mask_rule(MASK_ISOLATED, sets);
    float *q, *keys, *values, *out[2];
    random_qkv(&c, k, n, 8, &q, &keys, &values);
    AttentionInputs a = {.q = q, .keys = keys, .values = values, .mask = &mask, .k = k, .n_keys = n};
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        float *scratch = malloc(tempo_attention_fast_scratch(&c, k, n) * sizeof(float));
        out[t] = malloc((size_t)k * q_dim * sizeof(float));
        tempo_attention_fast(&c, &a, out[t], scratch, NULL);
        free(scratch);
    }
    cr_expect(memcmp(out[0], out[1], (size_t)k * q_dim * sizeof(float)) == 0, "one thread and two differ");
    free(sets); free(q); free(keys); free(values); free(out[0]); free(out[1]);
}

/* tempo's OpenBLAS calls all run inside its own OpenMP steps, so
 * tempo_set_threads leaves OpenBLAS one thread, whatever count is asked
 * for (0 too), and gives OpenMP that count (0: as it was). */
Test(kernels, set_threads_keeps_openblas_on_one_thread) {
    int omp_before = omp_get_max_threads();
    openblas_set_num_threads(3);
    tempo_set_threads(0);
    cr_expect_eq(openblas_get_num_threads(), 1, "0 left OpenBLAS at %d threads", openblas_get_num_threads());
    cr_expect_eq(omp_get_max_threads(), omp_before, "0 changed OpenMP's count");
    openblas_set_num_threads(2);
    tempo_set_threads(3);
    cr_expect_eq(openblas_get_num_threads(), 1, "3 left OpenBLAS at %d threads", openblas_get_num_threads());
    cr_expect_eq(omp_get_max_threads(), 3);
    omp_set_num_threads(omp_before);
}

/* A few rows (one block) split their heads between the threads: 1 to 5
 * rows, 6 heads over 1, 2, 3 and 4 threads (ranges of 1, 2, 3 heads, one
 * a group's edge), give the output of one thread to the bit; a head left
 * out, or done twice, or a range that zeroes another's output, fails. */
Test(kernels, attention_few_rows_same_on_any_thread_count) {
    Config c = {.n_heads = 6, .n_kv_heads = 2, .head_dim = 16};
    int n = 300, q_dim = 96, threads_before = omp_get_max_threads();
    int *sets = test_sets(n, 200);
    Mask mask = tempo_mask_rule(MASK_ISOLATED, sets);
    for (int k = 1; k <= 5; k++) {
        float *q, *keys, *values, *out[4];
        random_qkv(&c, k, n, 20 + k, &q, &keys, &values);
        AttentionInputs a = {.q = q, .keys = keys, .values = values, .mask = &mask, .k = k, .n_keys = n};
        for (int t = 0; t < 4; t++) {
            omp_set_num_threads(t + 1);
            float *scratch = malloc(tempo_attention_fast_scratch(&c, k, n) * sizeof(float));
            out[t] = malloc((size_t)k * q_dim * sizeof(float));
            for (int i = 0; i < k * q_dim; i++) out[t][i] = NAN; /* every value must be written */
            tempo_attention_fast(&c, &a, out[t], scratch, NULL);
            free(scratch);
        }
        omp_set_num_threads(threads_before);
        for (int t = 1; t < 4; t++)
            cr_expect(memcmp(out[0], out[t], (size_t)k * q_dim * sizeof(float)) == 0, "k=%d: one thread and %d differ", k,
                      t + 1);
        free(q); free(keys); free(values);
        for (int t = 0; t < 4; t++) free(out[t]);
    }
    free(sets);
}

/* Kept rows and heads: the probabilities of those only, in order, equal to
 * the same entries when everything is kept (both kernels). */
Test(kernels, attention_keeps_only_the_rows_and_heads_asked_for) {
    Config c = {.n_heads = 4, .n_kv_heads = 2, .head_dim = 8};
    int n = 300, k = 80;
    int *sets = test_sets(n, 250);
    Mask mask = tempo_mask_rule(MASK_ISOLATED, sets);
    float *q, *keys, *values, out[80 * 32];
    random_qkv(&c, k, n, 5, &q, &keys, &values);
    const Kernels *kernels[2] = {&tempo_plain_kernels, &tempo_fast_kernels};
    int rows[3] = {0, 63, 79};
    int heads[2] = {1, 3};
    for (int ki = 0; ki < 2; ki++) {
        float *scratch = malloc(kernels[ki]->attention_scratch(&c, k, n) * sizeof(float));
        float *all = malloc((size_t)4 * k * n * sizeof(float)), *some = malloc((size_t)2 * 3 * n * sizeof(float));
        AttentionInputs a = {.q = q, .keys = keys, .values = values, .mask = &mask, .k = k, .n_keys = n};
        kernels[ki]->attention(&c, &a, out, scratch, all);
        a.keep_rows = rows, a.n_keep_rows = 3, a.keep_heads = heads, a.n_keep_heads = 2;
        kernels[ki]->attention(&c, &a, out, scratch, some);
        for (int hi = 0; hi < 2; hi++)
            for (int ri = 0; ri < 3; ri++)
                cr_expect(memcmp(some + ((size_t)hi * 3 + ri) * n, all + ((size_t)(2 * hi + 1) * k + rows[ri]) * n,
                                 (size_t)n * sizeof(float)) == 0,
                          "%s: kept head %d row %d differs from the full capture", kernels[ki]->name, 2 * hi + 1, rows[ri]);
        free(scratch); free(all); free(some);
    }
    free(sets); free(q); free(keys); free(values);
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
    Mask causal = tempo_mask_rule(MASK_CAUSAL, &pos);
    Outputs out = {0};
    cr_expect(tempo_forward(&m, &s, 1, &token, &pos, &causal, out, err) == -1, "plain kernels ran a bf16 model");
    cr_expect(strstr(err, "bf16") && strstr(err, "plain"), "the message names the type and the kernels: %s", err);
    cr_expect_eq(s.n_rows, 0, "a refused forward changed the cache");
    tempo_state_free(&s);
    tempo_model_free(&m);
}

/* stories260K through the plain kernels (Model.kernels NULL means plain)
 * and the fast ones: a prompt of 12 rows (the tiles) then 3 rows of one
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
    cr_expect(d > 0.0 || n <= TEMPO_FEW_ROWS, "plain and fast attention agree to the bit: is the fast table in use?");
    for (int i = 0; i < n; i++)
        cr_expect_eq(tempo_argmax(logits_fast + (size_t)i * V, V), tempo_argmax(logits_plain + (size_t)i * V, V),
                     "row %d: plain and fast disagree on the top token", i);
    free(logits_fast); free(logits_plain);
    tempo_model_free(&fast);
}
