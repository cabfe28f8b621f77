/* unpack_low_bit.h - the other block types llama-quantize writes, to f32
 * in vector registers for the matrix product (matmul.c): Q4_1, Q5_0, Q5_1,
 * IQ4_NL (blocks of 32 values), Q2_0 (64), Q1_0 (128) and Q2_K, Q3_K,
 * IQ4_XS (256). Each value is
 * the float the scalar reference (dequant.c, dequant_k.c) gives, bit for
 * bit: the same integer codes, the same scale products (one rounded
 * product each, as scalars or in lanes), then the same one product (and
 * one sum or difference) per value, each rounded to float (ISO C: no fused
 * multiply-add). With AVX-512 the types with a 16-entry value table (Q4_1,
 * IQ4_NL, IQ4_XS; Q5_0, Q5_1: two of 16) build it once per block or
 * sub-block with those operations and pick its entries by the codes
 * (permutexvar reads index bits 3:0 only): the same floats; with VBMI so
 * do Q2_K (16 entries a group of 64 values) and Q3_K (32: vpermt2ps). */
#ifndef TEMPO_UNPACK_LOW_BIT_H
#define TEMPO_UNPACK_LOW_BIT_H

#include "unpack.h"
#include "unpack_grids.h"

#define TEMPO_LOW_BIT_INLINE static inline __attribute__((always_inline))

/* What each group of a 256-value block reads, computed once a block
 * (tempo_low_bit_block; AVX-512 VBMI): Q2_K's 16 scale products d*sc_j
 * (`scale`, lane j) and dmin*m_j (`min`), Q3_K's d*(sc_j - 32) (`scale`),
 * IQ1_S's 32-lane table of its products (`table`, tempo_iq1_s_table); the
 * IQ grid types' scale products (`scale`, tempo_grid_block_scales: IQ1_M;
 * with GFNI and BITALG too IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS); zero otherwise. */
typedef struct {
    F32x16 scale, min, table[2];
} TempoLowBitBlock;

