/* ggml_dot_avx.c - ggml's f32/f16 dot orders (ggml_dot.c) and the softmax's
 * exponentials vectorized with AVX2 and FMA: the 16 lanes of ggml's
 * AVX-512 accumulators as two 8-lane registers, each lane's fused
 * multiply-adds and the halving tree of _mm512_reduce_add_ps in the same
 * order, so bitwise equal to the plain definitions (tests/test_numerics.c).
 * BF16 (dpbf16ps), and any machine without AVX2 and FMA: the plain ones. */
#include "kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* 16 lanes as two registers: lanes 0..7 and 8..15. */
typedef struct { __m256 lo, hi; } Lanes16;

/* tempo_ggml_hsum16: 16 -> 8 -> 4 -> 2 -> 1, halves added lane by lane. */
static float hsum16(Lanes16 v) {
    __m256 t8 = _mm256_add_ps(v.lo, v.hi);
    __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

/* acc += w[0..15] x[0..15], lane by lane, fused. */
static Lanes16 fma16(const float *w, const float *x, Lanes16 acc) {
    acc.lo = _mm256_fmadd_ps(_mm256_loadu_ps(w), _mm256_loadu_ps(x), acc.lo);
    acc.hi = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8), _mm256_loadu_ps(x + 8), acc.hi);
    return acc;
}

static Lanes16 add16(Lanes16 a, Lanes16 b) { return (Lanes16){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }

/* tinyBLAS<16>: one 16-lane accumulator over steps of 16, then hsum (n a multiple of 16). */
static float tinyblas_dot(const float *w, const float *x, int n) {
    Lanes16 acc = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int l = 0; l < n; l += 16) acc = fma16(w + l, x + l, acc);
    return hsum16(acc);
}

/* ggml_vec_dot_f32 / _f16: 4 accumulators over steps of 64, (a0+a2)+(a1+a3),
 * hsum; the leftovers fused one by one (f32) or in double (f16). */
static float vec_dot(GgmlDotType type, const float *w, const float *x, int n) {
    Lanes16 a[4];
    for (int k = 0; k < 4; k++) a[k] = (Lanes16){_mm256_setzero_ps(), _mm256_setzero_ps()};
    int np = n & ~63;
    for (int i = 0; i < np; i += 64)
        for (int k = 0; k < 4; k++) a[k] = fma16(w + i + 16 * k, x + i + 16 * k, a[k]);
    float s = hsum16(add16(add16(a[0], a[2]), add16(a[1], a[3])));
    if (type == GGML_DOT_F16) {
        double sum = s;
        for (int i = np; i < n; i++) sum += (double)(w[i] * x[i]);
        return (float)sum;
    }
    for (int i = np; i < n; i++) s = __builtin_fmaf(w[i], x[i], s);
    return s;
}

float tempo_ggml_dot_fast(GgmlDotType type, int batched, const float *w, const float *x, int n) {
    if (type == GGML_DOT_BF16 || (batched && n % 16 != 0)) return tempo_ggml_dot(type, batched, w, x, n);
    return batched ? tinyblas_dot(w, x, n) : vec_dot(type, w, x, n);
}

/* ggml_v_expf of 8 lanes where each n = round(x log2 e) is in [-126, 127]
 * (2^n a normal float, so j 2^n rounds once, as ldexpf) or |n| > 192 (0 or
 * inf); *ok = 0 when a lane is neither (the caller takes the plain one). */
static __m256 expf8(__m256 x, int *ok) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r), n = _mm256_sub_ps(z, r);
    __m256 neg_n = _mm256_sub_ps(_mm256_setzero_ps(), n);
    __m256 b = _mm256_fmadd_ps(neg_n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fmadd_ps(neg_n, _mm256_set1_ps(0x1.62e4p-1f), x));
    __m256 u = _mm256_mul_ps(b, b);
    __m256 hi = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                                _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f)));
    __m256 j = _mm256_fmadd_ps(hi, u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    __m256 normal = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-126.0f), _CMP_GE_OQ), _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
    __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    *ok = _mm256_movemask_ps(_mm256_or_ps(normal, big)) == 0xff;
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(_mm256_and_ps(n, normal)), _mm256_set1_epi32(127)), 23);
    __m256 scaled = _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    __m256 limit = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_set1_ps(__builtin_inff()));
    return _mm256_blendv_ps(scaled, limit, big);
}

