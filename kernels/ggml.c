/* ggml.c - llama.cpp's CPU arithmetic for matrix products and RMSNorm, and
 * the ggml profile's Kernels tables (NOTES "Numerics of real engines"),
 * written from ggml's source (ggml-cpu/arch/x86/quants.c, ggml-quants.c,
 * ggml-cpu/ops.cpp, vec.h): a matrix product first converts each activation
 * row to the weight type's dot-product type (ggml's vec_dot_type): Q8_0/Q8_1/
 * Q8_K blocks with ggml's scales and rounding, or f16/bf16; the product is
 * then taken as ggml's dot products take it. The attention paths are in
 * ggml_attention.c. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../formats/quant.h" /* tempo_f32_to_f16, tempo_f32_to_bf16 */
#include "kernels.h"

enum { GGML_DOT_ROWS = 4 };    /* activation rows per call of the dot kernel */
enum { GGML_WEIGHT_ROWS = 16 }; /* weight rows per call when there is one activation row */

/* ggml's vec_dot_type of each weight type. A new weight type adds its line. */
GgmlDotType tempo_ggml_dot_type(WeightType t) {
    switch (t) {
    case WEIGHT_F16: return GGML_DOT_F16;
    case WEIGHT_BF16: return GGML_DOT_BF16;
    case WEIGHT_Q8_0: case WEIGHT_Q4_0: case WEIGHT_Q5_0: case WEIGHT_IQ4_NL: case WEIGHT_Q1_0: case WEIGHT_Q2_0:
        return GGML_DOT_Q8_0;
    case WEIGHT_Q4_1: case WEIGHT_Q5_1: return GGML_DOT_Q8_1;
    case WEIGHT_Q2_K: case WEIGHT_Q3_K: case WEIGHT_Q4_K: case WEIGHT_Q5_K: case WEIGHT_Q6_K: case WEIGHT_IQ4_XS:
    case WEIGHT_TQ1_0: case WEIGHT_TQ2_0: case WEIGHT_IQ2_XXS: case WEIGHT_IQ2_XS: case WEIGHT_IQ2_S: case WEIGHT_IQ3_XXS:
    case WEIGHT_IQ3_S: case WEIGHT_IQ1_S: case WEIGHT_IQ1_M: return GGML_DOT_Q8_K;
    default: return GGML_DOT_F32;
    }
}

static float round_f16(float x) { return tempo_f16_to_f32(tempo_f32_to_f16(x)); }
static float round_bf16(float x) { return tempo_bf16_to_f32(tempo_f32_to_bf16(x)); }

/* Where the quantized activation row i of n rows of m lives in scratch: the
 * integers (n m bytes), then the scales (m / 32 a row), then Q8_K's sums of
 * each 16 integers (m / 16 a row), then Q8_1's block sums (m / 32 a row). */
static GgmlQ8Row q8_row(float *scratch, int n, int m, int i) {
    int8_t *q = (int8_t *)scratch;
    float *d = scratch + ((size_t)n * m + 3) / 4;
    int16_t *bsums = (int16_t *)(d + (size_t)n * (m / TEMPO_GGML_Q8_0_BLOCK));
    float *sums = (float *)(bsums + (size_t)n * (m / 16));
    size_t blocks = (size_t)i * (m / TEMPO_GGML_Q8_0_BLOCK);
    return (GgmlQ8Row){q + (size_t)i * m, d + blocks, bsums + (size_t)i * (m / 16), sums + blocks};
}

/* The values of a quantized row: q d per block. */
static void q8_values(GgmlQ8Row x, int m, int block, float *out) {
    for (int i = 0; i < m; i++) out[i] = x.q[i] * x.d[i / block];
}

