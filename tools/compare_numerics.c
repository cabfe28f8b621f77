/* compare_numerics.c - tempo compare --vs-numerics (compare_numerics.h):
 * a TEMPO run under profile A, its rows teacher-forced under profile B,
 * and each step's parallel set chosen again from B's distribution by the
 * loop's own rule (tempo_next_distribution, tempo_choose_set). Until the
 * first changed step both sides have seen the same rows, so that step is
 * where B's own run would part from A's. */
#define _GNU_SOURCE /* open_memstream */
#include "compare_numerics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "inputs.h"
#include "printing.h"
#include "settings.h"

static int ggml_settings(const Numerics *n) { return n->kv_f16 || n->flash_attn || n->repack_off; }

int numerics_sides(const Numerics *given, const char *vs, Numerics sides[2], char *err) {
    NumericsProfile b;
    if (tempo_numerics_parse(vs, &b, err) != 0) return -1;
    if ((int)b == given->profile)
        return tempo_error(err, "--vs-numerics %s is --numerics's profile too: the two sides would compute alike", vs);
    if (ggml_settings(given) && given->profile != NUMERICS_GGML && b != NUMERICS_GGML)
        return tempo_error(err, "--kv-type, --flash-attn and --repack set the ggml side, and neither side is ggml");
    Numerics ggml = *given;
    ggml.profile = NUMERICS_GGML;
    sides[0] = given->profile == NUMERICS_GGML ? ggml : (Numerics){.profile = given->profile};
    sides[1] = b == NUMERICS_GGML ? ggml : (Numerics){.profile = (int)b};
    return 0;
}

/* The distribution step s of `gen` was chosen from, by the loop's rule, over
 * `logits` [n_rows][vocab] of its rows: the row before the step's first fed
 * row, or with next_from mean the fed members of step s-1 (none of them is
 * pruned yet when step s is chosen: pruning weighs earlier sets only). */
static void step_probs(const Generation *gen, const float *logits, int vocab, NextFrom from, int s, const float **live,
                       float *probs, float *tmp) {
    const Step *st = &gen->steps[s];
    int first = gen->n_rows, n_live = 0;
    for (int i = 0; i < st->n_members; i++) {
        int row = gen->members[st->first_member + i].row;
        if (row >= 0 && row < first) first = row;
    }
    const Step *prev = s > 0 ? &gen->steps[s - 1] : NULL;
    for (int i = 0; prev && i < prev->n_members; i++) {
        int row = gen->members[prev->first_member + i].row;
        if (row >= 0) live[n_live++] = logits + (size_t)row * vocab;
    }
    tempo_next_distribution(from, live, n_live, logits + (size_t)(first - 1) * vocab, vocab, probs, tmp);
}

/* Every step's distribution over one side's logits into probs [n_steps][vocab]. */
static int all_step_probs(const Generation *gen, const float *logits, int vocab, NextFrom from, float *probs,
                          char *err) {
    const float **live = malloc(((size_t)gen->n_members + 1) * sizeof *live);
    float *tmp = malloc((size_t)vocab * sizeof(float));
    if (!live || !tmp) {
        free(live), free(tmp);
        return tempo_error(err, "out of memory for %d steps' distributions", gen->n_steps);
    }
    for (int s = 0; s < gen->n_steps; s++) step_probs(gen, logits, vocab, from, s, live, probs + (size_t)s * vocab, tmp);
    free(live), free(tmp);
    return 0;
}

/* B's logits of A's rows: one full pass under A's mask as recorded. */
static int side_b_logits(const Model *m, const Generation *gen, float **logits, char *err) {
    int n = gen->n_rows;
    uint8_t *allowed = tempo_generation_allowed(gen);
    *logits = malloc((size_t)n * m->config.vocab_size * sizeof(float));
    int rc = allowed && *logits ? 0 : tempo_error(err, "out of memory for %d rows under the second profile", n);
    if (rc == 0) {
        Mask mask = tempo_mask_dense(allowed, gen->mask_layers, 0, n, n);
        rc = tempo_forward_full(m, n, gen->tokens, gen->positions, &mask, (Outputs){.logits = *logits}, err);
    }
    free(allowed);
    return rc;
}

