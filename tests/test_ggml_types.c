/* ggml's dot products of the other weight types llama-quantize writes
 * (kernels/ggml_dots_more.c, kernels/ggml_dots_iq.c): each plain dot is the
 * product of the dequantized weights and the quantized activations (within
 * f32 rounding); the ggml matmul takes them, repacked IQ4_NL and Q2_K in
 * their repacked orders, on any thread count; the repacked Q2_K orders
 * (gemm, gemv) are other orders of the same sum. Their bit-exact orders are
 * held to llama.cpp's own traces by tests/test_llama.py. */
#include "helpers.h"

#include <string.h>

#include "../formats/quant.h"

enum { M = 512, ROWS = 5 }; /* 2 super-blocks */
static const WeightType TYPES[] = {WEIGHT_Q4_1,  WEIGHT_Q5_0,    WEIGHT_Q5_1,   WEIGHT_IQ4_NL,  WEIGHT_IQ4_XS, WEIGHT_Q2_K,
                                   WEIGHT_Q3_K,  WEIGHT_TQ1_0,   WEIGHT_TQ2_0,  WEIGHT_IQ2_XXS, WEIGHT_IQ2_XS, WEIGHT_IQ2_S,
                                   WEIGHT_IQ3_XXS, WEIGHT_IQ3_S, WEIGHT_IQ1_S,  WEIGHT_IQ1_M};
enum { N_TYPES = sizeof TYPES / sizeof *TYPES };

static uint64_t next_bits(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Byte offsets of a block's f16 scales (-1: none more); IQ1_M's is in nibbles. */
static void scale_offsets(WeightType t, int *at) {
    at[0] = t == WEIGHT_Q2_K ? 80 : t == WEIGHT_Q3_K ? 108 : t == WEIGHT_TQ1_0 ? 52 : t == WEIGHT_TQ2_0 ? 64 : 0;
    at[1] = t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1 || t == WEIGHT_Q2_K ? at[0] + 2 : -1;
}

/* Random blocks with every f16 scale near 1e-2 (finite, normal). */
static void random_row(WeightType t, uint8_t *w, int m, uint64_t *s) {
    size_t bytes = tempo_row_bytes(t, (size_t)m), block = tempo_block_bytes(t);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)next_bits(s);
    for (size_t b = 0; b < bytes; b += block) {
        uint16_t h = tempo_f32_to_f16(0.01f + 0.001f * (float)(next_bits(s) % 9));
        int at[2];
        scale_offsets(t, at);
        if (t == WEIGHT_IQ1_M) /* the top nibbles of the four 16-bit scale words */
            for (int k = 0; k < 4; k++) w[b + 49 + 2 * k] = (uint8_t)((w[b + 49 + 2 * k] & 15) | (h >> 4 * k & 15) << 4);
        else
            for (int k = 0; k < 2 && at[k] >= 0; k++) memcpy(w + b + at[k], &h, 2);
    }
}

/* Storage for one quantized activation row of up to M values. */
typedef struct {
    int8_t q[M];
    float d[M / 32], sums[M / 32];
    int16_t bsums[M / 16];
} QuantRow;
static GgmlQ8Row row_of(QuantRow *r) { return (GgmlQ8Row){r->q, r->d, r->bsums, r->sums}; }

static void normal_row(float *x, int m, uint64_t *s) {
    for (int j = 0; j < m; j++) x[j] = (float)tempo_normal(s) * (j % 37 == 0 ? 8.0f : 1.0f);
}

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Each plain dot equals sum_j w_j q_j d_x (w dequantized) within f32
 * rounding; Q4_1 and Q5_1 take the min term from Q8_1's f16 block sums, so
 * within f16 rounding of that term. A wrong value, scale or sign fails. */
