/* analysis.c - what isolation does, measured: distances between logit
 * rows, attention received by parallel vs non-parallel tokens, heatmaps
 * (ASCII and SVG). NOTES.md defines every number. */
#define _GNU_SOURCE
#include "analysis.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ===================================================================== */
/* Distances between two logit rows                                      */
/* ===================================================================== */

/* |topk(p) ∩ topk(q)| / k, from the two descending orders. */
static double top_overlap(const int *order_p, const int *order_q, int k, int n) {
    if (k > n) k = n;
    int common = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) common += order_p[i] == order_q[j];
    return (double)common / k;
}

/* KL(p||q) = sum_v p_v (log p_v - log q_v), KL(q||p), and
 * JS = 1/2 KL2(p||m) + 1/2 KL2(q||m), m = (p+q)/2. The logs come from the
 * logits, log p_v = a_v - a_top + log p_top, so they stay finite where a
 * float probability underflows to 0. */
static void divergences(LogitMetrics *m, const float *a, const float *b, const float *p, const float *q, int top_p,
                        int top_q, int vocab) {
    double log_pa = log(p[top_p]) - a[top_p], log_qb = log(q[top_q]) - b[top_q];
    double dot = 0, np = 0, nq = 0;
    for (int v = 0; v < vocab; v++) {
        double lp = a[v] + log_pa, lq = b[v] + log_qb, mid = 0.5 * ((double)p[v] + q[v]);
        m->kl_ab += p[v] * (lp - lq);
        m->kl_ba += q[v] * (lq - lp);
        if (p[v] > 0) m->js += 0.5 * p[v] * log2(p[v] / mid);
        if (q[v] > 0) m->js += 0.5 * q[v] * log2(q[v] / mid);
        dot += (double)p[v] * q[v];
        np += (double)p[v] * p[v];
        nq += (double)q[v] * q[v];
    }
    m->cosine = dot / sqrt(np * nq);
}

LogitMetrics logit_metrics(const float *a, const float *b, int vocab) {
    LogitMetrics m = {0};
    float *p = malloc((size_t)vocab * sizeof(float)), *q = malloc((size_t)vocab * sizeof(float));
    int *op = malloc((size_t)vocab * sizeof(int)), *oq = malloc((size_t)vocab * sizeof(int));
    if (!p || !q || !op || !oq) {
        free(p); free(q); free(op); free(oq);
        m.kl_ab = m.kl_ba = m.js = m.cosine = NAN;
        return m;
    }
    memcpy(p, a, (size_t)vocab * sizeof(float));
    memcpy(q, b, (size_t)vocab * sizeof(float));
    tempo_softmax(p, NULL, vocab); /* p = softmax(a), q = softmax(b) */
    tempo_softmax(q, NULL, vocab);
    for (int v = 0; v < vocab; v++) op[v] = oq[v] = v;
    tempo_sort_by_probability(op, vocab, p);
    tempo_sort_by_probability(oq, vocab, q);
    divergences(&m, a, b, p, q, op[0], oq[0], vocab);
    m.top1 = top_overlap(op, oq, 1, vocab);
    m.top5 = top_overlap(op, oq, 5, vocab);
    m.top10 = top_overlap(op, oq, 10, vocab);
    m.argmax_agree = op[0] == oq[0];
    free(p); free(q); free(op); free(oq);
    return m;
}

/* ===================================================================== */
/* Attention received by parallel and non-parallel tokens                */
/* ===================================================================== */

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Summary summarize_values(double *values, int n) {
    Summary s = {0, 0, 0, n};
    if (n == 0) return s;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += values[i];
    s.mean = sum / n;
    for (int i = 0; i < n; i++) sq += (values[i] - s.mean) * (values[i] - s.mean);
    s.std = sqrt(sq / n);
    qsort(values, (size_t)n, sizeof(double), compare_doubles);
    s.median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
    return s;
}

