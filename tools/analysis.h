/* analysis.h - measuring what isolation does: distances between logit
 * rows, attention received by parallel and non-parallel tokens, heatmaps. */
#ifndef TEMPO_ANALYSIS_H
#define TEMPO_ANALYSIS_H

#include <stdio.h>

#include "../formats/formats.h"

/* Distances between two next-token distributions p = softmax(a), q = softmax(b). */
typedef struct {
    double kl_ab, kl_ba;   /* KL(p||q), KL(q||p), nats */
    double js;             /* Jensen-Shannon divergence, log base 2, in [0, 1] */
    double cosine;         /* cosine similarity of p and q */
    double top1, top5, top10; /* |topk(p) ∩ topk(q)| / k */
    int argmax_agree;
} LogitMetrics;

LogitMetrics logit_metrics(const float *a, const float *b, int vocab);

/* A dense view of a trace's rows for attention analysis. */
typedef struct {
    int n, n_layers, n_heads;
    const int *tokens, *positions, *sets, *pruned; /* pruned may be NULL */
    const float *attention;                        /* [L][H][n][n] */
} AttentionView;

/* Attention received from later rows, split by the kind of key. */
typedef struct {
    double mean, median, std;
    int count;
} Summary;

typedef struct {
    double cross_mean, cross_max;  /* between different members of one set */
    int cross_pairs;
    Summary parallel, single;      /* per key token: mean attention received from later rows */
    Summary set_total;             /* per parallel set: summed over its members */
    double reduction_pct;          /* 100 (1 - parallel.mean / single.mean) */
} AttentionStats;

/* Stats for layer l and head h (h = -1: averaged over heads; l = -1: over
 * layers too), over keys whose step lies in [step_lo, step_hi) (generated
 * steps count from 0; prompt rows are step -1 and only count when
 * step_lo < 0). BOS (row 0) is excluded as an attention sink. */
AttentionStats attention_stats(const AttentionView *v, int l, int h, int step_lo, int step_hi, int n_prompt);

/* ASCII heatmap of rows [r0, r1) x keys [0, r1) of layer l head h. */
void heatmap_ascii(FILE *out, const AttentionView *v, int l, int h, int r0, int r1);
/* SVG heatmap with token labels, set boundaries and a colour scale. */
int heatmap_svg(const char *path, const AttentionView *v, const char *const *labels, int l, int h, int r0, int r1,
                char *err);
/* SVG grid of n_layers x n_heads cells, each the attention of query `row` over its keys. */
int grid_svg(const char *path, const AttentionView *v, const char *const *labels, int row, char *err);

#endif
