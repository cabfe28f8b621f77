/* tempo audit: nothing found on tempo's own runs (both modes, pruning,
 * isolated layers, a dynamic threshold, the mean rule), exactly the unfed
 * members of a last-member-only run, each mask, selection and settings
 * finding on traces altered in a known way, and the trace reader on
 * foreign traces (many long metadata entries, tensors it cannot hold). */
#include "audited.h"

static int parallel_steps(const Generation *g) {
    int n = 0;
    for (int s = 0; s < g->n_steps; s++) n += g->steps[s].n_members > 1;
    return n;
}

static void expect_clean(void (*adjust)(GenConfig *), const char *what) {
    Audited a;
    generate_and_trace(&a, adjust);
    audit_with(&a, NULL);
    cr_assert(parallel_steps(&a.gen) >= 3, "%s: the run must form parallel sets to test anything", what);
    for (int i = 0; i < a.report.n_findings && i < 5; i++)
        cr_log_error("%s: %s row %d key %d step %d: %s", what, a.report.findings[i].kind, a.report.findings[i].row,
                     a.report.findings[i].key, a.report.findings[i].step, a.report.findings[i].detail);
    cr_assert_eq(a.report.n_findings, 0, "%s: tempo's own trace gave %d findings", what, a.report.n_findings);
    for (int c = 0; c < AUDIT_CHECKS; c++)
        cr_assert(strncmp(a.report.checks[c], "skipped", 7) != 0, "%s: check %d skipped: %s", what, c, a.report.checks[c]);
    cr_assert_eq(a.report.first_divergent_step, -1, "%s: the replay diverges: %s", what, a.report.checks[CHECK_REPLAY]);
    audited_free(&a);
}

static void visible(GenConfig *g) { g->mode = MASK_VISIBLE; }
static void pruned(GenConfig *g) { g->prune = 1; g->prune_threshold = 0.9f; }
static void some_layers(GenConfig *g) { g->isolate_first = 1; g->isolate_last = 2; }
static void dynamic(GenConfig *g) { g->schedule = SCHEDULE_BEZIER; g->threshold = 0.02f; g->final_threshold = 0.5f; }
static void mean_rule(GenConfig *g) { g->next_from = NEXT_MEAN; }
static void emulated(GenConfig *g) { g->emulate = EMULATE_LAST_MEMBER_ONLY; }

Test(audit, nothing_found_on_tempos_own_traces) {
    expect_clean(NULL, "isolated");
    expect_clean(visible, "visible");
    expect_clean(some_layers, "--isolate-layers 1-2");
    expect_clean(dynamic, "dynamic threshold");
    expect_clean(mean_rule, "--next-from mean");
}

Test(audit, nothing_found_with_pruning) {
    Audited a;
    generate_and_trace(&a, pruned);
    int n_pruned = 0;
    for (int r = 0; r < a.gen.n_rows; r++) n_pruned += a.gen.pruned[r] >= 0;
    cr_assert(n_pruned >= 2, "the run must prune rows to test the pruned columns (pruned %d)", n_pruned);
    audit_with(&a, NULL);
    cr_assert_eq(a.report.n_findings, 0, "--prune attention: %d findings, first %s", a.report.n_findings,
                 a.report.n_findings ? a.report.findings[0].detail : "");
    audited_free(&a);
}

/* The emulation feeds only the last member: the audit names exactly the others. */
Test(audit, last_member_only_reports_exactly_the_unfed_members) {
    Audited a;
    generate_and_trace(&a, emulated);
    audit_with(&a, NULL);
    int expected = 0;
    for (int s = 0; s < a.gen.n_steps; s++)
        for (int i = 0; i < a.gen.steps[s].n_members; i++) {
            const Member *mem = &a.gen.members[a.gen.steps[s].first_member + i];
            if (mem->row >= 0) continue;
            cr_assert(expected < a.report.n_findings, "too few findings");
            const AuditFinding *f = &a.report.findings[expected++];
            cr_assert_str_eq(f->kind, "selected-not-fed");
            cr_assert(f->step == s && f->token == mem->token && f->row == -1, "finding %d: step %d token %d, expected step %d token %d",
                      expected - 1, f->step, f->token, s, mem->token);
        }
    cr_assert(expected >= 5, "the emulated run must leave members unfed (%d)", expected);
    cr_assert_eq(a.report.n_findings, expected, "%d findings for %d unfed members", a.report.n_findings, expected);
    audited_free(&a);
}