/* s_j = ggml_v_expf(s_j - max) over n (a multiple of 16) values; the sum of
 * each 16 by hsum, added into a double: tempo_ggml_exp_sum's values. */
double tempo_ggml_exp_sum_fast(float *s, int n, float max) {
    double sum = 0.0;
    __m256 m = _mm256_set1_ps(max);
    for (int j = 0; j < n; j += 16) {
        Lanes16 p;
        int ok_lo, ok_hi;
        p.lo = expf8(_mm256_sub_ps(_mm256_loadu_ps(s + j), m), &ok_lo);
        p.hi = expf8(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), m), &ok_hi);
        if (!ok_lo || !ok_hi) { /* a lane outside expf8's range: these 16 plainly */
            for (int t = j; t < j + 16; t++) s[t] = tempo_ggml_expf(s[t] - max);
            sum += (double)tempo_ggml_hsum16(s + j);
            continue;
        }
        _mm256_storeu_ps(s + j, p.lo);
        _mm256_storeu_ps(s + j + 8, p.hi);
        sum += (double)hsum16(p);
    }
    return sum;
}

/* tempo_ggml_swiglu, 8 at a time where expf8 covers -x: x / (1 + e^-x) g. */
void tempo_ggml_swiglu_fast(float *x, const float *g, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        int ok;
        __m256 v = _mm256_loadu_ps(x + i), e = expf8(_mm256_sub_ps(_mm256_setzero_ps(), v), &ok);
        if (!ok) {
            tempo_ggml_swiglu(x + i, g + i, 8);
            continue;
        }
        __m256 silu = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(silu, _mm256_loadu_ps(g + i)));
    }
    tempo_ggml_swiglu(x + i, g + i, n - i);
}

#if defined(__F16C__)
/* tempo_ggml_f16_scale, 8 at a time (F16C rounds to nearest even, as tempo_f32_to_f16). */
void tempo_ggml_f16_scale_fast(float *acc, float ms, int n) {
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        __m256 x = _mm256_mul_ps(_mm256_loadu_ps(acc + t), _mm256_set1_ps(ms));
        _mm256_storeu_ps(acc + t, _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)));
    }
    tempo_ggml_f16_scale(acc + t, ms, n - t);
}

/* tempo_ggml_f16_fma, 8 at a time. */
void tempo_ggml_f16_fma_fast(float *acc, const float *v, float vs, int n) {
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        __m256 x = _mm256_fmadd_ps(_mm256_loadu_ps(v + t), _mm256_set1_ps(vs), _mm256_loadu_ps(acc + t));
        _mm256_storeu_ps(acc + t, _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)));
    }
    tempo_ggml_f16_fma(acc + t, v + t, vs, n - t);
}
#else
void tempo_ggml_f16_scale_fast(float *acc, float ms, int n) { tempo_ggml_f16_scale(acc, ms, n); }
void tempo_ggml_f16_fma_fast(float *acc, const float *v, float vs, int n) { tempo_ggml_f16_fma(acc, v, vs, n); }
#endif

#else

void tempo_ggml_f16_scale_fast(float *acc, float ms, int n) { tempo_ggml_f16_scale(acc, ms, n); }
void tempo_ggml_f16_fma_fast(float *acc, const float *v, float vs, int n) { tempo_ggml_f16_fma(acc, v, vs, n); }

float tempo_ggml_dot_fast(GgmlDotType type, int batched, const float *w, const float *x, int n) {
    return tempo_ggml_dot(type, batched, w, x, n);
}

