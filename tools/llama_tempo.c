/* llama_tempo.c - TEMPO run through llama.cpp's C API (the prebuilt library
 * of npm's node-llama-cpp 3.22.1), every row written as a tempo trace, and
 * llama.cpp's own quantizer (NOTES "A real llama.cpp in the tests").
 *
 *   llama-tempo run MODEL.gguf --trace OUT --prompt IDS [flags]
 *   llama-tempo quantize IN.gguf OUT.gguf TYPE [--threads N]   (TYPE F32 of a quantized IN: dequantized by ggml;
 *     IQ1_*, IQ2_*, IQ3_*: with a uniform importance matrix, which their grid types require)
 *   llama-tempo bench MODEL.gguf [--pp 512] [--tg 128] [--reps 5] [flags]
 *
 * run: the prompt (one sequence, id 0, positions 0..P-1), then at each step
 * every token with p >= threshold at the step's one position P + step.
 *   correct (default): member i of the set decodes in its own sequence i+1,
 *     a copy of sequence 0 (llama_memory_seq_cp), so siblings never see each
 *     other; after the step each member's cell joins sequence 0 and the copy
 *     is dropped. This equals TEMPO isolated.
 *   --naive: every member in sequence 0. llama.cpp masks by position
 *     (a key is seen when its position <= the query's), so siblings at the
 *     same position see each other, before and after them in the batch.
 * The trace's mask is llama.cpp's rule over those sequences, not tempo's:
 * `tempo verify` then proves the mask and the arithmetic together.
 * Not part of tempo: built only against the npm library (Makefile). */
#define _GNU_SOURCE /* dl_iterate_phdr */
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

#include "../formats/formats.h"
#include "settings.h"

#ifndef LLAMA_BACKEND_DIR
#define LLAMA_BACKEND_DIR "."
#endif
#define ENGINE_NAME "llama.cpp (npm node-llama-cpp 3.22.1)"

typedef struct {
    const char *model_path, *trace_path, *prompt;
    float threshold;
    int max_steps, max_width, threads, naive, flash_attn, repack;
    enum ggml_type kv_type;
} RunOptions;

/* Every row fed, in feeding order, with what llama.cpp returned for it. */
typedef struct {
    int n_rows, n_prompt, vocab;
    int *tokens, *positions, *sets;
    float *logits;                 /* [n_rows][vocab] */
    int n_steps, width_cap;        /* selections: [n_steps][width_cap] */
    int *selected;
    float *selected_probs;
} Rows;

typedef struct {
    struct llama_model *model;
    struct llama_context *ctx;
    llama_memory_t memory;
    struct llama_batch batch;
    int batch_cap;
    int repacked; /* llama.cpp made a CPU_REPACK weight buffer: some weights run the repacked kernels */
} Engine;