/* Lane i of the 16: i, as a float. */
static inline F32x16 tempo_lane_index(void) {
    return (F32x16){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
}

#if defined(__AVX512F__)
/* Lane i: table[code_i & 15], code_i the i-th byte of codes. */
TEMPO_LOW_BIT_INLINE F32x16 tempo_pick16(F32x16 table, U8x16 codes) {
    return (F32x16)_mm512_permutexvar_ps(_mm512_cvtepu8_epi32((__m128i)codes), (__m512)table);
}
#endif

/* IQ4_NL's and IQ4_XS's levels (tempo_iq4_levels) at 4-bit codes q (< 16). */
TEMPO_LOW_BIT_INLINE I8x16 tempo_iq4_levels_at(U8x16 q) {
    I8x16 levels;
    memcpy(&levels, tempo_iq4_levels, sizeof levels);
#if defined(__SSSE3__)
    return (I8x16)_mm_shuffle_epi8((__m128i)levels, (__m128i)q);
#else
    I8x16 out;
    for (int i = 0; i < 16; i++) out[i] = levels[q[i]];
    return out;
#endif
}

/* IQ4's value table: entry k is scale * level[k] (scale in every lane). */
TEMPO_LOW_BIT_INLINE F32x16 tempo_iq4_table(F32x16 scale) {
    I8x16 levels;
    memcpy(&levels, tempo_iq4_levels, sizeof levels);
    return scale * tempo_floats_i8(levels);
}

/* 32 IQ4 values from 16 bytes qs: w = scale * level[q] (scale in every lane); low nibbles are values 0..15, high ones 16..31. */
TEMPO_LOW_BIT_INLINE void tempo_iq4_vectors(const uint8_t *qs, F32x16 scale, F32x16 w[2]) {
    U8x16 q = tempo_bytes16(qs);
#if defined(__AVX512F__)
    F32x16 table = tempo_iq4_table(scale);
    w[0] = tempo_pick16(table, q);
    w[1] = tempo_pick16(table, q >> 4);
#else
    w[0] = scale * tempo_floats_i8(tempo_iq4_levels_at(q & 15));
    w[1] = scale * tempo_floats_i8(tempo_iq4_levels_at(q >> 4));
#endif
}

/* IQ4_NL, its 32 values: w = d * level[q]. With AVX-512 the 16 bytes are
 * widened once and the high nibbles shifted in 32-bit lanes, as
 * tempo_q4_0_vectors does (IQ4_NL's 4-row passes 1.08x faster; IQ4_XS's
 * 2-row passes 0.95x, so tempo_iq4_vectors keeps the byte shift: NOTES). */
TEMPO_LOW_BIT_INLINE void tempo_iq4_nl_vectors(const uint8_t *b, F32x16 w[2]) {
#if defined(__AVX512F__)
    F32x16 table = tempo_iq4_table(tempo_half_scale16(b));
    I32x16 code = tempo_codes16(b + 2);
    w[0] = tempo_lookup16(table, code);
    w[1] = tempo_lookup16(table, code >> 4); /* vpermps reads bits 3:0 */
#else
    tempo_iq4_vectors(b + 2, tempo_half_scale16(b), w);
#endif
}

/* Q4_1, its 32 values: w = q * d + m (q the nibble). */
TEMPO_LOW_BIT_INLINE void tempo_q4_1_vectors(const uint8_t *b, F32x16 w[2]) {
    F32x16 d = tempo_half_scale16(b), m = tempo_half_scale16(b + 2);
    U8x16 q = tempo_bytes16(b + 4);
#if defined(__AVX512F__)
    F32x16 table = tempo_lane_index() * d + m; /* entry k: k * d + m */
    w[0] = tempo_pick16(table, q);
    w[1] = tempo_pick16(table, q >> 4);
#else
    w[0] = tempo_floats_u8(q & 15) * d + m;
    w[1] = tempo_floats_u8(q >> 4) * d + m;
#endif
}

/* The fifth bits of Q5_0/Q5_1 values 16h .. 16h+15 as 16 or 0: bit j of the 32-bit little-endian qh. */
TEMPO_LOW_BIT_INLINE U8x16 tempo_fifth_bits(const uint8_t *qh, int h) {
    const U8x16 bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint8_t a = qh[2 * h], c = qh[2 * h + 1];
    U8x16 spread = {a, a, a, a, a, a, a, a, c, c, c, c, c, c, c, c};
    return (U8x16)((spread & bit) == bit) & 16;
}

#if defined(__AVX512BW__) && defined(__AVX512VL__)
/* IQ4's levels of the 32 nibbles of the 16 bytes at qs (tempo_nibbles32's order). */
TEMPO_LOW_BIT_INLINE __m256i tempo_iq4_levels32(const uint8_t *qs) {
    U8x16 packed = tempo_bytes16(qs);
    return _mm256_set_m128i((__m128i)tempo_iq4_levels_at(packed >> 4), (__m128i)tempo_iq4_levels_at(packed & 15));
}

/* The 32 integer values of a Q4_1 (0..15), Q5_0 (-16..15), Q5_1 (0..31) or
 * IQ4_NL (its levels) block as bytes, value v in byte v: the nibbles, and
 * for Q5 the fifth bits (the 32-bit qh, bit j value j's). */
TEMPO_LOW_BIT_INLINE __m256i tempo_block32_bytes(WeightType t, const uint8_t *b) {
    const uint8_t *qs = b + tempo_block32_nibbles_at(t);
    __m256i q = t == WEIGHT_IQ4_NL ? tempo_iq4_levels32(qs) : tempo_nibbles32(qs);
    if (t == WEIGHT_Q5_0 || t == WEIGHT_Q5_1) {
        uint32_t qh;
        memcpy(&qh, b + tempo_q5_high_bits_at(t), sizeof qh);
        q = _mm256_mask_add_epi8(q, (__mmask32)qh, q, _mm256_set1_epi8(16));
        if (t == WEIGHT_Q5_0) q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
    return q;
}
#endif

#if defined(__AVX512F__)
/* tempo_q5_vectors with tables: low[k] is the value of code k, high[k] of
 * code 16 + k, each computed as the reference does; a value's nibble picks
 * from low (vpermps), and where its fifth bit is set (a mask register
 * loaded from qh: bit j for value j) from high (vpermps under the mask). */
TEMPO_LOW_BIT_INLINE void tempo_q5_lookup(const uint8_t *b, int offset, F32x16 w[2]) {
    F32x16 d = tempo_half_scale16(b), k = tempo_lane_index(), low, high;
    if (offset) low = (k - 16.0f) * d, high = k * d;
    else {
        F32x16 m = tempo_half_scale16(b + 2);
        low = k * d + m, high = (k + 16.0f) * d + m;
    }
    const uint8_t *qh = b + (offset ? 2 : 4);
    uint32_t fifth;
    memcpy(&fifth, qh, sizeof fifth);
    I32x16 code = tempo_codes16(qh + 4);
    for (int h = 0; h < 2; h++) {
        __m512i nibble = (__m512i)(h ? code >> 4 : code); /* vpermps reads bits 3:0 */
        __m512 value = _mm512_permutexvar_ps(nibble, (__m512)low);
        w[h] = (F32x16)_mm512_mask_permutexvar_ps(value, (__mmask16)(fifth >> 16 * h), nibble, (__m512)high);
    }
}
#endif

/* Q5_0 (offset set: w = (q - 16) * d) and Q5_1 (w = q * d + m), their 32
 * values; q is a nibble of qs[j] (low: value j, high: j + 16) and a fifth bit. */
TEMPO_LOW_BIT_INLINE void tempo_q5_vectors(const uint8_t *b, int offset, F32x16 w[2]) {
#if defined(__AVX512F__)
    tempo_q5_lookup(b, offset, w);
#else
    float d = tempo_half_scale(b), m = offset ? 0.0f : tempo_half_scale(b + 2);
    const uint8_t *qh = b + (offset ? 2 : 4);
    U8x16 q = tempo_bytes16(qh + 4);
    for (int h = 0; h < 2; h++) {
        U8x16 q5 = (h ? q >> 4 : q & 15) | tempo_fifth_bits(qh, h);
        if (offset) w[h] = tempo_floats_i8((I8x16)q5 - 16) * d;
        else w[h] = tempo_floats_u8(q5) * d + m;
    }
#endif
}

/* Q2_K, values 64g .. 64g+63 of the block at b (sub-blocks of 16: 4g ..
 * 4g+3): w = (d*sc) * q - (dmin*m), q bits 2s..2s+1 of 16 bytes of qs. */
#if defined(__AVX512VBMI__)
/* vpmultishiftqb's control: byte i of each qword takes the 8 bits from
 * bit 8i + shift (mod 64) of its qword, i.e. its own byte shifted right;
 * `low` for the zmm's low 256 bits, `high` for the upper. */
static inline __m512i tempo_byte_shifts(int low, int high) {
    long long base = 0x3830282018100800, ones = 0x0101010101010101, bits = 0x3f3f3f3f3f3f3f3f;
    long long lo = (base + (low & 63) * ones) & bits, hi = (base + (high & 63) * ones) & bits;
    return _mm512_set_epi64(hi, hi, hi, hi, lo, lo, lo, lo);
}

/* Q2_K's 16 scale products, lane j: d * sc_j and dmin * m_j, sc_j | m_j << 4 byte j at b (a NaN half quieted by the product either way: tempo_half_scale16). */
TEMPO_LOW_BIT_INLINE TempoLowBitBlock tempo_q2_k_scale_products(const uint8_t *b) {
    I32x16 codes = tempo_codes16(b);
    TempoLowBitBlock block = {.scale = tempo_half_scale16(b + 80) * __builtin_convertvector(codes & 15, F32x16),
                              .min = tempo_half_scale16(b + 82) * __builtin_convertvector(codes >> 4, F32x16)};
    return block;
}

/* Q2_K group g's 16 values: lane 4k + c is (d*sc) * c - (dmin*m) of
 * sub-block 4g + k, the reference's product and difference, each rounded
 * (the scale products `block`'s lanes 4g + k, spread by vpermps). */
TEMPO_LOW_BIT_INLINE F32x16 tempo_q2_k_table(TempoLowBitBlock block, int g) {
    int s = 4 * g;
    __m512i sub = _mm512_set_epi32(s + 3, s + 3, s + 3, s + 3, s + 2, s + 2, s + 2, s + 2, s + 1, s + 1, s + 1, s + 1, s, s, s, s);
    F32x16 dl = (F32x16)_mm512_permutexvar_ps(sub, (__m512)block.scale), ml = (F32x16)_mm512_permutexvar_ps(sub, (__m512)block.min);
    F32x16 q = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
    return dl * q - ml;
}

/* Q2_K group g's 64 table entries, a byte each in value order: value 16k + i
 * is 4k + bits 2j, 2j+1 (j = 2 (g % 2) + k / 2) of qs[16 (k % 2) + i]: qs's
 * 32 bytes twice, each byte shifted by vpmultishiftqb, 4k merged in by a
 * bit select (vpternlogd). */
TEMPO_LOW_BIT_INLINE __m512i tempo_q2_k_entries(const uint8_t *qs, int g) {
    __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    __m512i q = _mm512_multishift_epi64_epi8(tempo_byte_shifts(4 * (g % 2), 4 * (g % 2) + 2), both);
    __m512i k = _mm512_set_epi64(0x0c0c0c0c0c0c0c0c, 0x0c0c0c0c0c0c0c0c, 0x0808080808080808, 0x0808080808080808,
                                 0x0404040404040404, 0x0404040404040404, 0, 0);
    return _mm512_ternarylogic_epi32(q, k, _mm512_set1_epi8(3), 0xe4); /* bits 0..1 of q, 4k above */
}
#endif

/* (VBMI: `block` is tempo_q2_k_scale_products(b); elsewhere unused.) */
TEMPO_LOW_BIT_INLINE void tempo_q2_k_vectors(const uint8_t *b, int g, TempoLowBitBlock block, F32x16 w[4]) {
    const uint8_t *qs = b + 16 + 32 * (g / 2);
#if defined(__AVX512VBMI__)
    F32x16 table = tempo_q2_k_table(block, g);
    __m512i entries = tempo_q2_k_entries(qs, g);
    for (int k = 0; k < 4; k++) { /* bytes 16k .. 16k+15 to 32-bit lanes (vpermb), then table[entry] (vpermps) */
        __m512i at = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(16 * k));
        w[k] = (F32x16)_mm512_permutexvar_ps(_mm512_maskz_permutexvar_epi8(0x1111111111111111ull, at, entries), (__m512)table);
    }
#else
    (void)block;
    float d = tempo_half_scale(b + 80), dmin = tempo_half_scale(b + 82);
    for (int k = 0; k < 4; k++) {
        int sub = 4 * g + k, shift = 2 * (2 * (g % 2) + k / 2);
        float dl = d * (float)(b[sub] & 0x0F), ml = dmin * (float)(b[sub] >> 4);
        U8x16 q = (tempo_bytes16(qs + 16 * (k % 2)) >> shift) & 3;
        w[k] = dl * tempo_floats_u8(q) - ml;
    }
#endif
}

/* Q3_K, values 64g .. 64g+63 of the block at b (sub-blocks 4g .. 4g+3):
 * w = (d*(sc - 32)) * q, q Q2_K's two bits minus 4 where the hmask bit
 * 4(g/2) + j is clear (j the pair of bits). With VBMI: q + 4 = idx, the
 * low bits | the hmask bit << 2 (0..7), so a group takes 32 values,
 * table[8k + idx] = (d*(sc - 32)) * (idx - 4) of sub-block 4g + k. */
#if defined(__AVX512VBMI__)
/* Q3_K's 16 scale products d * (sc_j - 32), lane j; sc_j is
 * tempo_q3_k_scale's 6 bits from the 12 bytes at b + 96 (low 4: the low
 * nibbles of bytes 0..7, then their high nibbles; top 2: bits 2(j/4),
 * 2(j/4)+1 of byte 8 + j%4), built eight bytes at a time. */
TEMPO_LOW_BIT_INLINE F32x16 tempo_q3_k_scale_products(const uint8_t *b) {
    uint64_t s01, top = 0;
    memcpy(&s01, b + 96, sizeof s01);
    memcpy(&top, b + 104, 4);
    uint64_t low = (s01 & 0x0f0f0f0f0f0f0f0fu) | ((top << 4 | top << 34) & 0x3030303030303030u); /* sc_0 .. sc_7 */
    uint64_t high = (s01 >> 4 & 0x0f0f0f0f0f0f0f0fu) | ((top | top << 30) & 0x3030303030303030u); /* sc_8 .. sc_15 */
    U8x16 codes = (U8x16)_mm_unpacklo_epi64(_mm_cvtsi64_si128((long long)low), _mm_cvtsi64_si128((long long)high));
    return tempo_half_scale16(b + 108) * (tempo_floats_u8(codes) - 32.0f); /* (float)(sc - 32): exact either way */
}

/* Q3_K group g's two tables: lane 8k' + i of table h is the reference's
 * product (d*(sc - 32)) * (i - 4) of sub-block 4g + 2h + k' (products:
 * tempo_q3_k_scale_products), the scale product spread by one vpermps. */
TEMPO_LOW_BIT_INLINE void tempo_q3_k_tables(F32x16 products, int g, F32x16 table[2]) {
    const F32x16 q = {-4, -3, -2, -1, 0, 1, 2, 3, -4, -3, -2, -1, 0, 1, 2, 3};
    for (int h = 0; h < 2; h++) {
        int s = 4 * g + 2 * h;
        __m512i sub = _mm512_set_epi32(s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s, s, s, s, s, s, s, s);
        table[h] = (F32x16)_mm512_permutexvar_ps(sub, (__m512)products) * q;
    }
}

/* Q3_K group g's 64 table entries, a byte each in value order: value 16k
 * + l is 8k + q + 4h, q bits 2j, 2j+1 (j = 2(g%2) + k/2) of qs[16(k%2) +
 * l] and h bit 2g + k/2 of hmask[16(k%2) + l]: qs's 32 bytes and hmask's
 * twice, each byte shifted by vpmultishiftqb (q to bits 0..1, h to 2),
 * merged by two bit selects (vpternlogd, c ? a : b). Bits 5..7 are left over:
 * vpermt2ps reads index bits 4:0 only. */
TEMPO_LOW_BIT_INLINE __m512i tempo_q3_k_entries(const uint8_t *b, int g) {
    __m512i qs = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 32 + 32 * (g / 2))));
    __m512i hmask = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b));
    __m512i q = _mm512_multishift_epi64_epi8(tempo_byte_shifts(4 * (g % 2), 4 * (g % 2) + 2), qs);
    __m512i h = _mm512_multishift_epi64_epi8(tempo_byte_shifts(2 * g - 2, 2 * g - 1), hmask);
    __m512i qh = _mm512_ternarylogic_epi32(q, h, _mm512_set1_epi8(3), 0xe4); /* bits 0..1 of q, the rest of h */
    __m512i k = _mm512_set_epi64(0x1818181818181818, 0x1818181818181818, 0x1010101010101010, 0x1010101010101010,
                                 0x0808080808080808, 0x0808080808080808, 0, 0);
    return _mm512_ternarylogic_epi32(qh, k, _mm512_set1_epi8(7), 0xe4); /* bits 0..2 of qh, 8k above */
}
#endif

