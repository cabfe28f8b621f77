/* The numerics profiles (kernels/ggml.c, kernels/numerics.c): ggml's
 * activation round trips against values worked out from ggml's rules, the
 * ggml matmul against ggml's own block formula, the f16 cache and flash
 * attention against their definitions, the profile switch, and the float
 * orders of ggml_dot.c (vectorized: bitwise their plain definitions). The
 * quantized dots: tests/test_ggml_dots.c. */
#include "helpers.h"

#include <omp.h>

#include "../formats/quant.h"

#if defined(__AVX512F__)
#include <immintrin.h> /* the instructions ggml runs, as references for its orders */
#endif

static float half(float x) { return tempo_f16_to_f32(tempo_f32_to_f16(x)); }

/* Q8_0: d = f16(amax/127); q = x * 127/amax rounded half to even (the AVX
 * code's _mm256_round_ps), not half away from zero (the scalar ref's roundf). */
Test(numerics, q8_0_round_trip_rounds_half_to_even) {
    float x[32] = {127.0f, 0.5f, 1.5f, 2.5f, -2.5f, -126.5f, 3.0f};
    float out[32];
    tempo_ggml_round_activations(GGML_DOT_Q8_0, x, 32, out);
    float want[7] = {127, 0, 2, 2, -2, -126, 3}; /* d = f16(1) = 1 */
    for (int j = 0; j < 7; j++) cr_expect_eq(out[j], want[j], "x %g -> %g, want %g", x[j], out[j], want[j]);
    float y[32] = {1.0f, 0.3f, -0.7f};
    tempo_ggml_round_activations(GGML_DOT_Q8_0, y, 32, out);
    float d = half(1.0f / 127.0f); /* the scale is stored as f16: the values are q times the rounded scale */
    cr_expect_eq(out[0], 127 * d);
    cr_expect_eq(out[1], nearbyintf(0.3f * 127.0f) * d);
    cr_expect_eq(out[2], nearbyintf(-0.7f * 127.0f) * d);
    float zero[32] = {0}, out0[32];
    tempo_ggml_round_activations(GGML_DOT_Q8_0, zero, 32, out0);
    for (int j = 0; j < 32; j++) cr_expect_eq(out0[j], 0.0f);
}

/* Q8_K: the scale comes from the value of largest magnitude with its sign,
 * iscale = -127/max, d = 1/iscale in f32, ties to even; blocks of 256. */
Test(numerics, q8_k_round_trip_takes_the_signed_maximum) {
    float x[512] = {0}, out[512];
    x[0] = -2.0f, x[1] = 1.0f, x[2] = 0.5f / 63.5f * 2.0f; /* iscale 63.5: 1 -> 63.5 -> 64; the third -> 1 */
    x[256] = 2.0f, x[257] = -1.0f;                         /* second block: iscale -63.5 */
    tempo_ggml_round_activations(GGML_DOT_Q8_K, x, 512, out);
    float d = 1.0f / (-127.0f / -2.0f);
    cr_expect_eq(out[0], -127 * d);
    cr_expect_eq(out[1], 64 * d, "1.0 -> %.9g, want 64 d (63.5 rounds to even)", out[1]);
    cr_expect_eq(out[2], nearbyintf(63.5f * x[2]) * d);
    float d2 = 1.0f / (-127.0f / 2.0f);
    cr_expect_eq(out[256], -127 * d2);
    cr_expect_eq(out[257], 64 * d2, "-1.0 -> %.9g", out[257]);
    for (int j = 3; j < 256; j++) cr_expect_eq(out[j], 0.0f);
}

Test(numerics, f16_and_bf16_activations_round_to_nearest_even) {
    float x[3] = {1.0f + ldexpf(1.0f, -11), 1.0f + 3 * ldexpf(1.0f, -11), 1.0f + ldexpf(1.0f, -8)}, out[3];
    tempo_ggml_round_activations(GGML_DOT_F16, x, 3, out);
    cr_expect_eq(out[0], 1.0f);
    cr_expect_eq(out[1], 1.0f + ldexpf(1.0f, -9));
    tempo_ggml_round_activations(GGML_DOT_BF16, x, 3, out);
    cr_expect_eq(out[2], 1.0f, "bf16 tie 1 + 2^-8 -> %.9g, want 1 (even)", out[2]);
}

/* Each weight type maps to ggml's vec_dot_type. */
Test(numerics, dot_types_follow_ggml) {
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_F32), GGML_DOT_F32);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_F16), GGML_DOT_F16);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_BF16), GGML_DOT_BF16);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q8_0), GGML_DOT_Q8_0);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q4_0), GGML_DOT_Q8_0);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q4_K), GGML_DOT_Q8_K);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q5_K), GGML_DOT_Q8_K);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q6_K), GGML_DOT_Q8_K);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q4_1), GGML_DOT_Q8_1);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q5_1), GGML_DOT_Q8_1);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q5_0), GGML_DOT_Q8_0);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_IQ4_NL), GGML_DOT_Q8_0);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q1_0), GGML_DOT_Q8_0);
    cr_expect_eq(tempo_ggml_dot_type(WEIGHT_Q2_0), GGML_DOT_Q8_0);
    static const WeightType on_q8_k[] = {WEIGHT_Q2_K,   WEIGHT_Q3_K,    WEIGHT_IQ4_XS, WEIGHT_TQ1_0, WEIGHT_TQ2_0, WEIGHT_IQ2_XXS,
                                         WEIGHT_IQ2_XS, WEIGHT_IQ2_S,   WEIGHT_IQ3_XXS, WEIGHT_IQ3_S, WEIGHT_IQ1_S, WEIGHT_IQ1_M};
    for (size_t i = 0; i < sizeof on_q8_k / sizeof *on_q8_k; i++)
        cr_expect_eq(tempo_ggml_dot_type(on_q8_k[i]), GGML_DOT_Q8_K, "%s", tempo_weight_type_name(on_q8_k[i]));
}