Test(ggml_types, plain_dots_are_the_dequantized_product) {
    uint64_t s = 41;
    static uint8_t w[M * 2];
    static QuantRow r;
    float x[M], wf[M];
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int trial = 0; trial < 20; trial++) {
            WeightType t = TYPES[ti];
            GgmlDotType dt = tempo_ggml_dot_type(t);
            random_row(t, w, M, &s);
            normal_row(x, M, &s);
            tempo_ggml_quantize_plain(dt, x, M, row_of(&r));
            tempo_dequantize(t, w, M, wf);
            int block_x = dt == GGML_DOT_Q8_K ? 256 : 32, has_min = t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1;
            double want = 0.0, size = 0.0;
            for (int j = 0; j < M; j++) {
                double term = (double)wf[j] * r.q[j] * r.d[j / block_x];
                want += term, size += fabs(term);
            }
            float got = tempo_ggml_dot_plain(t, w, row_of(&r), M);
            cr_assert(fabs(got - want) <= (has_min ? 2e-3 : 1e-5) * size, "type %s trial %d: %.9g, dequantized %.9g",
                      tempo_weight_type_name(t), trial, got, want);
            if (t != WEIGHT_IQ4_NL) continue;
            for (int m = 32; m <= M; m += 160) { /* one row's order, with and without an odd last block */
                double part = 0.0, part_size = 0.0;
                for (int j = 0; j < m; j++) {
                    double term = (double)wf[j] * r.q[j] * r.d[j / 32];
                    part += term, part_size += fabs(term);
                }
                float one_row = tempo_ggml_iq4_nl_vec_dot(w, row_of(&r), m);
                cr_assert(fabs(one_row - part) <= 1e-5 * part_size, "IQ4_NL vec_dot m %d: %.9g, dequantized %.9g", m, one_row, part);
            }
        }
}

/* ggml_dots.c's one table gives every block type a dot and the float types (ggml converts them
 * to f16 or bf16 dots, not followed here) none: an entry left out fails. */
Test(ggml_types, every_block_type_has_a_dot) {
    for (int t = 0; t < WEIGHT_N_TYPES; t++) {
        int is_float = t == WEIGHT_F32 || t == WEIGHT_F16 || t == WEIGHT_BF16;
        cr_expect_eq(tempo_ggml_has_dot((WeightType)t), !is_float, "%s: has_dot %d", tempo_weight_type_name((WeightType)t),
                     tempo_ggml_has_dot((WeightType)t));
    }
    cr_expect(!tempo_ggml_has_dot(WEIGHT_N_TYPES) && !tempo_ggml_has_dot((WeightType)-1), "a type out of range has a dot");
}

/* Q8_1's block sums: s = f16(d sum q) with d = amax / 127 before its f16
 * rounding; the fast quantization gives the plain one's integers, scales and sums. */
Test(ggml_types, q8_1_sums_are_the_unrounded_scale_times_the_integers) {
    uint64_t s = 43;
    static QuantRow plain, fast;
    float x[M];
    for (int trial = 0; trial < 50; trial++) {
        normal_row(x, M, &s);
        tempo_ggml_quantize_plain(GGML_DOT_Q8_1, x, M, row_of(&plain));
        tempo_ggml_quantize_fast(GGML_DOT_Q8_1, x, M, row_of(&fast));
        cr_assert(memcmp(&plain, &fast, sizeof plain) == 0, "trial %d: fast and plain Q8_1 differ", trial);
        for (int b = 0; b < M / 32; b++) {
            float amax = 0.0f;
            int sum = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j])), sum += plain.q[32 * b + j];
            float want = tempo_f16_to_f32(tempo_f32_to_f16(amax / 127.0f * (float)sum));
            cr_assert(same_float(plain.sums[b], want), "trial %d block %d: %.9g, want %.9g", trial, b, plain.sums[b], want);
        }
    }
}

/* The repacked Q2_K orders (gemm: two f32 steps per super-block; gemv:
 * one) and the vec_dot order are the same sum within f32 rounding, and
 * differ in the last bits on some rows (so the gemm flag is not ignored). */
