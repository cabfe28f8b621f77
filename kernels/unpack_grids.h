/* unpack_grids.h - the ternary types TQ2_0, TQ1_0 and the IQ grid types
 * (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) to f32 in vector
 * registers for the matrix product (matmul.c, through unpack_low_bit.h),
 * 64 values of a 256-value block at a time, in value order. Each value is
 * the float the scalar reference (dequant_k.c, dequant_iq.c) gives, bit
 * for bit: the same scale products as scalars, then per value the same
 * product(s) in the same order, each rounded to float. A grid point is a
 * 64-bit (IQ3: 32-bit) load from its table (iq_grids.h), two (four) to a
 * vector of 16; a sign is the reference's negation, a flip of the sign
 * bit (an XOR under a mask register with AVX-512; not 0 - x, which makes
 * +0 of -0). With AVX-512 VBMI, GFNI and BITALG, IQ2_XXS, IQ2_XS, IQ2_S
 * and IQ3_XXS look each value up in a table of the products and their
 * negations instead (tempo_iq2_looked_up, tempo_iq3_xxs_64). */
#ifndef TEMPO_UNPACK_GRIDS_H
#define TEMPO_UNPACK_GRIDS_H

#include "iq_grids.h"
#include "unpack.h"

#define TEMPO_GRID_INLINE static inline __attribute__((always_inline))

typedef uint64_t U64x2 __attribute__((vector_size(16)));
typedef uint32_t U32x4 __attribute__((vector_size(16)));

/* Lane k: (k % 4) - 1, times d: the ternary values (q - 1) * d of codes q = 0..2 (entry 3 unused). */
TEMPO_GRID_INLINE F32x16 tempo_ternary_table(F32x16 d) {
    return (F32x16){-1, 0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2} * d;
}

/* Lane i: (q_i - 1) * d for codes q_i in 0..3 (only bits 1:0 of q read with AVX-512). */
TEMPO_GRID_INLINE F32x16 tempo_ternary_values(I32x16 q, F32x16 d) {
#if defined(__AVX512F__)
    return (F32x16)_mm512_permutexvar_ps((__m512i)q, (__m512)tempo_ternary_table(d));
#else
    return (__builtin_convertvector(q & 3, F32x16) - 1.0f) * d;
#endif
}

/* 16 bytes, each widened to a 32-bit lane (AVX-512: vpmovzxbd, spelled; GCC would widen a byte at a time). */
TEMPO_GRID_INLINE I32x16 tempo_widened(U8x16 q) {
#if defined(__AVX512F__)
    return (I32x16)_mm512_cvtepu8_epi32((__m128i)q);
#else
    return __builtin_convertvector(q, I32x16);
#endif
}

/* 16 bytes at p, each widened to a 32-bit lane. */
TEMPO_GRID_INLINE I32x16 tempo_bytes_wide(const uint8_t *p) {
    return tempo_widened(tempo_bytes16(p));
}

/* TQ2_0, values 64g .. 64g+63: w = (q - 1) * d, q bits 2l..2l+1 of byte m
 * of 32-byte half g/2 for value 32l + m of the half (l = 2 (g % 2) + k / 2). */
TEMPO_GRID_INLINE void tempo_tq2_0_vectors(const uint8_t *b, int g, F32x16 w[4]) {
    F32x16 d = tempo_half_scale16(b + 64);
    const uint8_t *qs = b + 32 * (g / 2);
    I32x16 bytes[2] = {tempo_bytes_wide(qs), tempo_bytes_wide(qs + 16)};
    for (int k = 0; k < 4; k++) w[k] = tempo_ternary_values(bytes[k % 2] >> 2 * (2 * (g % 2) + k / 2), d);
}

#if defined(__AVX512BW__)
/* 16-bit lane i: trit n_i of byte x_i, given pow3_256_i = 3^n_i << 8 (x, 3^n < 256): x * (3^n << 8) in
 * 16 bits is ((x * 3^n) mod 256) << 8 (vpmullw), its product with 3 >> 16 the trit (vpmulhuw). */
TEMPO_GRID_INLINE __m512i tempo_trits_epi16(__m512i x, __m512i pow3_256) {
    return _mm512_mulhi_epu16(_mm512_mullo_epi16(x, pow3_256), _mm512_set1_epi16(3));
}
#endif

/* Lane i: trit n_i of byte x_i (pow3_i = 3^n_i), as dequant_k.c's ternary(): (((x * 3^n) mod 256) * 3) >> 8. */
TEMPO_GRID_INLINE I32x16 tempo_trits(I32x16 x, I32x16 pow3) {
#if defined(__AVX512BW__) /* in each 32-bit lane's low 16 bits; the high ones: 0 * 0, 0 */
    return (I32x16)tempo_trits_epi16((__m512i)x, (__m512i)(pow3 << 8));
#else
    return (((x * pow3) & 255) * 3) >> 8;
#endif
}

/* TQ1_0, vector j (values 16j .. 16j+15): j < 10, trit j / 2 of qs[16 (j % 2) + i];
 * j < 15, trit j - 10 of qs[32 + i]; j = 15, trit i / 4 of qh[i % 4]. */
TEMPO_GRID_INLINE I32x16 tempo_tq1_0_trits(const uint8_t *b, int j) {
    static const int pow3[5] = {1, 3, 9, 27, 81};
    if (j < 10) return tempo_trits(tempo_bytes_wide(b + 16 * (j % 2)), (I32x16){0} + pow3[j / 2]);
    if (j < 15) return tempo_trits(tempo_bytes_wide(b + 32), (I32x16){0} + pow3[j - 10]);
    uint32_t qh;
    memcpy(&qh, b + 48, sizeof qh);
    I32x16 x = tempo_widened((U8x16)(U32x4){qh, qh, qh, qh}); /* lane i: qh[i % 4] */
    return tempo_trits(x, (I32x16){1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27});
}

