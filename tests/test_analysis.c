/* What isolation does, measured: tempo compare against numbers computed
 * independently by oracle/reference.py, tempo attention's cross-parallel
 * zeros (the pictures: test_pictures.c). */
#include "helpers.h"
#include "../tools/analysis.h"
#include "../tools/compare.h"

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    cr_assert(v, "JSON lacks %s", key);
    return cJSON_IsBool(v) ? (double)cJSON_IsTrue(v) : v->valuedouble;
}

static void run_tempo_ok(const char *args) {
    char cmd[8192], out[65536];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    int rc = run_command_capture(cmd, out, sizeof out, 1);
    cr_assert_eq(rc, 0, "`%s` failed:\n%s", cmd, out);
}

Test(compare, teacher_forced_matches_the_reference) {
    char model[4096], tok[4096], json_path[4096], args[9000];
    fortune_paths(model, tok);
    scratch_path("compare.json", json_path, sizeof json_path);
    cJSON *ref = read_json_file(GOLDEN_DIR "/compare-fortune.json");
    snprintf(args, sizeof args, "compare -m %s -z %s -p '%s' --threshold %g -n %d --json %s", model, tok,
             cJSON_GetObjectItem(ref, "prompt")->valuestring, num(ref, "threshold"), (int)num(ref, "max_tokens"), json_path);
    run_tempo_ok(args);
    cJSON *mine = read_json_file(json_path);
    const cJSON *run = cJSON_GetArrayItem(cJSON_GetObjectItem(mine, "prompts"), 0);
    const cJSON *summary = cJSON_GetObjectItem(run, "summary");
    cr_assert_eq((int)num(summary, "identical_prefix_rows"), (int)num(ref, "identical_prefix_rows"));
    cr_assert(num(summary, "prefix_max_abs_diff") == 0.0, "rows before the first parallel set must be bitwise identical");
    const cJSON *rows = cJSON_GetObjectItem(run, "teacher_forced"), *ref_rows = cJSON_GetObjectItem(ref, "teacher_forced");
    cr_assert_eq(cJSON_GetArraySize(rows), cJSON_GetArraySize(ref_rows), "parallel member rows: tempo %d, reference %d",
                 cJSON_GetArraySize(rows), cJSON_GetArraySize(ref_rows));
    const char *keys[] = {"kl_isolated_visible", "kl_visible_isolated", "js", "cosine", "top1", "top5", "top10", "argmax_agree"};
    int nonzero = 0;
    for (int i = 0; i < cJSON_GetArraySize(rows); i++) {
        const cJSON *a = cJSON_GetArrayItem(rows, i), *b = cJSON_GetArrayItem(ref_rows, i);
        cr_assert_eq((int)num(a, "row"), (int)num(b, "row"));
        cr_assert_eq((int)num(a, "token"), (int)num(b, "token"), "row %d token", (int)num(a, "row"));
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            double x = num(a, keys[k]), y = num(b, keys[k]);
            cr_expect(fabs(x - y) <= 1e-5 + 1e-3 * fabs(y), "row %d %s: tempo %.6g, reference %.6g", (int)num(a, "row"), keys[k], x, y);
        }
        if (num(a, "member") > 0) {
            cr_expect(num(a, "js") > 0, "later member row %d has zero divergence", (int)num(a, "row"));
            nonzero += num(a, "js") > 0;
        }
    }
    cr_assert(nonzero > 0, "no parallel member diverged");
    cJSON_Delete(ref);
    cJSON_Delete(mine);
}

