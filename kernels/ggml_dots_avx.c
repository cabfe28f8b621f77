/* ggml_dots_avx.c - ggml's quantized dot products (ggml_dots.c; Q2_K, Q3_K
 * and, with AVX-512 BW and VL, Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS of
 * ggml_dots_more.c; the repacked Q4_0, IQ4_NL and Q2_K) vectorized
 * with AVX2 as ggml's x86 code is: the integer sums in any order (they are
 * exact: |q8| <= 127, so no maddubs saturates), the f32 lanes and their
 * horizontal sum in ggml's. One weight row is unpacked once for up to
 * GGML_MAX_ROWS activation rows. Bitwise equal to the plain definitions
 * (tests/test_ggml_dots.c); without AVX2 and F16C, the plain ones. */
#include "kernels.h"
#include "unpack_low_bit.h" /* tempo_nibbles32, tempo_two_bits32, tempo_dot_u8_i8, tempo_block32_lanes, tempo_block32_bytes */

#include <math.h>
#include <string.h>

/* A dot with no vector kernel below: the grid types' whole rows (tempo_ggml_iq_dot_fast), the others
 * the plain dots with the fast integers. */
static float unvectorized_dot(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    return tempo_ggml_is_grid(t) ? tempo_ggml_iq_dot_fast(t, w, x, m) : tempo_ggml_dot_with(&TEMPO_GGML_INTS_FAST, t, w, x, m);
}

/* Decoding's call of one row: IQ4_NL in its vec_dot order. */
static float weight_row_dot(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    return t == WEIGHT_IQ4_NL ? tempo_ggml_iq4_nl_vec_dot(&TEMPO_GGML_INTS_FAST, w, x, m) : unvectorized_dot(t, w, x, m);
}

/* Repacked Q4_0 or IQ4_NL on their plain dots. */
static float b32_8x8_dot_plain(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    return t == WEIGHT_IQ4_NL ? tempo_ggml_iq4_nl_8x8_dot(&TEMPO_GGML_INTS_FAST, w, x, m) : tempo_ggml_q4_0_8x8_dot(w, x.q, x.d, m);
}

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>

enum { GGML_MAX_ROWS = 4 };

/* Inlined, so that a super-block's registers never go through memory. */
#define INLINE static inline __attribute__((always_inline))

/* f16 to f32 and f32 to f16 (round to nearest even), as F16C converts them. */
static float f16_at(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8)); }
static float round_f16(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

/* ggml's hsum_float_8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static float hsum_float_8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* (m0+m2) + (m1+m3), as ggml sums Q4_K's min lanes. */
static float hsum_float_4(__m128 x) {
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* ---- activations ---- */

/* 32 floats times `scale`, rounded half to even, at most 127, as 32 int8 (ggml's packing). */
static __m256i round_to_i8(const float *x, __m256 scale) {
    __m256i i[4];
    for (int j = 0; j < 4; j++) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        i[j] = _mm256_cvtps_epi32(_mm256_min_ps(v, _mm256_set1_ps(127.0f)));
    }
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* The largest |x| of n floats (n a multiple of 8). */
static float abs_max(const float *x, int n) {
    __m256 sign = _mm256_set1_ps(-0.0f), m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 r = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static void q8_0_quantize(const float *x, int m, GgmlQ8Row out) {
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++, x += TEMPO_GGML_Q8_0_BLOCK) {
        float amax = abs_max(x, TEMPO_GGML_Q8_0_BLOCK), id = amax != 0.0f ? 127.0f / amax : 0.0f;
        out.d[b] = round_f16(amax / 127.0f);
        _mm256_storeu_si256((__m256i *)(out.q + b * TEMPO_GGML_Q8_0_BLOCK), round_to_i8(x, _mm256_set1_ps(id)));
    }
}

/* The first of 256 values whose magnitude is amax (one of them is). */
static float signed_max(const float *x, float amax) {
    __m256 sign = _mm256_set1_ps(-0.0f), a = _mm256_set1_ps(amax);
    for (int j = 0; j < TEMPO_QK_K - 8; j += 8) {
        int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), a, _CMP_EQ_OQ));
        if (hit) return x[j + __builtin_ctz((unsigned)hit)];
    }
    int j = TEMPO_QK_K - 8;
    while (j < TEMPO_QK_K - 1 && (x[j] < 0 ? -x[j] : x[j]) != amax) j++;
    return x[j];
}

/* The sums of each 16 of 32 int8: two int16 into bsums. */
static void sums_of_16(__m256i q, int16_t *bsums) {
    __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(-128)), _mm256_setzero_si256());
    bsums[0] = (int16_t)(_mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) - 16 * 128);
    bsums[1] = (int16_t)(_mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3) - 16 * 128);
}

