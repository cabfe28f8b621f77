/* pictures.c - SVG pictures that explain isolation (NOTES.md, "Pictures").
 * Every matrix cell is a <rect class="cell ...">; masked cells add the
 * class "masked" and "future" (grey) or "sibling" (hatched), so a test can
 * count them against the trace's mask. */
#include "pictures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FUTURE_GREY "#d0d0d0"
#define SET_RED "#d62728"

/* ===================================================================== */
/* SVG pieces                                                            */
/* ===================================================================== */

/* s as XML text: markup characters as entities, control bytes as visible marks, bytes that are
 * not UTF-8 as U+FFFD (tempo_valid_utf8: a file name or a byte token need not be UTF-8). */
static void xml_text(FILE *f, const char *text) {
    char *valid = tempo_valid_utf8(text, strlen(text));
    for (const char *s = valid ? valid : "(out of memory)"; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '"') fputs("&quot;", f);
        else if (c == '\n') fputs("\xe2\x8f\x8e", f); /* ⏎ */
        else if (c < 0x20) fputs("\xe2\x90\xa3", f); /* ␣ for other control bytes */
        else fputc(c, f);
    }
    free(valid);
}

/* A token's text; one made only of spaces shows each as ␣. */
static void label_text(FILE *f, const char *s) {
    size_t spaces = strspn(s, " ");
    if (s[0] == '\0' || s[spaces] != '\0') {
        xml_text(f, s);
        return;
    }
    for (size_t i = 0; i < spaces; i++) fputs("\xe2\x90\xa3", f);
}

/* <text> at (x, y) with class cls (NULL: none), size px and anchor (NULL: start). */
static void svg_text(FILE *f, int x, int y, const char *cls, int size, const char *anchor, const char *text) {
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"%d\"", x, y, size);
    if (cls) fprintf(f, " class=\"%s\"", cls);
    if (anchor) fprintf(f, " text-anchor=\"%s\"", anchor);
    fputc('>', f);
    label_text(f, text);
    fputs("</text>\n", f);
}

/* Lines of text, one below the other, from (x, y). */
static void caption(FILE *f, int x, int y, const char *const *lines, int n) {
    for (int i = 0; i < n; i++) svg_text(f, x, y + i * 14, "caption", 11, NULL, lines[i]);
}

/* The header, the hatch pattern for hidden siblings, a white page, the
 * title and the caption's four lines. */
static FILE *svg_begin(AtomicFile *out, const char *path, int width, int height, const char *title,
                       const char *const caption_lines[4], char *err) {
    if (tempo_atomic_open(out, path, "", err) != 0) return NULL;
    FILE *f = out->f;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
               "height=\"%d\" font-family=\"DejaVu Sans Mono, monospace\" font-size=\"10\">\n<title>", width, height);
    xml_text(f, title);
    fputs("</title>\n<defs><pattern id=\"hatch\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" "
          "patternTransform=\"rotate(45)\"><rect width=\"4\" height=\"4\" fill=\"#fde0dc\"/><line x1=\"0\" y1=\"0\" "
          "x2=\"0\" y2=\"4\" stroke=\"" SET_RED "\" stroke-width=\"1.6\"/></pattern></defs>\n"
          "<style>.callout { fill: " SET_RED "; font-weight: bold; }</style>\n"
          "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
    svg_text(f, 10, 20, "title", 15, NULL, title);
    caption(f, 10, 40, caption_lines, 4);
    return f;
}

/* White -> dark blue, by sqrt(p) so small weights stay visible. */
static void colour(double p, char buf[8]) {
    double t = sqrt(p < 0 ? 0 : p > 1 ? 1 : p);
    snprintf(buf, 8, "#%02x%02x%02x", (int)(255 - 227 * t), (int)(255 - 200 * t), (int)(255 - 120 * t));
}

/* A difference d in [-max, max]: blue (less) -> white (0) -> red (more), by sqrt(|d| / max). */
static void diff_colour(double d, double max, char buf[8]) {
    double t = max > 0 ? sqrt(fmin(fabs(d) / max, 1.0)) : 0.0;
    if (d >= 0) snprintf(buf, 8, "#%02x%02x%02x", 255, (int)(255 - 200 * t), (int)(255 - 200 * t));
    else snprintf(buf, 8, "#%02x%02x%02x", (int)(255 - 200 * t), (int)(255 - 200 * t), 255);
}

