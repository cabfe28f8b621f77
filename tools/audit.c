/* audit.c - tempo audit: judges an engine's TEMPO run from its trace.
 * verify proves the arithmetic of the rows a trace holds; the audit asks
 * whether those rows, masks and selections are the ones TEMPO prescribes:
 * rows matched to the engine's selections (by order and token), masks
 * recomputed for the rows as fed, selections recomputed from the trace's
 * own logits, and a replay by tempo_generate. NOTES.md, "The audit". */
#define _GNU_SOURCE
#include "audit.h"
#include "printing.h" /* SetText: a set cut at a member, always closed */
#include "settings.h"
#include "trace_diff.h" /* value_gap: a NaN in the trace is an infinite gap (the recomputation is finite) */

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* Settings: flags first, then the trace's metadata                       */
/* ===================================================================== */

void audit_settings_init(AuditSettings *s, const Config *c) {
    memset(s, 0, sizeof *s);
    s->mode = -1;
    s->threshold = -1.0f;
    s->max_width = -1;
    s->n_prompt = -1;
    s->next_from = -1;
    s->atol = 1e-4f;
    tempo_gen_defaults(&s->gen, c);
    s->gen.max_steps = 0; /* unknown: the trace's step count */
}

/* The settings known so far, completed with defaults, by tempo_gen_validate
 * (the one rule of their ranges); `source` names where they came from. */
int audit_settings_check(const AuditSettings *s, const Config *c, const char *source, char *err) {
    GenConfig g = s->gen;
    if (s->mode >= 0) g.mode = (MaskKind)s->mode;
    if (s->threshold > 0) g.threshold = s->threshold;
    if (s->max_width >= 0) g.max_width = s->max_width;
    if (s->next_from >= 0) g.next_from = (NextFrom)s->next_from;
    if (g.max_steps < 1) g.max_steps = 1; /* unknown: the trace's steps */
    if (tempo_gen_validate(&g, c, err) == 0) return 0;
    if (source[0]) {
        char why[TEMPO_ERR_SIZE];
        snprintf(why, sizeof why, "%s", err);
        return tempo_error(err, "%s: %s", source, why);
    }
    return -1;
}

/* Every setting the trace's metadata names (settings.c's codec); the flags'
 * mode, threshold, max_width and next_from win. */
int audit_settings_from_trace(AuditSettings *s, const Trace *t, const Config *c, char *err) {
    GenConfig g = s->gen;
    unsigned present;
    if (settings_from_trace(t, c, &g, &present, err) != 0) return -1;
    if (s->mode < 0 && (present & SETTING_BIT(SET_MODE))) s->mode = g.mode;
    if (s->threshold <= 0 && (present & SETTING_BIT(SET_THRESHOLD))) s->threshold = g.threshold;
    if (s->max_width < 0 && (present & SETTING_BIT(SET_MAX_WIDTH))) s->max_width = g.max_width;
    if (s->next_from < 0 && (present & SETTING_BIT(SET_NEXT_FROM))) s->next_from = g.next_from;
    s->gen = g;
    const char *np = tempo_trace_meta_get(t, "n_prompt");
    if (np && s->n_prompt < 0 && tempo_parse_int(np, "trace metadata n_prompt", 1, 1 << 20, &s->n_prompt, err) != 0)
        return -1;
    return audit_settings_check(s, c, "trace metadata", err);
}

int audit_put_settings(Trace *t, const GenConfig *g, const Config *c, char *err) {
    (void)c;
    if (settings_to_trace(t, g, err) != 0) return -1;
    return tempo_trace_meta(t, "engine", "tempo", err);
}

/* ===================================================================== */
/* The trace as the checks see it                                        */
/* ===================================================================== */

typedef struct {
    const Model *m;
    const AuditSettings *s;
    AuditReport *r;
    int n, P, S, W, V, mask_layers;
    int first_pos; /* P + position_gap: step s's rows sit at first_pos + s */
    const int *tokens, *positions, *pruned, *selected; /* pruned, selected may be NULL */
    const uint8_t *allowed;                            /* [mask_layers][n][n]; NULL: stored as the rule */
    uint8_t *rule_cells;                               /* the rule's cells, when the audit built them (owned) */
    const char *mask_kinds;                            /* the rule's kinds (trace metadata mask_kinds) */
    TraceLogits logits;                                /* every row's, the kept rows' or none */
    const float *selected_probs;                       /* may be NULL */
    int *row_step;   /* [n] the step a row falls in; -1 for the prompt */
    int *row_member; /* [n] its member index in that step; -1 prompt or unexpected */
    int *member_row; /* [S][W] the row of each selected member; -1 not fed */
    int *step_first; /* [S] the first row matched to each step; -1 none */
} Audit;

static int add_finding(AuditReport *r, const char *kind, int row, int key, int step, int token, const char *fmt, ...) {
    char err[TEMPO_ERR_SIZE];
    if (tempo_grow((void **)&r->findings, &r->cap_findings, (size_t)r->n_findings + 1, sizeof(AuditFinding), err) != 0)
        return -1;
    AuditFinding *f = &r->findings[r->n_findings++];
    *f = (AuditFinding){kind, row, key, step, token, ""};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    return 0;
}

/* An optional tensor: NULL when absent; an error when present with another dtype or shape. */
static const Tensor *optional_tensor(const Trace *t, const char *name, DType dt, int ndim, int64_t d0, int64_t d1,
                                     char *err) {
    const Tensor *x = tempo_trace_get(t, name);
    if (!x) return NULL;
    int ok = x->dtype == dt && x->ndim == ndim && (d0 < 0 || x->shape[0] == d0) && (ndim < 2 || d1 < 0 || x->shape[1] == d1);
    if (!ok) tempo_error(err, "trace tensor %s has the wrong dtype or shape", name);
    return ok ? x : NULL;
}

