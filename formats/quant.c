/* quant.c - weights in their stored type (tempo.h WeightType): the size of
 * a row and the one conversion of stored values to f32, which the matrix
 * products (tempo.c matmul) call tile by tile. F32, F16 and BF16 convert
 * exactly. The GGUF block types are named in tempo.h so that their cases
 * plug in here; no loader produces them yet, so meeting one is a loader bug
 * and stops the program with a message (never zeros in place of weights). */
#include "formats.h"

#include <stdlib.h>
#include <string.h>

static void unsupported(WeightType t, const char *what) {
    fprintf(stderr, "tempo: internal error: %s of weight type %d, which no loader produces yet\n", what, (int)t);
    abort();
}

int tempo_block_values(WeightType t) {
    switch (t) {
    case WEIGHT_F32: case WEIGHT_F16: case WEIGHT_BF16: return 1;
    case WEIGHT_Q8_0: case WEIGHT_Q4_0: return 32;
    case WEIGHT_Q4_K: case WEIGHT_Q5_K: case WEIGHT_Q6_K: return 256;
    }
    unsupported(t, "block size");
    return 0;
}

size_t tempo_row_bytes(WeightType t, size_t n_values) {
    switch (t) {
    case WEIGHT_F32: return 4 * n_values;
    case WEIGHT_F16: case WEIGHT_BF16: return 2 * n_values;
    default: unsupported(t, "row size");
    }
    return 0;
}

/* IEEE half to float, exactly: normal values move their exponent (bias 15
 * to 127) and widen the fraction; subnormals are frac * 2^-24; Inf and NaN
 * keep their sign and payload. */
static uint32_t f16_bits_to_f32_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, frac = h & 1023;
    if (exp == 31) return sign | 0x7f800000u | frac << 13;
    if (exp != 0) return sign | (exp + 112) << 23 | frac << 13;
    float v = (float)frac * 0x1p-24f; /* subnormal (or zero): exact in f32 */
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return sign | bits;
}

void tempo_dequantize(WeightType t, const void *src, size_t n_values, float *out) {
    const unsigned char *p = src;
    switch (t) {
    case WEIGHT_F32:
        memcpy(out, p, 4 * n_values);
        return;
    case WEIGHT_BF16: /* the high half of an f32 */
        for (size_t i = 0; i < n_values; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(out + i, &bits, 4);
        }
        return;
    case WEIGHT_F16:
        for (size_t i = 0; i < n_values; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = f16_bits_to_f32_bits(h);
            memcpy(out + i, &bits, 4);
        }
        return;
    default:
        unsupported(t, "conversion to f32");
    }
}