/* ggml's Q8_0 block of 32 activations x: q_j = round-half-even(x_j 127/amax); returns d = f16(amax/127). */
static float q8_0_block_reference(const float *x, int *q) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    for (int j = 0; j < 32; j++) q[j] = (int)nearbyintf(x[j] * (127.0f / amax));
    return half(amax / 127.0f);
}

/* The ggml matmul on a Q8_0 matrix equals ggml's formula: per block,
 * f16(d_w) f16(d_x) sum_j q_w q_x, with q_x the activations' Q8_0 blocks. */
Test(numerics, ggml_matmul_is_ggml_block_formula_on_q8_0) {
    enum { M = 96, D = 3, N = 2, BLOCKS = M / 32 };
    uint8_t w[D][BLOCKS][34];
    uint64_t seed = 5;
    for (int r = 0; r < D; r++)
        for (int b = 0; b < BLOCKS; b++) {
            uint16_t dh = tempo_f32_to_f16(0.01f * (1 + r + b));
            memcpy(w[r][b], &dh, 2);
            for (int j = 0; j < 32; j++) w[r][b][2 + j] = (uint8_t)(int8_t)(tempo_normal(&seed) * 40);
        }
    float in[N][M], out[N][D];
    for (int i = 0; i < N; i++)
        for (int t = 0; t < M; t++) in[i][t] = (float)tempo_normal(&seed) * (i + 1);
    const Kernels *k = tempo_ggml_kernels(0, 0, 1);
    float *scratch = malloc(k->matmul_scratch(N, M) * sizeof(float) + 64);
    k->matmul(&out[0][0], &in[0][0], (Matrix){w, WEIGHT_Q8_0}, N, M, D, scratch);
    for (int i = 0; i < N; i++)
        for (int r = 0; r < D; r++) {
            double want = 0.0;
            for (int b = 0; b < BLOCKS; b++) {
                int q[32];
                float dx = q8_0_block_reference(in[i] + b * 32, q);
                long isum = 0;
                for (int j = 0; j < 32; j++) isum += (long)(int8_t)w[r][b][2 + j] * q[j];
                want += (double)tempo_f16_at(w[r][b]) * dx * isum;
            }
            cr_expect(fabs(out[i][r] - want) <= 1e-5 * (1 + fabs(want)), "row %d out %d: %.9g, ggml %.9g", i, r, out[i][r], want);
        }
    free(scratch);
}

/* Q4_0 rows (scales 0.01 (1 + r + b), nibbles seeded) and activations for the repack tests. */
enum { RM = 96, RD = 8, RN = 5, RBLOCKS = RM / 32 };
static void q4_0_case(uint8_t w[RD][RBLOCKS][18], float in[RN][RM]) {
    uint64_t seed = 11;
    for (int r = 0; r < RD; r++)
        for (int b = 0; b < RBLOCKS; b++) {
            uint16_t dh = tempo_f32_to_f16(0.01f * (1 + r + b));
            memcpy(w[r][b], &dh, 2);
            for (int j = 0; j < 16; j++) w[r][b][2 + j] = (uint8_t)(tempo_splitmix64(&seed) & 255);
        }
    for (int i = 0; i < RN; i++)
        for (int t = 0; t < RM; t++) in[i][t] = (float)tempo_normal(&seed) * (i + 1);
}

/* Repacked Q4_0 (q4_0_8x8, ggml_gemv/gemm_q4_0_8x8_q8_0): per block the
 * exact integer sum of (nibble - 8) q_x, then acc = fma(sum, f32(d_w d_x), acc),
 * bit for bit; a matrix of 8 rows is repacked, one of 4 is not (vec_dot's order). */