/* TQ1_0, values 64g .. 64g+63: w = (t - 1) * d, t a base-3 digit (tempo_tq1_0_trits). */
TEMPO_GRID_INLINE void tempo_tq1_0_vectors(const uint8_t *b, int g, F32x16 w[4]) {
    F32x16 d = tempo_half_scale16(b + 52);
    for (int k = 0; k < 4; k++) w[k] = tempo_ternary_values(tempo_tq1_0_trits(b, 4 * g + k), d);
}

/* ---- the IQ grid types: 8 groups of 32 values (ib) a block, two vectors each ---- */

/* Little-endian 16-, 32- and 64-bit fields at p. */
TEMPO_GRID_INLINE unsigned tempo_u16_at(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
TEMPO_GRID_INLINE uint32_t tempo_u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
TEMPO_GRID_INLINE uint64_t tempo_u64_at(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The 8 signs of a 7-bit sign index (dequant_iq.c's signs_of): bit 7 the parity of bits 0..6. */
TEMPO_GRID_INLINE unsigned tempo_grid_signs(unsigned index7) {
    return index7 | (unsigned)__builtin_parity(index7) << 7;
}

/* Two grid points of 8 values (a's, then b's) as 16 bytes. */
TEMPO_GRID_INLINE U8x16 tempo_grid_points2(const uint8_t *a, const uint8_t *b) {
    uint64_t lo, hi;
    memcpy(&lo, a, sizeof lo), memcpy(&hi, b, sizeof hi);
    return (U8x16)(U64x2){lo, hi};
}

/* Four grid points of 4 values as 16 bytes. */
TEMPO_GRID_INLINE U8x16 tempo_grid_points4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3) {
    uint32_t v[4];
    memcpy(&v[0], p0, 4), memcpy(&v[1], p1, 4), memcpy(&v[2], p2, 4), memcpy(&v[3], p3, 4);
    return (U8x16)(U32x4){v[0], v[1], v[2], v[3]};
}

/* 16 values db * grid_i, negated where bit i of signs is set (the reference's product, then its negation: the sign bit flipped). */
TEMPO_GRID_INLINE F32x16 tempo_signed_grid(U8x16 grid, float db, unsigned signs) {
    F32x16 v = db * tempo_floats_u8(grid);
#if defined(__AVX512F__)
    __m512i bits = (__m512i)v;
    return (F32x16)_mm512_mask_xor_epi32(bits, (__mmask16)signs, bits, _mm512_set1_epi32(INT32_MIN));
#else
    const I32x16 bit = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
    I32x16 negative = ((int)signs & bit) != 0; /* -1 (all bits) or 0 */
    I32x16 bits;
    memcpy(&bits, &v, sizeof bits);
    bits ^= negative & INT32_MIN;
    memcpy(&v, &bits, sizeof v);
    return v;
#endif
}

/* db = d * (0.5 + s) * 0.25 of IQ2_XS / IQ2_S, s a 4-bit scale. */
TEMPO_GRID_INLINE float tempo_iq2_scale(float d, unsigned s) { return d * (0.5f + (float)s) * 0.25f; }

/* IQ2_XXS, values 32ib .. 32ib+31 (tempo_dequant_iq2_xxs; with VBMI, GFNI and BITALG tempo_iq2_64). */
TEMPO_GRID_INLINE void tempo_iq2_xxs_32(const uint8_t *b, float d, int ib, F32x16 w[2]) {
    const uint8_t *q = b + 2 + 8 * ib;
    uint32_t aux = tempo_u32_at(q + 4);
    float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
    for (int h = 0; h < 2; h++) {
        unsigned signs = tempo_grid_signs(aux >> 14 * h & 127) | tempo_grid_signs(aux >> (14 * h + 7) & 127) << 8;
        w[h] = tempo_signed_grid(tempo_grid_points2(tempo_iq2xxs_grid[q[2 * h]], tempo_iq2xxs_grid[q[2 * h + 1]]), db, signs);
    }
}

/* IQ2_XS, values 32ib .. 32ib+31 (tempo_dequant_iq2_xs). */
TEMPO_GRID_INLINE void tempo_iq2_xs_32(const uint8_t *b, float d, int ib, F32x16 w[2]) {
    const uint8_t *qs = b + 2 + 8 * ib;
    for (int h = 0; h < 2; h++) {
        unsigned q0 = tempo_u16_at(qs + 4 * h), q1 = tempo_u16_at(qs + 4 * h + 2);
        float db = tempo_iq2_scale(d, b[66 + ib] >> 4 * h & 0x0F);
        U8x16 grid = tempo_grid_points2(tempo_iq2xs_grid[q0 & 511], tempo_iq2xs_grid[q1 & 511]);
        w[h] = tempo_signed_grid(grid, db, tempo_grid_signs(q0 >> 9) | tempo_grid_signs(q1 >> 9) << 8);
    }
}

/* IQ2_S, values 32ib .. 32ib+31 (tempo_dequant_iq2_s). */
TEMPO_GRID_INLINE void tempo_iq2_s_32(const uint8_t *b, float d, int ib, F32x16 w[2]) {
    const uint8_t *qs = b + 2 + 4 * ib;
    unsigned qh = b[66 + ib];
    for (int h = 0; h < 2; h++) {
        unsigned i0 = qs[2 * h] | (qh >> 4 * h & 3) << 8, i1 = qs[2 * h + 1] | (qh >> (4 * h + 2) & 3) << 8;
        float db = tempo_iq2_scale(d, b[74 + ib] >> 4 * h & 0x0F);
        U8x16 grid = tempo_grid_points2(tempo_iq2s_grid[i0], tempo_iq2s_grid[i1]);
        w[h] = tempo_signed_grid(grid, db, tempo_u16_at(b + 34 + 4 * ib + 2 * h));
    }
}

/* IQ3_XXS, values 32ib .. 32ib+31 (tempo_dequant_iq3_xxs). */
TEMPO_GRID_INLINE void tempo_iq3_xxs_32(const uint8_t *b, float d, int ib, F32x16 w[2]) {
    const uint8_t *qs = b + 2 + 8 * ib;
    uint32_t aux = tempo_u32_at(b + 66 + 4 * ib);
    float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
    for (int h = 0; h < 2; h++, qs += 4) {
        unsigned signs = tempo_grid_signs(aux >> 14 * h & 127) | tempo_grid_signs(aux >> (14 * h + 7) & 127) << 8;
        U8x16 grid = tempo_grid_points4(tempo_iq3xxs_grid[qs[0]], tempo_iq3xxs_grid[qs[1]], tempo_iq3xxs_grid[qs[2]],
                                        tempo_iq3xxs_grid[qs[3]]);
        w[h] = tempo_signed_grid(grid, db, signs);
    }
}

/* IQ3_S, values 32ib .. 32ib+31 (tempo_dequant_iq3_s): point p's index qs[8ib + p] | bit p of qh[ib] << 8. */
TEMPO_GRID_INLINE void tempo_iq3_s_32(const uint8_t *b, float d, int ib, F32x16 w[2]) {
    const uint8_t *qs = b + 2 + 8 * ib;
    unsigned qh = b[66 + ib];
    float db = d * (float)(1 + 2 * (b[106 + ib / 2] >> 4 * (ib % 2) & 0x0F));
    for (int h = 0; h < 2; h++, qs += 4, qh >>= 4) {
        U8x16 grid = tempo_grid_points4(tempo_iq3s_grid[qs[0] | (qh & 1) << 8], tempo_iq3s_grid[qs[1] | (qh & 2) << 7],
                                        tempo_iq3s_grid[qs[2] | (qh & 4) << 6], tempo_iq3s_grid[qs[3] | (qh & 8) << 5]);
        w[h] = tempo_signed_grid(grid, db, tempo_u16_at(b + 74 + 4 * ib + 2 * h));
    }
}

#if defined(__AVX512F__)
/* A group of 64 values of IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS or IQ3_S (64g .. 64g+63, sub-blocks 2g and 2g + 1):
 * its grid bytes in value order (the magnitudes) and a bit per value set where the value is negative. Read
 * by the exact path (tempo_iq2_looked_up, tempo_iq3_xxs_64) and by ggml's integer lanes (kernels/ggml_ints_avx.c). */
typedef struct {
    __m512i points;
    __mmask64 negative;
} TempoGridGroup;

/* IQ3_S's points of values 64g .. 64g+63 (sub-blocks 2g, 2g+1) at once: the 16 points' indices qs[16g + i] |
 * bit i % 8 of qh[2g + i / 8] << 8 in 32-bit lanes, one gather of their 4-byte entries (in value order). */
TEMPO_GRID_INLINE __m512i tempo_iq3_s_points(const uint8_t *b, int g) {
    __m512i low = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2 + 16 * g)));
    __m512i bit = _mm512_srlv_epi32(_mm512_set1_epi32((int)tempo_u16_at(b + 66 + 2 * g)),
                                    _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    __m512i index = _mm512_or_si512(low, _mm512_slli_epi32(_mm512_and_si512(bit, _mm512_set1_epi32(1)), 8));
    return _mm512_i32gather_epi32(index, tempo_iq3s_grid, 4);
}

