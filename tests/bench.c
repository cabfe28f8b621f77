/* bench.c - `make bench`: how fast tempo is, each figure next to the limit
 * the machine reaches in the same run.
 *
 *   build/bench [--weights DIR] [--large FILE] [--large-bf16 DIR] [--large-q4k FILE] [--threads N] [--json FILE]
 *
 * Each model is measured in a child process (so its peak RSS is its own).
 * Every figure is repeated REPS times, alternating with the measurement of
 * its limit (or of what it is compared with), so that drift of this shared
 * machine hits both alike; each is reported as min/median/max, and each
 * ratio is taken within one repetition:
 *   decode tokens/s   vs a plain parallel read of as many bytes as a token reads
 *   prefill tokens/s  vs OpenBLAS sgemm on 2048 x 2048 (FLOPs = 2 x parameters)
 *   a k-row step      vs a 1-row step (k = 2, 3, 4; the last row's logits, as
 *                     tempo generate asks, and all k rows')
 *   isolated mask     vs visible mask on the same rows; attention capture vs none
 *   bf16, q4_k decode vs the model's f32 copy (converted up front)
 *   `tempo check`     peak RSS vs the checkpoint's size
 *   --long ROWS: issue 21's targets instead (make bench: 65,536): forwards
 *                of ROWS and 2 ROWS rows without attention and of ROWS/4
 *                keeping one layer's and head's attention (peak RSS), the
 *                attention kernel's FLOPs over sgemm's, a 256-row verify of a
 *                Llama-3-8B-shaped sparse bf16 checkpoint (--8b no: skipped)
 * Prints a table and writes JSON. */
#define _GNU_SOURCE
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../formats/formats.h"
#include "../formats/quant.h"
#include "../tools/synth.h"

enum { REPS = 5 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void check(int rc, const char *what, const char *err) {
    if (rc != 0) {
        fprintf(stderr, "bench: %s: %s\n", what, err);
        exit(1);
    }
}

static void *alloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "bench: out of memory for %zu bytes\n", bytes); exit(1); }
    return p;
}

/* ---- repeated figures ---- */

typedef struct {
    double v[REPS];
    int n;
} Series;

static void add(Series *s, double v) { if (s->n < REPS) s->v[s->n++] = v; }

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* {"min", "median", "max"} of a series. */
static cJSON *stats(const Series *s) {
    double v[REPS];
    memcpy(v, s->v, sizeof v);
    qsort(v, (size_t)s->n, sizeof(double), by_value);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "min", s->n ? v[0] : NAN);
    cJSON_AddNumberToObject(o, "median", s->n ? (v[(s->n - 1) / 2] + v[s->n / 2]) / 2 : NAN);
    cJSON_AddNumberToObject(o, "max", s->n ? v[s->n - 1] : NAN);
    return o;
}

static void put(cJSON *o, const char *key, const Series *s) { cJSON_AddItemToObject(o, key, stats(s)); }

/* ---- the machine's limits ---- */

/* A plain streaming read: every thread sums its share of buf with 4
 * independent vector sums. Returns GB/s. */
static double stream_read_gbs(const float *buf, size_t n) {
    typedef float Vec __attribute__((vector_size(64)));
    double t = now(), total = 0;
#pragma omp parallel reduction(+ : total)
    {
        Vec acc[4] = {{0}};
        size_t chunks = n / 64, per = (chunks + omp_get_num_threads() - 1) / omp_get_num_threads();
        size_t from = per * omp_get_thread_num(), to = from + per < chunks ? from + per : chunks;
        for (size_t c = from; c < to; c++)
            for (int v = 0; v < 4; v++) acc[v] += *(const Vec *)(buf + 64 * c + 16 * v);
        for (int v = 0; v < 4; v++)
            for (int j = 0; j < 16; j++) total += acc[v][j];
    }
    t = now() - t;
    if (total == 1234.5) printf(" "); /* keeps the sum alive */
    return (double)(n / 64 * 64) * sizeof(float) / t / 1e9;
}

/* One sgemm of 2048 x 2048 x 2048 on OpenBLAS's threads (as many as
 * OpenMP's), then one again (tempo_set_threads); GFLOP/s. */
static double sgemm_gflops(const float *a, const float *b, float *c) {
    int n = 2048;
    openblas_set_num_threads(omp_get_max_threads());
    double t = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    t = now() - t;
    tempo_set_threads(0);
    return 2.0 * n * n * n / t / 1e9;
}

/* ---- what a model reads and computes ---- */

/* Bytes of weights a decoded token reads (every matrix once in its stored
 * type, the norm vectors, one embedding row), and matrix parameters. */
static void model_costs(const Model *m, double *bytes, double *params) {
    const Config *c = &m->config;
    const Weights *w = &m->weights;
    *bytes = (2.0 * c->n_layers + 1) * c->dim * 4 + tempo_row_bytes(w->token_embedding.type, c->dim);
    *params = 0;
    for (int i = 0; i < N_LAYER_TENSORS; i++) {
        const LayerTensor *lt = &tempo_layer_tensors[i];
        if (lt->cols == UNIT_NONE) continue;
        size_t rows = tempo_unit(c, lt->rows), cols = tempo_unit(c, lt->cols);
        *bytes += (double)c->n_layers * rows * tempo_row_bytes(tempo_layer_matrix((Weights *)w, 0, i)->type, cols);
        *params += (double)c->n_layers * rows * cols;
    }
    *bytes += (double)c->vocab_size * tempo_row_bytes(w->wcls.type, c->dim);
    *params += (double)c->vocab_size * c->dim;
}

static int argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (p[i] > p[best]) best = i;
    return best;
}

/* Greedy decode of `steps` tokens after a 4-token prompt; tokens/s. */
static double decode_tok_s(const Model *m, int steps) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int prompt[4] = {1, 5 % c->vocab_size, 17 % c->vocab_size, 42 % c->vocab_size};
    if (steps > c->seq_len - 4) steps = c->seq_len - 4;
    State s;
    check(tempo_state_init(&s, c, 4 + steps, err), "state", err);
    float *logits = alloc((size_t)c->vocab_size * sizeof(float));
    int *pos = alloc((size_t)(4 + steps) * sizeof(int));
    for (int i = 0; i < 4 + steps; i++) pos[i] = i;
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    Outputs out = {.logits = logits, .last_logits = 1};
    check(tempo_forward(m, &s, 4, prompt, pos, &causal, out, err), "prefill", err);
    int token = argmax(logits, c->vocab_size);
    double t = now();
    for (int i = 0; i < steps; i++) {
        check(tempo_forward(m, &s, 1, &token, pos + 4 + i, &causal, out, err), "decode", err);
        token = argmax(logits, c->vocab_size);
    }
    t = now() - t;
    free(logits); free(pos);
    tempo_state_free(&s);
    return steps / t;
}

