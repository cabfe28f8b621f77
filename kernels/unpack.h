/* unpack.h - stored weights to f32, 16 values at a time in vector
 * registers: the same floats as dequant.c (tempo_dequantize, ggml's
 * reference arithmetic), bit for bit (tests/test_unpack.c). The matrix
 * product (matmul.c) converts every type in its inner loop with the inline
 * functions below and multiplies the vectors without storing them; the
 * sgemm panels are converted with tempo_unpack (unpack.c). */
#ifndef TEMPO_UNPACK_H
#define TEMPO_UNPACK_H

#include <stdint.h>
#include <string.h>

#include "kernels.h"

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

/* 16 floats, 16 ints, 16 halves: GCC vector types, loaded with memcpy (any alignment). */
typedef float F32x16 __attribute__((vector_size(64)));
typedef int32_t I32x16 __attribute__((vector_size(64)));
typedef uint32_t U32x16 __attribute__((vector_size(64)));
typedef uint16_t U16x16 __attribute__((vector_size(32)));

/* n_values stored values at src (a multiple of the block size, from a
 * block boundary) as f32 in out: what tempo_dequantize gives, for every
 * type. Types with no vector unpacker in unpack.c go through it. */
void tempo_unpack(WeightType t, const void *src, size_t n_values, float *out);

/* 16 stored 16-bit values, zero-extended to 32 bits, spelled as the
 * AVX-512 instruction (AVX2: two), which GCC 12 does not find itself. */
static inline U32x16 tempo_widen16(const void *p) {
    U16x16 h;
    memcpy(&h, p, sizeof h);
#if defined(__AVX512F__)
    return (U32x16)_mm512_cvtepu16_epi32((__m256i)h);
#elif defined(__AVX2__)
    __m256i half[2] = {_mm256_cvtepu16_epi32(_mm256_castsi256_si128((__m256i)h)),
                       _mm256_cvtepu16_epi32(_mm256_extracti128_si256((__m256i)h, 1))};
    U32x16 v;
    memcpy(&v, half, sizeof v);
    return v;
#else
    return __builtin_convertvector(h, U32x16);
#endif
}

/* bfloat16 to f32: the 16 bits become the high half of the float. */
static inline F32x16 tempo_bf16x16(const void *p) {
    U32x16 bits = tempo_widen16(p) << 16;
    F32x16 v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* IEEE half to f32 by bit operations, tempo_f16_to_f32 lane by lane: normals move the
 * exponent (bias 15 to 127), Inf and NaN keep sign and payload, subnormals
 * are frac * 2^-24 (exact); the three chosen by masks. */
static inline F32x16 tempo_f16x16_bits(const void *p) {
    U32x16 x = tempo_widen16(p);
    U32x16 sign = (x & 0x8000) << 16, exp = (x >> 10) & 31, frac = x & 1023;
    U32x16 normal = sign | (exp + 112) << 23 | frac << 13, special = sign | 0x7f800000u | frac << 13;
    F32x16 small = __builtin_convertvector((I32x16)frac, F32x16) * 0x1p-24f;
    U32x16 subnormal;
    memcpy(&subnormal, &small, sizeof subnormal);
    subnormal |= sign;
    U32x16 is_special = (U32x16)(exp == 31), is_subnormal = (U32x16)(exp == 0);
    U32x16 bits = (normal & ~(is_special | is_subnormal)) | (special & is_special) | (subnormal & is_subnormal);
    F32x16 v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* IEEE half to f32, tempo_f16_to_f32's values: with F16C, its instruction
 * (exact for every half but NaN, which it would quiet) when no lane is a
 * NaN; else by bit operations. */
static inline F32x16 tempo_f16x16(const void *p) {
#if defined(__F16C__) && defined(__AVX2__)
    __m256i h;
    memcpy(&h, p, sizeof h);
    __m256i nan = _mm256_cmpgt_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x7fff)), _mm256_set1_epi16(0x7c00));
    if (__builtin_expect(_mm256_testz_si256(nan, nan), 1)) {
#if defined(__AVX512F__)
        return (F32x16)_mm512_cvtph_ps(h);
#else
        __m256 half[2] = {_mm256_cvtph_ps(_mm256_castsi256_si128(h)), _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1))};
        F32x16 v;
        memcpy(&v, half, sizeof v);
        return v;
