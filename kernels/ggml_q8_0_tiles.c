/* ggml_q8_0_tiles.c - Q8_0 weights times Q8_0 activations for prefill: a
 * tile of 4 weight rows by 4 activation rows, each output in the order of
 * ggml_vec_dot_q8_0_q8_0 (tempo_ggml_dot_plain: 8 f32 lanes, lane k adding
 * f32(d_w d_x) times the integer sum of products 4k..4k+3 of each block by
 * one fused multiply-add, then hsum_float_8), so bitwise equal to it
 * (tests/test_ggml_dots.c). The tile reads each block of the 4 activation
 * rows once for 4 weight rows. The integer sums are exact in any order:
 * with AVX512-VNNI, sum (x + 128) w - 128 sum w = sum x w by one dpbusd
 * whose accumulator starts at -128 sum w. Without it, one weight row at a
 * time (tempo_ggml_dot_rows_fast). */
#include "kernels.h"

enum { TILE = 4 };

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__F16C__)
#include <immintrin.h>

/* ggml's hsum_float_8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static float hsum8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static float scale_at(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8)); }

/* Activation rows c and c+1 of block b in one register: x + 128 as bytes
 * (row c low, row c+1 high), and their scales d_x each over 8 lanes. */
static __m512i pair_bytes(const GgmlQ8Row *x, int c, int b) {
    __m256i lo = _mm256_loadu_si256((const __m256i *)(x[c].q + b * TEMPO_GGML_Q8_0_BLOCK));
    __m256i hi = _mm256_loadu_si256((const __m256i *)(x[c + 1].q + b * TEMPO_GGML_Q8_0_BLOCK));
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8((char)0x80));
}

static __m512 pair_scales(const GgmlQ8Row *x, int c, int b) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(x[c].d[b])), _mm256_set1_ps(x[c + 1].d[b]), 1);
}

/* acc[r][p]: weight row r, activation rows 2p (lanes 0..7) and 2p+1 (8..15). */
void tempo_ggml_q8_0_tile(const uint8_t *w, size_t row_bytes, const GgmlQ8Row *x, int m, float *out, size_t stride) {
    __m512 acc[TILE][TILE / 2];
    for (int r = 0; r < TILE; r++)
        for (int p = 0; p < TILE / 2; p++) acc[r][p] = _mm512_setzero_ps();
    size_t block_bytes = tempo_block_bytes(WEIGHT_Q8_0);
    for (int b = 0; b < m / TEMPO_GGML_Q8_0_BLOCK; b++) {
        __m512i qw[TILE], start[TILE];
        __m512 dw[TILE];
        for (int r = 0; r < TILE; r++) { /* start = -128 sum w per 4 weights */
            const uint8_t *block = w + (size_t)r * row_bytes + (size_t)b * block_bytes;
            qw[r] = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(block + 2)));
            start[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), qw[r]));
            dw[r] = _mm512_set1_ps(scale_at(block));
        }
        for (int p = 0; p < TILE / 2; p++) {
            __m512i xu = pair_bytes(x, 2 * p, b);
            __m512 dx = pair_scales(x, 2 * p, b);
            for (int r = 0; r < TILE; r++) {
                __m512 sum = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start[r], xu, qw[r]));
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], dx), sum, acc[r][p]);
            }
        }
    }
    for (int r = 0; r < TILE; r++)
        for (int p = 0; p < TILE / 2; p++) {
            out[(size_t)(2 * p) * stride + r] = hsum8(_mm512_castps512_ps256(acc[r][p]));
            out[(size_t)(2 * p + 1) * stride + r] = hsum8(_mm512_extractf32x8_ps(acc[r][p], 1));
        }
}

#else

void tempo_ggml_q8_0_tile(const uint8_t *w, size_t row_bytes, const GgmlQ8Row *x, int m, float *out, size_t stride) {
    for (int r = 0; r < TILE; r++) tempo_ggml_dot_rows_fast(WEIGHT_Q8_0, w + (size_t)r * row_bytes, x, TILE, m, out + r, stride);
}

#endif
