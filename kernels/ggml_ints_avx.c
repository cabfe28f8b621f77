/* ggml_ints_avx.c - the integer part of ggml's dots of the other weight
 * types (ggml_dots_more.c, ggml_dots_iq.c) vectorized with AVX-512: a
 * block's integers w[v] = s_v q_v (GgmlBlockInts) and ggml's 8 integer
 * lanes (GgmlLanes). Integers are exact, so these equal the plain ones
 * (TEMPO_GGML_INTS_PLAIN) value for value (tests/test_ggml_types.c); the
 * f32 part of each dot is the plain file's, one for both. Without
 * AVX-512 BW, or for a type not decoded here, the plain ones. */
#include "kernels.h"

#include <string.h>

#if defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

/* lane[k] = sum of w[32c + 4k + j] q8[32c + 4k + j]: vpmaddwd sums value pairs
 * (2p, 2p + 1) in 32-bit lane p, so lane k is lanes 2k and 2k + 1 added. The
 * products fit: |w| <= 127 * 32, |q8| <= 128. */
static void lanes_fast(const int16_t *w, const int8_t *q8, int n, int32_t lane[8]) {
    __m512i acc = _mm512_setzero_si512();
    for (int c = 0; c < n; c += 32) {
        __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(q8 + c)));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_loadu_si512(w + c), x));
    }
    __m512i pairs = _mm512_add_epi32(acc, _mm512_srli_epi64(acc, 32)); /* low half of 64-bit lane k: 2k + (2k + 1) */
    _mm256_storeu_si256((__m256i *)lane, _mm512_cvtepi64_epi32(pairs));
}

/* 16-bit lanes: s0 in lanes 0..15, s1 in 16..31 (the scales of two 16-value sub-blocks). */
static __m512i scale_pair(int s0, int s1) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)s0), _mm256_set1_epi16((short)s1), 1);
}

/* 32 signed bytes (values 0..31) times s0 (values 0..15) and s1 (16..31), to w[0..31]. */
static void store_scaled(__m256i q, int s0, int s1, int16_t *w) {
    _mm512_storeu_si512(w, _mm512_mullo_epi16(_mm512_cvtepi8_epi16(q), scale_pair(s0, s1)));
}

/* The 32 nibbles of 16 bytes: low nibbles are values 0..15, high ones 16..31. */
static __m256i nibbles32(const uint8_t *qs) {
    __m128i packed = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(15));
}

/* IQ4's levels at 4-bit codes (one vpshufb). */
static __m256i iq4_levels(__m256i codes) {
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)tempo_iq4_levels)), codes);
}

/* Q4_1, Q5_0, Q5_1, IQ4_NL (block32_ints): the fifth bits are the 32-bit qh, bit j value j's. */
static void block32_fast(WeightType t, const uint8_t *b, int16_t *w) {
    __m256i q = nibbles32(b + (t == WEIGHT_Q4_1 ? 4 : t == WEIGHT_Q5_0 ? 6 : t == WEIGHT_Q5_1 ? 8 : 2));
    if (t == WEIGHT_IQ4_NL) q = iq4_levels(q);
    if (t == WEIGHT_Q5_0 || t == WEIGHT_Q5_1) {
        uint32_t qh;
        memcpy(&qh, b + (t == WEIGHT_Q5_0 ? 2 : 4), sizeof qh);
        q = _mm256_mask_add_epi8(q, (__mmask32)qh, q, _mm256_set1_epi8(16));
        if (t == WEIGHT_Q5_0) q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
    store_scaled(q, 1, 1, w);
}

/* IQ4_XS (iq4_xs_ints): sub-block g's levels times its scale - 32. */
static void iq4_xs_fast(const uint8_t *b, int16_t *w) {
    for (int g = 0; g < 8; g++) {
        int ls = tempo_iq4_xs_scale(b, g) - 32;
        store_scaled(iq4_levels(nibbles32(b + 8 + 16 * g)), ls, ls, w + 32 * g);
    }
}

/* Values 32c .. 32c+31 of 2-bit fields (Q2_K, Q3_K, TQ2_0): bits 2(c%4).. of the 32 bytes at qs + 32(c/4). */
static __m256i low2_32(const uint8_t *qs, int c) {
    __m256i bytes = _mm256_loadu_si256((const __m256i *)(qs + 32 * (c / 4)));
    return _mm256_and_si256(_mm256_srli_epi16(bytes, 2 * (c % 4)), _mm256_set1_epi8(3));
}

/* Q2_K (q2_k_ints), Q3_K (q3_k_ints: minus 4 where bit c of the value's hmask byte is clear), TQ2_0 (digits). */
static void two_bit_fast(WeightType t, const uint8_t *b, int16_t *w) {
    __m256i hmask = _mm256_loadu_si256((const __m256i *)b);
    for (int c = 0; c < 8; c++) {
        if (t == WEIGHT_TQ2_0) {
            store_scaled(low2_32(b, c), 1, 1, w + 32 * c);
        } else if (t == WEIGHT_Q2_K) {
            store_scaled(low2_32(b + 16, c), b[2 * c] & 15, b[2 * c + 1] & 15, w + 32 * c);
        } else {
            __mmask32 clear = _mm256_testn_epi8_mask(hmask, _mm256_set1_epi8((char)(1 << c)));
            __m256i q = _mm256_mask_sub_epi8(low2_32(b + 32, c), clear, low2_32(b + 32, c), _mm256_set1_epi8(4));
            store_scaled(q, tempo_q3_k_scale(b + 96, 2 * c) - 32, tempo_q3_k_scale(b + 96, 2 * c + 1) - 32, w + 32 * c);
        }
    }
}

static void ints_fast(WeightType t, const uint8_t *b, int16_t *w) {
    switch (t) {
    case WEIGHT_Q4_1: case WEIGHT_Q5_0: case WEIGHT_Q5_1: case WEIGHT_IQ4_NL: block32_fast(t, b, w); break;
    case WEIGHT_IQ4_XS: iq4_xs_fast(b, w); break;
    case WEIGHT_Q2_K: case WEIGHT_Q3_K: case WEIGHT_TQ2_0: two_bit_fast(t, b, w); break;
    default: TEMPO_GGML_INTS_PLAIN.ints(t, b, w); break;
    }
}

const GgmlInts TEMPO_GGML_INTS_FAST = {ints_fast, lanes_fast};

#else

static void ints_plain(WeightType t, const uint8_t *b, int16_t *w) { TEMPO_GGML_INTS_PLAIN.ints(t, b, w); }
static void lanes_plain(const int16_t *w, const int8_t *q8, int n, int32_t lane[8]) { TEMPO_GGML_INTS_PLAIN.lanes(w, q8, n, lane); }

const GgmlInts TEMPO_GGML_INTS_FAST = {ints_plain, lanes_plain};

#endif