Test(numerics, repacked_q4_0_is_one_fma_per_block) {
    uint8_t w[RD][RBLOCKS][18];
    float in[RN][RM], out[RN][RD], plain[RN][RD];
    q4_0_case(w, in);
    const Kernels *repacked = tempo_ggml_kernels(0, 0, 1), *stored = tempo_ggml_kernels(0, 0, 0);
    float *scratch = malloc(repacked->matmul_scratch(RN, RM) * sizeof(float) + 64);
    repacked->matmul(&out[0][0], &in[0][0], (Matrix){w, WEIGHT_Q4_0}, RN, RM, RD, scratch);
    stored->matmul(&plain[0][0], &in[0][0], (Matrix){w, WEIGHT_Q4_0}, RN, RM, RD, scratch);
    int differ = 0;
    for (int i = 0; i < RN; i++)
        for (int r = 0; r < RD; r++) {
            float acc = 0.0f;
            for (int b = 0; b < RBLOCKS; b++) {
                int q[32], isum = 0;
                float dx = q8_0_block_reference(in[i] + b * 32, q);
                for (int j = 0; j < 32; j++) isum += ((j < 16 ? w[r][b][2 + j] & 15 : w[r][b][2 + j - 16] >> 4) - 8) * q[j];
                acc = fmaf((float)isum, tempo_f16_at(w[r][b]) * dx, acc);
            }
            cr_expect_eq(out[i][r], acc, "row %d out %d: %.9g, want %.9g", i, r, out[i][r], acc);
            differ += out[i][r] != plain[i][r];
        }
    cr_expect_gt(differ, 0, "repack on and off computed the same values: the repacked order is not used");
    float four[RN][4], four_plain[RN][4]; /* 4 rows: not repacked (llama.cpp needs a multiple of 8) */
    repacked->matmul(&four[0][0], &in[0][0], (Matrix){w, WEIGHT_Q4_0}, RN, RM, 4, scratch);
    stored->matmul(&four_plain[0][0], &in[0][0], (Matrix){w, WEIGHT_Q4_0}, RN, RM, 4, scratch);
    cr_expect(memcmp(four, four_plain, sizeof four) == 0, "a 4-row Q4_0 matrix took the repacked order");
    cr_expect(tempo_ggml_repacks(WEIGHT_Q4_0, 16) && !tempo_ggml_repacks(WEIGHT_Q4_0, 12) && !tempo_ggml_repacks(WEIGHT_Q8_0, 16));
    cr_expect(tempo_ggml_repacks(WEIGHT_Q4_K, 16) && !tempo_ggml_repacks(WEIGHT_Q4_K, 12) && !tempo_ggml_repacks(WEIGHT_Q6_K, 16));
    free(scratch);
}

/* Attention inputs of one head over n keys (head_dim 8), seeded. */
typedef struct { Config c; float q[8], keys[4 * 8], values[4 * 8]; uint8_t allowed[4]; } OneHead;
static void one_head(OneHead *h, int n, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->c.head_dim = 8, h->c.n_heads = 1, h->c.n_kv_heads = 1;
    for (int t = 0; t < 8; t++) h->q[t] = (float)tempo_normal(&seed);
    for (int t = 0; t < n * 8; t++) h->keys[t] = half((float)tempo_normal(&seed)), h->values[t] = half((float)tempo_normal(&seed));
    for (int j = 0; j < n; j++) h->allowed[j] = 1;
}

/* Without flash attention, an f16 cache: scores from f16(q) and K, P rounded to f16 before P V. */
Test(numerics, f16_cache_attention_rounds_q_and_p) {
    OneHead h;
    one_head(&h, 4, 9);
    h.allowed[2] = 0;
    float out[8], probs[4];
    Mask mask = tempo_mask_dense(h.allowed, 1, 3, 1, 4); /* the one new row is row 3 */
    AttentionInputs a = {.q = h.q, .keys = h.keys, .values = h.values, .mask = &mask, .k = 1, .n_keys = 4};
    const Kernels *k = tempo_ggml_kernels(1, 0, 1);
    float *scores = malloc(k->attention_scratch(&h.c, 1, 4) * sizeof(float));
    k->attention(&h.c, &a, out, scores, probs);
    free(scores);
    float s[4];
    for (int j = 0; j < 4; j++) {
        double dot = 0.0;
        for (int t = 0; t < 8; t++) dot += half(h.q[t]) * h.keys[j * 8 + t];
        s[j] = (float)dot / sqrtf(8.0f);
    }
    tempo_softmax(s, h.allowed, 4);
    for (int j = 0; j < 4; j++) cr_expect(fabsf(probs[j] - s[j]) <= 1e-6f, "p[%d] %g, want %g", j, probs[j], s[j]);
    cr_expect_eq(probs[2], 0.0f);
    for (int t = 0; t < 8; t++) {
        double want = 0.0;
        for (int j = 0; j < 4; j++) want += half(s[j]) * h.values[j * 8 + t];
        cr_expect(fabs(out[t] - want) <= 1e-6, "out[%d] %g, want %g", t, out[t], want);
    }
}

/* Flash attention: one key gives f16(v) exactly; masked keys are skipped; the
 * f16 accumulator keeps the result within f16 rounding of the exact attention. */
Test(numerics, flash_attention_accumulates_in_f16) {
    OneHead h;
    one_head(&h, 4, 11);
    const Kernels *flash = tempo_ggml_kernels(0, 1, 1);
    float out[8], scores[4], exact[8];
    Mask mask_one = tempo_mask_dense(h.allowed, 1, 0, 1, 1), mask_four = tempo_mask_dense(h.allowed, 1, 3, 1, 4);
    AttentionInputs one = {.q = h.q, .keys = h.keys, .values = h.values, .mask = &mask_one, .k = 1, .n_keys = 1};
    flash->attention(&h.c, &one, out, scores, NULL);
    for (int t = 0; t < 8; t++) cr_expect_eq(out[t], h.values[t], "one key: out[%d] %g != v %g", t, out[t], h.values[t]);
    h.allowed[0] = 0;
    AttentionInputs four = {.q = h.q, .keys = h.keys, .values = h.values, .mask = &mask_four, .k = 1, .n_keys = 4};
    flash->attention(&h.c, &four, out, scores, NULL);
    tempo_plain_kernels.attention(&h.c, &four, exact, scores, NULL);
    int differs = 0;
    for (int t = 0; t < 8; t++) {
        cr_expect(fabsf(out[t] - exact[t]) <= 4e-3f * (1 + fabsf(exact[t])), "out[%d] %g, exact %g", t, out[t], exact[t]);
        differs |= out[t] != exact[t];
    }
    cr_expect(differs, "flash attention gave the exact attention: its f16 accumulator was not used");
}