/* One full forward over n rows (logits of the last row only, as a prompt
 * needs; all rows' with `capture`, plus attention); seconds, best of 2. */
static double prefill_seconds(const Model *m, int n, int capture) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int *tokens = alloc(n * sizeof(int)), *pos = alloc(n * sizeof(int));
    for (int i = 0; i < n; i++) tokens[i] = (i * 7919 + 1) % c->vocab_size, pos[i] = i;
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    float *logits = alloc((size_t)(capture ? n : 1) * c->vocab_size * sizeof(float));
    float *att = capture ? alloc((size_t)c->n_layers * c->n_heads * n * n * sizeof(float)) : NULL;
    Outputs out = {.logits = logits, .attention = att, .last_logits = capture ? 0 : 1};
    double best = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        double t = now();
        check(tempo_forward_full(m, n, tokens, pos, &causal, out, err), "prefill", err);
        t = now() - t;
        if (t < best) best = t;
    }
    free(tokens); free(pos); free(logits); free(att);
    return best;
}

/* Seconds of appending k rows (one parallel set) after 64 cached rows with
 * the logits of the last logit_rows of them, best of 10. */
static double step_seconds(const Model *m, int k, int logit_rows) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int base = 64, n = base + k, tokens[72], pos[72];
    for (int i = 0; i < n; i++) tokens[i] = (i * 131 + 3) % c->vocab_size, pos[i] = i < base ? i : base;
    float *logits = alloc((size_t)base * c->vocab_size * sizeof(float));
    State s;
    check(tempo_state_init(&s, c, n, err), "state", err);
    Mask isolated = tempo_mask_rule(MASK_ISOLATED, pos); /* the prefix: one row per set, so causal */
    Outputs out = {.logits = logits, .last_logits = 1};
    check(tempo_forward(m, &s, base, tokens, pos, &isolated, out, err), "prefix", err);
    out.last_logits = logit_rows;
    double best = 1e30;
    for (int rep = 0; rep < 10; rep++) {
        s.n_rows = base; /* drop the set again: its cache rows are rewritten */
        double t = now();
        check(tempo_forward(m, &s, k, tokens + base, pos + base, &isolated, out, err), "step", err);
        t = now() - t;
        if (t < best) best = t;
    }
    tempo_state_free(&s);
    free(logits);
    return best;
}

/* Seconds per row of a TEMPO run after its prompt (threshold 0.05). */
static double tempo_row_seconds(const Model *m, const int *prompt, int n_prompt, int capture, int steps, Generation *keep) {
    char err[TEMPO_ERR_SIZE];
    GenConfig g;
    tempo_gen_defaults(&g, &m->config);
    g.threshold = 0.05f;
    g.max_steps = steps;
    g.capture_attention = capture;
    g.keep_logits = capture;
    Generation gen;
    check(tempo_generate(m, prompt, n_prompt, &g, &gen, err), "tempo", err);
    double t = (gen.total_seconds - gen.prefill_seconds) / (gen.n_rows - gen.n_prompt);
    if (keep) *keep = gen;
    else tempo_generation_free(&gen);
    return t;
}

/* Replays a run's steps (same rows, same set sizes) under the mask of
 * `kind`, so that two modes differ only in the mask; seconds. */
static double replay_seconds(const Model *m, const Generation *run, MaskKind kind) {
    char err[TEMPO_ERR_SIZE];
    int n = run->n_rows;
    float *logits = alloc((size_t)n * m->config.vocab_size * sizeof(float));
    State s;
    check(tempo_state_init(&s, &m->config, n, err), "state", err);
    Mask mask = tempo_mask_rule(kind, run->sets); /* the prompt: one row per set, so causal */
    Outputs out = {.logits = logits, .last_logits = 1};
    check(tempo_forward(m, &s, run->n_prompt, run->tokens, run->positions, &mask, out, err), "replay", err);
    double t = now();
    for (int first = run->n_prompt; first < n;) {
        int k = 1;
        while (first + k < n && run->sets[first + k] == run->sets[first]) k++;
        out.last_logits = k;
        check(tempo_forward(m, &s, k, run->tokens + first, run->positions + first, &mask, out, err), "replay", err);
        first += k;
    }
    t = now() - t;
    tempo_state_free(&s);
    free(logits);
    return t;
}

/* ---- one model, in a child process ---- */

/* Decode against the plain read of as many bytes; for a model not stored
 * as f32, also against its f32 copy. */
static void bench_decode(const Model *m, cJSON *o) {
    double bytes, params;
    model_costs(m, &bytes, &params);
    size_t n = (size_t)(bytes / sizeof(float));
    float *buf = alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 7);
    Model f32;
    char err[TEMPO_ERR_SIZE];
    int typed = m->weights.layers[0].wq.type != WEIGHT_F32;
    if (typed) check(tempo_model_f32_copy(m, &f32, err), "f32 copy", err);
    Series tok_s = {0}, bound = {0}, fraction = {0}, speedup = {0};
    decode_tok_s(m, 8); /* warm-up: pages in */
    for (int rep = 0; rep < REPS; rep++) {
        double gbs = stream_read_gbs(buf, n), t = decode_tok_s(m, 32);
        add(&bound, gbs);
        add(&tok_s, t);
        if (bytes >= 64e6) add(&fraction, t * bytes / (gbs * 1e9)); /* smaller models stay in the caches */
        if (typed) add(&speedup, t / decode_tok_s(&f32, 32));
    }
    cJSON_AddNumberToObject(o, "bytes_per_token", bytes);
    cJSON_AddNumberToObject(o, "parameters", params);
    put(o, "decode_tok_s", &tok_s);
    put(o, "read_bound_gbs", &bound);
    if (fraction.n) put(o, "decode_fraction_of_read_bound", &fraction);
    if (typed) put(o, "decode_speedup_over_f32_copy", &speedup);
    if (typed) tempo_model_free(&f32);
    free(buf);
}