int attention_kept_layers(const AttentionView *v) { return v->keep.layers ? v->keep.n_layers : v->n_layers; }
int attention_kept_heads(const AttentionView *v) { return v->keep.heads ? v->keep.n_heads : v->n_heads; }
int attention_kept_layer(const AttentionView *v, int i) { return v->keep.layers ? v->keep.layers[i] : i; }
int attention_kept_head(const AttentionView *v, int i) { return v->keep.heads ? v->keep.heads[i] : i; }

int attention_kept(const AttentionView *v, int l, int h, int q) {
    const AttentionKeep *kp = &v->keep;
    return (l < 0 || tempo_kept_slot(kp->layers, kp->n_layers, l) >= 0) && (h < 0 || tempo_kept_slot(kp->heads, kp->n_heads, h) >= 0) &&
           (q < 0 || tempo_kept_slot(kp->rows, kp->n_rows, q) >= 0);
}

/* Attention of query q to key k, averaged over the selected kept layers and heads. */
double attention_at(const AttentionView *v, int l, int h, int q, int k) {
    const AttentionKeep *kp = &v->keep;
    int KL = attention_kept_layers(v), KH = attention_kept_heads(v), KR = kp->rows ? kp->n_rows : v->n;
    int slot = tempo_kept_slot(kp->rows, kp->n_rows, q);
    int a0 = l < 0 ? 0 : tempo_kept_slot(kp->layers, kp->n_layers, l), a1 = l < 0 ? KL : a0 + 1;
    int b0 = h < 0 ? 0 : tempo_kept_slot(kp->heads, kp->n_heads, h), b1 = h < 0 ? KH : b0 + 1;
    if (slot < 0 || a0 < 0 || b0 < 0) return NAN;
    double sum = 0;
    for (int a = a0; a < a1; a++)
        for (int b = b0; b < b1; b++) sum += v->attention[(((size_t)a * KH + b) * KR + slot) * v->n + k];
    return sum / ((a1 - a0) * (b1 - b0));
}

/* The indices of list (NULL: 0..count-1) as "0,2,5-7", cut short with "..." when long. */
static void index_text(const int *list, int count, char *buf, size_t len) {
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && at + 24 < len; i++) {
        int first = list ? list[i] : i;
        while (i + 1 < count && (list ? list[i + 1] : i + 1) == (list ? list[i] : i) + 1) i++;
        int last = list ? list[i] : i;
        at += (size_t)snprintf(buf + at, len - at, first == last ? "%s%d" : "%s%d-%d", at ? "," : "", first, last);
    }
    if (at + 24 >= len) snprintf(buf + len - 4, 4, "...");
}

const char *attention_keep_text(const AttentionKeep *kp, int n_layers, int n_heads, int n_rows, char *buf, size_t len) {
    char layers[96], heads[96], rows[160];
    if (!kp->layers && !kp->heads && !kp->rows) return snprintf(buf, len, "every layer, head and row"), buf;
    index_text(kp->layers, kp->layers ? kp->n_layers : n_layers, layers, sizeof layers);
    index_text(kp->heads, kp->heads ? kp->n_heads : n_heads, heads, sizeof heads);
    index_text(kp->rows, kp->rows ? kp->n_rows : n_rows, rows, sizeof rows);
    snprintf(buf, len, "layers %s, heads %s, rows %s", layers, heads, rows);
    return buf;
}

int attention_require(const AttentionView *v, int l, int h, int r0, int r1, char *err) {
    const AttentionKeep *kp = &v->keep;
    char held[160];
    if (l >= 0 && !attention_kept(v, l, -1, -1))
        return index_text(kp->layers, kp->n_layers, held, sizeof held),
               tempo_error(err, "the trace holds no attention for layer %d; it holds layers %s", l, held);
    if (h >= 0 && !attention_kept(v, -1, h, -1))
        return index_text(kp->heads, kp->n_heads, held, sizeof held),
               tempo_error(err, "the trace holds no attention for head %d; it holds heads %s", h, held);
    for (int q = r0; q < r1; q++)
        if (!attention_kept(v, -1, -1, q))
            return index_text(kp->rows, kp->n_rows, held, sizeof held),
                   tempo_error(err, "the trace holds no attention for row %d; it holds rows %s", q, held);
    return 0;
}