/* The colour scale 0..1 (or -max..max when diff_max > 0), top at (x, y). */
static void colour_scale(FILE *f, int x, int y, double diff_max) {
    char fill[8], text[32];
    svg_text(f, x, y - 6, NULL, 10, NULL, diff_max > 0 ? "visible - isolated" : "attention p");
    for (int i = 0; i <= 10; i++) {
        double value = diff_max > 0 ? diff_max * (1.0 - i / 5.0) : i / 10.0;
        if (diff_max > 0) diff_colour(value, diff_max, fill);
        else colour(value, fill);
        fprintf(f, "<rect class=\"scale\" x=\"%d\" y=\"%d\" width=\"16\" height=\"12\" fill=\"%s\" stroke=\"#888\"/>\n", x,
                y + i * 13, fill);
        snprintf(text, sizeof text, diff_max > 0 ? "%+.3f" : "%.1f", value);
        svg_text(f, x + 20, y + i * 13 + 10, NULL, 10, NULL, text);
    }
}

/* Swatches for what a cell can be, top at (x, y). */
static void mask_key(FILE *f, int x, int y) {
    static const char *const fills[4] = {"white", FUTURE_GREY, "url(#hatch)", "none"};
    static const char *const names[4] = {"allowed, attention 0", "masked: a later row (causal)",
                                         "masked: a sibling in the same set (isolation)", "a parallel set"};
    for (int i = 0; i < 4; i++) {
        fprintf(f, "<rect class=\"key\" x=\"%d\" y=\"%d\" width=\"16\" height=\"12\" fill=\"%s\" stroke=\"%s\" stroke-width=\"%s\"/>\n",
                x, y + i * 16, fills[i], i == 3 ? SET_RED : "#888", i == 3 ? "2" : "1");
        svg_text(f, x + 22, y + i * 16 + 10, NULL, 10, NULL, names[i]);
    }
}

/* ===================================================================== */
/* Matrices of attention                                                 */
/* ===================================================================== */

typedef struct {
    int x0, y0, cell; /* top-left corner of cell (row 0, column 0) and cell size */
    int r0, r1;       /* rows [r0, r1) against keys [0, r1) */
} Frame;

static void cell_rect(FILE *f, Frame fr, int q, int k, const char *cls, const char *fill, double p) {
    fprintf(f, "<rect class=\"%s\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>query %d key %d: %.4g</title></rect>\n",
            cls, fr.x0 + k * fr.cell, fr.y0 + (q - fr.r0) * fr.cell, fr.cell, fr.cell, fill, q, k, p);
}

/* The cells of layer l head h; with `minus`, the difference v - minus
 * (shaded against diff_max), masked only where both views mask. */
static void attention_cells(FILE *f, const AttentionView *v, const AttentionView *minus, double diff_max, int l, int h,
                            Frame fr) {
    char fill[8];
    for (int q = fr.r0; q < fr.r1; q++)
        for (int k = 0; k < fr.r1; k++) {
            int open = attention_allowed(v, l, q, k) || (minus && attention_allowed(minus, l, q, k));
            double p = attention_at(v, l, h, q, k) - (minus ? attention_at(minus, l, h, q, k) : 0.0);
            if (k > q) cell_rect(f, fr, q, k, "cell masked future", FUTURE_GREY, 0.0);
            else if (!open) cell_rect(f, fr, q, k, "cell masked sibling", "url(#hatch)", 0.0);
            else {
                if (minus) diff_colour(p, diff_max, fill);
                else colour(p, fill);
                cell_rect(f, fr, q, k, "cell", fill, p);
            }
        }
}

/* Key labels above the columns (rotated) and, with rows, query labels left of the rows. */
static void axis_labels(FILE *f, const char *const *labels, Frame fr, int rows) {
    for (int k = 0; k < fr.r1; k++) {
        fprintf(f, "<text class=\"label key\" transform=\"translate(%d,%d) rotate(-60)\">", fr.x0 + k * fr.cell + fr.cell / 2 + 3,
                fr.y0 - 4);
        label_text(f, labels[k]);
        fputs("</text>\n", f);
    }
    for (int q = fr.r0; rows && q < fr.r1; q++) {
        char text[16];
        snprintf(text, sizeof text, "%d", q);
        svg_text(f, fr.x0 - 4, fr.y0 + (q - fr.r0) * fr.cell + fr.cell - 3, "label query", 10, "end", labels[q]);
        svg_text(f, fr.x0 - 90, fr.y0 + (q - fr.r0) * fr.cell + fr.cell - 3, "index", 8, "end", text);
    }
}

