/* pictures.h - SVG pictures that explain isolation: an attention heatmap,
 * a layer x head grid, an isolated-vs-visible pair and a TEMPO run. */
#ifndef TEMPO_PICTURES_H
#define TEMPO_PICTURES_H

#include "analysis.h"

/* Attention of rows [r0, r1) over keys [0, r1) in layer l, head h: token
 * labels, a colour scale, parallel sets boxed, masked cells grey (the
 * future) or hatched (a sibling hidden by isolation). */
int heatmap_svg(const char *path, const AttentionView *v, const char *const *labels, int l, int h, int r0, int r1,
                char *err);
/* One strip per layer x head: the attention of query `row` over its keys. */
int grid_svg(const char *path, const AttentionView *v, const char *const *labels, int row, char *err);
/* The same rows under the isolated and the visible mask (attention_pair),
 * side by side on one scale, and their difference. */
int pair_svg(const char *path, const AttentionView *iso, const AttentionView *vis, const char *const *labels, int l, int h,
             int r0, int r1, char *err);
/* A TEMPO run: the text as a path, each parallel set stacked at its
 * position, shaded by probability, pruned members struck out, and the
 * member(s) each next set was drawn from (next_from) outlined in black with
 * the black line leaving from them. */
int tree_svg(const char *path, const Generation *gen, const Tokenizer *t, const char *model, const char *mode,
             NextFrom next_from, char *err);
/* Width and threshold over the steps of a run (generation_series): a bar
 * per step as tall as its set (members selected light, fed blue, live at
 * the end dark), and the threshold as a line on its own 0-1 scale. Each
 * bar is <rect class="width" data-step data-members data-fed data-live>. */
int series_svg(const char *path, const Generation *gen, const char *model, const char *mode, char *err);

#endif