/* Prefill of up to 512 rows against sgemm; k-row steps against 1-row steps. */
static void bench_prefill_and_steps(const Model *m, cJSON *o) {
    double bytes, params;
    model_costs(m, &bytes, &params);
    int n = m->config.seq_len < 512 ? m->config.seq_len : 512, size = 2048;
    float *a = alloc((size_t)size * size * 4), *b = alloc((size_t)size * size * 4), *c = alloc((size_t)size * size * 4);
    for (size_t i = 0; i < (size_t)size * size; i++) a[i] = b[i] = (float)(i % 13) / 13 - 0.5f;
    /* FLOPs per token actually done: the layers, 1/n of the classifier, attention over (n+1)/2 keys on average */
    const Config *cf = &m->config;
    double classifier = (double)cf->vocab_size * cf->dim, q_dim = (double)cf->n_heads * cf->head_dim;
    double done = 2 * (params - classifier) + 2 * classifier / n + 4 * q_dim * cf->n_layers * (n + 1) / 2.0;
    Series tok_s = {0}, peak = {0}, fraction = {0}, fraction_done = {0}, ratio[5], all_logits[5];
    memset(ratio, 0, sizeof ratio);
    memset(all_logits, 0, sizeof all_logits);
    for (int rep = 0; rep < (REPS + 1) / 2; rep++) {
        double g = sgemm_gflops(a, b, c), t = n / prefill_seconds(m, n, 0);
        add(&peak, g);
        add(&tok_s, t);
        add(&fraction, t * 2 * params / (g * 1e9));
        add(&fraction_done, t * done / (g * 1e9));
    }
    for (int rep = 0; rep < REPS; rep++) { /* a step as tempo generate runs it: the next set drawn from the last row */
        double one = step_seconds(m, 1, 1);
        for (int k = 2; k <= 4; k++) add(&ratio[k], step_seconds(m, k, 1) / one), add(&all_logits[k], step_seconds(m, k, k) / one);
    }
    cJSON_AddNumberToObject(o, "prefill_rows", n);
    put(o, "prefill_tok_s", &tok_s);
    put(o, "sgemm_gflops", &peak);
    put(o, "prefill_fraction_of_sgemm", &fraction);
    put(o, "prefill_flops_done_fraction_of_sgemm", &fraction_done);
    const char *keys[5] = {NULL, NULL, "step2_over_step1", "step3_over_step1", "step4_over_step1"};
    const char *all_keys[5] = {NULL, NULL, "step2_all_logits_over_step1", "step3_all_logits_over_step1",
                               "step4_all_logits_over_step1"};
    for (int k = 2; k <= 4; k++) put(o, keys[k], &ratio[k]), put(o, all_keys[k], &all_logits[k]);
    free(a); free(b); free(c);
}

/* TEMPO: isolated against visible on the same rows, capture against none. */
static void bench_tempo(const Model *m, const int *ids, int n_ids, cJSON *o) {
    int steps = m->config.seq_len - n_ids < 48 ? m->config.seq_len - n_ids : 48;
    Generation run;
    double plain = tempo_row_seconds(m, ids, n_ids, 0, steps, &run);
    Series iso_vis = {0}, capture = {0}, rows_s = {0};
    for (int rep = 0; rep < (REPS + 1) / 2; rep++) {
        add(&iso_vis, replay_seconds(m, &run, MASK_ISOLATED) / replay_seconds(m, &run, MASK_VISIBLE));
        double on = tempo_row_seconds(m, ids, n_ids, 1, steps, NULL), off = tempo_row_seconds(m, ids, n_ids, 0, steps, NULL);
        add(&capture, on / off);
        add(&rows_s, 1.0 / off);
    }
    cJSON_AddNumberToObject(o, "tempo_steps", run.n_steps);
    cJSON_AddNumberToObject(o, "tempo_rows", run.n_rows - run.n_prompt);
    cJSON_AddNumberToObject(o, "tempo_first_run_rows_s", 1.0 / plain);
    put(o, "tempo_rows_s", &rows_s);
    put(o, "isolated_over_visible_same_rows", &iso_vis);
    put(o, "capture_over_none", &capture);
    tempo_generation_free(&run);
}

/* The child: measures one model and prints one JSON object on stdout. */
static int bench_model(const char *path, const char *tokenizer, const char *prompt_text, int threads) {
    char err[TEMPO_ERR_SIZE];
    tempo_set_threads(threads);
    Model m;
    check(tempo_model_load(&m, path, err), path, err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", path);
    cJSON_AddStringToObject(o, "weights", tempo_weight_type_name(m.weights.layers[0].wq.type));
    bench_decode(&m, o);
    bench_prefill_and_steps(&m, o);
    int ids[512], n_ids = 4; /* a prompt that runs long on the real models, ids for synthetic ones */
    Tokenizer tok;
    if (tokenizer && tempo_tokenizer_load(&tok, tokenizer, m.config.vocab_size, err) == 0) {
        check(tempo_encode(&tok, prompt_text, ids, 512, &n_ids, err), "encode", err);
        tempo_tokenizer_free(&tok);
    } else {
        int synthetic[4] = {1, 5, 17, 42};
        for (int i = 0; i < 4; i++) ids[i] = synthetic[i] % m.config.vocab_size;
    }
    bench_tempo(&m, ids, n_ids, o);
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
    tempo_model_free(&m);
    return 0;
}

/* The memory children: `tempo check` (load, read every weight once), or a
 * greedy decode and a TEMPO run as `tempo generate` does them. */
static int rss_model(const char *path, const char *what, int threads) {
    char err[TEMPO_ERR_SIZE];
    tempo_set_threads(threads);
    Model m;
    check(tempo_model_load(&m, path, err), path, err);
    if (strcmp(what, "check") == 0) {
        size_t bad = tempo_model_check(&m, NULL);
        printf("{\"bad_weights\": %zu}\n", bad);
        tempo_model_free(&m);
        return 0;
    }
    int ids[4] = {1, 5 % m.config.vocab_size, 17 % m.config.vocab_size, 42 % m.config.vocab_size};
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.keep_logits = 0;
    g.max_steps = m.config.seq_len - 4 < 256 ? m.config.seq_len - 4 : 256;
    g.threshold = 0.05f;
    Generation gen;
    check(tempo_generate(&m, ids, 4, &g, &gen, err), "tempo", err);
    size_t kv = (size_t)(4 + g.max_steps * g.max_width) * m.config.n_layers * m.config.n_kv_heads * m.config.head_dim * 2 * sizeof(float);
    printf("{\"kv_cache_bytes\": %zu}\n", kv);
    tempo_generation_free(&gen);
    tempo_model_free(&m);
    return 0;
}

/* ---- long contexts and large models (issue 21), one child each ---- */

/* The synthetic model of the long-context targets: dim 256, 2 layers, 4 heads. */
static void long_model_config(SynthConfig *sc, int seq_len) {
    tempo_synth_defaults(sc);
    sc->dim = 256, sc->hidden_dim = 688, sc->n_layers = 2, sc->n_heads = 4, sc->n_kv_heads = 4;
    sc->vocab_size = 512, sc->seq_len = seq_len;
}

/* The 8B shape of Llama 3 (a sparse bf16 file: nothing on disk). */
static void llama3_8b_config(SynthConfig *sc) {
    *sc = (SynthConfig){.dim = 4096, .hidden_dim = 14336, .n_layers = 32, .n_heads = 32, .n_kv_heads = 8,
                        .vocab_size = 128256, .seq_len = 8192};
}

/* One forward over `rows` causal rows, the last row's logits; keep_one:
 * layer 0's head 0 attention of every row is kept. Seconds. */
static double long_forward(const Model *m, int rows, int keep_one) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int *tokens = alloc((size_t)rows * sizeof(int)), *pos = alloc((size_t)rows * sizeof(int)), zero = 0;
    for (int i = 0; i < rows; i++) tokens[i] = (i * 7919 + 1) % c->vocab_size, pos[i] = i;
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    AttentionKeep keep = {.layers = &zero, .n_layers = 1, .heads = &zero, .n_heads = 1};
    float *logits = alloc((size_t)c->vocab_size * sizeof(float));
    float *att = keep_one ? alloc((size_t)rows * rows * sizeof(float)) : NULL;
    Outputs out = {.logits = logits, .attention = att, .keep = keep_one ? &keep : NULL, .last_logits = 1};
    double t = now();
    check(tempo_forward_full(m, rows, tokens, pos, &causal, out, err), "long forward", err);
    t = now() - t;
    free(tokens); free(pos); free(logits); free(att);
    return t;
}