/* IQ3_S's group: its points and the 64 sign bits at 74 + 8g. */
TEMPO_GRID_INLINE TempoGridGroup tempo_iq3_s_group(const uint8_t *b, int g) {
    return (TempoGridGroup){tempo_iq3_s_points(b, g), (__mmask64)tempo_u64_at(b + 74 + 8 * g)};
}

/* IQ3_S, values 64g .. 64g+63: the points (tempo_iq3_s_points), then tempo_iq3_s_32's products and signs per 16. */
TEMPO_GRID_INLINE void tempo_iq3_s_64(const uint8_t *b, float d, int g, F32x16 w[4]) {
    __m512i points = tempo_iq3_s_points(b, g);
    float db[2];
    for (int s = 0; s < 2; s++) db[s] = d * (float)(1 + 2 * (b[106 + g] >> 4 * s & 0x0F)); /* sub-block 2g + s */
    w[0] = tempo_signed_grid((U8x16)_mm512_extracti32x4_epi32(points, 0), db[0], tempo_u16_at(b + 74 + 8 * g));
    w[1] = tempo_signed_grid((U8x16)_mm512_extracti32x4_epi32(points, 1), db[0], tempo_u16_at(b + 76 + 8 * g));
    w[2] = tempo_signed_grid((U8x16)_mm512_extracti32x4_epi32(points, 2), db[1], tempo_u16_at(b + 78 + 8 * g));
    w[3] = tempo_signed_grid((U8x16)_mm512_extracti32x4_epi32(points, 3), db[1], tempo_u16_at(b + 80 + 8 * g));
}
#endif

/* IQ1's delta: -1/8 when the bit is set, else +1/8. */
TEMPO_GRID_INLINE float tempo_iq1_delta(unsigned bit) { return bit ? -0.125f : 0.125f; }

/* IQ1_M's f16 scale: the top nibbles of its four 16-bit scale words (w0's lowest). */
TEMPO_GRID_INLINE float tempo_iq1_m_scale(const uint8_t *b) {
    const uint8_t *sc = b + 48;
    unsigned w0 = tempo_u16_at(sc), w1 = tempo_u16_at(sc + 2), w2 = tempo_u16_at(sc + 4), w3 = tempo_u16_at(sc + 6);
    unsigned half = w0 >> 12 | (w1 >> 8 & 0x00F0) | (w2 >> 4 & 0x0F00) | (w3 & 0xF000);
    uint8_t bytes[2] = {(uint8_t)half, (uint8_t)(half >> 8)};
    return tempo_half_scale(bytes);
}