/* A mask stored as the rule, over up to AUDIT_RULE_ROWS rows: its cells, built from the trace's own sets,
 * kinds and pruned rows, so that the mask check compares them cell by cell with the sets the audit
 * matched (a rule over sets that lie cannot disagree with itself, but it can with those). */
enum { AUDIT_RULE_ROWS = 2048 };
static int rule_cells(Audit *a, const Trace *t, char *err) {
    TraceMask tm;
    if (!tempo_trace_meta_get(t, "mask") || a->n > AUDIT_RULE_ROWS) return 0;
    if (tempo_trace_mask(t, &a->m->config, a->n, &tm, err) != 0) return -1;
    a->rule_cells = tempo_mask_to_dense(&tm.mask, a->n);
    a->mask_layers = tm.mask.layers;
    tempo_trace_mask_free(&tm);
    if (!a->rule_cells) return tempo_error(err, "out of memory for the cells of a %d-row mask", a->n);
    a->allowed = a->rule_cells;
    return 0;
}

static int audit_open(Audit *a, const Model *m, const Trace *t, const AuditSettings *s, AuditReport *r, char *err) {
    memset(a, 0, sizeof *a);
    a->m = m, a->s = s, a->r = r, a->V = m->config.vocab_size;
    if (tempo_trace_inputs(t, &m->config, &a->n, &a->mask_layers, err) != 0) return -1;
    a->tokens = tempo_trace_get(t, "tokens")->data;
    a->positions = tempo_trace_get(t, "positions")->data;
    a->allowed = tempo_trace_get(t, "allowed") ? tempo_trace_get(t, "allowed")->data : NULL; /* NULL: the rule */
    a->mask_kinds = tempo_trace_meta_get(t, "mask_kinds");
    if (!a->allowed && rule_cells(a, t, err) != 0) return -1;
    if (tempo_trace_logits(t, a->n, a->V, &a->logits, err) != 0) return -1;
    err[0] = '\0';
    const Tensor *pr = optional_tensor(t, "pruned", DT_I32, 1, a->n, -1, err);
    const Tensor *sel = optional_tensor(t, "selected", DT_I32, 2, -1, -1, err);
    const Tensor *sp = sel ? optional_tensor(t, "selected_probs", DT_F32, 2, sel->shape[0], sel->shape[1], err) : NULL;
    if (err[0]) return -1;
    a->pruned = pr ? pr->data : NULL;
    a->selected = sel ? sel->data : NULL;
    a->selected_probs = sp ? sp->data : NULL;
    a->S = sel ? (int)sel->shape[0] : 0;
    a->W = sel ? (int)sel->shape[1] : 0;
    a->P = s->n_prompt;
    a->first_pos = a->P + s->gen.position_gap;
    if (a->P > a->n) return tempo_error(err, "n_prompt %d exceeds the trace's %d rows", a->P, a->n);
    for (int i = 0; a->selected && i < a->S * a->W; i++)
        if (a->selected[i] < -1 || a->selected[i] >= a->V)
            return tempo_error(err, "trace selected holds token %d, outside the vocabulary of %d", a->selected[i], a->V);
    size_t steps = (size_t)(a->S > a->n ? a->S : a->n) + 1;
    a->row_step = malloc((size_t)a->n * sizeof(int));
    a->row_member = malloc((size_t)a->n * sizeof(int));
    a->member_row = malloc(((size_t)a->S * a->W + 1) * sizeof(int));
    a->step_first = malloc(steps * sizeof(int));
    if (!a->row_step || !a->row_member || !a->member_row || !a->step_first)
        return tempo_error(err, "out of memory auditing a %d-row trace", a->n);
    for (int i = 0; i < a->n; i++) a->row_step[i] = a->row_member[i] = -1;
    for (int i = 0; i < a->S * a->W; i++) a->member_row[i] = -1;
    for (size_t i = 0; i < steps; i++) a->step_first[i] = -1;
    return 0;
}

static void audit_close(Audit *a) {
    free(a->rule_cells);
    free(a->row_step);
    free(a->row_member);
    free(a->member_row);
    free(a->step_first);
}

static int step_width(const Audit *a, int s) {
    int w = 0;
    while (w < a->W && a->selected[s * a->W + w] >= 0) w++;
    return w;
}

/* ===================================================================== */
/* Arithmetic, as verify does it                                          */
/* ===================================================================== */

/* How many rows from row `first` the engine decoded in one call: the
 * prompt (n_prompt rows) as one call, then each run of rows of one set. */
static int engine_call_rows(const Trace *t, int n, int n_prompt, int first) {
    if (first < n_prompt) return n_prompt - first;
    const Tensor *sets = tempo_trace_get(t, "sets");
    const int *set = sets && sets->dtype == DT_I32 && sets->shape[0] == n ? sets->data : tempo_trace_get(t, "positions")->data;
    int k = 1;
    while (first + k < n && set[first + k] == set[first]) k++;
    return k;
}

/* The kept rows among rows first..first+k-1: how many, and *before: how many come earlier. */
static int kept_in_call(const AttentionKeep *keep, int first, int k, int *before) {
    if (!keep->rows) return *before = first, k;
    int in = 0;
    *before = 0;
    for (int i = 0; i < keep->n_rows; i++) *before += keep->rows[i] < first, in += keep->rows[i] >= first && keep->rows[i] < first + k;
    return in;
}

/* One call's kept probabilities ([layers][heads][kept][n_keys]) into the
 * whole trace's ([layers][heads][rows][n], zero past n_keys: keys not yet cached). */
static void place_call_attention(const float *call, int slots, int kept, int n_keys, float *all, int rows, int before, int n) {
    for (int lh = 0; lh < slots; lh++)
        for (int r = 0; r < kept; r++) {
            float *dst = all + ((size_t)lh * rows + before + r) * n;
            memcpy(dst, call + ((size_t)lh * kept + r) * n_keys, (size_t)n_keys * sizeof(float));
            memset(dst + n_keys, 0, (size_t)(n - n_keys) * sizeof(float));
        }
}