#endif
    }
#endif
    return tempo_f16x16_bits(p);
}

/* ---- block types, 16 values at a time: the decoders of tempo_unpack and
 * of the matrix product, which multiplies their vectors without storing
 * them. The arithmetic is dequant.c's (ggml's reference): the same integer
 * codes, the same scale products computed once as scalars, then the same
 * one product (and one subtraction) per value, each rounded to float (ISO
 * C: no fused multiply-add), so every value is the same float. ---- */

typedef uint8_t U8x16 __attribute__((vector_size(16)));
typedef int8_t I8x16 __attribute__((vector_size(16)));

static inline U8x16 tempo_bytes16(const uint8_t *p) {
    U8x16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if defined(__AVX2__)
/* The 32 nibbles of the 16 bytes at p, a byte each: low nibbles are values 0..15, high ones 16..31 (ggml's 32-value blocks). */
static inline __m256i tempo_nibbles32(const uint8_t *p) {
    __m128i packed = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(15));
}

/* Per 32-bit lane k: the sum of u[4k+j] s[4k+j] over j < 4 (u unsigned, s signed; exact while no pair
 * of products leaves 16 bits: ggml's activations keep |s| <= 127). */
static inline __m256i tempo_dot_u8_i8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* Per 32-bit lane k: the sum of products 4k..4k+3 of 32 int8 weights qw and the 32 activations at q8. */
static inline __m256i tempo_block32_lanes(__m256i qw, const int8_t *q8) {
    __m256i qx = _mm256_loadu_si256((const __m256i *)q8);
    return tempo_dot_u8_i8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
}

/* Values 32c .. 32c+31 of 2-bit fields (Q2_K, Q3_K, TQ2_0), a byte each: bits 2(c % 4) of the 32 bytes at qs + 32(c / 4). */
static inline __m256i tempo_two_bits32(const uint8_t *qs, int c) {
    __m256i bytes = _mm256_loadu_si256((const __m256i *)(qs + 32 * (c / 4)));
    return _mm256_and_si256(_mm256_srli_epi16(bytes, 2 * (c % 4)), _mm256_set1_epi8(3));
}
#endif

#if defined(__AVX512BW__)
/* 16-bit lanes: a in lanes 0..15 (the low 256 bits), b in 16..31. */
static inline __m512i tempo_epi16_halves(short a, short b) {
    return _mm512_inserti64x4(_mm512_set1_epi16(a), _mm256_set1_epi16(b), 1);
}
#endif

/* Integer codes (signed or not) to floats (exact), widened to 32 bits
 * first. With AVX-512 (AVX2) the widening is spelled as its instruction
 * (two of them): GCC 12 otherwise widens a vector just loaded from memory
 * one byte at a time (5x slower). */
static inline __attribute__((always_inline)) F32x16 tempo_floats8(U8x16 q, int is_signed) {
#if defined(__AVX512F__)
    I32x16 v = (I32x16)(is_signed ? _mm512_cvtepi8_epi32((__m128i)q) : _mm512_cvtepu8_epi32((__m128i)q));
#elif defined(__AVX2__)
    __m128i high = _mm_srli_si128((__m128i)q, 8);
    __m256i half[2] = {is_signed ? _mm256_cvtepi8_epi32((__m128i)q) : _mm256_cvtepu8_epi32((__m128i)q),
                       is_signed ? _mm256_cvtepi8_epi32(high) : _mm256_cvtepu8_epi32(high)};
    I32x16 v;
    memcpy(&v, half, sizeof v);
#else
    I32x16 v = is_signed ? __builtin_convertvector((I8x16)q, I32x16) : __builtin_convertvector(q, I32x16);
#endif
    return __builtin_convertvector(v, F32x16);
}
static inline F32x16 tempo_floats_i8(I8x16 q) { return tempo_floats8((U8x16)q, 1); }
static inline F32x16 tempo_floats_u8(U8x16 q) { return tempo_floats8(q, 0); }

