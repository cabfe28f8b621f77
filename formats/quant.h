/* quant.h - the stored types of weight tensors and their exact conversion
 * to float: f32, f16, bf16, and ggml's block quantizations Q8_0, Q4_0,
 * Q4_K, Q5_K, Q6_K (as GGUF files hold them). */
#ifndef TEMPO_QUANT_H
#define TEMPO_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "../tempo.h" /* WeightType, tempo_block_values, tempo_row_bytes, tempo_dequantize */

#define TEMPO_QK_K 256 /* values per K-quant super-block */

/* Bytes per block: 4, 2, 2, 34, 18, 144, 176, 210. */
size_t tempo_block_bytes(WeightType t);
/* "f32", "q4_k", ... */
const char *tempo_weight_type_name(WeightType t);
/* tempo_dequantize (tempo.h) converts n_values (a multiple of the block
 * size) starting at a block boundary of src to float, exactly as ggml's
 * reference dequantization (dequantize_row_*) computes them: the same float
 * operations in the same order. f32, f16 and bf16 convert exactly. */

/* IEEE half and bfloat16 to float (exact). */
float tempo_f16_to_f32(uint16_t h);
float tempo_bf16_to_f32(uint16_t h);
/* Float to half and to bfloat16, round to nearest even (for writers). */
uint16_t tempo_f32_to_f16(float v);
uint16_t tempo_f32_to_bf16(float v);

#endif
