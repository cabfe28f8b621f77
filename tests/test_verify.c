/* Checking other engines: tempo verify recomputes any engine's trace,
 * tempo diff compares two traces; both name the offending row. */
#include "helpers.h"

static int run_out(const char *args, char *out, size_t len) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    return run_command_capture(cmd, out, len, 1);
}

/* Generation traces of several kinds verify against the full forward pass. */
Test(verify, generation_traces_of_every_kind_pass) {
    char model[4096], tok[4096], trace[4096];
    fortune_paths(model, tok);
    scratch_path("v.st", trace, sizeof trace);
    const char *kinds[] = {"", "--mode visible", "--isolate-layers 1-2", "--dynamic-threshold --final-threshold 0.6",
                           "--prune attention", "--prune attention --next-from mean"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char args[9000], out[65536];
        snprintf(args, sizeof args, "generate -m %s -z %s -p 'Q: Why did the chicken' -n 40 --threshold 0.05 %s --trace %s",
                 model, tok, kinds[i], trace);
        cr_assert_eq(run_out(args, out, sizeof out), 0, "generate %s failed: %s", kinds[i], out);
        snprintf(args, sizeof args, "verify -m %s %s", model, trace);
        int rc = run_out(args, out, sizeof out);
        cr_assert(rc == 0 && strstr(out, "PASS"), "verify of a %s trace: exit %d\n%s", kinds[i], rc, out);
        cr_assert(strstr(out, "attention  ok"), "the trace's attention is checked too:\n%s", out);
    }
}

/* A TEMPO trace written by oracle/reference.py verifies; perturbed copies fail naming the row. */
Test(verify, reference_trace_passes_and_perturbations_fail_at_their_row) {
    char model[4096], perturbed[4096], args[9000], out[65536], err[TEMPO_ERR_SIZE];
    weights_path("fortune.bin", model, sizeof model);
    scratch_path("perturbed.st", perturbed, sizeof perturbed);
    const char *golden = GOLDEN_DIR "/fortune-tempo-the-isolated.safetensors";
    snprintf(args, sizeof args, "verify -m %s %s", model, golden);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "the reference trace must verify:\n%s", out);

    Trace t;
    cr_assert(tempo_trace_read(&t, golden, err) == 0, "%s", err);
    Tensor *logits = (Tensor *)tempo_trace_get(&t, "logits");
    int V = (int)logits->shape[1], row = 17;
    ((float *)logits->data)[row * V + 100] += 1e-2f;
    cr_assert(tempo_trace_write(&t, perturbed, err) == 0, "%s", err);
    snprintf(args, sizeof args, "verify -m %s %s", model, perturbed);
    cr_assert_eq(run_out(args, out, sizeof out), 1, "a changed logit must fail:\n%s", out);
    cr_assert(strstr(out, "first at [17,100]"), "the report names row 17:\n%s", out);
    ((float *)logits->data)[row * V + 100] -= 1e-2f;

    /* flip one mask bit: a member of a parallel set now sees its sibling */
    const int *sets = tempo_trace_get(&t, "sets")->data;
    int n = (int)logits->shape[0], q = -1;
    for (int i = 1; i < n && q < 0; i++)
        if (sets[i] == sets[i - 1]) q = i;
    cr_assert(q > 0, "the golden run has a parallel set");
    Tensor *allowed = (Tensor *)tempo_trace_get(&t, "allowed");
    ((uint8_t *)allowed->data)[(size_t)q * n + q - 1] = 1;
    cr_assert(tempo_trace_write(&t, perturbed, err) == 0, "%s", err);
    cr_assert_eq(run_out(args, out, sizeof out), 1, "a flipped mask bit must fail:\n%s", out);
    char needle[32];
    snprintf(needle, sizeof needle, "first at [%d,", q);
    cr_assert(strstr(out, needle), "the report names row %d:\n%s", q, out);
    tempo_trace_free(&t);
}

/* A copy of trace `from` holding only the tensors named (NULL-terminated), written to `to`. */
static void write_trace_with(const char *from, const char *to, const char *const *names) {
    char err[TEMPO_ERR_SIZE];
    Trace t, part;
    cr_assert(tempo_trace_read(&t, from, err) == 0, "%s", err);
    tempo_trace_init(&part);
    for (; *names; names++) {
        const Tensor *x = tempo_trace_get(&t, *names);
        cr_assert(x, "%s has no tensor %s", from, *names);
        cr_assert(tempo_trace_add(&part, x->name, x->dtype, x->ndim, x->shape, x->data, err) == 0, "%s", err);
    }
    cr_assert(tempo_trace_write(&part, to, err) == 0, "%s", err);
    tempo_trace_free(&part);
    tempo_trace_free(&t);
}

