/* unpack.c - the block types (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; the others of
 * unpack_low_bit.h and unpack_grids.h) and f16/bf16 to f32, 16 values at a
 * time in vector registers, with those headers' decoders. Every value is
 * the float dequant.c gives, bit for bit (tests/test_unpack.c checks it
 * against tempo_dequantize). */
#include "unpack_low_bit.h"

static void put16(float *y, F32x16 v) { memcpy(y, &v, sizeof v); }

static void put_vectors(float *y, const F32x16 *w, int count) {
    for (int v = 0; v < count; v++) put16(y + 16 * v, w[v]);
}

static void unpack_q8_0(const uint8_t *b, float *y) {
    F32x16 w[2];
    tempo_q8_0_vectors(b, w);
    put_vectors(y, w, 2);
}

static void unpack_q4_0(const uint8_t *b, float *y) {
    F32x16 w[2];
    tempo_q4_0_vectors(b, w);
    put_vectors(y, w, 2);
}

/* Q4_K and Q5_K (q5 set): a block of 256 values, 64 at a time. */
static inline __attribute__((always_inline)) void unpack_q45_k(const uint8_t *b, int q5, float *y) {
    float scales[16];
    tempo_q45_k_scale_products(b, scales);
    for (int j = 0; j < 4; j++) {
        F32x16 w[4];
        tempo_q45_k_vectors(b, q5, j, scales, w);
        put_vectors(y + 64 * j, w, 4);
    }
}

static void unpack_q6_k(const uint8_t *b, float *y) {
    float scales[16];
    tempo_q6_k_scale_products(b, tempo_half_scale(b + 208), scales);
    for (int g = 0; g < 4; g++) {
        F32x16 w[4];
        tempo_q6_k_vectors(b, g, scales, w);
        put_vectors(y + 64 * g, w, 4);
    }
}

/* The types of unpack_low_bit.h and unpack_grids.h: a block of 32 values in two vectors, of 64, 128 or 256 in groups of 64. */
static void unpack_low_bit(WeightType t, const uint8_t *b, float *y) {
    int groups = tempo_block_values(t) / 64;
    TempoLowBitBlock block = tempo_low_bit_block(t, b);
    if (groups == 0) {
        F32x16 w[4];
        tempo_low_bit_vectors(t, b, 0, block, w);
        put_vectors(y, w, 2);
        return;
    }
    for (int g = 0; g < groups; g++) {
        F32x16 w[4] = {{0}}; /* set: GCC cannot see that every 256-value type writes all four */
        tempo_low_bit_vectors(t, b, g, block, w);
        put_vectors(y + 64 * g, w, 4);
    }
}

/* f16 and bf16, 16 at a time; a last part under 16 values through tempo_dequantize. */
static void unpack_halves(WeightType t, const uint8_t *p, size_t n_values, float *out) {
    size_t i = 0;
    for (; i + 16 <= n_values; i += 16) put16(out + i, t == WEIGHT_F16 ? tempo_f16x16(p + 2 * i) : tempo_bf16x16(p + 2 * i));
    if (i < n_values) tempo_dequantize(t, p + 2 * i, n_values - i, out + i);
}

void tempo_unpack(WeightType t, const void *src, size_t n_values, float *out) {
    const uint8_t *p = src;
    size_t bytes = tempo_block_bytes(t), blocks = n_values / (size_t)tempo_block_values(t);
    switch (t) {
    case WEIGHT_F16: case WEIGHT_BF16: unpack_halves(t, p, n_values, out); break;
    case WEIGHT_Q8_0: for (size_t i = 0; i < blocks; i++) unpack_q8_0(p + i * bytes, out + 32 * i); break;
    case WEIGHT_Q4_0: for (size_t i = 0; i < blocks; i++) unpack_q4_0(p + i * bytes, out + 32 * i); break;
    case WEIGHT_Q4_K: for (size_t i = 0; i < blocks; i++) unpack_q45_k(p + i * bytes, 0, out + TEMPO_QK_K * i); break;
    case WEIGHT_Q5_K: for (size_t i = 0; i < blocks; i++) unpack_q45_k(p + i * bytes, 1, out + TEMPO_QK_K * i); break;
    case WEIGHT_Q6_K: for (size_t i = 0; i < blocks; i++) unpack_q6_k(p + i * bytes, out + TEMPO_QK_K * i); break;
    default:
        if (!tempo_low_bit_decoded(t)) {
            tempo_dequantize(t, src, n_values, out); /* f32, and types with no vector unpacker */
            break;
        }
        for (size_t i = 0; i < blocks; i++) unpack_low_bit(t, p + i * bytes, out + (size_t)tempo_block_values(t) * i);
        break;
    }
}