static void q8_k_quantize(const float *x, int m, GgmlQ8Row out) {
    for (int b = 0; b < m / TEMPO_QK_K; b++, x += TEMPO_QK_K) {
        float amax = abs_max(x, TEMPO_QK_K), iscale = amax == 0.0f ? 0.0f : -127.0f / signed_max(x, amax);
        out.d[b] = amax == 0.0f ? 0.0f : 1.0f / iscale;
        for (int c = 0; c < TEMPO_QK_K / 32; c++) {
            __m256i q = round_to_i8(x + 32 * c, _mm256_set1_ps(iscale));
            _mm256_storeu_si256((__m256i *)(out.q + b * TEMPO_QK_K + 32 * c), q);
            sums_of_16(q, out.bsums + b * (TEMPO_QK_K / 16) + 2 * c);
        }
    }
}

void tempo_ggml_quantize_fast(GgmlDotType t, const float *x, int m, GgmlQ8Row out) {
    if (t == GGML_DOT_Q8_K) q8_k_quantize(x, m, out);
    else q8_0_quantize(x, m, out);
    if (t == GGML_DOT_Q8_1) tempo_ggml_q8_1_sums(x, m, out);
}

/* The 32-value block types of tempo_ggml_block32_dot, vectorized here with AVX-512 BW and VL (tempo_block32_bytes:
 * one guard for the four, Q5's fifth bits being a masked byte add). */
static int is_block32(WeightType t) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return t == WEIGHT_Q4_1 || t == WEIGHT_Q5_0 || t == WEIGHT_Q5_1 || t == WEIGHT_IQ4_NL;
#else
    (void)t;
    return 0;
#endif
}

/* The 256-value types of tempo_ggml_k_dot, vectorized here (k_chunk): Q2_K and Q3_K, and with AVX-512 BW and VL
 * IQ4_XS (its levels by tempo_iq4_levels32). */
static int is_k_low_bit(WeightType t) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    if (t == WEIGHT_IQ4_XS) return 1;
#endif
    return t == WEIGHT_Q2_K || t == WEIGHT_Q3_K;
}

/* The weight types with a vector kernel here (the others: unvectorized_dot). */
int tempo_ggml_dot_is_vectorized(WeightType t) {
    return t == WEIGHT_Q8_0 || t == WEIGHT_Q4_0 || t == WEIGHT_Q4_K || t == WEIGHT_Q5_K || t == WEIGHT_Q6_K || is_block32(t) ||
           is_k_low_bit(t);
}

/* ---- dot products: acc[i] the 8 f32 lanes of activation row i ---- */

/* A 32-value block's weights as int8: Q8_0's, Q4_0's (low nibbles first, minus 8), the others' (tempo_block32_bytes). */
static __m256i q_block(WeightType t, const uint8_t *b) {
    if (t == WEIGHT_Q8_0) return _mm256_loadu_si256((const __m256i *)(b + 2));
    if (t == WEIGHT_Q4_0) return _mm256_sub_epi8(tempo_nibbles32(b + 2), _mm256_set1_epi8(8));
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return tempo_block32_bytes(t, b);
#else
    return _mm256_setzero_si256(); /* not reached: is_block32 is 0 */
#endif
}

/* The 32-value blocks (Q8_0's order, tempo_ggml_block32_dot's): lane k of acc[i] adds f32(d_w d_x) times the integer
 * sum of products 4k..4k+3 by a fused multiply-add; Q4_1 and Q5_1 their min terms m_w s_x, one fused multiply-add
 * each in turn, in mins[i]. */
INLINE void q8_0_rows(WeightType t, const uint8_t *w, const GgmlQ8Row *x, int k, int m, __m256 *acc, float *mins) {
    size_t block_bytes = tempo_block_bytes(t);
    int has_min = t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1;
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++, w += block_bytes) {
        __m256i qw = q_block(t, w);
        float dw = f16_at(w), mw = has_min ? f16_at(w + 2) : 0.0f;
        if (has_min)
            for (int i = 0; i < k; i++) mins[i] = fmaf(mw, x[i].sums[b], mins[i]);
        for (int i = 0; i < k; i++) {
            __m256 sum = _mm256_cvtepi32_ps(tempo_block32_lanes(qw, x[i].q + b * TEMPO_GGML_Q8_0_BLOCK));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[i].d[b]), sum, acc[i]);
        }
    }
}

/* A K-quant super-block's 256 weights as unsigned bytes and each byte's
 * scale in the 16-bit lanes maddubs makes of it. With AVX-512 two 32-value
 * chunks share a register (chunk 2p in the low half, 2p+1 in the high);
 * with AVX2 one chunk a register. */
