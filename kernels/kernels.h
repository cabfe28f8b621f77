/* kernels.h - the tuned kernels: the same steps as the plain definitions in
 * tempo.c (tempo_plain_kernels), computed fast. Each is tested equal to its
 * plain definition (tests/test_kernels.c): bitwise where the summation order
 * is the same, within a stated bound where it is not.
 *
 *   dequant.c    stored weight types to f32 (block layouts, ggml's arithmetic)
 *   dequant_k.c  the low-bit types Q2_K, Q3_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0
 *   dequant_iq.c the grid types IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (iq_grids.h)
 *   halves.c     IEEE half and bfloat16 to float
 *   unpack.c     Q8_0, Q4_0, Q4_K, Q5_K, Q6_K to f32 in vector registers (unpack.h; bitwise dequant.c's values)
 *   unpack_low_bit.h  Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, IQ4_XS the same way, for the decode kernel
 *   matmul.c     out = in W^T over weights in their stored type
 *   attention.c  attention of new rows over the KV cache, tiled, with OpenBLAS
 *   fast.c       the table of them that the loaders give a Model
 *   ggml.c       llama.cpp's CPU arithmetic (the ggml numerics profile)
 *   ggml_attention.c  its attention paths (f32 or f16 cache, flash attention)
 *   ggml_repack.c  its product for Q4_0 weights repacked as q4_0_8x8 (and Q4_K as q4_K_8x8)
 *   ggml_dots_more.c  its dots of Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K, TQ1_0, TQ2_0 (plain; repacked IQ4_NL, Q2_K)
 *   ggml_dots_iq.c  its dots of the grid types IQ1_S .. IQ3_S (plain)
 *   ggml_ints_avx.c  the integer part of those two files' dots, vectorized (GgmlInts)
 *   ggml_dot.c   its x86 AVX-512 summation orders (tinyBLAS, vec_dot), expf, SwiGLU
 *   ggml_dots.c  its quantized dot products (plain definitions)
 *   ggml_dots_avx.c  the same, vectorized; also Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K, and repacked Q4_0,
 *                    IQ4_NL, Q2_K
 *   numerics.c   the numerics profiles: exact, ggml, torch */
#ifndef TEMPO_KERNELS_H
#define TEMPO_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../tempo.h" /* WeightType, Matrix, Config, Kernels */

#define TEMPO_QK_K 256 /* values per K-quant super-block */

/* ---- dequant.c ---- */

/* Values per block of a type: 1 (F32, F16, BF16), 32 (Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, IQ4_NL), 64 (Q2_0), 128 (Q1_0), 256 (the K types, IQ4_XS,
 * TQ1_0, TQ2_0, the IQ1-IQ3 types). Inline, so that a kernel compiled for one
 * type (matmul.c's pass_low_bit) gets it as a constant. */
static inline int tempo_block_values(WeightType t) {
    switch (t) {
    case WEIGHT_F32: case WEIGHT_F16: case WEIGHT_BF16: case WEIGHT_N_TYPES: return 1;
    case WEIGHT_Q8_0: case WEIGHT_Q4_0: case WEIGHT_Q4_1: case WEIGHT_Q5_0: case WEIGHT_Q5_1: case WEIGHT_IQ4_NL: return 32;
    case WEIGHT_Q4_K: case WEIGHT_Q5_K: case WEIGHT_Q6_K: case WEIGHT_Q2_K: case WEIGHT_Q3_K: case WEIGHT_IQ4_XS:
    case WEIGHT_TQ1_0: case WEIGHT_TQ2_0: case WEIGHT_IQ2_XXS: case WEIGHT_IQ2_XS: case WEIGHT_IQ2_S: case WEIGHT_IQ3_XXS:
    case WEIGHT_IQ3_S: case WEIGHT_IQ1_S: case WEIGHT_IQ1_M: return TEMPO_QK_K;
    case WEIGHT_Q2_0: return 64;
    case WEIGHT_Q1_0: return 128;
    }
    return 1;
}

