/* printing.h - how tokens, generations and forward passes are shown, on a
 * terminal and as JSON. */
#ifndef TEMPO_PRINTING_H
#define TEMPO_PRINTING_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "../formats/formats.h"

/* Text of a token, or " #id" when no tokenizer was given. */
const char *token_text(const Tokenizer *t, int prev, int token, char buf[16]);
/* How a token shows in the text (markers for BOS/EOS; escapes inside a set). */
void show_token(FILE *out, const Tokenizer *t, const Config *c, int prev, int token, int in_set);
/* tempo forward: one line per row with its most probable next token. */
void print_forward_rows(const Tokenizer *t, const Config *c, int n, const int *tokens, const int *positions,
                        const int *sets, const float *logits);
/* The token before step s (for decoding). */
int token_before(const Generation *gen, int s);
/* One step: a single token, or the parallel set as [a/b/c], pruned members as ~b~. */
void print_step(FILE *out, const Generation *gen, int s, const Tokenizer *t, const Config *c, int prev, int color,
                int hide_pruned);
/* The prompt (without its BOS) and every step, then a newline. */
void print_generation(const Generation *gen, const Tokenizer *t, const Config *c, int color, int hide_pruned);
/* --verbose: each step's position, threshold, time and members. */
void print_steps_verbose(FILE *out, const Generation *gen, const Tokenizer *t, const Config *c);
/* --verbose with --prune: each pruning decision, the member's share of its
 * set's received attention against the bar prune_threshold / live. */
void print_pruning_verbose(FILE *out, const Generation *gen, const Tokenizer *t, const Config *c, const GenConfig *g);
/* The line after a run: steps, tokens selected and fed, rows computed (prompt + generated), stop reason, speed. */
void print_generation_summary(FILE *out, const Generation *gen);
/* "wrote PATH: what" on stderr, after a file is written. */
void print_wrote(const char *path, const char *what);
int write_json(const cJSON *root, const char *path, char *err);
/* The generation as JSON: prompt, settings (settings.c), steps, summary. */
int write_generation_json(const Generation *gen, const Tokenizer *t, const GenConfig *g, const char *prompt,
                          const char *path, char *err);

/* A set as text in a buffer of `size` bytes (room for a member and the
 * tail "… N more]"): "[a, b, … N more]". Members go in whole while they fit
 * with room left to close; the rest are counted; the text is always closed
 * with "]". The audit's findings and tempo compare --vs-numerics' table. */
typedef struct {
    char *text;
    size_t size, used;
    int n, shown, cut; /* members in the set, written, left out */
    const char *sep;   /* between members: ", " or "/" */
} SetText;
void set_text_open(SetText *st, char *buf, size_t size, int n, const char *sep);
/* The next member's text (NULL: left out, as one that does not fit). */
void set_text_add(SetText *st, const char *member);
void set_text_close(SetText *st);


#endif