#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
enum { CHUNK_REGS = 4 };
typedef __m512i ChunkReg;
#else
enum { CHUNK_REGS = 8 };
typedef __m256i ChunkReg;
#endif
typedef struct { ChunkReg q[CHUNK_REGS], sc[CHUNK_REGS]; } SuperBlock;

#if defined(__AVX512BW__) && defined(__AVX512VNNI__)

/* 32 bytes in both halves of a register. */
static __m512i both_halves(const uint8_t *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }

/* Per lane k: sum over the 8 chunks of sc (q q8), lane k of chunk 2p and 2p+1 added at the end. */
INLINE __m256i super_block_lanes(const SuperBlock *s, const int8_t *q8) {
    __m512i sum = _mm512_setzero_si512();
    for (int p = 0; p < CHUNK_REGS; p++)
        sum = _mm512_dpwssd_epi32(sum, _mm512_maddubs_epi16(s->q[p], _mm512_loadu_si512(q8 + 64 * p)), s->sc[p]);
    return _mm256_add_epi32(_mm512_castsi512_si256(sum), _mm512_extracti64x4_epi64(sum, 1));
}

/* Q6_K: weights 0..63 (chunks 4j..4j+3 from ql[64j..], qh[32j..]) and the
 * 16 signed scales, scale 2c for bytes 0..15 of chunk c, 2c+1 for 16..31. */
INLINE void q6_k_super_block(const uint8_t *w, SuperBlock *s) {
    __m512i m15 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3);
    for (int j = 0; j < 2; j++) {
        __m512i l = _mm512_loadu_si512(w + 64 * j), h = both_halves(w + 128 + 32 * j);
        __m512i h01 = _mm512_and_si512(_mm512_srlv_epi16(h, tempo_epi16_halves(0, 2)), m3);
        __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(h, tempo_epi16_halves(4, 6)), m3);
        s->q[2 * j] = _mm512_or_si512(_mm512_and_si512(l, m15), _mm512_slli_epi16(h01, 4));
        s->q[2 * j + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m15), _mm512_slli_epi16(h23, 4));
    }
    __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192))));
    __m512i eighths = _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15,
                                                         14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 3);
    for (int p = 0; p < CHUNK_REGS; p++) /* lane i: scale 4p + i/8 */
        s->sc[p] = _mm512_permutexvar_epi16(_mm512_add_epi16(eighths, _mm512_set1_epi16((short)(4 * p))), sc16);
}

/* Q4_K (qh NULL) or Q5_K: weights from qs (chunk 2p: low nibbles of
 * qs[32p..], 2p+1: high) and qh (chunk g's fifth bit: bit g); scales from
 * `both` (16-bit scales 0..7, then mins). */
INLINE void k4_chunks(const uint8_t *qs, const uint8_t *qh, __m256i both, SuperBlock *s) {
    __m512i m15 = _mm512_set1_epi8(15), one = _mm512_set1_epi8(1), h = qh ? both_halves(qh) : _mm512_setzero_si512();
    __m512i scales = _mm512_castsi256_si512(both);
    for (int p = 0; p < CHUNK_REGS; p++) {
        s->q[p] = _mm512_and_si512(_mm512_srlv_epi16(both_halves(qs + 32 * p), tempo_epi16_halves(0, 4)), m15);
        if (qh) {
            __m512i bit = _mm512_and_si512(_mm512_srlv_epi16(h, tempo_epi16_halves((short)(2 * p), (short)(2 * p + 1))), one);
            s->q[p] = _mm512_or_si512(s->q[p], _mm512_slli_epi16(bit, 4));
        }
        s->sc[p] = _mm512_permutexvar_epi16(tempo_epi16_halves((short)(2 * p), (short)(2 * p + 1)), scales);
    }
}

#else

/* Q6_K: a super-block's 256 6-bit weights (0..63) as 8 chunks of 32 bytes. */
static void q6_k_unpack(const uint8_t *w, __m256i *q6) {
    __m256i m15 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3);
    for (int j = 0; j < 2; j++) {
        __m256i l1 = _mm256_loadu_si256((const __m256i *)(w + 64 * j)), l2 = _mm256_loadu_si256((const __m256i *)(w + 64 * j + 32));
        __m256i h = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * j));
        q6[4 * j + 0] = _mm256_or_si256(_mm256_and_si256(l1, m15), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
        q6[4 * j + 1] = _mm256_or_si256(_mm256_and_si256(l2, m15), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m3), 4));
        q6[4 * j + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m15),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m3), 4));
        q6[4 * j + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m15),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m3), 4));
    }
}

