/* The low-bit block types of issue 23 (Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K,
 * Q3_K, IQ4_XS, TQ1_0, TQ2_0, Q1_0, Q2_0) on hand-built blocks: each test packs chosen
 * values by ggml's documented layout (ggml-common.h) and checks that
 * tempo_dequantize gives them back, so a wrong offset, shift or bit order
 * fails here without llama.cpp. Files written by llama.cpp's own quantizer
 * are checked in tests/test_llama.py (make test-llama). */
#include "helpers.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

/* ggml's kvalues_iq4nl, as docs and ggml-common.h list them. */
static const int iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

Test(quant, low_bit_block_sizes_match_ggml) {
    struct { WeightType t; int values; size_t bytes; } want[] = {
        {WEIGHT_Q4_1, 32, 2 * 2 + 32 / 2},         {WEIGHT_Q5_0, 32, 2 + 4 + 32 / 2},    {WEIGHT_Q5_1, 32, 2 * 2 + 4 + 32 / 2},
        {WEIGHT_IQ4_NL, 32, 2 + 32 / 2},           {WEIGHT_Q2_K, 256, 2 * 2 + 256 / 16 + 256 / 4},
        {WEIGHT_Q3_K, 256, 2 + 256 / 4 + 256 / 8 + 12}, {WEIGHT_IQ4_XS, 256, 2 + 2 + 256 / 64 + 256 / 2},
        {WEIGHT_TQ1_0, 256, 2 + 256 / 64 + (256 - 4 * 256 / 64) / 5}, {WEIGHT_TQ2_0, 256, 2 + 256 / 4},
        {WEIGHT_Q1_0, 128, 2 + 128 / 8},           {WEIGHT_Q2_0, 64, 2 + 64 / 4}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_expect_eq(tempo_block_values(want[i].t), want[i].values, "%s", tempo_weight_type_name(want[i].t));
        cr_expect_eq(tempo_block_bytes(want[i].t), want[i].bytes, "%s", tempo_weight_type_name(want[i].t));
    }
}

/* Q4_1 (d = 2, m = -3): qs[j] holds j (value j) and 15 - j (value j + 16); y = q*d + m. */
Test(quant, q4_1_scale_and_min) {
    uint8_t b[20];
    float y[32];
    put16(b, 0x4000), put16(b + 2, 0xC200);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    tempo_dequantize(WEIGHT_Q4_1, b, 32, y);
    for (int j = 0; j < 16; j++) {
        cr_expect_eq(y[j], 2.0f * j - 3.0f, "q4_1 value %d", j);
        cr_expect_eq(y[16 + j], 2.0f * (15 - j) - 3.0f, "q4_1 value %d", 16 + j);
    }
}

/* The fifth bit of value v (Q5 tests): set when v % 3 == 0. */
static int fifth(int v) { return v % 3 == 0 ? 16 : 0; }

/* Q5_0 (d = 0.5) and Q5_1 (d = 0.5, m = 1.5): nibbles as Q4_1's, the fifth
 * bit of value v in bit v of the little-endian 32-bit qh. */
static void check_q5(WeightType t) {
    int one = t == WEIGHT_Q5_1;
    uint8_t b[24] = {0}, *qh = b + (one ? 4 : 2), *qs = qh + 4;
    float y[32];
    put16(b, 0x3800);
    if (one) put16(b + 2, 0x3E00);
    for (int v = 0; v < 32; v++) qh[v / 8] |= (uint8_t)((fifth(v) ? 1 : 0) << (v % 8));
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(j | (15 - j) << 4);
    tempo_dequantize(t, b, 32, y);
    for (int v = 0; v < 32; v++) {
        int q = (v < 16 ? v : 31 - v) + fifth(v);
        float want = one ? 0.5f * q + 1.5f : 0.5f * (q - 16);
        cr_expect_eq(y[v], want, "%s value %d", tempo_weight_type_name(t), v);
    }
}

Test(quant, q5_0_fifth_bit) { check_q5(WEIGHT_Q5_0); }
Test(quant, q5_1_fifth_bit_and_min) { check_q5(WEIGHT_Q5_1); }

/* IQ4_NL (d = 0.25): nibble q picks level q; value j is qs[j] low, j + 16 high. */
Test(quant, iq4_nl_levels) {
    uint8_t b[18];
    float y[32];
    put16(b, 0x3400);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    tempo_dequantize(WEIGHT_IQ4_NL, b, 32, y);
    for (int j = 0; j < 16; j++) {
        cr_expect_eq(y[j], 0.25f * iq4_levels[j], "iq4_nl value %d", j);
        cr_expect_eq(y[16 + j], 0.25f * iq4_levels[15 - j], "iq4_nl value %d", 16 + j);
    }
}

