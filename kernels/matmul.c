/* matmul.c - the linear layer, tuned: out[n][d] = in[n][m] W^T over
 * weights in their stored type. Its definition is matmul_plain in tempo.c;
 * up to TEMPO_FEW_ROWS rows this kernel keeps that summation order and so
 * equals it bitwise (tests/test_kernels.c). */
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "unpack.h"

/* out[n][d] = in[n][m] W^T for W [d][m]. W keeps the type it was stored in
 * (f32, f16, bf16, ...) and is converted to f32 just before use (unpack.h):
 * a decode step reads half the bytes of an f32 copy for a bf16 model. f32
 * is used in place, f16 and bf16 are converted in registers, block types a
 * tile at a time. NOTES.md §12 has the measurements behind each choice. */
enum {
    FEW_ROWS = TEMPO_FEW_ROWS, /* up to this many input rows: the blocked kernel; more: sgemm */
    TILE_COLS = 256,        /* values of a weight row converted at a time (a multiple of every block size) */
    VEC = 16,               /* floats in one vector register (AVX-512) */
    PANEL_VALUES = 1 << 20, /* weights converted for one sgemm call */
    ALIGN = 64,             /* bytes: a cache line, and one vector */
    PREFETCH_BYTES = 4096,  /* weights are asked for this far ahead of the tile being read */
};

typedef F32x16 Vec;

/* Where the kernel's weight vectors come from: f32 is read in place; f16
 * and bf16 are converted in registers as they are read; block types are
 * unpacked a tile at a time into a buffer that stays in L1. */
typedef enum { FROM_F32, FROM_F16, FROM_BF16, FROM_TILE } Source;

/* Weights t .. t+VEC-1 of the tile starting at `row` (unpacked into `tile` for FROM_TILE). */
static inline __attribute__((always_inline)) Vec weight_vec(Source src, const char *row, const float *tile, int t) {
    Vec v;
    switch (src) {
    case FROM_F16: return tempo_f16x16(row + 2 * t);
    case FROM_BF16: return tempo_bf16x16(row + 2 * t);
    case FROM_F32: memcpy(&v, row + sizeof(float) * t, sizeof v); return v;
    default: memcpy(&v, tile + t, sizeof v); return v;
    }
}

/* The blocked kernel: out[i][row] = sum_t W[row][t] in[i][t] for the n
 * input rows. The weight row is read once, a tile at a time; each vector of
 * VEC weights is loaded once and multiplied into all n input rows. Lane j
 * of acc[i] adds the products at t = j, j + VEC, j + 2 VEC, ...; the lanes
 * are then added pairwise. That order does not depend on n, the threads,
 * the tiling or the stored type: a row's result does not depend on which
 * rows share its step, and f16/bf16 weights give bitwise the results of
 * their f32 copy. Inlined once per (source, n), so that acc stays in
 * registers and the source is known. */
static inline __attribute__((always_inline)) void row_times_inputs(float *out, int d, Source src, WeightType type,
                                                                   const char *row, size_t tile_bytes, int m,
                                                                   const float *in, int n) {
    Vec acc[FEW_ROWS] = {{0}};
    float buf[TILE_COLS] __attribute__((aligned(ALIGN)));
    for (int c0 = 0; c0 < m; c0 += TILE_COLS, row += tile_bytes) {
        int width = m - c0 < TILE_COLS ? m - c0 : TILE_COLS, t = 0;
        for (size_t b = 0; b < tile_bytes; b += ALIGN) __builtin_prefetch(row + PREFETCH_BYTES + b); /* never faults */
        if (src == FROM_TILE) tempo_unpack(type, row, (size_t)width, buf);
        for (; t + VEC <= width; t += VEC) {
            Vec wt = weight_vec(src, row, buf, t), xt;
#if defined(__AVX512F__)
            __asm__("" : "+v"(wt)); /* keep wt in a register: GCC otherwise reloads it for each row (3 rows: 1.6x slower) */
#endif
#pragma GCC unroll 8
            for (int i = 0; i < n; i++) {
                memcpy(&xt, in + (size_t)i * m + c0 + t, sizeof xt);
                acc[i] += wt * xt;
            }
        }
        if (t < width) { /* the last m % VEC columns (f32, f16, bf16 only), zero-padded to one vector */
            Vec wt = {0}, xt = {0};
            tempo_dequantize(type, row + tempo_row_bytes(type, (size_t)t), (size_t)(width - t), buf);
            memcpy(&wt, buf, (size_t)(width - t) * sizeof(float));
#pragma GCC unroll 8
            for (int i = 0; i < n; i++) {
                memcpy(&xt, in + (size_t)i * m + c0 + t, (size_t)(width - t) * sizeof(float));
                acc[i] += wt * xt;
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < n; i++) {
        Vec sum = acc[i];
        for (int half = VEC / 2; half > 0; half /= 2)
            for (int j = 0; j < half; j++) sum[j] += sum[j + half];
        out[(size_t)i * d] = sum[0];
    }
}

/* One weight row times n input rows: one copy of the kernel per number of rows. */
static inline __attribute__((always_inline)) void row_for_n(float *out, int d, Source src, WeightType type,
                                                            const char *row, size_t tile_bytes, int m, const float *in,
                                                            int n) {
    switch (n) {
    case 1: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, 1); break;
    case 2: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, 2); break;
    case 3: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, 3); break;
    case 4: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, 4); break;
    case 5: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, 5); break;
    case 6: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, 6); break;
    case 7: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, 7); break;
    default: row_times_inputs(out, d, src, type, row, tile_bytes, m, in, FEW_ROWS); break;
    }
}

