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
                                   WEIGHT_IQ3_XXS, WEIGHT_IQ3_S, WEIGHT_IQ1_S,  WEIGHT_IQ1_M,  WEIGHT_Q1_0,   WEIGHT_Q2_0};
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
                float one_row = tempo_ggml_iq4_nl_vec_dot(&TEMPO_GGML_INTS_PLAIN, w, row_of(&r), m);
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
        float gemv = tempo_ggml_q2_k_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, row_of(&r), M, 0), gemm = tempo_ggml_q2_k_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, row_of(&r), M, 1);
        float vec_dot = tempo_ggml_dot_plain(WEIGHT_Q2_K, w, row_of(&r), M);
        cr_assert(fabs(gemv - vec_dot) <= 1e-5 * size && fabs(gemm - vec_dot) <= 1e-5 * size, "trial %d: %.9g %.9g %.9g", trial,
                  gemv, gemm, vec_dot);
        gemm_differs |= !same_float(gemv, gemm);
    }
    cr_expect(gemm_differs, "the gemm order equalled the gemv order on 200 rows");
}

/* The plain dot the ggml matmul takes for row i of n, weight row r of d. */
static float matmul_dot(WeightType t, int repack, int d, const uint8_t *w, GgmlQ8Row x, int i, int n) {
    if ((!repack || !tempo_ggml_repacks(t, d)) && t == WEIGHT_IQ4_NL && n == 1) return tempo_ggml_iq4_nl_vec_dot(&TEMPO_GGML_INTS_PLAIN, w, x, M);
    if (!repack || !tempo_ggml_repacks(t, d)) return tempo_ggml_dot_plain(t, w, x, M);
    if (t == WEIGHT_Q2_K) return tempo_ggml_q2_k_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, x, M, i < n - n % 4);
    return tempo_ggml_iq4_nl_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, x, M);
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

/* ggml_vec_dot_q1_0_q8_0 (ggml-cpu/arch/x86/quants.c, its AVX2 path)
 * transcribed: per 128-value block, for each of its four Q8_0 blocks K,
 * the bytes sy = q or -q (int8, by bit j % 8 of qs[4K + j / 8] clear),
 * summed 4 by 4 into 8 int32 lanes (maddubs with ones, madd with ones);
 * acc_block = d_y0 s for K = 0, then fma(d_yK, s, acc_block); acc =
 * fma(d_w, acc_block, acc); hsum_float_8. `fused` 0: the same with each
 * fma a multiply then an add (only the d_w step can differ: d_y s, an f16
 * times an integer under 2^9, is exact); `sequential`: the 8 lanes added
 * in order. */