/* A Q4_K (qh NULL) or Q5_K super-block's 256 weights as 8 chunks of 32 bytes. */
static void k4_unpack(const uint8_t *qs, const uint8_t *qh, __m256i *q) {
    __m256i m15 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    for (int j = 0; j < 4; j++) {
        __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
        q[2 * j] = _mm256_and_si256(bits, m15);
        q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m15);
    }
    if (!qh) return;
    __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    for (int g = 0; g < 8; g++, h = _mm256_srli_epi16(h, 1)) /* chunk g's fifth bit: bit g of qh */
        q[g] = _mm256_or_si256(q[g], _mm256_slli_epi16(_mm256_and_si256(h, one), 4));
}

/* Per lane k: sum over the 8 chunks of sc_g (q q8). */
INLINE __m256i super_block_lanes(const SuperBlock *s, const int8_t *q8) {
    __m256i sum = _mm256_setzero_si256();
    for (int g = 0; g < CHUNK_REGS; g++) {
        __m256i p = _mm256_maddubs_epi16(s->q[g], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g)));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(s->sc[g], p));
    }
    return sum;
}

/* Q6_K: weights 0..63 and scales, chunk c: bytes 0..15 scale 2c, 16..31 scale 2c+1. */
INLINE void q6_k_super_block(const uint8_t *w, SuperBlock *s) {
    q6_k_unpack(w, s->q);
    const int8_t *scales = (const int8_t *)(w + 192);
    for (int c = 0; c < CHUNK_REGS; c++)
        s->sc[c] = _mm256_set_m128i(_mm_set1_epi16(scales[2 * c + 1]), _mm_set1_epi16(scales[2 * c]));
}

/* Q4_K (qh NULL) or Q5_K: weights and each chunk's scale (from `both`: 16-bit scales 0..7, then mins). */
INLINE void k4_chunks(const uint8_t *qs, const uint8_t *qh, __m256i both, SuperBlock *s) {
    k4_unpack(qs, qh, s->q);
    __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(both));
    for (int g = 0; g < CHUNK_REGS; g++) s->sc[g] = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)((2 * g + 1) << 8 | 2 * g)));
}

#endif

/* Per lane k of one Q6_K super-block: sum sc (q6 q8) over chunks, minus 32 (bsum_2k sc_2k + bsum_2k+1 sc_2k+1). */
INLINE __m256i q6_k_lanes(const SuperBlock *s, __m256i sc16, const int8_t *q8, const int16_t *bsums) {
    __m256i sub = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums), sc16), 5);
    return _mm256_sub_epi32(super_block_lanes(s, q8), sub);
}

INLINE void q6_k_rows(const uint8_t *w, const GgmlQ8Row *x, int k, int m, __m256 *acc) {
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 210) {
        SuperBlock s;
        q6_k_super_block(w, &s);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
        float dw = f16_at(w + 208);
        for (int i = 0; i < k; i++) {
            __m256i sum = q6_k_lanes(&s, sc16, x[i].q + b * TEMPO_QK_K, x[i].bsums + b * (TEMPO_QK_K / 16));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(x[i].d[b] * dw), _mm256_cvtepi32_ps(sum), acc[i]);
        }
    }
}

/* A Q4_K or Q5_K super-block's weights and scales (SuperBlock) and its 8
 * mins (16 bits each), the 6-bit fields of tempo_ggml_k4_scales unpacked
 * from 12 bytes as ggml does, four to a 32-bit word. */
INLINE __m128i k4_super_block(const uint8_t *scales12, const uint8_t *qs, const uint8_t *qh, SuperBlock *s) {
    uint32_t u[4];
    memcpy(u, scales12, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4); /* mins 4..7 */
    uint32_t mins_low = u[1] & 0x3f3f3f3f;                                  /* mins 0..3 */
    u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);        /* scales 4..7 */
    u[2] = mins_low;
    u[0] &= 0x3f3f3f3f; /* scales 0..3 */
    __m256i both = _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
    k4_chunks(qs, qh, both, s);
    return _mm256_extracti128_si256(both, 1);
}

/* Q4_K/Q5_K's 4 integer min lanes: lane i = min_2i bsum_2i + min_2i+1 bsum_2i+1 (sums of 32). */
static __m128i k4_min_lanes(__m128i mins, const int16_t *bsums) {
    __m256i s = _mm256_loadu_si256((const __m256i *)bsums);
    return _mm_madd_epi16(mins, _mm_hadd_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
}

/* Q4_K: lanes as q4_k_dot; the min lanes in acc_m. */
INLINE void q4_k_rows(const uint8_t *w, const GgmlQ8Row *x, int k, int m, __m256 *acc, __m128 *acc_m) {
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 144) {
        SuperBlock s;
        __m128i mins = k4_super_block(w + 4, w + 16, NULL, &s);
        float dw = f16_at(w), dminw = f16_at(w + 2);
        for (int i = 0; i < k; i++) {
            const int16_t *bsums = x[i].bsums + b * (TEMPO_QK_K / 16);
            __m256i sum = super_block_lanes(&s, x[i].q + b * TEMPO_QK_K);
            acc_m[i] = _mm_fmadd_ps(_mm_set1_ps(-x[i].d[b] * dminw), _mm_cvtepi32_ps(k4_min_lanes(mins, bsums)), acc_m[i]);
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(x[i].d[b] * dw), _mm256_cvtepi32_ps(sum), acc[i]);
        }
    }
}