static void outline(FILE *f, Frame fr, int row, int col, int rows, int cols, const char *cls, const char *dash) {
    fprintf(f, "<rect class=\"%s\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"" SET_RED "\" "
               "stroke-width=\"%s\"%s/>\n", cls, fr.x0 + col * fr.cell, fr.y0 + (row - fr.r0) * fr.cell, cols * fr.cell,
            rows * fr.cell, dash ? "1" : "2", dash ? dash : "");
}

/* Each parallel set [k, k+size): its square on the diagonal, the keys its
 * rows read before it (dashed, to the left) and the later rows that read it
 * (dashed, below); nothing above the diagonal, where every cell is masked. */
static void set_boxes(FILE *f, const AttentionView *v, Frame fr) {
    for (int k = 0; k < fr.r1; k++) {
        if (attention_set_size(v, k) < 2 || (k > 0 && v->sets[k - 1] == v->sets[k])) continue;
        int size = 0;
        while (k + size < fr.r1 && v->sets[k + size] == v->sets[k]) size++;
        int top = k > fr.r0 ? k : fr.r0, bottom = k + size; /* rows [top, bottom) of the set that are shown */
        if (bottom > top) {
            if (k > 0) outline(f, fr, top, 0, bottom - top, k, "set rows", " stroke-dasharray=\"3,2\"");
            outline(f, fr, top, k, bottom - top, size, "set block", NULL);
        }
        int below = bottom > fr.r0 ? bottom : fr.r0;
        if (fr.r1 > below) outline(f, fr, below, k, fr.r1 - below, size, "set keys", " stroke-dasharray=\"3,2\"");
    }
}

/* A note beside the first shown row of a later set member: its earlier
 * sibling is hidden (isolation) or seen (visible mode). */
static void point_out_siblings(FILE *f, const AttentionView *v, int l, Frame fr) {
    for (int q = fr.r0 > 1 ? fr.r0 : 1; q < fr.r1; q++) {
        if (v->sets[q] != v->sets[q - 1]) continue;
        int hidden = !attention_allowed(v, l, q, q - 1);
        svg_text(f, fr.x0 + (q + 1) * fr.cell + 6, fr.y0 + (q - fr.r0) * fr.cell + fr.cell - 3, "callout", 11, NULL,
                 hidden ? "\xe2\x86\x90 sibling hidden" : "\xe2\x86\x90 sees its sibling");
        return;
    }
}

/* ===================================================================== */
/* The heatmap and the layer x head grid                                 */
/* ===================================================================== */

int heatmap_svg(const char *path, const AttentionView *v, const char *const *labels, int l, int h, int r0, int r1,
                char *err) {
    Frame fr = {170, 190, 14, r0, r1};
    int width = fr.x0 + r1 * fr.cell + 340, height = fr.y0 + (r1 - r0) * fr.cell + 40;
    char title[512];
    snprintf(title, sizeof title, "Attention in %s, %s mode: layer %d, head %d, rows %d-%d", v->model[0] ? v->model : "a trace",
             attention_mode(v, l), l, h, r0, r1 - 1);
    const char *lines[4] = {
        "Each row is a token (the query) and how it spreads its attention over the earlier tokens (the keys, columns).",
        "Red squares: a parallel set, the tokens TEMPO put at one position; dashed: the keys its rows read before it,",
        "and the later rows that read it. Isolated mode hides the members of a set from each other: the hatched cells",
        "inside each square. Visible mode lets later members see earlier ones. Grey: the future, masked in every mode."};
    AtomicFile out;
    FILE *f = svg_begin(&out, path, width, height < 420 ? 420 : height, title, lines, err);
    if (!f) return -1;
    attention_cells(f, v, NULL, 0, l, h, fr);
    axis_labels(f, labels, fr, 1);
    set_boxes(f, v, fr);
    point_out_siblings(f, v, l, fr);
    colour_scale(f, fr.x0 + r1 * fr.cell + 20, fr.y0, 0);
    mask_key(f, fr.x0 + r1 * fr.cell + 20, fr.y0 + 160);
    fputs("</svg>\n", f);
    return tempo_atomic_close(&out, 1, err);
}

