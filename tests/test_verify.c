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
    char model[4096], tok[4096];
    fortune_paths(model, tok);
    const char *kinds[] = {"", "--mode visible", "--isolate-layers 1-2", "--dynamic-threshold --final-threshold 0.6",
                           "--prune attention", "--prune attention --next-from mean"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char args[9000], out[65536];
        snprintf(args, sizeof args, "generate -m %s -z %s -p 'Q: Why did the chicken' -n 40 --threshold 0.05 %s --trace /tmp/tempo-v.st",
                 model, tok, kinds[i]);
        cr_assert_eq(run_out(args, out, sizeof out), 0, "generate %s failed: %s", kinds[i], out);
        snprintf(args, sizeof args, "verify -m %s /tmp/tempo-v.st", model);
        int rc = run_out(args, out, sizeof out);
        cr_assert(rc == 0 && strstr(out, "PASS"), "verify of a %s trace: exit %d\n%s", kinds[i], rc, out);
        cr_assert(strstr(out, "attention  ok"), "the trace's attention is checked too:\n%s", out);
    }
}

/* A TEMPO trace written by oracle/reference.py verifies; perturbed copies fail naming the row. */
Test(verify, reference_trace_passes_and_perturbations_fail_at_their_row) {
    char model[4096], args[9000], out[65536], err[TEMPO_ERR_SIZE];
    weights_path("fortune.bin", model, sizeof model);
    const char *golden = GOLDEN_DIR "/fortune-tempo-the-isolated.safetensors";
    snprintf(args, sizeof args, "verify -m %s %s", model, golden);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "the reference trace must verify:\n%s", out);

    Trace t;
    cr_assert(tempo_trace_read(&t, golden, err) == 0, "%s", err);
    Tensor *logits = (Tensor *)tempo_trace_get(&t, "logits");
    int V = (int)logits->shape[1], row = 17;
    ((float *)logits->data)[row * V + 100] += 1e-2f;
    cr_assert(tempo_trace_write(&t, "/tmp/tempo-perturbed.st", err) == 0, "%s", err);
    snprintf(args, sizeof args, "verify -m %s /tmp/tempo-perturbed.st", model);
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
    cr_assert(tempo_trace_write(&t, "/tmp/tempo-perturbed.st", err) == 0, "%s", err);
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
    char model[4096], args[9000], out[65536];
    weights_path("fortune.bin", model, sizeof model);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,337,278,272,269 --positions 0,1,2,2,3 --mask isolated --out /tmp/tempo-inputs.st", model);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    static const char *const inputs[] = {"tokens", "positions", "allowed", NULL};
    write_trace_with("/tmp/tempo-inputs.st", "/tmp/tempo-inputs-only.st", inputs);
    snprintf(args, sizeof args, "verify -m %s /tmp/tempo-inputs-only.st", model);
    expect_error(args, 2, "nothing to compare", NULL);
    run_out(args, out, sizeof out);
    cr_assert(!strstr(out, "PASS"), "verify passed a trace it compared nothing of:\n%s", out);
}

Test(diff, exit_codes_and_metrics) {
    char model[4096], args[9000], out[65536], err[TEMPO_ERR_SIZE];
    weights_path("fortune.bin", model, sizeof model);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,337,278,272,269 --positions 0,1,2,2,3 --mask isolated --out /tmp/tempo-a.st", model);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    cr_assert_eq(run_out("diff /tmp/tempo-a.st /tmp/tempo-a.st", out, sizeof out), 0, "a trace equals itself:\n%s", out);
    cr_assert(strstr(out, "top-1 agreement 5/5"), "%s", out);
    Trace t;
    cr_assert(tempo_trace_read(&t, "/tmp/tempo-a.st", err) == 0, "%s", err);
    ((float *)((Tensor *)tempo_trace_get(&t, "logits"))->data)[3 * 512 + 7] += 0.5f;
    cr_assert(tempo_trace_write(&t, "/tmp/tempo-b.st", err) == 0, "%s", err);
    tempo_trace_free(&t);
    cr_assert_eq(run_out("diff /tmp/tempo-a.st /tmp/tempo-b.st", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "max abs 5.000e-01 at [3,7]"), "the worst element is named:\n%s", out);
    cr_assert_eq(run_out("diff /tmp/tempo-a.st /tmp/tempo-b.st --atol 0.6", out, sizeof out), 0, "%s", out);
    FILE *f = fopen("/tmp/tempo-junk.st", "w");
    fputs("not a trace", f);
    fclose(f);
    cr_assert_eq(run_out("diff /tmp/tempo-a.st /tmp/tempo-junk.st", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "not a safetensors file"), "%s", out);
    cr_assert_eq(run_out("diff /tmp/tempo-a.st /tmp/does-not-exist.st", out, sizeof out), 2, "%s", out);
}

/* The README's numpy example writes a trace that tempo verify accepts. */
Test(verify, readme_numpy_example) {
    char model[4096], cmd[9000], out[65536];
    weights_path("fortune.bin", model, sizeof model);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/readme_example.py README.md %s /tmp/tempo-readme.st", GOLDEN_DIR "/fortune-isolated.safetensors");
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "the README example failed:\n%s", out);
    char args[9000];
    snprintf(args, sizeof args, "verify -m %s /tmp/tempo-readme.st", model);
    cr_assert_eq(run_out(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "logits     ok"), "%s", out);
}