/* The tiled attention kernel alone on `rows` causal rows of the long model's
 * shape: its FLOPs (QK^T and PV, causal, each cell counted once: 4 hd per
 * cell and head) per second, over sgemm 2048^3 measured just before. */
static void long_attention(int rows, cJSON *o) {
    SynthConfig sc;
    long_model_config(&sc, rows);
    Config c = {.n_heads = sc.n_heads, .n_kv_heads = sc.n_kv_heads, .head_dim = sc.dim / sc.n_heads};
    size_t q_values = (size_t)rows * sc.dim, big = (size_t)2048 * 2048;
    float *q = alloc(q_values * sizeof(float)), *keys = alloc(q_values * sizeof(float)), *values = alloc(q_values * sizeof(float));
    float *out = alloc(q_values * sizeof(float)), *scratch = alloc(tempo_fast_kernels.attention_scratch(&c, rows, rows) * sizeof(float));
    float *a = alloc(big * sizeof(float)), *b = alloc(big * sizeof(float)), *cm = alloc(big * sizeof(float));
    uint64_t seed = 3;
    for (size_t i = 0; i < q_values; i++) q[i] = (float)tempo_normal(&seed), keys[i] = (float)tempo_normal(&seed), values[i] = (float)tempo_normal(&seed);
    for (size_t i = 0; i < big; i++) a[i] = b[i] = 0.001f * (float)(i % 1000);
    int *pos = alloc((size_t)rows * sizeof(int));
    for (int i = 0; i < rows; i++) pos[i] = i;
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    AttentionInputs in = {.q = q, .keys = keys, .values = values, .mask = &causal, .k = rows, .n_keys = rows};
    double peak = sgemm_gflops(a, b, cm), t = now();
    tempo_fast_kernels.attention(&c, &in, out, scratch, NULL);
    t = now() - t;
    double flops = 4.0 * c.head_dim * c.n_heads * ((double)rows * (rows + 1) / 2);
    cJSON_AddNumberToObject(o, "attention_rows", rows);
    cJSON_AddNumberToObject(o, "attention_gflops", flops / t / 1e9);
    cJSON_AddNumberToObject(o, "sgemm_gflops", peak);
    cJSON_AddNumberToObject(o, "attention_fraction_of_sgemm", flops / t / 1e9 / peak);
    free(q); free(keys); free(values); free(out); free(scratch); free(a); free(b); free(cm); free(pos);
}

/* A long-context child: `what` is forward, keep-one or attention. */
static int long_child(const char *what, const char *path, int rows, int threads) {
    char err[TEMPO_ERR_SIZE];
    tempo_set_threads(threads);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rows", rows);
    if (strcmp(what, "attention") == 0) {
        long_attention(rows, o);
    } else {
        Model m;
        check(tempo_model_load(&m, path, err), path, err);
        cJSON_AddNumberToObject(o, "seconds", long_forward(&m, rows, strcmp(what, "keep-one") == 0));
        tempo_model_free(&m);
    }
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
    return 0;
}

static double num(const cJSON *o, const char *k);

/* ---- tempo against llama.cpp on the same GGUF ---- */

enum { TG_TOKENS = 128, PP_ROWS = 512 }; /* llama-bench's tg128 and pp512 */
enum { TG_ONLY_PAIRS = 3 }; /* alternating pairs of the tg128-only rows (the other llama-quantize types) */

/* The child: tempo's tg128 and pp512 on one GGUF (under --numerics ggml
 * when `ggml`), and the read bound of a decoded token's bytes (tokens/s if
 * they were read as fast as a plain parallel read), best and median of REPS
 * passes. One JSON line. */
static int tg_pp_model(const char *path, int threads, int ggml, int with_pp) {
    char err[TEMPO_ERR_SIZE];
    tempo_set_threads(threads);
    Model m;
    check(tempo_model_load(&m, path, err), path, err);
    Numerics numerics = {.profile = ggml ? NUMERICS_GGML : NUMERICS_EXACT};
    check(tempo_model_set_numerics(&m, &numerics, err), path, err);
    double bytes, params;
    model_costs(&m, &bytes, &params);
    decode_tok_s(&m, 8); /* warm-up: pages in */
    double tg = decode_tok_s(&m, TG_TOKENS);
    int rows = !with_pp ? 0 : m.config.seq_len < PP_ROWS ? m.config.seq_len : PP_ROWS;
    double pp = with_pp ? rows / prefill_seconds(&m, rows, 0) : NAN;
    size_t n = (size_t)(bytes / sizeof(float));
    float *buf = alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 7);
    Series bound = {0};
    for (int rep = 0; rep < REPS; rep++) add(&bound, stream_read_gbs(buf, n) * 1e9 / bytes);
    cJSON *o = cJSON_CreateObject(), *b = stats(&bound);
    cJSON_AddStringToObject(o, "weights", tempo_weight_type_name(m.weights.layers[0].wq.type));
    cJSON_AddNumberToObject(o, "tg", tg);
    cJSON_AddNumberToObject(o, "pp", pp);
    cJSON_AddNumberToObject(o, "pp_rows", rows);
    cJSON_AddNumberToObject(o, "bound_best", num(b, "max"));
    cJSON_AddNumberToObject(o, "bound_median", num(b, "median"));
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(b);
    cJSON_Delete(o);
    free(buf);
    tempo_model_free(&m);
    return 0;
}

