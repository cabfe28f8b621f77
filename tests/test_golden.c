/* tempo against the golden files written by oracle/reference.py (an
 * independent NumPy implementation): forward passes with repeated
 * positions and isolated/visible masks, greedy decoding, TEMPO runs. */
#include "helpers.h"

#include <sys/stat.h>

static const char *meta(const Trace *t, const char *key) {
    const char *value = tempo_trace_meta_get(t, key);
    if (value) return value;
    cr_assert_fail("golden file lacks metadata %s", key);
    return "";
}

static const Tensor *tensor(const Trace *t, const char *name) {
    const Tensor *x = tempo_trace_get(t, name);
    if (!x) cr_assert_fail("golden file lacks tensor %s", name);
    return x;
}

/* Reads a golden file and loads the model it names, checking its sha256. */
static void open_golden(const char *name, Trace *t, Model *m) {
    char path[4096], model_path[4096], err[TEMPO_ERR_SIZE], hashed[4200], sha[65] = "";
    snprintf(path, sizeof path, "%s/%s.safetensors", GOLDEN_DIR, name);
    if (tempo_trace_read(t, path, err) != 0) cr_assert_fail("cannot read golden %s: %s", path, err);
    const char *file = meta(t, "model");
    if (strcmp(meta(t, "model_dir"), "synth") == 0) synth_path(file, model_path, sizeof model_path);
    else weights_path(file, model_path, sizeof model_path);
    struct stat st; /* a Hugging Face directory is named by its model.safetensors */
    int is_dir = stat(model_path, &st) == 0 && S_ISDIR(st.st_mode);
    snprintf(hashed, sizeof hashed, "%s%s", model_path, is_dir ? "/model.safetensors" : "");
    file_sha256(hashed, sha);
    cr_assert_str_eq(sha, meta(t, "model_sha256"),
                     "model %s has sha256 %s but golden %s was made from %s: the model changed (make golden)",
                     model_path, sha, name, meta(t, "model_sha256"));
    load_model(m, model_path);
}

static void expect_close(const char *golden, const char *what, const float *mine, const Tensor *ref, size_t n,
                         double tol, int row_len) {
    cr_assert_eq(tempo_tensor_count(ref), n, "%s: %s has %zu values, tempo %zu", golden, what,
                 tempo_tensor_count(ref), n);
    size_t at;
    double d = max_abs_diff(mine, ref->data, n, &at);
    cr_expect(d <= tol, "%s: %s max abs diff %.3e > %.0e at flat index %zu (row %zu)", golden, what, d, tol, at,
              at / (size_t)row_len);
}

static void check_forward_golden(const char *name) {
    Trace t;
    Model m;
    open_golden(name, &t, &m);
    const Tensor *tokens = tensor(&t, "tokens"), *allowed = tensor(&t, "allowed");
    int n = (int)tokens->shape[0], V = m.config.vocab_size;
    float *logits, *attention, *hidden;
    full_forward(&m, n, tokens->data, tensor(&t, "positions")->data, allowed->data, allowed->ndim == 3 ? m.config.n_layers : 1,
                 &logits, &attention, &hidden);
    expect_close(name, "logits", logits, tensor(&t, "logits"), (size_t)n * V, 1e-4, V);
    expect_close(name, "hidden", hidden, tensor(&t, "hidden"), (size_t)n * m.config.dim, 1e-4, m.config.dim);
    expect_close(name, "attention", attention, tensor(&t, "attention"),
                 (size_t)m.config.n_layers * m.config.n_heads * n * n, 1e-5, n);
    free(logits);
    free(attention);
    free(hidden);
    tempo_trace_free(&t);
    tempo_model_free(&m);
}

Test(golden_forward, synthetic_tied_isolated) { check_forward_golden("synth-forward"); }
Test(golden_forward, synthetic_untied_visible) { check_forward_golden("synth-untied-forward"); }
Test(golden_forward, fortune_repeated_positions_isolated) { check_forward_golden("fortune-isolated"); }
Test(golden_forward, fortune_repeated_positions_visible) { check_forward_golden("fortune-visible"); }
Test(golden_forward, stories260K_repeated_positions_isolated) { check_forward_golden("stories-isolated"); }
Test(golden_forward, synthetic_hf_f32_llama3_rope_isolated) { check_forward_golden("synth-hf-f32-isolated"); }
Test(golden_forward, synthetic_hf_bf16_visible) { check_forward_golden("synth-hf-bf16-visible"); }
Test(golden_forward, stories260K_hf_layout_isolated) { check_forward_golden("stories-hf-isolated"); }
Test(golden_forward, gguf_f32_spm_isolated) { check_forward_golden("synth-gguf-f32"); }
Test(golden_forward, gguf_f16_gpt2_visible) { check_forward_golden("synth-gguf-f16"); }
Test(golden_forward, gguf_bf16_llama3_isolated) { check_forward_golden("synth-gguf-bf16"); }
Test(golden_forward, gguf_q8_0_visible) { check_forward_golden("synth-gguf-q8_0"); }
Test(golden_forward, gguf_q4_0_isolated) { check_forward_golden("synth-gguf-q4_0"); }
Test(golden_forward, gguf_q4_k_with_q6_k_untied_visible) { check_forward_golden("synth-gguf-q4_k"); }
Test(golden_forward, gguf_q5_k_with_q6_k_isolated) { check_forward_golden("synth-gguf-q5_k"); }
Test(golden_forward, gguf_q6_k_untied_visible) { check_forward_golden("synth-gguf-q6_k"); }