Test(ggml_types, q2_k_repacked_orders_are_other_orders_of_the_same_sum) {
    uint64_t s = 47;
    static uint8_t w[M * 2];
    static QuantRow r;
    float x[M], wf[M];
    int gemm_differs = 0;
    for (int trial = 0; trial < 200; trial++) {
        random_row(WEIGHT_Q2_K, w, M, &s);
        normal_row(x, M, &s);
        tempo_ggml_quantize_plain(GGML_DOT_Q8_K, x, M, row_of(&r));
        tempo_dequantize(WEIGHT_Q2_K, w, M, wf);
        double size = 0.0;
        for (int j = 0; j < M; j++) size += fabs((double)wf[j] * r.q[j] * r.d[j / 256]);
        float gemv = tempo_ggml_q2_k_8x8_dot(w, row_of(&r), M, 0), gemm = tempo_ggml_q2_k_8x8_dot(w, row_of(&r), M, 1);
        float vec_dot = tempo_ggml_dot_plain(WEIGHT_Q2_K, w, row_of(&r), M);
        cr_assert(fabs(gemv - vec_dot) <= 1e-5 * size && fabs(gemm - vec_dot) <= 1e-5 * size, "trial %d: %.9g %.9g %.9g", trial,
                  gemv, gemm, vec_dot);
        gemm_differs |= !same_float(gemv, gemm);
    }
    cr_expect(gemm_differs, "the gemm order equalled the gemv order on 200 rows");
}

/* The plain dot the ggml matmul takes for row i of n, weight row r of d. */
static float matmul_dot(WeightType t, int repack, int d, const uint8_t *w, GgmlQ8Row x, int i, int n) {
    if ((!repack || !tempo_ggml_repacks(t, d)) && t == WEIGHT_IQ4_NL && n == 1) return tempo_ggml_iq4_nl_vec_dot(w, x, M);
    if (!repack || !tempo_ggml_repacks(t, d)) return tempo_ggml_dot_plain(t, w, x, M);
    if (t == WEIGHT_Q2_K) return tempo_ggml_q2_k_8x8_dot(w, x, M, i < n - n % 4);
    return tempo_ggml_iq4_nl_8x8_dot(w, x, M);
}

/* The ggml matmul (repack on and off; 1, 2 and 5 rows, 16 and 40 weight
 * rows repacked, 12 and 20 not; 1 and 2 threads) gives each output as the
 * plain dot of its weight row and quantized input row, repacked IQ4_NL and
 * Q2_K in their repacked orders (Q2_K's gemm for the groups of 4 rows),
 * unrepacked IQ4_NL in a call of one row in vec_dot's order. */
Test(ggml_types, ggml_matmul_rows_are_plain_dots) {
    static const int counts[] = {12, 16, 20, 40}, batches[] = {1, 2, 5};
    enum { MAX_D = 40 };
    uint64_t s = 53;
    static uint8_t w[MAX_D * M * 2];
    static float in[ROWS * M], out[ROWS * MAX_D];
    static QuantRow r;
    float *scratch = malloc(tempo_ggml_kernels(0, 0, 0)->matmul_scratch(ROWS, M) * sizeof(float) + 64);
    cr_assert(scratch);
    for (int repack = 0; repack <= 1; repack++)
        for (int ti = 0; ti < N_TYPES; ti++)
            for (int c = 0; c < 4; c++) {
                WeightType t = TYPES[ti];
                int d = counts[c], n = batches[(c + ti) % 3];
                size_t row_bytes = tempo_row_bytes(t, M);
                for (int k = 0; k < d; k++) random_row(t, w + k * row_bytes, M, &s);
                for (int i = 0; i < n; i++) normal_row(in + i * M, M, &s);
                tempo_set_threads(1 + c % 2);
                tempo_ggml_kernels(0, 0, repack)->matmul(out, in, (Matrix){w, t}, n, M, d, scratch);
                for (int i = 0; i < n; i++) {
                    tempo_ggml_quantize_plain(tempo_ggml_dot_type(t), in + i * M, M, row_of(&r));
                    for (int k = 0; k < d; k++) {
                        float want = matmul_dot(t, repack, d, w + k * row_bytes, row_of(&r), i, n);
                        cr_assert(same_float(out[i * d + k], want), "%s repack %d d %d n %d: row %d out %d: %.9g, plain %.9g",
                                  tempo_weight_type_name(t), repack, d, n, i, k, out[i * d + k], want);
                    }
                }
            }
    tempo_set_threads(1);
    free(scratch);
}