/* A block's f16 scale at p, tempo_f16_at's value: with F16C, its
 * instruction (exact for every half but NaN, which it would quiet); NaN as
 * tempo_f16_to_f32 keeps it (sign and payload), spelled here: a call in the
 * kernel's loop would make GCC keep the sums in memory. */
static inline float tempo_half_scale(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
#if defined(__F16C__)
    if (__builtin_expect((h & 0x7c00) != 0x7c00 || (h & 1023) == 0, 1)) return _cvtsh_ss(h);
    uint32_t bits = (uint32_t)(h & 0x8000) << 16 | 0x7f800000u | (uint32_t)(h & 1023) << 13;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
#else
    return tempo_f16_to_f32(h);
#endif
}

/* A block's f16 scale at p, tempo_f16_quieted_at's value (a signalling NaN
 * quieted, as ggml converts it): with F16C its instruction, which quiets
 * it the same way; inline, as tempo_half_scale. */
static inline float tempo_half_scale_quieted(const uint8_t *p) {
#if defined(__F16C__)
    return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8));
#else
    return tempo_f16_quieted_at(p);
#endif
}

/* A block's f16 scale at p in all 16 lanes: with AVX-512, one vpbroadcastw
 * and one vcvtph2ps (no test for NaN), whose value is tempo_half_scale's
 * except that a signalling NaN comes out quiet. Only for a scale that goes
 * into a product or sum before it is a weight: that operation quiets the
 * NaN the same way, so the weight is the same float (tests/test_unpack.c's
 * NaN scales). Elsewhere tempo_half_scale, broadcast. */
static inline F32x16 tempo_half_scale16(const uint8_t *p) {
#if defined(__AVX512F__)
    short h;
    memcpy(&h, p, sizeof h);
    return (F32x16)_mm512_cvtph_ps(_mm256_set1_epi16(h));
#else
    float d = tempo_half_scale(p);
    return (F32x16){d, d, d, d, d, d, d, d, d, d, d, d, d, d, d, d};
#endif
}

/* ---- table decoders (AVX-512): within a block (Q4_0) or a sub-block
 * (Q4_K, Q5_K) a weight takes one of 16 (32) floats, one per code q. The
 * table of them is computed with the reference's own operations (one
 * product and one subtraction per entry, each rounded), so looking a code
 * up gives the same float as computing it. vpermps reads only bits 3:0 of
 * each 32-bit index, vpermt2ps bits 4:0: a code needs no mask above them. ---- */
#if defined(__AVX512F__)
/* 16 bytes at p zero-extended to 32-bit lanes (one vpmovzxbd from memory). */
static inline I32x16 tempo_codes16(const uint8_t *p) {
    __m128i bytes;
    memcpy(&bytes, p, sizeof bytes);
    return (I32x16)_mm512_cvtepu8_epi32(bytes);
}
/* table[code & 15] in each lane. */
static inline F32x16 tempo_lookup16(F32x16 table, I32x16 code) {
    return (F32x16)_mm512_permutexvar_ps((__m512i)code, (__m512)table);
}
/* (code & 16 ? high : low)[code & 15] in each lane: a table of 32. */
static inline F32x16 tempo_lookup32(F32x16 low, F32x16 high, I32x16 code) {
    return (F32x16)_mm512_permutex2var_ps((__m512)low, (__m512i)code, (__m512)high);
}
#endif