static void flag_isolated(AuditSettings *s) { s->mode = MASK_ISOLATED; }

/* A visible run audited as isolated: every later member sees its earlier siblings. */
Test(audit, visible_run_audited_as_isolated_names_each_sibling_cell) {
    Audited a;
    generate_and_trace(&a, visible);
    audit_with(&a, flag_isolated);
    int expected = 0;
    for (int q = 0; q < a.gen.n_rows; q++)
        for (int k = 0; k < q; k++) {
            if (q < a.gen.n_prompt || a.gen.sets[k] != a.gen.sets[q]) continue;
            cr_assert(expected < a.report.n_findings, "too few findings");
            const AuditFinding *f = &a.report.findings[expected++];
            cr_assert_str_eq(f->kind, "visible-sibling");
            cr_assert(f->row == q && f->key == k && f->step == a.gen.sets[q] - a.gen.n_prompt, "cell (%d, %d) step %d, expected (%d, %d)",
                      f->row, f->key, f->step, q, k);
        }
    cr_assert(expected >= 3 && a.report.n_findings == expected, "%d findings, %d sibling cells", a.report.n_findings, expected);
    audited_free(&a);
}

static void flag_width_one(AuditSettings *s) { s->max_width = 1; }

/* With --max-width 1 tempo's rule keeps only the first member: each wider step differs. */
Test(audit, selection_differs_where_the_rule_gives_another_set) {
    Audited a;
    generate_and_trace(&a, NULL);
    audit_with(&a, flag_width_one);
    int expected = 0;
    for (int s = 0; s < a.gen.n_steps; s++) {
        if (a.gen.steps[s].n_members < 2) continue;
        const AuditFinding *f = &a.report.findings[expected++];
        cr_assert_str_eq(f->kind, "selection-differs");
        cr_assert_eq(f->step, s);
        cr_assert_eq(f->row, a.gen.members[a.gen.steps[s].first_member].row - 1, "the predicting row is the one before the set");
    }
    cr_assert(expected >= 3 && a.report.n_findings == expected, "%d findings for %d parallel steps", a.report.n_findings, expected);
    audited_free(&a);
}

/* The trace as an engine that computes each call's last row only writes it
 * (one call for the prompt, one a step): no logits, kept_rows the prompt's last
 * row and each step's last, less `dropped` (-1: none); returns how many. */
static int keep_last_rows_only(Audited *a, int dropped) {
    char err[TEMPO_ERR_SIZE];
    int n = a->gen.n_rows, V = a->m.config.vocab_size, m = 0;
    int *rows = malloc((size_t)n * sizeof(int));
    float *kept = malloc((size_t)n * V * sizeof(float));
    for (int r = a->gen.n_prompt - 1; r < n; r++)
        if ((r == n - 1 || a->gen.sets[r + 1] != a->gen.sets[r]) && r != dropped) {
            memcpy(kept + (size_t)m * V, a->gen.logits + (size_t)r * V, V * sizeof(float));
            rows[m++] = r;
        }
    Trace t;
    tempo_trace_init(&t);
    for (int i = 0; i < a->trace.n_tensors; i++) {
        const Tensor *x = &a->trace.tensors[i];
        if (strcmp(x->name, "logits") != 0)
            cr_assert(tempo_trace_add(&t, x->name, x->dtype, x->ndim, x->shape, x->data, err) == 0, "%s", err);
    }
    for (int i = 0; i < a->trace.n_meta; i++)
        cr_assert(tempo_trace_meta(&t, a->trace.meta[i].key, a->trace.meta[i].value, err) == 0, "%s", err);
    int64_t rows_shape[1] = {m}, kept_shape[2] = {m, V};
    cr_assert(tempo_trace_add(&t, "kept_rows", DT_I32, 1, rows_shape, rows, err) == 0, "%s", err);
    cr_assert(tempo_trace_add(&t, "kept_logits", DT_F32, 2, kept_shape, kept, err) == 0, "%s", err);
    tempo_trace_free(&a->trace);
    a->trace = t;
    free(rows);
    free(kept);
    return m;
}

