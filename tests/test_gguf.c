/* GGUF: the block dequantizers on hand-built blocks whose values are worked
 * out here from the documented layouts; the strict reader on valid and
 * broken files; models, RoPE factors and tokenizers from GGUF files; the
 * quantized path against an f32 copy; stories260K converted to GGUF. */
#include "helpers.h"

#include "../formats/gguf.h"
#include "../tools/synth_gguf.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

Test(quant, block_sizes_match_ggml) {
    const int values[8] = {1, 1, 1, 32, 32, 256, 256, 256};
    const size_t bytes[8] = {4, 2, 2, 34, 18, 144, 176, 210};
    for (int t = 0; t < 8; t++) {
        cr_expect_eq(tempo_block_values((WeightType)t), values[t], "type %d", t);
        cr_expect_eq(tempo_block_bytes((WeightType)t), bytes[t], "type %d", t);
    }
    cr_expect_eq(tempo_row_bytes(WEIGHT_Q4_K, 512), 288);
}

Test(quant, half_and_bfloat_convert_exactly) {
    cr_expect_eq(tempo_f16_to_f32(0x3C00), 1.0f);
    cr_expect_eq(tempo_f16_to_f32(0xC000), -2.0f);
    cr_expect_eq(tempo_f16_to_f32(0x0001), ldexpf(1.0f, -24));
    cr_expect_eq(tempo_f16_to_f32(0x7BFF), 65504.0f);
    cr_expect(isinf(tempo_f16_to_f32(0x7C00)));
    cr_expect_eq(tempo_bf16_to_f32(0x3F80), 1.0f);
    for (uint32_t h = 0; h < 65536; h++) { /* every non-NaN half survives float and back */
        float v = tempo_f16_to_f32((uint16_t)h);
        if (!isnan(v)) cr_assert_eq(tempo_f32_to_f16(v), h, "half 0x%04x -> %g -> 0x%04x", h, v, tempo_f32_to_f16(v));
    }
    cr_expect_eq(tempo_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3C00, "a tie rounds to even");
}

Test(quant, q8_0_and_q4_0) {
    uint8_t q8[34], q4[18];
    float y[32];
    put16(q8, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 32; j++) q8[2 + j] = (uint8_t)(int8_t)(j - 16);
    tempo_dequantize(WEIGHT_Q8_0, q8, 32, y);
    for (int j = 0; j < 32; j++) cr_expect_eq(y[j], (j - 16) * 0.5f, "q8_0 value %d", j);
    put16(q4, 0x4000); /* d = 2 */
    for (int j = 0; j < 16; j++) q4[2 + j] = (uint8_t)(j | (15 - j) << 4);
    tempo_dequantize(WEIGHT_Q4_0, q4, 32, y);
    for (int j = 0; j < 16; j++) {
        cr_expect_eq(y[j], (j - 8) * 2.0f, "q4_0 value %d (low nibble)", j);
        cr_expect_eq(y[16 + j], (7 - j) * 2.0f, "q4_0 value %d (high nibble)", 16 + j);
    }
}

/* Scales sc_j = 10 + 7j and mins m_j = 3 + 8j (6 bits each) packed as ggml's K_SCALE_SIZE = 12 bytes. */
static void pack_k4_scales(uint8_t s[12], int sc[8], int mn[8]) {
    for (int j = 0; j < 8; j++) sc[j] = 10 + 7 * j, mn[j] = 3 + 8 * j;
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

/* Q4_K, and Q5_K (with_high): d = 1, dmin = 0.5; qs byte l of pair i holds
 * l%16 (sub-block 2i) and 15 - l%16 (sub-block 2i+1); Q5_K adds 16 where
 * bit 2i (l odd) or 2i+1 (l%4 == 0) of qh[l] is set. */
static void check_k4(WeightType t) {
    int five = t == WEIGHT_Q5_K, sc[8], mn[8];
    uint8_t b[176] = {0};
    float y[256];
    put16(b, 0x3C00), put16(b + 2, 0x3800);
    pack_k4_scales(b + 4, sc, mn);
    uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int i = 0; i < 4; i++)
        for (int l = 0; l < 32; l++) {
            qs[32 * i + l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
            if (five) qh[l] |= (uint8_t)((l % 2 ? 1 : 0) << (2 * i) | (l % 4 == 0 ? 2 : 0) << (2 * i));
        }
    tempo_dequantize(t, b, 256, y);
    for (int i = 0; i < 4; i++)
        for (int l = 0; l < 32; l++) {
            int q_lo = l % 16 + (five && l % 2 ? 16 : 0), q_hi = 15 - l % 16 + (five && l % 4 == 0 ? 16 : 0);
            cr_expect_eq(y[64 * i + l], (float)(sc[2 * i] * q_lo) - 0.5f * mn[2 * i], "%s value %d", tempo_weight_type_name(t), 64 * i + l);
            cr_expect_eq(y[64 * i + 32 + l], (float)(sc[2 * i + 1] * q_hi) - 0.5f * mn[2 * i + 1], "%s value %d",
                         tempo_weight_type_name(t), 64 * i + 32 + l);
        }
}

Test(quant, q4_k_six_bit_scales_and_mins) { check_k4(WEIGHT_Q4_K); }
Test(quant, q5_k_fifth_bit) { check_k4(WEIGHT_Q5_K); }

/* Q6_K: value v has q = v % 64 and scale sc[v/16] = ±3(k+1); d = 0.25; y = d sc (q - 32). */
Test(quant, q6_k_signed_scales) {
    uint8_t b[210] = {0};
    float y[256];
    int8_t *sc = (int8_t *)(b + 192);
    for (int k = 0; k < 16; k++) sc[k] = (int8_t)((k % 2 ? -3 : 3) * (k + 1));
    put16(b + 208, 0x3400);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            int q[4];
            for (int k = 0; k < 4; k++) q[k] = (128 * h + 32 * k + l) % 64;
            b[64 * h + l] = (uint8_t)((q[0] & 15) | (q[2] & 15) << 4);
            b[64 * h + l + 32] = (uint8_t)((q[1] & 15) | (q[3] & 15) << 4);
            b[128 + 32 * h + l] = (uint8_t)(q[0] >> 4 | (q[1] >> 4) << 2 | (q[2] >> 4) << 4 | (q[3] >> 4) << 6);
        }
    tempo_dequantize(WEIGHT_Q6_K, b, 256, y);
    for (int v = 0; v < 256; v++) cr_expect_eq(y[v], 0.25f * sc[v / 16] * (float)(v % 64 - 32), "q6_k value %d", v);
}