int attention_set_size(const AttentionView *v, int row) {
    int count = 0;
    for (int i = 0; i < v->n; i++) count += v->sets[i] == v->sets[row];
    return count;
}

/* Mean attention key k receives from rows at later logical positions; -1 if none. */
static double received(const AttentionView *v, int l, int h, int k) {
    double sum = 0;
    int count = 0;
    for (int q = k + 1; q < v->n; q++) {
        if (v->positions[q] <= v->positions[k] || !attention_kept(v, -1, -1, q)) continue; /* only the rows held */
        sum += attention_at(v, l, h, q, k);
        count++;
    }
    return count ? sum / count : -1.0;
}

/* The logical position of step 0: the first row after the prompt's (later
 * than n_prompt under --position-gap). */
static int first_step_position(const AttentionView *v, int n_prompt) {
    return n_prompt < v->n && v->positions[n_prompt] > n_prompt ? v->positions[n_prompt] : n_prompt;
}

AttentionStats attention_stats(const AttentionView *v, int l, int h, int step_lo, int step_hi, int n_prompt) {
    AttentionStats st = {0};
    double *par = malloc((size_t)v->n * sizeof(double)), *single = malloc((size_t)v->n * sizeof(double));
    double *totals = malloc((size_t)v->n * sizeof(double));
    int n_par = 0, n_single = 0, n_sets = 0;
    if (!par || !single || !totals) {
        free(par); free(single); free(totals);
        st.reduction_pct = NAN;
        return st;
    }
    int step0 = first_step_position(v, n_prompt);
    for (int k = 1; k < v->n; k++) { /* row 0 is BOS, an attention sink */
        int step = v->positions[k] - step0;
        if (step < 0) step = -1;
        if (step < step_lo || step >= step_hi) continue;
        for (int q = k + 1; q < v->n; q++) /* cross-parallel: a later member attending to an earlier one */
            if (v->sets[q] == v->sets[k] && attention_kept(v, -1, -1, q)) {
                double p = attention_at(v, l, h, q, k);
                st.cross_mean += p;
                if (p > st.cross_max) st.cross_max = p;
                st.cross_pairs++;
            }
        if (v->pruned && v->pruned[k] >= 0) continue; /* pruned keys are removed by design */
        double r = received(v, l, h, k);
        if (r < 0) continue;
        int size = attention_set_size(v, k);
        if (size > 1) par[n_par++] = r;
        else single[n_single++] = r;
        if (size > 1 && (k == 0 || v->sets[k - 1] != v->sets[k])) { /* first member: total over the set */
            double total = 0;
            for (int m = k; m < v->n && v->sets[m] == v->sets[k]; m++)
                if (!(v->pruned && v->pruned[m] >= 0) && received(v, l, h, m) >= 0) total += received(v, l, h, m);
            totals[n_sets++] = total;
        }
    }
    if (st.cross_pairs) st.cross_mean /= st.cross_pairs;
    st.parallel = summarize_values(par, n_par);
    st.single = summarize_values(single, n_single);
    st.set_total = summarize_values(totals, n_sets);
    st.reduction_pct = st.single.mean > 0 && n_par ? 100.0 * (1.0 - st.parallel.mean / st.single.mean) : NAN;
    free(par); free(single); free(totals);
    return st;
}

/* ===================================================================== */
/* Width and threshold over a run                                         */
/* ===================================================================== */

void generation_series(const Generation *gen, SeriesPoint *points) {
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        SeriesPoint *p = &points[s];
        *p = (SeriesPoint){st->n_members, 0, 0, st->logical_pos, st->threshold};
        for (int i = 0; i < st->n_members; i++) {
            const Member *mem = &gen->members[st->first_member + i];
            p->fed += mem->row >= 0;
            p->live += mem->row >= 0 && mem->pruned_at < 0;
        }
    }
}

