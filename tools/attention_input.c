/* attention_input.c - what tempo attention reads: a trace from any
 * engine, or a fresh run of a model; the request (--heatmap, --rows,
 * --row) checked against it; a label for every row (attention_input.h). */
#include "attention_input.h"
#include "audit.h"
#include "inputs.h"
#include "memory.h"
#include "pictures.h"
#include "settings.h"
#include "trace_diff.h" /* check_trace_model: -m against the model the trace names, as verify checks it */
#include "../kernels/kernels.h"

#include <stdlib.h>
/* The most rows whose rule mask the pictures make dense (256 MB a mask layer). */
enum { ATTENTION_DENSE_ROWS = 16384 };
#include <string.h>

static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

/* Flags that do nothing for this input are refused rather than dropped. */
static int attention_unused_flags(const Args *a, int from_trace, char *err) {
    static const char *const for_trace[] = {"-m", "-z", "--json", "--threads", "--heatmap", "--rows", "--svg", "--svg-grid",
                                            "--row", "--svg-pair", NULL};
    for (int i = 0; i < a->n; i++) {
        if (from_trace && !in_list(a->v[i].spec->name, for_trace))
            return tempo_error(err, "%s applies to a fresh run (-p PROMPT), not to a trace already written", a->v[i].typed);
    }
    return 0;
}

int attention_request(const Args *a, AttentionRequest *r, char *err) {
    const char *v;
    memset(r, 0, sizeof *r);
    if ((v = flag(a, "--heatmap")) &&
        tempo_parse_int_pair(v, ':', "--heatmap", "LAYER:HEAD, two numbers from 0", 0, &r->layer, &r->head, err) != 0)
        return -1;
    if ((v = flag(a, "--rows"))) {
        if (tempo_parse_range(v, "--rows", 0, INT_MAX - 1, &r->r0, &r->r1, err) != 0) return -1;
        r->r1++;
        r->have_rows = 1;
    }
    v = flag(a, "--row");
    r->row = (int)flag_number(a, "--row", 0); /* parsed and range-checked by the flag parser */
    r->have_row = v != NULL;
    if (r->have_row && !flag(a, "--svg-grid")) return tempo_error(err, "--row chooses the query of --svg-grid; give --svg-grid FILE");
    if (r->have_rows && !flag(a, "--heatmap") && !flag(a, "--svg") && !flag(a, "--svg-pair"))
        return tempo_error(err, "--rows chooses the rows of --heatmap, --svg or --svg-pair; give one of them");
    if (flag(a, "--svg-pair") && !flag(a, "-m"))
        return tempo_error(err, "--svg-pair needs -m MODEL: it recomputes the rows under both masks");
    int have_prompt = flag(a, "--prompt") || flag(a, "--tokens");
    if (a->n_positional > 1 || (a->n_positional == 1) == have_prompt)
        return tempo_error(err, "give one TRACE, or -m MODEL -z TOK -p PROMPT for a fresh run");
    return attention_unused_flags(a, a->n_positional == 1, err);
}

/* The request against the data: layers and heads (n < 0: rows not known yet). */
static int attention_request_fits(const AttentionRequest *r, int n_layers, int n_heads, int n, char *err) {
    if (r->layer >= n_layers || r->head >= n_heads)
        return tempo_error(err, "--heatmap %d:%d is out of range: layers 0-%d, heads 0-%d", r->layer, r->head, n_layers - 1,
                           n_heads - 1);
    if (n >= 0 && r->have_rows && r->r1 > n)
        return tempo_error(err, "--rows %d-%d is out of range: the run has rows 0-%d", r->r0, r->r1 - 1, n - 1);
    if (n >= 0 && r->have_row && r->row >= n)
        return tempo_error(err, "--row %d is out of range: the run has rows 0-%d", r->row, n - 1);
    return 0;
}

/* -z without -m: the vocabulary size comes from the trace. */
static int attention_tokenizer(const Args *a, AttentionInput *in, char *err) {
    const char *vocab = tempo_trace_meta_get(&in->tr, "vocab_size");
    const Tensor *logits = tempo_trace_get(&in->tr, "logits");
    int size = 0;
    if (vocab && tempo_parse_int(vocab, "trace metadata vocab_size", 1, 1 << 24, &size, err) != 0) return -1;
    if (!vocab && logits && logits->ndim == 2) size = (int)logits->shape[1];
    if (size <= 0) return tempo_error(err, "-z needs the vocabulary size, which the trace does not record; give -m MODEL too");
    return tempo_tokenizer_load(&in->t, flag(a, "-z"), size, err);
}