/* Bytes per block, in WeightType order: 4, 2, 2, 34, 18, 144, 176, 210, 20,
 * 22, 24, 84, 110, 18, 136, 54, 66, 66, 74, 82, 98, 110, 50, 56, 18, 18. */
size_t tempo_block_bytes(WeightType t);
/* Bytes of n_values consecutive values of a row (n_values a multiple of the block). */
size_t tempo_row_bytes(WeightType t, size_t n_values);
/* The one conversion of stored values to f32: n_values (a multiple of the
 * block size) starting at a block boundary of src, exactly as ggml's
 * reference dequantization (dequantize_row_*) computes them: the same float
 * operations in the same order. f32, f16 and bf16 convert exactly. */
void tempo_dequantize(WeightType t, const void *src, size_t n_values, float *out);
/* Row `row` of a [rows][cols] matrix, as f32 (the embedding lookup). */
void tempo_matrix_row_fast(Matrix w, int row, int cols, float *out);

/* ---- dequant_k.c ---- */

/* One block at b to y[256] (IQ4_NL: y[32]), as ggml's dequantize_row_*. */
void tempo_dequant_iq4_nl(const uint8_t *b, float *y);
void tempo_dequant_q2_k(const uint8_t *b, float *y);
void tempo_dequant_q3_k(const uint8_t *b, float *y);
void tempo_dequant_iq4_xs(const uint8_t *b, float *y);
void tempo_dequant_tq1_0(const uint8_t *b, float *y);
void tempo_dequant_tq2_0(const uint8_t *b, float *y);
void tempo_dequant_q1_0(const uint8_t *b, float *y); /* y[128] */
void tempo_dequant_q2_0(const uint8_t *b, float *y); /* y[64] */
/* IQ4_NL's and IQ4_XS's 16 levels (ggml's kvalues_iq4nl): a 4-bit index picks one. */
extern const int8_t tempo_iq4_levels[16];
/* Q3_K's 6-bit scale of sub-block j (0..15) from its 12 bytes: the low 4
 * bits are the low nibble of byte j (j < 8) or the high nibble of byte
 * j-8; the top 2 bits are bits 2(j/4)..2(j/4)+1 of byte 8 + j%4. */
static inline int tempo_q3_k_scale(const uint8_t *s, int j) {
    int low = j < 8 ? s[j] & 0x0F : s[j - 8] >> 4;
    return low | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
}

/* IQ4_XS's 6-bit scale of sub-block ib (0..7): the low 4 bits a nibble of
 * scales_l (byte 4 + ib / 2), the top 2 bits 2ib.. of the 16-bit scales_h at 2. */
static inline int tempo_iq4_xs_scale(const uint8_t *b, int ib) {
    unsigned scales_h = (unsigned)(b[2] | b[3] << 8);
    return ((b[4 + ib / 2] >> 4 * (ib % 2)) & 0x0F) | ((scales_h >> 2 * ib) & 3) << 4;
}

/* A 32-value block of Q4_1, Q5_0, Q5_1 or IQ4_NL: the byte its 16 nibble bytes start at (after d,
 * Q4_1's and Q5_1's m, Q5's 32-bit qh), and the byte Q5_0's or Q5_1's qh starts at. */
static inline int tempo_block32_nibbles_at(WeightType t) {
    return t == WEIGHT_Q4_1 ? 4 : t == WEIGHT_Q5_0 ? 6 : t == WEIGHT_Q5_1 ? 8 : 2;
}
static inline int tempo_q5_high_bits_at(WeightType t) { return t == WEIGHT_Q5_0 ? 2 : 4; }

/* ---- dequant_iq.c ---- */