/* A grid type's super-block scale d: its first two bytes as f16, IQ1_M's from its scale words. */
TEMPO_GRID_INLINE float tempo_grid_d(WeightType t, const uint8_t *b) {
    return t == WEIGHT_IQ1_M ? tempo_iq1_m_scale(b) : tempo_half_scale(b);
}

#if defined(__AVX512VBMI__)
/* ---- 64 values at once (sub-blocks 2g, 2g+1): the group's grid points by 8 loads (zen's vpgatherqq was
 * slower), 64 bytes in value order; a value's product looked up, not computed: a table holds the
 * reference's rounded product for each (scale, level) the group uses, and each byte of the points is
 * turned into its entry's index (below: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS; then IQ1). ---- */

/* The grid points at index[0..7] (8 bytes each) in the 64-bit lanes 0..7, by 8 loads. */
TEMPO_GRID_INLINE __m512i tempo_grid_points8(const uint8_t (*grid)[8], const unsigned index[8]) {
    uint64_t p[8];
    for (int j = 0; j < 8; j++) memcpy(&p[j], grid[index[j]], sizeof p[j]);
    return _mm512_set_epi64((long long)p[7], (long long)p[6], (long long)p[5], (long long)p[4], (long long)p[3], (long long)p[2],
                            (long long)p[1], (long long)p[0]);
}

/* A grid type's 16 scale fields of a block, field j (the scale of values 16j .. 16j+15) in 32-bit lane j, as
 * the reference reads them: IQ2_XS's, IQ2_S's nibble j of the 8 bytes at 66, 74; IQ2_XXS's, IQ3_XXS's bits
 * 28..31 of sub-block j / 2's aux word (at 6 + 8 (j / 2), 66 + 4 (j / 2)); IQ3_S's nibble j / 2 of the 4 bytes
 * at 106; IQ1_S's bits 12..14 of the word at 34 + 2 (j / 2); IQ1_M's bits 3 (j % 4) .. of the word at 48 + 2 (j / 4).
 * (vpmultishiftqb brings a field to byte 0 of its lane.) Shared by the exact path's scale products
 * (tempo_grid_block_scales) and ggml's integer lanes (kernels/ggml_ints_avx.c). */
TEMPO_GRID_INLINE __m512i tempo_grid_scale_fields(WeightType t, const uint8_t *b) {
    const __m512i sub_block = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0); /* j / 2 */
    __m512i at, bits;
    switch (t) {
    case WEIGHT_IQ2_XS:
    case WEIGHT_IQ2_S:
        at = _mm512_set_epi32(60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0);
        bits = _mm512_multishift_epi64_epi8(at, _mm512_set1_epi64((long long)tempo_u64_at(b + (t == WEIGHT_IQ2_XS ? 66 : 74))));
        return _mm512_and_si512(bits, _mm512_set1_epi32(15));
    case WEIGHT_IQ2_XXS: /* aux: word 2 (j / 2) + 1 of the 64 bytes at 2 */
        bits = _mm512_permutexvar_epi32(_mm512_set_epi32(15, 15, 13, 13, 11, 11, 9, 9, 7, 7, 5, 5, 3, 3, 1, 1), _mm512_loadu_si512((const void *)(b + 2)));
        return _mm512_srli_epi32(bits, 28);
    case WEIGHT_IQ3_XXS:
        return _mm512_srli_epi32(_mm512_permutexvar_epi32(sub_block, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b + 66)))), 28);
    case WEIGHT_IQ3_S:
        at = _mm512_set_epi32(28, 28, 24, 24, 20, 20, 16, 16, 12, 12, 8, 8, 4, 4, 0, 0);
        return _mm512_and_si512(_mm512_multishift_epi64_epi8(at, _mm512_set1_epi64((long long)tempo_u32_at(b + 106))), _mm512_set1_epi32(15));
    case WEIGHT_IQ1_S:
        bits = _mm512_permutexvar_epi32(sub_block, _mm512_castsi256_si512(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(b + 34)))));
        return _mm512_and_si512(_mm512_srli_epi32(bits, 12), _mm512_set1_epi32(7));
    default: /* IQ1_M */
        at = _mm512_set_epi32(57, 54, 51, 48, 41, 38, 35, 32, 25, 22, 19, 16, 9, 6, 3, 0); /* 16 (j / 4) + 3 (j % 4) */
        return _mm512_and_si512(_mm512_multishift_epi64_epi8(at, _mm512_set1_epi64((long long)tempo_u64_at(b + 48))), _mm512_set1_epi32(7));
    }
}

#if defined(__GFNI__) && defined(__AVX512BITALG__)
/* ---- IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS: a group's 64 values from one table of 32 (vpermt2ps reads index bits 4:0):
 * lane e of `low` the reference's product db * v of entry e's scale and level, lane e of `high` its
 * negation (the sign bit flipped). A value's entry is a byte, all 64 built at once from the loaded
 * points: its level's bits, its scale's number (k) above them, bit 4 set where its sign is. ---- */

/* The 64 signs of 8 sign indices of 7 bits, as bits of a mask (bit 8j + i: value i of point j):
 * tempo_grid_signs of bits `from` .. `from` + 6 of byte `at` of 64-bit lane j, i.e. the 7 bits and
 * their parity as the 8th. One affine map of bits per byte (gf2p8affineqb: output bit i is the parity
 * of the input's bits in byte 7 - i of the matrix), then bit 8 at + i of each lane (vpshufbitqmb). */
TEMPO_GRID_INLINE __mmask64 tempo_grid_sign_mask(__m512i fields, int at, int from) {
    uint64_t matrix = (uint64_t)(0x7F << from) & 0xFF; /* byte 0: output bit 7, the parity */
    for (int i = 0; i < 7; i++) matrix |= (uint64_t)(1 << (i + from)) << 8 * (7 - i); /* output bit i: input bit i + from */
    __m512i signs = _mm512_gf2p8affine_epi64_epi8(fields, _mm512_set1_epi64((long long)matrix), 0);
    return _mm512_bitshuffle_epi64_mask(signs, _mm512_set1_epi64(0x0706050403020100 + 0x0808080808080808LL * at));
}

