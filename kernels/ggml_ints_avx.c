/* ggml_ints_avx.c - the integer part of ggml's dots of the other weight
 * types (ggml_dots_more.c, ggml_dots_iq.c) vectorized with AVX-512: a
 * block's integers w[v] = s_v q_v (GgmlBlockInts: TQ1_0, TQ2_0; the types
 * whose whole dot ggml_dots_avx.c vectorizes take the plain ones, for the
 * tests), ggml's 8 integer lanes (GgmlLanes), and the grid types' lanes
 * straight from their points (GgmlGridLanes). Integers are exact, so these equal the plain ones
 * (TEMPO_GGML_INTS_PLAIN) value for value (tests/test_ggml_types.c); the
 * f32 part of each dot is the plain file's, one for both. Without
 * AVX-512 BW and VL (the grid lanes: and VBMI, GFNI, BITALG, as the exact
 * path's group decoders in unpack_grids.h), the plain ones. */
#include "kernels.h"
#include "unpack_low_bit.h" /* tempo_two_bits32, tempo_epi16_halves, tempo_trits_epi16, tempo_u32_at, tempo_*_group, tempo_*_points, tempo_grid_scale_fields, tempo_grid_d */

#include <math.h>

#if defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

/* Inlined where the type is a constant, so that each type's decoder is compiled apart. */
#define INLINE static inline __attribute__((always_inline))

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

/* TQ2_0 (ternary_digits): its 2-bit digits, chunk by chunk, widened to 16 bits. */
static void tq2_0_fast(const uint8_t *b, int16_t *w) {
    for (int c = 0; c < 8; c++) _mm512_storeu_si512(w + 32 * c, _mm512_cvtepu8_epi16(tempo_two_bits32(b, c)));
}

/* TQ1_0 (ternary_digits): values 32c + i, c < 5, trit c of byte i; 160 .. 223 trits 0 .. 3 of bytes
 * 32 .. 47 (16 values each); 224 .. 239 trit 4 of them; 240 .. 255 trit (v - 240) / 4 of byte 48 + v % 4. */
static void tq1_0_fast(const uint8_t *b, int16_t *w) {
    enum { P = 256 }; /* tempo_trits_epi16 takes 3^n << 8 */
    static const int16_t last_pow3[32] = {81 * P, 81 * P, 81 * P, 81 * P, 81 * P, 81 * P, 81 * P, 81 * P, 81 * P, 81 * P, 81 * P,
                                          81 * P, 81 * P, 81 * P, 81 * P, 81 * P, P,      P,      P,      P,      3 * P,  3 * P,
                                          3 * P,  3 * P,  9 * P,  9 * P,  9 * P,  9 * P,  27 * P, 27 * P, 27 * P, 27 * P};
    __m128i middle = _mm_loadu_si128((const __m128i *)(b + 32));
    __m512i first = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)b));
    __m512i twice = _mm512_cvtepu8_epi16(_mm256_set_m128i(middle, middle));
    __m512i last = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_set1_epi32((int)tempo_u32_at(b + 48)), middle));
    for (int c = 0, pow3 = 1; c < 5; c++, pow3 *= 3)
        _mm512_storeu_si512(w + 32 * c, tempo_trits_epi16(first, _mm512_set1_epi16((short)(pow3 * P))));
    _mm512_storeu_si512(w + 160, tempo_trits_epi16(twice, tempo_epi16_halves(P, 3 * P)));
    _mm512_storeu_si512(w + 192, tempo_trits_epi16(twice, tempo_epi16_halves(9 * P, 27 * P)));
    _mm512_storeu_si512(w + 224, tempo_trits_epi16(last, _mm512_loadu_si512(last_pow3)));
}

/* GgmlBlockInts, vectorized: block_ints's integers, type by type. */
static void ints_fast(WeightType t, const uint8_t *b, int16_t *w) {
    switch (t) {
    case WEIGHT_TQ2_0: tq2_0_fast(b, w); break;
    case WEIGHT_TQ1_0: tq1_0_fast(b, w); break;
    /* the others' dots are vectorized whole (ggml_dots_avx.c), the grid types' from their lanes (grid_lanes_fast) */
    default: TEMPO_GGML_INTS_PLAIN.ints(t, b, w); break;
    }
}

#else

/* The plain ones, called through (a const's initializer cannot name another file's static functions). */
static void ints_fast(WeightType t, const uint8_t *b, int16_t *w) { TEMPO_GGML_INTS_PLAIN.ints(t, b, w); }
static void lanes_fast(const int16_t *w, const int8_t *q8, int n, int32_t lane[8]) { TEMPO_GGML_INTS_PLAIN.lanes(w, q8, n, lane); }