static void check_cross(const char *mode, int expect_zero) {
    char model[4096], tok[4096], name[64], path[4096], args[9000];
    fortune_paths(model, tok);
    snprintf(name, sizeof name, "att-%s.json", mode);
    scratch_path(name, path, sizeof path);
    snprintf(args, sizeof args, "attention -m %s -z %s -p 'The cat sat on the' --threshold 0.05 -n 24 --mode %s --json %s",
             model, tok, mode, path);
    run_tempo_ok(args);
    cJSON *j = read_json_file(path);
    const cJSON *per = cJSON_GetObjectItem(j, "per_head");
    cr_assert_eq(cJSON_GetArraySize(per), 16, "4 layers x 4 heads");
    for (int i = 0; i < cJSON_GetArraySize(per); i++) {
        const cJSON *o = cJSON_GetArrayItem(per, i);
        cr_assert(num(o, "cross_pairs") > 0, "the run has parallel sets");
        if (expect_zero)
            cr_assert(num(o, "cross_max") == 0.0, "isolated layer %d head %d: cross-parallel attention %g", (int)num(o, "layer"),
                      (int)num(o, "head"), num(o, "cross_max"));
        else
            cr_assert(num(o, "cross_mean") > 0.0, "visible layer %d head %d: no cross-parallel attention", (int)num(o, "layer"),
                      (int)num(o, "head"));
    }
    cJSON_Delete(j);
}

/* A greedy run forms no parallel set: every figure over pairs or parallel keys is null in the JSON, as
 * the table prints n/a, never 0 (which would read as "attention measured, none paid"). */
Test(attention_analysis, figures_over_nothing_are_null) {
    char model[4096], tok[4096], path[4096], args[9000];
    fortune_paths(model, tok);
    scratch_path("att-greedy.json", path, sizeof path);
    snprintf(args, sizeof args, "attention -m %s -z %s -p 'The cat sat on the' --threshold 1 -n 8 --json %s", model, tok, path);
    run_tempo_ok(args);
    cJSON *j = read_json_file(path);
    const cJSON *per = cJSON_GetObjectItem(j, "per_head");
    cr_assert_gt(cJSON_GetArraySize(per), 0);
    for (int i = 0; i < cJSON_GetArraySize(per); i++) {
        const cJSON *o = cJSON_GetArrayItem(per, i), *par = cJSON_GetObjectItem(o, "parallel"), *single = cJSON_GetObjectItem(o, "single");
        cr_assert(num(o, "cross_pairs") == 0 && num(par, "count") == 0, "a greedy run has a parallel set");
        const char *keys[3] = {"mean", "median", "std"};
        cr_expect(cJSON_IsNull(cJSON_GetObjectItem(o, "cross_mean")) && cJSON_IsNull(cJSON_GetObjectItem(o, "cross_max")),
                  "entry %d: cross figures over no pair are not null", i);
        for (int k = 0; k < 3; k++) {
            cr_expect(cJSON_IsNull(cJSON_GetObjectItem(par, keys[k])), "entry %d: parallel %s over no key is not null", i, keys[k]);
            cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(single, keys[k])), "entry %d: single %s is not a number", i, keys[k]);
        }
    }
    cJSON_Delete(j);
}

Test(attention_analysis, isolated_cross_parallel_attention_reported_zero) { check_cross("isolated", 1); }
Test(attention_analysis, visible_cross_parallel_attention_reported_positive) { check_cross("visible", 0); }

/* KL(p||q) in float64 by log-sum-exp, independent of logit_metrics. */
static double kl_reference(const float *a, const float *b, int n) {
    double max_a = a[0], max_b = b[0], za = 0, zb = 0, kl = 0;
    for (int v = 1; v < n; v++) max_a = fmax(max_a, a[v]), max_b = fmax(max_b, b[v]);
    for (int v = 0; v < n; v++) za += exp(a[v] - max_a), zb += exp(b[v] - max_b);
    for (int v = 0; v < n; v++) {
        double lp = a[v] - max_a - log(za), lq = b[v] - max_b - log(zb);
        kl += exp(lp) * (lp - lq);
    }
    return kl;
}