/* ---- the parent: children, table, JSON ---- */

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static double median(const cJSON *o, const char *k) { return num(cJSON_GetObjectItem(o, k), "median"); }

/* One table cell: the figure, or n/a (the legend says why). */
static void print_cell(double v, int width, int decimals) {
    if (isnan(v)) printf(" %*s", width, "n/a");
    else printf(" %*.*f", width, decimals, v);
}

/* Runs argv[0] with argv; its stdout into out (NUL-terminated, at most
 * size - 1 bytes) and its peak RSS into *rss_bytes. 0 when it exited 0. */
static int run_program(char *const argv[], char *out, size_t size, double *rss_bytes) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t got;
    while ((got = read(pipefd[0], out + len, size - 1 - len)) > 0) len += (size_t)got;
    close(pipefd[0]);
    out[len] = '\0';
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid) return -1;
    if (rss_bytes) *rss_bytes = (double)ru.ru_maxrss * 1024;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Runs this program as a child in `mode` for one model; its JSON with its peak RSS added. */
static cJSON *run_child(const char *self, const char *mode, const char *path, const char *tok, const char *prompt, int threads) {
    static char buf[1 << 16];
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    char *argv[] = {(char *)self, (char *)mode, (char *)path, (char *)(tok ? tok : "-"), (char *)prompt, th, NULL};
    double rss;
    if (run_program(argv, buf, sizeof buf, &rss) != 0) return NULL;
    cJSON *o = cJSON_Parse(buf);
    if (o) cJSON_AddNumberToObject(o, "peak_rss_bytes", rss);
    return o;
}

/* Bytes of a checkpoint: the file, or a Hugging Face directory's model.safetensors. */
static double checkpoint_bytes(const char *path) {
    struct stat st;
    char file[4200];
    snprintf(file, sizeof file, "%s/model.safetensors", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && stat(file, &st) != 0) return NAN;
    return (double)st.st_size;
}

/* Measures one model (three children) into one JSON object; prints its row. */
static cJSON *measure(const char *self, const char *path, const char *tok, const char *prompt, int threads) {
    cJSON *o = run_child(self, "--child", path, tok, prompt, threads);
    cJSON *gen = run_child(self, "--rss", path, NULL, "generate", threads);
    cJSON *chk = run_child(self, "--rss", path, NULL, "check", threads);
    if (!o || !gen || !chk) {
        fprintf(stderr, "bench: measuring %s failed\n", path);
        exit(1);
    }
    double file = checkpoint_bytes(path);
    cJSON_DeleteItemFromObject(o, "peak_rss_bytes"); /* the measuring child holds benchmark buffers */
    cJSON_AddNumberToObject(o, "checkpoint_bytes", file);
    cJSON_AddNumberToObject(o, "generate_peak_rss_bytes", num(gen, "peak_rss_bytes"));
    cJSON_AddNumberToObject(o, "kv_cache_bytes", num(gen, "kv_cache_bytes"));
    cJSON_AddNumberToObject(o, "check_peak_rss_bytes", num(chk, "peak_rss_bytes"));
    cJSON_AddNumberToObject(o, "check_rss_over_file", num(chk, "peak_rss_bytes") / file);
    cJSON_Delete(gen);
    cJSON_Delete(chk);
    const char *base = strrchr(path, '/');
    const char *keys[] = {"decode_tok_s", "decode_fraction_of_read_bound", "prefill_tok_s", "prefill_fraction_of_sgemm",
                          "step2_over_step1", "step3_over_step1", "step4_over_step1", "step4_all_logits_over_step1",
                          "isolated_over_visible_same_rows", "capture_over_none", "decode_speedup_over_f32_copy", NULL};
    const int widths[] = {8, 5, 7, 5, 5, 5, 5, 5, 6, 5, 6}, decimals[] = {0, 2, 0, 2, 2, 2, 2, 2, 3, 2, 2};
    printf("%-18s %5s", base ? base + 1 : path, cJSON_GetObjectItem(o, "weights")->valuestring);
    for (int k = 0; keys[k]; k++) print_cell(median(o, keys[k]), widths[k], decimals[k]);
    print_cell(num(o, "check_rss_over_file"), 5, 2);
    printf("\n");
    fflush(stdout);
    return o;
}

/* One long-context figure: a child's JSON with its peak RSS; prints its line,
 * with its target at make bench's size (targets): peak RSS <= rss_target
 * (0: none), or for the attention the fraction of sgemm >= 0.5. */
static cJSON *long_figure(const char *self, const char *what, const char *path, int rows, int threads,
                          const char *label, double rss_target, int targets) {
    char n[32];
    snprintf(n, sizeof n, "%d", rows);
    cJSON *o = run_child(self, "--long-child", path, what, n, threads);
    if (!o) {
        printf("%-44s did not complete\n", label);
        return cJSON_CreateNull();
    }
    double rss = num(o, "peak_rss_bytes"), sec = num(o, "seconds");
    printf("%-44s", label);
    if (!isnan(sec)) printf(" %8.1f s", sec);
    printf(" peak RSS %6.2f GB", rss / 1e9);
    if (targets && rss_target > 0)
        printf("  (target <= %.0f GB: %s)", rss_target / 1e9, rss <= rss_target ? "met" : "MISSED");
    double fraction = num(o, "attention_fraction_of_sgemm");
    if (strcmp(what, "attention") == 0)
        printf("  attention %.1f GFLOP/s, sgemm %.1f: %.2f of it", num(o, "attention_gflops"), num(o, "sgemm_gflops"), fraction);
    if (strcmp(what, "attention") == 0 && targets) printf(" (target >= 0.5: %s)", fraction >= 0.5 ? "met" : "MISSED");
    printf("\n");
    fflush(stdout);
    return o;
}

/* llama.cpp's tokens/s for `test` (pp512, tg128) in llama-tempo bench's JSON lines; NaN if absent. */
static double llama_figure(const char *lines, const char *test) {
    double v = NAN;
    for (const char *line = lines; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        cJSON *o = cJSON_ParseWithLength(line, len);
        const cJSON *t = cJSON_GetObjectItem(o, "test");
        if (cJSON_IsString(t) && strcmp(t->valuestring, test) == 0) v = num(o, "tokens_per_second");
        cJSON_Delete(o);
        line += len + (end != NULL);
    }
    return v;
}

/* How a GGUF is measured against llama.cpp: tg128 and pp512 in tempo's
 * exact arithmetic or under --numerics ggml, or tg128 only (exact, or under ggml). */
typedef enum { VERSUS_EXACT, VERSUS_GGML, VERSUS_TG_ONLY, VERSUS_TG_GGML } VersusMode;

