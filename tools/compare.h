/* compare.h - the isolated-vs-visible experiment behind `tempo compare`:
 * both modes free-running, then the isolated run's rows teacher-forced
 * under both masks, and distances between their logits (NOTES §11). */
#ifndef TEMPO_COMPARE_H
#define TEMPO_COMPARE_H

#include "analysis.h"

typedef struct {
    int steps, parallel_steps, rows, later_members, first_divergence, prefix_rows;
    double prefix_max_abs, iso_seconds, vis_seconds;
    double kl_iv, kl_vi, js, cosine, top1, top5, top10, argmax; /* means over later members */
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

#endif
