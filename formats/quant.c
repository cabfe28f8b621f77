/* quant.c - writing weights in a stored type: float to IEEE half and to
 * bfloat16 (the block layouts and the reading side are kernels/dequant.c). */
#include <math.h>
#include <string.h>

#include "quant.h"

/* Round to nearest even; overflow to infinity; NaN stays NaN. */
uint16_t tempo_f32_to_f16(float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    float a = fabsf(v);
    if (isnan(v)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;                 /* rounds past the largest half, 65504 */
    if (a < 0x1p-14f) {                                      /* subnormal half: a multiple of 2^-24 */
        float q = nearbyintf(ldexpf(a, 24));                 /* exact scaling, ties to even */
        return sign | (uint16_t)q;
    }
    int e;
    float m = frexpf(a, &e);                                 /* a = m 2^e, m in [0.5, 1) */
    uint32_t q = (uint32_t)nearbyintf(ldexpf(m, 11));        /* 11 significant bits, ties to even */
    if (q == 2048) q = 1024, e++;
    return sign | (uint16_t)((uint32_t)(e + 14) << 10 | (q - 1024));
}

/* Round to nearest even on the upper 16 bits; NaN stays NaN. */
uint16_t tempo_f32_to_bf16(float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    if ((bits & 0x7fffffff) > 0x7f800000) return (uint16_t)((bits >> 16) | 64);
    return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}