/* The row that predicts step s in tempo's run: the one before the step's first member. */
static int predicting_row_of(const Generation *g, int s) { return g->members[g->steps[s].first_member].row - 1; }

/* Kept rows only: arithmetic and selection checked from them; clean on tempo's own run. */
Test(audit, selection_checked_from_the_kept_rows) {
    Audited a;
    generate_and_trace(&a, NULL);
    int m = keep_last_rows_only(&a, -1);
    audit_with(&a, NULL);
    cr_assert_eq(a.report.n_findings, 0, "%d findings, first %s", a.report.n_findings, a.report.n_findings ? a.report.findings[0].detail : "");
    char want[160];
    snprintf(want, sizeof want, "logits compared on %d of %d rows (kept_rows)", m, a.gen.n_rows);
    cr_assert(strstr(a.report.checks[CHECK_ARITHMETIC], want), "%s", a.report.checks[CHECK_ARITHMETIC]);
    snprintf(want, sizeof want, "0 findings over %d steps", a.gen.n_steps);
    cr_assert_str_eq(a.report.checks[CHECK_SELECTION], want);
    audited_free(&a);
}

/* With --max-width 1 each wider step's selection is wrong: found from the kept predicting rows. */
Test(audit, wrong_selection_found_from_the_kept_rows) {
    Audited a;
    generate_and_trace(&a, NULL);
    keep_last_rows_only(&a, -1);
    audit_with(&a, flag_width_one);
    int expected = 0;
    for (int s = 0; s < a.gen.n_steps; s++) {
        if (a.gen.steps[s].n_members < 2) continue;
        cr_assert(expected < a.report.n_findings, "too few findings: step %d is not named", s);
        const AuditFinding *f = &a.report.findings[expected++];
        cr_assert_str_eq(f->kind, "selection-differs");
        cr_assert(f->step == s && f->row == predicting_row_of(&a.gen, s), "step %d row %d, expected step %d row %d", f->step, f->row,
                  s, predicting_row_of(&a.gen, s));
    }
    cr_assert(expected >= 3 && a.report.n_findings == expected, "%d findings for %d parallel steps", a.report.n_findings, expected);
    audited_free(&a);
}

/* A step whose predicting row has no logits is named as not checked, and its wrong set goes unjudged, not unmentioned. */
Test(audit, step_without_logits_on_its_predicting_row_is_named) {
    Audited a;
    generate_and_trace(&a, NULL);
    int s = 0;
    while (s < a.gen.n_steps && a.gen.steps[s].n_members < 2) s++;
    cr_assert(s < a.gen.n_steps, "the run has a parallel step");
    int row = predicting_row_of(&a.gen, s);
    keep_last_rows_only(&a, row);
    audit_with(&a, flag_width_one);
    for (int i = 0; i < a.report.n_findings; i++)
        cr_assert(a.report.findings[i].step != s, "step %d cannot be checked, yet: %s", s, a.report.findings[i].detail);
    char want[200];
    snprintf(want, sizeof want, "over %d steps of %d (kept_rows); 1 not checked, a row they are predicted from has no logits: step %d (row %d)",
             a.gen.n_steps - 1, a.gen.n_steps, s, row);
    cr_assert(strstr(a.report.checks[CHECK_SELECTION], want), "%s", a.report.checks[CHECK_SELECTION]);
    audited_free(&a);
}

/* next_from mean needs every live member's logits: with the last rows kept, exactly the steps after a wider one go unchecked. */
Test(audit, mean_rule_names_the_steps_after_a_parallel_set) {
    Audited a;
    generate_and_trace(&a, mean_rule);
    keep_last_rows_only(&a, -1);
    audit_with(&a, NULL);
    cr_assert_eq(a.report.n_findings, 0, "%d findings", a.report.n_findings);
    char want[400] = "", item[48];
    int unchecked = 0;
    for (int s = 1; s < a.gen.n_steps; s++)
        if (a.gen.steps[s - 1].n_members > 1) {
            snprintf(item, sizeof item, "%s step %d (row %d)", unchecked++ ? "," : "", s,
                     a.gen.members[a.gen.steps[s - 1].first_member].row);
            strcat(want, item);
        }
    cr_assert(unchecked >= 3, "the run has parallel steps");
    const char *line = a.report.checks[CHECK_SELECTION];
    cr_assert(strstr(line, want) && strstr(line, "has no logits:") && line[strlen(line) - 1] == ')', "expected%s in: %s", want, line);
    audited_free(&a);
}