cJSON *series_json(const Generation *gen) {
    SeriesPoint *points = malloc(((size_t)gen->n_steps + 1) * sizeof *points);
    if (!points) return NULL;
    generation_series(gen, points);
    cJSON *o = cJSON_CreateObject();
    const char *names[6] = {"step", "position", "threshold", "members", "fed", "live"};
    cJSON *arrays[6];
    for (int i = 0; i < 6; i++) arrays[i] = cJSON_AddArrayToObject(o, names[i]);
    for (int s = 0; s < gen->n_steps; s++) {
        const SeriesPoint *p = &points[s];
        double values[6] = {s, p->position, 0, p->members, p->fed, p->live};
        char threshold[32]; /* the shortest decimal that reads back to the float: 0.1, not 0.10000000149 */
        tempo_format_float(threshold, p->threshold);
        for (int i = 0; i < 6; i++)
            cJSON_AddItemToArray(arrays[i], i == 2 ? cJSON_CreateRaw(threshold) : cJSON_CreateNumber(values[i]));
    }
    free(points);
    return o;
}

/* ===================================================================== */
/* Reading a view from a trace                                           */
/* ===================================================================== */

/* An optional I32[n] tensor: NULL when absent, an error when malformed. */
static int optional_rows(const Trace *tr, const char *name, int n, const int **out, char *err) {
    const Tensor *x = tempo_trace_get(tr, name);
    *out = NULL;
    if (!x) return 0;
    if (x->dtype != DT_I32 || x->ndim != 1 || x->shape[0] != n)
        return tempo_error(err, "trace tensor %s must be I32[%d] (one entry per row)", name, n);
    *out = x->data;
    return 0;
}

/* The trace's n_prompt, else the rows at positions 0, 1, 2, ... before the row that precedes the first set. */
static int prompt_rows(const Trace *tr, const AttentionView *v, int *n_prompt, char *err) {
    const char *np = tempo_trace_meta_get(tr, "n_prompt");
    if (np) return tempo_parse_int(np, "trace metadata n_prompt", 1, v->n, n_prompt, err);
    *n_prompt = 1; /* a guess: the first generated token is the one before the first set */
    while (*n_prompt + 1 < v->n && v->positions[*n_prompt + 1] == *n_prompt + 1) (*n_prompt)++;
    return 0;
}

/* The model's layers and heads (the trace's metadata, else the attention's
 * shape, else the highest kept index + 1) and what the attention holds of
 * them (attention_layers, attention_heads, attention_rows: a partial capture). */
static int view_kept(const Trace *tr, const Tensor *att, AttentionView *v, char *err) {
    const char *names[2] = {"n_layers", "n_heads"}, *lists[2] = {"attention_layers", "attention_heads"};
    int *counts[2] = {&v->n_layers, &v->n_heads};
    for (int i = 0; i < 2; i++) {
        const char *meta = tempo_trace_meta_get(tr, names[i]);
        const Tensor *list = tempo_trace_get(tr, lists[i]);
        *counts[i] = (int)att->shape[i];
        if (meta && tempo_parse_int(meta, names[i], 1, 4096, counts[i], err) != 0) return -1;
        if (!meta && list && list->dtype == DT_I32 && list->ndim == 1 && list->shape[0] >= 1) {
            int last = ((const int *)list->data)[list->shape[0] - 1];
            *counts[i] = last >= 0 && last < 4096 ? last + 1 : 4096;
        }
    }
    Config c = {.n_layers = v->n_layers, .n_heads = v->n_heads};
    return tempo_trace_attention_keep(tr, &c, v->n, &v->keep, err) < 0 ? -1 : 0;
}