/* One block of 256 values at b to y[256], as ggml's dequantize_row_*. */
void tempo_dequant_iq2_xxs(const uint8_t *b, float *y);
void tempo_dequant_iq2_xs(const uint8_t *b, float *y);
void tempo_dequant_iq2_s(const uint8_t *b, float *y);
void tempo_dequant_iq3_xxs(const uint8_t *b, float *y);
void tempo_dequant_iq3_s(const uint8_t *b, float *y);
void tempo_dequant_iq1_s(const uint8_t *b, float *y);
void tempo_dequant_iq1_m(const uint8_t *b, float *y);

/* ---- halves.c ---- */

/* IEEE half and bfloat16 to float (exact). */
float tempo_f16_to_f32(uint16_t h);
float tempo_bf16_to_f32(uint16_t h);
/* The IEEE half stored little-endian at p (any alignment), as float. */
float tempo_f16_at(const uint8_t *p);
/* The same as ggml's GGML_FP16_TO_FP32 gives it: a signaling NaN quieted (ggml's
 * conversion ends in a product; vcvtph2ps does the same). For a scale that no
 * product follows (Q1_0's d and -d). */
float tempo_f16_quieted_at(const uint8_t *p);

/* ---- matmul.c ---- */

/* out[n][d] = in[n][m] W^T for W [d][m] in any stored type, in the plain
 * summation order (tempo.c matmul_plain), so bitwise equal to it on the f32
 * values of W for every n and thread count. Up to TEMPO_FEW_ROWS rows: the
 * blocked kernel; more rows: tiles over f32 panels of W, one panel per
 * thread at a time. `panel` holds tempo_matmul_fast_scratch(n, m) floats
 * (none up to TEMPO_FEW_ROWS rows; sized for omp_get_max_threads()). */
#define TEMPO_FEW_ROWS 8
void tempo_matmul_fast(float *out, const float *in, Matrix w, int n, int m, int d, float *panel);
size_t tempo_matmul_fast_scratch(int n, int m);
/* p[j].out = in p[j].w^T for `count` products of one input, each bitwise
 * tempo_matmul_fast's. Up to TEMPO_FEW_ROWS rows, one parallel step: the
 * threads split the rows of all the matrices together (decode: Wq, Wk, Wv
 * in one step, W1 and W3 in another). `panel` as for tempo_matmul_fast. */
void tempo_products_fast(const Product *p, int count, const float *in, int n, int m, float *panel);

/* ---- attention.c ---- */

/* tempo.c attention_plain in tiles with an online softmax, two sgemm calls per
 * head and tile (see Kernels in tempo.h); scores holds
 * tempo_attention_fast_scratch(c, k, n_keys) floats, never n_keys x n_keys. */
void tempo_attention_fast(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs);
size_t tempo_attention_fast_scratch(const Config *c, int k, int n_keys);

/* ---- fast.c ---- */

/* The fast kernels, as one table (what the loaders in formats/ set as Model.kernels). */
extern const Kernels tempo_fast_kernels;

/* ---- ggml.c ---- */

/* The type ggml's CPU backend converts a matrix product's activations to
 * before the dot product (its vec_dot_type for the weight type). */
typedef enum { GGML_DOT_F32, GGML_DOT_F16, GGML_DOT_BF16, GGML_DOT_Q8_0, GGML_DOT_Q8_1, GGML_DOT_Q8_K } GgmlDotType;
GgmlDotType tempo_ggml_dot_type(WeightType t);
/* The values a row of m activations (m a multiple of the type's block) has
 * once converted to `t`, with ggml's block scales and rounding. */
void tempo_ggml_round_activations(GgmlDotType t, const float *x, int m, float *out);
/* ---- ggml_dots.c: ggml's quantized dot products, plain definitions ---- */
#define TEMPO_GGML_Q8_0_BLOCK 32
/* A row of m activations as ggml's Q8_0 blocks (32 values) or Q8_K blocks
 * (256): q[m] the integers, d[m / block] the scales, for Q8_K bsums[m / 16]
 * the sums of each 16 integers (unused for Q8_0), and for Q8_1 sums[m / 32]
 * each block's f16(d sum q) (else unused). */