/* llama.cpp's own messages: errors only (its info lines would bury ours). */
static void log_errors(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

/* ---- arguments ---- */

/* "1,2,3" (or @FILE) to ids, each in [0, vocab), by tempo's one list parser; the caller frees *ids. */
static int parse_ids(const char *s, int vocab, int **ids, int *n, char *err) {
    if (tempo_parse_int_list(s, "--prompt", ids, n, err) != 0) return -1;
    for (int i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= vocab)
            return tempo_error(err, "--prompt token id %d is outside the vocabulary [0, %d)", (*ids)[i], vocab);
    return 0;
}

static int parse_choice(const char *s, const char *what, const char *a, const char *b, int *is_b, char *err) {
    if (strcmp(s, a) == 0 || strcmp(s, b) == 0) {
        *is_b = strcmp(s, b) == 0;
        return 0;
    }
    return tempo_error(err, "%s must be %s or %s, not '%s'", what, a, b, s);
}

/* One flag with its value at argv[*i]; advances *i past the value. */
static int parse_run_flag(RunOptions *o, int argc, char **argv, int *i, char *err) {
    const char *f = argv[*i];
    if (strcmp(f, "--naive") == 0) { o->naive = 1; return 0; }
    if (*i + 1 >= argc) return tempo_error(err, "flag %s needs a value", f);
    const char *v = argv[++*i];
    int is_b = 0;
    if (strcmp(f, "--trace") == 0) o->trace_path = v;
    else if (strcmp(f, "--prompt") == 0) o->prompt = v;
    else if (strcmp(f, "--threshold") == 0) {
        if (tempo_parse_float(v, "--threshold", &o->threshold, err) != 0) return -1;
        if (!(o->threshold > 0.0f && o->threshold <= 1.0f)) return tempo_error(err, "--threshold must be in (0, 1]");
    } else if (strcmp(f, "--max-steps") == 0) return tempo_parse_int(v, "--max-steps", 1, 4096, &o->max_steps, err);
    else if (strcmp(f, "--max-width") == 0) return tempo_parse_int(v, "--max-width", 1, 64, &o->max_width, err);
    else if (strcmp(f, "--threads") == 0) return tempo_parse_int(v, "--threads", 1, 256, &o->threads, err);
    else if (strcmp(f, "--kv-type") == 0) {
        if (parse_choice(v, "--kv-type", "f32", "f16", &is_b, err) != 0) return -1;
        o->kv_type = is_b ? GGML_TYPE_F16 : GGML_TYPE_F32;
    } else if (strcmp(f, "--flash-attn") == 0) return parse_choice(v, "--flash-attn", "off", "on", &o->flash_attn, err);
    else if (strcmp(f, "--repack") == 0) return parse_choice(v, "--repack", "off", "on", &o->repack, err);
    else return tempo_error(err, "unknown flag %s", f);
    return 0;
}

static int parse_run(RunOptions *o, int argc, char **argv, char *err) {
    *o = (RunOptions){.threshold = 0.1f, .max_steps = 20, .max_width = 8, .threads = 1, .repack = 1,
                      .kv_type = GGML_TYPE_F32};
    if (argc < 3 || argv[2][0] == '-') return tempo_error(err, "usage: llama-tempo run MODEL.gguf --trace OUT --prompt IDS [flags]");
    o->model_path = argv[2];
    for (int i = 3; i < argc; i++)
        if (parse_run_flag(o, argc, argv, &i, err) != 0) return -1;
    if (!o->trace_path) return tempo_error(err, "missing --trace OUT");
    if (!o->prompt) return tempo_error(err, "missing --prompt IDS (comma-separated token ids)");
    return 0;
}

/* ---- the library ---- */

/* While a model loads: errors as log_errors, and whether llama.cpp put
 * weights in the CPU backend's repack buffer (its "CPU_REPACK model buffer
 * size" line, llama-model.cpp): what runs, whatever --repack asked. */
static void log_watching_repack(enum ggml_log_level level, const char *text, void *repacked) {
    if (strstr(text, "CPU_REPACK model buffer size")) *(int *)repacked = 1;
    log_errors(level, text, NULL);
}

static int engine_open(Engine *e, const RunOptions *o, char *err) {
    *e = (Engine){0};
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = o->repack != 0; /* the CPU's repacked weight layouts and their own kernels */
    llama_log_set(log_watching_repack, &e->repacked);
    e->model = llama_model_load_from_file(o->model_path, mp);
    llama_log_set(log_errors, NULL);
    return e->model ? 0 : tempo_error(err, "llama.cpp could not load %s", o->model_path);
}

/* A context whose batches hold the prompt or one set, and whose cache holds the whole run. */
static int engine_context(Engine *e, const RunOptions *o, int n_prompt, char *err) {
    struct llama_context_params cp = llama_context_default_params();
    /* llama.cpp keeps room for one output per sequence: the batch holds at least n_seq_max rows */
    e->batch_cap = n_prompt > o->max_width + 1 ? n_prompt : o->max_width + 1;
    cp.n_ctx = (uint32_t)(n_prompt + o->max_steps * o->max_width);
    cp.n_batch = cp.n_ubatch = (uint32_t)e->batch_cap;
    cp.n_seq_max = (uint32_t)o->max_width + 1; /* sequence 0 and one per member */
    cp.kv_unified = true;                      /* one cache: seq_cp shares cells */
    cp.n_threads = cp.n_threads_batch = o->threads;
    cp.type_k = cp.type_v = o->kv_type;
    cp.flash_attn_type = o->flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    e->ctx = llama_init_from_model(e->model, cp);
    if (!e->ctx) return tempo_error(err, "llama.cpp could not make a context for %s (kv-type, flash-attn?)", o->model_path);
    e->memory = llama_get_memory(e->ctx);
    e->batch = llama_batch_init(e->batch_cap, 0, 1);
    return 0;
}

static void engine_close(Engine *e) {
    if (e->batch.token) llama_batch_free(e->batch);
    if (e->ctx) llama_free(e->ctx);
    if (e->model) llama_model_free(e->model);
}

/* ---- rows ---- */

static int rows_init(Rows *r, int vocab, int n_prompt, const RunOptions *o, char *err) {
    size_t cap = (size_t)n_prompt + (size_t)o->max_steps * o->max_width;
    *r = (Rows){.vocab = vocab, .width_cap = o->max_width};
    r->tokens = malloc(cap * sizeof(int));
    r->positions = malloc(cap * sizeof(int));
    r->sets = malloc(cap * sizeof(int));
    r->logits = malloc(cap * vocab * sizeof(float));
    r->selected = malloc((size_t)o->max_steps * o->max_width * sizeof(int));
    r->selected_probs = calloc((size_t)o->max_steps * o->max_width, sizeof(float));
    if (!r->tokens || !r->positions || !r->sets || !r->logits || !r->selected || !r->selected_probs)
        return tempo_error(err, "out of memory for %zu rows", cap);
    for (int i = 0; i < o->max_steps * o->max_width; i++) r->selected[i] = -1;
    return 0;
}

static void rows_free(Rows *r) {
    free(r->tokens);
    free(r->positions);
    free(r->sets);
    free(r->logits);
    free(r->selected);
    free(r->selected_probs);
}

/* Decodes k rows at positions pos[i], row i in sequence seq[i], every row's
 * logits kept; the rows are appended to r with set id `set` (-1: own position). */
static int decode_rows(Engine *e, Rows *r, int k, const int *tokens, const int *pos, const int *seq, int set, char *err) {
    struct llama_batch *b = &e->batch;
    b->n_tokens = k;
    for (int i = 0; i < k; i++) {
        b->token[i] = tokens[i];
        b->pos[i] = pos[i];
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = seq[i];
        b->logits[i] = 1;
    }
    int rc = llama_decode(e->ctx, *b);
    if (rc != 0) return tempo_error(err, "llama_decode failed (%d) on %d rows at position %d", rc, k, pos[0]);
    for (int i = 0; i < k; i++) {
        const float *l = llama_get_logits_ith(e->ctx, i);
        if (!l) return tempo_error(err, "llama.cpp returned no logits for row %d", r->n_rows);
        memcpy(r->logits + (size_t)r->n_rows * r->vocab, l, (size_t)r->vocab * sizeof(float));
        r->tokens[r->n_rows] = tokens[i];
        r->positions[r->n_rows] = pos[i];
        r->sets[r->n_rows] = set < 0 ? pos[i] : set;
        r->n_rows++;
    }
    return 0;
}

static int feed_prompt(Engine *e, Rows *r, const int *prompt, int n, char *err) {
    int *pos = malloc((size_t)n * sizeof(int)), *seq = calloc((size_t)n, sizeof(int));
    int rc = pos && seq ? 0 : tempo_error(err, "out of memory for the prompt");
    for (int i = 0; rc == 0 && i < n; i++) pos[i] = i;
    if (rc == 0) rc = decode_rows(e, r, n, prompt, pos, seq, -1, err);
    r->n_prompt = n;
    free(pos);
    free(seq);
    return rc;
}

/* One step's fed members at position p. Correct: member i in its own copy
 * (sequence i+1) of sequence 0, then merged into 0 and the copy dropped.
 * Naive: all in sequence 0. */
static int feed_set(Engine *e, Rows *r, const int *members, int k, int p, int naive, char *err) {
    int pos[64], seq[64];
    for (int i = 0; i < k; i++) {
        pos[i] = p;
        seq[i] = naive ? 0 : i + 1;
        if (!naive) llama_memory_seq_cp(e->memory, 0, seq[i], -1, -1);
    }
    int rc = decode_rows(e, r, k, members, pos, seq, p, err);
    for (int i = 0; i < k && !naive; i++) {
        llama_memory_seq_cp(e->memory, seq[i], 0, p, p + 1);
        llama_memory_seq_rm(e->memory, seq[i], -1, -1);
    }
    return rc;
}

/* ---- TEMPO ---- */

/* The step's set from the last row's softmax: p >= threshold, most probable
 * first, at most max_width; the argmax when none clears it. */
static int select_set(Rows *r, const RunOptions *o, float *probs, int *candidates) {
    tempo_probs(probs, r->logits + (size_t)(r->n_rows - 1) * r->vocab, r->vocab);
    int width = tempo_select_tokens(probs, r->vocab, o->threshold, o->max_width, candidates);
    if (width == 0) candidates[width++] = tempo_argmax(probs, r->vocab);
    int s = r->n_steps++;
    for (int i = 0; i < width; i++) {
        r->selected[s * r->width_cap + i] = candidates[i];
        r->selected_probs[s * r->width_cap + i] = probs[candidates[i]];
    }
    return width;
}

/* Steps until max_steps or an end-of-generation token leads the set; a
 * member that ends generation is recorded but not fed. */
static int tempo_steps(Engine *e, Rows *r, const RunOptions *o, char *err) {
    const struct llama_vocab *vocab = llama_model_get_vocab(e->model);
    float *probs = malloc((size_t)r->vocab * sizeof(float));
    int *candidates = malloc((size_t)r->vocab * sizeof(int));
    int rc = probs && candidates ? 0 : tempo_error(err, "out of memory for the vocabulary");
    for (int step = 0; rc == 0 && step < o->max_steps; step++) {
        int width = select_set(r, o, probs, candidates), fed[64], k = 0;
        if (llama_vocab_is_eog(vocab, candidates[0])) break;
        for (int i = 0; i < width; i++)
            if (!llama_vocab_is_eog(vocab, candidates[i])) fed[k++] = candidates[i];
        rc = feed_set(e, r, fed, k, r->n_prompt + step, o->naive, err);
    }
    free(probs);
    free(candidates);
    return rc;
}

/* ---- the trace ---- */

/* llama.cpp's mask over the sequences used: a key is seen when it shares the
 * query's sequence and its position <= the query's. Correct run: earlier
 * positions (sequence 0) and the row itself; naive: every position <= its own. */
static void engine_mask(const Rows *r, int naive, uint8_t *allowed) {
    int n = r->n_rows;
    for (int q = 0; q < n; q++)
        for (int k = 0; k < n; k++) {
            int earlier = r->positions[k] < r->positions[q];
            int same = r->positions[k] == r->positions[q];
            int seen = earlier || k == q || (same && naive);
            allowed[(size_t)q * n + k] = (uint8_t)seen;
        }
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The CPU variant ggml loaded for this machine (libggml-cpu-<variant>.so): its kernels set the summation order. */
static int find_cpu_variant(struct dl_phdr_info *info, size_t size, void *out) {
    (void)size;
    const char *name = base_name(info->dlpi_name ? info->dlpi_name : "");
    if (strncmp(name, "libggml-cpu-", 12) != 0) return 0;
    snprintf(out, 64, "%s", name + 12);
    char *dot = strstr(out, ".so");
    if (dot) *dot = '\0';
    return 1;
}

/* The run's settings, written by tempo's one settings table (tools/settings.c): TEMPO
 * isolated from the last row, under llama.cpp's CPU arithmetic (verify's default). */
static int put_settings(Trace *t, const Engine *e, const RunOptions *o, int vocab, char *err) {
    Config c = {.n_layers = llama_model_n_layer(e->model), .vocab_size = vocab, .seq_len = llama_model_n_ctx_train(e->model)};
    GenConfig g;
    tempo_gen_defaults(&g, &c);
    g.mode = MASK_ISOLATED; /* the run claims TEMPO isolated either way: the audit judges the naive one by it */
    g.threshold = o->threshold;
    g.max_width = o->max_width;
    g.max_steps = o->max_steps;
    g.next_from = NEXT_LAST_ROW;
    g.numerics = (Numerics){NUMERICS_GGML, o->kv_type == GGML_TYPE_F16, o->flash_attn, !e->repacked};
    return settings_to_trace(t, &g, err);
}

static int put_run_meta(Trace *t, const Engine *e, const Rows *r, const RunOptions *o, char *err) {
    int rc = tempo_trace_meta(t, "model", base_name(o->model_path), err);
    if (rc == 0) rc = tempo_trace_metaf(t, "dim", err, "%d", llama_model_n_embd(e->model));
    if (rc == 0) rc = tempo_trace_metaf(t, "n_layers", err, "%d", llama_model_n_layer(e->model));
    if (rc == 0) rc = tempo_trace_metaf(t, "n_heads", err, "%d", llama_model_n_head(e->model));
    if (rc == 0) rc = tempo_trace_metaf(t, "n_kv_heads", err, "%d", llama_model_n_head_kv(e->model));
    if (rc == 0) rc = tempo_trace_metaf(t, "vocab_size", err, "%d", r->vocab);
    if (rc == 0) rc = tempo_trace_metaf(t, "seq_len", err, "%d", llama_model_n_ctx_train(e->model));
    if (rc == 0) rc = tempo_trace_metaf(t, "n_prompt", err, "%d", r->n_prompt);
    if (rc == 0) rc = put_settings(t, e, o, r->vocab, err);
    if (rc == 0) rc = tempo_trace_metaf(t, "engine", err, "%s, %s", ENGINE_NAME,
                                        o->naive ? "naive: one sequence" : "one sequence per member");
    char desc[128], variant[64] = "unknown";
    llama_model_desc(e->model, desc, sizeof desc);
    dl_iterate_phdr(find_cpu_variant, variant);
    if (rc == 0) rc = tempo_trace_meta(t, "engine_model", desc, err);
    if (rc == 0) rc = tempo_trace_meta(t, "engine_cpu", variant, err);
    return rc;
}

static int write_trace(const Engine *e, const Rows *r, const RunOptions *o, char *err) {
    int64_t n = r->n_rows, rows[1] = {n}, sq[2] = {n, n}, lg[2] = {n, r->vocab};
    int64_t sel[2] = {r->n_steps, r->width_cap};
    uint8_t *allowed = malloc((size_t)n * n);
    if (!allowed) return tempo_error(err, "out of memory for a %lld-row mask", (long long)n);
    engine_mask(r, o->naive, allowed);
    Trace t;
    tempo_trace_init(&t);
    int rc = tempo_trace_add(&t, "tokens", DT_I32, 1, rows, r->tokens, err);
    if (rc == 0) rc = tempo_trace_add(&t, "positions", DT_I32, 1, rows, r->positions, err);
    if (rc == 0) rc = tempo_trace_add(&t, "sets", DT_I32, 1, rows, r->sets, err);
    if (rc == 0) rc = tempo_trace_add(&t, "allowed", DT_U8, 2, sq, allowed, err);
    if (rc == 0) rc = tempo_trace_add(&t, "logits", DT_F32, 2, lg, r->logits, err);
    if (rc == 0) rc = tempo_trace_add(&t, "selected", DT_I32, 2, sel, r->selected, err);
    if (rc == 0) rc = tempo_trace_add(&t, "selected_probs", DT_F32, 2, sel, r->selected_probs, err);
    if (rc == 0) rc = put_run_meta(&t, e, r, o, err);
    if (rc == 0) rc = tempo_trace_write(&t, o->trace_path, err);
    tempo_trace_free(&t);
    free(allowed);
    return rc;
}

static int run(int argc, char **argv, char *err) {
    RunOptions o;
    if (parse_run(&o, argc, argv, err) != 0) return -1;
    Engine e;
    Rows r = {0};
    int *prompt = NULL, n_prompt = 0;
    int rc = engine_open(&e, &o, err);
    int vocab = rc == 0 ? llama_vocab_n_tokens(llama_model_get_vocab(e.model)) : 0;
    if (rc == 0) rc = parse_ids(o.prompt, vocab, &prompt, &n_prompt, err);
    if (rc == 0) rc = engine_context(&e, &o, n_prompt, err);
    if (rc == 0) rc = rows_init(&r, vocab, n_prompt, &o, err);
    if (rc == 0) rc = feed_prompt(&e, &r, prompt, n_prompt, err);
    if (rc == 0) rc = tempo_steps(&e, &r, &o, err);
    if (rc == 0) rc = write_trace(&e, &r, &o, err);
    if (rc == 0) printf("%s: %d rows (%d prompt), %d steps\n", o.trace_path, r.n_rows, r.n_prompt, r.n_steps);
    engine_close(&e);
    rows_free(&r);
    free(prompt);
    return rc;
}

/* ---- bench: llama-bench's pp and tg through the library (figures only) ---- */

typedef struct { int pp, tg, reps; } BenchOptions;

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n tokens from an empty cache: one batch (pp, logits of the last row) or one
 * decode per token (tg, as llama-bench's tg); the seconds taken to *secs. */
static int bench_pass(Engine *e, int n, int one_by_one, int vocab, double *secs, char *err) {
    llama_memory_clear(e->memory, true);
    double t0 = seconds_now();
    for (int i = 0; i < n;) {
        int k = one_by_one ? 1 : (n - i < e->batch_cap ? n - i : e->batch_cap);
        e->batch.n_tokens = k;
        for (int j = 0; j < k; j++) {
            e->batch.token[j] = (int)(((long)(i + j) * 7919 + 13) % vocab);
            e->batch.pos[j] = i + j;
            e->batch.n_seq_id[j] = 1;
            e->batch.seq_id[j][0] = 0;
            e->batch.logits[j] = j == k - 1;
        }
        int rc = llama_decode(e->ctx, e->batch);
        if (rc != 0) return tempo_error(err, "llama_decode failed (%d) in the benchmark at position %d", rc, i);
        i += k;
    }
    llama_synchronize(e->ctx);
    *secs = seconds_now() - t0;
    return 0;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One warm-up pass, then `reps` timed ones; prints a JSON line with the median tokens per second. */
static int bench_test(Engine *e, const RunOptions *o, const char *test, int n, int one_by_one, int reps, char *err) {
    int vocab = llama_vocab_n_tokens(llama_model_get_vocab(e->model));
    double secs[64], warm;
    if (bench_pass(e, n, one_by_one, vocab, &warm, err) != 0) return -1;
    for (int r = 0; r < reps; r++)
        if (bench_pass(e, n, one_by_one, vocab, &secs[r], err) != 0) return -1;
    qsort(secs, (size_t)reps, sizeof(double), by_value);
    double median = reps % 2 ? secs[reps / 2] : 0.5 * (secs[reps / 2 - 1] + secs[reps / 2]);
    printf("{\"engine\": \"llama.cpp\", \"model\": \"%s\", \"test\": \"%s%d\", \"threads\": %d, \"kv_type\": \"%s\", "
           "\"flash_attn\": \"%s\", \"tokens_per_second\": %.6g, \"reps\": %d}\n", base_name(o->model_path), test, n,
           o->threads, o->kv_type == GGML_TYPE_F16 ? "f16" : "f32", o->flash_attn ? "on" : "off", n / median, reps);
    return 0;
}

/* --pp, --tg, --reps: 1 if `f` is one of them (parsed from v), 0 if not, -1 on a bad value. */
static int parse_bench_flag(BenchOptions *b, const char *f, const char *v, char *err) {
    int *target = strcmp(f, "--pp") == 0 ? &b->pp : strcmp(f, "--tg") == 0 ? &b->tg : strcmp(f, "--reps") == 0 ? &b->reps : NULL;
    if (!target) return 0;
    if (!v) return tempo_error(err, "flag %s needs a value", f);
    int rc = tempo_parse_int(v, f, target == &b->reps ? 1 : 0, target == &b->reps ? 64 : 16384, target, err);
    return rc == 0 ? 1 : -1;
}

static int parse_bench(RunOptions *o, BenchOptions *b, int argc, char **argv, char *err) {
    static const char *const run_only[] = {"--trace", "--prompt", "--naive", "--threshold", "--max-steps", "--max-width", NULL};
    *o = (RunOptions){.threshold = 1.0f, .max_width = 1, .threads = 1, .repack = 1, .kv_type = GGML_TYPE_F16};
    *b = (BenchOptions){.pp = 512, .tg = 128, .reps = 5};
    if (argc < 3 || argv[2][0] == '-') return tempo_error(err, "usage: llama-tempo bench MODEL.gguf [flags]");
    o->model_path = argv[2];
    for (int i = 3; i < argc; i++) {
        for (int r = 0; run_only[r]; r++)
            if (strcmp(argv[i], run_only[r]) == 0) return tempo_error(err, "flag %s is for run, not bench", argv[i]);
        int taken = parse_bench_flag(b, argv[i], i + 1 < argc ? argv[i + 1] : NULL, err);
        if (taken < 0) return -1;
        if (taken) i++;
        else if (parse_run_flag(o, argc, argv, &i, err) != 0) return -1;
    }
    if (b->pp + b->tg == 0) return tempo_error(err, "--pp and --tg are both 0: nothing to measure");
    o->max_steps = b->tg;
    return 0;
}

/* llama-bench's defaults: F16 K/V, pp512 and tg128, here median of --reps after a warm-up. */
static int bench(int argc, char **argv, char *err) {
    RunOptions o;
    BenchOptions b;
    if (parse_bench(&o, &b, argc, argv, err) != 0) return -1;
    Engine e;
    int rc = engine_open(&e, &o, err);
    if (rc == 0) rc = engine_context(&e, &o, b.pp > 0 ? b.pp : 1, err);
    if (rc == 0 && b.pp > 0) rc = bench_test(&e, &o, "pp", b.pp, 0, b.reps, err);
    if (rc == 0 && b.tg > 0) rc = bench_test(&e, &o, "tg", b.tg, 1, b.reps, err);
    engine_close(&e);
    return rc;
}

/* ---- quantize ---- */

typedef struct { const char *name; enum llama_ftype ftype; } QuantType;
static const QuantType quant_types[] = {
    {"F32", LLAMA_FTYPE_ALL_F32},         {"F16", LLAMA_FTYPE_MOSTLY_F16},       {"BF16", LLAMA_FTYPE_MOSTLY_BF16},
    {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},    {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
    {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},    {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},     {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},
    {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M}, {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L},
    {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S},
    {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},     {"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL},
    {"IQ4_XS", LLAMA_FTYPE_MOSTLY_IQ4_XS}, {"TQ1_0", LLAMA_FTYPE_MOSTLY_TQ1_0},   {"TQ2_0", LLAMA_FTYPE_MOSTLY_TQ2_0},
    {"IQ1_S", LLAMA_FTYPE_MOSTLY_IQ1_S},   {"IQ1_M", LLAMA_FTYPE_MOSTLY_IQ1_M},   {"IQ2_XXS", LLAMA_FTYPE_MOSTLY_IQ2_XXS},
    {"IQ2_XS", LLAMA_FTYPE_MOSTLY_IQ2_XS}, {"IQ2_S", LLAMA_FTYPE_MOSTLY_IQ2_S},   {"IQ2_M", LLAMA_FTYPE_MOSTLY_IQ2_M},
    {"IQ3_XXS", LLAMA_FTYPE_MOSTLY_IQ3_XXS}, {"IQ3_XS", LLAMA_FTYPE_MOSTLY_IQ3_XS}, {"IQ3_S", LLAMA_FTYPE_MOSTLY_IQ3_S},
    {"IQ3_M", LLAMA_FTYPE_MOSTLY_IQ3_M},   {"Q1_0", LLAMA_FTYPE_MOSTLY_Q1_0},     {"Q2_0", LLAMA_FTYPE_MOSTLY_Q2_0},
};

/* The grid presets (IQ1_*, IQ2_*, IQ3_*): llama_model_quantize refuses to write
 * IQ1, IQ2 and IQ3_XXS tensors without an importance matrix; all get one. */
static int needs_imatrix(const char *preset) { return strncmp(preset, "IQ", 2) == 0 && preset[2] != '4'; }

/* An importance matrix (llama.h llama_model_imatrix_data: tensor name -> one
 * weight per column, a NULL name last) for every layer matrix of the model
 * at `path`, each weight 1: all columns matter alike. */
typedef struct {
    struct llama_model_imatrix_data *entries;
    char (*names)[64];
    float *ones;
} Imatrix;

static void imatrix_free(Imatrix *im) {
    free(im->entries), free(im->names), free(im->ones);
}

static int uniform_imatrix(const char *path, Imatrix *im, char *err) {
    Model m;
    if (tempo_model_load(&m, path, err) != 0) return -1;
    const Config *c = &m.config;
    size_t n = (size_t)c->n_layers * N_LAYER_TENSORS, widest = 0, k = 0;
    for (int i = 0; i < N_LAYER_TENSORS; i++)
        if (tempo_layer_tensors[i].cols != UNIT_NONE && tempo_unit(c, tempo_layer_tensors[i].cols) > widest)
            widest = tempo_unit(c, tempo_layer_tensors[i].cols);
    *im = (Imatrix){calloc(n + 1, sizeof *im->entries), calloc(n, sizeof *im->names), malloc(widest * sizeof(float))};
    int rc = im->entries && im->names && im->ones ? 0 : tempo_error(err, "out of memory for an importance matrix");
    for (size_t j = 0; rc == 0 && j < widest; j++) im->ones[j] = 1.0f;
    for (int l = 0; rc == 0 && l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++) {
            const LayerTensor *lt = &tempo_layer_tensors[i];
            if (lt->cols == UNIT_NONE) continue;
            snprintf(im->names[k], sizeof im->names[k], "blk.%d.%s.weight", l, lt->gguf_name);
            im->entries[k] = (struct llama_model_imatrix_data){im->names[k], im->ones, tempo_unit(c, lt->cols)};
            k++;
        }
    tempo_model_free(&m);
    if (rc != 0) imatrix_free(im);
    return rc;
}

static int quantize(int argc, char **argv, char *err) {
    if (argc != 5 && !(argc == 7 && strcmp(argv[5], "--threads") == 0))
        return tempo_error(err, "usage: llama-tempo quantize IN.gguf OUT.gguf TYPE [--threads N]");
    int n_types = (int)(sizeof quant_types / sizeof quant_types[0]), t = 0, threads = 1;
    while (t < n_types && strcmp(quant_types[t].name, argv[4]) != 0) t++;
    if (t == n_types) return tempo_error(err, "unknown type %s (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S "
                                              "Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS TQ1_0 TQ2_0 "
                                              "IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ3_XXS IQ3_XS IQ3_S IQ3_M Q1_0 Q2_0)", argv[4]);
    if (argc == 7 && tempo_parse_int(argv[6], "--threads", 1, 256, &threads, err) != 0) return -1;
    llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.ftype = quant_types[t].ftype;
    qp.nthread = threads;
    qp.allow_requantize = qp.ftype == LLAMA_FTYPE_ALL_F32; /* F32 from a quantized file: ggml's own dequantization */
    Imatrix im = {0};
    if (needs_imatrix(argv[4]) && uniform_imatrix(argv[2], &im, err) != 0) return -1;
    qp.imatrix = im.entries;
    int rc = llama_model_quantize(argv[2], argv[3], &qp);
    imatrix_free(&im);
    if (rc != 0) return tempo_error(err, "llama_model_quantize could not write %s as %s from %s", argv[3], argv[4], argv[2]);
    printf("%s: %s\n", argv[3], argv[4]);
    return 0;
}

int main(int argc, char **argv) {
    char err[TEMPO_ERR_SIZE] = "";
    const char *cmd = argc >= 2 ? argv[1] : "";
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "quantize") != 0 && strcmp(cmd, "bench") != 0) {
        fprintf(stderr, "usage: llama-tempo run MODEL.gguf --trace OUT --prompt IDS [--threshold P] [--max-steps N]\n"
                        "         [--max-width N] [--kv-type f32|f16] [--flash-attn on|off] [--repack on|off]\n"
                        "         [--naive] [--threads N]\n"
                        "       llama-tempo quantize IN.gguf OUT.gguf TYPE [--threads N]\n"
                        "       llama-tempo bench MODEL.gguf [--pp 512] [--tg 128] [--reps 5] [--threads N]\n"
                        "         [--kv-type f16|f32] [--flash-attn on|off] [--repack on|off]\n");
        return 2;
    }
    llama_log_set(log_errors, NULL);
    ggml_backend_load_all_from_path(LLAMA_BACKEND_DIR);
    llama_backend_init();
    int rc = strcmp(cmd, "run") == 0 ? run(argc, argv, err)
             : strcmp(cmd, "bench") == 0 ? bench(argc, argv, err) : quantize(argc, argv, err);
    llama_backend_free();
    if (rc != 0) fprintf(stderr, "llama-tempo: %s\n", err);
    return rc == 0 ? 0 : 1;
}