/* The f16 cache stores K and V rounded; the f32 ggml kernels store them as they are. */
Test(numerics, cache_store_follows_the_cache_type) {
    float v[2] = {1.0f + ldexpf(1.0f, -12), 0.1f};
    cr_expect_null(tempo_ggml_kernels(0, 0, 1)->cache_store);
    tempo_ggml_kernels(1, 0, 1)->cache_store(v, 2);
    cr_expect_eq(v[0], 1.0f);
    cr_expect_eq(v[1], half(0.1f));
    cr_expect_eq(tempo_ggml_kernels(1, 1, 1), tempo_ggml_kernels(0, 1, 1), "flash attention stores f16 whatever the cache type");
}

/* The switch: kernels and RoPE angles per profile; settings outside ggml refused. */
Test(numerics, profiles_set_kernels_and_rope) {
    Model m;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_model_load(&m, BUILD_DIR "/synth-tied.bin", err) == 0, "%s", err);
    Numerics n = {.profile = NUMERICS_GGML, .kv_f16 = 1};
    cr_assert(tempo_model_set_numerics(&m, &n, err) == 0, "%s", err);
    cr_expect_eq(m.kernels, tempo_ggml_kernels(1, 0, 1));
    cr_expect_eq(m.rope_angles, ROPE_ANGLES_GGML);
    n = (Numerics){.profile = NUMERICS_TORCH};
    cr_assert(tempo_model_set_numerics(&m, &n, err) == 0, "%s", err);
    cr_expect_eq(m.kernels, &tempo_fast_kernels);
    cr_expect_eq(m.rope_angles, ROPE_ANGLES_TORCH);
    n = (Numerics){.profile = NUMERICS_EXACT, .flash_attn = 1};
    cr_expect(tempo_model_set_numerics(&m, &n, err) == -1 && strstr(err, "--numerics ggml"), "%s", err);
    n = (Numerics){.profile = NUMERICS_EXACT, .repack_off = 1};
    cr_expect(tempo_model_set_numerics(&m, &n, err) == -1 && strstr(err, "--numerics ggml"), "%s", err);
    n = (Numerics){.profile = NUMERICS_GGML, .repack_off = 1};
    cr_assert(tempo_model_set_numerics(&m, &n, err) == 0, "%s", err);
    cr_expect_eq(m.kernels, tempo_ggml_kernels(0, 0, 0), "repack off: the plain Q4_0 order");
    NumericsProfile p;
    cr_expect(tempo_numerics_parse("ggml", &p, err) == 0 && p == NUMERICS_GGML);
    cr_expect(tempo_numerics_parse("fast", &p, err) == -1 && strstr(err, "exact, ggml or torch"), "%s", err);
    tempo_model_free(&m);
}

/* ---- ggml_dot.c: the AVX-512 orders, against the instructions themselves ---- */

/* _mm512_reduce_add_ps adds halves: lanes 0 and 8 cancel before the two 1s
 * meet 2^24; summed in lane order (or adjacent pairs) the 1s are lost. */
Test(numerics, hsum16_adds_halves) {
    float lane[16] = {0};
    lane[0] = 0x1p24f, lane[8] = -0x1p24f, lane[1] = 1.0f, lane[2] = 1.0f;
    cr_expect_eq(tempo_ggml_hsum16(lane), 2.0f);
#if defined(__AVX512F__)
    uint64_t seed = 3;
    for (int trial = 0; trial < 200; trial++) {
        for (int j = 0; j < 16; j++) lane[j] = (float)tempo_normal(&seed) * ldexpf(1.0f, (int)(tempo_normal(&seed) * 12));
        __m512 v = _mm512_loadu_ps(lane);
        cr_assert_eq(tempo_ggml_hsum16(lane), _mm512_reduce_add_ps(v), "trial %d", trial);
    }
#endif
}

/* dpbf16ps: acc + odd product, rounded, then + even product, rounded; subnormals flushed. */
Test(numerics, dpbf16_adds_odd_then_even_each_rounded) {
    cr_expect_eq(tempo_ggml_dpbf16(0x1p24f, 1.0f, 1.0f, 1.5f, 1.0f), 0x1p24f + 2.0f, "odd first: 2^24+1 ties to 2^24, + 1.5");
    cr_expect_eq(tempo_ggml_dpbf16(0x1p24f, 1.0f, 1.0f, 1.0f, 1.0f), 0x1p24f, "each sum rounded, not both at once");
    cr_expect_eq(tempo_ggml_dpbf16(0.0f, 0x1p-130f, 0x1p10f, 0.0f, 0.0f), 0.0f, "a subnormal input is read as 0");
    cr_expect_eq(tempo_ggml_dpbf16(0.0f, 0x1p-70f, 0x1p-70f, 0.0f, 0.0f), 0.0f, "a subnormal result is flushed");
#if defined(__AVX512BF16__)
    uint64_t seed = 8;
    uint16_t a[32], b[32];
    float acc[16], out[16];
    for (int trial = 0; trial < 200; trial++) {
        for (int j = 0; j < 32; j++) { /* now and then a subnormal */
            int scale = trial % 7 == 0 && j % 5 == 0 ? -135 : (int)(tempo_normal(&seed) * 6);
            a[j] = tempo_f32_to_bf16((float)tempo_normal(&seed) * ldexpf(1.0f, scale));
            b[j] = tempo_f32_to_bf16((float)tempo_normal(&seed));
        }
        for (int j = 0; j < 16; j++) acc[j] = (float)tempo_normal(&seed) * 4.0f;
        __m512 r = _mm512_dpbf16_ps(_mm512_loadu_ps(acc), (__m512bh)_mm512_loadu_si512(a), (__m512bh)_mm512_loadu_si512(b));
        _mm512_storeu_ps(out, r);
        for (int j = 0; j < 16; j++) {
            float want = tempo_ggml_dpbf16(acc[j], tempo_bf16_to_f32(a[2 * j + 1]), tempo_bf16_to_f32(b[2 * j + 1]),
                                           tempo_bf16_to_f32(a[2 * j]), tempo_bf16_to_f32(b[2 * j]));
            cr_assert_eq(out[j], want, "trial %d lane %d: dpbf16ps %.9g, emulated %.9g", trial, j, out[j], want);
        }
    }
#endif
}

