/* compare_suite.c - tempo compare's prompts and reports: the prompt
 * suite file, per-member and summary lines, the suite table and JSON
 * (compare.c runs one prompt both ways). */
#define _GNU_SOURCE
#include "compare_suite.h"
#include "inputs.h"
#include "printing.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The distribution metrics of one member, or their means; m NULL: none to give (no later member), null. */
static void add_metrics_json(cJSON *o, const LogitMetrics *m) {
    static const char *const keys[] = {"kl_isolated_visible", "kl_visible_isolated", "js", "cosine", "top1", "top5", "top10"};
    const LogitMetrics none = {0}, *v = m ? m : &none;
    double values[] = {v->kl_ab, v->kl_ba, v->js, v->cosine, v->top1, v->top5, v->top10};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cJSON_AddItemToObject(o, keys[i], m ? cJSON_CreateNumber(values[i]) : cJSON_CreateNull());
}

/* The teacher-forced metrics of every member of the isolated run's
 * parallel sets; a member never fed (--emulate) has row null, no metrics. */
static cJSON *members_json(const Comparison *cmp) {
    const Generation *iso = &cmp->iso;
    cJSON *tf = cJSON_CreateArray();
    for (int s = 0; s < iso->n_steps; s++) {
        const Step *st = &iso->steps[s];
        for (int i = 0; i < st->n_members && st->n_members > 1; i++) {
            const Member *mem = &iso->members[st->first_member + i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", s);
            cJSON_AddNumberToObject(o, "member", i);
            if (mem->row >= 0) cJSON_AddNumberToObject(o, "row", mem->row);
            else cJSON_AddNullToObject(o, "row");
            cJSON_AddNumberToObject(o, "token", mem->token);
            cJSON_AddBoolToObject(o, "predicts_next", i == st->n_members - 1);
            if (mem->row >= 0) { /* argmax_agree is a member's own: the summary gives its mean, argmax_agreement */
                add_metrics_json(o, &cmp->member[st->first_member + i]);
                cJSON_AddBoolToObject(o, "argmax_agree", cmp->member[st->first_member + i].argmax_agree);
            }
            cJSON_AddItemToArray(tf, o);
        }
    }
    return tf;
}

static void add_summary_json(cJSON *out, const Comparison *cmp) {
    const CompareSummary *sum = &cmp->sum;
    cJSON *js = cJSON_AddObjectToObject(out, "summary");
    cJSON_AddNumberToObject(js, "steps_isolated", cmp->iso.n_steps);
    cJSON_AddNumberToObject(js, "steps_visible", cmp->vis.n_steps);
    cJSON_AddNumberToObject(js, "parallel_steps", sum->parallel_steps);
    cJSON_AddNumberToObject(js, "rows", sum->rows);
    cJSON_AddNumberToObject(js, "identical_prefix_rows", sum->prefix_rows);
    cJSON_AddNumberToObject(js, "prefix_max_abs_diff", sum->prefix_max_abs);
    cJSON_AddNumberToObject(js, "later_members", sum->later_members);
    LogitMetrics mean = {sum->kl_iv, sum->kl_vi, sum->js, sum->cosine, sum->top1, sum->top5, sum->top10, 0};
    add_metrics_json(js, sum->later_members ? &mean : NULL); /* means over no member: null, not 0 */
    cJSON_AddItemToObject(js, "argmax_agreement", sum->later_members ? cJSON_CreateNumber(sum->argmax) : cJSON_CreateNull());
    cJSON_AddItemToObject(js, "first_divergent_step", /* none: null, as the audit writes it */
                          sum->first_divergence >= 0 ? cJSON_CreateNumber(sum->first_divergence) : cJSON_CreateNull());
    cJSON *thirds = cJSON_AddObjectToObject(js, "js_by_third");
    const char *third_names[COMPARE_THIRDS] = {"early", "middle", "late"};
    for (int t = 0; t < COMPARE_THIRDS; t++) {
        cJSON *o = cJSON_AddObjectToObject(thirds, third_names[t]);
        cJSON_AddNumberToObject(o, "later_members", sum->third_members[t]);
        if (sum->third_members[t]) cJSON_AddNumberToObject(o, "js", sum->third_js[t]);
        else cJSON_AddNullToObject(o, "js");
    }
    cJSON *layers = cJSON_AddArrayToObject(js, "reduction_pct_per_layer");
    for (int l = 0; l < sum->n_layers; l++)
        cJSON_AddItemToArray(layers, isfinite(sum->layer_reduction[l]) ? cJSON_CreateNumber(sum->layer_reduction[l]) : cJSON_CreateNull());
    cJSON *ppl = cJSON_AddObjectToObject(js, "perplexity_greedy_scoring");
    cJSON_AddItemToObject(ppl, "isolated", isfinite(sum->ppl_iso) ? cJSON_CreateNumber(sum->ppl_iso) : cJSON_CreateNull());
    cJSON_AddItemToObject(ppl, "visible", isfinite(sum->ppl_vis) ? cJSON_CreateNumber(sum->ppl_vis) : cJSON_CreateNull());
    cJSON_AddNumberToObject(ppl, "isolated_tokens", sum->ppl_tokens_iso);
    cJSON_AddNumberToObject(ppl, "visible_tokens", sum->ppl_tokens_vis);
    cJSON_AddNumberToObject(js, "isolated_seconds", sum->iso_seconds);
    cJSON_AddNumberToObject(js, "visible_seconds", sum->vis_seconds);
}

/* One line per member of each parallel set of the isolated run, with its text. */
static void print_member_rows(const Comparison *cmp, const Tokenizer *t, const Config *c) {
    const Generation *iso = &cmp->iso;
    printf("step  pos  member  row  token   KL(i||v)   KL(v||i)   JS        cosine  top1 top5 top10  text\n");
    for (int s = 0; s < iso->n_steps; s++) {
        const Step *st = &iso->steps[s];
        for (int i = 0; i < st->n_members && st->n_members > 1; i++) {
            const Member *mem = &iso->members[st->first_member + i];
            const LogitMetrics *lm = &cmp->member[st->first_member + i];
            printf("%4d %4d  %6d ", s, st->logical_pos, i);
            if (mem->row < 0)
                printf("   -  %5d  %-66s", mem->token, tempo_is_eos(c, mem->token) ? "not fed (EOS: a branch that ends)"
                                                                                     : "not fed (--emulate last-member-only)");
            else
                printf("%4d  %5d  %9.3e  %9.3e  %9.3e  %.4f  %.1f  %.1f  %.1f  ", mem->row, mem->token, lm->kl_ab, lm->kl_ba,
                       lm->js, lm->cosine, lm->top1, lm->top5, lm->top10);
            show_token(stdout, t, c, token_before(iso, s), mem->token, 1);
            printf("%s\n", i == st->n_members - 1 && mem->row >= 0 ? "  <- predicts the next step" : "");
        }
    }
}

/* Where free-running isolated and visible first select different sets, with the two sets. */
static void print_divergence(const Comparison *cmp, const Tokenizer *t, const Config *c) {
    int s = cmp->sum.first_divergence;
    if (s < 0) {
        printf("free-running: isolated and visible select the same sets at every step\n");
        return;
    }
    const Generation *runs[2] = {&cmp->iso, &cmp->vis};
    printf("free-running: the modes part at step %d (position %d):", s,
           s < cmp->iso.n_steps ? cmp->iso.steps[s].logical_pos : cmp->vis.steps[s].logical_pos);
    for (int k = 0; k < 2; k++) {
        printf(k ? ", visible " : " isolated ");
        if (s < runs[k]->n_steps) print_step(stdout, runs[k], s, t, c, token_before(runs[k], s), 0, 0);
        else printf("(ended: %s)", runs[k]->stop_reason);
    }
    printf("\n");
}

static const char compare_legend[] =
    "legend: the isolated run's rows, teacher-forced under the isolated (i) and the visible (v) mask; a later member is\n"
    "  member 1, 2, ... of a parallel set (member 0 sees the same keys under both masks)\n"
    "  KL(i||v), KL(v||i)  Kullback-Leibler divergence of the two next-token distributions, in nats (natural log)\n"
    "  JS                  Jensen-Shannon divergence, in bits (log base 2): 0 same, 1 disjoint\n"
    "  cosine              cosine similarity of the two probability vectors; top1/5/10: shared share of the k likeliest\n"
    "  early/middle/late   mean JS over later members of the steps in each third of the run\n"
    "  reduct% per layer   100 (1 - attention a parallel token receives / a single token's), isolated run (attention)\n"
    "  ppl iso/vis         perplexity of each mode's text (prompt + the member each step continued from) scored by a\n"
    "                      plain causal pass, one token a position: exp(mean -ln p) over the generated tokens\n";

/* A value, or n/a for NAN, in `width` columns. */
static void print_cell(const char *fmt, int width, double x) {
    if (isfinite(x)) printf(fmt, x);
    else printf("%*s", width, "n/a");
}

/* Which rows both masks treat alike, what the later members saw, thirds, layers, perplexity. */
static void print_compare_summary(const Comparison *cmp, const Tokenizer *t, const Config *c) {
    const CompareSummary *sum = &cmp->sum;
    if (sum->prefix_rows < sum->rows)
        printf("rows 0-%d (up to and including the first set's first member) see the same keys under both masks: "
               "max |isolated - visible| logit %g%s\n", sum->prefix_rows - 1, sum->prefix_max_abs,
               sum->prefix_max_abs == 0 ? " (bitwise identical)" : "");
    else
        printf("all %d rows see the same keys under both masks (no set fed a second member): max |isolated - visible| "
               "logit %g%s\n", sum->rows, sum->prefix_max_abs, sum->prefix_max_abs == 0 ? " (bitwise identical)" : "");
    if (sum->later_members == 0 && sum->parallel_steps > 0)
        printf("%d parallel sets formed, but no later member was fed (EOS ends a branch; --emulate feeds one a step): "
               "nothing differs between the masks\n", sum->parallel_steps);
    else if (sum->later_members == 0)
        printf("no parallel set formed: nothing differs between the masks\n");
    else
        printf("later members (%d): mean KL(i||v) %.4e  KL(v||i) %.4e  JS %.4e  cosine %.4f  top1 %.3f top5 %.3f top10 %.3f\n",
               sum->later_members, sum->kl_iv, sum->kl_vi, sum->js, sum->cosine, sum->top1, sum->top5, sum->top10);
    const char *third_names[COMPARE_THIRDS] = {"early", "middle", "late"};
    printf("JS by third of the run:");
    for (int i = 0; i < COMPARE_THIRDS; i++) {
        printf(" %s ", third_names[i]);
        print_cell("%.3e", 3, sum->third_js[i]);
        printf(" (%d)", sum->third_members[i]);
    }
    printf("\nreduct%% per layer:");
    for (int l = 0; l < sum->n_layers; l++) {
        printf(" L%d ", l);
        print_cell("%.2f", 3, sum->layer_reduction[l]);
    }
    printf("\nperplexity under plain greedy scoring: isolated %.3f (%d tokens), visible %.3f (%d tokens)\n", sum->ppl_iso,
           sum->ppl_tokens_iso, sum->ppl_vis, sum->ppl_tokens_vis);
    print_divergence(cmp, t, c);
    printf("time: isolated %.2f ms, visible %.2f ms, ratio %.3f\n", sum->iso_seconds * 1e3, sum->vis_seconds * 1e3,
           sum->vis_seconds > 0 ? sum->iso_seconds / sum->vis_seconds : 0.0);
}

/* Runs one prompt both ways and teacher-forced (compare.c); prints per-step
 * lines unless quiet; fills the summary and a JSON object. */
static int compare_prompt(const Model *m, const Tokenizer *t, const char *prompt, const GenConfig *base, int quiet,
                          CompareSummary *sum, cJSON *out, char *err) {
    int *ids = NULL, n_ids = 0;
    Comparison cmp;
    if (encode_text(t, prompt, m->config.seq_len, &ids, &n_ids, err) != 0) return -1;
    int rc = compare_run(m, ids, n_ids, base, &cmp, err);
    free(ids);
    if (rc != 0) return -1;
    *sum = cmp.sum;
    tempo_json_add_text(out, "prompt", prompt);
    cJSON_AddItemToObject(out, "teacher_forced", members_json(&cmp));
    add_summary_json(out, &cmp);
    if (!quiet) {
        printf("%sprompt: %s\n", compare_legend, prompt);
        if (cmp.sum.parallel_steps) print_member_rows(&cmp, t, &m->config);
        else printf("no parallel set formed: every step selected one token\n");
        print_compare_summary(&cmp, t, &m->config);
    }
    compare_free(&cmp);
    return 0;
}

/* Reads a prompt suite: lines "category<TAB>prompt" (or just a prompt); '#' comments. */
static int read_prompts(const char *path, char ***categories, char ***prompts, int *n, char *err) {
    FILE *f = fopen(path, "r");
    if (!f) return tempo_error(err, "cannot open prompt file %s: %s", path, strerror(errno));
    char line[4096];
    int cap = 0;
    *n = 0;
    *categories = *prompts = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 32;
            char **c2 = realloc(*categories, (size_t)cap * sizeof(char *)), **p2 = c2 ? realloc(*prompts, (size_t)cap * sizeof(char *)) : NULL;
            if (c2) *categories = c2;
            if (!c2 || !p2) {
                fclose(f);
                return tempo_error(err, "out of memory reading %s", path);
            }
            *prompts = p2;
        }
        char *tab = strchr(line, '\t');
        (*categories)[*n] = strndup(tab ? line : "-", tab ? (size_t)(tab - line) : 1);
        (*prompts)[*n] = strdup(tab ? tab + 1 : line);
        (*n)++;
    }
    fclose(f);
    if (*n == 0) return tempo_error(err, "prompt file %s holds no prompts", path);
    return 0;
}