/* The forward pass in the engine's calls (kernels whose order depends on a
 * call's rows: Kernels.by_call); the logits of every row and, when asked
 * (attention non-NULL), the kept probabilities in the whole trace's layout. */
static int forward_by_call(const Model *m, const Trace *t, int n, int n_prompt, const Mask *mask, float *logits,
                           float *attention, const AttentionKeep *keep, char *err) {
    State s;
    if (tempo_state_init(&s, &m->config, n, err) != 0) return -1;
    const int *tokens = tempo_trace_get(t, "tokens")->data, *positions = tempo_trace_get(t, "positions")->data;
    int slots = (keep->layers ? keep->n_layers : m->config.n_layers) * (keep->heads ? keep->n_heads : m->config.n_heads);
    int rows = keep->rows ? keep->n_rows : n, rc = 0;
    float *call = attention ? malloc((size_t)slots * n * n * sizeof(float)) : NULL;
    if (attention && !call) rc = tempo_error(err, "out of memory for a %d-row trace", n);
    for (int first = 0, k; first < n && rc == 0; first += k) {
        k = engine_call_rows(t, n, n_prompt, first);
        int before, kept = attention ? kept_in_call(keep, first, k, &before) : 0;
        Outputs out = {.logits = logits + (size_t)first * m->config.vocab_size, .attention = kept ? call : NULL, .keep = keep};
        rc = tempo_forward(m, &s, k, tokens + first, positions + first, mask, out, err);
        if (rc == 0 && kept) place_call_attention(call, slots, kept, first + k, attention, rows, before, n);
    }
    free(call);
    tempo_state_free(&s);
    return rc;
}

int trace_recompute_prompt(const Model *m, const Trace *t, int n) {
    const char *v = tempo_trace_meta_get(t, "n_prompt");
    int n_prompt = 0;
    char err[TEMPO_ERR_SIZE];
    if (!m->kernels || !m->kernels->by_call || !v || tempo_parse_int(v, "n_prompt", 1, n, &n_prompt, err) != 0)
        return 0;
    return n_prompt;
}

int trace_recompute(const Model *m, const Trace *t, int *n, float **logits, float **attention, AttentionKeep *keep,
                    char *err) {
    const Config *c = &m->config;
    int mask_layers, has_attention;
    *logits = *attention = NULL;
    if (tempo_trace_inputs(t, c, n, &mask_layers, err) != 0 ||
        (has_attention = tempo_trace_attention_keep(t, c, *n, keep, err)) < 0)
        return -1;
    size_t layers = keep->layers ? keep->n_layers : c->n_layers, heads = keep->heads ? keep->n_heads : c->n_heads;
    size_t rows = keep->rows ? keep->n_rows : *n;
    *logits = malloc((size_t)*n * c->vocab_size * sizeof(float));
    if (has_attention) *attention = malloc(layers * heads * rows * *n * sizeof(float));
    Outputs out = {.logits = *logits, .attention = *attention, .keep = keep};
    TraceMask tm; /* dense as stored, or the rule rebuilt: never made dense here */
    if (tempo_trace_mask(t, c, *n, &tm, err) != 0) {
        free(*logits);
        free(*attention);
        *logits = *attention = NULL;
        return -1;
    }
    const Mask mask = tm.mask;
    int n_prompt = trace_recompute_prompt(m, t, *n);
    int rc = !*logits || (has_attention && !*attention) ? tempo_error(err, "out of memory for a %d-row trace", *n)
             : n_prompt > 0 ? forward_by_call(m, t, *n, n_prompt, &mask, *logits, *attention, keep, err)
             : tempo_forward_full(m, *n, tempo_trace_get(t, "tokens")->data, tempo_trace_get(t, "positions")->data,
                                  &mask, out, err);
    tempo_trace_mask_free(&tm);
    if (rc != 0) {
        free(*logits);
        free(*attention);
        *logits = *attention = NULL;
    }
    return rc;
}

/* The largest |trace - recomputed| attention of row slot ri (row r) over
 * the kept layers and heads; *at: the layer-head slot * n + key. */
static double attention_gap(const float *trace_attention, const float *attention, size_t slots, size_t rows, size_t ri,
                            size_t n, size_t *at) {
    double worst = 0.0;
    for (size_t lh = 0; lh < slots; lh++)
        for (size_t k = 0; k < n; k++) {
            double d = value_gap(trace_attention[(lh * rows + ri) * n + k], attention[(lh * rows + ri) * n + k]);
            if (d > worst) worst = d, *at = lh * n + k;
        }
    return worst;
}

/* The first key row r pays attention to although the trace's own mask hides it from r (in any layer
 * and head kept): exactly 0 under any arithmetic (exp(-inf)), so a tolerance does not apply. -1: none. */
static long hidden_key_attention(const Audit *a, const float *trace_attention, const AttentionKeep *keep, size_t slots,
                                 size_t H, size_t rows, size_t ri, size_t r) {
    size_t n = a->n;
    for (size_t lh = 0; a->allowed && lh < slots; lh++) {
        size_t l = keep->layers ? (size_t)keep->layers[lh / H] : lh / H, ml = a->mask_layers > 1 ? l : 0;
        const uint8_t *allowed = a->allowed + (ml * n + r) * n;
        for (size_t k = 0; k < n; k++)
            if (!allowed[k] && trace_attention[(lh * rows + ri) * n + k] != 0.0f) return (long)(lh * n + k);
    }
    return -1;
}