#if defined(__AVX512F__)
/* tinyBLAS<16>'s inner loop: one __m512 accumulator, _mm512_fmadd_ps, reduce. */
static float tinyblas_by_instructions(const float *w, const float *x, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int l = 0; l < n; l += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(w + l), _mm512_loadu_ps(x + l), acc);
    return _mm512_reduce_add_ps(acc);
}

/* ggml_vec_dot_f32's AVX-512 loop (n a multiple of 64): 4 accumulators, reduced (0+2, 1+3, 0+1). */
static float vec_dot_by_instructions(const float *w, const float *x, int n) {
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < n; i += 64)
        for (int j = 0; j < 4; j++) s[j] = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16 * j), _mm512_loadu_ps(x + i + 16 * j), s[j]);
    s[0] = _mm512_add_ps(s[0], s[2]), s[1] = _mm512_add_ps(s[1], s[3]);
    return _mm512_reduce_add_ps(_mm512_add_ps(s[0], s[1]));
}
#endif

/* The two orders of a product (tinyBLAS for calls of 2+ rows, vec_dot for
 * one) are the instructions' own, and they differ from each other. */
Test(numerics, ggml_dot_follows_tinyblas_and_vec_dot) {
    enum { N = 256 };
    float w[N], x[N];
    uint64_t seed = 12;
    int orders_differ = 0;
    for (int trial = 0; trial < 50; trial++) {
        for (int t = 0; t < N; t++) w[t] = (float)tempo_normal(&seed), x[t] = (float)tempo_normal(&seed) * 3.0f;
        orders_differ |= tempo_ggml_dot(GGML_DOT_F32, 1, w, x, N) != tempo_ggml_dot(GGML_DOT_F32, 0, w, x, N);
#if defined(__AVX512F__)
        float w16[N], x16[N];
        for (int t = 0; t < N; t++) w16[t] = half(w[t]), x16[t] = half(x[t]);
        cr_assert_eq(tempo_ggml_dot(GGML_DOT_F32, 1, w, x, N), tinyblas_by_instructions(w, x, N), "trial %d", trial);
        cr_assert_eq(tempo_ggml_dot(GGML_DOT_F32, 0, w, x, N), vec_dot_by_instructions(w, x, N), "trial %d", trial);
        cr_assert_eq(tempo_ggml_dot(GGML_DOT_F16, 1, w16, x16, N), tinyblas_by_instructions(w16, x16, N), "trial %d", trial);
        cr_assert_eq(tempo_ggml_dot(GGML_DOT_F16, 0, w16, x16, N), vec_dot_by_instructions(w16, x16, N), "trial %d", trial);
#endif
    }
    cr_expect(orders_differ, "tinyBLAS and vec_dot summed alike on 50 random rows");
    cr_expect(tempo_ggml_tinyblas(GGML_DOT_F16, 2, 64, 256) && !tempo_ggml_tinyblas(GGML_DOT_F16, 1, 64, 256));
    cr_expect(!tempo_ggml_tinyblas(GGML_DOT_F32, 4, 64, 258), "tinyBLAS takes d a multiple of 4 only");
    cr_expect(tempo_ggml_tinyblas(GGML_DOT_F16, 4, 16, 4) && !tempo_ggml_tinyblas(GGML_DOT_BF16, 4, 16, 4), "bf16 steps by 32");
}

/* The one-row bf16 product: two dpbf16ps accumulators (the halves of each
 * 64 values), each reduced, added in double; its leftovers in double too. */
Test(numerics, ggml_dot_bf16_one_row_is_two_accumulators) {
    enum { N = 64 + 3 };
    float w[N], x[N];
    uint64_t seed = 21;
    for (int t = 0; t < N; t++) w[t] = tempo_bf16_to_f32(tempo_f32_to_bf16((float)tempo_normal(&seed))), x[t] = t < 64 ? 0.0f : 1.0f;
    float c[2][16] = {{0}};
    x[0] = 1.0f, x[33] = 1.0f; /* lane 0 of c1 (value 0, an even one) and of c2 (value 33, odd) */
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 16; j++)
            c[h][j] = tempo_ggml_dpbf16(0.0f, w[32 * h + 2 * j + 1] * x[32 * h + 2 * j + 1], 1.0f, w[32 * h + 2 * j] * x[32 * h + 2 * j], 1.0f);
    double want = (double)tempo_ggml_hsum16(c[0]) + (double)tempo_ggml_hsum16(c[1]);
    for (int t = 64; t < N; t++) want += (double)(w[t] * x[t]);
    cr_expect_eq(tempo_ggml_dot(GGML_DOT_BF16, 0, w, x, N), (float)want);
}

