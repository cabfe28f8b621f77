/* ggml_q4_k_tiles.c - Q4_K weights times Q8_K activations for prefill in
 * the order of ggml_gemm_q4_K_8x8_q8_K (tempo_ggml_q4_k_8x8_dot with gemm
 * set; NOTES "Numerics of real engines", "Q4_K repacked"): per output and
 * pair p of sub-blocks (64 values) the exact integers
 *   isum = sc_2p dot_2p + sc_2p+1 dot_2p+1,  imin = mn_2p bsum_2p + mn_2p+1 bsum_2p+1,
 * then acc = fma(f32(isum), f32(d_w d_x), acc) and acc_min = fma(f32(imin),
 * f32(dmin_w d_x), acc_min) in that order; the output is acc - acc_min.
 * The integers are exact in any order, so only these fused multiply-adds
 * fix the value: bitwise equal to the plain loops (tests/test_ggml_dots.c).
 *
 * 16 weight rows are first interleaved into a tile (tempo_ggml_q4_k_tile_pack),
 * once for every activation row of the call, so that with AVX-512 each
 * 32-bit lane holds one weight row: 4 bytes of 16 rows in one register,
 * times 4 activation bytes broadcast to every lane by one dpbusd. A tile
 * times 4 activation rows reads each weight register once for the 4 rows.
 * Without AVX-512 VNNI the tile is the 16 rows as stored, and each output
 * is the plain loop. */
#include <string.h>

#include "kernels.h"

enum { TILE_ROWS = TEMPO_GGML_Q4_K_TILE_ROWS, GROUP = 4, PAIRS = 4, QUADS = 8, Q4_K_BYTES = 144 };

/* One super-block of a tile: the nibbles of pair p, quad q (values
 * 32p + 4q .. +3 of each 32-value half), row r at ((p QUADS + q) TILE_ROWS + r) 4;
 * then d and dmin (f32, one a row), the mins of each pair (two int16 a row),
 * the scales (one byte a row and sub-block). */
enum {
    QS_BYTES = PAIRS * QUADS * TILE_ROWS * 4,
    D_AT = QS_BYTES,
    DMIN_AT = D_AT + TILE_ROWS * 4,
    MINS_AT = DMIN_AT + TILE_ROWS * 4,
    SC_AT = MINS_AT + PAIRS * TILE_ROWS * 4,
    SUPER_BYTES = SC_AT + 8 * TILE_ROWS,
};

size_t tempo_ggml_q4_k_tile_bytes(int m) { return (size_t)(m / TEMPO_QK_K) * SUPER_BYTES; }

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>

/* Row r's super-block s (144 bytes) into a tile's super-block. */
static void pack_row(const uint8_t *s, int r, uint8_t *tile) {
    int sc[8], mn[8];
    tempo_ggml_k4_scales(s + 4, sc, mn);
    float d = tempo_f16_at(s), dmin = tempo_f16_at(s + 2);
    memcpy(tile + D_AT + 4 * r, &d, 4);
    memcpy(tile + DMIN_AT + 4 * r, &dmin, 4);
    for (int p = 0; p < PAIRS; p++) {
        for (int q = 0; q < QUADS; q++) memcpy(tile + ((p * QUADS + q) * TILE_ROWS + r) * 4, s + 16 + 32 * p + 4 * q, 4);
        int16_t mins[2] = {(int16_t)mn[2 * p], (int16_t)mn[2 * p + 1]};
        memcpy(tile + MINS_AT + (p * TILE_ROWS + r) * 4, mins, 4);
    }
    for (int g = 0; g < 8; g++) tile[SC_AT + g * TILE_ROWS + r] = (uint8_t)sc[g];
}

void tempo_ggml_q4_k_tile_pack(const uint8_t *w, size_t row_bytes, int rows, int m, uint8_t *tile) {
    memset(tile, 0, tempo_ggml_q4_k_tile_bytes(m)); /* rows beyond `rows`: zero */
    for (int b = 0; b < m / TEMPO_QK_K; b++)
        for (int r = 0; r < rows; r++) pack_row(w + (size_t)r * row_bytes + (size_t)b * Q4_K_BYTES, r, tile + (size_t)b * SUPER_BYTES);
}

/* 4 activation bytes at p, the same in every 32-bit lane. */
static inline __m512i broadcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Activation row c's sums of sub-blocks 2p and 2p+1 (32 values each) as two int16 in every lane. */
static inline __m512i pair_sums(const int16_t *bsums16) {
    uint32_t lo = (uint16_t)(bsums16[0] + bsums16[1]), hi = (uint16_t)(bsums16[2] + bsums16[3]);
    return _mm512_set1_epi32((int32_t)(lo | hi << 16));
}

