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
/* --attention-layers, --attention-heads, --attention-rows (indices and
 * ranges "0,2,5-7"): the attention a forward keeps over n_rows rows (a list
 * NULL: all). Free with attention_keep_free. */
int attention_keep_from_flags(const Args *a, const Config *c, int n_rows, AttentionKeep *keep, char *err);
void attention_keep_free(AttentionKeep *keep);
/* What generate keeps for its trace (--trace; --no-attention and the same
 * flags, over the rows the run can reach): sets g's keep_logits,
 * capture_attention and attention_keep (= keep). Without --attention-rows:
 * the generated rows (from n_prompt on; none: nothing captured), never the
 * prompt's n_prompt x n_prompt; "--attention-rows all" keeps every row. */
int generation_keep_from_flags(const Args *a, const Config *c, GenConfig *g, int n_prompt, AttentionKeep *keep,
                               char *err);
/* --trace-mask bits|rule: the form a generation's trace stores its mask in (default bits). */
int trace_mask_from_flags(const Args *a, TraceMaskForm *form, char *err);
/* Floats of the kept attention of a forward over n_rows rows. */
size_t attention_kept_values(const AttentionKeep *keep, const Config *c, int n_rows);

/* The numerics a command computes with: the trace's metadata (t may be
 * NULL), then the flags (--numerics, --kv-type, --flash-attn, --repack); given
 * to the model. A trace's cache type, flash attention and repack describe its engine
 * and count only under ggml; given as flags with another profile they are
 * an error. *used gets the profile. */
int apply_numerics(const Args *a, const Trace *t, Model *m, Numerics *used, char *err);
/* The profile as trace metadata (numerics, kv_type, flash_attn, repack). */
int numerics_to_trace(Trace *t, const Numerics *n, char *err);

#endif