typedef struct {
    int8_t *q;
    float *d;
    int16_t *bsums;
    float *sums;
} GgmlQ8Row;
/* x[m] quantized to `t` (GGML_DOT_Q8_0, _Q8_1 (its values) or _Q8_K) as ggml does. */
void tempo_ggml_quantize_plain(GgmlDotType t, const float *x, int m, GgmlQ8Row out);
/* ---- the integer part of the other types' dots (ggml_dots_more.c, ggml_dots_iq.c): exact, so any
 * order gives the same sums; plain (TEMPO_GGML_INTS_PLAIN) and vectorized (TEMPO_GGML_INTS_FAST,
 * ggml_ints_avx.c, tested equal) ---- */
/* The block of type t at b (32 or 256 values) as integers w[v] = s_v q_v: value v (signs applied)
 * times its integer scale (1 where the type has none); IQ1_S and IQ1_M also their delta term
 * s_v delta_v at w[256 + v]. */
typedef void GgmlBlockInts(WeightType t, const uint8_t *b, int16_t *w);
/* ggml's 8 integer lanes of n values (a multiple of 32): lane[k] = sum over each 32 values c of
 * w[32c + 4k + j] q8[32c + 4k + j], j < 4. */
typedef void GgmlLanes(const int16_t *w, const int8_t *q8, int n, int32_t lane[8]);
/* A grid type's super-block (IQ1_S .. IQ3_S) times 256 q8 (|q8| <= 127): the GgmlLanes of its integers,
 * and of IQ1's delta terms in delta (zero for the others). */
typedef void GgmlGridLanes(WeightType t, const uint8_t *b, const int8_t *q8, int32_t lane[8], int32_t delta[8]);
typedef struct {
    GgmlBlockInts *ints;
    GgmlLanes *lanes;
    GgmlGridLanes *grid_lanes;
} GgmlInts;
/* The sum of the 8 lanes (exact). */
static inline int tempo_ggml_lanes_total(const int32_t lane[8]) {
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}
extern const GgmlInts TEMPO_GGML_INTS_PLAIN, TEMPO_GGML_INTS_FAST;
/* One weight row w (m values of type t) times one quantized activation row,
 * in the order of ggml's x86 AVX2 vec_dot: the type of every plain dot below
 * (`ints`: how the other types' integer sums are made; the rest ignore it). */
typedef float GgmlRowDot(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m);
/* Whether ggml's dot product of weight type t is followed (ggml_dots.c's table has a dot for it). */
int tempo_ggml_has_dot(WeightType t);
/* Type t's dot, as its entry in the one table (ggml_dots.c) says; t must have one (tempo_ggml_has_dot). */
float tempo_ggml_dot_with(const GgmlInts *ints, WeightType t, const uint8_t *w, GgmlQ8Row x, int m);
/* The same with the plain integer sums: the definition. */
float tempo_ggml_dot_plain(WeightType t, const uint8_t *w, GgmlQ8Row x, int m);
/* Q4_K's and Q5_K's 6-bit scales sc[8] and mins mn[8] from their 12 bytes. */
void tempo_ggml_k4_scales(const uint8_t *q, int *sc, int *mn);
/* ---- ggml_dots_more.c: the other types' dots (Q4_1, Q5_0, Q5_1, IQ4_NL,
 * IQ4_XS, Q2_K, Q3_K, TQ1_0, TQ2_0, Q1_0, Q2_0), plain definitions, called through
 * tempo_ggml_dot_plain's table ---- */