int attention_view_from_trace(const Trace *tr, AttentionView *v, int *n_prompt, char *err) {
    const Tensor *tok = tempo_trace_get(tr, "tokens"), *att = tempo_trace_get(tr, "attention");
    const Tensor *al = tempo_trace_get(tr, "allowed");
    memset(v, 0, sizeof *v);
    if (!tok || tok->dtype != DT_I32 || tok->ndim != 1 || tok->shape[0] < 1 || tok->shape[0] > (1 << 16))
        return tempo_error(err, "trace needs tokens I32[n] with 1 <= n <= %d", 1 << 16);
    v->n = (int)tok->shape[0];
    v->tokens = tok->data;
    if (!att) return tempo_error(err, "trace has no attention tensor (write it with --trace, or forward without --no-attention)");
    if (att->dtype != DT_F32 || att->ndim != 4 || att->shape[3] != v->n || att->shape[0] < 1 || att->shape[1] < 1 ||
        att->shape[0] > 4096 || att->shape[1] > 4096)
        return tempo_error(err, "trace attention must be F32[layers, heads, rows, %d]", v->n);
    if (view_kept(tr, att, v, err) != 0) return -1;
    v->attention = att->data;
    if (optional_rows(tr, "positions", v->n, &v->positions, err) != 0 || optional_rows(tr, "sets", v->n, &v->sets, err) != 0 ||
        optional_rows(tr, "pruned", v->n, &v->pruned, err) != 0)
        return -1;
    if (!v->positions) return tempo_error(err, "trace has no positions tensor (I32[%d])", v->n);
    for (int i = 0; i < v->n; i++)
        if (v->positions[i] < 0) return tempo_error(err, "trace position of row %d is negative (%d)", i, v->positions[i]);
    if (!v->sets) v->sets = v->positions; /* a set is the rows at one logical position */
    if (al) {
        int ok2 = al->ndim == 2 && al->shape[0] == v->n && al->shape[1] == v->n;
        int ok3 = al->ndim == 3 && al->shape[0] == v->n_layers && al->shape[1] == v->n && al->shape[2] == v->n;
        if (al->dtype != DT_U8 || (!ok2 && !ok3))
            return tempo_error(err, "trace allowed must be U8[%d,%d] or U8[%d,%d,%d]", v->n, v->n, v->n_layers, v->n, v->n);
        v->allowed = al->data;
        v->mask_layers = ok3 ? v->n_layers : 1;
    }
    v->model = tempo_trace_meta_get(tr, "model") ? tempo_trace_meta_get(tr, "model") : "";
    return prompt_rows(tr, v, n_prompt, err);
}

int attention_allowed(const AttentionView *v, int l, int q, int k) {
    if (!v->allowed) return k <= q;
    int layer = v->mask_layers > 1 ? l : 0;
    return v->allowed[((size_t)layer * v->n + q) * v->n + k] != 0;
}

/* 1 if layer l hides some earlier sibling from a later member. */
static int hides_siblings(const AttentionView *v, int l) {
    for (int q = 1; q < v->n; q++)
        for (int k = q - 1; k >= 0 && v->sets[k] == v->sets[q]; k--)
            if (!attention_allowed(v, l, q, k)) return 1;
    return 0;
}

const char *attention_mode(const AttentionView *v, int l) {
    int any_set = 0, hidden = 0, layers = 0;
    for (int q = 1; q < v->n; q++) any_set |= v->sets[q] == v->sets[q - 1];
    if (!any_set) return "causal (no parallel set)";
    for (int li = l < 0 ? 0 : l; li < (l < 0 ? v->n_layers : l + 1); li++, layers++) hidden += hides_siblings(v, li);
    if (hidden == 0) return "visible";
    return hidden == layers ? "isolated" : "isolated in some layers";
}