/* Per row: the largest |trace - recomputed| logit, and attention over the kept layers and heads. */
static int compare_rows(Audit *a, const float *logits, const float *attention, const float *trace_attention,
                        const AttentionKeep *keep) {
    const Config *c = &a->m->config;
    size_t n = a->n, V = a->V, H = (size_t)(keep->heads ? keep->n_heads : c->n_heads);
    size_t slots = (size_t)(keep->layers ? keep->n_layers : c->n_layers) * H;
    size_t rows = keep->rows ? (size_t)keep->n_rows : n;
    for (size_t r = 0, ri = 0; r < n; r++) {
        const float *trace_logits = tempo_trace_logits_row(&a->logits, (int)r, a->V);
        double worst = 0.0;
        size_t at = 0;
        for (size_t v = 0; trace_logits && v < V; v++) {
            double d = value_gap(trace_logits[v], logits[r * V + v]);
            if (d > worst) worst = d, at = v;
        }
        if (!(worst <= a->s->atol) && add_finding(a->r, "logits-differ", (int)r, -1, a->row_step[r], a->tokens[r],
                                                  "max |dlogit| %.3g at vocabulary id %zu", worst, at) != 0)
            return -1;
        if (!trace_attention || (keep->rows && (ri >= rows || (size_t)keep->rows[ri] != r))) continue; /* not kept */
        long hidden = hidden_key_attention(a, trace_attention, keep, slots, H, rows, ri, r);
        if (hidden >= 0 && add_finding(a->r, "attention-on-hidden-key", (int)r, (int)(hidden % (long)n), a->row_step[r], a->tokens[r],
                                       "%g at layer %ld head %ld key %ld, which the trace's mask hides from this row",
                                       trace_attention[((size_t)hidden / n * rows + ri) * n + (size_t)hidden % n],
                                       (long)(keep->layers ? keep->layers[hidden / (long)n / (long)H] : hidden / (long)n / (long)H),
                                       (long)(keep->heads ? keep->heads[hidden / (long)n % (long)H] : hidden / (long)n % (long)H),
                                       hidden % (long)n) != 0)
            return -1;
        worst = attention_gap(trace_attention, attention, slots, rows, ri++, n, &at);
        size_t l = at / n / H, h = at / n % H;
        if (!(worst <= a->s->atol) &&
            add_finding(a->r, "attention-differs", (int)r, (int)(at % n), a->row_step[r], a->tokens[r],
                        "max |dattention| %.3g at layer %d head %d key %zu", worst, keep->layers ? keep->layers[l] : (int)l,
                        keep->heads ? keep->heads[h] : (int)h, (size_t)(at % n)) != 0)
            return -1;
    }
    return 0;
}

static int check_arithmetic(Audit *a, const Trace *t, char *err) {
    const Tensor *att = tempo_trace_get(t, "attention");
    if (!a->logits.n_rows && !att) {
        snprintf(a->r->checks[CHECK_ARITHMETIC], sizeof a->r->checks[0], "skipped: the trace has no logits or attention");
        return 0;
    }
    float *logits, *attention;
    AttentionKeep keep;
    int n, before = a->r->n_findings;
    if (trace_recompute(a->m, t, &n, &logits, &attention, &keep, err) != 0) return -1;
    int rc = compare_rows(a, logits, attention, attention ? att->data : NULL, &keep);
    free(logits);
    free(attention);
    if (rc != 0) return tempo_error(err, "out of memory for the findings");
    int used = snprintf(a->r->checks[CHECK_ARITHMETIC], sizeof a->r->checks[0], "%d findings (atol %g)", a->r->n_findings - before,
                        a->s->atol);
    char *line = a->r->checks[CHECK_ARITHMETIC];
    size_t size = sizeof a->r->checks[0];
    if (a->logits.n_rows < a->n || a->logits.rows)
        used += snprintf(line + used, size - used, "; logits compared on %d of %d rows%s", a->logits.n_rows, a->n,
                         a->logits.rows ? " (kept_rows)" : " (the trace has none)");
    const Config *c = &a->m->config;
    if (!att && used < (int)size) snprintf(line + used, size - used, "; no attention in the trace: not compared");
    else if ((keep.layers || keep.heads || keep.rows) && used < (int)size) /* a partial capture: what was compared */
        snprintf(line + used, size - used, "; attention compared on the %d of %d rows, %d of %d layers, %d of %d heads the trace holds",
                 keep.rows ? keep.n_rows : n, n, keep.layers ? keep.n_layers : c->n_layers, c->n_layers,
                 keep.heads ? keep.n_heads : c->n_heads, c->n_heads);
    return 0;
}

/* ===================================================================== */
/* Rows: matched to the engine's selections by order and token            */
/* ===================================================================== */

/* The index of an unfed member of step s with this token, or -1. */
static int unfed_member(const Audit *a, int s, int token) {
    for (int i = 0; i < a->W && a->selected[s * a->W + i] >= 0; i++)
        if (a->selected[s * a->W + i] == token && a->member_row[s * a->W + i] < 0) return i;
    return -1;
}

/* The step row r belongs to: the current one if its token is an unfed member
 * and it sits at the set's position; else the next step (once the current
 * one has rows) or a later one at the position offset seen so far; else the
 * current one at another position. -1: it matches no member. */
static int step_of_row(const Audit *a, int cur, int r, int offset, int *member) {
    int token = a->tokens[r], pos = a->positions[r];
    int here = cur < a->S ? unfed_member(a, cur, token) : -1;
    int has_rows = cur < a->S && a->step_first[cur] >= 0;
    if (here >= 0 && (!has_rows || pos == a->positions[a->step_first[cur]])) {
        *member = here;
        return cur;
    }
    for (int s = cur + 1; s < a->S; s++) {
        int i = unfed_member(a, s, token);
        if (i >= 0 && ((s == cur + 1 && has_rows) || pos - (a->first_pos + s) == offset)) {
            *member = i;
            return s;
        }
    }
    *member = here;
    return here >= 0 ? cur : -1;
}

/* A set's rows follow its order (most probable first, as tempo feeds it): the last row, which the
 * next set is drawn from under next_from last, is its least probable fed member. */