/* Q8_1's block sums out.sums of x[m] (out.q already quantized). */
void tempo_ggml_q8_1_sums(const float *x, int m, GgmlQ8Row out);
GgmlRowDot tempo_ggml_block32_dot; /* Q4_1, Q5_0, Q5_1, IQ4_NL */
GgmlRowDot tempo_ggml_k_dot;       /* IQ4_XS, Q3_K, Q2_K */
GgmlRowDot tempo_ggml_ternary_dot; /* TQ1_0, TQ2_0 */
GgmlRowDot tempo_ggml_q1_0_dot;
GgmlRowDot tempo_ggml_q2_0_dot;
/* IQ4_NL unrepacked in a call of one row (ggml_vec_dot_iq4_nl_q8_0; 2+ rows: tempo_ggml_dot_plain, tinyBLAS's order). */
float tempo_ggml_iq4_nl_vec_dot(const GgmlInts *ints, const uint8_t *w, GgmlQ8Row x, int m);
/* ---- ggml_dots_iq.c: the grid types' dots (IQ1_S .. IQ3_S), plain ---- */
GgmlRowDot tempo_ggml_iq_dot;
/* 1 for the grid types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M), whose dot is tempo_ggml_iq_dot. */
int tempo_ggml_is_grid(WeightType t);
/* tempo_ggml_iq_dot's end, from its f32 lanes, IQ1_M's delta lanes and IQ1_S's delta sum. */
float tempo_ggml_iq_total(WeightType t, const float lane[8], const float delta_lane[8], float delta_sum);
/* tempo_ggml_iq_dot on TEMPO_GGML_INTS_FAST's lanes, a whole row in registers (ggml_ints_avx.c; bitwise equal). */
float tempo_ggml_iq_dot_fast(WeightType t, const uint8_t *w, GgmlQ8Row x, int m);
/* The grid types' GgmlBlockInts (plain). */
void tempo_ggml_iq_ints(WeightType t, const uint8_t *b, int16_t *w);
/* One IQ4_NL row times one Q8_0 row as llama.cpp's repacked iq4_nl_8x8 kernels compute it. */
float tempo_ggml_iq4_nl_8x8_dot(const GgmlInts *ints, const uint8_t *w, GgmlQ8Row x, int m);
/* One Q2_K row times one Q8_K row as ggml_gemv_q2_K_8x8_q8_K (gemm 0) or
 * ggml_gemm_q2_K_8x8_q8_K (gemm 1) computes it. */
float tempo_ggml_q2_k_8x8_dot(const GgmlInts *ints, const uint8_t *w, GgmlQ8Row x, int m, int gemm);
/* ---- ggml_dots_avx.c: the same, vectorized (bitwise equal) ---- */
void tempo_ggml_quantize_fast(GgmlDotType t, const float *x, int m, GgmlQ8Row out);
/* 1 when type t's dot has a vector kernel here (the others: tempo_ggml_dot_with on TEMPO_GGML_INTS_FAST). */
int tempo_ggml_dot_is_vectorized(WeightType t);
/* out[i * stride] = w times activation row x[i], for i < k. */
void tempo_ggml_dot_rows_fast(WeightType t, const uint8_t *w, const GgmlQ8Row *x, int k, int m, float *out, size_t stride);
/* out[r] = weight row r (at w + r row_bytes) times the one activation row x, for r < rows (decoding: a
 * call of one row, so IQ4_NL in tempo_ggml_iq4_nl_vec_dot's order). */
void tempo_ggml_dot_weight_rows_fast(WeightType t, const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, float *out);
/* The same for Q4_K rows in the repacked orders (tempo_ggml_q4_k_8x8_dot). */
void tempo_ggml_q4_k_8x8_rows_fast(const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, int gemm, float *out);
/* The same for Q4_0 or IQ4_NL rows repacked: tempo_ggml_q4_0_8x8_dot's or tempo_ggml_iq4_nl_8x8_dot's value. */
void tempo_ggml_b32_8x8_rows_fast(WeightType t, const uint8_t *w, size_t row_bytes, int rows, GgmlQ8Row x, int m, float *out);
/* Q2_K repacked: tempo_ggml_q2_k_8x8_dot's value. */
float tempo_ggml_q2_k_8x8_dot_fast(const uint8_t *w, GgmlQ8Row x, int m, int gemm);
/* ---- ggml_q8_0_tiles.c: 4 Q8_0 weight rows (row_bytes apart) times 4
 * Q8_0 activation rows, out[c stride + r], bitwise tempo_ggml_dot_plain ---- */