static void expect_kl(const float *a, const float *b, int n, const char *what) {
    LogitMetrics m = logit_metrics(a, b, n);
    double ab = kl_reference(a, b, n), ba = kl_reference(b, a, n);
    cr_assert(isfinite(m.kl_ab) && isfinite(m.kl_ba) && isfinite(m.js), "%s: KL %g / %g, JS %g", what, m.kl_ab, m.kl_ba, m.js);
    cr_expect(fabs(m.kl_ab - ab) <= 1e-6 + 1e-4 * ab, "%s: KL(p||q) %.9g, float64 reference %.9g", what, m.kl_ab, ab);
    cr_expect(fabs(m.kl_ba - ba) <= 1e-6 + 1e-4 * ba, "%s: KL(q||p) %.9g, float64 reference %.9g", what, m.kl_ba, ba);
    cr_expect(m.js >= 0 && m.js <= 1.0 + 1e-9, "%s: JS %g outside [0, 1]", what, m.js);
}

/* Probabilities below float's smallest value (e^-150) must not make KL infinite. */
Test(logit_metrics, kl_stays_finite_where_float_probabilities_underflow) {
    float a[3] = {0, -150, -150}, b[3] = {-150, 0, -150};
    expect_kl(a, b, 3, "e^-150 tails");
    LogitMetrics m = logit_metrics(a, b, 3);
    cr_assert(fabs(m.kl_ab - 150.0) < 1e-6, "KL of one-hot-like rows is 150, got %.9g", m.kl_ab);
    cr_assert(m.argmax_agree == 0 && m.top1 == 0.0);
}

/* Rows of stories260K, and the same rows sharpened 12x so most of the vocabulary underflows. */
Test(logit_metrics, kl_matches_float64_on_stories260K_rows) {
    Model m;
    load_real(&m, "stories260K.bin");
    int tokens[6] = {1, 403, 407, 261, 378, 300}, positions[6] = {0, 1, 2, 3, 4, 5}, n = 6, V = m.config.vocab_size;
    uint8_t allowed[36];
    tempo_mask_rows(MASK_CAUSAL, positions, 0, n, allowed);
    float *logits;
    full_forward(&m, n, tokens, positions, allowed, 1, &logits, NULL, NULL);
    float *sharp = malloc((size_t)V * sizeof(float));
    for (int v = 0; v < V; v++) sharp[v] = 12.0f * logits[(size_t)5 * V + v];
    expect_kl(logits + (size_t)4 * V, logits + (size_t)5 * V, V, "rows 4 and 5");
    expect_kl(logits + (size_t)4 * V, sharp, V, "row 4 and row 5 x12");
    free(sharp);
    free(logits);
    tempo_model_free(&m);
}

/* compare_run (tools/compare.c) on its own: the summary agrees with the two
 * generations it returns, rows before the first sibling are bitwise equal,
 * and every fed member has metrics in range. */
static void check_compare_run(void (*adjust)(GenConfig *)) {
    Model m;
    Tokenizer t;
    load_real(&m, "stories260K.bin");
    load_tokenizer(&t, "tok512.bin", m.config.vocab_size);
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.threshold = 0.2f;
    g.max_steps = 40;
    if (adjust) adjust(&g);
    int ids[64], n;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_encode(&t, "Once upon a time", ids, 64, &n, err) == 0, "%s", err);
    Comparison cmp;
    cr_assert(compare_run(&m, ids, n, &g, &cmp, err) == 0, "%s", err);
    const Generation *iso = &cmp.iso, *vis = &cmp.vis;
    int diverge = -1, later = 0, first_sibling = iso->n_rows;
    for (int s = 0; diverge < 0 && s < iso->n_steps && s < vis->n_steps; s++) {
        int same = iso->steps[s].n_members == vis->steps[s].n_members;
        for (int i = 0; same && i < iso->steps[s].n_members; i++)
            same = iso->members[iso->steps[s].first_member + i].token == vis->members[vis->steps[s].first_member + i].token;
        if (!same) diverge = s;
    }
    for (int q = iso->n_rows - 1; q > 0; q--)
        if (iso->sets[q] == iso->sets[q - 1]) first_sibling = q;
    for (int s = 0; s < iso->n_steps; s++)
        for (int i = 0; i < iso->steps[s].n_members; i++) {
            const Member *mem = &iso->members[iso->steps[s].first_member + i];
            later += i > 0 && mem->row >= 0;
            const LogitMetrics *lm = &cmp.member[iso->steps[s].first_member + i];
            if (mem->row >= 0 && iso->steps[s].n_members > 1)
                cr_assert(lm->js >= 0 && lm->js <= 1 && lm->cosine >= -1e-9 && lm->cosine <= 1 + 1e-9, "member metrics out of range");
        }
    cr_assert_eq(cmp.sum.first_divergence, diverge);
    cr_assert_eq(cmp.sum.prefix_rows, first_sibling);
    cr_assert_eq(cmp.sum.later_members, later);
    cr_assert(cmp.sum.prefix_max_abs == 0.0, "rows before the first sibling differ by %g", cmp.sum.prefix_max_abs);
    cr_assert_gt(later, 0, "the run must have later members");
    compare_free(&cmp);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

