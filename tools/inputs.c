/* inputs.c - what the flags name: the model and its tokenizer, the
 * prompt's ids, per-row lists (inputs.h). */
#define _GNU_SOURCE
#include "inputs.h"
#include "../formats/gguf.h"
#include "../kernels/kernels.h"
#include "memory.h"
#include "settings.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int load_model_and_tokenizer(const Args *a, Model *m, Tokenizer *t, int need_tokenizer, char *err) {
    const char *model_path = flag(a, "-m");
    if (!model_path) return tempo_error(err, "missing -m MODEL");
    if (tempo_model_load(m, model_path, err) != 0) return -1;
    memset(t, 0, sizeof *t);
    const char *tok_path = flag(a, "-z");
    char beside[4200]; /* a Hugging Face directory brings its tokenizer.json */
    snprintf(beside, sizeof beside, "%s/tokenizer.json", model_path);
    if (!tok_path && access(beside, R_OK) == 0) tok_path = beside;
    int from_gguf = !tok_path && tempo_model_is_gguf(m); /* a GGUF file brings its own */
    if (!tok_path && !from_gguf && need_tokenizer) {
        tempo_model_free(m);
        return tempo_error(err, "missing -z TOKENIZER (needed for --prompt)");
    }
    if (from_gguf && tempo_gguf_model_tokenizer(m, t, err) != 0) {
        tempo_model_free(m);
        return -1;
    }
    if (tok_path && tempo_tokenizer_load(t, tok_path, m->config.vocab_size, err) != 0) {
        tempo_model_free(m);
        return -1;
    }
    return 0;
}

/* --threads N (parsed and range-checked by the flag parser). */
void apply_threads(const Args *a) {
    tempo_set_threads(flag(a, "--threads") ? (int)flag_number(a, "--threads", 0) : 0);
}

int encode_text(const Tokenizer *t, const char *text, int seq_len, int **ids, int *n, char *err) {
    int cap = (int)strlen(text) + TEMPO_ENCODE_EXTRA;
    *ids = malloc((size_t)cap * sizeof(int));
    if (!*ids) return tempo_error(err, "out of memory");
    int rc = tempo_encode(t, text, *ids, cap, n, err);
    if (rc == 0 && *n > seq_len)
        rc = tempo_error(err, "prompt of %d tokens is longer than the context (seq_len %d)", *n, seq_len);
    if (rc != 0) {
        free(*ids);
        *ids = NULL;
    }
    return rc;
}

int prompt_ids(const Args *a, const Model *m, const Tokenizer *t, int **ids, int *n, char *err) {
    const char *tokens = flag(a, "--tokens"), *prompt = flag(a, "--prompt");
    if (tokens && prompt) return tempo_error(err, "give --prompt or --tokens, not both");
    if (tokens) return tempo_parse_int_list(tokens, "--tokens", ids, n, err);
    if (!prompt) return tempo_error(err, "missing --prompt TEXT or --tokens IDS");
    if (!t->pieces) return tempo_error(err, "missing -z TOKENIZER (needed for --prompt)");
    return encode_text(t, prompt, m->config.seq_len, ids, n, err);
}

int row_list(const Args *a, const char *name, int n, const int *fallback, int **out, char *err) {
    if (flag(a, name)) {
        int count;
        if (tempo_parse_int_list(flag(a, name), name, out, &count, err) != 0) return -1;
        if (count != n) return tempo_error(err, "%s has %d entries for %d tokens", name, count, n);
        return 0;
    }
    *out = malloc((size_t)n * sizeof(int));
    if (!*out) return tempo_error(err, "out of memory");
    for (int i = 0; i < n; i++) (*out)[i] = fallback ? fallback[i] : i;
    return 0;
}

int attention_keep_from_flags(const Args *a, const Config *c, int n_rows, AttentionKeep *keep, char *err) {
    memset(keep, 0, sizeof *keep);
    const char *names[3] = {"--attention-layers", "--attention-heads", "--attention-rows"};
    int bounds[3] = {c->n_layers, c->n_heads, n_rows};
    const int **lists[3] = {&keep->layers, &keep->heads, &keep->rows};
    int *counts[3] = {&keep->n_layers, &keep->n_heads, &keep->n_rows};
    for (int i = 0; i < 3; i++) {
        if (!flag(a, names[i])) continue;
        if (flag(a, "--no-attention"))
            return tempo_error(err, "%s chooses the attention kept: it cannot be combined with --no-attention", names[i]);
        if (strcmp(flag(a, names[i]), "all") == 0) continue; /* a NULL list: every one */
        int *list;
        if (tempo_parse_index_set(flag(a, names[i]), names[i], bounds[i], &list, counts[i], err) != 0) {
            attention_keep_free(keep);
            return -1;
        }
        *lists[i] = list;
    }
    return 0;
}