/* One strip: query `row` over keys 0..row in layer l head h, set edges as red lines. */
static void grid_strip(FILE *f, const AttentionView *v, int row, int l, int h, int x0, int y0, int cell, int strip_h) {
    char fill[8];
    for (int k = 0; k <= row; k++) {
        double p = attention_at(v, l, h, row, k);
        int open = attention_allowed(v, l, row, k);
        if (open) colour(p, fill);
        fprintf(f, "<rect class=\"cell%s\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>layer %d head %d key %d: %.4g</title></rect>\n",
                open ? "" : " masked sibling", x0 + k * cell, y0, cell, strip_h, open ? fill : "url(#hatch)", l, h, k, p);
        int first = attention_set_size(v, k) > 1 && (k == 0 || v->sets[k - 1] != v->sets[k]);
        int last = attention_set_size(v, k) > 1 && (k == row || v->sets[k + 1] != v->sets[k]);
        for (int edge = 0; edge < 2; edge++)
            if (edge ? last : first)
                fprintf(f, "<line class=\"set\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" SET_RED "\" stroke-width=\"1.5\"/>\n",
                        x0 + (k + edge) * cell, y0 - 3, x0 + (k + edge) * cell, y0 + strip_h + 3);
    }
}

int grid_svg(const char *path, const AttentionView *v, const char *const *labels, int row, char *err) {
    int keys = row + 1, cell = 10, pad = 24, strip_w = keys * cell, strip_h = 22, x0 = 50, y0 = 110;
    int n_layers = attention_kept_layers(v), n_heads = attention_kept_heads(v); /* the ones the trace holds */
    int grid_w = n_heads * (strip_w + pad), grid_h = n_layers * (strip_h + pad);
    char title[512];
    snprintf(title, sizeof title, "Attention of row %d (%s) in %s, %s mode, %s", row, labels[row],
             v->model[0] ? v->model : "a trace", attention_mode(v, -1),
             v->keep.layers || v->keep.heads ? "the layers and heads the trace holds" : "every layer and head");
    const char *lines[4] = {"One strip per layer (rows) and head (columns): how this query spreads its attention over its keys.",
                            "Red lines enclose the members of each parallel set among the keys; hatched keys are siblings the",
                            "query may not see (isolation). Keys are labelled under the bottom row of strips; the colour",
                            "scale is on the right."};
    AtomicFile out;
    FILE *f = svg_begin(&out, path, x0 + grid_w + 330, y0 + grid_h + 80, title, lines, err);
    if (!f) return -1;
    char text[16];
    for (int i = 0; i < n_layers; i++) {
        snprintf(text, sizeof text, "L%d", attention_kept_layer(v, i));
        svg_text(f, 10, y0 + i * (strip_h + pad) + strip_h / 2 + 4, "label layer", 11, NULL, text);
        for (int j = 0; j < n_heads; j++) {
            int x = x0 + j * (strip_w + pad), y = y0 + i * (strip_h + pad);
            snprintf(text, sizeof text, "H%d", attention_kept_head(v, j));
            if (i == 0) svg_text(f, x, y0 - 8, "label head", 11, NULL, text);
            grid_strip(f, v, row, attention_kept_layer(v, i), attention_kept_head(v, j), x, y, cell, strip_h);
        }
    }
    for (int h = 0; h < n_heads; h++) /* key labels under the last layer's strips */
        for (int k = 0; k < keys; k++) {
            fprintf(f, "<text class=\"label key\" font-size=\"8\" transform=\"translate(%d,%d) rotate(60)\">",
                    x0 + h * (strip_w + pad) + k * cell + 2, y0 + grid_h - pad + 6);
            label_text(f, labels[k]);
            fputs("</text>\n", f);
        }
    colour_scale(f, x0 + grid_w + 10, y0, 0);
    mask_key(f, x0 + grid_w + 10, y0 + 160);
    fputs("</svg>\n", f);
    return tempo_atomic_close(&out, 1, err);
}

/* ===================================================================== */
/* Isolated vs visible                                                   */
/* ===================================================================== */

/* Largest |vis - iso| over the shown cells either view allows. */
static double largest_difference(const AttentionView *iso, const AttentionView *vis, int l, int h, int r0, int r1) {
    double max = 0;
    for (int q = r0; q < r1; q++)
        for (int k = 0; k <= q; k++)
            max = fmax(max, fabs(attention_at(vis, l, h, q, k) - attention_at(iso, l, h, q, k)));
    return max;
}

