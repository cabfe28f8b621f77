/* attention_input.h - the inputs of tempo attention: a trace, or a fresh
 * run of a model, and what was asked of it. */
#ifndef TEMPO_ATTENTION_INPUT_H
#define TEMPO_ATTENTION_INPUT_H

#include "analysis.h"
#include "flags.h"

/* What tempo attention was asked for; its syntax is checked before any work. */
typedef struct {
    int layer, head;       /* --heatmap L:H; 0:0 without it */
    int r0, r1, have_rows; /* --rows A-B: rows [r0, r1) */
    int row, have_row;     /* --row R for --svg-grid */
} AttentionRequest;

/* What tempo attention reads: a trace, or a fresh run of a model. */
typedef struct {
    Model m;
    Tokenizer t;
    Trace tr;
    Generation gen;
    uint8_t *allowed;  /* a fresh run's masks and attention, dense */
    float *attention;
    AttentionView v;
    int n_prompt;
    char **labels;   /* [v.n] token texts for axes */
    char model_name[256];
} AttentionInput;

/* Checks the request's syntax and the flags against the input (a trace or a prompt), before any work. */
int attention_request(const Args *a, AttentionRequest *r, char *err);
/* The trace or the run, its view, and a label for every row. */
int attention_load(const Args *a, const AttentionRequest *r, AttentionInput *in, char *err);
void attention_input_free(AttentionInput *in);
/* The rows the request draws: --rows, else the rows the view holds
 * (--heatmap, --svg, --svg-pair); --row, else the last held (--svg-grid).
 * -1 and one line when the view lacks the layer, head or a row they need. */
int attention_request_rows(const Args *a, const AttentionRequest *r, const AttentionView *v, int *r0, int *r1, int *row,
                           char *err);
/* --svg-pair: the view's rows under both masks, drawn side by side. */
int attention_pair_picture(const char *path, const AttentionInput *in, int l, int h, int r0, int r1, char *err);

#endif