/* The codes 0..15 as floats (exact). */
static inline F32x16 tempo_codes_0_15(void) {
    return (F32x16){0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.0f, 10.0f, 11.0f, 12.0f, 13.0f, 14.0f, 15.0f};
}

/* Q8_0, its 32 values: w = q * d. */
static inline void tempo_q8_0_vectors(const uint8_t *b, F32x16 w[2]) {
    F32x16 d = tempo_half_scale16(b);
    w[0] = tempo_floats_i8((I8x16)tempo_bytes16(b + 2)) * d;
    w[1] = tempo_floats_i8((I8x16)tempo_bytes16(b + 18)) * d;
}

/* Q4_0, its 32 values: w = (q - 8) * d; low nibbles are values 0..15, high
 * ones 16..31. AVX-512: table[q] = (q - 8) * d, looked up by each byte's
 * nibble (the high one shifted down). */
static inline void tempo_q4_0_vectors(const uint8_t *b, F32x16 w[2]) {
#if defined(__AVX512F__)
    F32x16 d = tempo_half_scale16(b), table = (tempo_codes_0_15() - 8.0f) * d;
    I32x16 code = tempo_codes16(b + 2);
    w[0] = tempo_lookup16(table, code);
    w[1] = tempo_lookup16(table, code >> 4);
#else
    float d = tempo_half_scale(b);
    U8x16 q = tempo_bytes16(b + 2);
    w[0] = tempo_floats_i8((I8x16)(q & 15) - 8) * d;
    w[1] = tempo_floats_i8((I8x16)(q >> 4) - 8) * d;
#endif
}

/* A Q4_K or Q5_K block's 16 scale products, computed at once: lane j
 * (< 8) is d * sc_j, lane 8 + j is dmin * m_j, d and dmin the block's
 * halves at b, b + 2, sc_j and m_j dequant.c's scale_min_k4 (6 bits each in
 * the 12 bytes at b + 4: sub-blocks 0..3 in the low 6 bits of bytes 0..3
 * and 4..7, sub-blocks 4..7 the nibbles of bytes 8..11 and the top 2 bits
 * of bytes 0..7), here eight bytes at a time. Each product is the
 * reference's one rounded product (a NaN half quieted by it either way:
 * tempo_half_scale16). */
static inline void tempo_q45_k_scale_products(const uint8_t *b, float products[16]) {
    uint64_t s01;
    uint32_t s2;
    memcpy(&s01, b + 4, sizeof s01);
    memcpy(&s2, b + 12, sizeof s2);
    uint64_t low = s01 & 0x3f3f3f3f3f3f3f3fu; /* sc_0 .. sc_3, m_0 .. m_3 */
    uint64_t high = ((s2 | (uint64_t)s2 << 28) & 0x0f0f0f0f0f0f0f0fu) | (s01 >> 2 & 0x3030303030303030u); /* sc_4 .., m_4 .. */
#if defined(__AVX512F__) /* the 16 codes built in a register (through memory: a stalled store forwarding, 1.3x slower) */
    U8x16 codes = (U8x16)_mm_unpacklo_epi32(_mm_cvtsi64_si128((long long)low), _mm_cvtsi64_si128((long long)high));
    short d, dmin;
    memcpy(&d, b, sizeof d);
    memcpy(&dmin, b + 2, sizeof dmin);
    F32x16 scale = (F32x16)_mm512_cvtph_ps(_mm256_blend_epi32(_mm256_set1_epi16(d), _mm256_set1_epi16(dmin), 0xf0));
#else
    uint64_t halves[2] = {(low & 0xffffffffu) | high << 32, low >> 32 | (high & 0xffffffff00000000u)};
    U8x16 codes = tempo_bytes16((const uint8_t *)halves);
    float d = tempo_half_scale(b), dmin = tempo_half_scale(b + 2);
    F32x16 scale = {d, d, d, d, d, d, d, d, dmin, dmin, dmin, dmin, dmin, dmin, dmin, dmin};
#endif
    F32x16 v = scale * tempo_floats_u8(codes);
    memcpy(products, &v, sizeof v);
}

