/* compare.h - the isolated-vs-visible experiment behind `tempo compare`:
 * both modes free-running, then the isolated run's rows teacher-forced
 * under both masks, and distances between their logits (NOTES §11). */
#ifndef TEMPO_COMPARE_H
#define TEMPO_COMPARE_H

#include "analysis.h"

enum { COMPARE_THIRDS = 3, COMPARE_MAX_LAYERS = 128 };

typedef struct {
    int steps, parallel_steps, rows, later_members, first_divergence, prefix_rows;
    double prefix_max_abs, iso_seconds, vis_seconds;
    double kl_iv, kl_vi, js, cosine, top1, top5, top10, argmax; /* means over later members */
    /* early/middle/late: later members of steps s with 3 s / steps = 0, 1, 2 */
    int third_members[COMPARE_THIRDS];
    double third_js[COMPARE_THIRDS];          /* mean JS (bits) there; NAN without members */
    /* per layer (the first COMPARE_MAX_LAYERS): attention_stats' reduct% of
     * the isolated run's rows, teacher-forced under its own mask; NAN: n/a */
    int n_layers;
    double layer_reduction[COMPARE_MAX_LAYERS];
    double ppl_iso, ppl_vis;                  /* path_perplexity of each mode's text */
    int ppl_tokens_iso, ppl_tokens_vis;       /* the generated tokens each one scores */
} CompareSummary;

typedef struct {
    Generation iso, vis;      /* free-running; total_seconds is the faster of two runs */
    LogitMetrics *member;     /* [iso.n_members]: teacher-forced isolated vs visible; unset where row == -1 */
    CompareSummary sum;
} Comparison;

/* Runs the prompt ids both ways and teacher-forced (base's mode is ignored:
 * both modes run). Fills *cmp; compare_free releases it. */
int compare_run(const Model *m, const int *ids, int n_ids, const GenConfig *base, Comparison *cmp, char *err);
void compare_free(Comparison *cmp);

/* The member of step s the run's text follows: the one the next set was
 * drawn from, its last fed member (--next-from last); under --next-from
 * mean, where every member feeds the next set, its first (most probable).
 * An index into gen->members. */
int path_member(const Generation *gen, int s, NextFrom next_from);
/* The perplexity of a run's text under plain greedy scoring: the prompt
 * followed by path_member's token of each step, fed causally at positions
 * 0, 1, 2, ...; ppl = exp(-(1/S) sum_s log p(token of step s | everything
 * before it)) over the S generated tokens (the prompt is not scored).
 * *ppl is NAN when the run made no step. */
int path_perplexity(const Model *m, const Generation *gen, NextFrom next_from, double *ppl, char *err);

#endif