/* tempo (under --numerics ggml for VERSUS_GGML, VERSUS_TG_GGML) and llama.cpp on one GGUF,
 * REPS alternating pairs (VERSUS_TG_ONLY, VERSUS_TG_GGML: TG_ONLY_PAIRS, no pp512): tg128
 * and pp512 of each, their ratios within each pair, and the read bound; one
 * row of the table. `llama` NULL: llama.cpp's cells are n/a. */
static cJSON *versus_llama(const char *self, const char *llama, const char *path, VersusMode mode, int threads, int *llama_failed) {
    int ggml = mode == VERSUS_GGML || mode == VERSUS_TG_GGML, tg_only = mode == VERSUS_TG_ONLY || mode == VERSUS_TG_GGML;
    int pairs = tg_only ? TG_ONLY_PAIRS : REPS;
    Series tg[2], pp[2],  tg_ratio = {0}, pp_ratio = {0}, best = {0}, med = {0};
    memset(tg, 0, sizeof tg);
    memset(pp, 0, sizeof pp);
    char th[16], pp_rows[16] = "512", pp_test[24], tg_tokens[16], *out = alloc(1 << 16);
    snprintf(th, sizeof th, "%d", threads);
    snprintf(tg_tokens, sizeof tg_tokens, "%d", TG_TOKENS);
    char weights[32] = "?";
    for (int rep = 0; rep < pairs; rep++) {
        char *tempo_argv[] = {(char *)self, "--tg-pp", (char *)path, th, ggml ? "ggml" : "exact", tg_only ? "tg" : NULL, NULL};
        cJSON *t = run_program(tempo_argv, out, 1 << 16, NULL) == 0 ? cJSON_Parse(out) : NULL;
        if (!t) { fprintf(stderr, "bench: tempo on %s failed\n", path); exit(1); }
        snprintf(weights, sizeof weights, "%s", cJSON_GetObjectItem(t, "weights")->valuestring);
        snprintf(pp_rows, sizeof pp_rows, "%d", (int)num(t, "pp_rows"));
        add(&tg[0], num(t, "tg")), add(&pp[0], num(t, "pp"));
        add(&best, num(t, "bound_best")), add(&med, num(t, "bound_median"));
        cJSON_Delete(t);
        double ltg = NAN, lpp = NAN;
        char *llama_argv[] = {(char *)llama, "bench", (char *)path, "--pp", pp_rows, "--tg", tg_tokens, "--reps", "1",
                              "--threads", th, NULL};
        if (llama && run_program(llama_argv, out, 1 << 16, NULL) == 0)
            snprintf(pp_test, sizeof pp_test, "pp%s", pp_rows), ltg = llama_figure(out, "tg128"), lpp = llama_figure(out, pp_test);
        else if (llama) *llama_failed = 1;
        add(&tg[1], ltg), add(&pp[1], lpp);
        add(&tg_ratio, tg[0].v[rep] / ltg), add(&pp_ratio, pp[0].v[rep] / lpp);
    }
    free(out);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", path);
    cJSON_AddStringToObject(o, "weights", weights);
    cJSON_AddStringToObject(o, "numerics", ggml ? "ggml" : "exact");
    cJSON_AddNumberToObject(o, "pairs", pairs);
    put(o, "tempo_tg128_tok_s", &tg[0]), put(o, "llama_tg128_tok_s", &tg[1]), put(o, "tg128_tempo_over_llama", &tg_ratio);
    put(o, "tempo_pp512_tok_s", &pp[0]), put(o, "llama_pp512_tok_s", &pp[1]), put(o, "pp512_tempo_over_llama", &pp_ratio);
    put(o, "read_bound_tok_s_best", &best), put(o, "read_bound_tok_s_median", &med);
    const char *base = strrchr(path, '/');
    char label[64];
    snprintf(label, sizeof label, "%s%s%s", base ? base + 1 : path, tg_only ? " tg" : "", ggml ? " ggml" : "");
    printf("%-31s %5s", label, weights);
    const char *keys[] = {"tempo_tg128_tok_s", "llama_tg128_tok_s", NULL, "tempo_pp512_tok_s", "llama_pp512_tok_s", NULL};
    const char *ratios[] = {"tg128_tempo_over_llama", "pp512_tempo_over_llama"};
    for (int part = 0; part < 2; part++) {
        for (int k = 3 * part; keys[k]; k++) print_cell(median(o, keys[k]), 7, 1);
        const cJSON *r = cJSON_GetObjectItem(o, ratios[part]);
        print_cell(num(r, "min"), 5, 2), print_cell(num(r, "median"), 5, 2), print_cell(num(r, "max"), 5, 2);
    }
    print_cell(median(o, "read_bound_tok_s_best"), 7, 1), print_cell(median(o, "read_bound_tok_s_median"), 7, 1);
    printf("\n");
    fflush(stdout);
    return o;
}

static const char *long_legend =
    "(seconds: wall clock of one run, rough on a busy machine; peak RSS: the child's ru_maxrss, for the 8B file\n"
    " including the mapped weight pages it read, which the kernel may drop; attention: 4 head_dim FLOPs per\n"
    " allowed cell and head, causal, over sgemm 2048^3 measured just before%s)\n";

/* The targets of issue 21 with `rows` rows (65,536 in make bench; smaller to
 * try the bench): a forward of rows and of 2 rows without attention, one of
 * rows/4 keeping one layer's and one head's attention, the attention
 * kernel's FLOPs over sgemm's, and a 256-row verify (every row's logits) of
 * a Llama-3-8B-shaped sparse bf16 checkpoint. */
/* The 8B-shaped figure, through the command line as a user runs it:
 * `tempo forward` writes a trace of `rows` rows (every row's logits), then
 * `tempo verify` recomputes it; verify's time and peak RSS are the figure. */
static cJSON *verify_8b(const char *dir, int rows, int threads) {
    const char *label = "Llama-3-8B-shaped bf16, 256-row tempo verify";
    char ids[] = "/tmp/tempo-bench-8b-ids", trace[] = "/tmp/tempo-bench-8b.st", at[64], th[32];
    static char out[1 << 16];
    FILE *f = fopen(ids, "w");
    for (int i = 0; f && i < rows; i++) fprintf(f, "%s%d", i ? "," : "", 1 + i % 1000);
    int ok = f && fclose(f) == 0;
    snprintf(at, sizeof at, "@%s", ids);
    snprintf(th, sizeof th, "%d", threads);
    char *forward[] = {"./tempo", "forward", "-m", (char *)dir, "--tokens", at, "--no-attention", "--out", trace, "--threads", th, NULL};
    char *verify[] = {"./tempo", "verify", trace, "-m", (char *)dir, "--threads", th, NULL};
    double rss = 0.0, t0 = now();
    ok = ok && run_program(forward, out, sizeof out, NULL) == 0;
    double start = now();
    ok = ok && run_program(verify, out, sizeof out, &rss) == 0; /* verify exits 0 on PASS */
    double seconds = now() - start;
    unlink(ids), unlink(trace);
    if (!ok) {
        printf("%-44s did not complete or did not pass\n", label);
        return cJSON_CreateNull();
    }
    printf("%-44s %8.1f s peak RSS %6.2f GB  (PASS; the forward that wrote the trace: %.1f s)\n", label, seconds, rss / 1e9,
           start - t0);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rows", rows);
    cJSON_AddNumberToObject(o, "seconds", seconds);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", rss);
    cJSON_AddNumberToObject(o, "forward_seconds", start - t0);
    return o;
}