/* A future key made visible in the trace's mask is visible-future; the arithmetic then differs too. */
Test(audit, future_key_is_named) {
    Audited a;
    generate_and_trace(&a, NULL);
    const Tensor *al = tempo_trace_get(&a.trace, "allowed");
    int n = a.gen.n_rows, q = a.gen.n_prompt + 2;
    ((uint8_t *)al->data)[(size_t)q * n + q + 1] = 1;
    audit_with(&a, NULL);
    int future = 0, mask = 0;
    for (int i = 0; i < a.report.n_findings; i++) {
        const AuditFinding *f = &a.report.findings[i];
        future += strcmp(f->kind, "visible-future") == 0 && f->row == q && f->key == q + 1;
        mask += strncmp(f->kind, "visible", 7) == 0 || strncmp(f->kind, "hidden", 6) == 0;
    }
    cr_assert(future == 1 && mask == 1, "expected one mask finding, visible-future at (%d, %d); got %d mask findings", q, q + 1, mask);
    audited_free(&a);
}

/* A foreign trace: 40 tensors, 40 metadata entries of 2,000 characters, written and read back. */
Test(trace_reader, forty_tensors_and_long_metadata) {
    Audited a;
    char err[TEMPO_ERR_SIZE], key[32], value[2001];
    generate_and_trace(&a, NULL);
    int64_t shape[1] = {3};
    float data[3] = {1, 2, 3};
    while (a.trace.n_tensors < 40) {
        snprintf(key, sizeof key, "engine_state_%d", a.trace.n_tensors);
        cr_assert(tempo_trace_add(&a.trace, key, DT_F32, 1, shape, data, err) == 0, "%s", err);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "engine_note_%d", i);
        memset(value, 'a' + i % 26, 2000);
        value[2000] = '\0';
        cr_assert(tempo_trace_meta(&a.trace, key, value, err) == 0, "%s", err);
    }
    char path[4096];
    scratch_path("foreign.st", path, sizeof path);
    cr_assert(tempo_trace_write(&a.trace, path, err) == 0, "%s", err);
    Trace back;
    cr_assert(tempo_trace_read(&back, path, err) == 0, "%s", err);
    cr_assert_eq(back.n_tensors, 40);
    const char *note = tempo_trace_meta_get(&back, "engine_note_39");
    cr_assert(note && strlen(note) == 2000 && note[1999] == 'a' + 39 % 26, "a 2,000-character value comes back whole");
    cr_assert_str_eq(tempo_trace_meta_get(&back, "mode"), "isolated");
    tempo_trace_free(&back);
    char cmd[8192], out[8192];
    snprintf(cmd, sizeof cmd, "%s audit -m %s/fortune.bin %s", TEMPO_BIN, WEIGHTS_DIR, path);
    int rc = run_command_capture(cmd, out, sizeof out, 1);
    cr_assert(rc == 0 && strstr(out, "CLEAN"), "audit of the foreign trace: exit %d\n%s", rc, out);
    audited_free(&a);
}

/* Tensors tempo cannot hold (I64, 5 dimensions, a 300-character name) are skipped unless they are ones it reads. */
Test(trace_reader, skips_tensors_it_cannot_hold) {
    char name[301], header[2048], err[TEMPO_ERR_SIZE];
    memset(name, 'x', 300);
    name[300] = '\0';
    int len = snprintf(header, sizeof header,
                       "{\"tokens\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"step_ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]},"
                       "\"deep\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[12,13]},"
                       "\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}", name);
    unsigned char buf[4096] = {0};
    uint64_t n = (uint64_t)len;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, (size_t)len);
    Trace t;
    cr_assert(tempo_trace_parse(&t, buf, 8 + (size_t)len + 20, "foreign", err) == 0, "%s", err);
    cr_assert(t.n_tensors == 1 && tempo_trace_get(&t, "tokens"), "only tokens is kept");
    tempo_trace_free(&t);
    len = snprintf(header, sizeof header, "{\"tokens\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}");
    n = (uint64_t)len;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, (size_t)len);
    cr_assert(tempo_trace_parse(&t, buf, 8 + (size_t)len + 8, "foreign", err) != 0, "a known tensor in another dtype is an error");
    cr_assert(strstr(err, "tokens has unsupported dtype I64"), "%s", err);
}

