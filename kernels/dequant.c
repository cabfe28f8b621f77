/* dequant.c - stored weight types and their conversion to float: the
 * reading side of the weight formats (formats/quant.c writes them).
 *
 * The block layouts and the arithmetic are ggml's (ggml-common.h, and the
 * reference dequantize_row_* of ggml-quants.c), written here from their
 * description. Every block holds its own scales as IEEE halves (read
 * byte by byte: little-endian, any alignment). The float operations are
 * the reference's, in its order, each product and difference rounded to
 * float on its own: a product and a following subtraction are separate
 * statements so that no compiler fuses them into one FMA (GCC does not
 * in ISO C mode, clang does not across statements). */
#include <string.h>

#include "kernels.h"

size_t tempo_block_bytes(WeightType t) {
    switch (t) {
    case WEIGHT_F32: return 4;
    case WEIGHT_F16: case WEIGHT_BF16: return 2;
    case WEIGHT_Q8_0: return 2 + 32;                      /* d, qs[32] */
    case WEIGHT_Q4_0: return 2 + 16;                      /* d, qs[16] (two 4-bit values a byte) */
    case WEIGHT_Q4_K: return 2 + 2 + 12 + 128;            /* d, dmin, scales[12], qs[128] */
    case WEIGHT_Q5_K: return 2 + 2 + 12 + 32 + 128;       /* d, dmin, scales[12], qh[32], qs[128] */
    case WEIGHT_Q6_K: return 128 + 64 + 16 + 2;           /* ql[128], qh[64], scales[16], d */
    case WEIGHT_Q4_1: return 2 + 2 + 16;                  /* d, m, qs[16] */
    case WEIGHT_Q5_0: return 2 + 4 + 16;                  /* d, qh[4] (fifth bits), qs[16] */
    case WEIGHT_Q5_1: return 2 + 2 + 4 + 16;              /* d, m, qh[4], qs[16] */
    case WEIGHT_IQ4_NL: return 2 + 16;                    /* d, qs[16] (indices into kvalues) */
    case WEIGHT_Q2_K: return 16 + 64 + 2 + 2;             /* scales[16], qs[64], d, dmin */
    case WEIGHT_Q3_K: return 32 + 64 + 12 + 2;            /* hmask[32], qs[64], scales[12], d */
    case WEIGHT_IQ4_XS: return 2 + 2 + 4 + 128;           /* d, scales_h, scales_l[4], qs[128] */
    case WEIGHT_TQ1_0: return 48 + 4 + 2;                 /* qs[48] (5 trits a byte), qh[4] (4 a byte), d */
    case WEIGHT_TQ2_0: return 64 + 2;                     /* qs[64] (2 bits a value), d */
    case WEIGHT_IQ2_XXS: return 2 + 64;                   /* d, qs[32] 16-bit (indices, signs, scales) */
    case WEIGHT_IQ2_XS: return 2 + 64 + 8;                /* d, qs[32] 16-bit, scales[8] */
    case WEIGHT_IQ2_S: return 2 + 64 + 8 + 8;             /* d, qs[32], signs[32], qh[8], scales[8] */
    case WEIGHT_IQ3_XXS: return 2 + 64 + 32;              /* d, qs[64], scales and signs[32] */
    case WEIGHT_IQ3_S: return 2 + 64 + 8 + 32 + 4;        /* d, qs[64], qh[8], signs[32], scales[4] */
    case WEIGHT_IQ1_S: return 2 + 32 + 16;                /* d, qs[32], qh[8] 16-bit */
    case WEIGHT_IQ1_M: return 32 + 16 + 8;                /* qs[32], qh[16], scales[8] (d in their top nibbles) */
    case WEIGHT_Q1_0: return 2 + 16;                      /* d, qs[16] (a sign bit a value) */
    case WEIGHT_Q2_0: return 2 + 16;                      /* d, qs[16] (2 bits a value) */
    case WEIGHT_N_TYPES: return 0;
    }
    return 0;
}

size_t tempo_row_bytes(WeightType t, size_t n_values) {
    return n_values / (size_t)tempo_block_values(t) * tempo_block_bytes(t);
}


/* Q8_0: y = q * d, q int8. */
static void dequant_q8_0(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q4_0: value j (< 16) in the low nibble of qs[j], value j + 16 in its high nibble; y = (q - 8) * d. */
static void dequant_q4_0(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1: Q4_0's nibbles without the offset, plus a min; y = q*d + m. */
static void dequant_q4_1(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b), m = tempo_f16_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        float p0 = (float)(qs[j] & 0x0F) * d, p1 = (float)(qs[j] >> 4) * d;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

/* The fifth bits of Q5_0/Q5_1: bit j of the 32-bit little-endian qh is value j's (16 when set). */
static int fifth_bit(const uint8_t *qh, int j) { return (qh[j / 8] >> (j % 8) & 1) << 4; }

/* Q5_0: Q4_0's nibbles with a fifth bit each; y = (q - 16) * d. */
static void dequant_q5_0(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b);
    const uint8_t *qh = b + 2, *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(((qs[j] & 0x0F) | fifth_bit(qh, j)) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | fifth_bit(qh, j + 16)) - 16) * d;
    }
}

/* Q5_1: Q5_0's values without the offset, plus a min; y = q*d + m. */
static void dequant_q5_1(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b), m = tempo_f16_at(b + 2);
    const uint8_t *qh = b + 4, *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        float p0 = (float)((qs[j] & 0x0F) | fifth_bit(qh, j)) * d, p1 = (float)((qs[j] >> 4) | fifth_bit(qh, j + 16)) * d;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