int pair_svg(const char *path, const AttentionView *iso, const AttentionView *vis, const char *const *labels, int l, int h,
             int r0, int r1, char *err) {
    int cell = 12, gap = 70, panel = r1 * cell + gap;
    Frame fr = {170, 230, cell, r0, r1};
    char title[512];
    snprintf(title, sizeof title, "Isolated vs visible in %s: the same rows, teacher-forced; layer %d, head %d, rows %d-%d",
             iso->model[0] ? iso->model : "a trace", l, h, r0, r1 - 1);
    const char *lines[4] = {
        "One run's rows (same tokens, same positions) computed twice: left under the isolated mask, middle under the visible mask.",
        "Isolated: a member of a parallel set (red box) cannot see its siblings (hatched). Visible: later members see earlier ones.",
        "Right: visible minus isolated, on every cell. Red: more attention with the siblings visible, blue: less. A sibling cell can only",
        "gain; the others move both ways. Rows up to and including the first set's first member are identical (white); later ones all differ."};
    AtomicFile out;
    int height = fr.y0 + (r1 - r0) * cell + 40;
    FILE *f = svg_begin(&out, path, fr.x0 + 3 * panel + 300, height < 460 ? 460 : height, title, lines, err);
    if (!f) return -1;
    const char *names[3] = {"isolated", "visible", "visible - isolated"};
    double diff_max = largest_difference(iso, vis, l, h, r0, r1);
    for (int i = 0; i < 3; i++) {
        Frame pf = fr;
        pf.x0 += i * panel;
        svg_text(f, pf.x0, 120, "panel", 13, NULL, names[i]);
        attention_cells(f, i == 0 ? iso : vis, i == 2 ? iso : NULL, diff_max, l, h, pf);
        axis_labels(f, labels, pf, i == 0);
        set_boxes(f, iso, pf);
        if (i < 2) point_out_siblings(f, i == 0 ? iso : vis, l, pf);
    }
    colour_scale(f, fr.x0 + 3 * panel, fr.y0, 0);
    colour_scale(f, fr.x0 + 3 * panel + 110, fr.y0, diff_max > 0 ? diff_max : 1e-9);
    mask_key(f, fr.x0 + 3 * panel, fr.y0 + 170);
    fputs("</svg>\n", f);
    return tempo_atomic_close(&out, 1, err);
}

/* ===================================================================== */
/* A TEMPO run                                                           */
/* ===================================================================== */

enum { TREE_CHAR = 8, TREE_BOX = 20, TREE_SLOT = 34, TREE_WIDTH = 1200, TREE_LEFT = 10, TREE_TOP = 120 };

typedef struct {
    char **labels;  /* [n_members] token texts; then the prompt's text at [n_members] */
    int *x, *line;  /* per column: column 0 the prompt, column s+1 step s */
    int *line_y;    /* top of each line of columns */
    int n_lines, height;
} TreeLayout;

static int column_width(const TreeLayout *t, const Generation *gen, int column) {
    int chars = 0;
    if (column == 0) chars = (int)strlen(t->labels[gen->n_members]);
    else
        for (int i = 0; i < gen->steps[column - 1].n_members; i++) {
            int len = (int)strlen(t->labels[gen->steps[column - 1].first_member + i]);
            chars = len > chars ? len : chars;
        }
    return (chars < 2 ? 2 : chars) * TREE_CHAR + 14;
}

/* Columns left to right, wrapped into lines TREE_WIDTH wide; each line as tall as its widest set. */
static void tree_place(TreeLayout *t, const Generation *gen) {
    int x = TREE_LEFT, line = 0, members = 1, y = TREE_TOP;
    for (int c = 0; c <= gen->n_steps; c++) {
        int w = column_width(t, gen, c) + 16;
        if (x + w > TREE_WIDTH && x > TREE_LEFT) {
            t->line_y[line++] = y;
            y += members * TREE_SLOT + 30;
            x = TREE_LEFT, members = 1;
        }
        t->x[c] = x, t->line[c] = line;
        x += w;
        if (c > 0 && gen->steps[c - 1].n_members > members) members = gen->steps[c - 1].n_members;
    }
    t->line_y[line] = y;
    t->n_lines = line + 1;
    t->height = y + members * TREE_SLOT + 30;
}