Test(audit, command_line_exit_codes_and_errors) {
    char model[4096], tok[4096], trace[4096], json_path[4096], cmd[9000], out[65536];
    fortune_paths(model, tok);
    scratch_path("audit.st", trace, sizeof trace);
    scratch_path("audit.json", json_path, sizeof json_path);
    snprintf(cmd, sizeof cmd, "%s generate -m %s -z %s -p 'The cat sat on the' --threshold 0.05 -n 12 --emulate last-member-only "
             "--trace %s --quiet && %s audit -m %s %s --json %s",
             TEMPO_BIN, model, tok, trace, TEMPO_BIN, model, trace, json_path);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 1, "findings exit 1:\n%s", out);
    cr_assert(strstr(out, "selected-not-fed: "), "findings are printed grouped:\n%s", out);
    cJSON *json = read_json_file(json_path);
    const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "findings"), 0);
    cr_assert(f && cJSON_IsNull(cJSON_GetObjectItem(f, "row")) && cJSON_IsNumber(cJSON_GetObjectItem(f, "step")) &&
              cJSON_IsObject(cJSON_GetObjectItem(json, "checks")) && cJSON_GetObjectItem(json, "first_divergent_step"),
              "JSON shape: findings with null row, checks, first_divergent_step");
    cJSON_Delete(json);
    snprintf(cmd, sizeof cmd, "audit -m %s %s --mode sideways", model, trace);
    expect_error(cmd, 2, "--mode must be isolated or visible, got 'sideways'", NULL);
    snprintf(cmd, sizeof cmd, "audit -m %s /tmp/no-such-trace.st", model);
    expect_error(cmd, 2, "cannot open trace /tmp/no-such-trace.st", NULL);
    snprintf(cmd, sizeof cmd, "audit -m %s %s --n-prompt 999", model, trace);
    expect_error(cmd, 2, "n_prompt 999 exceeds the trace's", NULL);
}

/* Without n_prompt or a mode nobody gave, the checks that need them are skipped and say so. */
Test(audit, checks_without_settings_are_skipped) {
    Audited a;
    generate_and_trace(&a, NULL);
    Trace bare;
    char err[TEMPO_ERR_SIZE];
    tempo_trace_init(&bare);
    const char *names[] = {"tokens", "positions", "allowed", "logits"};
    for (int i = 0; i < 4; i++) {
        const Tensor *x = tempo_trace_get(&a.trace, names[i]);
        cr_assert(tempo_trace_add(&bare, x->name, x->dtype, x->ndim, x->shape, x->data, err) == 0, "%s", err);
    }
    AuditSettings s;
    AuditReport r;
    audit_settings_init(&s, &a.m.config);
    cr_assert(tempo_audit(&a.m, &bare, &s, &r, err) == 0, "%s", err);
    cr_assert(strstr(r.checks[CHECK_ROWS], "skipped: n_prompt unknown"), "%s", r.checks[CHECK_ROWS]);
    cr_assert(strstr(r.checks[CHECK_MASK], "skipped"), "%s", r.checks[CHECK_MASK]);
    cr_assert(strstr(r.checks[CHECK_SELECTION], "skipped: the trace has no selected"), "%s", r.checks[CHECK_SELECTION]);
    cr_assert(strncmp(r.checks[CHECK_ARITHMETIC], "0 findings", 10) == 0, "%s", r.checks[CHECK_ARITHMETIC]);
    audit_report_free(&r);
    tempo_trace_free(&bare);
    audited_free(&a);
}

/* --position-gap: the audit takes the gap from the trace's metadata (rows,
 * positions and the replay); a trace whose metadata says no gap has every
 * step's rows 9 positions off. */
static void gapped(GenConfig *g) { g->position_gap = 9; }

