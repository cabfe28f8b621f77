/* Values that are not finite. A forward pass whose logits or final hidden
 * state are not finite is an error naming the row (tempo_forward's
 * check_finite), in the library and in every command that runs one; the
 * audit finds a NaN or an infinity in a trace's logits or attention
 * (audit.c value_gap); diff calls a tensor held by one trace only, or a NaN
 * or an infinity against another value, a difference (trace_diff.c). */
#include "helpers.h"

#include <float.h>

/* ---- checkpoints with one tensor altered ---- */

/* Where a llama2.c checkpoint's tensors start, in floats after its 7-int
 * header (formats/llama2c.c; the token embedding at 0): layer 0's rms_att,
 * rms_final and, untied, the classifier. */
typedef struct {
    Config c;
    size_t rms_att, rms_final, wcls;
} Places;

/* The floats of a llama2.c file after its header; the caller frees the file's bytes (*bytes). */
static float *checkpoint_floats(const char *path, char **bytes, size_t *len) {
    *bytes = read_text_file(path, len);
    cr_assert(*len > 28, "%s is too short for a llama2.c header", path);
    return (float *)(*bytes + 28);
}

/* The places, each checked against what tempo's loader reads there (a
 * wrong offset would make every test below alter the wrong tensor). */
static Places llama2c_places(const char *path) {
    Model m;
    load_model(&m, path);
    const Config *c = &m.config;
    Places p = {.c = *c};
    size_t L = c->n_layers, d = c->dim, h = c->hidden_dim;
    size_t q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    p.rms_att = (size_t)c->vocab_size * d;
    p.rms_final = p.rms_att + L * (d + q * d + 2 * kv * d + d * q + d + 3 * h * d); /* rms_att, wq..wo, rms_ffn, w1..w3 */
    p.wcls = p.rms_final + d + (size_t)c->seq_len * c->head_dim;                    /* after freq_cis_real and _imag */
    char *bytes;
    size_t len;
    const float *f = checkpoint_floats(path, &bytes, &len);
    cr_assert(memcmp(f, m.weights.token_embedding.data, d * sizeof(float)) == 0, "token embedding of %s not at 0", path);
    cr_assert(memcmp(f + p.rms_att, m.weights.layers[0].rms_att, d * sizeof(float)) == 0, "rms_att of %s misplaced", path);
    cr_assert(memcmp(f + p.rms_final, m.weights.rms_final, d * sizeof(float)) == 0, "rms_final of %s misplaced", path);
    if (!c->shared_classifier)
        cr_assert(memcmp(f + p.wcls, m.weights.wcls.data, d * sizeof(float)) == 0, "wcls of %s misplaced", path);
    free(bytes);
    tempo_model_free(&m);
    return p;
}

/* A copy of checkpoint src in the scratch directory as `name`, with the
 * count floats from float `at` (after the header) set to values. */
static const char *altered_copy(const char *src, const char *name, size_t at, size_t count, const float *values,
                                char *path, size_t len) {
    char *bytes;
    size_t size;
    float *f = checkpoint_floats(src, &bytes, &size);
    cr_assert(28 + (at + count) * sizeof(float) <= size, "floats %zu-%zu lie past the end of %s", at, at + count, src);
    memcpy(f + at, values, count * sizeof(float));
    scratch_path(name, path, len);
    FILE *out = fopen(path, "wb");
    cr_assert(out && fwrite(bytes, 1, size, out) == size && fclose(out) == 0, "cannot write %s", path);
    free(bytes);
    return path;
}

/* The copy of src whose layer 0 attention norm weights are all 3e38: finite
 * weights whose forward pass overflows f32 in its first layer. */