/* The values a row of m activations has once converted to `t` (m a multiple of its block). */
void tempo_ggml_round_activations(GgmlDotType t, const float *x, int m, float *out) {
    switch (t) {
    case GGML_DOT_F16: for (int i = 0; i < m; i++) out[i] = round_f16(x[i]); break;
    case GGML_DOT_BF16: for (int i = 0; i < m; i++) out[i] = round_bf16(x[i]); break;
    case GGML_DOT_Q8_0:
    case GGML_DOT_Q8_1:
    case GGML_DOT_Q8_K: {
        float scratch[TEMPO_GGML_Q8_0_BLOCK * 3];
        int block = t == GGML_DOT_Q8_K ? TEMPO_QK_K : TEMPO_GGML_Q8_0_BLOCK;
        for (int b = 0; b < m; b += block) {
            GgmlQ8Row q = q8_row(scratch, 1, block, 0);
            tempo_ggml_quantize_plain(t, x + b, block, q);
            q8_values(q, block, block, out + b);
        }
        break;
    }
    default: memcpy(out, x, (size_t)m * sizeof(float)); break;
    }
}

/* Floats of scratch for the rounded rows, rounded up to a cache line. */
static size_t rounded_rows_values(int n, int m) { return ((size_t)n * m + 15) / 16 * 16; }

/* Floats of scratch a thread has after the rounded rows: a dequantized
 * weight row (float_matmul) or a Q4_K tile, 64-byte aligned (q4_k_tiles_matmul). */
static size_t thread_values(int m) {
    size_t tile = tempo_ggml_q4_k_tile_bytes(m) / sizeof(float) + 16;
    return tile > (size_t)m ? tile : (size_t)m;
}

static size_t ggml_matmul_scratch(int n, int m) { return rounded_rows_values(n, m) + thread_values(m) * omp_get_max_threads(); }

/* out[i d] = one weight row times each of the n quantized rows, GGML_DOT_ROWS at a time. */
static void dot_weight_row(WeightType t, const uint8_t *w, float *scratch, int n, int m, float *out, int d) {
    GgmlQ8Row rows[GGML_DOT_ROWS];
    for (int i0 = 0; i0 < n; i0 += GGML_DOT_ROWS) {
        int k = n - i0 < GGML_DOT_ROWS ? n - i0 : GGML_DOT_ROWS;
        for (int i = 0; i < k; i++) rows[i] = q8_row(scratch, n, m, i0 + i);
        tempo_ggml_dot_rows_fast(t, w, rows, k, m, out + (size_t)i0 * d, (size_t)d);
    }
}

/* out = in W^T, each of the n quantized rows times blocks of
 * GGML_WEIGHT_ROWS weight rows a kernel call, threads over the blocks:
 * a decoding step's product (n = 1), and Q4_K repacked for n < 4
 * (`repacked`: in the order of ggml's gemv_q4_K_8x8, ggml_repack.c; 4 or
 * more rows go to q4_k_tiles_matmul). */
static void weight_blocks_matmul(float *out, Matrix w, const float *scratch, int n, int m, int d, int repacked) {
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
    int blocks = (d + GGML_WEIGHT_ROWS - 1) / GGML_WEIGHT_ROWS;
#pragma omp parallel for schedule(static) if ((size_t)d * m >= ((size_t)1 << 18))
    for (int b = 0; b < blocks; b++) {
        int r0 = b * GGML_WEIGHT_ROWS, rows = d - r0 < GGML_WEIGHT_ROWS ? d - r0 : GGML_WEIGHT_ROWS;
        const uint8_t *at = (const uint8_t *)w.data + r0 * row_bytes;
        for (int i = 0; i < n; i++) {
            GgmlQ8Row x = q8_row((float *)scratch, n, m, i);
            float *o = out + (size_t)i * d + r0;
            if (repacked) tempo_ggml_q4_k_8x8_rows_fast(at, row_bytes, rows, x, m, 0, o);
            else tempo_ggml_dot_weight_rows_fast(w.type, at, row_bytes, rows, x, m, o); /* IQ4_NL: vec_dot's order */
        }
    }
}

/* out = in W^T for Q4_K repacked and n >= 4 rows: threads over tiles of
 * TEMPO_GGML_Q4_K_TILE_ROWS weight rows, each packed once into its
 * thread's scratch (ggml_q4_k_tiles.c); the groups of 4 rows by the tile
 * (ggml's gemm order), the 1 to 3 left over one at a time (its gemv). */