/* Q5_K: lanes as q5_k_dot; the mins as one integer each super-block, added in mins[i]. */
INLINE void q5_k_rows(const uint8_t *w, const GgmlQ8Row *x, int k, int m, __m256 *acc, float *mins) {
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 176) {
        SuperBlock s;
        __m128i mn = k4_super_block(w + 4, w + 48, w + 16, &s);
        float dw = f16_at(w), dminw = f16_at(w + 2);
        for (int i = 0; i < k; i++) {
            __m128i p = k4_min_lanes(mn, x[i].bsums + b * (TEMPO_QK_K / 16));
            p = _mm_hadd_epi32(_mm_hadd_epi32(p, p), p);
            float dmin = -x[i].d[b] * dminw;
            mins[i] = fmaf(dmin, (float)_mm_cvtsi128_si32(p), mins[i]);
            __m256i sum = super_block_lanes(&s, x[i].q + b * TEMPO_QK_K);
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(x[i].d[b] * dw), _mm256_cvtepi32_ps(sum), acc[i]);
        }
    }
}

/* Chunk c (values 32c .. 32c+31) of a Q2_K, Q3_K or IQ4_XS super-block: its values as int8, and each
 * value's scale, per 32-bit lane (sub-blocks of 16: the low 128 bits, then the high; IQ4_XS's of 32). */
INLINE __m256i k_chunk(WeightType t, const uint8_t *w, int c, __m256i *scale) {
#if defined(__AVX512BW__) && defined(__AVX512VL__) /* without: Q2_K only (q2_k_halves; is_k_low_bit is 0) */
    if (t == WEIGHT_IQ4_XS) {
        *scale = _mm256_set1_epi32(tempo_iq4_xs_scale(w, c) - 32);
        return tempo_iq4_levels32(w + 8 + 16 * c);
    }
#endif
    if (t == WEIGHT_Q2_K) {
        *scale = _mm256_set_m128i(_mm_set1_epi32(w[2 * c + 1] & 15), _mm_set1_epi32(w[2 * c] & 15));
        return tempo_two_bits32(w + 16, c);
    }
    *scale = _mm256_set_m128i(_mm_set1_epi32(tempo_q3_k_scale(w + 96, 2 * c + 1) - 32), _mm_set1_epi32(tempo_q3_k_scale(w + 96, 2 * c) - 32));
    __m256i clear = _mm256_andnot_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)w), c), _mm256_set1_epi8(1));
    return _mm256_sub_epi8(tempo_two_bits32(w + 32, c), _mm256_slli_epi16(clear, 2)); /* minus 4 where hmask bit c is clear */
}

/* The 8 integer lanes of chunks from .. to - 1 of a super-block: lane k the sum over them of each value's scale
 * times products 4k..4k+3 (all 8 chunks: tempo_ggml_k_dot's lanes; a half: q2_k_halves). */
INLINE __m256i k_lanes(WeightType t, const uint8_t *w, const int8_t *q8, int from, int to) {
    __m256i sums = _mm256_setzero_si256();
    for (int c = from; c < to; c++) {
        __m256i scale, q = k_chunk(t, w, c, &scale);
        sums = _mm256_add_epi32(sums, _mm256_mullo_epi32(tempo_block32_lanes(q, q8 + 32 * c), scale));
    }
    return sums;
}

/* Q2_K's 8 min lanes: lane k = mn_2k bsum16_2k + mn_2k+1 bsum16_2k+1 (mn the high nibbles of the 16 scale bytes). */
static __m256i q2_k_min_lanes(const uint8_t *w, const int16_t *bsums) {
    __m128i mins = _mm_and_si128(_mm_srli_epi16(_mm_loadu_si128((const __m128i *)w), 4), _mm_set1_epi8(15));
    return _mm256_madd_epi16(_mm256_cvtepu8_epi16(mins), _mm256_loadu_si256((const __m256i *)bsums));
}

/* Q2_K, Q3_K, IQ4_XS as tempo_ggml_k_dot: per super-block Q2_K's min lanes (min_2k bsum_2k + min_2k+1 bsum_2k+1)
 * by a fused multiply-add of f32(-d_x dmin), then the lanes by one of f32(d_w d_x). */
