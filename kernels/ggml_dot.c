/* ggml_dot.c - the summation orders of ggml's x86 dot products with AVX-512
 * (the zen4 CPU variant: AVX512F, AVX512-BF16, F16C, FMA), as scalar loops
 * over the vector lanes (NOTES "Numerics of real engines"), written from
 * ggml-cpu/vec.cpp, vec.h, simd-mappings.h and llamafile/sgemm.cpp:
 *   - llamafile's tinyBLAS (batches of 2+ rows): one accumulator of 16 lanes
 *     per output, lane j adding w[l+j] x[l+j] by a fused multiply-add for
 *     l = 0, 16, 32, ... (bf16: 32 values a step, two per lane, by dpbf16ps);
 *     then _mm512_reduce_add_ps;
 *   - ggml_vec_dot_f32 / _f16 (one row): 4 accumulators of 16 lanes over
 *     steps of 64, reduced (a0+a2)+(a1+a3) lane by lane, then
 *     _mm512_reduce_add_ps; ggml_vec_dot_bf16: two dpbf16ps accumulators
 *     (the halves of each 64 values), each reduced, added in double. */
#include <math.h>
#include <string.h>

#include "../formats/quant.h" /* tempo_f32_to_f16 */
#include "kernels.h"

enum { LANES = 16, STEP = 64 };

/* _mm512_reduce_add_ps: halves added lane by lane (16 -> 8 -> 4 -> 2 -> 1). */
float tempo_ggml_hsum16(const float lane[16]) {
    float t[LANES];
    memcpy(t, lane, sizeof t);
    for (int half = LANES / 2; half > 0; half /= 2)
        for (int j = 0; j < half; j++) t[j] += t[j + half];
    return t[0];
}

/* hsum_float_8 (arch/x86/quants.c; the quantized dots' 8 lanes): ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
float tempo_ggml_hsum_float_8(const float *lane) {
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

/* A subnormal as zero, keeping its sign (dpbf16ps reads and writes no subnormals). */
static float flush(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }

/* One lane of dpbf16ps: acc + a_odd b_odd, rounded, then + a_even b_even,
 * rounded (bf16 products are exact in f32); subnormal inputs and results flushed. */
float tempo_ggml_dpbf16(float acc, float a_odd, float b_odd, float a_even, float b_even) {
    acc = flush(flush(acc) + flush(a_odd) * flush(b_odd));
    return flush(acc + flush(a_even) * flush(b_even));
}

/* tinyBLAS<16> (f32, and f16 values): sum_t w_t x_t in 16 fused lanes, then hsum. */
static float tinyblas_dot(const float *w, const float *x, int n) {
    float lane[LANES] = {0};
    for (int l = 0; l < n; l += LANES)
        for (int j = 0; j < LANES; j++) lane[j] = fmaf(w[l + j], x[l + j], lane[j]);
    return tempo_ggml_hsum16(lane);
}

/* tinyBLAS<32> over bf16 values: lane j takes values l+2j+1 then l+2j by dpbf16ps. */
static float tinyblas_dot_bf16(const float *w, const float *x, int n) {
    float lane[LANES] = {0};
    for (int l = 0; l < n; l += 2 * LANES)
        for (int j = 0; j < LANES; j++)
            lane[j] = tempo_ggml_dpbf16(lane[j], w[l + 2 * j + 1], x[l + 2 * j + 1], w[l + 2 * j], x[l + 2 * j]);
    return tempo_ggml_hsum16(lane);
}

/* ggml_vec_dot_f32 / _f16 up to the leftovers: 4 x 16 fused lanes over
 * steps of 64, (a0+a2)+(a1+a3) lane by lane, then hsum. *np: values used. */
static float four_accumulators(const float *w, const float *x, int n, int *np) {
    float acc[4][LANES] = {{0}};
    *np = n & ~(STEP - 1);
    for (int i = 0; i < *np; i += STEP)
        for (int a = 0; a < 4; a++)
            for (int j = 0; j < LANES; j++) acc[a][j] = fmaf(w[i + a * LANES + j], x[i + a * LANES + j], acc[a][j]);
    for (int j = 0; j < LANES; j++) acc[0][j] = (acc[0][j] + acc[2][j]) + (acc[1][j] + acc[3][j]);
    return tempo_ggml_hsum16(acc[0]);
}

