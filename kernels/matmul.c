/* matmul.c - the linear layer, tuned: out[n][d] = in[n][m] W^T over
 * weights in their stored type. Its definition is matmul_plain in tempo.c;
 * for every row count this kernel keeps that summation order and so equals
 * it bitwise (tests/test_kernels.c): up to TEMPO_FEW_ROWS rows the blocked
 * kernel, more rows tiles over converted panels. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "unpack.h"
#include "unpack_low_bit.h"

/* out[n][d] = in[n][m] W^T for W [d][m]. W keeps the type it was stored in
 * (f32, f16, bf16, Q8_0, ...) and is converted to f32 vectors in registers
 * as it is read (unpack.h): a decode step reads the stored bytes only. f32
 * is used in place; types with no vector decoder are converted a tile at a
 * time. NOTES.md §12 has the measurements behind each choice. */
enum {
    FEW_ROWS = TEMPO_FEW_ROWS, /* up to this many input rows: the blocked kernel; more: tiles over panels (matmul_many) */
#if defined(__AVX512F__)
    PASS_ROWS = 2, /* weight rows read side by side: each input vector loaded once for both, two independent sums */
    WIDE_ROWS = 4, /* the same for the 32-value block types up to WIDE_INPUTS input rows (rows_per_pass) */
#else
    PASS_ROWS = 1, /* 16 vector registers (AVX2): a second row's sums would not fit */
    WIDE_ROWS = 1,
#endif
    WIDE_INPUTS = 4,        /* input rows up to which a pass of WIDE_ROWS keeps its sums and vectors in registers */
    F32_STREAM_INPUTS = 3,  /* f32: input rows up to which a pass reads one weight row; f16, bf16: WIDE_INPUTS (rows_per_pass) */
    GROUP = 4,              /* vectors decoded at a time: 64 values (a K-quant pair of sub-blocks) */
    VEC = 16,               /* floats in one vector register (AVX-512) */
    ALIGN = 64,             /* bytes: a cache line, and one vector */
    PREFETCH_BYTES = 4096,  /* weights are asked for this far ahead of the ones being read */
    L1_INPUT_BYTES = 40960, /* f16, bf16: input rows up to this size are read from L1 by one stream a thread (rows_per_pass) */
};

typedef F32x16 Vec;
#define INLINE static inline __attribute__((always_inline))

/* The sums are kept in native vector registers: one of 16 lanes (AVX-512),
 * or two of 8 (elsewhere: GCC keeps a 16-float vector in memory when the
 * target has no such register). Lane j of a Vec is lane j % PART_LANES of
 * part j / PART_LANES, so the sums are the same. */
#if defined(__AVX512F__)
typedef F32x16 Part;
#else
typedef float Part __attribute__((vector_size(32)));
#endif
enum { PART_LANES = sizeof(Part) / sizeof(float), PARTS = VEC / PART_LANES };

/* The 16 lanes of a vector sum added pairwise: lane j += lane j + 8, then + 4, + 2, + 1. */
INLINE float lanes_added(const Part parts[PARTS]) {
#if defined(__AVX512F__)
    __m512 v = (__m512)parts[0]; /* the same additions as below, spelled as halves of registers (GCC keeps the loop) */
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd((__m512d)v, 1)));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
#else
    Vec sum;
    memcpy(&sum, parts, sizeof sum);
    for (int half = VEC / 2; half > 0; half /= 2)
        for (int j = 0; j < half; j++) sum[j] += sum[j + half];
    return sum[0];
#endif
}

/* The sums of one pass: acc[r][i] is weight row r times input row i, its
 * lane j adding the products at t = j, j + VEC, j + 2 VEC, ... in turn. */
typedef Part Sums[WIDE_ROWS][FEW_ROWS][PARTS];
/* The weight vectors of a pass: GROUP consecutive vectors of each row. */
typedef Vec PassVectors[WIDE_ROWS][GROUP];

/* K-quant blocks: `bytes` from `distance` on are asked for (never faults). */
INLINE void prefetch_ahead(const char *p, size_t bytes, size_t distance) {
    for (size_t b = 0; b < bytes; b += ALIGN) __builtin_prefetch(p + distance + b);
}

/* A block of at most a line (32 values) at p asks for its line only when
 * it starts within the line's first `bytes` bytes: each line once. */
INLINE void prefetch_line_once(const char *p, size_t bytes) {
    if ((uintptr_t)p % ALIGN < bytes) __builtin_prefetch(p); /* never faults */
}