/* (VBMI: `products` is tempo_q3_k_scale_products(b); elsewhere unused.) */
TEMPO_LOW_BIT_INLINE void tempo_q3_k_vectors(const uint8_t *b, int g, F32x16 products, F32x16 w[4]) {
#if defined(__AVX512VBMI__)
    F32x16 table[2];
    tempo_q3_k_tables(products, g, table);
    __m512i entries = tempo_q3_k_entries(b, g);
    for (int k = 0; k < 4; k++) { /* bytes 16k .. 16k+15 to 32-bit lanes (vpermb), then table[entry] (vpermt2ps) */
        __m512i at = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(16 * k));
        __m512i entry = _mm512_maskz_permutexvar_epi8(0x1111111111111111ull, at, entries);
        w[k] = (F32x16)_mm512_permutex2var_ps((__m512)table[0], entry, (__m512)table[1]);
    }
#else
    (void)products;
    float d = tempo_half_scale(b + 108);
    const uint8_t *qs = b + 32 + 32 * (g / 2);
    for (int k = 0; k < 4; k++) {
        int sub = 4 * g + k, j = 2 * (g % 2) + k / 2;
        float dl = d * (float)(tempo_q3_k_scale(b + 96, sub) - 32);
        U8x16 low = (tempo_bytes16(qs + 16 * (k % 2)) >> (2 * j)) & 3;
        U8x16 high = (tempo_bytes16(b + 16 * (k % 2)) >> (4 * (g / 2) + j)) & 1;
        w[k] = dl * tempo_floats_i8((I8x16)low - (I8x16)((high ^ 1) << 2));
    }