INLINE void k_rows(WeightType t, const uint8_t *w, const GgmlQ8Row *x, int k, int m, __m256 *acc) {
    size_t bytes = tempo_block_bytes(t);
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += bytes)
        for (int i = 0; i < k; i++) {
            if (t == WEIGHT_Q2_K) {
                __m256 mins = _mm256_cvtepi32_ps(q2_k_min_lanes(w, x[i].bsums + b * (TEMPO_QK_K / 16)));
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(-x[i].d[b] * f16_at(w + 82)), mins, acc[i]);
            }
            float d = t == WEIGHT_IQ4_XS ? f16_at(w) * x[i].d[b] : x[i].d[b] * f16_at(w + (t == WEIGHT_Q3_K ? 108 : 80));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(k_lanes(t, w, x[i].q + b * TEMPO_QK_K, 0, 8)), acc[i]);
        }
}

/* Up to GGML_MAX_ROWS rows: the lanes, then the plain sums' last step (Q4_K, Q5_K, Q4_1 and Q5_1 add their mins). */
INLINE void dot_few_rows(WeightType t, const uint8_t *w, const GgmlQ8Row *x, int k, int m, float *out, size_t stride) {
    __m256 acc[GGML_MAX_ROWS];
    __m128 acc_m[GGML_MAX_ROWS];
    float mins[GGML_MAX_ROWS];
    for (int i = 0; i < k; i++) acc[i] = _mm256_setzero_ps(), acc_m[i] = _mm_setzero_ps(), mins[i] = 0.0f;
    if (t == WEIGHT_Q4_K) q4_k_rows(w, x, k, m, acc, acc_m);
    else if (t == WEIGHT_Q5_K) q5_k_rows(w, x, k, m, acc, mins);
    else if (t == WEIGHT_Q6_K) q6_k_rows(w, x, k, m, acc);
    else if (is_k_low_bit(t)) k_rows(t, w, x, k, m, acc);
    else q8_0_rows(t, w, x, k, m, acc, mins);
    for (int i = 0; i < k; i++) {
        float *o = out + (size_t)i * stride;
        if (t == WEIGHT_Q4_K) *o = hsum_float_8(acc[i]) + hsum_float_4(acc_m[i]);
        else if (t == WEIGHT_Q5_K || t == WEIGHT_Q4_1 || t == WEIGHT_Q5_1) *o = hsum_float_8(acc[i]) + mins[i];
        else *o = hsum_float_8(acc[i]);
    }
}

void tempo_ggml_dot_rows_fast(WeightType t, const uint8_t *w, const GgmlQ8Row *x, int k, int m, float *out, size_t stride) {
    if (!tempo_ggml_dot_is_vectorized(t)) {
        for (int i = 0; i < k; i++) out[(size_t)i * stride] = unvectorized_dot(t, w, x[i], m);
        return;
    }
    if (k == 1) { /* decoding: one row, compiled apart so its lanes stay in registers */
        dot_few_rows(t, w, x, 1, m, out, stride);
        return;
    }
    for (int i0 = 0; i0 < k; i0 += GGML_MAX_ROWS)
        dot_few_rows(t, w, x + i0, k - i0 < GGML_MAX_ROWS ? k - i0 : GGML_MAX_ROWS, m, out + (size_t)i0 * stride, stride);
}

/* The sum of 8 (or 4) 32-bit integer lanes (exact in any order). */
static int hsum_epi32_4(__m128i x) {
    x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    return _mm_cvtsi128_si32(_mm_add_epi32(x, _mm_shuffle_epi32(x, 1)));
}
static int hsum_epi32_8(__m256i x) { return hsum_epi32_4(_mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1))); }

/* IQ4_NL in a call of one row, as tempo_ggml_iq4_nl_vec_dot: even blocks' lanes in acc[0], odd blocks' in acc[1],
 * hsum_float_8 of their sum; an odd last block as one fused multiply-add of its integer total. */
static float iq4_nl_vec_row(const uint8_t *w, GgmlQ8Row x, int m) {
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    int blocks = m / TEMPO_GGML_Q8_0_BLOCK, b = 0;
    for (; b < blocks - blocks % 2; b++, w += 18) {
        __m256 sum = _mm256_cvtepi32_ps(tempo_block32_lanes(q_block(WEIGHT_IQ4_NL, w), x.q + b * TEMPO_GGML_Q8_0_BLOCK));
        acc[b % 2] = _mm256_fmadd_ps(_mm256_set1_ps(x.d[b] * f16_at(w)), sum, acc[b % 2]);
    }
    float total = hsum_float_8(_mm256_add_ps(acc[0], acc[1]));
    if (b < blocks) {
        int isum = hsum_epi32_8(tempo_block32_lanes(q_block(WEIGHT_IQ4_NL, w), x.q + b * TEMPO_GGML_Q8_0_BLOCK));
        total = fmaf(x.d[b] * f16_at(w), (float)isum, total);
    }
    return total;
}