/* Each row's prefetches for its block of `bytes` at byte `at`: a 32-value
 * block's line at the same place of a later pass (`ahead`), a K-quant
 * block's `k_bytes` `k_ahead` on (Q6_K: `ahead`; the others PREFETCH_BYTES). */
INLINE void prefetch_blocks(const char *const *row, int rows, size_t at, size_t bytes, size_t ahead, int k_quant,
                            size_t k_bytes, size_t k_ahead) {
    for (int r = 0; r < rows; r++)
        k_quant ? prefetch_ahead(row[r] + at, k_bytes, k_ahead) : prefetch_line_once(row[r] + at + ahead, bytes);
}

/* x kept in a register: the compiler may no longer fold its load into each product that reads it. */
INLINE void held_in_register(Part *x) {
#if defined(__AVX512F__)
    __asm__("" : "+v"(*x));
#elif defined(__AVX__)
    __asm__("" : "+x"(*x));
#else
    (void)x;
#endif
}

/* acc[r][i] += w[r][v] * in_i[16v .. 16v+15] for the first `count` vectors
 * of each of the `rows` weight rows, into all n input rows (row stride m).
 * hold_input (f32, f16, bf16): each input vector is loaded into a register
 * once for all weight rows (GCC otherwise folds a load into each row's
 * product; NOTES.md §12, k-row steps). */