#if defined(__AVX512F__)
/* ggml_v_expf as vec.h writes it with AVX-512 (the definition the scalar copy follows). */
static float v_expf_by_instructions(float x1) {
    __m512 x = _mm512_set1_ps(x1), r = _mm512_set1_ps(0x1.8p23f);
    __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r), n = _mm512_sub_ps(z, r);
    __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    __m512 u = _mm512_mul_ps(b, b);
    __m512 j = _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                                               _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
                               u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0F)));
    __m512 res = _mm512_scalef_ps(j, n);
    __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ), _mm512_set1_ps(INFINITY),
                                      _mm512_setzero_ps());
    return _mm512_cvtss_f32(_mm512_mask_blend_ps(d, res, alt));
}
#endif

/* ggml's softmax exp: its own polynomial (not libm's expf, from which it
 * differs by an ulp now and then), 0 at -inf and far below, inf far above. */
Test(numerics, ggml_expf_is_ggml_v_expf) {
    cr_expect_eq(tempo_ggml_expf(0.0f), 1.0f);
    cr_expect_eq(tempo_ggml_expf(-INFINITY), 0.0f);
    cr_expect_eq(tempo_ggml_expf(-200.0f), 0.0f);
    cr_expect(isinf(tempo_ggml_expf(200.0f)));
    uint64_t seed = 4;
    int differs_from_libm = 0;
    for (int trial = 0; trial < 20000; trial++) {
        float x = (float)tempo_normal(&seed) * 20.0f;
        float e = tempo_ggml_expf(x), want = expf(x);
        cr_assert(fabsf(e - want) <= 4e-7f * want, "x %.9g: %.9g, libm %.9g", x, e, want);
        differs_from_libm |= e != want;
#if defined(__AVX512F__)
        cr_assert_eq(e, v_expf_by_instructions(x), "x %.9g", x);
#endif
    }
    cr_expect(differs_from_libm, "ggml_v_expf equalled libm's expf on 20000 values");
}

/* ggml's RoPE and SwiGLU in the ggml Kernels: RoPE's products fused as
 * rotate_pairs compiles (a c - b s and a s + b c, one product each by fma);
 * SwiGLU with ggml_v_expf. */
Test(numerics, ggml_rope_and_swiglu) {
    const Kernels *k = tempo_ggml_kernels(0, 0, 1);
    cr_assert(k->rope_pair && k->swiglu && k->by_call);
    uint64_t seed = 17;
    int fused_differs = 0;
    for (int trial = 0; trial < 200; trial++) {
        float v[2] = {(float)tempo_normal(&seed), (float)tempo_normal(&seed)}, a = v[0], b = v[1];
        float c = cosf((float)trial * 0.37f), s = sinf((float)trial * 0.37f);
        k->rope_pair(&v[0], &v[1], c, s);
        cr_assert_eq(v[0], fmaf(a, c, -(b * s)));
        cr_assert_eq(v[1], fmaf(a, s, b * c));
        fused_differs |= v[0] != a * c - b * s || v[1] != a * s + b * c;
        float g = (float)tempo_normal(&seed), x = a;
        k->swiglu(&x, &g, 1);
        cr_assert_eq(x, a / (1.0f + tempo_ggml_expf(0.0f - a)) * g);
    }
    cr_expect(fused_differs, "the fused RoPE equalled the unfused one on 200 pairs");
}

/* ---- the vectorized float orders and attention (ggml_dot_avx.c, ggml_attention.c) ---- */

/* tempo_ggml_dot_fast is tempo_ggml_dot bit for bit: f32, f16 and bf16
 * values, both orders, lengths with and without leftovers. */
Test(numerics, fast_float_dots_are_bitwise_plain) {
    enum { N = 300 };
    static const int lengths[] = {1, 7, 16, 40, 63, 64, 65, 96, 128, 130, 192, 256, 300};
    static const GgmlDotType types[] = {GGML_DOT_F32, GGML_DOT_F16, GGML_DOT_BF16};
    float w[N], x[N];
    uint64_t seed = 31;
    for (int trial = 0; trial < 20; trial++)
        for (int ti = 0; ti < 3; ti++) {
            for (int t = 0; t < N; t++) w[t] = (float)tempo_normal(&seed), x[t] = (float)tempo_normal(&seed) * (trial + 1);
            tempo_ggml_round_activations(types[ti], w, N, w);
            tempo_ggml_round_activations(types[ti], x, N, x);
            for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
                for (int batched = 0; batched < 2; batched++) {
                    int n = lengths[li];
                    if (batched && !tempo_ggml_tinyblas(types[ti], 2, n, 4)) continue; /* tinyBLAS takes whole steps only */
                    float fast = tempo_ggml_dot_fast(types[ti], batched, w, x, n), plain = tempo_ggml_dot(types[ti], batched, w, x, n);
                    cr_assert(same_value(fast, plain), "type %d n %d batched %d: fast %.9g, plain %.9g", ti, n, batched, fast, plain);
                }
        }
}

/* tempo_ggml_dots_fast (16 rows' hsums reduced together) is tempo_ggml_dot
 * row by row, bit for bit: tinyBLAS and vec_dot (with and without
 * leftovers), 1 to 40 rows (partial passes), rows apart by more than their
 * length, f32 and f16 values, magnitudes that differ by lane (a pairing of
 * lanes other than hsum16's shows). */