/* Q2_K and Q3_K keep value v = 128h + 32j + 16p + l in bits 2j, 2j+1 of qs
 * byte 32h + 16p + l; the 2-bit q of value v here is (v + v/7) % 4. */
static int q2_of(int v) { return (v + v / 7) % 4; }
static void pack_2bit(uint8_t *qs) {
    for (int v = 0; v < 256; v++) qs[32 * (v / 128) + v % 32] |= (uint8_t)(q2_of(v) << (2 * (v % 128 / 32)));
}

/* Q2_K (d = 1, dmin = 0.5): sub-block s has scale s % 16 and min 15 - s; y = (d*sc)*q - (dmin*m). */
Test(quant, q2_k_scales_mins_and_shifts) {
    uint8_t b[84] = {0};
    float y[256];
    for (int s = 0; s < 16; s++) b[s] = (uint8_t)(s | (15 - s) << 4);
    pack_2bit(b + 16);
    put16(b + 80, 0x3C00), put16(b + 82, 0x3800);
    tempo_dequantize(WEIGHT_Q2_K, b, 256, y);
    for (int v = 0; v < 256; v++) cr_expect_eq(y[v], (float)(v / 16 * q2_of(v)) - 0.5f * (15 - v / 16), "q2_k value %d", v);
}

/* Q3_K (d = 0.5): 6-bit scales sc_s = (23 s + 5) % 64, low 4 bits in nibble
 * s / 8 of byte s % 8, top 2 in bits 2(s/4) of byte 8 + s % 4; the high bit
 * of value v is bit v / 32 of hmask[v % 32], set when v % 5 != 0; a clear
 * bit takes 4 off q. y = (d*(sc - 32)) * q. */
Test(quant, q3_k_scales_and_high_bits) {
    uint8_t b[110] = {0}, *hmask = b, *scales = b + 96;
    float y[256];
    int sc[16];
    for (int s = 0; s < 16; s++) {
        sc[s] = (23 * s + 5) % 64;
        scales[s % 8] |= (uint8_t)((sc[s] & 15) << (4 * (s / 8)));
        scales[8 + s % 4] |= (uint8_t)((sc[s] >> 4) << (2 * (s / 4)));
    }
    pack_2bit(b + 32);
    for (int v = 0; v < 256; v++) hmask[v % 32] |= (uint8_t)((v % 5 != 0) << (v / 32));
    put16(b + 108, 0x3800);
    tempo_dequantize(WEIGHT_Q3_K, b, 256, y);
    for (int v = 0; v < 256; v++) {
        int q = q2_of(v) - (v % 5 != 0 ? 0 : 4);
        cr_expect_eq(y[v], 0.5f * (float)(sc[v / 16] - 32) * (float)q, "q3_k value %d (scale %d)", v, sc[v / 16]);
    }
}

/* IQ4_XS (d = 0.5): sub-block i (32 values) has the 6-bit scale ls_i = (19 i + 7) % 64,
 * low nibble in scales_l[i/2] (nibble i%2), top bits at 2i of scales_h; value 32i + j
 * (j < 16) is qs[16i + j] low, 32i + 16 + j high; y = (d*(ls - 32)) * level. */
Test(quant, iq4_xs_scales_and_levels) {
    uint8_t b[136] = {0};
    float y[256];
    int ls[8], scales_h = 0;
    for (int i = 0; i < 8; i++) {
        ls[i] = (19 * i + 7) % 64;
        b[4 + i / 2] |= (uint8_t)((ls[i] & 15) << (4 * (i % 2)));
        scales_h |= (ls[i] >> 4) << (2 * i);
    }
    put16(b, 0x3800), put16(b + 2, (uint16_t)scales_h);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 16; j++) b[8 + 16 * i + j] = (uint8_t)(((i + j) % 16) | ((3 * j + i) % 16) << 4);
    tempo_dequantize(WEIGHT_IQ4_XS, b, 256, y);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 16; j++) {
            float dl = 0.5f * (float)(ls[i] - 32);
            cr_expect_eq(y[32 * i + j], dl * iq4_levels[(i + j) % 16], "iq4_xs value %d", 32 * i + j);
            cr_expect_eq(y[32 * i + 16 + j], dl * iq4_levels[(3 * j + i) % 16], "iq4_xs value %d", 32 * i + 16 + j);
        }
}

/* The trit (0, 1, 2) of value v in the ternary tests. */
static int trit_of(int v) { return (v * 7 + v / 9) % 3; }

/* TQ1_0 (d = 2): a byte holds k trits t_0..t_{k-1} as ggml's quantizer writes
 * them, the first most significant: q = sum t_n 3^(4-n) (a qh byte's 4 trits
 * are followed by a zero trit), stored as ceil(q * 256 / 243). Value order: trit n of
 * qs byte m (m < 32) is value 32n + m; of byte 32 + m (m < 16) 160 + 16n + m;
 * of qh byte m 240 + 4n + m. y = (t - 1) * d. */