/* The kernel for each source, compiled once each. */
typedef void RowKernel(float *out, int d, WeightType type, const char *row, size_t tile_bytes, int m, const float *in, int n);
static void row_f32(float *out, int d, WeightType type, const char *row, size_t tile_bytes, int m, const float *in, int n) {
    row_for_n(out, d, FROM_F32, type, row, tile_bytes, m, in, n);
}
static void row_f16(float *out, int d, WeightType type, const char *row, size_t tile_bytes, int m, const float *in, int n) {
    row_for_n(out, d, FROM_F16, type, row, tile_bytes, m, in, n);
}
static void row_bf16(float *out, int d, WeightType type, const char *row, size_t tile_bytes, int m, const float *in, int n) {
    row_for_n(out, d, FROM_BF16, type, row, tile_bytes, m, in, n);
}
static void row_blocks(float *out, int d, WeightType type, const char *row, size_t tile_bytes, int m, const float *in, int n) {
    row_for_n(out, d, FROM_TILE, type, row, tile_bytes, m, in, n);
}

static RowKernel *row_kernel(WeightType type) {
    switch (type) {
    case WEIGHT_F32: return row_f32;
    case WEIGHT_F16: return row_f16;
    case WEIGHT_BF16: return row_bf16;
    default: return row_blocks;
    }
}

/* Many input rows (prefill) are compute-bound: sgemm, over panels of W
 * converted to f32 (an aligned f32 panel is used in place). The panels are
 * the same whatever the stored type, so the sgemm calls are too. */
static void matmul_many(float *out, const float *in, Matrix w, int n, int m, int d, float *panel) {
    int panel_rows = PANEL_VALUES / m > 0 ? PANEL_VALUES / m : 1;
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m);
    for (int r0 = 0; r0 < d; r0 += panel_rows) {
        int rows = d - r0 < panel_rows ? d - r0 : panel_rows;
        const char *p = (const char *)w.data + (size_t)r0 * row_bytes;
        const float *wp = (const float *)p;
        if (w.type != WEIGHT_F32 || (uintptr_t)p % sizeof(float) != 0) {
            /* one thread: OpenMP threads spinning after a parallel loop starve OpenBLAS's (measured 2.4x slower) */
            for (int r = 0; r < rows; r++) tempo_unpack(w.type, p + (size_t)r * row_bytes, (size_t)m, panel + (size_t)r * m);
            wp = panel;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, m, 1.0f, in, m, wp, m, 0.0f, out + r0, d);
    }
}

/* out[n][d] = in[n][m] W^T. A few rows (decode, one parallel set) are
 * memory-bound: threads split the rows of W and the blocked kernel reads
 * each once for all n input rows; sgemm would first copy all of W. */
void tempo_matmul_fast(float *out, const float *in, Matrix w, int n, int m, int d, float *panel) {
    if (n > FEW_ROWS) {
        matmul_many(out, in, w, n, m, d, panel);
        return;
    }
    int big = (size_t)d * m >= ((size_t)1 << 18); /* small layers: threads cost more than they save */
    size_t row_bytes = tempo_row_bytes(w.type, (size_t)m), tile_bytes = tempo_row_bytes(w.type, TILE_COLS);
    RowKernel *kernel = row_kernel(w.type);
#pragma omp parallel for schedule(static) if (big)
    for (int r = 0; r < d; r++) kernel(out + r, d, w.type, (const char *)w.data + r * row_bytes, tile_bytes, m, in, n);
}

/* sgemm's panel of converted weights; the blocked kernel needs none. */
size_t tempo_matmul_fast_scratch(int n, int m) {
    (void)m;
    return n > FEW_ROWS ? PANEL_VALUES : 0;
}