INLINE void add_products(Sums acc, PassVectors w, int count, int rows, const float *in, int m, int n, int hold_input) {
    for (int v = 0; v < count; v++) {
        Part wp[WIDE_ROWS][PARTS];
        for (int r = 0; r < rows; r++) {
#if defined(__AVX512F__)
            __asm__("" : "+v"(w[r][v])); /* keep w in a register: GCC otherwise reloads it per row (3 rows: 1.6x slower) */
#endif
            memcpy(wp[r], &w[r][v], sizeof wp[r]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < n; i++)
            for (int p = 0; p < PARTS; p++) {
                Part xt;
                memcpy(&xt, in + (size_t)i * m + VEC * v + PART_LANES * p, sizeof xt);
                if (hold_input && rows > 1) held_in_register(&xt); /* loaded once for the pass's rows, not folded into each product */
                for (int r = 0; r < rows; r++) acc[r][i][p] += wp[r][p] * xt;
            }
    }
}

/* Vector t / 16 of an f32, f16 or bf16 row. */
INLINE Vec plain_vec(WeightType type, const char *row, int t) {
    Vec v;
    switch (type) {
    case WEIGHT_F16: return tempo_f16x16(row + 2 * t);
    case WEIGHT_BF16: return tempo_bf16x16(row + 2 * t);
    default: memcpy(&v, row + sizeof(float) * t, sizeof v); return v;
    }
}

/* How far ahead a pass of `rows` weight rows asks for its rows: to the
 * same place in a later pass, at least PREFETCH_BYTES on. A fixed 4 KB
 * ahead of f32 rows of 1024 values asked, for the pass's first row, for
 * the line its second row was reading already, and never for the next
 * pass's second row. */
static size_t pass_prefetch_bytes(size_t row_bytes, int rows) {
    size_t pass_bytes = (size_t)rows * row_bytes;
    return (PREFETCH_BYTES + pass_bytes - 1) / pass_bytes * pass_bytes;
}

/* f32, f16 and bf16 rows, a vector at a time; the last m % 16 values zero-padded to one vector. */
INLINE void pass_plain(Sums acc, WeightType type, const char *const *row, int rows, const float *in, int m, int n) {
    size_t size = type == WEIGHT_F32 ? sizeof(float) : 2, ahead = pass_prefetch_bytes(size * (size_t)m, rows);
    PassVectors w;
    int t = 0;
    for (; t + VEC <= m; t += VEC) {
        for (int r = 0; r < rows; r++) {
            __builtin_prefetch(row[r] + size * t + ahead); /* never faults */
            w[r][0] = plain_vec(type, row[r], t);
        }
        add_products(acc, w, 1, rows, in + t, m, n, 1);
    }
    if (t == m) return;
    for (int r = 0; r < rows; r++) {
        float last[VEC] = {0};
        tempo_dequantize(type, row[r] + size * t, (size_t)(m - t), last);
        memcpy(&w[r][0], last, sizeof last);
    }
    float x_last[FEW_ROWS][VEC] = {{0}};
    for (int i = 0; i < n; i++) memcpy(x_last[i], in + (size_t)i * m + t, (size_t)(m - t) * sizeof(float));
    add_products(acc, w, 1, rows, x_last[0], VEC, n, 1);
}

/* Group g (values 64g .. 64g+63) of one K-quant block of each row at byte `at`, its scale products in `scales`. */
INLINE void k_group(Sums acc, WeightType type, const char *const *row, size_t at, int g, float scales[][16], int rows,
                    const float *in, int m, int n) {
    PassVectors w;
    for (int r = 0; r < rows; r++) {
        const uint8_t *b = (const uint8_t *)row[r] + at;
        const float *s = scales[r];
#if defined(__AVX512F__) /* Q4_K, Q5_K: the group's addresses made to "depend" on the sums, so that GCC decodes it after */
        /* the last group's products, not the four groups first (their vectors kept on the stack: 1.1x slower) */
        if (type != WEIGHT_Q6_K) __asm__("" : "+r"(b), "+r"(s) : "v"(acc[0][0][0]));
#endif
        if (type == WEIGHT_Q6_K) tempo_q6_k_vectors(b, g, s, w[r]);
        else tempo_q45_k_vectors(b, type == WEIGHT_Q5_K, g, s, w[r]);
    }
    add_products(acc, w, GROUP, rows, in + 64 * g, m, n, 0);
}

/* One K-quant block (256 values) of each row at byte `at`, 64 values at a time. */
INLINE void k_block(Sums acc, WeightType type, const char *const *row, size_t at, int rows, const float *in, int m,
                    int n) {
    float scales[WIDE_ROWS][16]; /* each row's 16 scale products, read with broadcasts */
    for (int r = 0; r < rows; r++) {
        const uint8_t *b = (const uint8_t *)row[r] + at;
        if (type == WEIGHT_Q6_K) tempo_q6_k_scale_products(b, tempo_half_scale(b + 208), scales[r]);
        else tempo_q45_k_scale_products(b, scales[r]);
    }
    if (type == WEIGHT_Q6_K) { /* a loop: each group's products as soon as decoded (unrolled, GCC decodes all four first: 10% slower) */
#pragma GCC unroll 1
        for (int g = 0; g < 4; g++) k_group(acc, type, row, at, g, scales, rows, in, m, n);
        return;
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) k_group(acc, type, row, at, g, scales, rows, in, m, n); /* unrolled: each group's scale products at known places (broadcast from memory) */
}

/* Q8_0, Q4_0, Q4_K, Q5_K, Q6_K rows (row_bytes each), a block at a time, decoded in registers (unpack.h). */
INLINE void pass_blocks(Sums acc, WeightType type, const char *const *row, size_t row_bytes, int rows, const float *in,
                        int m, int n) {
    int k_quant = type == WEIGHT_Q4_K || type == WEIGHT_Q5_K || type == WEIGHT_Q6_K, values = k_quant ? TEMPO_QK_K : 32;
    size_t bytes = row_bytes / (size_t)(m / values), at = 0, ahead = pass_prefetch_bytes(row_bytes, rows); /* no calls per pass */
    size_t k_ahead = type == WEIGHT_Q6_K ? ahead : PREFETCH_BYTES; /* Q6_K: a later pass (its 4 rows of 2.3 KB: 2x faster) */
    for (int t = 0; t < m; t += values, at += bytes) {
        prefetch_blocks(row, rows, at, bytes, ahead, k_quant, 4 * ALIGN, k_ahead); /* a K-quant block: at most 210 bytes */
        if (k_quant) {
            k_block(acc, type, row, at, rows, in + t, m, n);
            continue;
        }
        PassVectors w;
        for (int r = 0; r < rows; r++) {
            const uint8_t *b = (const uint8_t *)row[r] + at;
            if (type == WEIGHT_Q8_0) tempo_q8_0_vectors(b, w[r]);
            else tempo_q4_0_vectors(b, w[r]);
        }
        add_products(acc, w, 2, rows, in + t, m, n, 0);
    }
}

/* Q4_1, Q5_0, Q5_1, IQ4_NL (32-value blocks), Q2_0 (64), Q1_0 (128) and Q2_K, Q3_K, IQ4_XS, TQ1_0, TQ2_0 and the IQ
 * grid types (256) rows, 64 values at a time (32: one block), decoded in registers (unpack_low_bit.h, unpack_grids.h). */
INLINE void pass_low_bit(Sums acc, WeightType type, const char *const *row, size_t row_bytes, int rows, const float *in,
                         int m, int n) {
    int values = tempo_block_values(type), k_quant = values == TEMPO_QK_K; /* a block over a line: asked for ahead */
    size_t bytes = row_bytes / (size_t)(m / values), at = 0, ahead = pass_prefetch_bytes(row_bytes, rows);
    for (int t = 0; t < m; t += values, at += bytes) {
        prefetch_blocks(row, rows, at, bytes, ahead, k_quant, 2 * ALIGN, PREFETCH_BYTES); /* a 256-value block: at most 136 bytes */
        int groups = values > 32 ? values / 64 : 1;
        TempoLowBitBlock block[WIDE_ROWS];
        for (int r = 0; r < rows; r++) block[r] = tempo_low_bit_block(type, (const uint8_t *)row[r] + at);
#pragma GCC unroll 4
        for (int g = 0; g < groups; g++) { /* unrolled: each group's scale bytes at known offsets */
            PassVectors w;
            for (int r = 0; r < rows; r++) {
                const uint8_t *b = (const uint8_t *)row[r] + at;
#if defined(__AVX512F__) /* Q2_K, Q3_K and the IQ grid types: decoded group by group after the last group's products (k_group; IQ4_XS: slower) */
                if (type == WEIGHT_Q2_K || type == WEIGHT_Q3_K || type == WEIGHT_IQ2_XXS || type == WEIGHT_IQ2_XS || type == WEIGHT_IQ2_S ||
                    type == WEIGHT_IQ3_XXS || type == WEIGHT_IQ1_S || type == WEIGHT_IQ1_M)
                    __asm__("" : "+r"(b) : "v"(acc[0][0][0]));
#endif
                tempo_low_bit_vectors(type, b, g, block[r], w[r]);
            }
            add_products(acc, w, values > 32 ? GROUP : 2, rows, in + t + 64 * g, m, n, 0);
        }
    }
}

/* How a type's vectors are made: read (f32) or converted (f16, bf16) in
 * place, or decoded from blocks in registers (unpack.h; unpack_low_bit.h). */
typedef enum { PATH_PLAIN, PATH_BLOCKS, PATH_LOW_BIT } Path;

/* The blocked kernel: out[i][r] = sum_t W[r][t] in[i][t] for `rows`
 * consecutive weight rows (row stride row_bytes; out's stride d) and n
 * input rows. Each weight row is read once; each vector of 16 weights is
 * multiplied into all n input rows. Lane j of acc[r][i] adds the products
 * at t = j, j + 16, ...; the lanes are then added pairwise. That order does
 * not depend on n, the rows of a pass, the threads or the stored type: a
 * row's result does not depend on which rows share its step, and every
 * stored type gives bitwise the results of its f32 copy. Inlined once per
 * (type, rows, n), so that acc stays in registers. */
INLINE void rows_times_inputs(float *out, int d, Path path, WeightType type, const char *w, size_t row_bytes, int rows,
                              int m, const float *in, int n) {
    Sums acc; /* only the sums in use set to 0: a memset of all of them was a call per pass (1% of a Q4_K_M decode) */
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            for (int p = 0; p < PARTS; p++) acc[r][i][p] = (Part){0};
    const char *row[WIDE_ROWS];
    for (int r = 0; r < rows; r++) row[r] = w + (size_t)r * row_bytes;
    if (path == PATH_PLAIN) pass_plain(acc, type, row, rows, in, m, n);
    else if (path == PATH_BLOCKS) pass_blocks(acc, type, row, row_bytes, rows, in, m, n);
    else pass_low_bit(acc, type, row, row_bytes, rows, in, m, n);
#pragma GCC unroll 8
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rows; r++) out[(size_t)i * d + r] = lanes_added(acc[r][i]);
}