/* The group's 64 values from their entries (tempo_grid_entries), 16k .. 16k+15 in w[k]: table lane entry & 31
 * of low, high, where lane e of low is lane spread_e of scales times levels_e (the reference's product) and
 * lane e of high its negation (the sign bit flipped). */
TEMPO_GRID_INLINE void tempo_grid_table_values(__m512i entries, F32x16 scales, __m512i spread, F32x16 levels, F32x16 w[4]) {
    __m512 low = _mm512_mul_ps(_mm512_permutexvar_ps(spread, (__m512)scales), (__m512)levels);
    __m512 high = (__m512)_mm512_xor_si512((__m512i)low, _mm512_set1_epi32(INT32_MIN));
    for (int k = 0; k < 4; k++) w[k] = (F32x16)_mm512_permutex2var_ps(low, tempo_lane_bytes(entries, k), high);
}

/* The 64 entries: (byte & mask) | scale_of_byte, plus 16 where `negative` has the byte's bit
 * (a byte's bit 4 is clear before: mask and scale_of_byte below 16). */
TEMPO_GRID_INLINE __m512i tempo_grid_entries(__m512i bytes, int mask, __m512i scale_of_byte, __mmask64 negative) {
    __m512i entries = _mm512_ternarylogic_epi32(bytes, scale_of_byte, _mm512_set1_epi8((char)mask), 0xEC); /* (a & c) | b */
    return _mm512_mask_add_epi8(entries, negative, entries, _mm512_set1_epi8(16));
}

/* d * (0.5 + s_j) * unit in lane j, s_j lane j of s (a 4-bit scale), d the block's f16 scale (tempo_half_scale16):
 * the grid types' scale products, the reference's in its order (IQ2: unit 0.25, IQ3_XXS: 0.5). */
TEMPO_GRID_INLINE F32x16 tempo_grid_scale_products(const uint8_t *b, __m512i s, float unit) {
    return tempo_half_scale16(b) * (0.5f + __builtin_convertvector((I32x16)s, F32x16)) * unit;
}

/* IQ2_XXS, IQ2_XS and IQ2_S, group g: the levels 8, 25, 43 have low bits 0, 1, 3, so entry 4k + (v & 3) (+ 16 for a
 * negative value) for the values 16k .. 16k+15, whose scale is lane 4g + k of scales. */
TEMPO_GRID_INLINE void tempo_iq2_looked_up(__m512i points, __mmask64 negative, F32x16 scales, int g, F32x16 w[4]) {
    const __m512i k = _mm512_set_epi64(0x0c0c0c0c0c0c0c0c, 0x0c0c0c0c0c0c0c0c, 0x0808080808080808, 0x0808080808080808,
                                       0x0404040404040404, 0x0404040404040404, 0, 0);
    const F32x16 levels = {8, 25, 0, 43, 8, 25, 0, 43, 8, 25, 0, 43, 8, 25, 0, 43};
    int s = 4 * g;
    __m512i spread = _mm512_set_epi32(s + 3, s + 3, s + 3, s + 3, s + 2, s + 2, s + 2, s + 2, s + 1, s + 1, s + 1, s + 1, s, s, s, s);
    tempo_grid_table_values(tempo_grid_entries(points, 3, k, negative), scales, spread, levels, w);
}

/* IQ2_XS: 16-bit words q at 2 + 16g, point index q & 511, signs q >> 9 (bits 1..7 of its high byte). */
TEMPO_GRID_INLINE TempoGridGroup tempo_iq2_xs_group(const uint8_t *b, int g) {
    __m512i words = _mm512_cvtepu16_epi64(_mm_loadu_si128((const __m128i *)(b + 2 + 16 * g)));
    unsigned index[8];
    for (int j = 0; j < 8; j++) index[j] = tempo_u16_at(b + 2 + 16 * g + 2 * j) & 511;
    return (TempoGridGroup){tempo_grid_points8(tempo_iq2xs_grid, index), tempo_grid_sign_mask(words, 1, 1)};
}

/* IQ2_XXS: sub-block 2g + h the 8 bytes at 2 + 16g + 8h, point 4h + p's index byte p, its signs the 7-bit
 * field at bit 7p of the 32-bit aux word at byte 4 (tempo_iq2_xxs_32), brought to byte 0 of its lane
 * (vpmultishiftqb). */
TEMPO_GRID_INLINE TempoGridGroup tempo_iq2_xxs_group(const uint8_t *b, int g) {
    const uint8_t *qs = b + 2 + 16 * g;
    unsigned index[8];
    for (int j = 0; j < 8; j++) index[j] = qs[8 * (j / 4) + j % 4];
    __m512i halves = _mm512_permutexvar_epi64(_mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0), _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)qs)));
    __m512i fields = _mm512_multishift_epi64_epi8(_mm512_set_epi64(53, 46, 39, 32, 53, 46, 39, 32), halves);
    return (TempoGridGroup){tempo_grid_points8(tempo_iq2xxs_grid, index), tempo_grid_sign_mask(fields, 0, 0)};
}

/* IQ2_S: point p of sub-block ib indexed by qs[4ib + p] | bits 2p, 2p+1 of qh[ib] << 8; the 64 sign bits at 34 + 8g. */
TEMPO_GRID_INLINE TempoGridGroup tempo_iq2_s_group(const uint8_t *b, int g) {
    unsigned qh = tempo_u16_at(b + 66 + 2 * g), index[8];
    for (int j = 0; j < 8; j++) index[j] = b[2 + 8 * g + j] | (qh >> 2 * j & 3) << 8;
    return (TempoGridGroup){tempo_grid_points8(tempo_iq2s_grid, index), (__mmask64)tempo_u64_at(b + 34 + 8 * g)};
}

