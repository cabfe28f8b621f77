/* ggml's quantized dot products (kernels/ggml_dots.c, ggml_dots_avx.c,
 * ggml_q8_0_tiles.c, ggml_q4_k_tiles.c, ggml_repack.c): the activations'
 * quantization, the vectorized dots and tiles bitwise the plain ones, the
 * ggml matmul as the plain dots on any thread count, and the plain dots as
 * the product of the dequantized weights. */
#include "helpers.h"

#include <omp.h>
#include <string.h>

#include "../formats/quant.h" /* tempo_f32_to_f16 */

enum { DOT_M = 1280, DOT_ROWS = 7 }; /* 5 super-blocks */
static const WeightType DOT_TYPES[] = {WEIGHT_Q8_0, WEIGHT_Q4_0, WEIGHT_Q4_K, WEIGHT_Q5_K, WEIGHT_Q6_K};
/* And the other types whose whole dot ggml_dots_avx.c vectorizes (a call of one row: IQ4_NL in its vec_dot order). */
static const WeightType FAST_DOT_TYPES[] = {WEIGHT_Q8_0, WEIGHT_Q4_0, WEIGHT_Q4_K, WEIGHT_Q5_K, WEIGHT_Q6_K,
                                            WEIGHT_Q4_1, WEIGHT_Q5_0, WEIGHT_Q5_1, WEIGHT_IQ4_NL, WEIGHT_Q2_K, WEIGHT_Q3_K,
                                            WEIGHT_IQ4_XS};

static uint64_t next_bits(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Activations with extreme blocks: scales 10^-spread..10^spread, zero
 * blocks, ties (k + 1/2 after scaling), +max and -max in one block, one spike. */
static void extreme_row(float *x, int m, int spread, uint64_t *s) {
    for (int b = 0; b < m; b += 32) {
        int kind = (int)(next_bits(s) % 6);
        float scale = powf(10.0f, (float)((int)(next_bits(s) % (2 * spread + 1)) - spread));
        for (int j = 0; j < 32; j++) x[b + j] = scale * (float)tempo_normal(s);
        if (kind == 1) memset(x + b, 0, 32 * sizeof(float));
        if (kind == 2)
            for (int j = 0; j < 32; j++) x[b + j] = (float)((int)(next_bits(s) % 255) - 127) + (j ? 0.5f : 0.0f);
        if (kind == 2) x[b] = 127.0f;
        if (kind == 3) x[b + 5] = scale * 9, x[b + 17] = -scale * 9;
        if (kind == 4) x[b + (int)(next_bits(s) % 32)] = scale * 1e4f;
    }
}

/* A row of random weight blocks, every f16 scale finite. */
static void random_weights(WeightType t, uint8_t *w, int m, uint64_t *s) {
    size_t bytes = tempo_row_bytes(t, (size_t)m);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)next_bits(s);
    size_t block = tempo_block_bytes(t), at = t == WEIGHT_Q6_K ? 208 : t == WEIGHT_Q2_K ? 80 : t == WEIGHT_Q3_K ? 108 : 0;
    int halves = t == WEIGHT_Q4_K || t == WEIGHT_Q5_K || t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1 || t == WEIGHT_Q2_K ? 2 : 1; /* d (and dmin, m) */
    for (size_t b = 0; b < bytes; b += block)
        for (int h = 0; h < halves; h++) w[b + at + 2 * h + 1] &= 0xfb; /* exponent below 31 */
}

/* Storage for n quantized rows of DOT_M. */
typedef struct {
    int8_t q[DOT_ROWS][DOT_M];
    float d[DOT_ROWS][DOT_M / 32], sums[DOT_ROWS][DOT_M / 32];
    int16_t bsums[DOT_ROWS][DOT_M / 16];
} QuantRows;
static GgmlQ8Row quant_row(QuantRows *r, int i) { return (GgmlQ8Row){r->q[i], r->d[i], r->bsums[i], r->sums[i]}; }