static int attention_from_trace(const Args *a, const AttentionRequest *r, AttentionInput *in, char *err) {
    if (tempo_trace_read(&in->tr, a->positional[0], err) != 0) return -1;
    if (tempo_trace_dense_mask(&in->tr, ATTENTION_DENSE_ROWS, err) != 0) return -1; /* a rule: its cells, for the pictures */
    if (attention_view_from_trace(&in->tr, &in->v, &in->n_prompt, err) != 0) return -1;
    if (attention_request_fits(r, in->v.n_layers, in->v.n_heads, in->v.n, err) != 0) return -1;
    if (!flag(a, "-m")) return flag(a, "-z") ? attention_tokenizer(a, in, err) : 0;
    if (load_model_and_tokenizer(a, &in->m, &in->t, 0, err) != 0) return -1;
    if (check_trace_model(&in->tr, &in->m, a->positional[0], err) != 0) return -1; /* the dimensions its metadata gives */
    const Config *c = &in->m.config;
    if (c->n_layers != in->v.n_layers || c->n_heads != in->v.n_heads)
        return tempo_error(err, "the trace has %d layers x %d heads but %s has %d x %d", in->v.n_layers, in->v.n_heads,
                           flag(a, "-m"), c->n_layers, c->n_heads);
    for (int i = 0; i < in->v.n; i++)
        if (in->v.tokens[i] < 0 || in->v.tokens[i] >= c->vocab_size)
            return tempo_error(err, "trace token %d at row %d is outside the vocabulary of %s (%d)", in->v.tokens[i], i,
                               flag(a, "-m"), c->vocab_size);
    Numerics numerics; /* --svg-pair recomputes the rows: with the trace's numerics unless flags say otherwise */
    return apply_numerics(a, &in->tr, &in->m, &numerics, err);
}

/* The view of a fresh run: its rows, and its masks and attention made dense. */
static int view_of_generation(AttentionInput *in, char *err) {
    const Generation *gen = &in->gen;
    const Config *c = &in->m.config;
    AttentionKeep kept;
    in->allowed = tempo_generation_allowed(gen);
    in->attention = tempo_generation_attention(gen, c, &kept);
    if (!in->allowed || !in->attention) return tempo_error(err, "out of memory for the attention of %d rows", gen->n_rows);
    in->v = (AttentionView){.n = gen->n_rows, .n_layers = c->n_layers, .n_heads = c->n_heads, .tokens = gen->tokens,
                            .positions = gen->positions, .sets = gen->sets, .pruned = gen->pruned,
                            .attention = in->attention, .keep = kept, .allowed = in->allowed, .mask_layers = gen->mask_layers,
                            .model = ""};
    in->n_prompt = gen->n_prompt;
    return 0;
}

/* Bytes a fresh run holds: the generation keeping every row's attention
 * (tempo_generation_bytes, with its trace), then the view's dense copies:
 * the attention [L][H][n][n] and the mask [mask layers][n][n]. */
static size_t fresh_run_bytes(const Model *m, const GenConfig *g, int n_prompt) {
    const Config *c = &m->config;
    size_t n = (size_t)tempo_generation_capacity(g, c, n_prompt);
    size_t mask_layers = (size_t)tempo_mask_layers(g, c);
    return tempo_generation_bytes(m, g, n_prompt, 1) + ((size_t)c->n_layers * c->n_heads * sizeof(float) + mask_layers) * n * n;
}