void tempo_ggml_q8_0_tile(const uint8_t *w, size_t row_bytes, const GgmlQ8Row *x, int m, float *out, size_t stride);
/* ---- ggml_q4_k_tiles.c: Q4_K weight rows in ggml's repacked gemm order
 * (tempo_ggml_q4_k_8x8_dot, gemm 1), TEMPO_GGML_Q4_K_TILE_ROWS weight rows
 * by 4 activation rows a call ---- */
#define TEMPO_GGML_Q4_K_TILE_ROWS 16
/* Bytes of a tile of m values (a multiple of TEMPO_QK_K) a row. */
size_t tempo_ggml_q4_k_tile_bytes(int m);
/* `rows` (<= TEMPO_GGML_Q4_K_TILE_ROWS) Q4_K weight rows (row_bytes apart) into `tile` (64-byte aligned). */
void tempo_ggml_q4_k_tile_pack(const uint8_t *w, size_t row_bytes, int rows, int m, uint8_t *tile);
/* out[c stride + r] = weight row r < rows of the tile times activation row x[c], c < 4, bitwise tempo_ggml_q4_k_8x8_dot(.., 1). */
void tempo_ggml_q4_k_tile_gemm(const uint8_t *tile, int rows, const GgmlQ8Row *x, int m, float *out, size_t stride);
/* The head widths the ggml attention kernels take (they keep a head on the stack). */
#define TEMPO_GGML_MAX_HEAD_DIM 1024
/* ---- ggml_dot.c: ggml's AVX-512 (zen4) orders, lane by lane ---- */
/* _mm512_reduce_add_ps of 16 lanes: halves added (16 -> 8 -> 4 -> 2 -> 1). */
float tempo_ggml_hsum16(const float lane[16]);
/* hsum_float_8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
float tempo_ggml_hsum_float_8(const float *lane);
/* One 32-bit lane of dpbf16ps: (acc + a_odd b_odd) rounded, + a_even b_even
 * rounded; subnormal inputs and results flushed to zero. */
float tempo_ggml_dpbf16(float acc, float a_odd, float b_odd, float a_even, float b_even);
/* One output of a product over n values of `type` (f16/bf16 values held as
 * floats): batched (tinyBLAS, a call of 2+ rows) or ggml_vec_dot_*. */
