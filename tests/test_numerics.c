/* The numerics profiles (kernels/ggml.c, kernels/numerics.c): ggml's
 * activation round trips against values worked out from ggml's rules, the
 * ggml matmul against ggml's own block formula, the f16 cache and flash
 * attention against their definitions, and the profile switch. */
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

/* ---- ggml's quantized dot products (kernels/ggml_dots.c, ggml_dots_avx.c) ---- */

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

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

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
#elif defined(__AVX2__) && defined(__F16C__)
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
                cr_assert(same_float(out[3 * i], want), "type %d trial %d m %d row %d of %d: fast %.9g, plain %.9g", (int)t, trial,
                          m, i, k, out[3 * i], want);
            }
            float one; /* a call of one row (decoding): IQ4_NL in vec_dot's order */
            tempo_ggml_dot_weight_rows_fast(t, w, 0, 1, x[0], m, &one);
            float want_one = t == WEIGHT_IQ4_NL ? tempo_ggml_iq4_nl_vec_dot(&TEMPO_GGML_INTS_PLAIN, w, x[0], m) : tempo_ggml_dot_plain(t, w, x[0], m);
            cr_assert(same_float(one, want_one), "type %d trial %d m %d, one row: fast %.9g, plain %.9g", (int)t, trial, m, one, want_one);
            if (t == WEIGHT_Q4_0 || t == WEIGHT_IQ4_NL) { /* repacked: one f32 sum */
                float fast = tempo_ggml_b32_8x8_dot_fast(t, w, x[0], m);
                float plain = t == WEIGHT_Q4_0 ? tempo_ggml_q4_0_8x8_dot(w, x[0].q, x[0].d, m)
                                               : tempo_ggml_iq4_nl_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, x[0], m);
                cr_assert(same_float(fast, plain), "type %d trial %d m %d, repacked: fast %.9g, plain %.9g", (int)t, trial, m, fast, plain);
            }
            if (t == WEIGHT_Q2_K) { /* repacked: gemv and gemm orders */
                float fast = tempo_ggml_q2_k_8x8_dot_fast(w, x[0], m, trial % 2);
                float plain = tempo_ggml_q2_k_8x8_dot(&TEMPO_GGML_INTS_PLAIN, w, x[0], m, trial % 2);
                cr_assert(same_float(fast, plain), "Q2_K trial %d m %d, repacked: fast %.9g, plain %.9g", trial, m, fast, plain);
            }
            if (t != WEIGHT_Q4_K) continue;
            for (int i = 0; i < k; i++) { /* the repacked orders */
                tempo_ggml_q4_k_8x8_rows_fast(w, 0, 1, x[i], m, trial % 2, out);
                float want = tempo_ggml_q4_k_8x8_dot(w, x[i], m, trial % 2);
                cr_assert(same_float(out[0], want), "q4_K_8x8 trial %d m %d row %d: fast %.9g, plain %.9g", trial, m, i, out[0], want);
            }
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
                            cr_assert(same_float(out[(size_t)i * d + r], want),
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
        differs |= !same_float(a, b);
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
                cr_assert(same_float(out[5 * c + r], want), "trial %d weight row %d activation row %d: tile %.9g, plain %.9g", trial,
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
                cr_assert(same_float(out[STRIDE * c + r], want), "trial %d m %d rows %d: weight row %d activation row %d: %.9g, want %.9g",
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
                    cr_assert(same_float(out[(size_t)i * rows + r], want), "n %d m %d d %d: row %d out %d: %.9g, plain %.9g", n, m,
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
                    cr_assert(same_float(out[i * D + r], want), "type %d threads %d row %d out %d: %.9g, plain %.9g", (int)t, threads, i,
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
                    cr_assert(same_float(fast, plain), "type %d n %d batched %d: fast %.9g, plain %.9g", ti, n, batched, fast, plain);
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
            cr_assert(same_float(out[r], want), "trial %d type %d rows %d n %d batched %d: row %d %.9g, plain %.9g", trial, (int)t,
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
        for (int j = 0; j < N; j++) cr_assert(same_float(fast[j], plain[j]), "trial %d p[%d] %g, plain %g", trial, j, fast[j], plain[j]);
    }
    float tiny[16] = {-100.0f, -90.0f, -88.0f, -87.5f, -104.0f, -200.0f, -INFINITY, 0.0f}, tiny_plain[16];
    memcpy(tiny_plain, tiny, sizeof tiny);
    cr_assert(tempo_ggml_exp_sum_fast(tiny, 16, 0.0f) == tempo_ggml_exp_sum(tiny_plain, 16, 0.0f));
    cr_assert(tiny_plain[0] > 0.0f && tiny_plain[0] < 0x1p-126f, "exp(-100) is subnormal: the case expf8 leaves to the plain one");
    for (int j = 0; j < 16; j++) cr_assert(same_float(tiny[j], tiny_plain[j]), "tiny p[%d] %g, plain %g", j, tiny[j], tiny_plain[j]);
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
        for (int t = 0; t < N; t++) cr_assert(same_float(fast[t], plain[t]), "trial %d x[%d] %.9g, plain %.9g", trial, t, fast[t], plain[t]);
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
        for (int t = 0; t < N; t++) cr_assert(same_float(acc_fast[t], acc_plain[t]), "trial %d acc[%d] %g, plain %g", trial, t, acc_fast[t], acc_plain[t]);
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
                        cr_assert(same_float(got[t], want[t]), "kind %d shape %zu dense %d threads %d: out[%zu] %.9g, plain %.9g", kind, si,
                                  dense, threads, t, got[t], want[t]);
                    for (size_t t = 0; t < n_probs; t++)
                        cr_assert(same_float(got_p[t], want_p[t]), "kind %d shape %zu threads %d: p[%zu] %.9g, plain %.9g", kind, si,
                                  threads, t, got_p[t], want_p[t]);
                }
                free(want), free(want_p), free(got), free(got_p), free_heads(&h);
            }
}