/* The vectorized quantization equals the plain one bit for bit: integers, scales, and Q8_K's sums of 16. */
Test(numerics, fast_activation_quantization_is_bitwise_plain) {
    uint64_t s = 11;
    static QuantRows plain, fast;
    float x[DOT_M];
    for (int trial = 0; trial < 200; trial++) {
        extreme_row(x, DOT_M, 30, &s);
        GgmlDotType t = trial % 2 ? GGML_DOT_Q8_K : GGML_DOT_Q8_0;
        memset(&plain, 0, sizeof plain), memset(&fast, 0, sizeof fast);
        tempo_ggml_quantize_plain(t, x, DOT_M, quant_row(&plain, 0));
        tempo_ggml_quantize_fast(t, x, DOT_M, quant_row(&fast, 0));
        cr_assert(memcmp(plain.q[0], fast.q[0], DOT_M) == 0, "trial %d: integers differ", trial);
        cr_assert(memcmp(plain.d[0], fast.d[0], sizeof plain.d[0]) == 0, "trial %d: scales differ", trial);
        cr_assert(memcmp(plain.bsums[0], fast.bsums[0], sizeof plain.bsums[0]) == 0, "trial %d: sums of 16 differ", trial);
    }
}

/* Q8_K's sums of 16 are the sums of the integers; its scale is 1/iscale of the signed maximum. */
Test(numerics, q8_k_blocks_carry_their_sums) {
    uint64_t s = 3;
    static QuantRows r;
    float x[DOT_M];
    extreme_row(x, DOT_M, 30, &s);
    tempo_ggml_quantize_fast(GGML_DOT_Q8_K, x, DOT_M, quant_row(&r, 0));
    for (int g = 0; g < DOT_M / 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += r.q[0][16 * g + j];
        cr_expect_eq(r.bsums[0][g], sum, "group %d", g);
    }
}

/* Random activation rows quantized to the weight type's dot type; some
 * blocks at the integer extremes (all +127 or -127). */
static void quantized_rows(WeightType t, QuantRows *r, uint64_t *s) {
    float x[DOT_M];
    for (int i = 0; i < DOT_ROWS; i++) {
        extreme_row(x, DOT_M, 2, s); /* Q8_0 scales stay below f16 infinity */
        tempo_ggml_quantize_plain(tempo_ggml_dot_type(t), x, DOT_M, quant_row(r, i));
        if (i == 1) memset(r->q[i], 127, 64);
        if (i == 2) memset(r->q[i] + 256, -127, 32);
        if (i == 3) memset(r->q[i], -127, DOT_M);
        if (i == 4)
            for (int j = 0; j < DOT_M; j++) r->q[i][j] = (int8_t)(j % 3 ? 127 : -127);
        for (int g = 0; g < DOT_M / 16; g++) { /* the sums of 16 after the edits */
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += r->q[i][16 * g + j];
            r->bsums[i][g] = (int16_t)sum;
        }
    }
}

/* A row whose bytes are all `fill` but the f16 scales, kept finite
 * (0xff: every nibble 15, 6-bit value 63 and scale 63; 0x80: Q6_K's and
 * Q8_0's scales and values -128). */
static void uniform_weights(WeightType t, uint8_t *w, int m, uint8_t fill) {
    size_t bytes = tempo_row_bytes(t, (size_t)m), block = tempo_block_bytes(t), at = t == WEIGHT_Q6_K ? 208 : t == WEIGHT_Q2_K ? 80 : t == WEIGHT_Q3_K ? 108 : 0;
    memset(w, fill, bytes);
    int halves = t == WEIGHT_Q4_K || t == WEIGHT_Q5_K || t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1 || t == WEIGHT_Q2_K ? 2 : 1; /* d (and dmin, m) */
    for (size_t b = 0; b < bytes; b += block)
        for (int h = 0; h < halves; h++) w[b + at + 2 * h + 1] &= 0xfb; /* exponent below 31 */
}

/* With AVX-512 BW and VL every type of FAST_DOT_TYPES has its vector dot (else the next test would compare
 * the plain dot with itself); with AVX2 alone Q8_0, Q4_0, the K types, Q2_K and Q3_K. */
Test(numerics, the_fast_dot_types_are_vectorized) {
    for (size_t ti = 0; ti < sizeof FAST_DOT_TYPES / sizeof *FAST_DOT_TYPES; ti++) {
        WeightType t = FAST_DOT_TYPES[ti];
#if defined(__AVX512BW__) && defined(__AVX512VL__)
        int want = 1;
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
        int want = t != WEIGHT_Q4_1 && t != WEIGHT_Q5_0 && t != WEIGHT_Q5_1 && t != WEIGHT_IQ4_NL && t != WEIGHT_IQ4_XS;
#else
        int want = 0;
#endif
        cr_expect_eq(tempo_ggml_dot_is_vectorized(t), want, "%s", tempo_weight_type_name(t));
    }
    cr_expect(!tempo_ggml_dot_is_vectorized(WEIGHT_TQ1_0) && !tempo_ggml_dot_is_vectorized(WEIGHT_IQ2_XS), "a type of GgmlInts");
}