/* The prompts to compare: the --prompts file, or the one -p prompt. */
int compare_prompts(const Args *a, char ***categories, char ***prompts, int *n, char *err) {
    const char *prompt = flag(a, "--prompt"), *file = flag(a, "--prompts");
    *categories = *prompts = NULL;
    *n = 0;
    if (file) return read_prompts(file, categories, prompts, n, err);
    if (!prompt) return tempo_error(err, "missing -p PROMPT or --prompts FILE");
    *categories = malloc(sizeof(char *));
    *prompts = malloc(sizeof(char *));
    if (!*categories || !*prompts) return tempo_error(err, "out of memory");
    (*categories)[0] = strdup("-");
    (*prompts)[0] = strdup(prompt);
    *n = 1;
    return 0;
}

/* A numeric column of the suite table: the prompt's value, NAN when it has none. */
typedef struct {
    const char *name;
    int width;
    const char *fmt;
    double (*value)(const CompareSummary *s);
} SuiteColumn;

static double later_or_nan(const CompareSummary *s, double x) { return s->later_members ? x : NAN; }
static double col_kl(const CompareSummary *s) { return later_or_nan(s, s->kl_iv); }
static double col_js(const CompareSummary *s) { return later_or_nan(s, s->js); }
static double col_cosine(const CompareSummary *s) { return later_or_nan(s, s->cosine); }
static double col_top1(const CompareSummary *s) { return later_or_nan(s, s->top1); }
static double col_early(const CompareSummary *s) { return s->third_js[0]; }
static double col_middle(const CompareSummary *s) { return s->third_js[1]; }
static double col_late(const CompareSummary *s) { return s->third_js[2]; }
static double col_ppl_iso(const CompareSummary *s) { return s->ppl_iso; }
static double col_ppl_vis(const CompareSummary *s) { return s->ppl_vis; }