float tempo_ggml_dot(GgmlDotType type, int batched, const float *w, const float *x, int n);
/* out[r] = tempo_ggml_dot(type, batched, w + r stride, x, n) for r < rows. */
void tempo_ggml_dots(GgmlDotType type, int batched, const float *w, size_t stride, int rows, const float *x, int n, float *out);
/* Whether llamafile_sgemm takes n rows of m values into d outputs. */
int tempo_ggml_tinyblas(GgmlDotType type, int n, int m, int d);
/* ggml_v_expf, the softmax's exp (AVX-512 polynomial, not libm). */
float tempo_ggml_expf(float x);
/* s_j = ggml_v_expf(s_j - max), n a multiple of 16; their sum as ggml's softmax forms it (16 by hsum, in double). */
double tempo_ggml_exp_sum(float *s, int n, float max);
/* Flash attention's f16 accumulator: acc = f16(acc ms); acc = f16(fma(v, vs, acc)). */
void tempo_ggml_f16_scale(float *acc, float ms, int n);
void tempo_ggml_f16_fma(float *acc, const float *v, float vs, int n);
/* ---- ggml_dot_avx.c: the same, vectorized (bitwise equal) ---- */
float tempo_ggml_dot_fast(GgmlDotType type, int batched, const float *w, const float *x, int n);
/* The same for `rows` rows (with AVX-512, f32/f16 in whole steps: 16 rows a pass, their hsums reduced together). */
void tempo_ggml_dots_fast(GgmlDotType type, int batched, const float *w, size_t stride, int rows, const float *x, int n, float *out);
double tempo_ggml_exp_sum_fast(float *s, int n, float max);
void tempo_ggml_swiglu_fast(float *x, const float *g, size_t n);
void tempo_ggml_f16_scale_fast(float *acc, float ms, int n);
void tempo_ggml_f16_fma_fast(float *acc, const float *v, float vs, int n);
/* x = x / (1 + ggml_v_expf(-x)) * g, as ggml_vec_swiglu_f32. */
void tempo_ggml_swiglu(float *x, const float *g, size_t n);
/* ---- ggml_attention.c: the ggml profile's attention paths ---- */
void tempo_ggml_cache_store_f16(float *values, size_t n);
void tempo_ggml_attention_f32_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs);
void tempo_ggml_attention_f16_cache(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs);
void tempo_ggml_attention_flash(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs);
size_t tempo_ggml_attention_row_scratch(const Config *c, int k, int n_keys);
size_t tempo_ggml_attention_cache_scratch(const Config *c, int k, int n_keys);
/* The plain definitions the three attentions above are bitwise equal to
 * (one thread; scratch as the kernel's own scratch function sizes it). */
typedef enum { GGML_ATTENTION_F32_CACHE, GGML_ATTENTION_F16_CACHE, GGML_ATTENTION_FLASH } GgmlAttention;
void tempo_ggml_attention_plain(GgmlAttention kind, const Config *c, const AttentionInputs *a, float *out, float *scratch,
                                float *probs);
/* The ggml kernels for a cache type (f16 or f32), flash attention on or
 * off, and Q4_0 weights repacked (llama.cpp's default on x86) or not. */
const Kernels *tempo_ggml_kernels(int kv_f16, int flash_attn, int repack);
/* ---- ggml_repack.c: Q4_0 weights as llama.cpp repacks them (q4_0_8x8) ---- */
/* 1 if llama.cpp on x86 repacks a weight of this type with `rows` rows (Q4_0 or Q4_K, rows a multiple of 8). */
int tempo_ggml_repacks(WeightType t, int rows);
/* One Q4_K row times one Q8_K row as ggml_gemv_q4_K_8x8_q8_K computes it
 * (gemm 0) or ggml_gemm_q4_K_8x8_q8_K (gemm 1). */
float tempo_ggml_q4_k_8x8_dot(const uint8_t *w, GgmlQ8Row x, int m, int gemm);
/* One Q4_0 weight row times one Q8_0 activation row (qx, scales dx; m
 * values) as ggml_gemv/gemm_q4_0_8x8_q8_0 compute it: per block, the exact
 * integer sum, then acc = fma(sum, f32(d_w d_x), acc). */
float tempo_ggml_q4_0_8x8_dot(const uint8_t *w, const int8_t *qx, const float *dx, int m);

/* ---- numerics.c ---- */

/* (NumericsProfile and Numerics are in tempo.h: GenConfig carries them.) */
/* "exact", "ggml", "torch". */
const char *tempo_numerics_name(NumericsProfile p);
/* A profile by name; -1 with a message naming the choices. */
int tempo_numerics_parse(const char *name, NumericsProfile *p, char *err);
/* One line: "ggml (K/V f16, flash attention off)", "exact", ... into buf. */
void tempo_numerics_describe(const Numerics *n, char *buf, size_t size);
/* Gives m the kernels and RoPE angles of a profile (exact: the fast
 * kernels). A cache type or flash attention setting outside ggml, or a head
 * too wide for the ggml kernels, is an error. */
int tempo_model_set_numerics(Model *m, const Numerics *n, char *err);

#endif