void tempo_ggml_dot_weight_rows_fast(WeightType t, const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, float *out) {
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        if (t == WEIGHT_IQ4_NL && is_block32(t)) out[r] = iq4_nl_vec_row(row, x, m); /* not dot_few_rows: tinyBLAS's order */
        else if (!tempo_ggml_dot_is_vectorized(t)) out[r] = weight_row_dot(t, row, x, m);
        else dot_few_rows(t, row, &x, 1, m, out + r, 1);
    }
}

/* The lanes of repacked block b of row w. */
static __m256i b32_lanes(WeightType t, const uint8_t *w, GgmlQ8Row x, int b) {
    return tempo_block32_lanes(q_block(t, w + (size_t)b * 18), x.q + b * TEMPO_GGML_Q8_0_BLOCK);
}

/* Q4_0 and IQ4_NL repacked, one weight row: per block the exact integer sum, then one fused multiply-add of
 * f32(d_w d_x) into one sum. */
static float b32_8x8_row(WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    float acc = 0.0f;
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++) acc = fmaf((float)hsum_epi32_8(b32_lanes(t, w, x, b)), f16_at(w + (size_t)b * 18) * x.d[b], acc);
    return acc;
}

/* isum[b] = the integer sum of block b of row w, for b < n: four blocks' lanes folded by hadd at once (exact). */
static void b32_block_sums(WeightType t, const uint8_t *w, GgmlQ8Row x, int n, int32_t *isum) {
    int b = 0;
    for (; b + 4 <= n; b += 4) {
        __m256i pairs = _mm256_hadd_epi32(_mm256_hadd_epi32(b32_lanes(t, w, x, b), b32_lanes(t, w, x, b + 1)),
                                          _mm256_hadd_epi32(b32_lanes(t, w, x, b + 2), b32_lanes(t, w, x, b + 3)));
        _mm_storeu_si128((__m128i *)(isum + b), _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1)));
    }
    for (; b < n; b++) isum[b] = hsum_epi32_8(b32_lanes(t, w, x, b));
}

/* b32_8x8_row for weight rows 0..3 (at w + r row_bytes) at once, row r in lane r: per chunk of blocks, each
 * row's integer sums in turn (the rows read in memory order, as the prefetcher likes them), then the four
 * rows' fused multiply-adds of f32(d_w d_x) as one vfmadd a block (ggml's gemv keeps its rows' sums in one
 * vector too): a chain of one rounding a block for four rows, not for one. */
static void b32_8x8_four_rows(WeightType t, const uint8_t *w, size_t row_bytes, GgmlQ8Row x, int m, float out[4]) {
    enum { CHUNK = 64 };
    int32_t isum[4][CHUNK];
    __m128 acc = _mm_setzero_ps();
    int blocks = m / TEMPO_GGML_Q8_0_BLOCK;
    for (int b0 = 0; b0 < blocks; b0 += CHUNK) {
        int n = blocks - b0 < CHUNK ? blocks - b0 : CHUNK;
        GgmlQ8Row chunk = {x.q + b0 * TEMPO_GGML_Q8_0_BLOCK, x.d + b0, NULL, NULL};
        for (int r = 0; r < 4; r++) b32_block_sums(t, w + r * row_bytes + (size_t)b0 * 18, chunk, n, isum[r]);
        for (int b = 0; b < n; b++) {
            const uint8_t *block = w + (size_t)(b0 + b) * 18;
            __m128i halves = _mm_setr_epi16((short)tempo_u16_at(block), (short)tempo_u16_at(block + row_bytes), (short)tempo_u16_at(block + 2 * row_bytes),
                                            (short)tempo_u16_at(block + 3 * row_bytes), 0, 0, 0, 0);
            __m128 scale = _mm_mul_ps(_mm_cvtph_ps(halves), _mm_set1_ps(chunk.d[b]));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_setr_epi32(isum[0][b], isum[1][b], isum[2][b], isum[3][b])), scale, acc);
        }
    }
    _mm_storeu_ps(out, acc);
}

void tempo_ggml_b32_8x8_rows_fast(WeightType t, const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, float *out) {
    int r = 0, vectorized = t == WEIGHT_Q4_0 || is_block32(t); /* IQ4_NL needs AVX-512 BW and VL */
    if (vectorized)
        for (; r + 4 <= rows; r += 4) b32_8x8_four_rows(t, w + r * row_bytes, row_bytes, x, m, out + r);
    for (; r < rows; r++) {
        const uint8_t *row = w + r * row_bytes;
        out[r] = vectorized ? b32_8x8_row(t, row, x, m) : b32_8x8_dot_plain(t, row, x, m);
    }
}