/* ggml_vec_dot_bf16: c1 over the first 32 of each 64 values, c2 over the
 * rest, by dpbf16ps; hsum(c1) + hsum(c2) and the leftovers in double. */
static float vec_dot_bf16(const float *w, const float *x, int n) {
    float c[2][LANES] = {{0}};
    int i = 0;
    for (; i + STEP <= n; i += STEP)
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < LANES; j++) {
                int t = i + 32 * h + 2 * j;
                c[h][j] = tempo_ggml_dpbf16(c[h][j], w[t + 1], x[t + 1], w[t], x[t]);
            }
    double sum = (double)tempo_ggml_hsum16(c[0]);
    sum += (double)tempo_ggml_hsum16(c[1]);
    for (; i < n; i++) sum += (double)(w[i] * x[i]);
    return (float)sum;
}

/* One output of a ggml matrix product whose operands hold the values of
 * `type` (f32, or f16/bf16 values as floats): w the weight row, x the
 * activation row, n values; `batched`: the call had 2+ rows and tinyBLAS
 * takes it (tempo_ggml_tinyblas), else the one-row vec_dot. */
float tempo_ggml_dot(GgmlDotType type, int batched, const float *w, const float *x, int n) {
    if (batched) return type == GGML_DOT_BF16 ? tinyblas_dot_bf16(w, x, n) : tinyblas_dot(w, x, n);
    if (type == GGML_DOT_BF16) return vec_dot_bf16(w, x, n);
    int np;
    float s = four_accumulators(w, x, n, &np);
    if (type == GGML_DOT_F16) { /* the leftovers in double */
        double sum = s;
        for (int i = np; i < n; i++) sum += (double)(w[i] * x[i]);
        return (float)sum;
    }
    for (int i = np; i < n; i++) s = fmaf(w[i], x[i], s);
    return s;
}

/* Whether llamafile_sgemm takes a product of n rows of m values into d
 * outputs: 2+ rows, d a multiple of 4 and m of the lane count (bf16: 32). */
int tempo_ggml_tinyblas(GgmlDotType type, int n, int m, int d) {
    return n >= 2 && d % 4 == 0 && m % (type == GGML_DOT_BF16 ? 2 * LANES : LANES) == 0;
}

/* ggml_v_expf (vec.h, AVX-512): n = round(x log2 e), b = x - n ln2 in two
 * parts, a degree-5 polynomial j(b), j 2^n (scalef); |n| > 192: 0 or inf. */
float tempo_ggml_expf(float x) {
    const float r = 0x1.8p23f;
    float z = fmaf(x, 0x1.715476p+0f, r), n = z - r;
    float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    float u = b * b;
    float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                   fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}

/* s_j = ggml_v_expf(s_j - max) over n (a multiple of 16) values; returns
 * their sum as ggml's softmax forms it: each 16 by hsum, added in double. */
double tempo_ggml_exp_sum(float *s, int n, float max) {
    double sum = 0.0;
    for (int j = 0; j < n; j += 16) {
        for (int t = j; t < j + 16; t++) s[t] = tempo_ggml_expf(s[t] - max);
        sum += (double)tempo_ggml_hsum16(s + j);
    }
    return sum;
}

/* Flash attention's f16 accumulator: acc = f16(acc ms). */
void tempo_ggml_f16_scale(float *acc, float ms, int n) {
    for (int t = 0; t < n; t++) acc[t] = tempo_f16_to_f32(tempo_f32_to_f16(acc[t] * ms));
}

/* acc = f16(v vs + acc), one fused multiply-add. */
void tempo_ggml_f16_fma(float *acc, const float *v, float vs, int n) {
    for (int t = 0; t < n; t++) acc[t] = tempo_f16_to_f32(tempo_f32_to_f16(fmaf(v[t], vs, acc[t])));
}

/* ggml_vec_swiglu_f32 (AVX-512): out = x / (1 + ggml_v_expf(-x)) * g. */
void tempo_ggml_swiglu(float *x, const float *g, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + tempo_ggml_expf(0.0f - x[i])) * g[i];
}

void tempo_ggml_dots(GgmlDotType type, int batched, const float *w, size_t stride, int rows, const float *x, int n, float *out) {
    for (int r = 0; r < rows; r++) out[r] = tempo_ggml_dot(type, batched, w + (size_t)r * stride, x, n);
}