static const char *overflowing_copy(const char *src, const char *name, char *path, size_t len) {
    Places p = llama2c_places(src);
    float big[1024];
    cr_assert((size_t)p.c.dim <= sizeof big / sizeof big[0], "dim %d", p.c.dim);
    for (int i = 0; i < p.c.dim; i++) big[i] = 3e38f;
    return altered_copy(src, name, p.rms_att, (size_t)p.c.dim, big, path, len);
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* tempo_forward of k rows on s (tokens at positions first..), causal; its return code. */
static int forward_rows(const Model *m, State *s, int k, const int *tokens, Outputs out, char *err) {
    int pos[16], sets[16];
    cr_assert(s->n_rows + k <= 16, "at most 16 rows");
    for (int i = 0; i < s->n_rows + k; i++) sets[i] = i;
    for (int i = 0; i < k; i++) pos[i] = s->n_rows + i;
    Mask mask = tempo_mask_rule(MASK_CAUSAL, sets);
    return tempo_forward(m, s, k, tokens, pos, &mask, out, err);
}

/* ---- the forward pass ---- */

/* The synthetic model with layer 0's norm weights at 3e38: every weight is
 * finite (tempo check says so), the pass is not. The error names row 0 and
 * the overflow, and the rows are not counted into the cache; the original
 * file passes the same call with every logit finite. */
Test(non_finite, forward_refuses_a_pass_that_overflows_f32) {
    char src[4096], path[4096], cmd[9000], out[8192], err[TEMPO_ERR_SIZE];
    synth_path("synth-tied.bin", src, sizeof src);
    overflowing_copy(src, "overflow.bin", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s check %s", TEMPO_BIN, path);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "every weight is finite"), "the weights of the copy are finite:\n%s", out);
    int tokens[] = {1, 17, 42};
    for (int overflow = 0; overflow < 2; overflow++) {
        Model m;
        State s;
        load_model(&m, overflow ? path : src);
        cr_assert(tempo_state_init(&s, &m.config, 16, err) == 0, "%s", err);
        float *logits = malloc(3 * (size_t)m.config.vocab_size * sizeof(float));
        int rc = forward_rows(&m, &s, 3, tokens, (Outputs){.logits = logits}, err);
        if (!overflow) {
            cr_assert_eq(rc, 0, "the original model: %s", err);
            cr_assert(all_finite(logits, 3 * (size_t)m.config.vocab_size), "the original model's logits are finite");
        } else {
            cr_assert_eq(rc, -1, "a pass that overflowed must fail");
            cr_assert(strncmp(err, "logit ", 6) == 0 && strstr(err, " of row 0 is ") &&
                      strstr(err, "the forward pass overflowed f32"), "%s", err);
            cr_assert_eq(s.n_rows, 0, "a refused pass leaves the cache as it was");
        }
        free(logits);
        tempo_state_free(&s);
        tempo_model_free(&m);
    }
}

/* The untied synthetic model with token 9's embedding row NaN: rows before
 * a 9 are finite, the row fed 9 is not (a stand-in for one row that
 * overflows). The error names that row as a row of the whole sequence
 * (the rows cached before it plus its index in the call, the rows
 * last_logits leaves out counted), with logits asked for or not (then the
 * final hidden state is what is checked); a refused row leaves the
 * cache as it was: the next call gives the logits a run without the
 * refused call gives, bit for bit. */
Test(non_finite, the_row_named_is_the_row_that_is_not_finite) {
    char src[4096], path[4096], err[TEMPO_ERR_SIZE];
    synth_path("synth-untied.bin", src, sizeof src);
    Places p = llama2c_places(src);
    float nan_row[1024];
    for (int i = 0; i < p.c.dim; i++) nan_row[i] = NAN;
    altered_copy(src, "nan-token.bin", 9 * (size_t)p.c.dim, (size_t)p.c.dim, nan_row, path, sizeof path);
    Model m;
    load_model(&m, path);
    size_t V = m.config.vocab_size;
    float *logits = malloc(3 * V * sizeof(float)), *again = malloc(V * sizeof(float));
    State s, ref;
    cr_assert(tempo_state_init(&s, &m.config, 16, err) == 0 && tempo_state_init(&ref, &m.config, 16, err) == 0, "%s", err);
    int prefix[] = {1, 17}, bad = 9, good = 42;
    cr_assert(forward_rows(&m, &s, 2, prefix, (Outputs){.logits = logits}, err) == 0, "rows 0-1 are finite: %s", err);
    cr_assert_eq(forward_rows(&m, &s, 1, &bad, (Outputs){.logits = logits}, err), -1, "token 9's row");
    cr_assert(strstr(err, " of row 2 is ") && strstr(err, "overflowed f32"), "the row of the sequence: %s", err);
    cr_assert_eq(s.n_rows, 2, "the refused row is not counted in");
    cr_assert(forward_rows(&m, &s, 1, &good, (Outputs){.logits = again}, err) == 0, "%s", err);
    cr_assert(forward_rows(&m, &ref, 2, prefix, (Outputs){.logits = logits}, err) == 0 &&
              forward_rows(&m, &ref, 1, &good, (Outputs){.logits = logits}, err) == 0, "%s", err);
    cr_assert(memcmp(again, logits, V * sizeof(float)) == 0, "after a refused row the cache computes as before");
    tempo_state_free(&s);
    tempo_state_free(&ref);

    /* the last row's logits only, in one call of three rows; no logits at all, row 2 after rows 0-1. (Not
     * three rows in one call without last_logits: a masked key's NaN value spoils the earlier rows of its
     * call, 0 x NaN in their attention, so row 0 is named; NOTES 3.) */
    int three[] = {1, 17, 9};
    cr_assert(tempo_state_init(&s, &m.config, 16, err) == 0, "%s", err);
    cr_assert_eq(forward_rows(&m, &s, 3, three, (Outputs){.logits = logits, .last_logits = 1}, err), -1, "last_logits");
    cr_assert(strncmp(err, "logit ", 6) == 0 && strstr(err, " of row 2 is "), "%s", err);
    tempo_state_free(&s);
    cr_assert(tempo_state_init(&s, &m.config, 16, err) == 0, "%s", err);
    cr_assert(forward_rows(&m, &s, 2, prefix, (Outputs){0}, err) == 0, "%s", err);
    cr_assert_eq(forward_rows(&m, &s, 1, &bad, (Outputs){0}, err), -1, "no logits asked for");
    cr_assert(strncmp(err, "final hidden-state value ", 25) == 0 && strstr(err, " of row 2 is "), "%s", err);
    tempo_state_free(&s);
    free(logits);
    free(again);
    tempo_model_free(&m);
}

/* A classifier row that overflows on a finite hidden state, in the second
 * row of a call only: the untied model's wcls row 5 set to s sign(h1_i) on
 * the dimensions where row 1's final hidden state h1 is over 4 times row
 * 0's (0 elsewhere), s chosen for a row-1 logit of 3 FLT_MAX; row 0's
 * terms then add up to under FLT_MAX in any order. The hidden states are
 * finite; the logit check alone names logit 5 of row 1 (a check of the
 * first row, or of one row's worth of values, passes it). */
Test(non_finite, a_logit_that_overflows_on_a_finite_hidden_state_is_named) {
    char src[4096], path[4096], err[TEMPO_ERR_SIZE];
    synth_path("synth-untied.bin", src, sizeof src);
    Places p = llama2c_places(src);
    size_t d = p.c.dim;
    cr_assert(d <= 1024, "dim %zu", d);
    Model m;
    load_model(&m, src);
    float hidden[2048], row5[1024], *logits = malloc(2 * (size_t)p.c.vocab_size * sizeof(float));
    State s;
    int tokens[] = {1, 17};
    cr_assert(tempo_state_init(&s, &m.config, 4, err) == 0, "%s", err);
    cr_assert(forward_rows(&m, &s, 2, tokens, (Outputs){.hidden = hidden}, err) == 0, "%s", err);
    tempo_state_free(&s);
    tempo_model_free(&m);
    const float *h0 = hidden, *h1 = hidden + d;
    double mass0 = 0.0, mass1 = 0.0; /* sum |h| over the dimensions row 1 dominates */
    for (size_t i = 0; i < d; i++)
        if (fabs(h1[i]) > 4.0 * fabs(h0[i])) mass0 += fabs(h0[i]), mass1 += fabs(h1[i]);
    double scale = 3.0 * FLT_MAX / mass1;
    cr_assert(mass1 > 0.0 && scale <= FLT_MAX && mass0 * scale < FLT_MAX,
              "rows 0 and 1 of tokens 1,17 do not separate (sums %g, %g): choose other tokens", mass0, mass1);
    for (size_t i = 0; i < d; i++)
        row5[i] = fabs(h1[i]) > 4.0 * fabs(h0[i]) ? (float)(h1[i] < 0 ? -scale : scale) : 0.0f;
    altered_copy(src, "wcls-overflow.bin", p.wcls + 5 * d, d, row5, path, sizeof path);
    load_model(&m, path);
    cr_assert(tempo_state_init(&s, &m.config, 4, err) == 0, "%s", err);
    cr_assert(forward_rows(&m, &s, 1, tokens, (Outputs){.logits = logits}, err) == 0, "row 0 alone is finite: %s", err);
    tempo_state_free(&s);
    cr_assert(tempo_state_init(&s, &m.config, 4, err) == 0, "%s", err);
    cr_assert_eq(forward_rows(&m, &s, 2, tokens, (Outputs){.logits = logits}, err), -1, "row 1's logit overflowed");
    cr_assert(strncmp(err, "logit 5 of row 1 is inf", 23) == 0, "%s", err);
    tempo_state_free(&s);
    tempo_model_free(&m);
    free(logits);
}

/* ---- every command that runs the forward pass ---- */

/* stories260K with layer 0's norm at 3e38: generate, forward, compare,
 * attention (a fresh run, and the pair of masks recomputed from a trace),
 * verify's recomputation and the audit's each exit non-zero with the one
 * line; the original model runs generate as before. */
Test(non_finite, every_command_that_runs_the_forward_pass_refuses_an_overflow) {
    char model[4096], tok[4096], big[4096], trace[4096], svg[4096], cmd[16384], out[8192];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    overflowing_copy(model, "stories-overflow.bin", big, sizeof big);
    scratch_path("run.st", trace, sizeof trace);
    scratch_path("pair.svg", svg, sizeof svg);
    snprintf(cmd, sizeof cmd, "%s generate -m %s -z %s -p 'Once upon' -n 4 --quiet --trace %s", TEMPO_BIN, model, tok, trace);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "the original model: %s", out);
    struct { const char *args; int status; } runs[] = {
        {"generate -m %s -z %s -p 'Once upon' -n 4", 1},
        {"forward -m %s -z %s -p 'Once upon'", 1},
        {"compare -m %s -z %s -p 'Once upon' -n 4", 1},
        {"attention -m %s -z %s -p 'Once upon' -n 4", 1},
        {"attention -m %s %s --heatmap 0:0 --svg-pair %s", 1},
        {"verify -m %s %s", 2},
        {"audit -m %s %s", 2},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char args[12000];
        int from_trace = strstr(runs[i].args, "-z") == NULL;
        snprintf(args, sizeof args, runs[i].args, big, from_trace ? trace : tok, svg);
        expect_error(args, runs[i].status, "the forward pass overflowed f32", NULL);
    }
}

/* ---- the audit ---- */

/* A generate trace of stories260K in the scratch directory, read back; path receives its file. */
static void stories_trace(Trace *t, char *model, char *path) {
    char tok[4096], cmd[16384], out[8192], err[TEMPO_ERR_SIZE];
    weights_path("stories260K.bin", model, 4096);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("run.st", path, 4096);
    snprintf(cmd, sizeof cmd, "%s generate -m %s -z %s -p 'Once upon a time' -n 6 --quiet --trace %s", TEMPO_BIN, model,
             tok, path);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    cr_assert(tempo_trace_read(t, path, err) == 0, "%s", err);
}

static float *tensor_floats(Trace *t, const char *name) {
    const Tensor *x = tempo_trace_get(t, name);
    cr_assert(x && x->dtype == DT_F32, "the trace holds no F32 %s", name);
    return x->data;
}

/* Audits `trace` with --json; returns the number of findings and, when
 * there is one, its kind, row and key. */
static int audit_findings(const char *model, const char *trace, char kind[64], int *row, int *key) {
    char json[4096], cmd[16384], out[16384];
    scratch_path("audit.json", json, sizeof json);
    snprintf(cmd, sizeof cmd, "%s audit -m %s %s --json %s", TEMPO_BIN, model, trace, json);
    int rc = run_command_capture(cmd, out, sizeof out, 1);
    cJSON *j = read_json_file(json), *findings = cJSON_GetObjectItem(j, "findings");
    int n = cJSON_GetArraySize(findings);
    cr_assert_eq(rc, n ? 1 : 0, "audit exits 1 exactly when it finds something (%d findings):\n%s", n, out);
    if (n == 1) {
        cJSON *f = cJSON_GetArrayItem(findings, 0);
        snprintf(kind, 64, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(f, "kind")));
        cJSON *r = cJSON_GetObjectItem(f, "row"), *k = cJSON_GetObjectItem(f, "key"); /* null when absent: -1 */
        *row = cJSON_IsNumber(r) ? r->valueint : -1;
        *key = cJSON_IsNumber(k) ? k->valueint : -1;
    }
    cJSON_Delete(j);
    return n;
}