/* One copy of the kernel per number of input rows. */
INLINE void rows_for_n(float *out, int d, Path path, WeightType type, const char *w, size_t row_bytes, int rows, int m,
                       const float *in, int n) {
    switch (n) {
    case 1: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, 1); break;
    case 2: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, 2); break;
    case 3: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, 3); break;
    case 4: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, 4); break;
    case 5: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, 5); break;
    case 6: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, 6); break;
    case 7: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, 7); break;
    default: rows_times_inputs(out, d, path, type, w, row_bytes, rows, m, in, FEW_ROWS); break;
    }
}

/* Weight rows per pass: WIDE_ROWS for the 32-value block types up to
 * WIDE_INPUTS input rows (their decoding is a few operations per vector, so
 * a step waits on each row's chain of additions: four rows, four chains),
 * for Q6_K up to 2 (3 and 4: its vectors no longer fit the registers);
 * one for f16 and bf16 up to WIDE_INPUTS input rows while the n input rows
 * of m values fit L1_INPUT_BYTES, and for f32 up to F32_STREAM_INPUTS input
 * rows whatever their size (a thread then streams one row: a decode 1.09x
 * for f32, 1.4x for bf16 over two in alternating runs; a chain of additions
 * per input row still outruns the memory); else PASS_ROWS (NOTES.md §12,
 * k-row steps: f32 at 4 input rows, bf16 W2 at 4). */
