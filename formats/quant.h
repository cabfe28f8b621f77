/* quant.h - the stored types of weight tensors and their exact conversion
 * to float: f32, f16, bf16, and ggml's block quantizations Q8_0, Q4_0,
 * Q4_K, Q5_K, Q6_K (as GGUF files hold them). */
#ifndef TEMPO_QUANT_H
#define TEMPO_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifndef TEMPO_HAVE_WEIGHT_TYPE /* the lead folds this into tempo.h */
#define TEMPO_HAVE_WEIGHT_TYPE
typedef enum { WEIGHT_F32, WEIGHT_F16, WEIGHT_BF16, WEIGHT_Q8_0, WEIGHT_Q4_0, WEIGHT_Q4_K, WEIGHT_Q5_K, WEIGHT_Q6_K } WeightType;
#endif

#define TEMPO_QK_K 256 /* values per K-quant super-block */

/* Values per block: 1 (f32, f16, bf16), 32 (Q8_0, Q4_0), 256 (K-quants). */
int tempo_block_values(WeightType t);
/* Bytes per block: 4, 2, 2, 34, 18, 144, 176, 210. */
size_t tempo_block_bytes(WeightType t);
/* Bytes of n_values (a multiple of the block size) stored as t. */
size_t tempo_row_bytes(WeightType t, size_t n_values);
/* "f32", "q4_k", ... */
const char *tempo_weight_type_name(WeightType t);
/* Converts n_values (a multiple of the block size) starting at a block
 * boundary of src to float, exactly as ggml's reference dequantization
 * (dequantize_row_*) computes them: the same float operations in the same
 * order. f32, f16 and bf16 convert exactly. */
void tempo_dequantize(WeightType t, const void *src, size_t n_values, float *out);
/* IEEE half and bfloat16 to float (exact). */
float tempo_f16_to_f32(uint16_t h);
float tempo_bf16_to_f32(uint16_t h);
/* Float to half, round to nearest even (for writers). */
uint16_t tempo_f32_to_f16(float v);

#endif
