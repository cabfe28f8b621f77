/* The numerics profiles (kernels/ggml.c, kernels/numerics.c): ggml's
 * activation round trips against values worked out from ggml's rules, the
 * ggml matmul against ggml's own block formula, the f16 cache and flash
 * attention against their definitions, and the profile switch. */
#include "helpers.h"

#include "../formats/quant.h"

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
    float out[8], scores[4], probs[4];
    Mask mask = tempo_mask_dense(h.allowed, 1, 3, 1, 4); /* the one new row is row 3 */
    AttentionInputs a = {.q = h.q, .keys = h.keys, .values = h.values, .mask = &mask, .k = 1, .n_keys = 4};
    tempo_ggml_kernels(1, 0, 1)->attention(&h.c, &a, out, scores, probs);
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