/* IQ2_XXS, IQ2_XS, IQ2_S, values 64g .. 64g+63 (`scales`: tempo_grid_block_scales). */
TEMPO_GRID_INLINE void tempo_iq2_64(WeightType t, const uint8_t *b, F32x16 scales, int g, F32x16 w[4]) {
    TempoGridGroup group = t == WEIGHT_IQ2_XXS ? tempo_iq2_xxs_group(b, g) : t == WEIGHT_IQ2_XS ? tempo_iq2_xs_group(b, g) : tempo_iq2_s_group(b, g);
    tempo_iq2_looked_up(group.points, group.negative, scales, g, w);
}

/* IQ3_XXS (sub-blocks 2g + h, h = 0, 1): 16 point indices (bytes) at 2 + 16g, 4-byte points; the sign fields
 * of 7 bits at bit 7p of the aux words (64 bits at 66 + 8g), as IQ2_XXS's (tempo_iq3_xxs_32). */
TEMPO_GRID_INLINE TempoGridGroup tempo_iq3_xxs_group(const uint8_t *b, int g) {
    const uint8_t *qs = b + 2 + 16 * g;
    uint64_t p[8];
    for (int j = 0; j < 8; j++) p[j] = tempo_u32_at(tempo_iq3xxs_grid[qs[2 * j]]) | (uint64_t)tempo_u32_at(tempo_iq3xxs_grid[qs[2 * j + 1]]) << 32;
    __m512i points = _mm512_set_epi64((long long)p[7], (long long)p[6], (long long)p[5], (long long)p[4], (long long)p[3], (long long)p[2],
                            (long long)p[1], (long long)p[0]);
    __m512i fields = _mm512_multishift_epi64_epi8(_mm512_set_epi64(53, 46, 39, 32, 21, 14, 7, 0), _mm512_set1_epi64((long long)tempo_u64_at(b + 66 + 8 * g)));
    return (TempoGridGroup){points, tempo_grid_sign_mask(fields, 0, 0)};
}

/* IQ3_XXS, values 64g .. 64g+63: points of levels 4, 12, .., 52, 62, entry 8h + (v >> 3) (+ 16 for a negative value). */
TEMPO_GRID_INLINE void tempo_iq3_xxs_64(const uint8_t *b, F32x16 scales, int g, F32x16 w[4]) {
    TempoGridGroup group = tempo_iq3_xxs_group(b, g);
    const __m512i h = _mm512_set_epi64(0x0808080808080808, 0x0808080808080808, 0x0808080808080808, 0x0808080808080808, 0, 0, 0, 0);
    __m512i entries = tempo_grid_entries(_mm512_srli_epi16(group.points, 3), 7, h, group.negative);
    const F32x16 levels = {4, 12, 20, 28, 36, 44, 52, 62, 4, 12, 20, 28, 36, 44, 52, 62};
    int s = 4 * g; /* sub-block 2g's scale is lane 4g of `scales`, 2g + 1's lane 4g + 2 */
    __m512i spread = _mm512_set_epi32(s + 2, s + 2, s + 2, s + 2, s + 2, s + 2, s + 2, s + 2, s, s, s, s, s, s, s, s);
    tempo_grid_table_values(entries, scales, spread, levels, w);
}
#endif

/* ---- IQ1 (VBMI): a point's bytes -1, 0, 1 (0xFF, 0, 1) plus 3e + 1 are 3e, 3e + 1, 3e + 2, the lanes of
 * entry e of a 32-lane table (vpermt2ps reads an index's bits 4..0) that holds dl_e * (v + delta_e) for
 * v = -1, 0, 1: one entry a sub-block (IQ1_S, the table once a block) or per 16 values' scale and delta
 * (IQ1_M, a group's table). A vector of 16 values is then one vpermb and one vpermt2ps. ---- */

/* The 8 IQ1 grid points of the 11-bit indices q[j] | (high >> shift_j & 7) << 8 (the loads: 1.23x over the
 * IQ1_S kernel's gather). */
TEMPO_GRID_INLINE __m512i tempo_iq1_points(const uint8_t *q, uint32_t high, const int shift[8]) {
    unsigned index[8];
    for (int j = 0; j < 8; j++) index[j] = q[j] | (high >> shift[j] & 7) << 8;
    return tempo_grid_points8((const uint8_t(*)[8])tempo_iq1s_grid, index);
}

/* Values 16k .. 16k+15 of the points, each byte already offset to its entry's lanes: table[byte & 31]. */
TEMPO_GRID_INLINE F32x16 tempo_iq1_looked_up(__m512i points, int k, const F32x16 table[2]) {
    return (F32x16)_mm512_permutex2var_ps((__m512)table[0], tempo_lane_bytes(points, k), (__m512)table[1]);
}

/* The byte 3e + 1 in every byte of 64-bit lanes 0..3 (entry e = lo) and 4..7 (e = hi). */
TEMPO_GRID_INLINE __m512i tempo_iq1_offsets(int lo, int hi) {
    long long ones = 0x0101010101010101, a = (3 * lo + 1) * ones, b = (3 * hi + 1) * ones;
    return _mm512_set_epi64(b, b, b, b, a, a, a, a);
}

/* IQ1_S's table (tempo_low_bit_block): entry s = sub-block s (0..7), dl_s = d * (2 s' + 1), s' bits 12..14
 * and delta_s's sign bit 15 of qh word s at 34. */