char *token_label(const Tokenizer *t, int prev, int token) {
    char buf[16];
    const char *text = buf;
    if (t && t->pieces && token >= 0 && token < t->vocab_size)
        text = tempo_decode(t, prev, token, buf);
    else
        snprintf(buf, sizeof buf, "#%d", token);
    size_t len = strlen(text);
    while (len > 1 && text[len - 1] == '\n') len--; /* "\n<s>\n" -> "<s>"; a lone newline stays */
    while (len > 1 && text[0] == '\n') text++, len--;
    return tempo_valid_utf8(text, len);
}

/* ===================================================================== */
/* The attention table                                                   */
/* ===================================================================== */

static const char attention_legend[] =
    "attention a key receives from queries at later logical positions (BOS, row 0, is left out: an attention sink)\n"
    "  x-pairs        (earlier, later) member pairs inside one parallel set\n"
    "  x-mean, x-max  attention a later member pays an earlier member of its own set (0 when isolated)\n"
    "  par-*          mean, median, std over keys in a parallel set of the attention each receives\n"
    "  single-*       the same over keys alone at their position\n"
    "  set-total      a set's members' received attention summed, mean over sets\n"
    "  reduct%        100 (1 - par-mean / single-mean): how much less a parallel token is attended\n"
    "  rows           L:H one head; L<l> mean over heads; all; early/middle/late: keys in each third of the steps\n"
    "  n/a            nothing to average; the notes under the table say why\n";

/* Why reduct% has no value, or NULL. */
static const char *reduction_note(const AttentionStats *s) {
    if (s->parallel.count == 0) return "no parallel-set token here has a later query to receive attention from";
    if (s->single.count == 0) return "no single token here has a later query to receive attention from";
    if (!(s->single.mean > 0)) return "single tokens here receive no attention";
    return NULL;
}

static void print_value(FILE *out, double x, int have) {
    if (have) fprintf(out, " %10.3e", x);
    else fprintf(out, " %10s", "n/a");
}

static void print_stats_row(FILE *out, const char *label, const AttentionStats *s) {
    fprintf(out, "%-11s %7d", label, s->cross_pairs);
    print_value(out, s->cross_mean, s->cross_pairs > 0);
    print_value(out, s->cross_max, s->cross_pairs > 0);
    const Summary *parts[3] = {&s->parallel, &s->single, &s->set_total};
    for (int i = 0; i < 3; i++) {
        fputc(' ', out);
        print_value(out, parts[i]->mean, parts[i]->count > 0);
        if (i == 2) break;
        print_value(out, parts[i]->median, parts[i]->count > 0);
        print_value(out, parts[i]->std, parts[i]->count > 0);
    }
    if (reduction_note(s)) fprintf(out, "  %8s\n", "n/a");
    else fprintf(out, "  %8.2f\n", s->reduction_pct);
}

/* o[key] = v when there is something to summarise (the table's value), else null (its n/a). */
static void add_value_json(cJSON *o, const char *key, double v, int has) {
    cJSON_AddItemToObject(o, key, has ? cJSON_CreateNumber(v) : cJSON_CreateNull());
}

static cJSON *stats_json(const AttentionStats *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cross_pairs", s->cross_pairs);
    add_value_json(o, "cross_mean", s->cross_mean, s->cross_pairs > 0);
    add_value_json(o, "cross_max", s->cross_max, s->cross_pairs > 0);
    const Summary *parts[3] = {&s->parallel, &s->single, &s->set_total};
    const char *names[3] = {"parallel", "single", "set_total"};
    for (int i = 0; i < 3; i++) {
        cJSON *p = cJSON_AddObjectToObject(o, names[i]);
        add_value_json(p, "mean", parts[i]->mean, parts[i]->count > 0);
        add_value_json(p, "median", parts[i]->median, parts[i]->count > 0);
        add_value_json(p, "std", parts[i]->std, parts[i]->count > 0);
        cJSON_AddNumberToObject(p, "count", parts[i]->count);
    }
    const char *note = reduction_note(s);
    if (note) cJSON_AddNullToObject(o, "reduction_pct"), cJSON_AddStringToObject(o, "reduction_note", note);
    else cJSON_AddNumberToObject(o, "reduction_pct", s->reduction_pct);
    return o;
}