static const SuiteColumn SUITE_COLUMNS[] = {
    {"KL(i||v)", 10, " %10.3e", col_kl}, {"JS", 10, " %10.3e", col_js}, {"cosine", 7, " %7.4f", col_cosine},
    {"top1", 6, " %6.3f", col_top1}, {"JS-early", 10, " %10.3e", col_early}, {"JS-middle", 10, " %10.3e", col_middle},
    {"JS-late", 10, " %10.3e", col_late}, {"ppl-iso", 8, " %8.3f", col_ppl_iso}, {"ppl-vis", 8, " %8.3f", col_ppl_vis},
};
enum { N_SUITE_COLUMNS = sizeof SUITE_COLUMNS / sizeof SUITE_COLUMNS[0] };

static void suite_cell(int width, const char *fmt, double x) {
    if (isfinite(x)) printf(fmt, x);
    else printf(" %*s", width, "n/a");
}

/* median and spread (standard deviation) over the prompts that have a value, of values[i * stride]. */
static void print_median_spread(const double *values, int n, int stride, int width, const char *fmt, double *scratch,
                                int median) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(values[(size_t)i * stride])) scratch[k++] = values[(size_t)i * stride];
    Summary s = summarize_values(scratch, k);
    suite_cell(width, fmt, k ? (median ? s.median : s.std) : NAN);
}

