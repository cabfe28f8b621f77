/* ggml_ints_avx.c - the integer part of ggml's dots of the other weight
 * types (ggml_dots_more.c, ggml_dots_iq.c) vectorized with AVX-512: a
 * block's integers w[v] = s_v q_v (GgmlBlockInts: TQ1_0, TQ2_0; the types
 * whose whole dot ggml_dots_avx.c vectorizes take the plain ones, for the
 * tests), ggml's 8 integer lanes (GgmlLanes), and the grid types' lanes
 * straight from their points (GgmlGridLanes). Integers are exact, so these equal the plain ones
 * (TEMPO_GGML_INTS_PLAIN) value for value (tests/test_ggml_types.c); the
 * f32 part of each dot is the plain file's, one for both. Without
 * AVX-512 BW and VL, the plain ones. */
#include "kernels.h"

#include <string.h>

#include "iq_grids.h"
#include "unpack_low_bit.h" /* tempo_two_bits32, tempo_block32_lanes, tempo_dot_u8_i8, tempo_epi16_halves, tempo_trits_epi16, tempo_grid_signs, tempo_u16_at */

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

/* A grid type's sub-block of 32 values: 4 grid points of 8 values (IQ3: 8 of 4, paired), a sign bit
 * per value, the scales of its two 16s; IQ1: a delta (+-1) per point, no signs. */
typedef struct {
    uint64_t point[4];
    uint32_t signs;
    int scale[2], delta[4];
} GridSub;

/* Two 4-value points as one 8-value point (IQ3). */
static uint64_t point_pair(const uint8_t *a, const uint8_t *b) { return tempo_u32_at(a) | (uint64_t)tempo_u32_at(b) << 32; }

/* Point l of sub-block ib of IQ2_XXS, IQ2_XS, IQ2_S (8 values) or IQ3_XXS, IQ3_S (two of 4), and its 8
 * sign bits; the sub-block's scales (the same for each l), as ggml_dots_iq.c's decoders read them. */
INLINE void iq23_point(WeightType t, const uint8_t *b, int ib, int l, GridSub *g) {
    const uint8_t *qs = b + 2 + 8 * ib;
    if (t == WEIGHT_IQ2_XXS || t == WEIGHT_IQ3_XXS) {
        uint32_t aux = tempo_u32_at(t == WEIGHT_IQ2_XXS ? qs + 4 : b + 66 + 4 * ib);
        if (t == WEIGHT_IQ2_XXS) memcpy(&g->point[l], tempo_iq2xxs_grid[qs[l]], 8);
        else g->point[l] = point_pair(tempo_iq3xxs_grid[qs[2 * l]], tempo_iq3xxs_grid[qs[2 * l + 1]]);
        g->signs |= tempo_grid_signs(aux >> 7 * l & 127) << 8 * l;
        g->scale[0] = g->scale[1] = 2 * (int)(aux >> 28) + 1;
    } else if (t == WEIGHT_IQ2_XS) {
        unsigned q = tempo_u16_at(b + 2 + 2 * (4 * ib + l));
        memcpy(&g->point[l], tempo_iq2xs_grid[q & 511], 8), g->signs |= tempo_grid_signs(q >> 9) << 8 * l;
        g->scale[0] = 2 * (b[66 + ib] & 15) + 1, g->scale[1] = 2 * (b[66 + ib] >> 4) + 1;
    } else if (t == WEIGHT_IQ2_S) {
        memcpy(&g->point[l], tempo_iq2s_grid[b[2 + 4 * ib + l] | (b[66 + ib] >> 2 * l & 3) << 8], 8);
        g->signs |= (uint32_t)b[34 + 4 * ib + l] << 8 * l;
        g->scale[0] = 2 * (b[74 + ib] & 15) + 1, g->scale[1] = 2 * (b[74 + ib] >> 4) + 1;
    } else { /* IQ3_S */
        g->point[l] = point_pair(tempo_iq3s_grid[qs[2 * l] | (b[66 + ib] >> 2 * l & 1) << 8],
                                 tempo_iq3s_grid[qs[2 * l + 1] | (b[66 + ib] >> (2 * l + 1) & 1) << 8]);
        g->signs |= (uint32_t)b[74 + 4 * ib + l] << 8 * l;
        g->scale[0] = g->scale[1] = 2 * (b[106 + ib / 2] >> 4 * (ib % 2) & 15) + 1;
    }
}

/* Point l of sub-block ib of IQ1_S or IQ1_M, its delta, and the sub-block's scales. */
INLINE void iq1_point(WeightType t, const uint8_t *b, int ib, int l, GridSub *g) {
    if (t == WEIGHT_IQ1_S) {
        unsigned h = tempo_u16_at(b + 34 + 2 * ib);
        memcpy(&g->point[l], tempo_iq1s_grid[b[2 + 4 * ib + l] | (h >> 3 * l & 7) << 8], 8);
        g->scale[0] = g->scale[1] = 2 * (int)(h >> 12 & 7) + 1, g->delta[l] = h & 0x8000 ? -1 : 1;
        return;
    }
    unsigned scales = tempo_u16_at(b + 48 + 2 * (ib / 2)) >> 6 * (ib % 2), nibble = b[32 + 2 * ib + l / 2] >> 4 * (l % 2) & 15;
    memcpy(&g->point[l], tempo_iq1s_grid[b[4 * ib + l] | (nibble & 7) << 8], 8);
    g->scale[0] = 2 * (int)(scales & 7) + 1, g->scale[1] = 2 * (int)(scales >> 3 & 7) + 1, g->delta[l] = nibble & 8 ? -1 : 1;
}