#endif
}

/* IQ4_XS, values 64g .. 64g+63 (sub-blocks of 32: 2g, 2g+1), each IQ4_NL's
 * layout: w = (d*(ls - 32)) * level[q], ls tempo_iq4_xs_scale. */
TEMPO_LOW_BIT_INLINE void tempo_iq4_xs_vectors(const uint8_t *b, int g, F32x16 w[4]) {
    F32x16 d = tempo_half_scale16(b);
    for (int s = 0; s < 2; s++) {
        int sub = 2 * g + s;
        tempo_iq4_vectors(b + 8 + 16 * sub, d * (float)(tempo_iq4_xs_scale(b, sub) - 32), w + 2 * s); /* d * (ls - 32) in every lane */
    }
}

/* Q1_0, values 64g .. 64g+63: w = d where bit j of the block's 128 (bit
 * j % 8 of qs[j / 8]) is set, else -d (the negation flips the sign bit
 * only, as the reference's -d does). d is tempo_low_bit_block's: the
 * block's tempo_half_scale_quieted, broadcast once a block. */
TEMPO_LOW_BIT_INLINE void tempo_q1_0_vectors(const uint8_t *b, int g, F32x16 d, F32x16 w[4]) {
    for (int k = 0; k < 4; k++) {
        uint16_t bits;
        memcpy(&bits, b + 2 + 8 * g + 2 * k, sizeof bits);
#if defined(__AVX512F__)
        w[k] = (F32x16)_mm512_mask_blend_ps((__mmask16)bits, (__m512)-d, (__m512)d);
#else
        U32x16 set = ((U32x16){0} + bits) >> (U32x16){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} & 1;
        w[k] = (F32x16)((U32x16)d ^ (set ^ 1) << 31);
#endif
    }
}

