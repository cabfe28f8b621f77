/* inputs.h - what a command's flags name: the model (-m) and its tokenizer
 * (-z, or the one a Hugging Face directory or GGUF file brings), the
 * prompt (--prompt or --tokens), per-row lists (--positions, --sets). */
#ifndef TEMPO_INPUTS_H
#define TEMPO_INPUTS_H

#include "flags.h"

int load_model_and_tokenizer(const Args *a, Model *m, Tokenizer *t, int need_tokenizer, char *err);
/* --threads N. */
void apply_threads(const Args *a);
/* BOS + the encoded text, at most seq_len ids. The caller frees *ids. */
int encode_text(const Tokenizer *t, const char *text, int seq_len, int **ids, int *n, char *err);
/* Prompt ids from --tokens (a list or @FILE) or --prompt (BOS + encoded text). The caller frees *ids. */
int prompt_ids(const Args *a, const Model *m, const Tokenizer *t, int **ids, int *n, char *err);
/* The per-row list of flag `name` (n entries; a list or @FILE), else a copy
 * of `fallback`, else 0..n-1. The caller frees *out. */
int row_list(const Args *a, const char *name, int n, const int *fallback, int **out, char *err);

#endif