Test(audit, position_gap_comes_from_the_metadata) {
    expect_clean(gapped, "--position-gap 9");
    Audited a;
    char err[TEMPO_ERR_SIZE];
    generate_and_trace(&a, gapped);
    cr_assert_str_eq(tempo_trace_meta_get(&a.trace, "position_gap"), "9");
    cr_assert(tempo_trace_meta(&a.trace, "position_gap", "0", err) == 0, "%s", err); /* the later entry wins */
    audit_with(&a, NULL);
    int off = 0;
    for (int i = 0; i < a.report.n_findings; i++)
        off += strcmp(a.report.findings[i].kind, "position-mismatch") == 0 && strstr(a.report.findings[i].detail, "(offset +9)");
    cr_assert_eq(off, a.gen.n_steps, "%d of %d steps reported 9 positions off", off, a.gen.n_steps);
    cr_assert_neq(a.report.first_divergent_step, -1, "a replay without the gap should select other sets");
    audited_free(&a);
}

/* A set as the audit writes it, "[412 (0.2722), 379 (0.1500), … 12 more]":
 * its width (the members shown and those cut), *end just after its ']';
 * -1 when it is not whole, or cut at a member and closed. */
static int written_set_width(const char *text, const char **end) {
    if (*text++ != '[') return -1;
    for (int n = 0;; text += 2) {
        int token, more, used = 0;
        float p;
        if (*text == ']' && n == 0) return *end = text + 1, 0;
        if (sscanf(text, "… %d more]%n", &more, &used) == 1 && used) return *end = text + used, n + more;
        if (sscanf(text, "%d (%f)%n", &token, &p, &used) != 2 || !used) return -1;
        text += used, n++;
        if (*text == ']') return *end = text + 1, n;
        if (strncmp(text, ", ", 2) != 0) return -1;
    }
}

/* "engine [..], tempo [..]" in `line`, each set well-formed, the engine's
 * `engine_width` wide, nothing after them but `tail`; 1 when a set was cut. */
static int expect_both_sets(const char *line, int engine_width, const char *tail) {
    const char *at = strstr(line, "engine ["), *end = NULL;
    cr_assert(at, "no engine set in: %s", line);
    cr_assert_eq(written_set_width(at + 7, &end), engine_width, "engine's set of %d is not whole or cut at a member: %s",
                 engine_width, line);
    cr_assert(strncmp(end, ", tempo [", 9) == 0, "tempo's set must follow the engine's: %s", line);
    cr_assert(written_set_width(end + 8, &end) >= 1, "tempo's set is not whole or cut at a member: %s", line);
    cr_assert(*end == '\0' || strncmp(end, tail, strlen(tail)) == 0, "the line goes on after tempo's set: %s", line);
    return strstr(line, " more]") != NULL;
}

/* Each selection-differs finding and the replay name both sets; 1 when one was cut. */
static int expect_findings_with_both_sets(const Audited *a) {
    int cut = 0, s = a->report.first_divergent_step;
    cr_assert(a->report.n_findings >= 3 && s >= 0, "%d findings, replay: %s", a->report.n_findings, a->report.checks[CHECK_REPLAY]);
    for (int i = 0; i < a->report.n_findings; i++) {
        const AuditFinding *f = &a->report.findings[i];
        cr_assert_str_eq(f->kind, "selection-differs");
        cut |= expect_both_sets(f->detail, a->gen.steps[f->step].n_members, "");
    }
    cut |= expect_both_sets(a->report.checks[CHECK_REPLAY], a->gen.steps[s].n_members, " (tempo stopped: ");
    return cut;
}

static void wide(GenConfig *g) { g->threshold = 0.005f; g->max_width = 64; }
static void narrow(GenConfig *g) { g->threshold = 0.5f; }
static void flag_wide(AuditSettings *s) { s->threshold = 0.005f; s->max_width = 64; }
static void flag_narrow(AuditSettings *s) { s->threshold = 0.5f; }

/* Sets too wide for a line are cut at a member and closed, "… N more]", and
 * both sides always show: a wide engine set audited at 0.5, then a narrow
 * run audited at 0.005 (tempo's sets wide). */
Test(audit, wide_sets_are_cut_at_a_member_and_both_sides_show) {
    Audited a;
    generate_and_trace(&a, wide);
    audit_with(&a, flag_narrow);
    cr_assert(expect_findings_with_both_sets(&a), "the engine's sets must be too wide for a line to test anything");
    audited_free(&a);
    generate_and_trace(&a, narrow);
    audit_with(&a, flag_wide);
    cr_assert(expect_findings_with_both_sets(&a), "tempo's sets must be too wide for a line to test anything");
    audited_free(&a);
}