static inline int rows_per_pass(WeightType type, int n, int m) {
    int wide = type == WEIGHT_Q8_0 || type == WEIGHT_Q4_0 || type == WEIGHT_Q4_1 || type == WEIGHT_Q5_0 ||
               type == WEIGHT_Q5_1 || type == WEIGHT_IQ4_NL || (type == WEIGHT_Q6_K && n <= 2);
    int in_l1 = (size_t)n * m * sizeof(float) <= L1_INPUT_BYTES;
    if ((type == WEIGHT_F16 || type == WEIGHT_BF16) && n <= WIDE_INPUTS && in_l1) return 1; /* one stream a thread */
    if (type == WEIGHT_F32 && n <= F32_STREAM_INPUTS) return 1;
    return wide && n <= WIDE_INPUTS ? WIDE_ROWS : PASS_ROWS;
}

/* rows_for_n for passes of WIDE_ROWS: up to WIDE_INPUTS input rows. */
INLINE void wide_for_n(float *out, int d, Path path, WeightType type, const char *w, size_t row_bytes, int m,
                       const float *in, int n) {
    switch (n) {
    case 1: rows_times_inputs(out, d, path, type, w, row_bytes, WIDE_ROWS, m, in, 1); break;
    case 2: rows_times_inputs(out, d, path, type, w, row_bytes, WIDE_ROWS, m, in, 2); break;
    case 3: rows_times_inputs(out, d, path, type, w, row_bytes, WIDE_ROWS, m, in, 3); break;
    default: rows_times_inputs(out, d, path, type, w, row_bytes, WIDE_ROWS, m, in, WIDE_INPUTS); break;
    }
}

/* A pass over rows_per_pass weight rows; fewer (the last rows of W) PASS_ROWS or one at a time. */
INLINE void pass_for(float *out, int d, Path path, WeightType type, const char *w, size_t row_bytes, int rows, int m,
                     const float *in, int n) {
    int decoded = path == PATH_BLOCKS || path == PATH_LOW_BIT; /* type known when inlined: no wide copies of the others */
    if (WIDE_ROWS > PASS_ROWS && decoded && rows == WIDE_ROWS && rows_per_pass(type, n, m) == WIDE_ROWS)
        wide_for_n(out, d, path, type, w, row_bytes, m, in, n);
    else if (rows == PASS_ROWS) rows_for_n(out, d, path, type, w, row_bytes, PASS_ROWS, m, in, n);
    else
        for (int r = 0; r < rows; r++) rows_for_n(out + r, d, path, type, w + (size_t)r * row_bytes, row_bytes, 1, m, in, n);
}

/* The kernel of each type, compiled once each with its type and path
 * constants (pass_for inlined); named pass_<type> in profiles. */
typedef void PassKernel(float *out, int d, const char *w, size_t row_bytes, int rows, int m, const float *in, int n);
#define PASS_KERNEL(name, path, type)                                                                    \
    static void name(float *out, int d, const char *w, size_t row_bytes, int rows, int m, const float *in, int n) { \
        pass_for(out, d, path, type, w, row_bytes, rows, m, in, n);                                          \
    }