/* Labels for every member and the prompt, and the places of the columns. */
static int tree_layout(TreeLayout *t, const Generation *gen, const Tokenizer *tok, char *err) {
    memset(t, 0, sizeof *t);
    t->labels = calloc((size_t)gen->n_members + 1, sizeof(char *));
    t->x = malloc(((size_t)gen->n_steps + 1) * sizeof(int));
    t->line = malloc(((size_t)gen->n_steps + 1) * sizeof(int));
    t->line_y = malloc(((size_t)gen->n_steps + 1) * sizeof(int));
    size_t cap = 64, len = 0;
    char *prompt = malloc(cap);
    if (!t->labels || !t->x || !t->line || !t->line_y || !prompt) return free(prompt), tempo_error(err, "out of memory");
    prompt[0] = '\0';
    for (int i = 1; i < gen->n_prompt; i++) { /* the prompt as one piece of text (BOS left out) */
        char *piece = token_label(tok, gen->tokens[i - 1], gen->tokens[i]);
        size_t n = piece ? strlen(piece) : 0;
        if (piece && tempo_grow((void **)&prompt, &cap, len + n + 1, 1, err) == 0) memcpy(prompt + len, piece, n + 1), len += n;
        free(piece);
    }
    t->labels[gen->n_members] = prompt;
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        int prev = s ? gen->members[gen->steps[s - 1].first_member].token : gen->tokens[gen->n_prompt - 1];
        for (int i = 0; i < st->n_members; i++)
            if (!(t->labels[st->first_member + i] = token_label(tok, prev, gen->members[st->first_member + i].token)))
                return tempo_error(err, "out of memory");
    }
    tree_place(t, gen);
    return 0;
}

static void tree_free(TreeLayout *t, const Generation *gen) {
    for (int i = 0; t->labels && i <= gen->n_members; i++) free(t->labels[i]);
    free(t->labels);
    free(t->x);
    free(t->line);
    free(t->line_y);
}

/* Whether member i of step s is what the next set was drawn from: with
 * --next-from last the step's last fed row; with mean every fed member (none
 * can be pruned before the next set is drawn). The last step has no next set. */
static int continued_from(const Generation *gen, int s, int i, NextFrom next_from) {
    const Step *st = &gen->steps[s];
    const Member *mem = &gen->members[st->first_member + i];
    if (s + 1 >= gen->n_steps || mem->row < 0) return 0;
    if (next_from == NEXT_MEAN) return 1;
    for (int j = 0; j < st->n_members; j++)
        if (gen->members[st->first_member + j].row > mem->row) return 0;
    return 1;
}

/* One member: a box shaded by its probability, struck out when pruned, dotted
 * when never fed, outlined in black when the next set was drawn from it. */
static void tree_member(FILE *f, const Member *mem, const char *label, int x, int y, int w, int from) {
    char fill[8], prob[16];
    int pruned = mem->pruned_at >= 0;
    colour(mem->prob, fill);
    fprintf(f, "<g class=\"member%s%s\"><title>p %.4f%s%s</title>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
               "rx=\"3\" fill=\"%s\" stroke=\"%s\" stroke-width=\"%s\"%s/>\n",
            pruned ? " pruned" : mem->row < 0 ? " unfed" : "", from ? " from" : "", mem->prob, pruned ? ", pruned" : "",
            from ? ", the next set was drawn from it" : "", x, y, w, TREE_BOX, pruned ? "#eeeeee" : fill,
            from ? "#000" : pruned ? "#999" : "#555", from ? "2" : "1", mem->row < 0 && !pruned ? " stroke-dasharray=\"2,2\"" : "");
    fprintf(f, "<text class=\"token\" x=\"%d\" y=\"%d\" font-size=\"13\" fill=\"%s\" xml:space=\"preserve\">", x + 6, y + 15,
            pruned ? "#888" : mem->prob > 0.45 ? "white" : "black");
    label_text(f, label);
    fputs("</text>\n", f);
    if (pruned)
        fprintf(f, "<line class=\"strike\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" SET_RED "\" stroke-width=\"1.5\"/>\n",
                x + 3, y + TREE_BOX / 2, x + w - 3, y + TREE_BOX / 2);
    snprintf(prob, sizeof prob, "%.2f", mem->prob);
    svg_text(f, x + 2, y + TREE_BOX + 10, "prob", 9, NULL, prob);
    fputs("</g>\n", f);
}

/* Step s's column: a frame around a parallel set, its members stacked, and a
 * line from each fed member to the next column (every fed member feeds the
 * next step; dashed once it is pruned): black from the member the next set
 * was drawn from, grey from the others. */
