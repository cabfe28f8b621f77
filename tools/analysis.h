/* analysis.h - measuring what isolation does: distances between logit
 * rows, attention received by parallel and non-parallel tokens, heatmaps. */
#ifndef TEMPO_ANALYSIS_H
#define TEMPO_ANALYSIS_H

#include <stdio.h>

#include <cjson/cJSON.h>

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
    const float *attention;                        /* [kept L][kept H][kept rows][n]: what keep lists */
    AttentionKeep keep;                            /* the layers, heads, rows held (NULL lists: every one) */
    const uint8_t *allowed;                        /* [mask_layers][n][n], 1 = may attend; NULL: not recorded */
    int mask_layers;
    const char *model;                             /* a name for titles ("" if unknown) */
} AttentionView;

/* The view of a trace from any engine: tokens, positions, attention
 * F32[L,H,n,n]; sets, allowed, pruned and n_prompt when present. */
int attention_view_from_trace(const Trace *tr, AttentionView *v, int *n_prompt, char *err);
/* Attention of query q to key k, averaged over the kept heads when h = -1
 * and the kept layers when l = -1; NAN when q, l or h is not kept. */
double attention_at(const AttentionView *v, int l, int h, int q, int k);
/* 1 if the view holds query row q (q < 0: any row) of layer l and head h (-1: any). */
int attention_kept(const AttentionView *v, int l, int h, int q);
/* The i-th layer (or head) the view holds, and how many it holds. */
int attention_kept_layer(const AttentionView *v, int i);
int attention_kept_head(const AttentionView *v, int i);
int attention_kept_layers(const AttentionView *v);
int attention_kept_heads(const AttentionView *v);
/* 0 if the view holds layer l and head h (-1: not asked) and every row in
 * [r0, r1); else -1 and one line naming the first missing one and the
 * ones the view holds. */
int attention_require(const AttentionView *v, int l, int h, int r0, int r1, char *err);
/* What a capture holds, into buf: "layers 0,2, heads 0-3, rows 5-29"
 * (a NULL list: 0..count-1), or "every layer, head and row". */
const char *attention_keep_text(const AttentionKeep *keep, int n_layers, int n_heads, int n_rows, char *buf, size_t len);
/* 1 if query q may attend to key k in layer l (without a recorded mask: k <= q). */
int attention_allowed(const AttentionView *v, int l, int q, int k);
/* Rows sharing row's logical position (1: a single token). */
int attention_set_size(const AttentionView *v, int row);
/* "isolated", "visible" or "causal (no parallel set)": what layer l's mask
 * does to siblings; l = -1 asks about every layer ("isolated in some layers"). */
const char *attention_mode(const AttentionView *v, int l);
/* Text of token after prev, as valid UTF-8; "#id" without a tokenizer or for
 * an id outside it. The caller frees it (NULL: out of memory). */
char *token_label(const Tokenizer *t, int prev, int token);

/* A run's width and threshold over its steps: per step its set size, how
 * many members were fed, how many are live at the end (not pruned), the
 * threshold and the logical position. */
typedef struct {
    int members, fed, live, position;
    float threshold;
} SeriesPoint;
/* One point per step of gen, into points [gen->n_steps]. */
void generation_series(const Generation *gen, SeriesPoint *points);
/* The series as JSON: arrays step, position, threshold, members, fed, live. */
cJSON *series_json(const Generation *gen);

/* Attention received from later rows, split by the kind of key. */
typedef struct {
    double mean, median, std;
    int count;
} Summary;

/* Mean, median and standard deviation (over n, not n - 1) of n values; sorts them. */
Summary summarize_values(double *values, int n);

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

/* The table of attention_stats per head, per layer, overall and per third
 * of the run, with a legend; fills root (per_head, per_layer, all, thirds). */
void attention_report(FILE *out, const AttentionView *v, int n_prompt, cJSON *root);
/* ASCII heatmap of rows [r0, r1) x keys [0, r1) of layer l head h, labelled with the tokens. */
void heatmap_ascii(FILE *out, const AttentionView *v, const char *const *labels, int l, int h, int r0, int r1);

/* Teacher-forced pair: the view's rows recomputed by m under the isolated and
 * the visible mask (one mask for every layer). Fills iso and vis, which point
 * into *buffers (the caller frees it). */
int attention_pair(const Model *m, const AttentionView *v, AttentionView *iso, AttentionView *vis, void **buffers,
                   char *err);

#endif
