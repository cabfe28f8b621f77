/* What isolation does, measured: tempo compare against numbers computed
 * independently by oracle/reference.py, tempo attention's cross-parallel
 * zeros, and SVG heatmaps that parse as XML. */
#include "helpers.h"
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
    char model[4096], tok[4096], args[9000];
    fortune_paths(model, tok);
    cJSON *ref = read_json_file(GOLDEN_DIR "/compare-fortune.json");
    snprintf(args, sizeof args, "compare -m %s -z %s -p '%s' --threshold %g -n %d --json /tmp/tempo-compare.json", model, tok,
             cJSON_GetObjectItem(ref, "prompt")->valuestring, num(ref, "threshold"), (int)num(ref, "max_tokens"));
    run_tempo_ok(args);
    cJSON *mine = read_json_file("/tmp/tempo-compare.json");
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
    char model[4096], tok[4096], args[9000];
    fortune_paths(model, tok);
    snprintf(args, sizeof args, "attention -m %s -z %s -p 'The cat sat on the' --threshold 0.05 -n 24 --mode %s --json /tmp/tempo-att-%s.json",
             model, tok, mode, mode);
    run_tempo_ok(args);
    char path[64];
    snprintf(path, sizeof path, "/tmp/tempo-att-%s.json", mode);
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

Test(attention_analysis, isolated_cross_parallel_attention_reported_zero) { check_cross("isolated", 1); }
Test(attention_analysis, visible_cross_parallel_attention_reported_positive) { check_cross("visible", 0); }

Test(attention_analysis, svg_heatmaps_parse_as_xml_with_one_rect_per_cell) {
    char model[4096], tok[4096], args[9000], cmd[9000], out[65536];
    fortune_paths(model, tok);
    snprintf(args, sizeof args, "generate -m %s -z %s -p 'The cat sat on the' --threshold 0.05 -n 12 --trace /tmp/tempo-svg.st --quiet",
             model, tok);
    run_tempo_ok(args);
    snprintf(args, sizeof args, "attention -m %s -z %s /tmp/tempo-svg.st --heatmap 2:1 --rows 5-20 --svg /tmp/tempo-h.svg "
             "--svg-grid /tmp/tempo-g.svg --row 20", model, tok);
    run_tempo_ok(args);
    /* rows 5..20 (16) x keys 0..20 (21) cells; the grid: 4 layers x 4 heads x 21 keys; labels on both axes */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import xml.etree.ElementTree as E, sys\n"
             "ns='{http://www.w3.org/2000/svg}'\n"
             "def count(f, tag, cls): return sum(1 for e in E.parse(f).getroot().iter(ns+tag) if e.get('class')==cls)\n"
             "h, g = count('/tmp/tempo-h.svg','rect','cell'), count('/tmp/tempo-g.svg','rect','cell')\n"
             "labels = count('/tmp/tempo-h.svg','text','label')\n"
             "sets = count('/tmp/tempo-h.svg','rect','set')\n"
             "print(h, g, labels, sets)\n"
             "sys.exit(0 if (h, g, labels) == (16*21, 4*4*21, 21+16) and sets > 0 else 1)\"");
    int rc = run_command_capture(cmd, out, sizeof out, 1);
    cr_assert_eq(rc, 0, "SVG check failed (cells heatmap, cells grid, labels, set outlines): %s", out);
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
