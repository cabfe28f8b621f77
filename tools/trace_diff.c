/* trace_diff.c - comparing traces tensor by tensor (tempo diff, tempo
 * verify): the largest differences and where, and per-row distances of
 * logits (trace_diff.h). */
#include "trace_diff.h"
#include "analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double element(const Tensor *x, size_t i) {
    if (x->dtype == DT_F32) return ((const float *)x->data)[i];
    if (x->dtype == DT_I32) return ((const int32_t *)x->data)[i];
    return ((const uint8_t *)x->data)[i];
}

/* Writes the multi-index of flat index i as "[a,b,c]"; row_ids (may be NULL) names the first one. */
static void format_index(const Tensor *x, size_t i, const int *row_ids, char *buf, size_t len) {
    size_t idx[4];
    for (int d = x->ndim - 1; d >= 0; d--) {
        idx[d] = x->shape[d] ? i % (size_t)x->shape[d] : 0;
        i = x->shape[d] ? i / (size_t)x->shape[d] : 0;
    }
    if (row_ids && x->ndim > 0) idx[0] = (size_t)row_ids[idx[0]];
    int w = snprintf(buf, len, "[");
    for (int d = 0; d < x->ndim; d++) w += snprintf(buf + w, len - (size_t)w, d ? ",%zu" : "%zu", idx[d]);
    snprintf(buf + w, len - (size_t)w, "]");
}

/* |p - q| for the verdict and the largest difference, never NaN: equal
 * values differ by 0, and a NaN or an infinity against any other value by
 * inf (which no tolerance admits). NaN in both at one place counts as
 * equal: diff says whether A and B hold the same values, and a trace
 * diffed with itself is SAME; whether a value should be a number at all
 * is for verify and audit, whose recomputation is finite. The tensor's
 * line names such places, so they are not passed over silently. */
double value_gap(double p, double q) {
    if (p == q || (isnan(p) && isnan(q))) return 0.0;
    double d = fabs(p - q);
    return isnan(d) ? INFINITY : d;
}

/* d worse than the worst so far: larger, or the first NaN (a row that is
 * no distribution), which later numbers may not overwrite. */
static int worse(double d, double worst) { return isnan(d) ? !isnan(worst) : d > worst; }

/* Compares one tensor of A with B; prints a line; returns 1 if outside tolerance. */
int compare_tensor(const Tensor *x, const Tensor *y, Tolerance *tol) { return compare_tensor_rows(x, y, NULL, tol); }

int compare_tensor_rows(const Tensor *x, const Tensor *y, const int *row_ids, Tolerance *tol) {
    int same_shape = x->ndim == y->ndim && x->dtype == y->dtype;
    for (int d = 0; same_shape && d < x->ndim; d++) same_shape = x->shape[d] == y->shape[d];
    if (!same_shape) {
        char a[80], b[80];
        printf("%-10s shape or dtype differs: A %s, B %s\n", x->name, tempo_tensor_describe(x, a, sizeof a),
               tempo_tensor_describe(y, b, sizeof b));
        return 1;
    }
    size_t n = tempo_tensor_count(x), worst = 0, worst_rel = 0, bad = 0, first_bad = 0, shared = 0, first_shared = 0;
    double max_abs = 0, max_rel = 0;
    int exact = x->dtype != DT_F32;
    for (size_t i = 0; i < n; i++) {
        double p = element(x, i), q = element(y, i), diff = value_gap(p, q);
        double rel = isinf(diff) ? INFINITY : diff / (fabs(q) > 1e-30 ? fabs(q) : 1e-30);
        if (diff > max_abs) { max_abs = diff; worst = i; }
        if (rel > max_rel) { max_rel = rel; worst_rel = i; }
        if (isinf(diff) || (exact ? diff != 0 : diff > tol->atol + tol->rtol * fabs(q))) {
            if (!bad) first_bad = i;
            bad++;
        }
        if (!isfinite(p) && diff == 0 && !shared++) first_shared = i; /* the same NaN or infinity in both */
    }
    char where[64], where_rel[64], where_bad[64], where_shared[64];
    format_index(x, worst, row_ids, where, sizeof where);
    format_index(x, worst_rel, row_ids, where_rel, sizeof where_rel);
    format_index(x, first_bad, row_ids, where_bad, sizeof where_bad);
    format_index(x, first_shared, row_ids, where_shared, sizeof where_shared);
    printf("%-10s %-4s max abs %.3e at %s  max rel %.3e at %s", x->name, bad ? "FAIL" : "ok", max_abs, where, max_rel,
           where_rel);
    if (bad) printf("  (%zu outside tolerance, first at %s)", bad, where_bad);
    if (shared) printf("  (%zu not finite in both, equal, first at %s)", shared, where_shared);
    printf("\n");
    if (strstr(x->name, "logits") && x->ndim == 2) { /* logits, kept_logits */
        int rows = (int)x->shape[0], V = (int)x->shape[1], agree = 0, worst_row = 0;
        double kl_max = 0, js_max = 0, top5_sum = 0;
        for (int r = 0; r < rows; r++) {
            LogitMetrics lm = logit_metrics((const float *)x->data + (size_t)r * V, (const float *)y->data + (size_t)r * V, V);
            if (worse(lm.kl_ab, kl_max)) { kl_max = lm.kl_ab; worst_row = r; }
            if (worse(lm.js, js_max)) js_max = lm.js;
            agree += lm.argmax_agree;
            top5_sum += lm.top5;
        }
        printf("           per row: max KL(A||B) %.3e at row %d, max JS %.3e, top-1 agreement %d/%d, mean top-5 overlap %.3f\n",
               kl_max, row_ids ? row_ids[worst_row] : worst_row, js_max, agree, rows, rows ? top5_sum / rows : 0.0);
    }
    return bad > 0;
}