int generation_keep_from_flags(const Args *a, const Config *c, GenConfig *g, int n_prompt, AttentionKeep *keep,
                               char *err) {
    const char *names[4] = {"--attention-layers", "--attention-heads", "--attention-rows", "--no-attention"};
    memset(keep, 0, sizeof *keep);
    for (int i = 0; i < 4; i++)
        if (flag(a, names[i]) && !flag(a, "--trace"))
            return tempo_error(err, "%s chooses the attention --trace keeps; give --trace FILE", names[i]);
    g->keep_logits = flag(a, "--trace") != NULL; /* only a trace needs every row's logits, and the attention it keeps */
    g->capture_attention = g->keep_logits && !flag(a, "--no-attention");
    g->attention_keep = keep;
    int max_rows = tempo_generation_capacity(g, c, n_prompt); /* rows past the run's end are never reached */
    if (attention_keep_from_flags(a, c, max_rows, keep, err) != 0) return -1;
    if (flag(a, "--attention-rows") || !g->capture_attention) return 0;
    if (max_rows == n_prompt) return g->capture_attention = 0, 0; /* the prompt fills the context: no row generated */
    int *rows = malloc((size_t)(max_rows - n_prompt) * sizeof(int)); /* default: the generated rows, not the prompt's */
    if (!rows) return attention_keep_free(keep), tempo_error(err, "out of memory");
    for (int i = n_prompt; i < max_rows; i++) rows[i - n_prompt] = i;
    keep->rows = rows, keep->n_rows = max_rows - n_prompt;
    return 0;
}

void attention_keep_free(AttentionKeep *keep) {
    free((void *)keep->layers);
    free((void *)keep->heads);
    free((void *)keep->rows);
    memset(keep, 0, sizeof *keep);
}

size_t attention_kept_values(const AttentionKeep *keep, const Config *c, int n_rows) {
    size_t layers = keep->layers ? keep->n_layers : c->n_layers, heads = keep->heads ? keep->n_heads : c->n_heads;
    size_t rows = keep->rows ? keep->n_rows : n_rows;
    return layers * heads * rows * n_rows;
}

int apply_numerics(const Args *a, const Trace *t, Model *m, Numerics *used, char *err) {
    GenConfig g;
    unsigned present = 0, given = 0;
    tempo_gen_defaults(&g, &m->config);
    if (t && settings_from_trace(t, &m->config, &g, &present, err) != 0) return -1;
    if (settings_read_flags(a, &m->config, &g, &given, err) != 0) return -1;
    if (g.numerics.profile != NUMERICS_GGML) { /* the trace's engine settings, which only ggml follows */
        if (!(given & SETTING_BIT(SET_KV_TYPE))) g.numerics.kv_f16 = 0;
        if (!(given & SETTING_BIT(SET_FLASH_ATTN))) g.numerics.flash_attn = 0;
        if (!(given & SETTING_BIT(SET_REPACK))) g.numerics.repack_off = 0;
    }
    *used = g.numerics;
    return tempo_model_set_numerics(m, used, err);
}

int numerics_to_trace(Trace *t, const Numerics *n, char *err) {
    if (tempo_trace_meta(t, "numerics", setting_choice(SET_NUMERICS, n->profile), err) != 0 ||
        tempo_trace_meta(t, "kv_type", setting_choice(SET_KV_TYPE, n->kv_f16), err) != 0)
        return -1;
    if (tempo_trace_meta(t, "flash_attn", setting_choice(SET_FLASH_ATTN, n->flash_attn), err) != 0) return -1;
    return tempo_trace_meta(t, "repack", setting_choice(SET_REPACK, n->repack_off), err);
}

int trace_mask_from_flags(const Args *a, TraceMaskForm *form, char *err) {
    const char *v = flag(a, "--trace-mask");
    *form = v && strcmp(v, "rule") == 0 ? TRACE_MASK_RULE : TRACE_MASK_BITS;
    if (v && strcmp(v, "rule") != 0 && strcmp(v, "bits") != 0) return tempo_error(err, "--trace-mask must be bits or rule, got '%s'", v);
    if (v && !flag(a, "--trace")) return tempo_error(err, "--trace-mask says how --trace stores the mask: give --trace too");
    return 0;
}