/* The 6-bit scale and min of sub-block j (0..7), packed in 12 bytes: j < 4
 * in the low 6 bits of bytes j and j+4; j >= 4 in the nibbles of byte j+4,
 * with their top 2 bits in the high bits of bytes j-4 (scale) and j (min). */
static void scale_min_k4(int j, const uint8_t *s, int *scale, int *min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K: 8 sub-blocks of 32 with 6-bit scale sc and min m; 64 values per 32
 * bytes of qs (low nibbles: sub-block 2i, high nibbles: 2i+1);
 * y = (d*sc) * q - (dmin*m). */
static void dequant_q4_k(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b), dmin = tempo_f16_at(b + 2);
    const uint8_t *scales = b + 4, *qs = b + 16;
    for (int is = 0; is < 8; is += 2, qs += 32, y += 64) {
        int sc, m;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            float p = d1 * (float)(qs[l] & 0x0F);
            y[l] = p - m1;
        }
        for (int l = 0; l < 32; l++) {
            float p = d2 * (float)(qs[l] >> 4);
            y[32 + l] = p - m2;
        }
    }
}

/* Q5_K: Q4_K's layout plus a fifth bit per value in qh[32]: bit 2i of
 * qh[l] for value l of sub-block 2i, bit 2i+1 for sub-block 2i+1. */
static void dequant_q5_k(const uint8_t *b, float *y) {
    float d = tempo_f16_at(b), dmin = tempo_f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
    for (int is = 0; is < 8; is += 2, qs += 32, y += 64) {
        int sc, m, bit_lo = 1 << is, bit_hi = 2 << is;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            float p = d1 * (float)((qs[l] & 0x0F) + (qh[l] & bit_lo ? 16 : 0));
            y[l] = p - m1;
        }
        for (int l = 0; l < 32; l++) {
            float p = d2 * (float)((qs[l] >> 4) + (qh[l] & bit_hi ? 16 : 0));
            y[32 + l] = p - m2;
        }
    }
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales; each half (128 values) takes
 * 64 bytes of ql (low 4 bits) and 32 of qh (2 high bits each);
 * y = (d*sc) * (q - 32). */
static void dequant_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = tempo_f16_at(b + 208);
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, y += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

/* Weights are used in place, as the files store them: little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "tempo reads little-endian weight files in place");

void tempo_dequantize(WeightType t, const void *src, size_t n_values, float *out) {
    const uint8_t *p = src;
    if (t == WEIGHT_F32) {
        memcpy(out, p, n_values * sizeof(float));
        return;
    }
    /* One loop per type with plain 16-bit loads: the matrix products call this per tile of 256
     * values, and it must vectorize (assembling each value from two bytes took 1.7x as long). */
    if (t == WEIGHT_BF16) {
        for (size_t i = 0; i < n_values; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = tempo_bf16_to_f32(h);
        }
        return;
    }
    if (t == WEIGHT_F16) {
        for (size_t i = 0; i < n_values; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = tempo_f16_to_f32(h);
        }
        return;
    }
    size_t block = (size_t)tempo_block_values(t), bytes = tempo_block_bytes(t);
    for (size_t i = 0; i < n_values / block; i++, p += bytes, out += block) {
        switch (t) {
        case WEIGHT_Q8_0: dequant_q8_0(p, out); break;
        case WEIGHT_Q4_0: dequant_q4_0(p, out); break;
        case WEIGHT_Q4_K: dequant_q4_k(p, out); break;
        case WEIGHT_Q5_K: dequant_q5_k(p, out); break;
        case WEIGHT_Q6_K: dequant_q6_k(p, out); break;
        case WEIGHT_Q4_1: dequant_q4_1(p, out); break;
        case WEIGHT_Q5_0: dequant_q5_0(p, out); break;
        case WEIGHT_Q5_1: dequant_q5_1(p, out); break;
        case WEIGHT_IQ4_NL: tempo_dequant_iq4_nl(p, out); break;
        case WEIGHT_Q2_K: tempo_dequant_q2_k(p, out); break;
        case WEIGHT_Q3_K: tempo_dequant_q3_k(p, out); break;
        case WEIGHT_IQ4_XS: tempo_dequant_iq4_xs(p, out); break;
        case WEIGHT_TQ1_0: tempo_dequant_tq1_0(p, out); break;
        case WEIGHT_TQ2_0: tempo_dequant_tq2_0(p, out); break;
        case WEIGHT_IQ2_XXS: tempo_dequant_iq2_xxs(p, out); break;
        case WEIGHT_IQ2_XS: tempo_dequant_iq2_xs(p, out); break;
        case WEIGHT_IQ2_S: tempo_dequant_iq2_s(p, out); break;
        case WEIGHT_IQ3_XXS: tempo_dequant_iq3_xxs(p, out); break;
        case WEIGHT_IQ3_S: tempo_dequant_iq3_s(p, out); break;
        case WEIGHT_IQ1_S: tempo_dequant_iq1_s(p, out); break;
        case WEIGHT_IQ1_M: tempo_dequant_iq1_m(p, out); break;
        case WEIGHT_Q1_0: tempo_dequant_q1_0(p, out); break;
        case WEIGHT_Q2_0: tempo_dequant_q2_0(p, out); break;
        default: break;
        }
    }
}

void tempo_matrix_row_fast(Matrix w, int row, int cols, float *out) {
    tempo_dequantize(w.type, (const char *)w.data + (size_t)row * tempo_row_bytes(w.type, (size_t)cols), (size_t)cols, out);
}