static void q4_k_tiles_matmul(float *out, Matrix w, float *scratch, int n, int m, int d) {
    enum { TILE = TEMPO_GGML_Q4_K_TILE_ROWS };
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
    int tiles = (d + TILE - 1) / TILE, gemm_rows = n - n % 4;
#pragma omp parallel for schedule(static) if ((size_t)d * m >= ((size_t)1 << 18))
    for (int t = 0; t < tiles; t++) {
        int r0 = t * TILE, rows = d - r0 < TILE ? d - r0 : TILE;
        const uint8_t *at = (const uint8_t *)w.data + r0 * row_bytes;
        uintptr_t mine = (uintptr_t)(scratch + rounded_rows_values(n, m) + thread_values(m) * omp_get_thread_num());
        uint8_t *tile = (uint8_t *)((mine + 63) & ~(uintptr_t)63);
        tempo_ggml_q4_k_tile_pack(at, row_bytes, rows, m, tile);
        GgmlQ8Row x[4];
        for (int i0 = 0; i0 < gemm_rows; i0 += 4) {
            for (int c = 0; c < 4; c++) x[c] = q8_row(scratch, n, m, i0 + c);
            tempo_ggml_q4_k_tile_gemm(tile, rows, x, m, out + (size_t)i0 * d + r0, (size_t)d);
        }
        for (int i = gemm_rows; i < n; i++)
            tempo_ggml_q4_k_8x8_rows_fast(at, row_bytes, rows, q8_row(scratch, n, m, i), m, 0, out + (size_t)i * d + r0);
    }
}

/* out[i d + r] for GGML_DOT_ROWS weight rows from w, Q8_0, each of the n
 * quantized rows: tiles of GGML_DOT_ROWS activation rows
 * (tempo_ggml_q8_0_tile), then the rows left one weight row at a time. */
static void dot_q8_0_rows(const uint8_t *w, size_t row_bytes, float *scratch, int n, int m, float *out, int d) {
    GgmlQ8Row rows[GGML_DOT_ROWS];
    int i0 = 0;
    for (; i0 + GGML_DOT_ROWS <= n; i0 += GGML_DOT_ROWS) {
        for (int i = 0; i < GGML_DOT_ROWS; i++) rows[i] = q8_row(scratch, n, m, i0 + i);
        tempo_ggml_q8_0_tile(w, row_bytes, rows, m, out + (size_t)i0 * d, (size_t)d);
    }
    for (int i = i0; i < n; i++) rows[i - i0] = q8_row(scratch, n, m, i);
    for (int r = 0; r < GGML_DOT_ROWS && i0 < n; r++)
        tempo_ggml_dot_rows_fast(WEIGHT_Q8_0, w + r * row_bytes, rows, n - i0, m, out + (size_t)i0 * d + r, (size_t)d);
}

/* out[i d + r] for weight rows r0 .. r0 + rows - 1 (`repacked`: as ggml_repack.c takes them). */
static void dot_weight_rows(Matrix w, int r0, int rows, float *scratch, int n, int m, float *out, int d, int repacked) {
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
    const uint8_t *first = (const uint8_t *)w.data + r0 * row_bytes;
    if (w.type == WEIGHT_Q8_0 && rows == GGML_DOT_ROWS) {
        dot_q8_0_rows(first, row_bytes, scratch, n, m, out + r0, d);
        return;
    }
    if (repacked && w.type != WEIGHT_Q2_K) { /* Q4_0, IQ4_NL */
        for (int i = 0; i < n; i++) tempo_ggml_b32_8x8_rows_fast(w.type, first, row_bytes, rows, q8_row(scratch, n, m, i), m, out + (size_t)i * d + r0);
        return;
    }
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = first + r * row_bytes;
        if (!repacked) {
            dot_weight_row(w.type, row, scratch, n, m, out + r0 + r, d);
            continue;
        }
        for (int i = 0; i < n; i++) /* Q2_K (`gemm`: the row is in a group of 4 a call hands ggml's gemm) */
            out[(size_t)i * d + r0 + r] = tempo_ggml_q2_k_8x8_dot_fast(row, q8_row(scratch, n, m, i), m, i < n - n % 4);
    }
}