static int check_member_order(Audit *a, int r, int s, int member, int *last_step, int *last_member) {
    int previous = s == *last_step ? *last_member : -1;
    *last_step = s, *last_member = member;
    if (member > previous) return 0;
    return add_finding(a->r, "member-order", r, -1, s, a->tokens[r],
                       "row %d feeds member %d of step %d's set after member %d: a set is fed most probable first", r, member, s,
                       previous);
}

static int match_rows(Audit *a) {
    int cur = 0, offset = 0, last_step = -1, last_member = -1;
    for (int r = 0; r < a->n; r++) {
        a->row_step[r] = -1;
        a->row_member[r] = -1;
        if (r < a->P) continue;
        int member, s = step_of_row(a, cur, r, offset, &member);
        if (s < 0) {
            a->row_step[r] = a->S > 0 ? cur : -1;
            if (add_finding(a->r, "unexpected-row", r, -1, a->row_step[r], a->tokens[r],
                            "token %d at position %d is no member of step %d's set", a->tokens[r], a->positions[r], cur) != 0)
                return -1;
            continue;
        }
        if (check_member_order(a, r, s, member, &last_step, &last_member) != 0) return -1;
        cur = s;
        a->row_step[r] = s;
        a->row_member[r] = member;
        a->member_row[s * a->W + member] = r;
        if (a->step_first[s] < 0) a->step_first[s] = r;
        offset = a->positions[r] - (a->first_pos + s);
    }
    return 0;
}

/* Without `selected`: each run of rows at one position after the prompt is a step. */
static void infer_steps(Audit *a) {
    int s = -1;
    for (int r = 0; r < a->n; r++) {
        a->row_step[r] = -1;
        a->row_member[r] = -1;
        if (r < a->P) continue;
        if (r == a->P || a->positions[r] != a->positions[r - 1]) a->step_first[++s] = r;
        a->row_step[r] = s;
        a->row_member[r] = r - a->step_first[s];
    }
    a->S = s + 1;
}

/* position-mismatch: prompt rows off 0..P-1; a step's rows off P + gap + step, or apart. */
static int check_positions(Audit *a) {
    for (int r = 0; r < a->P; r++)
        if (a->positions[r] != r && add_finding(a->r, "position-mismatch", r, -1, -1, a->tokens[r],
                                                "prompt row %d at position %d, expected %d", r, a->positions[r], r) != 0)
            return -1;
    for (int s = 0; s < a->S; s++) {
        int first = a->step_first[s], lo = first >= 0 ? a->positions[first] : 0, hi = lo;
        if (first < 0) continue;
        for (int r = first; r < a->n; r++)
            if (a->row_step[r] == s && a->row_member[r] >= 0) {
                if (a->positions[r] < lo) lo = a->positions[r];
                if (a->positions[r] > hi) hi = a->positions[r];
            }
        int rc = 0, want = a->first_pos + s;
        if (lo != hi)
            rc = add_finding(a->r, "position-mismatch", first, -1, s, -1, "rows of step %d sit at positions %d to %d", s, lo, hi);
        else if (lo != want)
            rc = add_finding(a->r, "position-mismatch", first, -1, s, -1,
                             "rows at position %d, expected n_prompt %d + gap %d + step %d = %d (offset %+d)", lo, a->P,
                             a->s->gen.position_gap, s, want, lo - want);
        if (rc != 0) return -1;
    }
    return 0;
}

/* Every selected member has a row, except EOS: a branch that ends is never fed (NOTES §5.7). */
static int check_unfed(Audit *a) {
    for (int s = 0; s < a->S; s++) {
        int w = step_width(a, s);
        for (int i = 0; i < w; i++)
            if (a->member_row[s * a->W + i] < 0 && !tempo_is_eos(&a->m->config, a->selected[s * a->W + i]) &&
                add_finding(a->r, "selected-not-fed", -1, -1, s, a->selected[s * a->W + i], "member %d of %d (p %.4g) has no row",
                            i + 1, w, a->selected_probs ? a->selected_probs[s * a->W + i] : NAN) != 0)
                return -1;
    }
    return 0;
}

/* A row marked pruned in a run whose settings prune nothing: its hiding from later rows is no rule of TEMPO's. */
static int check_pruned_rows(Audit *a) {
    for (int r = 0; a->pruned && !a->s->gen.prune && r < a->n; r++)
        if (a->pruned[r] >= 0 && add_finding(a->r, "pruned-without-pruning", r, -1, a->row_step[r], a->tokens[r],
                                             "row %d is marked pruned at step %d, but the settings prune nothing", r,
                                             a->pruned[r]) != 0)
            return -1;
    return 0;
}

static int check_rows(Audit *a) {
    int before = a->r->n_findings;
    char *line = a->r->checks[CHECK_ROWS];
    if (a->P < 0) {
        snprintf(line, sizeof a->r->checks[0], "skipped: n_prompt unknown (give --n-prompt); rows, mask and selection need it");
        return 0;
    }
    if (a->selected) {
        if (match_rows(a) != 0 || check_unfed(a) != 0) return -1;
    } else {
        infer_steps(a);
    }
    if (check_positions(a) != 0 || check_pruned_rows(a) != 0) return -1;
    snprintf(line, sizeof a->r->checks[0], "%d findings%s", a->r->n_findings - before,
             a->selected ? "" : " (no selected tensor: steps are runs of one position, members unchecked)");
    return 0;
}

/* ===================================================================== */
/* Mask: expected for the rows as fed                                     */
/* ===================================================================== */

/* Set identity of a row: the prompt and unexpected rows stand alone, fed members share their step's. */
static int set_of(const Audit *a, int r) { return a->row_member[r] >= 0 ? a->n + a->row_step[r] : r; }

/* allowed by the specification, for the rows as fed: tempo's mask over the
 * sets the audit matched (causal; isolated: minus the other fed members of
 * q's set), and a pruned key hidden from rows of later steps. */