TEMPO_GRID_INLINE void tempo_iq1_s_table(const uint8_t *b, F32x16 table[2]) {
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(b + 34)));
    __m256i odd = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(h, 11), _mm256_set1_epi32(14)), _mm256_set1_epi32(1));
    __m256 dl = _mm256_mul_ps(_mm512_castps512_ps256((__m512)tempo_half_scale16(b)), _mm256_cvtepi32_ps(odd));
    __m256 delta = _mm256_blendv_ps(_mm256_set1_ps(tempo_iq1_delta(0)), _mm256_set1_ps(tempo_iq1_delta(1)),
                                    _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))); /* bit 15 of the word: the sign of lane << 16 */
    for (int half = 0; half < 2; half++) { /* lane j = 16 half + i: entry j / 3 (lanes 24..31 unused), v = j % 3 - 1 */
        __m512i e = (__m512i)(half ? (I32x16){5, 5, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}
                                   : (I32x16){0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5});
        F32x16 v = half ? (F32x16){0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0}
                        : (F32x16){-1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1};
        F32x16 delta_e = (F32x16)_mm512_permutexvar_ps(e, _mm512_castps256_ps512(delta));
        table[half] = (F32x16)_mm512_permutexvar_ps(e, _mm512_castps256_ps512(dl)) * (v + delta_e);
    }
}

/* IQ1_S's points of values 64g .. 64g+63: point p of sub-block ib indexed by qs[4ib + p] | bits 3p..3p+2 of qh
 * word ib << 8. */
TEMPO_GRID_INLINE __m512i tempo_iq1_s_points(const uint8_t *b, int g) {
    static const int shift[8] = {0, 3, 6, 9, 16, 19, 22, 25};
    return tempo_iq1_points(b + 2 + 8 * g, tempo_u32_at(b + 34 + 4 * g), shift);
}

/* IQ1_S, values 64g .. 64g+63 (tempo_iq1_s_points); table: tempo_iq1_s_table. */
TEMPO_GRID_INLINE void tempo_iq1_s_64(const uint8_t *b, int g, const F32x16 table[2], F32x16 w[4]) {
    __m512i points = _mm512_add_epi8(tempo_iq1_s_points(b, g), tempo_iq1_offsets(2 * g, 2 * g + 1));
    for (int k = 0; k < 4; k++) w[k] = tempo_iq1_looked_up(points, k, table);
}

/* IQ1_M's 16 scale products (tempo_low_bit_block), lane j: d * (2 s_j + 1), s_j its scale field (tempo_grid_scale_fields). */
TEMPO_GRID_INLINE F32x16 tempo_iq1_m_scale_products(const uint8_t *b) {
    I32x16 s = (I32x16)tempo_grid_scale_fields(WEIGHT_IQ1_M, b);
    return tempo_iq1_m_scale(b) * __builtin_convertvector(2 * s + 1, F32x16);
}

/* IQ1_M's points of values 64g .. 64g+63: point p indexed by qs[8g + p] | (nibble p of the qh word at 32 + 4g) & 7 << 8. */
TEMPO_GRID_INLINE __m512i tempo_iq1_m_points(const uint8_t *b, int g) {
    static const int shift[8] = {0, 4, 8, 12, 16, 20, 24, 28};
    return tempo_iq1_points(b + 8 * g, tempo_u32_at(b + 32 + 4 * g), shift);
}

/* IQ1_M, values 64g .. 64g+63 (tempo_iq1_m_points): nibble p's bit 3 is point p's delta's sign (entry 2 (p / 2) +
 * that bit, scale product 4g + p / 2 of `scales`). */
TEMPO_GRID_INLINE void tempo_iq1_m_64(const uint8_t *b, int g, F32x16 scales, F32x16 w[4]) {
    uint32_t nibbles = tempo_u32_at(b + 32 + 4 * g);
    __m512i points = tempo_iq1_m_points(b, g);
    __m512i high = _mm512_srlv_epi64(_mm512_set1_epi64(nibbles), _mm512_set_epi64(28, 24, 20, 16, 12, 8, 4, 0));
    __mmask8 minus = _mm512_test_epi64_mask(high, _mm512_set1_epi64(8));
    const long long ones = 0x0101010101010101;
    __m512i plus = _mm512_set_epi64(19 * ones, 19 * ones, 13 * ones, 13 * ones, 7 * ones, 7 * ones, ones, ones); /* 3 (2 (p / 2)) + 1 */
    points = _mm512_add_epi8(points, _mm512_mask_add_epi64(plus, minus, plus, _mm512_set1_epi64(3 * ones)));
    F32x16 table[2];
    for (int half = 0; half < 2; half++) { /* lane j = 16 half + i: scale 4g + j / 6 (lanes 24..31 unused), delta's sign j % 6 / 3, v = j % 3 - 1 */
        I32x16 k = half ? (I32x16){2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3} : (I32x16){0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2};
        float p = tempo_iq1_delta(0), m = tempo_iq1_delta(1);
        F32x16 v = half ? (F32x16){0 + m, 1 + m, -1 + p, 0 + p, 1 + p, -1 + m, 0 + m, 1 + m, 0, 0, 0, 0, 0, 0, 0, 0}
                        : (F32x16){-1 + p, 0 + p, 1 + p, -1 + m, 0 + m, 1 + m, -1 + p, 0 + p, 1 + p, -1 + m, 0 + m, 1 + m, -1 + p, 0 + p, 1 + p, -1 + m};
        table[half] = (F32x16)_mm512_permutexvar_ps((__m512i)(k + 4 * g), (__m512)scales) * v;
    }
    for (int k = 0; k < 4; k++) w[k] = tempo_iq1_looked_up(points, k, table);
}
#endif

/* 16 IQ1 values dl * (grid_i + delta_i): grid points a, b of tempo_iq1s_grid; delta_a for a's 8, delta_b for b's. */
TEMPO_GRID_INLINE F32x16 tempo_shifted_grid(const int8_t *a, const int8_t *b, float dl, float delta_a, float delta_b) {
    F32x16 delta = {delta_a, delta_a, delta_a, delta_a, delta_a, delta_a, delta_a, delta_a,
                    delta_b, delta_b, delta_b, delta_b, delta_b, delta_b, delta_b, delta_b};
    return dl * (tempo_floats_i8((I8x16)tempo_grid_points2((const uint8_t *)a, (const uint8_t *)b)) + delta);
}