/* A step's first fed row: the row of member `mi` of the first step with two or more fed members. */
static int two_fed_members(const Generation *g, int *step) {
    for (int s = 0; s < g->n_steps; s++) {
        const Member *m0 = &g->members[g->steps[s].first_member];
        if (g->steps[s].n_members >= 2 && m0[0].row >= 0 && m0[1].row == m0[0].row + 1) return *step = s, m0[0].row;
    }
    return -1;
}

/* A set fed in another order than its own (most probable first): its rows' tokens and logits swapped,
 * so the arithmetic still holds and the mask does not change; the audit names the row fed early. */
Test(audit, a_set_fed_out_of_order_is_named) {
    Audited a;
    generate_and_trace(&a, NULL);
    int s, r = two_fed_members(&a.gen, &s), V = a.m.config.vocab_size;
    cr_assert(r >= 0, "the run has no step with two fed members");
    int *tokens = tempo_trace_get(&a.trace, "tokens")->data, t = tokens[r];
    tokens[r] = tokens[r + 1], tokens[r + 1] = t;
    float *logits = tempo_trace_get(&a.trace, "logits")->data, *row = malloc((size_t)V * sizeof(float));
    memcpy(row, logits + (size_t)r * V, (size_t)V * sizeof(float));
    memcpy(logits + (size_t)r * V, logits + (size_t)(r + 1) * V, (size_t)V * sizeof(float));
    memcpy(logits + (size_t)(r + 1) * V, row, (size_t)V * sizeof(float));
    free(row);
    audit_with(&a, NULL);
    int named = 0, order = 0;
    for (int i = 0; i < a.report.n_findings; i++) {
        const AuditFinding *f = &a.report.findings[i];
        order += strcmp(f->kind, "member-order") == 0;
        named += strcmp(f->kind, "member-order") == 0 && f->row == r + 1 && f->step == s;
    }
    cr_assert(named == 1 && order == 1, "expected member-order at row %d step %d; %d such findings, %d in all", r + 1, s, named,
              order);
    audited_free(&a);
}

/* A row marked pruned in a run whose settings prune nothing is named, not taken as given. */
Test(audit, a_row_pruned_without_pruning_is_named) {
    Audited a;
    generate_and_trace(&a, NULL);
    int s, r = two_fed_members(&a.gen, &s);
    cr_assert(r >= 0 && s + 1 < a.gen.n_steps, "the run has no step with two fed members before its last");
    const Tensor *pruned = tempo_trace_get(&a.trace, "pruned");
    cr_assert(pruned, "the trace has no pruned tensor");
    ((int *)pruned->data)[r + 1] = s + 1;
    audit_with(&a, NULL);
    int named = 0;
    for (int i = 0; i < a.report.n_findings; i++)
        named += strcmp(a.report.findings[i].kind, "pruned-without-pruning") == 0 && a.report.findings[i].row == r + 1;
    cr_assert_eq(named, 1, "row %d marked pruned without pruning: %d findings name it", r + 1, named);
    audited_free(&a);
}

/* The verdict says how much was audited: a trace with logits but no settings is CLEAN (partial), exit 0,
 * its skipped checks counted; one with nothing any check can use is NOTHING AUDITED, exit 1, not clean. */
Test(audit, a_verdict_says_how_much_was_audited) {
    Audited a;
    generate_and_trace(&a, NULL);
    char err[TEMPO_ERR_SIZE], path[4096], cmd[9000], out[65536];
    const char *names[] = {"tokens", "positions", "allowed", "logits"};
    for (int kept = 4; kept >= 3; kept--) { /* with logits, then without */
        Trace bare;
        tempo_trace_init(&bare);
        for (int i = 0; i < kept; i++) {
            const Tensor *x = tempo_trace_get(&a.trace, names[i]);
            cr_assert(tempo_trace_add(&bare, x->name, x->dtype, x->ndim, x->shape, x->data, err) == 0, "%s", err);
        }
        scratch_path(kept == 4 ? "partial.st" : "nothing.st", path, sizeof path);
        cr_assert(tempo_trace_write(&bare, path, err) == 0, "%s", err);
        tempo_trace_free(&bare);
        snprintf(cmd, sizeof cmd, "%s audit -m %s/fortune.bin %s", TEMPO_BIN, WEIGHTS_DIR, path);
        int rc = run_command_capture(cmd, out, sizeof out, 1);
        if (kept == 4)
            cr_expect(rc == 0 && strstr(out, "CLEAN (partial): 0 findings in the 1 checks run, 4 skipped"), "exit %d:\n%s", rc, out);
        else
            cr_expect(rc == 1 && strstr(out, "NOTHING AUDITED: every check was skipped"), "exit %d:\n%s", rc, out);
    }
    audited_free(&a);
}