/* A trace with neither logits nor attention gives verify nothing to compare: no PASS, exit 2, one line. */
Test(verify, nothing_to_compare_is_not_a_pass) {
    char model[4096], full[4096], inputs_only[4096], args[9000], out[65536];
    weights_path("fortune.bin", model, sizeof model);
    scratch_path("inputs.st", full, sizeof full);
    scratch_path("inputs-only.st", inputs_only, sizeof inputs_only);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,337,278,272,269 --positions 0,1,2,2,3 --mask isolated --out %s",
             model, full);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    static const char *const inputs[] = {"tokens", "positions", "allowed", NULL};
    write_trace_with(full, inputs_only, inputs);
    snprintf(args, sizeof args, "verify -m %s %s", model, inputs_only);
    expect_error(args, 2, "nothing to compare", NULL);
    run_out(args, out, sizeof out);
    cr_assert(!strstr(out, "PASS"), "verify passed a trace it compared nothing of:\n%s", out);
    static const char *const with_attention[] = {"tokens", "positions", "allowed", "attention", NULL};
    write_trace_with(full, inputs_only, with_attention);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "attention alone is something to compare:\n%s", out);
    cr_assert(strstr(out, "logits compared on 0 of 5 rows (the trace has none)") && strstr(out, "attention  ok"), "%s", out);
}

/* The scratch file forward_five_rows writes. */
static const char *kept_full_path(char *buf, size_t len) { return scratch_path("kept-full.st", buf, len); }

/* The forward pass of five rows (a parallel set at position 2) on fortune.bin, written to kept_full_path. */
static void forward_five_rows(char *model, size_t len) {
    char full[4096], args[9000], out[65536];
    weights_path("fortune.bin", model, len);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,337,278,272,269 --positions 0,1,2,2,3 --mask isolated "
             "--out %s", model, kept_full_path(full, sizeof full));
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
}

/* The inputs of kept_full_path (and its attention if asked), with kept_rows I32[m] and
 * kept_logits F32[logit_rows, V] holding the full run's logits of the rows named by logit_of. */
static void write_kept(const char *to, const int *rows, int m, const int *logit_of, int logit_rows, int with_attention) {
    char path[4096], err[TEMPO_ERR_SIZE];
    Trace full, t;
    cr_assert(tempo_trace_read(&full, kept_full_path(path, sizeof path), err) == 0, "%s", err);
    tempo_trace_init(&t);
    const char *names[] = {"tokens", "positions", "allowed", with_attention ? "attention" : NULL};
    for (int i = 0; i < 4 && names[i]; i++) {
        const Tensor *x = tempo_trace_get(&full, names[i]);
        cr_assert(tempo_trace_add(&t, x->name, x->dtype, x->ndim, x->shape, x->data, err) == 0, "%s", err);
    }
    const Tensor *logits = tempo_trace_get(&full, "logits");
    int V = (int)logits->shape[1];
    float *kept = malloc((size_t)(logit_rows + 1) * V * sizeof(float));
    for (int i = 0; i < logit_rows; i++) memcpy(kept + (size_t)i * V, (float *)logits->data + (size_t)logit_of[i] * V, V * sizeof(float));
    int64_t rows_shape[1] = {m}, kept_shape[2] = {logit_rows, V};
    if (rows) cr_assert(tempo_trace_add(&t, "kept_rows", DT_I32, 1, rows_shape, rows, err) == 0, "%s", err);
    if (logit_of) cr_assert(tempo_trace_add(&t, "kept_logits", DT_F32, 2, kept_shape, kept, err) == 0, "%s", err);
    cr_assert(tempo_trace_write(&t, to, err) == 0, "%s", err);
    free(kept);
    tempo_trace_free(&t);
    tempo_trace_free(&full);
}