/* A Q6_K block's 16 scale products d * sc_i (lane i), its int8 scales at b + 192. */
static inline void tempo_q6_k_scale_products(const uint8_t *b, float d, float products[16]) {
    F32x16 v = d * tempo_floats_i8((I8x16)tempo_bytes16(b + 192));
    memcpy(products, &v, sizeof v);
}

#if defined(__AVX512VBMI__)
/* Shift counts for vpsllvw / vpsrlvw: `low` for each 16-bit word of the zmm's low 256 bits, `high` for the upper. */
static inline __m512i tempo_word_shifts(int low, int high) {
    long long lo = (long long)low * 0x0001000100010001, hi = (long long)high * 0x0001000100010001;
    return _mm512_set_epi64(hi, hi, hi, hi, lo, lo, lo, lo);
}

/* Bytes 16v .. 16v+15 of `bytes`, byte 16v + i copied into every byte of
 * 32-bit lane i (vpermb): vector v's codes as indices for vpermps and
 * vpermt2ps (bits 3:0, 4:0 of the lane) or vpermi2w (of either word). */
static inline __m512i tempo_lane_bytes(__m512i bytes, int v) {
    __m512i at = _mm512_add_epi32(_mm512_set1_epi32(0x01010101 * 16 * v),
                                  _mm512_set_epi32(0x0F0F0F0F, 0x0E0E0E0E, 0x0D0D0D0D, 0x0C0C0C0C, 0x0B0B0B0B, 0x0A0A0A0A,
                                                   0x09090909, 0x08080808, 0x07070707, 0x06060606, 0x05050505, 0x04040404,
                                                   0x03030303, 0x02020202, 0x01010101, 0));
    return _mm512_permutexvar_epi8(at, bytes);
}

/* The 64 codes q of Q5_K group j (sub-blocks 2j, 2j+1), a byte each in
 * value order, in bits 0..4 (bits 5..7: whatever the shifts leave): byte
 * l < 32 is the low nibble of qs[l] and bit 2j of qh[l] as bit 4, byte 32 +
 * l the high nibble of qs[l] and bit 2j+1 of qh[l]. qs's and qh's 32 bytes
 * twice, each 16-bit word shifted by its half's count (a bit stays in its
 * byte: counts up to 4), then bits 0..3 taken from qs, 4..7 from qh (one
 * vpternlogd). */
static inline __attribute__((always_inline)) __m512i tempo_q5_k_codes(const uint8_t *qs, const uint8_t *qh, int j) {
    __m512i low = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    __m512i high = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
    low = _mm512_srlv_epi16(low, tempo_word_shifts(0, 4)); /* high nibbles down in the upper half */
    if (j < 2) high = _mm512_sllv_epi16(high, tempo_word_shifts(4 - 2 * j, 3 - 2 * j)); /* bit 2j (2j+1) up to 4 */
    else high = _mm512_srlv_epi16(high, tempo_word_shifts(2 * j - 4, 2 * j - 3));       /* or down */
    return _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0F), low, high, 0xCA); /* mask ? low : high, bit by bit */
}
#endif

#if defined(__AVX512F__)
/* Bit `bit` of each lane moved to bit 4 (the other bits: whatever the shift leaves). */
static inline I32x16 tempo_bit_to_4(I32x16 v, int bit) { return bit <= 4 ? v << (4 - bit) : v >> (bit - 4); }

/* tempo_q45_k_vectors with tables: table[q] = d1 * q - m1 for the codes
 * of sub-block 2j (d2, m2: 2j+1), q < 16 (Q4_K) or < 32 (Q5_K, whose bit 4
 * is bit 2j (2j+1) of qh[l], moved into the index). */