/* The footer of a table of n prompts x cols values: median and spread rows
 * (spec NULL: the per-layer table's columns). */
static void print_footer(const double *values, int n, int cols, const SuiteColumn *spec, double *scratch) {
    const char *names[2] = {"median", "spread"}, *notes[2] = {"(over prompts with a value)", "(standard deviation)"};
    for (int row = 0; row < 2; row++) {
        printf("%-10s %-32s", names[row], notes[row]);
        if (spec) printf(" %5s %4s %6s", "", "", "");
        for (int c = 0; c < cols; c++)
            print_median_spread(values + c, n, cols, spec ? spec[c].width : 9, spec ? spec[c].fmt : " %9.2f", scratch, row == 0);
        printf(spec ? " %5s %6s\n" : "\n", "-", "-"); /* the suite table's last column is a timing */
    }
}

/* Why a prompt's row has no KL/JS: no set, or sets whose later members were not fed. */
static const char *suite_note(const CompareSummary *s) {
    if (s->parallel_steps == 0) return "  note: no parallel set formed\n";
    if (s->later_members == 0) return "  note: parallel sets formed, but no later member was fed (EOS ends a branch)\n";
    return "";
}

/* The per-layer table: reduct% of each prompt's isolated run, by layer, with median and spread. */
static void print_layer_table(char **categories, char **prompts, const CompareSummary *sums, int n, double *scratch) {
    int L = sums[0].n_layers;
    double *values = malloc((size_t)n * (L ? L : 1) * sizeof(double));
    if (!values) return;
    printf("\nreduct%% per layer: 100 (1 - attention a parallel token receives / a single token's), isolated run\n");
    printf("%-10s %-32s", "category", "prompt");
    char name[16];
    for (int l = 0; l < L; l++) snprintf(name, sizeof name, "L%d", l), printf(" %9s", name);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%-10s %-32.32s", categories[i], prompts[i]);
        for (int l = 0; l < L; l++) suite_cell(9, " %9.2f", values[(size_t)i * L + l] = sums[i].layer_reduction[l]);
        printf("\n");
    }
    print_footer(values, n, L, NULL, scratch);
    free(values);
}