PASS_KERNEL(pass_f32, PATH_PLAIN, WEIGHT_F32)
PASS_KERNEL(pass_f16, PATH_PLAIN, WEIGHT_F16)
PASS_KERNEL(pass_bf16, PATH_PLAIN, WEIGHT_BF16)
PASS_KERNEL(pass_q8_0, PATH_BLOCKS, WEIGHT_Q8_0)
PASS_KERNEL(pass_q4_0, PATH_BLOCKS, WEIGHT_Q4_0)
PASS_KERNEL(pass_q4_k, PATH_BLOCKS, WEIGHT_Q4_K)
PASS_KERNEL(pass_q5_k, PATH_BLOCKS, WEIGHT_Q5_K)
PASS_KERNEL(pass_q6_k, PATH_BLOCKS, WEIGHT_Q6_K)
PASS_KERNEL(pass_q4_1, PATH_LOW_BIT, WEIGHT_Q4_1)
PASS_KERNEL(pass_q5_0, PATH_LOW_BIT, WEIGHT_Q5_0)
PASS_KERNEL(pass_q5_1, PATH_LOW_BIT, WEIGHT_Q5_1)
PASS_KERNEL(pass_iq4_nl, PATH_LOW_BIT, WEIGHT_IQ4_NL)
PASS_KERNEL(pass_q2_k, PATH_LOW_BIT, WEIGHT_Q2_K)
PASS_KERNEL(pass_q3_k, PATH_LOW_BIT, WEIGHT_Q3_K)
PASS_KERNEL(pass_iq4_xs, PATH_LOW_BIT, WEIGHT_IQ4_XS)
PASS_KERNEL(pass_tq1_0, PATH_LOW_BIT, WEIGHT_TQ1_0)
PASS_KERNEL(pass_tq2_0, PATH_LOW_BIT, WEIGHT_TQ2_0)
PASS_KERNEL(pass_iq2_xxs, PATH_LOW_BIT, WEIGHT_IQ2_XXS)
PASS_KERNEL(pass_iq2_xs, PATH_LOW_BIT, WEIGHT_IQ2_XS)
PASS_KERNEL(pass_iq2_s, PATH_LOW_BIT, WEIGHT_IQ2_S)
PASS_KERNEL(pass_iq3_xxs, PATH_LOW_BIT, WEIGHT_IQ3_XXS)
PASS_KERNEL(pass_iq3_s, PATH_LOW_BIT, WEIGHT_IQ3_S)
PASS_KERNEL(pass_iq1_s, PATH_LOW_BIT, WEIGHT_IQ1_S)
PASS_KERNEL(pass_iq1_m, PATH_LOW_BIT, WEIGHT_IQ1_M)
PASS_KERNEL(pass_q1_0, PATH_LOW_BIT, WEIGHT_Q1_0)
PASS_KERNEL(pass_q2_0, PATH_LOW_BIT, WEIGHT_Q2_0)
#undef PASS_KERNEL

static PassKernel *pass_kernel(WeightType type) {
    switch (type) {
    case WEIGHT_F32: return pass_f32;
    case WEIGHT_F16: return pass_f16;
    case WEIGHT_BF16: return pass_bf16;
    case WEIGHT_Q8_0: return pass_q8_0;
    case WEIGHT_Q4_0: return pass_q4_0;
    case WEIGHT_Q4_K: return pass_q4_k;
    case WEIGHT_Q5_K: return pass_q5_k;
    case WEIGHT_Q6_K: return pass_q6_k;
    case WEIGHT_Q4_1: return pass_q4_1;
    case WEIGHT_Q5_0: return pass_q5_0;
    case WEIGHT_Q5_1: return pass_q5_1;
    case WEIGHT_IQ4_NL: return pass_iq4_nl;
    case WEIGHT_Q2_K: return pass_q2_k;
    case WEIGHT_Q3_K: return pass_q3_k;
    case WEIGHT_IQ4_XS: return pass_iq4_xs;
    case WEIGHT_TQ1_0: return pass_tq1_0;
    case WEIGHT_TQ2_0: return pass_tq2_0;
    case WEIGHT_IQ2_XXS: return pass_iq2_xxs;
    case WEIGHT_IQ2_XS: return pass_iq2_xs;
    case WEIGHT_IQ2_S: return pass_iq2_s;
    case WEIGHT_IQ3_XXS: return pass_iq3_xxs;
    case WEIGHT_IQ3_S: return pass_iq3_s;
    case WEIGHT_IQ1_S: return pass_iq1_s;
    case WEIGHT_IQ1_M: return pass_iq1_m;
    case WEIGHT_Q1_0: return pass_q1_0;
    case WEIGHT_Q2_0: return pass_q2_0;
    default: return NULL; /* every WeightType has its kernel; the loaders accept no other */
    }
}

/* ---- Many input rows (prefill): the same lane order, in tiles ---- */

/* A tile: TILE_W weight rows times TILE_IN input rows, TILE_W x TILE_IN
 * vector sums in registers (24 of AVX-512's 32). Each weight vector is
 * loaded once for TILE_IN input rows, each input vector once for TILE_W
 * weight rows. */
enum {
#if defined(__AVX512F__)
    TILE_W = 4,
#else
    TILE_W = 1, /* AVX2: 6 sums of two 8-lane parts fill 12 of the 16 registers */
#endif
    TILE_IN = 6,
    SLOT_VALUES = 1 << 17, /* a thread's panel of converted weights: 512 KB, kept in its L2 */
};

/* acc[r][i] += w[r][16 lanes] * x[i][16 lanes] for `rows` weight rows
 * (stride row_bytes) and n input rows (stride x_stride floats). */