/* One NaN or +inf in tempo's own trace, in the logits (row 0's first
 * value, which the next numbers of the row used to overwrite as the
 * largest difference, and a value inside a later row) or in the first
 * kept attention row: exactly one finding, of the right kind, at the
 * right row (and key). The unaltered trace is clean. */
Test(non_finite, audit_finds_a_nan_or_an_infinity_in_logits_and_attention) {
    char model[4096], path[4096], altered[4096], kind[64], err[TEMPO_ERR_SIZE];
    Trace t;
    stories_trace(&t, model, path);
    int row = -1, key = -1;
    cr_assert_eq(audit_findings(model, path, kind, &row, &key), 0, "tempo's own trace is clean");
    size_t V = (size_t)tempo_trace_get(&t, "logits")->shape[1];
    int first_kept = ((const int *)tempo_trace_get(&t, "attention_rows")->data)[0];
    struct { const char *tensor; size_t at; int row, key; const char *kind; } cases[] = {
        {"logits", 0, 0, -1, "logits-differ"},
        {"logits", 2 * V + 7, 2, -1, "logits-differ"},
        {"attention", 0, first_kept, 0, "attention-differs"},
    };
    float values[] = {NAN, INFINITY};
    scratch_path("altered.st", altered, sizeof altered);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int v = 0; v < 2; v++) {
            float *x = tensor_floats(&t, cases[c].tensor), kept = x[cases[c].at];
            x[cases[c].at] = values[v];
            cr_assert(tempo_trace_write(&t, altered, err) == 0, "%s", err);
            x[cases[c].at] = kept;
            cr_assert_eq(audit_findings(model, altered, kind, &row, &key), 1, "%g in %s at %zu: one finding", values[v],
                         cases[c].tensor, cases[c].at);
            cr_assert(strcmp(kind, cases[c].kind) == 0 && row == cases[c].row && key == cases[c].key,
                      "%g in %s at %zu: %s at row %d key %d, expected %s at row %d key %d", values[v], cases[c].tensor,
                      cases[c].at, kind, row, key, cases[c].kind, cases[c].row, cases[c].key);
        }
    tempo_trace_free(&t);
}