/* One table row and its JSON object (layer/head added when >= 0). */
static void report_row(FILE *out, const char *label, const AttentionStats *s, int l, int h, cJSON *array) {
    print_stats_row(out, label, s);
    cJSON *o = stats_json(s);
    if (l >= 0) cJSON_AddNumberToObject(o, "layer", l);
    if (h >= 0) cJSON_AddNumberToObject(o, "head", h);
    cJSON_AddItemToArray(array, o);
}

/* all, then early/middle/late, each with a note when reduct% is n/a. */
static void report_overall(FILE *out, const AttentionView *v, int n_prompt, cJSON *root) {
    int n_steps = v->positions[v->n - 1] - first_step_position(v, n_prompt) + 1;
    const char *names[4] = {"all", "early", "middle", "late"}, *notes[4];
    cJSON *thirds = cJSON_AddObjectToObject(root, "thirds");
    for (int i = 0; i < 4; i++) {
        int lo = i ? n_steps * (i - 1) / 3 : -1, hi = i ? n_steps * i / 3 : 1 << 30;
        AttentionStats s = attention_stats(v, -1, -1, lo, hi, n_prompt);
        print_stats_row(out, names[i], &s);
        cJSON_AddItemToObject(i ? thirds : root, names[i], stats_json(&s));
        notes[i] = reduction_note(&s);
    }
    for (int i = 0; i < 4; i++)
        if (notes[i]) fprintf(out, "note: reduct%% is n/a for %s%s: %s\n", names[i], i ? "" : " (and every head and layer)", notes[i]);
}

void attention_report(FILE *out, const AttentionView *v, int n_prompt, cJSON *root) {
    fputs(attention_legend, out);
    fprintf(out, "%-11s %7s %10s %10s  %10s %10s %10s  %10s %10s %10s  %10s  %8s\n", "layer:head", "x-pairs", "x-mean", "x-max",
            "par-mean", "par-median", "par-std", "single-mean", "single-med", "single-std", "set-total", "reduct%");
    cJSON *heads = cJSON_AddArrayToObject(root, "per_head"), *layers = cJSON_AddArrayToObject(root, "per_layer");
    char label[32];
    char held[400];
    if (v->keep.layers || v->keep.heads || v->keep.rows)
        fprintf(out, "from the attention the trace holds (%s): averages over those layers and heads, later queries among those rows\n",
                attention_keep_text(&v->keep, v->n_layers, v->n_heads, v->n, held, sizeof held));
    for (int i = 0; i < attention_kept_layers(v); i++)
        for (int j = 0; j < attention_kept_heads(v); j++) {
            int l = attention_kept_layer(v, i), h = attention_kept_head(v, j);
            AttentionStats s = attention_stats(v, l, h, -1, 1 << 30, n_prompt);
            snprintf(label, sizeof label, "%d:%d", l, h);
            report_row(out, label, &s, l, h, heads);
        }
    for (int i = 0; i < attention_kept_layers(v); i++) {
        int l = attention_kept_layer(v, i);
        AttentionStats s = attention_stats(v, l, -1, -1, 1 << 30, n_prompt);
        snprintf(label, sizeof label, "L%d", l);
        report_row(out, label, &s, l, -1, layers);
    }
    report_overall(out, v, n_prompt, root);
}

/* ===================================================================== */
/* ASCII heatmap                                                         */
/* ===================================================================== */

/* A marker for row i on an axis: '[' first member of a parallel set, ']'
 * last, '|' inside, ' ' a single token. */
static char set_marker(const AttentionView *v, int i) {
    if (attention_set_size(v, i) < 2) return ' ';
    int first = i == 0 || v->sets[i - 1] != v->sets[i], last = i + 1 == v->n || v->sets[i + 1] != v->sets[i];
    return first ? '[' : last ? ']' : '|';
}

