/* ggml_dots_iq.c - ggml's dot products for the grid types (IQ2_XXS, IQ2_XS,
 * IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) as plain definitions (NOTES
 * "Numerics of real engines"), written from ggml-cpu/arch/x86/quants.c
 * (ggml_vec_dot_iq*_q8_K, AVX2 paths). Each super-block of 256 values is
 * its integer grid values (signs applied) and an odd integer scale per 16
 * values (the block layouts of dequant_iq.c); per super-block 8 integer
 * lanes, lane k the scaled sums of products 4k..4k+3 of each 32 values,
 * added by one fused multiply-add of f32(d_w d_x); then a constant times
 * hsum_float_8 (IQ1: the delta term apart). */
#include <math.h>

#include "iq_grids.h"
#include "kernels.h"
#include "unpack_grids.h" /* tempo_u16_at, tempo_u32_at, tempo_grid_signs (ksigns_iq2xs), tempo_half_scale, tempo_iq1_m_scale */

/* A super-block as integers: q[256] the values (grid point times sign),
 * scale[16] the odd scale of each 16 values, delta[32] IQ1's +-1 shift
 * of each 8 (else unused). */
typedef struct {
    int q[TEMPO_QK_K], scale[16], delta[32];
} IqSuperBlock;


/* n grid values g (n = 8, or 4 for IQ3's half groups) at q, value j negated when bit j of signs is set. */
static void signed_values(const uint8_t *g, int n, unsigned signs, int *q) {
    for (int j = 0; j < n; j++) q[j] = signs >> j & 1 ? -(int)g[j] : (int)g[j];
}

/* Scales per 32 values ib (both of its 16s). */
static void scale_32(IqSuperBlock *s, int ib, int scale) { s->scale[2 * ib] = s->scale[2 * ib + 1] = scale; }

static void iq2_xxs(const uint8_t *b, IqSuperBlock *s) {
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *q = b + 2 + 8 * ib;
        uint32_t aux = tempo_u32_at(q + 4);
        scale_32(s, ib, 2 * (int)(aux >> 28) + 1);
        for (int l = 0; l < 4; l++) signed_values(tempo_iq2xxs_grid[q[l]], 8, tempo_grid_signs(aux >> 7 * l & 127), s->q + 32 * ib + 8 * l);
    }
}

static void iq2_xs(const uint8_t *b, IqSuperBlock *s) {
    for (int ib = 0; ib < 8; ib++) {
        s->scale[2 * ib] = 2 * (b[66 + ib] & 15) + 1, s->scale[2 * ib + 1] = 2 * (b[66 + ib] >> 4) + 1;
        for (int l = 0; l < 4; l++) {
            unsigned q = tempo_u16_at(b + 2 + 2 * (4 * ib + l));
            signed_values(tempo_iq2xs_grid[q & 511], 8, tempo_grid_signs(q >> 9), s->q + 32 * ib + 8 * l);
        }
    }
}

static void iq2_s(const uint8_t *b, IqSuperBlock *s) {
    const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *scales = b + 74;
    for (int ib = 0; ib < 8; ib++) {
        s->scale[2 * ib] = 2 * (scales[ib] & 15) + 1, s->scale[2 * ib + 1] = 2 * (scales[ib] >> 4) + 1;
        for (int l = 0; l < 4; l++) {
            unsigned index = qs[4 * ib + l] | (qh[ib] >> 2 * l & 3) << 8;
            signed_values(tempo_iq2s_grid[index], 8, signs[4 * ib + l], s->q + 32 * ib + 8 * l);
        }
    }
}