static float q1_0_transcribed(const uint8_t *w, GgmlQ8Row x, int m, int fused, int sequential) {
    float acc[8] = {0};
    for (int ib = 0; ib < m / 128; ib++) {
        const uint8_t *blk = w + 18 * ib;
        float d0 = tempo_f16_at(blk), acc_block[8];
        for (int K = 0; K < 4; K++) {
            const int8_t *qy = x.q + 32 * (4 * ib + K);
            float dy = x.d[4 * ib + K];
            for (int lane = 0; lane < 8; lane++) {
                int s32 = 0;
                for (int j = 4 * lane; j < 4 * lane + 4; j++) {
                    int set = blk[2 + 4 * K + j / 8] >> (j % 8) & 1;
                    s32 += (int8_t)(set ? qy[j] : -qy[j]);
                }
                float prod = dy * (float)s32;
                acc_block[lane] = K == 0 ? prod : fused ? fmaf(dy, (float)s32, acc_block[lane]) : acc_block[lane] + prod;
            }
        }
        for (int lane = 0; lane < 8; lane++) {
            float prod = d0 * acc_block[lane];
            acc[lane] = fused ? fmaf(d0, acc_block[lane], acc[lane]) : acc[lane] + prod;
        }
    }
    if (sequential) return ((((((acc[0] + acc[1]) + acc[2]) + acc[3]) + acc[4]) + acc[5]) + acc[6]) + acc[7];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* ggml_vec_dot_q2_0_q8_0_generic (ggml-cpu/quants.c; x86 has no other)
 * transcribed, as the zen4 build compiles it (each `x += a * b` one fma):
 * per 64-value block, for its two Q8_0 blocks k the integer sum of (q - 1)
 * q_y over the 4 codes of each of its 8 bytes qs[8k + b] (bits 0, 2, 4,
 * 6), sumi = fma(d_y, sum, sumi) from 0; sumf = fma(d_w, sumi, sumf).
 * `fused` 0: each a multiply then an add (only the d_w step can differ:
 * d_y sum, an f16 times an integer under 2^13, is exact); `scales_first`:
 * (d_w d_y) sum added per Q8_0 block (the order of ggml's SSSE3 Q1_0 path). */
static float q2_0_transcribed(const uint8_t *w, GgmlQ8Row x, int m, int fused, int scales_first) {
    float sumf = 0.0f;
    for (int i = 0; i < m / 64; i++) {
        const uint8_t *blk = w + 18 * i;
        float d0 = tempo_f16_at(blk), sumi = 0.0f;
        for (int k = 0; k < 2; k++) {
            const int8_t *qy = x.q + 32 * (2 * i + k);
            float d1 = x.d[2 * i + k];
            int sumi_block = 0;
            for (int b = 0; b < 8; b++) {
                uint8_t byte = blk[2 + 8 * k + b];
                for (int l = 0; l < 4; l++) sumi_block += ((int)((byte >> 2 * l) & 3) - 1) * qy[4 * b + l];
            }
            if (scales_first) sumf += d0 * d1 * (float)sumi_block;
            else sumi = fused ? fmaf(d1, (float)sumi_block, sumi) : sumi + d1 * (float)sumi_block;
        }
        if (!scales_first) sumf = fused ? fmaf(d0, sumi, sumf) : sumf + d0 * sumi;
    }
    return sumf;
}

/* tempo_ggml_q1_0_dot and tempo_ggml_q2_0_dot (through the table) equal
 * the transcriptions of llama.cpp above bit for bit, on random rows of 1,
 * 3 (odd) and 4 or 8 blocks, the activations quantized to Q8_0 by
 * tempo_ggml_quantize_plain (scales spread over 2^-6 .. 2^6). The inputs
 * tell the orders apart: on some row the unfused order, the other lane
 * sum (Q1_0) and the scales-first order (Q2_0) each give other bits, so a
 * dot in one of them fails; no dot is 0 or not finite. */
Test(ggml_types, q1_0_q2_0_dots_are_llama_cpp_transcribed) {
    uint64_t s = 59;
    static uint8_t w[M * 2];
    static QuantRow r;
    float x[M];
    for (int ti = 0; ti < 2; ti++) {
        WeightType t = ti ? WEIGHT_Q2_0 : WEIGHT_Q1_0;
        int block = tempo_block_values(t), ms[3] = {block, 3 * block, M}, unfused_differs = 0, order_differs = 0;
        cr_assert_eq(tempo_ggml_dot_type(t), GGML_DOT_Q8_0, "%s", tempo_weight_type_name(t));
        for (int trial = 0; trial < 300; trial++) {
            int m = ms[trial % 3];
            random_row(t, w, m, &s);
            normal_row(x, m, &s);
            for (int j = 0; j < m; j++) x[j] *= ldexpf(1.0f, (int)(next_bits(&s) % 13) - 6);
            tempo_ggml_quantize_plain(GGML_DOT_Q8_0, x, m, row_of(&r));
            float got = tempo_ggml_dot_plain(t, w, row_of(&r), m);
            float want = ti ? q2_0_transcribed(w, row_of(&r), m, 1, 0) : q1_0_transcribed(w, row_of(&r), m, 1, 0);
            float unfused = ti ? q2_0_transcribed(w, row_of(&r), m, 0, 0) : q1_0_transcribed(w, row_of(&r), m, 0, 0);
            float other = ti ? q2_0_transcribed(w, row_of(&r), m, 1, 1) : q1_0_transcribed(w, row_of(&r), m, 1, 1);
            cr_assert(same_float(got, want), "%s m %d trial %d: %.9g, llama.cpp's order %.9g", tempo_weight_type_name(t), m, trial,
                      got, want);
            cr_assert(got != 0.0f && isfinite(got), "%s m %d trial %d: %g", tempo_weight_type_name(t), m, trial, got);
            unfused_differs |= !same_float(unfused, want), order_differs |= !same_float(other, want);
        }
        cr_expect(unfused_differs, "%s: the unfused order gave the same bits on 300 rows", tempo_weight_type_name(t));
        cr_expect(order_differs, "%s: the other order gave the same bits on 300 rows", tempo_weight_type_name(t));
    }
}

/* The vectorized integers (TEMPO_GGML_INTS_FAST: TQ1_0's and TQ2_0's, the
 * other types' dots being vectorized whole) are the plain ones value for
 * value, on all-zero bytes, all-0xFF bytes and random bytes. A digit from
 * the wrong bits or trit fails; so does a decoder that
 * writes past its values (both outputs start as a marker) or reads past
 * its block (the block ends its allocation: the ASan suite sees it). */
Test(ggml_types, fast_block_integers_are_the_plain_ones) {
    enum { MARK = 0x5A5A };
    uint64_t s = 61;
    int16_t plain[2 * TEMPO_QK_K], fast[2 * TEMPO_QK_K];
    for (int ti = 0; ti < N_TYPES; ti++) {
        WeightType t = TYPES[ti];
        if (t != WEIGHT_TQ1_0 && t != WEIGHT_TQ2_0) continue; /* the others: the plain integers, or no integers at all */
        int n = tempo_block_values(t);
        size_t bytes = tempo_block_bytes(t);
        uint8_t *b = malloc(bytes);
        cr_assert(b);
        for (int trial = 0; trial < 300; trial++) {
            for (size_t i = 0; i < bytes; i++) b[i] = trial == 0 ? 0 : trial == 1 ? 0xFF : (uint8_t)next_bits(&s);
            for (int v = 0; v < 2 * TEMPO_QK_K; v++) plain[v] = fast[v] = MARK;
            TEMPO_GGML_INTS_PLAIN.ints(t, b, plain);
            TEMPO_GGML_INTS_FAST.ints(t, b, fast);
            for (int v = 0; v < 2 * TEMPO_QK_K; v++) {
                cr_assert_eq(fast[v], plain[v], "%s trial %d value %d: %d, plain %d", tempo_weight_type_name(t), trial, v, fast[v], plain[v]);
                cr_assert(v < n || fast[v] == MARK, "%s: value %d written (%d values)", tempo_weight_type_name(t), v, n);
            }
        }
        free(b);
    }
}

/* The vectorized grid lanes (GgmlGridLanes: each point's grid bytes read,
 * signed, scaled and multiplied into the lanes without the integers in
 * memory; IQ1's delta lanes from the sums of q8) are the plain ones (the
 * lanes of tempo_ggml_iq_ints' integers): random blocks, all-zero and
 * all-one bytes, q8 random and at +-127. A point, sign, scale or delta
 * read from the wrong bits fails. */
Test(ggml_types, fast_grid_lanes_are_the_plain_ones) {
    uint64_t s = 71;
    int8_t q8[TEMPO_QK_K];
    for (int ti = 0; ti < N_TYPES; ti++) {
        WeightType t = TYPES[ti];
        if (!tempo_ggml_is_grid(t)) continue;
        uint8_t *b = malloc(tempo_block_bytes(t)); /* exactly a block: a read past it fails under ASan */
        cr_assert(b);
        for (int trial = 0; trial < 300; trial++) {
            for (size_t i = 0; i < tempo_block_bytes(t); i++) b[i] = trial == 0 ? 0 : trial == 1 ? 0xFF : (uint8_t)next_bits(&s);
            for (int v = 0; v < TEMPO_QK_K; v++) q8[v] = trial < 4 ? (int8_t)(trial % 2 ? 127 : -127) : (int8_t)((int)(next_bits(&s) % 255) - 127);
            int32_t plain[8], fast[8], plain_delta[8], fast_delta[8];
            TEMPO_GGML_INTS_PLAIN.grid_lanes(t, b, q8, plain, plain_delta);
            TEMPO_GGML_INTS_FAST.grid_lanes(t, b, q8, fast, fast_delta);
            for (int k = 0; k < 8; k++) {
                cr_assert_eq(fast[k], plain[k], "%s trial %d lane %d: %d, plain %d", tempo_weight_type_name(t), trial, k, fast[k], plain[k]);
                cr_assert_eq(fast_delta[k], plain_delta[k], "%s trial %d delta lane %d: %d, plain %d", tempo_weight_type_name(t), trial, k,
                             fast_delta[k], plain_delta[k]);
            }
        }
        free(b);
    }
}

/* A grid type's whole row in registers (tempo_ggml_iq_dot_fast) is its
 * plain dot bitwise: rows of 1 to 7 super-blocks, each with its own
 * activation scale d_x and random weight bytes (so random f16 scales d_w,
 * IQ1's delta signs), q8 random. A super-block's d read from another
 * block, a lane dropped, IQ1's delta term left out or added per lane
 * instead of as one total fails. */
Test(ggml_types, fast_grid_row_dots_are_the_plain_ones) {
    enum { MAX_BLOCKS = 7 };
    uint64_t s = 83;
    static int8_t q8[MAX_BLOCKS * TEMPO_QK_K];
    float d[MAX_BLOCKS];
    for (int ti = 0; ti < N_TYPES; ti++) {
        WeightType t = TYPES[ti];
        if (!tempo_ggml_is_grid(t)) continue;
        for (int blocks = 1; blocks <= MAX_BLOCKS; blocks++) {
            size_t bytes = tempo_block_bytes(t) * (size_t)blocks;
            uint8_t *w = malloc(bytes); /* exactly the row: a read past it fails under ASan */
            cr_assert(w);
            for (int trial = 0; trial < 20; trial++) {
                for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)next_bits(&s);
                for (int v = 0; v < blocks * TEMPO_QK_K; v++) q8[v] = (int8_t)((int)(next_bits(&s) % 255) - 127);
                for (int b = 0; b < blocks; b++) d[b] = (float)tempo_normal(&s) * 1e-3f;
                GgmlQ8Row x = {.q = q8, .d = d};
                float fast = tempo_ggml_iq_dot_fast(t, w, x, blocks * TEMPO_QK_K);
                float plain = tempo_ggml_iq_dot(&TEMPO_GGML_INTS_PLAIN, t, w, x, blocks * TEMPO_QK_K);
                cr_assert(same_float(fast, plain), "%s %d blocks trial %d: %.9g, plain %.9g", tempo_weight_type_name(t), blocks,
                          trial, fast, plain);
            }
            free(w);
        }
    }
}

/* The vectorized lanes are the plain lanes (lane k: products 4k..4k+3 of
 * each 32 values) on 32, 128 and 256 values: random integers, and the
 * extremes the types reach (|w| = 127 * 32, q8 = -128), where a saturating
 * or 16-bit sum would wrap. A lane of the wrong values fails. */
Test(ggml_types, fast_lanes_are_the_plain_lanes) {
    uint64_t s = 67;
    int16_t w[TEMPO_QK_K];
    int8_t q8[TEMPO_QK_K];
    static const int counts[3] = {32, 128, 256};
    for (int trial = 0; trial < 300; trial++) {
        int n = counts[trial % 3];
        for (int v = 0; v < n; v++) {
            w[v] = trial < 3 ? (int16_t)(trial == 1 ? 4064 : -4064) : (int16_t)((int)(next_bits(&s) % 8129) - 4064);
            q8[v] = trial < 3 ? -128 : (int8_t)next_bits(&s);
        }
        int32_t plain[8], fast[8];
        TEMPO_GGML_INTS_PLAIN.lanes(w, q8, n, plain);
        TEMPO_GGML_INTS_FAST.lanes(w, q8, n, fast);
        for (int k = 0; k < 8; k++) cr_assert_eq(fast[k], plain[k], "trial %d n %d lane %d: %d, plain %d", trial, n, k, fast[k], plain[k]);
    }
}
