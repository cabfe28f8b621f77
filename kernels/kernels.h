/* kernels.h - the tuned kernels: the same steps as the plain definitions in
 * tempo.c (tempo_plain_kernels), computed fast. Each is tested equal to its
 * plain definition (tests/test_kernels.c): bitwise where the summation order
 * is the same, within a stated bound where it is not.
 *
 *   dequant.c    stored weight types to f32 (block layouts, ggml's arithmetic)
 *   dequant_k.c  the low-bit types Q2_K, Q3_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0
 *   halves.c     IEEE half and bfloat16 to float
 *   matmul.c     out = in W^T over weights in their stored type
 *   attention.c  attention of new rows over the KV cache, with OpenBLAS
 *   fast.c       the table of them that the loaders give a Model */
#ifndef TEMPO_KERNELS_H
#define TEMPO_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../tempo.h" /* WeightType, Matrix, Config, Kernels */

#define TEMPO_QK_K 256 /* values per K-quant super-block */

/* ---- dequant.c ---- */

/* Values per block of a type: 1 (F32, F16, BF16), 32 (Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, IQ4_NL), 256 (the K types, IQ4_XS, TQ1_0, TQ2_0). */
int tempo_block_values(WeightType t);
/* Bytes per block, in WeightType order: 4, 2, 2, 34, 18, 144, 176, 210, 20,
 * 22, 24, 84, 110, 18, 136, 54, 66. */
size_t tempo_block_bytes(WeightType t);
/* Bytes of n_values consecutive values of a row (n_values a multiple of the block). */
size_t tempo_row_bytes(WeightType t, size_t n_values);
/* The one conversion of stored values to f32: n_values (a multiple of the
 * block size) starting at a block boundary of src, exactly as ggml's
 * reference dequantization (dequantize_row_*) computes them: the same float
 * operations in the same order. f32, f16 and bf16 convert exactly. */
void tempo_dequantize(WeightType t, const void *src, size_t n_values, float *out);
/* Row `row` of a [rows][cols] matrix, as f32 (the embedding lookup). */
void tempo_matrix_row_fast(Matrix w, int row, int cols, float *out);

/* ---- dequant_k.c ---- */

/* One block at b to y[256] (IQ4_NL: y[32]), as ggml's dequantize_row_*. */
void tempo_dequant_iq4_nl(const uint8_t *b, float *y);
void tempo_dequant_q2_k(const uint8_t *b, float *y);
void tempo_dequant_q3_k(const uint8_t *b, float *y);
void tempo_dequant_iq4_xs(const uint8_t *b, float *y);
void tempo_dequant_tq1_0(const uint8_t *b, float *y);
void tempo_dequant_tq2_0(const uint8_t *b, float *y);

/* ---- halves.c ---- */

/* IEEE half and bfloat16 to float (exact). */
float tempo_f16_to_f32(uint16_t h);
float tempo_bf16_to_f32(uint16_t h);
/* The IEEE half stored little-endian at p (any alignment), as float. */
float tempo_f16_at(const uint8_t *p);

/* ---- matmul.c ---- */

/* out[n][d] = in[n][m] W^T for W [d][m] in any stored type. Up to
 * TEMPO_FEW_ROWS rows: the blocked kernel, whose summation order is the
 * plain one (tempo.c matmul_plain), so bitwise equal to it on the f32 values
 * of W; more rows: sgemm over f32 panels of W (another order, see
 * tests/test_kernels.c for the bound). `panel` holds
 * tempo_matmul_fast_scratch(n) floats. */
#define TEMPO_FEW_ROWS 8
void tempo_matmul_fast(float *out, const float *in, Matrix w, int n, int m, int d, float *panel);
size_t tempo_matmul_fast_scratch(int n);

/* ---- attention.c ---- */

/* tempo.c attention_plain with two sgemm calls per head (see Kernels in tempo.h). */
void tempo_attention_fast(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs);

/* ---- fast.c ---- */

/* The fast kernels, as one table (what the loaders in formats/ set as Model.kernels). */
extern const Kernels tempo_fast_kernels;

#endif