Test(numerics, fast_float_dots_of_many_rows_are_bitwise_plain) {
    enum { N = 144, ROWS = 40, STRIDE = N + 3 };
    static float w[ROWS * STRIDE], x[N], out[ROWS + 1];
    static const GgmlDotType types[] = {GGML_DOT_F32, GGML_DOT_F16};
    uint64_t seed = 47;
    for (int trial = 0; trial < 60; trial++) {
        GgmlDotType t = types[trial % 2];
        int rows = 1 + trial % ROWS, batched = trial % 3 != 2;
        int n = batched ? 16 * (1 + trial % 8) : 64 * (1 + trial % 2) + (trial % 4 == 1 ? 16 : 0); /* vec_dot: leftovers or not */
        for (int j = 0; j < ROWS * STRIDE; j++) w[j] = (float)tempo_normal(&seed) * powf(10.0f, (float)(j % 16 - 8) * (trial % 3));
        for (int j = 0; j < N; j++) x[j] = (float)tempo_normal(&seed);
        tempo_ggml_round_activations(t, w, ROWS * STRIDE - ROWS * STRIDE % 32, w);
        tempo_ggml_round_activations(t, x, N, x);
        out[rows] = -7.0f;
        tempo_ggml_dots_fast(t, batched, w, STRIDE, rows, x, n, out);
        cr_assert(out[rows] == -7.0f, "trial %d: wrote past %d rows", trial, rows);
        for (int r = 0; r < rows; r++) {
            float want = tempo_ggml_dot(t, batched, w + r * STRIDE, x, n);
            cr_assert(same_value(out[r], want), "trial %d type %d rows %d n %d batched %d: row %d %.9g, plain %.9g", trial, (int)t,
                      rows, n, batched, r, out[r], want);
        }
    }
}

/* The softmax's exponentials and their sum: masked (-inf) scores, scores so
 * low that ggml_v_expf underflows to subnormals (2^n below 2^-126) or to 0. */
Test(numerics, fast_exp_sum_is_bitwise_plain) {
    enum { N = 96 };
    float fast[N], plain[N];
    uint64_t seed = 37;
    for (int trial = 0; trial < 200; trial++) {
        for (int j = 0; j < N; j++) {
            double r = tempo_normal(&seed);
            fast[j] = trial % 4 == 0 && j % 5 == 0 ? -INFINITY : (float)(r * (trial % 4 == 1 ? 60.0 : 4.0));
        }
        memcpy(plain, fast, sizeof fast);
        float max = trial % 3 == 0 ? 0.0f : 20.0f;
        double sum_fast = tempo_ggml_exp_sum_fast(fast, N, max), sum_plain = tempo_ggml_exp_sum(plain, N, max);
        cr_assert(sum_fast == sum_plain, "trial %d: sum %.17g, plain %.17g", trial, sum_fast, sum_plain);
        for (int j = 0; j < N; j++) cr_assert(same_value(fast[j], plain[j]), "trial %d p[%d] %g, plain %g", trial, j, fast[j], plain[j]);
    }
    float tiny[16] = {-100.0f, -90.0f, -88.0f, -87.5f, -104.0f, -200.0f, -INFINITY, 0.0f}, tiny_plain[16];
    memcpy(tiny_plain, tiny, sizeof tiny);
    cr_assert(tempo_ggml_exp_sum_fast(tiny, 16, 0.0f) == tempo_ggml_exp_sum(tiny_plain, 16, 0.0f));
    cr_assert(tiny_plain[0] > 0.0f && tiny_plain[0] < 0x1p-126f, "exp(-100) is subnormal: the case expf8 leaves to the plain one");
    for (int j = 0; j < 16; j++) cr_assert(same_value(tiny[j], tiny_plain[j]), "tiny p[%d] %g, plain %g", j, tiny[j], tiny_plain[j]);
}

/* SwiGLU fast against plain: ordinary gates and inputs large enough that e^-x leaves expf8's range. */
Test(numerics, fast_swiglu_is_bitwise_plain) {
    enum { N = 203 };
    float fast[N], plain[N], g[N];
    uint64_t seed = 47;
    for (int trial = 0; trial < 50; trial++) {
        for (int t = 0; t < N; t++) {
            fast[t] = plain[t] = (float)(tempo_normal(&seed) * (trial % 2 ? 4.0 : 60.0));
            g[t] = (float)tempo_normal(&seed);
        }
        tempo_ggml_swiglu_fast(fast, g, N), tempo_ggml_swiglu(plain, g, N);
        for (int t = 0; t < N; t++) cr_assert(same_value(fast[t], plain[t]), "trial %d x[%d] %.9g, plain %.9g", trial, t, fast[t], plain[t]);
    }
}