#endif

#if defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VBMI__) && defined(__GFNI__) && defined(__AVX512BITALG__)

/* A grid type's group of 64 values (grid_lanes_fast: sub-blocks 2g and 2g+1 of a super-block) as the exact
 * path's decoders in unpack_grids.h read it: the magnitudes and negative bits (IQ1: the grid's -1s), and IQ1's
 * `delta_negative`, a bit per 16-bit pair of values set where the point's delta is -1. */
typedef struct {
    TempoGridGroup group;
    __mmask32 delta_negative;
} GridPair;

/* IQ1's points (-1, 0, 1) as magnitudes and negative bits. */
INLINE GridPair iq1_pair(__m512i points, __mmask32 delta_negative) {
    return (GridPair){{_mm512_abs_epi8(points), _mm512_movepi8_mask(points)}, delta_negative};
}

/* Group g of the super-block at b, type t. */
INLINE GridPair grid_pair(WeightType t, const uint8_t *b, int g) {
    switch (t) {
    case WEIGHT_IQ2_XXS: return (GridPair){tempo_iq2_xxs_group(b, g), 0};
    case WEIGHT_IQ2_XS: return (GridPair){tempo_iq2_xs_group(b, g), 0};
    case WEIGHT_IQ2_S: return (GridPair){tempo_iq2_s_group(b, g), 0};
    case WEIGHT_IQ3_XXS: return (GridPair){tempo_iq3_xxs_group(b, g), 0};
    case WEIGHT_IQ3_S: return (GridPair){tempo_iq3_s_group(b, g), 0};
    case WEIGHT_IQ1_S: { /* the delta's sign: bit 15 of each sub-block's word (no branch: the bits are random) */
        uint32_t words = tempo_u32_at(b + 34 + 4 * g);
        return iq1_pair(tempo_iq1_s_points(b, g), (0xFFFFu & -(words >> 15 & 1)) | (0xFFFF0000u & -(words >> 31)));
    }
    default: /* IQ1_M: the delta's sign: bit 3 of each point's nibble */
        return iq1_pair(tempo_iq1_m_points(b, g), (tempo_u32_at(b + 32 + 4 * g) >> 3 & 0x11111111u) * 15);
    }
}

/* A super-block's 8 lanes and IQ1's 8 delta lanes, in registers. */
typedef struct {
    __m256i sum, delta;
} GridLanes;

/* The grid types' lanes (GgmlGridLanes), compiled once per type: per group of 64 values, maddubs sums
 * value pairs of |value| times q8 signed by the value (q8 negated under the negative bits: exact, as
 * ggml's quantizers keep |q8| <= 127), madd multiplies each pair by its odd scale 2 s + 1 (the block's
 * 16 scale fields s, tempo_grid_scale_fields, spread to the pairs by vpermw) and adds two pairs, so
 * 32-bit lane k of each 32 values is lane k of the definition; the two sub-blocks' lanes (low and high
 * half) are added at the end. IQ1's delta lanes: the pairs of q8 summed, times the scale signed by the
 * point's delta. */
INLINE GridLanes grid_block_lanes(WeightType t, const uint8_t *b, const int8_t *q8) {
    static const int16_t scale_of_pair[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    __m512i fields = tempo_grid_scale_fields(t, b);
    __m512i scales = _mm512_castsi256_si512(_mm512_cvtepi32_epi16(_mm512_add_epi32(_mm512_add_epi32(fields, fields), _mm512_set1_epi32(1))));
    __m512i zero = _mm512_setzero_si512(), sum = zero, delta_sum = zero;
    for (int g = 0; g < 4; g++) {
        GridPair p = grid_pair(t, b, g);
        __m512i x = _mm512_loadu_si512(q8 + 64 * g);
        __m512i scale = _mm512_permutexvar_epi16(_mm512_add_epi16(_mm512_loadu_si512(scale_of_pair), _mm512_set1_epi16((short)(4 * g))), scales);
        __m512i signed_x = _mm512_mask_sub_epi8(x, p.group.negative, zero, x);
        sum = _mm512_add_epi32(sum, _mm512_madd_epi16(_mm512_maddubs_epi16(p.group.points, signed_x), scale));
        if (t != WEIGHT_IQ1_S && t != WEIGHT_IQ1_M) continue;
        __m512i signed_scale = _mm512_mask_sub_epi16(scale, p.delta_negative, zero, scale);
        delta_sum = _mm512_add_epi32(delta_sum, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_set1_epi8(1), x), signed_scale));
    }
    return (GridLanes){_mm256_add_epi32(_mm512_castsi512_si256(sum), _mm512_extracti64x4_epi64(sum, 1)),
                       _mm256_add_epi32(_mm512_castsi512_si256(delta_sum), _mm512_extracti64x4_epi64(delta_sum, 1))};
}