/* Q2_0 (64 values): w = (q - 1) * d, q of value 16k + i bits 2i..2i+1 of
 * the 32-bit word at qs[4k] (bits 2(j % 4) of qs[j / 4] for value j). */
TEMPO_LOW_BIT_INLINE void tempo_q2_0_vectors(const uint8_t *b, F32x16 w[4]) {
    F32x16 d = tempo_half_scale16(b);
    for (int k = 0; k < 4; k++) {
        uint32_t word;
        memcpy(&word, b + 2 + 4 * k, sizeof word);
        U32x16 q = ((U32x16){0} + word) >> (U32x16){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
        w[k] = tempo_ternary_values((I32x16)q, d);
    }
}

/* Whether a type is decoded here or in unpack_grids.h; its vectors per
 * call (group of 64 values of a 256-value block, of Q1_0's 128 or Q2_0's
 * 64: 4; a 32-value block: 2). */
static inline int tempo_low_bit_decoded(WeightType t) {
    return t == WEIGHT_Q4_1 || t == WEIGHT_Q5_0 || t == WEIGHT_Q5_1 || t == WEIGHT_IQ4_NL || t == WEIGHT_Q2_K ||
           t == WEIGHT_Q3_K || t == WEIGHT_IQ4_XS || t == WEIGHT_Q1_0 || t == WEIGHT_Q2_0 || tempo_grid_decoded(t);
}

TEMPO_LOW_BIT_INLINE TempoLowBitBlock tempo_low_bit_block(WeightType t, const uint8_t *b) {
    TempoLowBitBlock block = {{0}, {0}, {{0}, {0}}};
#if defined(__AVX512VBMI__)
    if (t == WEIGHT_Q2_K) block = tempo_q2_k_scale_products(b);
    if (t == WEIGHT_Q3_K) block.scale = tempo_q3_k_scale_products(b);
    if (t == WEIGHT_IQ1_S) tempo_iq1_s_table(b, block.table);
#endif
    if (tempo_grid_decoded(t)) block.scale = tempo_grid_block_scales(t, b);
    if (t == WEIGHT_Q1_0) {
        float d = tempo_half_scale_quieted(b); /* inline: a call here keeps the kernel's sums in memory */
        block.scale = (F32x16){d, d, d, d, d, d, d, d, d, d, d, d, d, d, d, d};
    }
    return block;
}

/* The vectors of group g (blocks of 128 or 256 values) or of the whole
 * block (32 and 64 values, g = 0) at b; `block` is tempo_low_bit_block(t, b). */
TEMPO_LOW_BIT_INLINE void tempo_low_bit_vectors(WeightType t, const uint8_t *b, int g, TempoLowBitBlock block,
                                                F32x16 w[4]) {
    switch (t) {
    case WEIGHT_Q4_1: tempo_q4_1_vectors(b, w); break;
    case WEIGHT_Q5_0: tempo_q5_vectors(b, 1, w); break;
    case WEIGHT_Q5_1: tempo_q5_vectors(b, 0, w); break;
    case WEIGHT_IQ4_NL: tempo_iq4_nl_vectors(b, w); break;
    case WEIGHT_Q2_K: tempo_q2_k_vectors(b, g, block, w); break;
    case WEIGHT_Q3_K: tempo_q3_k_vectors(b, g, block.scale, w); break;
    case WEIGHT_IQ4_XS: tempo_iq4_xs_vectors(b, g, w); break;
    case WEIGHT_Q1_0: tempo_q1_0_vectors(b, g, block.scale, w); break;
    case WEIGHT_Q2_0: tempo_q2_0_vectors(b, w); break;
#if defined(__AVX512VBMI__)
    case WEIGHT_IQ1_S: tempo_iq1_s_64(b, g, block.table, w); break;
    case WEIGHT_IQ1_M: tempo_iq1_m_64(b, g, block.scale, w); break;
#endif
    default: tempo_grid_vectors(t, b, g, block.scale, w); break;
    }
}

#undef TEMPO_LOW_BIT_INLINE
#endif