/* ---- diff ---- */

/* `tempo diff A B ...`: its exit status, and its output in out. */
static int diff_says(const char *a, const char *b, const char *flags, char *out, size_t len) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s diff %s %s %s", TEMPO_BIN, a, b, flags);
    return run_command_capture(cmd, out, len, 1);
}

/* Writes t to the scratch file `name` with tensor `drop` left out (NULL: all), or renamed to `rename` when given. */
static const char *write_without(Trace *t, const char *name, const char *drop, const char *rename, char *path) {
    char err[TEMPO_ERR_SIZE];
    Trace copy;
    tempo_trace_init(&copy);
    for (int i = 0; i < t->n_tensors; i++) {
        const Tensor *x = &t->tensors[i];
        int dropped = drop && strcmp(x->name, drop) == 0;
        if (dropped && !rename) continue;
        cr_assert(tempo_trace_add(&copy, dropped ? rename : x->name, x->dtype, x->ndim, x->shape, x->data, err) == 0, "%s", err);
    }
    for (int i = 0; i < t->n_meta; i++)
        cr_assert(tempo_trace_meta(&copy, t->meta[i].key, t->meta[i].value, err) == 0, "%s", err);
    scratch_path(name, path, 4096);
    cr_assert(tempo_trace_write(&copy, path, err) == 0, "%s", err);
    tempo_trace_free(&copy);
    return path;
}

