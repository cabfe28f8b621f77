/* unpack.c - the block types (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) to f32, 16
 * values at a time in vector registers. The arithmetic is dequant.c's,
 * which is ggml's reference: the same integer codes, the same scale
 * products computed once per sub-block as scalars, then the same one
 * product (and one subtraction) per value, each rounded to float (ISO C:
 * no fused multiply-add). So every value is the same float, bit for bit
 * (tests/test_unpack.c checks it against tempo_dequantize). */
#include "unpack.h"


typedef uint8_t U8x16 __attribute__((vector_size(16)));
typedef int8_t I8x16 __attribute__((vector_size(16)));

static U8x16 bytes16(const uint8_t *p) {
    U8x16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void put16(float *y, F32x16 v) { memcpy(y, &v, sizeof v); }

/* Integer codes to floats (exact), widened to 32 bits first. With AVX-512
 * (AVX2) the widening is spelled as its instruction (two of them): GCC 12
 * otherwise widens a vector just loaded from memory one byte at a time
 * (5x slower). */
static I32x16 widen_i8(I8x16 q) {
#if defined(__AVX512F__)
    return (I32x16)_mm512_cvtepi8_epi32((__m128i)q);
#elif defined(__AVX2__)
    __m256i half[2] = {_mm256_cvtepi8_epi32((__m128i)q), _mm256_cvtepi8_epi32(_mm_srli_si128((__m128i)q, 8))};
    I32x16 v;
    memcpy(&v, half, sizeof v);
    return v;
#else
    return __builtin_convertvector(q, I32x16);
#endif
}
static I32x16 widen_u8(U8x16 q) {
#if defined(__AVX512F__)
    return (I32x16)_mm512_cvtepu8_epi32((__m128i)q);
#elif defined(__AVX2__)
    __m256i half[2] = {_mm256_cvtepu8_epi32((__m128i)q), _mm256_cvtepu8_epi32(_mm_srli_si128((__m128i)q, 8))};
    I32x16 v;
    memcpy(&v, half, sizeof v);
    return v;
#else
    return __builtin_convertvector(q, I32x16);
#endif
}
static F32x16 floats_i8(I8x16 q) { return __builtin_convertvector(widen_i8(q), F32x16); }
static F32x16 floats_u8(U8x16 q) { return __builtin_convertvector(widen_u8(q), F32x16); }

static float half_at(const uint8_t *p) { return tempo_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* Q8_0: y = q * d. */
static void unpack_q8_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    for (int h = 0; h < 32; h += 16) put16(y + h, floats_i8((I8x16)bytes16(b + 2 + h)) * d);
}

/* Q4_0: y = (q - 8) * d; low nibbles are values 0..15, high ones 16..31. */
static void unpack_q4_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    U8x16 q = bytes16(b + 2);
    put16(y, floats_i8((I8x16)(q & 15) - 8) * d);
    put16(y + 16, floats_i8((I8x16)(q >> 4) - 8) * d);
}

/* dequant.c's scale_min_k4, here as the products d*sc and dmin*m of sub-block j. */
static void scale_min_products(int j, const uint8_t *s, float d, float dmin, float *dj, float *mj) {
    int sc, m;
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    *dj = d * (float)sc;
    *mj = dmin * (float)m;
}

/* Q4_K and Q5_K: y = (d*sc) * q - (dmin*m) per sub-block of 32 values;
 * 32 bytes of qs hold sub-blocks 2i (low nibbles) and 2i+1 (high); Q5_K
 * adds bit 2i (2i+1) of qh[l] as 16 (qh NULL for Q4_K). */
static inline __attribute__((always_inline)) void unpack_q45_k(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y) {
    float d = half_at(b), dmin = half_at(b + 2);
    for (int is = 0; is < 8; is += 2, qs += 32, y += 64) {
        float d1, m1, d2, m2;
        scale_min_products(is, b + 4, d, dmin, &d1, &m1);
        scale_min_products(is + 1, b + 4, d, dmin, &d2, &m2);
        for (int h = 0; h < 32; h += 16) {
            U8x16 q = bytes16(qs + h), lo = q & 15, hi = q >> 4;
            if (qh) {
                U8x16 bits = bytes16(qh + h);
                lo |= ((bits >> is) & 1) << 4;
                hi |= ((bits >> (is + 1)) & 1) << 4;
            }
            put16(y + h, d1 * floats_u8(lo) - m1);
            put16(y + 32 + h, d2 * floats_u8(hi) - m2);
        }
    }
}

/* Q6_K: y = (d*sc) * (q - 32), q = 4 bits of ql and 2 of qh; each half
 * (128 values) takes 64 bytes of ql, 32 of qh and 8 scales; values l,
 * l+32, l+64, l+96 share ql[l] / ql[l+32] and qh[l]; one scale per 16. */
static void unpack_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = half_at(b + 208);
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, y += 128)
        for (int c = 0; c < 2; c++) { /* values 16c .. 16c+15 of each quarter */
            U8x16 low = bytes16(ql + 16 * c), high = bytes16(ql + 32 + 16 * c), top = bytes16(qh + 16 * c);
            U8x16 q[4] = {(low & 15) | (top & 3) << 4, (high & 15) | ((top >> 2) & 3) << 4,
                          (low >> 4) | ((top >> 4) & 3) << 4, (high >> 4) | ((top >> 6) & 3) << 4};
            for (int k = 0; k < 4; k++) {
                float scale = d * (float)sc[c + 2 * k];
                put16(y + 32 * k + 16 * c, scale * floats_i8((I8x16)(q[k] - 32)));
            }
        }
}

/* f16 and bf16, 16 at a time; a last part under 16 values through tempo_dequantize. */
static void unpack_halves(WeightType t, const uint8_t *p, size_t n_values, float *out) {
    size_t i = 0;
    for (; i + 16 <= n_values; i += 16) put16(out + i, t == WEIGHT_F16 ? tempo_f16x16(p + 2 * i) : tempo_bf16x16(p + 2 * i));
    if (i < n_values) tempo_dequantize(t, p + 2 * i, n_values - i, out + i);
}

void tempo_unpack(WeightType t, const void *src, size_t n_values, float *out) {
    const uint8_t *p = src;
    size_t bytes = tempo_block_bytes(t), blocks = n_values / (size_t)tempo_block_values(t);
    switch (t) {
    case WEIGHT_F16: case WEIGHT_BF16: unpack_halves(t, p, n_values, out); break;
    case WEIGHT_Q8_0: for (size_t i = 0; i < blocks; i++) unpack_q8_0(p + i * bytes, out + 32 * i); break;
    case WEIGHT_Q4_0: for (size_t i = 0; i < blocks; i++) unpack_q4_0(p + i * bytes, out + 32 * i); break;
    case WEIGHT_Q4_K:
        for (size_t i = 0; i < blocks; i++) unpack_q45_k(p + i * bytes, NULL, p + i * bytes + 16, out + TEMPO_QK_K * i);
        break;
    case WEIGHT_Q5_K:
        for (size_t i = 0; i < blocks; i++)
            unpack_q45_k(p + i * bytes, p + i * bytes + 16, p + i * bytes + 48, out + TEMPO_QK_K * i);
        break;
    case WEIGHT_Q6_K: for (size_t i = 0; i < blocks; i++) unpack_q6_k(p + i * bytes, out + TEMPO_QK_K * i); break;
    default: tempo_dequantize(t, src, n_values, out); break; /* f32, and types with no vector unpacker */
    }
}
