/* halves.c - IEEE half and bfloat16 values to float, exactly: what every
 * block type's scales and the F16/BF16 weights are made of. */
#include <string.h>

#include "kernels.h"

/* Normal values move their exponent (bias 15 to 127) and widen the
 * fraction; subnormals are frac * 2^-24 (exact in f32); Inf and NaN keep
 * their sign and payload. Bit operations only, so that loops vectorize. */
float tempo_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, frac = h & 1023, bits;
    if (exp == 31) bits = sign | 0x7f800000u | frac << 13;
    else if (exp != 0) bits = sign | (exp + 112) << 23 | frac << 13;
    else {
        float v = (float)frac * 0x1p-24f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

float tempo_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

float tempo_f16_at(const uint8_t *p) { return tempo_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

float tempo_f16_quieted_at(const uint8_t *p) {
    float v = tempo_f16_at(p);
    uint32_t bits;
    memcpy(&bits, &v, 4);
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) bits |= 0x00400000u; /* NaN: the quiet bit */
    memcpy(&v, &bits, 4);
    return v;
}