/* Flash attention's f16 accumulator steps, fast against plain: ties, f16 subnormals, overflow. */
Test(numerics, fast_f16_accumulator_is_bitwise_plain) {
    enum { N = 37 };
    float acc_fast[N], acc_plain[N], v[N];
    uint64_t seed = 41;
    for (int trial = 0; trial < 100; trial++) {
        for (int t = 0; t < N; t++) {
            double scale = trial % 3 == 0 ? 1e-6 : trial % 3 == 1 ? 3e4 : 1.0;
            acc_fast[t] = acc_plain[t] = (float)(tempo_normal(&seed) * scale);
            v[t] = half((float)(tempo_normal(&seed) * scale));
        }
        float vs = (float)fabs(tempo_normal(&seed)) * 2.0f, ms = (float)fabs(tempo_normal(&seed));
        tempo_ggml_f16_fma_fast(acc_fast, v, vs, N), tempo_ggml_f16_fma(acc_plain, v, vs, N);
        tempo_ggml_f16_scale_fast(acc_fast, ms, N), tempo_ggml_f16_scale(acc_plain, ms, N);
        for (int t = 0; t < N; t++) cr_assert(same_value(acc_fast[t], acc_plain[t]), "trial %d acc[%d] %g, plain %g", trial, t, acc_fast[t], acc_plain[t]);
    }
}

/* Random attention inputs: 4 query heads over 2 K/V heads, `k` new rows
 * after `n_keys - k` cached, K and V rounded to f16 when `f16`. */
typedef struct { Config c; float *q, *keys, *values; uint8_t *allowed; } Heads;
static Heads random_heads(int hd, int k, int n_keys, int f16, int dense, uint64_t *seed) {
    Heads h = {.c = {.head_dim = hd, .n_heads = 4, .n_kv_heads = 2}};
    h.q = malloc(sizeof(float) * k * 4 * hd), h.keys = malloc(sizeof(float) * n_keys * 2 * hd);
    h.values = malloc(sizeof(float) * n_keys * 2 * hd), h.allowed = malloc((size_t)k * n_keys);
    for (int t = 0; t < k * 4 * hd; t++) h.q[t] = (float)tempo_normal(seed);
    for (int t = 0; t < n_keys * 2 * hd; t++) {
        h.keys[t] = (float)tempo_normal(seed), h.values[t] = (float)tempo_normal(seed);
        if (f16) h.keys[t] = half(h.keys[t]), h.values[t] = half(h.values[t]);
    }
    for (int i = 0; i < k; i++) /* causal, or a random mask that keeps each row's own key */
        for (int j = 0; j < n_keys; j++)
            h.allowed[(size_t)i * n_keys + j] = dense ? (j == n_keys - k + i || tempo_normal(seed) > 0.3) : j <= n_keys - k + i;
    return h;
}

static void free_heads(Heads *h) { free(h->q), free(h->keys), free(h->values), free(h->allowed); }

/* One call of a ggml attention kernel on `threads` threads (0: the plain definition). */
static void run_attention(GgmlAttention kind, const Heads *h, int k, int n_keys, int threads, float *out, float *probs) {
    const Kernels *kern = tempo_ggml_kernels(kind == GGML_ATTENTION_F16_CACHE, kind == GGML_ATTENTION_FLASH, 1);
    Mask mask = tempo_mask_dense(h->allowed, 1, n_keys - k, k, n_keys);
    AttentionInputs a = {.q = h->q, .keys = h->keys, .values = h->values, .mask = &mask, .k = k, .n_keys = n_keys};
    omp_set_num_threads(threads ? threads : 1);
    float *scratch = malloc(kern->attention_scratch(&h->c, k, n_keys) * sizeof(float));
    if (threads) kern->attention(&h->c, &a, out, scratch, probs);
    else tempo_ggml_attention_plain(kind, &h->c, &a, out, scratch, probs);
    free(scratch);
    omp_set_num_threads(omp_get_num_procs());
}

/* The three attention kernels equal their plain definitions bit for bit,
 * outputs and kept probabilities, on 1, 2 and 3 threads: head widths with
 * and without vec_dot leftovers, one row and many, odd key counts, causal
 * and random masks. */
Test(numerics, fast_ggml_attention_is_bitwise_plain_on_any_threads) {
    static const int shapes[][3] = {{64, 1, 1}, {64, 5, 77}, {64, 70, 70}, {40, 3, 130}, {16, 9, 9}, {128, 2, 200}};
    uint64_t seed = 43;
    for (int kind = GGML_ATTENTION_F32_CACHE; kind <= GGML_ATTENTION_FLASH; kind++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int dense = 0; dense < 2; dense++) {
                int hd = shapes[si][0], k = shapes[si][1], n_keys = shapes[si][2];
                Heads h = random_heads(hd, k, n_keys, kind != GGML_ATTENTION_F32_CACHE, dense, &seed);
                size_t n_out = (size_t)k * 4 * hd, n_probs = (size_t)4 * k * n_keys;
                float *want = malloc(n_out * sizeof(float)), *want_p = malloc(n_probs * sizeof(float));
                float *got = malloc(n_out * sizeof(float)), *got_p = malloc(n_probs * sizeof(float));
                run_attention(kind, &h, k, n_keys, 0, want, want_p);
                for (int threads = 1; threads <= 3; threads++) {
                    run_attention(kind, &h, k, n_keys, threads, got, got_p);
                    for (size_t t = 0; t < n_out; t++)
                        cr_assert(same_value(got[t], want[t]), "kind %d shape %zu dense %d threads %d: out[%zu] %.9g, plain %.9g", kind, si,
                                  dense, threads, t, got[t], want[t]);
                    for (size_t t = 0; t < n_probs; t++)
                        cr_assert(same_value(got_p[t], want_p[t]), "kind %d shape %zu threads %d: p[%zu] %.9g, plain %.9g", kind, si,
                                  threads, t, got_p[t], want_p[t]);
                }
                free(want), free(want_p), free(got), free(got_p), free_heads(&h);
            }
}