/* Attention on a key the trace's own mask hides must be exactly 0 (exp(-inf), whatever the arithmetic):
 * 5e-5 there, under the 1e-4 tolerance of the arithmetic check, is named at its row, key, layer and head. */
Test(audit, attention_on_a_hidden_key_is_named_below_the_tolerance) {
    Audited a;
    generate_and_trace(&a, NULL);
    const Tensor *att = tempo_trace_get(&a.trace, "attention");
    cr_assert(att && att->ndim == 4, "the trace keeps no [L,H,n,n] attention");
    int n = a.gen.n_rows, q = a.gen.n_prompt + 2, L = (int)att->shape[0], H = (int)att->shape[1];
    ((float *)att->data)[(((size_t)(L - 1) * H + 1) * n + q) * n + q + 1] = 5e-5f; /* a future key, last layer, head 1 */
    audit_with(&a, NULL);
    int named = 0, hidden = 0;
    for (int i = 0; i < a.report.n_findings; i++) {
        const AuditFinding *f = &a.report.findings[i];
        hidden += strcmp(f->kind, "attention-on-hidden-key") == 0;
        named += strcmp(f->kind, "attention-on-hidden-key") == 0 && f->row == q && f->key == q + 1 && strstr(f->detail, "head 1");
    }
    cr_assert(named == 1 && hidden == 1, "expected one attention-on-hidden-key at (%d, %d); %d named, %d in all", q, q + 1, named,
              hidden);
    audited_free(&a);
}

/* A mask stored as the rule is rebuilt from the trace's own sets and checked cell by cell: the same run
 * is clean, and with every row given its own set (an isolated rule that then hides no sibling) each
 * sibling it lets a member see is named. */
Test(audit, a_rule_over_sets_that_lie_is_checked_cell_by_cell) {
    Audited a;
    generate_and_trace(&a, NULL);
    char err[TEMPO_ERR_SIZE];
    GenConfig g;
    tempo_gen_defaults(&g, &a.m.config);
    g.threshold = 0.05f, g.max_steps = 24, g.capture_attention = 1; /* the fixture's run */
    for (int lie = 0; lie < 2; lie++) {
        Trace rule;
        AuditSettings s;
        AuditReport r;
        cr_assert(tempo_generation_trace(&a.gen, &a.m, TRACE_MASK_RULE, &rule, err) == 0, "%s", err);
        cr_assert(audit_put_settings(&rule, &g, &a.m.config, err) == 0, "%s", err);
        int *sets = tempo_trace_get(&rule, "sets")->data;
        for (int i = 0; lie && i < a.gen.n_rows; i++) sets[i] = i;
        audit_settings_init(&s, &a.m.config);
        cr_assert(audit_settings_from_trace(&s, &rule, &a.m.config, err) == 0, "%s", err);
        cr_assert(tempo_audit(&a.m, &rule, &s, &r, err) == 0, "%s", err);
        int siblings = 0;
        for (int i = 0; i < r.n_findings; i++) siblings += strcmp(r.findings[i].kind, "visible-sibling") == 0;
        if (lie) cr_expect_gt(siblings, 0, "a rule over one set a row hid no sibling, and no cell was named: %s", r.checks[CHECK_MASK]);
        else cr_expect_eq(r.n_findings, 0, "the run's own rule: %d findings, first %s", r.n_findings,
                          r.n_findings ? r.findings[0].detail : "");
        audit_report_free(&r);
        tempo_trace_free(&rule);
    }
    audited_free(&a);
}