/* One Q2_K super-block's integers by halves (tempo_ggml_q2_k_8x8_dot): isum[h] = sum over sub-blocks g of half h
 * (8h .. 8h+7) of sc_g times the sum of q2 q8 over its 16 values, imin[h] = sum of mn_g bsum16_g. */
static void q2_k_halves(const uint8_t *w, const int8_t *q8, const int16_t *bsums, int isum[2], int imin[2]) {
    __m256i min_lanes = q2_k_min_lanes(w, bsums); /* half h: lanes 4h .. 4h+3 */
    isum[0] = hsum_epi32_8(k_lanes(WEIGHT_Q2_K, w, q8, 0, 4)), isum[1] = hsum_epi32_8(k_lanes(WEIGHT_Q2_K, w, q8, 4, 8));
    imin[0] = hsum_epi32_4(_mm256_castsi256_si128(min_lanes)), imin[1] = hsum_epi32_4(_mm256_extracti128_si256(min_lanes, 1));
}

float tempo_ggml_q2_k_8x8_dot_fast(const uint8_t *w, GgmlQ8Row x, int m, int gemm) {
    float acc = 0.0f, acc_min = 0.0f;
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 84) {
        float d = f16_at(w + 80) * x.d[b], dmin = f16_at(w + 82) * x.d[b];
        int isum[2], imin[2];
        q2_k_halves(w, x.q + b * TEMPO_QK_K, x.bsums + b * (TEMPO_QK_K / 16), isum, imin);
        if (gemm)
            for (int h = 0; h < 2; h++) acc = fmaf((float)isum[h], d, acc), acc_min = fmaf((float)imin[h], dmin, acc_min);
        else
            acc = fmaf((float)(isum[0] + isum[1]), d, acc), acc_min = fmaf((float)(imin[0] + imin[1]), dmin, acc_min);
    }
    return acc - acc_min;
}

/* Q4_K in the repacked order of ggml's gemv (tempo_ggml_q4_k_8x8_dot): the lanes summed to one integer per super-block. */
static float q4_k_8x8_gemv_row(const uint8_t *w, GgmlQ8Row x, int m) {
    float acc = 0.0f, acc_min = 0.0f;
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 144) {
        SuperBlock s;
        __m128i mins = k4_super_block(w + 4, w + 16, NULL, &s);
        int isum = hsum_epi32_8(super_block_lanes(&s, x.q + b * TEMPO_QK_K));
        int imin = hsum_epi32_4(k4_min_lanes(mins, x.bsums + b * (TEMPO_QK_K / 16)));
        acc = fmaf((float)isum, f16_at(w) * x.d[b], acc);
        acc_min = fmaf((float)imin, f16_at(w + 2) * x.d[b], acc_min);
    }
    return acc - acc_min;
}

/* ggml's gemm order: the same per pair of sub-blocks (64 values; the plain
 * loops: a prompt's products take the tiles, ggml_q4_k_tiles.c). */
void tempo_ggml_q4_k_8x8_rows_fast(const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, int gemm, float *out) {
    for (int r = 0; r < rows; r++)
        out[r] = gemm ? tempo_ggml_q4_k_8x8_dot(w + (size_t)r * row_bytes, x, m, 1) : q4_k_8x8_gemv_row(w + (size_t)r * row_bytes, x, m);
}

#else

int tempo_ggml_dot_is_vectorized(WeightType t) {
    (void)t;
    return 0;
}

void tempo_ggml_quantize_fast(GgmlDotType t, const float *x, int m, GgmlQ8Row out) {
    tempo_ggml_quantize_plain(t, x, m, out);
}

void tempo_ggml_dot_rows_fast(WeightType t, const uint8_t *w, const GgmlQ8Row *x, int k, int m, float *out, size_t stride) {
    for (int i = 0; i < k; i++) out[(size_t)i * stride] = unvectorized_dot(t, w, x[i], m);
}

void tempo_ggml_dot_weight_rows_fast(WeightType t, const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, float *out) {
    for (int r = 0; r < rows; r++) out[r] = weight_row_dot(t, w + (size_t)r * row_bytes, x, m);
}

void tempo_ggml_q4_k_8x8_rows_fast(const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, int gemm, float *out) {
    for (int r = 0; r < rows; r++) out[r] = tempo_ggml_q4_k_8x8_dot(w + (size_t)r * row_bytes, x, m, gemm);
}

float tempo_ggml_q2_k_8x8_dot_fast(const uint8_t *w, GgmlQ8Row x, int m, int gemm) {
    return tempo_ggml_q2_k_8x8_dot(&TEMPO_GGML_INTS_FAST, w, x, m, gemm);
}

void tempo_ggml_b32_8x8_rows_fast(WeightType t, const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, float *out) {
    for (int r = 0; r < rows; r++) out[r] = b32_8x8_dot_plain(t, w + r * row_bytes, x, m);
}

#endif