/* A tensor held by one trace only makes the verdict DIFFERENT (exit 1) and
 * is named, whichever side holds it: tokens or positions removed, the mask
 * under another name. The trace rewritten whole is SAME: the rewriting
 * alone changes nothing diff sees. */
Test(non_finite, diff_names_a_tensor_in_one_trace_only_as_a_difference) {
    char model[4096], path[4096], whole[4096], other[4096], out[65536];
    Trace t;
    stories_trace(&t, model, path);
    write_without(&t, "whole.st", NULL, NULL, whole);
    cr_assert_eq(diff_says(path, whole, "", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "SAME within tolerance") && !strstr(out, "only in"), "%s", out);
    const char *dropped[] = {"tokens", "positions"};
    for (int i = 0; i < 2; i++) {
        char line[64];
        write_without(&t, "without.st", dropped[i], NULL, other);
        for (int side = 0; side < 2; side++) {
            cr_assert_eq(diff_says(side ? other : whole, side ? whole : other, "", out, sizeof out), 1, "%s", out);
            snprintf(line, sizeof line, "%-10s only in %s", dropped[i], side ? "B" : "A");
            cr_assert(strstr(out, line) && strstr(out, "\nDIFFERENT\n"), "%s missing from one side:\n%s", dropped[i], out);
        }
    }
    write_without(&t, "renamed.st", "allowed", "allowed_copy", other);
    cr_assert_eq(diff_says(whole, other, "", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "allowed    only in A") && strstr(out, "allowed_copy only in B") && strstr(out, "\nDIFFERENT\n"),
              "%s", out);
    tempo_trace_free(&t);
}