/* The largest |p_B - p_A| over the tokens of A's set and B's. */
static double step_max_dp(const NumericsComparison *cmp, int s) {
    const Step *st = &cmp->run.steps[s];
    const float *pa = cmp->probs[0] + (size_t)s * cmp->vocab, *pb = cmp->probs[1] + (size_t)s * cmp->vocab;
    double worst = 0.0;
    for (int i = 0; i < st->n_members; i++) {
        int tok = cmp->run.members[st->first_member + i].token;
        worst = fmax(worst, fabs((double)pb[tok] - pa[tok]));
    }
    for (int i = 0; i < cmp->width_b[s]; i++) {
        int tok = cmp->set_b[(size_t)s * cmp->max_width + i];
        worst = fmax(worst, fabs((double)pb[tok] - pa[tok]));
    }
    return worst;
}

static int same_set(const NumericsComparison *cmp, int s) {
    const Step *st = &cmp->run.steps[s];
    if (st->n_members != cmp->width_b[s]) return 0;
    for (int i = 0; i < st->n_members; i++)
        if (cmp->run.members[st->first_member + i].token != cmp->set_b[(size_t)s * cmp->max_width + i]) return 0;
    return 1;
}

/* B's set at every step, from its distribution, by the loop's rule; kept steps and |dp|. */
static int choose_b_sets(NumericsComparison *cmp, const GenConfig *g, char *err) {
    int S = cmp->run.n_steps, V = cmp->vocab;
    int *candidates = malloc((size_t)V * sizeof(int));
    if (!candidates) return tempo_error(err, "out of memory");
    cmp->first_changed = -1;
    for (int s = 0; s < S; s++) {
        int w = tempo_choose_set(cmp->probs[1] + (size_t)s * V, V, tempo_threshold_at(g, s), g, candidates);
        cmp->width_b[s] = w;
        memcpy(cmp->set_b + (size_t)s * cmp->max_width, candidates, (size_t)w * sizeof(int));
        cmp->max_dp[s] = step_max_dp(cmp, s);
        if (same_set(cmp, s)) cmp->kept++;
        else if (cmp->first_changed < 0) cmp->first_changed = s;
    }
    free(candidates);
    return 0;
}

static int allocate(NumericsComparison *cmp, int S, char *err) {
    cmp->probs[0] = malloc(((size_t)S * cmp->vocab + 1) * sizeof(float));
    cmp->probs[1] = malloc(((size_t)S * cmp->vocab + 1) * sizeof(float));
    cmp->set_b = malloc(((size_t)S * cmp->max_width + 1) * sizeof(int));
    cmp->width_b = calloc((size_t)S + 1, sizeof(int));
    cmp->max_dp = calloc((size_t)S + 1, sizeof(double));
    if (cmp->probs[0] && cmp->probs[1] && cmp->set_b && cmp->width_b && cmp->max_dp) return 0;
    return tempo_error(err, "out of memory comparing %d steps", S);
}

int compare_numerics_run(Model *m, const int *ids, int n_ids, const GenConfig *g, const Numerics sides[2],
                         NumericsComparison *out, char *err) {
    memset(out, 0, sizeof *out);
    out->sides[0] = sides[0], out->sides[1] = sides[1];
    out->config = &m->config, out->vocab = m->config.vocab_size, out->max_width = g->max_width, out->mode = g->mode;
    GenConfig run = *g;
    run.numerics = sides[0], run.keep_logits = 1, run.capture_attention = 0;
    float *logits_b = NULL;
    int rc = tempo_model_set_numerics(m, &sides[0], err) == 0 && tempo_generate(m, ids, n_ids, &run, &out->run, err) == 0
                 ? 0 : -1;
    if (rc == 0) rc = allocate(out, out->run.n_steps, err);
    if (rc == 0) rc = all_step_probs(&out->run, out->run.logits, out->vocab, g->next_from, out->probs[0], err);
    if (rc == 0) rc = tempo_model_set_numerics(m, &sides[1], err);
    if (rc == 0) rc = side_b_logits(m, &out->run, &logits_b, err);
    if (rc == 0) rc = all_step_probs(&out->run, logits_b, out->vocab, g->next_from, out->probs[1], err);
    if (rc == 0) rc = choose_b_sets(out, g, err);
    free(logits_b);
    if (tempo_model_set_numerics(m, &sides[0], err) != 0) rc = -1;
    if (rc != 0) compare_numerics_free(out);
    return rc;
}