static void tree_column(FILE *f, const Generation *gen, const TreeLayout *t, int s, NextFrom next_from) {
    const Step *st = &gen->steps[s];
    int x = t->x[s + 1], y = t->line_y[t->line[s + 1]], w = column_width(t, gen, s + 1);
    char pos[32];
    snprintf(pos, sizeof pos, "%d", st->logical_pos);
    svg_text(f, x, y - 6, "position", 8, NULL, pos);
    if (st->n_members > 1)
        fprintf(f, "<rect class=\"set\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"" SET_RED "\" "
                   "stroke-dasharray=\"4,2\"/>\n", x - 3, y - 3, w + 6, st->n_members * TREE_SLOT);
    int next = s + 2 <= gen->n_steps && t->line[s + 2] == t->line[s + 1];
    for (int i = 0; i < st->n_members; i++) {
        const Member *mem = &gen->members[st->first_member + i];
        int from = continued_from(gen, s, i, next_from);
        tree_member(f, mem, t->labels[st->first_member + i], x, y + i * TREE_SLOT, w, from);
        if (next && mem->row >= 0)
            fprintf(f, "<line class=\"path%s\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%s\"%s/>\n",
                    from ? "" : " feed", x + w, y + i * TREE_SLOT + TREE_BOX / 2, t->x[s + 2], y + TREE_BOX / 2,
                    from ? "#333" : "#aaa", from ? "2" : "1", mem->pruned_at >= 0 ? " stroke-dasharray=\"3,3\"" : "");
    }
}

int tree_svg(const char *path, const Generation *gen, const Tokenizer *t, const char *model, const char *mode,
             NextFrom next_from, char *err) {
    TreeLayout lay;
    if (tree_layout(&lay, gen, t, err) != 0) return tree_free(&lay, gen), -1;
    char title[512];
    snprintf(title, sizeof title, "A TEMPO run of %s, %s mode, --next-from %s: %d steps, %d tokens", model, mode,
             next_from == NEXT_MEAN ? "mean" : "last", gen->n_steps, gen->n_members);
    const char *lines[4] = {
        "The text runs left to right. Where several tokens clear the threshold, TEMPO keeps them all at one position: they are",
        "stacked in a red frame, and every fed one feeds the next step (lines). Black outline and black line: what the next set was",
        next_from == NEXT_MEAN
            ? "drawn from (--next-from mean: every member, their distributions averaged). Shade and number: probability when chosen."
            : "drawn from (--next-from last: the set's last member, so [a/b]c reads as bc). Shade and number: probability when chosen.",
        "Struck out (dashed line): pruned later because the following rows stopped attending to it. Small numbers: the logical position."};
    AtomicFile out;
    FILE *f = svg_begin(&out, path, TREE_WIDTH + 40, lay.height, title, lines, err);
    if (!f) return tree_free(&lay, gen), -1;
    for (int i = 0; i < gen->n_members; i++)
        if (gen->members[i].row < 0) { /* --emulate last-member-only */
            svg_text(f, 10, 96, "caption", 11, NULL, "Dotted: a member never fed to the model (last-member-only emulation feeds only the last).");
            break;
        }
    fprintf(f, "<g class=\"prompt\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"3\" fill=\"#f4f4f4\" stroke=\"#555\"/>\n",
            lay.x[0], lay.line_y[0], column_width(&lay, gen, 0), TREE_BOX);
    svg_text(f, lay.x[0] + 6, lay.line_y[0] + 15, "token", 13, NULL, lay.labels[gen->n_members]);
    svg_text(f, lay.x[0], lay.line_y[0] - 6, "position", 8, NULL, "prompt");
    if (gen->n_steps > 0 && lay.line[1] == 0)
        fprintf(f, "<line class=\"path\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\" stroke-width=\"2\"/>\n",
                lay.x[0] + column_width(&lay, gen, 0), lay.line_y[0] + TREE_BOX / 2, lay.x[1], lay.line_y[0] + TREE_BOX / 2);
    fputs("</g>\n", f);
    for (int s = 0; s < gen->n_steps; s++) tree_column(f, gen, &lay, s, next_from);
    fputs("</svg>\n", f);
    tree_free(&lay, gen);
    return tempo_atomic_close(&out, 1, err);
}

/* ===================================================================== */
/* Width and threshold over a run                                         */
/* ===================================================================== */

enum { SERIES_LEFT = 50, SERIES_TOP = 100, SERIES_PLOT_H = 160, SERIES_BAR = 14 };