static inline __attribute__((always_inline)) void tempo_q45_k_lookup(const uint8_t *b, const uint8_t *qs, int q5, int j,
                                                                    float d1, float m1, float d2, float m2, F32x16 w[4]) {
    F32x16 codes = tempo_codes_0_15(), low1 = d1 * codes - m1, low2 = d2 * codes - m2;
    F32x16 high1 = d1 * (codes + 16.0f) - m1, high2 = d2 * (codes + 16.0f) - m2; /* Q5_K only: unused (dropped) for Q4_K */
#if defined(__AVX512VBMI__)
    if (q5) { /* the group's 64 codes as bytes, spread to lanes (vpermb) */
        __m512i bytes = tempo_q5_k_codes(qs, b + 16, j);
        for (int v = 0; v < 4; v++)
            w[v] = tempo_lookup32(v < 2 ? low1 : low2, v < 2 ? high1 : high2, (I32x16)tempo_lane_bytes(bytes, v));
        return;
    }
#endif
    for (int h = 0; h < 2; h++) {
        I32x16 code = tempo_codes16(qs + 16 * h), high = code >> 4;
        if (q5) {
            I32x16 bits = tempo_codes16(b + 16 + 16 * h);
            I32x16 low = (code & ~16) | (tempo_bit_to_4(bits, 2 * j) & 16);
            w[h] = tempo_lookup32(low1, high1, low);
            w[2 + h] = tempo_lookup32(low2, high2, high | (tempo_bit_to_4(bits, 2 * j + 1) & 16));
        } else {
            w[h] = tempo_lookup16(low1, code);
            w[2 + h] = tempo_lookup16(low2, high);
        }
    }
}
#endif

/* Q4_K and Q5_K (q5 set), values 64j .. 64j+63 of the block at b
 * (sub-blocks 2j and 2j+1): w = (d*sc) * q - (dmin*m), d and dmin the
 * block's halves, the products in `scales` (tempo_q45_k_scale_products).
 * Bytes qs[32j ..] hold sub-block 2j (low nibbles) and 2j+1 (high); Q5_K
 * adds bit 2j (2j+1) of qh[l] as 16. */
static inline __attribute__((always_inline)) void tempo_q45_k_vectors(const uint8_t *b, int q5, int j, const float *scales,
                                                                     F32x16 w[4]) {
    const uint8_t *qs = b + (q5 ? 48 : 16) + 32 * j;
    float d1 = scales[2 * j], m1 = scales[8 + 2 * j], d2 = scales[2 * j + 1], m2 = scales[9 + 2 * j];
#if defined(__AVX512F__)
    tempo_q45_k_lookup(b, qs, q5, j, d1, m1, d2, m2, w);
#else
    for (int h = 0; h < 2; h++) {
        U8x16 q = tempo_bytes16(qs + 16 * h), lo = q & 15, hi = q >> 4;
        if (q5) {
            U8x16 bits = tempo_bytes16(b + 16 + 16 * h);
            lo |= ((bits >> (2 * j)) & 1) << 4;
            hi |= ((bits >> (2 * j + 1)) & 1) << 4;
        }
        w[h] = d1 * tempo_floats_u8(lo) - m1;
        w[2 + h] = d2 * tempo_floats_u8(hi) - m2;
    }
#endif
}

/* Q6_K, values 64g .. 64g+63 of the block at b: w = (d*sc) * (q - 32), q
 * = 4 bits of ql and 2 of qh. Each half (128 values) takes 64 bytes of ql,
 * 32 of qh and 8 scales; its value 32k + l (k = 0..3, l < 32) is nibble
 * k / 2 of ql[l + 32 (k % 2)] and bits 2k of qh[l]; one scale per 16,
 * its product d*sc in `scales` (tempo_q6_k_scale_products). */
