/* quant.h - the stored types of weight tensors: reading them is a kernel
 * (kernels/kernels.h: block layouts, tempo_dequantize, f16/bf16 to f32);
 * writing them is here. */
#ifndef TEMPO_QUANT_H
#define TEMPO_QUANT_H

#include <stdint.h>

#include "../kernels/kernels.h"

/* Float to half and to bfloat16, round to nearest even (for writers). */
uint16_t tempo_f32_to_f16(float v);
uint16_t tempo_f32_to_bf16(float v);

#endif
