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

static Summary summarize(double *values, int n) {
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

/* Attention of query q to key k, averaged over the selected layers and heads. */
static double att(const AttentionView *v, int l, int h, int q, int k) {
    int l0 = l < 0 ? 0 : l, l1 = l < 0 ? v->n_layers : l + 1;
    int h0 = h < 0 ? 0 : h, h1 = h < 0 ? v->n_heads : h + 1;
    double sum = 0;
    for (int li = l0; li < l1; li++)
        for (int hi = h0; hi < h1; hi++)
            sum += v->attention[(((size_t)li * v->n_heads + hi) * v->n + q) * v->n + k];
    return sum / ((l1 - l0) * (h1 - h0));
}

static int set_size(const AttentionView *v, int row) {
    int count = 0;
    for (int i = 0; i < v->n; i++) count += v->sets[i] == v->sets[row];
    return count;
}

/* Mean attention key k receives from rows at later logical positions; -1 if none. */
static double received(const AttentionView *v, int l, int h, int k) {
    double sum = 0;
    int count = 0;
    for (int q = k + 1; q < v->n; q++) {
        if (v->positions[q] <= v->positions[k]) continue;
        sum += att(v, l, h, q, k);
        count++;
    }
    return count ? sum / count : -1.0;
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
    for (int k = 1; k < v->n; k++) { /* row 0 is BOS, an attention sink */
        int step = v->positions[k] - n_prompt;
        if (step < 0) step = -1;
        if (step < step_lo || step >= step_hi) continue;
        for (int q = k + 1; q < v->n; q++) /* cross-parallel: a later member attending to an earlier one */
            if (v->sets[q] == v->sets[k]) {
                double p = att(v, l, h, q, k);
                st.cross_mean += p;
                if (p > st.cross_max) st.cross_max = p;
                st.cross_pairs++;
            }
        if (v->pruned && v->pruned[k] >= 0) continue; /* pruned keys are removed by design */
        double r = received(v, l, h, k);
        if (r < 0) continue;
        int size = set_size(v, k);
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
    st.parallel = summarize(par, n_par);
    st.single = summarize(single, n_single);
    st.set_total = summarize(totals, n_sets);
    st.reduction_pct = st.single.mean > 0 && n_par ? 100.0 * (1.0 - st.parallel.mean / st.single.mean) : NAN;
    free(par); free(single); free(totals);
    return st;
}

/* ===================================================================== */
/* Heatmaps                                                              */
/* ===================================================================== */

/* A marker for row i on an axis: '[' first member of a parallel set, ']'
 * last, '|' inside, ' ' a single token. */
static char set_marker(const AttentionView *v, int i) {
    if (set_size(v, i) < 2) return ' ';
    int first = i == 0 || v->sets[i - 1] != v->sets[i], last = i + 1 == v->n || v->sets[i + 1] != v->sets[i];
    return first ? '[' : last ? ']' : '|';
}

void heatmap_ascii(FILE *out, const AttentionView *v, int l, int h, int r0, int r1) {
    static const char shades[] = " .:-=+*#%@";
    fprintf(out, "layer %d head %d, rows %d-%d (shade ~ sqrt(p); brackets mark parallel sets)\n      ", l, h, r0, r1 - 1);
    for (int k = 0; k < r1; k++) fputc(set_marker(v, k), out);
    fputc('\n', out);
    for (int q = r0; q < r1; q++) {
        fprintf(out, "%4d %c", q, set_marker(v, q));
        for (int k = 0; k < r1; k++) {
            double p = k <= q ? att(v, l, h, q, k) : 0.0;
            int idx = (int)(sqrt(p) * 10.0);
            fputc(shades[idx > 9 ? 9 : idx < 0 ? 0 : idx], out);
        }
        fputc('\n', out);
    }
}

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '"') fputs("&quot;", f);
        else if (c < 0x20) fputs("\xe2\x90\xa3", f); /* control bytes as a visible mark */
        else fputc(c, f);
    }
}

/* White -> dark blue, by sqrt(p) so small weights stay visible. */
static void colour(double p, char buf[8]) {
    double t = sqrt(p < 0 ? 0 : p > 1 ? 1 : p);
    snprintf(buf, 8, "#%02x%02x%02x", (int)(255 - 227 * t), (int)(255 - 200 * t), (int)(255 - 120 * t));
}