/* Pair p of super-block b, for the 4 activation rows: acc[c] += isum d[c],
 * acc_min[c] += imin dmin[c], one fused multiply-add each (lanes: weight rows). */
static inline __attribute__((always_inline)) void pair_step(const uint8_t *sb, const GgmlQ8Row *x, int b, int p,
                                                            const __m512 *d, const __m512 *dmin, __m512 *acc, __m512 *acc_min) {
    __m512i lo[GROUP], hi[GROUP], m15 = _mm512_set1_epi8(15);
    for (int c = 0; c < GROUP; c++) lo[c] = hi[c] = _mm512_setzero_si512();
    for (int q = 0; q < QUADS; q++) { /* dot_g per row: sum of nibble q8 over the sub-block */
        __m512i v = _mm512_loadu_si512(sb + (p * QUADS + q) * TILE_ROWS * 4);
        __m512i wl = _mm512_and_si512(v, m15), wh = _mm512_and_si512(_mm512_srli_epi16(v, 4), m15);
        for (int c = 0; c < GROUP; c++) {
            const int8_t *a = x[c].q + (size_t)b * TEMPO_QK_K + 64 * p + 4 * q;
            lo[c] = _mm512_dpbusd_epi32(lo[c], wl, broadcast4(a));
            hi[c] = _mm512_dpbusd_epi32(hi[c], wh, broadcast4(a + 32));
        }
    }
    __m512i sc_lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(sb + SC_AT + 2 * p * TILE_ROWS)));
    __m512i sc_hi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(sb + SC_AT + (2 * p + 1) * TILE_ROWS)));
    __m512i mins = _mm512_loadu_si512(sb + MINS_AT + p * TILE_ROWS * 4);
    for (int c = 0; c < GROUP; c++) {
        __m512i isum = _mm512_add_epi32(_mm512_mullo_epi32(lo[c], sc_lo), _mm512_mullo_epi32(hi[c], sc_hi));
        __m512i imin = _mm512_madd_epi16(mins, pair_sums(x[c].bsums + (size_t)b * (TEMPO_QK_K / 16) + 4 * p));
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), d[c], acc[c]);
        acc_min[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), dmin[c], acc_min[c]);
    }
}

void tempo_ggml_q4_k_tile_gemm(const uint8_t *tile, int rows, const GgmlQ8Row *x, int m, float *out, size_t stride) {
    __m512 acc[GROUP], acc_min[GROUP];
    for (int c = 0; c < GROUP; c++) acc[c] = acc_min[c] = _mm512_setzero_ps();
    for (int b = 0; b < m / TEMPO_QK_K; b++) {
        const uint8_t *sb = tile + (size_t)b * SUPER_BYTES;
        __m512 dw = _mm512_loadu_ps(sb + D_AT), dminw = _mm512_loadu_ps(sb + DMIN_AT), d[GROUP], dmin[GROUP];
        for (int c = 0; c < GROUP; c++) { /* f32(d_w d_x), f32(dmin_w d_x) */
            __m512 dx = _mm512_set1_ps(x[c].d[b]);
            d[c] = _mm512_mul_ps(dw, dx), dmin[c] = _mm512_mul_ps(dminw, dx);
        }
        for (int p = 0; p < PAIRS; p++) pair_step(sb, x, b, p, d, dmin, acc, acc_min);
    }
    __mmask16 keep = (__mmask16)((1u << rows) - 1);
    for (int c = 0; c < GROUP; c++) _mm512_mask_storeu_ps(out + (size_t)c * stride, keep, _mm512_sub_ps(acc[c], acc_min[c]));
}

#else

void tempo_ggml_q4_k_tile_pack(const uint8_t *w, size_t row_bytes, int rows, int m, uint8_t *tile) {
    size_t bytes = (size_t)(m / TEMPO_QK_K) * Q4_K_BYTES;
    for (int r = 0; r < rows; r++) memcpy(tile + (size_t)r * bytes, w + (size_t)r * row_bytes, bytes);
}

void tempo_ggml_q4_k_tile_gemm(const uint8_t *tile, int rows, const GgmlQ8Row *x, int m, float *out, size_t stride) {
    size_t bytes = (size_t)(m / TEMPO_QK_K) * Q4_K_BYTES;
    for (int c = 0; c < GROUP; c++)
        for (int r = 0; r < rows; r++) out[(size_t)c * stride + r] = tempo_ggml_q4_k_8x8_dot(tile + (size_t)r * bytes, x[c], m, 1);
}

#endif