static void expected_mask(const Audit *a, MaskKind kind, int *sets, uint8_t *expected) {
    size_t n = a->n;
    for (size_t r = 0; r < n; r++) sets[r] = set_of(a, (int)r);
    tempo_mask_rows(kind, sets, 0, a->n, expected);
    for (size_t q = 0; a->pruned && q < n; q++)
        for (size_t k = 0; k < q; k++)
            if (a->pruned[k] >= 0 && a->row_step[q] > a->pruned[k]) expected[q * n + k] = 0;
}

static const char *cell_kind(const Audit *a, MaskKind kind, int q, int k, int trace_allows) {
    if (!trace_allows) return "hidden-non-sibling";
    if (k > q) return "visible-future";
    if (kind == MASK_ISOLATED && set_of(a, k) == set_of(a, q)) return "visible-sibling";
    return "visible-pruned";
}

static int check_layer_mask(Audit *a, int layer, MaskKind kind, int *sets, uint8_t *expected) {
    size_t n = a->n;
    const uint8_t *allowed = a->allowed + (size_t)layer * n * n;
    expected_mask(a, kind, sets, expected);
    for (size_t q = 0; q < n; q++)
        for (size_t k = 0; k < n; k++) {
            int got = allowed[q * n + k] != 0;
            if (got == expected[q * n + k]) continue;
            const char *what = cell_kind(a, kind, (int)q, (int)k, got);
            char layer_text[32] = "all layers";
            if (a->mask_layers > 1) snprintf(layer_text, sizeof layer_text, "layer %d", layer);
            if (add_finding(a->r, what, (int)q, (int)k, a->row_step[q], -1, "%s: row %zu (token %d) %s key %zu (token %d)",
                            layer_text, q, a->tokens[q], got ? "sees" : "is hidden from", k, a->tokens[k]) != 0)
                return -1;
        }
    return 0;
}

/* A mask stored as the rule cannot disagree with the rule; its kinds can with the settings. */
static int check_mask_rule(Audit *a, const GenConfig *g, char *line) {
    int layers = tempo_mask_layers(g, &a->m->config), w = 0;
    char want[64 * 10] = "";
    for (int l = 0; l < layers && w < (int)sizeof want; l++)
        w += snprintf(want + w, sizeof want - (size_t)w, "%s%s", l ? "," : "", setting_choice(SET_MODE, tempo_layer_mask_kind(g, layers, l)));
    int agree = a->mask_kinds && strcmp(a->mask_kinds, want) == 0;
    if (!agree && add_finding(a->r, "mask-rule", -1, -1, -1, -1, "the trace's mask rule has kinds %s; the settings say %s",
                              a->mask_kinds ? a->mask_kinds : "(none)", want) != 0)
        return -1;
    snprintf(line, sizeof a->r->checks[0], "%d findings: the trace stores the mask as the rule (%s), which cannot disagree with it",
             !agree, want);
    return 0;
}

static int check_mask(Audit *a) {
    char *line = a->r->checks[CHECK_MASK];
    if (a->P < 0 || a->s->mode < 0) {
        snprintf(line, sizeof a->r->checks[0], "skipped: %s unknown", a->P < 0 ? "n_prompt" : "mode (give --mode)");
        return 0;
    }
    int before = a->r->n_findings, rc = 0;
    GenConfig g = a->s->gen;
    g.mode = (MaskKind)a->s->mode;
    if (!a->allowed) return check_mask_rule(a, &g, line);
    int *sets = malloc((size_t)a->n * sizeof(int));
    uint8_t *expected = malloc((size_t)a->n * a->n);
    if (!sets || !expected) rc = -1;
    for (int l = 0; l < a->mask_layers && rc == 0; l++)
        rc = check_layer_mask(a, l, tempo_layer_mask_kind(&g, a->mask_layers, l), sets, expected);
    free(sets);
    free(expected);
    if (rc != 0) return -1;
    snprintf(line, sizeof a->r->checks[0], "%d findings (%s%s)", a->r->n_findings - before,
             setting_choice(SET_MODE, a->s->mode), a->mask_layers > 1 ? ", per layer" : "");
    return 0;
}

/* ===================================================================== */
/* Selection: tempo's rule on the trace's own logits                      */
/* ===================================================================== */

/* The row whose logits predict step s: the one before the step's first fed
 * row (before the next fed step's, or the last row, when s has none). */
static int predicting_row(const Audit *a, int s) {
    for (int t = s; t < a->S; t++)
        if (a->step_first[t] >= 0) return a->step_first[t] - 1;
    return a->n - 1;
}

/* The next-token distribution of step s, by tempo's rule over the trace's
 * rows: the live fed members of step s-1 (next_from mean), else the
 * predicting row. Returns -1, or a row it needs whose logits the trace lacks. */
static int step_distribution(const Audit *a, int s, const float **live, float *probs, float *tmp) {
    int n_live = 0, predicting = predicting_row(a, s);
    for (int r = 0; s > 0 && a->s->next_from == NEXT_MEAN && r < a->n; r++)
        if (a->row_step[r] == s - 1 && a->row_member[r] >= 0 && !(a->pruned && a->pruned[r] >= 0 && a->pruned[r] < s))
            if (!(live[n_live++] = tempo_trace_logits_row(&a->logits, r, a->V))) return r;
    const float *last = tempo_trace_logits_row(&a->logits, predicting, a->V);
    if (!last && n_live == 0) return predicting;
    tempo_next_distribution((NextFrom)a->s->next_from, live, n_live, last, a->V, probs, tmp);
    return -1;
}

/* A member of an audited set: "412 (0.2722)". */
static void add_member(SetText *st, int token, float p) {
    char item[48];
    snprintf(item, sizeof item, "%d (%.4f)", token, p);
    set_text_add(st, item);
}

/* Tokens with their probabilities in `probs` as "[412 (0.2722), 379 (0.1500), … 12 more]". */
static void format_set(char out[AUDIT_SET_TEXT], const int *tokens, int n, const float *probs) {
    SetText st;
    set_text_open(&st, out, AUDIT_SET_TEXT, n, ", ");
    for (int i = 0; i < n; i++) add_member(&st, tokens[i], probs[tokens[i]]);
    set_text_close(&st);
}