/* A fresh run of the model; --trace also writes it as a trace. */
static int attention_fresh_run(const Args *a, const AttentionRequest *r, AttentionInput *in, char *err) {
    GenConfig g;
    int *prompt = NULL, n_prompt = 0;
    if (load_model_and_tokenizer(a, &in->m, &in->t, flag(a, "--prompt") != NULL, err) != 0) return -1;
    const Config *c = &in->m.config;
    if (attention_request_fits(r, c->n_layers, c->n_heads, -1, err) != 0 || settings_from_flags(a, c, &g, err) != 0 ||
        tempo_model_set_numerics(&in->m, &g.numerics, err) != 0 || prompt_ids(a, &in->m, &in->t, &prompt, &n_prompt, err) != 0)
        return -1;
    g.capture_attention = 1;
    g.keep_logits = flag(a, "--trace") != NULL; /* only a trace needs every row's logits */
    int rc = tempo_memory_check(fresh_run_bytes(&in->m, &g, n_prompt), "this attention run",
                                "shrink it with fewer --max-tokens or a shorter prompt", err);
    if (rc == 0) rc = tempo_generate(&in->m, prompt, n_prompt, &g, &in->gen, err);
    free(prompt);
    if (rc != 0) return -1;
    TraceMaskForm form;
    if (trace_mask_from_flags(a, &form, err) != 0) return -1;
    if (flag(a, "--trace")) {
        if (tempo_generation_trace(&in->gen, &in->m, form, &in->tr, err) != 0 || audit_put_settings(&in->tr, &g, c, err) != 0 ||
            tempo_trace_write(&in->tr, flag(a, "--trace"), err) != 0)
            return -1;
    }
    if (view_of_generation(in, err) != 0) return -1;
    return attention_request_fits(r, c->n_layers, c->n_heads, in->v.n, err);
}

int attention_request_rows(const Args *a, const AttentionRequest *r, const AttentionView *v, int *r0, int *r1, int *row,
                           char *err) {
    const AttentionKeep *kp = &v->keep;
    int first = kp->rows ? kp->rows[0] : 0, last = kp->rows ? kp->rows[kp->n_rows - 1] : v->n - 1;
    *r0 = r->have_rows ? r->r0 : first, *r1 = r->have_rows ? r->r1 : last + 1; /* default: the rows held */
    *row = r->have_row ? r->row : last;
    if ((flag(a, "--heatmap") || flag(a, "--svg")) && attention_require(v, r->layer, r->head, *r0, *r1, err) != 0) return -1;
    return flag(a, "--svg-grid") ? attention_require(v, -1, -1, *row, *row + 1, err) : 0;
}

/* The trace or the run, its view, and a label for every row. */
int attention_load(const Args *a, const AttentionRequest *r, AttentionInput *in, char *err) {
    TraceMaskForm form;
    if (trace_mask_from_flags(a, &form, err) != 0) return -1; /* --trace-mask without --trace: refused before loading */
    if ((a->n_positional == 1 ? attention_from_trace(a, r, in, err) : attention_fresh_run(a, r, in, err)) != 0) return -1;
    if (!in->v.model[0] && tempo_model_path(&in->m)[0]) { /* a trace without a model name: the one given */
        snprintf(in->model_name, sizeof in->model_name, "%s", tempo_model_name(&in->m));
        in->v.model = in->model_name;
    }
    in->labels = calloc((size_t)in->v.n, sizeof(char *));
    if (!in->labels) return tempo_error(err, "out of memory");
    for (int i = 0; i < in->v.n; i++)
        if (!(in->labels[i] = token_label(&in->t, i ? in->v.tokens[i - 1] : -1, in->v.tokens[i])))
            return tempo_error(err, "out of memory");
    return 0;
}

void attention_input_free(AttentionInput *in) {
    for (int i = 0; in->labels && i < in->v.n; i++) free(in->labels[i]);
    free(in->labels);
    tempo_trace_free(&in->tr);
    free(in->allowed);
    free(in->attention);
    tempo_generation_free(&in->gen);
    tempo_tokenizer_free(&in->t);
    tempo_model_free(&in->m);
}

/* --svg-pair: the view's rows under both masks, drawn side by side. */
int attention_pair_picture(const char *path, const AttentionInput *in, int l, int h, int r0, int r1, char *err) {
    AttentionView iso, vis;
    void *buffers;
    if (attention_pair(&in->m, &in->v, &iso, &vis, &buffers, err) != 0) return -1;
    int rc = pair_svg(path, &iso, &vis, (const char *const *)in->labels, l, h, r0, r1, err);
    free(buffers);
    return rc;
}