void compare_numerics_free(NumericsComparison *cmp) {
    tempo_generation_free(&cmp->run);
    free(cmp->probs[0]), free(cmp->probs[1]), free(cmp->set_b), free(cmp->width_b), free(cmp->max_dp);
    memset(cmp, 0, sizeof *cmp);
}

/* ---- the report ---- */

/* Token i of a step's set on side k (0: A's run, 1: B's choice). */
static int set_token(const NumericsComparison *cmp, int k, int s, int i) {
    return k == 0 ? cmp->run.members[cmp->run.steps[s].first_member + i].token : cmp->set_b[(size_t)s * cmp->max_width + i];
}
static int set_width(const NumericsComparison *cmp, int k, int s) {
    return k == 0 ? cmp->run.steps[s].n_members : cmp->width_b[s];
}
static int in_set(const NumericsComparison *cmp, int k, int s, int token) {
    for (int i = 0; i < set_width(cmp, k, s); i++)
        if (set_token(cmp, k, s, i) == token) return 1;
    return 0;
}

/* A token as the report shows it: as tempo generate shows a set's member
 * (show_token: control characters escaped, so a row stays one line; EOS as <end>). */
static void show_member(FILE *out, const NumericsComparison *cmp, const Tokenizer *t, int prev, int token) {
    show_token(out, t, cmp->config, prev, token, 1);
}

/* " a (0.5120)": a member's text and p, allocated (NULL: out of memory). */
static char *member_text(const NumericsComparison *cmp, const Tokenizer *t, int prev, int token, float p) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    show_member(f, cmp, t, prev, token);
    fprintf(f, " (%.4f)", p);
    if (fclose(f) == 0) return text;
    free(text);
    return NULL;
}

/* "[ a (0.5120)/ b (0.2110)/… 12 more]": side k's set at step s with side k's
 * probabilities, into buf (SetText: cut at a member, always closed). */
static void format_side_set(const NumericsComparison *cmp, const Tokenizer *t, int k, int s, char *buf, size_t size) {
    const float *p = cmp->probs[k] + (size_t)s * cmp->vocab;
    int prev = token_before(&cmp->run, s), n = set_width(cmp, k, s);
    SetText set;
    set_text_open(&set, buf, size, n, "/");
    for (int i = 0; i < n; i++) {
        int tok = set_token(cmp, k, s, i);
        char *text = set.cut ? NULL : member_text(cmp, t, prev, tok, p[tok]); /* once cut, the rest are only counted */
        set_text_add(&set, text);
        free(text);
    }
    set_text_close(&set);
}

/* The members side `from` has and side `to` lacks at step s, with both probabilities. */
static void print_members_only_in(const NumericsComparison *cmp, const Tokenizer *t, int from, int s, const char *what) {
    const float *pa = cmp->probs[0] + (size_t)s * cmp->vocab, *pb = cmp->probs[1] + (size_t)s * cmp->vocab;
    int n = 0, prev = token_before(&cmp->run, s);
    printf("%s", what);
    for (int i = 0; i < set_width(cmp, from, s); i++) {
        int tok = set_token(cmp, from, s, i);
        if (in_set(cmp, 1 - from, s, tok)) continue;
        printf("%s'", n++ ? ", " : " ");
        show_member(stdout, cmp, t, prev, tok);
        printf("' #%d (A %.6f, B %.6f)", tok, pa[tok], pb[tok]);
    }
    printf("%s", n ? "" : " none");
}