/* The vectorized dots (one weight row, 1 to 7 activation rows a call)
 * equal the plain ones bit for bit on random blocks and on uniform ones,
 * for rows of 1 to 5 super-blocks (1 to 40 blocks of 32). */
Test(numerics, fast_dots_are_bitwise_plain) {
    uint64_t s = 17;
    static QuantRows rows;
    static uint8_t w[DOT_M * 2];
    static const uint8_t fills[] = {0xff, 0x80, 0x00, 0x7f};
    for (size_t ti = 0; ti < sizeof FAST_DOT_TYPES / sizeof *FAST_DOT_TYPES; ti++)
        for (int trial = 0; trial < 80; trial++) {
            WeightType t = FAST_DOT_TYPES[ti];
            int m = trial < 40 ? TEMPO_QK_K * (1 + trial % 5) : 32 * (1 + trial % 40);
            if (tempo_ggml_dot_type(t) == GGML_DOT_Q8_K) m = (m + TEMPO_QK_K - 1) / TEMPO_QK_K * TEMPO_QK_K;
            random_weights(t, w, m, &s);
            if (trial == 0) memset(w + 2, 0x80, 32); /* Q8_0: -128 weights */
            if (trial % 10 == 3) uniform_weights(t, w, m, fills[trial / 10 % 4]);
            quantized_rows(t, &rows, &s);
            GgmlQ8Row x[DOT_ROWS];
            for (int i = 0; i < DOT_ROWS; i++) x[i] = quant_row(&rows, i);
            int k = 1 + trial % DOT_ROWS;
            float out[DOT_ROWS * 3];
            tempo_ggml_dot_rows_fast(t, w, x, k, m, out, 3);
            for (int i = 0; i < k; i++) {
                float want = tempo_ggml_dot_plain(t, w, x[i], m);
                cr_assert(same_value(out[3 * i], want), "type %d trial %d m %d row %d of %d: fast %.9g, plain %.9g", (int)t, trial,
                          m, i, k, out[3 * i], want);
            }
            float one; /* a call of one row (decoding): IQ4_NL in vec_dot's order */
            tempo_ggml_dot_weight_rows_fast(t, w, 0, 1, x[0], m, &one);
            float want_one = t == WEIGHT_IQ4_NL ? tempo_ggml_iq4_nl_vec_dot(&TEMPO_GGML_INTS_PLAIN, w, x[0], m) : tempo_ggml_dot_plain(t, w, x[0], m);
            cr_assert(same_value(one, want_one), "type %d trial %d m %d, one row: fast %.9g, plain %.9g", (int)t, trial, m, one, want_one);
            if (t == WEIGHT_Q4_0 || t == WEIGHT_IQ4_NL) { /* repacked: one f32 sum (more rows: the next test) */
                float fast;
                tempo_ggml_b32_8x8_rows_fast(t, w, 0, 1, x[0], m, &fast);
                float plain = t == WEIGHT_Q4_0 ? tempo_ggml_q4_0_8x8_dot(w, x[0].q, x[0].d, m)
                                               : tempo_ggml_iq4_nl_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, x[0], m);
                cr_assert(same_value(fast, plain), "type %d trial %d m %d, repacked: fast %.9g, plain %.9g", (int)t, trial, m, fast, plain);
            }
            if (t == WEIGHT_Q2_K) { /* repacked: gemv and gemm orders */
                float fast = tempo_ggml_q2_k_8x8_dot_fast(w, x[0], m, trial % 2);
                float plain = tempo_ggml_q2_k_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, x[0], m, trial % 2);
                cr_assert(same_value(fast, plain), "Q2_K trial %d m %d, repacked: fast %.9g, plain %.9g", trial, m, fast, plain);
            }
            if (t != WEIGHT_Q4_K) continue;
            for (int i = 0; i < k; i++) { /* the repacked orders */
                tempo_ggml_q4_k_8x8_rows_fast(w, 0, 1, x[i], m, trial % 2, out);
                float want = tempo_ggml_q4_k_8x8_dot(w, x[i], m, trial % 2);
                cr_assert(same_value(out[0], want), "q4_K_8x8 trial %d m %d row %d: fast %.9g, plain %.9g", trial, m, i, out[0], want);
            }
        }
}

