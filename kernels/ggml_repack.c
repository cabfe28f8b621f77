/* ggml_repack.c - llama.cpp's product for Q4_0 weights it has repacked
 * (NOTES "Numerics of real engines", "Q4_0 repacked"), written from
 * ggml-cpu/repack.cpp (ggml_repack_get_optimal_repack_type, forward_mul_mat,
 * forward_mul_mat_one_chunk, make_block_q4_0x8) and ggml-cpu/arch/x86/repack.cpp
 * (gemv_q4_b32_8x8_q8_0_lut_avx, gemm_q4_b32_8x8_q8_0_lut_avx,
 * ggml_quantize_mat_q8_0_4x8).
 *
 * On x86 with AVX2 the CPU backend's extra buffer type (llama.cpp's
 * use_extra_bufts, on by default) repacks every 2-D Q4_0 weight of a multiple
 * of 8 rows into q4_0_8x8: blocks of 8 rows interleaved 8 bytes at a time,
 * each nibble xor 8. A product then takes the activation rows in groups of 4
 * to ggml_gemm_q4_0_8x8_q8_0 (quantized 4 rows interleaved by
 * quantize_mat_q8_0: the same scales and values as quantize_row_q8_0) and the
 * 1 to 3 rows left over, or a batch of fewer than 4, to
 * ggml_gemv_q4_0_8x8_q8_0 (quantize_row_q8_0). The AVX2 and AVX-512 paths of
 * both kernels compute each output the same way: one f32 accumulator, and
 * per 32-value block the block's integer sum of products (exact: |sum| <=
 * 32 * 8 * 128) converted to f32 and added by one fused multiply-add with
 * f32(d_w d_x). So the gemm/gemv split changes nothing in the values; what
 * differs from ggml_vec_dot_q4_0_q8_0 (8 lanes of 4 products each, then
 * hsum_float_8) is the order. */
#include <math.h>

#include "kernels.h"

enum { Q4_0_BLOCK = 32, Q4_0_BLOCK_BYTES = 18 };

/* A repacked nibble as the kernels read it: make_block_q4_0x8 stores
 * q xor 8, and the lookup table sign-extends 4 bits (values -8..7). */
static int repacked_nibble(int q) {
    int v = (q ^ 8) & 15;
    return v >= 8 ? v - 16 : v;
}

float tempo_ggml_q4_0_8x8_dot(const uint8_t *w, const int8_t *qx, const float *dx, int m) {
    float acc = 0.0f;
    for (int b = 0; b < m / Q4_0_BLOCK; b++, w += Q4_0_BLOCK_BYTES) {
        const int8_t *q8 = qx + b * Q4_0_BLOCK;
        int sum = 0; /* sum_j q4_j q8_j over the block: low nibbles are values 0..15, high 16..31 */
        for (int j = 0; j < Q4_0_BLOCK / 2; j++)
            sum += repacked_nibble(w[2 + j] & 15) * q8[j] + repacked_nibble(w[2 + j] >> 4) * q8[j + 16];
        acc = fmaf((float)sum, tempo_f16_at(w) * dx[b], acc);
    }
    return acc;
}

/* Q4_K repacked (q4_K_8x8): ggml_gemv_q4_K_8x8_q8_K (decoding, and the 1 to
 * 3 rows a call has beyond a multiple of 4) sums per output and super-block
 * one exact integer isum = sum_g sc_g sum_t q4 q8 and one imin =
 * sum_g mn_g bsum32_g, then acc = fma(f32(isum), f32(d_w d_x), acc),
 * acc_min = fma(f32(imin), f32(dmin_w d_x), acc_min), output acc - acc_min.
 * ggml_gemm_q4_K_8x8_q8_K (the groups of 4 rows; all its AVX2 and AVX-512
 * paths) does the same per pair of sub-blocks (64 values) (`gemm`). */
float tempo_ggml_q4_k_8x8_dot(const uint8_t *w, GgmlQ8Row x, int m, int gemm) {
    float acc = 0.0f, acc_min = 0.0f;
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += 144) {
        const int8_t *q8 = x.q + b * TEMPO_QK_K;
        float d = tempo_f16_at(w) * x.d[b], dmin = tempo_f16_at(w + 2) * x.d[b];
        int sc[8], mn[8], isum = 0, imin = 0;
        tempo_ggml_k4_scales(w + 4, sc, mn);
        for (int g = 0; g < 8; g++) {
            int dot = 0, bsum = 0;
            for (int t = 0; t < 32; t++) {
                uint8_t byte = w[16 + 32 * (g / 2) + t];
                dot += (g & 1 ? byte >> 4 : byte & 15) * q8[32 * g + t];
                bsum += q8[32 * g + t];
            }
            isum += sc[g] * dot, imin += mn[g] * bsum;
            if ((gemm && g % 2 == 1) || g == 7) {
                acc = fmaf((float)isum, d, acc), acc_min = fmaf((float)imin, dmin, acc_min);
                isum = imin = 0;
            }
        }
    }
    return acc - acc_min;
}

/* ggml_repack_get_optimal_repack_type on zen4 (AVX2, AVX-512): Q4_0, Q4_K,
 * IQ4_NL and (AVX-512) Q2_K matrices of a multiple of 8 rows. */
int tempo_ggml_repacks(WeightType t, int rows) {
    return (t == WEIGHT_Q4_0 || t == WEIGHT_Q4_K || t == WEIGHT_IQ4_NL || t == WEIGHT_Q2_K) && rows % 8 == 0;
}