/* GgmlGridLanes, vectorized, each type its own code. */
static void grid_lanes_fast(WeightType t, const uint8_t *b, const int8_t *q8, int32_t lane[8], int32_t delta[8]) {
    GridLanes l;
    switch (t) {
    case WEIGHT_IQ2_XXS: l = grid_block_lanes(WEIGHT_IQ2_XXS, b, q8); break;
    case WEIGHT_IQ2_XS: l = grid_block_lanes(WEIGHT_IQ2_XS, b, q8); break;
    case WEIGHT_IQ2_S: l = grid_block_lanes(WEIGHT_IQ2_S, b, q8); break;
    case WEIGHT_IQ3_XXS: l = grid_block_lanes(WEIGHT_IQ3_XXS, b, q8); break;
    case WEIGHT_IQ3_S: l = grid_block_lanes(WEIGHT_IQ3_S, b, q8); break;
    case WEIGHT_IQ1_S: l = grid_block_lanes(WEIGHT_IQ1_S, b, q8); break;
    default: l = grid_block_lanes(WEIGHT_IQ1_M, b, q8); break;
    }
    _mm256_storeu_si256((__m256i *)lane, l.sum);
    _mm256_storeu_si256((__m256i *)delta, l.delta);
}

/* tempo_ggml_iq_dot's loop with the lanes kept in registers: per super-block d = d_x f32(d_w), then
 * lane k = fma(d, f32(sum_k), lane k) (vfmadd, lane by lane the same as fmaf); IQ1_M's delta lanes
 * alike, IQ1_S's delta term fma(d, f32(its lanes' total), delta_sum). The end is the plain one. */
INLINE float grid_row_dot(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    __m256 lane = _mm256_setzero_ps(), delta_lane = _mm256_setzero_ps();
    float delta_sum = 0.0f;
    size_t bytes = tempo_block_bytes(t);
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += bytes) {
        GridLanes l = grid_block_lanes(t, w, x.q + b * TEMPO_QK_K);
        float d = x.d[b] * tempo_grid_d(t, w);
        lane = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(l.sum), lane);
        if (t == WEIGHT_IQ1_M) delta_lane = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(l.delta), delta_lane);
        if (t == WEIGHT_IQ1_S) { /* the total of 8 lanes: exact in any order */
            __m128i four = _mm_add_epi32(_mm256_castsi256_si128(l.delta), _mm256_extracti128_si256(l.delta, 1));
            __m128i two = _mm_add_epi32(four, _mm_unpackhi_epi64(four, four));
            delta_sum = fmaf(d, (float)_mm_cvtsi128_si32(_mm_add_epi32(two, _mm_srli_epi64(two, 32))), delta_sum);
        }
    }
    float lanes[8], delta_lanes[8];
    _mm256_storeu_ps(lanes, lane);
    _mm256_storeu_ps(delta_lanes, delta_lane);
    return tempo_ggml_iq_total(t, lanes, delta_lanes, delta_sum);
}

float tempo_ggml_iq_dot_fast(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    switch (t) {
    case WEIGHT_IQ2_XXS: return grid_row_dot(WEIGHT_IQ2_XXS, w, x, m);
    case WEIGHT_IQ2_XS: return grid_row_dot(WEIGHT_IQ2_XS, w, x, m);
    case WEIGHT_IQ2_S: return grid_row_dot(WEIGHT_IQ2_S, w, x, m);
    case WEIGHT_IQ3_XXS: return grid_row_dot(WEIGHT_IQ3_XXS, w, x, m);
    case WEIGHT_IQ3_S: return grid_row_dot(WEIGHT_IQ3_S, w, x, m);
    case WEIGHT_IQ1_S: return grid_row_dot(WEIGHT_IQ1_S, w, x, m);
    default: return grid_row_dot(WEIGHT_IQ1_M, w, x, m);
    }
}

#else

static void grid_lanes_fast(WeightType t, const uint8_t *b, const int8_t *q8, int32_t lane[8], int32_t delta[8]) {
    TEMPO_GGML_INTS_PLAIN.grid_lanes(t, b, q8, lane, delta);
}

float tempo_ggml_iq_dot_fast(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    return tempo_ggml_iq_dot(&TEMPO_GGML_INTS_PLAIN, t, w, x, m);
}

#endif

const GgmlInts TEMPO_GGML_INTS_FAST = {ints_fast, lanes_fast, grid_lanes_fast};