/* The repacked Q4_0 and IQ4_NL rows (four at a time in the lanes of one
 * vector, in chunks of 64 blocks; the rest one by one) are each row's plain
 * dot: 1 to 9 distinct random weight rows of 1 to 140 blocks (across the
 * chunks' edges), activation rows with extreme blocks. A row's sums in
 * another lane, a block's sums out of order, a scale of another row or
 * block, or a chunk's activations misplaced fails it. */
Test(numerics, repacked_rows_are_each_rows_plain_dot) {
    enum { MAX_ROWS = 9, MAX_BLOCKS = 140, M = 32 * MAX_BLOCKS };
    static const int blocks[] = {1, 2, 3, 4, 5, 7, 31, 40, 63, 64, 65, 88, 127, 128, 129, 140};
    static int8_t q[M];
    static float d[M / 32], sums[M / 32], x_f32[M];
    static int16_t bsums[M / 16];
    GgmlQ8Row x = {q, d, bsums, sums};
    uint64_t s = 29;
    for (int ti = 0; ti < 2; ti++)
        for (int trial = 0; trial < 48; trial++) {
            WeightType t = ti ? WEIGHT_IQ4_NL : WEIGHT_Q4_0;
            int m = 32 * blocks[trial % (sizeof blocks / sizeof *blocks)], n_rows = 1 + trial % MAX_ROWS;
            size_t row_bytes = tempo_row_bytes(t, (size_t)m);
            uint8_t *w = malloc(n_rows * row_bytes); /* exactly the rows: a read past them fails under ASan */
            cr_assert(w);
            for (int r = 0; r < n_rows; r++) random_weights(t, w + r * row_bytes, m, &s);
            extreme_row(x_f32, m, 2, &s);
            tempo_ggml_quantize_plain(GGML_DOT_Q8_0, x_f32, m, x);
            float out[MAX_ROWS];
            tempo_ggml_b32_8x8_rows_fast(t, w, row_bytes, n_rows, x, m, out);
            for (int r = 0; r < n_rows; r++) {
                const uint8_t *row = w + r * row_bytes;
                float want = t == WEIGHT_Q4_0 ? tempo_ggml_q4_0_8x8_dot(row, x.q, x.d, m) : tempo_ggml_iq4_nl_8x8_dot(&TEMPO_GGML_INTS_PLAIN, row, x, m);
                cr_assert(same_value(out[r], want), "%s trial %d m %d row %d of %d: fast %.9g, plain %.9g", tempo_weight_type_name(t), trial, m, r,
                          n_rows, out[r], want);
            }
            free(w);
        }
}

/* The plain dot the ggml matmul takes for weight row r: the repacked order
 * when llama.cpp repacks the matrix, else the vec_dot order. */
static float matmul_dot(WeightType t, int repack, int d, const uint8_t *w, GgmlQ8Row x, int m, int gemm) {
    if (!repack || !tempo_ggml_repacks(t, d)) return tempo_ggml_dot_plain(t, w, x, m);
    return t == WEIGHT_Q4_K ? tempo_ggml_q4_k_8x8_dot(w, x, m, gemm) : tempo_ggml_q4_0_8x8_dot(w, x.q, x.d, m);
}

/* The ggml matmul of a decoding step (one activation row: blocks of weight
 * rows a call) and of two rows equals the plain dot of each weight row and
 * quantized input row, repack on and off, whatever the row count (partial
 * last blocks; 40 and 1104 rows repacked, 15 and 17 not) and the thread
 * count (1104 rows of 256 run threaded). */