/* kept_rows/kept_logits: logits compared on those rows, a wrong one named by its trace row. */
Test(verify, logits_compared_on_the_kept_rows) {
    char model[4096], kept[4096], full[4096], args[9000], out[65536], err[TEMPO_ERR_SIZE];
    forward_five_rows(model, sizeof model);
    scratch_path("kept.st", kept, sizeof kept);
    static const int rows[] = {2, 4};
    write_kept(kept, rows, 2, rows, 2, 0);
    snprintf(args, sizeof args, "verify -m %s %s", model, kept);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "the kept rows' logits are right:\n%s", out);
    cr_assert(strstr(out, "logits compared on 2 of 5 rows (kept_rows)") && strstr(out, "PASS"), "%s", out);
    cr_assert(strstr(out, "top-1 agreement 2/2"), "the per-row metrics count the kept rows:\n%s", out);

    static const int shifted[] = {2, 3}; /* kept_rows says 2, 4; the logits are rows 2, 3 */
    write_kept(kept, rows, 2, shifted, 2, 1);
    cr_assert_eq(run_out(args, out, sizeof out), 1, "logits of another row must fail:\n%s", out);
    cr_assert(strstr(out, "first at [4,"), "the report names trace row 4:\n%s", out);
    cr_assert(strstr(out, "attention  ok"), "the attention is compared too:\n%s", out);

    Trace t;
    write_kept(kept, rows, 2, rows, 2, 0);
    cr_assert(tempo_trace_read(&t, kept, err) == 0, "%s", err);
    ((float *)((Tensor *)tempo_trace_get(&t, "kept_logits"))->data)[512 + 100] += 1e-2f;
    cr_assert(tempo_trace_write(&t, kept, err) == 0, "%s", err);
    tempo_trace_free(&t);
    cr_assert_eq(run_out(args, out, sizeof out), 1, "a changed kept logit must fail:\n%s", out);
    cr_assert(strstr(out, "first at [4,100]"), "the report names row 4, vocabulary id 100:\n%s", out);

    snprintf(args, sizeof args, "verify -m %s %s", model, kept_full_path(full, sizeof full));
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "logits     ok"), "a full logits tensor: every row:\n%s", out);
}