/* A NaN or an infinity in B where A has a number is a difference, named as
 * the largest (max abs inf at its index, max KL nan at its row), whatever
 * --rtol (rtol x inf admitted an infinity before); the same NaN or
 * infinity in both is SAME, and the line says how many such places and
 * where the first is; +inf against -inf differs. */
Test(non_finite, diff_calls_nan_against_a_number_a_difference) {
    char model[4096], path[4096], whole[4096], other[4096], out[65536], err[TEMPO_ERR_SIZE];
    Trace t;
    stories_trace(&t, model, path);
    write_without(&t, "whole.st", NULL, NULL, whole);
    size_t V = (size_t)tempo_trace_get(&t, "logits")->shape[1];
    float *logits = tensor_floats(&t, "logits"), kept = logits[2 * V + 7];
    float values[] = {NAN, INFINITY};
    scratch_path("other.st", other, sizeof other);
    for (int v = 0; v < 2; v++) {
        logits[2 * V + 7] = values[v];
        cr_assert(tempo_trace_write(&t, other, err) == 0, "%s", err);
        cr_assert_eq(diff_says(whole, other, "--rtol 0.001", out, sizeof out), 1, "%g in B:\n%s", values[v], out);
        cr_assert(strstr(out, "logits     FAIL max abs inf at [2,7]") && strstr(out, "\nDIFFERENT\n"), "%s", out);
        if (isnan(values[v])) cr_assert(strstr(out, "max KL(A||B) nan at row 2") || strstr(out, "max KL(A||B) -nan at row 2"), "%s", out);
        cr_assert_eq(diff_says(other, other, "", out, sizeof out), 0, "%g in both:\n%s", values[v], out);
        cr_assert(strstr(out, "logits     ok   max abs 0.000e+00") && strstr(out, "(1 not finite in both, equal, first at [2,7])") &&
                  strstr(out, "SAME within tolerance"), "%s", out);
    }
    char minus[4096];
    logits[2 * V + 7] = -INFINITY;
    scratch_path("minus.st", minus, sizeof minus);
    cr_assert(tempo_trace_write(&t, minus, err) == 0, "%s", err);
    cr_assert_eq(diff_says(other, minus, "--rtol 1", out, sizeof out), 1, "+inf against -inf:\n%s", out);
    logits[2 * V + 7] = kept;
    tempo_trace_free(&t);
}
