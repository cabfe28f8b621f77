/* compare_suite.c - tempo compare's prompts and reports: the prompt
 * suite file, per-member and summary lines, the suite table and JSON
 * (compare.c runs one prompt both ways). */
#define _GNU_SOURCE
#include "compare_suite.h"
#include "inputs.h"
#include "printing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void add_metrics_json(cJSON *o, const LogitMetrics *m) {
    cJSON_AddNumberToObject(o, "kl_isolated_visible", m->kl_ab);
    cJSON_AddNumberToObject(o, "kl_visible_isolated", m->kl_ba);
    cJSON_AddNumberToObject(o, "js", m->js);
    cJSON_AddNumberToObject(o, "cosine", m->cosine);
    cJSON_AddNumberToObject(o, "top1", m->top1);
    cJSON_AddNumberToObject(o, "top5", m->top5);
    cJSON_AddNumberToObject(o, "top10", m->top10);
    cJSON_AddBoolToObject(o, "argmax_agree", m->argmax_agree);
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
            if (mem->row >= 0) add_metrics_json(o, &cmp->member[st->first_member + i]);
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
    add_metrics_json(js, &mean);
    cJSON_AddNumberToObject(js, "argmax_agreement", sum->argmax);
    cJSON_AddNumberToObject(js, "first_divergent_step", sum->first_divergence);
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
    printf("free-running: the modes part at step %d (position %d):", s, cmp->iso.n_prompt + s);
    for (int k = 0; k < 2; k++) {
        printf(k ? ", visible " : " isolated ");
        if (s < runs[k]->n_steps) print_step(stdout, runs[k], s, t, c, token_before(runs[k], s), 0, 0);
        else printf("(ended: %s)", runs[k]->stop_reason);
    }
    printf("\n");
}

static void print_compare_summary(const Comparison *cmp, const Tokenizer *t, const Config *c) {
    const CompareSummary *sum = &cmp->sum;
    printf("rows before the first parallel member: %d, max |isolated - visible| there: %g%s\n", sum->prefix_rows,
           sum->prefix_max_abs, sum->prefix_max_abs == 0 ? " (bitwise identical)" : "");
    if (sum->later_members == 0)
        printf("no parallel set formed with a fed later member: nothing differs between the masks\n");
    else
        printf("later members (%d): mean KL(i||v) %.4e  KL(v||i) %.4e  JS %.4e  cosine %.4f  top1 %.3f top5 %.3f top10 %.3f\n",
               sum->later_members, sum->kl_iv, sum->kl_vi, sum->js, sum->cosine, sum->top1, sum->top5, sum->top10);
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
    cJSON_AddStringToObject(out, "prompt", prompt);
    cJSON_AddItemToObject(out, "teacher_forced", members_json(&cmp));
    add_summary_json(out, &cmp);
    if (!quiet) {
        printf("prompt: %s\n", prompt);
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

/* The suite table: one row per prompt, then all prompts weighted by later members. */
static void print_suite(char **categories, char **prompts, const CompareSummary *sums, int n) {
    printf("%-10s %-32s %5s %4s %6s %10s %10s %7s %6s %6s %5s %6s\n", "category", "prompt", "steps", "par", "later",
           "KL(i||v)", "JS", "cosine", "top1", "top5", "div@", "t i/v");
    CompareSummary all = {0};
    for (int i = 0; i < n; i++) {
        const CompareSummary *s = &sums[i];
        char div[16] = "none";
        if (s->first_divergence >= 0) snprintf(div, sizeof div, "%d", s->first_divergence);
        printf("%-10s %-32.32s %5d %4d %6d ", categories[i], prompts[i], s->steps, s->parallel_steps, s->later_members);
        if (s->later_members) printf("%10.3e %10.3e %7.4f %6.3f %6.3f", s->kl_iv, s->js, s->cosine, s->top1, s->top5);
        else printf("%-45s", "no parallel set formed");
        printf(" %5s %6.3f\n", div, s->vis_seconds > 0 ? s->iso_seconds / s->vis_seconds : 0.0);
        all.steps += s->steps; all.parallel_steps += s->parallel_steps; all.later_members += s->later_members;
        all.iso_seconds += s->iso_seconds; all.vis_seconds += s->vis_seconds;
        all.kl_iv += s->kl_iv * s->later_members; all.js += s->js * s->later_members;
        all.cosine += s->cosine * s->later_members; all.top1 += s->top1 * s->later_members;
        all.top5 += s->top5 * s->later_members;
        if (s->prefix_max_abs != 0) printf("  note: rows before the first parallel set differ by %g\n", s->prefix_max_abs);
    }
    double k = all.later_members;
    printf("%-10s %-32s %5d %4d %6d ", "all", "(weighted by later members)", all.steps, all.parallel_steps, all.later_members);
    if (k > 0) printf("%10.3e %10.3e %7.4f %6.3f %6.3f", all.kl_iv / k, all.js / k, all.cosine / k, all.top1 / k, all.top5 / k);
    else printf("%-45s", "no parallel set formed");
    printf(" %5s %6.3f\n", "-", all.vis_seconds > 0 ? all.iso_seconds / all.vis_seconds : 0.0);
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
        cJSON_AddStringToObject(o, "category", categories[i]);
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