/* Byte i of a label for a terminal column: ' ' as '_', non-ASCII as '?', past the end ' '. */
static char label_char(const char *label, int i) {
    size_t len = strlen(label);
    if ((size_t)i >= len) return ' ';
    unsigned char c = (unsigned char)label[i];
    return c == ' ' ? '_' : c < 0x20 || c >= 0x7f ? '?' : (char)c;
}

void heatmap_ascii(FILE *out, const AttentionView *v, const char *const *labels, int l, int h, int r0, int r1) {
    static const char shades[] = " .:-=+*#%@";
    fprintf(out, "layer %d head %d (%s), rows %d-%d: shade ~ sqrt(p) \"%s\"; x = masked sibling; [ | ] = a parallel set;\n"
                 "key labels read downwards (_ = space)\n", l, h, attention_mode(v, l), r0, r1 - 1, shades);
    for (int line = 0; line < 6; line++) { /* key labels, written downwards */
        fprintf(out, "%17s", "");
        for (int k = 0; k < r1; k++) fputc(label_char(labels[k], line), out);
        fputc('\n', out);
    }
    fprintf(out, "%17s", "");
    for (int k = 0; k < r1; k++) fputc(set_marker(v, k), out);
    fputc('\n', out);
    for (int q = r0; q < r1; q++) {
        fprintf(out, "%4d %c ", q, set_marker(v, q));
        for (int i = 0; i < 9; i++) fputc(label_char(labels[q], i), out);
        fputc(' ', out);
        for (int k = 0; k < r1; k++) {
            int idx = (int)(sqrt(attention_at(v, l, h, q, k)) * 10.0);
            if (k > q) fputc(' ', out);
            else if (!attention_allowed(v, l, q, k)) fputc('x', out);
            else fputc(shades[idx > 9 ? 9 : idx < 0 ? 0 : idx], out);
        }
        fputc('\n', out);
    }
}

/* ===================================================================== */
/* Isolated vs visible, teacher-forced                                   */
/* ===================================================================== */

int attention_pair(const Model *m, const AttentionView *v, AttentionView *iso, AttentionView *vis, void **buffers,
                   char *err) {
    const Config *c = &m->config;
    *buffers = NULL;
    if (c->n_layers != v->n_layers || c->n_heads != v->n_heads)
        return tempo_error(err, "the trace has %d layers x %d heads but the model has %d x %d", v->n_layers, v->n_heads,
                           c->n_layers, c->n_heads);
    size_t cells = (size_t)v->n * v->n, att = (size_t)c->n_layers * c->n_heads * cells;
    float *a_iso = malloc(2 * att * sizeof(float) + 2 * cells);
    if (!a_iso) return tempo_error(err, "out of memory for the attention of %d rows under two masks", v->n);
    float *a_vis = a_iso + att;
    uint8_t *m_iso = (uint8_t *)(a_vis + att), *m_vis = m_iso + cells;
    tempo_mask_rows(MASK_ISOLATED, v->sets, 0, v->n, m_iso);
    tempo_mask_rows(MASK_VISIBLE, v->sets, 0, v->n, m_vis);
    Outputs oi = {.attention = a_iso}, ov = {.attention = a_vis};
    Mask rule_iso = tempo_mask_rule(MASK_ISOLATED, v->sets), rule_vis = tempo_mask_rule(MASK_VISIBLE, v->sets);
    if (tempo_forward_full(m, v->n, v->tokens, v->positions, &rule_iso, oi, err) != 0 ||
        tempo_forward_full(m, v->n, v->tokens, v->positions, &rule_vis, ov, err) != 0) {
        free(a_iso);
        return -1;
    }
    *iso = *vis = *v;
    iso->keep = vis->keep = (AttentionKeep){0}; /* recomputed: every layer, head and row */
    iso->attention = a_iso, iso->allowed = m_iso, iso->mask_layers = 1;
    vis->attention = a_vis, vis->allowed = m_vis, vis->mask_layers = 1;
    *buffers = a_iso;
    return 0;
}