/* IQ1_S, values 32ib .. 32ib+31 (tempo_dequant_iq1_s). */
TEMPO_GRID_INLINE void tempo_iq1_s_32(const uint8_t *b, float d, int ib, F32x16 w[2]) {
    const uint8_t *qs = b + 2 + 4 * ib;
    unsigned h16 = tempo_u16_at(b + 34 + 2 * ib);
    float dl = d * (float)(2 * (h16 >> 12 & 7) + 1), delta = tempo_iq1_delta(h16 & 0x8000);
    for (int h = 0; h < 2; h++) {
        unsigned i0 = qs[2 * h] | (h16 >> 6 * h & 7) << 8, i1 = qs[2 * h + 1] | (h16 >> (6 * h + 3) & 7) << 8;
        w[h] = tempo_shifted_grid(tempo_iq1s_grid[i0], tempo_iq1s_grid[i1], dl, delta, delta);
    }
}

/* IQ1_M, values 32ib .. 32ib+31 (tempo_dequant_iq1_m). */
TEMPO_GRID_INLINE void tempo_iq1_m_32(const uint8_t *b, float d, int ib, F32x16 w[2]) {
    const uint8_t *qs = b + 4 * ib;
    unsigned s = tempo_u16_at(b + 48 + 2 * (ib / 2)) >> 6 * (ib % 2);
    for (int h = 0; h < 2; h++) {
        unsigned qh = b[32 + 2 * ib + h], n0 = qh & 0x0F, n1 = qh >> 4;
        float dl = d * (float)(2 * (s >> 3 * h & 7) + 1);
        w[h] = tempo_shifted_grid(tempo_iq1s_grid[qs[2 * h] | (n0 & 7) << 8], tempo_iq1s_grid[qs[2 * h + 1] | (n1 & 7) << 8], dl,
                                  tempo_iq1_delta(n0 & 8), tempo_iq1_delta(n1 & 8));
    }
}

/* Whether a type is decoded here. */
static inline int tempo_grid_decoded(WeightType t) {
    return t == WEIGHT_TQ1_0 || t == WEIGHT_TQ2_0 || t == WEIGHT_IQ2_XXS || t == WEIGHT_IQ2_XS || t == WEIGHT_IQ2_S ||
           t == WEIGHT_IQ3_XXS || t == WEIGHT_IQ3_S || t == WEIGHT_IQ1_S || t == WEIGHT_IQ1_M;
}

/* A block's scale products, computed once a block (tempo_low_bit_block), lane j the scale of values 16j ..
 * 16j+15: with AVX-512 VBMI IQ1_M's (tempo_iq1_m_scale_products), with GFNI and BITALG too IQ2_XXS's,
 * IQ2_XS's, IQ2_S's (d (0.5 + s_j) 0.25) and IQ3_XXS's (d (0.5 + s_j) 0.5) of their scale fields s_j
 * (tempo_grid_scale_fields, tempo_grid_scale_products); zero otherwise. */
TEMPO_GRID_INLINE F32x16 tempo_grid_block_scales(WeightType t, const uint8_t *b) {
#if defined(__AVX512VBMI__)
    if (t == WEIGHT_IQ1_M) return tempo_iq1_m_scale_products(b);
#endif
#if defined(__AVX512VBMI__) && defined(__GFNI__) && defined(__AVX512BITALG__)
    if (t == WEIGHT_IQ2_XS || t == WEIGHT_IQ2_S || t == WEIGHT_IQ2_XXS) return tempo_grid_scale_products(b, tempo_grid_scale_fields(t, b), 0.25f);
    if (t == WEIGHT_IQ3_XXS) return tempo_grid_scale_products(b, tempo_grid_scale_fields(t, b), 0.5f);
#endif
    (void)t, (void)b;
    return (F32x16){0};
}

/* The 64 values 64g .. 64g+63 of the block at b, in value order; `scales` is tempo_grid_block_scales(t, b). */
TEMPO_GRID_INLINE void tempo_grid_vectors(WeightType t, const uint8_t *b, int g, F32x16 scales, F32x16 w[4]) {
    if (t == WEIGHT_TQ2_0 || t == WEIGHT_TQ1_0) {
        if (t == WEIGHT_TQ2_0) tempo_tq2_0_vectors(b, g, w);
        else tempo_tq1_0_vectors(b, g, w);
        return;
    }
#if defined(__AVX512VBMI__) && defined(__GFNI__) && defined(__AVX512BITALG__)
    if (t == WEIGHT_IQ2_XXS || t == WEIGHT_IQ2_XS || t == WEIGHT_IQ2_S || t == WEIGHT_IQ3_XXS) {
        if (t == WEIGHT_IQ3_XXS) tempo_iq3_xxs_64(b, scales, g, w);
        else tempo_iq2_64(t, b, scales, g, w);
        return;
    }
#else
    (void)scales;
#endif
    float d = tempo_grid_d(t, b);
#if defined(__AVX512F__)
    if (t == WEIGHT_IQ3_S) {
        tempo_iq3_s_64(b, d, g, w);
        return;
    }
#endif
    for (int s = 0; s < 2; s++) {
        int ib = 2 * g + s;
        switch (t) {
        case WEIGHT_IQ2_XXS: tempo_iq2_xxs_32(b, d, ib, w + 2 * s); break;
        case WEIGHT_IQ2_XS: tempo_iq2_xs_32(b, d, ib, w + 2 * s); break;
        case WEIGHT_IQ2_S: tempo_iq2_s_32(b, d, ib, w + 2 * s); break;
        case WEIGHT_IQ3_XXS: tempo_iq3_xxs_32(b, d, ib, w + 2 * s); break;
        case WEIGHT_IQ3_S: tempo_iq3_s_32(b, d, ib, w + 2 * s); break;
        case WEIGHT_IQ1_S: tempo_iq1_s_32(b, d, ib, w + 2 * s); break;
        default: tempo_iq1_m_32(b, d, ib, w + 2 * s); break;
        }
    }
}

#undef TEMPO_GRID_INLINE
#endif