/* out = in W^T for the weight types whose dot ggml_dots.c follows: each
 * input row quantized once to the dot's type, then threads over groups of
 * GGML_DOT_ROWS weight rows (a decoding step and repacked Q4_K: over
 * blocks of GGML_WEIGHT_ROWS; a prompt's repacked Q4_K: tiles of
 * TEMPO_GGML_Q4_K_TILE_ROWS); `repacked` Q4_0 and Q4_K as the repacked
 * kernels take them (ggml_repack.c). Each output the same on any thread. */
static void q8_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch, int repacked) {
    GgmlDotType t = tempo_ggml_dot_type(w.type);
#pragma omp parallel for schedule(static) if (n >= 16)
    for (int i = 0; i < n; i++) tempo_ggml_quantize_fast(t, in + (size_t)i * m, m, q8_row(scratch, n, m, i));
    if (repacked && w.type == WEIGHT_Q4_K && n >= 4) {
        q4_k_tiles_matmul(out, w, scratch, n, m, d);
        return;
    }
    if ((n == 1 && !repacked) || (repacked && w.type == WEIGHT_Q4_K)) {
        weight_blocks_matmul(out, w, scratch, n, m, d, repacked);
        return;
    }
    int groups = (d + GGML_DOT_ROWS - 1) / GGML_DOT_ROWS;
#pragma omp parallel for schedule(static) if ((size_t)d * m >= ((size_t)1 << 18))
    for (int g = 0; g < groups; g++) {
        int r0 = g * GGML_DOT_ROWS;
        dot_weight_rows(w, r0, d - r0 < GGML_DOT_ROWS ? d - r0 : GGML_DOT_ROWS, scratch, n, m, out, d, repacked);
    }
}

/* out = round(in) W^T for F32, F16 and BF16 weights in ggml's order: each
 * input row rounded to the weight type, then each output as tinyBLAS takes
 * it for a call of 2+ rows, else as the one-row vec_dot (tempo_ggml_dot;
 * its vectorized twin). Threads over weight rows, each dequantized to f32
 * in its thread's part of the scratch: the rounded rows, then m floats a thread. */
static void float_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    GgmlDotType t = tempo_ggml_dot_type(w.type);
    float *rows = scratch;
    for (int i = 0; i < n; i++) tempo_ggml_round_activations(t, in + (size_t)i * m, m, rows + (size_t)i * m);
    int batched = tempo_ggml_tinyblas(t, n, m, d);
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
#pragma omp parallel for schedule(static) if ((size_t)d * m * n >= ((size_t)1 << 18))
    for (int r = 0; r < d; r++) {
        float *weights = scratch + rounded_rows_values(n, m) + (size_t)m * omp_get_thread_num();
        tempo_dequantize(w.type, (const char *)w.data + (size_t)r * row_bytes, (size_t)m, weights);
        for (int i = 0; i < n; i++) out[(size_t)i * d + r] = tempo_ggml_dot_fast(t, batched, weights, rows + (size_t)i * m, m);
    }
}

/* out = round(in) W^T: each input row converted to W's dot-product type,
 * then the product: in ggml's order for Q8_0, Q4_0, the K-quants Q4_K..Q6_K
 * (ggml_dots.c), F32, F16 and BF16 (ggml_dot.c); else with the f32
 * dequantized weights, TEMPO_FEW_ROWS rows at a time (the blocked kernel's
 * order, the same for every row and thread count, where sgemm's would
 * depend on them: a different last bit can flip a later rounding). */
static void ggml_matmul(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    GgmlDotType t = tempo_ggml_dot_type(w.type);
    if (tempo_ggml_has_dot(w.type)) {
        q8_matmul(out, in, w, n, m, d, scratch, 0);
        return;
    }
    if (w.type == WEIGHT_F32 || w.type == WEIGHT_F16 || w.type == WEIGHT_BF16) {
        float_matmul(out, in, w, n, m, d, scratch);
        return;
    }
    for (int i = 0; i < n; i++) tempo_ggml_round_activations(t, in + (size_t)i * m, m, scratch + (size_t)i * m);
    for (int i0 = 0; i0 < n; i0 += TEMPO_FEW_ROWS) {
        int k = n - i0 < TEMPO_FEW_ROWS ? n - i0 : TEMPO_FEW_ROWS;
        tempo_matmul_fast(out + (size_t)i0 * d, scratch + (size_t)i0 * m, w, k, m, d, NULL);
    }
}