Test(numerics, ggml_matmul_rows_are_plain_dots) {
    static const int counts[] = {1, 15, 17, 40, 1104};
    enum { M = 256, MAX_D = 1104, N = 2 };
    uint64_t s = 29;
    static uint8_t w[MAX_D * 300];
    static QuantRows q;
    static float out[N * MAX_D];
    float in[N][M];
    float *scratch = malloc(tempo_ggml_kernels(0, 0, 0)->matmul_scratch(N, M) * sizeof(float) + 64);
    cr_assert(scratch);
    for (int repack = 0; repack <= 1; repack++)
        for (size_t ti = 0; ti < sizeof DOT_TYPES / sizeof *DOT_TYPES; ti++)
            for (int c = 0; c < 5; c++)
                for (int run = 0; run < 4; run++) {
                    WeightType t = DOT_TYPES[ti];
                    int d = counts[c], threads = 1 + run % 2, n = 1 + run / 2;
                    size_t row_bytes = tempo_row_bytes(t, M);
                    for (int r = 0; r < d; r++) random_weights(t, w + r * row_bytes, M, &s);
                    for (int i = 0; i < n; i++) extreme_row(in[i], M, 2, &s);
                    tempo_set_threads(threads);
                    tempo_ggml_kernels(0, 0, repack)->matmul(out, &in[0][0], (Matrix){w, t}, n, M, d, scratch);
                    for (int i = 0; i < n; i++) {
                        tempo_ggml_quantize_plain(tempo_ggml_dot_type(t), in[i], M, quant_row(&q, i));
                        for (int r = 0; r < d; r++) {
                            float want = matmul_dot(t, repack, d, w + r * row_bytes, quant_row(&q, i), M, i < n - n % 4);
                            cr_assert(same_value(out[(size_t)i * d + r], want),
                                      "repack %d type %d d %d threads %d n %d: row %d out %d: %.9g, plain %.9g", repack, (int)t, d,
                                      threads, n, i, r, out[(size_t)i * d + r], want);
                        }
                    }
                }
    free(scratch);
}

/* The repacked Q4_K order is the same product as the vec_dot order (within
 * f32 rounding) and a different order (the last bits differ on some rows). */
Test(numerics, q4_k_repacked_order_is_another_order_of_the_same_sum) {
    uint64_t s = 31;
    static QuantRows rows;
    static uint8_t w[DOT_M * 2];
    int differs = 0;
    for (int trial = 0; trial < 200; trial++) {
        random_weights(WEIGHT_Q4_K, w, DOT_M, &s);
        quantized_rows(WEIGHT_Q4_K, &rows, &s);
        float a = tempo_ggml_q4_k_8x8_dot(w, quant_row(&rows, 0), DOT_M, trial % 2), b = tempo_ggml_dot_plain(WEIGHT_Q4_K, w, quant_row(&rows, 0), DOT_M);
        double size = 0.0; /* the sum of |terms| bounds the rounding */
        float wf[DOT_M];
        tempo_dequantize(WEIGHT_Q4_K, w, DOT_M, wf);
        for (int j = 0; j < DOT_M; j++) size += fabs((double)wf[j] * rows.q[0][j] * rows.d[0][j / 256]);
        cr_assert(fabs((double)a - b) <= 1e-5 * size + 1e-30, "trial %d: repacked %.9g, vec_dot %.9g", trial, a, b);
        differs |= !same_value(a, b);
    }
    cr_expect(differs, "the repacked order equalled vec_dot's on 200 rows");
}

/* The Q8_0 tile (4 weight rows by 4 activation rows) equals the plain dot
 * bit for bit: random blocks, -128 weights, activations at +-127. */
Test(numerics, q8_0_tile_is_bitwise_plain) {
    uint64_t s = 19;
    static QuantRows rows;
    size_t row_bytes = tempo_row_bytes(WEIGHT_Q8_0, DOT_M);
    static uint8_t w[4 * DOT_M * 2];
    for (int trial = 0; trial < 30; trial++) {
        for (int r = 0; r < 4; r++) random_weights(WEIGHT_Q8_0, w + r * row_bytes, DOT_M, &s);
        if (trial % 3 == 0) memset(w + row_bytes + 2, 0x80, 32); /* weight row 1: -128 in its first block */
        quantized_rows(WEIGHT_Q8_0, &rows, &s);
        GgmlQ8Row x[4];
        for (int c = 0; c < 4; c++) x[c] = quant_row(&rows, (c + trial) % DOT_ROWS);
        float out[4 * 5];
        tempo_ggml_q8_0_tile(w, row_bytes, x, DOT_M, out, 5);
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < 4; r++) {
                float want = tempo_ggml_dot_plain(WEIGHT_Q8_0, w + r * row_bytes, x[c], DOT_M);
                cr_assert(same_value(out[5 * c + r], want), "trial %d weight row %d activation row %d: tile %.9g, plain %.9g", trial,
                          r, c, out[5 * c + r], want);
            }
    }
}