double tempo_ggml_exp_sum_fast(float *s, int n, float max) { return tempo_ggml_exp_sum(s, n, max); }

void tempo_ggml_swiglu_fast(float *x, const float *g, size_t n) { tempo_ggml_swiglu(x, g, n); }

#endif

/* ---- many rows times one x: 16 tinyBLAS outputs a pass ---- */

#if defined(__AVX512F__)
/* Lane s = tempo_ggml_hsum16(a[s]) for 16 accumulators at once, each add
 * the one hsum16 makes (lanes j + j+8, then j + j+4, j + j+2, j + j+1). */
static __m512 hsum16_of_16(const __m512 *a) {
    __m512 b[8], c[4], e[2];
    for (int i = 0; i < 8; i++) /* blocks 0-1: t8 of a[2i], 2-3: t8 of a[2i+1] */
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
    for (int i = 0; i < 4; i++) /* block k: t4 of row 4i + k */
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++) /* block k: t2 of row 8i + k (lanes 0-1), of 8i + 4 + k (2-3) */
        e[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44), _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xee));
    __m512 r = _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], 0x88), _mm512_shuffle_ps(e[0], e[1], 0xdd)); /* lane 4k + u: row k + 4u */
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

/* out[r] = tinyBLAS's w_r . x for r < rows <= 16 (row r at w + r stride; n a multiple of 16). */
static void tinyblas_dots16(const float *w, size_t stride, int rows, const float *x, int n, float *out) {
    const float *row[16];
    __m512 acc[16];
    for (int r = 0; r < 16; r++) row[r] = w + (size_t)(r < rows ? r : 0) * stride, acc[r] = _mm512_setzero_ps();
    for (int l = 0; l < n; l += 16) {
        __m512 xv = _mm512_loadu_ps(x + l);
        for (int r = 0; r < 16; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(row[r] + l), xv, acc[r]);
    }
    _mm512_mask_storeu_ps(out, (__mmask16)((1u << rows) - 1), hsum16_of_16(acc));
}

/* ggml_vec_dot_f32 / _f16's 16 lanes before hsum (n a multiple of 64, so no
 * leftovers): 4 accumulators over steps of 64, (a0+a2)+(a1+a3). */
static __m512 vec_dot_lanes(const float *w, const float *x, int n) {
    __m512 a[4];
    for (int k = 0; k < 4; k++) a[k] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 64)
        for (int k = 0; k < 4; k++) a[k] = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16 * k), _mm512_loadu_ps(x + i + 16 * k), a[k]);
    return _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
}

/* out[r] = vec_dot(w_r, x) for r < rows <= 16, the 16 hsums together. */
static void vec_dots16(const float *w, size_t stride, int rows, const float *x, int n, float *out) {
    __m512 lanes[16];
    for (int r = 0; r < 16; r++) lanes[r] = r < rows ? vec_dot_lanes(w + (size_t)r * stride, x, n) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(out, (__mmask16)((1u << rows) - 1), hsum16_of_16(lanes));
}
#endif

void tempo_ggml_dots_fast(GgmlDotType type, int batched, const float *w, size_t stride, int rows, const float *x, int n, float *out) {
#if defined(__AVX512F__)
    if (type != GGML_DOT_BF16 && n % (batched ? 16 : 64) == 0) {
        for (int r0 = 0; r0 < rows; r0 += 16) {
            int k = rows - r0 < 16 ? rows - r0 : 16;
            if (batched) tinyblas_dots16(w + (size_t)r0 * stride, stride, k, x, n, out + r0);
            else vec_dots16(w + (size_t)r0 * stride, stride, k, x, n, out + r0);
        }
        return;
    }
#endif
    for (int r = 0; r < rows; r++) out[r] = tempo_ggml_dot_fast(type, batched, w + (size_t)r * stride, x, n);
}