typedef Part TileSums[TILE_W][TILE_IN][PARTS];
INLINE void add_tile_products(TileSums acc, const char *w, size_t row_bytes, int rows, const float *x, size_t x_stride,
                              int n) {
    Part wv[TILE_W][PARTS];
    for (int r = 0; r < rows; r++) memcpy(wv[r], w + r * row_bytes, sizeof wv[r]);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < PARTS; p++) {
            Part xp;
            memcpy(&xp, x + i * x_stride + PART_LANES * p, sizeof xp);
            held_in_register(&xp); /* loaded once: GCC otherwise folds the load into each product (28 loads a step, not 10) */
            for (int r = 0; r < rows; r++) acc[r][i][p] += wv[r][p] * xp;
        }
}

/* out[i][r] (stride d) = sum_t W[r][t] in[i][t] for `rows` weight rows
 * (f32, any alignment, row stride row_bytes) and n input rows, in
 * dot_in_lanes's order (tempo.c): lane j adds the products at t = j, j +
 * 16, ... in turn (a product, then a sum, each rounded: no FMA), the last m
 * % 16 values zero-padded to a vector; then the lanes pairwise. Inlined
 * once per (rows, n) so that the sums stay in registers. */
INLINE void tile_in_lanes(float *out, int d, const char *w, size_t row_bytes, int rows, const float *in, int m, int n) {
    TileSums acc;
    memset(acc, 0, sizeof acc);
    int t = 0;
    for (; t + VEC <= m; t += VEC) add_tile_products(acc, w + sizeof(float) * t, row_bytes, rows, in + t, (size_t)m, n);
    if (t < m) { /* the last m % 16 values, zero-padded */
        float w_last[TILE_W][VEC] = {{0}}, x_last[TILE_IN][VEC] = {{0}};
        for (int r = 0; r < rows; r++) memcpy(w_last[r], w + r * row_bytes + sizeof(float) * t, (size_t)(m - t) * sizeof(float));
        for (int i = 0; i < n; i++) memcpy(x_last[i], in + (size_t)i * m + t, (size_t)(m - t) * sizeof(float));
        add_tile_products(acc, (const char *)w_last, sizeof w_last[0], rows, x_last[0], VEC, n);
    }
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rows; r++) out[(size_t)i * d + r] = lanes_added(acc[r][i]);
}

/* One copy of the tile per number of input rows. */
INLINE void tile_for_n(float *out, int d, const char *w, size_t row_bytes, int rows, const float *in, int m, int n) {
    switch (n) {
    case 1: tile_in_lanes(out, d, w, row_bytes, rows, in, m, 1); break;
    case 2: tile_in_lanes(out, d, w, row_bytes, rows, in, m, 2); break;
    case 3: tile_in_lanes(out, d, w, row_bytes, rows, in, m, 3); break;
    case 4: tile_in_lanes(out, d, w, row_bytes, rows, in, m, 4); break;
    case 5: tile_in_lanes(out, d, w, row_bytes, rows, in, m, 5); break;
    default: tile_in_lanes(out, d, w, row_bytes, rows, in, m, TILE_IN); break;
    }
}

/* out[i][0 .. rows) (stride d) for all n input rows from `rows` f32 weight
 * rows: TILE_IN input rows at a time (they stay in L1) against the panel's
 * rows, TILE_W at a time (the panel stays in L2). */
static void panel_times_inputs(float *out, int d, const char *w, size_t row_bytes, int rows, const float *in, int m,
                               int n) {
    for (int i0 = 0; i0 < n; i0 += TILE_IN) {
        int k = n - i0 < TILE_IN ? n - i0 : TILE_IN, r = 0;
        float *o = out + (size_t)i0 * d;
        const float *x = in + (size_t)i0 * m;
        for (; r + TILE_W <= rows; r += TILE_W) tile_for_n(o + r, d, w + r * row_bytes, row_bytes, TILE_W, x, m, k);
        for (; r < rows; r++) tile_for_n(o + r, d, w + r * row_bytes, row_bytes, 1, x, m, k);
    }
}

/* Floats of one thread's panel: SLOT_VALUES, or TILE_W rows when they are wider; a whole number of vectors. */
static size_t slot_values(int m) {
    size_t values = (size_t)TILE_W * m > SLOT_VALUES ? (size_t)TILE_W * m : SLOT_VALUES;
    return (values + VEC - 1) / VEC * VEC;
}