static void bench_long(const char *self, int rows, int threads, int with_8b, cJSON *root) {
    char err[TEMPO_ERR_SIZE], label[128];
    const char *path = "build/bench-long.bin", *big = "/tmp/tempo-bench-8b";
    SynthConfig sc;
    long_model_config(&sc, 2 * rows);
    check(tempo_synth_write(&sc, path, err), path, err);
    cJSON *o = cJSON_AddObjectToObject(root, "long_context");
    int full = rows == 65536;
    snprintf(label, sizeof label, "forward %d rows, no attention", rows);
    cJSON_AddItemToObject(o, "forward", long_figure(self, "forward", path, rows, threads, label, 1e9, full));
    snprintf(label, sizeof label, "forward %d rows, no attention (completes)", 2 * rows);
    cJSON_AddItemToObject(o, "forward_double", long_figure(self, "forward", path, 2 * rows, threads, label, 0, full));
    snprintf(label, sizeof label, "forward %d rows, keeping layer 0 head 0", rows / 4);
    cJSON_AddItemToObject(o, "keep_one", long_figure(self, "keep-one", path, rows / 4, threads, label, 2e9, full));
    snprintf(label, sizeof label, "attention kernel, %d causal rows", rows / 4);
    cJSON_AddItemToObject(o, "attention", long_figure(self, "attention", path, rows / 4, threads, label, 0, full));
    unlink(path);
    printf(long_legend, rows == 65536 ? "" : "; the targets apply at --long 65536 (make bench)");
    if (!with_8b) {
        printf("%-44s n/a: --8b no was given\n", "Llama-3-8B-shaped bf16, 256-row tempo verify");
        return;
    }
    llama3_8b_config(&sc);
    check(tempo_synth_write_sparse_hf(&sc, big, err), big, err);
    cJSON_AddItemToObject(o, "verify_8b", verify_8b(big, 256, threads));
    char file[256];
    snprintf(file, sizeof file, "%s/model.safetensors", big);
    unlink(file);
    snprintf(file, sizeof file, "%s/config.json", big);
    unlink(file);
    rmdir(big);
}

static const char *llama_legend =
    "\nthe same GGUF files, tempo and llama.cpp (npm node-llama-cpp 3.22.1 through build/llama-tempo bench) in %d\n"
    "alternating pairs; medians, and the ratio tempo/llama.cpp within each pair as min med max.\n"
    "type: layer 0's wq (llama-quantize's presets mix types: its IQ2_S file stores it as iq2_xs, IQ3_XXS as iq2_s);\n"
    "tg128: greedy decode of 128 tokens, tokens/s; pp512: a 512-row prompt, tokens/s (llama.cpp: F16 K/V, as llama-bench);\n"
    "bound: tokens/s if a decoded token's bytes were read as fast as a plain parallel read of as many bytes,\n"
    "best and median of %d passes per pair (medians over the pairs).\n"
    "ggml: tempo under --numerics ggml (llama.cpp's arithmetic: integer dots on quantized activations, K/V f32);\n"
    "the other rows: tempo's exact arithmetic. tg: the other types llama-quantize writes, tg128 only, %d pairs\n"
    "(IQ1_*, IQ2_*, IQ3_*: a uniform importance matrix, no real model's; a decode's time does not depend on the values).\n"
    "tg ggml: the repacked Q4_0 and IQ4_NL and one type of each family of the other types' dots, tg128 only, under --numerics ggml.\n"
    "n/a: the pp cells of the tg rows (pp512 not measured: make bench stays under 20 minutes); %s\n";

/* The table of tempo against llama.cpp, one row per GGUF (files[i] under
 * --numerics ggml when ggml[i]); its JSON array. */
static cJSON *versus_llama_table(const char *self, const char *llama, const char *const *files, const VersusMode *modes, int n,
                                 int threads) {
    if (llama && access(llama, X_OK) != 0) {
        fprintf(stderr, "bench: %s is not an executable (make build/llama-tempo builds it)\n", llama);
        exit(1);
    }
    printf("\n%-31s %5s %7s %7s %5s %5s %5s %7s %7s %5s %5s %5s %7s %7s\n", "tempo vs llama.cpp", "type", "tg", "llama", "min",
           "med", "max", "pp", "llama", "min", "med", "max", "bound", "b-med");
    cJSON *rows = cJSON_CreateArray();
    int failed = 0;
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(rows, versus_llama(self, llama, files[i], modes[i], threads, &failed));
    printf(llama_legend, REPS, REPS, TG_ONLY_PAIRS,
           !llama ? "llama.cpp's cells: no --llama was given (make bench gives build/llama-tempo)"
           : failed ? "llama.cpp's cells: llama-tempo bench failed on that file (its message is above)"
                    : "llama.cpp gave every figure it was asked for");
    return rows;
}

static const char *legend =
    "\nmedians of %d alternating repetitions (bench.json has min/median/max of each):\n"
    "decode/s: greedy tokens/s; of-read: decode bytes/s over a plain parallel read of as many bytes, same threads;\n"
    "pre/s: prefill tokens/s (512 rows, logits of the last); of-gm: 2 x parameters per token over sgemm 2048^3\n"
    "(bench.json also has the FLOPs done: the classifier for one row only, plus attention);\n"
    "kN/k1: a step of N rows (one parallel set, the last row's logits, as tempo generate asks) / a 1-row step;\n"
    "k4a: the same with all 4 rows' logits (--next-from mean, --trace); iso/vis: the same TEMPO rows, isolated / visible mask;\n"
    "cap: TEMPO with attention capture / without; x-f32: decode speed over the model's f32 copy;\n"
    "chk-RSS: peak RSS of `tempo check` / checkpoint size.\n"
    "n/a: of-rd for a model under 64 MB (it stays in the caches, no read bound applies); x-f32 for a model stored as f32.\n";

