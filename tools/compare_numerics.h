/* compare_numerics.h - `tempo compare --vs-numerics`: does an engine's
 * arithmetic (quantized activations, f16 caches, ...) change the parallel
 * sets? One TEMPO run under profile A (--numerics), its rows teacher-forced
 * under profile B, and each step's set chosen again from B's distribution
 * (NOTES "Numerics of real engines", "Do the sets change?"). */
#ifndef TEMPO_COMPARE_NUMERICS_H
#define TEMPO_COMPARE_NUMERICS_H

#include <cjson/cJSON.h>

#include "../formats/formats.h"

typedef struct {
    Numerics sides[2];   /* A (the run), B (teacher-forced on A's rows) */
    Generation run;      /* A's run */
    const Config *config; /* the model's: its BOS and EOS shown as markers */
    int vocab, max_width;
    MaskKind mode;       /* the run's */
    float *probs[2];     /* [n_steps][vocab]: each side's next distribution at each step */
    int *set_b;          /* [n_steps][max_width]: B's set at each step, most probable first */
    int *width_b;        /* [n_steps] */
    double *max_dp;      /* [n_steps]: max |p_B - p_A| over the tokens of either set */
    int kept;            /* steps whose set is the same tokens in the same order */
    int first_changed;   /* the first step that is not kept, -1 when all are */
} NumericsComparison;

/* The two sides from --numerics (with --kv-type, --flash-attn, --repack,
 * which belong to whichever side is ggml) and --vs-numerics `vs`. The same
 * profile twice, or ggml settings with no ggml side, is an error. */
int numerics_sides(const Numerics *given, const char *vs, Numerics sides[2], char *err);
/* Runs TEMPO on the prompt ids under sides[0], teacher-forces its rows under
 * sides[1] and compares each step's sets. The model ends under sides[0]. */
int compare_numerics_run(Model *m, const int *ids, int n_ids, const GenConfig *g, const Numerics sides[2],
                         NumericsComparison *out, char *err);
void compare_numerics_free(NumericsComparison *cmp);
/* The report: a line per step, the count kept, the first change (members
 * lost and gained, with both probabilities) and the largest |dp|. */
void print_numerics_comparison(const NumericsComparison *cmp, const Tokenizer *t);
/* The same as JSON, into out. */
void numerics_comparison_json(cJSON *out, const NumericsComparison *cmp, const Tokenizer *t);
/* Each prompt compared and reported (text, and an object of `runs` each). */
int compare_numerics_all(Model *m, const Tokenizer *t, const GenConfig *g, const Numerics sides[2], char **prompts,
                         int n, cJSON *runs, char *err);

#endif