/* Malformed kept_rows/kept_logits: one line naming the problem, exit 2, from verify and audit alike. */
Test(verify, kept_rows_are_checked_strictly) {
    char model[4096], bad[4096], args[9000];
    forward_five_rows(model, sizeof model);
    scratch_path("kept-bad.st", bad, sizeof bad);
    static const int two_four[] = {2, 4}, out_of_range[] = {2, 5}, negative[] = {-1, 2}, twice[] = {2, 2}, down[] = {4, 2};
    static const int three[] = {1, 2, 4};
    struct { const int *rows; int m; const int *logit_of; int logit_rows; const char *needle; } cases[] = {
        {two_four, 2, NULL, 0, "trace holds kept_rows without kept_logits"},
        {NULL, 0, two_four, 2, "trace holds kept_logits without kept_rows"},
        {out_of_range, 2, two_four, 2, "trace kept_rows[1] is row 5, outside the trace's 5 rows"},
        {negative, 2, two_four, 2, "trace kept_rows[0] is row -1, outside the trace's 5 rows"},
        {twice, 2, two_four, 2, "trace kept_rows names row 2 twice (kept_rows[0] and [1])"},
        {down, 2, two_four, 2, "trace kept_rows must be strictly increasing: kept_rows[1] is row 2, after row 4"},
        {two_four, 2, three, 3, "trace kept_logits must be F32[2,512] (one row per kept_rows entry, vocabulary), got F32[3,512]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_kept(bad, cases[i].rows, cases[i].m, cases[i].logit_of, cases[i].logit_rows, 1);
        snprintf(args, sizeof args, "verify -m %s %s", model, bad);
        expect_error(args, 2, cases[i].needle, NULL);
        snprintf(args, sizeof args, "audit -m %s %s", model, bad);
        expect_error(args, 2, cases[i].needle, NULL);
    }
}

/* Shapes and dtypes of logits, kept_rows and kept_logits, and never both forms. */
Test(verify, logit_tensors_of_the_wrong_shape_or_both_forms) {
    char model[4096], full[4096], shape[4096], args[9000], err[TEMPO_ERR_SIZE];
    forward_five_rows(model, sizeof model);
    scratch_path("kept-shape.st", shape, sizeof shape);
    Trace t;
    cr_assert(tempo_trace_read(&t, kept_full_path(full, sizeof full), err) == 0, "%s", err);
    static const int rows[] = {2, 4};
    int64_t two[1] = {2}, none[1] = {0}, square[2] = {2, 2}, kept_shape[2] = {2, 512};
    const float *logits = tempo_trace_get(&t, "logits")->data;
    cr_assert(tempo_trace_add(&t, "kept_rows", DT_I32, 1, two, rows, err) == 0, "%s", err);
    cr_assert(tempo_trace_add(&t, "kept_logits", DT_F32, 2, kept_shape, logits, err) == 0, "%s", err);
    cr_assert(tempo_trace_write(&t, shape, err) == 0, "%s", err);
    snprintf(args, sizeof args, "verify -m %s %s", model, shape);
    expect_error(args, 2, "trace holds both logits and kept_rows: every row's logits, or the kept rows', not both", NULL);
    tempo_trace_free(&t);

    struct { const char *name; DType dtype; int ndim; const int64_t *shape; const char *needle; } cases[] = {
        {"logits", DT_F32, 2, kept_shape, "trace logits must be F32[5,512] (rows, vocabulary), got F32[2,512]"},
        {"kept_rows", DT_F32, 1, two, "trace kept_rows must be I32[m] with 1 <= m <= 5 (the trace's rows), got F32[2]"},
        {"kept_rows", DT_I32, 2, square, "trace kept_rows must be I32[m] with 1 <= m <= 5 (the trace's rows), got I32[2,2]"},
        {"kept_rows", DT_I32, 1, none, "trace kept_rows must be I32[m] with 1 <= m <= 5 (the trace's rows), got I32[0]"},
    };
    static const float zeros[4 * 512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_kept(shape, NULL, 0, NULL, 0, 1);
        cr_assert(tempo_trace_read(&t, shape, err) == 0, "%s", err);
        cr_assert(tempo_trace_add(&t, cases[i].name, cases[i].dtype, cases[i].ndim, cases[i].shape, zeros, err) == 0, "%s", err);
        if (strcmp(cases[i].name, "kept_rows") == 0)
            cr_assert(tempo_trace_add(&t, "kept_logits", DT_F32, 2, kept_shape, zeros, err) == 0, "%s", err);
        cr_assert(tempo_trace_write(&t, shape, err) == 0, "%s", err);
        tempo_trace_free(&t);
        expect_error(args, 2, cases[i].needle, NULL);
    }
}

Test(diff, exit_codes_and_metrics) {
    char model[4096], a[4096], b[4096], junk[4096], args[9000], out[65536], err[TEMPO_ERR_SIZE];
    weights_path("fortune.bin", model, sizeof model);
    scratch_path("a.st", a, sizeof a);
    scratch_path("b.st", b, sizeof b);
    scratch_path("junk.st", junk, sizeof junk);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,337,278,272,269 --positions 0,1,2,2,3 --mask isolated --out %s",
             model, a);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "diff %s %s", a, a);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "a trace equals itself:\n%s", out);
    cr_assert(strstr(out, "top-1 agreement 5/5"), "%s", out);
    Trace t;
    cr_assert(tempo_trace_read(&t, a, err) == 0, "%s", err);
    ((float *)((Tensor *)tempo_trace_get(&t, "logits"))->data)[3 * 512 + 7] += 0.5f;
    cr_assert(tempo_trace_write(&t, b, err) == 0, "%s", err);
    tempo_trace_free(&t);
    snprintf(args, sizeof args, "diff %s %s", a, b);
    cr_assert_eq(run_out(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "max abs 5.000e-01 at [3,7]"), "the worst element is named:\n%s", out);
    snprintf(args, sizeof args, "diff %s %s --atol 0.6", a, b);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    FILE *f = fopen(junk, "w");
    fputs("not a trace", f);
    fclose(f);
    snprintf(args, sizeof args, "diff %s %s", a, junk);
    cr_assert_eq(run_out(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "not a safetensors file"), "%s", out);
    snprintf(args, sizeof args, "diff %s /tmp/does-not-exist.st", a);
    cr_assert_eq(run_out(args, out, sizeof out), 2, "%s", out);
}

/* The README's numpy example writes a trace that tempo verify accepts. */
Test(verify, readme_numpy_example) {
    char model[4096], trace[4096], cmd[9000], out[65536];
    weights_path("fortune.bin", model, sizeof model);
    scratch_path("readme.st", trace, sizeof trace);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/readme_example.py README.md %s %s",
             GOLDEN_DIR "/fortune-isolated.safetensors", trace);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "the README example failed:\n%s", out);
    char args[9000];
    snprintf(args, sizeof args, "verify -m %s %s", model, trace);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "logits     ok"), "%s", out);
}

/* A generate trace keeping layer 1, head 0 and some rows: verify and audit
 * read it and pass; a changed kept probability fails verify, and the audit
 * names it at its row number (not its place among the kept rows) and key. */