/* GenConfig from the reference's settings JSON. */
static void settings(const char *json, const Config *c, GenConfig *g) {
    cJSON *s = cJSON_Parse(json);
    cr_assert(s, "golden settings are not JSON: %s", json);
    tempo_gen_defaults(g, c);
    g->threshold = (float)cJSON_GetObjectItem(s, "threshold")->valuedouble;
    g->max_width = cJSON_GetObjectItem(s, "max_width")->valueint;
    g->max_steps = cJSON_GetObjectItem(s, "max_steps")->valueint;
    g->mode = strcmp(cJSON_GetObjectItem(s, "mode")->valuestring, "isolated") == 0 ? MASK_ISOLATED : MASK_VISIBLE;
    g->isolate_first = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "isolate"), 0)->valueint;
    g->isolate_last = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "isolate"), 1)->valueint;
    g->next_from = strcmp(cJSON_GetObjectItem(s, "next_from")->valuestring, "mean") == 0 ? NEXT_MEAN : NEXT_LAST_ROW;
    g->stop_on_empty = cJSON_IsTrue(cJSON_GetObjectItem(s, "stop_on_empty"));
    const char *sched = cJSON_GetObjectItem(s, "schedule")->valuestring;
    g->schedule = strcmp(sched, "bezier") == 0 ? SCHEDULE_BEZIER : strcmp(sched, "linear") == 0 ? SCHEDULE_LINEAR : SCHEDULE_CONSTANT;
    g->final_threshold = (float)cJSON_GetObjectItem(s, "final_threshold")->valuedouble;
    g->bezier_p1 = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(s, "bezier"), 0)->valuedouble;
    g->bezier_p2 = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(s, "bezier"), 1)->valuedouble;
    g->prune = cJSON_IsTrue(cJSON_GetObjectItem(s, "prune"));
    g->prune_window = cJSON_GetObjectItem(s, "prune_window")->valueint;
    g->prune_layers = cJSON_GetObjectItem(s, "prune_layers")->valueint;
    g->prune_threshold = (float)cJSON_GetObjectItem(s, "prune_threshold")->valuedouble;
    cJSON_Delete(s);
}

static void expect_ints_equal(const char *golden, const char *what, const int *mine, const Tensor *ref, int n) {
    cr_assert_eq(ref->shape[0], n, "%s: the reference has %lld %s, tempo %d", golden, (long long)ref->shape[0], what, n);
    const int *r = ref->data;
    for (int i = 0; i < n; i++)
        cr_assert_eq(mine[i], r[i], "%s: %s differ first at row %d: tempo %d, reference %d", golden, what, i, mine[i], r[i]);
}

static void check_tempo_golden(const char *name) {
    Trace t;
    Model m;
    open_golden(name, &t, &m);
    Tokenizer tok;
    load_tokenizer(&tok, meta(&t, "tokenizer"), m.config.vocab_size);
    GenConfig g;
    settings(meta(&t, "settings"), &m.config, &g);
    int ids[512], n_ids;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_encode(&tok, meta(&t, "prompt"), ids, 512, &n_ids, err) == 0, "%s", err);
    cr_assert_eq(n_ids, atoi(meta(&t, "n_prompt")), "%s: prompt encodes to %d tokens, reference %s", name, n_ids,
                 meta(&t, "n_prompt"));
    Generation gen;
    cr_assert(tempo_generate(&m, ids, n_ids, &g, &gen, err) == 0, "%s", err);
    int n = gen.n_rows;
    expect_ints_equal(name, "tokens", gen.tokens, tensor(&t, "tokens"), n);
    expect_ints_equal(name, "positions", gen.positions, tensor(&t, "positions"), n);
    expect_ints_equal(name, "sets", gen.sets, tensor(&t, "sets"), n);
    expect_ints_equal(name, "pruned steps", gen.pruned, tensor(&t, "pruned"), n);
    cr_expect_str_eq(gen.stop_reason, meta(&t, "stop"), "%s: stop reason", name);
    const Tensor *thr = tensor(&t, "thresholds");
    cr_assert_eq(thr->shape[0], gen.n_steps, "%s: step count", name);
    for (int s = 0; s < gen.n_steps; s++)
        cr_expect_float_eq(gen.steps[s].threshold, ((const float *)thr->data)[s], 1e-6, "%s: threshold at step %d", name, s);
    /* the final trace logits: each row as computed when it was added vs the reference's full recompute */
    expect_close(name, "logits", gen.logits, tensor(&t, "logits"), (size_t)n * m.config.vocab_size, 1e-4,
                 m.config.vocab_size);
    tempo_generation_free(&gen);
    tempo_tokenizer_free(&tok);
    tempo_trace_free(&t);
    tempo_model_free(&m);
}

/* make run's job: greedy from "The cat sat on the", 32 tokens, token for token. */
Test(golden_tempo, greedy_32_tokens_match_reference) { check_tempo_golden("fortune-greedy"); }
Test(golden_tempo, the_cat_isolated) { check_tempo_golden("fortune-tempo-the-isolated"); }
Test(golden_tempo, the_cat_visible) { check_tempo_golden("fortune-tempo-the-visible"); }
Test(golden_tempo, once_upon_isolated) { check_tempo_golden("fortune-tempo-once-isolated"); }
Test(golden_tempo, once_upon_visible) { check_tempo_golden("fortune-tempo-once-visible"); }
Test(golden_tempo, attention_pruning) { check_tempo_golden("fortune-tempo-pruned"); }
Test(golden_tempo, dynamic_threshold) { check_tempo_golden("fortune-tempo-dynamic"); }
Test(golden_tempo, dynamic_threshold_to_its_final_value) { check_tempo_golden("fortune-tempo-dynamic-end"); }
Test(golden_tempo, stories_isolate_layers_1_to_3) { check_tempo_golden("stories-tempo-layers"); }