static uint8_t trit_byte(const int *t, int k) {
    int q = 0;
    for (int n = 0; n < 5; n++) q = 3 * q + (n < k ? t[n] : 0);
    return (uint8_t)((q * 256 + 242) / 243);
}

Test(quant, tq1_0_trits) {
    uint8_t b[54] = {0};
    float y[256];
    int t[5];
    for (int m = 0; m < 32; m++) {
        for (int n = 0; n < 5; n++) t[n] = trit_of(32 * n + m);
        b[m] = trit_byte(t, 5);
    }
    for (int m = 0; m < 16; m++) {
        for (int n = 0; n < 5; n++) t[n] = trit_of(160 + 16 * n + m);
        b[32 + m] = trit_byte(t, 5);
    }
    for (int m = 0; m < 4; m++) {
        for (int n = 0; n < 4; n++) t[n] = trit_of(240 + 4 * n + m);
        b[48 + m] = trit_byte(t, 4);
    }
    put16(b + 52, 0x4000);
    tempo_dequantize(WEIGHT_TQ1_0, b, 256, y);
    for (int v = 0; v < 256; v++) cr_expect_eq(y[v], 2.0f * (trit_of(v) - 1), "tq1_0 value %d", v);
}

/* TQ2_0 (d = 0.5): value 128h + 32l + m is bits 2l, 2l+1 of byte 32h + m; y = (q - 1) * d. */
Test(quant, tq2_0_two_bits) {
    uint8_t b[66] = {0};
    float y[256];
    for (int v = 0; v < 256; v++) b[32 * (v / 128) + v % 32] |= (uint8_t)(trit_of(v) << (2 * (v % 128 / 32)));
    put16(b + 64, 0x3800);
    tempo_dequantize(WEIGHT_TQ2_0, b, 256, y);
    for (int v = 0; v < 256; v++) cr_expect_eq(y[v], 0.5f * (trit_of(v) - 1), "tq2_0 value %d", v);
}

/* Q1_0 (128 values: f16 d, then qs[16]; value j is d if bit j % 8 of
 * qs[j / 8] is set, else -d), three blocks in a row (18 bytes each): block
 * b of each row has one bit set, value p = 3 c + b of row c, so each of
 * the 128 positions is the one set in some block, and its d is 2, -0.5
 * (then the clear values are +0.5) and 0.25. A bit read from the wrong
 * byte, in the wrong order (bit 7 - j % 8, byte j % 16) or a block stride
 * off moves the one d and fails. */
Test(quant, q1_0_one_bit_at_every_position) {
    const uint16_t halves[3] = {0x4000, 0xB800, 0x3400};
    const float ds[3] = {2.0f, -0.5f, 0.25f};
    uint8_t b[3 * 18];
    float y[3 * 128];
    for (int c = 0; c < 43; c++) {
        memset(b, 0, sizeof b);
        for (int k = 0; k < 3; k++) {
            int p = (3 * c + k) % 128;
            put16(b + 18 * k, halves[k]);
            b[18 * k + 2 + p / 8] = (uint8_t)(1 << (p % 8));
        }
        tempo_dequantize(WEIGHT_Q1_0, b, 3 * 128, y);
        for (int k = 0; k < 3; k++)
            for (int v = 0; v < 128; v++) {
                float want = v == (3 * c + k) % 128 ? ds[k] : -ds[k];
                cr_assert_eq(y[128 * k + v], want, "q1_0 row %d block %d value %d: %g, want %g", c, k, v, y[128 * k + v], want);
            }
    }
}

/* Q1_0 with a pattern: value v is set when (v * 37 + v / 5) % 3 == 0 (so
 * the bits of a byte differ, and differ from their mirror), d = -2: the set
 * values are -2, the clear ones +2 (-d, its sign flipped). And d = +0 and
 * -0: -d is the other zero (a sign made as 0 - d would give +0 for both). */
Test(quant, q1_0_bit_pattern_negative_d) {
    uint8_t b[18] = {0};
    float y[128];
    put16(b, 0xC000);
    for (int v = 0; v < 128; v++) b[2 + v / 8] |= (uint8_t)(((v * 37 + v / 5) % 3 == 0) << (v % 8));
    tempo_dequantize(WEIGHT_Q1_0, b, 128, y);
    for (int v = 0; v < 128; v++) cr_expect_eq(y[v], (v * 37 + v / 5) % 3 == 0 ? -2.0f : 2.0f, "q1_0 value %d: %g", v, y[v]);
    for (int negative = 0; negative < 2; negative++) {
        put16(b, negative ? 0x8000 : 0x0000);
        tempo_dequantize(WEIGHT_Q1_0, b, 128, y);
        for (int v = 0; v < 128; v++) {
            int set = (v * 37 + v / 5) % 3 == 0;
            cr_expect(y[v] == 0.0f && !!signbit(y[v]) == (set ? negative : !negative), "q1_0 d %s0, value %d (bit %d): %g",
                      negative ? "-" : "+", v, set, y[v]);
        }
    }
}