/* Writes the figures to `json` (and frees them); 0, or 1 when it cannot. */
static int write_json(cJSON *root, const char *json, double t0) {
    char *text = cJSON_Print(root), err[TEMPO_ERR_SIZE];
    int rc = !text || tempo_write_text_file(json, text, err) != 0;
    if (rc) fprintf(stderr, "bench: cannot write %s\n", json);
    else printf("wrote %s (%.0f s)\n", json, now() - t0);
    free(text);
    cJSON_Delete(root);
    return rc;
}

enum { MAX_VERSUS = 48 };

/* The bench's options (defaults: the Makefile's files, every core). */
typedef struct {
    const char *weights, *large, *large_bf16, *large_q4k, *json, *llama, *vs_llama[MAX_VERSUS];
    VersusMode vs_mode[MAX_VERSUS];
    int threads, long_rows, with_8b, n_vs, llama_only;
} BenchArgs;

/* Reads the options into a; 1 (with the usage printed) on anything unknown or out of range. */
static int parse_bench_args(int argc, char **argv, BenchArgs *a) {
    *a = (BenchArgs){.weights = "../shared/weights", .large = "build/bench-large.bin", .large_bf16 = "build/bench-large-bf16",
                     .large_q4k = "build/bench-large-q4_k.gguf", .json = "bench.json",
                     .threads = (int)sysconf(_SC_NPROCESSORS_ONLN), .with_8b = 1};
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--llama-only") == 0) a->llama_only = 1, i--;
        else if (v && strcmp(argv[i], "--llama") == 0) a->llama = v;
        else if (v && strncmp(argv[i], "--vs-llama", 10) == 0 && a->n_vs < MAX_VERSUS &&
                 (!argv[i][10] || !strcmp(argv[i] + 10, "-ggml") || !strcmp(argv[i] + 10, "-tg") || !strcmp(argv[i] + 10, "-tg-ggml")))
            a->vs_mode[a->n_vs] = !argv[i][10]                 ? VERSUS_EXACT
                                  : argv[i][11] == 'g'         ? VERSUS_GGML
                                  : !strcmp(argv[i] + 10, "-tg") ? VERSUS_TG_ONLY
                                                               : VERSUS_TG_GGML,
            a->vs_llama[a->n_vs++] = v;
        else if (v && strcmp(argv[i], "--weights") == 0) a->weights = v;
        else if (v && strcmp(argv[i], "--large") == 0) a->large = v;
        else if (v && strcmp(argv[i], "--large-bf16") == 0) a->large_bf16 = v;
        else if (v && strcmp(argv[i], "--large-q4k") == 0) a->large_q4k = v;
        else if (v && strcmp(argv[i], "--json") == 0) a->json = v;
        else if (v && strcmp(argv[i], "--threads") == 0) a->threads = atoi(v);
        else if (v && strcmp(argv[i], "--long") == 0) a->long_rows = atoi(v);
        else if (v && strcmp(argv[i], "--8b") == 0) a->with_8b = strcmp(v, "no") != 0;
        else {
            fprintf(stderr, "usage: bench [--weights DIR] [--large FILE] [--large-bf16 DIR] [--large-q4k FILE] [--threads N] [--json FILE]\n"
                            "             [--llama LLAMA_TEMPO] [--vs-llama[-ggml|-tg|-tg-ggml] FILE.gguf]... (up to 48) [--llama-only] [--long ROWS [--8b no]]\n");
            return 1;
        }
    }
    if (a->threads < 1) { fprintf(stderr, "bench: --threads must be >= 1\n"); return 1; }
    if (a->long_rows < 0 || a->long_rows % 4) { fprintf(stderr, "bench: --long takes a multiple of 4 rows\n"); return 1; }
    return 0;
}

/* The model table: the three real models and the three large synthetic ones. */
static void bench_models(const char *self, const BenchArgs *a, cJSON *root) {
    char paths[6][4096], toks[3][4096];
    snprintf(paths[0], sizeof paths[0], "%s/fortune.bin", a->weights);
    snprintf(toks[0], sizeof toks[0], "%s/fortune-tok512.bin", a->weights);
    snprintf(paths[1], sizeof paths[1], "%s/stories260K.bin", a->weights);
    snprintf(toks[1], sizeof toks[1], "%s/tok512.bin", a->weights);
    snprintf(paths[2], sizeof paths[2], "%s/stories260K-hf", a->weights);
    snprintf(toks[2], sizeof toks[2], "%s/tok512.bin", a->weights);
    snprintf(paths[3], sizeof paths[3], "%s", a->large);
    snprintf(paths[4], sizeof paths[4], "%s", a->large_bf16);
    snprintf(paths[5], sizeof paths[5], "%s", a->large_q4k);
    const char *prompts[6] = {"Q: Why did the chicken", "Once upon a time", "Once upon a time", "-", "-", "-"};
    printf("%-18s %5s %8s %5s %7s %5s %5s %5s %5s %5s %6s %5s %6s %5s\n", "model", "type", "decode/s", "of-rd", "pre/s", "of-gm",
           "k2/k1", "k3/k1", "k4/k1", "k4a", "iso/vi", "cap", "x-f32", "chk");
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    for (int i = 0; i < 6; i++)
        cJSON_AddItemToArray(models, measure(self, paths[i], i < 3 ? toks[i] : NULL, prompts[i], a->threads));
    printf(legend, REPS);
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "--child") == 0)
        return bench_model(argv[2], strcmp(argv[3], "-") ? argv[3] : NULL, argv[4], atoi(argv[5]));
    if (argc == 6 && strcmp(argv[1], "--rss") == 0) return rss_model(argv[2], argv[4], atoi(argv[5]));
    if (argc == 6 && strcmp(argv[1], "--long-child") == 0) return long_child(argv[3], argv[2], atoi(argv[4]), atoi(argv[5]));
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "--tg-pp") == 0)
        return tg_pp_model(argv[2], atoi(argv[3]), strcmp(argv[4], "ggml") == 0, argc == 5);
    BenchArgs a;
    if (parse_bench_args(argc, argv, &a) != 0) return 1;
    double t0 = now();
    printf("%d threads\n", a.threads);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "threads", a.threads);
    cJSON_AddNumberToObject(root, "repetitions", REPS);
    if (a.long_rows > 0) bench_long(argv[0], a.long_rows, a.threads, a.with_8b, root);
    else if (!a.llama_only) bench_models(argv[0], &a, root);
    if (a.n_vs > 0)
        cJSON_AddItemToObject(root, "versus_llama", versus_llama_table(argv[0], a.llama, a.vs_llama, a.vs_mode, a.n_vs, a.threads));
    cJSON_AddNumberToObject(root, "seconds", now() - t0);
    return write_json(root, a.json, t0);
}