Test(verify, partial_generation_traces_are_read_and_a_changed_value_found_at_its_row) {
    char model[4096], tok[4096], part[4096], bad[4096], json_path[4096], args[9000], err[TEMPO_ERR_SIZE];
    static char out[65536];
    fortune_paths(model, tok);
    scratch_path("vpart.st", part, sizeof part);
    scratch_path("vpart-bad.st", bad, sizeof bad);
    scratch_path("vpart.json", json_path, sizeof json_path);
    snprintf(args, sizeof args, "generate -m %s -z %s -p 'Q: Why did the chicken' -n 40 --threshold 0.05 --attention-layers 1 "
             "--attention-heads 0 --attention-rows 3,20-30 --trace %s --quiet", model, tok, part);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "verify -m %s %s", model, part);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "attention  ok") && strstr(out, "the trace holds the attention of layers 1, heads 0, rows 3,20-30"), "%s", out);
    snprintf(args, sizeof args, "audit -m %s %s", model, part);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "attention compared on the 12 of"), "%s", out);
    Trace t;
    cr_assert(tempo_trace_read(&t, part, err) == 0, "%s", err);
    const Tensor *att = tempo_trace_get(&t, "attention");
    const int *positions = tempo_trace_get(&t, "positions")->data;
    cr_assert(att->shape[0] == 1 && att->shape[1] == 1 && att->shape[2] == 12, "kept rows 3 and 20-30");
    cr_assert(positions[24] != 24, "row 24 must sit at another position for the test to tell rows from positions");
    ((float *)att->data)[5 * att->shape[3] + 2] += 0.25f; /* slot 5 (rows 3, 20, 21, ..): row 24, key 2 */
    cr_assert(tempo_trace_write(&t, bad, err) == 0, "%s", err);
    tempo_trace_free(&t);
    snprintf(args, sizeof args, "verify -m %s %s", model, bad);
    cr_assert_eq(run_out(args, out, sizeof out), 1, "a changed kept probability must fail:\n%s", out);
    snprintf(args, sizeof args, "audit -m %s %s --json %s", model, bad, json_path);
    cr_assert_eq(run_out(args, out, sizeof out), 1, "%s", out);
    cJSON *json = read_json_file(json_path);
    const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "findings"), 0);
    cr_assert(f && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(f, "kind")), "attention-differs") == 0 &&
                  cJSON_GetNumberValue(cJSON_GetObjectItem(f, "row")) == 24 && cJSON_GetNumberValue(cJSON_GetObjectItem(f, "key")) == 2 &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(json, "findings")) == 1,
              "one finding, attention-differs at row 24 key 2:\n%s", out);
    cJSON_Delete(json);
}

/* Under --numerics ggml a product's order depends on how many rows its call
 * has (tinyBLAS for 2+, vec_dot for one): verify recomputes a trace in the
 * calls its engine made (the prompt, then each set), so tempo's own ggml
 * traces of F16 and BF16 models verify bitwise, attention too. Without
 * n_prompt the trace is recomputed in one pass, and the one-row steps differ. */
Test(verify, ggml_traces_are_recomputed_in_their_calls) {
    const char *types[] = {"f16", "bf16"};
    for (int i = 0; i < 2; i++) {
        char model[4096], calls[4096], one_pass[4096], args[9000], out[65536], err[TEMPO_ERR_SIZE];
        snprintf(model, sizeof model, BUILD_DIR "/synth-gguf-%s.gguf", types[i]);
        scratch_path("ggml-calls.st", calls, sizeof calls);
        scratch_path("ggml-one-pass.st", one_pass, sizeof one_pass);
        snprintf(args, sizeof args, "generate -m %s --tokens 1,50,60,70,80 -n 10 --threshold 0.05 --numerics ggml "
                 "--trace %s --quiet", model, calls);
        cr_assert_eq(run_out(args, out, sizeof out), 0, "generate: %s", out);
        snprintf(args, sizeof args, "verify -m %s %s --atol 0", model, calls);
        int rc = run_out(args, out, sizeof out);
        cr_assert(rc == 0 && strstr(out, "in the engine's calls") && strstr(out, "attention  ok"), "%s: exit %d\n%s", types[i], rc, out);
        Trace t;
        cr_assert(tempo_trace_read(&t, calls, err) == 0, "%s", err);
        cr_assert(tempo_trace_meta(&t, "n_prompt", "unknown", err) == 0 && tempo_trace_write(&t, one_pass, err) == 0, "%s", err);
        tempo_trace_free(&t);
        snprintf(args, sizeof args, "verify -m %s %s --atol 0", model, one_pass);
        rc = run_out(args, out, sizeof out);
        cr_assert(rc == 1 && !strstr(out, "in the engine's calls"), "%s in one pass: exit %d\n%s", types[i], rc, out);
    }
}