static int compare_selection(Audit *a, int s, const float *probs, int *chosen) {
    GenConfig g = a->s->gen;
    g.threshold = a->s->threshold;
    g.max_width = a->s->max_width;
    if (g.max_steps <= 0) g.max_steps = a->S;
    int n = tempo_choose_set(probs, a->V, tempo_threshold_at(&g, s), &g, chosen);
    int w = step_width(a, s), same = w == n;
    for (int i = 0; same && i < n; i++) same = chosen[i] == a->selected[s * a->W + i];
    if (same) return 0;
    char engine[AUDIT_SET_TEXT], mine[AUDIT_SET_TEXT];
    format_set(engine, a->selected + (size_t)s * a->W, w, probs);
    format_set(mine, chosen, n, probs);
    return add_finding(a->r, "selection-differs", predicting_row(a, s), -1, s, -1, "engine %s, tempo %s", engine, mine);
}

/* The selection check's line: findings over the steps checked, and each step
 * left unchecked because a row it is predicted from has no logits. */
static void selection_line(Audit *a, int found, int checked, const int *unchecked, const int *unchecked_row) {
    char *line = a->r->checks[CHECK_SELECTION];
    size_t len = sizeof a->r->checks[0];
    int used = snprintf(line, len, "%d findings over %d steps", found, checked);
    if (checked == a->S) return;
    used += snprintf(line + used, len - used, " of %d%s; %d not checked, a row they are predicted from has no logits:", a->S,
                     a->logits.rows ? " (kept_rows)" : "", a->S - checked);
    for (int i = 0; i < a->S - checked; i++) {
        char item[48];
        int w = snprintf(item, sizeof item, "%s step %d (row %d)", i ? "," : "", unchecked[i], unchecked_row[i]);
        if (used + w + 5 >= (int)len) {
            snprintf(line + used, len - used, " ...");
            return;
        }
        used += snprintf(line + used, len - used, "%s", item);
    }
}

static int check_selection(Audit *a) {
    const char *missing = !a->selected ? "the trace has no selected tensor" : !a->logits.n_rows ? "the trace has no logits"
                          : a->P < 0 ? "n_prompt unknown" : a->s->threshold <= 0 ? "threshold unknown (give --threshold)"
                          : a->s->max_width < 0 ? "max_width unknown (give --max-width)"
                          : a->s->next_from < 0 ? "next_from unknown (give --next-from)" : NULL;
    if (missing) {
        snprintf(a->r->checks[CHECK_SELECTION], sizeof a->r->checks[0], "skipped: %s", missing);
        return 0;
    }
    float *probs = malloc((size_t)a->V * sizeof(float)), *tmp = malloc((size_t)a->V * sizeof(float));
    const float **live = malloc(((size_t)a->n + 1) * sizeof(float *));
    int *chosen = malloc((size_t)a->V * sizeof(int)), *unchecked = malloc(((size_t)a->S + 1) * 2 * sizeof(int));
    int rc = probs && tmp && live && chosen && unchecked ? 0 : -1, before = a->r->n_findings, n_unchecked = 0;
    for (int s = 0; s < a->S && rc == 0; s++) {
        int lacking = step_distribution(a, s, live, probs, tmp);
        if (lacking < 0) rc = compare_selection(a, s, probs, chosen);
        else unchecked[n_unchecked] = s, unchecked[a->S + n_unchecked++] = lacking;
    }
    if (rc == 0) selection_line(a, a->r->n_findings - before, a->S - n_unchecked, unchecked, unchecked + a->S);
    free(probs);
    free(tmp);
    free(live);
    free(chosen);
    free(unchecked);
    return rc;
}

/* ===================================================================== */
/* Replay: tempo generates from the trace's prompt with the same settings */
/* ===================================================================== */

/* The replay's line: the engine's set at step s (its own probabilities, NaN
 * when the trace has none) and tempo's, each as format_set writes a set. */
static void describe_divergence(const Audit *a, const Generation *gen, int s, char *line, size_t len) {
    char engine[AUDIT_SET_TEXT], mine[AUDIT_SET_TEXT];
    SetText set;
    set_text_open(&set, engine, sizeof engine, step_width(a, s), ", ");
    for (int i = 0; i < step_width(a, s); i++)
        add_member(&set, a->selected[s * a->W + i], a->selected_probs ? a->selected_probs[s * a->W + i] : NAN);
    set_text_close(&set);
    const Step *st = s < gen->n_steps ? &gen->steps[s] : NULL;
    set_text_open(&set, mine, sizeof mine, st ? st->n_members : 0, ", ");
    for (int i = 0; st && i < st->n_members; i++)
        add_member(&set, gen->members[st->first_member + i].token, gen->members[st->first_member + i].prob);
    set_text_close(&set);
    int used = snprintf(line, len, "first divergent step %d: engine %s, tempo %s", s, engine, mine);
    if (!st) snprintf(line + used, len - (size_t)used, " (tempo stopped: %s)", gen->stop_reason);
}

static int first_divergence(const Audit *a, const Generation *gen) {
    for (int s = 0; s < a->S; s++) {
        if (s >= gen->n_steps || gen->steps[s].n_members != step_width(a, s)) return s;
        for (int i = 0; i < gen->steps[s].n_members; i++)
            if (gen->members[gen->steps[s].first_member + i].token != a->selected[s * a->W + i]) return s;
    }
    return -1;
}