/* The Q4_K tile (16 weight rows by 4 activation rows, ggml's gemm order)
 * equals the plain loops bit for bit: 1 to 16 weight rows packed (the
 * outputs of the others untouched), 1 to 5 super-blocks, random blocks and
 * uniform ones (nibbles 15, scales and mins 63), activations at +-127. */
Test(numerics, q4_k_tile_is_bitwise_plain) {
    enum { T = TEMPO_GGML_Q4_K_TILE_ROWS, STRIDE = T + 1 };
    uint64_t s = 37;
    static QuantRows rows;
    size_t row_bytes = tempo_row_bytes(WEIGHT_Q4_K, DOT_M);
    static uint8_t w[T * DOT_M];
    uint8_t *tile = aligned_alloc(64, tempo_ggml_q4_k_tile_bytes(DOT_M));
    cr_assert(tile);
    for (int trial = 0; trial < 64; trial++) {
        int m = TEMPO_QK_K * (1 + trial % 5), n_rows = 1 + trial % T;
        for (int r = 0; r < T; r++) random_weights(WEIGHT_Q4_K, w + r * row_bytes, DOT_M, &s);
        for (int r = 0; r < T && trial % 4 == 3; r++) uniform_weights(WEIGHT_Q4_K, w + r * row_bytes, DOT_M, 0xff);
        quantized_rows(WEIGHT_Q4_K, &rows, &s);
        GgmlQ8Row x[4];
        for (int c = 0; c < 4; c++) x[c] = quant_row(&rows, (c + trial) % DOT_ROWS);
        float out[4 * STRIDE];
        for (int j = 0; j < 4 * STRIDE; j++) out[j] = -7.0f;
        tempo_ggml_q4_k_tile_pack(w, row_bytes, n_rows, m, tile);
        tempo_ggml_q4_k_tile_gemm(tile, n_rows, x, m, out, STRIDE);
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < STRIDE; r++) {
                float want = r < n_rows ? tempo_ggml_q4_k_8x8_dot(w + r * row_bytes, x[c], m, 1) : -7.0f;
                cr_assert(same_value(out[STRIDE * c + r], want), "trial %d m %d rows %d: weight row %d activation row %d: %.9g, want %.9g",
                          trial, m, n_rows, r, c, out[STRIDE * c + r], want);
            }
    }
    free(tile);
}

/* A prompt's product with Q4_K repacked is the plain loop of ggml's order
 * for every output (gemm for the groups of 4 rows, gemv for the 1 to 3
 * left): 1 to 9, 13 and 17 rows; 40 weight rows of 1 to 3 super-blocks on
 * one thread, 264 of 4 super-blocks on two (neither a multiple of 16). */
Test(numerics, ggml_q4_k_prefill_is_the_repacked_order) {
    static const int counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17};
    enum { MAX_N = 17, MAX_M = 1024, MAX_D = 264 };
    static uint8_t w[MAX_D * MAX_M];
    static float in[MAX_N * MAX_M], out[MAX_N * MAX_D], d[MAX_M / 32];
    static int8_t q[MAX_M];
    static int16_t bsums[MAX_M / 16];
    uint64_t s = 41;
    for (int c = 0; c < 11; c++)
        for (int run = 0; run < 2; run++) {
            int n = counts[c], rows = run ? MAX_D : 40, m = run ? MAX_M : TEMPO_QK_K * (1 + c % 3);
            size_t row_bytes = tempo_row_bytes(WEIGHT_Q4_K, (size_t)m);
            for (int r = 0; r < rows; r++) random_weights(WEIGHT_Q4_K, w + r * row_bytes, m, &s);
            for (int i = 0; i < n; i++) extreme_row(in + (size_t)i * m, m, 2, &s);
            tempo_set_threads(1 + run);
            const Kernels *k = tempo_ggml_kernels(0, 0, 1);
            float *scratch = malloc(k->matmul_scratch(n, m) * sizeof(float));
            cr_assert(scratch);
            k->matmul(out, in, (Matrix){w, WEIGHT_Q4_K}, n, m, rows, scratch);
            free(scratch);
            for (int i = 0; i < n; i++) {
                GgmlQ8Row x = {q, d, bsums, NULL}; /* Q8_K: no Q8_1 block sums */
                tempo_ggml_quantize_plain(GGML_DOT_Q8_K, in + (size_t)i * m, m, x);
                for (int r = 0; r < rows; r++) {
                    float want = tempo_ggml_q4_k_8x8_dot(w + r * row_bytes, x, m, i < n - n % 4);
                    cr_assert(same_value(out[(size_t)i * rows + r], want), "n %d m %d d %d: row %d out %d: %.9g, plain %.9g", n, m,
                              rows, i, r, out[(size_t)i * rows + r], want);
                }
            }
        }
    tempo_set_threads(omp_get_num_procs());
}