/* Weight rows per panel: as many as a slot holds, fewer so that every thread gets as many panels; a multiple of TILE_W. */
static int panel_rows_for(int d, int m, int threads) {
    int most = (int)(slot_values(m) / (size_t)m) / TILE_W * TILE_W;
    int panels = (d + most - 1) / most;
    panels = (panels + threads - 1) / threads * threads;
    int rows = (d + panels - 1) / panels;
    return (rows + TILE_W - 1) / TILE_W * TILE_W;
}

/* Many input rows (prefill) are compute-bound. Threads split W into panels
 * of rows; each thread converts its own panels to f32 (tempo_unpack) in its
 * own slot of `panel` (f32 is read in place) and multiplies them into every
 * input row in tiles. Each output is summed in the plain order, so the
 * result is the plain definition's bitwise, whatever the threads, panels or
 * stored type. */
static void matmul_many(float *out, const float *in, Matrix w, int n, int m, int d, float *panel) {
    int big = (size_t)n * m * d >= ((size_t)1 << 20); /* small products: threads cost more than they save */
    int threads = big ? omp_get_max_threads() : 1;
    int rows_each = panel_rows_for(d, m, threads), panels = (d + rows_each - 1) / rows_each;
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int p = 0; p < panels; p++) {
        int r0 = p * rows_each, rows = d - r0 < rows_each ? d - r0 : rows_each;
        const char *src = (const char *)w.data + (size_t)r0 * row_bytes;
        size_t stride = row_bytes;
        if (w.type != WEIGHT_F32) {
            float *slot = panel + (size_t)omp_get_thread_num() * slot_values(m);
            for (int r = 0; r < rows; r++) tempo_unpack(w.type, src + (size_t)r * row_bytes, (size_t)m, slot + (size_t)r * m);
            src = (const char *)slot, stride = (size_t)m * sizeof(float);
        }
        panel_times_inputs(out + r0, d, src, stride, rows, in, m, n);
    }
}

/* Passes from..to-1 of product p (rows_per_pass weight rows each) by the blocked kernel. */
static void product_passes(const Product *p, const float *in, int n, int m, int from, int to) {
    size_t row_bytes = tempo_row_bytes(p->w.type, (size_t)m);
    PassKernel *kernel = pass_kernel(p->w.type);
    int step = rows_per_pass(p->w.type, n, m);
    for (int q = from; q < to; q++) {
        int r = q * step, rows = p->d - r < step ? p->d - r : step;
        kernel(p->out + r, p->d, (const char *)p->w.data + (size_t)r * row_bytes, row_bytes, rows, m, in, n);
    }
}

static int passes_of(const Product *p, int n, int m) {
    int step = rows_per_pass(p->w.type, n, m);
    return (p->d + step - 1) / step;
}

/* out = in W^T for each product. A few rows (decode, one parallel set) are
 * memory-bound: the blocked kernel reads each weight row once for all n
 * input rows (matmul_many's tiles would first convert it into panels). The
 * passes of all the products, in turn, are split into one contiguous range
 * per thread: one parallel step for the set, not one per matrix. */
void tempo_products_fast(const Product *p, int count, const float *in, int n, int m, float *panel) {
    if (n > FEW_ROWS) {
        for (int j = 0; j < count; j++) matmul_many(p[j].out, in, p[j].w, n, m, p[j].d, panel);
        return;
    }
    size_t values = 0;
    int passes = 0;
    for (int j = 0; j < count; j++) values += (size_t)p[j].d * m, passes += passes_of(&p[j], n, m);
    int big = values >= ((size_t)1 << 18); /* small layers: threads cost more than they save */
#pragma omp parallel if (big)
    {
        int threads = omp_get_num_threads(), t = omp_get_thread_num();
        int from = (int)((long)passes * t / threads), to = (int)((long)passes * (t + 1) / threads);
        for (int j = 0, first = 0; j < count; j++) { /* first: product j's first pass */
            int own = passes_of(&p[j], n, m), lo = from > first ? from - first : 0, hi = to - first < own ? to - first : own;
            if (lo < hi) product_passes(&p[j], in, n, m, lo, hi);
            first += own;
        }
    }
}

/* out[n][d] = in[n][m] W^T: one product. */
void tempo_matmul_fast(float *out, const float *in, Matrix w, int n, int m, int d, float *panel) {
    Product p = {.out = out, .w = w, .d = d};
    tempo_products_fast(&p, 1, in, n, m, panel);
}

/* A panel of converted weights per thread for many rows; the blocked kernel needs none. */
size_t tempo_matmul_fast_scratch(int n, int m) {
    return n > FEW_ROWS ? slot_values(m) * (size_t)omp_get_max_threads() : 0;
}