static void check_replay(Audit *a) {
    char *line = a->r->checks[CHECK_REPLAY];
    size_t len = sizeof a->r->checks[0];
    const AuditSettings *s = a->s;
    if (!a->selected || a->P < 1 || s->mode < 0 || s->threshold <= 0 || s->max_width < 0 || s->next_from < 0) {
        snprintf(line, len, "skipped: needs selected, n_prompt, mode, threshold, max_width and next_from");
        return;
    }
    GenConfig g = s->gen;
    g.mode = (MaskKind)s->mode, g.threshold = s->threshold, g.max_width = s->max_width;
    g.next_from = (NextFrom)s->next_from, g.emulate = EMULATE_NONE, g.capture_attention = 0, g.keep_logits = 0;
    if (g.max_steps < a->S) g.max_steps = a->S > 0 ? a->S : 1;
    Generation gen;
    char err[TEMPO_ERR_SIZE];
    if (tempo_generate(a->m, a->tokens, a->P, &g, &gen, err) != 0) {
        snprintf(line, len, "skipped: the replay failed: %s", err);
        return;
    }
    a->r->first_divergent_step = first_divergence(a, &gen);
    if (a->r->first_divergent_step < 0) snprintf(line, len, "tempo selects the same sets in all %d steps", a->S);
    else describe_divergence(a, &gen, a->r->first_divergent_step, line, len);
    tempo_generation_free(&gen);
}

/* ===================================================================== */
/* The audit and its report                                               */
/* ===================================================================== */

int tempo_audit(const Model *m, const Trace *t, const AuditSettings *s, AuditReport *r, char *err) {
    memset(r, 0, sizeof *r);
    r->first_divergent_step = -1;
    Audit a;
    int rc = audit_open(&a, m, t, s, r, err);
    if (rc == 0) rc = check_rows(&a);
    if (rc == 0) rc = check_arithmetic(&a, t, err);
    if (rc == 0) rc = check_mask(&a);
    if (rc == 0) rc = check_selection(&a);
    if (rc == 0) check_replay(&a);
    if (rc != 0 && !err[0]) tempo_error(err, "out of memory for the audit's findings");
    audit_close(&a);
    if (rc != 0) audit_report_free(r);
    return rc;
}

void audit_report_free(AuditReport *r) {
    free(r->findings);
    memset(r, 0, sizeof *r);
}

static void print_fields(FILE *out, const AuditFinding *f) {
    if (f->row >= 0) fprintf(out, " row %d", f->row);
    if (f->key >= 0) fprintf(out, " key %d", f->key);
    if (f->step >= 0) fprintf(out, " step %d", f->step);
    if (f->token >= 0) fprintf(out, " token %d", f->token);
}

static const char *unit_of(const char *kind) {
    if (strncmp(kind, "hidden", 6) == 0 || strncmp(kind, "visible", 7) == 0) return "mask cells";
    if (strcmp(kind, "selected-not-fed") == 0) return "members";
    if (strcmp(kind, "position-mismatch") == 0 || strcmp(kind, "selection-differs") == 0) return "steps";
    return "rows";
}

void audit_report_print(const AuditReport *r, FILE *out) {
    for (int i = 0; i < r->n_findings;) {
        int j = i;
        while (j + 1 < r->n_findings && strcmp(r->findings[j + 1].kind, r->findings[i].kind) == 0) j++;
        const AuditFinding *f = &r->findings[i], *last = &r->findings[j];
        if (j == i) {
            fprintf(out, "%s:", f->kind);
            print_fields(out, f);
            fprintf(out, ": %s\n", f->detail);
        } else {
            fprintf(out, "%s: %d %s, first", f->kind, j - i + 1, unit_of(f->kind));
            print_fields(out, f);
            fprintf(out, " (%s), last", f->detail);
            print_fields(out, last);
            fprintf(out, " (%s)\n", last->detail);
        }
        i = j + 1;
    }
    static const char *const names[AUDIT_CHECKS] = {"arithmetic", "rows", "mask", "selection", "replay"};
    for (int c = 0; c < AUDIT_CHECKS; c++) fprintf(out, "check %-10s %s\n", names[c], r->checks[c]);
    int skipped = audit_checks_skipped(r);
    if (r->n_findings) fprintf(out, "FINDINGS: %d findings\n", r->n_findings);
    else if (skipped == AUDIT_CHECKS) fprintf(out, "NOTHING AUDITED: every check was skipped (their lines say what each needs)\n");
    else if (skipped) fprintf(out, "CLEAN (partial): 0 findings in the %d checks run, %d skipped\n", AUDIT_CHECKS - skipped, skipped);
    else fprintf(out, "CLEAN: 0 findings\n");
}

int audit_checks_skipped(const AuditReport *r) {
    int skipped = 0;
    for (int c = 0; c < AUDIT_CHECKS; c++) skipped += strncmp(r->checks[c], "skipped", 7) == 0;
    return skipped;
}

static void add_field(cJSON *o, const char *name, int v) {
    if (v >= 0) cJSON_AddNumberToObject(o, name, v);
    else cJSON_AddNullToObject(o, name);
}

int audit_report_json(const AuditReport *r, const char *path, char *err) {
    static const char *const names[AUDIT_CHECKS] = {"arithmetic", "rows", "mask", "selection", "replay"};
    cJSON *root = cJSON_CreateObject(), *findings = cJSON_AddArrayToObject(root, "findings");
    for (int i = 0; i < r->n_findings; i++) {
        const AuditFinding *f = &r->findings[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", f->kind);
        add_field(o, "row", f->row);
        add_field(o, "key", f->key);
        add_field(o, "step", f->step);
        add_field(o, "token", f->token);
        tempo_json_add_text(o, "detail", f->detail);
        cJSON_AddItemToArray(findings, o);
    }
    cJSON *checks = cJSON_AddObjectToObject(root, "checks");
    for (int c = 0; c < AUDIT_CHECKS; c++) tempo_json_add_text(checks, names[c], r->checks[c]); /* may name a file */
    add_field(root, "first_divergent_step", r->first_divergent_step);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return tempo_error(err, "out of memory writing %s", path);
    int rc = tempo_write_text_file(path, text, err);
    free(text);
    return rc;
}