void print_numerics_comparison(const NumericsComparison *cmp, const Tokenizer *t) {
    char a[96], b[96], set_a[512], set_b[512];
    tempo_numerics_describe(&cmp->sides[0], a, sizeof a);
    tempo_numerics_describe(&cmp->sides[1], b, sizeof b);
    printf("A = %s, B = %s: A's TEMPO run (%s), its rows teacher-forced under B, each step's set chosen again from "
           "B's distribution\n", a, b, setting_choice(SET_MODE, cmp->mode));
    printf("step  pos  max |dp|   A's set -> B's set\n");
    int worst = -1, S = cmp->run.n_steps;
    for (int s = 0; s < S; s++) {
        if (worst < 0 || cmp->max_dp[s] > cmp->max_dp[worst]) worst = s;
        format_side_set(cmp, t, 0, s, set_a, sizeof set_a);
        format_side_set(cmp, t, 1, s, set_b, sizeof set_b);
        printf("%4d %4d  %9.3e  %s -> %s\n", s, cmp->run.steps[s].logical_pos, cmp->max_dp[s], set_a,
               same_set(cmp, s) ? "same" : set_b);
    }
    printf("kept: %d of %d steps keep exactly their sets under B\n", cmp->kept, S);
    int f = cmp->first_changed;
    if (f < 0) printf("first change: none\n");
    else {
        printf("first change: step %d (position %d):", f, cmp->run.steps[f].logical_pos);
        print_members_only_in(cmp, t, 0, f, " lost");
        print_members_only_in(cmp, t, 1, f, "; gained");
        printf("\n");
    }
    if (worst >= 0) printf("max |dp| of the selected tokens: %.3e at step %d\n", cmp->max_dp[worst], worst);
}

/* Side k's members at step s (or those not in the other side's set) as [{token, text, p_a, p_b}]. */
static cJSON *members_json(const NumericsComparison *cmp, const Tokenizer *t, int k, int s, int only_here) {
    const float *pa = cmp->probs[0] + (size_t)s * cmp->vocab, *pb = cmp->probs[1] + (size_t)s * cmp->vocab;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < set_width(cmp, k, s); i++) {
        int tok = set_token(cmp, k, s, i);
        if (only_here && in_set(cmp, 1 - k, s, tok)) continue;
        char text[16];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "token", tok);
        tempo_json_add_text(o, "text", token_text(t, token_before(&cmp->run, s), tok, text));
        cJSON_AddNumberToObject(o, "p_a", pa[tok]);
        cJSON_AddNumberToObject(o, "p_b", pb[tok]);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

void numerics_comparison_json(cJSON *out, const NumericsComparison *cmp, const Tokenizer *t) {
    char a[96], b[96];
    tempo_numerics_describe(&cmp->sides[0], a, sizeof a);
    tempo_numerics_describe(&cmp->sides[1], b, sizeof b);
    cJSON_AddStringToObject(out, "numerics_a", a);
    cJSON_AddStringToObject(out, "numerics_b", b);
    cJSON_AddStringToObject(out, "mode", setting_choice(SET_MODE, cmp->mode));
    cJSON_AddNumberToObject(out, "steps", cmp->run.n_steps);
    cJSON_AddNumberToObject(out, "kept_steps", cmp->kept);
    cJSON_AddNumberToObject(out, "first_changed_step", cmp->first_changed);
    cJSON *steps = cJSON_AddArrayToObject(out, "per_step");
    for (int s = 0; s < cmp->run.n_steps; s++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", s);
        cJSON_AddNumberToObject(o, "position", cmp->run.steps[s].logical_pos);
        cJSON_AddBoolToObject(o, "kept", same_set(cmp, s));
        cJSON_AddNumberToObject(o, "max_abs_dp", cmp->max_dp[s]);
        cJSON_AddItemToObject(o, "set_a", members_json(cmp, t, 0, s, 0));
        cJSON_AddItemToObject(o, "set_b", members_json(cmp, t, 1, s, 0));
        cJSON_AddItemToObject(o, "lost", members_json(cmp, t, 0, s, 1));
        cJSON_AddItemToObject(o, "gained", members_json(cmp, t, 1, s, 1));
        cJSON_AddItemToArray(steps, o);
    }
}

int compare_numerics_all(Model *m, const Tokenizer *t, const GenConfig *g, const Numerics sides[2], char **prompts,
                         int n, cJSON *runs, char *err) {
    for (int i = 0; i < n; i++) {
        int *ids = NULL, n_ids = 0;
        NumericsComparison cmp;
        if (encode_text(t, prompts[i], m->config.seq_len, &ids, &n_ids, err) != 0) return -1;
        int rc = compare_numerics_run(m, ids, n_ids, g, sides, &cmp, err);
        free(ids);
        if (rc != 0) return -1;
        printf("%sprompt: %s\n", i ? "\n" : "", prompts[i]);
        print_numerics_comparison(&cmp, t);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(runs, o);
        tempo_json_add_text(o, "prompt", prompts[i]);
        numerics_comparison_json(o, &cmp, t);
        compare_numerics_free(&cmp);
    }
    return 0;
}