/* The ggml matmul of Q8_0 and Q4_K weights is each output's plain dot, bit
 * for bit, on 1 and 2 threads: weight and activation rows not multiples of
 * the tile's 4, a matrix large enough to be threaded. */
Test(numerics, ggml_q8_matmul_is_plain_dots_on_any_threads) {
    enum { N = 7, D = 514 };
    static const WeightType types[] = {WEIGHT_Q8_0, WEIGHT_Q4_K};
    uint64_t s = 53;
    for (int ti = 0; ti < 2; ti++) {
        WeightType t = types[ti];
        size_t row_bytes = tempo_row_bytes(t, DOT_M);
        uint8_t *w = malloc(row_bytes * D);
        for (int r = 0; r < D; r++) random_weights(t, w + r * row_bytes, DOT_M, &s);
        float *in = malloc(sizeof(float) * N * DOT_M), *out = malloc(sizeof(float) * N * D);
        for (int i = 0; i < N * DOT_M; i++) in[i] = (float)tempo_normal(&s);
        const Kernels *k = tempo_ggml_kernels(0, 0, 0);
        static QuantRows rows;
        for (int i = 0; i < N; i++) tempo_ggml_quantize_plain(tempo_ggml_dot_type(t), in + i * DOT_M, DOT_M, quant_row(&rows, i));
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            float *scratch = malloc(k->matmul_scratch(N, DOT_M) * sizeof(float));
            k->matmul(out, in, (Matrix){w, t}, N, DOT_M, D, scratch);
            free(scratch);
            for (int i = 0; i < N; i++)
                for (int r = 0; r < D; r++) {
                    float want = tempo_ggml_dot_plain(t, w + r * row_bytes, quant_row(&rows, i), DOT_M);
                    cr_assert(same_value(out[i * D + r], want), "type %d threads %d row %d out %d: %.9g, plain %.9g", (int)t, threads, i,
                              r, out[i * D + r], want);
                }
        }
        omp_set_num_threads(omp_get_num_procs());
        free(w), free(in), free(out);
    }
}

/* The plain dots are the product of the dequantized weights and the
 * quantized activations (q d), up to f32 rounding: scales, mins, nibble
 * and bit order read as the dequantizer reads them. */
Test(numerics, plain_dots_are_the_dequantized_product) {
    uint64_t s = 23;
    static QuantRows rows;
    static uint8_t w[DOT_M * 2];
    float wf[DOT_M];
    for (size_t ti = 0; ti < sizeof DOT_TYPES / sizeof *DOT_TYPES; ti++)
        for (int trial = 0; trial < 10; trial++) {
            WeightType t = DOT_TYPES[ti];
            for (size_t i = 0; i < tempo_row_bytes(t, DOT_M); i++) w[i] = (uint8_t)next_bits(&s);
            size_t block = tempo_block_bytes(t), at = t == WEIGHT_Q6_K ? 208 : 0;
            for (size_t b = 0; b < tempo_row_bytes(t, DOT_M); b += block) { /* scales near 1e-2 */
                uint16_t h = tempo_f32_to_f16(0.01f + 0.001f * (float)(next_bits(&s) % 9));
                memcpy(w + b + at, &h, 2);
                if (t == WEIGHT_Q4_K || t == WEIGHT_Q5_K) memcpy(w + b + 2, &h, 2);
            }
            quantized_rows(t, &rows, &s);
            tempo_dequantize(t, w, DOT_M, wf);
            int block_x = tempo_ggml_dot_type(t) == GGML_DOT_Q8_K ? 256 : 32;
            double want = 0.0, size = 0.0;
            for (int j = 0; j < DOT_M; j++) {
                double term = (double)wf[j] * rows.q[0][j] * rows.d[0][j / block_x];
                want += term, size += fabs(term);
            }
            float got = tempo_ggml_dot_plain(t, w, quant_row(&rows, 0), DOT_M);
            cr_expect(fabs(got - want) <= 1e-5 * size, "type %d trial %d: %.9g, dequantized %.9g", (int)t, trial, got, want);
        }
}