/* RMSNorm as ggml_compute_forward_rms_norm_f32: the squares in f32, summed
 * in double; mean and scale = 1/sqrtf(mean + eps) in f32; y = x scale w. */
static void ggml_rmsnorm(float *out, const float *x, const float *weight, int n, int dim, float eps) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim;
        double sum = 0.0;
        for (int i = 0; i < dim; i++) sum += (double)(xr[i] * xr[i]);
        float mean = (float)(sum / dim), scale = 1.0f / sqrtf(mean + eps);
        for (int i = 0; i < dim; i++) out[(size_t)r * dim + i] = xr[i] * scale * weight[i];
    }
}

/* RoPE's pair as ggml's rotate_pairs runs on zen4 (GCC fused one product
 * of each sum; its scalar loop, the one llama.cpp's traces match):
 * a' = fma(a, c, -(b s)), b' = fma(a, s, b c). */
static void ggml_rope_pair(float *a, float *b, float c, float s) {
    float a0 = *a, b0 = *b;
    *a = fmaf(a0, c, -(b0 * s));
    *b = fmaf(a0, s, b0 * c);
}

enum { /* the types tempo_ggml_dot_type maps */
    GGML_WEIGHT_TYPES = (1u << WEIGHT_N_TYPES) - 1, /* every type: each has its activation type */
};

/* ggml_matmul with Q4_0 and Q4_K weights as llama.cpp repacks them (tempo_ggml_repacks). */
static void ggml_matmul_repacked(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch) {
    if (tempo_ggml_repacks(w.type, d)) q8_matmul(out, in, w, n, m, d, scratch, 1);
    else ggml_matmul(out, in, w, n, m, d, scratch);
}

/* One ggml table: the matmul (Q4_0 and Q4_K repacked or not) and the attention path. */
#define GGML_KERNELS(label, product, attend, attend_scratch, store)                                              \
    {.name = label, .weight_types = GGML_WEIGHT_TYPES, .matmul = product, .matmul_scratch = ggml_matmul_scratch, \
     .matrix_row = tempo_matrix_row_fast, .attention = attend, .attention_scratch = attend_scratch,             \
     .cache_store = store, .rmsnorm = ggml_rmsnorm, .rope_pair = ggml_rope_pair, .swiglu = tempo_ggml_swiglu_fast,  \
     .by_call = 1}
static const Kernels ggml_tables[2][3] = { /* [repack][K/V f32, K/V f16, flash attention] */
    {GGML_KERNELS("ggml (K/V f32)", ggml_matmul, tempo_ggml_attention_f32_cache, tempo_ggml_attention_cache_scratch, NULL),
     GGML_KERNELS("ggml (K/V f16)", ggml_matmul, tempo_ggml_attention_f16_cache, tempo_ggml_attention_cache_scratch,
                  tempo_ggml_cache_store_f16),
     GGML_KERNELS("ggml (flash attention)", ggml_matmul, tempo_ggml_attention_flash, tempo_ggml_attention_row_scratch,
                  tempo_ggml_cache_store_f16)},
    {GGML_KERNELS("ggml (K/V f32, repack)", ggml_matmul_repacked, tempo_ggml_attention_f32_cache,
                  tempo_ggml_attention_cache_scratch, NULL),
     GGML_KERNELS("ggml (K/V f16, repack)", ggml_matmul_repacked, tempo_ggml_attention_f16_cache,
                  tempo_ggml_attention_cache_scratch, tempo_ggml_cache_store_f16),
     GGML_KERNELS("ggml (flash attention, repack)", ggml_matmul_repacked, tempo_ggml_attention_flash,
                  tempo_ggml_attention_row_scratch, tempo_ggml_cache_store_f16)},
};

const Kernels *tempo_ggml_kernels(int kv_f16, int flash_attn, int repack) {
    /* llama.cpp casts an f32 cache to f16 for flash attention */
    return &ggml_tables[repack != 0][flash_attn ? 2 : kv_f16 ? 1 : 0];
}