int compare_logit_rows(const TraceLogits *l, const Tensor *recomputed, Tolerance *tol, char *err) {
    int n = (int)recomputed->shape[0], V = (int)recomputed->shape[1], failed = 0;
    if (l->n_rows > 0) {
        Tensor a = {.name = "logits", .dtype = DT_F32, .ndim = 2, .shape = {l->n_rows, V}, .data = (void *)l->logits};
        Tensor b = a;
        if (l->rows) { /* tempo's logits of the kept rows */
            snprintf(a.name, sizeof a.name, "kept_logits");
            b = a;
            b.data = malloc((size_t)l->n_rows * V * sizeof(float));
            if (!b.data) return tempo_error(err, "out of memory for the logits of %d rows", l->n_rows);
            for (int i = 0; i < l->n_rows; i++)
                memcpy((float *)b.data + (size_t)i * V, (const float *)recomputed->data + (size_t)l->rows[i] * V, V * sizeof(float));
        } else {
            b.data = recomputed->data;
        }
        failed = compare_tensor_rows(&a, &b, l->rows, tol);
        if (l->rows) free(b.data);
    }
    if (l->n_rows < n || l->rows) /* every row's logits: the line above says all */
        printf("logits compared on %d of %d rows%s\n", l->n_rows, n, l->rows ? " (kept_rows)" : " (the trace has none)");
    return failed;
}

/* Diffs every tensor of A that B also has; a tensor only in one is named
 * and is a difference: a trace that lacks its tokens, or holds its mask
 * under another name, is not the same trace. */
int diff_traces(const Trace *A, const Trace *B, Tolerance *tol) {
    int failed = 0;
    for (int i = 0; i < A->n_tensors; i++) {
        const Tensor *y = tempo_trace_get(B, A->tensors[i].name);
        if (!y) {
            printf("%-10s only in A: B has no such tensor\n", A->tensors[i].name);
            failed = 1;
            continue;
        }
        failed |= compare_tensor(&A->tensors[i], y, tol);
    }
    for (int i = 0; i < B->n_tensors; i++)
        if (!tempo_trace_get(A, B->tensors[i].name)) {
            printf("%-10s only in B: A has no such tensor\n", B->tensors[i].name);
            failed = 1;
        }
    return failed;
}

/* The trace's metadata names the model that wrote it and its dimensions
 * (tempo and engines that follow the trace format); when any disagrees
 * with -m, that is the error, before any number is compared. */
int check_trace_model(const Trace *tr, const Model *m, const char *path, char *err) {
    const Config *c = &m->config;
    struct { const char *key; int value; } dims[] = {{"dim", c->dim}, {"n_layers", c->n_layers}, {"n_heads", c->n_heads},
        {"n_kv_heads", c->n_kv_heads}, {"vocab_size", c->vocab_size}};
    const char *model = tempo_trace_meta_get(tr, "model");
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const char *v = tempo_trace_meta_get(tr, dims[d].key);
        char what[64];
        int n;
        snprintf(what, sizeof what, "trace metadata %s", dims[d].key);
        if (v && tempo_parse_int(v, what, 1, INT_MAX, &n, err) != 0) return -1;
        if (v && n != dims[d].value)
            return tempo_error(err, "trace %s was written with %s (%s %s) but -m %s has %s %d: verify against the "
                               "model that wrote it", path, model ? model : "another model", dims[d].key, v, tempo_model_path(m),
                               dims[d].key, dims[d].value);
    }
    return 0;
}