int heatmap_svg(const char *path, const AttentionView *v, const char *const *labels, int l, int h, int r0, int r1,
                char *err) {
    char fill[8];
    AtomicFile out;
    if (tempo_atomic_open(&out, path, "", err) != 0) return -1;
    FILE *f = out.f;
    int cell = 14, left = 120, top = 120, rows = r1 - r0, cols = r1;
    int width = left + cols * cell + 120, height = top + rows * cell + 40;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"monospace\" font-size=\"10\">\n"
               "<title>attention layer %d head %d</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, l, h);
    fprintf(f, "<text x=\"10\" y=\"16\" font-size=\"13\">attention, layer %d head %d (rows = queries, columns = keys)</text>\n", l, h);
    for (int k = 0; k < cols; k++) { /* key labels, rotated */
        fprintf(f, "<text class=\"label\" transform=\"translate(%d,%d) rotate(-60)\">", left + k * cell + cell / 2 + 3, top - 4);
        xml_text(f, labels[k]);
        fputs("</text>\n", f);
    }
    for (int q = r0; q < r1; q++) {
        fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 4, top + (q - r0) * cell + cell - 3);
        xml_text(f, labels[q]);
        fputs("</text>\n", f);
        for (int k = 0; k < cols; k++) {
            double p = k <= q ? att(v, l, h, q, k) : 0.0;
            colour(p, fill);
            fprintf(f, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>q %d k %d p %.4g</title></rect>\n",
                    left + k * cell, top + (q - r0) * cell, cell, cell, fill, q, k, p);
        }
    }
    for (int k = 0; k < cols; k++) /* parallel sets: outlined column and row bands */
        if (set_size(v, k) > 1 && (k == 0 || v->sets[k - 1] != v->sets[k])) {
            int size = 0;
            while (k + size < cols && v->sets[k + size] == v->sets[k]) size++;
            fprintf(f, "<rect class=\"set\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n",
                    left + k * cell, top, size * cell, rows * cell);
            if (k + size > r0 && k < r1) {
                int y0 = k < r0 ? r0 : k;
                fprintf(f, "<rect class=\"set\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n",
                        left, top + (y0 - r0) * cell, cols * cell, (k + size - y0) * cell);
            }
        }
    for (int i = 0; i <= 10; i++) { /* colour scale */
        colour(i / 10.0, fill);
        fprintf(f, "<rect class=\"scale\" x=\"%d\" y=\"%d\" width=\"16\" height=\"12\" fill=\"%s\" stroke=\"#888\"/>"
                   "<text x=\"%d\" y=\"%d\">%.1f</text>\n", left + cols * cell + 20, top + i * 13, fill, left + cols * cell + 40,
                top + i * 13 + 10, i / 10.0);
    }
    fputs("</svg>\n", f);
    return tempo_atomic_close(&out, 1, err);
}

int grid_svg(const char *path, const AttentionView *v, const char *const *labels, int row, char *err) {
    char fill[8];
    AtomicFile out;
    if (tempo_atomic_open(&out, path, "", err) != 0) return -1;
    FILE *f = out.f;
    int keys = row + 1, cell = 6, pad = 30, strip_w = keys * cell, strip_h = 24;
    int width = 60 + v->n_heads * (strip_w + pad), height = 80 + v->n_layers * (strip_h + pad);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"monospace\" font-size=\"10\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"10\" y=\"16\" font-size=\"13\">attention of row %d (",
            width, height, row);
    xml_text(f, labels[row]);
    fputs(") over its keys, one strip per layer x head</text>\n", f);
    for (int l = 0; l < v->n_layers; l++) {
        fprintf(f, "<text class=\"label\" x=\"10\" y=\"%d\">L%d</text>\n", 60 + l * (strip_h + pad) + strip_h / 2, l);
        for (int h = 0; h < v->n_heads; h++) {
            int x0 = 50 + h * (strip_w + pad), y0 = 50 + l * (strip_h + pad);
            if (l == 0) fprintf(f, "<text class=\"label\" x=\"%d\" y=\"44\">H%d</text>\n", x0, h);
            for (int k = 0; k < keys; k++) {
                double p = att(v, l, h, row, k);
                colour(p, fill);
                fprintf(f, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>L%d H%d k %d p %.4g</title></rect>\n",
                        x0 + k * cell, y0, cell, strip_h, fill, l, h, k, p);
                if (set_marker(v, k) == '[')
                    fprintf(f, "<line class=\"set\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#d62728\"/>\n", x0 + k * cell,
                            y0 - 3, x0 + k * cell, y0 + strip_h + 3);
            }
        }
    }
    fputs("</svg>\n", f);
    return tempo_atomic_close(&out, 1, err);
}