/* The suite table: one row per prompt, all prompts weighted by later
 * members, median and spread over prompts; then the per-layer table. */
static void print_suite(char **categories, char **prompts, const CompareSummary *sums, int n) {
    double *values = malloc((size_t)n * N_SUITE_COLUMNS * sizeof(double)), *scratch = malloc((size_t)n * sizeof(double));
    if (!values || !scratch) return free(values), free(scratch), (void)printf("out of memory for the suite table\n");
    printf("%s%-10s %-32s %5s %4s %6s", compare_legend, "category", "prompt", "steps", "par", "later");
    for (int c = 0; c < N_SUITE_COLUMNS; c++) printf(" %*s", SUITE_COLUMNS[c].width, SUITE_COLUMNS[c].name);
    printf(" %5s %6s\n", "div@", "t i/v");
    CompareSummary all = {0};
    for (int i = 0; i < n; i++) {
        const CompareSummary *s = &sums[i];
        char div[16] = "none";
        if (s->first_divergence >= 0) snprintf(div, sizeof div, "%d", s->first_divergence);
        printf("%-10s %-32.32s %5d %4d %6d", categories[i], prompts[i], s->steps, s->parallel_steps, s->later_members);
        for (int c = 0; c < N_SUITE_COLUMNS; c++)
            suite_cell(SUITE_COLUMNS[c].width, SUITE_COLUMNS[c].fmt, values[(size_t)i * N_SUITE_COLUMNS + c] = SUITE_COLUMNS[c].value(s));
        printf(" %5s %6.3f\n%s", div, s->vis_seconds > 0 ? s->iso_seconds / s->vis_seconds : 0.0, suite_note(s));
        all.steps += s->steps; all.parallel_steps += s->parallel_steps; all.later_members += s->later_members;
        all.iso_seconds += s->iso_seconds; all.vis_seconds += s->vis_seconds;
        all.kl_iv += s->kl_iv * s->later_members; all.js += s->js * s->later_members;
        all.cosine += s->cosine * s->later_members; all.top1 += s->top1 * s->later_members;
        if (s->prefix_max_abs != 0) printf("  note: rows before the first parallel set differ by %g\n", s->prefix_max_abs);
    }
    double k = all.later_members;
    printf("%-10s %-32s %5d %4d %6d", "all", "(weighted by later members)", all.steps, all.parallel_steps, all.later_members);
    double weighted[4] = {all.kl_iv / k, all.js / k, all.cosine / k, all.top1 / k};
    for (int c = 0; c < N_SUITE_COLUMNS; c++)
        if (c < 4) suite_cell(SUITE_COLUMNS[c].width, SUITE_COLUMNS[c].fmt, k > 0 ? weighted[c] : NAN);
        else printf(" %*s", SUITE_COLUMNS[c].width, "-");
    printf(" %5s %6.3f\n%s", "-", all.vis_seconds > 0 ? all.iso_seconds / all.vis_seconds : 0.0,
           k > 0 ? "" : "  note: no later member was fed in any prompt\n");
    print_footer(values, n, N_SUITE_COLUMNS, SUITE_COLUMNS, scratch);
    print_layer_table(categories, prompts, sums, n, scratch);
    free(values);
    free(scratch);
}