/* The axes: members on the left (0..max_members), threshold on the right (0..1). */
static void series_axes(FILE *f, int n_steps, int max_members) {
    int right = SERIES_LEFT + n_steps * SERIES_BAR, bottom = SERIES_TOP + SERIES_PLOT_H;
    char label[32];
    fprintf(f, "<g class=\"axes\" stroke=\"#555\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/><line x1=\"%d\" y1=\"%d\" "
               "x2=\"%d\" y2=\"%d\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/></g>\n",
            SERIES_LEFT, bottom, right, bottom, SERIES_LEFT, SERIES_TOP, SERIES_LEFT, bottom, right, SERIES_TOP, right, bottom);
    snprintf(label, sizeof label, "%d", max_members);
    svg_text(f, SERIES_LEFT - 6, SERIES_TOP + 4, "axis", 10, "end", label);
    svg_text(f, SERIES_LEFT - 6, bottom + 4, "axis", 10, "end", "0");
    svg_text(f, SERIES_LEFT - 6, SERIES_TOP - 10, "axis", 10, "middle", "members");
    svg_text(f, right + 6, SERIES_TOP + 4, "axis", 10, NULL, "1");
    svg_text(f, right + 6, bottom + 4, "axis", 10, NULL, "0");
    svg_text(f, right + 6, SERIES_TOP - 10, "axis", 10, NULL, "threshold");
    snprintf(label, sizeof label, "step 0 .. %d", n_steps - 1);
    svg_text(f, SERIES_LEFT, bottom + 18, "axis", 10, NULL, label);
}

/* One bar: the set's members (light), the fed ones (blue), the live ones at the end (dark). */
static void series_bar(FILE *f, int s, const SeriesPoint *p, double unit) {
    int x = SERIES_LEFT + s * SERIES_BAR + 1, bottom = SERIES_TOP + SERIES_PLOT_H;
    fprintf(f, "<rect class=\"width\" data-step=\"%d\" data-members=\"%d\" data-fed=\"%d\" data-live=\"%d\" x=\"%d\" y=\"%.1f\" "
               "width=\"%d\" height=\"%.1f\" fill=\"#c6dbef\"><title>step %d, position %d: %d members, %d fed, %d live, "
               "threshold %.4g</title></rect>\n",
            s, p->members, p->fed, p->live, x, bottom - p->members * unit, SERIES_BAR - 2, p->members * unit, s, p->position,
            p->members, p->fed, p->live, p->threshold);
    fprintf(f, "<rect class=\"fed\" x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"#6baed6\"/>\n", x,
            bottom - p->fed * unit, SERIES_BAR - 2, p->fed * unit);
    fprintf(f, "<rect class=\"live\" x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"#08519c\"/>\n", x,
            bottom - p->live * unit, SERIES_BAR - 2, p->live * unit);
}

int series_svg(const char *path, const Generation *gen, const char *model, const char *mode, char *err) {
    SeriesPoint *points = malloc(((size_t)gen->n_steps + 1) * sizeof *points);
    if (!points) return tempo_error(err, "out of memory for the series of %d steps", gen->n_steps);
    generation_series(gen, points);
    int max_members = 1;
    for (int s = 0; s < gen->n_steps; s++)
        if (points[s].members > max_members) max_members = points[s].members;
    char title[512];
    snprintf(title, sizeof title, "Width and threshold over a TEMPO run of %s, %s mode: %d steps", model, mode, gen->n_steps);
    const char *lines[4] = {"One bar per step, as tall as its parallel set (left scale): light, members selected; blue, members fed;",
                            "dark blue, members still live at the end (not pruned). A set of one is a single token.",
                            "Red line: the threshold each step selected with (right scale, 0 to 1).", ""};
    int width = SERIES_LEFT + gen->n_steps * SERIES_BAR + 80, height = SERIES_TOP + SERIES_PLOT_H + 30;
    AtomicFile out;
    FILE *f = svg_begin(&out, path, width < 640 ? 640 : width, height, title, lines, err);
    if (!f) return free(points), -1;
    double unit = (double)SERIES_PLOT_H / max_members;
    series_axes(f, gen->n_steps, max_members);
    for (int s = 0; s < gen->n_steps; s++) series_bar(f, s, &points[s], unit);
    fputs("<polyline class=\"threshold\" fill=\"none\" stroke=\"" SET_RED "\" stroke-width=\"1.5\" points=\"", f);
    for (int s = 0; s < gen->n_steps; s++)
        fprintf(f, "%s%d,%.1f", s ? " " : "", SERIES_LEFT + s * SERIES_BAR + SERIES_BAR / 2,
                SERIES_TOP + SERIES_PLOT_H * (1.0 - points[s].threshold));
    fputs("\"/>\n</svg>\n", f);
    free(points);
    return tempo_atomic_close(&out, 1, err);
}