#if defined(__AVX512VBMI__)
/* The 64 codes q of Q6_K group g, a byte each in value order, in bits
 * 0..5 (bits 6, 7: whatever the shifts leave): value 16v + i (v = 0..3)
 * is nibble g % 2 of ql[16v + i] and bits 2k, 2k+1 (k = 2 (g % 2) + v /
 * 2) of qh[16 (v % 2) + i], as bits 4, 5: qh's 32 bytes twice, each 16-bit
 * word shifted by its own count (vpsllvw, vpsrlvw), then bits 0..3 taken
 * from ql and 4..7 from qh (one vpternlogd). */
static inline __attribute__((always_inline)) __m512i tempo_q6_k_codes(const uint8_t *ql, const uint8_t *qh, int g) {
    __m512i low = _mm512_loadu_si512(ql), high = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
    if (g % 2) { /* k = 2, 3: high nibbles; qh bits 4, 5 in place, bits 6, 7 down by 2 */
        low = _mm512_srli_epi16(low, 4);
        high = _mm512_srlv_epi16(high, tempo_word_shifts(0, 2));
    } else { /* k = 0, 1: low nibbles; qh bits 0, 1 up by 4, bits 2, 3 up by 2 */
        high = _mm512_sllv_epi16(high, tempo_word_shifts(4, 2));
    }
    return _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0F), low, high, 0xCA); /* mask ? low : high, bit by bit */
}

/* The high halves of the floats q - 32 for q = 32h .. 32h+31, one 16-bit
 * word each (their low halves are 0: an integer of at most 5 significant
 * bits). */
static inline __m512i tempo_q6_k_table(int h) {
    F32x16 lanes = tempo_codes_0_15() + (float)(32 * h - 32);
    __m512i low = _mm512_srli_epi32(_mm512_castps_si512((__m512)lanes), 16);
    __m512i high = _mm512_srli_epi32(_mm512_castps_si512((__m512)(lanes + 16.0f)), 16);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(low)), _mm512_cvtepi32_epi16(high), 1);
}

/* q - 32 as floats for codes 16v .. 16v+15: each code byte copied into
 * every byte of its 32-bit lane (vpermb), then the lane's high word looked
 * up in the 64 words of `table` (vpermi2w: index bits 0..5 only, so bits
 * 6, 7 of the code are ignored), its low word zeroed. The same float. */
static inline __attribute__((always_inline)) F32x16 tempo_q6_k_floats(__m512i codes, int v, const __m512i table[2]) {
    __m512i index = tempo_lane_bytes(codes, v);
    return (F32x16)_mm512_castsi512_ps(_mm512_maskz_permutex2var_epi16(0xAAAAAAAAu, table[0], index, table[1]));
}
#endif

static inline __attribute__((always_inline)) void tempo_q6_k_vectors(const uint8_t *b, int g, const float *scales,
                                                                    F32x16 w[4]) {
    const uint8_t *ql = b + 64 * (g / 2), *qh = b + 128 + 32 * (g / 2);
#if defined(__AVX512VBMI__)
    __m512i codes = tempo_q6_k_codes(ql, qh, g), table[2] = {tempo_q6_k_table(0), tempo_q6_k_table(1)};
    for (int v = 0; v < 4; v++) w[v] = scales[8 * (g / 2) + v % 2 + 2 * (2 * (g % 2) + v / 2)] * tempo_q6_k_floats(codes, v, table);
#else
    for (int v = 0; v < 4; v++) {
        int k = 2 * (g % 2) + v / 2, c = v % 2;
        U8x16 src = tempo_bytes16(ql + 32 * (k % 2) + 16 * c), top = tempo_bytes16(qh + 16 * c);
        U8x16 q = (k / 2 ? src >> 4 : src & 15) | ((top >> (2 * k)) & 3) << 4;
        w[v] = scales[8 * (g / 2) + c + 2 * k] * tempo_floats_i8((I8x16)(q - 32));
    }
#endif
}

#endif