/* Compares every prompt; the suite table when there are several. */
int compare_all(const Model *m, const Tokenizer *t, const GenConfig *g, char **categories, char **prompts,
                       int n, cJSON *runs, char *err) {
    CompareSummary *sums = calloc((size_t)n, sizeof *sums);
    if (!sums) return tempo_error(err, "out of memory");
    for (int i = 0; i < n; i++) {
        if (n > 1 && isatty(2)) fprintf(stderr, "\r[%d/%d] %-40.40s", i + 1, n, prompts[i]); /* one line, rewritten */
        else if (n > 1) fprintf(stderr, "[%d/%d] %.40s\n", i + 1, n, prompts[i]);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(runs, o);
        tempo_json_add_text(o, "category", categories[i]);
        if (compare_prompt(m, t, prompts[i], g, n > 1, &sums[i], o, err) != 0) {
            free(sums);
            return -1;
        }
    }
    if (n > 1) {
        if (isatty(2)) fprintf(stderr, "\n");
        print_suite(categories, prompts, sums, n);
    }
    free(sums);
    return 0;
}

void free_prompts(char **categories, char **prompts, int n) {
    for (int i = 0; i < n; i++) {
        free(categories[i]);
        free(prompts[i]);
    }
    free(categories);
    free(prompts);
}