/* Sub-block ib's lanes (GgmlGridLanes) added to sum: lane k of its 32 values' scale times signed grid value
 * times q8 (scale[0] for lanes 0..3, scale[1] for 4..7); IQ1 (`iq1`: the grid's bytes are -1, 0, 1, no signs)
 * its delta lanes to delta: scale times delta_l (lanes 2l, 2l+1) times the sum of lane k's q8. */
INLINE void grid_sub_lanes(const GridSub *g, int iq1, const int8_t *q8, __m256i *sum, __m256i *delta) {
    __m256i q = _mm256_set_epi64x((long long)g->point[3], (long long)g->point[2], (long long)g->point[1], (long long)g->point[0]);
    if (!iq1) q = _mm256_mask_sub_epi8(q, (__mmask32)g->signs, _mm256_setzero_si256(), q);
    __m256i scale = _mm256_set_m128i(_mm_set1_epi32(g->scale[1]), _mm_set1_epi32(g->scale[0]));
    *sum = _mm256_add_epi32(*sum, _mm256_mullo_epi32(tempo_block32_lanes(q, q8), scale));
    if (!iq1) return;
    __m256i q8_sums = tempo_dot_u8_i8(_mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *)q8));
    __m256i deltas = _mm256_set_epi32(g->delta[3], g->delta[3], g->delta[2], g->delta[2], g->delta[1], g->delta[1], g->delta[0], g->delta[0]);
    *delta = _mm256_add_epi32(*delta, _mm256_mullo_epi32(q8_sums, _mm256_mullo_epi32(scale, deltas)));
}

/* The grid types' lanes, compiled once per type (grid_lanes_fast). */
INLINE void grid_block_lanes(WeightType t, const uint8_t *b, const int8_t *q8, int32_t lane[8], int32_t delta[8]) {
    int iq1 = t == WEIGHT_IQ1_S || t == WEIGHT_IQ1_M;
    __m256i sum = _mm256_setzero_si256(), delta_sum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        GridSub g = {.signs = 0};
        for (int l = 0; l < 4; l++) {
            if (iq1) iq1_point(t, b, ib, l, &g);
            else iq23_point(t, b, ib, l, &g);
        }
        grid_sub_lanes(&g, iq1, q8 + 32 * ib, &sum, &delta_sum);
    }
    _mm256_storeu_si256((__m256i *)lane, sum);
    _mm256_storeu_si256((__m256i *)delta, delta_sum);
}

/* GgmlGridLanes, vectorized: the points as ggml_dots_iq.c's decoders read them, each type its own code. */
static void grid_lanes_fast(WeightType t, const uint8_t *b, const int8_t *q8, int32_t lane[8], int32_t delta[8]) {
    switch (t) {
    case WEIGHT_IQ2_XXS: grid_block_lanes(WEIGHT_IQ2_XXS, b, q8, lane, delta); break;
    case WEIGHT_IQ2_XS: grid_block_lanes(WEIGHT_IQ2_XS, b, q8, lane, delta); break;
    case WEIGHT_IQ2_S: grid_block_lanes(WEIGHT_IQ2_S, b, q8, lane, delta); break;
    case WEIGHT_IQ3_XXS: grid_block_lanes(WEIGHT_IQ3_XXS, b, q8, lane, delta); break;
    case WEIGHT_IQ3_S: grid_block_lanes(WEIGHT_IQ3_S, b, q8, lane, delta); break;
    case WEIGHT_IQ1_S: grid_block_lanes(WEIGHT_IQ1_S, b, q8, lane, delta); break;
    default: grid_block_lanes(WEIGHT_IQ1_M, b, q8, lane, delta); break;
    }
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

const GgmlInts TEMPO_GGML_INTS_FAST = {ints_fast, lanes_fast, grid_lanes_fast};

#else

/* The plain pair, called through (a const's initializer cannot name another file's static functions). */
static void ints_of_plain(WeightType t, const uint8_t *b, int16_t *w) { TEMPO_GGML_INTS_PLAIN.ints(t, b, w); }
static void lanes_of_plain(const int16_t *w, const int8_t *q8, int n, int32_t lane[8]) { TEMPO_GGML_INTS_PLAIN.lanes(w, q8, n, lane); }
static void grid_lanes_of_plain(WeightType t, const uint8_t *b, const int8_t *q8, int32_t lane[8], int32_t delta[8]) {
    TEMPO_GGML_INTS_PLAIN.grid_lanes(t, b, q8, lane, delta);
}

const GgmlInts TEMPO_GGML_INTS_FAST = {ints_of_plain, lanes_of_plain, grid_lanes_of_plain};

#endif