static void iq3_xxs(const uint8_t *b, IqSuperBlock *s) {
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *qs = b + 2 + 8 * ib;
        uint32_t aux = tempo_u32_at(b + 66 + 4 * ib);
        scale_32(s, ib, 2 * (int)(aux >> 28) + 1);
        for (int l = 0; l < 4; l++) {
            unsigned signs = tempo_grid_signs(aux >> 7 * l & 127);
            int *q = s->q + 32 * ib + 8 * l;
            signed_values(tempo_iq3xxs_grid[qs[2 * l]], 4, signs, q);
            signed_values(tempo_iq3xxs_grid[qs[2 * l + 1]], 4, signs >> 4, q + 4);
        }
    }
}

static void iq3_s(const uint8_t *b, IqSuperBlock *s) {
    const uint8_t *qh = b + 66, *signs = b + 74, *scales = b + 106;
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *qs = b + 2 + 8 * ib;
        scale_32(s, ib, 2 * (scales[ib / 2] >> 4 * (ib % 2) & 15) + 1);
        for (int l = 0; l < 4; l++) {
            unsigned i1 = qs[2 * l] | (qh[ib] >> 2 * l & 1) << 8, i2 = qs[2 * l + 1] | (qh[ib] >> (2 * l + 1) & 1) << 8;
            int *q = s->q + 32 * ib + 8 * l;
            signed_values(tempo_iq3s_grid[i1], 4, signs[4 * ib + l], q);
            signed_values(tempo_iq3s_grid[i2], 4, (unsigned)signs[4 * ib + l] >> 4, q + 4);
        }
    }
}

/* Group of 8 of IQ1's grid (-1, 0, 1). */
static void grid_values(const int8_t *g, int *q) {
    for (int j = 0; j < 8; j++) q[j] = g[j];
}

static void iq1_s(const uint8_t *b, IqSuperBlock *s) {
    for (int ib = 0; ib < 8; ib++) {
        unsigned h = tempo_u16_at(b + 34 + 2 * ib);
        scale_32(s, ib, 2 * (int)(h >> 12 & 7) + 1);
        for (int l = 0; l < 4; l++) {
            grid_values(tempo_iq1s_grid[b[2 + 4 * ib + l] | (h >> 3 * l & 7) << 8], s->q + 32 * ib + 8 * l);
            s->delta[4 * ib + l] = h & 0x8000 ? -1 : 1;
        }
    }
}

static void iq1_m(const uint8_t *b, IqSuperBlock *s) {
    const uint8_t *qs = b, *qh = b + 32, *sc = b + 48;
    unsigned w[4] = {tempo_u16_at(sc), tempo_u16_at(sc + 2), tempo_u16_at(sc + 4), tempo_u16_at(sc + 6)};
    for (int ib = 0; ib < 8; ib++) {
        unsigned scales = w[ib / 2] >> 6 * (ib % 2);
        s->scale[2 * ib] = 2 * (int)(scales & 7) + 1, s->scale[2 * ib + 1] = 2 * (int)(scales >> 3 & 7) + 1;
        for (int l = 0; l < 4; l++) {
            unsigned nibble = qh[2 * ib + l / 2] >> 4 * (l % 2) & 15;
            grid_values(tempo_iq1s_grid[qs[4 * ib + l] | (nibble & 7) << 8], s->q + 32 * ib + 8 * l);
            s->delta[4 * ib + l] = nibble & 8 ? -1 : 1;
        }
    }
}

/* The super-block at b as integers (its d is not read: tempo_grid_d). */
static void iq_super_block(WeightType t, const uint8_t *b, IqSuperBlock *s) {
    switch (t) {
    case WEIGHT_IQ2_XXS: iq2_xxs(b, s); break;
    case WEIGHT_IQ2_XS: iq2_xs(b, s); break;
    case WEIGHT_IQ2_S: iq2_s(b, s); break;
    case WEIGHT_IQ3_XXS: iq3_xxs(b, s); break;
    case WEIGHT_IQ3_S: iq3_s(b, s); break;
    case WEIGHT_IQ1_S: iq1_s(b, s); break;
    default: iq1_m(b, s); break;
    }
}