/* Q1_0 with a NaN scale: d and -d as ggml's dequantize_row_q1_0 gives them, whose
 * half conversion ends in a product, so a signaling NaN comes out quiet (bit 22 set,
 * the 10 payload bits shifted up 13); a quiet one keeps its bits. Kept as read
 * (tempo_f16_at's exact conversion), the signaling ones fail. */
Test(quant, q1_0_nan_scale_is_quieted_as_ggml_converts_it) {
    const uint16_t halves[] = {0x7c01, 0xfc01, 0x7d55, 0x7dff, 0x7e00, 0xfe01};
    uint8_t b[18];
    float y[128];
    for (size_t i = 0; i < sizeof halves / sizeof halves[0]; i++) {
        memset(b, 0x5a, sizeof b);
        put16(b, halves[i]);
        uint32_t d = (uint32_t)(halves[i] & 0x8000) << 16 | 0x7fc00000u | (uint32_t)(halves[i] & 1023) << 13;
        tempo_dequantize(WEIGHT_Q1_0, b, 128, y);
        for (int v = 0; v < 128; v++) {
            uint32_t got, want = 0x5a >> (v % 8) & 1 ? d : d ^ 0x80000000u;
            memcpy(&got, &y[v], sizeof got);
            cr_expect_eq(got, want, "q1_0 d 0x%04x value %d: 0x%08x, ggml 0x%08x", halves[i], v, got, want);
        }
    }
}

/* The 2-bit code of value v in the Q2_0 tests: hashed, shifted by s (0..3: every code at every position). */
static int q2_0_code(int v, int s) { return (int)(((unsigned)v * 2654435761u >> 16) + (unsigned)s) % 4; }

/* Q2_0 (64 values: f16 d, then qs[16]; value j's code q is bits
 * 2(j % 4), 2(j % 4) + 1 of qs[j / 4]; y = (q - 1) d), two blocks in a row
 * (d = 0.5, then -0.25): over s = 0..3 every code 0..3 meets every
 * position, and the values sharing a byte have different codes. A shift
 * 2 (j / 16) or 6 - 2 (j % 4), a byte j % 16, or codes mapped off (q, q - 2)
 * fails. Code 1 gives 0 * d: +0 for d > 0, -0 for d < 0 (the sign checked). */
Test(quant, q2_0_every_code_at_every_position) {
    const float ds[2] = {0.5f, -0.25f};
    uint8_t b[2 * 18];
    float y[2 * 64];
    for (int s = 0; s < 4; s++) {
        memset(b, 0, sizeof b);
        put16(b, 0x3800), put16(b + 18, 0xB400);
        for (int k = 0; k < 2; k++)
            for (int v = 0; v < 64; v++) b[18 * k + 2 + v / 4] |= (uint8_t)(q2_0_code(v + 64 * k, s) << (2 * (v % 4)));
        tempo_dequantize(WEIGHT_Q2_0, b, 2 * 64, y);
        for (int k = 0; k < 2; k++)
            for (int v = 0; v < 64; v++) {
                int q = q2_0_code(v + 64 * k, s);
                float got = y[64 * k + v], want = (float)(q - 1) * ds[k];
                cr_assert_eq(got, want, "q2_0 shift %d block %d value %d: %g, want %g (code %d)", s, k, v, got, want, q);
                if (q == 1) cr_assert_eq(!!signbit(got), ds[k] < 0, "q2_0 block %d value %d: 0 * d is %g", k, v, got);
            }
    }
}

/* Q2_0: one value at a time has code c (1..3), the others code 0 (-d): the
 * value that differs is at its position, whatever the bit order. */
Test(quant, q2_0_one_code_at_every_position) {
    uint8_t b[18];
    float y[64];
    for (int p = 0; p < 64; p++)
        for (int c = 1; c < 4; c++) {
            memset(b, 0, sizeof b);
            put16(b, 0x4000);
            b[2 + p / 4] = (uint8_t)(c << (2 * (p % 4)));
            tempo_dequantize(WEIGHT_Q2_0, b, 64, y);
            for (int v = 0; v < 64; v++)
                cr_assert_eq(y[v], v == p ? 2.0f * (c - 1) : -2.0f, "q2_0 code %d at %d: value %d is %g", c, p, v, y[v]);
        }
}