static void pruned_run(GenConfig *g) { g->threshold = 0.1f; g->prune = 1; g->prune_threshold = 0.9f; }
static void layers_run(GenConfig *g) { g->threshold = 0.1f; g->isolate_first = 1; g->isolate_last = 3; }

Test(compare, compare_run_summary_agrees_with_its_runs) { check_compare_run(NULL); }
Test(compare, compare_run_with_pruning) { check_compare_run(pruned_run); }
Test(compare, compare_run_with_isolated_layers) { check_compare_run(layers_run); }

/* The summary of `compare --json` holds each member metric's mean, and argmax_agreement is the share of
 * later members whose argmax_agree is true (no summary "argmax_agree": a mean has none); a run with no
 * parallel set has no later member, so every mean and the first divergence are null, not 0 or -1. */
Test(compare, json_summary_means_are_the_members_or_null) {
    char model[4096], tok[4096], out[4096], args[9200], cmd[9300], text[4096];
    fortune_paths(model, tok);
    scratch_path("compare.json", out, sizeof out);
    const char *thresholds[2] = {"0.05", "1"};
    for (int run = 0; run < 2; run++) {
        snprintf(args, sizeof args, "compare -m %s -z %s -p 'A fool and his money' -n 12 --threshold %s --json %s", model, tok,
                 thresholds[run], out);
        snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
        cr_assert_eq(run_command(cmd, text, sizeof text), 0, "`%s`: %s", cmd, text);
        cJSON *json = read_json_file(out), *p = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "prompts"), 0);
        cJSON *sum = cJSON_GetObjectItem(p, "summary"), *member;
        cr_assert(sum, "no summary in %s", out);
        cr_expect_null(cJSON_GetObjectItem(sum, "argmax_agree"), "the summary states one argmax_agree");
        int later = 0, agree = 0;
        cJSON_ArrayForEach(member, cJSON_GetObjectItem(p, "teacher_forced")) {
            cJSON *a = cJSON_GetObjectItem(member, "argmax_agree");
            if (cJSON_GetObjectItem(member, "member")->valueint == 0 || !a) continue;
            later++, agree += cJSON_IsTrue(a);
        }
        cJSON *share = cJSON_GetObjectItem(sum, "argmax_agreement"), *js = cJSON_GetObjectItem(sum, "js");
        cr_assert_eq(cJSON_GetObjectItem(sum, "later_members")->valueint, later);
        if (run == 0) {
            cr_assert_gt(later, 1, "threshold 0.05 must give later members");
            cr_expect(cJSON_IsNumber(share) && fabs(share->valuedouble - (double)agree / later) < 1e-12,
                      "argmax_agreement %g, %d of %d members agree", share->valuedouble, agree, later);
            cr_expect(cJSON_IsNumber(js), "js is not a number with %d later members", later);
        } else {
            cr_expect(cJSON_IsNull(share) && cJSON_IsNull(js) && cJSON_IsNull(cJSON_GetObjectItem(sum, "cosine")),
                      "a run without later members states means");
            cr_expect(cJSON_IsNull(cJSON_GetObjectItem(sum, "first_divergent_step")), "no divergence is not null");
        }
        cJSON_Delete(json);
    }
}