int tempo_ggml_is_grid(WeightType t) {
    return t == WEIGHT_IQ2_XXS || t == WEIGHT_IQ2_XS || t == WEIGHT_IQ2_S || t == WEIGHT_IQ3_XXS || t == WEIGHT_IQ3_S ||
           t == WEIGHT_IQ1_S || t == WEIGHT_IQ1_M;
}

/* The grid types' integers (GgmlBlockInts): scale times signed grid value, and for IQ1 scale times delta at w + 256. */
void tempo_ggml_iq_ints(WeightType t, const uint8_t *b, int16_t *w) {
    IqSuperBlock s;
    iq_super_block(t, b, &s);
    for (int v = 0; v < TEMPO_QK_K; v++) w[v] = (int16_t)(s.scale[v / 16] * s.q[v]);
    if (t == WEIGHT_IQ1_S || t == WEIGHT_IQ1_M)
        for (int v = 0; v < TEMPO_QK_K; v++) w[TEMPO_QK_K + v] = (int16_t)(s.scale[v / 16] * s.delta[v / 8]);
}

/* ggml's constant after the lanes' sum: IQ2 0.125, IQ3_XXS 0.25, else 1 (IQ1: IQ1S_DELTA/IQ1M_DELTA for the delta term). */
static float iq_factor(WeightType t) {
    return t == WEIGHT_IQ2_XXS || t == WEIGHT_IQ2_XS || t == WEIGHT_IQ2_S ? 0.125f : t == WEIGHT_IQ3_XXS ? 0.25f : 1.0f;
}

/* One grid-type row times one Q8_K row as ggml_vec_dot_iq*_q8_K compute it
 * with AVX2: lanes as above. IQ1_S: the delta term as one integer per
 * super-block, sum_ib ls_ib delta_ib (bsum_2ib + bsum_2ib+1) (the sum of
 * its delta lanes: the same integer, the bsums being the sums of each 16
 * q8, as the quantizers make them), added to an f32 sum by a fused
 * multiply-add with d (vfmadd231ss in the zen4 build); result hsum + 0.125
 * sum. IQ1_M: the delta term in 8 lanes of its own (scale times delta
 * times q8), result hsum + 0.125 hsum(delta lanes) in one fused
 * multiply-add. */
float tempo_ggml_iq_dot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m) {
    float lane[8] = {0}, delta_lane[8] = {0}, delta_sum = 0.0f;
    size_t bytes = tempo_block_bytes(t);
    for (int b = 0; b < m / TEMPO_QK_K; b++, w += bytes) {
        const int8_t *q8 = x.q + b * TEMPO_QK_K;
        int32_t sum[8], delta[8];
        ints->grid_lanes(t, w, q8, sum, delta);
        float d = x.d[b] * tempo_grid_d(t, w);
        for (int k = 0; k < 8; k++) lane[k] = fmaf(d, (float)sum[k], lane[k]);
        if (t == WEIGHT_IQ1_M)
            for (int k = 0; k < 8; k++) delta_lane[k] = fmaf(d, (float)delta[k], delta_lane[k]);
        if (t == WEIGHT_IQ1_S) delta_sum = fmaf(d, (float)tempo_ggml_lanes_total(delta), delta_sum);
    }
    return tempo_ggml_iq_total(t, lane, delta_lane, delta_sum);
}

/* The end of a grid type's dot: its constant times hsum_float_8 of the lanes, IQ1's delta term added. */
float tempo_ggml_iq_total(WeightType t, const float lane[8], const float delta_lane[8], float delta_sum) {
    if (t == WEIGHT_IQ1_S) return tempo_ggml_hsum_float_8(lane) + 0.125f * delta_sum;
    if (t == WEIGHT_IQ1_M) /* fused in the zen4 build (vfmadd132ss) */
        return fmaf(tempo_ggml_hsum_float_8(delta_lane), 0.125f, tempo_ggml_hsum_float_8(lane));
    return iq_factor(t) * tempo_ggml_hsum_float_8(lane);
}
