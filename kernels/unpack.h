/* unpack.h - stored weights to f32, 16 values at a time in vector
 * registers: the same floats as dequant.c (tempo_dequantize, ggml's
 * reference arithmetic), bit for bit (tests/test_unpack.c). The matrix
 * product (matmul.c) converts f16 and bf16 in its inner loop with the inline
 * functions below, and unpacks block types a tile at a time with
 * tempo_unpack. */
#ifndef TEMPO_UNPACK_H
#define TEMPO_UNPACK_H

#include <stdint.h>
#include <string.h>

#include "kernels.h"

#if defined(__AVX2__)
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

/* IEEE half to f32, tempo_f16_to_f32 lane by lane: normals move the
 * exponent (bias 15 to 127), Inf and NaN keep sign and payload, subnormals
 * are frac * 2^-24 (exact); the three chosen by masks. */
static inline F32x16 tempo_f16x16(const void *p) {
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

#endif
